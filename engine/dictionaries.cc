// Per-tenant zstd dictionaries (docs/decisions/0009): the tenant side
// (finding, caching, sealing with the current dictionary) and training.
//
// Training runs in the writer, after a put has committed, under the
// tenant's write_mu (so once per tenant it delays that tenant's next writer
// by the training time; readers and other tenants are not held). It never
// makes the put fail: every error only means "no dictionary yet". The
// dictionary row is written (synced) before any record uses it, so any
// record that names a dictionary follows its row in the WAL.
#include <rocksdb/db.h>
#include <sodium.h>

#include "engine/calls_internal.h"
#include "engine/codec.h"
#include "engine/compress.h"
#include "engine/crypto.h"
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

}  // namespace

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

std::string Tenant::SealRecord(std::string_view row_key, std::string_view plain) {
  auto dict = CurrentDictionary();
  return record::Seal(record_key, binding(), row_key, plain, dict.get());
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
  if (d.train_at == 0 || d.calls < d.train_at) return;
  if (TrainDictionary(t).ok()) {
    d.train_at = 0;  // one dictionary per tenant (ids leave room for more)
  } else {
    // Too few or too uniform samples (deletes make `calls` an
    // overestimate), or an I/O error: try again a threshold later.
    d.train_at = d.calls + std::max<uint64_t>(options_.dictionary_training_calls, 1);
  }
}

Status Store::Impl::TrainDictionary(const TenantRef& t) {
  TenantDictionaries& d = t->dicts;
  // Samples: the tenant's own records, in call-hash order (so a pseudo-
  // random sample of its calls). The metadata part is re-encoded without
  // participants' names, e-mail addresses and phone numbers or CRM object
  // ids, so that those identifiers (what a data-subject erasure removes)
  // do not end up in the dictionary.
  std::vector<std::string> samples;
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
  uint32_t id = 0;
  std::string key;
  for (int attempt = 0; attempt < 8 && id == 0; ++attempt) {
    const std::string r = crypto::RandomString(4);
    id = format::DecodeFixed32LE(r.data());
    if (id == 0) continue;
    key = format::DictionaryKey(id);
    std::string existing;
    rocksdb::Status gs = t->shard->db()->Get(rocksdb::ReadOptions(), t->cf, key, &existing);
    if (gs.ok()) {
      id = 0;
      continue;
    }
    if (!gs.IsNotFound()) return fsutil::FromRocks(gs, "read compression dictionary");
  }
  if (id == 0) return Status::Corruption("no free compression dictionary id");
  std::string content;
  Status s = compress::TrainDictionary(samples, compress::kDictionaryBytes, id, &content);
  for (auto& x : samples) sodium_memzero(x.data(), x.size());
  CV_RETURN_IF_ERROR(s);
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
