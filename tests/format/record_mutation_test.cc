// testing.md T5 at the level of one record: 50 sealed records of realistic
// plaintext (call metadata, transcripts, insights, summaries, tenant registry
// records and index values, as the engine encodes them), each mutated by
// every single-bit flip and every truncation, plus nonces and tags swapped
// between records. record::Open must reject every mutation with kCorruption
// and one of its specific messages, and must not leave plaintext behind: the
// output is either untouched or empty.
//
// Also the authenticated-but-malformed payloads that only a key holder can
// produce (a bad zstd frame, an oversized frame, an unknown dictionary): the
// decode order of design.md still rejects them without partial plaintext.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "engine/codec.h"
#include "engine/compress.h"
#include "engine/crypto.h"
#include "engine/record.h"
#include "format/envelope.h"
#include "format/rowkey.h"
#include "format/summary.h"
#include "format/verify.h"
#include "tests/testutil/testutil.h"
#include "workload/workload.h"

namespace callvault {
namespace {

uint64_t Seed() {
  uint64_t seed;
  if (const char* env = std::getenv("CALLVAULT_SEED"); env != nullptr && *env) {
    seed = std::strtoull(env, nullptr, 0);
  } else {
    seed = (static_cast<uint64_t>(std::random_device{}()) << 32) ^ std::random_device{}();
  }
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::cout << "[seed] " << (info ? info->name() : "?") << ": CALLVAULT_SEED=" << seed << std::endl;
  return seed;
}

constexpr size_t kNonceOffset = format::kEnvelopeHeaderBytes;
constexpr size_t kRecords = 50;

// The specific messages record::Open gives; anything else is a failure.
const char* const kKnownErrors[] = {
    "record envelope: ",
    "record sealed under key version ",
    "record uses a compression dictionary",
    "record failed authentication",
    "record payload",
};

struct Sealed {
  std::string what;
  const SecretBytes* key;
  record::Binding binding;
  std::string row;
  std::string plaintext;
  std::string sealed;
};

class RecordMutationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    crypto::Init();
    seed_ = Seed();
    rng_.seed(seed_);
    tenant_key_ = crypto::RandomKey();
    store_key_ = crypto::RandomKey();
    tenant_binding_ = {rng_(), rng_(), static_cast<uint32_t>(rng_())};
    store_binding_ = {0, 0, static_cast<uint32_t>(rng_())};
  }

  std::string Hash(size_t n = format::kHashBytes) {
    std::string s(n, '\0');
    for (auto& c : s) c = static_cast<char>(rng_());
    return s;
  }

  // 50 records of the kinds the engine stores, from generated calls.
  std::vector<Sealed> MakeRecords() {
    workload::GeneratorOptions opts;
    opts.seed = seed_;
    opts.transcript_scale = 0.02;  // a few KB of transcript for the largest calls
    workload::Generator gen(opts);
    std::vector<Sealed> out;
    for (size_t i = 0; i < kRecords; ++i) {
      const Call call = gen.Next();
      const std::string h = Hash();
      Sealed r;
      r.key = &tenant_key_;
      r.binding = tenant_binding_;
      switch (i % 6) {
        case 0:
          r.what = "meta";
          r.row = format::CallKey(h, format::Part::kMeta);
          r.plaintext = codec::EncodeMeta(call, kPartAll);
          break;
        case 1:
          r.what = "transcript";
          r.row = format::CallKey(h, format::Part::kTranscript);
          r.plaintext = codec::EncodeTranscript(call);
          break;
        case 2:
          r.what = "insights";
          r.row = format::CallKey(h, format::Part::kInsights);
          r.plaintext = codec::EncodeInsights(call);
          break;
        case 3: {
          r.what = "summary";
          r.row = format::CallKey(h, format::Part::kSummary);
          format::Summary s;
          s.started_at = call.started_at;
          s.updated_at = call.updated_at;
          s.duration_ms = call.duration_ms;
          s.direction = static_cast<uint8_t>(call.direction);
          s.scope = static_cast<uint8_t>(call.scope);
          s.owner = Hash(format::kShortHashBytes);
          s.workspace = Hash(format::kShortHashBytes);
          for (size_t k = 0; k < call.tags.size(); ++k) s.tags.push_back(Hash(8));
          for (size_t k = 0; k < call.participants.size(); ++k) s.participants.push_back(Hash(8));
          for (size_t k = 0; k < call.crm_links.size(); ++k) s.crm.push_back(Hash(8));
          r.plaintext = format::EncodeSummary(s);
          break;
        }
        case 4: {
          r.what = "tenant";
          r.key = &store_key_;
          r.binding = store_binding_;
          r.row = format::RegistryKey(h);
          codec::TenantRecord t;
          t.tenant_id = "tenant-" + call.call_id;
          t.state = TenantState::kActive;
          t.region = "eu-west-1";
          t.internal_id = rng_();
          t.cf_generation = rng_();
          t.key_version = 1;
          t.created_at = call.created_at;
          r.plaintext = codec::EncodeTenant(t);
          break;
        }
        default:
          r.what = "source index value";
          r.row = format::SourceIndexKey(h);
          r.plaintext = Hash();  // the sealed value of an 'S' entry: h(call_id)
          break;
      }
      r.sealed = record::Seal(*r.key, r.binding, r.row, r.plaintext);
      out.push_back(std::move(r));
    }
    return out;
  }

  uint64_t seed_ = 0;
  std::mt19937_64 rng_;
  SecretBytes tenant_key_, store_key_;
  record::Binding tenant_binding_, store_binding_;
};

// Counts rejections; remembers the first few failures of the property.
struct Checker {
  static constexpr const char* kSentinel = "untouched plaintext output, longer than SSO";
  size_t mutations = 0;
  size_t bad = 0;
  std::map<std::string, size_t> by_message;
  std::vector<std::string> failures;

  void Expect(const Sealed& r, std::string_view mutated, const std::string& how) {
    ++mutations;
    std::string out = kSentinel;
    Status s = record::Open(*r.key, r.binding, r.row, mutated, &out);
    std::string problem;
    if (s.ok()) {
      problem = "opened OK";
    } else if (s.code() != Code::kCorruption) {
      problem = "code " + std::string(CodeName(s.code()));
    } else if (out != kSentinel && !out.empty()) {
      problem = "left " + std::to_string(out.size()) + " bytes of output";
    } else {
      bool known = false;
      for (const char* prefix : kKnownErrors) {
        if (s.message().rfind(prefix, 0) == 0) {
          ++by_message[prefix];
          known = true;
          break;
        }
      }
      if (!known) problem = "unexpected message";
    }
    if (!problem.empty()) {
      ++bad;
      if (failures.size() < 20) {
        failures.push_back(r.what + " (" + std::to_string(r.sealed.size()) + " bytes) " + how +
                           ": " + problem + " [" + s.ToString() + "]");
      }
    }
  }
};

std::string FlipBit(std::string v, size_t bit) {
  v[bit / 8] = static_cast<char>(v[bit / 8] ^ (1 << (bit % 8)));
  return v;
}

TEST_F(RecordMutationTest, EveryBitFlipTruncationAndSwapIsRejected) {
  const auto start = std::chrono::steady_clock::now();
  const std::vector<Sealed> records = MakeRecords();
  ASSERT_EQ(records.size(), kRecords);
  size_t bytes = 0, compressed = 0;
  for (const auto& r : records) {
    // Unmutated, every record opens to its plaintext (the test can fail).
    std::string out;
    ASSERT_OK(record::Open(*r.key, r.binding, r.row, r.sealed, &out));
    ASSERT_EQ(out, r.plaintext) << r.what;
    bytes += r.sealed.size();
    compressed += r.sealed[1] == static_cast<char>(format::Codec::kZstd);
  }
  EXPECT_GT(compressed, 5u);
  EXPECT_LT(compressed, kRecords);  // both codecs are covered

  // The checker itself: an unmutated record opens, and that is a failure.
  Checker control;
  control.Expect(records[0], records[0].sealed, "unmutated");
  ASSERT_EQ(control.bad, 1u);

  Checker check;
  size_t flips = 0, truncations = 0, swaps = 0;
  for (const auto& r : records) {
    for (size_t bit = 0; bit < r.sealed.size() * 8; ++bit, ++flips) {
      check.Expect(r, FlipBit(r.sealed, bit), "bit " + std::to_string(bit));
    }
    for (size_t len = 0; len < r.sealed.size(); ++len, ++truncations) {
      check.Expect(r, std::string_view(r.sealed).substr(0, len), "truncated to " + std::to_string(len));
    }
  }
  // Nonce and tag of another record: a record sealed under the same key and
  // binding (the next record of that kind), and a fresh seal of the same
  // plaintext in the same row.
  auto swap_parts = [&](const Sealed& r, const std::string& donor, const std::string& how) {
    const size_t tag_at = r.sealed.size() - format::kTagBytes;
    std::string nonce_swapped = r.sealed;
    nonce_swapped.replace(kNonceOffset, format::kNonceBytes, donor.substr(kNonceOffset, format::kNonceBytes));
    check.Expect(r, nonce_swapped, how + ": nonce swapped");
    std::string tag_swapped = r.sealed;
    tag_swapped.replace(tag_at, format::kTagBytes, donor.substr(donor.size() - format::kTagBytes));
    check.Expect(r, tag_swapped, how + ": tag swapped");
    std::string both = nonce_swapped;
    both.replace(tag_at, format::kTagBytes, donor.substr(donor.size() - format::kTagBytes));
    check.Expect(r, both, how + ": nonce and tag swapped");
    swaps += 3;
  };
  for (size_t i = 0; i < records.size(); ++i) {
    const Sealed& r = records[i];
    const size_t j = i + 6 < records.size() ? i + 6 : i - 6;  // same kind, key and binding
    ASSERT_EQ(r.what, records[j].what);
    swap_parts(r, records[j].sealed, "with record " + std::to_string(j));
    swap_parts(r, record::Seal(*r.key, r.binding, r.row, r.plaintext), "with a reseal");
  }

  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cout << "[mutations] " << kRecords << " records, " << bytes << " sealed bytes ("
            << compressed << " zstd): " << flips << " bit flips + " << truncations
            << " truncations + " << swaps << " nonce/tag swaps = " << check.mutations
            << " mutations, " << check.bad << " not rejected properly, " << secs << " s"
            << std::endl;
  for (const auto& [msg, n] : check.by_message) std::cout << "  " << n << " x \"" << msg << "...\"" << std::endl;
  for (const auto& f : check.failures) ADD_FAILURE() << f;
  EXPECT_EQ(check.bad, 0u);
  EXPECT_GE(check.mutations, 10000u);
  // Each class of check was reached: header checks before the AEAD, and the AEAD.
  EXPECT_GT(check.by_message["record envelope: "], 0u);
  EXPECT_GT(check.by_message["record sealed under key version "], 0u);
  EXPECT_GT(check.by_message["record uses a compression dictionary"], 0u);
  EXPECT_GT(check.by_message["record failed authentication"], 0u);
}

// A record that authenticates but whose payload is bad: only a key holder
// can write one, and the rest of the decode order must still hold.
class AuthenticatedPayloadTest : public RecordMutationTest {
 protected:
  std::string SealRaw(format::Codec codec, std::string_view body, uint32_t key_version) {
    format::EnvelopeHeader h;
    h.codec = codec;
    h.key_version = key_version;
    const std::string header = format::EncodeEnvelopeHeader(h);
    const std::string nonce = crypto::RandomString(format::kNonceBytes);
    const std::string aad = format::RecordAad(header, tenant_binding_.internal_id,
                                              tenant_binding_.cf_generation, row_);
    return header + nonce + crypto::AeadSeal(tenant_key_, nonce, body, aad);
  }
  // Opens with a non-empty output; returns the status, checks the output.
  Status OpenExpectNoPlaintext(const std::string& sealed) {
    std::string out = "previous value of the output string";
    Status s = record::Open(tenant_key_, tenant_binding_, row_, sealed, &out);
    if (!s.ok()) {
      EXPECT_TRUE(out.empty() || out == "previous value of the output string")
          << "output holds " << out.size() << " bytes after " << s.ToString();
    }
    return s;
  }
  const std::string row_ = format::CallKey(std::string(16, 'r'), format::Part::kTranscript);
};

TEST_F(AuthenticatedPayloadTest, SealRawMatchesRecordSeal) {
  // The hand-built envelope is what Seal builds: it opens.
  std::string out;
  ASSERT_OK(record::Open(tenant_key_, tenant_binding_, row_,
                         SealRaw(format::Codec::kNone, "plain", tenant_binding_.key_version), &out));
  EXPECT_EQ(out, "plain");
  const std::string text(5000, 'x');
  ASSERT_OK(record::Open(tenant_key_, tenant_binding_, row_,
                         SealRaw(format::Codec::kZstd, compress::Compress(text),
                                 tenant_binding_.key_version),
                         &out));
  EXPECT_EQ(out, text);
}

TEST_F(AuthenticatedPayloadTest, BadZstdPayloadsRejected) {
  const uint32_t kv = tenant_binding_.key_version;
  std::string text;
  for (int i = 0; i < 400; ++i) text += "segment " + std::to_string(i * 7919 % 1000) + " words; ";
  const std::string frame = compress::Compress(text);
  // Not a zstd frame at all.
  Status s = OpenExpectNoPlaintext(SealRaw(format::Codec::kZstd, "not a zstd frame", kv));
  EXPECT_EQ(s.code(), Code::kCorruption) << s.ToString();
  s = OpenExpectNoPlaintext(SealRaw(format::Codec::kZstd, "", kv));
  EXPECT_EQ(s.code(), Code::kCorruption) << s.ToString();
  // Every truncation of a real frame.
  for (size_t len = 0; len < frame.size(); ++len) {
    s = OpenExpectNoPlaintext(SealRaw(format::Codec::kZstd, frame.substr(0, len), kv));
    EXPECT_EQ(s.code(), Code::kCorruption) << len << ": " << s.ToString();
  }
  // A frame whose content is over the output limit (64 MiB + 1).
  const std::string huge = compress::Compress(std::string(format::kMaxFlatBufferBytes + 1, 'a'));
  s = OpenExpectNoPlaintext(SealRaw(format::Codec::kZstd, huge, kv));
  EXPECT_EQ(s.code(), Code::kCorruption);
  EXPECT_NE(s.message().find("size limit"), std::string::npos) << s.ToString();
  // A frame followed by garbage.
  s = OpenExpectNoPlaintext(SealRaw(format::Codec::kZstd, frame + "trailing", kv));
  EXPECT_EQ(s.code(), Code::kCorruption) << s.ToString();
  // A dictionary this store does not have, and an uncompressed record in
  // the right key version but from another version: still rejected.
  s = OpenExpectNoPlaintext(SealRaw(format::Codec::kZstdDict, frame, kv));
  EXPECT_EQ(s.code(), Code::kCorruption);
  s = OpenExpectNoPlaintext(SealRaw(format::Codec::kNone, "plain", kv + 1));
  EXPECT_EQ(s.code(), Code::kCorruption);
}

TEST_F(AuthenticatedPayloadTest, OnlyOneZstdFrameAccepted) {
  // compress.h: "kCorruption if `input` is not one zstd frame". zstd itself
  // decodes concatenated frames and skips skippable ones, so a frame with an
  // empty or skippable frame after it, or a lone skippable frame (content
  // size 0), opened as OK before engine/compress.cc checked the frame size.
  const uint32_t kv = tenant_binding_.key_version;
  const std::string frame = compress::Compress(std::string(500, 'p'));
  const std::string empty_frame = compress::Compress("");
  // Magic 0x184D2A50 (any of 16 values), 4-byte length, payload.
  const std::string skippable("\x5a\x2a\x4d\x18\x04\x00\x00\x00zzzz", 12);
  for (const auto& [what, body] : std::vector<std::pair<std::string, std::string>>{
           {"frame + empty frame", frame + empty_frame},
           {"frame + skippable frame", frame + skippable},
           {"frame + frame", frame + frame},
           {"skippable frame", skippable},
           {"skippable frame + frame", skippable + frame}}) {
    Status s = OpenExpectNoPlaintext(SealRaw(format::Codec::kZstd, body, kv));
    EXPECT_EQ(s.code(), Code::kCorruption) << what << ": " << s.ToString();
  }
  std::string out;
  ASSERT_OK(record::Open(tenant_key_, tenant_binding_, row_, SealRaw(format::Codec::kZstd, empty_frame, kv), &out));
  EXPECT_EQ(out, "");
}

TEST_F(AuthenticatedPayloadTest, AuthenticatedGarbageFailsFlatBuffersVerification) {
  // The last step of the decode order: bytes that open but are not the
  // record they claim to be.
  std::mt19937_64 rng(seed_);
  Call call;
  uint32_t parts = 0;
  for (int i = 0; i < 500; ++i) {
    std::string body(rng() % 400, '\0');
    for (auto& c : body) c = static_cast<char>(rng());
    std::string out;
    ASSERT_OK(record::Open(tenant_key_, tenant_binding_, row_,
                           SealRaw(format::Codec::kNone, body, tenant_binding_.key_version), &out));
    EXPECT_CODE(codec::DecodeTranscript(out, &call), Code::kCorruption);
    EXPECT_CODE(codec::DecodeMeta(out, &call, &parts), Code::kCorruption);
  }
}

}  // namespace
}  // namespace callvault
