// Tenant lifecycle: create, purge (crypto-shred + drop), the keyring
// protocol, receipts. The purge state machine is design.md's; every step is
// idempotent and Recover() (store.cc) finishes an interrupted one.
#include <rocksdb/write_batch.h>

#include <algorithm>

#include "callvault/limits.h"
#include "engine/crypto.h"
#include "engine/fs_util.h"
#include "engine/kill_point.h"
#include "engine/store_impl.h"
#include "engine/validate.h"
#include "format/coding.h"

namespace callvault {

std::string Store::Impl::TenantHash(std::string_view tenant_id) const {
  return crypto::BlindHash(store_index_key_, 'T', tenant_id);
}

Result<std::shared_ptr<Tenant>> Store::Impl::FindTenant(std::string_view tenant_id) {
  std::shared_lock<std::shared_mutex> m(map_mu_);
  auto it = tenants_.find(tenant_id);
  if (it == tenants_.end()) return Status::NotFound("unknown tenant");
  return it->second;
}

Result<TenantRef> Store::Impl::Acquire(std::string_view tenant_id, Access access) {
  CV_RETURN_IF_ERROR(validate::Id("tenant_id", tenant_id));
  // A recording writer kept past Store::Close.
  if (closing_.load()) return Status::FailedPrecondition("the store is closed (Store::Close was called)");
  CV_ASSIGN_OR_RETURN(std::shared_ptr<Tenant> t, FindTenant(tenant_id));
  auto damaged = [&t]() {
    std::lock_guard<std::mutex> l(t->rec_mu);
    // The tenant id is not repeated: the caller has it, and messages
    // reach logs (product.md guarantee 1 extends to them, crypto.md).
    return Status::Corruption("tenant damaged: " + t->damage +
                              "; restore it or purge it, or accept the loss with `callvault "
                              "tenant accept-damage`, see docs/operations.md");
  };
  // A live tenant's damage first: a read-only open cannot recover one whose
  // family a damaged MANIFEST lost, and the loss is what to act on.
  if (t->needs_recovery && t->damaged.load() && t->state.load() == TenantState::kActive) {
    return damaged();
  }
  if (t->needs_recovery) {
    return Status::FailedPrecondition(
        "tenant needs recovery that a read-only open cannot do (mid-create or mid-purge, or its "
        "key or column family is gone); the writer, or the next writable open, completes it");
  }
  // Checked before and after taking the lock: a purge that has begun makes
  // new operations fail without queueing on the lock.
  if (t->state.load() != TenantState::kActive) {
    std::lock_guard<std::mutex> l(t->rec_mu);
    if (t->rec.move_state == codec::kMoveFenced) return MovedError(t->rec);  // moved_out
    return Status::TenantPurged("tenant purged");
  }
  if (t->quarantined.load()) {
    return Status::Corruption(
        "tenant quarantined: recovery found its registry record contradicted by its key or data "
        "(possible tampering); nothing was destroyed; reinstate or purge it (see operations.md)");
  }
  if (t->damaged.load()) return damaged();
  if (t->rotation_unfinished.load() && access != Access::kRead) {
    std::lock_guard<std::mutex> l(t->rec_mu);
    return Status::FailedPrecondition(t->rotation_unfinished_why +
                                      "; reads are served, writes wait for the next open of the "
                                      "store, which finishes the rotation");
  }
  for (int i = 0; i < 100 && t->exclusive_waiting.load(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));  // a key rotation first
  }
  std::shared_lock<std::shared_mutex> lock(t->life);
  if (closing_.load()) return Status::FailedPrecondition("the store is closed (Store::Close was called)");
  if (t->state.load() != TenantState::kActive || t->cf == nullptr) {
    return Status::TenantPurged("tenant purged");
  }
  {
    // A move fenced the tenant (docs/decisions/0022): its copy at the
    // destination takes every change from now on; reads are still served
    // here until the moved_out purge.
    std::lock_guard<std::mutex> l(t->rec_mu);
    if ((access == Access::kWrite || access == Access::kRemove) &&
        t->rec.move_state == codec::kMoveFenced) {
      return MovedError(t->rec);
    }
  }
  if (access != Access::kRemove && access != Access::kInspect) {
    int64_t purge_at;
    {
      std::lock_guard<std::mutex> l(t->rec_mu);
      purge_at = t->rec.purge_at;
    }
    if (purge_at != 0 && (access == Access::kWrite || !options_.allow_reads_after_churn)) {
      return Status::FailedPrecondition(
          access == Access::kWrite ? "tenant churned: writes are refused until its scheduled purge"
                                   : "tenant churned: reads are refused until its scheduled purge");
    }
  }
  return TenantRef{std::move(t), std::move(lock)};
}

Status Store::Impl::MovedError(const codec::TenantRecord& rec) {
  // Names the destination store, never the tenant (messages reach logs).
  return Status::Moved("tenant moved to store " + rec.move_peer +
                       "; retry the operation at that store");
}

Status Store::Impl::WriteRegistry(const codec::TenantRecord& rec, rocksdb::WriteBatch* extra) {
  rocksdb::WriteBatch local;
  rocksdb::WriteBatch* b = extra ? extra : &local;
  const std::string key = format::RegistryKey(TenantHash(rec.tenant_id));
  CV_RETURN_IF_ERROR(fsutil::FromRocks(
      b->Put(key, record::Seal(store_data_key_, record::Binding{}, key, codec::EncodeTenant(rec))),
      "registry batch"));
  return fsutil::FromRocks(meta_->Write(meta_write_, b), "write tenant registry");
}

Result<std::optional<codec::TenantRecord>> Store::Impl::ReadRegistry(std::string_view tenant_id) {
  const std::string key = format::RegistryKey(TenantHash(tenant_id));
  std::string sealed;
  rocksdb::Status s = meta_->Get(rocksdb::ReadOptions(), key, &sealed);
  if (s.IsNotFound()) return std::optional<codec::TenantRecord>();
  CV_RETURN_IF_ERROR(fsutil::FromRocks(s, "read tenant registry"));
  std::string plain;
  CV_RETURN_IF_ERROR(record::Open(store_data_key_, record::Binding{}, key, sealed, &plain));
  codec::TenantRecord rec;
  CV_RETURN_IF_ERROR(codec::DecodeTenant(plain, &rec));
  return std::optional<codec::TenantRecord>(std::move(rec));
}

// The key directory as this store last left it: its newest keyring is the
// one this store holds (or a newer one this store wrote itself in a commit
// that failed after the write). Anything else means another writer or a hand
// changed the directory since: nothing is written or destroyed on a stale
// view (the writer lock makes this a second line of defence).
Status Store::Impl::CheckKeyDirState(uint64_t newest) const {
  if (newest >= keyring_.generation && newest <= std::max(keyring_.generation, highest_keyring_gen_)) {
    return Status::OK();
  }
  return Status::FailedPrecondition(
      "the key directory changed outside this store (newest keyring generation " +
      std::to_string(newest) + ", this store holds generation " +
      std::to_string(keyring_.generation) +
      "); no key was changed or destroyed; close every store on this key directory and reopen");
}

// Destroys only KEK generations older than the KEK of the current keyring,
// which is the newest durable keyring in the key directory (checked here):
// they sealed nothing that is still used, and a committed rotation retired
// them. A KEK newer than the current keyring's (a crash after CreateKek and
// before its keyring was written) sealed nothing either, but it is left
// alone: it protects no data, and the next rotation (every purge, and the
// recovery of an interrupted one) adopts it as its new KEK (CommitKeyring).
Status Store::Impl::RetireStaleKeys() {
  CV_ASSIGN_OR_RETURN(auto gens, kp_->ListKeyrings());
  const uint64_t newest = gens.empty() ? 0 : gens.back();
  if (newest != keyring_.generation) {
    // OK only for this store's own newer generation from a failed commit;
    // either way nothing is retired until the current keyring is the newest.
    return CheckKeyDirState(newest);
  }
  CV_ASSIGN_OR_RETURN(auto keks, kp_->ListKeks());
  for (uint32_t g : keks) {
    if (g < keyring_.kek_generation) {
      CV_RETURN_IF_ERROR(kp_->DestroyKek(g));
      CV_KILL_POINT("keyring.after_destroy_kek");
    }
  }
  for (uint64_t g : gens) {
    if (g < keyring_.generation) CV_RETURN_IF_ERROR(kp_->RemoveKeyring(g));
  }
  return Status::OK();
}

Status Store::Impl::CommitKeyring(Keyring next, bool rotate, rocksdb::WriteBatch* header) {
  // Re-read the key directory before choosing generations: never from
  // memory alone (another writer's keyring must not be overwritten).
  CV_ASSIGN_OR_RETURN(auto current, kp_->ListKeyrings());
  const uint64_t newest = current.empty() ? 0 : current.back();
  CV_RETURN_IF_ERROR(CheckKeyDirState(newest));
  next.generation = std::max({keyring_.generation, highest_keyring_gen_, newest}) + 1;
  highest_keyring_gen_ = next.generation;
  if (rotate) {
    CV_ASSIGN_OR_RETURN(auto keks, kp_->ListKeks());
    const uint32_t top = keks.empty() ? 0u : keks.back();
    if (top > keyring_.kek_generation) {
      // A KEK newer than the current keyring's: made by a rotation whose
      // keyring was never written (a crash after CreateKek). It sealed
      // nothing (the newest keyring is ours, checked above), so this
      // rotation adopts it rather than destroying it or adding another.
      next.kek_generation = top;
    } else {
      next.kek_generation = std::max(top, keyring_.kek_generation) + 1;
      CV_RETURN_IF_ERROR(kp_->CreateKek(next.kek_generation));
    }
    CV_KILL_POINT("keyring.after_new_kek");
  }
  CV_ASSIGN_OR_RETURN(std::string sealed, next.Seal(kp_));
  CV_RETURN_IF_ERROR(kp_->WriteKeyring(next.generation, sealed));
  CV_KILL_POINT("keyring.after_write");
  // The store records the generation for rollback detection. A caller with
  // a synced metadata batch still to write (create's ACTIVE record, purge's
  // receipt) carries it there instead of paying a sync here: until then the
  // key directory holds a newer generation than the header, which open
  // accepts (LoadKeyring).
  if (header != nullptr) {
    CV_RETURN_IF_ERROR(fsutil::FromRocks(
        header->Put(format::HeaderKey("keyring_gen"), std::to_string(next.generation)),
        "header batch"));
  } else {
    CV_RETURN_IF_ERROR(PutHeader("keyring_gen", std::to_string(next.generation)));
  }
  CV_KILL_POINT("keyring.after_header");
  keyring_ = std::move(next);
  return RetireStaleKeys();
}

Result<TenantInfo> Store::Impl::CreateTenant(const TenantSpec& spec) {
  CV_RETURN_IF_ERROR(validate::Id("tenant_id", spec.tenant_id));
  if (!spec.region.empty()) CV_RETURN_IF_ERROR(validate::Region(spec.region));
  if (spec.retention_days > limits::kMaxRetentionDays) {
    return Status::InvalidArgument("retention_days: more than " +
                                   std::to_string(limits::kMaxRetentionDays));
  }
  std::lock_guard<std::mutex> l(admin_mu_);
  if (!spec.region.empty() && spec.region != region_) {
    return Status::FailedPrecondition("tenant region differs from the store's region '" + region_ +
                                      "' (data residency)");
  }
  uint64_t previous_receipt = 0;
  {
    std::shared_lock<std::shared_mutex> m(map_mu_);
    auto it = tenants_.find(spec.tenant_id);
    if (it != tenants_.end()) {
      TenantState st = it->second->state.load();
      if (st == TenantState::kActive) return Status::AlreadyExists("tenant exists");
      if (st != TenantState::kPurged) return Status::FailedPrecondition("tenant is being purged");
      previous_receipt = it->second->rec.receipt_sequence;
    }
  }
  CV_ASSIGN_OR_RETURN(Shard * shard, PickShard());
  codec::TenantRecord rec;
  rec.tenant_id = spec.tenant_id;
  rec.state = TenantState::kCreating;
  rec.region = region_;
  rec.retention_days = spec.retention_days;
  rec.created_at = NowMicros();  // a recorded time: the system clock, not Options::clock
  rec.internal_id = next_internal_id_++;
  rec.shard = shard->index();
  rec.cf_generation = rec.internal_id;
  rec.key_version = 1;
  rec.receipt_sequence = previous_receipt;
  {
    rocksdb::WriteBatch b;
    CV_RETURN_IF_ERROR(fsutil::FromRocks(
        b.Put(format::HeaderKey("next_internal_id"), std::to_string(next_internal_id_)),
        "registry batch"));
    CV_RETURN_IF_ERROR(WriteRegistry(rec, &b));
  }
  CV_KILL_POINT("create.after_registry");

  Status s;
  auto t = std::make_shared<Tenant>();
  rocksdb::WriteBatch active;  // the ACTIVE record and the keyring generation
  {
    Keyring next = keyring_.Clone();
    SecretBytes dek = crypto::RandomKey();
    DeriveKeys(t.get(), dek);
    next.deks.emplace(std::make_pair(rec.internal_id, rec.key_version), std::move(dek));
    s = CommitKeyring(std::move(next), /*rotate=*/false, &active);
  }
  CV_KILL_POINT("create.after_keyring");
  rocksdb::ColumnFamilyHandle* cf = nullptr;
  if (s.ok()) {
    auto r = shard->Create(format::ColumnFamilyName(rec.internal_id));
    s = r.status();
    if (s.ok()) cf = *r;
  }
  CV_KILL_POINT("create.after_cf");
  bool tried_active = false;
  if (s.ok()) {
    rec.state = TenantState::kActive;
    tried_active = true;
    s = WriteRegistry(rec, &active);
  }
  if (!s.ok()) {
    // Best effort: recovery at the next open rolls back whatever is left.
    // Not after a failed ACTIVE write: that record may still be in the WAL
    // and come back at the next open, and then its key and family must be
    // there (without the key, recovery would "purge" a tenant that was
    // never created). The metadata instance refuses writes after the
    // failure anyway; recovery rolls back what the registry then says.
    if (!tried_active) RollBackCreate(rec).IgnoreError();
    return s;
  }
  CV_KILL_POINT("create.after_active");
  t->rec = rec;
  t->state = TenantState::kActive;
  t->shard = shard;
  t->cf = cf;
  TenantInfo info = t->Info();
  {
    std::unique_lock<std::shared_mutex> m(map_mu_);
    tenants_[rec.tenant_id] = std::move(t);
  }
  Audit("tenant_created", rec.tenant_id, "internal_id=" + std::to_string(rec.internal_id) +
                                             " shard=" + std::to_string(rec.shard));
  return info;
}

// Undoes a create that did not finish. Its key never protected an
// acknowledged write, so removing it needs no KEK rotation.
Status Store::Impl::RollBackCreate(const codec::TenantRecord& rec, bool keep_key) {
  if (rec.shard < shards_.size() && shards_[rec.shard]) {
    Shard* shard = shards_[rec.shard].get();
    if (auto* cf = shard->Find(format::ColumnFamilyName(rec.internal_id))) {
      CV_RETURN_IF_ERROR(shard->Drop(cf));
    }
  }
  // Also when a keyring commit of this create failed: its generation (with
  // the DEK) may be on disk all the same (a failed directory fsync after the
  // rename), and the newest generation wins at open. A newer one without
  // the DEK supersedes it.
  if (!keep_key &&
      (keyring_.HasTenant(rec.internal_id) || highest_keyring_gen_ > keyring_.generation)) {
    Keyring next = keyring_.Clone();
    next.RemoveTenant(rec.internal_id);
    CV_RETURN_IF_ERROR(CommitKeyring(std::move(next), /*rotate=*/false));
  }
  if (rec.receipt_sequence != 0) {
    // The id belonged to a purged tenant before: it stays purged.
    CV_ASSIGN_OR_RETURN(Receipt r, ReadReceipt(rec.receipt_sequence));
    codec::TenantRecord old = rec;
    old.state = TenantState::kPurged;
    old.internal_id = r.tenant_internal_id;
    old.shard = r.shard;
    old.purged_at = r.time;
    CV_RETURN_IF_ERROR(WriteRegistry(old));
    std::unique_lock<std::shared_mutex> m(map_mu_);
    auto t = std::make_shared<Tenant>();
    t->rec = old;
    t->state = TenantState::kPurged;
    tenants_[rec.tenant_id] = std::move(t);
    return Status::OK();
  }
  return fsutil::FromRocks(meta_->Delete(meta_write_, format::RegistryKey(TenantHash(rec.tenant_id))),
                           "delete registry record");
}

Result<Receipt> Store::Impl::PurgeTenant(std::string_view tenant_id) {
  metrics::Timer timer(&res_->metrics, Op::kPurge);  // scheduled purges too
  return timer.Done(PurgeTenantUntimed(tenant_id));
}

Result<Receipt> Store::Impl::PurgeTenantUntimed(std::string_view tenant_id) {
  CV_RETURN_IF_ERROR(validate::Id("tenant_id", tenant_id));
  std::lock_guard<std::mutex> l(admin_mu_);
  CV_ASSIGN_OR_RETURN(std::shared_ptr<Tenant> t, FindTenant(tenant_id));
  if (t->state.load() == TenantState::kPurged) return ReadReceipt(t->Record().receipt_sequence);
  if (t->moving.load() || (t->state.load() == TenantState::kActive &&
                           t->Record().move_state == codec::kMoveFenced)) {
    return Status::FailedPrecondition(
        "tenant is held for a move to another store; finish or resume the move (`callvault "
        "tenant move`) and purge it at its destination");
  }
  if (t->state.load() == TenantState::kActive) {
    // A legal hold blocks the purge (a PURGING tenant is past that check).
    std::shared_lock<std::shared_mutex> life(t->life);
    {
      // Tenant-level holds are in the registry: they block also when the
      // tenant has no family handle (its shard does not open, decision
      // 0034), where the check below cannot run.
      std::lock_guard<std::mutex> r(t->rec_mu);
      if (!t->rec.holds.empty()) {
        return Status::FailedPrecondition("a legal hold covers this tenant (hold " +
                                          t->rec.holds.front().hold_id + ")");
      }
    }
    if (t->cf != nullptr) {
      TenantRef ref{t, std::move(life)};
      Status held = CheckNotHeld(ref, "", /*any_call=*/true);
      // A damaged tenant's call holds may be unreadable: its tenant-level
      // holds (in the registry) still block; damaged data does not.
      if (!(t->damaged.load() && held.code() == Code::kCorruption && ref->rec.holds.empty())) {
        CV_RETURN_IF_ERROR(held);
      }
    }
  }
  codec::TenantRecord rec = t->Record();
  if (rec.state != TenantState::kPurging) rec.purge_kek_generation = keyring_.kek_generation;
  rec.state = TenantState::kPurging;
  CV_RETURN_IF_ERROR(WriteRegistry(rec));
  CV_KILL_POINT("purge.after_registry_purging");
  t->state = TenantState::kPurging;  // new operations now get kTenantPurged
  std::unique_lock<std::shared_mutex> life(t->life);  // drain in-flight ones
  CV_ASSIGN_OR_RETURN(Receipt receipt, FinishPurge(&rec, t.get(), "tenant_purge"));
  {
    std::lock_guard<std::mutex> r(t->rec_mu);
    t->rec = rec;
    t->state = TenantState::kPurged;
  }
  if (t->damaged.load()) {
    // Nothing is left to be damaged (decision 0014); a crash before this
    // leaves a mark of a purged tenant, which nothing reads.
    std::string key(1, format::kDamagePrefix);
    format::PutFixed64BE(&key, rec.internal_id);
    meta_->Delete(meta_write_, key).PermitUncheckedError();
    t->damaged = false;
  }
  return receipt;
}

// Reports, on the shard's reaper thread, that a purged family's files are
// deleted (Shard::DropAndDeleteLater): they go after the receipt, in the
// background, so that the purge returns in time independent of the
// tenant's bytes (issue 14). The family's name is the internal id and a
// generation, never the tenant id.
std::function<void(Status)> Store::Impl::DeletedLog(const std::string& family, uint64_t bytes) {
  const SharedResources* res = res_.get();  // outlives every shard
  return [res, family, bytes](Status s) {
    if (s.ok()) {
      res->Log(LogLevel::kInfo, "purge: the files of dropped family " + family + " are deleted (" +
                                    std::to_string(bytes) + " bytes live at the purge)");
    } else {
      res->Log(LogLevel::kWarn, "purge: deleting the files of dropped family " + family +
                                    " failed (they are deleted at the next open): " + s.ToString());
    }
  };
}

Result<Receipt> Store::Impl::FinishPurge(codec::TenantRecord* rec, Tenant* live,
                                         const char* kind, const std::string& destination) {
  if (rec->state != TenantState::kPurging) {
    rec->state = TenantState::kPurging;
    CV_RETURN_IF_ERROR(WriteRegistry(*rec));
  }
  Receipt r;
  r.kind = kind;
  r.destination = destination;
  r.tenant_id = rec->tenant_id;
  r.tenant_internal_id = rec->internal_id;
  r.column_family = format::ColumnFamilyName(rec->internal_id, rec->family);
  r.shard = rec->shard;
  rocksdb::WriteBatch deferred;  // written with the receipt (step 3)
  // 1. Crypto-shred: the keyring without the tenant's keys, under a new KEK
  //    generation; the old KEK destroyed (in CommitKeyring).
  if (keyring_.HasTenant(rec->internal_id)) {
    Keyring next = keyring_.Clone();
    r.key_versions_destroyed = next.RemoveTenant(rec->internal_id);
    r.kek_generation_retired = keyring_.kek_generation;
    CV_RETURN_IF_ERROR(CommitKeyring(std::move(next), /*rotate=*/true, /*header=*/&deferred));
  } else {
    // Shredded before a crash (the purge recorded the KEK it retires), or
    // before a copy of the store was restored (unknown here: 0).
    r.key_versions_destroyed = {rec->key_version};
    if (rec->purge_kek_generation != keyring_.kek_generation) {
      r.kek_generation_retired = rec->purge_kek_generation;
    }
    CV_RETURN_IF_ERROR(RetireStaleKeys());
  }
  if (r.kek_generation_retired != 0) {
    CV_ASSIGN_OR_RETURN(r.irrecoverable_after,
                        kp_->IrrecoverableAfter(r.kek_generation_retired, NowMicros()));
  }
  CV_KILL_POINT("purge.after_shred");
  if (live != nullptr) live->WipeKeys();
  // 2. Drop the column family; its files go once the handle is destroyed.
  Shard* shard = rec->shard < shards_.size() ? shards_[rec->shard].get() : nullptr;
  rocksdb::ColumnFamilyHandle* cf =
      shard ? shard->Find(format::ColumnFamilyName(rec->internal_id, rec->family)) : nullptr;
  // A shard that did not open (decision 0034) still holds the family on
  // disk, dropped when the shard opens again: nothing here can count it.
  r.counts_unknown = shard == nullptr;
  if (cf != nullptr) {
    uint64_t keys = 0;
    shard->db()->GetIntProperty(cf, "rocksdb.estimate-num-keys", &keys);
    uint64_t live_sst = 0, blobs = 0;
    shard->db()->GetIntProperty(cf, "rocksdb.live-sst-files-size", &live_sst);
    shard->db()->GetIntProperty(cf, "rocksdb.live-blob-file-size", &blobs);
    r.records = keys;
    r.bytes = live_sst + blobs;
    if (live != nullptr) live->cf = nullptr;
    CV_RETURN_IF_ERROR(shard->DropAndDeleteLater(cf, DeletedLog(r.column_family, r.bytes)));
  }
  // The other family of a key rotation that never finished (decision 0036),
  // in its own shard when the rotation was a shard move (decision 0057).
  const uint32_t other_in = codec::RotationShard(*rec);
  Shard* other_shard = other_in < shards_.size() ? shards_[other_in].get() : nullptr;
  if (other_shard != nullptr && rec->rotation_state != codec::kRotationNone) {
    const std::string name = format::ColumnFamilyName(rec->internal_id, rec->rotation_family);
    if (auto* other = other_shard->Find(name)) {
      CV_RETURN_IF_ERROR(other_shard->DropAndDeleteLater(other, DeletedLog(name, 0)));
    }
  }
  CV_KILL_POINT("purge.after_drop");
  // 3. The receipt and the PURGED state, in one synced batch.
  r.kek_generation_current = keyring_.kek_generation;
  r.keyring_generation = keyring_.generation;
  CV_ASSIGN_OR_RETURN(Receipt done, AppendReceipt(std::move(r), rec, &deferred));
  CV_KILL_POINT("purge.after_receipt");
  if (done.kek_generation_retired != 0) {
    Audit("key_rotation", "", "kek_generation " + std::to_string(done.kek_generation_retired) +
                                  " destroyed, " + std::to_string(done.kek_generation_current) +
                                  " current");
  }
  Audit("tenant_purged", done.tenant_id, "kind=" + done.kind + " receipt=" + std::to_string(done.sequence));
  res_->metrics.purges.fetch_add(1, std::memory_order_relaxed);
  return done;
}

Result<Receipt> Store::Impl::AppendReceipt(Receipt r, codec::TenantRecord* purged,
                                           rocksdb::WriteBatch* batch) {
  r.sequence = receipt_seq_ + 1;
  r.store_id = crypto::Hex(store_id_);
  r.region = region_;
  r.time = NowMicros();  // evidence: the system clock, not Options::clock
  r.prev_hash = last_receipt_hash_;
  r.signature.clear();
  CV_ASSIGN_OR_RETURN(std::string sig, kp_->Sign(r.Canonical()));
  r.signature = crypto::Hex(sig);
  rocksdb::WriteBatch local;
  rocksdb::WriteBatch& b = batch != nullptr ? *batch : local;
  const std::string key = format::ReceiptKey(r.sequence);
  CV_RETURN_IF_ERROR(fsutil::FromRocks(
      b.Put(key, record::Seal(store_data_key_, record::Binding{}, key, codec::EncodeReceipt(r))),
      "receipt batch"));
  CV_RETURN_IF_ERROR(fsutil::FromRocks(
      b.Put(format::HeaderKey("receipt_seq"), std::to_string(r.sequence)), "receipt batch"));
  if (purged != nullptr) {
    codec::TenantRecord rec = *purged;
    rec.state = TenantState::kPurged;
    rec.purged_at = r.time;
    rec.receipt_sequence = r.sequence;
    CV_RETURN_IF_ERROR(WriteRegistry(rec, &b));
    *purged = rec;
  } else {
    CV_RETURN_IF_ERROR(fsutil::FromRocks(meta_->Write(meta_write_, &b), "write receipt"));
  }
  receipt_seq_ = r.sequence;
  last_receipt_hash_ = crypto::Hex(crypto::Hash32(r.Canonical() + r.signature));
  return r;
}

Result<Receipt> Store::Impl::ReadReceipt(uint64_t sequence) {
  const std::string key = format::ReceiptKey(sequence);
  std::string sealed;
  rocksdb::Status s = meta_->Get(rocksdb::ReadOptions(), key, &sealed);
  if (s.IsNotFound()) return Status::NotFound("no such receipt");
  CV_RETURN_IF_ERROR(fsutil::FromRocks(s, "read receipt"));
  std::string plain;
  CV_RETURN_IF_ERROR(record::Open(store_data_key_, record::Binding{}, key, sealed, &plain));
  Receipt r;
  CV_RETURN_IF_ERROR(codec::DecodeReceipt(plain, &r));
  return r;
}

Result<std::vector<TenantInfo>> Store::Impl::ListTenants() {
  std::vector<TenantInfo> out;
  std::shared_lock<std::shared_mutex> m(map_mu_);
  for (const auto& [id, t] : tenants_) out.push_back(t->Info());
  return out;
}

Result<TenantInfo> Store::Impl::DescribeTenant(std::string_view tenant_id) {
  CV_RETURN_IF_ERROR(validate::Id("tenant_id", tenant_id));
  CV_ASSIGN_OR_RETURN(std::shared_ptr<Tenant> t, FindTenant(tenant_id));
  return t->Info();
}

}  // namespace callvault
