#!/usr/bin/env bash
# nvmet.sh: drives the Linux kernel NVMe target (nvmet, nvmet-tcp) through configfs.
# Runs inside the test guest (run-in-vm.sh mounts configfs and loads the modules).
#
#   nvmet.sh subsys NQN                       create the subsystem (any host may connect)
#   nvmet.sh allow-host NQN HOSTNQN           restrict the subsystem to listed hosts (+HOSTNQN)
#   nvmet.sh port-add NQN PORTID ADDR SVCID   listen on tcp ADDR:SVCID and expose NQN there
#   nvmet.sh port-remove NQN PORTID           stop exposing NQN on the port (path loss); the
#                                             port is deleted when nothing else uses it
#   nvmet.sh ns-add NQN NSID UUID PATH [--disabled]
#                                             namespace backed by PATH (a regular file, used
#                                             through the page cache, or a block device);
#                                             its UUID and NGUID are both UUID
#   nvmet.sh ns-enable|ns-disable NQN NSID    make the namespace visible / invisible to hosts
#   nvmet.sh ns-resize NQN NSID               re-read the backing size (after growing it) and
#                                             tell connected hosts
#   nvmet.sh ns-remove NQN NSID
#   nvmet.sh nsid-of NQN UUID                 print the NSID whose UUID is UUID (exit 1: none)
#   nvmet.sh sim-sync NQN DATA_DIR HOSTNQN    mirror lightos-sim's volumes into namespaces
#   nvmet.sh teardown                         remove every port, subsystem and host
#   nvmet.sh show                             print the target's configuration
#
# Per-volume ACLs: nvmet allows hosts per subsystem, not per namespace, so a volume's
# ACL is emulated by enabling its namespace only while the ACL admits the host.
#
# Sourcing this file (`. nvmet.sh`) defines the same operations as shell functions
# (nvmet_subsys, nvmet_port_add, nvmet_ns_add, nvmet_ns_set NQN NSID 0|1, ...) without
# running anything: under TCG every new bash costs a few hundred ms, a function nothing.
# The functions exit the calling shell on error.

nvmet_cfg=${NVMET_CONFIGFS:-/sys/kernel/config/nvmet}

nvmet_die() { echo "nvmet.sh: $*" >&2; exit 1; }
nvmet_need_cfg() {
  [[ -d $nvmet_cfg ]] || modprobe nvmet 2>/dev/null || true
  [[ -d $nvmet_cfg ]] || nvmet_die "no nvmet configfs at $nvmet_cfg (configfs mounted? nvmet loaded?)"
}
nvmet_put() { printf '%s' "$2" >"$1" || nvmet_die "cannot write '$2' to $1"; }
nvmet_is_uuid() { [[ $1 =~ ^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$ ]]; }

nvmet_subsys() {
  local s=$nvmet_cfg/subsystems/$1
  [[ -d $s ]] && return 0
  mkdir "$s"
  nvmet_put "$s/attr_allow_any_host" 1
  # Serial and model show up in the host's sysfs; keep them recognisable.
  [[ -e $s/attr_serial ]] && nvmet_put "$s/attr_serial" "lbcsivm$RANDOM$RANDOM"
  [[ -e $s/attr_model ]] && nvmet_put "$s/attr_model" "lbcsi-vm nvmet"
  return 0
}

nvmet_allow_host() {
  local s=$nvmet_cfg/subsystems/$1 h=$nvmet_cfg/hosts/$2
  [[ -d $s ]] || nvmet_die "no subsystem $1"
  [[ -d $h ]] || mkdir "$h"
  [[ -L $s/allowed_hosts/$2 ]] || ln -s "$h" "$s/allowed_hosts/$2"
  nvmet_put "$s/attr_allow_any_host" 0
}

nvmet_port_add() {
  local nqn=$1 addr=$3 svc=$4 p=$nvmet_cfg/ports/$2
  [[ -d $nvmet_cfg/subsystems/$nqn ]] || nvmet_die "no subsystem $nqn"
  if [[ ! -d $p ]]; then
    mkdir "$p"
    nvmet_put "$p/addr_trtype" tcp
    if [[ $addr == *:* ]]; then nvmet_put "$p/addr_adrfam" ipv6; else nvmet_put "$p/addr_adrfam" ipv4; fi
    nvmet_put "$p/addr_traddr" "$addr"
    nvmet_put "$p/addr_trsvcid" "$svc"
  fi
  [[ -L $p/subsystems/$nqn ]] || ln -s "$nvmet_cfg/subsystems/$nqn" "$p/subsystems/$nqn"
}

nvmet_port_remove() {
  local nqn=$1 p=$nvmet_cfg/ports/$2
  [[ -d $p ]] || nvmet_die "no port $2"
  [[ -L $p/subsystems/$nqn ]] && rm "$p/subsystems/$nqn"
  # An empty port still listens: delete it so connects to it fail fast.
  if ! compgen -G "$p/subsystems/*" >/dev/null && ! compgen -G "$p/referrals/*" >/dev/null; then
    rmdir "$p"
  fi
}

nvmet_ns_add() {
  local nqn=$1 nsid=$2 uuid=$3 path=$4 state=${5:-}
  local n=$nvmet_cfg/subsystems/$1/namespaces/$2
  nvmet_is_uuid "$uuid" || nvmet_die "bad UUID '$uuid' (want the dashed 36-character form)"
  [[ -d $nvmet_cfg/subsystems/$nqn ]] || nvmet_die "no subsystem $nqn"
  [[ -e $path ]] || nvmet_die "no backing $path"
  [[ -d $n ]] && nvmet_die "namespace $nsid of $nqn exists"
  mkdir "$n"
  nvmet_put "$n/device_path" "$path"
  # Files on tmpfs/overlay have no O_DIRECT: use the page cache.
  [[ -f $path ]] && nvmet_put "$n/buffered_io" 1
  # Both IDs must be set before the namespace is enabled.
  nvmet_put "$n/device_uuid" "${uuid,,}"
  nvmet_put "$n/device_nguid" "${uuid,,}"
  [[ $state == --disabled ]] || nvmet_put "$n/enable" 1
}

nvmet_ns_set() {
  local n=$nvmet_cfg/subsystems/$1/namespaces/$2
  [[ -d $n ]] || nvmet_die "no namespace $2 in $1"
  [[ $(<"$n/enable") == "$3" ]] || nvmet_put "$n/enable" "$3"
}

nvmet_ns_resize() {
  local n=$nvmet_cfg/subsystems/$1/namespaces/$2
  [[ -e $n/revalidate_size ]] || nvmet_die "this kernel's nvmet cannot revalidate a namespace's size"
  nvmet_put "$n/revalidate_size" 1
}

nvmet_ns_remove() {
  local n=$nvmet_cfg/subsystems/$1/namespaces/$2
  [[ -d $n ]] || return 0
  nvmet_put "$n/enable" 0
  rmdir "$n"
}

nvmet_nsid_of() {
  local f want=${2,,}
  for f in "$nvmet_cfg/subsystems/$1"/namespaces/*/device_uuid; do
    [[ -e $f ]] || continue
    if [[ $(<"$f") == "$want" ]]; then
      f=${f%/device_uuid}
      echo "${f##*/}"
      return 0
    fi
  done
  return 1
}

# Does the ACL file admit the host? Values: host NQNs, ALLOW_ANY or ALLOW_NONE.
nvmet_acl_admits() {
  local line
  [[ -r $1 ]] || return 1
  while IFS= read -r line || [[ -n $line ]]; do
    [[ $line == ALLOW_ANY || $line == "$2" ]] && return 0
  done <"$1"
  return 1
}

# lightos-sim keeps DATA_DIR/volumes/<uuid>.img (data) and <uuid>.acl (ACL, one value a
# line, absent while the volume is being deleted). One namespace per image, enabled iff
# the ACL admits HOSTNQN; namespaces whose image is gone are removed; sizes re-read.
nvmet_sim_sync() {
  local nqn=$1 dir=$2/volumes host=$3 img uuid nsid n used f
  nvmet_subsys "$nqn"
  for img in "$dir"/*.img; do
    [[ -f $img ]] || continue
    uuid=${img##*/}
    uuid=${uuid%.img}
    nvmet_is_uuid "$uuid" || continue
    if ! nsid=$(nvmet_nsid_of "$nqn" "$uuid"); then
      nsid=1
      while [[ -d $nvmet_cfg/subsystems/$nqn/namespaces/$nsid ]]; do nsid=$((nsid + 1)); done
      nvmet_ns_add "$nqn" "$nsid" "$uuid" "$img" --disabled
    fi
    n=$nvmet_cfg/subsystems/$nqn/namespaces/$nsid
    if nvmet_acl_admits "$dir/$uuid.acl" "$host"; then
      nvmet_ns_set "$nqn" "$nsid" 1
      [[ -e $n/revalidate_size ]] && nvmet_put "$n/revalidate_size" 1
    else
      nvmet_ns_set "$nqn" "$nsid" 0
    fi
  done
  for f in "$nvmet_cfg/subsystems/$nqn"/namespaces/*/device_path; do
    [[ -e $f ]] || continue
    used=$(<"$f")
    if [[ $used == "$dir"/*.img && ! -e $used ]]; then
      f=${f%/device_path}
      nvmet_ns_remove "$nqn" "${f##*/}"
    fi
  done
}

nvmet_teardown() {
  local p s h n l
  [[ -d $nvmet_cfg ]] || return 0
  for p in "$nvmet_cfg"/ports/*; do
    [[ -d $p ]] || continue
    for l in "$p"/subsystems/*; do [[ -L $l ]] && rm "$l"; done
    rmdir "$p"
  done
  for s in "$nvmet_cfg"/subsystems/*; do
    [[ -d $s ]] || continue
    for h in "$s"/allowed_hosts/*; do [[ -L $h ]] && rm "$h"; done
    for n in "$s"/namespaces/*; do
      [[ -d $n ]] || continue
      echo 0 >"$n/enable"
      rmdir "$n"
    done
    rmdir "$s"
  done
  for h in "$nvmet_cfg"/hosts/*; do [[ -d $h ]] && rmdir "$h"; done
  return 0
}

nvmet_show() {
  local s n p
  for s in "$nvmet_cfg"/subsystems/*; do
    [[ -d $s ]] || continue
    echo "subsystem $(basename "$s") allow_any_host=$(<"$s/attr_allow_any_host")"
    for n in "$s"/namespaces/*; do
      [[ -d $n ]] || continue
      echo "  ns $(basename "$n") uuid=$(<"$n/device_uuid") enable=$(<"$n/enable") path=$(<"$n/device_path")"
    done
  done
  for p in "$nvmet_cfg"/ports/*; do
    [[ -d $p ]] || continue
    echo "port $(basename "$p") $(<"$p/addr_trtype") $(<"$p/addr_traddr"):$(<"$p/addr_trsvcid") -> $(ls "$p/subsystems" | tr '\n' ' ')"
  done
}

nvmet_main() {
  local cmd=${1:-}
  [[ -n $cmd && $cmd != -h && $cmd != --help ]] || nvmet_usage
  shift
  nvmet_need_cfg
  case $cmd in
    subsys) [[ $# -eq 1 ]] || nvmet_usage; nvmet_subsys "$1" ;;
    allow-host) [[ $# -eq 2 ]] || nvmet_usage; nvmet_allow_host "$@" ;;
    port-add) [[ $# -eq 4 ]] || nvmet_usage; nvmet_port_add "$@" ;;
    port-remove) [[ $# -eq 2 ]] || nvmet_usage; nvmet_port_remove "$@" ;;
    ns-add) [[ $# -eq 4 || $# -eq 5 ]] || nvmet_usage; nvmet_ns_add "$@" ;;
    ns-enable) [[ $# -eq 2 ]] || nvmet_usage; nvmet_ns_set "$1" "$2" 1 ;;
    ns-disable) [[ $# -eq 2 ]] || nvmet_usage; nvmet_ns_set "$1" "$2" 0 ;;
    ns-resize) [[ $# -eq 2 ]] || nvmet_usage; nvmet_ns_resize "$@" ;;
    ns-remove) [[ $# -eq 2 ]] || nvmet_usage; nvmet_ns_remove "$@" ;;
    nsid-of) [[ $# -eq 2 ]] || nvmet_usage; nvmet_nsid_of "$@" ;;
    sim-sync) [[ $# -eq 3 ]] || nvmet_usage; nvmet_sim_sync "$@" ;;
    teardown) nvmet_teardown ;;
    show) nvmet_show ;;
    *) nvmet_usage ;;
  esac
}
nvmet_usage() { sed -n '2,30p' "${BASH_SOURCE[0]}" >&2; exit 2; }

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  set -euo pipefail
  nvmet_main "$@"
fi
