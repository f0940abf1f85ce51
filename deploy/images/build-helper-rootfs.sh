#!/usr/bin/env bash
# Builds the runtime root filesystem of the helper image without Docker:
# Debian 12 minbase (what debian:12-slim is made from) plus the SAME package lists
# the Dockerfile installs (packages-base.txt, then packages-helper.txt), with the
# slim image's dpkg path excludes. Uses mmdebstrap as root.
#
#   deploy/images/build-helper-rootfs.sh OUT_DIR     # OUT_DIR is replaced by a fresh tree
#   deploy/images/build-helper-rootfs.sh --tarball   # only build/find the cache; print its path
#
# The result is cached as a tarball keyed by a hash of everything that shapes it
# (both package lists, this script, the apt sources, the architecture), so repeated
# test runs extract it instead of downloading again. Environment:
#   LBCSI_ROOTFS_CACHE    cache directory (default /var/cache/lbcsi-rootfs)
#   LBCSI_ROOTFS_SOURCES  apt sources file for the mirror (default: this machine's)
#   LBCSI_ROOTFS_REFRESH  1 = rebuild even when cached (e.g. after a point release)
#   LBCSI_ROOTFS_MAX_AGE_DAYS  rebuild a cache older than this (default 14), so the
#                         rootfs follows the archive's security and point-release updates
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
suite=bookworm
cache=${LBCSI_ROOTFS_CACHE:-/var/cache/lbcsi-rootfs}
lists=("$here/packages-base.txt" "$here/packages-helper.txt")

usage() { echo "usage: $0 OUT_DIR | --tarball" >&2; exit 2; }
[[ $# -eq 1 ]] || usage
out=$1

if [[ $(id -u) -ne 0 ]]; then
  echo "build-helper-rootfs: needs root (mmdebstrap --mode=root, chroot)" >&2
  exit 77
fi

# The mirror this machine already uses: the rootfs gets the same archive as the
# -dev packages the helper was compiled against.
sources=${LBCSI_ROOTFS_SOURCES:-}
if [[ -z $sources ]]; then
  for f in /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list; do
    if [[ -s $f ]]; then sources=$f; break; fi
  done
fi
[[ -n $sources ]] || { echo "build-helper-rootfs: no apt sources found" >&2; exit 1; }

# Package lists: one name a line; blank lines and # comments ignored (the Dockerfile's
# `xargs -a` would choke on comments, so the lists keep none; this is only leniency).
packages=()
for l in "${lists[@]}"; do
  while read -r p; do
    p=${p%%#*}
    [[ -n ${p// /} ]] && packages+=("${p// /}")
  done <"$l"
done

arch=$(dpkg --print-architecture)
key=$( { cat "${lists[@]}" "$0" "$sources"; echo "$suite $arch"; } | sha256sum | cut -c1-16)
tarball=$cache/helper-rootfs-$key.tar

build_tarball() {
  if ! command -v mmdebstrap >/dev/null; then
    echo "build-helper-rootfs: installing mmdebstrap" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mmdebstrap \
      >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends mmdebstrap >/dev/null; }
  fi
  mkdir -p "$cache"
  local tmp="$tarball.tmp.$$" start=$SECONDS
  # debian:12-slim = minbase with /usr merged by directory symlinks (usr-is-merged, not
  # the usrmerge package that would drag perl in) + these dpkg excludes (debuerreotype's
  # slimify list); no Recommends, as the Dockerfile's --no-install-recommends.
  mmdebstrap --mode=root --variant=minbase --format=tar --quiet \
    --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
    --aptopt='APT::Install-Recommends "false"' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/groff/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/lintian/overrides/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --include="$(IFS=,; echo "${packages[*]}")" \
    --customize-hook="chroot \"\$1\" dpkg-query -W -f='\${Package} \${Version}\n' >'$tmp.packages'" \
    "$suite" "$tmp" "$sources" >"$tmp.log" 2>&1 ||
    { cat "$tmp.log" >&2; rm -f "$tmp"*; echo "build-helper-rootfs: mmdebstrap failed" >&2; exit 1; }
  rm -f "$tmp.log"
  mv "$tmp.packages" "$tarball.packages"
  mv "$tmp" "$tarball"
  # Older keys are dead weight: one rootfs per machine is enough.
  find "$cache" -maxdepth 1 -name 'helper-rootfs-*' ! -name "${tarball##*/}*" -delete
  echo "build-helper-rootfs: built $tarball in $((SECONDS - start))s" >&2
}

# One builder at a time (parallel test runs share the cache).
mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9
rm -f "$cache"/helper-rootfs-*.tmp.*
max_age=${LBCSI_ROOTFS_MAX_AGE_DAYS:-14}
if [[ ! -s $tarball || ${LBCSI_ROOTFS_REFRESH:-0} == 1 ]]; then
  build_tarball
elif [[ -n $(find "$tarball" -mtime +"$max_age") ]]; then
  echo "build-helper-rootfs: cache older than $max_age days; rebuilding (the archive moves on)" >&2
  build_tarball
else
  echo "build-helper-rootfs: cached $tarball" >&2
fi

if [[ $out == --tarball ]]; then
  echo "$tarball"
  exit 0
fi

# Replace OUT_DIR, but never through a mount point left inside it.
if [[ -e $out ]]; then
  real=$(realpath "$out")
  if grep -q " ${real}[/ ]" /proc/self/mountinfo; then
    echo "build-helper-rootfs: something is mounted under $real; not removing it" >&2
    exit 1
  fi
  rm -rf --one-file-system "$out"
fi
mkdir -p "$out"
tar -C "$out" -xf "$tarball" --numeric-owner
echo "build-helper-rootfs: $out ($(wc -l <"$tarball.packages") packages, list in $tarball.packages)" >&2
