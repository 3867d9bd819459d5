// Recording chunk formats (issue 14 item 2, decision 0033).
//
// - Chunk format 1 (crypto_secretstream, decision 0003) still reads: a store
//   written by the build before format 2 (fixture committed in
//   tests/recordings/testdata/recording-format-1) opens, lists, reads and
//   verifies its recordings, and a damaged chunk of it is still kCorruption.
// - Chunk format 2 decodes from docs/format.md alone: an independent reader
//   written here from the spec, with nothing but libsodium's public API
//   (crypto_kdf, crypto_generichash, crypto_aead_xchacha20poly1305_ietf)
//   and the tenant's DEK, opens every chunk of a recording written by the
//   engine, straight from the raw shard, without the engine's manifest.
//
// The fixture was written (once, by the format 1 build) with:
//   CALLVAULT_WRITE_FIXTURE=$PWD/tests/recordings/testdata/recording-format-1
//   build/release/tests/recordings/recording_format_test --gtest_also_run_disabled_tests
//       --gtest_filter='*MakeFixture*'
//   (the first line an environment variable of the second)
#include <openssl/evp.h>
#include <sodium.h>

#include <string>

#include "tests/testutil/fixture.h"
#include "tests/recordings/rec_util.h"
#include "workload/workload.h"

#ifndef CALLVAULT_REC_TESTDATA_DIR
#error "CALLVAULT_REC_TESTDATA_DIR must name tests/recordings/testdata"
#endif

namespace callvault {
namespace {

using rectest::kChunk;
using rectest::kT0;
using testutil::MakeCall;

const char kFixture1[] = CALLVAULT_REC_TESTDATA_DIR "/recording-format-1";

// The fixture's recordings: deterministic content.
std::string FixtureBytes(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 131 + 7) % 251);
  return s;
}

std::string Sha256(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EXPECT_EQ(EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr), 1);
  return std::string(reinterpret_cast<const char*>(md), len);
}

// Not a test: writes the fixture (see the comment at the top).
TEST(RecordingFormatTest, DISABLED_MakeFixture) {
  const std::string out = testutil::FixtureOutputDir();
  ASSERT_FALSE(out.empty()) << "set CALLVAULT_WRITE_FIXTURE";
  auto store = Store::Open(testutil::DefaultOptions(out + "/keys"), out + "/db");
  ASSERT_OK(store);
  ASSERT_OK((*store)->CreateTenant({.tenant_id = "acme"}));
  ASSERT_OK((*store)->PutCall("acme", MakeCall("call-1", kT0)));
  ASSERT_OK(rectest::WriteRecording(store->get(), "acme", "call-1", "small", FixtureBytes(3000), 1000));
  ASSERT_OK(rectest::WriteRecording(store->get(), "acme", "call-1", "empty", ""));
  ASSERT_OK((*store)->Close());
  store->reset();
  testutil::RemoveInfoLogs(out + "/db");
}

TEST(RecordingFormatTest, ReadsRecordingsOfChunkFormat1) {
  testutil::FixtureCopy copy(kFixture1);
  std::string shard;
  {
    auto store = copy.Open();
    ASSERT_OK(store);
    auto list = (*store)->ListRecordings("acme", "call-1");
    ASSERT_OK(list);
    ASSERT_EQ(list->size(), 2u);
    EXPECT_EQ((*list)[0].recording_id, "empty");
    EXPECT_EQ((*list)[0].size, 0u);
    EXPECT_EQ((*list)[0].chunks, 1u);
    EXPECT_EQ((*list)[1].recording_id, "small");
    EXPECT_EQ((*list)[1].size, 3000u);
    EXPECT_EQ((*list)[1].sha256, Sha256(FixtureBytes(3000)));
    const std::string want = FixtureBytes(3000);
    std::string got;
    ASSERT_OK(rectest::ReadRange(store->get(), "acme", "call-1", "small", 0, UINT64_MAX, &got));
    EXPECT_TRUE(got == want);
    ASSERT_OK(rectest::ReadRange(store->get(), "acme", "call-1", "small", 1234, 500, &got));
    EXPECT_TRUE(got == want.substr(1234, 500));
    ASSERT_OK(rectest::ReadRange(store->get(), "acme", "call-1", "empty", 0, UINT64_MAX, &got));
    EXPECT_TRUE(got.empty());
    auto v = (*store)->Verify("acme");
    ASSERT_OK(v);
    EXPECT_EQ(v->records_failed, 0u);
    // A new recording beside them is written in format 2; both read.
    const std::string fresh = workload::RandomBytes(1, kChunk + 10);
    ASSERT_OK(rectest::WriteRecording(store->get(), "acme", "call-1", "fresh", fresh));
    ASSERT_OK(rectest::ReadRange(store->get(), "acme", "call-1", "fresh", 0, UINT64_MAX, &got));
    EXPECT_TRUE(got == fresh);
    shard = (*store)->ShardPaths().at((*store)->DescribeTenant("acme")->shard);
    auto cf = (*store)->DescribeTenant("acme")->column_family;
    ASSERT_OK((*store)->Close());
    store->reset();
    // Damage in a format 1 chunk is still caught.
    rectest::RawShard raw(shard, false);
    ASSERT_TRUE(raw.status().ok()) << raw.status().ToString();
    auto groups = rectest::ChunkGroups(raw, cf);
    ASSERT_EQ(groups.size(), 3u);
    int flipped = 0;
    for (const auto& [name, ks] : groups) {
      std::string c = raw.Get(cf, ks[0]);
      if (c.size() != 12 + 3000 + 17) continue;  // the "small" one, format 1
      c[100] ^= 4;
      raw.Put(cf, ks[0], c);
      ++flipped;
    }
    ASSERT_EQ(flipped, 1);
  }
  auto store = copy.Open();
  ASSERT_OK(store);
  std::string got;
  EXPECT_CODE(rectest::ReadRange(store->get(), "acme", "call-1", "small", 0, UINT64_MAX, &got), Code::kCorruption);
  EXPECT_TRUE(got.empty());
  auto v = (*store)->Verify("acme");
  ASSERT_OK(v);
  EXPECT_EQ(v->records_failed, 1u);
  std::printf("[format1] fixture: 2 recordings read, 1 damaged chunk rejected\n");
}

// --- An independent reader of chunk format 2 --------------------------------
// Everything below follows docs/format.md ("Recordings", chunk format 2)
// and docs/crypto.md (subkeys), with libsodium's public API only.

void PutBE64(std::string* s, uint64_t v) {
  for (int i = 7; i >= 0; --i) s->push_back(static_cast<char>(v >> (8 * i)));
}

struct SpecReader {
  unsigned char recording_subkey[32];
  uint64_t internal_id = 0, cf_generation = 0;

  // Chunk `row_key` ('D' ‖ h(call) 16 ‖ h(recording) 16 ‖ index 4 BE) with
  // `value`; `final` for the recording's last chunk. nullopt if it fails.
  std::optional<std::string> Open(const std::string& row_key, const std::string& value, bool final) const {
    if (row_key.size() != 37 || row_key[0] != 'D' || value.size() < 32) return std::nullopt;
    const std::string hashes = row_key.substr(1, 32);
    uint32_t index = 0;
    for (int i = 0; i < 4; ++i) index = (index << 8) | static_cast<unsigned char>(row_key[33 + i]);
    // key = BLAKE2b-256 keyed with the recording subkey, of
    //   "cvrs2" ‖ internal id (8 BE) ‖ cf generation (8 BE) ‖ h(call) ‖ h(recording)
    std::string m = "cvrs2";
    PutBE64(&m, internal_id);
    PutBE64(&m, cf_generation);
    m += hashes;
    unsigned char key[32];
    crypto_generichash(key, sizeof key, reinterpret_cast<const unsigned char*>(m.data()), m.size(), recording_subkey,
                       sizeof recording_subkey);
    // nonce = the chunk's first 16 bytes (the recording's prefix) ‖ index (8 LE)
    unsigned char nonce[24];
    std::memcpy(nonce, value.data(), 16);
    for (int b = 0; b < 8; ++b) nonce[16 + b] = static_cast<unsigned char>(uint64_t{index} >> (8 * b));
    // AD = "cvrc2" ‖ internal id (8 BE) ‖ cf generation (8 BE) ‖ h(call) ‖ h(recording)
    //      ‖ index (4 LE) ‖ final (1: 0x01 on the last chunk, else 0x00)
    std::string ad = "cvrc2";
    PutBE64(&ad, internal_id);
    PutBE64(&ad, cf_generation);
    ad += hashes;
    for (int b = 0; b < 4; ++b) ad.push_back(static_cast<char>(index >> (8 * b)));
    ad.push_back(final ? '\x01' : '\x00');
    std::string plain(value.size() - 32, '\0');
    unsigned long long len = 0;
    const int rc = crypto_aead_xchacha20poly1305_ietf_decrypt(
        reinterpret_cast<unsigned char*>(plain.data()), &len, nullptr,
        reinterpret_cast<const unsigned char*>(value.data() + 16), value.size() - 16,
        reinterpret_cast<const unsigned char*>(ad.data()), ad.size(), nonce, key);
    sodium_memzero(key, sizeof key);
    if (rc != 0) return std::nullopt;
    plain.resize(len);
    return plain;
  }
};

TEST(RecordingFormatTest, IndependentReaderDecodesChunkFormat2FromTheSpec) {
  ASSERT_GE(sodium_init(), 0);
  const uint64_t seed = rectest::TestSeed();
  const std::string data = workload::RandomBytes(seed, 2 * kChunk + 12345);
  testutil::TestStore ts;
  ASSERT_OK(ts.Open());
  ASSERT_OK(ts->CreateTenant({.tenant_id = "acme"}));
  ASSERT_OK(ts->PutCall("acme", MakeCall("call-1", kT0)));
  ASSERT_OK(rectest::WriteRecording(ts.store.get(), "acme", "call-1", "rec", data));
  auto info = ts->DescribeTenant("acme");
  ASSERT_OK(info);
  const std::string shard = ts->ShardPaths().at(info->shard);
  ts.Close();

  // The tenant's DEK from its keyring, then the recording subkey as
  // docs/crypto.md says: crypto_kdf_derive_from_key(id 3, context "cvtenant").
  SecretBytes dek = rectest::TenantDek(ts.keys, info->internal_id, info->key_version);
  ASSERT_FALSE(dek.empty());
  SpecReader reader;
  ASSERT_EQ(crypto_kdf_derive_from_key(reader.recording_subkey, 32, 3, "cvtenant", dek.data()), 0);
  reader.internal_id = info->internal_id;
  reader.cf_generation = info->internal_id;  // equal in this version (format.md)

  rectest::RawShard raw(shard, true);
  ASSERT_TRUE(raw.status().ok()) << raw.status().ToString();
  auto groups = rectest::ChunkGroups(raw, info->column_family);
  ASSERT_EQ(groups.size(), 1u);
  const auto& ks = groups.begin()->second;
  ASSERT_EQ(ks.size(), 3u);
  std::string whole;
  for (size_t i = 0; i < ks.size(); ++i) {
    const std::string value = raw.Get(info->column_family, ks[i]);
    const bool final = i + 1 == ks.size();
    auto plain = reader.Open(ks[i], value, final);
    ASSERT_TRUE(plain.has_value()) << "chunk " << i << " does not decode from the spec";
    // The FINAL flag is authenticated: the same chunk read with the other
    // flag fails.
    EXPECT_FALSE(reader.Open(ks[i], value, !final).has_value()) << "chunk " << i;
    whole += *plain;
  }
  EXPECT_EQ(whole.size(), data.size());
  EXPECT_TRUE(whole == data) << "independent decode differs from what was written";
  // A chunk under another index (its row key) fails.
  EXPECT_FALSE(reader.Open(ks[1], raw.Get(info->column_family, ks[0]), false).has_value());
  sodium_memzero(reader.recording_subkey, sizeof reader.recording_subkey);
  std::printf("[format2] independent reader: %zu chunks, %zu bytes decoded from the spec\n", ks.size(),
              whole.size());
}

}  // namespace
}  // namespace callvault
