#!/usr/bin/env bash
# sim_sync_loop.sh NQN DATA_DIR HOSTNQN [INTERVAL_S]: keeps the kernel NVMe target in step
# with a running lightos-sim (guest only). Every INTERVAL_S (default 0.1) it looks at
# DATA_DIR/volumes and, when a file appeared, went away or changed (an ACL rewrite, an
# expand), runs nvmet_sim_sync: one namespace per volume image, enabled only while the
# volume's ACL admits HOSTNQN, sizes re-read, namespaces of deleted images removed.
#
# An idle round costs no fork: a glob, a few stat()s against a marker file and a read
# with a timeout on a pipe that never delivers. A full sync also runs every 10th round
# regardless: an ACL file written before the marker and renamed into place after it has
# an old mtime, so the quick check alone could miss it. Each sync runs in a subshell so
# that an error (nvmet.sh exits on one) is logged and the loop goes on. It ends when DATA_DIR
# goes away; whoever starts it also kills it (it starts it as a process group leader).
set -uo pipefail

nqn=${1:?usage: sim_sync_loop.sh NQN DATA_DIR HOSTNQN [INTERVAL_S]}
data=${2:?}
host=${3:?}
interval=${4:-0.1}
here=$(cd "${BASH_SOURCE[0]%/*}" && pwd)
# shellcheck source=../nvmet.sh
. "$here/../nvmet.sh"
nvmet_need_cfg

marker=/run/sim-sync-loop.$$
trap 'rm -f "$marker"' EXIT
: >"$marker"
exec {tick}<> <(:)
last=
syncs=0
round=0
while [[ -d $data ]]; do
  files=("$data"/volumes/*)
  list=${files[*]}
  changed=0
  round=$((round + 1))
  if [[ $list != "$last" ]] || ((round % 10 == 0)); then
    changed=1
  else
    for f in "${files[@]}"; do
      if [[ $f -nt $marker ]]; then changed=1; break; fi
    done
  fi
  if ((changed)); then
    # Marked before the sync: a change made while it runs is seen next round.
    : >"$marker"
    last=$list
    if (nvmet_sim_sync "$nqn" "$data" "$host"); then
      syncs=$((syncs + 1))
    else
      echo "sim_sync_loop: sync failed (retried on the next change or full round)" >&2
    fi
  fi
  read -r -t "$interval" -u "$tick" || true
done
echo "sim_sync_loop: $data is gone after $syncs syncs"
