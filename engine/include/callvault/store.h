// Store: an encrypted, tenant-partitioned store of calls.
//
// A store is a directory holding a metadata RocksDB instance (the tenant
// registry and receipts) and one or more shards (RocksDB instances), each
// with a bounded number of tenants, one column family per tenant. Every
// record is compressed and sealed with XChaCha20-Poly1305 under its tenant's
// data key; purging a tenant destroys that key (crypto-shredding) and drops
// its column family. See docs/architecture.md.
//
// Thread safety: every method may be called concurrently from any number of
// threads. Operations on one tenant are serialised against that tenant's
// purge: PurgeTenant waits for in-flight operations on the tenant to finish,
// and operations that start after it began get kTenantPurged.
//
// Example (check ok() before *, -> or value(): on an error they abort):
//   auto keys = callvault::NewFileKeyProvider("/var/lib/cv-keys");
//   if (!keys.ok()) { ... keys.status().ToString() ... }
//   callvault::Options options;
//   options.key_provider = *keys;
//   options.create_if_missing = true;
//   options.region = "eu-west";
//   auto store = callvault::Store::Open(options, "/var/lib/cv");
//   if (!store.ok()) { ... store.status().ToString() ... }
//   callvault::TenantSpec acme;
//   acme.tenant_id = "acme";
//   acme.retention_days = 365;
//   callvault::Status created = (*store)->CreateTenant(acme);
#ifndef CALLVAULT_STORE_H_
#define CALLVAULT_STORE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>
#include <utility>

#include "callvault/backup.h"
#include "callvault/call.h"
#include "callvault/key_provider.h"
#include "callvault/metrics.h"
#include "callvault/move.h"
#include "callvault/recording.h"
#include "callvault/status.h"

namespace rocksdb {
class Env;
}

namespace callvault {

// A security-relevant event: tenant created, churned, purged, hold placed
// or released, erasure, retention sweep, key rotation, and every
// authentication failure on decrypt or keyring open. Events form a hash
// chain (VerifyAuditChain). `detail` holds no personal data.
struct AuditEvent {
  uint64_t sequence = 0;
  int64_t time = 0;  // microseconds since epoch
  std::string kind;  // e.g. "tenant_purged", "auth_failure"
  std::string tenant_id;  // "" for store-level events
  std::string detail;
  std::string prev_hash;  // hex BLAKE2b-256 of the previous event's Canonical()
  std::string Canonical() const;  // one line of JSON, sorted keys
};

struct Options {
  // --- Affect behaviour ---
  // The root of the key hierarchy. Required.
  std::shared_ptr<KeyProvider> key_provider;
  // Create the store if the directory holds none. Default: false.
  bool create_if_missing = false;
  // Open for inspection only, beside a process that holds the store open
  // for writing (docs/operations.md, "Inspecting a live store"). Takes no
  // lock and writes nothing to the store directory or the key directory:
  // no recovery (a tenant left CREATING or PURGING, or whose key or column
  // family is gone, is shown as it is and its reads give
  // kFailedPrecondition; RecoveryPending() counts them), no header update,
  // no key retirement, no audit event stored (the audit callback still
  // sees them), no background runner, no signing key created. Sees the
  // store as it was at open (RocksDB read-only instances: what the writer
  // had in its WAL and SST files then), not the writer's later changes.
  // A damaged WAL is read as its repair would leave it, repaired in memory
  // only. Every method that writes returns kNotSupported ("store opened
  // read-only") and changes nothing; RunRetention and Erase work with
  // dry_run. The one thing it writes: a tenant it finds damaged (a read or
  // Verify met a damaged table or blob file) is left for the writer as a
  // sealed damage report in <store>/damage-reports/, which the next
  // writable open (or the live writer's Stats, Verify, AcceptTenantDamage)
  // turns into the durable mark and a tenant_damaged audit event
  // (docs/decisions/0020); if it cannot be written, Verify says so.
  // Excludes create_if_missing (kInvalidArgument). Default: false.
  bool read_only = false;
  // The store's region, fixed when it is created. At open, a non-empty value
  // must match the stored one (kFailedPrecondition otherwise). Tenants are
  // created in the store's region only. Default: "" (at creation: "default").
  std::string region;
  // fsync the WAL before acknowledging each write. Turning this off trades
  // durability of the last writes for speed. Default: true.
  bool sync_writes = true;
  // Shards are created as needed so that none holds more tenants than this.
  // Fixed when the store is created. With keep_rocksdb_options_file, a
  // family's create or drop costs ~0.2 ms of CPU per family in its instance
  // (RocksDB rewrites and re-parses the OPTIONS file: ~30 ms at a full
  // shard); without it (the default) a create takes ~4 ms and a purge ~18 ms
  // at 10,000 tenants (docs/decisions/0069). Default: 128 (79 shards at
  // 10,000 tenants).
  uint32_t max_tenants_per_shard = 128;
  // May a churned tenant (ScheduleTenantPurge) still be read until its
  // purge? Writes are refused either way. Default: true.
  bool allow_reads_after_churn = true;
  // Run scheduled purges and retention every this many seconds in a
  // background thread; 0 = never (call RunScheduledPurges / RunRetention
  // yourself). Default: 0.
  uint32_t background_interval_seconds = 0;
  // Called (from the thread that saw it) for every audit event, including
  // keyring authentication failures that stop Open. Must not call back
  // into the store and must not throw. Default: none.
  std::function<void(const AuditEvent&)> audit_callback;
  // The clock, in microseconds since the epoch, that decides: churn
  // deadlines (ScheduleTenantPurge, CancelTenantPurge, churned_at) and the
  // `now` of the background runner. It never stamps evidence: receipt
  // times, audit event times, tenant and hold created_at and call times are
  // always the system clock. Default: the system clock.
  std::function<int64_t()> clock;
  // Every message of the engine and every line of RocksDB's info logs
  // (callvault/metrics.h, Logger). When set, the info logs go here instead
  // of <instance>/LOG (a read-only open's too, which otherwise discards
  // them). Default: none (info logs to <instance>/LOG; engine messages
  // only as audit events and errors).
  Logger logger;
  // How far Verify, Erase, RunRetention and RunScheduledPurges are
  // (callvault/metrics.h, Progress). Default: none.
  ProgressCallback progress;

  // --- Affect performance ---
  // Block cache shared by every shard. Default: 64 MiB.
  size_t block_cache_bytes = 64u << 20;
  // Memtable budget shared by every shard; at least 64 KiB (far below
  // 64 KiB per active tenant every write flushes: docs/operations.md,
  // "Many active tenants"). Default: 256 MiB.
  size_t write_buffer_budget_bytes = 256u << 20;
  // Memtable size per column family, 64 KiB to 64 GiB. Default: 8 MiB.
  size_t write_buffer_bytes = 8u << 20;
  // Background compaction threads shared by every shard (RocksDB's LOW
  // pool; also each instance's max_background_jobs), 0 to 256 (0 = 1).
  // Default: 2.
  int background_threads = 2;
  // RocksDB's flush pool (HIGH), beside those (a flush is mostly fsyncs: threads
  // beyond the cores still add flushes, which run one per shard at a
  // time), 0 to 256. 0 = background_threads / 2, at least 2 (decision
  // 0068). Default: 0.
  int flush_threads = 0;
  // Compactions run at the lowest CPU priority (nice 19): call writes and
  // reads go first, compactions take the cores' idle time
  // (docs/decisions/0084: steady ingest +22% at 2,000 and +14% at 10,000
  // active tenants on two cores, none at 100; but about half the ingest
  // when other threads of the process keep the cores busy, as compactions
  // then fall behind and RocksDB slows the writes). For a process whose
  // CPU is mostly the store's. It lowers the LOW thread pool of
  // Options::env, which is Env::Default()'s (also through any composite
  // Env): the pool every RocksDB instance of the process shares, for as
  // long as the process runs (RocksDB cannot raise it back). Read-only
  // opens leave it. Flushes keep their priority (decision 0068).
  // Default: false.
  bool low_priority_compactions = false;
  // Writers wait, before they take any lock, while the memtables switched
  // out and queued for a flush hold more than this, so that the memtables
  // stay near write_buffer_budget_bytes when writes outrun the flushes
  // (docs/decisions/0066). A shard in RocksDB's background-error state
  // (a failed flush) keeps its memtables until the store is reopened: they
  // are not counted (decision 0071). A wait ends when the flushes bring the
  // backlog under it, or gives up once the backlog has not fallen for a
  // second (a hung flush, or readers pinning flushed memtables); writers
  // then pass for ten seconds (StoreStats::memory.flush_backlog_gave_up).
  // 0 = half of write_buffer_budget_bytes, or all of it while the store
  // has one shard (whose WAL cap is the budget: at the cap RocksDB switches
  // out most of the shard's memtables at once, docs/decisions/0070);
  // SIZE_MAX = writers never wait. Default: 0.
  size_t flush_backlog_bytes = 0;
  // Once a tenant holds this many calls, a zstd dictionary is trained from
  // that tenant's own records (sealed, stored in the tenant's column family,
  // destroyed with it) and later records are compressed with it. Small
  // records compress far better. 0 = train none (a tenant that has a
  // dictionary keeps using it; its records stay readable with any value).
  // Default: 256 calls.
  uint32_t dictionary_training_calls = 256;
  // Threads that train dictionaries in the background (docs/decisions/
  // 0045): the put that reaches the threshold only queues its tenant, and
  // at most this many trainings (~110 ms of CPU each) run at once. 0 =
  // train in the put that reaches the threshold, under the tenant's write
  // lock (the behaviour before decision 0045). At most 256. Default: 1.
  int dictionary_training_threads = 1;
  // Compress call records in the background (docs/decisions/0052): a put
  // seals its call's records uncompressed (the WAL and the memtable hold
  // them sealed all the same), and RocksDB's flushes and compactions
  // compress them, with the tenant's dictionary, and seal them again, in
  // its background threads. A synced put then pays the seal and the fsync,
  // not zstd. Bytes on disk after the flush are as with false. false:
  // compressed in the writer's thread (the behaviour before 0052). Records
  // either way are read by every build.
  bool defer_compression = true;
  // Recordings written through SST ingestion (docs/decisions/0055): a
  // writer seals its chunks into a table file of its own in the shard's
  // `ingest/` directory and `Finish` ingests that file into the tenant's
  // column family, then writes the manifest synced. The chunks go to the
  // disk once (no WAL, no blob file at flush). The disk holds the whole
  // sealed recording in that directory until `Finish` (docs/operations.md,
  // "Disk space"). false: each chunk is an unsynced write to the WAL and
  // the memtable (blob files at flush), `Finish` syncs the WAL (the path
  // before 0055). Recordings written either way read the same.
  bool recording_ingest = true;
  // A recording writer on the ingest path seals each chunk on the caller's
  // thread while a thread of its own hashes the previous chunk (SHA-256)
  // and adds it to the table file (docs/decisions/0061): one chunk in
  // flight, so a writer holds at most two chunks' plaintext and ciphertext.
  // An error of that thread is returned by the next Append or Finish.
  // false: all of it on the caller's thread (the path before 0061).
  bool recording_pipeline = true;
  // Loaded compression dictionaries of every tenant, least recently used
  // dropped first beyond this (a dropped one is read again from its row at
  // its next use; ~90 KiB each). Default: 64 MiB (~700 tenants' in use at
  // once). See docs/operations.md, "Memory".
  size_t dictionary_cache_bytes = 64u << 20;
  // Memory the store's memtables gave back, returned to the system
  // (docs/decisions/0060): once the memtables' total has fallen by this
  // much since the last time and is below a quarter of their budget
  // (writes slowed down), a flush calls glibc's malloc_trim,
  // which returns the free pages in the middle of malloc's heaps. Without
  // it, what the memtables held at their peak stays resident (free to
  // malloc, not to the system: 370 MB of 534 MB at 2,000 active tenants).
  // 0 = never (and on C libraries other than glibc). Default: 64 MiB.
  size_t heap_trim_step_bytes = 64u << 20;
  // The change feed's horizon (Store::ReadChanges, docs/decisions/0030):
  // each change of a tenant removes that tenant's events older than this
  // (up to 256 per change), so a token older than the horizon gets
  // kOutOfRange. 0 = no age limit. Default: 7 days.
  uint32_t change_feed_retention_seconds = 7 * 24 * 3600;
  // At most this many events per tenant (the oldest removed first, by the
  // same changes). 0 = no count limit. Default: 1,000,000.
  uint64_t change_feed_max_events = 1000000;
  // Keep RocksDB's OPTIONS file in each instance directory. RocksDB
  // rewrites it, with every column family's options, and parses it back at
  // every open of an instance and at every tenant create and purge, while
  // the shard's writers wait: ~0.2 ms of CPU per tenant in the shard (25-30
  // ms at 128; docs/decisions/0069). The store never reads it (every open
  // passes its options); RocksDB's `ldb` works without it (it lists the
  // families from the MANIFEST and opens them with default options). false:
  // none is written, and an open for writing removes those an earlier run
  // with true left. Default: false.
  bool keep_rocksdb_options_file = false;

  // --- For tests ---
  // The Env (and so FileSystem) RocksDB uses; nullptr means Env::Default().
  // Must outlive the store.
  rocksdb::Env* env = nullptr;
};

enum class TenantState : uint8_t {
  // Do not renumber: stored on disk.
  kCreating = 0,
  kActive = 1,
  kPurging = 2,
  kPurged = 3,
};
const char* TenantStateName(TenantState state);

struct Hold {
  std::string hold_id;  // unique within the tenant (limits.h id rules)
  std::string reason;   // free text, <= 1024 bytes; sealed at rest
  std::string call_id;  // "" = the whole tenant
  int64_t created_at = 0;  // set by the store
};

struct TenantSpec {
  std::string tenant_id;  // caller-supplied; see limits.h for the form
  std::string region;     // empty: the store's region
  uint32_t retention_days = 0;  // 0 = keep until purged
};

struct TenantInfo {
  std::string tenant_id;
  TenantState state = TenantState::kActive;
  std::string region;
  uint32_t retention_days = 0;
  int64_t created_at = 0;  // microseconds since epoch
  int64_t purged_at = 0;   // 0 unless purged
  uint64_t internal_id = 0;  // opaque, never reused
  uint32_t shard = 0;
  std::string column_family;  // opaque name, e.g. "t000000000000002a"
  uint32_t key_version = 0;   // the tenant's data-key version
  int64_t churned_at = 0;     // ScheduleTenantPurge was called; 0 if not churned
  int64_t purge_at = 0;       // the scheduled purge; 0 if none
  std::vector<Hold> holds;    // tenant-level legal holds
  std::vector<std::pair<std::string, uint32_t>> workspace_retention;  // overrides, by workspace
  // Recovery found this tenant's registry record contradicted by the keyring
  // or its data (tampering): every operation on it returns kCorruption until
  // Store::ReinstateTenant or PurgeTenant. Not stored.
  bool quarantined = false;
  // The tenant lost acknowledged writes or holds unreadable data: a damaged
  // WAL record of it, or a damaged SST or blob file of its column family
  // (docs/decisions/0014). Every operation on it returns kCorruption
  // ("tenant T is damaged: ...") until Store::AcceptTenantDamage or
  // PurgeTenant; `damage` says what was found (file, offset, reason; no
  // content). Stored (meta key `B`, docs/format.md): a reopen keeps it.
  bool damaged = false;
  std::string damage;
  // Tenant moves (callvault/move.h). On the source: the destination store id
  // (hex) once the move fenced the tenant (writes refused with kMoved) and
  // after its moved_out purge. On the destination: the source store id.
  // Empty if the tenant never moved. `move_id` (hex) names the move.
  std::string moved_to;
  std::string moved_from;
  std::string move_id;
};


// A signed record of what was destroyed. The signature covers Canonical();
// each receipt carries the hash of its predecessor, so the receipts form a
// chain that VerifyReceiptChain checks offline. No personal data: the tenant
// is named by its id, which is the customer's account, not a person.
struct Receipt {
  uint64_t sequence = 0;  // 1, 2, ...
  // "tenant_purge", "purge_on_open", "erasure_delete", "erasure_redact", "retention",
  // "orphan_key_destroyed" (tenant_id "": a key no registry record owned),
  // "moved_out" (the source's copy of a moved tenant destroyed; `destination`)
  std::string kind;
  std::string store_id;   // hex
  std::string region;
  int64_t time = 0;       // microseconds since epoch
  std::string tenant_id;
  uint64_t tenant_internal_id = 0;
  std::string column_family;
  uint32_t shard = 0;
  std::vector<uint32_t> key_versions_destroyed;
  uint32_t kek_generation_retired = 0;
  uint32_t kek_generation_current = 0;
  uint64_t keyring_generation = 0;
  uint64_t records = 0;  // purge: records in the column family when dropped; erasure: calls changed
  uint64_t bytes = 0;    // their approximate size on disk
  std::string prev_hash;  // hex BLAKE2b-256 of the previous receipt's Canonical()+signature ("" for the first)
  std::string signature;  // hex Ed25519 signature of Canonical()
  // "moved_out" only: the hex store id of the store the tenant moved to (in
  // Canonical() only when set, so every other receipt's form is unchanged).
  std::string destination;
  // Purges that destroyed (or found destroyed) a KEK generation: when that
  // generation is irrecoverable, in microseconds since the epoch, as the
  // key provider reports it (KeyProvider::IrrecoverableAfter): the purge
  // time for the file and PKCS#11 providers, the scheduled deletion date
  // for a KMS with a soft-delete window. Until then the purged tenant's
  // data can be brought back by whoever can recover the KEK. 0: not
  // recorded (receipts of other kinds, and purges before this field; in
  // Canonical() only when set, so their signatures are unchanged).
  int64_t irrecoverable_after = 0;
  // Purges only: true when `records` and `bytes` could not be counted
  // because the tenant's shard did not open (a damaged shard, decision
  // 0034): they are 0 then, which says nothing about what was destroyed.
  // In Canonical() only when true, so every other receipt is unchanged.
  bool counts_unknown = false;

  // The signed form: one line of JSON with sorted keys and no signature.
  std::string Canonical() const;
  // Canonical() plus the signature.
  std::string ToJson() const;
};

struct RetentionReport {
  int64_t now = 0;
  bool dry_run = false;
  uint64_t tenants_swept = 0;
  uint64_t tenants_held = 0;  // skipped: a tenant-level hold
  // Skipped: damaged or quarantined (every operation on them is
  // kCorruption). Their expired calls stay until the tenant is restored,
  // purged or its damage accepted; `callvault retention run` exits 76.
  std::vector<std::string> tenants_damaged;
  uint64_t calls_removed = 0;  // (would be removed, on a dry run)
  uint64_t calls_kept_held = 0;    // expired but under a call hold
  uint64_t calls_kept_pinned = 0;  // expired but pinned
  std::vector<std::pair<std::string, uint64_t>> removed_by_tenant;
  std::vector<Receipt> receipts;  // one per tenant with removals
};

// Checks each receipt's signature against `public_key` (32 raw bytes) and the
// hash chain from the first. Returns OK, or kCorruption naming the position
// (sequence) of the first receipt that is edited, forged, missing or
// out of order.
Status VerifyReceiptChain(const std::vector<Receipt>& receipts, std::string_view public_key);

// Checks the audit hash chain from the first event given. kCorruption
// names the position of the first event that is edited, missing or out
// of order.
Status VerifyAuditChain(const std::vector<AuditEvent>& events);

struct CrmRef {
  std::string system;
  CrmObjectType object_type = CrmObjectType::kAccount;
  std::string object_id;
};

// Filters combine with AND; the entries of one list filter with OR. The
// planner scans one index (participants, then CRM, then owners, then
// workspace, then updated_at, else started_at: docs/architecture.md) and
// checks every other filter on each candidate's sealed summary, so it
// decrypts the metadata only of calls it returns.
struct ListQuery {
  // started_at range, microseconds: [from, to). 0 and INT64_MAX by default
  // (every stored started_at is below limits::kMaxInstant, so the default
  // range holds every call).
  int64_t from = 0;
  int64_t to = INT64_MAX;
  bool newest_first = true;
  // Page size; 0 means limits::kDefaultListLimit; at most kMaxListLimit.
  size_t limit = 0;
  // From a previous page's next_cursor; empty for the first page. A cursor
  // is bound to the tenant and the whole query; another gives
  // kInvalidArgument.
  std::string cursor;

  std::vector<std::string> owners;        // owner_user_id, any of (<= 100)
  // Email or phone, any of (<= 100): calls in which a participant has it,
  // or a CRM link's object id is it (the calls FindReferences returns).
  std::vector<std::string> participants;
  std::optional<CrmRef> crm;              // a call linked to this CRM object
  std::string workspace_id;               // "" = any
  // updated_at >= this; 0 = any. A filter over the calls that exist, not a
  // feed: deletions never show. To follow changes, use ReadChanges.
  int64_t updated_since = 0;
  std::optional<Direction> direction;
  std::optional<CallScope> scope;
  uint32_t min_duration_ms = 0;
  uint32_t max_duration_ms = UINT32_MAX;
  std::vector<std::string> tags;  // any of (<= 100)
};

// Roles in which a call references an email or phone (FindReferences).
enum ReferenceRole : uint32_t {
  kRoleParticipant = 1u << 0,  // a participant has it
  kRoleOwner = 1u << 1,        // ... and that participant is the call's owner
  kRoleCrmContact = 1u << 2,   // a CRM link's object id is it
};

struct Reference {
  std::string call_id;
  int64_t started_at = 0;
  uint32_t roles = 0;  // ReferenceRole bits
};

enum class EraseMode : uint8_t { kDelete = 0, kRedact = 1 };

struct EraseRequest {
  std::string subject;  // an email or an E.164 phone
  EraseMode mode = EraseMode::kDelete;
  // Count and report only; change nothing.
  bool dry_run = false;
  // Refuse (kResourceExhausted, nothing changed) when more calls match.
  // Default: 1000.
  size_t max_calls = 1000;
  // After the change, flush memtables and the WAL and compact the tenant's
  // column family, so no live file holds the erased bytes (docs/crypto.md
  // says what this does not do for backups). Default: true.
  bool physical = true;
};

struct EraseResult {
  size_t matched = 0;  // calls referencing the subject
  size_t changed = 0;  // calls deleted or redacted (0 on a dry run)
  std::optional<Receipt> receipt;  // none on a dry run, or when nothing matched
};

struct CallPage {
  std::vector<Call> calls;  // metadata only (see Parts)
  std::string next_cursor;  // empty when there are no more
};

// One event of a tenant's change feed (Store::ReadChanges).
enum class ChangeKind : uint8_t {
  kPut = 1,     // the whole call was written: PutCall/PutCalls (new or replacing)
  kUpdate = 2,  // parts of it changed: UpdateCall, a redaction (Erase, restore replay)
  kDelete = 3,  // it was removed
};
enum class ChangeCause : uint8_t {
  kUser = 1,       // PutCall, PutCalls, UpdateCall, DeleteCall
  kErasure = 2,    // Erase (delete or redact mode)
  kRetention = 3,  // RunRetention
  kRestore = 4,    // a restore's tombstone-log replay (decision 0027)
};
// Stable lower-case names: "put", "update", "delete"; "user", "erasure",
// "retention", "restore".
const char* ChangeKindName(ChangeKind kind);
const char* ChangeCauseName(ChangeCause cause);

struct ChangeEvent {
  uint64_t sequence = 0;  // per tenant, 1, 2, ... in commit order
  ChangeKind kind = ChangeKind::kPut;
  ChangeCause cause = ChangeCause::kUser;
  std::string call_id;
  // The call's version after a put or update; for a DeleteCall the version
  // the delete took; for other deletes the version the call had.
  uint64_t version = 0;
  int64_t committed_at = 0;  // microseconds since epoch, when it was written
};

struct ChangePage {
  std::vector<ChangeEvent> events;  // in commit order
  // Pass to the next ReadChanges: the events after the last one returned
  // (the same position when `events` is empty). Opaque.
  std::string next_token;
};

struct PutResult {
  std::string call_id;   // the call's id in the store
  bool created = false;  // false: an existing call was updated
  uint64_t version = 0;  // the call's version after this write (Call::version)
};

// A tenant data key (DEK) in the keyring that no live (creating, active or
// purging) registry record owns: left by a store copy put back from before
// the tenant was created, or by a registry row that was deleted. It keeps
// whatever copy of that tenant's data exists readable until it is destroyed
// with Store::ReconcileKeys (`callvault keys reconcile --yes`).
struct OrphanKey {
  uint64_t internal_id = 0;
  uint32_t key_version = 0;
  std::string column_family;       // the family its data would live in
  bool has_column_family = false;  // that family exists in this store (its data kept)
  uint32_t shard = 0;              // where, if has_column_family
  // That family holds rows: data this key still reads in THIS store (a live
  // tenant whose registry record was deleted or replaced looks like this).
  // ReconcileKeys destroys it only when named in destroy_with_data.
  bool has_rows = false;
  // A legal hold covers a call in that family: ReconcileKeys refuses it.
  bool call_holds = false;
};

struct KeyReconcileReport {
  bool dry_run = true;
  std::vector<OrphanKey> orphan_keys;  // found; unless dry_run, destroyed
  // One "orphan_key_destroyed" receipt per internal id destroyed.
  std::vector<Receipt> receipts;
};

// What Verify checked, what failed and what it could not check. A record
// is "failed" when it was read and did not authenticate or decode; it is
// "unchecked" when it was never read: a scan that stops early (an iterator
// error, e.g. a damaged SST block) leaves the rest of that tenant (or of
// the metadata instance) unchecked. Every authentication failure is also
// audited: one "auth_failure" event per tenant and kind of failure (a
// "verify_incomplete" event for a scan stopped by anything else).
struct VerifyReport {
  uint64_t tenants = 0;
  uint64_t records_ok = 0;      // tenant records read and checked
  uint64_t records_failed = 0;  // tenant records read that failed
  // Records never reached because a scan stopped: RocksDB's estimate of
  // the keys beyond the last one read, at least 1 per stopped scan.
  uint64_t records_unchecked = 0;
  // The metadata instance (tenant registry, receipts and their signed
  // chain, audit events and their hash chain) is checked by a verify of the
  // whole store (no tenant given) only.
  bool metadata_checked = false;
  uint64_t metadata_ok = 0;
  uint64_t metadata_failed = 0;  // records, and a broken receipt or audit chain
  // Per failure: the tenant (or "metadata") and a specific message. No
  // content. At most 10 per tenant; the counts above are complete.
  std::vector<std::string> failures;
  // Keys no live tenant owns (see OrphanKey), and tenants that recovery
  // quarantined (their registry record contradicts the keyring or their
  // data; see Store::ReinstateTenant). Their records are not checked.
  std::vector<OrphanKey> orphan_keys;
  std::vector<std::string> quarantined_tenants;
  // "T: what was found" per damaged tenant (TenantInfo::damaged); their
  // records are not checked (each also counts one unchecked record).
  std::vector<std::string> damaged_tenants;
  // Per stopped scan: "tenant X: scan stopped after N records: <reason>;
  // about M remaining unchecked".
  std::vector<std::string> unchecked;
  // True only if everything was checked, nothing failed, and recovery left
  // nothing for an operator to resolve (no orphan key, no quarantine).
  bool ok() const {
    return records_failed == 0 && metadata_failed == 0 && records_unchecked == 0 &&
           unchecked.empty() && orphan_keys.empty() && quarantined_tenants.empty() &&
           damaged_tenants.empty();
  }
};

struct ShardStats {
  uint32_t shard = 0;
  uint32_t tenants = 0;
  uint64_t sst_files = 0;
  uint64_t live_bytes = 0;  // SST + blob files
  // Non-empty: the shard did not open for damage (its CURRENT, MANIFEST or
  // acknowledged WAL), and this says why; its tenants answer kCorruption
  // (TenantInfo::damaged), the other shards serve. The counts are 0.
  std::string damage;
};

struct TenantStats {
  std::string tenant_id;
  TenantState state = TenantState::kActive;
  uint32_t shard = 0;
  uint64_t calls = 0;
  uint64_t records = 0;
  uint64_t bytes = 0;  // approximate, on disk + memtable
};

struct StoreStats {
  std::string store_id;
  std::string region;
  std::vector<ShardStats> shards;
  std::vector<TenantStats> tenants;  // live tenants
  uint64_t purged_tenants = 0;
  uint32_t kek_generation = 0;
  uint64_t keyring_generation = 0;
  uint64_t receipts = 0;
  uint64_t files = 0;        // files under the store directory
  uint64_t total_bytes = 0;  // their size
  std::vector<OrphanKey> orphan_keys;             // see OrphanKey
  std::vector<std::string> quarantined_tenants;  // see Store::ReinstateTenant
  std::vector<std::string> damaged_tenants;      // "T: what was found"; see TenantInfo::damaged
  // What this Store object's Open cost: its wall time (retries of a
  // read-only open included), and the part spent reading every WAL of the
  // metadata instance and the shards before recovery (docs/decisions/0014;
  // shards open in parallel, so the scans' sum may exceed their share).
  struct OpenCost {
    uint64_t open_micros = 0;
    uint64_t wal_scan_micros = 0;
    uint64_t wal_files = 0;
    uint64_t wal_bytes = 0;
  } open;
  // What the store holds in memory now, by consumer, beside its bound
  // (docs/operations.md, "Memory").
  struct Memory {
    uint64_t block_cache_bytes = 0, block_cache_budget = 0;  // Options::block_cache_bytes
    uint64_t memtable_bytes = 0, memtable_budget = 0;        // Options::write_buffer_budget_bytes
    uint64_t dictionary_bytes = 0, dictionary_budget = 0;    // Options::dictionary_cache_bytes
    uint64_t dictionaries = 0;                               // loaded now
    uint64_t dictionary_hits = 0, dictionary_misses = 0, dictionary_evictions = 0;  // since open
    // Table readers of the open table files of every instance, outside the
    // block cache (RocksDB's estimate; at most 512 files per instance).
    uint64_t table_reader_bytes = 0;
    // Free memory malloc holds for the whole process (glibc's mallinfo2:
    // not only the store's; whether or not a trim returned its pages to
    // the system), and the trims since open (Options::heap_trim_step_bytes).
    uint64_t allocator_free_bytes = 0;
    uint64_t heap_trims = 0;
    // Memtables switched out and not yet freed (queued for a flush, being
    // flushed, or pinned by a reader), but for those of failed shards
    // (decision 0071), beside Options::flush_backlog_bytes;
    // since open, the writes that waited for it, their time waiting, and
    // the waits that gave up, the backlog not falling for a second (decision 0066).
    uint64_t flush_backlog_bytes = 0, flush_backlog_limit = 0;
    uint64_t flush_backlog_waits = 0, flush_backlog_wait_micros = 0, flush_backlog_gave_up = 0;
  } memory;
  // Background dictionary training (Options::dictionary_training_threads,
  // docs/decisions/0045): tenants queued and trainings running now; since
  // open, dictionaries trained and stored, trainings that failed (retried a
  // threshold later) and jobs given up because the tenant went away (purged,
  // moved, closed) or refused writes.
  struct DictionaryTraining {
    uint64_t queued = 0, running = 0;
    uint64_t trained = 0, failed = 0, given_up = 0;
  } dictionary_training;
  // Background compression (Options::defer_compression, docs/decisions/
  // 0052), since open: call records compressed and sealed again by flushes
  // and compactions, and the times one was kept as written (its tenant busy
  // with a purge or rotation, or not found, or the record did not open: a
  // later compaction tries again).
  struct Compression {
    uint64_t resealed = 0, kept = 0;
  } compression;
  // File descriptors (docs/decisions/0059): the process's RLIMIT_NOFILE
  // (the soft limit, which the open raised to the hard one), the part kept
  // back from the instances' table files, and the most table and blob
  // files each shard (and the metadata instance) keeps open, sized for
  // `planned_shards` shards (a read-only open keeps every file open).
  struct Descriptors {
    uint64_t nofile_limit = 0, reserve = 0;
    uint32_t open_files_per_shard = 0, planned_shards = 0;
  } descriptors;
};

class Store {
 public:
  // Opens (or with create_if_missing, creates) the store at `path`. Runs
  // recovery, which destroys only what the keyring (in the key directory,
  // which the store directory cannot forge) already says is gone
  // (docs/decisions/0012):
  //  - a tenant left CREATING is rolled back if its column family is absent
  //    or holds no row and its creation was never audited; otherwise it is
  //    quarantined (nothing destroyed);
  //  - a tenant left PURGING is rolled forward to PURGED (receipt), unless
  //    its key is still there and a legal hold covers one of its calls
  //    (then quarantined); an ACTIVE tenant whose key is gone likewise
  //    ("purge_on_open" receipt);
  //  - a column family no live tenant owns is dropped only if the keyring
  //    holds no key for it; otherwise it is kept and its key reported as an
  //    orphan (see ReconcileKeys).
  // Every contradiction is reported as tampering: an "auth_failure" audit
  // event (and the callback); the store still opens and serves the other
  // tenants. A quarantined tenant's operations return kCorruption until it
  // is reinstated or purged. Every key no live tenant owns gets an
  // "orphan_key" audit event at each open until it is reconciled.
  // Every WAL is read before RocksDB recovers it (docs/decisions/0014): a
  // torn tail is dropped quietly; damage that would lose acknowledged
  // writes is repaired to lose only the damaged records, and the tenants
  // that lost writes are marked damaged (TenantInfo::damaged; a
  // "wal_damage" audit event and the callback); the store opens. Damage in
  // the metadata instance's WAL fails the open with kCorruption.
  // Before anything is created or read: refuses a local key directory that
  // is the store directory, inside it, or holds it (by device and inode,
  // through symlinks and bind mounts), then takes the key provider's writer
  // lock (KeyProvider::AcquireWriterLock), held until the store is
  // destroyed: one writer per key directory.
  // Errors: kInvalidArgument (bad options, keys and store not apart),
  // kNotFound (no store and !create_if_missing), kKeyError (wrong keys,
  // rollback), kCorruption, kIOError, kFailedPrecondition (region mismatch;
  // the key directory in use by another writer, or not private; a store
  // directory (the store's, meta/, shards/, a shard's, its ingest/,
  // damage-reports/) owned by another uid or writable by group or others:
  // the message names it and the chmod or chown that fixes it).
  // A writable open of a store that another process holds open gives
  // kFailedPrecondition: "key directory D is in use by another process
  // (pid N)" when both use one key directory, else "open for writing in
  // another process" (RocksDB's lock on meta/); a
  // read-only open (Options::read_only) still works: it takes no writer
  // lock, runs no recovery and writes nothing but damage reports
  // (RecoveryPending(); Options::read_only).
  static Result<std::unique_ptr<Store>> Open(const Options& options, const std::string& path);

  // Options::read_only.
  bool read_only() const;
  // Read-only opens: the tenants whose recovery the open could not do
  // (CREATING, PURGING, or live without their key or column family); a
  // writable open, or the writer that holds the store, completes them.
  // Always 0 after a writable open (it recovered them).
  uint64_t RecoveryPending() const;

  // Closes the store: stops the background runner, waits for the calls in
  // flight, then for every shard in order and then the metadata instance
  // syncs the WAL (FlushWAL(true): with sync_writes = false this makes the
  // unsynced writes durable; with sync_writes every acknowledged write is
  // durable already), destroys the column-family handles and closes the
  // RocksDB instance (its WAL, MANIFEST and info log files; DB::Close's
  // status is checked); wipes the keys held in memory and releases the
  // key directory's writer lock. Every step runs even after one failed;
  // returns the first error (kIOError, naming the shard or "metadata" and
  // the failed I/O; "disk full: ..." for ENOSPC). An instance whose write or
  // sync failed earlier is not synced again: its close returns kIOError
  // saying so (its unsynced writes, never acknowledged, may be lost).
  // Calls made once Close has begun are refused at once (Close waits only
  // for the calls already in flight, never for a stream of new ones).
  // A second call does nothing and returns OK. After Close every method
  // returns kFailedPrecondition ("the store is closed"), including a
  // RecordingWriter's; only the destructor, read_only(), RecoveryPending(),
  // ShardPaths() (then empty) and MetaPath() may still be called.
  [[nodiscard]] Status Close();
  // Calls Close and ignores its status: call Close first to see errors.
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // --- Tenants -------------------------------------------------------------
  // kAlreadyExists if the tenant is live; a purged tenant id may be created
  // again (it gets a new key and column family). kFailedPrecondition if the
  // region differs from the store's.
  Result<TenantInfo> CreateTenant(const TenantSpec& spec);
  // Every tenant the registry knows, including purged ones, by tenant_id.
  Result<std::vector<TenantInfo>> ListTenants();
  Result<TenantInfo> DescribeTenant(std::string_view tenant_id);
  // Crypto-shreds the tenant (its data key is removed from the keyring and
  // the keyring re-sealed under a new KEK generation; the old one is
  // destroyed), drops its column family, and appends a signed receipt.
  // Once this returns OK no key that exists can decrypt any of the tenant's
  // records, in this store or in any copy of it. The family's files are
  // deleted after the receipt, in the background (Metrics::
  // purge_deletions_pending; a crash first leaves them for the next open,
  // which deletes them); Close waits for them. Idempotent: purging a
  // PURGING tenant completes the purge; purging a PURGED one returns its
  // receipt again.
  Result<Receipt> PurgeTenant(std::string_view tenant_id);
  // Rotates the tenant's data key (what to run when it may have leaked;
  // docs/decisions/0036): a new DEK (key version + 1), every row of the
  // tenant copied, re-keyed (the blind hashes in row keys are under the
  // DEK too) and re-sealed under it into a new column family, the registry
  // switched to the copy, then the old DEK crypto-shredded as a purge does
  // (keyring under a new KEK generation, the old KEK destroyed) and the old
  // family dropped. Returns the signed "key_rotation" receipt
  // (key_versions_destroyed: the old version; records: the rows copied).
  // The tenant is served while it runs (docs/decisions/0038: held only for
  // the copy's last tail and the switch); a recording written across the
  // switch fails at Finish (kNotFound); list cursors and change-feed tokens issued before
  // it are refused afterwards. A crash before the switch rolls it back at
  // the next open, after it rolls forward. Progress: Options::progress,
  // operation "rotate", unit "rows". Refused: unknown (kNotFound), purged
  // or purging (kTenantPurged), damaged or quarantined (kCorruption),
  // held for a move (kFailedPrecondition), read-only store (kNotSupported).
  // Legal holds do not block it (nothing is removed).
  Result<Receipt> RotateTenantKey(std::string_view tenant_id);
  // Moves the tenant to shard `to_shard` of this store, to rebalance shards
  // that filled unevenly (docs/decisions/0057, docs/operations.md
  // "Rebalancing shards"): a key rotation (above) whose copy is made in that
  // shard, with the same steps, recovery, receipt ("key_rotation", naming
  // the old family and its shard) and what callers see; the tenant's old
  // family is dropped from its old shard and its old key shredded.
  // `to_shard` equal to the number of shards opens a new shard for it.
  // Refused, nothing changed: the refusals of RotateTenantKey; a shard
  // number beyond that (kInvalidArgument); the tenant's own shard
  // (kAlreadyExists); a shard that did not open (kCorruption); a shard
  // holding max_tenants_per_shard column families (kResourceExhausted); a
  // tenant whose rotation is unfinished (kFailedPrecondition).
  Result<Receipt> MoveTenantToShard(std::string_view tenant_id, uint32_t to_shard);

  // --- Compliance lifecycle (docs/operations.md) ----------------------------
  // Churn: from now on writes to the tenant are refused
  // (kFailedPrecondition) and reads follow options.allow_reads_after_churn;
  // at `purge_at` (microseconds since epoch) RunScheduledPurges purges it.
  Status ScheduleTenantPurge(std::string_view tenant_id, int64_t purge_at);
  // Until the deadline; kFailedPrecondition after it or if none is set.
  Status CancelTenantPurge(std::string_view tenant_id);
  // Purges every tenant whose deadline is <= now and that no hold covers.
  Result<std::vector<Receipt>> RunScheduledPurges(int64_t now);
  Status SetRetention(std::string_view tenant_id, uint32_t days);
  // Overrides the tenant's retention for one workspace; nullopt removes it.
  Status SetWorkspaceRetention(std::string_view tenant_id, std::string_view workspace_id,
                               std::optional<uint32_t> days);
  // A pinned call is exempt from retention.
  Status SetCallPinned(std::string_view tenant_id, std::string_view call_id, bool pinned);
  // Removes every call (with its indexes, parts and recordings) whose
  // started_at is older than its retention, unless held or pinned, and
  // appends a signed receipt per tenant with removals.
  Result<RetentionReport> RunRetention(int64_t now, bool dry_run = false);
  // A legal hold blocks purge, scheduled purge, retention, erasure,
  // deletion and every change (PutCall over a held call, UpdateCall) of
  // what it covers (kFailedPrecondition); see "Calls" below.
  Status PlaceHold(std::string_view tenant_id, const Hold& hold);
  Status ReleaseHold(std::string_view tenant_id, std::string_view hold_id);
  // Tenant-level holds first, then call holds.
  Result<std::vector<Hold>> ListHolds(std::string_view tenant_id);
  // Audit events with time >= since (and of `kind`, if not empty).
  Result<std::vector<AuditEvent>> ListAudit(int64_t since = 0, std::string_view kind = "");

  // --- Calls ---------------------------------------------------------------
  // Versions and conditional writes (docs/decisions/0028): every write of a
  // call (PutCall, PutCalls, UpdateCall, DeleteCall, and an Erase that
  // redacts it) gives it the next version of its tenant's counter: greater
  // than any version that call ever had, also across a DeleteCall and a put
  // of the same call_id. Every read returns it (Call::version), every write
  // returns the new one (PutResult::version, DeleteCall's result). A write
  // given `expected_version` is applied only if the call it targets has
  // exactly that version now (0: only if no such call exists); otherwise it
  // returns kConflict and changes nothing. Check and write happen under the
  // tenant's write lock: of two writers that read version v and both write
  // with expected_version v, exactly one succeeds.
  //
  // Legal holds: a write that changes or removes an existing call
  // (PutCall/PutCalls over it, UpdateCall, DeleteCall, Erase) is refused
  // with kFailedPrecondition while a hold covers the call (a hold on it, or
  // a tenant-level hold); new calls may still be put into a held tenant.

  // Stores a call. If a call with the same (source_system, source_call_id)
  // exists, that call is updated in place and keeps its call_id; otherwise
  // a call with the same call_id is replaced: the WHOLE call, so parts left
  // empty in `call` are removed (use UpdateCall to change some parts only).
  // `call.version` is ignored. Durable on return when options.sync_writes.
  Result<PutResult> PutCall(std::string_view tenant_id, const Call& call,
                            std::optional<uint64_t> expected_version = std::nullopt);
  // All or nothing: every call is validated first; one atomic write.
  Result<std::vector<PutResult>> PutCalls(std::string_view tenant_id, const std::vector<Call>& calls);
  // The same, each call conditional on its expected version:
  // `expected_versions[i]` is calls[i]'s, as PutCall's `expected_version`
  // (nullopt: unconditional; 0: only if no such call exists), checked with
  // the batch under the tenant's write lock. All or nothing: if any call's
  // version differs, kConflict naming that call (calls[i] and its call_id)
  // and nothing of the batch is written. kInvalidArgument if
  // expected_versions.size() != calls.size().
  Result<std::vector<PutResult>> PutCalls(std::string_view tenant_id, const std::vector<Call>& calls,
                                          const std::vector<std::optional<uint64_t>>& expected_versions);
  // Replaces only the `parts` named of call `call_id` with those of
  // `patch`, and keeps everything else: kPartInsights (e.g. after the LLM
  // ran), kPartTranscript (a re-transcription), kPartParticipants, and
  // kPartFields (every metadata field of Call but call_id, created_at,
  // updated_at and version: give the call's whole metadata, e.g. the call
  // as read with a field changed). An empty transcript or insights in
  // `patch` removes that part. patch.call_id must be empty or `call_id`;
  // patch.updated_at becomes updated_at if it is later than the stored
  // one, else now (a patch made from the call as read carries the old one). Only the
  // named transcript or insights records are decrypted and re-sealed; the
  // other is not read and its stored bytes stay as they were. The metadata
  // and summary records are re-sealed (they hold the version and
  // updated_at). Indexes follow the new metadata in the same atomic write.
  // Errors, nothing changed: kNotFound (no such call), kConflict
  // (expected_version differs), kFailedPrecondition (a legal hold; a
  // churned tenant), kAlreadyExists (kPartFields gives a source_call_id
  // another call has), kInvalidArgument (no part or an unknown bit named; a
  // field of the result over its limits, named as PutCall names it).
  Result<PutResult> UpdateCall(std::string_view tenant_id, std::string_view call_id,
                               uint32_t parts, const Call& patch,
                               std::optional<uint64_t> expected_version = std::nullopt);
  // kNotFound if there is no such call.
  Result<Call> GetCall(std::string_view tenant_id, std::string_view call_id,
                       uint32_t parts = kPartAll);
  // Up to limits::kMaxListLimit calls by id, all read from one snapshot,
  // in the order of `call_ids` (an id given twice is returned twice). Per
  // id: the call, or kNotFound (no such call) or kInvalidArgument (not a
  // valid id). The whole batch fails only for the tenant (kNotFound,
  // kTenantPurged, ...), too many ids or bad `parts` (kInvalidArgument), or
  // damaged storage (kCorruption, kIOError).
  Result<std::vector<Result<Call>>> GetCalls(std::string_view tenant_id,
                                             const std::vector<std::string>& call_ids,
                                             uint32_t parts = kPartAll);
  // kNotFound if there is no such call.
  Status DeleteCall(std::string_view tenant_id, std::string_view call_id);
  // The same, conditional on `expected_version` when set (kConflict if the
  // call's version differs; an expected version of 0 is kConflict when the
  // call exists); returns the version the delete took (greater than the
  // call's last version: a later put of the same id gets a greater one).
  Result<uint64_t> DeleteCall(std::string_view tenant_id, std::string_view call_id,
                              std::optional<uint64_t> expected_version);
  // Calls by started_at, a page at a time. The cursor stays correct while
  // calls are inserted and deleted: a call that exists, unchanged, for the
  // whole listing appears exactly once.
  Result<CallPage> ListCalls(std::string_view tenant_id, const ListQuery& query);
  // Number of calls of a tenant (reads the time index, decrypts nothing).
  Result<uint64_t> CountCalls(std::string_view tenant_id);
  // Number of calls ListCalls would return for `query` over all its pages
  // (from query.cursor, if set; query.limit is ignored). Plans as ListCalls
  // does and checks every candidate's sealed summary (stale or forged index
  // entries are not counted), decrypting no metadata: about the cost of
  // listing the same calls without reading them.
  Result<uint64_t> CountCalls(std::string_view tenant_id, const ListQuery& query);
  // The tenant's change feed (docs/decisions/0030): up to `limit` events
  // (0: limits::kDefaultListLimit; at most limits::kMaxListLimit) after
  // `token` ("" = from the oldest event still held), in commit order. Every
  // committed change of a call makes exactly one event, written in the same
  // atomic write as the change (a put, update or delete; by the user, an
  // erasure, retention or a restore's replay), and only then: the feed
  // followed to its end replays the tenant's calls exactly (ListCalls). An
  // erasure's events name the calls it changed, never the subject.
  // Recordings, holds and pins make no events. Events are sealed like calls
  // and purged with the tenant (then kTenantPurged). Events older than
  // Options::change_feed_retention_seconds, or beyond
  // Options::change_feed_max_events, are removed by later changes of the
  // tenant; a store of an older format has a feed from the first change
  // after its upgrade. Errors: kOutOfRange (14) when the token is behind the
  // oldest event held, ahead of the newest, or follows an event the feed no
  // longer holds (lost to a crash with sync_writes off, a restore, another
  // incarnation of the tenant): resync (e.g. ListCalls) and start again
  // from "" (events written after the resync began are then read again;
  // applying an event twice is harmless). kInvalidArgument: a token that is
  // not one this tenant issued (malformed, forged, another tenant's), or a
  // bad limit. Read-only opens read the feed too.
  Result<ChangePage> ReadChanges(std::string_view tenant_id, std::string_view token,
                                 size_t limit = 0);
  // The transcript segments of one call that overlap [from_ms, to_ms).
  Result<std::vector<TranscriptSegment>> GetTranscriptWindow(std::string_view tenant_id,
                                                             std::string_view call_id,
                                                             uint32_t from_ms, uint32_t to_ms);

  // --- Recordings ---------------------------------------------------------
  // kNotFound if the call does not exist; kAlreadyExists if the recording
  // id is taken.
  Result<std::unique_ptr<RecordingWriter>> CreateRecording(std::string_view tenant_id,
                                                           std::string_view call_id,
                                                           const RecordingSpec& spec);
  // The complete recordings of a call, by recording id.
  Result<std::vector<RecordingInfo>> ListRecordings(std::string_view tenant_id,
                                                    std::string_view call_id);
  // Bytes [offset, offset + length) (clamped to the size) of a recording,
  // decrypting only the chunks that overlap the range. kCorruption if any
  // chunk fails authentication, is missing, misplaced, or the stream does
  // not end with its FINAL chunk; bytes already passed to `sink` are then
  // to be discarded by the caller. `sink` is called on the caller's thread,
  // in order, once per chunk; an error it returns ends the read with that
  // error. A read of more than one chunk fetches the next chunk on a thread
  // of its own meanwhile (decision 0072). The read holds the tenant while
  // `sink` runs: a purge, key rotation or move of that tenant waits for it,
  // so a sink must not wait for one (it would wait for itself). A delete of
  // the recording or its call that completes during the read ends it with
  // kNotFound before the next chunk.
  Status ReadRecording(std::string_view tenant_id, std::string_view call_id,
                       std::string_view recording_id, uint64_t offset, uint64_t length,
                       const RecordingSink& sink);
  Status DeleteRecording(std::string_view tenant_id, std::string_view call_id,
                         std::string_view recording_id);

  // --- Data-subject requests ---------------------------------------------
  // Every call that references `subject` (an email or phone), oldest first.
  Result<std::vector<Reference>> FindReferences(std::string_view tenant_id,
                                                std::string_view subject);
  // Deletes the calls that reference the subject, or redacts the subject
  // from them (participant name, email, phone and title; CRM links to it;
  // the speaker identity of their transcript segments), all in one atomic
  // write, and appends a signed receipt that holds no personal data.
  Result<EraseResult> Erase(std::string_view tenant_id, const EraseRequest& request);

  // --- Inspection ----------------------------------------------------------
  // Decrypts and checks every record of one tenant, or of all live tenants
  // and the metadata instance (VerifyReport says what it covers). Check
  // VerifyReport::ok(): a damaged file may stop a scan, which leaves
  // records unchecked rather than failed.
  Result<VerifyReport> Verify(std::optional<std::string_view> tenant_id = std::nullopt);
  Result<StoreStats> Stats();
  // Counters, latency histograms per operation and RocksDB's figures that
  // matter for alerting (callvault/metrics.h; RenderPrometheus for a
  // scrape). Cheap enough to call every few seconds: reads atomics and a
  // few RocksDB properties per shard, no data. Works read-only too.
  Result<callvault::Metrics> Metrics();

  // --- Recovery findings ---------------------------------------------------
  // Finds the data keys no live tenant owns (OrphanKey). Unless dry_run,
  // destroys them as a purge does: the keyring is re-sealed without them
  // under a new KEK generation (the old KEK destroyed), any column family of
  // theirs is dropped, and one signed "orphan_key_destroyed" receipt is
  // appended per internal id (no tenant id: none is known). Afterwards no
  // key that exists decrypts any copy of that data.
  //
  // It refuses (kFailedPrecondition, nothing destroyed) when an orphan's
  // family in this store holds a call under a legal hold, or holds rows and
  // its internal id is not in `destroy_with_data`: such a key may be a live
  // tenant's whose registry record was deleted or replaced (store-directory
  // tampering); restore that record if you can. An orphan without a family
  // here may own data in another copy of this store on the same key
  // directory: destroy it only when this store replaced that copy (a
  // restore), never from a drill (open drills read-only).
  Result<KeyReconcileReport> ReconcileKeys(bool dry_run = true,
                                           const std::vector<uint64_t>& destroy_with_data = {});
  // Makes a tenant that recovery quarantined (its registry record said
  // CREATING or PURGING while its key and data were there) ACTIVE again,
  // with an audit event. kFailedPrecondition if it is not quarantined, or
  // if its key or column family is missing (then purge it instead).
  Status ReinstateTenant(std::string_view tenant_id);
  // Clears a tenant's damage (TenantInfo::damaged) after an operator decided
  // the loss is acceptable: its operations are served again, with whatever
  // data survived; an audit event "damage_accepted" names what was
  // accepted. The alternatives: purge it, or restore it from a backup
  // (docs/operations.md, "A tenant is damaged"). kFailedPrecondition if it is
  // not damaged; kNotSupported read-only.
  Status AcceptTenantDamage(std::string_view tenant_id);
  Result<std::vector<Receipt>> ListReceipts();
  Result<std::string> SigningPublicKey();
  // --- Backups (callvault/backup.h, docs/operations.md "Backups") ----------
  // Backs the store up into `backup_dir` (created if missing; kept apart
  // from the store and key directories) while it serves: under the admin
  // lock (create, purge, erasure and retention receipts, keyring writes
  // wait; puts and reads do not), each instance goes through its own RocksDB
  // BackupEngine directory (incremental: files already there are not copied
  // again); then a manifest signed with the receipt key records the cut.
  // No key material is copied. The manifest signs every file's SHA-256
  // (decision 0076). OK only for a cut that verifies: the new cut is read
  // back, and each file must have the hash an earlier cut signed or equal
  // the store's own file; one that is damaged, changed, or reused from a
  // backup no signed cut vouches for is kCorruption naming it, nothing
  // added (decisions 0063, 0076). kFailedPrecondition if another backup is
  // writing `backup_dir`; kNotSupported read-only.
  Result<BackupInfo> Backup(const std::string& backup_dir, const BackupOptions& options = {});
  // Restores one cut of `backup_dir` into `new_dir` (absent or empty) and
  // opens it with options.key_provider, the CURRENT key directory: tenants
  // purged since the backup have no key and are rolled forward to PURGED
  // ("purge_on_open" receipts, RestoreReport::purged_since_backup); keys of
  // tenants created since are reported as orphans (ReconcileKeys). The
  // receipt and audit chains continue from the backup's last entries; a
  // "store_restored" audit event records the cut. Erasures, redactions,
  // call and recording deletions and retention removals done after the
  // backup are re-applied from the key provider's tombstone log when it
  // keeps one (RestoreReport). Refused, with nothing written to new_dir: kKeyError
  // (the key directory is another store's, or older than the backup),
  // kCorruption (the manifest does not verify against the signing key; an
  // instance backup missing, of another cut, listing other files than the
  // manifest signs, or a file, in the backup or in the copy just made,
  // without its signed SHA-256 (format 1: failing its crc32c)),
  // kFailedPrecondition (new_dir not empty; the key directory in use by a
  // running store), kNotFound (no such cut).
  static Result<RestoreReport> Restore(const Options& options, const std::string& backup_dir,
                                       const std::string& new_dir,
                                       const RestoreRequest& request = {});
  // What this store's open did to finish a restore: a writable open
  // finishes one whose erasure replay is pending (RESTORE_PENDING) or was
  // done by an open that died (`callvault restore finish`). restore_id ""
  // if none was pending.
  RestoreFinishReport RestoreFinishedAtOpen() const;
  // --- Tenant moves (callvault/move.h, docs/operations.md "Moving a tenant")
  // This store's move identity: "cvmove2:<store id hex>:<region>:<X25519
  // public key hex>:<Ed25519 signing public key hex>". A source seals the
  // tenant's data key to the X25519 key (crypto_box_seal) and verifies this
  // store's replies with the signing key (its receipt key; decision 0051);
  // `callvault identity` prints it. kFailedPrecondition: read-only, and no
  // signing key yet.
  Result<std::string> MoveIdentity();
  // Moves a live tenant to the store `destination_identity` names, while
  // this store keeps serving it: copies its rows as they are (sealed),
  // catches up with the writes made meanwhile, fences it (writes get
  // kMoved naming the destination), drains, has the destination verify the
  // row count and digest, lets it switch, then purges this copy with a
  // signed "moved_out" receipt. Each segment goes through `to`, which hands
  // it to the destination's MoveTenantIn and returns its reply. A tenant
  // left fenced by a crash is resumed: finished if the destination
  // committed it, else unfenced and moved again.
  // Refused, nothing changed and nothing sent: kCorruption (the tenant is
  // quarantined or damaged); kFailedPrecondition (another region; the
  // tenant is churned or held for another move);
  // kTenantPurged; kNotFound; kInvalidArgument (a malformed identity, or a
  // cvmove1 one: it names no key for the replies); whatever the destination
  // refused with (kAlreadyExists: the tenant id is live there).
  // kNotSupported read-only. Every reply must verify against the identity's
  // signing key (decision 0051): one that does not is no answer
  // (kCorruption), and never leads to the purge.
  Result<MoveReport> MoveTenantOut(std::string_view tenant_id,
                                   std::string_view destination_identity,
                                   const MoveTransport& to, const MoveOptions& options = {});
  // The destination's side: applies one segment of a move from the store
  // whose receipt-signing public key (32 raw bytes) is `source_signing_key`
  // and returns the reply for the source: its text and this store's
  // signature over it and the request (docs/format.md "Move bundle").
  // Refused with nothing changed:
  // kCorruption (a segment that does not verify: edited, truncated, signed
  // by another key, out of order), kFailedPrecondition (a replayed bundle:
  // a move id seen before; another region; not addressed to this store),
  // kAlreadyExists (the tenant id is live here).
  // The source must be a trusted peer of this store (TrustMovePeer):
  // a segment signed by any other key, or whose BEGIN names another store
  // id than the peer's, is refused with kFailedPrecondition before anything
  // is applied (an empty list refuses every source; decision 0062). A
  // trusted-peers file not written by callvault: kCorruption, or kKeyError
  // if it is a symlink or not a regular file.
  Result<std::string> MoveTenantIn(std::string_view segment, std::string_view source_signing_key);
  // --- Trusted move sources (decision 0062; `callvault peer`) -------------
  // Adds the store whose `callvault identity` is `identity` (cvmove2:...)
  // to the sources MoveTenantIn accepts. The list is kept by the key
  // provider (PEERS in the key directory), not in the store directory.
  // Audited ("move_peer_trusted"). kInvalidArgument (malformed, or this
  // store's own identity); kAlreadyExists (its store id or signing key is
  // listed); kNotSupported (read-only, or a key provider without a list).
  Status TrustMovePeer(std::string_view identity);
  // Removes the trusted source whose identity or store id (hex) is `peer`;
  // no segment of it is applied once this returns (a move of it under way
  // fails; its partial copy is rolled back at the next restart). Audited
  // ("move_peer_removed"). kNotFound if not listed.
  Status RemoveMovePeer(std::string_view peer);
  // The trusted sources' identities, in the order they were trusted.
  Result<std::vector<std::string>> ListMovePeers();
  // Flushes memtables of every shard to SST files. A shard in RocksDB's
  // background-error state is not touched (its memtables stay until the
  // store is reopened, decision 0071): the others are flushed and kIOError
  // names it.
  Status Flush();
  // Full compaction of every column family of every shard.
  Status CompactAll();
  // Paths of each shard's RocksDB directory (for `callvault raw`).
  std::vector<std::string> ShardPaths() const;
  std::string MetaPath() const;

  class Impl;

 private:
  friend Result<MoveReport> MoveTenant(Store& from, Store& to, std::string_view tenant_id,
                                       const MoveOptions& options);
  // MoveTenantIn for callvault::MoveTenant, which holds the source store
  // open in this process and so knows its key first hand: the trusted-peers
  // list is not consulted; the BEGIN is audited ("move_source_in_process").
  Result<std::string> MoveTenantInFromLocalStore(std::string_view segment,
                                                 std::string_view source_signing_key);
  explicit Store(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Moves `tenant_id` from `from` to `to`, both open in this process (two
// stores on one machine: `callvault tenant move`). `from` keeps serving the
// tenant during the copy; see Store::MoveTenantOut.
Result<MoveReport> MoveTenant(Store& from, Store& to, std::string_view tenant_id,
                              const MoveOptions& options = {});

}  // namespace callvault

#endif  // CALLVAULT_STORE_H_
