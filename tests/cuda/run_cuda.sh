#!/usr/bin/env bash
# The CUDA backend's tests (needs a GPU); ends with one line "N passed, N failed".
#   tests/cuda/run_cuda.sh [build-dir] [reference-dir]
# Runs the GPU specs of tests/cuda/ (ops, layers, optimisers, models and a
# short training run, each against the cpu backend) and the golden optimiser
# cases on the GPU (tests/reference_harness.lua --device cuda), for the
# reference folder and the extra cases. `make test-cuda` runs this.
set -u
build=${1:-build}
refdir=${2:-../shared/reference}
cd "$(dirname "$0")/../.."
passed=0
failed=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT

suite() { # name, command...
  local name=$1; shift
  echo "== $name"
  "$@" 2>&1 | tee "$log"
  local rc=${PIPESTATUS[0]}
  local line p f
  line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
  if [ -z "$line" ]; then
    echo "$name: no result line (exit $rc); counted as 1 failure"
    failed=$((failed + 1))
    return
  fi
  p=$(echo "$line" | sed -E 's/^([0-9]+) passed.*/\1/')
  f=$(echo "$line" | sed -E 's/^[0-9]+ passed, ([0-9]+) failed.*/\1/')
  passed=$((passed + p))
  failed=$((failed + f))
  if [ "$rc" != 0 ] && [ "$f" = 0 ]; then
    echo "$name: exited $rc; counted as 1 failure"
    failed=$((failed + 1))
  fi
}

for spec in ops layers optim models; do
  suite "cuda: $spec" "$build/gamlua" tests/run_busted.lua "tests/cuda/${spec}_cuda.lua"
done
suite "golden optimiser cases on cuda ($refdir)" "$build/gamlua" tests/reference_harness.lua --device cuda "$refdir"
suite "extra golden cases on cuda" "$build/gamlua" tests/reference_harness.lua --device cuda tests/fixtures/reference_extra

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
