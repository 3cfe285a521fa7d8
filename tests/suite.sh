# Sourced by tests/run_all.sh and tests/cuda/run_cuda.sh: runs test suites and
# adds up their "N passed, N failed" lines.
#   . tests/suite.sh; suite NAME COMMAND...; ...; suite_summary
passed=0
failed=0
suite_log=$(mktemp)
trap 'rm -f "$suite_log"' EXIT

# runs one suite and adds its result line; a suite with no result line, or one
# that exits non-zero with no failure counted, counts as 1 failure
suite() { # name, command...
  local name=$1; shift
  echo "== $name"
  "$@" 2>&1 | tee "$suite_log"
  local rc=${PIPESTATUS[0]}
  local line p f
  line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$suite_log" | tail -n 1)
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

# the last line of the run; its exit status is 0 only when nothing failed
suite_summary() {
  echo "$passed passed, $failed failed"
  [ "$failed" = 0 ]
}
