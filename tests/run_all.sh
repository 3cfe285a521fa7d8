#!/usr/bin/env bash
# Runs every test suite and ends with one line: "N passed, N failed".
#   tests/run_all.sh [build-dir] [reference-dir]
set -u
build=${1:-build}
refdir=${2:-../shared/reference}
cd "$(dirname "$0")/.."
passed=0
failed=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT

suite() { # name, command...
  local name=$1; shift
  echo "== $name"
  "$@" 2>&1 | tee "$log"
  local rc=${PIPESTATUS[0]}
  local line
  line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
  if [ -z "$line" ]; then
    echo "$name: no result line (exit $rc); counted as 1 failure"
    failed=$((failed + 1))
    return
  fi
  local p f
  p=$(echo "$line" | sed -E 's/^([0-9]+) passed.*/\1/')
  f=$(echo "$line" | sed -E 's/^[0-9]+ passed, ([0-9]+) failed.*/\1/')
  passed=$((passed + p))
  failed=$((failed + f))
  if [ "$rc" != 0 ] && [ "$f" = 0 ]; then
    echo "$name: exited $rc; counted as 1 failure"
    failed=$((failed + 1))
  fi
}

suite "lua specs (busted)" "$build/gamlua" tests/run_busted.lua
if [ -f tests/reference_harness.lua ]; then
  suite "golden optimiser cases ($refdir)" "$build/gamlua" tests/reference_harness.lua "$refdir"
  # more cases of the same format (other sizes, seeds, bases), made by tests/fixtures/reference_gen
  suite "extra golden cases" "$build/gamlua" tests/reference_harness.lua tests/fixtures/reference_extra
fi

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
