// Metrics: the recorder, the process-wide authentication-failure counters
// and the Prometheus rendering (callvault/metrics.h).
#include <cstdio>
#include <string>

#include "engine/metrics_internal.h"

namespace callvault {

namespace {

constexpr std::array<const char*, kOpCount> kOpNames = {
    "put",    "put_batch", "update",          "get",            "get_batch",
    "list",   "count",     "delete",          "erase",          "retention",
    "purge",  "recording_write", "recording_read", "backup",    "verify"};

std::atomic<uint64_t> g_aead_failures{0};
std::atomic<uint64_t> g_signature_failures{0};

// A number as Prometheus reads it: decimal, no trailing zeros.
std::string Num(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.6f", v);
  std::string s(buf);
  while (!s.empty() && s.back() == '0') s.pop_back();
  if (!s.empty() && s.back() == '.') s.pop_back();
  return s.empty() ? "0" : s;
}

void Header(std::string* out, const char* name, const char* type, const char* help) {
  out->append("# HELP ").append(name).append(" ").append(help).append("\n");
  out->append("# TYPE ").append(name).append(" ").append(type).append("\n");
}

void Sample(std::string* out, const char* name, uint64_t v) {
  out->append(name).append(" ").append(std::to_string(v)).append("\n");
}

void Sample(std::string* out, const char* name, double v) {
  out->append(name).append(" ").append(Num(v)).append("\n");
}

void Metric(std::string* out, const char* name, const char* type, const char* help, uint64_t v) {
  Header(out, name, type, help);
  Sample(out, name, v);
}

}  // namespace

const char* OpName(Op op) {
  const auto i = static_cast<size_t>(op);
  return i < kOpNames.size() ? kOpNames[i] : "unknown";
}

const char* LogLevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug: return "debug";
    case LogLevel::kInfo: return "info";
    case LogLevel::kWarn: return "warn";
    case LogLevel::kError: return "error";
  }
  return "info";
}

uint64_t LatencyHistogram::Quantile(double q) const {
  if (count == 0) return 0;
  if (q <= 0) q = 0;
  if (q > 1) q = 1;
  // The rank of the quantile, 1-based, rounded up.
  auto rank = static_cast<uint64_t>(q * static_cast<double>(count));
  if (static_cast<double>(rank) < q * static_cast<double>(count)) ++rank;
  if (rank == 0) rank = 1;
  uint64_t seen = 0;
  for (size_t i = 0; i < kLatencyBuckets; ++i) {
    seen += counts[i];
    if (seen >= rank) return i + 1 < kLatencyBuckets ? kLatencyBoundsMicros[i] : UINT64_MAX;
  }
  return UINT64_MAX;
}

double Metrics::block_cache_hit_rate() const {
  const uint64_t all = block_cache_hits + block_cache_misses;
  return all == 0 ? 0.0 : static_cast<double>(block_cache_hits) / static_cast<double>(all);
}

std::string RenderPrometheus(const Metrics& m) {
  std::string out;
  out.reserve(16 << 10);
  Header(&out, "callvault_op_duration_seconds", "histogram",
         "Time store operations took, by operation (errors included).");
  for (size_t i = 0; i < kOpCount; ++i) {
    const LatencyHistogram& h = m.ops[i];
    const std::string op = std::string("{op=\"") + kOpNames[i] + "\"";
    uint64_t cumulative = 0;
    for (size_t b = 0; b < kLatencyBuckets; ++b) {
      cumulative += h.counts[b];
      const std::string le = b + 1 < kLatencyBuckets
                                 ? Num(static_cast<double>(kLatencyBoundsMicros[b]) / 1e6)
                                 : std::string("+Inf");
      out.append("callvault_op_duration_seconds_bucket").append(op).append(",le=\"").append(le)
          .append("\"} ").append(std::to_string(cumulative)).append("\n");
    }
    out.append("callvault_op_duration_seconds_sum").append(op).append("} ")
        .append(Num(static_cast<double>(h.sum_micros) / 1e6)).append("\n");
    out.append("callvault_op_duration_seconds_count").append(op).append("} ")
        .append(std::to_string(h.count)).append("\n");
  }
  Header(&out, "callvault_op_errors_total", "counter",
         "Store operations that returned an error (any code, kNotFound included), by operation.");
  for (size_t i = 0; i < kOpCount; ++i) {
    out.append("callvault_op_errors_total{op=\"").append(kOpNames[i]).append("\"} ")
        .append(std::to_string(m.ops[i].errors)).append("\n");
  }
  Metric(&out, "callvault_purges_total", "counter",
         "Tenants purged (crypto-shredded, family dropped, receipt signed) since the store opened.",
         m.purges);
  Metric(&out, "callvault_auth_failure_events_total", "counter",
         "auth_failure audit events of this store (records, keyrings or reports that failed "
         "authentication; tampering found by recovery).",
         m.audit_auth_failures);
  Metric(&out, "callvault_aead_open_failures_total", "counter",
         "Sealed values that failed authentication (process-wide).", m.aead_open_failures);
  Metric(&out, "callvault_signature_failures_total", "counter",
         "Ed25519 signatures that did not verify (process-wide).", m.signature_failures);
  Metric(&out, "callvault_rocksdb_background_errors_total", "counter",
         "RocksDB background errors (failed flush, compaction, WAL write or sync); the instance "
         "refuses writes until the store is reopened.",
         m.background_errors);
  Metric(&out, "callvault_rocksdb_compaction_errors_retried_total", "counter",
         "Compactions that failed with a retryable I/O error, which RocksDB retries while the "
         "instance goes on (decision 0083).",
         m.compaction_errors_retried);
  Header(&out, "callvault_rocksdb_stall_seconds_total", "counter",
         "Time RocksDB delayed or stopped writes (STALL_MICROS).");
  Sample(&out, "callvault_rocksdb_stall_seconds_total", static_cast<double>(m.stall_micros) / 1e6);
  Metric(&out, "callvault_rocksdb_write_stopped", "gauge",
         "1 while a shard stops writes (rocksdb.is-write-stopped).", m.write_stopped ? 1 : 0);
  Metric(&out, "callvault_rocksdb_pending_compaction_bytes", "gauge",
         "Estimated compaction debt, summed over every instance.", m.pending_compaction_bytes);
  Metric(&out, "callvault_block_cache_hits_total", "counter", "Block cache hits.",
         m.block_cache_hits);
  Metric(&out, "callvault_block_cache_misses_total", "counter", "Block cache misses.",
         m.block_cache_misses);
  Header(&out, "callvault_block_cache_hit_ratio", "gauge",
         "Block cache hits / lookups since the store opened (0 without lookups).");
  Sample(&out, "callvault_block_cache_hit_ratio", m.block_cache_hit_rate());
  Metric(&out, "callvault_block_cache_bytes", "gauge", "Block cache in use.", m.block_cache_bytes);
  Metric(&out, "callvault_block_cache_capacity_bytes", "gauge", "Block cache capacity.",
         m.block_cache_capacity);
  Metric(&out, "callvault_memtable_bytes", "gauge", "Memory of every memtable.", m.memtable_bytes);
  Metric(&out, "callvault_memtable_budget_bytes", "gauge",
         "Memtable budget (Options::write_buffer_budget_bytes).", m.memtable_budget);
  Metric(&out, "callvault_flush_backlog_bytes", "gauge",
         "Memtables switched out and not yet freed (queued for a flush, being flushed or pinned).",
         m.flush_backlog_bytes);
  Metric(&out, "callvault_flush_backlog_limit_bytes", "gauge",
         "The bound call writes wait under (Options::flush_backlog_bytes).", m.flush_backlog_limit);
  Metric(&out, "callvault_flush_backlog_waits_total", "counter",
         "Call writes that waited for the flushes.", m.flush_backlog_waits);
  Header(&out, "callvault_flush_backlog_wait_seconds_total", "counter",
         "Time writes waited for the flushes to bring the backlog under Options::flush_backlog_bytes.");
  Sample(&out, "callvault_flush_backlog_wait_seconds_total",
         static_cast<double>(m.flush_backlog_wait_micros) / 1e6);
  Metric(&out, "callvault_flush_backlog_gave_up_total", "counter",
         "Waits that gave up: the backlog, over its bound, did not fall for a second (a flush failing "
         "or hung, or readers pinning flushed memtables); writers then pass for ten seconds.",
         m.flush_backlog_gave_up);
  Metric(&out, "callvault_shards", "gauge", "Shards (RocksDB instances holding tenants).",
         m.shards);
  Metric(&out, "callvault_nofile_limit", "gauge", "The process's RLIMIT_NOFILE (soft).",
         m.nofile_limit);
  Metric(&out, "callvault_open_files_per_shard", "gauge",
         "Table and blob files each shard may keep open (max_open_files, sized from the limit).",
         m.open_files_per_shard);
  Metric(&out, "callvault_live_tenants", "gauge", "Live (not purged) tenants.", m.live_tenants);
  Metric(&out, "callvault_purge_deletions_pending", "gauge",
         "Purged column families whose files are still being deleted in the background.",
         m.purge_deletions_pending);
  Metric(&out, "callvault_dictionary_training_queue", "gauge",
         "Tenants queued for or in background dictionary training.", m.dictionary_training_queue);
  Metric(&out, "callvault_dictionary_trainings_total", "counter",
         "Compression dictionaries trained and stored since open.", m.dictionary_trainings);
  Metric(&out, "callvault_dictionary_training_failures_total", "counter",
         "Dictionary trainings that failed since open (retried a threshold later).",
         m.dictionary_training_failures);
  Metric(&out, "callvault_records_resealed_total", "counter",
         "Call records compressed and sealed again by flushes and compactions since open.",
         m.records_resealed);
  Metric(&out, "callvault_records_kept_uncompressed_total", "counter",
         "Times a flush or compaction kept a deferred call record as written (tenant busy or not "
         "reachable, or the record did not open) since open.",
         m.records_kept_uncompressed);
  return out;
}

namespace metrics {

size_t BucketOf(uint64_t micros) {
  size_t i = 0;
  while (i < kLatencyBoundsMicros.size() && micros > kLatencyBoundsMicros[i]) ++i;
  return i;
}

void Recorder::Record(Op op, uint64_t micros, bool ok) {
  const auto i = static_cast<size_t>(op);
  if (i >= kOpCount) return;
  Hist& h = hist_[i];
  h.counts[BucketOf(micros)].fetch_add(1, std::memory_order_relaxed);
  h.sum_micros.fetch_add(micros, std::memory_order_relaxed);
  if (!ok) h.errors.fetch_add(1, std::memory_order_relaxed);
}

void Recorder::Fill(Metrics* m) const {
  for (size_t i = 0; i < kOpCount; ++i) {
    const Hist& h = hist_[i];
    LatencyHistogram& out = m->ops[i];
    out.count = 0;
    for (size_t b = 0; b < kLatencyBuckets; ++b) {
      out.counts[b] = h.counts[b].load(std::memory_order_relaxed);
      out.count += out.counts[b];  // consistent with the buckets, whatever races
    }
    out.errors = h.errors.load(std::memory_order_relaxed);
    out.sum_micros = h.sum_micros.load(std::memory_order_relaxed);
  }
  m->purges = purges.load(std::memory_order_relaxed);
  m->background_errors = background_errors.load(std::memory_order_relaxed);
  m->compaction_errors_retried = compaction_errors_retried.load(std::memory_order_relaxed);
  m->audit_auth_failures = audit_auth_failures.load(std::memory_order_relaxed);
  m->aead_open_failures = AeadFailures();
  m->signature_failures = SignatureFailures();
}

void CountAeadFailure() { g_aead_failures.fetch_add(1, std::memory_order_relaxed); }
void CountSignatureFailure() { g_signature_failures.fetch_add(1, std::memory_order_relaxed); }
uint64_t AeadFailures() { return g_aead_failures.load(std::memory_order_relaxed); }
uint64_t SignatureFailures() { return g_signature_failures.load(std::memory_order_relaxed); }

}  // namespace metrics
}  // namespace callvault
