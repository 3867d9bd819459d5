// Pruning the tombstone log (docs/format.md "Tombstone log",
// docs/operations.md "Backups and restore", decision 0044).
#ifndef CALLVAULT_TOMBSTONES_H_
#define CALLVAULT_TOMBSTONES_H_

#include <cstdint>
#include <string>
#include <vector>

#include "callvault/status.h"

namespace callvault {

struct TombstonePruneReport {
  uint64_t previous_base = 0;  // the log's base before (0: never pruned)
  uint64_t base = 0;           // its base now: backups whose offset is below it are refused
  uint64_t size = 0;           // the log's logical size (what a backup taken now records)
  uint64_t lines_dropped = 0;
  uint64_t oldest_kept_cut_time = 0;  // µs since epoch: the oldest cut that needs the log
};

// Drops the entries of the tombstone log in the file key directory
// `key_dir` that no cut of the backup directories `keep` needs: every line
// before the smallest `tombstone_offset` of their cuts (each manifest's
// signature checked against the key directory's signing key). Offsets stay
// meaningful: the log records the offset it now starts at, and a restore of
// any backup whose offset is below it is refused (kFailedPrecondition,
// nothing restored). Offline: takes the key directory's writer lock, so it
// is refused while a store is open on it. Refused with nothing changed: no
// backup named, a backup that does not verify, an offset beyond the log, a
// restore still pending (the key directory's restore ledger) whose replay
// starts before the new base (kFailedPrecondition naming its restore id).
Result<TombstonePruneReport> PruneTombstoneLog(const std::string& key_dir,
                                               const std::vector<std::string>& keep);

}  // namespace callvault

#endif  // CALLVAULT_TOMBSTONES_H_
