// Online tenant key rotation (issue 15 item 4, docs/decisions/0038): the
// tenant's writers and readers keep working while its rows are copied, and
// every change they made is in the copy: every acknowledged put present,
// every acknowledged delete absent, every index query as a model says;
// erasures, retention removals, pins, holds and recordings made during the
// copy are respected; a change feed trimmed during the copy falls back to a
// copy with the tenant held.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <thread>

#include "callvault/store.h"
#include "engine/dictionary_training.h"
#include "engine/rotate_internal.h"
#include "tests/testutil/testutil.h"
#include "workload/workload.h"

namespace callvault {
namespace {

using testutil::MakeCall;
using testutil::TestStore;

constexpr int64_t kT0 = 1'767'225'600'000'000;
constexpr int64_t kDay = 86'400'000'000;
constexpr int kPool = 150;  // ids each writer works on

// The fields of a call that the writers vary, and its version.
std::string Digest(const Call& c) {
  std::string emails;
  for (const auto& p : c.participants) emails += p.email + ",";
  return std::to_string(c.version) + "|" + c.title + "|" + c.owner_user_id + "|" + c.workspace_id +
         "|" + emails + "|" + c.source_call_id + "|" + std::to_string(c.transcript.size()) + "|" +
         c.insights.summary;
}

// What the tenant must hold: call id -> the call as last acknowledged.
struct Model {
  std::mutex mu;
  std::map<std::string, Call> calls;
  std::set<std::string> ids;  // every id ever used (absent ones are checked too)

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
  std::optional<Call> Get(const std::string& id) {
    std::lock_guard<std::mutex> l(mu);
    auto it = calls.find(id);
    if (it == calls.end()) return std::nullopt;
    return it->second;
  }
};

std::set<std::string> List(Store* st, const std::string& tenant, ListQuery q) {
  std::set<std::string> out;
  q.limit = 1000;
  for (;;) {
    auto page = st->ListCalls(tenant, q);
    EXPECT_OK(page);
    if (!page.ok()) return out;
    for (const auto& c : page->calls) out.insert(c.call_id);
    if (page->next_cursor.empty()) return out;
    q.cursor = page->next_cursor;
  }
}

// Every call of the model reads back as it was acknowledged, every other
// id is absent, and the indexes (time, owner, workspace, participant,
// source) answer as the model does.
void CheckModel(Store* st, const std::string& tenant, Model& model) {
  // A copy: the store is not called with the model's lock held.
  struct {
    std::map<std::string, Call> calls;
    std::set<std::string> ids;
  } m;
  {
    std::lock_guard<std::mutex> l(model.mu);
    m.calls = model.calls;
    m.ids = model.ids;
  }
  for (const auto& id : m.ids) {
    auto c = st->GetCall(tenant, id, kPartAll);
    auto it = m.calls.find(id);
    if (it == m.calls.end()) {
      EXPECT_EQ(c.status().code(), Code::kNotFound) << id << " was deleted";
      continue;
    }
    EXPECT_TRUE(c.ok()) << id << ": " << c.status().ToString();
    if (c.ok()) {
      EXPECT_EQ(Digest(*c), Digest(it->second)) << id;
    }
  }
  std::set<std::string> all;
  for (const auto& [id, c] : m.calls) all.insert(id);
  EXPECT_EQ(List(st, tenant, ListQuery{}), all);
  auto n = st->CountCalls(tenant);
  ASSERT_OK(n);
  EXPECT_EQ(*n, m.calls.size());
  for (const char* owner : {"u-1", "u-2", "u-3"}) {
    std::set<std::string> want;
    for (const auto& [id, c] : m.calls) {
      if (c.owner_user_id == owner) want.insert(id);
    }
    ListQuery q;
    q.owners = {owner};
    EXPECT_EQ(List(st, tenant, q), want) << owner;
  }
  for (const char* ws : {"ws-1", "ws-2"}) {
    std::set<std::string> want;
    for (const auto& [id, c] : m.calls) {
      if (c.workspace_id == ws) want.insert(id);
    }
    ListQuery q;
    q.workspace_id = ws;
    EXPECT_EQ(List(st, tenant, q), want) << ws;
  }
  std::set<std::string> emails;
  for (const auto& [id, c] : m.calls) {
    for (const auto& p : c.participants) emails.insert(p.email);
  }
  for (int i = 0; i < 5; ++i) emails.insert("p" + std::to_string(i) + "@ex.example");
  for (const auto& e : emails) {
    if (e.empty()) continue;
    std::set<std::string> want;
    for (const auto& [id, c] : m.calls) {
      for (const auto& p : c.participants) {
        if (p.email == e) want.insert(id);
      }
    }
    ListQuery q;
    q.participants = {e};
    EXPECT_EQ(List(st, tenant, q), want) << e;
  }
}

// The source index: a put of a new call id with a stored call's source id
// resolves to that call; one with a source id no call holds creates a call.
// (Changes the tenant: the last check of a test.)
void CheckSources(Store* st, const std::string& tenant, Model& model) {
  struct {
    std::map<std::string, Call> calls;
    std::set<std::string> ids;
  } m;
  {
    std::lock_guard<std::mutex> l(model.mu);
    m.calls = model.calls;
    m.ids = model.ids;
  }
  std::map<std::string, std::string> owner;  // source id -> call id
  for (const auto& [id, c] : m.calls) {
    if (!c.source_call_id.empty()) owner[c.source_call_id] = id;
  }
  std::set<std::string> sources;
  for (const auto& id : m.ids) {
    for (int i = 0; i < 40; ++i) sources.insert("src-" + id.substr(0, 2) + "-" + std::to_string(i));
  }
  int n = 0;
  for (const auto& s : sources) {
    Call probe = MakeCall("probe-" + std::to_string(n++), kT0, "probe");
    probe.source_call_id = s;
    auto r = st->PutCall(tenant, probe);
    ASSERT_TRUE(r.ok()) << s << ": " << r.status().ToString();
    auto o = owner.find(s);
    if (o == owner.end()) {
      EXPECT_TRUE(r->created) << s << " is held by no call";
    } else {
      EXPECT_FALSE(r->created) << s;
      EXPECT_EQ(r->call_id, o->second) << s;
    }
  }
}

Call Variant(const std::string& id, std::mt19937& rng, const std::string& prefix) {
  Call c = MakeCall(id, kT0 + static_cast<int64_t>(rng() % 1'000'000) * 1000,
                    "v" + std::to_string(rng() % 1000));
  c.owner_user_id = "u-" + std::to_string(1 + rng() % 3);
  c.workspace_id = "ws-" + std::to_string(1 + rng() % 2);
  c.participants[1].email = "p" + std::to_string(rng() % 5) + "@ex.example";
  if (rng() % 4 == 0) c.transcript.clear();
  if (rng() % 2 == 0) c.source_call_id = "src-" + prefix + "-" + std::to_string(rng() % 40);
  return c;
}

// One writer: puts, updates and deletes on its own ids, each acknowledged
// change recorded in the model.
struct Writer {
  Store* st;
  std::string tenant;
  std::string prefix;  // "w0", "w1": its ids and source ids
  Model* model;
  std::atomic<bool>* stop;
  std::atomic<bool>* counting;     // the copy is under way
  std::atomic<uint64_t>* counted;  // changes acknowledged while `counting`
  std::atomic<uint64_t> ops{0};
  std::string error;

  void Run(uint32_t seed) {
    std::mt19937 rng(seed);
    while (!stop->load()) {
      const std::string id = prefix + "-" + std::to_string(rng() % kPool);
      const uint32_t op = rng() % 10;
      const bool in_copy = counting->load();
      std::optional<Call> cur = model->Get(id);
      if (op < 5 || !cur) {
        Call c = Variant(id, rng, prefix);
        auto r = st->PutCall(tenant, c);
        if (!r.ok()) {
          error = "put " + id + ": " + r.status().ToString();
          return;
        }
        c.call_id = r->call_id;  // a source id may resolve to another call
        c.version = r->version;
        model->Set(c);
      } else if (op < 7) {
        Call patch = *cur;
        patch.title = "updated " + std::to_string(rng() % 1000);
        patch.owner_user_id = "u-" + std::to_string(1 + rng() % 3);
        patch.updated_at = 0;
        auto r = st->UpdateCall(tenant, id, kPartFields, patch);
        if (!r.ok()) {
          error = "update " + id + ": " + r.status().ToString();
          return;
        }
        patch.version = r->version;
        model->Set(patch);
      } else {
        Status r = st->DeleteCall(tenant, id);
        if (!r.ok()) {
          error = "delete " + id + ": " + r.ToString();
          return;
        }
        model->Erase(id);
      }
      ++ops;
      if (in_copy) ++*counted;
    }
  }
};

class RotationOnlineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ts.options.progress = [this](const Progress& p) {
      if (std::string_view(p.operation) != "rotate") return;
      std::lock_guard<std::mutex> l(progress_mu);
      progress.push_back(p);
    };
  }
  void TearDown() override { testing::SetRotationHookForTest(nullptr); }

  // `n` calls "b-<i>" put in batches, in the model.
  void Fill(int n, Model* m) {
    std::mt19937 rng(7);
    std::vector<Call> batch;
    for (int i = 0; i < n; ++i) {
      Call c = Variant("b-" + std::to_string(i), rng, "b");
      c.source_call_id.clear();
      batch.push_back(c);
      if (batch.size() == 500 || i + 1 == n) {
        auto r = ts->PutCalls("acme", batch);
        ASSERT_OK(r);
        for (size_t j = 0; j < batch.size(); ++j) {
          batch[j].version = (*r)[j].version;
          m->Set(batch[j]);
        }
        batch.clear();
      }
    }
  }

  TestStore ts;
  std::mutex progress_mu;
  std::vector<Progress> progress;
};

// Waits up to 60 s for `done`.
bool WaitFor(const std::function<bool()>& done) {
  for (int i = 0; i < 6000; ++i) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return done();
}

TEST_F(RotationOnlineTest, WritersAndReadersKeepWorkingDuringTheCopy) {
  // The dictionary is trained during the copy (the writers' new calls
  // cross the threshold): records sealed with it must be copied, and the
  // dictionary with them.
  constexpr int kBase = 2500;
  ts.options.dictionary_training_calls = kBase + 60;
  ASSERT_OK(ts.Open());
  ASSERT_OK(ts->CreateTenant({.tenant_id = "acme"}));
  Model model;
  Fill(kBase, &model);
  auto stats = ts->Stats();
  ASSERT_OK(stats);
  ASSERT_EQ(stats->memory.dictionaries, 0u);

  std::atomic<bool> stop{false}, counting{false};
  std::atomic<uint64_t> counted{0}, reads{0}, counted_reads{0};
  std::atomic<uint64_t> at_phase3{0}, reads_at_phase3{0};
  std::atomic<int> phase3_calls{0};
  std::string read_error;
  std::vector<std::unique_ptr<Writer>> writers;
  for (int w = 0; w < 2; ++w) {
    writers.emplace_back(new Writer{ts.store.get(), "acme", "w" + std::to_string(w), &model, &stop,
                                    &counting, &counted});
  }
  std::atomic<int> trainings{0};
  testing::SetDictionaryTrainingHookForTest([&](const char* phase) {
    if (std::string_view(phase) == "done") ++trainings;
  });
  testing::SetRotationHookForTest([&](const char* phase) {
    if (std::string_view(phase) == "phase1") {
      // The copy's snapshot is taken: the writers and the reader must get
      // through while the rotation runs (a rotation that held the tenant
      // would keep them waiting, and this wait would time out).
      counting = true;
      EXPECT_TRUE(WaitFor([&] { return counted.load() >= 400 && counted_reads.load() >= 50; }))
          << counted.load() << " changes, " << counted_reads.load() << " reads";
      // Training runs in the background (decision 0045): its row is written
      // while the tenant is served, and records sealed with it follow.
      EXPECT_TRUE(WaitFor([&] { return trainings.load() >= 1; })) << "no training during the copy";
    } else if (std::string_view(phase) == "phase3") {
      ++phase3_calls;
      at_phase3 = counted.load();
      reads_at_phase3 = counted_reads.load();
    }
  });
  std::vector<std::thread> threads;
  for (int w = 0; w < 2; ++w) {
    Writer* wr = writers[w].get();
    threads.emplace_back([wr, w] { wr->Run(100 + w); });
  }
  // The writers' calls (and their source ids) are in the copy's snapshot
  // too, so that the copy has previous versions to replace and source ids
  // that move from one call to another during the copy.
  ASSERT_TRUE(WaitFor([&] { return writers[0]->ops.load() + writers[1]->ops.load() >= 1500; }));
  threads.emplace_back([&] {
    std::mt19937 rng(5);
    while (!stop.load()) {
      const bool in_copy = counting.load();
      auto c = ts->GetCall("acme", "b-" + std::to_string(rng() % kBase));
      ListQuery q;
      q.owners = {"u-2"};
      q.limit = 20;
      auto l = ts->ListCalls("acme", q);
      if (!c.ok() || !l.ok() || l->calls.empty()) {
        read_error = c.ok() ? l.status().ToString() : c.status().ToString();
        return;
      }
      ++reads;
      if (in_copy) ++counted_reads;
    }
  });
  auto receipt = ts->RotateTenantKey("acme");
  stop = true;
  for (auto& t : threads) t.join();
  testing::SetRotationHookForTest(nullptr);
  testing::SetDictionaryTrainingHookForTest(nullptr);
  ASSERT_OK(receipt);
  for (const auto& w : writers) EXPECT_EQ(w->error, "");
  EXPECT_EQ(read_error, "");
  EXPECT_EQ(phase3_calls.load(), 1);
  // Changes and reads completed while the rotation ran, before its last
  // (held) phase.
  EXPECT_GE(at_phase3.load(), 400u);
  EXPECT_GE(reads_at_phase3.load(), 50u);
  auto info = ts->DescribeTenant("acme");
  ASSERT_OK(info);
  EXPECT_EQ(info->key_version, 2u);
  stats = ts->Stats();
  ASSERT_OK(stats);
  EXPECT_GE(stats->memory.dictionaries, 1u) << "no dictionary was trained during the copy";
  {
    std::lock_guard<std::mutex> l(progress_mu);
    ASSERT_GE(progress.size(), 3u);
    EXPECT_EQ(progress.front().done, 0u);
    EXPECT_TRUE(progress.back().finished);
    EXPECT_EQ(progress.back().done, progress.back().total);
    for (size_t i = 1; i < progress.size(); ++i) {
      EXPECT_GE(progress[i].done, progress[i - 1].done);
      EXPECT_LE(progress[i].done, progress[i].total);
    }
  }
  CheckModel(ts.store.get(), "acme", model);
  ASSERT_OK(ts.Reopen());
  CheckModel(ts.store.get(), "acme", model);
  auto v = ts->Verify("acme");
  ASSERT_OK(v);
  EXPECT_TRUE(v->ok()) << (v->failures.empty() ? "" : v->failures[0]);
  CheckSources(ts.store.get(), "acme", model);
}

Result<RecordingInfo> WriteRecording(Store* st, const std::string& call, const std::string& id,
                                     const std::string& data) {
  auto w = st->CreateRecording("acme", call, {.recording_id = id, .content_type = "audio/wav"});
  if (!w.ok()) return w.status();
  for (size_t i = 0; i < data.size(); i += 700000) {
    CV_RETURN_IF_ERROR((*w)->Append(std::string_view(data).substr(i, 700000)));
  }
  return (*w)->Finish();
}

std::string Digest(const std::string& data) {
  return std::to_string(data.size()) + " bytes, hash " +
         std::to_string(std::hash<std::string>{}(data));
}

// Call/recording -> Digest of its content.
std::map<std::string, std::string> Recordings(Store* st, const std::vector<std::string>& calls) {
  std::map<std::string, std::string> out;
  for (const auto& id : calls) {
    auto recs = st->ListRecordings("acme", id);
    if (!recs.ok()) continue;  // a call deleted
    for (const auto& r : *recs) {
      std::string data;
      EXPECT_OK(
          st->ReadRecording("acme", id, r.recording_id, 0, UINT64_MAX, [&](std::string_view b) {
            data.append(b);
            return Status::OK();
          }));
      out[id + "/" + r.recording_id] = Digest(data);
    }
  }
  return out;
}

TEST_F(RotationOnlineTest, ErasuresRetentionPinsHoldsAndRecordingsDuringTheCopy) {
  ASSERT_OK(ts.Open());
  ASSERT_OK(ts->CreateTenant({.tenant_id = "acme"}));
  const int64_t now = kT0 + 400 * kDay;
  Model model;
  // b-0..9 name erase@, b-10..19 redact@; b-20..29 are old (retention 30
  // days); b-40.. have recordings.
  for (int i = 0; i < 80; ++i) {
    Call c = MakeCall("b-" + std::to_string(i), i >= 20 && i < 30 ? kT0 : now - kDay, "m");
    if (i < 10) c.participants[1].email = "erase@ex.example";
    if (i >= 10 && i < 20) c.participants[1].email = "redact@ex.example";
    auto r = ts->PutCall("acme", c);
    ASSERT_OK(r);
    c.version = r->version;
    model.Set(c);
  }
  ASSERT_OK(ts->SetRetention("acme", 30));
  ASSERT_OK(ts->SetCallPinned("acme", "b-20", true));
  ASSERT_OK(ts->SetCallPinned("acme", "b-21", true));
  ASSERT_OK(ts->PlaceHold("acme", {.hold_id = "h-60", .reason = "one call", .call_id = "b-60"}));
  const std::string big = workload::RandomBytes(1, 2 * kRecordingChunkBytes + 99);
  const std::string small = workload::RandomBytes(2, 5000);
  for (const char* c : {"b-40", "b-41", "b-42", "b-43", "b-45"}) {
    ASSERT_OK(WriteRecording(ts.store.get(), c, "rec", big));
  }

  std::thread holder;
  std::vector<std::thread> admin;  // operations that end with admin_mu_: after the rotation
  std::atomic<bool> holder_done{false};
  Status hold_status;
  Status erase_status, redact_status, retention_status;
  testing::SetRotationHookForTest([&](const char* phase) {
    if (std::string_view(phase) == "phase2") {
      // The snapshot's recordings are copied: these change what was copied.
      std::thread changes([&] {
        EXPECT_OK(ts->DeleteRecording("acme", "b-40", "rec"));  // gone from the copy
        EXPECT_OK(ts->DeleteRecording("acme", "b-45", "rec"));  // written again, other content
        EXPECT_OK(WriteRecording(ts.store.get(), "b-45", "rec", small));
        // Completed during the copy:
        EXPECT_OK(WriteRecording(ts.store.get(), "b-44", "new", small));
      });
      changes.join();
      return;
    }
    if (std::string_view(phase) != "phase1") return;
    // In other threads: this one is the rotation's, which holds the tenant.
    std::thread body([&] {
      std::thread changes([&] {
        EXPECT_OK(ts->DeleteCall("acme", "b-41"));  // with its recording
        EXPECT_OK(ts->DeleteCall("acme", "b-42"));  // put again: no recording
        EXPECT_OK(ts->SetCallPinned("acme", "b-21", false));
        EXPECT_OK(ts->SetCallPinned("acme", "b-22", true));
      });
      changes.join();
      Call again = MakeCall("b-42", now - kDay, "again");
      auto r = ts->PutCall("acme", again);
      EXPECT_OK(r);
      if (r.ok()) {
        again.version = r->version;
        model.Set(again);
      }
      model.Erase("b-41");
      // Erase and retention change the tenant, then wait for admin_mu_ (their
      // receipts) until the rotation ends: their changes are awaited here.
      admin.emplace_back([&] {
        auto e = ts->Erase("acme", {.subject = "erase@ex.example", .physical = false});
        erase_status = e.status();
      });
      admin.emplace_back([&] {
        auto e = ts->Erase(
            "acme",
            {.subject = "redact@ex.example", .mode = EraseMode::kRedact, .physical = false});
        redact_status = e.status();
      });
      EXPECT_TRUE(WaitFor([&] {
        ListQuery q;
        q.participants = {"erase@ex.example"};
        auto a = ts->ListCalls("acme", q);
        q.participants = {"redact@ex.example"};
        auto b = ts->ListCalls("acme", q);
        return a.ok() && b.ok() && a->calls.empty() && b->calls.empty();
      }));
      admin.emplace_back([&] { retention_status = ts->RunRetention(now).status(); });
      EXPECT_TRUE(
          WaitFor([&] { return ts->GetCall("acme", "b-29").status().code() == Code::kNotFound; }));
      // A hold placed now waits for the rotation (holds serialise with it).
      holder = std::thread([&] {
        hold_status =
            ts->PlaceHold("acme", {.hold_id = "h-61", .reason = "late", .call_id = "b-61"});
        holder_done = true;
      });
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      EXPECT_FALSE(holder_done.load()) << "a hold was placed during a rotation";
    });
    body.join();
  });
  auto receipt = ts->RotateTenantKey("acme");
  testing::SetRotationHookForTest(nullptr);
  for (auto& t : admin) t.join();
  holder.join();
  ASSERT_OK(receipt);
  ASSERT_OK(erase_status);
  ASSERT_OK(redact_status);
  ASSERT_OK(retention_status);
  ASSERT_OK(hold_status);
  // The model: erased calls gone, redacted ones without the subject,
  // expired unpinned ones gone.
  for (int i = 0; i < 10; ++i) model.Erase("b-" + std::to_string(i));
  for (int i = 10; i < 20; ++i) {
    auto c = ts->GetCall("acme", "b-" + std::to_string(i), kPartAll);
    ASSERT_OK(c);
    for (const auto& p : c->participants) EXPECT_NE(p.email, "redact@ex.example");
    EXPECT_GT(c->version, model.Get(c->call_id)->version);
    model.Set(*c);
  }
  for (int i = 21; i < 30; ++i) {
    if (i != 22) model.Erase("b-" + std::to_string(i));
  }
  for (int round = 0; round < 2; ++round) {
    CheckModel(ts.store.get(), "acme", model);
    EXPECT_EQ(
        Recordings(ts.store.get(), {"b-40", "b-41", "b-42", "b-43", "b-44", "b-45"}),
        (std::map<std::string, std::string>{
            {"b-43/rec", Digest(big)}, {"b-44/new", Digest(small)}, {"b-45/rec", Digest(small)}}));
    // Holds: the one placed before and the one that waited both hold.
    EXPECT_EQ(ts->DeleteCall("acme", "b-60").code(), Code::kFailedPrecondition);
    EXPECT_EQ(ts->DeleteCall("acme", "b-61").code(), Code::kFailedPrecondition);
    // Pins as they were at the end of the copy: b-20 and b-22 kept.
    auto rr = ts->RunRetention(now, /*dry_run=*/true);
    ASSERT_OK(rr);
    EXPECT_EQ(rr->calls_kept_pinned, 2u);
    EXPECT_EQ(rr->calls_removed, 0u);
    auto v = ts->Verify("acme");
    ASSERT_OK(v);
    EXPECT_TRUE(v->ok()) << (v->failures.empty() ? "" : v->failures[0]);
    ASSERT_OK(ts.Reopen());
  }
  // Nothing else is left in the copy (chunks of the replaced recording's
  // first version, say): a rotation with nothing changing during it copies
  // exactly the rows a reader reaches, and finds as many.
  auto before = ts->Verify("acme");
  ASSERT_OK(before);
  ASSERT_OK(ts->RotateTenantKey("acme"));
  auto after = ts->Verify("acme");
  ASSERT_OK(after);
  EXPECT_TRUE(after->ok());
  EXPECT_EQ(before->records_ok, after->records_ok);
}

TEST_F(RotationOnlineTest, AFeedTrimmedDuringTheCopyFallsBackToAHeldCopy) {
  ts.options.change_feed_max_events = 16;
  std::atomic<int> fallbacks{0};
  ts.options.logger = [&](LogLevel, std::string_view, std::string_view message) {
    if (message.find("change feed was trimmed during the copy") != std::string_view::npos)
      ++fallbacks;
  };
  ASSERT_OK(ts.Open());
  ASSERT_OK(ts->CreateTenant({.tenant_id = "acme"}));
  Model model;
  Fill(300, &model);
  std::atomic<bool> stop{false}, counting{false};
  std::atomic<uint64_t> counted{0};
  Writer w{ts.store.get(), "acme", "w0", &model, &stop, &counting, &counted};
  testing::SetRotationHookForTest([&](const char* phase) {
    if (std::string_view(phase) != "phase1") return;
    // Far more changes than the feed keeps, in another thread.
    std::thread t([&] {
      std::mt19937 rng(3);
      for (int i = 0; i < 200; ++i) {
        const std::string id = "b-" + std::to_string(rng() % 300);
        if (i % 3 == 0) {
          EXPECT_OK(ts->DeleteCall("acme", id));
          model.Erase(id);
          Call c = Variant(id, rng, "x");
          c.source_call_id.clear();
          auto r = ts->PutCall("acme", c);
          EXPECT_OK(r);
          c.version = r->version;
          model.Set(c);
        } else {
          Call c = Variant(id, rng, "x");
          c.source_call_id.clear();
          auto r = ts->PutCall("acme", c);
          EXPECT_OK(r);
          c.version = r->version;
          model.Set(c);
        }
      }
      for (int i = 0; i < 20; ++i) {
        const std::string id = "b-" + std::to_string(i * 7);
        if (!model.Get(id)) continue;
        EXPECT_OK(ts->DeleteCall("acme", id));
        model.Erase(id);
      }
    });
    t.join();
    counting = true;
  });
  std::thread writer([&] { w.Run(9); });
  auto receipt = ts->RotateTenantKey("acme");
  stop = true;
  writer.join();
  testing::SetRotationHookForTest(nullptr);
  ASSERT_OK(receipt);
  EXPECT_EQ(w.error, "");
  EXPECT_TRUE(counting.load());
  EXPECT_EQ(fallbacks.load(), 1);
  CheckModel(ts.store.get(), "acme", model);
  ASSERT_OK(ts.Reopen());
  CheckModel(ts.store.get(), "acme", model);
  auto v = ts->Verify("acme");
  ASSERT_OK(v);
  EXPECT_TRUE(v->ok()) << (v->failures.empty() ? "" : v->failures[0]);
}

}  // namespace
}  // namespace callvault
