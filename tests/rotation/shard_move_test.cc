// Moving a tenant to another shard of its store (issue 12 item 3,
// docs/decisions/0057): a key rotation whose copy is made in the target
// shard. Every row (calls, indexes, recordings, a dictionary, holds, pins,
// the change feed) reads the same afterwards, also what writers put while
// the copy ran; the tenant is in the new shard (DescribeTenant, Stats, the
// shards' column families) and its old family and key are gone (a copy of
// the store taken before the move no longer opens it); refusals change
// nothing. Crashes at every point of a move: crash_points_test.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "callvault/store.h"
#include "engine/kill_point.h"
#include "engine/rotate_internal.h"
#include "tests/rotation/tenant_view.h"
#include "tests/testutil/process.h"
#include "tests/testutil/testutil.h"
#include "workload/workload.h"

namespace callvault {
namespace {

using testutil::MakeCall;
using testutil::TestStore;

constexpr int64_t kT0 = 1'767'225'600'000'000;
constexpr int kCalls = 80;

std::string CallId(int i) { return "call-" + std::to_string(i); }

using rotationtest::Ids;
using rotationtest::WriteRecording;
using Snapshot = rotationtest::Snapshot;

// The rotation tests' view, plus every other query of the query API.
Snapshot Take(Store* st, const std::string& tenant) {
  Snapshot s = rotationtest::Take(st, tenant);
  // Every other filter of ListQuery, oldest first, a time range, the
  // count under a filter, a batch get and a transcript window.
  auto query = [&](const std::string& name, ListQuery q) {
    std::string line = name + ":";
    for (const auto& id : Ids(st, tenant, q)) line += " " + id;
    auto counted = st->CountCalls(tenant, q);
    EXPECT_OK(counted);
    if (counted.ok()) line += " count=" + std::to_string(*counted);
    s.queries.push_back(line);
  };
  ListQuery q;
  q.crm = CrmRef{"salesforce", CrmObjectType::kOpportunity, "006ABC"};
  query("crm", q);
  q = ListQuery{};
  q.newest_first = false;
  q.from = kT0 + 10 * 1'000'000;
  q.to = kT0 + 600 * 1'000'000;
  query("range", q);
  q = ListQuery{};
  q.tags = {"renewal"};
  q.direction = Direction::kConference;
  q.scope = CallScope::kExternal;
  q.min_duration_ms = 1000;
  query("tags", q);
  q = ListQuery{};
  q.updated_since = 1;
  q.participants = {"+14155550100"};
  query("phone", q);
  std::vector<std::string> some = {CallId(1), CallId(9), CallId(40), "phase1-3", "nobody"};
  auto batch = st->GetCalls(tenant, some, kPartAll);
  EXPECT_OK(batch);
  if (batch.ok()) {
    for (const auto& r : *batch) {
      s.queries.push_back(r.ok() ? "get " + r->call_id + " " + std::to_string(r->version) + " " +
                                       r->title
                                 : "get " + std::string(CodeName(r.status().code())));
    }
  }
  auto window = st->GetTranscriptWindow(tenant, CallId(1), 3000, 12000);
  if (window.ok()) {
    for (const auto& seg : *window) s.queries.push_back("window " + seg.text);
  } else {
    s.queries.push_back("window " + std::string(CodeName(window.status().code())));
  }
  return s;
}

class ShardMoveTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ts.options.dictionary_training_calls = 40;  // a dictionary, and records compressed with it
    ts.options.max_tenants_per_shard = 2;
    ASSERT_OK(ts.Open());
    // "acme" and "other" in shard 0, "third" opens shard 1.
    for (const char* t : {"acme", "other", "third"}) ASSERT_OK(ts->CreateTenant({.tenant_id = t}));
    ASSERT_EQ(ShardOf("acme"), 0u);
    ASSERT_EQ(ShardOf("third"), 1u);
  }
  void TearDown() override { testing::SetRotationHookForTest(nullptr); }

  uint32_t ShardOf(const std::string& tenant) {
    auto d = ts->DescribeTenant(tenant);
    EXPECT_OK(d);
    return d.ok() ? d->shard : 999;
  }

  // As rotation_test: every kind of row.
  void Fill(const std::string& tenant) {
    for (int i = 0; i < kCalls; ++i) {
      Call c = MakeCall(CallId(i), kT0 + i * 1'000'000, tenant + std::to_string(i));
      if (i % 3 == 0) c.workspace_id = "ws-2";
      if (i % 5 == 0) c.transcript.clear();
      ASSERT_OK(ts->PutCall(tenant, c));
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
    ASSERT_OK(WriteRecording(ts.store.get(), tenant, CallId(2), "rec-empty", ""));
    ASSERT_OK(ts->PlaceHold(tenant, {.hold_id = "lit-2", .reason = "one call", .call_id = CallId(3)}));
    ASSERT_OK(ts->SetCallPinned(tenant, CallId(4), true));
  }

  // The column families of every shard, read from the shards' files (the
  // store closed).
  std::map<uint32_t, std::set<std::string>> Families() {
    std::map<uint32_t, std::set<std::string>> out;
    for (uint32_t i = 0;; ++i) {
      char sub[32];
      std::snprintf(sub, sizeof sub, "/shards/%04u", i);
      const std::string dir = ts.db + sub;
      if (!std::filesystem::exists(dir)) break;
      std::vector<std::string> names;
      EXPECT_TRUE(testutil::ListLiveColumnFamilies(dir, &names).ok()) << dir;
      out[i].insert(names.begin(), names.end());
    }
    return out;
  }

  // A shard move of "acme" (shard 0 -> 1) killed at `point` in a child
  // process, then the store reopened here: recovery must finish (`switched`)
  // or undo the move from the registry's rotation_shard (decision 0057
  // point 3). Were it to look for the other family in the tenant's own
  // shard instead, the family in the other shard would survive the open:
  // RecoverFamilies keeps a family whose internal id still has a live key
  // ("holds data under a live key ...; kept"), so the tenant would hold a
  // family in both shards, and a finished move's receipt would name the
  // wrong shard and no rows.
  void PurgeUnfinishedMove(const std::string& point, uint32_t damaged);

  void CrashMidMoveThenReopen(const std::string& point, bool switched) {
    ASSERT_NO_FATAL_FAILURE(Fill("acme"));
    const Snapshot before = Take(ts.store.get(), "acme");
    auto info = ts->DescribeTenant("acme");
    ASSERT_OK(info);
    const std::string base = info->column_family;  // "t<id>", before any rotation
    ts.Close();
    const std::string outcome = testutil::RunSelfChild(
        "ShardMoveCrashChild.DISABLED_MoveAndDie",
        {{"CV_SHARD_MOVE_DB", ts.db}, {"CV_SHARD_MOVE_KEYS", ts.keys}, {"CV_SHARD_MOVE_POINT", point}},
        /*quiet=*/false, /*timeout_s=*/300);
    ASSERT_EQ(outcome, "signal 9") << point;
    auto of_acme = [&](const std::set<std::string>& names) {
      int n = 0;
      for (const auto& f : names) n += f.compare(0, base.size(), base) == 0;
      return n;
    };
    // The crash left a family of the tenant in each shard: what recovery
    // has to resolve.
    auto families = Families();
    ASSERT_EQ(of_acme(families[0]), 1) << point;
    ASSERT_EQ(of_acme(families[1]), 1) << point;
    ASSERT_OK(ts.Open());
    EXPECT_EQ(ShardOf("acme"), switched ? 1u : 0u) << point;
    EXPECT_TRUE(Take(ts.store.get(), "acme") == before) << point;
    auto kept = ts->ListAudit(0, "auth_failure");
    ASSERT_OK(kept);
    for (const auto& e : *kept) ADD_FAILURE() << point << ": " << e.detail;
    if (switched) {
      auto receipts = ts->ListReceipts();
      ASSERT_OK(receipts);
      ASSERT_FALSE(receipts->empty());
      const Receipt& r = receipts->back();
      EXPECT_EQ(r.kind, "key_rotation") << point;
      EXPECT_EQ(r.tenant_id, "acme");
      EXPECT_EQ(r.shard, 0u) << point << ": the receipt names the old family's shard";
      EXPECT_EQ(r.column_family, base) << point;
      EXPECT_OK(VerifyReceiptChain(*receipts, *ts->SigningPublicKey()));
    }
    ts.Close();
    families = Families();
    EXPECT_EQ(of_acme(families[0]), switched ? 0 : 1) << point;
    EXPECT_EQ(of_acme(families[1]), switched ? 1 : 0) << point;
    ASSERT_OK(ts.Open());
    EXPECT_TRUE(Take(ts.store.get(), "acme") == before) << point;
  }

  TestStore ts;
};

// The child of CrashMidMoveThenReopen: moves "acme" to shard 1 with a kill
// point armed; SIGKILL there (exit 3: the point was not reached).
TEST(ShardMoveCrashChild, DISABLED_MoveAndDie) {
  const char* db = std::getenv("CV_SHARD_MOVE_DB");
  const char* keys = std::getenv("CV_SHARD_MOVE_KEYS");
  const char* point = std::getenv("CV_SHARD_MOVE_POINT");
  ASSERT_TRUE(db && keys && point);
  Options o = testutil::DefaultOptions(std::string(keys));
  o.dictionary_training_calls = 40;
  o.max_tenants_per_shard = 2;
  auto st = Store::Open(o, db);
  ASSERT_OK(st);
  testing::ArmKillPoint(point);
  (void)(*st)->MoveTenantToShard("acme", 1);
  std::exit(3);
}

TEST_F(ShardMoveTest, EveryRowMovesWithWritesContinuing) {
  Fill("acme");
  Fill("other");
  const Snapshot other_before = Take(ts.store.get(), "other");
  auto info = ts->DescribeTenant("acme");
  ASSERT_OK(info);
  auto stats = ts->Stats();
  ASSERT_OK(stats);
  ASSERT_GT(stats->memory.dictionaries, 0u);  // records compressed with a dictionary

  // A copy of the store before the move: the old key must not open it after.
  testutil::TempDir copy;
  ts.Close();
  testutil::CopyTree(ts.db, copy.Sub("db"));
  ASSERT_OK(ts.Open());

  // Writers during the copy (the tenant is served at each hook): puts
  // after the snapshot (phase 1), more puts, an update and a delete while
  // the feed is caught up (phase 2). What the public API shows just before
  // the tenant is held (phase 3) is what it must show after the move.
  Snapshot at_switch;
  std::map<std::string, uint64_t> written;  // call -> version
  std::string hook_error;
  testing::SetRotationHookForTest([&](const char* phase) {
    std::thread th([&, p = std::string(phase)] {
      if (p == "phase1" || p == "phase2") {
        for (int i = 0; i < 20; ++i) {
          const std::string id = p + "-" + std::to_string(i);
          // Times of their own: calls listed at equal times come in the
          // order of their blind hashes, which the new key changes.
          const int64_t at = kT0 + (p == "phase1" ? 500 : 900) * 1'000'000 + i;
          auto r = ts->PutCall("acme", MakeCall(id, at, p));
          if (!r.ok()) {
            hook_error = r.status().ToString();
            return;
          }
          written[id] = r->version;
        }
      }
      if (p == "phase2") {
        Call patch = MakeCall("phase1-3", kT0 + 500 * 1'000'000 + 3, "phase1");
        patch.title = "updated during the copy";
        auto u = ts->UpdateCall("acme", "phase1-3", kPartFields, patch);
        if (!u.ok()) hook_error = u.status().ToString();
        else written["phase1-3"] = u->version;
        Status d = ts->DeleteCall("acme", CallId(11));
        if (!d.ok()) hook_error = d.ToString();
      }
      if (p == "phase3") at_switch = Take(ts.store.get(), "acme");
    });
    th.join();
  });
  auto receipt = ts->MoveTenantToShard("acme", 1);
  testing::SetRotationHookForTest(nullptr);
  ASSERT_OK(receipt);
  ASSERT_EQ(hook_error, "");
  ASSERT_EQ(written.size(), 40u);
  ASSERT_FALSE(at_switch.calls.empty());
  // The queries answer something (a query that finds nothing proves little).
  ASSERT_GE(at_switch.queries.size(), 4u);
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(at_switch.queries[i].find(" count=0"), std::string::npos) << at_switch.queries[i];
  }
  EXPECT_NE(std::find(at_switch.queries.begin(), at_switch.queries.end(),
                      "window we talked about pricing and the roadmap acme1"),
            at_switch.queries.end());

  // The receipt names what was destroyed: the old family in the old shard,
  // the old key version.
  EXPECT_EQ(receipt->kind, "key_rotation");
  EXPECT_EQ(receipt->shard, 0u);
  EXPECT_EQ(receipt->column_family, info->column_family);
  EXPECT_EQ(receipt->key_versions_destroyed, std::vector<uint32_t>{1});
  EXPECT_NE(receipt->kek_generation_retired, 0u);

  // The tenant is in shard 1; its reads answer as before the switch, with
  // every write made during the copy.
  auto after = ts->DescribeTenant("acme");
  ASSERT_OK(after);
  EXPECT_EQ(after->shard, 1u);
  EXPECT_EQ(after->key_version, 2u);
  EXPECT_EQ(after->internal_id, info->internal_id);
  {
    const Snapshot got = Take(ts.store.get(), "acme");
    EXPECT_TRUE(got.calls == at_switch.calls);
    EXPECT_EQ(got.by_participant, at_switch.by_participant);
    EXPECT_EQ(got.by_workspace, at_switch.by_workspace);
    EXPECT_EQ(got.by_owner, at_switch.by_owner);
    EXPECT_EQ(got.count, at_switch.count);
    EXPECT_EQ(got.recordings.size(), at_switch.recordings.size());
    EXPECT_TRUE(got.recordings == at_switch.recordings);
    EXPECT_EQ(got.holds, at_switch.holds);
    EXPECT_EQ(got.feed, at_switch.feed);
    EXPECT_EQ(got.queries, at_switch.queries);
    // FindReferences answers in blind-hash order: compared as a set.
    EXPECT_EQ(std::set<std::string>(got.refs.begin(), got.refs.end()),
              std::set<std::string>(at_switch.refs.begin(), at_switch.refs.end()));
  }
  for (const auto& [id, v] : written) {
    auto c = ts->GetCall("acme", id);
    ASSERT_OK(c);
    EXPECT_EQ(c->version, v) << id;
  }
  EXPECT_EQ(ts->GetCall("acme", "phase1-3")->title, "updated during the copy");
  EXPECT_CODE(ts->GetCall("acme", CallId(11)), Code::kNotFound);
  EXPECT_TRUE(Take(ts.store.get(), "other") == other_before);
  stats = ts->Stats();
  ASSERT_OK(stats);
  for (const auto& t : stats->tenants) {
    if (t.tenant_id == "acme") {
      EXPECT_EQ(t.shard, 1u);
    } else if (t.tenant_id == "other") {
      EXPECT_EQ(t.shard, 0u);
    }
  }
  for (const auto& s : stats->shards) EXPECT_EQ(s.tenants, s.shard == 0 ? 1u : 2u) << s.shard;
  auto report = ts->Verify();
  ASSERT_OK(report);
  EXPECT_EQ(report->records_failed, 0u);
  EXPECT_TRUE(report->failures.empty()) << report->failures.front();
  auto receipts = ts->ListReceipts();
  ASSERT_OK(receipts);
  EXPECT_OK(VerifyReceiptChain(*receipts, *ts->SigningPublicKey()));

  // Writes go on in the new shard, and all of it survives a reopen.
  ASSERT_OK(ts->PutCall("acme", MakeCall("after", kT0 + 5'000'000'000, "after")));
  const Snapshot now = Take(ts.store.get(), "acme");
  ts.Close();
  // One copy: the tenant's family is in shard 1 only.
  auto families = Families();
  EXPECT_FALSE(families[0].count(info->column_family)) << "the old family is still in shard 0";
  EXPECT_TRUE(families[1].count(after->column_family)) << "the copy is not in shard 1";
  EXPECT_FALSE(families[0].count(after->column_family));
  ASSERT_OK(ts.Open());
  EXPECT_EQ(ShardOf("acme"), 1u);
  EXPECT_TRUE(Take(ts.store.get(), "acme") == now);
  EXPECT_TRUE(Take(ts.store.get(), "other") == other_before);
  ts.Close();

  // The copy taken before the move, opened with the current key directory:
  // its rows of the tenant (in shard 0) are sealed under the shredded key.
  Options o = ts.options;
  o.create_if_missing = false;
  auto old = Store::Open(o, copy.Sub("db"));
  ASSERT_OK(old);
  EXPECT_CODE((*old)->GetCall("acme", CallId(1)), Code::kCorruption);
  EXPECT_OK((*old)->GetCall("other", CallId(1)));
}

TEST_F(ShardMoveTest, MovesBackAndAfterAReopen) {
  Fill("acme");
  const Snapshot before = Take(ts.store.get(), "acme");
  ASSERT_OK(ts->MoveTenantToShard("acme", 1));
  ASSERT_OK(ts.Reopen());
  EXPECT_EQ(ShardOf("acme"), 1u);
  EXPECT_TRUE(Take(ts.store.get(), "acme") == before);
  ASSERT_OK(ts->MoveTenantToShard("acme", 0));
  EXPECT_EQ(ShardOf("acme"), 0u);
  EXPECT_TRUE(Take(ts.store.get(), "acme") == before);
  // A plain key rotation after the moves stays in the shard.
  ASSERT_OK(ts->RotateTenantKey("acme"));
  EXPECT_EQ(ShardOf("acme"), 0u);
  EXPECT_EQ(ts->DescribeTenant("acme")->key_version, 4u);
  ASSERT_OK(ts.Reopen());
  EXPECT_TRUE(Take(ts.store.get(), "acme") == before);
  // A purge after a move shreds and drops the tenant in its new shard.
  ASSERT_OK(ts->MoveTenantToShard("acme", 1));
  ASSERT_OK(ts->ReleaseHold("acme", "lit-2"));
  const std::string family = ts->DescribeTenant("acme")->column_family;
  ASSERT_OK(ts->PurgeTenant("acme"));
  ts.Close();
  auto families = Families();
  for (const auto& [shard, names] : families) EXPECT_FALSE(names.count(family)) << shard;
}

// A recording being written while the tenant moves is not kept (as across
// a rotation: its names were made under the old key); its writer writes
// nothing into the new shard, and nothing of it is left behind.
TEST_F(ShardMoveTest, RecordingWrittenAcrossAMoveIsNotKept) {
  ASSERT_OK(ts->PutCall("acme", MakeCall(CallId(1), kT0)));
  auto w = ts->CreateRecording("acme", CallId(1), {.recording_id = "live", .content_type = "audio/wav"});
  ASSERT_OK(w);
  ASSERT_OK((*w)->Append(workload::RandomBytes(3, kRecordingChunkBytes + 10)));
  ASSERT_OK(ts->MoveTenantToShard("acme", 1));
  EXPECT_FALSE((*w)->Append(workload::RandomBytes(4, kRecordingChunkBytes)).ok());
  EXPECT_CODE((*w)->Finish(), Code::kNotFound);
  w->reset();
  EXPECT_TRUE(ts->ListRecordings("acme", CallId(1))->empty());
  auto report = ts->Verify("acme");
  ASSERT_OK(report);
  EXPECT_TRUE(report->failures.empty()) << report->failures.front();
}

// The next shard's number opens a new shard for the tenant (a big tenant
// given a shard of its own); a number beyond it is refused.
TEST_F(ShardMoveTest, ToANewShard) {
  Fill("acme");
  const Snapshot before = Take(ts.store.get(), "acme");
  EXPECT_CODE(ts->MoveTenantToShard("acme", 3), Code::kInvalidArgument);
  ASSERT_EQ(ts->Stats()->shards.size(), 2u);
  ASSERT_OK(ts->MoveTenantToShard("acme", 2));
  EXPECT_EQ(ShardOf("acme"), 2u);
  auto stats = ts->Stats();
  ASSERT_OK(stats);
  ASSERT_EQ(stats->shards.size(), 3u);
  EXPECT_EQ(stats->shards[2].tenants, 1u);
  EXPECT_EQ(stats->shards[0].tenants, 1u);  // "other"
  EXPECT_TRUE(Take(ts.store.get(), "acme") == before);
  ASSERT_OK(ts.Reopen());
  EXPECT_EQ(ShardOf("acme"), 2u);
  EXPECT_TRUE(Take(ts.store.get(), "acme") == before);
  // A new tenant goes to the first shard with room, as before.
  ASSERT_OK(ts->CreateTenant({.tenant_id = "fourth"}));
  EXPECT_EQ(ShardOf("fourth"), 0u);
}

TEST_F(ShardMoveTest, RefusalsChangeNothing) {
  Fill("acme");
  ASSERT_OK(ts->PutCall("third", MakeCall("t-1", kT0)));
  const Snapshot before = Take(ts.store.get(), "acme");
  const auto receipts_before = ts->ListReceipts()->size();
  auto unchanged = [&] {
    auto d = ts->DescribeTenant("acme");
    ASSERT_OK(d);
    EXPECT_EQ(d->shard, 0u);
    EXPECT_EQ(d->key_version, 1u);
    EXPECT_TRUE(Take(ts.store.get(), "acme") == before);
    EXPECT_EQ(ts->ListReceipts()->size(), receipts_before);
  };
  EXPECT_CODE(ts->MoveTenantToShard("acme", 7), Code::kInvalidArgument);  // no such shard
  EXPECT_EQ(ts->Stats()->shards.size(), 2u);
  unchanged();
  EXPECT_CODE(ts->MoveTenantToShard("acme", 0), Code::kAlreadyExists);  // its own shard
  unchanged();
  EXPECT_CODE(ts->MoveTenantToShard("nobody", 1), Code::kNotFound);
  EXPECT_CODE(ts->MoveTenantToShard("bad id!", 1), Code::kInvalidArgument);
  // Shard 1 full: "fourth" joins "third" there (two per shard).
  ASSERT_OK(ts->CreateTenant({.tenant_id = "fourth"}));
  ASSERT_EQ(ShardOf("fourth"), 1u);
  EXPECT_CODE(ts->MoveTenantToShard("acme", 1), Code::kResourceExhausted);
  unchanged();
  // A purged tenant.
  ASSERT_OK(ts->PurgeTenant("fourth"));
  EXPECT_CODE(ts->MoveTenantToShard("fourth", 0), Code::kTenantPurged);
  const auto receipts_now = ts->ListReceipts()->size();

  // A read-only store.
  ts.Close();
  Options ro = ts.options;
  ro.read_only = true;
  ro.create_if_missing = false;
  {
    auto st = Store::Open(ro, ts.db);
    ASSERT_OK(st);
    EXPECT_CODE((*st)->MoveTenantToShard("acme", 1), Code::kNotSupported);
  }
  // A target shard that does not open (its CURRENT damaged, decision
  // 0034): refused, the tenant stays whole where it is.
  {
    std::ofstream f(ts.db + "/shards/0001/CURRENT", std::ios::trunc);
    f << "MANIFEST-999999\n";
  }
  ASSERT_OK(ts.Open());
  EXPECT_CODE(ts->MoveTenantToShard("acme", 1), Code::kCorruption);
  EXPECT_EQ(ShardOf("acme"), 0u);
  EXPECT_TRUE(Take(ts.store.get(), "acme") == before);
  EXPECT_EQ(ts->ListReceipts()->size(), receipts_now);
}

// A cross-shard move killed before its switch is undone at the next open
// (the copy in the target shard dropped), after it finished (the old
// family in the old shard dropped): each from rotation_shard.
TEST_F(ShardMoveTest, CrashAfterTheCopyIsUndoneFromRotationShard) {
  CrashMidMoveThenReopen("rotate.after_copy", /*switched=*/false);
}
TEST_F(ShardMoveTest, CrashAfterTheSwitchIsFinishedFromRotationShard) {
  CrashMidMoveThenReopen("rotate.after_switch", /*switched=*/true);
}
TEST_F(ShardMoveTest, CrashAfterTheShredIsFinishedFromRotationShard) {
  CrashMidMoveThenReopen("rotate.after_shred", /*switched=*/true);
}

// A tenant whose cross-shard move a crash left unfinished, purged while
// the move's other shard is not open (its CURRENT damaged, decision 0034:
// recovery keeps the rotation for an open that opens both): the purge
// shreds both key versions (the receipt names them) and drops the family
// it can reach; the other is dropped when its shard opens again. Nothing
// of the tenant is left in either shard, and no key.
void ShardMoveTest::PurgeUnfinishedMove(const std::string& point, uint32_t damaged) {
  const Snapshot other_before = Take(ts.store.get(), "third");
  auto info = ts->DescribeTenant("acme");
  ASSERT_OK(info);
  const std::string base = info->column_family;
  ts.Close();
  ASSERT_EQ(testutil::RunSelfChild(
                "ShardMoveCrashChild.DISABLED_MoveAndDie",
                {{"CV_SHARD_MOVE_DB", ts.db}, {"CV_SHARD_MOVE_KEYS", ts.keys}, {"CV_SHARD_MOVE_POINT", point}},
                /*quiet=*/false, /*timeout_s=*/300),
            "signal 9");
  char sub[32];
  std::snprintf(sub, sizeof sub, "/shards/%04u/CURRENT", damaged);
  const std::string current = ts.db + sub;
  const std::string good = testutil::ReadWholeFile(current);
  ASSERT_FALSE(good.empty());
  {
    std::ofstream f(current, std::ios::trunc);
    f << "MANIFEST-999999\n";
  }
  ASSERT_OK(ts.Open());
  auto receipt = ts->PurgeTenant("acme");
  ASSERT_OK(receipt);
  std::vector<uint32_t> versions = receipt->key_versions_destroyed;
  std::sort(versions.begin(), versions.end());
  EXPECT_EQ(versions, (std::vector<uint32_t>{1, 2})) << point << ": both keys shredded";
  EXPECT_CODE(ts->GetCall("acme", CallId(1)), Code::kTenantPurged);
  ts.Close();
  {
    std::ofstream f(current, std::ios::trunc);
    f << good;
  }
  ASSERT_OK(ts.Open());
  EXPECT_CODE(ts->GetCall("acme", CallId(1)), Code::kTenantPurged);
  auto orphans = ts->ReconcileKeys(/*dry_run=*/true);
  ASSERT_OK(orphans);
  EXPECT_TRUE(orphans->orphan_keys.empty()) << point;
  EXPECT_TRUE(Take(ts.store.get(), "third") == other_before);
  ts.Close();
  for (const auto& [shard, names] : Families()) {
    for (const auto& f : names) {
      EXPECT_NE(f.compare(0, base.size(), base), 0) << point << ": " << f << " left in shard " << shard;
    }
  }
}

TEST_F(ShardMoveTest, PurgeOfAMoveUndoneAtNoOpenShredsBothKeys) {
  ASSERT_NO_FATAL_FAILURE(Fill("acme"));
  ASSERT_OK(ts->ReleaseHold("acme", "lit-2"));  // a purge waits for holds
  // Before the switch: the copy's shard (1) does not open.
  PurgeUnfinishedMove("rotate.after_copy", 1);
}
TEST_F(ShardMoveTest, PurgeOfAMoveSwitchedButUnfinishedShredsBothKeys) {
  ASSERT_NO_FATAL_FAILURE(Fill("acme"));
  ASSERT_OK(ts->ReleaseHold("acme", "lit-2"));  // a purge waits for holds
  // After the switch: the old shard (0) does not open.
  PurgeUnfinishedMove("rotate.after_switch", 0);
}

}  // namespace
}  // namespace callvault
