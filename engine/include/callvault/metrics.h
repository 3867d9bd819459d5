// Observability: Store::Metrics(), its Prometheus rendering, the logger
// hook (Options::logger) and the progress hook (Options::progress).
//
// Metrics are per store, counted since it was opened (a reopen starts at
// 0; Prometheus' rate() handles such resets), except the two
// authentication-failure counters of the crypto layer, which count for the
// whole process (every store in it, and offline checks such as
// VerifyReceiptChain) since it started.
//
// Privacy and cardinality: no metric carries a tenant id, a call id, a
// subject or any other value of the data as a label or anywhere else. The
// only labels are the fixed operation names of Op and the fixed bucket
// bounds, so a scrape's size does not grow with the tenants (10,000
// tenants would be 10,000 series per metric) and a metrics pipeline (often
// less protected than the store) learns nothing about who the customers
// are. Per-tenant figures are in Store::Stats(), which is not for scraping.
//
// Cost: an operation adds one steady_clock read at its start and end and a
// few relaxed atomic increments (no lock) to its histogram. RocksDB's own
// statistics are kept at StatsLevel::kExceptHistogramOrTimers (tickers
// only: per-core counters). Metrics() itself takes the store's admin lock
// briefly (as Stats() does) to read each shard's RocksDB properties.
#ifndef CALLVAULT_METRICS_H_
#define CALLVAULT_METRICS_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace callvault {

// The operations timed, one histogram each. Do not renumber (the order of
// the rendering follows it).
enum class Op : uint8_t {
  kPut = 0,        // PutCall
  kPutBatch,       // PutCalls
  kUpdate,         // UpdateCall
  kGet,            // GetCall, GetTranscriptWindow
  kGetBatch,       // GetCalls
  kList,           // ListCalls
  kCount,          // CountCalls (both forms)
  kDelete,         // DeleteCall (both forms), DeleteRecording
  kErase,          // Erase
  kRetention,      // RunRetention (a whole sweep)
  kPurge,          // PurgeTenant, and each purge RunScheduledPurges does
  kRecordingWrite, // RecordingWriter::Append and Finish
  kRecordingRead,  // ReadRecording
  kBackup,         // Backup
  kVerify,         // Verify
};
inline constexpr size_t kOpCount = 15;
// "put", "put_batch", "update", "get", "get_batch", "list", "count",
// "delete", "erase", "retention", "purge", "recording_write",
// "recording_read", "backup", "verify": the `op` label.
const char* OpName(Op op);

// Upper bounds of the latency buckets, in microseconds, fixed: 50 us, 100
// us, 250 us, 500 us, 1 ms, 2.5 ms, 5 ms, 10 ms, 25 ms, 50 ms, 100 ms, 250
// ms, 500 ms, 1 s, 2.5 s, 5 s, 10 s, 30 s, 60 s; the last bucket (+Inf)
// takes the rest. Rendered in seconds (le="0.00005" ... le="+Inf").
inline constexpr size_t kLatencyBuckets = 20;  // the last one is +Inf
inline constexpr std::array<uint64_t, kLatencyBuckets - 1> kLatencyBoundsMicros = {
    50,      100,     250,     500,     1000,    2500,     5000,     10000,    25000,   50000,
    100000,  250000,  500000,  1000000, 2500000, 5000000, 10000000, 30000000, 60000000};

struct LatencyHistogram {
  // counts[i]: operations that took at most kLatencyBoundsMicros[i] (and
  // more than the bound before); counts[kLatencyBuckets - 1]: the rest.
  // Not cumulative (the rendering makes them so).
  std::array<uint64_t, kLatencyBuckets> counts{};
  uint64_t count = 0;       // operations finished (the sum of counts)
  uint64_t errors = 0;      // of them, those that returned an error
  uint64_t sum_micros = 0;  // their total time
  // The upper bound (microseconds) of the bucket holding the q-quantile
  // (0 < q <= 1), e.g. Quantile(0.99) for p99: an estimate no finer than
  // the buckets. 0 with no operation; UINT64_MAX if it falls in +Inf.
  uint64_t Quantile(double q) const;
};

struct Metrics {
  std::array<LatencyHistogram, kOpCount> ops{};
  const LatencyHistogram& op(Op o) const { return ops[static_cast<size_t>(o)]; }

  uint64_t purges = 0;           // tenants purged (each with its receipt), any path
  uint64_t audit_auth_failures = 0;  // "auth_failure" audit events of this store
  // Process-wide, since the process started (see the top of this file):
  uint64_t aead_open_failures = 0;   // sealed records, keys or stream chunks that failed authentication
  uint64_t signature_failures = 0;   // Ed25519 signatures that did not verify (receipts, manifests, moves)
  // RocksDB background errors (a failed flush, compaction, WAL write or
  // sync) on any instance of the store; after one the instance refuses
  // writes until the store is reopened.
  uint64_t background_errors = 0;
  // Compactions that failed with a retryable I/O error (not a full disk):
  // RocksDB retries them (about once a second while the error lasts) and
  // the instance goes on (docs/decisions/0083). Not in background_errors.
  uint64_t compaction_errors_retried = 0;

  // RocksDB, summed over the metadata instance and every shard.
  uint64_t stall_micros = 0;          // time writes were delayed or stopped (STALL_MICROS)
  uint64_t pending_compaction_bytes = 0;  // estimated compaction debt, now
  uint64_t block_cache_hits = 0;      // BLOCK_CACHE_HIT
  uint64_t block_cache_misses = 0;    // BLOCK_CACHE_MISS
  uint64_t block_cache_bytes = 0;     // in use now
  uint64_t block_cache_capacity = 0;
  uint64_t memtable_bytes = 0;        // every memtable, now (the write buffer manager's count)
  uint64_t memtable_budget = 0;
  // Memtables switched out and not yet freed now, their bound, and since
  // open the writes that waited for them, the time waited and the waits
  // that gave up (StoreStats::memory, Options::flush_backlog_bytes).
  uint64_t flush_backlog_bytes = 0;
  uint64_t flush_backlog_limit = 0;
  uint64_t flush_backlog_waits = 0;
  uint64_t flush_backlog_wait_micros = 0;
  uint64_t flush_backlog_gave_up = 0;
  bool write_stopped = false;         // a shard stops writes now (rocksdb.is-write-stopped)
  uint32_t shards = 0;
  uint32_t live_tenants = 0;
  // File descriptors (StoreStats::descriptors): RLIMIT_NOFILE and each shard's
  // max_open_files, sized from it.
  uint64_t nofile_limit = 0;
  uint32_t open_files_per_shard = 0;
  // Purged (or rotated-away) column families whose files are not deleted
  // yet: a purge returns after its receipt, and the files go in the
  // background (each deletion is logged at info level when done).
  uint32_t purge_deletions_pending = 0;
  // Background dictionary training (decision 0045): tenants queued or being
  // trained now; dictionaries trained and trainings failed since open.
  uint64_t dictionary_training_queue = 0;
  uint64_t dictionary_trainings = 0;
  uint64_t dictionary_training_failures = 0;
  // Deferred compression (decision 0052): call records the flushes and
  // compactions compressed and sealed again, and the times one was kept as
  // written (StoreStats::compression), since open.
  uint64_t records_resealed = 0;
  uint64_t records_kept_uncompressed = 0;
  // hits / (hits + misses); 0 without lookups.
  double block_cache_hit_rate() const;
};

// The Prometheus text exposition format 0.0.4: every metric with its HELP
// and TYPE lines, names prefixed "callvault_", latencies as histograms in
// seconds (callvault_op_duration_seconds_bucket{op="put",le="0.001"},
// _sum, _count) and callvault_op_errors_total{op=...}. Labels: `op` and
// `le` only (never a tenant). docs/operations.md lists every name.
std::string RenderPrometheus(const Metrics& metrics);

// --- Logger hook (Options::logger) ------------------------------------------
enum class LogLevel : uint8_t { kDebug = 0, kInfo, kWarn, kError };
const char* LogLevelName(LogLevel level);  // "debug", "info", "warn", "error"

// One line, no trailing newline. `source` says where it comes from:
// "callvault" for the engine's own messages, "rocksdb:meta" or
// "rocksdb:shard-N" for a RocksDB instance's info log. Messages hold no
// plaintext, key bytes, tenant ids or personal data (RocksDB's hold file
// names, options and statistics; values are ciphertext, keys hashes).
// Called from any thread, concurrently (RocksDB's background threads
// included): it must be thread-safe, quick, must not throw and must not
// call back into the store.
using Logger = std::function<void(LogLevel level, std::string_view source, std::string_view message)>;

// --- Progress hook (Options::progress) --------------------------------------
// Long operations report how far they are: Verify ("verify", tenants),
// Erase ("erase", calls), RunRetention ("retention", tenants),
// RunScheduledPurges ("purges", tenants due), RotateTenantKey ("rotate", rows read), and
// ExportTenantData (its own ExportOptions::progress). Once at the start (done 0), at most once per unit in between, and on
// success once at the end (done == total, finished true); a failed one stops. Erase reports only
// when it changes calls (not dry, not nothing). Called from the thread running it, synchronously:
// a slow callback slows the operation. Must not throw or call back into the
// store. Holds no tenant id or data.
struct Progress {
  const char* operation = "";  // "verify", "erase", "retention", "purges", "rotate"
  const char* unit = "";       // "tenants", "calls" or "rows" (rotate)
  uint64_t done = 0;
  uint64_t total = 0;          // 0 if unknown
  bool finished = false;
};
using ProgressCallback = std::function<void(const Progress&)>;

}  // namespace callvault

#endif  // CALLVAULT_METRICS_H_
