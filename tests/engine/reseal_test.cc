// Deferred compression (docs/decisions/0052): a put seals its call's
// records uncompressed; flushes and compactions compress them (with the
// tenant's dictionary when it has one) and seal them again. Shown here:
//  - before a flush the stored records are sealed with codec none, after it
//    they are compressed, and every call reads back the same, Verify clean;
//  - with a dictionary the flush uses it, for records written before it too;
//  - a record the tenant cannot open (moved from another tenant's family, a
//    flipped byte) is never resealed: it stays byte for byte as it was, so
//    the damage stays loud;
//  - bytes on disk after a flush and a compaction are those of the writer's
//    own compression (Options::defer_compression = false).
#include <gtest/gtest.h>

#include <filesystem>
#include <map>

#include "callvault/metrics.h"
#include "callvault/store.h"
#include "engine/crypto.h"
#include "engine/reseal.h"
#include "format/envelope.h"
#include "format/rowkey.h"
#include "tests/testutil/calls.h"
#include "tests/testutil/raw_shard.h"
#include "tests/testutil/testutil.h"
#include "workload/workload.h"

namespace callvault {
namespace {

using testutil::RawShard;

std::vector<Call> Calls(size_t n, uint64_t seed, const std::string& prefix, double scale = 0.05) {
  return testutil::GeneratedCalls(n, seed, prefix, scale);
}

// Codec counts of a family's call records ('C' rows but the summaries,
// which writers compress themselves), read raw from a closed store:
// {codec -> rows}, and how many are deferred (codec none, large enough to
// compress).
struct Codecs {
  std::map<int, size_t> by_codec;
  size_t deferred = 0;
  size_t rows = 0;
  std::map<int, size_t> deferred_by_part;
  size_t codec(int c) const {
    auto it = by_codec.find(c);
    return it == by_codec.end() ? 0 : it->second;
  }
};

Codecs ReadCodecs(const std::string& shard, const std::string& cf) {
  Codecs c;
  RawShard raw(shard, /*read_only=*/true);
  EXPECT_TRUE(raw.status().ok()) << raw.status().ToString();
  for (const auto& [k, v] : raw.Scan(cf)) {
    auto ck = format::ParseCallKey(k);
    if (!ck || ck->part == format::Part::kSummary) continue;
    ++c.rows;
    ++c.by_codec[static_cast<uint8_t>(v[1])];
    if (DeferredRecord(k, v)) {
      ++c.deferred;
      ++c.deferred_by_part[static_cast<int>(ck->part)];
    }
  }
  return c;
}

uint64_t TableBytes(const std::string& db) {
  uint64_t total = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(db)) {
    const auto ext = e.path().extension();
    if (e.is_regular_file() && (ext == ".sst" || ext == ".blob")) total += e.file_size();
  }
  return total;
}

void ExpectSame(Store& store, const std::string& tenant, const std::vector<Call>& calls) {
  for (const auto& want : calls) {
    auto got = store.GetCall(tenant, want.call_id, kPartAll);
    ASSERT_OK(got);
    EXPECT_EQ(got->title, want.title);
    EXPECT_EQ(got->transcript, want.transcript) << want.call_id;
    EXPECT_EQ(got->insights.summary, want.insights.summary);
    EXPECT_EQ(got->participants.size(), want.participants.size());
  }
}

class ResealTest : public ::testing::Test {
 protected:
  void SetUp() override {
    crypto::Init();
    ts_.options.dictionary_training_calls = 0;
    ASSERT_OK(ts_.Open());
    auto info = ts_->CreateTenant({.tenant_id = "acme"});
    ASSERT_OK(info);
    acme_ = *info;
    auto other = ts_->CreateTenant({.tenant_id = "globex"});
    ASSERT_OK(other);
    globex_ = *other;
    ASSERT_EQ(acme_.shard, globex_.shard) << "the test moves a record between two families of one shard";
    shard_ = ts_->ShardPaths()[acme_.shard];
  }

  void Put(const std::string& tenant, const std::vector<Call>& calls) {
    for (size_t i = 0; i < calls.size(); i += 10) {
      std::vector<Call> b(calls.begin() + static_cast<long>(i),
                          calls.begin() + static_cast<long>(std::min(calls.size(), i + 10)));
      ASSERT_OK(ts_->PutCalls(tenant, b));
    }
  }

  testutil::TestStore ts_;
  TenantInfo acme_, globex_;
  std::string shard_;
};

TEST_F(ResealTest, UncompressedUntilTheFlushThenCompressedAndTheSame) {
  EXPECT_TRUE(ts_.options.defer_compression) << "the default";
  const auto calls = Calls(60, 3, "c-");
  Put("acme", calls);
  ts_.Close();
  // In the WAL (replayed into the raw memtable): sealed, not compressed.
  const Codecs before = ReadCodecs(shard_, acme_.column_family);
  ASSERT_GT(before.rows, 0u);
  EXPECT_GE(before.deferred, calls.size()) << "transcripts at least";
  EXPECT_EQ(before.codec(1), 0u) << "no record compressed by the writer";

  ASSERT_OK(ts_.Open());
  ExpectSame(*ts_.store, "acme", calls);  // served from the memtable
  ASSERT_OK(ts_->Flush());
  auto st = ts_->Stats();
  ASSERT_OK(st);
  EXPECT_GE(st->compression.resealed, before.deferred);
  auto m = ts_->Metrics();
  ASSERT_OK(m);
  EXPECT_EQ(m->records_resealed, st->compression.resealed);
  EXPECT_NE(RenderPrometheus(*m).find("callvault_records_resealed_total " +
                                      std::to_string(m->records_resealed) + "\n"),
            std::string::npos);
  ts_.Close();
  const Codecs after = ReadCodecs(shard_, acme_.column_family);
  EXPECT_EQ(after.rows, before.rows);
  EXPECT_EQ(after.deferred, 0u) << "a deferred record survived the flush";
  EXPECT_GE(after.codec(1), before.deferred);

  ASSERT_OK(ts_.Open());
  ExpectSame(*ts_.store, "acme", calls);
  auto report = ts_->Verify(std::nullopt);
  ASSERT_OK(report);
  EXPECT_EQ(report->records_failed, 0u);
  for (const auto& f : report->failures) ADD_FAILURE() << f;
}

TEST_F(ResealTest, TheFlushUsesTheTenantsDictionaryForEarlierRecordsToo) {
  ts_.options.dictionary_training_calls = 120;
  ASSERT_OK(ts_.Reopen());
  const auto calls = Calls(180, 5, "d-");
  Put("acme", calls);
  ASSERT_TRUE(testutil::WaitForDictionaryTraining(*ts_.store));
  ASSERT_OK(ts_->Flush());
  ts_.Close();
  const Codecs c = ReadCodecs(shard_, acme_.column_family);
  // Records written before the dictionary existed are flushed after it:
  // compressed with it, like the later ones.
  for (const auto& [part, n] : c.deferred_by_part) {
    ADD_FAILURE() << n << " records of part " << part << " left uncompressed";
  }
  EXPECT_EQ(c.codec(1), 0u) << "compressed without the dictionary the tenant has";
  EXPECT_GE(c.codec(2), calls.size());
  ASSERT_OK(ts_.Open());
  ExpectSame(*ts_.store, "acme", calls);
  auto report = ts_->Verify(std::nullopt);
  ASSERT_OK(report);
  EXPECT_EQ(report->records_failed, 0u);
}

TEST_F(ResealTest, ARecordTheTenantCannotOpenIsKeptByteForByte) {
  const auto acme_calls = Calls(20, 7, "a-");
  const auto globex_calls = Calls(20, 8, "g-");
  Put("acme", acme_calls);
  Put("globex", globex_calls);
  ts_.Close();
  // Two deferred transcript rows of globex: one replaced by an acme record
  // (sealed under acme's key and binding), one with a flipped ciphertext byte.
  std::map<std::string, std::string> planted;
  {
    RawShard raw(shard_, /*read_only=*/false);
    ASSERT_TRUE(raw.status().ok()) << raw.status().ToString();
    std::string acme_value;
    for (const auto& [k, v] : raw.Scan(acme_.column_family)) {
      auto ck = format::ParseCallKey(k);
      if (ck && ck->part == format::Part::kTranscript && DeferredRecord(k, v)) acme_value = v;
    }
    ASSERT_FALSE(acme_value.empty());
    for (const auto& [k, v] : raw.Scan(globex_.column_family)) {
      auto ck = format::ParseCallKey(k);
      if (!ck || ck->part != format::Part::kTranscript || !DeferredRecord(k, v)) continue;
      if (planted.empty()) {
        planted[k] = acme_value;
      } else {
        std::string flipped = v;
        flipped[flipped.size() / 2] ^= 0x01;
        planted[k] = flipped;
        break;
      }
    }
    ASSERT_EQ(planted.size(), 2u);
    for (const auto& [k, v] : planted) raw.Put(globex_.column_family, k, v);
  }
  ASSERT_OK(ts_.Open());
  ASSERT_OK(ts_->Flush());
  ASSERT_OK(ts_->CompactAll());
  auto st = ts_->Stats();
  ASSERT_OK(st);
  EXPECT_GE(st->compression.kept, 2u);
  ts_.Close();
  {
    RawShard raw(shard_, /*read_only=*/true);
    for (const auto& [k, v] : planted) {
      EXPECT_EQ(raw.Get(globex_.column_family, k), v) << "a record that does not open was rewritten";
    }
  }
  ASSERT_OK(ts_.Open());
  size_t corrupt = 0;
  for (const auto& c : globex_calls) {
    auto r = ts_->GetCall("globex", c.call_id, kPartAll);
    if (r.ok()) continue;
    EXPECT_EQ(r.status().code(), Code::kCorruption) << r.status().ToString();
    ++corrupt;
  }
  EXPECT_EQ(corrupt, 2u);
  ExpectSame(*ts_.store, "acme", acme_calls);
}

TEST(ResealBytesTest, BytesOnDiskAsWithTheWritersOwnCompression) {
  crypto::Init();
  const auto calls = Calls(200, 9, "b-", 0.3);
  uint64_t bytes[2] = {0, 0};
  for (int defer = 0; defer < 2; ++defer) {
    testutil::TestStore ts;
    ts.options.defer_compression = defer == 1;
    ts.options.dictionary_training_calls = 0;
    ASSERT_OK(ts.Open());
    ASSERT_OK(ts->CreateTenant({.tenant_id = "acme"}));
    for (size_t i = 0; i < calls.size(); i += 20) {
      ASSERT_OK(ts->PutCalls("acme", std::vector<Call>(calls.begin() + static_cast<long>(i),
                                                       calls.begin() + static_cast<long>(i + 20))));
    }
    ASSERT_OK(ts->Flush());
    ASSERT_OK(ts->CompactAll());
    ts.Close();
    bytes[defer] = TableBytes(ts.db);
  }
  std::cout << "[reseal] table and blob bytes: writer compresses " << bytes[0]
            << ", flush compresses " << bytes[1] << std::endl;
  ASSERT_GT(bytes[0], 0u);
  // Not a byte more than 2% (the nonces and the order of compression are
  // the same; table layouts differ a little); uncompressed would be ~2-3x.
  EXPECT_LE(static_cast<double>(bytes[1]), 1.02 * static_cast<double>(bytes[0]));
}

}  // namespace
}  // namespace callvault
