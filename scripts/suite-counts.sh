#!/usr/bin/env bash
# Prints what the reliability suites (testing.md T1-T9) counted in the last
# ctest run of a build directory, so a CI log shows the counts whether the
# suites passed or failed. Reads ctest's own log; changes nothing.
#   scripts/suite-counts.sh [build-dir]    (default build/release)
set -euo pipefail
log="${1:-build/release}/Testing/Temporary/LastTest.log"
if [[ ! -f "$log" ]]; then
  echo "suite-counts: no ctest log at $log" >&2
  exit 1
fi
echo "=== suite counts (from $log)"
grep -E '^(T1: |\[kill-loop\] seed|\[power-loss[^]]*\] (seed|T2|[0-9])|\[power-loss init\] a power|\[crash-points\] (workload|recovery after|store creation|scheduled|coverage)|\[io-error[^]]*\] T4|\[io-error\] [a-z]+: [0-9]+ reads|T5 files |\[mutations\] |\[purge-under-load\] |\[ model \] seed|\[backup\] )' "$log" |
  cut -c1-400 || {
  echo "suite-counts: no suite printed a count (were the crash suites run?)" >&2
  exit 1
}
