// A token that fails mid-purge (testing.md T4 for the PKCS#11 provider): a
// fault-injecting PKCS#11 module (p11_shim.cc) in front of a real SoftHSM2
// token fails one function (C_GenerateKey, C_Encrypt, C_DestroyObject,
// C_Sign, C_FindObjectsInit) with CKR_DEVICE_ERROR during a purge. The purge
// fails with a specific error naming the function; after the fault lifts,
// a reopen finishes or rolls back: every acknowledged write of the other
// tenant reads, the purged tenant ends purged with one receipt, the retired
// KEK objects are gone from the token, and the receipt chain verifies. A
// failing C_Decrypt at open refuses the open and changes nothing.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>

#include "callvault/pkcs11_key_provider.h"
#include "callvault/store.h"
#include "tests/providers/softhsm.h"
#include "tests/testutil/testutil.h"

namespace callvault {
namespace {

using testutil::MakeCall;
using testutil::TempDir;

constexpr int64_t kT0 = 1700000000000000;
constexpr int kCalls = 10;

class Pkcs11FaultTest : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override {
    ASSERT_TRUE(token.ok());
    ::setenv("CV_P11_SHIM_REAL", testutil::kSoftHsmModule, 1);
    ::setenv("CV_P11_SHIM_ARM_FILE", arm.c_str(), 1);
  }
  void Arm(const std::string& fn) { std::ofstream(arm) << fn; }
  void Disarm() { std::remove(arm.c_str()); }
  Pkcs11KeyProviderOptions Opts() {
    auto o = token.Options(state);
    o.module_path = CV_P11_SHIM;  // every open goes through the shim
    return o;
  }
  Result<std::unique_ptr<Store>> Open() {
    CV_ASSIGN_OR_RETURN(auto kp, NewPkcs11KeyProvider(Opts()));
    return Store::Open(testutil::DefaultOptions(kp), db);
  }
  size_t Keks() {
    auto objects = ListPkcs11Objects(Opts());
    EXPECT_OK(objects);
    if (!objects.ok()) return 0;
    return static_cast<size_t>(std::count_if(objects->begin(), objects->end(), [](const auto& l) {
      return l.rfind("callvault-kek-", 0) == 0;
    }));
  }

  TempDir tmp;
  testutil::SoftHsmToken token{tmp.path()};
  std::string db = tmp.Sub("db");
  std::string state = tmp.Sub("state");
  std::string arm = tmp.Sub("arm");
};

TEST_P(Pkcs11FaultTest, FailedPurgeLosesNothingAndFinishesAfterReopen) {
  const std::string fn = GetParam();
  {
    auto s = Open();
    ASSERT_OK(s);
    ASSERT_OK((*s)->CreateTenant({.tenant_id = "acme"}));
    ASSERT_OK((*s)->CreateTenant({.tenant_id = "globex"}));
    for (int i = 0; i < kCalls; ++i) {
      ASSERT_OK((*s)->PutCall("acme", MakeCall("a-" + std::to_string(i), kT0)));
      ASSERT_OK((*s)->PutCall("globex", MakeCall("g-" + std::to_string(i), kT0)));
    }
    ASSERT_OK((*s)->SigningPublicKey());  // the signing key exists before the fault
    Arm(fn);
    auto r = (*s)->PurgeTenant("acme");
    Disarm();
    ASSERT_FALSE(r.ok()) << fn << ": the purge succeeded through a failing token";
    EXPECT_TRUE(r.status().code() == Code::kKeyError || r.status().code() == Code::kIOError)
        << r.status().ToString();
    EXPECT_NE(r.status().message().find(fn), std::string::npos) << r.status().ToString();
    std::printf("fault %s: purge failed with %s\n", fn.c_str(), r.status().ToString().c_str());
  }
  auto s = Open();
  ASSERT_OK(s);
  for (int i = 0; i < kCalls; ++i) {
    EXPECT_OK((*s)->GetCall("globex", "g-" + std::to_string(i)));
  }
  // acme: purged by the recovery, or untouched (the failure came before the
  // shred was durable) and purged now.
  auto still = (*s)->GetCall("acme", "a-0");
  if (still.ok()) {
    for (int i = 0; i < kCalls; ++i) EXPECT_OK((*s)->GetCall("acme", "a-" + std::to_string(i)));
  } else {
    EXPECT_EQ(still.status().code(), Code::kTenantPurged) << still.status().ToString();
  }
  auto r = (*s)->PurgeTenant("acme");
  ASSERT_OK(r);
  EXPECT_CODE((*s)->GetCall("acme", "a-0"), Code::kTenantPurged);
  EXPECT_NE(r->irrecoverable_after, 0);
  auto receipts = (*s)->ListReceipts();
  ASSERT_OK(receipts);
  EXPECT_EQ(std::count_if(receipts->begin(), receipts->end(),
                          [](const Receipt& x) { return x.tenant_id == "acme"; }),
            1);
  auto pk = (*s)->SigningPublicKey();
  ASSERT_OK(pk);
  EXPECT_OK(VerifyReceiptChain(*receipts, *pk));
  // Only the current KEK is left in the token: every retired one destroyed.
  EXPECT_EQ(Keks(), 1u);
  std::printf("fault %s: recovered; acme %s before the second purge\n", fn.c_str(),
              still.ok() ? "was still live" : "was already purged");
}

INSTANTIATE_TEST_SUITE_P(TokenFaults, Pkcs11FaultTest,
                         ::testing::Values("C_GenerateKey", "C_Encrypt", "C_DestroyObject",
                                           "C_Sign", "C_FindObjectsInit"),
                         [](const auto& p) { return std::string(p.param).substr(2); });

TEST_F(Pkcs11FaultTest, FailingDecryptAtOpenRefusesTheOpenAndChangesNothing) {
  {
    auto s = Open();
    ASSERT_OK(s);
    ASSERT_OK((*s)->CreateTenant({.tenant_id = "acme"}));
    ASSERT_OK((*s)->PutCall("acme", MakeCall("a-0", kT0)));
  }
  const auto before = testutil::ListFiles(state);
  Arm("C_Decrypt");
  auto s = Open();
  Disarm();
  EXPECT_FALSE(s.ok());
  EXPECT_TRUE(s.status().code() == Code::kKeyError || s.status().code() == Code::kIOError)
      << s.status().ToString();
  EXPECT_EQ(testutil::ListFiles(state), before);
  auto again = Open();
  ASSERT_OK(again);
  EXPECT_OK((*again)->GetCall("acme", "a-0"));
}

}  // namespace
}  // namespace callvault
