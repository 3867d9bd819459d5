#include "engine/reseal.h"

#include "callvault/limits.h"
#include "engine/record.h"
#include "format/envelope.h"
#include "format/rowkey.h"

namespace callvault {

bool DeferredRow(std::string_view key) {
  if (key.empty() || key[0] != format::kCallPrefix) return false;
  auto ck = format::ParseCallKey(key);
  return ck && DeferredPart(ck->part);
}

bool DeferredRecord(std::string_view key, std::string_view value) {
  if (!DeferredRow(key)) return false;
  format::EnvelopeView v;
  if (format::ParseEnvelope(value, limits::kMaxRecordBytes, &v) != format::EnvelopeError::kOk) {
    return false;
  }
  return v.header.codec == format::Codec::kNone &&
         v.ciphertext.size() >= format::kTagBytes + record::kCompressMinBytes;
}

namespace {

class ResealFilter : public rocksdb::CompactionFilter {
 public:
  ResealFilter(std::shared_ptr<Resealer> resealer, ResealCounters* counters)
      : resealer_(std::move(resealer)), counters_(counters) {}

  Decision FilterV2(int /*level*/, const rocksdb::Slice& key, ValueType value_type,
                    const rocksdb::Slice& existing_value, std::string* new_value,
                    std::string* /*skip_until*/) const override {
    if (value_type != ValueType::kValue) return Decision::kKeep;
    const std::string_view k = key.ToStringView(), v = existing_value.ToStringView();
    if (!DeferredRecord(k, v)) return Decision::kKeep;
    if (!resealer_->Reseal(k, v, new_value)) {
      counters_->kept.fetch_add(1, std::memory_order_relaxed);
      return Decision::kKeep;
    }
    counters_->resealed.fetch_add(1, std::memory_order_relaxed);
    return Decision::kChangeValue;
  }

  // A value in a blob file is never read back by the filter: records are
  // resealed at flush, before RocksDB moves large values into blob files,
  // and a deferred record is always smaller than those (DeferrableSize),
  // so a blob never holds one.
  Decision FilterBlobByKey(int /*level*/, const rocksdb::Slice& /*key*/,
                           std::string* /*new_value*/,
                           std::string* /*skip_until*/) const override {
    return Decision::kKeep;
  }

  const char* Name() const override { return "callvault.ResealFilter"; }

 private:
  const std::shared_ptr<Resealer> resealer_;
  ResealCounters* const counters_;
};

}  // namespace

void ResealFilterFactory::SetLookup(Lookup lookup) {
  std::lock_guard<std::mutex> l(mu_);
  lookup_ = std::move(lookup);
}

void ResealFilterFactory::ClearLookup() {
  std::lock_guard<std::mutex> l(mu_);
  lookup_ = nullptr;
}

std::unique_ptr<rocksdb::CompactionFilter> ResealFilterFactory::CreateCompactionFilter(
    const rocksdb::CompactionFilter::Context& context) {
  std::shared_ptr<Resealer> r;
  {
    std::lock_guard<std::mutex> l(mu_);
    if (lookup_) r = lookup_(context.column_family_id);
  }
  if (r == nullptr) return nullptr;
  return std::make_unique<ResealFilter>(std::move(r), counters_);
}

}  // namespace callvault
