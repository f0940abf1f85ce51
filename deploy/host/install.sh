#!/usr/bin/env bash
# Installs lbcsi-helper as a confined host service (the hardened mode) on one node.
#
#   install.sh --binary PATH [--prefix DIR] [--dry-run] [--agent-uid N] [--agent-gid N]
#              [--kubelet-dir DIR] [--driver-name NAME] [--selinux-module FILE.pp]
#              [--no-start]
#
# --prefix installs into another root (image building, tests); nothing is started then.
# --dry-run prints every step and changes nothing.
# Files: the binary, the systemd unit (+ SELinux drop-in when SELinux is on), site
# arguments in /etc/default/lbcsi-helper, /etc/modules-load.d/lbcsi.conf (nvme-tcp),
# /etc/tmpfiles.d/lbcsi.conf (the agent's state directory), the SELinux module.
# The list of installed files goes to <prefix>/usr/local/share/lbcsi/installed-files
# for uninstall.sh.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
deploy=$(dirname "$here")

prefix=/
dry_run=0
start=1
binary=
agent_uid=65532
agent_gid=65532
kubelet_dir=/var/lib/kubelet
driver_name=csi.lightbitslabs.com
selinux_module=

usage() { sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-2}"; }
while [[ $# -gt 0 ]]; do
  case $1 in
    --prefix) prefix=$2; shift 2 ;;
    --dry-run) dry_run=1; shift ;;
    --no-start) start=0; shift ;;
    --binary) binary=$2; shift 2 ;;
    --agent-uid) agent_uid=$2; shift 2 ;;
    --agent-gid) agent_gid=$2; shift 2 ;;
    --kubelet-dir) kubelet_dir=$2; shift 2 ;;
    --driver-name) driver_name=$2; shift 2 ;;
    --selinux-module) selinux_module=$2; shift 2 ;;
    -h|--help) usage 0 ;;
    *) echo "install.sh: unknown argument $1" >&2; usage ;;
  esac
done

die() { echo "install.sh: $*" >&2; exit 1; }
[[ -n $binary ]] || die "--binary PATH is required (the release build of lbcsi-helper)"
[[ -f $binary && -x $binary ]] || die "$binary is not an executable file"
[[ $agent_uid =~ ^[1-9][0-9]*$ && $agent_gid =~ ^[1-9][0-9]*$ ]] \
  || die "--agent-uid/--agent-gid must be non-zero numbers"
[[ $kubelet_dir == /* ]] || die "--kubelet-dir must be absolute"
[[ $driver_name =~ ^[a-z0-9.-]+$ ]] || die "bad --driver-name"
[[ -z $selinux_module || -f $selinux_module ]] || die "$selinux_module not found"
prefix=${prefix%/}
live=0
[[ -z $prefix ]] && live=1
if [[ $live == 1 && $dry_run == 0 && $(id -u) != 0 ]]; then die "run as root"; fi

run() {  # prints, and runs unless --dry-run
  echo "+ $*"
  [[ $dry_run == 1 ]] || "$@"
}
installed=()
put() {  # put MODE SRC DEST (DEST relative to the prefix)
  run install -D -m "$1" "$2" "$prefix$3"
  installed+=("$3")
}
put_text() {  # put_text MODE DEST TEXT
  echo "+ write $prefix$2"
  if [[ $dry_run == 0 ]]; then
    install -d -m 0755 "$(dirname "$prefix$2")"
    printf '%s\n' "$3" > "$prefix$2"
    chmod "$1" "$prefix$2"
  fi
  installed+=("$2")
}

put 0755 "$binary" /usr/local/libexec/lbcsi/lbcsi-helper
put 0644 "$deploy/systemd/lbcsi-helper.service" /etc/systemd/system/lbcsi-helper.service
put 0644 "$here/modules-load-lbcsi.conf" /etc/modules-load.d/lbcsi.conf
put_text 0644 /etc/default/lbcsi-helper \
"# Written by lbcsi install.sh: site arguments of lbcsi-helper.
LBCSI_KUBELET_DIR=$kubelet_dir
LBCSI_HELPER_ARGS=\"--allowed-uid=$agent_uid --allowed-gid=$agent_gid --agent-uid=$agent_uid --plugin-socket-dir=$kubelet_dir/plugins/$driver_name --registration-dir=$kubelet_dir/plugins_registry/$driver_name --driver-name=$driver_name\""
put_text 0644 /etc/tmpfiles.d/lbcsi.conf \
"# lbcsi: the node agent's state directory, owned by the agent pod's uid.
d /var/lib/lbcsi-agent 0700 $agent_uid $agent_gid -"

selinux_on=0
if [[ $live == 1 ]] && command -v selinuxenabled >/dev/null && selinuxenabled; then
  selinux_on=1
fi
if [[ -n $selinux_module ]]; then
  put 0644 "$selinux_module" /usr/local/share/lbcsi/selinux/lbcsi_helper.pp
fi
if [[ $selinux_on == 1 ]]; then
  [[ -n $selinux_module ]] || die "SELinux is enabled: pass --selinux-module lbcsi_helper.pp"
  put_text 0644 /etc/systemd/system/lbcsi-helper.service.d/selinux.conf \
"[Service]
# Fail to start rather than run outside the lbcsi_helper_t domain.
SELinuxContext=system_u:system_r:lbcsi_helper_t:s0"
  run semodule -i "$selinux_module"
  run restorecon -R /usr/local/libexec/lbcsi /var/lib/lbcsi-helper /run/lbcsi
  run restorecon /dev/nvme-fabrics || true
fi

list=/usr/local/share/lbcsi/installed-files
put_text 0644 "$list" "$(printf '%s\n' "${installed[@]}" "$list")"

if [[ $live == 1 && $start == 1 ]]; then
  run systemctl daemon-reload
  run systemd-tmpfiles --create /etc/tmpfiles.d/lbcsi.conf
  # Loads nvme-tcp now, as it will be at every boot.
  run systemctl restart systemd-modules-load.service
  run systemctl enable --now lbcsi-helper.service
else
  echo "not starting anything (prefix $prefix, --no-start or --dry-run)"
fi
echo "install.sh: done"
