// WAL damage detection (docs/decisions/0014-damage-is-loud-and-contained.md).
//
// Before RocksDB opens an instance, its write-ahead logs are read here the
// way RocksDB's log::Reader reads them (db/log_format.h: 32 KiB blocks,
// 7-byte headers crc32c(masked)/length/type, 11-byte recyclable headers),
// so that what recovery would drop is known, and told apart:
//  - a torn tail: dropped bytes after which no record is recovered, or
//    after which the next recovered record continues the sequence numbers
//    exactly (the write in flight at a crash, never acknowledged, and the
//    writes made after the recovery that dropped it). Quiet.
//  - damage: dropped bytes followed by a recovered record whose sequence
//    number leaves a gap (acknowledged writes lost), or that has no
//    predecessor and is not a truncation at the end of a file. Loud.
// For damage, the column families of the lost records are found by parsing
// every checksum-valid record inside the dropped bytes and, best effort,
// the damaged record itself; when the lost sequence numbers are not all
// accounted for that way, `unknown_families` is set (every family of the
// instance must then be presumed to have lost writes).
#ifndef CALLVAULT_ENGINE_WAL_SCAN_H_
#define CALLVAULT_ENGINE_WAL_SCAN_H_

#include <rocksdb/file_system.h>

#include <cstdint>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "callvault/status.h"

namespace callvault::walscan {

// crc32c (Castagnoli; crc32c::Extend from `init`) and RocksDB's masking of
// stored checksums.
uint32_t Crc32c(const char* data, size_t n, uint32_t init = 0);
inline uint32_t Mask(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + 0xa282ead8u; }

struct Damage {
  std::string file;     // WAL file name (no directory)
  uint64_t offset = 0;  // byte offset of the first dropped byte in it
  std::string reason;   // "checksum mismatch", "zeroed bytes", ...
  uint64_t lost_sequences = 0;  // sequence numbers (rows, not operations) lost, 0 if unknown
  std::set<uint32_t> column_families;  // ids of the families that lost writes
  bool unknown_families = false;
  // "WAL file 000012.log offset 4096: checksum mismatch; acknowledged
  // writes lost: 6 row(s)" (rows: sequence numbers; one call writes several)
  std::string Describe() const;
};

struct ScanResult {
  std::vector<Damage> damage;  // empty: nothing acknowledged is lost
  // Per damaged file: its content re-framed without the damaged records
  // (every record that is whole kept, in order, with its own sequence
  // numbers), so that recovery does not drop the rest of a 32 KiB block
  // after a damaged record, which held other tenants' writes.
  std::vector<std::pair<std::string, std::string>> repaired;
  // Names of the damaged originals kept beside (kEvidenceSuffix) and of the
  // damage records (kDamageRecordSuffix), to be removed, in this order, once
  // the store recorded the damage.
  std::vector<std::string> evidence;
  // Without `repair`, when there is damage: where RocksDB's reader would
  // not get past a header in kSkipAnyCorruptedRecords mode (a header of a
  // recycled log, which 7.8 reads again forever), "WAL file N offset M".
  // With `repair` such a file is re-framed (`repaired`) instead.
  std::vector<std::string> stuck;
  // Set when a recovered record's sequence number is below the end of the
  // one before it in log order ("WAL file N offset M: sequence numbers go
  // back from S to T"): RocksDB writes them ascending across every file at
  // or above the replay floor, so such a file has another history (a WAL of
  // another shard or store planted or restored here). RocksDB 7.8.3 built
  // with assertions aborts replaying it; the shard refuses to open instead.
  std::string sequence_regress;
  uint64_t files = 0;
  uint64_t bytes = 0;
  uint64_t records = 0;         // logical records recovery would replay
  uint64_t tail_drops = 0;      // torn tails (quiet)
  uint64_t micros = 0;          // wall time of ScanDirectory (read + scan + repair)
  // The highest sequence number of a whole record (recovered, or
  // checksum-valid inside dropped bytes; 0: none): what these files,
  // repaired, replay to at least (decision 0015).
  uint64_t last_sequence = 0;
  // ScanDirectory: the MANIFEST's replay floor (0: unknown) and the WAL
  // files below it, left out of the scan (RocksDB does not replay them).
  uint64_t replay_floor = 0;
  // Every edit decoded and a live family among them: `replay_floor` is the
  // floor recovery uses, also when it is 0 (no family ever flushed, no WAL
  // ever deleted: every WAL is replayed). False: 0 means "not known".
  bool replay_floor_read = false;
  uint64_t obsolete_files = 0;
};

inline constexpr std::string_view kEvidenceSuffix = ".damaged";
// `<name>.damage`: what a repairing scan found in WAL file <name>, written
// (atomically, synced) before any file is copied or rewritten, so that a
// crash or a full disk between the repair and the store's record of the
// damage cannot lose it (docs/format.md, docs/decisions/0019).
inline constexpr std::string_view kDamageRecordSuffix = ".damage";
// The damage record of WAL file `file` (every entry's `file` is `file`).
std::string EncodeDamageRecord(const std::string& file, const std::vector<Damage>& damage);
// Its entries; kCorruption ("damage record: ...") if it does not read whole.
Result<std::vector<Damage>> DecodeDamageRecord(const std::string& file, std::string_view data);
// What the MANIFEST CURRENT names says, read and decoded once per open and
// handed to every user (the WAL scan, the high-water mark's check and the
// mark written at close, the guards below).
struct ManifestInfo {
  std::string name;      // what CURRENT names ("": CURRENT missing or malformed)
  bool present = false;  // that MANIFEST was read (`data`)
  std::string data;
  Status read_error;     // a read failure other than "no such file"
  // The lowest WAL number RocksDB 7.8's recovery replays:
  // max(min_log_number_to_keep, the smallest log number of a live column
  // family) (db_impl_open.cc RecoverLogFiles). Edits are read up to the
  // first one that cannot be decoded, so it never exceeds the floor
  // recovery uses (log numbers only grow, a later drop only raises the
  // minimum); 0 when nothing could be read.
  uint64_t replay_floor = 0;
  // Every edit decoded and a live family among them: `replay_floor` is the
  // floor recovery uses, also when it is 0 (no family ever flushed, no WAL
  // ever deleted: every WAL is replayed). False: 0 means "not known".
  bool replay_floor_read = false;
  // A WAL addition (kWalAddition/kWalAddition2, the edits of
  // track_and_verify_wals_in_manifest, which callvault never turns on) not
  // removed by a deletion: RocksDB 7.8.3's read-only open asserts on a
  // non-empty WAL set (db_impl_open.cc, `recovery_ctx != nullptr`) and the
  // process aborts (attack6_test). Errs towards true.
  bool tracks_wals = false;
  // The highest kNextFileNumber of its edits (0: none): no WAL numbered
  // above it was ever created.
  uint64_t next_file_number = 0;
  // Its size, and where its first record that cannot be read starts (the
  // end of the last whole one; `size` when every record reads): a torn
  // write's tail when at or past the synced length (decision 0067).
  uint64_t size = 0;
  uint64_t readable_bytes = 0;
};
// Decodes a MANIFEST's bytes (`name`, `present`, `data` left empty).
ManifestInfo DecodeManifest(const std::string& manifest);
// What `dir`/CURRENT names ("MANIFEST-000012", its line end removed), or
// "" when it cannot be read or names no MANIFEST in `dir`.
std::string ReadCurrentName(rocksdb::FileSystem* fs, const std::string& dir);
// Reads `dir`/CURRENT and the MANIFEST it names, and decodes it.
ManifestInfo ReadCurrentManifest(rocksdb::FileSystem* fs, const std::string& dir);
// kCorruption, before RocksDB sees it, for a MANIFEST that 7.8.3 as Debian
// builds it (assertions on) would abort on: WAL-tracking edits in a
// read-only open; a replay floor above the next file number (a forged
// min_log_number_to_keep: the writable open's FindObsoleteFiles retires
// even the new WAL and asserts, `alive_log_files_.size()`). `what` names
// the instance ("shard 3").
Status RefuseManifest(const ManifestInfo& m, const std::string& what, bool read_only);
// DecodeManifest(manifest).replay_floor / .tracks_wals.
uint64_t ReplayFloor(const std::string& manifest);
bool ManifestTracksWals(const std::string& manifest);
// Scans every *.log file of `dir` that recovery replays (those below the
// replay floor of `manifest`, or of the MANIFEST `dir`/CURRENT names when
// null, are left out; none:
// an empty result). Read errors are returned as kIOError. With `repair`, the damage of each damaged file is
// first recorded in `<name>.damage`, then the file is kept as
// `<name>.damaged`, then replaced (atomically, synced) by its repaired
// content. Damage read from a `.damage` record or found in a kept
// `.damaged` file (a crash or an error after the repair began, before the
// store recorded it) is reported again; a `.damage` record that does not
// read whole is reported as damage of unknown families.
// With `repair` and `in_memory` (a read-only open, which writes nothing):
// the damage is judged as a repair would (checksum-valid records inside
// dropped bytes are kept), `repaired` holds the re-framed content, and no
// file is written (no `.damage` record either): the caller serves that
// content instead of the files (RepairedWalFS in engine/shard.cc;
// docs/decisions/0020).
Result<ScanResult> ScanDirectory(rocksdb::FileSystem* fs, const std::string& dir,
                                 bool repair = false, bool in_memory = false,
                                 const ManifestInfo* manifest = nullptr);
// Appends one logical record the way RocksDB's log::Writer frames it.
void AppendRecord(std::string* log, std::string_view payload);
// The same for WAL files given as (file number, name, contents), in order.
struct WalFile {
  uint64_t number = 0;
  std::string name;
  std::string data;
};
// With `repair`, the checksum-valid records inside dropped bytes count as
// kept (ScanResult::repaired holds them); without, as lost.
ScanResult Scan(const std::vector<WalFile>& files, bool repair = false);

}  // namespace callvault::walscan

#endif  // CALLVAULT_ENGINE_WAL_SCAN_H_
