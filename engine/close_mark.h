// The close mark file <store>/CLOSE_MARK (docs/decisions/0035, amending
// 0015; format in docs/format.md, "Close mark"): the high-water marks a
// clean Store::Close leaves, of every shard and of the metadata instance
// itself, in one file written atomically after the instances closed, so
// that a torn tail of the metadata WAL cannot take them.
#ifndef CALLVAULT_ENGINE_CLOSE_MARK_H_
#define CALLVAULT_ENGINE_CLOSE_MARK_H_

#include <rocksdb/db.h>
#include <rocksdb/file_system.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "callvault/status.h"
#include "engine/shard.h"
#include "engine/wal_scan.h"

namespace callvault {

struct Options;  // callvault/store.h

inline constexpr char kCloseMarkFile[] = "CLOSE_MARK";
inline constexpr char kCloseMarkTemp[] = "CLOSE_MARK.tmp";  // fsutil::AtomicWrite's
// The largest CLOSE_MARK read (docs/format.md, "Close mark"): a larger file
// is damage, refused before it is read into memory (a sparse or damaged
// file of gigabytes made every open die of std::bad_alloc); a close whose
// marks would not fit writes none (the next open checks nothing).
inline constexpr uint64_t kMaxCloseMarkBytes = uint64_t{64} << 20;

struct CloseMark {
  // The close counter of the session that wrote the file (decision 0042):
  // the metadata instance's header field `close_counter` at its close.
  // Absent: a v1 file (a build before 0042), read as before.
  std::optional<uint64_t> counter;
  std::optional<ShardMark> meta;      // absent: the metadata instance did not close cleanly
  std::map<uint32_t, ShardMark> shards;  // by shard index; only shards that closed cleanly
};

// The store header field (docs/format.md, "Store header") that numbers the
// writable sessions (decision 0042): raised by one, in a synced metadata
// batch, by every writable open when it consumes the close marks, and
// written into CLOSE_MARK by the session's clean close. A mark whose
// counter is below it is stale (a later writable open consumed it), one
// above it means the metadata instance lost writes. Absent: 0.
inline constexpr char kCloseCounterField[] = "close_counter";
// The metadata instance's close counter (0 when absent); kCorruption for a
// value that does not parse, kIOError for a failed read.
Result<uint64_t> ReadCloseCounter(rocksdb::DB* meta);

// CLOSE_MARK's close counter against the metadata instance `meta`'s, for
// every kind of open right after the store header loads (engine/damage.cc).
// Below it: `*stale`, with the info line to log in `*what`. Above it:
// kCorruption "metadata instance damaged: acknowledged writes lost: ...",
// the metadata_loss event told to `options.audit_callback`. Equal, a v1
// file, or none: OK, not stale.
Status CheckCloseCounter(rocksdb::FileSystem* fs, const std::string& root, rocksdb::DB* meta,
                         const Options& options, bool* stale, std::string* what);

// The file's bytes: a version line, a `counter` line (v2; none when
// `counter` is absent: v1), a `meta` line, one `shard` line per shard, and
// a `sha256` line over everything before it.
std::string EncodeCloseMark(const CloseMark& m);
// kCorruption "close mark damaged: ..." for anything but an intact v1 or v2
// file (truncated, a byte changed, unparsable, unknown version).
Status DecodeCloseMark(std::string_view bytes, CloseMark* out);
// Reads `root`/CLOSE_MARK. `*present` false (OK) when there is none; a
// failed read is kIOError; a damaged file kCorruption (DecodeCloseMark),
// and one longer than kMaxCloseMarkBytes, which is not read whole.
Status ReadCloseMark(rocksdb::FileSystem* fs, const std::string& root, CloseMark* out,
                     bool* present);

// The mark of the closed RocksDB instance in `dir` (decision 0015): the
// MANIFEST CURRENT names and its size, every non-empty WAL recovery would
// replay with its size, and the highest sequence number of a whole record
// in them. False when it cannot be taken (a read failed, the WALs hold
// damage): then nothing is checked against it.
bool TakeMark(rocksdb::FileSystem* fs, const std::string& dir, ShardMark* out);

// What the mark's files say was lost, or "" (docs/decisions/0015). Only
// while CURRENT (`current`) names the mark's MANIFEST. A failed read is
// kIOError. A ledger mark's WAL that is another file in the listed one's
// place (whole records, other edges; decision 0050) is no loss: it goes to
// `*replaced` (the first one), the caller refuses the instance; with
// `replaced` null it is returned as a loss.
Result<std::string> CheckMarkFiles(rocksdb::FileSystem* fs, const std::string& dir,
                                   const walscan::ManifestInfo& current, const ShardMark& m,
                                   std::string* replaced = nullptr);

// The header field (docs/format.md, "Store header") that keeps a loss a
// writable open found against shard `index`'s mark until the tenants of the
// shard are marked damaged (docs/decisions/0039): written (synced) before
// the shards open writable and again once they opened, consumed by
// RecordWalDamage after the damage marks are durable. An open that fails
// in between leaves it for the next one: the new MANIFEST the failed open
// wrote no longer matches the mark, so the file check would not see the
// loss again.
inline std::string ShardLossField(uint32_t index) { return "shard_loss." + std::to_string(index); }


// The WAL ledger <store>/WAL_LEDGER (docs/decisions/0040; format in
// docs/format.md, "WAL ledger"): the WAL files of every shard that the last
// clean close of it left, with their sizes. Unlike CLOSE_MARK it is not
// consumed by an open: a WAL file RocksDB has closed is never written again
// (no WAL recycling) and its number is never reused, so "every listed WAL
// that still exists is at least as long as listed" stays true across later
// sessions, crashed or not. Rewritten atomically at each clean close and
// after a writable open recorded what it found; checked at every open.
inline constexpr char kWalLedgerFile[] = "WAL_LEDGER";
inline constexpr char kWalLedgerTemp[] = "WAL_LEDGER.tmp";  // fsutil::AtomicWrite's
// The manifest name of a ShardMark made from the ledger (LedgerMark): no
// MANIFEST or sequence check, listed WALs that are gone are skipped
// (CheckMarkFiles). Never a MANIFEST's name.
inline constexpr char kLedgerManifest[] = "*ledger*";

// How much of each end of a WAL file its edge digest covers: one WAL block
// (decision 0050).
inline constexpr uint64_t kWalEdgeBytes = 32 * 1024;
// The edge digest of the first `size` bytes of a WAL file: BLAKE2b-128
// (crypto_generichash, no key) of its first min(size, kWalEdgeBytes) bytes
// followed by its last min(size, kWalEdgeBytes) bytes before `size`, 32
// lowercase hex digits. Its first records are another history's in another
// file; a change that runs to its end (the part a WAL scan takes for a
// torn tail) changes its last block. `data` holds at least `size` bytes.
std::string WalEdgeDigest(std::string_view data, uint64_t size);
inline std::string WalEdgeDigest(std::string_view data) { return WalEdgeDigest(data, data.size()); }
// The same for the file `path`, read at its two ends; kIOError for a
// failed or short read, kNotFound when it is gone.
Result<std::string> ReadWalEdgeDigest(rocksdb::FileSystem* fs, const std::string& path,
                                      uint64_t size);

struct WalLedger {
  // By shard index: WAL file name -> size at the last clean close.
  std::map<uint32_t, std::vector<std::pair<std::string, uint64_t>>> shards;
  // The metadata instance's (decision 0042): its WAL files at its last
  // clean close. Absent: none yet (a v1 file, or no clean close of it).
  std::optional<std::vector<std::pair<std::string, uint64_t>>> meta;
  // Edge digests (v3, decision 0050), by shard index and for the metadata
  // instance: WAL file name -> WalEdgeDigest at the last clean close. A
  // listed WAL without one (read from a v1 or v2 file) is checked by its
  // size only.
  std::map<uint32_t, std::map<std::string, std::string>> shard_edges;
  std::map<std::string, std::string> meta_edges;
};
// A version line, a `meta [<wal> <size> <edges>]...` line, one
// `shard <i> [<wal> <size> <edges>]...` line per shard (v3; `-` for edges
// not known), and a `sha256` line over everything before it. v1 and v2
// (read only) have no edges; v1 no meta line.
std::string EncodeWalLedger(const WalLedger& l);
// kCorruption "WAL ledger damaged: ..." for anything but an intact file.
Status DecodeWalLedger(std::string_view bytes, WalLedger* out);
// Reads `root`/WAL_LEDGER; `*present` false (OK) when there is none; a
// failed read is kIOError, a damaged file kCorruption (also one larger
// than kMaxCloseMarkBytes, not read whole).
Status ReadWalLedger(rocksdb::FileSystem* fs, const std::string& root, WalLedger* out,
                     bool* present);
// Writes it atomically (fsutil::AtomicWrite); one too large is not written
// and the old one removed (the next open checks nothing against it).
Status WriteWalLedger(rocksdb::FileSystem* fs, const std::string& root, const WalLedger& l);
// The mark CheckMarkFiles checks a shard against from its ledger entry.
ShardMark LedgerMark(const std::vector<std::pair<std::string, uint64_t>>& wals,
                     const std::map<std::string, std::string>& edges = {});

}  // namespace callvault

#endif  // CALLVAULT_ENGINE_CLOSE_MARK_H_
