// Crash points (testing.md T3) in the retention sweep and the scheduled
// purge: a child process is killed with SIGKILL at each point; the parent
// reopens, checks that nothing is half-done in a way a re-run does not
// finish, re-runs, and checks the end state and the receipt chain.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "callvault/store.h"
#include "engine/kill_point.h"
#include "tests/testutil/testutil.h"

namespace callvault {
namespace {

using testutil::MakeCall;
using testutil::TestStore;

constexpr int64_t kDay = int64_t{86400} * 1'000'000;
constexpr int64_t kNow = 1'767'225'600'000'000 + 400 * kDay;
constexpr int kOld = 250;    // calls older than the retention: > one batch of 100
constexpr int kYoung = 20;

class ComplianceCrashTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK(ts.Open());
    ASSERT_OK(ts->CreateTenant({.tenant_id = "acme", .retention_days = 30}));
    ASSERT_OK(ts->CreateTenant({.tenant_id = "gone"}));
    std::vector<Call> calls;
    for (int i = 0; i < kOld + kYoung; ++i) {
      int64_t age = i < kOld ? 40 + i : 1 + (i - kOld);
      Call c = MakeCall("c" + std::to_string(i), kNow - age * kDay);
      c.transcript.resize(2);
      calls.push_back(std::move(c));
    }
    ASSERT_OK(ts->PutCalls("acme", calls));
    ASSERT_OK(ts->PutCall("gone", MakeCall("g", kNow)));
    ASSERT_OK(ts->ScheduleTenantPurge("gone", kNow - 1));
    ts.Close();
  }

  // Runs `work` in a child with `point` armed for its `hit`-th pass.
  // Returns true if the child died by SIGKILL, false if it finished.
  bool RunKilled(const std::string& point, int hit, void (*work)(Store*)) {
    pid_t pid = fork();
    if (pid == 0) {
      auto kp = NewFileKeyProvider(ts.keys);
      Options o = ts.options;
      o.key_provider = *kp;
      auto s = Store::Open(o, ts.db);
      if (!s.ok()) _exit(3);
      testing::ArmKillPoint(point, hit);
      work(s->get());
      _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    if (WIFEXITED(status)) {
      EXPECT_EQ(WEXITSTATUS(status), 0);
    }
    return WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
  }

  // After recovery and a re-run of both jobs: the old calls are gone, the
  // young ones and their records are whole, "gone" is purged, receipts and
  // audit chain verify.
  void CheckConverges() {
    ASSERT_OK(ts.Open());
    auto v = ts->Verify();
    ASSERT_OK(v);
    EXPECT_EQ(v->records_failed, 0u);
    ASSERT_OK(ts->RunScheduledPurges(kNow));
    ASSERT_OK(ts->RunRetention(kNow));
    EXPECT_EQ(*ts->CountCalls("acme"), static_cast<uint64_t>(kYoung));
    for (int i = kOld; i < kOld + kYoung; ++i) EXPECT_OK(ts->GetCall("acme", "c" + std::to_string(i)));
    EXPECT_CODE(ts->GetCall("acme", "c0"), Code::kNotFound);
    EXPECT_CODE(ts->GetCall("gone", "g"), Code::kTenantPurged);
    auto r = ts->ListReceipts();
    ASSERT_OK(r);
    EXPECT_OK(VerifyReceiptChain(*r, *ts->SigningPublicKey()));
    uint64_t removed = 0;
    int purges = 0;
    for (const auto& x : *r) {
      if (x.kind == "retention") removed += x.records;
      if (x.tenant_id == "gone" && x.kind == "tenant_purge") ++purges;
    }
    EXPECT_EQ(purges, 1);
    // Receipts of a sweep cover what it removed; a sweep killed before its
    // receipt leaves its removals without one (docs/operations.md).
    EXPECT_LE(removed, static_cast<uint64_t>(kOld));
    auto audit = ts->ListAudit();
    ASSERT_OK(audit);
    EXPECT_OK(VerifyAuditChain(*audit));
    ts.Close();
  }

  TestStore ts;
};

void Retention(Store* s) { (void)s->RunRetention(kNow); }
void Purges(Store* s) { (void)s->RunScheduledPurges(kNow); }

TEST_F(ComplianceCrashTest, RetentionSweepAfterEachBatch) {
  for (int hit = 1; hit <= 3; ++hit) {
    SCOPED_TRACE("retention.after_batch hit " + std::to_string(hit));
    TestStore copy;
    testutil::CopyTree(ts.tmp.path(), copy.tmp.path());
    std::swap(ts.db, copy.db);
    std::swap(ts.keys, copy.keys);
    ASSERT_TRUE(RunKilled("retention.after_batch", hit, Retention));
    ASSERT_OK(ts.Open());
    // Whole batches of 100 only: every call is either gone or complete.
    EXPECT_EQ(*ts->CountCalls("acme"), static_cast<uint64_t>(kOld + kYoung - std::min(100 * hit, kOld)));
    auto v = ts->Verify("acme");
    ASSERT_OK(v);
    EXPECT_EQ(v->records_failed, 0u);
    ts.Close();
    CheckConverges();
    std::swap(ts.db, copy.db);
    std::swap(ts.keys, copy.keys);
  }
}

TEST_F(ComplianceCrashTest, RetentionSweepBeforeReceipt) {
  ASSERT_TRUE(RunKilled("retention.before_receipt", 1, Retention));
  CheckConverges();
}

TEST_F(ComplianceCrashTest, ScheduledPurgeAtEveryStep) {
  for (const char* point : {"scheduled_purge.before_purge", "purge.after_registry_purging",
                            "keyring.after_new_kek", "keyring.after_write", "keyring.after_header",
                            "keyring.after_destroy_kek", "purge.after_shred", "purge.after_drop", "purge.after_receipt"}) {
    SCOPED_TRACE(point);
    TestStore copy;
    copy.Close();
    testutil::CopyTree(ts.tmp.path(), copy.tmp.path());
    std::swap(ts.db, copy.db);
    std::swap(ts.keys, copy.keys);
    ASSERT_TRUE(RunKilled(point, 1, Purges)) << point << " not reached";
    ASSERT_OK(ts.Open());
    auto info = ts->DescribeTenant("gone");
    ASSERT_OK(info);
    if (std::string(point) != "scheduled_purge.before_purge" &&
        std::string(point) != "purge.after_registry_purging" &&
        std::string(point) != "keyring.after_new_kek") {
      // Past the shred: recovery finished the purge.
      EXPECT_EQ(info->state, TenantState::kPurged);
    }
    ts.Close();
    CheckConverges();
    std::swap(ts.db, copy.db);
    std::swap(ts.keys, copy.keys);
  }
}

}  // namespace
}  // namespace callvault
