#!/usr/bin/env bash
# vm-prepare.sh: makes sure the host can boot the NVMe test guest, and prints the
# directory that holds the guest kernel and initramfs (one line on stdout).
#
#  - installs the few Debian packages the harness needs when they are missing;
#  - fetches Debian's stock kernel package with `apt-get download` and unpacks it with
#    `dpkg-deb -x` instead of installing it: installing would run initramfs-tools and
#    bootloader hooks and write to /boot and /lib/modules of this host;
#  - pulls the uncompressed vmlinux out of the bzImage, so qemu can start it through
#    its PVH entry point (skips the BIOS and the in-guest decompression, ~3 s on TCG);
#  - builds a small busybox initramfs with the modules the guest loads at boot.
# Everything is cached under $LBCSI_VM_CACHE/<kernel version>/ and rebuilt only when
# the kernel version, the guest init script or the module list changes.
#
# Env: LBCSI_VM_CACHE (default /var/cache/lbcsi-vm), LBCSI_VM_KPKG (kernel package,
#      default: the one the linux-image-amd64 candidate depends on),
#      LBCSI_VM_NO_APT=1 (never call apt-get; fail if something is missing).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache=${LBCSI_VM_CACHE:-/var/cache/lbcsi-vm}
export DEBIAN_FRONTEND=noninteractive

say() { echo "vm-prepare: $*" >&2; }
die() { say "error: $*"; exit 1; }

[[ $(id -u) -eq 0 ]] || die "must run as root (apt, and qemu's 9p export of / needs it)"

# ---- packages -----------------------------------------------------------------------
# qemu-system-x86: the VM; busybox-static: the initramfs userland (must be static);
# cpio/xz-utils/kmod: initramfs, vmlinux extraction, module dependencies.
# The guest reuses the host's tools (mkfs.ext4, mount, bash) through the shared root.
packages=(qemu-system-x86 busybox-static cpio xz-utils kmod e2fsprogs util-linux)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
apt_updated=0
apt_update() {
  [[ $apt_updated -eq 1 ]] && return 0
  apt-get update -qq -o DPkg::Lock::Timeout=600 >&2
  apt_updated=1
}
if [[ ${#missing[@]} -gt 0 ]]; then
  [[ ${LBCSI_VM_NO_APT:-0} != 1 ]] || die "missing packages: ${missing[*]}"
  say "installing ${missing[*]}"
  apt_update
  apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=600 "${missing[@]}" \
    >/dev/null
fi
if ldd /bin/busybox >/dev/null 2>&1; then
  die "/bin/busybox is dynamically linked: install busybox-static"
fi

# ---- kernel package -----------------------------------------------------------------
# apt-cache is slow (seconds on a busy host): remember its answer until the apt lists change.
lists_stamp() { stat -c %Y /var/lib/apt/lists 2>/dev/null || echo 0; }
resolve_kpkg() {
  local cand stamp memo=$cache/.kpkg
  stamp=$(lists_stamp)
  if [[ -r $memo ]] && read -r s k <"$memo" && [[ $s == "$stamp" && -n $k ]]; then
    echo "$k"
    return 0
  fi
  cand=$(apt-cache policy linux-image-amd64 2>/dev/null | awk '/Candidate:/{print $2}')
  [[ -n $cand && $cand != "(none)" ]] || return 1
  k=$(apt-cache depends "linux-image-amd64=$cand" 2>/dev/null |
    awk '/Depends: linux-image-[0-9]/{print $2; exit}')
  [[ -n $k ]] || return 1
  mkdir -p "$cache" && echo "$stamp $k" >"$memo"
  echo "$k"
}
kpkg=${LBCSI_VM_KPKG:-}
if [[ -z $kpkg ]]; then
  kpkg=$(resolve_kpkg || true)
  if [[ -z $kpkg && ${LBCSI_VM_NO_APT:-0} != 1 ]]; then
    apt_update
    kpkg=$(resolve_kpkg || true)
  fi
  if [[ -z $kpkg ]]; then   # offline: fall back to whatever kernel is already cached
    kpkg=$(ls -1d "$cache"/*/.kernel-ready 2>/dev/null | sort -V | tail -1 |
      xargs -r -n1 dirname | xargs -r -n1 basename | sed 's/^/linux-image-/' || true)
  fi
fi
[[ -n $kpkg ]] || die "cannot resolve the kernel package (apt lists missing?)"
kver=${kpkg#linux-image-}
kdir=$cache/$kver
mkdir -p "$cache"

# Serialise concurrent preparations (two test runs may start at once).
exec 9>"$cache/.lock"
flock -w 900 9 || die "timed out waiting for $cache/.lock"

if [[ ! -e $kdir/.kernel-ready ]]; then
  [[ ${LBCSI_VM_NO_APT:-0} != 1 ]] || die "kernel $kpkg is not cached in $kdir"
  say "fetching $kpkg (not installed: downloaded and unpacked into $kdir)"
  rm -rf "$kdir"
  mkdir -p "$kdir/kernel"
  dl=$(mktemp -d /tmp/lbcsi-vm-dl.XXXXXX)
  chown _apt "$dl" 2>/dev/null || true   # apt downloads as _apt; avoids its "unsandboxed" warning
  if ! (cd "$dl" && apt-get download -qq "$kpkg" >&2); then
    apt_update
    (cd "$dl" && apt-get download -qq "$kpkg" >&2) || { rm -rf "$dl"; die "apt-get download $kpkg"; }
  fi
  dpkg-deb -x "$dl"/"$kpkg"_*.deb "$kdir/kernel"
  rm -rf "$dl"
  depmod -b "$kdir/kernel" "$kver"

  # vmlinuz is a bzImage whose payload is an XZ stream: find its magic, write the
  # payload to a file first (a tail|xz pipe dies of SIGPIPE under pipefail).
  vmlinuz=$kdir/kernel/boot/vmlinuz-$kver
  off=$(LC_ALL=C grep -obUa $'\xfd7zXZ' "$vmlinuz" | head -1 | cut -d: -f1 || true)
  if [[ -n $off ]]; then
    tail -c +$((off + 1)) "$vmlinuz" >"$kdir/payload.xz"
    if xz -dc --single-stream "$kdir/payload.xz" >"$kdir/vmlinux.tmp" 2>/dev/null &&
      [[ $(head -c 4 "$kdir/vmlinux.tmp" | od -An -tx1 | tr -d ' \n') == 7f454c46 ]]; then
      mv "$kdir/vmlinux.tmp" "$kdir/vmlinux"
    fi
    rm -f "$kdir/payload.xz" "$kdir/vmlinux.tmp"
  fi
  [[ -e $kdir/vmlinux ]] || say "warning: no vmlinux extracted; the guest boots the bzImage (slower)"
  touch "$kdir/.kernel-ready"
  # Keep one kernel: drop caches of other versions (about 450 MB each).
  for old in "$cache"/*/.kernel-ready; do
    if [[ -e $old && $(dirname "$old") != "$kdir" ]]; then rm -rf "$(dirname "$old")"; fi
  done
fi

# ---- initramfs ----------------------------------------------------------------------
# boot: what /init needs to reach the shared root; eager: loaded before the command.
# Anything else (xfs, dm-crypt, null_blk, ...) is modprobe'd in the guest from the
# unpacked module tree, which the guest sees at /lib/modules/<kver>.
boot_mods="virtio_pci 9pnet_virtio 9p overlay"
# dm-mod dm-crypt xts: host-encrypted volumes (LUKS2, aes-xts-plain64; aes is built in).
eager_mods="configfs nvmet nvmet-tcp nvme-core nvme-fabrics nvme-tcp ext4 loop dm-mod dm-crypt xts"
init_src=$here/guest/init
key=$(
  {
    echo "$kver $boot_mods | $eager_mods"
    cat "$init_src"
  } | sha256sum | cut -c1-16
)
initrd=$kdir/initrd-$key.img
if [[ ! -e $initrd ]]; then
  say "building initramfs $initrd"
  root=$(mktemp -d /tmp/lbcsi-vm-initrd.XXXXXX)
  trap 'rm -rf "$root"' EXIT
  mkdir -p "$root"/{bin,dev,proc,sys,mods,lower,rw,newroot,job}
  cp /bin/busybox "$root/bin/busybox"
  cp "$init_src" "$root/init"
  chmod 755 "$root/init"
  # Ordered, de-duplicated .ko paths for a set of modules (dependencies first).
  ko_list() {
    local m
    for m in "$@"; do
      modprobe -d "$kdir/kernel" -S "$kver" --show-depends "$m" | awk '$1 == "insmod" {print $2}'
    done | awk '!seen[$0]++'
  }
  ko_list $boot_mods >"$root/boot.paths"
  ko_list $eager_mods | grep -vxF -f "$root/boot.paths" >"$root/eager.paths" || true
  for set in boot eager; do
    while read -r ko; do
      name=$(basename "$ko")
      case $name in
        *.ko.xz) xz -dc "$ko" >"$root/mods/${name%.xz}"; name=${name%.xz} ;;
        *) cp "$ko" "$root/mods/$name" ;;
      esac
      echo "$name"
    done <"$root/$set.paths" >"$root/$set.modules"
    rm "$root/$set.paths"
  done
  (cd "$root" && find . -print0 | cpio --null -o -H newc --quiet) | gzip -1 >"$initrd.tmp"
  mv "$initrd.tmp" "$initrd"
  rm -rf "$root"
  trap - EXIT
  for other in "$kdir"/initrd-*.img; do
    [[ $other == "$initrd" ]] || rm -f "$other"
  done
fi

kernel=$kdir/vmlinux
[[ -e $kernel ]] || kernel=$kdir/kernel/boot/vmlinuz-$kver
{
  printf 'VM_KVER=%q\n' "$kver"
  printf 'VM_KERNEL=%q\n' "$kernel"
  printf 'VM_INITRD=%q\n' "$initrd"
  printf 'VM_MODDIR=%q\n' "$kdir/kernel/lib/modules/$kver"
} >"$kdir/env.tmp"
mv "$kdir/env.tmp" "$kdir/env"
echo "$kdir"
