// Tenant key rotation (issue 15 item 4, docs/decisions/0036): every kind of
// row of the tenant comes back the same under the new key, the old key is
// gone (a copy of the store taken before the rotation no longer opens the
// tenant), writes during a rotation are kept, refusals, rotating twice.
#include <atomic>
#include <filesystem>
#include <map>
#include <mutex>
#include <thread>

#include "callvault/store.h"
#include "tests/rotation/tenant_view.h"
#include "tests/testutil/testutil.h"
#include "workload/workload.h"

namespace callvault {
namespace {

using testutil::MakeCall;
using testutil::TestStore;

constexpr int64_t kT0 = 1'767'225'600'000'000;
constexpr int kCalls = 80;

std::string CallId(int i) { return "call-" + std::to_string(i); }

using rotationtest::Snapshot;
using rotationtest::Take;
using rotationtest::WriteRecording;


class RotationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ts.options.dictionary_training_calls = 40;  // a dictionary, and records compressed with it
    ts.options.progress = [this](const Progress& p) {
      if (std::string_view(p.operation) == "rotate") progress.push_back(p);
    };
    ASSERT_OK(ts.Open());
    for (const char* t : {"acme", "other"}) ASSERT_OK(ts->CreateTenant({.tenant_id = t}));
  }

  // Calls (some with a second workspace, one deleted, one updated), a
  // dictionary, recordings across chunk boundaries and an empty one, a
  // tenant hold and a call hold, a pin: every kind of row.
  void Fill(const std::string& tenant) {
    for (int i = 0; i < kCalls; ++i) {
      Call c = MakeCall(CallId(i), kT0 + i * 1'000'000, tenant + std::to_string(i));
      if (i % 3 == 0) c.workspace_id = "ws-2";
      if (i % 5 == 0) c.transcript.clear();
      ASSERT_OK(ts->PutCall(tenant, c));
      // The dictionary is trained in the background (decision 0045): the
      // calls after the threshold are compressed with it, as before.
      if (i + 1 == static_cast<int>(ts.options.dictionary_training_calls)) {
        ASSERT_TRUE(testutil::WaitForDictionaryTraining(*ts.store));
      }
    }
    Call patch = MakeCall(CallId(7), kT0 + 7 * 1'000'000, tenant + "7");
    patch.title = "updated title";
    ASSERT_OK(ts->UpdateCall(tenant, CallId(7), kPartFields, patch));
    ASSERT_OK(ts->DeleteCall(tenant, CallId(9)));
    ASSERT_OK(WriteRecording(ts.store.get(), tenant, CallId(1), "rec-big",
                             workload::RandomBytes(11, 2 * kRecordingChunkBytes + 4321)));
    ASSERT_OK(WriteRecording(ts.store.get(), tenant, CallId(1), "rec-exact",
                             workload::RandomBytes(12, kRecordingChunkBytes)));
    ASSERT_OK(WriteRecording(ts.store.get(), tenant, CallId(2), "rec-empty", ""));
    ASSERT_OK(ts->PlaceHold(tenant, {.hold_id = "lit-1", .reason = "litigation"}));
    ASSERT_OK(ts->PlaceHold(tenant, {.hold_id = "lit-2", .reason = "one call", .call_id = CallId(3)}));
    ASSERT_OK(ts->SetCallPinned(tenant, CallId(4), true));
  }

  TestStore ts;
  std::vector<Progress> progress;  // "rotate" reports
};

TEST_F(RotationTest, EveryRowReadsBackUnderTheNewKey) {
  Fill("acme");
  Fill("other");
  const Snapshot before = Take(ts.store.get(), "acme");
  const Snapshot other_before = Take(ts.store.get(), "other");
  ASSERT_EQ(before.calls.size(), size_t{kCalls - 1});
  ASSERT_EQ(before.recordings.size(), 3u);
  ASSERT_EQ(before.holds.size(), 2u);
  ASSERT_FALSE(before.feed.empty());
  ASSERT_FALSE(before.by_workspace.empty());
  auto info = ts->DescribeTenant("acme");
  ASSERT_OK(info);
  ASSERT_EQ(info->key_version, 1u);
  auto old_page = ts->ReadChanges("acme", "", 5);
  ASSERT_OK(old_page);

  progress.clear();
  auto receipt = ts->RotateTenantKey("acme");
  ASSERT_OK(receipt);
  // Progress: a start (0), reports in between, one finished at the end.
  ASSERT_GE(progress.size(), 3u);
  EXPECT_EQ(progress.front().done, 0u);
  EXPECT_FALSE(progress.front().finished);
  EXPECT_TRUE(progress.back().finished);
  EXPECT_EQ(progress.back().done, progress.back().total);
  EXPECT_GT(progress.back().done, uint64_t{kCalls});
  for (size_t i = 1; i < progress.size(); ++i) {
    EXPECT_GE(progress[i].done, progress[i - 1].done);
    EXPECT_LE(progress[i].done, progress[i].total);
    EXPECT_EQ(progress[i].finished, i + 1 == progress.size());
  }
  EXPECT_STREQ(progress.front().unit, "rows");
  EXPECT_EQ(receipt->kind, "key_rotation");
  EXPECT_EQ(receipt->tenant_id, "acme");
  EXPECT_EQ(receipt->key_versions_destroyed, std::vector<uint32_t>{1});
  EXPECT_EQ(receipt->column_family, info->column_family);
  EXPECT_NE(receipt->kek_generation_retired, 0u);
  EXPECT_GT(receipt->kek_generation_current, receipt->kek_generation_retired);
  EXPECT_GT(receipt->records, uint64_t{kCalls});
  auto after_info = ts->DescribeTenant("acme");
  ASSERT_OK(after_info);
  EXPECT_EQ(after_info->key_version, 2u);
  EXPECT_EQ(after_info->internal_id, info->internal_id);
  EXPECT_NE(after_info->column_family, info->column_family);
  EXPECT_EQ(after_info->holds.size(), 1u);

  EXPECT_TRUE(Take(ts.store.get(), "acme") == before);
  EXPECT_TRUE(Take(ts.store.get(), "other") == other_before);
  // A token of the old key is refused, not misread.
  EXPECT_CODE(ts->ReadChanges("acme", old_page->next_token), Code::kInvalidArgument);
  // The receipt is in the chain; the whole store verifies.
  auto receipts = ts->ListReceipts();
  ASSERT_OK(receipts);
  ASSERT_FALSE(receipts->empty());
  EXPECT_EQ(receipts->back().kind, "key_rotation");
  auto pub = ts->SigningPublicKey();
  ASSERT_OK(pub);
  EXPECT_OK(VerifyReceiptChain(*receipts, *pub));
  auto report = ts->Verify();
  ASSERT_OK(report);
  EXPECT_EQ(report->records_failed, 0u);
  EXPECT_EQ(report->metadata_failed, 0u);
  EXPECT_TRUE(report->failures.empty()) << report->failures.front();
  auto audit = ts->ListAudit(0, "tenant_key_rotated");
  ASSERT_OK(audit);
  EXPECT_EQ(audit->size(), 1u);

  // Writes go on under the new key, and all of it survives a reopen.
  ASSERT_OK(ts->PutCall("acme", MakeCall("after", kT0 + 5'000'000'000, "after")));
  Snapshot now = Take(ts.store.get(), "acme");
  ASSERT_OK(ts.Reopen());
  EXPECT_TRUE(Take(ts.store.get(), "acme") == now);
  EXPECT_TRUE(Take(ts.store.get(), "other") == other_before);
}

TEST_F(RotationTest, ACopyTakenBeforeTheRotationNoLongerOpensTheTenant) {
  Fill("acme");
  ASSERT_OK(ts->PutCall("other", MakeCall("o-1", kT0, "other")));
  testutil::TempDir copy;
  ts.Close();
  testutil::CopyTree(ts.db, copy.Sub("db"));
  ASSERT_OK(ts.Open());
  ASSERT_OK(ts->RotateTenantKey("acme"));
  ts.Close();

  // The copy, opened with the current key directory: the tenant's rows
  // there are sealed under key version 1, which no key opens any more.
  Options o = ts.options;
  o.create_if_missing = false;
  auto old = Store::Open(o, copy.Sub("db"));
  ASSERT_OK(old);
  EXPECT_CODE((*old)->GetCall("acme", CallId(1)), Code::kCorruption);
  // The audit trail says why, for the operator.
  auto events = (*old)->ListAudit(0, "auth_failure");
  ASSERT_OK(events);
  bool said = false;
  for (const auto& e : *events) {
    said |= e.tenant_id == "acme" && e.detail.find("destroyed by a key rotation") != std::string::npos;
  }
  EXPECT_TRUE(said);
  // It stays refused, and other tenants are served.
  EXPECT_CODE((*old)->RotateTenantKey("acme"), Code::kCorruption);
  EXPECT_CODE((*old)->ReinstateTenant("acme"), Code::kFailedPrecondition);
  auto o1 = (*old)->GetCall("other", "o-1");
  ASSERT_OK(o1);
  EXPECT_EQ(o1->title, MakeCall("o-1", kT0, "other").title);
}

// A backup taken before a rotation restores every other tenant; the rotated
// one is refused, and the removals logged since the cut (in the key
// directory's tombstone log) do not stop the restore.
TEST_F(RotationTest, BackupTakenBeforeTheRotation) {
  for (int i = 0; i < 12; ++i) ASSERT_OK(ts->PutCall("acme", MakeCall(CallId(i), kT0 + i)));
  ASSERT_OK(ts->PutCall("other", MakeCall("o-1", kT0, "other")));
  ASSERT_OK(ts->PutCall("other", MakeCall("o-2", kT0, "other")));
  testutil::TempDir backups;
  ASSERT_OK(ts->Backup(backups.Sub("b")));
  ASSERT_OK(ts->DeleteCall("acme", CallId(10)));  // tombstones after the cut
  ASSERT_OK(ts->DeleteCall("other", "o-2"));
  ASSERT_OK(ts->RotateTenantKey("acme"));
  ts.Close();

  testutil::TempDir restored;
  Options o = ts.options;
  o.create_if_missing = false;
  auto report = Store::Restore(o, backups.Sub("b"), restored.Sub("db"));
  ASSERT_OK(report);
  // The report says so (the session-18 attack5: it said only that the
  // erasures were re-applied).
  EXPECT_EQ(report->quarantined_tenants, std::vector<std::string>{"acme"});
  auto st = Store::Open(o, restored.Sub("db"));
  ASSERT_OK(st);
  EXPECT_CODE((*st)->GetCall("acme", CallId(1)), Code::kCorruption);
  EXPECT_OK((*st)->GetCall("other", "o-1"));
  EXPECT_CODE((*st)->GetCall("other", "o-2"), Code::kNotFound);  // replayed
  // What is left of the tenant there can be purged.
  auto purged = (*st)->PurgeTenant("acme");
  ASSERT_OK(purged);
  EXPECT_CODE((*st)->GetCall("acme", CallId(1)), Code::kTenantPurged);
}

TEST_F(RotationTest, RotateTwiceAndRefusals) {
  Fill("acme");
  const Snapshot before = Take(ts.store.get(), "acme");
  auto r1 = ts->RotateTenantKey("acme");
  ASSERT_OK(r1);
  auto r2 = ts->RotateTenantKey("acme");
  ASSERT_OK(r2);
  EXPECT_EQ(r2->key_versions_destroyed, std::vector<uint32_t>{2});
  EXPECT_EQ(r2->sequence, r1->sequence + 1);
  EXPECT_EQ(ts->DescribeTenant("acme")->key_version, 3u);
  EXPECT_TRUE(Take(ts.store.get(), "acme") == before);
  ASSERT_OK(ts.Reopen());
  EXPECT_TRUE(Take(ts.store.get(), "acme") == before);

  EXPECT_CODE(ts->RotateTenantKey("nobody"), Code::kNotFound);
  EXPECT_CODE(ts->RotateTenantKey("bad id!"), Code::kInvalidArgument);
  ASSERT_OK(ts->PurgeTenant("other"));
  EXPECT_CODE(ts->RotateTenantKey("other"), Code::kTenantPurged);
  // A churned tenant keeps its data until its purge: rotated like any.
  ASSERT_OK(ts->CreateTenant({.tenant_id = "churned"}));
  ASSERT_OK(ts->PutCall("churned", MakeCall("c-1", kT0)));
  ASSERT_OK(ts->ScheduleTenantPurge("churned", kT0 + 1'000'000'000'000));
  ASSERT_OK(ts->RotateTenantKey("churned"));
  EXPECT_OK(ts->GetCall("churned", "c-1"));

  ts.Close();
  Options ro = ts.options;
  ro.read_only = true;
  ro.create_if_missing = false;
  auto st = Store::Open(ro, ts.db);
  ASSERT_OK(st);
  EXPECT_CODE((*st)->RotateTenantKey("acme"), Code::kNotSupported);
}

// A recording being written while the key rotates is not kept (its names
// were made under the old key); nothing of it is left behind.
TEST_F(RotationTest, RecordingWrittenAcrossARotationIsNotKept) {
  ASSERT_OK(ts->PutCall("acme", MakeCall(CallId(1), kT0)));
  auto w = ts->CreateRecording("acme", CallId(1), {.recording_id = "live", .content_type = "audio/wav"});
  ASSERT_OK(w);
  ASSERT_OK((*w)->Append(workload::RandomBytes(3, kRecordingChunkBytes + 10)));
  ASSERT_OK(ts->RotateTenantKey("acme"));
  ASSERT_OK((*w)->Append(workload::RandomBytes(4, 1000)));
  EXPECT_CODE((*w)->Finish(), Code::kNotFound);
  EXPECT_TRUE(ts->ListRecordings("acme", CallId(1))->empty());
  auto report = ts->Verify("acme");
  ASSERT_OK(report);
  EXPECT_TRUE(report->failures.empty()) << report->failures.front();
}

// Writers keep putting and updating the tenant's calls while it rotates;
// every acknowledged write reads back at its latest version afterwards.
TEST_F(RotationTest, WritesDuringTheRotationAreKept) {
  Fill("acme");
  ASSERT_OK(ts->ReleaseHold("acme", "lit-1"));  // a tenant hold would refuse the updates
  std::atomic<bool> stop{false};
  std::mutex mu;
  std::map<std::string, std::pair<uint64_t, std::string>> acked;  // call -> version, title
  std::atomic<int> errors{0};
  std::string first_error;
  std::vector<std::thread> writers;
  for (int w = 0; w < 3; ++w) {
    writers.emplace_back([&, w] {
      for (int n = 0; !stop.load() || n < 20; ++n) {
        const std::string id = "live-" + std::to_string(w) + "-" + std::to_string(n % 15);
        const std::string canary = "canary " + std::to_string(w) + " " + std::to_string(n);
        Call c = MakeCall(id, kT0 + n, canary);
        c.title = canary;
        auto r = ts->PutCall("acme", c);
        if (!r.ok()) {
          if (errors++ == 0) {
            std::lock_guard<std::mutex> l(mu);
            first_error = r.status().ToString();
          }
          continue;
        }
        std::lock_guard<std::mutex> l(mu);
        acked[id] = {r->version, canary};
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  auto r1 = ts->RotateTenantKey("acme");
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  auto r2 = ts->RotateTenantKey("acme");
  stop = true;
  for (auto& t : writers) t.join();
  ASSERT_OK(r1);
  ASSERT_OK(r2);
  EXPECT_EQ(errors.load(), 0) << first_error;
  ASSERT_EQ(acked.size(), 45u);
  for (const auto& [id, v] : acked) {
    auto c = ts->GetCall("acme", id);
    ASSERT_OK(c);
    EXPECT_EQ(c->version, v.first) << id;
    EXPECT_EQ(c->title, v.second) << id;
  }
  ASSERT_OK(ts.Reopen());
  for (const auto& [id, v] : acked) {
    auto c = ts->GetCall("acme", id);
    ASSERT_OK(c);
    EXPECT_EQ(c->version, v.first) << id;
  }
}

}  // namespace
}  // namespace callvault
