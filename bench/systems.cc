#include "bench/systems.h"

#include <rocksdb/cache.h>
#include <rocksdb/env.h>
#include <rocksdb/file_system.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>
#include <rocksdb/write_buffer_manager.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <thread>

#include "bench/raw_codec.h"
#include "bench/util.h"

namespace callvault::bench {

void Fail(const std::string& what) {
  std::fprintf(stderr, "bench: FAILED: %s\n", what.c_str());
  std::exit(2);
}

void Check(const Status& s, const char* what) {
  if (!s.ok()) Fail(std::string(what) + ": " + s.ToString());
}

void Check(const rocksdb::Status& s, const char* what) {
  if (!s.ok()) Fail(std::string(what) + ": " + s.ToString());
}

// ---------------------------------------------------------------------------
// memtable budgets

namespace {

// callvault's tenant families keep at most this many memtables
// (engine/shard.cc, max_write_buffer_number; not an Option).
constexpr size_t kCallvaultMaxWriteBuffers = 2;
// Raw RocksDB's, the budgets of callvault's default Options.
constexpr size_t kRawWriteBufferBudget = 256u << 20;
constexpr size_t kRawWriteBufferBytes = 8u << 20;
constexpr int kRawMaxWriteBuffers = 2;

Json Budget(size_t shared, size_t per_family, size_t number, const std::vector<size_t>& tenants) {
  Json j;
  j["shared_budget_bytes"] = shared;
  j["write_buffer_bytes"] = per_family;
  j["max_write_buffers"] = number;
  for (size_t n : tenants) {
    j["holds_bytes"][std::to_string(n)] = std::min(shared, n * per_family * number);
  }
  return j;
}

}  // namespace

Json MemtableBudgets(const std::vector<size_t>& tenants) {
  const Options o;  // CallvaultSystem opens with the defaults
  Json j;
  j["callvault"] = Budget(o.write_buffer_budget_bytes, o.write_buffer_bytes, kCallvaultMaxWriteBuffers,
                          tenants);
  j["rocksdb"] = Budget(kRawWriteBufferBudget, kRawWriteBufferBytes, kRawMaxWriteBuffers, tenants);
  return j;
}

// ---------------------------------------------------------------------------
// bytes written, by kind of file

class WriteCounter::FS : public rocksdb::FileSystemWrapper {
 public:
  FS() : FileSystemWrapper(rocksdb::FileSystem::Default()) {
    for (auto& b : bytes_) b = 0;
  }
  const char* Name() const override { return "BenchWriteCounter"; }
  rocksdb::IOStatus NewWritableFile(const std::string& f, const rocksdb::FileOptions& o,
                                    std::unique_ptr<rocksdb::FSWritableFile>* r,
                                    rocksdb::IODebugContext* dbg) override {
    rocksdb::IOStatus s = target()->NewWritableFile(f, o, r, dbg);
    if (s.ok()) *r = std::make_unique<File>(std::move(*r), &bytes_[KindOf(f)]);
    return s;
  }
  rocksdb::IOStatus ReopenWritableFile(const std::string& f, const rocksdb::FileOptions& o,
                                       std::unique_ptr<rocksdb::FSWritableFile>* r,
                                       rocksdb::IODebugContext* dbg) override {
    rocksdb::IOStatus s = target()->ReopenWritableFile(f, o, r, dbg);
    if (s.ok()) *r = std::make_unique<File>(std::move(*r), &bytes_[KindOf(f)]);
    return s;
  }
  std::atomic<uint64_t> bytes_[kKinds];

 private:
  class File : public rocksdb::FSWritableFileOwnerWrapper {
   public:
    File(std::unique_ptr<rocksdb::FSWritableFile> f, std::atomic<uint64_t>* n)
        : FSWritableFileOwnerWrapper(std::move(f)), n_(n) {}
    rocksdb::IOStatus Append(const rocksdb::Slice& d, const rocksdb::IOOptions& o,
                             rocksdb::IODebugContext* dbg) override {
      *n_ += d.size();
      return target()->Append(d, o, dbg);
    }
    rocksdb::IOStatus Append(const rocksdb::Slice& d, const rocksdb::IOOptions& o,
                             const rocksdb::DataVerificationInfo& v,
                             rocksdb::IODebugContext* dbg) override {
      *n_ += d.size();
      return target()->Append(d, o, v, dbg);
    }
    rocksdb::IOStatus PositionedAppend(const rocksdb::Slice& d, uint64_t off,
                                       const rocksdb::IOOptions& o,
                                       rocksdb::IODebugContext* dbg) override {
      *n_ += d.size();
      return target()->PositionedAppend(d, off, o, dbg);
    }
    rocksdb::IOStatus PositionedAppend(const rocksdb::Slice& d, uint64_t off,
                                       const rocksdb::IOOptions& o,
                                       const rocksdb::DataVerificationInfo& v,
                                       rocksdb::IODebugContext* dbg) override {
      *n_ += d.size();
      return target()->PositionedAppend(d, off, o, v, dbg);
    }

   private:
    std::atomic<uint64_t>* const n_;
  };
  static Kind KindOf(const std::string& path) {
    const std::string base = path.substr(path.rfind('/') + 1);
    auto ends = [&](const char* x) {
      const size_t n = std::strlen(x);
      return base.size() >= n && base.compare(base.size() - n, n, x) == 0;
    };
    if (ends(".log")) return kWal;
    if (ends(".sst")) return kTable;
    if (ends(".blob")) return kBlob;
    if (base.rfind("MANIFEST-", 0) == 0) return kManifest;
    if (base == "LOG" || base.rfind("LOG.old.", 0) == 0) return kInfoLog;
    return kOther;
  }
};

WriteCounter::WriteCounter() : fs_(std::make_shared<FS>()), env_(rocksdb::NewCompositeEnv(fs_)) {}
WriteCounter::~WriteCounter() = default;
uint64_t WriteCounter::bytes(Kind k) const { return fs_->bytes_[k].load(); }
Json WriteCounter::ToJson() const {
  return Json{{"wal", bytes(kWal)},         {"table", bytes(kTable)},
              {"blob", bytes(kBlob)},       {"manifest", bytes(kManifest)},
              {"info_log", bytes(kInfoLog)}, {"other", bytes(kOther)}};
}

// ---------------------------------------------------------------------------
// callvault

CallvaultSystem::CallvaultSystem(const std::string& dir, bool create,
                                 const std::function<void(Options*)>& adjust)
    : dir_(dir) {
  MakeDirs(dir_);
  auto kp = NewFileKeyProvider(dir_ + "/keys");
  Check(kp.status(), "open key provider");
  Options o;  // defaults, as a user gets them
  o.key_provider = *kp;
  // For before/after measurements of per-tenant dictionaries (0 = off).
  if (const char* v = std::getenv("CALLVAULT_BENCH_DICTIONARY_CALLS")) {
    o.dictionary_training_calls = static_cast<uint32_t>(std::strtoul(v, nullptr, 10));
  }
  if (const char* v = std::getenv("CALLVAULT_BENCH_DEFER_COMPRESSION")) {
    o.defer_compression = std::string(v) != "0";
  }
  // Before/after of decision 0055 (0 = recordings through the WAL).
  if (const char* v = std::getenv("CALLVAULT_BENCH_RECORDING_INGEST")) {
    o.recording_ingest = std::string(v) != "0";
  }
  // Before/after of decision 0061 (0 = a recording writer on one thread).
  if (const char* v = std::getenv("CALLVAULT_BENCH_RECORDING_PIPELINE")) {
    o.recording_pipeline = std::string(v) != "0";
  }
  // Before/after of decision 0060 (0 = freed memory never trimmed).
  if (const char* v = std::getenv("CALLVAULT_BENCH_HEAP_TRIM_STEP")) {
    o.heap_trim_step_bytes = std::strtoull(v, nullptr, 10);
  }
  // Flush and compaction threads (A/B of the memtables' peak with many
  // active tenants: Options::background_threads sets both pools).
  if (const char* v = std::getenv("CALLVAULT_BENCH_BACKGROUND_THREADS")) {
    o.background_threads = std::atoi(v);
  }
  // The flush pool and the writers' wait on the flush backlog (A/B of
  // decision 0066; "max" = writers never wait).
  if (const char* v = std::getenv("CALLVAULT_BENCH_FLUSH_THREADS")) {
    o.flush_threads = std::atoi(v);
  }
  if (const char* v = std::getenv("CALLVAULT_BENCH_FLUSH_BACKLOG")) {
    o.flush_backlog_bytes = std::string(v) == "max" ? SIZE_MAX : std::strtoull(v, nullptr, 10);
  }
  // A/B of RocksDB's OPTIONS file per instance (rewritten at every tenant
  // create and purge; 0 = not kept).
  if (const char* v = std::getenv("CALLVAULT_BENCH_KEEP_OPTIONS_FILE")) {
    o.keep_rocksdb_options_file = std::string(v) != "0";
  }
  if (const char* v = std::getenv("CALLVAULT_BENCH_LOW_PRIORITY_COMPACTIONS")) {
    o.low_priority_compactions = std::string(v) == "1";
  }
  if (adjust) adjust(&o);
  o.create_if_missing = create;
  o.region = "bench";
  auto s = Store::Open(o, dir_ + "/store");
  Check(s.status(), "open callvault store");
  store_ = std::move(s).value();
  // A/B: the flush pool's threads at a lower CPU priority (process-wide).
  if (const char* v = std::getenv("CALLVAULT_BENCH_FLUSH_PRIORITY")) {
    const std::string p(v);
    rocksdb::Env::Default()->LowerThreadPoolCPUPriority(
        rocksdb::Env::HIGH, p == "idle" ? rocksdb::CpuPriority::kIdle : rocksdb::CpuPriority::kLow);
  }
}

CallvaultSystem::~CallvaultSystem() = default;

void CallvaultSystem::CreateTenant(const std::string& tenant) {
  Check(store_->CreateTenant({.tenant_id = tenant}).status(), "callvault CreateTenant");
}

void CallvaultSystem::Put(const std::string& tenant, const std::vector<Call>& calls) {
  if (calls.size() == 1) {
    Check(store_->PutCall(tenant, calls[0]).status(), "callvault PutCall");
  } else {
    Check(store_->PutCalls(tenant, calls).status(), "callvault PutCalls");
  }
}

bool CallvaultSystem::Get(const std::string& tenant, const std::string& call_id, uint32_t parts,
                          Call* out) {
  auto r = store_->GetCall(tenant, call_id, parts);
  if (r.status().code() == Code::kNotFound) return false;
  Check(r.status(), "callvault GetCall");
  *out = std::move(r).value();
  return true;
}

size_t CallvaultSystem::List(const std::string& tenant, const ListSpec& spec) {
  ListQuery q;
  q.from = spec.from;
  q.to = spec.to;
  q.limit = spec.limit;
  q.newest_first = true;
  if (spec.kind == ListSpec::kOwner) q.owners = {spec.value};
  if (spec.kind == ListSpec::kEmail) q.participants = {spec.value};
  auto r = store_->ListCalls(tenant, q);
  Check(r.status(), "callvault ListCalls");
  return r->calls.size();
}

void CallvaultSystem::WriteRecording(const std::string& tenant, const std::string& call_id,
                                     const std::string& recording_id, const std::string& data,
                                     size_t piece) {
  RecordingSpec spec;
  spec.recording_id = recording_id;
  spec.content_type = "audio/mpeg";
  auto w = store_->CreateRecording(tenant, call_id, spec);
  Check(w.status(), "callvault CreateRecording");
  for (size_t i = 0; i < data.size(); i += piece) {
    Check((*w)->Append(std::string_view(data).substr(i, piece)), "callvault recording Append");
  }
  Check((*w)->Finish().status(), "callvault recording Finish");
}

uint64_t CallvaultSystem::ReadRecording(const std::string& tenant, const std::string& call_id,
                                        const std::string& recording_id, uint64_t size) {
  uint64_t n = 0;
  Check(store_->ReadRecording(tenant, call_id, recording_id, 0, size,
                              [&n](std::string_view b) {
                                n += b.size();
                                return Status::OK();
                              }),
        "callvault ReadRecording");
  return n;
}

void CallvaultSystem::Flush() { Check(store_->Flush(), "callvault Flush"); }
void CallvaultSystem::CompactAll() { Check(store_->CompactAll(), "callvault CompactAll"); }
void CallvaultSystem::Settle() {
  for (int i = 0; i < 6000; ++i) {  // up to a minute
    auto st = store_->Stats();
    Check(st.status(), "callvault Stats");
    if (st->dictionary_training.queued == 0 && st->dictionary_training.running == 0) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  Fail("callvault: dictionary training did not finish within a minute");
}

// ---------------------------------------------------------------------------
// raw RocksDB

namespace {

std::string CallKey(const std::string& call_id, char part) {
  std::string k;
  k.reserve(call_id.size() + 2);
  k.push_back('C');
  k += call_id;
  k.push_back(part);
  return k;
}

void PutTime(std::string* k, int64_t t) {
  uint64_t v = static_cast<uint64_t>(t) ^ (1ull << 63);
  for (int i = 7; i >= 0; --i) k->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

// prefix: "T", or "O" owner "\0", or "E" email "\0".
std::string IndexPrefix(const ListSpec& spec) {
  if (spec.kind == ListSpec::kTime) return "T";
  std::string p(1, spec.kind == ListSpec::kOwner ? 'O' : 'E');
  p += spec.value;
  p.push_back('\0');
  return p;
}

std::string IndexKey(std::string prefix, int64_t started_at, const std::string& call_id) {
  PutTime(&prefix, started_at);
  prefix += call_id;
  return prefix;
}

std::string TimeKey(int64_t started_at, const std::string& call_id) {
  return IndexKey("T", started_at, call_id);
}

std::string ChunkKey(const std::string& call_id, const std::string& recording_id, uint32_t chunk) {
  std::string k(1, 'R');
  k += call_id;
  k.push_back('\0');
  k += recording_id;
  k.push_back('\0');
  for (int i = 3; i >= 0; --i) k.push_back(static_cast<char>((chunk >> (8 * i)) & 0xff));
  return k;
}

}  // namespace

RawSystem::RawSystem(const std::string& dir, rocksdb::Env* counting_env) : path_(dir + "/raw") {
  MakeDirs(dir);
  // The budgets of callvault's default Options (store.h), so that the two
  // differ in design, not in memory or threads.
  rocksdb::Env* env = rocksdb::Env::Default();
  env->SetBackgroundThreads(1, rocksdb::Env::HIGH);
  env->SetBackgroundThreads(2, rocksdb::Env::LOW);
  cache_ = rocksdb::NewLRUCache(64u << 20);
  if (counting_env != nullptr) dbo_.env = counting_env;
  dbo_.create_if_missing = true;
  dbo_.create_missing_column_families = true;
  dbo_.write_buffer_manager = std::make_shared<rocksdb::WriteBufferManager>(kRawWriteBufferBudget);
  dbo_.max_background_jobs = 2;
  dbo_.max_open_files = 512;
  dbo_.keep_log_file_num = 3;
  cfo_.compression = rocksdb::kZSTD;  // every level; RocksDB's default zstd level (3)
  cfo_.write_buffer_size = kRawWriteBufferBytes;
  cfo_.max_write_buffer_number = kRawMaxWriteBuffers;
  cfo_.level_compaction_dynamic_level_bytes = true;
  cfo_.target_file_size_base = 32u << 20;
  cfo_.max_bytes_for_level_base = 128u << 20;
  rocksdb::BlockBasedTableOptions t;
  t.block_cache = cache_;
  t.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  t.block_size = 16u << 10;
  t.cache_index_and_filter_blocks = true;
  t.pin_l0_filter_and_index_blocks_in_cache = true;
  cfo_.table_factory.reset(rocksdb::NewBlockBasedTableFactory(t));

  std::vector<std::string> names;
  if (!rocksdb::DB::ListColumnFamilies(dbo_, path_, &names).ok()) {
    names = {rocksdb::kDefaultColumnFamilyName};
  }
  std::vector<rocksdb::ColumnFamilyDescriptor> descs;
  for (const auto& n : names) descs.emplace_back(n, cfo_);
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* db = nullptr;
  Check(rocksdb::DB::Open(dbo_, path_, descs, &handles, &db), "open raw RocksDB");
  db_.reset(db);
  for (auto* h : handles) {
    if (h->GetName() == rocksdb::kDefaultColumnFamilyName) {
      Check(db_->DestroyColumnFamilyHandle(h), "destroy default handle");
    } else {
      cfs_[h->GetName()] = h;
    }
  }
}

RawSystem::~RawSystem() {
  for (auto& [n, h] : cfs_) db_->DestroyColumnFamilyHandle(h).PermitUncheckedError();
  cfs_.clear();
  db_->Close().PermitUncheckedError();
}

rocksdb::ColumnFamilyHandle* RawSystem::Cf(const std::string& tenant) const {
  std::shared_lock<std::shared_mutex> l(mu_);
  auto it = cfs_.find(tenant);
  if (it == cfs_.end()) Fail("raw: unknown tenant");
  return it->second;
}

size_t RawSystem::tenant_count() const {
  std::shared_lock<std::shared_mutex> l(mu_);
  return cfs_.size();
}

void RawSystem::CreateTenant(const std::string& tenant) {
  rocksdb::ColumnFamilyHandle* h = nullptr;
  Check(db_->CreateColumnFamily(cfo_, tenant, &h), "raw CreateColumnFamily");
  std::unique_lock<std::shared_mutex> l(mu_);
  cfs_[tenant] = h;
}

void RawSystem::CreateTenantsBulk(const std::vector<std::string>& tenants, size_t chunk) {
  for (size_t i = 0; i < tenants.size(); i += chunk) {
    std::vector<std::string> names(tenants.begin() + static_cast<long>(i),
                                   tenants.begin() + static_cast<long>(std::min(tenants.size(), i + chunk)));
    std::vector<rocksdb::ColumnFamilyHandle*> hs;
    Check(db_->CreateColumnFamilies(cfo_, names, &hs), "raw CreateColumnFamilies");
    std::unique_lock<std::shared_mutex> l(mu_);
    for (auto* h : hs) cfs_[h->GetName()] = h;
  }
}

void RawSystem::Put(const std::string& tenant, const std::vector<Call>& calls) {
  rocksdb::ColumnFamilyHandle* cf = Cf(tenant);
  rocksdb::WriteBatch b;
  for (const Call& c : calls) {
    Check(b.Put(cf, CallKey(c.call_id, 0), rawcodec::EncodeMeta(c)), "batch");
    if (!c.transcript.empty()) {
      Check(b.Put(cf, CallKey(c.call_id, 1), rawcodec::EncodeTranscript(c)), "batch");
    }
    if (!c.insights.empty()) {
      Check(b.Put(cf, CallKey(c.call_id, 2), rawcodec::EncodeInsights(c)), "batch");
    }
    Check(b.Put(cf, TimeKey(c.started_at, c.call_id), ""), "batch");
    Check(b.Put(cf, IndexKey(IndexPrefix({ListSpec::kOwner, c.owner_user_id}), c.started_at, c.call_id), ""),
          "batch");
    for (const auto& p : c.participants) {
      if (p.email.empty()) continue;
      Check(b.Put(cf, IndexKey(IndexPrefix({ListSpec::kEmail, p.email}), c.started_at, c.call_id), ""),
            "batch");
    }
  }
  rocksdb::WriteOptions w;
  w.sync = true;
  Check(db_->Write(w, &b), "raw Write");
}

bool RawSystem::Get(const std::string& tenant, const std::string& call_id, uint32_t parts,
                    Call* out) {
  rocksdb::ColumnFamilyHandle* cf = Cf(tenant);
  std::string v;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), cf, CallKey(call_id, 0), &v);
  if (s.IsNotFound()) return false;
  Check(s, "raw Get");
  *out = Call{};
  if (!rawcodec::DecodeMeta(v, out)) Fail("raw: metadata fails verification");
  if (!(parts & kPartParticipants)) out->participants.clear();
  if (parts & kPartTranscript) {
    s = db_->Get(rocksdb::ReadOptions(), cf, CallKey(call_id, 1), &v);
    if (!s.IsNotFound()) {
      Check(s, "raw Get");
      if (!rawcodec::DecodeTranscript(v, out)) Fail("raw: transcript fails verification");
    }
  }
  if (parts & kPartInsights) {
    s = db_->Get(rocksdb::ReadOptions(), cf, CallKey(call_id, 2), &v);
    if (!s.IsNotFound()) {
      Check(s, "raw Get");
      if (!rawcodec::DecodeInsights(v, out)) Fail("raw: insights fails verification");
    }
  }
  return true;
}

size_t RawSystem::List(const std::string& tenant, const ListSpec& spec) {
  rocksdb::ColumnFamilyHandle* cf = Cf(tenant);
  const rocksdb::Snapshot* snap = db_->GetSnapshot();
  const std::string prefix = IndexPrefix(spec);
  const std::string lower = IndexKey(prefix, spec.from, ""), upper = IndexKey(prefix, spec.to, "");
  const size_t limit = spec.limit;
  rocksdb::Slice lo(lower), hi(upper);
  rocksdb::ReadOptions ro;
  ro.snapshot = snap;
  ro.iterate_lower_bound = &lo;
  ro.iterate_upper_bound = &hi;
  std::vector<std::string> keys;
  {
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, cf));
    for (it->SeekToLast(); it->Valid() && keys.size() < limit; it->Prev()) {
      rocksdb::Slice k = it->key();
      const size_t skip = prefix.size() + 8;
      if (k.size() < skip) Fail("raw: malformed index key");
      keys.push_back(CallKey(std::string(k.data() + skip, k.size() - skip), 0));
    }
    Check(it->status(), "raw scan");
  }
  std::vector<rocksdb::Slice> slices(keys.begin(), keys.end());
  std::vector<rocksdb::PinnableSlice> values(keys.size());
  std::vector<rocksdb::Status> statuses(keys.size());
  db_->MultiGet(ro, cf, keys.size(), slices.data(), values.data(), statuses.data());
  size_t n = 0;
  for (size_t i = 0; i < keys.size(); ++i) {
    Check(statuses[i], "raw MultiGet");
    Call c;
    if (!rawcodec::DecodeMeta(values[i].ToStringView(), &c)) Fail("raw: metadata fails verification");
    c.participants.clear();
    ++n;
  }
  db_->ReleaseSnapshot(snap);
  return n;
}

void RawSystem::WriteRecording(const std::string& tenant, const std::string& call_id,
                               const std::string& recording_id, const std::string& data,
                               size_t piece) {
  // Chunks of callvault's chunk size; each piece appended is a Put of the
  // chunks it fills, the last one synced.
  rocksdb::ColumnFamilyHandle* cf = Cf(tenant);
  const size_t chunk = kRecordingChunkBytes;
  std::string pending;
  uint32_t index = 0;
  rocksdb::WriteOptions unsynced;
  for (size_t i = 0; i < data.size(); i += piece) {
    pending.append(data, i, piece);
    while (pending.size() >= chunk) {
      Check(db_->Put(unsynced, cf, ChunkKey(call_id, recording_id, index++), pending.substr(0, chunk)),
            "raw recording Put");
      pending.erase(0, chunk);
    }
  }
  rocksdb::WriteOptions synced;
  synced.sync = true;
  Check(db_->Put(synced, cf, ChunkKey(call_id, recording_id, index), pending), "raw recording Put");
}

uint64_t RawSystem::ReadRecording(const std::string& tenant, const std::string& call_id,
                                  const std::string& recording_id, uint64_t size) {
  rocksdb::ColumnFamilyHandle* cf = Cf(tenant);
  uint64_t n = 0;
  std::string v;
  for (uint32_t i = 0; n < size; ++i) {
    Check(db_->Get(rocksdb::ReadOptions(), cf, ChunkKey(call_id, recording_id, i), &v),
          "raw recording Get");
    if (v.empty()) break;
    n += v.size();
  }
  return n;
}

void RawSystem::Flush() {
  std::shared_lock<std::shared_mutex> l(mu_);
  // One call for every family: with 10,000 families, one Flush per family
  // (each waiting for its own) took minutes.
  std::vector<rocksdb::ColumnFamilyHandle*> all;
  for (auto& [n, h] : cfs_) all.push_back(h);
  Check(db_->Flush(rocksdb::FlushOptions(), all), "raw Flush");
}

void RawSystem::CompactAll() {
  Flush();
  std::shared_lock<std::shared_mutex> l(mu_);
  rocksdb::CompactRangeOptions co;
  co.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForceOptimized;
  for (auto& [n, h] : cfs_) Check(db_->CompactRange(co, h, nullptr, nullptr), "raw CompactRange");
}

void RawSystem::CompactTenant(const std::string& tenant) {
  rocksdb::CompactRangeOptions co;
  co.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForceOptimized;
  Check(db_->CompactRange(co, Cf(tenant), nullptr, nullptr), "raw CompactRange");
}

void RawSystem::DeleteByIteration(const std::string& tenant) {
  rocksdb::ColumnFamilyHandle* cf = Cf(tenant);
  rocksdb::WriteOptions w;
  w.sync = true;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), cf));
  rocksdb::WriteBatch b;
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    Check(b.Delete(cf, it->key()), "batch");
    if (b.Count() == 1000) {
      Check(db_->Write(w, &b), "raw delete batch");
      b.Clear();
    }
  }
  Check(it->status(), "raw scan for delete");
  if (b.Count() > 0) Check(db_->Write(w, &b), "raw delete batch");
}

void RawSystem::DeleteByRange(const std::string& tenant) {
  rocksdb::WriteOptions w;
  w.sync = true;
  // Every key starts with 'C' or 'T'.
  Check(db_->DeleteRange(w, Cf(tenant), std::string(1, '\0'), std::string(1, '\xff')),
        "raw DeleteRange");
}

void RawSystem::DropTenant(const std::string& tenant) {
  rocksdb::ColumnFamilyHandle* cf = Cf(tenant);
  Check(db_->DropColumnFamily(cf), "raw DropColumnFamily");
  {
    std::unique_lock<std::shared_mutex> l(mu_);
    cfs_.erase(tenant);
  }
  Check(db_->DestroyColumnFamilyHandle(cf), "raw DestroyColumnFamilyHandle");
}

std::vector<std::string> RawSystem::TenantFiles(const std::string& tenant) {
  std::vector<rocksdb::LiveFileMetaData> files;
  db_->GetLiveFilesMetaData(&files);
  std::vector<std::string> out;
  for (const auto& f : files) {
    if (f.column_family_name == tenant) out.push_back(f.db_path + f.name);
  }
  return out;
}

}  // namespace callvault::bench
