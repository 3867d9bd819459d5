// Recovery's destructive steps and what it reports instead of destroying
// (docs/decisions/0012): a step that would destroy data runs only when the
// keyring, which lives in the key directory and which the store directory
// cannot forge, corroborates it. A contradiction quarantines the tenant or
// keeps the family, and is reported as tampering. Also the explicit
// operations that resolve what recovery reported: ReconcileKeys (keys no
// live tenant owns) and ReinstateTenant (a quarantined tenant).
#include <rocksdb/write_batch.h>

#include <algorithm>

#include "engine/crypto.h"
#include "engine/fs_util.h"
#include "engine/kill_point.h"
#include "engine/store_impl.h"
#include "engine/validate.h"

namespace callvault {

namespace {

// True if the family holds any row at all (calls, holds, dictionaries,
// recordings, markers): one seek.
Result<bool> HasRows(Shard* shard, rocksdb::ColumnFamilyHandle* cf) {
  std::unique_ptr<rocksdb::Iterator> it(shard->db()->NewIterator(rocksdb::ReadOptions(), cf));
  it->SeekToFirst();
  const bool any = it->Valid();
  CV_RETURN_IF_ERROR(fsutil::FromRocks(it->status(), "scan column family"));
  return any;
}

// True if the family holds a row starting with `prefix`: one seek.
Result<bool> HasPrefix(Shard* shard, rocksdb::ColumnFamilyHandle* cf, const std::string& prefix) {
  std::unique_ptr<rocksdb::Iterator> it(shard->db()->NewIterator(rocksdb::ReadOptions(), cf));
  it->Seek(prefix);
  const bool any = it->Valid() && it->key().starts_with(prefix);
  CV_RETURN_IF_ERROR(fsutil::FromRocks(it->status(), "scan column family"));
  return any;
}

std::string IdText(uint64_t internal_id) { return "internal_id=" + std::to_string(internal_id); }

// The names of every family of `internal_id` in `shard`: "t<id>" and any
// "t<id>r<n>" (decision 0036).
std::vector<std::string> OwnFamilies(Shard* shard, uint64_t internal_id) {
  std::vector<std::string> out;
  for (const auto& name : shard->FamilyNames()) {
    auto id = format::ParseColumnFamilyName(name);
    if (id && *id == internal_id) out.push_back(name);
  }
  return out;
}

}  // namespace

void Store::Impl::ReportTampering(std::string_view tenant_id, const std::string& detail) {
  Audit("auth_failure", tenant_id, "tampering: " + detail);
}

std::shared_ptr<Tenant> Store::Impl::LoadTenant(const codec::TenantRecord& rec) {
  auto t = std::make_shared<Tenant>();
  t->rec = rec;
  t->state = TenantState::kActive;
  // A quarantined tenant says its damage too (a MANIFEST edit lost with its
  // family: decision 0067).
  if (auto d = damage_marks_.find(rec.internal_id); d != damage_marks_.end()) {
    t->damaged = true;
    t->damage = d->second;
  }
  if (rec.shard < shards_.size() && shards_[rec.shard]) {
    t->shard = shards_[rec.shard].get();
    t->cf = t->shard->Find(format::ColumnFamilyName(rec.internal_id, rec.family));
  }
  if (const SecretBytes* dek = keyring_.Find(rec.internal_id, rec.key_version)) {
    DeriveKeys(t.get(), *dek);
  } else {
    t->cf = nullptr;  // nothing of it can be read
  }
  return t;
}

void Store::Impl::Quarantine(const codec::TenantRecord& rec, const std::string& why) {
  auto t = LoadTenant(rec);
  t->quarantined = true;
  {
    std::unique_lock<std::shared_mutex> m(map_mu_);
    tenants_[rec.tenant_id] = std::move(t);
  }
  ReportTampering(rec.tenant_id, why + "; tenant quarantined (" + IdText(rec.internal_id) +
                                     "), nothing destroyed: reinstate or purge it");
}

// A CREATING record is legitimate only in the crash window of a create
// (registry CREATING -> keyring with the DEK -> family created -> ACTIVE),
// in which the family holds no row and no "tenant_created" event exists.
// A replayed CREATING value of a tenant that went live cannot be told from
// that window by the registry alone: rolling back then needs the family to
// be empty (nothing readable destroyed) and the create not to be audited.
// Without its key the family is unreadable already: rolled back as before.
Status Store::Impl::RecoverCreating(const codec::TenantRecord& rec,
                                    const std::set<std::pair<std::string, uint64_t>>& audited) {
  if (damaged_shards_.count(rec.shard)) {
    // Whether its family holds rows cannot be known: nothing is rolled
    // back (decision 0034); the tenant waits, damaged, for its shard.
    auto t = LoadTenant(rec);
    MarkOnDamagedShard(t.get());
    std::unique_lock<std::shared_mutex> m(map_mu_);
    tenants_[rec.tenant_id] = std::move(t);
    return Status::OK();
  }
  Shard* shard = rec.shard < shards_.size() ? shards_[rec.shard].get() : nullptr;
  rocksdb::ColumnFamilyHandle* cf =
      shard ? shard->Find(format::ColumnFamilyName(rec.internal_id, rec.family)) : nullptr;
  if (keyring_.HasTenant(rec.internal_id)) {
    bool rows = false;
    if (cf != nullptr) {
      CV_ASSIGN_OR_RETURN(rows, HasRows(shard, cf));
    }
    // A replayed CREATING value of a tenant whose key was rotated since
    // names family "t<id>", gone: its data is in "t<id>r<n>" (decision
    // 0036). Any family of the id counts.
    for (const auto& name : shard != nullptr ? OwnFamilies(shard, rec.internal_id)
                                             : std::vector<std::string>{}) {
      if (rows) break;
      if (auto* other = shard->Find(name); other != nullptr && other != cf) {
        CV_ASSIGN_OR_RETURN(rows, HasRows(shard, other));
      }
    }
    const bool announced = audited.count({rec.tenant_id, rec.internal_id}) > 0;
    // A copy arriving by a move that never committed: the source still
    // holds the authoritative copy (and its fence lifts when the move is
    // resumed), so this one is discarded, rows and all (decision 0022).
    if (rec.move_state == codec::kMoveIn && !announced) rows = false;
    if (rows || announced) {
      Quarantine(rec, std::string("recovery: the registry says this tenant's create never "
                                  "finished, but ") +
                          (rows ? "its column family holds data under a live key"
                                : "its creation was audited"));
      return Status::OK();
    }
  }
  // A restored copy taken while this tenant was moving in knows nothing of
  // how the move ended: it may have committed in the live store, which
  // reads the same key directory. The copy's partial tenant goes; its key
  // stays, an orphan key here (ReconcileKeys; `keys reconcile --yes` once
  // this copy replaces the live store).
  const bool keep_key = restored_copy_ && rec.move_state == codec::kMoveIn;
  CV_RETURN_IF_ERROR(RollBackCreate(rec, keep_key));
  Audit("create_rolled_back", rec.tenant_id,
        IdText(rec.internal_id) + ": an unfinished create undone at open (no row stored)" +
            (keep_key ? "; a move-in in a restored copy: its key is kept (orphan key)" : ""));
  return Status::OK();
}

// A PURGING record is written only after the purge's own hold checks, so
// finishing it is the purge the operator asked for. With the key still
// there its data is still readable: the call holds are checked again (a
// replayed value must not shred what a hold now covers).
Status Store::Impl::RecoverPurging(codec::TenantRecord rec) {
  if (rec.move_state == codec::kMoveFenced) {
    // A moved_out purge: the destination committed the tenant before this
    // purge began, so its holds travelled with it (decision 0022).
    CV_RETURN_IF_ERROR(FinishPurge(&rec, nullptr, "moved_out", rec.move_peer).status());
    return ActivateTenant(rec);
  }
  if (keyring_.HasTenant(rec.internal_id)) {
    auto t = LoadTenant(rec);
    // A replayed PURGING value from before a key rotation (decision 0036)
    // names a family that is gone; the tenant's data, and any hold placed
    // since, are in another family of the id, which the record's key does
    // not read: a hold there cannot be checked, so nothing is destroyed.
    Shard* shard = t->shard;
    if (shard != nullptr && shard->Find(t->family_name()) == nullptr) {
      for (const auto& name : OwnFamilies(shard, rec.internal_id)) {
        auto* cf = shard->Find(name);
        if (cf == nullptr) continue;
        auto rows = HasRows(shard, cf);
        if (!rows.ok() || *rows) {
          Quarantine(rec, "recovery: an unfinished purge names column family " +
                              t->family_name() + ", which is gone, while " + name +
                              " of the same tenant holds data under a live key");
          return Status::OK();
        }
      }
    }
    if (t->cf != nullptr) {
      TenantRef ref{t, std::shared_lock<std::shared_mutex>(t->life)};
      Status held = CheckNotHeld(ref, "", /*any_call=*/true);
      if (held.code() == Code::kFailedPrecondition) {
        ref.lock.unlock();
        Quarantine(rec, "recovery: an unfinished purge would destroy data that " +
                            held.message());
        return Status::OK();
      }
      CV_RETURN_IF_ERROR(held);
    }
  }
  CV_RETURN_IF_ERROR(FinishPurge(&rec, nullptr, "tenant_purge").status());
  return ActivateTenant(rec);
}

Status Store::Impl::RecoverFamilies() {
  // By name: a tenant's family after a key rotation is "t<id>r<n>", and
  // its earlier ones (a crash left them) are not live (decision 0036).
  std::set<std::pair<uint32_t, std::string>> live;
  {
    std::shared_lock<std::shared_mutex> m(map_mu_);
    for (const auto& [tid, t] : tenants_) {
      if (t->state == TenantState::kActive) live.emplace(t->rec.shard, t->family_name());
    }
  }
  for (auto& shard : shards_) {
    if (!shard) continue;
    for (const auto& name : shard->FamilyNames()) {
      auto id = format::ParseColumnFamilyName(name);
      if (id && live.count({shard->index(), name})) continue;
      if (id && keyring_.HasTenant(*id)) {
        // Its data is readable: only an operator may destroy it
        // (ReconcileKeys); its key is reported as an orphan.
        ReportTampering("", "recovery: column family " + name + " in shard " +
                                std::to_string(shard->index()) +
                                " holds data under a live key but no registry record owns "
                                "it; kept");
        continue;
      }
      // A crash between the family's creation and the registry, or a copy
      // restored after a purge: no key reads it any more.
      CV_RETURN_IF_ERROR(shard->Drop(shard->Find(name)));
      Audit("orphan_family_dropped", "",
            "column family " + name + " in shard " + std::to_string(shard->index()) +
                " dropped at open: no live tenant owns it and no key reads it");
    }
  }
  return Status::OK();
}

std::vector<OrphanKey> Store::Impl::FindOrphanKeys() {
  std::set<uint64_t> owned;
  {
    std::shared_lock<std::shared_mutex> m(map_mu_);
    for (const auto& [tid, t] : tenants_) {
      if (t->state.load() != TenantState::kPurged) owned.insert(t->rec.internal_id);
    }
  }
  std::vector<OrphanKey> out;
  for (const auto& [id, dek] : keyring_.deks) {
    if (owned.count(id.first)) continue;
    OrphanKey o;
    o.internal_id = id.first;
    o.key_version = id.second;
    o.column_family = format::ColumnFamilyName(id.first);
    // A damaged shard may hold its family: never destroy on doubt.
    if (!damaged_shards_.empty()) o.has_rows = true;
    // Every family of the id: "t<id>", and "t<id>r<n>" after a key
    // rotation (decision 0036), where the data of a rotated tenant lives.
    for (const auto& s : shards_) {
      if (!s) continue;
      for (const auto& name : OwnFamilies(s.get(), id.first)) {
        rocksdb::ColumnFamilyHandle* cf = s->Find(name);
        if (cf == nullptr) continue;
        // A scan error counts as "has rows" / "held": never destroy on doubt.
        auto rows = HasRows(s.get(), cf);
        const bool has = !rows.ok() || *rows;
        auto held = HasPrefix(s.get(), cf, std::string(1, format::kCallHoldPrefix));
        o.call_holds = o.call_holds || !held.ok() || *held;
        if (!o.has_column_family || has) {  // named: the one holding data
          o.column_family = name;
          o.shard = s->index();
        }
        o.has_column_family = true;
        o.has_rows = o.has_rows || has;
      }
    }
    out.push_back(std::move(o));
  }
  return out;
}

Result<KeyReconcileReport> Store::Impl::ReconcileKeys(
    bool dry_run, const std::vector<uint64_t>& destroy_with_data) {
  std::lock_guard<std::mutex> l(admin_mu_);
  KeyReconcileReport report;
  report.dry_run = dry_run;
  report.orphan_keys = FindOrphanKeys();
  if (dry_run || report.orphan_keys.empty()) return report;
  // Data this store still reads under an orphan key is destroyed only on
  // the operator's explicit word, and never under a legal hold: the store
  // directory alone (a deleted or replayed registry row) must not be able
  // to turn a live tenant into something this call shreds.
  for (const auto& o : report.orphan_keys) {
    if (o.call_holds) {
      return Status::FailedPrecondition(
          IdText(o.internal_id) + ": a legal hold covers a call in its column family; restore "
          "the registry record that owned it (from a backup) instead; nothing destroyed");
    }
    if (o.has_rows && std::find(destroy_with_data.begin(), destroy_with_data.end(),
                                o.internal_id) == destroy_with_data.end()) {
      return Status::FailedPrecondition(
          IdText(o.internal_id) + ": its column family still holds data this key reads (a live "
          "tenant whose registry record was deleted or replaced looks like this); restore that "
          "record if you can, or name the id to destroy it anyway (--with-data " +
          std::to_string(o.internal_id) + "); nothing destroyed");
    }
  }
  // 1. Crypto-shred, as a purge does: a keyring without the keys under a
  //    new KEK generation; the old KEK destroyed (in CommitKeyring).
  std::map<uint64_t, std::vector<uint32_t>> versions;
  Keyring next = keyring_.Clone();
  for (const auto& o : report.orphan_keys) versions[o.internal_id].push_back(o.key_version);
  for (const auto& [id, v] : versions) next.RemoveTenant(id);
  const uint32_t retired = keyring_.kek_generation;
  rocksdb::WriteBatch deferred;  // the keyring generation, with the first receipt
  CV_RETURN_IF_ERROR(CommitKeyring(std::move(next), /*rotate=*/true, &deferred));
  CV_KILL_POINT("reconcile.after_shred");
  // 2. Drop their families (unreadable now); 3. one receipt per internal id.
  bool first = true;
  for (const auto& [id, v] : versions) {
    Receipt r;
    r.kind = "orphan_key_destroyed";
    r.tenant_internal_id = id;
    r.column_family = format::ColumnFamilyName(id);
    r.key_versions_destroyed = v;
    r.kek_generation_retired = retired;
    for (const auto& o : report.orphan_keys) {
      if (o.internal_id == id && o.has_column_family) r.column_family = o.column_family;
    }
    for (auto& shard : shards_) {
      if (!shard) continue;
      for (const auto& name : OwnFamilies(shard.get(), id)) {
        rocksdb::ColumnFamilyHandle* cf = shard->Find(name);
        if (cf == nullptr) continue;
        uint64_t keys = 0, sst = 0, blobs = 0;
        shard->db()->GetIntProperty(cf, "rocksdb.estimate-num-keys", &keys);
        shard->db()->GetIntProperty(cf, "rocksdb.live-sst-files-size", &sst);
        shard->db()->GetIntProperty(cf, "rocksdb.live-blob-file-size", &blobs);
        r.shard = shard->index();
        r.records += keys;
        r.bytes += sst + blobs;
        CV_RETURN_IF_ERROR(shard->Drop(cf));
      }
    }
    r.kek_generation_current = keyring_.kek_generation;
    r.keyring_generation = keyring_.generation;
    CV_ASSIGN_OR_RETURN(Receipt done, AppendReceipt(std::move(r), nullptr,
                                                    first ? &deferred : nullptr));
    first = false;
    Audit("orphan_key_destroyed", "",
          IdText(id) + " receipt=" + std::to_string(done.sequence));
    report.receipts.push_back(std::move(done));
  }
  Audit("key_rotation", "", "kek_generation " + std::to_string(retired) + " destroyed, " +
                                std::to_string(keyring_.kek_generation) + " current");
  return report;
}

Status Store::Impl::ReinstateTenant(std::string_view tenant_id) {
  CV_RETURN_IF_ERROR(validate::Id("tenant_id", tenant_id));
  std::lock_guard<std::mutex> l(admin_mu_);
  CV_ASSIGN_OR_RETURN(std::shared_ptr<Tenant> t, FindTenant(tenant_id));
  if (!t->quarantined.load()) return Status::FailedPrecondition("tenant is not quarantined");
  std::unique_lock<std::shared_mutex> life(t->life);
  if (t->cf == nullptr) {
    return Status::FailedPrecondition(
        "cannot reinstate: the tenant's key or column family is missing; purge it instead");
  }
  codec::TenantRecord rec = t->Record();
  rec.state = TenantState::kActive;
  CV_RETURN_IF_ERROR(WriteRegistry(rec));
  {
    std::lock_guard<std::mutex> r(t->rec_mu);
    t->rec = rec;
  }
  t->quarantined = false;
  Audit("tenant_reinstated", rec.tenant_id, IdText(rec.internal_id));
  return Status::OK();
}

}  // namespace callvault
