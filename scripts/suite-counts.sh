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
# T5's file-level mutations per class of file (testing.md: >= 10,000 in
# all), from the per-sub-kind lines "T5 files <suite> <sub-kind>: N
# mutations, ..." (the harness's own test prints no such line).
awk '
  /^T5 files [A-Za-z]+ [a-z_]+: [0-9]+ mutations/ {
    sub_kind = $4; sub(/:$/, "", sub_kind); n = $5
    if (sub_kind ~ /wal$/) cls = "WAL"
    else if (sub_kind ~ /sst$/) cls = "SST"
    else if (sub_kind == "blob") cls = "blob"
    else if (sub_kind ~ /^(manifest|current|options|identity)$/) cls = "MANIFEST"
    else cls = "keyring"
    by[cls] += n; total += n
  }
  END {
    if (total == 0) exit
    printf "T5 files total: %d mutations (target >= 10000):", total
    split("WAL SST blob MANIFEST keyring", order, " ")
    for (i = 1; i <= 5; i++) printf " %s=%d", order[i], by[order[i]]
    printf "\n"
  }' "$log"
