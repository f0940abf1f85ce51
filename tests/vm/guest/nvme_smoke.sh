#!/usr/bin/env bash
# nvme_smoke.sh PROBE: proves the guest's NVMe/TCP stack end to end, with the kernel
# target on loopback and the kernel host driver driven through libnvme (PROBE is
# vm_nvme_probe). Runs inside the guest only (run-in-vm.sh sets LBCSI_IN_VM=1).
#
#  1. a sparse file exported by nvmet as a namespace with a known UUID, on two ports;
#  2. per-volume ACL emulation: connected while the namespace is disabled, it is not
#     visible; enabled, it appears on the live controller;
#  3. mkfs.ext4, mount, write, read back, unmount, remount read-only and verify;
#  4. multipath: a second controller through the second port gives the same disk two
#     live paths (nvme_core multipath=Y, Debian's default);
#  5. path loss while mounted: a port removed, I/O goes on over the other path;
#  6. disable (ACL revoked) makes the disk go away; disconnect; target teardown.
set -euo pipefail

probe=${1:?usage: nvme_smoke.sh PATH/TO/vm_nvme_probe}
here=$(cd "$(dirname "$0")" && pwd)
[[ ${LBCSI_IN_VM:-} == 1 ]] || { echo "nvme_smoke.sh runs inside the VM (run-in-vm.sh)"; exit 1; }
# Functions, not a new bash per target change: execs are what is slow under TCG.
# shellcheck source=../nvmet.sh
. "$here/../nvmet.sh"

# $EPOCHREALTIME needs no fork; under TCG forks and execs dominate run time.
now_ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }
t0=$(now_ms)
t_last=$t0
step() {  # time since start and since the previous step
  local now
  now=$(now_ms)
  printf '[%6d ms +%5d ms] %s\n' $((now - t0)) $((now - t_last)) "$*"
  t_last=$now
}
fail() { echo "FAIL: $*"; dmesg | tail -n 30; exit 1; }

hostid=$(</proc/sys/kernel/random/uuid)
hostnqn=nqn.2014-08.org.nvmexpress:uuid:$hostid
nqn=nqn.2016-01.com.lightbitslabs:uuid:$(</proc/sys/kernel/random/uuid)
vol=$(</proc/sys/kernel/random/uuid)
work=$(mktemp -d /var/tmp/nvme-smoke.XXXXXX)
mnt=$work/mnt
mkdir -p "$mnt"
ctrls=()
cleanup() {
  set +e
  mountpoint -q "$mnt" && umount "$mnt"
  for c in "${ctrls[@]}"; do [[ -e /sys/class/nvme/$c ]] && "$probe" disconnect --ctrl "$c"; done
  nvmet_teardown
  rm -rf "$work"
}
trap cleanup EXIT

multipath=$(</sys/module/nvme_core/parameters/multipath)
echo "kernel $(uname -r), nvme_core multipath=$multipath, volume $vol"
[[ $multipath == Y ]] || fail "nvme_core multipath is $multipath; Debian's default is Y"

# 1. target: the volume is a sparse file; its namespace starts disabled (not in the ACL).
truncate -s 256M "$work/$vol.img"
nvmet_need_cfg
nvmet_subsys "$nqn"
nvmet_ns_add "$nqn" 1 "$vol" "$work/$vol.img" --disabled
nvmet_port_add "$nqn" 1 127.0.0.1 4420
nvmet_port_add "$nqn" 2 127.0.0.1 4421
step "target up: $nqn on 127.0.0.1:4420 and :4421"

# 2. ACL emulation.
ctrl_a=$("$probe" connect --nqn "$nqn" --traddr 127.0.0.1 --trsvcid 4420 --hostnqn "$hostnqn" \
  --hostid "$hostid")
ctrls+=("$ctrl_a")
step "connected $ctrl_a (port 4420)"
"$probe" absent --uuid "$vol" --wait-ms 300 || fail "a disabled namespace is visible"
step "disabled namespace is not visible"
nvmet_ns_set "$nqn" 1 1
found=$("$probe" find --uuid "$vol" --timeout-ms 10000) || fail "enabled namespace did not appear"
dev=$(sed -n 's/.*dev=\([^ ]*\).*/\1/p' <<<"$found")
step "enabled namespace appeared: $found"
[[ $(</sys/block/${dev#/dev/}/wwid) == "uuid.$vol" ]] || fail "wwid is $(</sys/block/${dev#/dev/}/wwid)"

# 3. filesystem round trip.
mkfs.ext4 -q -F "$dev"
step "mkfs.ext4 $dev"
mount -t ext4 "$dev" "$mnt"
head -c 1M /dev/urandom >"$mnt/data"
want=$(sha256sum <"$mnt/data")
sync -f "$mnt"
[[ $(sha256sum <"$mnt/data") == "$want" ]] || fail "read back differs"
umount "$mnt"
step "mounted, wrote 1 MiB, read back, unmounted"
echo 3 >/proc/sys/vm/drop_caches
mount -t ext4 -o ro "$dev" "$mnt"
[[ $(sha256sum <"$mnt/data") == "$want" ]] || fail "data differs after remount"
umount "$mnt"
step "remounted read-only: data intact"

# 4. multipath: the same namespace over the second port.
ctrl_b=$("$probe" connect --nqn "$nqn" --traddr 127.0.0.1 --trsvcid 4421 --hostnqn "$hostnqn" \
  --hostid "$hostid")
ctrls+=("$ctrl_b")
found=$("$probe" find --uuid "$vol" --paths 2 --timeout-ms 10000) || fail "no second path"
step "connected $ctrl_b (port 4421): $found"
[[ $found == "dev=$dev paths=2 live=2" ]] || fail "expected $dev with 2 live paths, got: $found"
subsys=$(basename "$(readlink -f "/sys/block/${dev#/dev/}/device")")
echo "  $subsys: $(ls /sys/class/nvme-subsystem/"$subsys" | grep -E '^nvme[0-9]+$' | tr '\n' ' ')"

# 5. path loss while mounted: I/O continues on the remaining path.
mount -t ext4 "$dev" "$mnt"
nvmet_port_remove "$nqn" 2
step "port 4421 removed while mounted"
head -c 1M /dev/urandom >"$mnt/after"
want2=$(sha256sum <"$mnt/after")
sync -f "$mnt"
echo 3 >/proc/sys/vm/drop_caches
[[ $(sha256sum <"$mnt/after") == "$want2" ]] || fail "I/O after path loss differs"
[[ $(sha256sum <"$mnt/data") == "$want" ]] || fail "old data differs after path loss"
step "wrote and read back 1 MiB over the remaining path"
found=$("$probe" find --uuid "$vol" --timeout-ms 1000)
# The lost controller reconnects until ctrl_loss_tmo (5 s), then is deleted.
live_b=$(cat "/sys/class/nvme/$ctrl_b/state" 2>/dev/null || echo deleted)
echo "  after path loss: $found; $ctrl_b state=$live_b"
[[ $found == *"live=1"* && $live_b != live ]] || fail "expected 1 live path, got: $found ($live_b)"
umount "$mnt"

# 6. revoke (namespace disabled), then disconnect everything.
nvmet_ns_set "$nqn" 1 0
"$probe" gone --uuid "$vol" --timeout-ms 10000 || fail "$dev still present after the namespace was disabled"
step "namespace disabled: $dev is gone"
for c in "${ctrls[@]}"; do
  [[ -e /sys/class/nvme/$c ]] && "$probe" disconnect --ctrl "$c"
done
ctrls=()
step "disconnected"
ls /sys/class/nvme | grep -q . && fail "controllers left: $(ls /sys/class/nvme)"
nvmet_teardown
[[ -z $(ls /sys/kernel/config/nvmet/subsystems) ]] || fail "target not torn down"
step "target torn down"
echo "vm_nvme_smoke: OK in $(($(now_ms) - t0)) ms"
