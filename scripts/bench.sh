#!/usr/bin/env bash
# Runs callvault's benchmarks and regenerates their report.
#
#   scripts/bench.sh quick   # CI: proves every benchmark works (< 2 min on 2 cores)
#   scripts/bench.sh full    # the numbers in docs/benchmarks.md (~35 min on a quiet 2-core machine:
#                            # the harness ~22 min, of which ~7 the 100,000-call scale point)
#
# Expects a Release build (make build does one). Writes:
#   full:  bench/out/micro.json, bench/out/harness.json (copied to docs/data/),
#          docs/benchmarks.md, docs/img/*.png
#   quick: bench/out/quick/{micro,harness}.json, bench/out/quick/benchmarks.md, .../img/*.png
# Environment: PRESET (default release), CALLVAULT_BENCH_WORK (scratch
# directory; default build/bench-work, on the same file system as the repo).
set -euo pipefail

mode="${1:-quick}"
case "$mode" in
  quick|full) ;;
  *) echo "usage: $0 quick|full" >&2; exit 2 ;;
esac

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
preset="${PRESET:-release}"
build="build/$preset"
start=$(date +%s)

build_type=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$build/CMakeCache.txt" 2>/dev/null || true)
if [ "$build_type" != "Release" ]; then
  echo "bench: $build is not a Release build (CMAKE_BUILD_TYPE='$build_type'); run 'make build'" >&2
  exit 2
fi
# Builds the two binaries if `make build` has not (cheap when up to date).
cmake --build --preset "$preset" --target callvault_micro callvault_harness callvault_move_bench \
  callvault_backup_bench callvault_rotate_bench >&2

if [ "$mode" = full ]; then
  out=bench/out
  doc=docs/benchmarks.md
  img=docs/img
  micro_args=(--benchmark_repetitions=3 --benchmark_min_time=0.5)
else
  out=bench/out/quick
  doc=bench/out/quick/benchmarks.md
  img=bench/out/quick/img
  micro_args=(--benchmark_min_time=0.02)
fi
mkdir -p "$out" "$img"
work="${CALLVAULT_BENCH_WORK:-$root/build/bench-work}"

echo "bench: microbenchmarks (physical limits) -> $out/micro.json" >&2
"$build/bench/callvault_micro" "${micro_args[@]}" \
  --benchmark_out="$out/micro.json" --benchmark_out_format=json >&2

echo "bench: side-by-side harness ($mode) -> $out/harness.json" >&2
"$build/bench/callvault_harness" --mode "$mode" --out "$out/harness.json" --work "$work"

# Debian's python3-matplotlib belongs to /usr/bin/python3; a python3 earlier
# on PATH (pyenv, venv) may not have it.
py=python3
if ! "$py" -c 'import matplotlib' 2>/dev/null; then py=/usr/bin/python3; fi
# Tenant moves (decision 0022): move time and the writer's longest gap, with
# the load average (a table in the report).
if [ "$mode" = full ]; then move_calls=1000,10000,100000; else move_calls=1000; fi
echo "bench: tenant moves ($move_calls calls) -> $out/move.json" >&2
"$build/bench/callvault_move_bench" --work "$work" --calls "$move_calls" --out "$out/move.json" >&2

# Backups and restores (issue 12): backup MB/s and the longest write stall it
# causes, incremental backup of an unchanged store, restore time.
if [ "$mode" = full ]; then backup_calls=2000,20000; else backup_calls=1000; fi
echo "bench: backups ($backup_calls calls) -> $out/backup.json" >&2
"$build/bench/callvault_backup_bench" --work "$work" --calls "$backup_calls" --out "$out/backup.json" >&2

# Tenant key rotation (decision 0036): rows/s and MB/s, and another tenant's
# put/get p99 during a rotation beside the same load without one.
if [ "$mode" = full ]; then rotate_calls=2000,20000; rotate_base=3; else rotate_calls=2000; rotate_base=1; fi
echo "bench: key rotation ($rotate_calls calls) -> $out/rotate.json" >&2
"$build/bench/callvault_rotate_bench" --work "$work" --calls "$rotate_calls" --baseline "$rotate_base" \
  --out "$out/rotate.json" >&2

echo "bench: report -> $doc" >&2
"$py" scripts/bench_report.py --harness "$out/harness.json" --micro "$out/micro.json" \
  --backup "$out/backup.json" --move "$out/move.json" --rotate "$out/rotate.json" --doc "$doc" --img "$img"

if [ "$mode" = full ]; then
  # The raw JSON behind the committed tables, so they can be checked.
  mkdir -p docs/data
  cp "$out/harness.json" docs/data/harness.json
  cp "$out/micro.json" docs/data/micro.json
  cp "$out/rotate.json" docs/data/rotate.json
fi

echo "bench: $mode run finished in $(( $(date +%s) - start )) s" >&2
