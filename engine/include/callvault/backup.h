// Online backups and restores (docs/operations.md "Backups", docs/format.md
// "Backup directory", docs/decisions/0018-backup-cut-and-manifest.md).
//
// A backup directory holds one RocksDB BackupEngine directory per instance
// of the store (meta/ for the metadata instance, shards/NNNN/ per shard) and
// one signed manifest per cut (cuts/NNNNNNNN.json) naming, for each
// instance, the BackupEngine backup id of that cut. A backup never holds key
// material: the keyring, the KEKs and the signing key live in the key
// directory, which the backup does not touch.
#ifndef CALLVAULT_BACKUP_H_
#define CALLVAULT_BACKUP_H_

#include <cstdint>
#include <string>
#include <vector>

#include "callvault/key_provider.h"
#include "callvault/status.h"

namespace callvault {

struct BackupOptions {
  // Flush every memtable before copying, so that the backup holds table
  // files only (no WAL). Costs a flush of every column family of every shard
  // under the admin lock; without it the live WAL is copied (up to its size
  // at the cut). Default: false.
  bool flush_before_backup = false;
};

// One file of an instance backup, as a manifest of format 2 signs it
// (decision 0076): the file's path inside the instance's BackupEngine
// directory ("shared_checksum/000012_s1Q....sst", "private/3/MANIFEST-000005"),
// its size and the SHA-256 of its contents.
struct BackupFile {
  std::string path;
  uint64_t size = 0;
  std::string sha256;  // 64 hex digits
};

// One instance's part of a cut.
struct BackupInstance {
  std::string name;        // "meta" or "shard/0000"
  std::string dir;         // its BackupEngine directory, relative: "meta", "shards/0000"
  uint32_t backup_id = 0;  // the BackupEngine backup id of this cut
  // The instance's latest sequence number when its copy began: every write
  // of the instance up to it is in the backup (later ones may be too).
  uint64_t sequence = 0;
  uint64_t bytes = 0;      // size of the instance's backup (shared files included)
  uint32_t files = 0;
  // Format 2: every file of the instance backup, sorted by path. A cut of
  // format 1 (written before decision 0076) has none: its signature covers
  // the backup ids, counts and sizes, not the files' contents.
  std::vector<BackupFile> contents;
};

// A cut, as its signed manifest records it (docs/format.md).
struct BackupManifest {
  // 2 for every cut written now; 1 for a cut written before decision 0076
  // (still verified and restored, without its files' contents signed).
  uint32_t format = 2;
  uint64_t cut = 0;           // 1, 2, ... within the backup directory
  std::string cut_id;         // random hex, also in every instance backup's metadata
  std::string store_id;       // hex
  std::string region;
  int64_t time = 0;           // microseconds since epoch, when the cut was taken
  uint64_t keyring_generation = 0;
  uint32_t kek_generation = 0;
  uint64_t receipt_seq = 0;   // the last receipt in the backup
  uint64_t audit_seq = 0;     // the last audit event at the cut (later ones may be in it)
  // The key provider's tombstone log at the cut: whether there is one, and
  // its size. A restore replays the entries after this offset.
  bool tombstone_log = false;
  uint64_t tombstone_offset = 0;
  std::vector<BackupInstance> instances;  // meta first, then shards in order
  std::string signature;      // hex Ed25519 over Canonical()
  std::string Canonical() const;  // one line of JSON, sorted keys, without the signature
  std::string ToJson() const;     // Canonical() plus "signature"
};

struct BackupInfo {
  BackupManifest manifest;
  std::string manifest_path;
  uint64_t new_files = 0;   // files this backup added to the backup directory
  uint64_t new_bytes = 0;   // their size: an unchanged store adds (almost) nothing
  int64_t admin_lock_micros = 0;  // how long create/purge/erase/keyring writes waited
  int64_t total_micros = 0;
};

// A manifest in cuts/ that could not be read or parsed (damaged, truncated,
// written by a newer build, not a regular file): the directory's other cuts
// stay usable, and this one is reported.
struct UnreadableCut {
  std::string manifest;  // "cuts/00000007.json"
  uint64_t cut = 0;      // from the file name
  std::string problem;   // why it was skipped
};

// The cuts of a backup directory, oldest first, as their manifests say
// (signatures not checked: see VerifyBackup). Manifests that do not read
// or parse are left out and, when `unreadable` is given, listed there;
// kCorruption (naming the first) when no manifest reads, kNotFound when
// there is none.
Result<std::vector<BackupManifest>> ListBackups(const std::string& backup_dir,
                                                std::vector<UnreadableCut>* unreadable = nullptr);

// Checks one cut (cut 0: the newest): the manifest's signature against
// `public_key` (32 bytes, `callvault pubkey`), that every instance backup it
// names exists and belongs to this cut, and every file's contents: for a
// cut of format 2, that each instance backup lists exactly the files the
// manifest signs and each file's SHA-256 is the signed one; for format 1,
// every file's crc32c (BackupEngine::VerifyBackup with checksums).
// kCorruption naming the instance and what failed; kNotFound without cuts.
Result<BackupManifest> VerifyBackup(const std::string& backup_dir, uint64_t cut,
                                    std::string_view public_key);

struct RestoreRequest {
  uint64_t cut = 0;  // 0: the newest cut
};

struct RestoreReport {
  BackupManifest manifest;
  // Tenants the backup holds as live whose data key is gone from the
  // current key directory: purged since the backup, rolled forward to
  // PURGED at the first open ("purge_on_open" receipts).
  std::vector<std::string> purged_since_backup;
  // Keys in the key directory that no restored registry record owns
  // (tenants created after the backup): see Store::ReconcileKeys.
  std::vector<uint64_t> orphan_key_internal_ids;
  uint64_t first_new_receipt = 0;  // receipts after the backup's start here (0: none)
  // Calls that erasures (delete mode), DeleteCall and retention removed
  // after the cut, removed again from the tombstone log before the restored
  // store served; calls redacted (EraseMode::kRedact) after the cut,
  // redacted again; and those a legal hold in the backup kept.
  uint64_t tombstones_replayed = 0;
  uint64_t redactions_replayed = 0;
  uint64_t recordings_replayed = 0;  // DeleteRecording after the cut, deleted again
  uint64_t tombstones_kept_held = 0;
  // True when the key provider keeps no tombstone log (then erasures,
  // redactions, call deletions and retention removals after the backup are
  // NOT re-applied).
  bool erasures_after_backup_not_reapplied = true;
  // Staging directories `NEW_DIR.restoring-<12 hex>` of earlier restores
  // into the same target that died before their rename (their lock file
  // `<staging>.lock` was no longer held), removed before this one began.
  std::vector<std::string> stale_stagings_removed;
  // For each restore id a removed staging's lock named whose ledger line is
  // still pending (or that this key directory's ledger does not hold): what
  // the operator should do. The ledger is never changed by the removal:
  // only `restore abandon` drops the line of a restore that died.
  std::vector<std::string> stale_staging_notes;
  // Tenants the restored store holds quarantined (TenantInfo::quarantined):
  // e.g. a cut older than a key rotation of the tenant, whose data there is
  // under the destroyed key (docs/operations.md, key rotation, "Backups").
  // The replay counts do not cover them: they are unreadable, not replayed.
  std::vector<std::string> quarantined_tenants;
};

// What Store::FinishRestore did (`callvault restore finish`).
struct RestoreFinishReport {
  std::string restore_id;  // the restore finished; "" if none was pending
  // The erasure replay ran at this open (its counts below); false with a
  // restore id: an earlier open replayed it and died before it finished.
  bool replayed = false;
  bool resumed = false;  // the replay continued one killed midway (counts: every run's)
  uint64_t removed = 0;
  uint64_t recordings = 0;
  uint64_t redacted = 0;
  uint64_t kept_held = 0;
  // Dead restore stagings beside the store that this open removed, and
  // what to do of the pending ledger lines their locks name (as
  // RestoreReport's fields of the same names; also logged).
  std::vector<std::string> stale_stagings_removed;
  std::vector<std::string> stale_staging_notes;
};

// A pending line marked abandoned in the restore ledger by AbandonRestore.
struct AbandonedRestore {
  std::string restore_id;
  std::string state;  // what it was: "pending"
  uint64_t from = 0;  // pending: the tombstone log offset its replay starts at
};

// Marks the pending restore `restore_id` (hex) abandoned in the restore
// ledger (docs/format.md "Restore ledger") of the file key directory
// `key_dir`: for a restore whose copy is lost, or that died before its
// copy existed (`callvault restore abandon`). A copy of that restore
// opened later is refused as abandoned. Offline: takes the key directory's
// writer lock. kNotFound if the ledger holds no such restore, or holds it
// abandoned already; kFailedPrecondition if it is closed (finished:
// nothing to abandon) or done (replayed: finish its copy instead);
// kInvalidArgument for a malformed id.
Result<AbandonedRestore> AbandonRestore(const std::string& key_dir, const std::string& restore_id);

}  // namespace callvault

#endif  // CALLVAULT_BACKUP_H_
