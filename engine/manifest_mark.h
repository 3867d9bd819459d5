// <dir>/MANIFEST_SYNCED: how many bytes of an instance's MANIFEST were
// synced (docs/decisions/0067; format in docs/format.md, "MANIFEST
// mark"). RocksDB appends every MANIFEST edit and syncs it before the edit
// takes effect; CloseCheckFS records the synced length here inside each
// sync. A power loss can then garble only bytes past that length: an open
// reads the MANIFEST only up to its last whole record when the records it
// cannot read all lie past it (a torn, never-acknowledged edit), and calls
// a MANIFEST that does not read whole up to it a loss of acknowledged
// edits (Shard::OpenOnce, ManifestSyncedLoss).
//
// Two 4 KiB slots, written in turn, each whole with its own checksum, so
// that a torn write of one leaves the other: an older, smaller length,
// which still covers every edit acknowledged before the torn write (the
// edit whose sync was writing it was not acknowledged). The slot holding
// the newest mark of the MANIFEST CURRENT names is never overwritten by a
// mark of another one (a new MANIFEST before, or after a failed, rename of
// CURRENT).
#ifndef CALLVAULT_ENGINE_MANIFEST_MARK_H_
#define CALLVAULT_ENGINE_MANIFEST_MARK_H_

#include <rocksdb/file_system.h>

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

namespace callvault {

inline constexpr char kManifestMarkFile[] = "MANIFEST_SYNCED";
inline constexpr size_t kManifestMarkSlotBytes = 4096;
inline constexpr size_t kManifestMarkFileBytes = 2 * kManifestMarkSlotBytes;

struct ManifestMarkSlot {
  uint64_t counter = 0;   // raised by one at every write; the higher slot is newer
  uint64_t manifest = 0;  // N of MANIFEST-N
  uint64_t synced = 0;    // bytes of it synced
};

// A slot's 36 meaningful bytes (magic, counter, manifest, synced, masked
// crc32c of the 32 before it); the rest of the 4 KiB is zeros.
std::string EncodeManifestMarkSlot(const ManifestMarkSlot& slot);
// nullopt unless `bytes` starts with a whole slot whose checksum holds.
std::optional<ManifestMarkSlot> DecodeManifestMarkSlot(std::string_view bytes);
// The synced length of MANIFEST-`manifest` the file's contents record (the
// newest whole slot that names it), or nullopt.
std::optional<uint64_t> SyncedManifestBytes(std::string_view file, uint64_t manifest);
// `dir`/MANIFEST_SYNCED read through `fs`; "" when it is missing,
// unreadable or not 8 KiB. Read before the MANIFEST it describes: a writer
// appends, and a mark read after the MANIFEST may describe bytes the read
// did not see.
std::string ReadManifestMarkFile(rocksdb::FileSystem* fs, const std::string& dir);
// N of a file named MANIFEST-N (digits only), or nullopt.
std::optional<uint64_t> ManifestNumber(std::string_view name);

// Writes the marks of every directory (CloseCheckFS owns one). RocksDB
// serializes the MANIFEST writes of one instance; instances write their
// own directories concurrently.
class ManifestMarks {
 public:
  // Records that `dir`/MANIFEST-`manifest` is synced up to `synced` bytes:
  // the older slot rewritten and synced (a missing or malformed file is
  // created first, synced, and its directory synced). The mark is durable
  // when this returns OK; on an error nothing is known to be.
  // Only in a directory Track()ed (an instance's, at its writable open):
  // elsewhere (a BackupEngine's copy of a MANIFEST) nothing is written.
  rocksdb::IOStatus Record(rocksdb::FileSystem* fs, const std::string& dir, uint64_t manifest,
                           uint64_t synced);
  void Track(const std::string& dir);

 private:
  struct Dir {
    std::mutex mu;
    bool loaded = false;                       // GUARDED_BY(mu)
    std::optional<ManifestMarkSlot> slots[2];  // as on disk; GUARDED_BY(mu)
  };
  Dir* Of(const std::string& dir);
  std::mutex mu_;
  std::map<std::string, std::unique_ptr<Dir>> dirs_;  // GUARDED_BY(mu_)
};

}  // namespace callvault

#endif  // CALLVAULT_ENGINE_MANIFEST_MARK_H_
