#!/usr/bin/env bash
# Integration test of the README's tooling against the build under test (no install, no build):
# scripts/stack start -> GetPluginInfo on both sockets, agent unprivileged -> scripts/demo
# --no-build (the whole CSI walk) -> scripts/stack stop -> nothing left behind (processes,
# mounts, loop devices, directories). Needs root; run through ctest (LBCSI_BUILD_DIR).
set -euo pipefail
src=${LBCSI_SOURCE_DIR:?run through ctest}
build=${LBCSI_BUILD_DIR:?run through ctest}
if [[ $(id -u) -ne 0 ]]; then
  if [[ ${CI:-} == true ]]; then
    echo "FAIL: needs root (loop devices, mounts) and CI=true"
    exit 1
  fi
  echo "SKIP: needs root (loop devices, mounts)"
  exit 77
fi
LBCSI_REPO=$src  # read by the library
# shellcheck source-path=SCRIPTDIR source=../../scripts/lib/stack.sh
. "$src/scripts/lib/stack.sh"

work=$(mktemp -d /tmp/lbcsi-scripts-test.XXXXXX)
chmod 0755 "$work"  # the agent's uid must reach the stacks below it
export LBCSI_BUILD_DIR=$build LBCSI_STACK_DIR=$work/stack TMPDIR=$work
finish() {
  local rc=$?
  "$src/scripts/stack" stop >/dev/null 2>&1 || true
  rm -rf --one-file-system "$work" 2>/dev/null || true
  exit "$rc"
}
trap finish EXIT
fail() {
  echo "FAIL: $*"
  exit 1
}

echo "== scripts/stack start --no-build"
"$src/scripts/stack" start --no-build
eval "$("$src/scripts/stack" env)"
for ep in "$LBCSI_CONTROLLER_ENDPOINT" "$LBCSI_NODE_ENDPOINT"; do
  name=$("$CSICTL" -e "$ep" --json GetPluginInfo | jq -r .name)
  [[ $name == csi.lightbitslabs.com ]] || fail "GetPluginInfo on $ep: '$name'"
  echo "GetPluginInfo on $ep: $name"
done
agent_pid=$(cat "$LBCSI_STACK_DIR/run/agent.pid")
read -r _ ruid euid _ < <(grep '^Uid:' "/proc/$agent_pid/status")
[[ $ruid == 65534 && $euid == 65534 ]] || fail "agent runs as uid $ruid/$euid, not 65534"
grep -q '^CapEff:[[:space:]]*0000000000000000$' "/proc/$agent_pid/status" ||
  fail "agent has capabilities: $(grep CapEff "/proc/$agent_pid/status")"
"$src/scripts/stack" status || fail "stack status reports a problem while running"
# The agent got its socket directory from the helper (PrepareSocketDir), as in a deployment:
# the agent's, group root (the helper's way in), with a root-only ephemeral/ inside.
plugin_dir=$LBCSI_STACK_DIR/kubelet/plugins/csi.lightbitslabs.com
[[ $(stat -c '%u:%g %a' "$plugin_dir") == "65534:0 750" ]] ||
  fail "plugin dir is $(stat -c '%u:%g %a' "$plugin_dir"), not 65534:0 750"
[[ $(stat -c '%u:%g %a' "$plugin_dir/ephemeral") == "0:0 750" ]] ||
  fail "ephemeral dir is $(stat -c '%u:%g %a' "$plugin_dir/ephemeral"), not 0:0 750"

echo "== scripts/demo --no-build (while the stack runs beside it)"
"$src/scripts/demo" --no-build || fail "scripts/demo failed"

echo "== scripts/stack stop"
"$src/scripts/stack" stop
if "$src/scripts/stack" status >/dev/null 2>&1; then fail "stack status succeeds after stop"; fi

echo "== nothing left under $work"
leftover=()
for c in /proc/[0-9]*/cmdline; do
  cmd=$(tr '\0' ' ' <"$c" 2>/dev/null) || continue
  if [[ $cmd == *"$work/"* ]]; then leftover+=("${c#/proc/}"); fi
done
((${#leftover[@]} == 0)) || fail "processes left: ${leftover[*]%/cmdline}"
[[ -z $(stack_mounts "$work") ]] || fail "mounts left: $(stack_mounts "$work")"
[[ -z $(stack_loops "$work") ]] || fail "loop devices left: $(stack_loops "$work")"
[[ -z $(ls -A "$work") ]] || fail "files left in $work: $(ls -A "$work")"
echo "PASS: no processes, mounts, loop devices or files left"
