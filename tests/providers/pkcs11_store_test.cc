// A store on a real SoftHSM2 token through the PKCS#11 provider: purge
// destroys the KEK object in the token and signs a receipt (with the token's
// Ed25519 key) that says when the key became irrecoverable; pre-purge copies
// of the store and of the state directory, reopened with the current token,
// read nothing of the purged tenant. Wrong PIN, missing token, missing
// module, a loose PIN file: specific errors, nothing created.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <set>
#include <filesystem>

#include "callvault/pkcs11_key_provider.h"
#include "callvault/store.h"
#include "tests/providers/softhsm.h"
#include "tests/testutil/testutil.h"

namespace callvault {
namespace {

using testutil::CopyTree;
using testutil::MakeCall;
using testutil::TempDir;

constexpr int64_t kT0 = 1700000000000000;

int64_t NowMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

class Pkcs11StoreTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(token.ok()) << "softhsm2-util --init-token failed"; }

  Result<std::unique_ptr<Store>> OpenStore(const std::string& db_dir, const std::string& state_dir,
                                           bool read_only = false, bool create = true) {
    CV_ASSIGN_OR_RETURN(auto kp, NewPkcs11KeyProvider(token.Options(state_dir)));
    Options o = testutil::DefaultOptions(kp);
    o.create_if_missing = create;
    o.read_only = read_only;
    return Store::Open(o, db_dir);
  }

  TempDir tmp;
  testutil::SoftHsmToken token{tmp.path()};
  std::string db = tmp.Sub("db");
  std::string state = tmp.Sub("state");
};

TEST_F(Pkcs11StoreTest, PurgeDestroysTheTokenObjectAndCopiesStayUnreadable) {
  uint32_t retired = 0;
  {
    auto s = OpenStore(db, state);
    ASSERT_OK(s);
    Store& st = **s;
    ASSERT_OK(st.CreateTenant({.tenant_id = "acme"}));
    ASSERT_OK(st.CreateTenant({.tenant_id = "globex"}));
    for (int i = 0; i < 20; ++i) {
      ASSERT_OK(st.PutCall("acme", MakeCall("call-" + std::to_string(i), kT0, "ACME-CANARY")));
      ASSERT_OK(st.PutCall("globex", MakeCall("call-" + std::to_string(i), kT0)));
    }
    ASSERT_OK(st.Flush());
    auto stats = st.Stats();
    ASSERT_OK(stats);
    retired = stats->kek_generation;
    const std::string kek_label = "callvault-kek-" + std::to_string(retired);
    auto objects = ListPkcs11Objects(token.Options(state));
    ASSERT_OK(objects);
    ASSERT_NE(std::find(objects->begin(), objects->end(), kek_label), objects->end());
    // Pre-purge copies: the store, the state directory, the token directory.
    CopyTree(db, tmp.Sub("db-copy"));
    CopyTree(state, tmp.Sub("state-copy"));
    CopyTree(token.tokens_dir(), tmp.Sub("tokens-copy"));

    const int64_t before = NowMicros();
    auto r = st.PurgeTenant("acme");
    ASSERT_OK(r);
    const int64_t after = NowMicros();
    EXPECT_EQ(r->kek_generation_retired, retired);
    EXPECT_GE(r->irrecoverable_after, before);
    EXPECT_LE(r->irrecoverable_after, after);
    EXPECT_NE(r->Canonical().find("\"irrecoverable_after\":"), std::string::npos);
    // The KEK object is gone from the token (C_FindObjects by label).
    objects = ListPkcs11Objects(token.Options(state));
    ASSERT_OK(objects);
    EXPECT_EQ(std::find(objects->begin(), objects->end(), kek_label), objects->end())
        << "the retired KEK is still in the token";
    EXPECT_NE(std::find(objects->begin(), objects->end(),
                        "callvault-kek-" + std::to_string(r->kek_generation_current)),
              objects->end());
    // The receipt chain verifies under the token's Ed25519 key.
    auto receipts = st.ListReceipts();
    ASSERT_OK(receipts);
    auto pk = st.SigningPublicKey();
    ASSERT_OK(pk);
    EXPECT_OK(VerifyReceiptChain(*receipts, *pk));
    EXPECT_CODE(st.GetCall("acme", "call-1"), Code::kTenantPurged);
    EXPECT_OK(st.GetCall("globex", "call-1"));
  }
  // The state directory holds no KEK: keyrings, tombstones, nothing else.
  for (const auto& e : std::filesystem::directory_iterator(state)) {
    const std::string n = e.path().filename().string();
    EXPECT_TRUE(n.rfind("KEYRING-", 0) == 0 || n == "TOMBSTONES") << n;
  }
  // 1. The pre-purge store copy with the current token and state: the
  //    purged tenant stays purged; the other tenant reads.
  {
    auto s = OpenStore(tmp.Sub("db-copy"), state, /*read_only=*/false, /*create=*/false);
    ASSERT_OK(s);
    auto got = (*s)->GetCall("acme", "call-1");
    EXPECT_FALSE(got.ok());
    EXPECT_TRUE(got.status().code() == Code::kTenantPurged ||
                got.status().code() == Code::kKeyError)
        << got.status().ToString();
    EXPECT_OK((*s)->GetCall("globex", "call-1"));
  }
  // 2. The pre-purge store copy AND the pre-purge state directory (its
  //    keyring still holds acme's DEK, sealed under the destroyed KEK),
  //    with the current token: the keyring does not open; nothing reads.
  {
    auto s = OpenStore(tmp.Sub("db-copy"), tmp.Sub("state-copy"), /*read_only=*/true,
                       /*create=*/false);
    std::printf("pre-purge store + pre-purge state dir + current token: %s\n",
                s.ok() ? "opened" : s.status().ToString().c_str());
    if (s.ok()) {
      auto got = (*s)->GetCall("acme", "call-1");
      EXPECT_FALSE(got.ok()) << "a pre-purge copy read the purged tenant";
    } else {
      EXPECT_EQ(s.status().code(), Code::kKeyError) << s.status().ToString();
    }
  }
  // 3. The pre-purge token directory (a copy of SoftHSM2's files) is NOT
  //    the current token: the test double keeps keys in plain files, so a
  //    copy of them does keep the KEK (docs/crypto.md: the guarantee comes
  //    from a real HSM, whose key store cannot be copied). Here: the
  //    current token directory no longer holds any file of the retired KEK.
  std::set<std::string> now_files, old_files;
  for (const auto& f : testutil::ListFiles(token.tokens_dir())) {
    now_files.insert(std::filesystem::path(f).filename().string());
  }
  for (const auto& f : testutil::ListFiles(tmp.Sub("tokens-copy"))) {
    old_files.insert(std::filesystem::path(f).filename().string());
  }
  size_t gone = 0;
  for (const auto& f : old_files) gone += now_files.count(f) == 0 ? 1 : 0;
  EXPECT_GE(gone, 1u) << "no token object file was removed by the purge";
  // 4. No canary and no tenant id in the state directory or the token.
  EXPECT_TRUE(testutil::FindInTree(state, {"ACME-CANARY", "acme", "globex"}).empty());
  EXPECT_TRUE(testutil::FindInTree(token.tokens_dir(), {"ACME-CANARY", "acme", "globex"}).empty());
}

TEST_F(Pkcs11StoreTest, ReopenAndReadOnlyOpen) {
  {
    auto s = OpenStore(db, state);
    ASSERT_OK(s);
    ASSERT_OK((*s)->CreateTenant({.tenant_id = "acme"}));
    ASSERT_OK((*s)->PutCall("acme", MakeCall("call-1", kT0)));
  }
  {
    auto s = OpenStore(db, state, /*read_only=*/true, /*create=*/false);
    ASSERT_OK(s);
    EXPECT_OK((*s)->GetCall("acme", "call-1"));
  }
  auto s = OpenStore(db, state, false, false);
  ASSERT_OK(s);
  EXPECT_OK((*s)->GetCall("acme", "call-1"));
  // A second writer on the same state directory is refused.
  auto second = OpenStore(tmp.Sub("db2"), state);
  EXPECT_CODE(second, Code::kFailedPrecondition);
}

TEST_F(Pkcs11StoreTest, BadSettingsGiveSpecificErrorsAndChangeNothing) {
  Pkcs11KeyProviderOptions o = token.Options(state);
  // Wrong PIN.
  auto wrong = o;
  ::setenv("CV_TEST_WRONG_PIN", "99999", 1);
  wrong.pin_file.clear();
  wrong.pin_env = "CV_TEST_WRONG_PIN";
  auto r = NewPkcs11KeyProvider(wrong);
  EXPECT_CODE(r, Code::kKeyError);
  EXPECT_NE(r.status().message().find("refused the PIN"), std::string::npos) << r.status().ToString();
  EXPECT_EQ(r.status().message().find("99999"), std::string::npos) << "PIN in a message";
  // The PIN from an environment variable works.
  ::setenv("CV_TEST_PIN", "1234", 1);
  auto env = o;
  env.pin_file.clear();
  env.pin_env = "CV_TEST_PIN";
  EXPECT_OK(NewPkcs11KeyProvider(env));
  // An unset variable; both sources; none.
  auto unset = env;
  unset.pin_env = "CV_TEST_PIN_UNSET";
  EXPECT_CODE(NewPkcs11KeyProvider(unset), Code::kInvalidArgument);
  auto both = o;
  both.pin_env = "CV_TEST_PIN";
  EXPECT_CODE(NewPkcs11KeyProvider(both), Code::kInvalidArgument);
  // A PIN file others can read; a missing one.
  ASSERT_EQ(::chmod(token.pin_file().c_str(), 0644), 0);
  EXPECT_CODE(NewPkcs11KeyProvider(o), Code::kFailedPrecondition);
  ASSERT_EQ(::chmod(token.pin_file().c_str(), 0600), 0);
  auto nofile = o;
  nofile.pin_file = tmp.Sub("no-such-pin");
  EXPECT_CODE(NewPkcs11KeyProvider(nofile), Code::kNotFound);
  // Missing token.
  auto notoken = o;
  notoken.token_label = "no-such-token";
  auto nt = NewPkcs11KeyProvider(notoken);
  EXPECT_CODE(nt, Code::kNotFound);
  EXPECT_NE(nt.status().message().find("no initialised token"), std::string::npos);
  // Missing module; a file that is not a module.
  auto nomodule = o;
  nomodule.module_path = tmp.Sub("libnothing.so");
  EXPECT_CODE(NewPkcs11KeyProvider(nomodule), Code::kNotFound);
  auto notmodule = o;
  notmodule.module_path = token.pin_file();
  EXPECT_CODE(NewPkcs11KeyProvider(notmodule), Code::kInvalidArgument);
  // None of that made a key object or opened a store.
  auto objects = ListPkcs11Objects(o);
  ASSERT_OK(objects);
  EXPECT_TRUE(objects->empty());
  EXPECT_FALSE(std::filesystem::exists(db));
}

}  // namespace
}  // namespace callvault
