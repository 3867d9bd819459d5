// Tampered recordings (issue 4 item 2, testing.md T8). With the store
// closed, chunks are reordered, duplicated, deleted, swapped in from
// another recording / call / tenant / an earlier incarnation of the same
// recording, truncated and bit-flipped in the raw shard; after reopening,
// every read touching a damaged chunk must end in kCorruption having passed
// only correct bytes to the sink, reads of undamaged ranges must still
// succeed, and Store::Verify must report the damaged recording.
//
// The recordings are written in chunk format 2 (per-chunk AEAD, decision
// 0033); the forged-stream tests run once over format 1 (secretstream,
// decision 0003, still read) and once over format 2.
//
// The forged-stream tests re-seal chunks with the tenant's real keys
// (derived here as the engine does, checked by re-sealing an untouched
// chunk byte for byte), to reach the reader's structural checks that no
// key-less attacker can: a last chunk without the FINAL tag (or mark), a
// FINAL in the middle, chunks of the wrong length.
#include <sodium.h>

#include "call_generated.h"
#include "engine/calls_internal.h"
#include "engine/crypto.h"
#include "engine/indexing.h"
#include "engine/keyring.h"
#include "engine/record.h"
#include "format/coding.h"
#include "tests/recordings/rec_util.h"
#include "workload/workload.h"

namespace callvault {
namespace {

using rectest::kChunk;
using rectest::kT0;
using rectest::RawShard;
using testutil::MakeCall;

constexpr uint64_t kHalf = kChunk / 2;

// One recording of the fixture and how to find its chunks in the raw shard
// (every recording of a tenant has a distinct chunk count).
struct Rec {
  std::string tenant, call, id;
  uint64_t size = 0;
  uint64_t seed = 0;
  std::string data;
  size_t chunks() const { return static_cast<size_t>(size / kChunk + 1); }
};

class TamperTest : public ::testing::Test {
 protected:
  // The chunk format the fixture's recordings are written in.
  virtual uint32_t WriteFormat() const { return 2; }

  void SetUp() override {
    seed_ = rectest::TestSeed();
    calls::SetRecordingWriteFormatForTest(WriteFormat());
    struct Reset {
      ~Reset() { calls::SetRecordingWriteFormatForTest(2); }
    } reset;
    ASSERT_OK(ts.Open());
    for (const char* t : {"acme", "globex"}) ASSERT_OK(ts->CreateTenant({.tenant_id = t}));
    ASSERT_OK(ts->PutCall("acme", MakeCall("call-1", kT0)));
    ASSERT_OK(ts->PutCall("acme", MakeCall("call-2", kT0 + 1)));
    ASSERT_OK(ts->PutCall("globex", MakeCall("call-1", kT0)));
    // acme: 4, 5, 3, 8 chunks in call-1; 6, 7 in call-2. globex: 4, 8.
    // The globex recordings have the same ids and content as acme's.
    victim = Add("acme", "call-1", "victim", 3 * kChunk + kHalf, 1);
    sibling = Add("acme", "call-1", "sibling", 4 * kChunk + kHalf, 2);
    bystander = Add("acme", "call-1", "bystander", 2 * kChunk + kHalf, 3);
    even = Add("acme", "call-1", "even", 7 * kChunk, 4);  // ends with an empty FINAL chunk
    other_call = Add("acme", "call-2", "victim", 5 * kChunk + kHalf, 5);
    even_b = Add("acme", "call-2", "even-b", 6 * kChunk, 6);
    globex_victim = Add("globex", "call-1", "victim", 3 * kChunk + kHalf, 1);
    globex_even = Add("globex", "call-1", "even", 7 * kChunk, 4);
    for (auto* r : recs_) ASSERT_OK(rectest::WriteRecording(ts.store.get(), r->tenant, r->call, r->id, r->data));
    for (const char* t : {"acme", "globex"}) {
      auto info = ts->DescribeTenant(t);
      ASSERT_OK(info);
      cf_[t] = info->column_family;
      shard_path_ = ts->ShardPaths().at(info->shard);
    }
    ASSERT_EQ(ts->DescribeTenant("acme")->shard, ts->DescribeTenant("globex")->shard);
    ts.Close();
    RawShard raw(shard_path_, /*read_only=*/true);
    ASSERT_TRUE(raw.status().ok()) << raw.status().ToString();
    for (const char* t : {"acme", "globex"}) {
      auto groups = rectest::ChunkGroups(raw, cf_[t]);
      ASSERT_EQ(groups.size(), t == std::string("acme") ? 6u : 2u);
      for (auto* r : recs_) {
        if (r->tenant != t) continue;
        keys_[r] = rectest::ChunksOfSize(groups, r->chunks());
        ASSERT_EQ(keys_[r].size(), r->chunks()) << r->id;
        for (const auto& k : keys_[r]) original_[k] = raw.Get(cf_[t], k);
        manifest_[r] = raw.Get(cf_[t], rectest::ManifestKeyOf(keys_[r][0]));
      }
    }
    // The same call's recordings share the call hash; other calls don't.
    EXPECT_EQ(keys_[victim][0].substr(1, 16), keys_[sibling][0].substr(1, 16));
    EXPECT_NE(keys_[victim][0].substr(1, 16), keys_[other_call][0].substr(1, 16));
  }

  Rec* Add(const std::string& tenant, const std::string& call, const std::string& id, uint64_t size,
           uint64_t seed) {
    auto r = std::make_unique<Rec>();
    r->tenant = tenant;
    r->call = call;
    r->id = id;
    r->size = size;
    r->seed = seed;
    r->data = workload::RandomBytes(seed_ * 31 + seed, size);
    recs_.push_back(r.get());
    owned_.push_back(std::move(r));
    return recs_.back();
  }

  const std::string& Key(Rec* r, size_t i) { return keys_.at(r).at(i); }
  const std::string& Orig(Rec* r, size_t i) { return original_.at(Key(r, i)); }
  const std::string& Cf(Rec* r) { return cf_.at(r->tenant); }

  // Puts back every chunk and manifest of `touched` as they were.
  void Restore(RawShard& raw, const std::vector<Rec*>& touched) {
    for (Rec* r : touched) {
      for (const auto& k : keys_[r]) raw.Put(Cf(r), k, original_[k]);
      raw.Put(Cf(r), rectest::ManifestKeyOf(keys_[r][0]), manifest_[r]);
    }
  }

  // Checks one read of `r`: if it touches a damaged chunk it must fail with
  // kCorruption having passed to the sink only a prefix of the right bytes,
  // never past the first damaged chunk; else it must return them all.
  void CheckRange(Rec* r, const std::set<uint32_t>& damaged, uint64_t off, uint64_t len) {
    const uint64_t end = std::min<uint64_t>(r->size, off + std::min<uint64_t>(len, r->size));
    if (off >= r->size || len == 0) return;
    const uint32_t first = static_cast<uint32_t>(off / kChunk);
    const uint32_t last = static_cast<uint32_t>((end - 1) / kChunk);
    const bool full = off == 0 && len == UINT64_MAX;
    const uint32_t final_chunk = static_cast<uint32_t>(r->chunks() - 1);
    std::optional<uint32_t> hit;
    for (uint32_t i = first; i <= last; ++i) {
      if (damaged.count(i)) {
        hit = i;
        break;
      }
    }
    // A recording whose size is a multiple of the chunk size ends with an
    // empty FINAL chunk: a whole read must check it; a range read ending at
    // the end may.
    bool may_fail = false;
    if (!hit && final_chunk > last && damaged.count(final_chunk)) {
      if (full) hit = final_chunk;
      else may_fail = end == r->size;
    }
    std::string out;
    Status s = rectest::ReadRange(ts.store.get(), r->tenant, r->call, r->id, off, len, &out);
    SCOPED_TRACE(r->tenant + "/" + r->call + "/" + r->id + " [" + std::to_string(off) + ", +" +
                 std::to_string(len) + ")");
    if (hit || (may_fail && !s.ok())) {
      EXPECT_EQ(s.code(), Code::kCorruption) << s.ToString();
      ASSERT_LE(out.size(), end - off);
      EXPECT_TRUE(out == std::string_view(r->data).substr(off, out.size()))
          << "the sink received wrong bytes before the failure";
      if (hit) {
        EXPECT_LE(off + out.size(), std::max<uint64_t>(off, uint64_t{*hit} * kChunk));
      }
    } else {
      EXPECT_OK(s);
      EXPECT_TRUE(out == std::string_view(r->data).substr(off, end - off)) << "wrong bytes";
    }
  }

  // Whole, chunk by chunk, across every boundary, and up to, into and
  // after each damaged chunk.
  void CheckReads(Rec* r, const std::set<uint32_t>& damaged) {
    CheckRange(r, damaged, 0, UINT64_MAX);
    if (damaged.empty()) {
      CheckRange(r, damaged, kChunk - 7, 14);
      return;
    }
    CheckRange(r, damaged, 0, r->size);
    for (uint64_t i = 0; i < r->chunks(); ++i) {
      const uint64_t c = i * kChunk;
      CheckRange(r, damaged, c, kChunk);             // exactly one chunk
      if (i > 0) CheckRange(r, damaged, c - 7, 14);  // across the boundary
    }
    for (uint32_t d : damaged) {
      const uint64_t c = uint64_t{d} * kChunk;
      if (d > 0) CheckRange(r, damaged, 0, c);     // everything before it
      CheckRange(r, damaged, 0, c + 1);            // ... and its first byte
      CheckRange(r, damaged, c + 1000, 10);        // inside it
      CheckRange(r, damaged, c + kChunk - 1, 1);   // its last byte
      CheckRange(r, damaged, c + kChunk / 2, UINT64_MAX);  // from inside it to the end
    }
    CheckRange(r, damaged, r->size - 1, 1);
  }

  // Reopens the store and checks every recording: `damage` maps the
  // damaged ones to their damaged chunks; `bad_manifest` ones must fail
  // every read.
  void CheckAll(const std::map<Rec*, std::set<uint32_t>>& damage, const std::set<Rec*>& bad_manifest = {}) {
    ASSERT_OK(ts.Open());
    for (Rec* r : recs_) {
      if (bad_manifest.count(r)) {
        for (auto [off, len] : {std::pair<uint64_t, uint64_t>{0, UINT64_MAX}, {kChunk, 10}, {r->size - 1, 1}}) {
          std::string out;
          EXPECT_CODE(rectest::ReadRange(ts.store.get(), r->tenant, r->call, r->id, off, len, &out),
                      Code::kCorruption);
          EXPECT_TRUE(out.empty());
        }
        auto list = ts->ListRecordings(r->tenant, r->call);
        if (list.ok()) {
          for (const auto& info : *list) EXPECT_NE(info.recording_id, r->id) << "listed with a bad manifest";
        } else {
          EXPECT_CODE(list, Code::kCorruption);
        }
        continue;
      }
      auto it = damage.find(r);
      CheckReads(r, it == damage.end() ? std::set<uint32_t>{} : it->second);
      if (::testing::Test::HasFatalFailure()) return;
    }
    for (const char* t : {"acme", "globex"}) {
      uint64_t bad = 0;
      for (Rec* r : recs_) {
        if (r->tenant == t && (damage.count(r) || bad_manifest.count(r))) ++bad;
      }
      auto v = ts->Verify(t);
      ASSERT_OK(v);
      EXPECT_EQ(v->records_failed, bad) << t;
      EXPECT_EQ(v->failures.size(), bad) << t;
      for (const auto& f : v->failures) {
        EXPECT_NE(f.find(std::string("tenant ") + t), std::string::npos) << f;
      }
    }
    ts.Close();
  }

  // Puts back what the last scenario damaged (in the raw session of the
  // next one, to save opening the shard once more), applies `mutate` to the
  // raw shard, reopens the store and checks.
  void Scenario(const std::string& name, const std::function<void(RawShard&)>& mutate,
                const std::map<Rec*, std::set<uint32_t>>& damage, const std::set<Rec*>& bad_manifest = {}) {
    SCOPED_TRACE("scenario: " + name);
    {
      RawShard raw(shard_path_, false);
      ASSERT_TRUE(raw.status().ok()) << raw.status().ToString();
      Restore(raw, to_restore_);
      to_restore_.clear();
      mutate(raw);
    }
    for (auto& [r, d] : damage) to_restore_.push_back(r);
    for (Rec* r : bad_manifest) to_restore_.push_back(r);
    CheckAll(damage, bad_manifest);
  }

  // After all scenarios: every recording reads whole again and verifies.
  void CheckRestored() {
    if (!to_restore_.empty()) {
      RawShard raw(shard_path_, false);
      ASSERT_TRUE(raw.status().ok()) << raw.status().ToString();
      Restore(raw, to_restore_);
      to_restore_.clear();
    }
    CheckAll({});
  }

  uint64_t seed_ = 0;
  testutil::TestStore ts;
  std::vector<std::unique_ptr<Rec>> owned_;
  std::vector<Rec*> recs_;
  Rec *victim, *sibling, *bystander, *even, *other_call, *even_b, *globex_victim, *globex_even;
  std::map<std::string, std::string> cf_;
  std::string shard_path_;
  std::map<Rec*, std::vector<std::string>> keys_;
  std::map<Rec*, std::string> manifest_;
  std::map<std::string, std::string> original_;
  std::vector<Rec*> to_restore_;  // damaged by the last scenario
};

TEST_F(TamperTest, UntouchedStoreReadsAndVerifies) { CheckRestored(); }

TEST_F(TamperTest, ReorderedDuplicatedAndMissingChunks) {
  Rec* v = victim;
  auto put = [&](RawShard& raw, size_t at, const std::string& value) { raw.Put(Cf(v), Key(v, at), value); };
  Scenario("swap chunks 1 and 2", [&](RawShard& raw) { put(raw, 1, Orig(v, 2)); put(raw, 2, Orig(v, 1)); },
           {{v, {1, 2}}});
  Scenario("swap first and last", [&](RawShard& raw) { put(raw, 0, Orig(v, 3)); put(raw, 3, Orig(v, 0)); },
           {{v, {0, 3}}});
  Scenario("chunk 1 duplicated over chunk 2", [&](RawShard& raw) { put(raw, 2, Orig(v, 1)); }, {{v, {2}}});
  Scenario("chunk 2 duplicated over the last", [&](RawShard& raw) { put(raw, 3, Orig(v, 2)); }, {{v, {3}}});
  Scenario("last chunk duplicated over chunk 1", [&](RawShard& raw) { put(raw, 1, Orig(v, 3)); }, {{v, {1}}});
  Scenario("middle chunk deleted", [&](RawShard& raw) { raw.Delete(Cf(v), Key(v, 1)); }, {{v, {1}}});
  Scenario("first chunk deleted", [&](RawShard& raw) { raw.Delete(Cf(v), Key(v, 0)); }, {{v, {0}}});
  // Truncation: the second-to-last chunk becomes the last stored one.
  Scenario("last chunk deleted", [&](RawShard& raw) { raw.Delete(Cf(v), Key(v, 3)); }, {{v, {3}}});
  Scenario("last two chunks deleted",
           [&](RawShard& raw) { raw.Delete(Cf(v), Key(v, 3)); raw.Delete(Cf(v), Key(v, 2)); }, {{v, {2, 3}}});
  Scenario("chunks shifted down by one (first dropped)",
           [&](RawShard& raw) {
             for (size_t i = 0; i + 1 < v->chunks(); ++i) put(raw, i, Orig(v, i + 1));
             raw.Delete(Cf(v), Key(v, 3));
           },
           {{v, {0, 1, 2, 3}}});
  CheckRestored();
}

TEST_F(TamperTest, ChunksFromOtherRecordingsCallsAndTenants) {
  Rec* v = victim;
  auto put = [&](RawShard& raw, size_t at, Rec* from, size_t idx) { raw.Put(Cf(v), Key(v, at), Orig(from, idx)); };
  for (size_t i : {size_t{0}, size_t{1}, size_t{3}}) {
    const std::string n = std::to_string(i);
    Scenario("chunk " + n + " of a sibling recording of the same call",
             [&](RawShard& raw) { put(raw, i, sibling, i); }, {{v, {static_cast<uint32_t>(i)}}});
    Scenario("chunk " + n + " of the same recording id in another call",
             [&](RawShard& raw) { put(raw, i, other_call, i); }, {{v, {static_cast<uint32_t>(i)}}});
    Scenario("chunk " + n + " of the same call and recording id, same content, in another tenant",
             [&](RawShard& raw) { put(raw, i, globex_victim, i); }, {{v, {static_cast<uint32_t>(i)}}});
  }
  // The other way round: acme's chunk in globex's column family.
  Scenario("acme chunk 2 in globex", [&](RawShard& raw) {
    raw.Put(Cf(globex_victim), Key(globex_victim, 2), Orig(victim, 2));
  }, {{globex_victim, {2}}});
  // Every chunk of the other tenant's twin recording.
  Scenario("all chunks from the other tenant", [&](RawShard& raw) {
    for (size_t i = 0; i < v->chunks(); ++i) put(raw, i, globex_victim, i);
  }, {{v, {0, 1, 2, 3}}});
  // Manifests are sealed records bound to their key.
  Scenario("sibling's manifest over the victim's", [&](RawShard& raw) {
    raw.Put(Cf(v), rectest::ManifestKeyOf(Key(v, 0)), manifest_[sibling]);
  }, {}, {v});
  Scenario("other tenant's manifest of the same ids", [&](RawShard& raw) {
    raw.Put(Cf(v), rectest::ManifestKeyOf(Key(v, 0)), manifest_[globex_victim]);
  }, {}, {v});
  CheckRestored();
}

TEST_F(TamperTest, TruncatedAndExtendedChunkValues) {
  Rec* v = victim;
  const std::string c1 = Orig(v, 1), c3 = Orig(v, 3);
  for (size_t len : {size_t{0}, size_t{11}, size_t{12}, size_t{12 + 16}, size_t{12 + 17}, size_t{12 + 17 + 1000},
                     c1.size() / 2, c1.size() - 16, c1.size() - 1}) {
    Scenario("chunk 1 cut to " + std::to_string(len) + " bytes",
             [&](RawShard& raw) { raw.Put(Cf(v), Key(v, 1), c1.substr(0, len)); }, {{v, {1}}});
  }
  Scenario("chunk 1 plus one byte", [&](RawShard& raw) { raw.Put(Cf(v), Key(v, 1), c1 + "x"); }, {{v, {1}}});
  Scenario("chunk 1 without its nonce", [&](RawShard& raw) { raw.Put(Cf(v), Key(v, 1), c1.substr(12)); }, {{v, {1}}});
  for (size_t len : {size_t{0}, c3.size() / 2, c3.size() - 1}) {
    Scenario("last chunk cut to " + std::to_string(len) + " bytes",
             [&](RawShard& raw) { raw.Put(Cf(v), Key(v, 3), c3.substr(0, len)); }, {{v, {3}}});
  }
  Scenario("last chunk plus one byte", [&](RawShard& raw) { raw.Put(Cf(v), Key(v, 3), c3 + '\0'); }, {{v, {3}}});
  CheckRestored();
}

// A recording whose size is a multiple of the chunk size ends with an empty
// chunk carrying the FINAL tag; a whole read and Verify must check it.
TEST_F(TamperTest, EmptyFinalChunkOfExactMultiple) {
  Rec* e = even;
  const uint32_t last = static_cast<uint32_t>(e->chunks() - 1);
  ASSERT_EQ(e->chunks(), 8u);
  Scenario("empty FINAL chunk deleted", [&](RawShard& raw) { raw.Delete(Cf(e), Key(e, last)); }, {{e, {last}}});
  Scenario("empty FINAL chunk of another recording",
           [&](RawShard& raw) { raw.Put(Cf(e), Key(e, last), Orig(even_b, even_b->chunks() - 1)); }, {{e, {last}}});
  Scenario("empty FINAL chunk of the other tenant's twin",
           [&](RawShard& raw) { raw.Put(Cf(e), Key(e, last), Orig(globex_even, last)); }, {{e, {last}}});
  Scenario("bit flipped in the empty FINAL chunk", [&](RawShard& raw) {
    std::string c = Orig(e, last);
    c[c.size() - 1] ^= 1;
    raw.Put(Cf(e), Key(e, last), c);
  }, {{e, {last}}});
  Scenario("chunk 6 over the empty FINAL chunk",
           [&](RawShard& raw) { raw.Put(Cf(e), Key(e, last), Orig(e, last - 1)); }, {{e, {last}}});
  CheckRestored();
}

// Chunks of a deleted earlier recording with the same call, id and content
// (same chunk keys, same stream key inputs) must not pass in the new one.
TEST_F(TamperTest, ChunksOfAnEarlierIncarnation) {
  std::map<size_t, std::string> old_chunks;
  const std::string old_manifest = manifest_[victim];
  for (size_t i = 0; i < victim->chunks(); ++i) old_chunks[i] = Orig(victim, i);
  ASSERT_OK(ts.Open());
  ASSERT_OK(ts->DeleteRecording("acme", "call-1", "victim"));
  ASSERT_OK(rectest::WriteRecording(ts.store.get(), "acme", "call-1", "victim", victim->data));
  ts.Close();
  {
    RawShard raw(shard_path_, true);
    ASSERT_TRUE(raw.status().ok());
    for (size_t i = 0; i < victim->chunks(); ++i) {
      original_[Key(victim, i)] = raw.Get(Cf(victim), Key(victim, i));
      EXPECT_NE(original_[Key(victim, i)], old_chunks[i]) << "a new incarnation must not reuse the stream";
    }
    manifest_[victim] = raw.Get(Cf(victim), rectest::ManifestKeyOf(Key(victim, 0)));
  }
  for (size_t i : {size_t{0}, size_t{2}, size_t{3}}) {
    Scenario("old chunk " + std::to_string(i), [&](RawShard& raw) {
      raw.Put(Cf(victim), Key(victim, i), old_chunks[i]);
    }, {{victim, {static_cast<uint32_t>(i)}}});
  }
  Scenario("every old chunk under the new manifest", [&](RawShard& raw) {
    for (size_t i = 0; i < victim->chunks(); ++i) raw.Put(Cf(victim), Key(victim, i), old_chunks[i]);
  }, {{victim, {0, 1, 2, 3}}});
  Scenario("old manifest over new chunks", [&](RawShard& raw) {
    raw.Put(Cf(victim), rectest::ManifestKeyOf(Key(victim, 0)), old_manifest);
  }, {{victim, {0, 1, 2, 3}}});
  CheckRestored();
}

// ~200 single-bit flips across chunk values (nonce prefix, the byte after
// it, ciphertext, MAC), in rounds: each round damages all but one chunk
// of every recording with one flip each.
TEST_F(TamperTest, SingleBitFlips) {
  std::mt19937_64 rng(seed_);
  std::vector<Rec*> targets = {victim, sibling, bystander, other_call, even, even_b, globex_victim, globex_even};
  size_t flips = 0, in_nonce = 0, in_tag_byte = 0, in_mac = 0;
  int round = 0;
  while (flips < 200 && !::testing::Test::HasFailure()) {
    std::map<Rec*, std::set<uint32_t>> damage;
    {
      RawShard raw(shard_path_, false);
      ASSERT_TRUE(raw.status().ok()) << raw.status().ToString();
      Restore(raw, to_restore_);
      to_restore_ = targets;
      for (Rec* r : targets) {
        const size_t spare = rng() % r->chunks();
        for (size_t i = 0; i < r->chunks(); ++i) {
          if (i == spare) continue;
          std::string c = Orig(r, i);
          // Format 2: a 16-byte nonce prefix, then the ciphertext; format 1:
          // the 12-byte state nonce, then the encrypted tag byte.
          const size_t head = WriteFormat() == 2 ? 16 : 12;
          size_t byte;
          switch (flips % 5) {
            case 0: byte = rng() % head; ++in_nonce; break;            // the stored nonce (prefix)
            case 1: byte = head; ++in_tag_byte; break;                 // the first byte after it
            case 2: byte = c.size() - 1 - rng() % 16; ++in_mac; break;  // the MAC
            default: byte = rng() % c.size(); if (byte < head) ++in_nonce;
          }
          c[byte] = static_cast<char>(c[byte] ^ (1u << (rng() % 8)));
          raw.Put(Cf(r), Key(r, i), c);
          damage[r].insert(static_cast<uint32_t>(i));
          ++flips;
        }
      }
    }
    SCOPED_TRACE("round " + std::to_string(round++));
    CheckAll(damage);
    if (::testing::Test::HasFatalFailure()) return;
  }
  std::printf("[bitflips] %zu flips in %d rounds: %zu in the nonce, %zu in the byte after it, %zu in the MAC\n", flips,
              round, in_nonce, in_tag_byte, in_mac);
  EXPECT_GE(in_nonce, 40u);
  CheckRestored();
}

// --- Forged streams: re-sealed with the tenant's own keys ------------------

// Chunk format 1: crypto_secretstream (decision 0003).
class ForgedStreamTest : public TamperTest {
 protected:
  uint32_t WriteFormat() const override { return 1; }

  // The engine's key derivation (engine/store.cc, engine/recordings.cc),
  // replicated; Reseal of an untouched chunk must reproduce it exactly.
  struct Keys {
    SecretBytes record_key, index_key, recording_key;
    record::Binding binding;
  };

  Keys TenantKeys(const std::string& tenant) {
    Keys k;
    SecretBytes dek = rectest::TenantDek(ts.keys, info_[tenant].internal_id, info_[tenant].key_version);
    k.record_key = crypto::DeriveSubkey(dek, crypto::Subkey::kRecord);
    k.index_key = crypto::DeriveSubkey(dek, crypto::Subkey::kIndex);
    k.recording_key = crypto::DeriveSubkey(dek, crypto::Subkey::kRecording);
    // The column-family generation is the internal id at creation.
    k.binding = record::Binding{info_[tenant].internal_id, info_[tenant].internal_id, info_[tenant].key_version};
    return k;
  }

  struct Stream {
    std::string call_hash, rec_hash, header;
    SecretBytes key;
    uint64_t internal_id = 0;
  };

  Stream StreamOf(RawShard& raw, Rec* r) {
    Keys k = TenantKeys(r->tenant);
    Stream s;
    s.internal_id = info_[r->tenant].internal_id;
    s.call_hash = indexing::CallHash(k.index_key, r->call);
    s.rec_hash = crypto::BlindHash(k.index_key, 'R', r->id);
    EXPECT_EQ(Key(r, 0).substr(1, 32), s.call_hash + s.rec_hash) << "chunk key derivation differs";
    const std::string mkey = rectest::ManifestKeyOf(Key(r, 0));
    std::string plain;
    EXPECT_OK(record::Open(k.record_key, k.binding, mkey, raw.Get(Cf(r), mkey), &plain));
    const auto* m = flatbuffers::GetRoot<fb::RecordingManifest>(plain.data());
    EXPECT_TRUE(m->stream_header() != nullptr);
    if (m->stream_header() == nullptr) return s;
    s.header.assign(reinterpret_cast<const char*>(m->stream_header()->data()), m->stream_header()->size());
    std::string in = "cvrs1";
    format::PutFixed64BE(&in, s.internal_id);
    format::PutFixed64BE(&in, s.internal_id);
    in += s.call_hash + s.rec_hash;
    s.key = SecretBytes(crypto_secretstream_xchacha20poly1305_KEYBYTES);
    crypto_generichash(s.key.data(), s.key.size(), reinterpret_cast<const unsigned char*>(in.data()), in.size(),
                       k.recording_key.data(), k.recording_key.size());
    return s;
  }

  // Seals `plain` as chunk `index` of the stream with `tag`, from the nonce
  // stored with chunk `nonce_of` (as the writer would have had it).
  std::string Reseal(const Stream& s, Rec* r, uint32_t nonce_of, uint32_t index, std::string_view plain,
                     unsigned char tag) {
    crypto_secretstream_xchacha20poly1305_state st;
    EXPECT_EQ(crypto_secretstream_xchacha20poly1305_init_pull(
                  &st, reinterpret_cast<const unsigned char*>(s.header.data()), s.key.data()),
              0);
    std::memcpy(st.nonce, Orig(r, nonce_of).data(), sizeof st.nonce);
    std::string ad = "cvrc1";
    format::PutFixed64BE(&ad, s.internal_id);
    format::PutFixed64BE(&ad, s.internal_id);
    ad += s.call_hash + s.rec_hash;
    format::PutFixed32LE(&ad, index);
    std::string out(sizeof st.nonce + plain.size() + crypto_secretstream_xchacha20poly1305_ABYTES, '\0');
    std::memcpy(out.data(), st.nonce, sizeof st.nonce);
    unsigned long long clen = 0;
    crypto_secretstream_xchacha20poly1305_push(
        &st, reinterpret_cast<unsigned char*>(out.data() + sizeof st.nonce), &clen,
        reinterpret_cast<const unsigned char*>(plain.data()), plain.size(),
        reinterpret_cast<const unsigned char*>(ad.data()), ad.size(), tag);
    out.resize(sizeof st.nonce + clen);
    sodium_memzero(&st, sizeof st);
    return out;
  }

  std::string_view Plain(Rec* r, uint32_t i) {
    return std::string_view(r->data).substr(uint64_t{i} * kChunk, kChunk);
  }

  void SetUp() override {
    TamperTest::SetUp();
    if (HasFatalFailure()) return;
    ASSERT_OK(ts.Open());
    for (const char* t : {"acme", "globex"}) info_[t] = *ts->DescribeTenant(t);
    ts.Close();
    ASSERT_EQ(sodium_init() < 0, false);
  }

  std::map<std::string, TenantInfo> info_;
};

constexpr unsigned char kMsg = crypto_secretstream_xchacha20poly1305_TAG_MESSAGE;
constexpr unsigned char kFinal = crypto_secretstream_xchacha20poly1305_TAG_FINAL;

TEST_F(ForgedStreamTest, ReaderRequiresFinalTagAndExactChunkSizes) {
  Rec* v = victim;
  Stream s;
  {
    RawShard raw(shard_path_, true);
    ASSERT_TRUE(raw.status().ok());
    s = StreamOf(raw, v);
  }
  ASSERT_FALSE(HasFailure());
  // The derivation is the engine's: untouched chunks re-seal byte for byte.
  ASSERT_EQ(Reseal(s, v, 1, 1, Plain(v, 1), kMsg), Orig(v, 1));
  ASSERT_EQ(Reseal(s, v, 3, 3, Plain(v, 3), kFinal), Orig(v, 3));

  auto put = [&](uint32_t at, const std::string& value) {
    return [&, at, value](RawShard& raw) { raw.Put(Cf(v), Key(v, at), value); };
  };
  Scenario("last chunk sealed without the FINAL tag", put(3, Reseal(s, v, 3, 3, Plain(v, 3), kMsg)), {{v, {3}}});
  Scenario("last chunk tagged PUSH", put(3, Reseal(s, v, 3, 3, Plain(v, 3),
                                                   crypto_secretstream_xchacha20poly1305_TAG_PUSH)), {{v, {3}}});
  Scenario("FINAL tag on a middle chunk", put(1, Reseal(s, v, 1, 1, Plain(v, 1), kFinal)), {{v, {1}}});
  Scenario("last chunk FINAL but shortened (a truncated stream)",
           put(3, Reseal(s, v, 3, 3, Plain(v, 3).substr(0, 1000), kFinal)), {{v, {3}}});
  Scenario("last chunk FINAL and empty", put(3, Reseal(s, v, 3, 3, "", kFinal)), {{v, {3}}});
  std::string longer(Plain(v, 3));
  longer += std::string(1000, 'z');
  Scenario("last chunk FINAL but longer", put(3, Reseal(s, v, 3, 3, longer, kFinal)), {{v, {3}}});
  Scenario("middle chunk one byte short", put(2, Reseal(s, v, 2, 2, Plain(v, 2).substr(0, kChunk - 1), kMsg)),
           {{v, {2}}});
  // Chunk 2 ends the stream: FINAL, and chunk 3 removed.
  Scenario("stream ended early with a genuine FINAL tag", [&](RawShard& raw) {
    raw.Put(Cf(v), Key(v, 2), Reseal(s, v, 2, 2, Plain(v, 2), kFinal));
    raw.Delete(Cf(v), Key(v, 3));
  }, {{v, {2, 3}}});
  CheckRestored();
}

TEST_F(ForgedStreamTest, EmptyFinalChunkWithoutFinalTag) {
  Rec* e = even;
  const uint32_t last = static_cast<uint32_t>(e->chunks() - 1);
  Stream s;
  {
    RawShard raw(shard_path_, true);
    ASSERT_TRUE(raw.status().ok());
    s = StreamOf(raw, e);
  }
  ASSERT_FALSE(HasFailure());
  ASSERT_EQ(Reseal(s, e, last, last, "", kFinal), Orig(e, last));
  Scenario("empty last chunk tagged MESSAGE",
           [&](RawShard& raw) { raw.Put(Cf(e), Key(e, last), Reseal(s, e, last, last, "", kMsg)); }, {{e, {last}}});
  Scenario("data chunk 6 FINAL, empty chunk deleted", [&](RawShard& raw) {
    raw.Put(Cf(e), Key(e, last - 1), Reseal(s, e, last - 1, last - 1, Plain(e, last - 1), kFinal));
    raw.Delete(Cf(e), Key(e, last));
  }, {{e, {last - 1, last}}});
  CheckRestored();
}

// Chunk format 2: one crypto_aead_xchacha20poly1305_ietf message per chunk
// (docs/format.md, decision 0033), re-sealed here from the spec.
class ForgedAeadTest : public ForgedStreamTest {
 protected:
  uint32_t WriteFormat() const override { return 2; }

  struct Aead {
    std::string call_hash, rec_hash, prefix;
    SecretBytes key;
    uint64_t internal_id = 0;
  };

  Aead AeadOf(Rec* r) {
    Keys k = TenantKeys(r->tenant);
    Aead a;
    a.internal_id = info_[r->tenant].internal_id;
    a.call_hash = indexing::CallHash(k.index_key, r->call);
    a.rec_hash = crypto::BlindHash(k.index_key, 'R', r->id);
    EXPECT_EQ(Key(r, 0).substr(1, 32), a.call_hash + a.rec_hash);
    a.prefix = Orig(r, 0).substr(0, 16);
    std::string in = "cvrs2";
    format::PutFixed64BE(&in, a.internal_id);
    format::PutFixed64BE(&in, a.internal_id);
    in += a.call_hash + a.rec_hash;
    a.key = SecretBytes(32);
    crypto_generichash(a.key.data(), a.key.size(), reinterpret_cast<const unsigned char*>(in.data()), in.size(),
                       k.recording_key.data(), k.recording_key.size());
    return a;
  }

  // Chunk `index` of `plain` with the FINAL mark `final`, under `prefix`
  // (the recording's by default).
  std::string Reseal(const Aead& a, uint32_t index, std::string_view plain, bool final,
                     std::optional<std::string> prefix = std::nullopt) {
    const std::string p = prefix.value_or(a.prefix);
    unsigned char nonce[24];
    std::memcpy(nonce, p.data(), 16);
    for (int b = 0; b < 8; ++b) nonce[16 + b] = static_cast<unsigned char>(uint64_t{index} >> (8 * b));
    std::string ad = "cvrc2";
    format::PutFixed64BE(&ad, a.internal_id);
    format::PutFixed64BE(&ad, a.internal_id);
    ad += a.call_hash + a.rec_hash;
    format::PutFixed32LE(&ad, index);
    ad.push_back(final ? '\x01' : '\x00');
    std::string out(16 + plain.size() + 16, '\0');
    std::memcpy(out.data(), p.data(), 16);
    unsigned long long clen = 0;
    crypto_aead_xchacha20poly1305_ietf_encrypt(reinterpret_cast<unsigned char*>(out.data() + 16), &clen,
                                               reinterpret_cast<const unsigned char*>(plain.data()), plain.size(),
                                               reinterpret_cast<const unsigned char*>(ad.data()), ad.size(),
                                               nullptr, nonce, a.key.data());
    out.resize(16 + clen);
    return out;
  }
};

TEST_F(ForgedAeadTest, ReaderRequiresFinalMarkAndExactChunkSizes) {
  Rec* v = victim;
  Aead a = AeadOf(v);
  ASSERT_FALSE(HasFailure());
  // The derivation is the spec's: untouched chunks re-seal byte for byte.
  ASSERT_EQ(Reseal(a, 1, Plain(v, 1), false), Orig(v, 1));
  ASSERT_EQ(Reseal(a, 3, Plain(v, 3), true), Orig(v, 3));

  auto put = [&](uint32_t at, const std::string& value) {
    return [&, at, value](RawShard& raw) { raw.Put(Cf(v), Key(v, at), value); };
  };
  Scenario("last chunk sealed without the FINAL mark", put(3, Reseal(a, 3, Plain(v, 3), false)), {{v, {3}}});
  Scenario("FINAL mark on a middle chunk", put(1, Reseal(a, 1, Plain(v, 1), true)), {{v, {1}}});
  Scenario("last chunk FINAL but shortened (a truncated stream)",
           put(3, Reseal(a, 3, Plain(v, 3).substr(0, 1000), true)), {{v, {3}}});
  Scenario("last chunk FINAL and empty", put(3, Reseal(a, 3, "", true)), {{v, {3}}});
  std::string longer(Plain(v, 3));
  longer += std::string(1000, 'z');
  Scenario("last chunk FINAL but longer", put(3, Reseal(a, 3, longer, true)), {{v, {3}}});
  Scenario("middle chunk one byte short", put(2, Reseal(a, 2, Plain(v, 2).substr(0, kChunk - 1), false)),
           {{v, {2}}});
  Scenario("stream ended early with a genuine FINAL mark", [&](RawShard& raw) {
    raw.Put(Cf(v), Key(v, 2), Reseal(a, 2, Plain(v, 2), true));
    raw.Delete(Cf(v), Key(v, 3));
  }, {{v, {2, 3}}});
  // A chunk sealed right but under another nonce prefix (another
  // incarnation of the same recording) is not this recording's.
  std::string other_prefix = a.prefix;
  other_prefix[5] ^= 0x40;
  Scenario("chunk under another incarnation's nonce prefix",
           put(1, Reseal(a, 1, Plain(v, 1), false, other_prefix)), {{v, {1}}});
  CheckRestored();
}

TEST_F(ForgedAeadTest, EmptyFinalChunkWithoutFinalMark) {
  Rec* e = even;
  const uint32_t last = static_cast<uint32_t>(e->chunks() - 1);
  Aead a = AeadOf(e);
  ASSERT_FALSE(HasFailure());
  ASSERT_EQ(Reseal(a, last, "", true), Orig(e, last));
  Scenario("empty last chunk without the FINAL mark",
           [&](RawShard& raw) { raw.Put(Cf(e), Key(e, last), Reseal(a, last, "", false)); }, {{e, {last}}});
  Scenario("data chunk 6 FINAL, empty chunk deleted", [&](RawShard& raw) {
    raw.Put(Cf(e), Key(e, last - 1), Reseal(a, last - 1, Plain(e, last - 1), true));
    raw.Delete(Cf(e), Key(e, last));
  }, {{e, {last - 1, last}}});
  CheckRestored();
}

}  // namespace
}  // namespace callvault
