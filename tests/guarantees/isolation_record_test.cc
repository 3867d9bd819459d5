// Guarantee 2 and testing.md T5/T8 at the level of one record:
// record::Open of a record::Seal output fails (kCorruption, output
// untouched) under any other binding (tenant internal id, column-family
// generation, key version, row key, key), after every single-bit flip,
// every truncation and extension, and with another record's nonce; and
// 10^6 nonces drawn by record::Seal are all distinct.
#include <algorithm>
#include <array>
#include <chrono>
#include <iostream>
#include <random>

#include "engine/crypto.h"
#include "engine/record.h"
#include "format/envelope.h"
#include "format/rowkey.h"
#include "tests/guarantees/guarantee_util.h"
#include "tests/testutil/testutil.h"

namespace callvault {
namespace {

using format::Part;

constexpr size_t kNonceOffset = format::kEnvelopeHeaderBytes;

std::string FlipBit(std::string v, size_t bit) {
  v[bit / 8] = static_cast<char>(v[bit / 8] ^ (1 << (bit % 8)));
  return v;
}

class RecordTest : public ::testing::Test {
 protected:
  void SetUp() override {
    rng_.seed(guarantees::TestSeed());
    crypto::Init();
  }
  std::string Bytes(size_t n) {
    std::string s(n, '\0');
    for (auto& c : s) c = static_cast<char>(rng_());
    return s;
  }
  // Opens `sealed`; the output must be untouched unless it opened.
  static Status OpenChecked(const SecretBytes& key, const record::Binding& b, std::string_view row,
                            std::string_view sealed) {
    std::string out = "untouched";
    Status s = record::Open(key, b, row, sealed, &out);
    if (!s.ok()) {
      EXPECT_EQ(out, "untouched") << "plaintext written on failure";
    }
    return s;
  }
  std::mt19937_64 rng_;
};

TEST_F(RecordTest, WrongBindingFieldsFail) {
  SecretBytes key = crypto::RandomKey(), other = crypto::RandomKey();
  const record::Binding b{42, 42, 1};
  const std::string row = format::CallKey(std::string(16, 'h'), Part::kMeta);
  for (size_t n : {size_t{0}, size_t{40}, size_t{500}}) {
    SCOPED_TRACE(n);
    const std::string plain = n == 500 ? std::string(500, 'z') : Bytes(n);  // 500: compressed
    const std::string sealed = record::Seal(key, b, row, plain);
    std::string out;
    ASSERT_OK(record::Open(key, b, row, sealed, &out));
    EXPECT_EQ(out, plain);
    auto fails = [&](const SecretBytes& k, record::Binding bb, const std::string& r) {
      Status s = OpenChecked(k, bb, r, sealed);
      EXPECT_EQ(s.code(), Code::kCorruption) << s.ToString();
    };
    fails(key, {43, 42, 1}, row);  // another tenant
    fails(key, {41, 42, 1}, row);
    fails(key, {42, 43, 1}, row);  // another column-family generation
    fails(key, {42, 41, 1}, row);
    fails(key, {42, 42, 2}, row);  // another key version
    fails(key, {42, 42, 0}, row);
    fails(key, {0, 0, 0}, row);  // a store-level binding
    fails(key, {42, 42, 1}, format::CallKey(std::string(16, 'h'), Part::kTranscript));
    fails(key, {42, 42, 1}, format::CallKey(std::string(16, 'i'), Part::kMeta));
    fails(key, {42, 42, 1}, row.substr(0, row.size() - 1));
    fails(key, {42, 42, 1}, row + "x");
    fails(key, {42, 42, 1}, "");
    fails(other, b, row);  // another key
    // A record sealed under key version 2 with another key does not open
    // as version 1 or 2 under the first key.
    const std::string v2 = record::Seal(other, {42, 42, 2}, row, plain);
    EXPECT_EQ(OpenChecked(key, {42, 42, 2}, row, v2).code(), Code::kCorruption);
    EXPECT_EQ(OpenChecked(key, b, row, v2).code(), Code::kCorruption);
  }
  // Internal id and generation are not interchangeable.
  const std::string s = record::Seal(key, {1, 2, 1}, "k", "plain");
  EXPECT_EQ(OpenChecked(key, {2, 1, 1}, "k", s).code(), Code::kCorruption);
}

TEST_F(RecordTest, EveryBitFlipTruncationAndExtensionFails) {
  SecretBytes key = crypto::RandomKey();
  const record::Binding b{7, 7, 1};
  const std::string row = format::CallKey(std::string(16, 'r'), Part::kMeta);
  size_t mutations = 0;
  for (size_t n :
       {size_t{0}, size_t{1}, size_t{40}, size_t{127}, size_t{128}, size_t{900}, size_t{1000}}) {
    SCOPED_TRACE(n);
    // Compressible text for 128 and 900 (the zstd path), random otherwise.
    const std::string plain = n == 128 || n == 900 ? std::string(n, 'a') + Bytes(8) : Bytes(n);
    const std::string sealed = record::Seal(key, b, row, plain);
    for (size_t bit = 0; bit < sealed.size() * 8; ++bit, ++mutations) {
      Status s = OpenChecked(key, b, row, FlipBit(sealed, bit));
      ASSERT_EQ(s.code(), Code::kCorruption) << "bit " << bit << ": " << s.ToString();
    }
    for (size_t len = 0; len < sealed.size(); ++len, ++mutations) {
      ASSERT_EQ(OpenChecked(key, b, row, sealed.substr(0, len)).code(), Code::kCorruption) << len;
    }
    for (int extra = 1; extra <= 32; ++extra, ++mutations) {
      ASSERT_EQ(OpenChecked(key, b, row, sealed + Bytes(static_cast<size_t>(extra))).code(),
                Code::kCorruption);
    }
    // The nonce of another record of the same plaintext.
    std::string other = record::Seal(key, b, row, plain);
    other.replace(kNonceOffset, format::kNonceBytes,
                  sealed.substr(kNonceOffset, format::kNonceBytes));
    EXPECT_EQ(OpenChecked(key, b, row, other).code(), Code::kCorruption);
    ++mutations;
  }
  std::cout << "[record] " << mutations << " mutations rejected" << std::endl;
  EXPECT_GE(mutations, 10000u);
}

TEST_F(RecordTest, MillionNoncesAreUnique) {
  constexpr size_t kSeals = 1'000'000;
  SecretBytes key = crypto::RandomKey();
  const record::Binding b{1, 1, 1};
  std::vector<std::array<char, format::kNonceBytes>> nonces(kSeals);
  auto start = std::chrono::steady_clock::now();
  for (size_t i = 0; i < kSeals; ++i) {
    const std::string sealed = record::Seal(key, b, "T", "");
    ASSERT_EQ(sealed.size(), format::kEnvelopeOverhead);
    std::copy_n(sealed.data() + kNonceOffset, format::kNonceBytes, nonces[i].data());
  }
  std::sort(nonces.begin(), nonces.end());
  const bool unique = std::adjacent_find(nonces.begin(), nonces.end()) == nonces.end();
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cout << "[nonces] " << kSeals << " nonces from record::Seal, unique: " << unique << ", "
            << secs << " s" << std::endl;
  EXPECT_TRUE(unique);
}

}  // namespace
}  // namespace callvault
