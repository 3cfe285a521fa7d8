#!/usr/bin/env bash
# make fuzz: runs each libFuzzer target for a number of seconds on a scratch
# copy of its committed corpus (tests/fuzz/corpus/<target>, which stays as
# committed: new finds are not written back); a crash fails the run, its input
# is kept in build-dir/crash-<target>-*. Ends with "N passed, N failed" (one
# per target) after a line of total executions.
#   tests/fuzz/run.sh build-dir seconds target...
set -u
build=$1; seconds=$2; shift 2
cd "$(dirname "$0")/../.."
passed=0; failed=0; total=0
for t in "$@"; do
  work=$(mktemp -d)
  cp -r "tests/fuzz/corpus/$t/." "$work/" 2>/dev/null
  log="$build/fuzz_$t.log"
  "$build/fuzz_$t" -max_total_time="$seconds" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="$build/crash-$t-" -print_final_stats=1 "$work" > "$log" 2>&1
  rc=$?
  execs=$(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}')
  cov=$(grep -E '^#[0-9]+.*(DONE|INITED)' "$log" | tail -n 1 | grep -oE 'cov: [0-9]+' )
  total=$((total + ${execs:-0}))
  if [ "$rc" = 0 ]; then
    echo "fuzz_$t: ${execs:-0} executions in ${seconds}s, ${cov:-cov: ?}, no crash"
    passed=$((passed + 1))
  else
    echo "fuzz_$t: FAILED (exit $rc) after ${execs:-?} executions; log $log:"
    grep -E 'ERROR|SUMMARY|runtime error|panic|Test unit written' "$log" | head -n 20
    failed=$((failed + 1))
  fi
  rm -rf "$work"
done
echo "fuzz: $total executions in all"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
