// The compliance lifecycle: churn with a grace period, retention with
// workspace overrides and pins, legal holds, receipts, the audit trail and
// data residency.
#include <atomic>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include "callvault/store.h"
#include "tests/testutil/testutil.h"

namespace callvault {
namespace {

using testutil::MakeCall;
using testutil::TestStore;

constexpr int64_t kDay = int64_t{86400} * 1'000'000;
constexpr int64_t kNow = 1'767'225'600'000'000 + 400 * kDay;  // 2027-02-05

class ComplianceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ts.options.audit_callback = [this](const AuditEvent& e) {
      std::lock_guard<std::mutex> l(mu);
      seen.push_back(e.kind);
    };
    ASSERT_OK(ts.Open());
    ASSERT_OK(ts->CreateTenant({.tenant_id = "acme", .retention_days = 90}));
    // Calls 10, 50, 100, 200 days old, in two workspaces.
    for (int age : {10, 50, 100, 200}) {
      for (const char* ws : {"ws-a", "ws-b"}) {
        Call c = MakeCall(std::string(ws) + "-" + std::to_string(age), kNow - age * kDay);
        c.workspace_id = ws;
        ASSERT_OK(ts->PutCall("acme", c));
      }
    }
  }
  bool Has(const std::string& id) { return ts->GetCall("acme", id, kPartMetadata).ok(); }
  size_t Seen(const std::string& kind) {
    std::lock_guard<std::mutex> l(mu);
    return static_cast<size_t>(std::count(seen.begin(), seen.end(), kind));
  }

  TestStore ts;
  std::mutex mu;
  std::vector<std::string> seen;
};

TEST_F(ComplianceTest, RetentionRemovesExpiredCallsWithOverridesAndReceipt) {
  ASSERT_OK(ts->SetWorkspaceRetention("acme", "ws-b", 30));
  auto dry = ts->RunRetention(kNow, /*dry_run=*/true);
  ASSERT_OK(dry);
  EXPECT_EQ(dry->calls_removed, 5u);  // ws-a: 100, 200; ws-b: 50, 100, 200
  EXPECT_TRUE(Has("ws-a-200"));
  auto run = ts->RunRetention(kNow);
  ASSERT_OK(run);
  EXPECT_EQ(run->calls_removed, 5u);
  ASSERT_EQ(run->receipts.size(), 1u);
  EXPECT_EQ(run->receipts[0].kind, "retention");
  EXPECT_EQ(run->receipts[0].records, 5u);
  EXPECT_EQ(run->receipts[0].region, "eu-west");
  for (const char* id : {"ws-a-10", "ws-a-50", "ws-b-10"}) EXPECT_TRUE(Has(id)) << id;
  for (const char* id : {"ws-a-100", "ws-a-200", "ws-b-50", "ws-b-100", "ws-b-200"}) EXPECT_FALSE(Has(id)) << id;
  EXPECT_EQ(*ts->CountCalls("acme"), 3u);
  auto again = ts->RunRetention(kNow);
  ASSERT_OK(again);
  EXPECT_EQ(again->calls_removed, 0u);
  EXPECT_EQ(Seen("retention_sweep"), 1u);
  auto v = ts->Verify("acme");
  ASSERT_OK(v);
  EXPECT_EQ(v->records_failed, 0u);
}

TEST_F(ComplianceTest, RetentionZeroKeepsAndOverrideCanExempt) {
  ASSERT_OK(ts->SetRetention("acme", 0));
  ASSERT_OK(ts->SetWorkspaceRetention("acme", "ws-a", 60));
  auto run = ts->RunRetention(kNow);
  ASSERT_OK(run);
  EXPECT_EQ(run->calls_removed, 2u);  // ws-a 100, 200 only
  EXPECT_TRUE(Has("ws-b-200"));
  ASSERT_OK(ts->SetWorkspaceRetention("acme", "ws-a", std::nullopt));
  auto info = ts->DescribeTenant("acme");
  ASSERT_OK(info);
  EXPECT_TRUE(info->workspace_retention.empty());
}

TEST_F(ComplianceTest, RetentionLeavesPinnedAndHeldCalls) {
  ASSERT_OK(ts->SetCallPinned("acme", "ws-a-200", true));
  ASSERT_OK(ts->PlaceHold("acme", {.hold_id = "lit-1", .reason = "litigation", .call_id = "ws-b-200"}));
  auto run = ts->RunRetention(kNow);
  ASSERT_OK(run);
  EXPECT_EQ(run->calls_removed, 2u);
  EXPECT_EQ(run->calls_kept_pinned, 1u);
  EXPECT_EQ(run->calls_kept_held, 1u);
  EXPECT_TRUE(Has("ws-a-200"));
  EXPECT_TRUE(Has("ws-b-200"));
  // Released, the held call goes at the next run; unpinned, the pinned one.
  ASSERT_OK(ts->ReleaseHold("acme", "lit-1"));
  ASSERT_OK(ts->SetCallPinned("acme", "ws-a-200", false));
  run = ts->RunRetention(kNow);
  ASSERT_OK(run);
  EXPECT_EQ(run->calls_removed, 2u);
  EXPECT_FALSE(Has("ws-a-200"));
  EXPECT_FALSE(Has("ws-b-200"));
}

TEST_F(ComplianceTest, TenantHoldBlocksPurgeRetentionDeleteAndErase) {
  ASSERT_OK(ts->PlaceHold("acme", {.hold_id = "h1", .reason = "regulator request"}));
  EXPECT_CODE(ts->PlaceHold("acme", {.hold_id = "h1"}), Code::kAlreadyExists);
  EXPECT_CODE(ts->PurgeTenant("acme"), Code::kFailedPrecondition);
  EXPECT_CODE(ts->DeleteCall("acme", "ws-a-10"), Code::kFailedPrecondition);
  EXPECT_CODE(ts->Erase("acme", {.subject = "alice@example.com", .max_calls = 100}), Code::kFailedPrecondition);
  auto run = ts->RunRetention(kNow);
  ASSERT_OK(run);
  EXPECT_EQ(run->tenants_held, 1u);
  EXPECT_EQ(run->calls_removed, 0u);
  ASSERT_OK(ts->ScheduleTenantPurge("acme", kNow - 1));
  auto purges = ts->RunScheduledPurges(kNow);
  ASSERT_OK(purges);
  EXPECT_TRUE(purges->empty());
  EXPECT_EQ(*ts->CountCalls("acme"), 8u);
  auto holds = ts->ListHolds("acme");
  ASSERT_OK(holds);
  ASSERT_EQ(holds->size(), 1u);
  EXPECT_EQ((*holds)[0].reason, "regulator request");
  // Released: the blocked purge proceeds at the next run.
  ASSERT_OK(ts->ReleaseHold("acme", "h1"));
  EXPECT_CODE(ts->ReleaseHold("acme", "h1"), Code::kNotFound);
  purges = ts->RunScheduledPurges(kNow);
  ASSERT_OK(purges);
  ASSERT_EQ(purges->size(), 1u);
  EXPECT_CODE(ts->GetCall("acme", "ws-a-10"), Code::kTenantPurged);
}

TEST_F(ComplianceTest, CallHoldBlocksDeleteAndTenantPurge) {
  ASSERT_OK(ts->PlaceHold("acme", {.hold_id = "c1", .call_id = "ws-a-10"}));
  EXPECT_CODE(ts->PlaceHold("acme", {.hold_id = "c2", .call_id = "nope"}), Code::kNotFound);
  EXPECT_CODE(ts->DeleteCall("acme", "ws-a-10"), Code::kFailedPrecondition);
  EXPECT_OK(ts->DeleteCall("acme", "ws-b-10"));
  EXPECT_CODE(ts->PurgeTenant("acme"), Code::kFailedPrecondition);
  ASSERT_OK(ts->ReleaseHold("acme", "c1"));
  EXPECT_OK(ts->DeleteCall("acme", "ws-a-10"));
  EXPECT_OK(ts->PurgeTenant("acme"));
}

TEST_F(ComplianceTest, ChurnRefusesWritesAndCanBeCancelledBeforeDeadline) {
  int64_t clock = kNow;
  ts.Close();
  ts.options.clock = [&clock] { return clock; };
  ts.options.allow_reads_after_churn = true;
  ASSERT_OK(ts.Open());
  ASSERT_OK(ts->ScheduleTenantPurge("acme", kNow + 30 * kDay));
  EXPECT_CODE(ts->PutCall("acme", MakeCall("new", kNow)), Code::kFailedPrecondition);
  EXPECT_OK(ts->GetCall("acme", "ws-a-10"));
  auto info = ts->DescribeTenant("acme");
  ASSERT_OK(info);
  EXPECT_EQ(info->purge_at, kNow + 30 * kDay);
  EXPECT_EQ(info->churned_at, kNow);
  // Before the deadline nothing is purged; cancelling keeps everything.
  EXPECT_TRUE(ts->RunScheduledPurges(kNow + 29 * kDay)->empty());
  clock = kNow + 29 * kDay;
  ASSERT_OK(ts->CancelTenantPurge("acme"));
  EXPECT_CODE(ts->CancelTenantPurge("acme"), Code::kFailedPrecondition);
  EXPECT_OK(ts->PutCall("acme", MakeCall("new", kNow)));
  EXPECT_EQ(*ts->CountCalls("acme"), 9u);
  EXPECT_TRUE(ts->RunScheduledPurges(kNow + 31 * kDay)->empty());
  // Scheduled again; after the deadline it can't be cancelled and is purged.
  ASSERT_OK(ts->ScheduleTenantPurge("acme", kNow + 30 * kDay));
  clock = kNow + 30 * kDay;
  EXPECT_CODE(ts->CancelTenantPurge("acme"), Code::kFailedPrecondition);
  ASSERT_OK(ts.Reopen());  // the schedule is durable
  auto purged = ts->RunScheduledPurges(clock);
  ASSERT_OK(purged);
  ASSERT_EQ(purged->size(), 1u);
  EXPECT_EQ((*purged)[0].tenant_id, "acme");
  EXPECT_CODE(ts->GetCall("acme", "ws-a-10"), Code::kTenantPurged);
}

TEST_F(ComplianceTest, ChurnCanRefuseReads) {
  ts.Close();
  ts.options.allow_reads_after_churn = false;
  ASSERT_OK(ts.Open());
  ASSERT_OK(ts->ScheduleTenantPurge("acme", kNow + kDay));
  EXPECT_CODE(ts->GetCall("acme", "ws-a-10"), Code::kFailedPrecondition);
  EXPECT_CODE(ts->ListCalls("acme", {}), Code::kFailedPrecondition);
}

TEST_F(ComplianceTest, BackgroundRunnerPurgesAtDeadline) {
  std::atomic<int64_t> clock{kNow};
  ts.Close();
  ts.options.clock = [&clock] { return clock.load(); };
  ts.options.background_interval_seconds = 1;
  ASSERT_OK(ts.Open());
  ASSERT_OK(ts->ScheduleTenantPurge("acme", kNow + kDay));
  clock = kNow + 2 * kDay;
  for (int i = 0; i < 50 && ts->DescribeTenant("acme")->state != TenantState::kPurged; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(ts->DescribeTenant("acme")->state, TenantState::kPurged);
}

TEST_F(ComplianceTest, ReceiptChainDetectsEveryKindOfTampering) {
  ASSERT_OK(ts->CreateTenant({.tenant_id = "b"}));
  ASSERT_OK(ts->CreateTenant({.tenant_id = "c"}));
  ASSERT_OK(ts->RunRetention(kNow));
  ASSERT_OK(ts->PurgeTenant("b"));
  ASSERT_OK(ts->Erase("acme", {.subject = "bob@customer.example", .mode = EraseMode::kRedact}));
  ASSERT_OK(ts->PurgeTenant("c"));
  auto r = ts->ListReceipts();
  ASSERT_OK(r);
  ASSERT_EQ(r->size(), 4u);
  auto pk = ts->SigningPublicKey();
  ASSERT_OK(pk);
  ASSERT_OK(VerifyReceiptChain(*r, *pk));
  for (const auto& x : *r) {
    EXPECT_EQ(x.Canonical().find("bob@"), std::string::npos);
    EXPECT_EQ(x.region, "eu-west");
    EXPECT_FALSE(x.store_id.empty());
  }
  auto expect_bad = [&](std::vector<Receipt> v, const std::string& position) {
    Status s = VerifyReceiptChain(v, *pk);
    EXPECT_EQ(s.code(), Code::kCorruption);
    EXPECT_NE(s.message().find("position " + position), std::string::npos) << s.ToString();
  };
  auto edited = *r;
  edited[1].tenant_id = "someone-else";
  expect_bad(edited, "2");
  auto removed = *r;
  removed.erase(removed.begin() + 2);
  expect_bad(removed, "3");
  auto reordered = *r;
  std::swap(reordered[1], reordered[2]);
  expect_bad(reordered, "2");
  auto forged = *r;
  forged[3].signature[0] = forged[3].signature[0] == 'a' ? 'b' : 'a';
  expect_bad(forged, "4");
  std::string other_key(32, '\x07');
  EXPECT_CODE(VerifyReceiptChain(*r, other_key), Code::kCorruption);
}

TEST_F(ComplianceTest, AuditTrailRecordsEventsAndDetectsTampering) {
  ASSERT_OK(ts->PlaceHold("acme", {.hold_id = "h"}));
  ASSERT_OK(ts->ReleaseHold("acme", "h"));
  ASSERT_OK(ts->ScheduleTenantPurge("acme", kNow * 2));
  ASSERT_OK(ts->CancelTenantPurge("acme"));
  ASSERT_OK(ts->PurgeTenant("acme"));
  ASSERT_OK(ts.Reopen());
  auto events = ts->ListAudit();
  ASSERT_OK(events);
  std::vector<std::string> kinds;
  for (const auto& e : *events) kinds.push_back(e.kind);
  for (const char* k : {"tenant_created", "hold_placed", "hold_released", "tenant_churned", "churn_cancelled",
                        "key_rotation", "tenant_purged"}) {
    EXPECT_NE(std::find(kinds.begin(), kinds.end(), k), kinds.end()) << k;
  }
  EXPECT_OK(VerifyAuditChain(*events));
  auto edited = *events;
  edited[1].detail = "nothing happened";
  EXPECT_CODE(VerifyAuditChain(edited), Code::kCorruption);
  auto removed = *events;
  removed.erase(removed.begin() + 1);
  EXPECT_CODE(VerifyAuditChain(removed), Code::kCorruption);
  auto only = ts->ListAudit(0, "tenant_purged");
  ASSERT_OK(only);
  EXPECT_EQ(only->size(), 1u);
  EXPECT_GE(Seen("tenant_purged"), 1u);
}

TEST_F(ComplianceTest, KeyringFailureReachesCallbackAndAuditLog) {
  ts.Close();
  // Damage the newest keyring: open fails with kKeyError.
  std::string newest;
  for (const auto& f : std::filesystem::directory_iterator(ts.keys)) {
    std::string name = f.path().filename();
    if (name.rfind("KEYRING-", 0) == 0) newest = f.path();
  }
  ASSERT_FALSE(newest.empty());
  std::string good = testutil::ReadFile(newest);
  std::string bad = good;
  bad[bad.size() - 5] ^= 1;
  { std::ofstream(newest, std::ios::binary | std::ios::trunc) << bad; }
  EXPECT_CODE(ts.Open(), Code::kKeyError);
  EXPECT_EQ(Seen("keyring_auth_failure"), 1u);
  { std::ofstream(newest, std::ios::binary | std::ios::trunc) << good; }
  ASSERT_OK(ts.Open());
  auto events = ts->ListAudit(0, "keyring_auth_failure");
  ASSERT_OK(events);
  EXPECT_EQ(events->size(), 1u);
  EXPECT_OK(VerifyAuditChain(*ts->ListAudit()));
}

TEST_F(ComplianceTest, DataResidency) {
  EXPECT_CODE(ts->CreateTenant({.tenant_id = "us-tenant", .region = "us-east"}), Code::kFailedPrecondition);
  auto stats = ts->Stats();
  ASSERT_OK(stats);
  EXPECT_EQ(stats->region, "eu-west");
  ts.Close();
  ts.options.region = "us-east";
  EXPECT_CODE(ts.Open(), Code::kFailedPrecondition);
}

}  // namespace
}  // namespace callvault

#include <rocksdb/db.h>

namespace callvault {
namespace {

// A receipt removed behind the store's back shows as a gap at its position.
TEST_F(ComplianceTest, DeletedReceiptIsReportedAtItsPosition) {
  ASSERT_OK(ts->CreateTenant({.tenant_id = "b"}));
  ASSERT_OK(ts->CreateTenant({.tenant_id = "c"}));
  ASSERT_OK(ts->PurgeTenant("b"));
  ASSERT_OK(ts->PurgeTenant("c"));
  ASSERT_OK(ts->RunRetention(kNow));
  std::string pk = *ts->SigningPublicKey();
  const std::string meta = ts->MetaPath();
  ts.Close();
  {
    rocksdb::DB* raw = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(rocksdb::Options(), meta, &raw).ok());
    std::string key = "Q";
    for (int i = 7; i >= 0; --i) key.push_back(static_cast<char>(i == 0 ? 2 : 0));  // sequence 2
    ASSERT_TRUE(raw->Delete(rocksdb::WriteOptions(), key).ok());
    delete raw;
  }
  ASSERT_OK(ts.Open());
  auto r = ts->ListReceipts();
  ASSERT_OK(r);
  ASSERT_EQ(r->size(), 2u);
  Status s = VerifyReceiptChain(*r, pk);
  EXPECT_EQ(s.code(), Code::kCorruption);
  EXPECT_NE(s.message().find("position 2"), std::string::npos) << s.ToString();
}

}  // namespace
}  // namespace callvault

namespace callvault {
namespace {

TEST_F(ComplianceTest, HoldAndPinRowsVerifyAndPinGoesWithItsCall) {
  ASSERT_OK(ts->SetCallPinned("acme", "ws-a-200", true));
  ASSERT_OK(ts->PlaceHold("acme", {.hold_id = "h", .call_id = "ws-b-200"}));
  auto v = ts->Verify("acme");
  ASSERT_OK(v);
  EXPECT_EQ(v->records_failed, 0u) << ::testing::PrintToString(v->failures);
  // The pin is deleted with its call: a new call under the same id is not pinned.
  ASSERT_OK(ts->DeleteCall("acme", "ws-a-200"));
  Call again = MakeCall("ws-a-200", kNow - 200 * kDay);
  ASSERT_OK(ts->PutCall("acme", again));
  auto run = ts->RunRetention(kNow);
  ASSERT_OK(run);
  EXPECT_EQ(run->calls_kept_pinned, 0u);
  EXPECT_FALSE(Has("ws-a-200"));
}

TEST_F(ComplianceTest, ReopensWithAChurnedTenantWhenReadsAreRefused) {
  ts.Close();
  ts.options.allow_reads_after_churn = false;
  ASSERT_OK(ts.Open());
  ASSERT_OK(ts->ScheduleTenantPurge("acme", kNow * 2));
  ASSERT_OK(ts.Reopen());
  EXPECT_CODE(ts->GetCall("acme", "ws-a-10"), Code::kFailedPrecondition);
}

TEST_F(ComplianceTest, DeadlinePassedCannotBeMoved) {
  int64_t clock = kNow;
  ts.Close();
  ts.options.clock = [&clock] { return clock; };
  ASSERT_OK(ts.Open());
  ASSERT_OK(ts->ScheduleTenantPurge("acme", kNow + kDay));
  clock = kNow + 2 * kDay;
  EXPECT_CODE(ts->ScheduleTenantPurge("acme", kNow + 10 * kDay), Code::kFailedPrecondition);
  EXPECT_CODE(ts->CancelTenantPurge("acme"), Code::kFailedPrecondition);
}

// A sweep and hold changes on the same tenant at once: no deadlock (the
// sweep releases the tenant before it takes the store's admin lock).
TEST_F(ComplianceTest, RetentionAndHoldsConcurrently) {
  std::vector<Call> calls;
  for (int i = 0; i < 300; ++i) calls.push_back(MakeCall("x" + std::to_string(i), kNow - (100 + i) * kDay));
  ASSERT_OK(ts->PutCalls("acme", calls));
  std::atomic<bool> done{false};
  std::thread holder([&] {
    for (int i = 0; !done; ++i) {
      std::string id = "h" + std::to_string(i);
      EXPECT_OK(ts->PlaceHold("acme", {.hold_id = id, .call_id = "ws-a-10"}));
      EXPECT_OK(ts->ReleaseHold("acme", id));
    }
  });
  for (int i = 0; i < 3; ++i) EXPECT_OK(ts->RunRetention(kNow));
  done = true;
  holder.join();
  EXPECT_FALSE(Has("x0"));
}

}  // namespace
}  // namespace callvault
