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
. tests/suite.sh

# The stack first: driver, runtime, cuDNN, the GPU's name (stops here when
# the build has no CUDA, no GPU is visible or the driver is too old), and
# whether the golden cases' reference folder is there.
smi=""
if command -v nvidia-smi >/dev/null 2>&1; then
  smi=$(nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>/dev/null | head -n 1)
fi
stack_ok=1
"$build/gamlua" tests/cuda/versions.lua "$smi" || stack_ok=0
if [ -d "$refdir" ]; then echo "reference cases: $refdir"
else echo "reference cases: $refdir is MISSING (../shared/reference beside the checkout, or REFERENCE_DIR=...)"; fi
if [ "$stack_ok" = 0 ]; then
  echo "0 passed, 1 failed"
  exit 1
fi

for spec in ops layers optim models dist runtime; do
  suite "cuda: $spec" "$build/gamlua" tests/run_busted.lua "tests/cuda/${spec}_cuda.lua"
done
if [ -d "$refdir" ]; then
  suite "golden optimiser cases on cuda ($refdir)" "$build/gamlua" tests/reference_harness.lua --device cuda "$refdir"
else
  echo "== golden optimiser cases on cuda: the reference folder $refdir is missing"
  echo "   (it is ../shared/reference beside the checkout; or run make test-cuda REFERENCE_DIR=<folder>)"
  failed=$((failed + 1))
fi
suite "extra golden cases on cuda" "$build/gamlua" tests/reference_harness.lua --device cuda tests/fixtures/reference_extra

suite_summary
