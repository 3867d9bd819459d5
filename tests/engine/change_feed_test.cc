// The per-tenant change feed (Store::ReadChanges, docs/decisions/0030): a
// feeder that follows it ends with exactly the live calls; events survive
// reopens; a crash never leaves a change without its event or an event
// without its change; purge leaves no event bytes; the horizon, rolled-back
// and forged tokens get their specific errors.
#include <rocksdb/env.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "callvault/key_provider.h"
#include "callvault/store.h"
#include "format/rowkey.h"
#include "tests/testutil/fault_fs.h"
#include "tests/testutil/raw_shard.h"
#include "tests/testutil/testutil.h"

namespace callvault {
namespace {

namespace fs = std::filesystem;
using testutil::MakeCall;
using testutil::TestStore;

constexpr int64_t kT0 = 1'767'225'600'000'000;  // 2026-01-01T00:00:00Z
constexpr int64_t kDay = 86'400'000'000;

uint64_t Seed() {
  const char* s = std::getenv("CALLVAULT_SEED");
  return s != nullptr ? std::strtoull(s, nullptr, 10)
                      : static_cast<uint64_t>(std::random_device{}()) << 16 ^ std::random_device{}();
}

// What a feeder knows of the tenant: call id -> version.
using LiveSet = std::map<std::string, uint64_t>;

// Follows the feed from `*token` to its end, `limit` events a page,
// applying each event to `live`. Returns the events read.
Result<std::vector<ChangeEvent>> Follow(Store* store, const std::string& tenant,
                                        std::string* token, LiveSet* live, size_t limit = 7) {
  std::vector<ChangeEvent> all;
  for (int pages = 0; pages < 100000; ++pages) {
    auto page = store->ReadChanges(tenant, *token, limit);
    if (!page.ok()) return page.status();
    EXPECT_LE(page->events.size(), limit);
    *token = page->next_token;
    for (auto& e : page->events) {
      if (!all.empty()) {
        EXPECT_GT(e.sequence, all.back().sequence);
      }
      if (e.kind == ChangeKind::kDelete) {
        live->erase(e.call_id);
      } else {
        (*live)[e.call_id] = e.version;
      }
      all.push_back(std::move(e));
    }
    if (page->events.size() < limit) return all;
  }
  return Status::Internal("feed without end");
}

// The tenant's calls and versions, by ListCalls.
LiveSet Listed(Store* store, const std::string& tenant) {
  LiveSet out;
  ListQuery q;
  q.limit = 50;
  for (;;) {
    auto page = store->ListCalls(tenant, q);
    EXPECT_OK(page);
    if (!page.ok()) return out;
    for (const auto& c : page->calls) out[c.call_id] = c.version;
    if (page->next_cursor.empty()) return out;
    q.cursor = page->next_cursor;
  }
}

class ChangeFeedTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK(ts.Open());
    ASSERT_OK(ts->CreateTenant({.tenant_id = "acme", .retention_days = 30}));
  }
  TestStore ts;
};

TEST_F(ChangeFeedTest, AFeederEndsWithExactlyTheLiveCalls) {
  std::string token;
  LiveSet fed;
  // Puts (single and batch), a re-put, updates, deletes.
  for (int i = 0; i < 12; ++i) {
    ASSERT_OK(ts->PutCall("acme", MakeCall("c" + std::to_string(i), kT0 + i * kDay)));
  }
  std::vector<Call> batch;
  for (int i = 12; i < 20; ++i) batch.push_back(MakeCall("c" + std::to_string(i), kT0 + 40 * kDay + i));
  ASSERT_OK(ts->PutCalls("acme", batch));
  ASSERT_OK(Follow(ts.store.get(), "acme", &token, &fed));  // part way
  EXPECT_EQ(fed, Listed(ts.store.get(), "acme"));
  Call patch;
  patch.insights.summary = "llm ran";
  ASSERT_OK(ts->UpdateCall("acme", "c3", kPartInsights, patch));
  ASSERT_OK(ts->PutCall("acme", MakeCall("c4", kT0 + 4 * kDay, "again")));
  ASSERT_OK(ts->DeleteCall("acme", "c5"));
  ASSERT_OK(ts->DeleteCall("acme", "c6", std::optional<uint64_t>()));
  // An erasure in delete mode: c7 and c8 name the subject (only them).
  for (const char* id : {"c7", "c8"}) {
    Call c = MakeCall(id, kT0 + 20 * kDay);
    c.participants[1].email = "erase.me@subject.example";
    ASSERT_OK(ts->PutCall("acme", c));
  }
  auto erased = ts->Erase("acme", {.subject = "erase.me@subject.example"});
  ASSERT_OK(erased);
  EXPECT_EQ(erased->changed, 2u);
  // An erasure in redact mode: c9 keeps existing, with a new version.
  {
    Call c = MakeCall("c9", kT0 + 21 * kDay);
    c.participants[1].email = "redact.me@subject.example";
    ASSERT_OK(ts->PutCall("acme", c));
  }
  ASSERT_OK(ts->Erase("acme", {.subject = "redact.me@subject.example", .mode = EraseMode::kRedact}));
  // Retention: 30 days; calls c0..c10 started before kT0 + 11 days.
  auto ret = ts->RunRetention(kT0 + 41 * kDay);
  ASSERT_OK(ret);
  EXPECT_GT(ret->calls_removed, 0u);
  auto events = Follow(ts.store.get(), "acme", &token, &fed);
  ASSERT_OK(events);
  const LiveSet listed = Listed(ts.store.get(), "acme");
  EXPECT_EQ(fed, listed);
  EXPECT_FALSE(listed.empty());
  // Every cause is there, and an erasure's events name the calls it
  // changed, never the subject.
  std::map<std::string, std::set<std::string>> by_cause;
  for (const auto& e : *events) {
    by_cause[ChangeCauseName(e.cause)].insert(std::string(ChangeKindName(e.kind)) + ":" + e.call_id);
  }
  EXPECT_EQ(by_cause["erasure"],
            (std::set<std::string>{"delete:c7", "delete:c8", "update:c9"}));
  EXPECT_TRUE(by_cause["user"].count("update:c3"));
  EXPECT_TRUE(by_cause["user"].count("delete:c5"));
  EXPECT_TRUE(by_cause["user"].count("put:c4"));
  EXPECT_EQ(by_cause["retention"].size(), ret->calls_removed);
  for (const auto& e : *events) {
    EXPECT_EQ(e.call_id.find("subject.example"), std::string::npos);
    EXPECT_GT(e.committed_at, 0);
  }
  // Read again from the start: the same sequence of events.
  std::string again;
  LiveSet fed2;
  auto all = Follow(ts.store.get(), "acme", &again, &fed2, 1000);
  ASSERT_OK(all);
  EXPECT_EQ(fed2, listed);
  EXPECT_EQ(all->front().sequence, 1u);
  EXPECT_EQ(all->back().sequence, all->size());  // dense
  // At the end: an empty page that hands back the same position.
  auto tail = ts->ReadChanges("acme", token, 10);
  ASSERT_OK(tail);
  EXPECT_TRUE(tail->events.empty());
  EXPECT_EQ(tail->next_token, token);
  // Verify opens and checks every event row.
  auto v = ts->Verify();
  ASSERT_OK(v);
  EXPECT_TRUE(v->ok());
  std::printf("feeder: %zu events, %zu live calls\n", all->size(), listed.size());
}

TEST_F(ChangeFeedTest, EventsAndTokensSurviveReopen) {
  for (int i = 0; i < 5; ++i) ASSERT_OK(ts->PutCall("acme", MakeCall("c" + std::to_string(i), kT0)));
  std::string token;
  LiveSet fed;
  ASSERT_OK(Follow(ts.store.get(), "acme", &token, &fed));
  ASSERT_OK(ts.Reopen());
  ASSERT_OK(ts->DeleteCall("acme", "c1"));
  ASSERT_OK(ts->PutCall("acme", MakeCall("c9", kT0)));
  auto more = Follow(ts.store.get(), "acme", &token, &fed);
  ASSERT_OK(more);
  ASSERT_EQ(more->size(), 2u);
  EXPECT_EQ((*more)[0].sequence, 6u);  // the sequence goes on after the reopen
  EXPECT_EQ(fed, Listed(ts.store.get(), "acme"));
  // A read-only open reads the feed too.
  ts.Close();
  Options o = ts.options;
  o.read_only = true;
  o.create_if_missing = false;
  auto ro = Store::Open(o, ts.db);
  ASSERT_OK(ro);
  auto page = (*ro)->ReadChanges("acme", "", 1000);
  ASSERT_OK(page);
  EXPECT_EQ(page->events.size(), 7u);
}

TEST_F(ChangeFeedTest, ForgedOrForeignTokensAreInvalidArguments) {
  ASSERT_OK(ts->CreateTenant({.tenant_id = "globex"}));
  ASSERT_OK(ts->PutCall("acme", MakeCall("c1", kT0)));
  ASSERT_OK(ts->PutCall("globex", MakeCall("g1", kT0)));
  auto page = ts->ReadChanges("acme", "", 10);
  ASSERT_OK(page);
  const std::string good = page->next_token;
  ASSERT_FALSE(good.empty());
  std::vector<std::string> bad = {"x", "00", good + "00", good.substr(2), std::string(good.size(), 'z')};
  for (size_t i = 0; i < good.size(); i += 5) {
    std::string flipped = good;
    flipped[i] = flipped[i] == '0' ? '1' : '0';
    bad.push_back(flipped);
  }
  for (const auto& t : bad) {
    auto r = ts->ReadChanges("acme", t, 10);
    SCOPED_TRACE(t);
    EXPECT_CODE(r, Code::kInvalidArgument);
    if (!r.ok() && t.size() > 8) {
      EXPECT_EQ(r.status().message().find(t), std::string::npos);
    }
  }
  // Another tenant's token is not this tenant's.
  EXPECT_CODE(ts->ReadChanges("globex", good, 10), Code::kInvalidArgument);
  EXPECT_CODE(ts->ReadChanges("acme", "", 1001), Code::kInvalidArgument);
  EXPECT_CODE(ts->ReadChanges("nope", "", 10), Code::kNotFound);
  // Nothing changed: the good token still reads.
  EXPECT_OK(ts->ReadChanges("acme", good, 10));
}

TEST(ChangeFeedHorizonTest, ATokenBehindTheHorizonIsOutOfRange) {
  TestStore ts;
  ts.options.change_feed_max_events = 5;
  ASSERT_OK(ts.Open());
  ASSERT_OK(ts->CreateTenant({.tenant_id = "acme"}));
  auto first = ts->ReadChanges("acme", "", 10);  // on an empty feed
  ASSERT_OK(first);
  ASSERT_OK(ts->PutCall("acme", MakeCall("c0", kT0)));
  auto one = ts->ReadChanges("acme", first->next_token, 1);
  ASSERT_OK(one);
  ASSERT_EQ(one->events.size(), 1u);
  for (int i = 1; i < 20; ++i) ASSERT_OK(ts->PutCall("acme", MakeCall("c" + std::to_string(i), kT0)));
  auto r = ts->ReadChanges("acme", one->next_token, 10);
  EXPECT_CODE(r, Code::kOutOfRange);
  EXPECT_NE(r.status().message().find("horizon"), std::string::npos) << r.status().ToString();
  EXPECT_CODE(ts->ReadChanges("acme", first->next_token, 10), Code::kOutOfRange);
  EXPECT_EQ(std::string(CodeName(Code::kOutOfRange)), "out_of_range");
  // From the start: the oldest events held, at most the cap (+ none lost at
  // the newest end).
  auto all = ts->ReadChanges("acme", "", 100);
  ASSERT_OK(all);
  ASSERT_EQ(all->events.size(), 5u);
  EXPECT_EQ(all->events.front().sequence, 16u);
  EXPECT_EQ(all->events.back().sequence, 20u);
}

TEST(ChangeFeedHorizonTest, EventsOlderThanTheAgeLimitAreRemovedByLaterChanges) {
  TestStore ts;
  ts.options.change_feed_retention_seconds = 1;
  ASSERT_OK(ts.Open());
  ASSERT_OK(ts->CreateTenant({.tenant_id = "acme"}));
  for (int i = 0; i < 3; ++i) ASSERT_OK(ts->PutCall("acme", MakeCall("c" + std::to_string(i), kT0)));
  auto page = ts->ReadChanges("acme", "", 1);
  ASSERT_OK(page);
  std::this_thread::sleep_for(std::chrono::milliseconds(1200));
  // Nothing is removed without a change: the token still reads.
  EXPECT_OK(ts->ReadChanges("acme", page->next_token, 10));
  ASSERT_OK(ts->PutCall("acme", MakeCall("c9", kT0)));
  EXPECT_CODE(ts->ReadChanges("acme", page->next_token, 10), Code::kOutOfRange);
  auto all = ts->ReadChanges("acme", "", 100);
  ASSERT_OK(all);
  ASSERT_EQ(all->events.size(), 1u);
  EXPECT_EQ(all->events[0].call_id, "c9");
  EXPECT_EQ(all->events[0].sequence, 4u);
}

// A store put back from a copy (a restore, or a crash that lost unsynced
// writes) rolls the feed back: a token issued after the copy is ahead of
// it, and once new events reuse its sequence numbers, it follows an event
// the feed no longer holds. Both are kOutOfRange, never a silent skip.
TEST_F(ChangeFeedTest, ATokenOfARolledBackFeedIsOutOfRange) {
  ASSERT_OK(ts->PutCall("acme", MakeCall("c0", kT0)));
  ts.Close();
  const std::string copy = ts.tmp.Sub("copy");
  testutil::CopyTree(ts.db, copy);
  ASSERT_OK(ts.Open());
  ASSERT_OK(ts->PutCall("acme", MakeCall("c1", kT0)));
  ASSERT_OK(ts->PutCall("acme", MakeCall("c2", kT0)));
  auto page = ts->ReadChanges("acme", "", 10);
  ASSERT_OK(page);
  ASSERT_EQ(page->events.size(), 3u);
  auto mid = ts->ReadChanges("acme", "", 1);
  ASSERT_OK(mid);
  ts.Close();
  fs::remove_all(ts.db);
  fs::rename(copy, ts.db);
  ASSERT_OK(ts.Open());
  auto ahead = ts->ReadChanges("acme", page->next_token, 10);
  EXPECT_CODE(ahead, Code::kOutOfRange);
  EXPECT_NE(ahead.status().message().find("ahead"), std::string::npos);
  // The token after event 1 still holds (event 1 is the same).
  auto from_mid = ts->ReadChanges("acme", mid->next_token, 10);
  ASSERT_OK(from_mid);
  EXPECT_TRUE(from_mid->events.empty());
  ASSERT_OK(ts->PutCall("acme", MakeCall("other", kT0)));
  ASSERT_OK(ts->PutCall("acme", MakeCall("other2", kT0)));
  auto reused = ts->ReadChanges("acme", page->next_token, 10);  // seq 3 is another event now
  EXPECT_CODE(reused, Code::kOutOfRange);
  EXPECT_NE(reused.status().message().find("no longer holds"), std::string::npos);
}

// Purge drops the events with the family: ReadChanges is kTenantPurged and
// no byte of any sealed event (nor a call id, in the clear, ever) remains in
// any file of the store.
TEST_F(ChangeFeedTest, PurgeLeavesNoEventBytes) {
  std::vector<std::string> ids;
  for (int i = 0; i < 30; ++i) {
    ids.push_back("feedcanary-" + std::to_string(i) + "-q7x");
    ASSERT_OK(ts->PutCall("acme", MakeCall(ids.back(), kT0 + i)));
  }
  for (int i = 0; i < 10; ++i) ASSERT_OK(ts->DeleteCall("acme", ids[i]));
  ASSERT_OK(ts->Flush());
  // The sealed event rows as stored.
  auto info = ts->DescribeTenant("acme");
  ASSERT_OK(info);
  const std::string shard = ts->ShardPaths().at(info->shard);
  ts.Close();
  std::vector<std::string> sealed;
  {
    testutil::RawShard raw(shard, /*read_only=*/true);
    ASSERT_TRUE(raw.status().ok()) << raw.status().ToString();
    for (auto& [k, v] : raw.Scan(info->column_family)) {
      if (k[0] == format::kChangePrefix) sealed.push_back(v.substr(10, 40));  // nonce and ciphertext
    }
  }
  ASSERT_EQ(sealed.size(), 40u);
  // The scan can see them: every one is in some file before the purge.
  for (size_t i = 0; i < sealed.size(); i += 8) {
    EXPECT_FALSE(testutil::FindInTree(ts.tmp.path(), {sealed[i]}).empty()) << i;
  }
  // Call ids never appear in the clear, events or not.
  EXPECT_EQ(testutil::FindInTree(ts.tmp.path(), ids), std::vector<std::string>{});
  ASSERT_OK(ts.Open());
  ASSERT_OK(ts->PurgeTenant("acme"));
  EXPECT_CODE(ts->ReadChanges("acme", "", 10), Code::kTenantPurged);
  ASSERT_OK(ts->Flush());
  ts.Close();
  EXPECT_EQ(testutil::FindInTree(ts.tmp.path(), sealed), std::vector<std::string>{});
}

// Power loss (FaultFS) at a random mutating I/O while puts, batches,
// updates, deletes and erasures run: after recovery the feed, replayed from
// the start, gives exactly the calls and versions the store holds (a change
// never survives without its event, nor an event without its change), and
// every acknowledged change is there.
TEST(ChangeFeedCrashTest, PowerLossNeverSplitsAChangeFromItsEvent) {
  const uint64_t seed = Seed();
  std::printf("[change feed power loss] seed=%llu (replay: CALLVAULT_SEED=%llu)\n",
              static_cast<unsigned long long>(seed), static_cast<unsigned long long>(seed));
  std::mt19937_64 rng(seed);
  testutil::TempDir tmp;
  const std::string db = tmp.Sub("db"), keys = tmp.Sub("keys");
  auto open = [&](rocksdb::Env* env, bool create) -> Result<std::unique_ptr<Store>> {
    auto kp = NewFileKeyProvider(keys, {.create_if_missing = create, .env = env});
    if (!kp.ok()) return kp.status();
    Options o = testutil::DefaultOptions(*kp);
    o.env = env;
    o.create_if_missing = create;
    return Store::Open(o, db);
  };
  {
    auto quiet = std::make_shared<testutil::FaultFS>(0);
    auto env = testutil::FaultEnv(quiet);
    auto st = open(env.get(), true);
    ASSERT_OK(st);
    ASSERT_OK((*st)->CreateTenant({.tenant_id = "acme"}));
  }
  LiveSet model;  // acknowledged: call id -> version
  const int kCycles = std::getenv("CALLVAULT_SOAK") != nullptr ? 400 : 20;
  int crashed = 0, in_flight_applied = 0;
  uint64_t ops_total = 0;
  // One subject per erasure ever: ops_total is not advanced by the
  // operation a freeze breaks off, so it once named the next cycle's first
  // erasure's subject too, and that erasure rightly took both calls.
  uint64_t subjects = 0;
  for (int cycle = 0; cycle < kCycles; ++cycle) {
    SCOPED_TRACE("cycle " + std::to_string(cycle) + " seed " + std::to_string(seed));
    auto ffs = std::make_shared<testutil::FaultFS>(seed + cycle);
    auto env = testutil::FaultEnv(ffs);
    std::set<std::string> in_flight;  // calls the failed operation touched
    {
      auto st = open(env.get(), false);
      ASSERT_OK(st);
      Store* s = st->get();
      ffs->FreezeAt(1 + rng() % 60);
      for (int op = 0; op < 200 && !ffs->frozen(); ++op, ++ops_total) {
        const std::string id = "c" + std::to_string(rng() % 40);
        const int what = static_cast<int>(rng() % 10);
        in_flight = {id};
        if (what < 4) {
          auto r = s->PutCall("acme", MakeCall(id, kT0 + static_cast<int64_t>(rng() % 1000)));
          if (!r.ok()) break;
          model[id] = r->version;
        } else if (what < 6) {
          std::vector<Call> batch;
          in_flight.clear();
          for (int j = 0; j < 3; ++j) {
            const std::string b = "b" + std::to_string(rng() % 20);
            if (!in_flight.insert(b).second) continue;
            batch.push_back(MakeCall(b, kT0));
          }
          auto r = s->PutCalls("acme", batch);
          if (!r.ok()) break;
          for (const auto& p : *r) model[p.call_id] = p.version;
        } else if (what < 8) {
          Call patch;
          patch.insights.summary = "v" + std::to_string(op);
          auto r = s->UpdateCall("acme", id, kPartInsights, patch);
          if (r.status().code() == Code::kNotFound) continue;
          if (!r.ok()) break;
          model[id] = r->version;
        } else if (what < 9) {
          auto r = s->DeleteCall("acme", id, std::optional<uint64_t>());
          if (r.status().code() == Code::kNotFound) continue;
          if (!r.ok()) break;
          model.erase(id);
        } else {
          // An erasure of the subject of one call (physical: off, no compaction).
          Call c = MakeCall(id, kT0);
          c.participants[1].email = "s" + std::to_string(++subjects) + "@subject.example";
          auto p = s->PutCall("acme", c);
          if (!p.ok()) break;
          model[id] = p->version;
          auto e = s->Erase("acme", {.subject = c.participants[1].email, .physical = false});
          if (!e.ok()) break;
          model.erase(id);
        }
        in_flight.clear();
      }
      if (ffs->frozen()) ++crashed;
      ffs->Freeze();
    }
    ffs->SimulatePowerLoss(cycle % 2 == 0 ? testutil::PowerLossMode::kDropUnsynced
                                          : testutil::PowerLossMode::kRandomTail);
    auto quiet = std::make_shared<testutil::FaultFS>(0);
    auto qenv = testutil::FaultEnv(quiet);
    auto st = open(qenv.get(), false);
    ASSERT_OK(st);
    std::string token;
    LiveSet fed;
    ASSERT_OK(Follow(st->get(), "acme", &token, &fed, 1000));
    const LiveSet listed = Listed(st->get(), "acme");
    ASSERT_EQ(fed, listed) << "the feed and the calls disagree after a power loss";
    // Every acknowledged change survived; the one in flight may or may not.
    for (const auto& [id, v] : model) {
      if (in_flight.count(id)) continue;
      auto it = listed.find(id);
      ASSERT_TRUE(it != listed.end()) << "acknowledged call lost: " << id;
      EXPECT_EQ(it->second, v) << id;
    }
    for (const auto& [id, v] : listed) {
      if (in_flight.count(id)) continue;
      EXPECT_TRUE(model.count(id)) << "a deleted call came back: " << id;
    }
    for (const auto& id : in_flight) {
      auto it = listed.find(id);
      const bool now = it != listed.end();
      if (now != static_cast<bool>(model.count(id)) || (now && it->second != model[id])) {
        ++in_flight_applied;
      }
      if (now) {
        model[id] = it->second;
      } else {
        model.erase(id);
      }
    }
  }
  std::printf("change feed power loss: %d cycles, %d crashed mid-operation, %llu operations, "
              "%d in-flight applied, 0 split\n",
              kCycles, crashed, static_cast<unsigned long long>(ops_total), in_flight_applied);
}

// --- The feed a change remembers (Tenant::feed) ----------------------------
//
// A change does not read the change feed back to find its sequence and the
// oldest event: the tenant remembers them (changes.cc), and only a change
// whose batch is written moves what it remembers. These tests hold the
// feed to a model after changes that are written, changes refused before
// their batch, changes whose batch is never written (the tombstone log
// refuses them), key rotations and reopens: the sequences stay dense, from
// 1, with exactly the newest Options::change_feed_max_events events held,
// each naming the call its change touched.

// The events the feed holds, read from its start.
std::vector<ChangeEvent> Feed(Store* store, const std::string& tenant) {
  std::vector<ChangeEvent> out;
  std::string token;
  for (int pages = 0; pages < 1000; ++pages) {
    auto page = store->ReadChanges(tenant, token, 50);
    EXPECT_OK(page);
    if (!page.ok()) break;
    for (auto& e : page->events) out.push_back(std::move(e));
    token = page->next_token;
    if (page->events.size() < 50) break;
  }
  return out;
}

// What the feed must hold. Every event appended (call id, kind), at
// sequences 1, 2, ...; a change removes the events held before it that are
// beyond the newest `max` (changes.cc), and keeps all of its own.
struct Model {
  size_t max = 0;
  std::vector<std::pair<std::string, ChangeKind>> appended;
  uint64_t first = 1;  // the oldest held

  // One written change and its events.
  void Change(const std::vector<std::pair<std::string, ChangeKind>>& events) {
    const uint64_t before = appended.size();
    appended.insert(appended.end(), events.begin(), events.end());
    const uint64_t n = appended.size();
    const uint64_t keep_from = n > max ? n - max + 1 : 1;
    first = std::max(first, std::min(keep_from, before + 1));
  }
  void Change(const std::string& id, ChangeKind kind) { Change({{id, kind}}); }

  void Check(Store* store, const std::string& tenant, const std::string& where) const {
    SCOPED_TRACE(where);
    const auto held = Feed(store, tenant);
    const uint64_t n = appended.size();
    std::string seqs;
    for (const auto& e : held) seqs += " " + std::to_string(e.sequence);
    ASSERT_EQ(held.size(), n + 1 - first) << n << " appended; held:" << seqs;
    for (size_t i = 0; i < held.size(); ++i) {
      const uint64_t seq = first + i;
      EXPECT_EQ(held[i].sequence, seq);
      EXPECT_EQ(held[i].call_id, appended[seq - 1].first) << "event " << seq;
      EXPECT_EQ(held[i].kind, appended[seq - 1].second) << "event " << seq;
    }
  }
};

// Makes the key directory's tombstone log refuse appends (a directory where
// the file goes), so a delete or an erasure fails after its batch is built
// and before it is written; and puts the log back.
class BlockedTombstones {
 public:
  explicit BlockedTombstones(const std::string& keys)
      : log_(keys + "/TOMBSTONES"), aside_(keys + "/TOMBSTONES.aside") {
    had_ = fs::exists(log_);
    if (had_) fs::rename(log_, aside_);
    fs::create_directory(log_);
  }
  ~BlockedTombstones() {
    fs::remove(log_);
    if (had_) fs::rename(aside_, log_);
  }

 private:
  const std::string log_, aside_;
  bool had_ = false;
};

TEST(ChangeFeedCacheTest, AChangeWhoseBatchIsNotWrittenTakesNoSequence) {
  TestStore ts;
  ASSERT_OK(ts.Open());
  ASSERT_OK(ts->CreateTenant({.tenant_id = "acme"}));
  Model m{.max = 1000};
  for (int i = 0; i < 3; ++i) {
    const std::string id = "c" + std::to_string(i);
    ASSERT_OK(ts->PutCall("acme", MakeCall(id, kT0 + i)));
    m.Change(id, ChangeKind::kPut);
  }
  Call c = MakeCall("c3", kT0 + 3);
  c.participants[1].email = "erase.me@subject.example";
  ASSERT_OK(ts->PutCall("acme", c));
  m.Change("c3", ChangeKind::kPut);
  {
    BlockedTombstones blocked(ts.keys);
    // Each builds its batch with its event (the next sequence), then fails
    // at the tombstone log: nothing written.
    EXPECT_FALSE(ts->DeleteCall("acme", "c1").ok());
    EXPECT_FALSE(ts->Erase("acme", {.subject = "erase.me@subject.example"}).ok());
    EXPECT_FALSE(ts->DeleteCall("acme", "c2").ok());
  }
  EXPECT_OK(ts->GetCall("acme", "c1"));
  EXPECT_OK(ts->GetCall("acme", "c3"));
  m.Check(ts.store.get(), "acme", "after the refused deletes");
  ASSERT_OK(ts->PutCall("acme", MakeCall("c4", kT0 + 4)));
  m.Change("c4", ChangeKind::kPut);
  ASSERT_OK(ts->DeleteCall("acme", "c1"));
  m.Change("c1", ChangeKind::kDelete);
  m.Check(ts.store.get(), "acme", "after the next changes");
  ts.Close();
  ASSERT_OK(ts.Open());
  ASSERT_OK(ts->PutCall("acme", MakeCall("c5", kT0 + 5)));
  m.Change("c5", ChangeKind::kPut);
  m.Check(ts.store.get(), "acme", "after a reopen");
}

// Random changes, some refused, some never written, with key rotations and
// reopens between them; after each step the feed is the model's.
TEST(ChangeFeedCacheTest, TheFeedStaysTheModelsThroughEveryKindOfChange) {
  const uint64_t seed = Seed();
  SCOPED_TRACE("CALLVAULT_SEED=" + std::to_string(seed));
  std::mt19937_64 rng(seed);
  TestStore ts;
  ts.options.change_feed_max_events = 9;
  ASSERT_OK(ts.Open());
  ASSERT_OK(ts->CreateTenant({.tenant_id = "acme"}));
  Model m{.max = 9};
  std::map<std::string, uint64_t> live;  // call id -> version
  auto pick = [&]() -> std::string {
    if (live.empty()) return "none";
    auto it = live.begin();
    std::advance(it, rng() % live.size());
    return it->first;
  };
  int next_id = 0;
  for (int step = 0; step < 160; ++step) {
    const std::string where = "step " + std::to_string(step);
    SCOPED_TRACE(where);
    switch (rng() % 10) {
      case 0:
      case 1: {  // a put of a new call or over a live one
        const std::string id = live.empty() || rng() % 2 ? "c" + std::to_string(next_id++) : pick();
        auto r = ts->PutCall("acme", MakeCall(id, kT0 + step));
        ASSERT_OK(r);
        live[id] = r->version;
        m.Change(id, ChangeKind::kPut);
        break;
      }
      case 2: {  // a batch: one event per call, in order
        std::vector<Call> batch;
        const int n = 1 + static_cast<int>(rng() % 12);
        for (int i = 0; i < n; ++i) {
          batch.push_back(MakeCall("c" + std::to_string(next_id++), kT0 + step));
        }
        auto r = ts->PutCalls("acme", batch);
        ASSERT_OK(r);
        std::vector<std::pair<std::string, ChangeKind>> events;
        for (const auto& p : *r) {
          live[p.call_id] = p.version;
          events.emplace_back(p.call_id, ChangeKind::kPut);
        }
        m.Change(events);
        break;
      }
      case 3: {  // an update
        if (live.empty()) break;
        const std::string id = pick();
        Call patch;
        patch.insights.summary = "llm ran at step " + std::to_string(step);
        auto r = ts->UpdateCall("acme", id, kPartInsights, patch);
        ASSERT_OK(r);
        live[id] = r->version;
        m.Change(id, ChangeKind::kUpdate);
        break;
      }
      case 4: {  // a delete
        if (live.empty()) break;
        const std::string id = pick();
        ASSERT_OK(ts->DeleteCall("acme", id));
        live.erase(id);
        m.Change(id, ChangeKind::kDelete);
        break;
      }
      case 5: {  // refused before its batch: a conflict
        if (live.empty()) break;
        const std::string id = pick();
        EXPECT_CODE(ts->PutCall("acme", MakeCall(id, kT0), live[id] + 1000), Code::kConflict);
        EXPECT_CODE(ts->DeleteCall("acme", id, live[id] + 1000), Code::kConflict);
        break;
      }
      case 6: {  // a batch built and never written
        if (live.empty()) break;
        BlockedTombstones blocked(ts.keys);
        EXPECT_FALSE(ts->DeleteCall("acme", pick()).ok());
        break;
      }
      case 7:
        if (rng() % 3 == 0) ASSERT_OK(ts->RotateTenantKey("acme"));
        break;
      case 8:
        if (rng() % 4 == 0) {
          ts.Close();
          ASSERT_OK(ts.Open());
        }
        break;
      default:
        m.Check(ts.store.get(), "acme", where);
        if (::testing::Test::HasFailure()) return;
        break;
    }
  }
  m.Check(ts.store.get(), "acme", "at the end");
  EXPECT_GT(m.appended.size(), m.max);  // the horizon was crossed
}

}  // namespace
}  // namespace callvault
