// A shard: one RocksDB instance holding a bounded number of tenant column
// families. Every shard of a store shares one block cache, one write-buffer
// budget and the Env's thread pools (SharedResources).
// Thread safety: every method is safe to call concurrently.
#ifndef CALLVAULT_ENGINE_SHARD_H_
#define CALLVAULT_ENGINE_SHARD_H_

#include <rocksdb/db.h>
#include <rocksdb/file_system.h>
#include <rocksdb/io_status.h>
#include <rocksdb/listener.h>
#include <rocksdb/options.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "callvault/status.h"
#include "callvault/store.h"
#include "engine/dictionary_cache.h"
#include "engine/manifest_mark.h"
#include "engine/metrics_internal.h"
#include "engine/reseal.h"
#include "engine/wal_scan.h"

namespace callvault {

// Wraps the store's FileSystem to catch a failed Close of a file RocksDB
// wrote (WAL, MANIFEST, tables, OPTIONS): RocksDB 7.8's DB::Close closes
// its WAL and MANIFEST writers and drops their status, so Shard::Close and
// the store's Close ask this for the first such failure in their instance
// directory (TakeCloseError).
class CloseCheckFS : public rocksdb::FileSystemWrapper {
 public:
  explicit CloseCheckFS(const std::shared_ptr<rocksdb::FileSystem>& base)
      : FileSystemWrapper(base) {}
  const char* Name() const override { return "CallvaultCloseCheckFS"; }
  rocksdb::IOStatus NewWritableFile(const std::string& f, const rocksdb::FileOptions& o,
                                    std::unique_ptr<rocksdb::FSWritableFile>* r,
                                    rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus ReopenWritableFile(const std::string& f, const rocksdb::FileOptions& o,
                                       std::unique_ptr<rocksdb::FSWritableFile>* r,
                                       rocksdb::IODebugContext* dbg) override;
  // One descriptor per directory, shared: RocksDB 7.8.3 opens the
  // instance's directory again for every column family it creates
  // (CreateColumnFamily: AddDirectories with a map of its own), so a shard
  // kept one descriptor per tenant created since it opened (decision 0059).
  rocksdb::IOStatus NewDirectory(const std::string& name, const rocksdb::IOOptions& o,
                                 std::unique_ptr<rocksdb::FSDirectory>* r,
                                 rocksdb::IODebugContext* dbg) override;
  // A table file is checked before RocksDB gets it: its metaindex and
  // properties blocks against their checksums (engine/table_check.h; a
  // damaged properties block aborts RocksDB 7.8.3 otherwise).
  rocksdb::IOStatus NewRandomAccessFile(const std::string& f, const rocksdb::FileOptions& o,
                                        std::unique_ptr<rocksdb::FSRandomAccessFile>* r,
                                        rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus RenameFile(const std::string& src, const std::string& target,
                               const rocksdb::IOOptions& o, rocksdb::IODebugContext* dbg) override;
  // A MANIFEST given a read limit (LimitManifestRead) reads as if it ended
  // there.
  rocksdb::IOStatus NewSequentialFile(const std::string& f, const rocksdb::FileOptions& o,
                                      std::unique_ptr<rocksdb::FSSequentialFile>* r,
                                      rocksdb::IODebugContext* dbg) override;
  // Refused (kIOError, nothing deleted) for a MANIFEST, WAL, table or blob
  // file of a directory whose deletions are held (HoldDeletions).
  rocksdb::IOStatus DeleteFile(const std::string& f, const rocksdb::IOOptions& o,
                               rocksdb::IODebugContext* dbg) override;
  // A failed write or sync of a MANIFEST or of CURRENT's temp file, a
  // failed rename to CURRENT or a failed directory sync in `dir`: CURRENT
  // may still name a MANIFEST older than the one RocksDB writes to, and
  // 7.8 then deletes the files that older MANIFEST still needs (the
  // MANIFEST itself after a failed SetCurrentFile, the WALs and tables a
  // flush or compaction recorded only in the newer one). Every such
  // deletion in `dir` is refused until the instance is opened again
  // (ReleaseDeletions, at the start of its open), which reads CURRENT and
  // deletes what is really obsolete. As DB::DisableFileDeletions, but also
  // for RocksDB's background flushes and compactions. Decision 0025.
  void HoldDeletions(const std::string& dir);
  void ReleaseDeletions(const std::string& dir);
  bool DeletionsHeld(const std::string& dir);
  // Options::keep_rocksdb_options_file = false: RocksDB's temporary
  // OPTIONS files are refused at creation (fail_if_options_file_error off).
  void RefuseOptionsFiles() { refuse_options_files_ = true; }
  bool RefusesOptionsFiles() const { return refuse_options_files_; }
  void RecordCloseError(const std::string& path, const rocksdb::IOStatus& s);
  // After every successful sync of `path` (a MANIFEST-N): its synced
  // length recorded in its directory's MANIFEST_SYNCED (decision 0067). An
  // error fails the sync.
  rocksdb::IOStatus RecordManifestSynced(const std::string& path, uint64_t synced);
  // While set, `path` (a MANIFEST) reads only its first `bytes` bytes
  // (ManifestTailCut, around an instance's open).
  void LimitManifestRead(const std::string& path, uint64_t bytes);
  // `dir` holds an instance this process opened writable: its MANIFEST
  // syncs are recorded (only there: not a BackupEngine's copies).
  void TrackManifests(const std::string& dir) { manifest_marks_.Track(dir); }
  void ClearManifestLimit(const std::string& path);
  // A failed write, sync, directory sync or rename of a file directly in
  // `dir` (the instance's files may hold bytes never durable: no
  // high-water mark for it, decision 0015). TakeWriteFailure reports
  // whether one happened since the last call, and forgets it.
  void RecordWriteFailure(const std::string& dir);
  bool TakeWriteFailure(const std::string& dir);
  // The same, without forgetting it.
  bool WriteFailed(const std::string& dir);
  // kIOError for the first failed close of a file directly in `dir` since
  // the last call (then forgotten), or OK.
  Status TakeCloseError(const std::string& dir);

 private:
  std::mutex mu_;
  std::map<std::string, Status> failed_;  // GUARDED_BY(mu_); by directory
  std::set<std::string> write_failed_;     // GUARDED_BY(mu_)
  std::set<std::string> hold_deletes_;     // GUARDED_BY(mu_)
  std::map<std::string, uint64_t> read_limits_;  // GUARDED_BY(mu_); by path
  ManifestMarks manifest_marks_;
  bool refuse_options_files_ = false;      // set before any instance opens
  std::mutex dirs_mu_;
  // By path; alive while a CheckedDirectory holds it.
  std::map<std::string, std::weak_ptr<rocksdb::FSDirectory>> dirs_;  // GUARDED_BY(dirs_mu_)
};

// What ManifestTailCut::lost() says for `m` and the MANIFEST_SYNCED bytes
// `mark_file` read before it: "" when the MANIFEST reads whole up to its
// synced length, or no mark names it.
std::string ManifestSyncedLoss(const std::string& mark_file, const walscan::ManifestInfo& m);

// Around one open of the instance in `dir` (decision 0067): when the
// MANIFEST CURRENT names (`m`) has records that cannot be read, all at or
// past the length `mark_file` (its MANIFEST_SYNCED, ReadManifestMarkFile,
// read before `m`) records as synced (a write a crash tore: never
// acknowledged), RocksDB reads it only up to its last whole record until
// this is destroyed. When the MANIFEST does not read whole up to that
// length (damaged or cut), nothing is cut and lost() says what: an
// acknowledged edit is gone. Without a mark for that MANIFEST (a store
// restored from a backup, one of an older build) nothing is cut and
// nothing is said: RocksDB decides, as before.
class ManifestTailCut {
 public:
  ManifestTailCut(CloseCheckFS* fs, const std::string& dir, const std::string& mark_file,
                  const walscan::ManifestInfo& m);
  ~ManifestTailCut();
  ManifestTailCut(const ManifestTailCut&) = delete;
  ManifestTailCut& operator=(const ManifestTailCut&) = delete;
  // For the info log ("" when nothing is cut).
  const std::string& what() const { return what_; }
  // "MANIFEST-000012 reads whole only to byte R of the S synced ..." or "".
  const std::string& lost() const { return lost_; }

 private:
  CloseCheckFS* const fs_;
  std::string path_;  // "" when nothing is cut
  std::string what_;
  std::string lost_;
};

// Each writable instance's max_open_files: at most this (what it always
// was), at least the floor; instances that cannot all have the floor
// within the process's limit are refused (docs/decisions/0059).
constexpr int kMaxOpenFilesPerInstance = 512;
constexpr int kMinOpenFilesPerInstance = 64;

// Raises the soft RLIMIT_NOFILE to the hard limit if it is lower (never
// lowers it) and returns the soft limit; `*raised` says what changed ("" if
// nothing did).
uint64_t RaiseFileLimit(std::string* raised);
// The descriptors kept back from the instances' table files at `limit`:
// their WALs, MANIFESTs, LOCK and info logs, blob and table files being
// written by flushes and compactions, readers an iterator holds past its
// instance's cache, the key directory, ingest files, and the embedding
// service's own (sockets).
uint64_t FileReserve(uint64_t limit);
// max_open_files for each of `shards` shards and the metadata instance
// within `limit`, or 0 if they cannot all have kMinOpenFilesPerInstance.
int OpenFilesPerInstance(uint64_t limit, uint32_t shards);
// Each instance's max_total_wal_size for a store of `shards` shards
// (decision 0065): the shared memtable budget split between the shards, at
// least 128 MiB. At a shard's share of the budget, so that in steady ingest
// the budget's flushes (one family at a time) come first; a shard with an
// idle family holds WAL files up to it.
uint64_t WalCapBytes(uint64_t write_buffer_budget, uint32_t shards);
// RocksDB's flush pool (Options::flush_threads; 0 = the default).
int FlushThreads(const Options& options);
// FlushBacklog's bound: Options::flush_backlog_bytes `option` if set, else
// the whole memtable budget for a store of one shard (`shards` <= 1) and
// half of it for more (decision 0070). One shard's WAL cap is the budget
// (or more, at its 128 MiB floor), and at the cap RocksDB switches out at
// once every family with data in the oldest WAL file: memtables holding up
// to what the WAL does, the budget's worth; a bound below that made every
// such switch hold the writers. With more shards a shard's memtables hold
// its share of the budget, at most half.
size_t FlushBacklogLimit(size_t option, size_t budget, uint32_t shards);
// The most shards OpenFilesPerInstance gives a budget for at `limit`.
uint32_t MaxShardsForLimit(uint64_t limit);
// The least limit at which OpenFilesPerInstance gives `shards` a budget.
uint64_t FileLimitNeeded(uint32_t shards);

// Returns to the system the memory the memtables gave back
// (Options::heap_trim_step_bytes, docs/decisions/0060). glibc keeps freed
// memory in its heaps, and the memtables' arena blocks are freed between
// longer-lived allocations made meanwhile (table readers, versions), so
// what they held at their peak stayed resident after every flush. One per
// store, a listener of every instance: it follows the write buffer
// manager's count from flush to flush and, once it has fallen by `step`
// from its high mark since the last trim and is below a quarter of the
// budget (the writes have slowed down), calls malloc_trim(0) in the
// flush thread that saw it (not in a writer's: the synced put path pays
// nothing). Checked when a flush begins as well as when it completes: a
// flushed memtable is freed only after its flush's completion is reported,
// so the next flush is the first to see it gone. A no-op with step 0 and
// off glibc.
class HeapTrimmer : public rocksdb::EventListener {
 public:
  HeapTrimmer(std::shared_ptr<rocksdb::WriteBufferManager> wbm, size_t step)
      : wbm_(std::move(wbm)), step_(step) {}
  void OnFlushBegin(rocksdb::DB*, const rocksdb::FlushJobInfo&) override { MaybeTrim(); }
  void OnFlushCompleted(rocksdb::DB*, const rocksdb::FlushJobInfo&) override { MaybeTrim(); }
  uint64_t trims() const { return trims_.load(std::memory_order_relaxed); }

 private:
  void MaybeTrim();

  const std::shared_ptr<rocksdb::WriteBufferManager> wbm_;
  const size_t step_;
  std::atomic<size_t> high_{0};  // the count's high mark since the last trim
  std::atomic<bool> trimming_{false};
  std::atomic<uint64_t> trims_{0};
};

// Holds writers back while the memtables switched out and queued for a
// flush hold more than a bound (Options::flush_backlog_bytes,
// docs/decisions/0066). The shared write buffer manager switches the
// oldest family's memtable whenever the budget is full, and a switched
// memtable no longer counts against it: with many active tenants the
// switches outran the flush threads and memtables reached 12x the budget.
// RocksDB's own stall on the budget (allow_stall) waits for every instance
// to flush, which an idle shard never does; this waits only for memtables
// already queued, which drain without writes. One per store, a listener of
// every instance.
class FlushBacklog : public rocksdb::EventListener {
 public:
  // A wait gives up once the backlog has not fallen to a new low for
  // `patience` (or after 10 x `patience` in all): a failed flush (a full
  // disk, a background error) keeps its memtables in the backlog until the
  // reopen, and a reader may pin flushed ones, so the flushes of the
  // healthy shards may never bring it under the bound. Then writers pass
  // without waiting for `rearm`, or until a check finds the backlog under
  // the bound, before one waits again.
  FlushBacklog(std::shared_ptr<rocksdb::WriteBufferManager> wbm, size_t limit,
               std::chrono::milliseconds patience = std::chrono::seconds(1),
               std::chrono::milliseconds rearm = std::chrono::seconds(10))
      : wbm_(std::move(wbm)), limit_(limit), patience_(patience), rearm_(rearm) {}
  // Before a write, holding no lock: returns at once while the backlog is
  // within the bound.
  void Wait();
  void OnFlushCompleted(rocksdb::DB*, const rocksdb::FlushJobInfo&) override;
  // Memtables switched out and not freed yet: queued, being flushed, or
  // flushed and still pinned by a reader; without those of instances in
  // RocksDB's background-error state (`set_excluded`).
  uint64_t backlog() const {
    const size_t used = wbm_->memory_usage(), active = wbm_->mutable_memtable_memory_usage();
    const uint64_t switched = used > active ? used - active : 0;
    const uint64_t excluded = excluded_ ? excluded_() : 0;
    return switched > excluded ? switched - excluded : 0;
  }
  // What backlog() leaves out: the switched-out memtables of failed
  // instances, which no flush frees until the store is reopened (decision
  // 0071). REQUIRES: before the first Wait.
  void set_excluded(std::function<uint64_t()> excluded) { excluded_ = std::move(excluded); }
  size_t limit() const { return limit_.load(std::memory_order_relaxed); }
  // When the store sizes itself for more shards (FlushBacklogLimit).
  void SetLimit(size_t limit) { limit_.store(limit, std::memory_order_relaxed); }
  uint64_t waits() const { return waits_.load(std::memory_order_relaxed); }
  uint64_t wait_micros() const { return wait_micros_.load(std::memory_order_relaxed); }
  uint64_t gave_up() const { return gave_up_.load(std::memory_order_relaxed); }
  // Its figures into `out` (Metrics or StoreStats::Memory: the same names).
  template <typename T>
  void Fill(T* out) const {
    out->flush_backlog_bytes = backlog();
    out->flush_backlog_limit = limit();
    out->flush_backlog_waits = waits();
    out->flush_backlog_wait_micros = wait_micros();
    out->flush_backlog_gave_up = gave_up();
  }

 private:
  const std::shared_ptr<rocksdb::WriteBufferManager> wbm_;
  std::function<uint64_t()> excluded_;
  std::atomic<size_t> limit_;
  const std::chrono::milliseconds patience_, rearm_;
  std::mutex mu_;
  std::condition_variable cv_;
  // Writers pass without waiting until this time (steady clock, µs since
  // its epoch; 0 = wait), set when a wait gave up.
  std::atomic<int64_t> pass_until_{0};
  std::atomic<uint64_t> waits_{0}, wait_micros_{0}, gave_up_{0};
};

// Free memory malloc holds for the whole process (glibc's mallinfo2), 0
// where unknown.
uint64_t AllocatorFreeBytes();

struct SharedResources {
  // options.env with its FileSystem wrapped in `close_check` (threads and
  // clock are options.env's).
  rocksdb::Env* env = nullptr;
  std::shared_ptr<CloseCheckFS> close_check;
  std::unique_ptr<rocksdb::Env> own_env;
  std::shared_ptr<rocksdb::Cache> block_cache;
  std::shared_ptr<rocksdb::WriteBufferManager> write_buffer_manager;
  // In db_options.listeners: every instance's flushes report to it.
  std::shared_ptr<HeapTrimmer> heap_trimmer;
  // Likewise: holds writers back while the flushes fall behind.
  std::shared_ptr<FlushBacklog> flush_backlog;
  // Every tenant's loaded compression dictionaries, within
  // Options::dictionary_cache_bytes.
  std::unique_ptr<DictionaryCache> dictionaries;
  rocksdb::DBOptions db_options;
  // Every shard's families: these, with the shard's own reseal filter.
  rocksdb::ColumnFamilyOptions tenant_cf_options;
  // Options::defer_compression (decision 0052), and what the shards'
  // reseal filters did.
  bool defer_compression = true;
  // Options::recording_ingest (decision 0055).
  bool recording_ingest = true;
  // Options::recording_pipeline (decision 0061).
  bool recording_pipeline = true;
  mutable ResealCounters reseal;
  // What the WAL scans of this open cost (StoreStats::open), summed over
  // the metadata instance and the shards, which open in parallel.
  mutable std::atomic<uint64_t> wal_scan_micros{0}, wal_scan_bytes{0}, wal_scan_files{0};
  void CountWalScan(const walscan::ScanResult& r) const {
    wal_scan_micros += r.micros;
    wal_scan_bytes += r.bytes;
    wal_scan_files += r.files;
  }

  // The process's file descriptors, shared by the store's instances
  // (docs/decisions/0059): RLIMIT_NOFILE (soft, after Make raised it to
  // the hard limit), the part kept back, and each writable instance's
  // max_open_files (its table and blob file readers, plus RocksDB's own
  // 10), sized for `planned_shards` shards and the metadata instance.
  // Changed under the store's admin lock; atomics for Stats and Metrics.
  uint64_t nofile_limit = 0;
  uint64_t nofile_reserve = 0;
  std::string nofile_raised;  // what Make did to the limit, for the info log ("" if nothing)
  std::atomic<int> open_files_per_instance{kMaxOpenFilesPerInstance};
  std::atomic<uint32_t> planned_shards{0};
  // max_total_wal_size of each writable instance, for `planned_shards`
  // (WalCapBytes); set with it.
  std::atomic<uint64_t> wal_cap_bytes{0};
  // Options::flush_backlog_bytes (0: the bound follows the shard count,
  // FlushBacklogLimit).
  size_t flush_backlog_option = 0;

  // Writable shards in RocksDB's background-error state (ErrorFlag): their
  // switched-out memtables stay until the store is reopened, so the flush
  // backlog leaves them out (decision 0071). `hard`: RocksDB refuses the
  // instance's writes (severity kHardError or worse), and all of what it
  // holds is left out; otherwise up to what it held when first seen failed
  // (an instance that still takes writes after a soft error, and switches
  // more out, counts again beyond that).
  void AddFailedInstance(rocksdb::DB* db, bool hard) const;
  void RemoveFailedInstance(rocksdb::DB* db) const;
  // Recomputed at most every 100 ms (writers read the last figure: no lock,
  // no RocksDB call per write), and at once after an instance is added or
  // removed.
  uint64_t FailedInstancesBacklog() const;
  struct FailedInstance {
    bool hard = false;
    uint64_t cap = UINT64_MAX;  // until first seen
  };
  mutable std::mutex failed_mu;
  mutable std::map<rocksdb::DB*, FailedInstance> failed_instances;  // GUARDED_BY(failed_mu)
  mutable std::atomic<size_t> failed_instance_count{0};
  mutable std::atomic<uint64_t> failed_backlog{0};
  mutable std::atomic<int64_t> failed_backlog_at{0};  // steady µs; 0 = stale

  // Store::Metrics: the operations' recorder, and RocksDB's tickers
  // (kExceptHistogramOrTimers) shared by every instance of the store.
  mutable metrics::Recorder metrics;
  std::shared_ptr<rocksdb::Statistics> statistics;
  // Options::logger (empty: none).
  Logger logger;
  // The info log of instance `dir` ("rocksdb:<source>" for the logger):
  // the logger when there is one, else <dir>/LOG, or nothing read-only.
  std::shared_ptr<rocksdb::Logger> InfoLog(const std::string& dir, const std::string& source,
                                           bool read_only) const;
  // An engine message to the logger, if any (no tenant ids, no data).
  void Log(LogLevel level, std::string_view message) const {
    if (logger) logger(level, "callvault", message);
  }

  static std::unique_ptr<SharedResources> Make(const Options& options);
};

// Removes RocksDB's OPTIONS files from the instance directory `dir` when
// the store keeps none (Options::keep_rocksdb_options_file = false): those
// a run that kept them left behind. RocksDB removes an old one only after
// writing a new one, and `ldb` would load the stale one, whose family list
// no longer matches the MANIFEST. Call it holding the store's lock. A file
// that cannot be removed is left and said in `info_log` (the instance's
// info log: its LOG file, or Options::logger); nothing of the store reads it.
void RemoveStaleOptionsFiles(const SharedResources& res, const std::string& dir,
                             rocksdb::Logger* info_log);

// Set when RocksDB puts an instance into its background-error state (a WAL
// write or sync failed, a flush failed, ...). After a failed WAL write,
// Debian's RocksDB 7.8 (built with assertions) aborts the process in
// FlushWAL(true) / SyncWAL, so nothing may sync the WAL of a failed
// instance again; and a failed fsync must not be retried anyway.
//
// A compaction that fails with a corruption (it read a damaged SST or blob
// file of one family) is not an error of the instance: it is reported to
// the store as that family's damage (TakeDamagedFamilies) and suppressed,
// so the other families of the shard keep serving reads and writes
// (docs/decisions/0014). With `suppress_compaction_corruption` false
// (the metadata instance) it stops the instance as before.
class ErrorFlag : public rocksdb::EventListener {
 public:
  explicit ErrorFlag(bool suppress_compaction_corruption = false)
      : suppress_(suppress_compaction_corruption) {}
  void OnCompactionCompleted(rocksdb::DB*, const rocksdb::CompactionJobInfo& ci) override {
    if (suppress_ && ci.status.IsCorruption()) {
      std::lock_guard<std::mutex> l(mu_);
      damaged_[ci.cf_name] = ci.status.ToString();
    }
  }
  void OnBackgroundError(rocksdb::BackgroundErrorReason reason, rocksdb::Status* s) override {
    if (s == nullptr || s->ok()) return;
    if (suppress_ && reason == rocksdb::BackgroundErrorReason::kCompaction && s->IsCorruption()) {
      *s = rocksdb::Status::OK();  // the family is marked damaged instead
      return;
    }
    // RocksDB 7.8 reports a retryable I/O error of a compaction with no
    // severity and does not stop the instance ("Compaction will schedule by
    // itself"): the compaction's inputs stay and its outputs are deleted,
    // nothing written or synced before is in doubt, and the instance's
    // flushes and WAL syncs go on. Not a failed instance: its memtables
    // stay in the backlog, and its flushes, syncs and close mark go on
    // (decision 0083). Only that error: a shard opened without paranoid
    // checks (around damage) gets every compaction error with no severity.
    if (RetriedCompactionError(reason, *s)) {
      if (retried_ != nullptr) retried_->fetch_add(1, std::memory_order_relaxed);
      if (res_ != nullptr) {
        res_->Log(LogLevel::kWarn, source_ + ": RocksDB compaction failed (" + s->ToString() +
                                       "); RocksDB retries it, the instance goes on");
      }
      return;
    }
    if (errors_ != nullptr) errors_->fetch_add(1, std::memory_order_relaxed);
    const bool hard = s->severity() >= rocksdb::Status::Severity::kHardError;
    {
      std::lock_guard<std::mutex> l(mu_);
      failed_.store(true);
      hard_ = hard_ || hard;
      if (db_ != nullptr && res_ != nullptr) res_->AddFailedInstance(db_, hard_);
    }
    if (res_ != nullptr) {
      res_->Log(LogLevel::kError, source_ + ": RocksDB background error (" +
                                      BackgroundReasonName(reason) + "): " + s->ToString() +
                                      "; writes refused until the store is reopened");
    }
  }
  // Counts background errors in the store's metrics and logs them.
  // REQUIRES: before the instance opens.
  void Attach(const SharedResources* res, std::string source) {
    res_ = res;
    errors_ = &res->metrics.background_errors;
    retried_ = &res->metrics.compaction_errors_retried;
    source_ = std::move(source);
  }
  // A compaction's I/O error RocksDB 7.8 retries without stopping the
  // instance (ErrorHandler::SetBGError: retryable or file-scoped, not a
  // full disk, reported with no severity); not a fenced file system.
  static bool RetriedCompactionError(rocksdb::BackgroundErrorReason reason,
                                     const rocksdb::Status& s) {
    if (reason != rocksdb::BackgroundErrorReason::kCompaction || !s.IsIOError() ||
        s.severity() != rocksdb::Status::Severity::kNoError) {
      return false;
    }
    if (s.subcode() == rocksdb::Status::kNoSpace || s.subcode() == rocksdb::Status::kIOFenced) {
      return false;
    }
    const rocksdb::IOStatus io = rocksdb::status_to_io_status(rocksdb::Status(s));
    if (io.GetDataLoss()) return false;
    return io.GetRetryable() || io.GetScope() == rocksdb::IOStatus::kIOErrorScopeFile;
  }
  static const char* BackgroundReasonName(rocksdb::BackgroundErrorReason r) {
    switch (r) {
      case rocksdb::BackgroundErrorReason::kFlush: return "flush";
      case rocksdb::BackgroundErrorReason::kCompaction: return "compaction";
      case rocksdb::BackgroundErrorReason::kWriteCallback: return "write";
      case rocksdb::BackgroundErrorReason::kMemTable: return "memtable";
      case rocksdb::BackgroundErrorReason::kManifestWrite: return "manifest write";
      case rocksdb::BackgroundErrorReason::kFlushNoWAL: return "flush";
      case rocksdb::BackgroundErrorReason::kManifestWriteNoWAL: return "manifest write";
    }
    return "unknown";
  }
  // No automatic recovery (RocksDB's ErrorHandler resumes by itself after
  // a full disk through the SstFileManager): a failed write or sync is not
  // retried in place (see above), the store reports it and is reopened.
  // Debian's 7.8 (assertions on) also aborts the process in that resume
  // (DBImpl::ResumeImpl: "Assertion `file_deletion_disabled' failed"),
  // which attack11_test's ENOSPC trials met.
  void OnErrorRecoveryBegin(rocksdb::BackgroundErrorReason, rocksdb::Status,
                            bool* auto_recovery) override {
    if (auto_recovery != nullptr) *auto_recovery = false;
  }
  bool failed() const { return failed_.load(); }
  // The instance once open, nullptr before it closes: while set, a failure
  // registers it with the store's resources (AddFailedInstance), and
  // clearing it removes it again. Writable shards only.
  void SetDb(rocksdb::DB* db) {
    std::lock_guard<std::mutex> l(mu_);
    if (db == nullptr && db_ != nullptr && res_ != nullptr) res_->RemoveFailedInstance(db_);
    db_ = db;
    if (db_ != nullptr && failed_.load() && res_ != nullptr) res_->AddFailedInstance(db_, hard_);
  }
  // Families whose compaction met a corruption since the last call, with
  // RocksDB's message.
  std::map<std::string, std::string> TakeDamagedFamilies() {
    std::lock_guard<std::mutex> l(mu_);
    return std::exchange(damaged_, {});
  }

 private:
  const bool suppress_;
  const SharedResources* res_ = nullptr;
  std::atomic<uint64_t>* errors_ = nullptr;
  std::atomic<uint64_t>* retried_ = nullptr;
  std::string source_ = "instance";
  std::atomic<bool> failed_{false};  // set under mu_ (SetDb reads it there)
  std::mutex mu_;
  std::map<std::string, std::string> damaged_;  // GUARDED_BY(mu_)
  rocksdb::DB* db_ = nullptr;                   // GUARDED_BY(mu_)
  bool hard_ = false;                           // GUARDED_BY(mu_): AddFailedInstance's
};

// Damage found by the open: the WAL scan's (engine/wal_scan.h), with the
// families that lost acknowledged writes by name; or a damaged table file
// the open itself read, with its family.
struct WalDamage {
  std::string kind = "wal_damage";    // or "file_damage" (a table file)
  std::string description;            // file, offset, reason; no content
  std::vector<std::string> families;  // names; empty with all_families
  bool all_families = false;          // the lost records could not all be attributed
};

// A durable high-water mark (docs/decisions/0015, 0035): what a clean close
// of a shard (or the metadata instance) left, kept by the store in
// <store>/CLOSE_MARK (engine/close_mark.h; older: header `shard_mark.<i>`)
// and checked by the next open. No content: a sequence number and sizes.
struct ShardMark {
  // The highest sequence number of a whole record in the WAL files at
  // close (walscan's last_sequence): what they must replay to again.
  uint64_t sequence = 0;
  // The MANIFEST that CURRENT named at close and its size, and every
  // non-empty WAL file with its size. Valid only while CURRENT still names
  // that MANIFEST (every writable open starts a new one); empty `manifest`:
  // no file check (a mark lowered after a reported loss).
  std::string manifest;
  uint64_t manifest_size = 0;
  std::vector<std::pair<std::string, uint64_t>> wals;
  // WAL file name -> its WalEdgeDigest (TakeMark; the WAL ledger v3 keeps
  // them, CLOSE_MARK does not): checked by CheckMarkFiles for a ledger
  // mark, so that another file of the same length in its place (another
  // shard's WAL, copied back by hand) is not taken for it, nor one whose
  // end was overwritten.
  std::map<std::string, std::string> edges;
  // "v1 <sequence> <manifest or -> <size> [<wal> <size>]..." (no edges)
  std::string Encode() const;
  static bool Decode(std::string_view text, ShardMark* out);
};

// The store header field that holds shard `index`'s mark.
inline std::string ShardMarkField(uint32_t index) { return "shard_mark." + std::to_string(index); }

// FlushWAL(true) unless `flag` says the instance failed, or `fs` (the
// store's, made at its open) saw a write of a file in `dir` (the instance's
// directory) fail:
// then kIOError, and the WAL is left alone. RocksDB 7.8.3 (Debian's build
// keeps its assertions) aborts the process when it syncs a WAL writer that
// saw an error, and an instance opened degraded (paranoid_checks off,
// decision 0014) raises no background error for a failed WAL write.
Status SyncWal(rocksdb::DB* db, const ErrorFlag& flag, std::string_view what,
               CloseCheckFS* fs = nullptr, const std::string& dir = "");

// What a read-only open of the instance at `dir` would read first: the
// name of its current MANIFEST and that file's size. A read-only open
// beside a writer is only consistent if this did not change while it ran
// (a flush the open did not see may have deleted a WAL it then missed).
std::string ManifestStamp(rocksdb::FileSystem* fs, const std::string& dir);
// An unreadable CURRENT, or one naming a missing MANIFEST, is part of the
// stamp: it changes when a writer moves to a new MANIFEST (a race), and
// stays the same when CURRENT is damaged or gone, so that the open's own
// error is returned at once instead of being retried as a race.
// kIOError carrying kRaceMessage if the stamp changed.
inline constexpr std::string_view kRaceMessage =
    "read-only open: the writer changed the instance while it was read";
Status CheckStamp(rocksdb::FileSystem* fs, const std::string& dir, const std::string& before);
// Runs `attempt` (one read-only open of one instance) again while it fails
// with a CheckStamp race, backing off, at most kReadOnlyAttempts times more.
// Any other error, or success, is returned at once.
inline constexpr int kReadOnlyAttempts = 100;
Status RetryWhileRacing(const std::function<Status()>& attempt);

class Shard {
 public:
  // Opens every column family listed in the MANIFEST (ListColumnFamilies),
  // so that families whose tenant has no key can still be dropped.
  // With `read_only`: RocksDB's read-only instance (no lock, nothing
  // written; every table file opened at once, so a writer's compactions
  // cannot take one away later), its info log discarded; Create, Drop,
  // FlushAll and SyncWal are not to be called.
  // With `mark` (the store's record of the last clean close): files the
  // mark names that are now shorter or gone (before the WAL scan), or WAL
  // files that replay to a lower sequence number than the mark's, are
  // reported as wal_damage() of kind "shard_loss" for every family: the
  // lost records cannot be attributed (docs/decisions/0015). An existing
  // shard (not `create`) that RocksDB will not open with not-found or
  // invalid-argument is kCorruption "shard N damaged".
  static Result<std::unique_ptr<Shard>> Open(uint32_t index, const std::string& path,
                                             const SharedResources& res, bool create,
                                             bool read_only = false,
                                             const ShardMark* mark = nullptr);
  // Calls Close, ignoring its status.
  ~Shard();
  // Syncs the WAL (unless read-only), destroys the family handles and
  // closes the instance (DB::Close, whose status is checked); returns the
  // first error of these, after doing all of them. Afterwards db() is
  // nullptr and only the destructor may be called. A second call does
  // nothing and returns OK. REQUIRES: no other thread uses the shard.
  Status Close();
  // After a Close that synced the WAL and closed without an error
  // (writable shards only): the mark to record for the next open.
  const std::optional<ShardMark>& close_mark() const { return close_mark_; }

  uint32_t index() const { return index_; }
  const std::string& path() const { return path_; }
  rocksdb::DB* db() const { return db_.get(); }
  // The store's dictionary cache (shared by every shard).
  DictionaryCache& dictionaries() const { return *res_->dictionaries; }

  // REQUIRES: the caller serialises Create and Drop (the store's admin lock).
  Result<rocksdb::ColumnFamilyHandle*> Create(const std::string& name);
  // Drops the family and destroys its handle. REQUIRES: no other thread
  // holds the handle (the tenant's exclusive lock).
  Status Drop(rocksdb::ColumnFamilyHandle* cf);
  // Drops the family as Drop does (durably: the drop is in the synced
  // MANIFEST when this returns), but destroys its handle, which deletes the
  // family's files (~0.3 ms per MB here), on the shard's reaper thread;
  // then calls `deleted(status of destroying the handle)` on that thread.
  // Close drains the reaper first. A crash before the handle is destroyed
  // leaves files RocksDB deletes at the next open (the family is not in the
  // MANIFEST). Same REQUIREMENTS as Drop.
  Status DropAndDeleteLater(rocksdb::ColumnFamilyHandle* cf, std::function<void(Status)> deleted);
  // Dropped families whose handles the reaper has not destroyed yet.
  size_t deletions_pending() const;
  // The handle of family `name`, or nullptr.
  rocksdb::ColumnFamilyHandle* Find(const std::string& name) const;
  std::vector<std::string> FamilyNames() const;
  // Flushes every family's memtable and syncs the WAL, so that no WAL file
  // is kept alive by unflushed data. Holds off Drop while it runs.
  Status FlushAll();
  // Syncs every live WAL (SyncWal above).
  Status SyncWal();
  // In RocksDB's background-error state (ErrorFlag): writes and flushes of
  // it fail until the store is reopened.
  bool failed() const { return error_->failed(); }
  // Options::defer_compression: writers seal call records uncompressed.
  bool defer_compression() const { return res_->defer_compression; }
  // Options::recording_ingest: recording writers seal their chunks into a
  // table file of their own in ingest_dir() and ingest it at Finish
  // (decision 0055).
  bool recording_ingest() const { return res_->recording_ingest; }
  // Options::recording_pipeline: an ingesting writer hashes and writes a
  // chunk on a thread of its own while it seals the next (decision 0061).
  bool recording_pipeline() const { return res_->recording_pipeline; }
  // <shard>/ingest: the table files of recordings being written, each
  // named by its writer (engine/recordings.cc). Not RocksDB's: it never
  // lists subdirectories. Emptied at every writable open (a file there is
  // a crash's leftover, or planted: never ingested); created by the first
  // writer that needs it.
  std::string ingest_dir() const { return path_ + "/ingest"; }
  // Where the shard's reseal filter finds a family's tenant (decision
  // 0052); until set, and after Close starts, records stay as written.
  void SetResealLookup(ResealFilterFactory::Lookup lookup) { reseal_->SetLookup(std::move(lookup)); }
  size_t family_count() const;
  // What the WAL scan at open found (writable and read-only opens).
  const std::vector<WalDamage>& wal_damage() const { return wal_damage_; }
  // Removes the damaged WAL files kept beside the repaired ones, once the
  // store has recorded their damage durably.
  Status DropWalEvidence();
  // See ErrorFlag::TakeDamagedFamilies.
  std::map<std::string, std::string> TakeDamagedFamilies() { return error_->TakeDamagedFamilies(); }
  // Stops automatic compactions of a damaged family, so that they do not
  // keep re-reading its damaged files.
  Status DisableCompactions(rocksdb::ColumnFamilyHandle* cf, bool disable);

 private:
  void Reap();  // the reaper thread's loop
  void StopReaper();

  static Result<std::unique_ptr<Shard>> OpenOnce(uint32_t index, const std::string& path,
                                                 const SharedResources& res, bool create,
                                                 bool read_only, const ShardMark* mark);
  Shard(uint32_t index, std::string path, const SharedResources* res, bool read_only)
      : index_(index), path_(std::move(path)), res_(res), read_only_(read_only) {}

  const uint32_t index_;
  const std::string path_;
  const SharedResources* const res_;  // owned by the store; outlives the shard
  const bool read_only_;
  // res_->tenant_cf_options with this shard's reseal filter factory.
  std::shared_ptr<ResealFilterFactory> reseal_ =
      std::make_shared<ResealFilterFactory>(&res_->reseal);
  rocksdb::ColumnFamilyOptions cf_options_;
  std::shared_ptr<ErrorFlag> error_ = std::make_shared<ErrorFlag>(true);  // listens on db_
  std::vector<WalDamage> wal_damage_;  // fixed after open
  std::vector<std::string> wal_evidence_;
  std::optional<ShardMark> close_mark_;  // set by Close
  // Opened with paranoid_checks off around a damaged table file (decision
  // 0014): a failed WAL write then does not stop the instance by itself.
  bool degraded_ = false;
  // Read-only, damaged WAL: the Env whose FileSystem serves the repaired
  // WAL content (RepairedWalFS in shard.cc). Outlives db_.
  std::unique_ptr<rocksdb::Env> view_env_;
  std::unique_ptr<rocksdb::DB> db_;
  mutable std::mutex mu_;
  std::map<std::string, rocksdb::ColumnFamilyHandle*> families_;  // GUARDED_BY(mu_); excl. default
  // The reaper (DropAndDeleteLater): started at its first use, stopped by
  // Close after it has destroyed every handle queued.
  mutable std::mutex reap_mu_;
  std::condition_variable reap_cv_;
  std::deque<std::pair<rocksdb::ColumnFamilyHandle*, std::function<void(Status)>>>
      reap_queue_;             // GUARDED_BY(reap_mu_)
  size_t reap_running_ = 0;    // GUARDED_BY(reap_mu_): popped, not yet destroyed
  bool reap_stop_ = false;     // GUARDED_BY(reap_mu_)
  std::thread reaper_;         // joinable once started
};

}  // namespace callvault

#endif  // CALLVAULT_ENGINE_SHARD_H_
