// Attack 14 (session 12) on the ONLINE tenant key rotation (decision 0038):
// writes of every kind made in each phase of the copy, against a model of
// what was acknowledged; a physical erasure made during the copy; the
// progress of a copy that falls back to a held one; a SIGKILL in each phase
// with a writer running; administrative operations that wait for the
// rotation.
#include <rocksdb/utilities/debug.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <cstdlib>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <thread>

#include "callvault/store.h"
#include "engine/rotate_internal.h"
#include "tests/testutil/process.h"
#include "tests/testutil/raw_shard.h"
#include "tests/testutil/testutil.h"
#include "workload/workload.h"

namespace callvault {
namespace {

using testutil::MakeCall;
using testutil::RawShard;
using testutil::TestStore;

constexpr int64_t kT0 = 1'767'225'600'000'000;
constexpr int64_t kDay = 86'400'000'000;

std::string Digest(const Call& c) {
  std::string emails;
  for (const auto& p : c.participants) emails += p.email + ",";
  return std::to_string(c.version) + "|" + c.title + "|" + c.owner_user_id + "|" + emails + "|" +
         c.source_call_id + "|" + std::to_string(c.transcript.size());
}

// Acknowledged state: call id -> the call as last acknowledged (absent:
// deleted). `ids` holds every id ever used, absent ones are checked too.
struct Model {
  std::mutex mu;
  std::map<std::string, Call> calls;
  std::set<std::string> ids;
  void Set(const Call& c) {
    std::lock_guard<std::mutex> l(mu);
    calls[c.call_id] = c;
    ids.insert(c.call_id);
  }
  void Erase(const std::string& id) {
    std::lock_guard<std::mutex> l(mu);
    calls.erase(id);
    ids.insert(id);
  }
};

std::vector<std::string> ListAll(Store* st, const std::string& tenant, ListQuery q) {
  std::vector<std::string> out;
  q.limit = 37;  // several pages
  for (;;) {
    auto page = st->ListCalls(tenant, q);
    EXPECT_OK(page);
    if (!page.ok()) return out;
    for (const auto& c : page->calls) out.push_back(c.call_id);
    if (page->next_cursor.empty()) return out;
    q.cursor = page->next_cursor;
  }
}

void CheckModel(Store* st, const std::string& tenant, Model& model) {
  std::map<std::string, Call> calls;
  std::set<std::string> ids;
  {
    std::lock_guard<std::mutex> l(model.mu);
    calls = model.calls;
    ids = model.ids;
  }
  for (const auto& id : ids) {
    auto c = st->GetCall(tenant, id, kPartAll);
    auto it = calls.find(id);
    if (it == calls.end()) {
      EXPECT_EQ(c.status().code(), Code::kNotFound) << id << " was deleted";
      continue;
    }
    ASSERT_TRUE(c.ok()) << id << ": " << c.status().ToString();
    EXPECT_EQ(Digest(*c), Digest(it->second)) << id;
  }
  // Pages complete, no id twice, in the order of the listing (newest
  // first by start time, then by id: compared as a set plus no duplicates).
  auto listed = ListAll(st, tenant, ListQuery{});
  std::set<std::string> as_set(listed.begin(), listed.end());
  EXPECT_EQ(as_set.size(), listed.size()) << "an id listed twice";
  std::set<std::string> want;
  for (const auto& [id, c] : calls) want.insert(id);
  EXPECT_EQ(as_set, want);
  auto n = st->CountCalls(tenant);
  ASSERT_OK(n);
  EXPECT_EQ(*n, calls.size());
  // The participant index.
  for (const char* e : {"p0@ex.example", "p1@ex.example", "erase@ex.example"}) {
    std::set<std::string> w;
    for (const auto& [id, c] : calls) {
      for (const auto& p : c.participants) {
        if (p.email == e) w.insert(id);
      }
    }
    ListQuery q;
    q.participants = {e};
    auto got = ListAll(st, tenant, q);
    EXPECT_EQ(std::set<std::string>(got.begin(), got.end()), w) << e;
  }
}

Status WriteRecording(RecordingWriter* w, const std::string& data) {
  for (size_t i = 0; i < data.size(); i += 700000) {
    CV_RETURN_IF_ERROR(w->Append(std::string_view(data).substr(i, 700000)));
  }
  auto r = w->Finish();
  return r.ok() ? Status::OK() : r.status();
}

Status WriteRecording(Store* st, const std::string& call, const std::string& id,
                      const std::string& data) {
  auto w = st->CreateRecording("acme", call, {.recording_id = id, .content_type = "audio/wav"});
  if (!w.ok()) return w.status();
  return WriteRecording(w->get(), data);
}

std::string ReadRec(Store* st, const std::string& call, const std::string& id) {
  std::string data;
  Status s = st->ReadRecording("acme", call, id, 0, UINT64_MAX, [&](std::string_view b) {
    data.append(b);
    return Status::OK();
  });
  if (!s.ok()) return "error: " + s.ToString();
  return std::to_string(data.size()) + ":" + std::to_string(std::hash<std::string>{}(data));
}

std::string Sig(const std::string& data) {
  return std::to_string(data.size()) + ":" + std::to_string(std::hash<std::string>{}(data));
}

bool WaitFor(const std::function<bool()>& f, int ms = 20000) {
  for (int i = 0; i < ms / 5; ++i) {
    if (f()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return f();
}

class Attack14Online : public ::testing::TestWithParam<const char*> {
 protected:
  void TearDown() override { testing::SetRotationHookForTest(nullptr); }
  TestStore ts;
};

Call Numbered(const std::string& id, int n) {
  Call c = MakeCall(id, kT0 + n * 1000, "t" + std::to_string(n));
  c.participants[1].email = "p" + std::to_string(n % 2) + "@ex.example";
  return c;
}

// Every write kind that does not wait for admin_mu_, made in one phase
// (the hook runs on the rotation's thread with the tenant served; the
// writes run in another thread and are acknowledged before the phase goes
// on). Then the ones that wait for admin_mu_ (holds, erasure, retention),
// started in the phase and finishing after the rotation.
TEST_P(Attack14Online, EveryWriteKindInAPhase) {
  const std::string at = GetParam();
  ASSERT_OK(ts.Open());
  ASSERT_OK(ts->CreateTenant({.tenant_id = "acme"}));
  Model model;
  // 400 calls: more than one batch of the copy.
  {
    std::vector<Call> batch;
    for (int i = 0; i < 400; ++i) batch.push_back(Numbered("c-" + std::to_string(i), i));
    batch[5].source_call_id = "src-5";
    auto r = ts->PutCalls("acme", batch);
    ASSERT_OK(r);
    for (size_t i = 0; i < batch.size(); ++i) {
      batch[i].version = (*r)[i].version;
      model.Set(batch[i]);
    }
  }
  for (int i : {10, 11}) {
    Call c = Numbered("e-" + std::to_string(i), i);
    c.participants[1].email = "erase@ex.example";
    auto r = ts->PutCall("acme", c);
    ASSERT_OK(r);
    c.version = r->version;
    model.Set(c);
  }
  ASSERT_OK(ts->SetCallPinned("acme", "c-20", true));
  ASSERT_OK(ts->SetCallPinned("acme", "c-21", true));
  ASSERT_OK(ts->PlaceHold("acme", {.hold_id = "h-old", .reason = "r", .call_id = "c-30"}));
  const std::string big = workload::RandomBytes(1, 2 * kRecordingChunkBytes + 17);
  const std::string small = workload::RandomBytes(2, 3000);
  const std::string other = workload::RandomBytes(3, kRecordingChunkBytes + 5);
  ASSERT_OK(WriteRecording(ts.store.get(), "c-40", "r", big));   // deleted in the phase
  ASSERT_OK(WriteRecording(ts.store.get(), "c-41", "r", big));   // replaced in the phase
  ASSERT_OK(WriteRecording(ts.store.get(), "c-42", "r", small));  // its call deleted, put again
  // A recording started before the rotation, finished in the phase.
  auto before =
      ts->CreateRecording("acme", "c-43", {.recording_id = "r", .content_type = "audio/wav"});
  ASSERT_OK(before);
  ASSERT_OK((*before)->Append(std::string_view(big).substr(0, kRecordingChunkBytes + 3)));
  // A list cursor and a feed token issued before the rotation.
  ListQuery q1;
  q1.limit = 10;
  auto page1 = ts->ListCalls("acme", q1);
  ASSERT_OK(page1);
  ASSERT_FALSE(page1->next_cursor.empty());
  auto feed0 = ts->ReadChanges("acme", "", 5);
  ASSERT_OK(feed0);

  std::unique_ptr<RecordingWriter> started_in_phase;
  std::vector<std::thread> admin;  // wait for admin_mu_: finish after the rotation
  std::atomic<int> admin_done{0};
  std::string in_phase_cursor;
  std::atomic<bool> ran{false};
  testing::SetRotationHookForTest([&](const char* phase) {
    if (at != phase) return;
    ran = true;
    std::thread w([&] {
      // A new call, and a batch.
      Call n = Numbered("new-1", 1001);
      auto r = ts->PutCall("acme", n);
      EXPECT_OK(r);
      n.version = r->version;
      model.Set(n);
      std::vector<Call> batch;
      for (int i = 0; i < 30; ++i) batch.push_back(Numbered("nb-" + std::to_string(i), 2000 + i));
      batch.push_back(Numbered("c-60", 60));  // over a copied call, in the batch
      batch.back().title = "batched over";
      auto br = ts->PutCalls("acme", batch);
      EXPECT_OK(br);
      if (br.ok()) {
        for (size_t i = 0; i < batch.size(); ++i) {
          batch[i].version = (*br)[i].version;
          model.Set(batch[i]);
        }
      }
      // The same call overwritten many times: the last one wins.
      for (int k = 0; k < 25; ++k) {
        Call c = Numbered("c-1", 1 + k);
        c.title = "over-" + std::to_string(k);
        c.participants[1].email = "p" + std::to_string(k % 2) + "@ex.example";
        if (k % 3 == 0) c.transcript.clear();
        auto pr = ts->PutCall("acme", c);
        EXPECT_OK(pr);
        c.version = pr->version;
        model.Set(c);
      }
      // An update (a patch) of a copied call.
      {
        auto cur = ts->GetCall("acme", "c-2", kPartMetadata);
        EXPECT_OK(cur);
        Call p = cur.ok() ? *cur : Call{};
        p.title = "patched";
        auto u = ts->UpdateCall("acme", "c-2", kPartFields, p);
        EXPECT_OK(u);
        auto got = ts->GetCall("acme", "c-2", kPartAll);
        EXPECT_OK(got);
        if (got.ok()) model.Set(*got);
      }
      // A delete of a copied call: it must not come back.
      EXPECT_OK(ts->DeleteCall("acme", "c-3"));
      model.Erase("c-3");
      // Delete, then put again under the same id (other content).
      EXPECT_OK(ts->DeleteCall("acme", "c-42"));
      {
        Call c = Numbered("c-42", 4242);
        c.title = "reborn";
        auto pr = ts->PutCall("acme", c);
        EXPECT_OK(pr);
        c.version = pr->version;
        model.Set(c);
      }
      // Put, delete: a call that lived only during the copy.
      {
        Call c = Numbered("ephemeral", 7);
        EXPECT_OK(ts->PutCall("acme", c));
        EXPECT_OK(ts->DeleteCall("acme", "ephemeral"));
        model.Erase("ephemeral");
      }
      // The source id moves: c-5 deleted, another call put with src-5.
      EXPECT_OK(ts->DeleteCall("acme", "c-5"));
      model.Erase("c-5");
      {
        Call c = Numbered("c-6", 6);
        c.source_call_id = "src-5";
        auto pr = ts->PutCall("acme", c);
        EXPECT_OK(pr);
        c.version = pr->version;
        model.Set(c);
      }
      // Pins: one cleared, one set, one set on a call then deleted.
      EXPECT_OK(ts->SetCallPinned("acme", "c-21", false));
      EXPECT_OK(ts->SetCallPinned("acme", "c-22", true));
      EXPECT_OK(ts->SetCallPinned("acme", "c-23", true));
      EXPECT_OK(ts->DeleteCall("acme", "c-23"));
      model.Erase("c-23");
      // Recordings: deleted, replaced, completed, one started before.
      EXPECT_OK(ts->DeleteRecording("acme", "c-40", "r"));
      EXPECT_OK(ts->DeleteRecording("acme", "c-41", "r"));
      EXPECT_OK(WriteRecording(ts.store.get(), "c-41", "r", other));
      EXPECT_OK(WriteRecording(ts.store.get(), "c-44", "n", small));
      EXPECT_OK((*before)->Append(std::string_view(big).substr(kRecordingChunkBytes + 3)));
      auto fin = (*before)->Finish();
      EXPECT_OK(fin);
      auto s = ts->CreateRecording("acme", "c-45", {.recording_id = "late", .content_type = "a"});
      EXPECT_OK(s);
      if (s.ok()) {
        EXPECT_OK((*s)->Append(small));
        started_in_phase = std::move(*s);
      }
      // A list cursor issued during the copy.
      auto p = ts->ListCalls("acme", q1);
      EXPECT_OK(p);
      if (p.ok()) in_phase_cursor = p->next_cursor;
      // Reads during the copy see the latest acknowledged state.
      auto g = ts->GetCall("acme", "c-1", kPartAll);
      EXPECT_OK(g);
      if (g.ok()) {
        EXPECT_EQ(g->title, "over-24");
      }
      EXPECT_EQ(ts->GetCall("acme", "c-3", kPartAll).status().code(), Code::kNotFound);
    });
    w.join();
    // Operations that take admin_mu_: they wait for the rotation.
    admin.emplace_back([&] {
      EXPECT_OK(ts->PlaceHold("acme", {.hold_id = "h-new", .reason = "r", .call_id = "c-31"}));
      EXPECT_OK(ts->ReleaseHold("acme", "h-old"));
      ++admin_done;
    });
    admin.emplace_back([&] {
      auto e = ts->Erase("acme", {.subject = "erase@ex.example", .physical = false});
      EXPECT_OK(e);
      ++admin_done;
    });
  });
  auto receipt = ts->RotateTenantKey("acme");
  testing::SetRotationHookForTest(nullptr);
  for (auto& t : admin) t.join();
  ASSERT_OK(receipt);
  ASSERT_TRUE(ran.load());
  EXPECT_EQ(admin_done.load(), 2);
  model.Erase("e-10");
  model.Erase("e-11");
  // The recording started during the copy and finished after the switch:
  // its names and stream key are the old ones (decision 0036, point 1):
  // nothing is kept, and the caller is told so.
  ASSERT_NE(started_in_phase, nullptr);
  auto late = started_in_phase->Finish();
  EXPECT_EQ(late.status().code(), Code::kNotFound);
  // Not "the call was deleted": it was not (it misled a caller into
  // dropping the recording; fixed in attack14).
  EXPECT_NE(late.status().message().find("key was rotated"), std::string::npos)
      << late.status().ToString();
  EXPECT_OK(ts->GetCall("acme", "c-45", kPartMetadata));
  started_in_phase.reset();  // a writer does not outlive its store (reopened below)
  before->reset();
  // A cursor and a feed token issued before or during the copy: refused
  // (decision 0036, point 6), not a wrong page.
  for (const std::string& cur : {page1->next_cursor, in_phase_cursor}) {
    ListQuery q = q1;
    q.cursor = cur;
    EXPECT_EQ(ts->ListCalls("acme", q).status().code(), Code::kInvalidArgument);
  }
  EXPECT_EQ(ts->ReadChanges("acme", feed0->next_token, 5).status().code(),
            Code::kInvalidArgument);

  for (int round = 0; round < 2; ++round) {
    SCOPED_TRACE(round == 0 ? "after the rotation" : "after a reopen");
    auto info = ts->DescribeTenant("acme");
    ASSERT_OK(info);
    EXPECT_EQ(info->key_version, 2u);
    CheckModel(ts.store.get(), "acme", model);
    // Recordings.
    EXPECT_EQ(ts->ListRecordings("acme", "c-40")->size(), 0u);
    EXPECT_EQ(ReadRec(ts.store.get(), "c-41", "r"), Sig(other));
    EXPECT_EQ(ts->ListRecordings("acme", "c-42")->size(), 0u) << "came back with its call";
    EXPECT_EQ(ReadRec(ts.store.get(), "c-43", "r"), Sig(big));
    EXPECT_EQ(ReadRec(ts.store.get(), "c-44", "n"), Sig(small));
    EXPECT_EQ(ts->ListRecordings("acme", "c-45")->size(), 0u);
    // Holds: the new one holds, the released one does not.
    EXPECT_EQ(ts->DeleteCall("acme", "c-31").code(), Code::kFailedPrecondition);
    auto holds = ts->ListHolds("acme");
    ASSERT_OK(holds);
    ASSERT_EQ(holds->size(), 1u);
    EXPECT_EQ((*holds)[0].hold_id, "h-new");
    // Pins: c-20 and c-22 (c-21 cleared, c-23 gone).
    ASSERT_OK(ts->SetRetention("acme", 1));
    auto rr = ts->RunRetention(kT0 + 400 * kDay, /*dry_run=*/true);
    ASSERT_OK(rr);
    EXPECT_EQ(rr->calls_kept_pinned, 2u);
    // The change feed, read whole from the start: dense sequences, and its
    // last event is the erasure's.
    std::string token;
    uint64_t last = 0;
    size_t events = 0;
    ChangeEvent tail;
    for (;;) {
      auto page = ts->ReadChanges("acme", token, 500);
      ASSERT_OK(page);
      for (const auto& e : page->events) {
        if (last != 0) {
          EXPECT_EQ(e.sequence, last + 1);
        }
        last = e.sequence;
        tail = e;
        ++events;
      }
      if (page->events.empty()) break;
      token = page->next_token;
    }
    EXPECT_GT(events, 400u);
    EXPECT_EQ(tail.cause, ChangeCause::kErasure);
    auto v = ts->Verify("acme");
    ASSERT_OK(v);
    EXPECT_TRUE(v->ok()) << (v->failures.empty() ? "" : v->failures[0]);
    ASSERT_OK(ts.Reopen());
  }
  // A second rotation with nothing changing finds the same records.
  auto v1 = ts->Verify("acme");
  ASSERT_OK(v1);
  ASSERT_OK(ts->RotateTenantKey("acme"));
  auto v2 = ts->Verify("acme");
  ASSERT_OK(v2);
  EXPECT_EQ(v1->records_ok, v2->records_ok);
  CheckModel(ts.store.get(), "acme", model);
}

INSTANTIATE_TEST_SUITE_P(Phases, Attack14Online,
                         ::testing::Values("phase1", "phase2", "phase3"),
                         [](const auto& param_info) { return std::string(param_info.param); });

// FINDING (fixed): a physical erasure made during the copy compacted the
// OLD family only. Phase 1 had already copied the subject's calls into the
// new family; the catch-up re-wrote them redacted, and the unredacted
// versions stayed in the new family's memtable, WAL and SST files, sealed
// under the new (live) key, after Erase had returned "physical" (docs/
// crypto.md: "Afterwards no live SST or blob file of the store holds the
// erased values").
TEST(Attack14OnlineErase, PhysicalErasureDuringTheCopyLeavesNoOldVersionInTheCopy) {
  TestStore ts;
  ASSERT_OK(ts.Open());
  ASSERT_OK(ts->CreateTenant({.tenant_id = "acme"}));
  for (int i = 0; i < 50; ++i) {
    Call c = Numbered("c-" + std::to_string(i), i);
    if (i < 5) c.participants[1].email = "erase@ex.example";
    ASSERT_OK(ts->PutCall("acme", c));
  }
  std::thread eraser;
  std::atomic<bool> erased{false};
  testing::SetRotationHookForTest([&](const char* phase) {
    if (std::string_view(phase) != "phase2") return;
    eraser = std::thread([&] {
      auto e = ts->Erase("acme", {.subject = "erase@ex.example", .mode = EraseMode::kRedact});
      EXPECT_OK(e);
      erased = true;
    });
    // The erasure's write is in (it then waits for admin_mu_).
    EXPECT_TRUE(WaitFor([&] {
      auto c = ts->GetCall("acme", "c-0", kPartAll);
      return c.ok() && c->participants[1].email != "erase@ex.example";
    }));
    // Its physical step (flush, compaction of the tenant's family) done
    // before the catch-up re-writes the calls (it then waits for
    // admin_mu_, held by the rotation).
    std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  });
  auto receipt = ts->RotateTenantKey("acme");
  testing::SetRotationHookForTest(nullptr);
  eraser.join();
  ASSERT_OK(receipt);
  ASSERT_TRUE(erased.load());
  auto info = ts->DescribeTenant("acme");
  ASSERT_OK(info);
  const std::string family = info->column_family;
  ListQuery q;
  q.participants = {"erase@ex.example"};
  EXPECT_EQ(ListAll(ts.store.get(), "acme", q).size(), 0u);
  ts.Close();
  // Every version of every key of the tenant's family, memtables (the WAL
  // replayed) and files: no key has an older version (the unredacted call)
  // or a deletion marker over one.
  RawShard raw(ts.db + "/shards/0000", /*read_only=*/true);
  ASSERT_TRUE(raw.status().ok()) << raw.status().ToString();
  ASSERT_NE(raw.cf(family), nullptr) << family;
  std::vector<rocksdb::KeyVersion> versions;
  ASSERT_TRUE(rocksdb::GetAllKeyVersions(raw.db(), raw.cf(family), rocksdb::Slice(),
                                         rocksdb::Slice(), 1u << 20, &versions)
                  .ok());
  std::map<std::string, int> count;
  for (const auto& v : versions) ++count[v.user_key];
  int stale = 0;
  for (const auto& [k, n] : count) {
    if (n > 1) ++stale;
  }
  EXPECT_EQ(stale, 0) << "keys of the rotated family with an older version or a deletion "
                         "marker after a physical erasure, of "
                      << count.size();
}

// FINDING (fixed): the progress of a rotation whose change feed was trimmed
// during the copy went back to 0 when the held copy started, and its last
// report before "finished" was not the largest.
TEST(Attack14OnlineProgress, ProgressStaysMonotoneThroughAFallback) {
  TestStore ts;
  ts.options.change_feed_max_events = 8;
  std::mutex mu;
  std::vector<Progress> progress;
  ts.options.progress = [&](const Progress& p) {
    if (std::string_view(p.operation) != "rotate") return;
    std::lock_guard<std::mutex> l(mu);
    progress.push_back(p);
  };
  int fallbacks = 0;
  ts.options.logger = [&](LogLevel, std::string_view, std::string_view m) {
    if (m.find("change feed was trimmed during the copy") != std::string_view::npos) ++fallbacks;
  };
  ASSERT_OK(ts.Open());
  ASSERT_OK(ts->CreateTenant({.tenant_id = "acme"}));
  for (int i = 0; i < 600; ++i) ASSERT_OK(ts->PutCall("acme", Numbered("c-" + std::to_string(i), i)));
  Model model;
  testing::SetRotationHookForTest([&](const char* phase) {
    if (std::string_view(phase) != "phase1") return;
    std::thread t([&] {
      for (int i = 0; i < 40; ++i) {
        Call c = Numbered("c-" + std::to_string(i), i);
        c.title = "during";
        EXPECT_OK(ts->PutCall("acme", c));
      }
    });
    t.join();
  });
  {
    std::lock_guard<std::mutex> l(mu);
    progress.clear();
  }
  auto r = ts->RotateTenantKey("acme");
  testing::SetRotationHookForTest(nullptr);
  ASSERT_OK(r);
  EXPECT_EQ(fallbacks, 1);
  std::lock_guard<std::mutex> l(mu);
  ASSERT_GE(progress.size(), 2u);
  EXPECT_TRUE(progress.back().finished);
  for (size_t i = 1; i < progress.size(); ++i) {
    EXPECT_GE(progress[i].done, progress[i - 1].done)
        << "report " << i << " went back from " << progress[i - 1].done << " to "
        << progress[i].done;
  }
  for (const auto& p : progress) {
    if (p.total != 0) {
      EXPECT_LE(p.done, p.total);
    }
  }
  for (int i = 0; i < 40; ++i) {
    auto c = ts->GetCall("acme", "c-" + std::to_string(i), kPartAll);
    ASSERT_OK(c);
    EXPECT_EQ(c->title, "during");
  }
}

// The feed trimmed while the last rounds run (writes in phase 2, and in the
// tail just before the hold): the catch-up finds the gap, the copy falls
// back to a held one, and every acknowledged write is kept (the model).
TEST(Attack14OnlineFallback, FeedTrimmedInTheLaterPhases) {
  for (const char* at : {"phase2", "phase3"}) {
    SCOPED_TRACE(at);
    TestStore ts;
    ts.options.change_feed_max_events = 8;
    int fallbacks = 0;
    ts.options.logger = [&](LogLevel, std::string_view, std::string_view m) {
      if (m.find("change feed was trimmed during the copy") != std::string_view::npos) ++fallbacks;
    };
    ASSERT_OK(ts.Open());
    ASSERT_OK(ts->CreateTenant({.tenant_id = "acme"}));
    Model model;
    for (int i = 0; i < 200; ++i) {
      Call c = Numbered("c-" + std::to_string(i), i);
      auto r = ts->PutCall("acme", c);
      ASSERT_OK(r);
      c.version = r->version;
      model.Set(c);
    }
    ASSERT_OK(ts->SetCallPinned("acme", "c-9", true));
    testing::SetRotationHookForTest([&](const char* phase) {
      if (std::string_view(phase) != at) return;
      std::thread t([&] {
        for (int i = 0; i < 60; ++i) {
          const std::string id = "c-" + std::to_string(i % 30);
          if (i % 4 == 3) {
            EXPECT_OK(ts->DeleteCall("acme", id));
            model.Erase(id);
            continue;
          }
          Call c = Numbered(id, 500 + i);
          c.title = "late-" + std::to_string(i);
          auto r = ts->PutCall("acme", c);
          EXPECT_OK(r);
          if (r.ok()) {
            c.version = r->version;
            model.Set(c);
          }
        }
        EXPECT_OK(ts->SetCallPinned("acme", "c-10", true));
      });
      t.join();
    });
    auto r = ts->RotateTenantKey("acme");
    testing::SetRotationHookForTest(nullptr);
    ASSERT_OK(r);
    EXPECT_EQ(fallbacks, 1);
    CheckModel(ts.store.get(), "acme", model);
    ASSERT_OK(ts->SetRetention("acme", 1));
    auto rr = ts->RunRetention(kT0 + 400 * kDay, /*dry_run=*/true);
    ASSERT_OK(rr);
    // c-10 pinned during the copy; c-9's pin went with its delete (i = 39).
    EXPECT_EQ(rr->calls_kept_pinned, 1u);
    ASSERT_OK(ts.Reopen());
    CheckModel(ts.store.get(), "acme", model);
    auto v = ts->Verify("acme");
    ASSERT_OK(v);
    EXPECT_TRUE(v->ok()) << (v->failures.empty() ? "" : v->failures[0]);
  }
}

// FINDING (fixed): a recording being written across the switch kept
// writing its chunks after it, under its old names and old stream key, into
// the tenant's NEW family, where no marker names them: until its Finish or
// Abort removed them (never, after a crash), Verify reported "recording
// chunks without a manifest" (a corruption alarm) on a healthy tenant. Its
// writes after the switch are refused now, nothing written.
TEST(Attack14OnlineRecording, AChunkWrittenAfterTheSwitchLeavesNothingBehind) {
  TestStore ts;
  ASSERT_OK(ts.Open());
  ASSERT_OK(ts->CreateTenant({.tenant_id = "acme"}));
  ASSERT_OK(ts->PutCall("acme", Numbered("c-1", 1)));
  const std::string data = workload::RandomBytes(4, 3 * kRecordingChunkBytes);
  auto w = ts->CreateRecording("acme", "c-1", {.recording_id = "r", .content_type = "a"});
  ASSERT_OK(w);
  ASSERT_OK((*w)->Append(std::string_view(data).substr(0, kRecordingChunkBytes + 1)));
  ASSERT_OK(ts->RotateTenantKey("acme"));
  Status s = (*w)->Append(std::string_view(data).substr(kRecordingChunkBytes + 1));
  EXPECT_EQ(s.code(), Code::kNotFound) << s.ToString();
  EXPECT_NE(s.message().find("key was rotated"), std::string::npos) << s.ToString();
  // Checked with the writer still alive (a crash now would keep whatever
  // it wrote): nothing of it in the tenant.
  auto v = ts->Verify("acme");
  ASSERT_OK(v);
  EXPECT_TRUE(v->ok()) << (v->failures.empty() ? "" : v->failures[0]);
  auto f = (*w)->Finish();
  EXPECT_EQ(f.status().code(), Code::kNotFound);
  w->reset();
  EXPECT_EQ(ts->ListRecordings("acme", "c-1")->size(), 0u);
  // Written again, it is kept.
  ASSERT_OK(WriteRecording(ts.store.get(), "c-1", "r", data));
  EXPECT_EQ(ReadRec(ts.store.get(), "c-1", "r"), Sig(data));
  v = ts->Verify("acme");
  ASSERT_OK(v);
  EXPECT_TRUE(v->ok()) << (v->failures.empty() ? "" : v->failures[0]);
}

// Administrative operations of another tenant and of the rotated one wait
// for the rotation (admin_mu_), finish after it, and none deadlocks; the
// other tenant's writes and reads and Stats() do not wait.
TEST(Attack14OnlineAdmin, OtherOperationsDuringTheCopy) {
  TestStore ts;
  ASSERT_OK(ts.Open());
  for (const char* t : {"acme", "bravo", "gone"}) ASSERT_OK(ts->CreateTenant({.tenant_id = t}));
  for (int i = 0; i < 300; ++i) ASSERT_OK(ts->PutCall("acme", Numbered("c-" + std::to_string(i), i)));
  ASSERT_OK(ts->PutCall("bravo", Numbered("b-0", 0)));
  ASSERT_OK(ts->PutCall("gone", Numbered("g-0", 0)));
  std::vector<std::thread> admin;
  std::atomic<int> second_code{-1}, purge_code{-1};
  std::atomic<bool> created{false}, purged_other{false};
  std::atomic<bool> rotation_done{false};
  testing::SetRotationHookForTest([&](const char* phase) {
    if (std::string_view(phase) != "phase1") return;
    admin.emplace_back([&] {
      auto r = ts->RotateTenantKey("acme");  // a second rotation of the same tenant
      second_code = static_cast<int>(r.status().code());
    });
    admin.emplace_back([&] {
      EXPECT_OK(ts->CreateTenant({.tenant_id = "charlie"}));
      EXPECT_TRUE(rotation_done.load()) << "a create went through during the rotation";
      created = true;
    });
    admin.emplace_back([&] {
      EXPECT_OK(ts->PurgeTenant("gone"));
      purged_other = true;
    });
    // Another tenant: served, not waiting for the rotation.
    std::thread other([&] {
      for (int i = 1; i < 50; ++i) EXPECT_OK(ts->PutCall("bravo", Numbered("b-" + std::to_string(i), i)));
      EXPECT_OK(ts->GetCall("bravo", "b-0", kPartAll));
      EXPECT_OK(ts->DescribeTenant("acme"));
    });
    other.join();
  });
  auto r = ts->RotateTenantKey("acme");
  rotation_done = true;
  testing::SetRotationHookForTest(nullptr);
  // The purge of the rotated tenant, requested right after: never half.
  for (auto& t : admin) t.join();
  ASSERT_OK(r);
  EXPECT_TRUE(created.load());
  EXPECT_TRUE(purged_other.load());
  // The second rotation waited for the first (admin_mu_) and then ran: the
  // tenant is at key version 3 and readable.
  EXPECT_EQ(second_code.load(), static_cast<int>(Code::kOk));
  auto info = ts->DescribeTenant("acme");
  ASSERT_OK(info);
  EXPECT_EQ(info->key_version, 3u);
  EXPECT_OK(ts->GetCall("acme", "c-7", kPartAll));
  EXPECT_EQ(ts->GetCall("gone", "g-0", kPartAll).status().code(), Code::kTenantPurged);
  auto count = ts->CountCalls("bravo");
  ASSERT_OK(count);
  EXPECT_EQ(*count, 50u);
  // A purge of the rotated tenant started during its rotation.
  std::thread purger;
  testing::SetRotationHookForTest([&](const char* phase) {
    if (std::string_view(phase) != "phase2") return;
    purger = std::thread([&] {
      auto p = ts->PurgeTenant("acme");
      purge_code = static_cast<int>(p.status().code());
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  });
  auto r2 = ts->RotateTenantKey("acme");
  testing::SetRotationHookForTest(nullptr);
  purger.join();
  ASSERT_OK(r2);
  EXPECT_EQ(purge_code.load(), static_cast<int>(Code::kOk));
  EXPECT_EQ(ts->GetCall("acme", "c-7", kPartAll).status().code(), Code::kTenantPurged);
  ASSERT_OK(ts.Reopen());
  EXPECT_EQ(ts->GetCall("acme", "c-7", kPartAll).status().code(), Code::kTenantPurged);
  auto rec = ts->ReconcileKeys(/*dry_run=*/true);
  ASSERT_OK(rec);
  EXPECT_TRUE(rec->orphan_keys.empty());
  // No family of the purged tenants (nor of any rotation copy) anywhere.
  std::set<std::string> want;
  for (const char* t : {"bravo", "charlie"}) {
    auto i = ts->DescribeTenant(t);
    ASSERT_OK(i);
    want.insert(i->column_family);
  }
  ts.Close();
  std::set<std::string> have;
  for (const auto& e : std::filesystem::directory_iterator(ts.db + "/shards")) {
    std::vector<std::string> names;
    ASSERT_TRUE(testutil::ListLiveColumnFamilies(e.path().string(), &names).ok());
    for (const auto& n : names) {
      if (n != "default") have.insert(n);
    }
  }
  EXPECT_EQ(have, want);
}

// FOUND (attack14): Metrics() and Stats() took admin_mu_, which a rotation
// holds for its whole copy (decision 0038 keeps it): the monitoring scrape
// of the whole store hung for as long as the online copy of one tenant
// ran (minutes for a large tenant), although every tenant was served.
// Metrics() is fixed (shards_ read under map_mu_). Stats() is NOT (still
// DISABLED below): its orphan-key report needs admin_mu_ for a consistent
// view of keyring and registry; a fix needs a way to say "not computed".
void ScrapeDuringTheCopy(bool with_stats) {
  TestStore ts;
  ASSERT_OK(ts.Open());
  ASSERT_OK(ts->CreateTenant({.tenant_id = "acme"}));
  for (int i = 0; i < 50; ++i) ASSERT_OK(ts->PutCall("acme", Numbered("c-" + std::to_string(i), i)));
  std::atomic<bool> done{false};
  bool during = false;
  std::thread scraper;
  testing::SetRotationHookForTest([&](const char* phase) {
    if (std::string_view(phase) != "phase1") return;
    scraper = std::thread([&] {
      if (with_stats) {
        EXPECT_OK(ts->Stats());
      } else {
        auto m = ts->Metrics();
        EXPECT_OK(m);
        if (m.ok()) {
          EXPECT_EQ(m->live_tenants, 1u);
        }
      }
      done = true;
    });
    // The copy goes on for up to 3 s: the scrape must get through meanwhile.
    WaitFor([&] { return done.load(); }, 3000);
    during = done.load();
  });
  ASSERT_OK(ts->RotateTenantKey("acme"));
  testing::SetRotationHookForTest(nullptr);
  scraper.join();
  EXPECT_TRUE(during) << (with_stats ? "Stats()" : "Metrics()") << " waited for the whole copy";
}

TEST(Attack14OnlineAdmin, MetricsDoesNotWaitForTheCopy) { ScrapeDuringTheCopy(false); }
TEST(Attack14OnlineAdmin, DISABLED_StatsDoesNotWaitForTheCopy) { ScrapeDuringTheCopy(true); }

// ---- A SIGKILL in each phase with a writer running ----------------------

constexpr char kEnvDb[] = "CALLVAULT_ATTACK14_DB";
constexpr char kEnvKeys[] = "CALLVAULT_ATTACK14_KEYS";
constexpr char kEnvPhase[] = "CALLVAULT_ATTACK14_PHASE";
constexpr char kEnvLog[] = "CALLVAULT_ATTACK14_LOG";

// The child: a writer puts and deletes calls, logging each before ("I id")
// and after it is acknowledged ("P id version", "D id"); the rotation is
// killed in the phase named, once the writer made 40 changes in it.
TEST(A14Child, DISABLED_RotateAndDie) {
  const char* db = std::getenv(kEnvDb);
  const char* keys = std::getenv(kEnvKeys);
  const char* phase = std::getenv(kEnvPhase);
  const char* log = std::getenv(kEnvLog);
  if (db == nullptr || keys == nullptr || phase == nullptr || log == nullptr) GTEST_SKIP();
  Options o = testutil::DefaultOptions(keys);
  o.create_if_missing = false;
  auto st = Store::Open(o, db);
  if (!st.ok()) ::_exit(4);
  Store* s = st->get();
  FILE* f = std::fopen(log, "a");
  if (f == nullptr) ::_exit(5);
  std::atomic<int> in_phase{0};
  std::atomic<bool> counting{false};
  std::thread writer([&] {
    for (int i = 0;; ++i) {
      const std::string id = "w-" + std::to_string(i % 97);
      std::fprintf(f, "I %s\n", id.c_str());
      std::fflush(f);
      if (i % 5 == 4) {
        Status d = s->DeleteCall("acme", id);
        if (d.ok()) std::fprintf(f, "D %s\n", id.c_str());
        else if (d.code() != Code::kNotFound) ::_exit(6);
        else std::fprintf(f, "D %s\n", id.c_str());
      } else {
        Call c = Numbered(id, i);
        auto r = s->PutCall("acme", c);
        if (!r.ok()) ::_exit(7);
        std::fprintf(f, "P %s %llu\n", id.c_str(), static_cast<unsigned long long>(r->version));
      }
      std::fflush(f);
      if (counting) ++in_phase;
    }
  });
  testing::SetRotationHookForTest([&](const char* p) {
    if (std::string_view(p) != phase) return;
    counting = true;
    if (std::string_view(p) != "phase3") {
      for (int i = 0; i < 4000 && in_phase.load() < 40; ++i) ::usleep(5000);
    } else {
      for (int i = 0; i < 4000 && in_phase.load() < 40; ++i) ::usleep(5000);
    }
    std::fflush(nullptr);
    ::kill(::getpid(), SIGKILL);
  });
  auto r = s->RotateTenantKey("acme");
  (void)r;
  ::_exit(8);  // not reached: killed in the phase
}

TEST(Attack14OnlineCrash, SigkillInEachPhaseWithAWriter) {
  TestStore ts;
  ASSERT_OK(ts.Open());
  ASSERT_OK(ts->CreateTenant({.tenant_id = "acme"}));
  for (int i = 0; i < 300; ++i) ASSERT_OK(ts->PutCall("acme", Numbered("c-" + std::to_string(i), i)));
  ASSERT_OK(ts->SetCallPinned("acme", "c-1", true));
  ts.Close();
  const std::string log = ts.tmp.Sub("acks");
  for (const char* phase : {"phase1", "phase2", "phase3"}) {
    SCOPED_TRACE(phase);
    std::remove(log.c_str());
    ASSERT_EQ(testutil::RunSelfChild("A14Child.DISABLED_RotateAndDie",
                                     {{kEnvDb, ts.db}, {kEnvKeys, ts.keys}, {kEnvPhase, phase},
                                      {kEnvLog, log}}),
              "signal 9");
    // The acknowledged state per id; the id in flight (logged "I", never
    // acknowledged) may be either.
    std::map<std::string, std::optional<uint64_t>> acked;
    std::string in_flight;
    {
      std::ifstream in(log);
      std::string line;
      while (std::getline(in, line)) {
        std::istringstream ls(line);
        std::string op, id;
        ls >> op >> id;
        if (op == "I") {
          in_flight = id;
        } else if (op == "P") {
          unsigned long long v = 0;
          ls >> v;
          acked[id] = v;
          in_flight.clear();
        } else if (op == "D") {
          acked[id] = std::nullopt;
          in_flight.clear();
        }
      }
    }
    ASSERT_GE(acked.size(), 10u);
    ASSERT_OK(ts.Open());
    auto info = ts->DescribeTenant("acme");
    ASSERT_OK(info);
    EXPECT_EQ(info->key_version, 1u) << "a killed copy is rolled back";
    for (const auto& [id, v] : acked) {
      if (id == in_flight) continue;
      auto c = ts->GetCall("acme", id, kPartMetadata);
      if (v) {
        ASSERT_TRUE(c.ok()) << id << ": " << c.status().ToString();
        EXPECT_EQ(c->version, *v) << id;
      } else {
        EXPECT_EQ(c.status().code(), Code::kNotFound) << id;
      }
    }
    auto n = ts->CountCalls("acme");
    ASSERT_OK(n);
    EXPECT_GE(*n, 300u);
    auto v = ts->Verify("acme");
    ASSERT_OK(v);
    EXPECT_TRUE(v->ok()) << (v->failures.empty() ? "" : v->failures[0]);
    auto rec = ts->ReconcileKeys(/*dry_run=*/true);
    ASSERT_OK(rec);
    EXPECT_TRUE(rec->orphan_keys.empty());
    ts.Close();
    std::vector<std::string> names;
    ASSERT_TRUE(testutil::ListLiveColumnFamilies(ts.db + "/shards/0000", &names).ok());
    int tenant_families = 0;
    for (const auto& nm : names) {
      if (nm != "default") ++tenant_families;
    }
    EXPECT_EQ(tenant_families, 1) << "an orphan family of the killed copy";
  }
  // Then a rotation completes, with everything acknowledged kept.
  ASSERT_OK(ts.Open());
  std::map<std::string, std::string> before;
  for (int i = 0; i < 97; ++i) {
    const std::string id = "w-" + std::to_string(i);
    auto c = ts->GetCall("acme", id, kPartAll);
    before[id] = c.ok() ? Digest(*c) : c.status().ToString();
  }
  ASSERT_OK(ts->RotateTenantKey("acme"));
  for (int i = 0; i < 97; ++i) {
    const std::string id = "w-" + std::to_string(i);
    auto c = ts->GetCall("acme", id, kPartAll);
    EXPECT_EQ(c.ok() ? Digest(*c) : c.status().ToString(), before[id]) << id;
  }
  auto v = ts->Verify("acme");
  ASSERT_OK(v);
  EXPECT_TRUE(v->ok());
}

}  // namespace
}  // namespace callvault
