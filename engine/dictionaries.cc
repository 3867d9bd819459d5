// Per-tenant zstd dictionaries (docs/decisions/0009): the tenant side
// (finding, caching, sealing with the current dictionary) and training.
//
// Training runs in the background (decision 0045): the put that brings a
// tenant to Options::dictionary_training_calls only queues it; a small pool
// (Options::dictionary_training_threads) reads the samples holding the
// tenant as a reader does, trains with no tenant lock held, then stores the
// row holding what a put holds (the tenant acquired for writing, its
// write_mu), sealed under the keys the tenant has at that moment. With no
// threads, the put trains, under its write_mu, as before. Training never
// makes a put fail: every error only means "no dictionary yet". The
// dictionary row is written (synced) before any record uses it, so any
// record that names a dictionary follows its row in the WAL.
#include <rocksdb/db.h>
#include <sodium.h>

#include "engine/calls_internal.h"
#include "engine/codec.h"
#include "engine/compress.h"
#include "engine/crypto.h"
#include "engine/dictionary_training.h"
#include "engine/fs_util.h"
#include "format/coding.h"
#include "engine/store_impl.h"

namespace callvault {

namespace {

// Training input bounds: a sample per record, at most kSampleBytes of it
// (transcripts are sampled by their first bytes), kTrainBytes in all. Sized
// so that training stays well under 200 ms on one core (measured in
// docs/decisions/0009).
constexpr size_t kSampleBytes = 4u << 10;
constexpr size_t kTrainBytes = 1u << 20;

std::mutex g_train_hook_mu;
std::function<void(const char*)> g_train_hook;  // GUARDED_BY(g_train_hook_mu)

void RunTrainingHook(const char* phase) {
  std::function<void(const char*)> hook;
  {
    std::lock_guard<std::mutex> l(g_train_hook_mu);
    hook = g_train_hook;
  }
  if (hook) hook(phase);
}

}  // namespace

namespace testing {
void SetDictionaryTrainingHookForTest(std::function<void(const char* phase)> hook) {
  std::lock_guard<std::mutex> l(g_train_hook_mu);
  g_train_hook = std::move(hook);
}
}  // namespace testing

// --- Tenant ------------------------------------------------------------

std::shared_ptr<const compress::Dictionary> Tenant::CurrentDictionary() {
  uint32_t id = 0;
  {
    std::lock_guard<std::mutex> l(dicts.mu);
    id = dicts.current;
  }
  if (id == 0) return nullptr;
  // Dropped from the cache: loaded again. Should that fail (an I/O error),
  // the record is sealed without a dictionary, which is always correct.
  std::shared_ptr<const compress::Dictionary> d;
  if (!Find(id, &d).ok()) return nullptr;
  return d;
}

std::string Tenant::SealRecord(std::string_view row_key, std::string_view plain, bool compress) {
  if (!compress) return record::SealUncompressed(record_key, binding(), row_key, plain);
  auto dict = CurrentDictionary();
  return record::Seal(record_key, binding(), row_key, plain, dict.get());
}

bool Tenant::Reseal(std::string_view key, std::string_view value, std::string* out) {
  // A purge or rotation waiting for `life`, or holding it: the record is
  // kept (the family is going away, or a later compaction reseals it).
  if (exclusive_waiting.load()) return false;
  std::shared_lock<std::shared_mutex> l(life, std::try_to_lock);
  if (!l.owns_lock() || cf == nullptr || record_key.empty()) return false;
  std::string plain;
  if (!OpenRecord(key, value, &plain).ok()) return false;
  *out = SealRecord(key, plain);
  sodium_memzero(plain.data(), plain.size());
  // Incompressible with the dictionary: no rewrite for nothing.
  return !DeferredRecord(key, *out);
}

Status Tenant::OpenRecord(std::string_view row_key, std::string_view sealed, std::string* plain) {
  return record::Open(record_key, binding(), row_key, sealed, plain, this);
}

Status Tenant::Find(uint32_t dict_id, std::shared_ptr<const compress::Dictionary>* out) {
  DictionaryCache& cache = shard->dictionaries();
  if (auto d = cache.Lookup(dicts.cache_owner, dict_id)) {
    *out = std::move(d);
    return Status::OK();
  }
  // Not under any lock: a read of the column family. Two threads may both
  // load it; the first to insert wins.
  const std::string what = "record uses compression dictionary " + std::to_string(dict_id);
  const std::string key = format::DictionaryKey(dict_id);
  std::string sealed;
  rocksdb::Status rs = shard->db()->Get(rocksdb::ReadOptions(), cf, key, &sealed);
  if (rs.IsNotFound()) {
    return Status::Corruption(what + ", which the tenant does not have (its row is missing)");
  }
  CV_RETURN_IF_ERROR(fsutil::FromRocks(rs, "read compression dictionary"));
  std::string content;
  // A dictionary row never uses a dictionary itself (no source given).
  Status s = record::Open(record_key, binding(), key, sealed, &content);
  if (!s.ok()) return Status::Corruption(what + ", whose row does not open: " + s.message());
  std::shared_ptr<const compress::Dictionary> d;
  s = compress::Dictionary::Create(dict_id, std::move(content), &d);
  if (!s.ok()) return Status::Corruption(what + ": " + s.message());
  *out = cache.Insert(dicts.cache_owner, dict_id, std::move(d));
  return Status::OK();
}

// --- Store::Impl ---------------------------------------------------------

void Store::Impl::PrepareDictionary(const TenantRef& t) {
  TenantDictionaries& d = t->dicts;
  if (d.scanned) return;
  const uint64_t threshold = options_.dictionary_training_calls;
  // The tenant's dictionary: its 'Z' row (one today; were there several,
  // any of them is a correct choice, and the last key is taken).
  {
    const std::string lower(1, format::kDictionaryPrefix);
    const std::string upper(1, static_cast<char>(format::kDictionaryPrefix + 1));
    rocksdb::Slice lo(lower), hi(upper);
    rocksdb::ReadOptions ro;
    ro.iterate_lower_bound = &lo;
    ro.iterate_upper_bound = &hi;
    std::unique_ptr<rocksdb::Iterator> it(t->shard->db()->NewIterator(ro, t->cf));
    it->SeekToLast();
    uint32_t found = 0;
    if (it->Valid()) {
      auto id = format::ParseDictionaryKey(it->key().ToStringView());
      if (!id || *id == 0) {
        d.broken = true;  // a malformed 'Z' key: leave it to Verify
      } else {
        found = *id;
      }
    }
    if (!it->status().ok()) return;  // try again at the next put
    d.current_id = found;
  }
  if (d.current_id != 0 && !d.broken) {
    std::shared_ptr<const compress::Dictionary> dict;
    if (t->Find(d.current_id, &dict).ok()) {
      std::lock_guard<std::mutex> l(t->dicts.mu);
      d.current = d.current_id;
    } else {
      // Reads of its records fail with kCorruption (and Verify reports it);
      // new records are written without a dictionary.
      d.broken = true;
    }
  }
  d.train_at = 0;
  if (d.current_id == 0 && !d.broken && threshold > 0) {
    // Count the calls up to the threshold (time index keys only).
    uint64_t n = 0;
    if (!calls::CountTimeIndex(t, threshold, &n).ok()) return;
    d.calls = n;
    d.train_at = threshold;
  }
  d.scanned = true;
}

void Store::Impl::AfterPut(const TenantRef& t, uint64_t created) {
  TenantDictionaries& d = t->dicts;
  if (!d.scanned) return;
  d.calls += created;
  if (d.train_at == 0 || d.calls < d.train_at || d.queued || read_only()) return;
  const uint64_t retry_at = d.calls + std::max<uint64_t>(options_.dictionary_training_calls, 1);
  if (options_.dictionary_training_threads <= 0) {
    // In the put (no training threads): the tenant is held and write_mu too.
    std::vector<std::string> samples;
    uint32_t id = 0;
    Status s = SampleDictionary(t, &samples, &id);
    std::string content;
    if (s.ok()) s = compress::TrainDictionary(samples, compress::kDictionaryBytes, id, &content);
    for (auto& x : samples) sodium_memzero(x.data(), x.size());
    if (s.ok()) s = StoreDictionary(t, id, std::move(content));
    if (s.ok()) {
      d.train_at = 0;  // one dictionary per tenant (ids leave room for more)
      trainings_done_.fetch_add(1);
    } else {
      // Too few or too uniform samples (deletes make `calls` an
      // overestimate), or an I/O error: try again a threshold later.
      d.train_at = retry_at;
      trainings_failed_.fetch_add(1);
    }
    return;
  }
  {
    std::lock_guard<std::mutex> l(train_mu_);
    if (train_stop_) return;  // closing: the next open counts again
    train_queue_.push_back(TrainingJob{t.t, t->rec.tenant_id});
    while (train_threads_.size() < static_cast<size_t>(options_.dictionary_training_threads)) {
      train_threads_.emplace_back([this] { TrainingLoop(); });
    }
  }
  d.queued = true;
  train_cv_.notify_one();
  RunTrainingHook("queued");
}

void Store::Impl::TrainingLoop() {
  std::unique_lock<std::mutex> l(train_mu_);
  while (true) {
    train_cv_.wait(l, [this] { return train_stop_ || !train_queue_.empty(); });
    if (train_stop_) return;
    TrainingJob job = std::move(train_queue_.front());
    train_queue_.pop_front();
    ++train_running_;
    l.unlock();
    RunTrainingJob(job);
    RunTrainingHook("done");
    l.lock();
    --train_running_;
  }
}

void Store::Impl::StopTraining() {
  std::vector<std::thread> threads;
  {
    std::lock_guard<std::mutex> l(train_mu_);
    train_stop_ = true;
    train_stopping_.store(true);
    train_queue_.clear();
    threads.swap(train_threads_);
  }
  train_cv_.notify_all();
  for (auto& th : threads) th.join();
}

void Store::Impl::RunTrainingJob(const TrainingJob& job) {
  // The Tenant object the put queued: a purge (and a tenant created again
  // under the id), a move out or in, or Close makes another object or none,
  // and the job is given up: its 'Z' row may go only to the family of the
  // incarnation that crossed the threshold.
  std::shared_ptr<Tenant> mine = job.tenant.lock();
  if (!mine) {
    trainings_given_up_.fetch_add(1);
    return;
  }
  const uint64_t step = std::max<uint64_t>(options_.dictionary_training_calls, 1);
  // Ends the job in the writer's state. REQUIRES: mine->write_mu.
  auto settle = [&](bool trained) {
    TenantDictionaries& d = mine->dicts;
    d.queued = false;
    d.train_at = trained ? 0 : d.calls + step;
  };
  auto give_up = [&]() {
    trainings_given_up_.fetch_add(1);
    std::lock_guard<std::mutex> w(mine->write_mu);
    settle(false);
  };
  auto acquire = [&]() -> Result<TenantRef> {
    if (train_stopping_.load()) return Status::FailedPrecondition("the store is closing");
    auto ref = Acquire(job.tenant_id, Access::kWrite);
    if (ref.ok() && ref->t != mine) {
      return Status::TenantPurged("another incarnation of the tenant");
    }
    return ref;
  };

  // 1. Samples and a free id, the tenant held as a reader holds it.
  std::vector<std::string> samples;
  uint32_t id = 0;
  Status s;
  {
    auto ref = acquire();
    if (!ref.ok()) return give_up();
    s = SampleDictionary(*ref, &samples, &id);
  }
  RunTrainingHook("sampled");
  // 2. The CPU work, with no tenant lock held.
  std::string content;
  if (s.ok()) s = compress::TrainDictionary(samples, compress::kDictionaryBytes, id, &content);
  for (auto& x : samples) sodium_memzero(x.data(), x.size());
  samples.clear();
  if (s.ok()) RunTrainingHook("trained");
  // 3. The row, holding what a put holds: a purge, a move's fence or drain
  // and a rotation's held phase (which take the tenant's life lock
  // exclusively) come wholly before or after it; sealed under the keys the
  // tenant has now (a rotation that switched meanwhile: the new ones).
  auto ref = acquire();
  if (!ref.ok()) {
    sodium_memzero(content.data(), content.size());
    return give_up();
  }
  std::lock_guard<std::mutex> w(mine->write_mu);
  TenantDictionaries& d = mine->dicts;
  if (!s.ok()) {
    trainings_failed_.fetch_add(1);
    return settle(false);
  }
  if (!d.scanned || d.current_id != 0 || d.broken) {
    // Nothing to do (a dictionary came meanwhile), or the writer's state is
    // unknown: the next put reads it again.
    sodium_memzero(content.data(), content.size());
    d.queued = false;
    return;
  }
  s = StoreDictionary(*ref, id, std::move(content));
  if (s.ok()) {
    trainings_done_.fetch_add(1);
  } else {
    trainings_failed_.fetch_add(1);
    Log(LogLevel::kWarn, "dictionary training: storing the dictionary failed: " + s.ToString());
  }
  settle(s.ok());
}

Status Store::Impl::SampleDictionary(const TenantRef& t, std::vector<std::string>* out,
                                     uint32_t* out_id) {
  // Samples: the tenant's own records, in call-hash order (so a pseudo-
  // random sample of its calls). The metadata part is re-encoded without
  // participants' names, e-mail addresses and phone numbers or CRM object
  // ids, so that those identifiers (what a data-subject erasure removes)
  // do not end up in the dictionary.
  std::vector<std::string>& samples = *out;
  size_t total = 0;
  {
    const std::string lower(1, format::kCallPrefix);
    const std::string upper(1, static_cast<char>(format::kCallPrefix + 1));
    rocksdb::Slice lo(lower), hi(upper);
    rocksdb::ReadOptions ro;
    ro.iterate_lower_bound = &lo;
    ro.iterate_upper_bound = &hi;
    std::unique_ptr<rocksdb::Iterator> it(t->shard->db()->NewIterator(ro, t->cf));
    for (it->SeekToFirst(); it->Valid() && total < kTrainBytes; it->Next()) {
      auto k = format::ParseCallKey(it->key().ToStringView());
      if (!k) continue;
      std::string plain;
      if (!t->OpenRecord(it->key().ToStringView(), it->value().ToStringView(), &plain).ok()) {
        continue;  // Verify reports it; it is no sample
      }
      if (k->part == format::Part::kMeta) {
        Call c;
        uint32_t parts = 0;
        if (!codec::DecodeMeta(plain, &c, &parts).ok()) continue;
        for (auto& p : c.participants) calls::ClearIdentity(&p);
        for (auto& l : c.crm_links) l.object_id.clear();
        plain = codec::EncodeMeta(c, parts);
      }
      if (plain.size() > kSampleBytes) plain.resize(kSampleBytes);
      total += plain.size();
      samples.push_back(std::move(plain));
    }
    CV_RETURN_IF_ERROR(fsutil::FromRocks(it->status(), "scan records for a dictionary"));
  }
  // A random id, never one in use: were a dictionary row lost (damage,
  // tampering), a new dictionary must not take its id, or the records
  // that name the lost one would decode with the wrong dictionary.
  // StoreDictionary checks it again.
  uint32_t id = 0;
  for (int attempt = 0; attempt < 8 && id == 0; ++attempt) {
    const std::string r = crypto::RandomString(4);
    id = format::DecodeFixed32LE(r.data());
    if (id == 0) continue;
    std::string existing;
    rocksdb::Status gs =
        t->shard->db()->Get(rocksdb::ReadOptions(), t->cf, format::DictionaryKey(id), &existing);
    if (gs.ok()) {
      id = 0;
      continue;
    }
    if (!gs.IsNotFound()) return fsutil::FromRocks(gs, "read compression dictionary");
  }
  if (id == 0) return Status::Corruption("no free compression dictionary id");
  *out_id = id;
  return Status::OK();
}

Status Store::Impl::StoreDictionary(const TenantRef& t, uint32_t id, std::string content) {
  TenantDictionaries& d = t->dicts;
  const std::string key = format::DictionaryKey(id);
  {
    std::string existing;
    rocksdb::Status gs = t->shard->db()->Get(rocksdb::ReadOptions(), t->cf, key, &existing);
    if (gs.ok()) {
      sodium_memzero(content.data(), content.size());
      return Status::Corruption("compression dictionary id taken meanwhile");
    }
    if (!gs.IsNotFound()) {
      sodium_memzero(content.data(), content.size());
      return fsutil::FromRocks(gs, "read compression dictionary");
    }
  }
  std::string sealed = record::Seal(t->record_key, t->binding(), key, content);
  std::shared_ptr<const compress::Dictionary> dict;
  CV_RETURN_IF_ERROR(compress::Dictionary::Create(id, std::move(content), &dict));
  // Synced whatever options.sync_writes says: every record that names this
  // dictionary comes after it.
  rocksdb::WriteOptions wo;
  wo.sync = true;
  CV_RETURN_IF_ERROR(
      fsutil::FromRocks(t->shard->db()->Put(wo, t->cf, key, sealed), "write compression dictionary"));
  d.current_id = id;
  t->shard->dictionaries().Insert(d.cache_owner, id, std::move(dict));
  std::lock_guard<std::mutex> l(d.mu);
  d.current = id;
  return Status::OK();
}

}  // namespace callvault
