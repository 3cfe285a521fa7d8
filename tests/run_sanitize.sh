#!/usr/bin/env bash
# make test-sanitize: every suite of tests/run_all.sh against the ASan + UBSan
# build, then a scan of the output for sanitizer reports; the last line stays
# "N passed, N failed" (a report adds a failure).
#   tests/run_sanitize.sh build-dir [reference-dir]
set -u
build=${1:-build-sanitize}
refdir=${2:-../shared/reference}
cd "$(dirname "$0")/.."
# detect_leaks=0: see the Makefile (process-lifetime allocations of LuaJIT, OpenBLAS, oneDNN).
# allocator_may_return_null=1: specs ask for impossible sizes on purpose and expect
# the engine's "out of memory" error, as glibc's malloc returns NULL for them.
# exitcode 86: a report ends the process with a code no test expects.
export ASAN_OPTIONS=detect_leaks=0:allocator_may_return_null=1:halt_on_error=1:exitcode=86:detect_stack_use_after_return=0
export GAM_EXPECT_CUDA=0  # the sanitizer build is CUDA=0
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:exitcode=86
log=$(mktemp)
trap 'rm -f "$log"' EXIT
bash tests/run_all.sh "$build" "$refdir" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
reports=$(grep -cE 'ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:' "$log")
summary=$(tail -n 1 "$log")
p=$(echo "$summary" | sed -nE 's/^([0-9]+) passed, ([0-9]+) failed.*/\1/p')
f=$(echo "$summary" | sed -nE 's/^([0-9]+) passed, ([0-9]+) failed.*/\2/p')
[ -z "$p" ] && { p=0; f=1; }
echo "sanitizer reports: $reports"
[ "$reports" != 0 ] && f=$((f + 1))
echo "$p passed, $f failed"
[ "$f" = 0 ] && [ "$rc" = 0 ]
