// The side-by-side harness: its configuration (quick and full modes) and
// the experiments, each returning JSON for bench/out/harness.json.
#ifndef CALLVAULT_BENCH_HARNESS_H_
#define CALLVAULT_BENCH_HARNESS_H_

#include <cstddef>
#include <string>
#include <vector>

#include "bench/util.h"
#include "callvault/call.h"

namespace callvault::bench {

struct Config {
  std::string mode;  // "quick" or "full"
  int reps = 3;      // measured repetitions of every figure (after a warm-up)
  std::string work;  // scratch directory, removed at the end
  std::string self;  // this binary, for the tenant-scale child processes

  // Ingest, get, list, bytes on disk: one pool of unique generated calls.
  size_t main_calls = 10000;
  double main_scale = 1.0;  // GeneratorOptions::transcript_scale
  size_t sync_calls = 1000;  // sync-per-write runs use the first calls of the pool
  // Profiling (--sync-only, --systems): only the sync-per-write runs (no
  // group commit, no reads), of the systems named.
  bool sync_only = false;
  std::vector<std::string> systems = {"callvault", "rocksdb"};
  size_t batch = 100;        // group commit: calls per synced PutCalls
  size_t gets = 4000;        // measured point gets per repetition
  size_t lists = 400;        // measured list pages per repetition
  int64_t list_window_days = 30;

  // Scale point (--only scale): this many calls into one tenant per system,
  // generated in chunks (never all in memory), one repetition; then bytes on
  // disk after full compaction, gets and list pages (cfg.gets, cfg.lists).
  size_t scale_calls = 100000;
  double scale_transcript_scale = 1.0;
  size_t scale_chunk = 1000;

  // Purge: tenants of these sizes, loaded from a pool of unique calls (ids
  // made unique per copy when a tenant is larger than the pool).
  std::vector<size_t> purge_sizes = {1000, 10000, 100000};
  double purge_scale = 0.1;
  size_t purge_pool = 5000;
  int purge_reps = 3;

  // Recordings: one recording of this many random bytes per repetition.
  size_t recording_bytes = 64u << 20;

  // Tenant scale.
  std::vector<size_t> tenant_counts = {100, 1000, 10000};
  int tenant_reps = 3;        // for counts <= 100
  int tenant_reps_large = 1;  // for larger counts
  // Timed single creates and purges (raw: creates and drops) per run.
  size_t tenant_samples_small = 20;  // counts <= 1000
  size_t tenant_samples_large = 10;  // so that one slow moment does not decide a row
  // callvault creates stop after this many seconds (0: never); the JSON
  // then says how many tenants were reached.
  double tenant_create_budget_s = 0;

  // Many active tenants (issue 14 item 4): at each of these tenant counts
  // (a subset of tenant_counts), the store the tenant-scale phase built is
  // opened again and given `active_calls` calls in synced batches of
  // `active_batch`, round-robin over every tenant (at least four rounds), while
  // one reader gets random tenants' calls. Transcripts at `active_scale`. The
  // first repetition only.
  std::vector<size_t> active_counts = {100, 1000};
  size_t active_calls = 4000;
  size_t active_batch = 5;
  double active_scale = 0.05;
};

Config QuickConfig();
Config FullConfig();

// A deterministic pool of calls.
std::vector<Call> MakeCalls(size_t n, double scale, uint64_t seed);

// Moves calls out of `pool` and back while it runs (the pool is held once).
Json RunIngestAndReads(const Config& cfg, std::vector<Call>& pool);
Json RunScale(const Config& cfg);
Json RunPurge(const Config& cfg);
Json RunRecordings(const Config& cfg);
Json RunTenantScale(const Config& cfg);

// Entry point of a tenant-scale child process (argv after "--child").
int TenantScaleChild(const std::vector<std::string>& args);

}  // namespace callvault::bench

#endif  // CALLVAULT_BENCH_HARNESS_H_
