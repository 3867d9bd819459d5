// Inspection: verify every record, statistics, receipts, flush, compaction.
#include <rocksdb/cache.h>
#include <rocksdb/env.h>
#include <rocksdb/statistics.h>
#include <rocksdb/write_buffer_manager.h>

#include <filesystem>
#include <map>
#include <set>

#include "engine/calls_internal.h"
#include "engine/codec.h"
#include "engine/crypto.h"
#include "engine/fs_util.h"
#include "engine/store_impl.h"
#include "format/coding.h"
#include "format/summary.h"

namespace callvault {

namespace {

// The metadata instance's rows of move ids received (engine/move.cc's
// kMoveSeenPrefix; docs/format.md "Tenant moves").
constexpr char kMoveSeenKind = 'V';

// Opens and decodes one record of a tenant column family by its key kind.
Status CheckRecord(const TenantRef& t, std::string_view key, std::string_view value) {
  if (key.empty()) return Status::Corruption("empty key");
  if (format::IsIndexKey(key)) {
    // Index entries carry no value (listings check the sealed summary).
    if (!value.empty()) return Status::Corruption("index entry carries a value");
    return Status::OK();
  }
  if (key[0] == format::kRecordingChunkPrefix) return Status::OK();  // checked with the manifest
  if (key[0] == format::kRecordingManifestPrefix) {
    uint64_t chunks = 0;
    return calls::VerifyRecording(t, key, value, &chunks);
  }
  std::string plain;
  CV_RETURN_IF_ERROR(t->OpenRecord(key, value, &plain));
  if (key[0] == format::kCallHoldPrefix) {
    Hold h;
    return codec::DecodeHold(plain, &h);
  }
  if (key[0] == format::kPinPrefix || key[0] == format::kRecordingPendingPrefix) {
    if (!plain.empty()) return Status::Corruption("malformed pin or recording marker");
    return Status::OK();
  }
  if (key[0] == format::kDictionaryPrefix) {
    auto id = format::ParseDictionaryKey(key);
    if (!id) return Status::Corruption("malformed compression dictionary key");
    std::shared_ptr<const compress::Dictionary> d;
    return compress::Dictionary::Create(*id, std::move(plain), &d);
  }
  if (key[0] == format::kVersionCounterPrefix) {
    if (key.size() != 1 || plain.size() != 8) return Status::Corruption("malformed version counter");
    return Status::OK();
  }
  if (key[0] == format::kChangePrefix) return CheckChangeEvent(key, plain);
  if (key[0] == format::kSourceIndexPrefix) {
    if (plain.size() != format::kHashBytes) return Status::Corruption("malformed source index entry");
    return Status::OK();
  }
  auto k = format::ParseCallKey(key);
  if (!k) return Status::Corruption("unknown key kind");
  Call c;
  uint32_t parts = 0;
  switch (k->part) {
    case format::Part::kMeta: return codec::DecodeMeta(plain, &c, &parts);
    case format::Part::kTranscript: return codec::DecodeTranscript(plain, &c);
    case format::Part::kInsights: return codec::DecodeInsights(plain, &c);
    case format::Part::kSummary:
      if (!format::DecodeSummary(plain)) return Status::Corruption("malformed call summary");
      return Status::OK();
  }
  return Status::Corruption("unknown call part");
}

}  // namespace

namespace {

constexpr size_t kMaxFailuresPerScope = 10;

// RocksDB's estimate of the keys of a column family beyond the `read`
// already reached, at least 1 (a stopped scan always leaves something).
uint64_t EstimateRemaining(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf, uint64_t read) {
  uint64_t n = 0;
  if (cf != nullptr) db->GetIntProperty(cf, "rocksdb.estimate-num-keys", &n);
  else db->GetIntProperty("rocksdb.estimate-num-keys", &n);
  return n > read ? n - read : 1;
}

std::string StoppedLine(const std::string& scope, uint64_t read, const Status& why, uint64_t remaining) {
  return scope + ": scan stopped after " + std::to_string(read) + " records: " + why.ToString() +
         "; about " + std::to_string(remaining) + " remaining unchecked";
}

}  // namespace

// Scans each tenant to the end or until its iterator fails; a failure
// stops that tenant's scan only. Audit: one event per tenant and kind of
// failure (bounded), never one per record.
Result<VerifyReport> Store::Impl::Verify(std::optional<std::string_view> tenant_id) {
  std::vector<std::string> ids;
  if (tenant_id) {
    ids.emplace_back(*tenant_id);
  } else {
    std::shared_lock<std::shared_mutex> m(map_mu_);
    // Every tenant not purged: one this open cannot read (mid-create or
    // mid-purge in a read-only open, quarantined) is reported unchecked.
    for (const auto& [id, t] : tenants_) {
      if (t->state.load() != TenantState::kPurged) ids.push_back(id);
    }
  }
  VerifyReport report;
  PollDamagedFamilies();
  CV_RETURN_IF_ERROR(ApplyDamageReports());  // decision 0020
  std::vector<std::pair<std::string, std::string>> met_damage;  // marked after the scans
  uint64_t started = 0;
  ReportProgress("verify", "tenants", 0, ids.size());
  for (const auto& id : ids) {
    if (started++ > 0) ReportProgress("verify", "tenants", started - 1, ids.size());
    // kRemove: a churned tenant's records are checked too (nothing of their
    // content leaves Verify).
    auto t = Acquire(id, Access::kInspect);
    if (!t.ok()) {
      if (tenant_id) return t.status();
      const Code c = t.status().code();
      if (c == Code::kTenantPurged || c == Code::kNotFound) continue;  // purged since
      ++report.records_unchecked;
      report.unchecked.push_back("tenant " + id + ": not checked: " + t.status().ToString());
      continue;
    }
    ++report.tenants;
    std::unique_ptr<rocksdb::Iterator> it((*t)->shard->db()->NewIterator(rocksdb::ReadOptions(), (*t)->cf));
    uint64_t failed_here = 0, read_here = 0;
    // Recordings (call hash + recording hash) seen by chunk, and by manifest
    // or marker: a chunk of neither is an orphan.
    std::set<std::string> chunked, named;
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      ++read_here;
      std::string_view key = it->key().ToStringView();
      const size_t rec_key_bytes = 1 + 2 * format::kHashBytes;
      if (key.size() >= rec_key_bytes && key[0] == format::kRecordingChunkPrefix) {
        chunked.emplace(key.substr(1, rec_key_bytes - 1));
      } else if (key.size() == rec_key_bytes && (key[0] == format::kRecordingManifestPrefix ||
                                                 key[0] == format::kRecordingPendingPrefix)) {
        named.emplace(key.substr(1));
      }
      Status s = CheckRecord(*t, key, it->value().ToStringView());
      if (s.ok()) {
        ++report.records_ok;
      } else {
        ++report.records_failed;
        if (++failed_here <= kMaxFailuresPerScope) report.failures.push_back("tenant " + id + ": " + s.ToString());
      }
    }
    const Status scan = fsutil::FromRocks(it->status(), "scan");
    // Orphan chunks are judged only on a complete scan: a stopped one has
    // not seen every manifest.
    if (scan.ok()) {
      for (const auto& r : chunked) {
        if (named.count(r)) continue;
        ++report.records_failed;
        if (++failed_here <= kMaxFailuresPerScope) {
          report.failures.push_back("tenant " + id + ": corruption: recording chunks without a manifest");
        }
      }
    }
    if (failed_here > 0) {
      Audit("auth_failure", id, "verify: " + std::to_string(failed_here) + " records failed");
    }
    if (IsStorageCorruption(scan)) met_damage.emplace_back(id, scan.message());
    if (!scan.ok()) {
      const uint64_t remaining = EstimateRemaining((*t)->shard->db(), (*t)->cf, read_here);
      report.records_unchecked += remaining;
      report.unchecked.push_back(StoppedLine("tenant " + id, read_here, scan, remaining));
      Audit(scan.code() == Code::kCorruption ? "auth_failure" : "verify_incomplete", id,
            "verify: scan stopped after " + std::to_string(read_here) + " records (" +
                std::string(CodeName(scan.code())) + "); about " + std::to_string(remaining) +
                " remaining unchecked");
    }
  }
  // What recovery reported and an operator has to resolve (decision 0012).
  {
    std::lock_guard<std::mutex> l(admin_mu_);
    report.orphan_keys = FindOrphanKeys();
  }
  for (const auto& [id, why] : met_damage) {
    auto t = FindTenant(id);
    if (t.ok()) MarkDamaged(*t, "verify met damaged files of its column family: " + why);
  }
  {
    std::shared_lock<std::shared_mutex> m(map_mu_);
    for (const auto& [id, t] : tenants_) {
      if (t->quarantined.load() && (!tenant_id || *tenant_id == id)) {
        report.quarantined_tenants.push_back(id);
      }
      if (t->damaged.load() && t->state.load() == TenantState::kActive &&
          (!tenant_id || *tenant_id == id)) {
        std::lock_guard<std::mutex> r(t->rec_mu);
        report.damaged_tenants.push_back(id + ": " + t->damage);
      }
    }
  }
  // Damage this read-only open found but could not report (decision 0020).
  for (const auto& line : UnreportedDamage()) {
    if (!tenant_id || line.starts_with(std::string(*tenant_id) + ": ")) {
      ++report.records_failed;
      report.failures.push_back("tenant " + line.substr(0, line.find(": ")) +
                                ": damage not reported to the writer (" +
                                line.substr(line.find(": ") + 2) +
                                "): open the store writable to record it");
    }
  }
  if (!tenant_id) {
    for (const auto& [i, why] : damaged_shards_) {  // decision 0034
      ++report.records_failed;
      report.failures.push_back("shard " + std::to_string(i) + ": does not open: " + why);
    }
    VerifyMetadata(&report);
  }
  ReportProgress("verify", "tenants", ids.size(), ids.size(), /*finished=*/true);
  return report;
}

// The metadata instance: each registry record, receipt and audit event is
// opened (authenticated) and decoded; then the receipt chain (signatures,
// sequence, prev_hash) and the audit hash chain are checked. Headers (`X`)
// and pending keyring failures (`F`) are plaintext by design (format.md).
void Store::Impl::VerifyMetadata(VerifyReport* report) {
  report->metadata_checked = true;
  std::map<std::string, uint64_t> failed;  // kind -> count
  auto fail = [&](const std::string& kind, const std::string& what) {
    ++report->metadata_failed;
    if (++failed[kind] <= kMaxFailuresPerScope) report->failures.push_back("metadata: " + what);
  };
  std::vector<Receipt> receipts;
  std::vector<AuditEvent> events;
  bool receipts_whole = true, audit_whole = true;
  uint64_t read = 0;
  // The counts before the scan: the scan sees at least as many.
  uint64_t receipts_written, events_written;
  {
    std::lock_guard<std::mutex> l(admin_mu_);
    receipts_written = receipt_seq_;
  }
  {
    std::lock_guard<std::mutex> l(audit_mu_);
    events_written = audit_seq_;
  }
  std::unique_ptr<rocksdb::Iterator> it(meta_->NewIterator(rocksdb::ReadOptions()));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    ++read;
    const std::string_view key = it->key().ToStringView();
    const std::string_view value = it->value().ToStringView();
    const char kind = key.empty() ? '\0' : key[0];
    if (kind == format::kHeaderPrefix || kind == format::kPendingFailurePrefix) {
      ++report->metadata_ok;
      continue;
    }
    std::string plain;
    Status s;
    if (kind == format::kRegistryPrefix) {
      s = record::Open(store_data_key_, record::Binding{}, key, value, &plain);
      codec::TenantRecord rec;
      if (s.ok()) s = codec::DecodeTenant(plain, &rec);
      if (!s.ok()) fail("registry", "registry record: " + s.ToString());
    } else if (kind == format::kReceiptPrefix) {
      s = record::Open(store_data_key_, record::Binding{}, key, value, &plain);
      Receipt r;
      if (s.ok()) s = codec::DecodeReceipt(plain, &r);
      if (s.ok()) {
        receipts.push_back(std::move(r));
      } else {
        receipts_whole = false;
        const uint64_t seq = key.size() == 9 ? format::DecodeFixed64BE(key.data() + 1) : 0;
        fail("receipt", "receipt " + std::to_string(seq) + ": " + s.ToString());
      }
    } else if (kind == format::kAuditPrefix) {
      s = record::Open(store_data_key_, record::Binding{}, key, value, &plain);
      AuditEvent e;
      if (s.ok()) s = codec::DecodeAudit(plain, &e);
      if (s.ok()) {
        events.push_back(std::move(e));
      } else {
        audit_whole = false;
        const uint64_t seq = key.size() == 9 ? format::DecodeFixed64BE(key.data() + 1) : 0;
        fail("audit", "audit event " + std::to_string(seq) + ": " + s.ToString());
      }
    } else if (kind == format::kDamagePrefix) {
      // A damaged tenant's mark (decision 0014): sealed text.
      s = key.size() == 9 ? record::Open(store_data_key_, record::Binding{}, key, value, &plain)
                          : Status::Corruption("malformed damage mark key");
      if (!s.ok()) fail("damage", "damage mark: " + s.ToString());
    } else if (kind == kMoveSeenKind) {
      // A move id this store received (engine/move.cc, docs/format.md
      // "Tenant moves"): 'V' + 16 bytes, empty value. Not sealed.
      s = key.size() == 1 + 16 && value.empty() ? Status::OK()
                                                 : Status::Corruption("malformed move id row");
      if (!s.ok()) fail("move_id", s.ToString());
    } else {
      s = Status::Corruption("unknown key kind in the metadata instance");
      fail("unknown", s.ToString());
    }
    if (s.ok()) ++report->metadata_ok;
  }
  const Status scan = fsutil::FromRocks(it->status(), "scan metadata");
  if (!scan.ok()) {
    const uint64_t remaining = EstimateRemaining(meta_.get(), nullptr, read);
    report->records_unchecked += remaining;
    report->unchecked.push_back(StoppedLine("metadata", read, scan, remaining));
    Audit(scan.code() == Code::kCorruption ? "auth_failure" : "verify_incomplete", "",
          "verify: metadata scan stopped after " + std::to_string(read) + " records (" +
              std::string(CodeName(scan.code())) + ")");
  } else {
    // The chains, over the records that opened. A record that failed above
    // also breaks its chain; that is one failure, already counted.
    if (receipts_whole) {
      const uint64_t n = receipts_written;
      Status c = Status::OK();
      if (n > 0 && (receipts.empty() || receipts.back().sequence < n)) {
        c = Status::Corruption("the last receipts are missing: the store has written " + std::to_string(n) +
                               " receipts");
      } else if (!receipts.empty()) {
        auto pk = kp_->SigningPublicKey();
        c = pk.ok() ? VerifyReceiptChain(receipts, *pk) : pk.status();
      }
      if (!c.ok() && c.code() != Code::kCorruption && c.code() != Code::kKeyError) {
        // The signing key could not be read (an I/O error): the chain is
        // unchecked, not broken.
        report->records_unchecked += receipts.size();
        report->unchecked.push_back("metadata: receipt chain not checked: " + c.ToString());
      } else if (!c.ok()) {
        fail("receipt_chain", "receipt chain: " + c.ToString());
      }
    }
    if (audit_whole) {
      Status c = VerifyAuditChain(events);
      if (c.ok() && !events.empty() && events.front().sequence != 1) {
        c = Status::Corruption("the audit log does not start at event 1");
      }
      if (c.ok() && events_written > 0 && (events.empty() || events.back().sequence < events_written)) {
        c = Status::Corruption("the last audit events are missing: the store has written " +
                               std::to_string(events_written) + " events");
      }
      if (!c.ok()) fail("audit_chain", "audit chain: " + c.ToString());
    }
  }
  for (const auto& [kind, n] : failed) {
    Audit("auth_failure", "", "verify: metadata " + kind + ": " + std::to_string(n) + " failed");
  }
}

Result<callvault::Metrics> Store::Impl::Metrics() {
  callvault::Metrics m;
  res_->metrics.Fill(&m);
  if (res_->statistics != nullptr) {
    m.stall_micros = res_->statistics->getTickerCount(rocksdb::STALL_MICROS);
    m.block_cache_hits = res_->statistics->getTickerCount(rocksdb::BLOCK_CACHE_HIT);
    m.block_cache_misses = res_->statistics->getTickerCount(rocksdb::BLOCK_CACHE_MISS);
  }
  m.block_cache_bytes = res_->block_cache->GetUsage();
  m.block_cache_capacity = res_->block_cache->GetCapacity();
  m.memtable_bytes = res_->write_buffer_manager->memory_usage();
  m.memtable_budget = res_->write_buffer_manager->buffer_size();
  res_->flush_backlog->Fill(&m);
  m.nofile_limit = res_->nofile_limit;
  m.open_files_per_shard = static_cast<uint32_t>(res_->open_files_per_instance.load());
  {
    std::lock_guard<std::mutex> l(train_mu_);
    m.dictionary_training_queue = train_queue_.size() + train_running_;
  }
  m.dictionary_trainings = trainings_done_.load();
  m.dictionary_training_failures = trainings_failed_.load();
  m.records_resealed = res_->reseal.resealed.load();
  m.records_kept_uncompressed = res_->reseal.kept.load();
  auto add_instance = [&m](rocksdb::DB* db) {
    if (db == nullptr) return;
    uint64_t v = 0;
    if (db->GetAggregatedIntProperty("rocksdb.estimate-pending-compaction-bytes", &v)) {
      m.pending_compaction_bytes += v;
    }
    v = 0;
    if (db->GetIntProperty("rocksdb.is-write-stopped", &v) && v != 0) m.write_stopped = true;
  };
  add_instance(meta_.get());
  {
    // Not admin_mu_: a key rotation holds it for its whole copy, and a
    // monitoring scrape must not wait for that (attack14). shards_ grows
    // (PickShard) under map_mu_ too; a shard is never removed while open.
    std::shared_lock<std::shared_mutex> l(map_mu_);
    m.shards = static_cast<uint32_t>(shards_.size());
    // A shard that does not open is a null entry (decision 0034).
    for (const auto& s : shards_) {
      add_instance(s ? s->db() : nullptr);
      if (s) m.purge_deletions_pending += static_cast<uint32_t>(s->deletions_pending());
    }
    for (const auto& entry : tenants_) {
      if (entry.second->state.load() == TenantState::kActive) ++m.live_tenants;
    }
  }
  return m;
}

namespace {
// What the open table files' readers of every family of `db` hold outside
// the block cache (RocksDB's estimate).
uint64_t TableReaderBytes(rocksdb::DB* db) {
  uint64_t v = 0;
  return db->GetAggregatedIntProperty("rocksdb.estimate-table-readers-mem", &v) ? v : 0;
}
}  // namespace

Result<StoreStats> Store::Impl::Stats() {
  PollDamagedFamilies();
  CV_RETURN_IF_ERROR(ApplyDamageReports());  // decision 0020
  StoreStats st;
  st.store_id = crypto::Hex(store_id_);
  st.open.open_micros = open_micros_;
  st.open.wal_scan_micros = res_->wal_scan_micros.load();
  st.open.wal_files = res_->wal_scan_files.load();
  st.open.wal_bytes = res_->wal_scan_bytes.load();
  st.region = region_;
  st.memory.block_cache_bytes = res_->block_cache->GetUsage();
  st.memory.block_cache_budget = res_->block_cache->GetCapacity();
  st.memory.memtable_bytes = res_->write_buffer_manager->memory_usage();
  st.memory.memtable_budget = res_->write_buffer_manager->buffer_size();
  st.descriptors.nofile_limit = res_->nofile_limit;
  st.descriptors.reserve = res_->nofile_reserve;
  st.descriptors.open_files_per_shard = static_cast<uint32_t>(res_->open_files_per_instance.load());
  st.descriptors.planned_shards = res_->planned_shards.load();
  {
    const DictionaryCache::Counters d = res_->dictionaries->Get();
    st.memory.dictionary_bytes = d.bytes;
    st.memory.dictionary_budget = d.budget;
    st.memory.dictionaries = d.entries;
    st.memory.dictionary_hits = d.hits;
    st.memory.dictionary_misses = d.misses;
    st.memory.dictionary_evictions = d.evictions;
  }
  st.memory.allocator_free_bytes = AllocatorFreeBytes();
  st.memory.heap_trims = res_->heap_trimmer->trims();
  res_->flush_backlog->Fill(&st.memory);
  if (meta_ != nullptr) st.memory.table_reader_bytes += TableReaderBytes(meta_.get());
  {
    std::lock_guard<std::mutex> l(train_mu_);
    st.dictionary_training.queued = train_queue_.size();
    st.dictionary_training.running = train_running_;
  }
  st.dictionary_training.trained = trainings_done_.load();
  st.dictionary_training.failed = trainings_failed_.load();
  st.dictionary_training.given_up = trainings_given_up_.load();
  st.compression.resealed = res_->reseal.resealed.load();
  st.compression.kept = res_->reseal.kept.load();
  {
    std::lock_guard<std::mutex> l(admin_mu_);
    st.kek_generation = keyring_.kek_generation;
    st.keyring_generation = keyring_.generation;
    st.receipts = receipt_seq_;
    for (uint32_t i = 0; i < shards_.size(); ++i) {
      const auto& s = shards_[i];
      ShardStats ss;
      ss.shard = i;
      if (!s) {  // decision 0034
        // find(), not operator[]: the map is read only after the open
        // (operator[] would insert on a miss, a write under readers).
        const auto d = damaged_shards_.find(i);
        ss.damage = d != damaged_shards_.end() ? d->second : "shard did not open";
        st.shards.push_back(ss);
        continue;
      }
      ss.tenants = static_cast<uint32_t>(s->family_count());
      st.memory.table_reader_bytes += TableReaderBytes(s->db());
      std::vector<rocksdb::LiveFileMetaData> files;
      s->db()->GetLiveFilesMetaData(&files);
      ss.sst_files = files.size();
      for (const auto& f : files) ss.live_bytes += f.size;
      st.shards.push_back(ss);
    }
  }
  std::vector<std::string> ids;
  {
    std::shared_lock<std::shared_mutex> m(map_mu_);
    for (const auto& [id, t] : tenants_) {
      if (t->quarantined.load()) st.quarantined_tenants.push_back(id);
      if (t->damaged.load() && t->state.load() == TenantState::kActive) {
        std::lock_guard<std::mutex> r(t->rec_mu);
        st.damaged_tenants.push_back(id + ": " + t->damage);
      }
      if (t->state.load() == TenantState::kActive) ids.push_back(id);
      else ++st.purged_tenants;
    }
  }
  {
    std::lock_guard<std::mutex> l(admin_mu_);
    st.orphan_keys = FindOrphanKeys();
  }
  for (const auto& id : ids) {
    auto t = Acquire(id);
    if (!t.ok()) continue;
    TenantStats ts;
    ts.tenant_id = id;
    ts.state = TenantState::kActive;
    ts.shard = (*t)->rec.shard;
    rocksdb::DB* db = (*t)->shard->db();
    db->GetIntProperty((*t)->cf, "rocksdb.estimate-num-keys", &ts.records);
    uint64_t sst = 0, blob = 0, mem = 0;
    db->GetIntProperty((*t)->cf, "rocksdb.live-sst-files-size", &sst);
    db->GetIntProperty((*t)->cf, "rocksdb.live-blob-file-size", &blob);
    db->GetIntProperty((*t)->cf, "rocksdb.cur-size-all-mem-tables", &mem);
    ts.bytes = sst + blob + mem;
    t = Result<TenantRef>(Status::Internal("released"));  // release before CountCalls re-acquires
    auto n = CountCalls(id);
    if (n.ok()) ts.calls = *n;
    st.tenants.push_back(std::move(ts));
  }
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(path_, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_regular_file(ec)) {
      ++st.files;
      st.total_bytes += it->file_size(ec);
    }
  }
  return st;
}

// Every stored receipt in sequence order. A receipt that is missing shows
// as a gap (VerifyReceiptChain names its position); one that fails to open
// is kCorruption naming its sequence; a chain shorter than the store's
// count of receipts is kCorruption too.
Result<std::vector<Receipt>> Store::Impl::ListReceipts() {
  uint64_t n;
  {
    std::lock_guard<std::mutex> l(admin_mu_);
    n = receipt_seq_;
  }
  std::vector<Receipt> out;
  const std::string prefix(1, format::kReceiptPrefix);
  std::unique_ptr<rocksdb::Iterator> it(meta_->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    std::string plain;
    Receipt r;
    Status s = record::Open(store_data_key_, record::Binding{}, it->key().ToStringView(),
                            it->value().ToStringView(), &plain);
    if (s.ok()) s = codec::DecodeReceipt(plain, &r);
    if (!s.ok()) {
      uint64_t seq = it->key().size() == 9 ? format::DecodeFixed64BE(it->key().data() + 1) : 0;
      return Status::Corruption("receipt " + std::to_string(seq) + " (position " +
                                std::to_string(out.size() + 1) + "): " + s.message());
    }
    out.push_back(std::move(r));
  }
  CV_RETURN_IF_ERROR(fsutil::FromRocks(it->status(), "read receipts"));
  if (n > 0 && (out.empty() || out.back().sequence != n)) {
    return Status::Corruption("the last receipts are missing: the store has written " +
                              std::to_string(n) + " receipts");
  }
  return out;
}

Status Store::Impl::Flush() {
  std::lock_guard<std::mutex> l(admin_mu_);
  rocksdb::FlushOptions fo;
  Status failed;
  for (const auto& s : shards_) {
    if (!s) continue;
    if (s->failed()) {
      // Not touched: RocksDB 7.8 would switch out its mutable memtables
      // before failing the flush, memtables no flush frees until the
      // reopen (decision 0071). The healthy shards are flushed.
      if (failed.ok()) {
        failed = Status::IOError("flush: shard " + std::to_string(s->index()) +
                                 " failed earlier (a RocksDB background error) and is not "
                                 "flushed until the store is reopened");
      }
      continue;
    }
    for (const auto& name : s->FamilyNames()) {
      if (auto* cf = s->Find(name)) {
        CV_RETURN_IF_ERROR(fsutil::FromRocks(s->db()->Flush(fo, cf), "flush"));
      }
    }
  }
  CV_RETURN_IF_ERROR(fsutil::FromRocks(meta_->Flush(fo), "flush metadata"));
  return failed;
}

Status Store::Impl::CompactAll() {
  CV_RETURN_IF_ERROR(Flush());
  std::lock_guard<std::mutex> l(admin_mu_);
  rocksdb::CompactRangeOptions co;
  co.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForceOptimized;
  for (const auto& s : shards_) {
    if (!s) continue;
    for (const auto& name : s->FamilyNames()) {
      if (auto* cf = s->Find(name)) {
        CV_RETURN_IF_ERROR(fsutil::FromRocks(s->db()->CompactRange(co, cf, nullptr, nullptr), "compact"));
      }
    }
  }
  return fsutil::FromRocks(meta_->CompactRange(co, nullptr, nullptr), "compact metadata");
}

}  // namespace callvault
