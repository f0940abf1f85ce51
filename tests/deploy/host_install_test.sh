#!/usr/bin/env bash
# install.sh / uninstall.sh into temporary roots: --dry-run changes nothing; a real
# install puts every file in place with the right modes and content; uninstall removes
# them and keeps state unless --purge.
# Usage: host_install_test.sh SOURCE_DIR WORK_DIR
set -euo pipefail
src=$1
work=$2
rm -rf "$work" && mkdir -p "$work"
fail=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fail=1; }

printf '#!/bin/sh\nexit 0\n' > "$work/lbcsi-helper"
chmod 0755 "$work/lbcsi-helper"
echo fake-module > "$work/lbcsi_helper.pp"
inst=$src/deploy/host/install.sh
uninst=$src/deploy/host/uninstall.sh

# Argument checks.
if "$inst" --prefix "$work/r0" >/dev/null 2>&1; then bad "install without --binary accepted"; else ok "--binary required"; fi
if "$inst" --prefix "$work/r0" --binary "$work/lbcsi-helper" --agent-uid 0 >/dev/null 2>&1; then
  bad "agent uid 0 accepted"; else ok "agent uid 0 refused"; fi

# Dry run: prints, creates nothing.
out=$("$inst" --prefix "$work/dry" --dry-run --binary "$work/lbcsi-helper")
[[ ! -e $work/dry ]] && ok "dry run created nothing" || bad "dry run wrote files"
grep -q "lbcsi-helper.service" <<<"$out" && ok "dry run lists the unit" || bad "dry run output: $out"

# Real install into a temp root.
r=$work/root
"$inst" --prefix "$r" --binary "$work/lbcsi-helper" --agent-uid 1234 --agent-gid 4321 \
  --kubelet-dir /data/kubelet --selinux-module "$work/lbcsi_helper.pp" > "$work/install.log"
for f in usr/local/libexec/lbcsi/lbcsi-helper etc/systemd/system/lbcsi-helper.service \
         etc/modules-load.d/lbcsi.conf etc/default/lbcsi-helper etc/tmpfiles.d/lbcsi.conf \
         usr/local/share/lbcsi/selinux/lbcsi_helper.pp usr/local/share/lbcsi/installed-files; do
  [[ -f $r/$f ]] && ok "installed /$f" || bad "missing /$f"
done
[[ $(stat -c %a "$r/usr/local/libexec/lbcsi/lbcsi-helper") == 755 ]] && ok "binary mode 755" || bad "binary mode"
for m in nvme-tcp dm_crypt xts; do grep -qx "$m" "$r/etc/modules-load.d/lbcsi.conf" && ok "$m loaded at boot" || bad "modules-load.d: $m"; done
grep -q -- '--allowed-uid=1234 --allowed-gid=4321' "$r/etc/default/lbcsi-helper" && ok "agent uid/gid passed" || bad "uid args"
grep -qx 'LBCSI_KUBELET_DIR=/data/kubelet' "$r/etc/default/lbcsi-helper" && ok "kubelet dir passed" || bad "kubelet dir"
grep -q -- '--plugin-socket-dir=/data/kubelet/plugins/csi.lightbitslabs.com' "$r/etc/default/lbcsi-helper" \
  && ok "plugin socket dir" || bad "plugin socket dir"
grep -qx 'd /var/lib/lbcsi-agent 0700 1234 4321 -' "$r/etc/tmpfiles.d/lbcsi.conf" && ok "agent state dir" || bad "tmpfiles"
grep -q "not starting anything" "$work/install.log" && ok "nothing started in a prefix" || bad "started something"
# The environment file must parse the way systemd reads it (shell-compatible assignments).
( set -a; . "$r/etc/default/lbcsi-helper"; [[ $LBCSI_HELPER_ARGS == --allowed-uid=1234* ]] ) \
  && ok "environment file parses" || bad "environment file does not parse"

# Uninstall keeps state unless --purge.
mkdir -p "$r/var/lib/lbcsi-helper" && echo s > "$r/var/lib/lbcsi-helper/state"
"$uninst" --prefix "$r" --dry-run > /dev/null
[[ -f $r/etc/systemd/system/lbcsi-helper.service ]] && ok "uninstall dry run kept files" || bad "dry run removed files"
"$uninst" --prefix "$r" > "$work/uninstall.log"
left=$(cd "$r" && find . -type f | grep -v '^./var/lib/lbcsi-helper/state$' || true)
[[ -z $left ]] && ok "uninstall removed every installed file" || bad "left behind: $left"
[[ -f $r/var/lib/lbcsi-helper/state ]] && ok "state kept without --purge" || bad "state removed"
"$inst" --prefix "$r" --binary "$work/lbcsi-helper" > /dev/null
"$uninst" --prefix "$r" --purge > /dev/null
[[ ! -e $r/var/lib/lbcsi-helper ]] && ok "--purge removed state" || bad "--purge kept state"
exit $fail
