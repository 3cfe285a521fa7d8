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

for spec in ops layers optim models dist; do
  suite "cuda: $spec" "$build/gamlua" tests/run_busted.lua "tests/cuda/${spec}_cuda.lua"
done
suite "golden optimiser cases on cuda ($refdir)" "$build/gamlua" tests/reference_harness.lua --device cuda "$refdir"
suite "extra golden cases on cuda" "$build/gamlua" tests/reference_harness.lua --device cuda tests/fixtures/reference_extra

suite_summary
