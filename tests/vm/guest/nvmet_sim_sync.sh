#!/usr/bin/env bash
# nvmet_sim_sync.sh PROBE: checks nvmet.sh's export of a lightos-sim data dir (guest only).
# A fake data dir in lightos-sim's layout holds three volumes: one whose ACL lists this
# host, one ALLOW_NONE, one ALLOW_ANY. After sim-sync only the admitted ones are visible
# to a connected host; an ACL change plus a re-sync flips visibility; growing an image
# plus a re-sync grows the disk the host sees; a deleted image loses its namespace.
set -euo pipefail

probe=${1:?usage: nvmet_sim_sync.sh PATH/TO/vm_nvme_probe}
here=$(cd "$(dirname "$0")" && pwd)
[[ ${LBCSI_IN_VM:-} == 1 ]] || { echo "nvmet_sim_sync.sh runs inside the VM (run-in-vm.sh)"; exit 1; }
# shellcheck source=../nvmet.sh
. "$here/../nvmet.sh"
fail() { echo "FAIL: $*"; nvmet_show; exit 1; }

hostid=$(</proc/sys/kernel/random/uuid)
hostnqn=nqn.2014-08.org.nvmexpress:uuid:$hostid
nqn=nqn.2016-01.com.lightbitslabs:uuid:$(</proc/sys/kernel/random/uuid)
data=$(mktemp -d /var/tmp/sim-data.XXXXXX)
ctrl=""
cleanup() {
  set +e
  [[ -n $ctrl && -e /sys/class/nvme/$ctrl ]] && "$probe" disconnect --ctrl "$ctrl"
  nvmet_teardown
  rm -rf "$data"
}
trap cleanup EXIT

mkdir "$data/volumes"
mine=$(</proc/sys/kernel/random/uuid) none=$(</proc/sys/kernel/random/uuid)
any=$(</proc/sys/kernel/random/uuid)
for v in "$mine" "$none" "$any"; do truncate -s 64M "$data/volumes/$v.img"; done
printf '%s\n' "nqn.2014-08.org.example:other-host" "$hostnqn" >"$data/volumes/$mine.acl"
echo ALLOW_NONE >"$data/volumes/$none.acl"
echo ALLOW_ANY >"$data/volumes/$any.acl"

nvmet_need_cfg
nvmet_sim_sync "$nqn" "$data" "$hostnqn"
nvmet_port_add "$nqn" 1 127.0.0.1 4420
nvmet_show
ctrl=$("$probe" connect --nqn "$nqn" --traddr 127.0.0.1 --trsvcid 4420 --hostnqn "$hostnqn" \
  --hostid "$hostid")
"$probe" find --uuid "$mine" --timeout-ms 10000 || fail "volume with this host in its ACL not visible"
"$probe" find --uuid "$any" --timeout-ms 10000 || fail "ALLOW_ANY volume not visible"
"$probe" absent --uuid "$none" --wait-ms 200 || fail "ALLOW_NONE volume is visible"

# ACL changes: revoke "mine", admit "none".
echo ALLOW_NONE >"$data/volumes/$mine.acl"
echo "$hostnqn" >"$data/volumes/$none.acl"
nvmet_sim_sync "$nqn" "$data" "$hostnqn"
"$probe" gone --uuid "$mine" --timeout-ms 10000 || fail "revoked volume still visible"
found=$("$probe" find --uuid "$none" --timeout-ms 10000) || fail "newly admitted volume not visible"
echo "admitted after the ACL change: $found"

# Expand: grow the image, re-sync, the host sees the new size (512-byte sectors).
dev=$(sed -n 's/.*dev=\([^ ]*\).*/\1/p' <<<"$found")
[[ $(</sys/block/${dev#/dev/}/size) == $((64 * 2048)) ]] || fail "unexpected size before growing"
truncate -s 96M "$data/volumes/$none.img"
nvmet_sim_sync "$nqn" "$data" "$hostnqn"
for _ in $(seq 50); do
  [[ $(</sys/block/${dev#/dev/}/size) == $((96 * 2048)) ]] && break
  read -r -t 0.1 <> <(:) || true   # a 100 ms wait without a fork+exec of sleep
done
[[ $(</sys/block/${dev#/dev/}/size) == $((96 * 2048)) ]] ||
  fail "host still sees $(</sys/block/${dev#/dev/}/size) sectors after growing to 96 MiB"
echo "grown to 96 MiB: $dev has $(</sys/block/${dev#/dev/}/size) sectors"

# Delete: the image goes, so does the namespace.
rm "$data/volumes/$any.img" "$data/volumes/$any.acl"
nvmet_sim_sync "$nqn" "$data" "$hostnqn"
"$probe" gone --uuid "$any" --timeout-ms 10000 || fail "deleted volume still visible"
nvmet_nsid_of "$nqn" "$any" && fail "deleted volume still has a namespace"
echo "vm_nvmet_sim_sync: OK"
