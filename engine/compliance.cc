// The compliance lifecycle: churn with a grace period, retention with
// workspace overrides and pinned calls, legal holds. docs/operations.md.
#include <rocksdb/write_batch.h>

#include <map>
#include <set>

#include "callvault/limits.h"
#include "engine/calls_internal.h"
#include "engine/codec.h"
#include "engine/crypto.h"
#include "engine/fs_util.h"
#include "engine/indexing.h"
#include "engine/kill_point.h"
#include "engine/store_impl.h"
#include "engine/validate.h"
#include "format/coding.h"
#include "format/summary.h"

namespace callvault {

namespace {

constexpr int64_t kMicrosPerDay = int64_t{86400} * 1'000'000;
constexpr size_t kMaxReasonBytes = 1024;
constexpr size_t kRetentionBatch = 100;
constexpr char kHoldDomain = 'H';

std::string HoldKey(const TenantRef& t, std::string_view call_hash, std::string_view hold_id) {
  return format::RecordingKey(format::kCallHoldPrefix, call_hash,
                              crypto::BlindHash(t->index_key, kHoldDomain, hold_id));
}

std::string PinKey(std::string_view call_hash) {
  std::string k(1, format::kPinPrefix);
  k.append(call_hash);
  return k;
}

bool Exists(const TenantRef& t, const std::string& key, Status* st) {
  std::string v;
  rocksdb::Status s = t->shard->db()->Get(rocksdb::ReadOptions(), t->cf, key, &v);
  if (!s.ok() && !s.IsNotFound()) *st = fsutil::FromRocks(s, "read");
  return s.ok();
}

// True if any key starts with `prefix`.
bool AnyWithPrefix(const TenantRef& t, const std::string& prefix, Status* st) {
  // Bounded, so the seek never walks the tombstones of calls a sweep has
  // just deleted beyond the prefix.
  std::string upper = prefix;
  while (!upper.empty() && static_cast<uint8_t>(upper.back()) == 0xff) upper.pop_back();
  if (!upper.empty()) upper.back() = static_cast<char>(upper.back() + 1);
  rocksdb::Slice hi(upper);
  rocksdb::ReadOptions ro;
  if (!upper.empty()) ro.iterate_upper_bound = &hi;
  std::unique_ptr<rocksdb::Iterator> it(t->shard->db()->NewIterator(ro, t->cf));
  it->Seek(prefix);
  bool any = it->Valid() && it->key().starts_with(prefix);
  if (!it->status().ok()) *st = fsutil::FromRocks(it->status(), "scan holds");
  return any;
}

}  // namespace

Status Store::Impl::CheckNotHeld(const TenantRef& t, std::string_view call_hash, bool any_call) {
  {
    std::lock_guard<std::mutex> l(t->rec_mu);
    if (!t->rec.holds.empty()) {
      return Status::FailedPrecondition("a legal hold covers this tenant (hold " +
                                        t->rec.holds.front().hold_id + ")");
    }
  }
  Status st;
  std::string prefix(1, format::kCallHoldPrefix);
  if (!any_call) prefix.append(call_hash);
  if (AnyWithPrefix(t, prefix, &st)) {
    return Status::FailedPrecondition(any_call ? "a legal hold covers a call of this tenant"
                                               : "a legal hold covers this call");
  }
  return st;
}

// --- Churn ------------------------------------------------------------------

Status Store::Impl::ScheduleTenantPurge(std::string_view tenant_id, int64_t purge_at) {
  if (purge_at <= 0) return Status::InvalidArgument("purge_at: required, > 0 (microseconds)");
  CV_RETURN_IF_ERROR(validate::Instant("purge_at", purge_at));
  std::lock_guard<std::mutex> l(admin_mu_);
  CV_ASSIGN_OR_RETURN(TenantRef t, Acquire(tenant_id, Access::kRemove));
  codec::TenantRecord rec = t->Record();
  if (rec.purge_at != 0 && Now() >= rec.purge_at) {
    return Status::FailedPrecondition("the scheduled purge's deadline has passed; it can no longer move");
  }
  rec.purge_at = purge_at;
  if (rec.churned_at == 0) rec.churned_at = Now();
  CV_RETURN_IF_ERROR(WriteRegistry(rec));
  {
    std::lock_guard<std::mutex> r(t->rec_mu);
    t->rec.purge_at = rec.purge_at;
    t->rec.churned_at = rec.churned_at;
  }
  Audit("tenant_churned", tenant_id, "purge_at=" + std::to_string(purge_at));
  return Status::OK();
}

Status Store::Impl::CancelTenantPurge(std::string_view tenant_id) {
  std::lock_guard<std::mutex> l(admin_mu_);
  CV_ASSIGN_OR_RETURN(TenantRef t, Acquire(tenant_id, Access::kRemove));
  codec::TenantRecord rec = t->Record();
  if (rec.purge_at == 0) return Status::FailedPrecondition("no purge is scheduled for this tenant");
  if (Now() >= rec.purge_at) {
    return Status::FailedPrecondition("the scheduled purge's deadline has passed");
  }
  rec.purge_at = 0;
  rec.churned_at = 0;
  CV_RETURN_IF_ERROR(WriteRegistry(rec));
  {
    std::lock_guard<std::mutex> r(t->rec_mu);
    t->rec.purge_at = 0;
    t->rec.churned_at = 0;
  }
  Audit("churn_cancelled", tenant_id, "");
  return Status::OK();
}

Result<std::vector<Receipt>> Store::Impl::RunScheduledPurges(int64_t now) {
  CV_RETURN_IF_ERROR(validate::Instant("now", now));
  std::vector<std::string> due;
  {
    std::shared_lock<std::shared_mutex> m(map_mu_);
    for (const auto& [id, t] : tenants_) {
      // A quarantined tenant waits for an operator (decision 0012).
      if (t->state.load() != TenantState::kActive || t->quarantined.load()) continue;
      std::lock_guard<std::mutex> r(t->rec_mu);
      if (t->rec.purge_at != 0 && t->rec.purge_at <= now) due.push_back(id);
    }
  }
  std::vector<Receipt> receipts;
  uint64_t started = 0;
  ReportProgress("purges", "tenants", 0, due.size());
  for (const auto& id : due) {
    if (started++ > 0) ReportProgress("purges", "tenants", started - 1, due.size());
    CV_KILL_POINT("scheduled_purge.before_purge");
    auto r = PurgeTenant(id);
    if (r.ok()) {
      receipts.push_back(std::move(r).value());
    } else if (r.status().code() == Code::kFailedPrecondition) {
      Audit("scheduled_purge_blocked", id, r.status().message());  // held: retried next run
    } else if (r.status().code() != Code::kTenantPurged && r.status().code() != Code::kNotFound) {
      return r.status();
    }
  }
  ReportProgress("purges", "tenants", due.size(), due.size(), /*finished=*/true);
  return receipts;
}

// --- Retention ----------------------------------------------------------------

Status Store::Impl::SetRetention(std::string_view tenant_id, uint32_t days) {
  if (days > limits::kMaxRetentionDays) {
    return Status::InvalidArgument("retention_days: more than " + std::to_string(limits::kMaxRetentionDays));
  }
  std::lock_guard<std::mutex> l(admin_mu_);
  CV_ASSIGN_OR_RETURN(TenantRef t, Acquire(tenant_id, Access::kRemove));
  codec::TenantRecord rec = t->Record();
  rec.retention_days = days;
  CV_RETURN_IF_ERROR(WriteRegistry(rec));
  std::lock_guard<std::mutex> r(t->rec_mu);
  t->rec.retention_days = days;
  return Status::OK();
}

Status Store::Impl::SetWorkspaceRetention(std::string_view tenant_id, std::string_view workspace_id,
                                          std::optional<uint32_t> days) {
  CV_RETURN_IF_ERROR(validate::Id("workspace_id", workspace_id));
  if (days && *days > limits::kMaxRetentionDays) {
    return Status::InvalidArgument("retention_days: more than " + std::to_string(limits::kMaxRetentionDays));
  }
  std::lock_guard<std::mutex> l(admin_mu_);
  CV_ASSIGN_OR_RETURN(TenantRef t, Acquire(tenant_id, Access::kRemove));
  codec::TenantRecord rec = t->Record();
  auto& ws = rec.workspace_retention;
  std::erase_if(ws, [&](const auto& p) { return p.first == workspace_id; });
  if (days) {
    if (ws.size() >= limits::kMaxListItems) return Status::InvalidArgument("workspace_retention: too many overrides");
    ws.emplace_back(std::string(workspace_id), *days);
    std::sort(ws.begin(), ws.end());
  }
  CV_RETURN_IF_ERROR(WriteRegistry(rec));
  std::lock_guard<std::mutex> r(t->rec_mu);
  t->rec.workspace_retention = rec.workspace_retention;
  return Status::OK();
}

Status Store::Impl::SetCallPinned(std::string_view tenant_id, std::string_view call_id, bool pinned) {
  CV_RETURN_IF_ERROR(validate::Id("call_id", call_id));
  CV_ASSIGN_OR_RETURN(TenantRef t, Acquire(tenant_id, Access::kRemove));
  std::lock_guard<std::mutex> w(t->write_mu);
  const std::string h = indexing::CallHash(t->index_key, call_id);
  Call meta;
  uint32_t parts = 0;
  bool found = false;
  CV_RETURN_IF_ERROR(calls::ReadMeta(t, h, &meta, &parts, &found));
  if (!found) return Status::NotFound("no such call");
  const std::string key = PinKey(h);
  rocksdb::WriteOptions wo = WriteOpts();
  if (pinned) {
    return fsutil::FromRocks(t->shard->db()->Put(wo, t->cf, key, record::Seal(t->record_key, t->binding(), key, "")),
                             "pin call");
  }
  return fsutil::FromRocks(t->shard->db()->Delete(wo, t->cf, key), "unpin call");
}

Result<RetentionReport> Store::Impl::RunRetention(int64_t now, bool dry_run) {
  CV_RETURN_IF_ERROR(validate::Instant("now", now));
  RetentionReport report;
  report.now = now;
  report.dry_run = dry_run;
  std::vector<std::string> ids;
  {
    std::shared_lock<std::shared_mutex> m(map_mu_);
    for (const auto& [id, t] : tenants_) {
      if (t->state.load() == TenantState::kActive) ids.push_back(id);
    }
  }
  uint64_t started = 0;
  ReportProgress("retention", "tenants", 0, ids.size());
  for (const auto& id : ids) {
    if (started++ > 0) ReportProgress("retention", "tenants", started - 1, ids.size());
    auto acquired = Acquire(id, Access::kRemove);
    if (!acquired.ok()) {
      // Purged meanwhile, or damaged/quarantined: said in the report, so
      // expired calls kept by damage are not kept silently.
      if (acquired.status().code() == Code::kCorruption) report.tenants_damaged.push_back(id);
      continue;
    }
    TenantRef t = std::move(acquired).value();
    codec::TenantRecord rec = t->Record();
    if (!rec.holds.empty()) {
      ++report.tenants_held;
      continue;
    }
    // Retention per workspace (by summary hash), or the tenant's.
    std::map<std::string, uint32_t> overrides;
    uint32_t longest = rec.retention_days;
    bool any = rec.retention_days != 0;
    for (const auto& [ws, days] : rec.workspace_retention) {
      std::string h = indexing::WorkspaceHash(t->index_key, ws);
      h.resize(format::kShortHashBytes);
      overrides[h] = days;
      any = any || days != 0;
      longest = std::max(longest, days);
    }
    ++report.tenants_swept;
    if (!any) continue;
    // Calls started before the oldest cutoff that could apply are candidates.
    uint32_t shortest = UINT32_MAX;
    if (rec.retention_days) shortest = rec.retention_days;
    for (const auto& [h, d] : overrides) {
      if (d) shortest = std::min(shortest, d);
    }
    const int64_t scan_to = now - static_cast<int64_t>(shortest) * kMicrosPerDay;
    std::unique_lock<std::mutex> w(t->write_mu);
    const std::string lower(1, format::kTimeIndexPrefix);
    std::string upper = lower;
    format::PutOrderedInt64(&upper, scan_to);
    rocksdb::Slice lo(lower), hi(upper);
    rocksdb::ReadOptions ro;
    ro.iterate_lower_bound = &lo;
    ro.iterate_upper_bound = &hi;
    std::unique_ptr<rocksdb::Iterator> it(t->shard->db()->NewIterator(ro, t->cf));
    rocksdb::WriteBatch batch;
    uint64_t removed = 0;
    std::vector<std::string> batch_hashes;  // the tombstone log's entries for `batch`
    std::vector<uint64_t> batch_versions;    // and the versions they remove
    std::vector<ChangeNote> batch_notes;     // its change feed events
    auto flush = [&]() -> Status {
      if (batch.Count() == 0) return Status::OK();
      CV_RETURN_IF_ERROR(AppendChanges(t, batch_notes, &batch));
      rocksdb::WriteOptions wo;
      wo.sync = true;
      {
        // Logged (outside the store) before the removal: a restore of an
        // older backup removes these calls again (backup.cc).
        std::shared_lock<std::shared_mutex> tl(tombstone_mu_);
        CV_RETURN_IF_ERROR(LogTombstones(rec.internal_id, batch_hashes, batch_versions));
        CV_RETURN_IF_ERROR(WriteChanges(t, wo, &batch, "retention delete"));
      }
      batch_hashes.clear();
      batch_versions.clear();
      batch_notes.clear();
      batch.Clear();
      CV_KILL_POINT("retention.after_batch");
      return Status::OK();
    };
    size_t in_batch = 0;
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      auto tail = format::ParseTimeIndexKey(it->key().ToStringView());
      if (!tail) return Status::Corruption("time index holds a malformed key");
      const std::string h(tail->call_hash);
      std::string plain;
      bool found = false;
      CV_RETURN_IF_ERROR(calls::GetSealed(t, rocksdb::ReadOptions(), format::CallKey(h, format::Part::kSummary), &plain, &found));
      if (!found) return Status::Corruption("time index names a missing call");
      auto summary = format::DecodeSummary(plain);
      if (!summary) return Status::Corruption("call summary is malformed");
      uint32_t days = rec.retention_days;
      if (auto o = overrides.find(summary->workspace); !summary->workspace.empty() && o != overrides.end()) {
        days = o->second;
      }
      // The age comes from the sealed summary; an index entry that disagrees
      // with it (stale or forged) never gets a call deleted.
      if (summary->started_at != tail->started_at) continue;
      if (days == 0 || summary->started_at >= now - static_cast<int64_t>(days) * kMicrosPerDay) continue;
      Status st;
      if (Exists(t, PinKey(h), &st)) {
        ++report.calls_kept_pinned;
        continue;
      }
      CV_RETURN_IF_ERROR(st);
      if (AnyWithPrefix(t, format::RecordingKey(format::kCallHoldPrefix, h, ""), &st)) {
        ++report.calls_kept_held;
        continue;
      }
      CV_RETURN_IF_ERROR(st);
      ++removed;
      if (dry_run) continue;
      Call meta;
      uint32_t parts = 0;
      CV_RETURN_IF_ERROR(calls::ReadMeta(t, h, &meta, &parts, &found));
      if (!found) return Status::Corruption("time index names a missing call");
      CV_RETURN_IF_ERROR(calls::PlanDelete(t, meta, h, &batch));
      CV_RETURN_IF_ERROR(fsutil::FromRocks(batch.Delete(t->cf, PinKey(h)), "batch"));
      batch_hashes.push_back(h);
      batch_versions.push_back(meta.version);
      batch_notes.push_back(ChangeNote{ChangeKind::kDelete, ChangeCause::kRetention, meta.call_id,
                                       meta.version});
      if (++in_batch == kRetentionBatch) {
        CV_RETURN_IF_ERROR(flush());
        in_batch = 0;
      }
    }
    CV_RETURN_IF_ERROR(fsutil::FromRocks(it->status(), "scan time index"));
    CV_RETURN_IF_ERROR(flush());
    report.calls_removed += removed;
    if (removed == 0) continue;
    report.removed_by_tenant.emplace_back(id, removed);
    if (dry_run) continue;
    Receipt r;
    r.kind = "retention";
    r.tenant_id = id;
    r.tenant_internal_id = rec.internal_id;
    r.column_family = format::ColumnFamilyName(rec.internal_id, rec.family);
    r.shard = rec.shard;
    r.records = removed;
    it.reset();
    w.unlock();
    t = TenantRef{};  // release the tenant before admin_mu_ (lock order)
    CV_KILL_POINT("retention.before_receipt");
    std::lock_guard<std::mutex> l(admin_mu_);
    r.kek_generation_current = keyring_.kek_generation;
    r.keyring_generation = keyring_.generation;
    CV_ASSIGN_OR_RETURN(Receipt done, AppendReceipt(std::move(r), nullptr));
    Audit("retention_sweep", id, std::to_string(removed) + " calls removed, receipt " + std::to_string(done.sequence));
    report.receipts.push_back(std::move(done));
  }
  ReportProgress("retention", "tenants", ids.size(), ids.size(), /*finished=*/true);
  return report;
}

// --- Legal holds ----------------------------------------------------------------

Status Store::Impl::PlaceHold(std::string_view tenant_id, const Hold& hold_in) {
  Hold hold = hold_in;
  CV_RETURN_IF_ERROR(validate::Id("hold_id", hold.hold_id));
  if (hold.reason.size() > kMaxReasonBytes || !validate::IsUtf8(hold.reason)) {
    return Status::InvalidArgument("reason: more than 1024 bytes or not UTF-8");
  }
  if (!hold.call_id.empty()) CV_RETURN_IF_ERROR(validate::Id("call_id", hold.call_id));
  hold.created_at = NowMicros();  // a recorded time: the system clock
  std::lock_guard<std::mutex> l(admin_mu_);
  CV_ASSIGN_OR_RETURN(TenantRef t, Acquire(tenant_id, Access::kRemove));
  std::lock_guard<std::mutex> w(t->write_mu);
  CV_ASSIGN_OR_RETURN(auto existing, ListHoldsLocked(t));
  for (const auto& h : existing) {
    if (h.hold_id == hold.hold_id) return Status::AlreadyExists("hold id is taken in this tenant");
  }
  if (hold.call_id.empty()) {
    codec::TenantRecord rec = t->Record();
    if (rec.holds.size() >= limits::kMaxListItems) return Status::InvalidArgument("holds: too many");
    rec.holds.push_back(hold);
    CV_RETURN_IF_ERROR(WriteRegistry(rec));
    std::lock_guard<std::mutex> r(t->rec_mu);
    t->rec.holds = rec.holds;
  } else {
    const std::string h = indexing::CallHash(t->index_key, hold.call_id);
    Call meta;
    uint32_t parts = 0;
    bool found = false;
    CV_RETURN_IF_ERROR(calls::ReadMeta(t, h, &meta, &parts, &found));
    if (!found) return Status::NotFound("no such call");
    const std::string key = HoldKey(t, h, hold.hold_id);
    rocksdb::WriteOptions wo;
    wo.sync = true;
    CV_RETURN_IF_ERROR(fsutil::FromRocks(
        t->shard->db()->Put(wo, t->cf, key, record::Seal(t->record_key, t->binding(), key, codec::EncodeHold(hold))),
        "place hold"));
  }
  Audit("hold_placed", tenant_id, "hold " + hold.hold_id + (hold.call_id.empty() ? " on the tenant" : " on one call"));
  return Status::OK();
}

Result<std::vector<Hold>> Store::Impl::ListHoldsLocked(const TenantRef& t) {
  std::vector<Hold> out = t->Record().holds;
  const std::string prefix(1, format::kCallHoldPrefix);
  std::unique_ptr<rocksdb::Iterator> it(t->shard->db()->NewIterator(rocksdb::ReadOptions(), t->cf));
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    std::string plain;
    CV_RETURN_IF_ERROR(t->OpenRecord(it->key().ToStringView(),
                                    it->value().ToStringView(), &plain));
    Hold h;
    CV_RETURN_IF_ERROR(codec::DecodeHold(plain, &h));
    out.push_back(std::move(h));
  }
  CV_RETURN_IF_ERROR(fsutil::FromRocks(it->status(), "list holds"));
  return out;
}

Result<std::vector<Hold>> Store::Impl::ListHolds(std::string_view tenant_id) {
  CV_ASSIGN_OR_RETURN(TenantRef t, Acquire(tenant_id, Access::kInspect));
  return ListHoldsLocked(t);
}

Status Store::Impl::ReleaseHold(std::string_view tenant_id, std::string_view hold_id) {
  CV_RETURN_IF_ERROR(validate::Id("hold_id", hold_id));
  std::lock_guard<std::mutex> l(admin_mu_);
  CV_ASSIGN_OR_RETURN(TenantRef t, Acquire(tenant_id, Access::kRemove));
  std::lock_guard<std::mutex> w(t->write_mu);
  codec::TenantRecord rec = t->Record();
  auto it = std::find_if(rec.holds.begin(), rec.holds.end(), [&](const Hold& h) { return h.hold_id == hold_id; });
  if (it != rec.holds.end()) {
    rec.holds.erase(it);
    CV_RETURN_IF_ERROR(WriteRegistry(rec));
    {
      std::lock_guard<std::mutex> r(t->rec_mu);
      t->rec.holds = rec.holds;
    }
    Audit("hold_released", tenant_id, "hold " + std::string(hold_id) + " on the tenant");
    return Status::OK();
  }
  CV_ASSIGN_OR_RETURN(auto holds, ListHoldsLocked(t));
  for (const auto& h : holds) {
    if (h.hold_id != hold_id || h.call_id.empty()) continue;
    rocksdb::WriteOptions wo;
    wo.sync = true;
    const std::string key = HoldKey(t, indexing::CallHash(t->index_key, h.call_id), hold_id);
    CV_RETURN_IF_ERROR(fsutil::FromRocks(t->shard->db()->Delete(wo, t->cf, key), "release hold"));
    Audit("hold_released", tenant_id, "hold " + std::string(hold_id) + " on one call");
    return Status::OK();
  }
  return Status::NotFound("no such hold");
}

}  // namespace callvault
