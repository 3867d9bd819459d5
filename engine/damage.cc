// Damaged tenants (docs/decisions/0014): what the WAL scan at open found,
// what a read or a compaction met in a tenant's files, the durable mark
// (meta key `B`, docs/format.md) that keeps the tenant refused across
// reopens, and the operator's way out (AcceptTenantDamage; or PurgeTenant).
#include <rocksdb/env.h>

#include <algorithm>

#include "engine/close_mark.h"
#include "engine/fs_util.h"
#include "engine/store_impl.h"
#include "engine/validate.h"
#include "engine/wal_scan.h"
#include "format/coding.h"

namespace callvault {

std::string DamageKey(uint64_t internal_id) {
  std::string key(1, format::kDamagePrefix);
  format::PutFixed64BE(&key, internal_id);
  return key;
}

bool Store::Impl::IsStorageCorruption(const Status& s) {
  // RocksDB's own corruption statuses read "Corruption: ..." (FromRocks
  // keeps them); a record that fails authentication reads "corruption".
  return s.code() == Code::kCorruption && s.message().find("Corruption: ") != std::string::npos;
}

namespace {

// The metadata instance against its mark in CLOSE_MARK (decision 0035),
// before it opens: only while CURRENT names the mark's MANIFEST (no open
// since the close that wrote it). "" when nothing is lost.
Result<std::string> MetaLoss(rocksdb::FileSystem* fs, const std::string& root,
                             const walscan::ManifestInfo& manifest, const walscan::ScanResult& scan) {
  CloseMark file;
  bool present = false;
  CV_RETURN_IF_ERROR(ReadCloseMark(fs, root, &file, &present));
  if (!present || !file.meta || file.meta->manifest.empty() ||
      manifest.name != file.meta->manifest) {
    // No mark for this open (consumed, or none after a crash): the WAL
    // ledger's entry (decision 0042), at every open, by 0040/0041's rules:
    // a listed WAL that is shorter, or gone at or above the MANIFEST's
    // replay floor, lost acknowledged writes.
    WalLedger ledger;
    bool there = false;
    CV_RETURN_IF_ERROR(ReadWalLedger(fs, root, &ledger, &there));
    if (!there || !ledger.meta || ledger.meta->empty()) return std::string();
    return CheckMarkFiles(fs, root + "/meta", manifest, LedgerMark(*ledger.meta, ledger.meta_edges));
  }
  CV_ASSIGN_OR_RETURN(std::string why, CheckMarkFiles(fs, root + "/meta", manifest, *file.meta));
  if (scan.last_sequence < file.meta->sequence) {
    why += std::string(why.empty() ? "" : "; ") + "the WAL files replay to sequence number " +
           std::to_string(scan.last_sequence) + ", " + std::to_string(file.meta->sequence) +
           " at the last close";
  }
  return why;
}

// The audit callback only: the audit log lives in the metadata instance,
// which a store stopped for its damage never opens (or cannot trust).
void TellCallback(const Options& options, const std::string& kind, const std::string& detail) {
  if (!options.audit_callback) return;
  AuditEvent e;
  e.time = NowMicros();
  e.kind = kind;
  e.detail = detail + " (store not opened)";
  options.audit_callback(e);
}

}  // namespace

// (decision 0042) A stale mark is older than the last writable open that
// consumed one; a mark above the counter was written after writes the
// metadata instance no longer has (its counter was durable before the
// file was written), or is not this store's.
Status CheckCloseCounter(rocksdb::FileSystem* fs, const std::string& root, rocksdb::DB* meta,
                         const Options& options, bool* stale, std::string* what) {
  *stale = false;
  CloseMark file;
  bool present = false;
  CV_RETURN_IF_ERROR(ReadCloseMark(fs, root, &file, &present));
  if (!present || !file.counter) return Status::OK();
  CV_ASSIGN_OR_RETURN(uint64_t counter, ReadCloseCounter(meta));
  if (*file.counter < counter) {
    *stale = true;
    *what = std::string(kCloseMarkFile) + " is stale: its close counter is " +
            std::to_string(*file.counter) + ", the metadata instance's " + std::to_string(counter) +
            " (a later writable open consumed it; put back from an older close): ignored; the "
            "WAL ledger checks the shards";
    return Status::OK();
  }
  if (*file.counter == counter) return Status::OK();
  const std::string lost = "metadata instance damaged: acknowledged writes lost: " +
                           std::string(kCloseMarkFile) + " was written by the clean close of session " +
                           std::to_string(*file.counter) + ", and the metadata instance counts " +
                           std::to_string(counter) + " (" + kCloseCounterField +
                           "): it lost the writes since (restored from an older copy, or cut)";
  TellCallback(options, "metadata_loss", lost);
  return Status::Corruption(lost +
                            "; the store does not open without them: restore it from a backup "
                            "(a CLOSE_MARK that is not this store's may be removed knowingly; "
                            "docs/operations.md, \"Close mark\")");
}

Status Store::Impl::ScanMetaWal(bool read_only, std::unique_ptr<ManifestTailCut>* cut) {
  rocksdb::FileSystem* fs = res_->env->GetFileSystem().get();
  const std::string mark_file = ReadManifestMarkFile(fs, path_ + "/meta");
  const walscan::ManifestInfo manifest = walscan::ReadCurrentManifest(fs, path_ + "/meta");
  if (cut != nullptr) {
    *cut = std::make_unique<ManifestTailCut>(res_->close_check.get(), path_ + "/meta", mark_file,
                                             manifest);
    if (!(*cut)->lost().empty()) {
      const std::string what = "metadata instance damaged: acknowledged writes lost: " + (*cut)->lost();
      TellCallback(options_, "metadata_loss", what);
      return Status::Corruption(what +
                                "; the store does not open without them: restore it from a "
                                "backup (docs/operations.md, \"Damaged metadata\")");
    }
  }
  CV_RETURN_IF_ERROR(walscan::RefuseManifest(manifest, "metadata instance", read_only));
  CV_ASSIGN_OR_RETURN(walscan::ScanResult scan,
                      walscan::ScanDirectory(fs, path_ + "/meta", false, false, &manifest));
  res_->CountWalScan(scan);
  if (scan.damage.empty() && scan.sequence_regress.empty()) {
    CV_ASSIGN_OR_RETURN(std::string lost, MetaLoss(fs, path_, manifest, scan));
    if (lost.empty()) return Status::OK();
    const std::string what = "metadata instance damaged: acknowledged writes lost: " + lost;
    TellCallback(options_, "metadata_loss", what);
    return Status::Corruption(what +
                              "; the store does not open without them: restore it from a backup "
                              "(docs/operations.md, \"Damaged metadata\")");
  }
  const std::string what =
      "metadata instance: " +
      (scan.damage.empty() ? scan.sequence_regress +
                                 " (a WAL file of another history, planted or restored here)"
                           : scan.damage.front().Describe());
  TellCallback(options_, "wal_damage", what);
  return Status::Corruption(what +
                            "; the store does not open without the lost records: restore it "
                            "from a backup (docs/operations.md, \"Damaged metadata\")");
}

Status Store::Impl::LoadDamage() {
  std::unique_ptr<rocksdb::Iterator> it(meta_->NewIterator(rocksdb::ReadOptions()));
  const std::string prefix(1, format::kDamagePrefix);
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    if (it->key().size() != 1 + 8) return Status::Corruption("damage mark: bad key");
    std::string why;
    CV_RETURN_IF_ERROR(record::Open(store_data_key_, record::Binding{}, it->key().ToStringView(),
                                    it->value().ToStringView(), &why));
    damage_marks_[format::DecodeFixed64BE(it->key().data() + 1)] = std::move(why);
  }
  return fsutil::FromRocks(it->status(), "read damage marks");
}

Status Store::Impl::RecordWalDamage() {
  std::lock_guard<std::mutex> l(admin_mu_);
  // Read only when a shard's damage is not attributed: "every tenant of the
  // shard" is every tenant the registry places there, not only the
  // families RocksDB opened (a lost MANIFEST edit can take a family with it).
  std::vector<codec::TenantRecord> registry;
  bool registry_read = false;
  // Losses an open found against the marks and did not get to record (it
  // failed after the shards opened, decision 0039): header fields
  // `shard_loss.<i>`, recorded here as the shard's own finding would be,
  // then consumed. For a shard that does not open, consumed unrecorded:
  // its tenants are refused at every open while it does not (decision
  // 0034), and once its files are restored their state is the truth.
  std::vector<uint32_t> consumed;
  for (uint32_t index = 0; index < shards_.size(); ++index) {
    const auto& shard = shards_[index];
    auto pending = GetHeader(ShardLossField(index));
    if (!pending.ok() && pending.status().code() != Code::kNotFound) return pending.status();
    if (pending.ok()) consumed.push_back(index);
    if (!shard) continue;
    std::vector<WalDamage> findings = shard->wal_damage();
    if (pending.ok()) {
      const bool seen = std::any_of(findings.begin(), findings.end(),
                                    [](const WalDamage& d) { return d.kind == "shard_loss"; });
      if (!seen) {
        WalDamage w;
        w.kind = "shard_loss";
        w.description = *pending + " (found by an earlier open that failed before recording it)";
        w.all_families = true;
        findings.push_back(std::move(w));
      }
    }
    if (findings.empty()) continue;
    for (const auto& d : findings) {
      std::vector<std::string> families = d.all_families ? shard->FamilyNames() : d.families;
      if (d.all_families) {
        if (!registry_read) {
          CV_RETURN_IF_ERROR(LoadRegistry(&registry));
          registry_read = true;
        }
        for (const auto& rec : registry) {
          const std::string name = format::ColumnFamilyName(rec.internal_id, rec.family);
          if (rec.shard == shard->index() && rec.state == TenantState::kActive &&
              std::find(families.begin(), families.end(), name) == families.end()) {
            families.push_back(name);
          }
        }
      }
      std::string ids;
      for (const auto& name : families) {
        auto id = format::ParseColumnFamilyName(name);
        if (!id) continue;
        const std::string why =
            d.description + (!d.all_families           ? ""
                             : d.kind == "file_damage" ? " (the damaged file could not be "
                                                         "identified: every tenant of the shard)"
                                                       : " (the lost records could not all be "
                                                         "attributed: every tenant of the shard)");
        if (!read_only()) {
          const std::string key = DamageKey(*id);
          CV_RETURN_IF_ERROR(fsutil::FromRocks(
              meta_->Put(meta_write_, key, record::Seal(store_data_key_, record::Binding{}, key, why)),
              "write damage mark"));
        }
        damage_marks_[*id] = why;
        ids += (ids.empty() ? "" : ",") + std::to_string(*id);
      }
      Audit(d.kind, "", d.description + "; tenants marked damaged: internal_ids=" +
                                  (ids.empty() ? "none" : ids));
    }
    // The marks are durable: retire the damaged WAL, so that later opens
    // neither scan nor replay it again.
    if (!read_only()) {
      CV_RETURN_IF_ERROR(shard->FlushAll());
      CV_RETURN_IF_ERROR(shard->DropWalEvidence());
    }
  }
  if (!read_only() && !consumed.empty()) {
    rocksdb::WriteBatch b;
    for (uint32_t i : consumed) {
      CV_RETURN_IF_ERROR(fsutil::FromRocks(b.Delete(format::HeaderKey(ShardLossField(i))),
                                           "shard loss batch"));
    }
    CV_RETURN_IF_ERROR(fsutil::FromRocks(meta_->Write(meta_write_, &b), "consume shard losses"));
  }
  // The high-water marks were checked (decision 0015) and what they found
  // is durable: they are consumed. A mark is valid for the first open after
  // the close that wrote it only: RocksDB may later delete a WAL that held
  // only a dropped family's writes without keeping its sequence numbers,
  // and a crash leaves no new mark to replace a stale one. The close
  // counter (decision 0042) is raised in the same synced batch, before
  // CLOSE_MARK is unlinked: a copy of the file put back later (after this
  // session flushed, purged, crashed) is below it and ignored. Every
  // writable open that gets here raises it, so each session that closes
  // cleanly writes its own number.
  if (!read_only()) {
    rocksdb::WriteBatch b;
    for (uint32_t i : shard_marks_) {
      CV_RETURN_IF_ERROR(fsutil::FromRocks(b.Delete(format::HeaderKey(ShardMarkField(i))),
                                           "shard mark batch"));
    }
    CV_ASSIGN_OR_RETURN(uint64_t counter, ReadCloseCounter(meta_.get()));
    if (counter < UINT64_MAX) ++counter;  // (2^64 - 1 writable opens: it stays)
    CV_RETURN_IF_ERROR(fsutil::FromRocks(
        b.Put(format::HeaderKey(kCloseCounterField), std::to_string(counter)), "shard mark batch"));
    CV_RETURN_IF_ERROR(fsutil::FromRocks(meta_->Write(meta_write_, &b), "consume close marks"));
    shard_marks_.clear();
  }
  // The WAL ledger (decision 0040) is kept, but what this open found is
  // durable now: the entries of every shard that opened are set to what its
  // WAL files hold now (a loss reported once, not at every open; a WAL that
  // RocksDB deleted dropped). A crash before this reports the loss again.
  if (!read_only()) {
    rocksdb::FileSystem* fs = res_->env->GetFileSystem().get();
    WalLedger ledger;
    bool present = false;
    CV_RETURN_IF_ERROR(ReadWalLedger(fs, path_, &ledger, &present));
    bool changed = false;
    for (auto& [i, wals] : ledger.shards) {
      if (i >= shards_.size() || !shards_[i]) continue;
      std::vector<std::pair<std::string, uint64_t>> now;
      std::map<std::string, std::string> edges;
      const std::map<std::string, std::string>& listed = ledger.shard_edges[i];
      for (const auto& [name, size] : wals) {
        uint64_t got = 0;
        const std::string path = shards_[i]->path() + "/" + name;
        rocksdb::IOStatus st = fs->GetFileSize(path, rocksdb::IOOptions(), &got, nullptr);
        if (st.IsNotFound() || st.IsPathNotFound()) continue;
        CV_RETURN_IF_ERROR(fsutil::FromIO(st, "WAL ledger: size of " + name));
        now.emplace_back(name, std::min(got, size));
        // The edges of the file as it is now (decision 0050), for an entry
        // that had them: a different file was refused or reported above.
        // An entry without (from a v1 or v2 ledger) gets none here: this
        // open checked it by its size only, so its content is not vouched
        // for; the next clean close lists it with its edges.
        if (listed.count(name) == 0) continue;
        auto digest = ReadWalEdgeDigest(fs, path, std::min(got, size));
        if (digest.status().code() == Code::kNotFound) {
          now.pop_back();  // deleted since (RocksDB, after a flush)
          continue;
        }
        CV_RETURN_IF_ERROR(digest.status());
        edges[name] = std::move(*digest);
      }
      if (now != wals || edges != listed) {
        wals = std::move(now);
        ledger.shard_edges[i] = std::move(edges);
        changed = true;
      }
    }
    if (present && changed) CV_RETURN_IF_ERROR(WriteWalLedger(fs, path_, ledger));
  }
  // The close mark file the same (decision 0035), with the temp file of a
  // close that failed or crashed while writing it.
  if (!read_only()) {
    rocksdb::FileSystem* fs = res_->env->GetFileSystem().get();
    bool removed = false;
    for (const char* name : {kCloseMarkTemp, kCloseMarkFile}) {
      if (!fs->FileExists(path_ + "/" + name, rocksdb::IOOptions(), nullptr).ok()) continue;
      CV_RETURN_IF_ERROR(fsutil::Remove(fs, path_, name, /*sync_dir=*/false));
      removed = true;
    }
    if (removed) CV_RETURN_IF_ERROR(fsutil::SyncDir(fs, path_));
  }
  return Status::OK();
}

void Store::Impl::MarkDamaged(const std::shared_ptr<Tenant>& t, const std::string& why,
                              bool report) {
  if (t->damaged.exchange(true)) return;
  {
    std::lock_guard<std::mutex> l(t->rec_mu);
    t->damage = why;
  }
  if (read_only() && report) ReportDamage(*t, why);  // decision 0020
  if (!read_only()) {
    const std::string key = DamageKey(t->rec.internal_id);
    Status s = fsutil::FromRocks(
        meta_->Put(meta_write_, key, record::Seal(store_data_key_, record::Binding{}, key, why)),
        "write damage mark");
    if (!s.ok()) audit_failures_.fetch_add(1);
    std::shared_lock<std::shared_mutex> life(t->life);
    if (t->cf != nullptr && t->shard != nullptr) t->shard->DisableCompactions(t->cf, true).IgnoreError();
  }
  Audit("tenant_damaged", t->rec.tenant_id, why);
}

void Store::Impl::PollDamagedFamilies() {
  std::vector<std::pair<uint32_t, std::map<std::string, std::string>>> found;
  {
    // Every operation's Observe polls: while an administrative operation
    // holds admin_mu_ (a key rotation copying a tenant online, decision
    // 0038; a purge, a move, a backup's cut) the poll is left to a later
    // operation rather than every tenant's reads and writes waiting for it.
    // What compactions reported stays in the shards until then.
    std::unique_lock<std::mutex> l(admin_mu_, std::try_to_lock);
    if (!l.owns_lock()) return;
    for (const auto& s : shards_) {
      if (!s) continue;
      auto f = s->TakeDamagedFamilies();
      if (!f.empty()) found.emplace_back(s->index(), std::move(f));
    }
  }
  for (const auto& [shard, families] : found) {
    for (const auto& [name, msg] : families) {
      auto id = format::ParseColumnFamilyName(name);
      if (!id) continue;
      std::shared_ptr<Tenant> hit;
      {
        std::shared_lock<std::shared_mutex> m(map_mu_);
        for (const auto& [tid, t] : tenants_) {
          if (t->rec.internal_id == *id && t->state.load() == TenantState::kActive) hit = t;
        }
      }
      if (hit) {
        MarkDamaged(hit, "shard " + std::to_string(shard) +
                             ": a compaction of its column family met damaged files: " + msg);
      }
    }
  }
}

Status Store::Impl::AcceptTenantDamage(std::string_view tenant_id) {
  CV_RETURN_IF_ERROR(validate::Id("tenant_id", tenant_id));
  if (!read_only()) CV_RETURN_IF_ERROR(ApplyDamageReports());  // decision 0020
  std::lock_guard<std::mutex> l(admin_mu_);
  CV_ASSIGN_OR_RETURN(std::shared_ptr<Tenant> t, FindTenant(tenant_id));
  // Purged first: a purge removes the mark, so a purged tenant is never damaged.
  if (t->state.load() != TenantState::kActive) return Status::TenantPurged("tenant purged");
  if (!t->damaged.load()) return Status::FailedPrecondition("tenant is not damaged");
  if (damaged_shards_.count(t->rec.shard)) {
    return Status::FailedPrecondition(
        "the tenant's shard does not open: there is nothing to accept the loss of; restore the "
        "store from a backup, or purge the tenant (docs/operations.md)");
  }
  CV_RETURN_IF_ERROR(fsutil::FromRocks(meta_->Delete(meta_write_, DamageKey(t->rec.internal_id)),
                                       "delete damage mark"));
  std::string what;
  {
    std::lock_guard<std::mutex> r(t->rec_mu);
    what = std::exchange(t->damage, std::string());
  }
  {
    std::shared_lock<std::shared_mutex> life(t->life);
    if (t->cf != nullptr && t->shard != nullptr) t->shard->DisableCompactions(t->cf, false).IgnoreError();
  }
  t->damaged = false;
  damage_marks_.erase(t->rec.internal_id);
  Audit("damage_accepted", tenant_id, "operator accepted the loss: " + what);
  return Status::OK();
}

}  // namespace callvault
