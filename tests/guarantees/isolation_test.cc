// Guarantee 2 (tenants cannot reach each other) and testing.md T5/T8.
//
// With the store closed, a shard is opened with raw RocksDB (the engine's
// own options) and sealed values are moved: into another tenant's column
// family, onto another call's row, onto another part of the same call, with
// a rewritten key-version field, with every bit of small records flipped one
// at a time, truncated, extended, with swapped nonces and tags. After reopen
// every GetCall / ListCalls / Verify that touches a moved or damaged record
// returns kCorruption (never OK with other content), Verify counts exactly
// the damaged records, and every other record still reads back whole.
// Also: a purged tenant re-created under the same id gets a new column
// family whose records old ciphertext cannot pass for. Unit-level checks of
// record::Seal / record::Open: isolation_record_test.cc.
#include <random>
#include <set>

#include "callvault/limits.h"
#include "callvault/store.h"
#include "engine/record.h"
#include "format/coding.h"
#include "format/envelope.h"
#include "format/rowkey.h"
#include "tests/guarantees/guarantee_util.h"
#include "tests/testutil/testutil.h"

namespace callvault {
namespace {

using format::Part;
using guarantees::RawShard;
using testutil::TestStore;

constexpr int64_t kT0 = 1'767'225'600'000'000;  // 2026-01-01T00:00:00Z
constexpr size_t kNonceOffset = format::kEnvelopeHeaderBytes;

// A call whose every field is fixed, so that a read can be compared whole.
Call Fixed(const std::string& id, int64_t at, const std::string& marker) {
  Call c = testutil::MakeCall(id, at, marker);
  c.created_at = at + 1;
  c.updated_at = at + 2;
  return c;
}

// What GetCall returns for `parts`.
Call Project(Call c, uint32_t parts) {
  if (!(parts & kPartParticipants)) c.participants.clear();
  if (!(parts & kPartTranscript)) c.transcript.clear();
  if (!(parts & kPartInsights)) c.insights = Insights{};
  return c;
}

std::string FlipBit(std::string v, size_t bit) {
  v[bit / 8] = static_cast<char>(v[bit / 8] ^ (1 << (bit % 8)));
  return v;
}

class IsolationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    rng_.seed(guarantees::TestSeed());
    ASSERT_OK(ts_.Open());
  }

  std::string Marker() { return "ISO-" + guarantees::RandHex(rng_, 16); }

  TenantInfo Create(const std::string& id) {
    auto info = ts_->CreateTenant({.tenant_id = id});
    EXPECT_OK(info);
    return info.ok() ? *info : TenantInfo{};
  }

  // Puts `c` and remembers it as the expected content.
  void Put(const std::string& tenant, const Call& c) {
    ASSERT_OK(ts_->PutCall(tenant, c));
    expected_[tenant][c.call_id] = c;
  }

  // The call hash of each call by started_at, read from the time index.
  static std::map<int64_t, std::string> HashesByTime(const RawShard& raw, const std::string& cf) {
    std::map<int64_t, std::string> out;
    for (const auto& [k, v] : raw.Scan(cf)) {
      auto t = format::ParseTimeIndexKey(k);
      if (t) out[t->started_at] = std::string(t->call_hash);
    }
    return out;
  }

  // The status of GetCall, checked: kCorruption with a message free of
  // content, or OK with exactly the expected content.
  Code GetCode(const std::string& tenant, const std::string& id, uint32_t parts) {
    auto r = ts_->GetCall(tenant, id, parts);
    if (r.ok()) {
      const Call& want = expected_[tenant][id];
      EXPECT_TRUE(*r == Project(want, parts))
          << "GetCall(" << tenant << ", " << id << ") returned OK with other content";
      return Code::kOk;
    }
    ExpectCleanCorruption(r.status());
    return r.status().code();
  }

  void ExpectCorrupt(const std::string& tenant, const std::string& id, uint32_t parts) {
    EXPECT_EQ(GetCode(tenant, id, parts), Code::kCorruption)
        << tenant << "/" << id << " parts " << parts;
  }
  void ExpectWhole(const std::string& tenant, const std::string& id, uint32_t parts = kPartAll) {
    EXPECT_EQ(GetCode(tenant, id, parts), Code::kOk) << tenant << "/" << id << " parts " << parts;
  }

  static void ExpectCleanCorruption(const Status& s) {
    EXPECT_EQ(s.code(), Code::kCorruption) << s.ToString();
    EXPECT_EQ(s.message().find("ISO-"), std::string::npos)
        << "content in message: " << s.ToString();
  }

  // ListCalls over [from, to): kCorruption, or OK listing only calls the
  // tenant really has, with their own metadata.
  Code ListCode(const std::string& tenant, int64_t from, int64_t to, size_t* listed = nullptr) {
    ListQuery q;
    q.from = from;
    q.to = to;
    q.limit = limits::kMaxListLimit;
    auto page = ts_->ListCalls(tenant, q);
    if (!page.ok()) {
      ExpectCleanCorruption(page.status());
      return page.status().code();
    }
    for (const auto& c : page->calls) {
      auto it = expected_[tenant].find(c.call_id);
      EXPECT_TRUE(it != expected_[tenant].end()) << "listed a call the tenant never had";
      if (it != expected_[tenant].end()) {
        EXPECT_TRUE(c == Project(it->second, kPartMetadata)) << "listed other content";
      }
    }
    if (listed) *listed = page->calls.size();
    return Code::kOk;
  }

  uint64_t VerifyFailures(const std::string& tenant) {
    auto v = ts_->Verify(tenant);
    EXPECT_OK(v);
    if (!v.ok()) return 0;
    for (const auto& f : v->failures) EXPECT_EQ(f.find("ISO-"), std::string::npos) << f;
    if (v->records_failed > 0) {
      EXPECT_FALSE(v->failures.empty());
    }
    return v->records_failed;
  }

  std::mt19937_64 rng_;
  TestStore ts_;
  std::map<std::string, std::map<std::string, Call>> expected_;
};

// (a) A sealed value copied into another tenant's column family.
TEST_F(IsolationTest, CopyIntoAnotherTenantFailsAuthentication) {
  TenantInfo alpha = Create("alpha"), beta = Create("beta");
  ASSERT_EQ(alpha.shard, beta.shard);
  const std::string shard = ts_->ShardPaths()[alpha.shard];
  // The same call ids in both tenants; different content and times.
  for (int i = 0; i < 5; ++i) {
    std::string id = i < 3 ? "shared-" + std::to_string(i) : "own-" + std::to_string(i);
    Put("alpha", Fixed(id, kT0 + i, Marker()));
    Put("beta", Fixed(id, kT0 + 1'000'000 + i, Marker()));
  }
  ts_.Close();
  size_t verbatim_sealed = 0, parts_of_shared0 = 0;
  {
    RawShard raw(shard, /*read_only=*/false);
    ASSERT_TRUE(raw.status().ok()) << raw.status().ToString();
    auto ha = HashesByTime(raw, alpha.column_family);
    auto hb = HashesByTime(raw, beta.column_family);
    ASSERT_EQ(ha.size(), 5u);
    ASSERT_EQ(hb.size(), 5u);
    auto a = [&](int i, Part p) { return format::CallKey(ha[kT0 + i], p); };
    auto b = [&](int i, Part p) { return format::CallKey(hb[kT0 + 1'000'000 + i], p); };
    // Onto beta's row for the same call id: every part of shared-0 (as
    // many as the engine stores), one part each of shared-1 and shared-2.
    const std::string a0 = format::CallKeyPrefix(ha[kT0]);
    for (const auto& [k, v] : raw.Scan(alpha.column_family)) {
      if (k.size() != a0.size() + 1 || k.compare(0, a0.size(), a0) != 0) continue;
      raw.Put(beta.column_family, format::CallKeyPrefix(hb[kT0 + 1'000'000]) + k.back(), v);
      ++parts_of_shared0;
    }
    ASSERT_GE(parts_of_shared0, 3u);
    raw.Put(beta.column_family, b(1, Part::kTranscript),
            raw.Get(alpha.column_family, a(1, Part::kTranscript)));
    raw.Put(beta.column_family, b(2, Part::kInsights),
            raw.Get(alpha.column_family, a(2, Part::kInsights)));
    // Verbatim, under alpha's own row keys: every record of alpha's own-3.
    for (const auto& [k, v] : raw.Scan(alpha.column_family)) {
      if (k.find(ha[kT0 + 3]) == std::string::npos) continue;
      raw.Put(beta.column_family, k, v);
      if (v.size() >= format::kEnvelopeOverhead) ++verbatim_sealed;
    }
    ASSERT_GE(verbatim_sealed, 3u);
  }
  ASSERT_OK(ts_.Open());
  for (uint32_t parts : {uint32_t{kPartMetadata}, uint32_t{kPartAll}}) {
    ExpectCorrupt("beta", "shared-0", parts);
  }
  ExpectWhole("beta", "shared-1", kPartMetadata | kPartParticipants | kPartInsights);
  ExpectCorrupt("beta", "shared-1", kPartTranscript);
  ExpectCorrupt("beta", "shared-1", kPartAll);
  ExpectWhole("beta", "shared-2", kPartMetadata | kPartParticipants | kPartTranscript);
  ExpectCorrupt("beta", "shared-2", kPartInsights);
  ExpectWhole("beta", "own-3");
  ExpectWhole("beta", "own-4");
  for (const auto& [id, c] : expected_["alpha"]) ExpectWhole("alpha", id);
  // Listing: the range with beta's damaged shared-0 fails; beta's clean
  // range lists whole; alpha's copied time-index entry never lists alpha's call.
  EXPECT_EQ(ListCode("beta", kT0 + 1'000'000, kT0 + 1'000'001), Code::kCorruption);
  size_t listed = 0;
  EXPECT_EQ(ListCode("beta", kT0 + 1'000'003, kT0 + 1'000'005, &listed), Code::kOk);
  EXPECT_EQ(listed, 2u);
  size_t foreign = 0;
  Code c = ListCode("beta", kT0, kT0 + 5, &foreign);
  EXPECT_TRUE(c == Code::kCorruption || (c == Code::kOk && foreign == 0));
  EXPECT_EQ(ListCode("alpha", 0, INT64_MAX, &listed), Code::kOk);
  EXPECT_EQ(listed, 5u);
  EXPECT_EQ(VerifyFailures("beta"), parts_of_shared0 + 2u + verbatim_sealed);
  EXPECT_EQ(VerifyFailures("alpha"), 0u);
  auto all = ts_->Verify();
  ASSERT_OK(all);
  EXPECT_EQ(all->tenants, 2u);
  EXPECT_EQ(all->records_failed, parts_of_shared0 + 2u + verbatim_sealed);
}

// (b) Another row of the same tenant: another call, another part, the
// source index; (c) a rewritten key-version field.
TEST_F(IsolationTest, CopyOntoAnotherRowOrPartOrKeyVersionFails) {
  TenantInfo alpha = Create("alpha");
  Create("gamma");  // an untouched neighbour in the same shard
  const std::string shard = ts_->ShardPaths()[alpha.shard];
  for (int i = 0; i < 12; ++i) {
    Call c = Fixed("r" + std::to_string(i), kT0 + i * 1000, Marker());
    if (i == 0 || i == 8) c.source_call_id = "src-" + std::to_string(i);
    Put("alpha", c);
    Put("gamma", Fixed("r" + std::to_string(i), kT0 + i * 1000, Marker()));
  }
  ts_.Close();
  size_t sealed_time_values = 0;
  {
    RawShard raw(shard, false);
    ASSERT_TRUE(raw.status().ok()) << raw.status().ToString();
    auto h = HashesByTime(raw, alpha.column_family);
    ASSERT_EQ(h.size(), 12u);
    auto key = [&](int i, Part p) { return format::CallKey(h[kT0 + i * 1000], p); };
    auto get = [&](const std::string& k) { return raw.Get(alpha.column_family, k); };
    const std::string& cf = alpha.column_family;
    raw.Put(cf, key(1, Part::kMeta), get(key(0, Part::kMeta)));              // another call
    raw.Put(cf, key(2, Part::kTranscript), get(key(0, Part::kTranscript)));  // another call's part
    raw.Put(cf, key(3, Part::kInsights), get(key(0, Part::kInsights)));
    raw.Put(cf, key(4, Part::kTranscript), get(key(4, Part::kInsights)));  // another part
    raw.Put(cf, key(5, Part::kMeta), get(key(5, Part::kTranscript)));
    // Time-index values, when sealed, are bound to their row too.
    std::string t0 = get(format::TimeIndexKey(kT0, h[kT0]));
    if (t0.size() >= format::kEnvelopeOverhead) {
      raw.Put(cf, format::TimeIndexKey(kT0 + 6000, h[kT0 + 6000]), t0);
      ++sealed_time_values;
    }
    // (c) The key-version field (bytes 2..5) rewritten.
    auto with_version = [&](std::string v, uint32_t version) {
      std::string f;
      format::PutFixed32LE(&f, version);
      v.replace(2, 4, f);
      return v;
    };
    raw.Put(cf, key(9, Part::kMeta), with_version(get(key(9, Part::kMeta)), 2));
    raw.Put(cf, key(10, Part::kMeta), with_version(get(key(10, Part::kMeta)), 0));
    raw.Put(cf, key(11, Part::kTranscript),
            with_version(get(key(11, Part::kTranscript)), 0xffffffffu));
    // The source index: r0's entry copied onto r8's. Found by opening each
    // 'S' value with alpha's key (the plaintext is the call hash).
    auto keyring = guarantees::LoadCurrentKeyring(ts_.keys);
    ASSERT_OK(keyring);
    auto keys = guarantees::KeysOf(*keyring, alpha);
    ASSERT_TRUE(keys.has_value());
    std::map<std::string, std::string> source_key_of;  // call hash -> 'S' key
    for (const auto& [k, v] : raw.Scan(cf)) {
      if (k.empty() || k[0] != format::kSourceIndexPrefix) continue;
      std::string plain;
      ASSERT_OK(record::Open(keys->record_key, keys->binding, k, v, &plain));
      source_key_of[plain] = k;
    }
    ASSERT_EQ(source_key_of.size(), 2u);
    ASSERT_TRUE(source_key_of.count(h[kT0]) && source_key_of.count(h[kT0 + 8000]));
    raw.Put(cf, source_key_of[h[kT0 + 8000]], get(source_key_of[h[kT0]]));
  }
  ASSERT_OK(ts_.Open());
  ExpectWhole("alpha", "r0");
  ExpectCorrupt("alpha", "r1", kPartMetadata);
  ExpectWhole("alpha", "r2", kPartMetadata | kPartInsights | kPartParticipants);
  ExpectCorrupt("alpha", "r2", kPartTranscript);
  ExpectCorrupt("alpha", "r3", kPartInsights);
  ExpectCorrupt("alpha", "r4", kPartTranscript);
  ExpectWhole("alpha", "r4", kPartInsights);
  ExpectCorrupt("alpha", "r5", kPartMetadata);
  ExpectWhole("alpha", "r6");
  ExpectWhole("alpha", "r7");
  ExpectWhole("alpha", "r8");
  ExpectCorrupt("alpha", "r9", kPartMetadata);
  ExpectCorrupt("alpha", "r10", kPartMetadata);
  ExpectCorrupt("alpha", "r11", kPartTranscript);
  ExpectWhole("alpha", "r11", kPartMetadata);
  if (sealed_time_values) {
    EXPECT_EQ(ListCode("alpha", kT0 + 6000, kT0 + 6001), Code::kCorruption);
  }
  EXPECT_EQ(ListCode("alpha", kT0 + 1000, kT0 + 1001), Code::kCorruption);
  EXPECT_EQ(ListCode("alpha", kT0 + 5000, kT0 + 5001), Code::kCorruption);
  size_t listed = 0;
  EXPECT_EQ(ListCode("alpha", kT0 + 7000, kT0 + 9000, &listed), Code::kOk);
  EXPECT_EQ(listed, 2u);
  // A re-ingest of r8 by its source id touches the damaged source entry:
  // kCorruption, and nothing is written.
  Call again = expected_["alpha"]["r8"];
  again.call_id = "r8-retry";
  again.title = "changed";
  auto put = ts_->PutCall("alpha", again);
  ExpectCleanCorruption(put.status());
  ExpectWhole("alpha", "r8");
  EXPECT_CODE(ts_->GetCall("alpha", "r8-retry"), Code::kNotFound);
  EXPECT_EQ(*ts_->CountCalls("alpha"), 12u);
  // r1 and r5 metas, r2 r4 r11 transcripts, r3 insights, r9 r10 metas,
  // r8's source entry, and a sealed time-index value if any.
  EXPECT_EQ(VerifyFailures("alpha"), 9u + sealed_time_values);
  EXPECT_EQ(VerifyFailures("gamma"), 0u);
  for (const auto& [id, c] : expected_["gamma"]) ExpectWhole("gamma", id);
}

// (d) Every bit of small sealed records flipped one at a time, every
// truncation, extensions, swapped nonces and tags: one record damaged per
// call, all in one reopen.
TEST_F(IsolationTest, EveryBitFlipTruncationAndNonceSwapIsRejected) {
  // Every call's parts must have one size (bits of call 0's records are
  // flipped on other calls), so no dictionary halfway through the 4,000
  // calls. Bit flips of records compressed with a tenant dictionary:
  // dictionary_test.cc.
  ts_.options.dictionary_training_calls = 0;
  ASSERT_OK(ts_.Reopen());
  TenantInfo tenant = Create("flips");
  Create("clean");
  const std::string shard = ts_->ShardPaths()[tenant.shard];
  constexpr int kCalls = 4000;
  std::vector<Call> batch;
  for (int i = 0; i < kCalls; ++i) {
    Call c;
    c.call_id = "f" + std::to_string(100000 + i);
    c.started_at = kT0 + i * 1000;
    c.created_at = c.started_at;
    c.updated_at = c.started_at;
    c.title = "t";
    c.owner_user_id = "u1";
    expected_["flips"][c.call_id] = c;
    batch.push_back(c);
    if (batch.size() == 1000 || i == kCalls - 1) {
      ASSERT_OK(ts_->PutCalls("flips", batch));
      batch.clear();
    }
  }
  for (int i = 0; i < 20; ++i) Put("clean", Fixed("c" + std::to_string(i), kT0 + i, Marker()));
  ts_.Close();

  enum class Damage { kNone, kMeta, kTime, kOtherPart };
  std::vector<Damage> damage(kCalls, Damage::kNone);
  size_t flips = 0, truncations = 0, others = 0, time_flips = 0, damaged_records = 0;
  size_t meta_len = 0, time_len = 0, other_parts = 0, part_flips = 0;
  {
    RawShard raw(shard, false);
    ASSERT_TRUE(raw.status().ok()) << raw.status().ToString();
    const std::string& cf = tenant.column_family;
    auto h = HashesByTime(raw, cf);
    ASSERT_EQ(h.size(), static_cast<size_t>(kCalls));
    auto at = [&](int i) { return kT0 + i * 1000; };
    auto meta_key = [&](int i) { return format::CallKey(h[at(i)], Part::kMeta); };
    auto time_key = [&](int i) { return format::TimeIndexKey(at(i), h[at(i)]); };
    std::vector<std::string> metas(kCalls);
    meta_len = SIZE_MAX;
    for (int i = 0; i < kCalls; ++i) {
      metas[i] = raw.Get(cf, meta_key(i));
      meta_len = std::min(meta_len, metas[i].size());
    }
    time_len = raw.Get(cf, time_key(0)).size();
    std::cout << "[flips] meta record " << meta_len << " bytes, time-index value " << time_len
              << " bytes" << std::endl;
    int next = 0;
    auto damage_meta = [&](int i, const std::string& v) {
      ASSERT_NE(v, metas[i]);
      raw.Put(cf, meta_key(i), v);
      damage[i] = Damage::kMeta;
      ++damaged_records;
    };
    // Every bit of the record, each on its own call.
    for (size_t bit = 0; bit < meta_len * 8; ++bit, ++next) {
      ASSERT_LT(next, kCalls);
      damage_meta(next, FlipBit(metas[next], bit));
      ++flips;
    }
    // Every truncation, down to empty.
    for (size_t len = 0; len < meta_len; ++len, ++next) {
      ASSERT_LT(next, kCalls);
      damage_meta(next, metas[next].substr(0, len));
      ++truncations;
    }
    ASSERT_LT(next + 10, kCalls);
    // Extensions.
    damage_meta(next, metas[next] + '\0');
    ++next, ++others;
    damage_meta(next, metas[next] + metas[next]);
    ++next, ++others;
    // Nonces swapped between two records; tags swapped; a zero nonce.
    {
      int a = next++, b = next++;
      std::string va = metas[a], vb = metas[b];
      va.replace(kNonceOffset, format::kNonceBytes,
                 metas[b].substr(kNonceOffset, format::kNonceBytes));
      vb.replace(kNonceOffset, format::kNonceBytes,
                 metas[a].substr(kNonceOffset, format::kNonceBytes));
      damage_meta(a, va);
      damage_meta(b, vb);
      others += 2;
    }
    {
      int a = next++, b = next++;
      std::string va = metas[a], vb = metas[b];
      const size_t ta = va.size() - format::kTagBytes, tb = vb.size() - format::kTagBytes;
      va.replace(ta, format::kTagBytes, metas[b].substr(tb));
      vb.replace(tb, format::kTagBytes, metas[a].substr(ta));
      damage_meta(a, va);
      damage_meta(b, vb);
      others += 2;
    }
    {
      int a = next++;
      std::string va = metas[a];
      va.replace(kNonceOffset, format::kNonceBytes, std::string(format::kNonceBytes, '\0'));
      damage_meta(a, va);
      ++others;
    }
    // Every bit of a sealed time-index value, when the index values are sealed.
    if (time_len >= format::kEnvelopeOverhead) {
      for (size_t bit = 0; bit < time_len * 8; ++bit, ++next) {
        ASSERT_LT(next, kCalls - 100);
        std::string v = raw.Get(cf, time_key(next));
        raw.Put(cf, time_key(next), FlipBit(v, bit));
        damage[next] = Damage::kTime;
        ++damaged_records;
        ++time_flips;
      }
    }
    // Every bit of each other sealed part the engine stores for such a
    // call (found by listing call 0's rows), each on its own call.
    const std::string prefix0 = format::CallKeyPrefix(h[at(0)]);
    for (const auto& [k, v] : raw.Scan(cf)) {
      if (k.size() != prefix0.size() + 1 || k.compare(0, prefix0.size(), prefix0) != 0) continue;
      const char part = k.back();
      if (part == static_cast<char>(Part::kMeta)) continue;
      ++other_parts;
      for (size_t bit = 0; bit < v.size() * 8; ++bit, ++next) {
        ASSERT_LT(next, kCalls - 100);
        const std::string key = format::CallKeyPrefix(h[at(next)]) + part;
        const std::string value = raw.Get(cf, key);
        ASSERT_LT(bit, value.size() * 8);
        raw.Put(cf, key, FlipBit(value, bit));
        damage[next] = Damage::kOtherPart;
        ++damaged_records;
        ++part_flips;
      }
    }
    ASSERT_LE(next, kCalls - 100) << "keep >= 100 untouched calls";
  }
  const size_t mutations = flips + truncations + others + time_flips + part_flips;
  std::cout << "[flips] " << mutations << " mutations: " << flips << " meta bit flips, "
            << truncations << " truncations, " << others << " extensions/swaps, " << time_flips
            << " time-index bit flips, " << part_flips << " bit flips of " << other_parts
            << " other parts" << std::endl;
  EXPECT_GE(mutations, 1000u);

  ASSERT_OK(ts_.Open());
  size_t rejected_get = 0, rejected_list = 0, whole = 0;
  for (int i = 0; i < kCalls; ++i) {
    const std::string id = "f" + std::to_string(100000 + i);
    const int64_t at = kT0 + i * 1000;
    SCOPED_TRACE(id);
    Code get = GetCode("flips", id, kPartAll);
    size_t listed = 0;
    Code list = ListCode("flips", at, at + 1, &listed);
    switch (damage[i]) {
      case Damage::kMeta:
        EXPECT_EQ(get, Code::kCorruption);
        EXPECT_EQ(list, Code::kCorruption);
        rejected_get += get == Code::kCorruption;
        rejected_list += list == Code::kCorruption;
        break;
      case Damage::kTime:
        EXPECT_EQ(get, Code::kOk);  // GetCall does not read the time index
        EXPECT_EQ(list, Code::kCorruption);
        rejected_list += list == Code::kCorruption;
        break;
      case Damage::kOtherPart:
        // Whatever reads it fails (GetCode / ListCode check that an OK
        // read is exact); Verify below counts it.
        rejected_get += get == Code::kCorruption;
        rejected_list += list == Code::kCorruption;
        break;
      case Damage::kNone:
        EXPECT_EQ(get, Code::kOk);
        EXPECT_EQ(list, Code::kOk);
        EXPECT_EQ(listed, 1u);
        whole += get == Code::kOk;
        break;
    }
  }
  std::cout << "[flips] GetCall rejected " << rejected_get << ", ListCalls rejected "
            << rejected_list << ", untouched calls whole " << whole << std::endl;
  auto v = ts_->Verify("flips");
  ASSERT_OK(v);
  EXPECT_EQ(v->records_failed, damaged_records);
  EXPECT_GT(v->records_ok, 0u);
  EXPECT_EQ(VerifyFailures("clean"), 0u);
  for (const auto& [id, c] : expected_["clean"]) ExpectWhole("clean", id);
}

// A purged tenant re-created under the same id gets a new column family and
// internal id; ciphertext from its former life fails there.
TEST_F(IsolationTest, RecreatedTenantGetsNewFamilyAndRejectsOldCiphertext) {
  TenantInfo old = Create("delta");
  for (int i = 0; i < 3; ++i) Put("delta", Fixed("d" + std::to_string(i), kT0 + i, Marker()));
  const std::string old_shard = ts_->ShardPaths()[old.shard];
  ts_.Close();
  std::vector<std::pair<std::string, std::string>> old_records;
  std::map<int64_t, std::string> old_hashes;
  {
    RawShard raw(old_shard, true);
    ASSERT_TRUE(raw.status().ok()) << raw.status().ToString();
    old_records = raw.Scan(old.column_family);
    old_hashes = HashesByTime(raw, old.column_family);
  }
  ASSERT_FALSE(old_records.empty());
  ASSERT_OK(ts_.Open());
  ASSERT_OK(ts_->PurgeTenant("delta"));
  TenantInfo fresh = Create("delta");
  EXPECT_NE(fresh.internal_id, old.internal_id);
  EXPECT_NE(fresh.column_family, old.column_family);
  expected_["delta"].clear();
  EXPECT_CODE(ts_->GetCall("delta", "d0"), Code::kNotFound);
  Put("delta", Fixed("d0", kT0, Marker()));
  Put("delta", Fixed("d9", kT0 + 9, Marker()));
  const std::string shard = ts_->ShardPaths()[fresh.shard];
  ts_.Close();
  auto names = guarantees::ListColumnFamilies(shard);
  EXPECT_EQ(std::count(names.begin(), names.end(), old.column_family), 0);
  EXPECT_EQ(std::count(names.begin(), names.end(), fresh.column_family), 1);
  size_t sealed = 0;
  {
    RawShard raw(shard, false);
    ASSERT_TRUE(raw.status().ok()) << raw.status().ToString();
    EXPECT_EQ(raw.cf(old.column_family), nullptr);
    auto h = HashesByTime(raw, fresh.column_family);
    ASSERT_EQ(h.size(), 2u);
    // d0's old metadata onto d0's new row.
    raw.Put(fresh.column_family, format::CallKey(h[kT0], Part::kMeta), [&] {
      for (const auto& [k, v] : old_records) {
        if (k == format::CallKey(old_hashes[kT0], Part::kMeta)) return v;
      }
      ADD_FAILURE() << "old d0 metadata not found";
      return std::string();
    }());
    // Every old record, verbatim under its old key.
    for (const auto& [k, v] : old_records) {
      raw.Put(fresh.column_family, k, v);
      if (v.size() >= format::kEnvelopeOverhead) ++sealed;
    }
  }
  ASSERT_OK(ts_.Open());
  ExpectCorrupt("delta", "d0", kPartMetadata);
  ExpectWhole("delta", "d9");
  for (const std::string id : {"d1", "d2"}) {
    auto r = ts_->GetCall("delta", id);
    EXPECT_TRUE(r.status().code() == Code::kNotFound || r.status().code() == Code::kCorruption)
        << r.status().ToString();
  }
  EXPECT_EQ(ListCode("delta", 0, INT64_MAX), Code::kCorruption);
  EXPECT_EQ(VerifyFailures("delta"), 1u + sealed);
}

}  // namespace
}  // namespace callvault
