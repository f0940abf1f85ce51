#!/usr/bin/env bash
# Checks deploy/systemd/lbcsi-helper.service:
#  1. `systemd-analyze verify` accepts it (ExecStart pointed at an existing file);
#  2. it uses no setting that gives the service its own mount namespace: systemd makes
#     every mount in such a namespace a slave, so the helper's mounts would never reach
#     kubelet (systemd.exec(5), PrivateMounts= and MountFlags=);
#  3. `systemd-analyze security --offline=yes` scores it at most MAX_EXPOSURE.
# MAX_EXPOSURE is 4.1, the measured score: what remains exposed is what the helper's job
# needs (root with CAP_SYS_ADMIN, the host network for NVMe/TCP, @mount and @privileged
# syscalls) or what mount propagation forbids (the namespacing options above, worth
# about 2.1 of the 4.1). Any new exposure fails this test.
# Usage: systemd_unit_test.sh SOURCE_DIR WORK_DIR
set -euo pipefail
src=$1
work=$2
MAX_EXPOSURE=4.1
unit=$src/deploy/systemd/lbcsi-helper.service
rm -rf "$work" && mkdir -p "$work"
fail=0

command -v systemd-analyze >/dev/null || { echo "FAIL: systemd-analyze missing"; exit 1; }

printf '#!/bin/sh\nexit 0\n' > "$work/lbcsi-helper"
chmod 0755 "$work/lbcsi-helper"
sed "s#/usr/local/libexec/lbcsi/lbcsi-helper#$work/lbcsi-helper#" "$unit" > "$work/lbcsi-helper.service"
grep -q "ExecStart=$work/lbcsi-helper" "$work/lbcsi-helper.service" || { echo "FAIL: ExecStart not found"; exit 1; }

if out=$(systemd-analyze verify "$work/lbcsi-helper.service" 2>&1) && [[ -z $out ]]; then
  echo "ok   systemd-analyze verify"
else
  echo "FAIL systemd-analyze verify:"; echo "$out"; fail=1
fi

# A unit that points at a missing binary must fail verify (the check can fail).
sed "s#$work/lbcsi-helper #$work/missing-helper #" "$work/lbcsi-helper.service" > "$work/broken.service"
if systemd-analyze verify "$work/broken.service" >/dev/null 2>&1; then
  echo "FAIL verify accepted a missing ExecStart binary"; fail=1
else
  echo "ok   verify rejects a missing binary"
fi

ns_settings='^(PrivateMounts|PrivateTmp|PrivateDevices|ProtectSystem|ProtectHome|ReadWritePaths|ReadOnlyPaths|InaccessiblePaths|ExecPaths|NoExecPaths|TemporaryFileSystem|BindPaths|BindReadOnlyPaths|ProtectKernelTunables|ProtectKernelModules|ProtectKernelLogs|ProtectControlGroups|ProtectProc|ProcSubset|RootDirectory|RootImage|MountAPIVFS|PrivateNetwork|PrivateUsers|NetworkNamespacePath|IPAddressDeny|MountFlags)='
if grep -En "$ns_settings" "$unit"; then
  echo "FAIL the unit sets a mount-namespace (or network-isolating) option listed above"; fail=1
else
  echo "ok   no mount namespace: the helper's mounts propagate to the host"
fi

for want in 'NoNewPrivileges=yes' 'SystemCallArchitectures=native' 'RestrictAddressFamilies=AF_UNIX AF_NETLINK' \
            'CapabilityBoundingSet=CAP_SYS_ADMIN CAP_CHOWN CAP_FOWNER CAP_SYS_RESOURCE' \
            'AmbientCapabilities=' 'DevicePolicy=closed' 'RuntimeDirectory=lbcsi' 'RuntimeDirectoryPreserve=yes'; do
  if grep -qxF "$want" "$unit"; then echo "ok   $want"; else echo "FAIL missing: $want"; fail=1; fi
done

if ! systemd-analyze security --help 2>&1 | grep -q -- '--offline'; then
  echo "FAIL systemd-analyze has no --offline"; exit 1
fi
report=$(systemd-analyze security --offline=yes --no-pager "$work/lbcsi-helper.service" 2>&1) || true
score=$(echo "$report" | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
[[ -n $score ]] || { echo "FAIL no exposure score in:"; echo "$report"; exit 1; }
echo "systemd-analyze security exposure score: $score (limit $MAX_EXPOSURE)"
echo "$report" | grep -E '^✗' | sed 's/  */ /g' | cut -c1-110 | sed 's/^/    /'
if awk -v s="$score" -v m="$MAX_EXPOSURE" 'BEGIN { exit !(s <= m) }'; then
  echo "ok   exposure $score <= $MAX_EXPOSURE"
else
  echo "FAIL exposure $score > $MAX_EXPOSURE"; fail=1
fi
exit $fail
