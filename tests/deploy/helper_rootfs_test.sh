#!/usr/bin/env bash
# The helper as the helper image ships it, without Docker: the runtime root filesystem
# is built by deploy/images/build-helper-rootfs.sh from the same package lists as the
# Dockerfile, the release helper (Release, no sanitizers, no loop transport, stripped as
# in the Dockerfile) goes to /usr/bin, and everything below runs chrooted in it, so every
# library the helper loads is the image's own:
#   1. the Dockerfile and the rootfs script read the same package lists;
#   2. ldd in the chroot resolves every library of the helper and of the test binaries
#      (no test-only library is added: gtest is static), and no binary carries an RPATH;
#   3. `lbcsi-helper --help` runs and names no loop transport (as the Dockerfile checks);
#   4. helper_rootfs_smoke: the helper started for real with --seccomp=enforce, answering
#      requests (libnvme, libmount, libcryptsetup/libdevmapper paths), then a clean exit;
#   5. the helper's confinement suites (seccomp allow-list and its golden file,
#      capabilities, namespaces, the filtered workload: loop device, libblkid, mkfs
#      through the spawner, libmount) and its unit suites (validation, paths, spawner).
# Mounts (/proc, /sys, /dev and whatever the tests mount) live in a private mount
# namespace that dies with the run; they are also unmounted explicitly.
#
# Usage: helper_rootfs_test.sh SOURCE_DIR RELEASE_BUILD_DIR WORK_DIR
# Needs root (chroot, mounts, loop devices): skips (77) otherwise, fails under CI=true.
# LBCSI_KEEP_ROOTFS=1 keeps WORK_DIR/rootfs after a passing run.
set -euo pipefail

suites=(helper_confinement_seccomp_test helper_confinement_capabilities_test
        helper_confinement_netns_test helper_confinement_workload_test
        helper_validate_test helper_paths_test helper_spawner_test)
extra_bins=(helper_confinement_workload)  # run by helper_confinement_workload_test
opt=/opt/lbcsi-test                       # test binaries inside the rootfs
# The Dockerfile's test for a development transport compiled in (see its build stage).
dev_marker="DEVELOPMENT loop transport"
chroot_env=(/usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
            HOME=/root "CI=${CI:-}" "LBCSI_BUILD_DIR=$opt" "LBCSI_SOURCE_DIR=$opt/src")

# ---- second stage: inside the private mount namespace --------------------------------
if [[ ${1:-} == --in-namespace ]]; then
  root=$2
  failed=0
  passed=0
  unmount_all() {
    for m in dev sys proc; do
      umount -R "$root/$m" 2>/dev/null || umount -lR "$root/$m" 2>/dev/null || true
    done
  }
  trap unmount_all EXIT
  mount -t proc proc "$root/proc"
  mount --rbind /sys "$root/sys"
  mount --rbind /dev "$root/dev"
  in_root() { chroot "$root" "${chroot_env[@]}" "$@"; }
  result() {  # name rc seconds output-file
    if [[ $2 -eq 0 ]]; then
      echo "ok   $1 (${3}s)"; passed=$((passed + 1))
    else
      echo "FAIL $1 (exit $2, ${3}s):"; sed 's/^/     | /' "$4"; failed=$((failed + 1))
    fi
  }
  out=$(mktemp)

  # 2. Library closure with the image's libraries only.
  bins=(/usr/bin/lbcsi-helper "$opt/tests/deploy/helper_rootfs_smoke")
  for b in "${suites[@]}" "${extra_bins[@]}"; do bins+=("$opt/tests/helper/$b"); done
  rc=0
  for b in "${bins[@]}"; do
    if ! in_root ldd "$b" >"$out.ldd" 2>&1 || grep -q "not found" "$out.ldd"; then
      echo "$b:"; grep "not found" "$out.ldd" || cat "$out.ldd"
      rc=1
    fi
  done >"$out"
  result "every library of the helper and the tests resolves in the rootfs" $rc 0 "$out"
  # Which packages of the image the helper's libraries come from (for the log).
  # /usr is merged: dpkg knows each file under one of its two names.
  mapfile -t libs < <(in_root ldd /usr/bin/lbcsi-helper | awk '$3 ~ /^\// {print $3}' |
    in_root sh -c 'while read -r l; do r=$(readlink -f "$l"); echo "$r"; echo "${r#/usr}"; done')
  if [[ ${#libs[@]} -gt 0 ]]; then
    echo "     helper libraries come from: $(in_root dpkg -S "${libs[@]}" 2>/dev/null |
      cut -d: -f1 | sort -u | tr '\n' ' ')"
  fi

  # 3. The Dockerfile's last build step: --help runs, no development transport inside.
  start=$SECONDS
  rc=0
  in_root /usr/bin/lbcsi-helper --help >"$out" 2>&1 || rc=$?
  if grep -q "$dev_marker" "$root/usr/bin/lbcsi-helper"; then
    echo "the release helper contains the development (loop) transport" >>"$out"; rc=1
  fi
  result "lbcsi-helper --help; no development transport" $rc $((SECONDS - start)) "$out"

  # 4 and 5: the smoke test against the real helper, then the helper's suites.
  run_suite() {  # name path
    local start=$SECONDS rc=0
    in_root timeout --kill-after=10 300 "$2" --gtest_color=no >"$out" 2>&1 || rc=$?
    # A skipped test proves nothing about the image: count it as a failure here.
    if [[ $rc -eq 0 ]] && grep -q "\[  SKIPPED \]" "$out"; then
      echo "(skipped tests inside the rootfs)" >>"$out"; rc=1
    fi
    result "$1" $rc $((SECONDS - start)) "$out"
    grep -E "^\[  PASSED  \]|^Attach without" "$out" | sed 's/^/     /' || true
  }
  run_suite "helper_rootfs_smoke (real helper, --seccomp=enforce)" \
    "$opt/tests/deploy/helper_rootfs_smoke"
  for s in "${suites[@]}"; do run_suite "$s" "$opt/tests/helper/$s"; done

  rm -f "$out" "$out.ldd"
  echo "rootfs checks: $passed passed, $failed failed"
  exit $((failed == 0 ? 0 : 1))
fi

# ---- first stage ----------------------------------------------------------------------
[[ $# -eq 3 ]] || { echo "usage: $0 SOURCE_DIR RELEASE_BUILD_DIR WORK_DIR" >&2; exit 2; }
src=$(realpath "$1")
rel=$(realpath "$2")
work=$(realpath -m "$3")
root=$work/rootfs
t0=$SECONDS

if [[ $(id -u) -ne 0 ]]; then
  if [[ ${CI:-} == true ]]; then
    echo "FAIL: needs root (mmdebstrap, chroot, mounts, loop devices) and CI=true"; exit 1
  fi
  echo "SKIP: needs root (mmdebstrap, chroot, mounts, loop devices)"; exit 77
fi
for tool in unshare chroot strip readelf; do
  command -v $tool >/dev/null || { echo "FAIL: $tool missing"; exit 1; }
done

# 1. The Dockerfile's helper image = runtime-base + packages-base.txt, then
#    packages-helper.txt: the lists the rootfs script reads.
stages=$(awk '/^FROM /{stage=$NF; parent[stage]=$2}
              /^COPY deploy\/images\/packages-/{print stage, parent[stage], $2}' \
  "$src/deploy/images/Dockerfile")
expected=$'runtime-base ${DEBIAN} deploy/images/packages-base.txt\nhelper runtime-base deploy/images/packages-helper.txt'
if [[ $stages != "$expected" ]]; then
  echo "FAIL: the Dockerfile's package lists changed; update build-helper-rootfs.sh and this test:"
  echo "$stages"; exit 1
fi
for l in packages-base.txt packages-helper.txt; do
  grep -q "\"\$here/$l\"" "$src/deploy/images/build-helper-rootfs.sh" ||
    { echo "FAIL: build-helper-rootfs.sh does not read $l"; exit 1; }
done
grep -qF "! grep -q '$dev_marker' /out/lbcsi-helper" "$src/deploy/images/Dockerfile" ||
  { echo "FAIL: the Dockerfile no longer checks for \"$dev_marker\"; update this test"; exit 1; }
echo "ok   the Dockerfile and build-helper-rootfs.sh use packages-base.txt + packages-helper.txt"

# The rootfs: a cached tarball, extracted afresh.
start=$SECONDS
"$src/deploy/images/build-helper-rootfs.sh" "$root"
echo "ok   rootfs ready ($((SECONDS - start))s)"

# The release binaries, installed the way the Dockerfile installs the helper.
for b in helper/lbcsi-helper tests/deploy/helper_rootfs_smoke; do
  [[ -x $rel/$b ]] || { echo "FAIL: $rel/$b missing (the lbcsi_release_helper build)"; exit 1; }
done
install -m 0755 "$rel/helper/lbcsi-helper" "$root/usr/bin/lbcsi-helper"
strip --strip-unneeded "$root/usr/bin/lbcsi-helper"
mkdir -p "$root$opt/tests/helper" "$root$opt/tests/deploy" "$root$opt/src/tests/helper"
install -m 0755 "$rel/tests/deploy/helper_rootfs_smoke" "$root$opt/tests/deploy/"
for b in "${suites[@]}" "${extra_bins[@]}"; do
  install -m 0755 "$rel/tests/helper/$b" "$root$opt/tests/helper/"
done
cp "$src/tests/helper/seccomp_allowlist.golden" "$root$opt/src/tests/helper/"
rpath=$(for f in "$root/usr/bin/lbcsi-helper" "$root$opt"/tests/*/*; do
  readelf -d "$f" | sed -n "/RPATH\|RUNPATH/s#^#${f#"$root"}: #p"
done)
if [[ -n $rpath ]]; then echo "FAIL: binaries would load libraries from elsewhere:"; echo "$rpath"; exit 1; fi
echo "ok   release helper + test binaries installed, no RPATH/RUNPATH"
# That marker test can fail: a development build of the helper (LBCSI_DEV_HELPER, set
# when this tree's main build has the loop transport) must carry the marker.
if [[ -n ${LBCSI_DEV_HELPER:-} ]]; then
  if ! grep -q "$dev_marker" "$LBCSI_DEV_HELPER"; then
    echo "FAIL: \"$dev_marker\" is not in $LBCSI_DEV_HELPER: the Dockerfile's check is blind"
    exit 1
  fi
  echo "ok   the development-transport marker is found in a development build"
fi

rc=0
unshare --mount --propagation private -- "$0" --in-namespace "$root" || rc=$?

# Nothing may outlive the run: no mounts under the rootfs, no loop device on its files.
if grep -q " ${root}[/ ]" /proc/self/mountinfo; then
  echo "FAIL: mounts left under $root"; rc=1
fi
if losetup -a 2>/dev/null | grep -q "$root/"; then
  echo "FAIL: loop devices left on files under $root:"; losetup -a | grep "$root/"; rc=1
fi
if [[ $rc -eq 0 && ${LBCSI_KEEP_ROOTFS:-0} != 1 ]]; then rm -rf --one-file-system "$root"; fi
echo "helper rootfs test: $((SECONDS - t0))s, exit $rc"
exit $rc
