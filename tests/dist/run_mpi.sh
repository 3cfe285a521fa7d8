#!/usr/bin/env bash
# The MPI specs: every tests/dist/*_mpi.lua on 2 ranks of one thread each;
# ends with one line "N passed, N failed" (tests/suite.sh adds it up).
#   tests/dist/run_mpi.sh [build-dir]
set -u
build=${1:-build}
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=1
# --oversubscribe: CI machines have 2 cores; --bind-to none: the ranks share them
timeout 300 mpirun --allow-run-as-root --oversubscribe --bind-to none -np 2 -x OMP_NUM_THREADS \
  "$build/gamlua" tests/dist/run_mpi.lua tests/dist 2>&1 | grep -v 'ORTE_ERROR_LOG'
exit "${PIPESTATUS[0]}"
