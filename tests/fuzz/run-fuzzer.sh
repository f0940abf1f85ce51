#!/usr/bin/env bash
# run-fuzzer.sh <fuzzer binary> <committed corpus dir> <seconds>
# Fuzzes on a scratch copy so the committed corpus is only read; prints the
# executions and coverage libFuzzer reports; any crash fails the test.
set -euo pipefail
bin=$1 corpus=$2 seconds=$3
if [[ ! -x "$bin" ]]; then
  echo "fuzzer binary $bin is missing (build the clang fuzz configuration first)" >&2
  exit 1
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/corpus" "$work/artifacts"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 "$bin" -max_total_time="$seconds" -print_final_stats=1 \
  -artifact_prefix="$work/artifacts/" -timeout=10 -rss_limit_mb=2048 "$work/corpus" "$corpus" 2>"$work/log" || {
  tail -n 60 "$work/log"; ls "$work/artifacts"; exit 1; }
grep -E "^#[0-9]+.*(DONE|pulse)|stat::number_of_executed_units|cov:" "$work/log" | tail -n 3
