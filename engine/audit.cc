// The audit log: security-relevant events, sealed in the metadata instance
// and chained by hash; plus the background runner.
#include <nlohmann/json.hpp>

#include "engine/codec.h"
#include "engine/crypto.h"
#include "engine/fs_util.h"
#include "engine/store_impl.h"
#include "format/coding.h"

namespace callvault {

std::string AuditEvent::Canonical() const {
  nlohmann::json j;
  j["sequence"] = sequence;
  j["time"] = time;
  j["kind"] = kind;
  j["tenant_id"] = tenant_id;
  j["detail"] = detail;
  j["prev_hash"] = prev_hash;
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

Status VerifyAuditChain(const std::vector<AuditEvent>& events) {
  for (size_t i = 0; i < events.size(); ++i) {
    const AuditEvent& e = events[i];
    const std::string where = "audit event at position " + std::to_string(i + 1) + " (sequence " +
                              std::to_string(e.sequence) + "): ";
    if (i > 0) {
      if (e.sequence != events[i - 1].sequence + 1) {
        return Status::Corruption(where + "out of sequence (an event is missing or reordered)");
      }
      if (e.prev_hash != crypto::Hex(crypto::Hash32(events[i - 1].Canonical()))) {
        return Status::Corruption(where + "does not chain to the previous event (edited)");
      }
    } else if (e.sequence == 1 && !e.prev_hash.empty()) {
      return Status::Corruption(where + "the first event must not name a predecessor");
    }
  }
  return Status::OK();
}

void Store::Impl::Audit(std::string kind, std::string_view tenant_id, std::string detail) {
  AuditEvent e;
  {
    std::lock_guard<std::mutex> l(audit_mu_);
    e.sequence = audit_seq_ + 1;
    e.time = NowMicros();  // evidence: the system clock, not Options::clock
    e.kind = std::move(kind);
    e.tenant_id = std::string(tenant_id);
    e.detail = std::move(detail);
    e.prev_hash = audit_last_hash_;
    // A read-only open writes nothing: the event goes to the callback only.
    if (!read_only()) {
      const std::string key = format::AuditKey(e.sequence);
      rocksdb::WriteBatch b;
      Status s = fsutil::FromRocks(
          b.Put(key, record::Seal(store_data_key_, record::Binding{}, key, codec::EncodeAudit(e))),
          "audit batch");
      if (s.ok()) s = fsutil::FromRocks(b.Put(format::HeaderKey("audit_seq"), std::to_string(e.sequence)), "audit batch");
      if (s.ok()) s = fsutil::FromRocks(meta_->Write(meta_write_, &b), "write audit event");
      if (!s.ok()) {
        ++audit_failures_;
      } else {
        audit_seq_ = e.sequence;
        audit_last_hash_ = crypto::Hex(crypto::Hash32(e.Canonical()));
      }
    }
  }
  if (e.kind == "auth_failure" && res_ != nullptr) {
    res_->metrics.audit_auth_failures.fetch_add(1, std::memory_order_relaxed);
  }
  // The logger sees the event without its tenant id (detail holds none).
  // Damage, loss and failures of every kind (tenant_damaged, shard_damaged,
  // signing_key_damaged, wal_damage, shard_loss, metadata_loss,
  // background_error, auth_failure, ...) warn; damage_accepted does not.
  const std::string_view k = e.kind;
  auto ends = [k](std::string_view x) { return k.size() >= x.size() && k.substr(k.size() - x.size()) == x; };
  const bool alarm = ends("_damaged") || ends("_damage") || ends("_loss") || ends("_error") ||
                     k.find("fail") != std::string_view::npos;
  Log(alarm ? LogLevel::kWarn : LogLevel::kInfo,
      "audit event " + std::to_string(e.sequence) + " " + e.kind + ": " + e.detail);
  if (options_.audit_callback) options_.audit_callback(e);
}

Status Store::Impl::LoadAudit() {
  auto s = GetHeader("audit_seq");
  uint64_t seq = 0;
  if (s.ok()) {
    for (char c : *s) {
      if (c < '0' || c > '9') return Status::Corruption("store header: bad audit_seq");
      seq = seq * 10 + static_cast<uint64_t>(c - '0');
    }
  }
  {
    std::lock_guard<std::mutex> l(audit_mu_);
    audit_seq_ = seq;
    if (seq > 0) {
      const std::string key = format::AuditKey(seq);
      std::string sealed, plain;
      CV_RETURN_IF_ERROR(fsutil::FromRocks(meta_->Get(rocksdb::ReadOptions(), key, &sealed), "read audit log"));
      CV_RETURN_IF_ERROR(record::Open(store_data_key_, record::Binding{}, key, sealed, &plain));
      AuditEvent last;
      CV_RETURN_IF_ERROR(codec::DecodeAudit(plain, &last));
      audit_last_hash_ = crypto::Hex(crypto::Hash32(last.Canonical()));
    }
  }
  if (read_only()) return Status::OK();  // folded in by the next writable open
  // Fold in keyring failures seen while the keys could not open.
  const std::string prefix(1, format::kPendingFailurePrefix);
  std::unique_ptr<rocksdb::Iterator> it(meta_->NewIterator(rocksdb::ReadOptions()));
  std::vector<std::pair<std::string, std::string>> pending;
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    pending.emplace_back(it->key().ToString(), it->value().ToString());
  }
  CV_RETURN_IF_ERROR(fsutil::FromRocks(it->status(), "read pending failures"));
  for (const auto& [key, detail] : pending) {
    Audit("keyring_auth_failure", "", detail);
    CV_RETURN_IF_ERROR(fsutil::FromRocks(meta_->Delete(meta_write_, key), "clear pending failure"));
  }
  return Status::OK();
}

void Store::Impl::RecordKeyringFailure(const Status& s) {
  const int64_t now = NowMicros();
  std::string detail = std::string(CodeName(s.code())) + ": " + s.message();
  if (meta_ && !read_only()) {
    std::string key(1, format::kPendingFailurePrefix);
    format::PutFixed64BE(&key, static_cast<uint64_t>(now));
    key += crypto::RandomString(8);
    meta_->Put(meta_write_, key, detail).PermitUncheckedError();
  }
  if (options_.audit_callback) {
    AuditEvent e;
    e.time = now;
    e.kind = "keyring_auth_failure";
    e.detail = detail;
    options_.audit_callback(e);
  }
}

Status Store::Impl::Observe(Status s, const char* op, std::string_view tenant_id) {
  if (s.code() == Code::kCorruption) Audit("auth_failure", tenant_id, std::string(op) + ": " + s.message());
  // A damaged SST, blob file or block of the tenant: it stays refused until
  // an operator acts (decision 0014), not just this once.
  if (IsStorageCorruption(s)) {
    auto t = FindTenant(tenant_id);
    if (t.ok() && (*t)->state.load() == TenantState::kActive) {
      MarkDamaged(*t, std::string(op) + " met damaged files of its column family: " + s.message());
    }
  }
  PollDamagedFamilies();
  return s;
}

Result<std::vector<AuditEvent>> Store::Impl::ListAudit(int64_t since, std::string_view kind) {
  std::vector<AuditEvent> out;
  const std::string prefix(1, format::kAuditPrefix);
  std::unique_ptr<rocksdb::Iterator> it(meta_->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    std::string plain;
    CV_RETURN_IF_ERROR(record::Open(store_data_key_, record::Binding{}, it->key().ToStringView(),
                                    it->value().ToStringView(), &plain));
    AuditEvent e;
    CV_RETURN_IF_ERROR(codec::DecodeAudit(plain, &e));
    if (e.time >= since && (kind.empty() || e.kind == kind)) out.push_back(std::move(e));
  }
  CV_RETURN_IF_ERROR(fsutil::FromRocks(it->status(), "read audit log"));
  return out;
}

void Store::Impl::StartBackground() {
  if (options_.background_interval_seconds == 0) return;
  bg_thread_ = std::thread([this] {
    std::unique_lock<std::mutex> l(bg_mu_);
    while (!bg_stop_) {
      bg_cv_.wait_for(l, std::chrono::seconds(options_.background_interval_seconds));
      if (bg_stop_) break;
      l.unlock();
      const int64_t now = Now();
      auto purged = RunScheduledPurges(now);
      if (!purged.ok()) Audit("background_error", "", "scheduled purges: " + purged.status().ToString());
      auto swept = RunRetention(now, /*dry_run=*/false);
      if (!swept.ok()) Audit("background_error", "", "retention: " + swept.status().ToString());
      l.lock();
    }
  });
}

void Store::Impl::StopBackground() {
  {
    std::lock_guard<std::mutex> l(bg_mu_);
    bg_stop_ = true;
  }
  bg_cv_.notify_all();
  if (bg_thread_.joinable()) bg_thread_.join();
}

}  // namespace callvault
