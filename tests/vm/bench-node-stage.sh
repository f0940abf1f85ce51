#!/usr/bin/env bash
# bench-node-stage.sh [--build-dir DIR] [--iterations N] [run-in-vm.sh options...]
#
# Benchmark (not a test): the cost of NodeStage's node-side work on real NVMe/TCP in
# one VM run. Boots the guest once and runs vm_bench_node_stage there, which alternates
#   helper: Attach + Probe + Format(ext4) + Mount over lbcsi-helper's socket, and
#   bare:   libnvme connect (both ports) + wait for the namespace + mkfs.ext4 + mount(2)
# on fresh volumes and prints each time, the medians and the ratio helper/bare.
# Needs root (see README.md) and a build with vm_bench_node_stage and lbcsi-helper.
# Figures from a sanitizer (ASan) build overstate the helper's own CPU cost.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${LBCSI_BUILD_DIR:-$here/../../build}
iterations=3
vm_args=()
while [[ $# -gt 0 ]]; do
  case $1 in
    --build-dir) build=$2; shift 2 ;;
    --iterations) iterations=$2; shift 2 ;;
    *) vm_args+=("$1"); shift ;;
  esac
done
build=$(realpath "$build")
bench=$build/tests/vm/vm_bench_node_stage
helper=$build/helper/lbcsi-helper
for f in "$bench" "$helper"; do
  [[ -x $f ]] || { echo "bench-node-stage: $f is missing (ninja -C $build vm_bench_node_stage)" >&2; exit 2; }
done
export LBCSI_SOURCE_DIR=${LBCSI_SOURCE_DIR:-$(realpath "$here/../..")}
exec "$here/run-in-vm.sh" --build-dir "$build" "${vm_args[@]}" -- \
  "$bench" --helper "$helper" --iterations "$iterations"
