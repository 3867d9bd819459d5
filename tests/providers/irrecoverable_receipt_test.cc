// Purge receipts say when the retired KEK became irrecoverable: the purge
// time with the file provider, purge time + the window with a KMS-shaped
// provider that soft-deletes (the engine asks KeyProvider::
// IrrecoverableAfter; the value is signed into the receipt). And the CLI on
// a SoftHSM2 token: init, create, purge, `receipts list` showing
// IRRECOVERABLE_AFTER; a wrong PIN exits 77 without showing the PIN.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <sys/wait.h>

#include <chrono>
#include <cstdio>
#include <map>
#include <mutex>

#include "callvault/key_provider.h"
#include "callvault/store.h"
#include "tests/providers/softhsm.h"
#include "tests/testutil/process.h"
#include "tests/testutil/testutil.h"

namespace callvault {
namespace {

using testutil::TempDir;

int64_t NowMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The file provider, with destruction reported `window` later (as a KMS
// with soft delete reports its scheduled deletion date).
class WindowProvider final : public KeyProvider {
 public:
  WindowProvider(std::shared_ptr<KeyProvider> in, int64_t window) : in_(std::move(in)), window_(window) {}
  std::string Describe() const override { return in_->Describe(); }
  std::string LocalDirectory() const override { return in_->LocalDirectory(); }
  Status AcquireWriterLock() override { return in_->AcquireWriterLock(); }
  void ReleaseWriterLock() override { in_->ReleaseWriterLock(); }
  Result<std::vector<uint32_t>> ListKeks() override { return in_->ListKeks(); }
  Status CreateKek(uint32_t g) override { return in_->CreateKek(g); }
  Status DestroyKek(uint32_t g) override { return in_->DestroyKek(g); }
  Result<int64_t> IrrecoverableAfter(uint32_t, int64_t destroyed_at) override {
    return destroyed_at + window_;
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
};

Receipt PurgeOne(const std::shared_ptr<KeyProvider>& kp, const std::string& db, int64_t* before,
                 int64_t* after, std::string* pubkey, std::vector<Receipt>* all) {
  auto s = Store::Open(testutil::DefaultOptions(kp), db);
  EXPECT_OK(s);
  if (!s.ok()) return {};
  EXPECT_OK((*s)->CreateTenant({.tenant_id = "acme"}));
  EXPECT_OK((*s)->PutCall("acme", testutil::MakeCall("call-1", 1700000000000000)));
  *before = NowMicros();
  auto r = (*s)->PurgeTenant("acme");
  *after = NowMicros();
  EXPECT_OK(r);
  auto pk = (*s)->SigningPublicKey();
  EXPECT_OK(pk);
  if (pk.ok()) *pubkey = *pk;
  auto list = (*s)->ListReceipts();
  EXPECT_OK(list);
  if (list.ok()) *all = *list;
  return r.ok() ? *r : Receipt{};
}

TEST(IrrecoverableReceipt, FileProviderPurgeIsIrrecoverableAtOnce) {
  TempDir tmp;
  auto kp = NewFileKeyProvider(tmp.Sub("keys"));
  ASSERT_OK(kp);
  int64_t before = 0, after = 0;
  std::string pk;
  std::vector<Receipt> all;
  Receipt r = PurgeOne(*kp, tmp.Sub("db"), &before, &after, &pk, &all);
  EXPECT_NE(r.kek_generation_retired, 0u);
  EXPECT_GE(r.irrecoverable_after, before);
  EXPECT_LE(r.irrecoverable_after, after);
  // Signed: the chain verifies, and an edit of the field is caught.
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].irrecoverable_after, r.irrecoverable_after);  // read back from the store
  // A purge whose shard opened counts what it dropped: no counts_unknown.
  EXPECT_FALSE(r.counts_unknown);
  EXPECT_EQ(r.Canonical().find("counts_unknown"), std::string::npos);
  EXPECT_OK(VerifyReceiptChain(all, pk));
  all[0].irrecoverable_after -= 1;
  EXPECT_CODE(VerifyReceiptChain(all, pk), Code::kCorruption);
}

TEST(IrrecoverableReceipt, SoftDeleteWindowIsAddedToThePurgeTime) {
  TempDir tmp;
  auto file = NewFileKeyProvider(tmp.Sub("keys"));
  ASSERT_OK(file);
  constexpr int64_t kWindow = 30LL * 24 * 3600 * 1000000;  // GCP KMS's default
  auto kp = std::make_shared<WindowProvider>(*file, kWindow);
  int64_t before = 0, after = 0;
  std::string pk;
  std::vector<Receipt> all;
  Receipt r = PurgeOne(kp, tmp.Sub("db"), &before, &after, &pk, &all);
  EXPECT_GE(r.irrecoverable_after, before + kWindow);
  EXPECT_LE(r.irrecoverable_after, after + kWindow);
  EXPECT_OK(VerifyReceiptChain(all, pk));
}

TEST(IrrecoverableReceipt, ReceiptsWithoutTheFieldKeepTheirCanonicalForm) {
  Receipt r;
  r.sequence = 1;
  r.kind = "retention";
  EXPECT_EQ(r.Canonical().find("irrecoverable_after"), std::string::npos);
  r.irrecoverable_after = 5;
  EXPECT_NE(r.Canonical().find("\"irrecoverable_after\":5"), std::string::npos);
}

// --- The CLI on a SoftHSM2 token -------------------------------------------

int RunCli(const std::string& args, std::string* out, std::string* err = nullptr) {
  const std::string errfile = ::testing::TempDir() + "/cv_cli_err";
  const int code = testutil::RunShell(std::string(CALLVAULT_BIN) + " " + args + " 2>" + errfile, out);
  if (err != nullptr) *err = testutil::ReadFile(errfile);
  return code;
}

TEST(IrrecoverableReceipt, CliOnSoftHsmShowsIrrecoverableAfter) {
  TempDir tmp;
  testutil::SoftHsmToken token(tmp.path(), "cli-token");
  ASSERT_TRUE(token.ok());
  const std::string flags = "--db " + tmp.Sub("db") + " --keys " + tmp.Sub("state") +
                            " --pkcs11-module " + testutil::kSoftHsmModule +
                            " --pkcs11-token cli-token --pkcs11-pin-file " + token.pin_file();
  std::string out, err;
  ASSERT_EQ(RunCli(flags + " init", &out, &err), 0) << err;
  out.clear();
  ASSERT_EQ(RunCli(flags + " tenant create acme", &out, &err), 0) << err;
  out.clear();
  ASSERT_EQ(RunCli(flags + " tenant purge acme --yes", &out, &err), 0) << err;
  EXPECT_NE(out.find("irrecoverable_after"), std::string::npos) << out;
  out.clear();
  ASSERT_EQ(RunCli(flags + " receipts list", &out, &err), 0) << err;
  EXPECT_NE(out.find("IRRECOVERABLE_AFTER"), std::string::npos) << out;
  EXPECT_NE(out.find("tenant_purge"), std::string::npos) << out;
  out.clear();
  ASSERT_EQ(RunCli(flags + " receipts verify", &out, &err), 0) << out << err;
  out.clear();
  ASSERT_EQ(RunCli(flags + " --json receipts list", &out, &err), 0) << err;
  EXPECT_NE(out.find("\"irrecoverable_after\": "), std::string::npos) << out;
  // keys status (issue 15 item 5): the token named, one KEK object left,
  // the purged tenant's key listed as destroyed and irrecoverable.
  out.clear();
  ASSERT_EQ(RunCli(flags + " --key-provider pkcs11 --json keys status", &out, &err), 0) << err;
  auto status = nlohmann::json::parse(out, nullptr, /*allow_exceptions=*/false);
  ASSERT_FALSE(status.is_discarded()) << out;
  EXPECT_EQ(status["provider"].get<std::string>().rfind("pkcs11:cli-token@", 0), 0u) << out;
  EXPECT_EQ(status["kek_generations"].size(), 1u) << out;
  ASSERT_EQ(status["destroyed"].size(), 1u) << out;
  EXPECT_EQ(status["destroyed"][0]["tenant_id"], "acme");
  EXPECT_EQ(status["destroyed"][0]["kind"], "tenant_purge");
  EXPECT_EQ(status["destroyed"][0]["state"], "irrecoverable");
  // The store does not open with key files, nor with a wrong PIN (exit 77,
  // key_error), and the PIN is not echoed.
  out.clear();
  EXPECT_EQ(RunCli("--db " + tmp.Sub("db") + " --keys " + tmp.Sub("state") + " tenant list", &out,
                   &err),
            77)
      << err;
  ::setenv("CV_CLI_WRONG_PIN", "424242", 1);
  const std::string wrong = "--db " + tmp.Sub("db") + " --keys " + tmp.Sub("state") +
                            " --pkcs11-module " + testutil::kSoftHsmModule +
                            " --pkcs11-token cli-token --pkcs11-pin-env CV_CLI_WRONG_PIN";
  out.clear();
  EXPECT_EQ(RunCli(wrong + " tenant list", &out, &err), 77) << err;
  EXPECT_NE(err.find("refused the PIN"), std::string::npos) << err;
  EXPECT_EQ(err.find("424242"), std::string::npos) << err;
}

}  // namespace
}  // namespace callvault
