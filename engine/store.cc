// Store open: creation of a new store, the header, the keyring choice with
// rollback detection, shards, the registry and recovery.
#include <rocksdb/env.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <set>
#include <unordered_map>

#include "callvault/store.h"
#include "callvault/version.h"
#include "engine/calls_internal.h"
#include "engine/crypto.h"
#include "engine/close_mark.h"
#include "engine/fs_util.h"
#include "engine/info_log.h"
#include "engine/kill_point.h"
#include "engine/store_impl.h"
#include "engine/validate.h"
#include "engine/wal_scan.h"
#include "format/keyring_format.h"

namespace callvault {

namespace {

// Shards opened at once by OpenShards.
constexpr uint64_t kShardOpenThreads = 4;

std::string ShardDir(const std::string& root, uint32_t i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "/shards/%04u", i);
  return root + buf;
}

bool ParseU64(const std::string& s, uint64_t* out) {
  if (s.empty() || s.size() > 20) return false;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  *out = v;
  return true;
}

Status ReadOnlyError(const char* what) {
  return Status::NotSupported(std::string("store opened read-only: ") + what +
                              " is not available (open without Options::read_only to write)");
}

// Every public call but Close holds close_mu_ shared for its duration
// (Close waits for it), and after Close returns kFailedPrecondition.
Status ClosedError() {
  return Status::FailedPrecondition("the store is closed (Store::Close was called)");
}
// close_requested_ first: Close sets it before it waits for close_mu_, so
// that a steady stream of calls (each holding close_mu_ shared; glibc's
// rwlock prefers readers) cannot starve it.
#define CV_REFUSE_IF_CLOSED()                                           \
  if (impl_->close_requested_.load()) return ClosedError();             \
  std::shared_lock<std::shared_mutex> cv_open_guard_(impl_->close_mu_); \
  if (impl_->closed_) return ClosedError()

// Times the rest of the call into its operation's histogram
// (callvault/metrics.h); `return CV_DONE(expr)` records an error.
#define CV_TIMED(op) metrics::Timer cv_timer_(&impl_->res_->metrics, Op::op)
#define CV_DONE(expr) cv_timer_.Done(expr)

#define CV_REFUSE_IF_READ_ONLY(what) \
  if (impl_->read_only()) return ReadOnlyError(what)

// Whether `root` held a finished store, by what an init that did not finish
// never leaves: a shard directory (the first tenant's), a table file in
// meta/ (a flush), or (with `meta` open) any metadata row but the
// `init_store_id` header field written before the keys. Then a metadata
// instance that will not open or lacks its header is damaged, and the
// answer is kCorruption, never "no store, run init" (decision 0015).
bool HeldAStore(rocksdb::FileSystem* fs, const std::string& root, rocksdb::DB* meta) {
  std::vector<std::string> children;
  if (fs->GetChildren(root + "/shards", rocksdb::IOOptions(), &children, nullptr).ok()) {
    for (const auto& c : children) {
      if (c != "." && c != "..") return true;
    }
  }
  children.clear();
  if (fs->GetChildren(root + "/meta", rocksdb::IOOptions(), &children, nullptr).ok()) {
    for (const auto& c : children) {
      if (c.size() > 4 && c.compare(c.size() - 4, 4, ".sst") == 0) return true;
    }
  }
  if (meta == nullptr) return false;
  std::unique_ptr<rocksdb::Iterator> it(meta->NewIterator(rocksdb::ReadOptions()));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    if (it->key() != format::HeaderKey("init_store_id")) return true;
  }
  return !it->status().ok();
}

bool HasManifest(rocksdb::FileSystem* fs, const std::string& dir) {
  std::vector<std::string> children;
  if (!fs->GetChildren(dir, rocksdb::IOOptions(), &children, nullptr).ok()) return false;
  for (const auto& c : children) {
    if (c.rfind("MANIFEST-", 0) == 0) return true;
  }
  return false;
}

Status MetaDamaged(const Status& s) {
  return Status::Corruption("metadata instance damaged: " + std::string(s.message()) +
                            "; restore it from a backup (docs/operations.md, \"Damaged "
                            "metadata\"); do not run init over it");
}

std::string Normalize(std::string p) {
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  return p;
}
// Why a registry record's key rotation fields cannot be what
// RotateTenantKey wrote (decision 0036), or nullptr if they can: COPYING
// names the copy as family + 1 under key version + 1, SHREDDING the old
// family and version as family - 1 and version - 1, and no other record
// holds the same internal id. Recovery acts on these fields by dropping a
// family and removing a key version; a forged or replayed record that named
// the live ones, or another tenant's, would destroy live data.
const char* RotationContradiction(const codec::TenantRecord& rec, bool id_shared,
                                  size_t shard_count) {
  if (rec.rotation_state == codec::kRotationNone) return nullptr;
  if (id_shared) return "its internal id is also claimed by another registry record";
  // A shard move (decision 0057) names the other copy's shard: one of this
  // store's, not the tenant's own.
  if (rec.rotation_shard != codec::kSameShard &&
      (rec.rotation_shard >= shard_count || rec.rotation_shard == rec.shard)) {
    return "its unfinished shard move names a shard that cannot hold the other copy";
  }
  const uint64_t f = rec.family, v = rec.key_version;
  const uint64_t rf = rec.rotation_family, rv = rec.rotation_key_version;
  if (rec.rotation_state == codec::kRotationCopying && (rf != f + 1 || rv != v + 1)) {
    return "its unfinished key rotation names a copy that is not the next family and key version";
  }
  if (rec.rotation_state == codec::kRotationShredding && (rv == 0 || f != rf + 1 || v != rv + 1)) {
    return "its unfinished key rotation names an old family or key version that is not the one "
           "before the live one";
  }
  return nullptr;
}

}  // namespace

// ---------------------------------------------------------------------------
// Tenant

TenantInfo Tenant::Info() const {
  std::lock_guard<std::mutex> l(rec_mu);
  TenantInfo i;
  i.tenant_id = rec.tenant_id;
  i.state = state.load();
  i.region = rec.region;
  i.retention_days = rec.retention_days;
  i.created_at = rec.created_at;
  i.purged_at = rec.purged_at;
  i.internal_id = rec.internal_id;
  i.shard = rec.shard;
  i.column_family = format::ColumnFamilyName(rec.internal_id, rec.family);
  i.key_version = rec.key_version;
  i.churned_at = rec.churned_at;
  i.purge_at = rec.purge_at;
  i.holds = rec.holds;
  i.workspace_retention = rec.workspace_retention;
  i.quarantined = quarantined.load();
  i.damaged = damaged.load();
  if (i.damaged) i.damage = damage;
  if (rec.move_state == codec::kMoveFenced) i.moved_to = rec.move_peer;
  if (rec.move_state == codec::kMoveIn) i.moved_from = rec.move_peer;
  i.move_id = rec.move_id;
  return i;
}

void Tenant::WipeKeys() {
  record_key.Wipe();
  index_key.Wipe();
  cursor_key.Wipe();
  recording_key.Wipe();
  // Dictionaries are derived from the tenant's plaintext: dropped with the
  // keys (their content is zeroed when the last user lets go).
  {
    std::lock_guard<std::mutex> l(dicts.mu);
    dicts.current = 0;
  }
  if (shard != nullptr) shard->dictionaries().EraseOwner(dicts.cache_owner);
}

// ---------------------------------------------------------------------------
// Store (public facade)

Store::Store(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Store::~Store() { Close().IgnoreError(); }
Status Store::Close() { return impl_->Close(); }

// Options out of range are refused by name before anything is opened or
// created: RocksDB would otherwise take some silently (a write buffer
// raised to 64 KiB; a budget of 0 = no shared budget, memtables unbounded
// with many tenants) and others would fail deep inside it (a million
// background threads).
Status CheckOptions(const Options& o) {
  if (!o.key_provider) return Status::InvalidArgument("options.key_provider is required");
  if (o.max_tenants_per_shard == 0 || o.max_tenants_per_shard > 100000) {
    return Status::InvalidArgument("options.max_tenants_per_shard must be in [1, 100000]");
  }
  if (!o.region.empty()) CV_RETURN_IF_ERROR(validate::Region(o.region));
  if (o.read_only && o.create_if_missing) {
    return Status::InvalidArgument(
        "options.read_only and options.create_if_missing exclude each other");
  }
  constexpr size_t kMinWriteBuffer = size_t{64} << 10, kMaxWriteBuffer = size_t{64} << 30;
  if (o.write_buffer_bytes < kMinWriteBuffer || o.write_buffer_bytes > kMaxWriteBuffer) {
    return Status::InvalidArgument("options.write_buffer_bytes must be in [64 KiB, 64 GiB]");
  }
  // 0 would be no shared budget at all (memtables unbounded with many
  // tenants); below one arena block (64 KiB) every write is a flush. A
  // budget below write_buffer_bytes is fine: RocksDB flushes at 7/8 of it.
  if (o.write_buffer_budget_bytes < kMinWriteBuffer) {
    return Status::InvalidArgument("options.write_buffer_budget_bytes must be at least 64 KiB");
  }
  constexpr int kMaxThreads = 256;
  if (o.background_threads < 0 || o.background_threads > kMaxThreads) {
    return Status::InvalidArgument("options.background_threads must be in [0, 256]");
  }
  if (o.flush_threads < 0 || o.flush_threads > kMaxThreads) {
    return Status::InvalidArgument("options.flush_threads must be in [0, 256]");
  }
  if (o.dictionary_training_threads < 0 || o.dictionary_training_threads > kMaxThreads) {
    return Status::InvalidArgument("options.dictionary_training_threads must be in [0, 256]");
  }
  return Status::OK();
}

Result<std::unique_ptr<Store>> Store::Open(const Options& options, const std::string& path) {
  if (path.empty()) return Status::InvalidArgument("store path is empty");
  CV_RETURN_IF_ERROR(CheckOptions(options));
  rocksdb::Env* env = options.env ? options.env : rocksdb::Env::Default();
  (void)env;
  // Env::GetAbsolutePath in RocksDB 7.8 returns the working directory for
  // any relative path; std::filesystem resolves it properly.
  std::error_code ec;
  std::string abs = std::filesystem::absolute(path, ec).lexically_normal().string();
  if (ec) abs = path;
  abs = Normalize(abs);
  // Keys and store apart by identity (device and inode), not by spelling:
  // a symlink or a bind mount must not put the KEKs inside the store, nor
  // the store inside the key directory. Checked before anything is created.
  const std::string keys = options.key_provider->LocalDirectory();
  if (!keys.empty()) CV_RETURN_IF_ERROR(fsutil::CheckApart(abs, keys));
  // Nobody but this uid may write the store's directories: RocksDB would
  // write through a link planted under the name of its next file (decision
  // 0078). Checked before anything is created or written.
  CV_RETURN_IF_ERROR(fsutil::CheckStoreTree(abs));
  const auto open_start = std::chrono::steady_clock::now();
  auto impl = std::make_unique<Impl>(options, abs);
  // One writer per key directory, before any key is read or changed;
  // released when the store closes (~Impl). A read-only open takes none.
  if (!options.read_only) {
    CV_RETURN_IF_ERROR(options.key_provider->AcquireWriterLock());
    impl->holds_writer_lock_ = true;
    // Before the store: an open refused below (a copy the restore ledger
    // refuses) still removes what dead restores into it left.
    CV_RETURN_IF_ERROR(impl->RemoveStaleRestoreStagings());
  }
  Status opened = impl->OpenOrCreate();
  // A read-only open races the writer, which may delete a WAL or table file
  // between the moment RocksDB lists it and the moment it opens it, or
  // flush after the open read the MANIFEST (ManifestStamp in shard.h). Each
  // instance is opened again on its own until it was read undisturbed
  // (RetryWhileRacing); what still fails with an I/O error is tried afresh
  // a few times as a whole.
  for (int retry = 0; options.read_only && opened.code() == Code::kIOError && retry < 3; ++retry) {
    impl.reset();
    std::this_thread::sleep_for(std::chrono::milliseconds(5 * (retry + 1)));
    impl = std::make_unique<Impl>(options, abs);
    opened = impl->OpenOrCreate();
  }
  CV_RETURN_IF_ERROR(opened);
  // A restore's erasure replay, if one is pending (backup.cc).
  CV_RETURN_IF_ERROR(impl->FinishRestore());
  impl->LogStaleRestoreStagings();
  impl->open_micros_ = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                                 std::chrono::steady_clock::now() - open_start)
                                                 .count());
  impl->Log(LogLevel::kInfo,
            std::string("store opened") + (options.read_only ? " read-only" : "") + " in " +
                std::to_string(impl->open_micros_ / 1000) + " ms (format " +
                std::to_string(impl->format_version_) + ")");
  return std::unique_ptr<Store>(new Store(std::move(impl)));
}

Result<TenantInfo> Store::CreateTenant(const TenantSpec& spec) {
  CV_REFUSE_IF_CLOSED();
  CV_REFUSE_IF_READ_ONLY("CreateTenant");
  return impl_->CreateTenant(spec);
}
Result<std::vector<TenantInfo>> Store::ListTenants() {
  CV_REFUSE_IF_CLOSED();
  return impl_->ListTenants();
}
Result<TenantInfo> Store::DescribeTenant(std::string_view id) {
  CV_REFUSE_IF_CLOSED();
  return impl_->DescribeTenant(id);
}
Result<Receipt> Store::PurgeTenant(std::string_view id) {
  CV_REFUSE_IF_CLOSED();
  CV_REFUSE_IF_READ_ONLY("PurgeTenant");
  return impl_->PurgeTenant(id);
}
Result<Receipt> Store::RotateTenantKey(std::string_view id) {
  CV_REFUSE_IF_CLOSED();
  CV_REFUSE_IF_READ_ONLY("RotateTenantKey");
  return impl_->RotateTenantKey(id);
}
Result<Receipt> Store::MoveTenantToShard(std::string_view id, uint32_t to_shard) {
  CV_REFUSE_IF_CLOSED();
  CV_REFUSE_IF_READ_ONLY("MoveTenantToShard");
  return impl_->MoveTenantToShard(id, to_shard);
}
Result<PutResult> Store::PutCall(std::string_view tenant_id, const Call& call,
                                 std::optional<uint64_t> expected_version) {
  CV_REFUSE_IF_CLOSED();
  CV_REFUSE_IF_READ_ONLY("PutCall");
  CV_TIMED(kPut);
  const std::vector<std::optional<uint64_t>> expected{expected_version};
  // One copy of the call (normalised in place): `std::vector<Call>{call}`
  // copied it twice, into the initializer list and from it, ~5% of a
  // synced put's CPU in the caller's thread (decision 0056).
  std::vector<Call> calls;
  calls.reserve(1);
  calls.push_back(call);
  auto v = impl_->PutCalls(tenant_id, std::move(calls), &expected);
  if (!v.ok()) return CV_DONE(Result<PutResult>(impl_->Observe(v.status(), "put", tenant_id)));
  return v->front();
}
Result<PutResult> Store::UpdateCall(std::string_view tenant_id, std::string_view call_id,
                                    uint32_t parts, const Call& patch,
                                    std::optional<uint64_t> expected_version) {
  CV_REFUSE_IF_CLOSED();
  CV_REFUSE_IF_READ_ONLY("UpdateCall");
  CV_TIMED(kUpdate);
  auto r = impl_->UpdateCall(tenant_id, call_id, parts, patch, expected_version);
  if (!r.ok()) return CV_DONE(Result<PutResult>(impl_->Observe(r.status(), "update", tenant_id)));
  return r;
}
Result<std::vector<Result<Call>>> Store::GetCalls(std::string_view t,
                                                  const std::vector<std::string>& call_ids,
                                                  uint32_t parts) {
  CV_REFUSE_IF_CLOSED();
  CV_TIMED(kGetBatch);
  auto r = impl_->GetCalls(t, call_ids, parts);
  if (!r.ok()) return CV_DONE(decltype(r)(impl_->Observe(r.status(), "get", t)));
  return r;
}
Result<std::vector<PutResult>> Store::PutCalls(std::string_view tenant_id,
                                               const std::vector<Call>& calls) {
  CV_REFUSE_IF_CLOSED();
  CV_REFUSE_IF_READ_ONLY("PutCalls");
  CV_TIMED(kPutBatch);
  auto r = impl_->PutCalls(tenant_id, calls);
  if (!r.ok()) return CV_DONE(decltype(r)(impl_->Observe(r.status(), "put", tenant_id)));
  return r;
}
Result<std::vector<PutResult>> Store::PutCalls(
    std::string_view tenant_id, const std::vector<Call>& calls,
    const std::vector<std::optional<uint64_t>>& expected_versions) {
  CV_REFUSE_IF_CLOSED();
  CV_REFUSE_IF_READ_ONLY("PutCalls");
  CV_TIMED(kPutBatch);
  auto r = impl_->PutCalls(tenant_id, calls, &expected_versions);
  if (!r.ok()) return CV_DONE(decltype(r)(impl_->Observe(r.status(), "put", tenant_id)));
  return r;
}
Result<Call> Store::GetCall(std::string_view t, std::string_view c, uint32_t parts) {
  CV_REFUSE_IF_CLOSED();
  CV_TIMED(kGet);
  auto r = impl_->GetCall(t, c, parts);
  if (!r.ok()) return CV_DONE(decltype(r)(impl_->Observe(r.status(), "get", t)));
  return r;
}
Status Store::DeleteCall(std::string_view t, std::string_view c) {
  CV_REFUSE_IF_CLOSED();
  CV_REFUSE_IF_READ_ONLY("DeleteCall");
  CV_TIMED(kDelete);
  auto r = impl_->DeleteCall(t, c, std::nullopt);
  return CV_DONE(impl_->Observe(r.ok() ? Status::OK() : r.status(), "delete", t));
}
Result<uint64_t> Store::DeleteCall(std::string_view t, std::string_view c,
                                   std::optional<uint64_t> expected_version) {
  CV_REFUSE_IF_CLOSED();
  CV_REFUSE_IF_READ_ONLY("DeleteCall");
  CV_TIMED(kDelete);
  auto r = impl_->DeleteCall(t, c, expected_version);
  if (!r.ok()) return CV_DONE(decltype(r)(impl_->Observe(r.status(), "delete", t)));
  return r;
}
Result<CallPage> Store::ListCalls(std::string_view t, const ListQuery& q) {
  CV_REFUSE_IF_CLOSED();
  CV_TIMED(kList);
  auto r = impl_->ListCalls(t, q);
  if (!r.ok()) return CV_DONE(decltype(r)(impl_->Observe(r.status(), "list", t)));
  return r;
}
Result<ChangePage> Store::ReadChanges(std::string_view t, std::string_view token, size_t limit) {
  CV_REFUSE_IF_CLOSED();
  auto r = impl_->ReadChanges(t, token, limit);
  if (!r.ok()) return impl_->Observe(r.status(), "changes", t);
  return r;
}
Result<uint64_t> Store::CountCalls(std::string_view t) {
  CV_REFUSE_IF_CLOSED();
  CV_TIMED(kCount);
  return CV_DONE(impl_->CountCalls(t));
}
Result<uint64_t> Store::CountCalls(std::string_view t, const ListQuery& q) {
  CV_REFUSE_IF_CLOSED();
  CV_TIMED(kCount);
  auto r = impl_->CountCalls(t, q);
  if (!r.ok()) return CV_DONE(decltype(r)(impl_->Observe(r.status(), "count", t)));
  return r;
}
Result<std::vector<TranscriptSegment>> Store::GetTranscriptWindow(std::string_view t,
                                                                  std::string_view c,
                                                                  uint32_t from_ms,
                                                                  uint32_t to_ms) {
  CV_REFUSE_IF_CLOSED();
  CV_TIMED(kGet);
  auto r = impl_->GetTranscriptWindow(t, c, from_ms, to_ms);
  if (!r.ok()) return CV_DONE(decltype(r)(impl_->Observe(r.status(), "transcript", t)));
  return r;
}
Result<std::unique_ptr<RecordingWriter>> Store::CreateRecording(std::string_view t,
                                                               std::string_view c,
                                                               const RecordingSpec& spec) {
  CV_REFUSE_IF_CLOSED();
  CV_REFUSE_IF_READ_ONLY("CreateRecording");
  return impl_->CreateRecording(t, c, spec);
}
Result<std::vector<RecordingInfo>> Store::ListRecordings(std::string_view t, std::string_view c) {
  CV_REFUSE_IF_CLOSED();
  return impl_->ListRecordings(t, c);
}
Status Store::ReadRecording(std::string_view t, std::string_view c, std::string_view r,
                            uint64_t offset, uint64_t length, const RecordingSink& sink) {
  CV_REFUSE_IF_CLOSED();
  CV_TIMED(kRecordingRead);
  return CV_DONE(impl_->Observe(impl_->ReadRecording(t, c, r, offset, length, sink), "read_recording", t));
}
Status Store::DeleteRecording(std::string_view t, std::string_view c, std::string_view r) {
  CV_REFUSE_IF_CLOSED();
  CV_REFUSE_IF_READ_ONLY("DeleteRecording");
  CV_TIMED(kDelete);
  return CV_DONE(impl_->DeleteRecording(t, c, r));
}
Result<std::vector<Reference>> Store::FindReferences(std::string_view t, std::string_view subject) {
  CV_REFUSE_IF_CLOSED();
  auto r = impl_->FindReferences(t, subject);
  if (!r.ok()) return impl_->Observe(r.status(), "find_references", t);
  return r;
}
Result<EraseResult> Store::Erase(std::string_view t, const EraseRequest& request) {
  CV_REFUSE_IF_CLOSED();
  if (!request.dry_run) CV_REFUSE_IF_READ_ONLY("Erase (without dry_run)");
  CV_TIMED(kErase);
  auto r = impl_->Erase(t, request);
  if (!r.ok()) return CV_DONE(decltype(r)(impl_->Observe(r.status(), "erase", t)));
  return r;
}
Result<VerifyReport> Store::Verify(std::optional<std::string_view> t) {
  CV_REFUSE_IF_CLOSED();
  CV_TIMED(kVerify);
  return CV_DONE(impl_->Verify(t));
}
Result<StoreStats> Store::Stats() {
  CV_REFUSE_IF_CLOSED();
  return impl_->Stats();
}
Result<Metrics> Store::Metrics() {
  CV_REFUSE_IF_CLOSED();
  return impl_->Metrics();
}
Result<KeyReconcileReport> Store::ReconcileKeys(bool dry_run,
                                                const std::vector<uint64_t>& destroy_with_data) {
  CV_REFUSE_IF_CLOSED();
  return impl_->ReconcileKeys(dry_run, destroy_with_data);
}
Status Store::ReinstateTenant(std::string_view t) {
  CV_REFUSE_IF_CLOSED();
  return impl_->ReinstateTenant(t);
}
Status Store::AcceptTenantDamage(std::string_view t) {
  CV_REFUSE_IF_CLOSED();
  CV_REFUSE_IF_READ_ONLY("AcceptTenantDamage");
  return impl_->AcceptTenantDamage(t);
}
Result<std::vector<Receipt>> Store::ListReceipts() {
  CV_REFUSE_IF_CLOSED();
  return impl_->ListReceipts();
}
Status Store::ScheduleTenantPurge(std::string_view t, int64_t purge_at) {
  CV_REFUSE_IF_CLOSED();
  CV_REFUSE_IF_READ_ONLY("ScheduleTenantPurge");
  return impl_->ScheduleTenantPurge(t, purge_at);
}
Status Store::CancelTenantPurge(std::string_view t) {
  CV_REFUSE_IF_CLOSED();
  CV_REFUSE_IF_READ_ONLY("CancelTenantPurge");
  return impl_->CancelTenantPurge(t);
}
Result<std::vector<Receipt>> Store::RunScheduledPurges(int64_t now) {
  CV_REFUSE_IF_CLOSED();
  CV_REFUSE_IF_READ_ONLY("RunScheduledPurges");
  return impl_->RunScheduledPurges(now);
}
Status Store::SetRetention(std::string_view t, uint32_t days) {
  CV_REFUSE_IF_CLOSED();
  CV_REFUSE_IF_READ_ONLY("SetRetention");
  return impl_->SetRetention(t, days);
}
Status Store::SetWorkspaceRetention(std::string_view t, std::string_view w,
                                    std::optional<uint32_t> days) {
  CV_REFUSE_IF_CLOSED();
  CV_REFUSE_IF_READ_ONLY("SetWorkspaceRetention");
  return impl_->SetWorkspaceRetention(t, w, days);
}
Status Store::SetCallPinned(std::string_view t, std::string_view c, bool pinned) {
  CV_REFUSE_IF_CLOSED();
  CV_REFUSE_IF_READ_ONLY("SetCallPinned");
  return impl_->SetCallPinned(t, c, pinned);
}
Result<RetentionReport> Store::RunRetention(int64_t now, bool dry_run) {
  CV_REFUSE_IF_CLOSED();
  if (!dry_run) CV_REFUSE_IF_READ_ONLY("RunRetention (without dry_run)");
  CV_TIMED(kRetention);
  return CV_DONE(impl_->RunRetention(now, dry_run));
}
Status Store::PlaceHold(std::string_view t, const Hold& h) {
  CV_REFUSE_IF_CLOSED();
  CV_REFUSE_IF_READ_ONLY("PlaceHold");
  return impl_->PlaceHold(t, h);
}
Status Store::ReleaseHold(std::string_view t, std::string_view h) {
  CV_REFUSE_IF_CLOSED();
  CV_REFUSE_IF_READ_ONLY("ReleaseHold");
  return impl_->ReleaseHold(t, h);
}
Result<std::vector<Hold>> Store::ListHolds(std::string_view t) {
  CV_REFUSE_IF_CLOSED();
  return impl_->ListHolds(t);
}
Result<std::vector<AuditEvent>> Store::ListAudit(int64_t since, std::string_view kind) {
  CV_REFUSE_IF_CLOSED();
  return impl_->ListAudit(since, kind);
}
Result<std::string> Store::SigningPublicKey() {
  CV_REFUSE_IF_CLOSED();
  return impl_->SigningPublicKey();
}
Result<std::string> Store::MoveIdentity() {
  CV_REFUSE_IF_CLOSED();
  return impl_->MoveIdentity();
}
Result<MoveReport> Store::MoveTenantOut(std::string_view tenant_id, std::string_view identity,
                                        const MoveTransport& to, const MoveOptions& options) {
  CV_REFUSE_IF_CLOSED();
  CV_REFUSE_IF_READ_ONLY("MoveTenantOut");
  return impl_->MoveTenantOut(tenant_id, identity, to, options);
}
Result<std::string> Store::MoveTenantIn(std::string_view segment, std::string_view source_key) {
  CV_REFUSE_IF_CLOSED();
  CV_REFUSE_IF_READ_ONLY("MoveTenantIn");
  return impl_->MoveTenantIn(segment, source_key, /*in_process=*/false);
}
Result<std::string> Store::MoveTenantInFromLocalStore(std::string_view segment,
                                                      std::string_view source_key) {
  CV_REFUSE_IF_CLOSED();
  CV_REFUSE_IF_READ_ONLY("MoveTenantIn");
  return impl_->MoveTenantIn(segment, source_key, /*in_process=*/true);
}
Status Store::TrustMovePeer(std::string_view identity) {
  CV_REFUSE_IF_CLOSED();
  CV_REFUSE_IF_READ_ONLY("TrustMovePeer");
  return impl_->TrustMovePeer(identity);
}
Status Store::RemoveMovePeer(std::string_view peer) {
  CV_REFUSE_IF_CLOSED();
  CV_REFUSE_IF_READ_ONLY("RemoveMovePeer");
  return impl_->RemoveMovePeer(peer);
}
Result<std::vector<std::string>> Store::ListMovePeers() {
  CV_REFUSE_IF_CLOSED();
  return impl_->ListMovePeers();
}
Result<BackupInfo> Store::Backup(const std::string& dir, const BackupOptions& options) {
  CV_REFUSE_IF_CLOSED();
  CV_REFUSE_IF_READ_ONLY("Backup");
  CV_TIMED(kBackup);
  return CV_DONE(impl_->Backup(dir, options));
}
Status Store::Flush() {
  CV_REFUSE_IF_CLOSED();
  CV_REFUSE_IF_READ_ONLY("Flush");
  return impl_->Flush();
}
Status Store::CompactAll() {
  CV_REFUSE_IF_CLOSED();
  CV_REFUSE_IF_READ_ONLY("CompactAll");
  return impl_->CompactAll();
}
bool Store::read_only() const { return impl_->read_only(); }
uint64_t Store::RecoveryPending() const { return impl_->recovery_pending(); }
std::vector<std::string> Store::ShardPaths() const { return impl_->ShardPaths(); }
std::string Store::MetaPath() const { return impl_->MetaPath(); }

// ---------------------------------------------------------------------------
// Impl: open

Store::Impl::Impl(const Options& options, std::string path)
    : options_(options), path_(std::move(path)), kp_(options.key_provider.get()) {
  meta_write_.sync = true;
}

Store::Impl::~Impl() { Close().IgnoreError(); }

Status Store::Impl::Close() {
  // New public calls are refused from here (close_requested_, checked
  // before they take close_mu_); then this waits for every call in flight.
  close_requested_.store(true);
  std::unique_lock<std::shared_mutex> closing(close_mu_);
  if (closed_) return Status::OK();
  closed_ = true;
  closing_.store(true);
  StopBackground();
  // Queued trainings are dropped (the next open counts again); a running
  // one is waited for: it gives up at its next step (decision 0045).
  StopTraining();
  std::lock_guard<std::mutex> l(admin_mu_);
  {
    std::unique_lock<std::shared_mutex> m(map_mu_);
    for (auto& [id, t] : tenants_) {
      // Waits for a recording writer's chunk in flight (it bypasses close_mu_).
      std::unique_lock<std::shared_mutex> life(t->life);
      t->cf = nullptr;  // handles are destroyed by their shard
      t->WipeKeys();
    }
    tenants_.clear();
  }
  // Every shard, then the metadata instance, each closed even after an
  // earlier one failed; the first error is returned.
  Status first;
  auto keep = [&first](Status s) {
    if (first.ok() && !s.ok()) first = std::move(s);
  };
  // Each instance closed cleanly leaves its high-water mark (decisions
  // 0015, 0035): taken after its WAL was synced and its files closed, all
  // of them written in one file, <store>/CLOSE_MARK, once every instance is
  // closed (never into the metadata WAL, whose torn tail could take them).
  CloseMark marks;
  for (auto& shard : shards_) {
    if (!shard) continue;
    keep(shard->Close());
    if (!read_only() && shard->close_mark()) marks.shards[shard->index()] = *shard->close_mark();
  }
  shards_.clear();
  // Not when the metadata instance never opened (an open that failed
  // before it): this session checked nothing and may write nothing.
  const bool meta_opened = meta_ != nullptr;
  bool meta_closed = false;
  // The session's close counter (decision 0042), written into the mark: the
  // value this session's open raised (or, after an open that failed before
  // that, the last one). Unreadable: no mark (the next open checks nothing).
  Result<uint64_t> counter = uint64_t{0};
  if (meta_) {
    if (!read_only()) {
      counter = ReadCloseCounter(meta_.get());
      keep(counter.status());
    }
    Status synced;
    if (!read_only()) {
      synced = SyncWal(meta_.get(), *meta_error_, "metadata: sync WAL at close",
                       res_->close_check.get(), path_ + "/meta");
      keep(synced);
    }
    Status closed = fsutil::FromRocks(meta_->Close(), "metadata: close");
    keep(closed);
    meta_.reset();
    Status close_error = res_->close_check->TakeCloseError(path_ + "/meta");
    meta_closed = synced.ok() && closed.ok() && close_error.ok() && !meta_error_->failed() &&
                  !res_->close_check->TakeWriteFailure(path_ + "/meta");
    keep(std::move(close_error));
  }
  if (!read_only() && meta_opened) {
    rocksdb::FileSystem* fs = res_->env->GetFileSystem().get();
    // The metadata instance's own mark only when it closed cleanly (no
    // `meta` line: nothing checked for it); the shards' marks regardless.
    ShardMark m;
    if (meta_closed && TakeMark(fs, path_ + "/meta", &m)) marks.meta = std::move(m);
    if (counter.ok()) marks.counter = *counter;
    // A CLOSE_MARK still there was not consumed: this session's open did
    // not finish (it failed before checking the marks). Kept, it is still
    // what the last clean close left; this session's marks would describe
    // instances it never fully opened.
    const std::string bytes = EncodeCloseMark(marks);
    if (bytes.size() > kMaxCloseMarkBytes) {
      // Never in practice (a line per shard); the next open would refuse
      // it as damage: none is written, the next open checks nothing.
      Log(LogLevel::kWarn, "close mark not written: " + std::to_string(bytes.size()) +
                               " bytes, over the " + std::to_string(kMaxCloseMarkBytes) + " readable");
    } else if (counter.ok() &&
               !fs->FileExists(path_ + "/" + kCloseMarkFile, rocksdb::IOOptions(), nullptr).ok()) {
      keep(fsutil::AtomicWrite(fs, path_, kCloseMarkFile,
                               reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
    }
  }
  if (!read_only() && meta_opened) {
    // The WAL ledger (decision 0040): the WAL files each shard that closed
    // cleanly left; the entries of the others kept from the last one. One
    // that does not read (damaged: this session's open refused it) is left
    // as it is, for the operator (docs/operations.md, "WAL ledger").
    rocksdb::FileSystem* fs = res_->env->GetFileSystem().get();
    WalLedger ledger;
    bool present = false;
    if (ReadWalLedger(fs, path_, &ledger, &present).ok()) {
      for (const auto& [i, m] : marks.shards) {
        ledger.shards[i] = m.wals;
        ledger.shard_edges[i] = m.edges;  // decision 0050
      }
      if (marks.meta) {  // decision 0042
        ledger.meta = marks.meta->wals;
        ledger.meta_edges = marks.meta->edges;
      }
      keep(WriteWalLedger(fs, path_, ledger));
    }
  }
  store_data_key_.Wipe();
  store_index_key_.Wipe();
  if (holds_writer_lock_) {
    kp_->ReleaseWriterLock();
    holds_writer_lock_ = false;
  }
  if (first.ok()) {
    Log(LogLevel::kInfo, "store closed");
  } else {
    Log(LogLevel::kError, "store closed with an error: " + first.ToString());
  }
  return first;
}

rocksdb::WriteOptions Store::Impl::WriteOpts() const {
  rocksdb::WriteOptions w;
  w.sync = options_.sync_writes;
  return w;
}

Status Store::Impl::PutHeader(std::string_view name, std::string_view value) {
  return fsutil::FromRocks(meta_->Put(meta_write_, format::HeaderKey(name), value),
                           "write store header");
}

// docs/decisions/0028: format 2 adds call versions (CallMeta.version and the
// tenant's `V` row). A format 1 build writing this store would put calls
// without advancing their versions, so a conditional writer could overwrite
// its change unseen: the first writable open raises the header to 2 (one
// synced write, audited) before it serves, and a format 1 build refuses the
// store from then on. Read-only opens leave the header as it is.
// docs/decisions/0030: format 3 adds the change feed ('L' rows), for the same
// reason (a format 2 build's changes would make no events, and a consumer
// would miss them unseen): a format 1 or 2 header is raised to 3 the same way.
Status Store::Impl::UpgradeFormat() {
  if (format_version_ >= kStoreFormatVersion) return Status::OK();
  const uint64_t from = format_version_;
  CV_RETURN_IF_ERROR(PutHeader("format", std::to_string(kStoreFormatVersion)));
  format_version_ = kStoreFormatVersion;
  Audit("store_format_upgraded", "",
        "from=" + std::to_string(from) + " to=" + std::to_string(kStoreFormatVersion));
  return Status::OK();
}

Result<std::string> Store::Impl::GetHeader(std::string_view name) {
  std::string v;
  rocksdb::Status s = meta_->Get(rocksdb::ReadOptions(), format::HeaderKey(name), &v);
  if (s.IsNotFound()) return Status::NotFound("store header field missing");
  CV_RETURN_IF_ERROR(fsutil::FromRocks(s, "read store header"));
  return v;
}

// Read-only: the same steps as a writable open, minus every write (no
// directory created, no header update, no key retired, no pending failure
// folded into the audit log, no recovery, no background runner).
Status Store::Impl::OpenReadOnly() {
  rocksdb::Options mo(res_->db_options, res_->tenant_cf_options);
  mo.enable_blob_files = false;
  mo.info_log = res_->InfoLog(path_ + "/meta", "meta", /*read_only=*/true);
  mo.max_open_files = -1;
  rocksdb::FileSystem* fs = res_->env->GetFileSystem().get();
  const std::string dir = path_ + "/meta";
  // (WAL-tracking edits, hand-made, abort 7.8.3's read-only open: refused.)
  CV_RETURN_IF_ERROR(ScanMetaWal(/*read_only=*/true, nullptr));
  Status meta = RetryWhileRacing([&]() -> Status {
    meta_.reset();
    rocksdb::DB* db = nullptr;
    const std::string stamp = ManifestStamp(fs, dir);
    // Read again at every attempt, after the stamp (the mark before the
    // MANIFEST): a writer appends.
    const std::string mark_file = ReadManifestMarkFile(fs, dir);
    const ManifestTailCut cut(res_->close_check.get(), dir, mark_file,
                              walscan::ReadCurrentManifest(fs, dir));
    if (!cut.lost().empty()) {
      return MetaDamaged(Status::Corruption("acknowledged writes lost: " + cut.lost()));
    }
    rocksdb::Status opened = rocksdb::DB::OpenForReadOnly(mo, dir, &db);
    if (!opened.ok()) CV_RETURN_IF_ERROR(CheckStamp(fs, dir, stamp));  // a race: retry
    Status o = fsutil::FromRocks(opened, "open metadata instance read-only");
    if (o.code() == Code::kNotFound || o.code() == Code::kInvalidArgument ||
        o.code() == Code::kCorruption) {
      return MetaDamaged(o);
    }
    CV_RETURN_IF_ERROR(o);
    meta_.reset(db);
    return CheckStamp(fs, dir, stamp);
  });
  CV_RETURN_IF_ERROR(meta);
  // Only a missing header means an unfinished init; a failed read is that.
  // Read once: a second read that failed would pass for a missing header.
  auto format_field = GetHeader("format");
  if (!format_field.ok() && format_field.status().code() != Code::kNotFound) {
    return format_field.status();
  }
  if (!format_field.ok()) {
    if (HeldAStore(fs, path_, meta_.get())) {
      return MetaDamaged(Status::NotFound("the store header is missing"));
    }
    return Status::NotFound("no callvault store in this directory (an init did not finish; run init)");
  }
  CV_RETURN_IF_ERROR(LoadHeader());
  // A restore's state, as a writable open checks it (backup.cc): a copy
  // whose replay is not proven done is never served, and the advice to
  // open it writable is given only where that open would finish it.
  CV_RETURN_IF_ERROR(ReadRestoreMarker(/*store_exists=*/true));
  CV_RETURN_IF_ERROR(CheckRestoreMarker());
  {
    // A CLOSE_MARK newer than the metadata instance (decision 0042) stops
    // the store before anything reads what that instance may have lost;
    // OpenShards uses the file only when it is not stale.
    bool stale = false;
    std::string stale_why;
    CV_RETURN_IF_ERROR(CheckCloseCounter(fs, path_, meta_.get(), options_, &stale, &stale_why));
  }
  // A writer that rotates the keys between listing the keyring generations
  // and opening the newest one destroys the KEK it was sealed under: look
  // again.
  Status keys;
  for (int attempt = 0; attempt < 3; ++attempt) {
    keys = LoadKeyring();
    if (keys.code() != Code::kKeyError) break;
  }
  if (keys.code() == Code::kKeyError) RecordKeyringFailure(keys);
  CV_RETURN_IF_ERROR(keys);
  CV_RETURN_IF_ERROR(LoadAudit());
  CV_RETURN_IF_ERROR(OpenShards());
  CV_RETURN_IF_ERROR(LoadDamage());
  CV_RETURN_IF_ERROR(RecordWalDamage());
  std::vector<codec::TenantRecord> records;
  CV_RETURN_IF_ERROR(LoadRegistry(&records));
  CV_RETURN_IF_ERROR(RegisterAsIs(std::move(records)));
  return ApplyDamageReports();  // decision 0020
}

// A writable open reads the receipt-signing key before anything can sign
// or shred: recovery may finish a purge (shred, then sign its receipt), and
// a purge refused at its signature would be past its shred. A damaged key
// stops the store here, loudly (attack13), instead of signing receipts that
// verify under no key. None yet (no receipt signed): nothing to check.
Status Store::Impl::CheckSigningKey() {
  auto pk = kp_->ExistingSigningPublicKey();
  if (pk.ok() || pk.status().code() == Code::kNotFound) return Status::OK();
  if (pk.status().code() == Code::kCorruption) {
    Audit("signing_key_damaged", "", pk.status().message());
  }
  return pk.status();
}

Status Store::Impl::OpenOrCreate() {
  crypto::Init();
  res_ = SharedResources::Make(options_);
  rocksdb::Env* env = res_->env;
  bool exists = env->FileExists(path_ + "/meta/CURRENT").ok();
  rocksdb::FileSystem* fs = env->GetFileSystem().get();
  if (!exists && HasManifest(fs, path_ + "/meta") && HeldAStore(fs, path_, nullptr)) {
    return MetaDamaged(Status::NotFound("meta/CURRENT is missing"));
  }
  if (!exists && !options_.create_if_missing) {
    return Status::NotFound("no callvault store in this directory (use create_if_missing / init)");
  }
  if (read_only()) return OpenReadOnly();
  // backup.cc's RESTORE_PENDING: Store::Restore writes it before the copy
  // can be opened; FinishRestore removes it after this open's recovery.
  // Read and verified before anything changes: an invalid one refuses the
  // open here; CheckRestoreMarker binds it to this copy before recovery.
  CV_RETURN_IF_ERROR(ReadRestoreMarker(exists));
  CV_RETURN_IF_ERROR(fsutil::FromRocks(env->CreateDirIfMissing(path_), "create store directory"));
  CV_RETURN_IF_ERROR(
      fsutil::FromRocks(env->CreateDirIfMissing(path_ + "/shards"), "create shards directory"));
  // A new store's again, now that they exist: CreateDirIfMissing takes a
  // directory made by someone else between Store::Open's check and here (in
  // a parent others can write, such as /tmp), and nothing is written into
  // it yet. An existing store's were there for that check.
  if (!exists) CV_RETURN_IF_ERROR(fsutil::CheckStoreTree(path_));
  rocksdb::Options mo(res_->db_options, res_->tenant_cf_options);
  mo.create_if_missing = true;
  mo.enable_blob_files = false;
  meta_error_->Attach(res_.get(), "meta");
  mo.listeners.push_back(meta_error_);
  mo.info_log = res_->InfoLog(path_ + "/meta", "meta", /*read_only=*/false);
  // Alive through the open: RocksDB reads the MANIFEST without a torn,
  // unsynced tail (decision 0067).
  std::unique_ptr<ManifestTailCut> cut;
  if (exists) CV_RETURN_IF_ERROR(ScanMetaWal(/*read_only=*/false, &cut));
  if (cut && !cut->what().empty()) {
    rocksdb::Log(rocksdb::InfoLogLevel::WARN_LEVEL, mo.info_log, "meta: %s", cut->what().c_str());
  }
  res_->close_check->ReleaseDeletions(path_ + "/meta");  // decision 0025
  res_->close_check->TrackManifests(path_ + "/meta");    // decision 0067
  rocksdb::DB* db = nullptr;
  rocksdb::Status opened = rocksdb::DB::Open(mo, path_ + "/meta", &db);
  if (opened.IsIOError() && opened.ToString().find("While lock file") != std::string::npos) {
    // RocksDB's LOCK file: another process has the store open for writing.
    return Status::FailedPrecondition(
        "the store is open for writing in another process (meta/LOCK is held); a read-only "
        "open (Options::read_only) can inspect it meanwhile");
  }
  Status o = fsutil::FromRocks(opened, "open metadata instance");
  if (exists && (o.code() == Code::kNotFound || o.code() == Code::kInvalidArgument ||
                 o.code() == Code::kCorruption)) {
    return MetaDamaged(o);
  }
  CV_RETURN_IF_ERROR(o);
  meta_.reset(db);
  if (!res_->nofile_raised.empty()) {
    rocksdb::Log(rocksdb::InfoLogLevel::INFO_LEVEL, mo.info_log, "%s (decision 0059)",
                 res_->nofile_raised.c_str());
  }
  // Only a missing header means an unfinished init: a failed read must not
  // send an existing store into CreateNew. Read once: a second read that
  // failed would pass for a missing header.
  auto format_field = GetHeader("format");
  if (!format_field.ok() && format_field.status().code() != Code::kNotFound) {
    return format_field.status();
  }
  if (!format_field.ok()) {
    // A metadata instance without a header: an init that did not finish,
    // unless the store existed (a lost MANIFEST edit, a damaged CURRENT).
    if (exists && HeldAStore(fs, path_, meta_.get())) {
      return MetaDamaged(Status::NotFound("the store header is missing"));
    }
    if (!options_.create_if_missing) {
      return Status::NotFound("no callvault store in this directory (an init did not finish; run init)");
    }
    Status created = CreateNew();
    if (!created.ok()) {
      if (!exists) {
        // Leave nothing behind that could later open as a store.
        meta_.reset();
        rocksdb::DestroyDB(path_ + "/meta", mo).PermitUncheckedError();
        // RocksDB's DestroyDB leaves the names it does not know.
        fs->DeleteFile(path_ + "/meta/" + kManifestMarkFile, rocksdb::IOOptions(), nullptr)
            .PermitUncheckedError();
        std::error_code rm;
        std::filesystem::remove(path_ + "/meta", rm);  // only if empty
        std::error_code ec;
        std::filesystem::remove(path_ + "/shards", ec);  // only if empty
        std::filesystem::remove(path_, ec);
      }
      return created;
    }
  }
  CV_RETURN_IF_ERROR(LoadHeader());
  // Holding meta/LOCK; after the format check, so that a store this build
  // refuses is left as it was (docs/compatibility.md).
  RemoveStaleOptionsFiles(*res_, path_ + "/meta", mo.info_log.get());
  // Sets restored_copy_, which recovery reads.
  CV_RETURN_IF_ERROR(CheckRestoreMarker());
  {
    // As in OpenReadOnly (decision 0042): before the keyring is read.
    bool stale = false;
    std::string stale_why;
    CV_RETURN_IF_ERROR(CheckCloseCounter(fs, path_, meta_.get(), options_, &stale, &stale_why));
  }
  Status keys = LoadKeyring();
  if (keys.code() == Code::kKeyError) RecordKeyringFailure(keys);
  CV_RETURN_IF_ERROR(keys);
  CV_RETURN_IF_ERROR(LoadAudit());
  CV_RETURN_IF_ERROR(CheckSigningKey());
  CV_RETURN_IF_ERROR(OpenShards());
  CV_RETURN_IF_ERROR(LoadDamage());
  CV_RETURN_IF_ERROR(RecordWalDamage());
  std::vector<codec::TenantRecord> records;
  CV_RETURN_IF_ERROR(LoadRegistry(&records));
  CV_RETURN_IF_ERROR(Recover(std::move(records)));
  CV_RETURN_IF_ERROR(ApplyDamageReports());  // decision 0020
  CV_RETURN_IF_ERROR(UpgradeFormat());        // decision 0028
  StartBackground();
  return Status::OK();
}

// A new store: keys first (a keyring generation 1 under KEK generation 1),
// then the header in one synced batch, whose "format" field marks the store
// as created. A crash in between leaves a keyring without a store; the next
// init adopts it if it holds no tenant keys.
Status Store::Impl::CreateNew() {
  std::string region = options_.region.empty() ? "default" : options_.region;
  // The directories this init created (the store directory, meta/, shards/)
  // must survive a power loss before anything is written that names them:
  // init_store_id before the keys (or a power loss leaves keys that no init
  // can adopt), the header before the store counts as created.
  rocksdb::FileSystem* fs = res_->env->GetFileSystem().get();
  CV_RETURN_IF_ERROR(fsutil::SyncDir(fs, path_));
  CV_RETURN_IF_ERROR(fsutil::SyncParentDir(fs, path_));
  CV_ASSIGN_OR_RETURN(auto gens, kp_->ListKeyrings());
  Keyring k;
  // The store id is chosen and recorded before any key is written, so that
  // a keyring left by this store's own interrupted init can be told apart
  // from another store's keys.
  auto pending = GetHeader("init_store_id");
  if (!gens.empty()) {
    CV_ASSIGN_OR_RETURN(std::string bytes, kp_->ReadKeyring(gens.back()));
    CV_ASSIGN_OR_RETURN(k, Keyring::Unseal(kp_, bytes));
    if (!pending.ok() || !crypto::ConstantTimeEquals(*pending, k.store_id)) {
      return Status::KeyError(
          "the key directory already holds the keys of another store; use a new key directory");
    }
  } else {
    std::string id = pending.ok() ? *pending : crypto::RandomString(format::kStoreIdBytes);
    if (!pending.ok()) CV_RETURN_IF_ERROR(PutHeader("init_store_id", id));
    CV_ASSIGN_OR_RETURN(auto keks, kp_->ListKeks());
    k.kek_generation = keks.empty() ? 1 : keks.back() + 1;
    CV_RETURN_IF_ERROR(kp_->CreateKek(k.kek_generation));
    k.store_id = id;
    k.generation = 1;
    k.store_data_key = crypto::RandomKey();
    k.store_index_key = crypto::RandomKey();
    CV_ASSIGN_OR_RETURN(std::string sealed, k.Seal(kp_));
    CV_RETURN_IF_ERROR(kp_->WriteKeyring(k.generation, sealed));
    CV_KILL_POINT("init.after_keyring");
  }
  rocksdb::WriteBatch b;
  auto put = [&](std::string_view n, std::string_view v) {
    return fsutil::FromRocks(b.Put(format::HeaderKey(n), v), "header batch");
  };
  CV_RETURN_IF_ERROR(put("store_id", k.store_id));
  CV_RETURN_IF_ERROR(put("region", region));
  CV_RETURN_IF_ERROR(put("max_tenants_per_shard", std::to_string(options_.max_tenants_per_shard)));
  CV_RETURN_IF_ERROR(put("shards", "0"));
  CV_RETURN_IF_ERROR(put("next_internal_id", "1"));
  CV_RETURN_IF_ERROR(put("keyring_gen", std::to_string(k.generation)));
  CV_RETURN_IF_ERROR(put("receipt_seq", "0"));
  CV_RETURN_IF_ERROR(put("format", std::to_string(kStoreFormatVersion)));
  return fsutil::FromRocks(meta_->Write(meta_write_, &b), "write store header");
}

Status Store::Impl::LoadHeader() {
  // docs/compatibility.md: a store of a format this build does not read is
  // refused before anything else is read or written.
  CV_ASSIGN_OR_RETURN(std::string fmt, GetHeader("format"));
  uint64_t format_version = 0;
  if (!ParseU64(fmt, &format_version)) return Status::Corruption("store header: bad format version");
  if (format_version > kStoreFormatVersion) {
    return Status::NotSupported("store format version " + std::to_string(format_version) +
                                " is newer than this build reads (" +
                                std::to_string(kMinReadableStoreFormatVersion) + " to " +
                                std::to_string(kStoreFormatVersion) + "); open it with a newer callvault");
  }
  if (format_version < kMinReadableStoreFormatVersion) {
    return Status::NotSupported("store format version " + std::to_string(format_version) +
                                " is older than this build reads (" +
                                std::to_string(kMinReadableStoreFormatVersion) + " to " +
                                std::to_string(kStoreFormatVersion) + ")");
  }
  format_version_ = format_version;
  CV_ASSIGN_OR_RETURN(store_id_, GetHeader("store_id"));
  CV_ASSIGN_OR_RETURN(region_, GetHeader("region"));
  if (!options_.region.empty() && options_.region != region_) {
    return Status::FailedPrecondition("store belongs to region '" + region_ +
                                      "', not the region in the options");
  }
  uint64_t v = 0;
  CV_ASSIGN_OR_RETURN(std::string s, GetHeader("max_tenants_per_shard"));
  if (!ParseU64(s, &v) || v == 0) return Status::Corruption("store header: bad max_tenants_per_shard");
  max_tenants_per_shard_ = static_cast<uint32_t>(v);
  CV_ASSIGN_OR_RETURN(s, GetHeader("next_internal_id"));
  if (!ParseU64(s, &next_internal_id_)) return Status::Corruption("store header: bad next_internal_id");
  CV_ASSIGN_OR_RETURN(s, GetHeader("receipt_seq"));
  if (!ParseU64(s, &receipt_seq_)) return Status::Corruption("store header: bad receipt_seq");
  return Status::OK();
}

// Chooses the newest keyring generation. Refuses one older than the
// generation the store recorded (a rolled-back keyring); accepts a newer one
// (a crash after the keyring write, or a store restored from a backup, whose
// tenants purged since then have no key any more).
Status Store::Impl::LoadKeyring() {
  CV_ASSIGN_OR_RETURN(auto gens, kp_->ListKeyrings());
  if (gens.empty()) {
    return Status::KeyError("the key directory holds no keyring (wrong key directory?)");
  }
  CV_ASSIGN_OR_RETURN(std::string bytes, kp_->ReadKeyring(gens.back()));
  CV_ASSIGN_OR_RETURN(Keyring k, Keyring::Unseal(kp_, bytes));
  if (k.generation != gens.back()) {
    return Status::KeyError("keyring file name and contents disagree on its generation");
  }
  if (!crypto::ConstantTimeEquals(k.store_id, store_id_)) {
    return Status::KeyError("the key directory belongs to another store");
  }
  CV_ASSIGN_OR_RETURN(std::string s, GetHeader("keyring_gen"));
  uint64_t recorded = 0;
  if (!ParseU64(s, &recorded)) return Status::Corruption("store header: bad keyring_gen");
  if (k.generation < recorded) {
    return Status::KeyError("keyring rollback: the key directory holds keyring generation " +
                            std::to_string(k.generation) + " but the store has seen generation " +
                            std::to_string(recorded) + "; refusing to open");
  }
  if (k.generation > recorded && !read_only()) {
    CV_RETURN_IF_ERROR(PutHeader("keyring_gen", std::to_string(k.generation)));
  }
  store_data_key_ = k.store_data_key.Clone();
  store_index_key_ = k.store_index_key.Clone();
  highest_keyring_gen_ = gens.back();
  std::lock_guard<std::mutex> l(admin_mu_);
  keyring_ = std::move(k);
  return read_only() ? Status::OK() : RetireStaleKeys();
}

Status Store::Impl::OpenShards() {
  CV_ASSIGN_OR_RETURN(std::string s, GetHeader("shards"));
  uint64_t n = 0;
  if (!ParseU64(s, &n) || n > 100000) return Status::Corruption("store header: bad shard count");
  // Refused before any shard opens (decision 0059): a limit too low for
  // the shards would otherwise show later, as a flush failing with EMFILE.
  if (!read_only()) CV_RETURN_IF_ERROR(SizeOpenFiles(static_cast<uint32_t>(n), "opening the store"));
  // The high-water marks the last clean close left (decision 0015); a
  // shard without one (a store older than the mark, a new shard) is not
  // checked.
  std::vector<std::optional<ShardMark>> marks(n);
  for (uint32_t i = 0; i < n; ++i) {
    auto m = GetHeader(ShardMarkField(i));
    if (!m.ok() && m.status().code() == Code::kNotFound) continue;
    CV_RETURN_IF_ERROR(m.status());
    ShardMark mark;
    if (!ShardMark::Decode(*m, &mark)) return Status::Corruption("store header: bad shard mark");
    marks[i] = std::move(mark);
    shard_marks_.push_back(i);
  }
  // The marks a clean close of this version left (decision 0035), checked
  // already by ScanMetaWal. Header marks are newer than any CLOSE_MARK (a
  // close of an older version after this one's): then the file is stale
  // and not used (it is removed with them).
  // A stale file (decision 0042: its close counter below the metadata
  // instance's; a later writable open consumed it, and that session may
  // have flushed or purged since) is not used: an info line, no alarm. The
  // WAL ledger below still checks its shards, so a mark put back cannot
  // hide a loss in the WAL files a clean close listed.
  // What CLOSE_MARK held when its marks were taken ("" if none were): a
  // read-only open checks it again before it believes a loss they show.
  std::string marks_from_file;
  if (shard_marks_.empty()) {
    rocksdb::FileSystem* fs = res_->env->GetFileSystem().get();
    bool stale = false;
    std::string stale_why;
    CV_RETURN_IF_ERROR(CheckCloseCounter(fs, path_, meta_.get(), options_, &stale, &stale_why));
    CloseMark file;
    bool present = false;
    CV_RETURN_IF_ERROR(ReadCloseMark(fs, path_, &file, &present));
    if (present && !stale && !file.shards.empty()) marks_from_file = EncodeCloseMark(file);
    if (stale) {
      Log(LogLevel::kInfo, stale_why);
      file.shards.clear();
    }
    for (auto& [i, mark] : file.shards) {
      if (i < n) marks[i] = std::move(mark);
    }
  }
  // The WAL ledger (decision 0040): what the last clean close of each shard
  // left, checked at every open, for a shard without a close mark (a crash
  // since, or an open since that consumed the mark): its listed WAL files
  // that still exist must be as long as listed. A damaged ledger refuses
  // the open, as a damaged CLOSE_MARK does.
  {
    WalLedger ledger;
    bool present = false;
    CV_RETURN_IF_ERROR(ReadWalLedger(res_->env->GetFileSystem().get(), path_, &ledger, &present));
    for (const auto& [i, wals] : ledger.shards) {
      if (i < n && !marks[i] && !wals.empty()) marks[i] = LedgerMark(wals, ledger.shard_edges[i]);
    }
  }
  // A loss the marks show must be durable before it can be forgotten
  // (decision 0039): a writable open writes each shard a new MANIFEST, and
  // the file check runs only while CURRENT names the mark's one, so an open
  // that fails after a shard opened (another shard's I/O error, a full
  // disk) would leave the next open nothing to find. The file check of
  // every marked shard first, its losses written (synced) as header fields
  // `shard_loss.<i>` before any shard opens writable; what the opens find
  // besides (the sequence check) written after them. Consumed by
  // RecordWalDamage once the tenants' damage marks are durable.
  std::map<uint32_t, std::string> found;
  auto record_losses = [&]() -> Status {
    if (found.empty()) return Status::OK();
    rocksdb::WriteBatch b;
    for (const auto& [i, why] : found) {
      CV_RETURN_IF_ERROR(
          fsutil::FromRocks(b.Put(format::HeaderKey(ShardLossField(i)), why), "shard loss batch"));
    }
    return fsutil::FromRocks(meta_->Write(meta_write_, &b), "record shard losses");
  };
  if (!read_only()) {
    rocksdb::FileSystem* fs = res_->env->GetFileSystem().get();
    for (uint32_t i = 0; i < n; ++i) {
      const std::string dir = ShardDir(path_, i);
      const std::string mark_file = ReadManifestMarkFile(fs, dir);
      const walscan::ManifestInfo manifest = walscan::ReadCurrentManifest(fs, dir);
      // A failed read is left to the shard's own open, which reports it.
      // A WAL replaced by another file is the shard's open's to refuse
      // (decision 0050), not a loss to record.
      std::string why;
      if (marks[i]) {
        std::string replaced;
        auto lost = CheckMarkFiles(fs, dir, manifest, *marks[i], &replaced);
        if (lost.ok()) why = *lost;
      }
      // Synced MANIFEST edits that do not read (decision 0067), also in a
      // crash image: the shard's writable open writes a whole MANIFEST of
      // the older state and deletes the tables of the edits lost, so the
      // loss is made durable first, as the mark's (the shard's open says
      // the same: Shard::OpenOnce).
      if (why.empty()) why = ManifestSyncedLoss(mark_file, manifest);
      if (!why.empty()) found[i] = "shard " + std::to_string(i) + ": acknowledged writes lost: " + why;
    }
    CV_RETURN_IF_ERROR(record_losses());
  }
  std::lock_guard<std::mutex> l(admin_mu_);
  // Shards are independent RocksDB instances: they open in parallel (much
  // of an open is waiting on fsyncs: new MANIFEST and WAL).
  std::vector<std::unique_ptr<Shard>> opened(n);
  std::vector<Status> status(n);
  std::atomic<uint32_t> next{0};
  auto work = [&] {
    for (uint32_t i; (i = next.fetch_add(1)) < n;) {
      auto r = Shard::Open(i, ShardDir(path_, i), *res_, false, read_only(),
                           marks[i] ? &*marks[i] : nullptr);
      if (r.ok()) opened[i] = std::move(*r);
      else status[i] = r.status();
    }
  };
  const uint32_t threads = static_cast<uint32_t>(std::min<uint64_t>(n, kShardOpenThreads));
  std::vector<std::thread> pool;
  for (uint32_t t = 1; t < threads; ++t) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
  // A writer that opened while this read-only open read the shards consumed
  // CLOSE_MARK, and its flushes may then have deleted the WAL files the
  // marks count: the shards, read after that, replay to less than the marks
  // say, and every tenant would be reported as having lost acknowledged
  // writes (attack6 of session 19: `stats` beside a writer's open). Such a
  // loss is believed only if CLOSE_MARK is still what the marks came from;
  // otherwise the store is read again (Store::Open's read-only retries),
  // and a real loss is then the writer's to find and record (decision 0039).
  if (read_only() && !marks_from_file.empty()) {
    bool loss = false;
    for (uint32_t i = 0; i < n && !loss; ++i) {
      if (!opened[i]) continue;
      for (const auto& d : opened[i]->wal_damage()) loss = loss || d.kind == "shard_loss";
    }
    if (loss) {
      CloseMark again;
      bool present = false;
      Status r = ReadCloseMark(res_->env->GetFileSystem().get(), path_, &again, &present);
      if (!r.ok() || !present || EncodeCloseMark(again) != marks_from_file) {
        return Status::IOError(std::string(kRaceMessage) + " (" + path_ +
                               ": CLOSE_MARK changed while the shards were read: a writer opened "
                               "the store)");
      }
    }
  }
  Status recorded;
  if (!read_only()) {
    // The shards have new MANIFESTs: a loss the file check found is durable
    // already (above), or it would be forgotten by a crash here.
    CV_KILL_POINT("open.after_shards_opened");
    bool changed = false;
    for (uint32_t i = 0; i < n; ++i) {
      if (!opened[i]) continue;
      for (const auto& d : opened[i]->wal_damage()) {
        if (d.kind != "shard_loss") continue;
        auto it = found.find(i);
        if (it != found.end() && it->second == d.description) continue;
        found[i] = d.description;
        changed = true;
      }
    }
    if (changed) recorded = record_losses();
  }
  // An open that stops here tells the audit callback of every loss not yet
  // marked as tenant damage: this one's and an earlier failed open's.
  auto announce = [&](const Status& why) {
    std::map<uint32_t, std::string> pending;
    for (uint32_t i = 0; i < n; ++i) {
      auto p = GetHeader(ShardLossField(i));
      if (p.ok()) pending[i] = *p;
    }
    for (const auto& [i, what] : found) pending[i] = what;
    for (const auto& [i, what] : pending) {
      Audit("shard_loss", "",
            what + (recorded.ok() ? "; this open failed (" + std::string(CodeName(why.code())) +
                                        ") before marking the shard's tenants damaged: the next "
                                        "open that succeeds marks them"
                                  : "; this open failed before it could record the loss"));
    }
  };
  if (!recorded.ok()) {
    announce(recorded);
    return recorded;
  }
  for (uint32_t i = 0; i < n; ++i) {
    // Damage stops its shard only (decision 0034): its tenants answer
    // kCorruption, the others serve. An I/O error stops the open.
    if (status[i].code() == Code::kCorruption) {
      damaged_shards_[i] = status[i].message();
      shards_.emplace_back();
      // Loud (issue 11 item 1): at every open while it does not open; a
      // read-only open tells the audit callback only.
      Audit("shard_damaged", "", "shard " + std::to_string(i) + " does not open: " + damaged_shards_[i] +
                                     "; its tenants answer kCorruption until its files are restored");
      continue;
    }
    if (!status[i].ok()) {
      announce(status[i]);
      return status[i];
    }
    AttachResealer(opened[i].get());
    shards_.push_back(std::move(opened[i]));
  }
  return Status::OK();
}

void Store::Impl::AttachResealer(Shard* shard) {
  if (read_only()) return;
  // Runs in RocksDB's flush and compaction threads: try-locks only (a
  // purge holds map_mu_ or the tenant's `life` while it drops the family,
  // and must not wait for a flush that waits for it). Not found: the
  // records stay as written until a later compaction finds the tenant.
  shard->SetResealLookup([this, shard](uint32_t cf_id) -> std::shared_ptr<Resealer> {
    std::shared_lock<std::shared_mutex> m(map_mu_, std::try_to_lock);
    if (!m.owns_lock()) return nullptr;
    for (const auto& [id, t] : tenants_) {
      // `shard` is read under `life`: a move between shards (decision
      // 0057) changes it with `life` held exclusively.
      std::shared_lock<std::shared_mutex> l(t->life, std::try_to_lock);
      if (l.owns_lock() && t->shard == shard && t->cf != nullptr && t->cf->GetID() == cf_id) {
        return t;
      }
    }
    return nullptr;
  });
}

void Store::Impl::MarkOnDamagedShard(Tenant* t) {
  auto d = damaged_shards_.find(t->rec.shard);
  if (d == damaged_shards_.end()) return;
  t->shard = nullptr;
  t->cf = nullptr;
  t->damaged = true;
  t->damage = "its shard " + std::to_string(d->first) + " does not open: " + d->second;
}

Result<Shard*> Store::Impl::PickShard() {
  for (auto& s : shards_) {
    if (s && s->family_count() < max_tenants_per_shard_) return s.get();
  }
  return OpenNextShard();
}

Result<Shard*> Store::Impl::OpenNextShard() {
  uint32_t i = static_cast<uint32_t>(shards_.size());
  CV_RETURN_IF_ERROR(SizeOpenFiles(i + 1, "a new shard"));
  CV_ASSIGN_OR_RETURN(auto shard, Shard::Open(i, ShardDir(path_, i), *res_, true));
  AttachResealer(shard.get());
  // RocksDB syncs the new shard's own directory, not its entry in shards/:
  // without this a power loss can take the whole shard after the header
  // (and the tenants' registry records) have named it.
  CV_RETURN_IF_ERROR(
      fsutil::SyncParentDir(res_->env->GetFileSystem().get(), ShardDir(path_, i)));
  CV_RETURN_IF_ERROR(PutHeader("shards", std::to_string(i + 1)));
  {
    // Metrics() reads shards_ under map_mu_ only (not admin_mu_, which a
    // key rotation holds for its whole copy): it grows under both.
    std::unique_lock<std::shared_mutex> m(map_mu_);
    shards_.push_back(std::move(shard));
  }
  return shards_.back().get();
}

Status Store::Impl::SizeOpenFiles(uint32_t shards, std::string_view doing) {
  const uint64_t limit = res_->nofile_limit;
  if (OpenFilesPerInstance(limit, shards) == 0) {
    const uint64_t need = FileLimitNeeded(shards);
    return Status::ResourceExhausted(
        std::string(doing) + " needs more file descriptors than the process may open: RLIMIT_NOFILE is " +
        std::to_string(limit) + ", and " + std::to_string(shards) +
        " shards with the metadata instance need at least " + std::to_string(need) + " (" +
        std::to_string(kMinOpenFilesPerInstance) + " open files each, plus " +
        std::to_string(FileReserve(need)) +
        " kept back); raise the nofile limit (ulimit -n, systemd LimitNOFILE=) to at least " +
        std::to_string(need) + " (docs/operations.md, \"File descriptors\")");
  }
  if (shards <= res_->planned_shards.load()) return Status::OK();
  // Sized for a quarter more shards than needed now: a growing store lowers
  // its open instances' budget about every quarter, not at every new shard
  // (each SetDBOptions enters every instance's write thread; with
  // keep_rocksdb_options_file it also writes an OPTIONS file of every family).
  const uint32_t plan = std::max(shards, std::min(shards + shards / 4, MaxShardsForLimit(limit)));
  const int each = OpenFilesPerInstance(limit, plan);
  // The WAL cap follows the shards' share of the memtable budget (decision
  // 0065); a mutable DBOptions field too.
  const uint64_t wal_cap = WalCapBytes(res_->write_buffer_manager->buffer_size(), plan);
  std::unordered_map<std::string, std::string> change;
  // RocksDB 7.8.3: max_open_files is a mutable DBOptions field; the change
  // sets the instance's table cache capacity (which its blob file readers
  // share) to each - 10 and evicts what is over it.
  if (each < res_->open_files_per_instance.load()) change["max_open_files"] = std::to_string(each);
  if (wal_cap != res_->wal_cap_bytes.load()) change["max_total_wal_size"] = std::to_string(wal_cap);
  if (!change.empty()) {
    CV_RETURN_IF_ERROR(fsutil::FromRocks(meta_->SetDBOptions(change),
                                         "metadata instance: set max_open_files, max_total_wal_size"));
    for (const auto& s : shards_) {
      if (!s) continue;
      CV_RETURN_IF_ERROR(fsutil::FromRocks(
          s->db()->SetDBOptions(change),
          "shard " + std::to_string(s->index()) + ": set max_open_files, max_total_wal_size"));
    }
  }
  res_->open_files_per_instance = each;
  res_->wal_cap_bytes = wal_cap;
  res_->flush_backlog->SetLimit(FlushBacklogLimit(
      res_->flush_backlog_option, res_->write_buffer_manager->buffer_size(), plan));
  res_->planned_shards = plan;
  return Status::OK();
}

std::vector<std::string> Store::Impl::ShardPaths() const {
  std::vector<std::string> v;
  auto* self = const_cast<Impl*>(this);
  std::lock_guard<std::mutex> l(self->admin_mu_);
  for (uint32_t i = 0; i < shards_.size(); ++i) v.push_back(ShardDir(path_, i));
  return v;
}

Status Store::Impl::LoadRegistry(std::vector<codec::TenantRecord>* records) {
  std::unique_ptr<rocksdb::Iterator> it(meta_->NewIterator(rocksdb::ReadOptions()));
  const std::string prefix(1, format::kRegistryPrefix);
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    std::string plain;
    CV_RETURN_IF_ERROR(record::Open(store_data_key_, record::Binding{}, it->key().ToStringView(),
                                    it->value().ToStringView(), &plain));
    codec::TenantRecord rec;
    CV_RETURN_IF_ERROR(codec::DecodeTenant(plain, &rec));
    records->push_back(std::move(rec));
  }
  return fsutil::FromRocks(it->status(), "read tenant registry");
}

void Store::Impl::DeriveKeys(Tenant* t, const SecretBytes& dek) const {
  t->record_key = crypto::DeriveSubkey(dek, crypto::Subkey::kRecord);
  t->index_key = crypto::DeriveSubkey(dek, crypto::Subkey::kIndex);
  t->cursor_key = crypto::DeriveSubkey(dek, crypto::Subkey::kCursor);
  t->recording_key = crypto::DeriveSubkey(dek, crypto::Subkey::kRecording);
}

Status Store::Impl::ActivateTenant(const codec::TenantRecord& rec) {
  auto t = std::make_shared<Tenant>();
  t->rec = rec;
  t->state = rec.state;
  if (auto d = damage_marks_.find(rec.internal_id); d != damage_marks_.end()) {
    t->damaged = true;  // docs/decisions/0014
    t->damage = d->second;
  }
  if (rec.state == TenantState::kActive && damaged_shards_.count(rec.shard)) {
    MarkOnDamagedShard(t.get());  // (its key kept: the shard may be restored)
  } else if (rec.state == TenantState::kActive) {
    Status missing;
    const SecretBytes* dek = keyring_.Find(rec.internal_id, rec.key_version);
    if (rec.shard >= shards_.size()) {
      missing = Status::Corruption("tenant registered in a missing shard");
    } else {
      t->shard = shards_[rec.shard].get();
      t->cf = t->shard->Find(format::ColumnFamilyName(rec.internal_id, rec.family));
      if (t->cf == nullptr) {
        missing = Status::Corruption("a live tenant's column family is missing");
      } else if (dek == nullptr && keyring_.HasTenant(rec.internal_id)) {
        // A copy of the store taken before a key rotation (decision 0036):
        // the rotation destroyed this version; the key directory holds a
        // newer one, which never sealed these rows.
        missing = Status::Corruption(
            "a live tenant's key version " + std::to_string(rec.key_version) +
            " was destroyed by a key rotation after this copy of the store was taken (the key "
            "directory holds a newer version): its rows here are unreadable; purge it, or "
            "restore a backup taken after the rotation");
      } else if (dek == nullptr) {
        missing = Status::Corruption("a live tenant's key version is missing");
      }
    }
    if (!missing.ok()) {
      // A read-only open shows the tenant as the registry has it.
      if (!read_only()) return missing;
      t->cf = nullptr;
      t->needs_recovery = true;
      ++recovery_pending_;
    } else {
      DeriveKeys(t.get(), *dek);
      // A damaged family's compactions would keep re-reading its damaged
      // files (decision 0014).
      if (t->damaged) t->shard->DisableCompactions(t->cf, true).IgnoreError();
    }
  } else if (read_only() &&
             (rec.state == TenantState::kCreating || rec.state == TenantState::kPurging)) {
    t->needs_recovery = true;
    ++recovery_pending_;
  }
  std::unique_lock<std::shared_mutex> m(map_mu_);
  tenants_[rec.tenant_id] = std::move(t);
  return Status::OK();
}

Status Store::Impl::RegisterAsIs(std::vector<codec::TenantRecord> records) {
  std::lock_guard<std::mutex> l(admin_mu_);
  if (receipt_seq_ > 0) {
    CV_ASSIGN_OR_RETURN(Receipt last, ReadReceipt(receipt_seq_));
    last_receipt_hash_ = crypto::Hex(crypto::Hash32(last.Canonical() + last.signature));
  }
  for (const auto& rec : records) {
    // A live tenant whose key is gone (purged since this copy, or by the
    // writer since the metadata was read) is not readable either.
    CV_RETURN_IF_ERROR(ActivateTenant(rec));
  }
  return Status::OK();
}

// Completes or undoes whatever a crash interrupted (design: every step of
// create and purge is idempotent and recovery rolls it to an end state).
// It destroys only what the keyring already says is gone, and quarantines
// instead of destroying when the registry contradicts the keyring or the
// data (docs/decisions/0012; recover.cc).
Status Store::Impl::Recover(std::vector<codec::TenantRecord> records) {
  std::lock_guard<std::mutex> l(admin_mu_);
  for (const auto& rec : records) {
    next_internal_id_ = std::max(next_internal_id_, rec.internal_id + 1);
  }
  next_internal_id_ = std::max(next_internal_id_, keyring_.MaxInternalId() + 1);
  if (receipt_seq_ > 0) {
    CV_ASSIGN_OR_RETURN(Receipt last, ReadReceipt(receipt_seq_));
    last_receipt_hash_ = crypto::Hex(crypto::Hash32(last.Canonical() + last.signature));
  }
  // Creates that finished were audited ("tenant_created"): a CREATING record
  // of one of them is a replayed value, never rolled back.
  std::set<std::pair<std::string, uint64_t>> audited;
  for (const auto& rec : records) {
    if (rec.state != TenantState::kCreating) continue;
    CV_ASSIGN_OR_RETURN(auto events, ListAudit(0, "tenant_created"));
    for (const auto& e : events) {
      uint64_t id = 0;
      const std::string tag = "internal_id=";
      size_t at = e.detail.find(tag);
      if (at == std::string::npos) continue;
      size_t end = e.detail.find(' ', at);
      if (ParseU64(e.detail.substr(at + tag.size(), end == std::string::npos
                                                        ? std::string::npos
                                                        : end - at - tag.size()),
                   &id)) {
        audited.emplace(e.tenant_id, id);
      }
    }
    break;
  }
  std::map<uint64_t, int> id_claims;  // internal id -> registry records naming it
  for (const auto& rec : records) ++id_claims[rec.internal_id];
  for (auto& rec : records) {
    switch (rec.state) {
      case TenantState::kCreating:
        CV_RETURN_IF_ERROR(RecoverCreating(rec, audited));
        break;
      case TenantState::kPurging:
        CV_RETURN_IF_ERROR(RecoverPurging(rec));
        break;
      case TenantState::kActive:
        // A key rotation the process died in (decision 0036): undone
        // before its switch, finished after it. A shard that did not open
        // (decision 0034) keeps it for an open that opens the shard. Only
        // while the key the registry says the tenant is sealed under is
        // there: else this is a copy of the store older than the keyring
        // (the rotation went on, or another one followed), and the tenant
        // is refused below with what happened.
        if (const char* why = RotationContradiction(rec, id_claims[rec.internal_id] > 1,
                                                      shards_.size())) {
          // Nothing rolled either way, nothing dropped or shredded.
          Quarantine(rec, std::string("recovery: the registry record is contradictory: ") + why +
                              "; no rotation step was taken");
          break;
        }
        // A shard move's two shards (decision 0057) must both be open.
        if (rec.rotation_state != codec::kRotationNone && !damaged_shards_.count(rec.shard) &&
            !damaged_shards_.count(codec::RotationShard(rec)) &&
            keyring_.Find(rec.internal_id, rec.key_version) != nullptr) {
          if (rec.rotation_state == codec::kRotationCopying) {
            CV_RETURN_IF_ERROR(RollBackRotation(&rec, nullptr));
          } else {
            CV_RETURN_IF_ERROR(FinishRotation(&rec, nullptr, 0).status());
          }
        }
        if (!keyring_.HasTenant(rec.internal_id)) {
          // Restored from a copy taken before the purge: the key is gone,
          // nothing readable is destroyed.
          CV_RETURN_IF_ERROR(FinishPurge(&rec, nullptr, "purge_on_open").status());
        }
        if (Status a = ActivateTenant(rec); !a.ok()) {
          // Its key or family is missing: reported, the others still served.
          if (a.code() != Code::kCorruption) return a;
          Quarantine(rec, "recovery: a live tenant's " + a.message());
        }
        break;
      case TenantState::kPurged:
        CV_RETURN_IF_ERROR(ActivateTenant(rec));
        break;
    }
  }
  CV_RETURN_IF_ERROR(RecoverFamilies());
  for (const auto& o : FindOrphanKeys()) {
    Audit("orphan_key", "",
          "internal_id=" + std::to_string(o.internal_id) +
              " key_version=" + std::to_string(o.key_version) +
              (o.has_column_family ? " column_family=kept" : " column_family=absent") +
              ": no live registry record owns this data key; destroy it with `callvault keys "
              "reconcile --yes` (Store::ReconcileKeys) unless the registry is restored");
  }
  // Recordings whose writer never finished (a crash mid-write).
  std::vector<std::string> ids;
  {
    std::shared_lock<std::shared_mutex> m(map_mu_);
    for (const auto& [tid, t] : tenants_) {
      // A tenant a move fenced is served at its destination (decision 0022).
      if (t->state == TenantState::kActive && !t->quarantined && !t->damaged &&
          t->Record().move_state != codec::kMoveFenced) {
        ids.push_back(tid);
      }
    }
  }
  for (const auto& tid : ids) {
    CV_ASSIGN_OR_RETURN(TenantRef t, Acquire(tid, Access::kRemove));
    Status clean = calls::CleanIncompleteRecordings(t);
    // A damaged table file of this tenant's family (its first read is this
    // scan): this tenant is damaged, the store still opens (decision 0014).
    if (IsStorageCorruption(clean)) {
      std::shared_ptr<Tenant> hit = t.t;
      t = TenantRef{};  // MarkDamaged takes the tenant's life lock itself
      MarkDamaged(hit, "open: the scan for unfinished recordings met damaged files of its "
                       "column family: " + clean.message());
      continue;
    }
    CV_RETURN_IF_ERROR(clean);
  }
  return Status::OK();
}

}  // namespace callvault
