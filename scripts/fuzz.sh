#!/usr/bin/env bash
# Builds the libFuzzer targets of fuzz/ (clang, ASan + UBSan) in build/fuzz and
# runs each for RUNS executions (testing.md T6). CI runs `make fuzz` (10^5 each).
#
#   scripts/fuzz.sh [RUNS] [TARGET...]     RUNS defaults to 100000; all targets
#   FUZZ_API_RUNS=N    executions of api_fuzzer (default RUNS; each of its
#                      executions runs a store, ~100x the cost of the others')
#   FUZZ_JOBS=2        build parallelism
#   FUZZ_SEEDS=1       first rewrite the seed corpora in fuzz/corpus (make_corpus)
#   FUZZ_COMMIT_CORPUS=1  after the runs, minimise committed + found inputs
#                      into fuzz/corpus/<target>/ (`make fuzz-corpus`)
#   FUZZ_ARGS="..."    extra libFuzzer flags, e.g. "-max_total_time=600"
#   FUZZ_BUILD_ONLY=1  build, run nothing
#   FUZZ_BUILD_EXTRA="t7_asan_test"  more targets of build/fuzz to build
#                      (`make t7-asan`: T7 on the same instrumented engine)
#
# Corpora grow from run to run. Each run starts from the committed seeds
# (fuzz/corpus/<target>/) and from build/fuzz/corpus/<target>/, and after the
# run the inputs it found are merged (-merge=1: only those adding coverage)
# into build/fuzz/corpus/<target>/, minimised: the next run on this checkout
# starts from there. CI needs nothing more (it commits nothing). To carry a
# corpus into the repository:
#   make fuzz-corpus FUZZ_RUNS=100000      # or FUZZ_COMMIT_CORPUS=1 scripts/fuzz.sh
#   git add fuzz/corpus && git commit -m "fuzz: grow the corpora"
# which rewrites fuzz/corpus/<target>/ as the minimal set of files (named by
# their SHA-1) covering what the committed and the found inputs cover.
# Crashes go to build/fuzz/artifacts/<target>/; replay one with
#   build/fuzz/fuzz/<target> build/fuzz/artifacts/<target>/crash-...
# Exit status: 0 when every target ran its executions without a finding.
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-100000}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(decode_fuzzer keyring_fuzzer json_fuzzer envelope_cursor_fuzzer api_fuzzer)

build=build/fuzz
if [ ! -f "$build/CMakeCache.txt" ]; then
  CC=clang CXX=clang++ cmake -S . -B "$build" -DCALLVAULT_BUILD_FUZZ=ON -DCALLVAULT_WERROR=OFF \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
# shellcheck disable=SC2086
cmake --build "$build" -j "${FUZZ_JOBS:-2}" --target callvault_fuzzers ${FUZZ_BUILD_EXTRA:-} >/dev/null
[ "${FUZZ_BUILD_ONLY:-0}" = 1 ] && exit 0
if [ "${FUZZ_SEEDS:-0}" = 1 ]; then
  "$build/fuzz/make_corpus" fuzz/corpus
fi

status=0
total_start=$(date +%s%N)
# One target: its runs, then its corpus merged; its summary line goes to
# $build/<target>.summary. Returns 1 on a finding or a failed merge.
run_target() {
  local t=$1 failed=0 log n env extra procs start pids pid result merged secs execs cov kept p plog
  mkdir -p "$build/corpus/$t" "$build/artifacts/$t" "fuzz/corpus/$t"
  rm -f "$build/$t.summary"
  log="$build/$t.log"
  n=$runs
  env=()
  extra=()
  procs=1
  if [ "$t" = api_fuzzer ]; then
    n=${FUZZ_API_RUNS:-$runs}
    # Stores allocate a lot: no allocation stacks (replay a finding for
    # them) and a smaller quarantine keep it fast.
    env=(ASAN_OPTIONS="malloc_context_size=0:quarantine_size_mb=32")
    # A sequence worth running (put, hold, delete...) takes 15+ bytes:
    # inputs may be long from the start. -entropic=0: the entropic power
    # schedule's per-feature bookkeeping was 29% of the CPU (perf) for
    # ~34,000 features an execution; -detect_leaks=0: libFuzzer's leak check
    # after an input whose mallocs and frees differ (always, with a store
    # kept across inputs) ran the input twice and scanned the heap; LSan
    # still checks the whole process at exit (docs/decisions/0026).
    extra=(-max_len=256 -len_control=0 -entropic=0 -detect_leaks=0)
    # Both cores: FUZZ_API_PROCS processes (default 2) of n/FUZZ_API_PROCS
    # executions each, same corpora, their own seeds and stores.
    procs=${FUZZ_API_PROCS:-2}
  fi
  start=$(date +%s%N)
  # New inputs go to a scratch directory, merged below.
  rm -rf "$build/corpus/$t.new" && mkdir -p "$build/corpus/$t.new"
  pids=()
  for ((p = 0; p < procs; p++)); do
    plog=$log
    [ "$procs" -gt 1 ] && plog="$build/$t.$p.log"
    # shellcheck disable=SC2086
    env "${env[@]}" "$build/fuzz/$t" "$build/corpus/$t.new" "$build/corpus/$t" "fuzz/corpus/$t" \
      -runs=$(( (n + procs - 1) / procs )) -seed=$(( ${FUZZ_SEED:-$(date +%s)} + p )) \
      -print_final_stats=1 -artifact_prefix="$build/artifacts/$t/" "${extra[@]}" ${FUZZ_ARGS:-} \
      >"$plog" 2>&1 &
    pids+=($!)
  done
  result=ok
  for pid in "${pids[@]}"; do
    wait "$pid" || { result="FINDING (see $build/$t*.log and $build/artifacts/$t/)"; failed=1; }
  done
  if [ "$procs" -gt 1 ]; then
    cat "$build/$t".[0-9]*.log >"$log"
    rm -f "$build/$t".[0-9]*.log
  fi
  # Grow the corpus: the minimal set covering the previous corpus and what
  # this run found, into build/fuzz/corpus/<target> (and with
  # FUZZ_COMMIT_CORPUS=1, the committed seeds too into fuzz/corpus/<target>).
  merged="$build/corpus/$t.merged"
  rm -rf "$merged" && mkdir -p "$merged"
  if [ "${FUZZ_COMMIT_CORPUS:-0}" = 1 ]; then
    if env "${env[@]}" "$build/fuzz/$t" -merge=1 "$merged" "fuzz/corpus/$t" "$build/corpus/$t" \
        "$build/corpus/$t.new" >"$build/$t.merge.log" 2>&1; then
      rm -rf "fuzz/corpus/$t" && mv "$merged" "fuzz/corpus/$t"
      rm -rf "$build/corpus/$t" && mkdir -p "$build/corpus/$t"
    else
      echo "$t: merge failed (see $build/$t.merge.log); corpora left as they were"; failed=1
    fi
  elif env "${env[@]}" "$build/fuzz/$t" -merge=1 "$merged" "$build/corpus/$t" "$build/corpus/$t.new" \
        >"$build/$t.merge.log" 2>&1; then
    rm -rf "$build/corpus/$t" && mv "$merged" "$build/corpus/$t"
  else
    echo "$t: merge failed (see $build/$t.merge.log); corpus left as it was"; failed=1
  fi
  rm -rf "$build/corpus/$t.new"
  secs=$(awk -v a="$start" -v b="$(date +%s%N)" 'BEGIN { print (b - a) / 1e9 }')
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | awk '{ n += $1 } END { if (NR) print n }')
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
  kept=$(find "$build/corpus/$t" "fuzz/corpus/$t" -type f | wc -l)
  printf '%-24s %10s execs %8.1f s  %-10s corpus %5s  %s\n' "$t" "${execs:-?}" "$secs" "${cov:-}" "$kept" "$result" \
    >"$build/$t.summary"
  return $failed
}

# The cheap targets (~10^4 executions a second) run two at a time, one per
# core; api_fuzzer (a store per execution) runs alone, as FUZZ_API_PROCS
# processes of its own.
small=() big=()
for t in "${targets[@]}"; do
  if [ "$t" = api_fuzzer ]; then big+=("$t"); else small+=("$t"); fi
done
for ((i = 0; i < ${#small[@]}; i += 2)); do
  pids=()
  for t in "${small[@]:i:2}"; do
    run_target "$t" & pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid" || status=1; done
done
for t in "${big[@]}"; do run_target "$t" || status=1; done
for t in "${targets[@]}"; do
  cat "$build/$t.summary" 2>/dev/null || { echo "$t: did not finish (see $build/$t.log)"; status=1; }
done
printf '%-24s %19.1f s\n' total "$(awk -v a="$total_start" -v b="$(date +%s%N)" 'BEGIN { print (b - a) / 1e9 }')"
exit $status
