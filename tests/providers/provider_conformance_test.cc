// The KeyProvider conformance suite: what every provider must do, run on
// each provider the project ships (the file provider, the PKCS#11 provider
// on a real SoftHSM2 token) and on a soft-delete provider shaped like a KMS
// with a deletion window. A new provider adds one factory to kProviders.
//
// Create, list, seal/open round trip; a wrong generation, wrong AAD,
// tampered or truncated ciphertext -> kKeyError; destroy -> Open fails
// forever (also after a reopen, and after the generation is created again);
// persistence across reopen; no key change without the writer lock;
// concurrent Seal/Open from threads; receipts' signing key; and
// IrrecoverableAfter reported.
#include <gtest/gtest.h>
#include <sodium.h>

#include <atomic>
#include <cstring>
#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "callvault/key_provider.h"
#include "callvault/pkcs11_key_provider.h"
#include "tests/providers/softhsm.h"
#include "tests/testutil/testutil.h"

namespace callvault {
namespace {

using testutil::TempDir;

int64_t NowMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// A KMS-shaped provider for the suite: the file provider's keys, with
// destruction scheduled `window` after DestroyKek, as Azure Key Vault (soft
// delete, 7-90 days) and AWS KMS (ScheduleKeyDeletion, 7-30 days) do. The
// key is unusable through the interface at once (Open fails) and reported
// irrecoverable only when the window ends. docs/kms-providers.md.
class SoftDeleteProvider final : public KeyProvider {
 public:
  SoftDeleteProvider(std::shared_ptr<KeyProvider> in, int64_t window) : in_(std::move(in)), window_(window) {}
  std::string Describe() const override { return "soft-delete:" + in_->Describe(); }
  std::string LocalDirectory() const override { return in_->LocalDirectory(); }
  Status AcquireWriterLock() override { return in_->AcquireWriterLock(); }
  void ReleaseWriterLock() override { in_->ReleaseWriterLock(); }
  Result<std::vector<uint32_t>> ListKeks() override { return in_->ListKeks(); }
  Status CreateKek(uint32_t g) override { return in_->CreateKek(g); }
  Status DestroyKek(uint32_t g) override {
    CV_RETURN_IF_ERROR(in_->DestroyKek(g));
    std::lock_guard<std::mutex> l(mu_);
    scheduled_.emplace(g, NowMicros() + window_);
    return Status::OK();
  }
  Result<int64_t> IrrecoverableAfter(uint32_t g, int64_t destroyed_at) override {
    std::lock_guard<std::mutex> l(mu_);
    auto it = scheduled_.find(g);
    return std::max(destroyed_at + window_, it == scheduled_.end() ? 0 : it->second);
  }
  Result<std::string> Seal(uint32_t g, const SecretBytes& p, std::string_view a) override {
    return in_->Seal(g, p, a);
  }
  Result<SecretBytes> Open(uint32_t g, std::string_view s, std::string_view a) override {
    return in_->Open(g, s, a);
  }
  Result<std::vector<uint64_t>> ListKeyrings() override { return in_->ListKeyrings(); }
  Result<std::string> ReadKeyring(uint64_t g) override { return in_->ReadKeyring(g); }
  Status WriteKeyring(uint64_t g, std::string_view b) override { return in_->WriteKeyring(g, b); }
  Status RemoveKeyring(uint64_t g) override { return in_->RemoveKeyring(g); }
  Result<std::string> SigningPublicKey() override { return in_->SigningPublicKey(); }
  Result<std::string> ExistingSigningPublicKey() override { return in_->ExistingSigningPublicKey(); }
  Result<std::string> Sign(std::string_view m) override { return in_->Sign(m); }

 private:
  std::shared_ptr<KeyProvider> in_;
  const int64_t window_;
  std::mutex mu_;
  std::map<uint32_t, int64_t> scheduled_;
};

constexpr int64_t kWindow = 7LL * 24 * 3600 * 1000000;  // Key Vault's shortest soft delete

// One provider under test: its backing store lives in the fixture's temp
// directory, and Make() returns a new provider object on it (a reopen).
struct Backing {
  virtual ~Backing() = default;
  virtual Result<std::shared_ptr<KeyProvider>> Make() = 0;
  virtual int64_t window() const { return 0; }
};

struct FileBacking : Backing {
  explicit FileBacking(const TempDir& t) : dir(t.Sub("keys")) {}
  Result<std::shared_ptr<KeyProvider>> Make() override { return NewFileKeyProvider(dir); }
  std::string dir;
};

struct Pkcs11Backing : Backing {
  explicit Pkcs11Backing(const TempDir& t) : token(t.path()), state(t.Sub("state")) {}
  Result<std::shared_ptr<KeyProvider>> Make() override {
    if (!token.ok()) return Status::Internal("softhsm2-util --init-token failed");
    return NewPkcs11KeyProvider(token.Options(state));
  }
  testutil::SoftHsmToken token;
  std::string state;
};

struct SoftDeleteBacking : Backing {
  explicit SoftDeleteBacking(const TempDir& t) : dir(t.Sub("keys")) {}
  Result<std::shared_ptr<KeyProvider>> Make() override {
    CV_ASSIGN_OR_RETURN(auto in, NewFileKeyProvider(dir));
    return std::shared_ptr<KeyProvider>(std::make_shared<SoftDeleteProvider>(in, kWindow));
  }
  int64_t window() const override { return kWindow; }
  std::string dir;
};

struct Factory {
  const char* name;
  std::function<std::unique_ptr<Backing>(const TempDir&)> make;
};

const Factory kProviders[] = {
    {"file", [](const TempDir& t) { return std::make_unique<FileBacking>(t); }},
    {"pkcs11_softhsm2", [](const TempDir& t) { return std::make_unique<Pkcs11Backing>(t); }},
    {"kms_soft_delete", [](const TempDir& t) { return std::make_unique<SoftDeleteBacking>(t); }},
};

SecretBytes Bytes(std::string_view s) {
  SecretBytes b(s.size());
  std::memcpy(b.data(), s.data(), s.size());
  return b;
}
std::string Str(const SecretBytes& b) { return std::string(reinterpret_cast<const char*>(b.data()), b.size()); }

void PrintTo(const Factory& f, std::ostream* os) { *os << f.name; }

class ProviderConformance : public ::testing::TestWithParam<Factory> {
 protected:
  void SetUp() override {
    ASSERT_EQ(sodium_init() >= 0, true);
    backing = GetParam().make(tmp);
    auto p = backing->Make();
    ASSERT_OK(p);
    kp = *p;
    ASSERT_OK(kp->AcquireWriterLock());
  }
  void TearDown() override {
    if (kp) kp->ReleaseWriterLock();
    kp.reset();
    backing.reset();
  }
  // Drops this provider object and makes a new one on the same backing.
  void Reopen(bool writer = true) {
    kp->ReleaseWriterLock();
    kp.reset();
    auto p = backing->Make();
    ASSERT_OK(p);
    kp = *p;
    if (writer) ASSERT_OK(kp->AcquireWriterLock());
  }

  TempDir tmp;
  std::unique_ptr<Backing> backing;
  std::shared_ptr<KeyProvider> kp;
};

TEST_P(ProviderConformance, CreateListSealOpen) {
  auto none = kp->ListKeks();
  ASSERT_OK(none);
  EXPECT_TRUE(none->empty());
  ASSERT_OK(kp->CreateKek(1));
  ASSERT_OK(kp->CreateKek(2));
  EXPECT_CODE(kp->CreateKek(1), Code::kAlreadyExists);
  auto gens = kp->ListKeks();
  ASSERT_OK(gens);
  EXPECT_EQ(*gens, (std::vector<uint32_t>{1, 2}));
  const SecretBytes pt = Bytes("the keyring: tenant DEKs");
  auto a = kp->Seal(1, pt, "aad-1");
  auto b = kp->Seal(1, pt, "aad-1");
  ASSERT_OK(a);
  ASSERT_OK(b);
  EXPECT_NE(*a, *b) << "two seals of one plaintext must differ (fresh nonce or IV)";
  EXPECT_EQ(a->find("the keyring"), std::string::npos) << "plaintext in the sealed bytes";
  auto back = kp->Open(1, *a, "aad-1");
  ASSERT_OK(back);
  EXPECT_EQ(Str(*back), Str(pt));
  auto empty = kp->Seal(2, SecretBytes(), "x");
  ASSERT_OK(empty);
  auto empty_back = kp->Open(2, *empty, "x");
  ASSERT_OK(empty_back);
  EXPECT_EQ(empty_back->size(), 0u);
}

TEST_P(ProviderConformance, WrongGenerationAadAndTamperingAreKeyErrors) {
  ASSERT_OK(kp->CreateKek(1));
  ASSERT_OK(kp->CreateKek(2));
  auto sealed = kp->Seal(1, Bytes("0123456789abcdef0123456789abcdef"), "aad");
  ASSERT_OK(sealed);
  EXPECT_CODE(kp->Open(2, *sealed, "aad"), Code::kKeyError);
  EXPECT_CODE(kp->Open(3, *sealed, "aad"), Code::kKeyError);  // no such generation
  EXPECT_CODE(kp->Open(1, *sealed, "aaX"), Code::kKeyError);
  EXPECT_CODE(kp->Open(1, "", "aad"), Code::kKeyError);
  int mutations = 0;
  for (size_t i = 0; i < sealed->size(); ++i) {
    std::string t = *sealed;
    t[i] = static_cast<char>(t[i] ^ (1 << (i % 8)));
    EXPECT_EQ(kp->Open(1, t, "aad").status().code(), Code::kKeyError) << "bit flip at byte " << i;
    ++mutations;
  }
  for (size_t n = 0; n < sealed->size(); n += 7) {
    EXPECT_EQ(kp->Open(1, sealed->substr(0, n), "aad").status().code(), Code::kKeyError)
        << "truncated to " << n;
    ++mutations;
  }
  EXPECT_CODE(kp->Open(1, *sealed + "x", "aad"), Code::kKeyError);
  std::printf("conformance[%s]: %d mutations, all kKeyError\n", GetParam().name, mutations);
}

TEST_P(ProviderConformance, DestroyedKekNeverOpensAgain) {
  ASSERT_OK(kp->CreateKek(1));
  ASSERT_OK(kp->CreateKek(2));
  auto sealed = kp->Seal(1, Bytes("secret"), "aad");
  ASSERT_OK(sealed);
  const int64_t before = NowMicros();
  ASSERT_OK(kp->DestroyKek(1));
  EXPECT_OK(kp->DestroyKek(1));   // idempotent
  EXPECT_OK(kp->DestroyKek(99));  // never existed
  auto gens = kp->ListKeks();
  ASSERT_OK(gens);
  EXPECT_EQ(*gens, std::vector<uint32_t>{2});
  auto open = kp->Open(1, *sealed, "aad");
  EXPECT_CODE(open, Code::kKeyError);
  // The message names the failure, never key bytes.
  EXPECT_NE(open.status().message().find("KEK generation 1"), std::string::npos)
      << open.status().ToString();
  // irrecoverable_after: now for providers that destroy at once, now +
  // the window for a soft-delete KMS.
  auto when = kp->IrrecoverableAfter(1, before);
  ASSERT_OK(when);
  if (backing->window() == 0) {
    EXPECT_EQ(*when, before);
  } else {  // the scheduled deletion: destroy time + the window
    EXPECT_GE(*when, before + backing->window());
    EXPECT_LE(*when, NowMicros() + backing->window());
  }
  Reopen();
  EXPECT_CODE(kp->Open(1, *sealed, "aad"), Code::kKeyError);
  // A new key under the old generation number is a new key.
  ASSERT_OK(kp->CreateKek(1));
  EXPECT_CODE(kp->Open(1, *sealed, "aad"), Code::kKeyError);
}

TEST_P(ProviderConformance, EverythingPersistsAcrossReopen) {
  ASSERT_OK(kp->CreateKek(4));
  auto sealed = kp->Seal(4, Bytes("persisted"), "aad");
  ASSERT_OK(sealed);
  ASSERT_OK(kp->WriteKeyring(7, *sealed));
  ASSERT_OK(kp->WriteKeyring(8, "later"));
  auto pk = kp->SigningPublicKey();
  ASSERT_OK(pk);
  ASSERT_EQ(pk->size(), 32u);
  Reopen(/*writer=*/false);  // a read-only reopen sees it all
  auto gens = kp->ListKeks();
  ASSERT_OK(gens);
  EXPECT_EQ(*gens, std::vector<uint32_t>{4});
  auto rings = kp->ListKeyrings();
  ASSERT_OK(rings);
  EXPECT_EQ(*rings, (std::vector<uint64_t>{7, 8}));
  auto ring = kp->ReadKeyring(7);
  ASSERT_OK(ring);
  auto back = kp->Open(4, *ring, "aad");
  ASSERT_OK(back);
  EXPECT_EQ(Str(*back), "persisted");
  auto pk2 = kp->ExistingSigningPublicKey();
  ASSERT_OK(pk2);
  EXPECT_EQ(*pk2, *pk);
  ASSERT_OK(kp->AcquireWriterLock());
  ASSERT_OK(kp->RemoveKeyring(7));
  auto rings2 = kp->ListKeyrings();
  ASSERT_OK(rings2);
  EXPECT_EQ(*rings2, std::vector<uint64_t>{8});
}

TEST_P(ProviderConformance, NoKeyChangeWithoutTheWriterLock) {
  ASSERT_OK(kp->CreateKek(1));
  Reopen(/*writer=*/false);
  EXPECT_CODE(kp->CreateKek(2), Code::kFailedPrecondition);
  EXPECT_CODE(kp->DestroyKek(1), Code::kFailedPrecondition);
  EXPECT_CODE(kp->WriteKeyring(1, "x"), Code::kFailedPrecondition);
  EXPECT_CODE(kp->ExistingSigningPublicKey(), Code::kNotFound);
  auto gens = kp->ListKeks();
  ASSERT_OK(gens);
  EXPECT_EQ(*gens, std::vector<uint32_t>{1});
  // A second writer on the same backing is refused while one holds it.
  ASSERT_OK(kp->AcquireWriterLock());
  auto other = backing->Make();
  ASSERT_OK(other);
  EXPECT_CODE((*other)->AcquireWriterLock(), Code::kFailedPrecondition);
}

TEST_P(ProviderConformance, SignaturesVerifyWithTheProvidersPublicKey) {
  auto pk = kp->SigningPublicKey();
  ASSERT_OK(pk);
  ASSERT_EQ(pk->size(), 32u);
  const std::string msg = "{\"kind\":\"tenant_purge\"}";
  auto sig = kp->Sign(msg);
  ASSERT_OK(sig);
  ASSERT_EQ(sig->size(), 64u);
  EXPECT_EQ(crypto_sign_verify_detached(reinterpret_cast<const unsigned char*>(sig->data()),
                                        reinterpret_cast<const unsigned char*>(msg.data()),
                                        msg.size(),
                                        reinterpret_cast<const unsigned char*>(pk->data())),
            0);
  const std::string other = msg + " ";
  EXPECT_NE(crypto_sign_verify_detached(reinterpret_cast<const unsigned char*>(sig->data()),
                                        reinterpret_cast<const unsigned char*>(other.data()),
                                        other.size(),
                                        reinterpret_cast<const unsigned char*>(pk->data())),
            0);
}

TEST_P(ProviderConformance, ConcurrentSealAndOpen) {
  ASSERT_OK(kp->CreateKek(1));
  ASSERT_OK(kp->CreateKek(2));
  constexpr int kThreads = 8, kIters = 40;
  std::atomic<int> failures{0}, done{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; ++t) {
    ts.emplace_back([&, t] {
      for (int i = 0; i < kIters; ++i) {
        const uint32_t gen = 1 + static_cast<uint32_t>((t + i) % 2);
        const std::string pt = "t" + std::to_string(t) + "i" + std::to_string(i);
        const std::string aad = "aad" + std::to_string(i);
        auto s = kp->Seal(gen, Bytes(pt), aad);
        if (!s.ok()) { ++failures; continue; }
        auto o = kp->Open(gen, *s, aad);
        if (!o.ok() || Str(*o) != pt) { ++failures; continue; }
        if (kp->Open(3 - gen, *s, aad).ok()) ++failures;  // never under the other KEK
        ++done;
      }
    });
  }
  for (auto& t : ts) t.join();
  std::printf("conformance[%s]: %d concurrent round trips, %d failures\n", GetParam().name,
              done.load(), failures.load());
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(done.load(), kThreads * kIters);
}

INSTANTIATE_TEST_SUITE_P(Providers, ProviderConformance, ::testing::ValuesIn(kProviders),
                         [](const auto& p) { return std::string(p.param.name); });

}  // namespace
}  // namespace callvault
