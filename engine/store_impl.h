// Store::Impl: the state behind the public Store. Split by concern:
//   store.cc     open, creation, recovery, shutdown
//   tenants.cc   tenant create, purge, the keyring protocol, receipts
//   calls.cc     put, get, delete, list
//   inspect.cc   verify, stats, receipts listing
#ifndef CALLVAULT_ENGINE_STORE_IMPL_H_
#define CALLVAULT_ENGINE_STORE_IMPL_H_

#include <rocksdb/db.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <thread>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <shared_mutex>
#include <string>
#include <vector>

#include "callvault/store.h"
#include "engine/codec.h"
#include "engine/compress.h"
#include "engine/keyring.h"
#include "engine/record.h"
#include "engine/reseal.h"
#include "engine/shard.h"
#include "format/rowkey.h"

namespace callvault {

inline int64_t NowMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// A tenant's compression dictionaries (docs/decisions/0009). The loaded
// ones live in the store's DictionaryCache under `cache_owner` (bounded:
// readers and the writer load a dropped one again from its sealed row);
// the writer reads the newest id at its first put.
struct TenantDictionaries {
  const uint64_t cache_owner = DictionaryCache::NewOwner();
  std::mutex mu;
  uint32_t current = 0;  // GUARDED_BY(mu); new records use it; 0: none
  // The writer's state. GUARDED_BY(Tenant::write_mu).
  bool scanned = false;     // current_id and calls read since open
  bool broken = false;      // the stored dictionary does not load: none used, none trained
  uint32_t current_id = 0;  // 0: none yet
  uint64_t calls = 0;      // calls stored, as far as the writer knows (a lower bound at first)
  uint64_t train_at = 0;   // train when `calls` reaches this; 0: never
  bool queued = false;     // a background training job is queued or running (decision 0045)
};

// One tenant's runtime state. Operations hold `life` shared for their whole
// duration; purge holds it exclusively, so the column family handle and the
// keys are never destroyed under a reader.
struct Tenant : record::DictionarySource, Resealer {
  // Identity fields (tenant_id, internal_id, shard, cf_generation,
  // key_version) never change once the tenant is live; the policy and state
  // fields change under admin_mu_ and rec_mu, and are read under rec_mu.
  codec::TenantRecord rec;
  mutable std::mutex rec_mu;
  std::atomic<TenantState> state{TenantState::kActive};
  // Set by recovery when the registry record contradicts the keyring or the
  // data (docs/decisions/0012): Acquire returns kCorruption. Cleared by
  // ReinstateTenant (under admin_mu_ and life held exclusively).
  std::atomic<bool> quarantined{false};
  // Damage found in its WAL records or its files (docs/decisions/0014):
  // Acquire returns kCorruption. Set by MarkDamaged, cleared by
  // AcceptTenantDamage. `damage` GUARDED_BY(rec_mu).
  std::atomic<bool> damaged{false};
  std::string damage;
  // A key rotation that switched (or may have switched) the tenant to its
  // new key and could not finish (docs/decisions/0036): until the next open
  // finishes it, reads are served and every other access is refused with
  // kFailedPrecondition (`rotation_unfinished_why` GUARDED_BY(rec_mu)).
  std::atomic<bool> rotation_unfinished{false};
  std::string rotation_unfinished_why;
  std::shared_mutex life;
  std::mutex write_mu;  // serialises read-modify-write puts and deletes
  // What the change feed holds (changes.cc), so a change need not read the
  // feed back: valid while `known` and the tenant's family is still the
  // one it describes (a key rotation or a move switches it). `feed` is
  // dropped by each AppendChanges and set again from `feed_after` once the
  // change's batch is written (WriteChanges); a batch that fails or a
  // caller that never says leaves it unknown, and the next change reads
  // the feed. GUARDED_BY(write_mu).
  struct FeedState {
    bool known = false;
    uint64_t cf_generation = 0;
    uint32_t family = 0;
    uint64_t last = 0;   // the newest event's sequence (0: the feed never had one)
    uint64_t first = 0;  // the oldest event's held
    bool first_at_known = false;
    int64_t first_at = 0;  // its committed_at
    const void* batch = nullptr;  // feed_after: the batch it comes true with
  };
  FeedState feed, feed_after;
  // Set by a key rotation while it waits for `life` exclusively: Acquire
  // then holds new operations back (up to 100 ms each, so an operation that
  // already holds the tenant and acquires it again cannot deadlock), so a
  // stream of them cannot starve the rotation (std::shared_mutex lets new
  // shared holders in ahead of a waiting exclusive one).
  std::atomic<bool> exclusive_waiting{false};
  // A key rotation's copy (rotate.cc): its call records are sealed
  // compressed even when the store defers compression (decision 0052), as
  // no reseal filter reaches its family before the switch (its flushes
  // would keep them as written, and those in blob files for good).
  // Fixed before the copy starts.
  bool compress_writes = false;
  Shard* shard = nullptr;
  rocksdb::ColumnFamilyHandle* cf = nullptr;  // GUARDED_BY(life)
  SecretBytes record_key;                     // GUARDED_BY(life)
  SecretBytes index_key;                      // GUARDED_BY(life)
  SecretBytes cursor_key;                     // GUARDED_BY(life)
  SecretBytes recording_key;                  // GUARDED_BY(life)
  TenantDictionaries dicts;
  // Read-only opens only: the registry says CREATING or PURGING, or the
  // tenant is live without its key or column family, and the open could
  // not recover it. Fixed after open.
  bool needs_recovery = false;

  // Opens a record of this tenant's column family, finding the dictionary
  // it names. REQUIRES: life held.
  Status OpenRecord(std::string_view row_key, std::string_view sealed, std::string* plain);
  // Seals a record of this tenant, compressed with the current dictionary
  // if there is one; with `compress` false (Options::defer_compression,
  // decision 0052) uncompressed, for the reseal filter to compress later.
  // REQUIRES: life held.
  std::string SealRecord(std::string_view row_key, std::string_view plain, bool compress = true);
  // Resealer (engine/reseal.h), for the shard's flushes and compactions:
  // opens the record under this tenant's key and binding and seals it again
  // compressed. Keeps it (false) when `life` is not free at once, when the
  // tenant has no key (purged) or when it does not open.
  bool Reseal(std::string_view key, std::string_view value, std::string* out) override;
  std::shared_ptr<const compress::Dictionary> CurrentDictionary();
  // record::DictionarySource: the cached dictionary, or reads, opens and
  // caches its 'Z' row. REQUIRES: life held.
  Status Find(uint32_t dict_id, std::shared_ptr<const compress::Dictionary>* out) override;

  // The internal id its records are sealed with (associated data and
  // recording bindings): the source's, for a tenant that moved in
  // (docs/decisions/0022). Fixed once the tenant is live.
  uint64_t ad_id() const { return rec.ad_internal_id != 0 ? rec.ad_internal_id : rec.internal_id; }
  record::Binding binding() const {
    return record::Binding{ad_id(), rec.cf_generation, rec.key_version};
  }
  // The live column family's name (format/rowkey.h).
  std::string family_name() const { return format::ColumnFamilyName(rec.internal_id, rec.family); }
  // A move of this tenant out of the store is copying it (held for the
  // move: purges and other moves refused). The fence itself is
  // rec.move_state == codec::kMoveFenced.
  std::atomic<bool> moving{false};
  TenantInfo Info() const;
  codec::TenantRecord Record() const {
    std::lock_guard<std::mutex> l(rec_mu);
    return rec;
  }
  void WipeKeys();
};

// What an operation does to a tenant's data: a churned tenant refuses
// writes, and reads unless options.allow_reads_after_churn; removals
// (delete, erasure) stay allowed.
// kInspect: a read that churn does not stop (holds, Verify), like kRemove,
// but served by a source that a move fenced, like kRead.
enum class Access { kRead, kWrite, kRemove, kInspect };

// A live tenant, held for the duration of one operation.
struct TenantRef {
  std::shared_ptr<Tenant> t;
  std::shared_lock<std::shared_mutex> lock;
  Tenant* operator->() const { return t.get(); }
};

// The metadata key of a tenant's durable damage mark (`B` + internal id,
// docs/format.md); engine/damage.cc.
std::string DamageKey(uint64_t internal_id);
// Verify: checks one opened change feed event row (changes.cc).
Status CheckChangeEvent(std::string_view key, std::string_view plain);
// Options out of range, refused by name before anything is opened or
// created (Store::Open, Store::Restore; store.cc).
Status CheckOptions(const Options& options);

class Store::Impl {
 public:
  Impl(const Options& options, std::string path);
  // Calls Close, ignoring its status.
  ~Impl();

  // Store::Close. Safe to call on a store whose open failed part way.
  Status Close();
  // Held shared by every public call of the facade (store.cc) for its
  // duration and exclusively by Close, which sets closed_.
  std::shared_mutex close_mu_;
  bool closed_ = false;  // GUARDED_BY(close_mu_)
  // closed_, readable without close_mu_ by paths that bypass the facade
  // (a RecordingWriter's chunks reach Acquire directly).
  std::atomic<bool> closing_{false};
  // Set by Close before it waits for the calls in flight: new calls are
  // refused at once (a stream of them would otherwise starve Close).
  std::atomic<bool> close_requested_{false};

  Status OpenOrCreate();
  bool read_only() const { return options_.read_only; }
  uint64_t recovery_pending() const { return recovery_pending_; }

  // tenants.cc
  Result<TenantInfo> CreateTenant(const TenantSpec& spec);
  Result<Receipt> PurgeTenant(std::string_view tenant_id);  // timed (Op::kPurge)
  Result<Receipt> PurgeTenantUntimed(std::string_view tenant_id);
  // rotate.cc (docs/decisions/0036).
  Result<Receipt> RotateTenantKey(std::string_view tenant_id);
  // A key rotation whose copy is made in shard `to_shard` (decision 0057).
  Result<Receipt> MoveTenantToShard(std::string_view tenant_id, uint32_t to_shard);
  Result<Receipt> RotateInto(std::string_view tenant_id, std::optional<uint32_t> to_shard);
  Result<std::vector<TenantInfo>> ListTenants();
  Result<TenantInfo> DescribeTenant(std::string_view tenant_id);

  // calls.cc
  // `expected_versions`: nullptr (unconditional) or one per call (PutCall's
  // expected_version for each; a size mismatch is kInvalidArgument).
  Result<std::vector<PutResult>> PutCalls(
      std::string_view tenant_id, std::vector<Call> calls,
      const std::vector<std::optional<uint64_t>>* expected_versions = nullptr);
  Result<Call> GetCall(std::string_view tenant_id, std::string_view call_id, uint32_t parts);
  Result<uint64_t> DeleteCall(std::string_view tenant_id, std::string_view call_id,
                              std::optional<uint64_t> expected_version);
  Result<PutResult> UpdateCall(std::string_view tenant_id, std::string_view call_id,
                               uint32_t parts, Call patch, std::optional<uint64_t> expected_version);
  Result<std::vector<Result<Call>>> GetCalls(std::string_view tenant_id,
                                             const std::vector<std::string>& call_ids, uint32_t parts);
  // list.cc; `count`: count every match (no page, no cursor issued).
  Result<CallPage> ListCalls(std::string_view tenant_id, const ListQuery& q,
                             uint64_t* count = nullptr);
  Result<uint64_t> CountCalls(std::string_view tenant_id);
  Result<uint64_t> CountCalls(std::string_view tenant_id, const ListQuery& q);
  // Raises a format 1 header to kStoreFormatVersion (writable opens).
  Status UpgradeFormat();
  Result<std::vector<TranscriptSegment>> GetTranscriptWindow(std::string_view tenant_id,
                                                             std::string_view call_id,
                                                             uint32_t from_ms, uint32_t to_ms);

  // recordings.cc
  Result<std::unique_ptr<RecordingWriter>> CreateRecording(std::string_view tenant_id,
                                                           std::string_view call_id,
                                                           const RecordingSpec& spec);
  Result<std::vector<RecordingInfo>> ListRecordings(std::string_view tenant_id,
                                                    std::string_view call_id);
  Status ReadRecording(std::string_view tenant_id, std::string_view call_id,
                       std::string_view recording_id, uint64_t offset, uint64_t length,
                       const RecordingSink& sink);
  Status DeleteRecording(std::string_view tenant_id, std::string_view call_id,
                         std::string_view recording_id);
  // For RecordingWriter, which re-acquires its tenant for every chunk.
  // kRemove for the writer (a churned tenant's recording still finishes),
  // kRead for the chunks of a read.
  Result<TenantRef> AcquireForRecording(std::string_view tenant_id,
                                        Access access = Access::kRemove);

  // compliance.cc
  Status ScheduleTenantPurge(std::string_view tenant_id, int64_t purge_at);
  Status CancelTenantPurge(std::string_view tenant_id);
  Result<std::vector<Receipt>> RunScheduledPurges(int64_t now);
  Status SetRetention(std::string_view tenant_id, uint32_t days);
  Status SetWorkspaceRetention(std::string_view tenant_id, std::string_view workspace_id,
                               std::optional<uint32_t> days);
  Status SetCallPinned(std::string_view tenant_id, std::string_view call_id, bool pinned);
  Result<RetentionReport> RunRetention(int64_t now, bool dry_run);
  Status PlaceHold(std::string_view tenant_id, const Hold& hold);
  Status ReleaseHold(std::string_view tenant_id, std::string_view hold_id);
  Result<std::vector<Hold>> ListHolds(std::string_view tenant_id);
  Result<std::vector<Hold>> ListHoldsLocked(const TenantRef& t);
  // kFailedPrecondition if a hold covers the tenant or (call_hash non-empty)
  // that call; with an empty call_hash, also if any call of it is held.
  Status CheckNotHeld(const TenantRef& t, std::string_view call_hash, bool any_call);

  // audit.cc
  // Appends an event (synced) and calls options.audit_callback. Failures
  // are counted in audit_failures_, never returned: the operation that
  // caused the event has already happened.
  void Audit(std::string kind, std::string_view tenant_id, std::string detail);
  Status CheckSigningKey();
  Result<std::vector<AuditEvent>> ListAudit(int64_t since, std::string_view kind);
  Status LoadAudit();
  // Reports a keyring failure that stops Open: to the callback now, and to
  // the audit log at the next successful open.
  void RecordKeyringFailure(const Status& s);
  // Passes `s` through; a kCorruption becomes an "auth_failure" event.
  Status Observe(Status s, const char* op, std::string_view tenant_id);
  // The policy clock (Options::clock): churn deadlines, churned_at and the
  // background runner only. Recorded times (receipts, audit events, tenant
  // and hold created_at, call and recording times) use NowMicros().
  int64_t Now() const { return options_.clock ? options_.clock() : NowMicros(); }
  void StartBackground();
  void StopBackground();

  // changes.cc: the change feed (docs/decisions/0030). One note per
  // changed call; AppendChanges adds their sealed events (the next
  // sequence numbers) to `b`, the batch of the change itself, and the
  // removal of events beyond the horizon. REQUIRES: t->write_mu.
  struct ChangeNote {
    ChangeKind kind;
    ChangeCause cause;
    std::string call_id;
    uint64_t version;
  };
  Status AppendChanges(const TenantRef& t, const std::vector<ChangeNote>& notes,
                       rocksdb::WriteBatch* b);
  // Writes `b`, filled by AppendChanges, to the tenant's shard with `o`;
  // once written, what it did to the feed is what the feed holds
  // (Tenant::feed). `what` names the write in the error. REQUIRES:
  // t->write_mu, held since AppendChanges.
  static Status WriteChanges(const TenantRef& t, const rocksdb::WriteOptions& o,
                             rocksdb::WriteBatch* b, const char* what);
  Result<ChangePage> ReadChanges(std::string_view tenant_id, std::string_view token, size_t limit);

  // subjects.cc
  Result<std::vector<Reference>> FindReferences(std::string_view tenant_id,
                                                std::string_view subject);
  Result<EraseResult> Erase(std::string_view tenant_id, const EraseRequest& request);

  // inspect.cc
  Result<VerifyReport> Verify(std::optional<std::string_view> tenant_id);
  void VerifyMetadata(VerifyReport* report);
  Result<StoreStats> Stats();
  Result<callvault::Metrics> Metrics();
  // An engine message to Options::logger, if set (never tenant ids or data).
  void Log(LogLevel level, std::string_view message) const {
    if (res_ != nullptr) res_->Log(level, message);
  }
  // Options::progress, if set.
  void ReportProgress(const char* operation, const char* unit, uint64_t done, uint64_t total,
                      bool finished = false) const {
    if (!options_.progress) return;
    Progress p;
    p.operation = operation;
    p.unit = unit;
    p.done = done;
    p.total = total;
    p.finished = finished;
    options_.progress(p);
  }
  Result<std::vector<Receipt>> ListReceipts();
  // recover.cc
  Result<KeyReconcileReport> ReconcileKeys(bool dry_run,
                                           const std::vector<uint64_t>& destroy_with_data);
  Status ReinstateTenant(std::string_view tenant_id);
  // damage.cc (docs/decisions/0014).
  Status AcceptTenantDamage(std::string_view tenant_id);
  // Marks the tenant damaged, durably unless read-only (meta key `B`), stops
  // its family's automatic compactions, and audits "tenant_damaged". Once.
  // A read-only open writes a damage report instead (with `report`).
  void MarkDamaged(const std::shared_ptr<Tenant>& t, const std::string& why, bool report = true);
  // damage_reports.cc (docs/decisions/0020): damage a read-only open found,
  // left for the writer as a sealed file in <store>/damage-reports/.
  void ReportDamage(const Tenant& t, const std::string& why);
  // Marks the tenants the reports name (a writable open durably, then
  // removes the reports; a read-only open in memory).
  Status ApplyDamageReports();
  // "T: why" per report this read-only open could not write.
  std::vector<std::string> UnreportedDamage();
  // Families whose compaction met a corruption: their tenants marked damaged.
  void PollDamagedFamilies();
  // A kCorruption that RocksDB returned (a damaged SST, blob file or block),
  // as opposed to a record that failed authentication.
  static bool IsStorageCorruption(const Status& s);
  Result<std::string> SigningPublicKey() {
    return read_only() ? kp_->ExistingSigningPublicKey() : kp_->SigningPublicKey();
  }
  Status Flush();
  Status CompactAll();
  // move.cc (docs/decisions/0022)
  Result<std::string> MoveIdentity();
  Result<MoveReport> MoveTenantOut(std::string_view tenant_id, std::string_view identity,
                                   const MoveTransport& to, const MoveOptions& options);
  // `in_process`: from callvault::MoveTenant, which holds the source open;
  // otherwise the source must be in the trusted-peers list (decision 0062).
  Result<std::string> MoveTenantIn(std::string_view segment, std::string_view source_key,
                                   bool in_process);
  // MoveTenantIn's work: the reply text, unsigned.
  Result<std::string> ApplyMoveSegment(std::string_view segment, std::string_view source_key,
                                       bool in_process);
  // Trusted move sources (decision 0062).
  Status TrustMovePeer(std::string_view identity);
  Status RemoveMovePeer(std::string_view peer);
  Result<std::vector<std::string>> ListMovePeers();
  // OK and the listed source's store id if `source_key` is a trusted
  // peer's signing key; else kFailedPrecondition (kCorruption, kKeyError:
  // a PEERS file not written by callvault). REQUIRES: admin_mu_.
  Status CheckMoveSource(std::string_view source_key, std::string* store_id);
  // The trusted-peers list as the key provider holds it, every line held to
  // the rules `peer trust` applies (kCorruption naming the line if one
  // breaks them); the only reader of the list (move.cc).
  struct TrustedPeers;
  Status LoadPeers(TrustedPeers* peers);
  // Destination: moves whose copy is arriving, by move id (hex). GUARDED_BY(admin_mu_).
  struct IncomingMove;
  std::map<std::string, std::shared_ptr<IncomingMove>> moves_in_;
  // The refusal for a tenant whose copy is elsewhere now. REQUIRES: t->rec_mu.
  static Status MovedError(const codec::TenantRecord& rec);
  // backup.cc
  Result<BackupInfo> Backup(const std::string& backup_dir, const BackupOptions& options);
  // Appends one tombstone per call hash to the key provider's tombstone log
  // (durable on return); OK and nothing if the provider keeps none. With
  // `redact_hashes` (the subject's blind ParticipantHash, normalised spelling
  // first) the entries are redactions of that subject, else removals.
  // REQUIRES: tombstone_mu_ held shared, until the removal is written.
  // `versions[i]` (decision 0064): of a removal, the removed call's last
  // version; of a redaction, the version the redaction writes.
  Status LogTombstones(uint64_t internal_id, const std::vector<std::string>& call_hashes,
                       const std::vector<uint64_t>& versions,
                       const std::vector<std::string>& redact_hashes = {});
  // Appends the tombstone of one deleted recording (its call's and its own
  // blind hashes and its manifest's created_at, which tells it from a later
  // recording of the same id). REQUIRES: tombstone_mu_ held shared, until it
  // is written.
  Status LogRecordingTombstone(uint64_t internal_id, const std::string& call_hash,
                               const std::string& rec_hash, int64_t created_at);
  // Applies again, in log order, every entry of the log from byte `from` on
  // to the tenants live here: removals delete the call, redactions redact
  // it again. Counts what it changed and what a hold kept. Synced on return.
  struct ReplayCounts {
    uint64_t removed = 0;
    uint64_t recordings = 0;
    uint64_t redacted = 0;
    uint64_t kept_held = 0;
  };
  // `counts` holds what earlier runs of this replay removed (a run killed
  // midway); `progress` is called with the running counts after each write
  // of removals (FinishRestore keeps them in the header).
  Status ReplayTombstones(uint64_t from, ReplayCounts* counts,
                          const std::function<Status(const ReplayCounts&)>& progress);
  // Finishes a restore at open (before the store serves): with a
  // RESTORE_PENDING marker (signed, written by Store::Restore before the
  // store became openable) replays the tombstone log from the cut and then
  // removes the marker. Read-only opens of such a store are refused.
  Status FinishRestore();
  ReplayCounts restore_replay_;   // what FinishRestore replayed at this open
  bool restore_replayed_ = false;
  bool restore_resumed_ = false;   // that replay continued one an open killed midway
  // The restore FinishRestore finished at this open ("" if none): replayed
  // (restore_replayed_), or replayed by an earlier open that died.
  std::string restore_finished_id_;
  // This open is of a restored copy whose replay has not finished (a
  // verified RESTORE_PENDING, bound to this copy): the key directory is
  // newer than the copy, and its keys may serve the live store the copy
  // was taken from.
  bool restored_copy_ = false;
  // The RESTORE_PENDING marker of this writable open, read and its
  // signature verified before anything changes (ReadRestoreMarker), then
  // checked against the metadata instance's restore id before recovery
  // (CheckRestoreMarker; decision 0027).
  struct RestoreMarker {
    std::string store_id;    // hex
    std::string restore_id;  // hex; also in the copy's header
    uint64_t cut = 0;
    uint64_t tombstone_offset = 0;
  };
  std::optional<RestoreMarker> restore_marker_;
  // What FinishRestore does, as CheckRestoreMarker found the marker, the
  // header's restore id and the key provider's restore ledger (decision
  // 0027, "The ledger"): nothing; replay, then mark done, unlink, drop the
  // id and close; unlink the marker of a replay done by an open that died,
  // drop and close; drop the id of a done restore and close.
  enum class RestoreStep { kNone, kReplay, kUnlinkMarker, kDropId };
  RestoreStep restore_step_ = RestoreStep::kNone;
  Status ReadRestoreMarker(bool store_exists);
  // Writable opens, before the store is opened: removes the staging
  // directories and `.lock` files of restores into this directory that died
  // (backup.cc, kStagingInfix), never their ledger lines; logged, with what
  // to do of a pending line a lock names, by LogStaleRestoreStagings once
  // the open is done.
  Status RemoveStaleRestoreStagings();
  void LogStaleRestoreStagings() const;
  std::vector<std::string> stale_stagings_removed_;
  std::vector<std::string> stale_staging_notes_;  // DeadRestoreNotes (backup.cc)
  Status CheckRestoreMarker();
  // subjects.cc: plans into `b` the redaction of the subject whose blind
  // hashes are `subject_hashes` from the call (unchanged if it no longer
  // names the subject; *held if a legal hold keeps it). With `version` (the
  // line's, decision 0064) only a call below it is redacted, and the
  // redaction writes that version. REQUIRES: t->write_mu.
  Status ReplayRedaction(const TenantRef& t, std::string_view call_hash,
                         const std::vector<std::string>& subject_hashes, int64_t when,
                         std::optional<uint64_t> version, rocksdb::WriteBatch* b, bool* changed,
                         bool* held);
  // Held shared by an erasure or retention batch from its tombstone append
  // to its shard write; exclusively by Backup for its copy, so the log's
  // size at the cut splits removals into "in the backup" and "replay".
  std::shared_mutex tombstone_mu_;
  std::vector<std::string> ShardPaths() const;
  std::string MetaPath() const { return path_ + "/meta"; }

 private:
  // store.cc
  Status CreateNew();
  Status OpenReadOnly();
  Status LoadHeader();
  Status LoadKeyring();
  Status OpenShards();
  Status LoadRegistry(std::vector<codec::TenantRecord>* records);
  Status Recover(std::vector<codec::TenantRecord> records);
  // Read-only opens: registers every tenant as the registry has it.
  Status RegisterAsIs(std::vector<codec::TenantRecord> records);
  Status ActivateTenant(const codec::TenantRecord& rec);
  // damage.cc: reads the stored damage marks; records what each shard's WAL
  // scan found (marks, audit events), then flushes those shards so the
  // damaged WAL is retired. REQUIRES: shards open, registry not yet loaded.
  Status LoadDamage();
  Status RecordWalDamage();
  // The metadata instance's WAL: kCorruption (and the audit callback) if it
  // lost acknowledged writes.
  // The metadata instance's MANIFEST read once (walscan::ReadCurrentManifest),
  // refused if RocksDB would abort on it, then its WAL scanned. With
  // `cut`, what RocksDB's open must not read of it (decision 0067), to be
  // kept alive through that open.
  Status ScanMetaWal(bool read_only, std::unique_ptr<ManifestTailCut>* cut);
  // recover.cc (docs/decisions/0012). All REQUIRE admin_mu_.
  // A tenant's runtime state with its keys and column family when the
  // keyring and the shard have them (nullptr cf otherwise).
  std::shared_ptr<Tenant> LoadTenant(const codec::TenantRecord& rec);
  Status RecoverCreating(const codec::TenantRecord& rec,
                         const std::set<std::pair<std::string, uint64_t>>& audited);
  Status RecoverPurging(codec::TenantRecord rec);
  // Registers the tenant as quarantined (nothing destroyed, registry left
  // as it is) and reports `why` as tampering.
  void Quarantine(const codec::TenantRecord& rec, const std::string& why);
  // Drops the column families no live tenant owns whose key is gone; keeps
  // and reports the others.
  Status RecoverFamilies();
  // The keyring's DEKs that no live tenant owns.
  std::vector<OrphanKey> FindOrphanKeys();
  // An "auth_failure" event (and the callback) for a contradiction that
  // recovery refused to resolve by destroying data.
  void ReportTampering(std::string_view tenant_id, const std::string& detail);
  Status PutHeader(std::string_view name, std::string_view value);
  Result<std::string> GetHeader(std::string_view name);

  // tenants.cc
  Result<TenantRef> Acquire(std::string_view tenant_id, Access access = Access::kRead);
  // The tenant's runtime state, whatever its state; kNotFound if unknown.
  Result<std::shared_ptr<Tenant>> FindTenant(std::string_view tenant_id);
  std::string TenantHash(std::string_view tenant_id) const;
  Status WriteRegistry(const codec::TenantRecord& rec, rocksdb::WriteBatch* extra = nullptr);
  Result<std::optional<codec::TenantRecord>> ReadRegistry(std::string_view tenant_id);
  // Writes `next` as the next keyring generation (under a new KEK generation
  // if `rotate`), records it in the store header (at once, or with `header`
  // in that batch, which the caller then writes synced before it returns),
  // then retires the old generation (and with `rotate`, destroys the old
  // KEK). REQUIRES: admin_mu_.
  Status CommitKeyring(Keyring next, bool rotate, rocksdb::WriteBatch* header = nullptr);
  Result<Shard*> PickShard();
  // Opens (creates) shard shards_.size() and records it in the header:
  // PickShard when every shard is full, a move to a new shard (decision
  // 0057). REQUIRES: admin_mu_.
  Result<Shard*> OpenNextShard();
  // Gives `shards` shards and the metadata instance their share of the
  // process's file descriptors (decision 0059): refuses (nothing changed)
  // if the limit cannot hold them, and lowers the open instances'
  // max_open_files first when their share shrinks. `doing` names the
  // operation in the refusal. REQUIRES: admin_mu_ (or the open).
  Status SizeOpenFiles(uint32_t shards, std::string_view doing);
  // `keep_key`: the registry record and the family go, the data key stays
  // in the keyring (an orphan key, for ReconcileKeys).
  Status RollBackCreate(const codec::TenantRecord& rec, bool keep_key = false);
  // rotate.cc. Both REQUIRE admin_mu_, and the tenant's life lock held
  // exclusively when it is live (`live`: its runtime state, or nullptr at
  // open). A rotation that was copying is undone: the copy's family dropped
  // and its key removed (it protected nothing else), the registry as before.
  Status RollBackRotation(codec::TenantRecord* rec, Tenant* live);
  // A rotation past its switch is finished: the old key shredded (KEK
  // rotation), the old family dropped, the receipt and the registry's
  // rotation cleared in one synced batch. `rows`: the rows the copy wrote
  // (the receipt's `records`); 0 at open, where the old family's estimate
  // is used.
  Result<Receipt> FinishRotation(codec::TenantRecord* rec, Tenant* live, uint64_t rows);
  // Completes a purge from any step. REQUIRES: admin_mu_, and the tenant's
  // life lock held exclusively when it is live.
  std::function<void(Status)> DeletedLog(const std::string& family, uint64_t bytes);
  Result<Receipt> FinishPurge(codec::TenantRecord* rec, Tenant* live, const char* kind,
                              const std::string& destination = "");
  // Signs and stores the next receipt; with `purged`, also marks that
  // tenant PURGED in the same synced batch, which also carries whatever
  // `batch` holds already. REQUIRES: admin_mu_.
  Result<Receipt> AppendReceipt(Receipt r, codec::TenantRecord* purged,
                                rocksdb::WriteBatch* batch = nullptr);
  Result<Receipt> ReadReceipt(uint64_t sequence);
  // When the current keyring is the newest in the key directory: destroys
  // every KEK generation older than its KEK and removes every older keyring
  // generation. Never a newer KEK. Idempotent. REQUIRES: admin_mu_.
  Status RetireStaleKeys();
  // kFailedPrecondition unless `newest` (the newest keyring generation in
  // the key directory) is the current one or one this store wrote itself.
  Status CheckKeyDirState(uint64_t newest) const;
  void DeriveKeys(Tenant* t, const SecretBytes& dek) const;

  // dictionaries.cc. Both REQUIRE t->write_mu, and never fail: a
  // dictionary is an optimisation, and the put they follow is acknowledged.
  // Reads the writer's dictionary state once after open.
  void PrepareDictionary(const TenantRef& t);
  // After a committed put that stored `created` new calls: once the tenant
  // holds options_.dictionary_training_calls, queues it for background
  // training (decision 0045), or with no training threads trains its first
  // dictionary here.
  void AfterPut(const TenantRef& t, uint64_t created);
  // The three steps of a training. SampleDictionary REQUIRES life held (a
  // read, like any reader's); TrainSamples holds nothing (CPU only);
  // StoreDictionary REQUIRES life held and t->write_mu (a put's locks).
  Status SampleDictionary(const TenantRef& t, std::vector<std::string>* samples, uint32_t* id);
  Status StoreDictionary(const TenantRef& t, uint32_t id, std::string content);
  // Background training (decision 0045). GUARDED_BY(train_mu_) unless said.
  struct TrainingJob {
    std::weak_ptr<Tenant> tenant;
    std::string tenant_id;
  };
  void TrainingLoop();
  void RunTrainingJob(const TrainingJob& job);
  // Waits for the running jobs, drops the queued ones. Close calls it.
  void StopTraining();
  std::mutex train_mu_;
  std::condition_variable train_cv_;
  std::deque<TrainingJob> train_queue_;
  std::vector<std::thread> train_threads_;  // started at the first job
  bool train_stop_ = false;
  std::atomic<bool> train_stopping_{false};  // train_stop_, read without the lock
  uint64_t train_running_ = 0;
  std::atomic<uint64_t> trainings_done_{0}, trainings_failed_{0}, trainings_given_up_{0};

  // calls.cc helpers
  // `*version_counter`: the tenant's (calls::ReadVersionCounter), advanced
  // by the version this put assigns.
  Status PlanPut(TenantRef& t, Call call, int64_t now, std::optional<uint64_t> expected_version,
                 uint64_t* version_counter, rocksdb::WriteBatch* batch, PutResult* result);
  rocksdb::WriteOptions WriteOpts() const;

 public:
  const Options options_;
  const std::string path_;
  KeyProvider* const kp_;
  std::unique_ptr<SharedResources> res_;
  std::shared_ptr<ErrorFlag> meta_error_ = std::make_shared<ErrorFlag>();  // listens on meta_
  std::unique_ptr<rocksdb::DB> meta_;
  rocksdb::WriteOptions meta_write_;  // always sync

  // Fixed after open.
  std::string store_id_;
  std::string region_;
  uint32_t max_tenants_per_shard_ = 256;
  SecretBytes store_data_key_;
  SecretBytes store_index_key_;

  std::mutex admin_mu_;  // serialises create, purge and every keyring write
  Keyring keyring_;                               // GUARDED_BY(admin_mu_)
  // Operations reach their shard through Tenant::shard; the vector itself
  // is read and grown under admin_mu_.
  // A shard that did not open for damage (kCorruption: its CURRENT,
  // MANIFEST or acknowledged WAL) is a null entry, its reason in
  // damaged_shards_; its tenants are damaged, the others serve (decision
  // 0034). Every loop over shards_ skips null entries.
  std::vector<std::unique_ptr<Shard>> shards_;    // GUARDED_BY(admin_mu_)
  std::map<uint32_t, std::string> damaged_shards_;  // set at open; then read only
  // Marks `t` (of a damaged shard) damaged in memory: found at every open.
  void MarkOnDamagedShard(Tenant* t);
  // Lets `shard`'s reseal filter find its families' tenants (decision
  // 0052). Writable opens only.
  void AttachResealer(Shard* shard);
  uint64_t next_internal_id_ = 1;                 // GUARDED_BY(admin_mu_)
  // The header's format version as opened (a writable open raises 1 to 2:
  // docs/decisions/0028).
  uint64_t format_version_ = 0;
  uint64_t receipt_seq_ = 0;                      // GUARDED_BY(admin_mu_)
  std::string last_receipt_hash_;                 // GUARDED_BY(admin_mu_)
  uint64_t highest_keyring_gen_ = 0;              // GUARDED_BY(admin_mu_)
  bool holds_writer_lock_ = false;  // kp_->AcquireWriterLock() succeeded (Store::Open)
  uint64_t open_micros_ = 0;        // Store::Open wall time (StoreStats::open)
  uint64_t recovery_pending_ = 0;                 // read-only opens; fixed after open
  std::map<uint64_t, std::string> damage_marks_;  // internal id -> why; filled at open
  std::mutex report_mu_;                           // serialises ApplyDamageReports
  std::vector<std::string> unreported_damage_;    // GUARDED_BY(report_mu_)
  // Shards whose high-water mark (decision 0015) the open read; consumed by
  // RecordWalDamage (writable opens).
  std::vector<uint32_t> shard_marks_;

  std::mutex audit_mu_;
  uint64_t audit_seq_ = 0;          // GUARDED_BY(audit_mu_)
  std::string audit_last_hash_;     // GUARDED_BY(audit_mu_)
  std::atomic<uint64_t> audit_failures_{0};

  std::mutex bg_mu_;
  std::condition_variable bg_cv_;
  bool bg_stop_ = false;  // GUARDED_BY(bg_mu_)
  std::thread bg_thread_;

  mutable std::shared_mutex map_mu_;
  std::map<std::string, std::shared_ptr<Tenant>, std::less<>> tenants_;  // GUARDED_BY(map_mu_)
};

}  // namespace callvault

#endif  // CALLVAULT_ENGINE_STORE_IMPL_H_
