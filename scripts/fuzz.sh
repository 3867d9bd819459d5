#!/usr/bin/env bash
# Builds the libFuzzer targets of fuzz/ (clang, ASan + UBSan) in build/fuzz and
# runs each for RUNS executions (testing.md T6). CI runs `make fuzz` (10^5 each).
#
#   scripts/fuzz.sh [RUNS] [TARGET...]     RUNS defaults to 100000; all targets
#   FUZZ_JOBS=2        build parallelism
#   FUZZ_SEEDS=1       first rewrite the seed corpora in fuzz/corpus (make_corpus)
#   FUZZ_ARGS="..."    extra libFuzzer flags, e.g. "-max_total_time=600"
#
# Seeds are read from fuzz/corpus/<target>/ (committed); inputs the fuzzer
# finds go to build/fuzz/corpus/<target>/, crashes to
# build/fuzz/artifacts/<target>/. To fold new coverage into the committed
# seeds:  build/fuzz/fuzz/<target> -merge=1 fuzz/corpus/<target> build/fuzz/corpus/<target>
# Exit status: 0 when every target ran its executions without a finding.
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-100000}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(decode_fuzzer keyring_fuzzer json_fuzzer envelope_cursor_fuzzer)

build=build/fuzz
if [ ! -f "$build/CMakeCache.txt" ]; then
  CC=clang CXX=clang++ cmake -S . -B "$build" -DCALLVAULT_FUZZ=ON -DCALLVAULT_WERROR=OFF \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
cmake --build "$build" -j "${FUZZ_JOBS:-2}" --target callvault_fuzzers >/dev/null
if [ "${FUZZ_SEEDS:-0}" = 1 ]; then
  "$build/fuzz/make_corpus" fuzz/corpus
fi

status=0
total_start=$(date +%s%N)
for t in "${targets[@]}"; do
  mkdir -p "$build/corpus/$t" "$build/artifacts/$t"
  log="$build/$t.log"
  start=$(date +%s%N)
  # shellcheck disable=SC2086
  if "$build/fuzz/$t" "$build/corpus/$t" "fuzz/corpus/$t" -runs="$runs" -print_final_stats=1 \
      -artifact_prefix="$build/artifacts/$t/" ${FUZZ_ARGS:-} >"$log" 2>&1; then
    result=ok
  else
    result="FINDING (see $log and $build/artifacts/$t/)"
    status=1
  fi
  secs=$(awk -v a="$start" -v b="$(date +%s%N)" 'BEGIN { print (b - a) / 1e9 }')
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
  printf '%-24s %10s execs %8.1f s  %-10s %s\n' "$t" "${execs:-?}" "$secs" "${cov:-}" "$result"
done
printf '%-24s %19.1f s\n' total "$(awk -v a="$total_start" -v b="$(date +%s%N)" 'BEGIN { print (b - a) / 1e9 }')"
exit $status
