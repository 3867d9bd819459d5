// Tenant key rotation with the PKCS#11 key provider on a real SoftHSM2 token
// (issue 15, "Tests"; docs/decisions/0036). The rotation reaches the token
// only through the keyring commit of its shred (a new KEK generation, the
// keyring sealed under it with C_Encrypt, the retired KEK destroyed with
// C_DestroyObject), as a purge does:
// - after RotateTenantKey the retired KEK object is gone from the token
//   (C_FindObjects by label), the tenant reads back whole; copies of the
//   store and of the provider's state directory taken before the rotation,
//   opened with the current token, read nothing of the rotated tenant's
//   pre-rotation rows (never plaintext), and the other tenant reads; of a
//   copy of the token directory taken before, the retired KEK's file is
//   gone from the current one (the copy itself would still open it:
//   SoftHSM2 is a test double, docs/crypto.md);
// - a token that fails at the rotation's keyring commit (the fault-injecting
//   module of tests/providers/p11_shim.cc, armed while the rows are being
//   copied): a specific error naming the failed function; after the fault
//   lifts, a reopen finishes the rotation and every record reads under
//   exactly one key, the new one (the pre-rotation copy stays unreadable);
// - a token that fails at the rotation's first keyring commit (the new DEK,
//   before the copy): refused with the function named, nothing changed.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "callvault/pkcs11_key_provider.h"
#include "callvault/store.h"
#include "tests/providers/softhsm.h"
#include "tests/testutil/testutil.h"

namespace callvault {
namespace {

using testutil::CopyTree;
using testutil::MakeCall;
using testutil::TempDir;

constexpr int64_t kT0 = 1'767'225'600'000'000;
constexpr int kCalls = 30;

std::string Id(int i) { return "call-" + std::to_string(i); }
std::string Canary(const std::string& tenant) { return tenant + "-ROTATION-CANARY"; }

size_t CountKeks(const std::vector<std::string>& labels) {
  return static_cast<size_t>(std::count_if(labels.begin(), labels.end(), [](const std::string& l) {
    return l.rfind("callvault-kek-", 0) == 0;
  }));
}

class RotationPkcs11Test : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(token.ok()) << "softhsm2-util --init-token failed"; }

  virtual Pkcs11KeyProviderOptions Opts(const std::string& state_dir) {
    return token.Options(state_dir);
  }
  Result<std::unique_ptr<Store>> OpenStore(const std::string& db_dir, const std::string& state_dir,
                                           bool read_only = false) {
    CV_ASSIGN_OR_RETURN(auto kp, NewPkcs11KeyProvider(Opts(state_dir)));
    Options o = testutil::DefaultOptions(kp);
    o.create_if_missing = !read_only;
    o.read_only = read_only;
    o.progress = [this](const Progress& p) {
      if (std::string_view(p.operation) == "rotate" && p.done > 0 && !p.finished) OnCopyProgress();
    };
    return Store::Open(o, db_dir);
  }
  virtual void OnCopyProgress() {}

  // Two tenants of kCalls calls, each with its canary; what each reads as.
  void Fill(Store* st) {
    for (const char* t : {"acme", "globex"}) {
      ASSERT_OK(st->CreateTenant({.tenant_id = t}));
      for (int i = 0; i < kCalls; ++i) {
        ASSERT_OK(st->PutCall(t, MakeCall(Id(i), kT0 + i * 1'000'000, Canary(t))));
      }
      for (int i = 0; i < kCalls; ++i) {
        auto c = st->GetCall(t, Id(i));
        ASSERT_OK(c);
        expected[t][Id(i)] = *c;
      }
    }
    ASSERT_OK(st->Flush());
  }
  // Every call of `tenant` reads back exactly (content and version).
  void ExpectWhole(Store* st, const std::string& tenant) {
    for (const auto& [id, want] : expected[tenant]) {
      auto c = st->GetCall(tenant, id);
      ASSERT_TRUE(c.ok()) << tenant << "/" << id << ": " << c.status().ToString();
      EXPECT_TRUE(*c == want) << tenant << "/" << id;
      EXPECT_EQ(c->version, want.version) << tenant << "/" << id;
    }
    auto n = st->CountCalls(tenant);
    ASSERT_OK(n);
    EXPECT_EQ(*n, expected[tenant].size());
  }
  // No call of `tenant` reads, with an error that carries no plaintext.
  void ExpectUnreadable(Store* st, const std::string& tenant) {
    for (const auto& [id, want] : expected[tenant]) {
      auto c = st->GetCall(tenant, id);
      ASSERT_FALSE(c.ok()) << tenant << "/" << id << " read from a pre-rotation copy";
      const Code code = c.status().code();
      EXPECT_TRUE(code == Code::kCorruption || code == Code::kKeyError) << c.status().ToString();
      EXPECT_EQ(c.status().message().find(Canary(tenant)), std::string::npos);
    }
    auto page = st->ListCalls(tenant, ListQuery{});
    EXPECT_FALSE(page.ok() && !page->calls.empty()) << "a pre-rotation copy lists the tenant";
  }

  TempDir tmp;
  testutil::SoftHsmToken token{tmp.path()};
  std::string db = tmp.Sub("db");
  std::string state = tmp.Sub("state");
  std::map<std::string, std::map<std::string, Call>> expected;  // tenant -> id -> call
};

TEST_F(RotationPkcs11Test, RetiredKekLeavesTheTokenAndPreRotationCopiesStayUnreadable) {
  {
    auto s = OpenStore(db, state);
    ASSERT_OK(s);
    Fill(s->get());
  }
  // Copies taken before the rotation (the store closed: whole files).
  CopyTree(db, tmp.Sub("db-copy"));
  CopyTree(state, tmp.Sub("state-copy"));
  CopyTree(token.tokens_dir(), tmp.Sub("tokens-copy"));
  uint32_t retired = 0;
  {
    auto s = OpenStore(db, state);
    ASSERT_OK(s);
    Store& st = **s;
    auto stats = st.Stats();
    ASSERT_OK(stats);
    retired = stats->kek_generation;
    const std::string old_label = "callvault-kek-" + std::to_string(retired);
    auto objects = ListPkcs11Objects(token.Options(state));
    ASSERT_OK(objects);
    ASSERT_NE(std::find(objects->begin(), objects->end(), old_label), objects->end());

    auto r = st.RotateTenantKey("acme");
    ASSERT_OK(r);
    EXPECT_EQ(r->kind, "key_rotation");
    EXPECT_EQ(r->kek_generation_retired, retired);
    EXPECT_GT(r->kek_generation_current, retired);
    EXPECT_NE(r->irrecoverable_after, 0);
    // The retired KEK object is gone from the token (C_FindObjects by
    // label); the current one is the only KEK left.
    objects = ListPkcs11Objects(token.Options(state));
    ASSERT_OK(objects);
    EXPECT_EQ(std::find(objects->begin(), objects->end(), old_label), objects->end())
        << "the retired KEK is still in the token";
    EXPECT_NE(std::find(objects->begin(), objects->end(),
                        "callvault-kek-" + std::to_string(r->kek_generation_current)),
              objects->end());
    EXPECT_EQ(CountKeks(*objects), 1u);
    // The tenant reads back whole under key version 2; the other tenant too.
    EXPECT_EQ(st.DescribeTenant("acme")->key_version, 2u);
    ExpectWhole(&st, "acme");
    ExpectWhole(&st, "globex");
    auto receipts = st.ListReceipts();
    ASSERT_OK(receipts);
    auto pk = st.SigningPublicKey();
    ASSERT_OK(pk);
    EXPECT_OK(VerifyReceiptChain(*receipts, *pk));
  }
  // Reopened on the current token: whole.
  {
    auto s = OpenStore(db, state);
    ASSERT_OK(s);
    ExpectWhole(s->get(), "acme");
    ExpectWhole(s->get(), "globex");
  }
  // 1. The pre-rotation store copy with the current state directory and
  //    token: the rotated tenant is quarantined (its rows are sealed under
  //    key version 1, which no key opens); the other tenant reads.
  {
    auto s = OpenStore(tmp.Sub("db-copy"), state);
    ASSERT_OK(s);
    ExpectUnreadable(s->get(), "acme");
    auto c = (*s)->GetCall("acme", Id(1));
    EXPECT_CODE(c, Code::kCorruption);
    EXPECT_CODE((*s)->ReinstateTenant("acme"), Code::kFailedPrecondition);
    ExpectWhole(s->get(), "globex");
  }
  // 2. The pre-rotation store copy AND the pre-rotation state directory
  //    (its keyring still holds DEK 1, sealed under the destroyed KEK), with
  //    the current token: the keyring does not open, or nothing of the
  //    tenant reads.
  {
    auto s = OpenStore(tmp.Sub("db-copy"), tmp.Sub("state-copy"), /*read_only=*/true);
    std::printf("pre-rotation store + pre-rotation state dir + current token: %s\n",
                s.ok() ? "opened" : s.status().ToString().c_str());
    if (s.ok()) {
      ExpectUnreadable(s->get(), "acme");
    } else {
      EXPECT_EQ(s.status().code(), Code::kKeyError) << s.status().ToString();
      EXPECT_EQ(s.status().message().find(Canary("acme")), std::string::npos);
    }
  }
  // 3. The token's own files: the rotation removed the retired KEK's file
  //    (SoftHSM2 keeps each object in a file; a copy of them would keep the
  //    KEK: the test double's limit, docs/crypto.md). No canary and no
  //    tenant id in the token or the state directory.
  std::set<std::string> now_files, old_files;
  for (const auto& f : testutil::ListFiles(token.tokens_dir())) {
    now_files.insert(std::filesystem::path(f).filename().string());
  }
  for (const auto& f : testutil::ListFiles(tmp.Sub("tokens-copy"))) {
    old_files.insert(std::filesystem::path(f).filename().string());
  }
  size_t gone = 0;
  for (const auto& f : old_files) gone += now_files.count(f) == 0 ? 1 : 0;
  EXPECT_GE(gone, 1u) << "no token object file was removed by the rotation";
  EXPECT_TRUE(
      testutil::FindInTree(token.tokens_dir(), {Canary("acme"), Canary("globex"), "acme"}).empty());
  EXPECT_TRUE(testutil::FindInTree(state, {Canary("acme"), Canary("globex"), "acme"}).empty());
}

// The token fails one function while the rotation commits its keyring.
class RotationTokenFaultTest : public RotationPkcs11Test,
                               public ::testing::WithParamInterface<const char*> {
 protected:
  void SetUp() override {
    RotationPkcs11Test::SetUp();
    ::setenv("CV_P11_SHIM_REAL", testutil::kSoftHsmModule, 1);
    ::setenv("CV_P11_SHIM_ARM_FILE", arm.c_str(), 1);
  }
  Pkcs11KeyProviderOptions Opts(const std::string& state_dir) override {
    auto o = token.Options(state_dir);
    o.module_path = CV_P11_SHIM;  // every open goes through the shim
    return o;
  }
  // Armed once the copy has written rows: after the rotation's first
  // keyring commit (DEK v+1, step 2), before its shred (step 6).
  void OnCopyProgress() override {
    if (arm_during_copy.exchange(false)) {
      std::ofstream(arm) << fault;
      armed = true;
    }
  }
  void Disarm() { std::remove(arm.c_str()); }
  size_t Keks() {
    auto objects = ListPkcs11Objects(token.Options(state));
    EXPECT_OK(objects);
    return objects.ok() ? CountKeks(*objects) : 0;
  }

  std::string arm = tmp.Sub("arm");
  std::string fault;
  std::atomic<bool> arm_during_copy{false};
  bool armed = false;
};

TEST_P(RotationTokenFaultTest, FailedShredIsFinishedByTheNextOpen) {
  fault = GetParam();
  {
    auto s = OpenStore(db, state);
    ASSERT_OK(s);
    Fill(s->get());
    ASSERT_OK((*s)->SigningPublicKey());  // the signing key exists before the fault
  }
  CopyTree(db, tmp.Sub("db-copy"));
  {
    auto s = OpenStore(db, state);
    ASSERT_OK(s);
    arm_during_copy = true;
    auto r = (*s)->RotateTenantKey("acme");
    Disarm();
    ASSERT_TRUE(armed) << "the rotation reported no copy progress: the fault was never armed";
    ASSERT_FALSE(r.ok()) << fault << ": the rotation succeeded through a failing token";
    EXPECT_TRUE(r.status().code() == Code::kKeyError || r.status().code() == Code::kIOError)
        << r.status().ToString();
    EXPECT_NE(r.status().message().find(fault), std::string::npos) << r.status().ToString();
    EXPECT_EQ(r.status().message().find(Canary("acme")), std::string::npos);
    std::printf("fault %s: rotation failed with %s\n", fault.c_str(), r.status().ToString().c_str());
    // Served from the copy meanwhile; the other tenant untouched.
    ExpectWhole(s->get(), "acme");
    ExpectWhole(s->get(), "globex");
  }
  // The fault lifted, reopened: the rotation is finished (it failed after
  // the switch to the copy), so the tenant is at key version 2, whole.
  auto s = OpenStore(db, state);
  ASSERT_OK(s);
  Store& st = **s;
  EXPECT_EQ(st.DescribeTenant("acme")->key_version, 2u);
  ExpectWhole(&st, "acme");
  ExpectWhole(&st, "globex");
  auto receipts = st.ListReceipts();
  ASSERT_OK(receipts);
  EXPECT_EQ(std::count_if(receipts->begin(), receipts->end(),
                          [](const Receipt& x) { return x.kind == "key_rotation"; }),
            1);
  auto pk = st.SigningPublicKey();
  ASSERT_OK(pk);
  EXPECT_OK(VerifyReceiptChain(*receipts, *pk));
  auto report = st.Verify();
  ASSERT_OK(report);
  EXPECT_EQ(report->records_failed, 0u);
  EXPECT_TRUE(report->failures.empty()) << report->failures.front();
  // Exactly one key: the retired KEK is gone from the token, and the
  // pre-rotation copy (rows under key version 1) no longer reads.
  EXPECT_EQ(Keks(), 1u);
  // And it rotates again.
  ASSERT_OK(st.RotateTenantKey("acme"));
  ExpectWhole(&st, "acme");
  EXPECT_EQ(Keks(), 1u);
  s->reset();
  auto old = OpenStore(tmp.Sub("db-copy"), state);
  ASSERT_OK(old);
  ExpectUnreadable(old->get(), "acme");
  EXPECT_CODE((*old)->GetCall("acme", Id(1)), Code::kCorruption);
  ExpectWhole(old->get(), "globex");
}

// The token fails at the rotation's first keyring commit (DEK v+1, before
// any row is copied): refused with the function named, nothing changed; it
// runs once the token is back.
TEST_F(RotationTokenFaultTest, FailureBeforeTheCopyChangesNothing) {
  auto s = OpenStore(db, state);
  ASSERT_OK(s);
  Fill(s->get());
  const size_t keks = Keks();
  std::ofstream(arm) << "C_Encrypt";
  auto r = (*s)->RotateTenantKey("acme");
  Disarm();
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.status().code() == Code::kKeyError || r.status().code() == Code::kIOError)
      << r.status().ToString();
  EXPECT_NE(r.status().message().find("C_Encrypt"), std::string::npos) << r.status().ToString();
  EXPECT_EQ((*s)->DescribeTenant("acme")->key_version, 1u);
  ExpectWhole(s->get(), "acme");
  EXPECT_EQ(Keks(), keks);
  auto receipts = (*s)->ListReceipts();
  ASSERT_OK(receipts);
  EXPECT_TRUE(receipts->empty());
  s->reset();
  s = OpenStore(db, state);
  ASSERT_OK(s);
  EXPECT_EQ((*s)->DescribeTenant("acme")->key_version, 1u);
  ExpectWhole(s->get(), "acme");
  ASSERT_OK((*s)->RotateTenantKey("acme"));
  EXPECT_EQ((*s)->DescribeTenant("acme")->key_version, 2u);
  ExpectWhole(s->get(), "acme");
  ExpectWhole(s->get(), "globex");
}

// C_Decrypt is not called by a keyring commit (only by the keyring's open,
// covered by pkcs11_fault_test's FailingDecryptAtOpenRefusesTheOpen...).
INSTANTIATE_TEST_SUITE_P(TokenFaults, RotationTokenFaultTest,
                         ::testing::Values("C_GenerateKey", "C_Encrypt", "C_DestroyObject",
                                           "C_FindObjectsInit"),
                         [](const auto& p) { return std::string(p.param).substr(2); });

}  // namespace
}  // namespace callvault
