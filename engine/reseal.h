// Deferred compression (docs/decisions/0052): a call's records are sealed
// uncompressed by the writer (codec none; the WAL and the memtable only
// ever hold them sealed) and compressed, with the tenant's dictionary, and
// sealed again when RocksDB writes them into a table file: a compaction
// filter, run by flushes and compactions, asks the family's tenant to
// reseal each such record. A record the tenant cannot open under its own
// key and binding (damaged, moved from another row or tenant, a purged
// tenant's) is kept exactly as it is, so damage stays visible to reads and
// Verify; nothing is ever removed by the filter.
#ifndef CALLVAULT_ENGINE_RESEAL_H_
#define CALLVAULT_ENGINE_RESEAL_H_

#include <rocksdb/compaction_filter.h>

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "format/envelope.h"
#include "format/rowkey.h"

namespace callvault {

class Resealer {
 public:
  virtual ~Resealer() = default;
  // Sets *out to `value` (a record of row `key`) compressed and sealed again
  // and returns true, or returns false to keep `value` as it is. Never
  // blocks on a lock held by an operation: a flush must not wait for a
  // purge, nor a purge for a flush.
  virtual bool Reseal(std::string_view key, std::string_view value, std::string* out) = 0;
};

// Whether a call's part is ever left uncompressed for the filter: its
// metadata, transcript and insights; not its summary (mostly keyed hashes,
// small, and with a dictionary often not smaller compressed, so the filter
// would try it again at every compaction). The writer (calls.cc) and the
// filter both ask this, so they cannot disagree.
inline bool DeferredPart(format::Part part) { return part != format::Part::kSummary; }

// Whether `value` of row `key` is a record a writer left uncompressed for
// the filter: a call's metadata, transcript or insights record
// (format::CallKey; not the summary, which writers compress themselves)
// whose envelope parses, with codec none and a plaintext of at least
// record::kCompressMinBytes (smaller ones are never compressed). Reads the
// envelope's header only.
bool DeferredRecord(std::string_view key, std::string_view value);

// Whether row `key` may hold a deferred record, from the key alone: a
// call's metadata, transcript or insights row.
bool DeferredRow(std::string_view key);

// The shards' min_blob_size: RocksDB moves a value of this size or more
// into a blob file when it writes a table. A recording's full chunk (1 MiB
// and its seal) is one; a long call's records (a three-hour meeting's
// transcript is ~400 KiB) stay in table files and are deferred (decision
// 0081).
inline constexpr uint64_t kMinBlobBytes = 1u << 20;

// Whether a record of `plaintext_bytes` may be left uncompressed for the
// filter: only if sealed it stays below kMinBlobBytes, so a deferred record
// never goes to a blob file, whose values compactions do not read back (a
// record flushed before its tenant was reachable, during an open's WAL
// replay or a move's copy, would stay uncompressed there for good). Table
// files are rewritten by compactions, which reseal what they hold. Larger
// records are compressed by the writer (decision 0079: reading blobs back
// in compactions was tried and not kept).
inline bool DeferrableSize(size_t plaintext_bytes) {
  return plaintext_bytes + format::kEnvelopeOverhead < kMinBlobBytes;
}

// What the filters did since the store opened (StoreStats::compression).
struct ResealCounters {
  std::atomic<uint64_t> resealed{0};  // records compressed and sealed again
  std::atomic<uint64_t> kept{0};      // deferred records kept as they were
};

// One per shard (its families' options). Until SetLookup and after
// ClearLookup, no filter is created: records stay as written and a later
// compaction reseals them.
class ResealFilterFactory : public rocksdb::CompactionFilterFactory {
 public:
  // The resealer of the family with this id in this shard, or nullptr.
  // Called from RocksDB's background threads; must not block.
  using Lookup = std::function<std::shared_ptr<Resealer>(uint32_t cf_id)>;

  explicit ResealFilterFactory(ResealCounters* counters) : counters_(counters) {}
  void SetLookup(Lookup lookup);
  // Waits for a lookup in progress; none runs afterwards.
  void ClearLookup();

  std::unique_ptr<rocksdb::CompactionFilter> CreateCompactionFilter(
      const rocksdb::CompactionFilter::Context& context) override;
  bool ShouldFilterTableFileCreation(rocksdb::TableFileCreationReason reason) const override {
    return reason == rocksdb::TableFileCreationReason::kFlush ||
           reason == rocksdb::TableFileCreationReason::kCompaction;
  }
  const char* Name() const override { return "callvault.ResealFilterFactory"; }

 private:
  ResealCounters* const counters_;
  std::mutex mu_;
  Lookup lookup_;  // GUARDED_BY(mu_)
};

}  // namespace callvault

#endif  // CALLVAULT_ENGINE_RESEAL_H_
