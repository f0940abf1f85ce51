#!/usr/bin/env bash
# Removes what install.sh installed on this node.
#
#   uninstall.sh [--prefix DIR] [--dry-run] [--purge]
#
# Drain the node first (no lbcsi volume may stay mounted: the helper is what unmounts).
# --purge also deletes the helper's and the agent's state (/var/lib/lbcsi-helper,
# /var/lib/lbcsi-agent); without it they stay for a later reinstall.
set -euo pipefail
prefix=/
dry_run=0
purge=0
while [[ $# -gt 0 ]]; do
  case $1 in
    --prefix) prefix=$2; shift 2 ;;
    --dry-run) dry_run=1; shift ;;
    --purge) purge=1; shift ;;
    -h|--help) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "uninstall.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
prefix=${prefix%/}
live=0
[[ -z $prefix ]] && live=1
run() {
  echo "+ $*"
  [[ $dry_run == 1 ]] || "$@"
}
list=/usr/local/share/lbcsi/installed-files
[[ -f $prefix$list ]] || { echo "uninstall.sh: $prefix$list not found: nothing installed" >&2; exit 1; }

if [[ $live == 1 ]]; then
  run systemctl disable --now lbcsi-helper.service || true
  if command -v semodule >/dev/null && semodule -l 2>/dev/null | grep -qx 'lbcsi_helper'; then
    run semodule -r lbcsi_helper
  fi
fi
mapfile -t files < "$prefix$list"
for f in "${files[@]}"; do
  [[ $f == /* && $f != *..* ]] || { echo "skipping odd entry $f" >&2; continue; }
  [[ -e $prefix$f ]] && run rm -f "$prefix$f"
done
for d in /usr/local/libexec/lbcsi /usr/local/share/lbcsi/selinux /usr/local/share/lbcsi \
         /etc/systemd/system/lbcsi-helper.service.d; do
  [[ -d $prefix$d ]] && run rmdir --ignore-fail-on-non-empty "$prefix$d"
done
if [[ $purge == 1 ]]; then
  run rm -rf "$prefix/var/lib/lbcsi-helper" "$prefix/var/lib/lbcsi-agent" "$prefix/run/lbcsi"
fi
[[ $live == 1 ]] && run systemctl daemon-reload
echo "uninstall.sh: done"
