#!/usr/bin/env bash
# Runs every test suite and ends with one line: "N passed, N failed".
#   tests/run_all.sh [build-dir] [reference-dir]
set -u
build=${1:-build}
refdir=${2:-../shared/reference}
cd "$(dirname "$0")/.."
. tests/suite.sh

suite "lua specs (busted)" "$build/gamlua" tests/run_busted.lua
if [ -f tests/reference_harness.lua ]; then
  suite "golden optimiser cases ($refdir)" "$build/gamlua" tests/reference_harness.lua "$refdir"
  # more cases of the same format (other sizes, seeds, bases), made by tests/fixtures/reference_gen
  suite "extra golden cases" "$build/gamlua" tests/reference_harness.lua tests/fixtures/reference_extra
  # GAM's original variant (Hessian-vector products), made by tests/fixtures/reference_gen/gen_original.py
  suite "original GAM golden cases" "$build/gamlua" tests/reference_harness.lua tests/fixtures/reference_original
fi
# the MPI specs (tests/dist/*_mpi.lua) on 2 ranks of one thread each
suite "MPI specs (2 ranks)" bash tests/dist/run_mpi.sh "$build"

suite_summary
