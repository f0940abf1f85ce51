#!/usr/bin/env bash
# csi-sanity (the Kubernetes CSI project's conformance tool) against the local stack:
# scripts/stack start --no-build on the binaries of LBCSI_BUILD_DIR (default build/demo),
# csi-sanity with the parameters and secrets the stack writes, scripts/stack stop.
#
#   tests/conformance/csi_sanity.sh [extra csi-sanity flags, e.g. --ginkgo.focus=Node]
#
# Prints csi-sanity's report and one summary line "csi-sanity: N passed, N failed, N skipped";
# exits non-zero when a spec failed, or when anything was left behind. Needs root. The
# skips and why they are skips: tests/conformance/README.md.
set -euo pipefail
LBCSI_REPO=$(realpath "$(dirname "$0")/../..")
# shellcheck source=../../tools/versions.env
. "$LBCSI_REPO/tools/versions.env"
sanity=$LBCSI_REPO/build/tools/csi-sanity-$CSI_SANITY_VERSION/csi-sanity
[[ -x $sanity ]] || "$LBCSI_REPO/scripts/install-deps"
[[ $(id -u) -eq 0 ]] || { echo "csi_sanity.sh: needs root (loop devices, mounts)" >&2; exit 1; }

work=$(mktemp -d /tmp/lbcsi-sanity.XXXXXX)
chmod 0755 "$work"  # the agent's uid must reach the stack below it
export LBCSI_STACK_DIR=$work/stack
export LBCSI_BUILD_DIR=${LBCSI_BUILD_DIR:-$LBCSI_REPO/build/demo}
finish() {
  local rc=$?
  if ((rc != 0)) && [[ -d $LBCSI_STACK_DIR/logs ]]; then
    for f in "$LBCSI_STACK_DIR"/logs/*.log; do
      echo "---- last 20 lines of ${f##*/} ----"
      tail -n 20 "$f"
    done
  fi
  "$LBCSI_REPO/scripts/stack" stop >/dev/null 2>&1 || true
  rm -rf --one-file-system "$work"
  exit "$rc"
}
trap finish EXIT

"$LBCSI_REPO/scripts/stack" start --no-build >"$work/stack-start.log" 2>&1 || {
  cat "$work/stack-start.log"
  exit 1
}
eval "$("$LBCSI_REPO/scripts/stack" env)"

# The driver accepts only kubelet's CSI path layouts (kubeletpaths/); the stack writes two
# commands that make layout-shaped staging and target directories for csi-sanity.
rc=0
"$sanity" --csi.endpoint="$LBCSI_NODE_ENDPOINT" \
  --csi.controllerendpoint="$LBCSI_CONTROLLER_ENDPOINT" \
  --csi.stagingdir=csi-sanity --csi.mountdir=csi-sanity \
  --csi.createstagingpathcmd="$LBCSI_STACK_DIR/csi-sanity/make-staging-path" \
  --csi.createmountpathcmd="$LBCSI_STACK_DIR/csi-sanity/make-target-path" \
  --csi.testvolumeaccesstype=block \
  --csi.checkpathcmd="$LBCSI_STACK_DIR/csi-sanity/check-path" \
  --csi.testvolumeparameters="$LBCSI_STACK_DIR/csi-sanity/parameters.yaml" \
  --csi.secrets="$LBCSI_STACK_DIR/csi-sanity/secrets.yaml" \
  --csi.testvolumesize=$((1 << 30)) --csi.testvolumeexpandsize=$((2 << 30)) \
  --ginkgo.junit-report="$work/junit.xml" --ginkgo.no-color "$@" >"$work/sanity.out" 2>&1 || rc=$?
cat "$work/sanity.out"

# Counts from the JUnit report (one <testcase> per spec; <skipped>/<failure>/<error> inside).
# Skipped (and pending) specs are listed by name: each must be in tests/conformance/README.md.
python3 - "$work/junit.xml" >"$work/counts" <<'PY'
import sys, xml.etree.ElementTree as ET
cases = list(ET.parse(sys.argv[1]).getroot().iter("testcase"))
failed = [c for c in cases if c.find("failure") is not None or c.find("error") is not None]
skipped = [c for c in cases if c.find("skipped") is not None]
for c in skipped:
    why = (c.find("skipped").get("message") or "").strip()
    print(f"  skipped: {c.get('name')}  [{why}]", file=sys.stderr)
print(len(cases), len(failed), len(skipped))
PY
read -r total failed skipped <"$work/counts"
echo "csi-sanity: $((total - failed - skipped)) passed, $failed failed, $skipped skipped"
if ((failed > 0 || rc != 0)); then
  echo "csi-sanity FAILED (exit $rc)"
  exit 1
fi

# Nothing of the run may stay behind: no mounts or loop devices of the stack.
left=$(grep -c "$work" /proc/self/mountinfo || true)
((left == 0)) || { echo "csi-sanity left $left mounts under $work"; exit 1; }
