// format/: the bytes-only layer. Envelope, row keys, cursor, summary, keyring
// file layout and FlatBuffers verification, plus the enum range checks of the
// codec decoders (engine/codec.h) that FlatBuffers does not do. Every parser
// is checked on a round trip and on each way its input can be wrong.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "call_generated.h"
#include "engine/codec.h"
#include "format/coding.h"
#include "format/cursor.h"
#include "format/envelope.h"
#include "format/keyring_format.h"
#include "format/rowkey.h"
#include "format/summary.h"
#include "format/verify.h"
#include "tests/testutil/testutil.h"

namespace callvault::format {
namespace {

// $CALLVAULT_SEED replays a run; otherwise random. Printed either way.
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

std::string RandomBytes(std::mt19937_64& rng, size_t n) {
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

// RocksDB's bytewise order.
bool BytewiseLess(const std::string& a, const std::string& b) {
  int c = std::memcmp(a.data(), b.data(), std::min(a.size(), b.size()));
  return c < 0 || (c == 0 && a.size() < b.size());
}

const std::string kHashA(kHashBytes, 'a');
const std::string kHashB(kHashBytes, '\xfe');

// ---------------------------------------------------------------- envelope

std::string ValidEnvelope(uint8_t codec, uint32_t key_version, uint32_t dict_id,
                          size_t ciphertext_bytes) {
  EnvelopeHeader h;
  h.codec = static_cast<Codec>(codec);
  h.key_version = key_version;
  h.dict_id = dict_id;
  std::string e = EncodeEnvelopeHeader(h);
  e += std::string(kNonceBytes, 'N');
  e += std::string(ciphertext_bytes, 'c');
  return e;
}

TEST(EnvelopeTest, HeaderLayout) {
  EnvelopeHeader h;
  h.codec = Codec::kZstd;
  h.key_version = 0x04030201;
  h.dict_id = 0x0d0c0b0a;
  const std::string b = EncodeEnvelopeHeader(h);
  ASSERT_EQ(b.size(), kEnvelopeHeaderBytes);
  EXPECT_EQ(b, std::string("\x01\x01\x01\x02\x03\x04\x0a\x0b\x0c\x0d", 10));
  EXPECT_EQ(kEnvelopeOverhead, 50u);
}

TEST(EnvelopeTest, RoundTrip) {
  for (uint8_t codec : {0, 1, 2}) {
    for (size_t n : {size_t{kTagBytes}, size_t{kTagBytes + 1}, size_t{1000}}) {
      const std::string e = ValidEnvelope(codec, 0xfffffffe, 77, n);
      EnvelopeView v;
      ASSERT_EQ(ParseEnvelope(e, e.size(), &v), EnvelopeError::kOk);
      EXPECT_EQ(v.header.version, kEnvelopeVersion);
      EXPECT_EQ(static_cast<uint8_t>(v.header.codec), codec);
      EXPECT_EQ(v.header.key_version, 0xfffffffeu);
      EXPECT_EQ(v.header.dict_id, 77u);
      // Views into the input, in order, covering all of it.
      EXPECT_EQ(v.header_bytes.data(), e.data());
      EXPECT_EQ(v.header_bytes.size(), kEnvelopeHeaderBytes);
      EXPECT_EQ(v.nonce.data(), e.data() + kEnvelopeHeaderBytes);
      EXPECT_EQ(v.nonce, std::string(kNonceBytes, 'N'));
      EXPECT_EQ(v.ciphertext.data(), e.data() + kEnvelopeHeaderBytes + kNonceBytes);
      EXPECT_EQ(v.ciphertext, std::string(n, 'c'));
      EXPECT_EQ(EncodeEnvelopeHeader(v.header), v.header_bytes);
    }
  }
}

TEST(EnvelopeTest, TooShort) {
  const std::string e = ValidEnvelope(0, 1, 0, kTagBytes);
  ASSERT_EQ(e.size(), kEnvelopeOverhead);
  for (size_t len = 0; len < e.size(); ++len) {
    EnvelopeView v;
    EXPECT_EQ(ParseEnvelope(e.substr(0, len), 1 << 20, &v), EnvelopeError::kTooShort) << len;
  }
  EnvelopeView v;
  EXPECT_EQ(ParseEnvelope(e, 1 << 20, &v), EnvelopeError::kOk);
}

TEST(EnvelopeTest, TooLong) {
  const std::string e = ValidEnvelope(0, 1, 0, 100);
  EnvelopeView v;
  EXPECT_EQ(ParseEnvelope(e, e.size(), &v), EnvelopeError::kOk);
  EXPECT_EQ(ParseEnvelope(e, e.size() - 1, &v), EnvelopeError::kTooLong);
  EXPECT_EQ(ParseEnvelope(e, 0, &v), EnvelopeError::kTooLong);
  // The size cap comes before anything else is looked at.
  std::string bad = e;
  bad[0] = 9;
  EXPECT_EQ(ParseEnvelope(bad, 10, &v), EnvelopeError::kTooLong);
}

TEST(EnvelopeTest, BadVersion) {
  for (int version : {0, 2, 3, 0x7f, 0x80, 0xff}) {
    std::string e = ValidEnvelope(0, 1, 0, kTagBytes);
    e[0] = static_cast<char>(version);
    EnvelopeView v;
    EXPECT_EQ(ParseEnvelope(e, 1 << 20, &v), EnvelopeError::kBadVersion) << version;
  }
}

TEST(EnvelopeTest, BadCodec) {
  for (int codec = 3; codec < 256; ++codec) {
    std::string e = ValidEnvelope(0, 1, 0, kTagBytes);
    e[1] = static_cast<char>(codec);
    EnvelopeView v;
    EXPECT_EQ(ParseEnvelope(e, 1 << 20, &v), EnvelopeError::kBadCodec) << codec;
  }
}

TEST(EnvelopeTest, ErrorNamesAreDistinct) {
  std::vector<std::string> names;
  for (auto e : {EnvelopeError::kOk, EnvelopeError::kTooShort, EnvelopeError::kTooLong,
                 EnvelopeError::kBadVersion, EnvelopeError::kBadCodec}) {
    names.push_back(EnvelopeErrorName(e));
    EXPECT_FALSE(names.back().empty());
  }
  std::sort(names.begin(), names.end());
  EXPECT_EQ(std::adjacent_find(names.begin(), names.end()), names.end());
}

TEST(EnvelopeTest, RecordAadLayout) {
  const std::string header = ValidEnvelope(1, 5, 0, 0).substr(0, kEnvelopeHeaderBytes);
  const std::string aad = RecordAad(header, 0x0102030405060708, 0x1112131415161718, "row");
  std::string expect = "cvrec1" + header;
  expect += std::string("\x01\x02\x03\x04\x05\x06\x07\x08", 8);
  expect += std::string("\x11\x12\x13\x14\x15\x16\x17\x18", 8);
  expect += "row";
  EXPECT_EQ(aad, expect);
  EXPECT_EQ(RecordAad(header, 0, 0, ""), "cvrec1" + header + std::string(16, '\0'));
  // Each part changes the associated data; internal id and generation are
  // not interchangeable.
  EXPECT_NE(RecordAad(header, 1, 2, "k"), RecordAad(header, 2, 1, "k"));
  EXPECT_NE(RecordAad(header, 1, 2, "k"), RecordAad(header, 1, 2, "K"));
  EXPECT_NE(RecordAad(header, 1, 2, "k"), RecordAad(header, 1, 2, std::string("k\0", 2)));
}

// ---------------------------------------------------------------- row keys

TEST(RowKeyTest, CallKeyRoundTrip) {
  for (int p = 0; p < kPartCount; ++p) {
    const std::string k = CallKey(kHashA, static_cast<Part>(p));
    ASSERT_EQ(k.size(), 1 + kHashBytes + 1);
    EXPECT_EQ(k[0], kCallPrefix);
    EXPECT_EQ(k.substr(0, 1 + kHashBytes), CallKeyPrefix(kHashA));
    auto parsed = ParseCallKey(k);
    ASSERT_TRUE(parsed.has_value());
    EXPECT_EQ(parsed->call_hash, kHashA);
    EXPECT_EQ(static_cast<int>(parsed->part), p);
  }
}

TEST(RowKeyTest, ParseCallKeyRejects) {
  const std::string k = CallKey(kHashA, Part::kInsights);
  EXPECT_FALSE(ParseCallKey("").has_value());
  for (size_t len = 0; len < k.size(); ++len) EXPECT_FALSE(ParseCallKey(k.substr(0, len))) << len;
  EXPECT_FALSE(ParseCallKey(k + "x"));
  for (char prefix : {kTimeIndexPrefix, kRecordingManifestPrefix, 'c', '\0'}) {
    std::string bad = k;
    bad[0] = prefix;
    EXPECT_FALSE(ParseCallKey(bad)) << prefix;
  }
  for (int part : {kPartCount, kPartCount + 1, 0x7f, 0xff}) {
    std::string bad = k;
    bad.back() = static_cast<char>(part);
    EXPECT_FALSE(ParseCallKey(bad)) << part;
  }
  // A recording key of the same call is not a call key.
  EXPECT_FALSE(ParseCallKey(RecordingKey(kRecordingManifestPrefix, kHashA, kHashB)));
}

std::vector<int64_t> InterestingTimes(std::mt19937_64& rng) {
  std::vector<int64_t> t = {std::numeric_limits<int64_t>::min(),
                            std::numeric_limits<int64_t>::min() + 1,
                            -1'000'000'000'000'000,
                            -86'400'000'000,
                            -256,
                            -255,
                            -1,
                            0,
                            1,
                            255,
                            256,
                            1'767'225'600'000'000,
                            std::numeric_limits<int64_t>::max() - 1,
                            std::numeric_limits<int64_t>::max()};
  for (int i = 0; i < 500; ++i) t.push_back(static_cast<int64_t>(rng()));
  for (int i = 0; i < 100; ++i) t.push_back(static_cast<int64_t>(rng() % 2000) - 1000);
  std::sort(t.begin(), t.end());
  t.erase(std::unique(t.begin(), t.end()), t.end());
  return t;
}

TEST(RowKeyTest, TimeKeysSortInNumericOrder) {
  std::mt19937_64 rng(Seed());
  const std::vector<int64_t> times = InterestingTimes(rng);
  using KeyFn = std::string (*)(int64_t);
  const std::vector<std::pair<const char*, KeyFn>> kinds = {
      {"T", [](int64_t t) { return TimeIndexKey(t, kHashA); }},
      {"U", [](int64_t t) { return UpdatedIndexKey(t, kHashA); }},
      {"O", [](int64_t t) { return AttributeIndexKey(kOwnerIndexPrefix, kHashB, t, kHashA); }},
      {"K", [](int64_t t) { return AttributeIndexKey(kCrmIndexPrefix, kHashB, t, kHashA); }},
  };
  for (const auto& [name, fn] : kinds) {
    SCOPED_TRACE(name);
    std::vector<std::string> keys;
    for (int64_t t : times) keys.push_back(fn(t));
    // Numeric order (times are sorted) is byte order.
    for (size_t i = 1; i < keys.size(); ++i) {
      ASSERT_TRUE(BytewiseLess(keys[i - 1], keys[i])) << times[i - 1] << " vs " << times[i];
    }
    // And every key parses back to its time and call hash.
    for (size_t i = 0; i < keys.size(); ++i) {
      auto tail = ParseIndexTail(keys[i]);
      ASSERT_TRUE(tail.has_value());
      EXPECT_EQ(tail->started_at, times[i]);
      EXPECT_EQ(tail->call_hash, kHashA);
    }
  }
  // For one time, the call hash orders the keys.
  EXPECT_TRUE(BytewiseLess(TimeIndexKey(-5, kHashA), TimeIndexKey(-5, kHashB)));
  // The time key layout: prefix, BE time with the sign bit flipped, hash.
  EXPECT_EQ(TimeIndexKey(0, kHashA), "T" + std::string("\x80\0\0\0\0\0\0\0", 8) + kHashA);
  EXPECT_EQ(TimeIndexKey(-1, kHashA), "T" + std::string("\x7f\xff\xff\xff\xff\xff\xff\xff", 8) + kHashA);
}

TEST(RowKeyTest, ParseTimeIndexKey) {
  for (int64_t t : {std::numeric_limits<int64_t>::min(), int64_t{-7}, int64_t{0},
                    std::numeric_limits<int64_t>::max()}) {
    const std::string key = TimeIndexKey(t, kHashB);  // the parse is a view into it
    auto p = ParseTimeIndexKey(key);
    ASSERT_TRUE(p.has_value());
    EXPECT_EQ(p->started_at, t);
    EXPECT_EQ(p->call_hash, kHashB);
  }
  const std::string k = TimeIndexKey(5, kHashA);
  EXPECT_FALSE(ParseTimeIndexKey(k.substr(0, k.size() - 1)));
  EXPECT_FALSE(ParseTimeIndexKey(k + "x"));
  EXPECT_FALSE(ParseTimeIndexKey(UpdatedIndexKey(5, kHashA)));  // another prefix
}

TEST(RowKeyTest, ParseIndexTailEachKindAndWrongLengths) {
  const size_t kShort = 1 + 8 + kHashBytes;
  const size_t kLong = 1 + kHashBytes + 8 + kHashBytes;
  struct Kind {
    char prefix;
    std::string key;
    size_t size;
  };
  const std::vector<Kind> kinds = {
      {kTimeIndexPrefix, TimeIndexKey(-42, kHashA), kShort},
      {kUpdatedIndexPrefix, UpdatedIndexKey(-42, kHashA), kShort},
      {kOwnerIndexPrefix, AttributeIndexKey(kOwnerIndexPrefix, kHashB, -42, kHashA), kLong},
      {kParticipantIndexPrefix, AttributeIndexKey(kParticipantIndexPrefix, kHashB, -42, kHashA),
       kLong},
      {kCrmIndexPrefix, AttributeIndexKey(kCrmIndexPrefix, kHashB, -42, kHashA), kLong},
      {kWorkspaceIndexPrefix, AttributeIndexKey(kWorkspaceIndexPrefix, kHashB, -42, kHashA), kLong},
  };
  for (const auto& k : kinds) {
    SCOPED_TRACE(k.prefix);
    ASSERT_EQ(k.key.size(), k.size);
    ASSERT_EQ(k.key[0], k.prefix);
    auto tail = ParseIndexTail(k.key);
    ASSERT_TRUE(tail.has_value());
    EXPECT_EQ(tail->started_at, -42);
    EXPECT_EQ(tail->call_hash, kHashA);
    EXPECT_TRUE(IsIndexKey(k.key));
    for (size_t len = 0; len < k.key.size(); ++len) {
      EXPECT_FALSE(ParseIndexTail(k.key.substr(0, len))) << len;
    }
    EXPECT_FALSE(ParseIndexTail(k.key + "x"));
    // The length of the other shape is wrong for this prefix.
    std::string other(k.size == kShort ? kLong : kShort, '\0');
    other[0] = k.prefix;
    EXPECT_FALSE(ParseIndexTail(other));
  }
  // Keys that are not index keys, whatever their length.
  const std::vector<std::string> not_index = {
      "",
      CallKey(kHashA, Part::kMeta),
      SourceIndexKey(kHashA),
      RegistryKey(kHashA),
      ReceiptKey(1),
      AuditKey(1),
      HeaderKey("format"),
      RecordingKey(kRecordingManifestPrefix, kHashA, kHashB),
      RecordingChunkKey(kHashA, kHashB, 3),
      RecordingKey(kCallHoldPrefix, kHashA, kHashB),
      std::string(1, kPinPrefix) + kHashA,
  };
  for (const auto& k : not_index) EXPECT_FALSE(IsIndexKey(k)) << k;
  for (char prefix : {kCallPrefix, kSourceIndexPrefix, kRecordingManifestPrefix,
                      kRecordingChunkPrefix, kPinPrefix, 't', '\0', '\xff'}) {
    for (size_t size : {kShort, kLong}) {
      std::string k(size, '\0');
      k[0] = prefix;
      EXPECT_FALSE(ParseIndexTail(k)) << prefix << " " << size;
    }
  }
}

TEST(RowKeyTest, DictionaryKeysRoundTripAndAreNoIndexKeys) {
  for (uint32_t id : {1u, 2u, 255u, 256u, 0x80000000u, 0xffffffffu}) {
    const std::string k = DictionaryKey(id);
    ASSERT_EQ(k.size(), 5u);
    EXPECT_EQ(k[0], kDictionaryPrefix);
    EXPECT_EQ(ParseDictionaryKey(k), std::optional<uint32_t>(id));
    EXPECT_FALSE(IsIndexKey(k));
    EXPECT_FALSE(ParseCallKey(k));
  }
  EXPECT_LT(DictionaryKey(255), DictionaryKey(256));
  EXPECT_FALSE(ParseDictionaryKey(""));
  EXPECT_FALSE(ParseDictionaryKey("Z123"));
  EXPECT_FALSE(ParseDictionaryKey("Z12345"));
  EXPECT_FALSE(ParseDictionaryKey("Y1234"));
  EXPECT_FALSE(ParseDictionaryKey(CallKey(std::string(kHashBytes, 'a'), Part::kMeta)));
}

TEST(RowKeyTest, SequenceAndChunkKeysSortInNumericOrder) {
  const std::vector<uint64_t> seqs = {0, 1, 255, 256, 65535, 65536, uint64_t{1} << 32,
                                      std::numeric_limits<uint64_t>::max()};
  for (size_t i = 1; i < seqs.size(); ++i) {
    EXPECT_TRUE(BytewiseLess(ReceiptKey(seqs[i - 1]), ReceiptKey(seqs[i])));
    EXPECT_TRUE(BytewiseLess(AuditKey(seqs[i - 1]), AuditKey(seqs[i])));
  }
  const std::vector<uint32_t> chunks = {0, 1, 255, 256, 65536, 0xffffffff};
  for (size_t i = 1; i < chunks.size(); ++i) {
    EXPECT_TRUE(BytewiseLess(RecordingChunkKey(kHashA, kHashB, chunks[i - 1]),
                             RecordingChunkKey(kHashA, kHashB, chunks[i])));
  }
  // A chunk key extends the recording's pending and manifest key shapes.
  const std::string chunk = RecordingChunkKey(kHashA, kHashB, 0x01020304);
  EXPECT_EQ(chunk, RecordingKey(kRecordingChunkPrefix, kHashA, kHashB) + "\x01\x02\x03\x04");
}

TEST(RowKeyTest, ColumnFamilyNameRoundTrip) {
  std::mt19937_64 rng(Seed());
  std::vector<uint64_t> ids = {0, 1, 0xf, 0x10, 0xabcdef, std::numeric_limits<uint64_t>::max()};
  for (int i = 0; i < 1000; ++i) ids.push_back(rng());
  for (uint64_t id : ids) {
    const std::string name = ColumnFamilyName(id);
    ASSERT_EQ(name.size(), 17u);
    EXPECT_EQ(name[0], 't');
    EXPECT_EQ(name.find_first_not_of("0123456789abcdef", 1), std::string::npos) << name;
    auto back = ParseColumnFamilyName(name);
    ASSERT_TRUE(back.has_value()) << name;
    EXPECT_EQ(*back, id);
  }
  EXPECT_EQ(ColumnFamilyName(0x1a), "t000000000000001a");
}

// After a key rotation (decision 0036): "t" + 16 hex + "r" + 8 hex.
TEST(RowKeyTest, RotatedColumnFamilyNames) {
  EXPECT_EQ(ColumnFamilyName(0x1a, 0), "t000000000000001a");
  EXPECT_EQ(ColumnFamilyName(0x1a, 3), "t000000000000001ar00000003");
  std::mt19937_64 rng(Seed());
  for (int i = 0; i < 1000; ++i) {
    const uint64_t id = rng();
    const uint32_t family = static_cast<uint32_t>(rng());
    const std::string name = ColumnFamilyName(id, family);
    auto f = ParseFamilyName(name);
    ASSERT_TRUE(f.has_value()) << name;
    EXPECT_EQ(f->internal_id, id);
    EXPECT_EQ(f->family, family);
    EXPECT_EQ(ParseColumnFamilyName(name), std::optional<uint64_t>(id));
  }
  const std::string good = ColumnFamilyName(0x0123456789abcdef, 0x2a);
  ASSERT_TRUE(ParseFamilyName(good));
  EXPECT_FALSE(ParseFamilyName("t0123456789abcdefr00000000"));  // family 0 has the short name
  EXPECT_FALSE(ParseFamilyName("t0123456789abcdefs0000002a"));
  EXPECT_FALSE(ParseFamilyName("t0123456789abcdefr0000002A"));
  EXPECT_FALSE(ParseFamilyName(good.substr(0, 25)));
  EXPECT_FALSE(ParseFamilyName(good + "0"));
  EXPECT_FALSE(ParseColumnFamilyName("t0123456789abcdefr00000000"));
}

TEST(RowKeyTest, ColumnFamilyNameRejects) {
  const std::string good = ColumnFamilyName(0x0123456789abcdef);
  ASSERT_TRUE(ParseColumnFamilyName(good));
  EXPECT_FALSE(ParseColumnFamilyName(""));
  EXPECT_FALSE(ParseColumnFamilyName("default"));
  EXPECT_FALSE(ParseColumnFamilyName(good.substr(0, 16)));
  EXPECT_FALSE(ParseColumnFamilyName(good + "0"));
  EXPECT_FALSE(ParseColumnFamilyName("T0123456789abcdef"));
  EXPECT_FALSE(ParseColumnFamilyName("x0123456789abcdef"));
  EXPECT_FALSE(ParseColumnFamilyName("t0123456789ABCDEF"));  // canonical form is lower case
  for (char c : {'g', 'G', ' ', '-', '+', 'x', '\0', '/', ':', '`', '@', '\xff'}) {
    for (size_t pos : {size_t{1}, size_t{9}, size_t{16}}) {
      std::string bad = good;
      bad[pos] = c;
      EXPECT_FALSE(ParseColumnFamilyName(bad)) << static_cast<int>(c) << " at " << pos;
    }
  }
}

// ---------------------------------------------------------------- cursor

TEST(CursorTest, Base64UrlKnownVectors) {
  // RFC 4648, section 10, without padding.
  const std::vector<std::pair<std::string, std::string>> v = {
      {"", ""},         {"f", "Zg"},         {"fo", "Zm8"},          {"foo", "Zm9v"},
      {"foob", "Zm9vYg"}, {"fooba", "Zm9vYmE"}, {"foobar", "Zm9vYmFy"},
      {std::string("\xfb\xff", 2), "-_8"},  // the URL-safe characters
  };
  for (const auto& [bytes, text] : v) {
    EXPECT_EQ(Base64UrlEncode(bytes), text);
    auto back = Base64UrlDecode(text);
    ASSERT_TRUE(back.has_value()) << text;
    EXPECT_EQ(*back, bytes);
  }
}

TEST(CursorTest, Base64UrlRoundTrip) {
  std::mt19937_64 rng(Seed());
  for (size_t n = 0; n < 200; ++n) {
    const std::string bytes = RandomBytes(rng, n);
    const std::string text = Base64UrlEncode(bytes);
    EXPECT_EQ(text.size(), (n * 8 + 5) / 6);
    EXPECT_EQ(text.find_first_not_of(
                  "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
              std::string::npos);
    auto back = Base64UrlDecode(text);
    ASSERT_TRUE(back.has_value());
    EXPECT_EQ(*back, bytes);
  }
}

TEST(CursorTest, Base64UrlDecodeRejectsBadCharacters) {
  const std::string good = Base64UrlEncode("0123456789abcdef");
  for (int c = 0; c < 256; ++c) {
    const char ch = static_cast<char>(c);
    const bool in_alphabet = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
                             (ch >= '0' && ch <= '9') || ch == '-' || ch == '_';
    if (in_alphabet) continue;
    for (size_t pos : {size_t{0}, good.size() / 2, good.size() - 1}) {
      std::string bad = good;
      bad[pos] = ch;
      EXPECT_FALSE(Base64UrlDecode(bad)) << c << " at " << pos;
    }
  }
  EXPECT_FALSE(Base64UrlDecode("Zg=="));  // padding is not part of the form
  EXPECT_FALSE(Base64UrlDecode("Zm9v+/"));  // standard alphabet
}

TEST(CursorTest, Base64UrlDecodeRejectsNonZeroPaddingBitsAndBadLengths) {
  // "f" is "Zg": the last character carries 4 padding bits. Any of them set
  // is another spelling of the same bytes, and refused.
  for (const char* text : {"Zh", "Zi", "Zj", "Zk", "Zp", "Zv"}) EXPECT_FALSE(Base64UrlDecode(text)) << text;
  // "fo" is "Zm8": 2 padding bits.
  for (const char* text : {"Zm9", "Zm-", "Zm_"}) EXPECT_FALSE(Base64UrlDecode(text)) << text;
  // A lone character (length 1 mod 4) carries no whole byte.
  for (const char* text : {"A", "Z", "Zm9vY", "Zm9vYmFyA"}) EXPECT_FALSE(Base64UrlDecode(text)) << text;
  // Every text that decodes is the canonical encoding of its bytes.
  std::mt19937_64 rng(Seed());
  static const char kAlpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  size_t decoded = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string text(rng() % 12, 'A');
    for (auto& c : text) c = kAlpha[rng() % 64];
    auto bytes = Base64UrlDecode(text);
    if (!bytes) continue;
    ++decoded;
    EXPECT_EQ(Base64UrlEncode(*bytes), text);
  }
  EXPECT_GT(decoded, 1000u);
}

Cursor SampleCursor(bool newest_first, int64_t started_at) {
  Cursor c;
  c.newest_first = newest_first;
  c.last_started_at = started_at;
  c.last_hash = std::string(16, '\x11');
  c.query_hash = std::string(16, '\x22');
  c.mac = std::string(16, '\x33');
  return c;
}

TEST(CursorTest, RoundTrip) {
  for (bool newest : {true, false}) {
    for (int64_t t : {std::numeric_limits<int64_t>::min(), int64_t{-1}, int64_t{0},
                      int64_t{1'767'225'600'000'000}, std::numeric_limits<int64_t>::max()}) {
      const Cursor c = SampleCursor(newest, t);
      const std::string text = EncodeCursor(c);
      EXPECT_EQ(text.size(), 78u);
      auto back = DecodeCursor(text);
      ASSERT_TRUE(back.has_value());
      EXPECT_EQ(back->newest_first, newest);
      EXPECT_EQ(back->last_started_at, t);
      EXPECT_EQ(back->last_hash, c.last_hash);
      EXPECT_EQ(back->query_hash, c.query_hash);
      EXPECT_EQ(back->mac, c.mac);
      EXPECT_EQ(EncodeCursor(*back), text);
    }
  }
}

TEST(CursorTest, MacInputLayout) {
  const Cursor c = SampleCursor(true, 0x0102030405060708);
  const std::string m = CursorMacInput(c);
  ASSERT_EQ(m.size(), kCursorMacOffset);
  EXPECT_EQ(m.substr(0, 10), std::string("\x01\x01\x08\x07\x06\x05\x04\x03\x02\x01", 10));
  EXPECT_EQ(m.substr(10, 16), c.last_hash);
  EXPECT_EQ(m.substr(26, 16), c.query_hash);
  EXPECT_EQ(*Base64UrlDecode(EncodeCursor(c)), m + c.mac);
  EXPECT_EQ(CursorMacInput(SampleCursor(false, 0))[1], 0);
}

TEST(CursorTest, EveryTruncationAndExtensionRejected) {
  const std::string text = EncodeCursor(SampleCursor(true, -12345));
  for (size_t len = 0; len < text.size(); ++len) {
    EXPECT_FALSE(DecodeCursor(text.substr(0, len))) << len;
  }
  for (const char* extra : {"A", "AA", "AAA", "AAAA", "AAAAAA"}) {
    EXPECT_FALSE(DecodeCursor(text + extra)) << extra;
  }
  // The same in bytes: every other length of the raw form.
  const std::string raw = *Base64UrlDecode(text);
  for (size_t len = 0; len < 2 * kCursorBytes; ++len) {
    if (len == kCursorBytes) continue;
    std::string r = raw;
    r.resize(len, '\0');
    EXPECT_FALSE(DecodeCursor(Base64UrlEncode(r))) << len;
  }
}

TEST(CursorTest, BadVersionAndFlagsRejected) {
  const std::string raw = *Base64UrlDecode(EncodeCursor(SampleCursor(false, 7)));
  ASSERT_TRUE(DecodeCursor(Base64UrlEncode(raw)));
  for (int version : {0, 2, 0x81, 0xff}) {
    std::string r = raw;
    r[0] = static_cast<char>(version);
    EXPECT_FALSE(DecodeCursor(Base64UrlEncode(r))) << version;
  }
  for (int flags : {2, 3, 4, 0x80, 0xfe, 0xff}) {
    std::string r = raw;
    r[1] = static_cast<char>(flags);
    EXPECT_FALSE(DecodeCursor(Base64UrlEncode(r))) << flags;
  }
  EXPECT_FALSE(DecodeCursor(EncodeCursor(SampleCursor(true, 1)) + "="));
  std::string bad = EncodeCursor(SampleCursor(true, 1));
  bad[40] = '+';
  EXPECT_FALSE(DecodeCursor(bad));
}

// ---------------------------------------------------------------- summary

Summary FullSummary() {
  Summary s;
  s.started_at = -1'000'000;
  s.updated_at = std::numeric_limits<int64_t>::max();
  s.duration_ms = 0xfffffff0;
  s.direction = 3;
  s.scope = 2;
  s.owner = "OWNERxx1";
  s.workspace = std::string("\0\0\0\0\0\0\0\x01", 8);
  s.tags = {"tag00001", "tag00002", "tag00003"};
  s.participants = {"part0001"};
  s.crm = {"crm00001", "crm00002"};
  return s;
}

void ExpectSameSummary(const Summary& a, const Summary& b) {
  EXPECT_EQ(a.started_at, b.started_at);
  EXPECT_EQ(a.updated_at, b.updated_at);
  EXPECT_EQ(a.duration_ms, b.duration_ms);
  EXPECT_EQ(a.direction, b.direction);
  EXPECT_EQ(a.scope, b.scope);
  EXPECT_EQ(a.owner, b.owner);
  EXPECT_EQ(a.workspace, b.workspace);
  EXPECT_EQ(a.tags, b.tags);
  EXPECT_EQ(a.participants, b.participants);
  EXPECT_EQ(a.crm, b.crm);
}

TEST(SummaryTest, RoundTrip) {
  const Summary s = FullSummary();
  const std::string b = EncodeSummary(s);
  EXPECT_EQ(b.size(), 39 + 3 * 2 + (3 + 1 + 2) * kShortHashBytes);
  EXPECT_EQ(b[0], 1);
  auto back = DecodeSummary(b);
  ASSERT_TRUE(back.has_value());
  ExpectSameSummary(*back, s);
  EXPECT_EQ(EncodeSummary(*back), b);

  Summary empty;
  const std::string eb = EncodeSummary(empty);
  EXPECT_EQ(eb.size(), 39u + 6u);
  auto eback = DecodeSummary(eb);
  ASSERT_TRUE(eback.has_value());
  ExpectSameSummary(*eback, empty);
}

TEST(SummaryTest, ShortHashesArePaddedAndZerosMeanNone) {
  Summary s;
  s.owner = "abc";  // shorter than 8 bytes: zero-padded
  s.workspace = std::string(kShortHashBytes, '\0');
  s.tags = {"x"};
  auto back = DecodeSummary(EncodeSummary(s));
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->owner, std::string("abc\0\0\0\0\0", 8));
  EXPECT_EQ(back->workspace, "");  // eight zero bytes: none
  EXPECT_EQ(back->tags, std::vector<std::string>{std::string("x\0\0\0\0\0\0\0", 8)});
}

TEST(SummaryTest, Rejections) {
  const std::string b = EncodeSummary(FullSummary());
  ASSERT_TRUE(DecodeSummary(b));
  for (int version : {0, 2, 0xff}) {
    std::string bad = b;
    bad[0] = static_cast<char>(version);
    EXPECT_FALSE(DecodeSummary(bad)) << version;
  }
  // Every truncation: the fixed part, a list count, or a list's items.
  for (size_t len = 0; len < b.size(); ++len) EXPECT_FALSE(DecodeSummary(b.substr(0, len))) << len;
  // Trailing bytes.
  for (size_t extra = 1; extra <= 17; ++extra) {
    EXPECT_FALSE(DecodeSummary(b + std::string(extra, '\0'))) << extra;
  }
  // A list count larger than what follows.
  std::string big = EncodeSummary(Summary{});
  big[39] = '\xff';
  big[40] = '\xff';
  EXPECT_FALSE(DecodeSummary(big));
  std::string one_more = b;
  one_more[39] = 4;  // 3 tags written, 4 claimed: eats the next count
  EXPECT_FALSE(DecodeSummary(one_more));
}

// ---------------------------------------------------------------- keyring

TEST(KeyringFormatTest, HeaderRoundTrip) {
  KeyringHeader h;
  h.kek_generation = 0x01020304;
  h.keyring_generation = 0x1112131415161718;
  h.store_id = std::string("0123456789abcdef");
  const std::string b = EncodeKeyringHeader(h);
  ASSERT_EQ(b.size(), kKeyringHeaderBytes);
  EXPECT_EQ(b.substr(0, 5), std::string("CVKR\x01", 5));
  KeyringHeader back;
  ASSERT_TRUE(ParseKeyringHeader(b + "sealed body", &back));
  EXPECT_EQ(back.kek_generation, h.kek_generation);
  EXPECT_EQ(back.keyring_generation, h.keyring_generation);
  EXPECT_EQ(back.store_id, h.store_id);
  // A short store id is zero-padded.
  h.store_id = "id";
  ASSERT_TRUE(ParseKeyringHeader(EncodeKeyringHeader(h), &back));
  EXPECT_EQ(back.store_id, std::string("id") + std::string(14, '\0'));
}

TEST(KeyringFormatTest, HeaderRejects) {
  KeyringHeader h;
  h.store_id = std::string(16, 's');
  const std::string b = EncodeKeyringHeader(h);
  KeyringHeader out;
  for (size_t len = 0; len < b.size(); ++len) EXPECT_FALSE(ParseKeyringHeader(b.substr(0, len), &out)) << len;
  for (size_t i = 0; i < 4; ++i) {
    std::string bad = b;
    bad[i] = static_cast<char>(bad[i] ^ 0x20);  // "cVKR", ...
    EXPECT_FALSE(ParseKeyringHeader(bad, &out)) << i;
  }
  for (int version : {0, 2, 0xff}) {
    std::string bad = b;
    bad[4] = static_cast<char>(version);
    EXPECT_FALSE(ParseKeyringHeader(bad, &out)) << version;
  }
}

struct Entry {
  uint64_t id;
  uint32_t version;
};

std::vector<uint8_t> Body(const std::vector<Entry>& entries) {
  std::vector<uint8_t> data_key(kKeyBytes, 0xd1), index_key(kKeyBytes, 0x1d);
  std::vector<uint8_t> body(KeyringBodySize(entries.size()));
  EncodeKeyringBodyFixed(body.data(), data_key.data(), index_key.data(),
                         static_cast<uint32_t>(entries.size()));
  for (size_t i = 0; i < entries.size(); ++i) {
    std::vector<uint8_t> dek(kKeyBytes, static_cast<uint8_t>(i + 1));
    EncodeKeyringEntry(body.data(), i, entries[i].id, entries[i].version, dek.data());
  }
  return body;
}

std::string ParseBody(const std::vector<uint8_t>& body, KeyringBodyView* view = nullptr) {
  KeyringBodyView local;
  return ParseKeyringBody(body.data(), body.size(), view ? view : &local);
}

TEST(KeyringFormatTest, BodyRoundTrip) {
  const std::vector<Entry> entries = {{1, 1}, {1, 2}, {2, 1}, {0xffffffffffffffff, 0xffffffff}};
  const std::vector<uint8_t> body = Body(entries);
  EXPECT_EQ(body.size(), 69u + 4u * 44u);
  KeyringBodyView v;
  ASSERT_EQ(ParseBody(body, &v), "");
  EXPECT_EQ(v.store_data_key, body.data() + 1);
  EXPECT_EQ(v.store_data_key[0], 0xd1);
  EXPECT_EQ(v.store_index_key, body.data() + 33);
  EXPECT_EQ(v.store_index_key[31], 0x1d);
  ASSERT_EQ(v.entries.size(), entries.size());
  for (size_t i = 0; i < entries.size(); ++i) {
    EXPECT_EQ(v.entries[i].internal_id, entries[i].id);
    EXPECT_EQ(v.entries[i].key_version, entries[i].version);
    EXPECT_EQ(v.entries[i].key, body.data() + 69 + i * 44 + 12);
    EXPECT_EQ(v.entries[i].key[0], i + 1);
    EXPECT_EQ(v.entries[i].key[31], i + 1);
  }
  EXPECT_EQ(ParseBody(Body({})), "");
  // Entries are little-endian.
  EXPECT_EQ(body[69], 1);
  EXPECT_EQ(body[69 + 8], 1);
}

TEST(KeyringFormatTest, BodyRejectsBadSizesAndVersion) {
  const std::vector<uint8_t> body = Body({{1, 1}, {2, 1}});
  for (size_t len = 0; len < kKeyringBodyFixedBytes; ++len) {
    KeyringBodyView v;
    EXPECT_EQ(ParseKeyringBody(body.data(), len, &v), "keyring body too short") << len;
  }
  // Any size other than the one the count gives.
  for (size_t len = kKeyringBodyFixedBytes; len < body.size() + 50; ++len) {
    if (len == body.size()) continue;
    std::vector<uint8_t> b = body;
    b.resize(len, 0);
    EXPECT_EQ(ParseBody(b), "keyring body size does not match its entry count") << len;
  }
  for (int version : {0, 2, 0xff}) {
    std::vector<uint8_t> b = body;
    b[0] = static_cast<uint8_t>(version);
    EXPECT_EQ(ParseBody(b), "unknown keyring body version") << version;
  }
}

TEST(KeyringFormatTest, BodyRejectsCountOverLimit) {
  for (uint32_t n : {kMaxKeyringEntries + 1, 0x80000000u, 0xffffffffu}) {
    std::vector<uint8_t> b = Body({});
    for (int i = 0; i < 4; ++i) b[65 + i] = static_cast<uint8_t>(n >> (8 * i));
    EXPECT_EQ(ParseBody(b), "keyring entry count over limit") << n;
  }
  // Exactly at the limit parses (46 MB of entries).
  std::vector<uint8_t> big(KeyringBodySize(kMaxKeyringEntries));
  std::vector<uint8_t> key(kKeyBytes, 7);
  EncodeKeyringBodyFixed(big.data(), key.data(), key.data(), kMaxKeyringEntries);
  for (uint32_t i = 0; i < kMaxKeyringEntries; ++i) EncodeKeyringEntry(big.data(), i, i, 1, key.data());
  KeyringBodyView v;
  EXPECT_EQ(ParseBody(big, &v), "");
  EXPECT_EQ(v.entries.size(), kMaxKeyringEntries);
}

TEST(KeyringFormatTest, BodyRejectsUnsortedAndDuplicateEntries) {
  const std::string kOrder = "keyring entries out of order or duplicated";
  EXPECT_EQ(ParseBody(Body({{1, 1}, {1, 2}, {3, 1}})), "");
  EXPECT_EQ(ParseBody(Body({{2, 1}, {1, 1}})), kOrder);                  // ids descending
  EXPECT_EQ(ParseBody(Body({{1, 1}, {1, 1}})), kOrder);                  // duplicate
  EXPECT_EQ(ParseBody(Body({{1, 2}, {1, 1}})), kOrder);                  // versions descending
  EXPECT_EQ(ParseBody(Body({{1, 1}, {5, 1}, {5, 1}, {9, 1}})), kOrder);  // duplicate in the middle
  EXPECT_EQ(ParseBody(Body({{1, 1}, {2, 1}, {3, 1}, {0, 9}})), kOrder);  // last out of order
  // Order is numeric, not by bytes: 256 (00 01 ...) after 1 (01 00 ...).
  EXPECT_EQ(ParseBody(Body({{1, 1}, {256, 1}})), "");
  EXPECT_EQ(ParseBody(Body({{1, 1}, {1, 256}})), "");
}

// ---------------------------------------------------------------- FlatBuffers

Call FullCall() {
  Call c = testutil::MakeCall("call-0001", 1'767'225'600'000'000, "m");
  c.source_system = SourceSystem::kUpload;
  c.source_call_id = "src-1";
  c.workspace_id = "ws-1";
  c.duration_ms = 60'000;
  c.title = "Quarterly review";
  c.direction = Direction::kConference;
  c.scope = CallScope::kExternal;
  c.media = Media::kVideo;
  c.language = "en-US";
  c.status = "completed";
  c.tags = {"a", "b"};
  c.owner_user_id = "u-1";
  c.team_ids = {"t-1"};
  c.participants = {
      Participant{"Ann", "ann@example.com", "+14155550100", "CEO", "Example", Affiliation::kExternal,
                  1, ""},
      Participant{"Bob", "bob@brightwave.com", "", "AE", "Brightwave", Affiliation::kInternal, 2,
                  "u-1"}};
  c.crm_links = {CrmLink{"salesforce", CrmObjectType::kLead, "00Q1"},
                 CrmLink{"hubspot", CrmObjectType::kAccount, "42"}};
  c.transcript = {TranscriptSegment{1, 0, 1500, "hello there", 0.9f},
                  TranscriptSegment{2, 1500, 4000, "hi", 0.75f}};
  c.insights.summary = "They talked.";
  c.insights.action_items = {ActionItem{"send deck", "u-1"}};
  c.insights.topics = {"pricing"};
  c.insights.trackers = {Tracker{"competitor:acme", 2}};
  c.insights.model_name = "m";
  c.insights.model_version = "1";
  return c;
}

std::string RecordingManifestBytes() {
  flatbuffers::FlatBufferBuilder b;
  std::vector<uint8_t> sha(32, 0xab), header(24, 0xcd);
  b.Finish(fb::CreateRecordingManifest(b, b.CreateString("rec-1"), b.CreateString("audio/ogg"),
                                       1000, 123456, 65536, 2, b.CreateVector(sha), 77,
                                       b.CreateVector(header)));
  return std::string(reinterpret_cast<const char*>(b.GetBufferPointer()), b.GetSize());
}

struct Kind {
  const char* name;
  bool (*verify)(const uint8_t*, size_t);
  std::string valid;
};

std::vector<Kind> AllKinds() {
  const Call c = FullCall();
  codec::TenantRecord t;
  t.tenant_id = "acme";
  t.state = TenantState::kActive;
  t.region = "eu-west-1";
  t.internal_id = 9;
  t.holds = {Hold{"h-1", "litigation", "", 5}};
  t.workspace_retention = {{"ws-1", 30}};
  Receipt r;
  r.sequence = 3;
  r.kind = "tenant_purge";
  r.tenant_id = "acme";
  r.key_versions_destroyed = {1, 2};
  r.signature = "sig";
  AuditEvent a{4, 5, "tenant_purged", "acme", "detail", "prev"};
  return {
      {"CallMeta", VerifyCallMeta, codec::EncodeMeta(c, 6)},
      {"Transcript", VerifyTranscript, codec::EncodeTranscript(c)},
      {"Insights", VerifyInsights, codec::EncodeInsights(c)},
      {"TenantRecord", VerifyTenantRecord, codec::EncodeTenant(t)},
      {"ReceiptRecord", VerifyReceiptRecord, codec::EncodeReceipt(r)},
      {"RecordingManifest", VerifyRecordingManifest, RecordingManifestBytes()},
      {"AuditRecord", VerifyAuditRecord, codec::EncodeAudit(a)},
      {"Hold", VerifyHold, codec::EncodeHold(Hold{"h-2", "why", "call-1", 6})},
  };
}

// An exact-size heap copy, so that a sanitizer build sees any read past it.
bool VerifyCopy(const Kind& k, std::string_view bytes) {
  std::unique_ptr<uint8_t[]> copy(new uint8_t[bytes.size() + 1]);
  std::memcpy(copy.get(), bytes.data(), bytes.size());
  return k.verify(copy.get(), bytes.size());
}

TEST(VerifyTest, ValidBuffersVerify) {
  for (const auto& k : AllKinds()) {
    EXPECT_TRUE(k.verify(reinterpret_cast<const uint8_t*>(k.valid.data()), k.valid.size()))
        << k.name;
    EXPECT_FALSE(k.verify(nullptr, 0)) << k.name;
    EXPECT_FALSE(k.verify(nullptr, k.valid.size())) << k.name;
  }
}

TEST(VerifyTest, RandomBytesRejected) {
  const uint64_t seed = Seed();
  std::mt19937_64 rng(seed);
  size_t tried = 0;
  for (const auto& k : AllKinds()) {
    for (int i = 0; i < 3000; ++i, ++tried) {
      std::string bytes = RandomBytes(rng, rng() % 600);
      // Half of them with a plausible root offset, to get past the first check.
      if (i % 2 == 0 && bytes.size() >= 8) {
        uint32_t off = static_cast<uint32_t>(4 + 4 * (rng() % (bytes.size() / 4)));
        std::memcpy(bytes.data(), &off, 4);
      }
      EXPECT_FALSE(VerifyCopy(k, bytes)) << k.name << " " << i;
    }
  }
  std::cout << "[verify] " << tried << " random buffers rejected" << std::endl;
}

TEST(VerifyTest, TruncationsOfValidBuffersRejected) {
  // FlatBuffers builds back to front: the last bytes of a buffer are the
  // first object written, possibly followed by alignment padding that no
  // offset reaches. Cutting only padding keeps a valid buffer; cutting
  // anything else must be rejected.
  for (const auto& k : AllKinds()) {
    size_t accepted = 0;
    for (size_t len = 0; len < k.valid.size(); ++len) {
      if (!VerifyCopy(k, std::string_view(k.valid).substr(0, len))) continue;
      ++accepted;
      const std::string cut = k.valid.substr(len);
      EXPECT_EQ(cut.find_first_not_of('\0'), std::string::npos)
          << k.name << ": truncation to " << len << " of " << k.valid.size()
          << " verifies but cuts non-padding bytes";
      EXPECT_LT(k.valid.size() - len, 8u) << k.name;
    }
    EXPECT_LT(accepted, 8u) << k.name;
    std::cout << "[truncations] " << k.name << ": " << k.valid.size() - accepted << " of "
              << k.valid.size() << " rejected (the rest cut only trailing padding)" << std::endl;
  }
}

TEST(VerifyTest, SizeLimit) {
  // A valid buffer followed by zeros: verifies up to the limit, not past it.
  const std::string meta = codec::EncodeMeta(FullCall(), 0);
  std::vector<uint8_t> big(kMaxFlatBufferBytes + 8, 0);
  std::memcpy(big.data(), meta.data(), meta.size());
  EXPECT_TRUE(VerifyCallMeta(big.data(), kMaxFlatBufferBytes));
  EXPECT_FALSE(VerifyCallMeta(big.data(), kMaxFlatBufferBytes + 1));
  EXPECT_FALSE(VerifyCallMeta(big.data(), kMaxFlatBufferBytes + 8));
  for (size_t n = 0; n < 8; ++n) EXPECT_FALSE(VerifyCallMeta(big.data(), n)) << n;
}

// ---------------------------------------------------------------- codec decoders

std::string Bytes(flatbuffers::FlatBufferBuilder& b) {
  return std::string(reinterpret_cast<const char*>(b.GetBufferPointer()), b.GetSize());
}

// A CallMeta with one field set by the generated builder API.
template <typename Fn>
std::string MetaWith(Fn set) {
  flatbuffers::FlatBufferBuilder b;
  auto id = b.CreateString("call-1");
  fb::CallMetaBuilder m(b);
  m.add_call_id(id);
  m.add_started_at(1);
  set(m);
  b.Finish(m.Finish());
  return Bytes(b);
}

TEST(CodecTest, RoundTrip) {
  const Call c = FullCall();
  Call back;
  uint32_t parts = 0;
  ASSERT_OK(codec::DecodeMeta(codec::EncodeMeta(c, 6), &back, &parts));
  EXPECT_EQ(parts, 6u);
  ASSERT_OK(codec::DecodeTranscript(codec::EncodeTranscript(c), &back));
  ASSERT_OK(codec::DecodeInsights(codec::EncodeInsights(c), &back));
  EXPECT_EQ(back, c);
  // Misaligned input is decoded from an aligned copy.
  const std::string meta = " " + codec::EncodeMeta(c, 6);
  Call back2;
  ASSERT_OK(codec::DecodeMeta(std::string_view(meta).substr(1), &back2, &parts));
  EXPECT_EQ(back2.participants, c.participants);
}

TEST(CodecTest, CallMetaOutOfRangeEnumsRejected) {
  Call call;
  uint32_t parts = 0;
  // In range: the largest value of each enum.
  ASSERT_OK(codec::DecodeMeta(MetaWith([](fb::CallMetaBuilder& m) {
                                m.add_direction(3);
                                m.add_source_system(6);
                                m.add_scope(2);
                                m.add_media(1);
                              }),
                              &call, &parts));
  EXPECT_EQ(call.direction, Direction::kConference);
  EXPECT_EQ(call.source_system, SourceSystem::kUpload);
  EXPECT_EQ(call.scope, CallScope::kExternal);
  EXPECT_EQ(call.media, Media::kVideo);

  EXPECT_CODE(codec::DecodeMeta(MetaWith([](fb::CallMetaBuilder& m) { m.add_direction(200); }),
                                &call, &parts),
              Code::kCorruption);
  EXPECT_CODE(codec::DecodeMeta(MetaWith([](fb::CallMetaBuilder& m) { m.add_direction(4); }),
                                &call, &parts),
              Code::kCorruption);
  EXPECT_CODE(codec::DecodeMeta(MetaWith([](fb::CallMetaBuilder& m) { m.add_source_system(7); }),
                                &call, &parts),
              Code::kCorruption);
  EXPECT_CODE(codec::DecodeMeta(MetaWith([](fb::CallMetaBuilder& m) { m.add_scope(3); }), &call,
                                &parts),
              Code::kCorruption);
  EXPECT_CODE(codec::DecodeMeta(MetaWith([](fb::CallMetaBuilder& m) { m.add_media(2); }), &call,
                                &parts),
              Code::kCorruption);
  EXPECT_CODE(codec::DecodeMeta(MetaWith([](fb::CallMetaBuilder& m) { m.add_media(255); }), &call,
                                &parts),
              Code::kCorruption);
}

TEST(CodecTest, NestedOutOfRangeEnumsRejected) {
  Call call;
  uint32_t parts = 0;
  for (uint8_t affiliation : {uint8_t{2}, uint8_t{3}, uint8_t{255}}) {
    flatbuffers::FlatBufferBuilder b;
    auto p = fb::CreateParticipant(b, b.CreateString("Ann"), 0, 0, 0, 0, affiliation, 1);
    auto ps = b.CreateVector(std::vector<flatbuffers::Offset<fb::Participant>>{p});
    fb::CallMetaBuilder m(b);
    m.add_participants(ps);
    b.Finish(m.Finish());
    Status s = codec::DecodeMeta(Bytes(b), &call, &parts);
    if (affiliation <= 2) {
      EXPECT_OK(s);
    } else {
      EXPECT_EQ(s.code(), Code::kCorruption) << static_cast<int>(affiliation);
    }
  }
  for (uint8_t type : {uint8_t{3}, uint8_t{4}, uint8_t{200}}) {
    flatbuffers::FlatBufferBuilder b;
    auto l = fb::CreateCrmLink(b, b.CreateString("salesforce"), type, b.CreateString("1"));
    auto ls = b.CreateVector(std::vector<flatbuffers::Offset<fb::CrmLink>>{l});
    fb::CallMetaBuilder m(b);
    m.add_crm_links(ls);
    b.Finish(m.Finish());
    Status s = codec::DecodeMeta(Bytes(b), &call, &parts);
    if (type <= 3) {
      EXPECT_OK(s);
    } else {
      EXPECT_EQ(s.code(), Code::kCorruption) << static_cast<int>(type);
    }
  }
}

TEST(CodecTest, TenantStateOutOfRangeRejected) {
  for (int state = 0; state < 256; ++state) {
    flatbuffers::FlatBufferBuilder b;
    fb::TenantRecordBuilder t(b);
    t.add_state(static_cast<uint8_t>(state));
    b.Finish(t.Finish());
    codec::TenantRecord out;
    Status s = codec::DecodeTenant(Bytes(b), &out);
    if (state <= static_cast<int>(TenantState::kPurged)) {
      EXPECT_OK(s);
      EXPECT_EQ(static_cast<int>(out.state), state);
    } else {
      EXPECT_EQ(s.code(), Code::kCorruption) << state;
    }
  }
}

// Registry fields of a key rotation (decision 0036): round trip, and a
// rotation state out of range is refused.
TEST(CodecTest, TenantRotationFields) {
  codec::TenantRecord t;
  t.tenant_id = "acme";
  t.state = TenantState::kActive;
  t.internal_id = 7;
  t.family = 2;
  t.rotation_state = codec::kRotationShredding;
  t.rotation_family = 1;
  t.rotation_cf_generation = 12;
  t.rotation_key_version = 2;
  codec::TenantRecord out;
  ASSERT_OK(codec::DecodeTenant(codec::EncodeTenant(t), &out));
  EXPECT_EQ(out.family, 2u);
  EXPECT_EQ(out.rotation_state, codec::kRotationShredding);
  EXPECT_EQ(out.rotation_family, 1u);
  EXPECT_EQ(out.rotation_cf_generation, 12u);
  EXPECT_EQ(out.rotation_key_version, 2u);
  for (int state = 0; state < 256; ++state) {
    flatbuffers::FlatBufferBuilder b;
    fb::TenantRecordBuilder r(b);
    r.add_rotation_state(static_cast<uint8_t>(state));
    b.Finish(r.Finish());
    Status s = codec::DecodeTenant(Bytes(b), &out);
    if (state <= codec::kRotationShredding) {
      EXPECT_OK(s);
      EXPECT_EQ(out.rotation_state, state);
    } else {
      EXPECT_EQ(s.code(), Code::kCorruption) << state;
    }
  }
}

// The shard of a rotation's other family (decision 0057): round trip; a
// record without the field (written before it, or by a rotation within the
// shard) names the tenant's own shard, and such a record encodes without
// the field, so its bytes are what they were.
TEST(CodecTest, TenantRotationShard) {
  codec::TenantRecord t;
  t.tenant_id = "acme";
  t.state = TenantState::kActive;
  t.internal_id = 7;
  t.shard = 3;
  t.rotation_state = codec::kRotationCopying;
  t.rotation_family = 1;
  t.rotation_key_version = 2;
  codec::TenantRecord out;
  ASSERT_OK(codec::DecodeTenant(codec::EncodeTenant(t), &out));
  EXPECT_EQ(out.rotation_shard, codec::kSameShard);
  EXPECT_EQ(codec::RotationShard(out), 3u);
  const std::string same = codec::EncodeTenant(t);
  t.rotation_shard = 0;  // shard 0 is a shard like any: stored, not the default
  const std::string other = codec::EncodeTenant(t);
  EXPECT_GT(other.size(), same.size());
  ASSERT_OK(codec::DecodeTenant(other, &out));
  EXPECT_EQ(out.rotation_shard, 0u);
  EXPECT_EQ(codec::RotationShard(out), 0u);
  // A record built without the field at all (an older build's) reads as the
  // tenant's own shard.
  flatbuffers::FlatBufferBuilder b;
  fb::TenantRecordBuilder r(b);
  r.add_shard(5);
  r.add_rotation_state(codec::kRotationCopying);
  b.Finish(r.Finish());
  ASSERT_OK(codec::DecodeTenant(Bytes(b), &out));
  EXPECT_EQ(codec::RotationShard(out), 5u);
}

TEST(CodecTest, DecodersRejectRandomAndTruncatedBytes) {
  std::mt19937_64 rng(Seed());
  const Call c = FullCall();
  const std::string meta = codec::EncodeMeta(c, 6);
  Call call;
  uint32_t parts;
  codec::TenantRecord t;
  Receipt r;
  Hold h;
  AuditEvent a;
  for (int i = 0; i < 2000; ++i) {
    const std::string bytes = RandomBytes(rng, rng() % 300);
    EXPECT_CODE(codec::DecodeMeta(bytes, &call, &parts), Code::kCorruption);
    EXPECT_CODE(codec::DecodeTranscript(bytes, &call), Code::kCorruption);
    EXPECT_CODE(codec::DecodeInsights(bytes, &call), Code::kCorruption);
    EXPECT_CODE(codec::DecodeTenant(bytes, &t), Code::kCorruption);
    EXPECT_CODE(codec::DecodeReceipt(bytes, &r), Code::kCorruption);
    EXPECT_CODE(codec::DecodeHold(bytes, &h), Code::kCorruption);
    EXPECT_CODE(codec::DecodeAudit(bytes, &a), Code::kCorruption);
  }
  for (size_t len = 0; len + 8 <= meta.size(); ++len) {
    EXPECT_CODE(codec::DecodeMeta(meta.substr(0, len), &call, &parts), Code::kCorruption);
  }
}

}  // namespace
}  // namespace callvault::format
