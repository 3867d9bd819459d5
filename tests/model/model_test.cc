// Model tests of the query API (issue 3, items 3, 5, 6 and 8).
//
//   ModelTest.RandomOperationsMatchModel  thousands of random puts, re-ingests,
//       updates, deletes, batch puts (valid and invalid), erasures and reopens
//       on three tenants, checked against an in-memory model: gets (whole and
//       by parts, one and in batches), transcript windows, listings with
//       random filters, orders and page sizes walked through cursors, counts
//       by query, references, receipts; partial updates (UpdateCall) with
//       and without expected versions, and every call's version (monotonic
//       per call id, also across a delete and a re-put; decision 0028).
//       CALLVAULT_SEED=<n> replays a run; CALLVAULT_MODEL_OPS=<n> scales it.
//   CursorTest.*   stability under concurrent and interleaved writers;
//       forged, truncated, bit-flipped, cross-tenant and cross-query cursors.
//   EraseTest.*    dry run, guard, effect, receipts.
//   PlannerTest.*  every index plan gives the listing the model gives.
//   BatchTest.*    a batch put whose calls resolve to one stored call.
//   ConcurrentReadTest.*  reads of a call that is being rewritten.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <map>
#include <set>
#include <thread>

#include "callvault/limits.h"
#include "callvault/store.h"
#include "tests/model/model_util.h"
#include "tests/testutil/testutil.h"
#include "workload/workload.h"

namespace callvault {
namespace {

using model::kC0;
using model::kSec;
using model::kT0;
using model::kU0;
using model::Rng;
using model::TenantModel;
using testutil::TestStore;

// Like ASSERT_OK and EXPECT_CODE of testutil.h, but usable with <<.
template <typename T>
::testing::AssertionResult IsOk(const T& r) {
  const Status& s = testutil::StatusOf(r);
  if (s.ok()) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << s.ToString();
}
template <typename T>
::testing::AssertionResult HasCode(const T& r, Code code) {
  const Status& s = testutil::StatusOf(r);
  if (s.code() == code) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "want " << CodeName(code) << ", got " << (s.ok() ? std::string("ok") : s.ToString());
}

workload::GeneratorOptions FastGenerator(uint64_t seed) {
  workload::GeneratorOptions o;
  o.seed = seed;
  o.transcript_scale = 0.02;
  return o;
}

// Every page of a listing, in order. Checks the page contract on the way:
// no page is larger than the limit, a page with a next_cursor is full, and
// the page after a next_cursor (in a store nobody writes to) is not empty.
std::vector<Call> WalkAll(Store* store, std::string_view tenant, ListQuery q,
                          size_t* pages_out = nullptr, bool quiescent = true) {
  std::vector<Call> out;
  const size_t limit = q.limit == 0 ? limits::kDefaultListLimit : q.limit;
  size_t pages = 0;
  for (;;) {
    auto page = store->ListCalls(tenant, q);
    if (!page.ok()) {
      ADD_FAILURE() << "ListCalls " << model::QueryString(q) << " page " << pages << ": "
                    << page.status().ToString();
      break;
    }
    ++pages;
    EXPECT_LE(page->calls.size(), limit) << model::QueryString(q);
    if (!page->next_cursor.empty()) {
      EXPECT_EQ(page->calls.size(), limit) << "a page with a cursor is not full";
    }
    if (quiescent && pages > 1 && !q.cursor.empty()) {
      EXPECT_FALSE(page->calls.empty())
          << "a cursor led to an empty page " << model::QueryString(q);
    }
    for (auto& c : page->calls) out.push_back(std::move(c));
    if (page->next_cursor.empty()) break;
    q.cursor = page->next_cursor;
    if (pages > 200'000) {
      ADD_FAILURE() << "listing does not end";
      break;
    }
  }
  if (pages_out != nullptr) *pages_out += pages;
  return out;
}

// started_at is monotonic in the listing's direction and no call_id appears
// twice. Returns false (after reporting) if not.
bool OrderedAndUnique(const std::vector<Call>& got, bool newest_first, const std::string& what) {
  std::set<std::string> seen;
  for (size_t i = 0; i < got.size(); ++i) {
    if (!seen.insert(got[i].call_id).second) {
      ADD_FAILURE() << what << ": call " << got[i].call_id << " listed twice";
      return false;
    }
    if (i > 0) {
      const int64_t a = got[i - 1].started_at, b = got[i].started_at;
      if (newest_first ? b > a : b < a) {
        ADD_FAILURE() << what << ": out of order at " << i << ": " << a << " then " << b;
        return false;
      }
    }
  }
  return true;
}

// The listing equals the model's: same calls (metadata only), ordered by
// started_at; the order among equal started_at is the engine's (a keyed
// hash), so it is compared as a set.
void ExpectListing(const TenantModel& m, const ListQuery& q, const std::vector<Call>& got) {
  const std::string what = m.id + " " + model::QueryString(q);
  if (!OrderedAndUnique(got, q.newest_first, what)) return;
  std::map<std::string, const Call*> want;
  for (const auto& [id, c] : m.calls) {
    if (model::Matches(q, c)) want[id] = &c;
  }
  std::set<std::string> got_ids;
  for (const auto& c : got) {
    got_ids.insert(c.call_id);
    auto it = want.find(c.call_id);
    if (it == want.end()) {
      ADD_FAILURE() << what << ": listed " << c.call_id
                    << (m.calls.count(c.call_id) ? " which does not match the filters"
                                                 : " which does not exist");
      continue;
    }
    const Call expect = model::Strip(*it->second, kPartMetadata);
    if (!(c == expect))
      ADD_FAILURE() << what << ": " << c.call_id << " differs:\n" << model::Diff(expect, c);
  }
  for (const auto& [id, c] : want) {
    if (!got_ids.count(id)) {
      ADD_FAILURE() << what << ": missing " << id << " (started_at " << c->started_at << ")";
    }
  }
}

// ---------------------------------------------------------------------------
// The randomized model test.

class ModelRunner {
 public:
  explicit ModelRunner(uint64_t seed) : seed_(seed), r_(seed), gen_(FastGenerator(seed)) {}

  void Run(size_t ops) {
    const auto t0 = std::chrono::steady_clock::now();
    ts_.options.sync_writes = false;  // durability is not under test; reopen closes cleanly
    ASSERT_TRUE(IsOk(ts_.Open()));
    for (const char* t : {"acme", "globex", "initech"}) {
      ASSERT_TRUE(IsOk(ts_->CreateTenant({.tenant_id = t})));
      tenants_.push_back(TenantModel{t, {}, {}});
    }
    for (auto& m : tenants_) {  // a few calls to start from
      for (int i = 0; i < 3; ++i) OpBatch(m);
    }
    for (size_t op = 0; op < ops; ++op) {
      SCOPED_TRACE("seed " + std::to_string(seed_) + " op " + std::to_string(op));
      TenantModel& m = tenants_[r_.Below(tenants_.size())];
      const double u = static_cast<double>(r_.Below(1000)) / 1000.0;
      if (u < 0.30) {
        OpPut(m, kNew);
      } else if (u < 0.45) {
        OpPut(m, kReingest);
      } else if (u < 0.54) {
        OpPut(m, kUpdate);
      } else if (u < 0.64) {
        OpUpdateCall(m);
      } else if (u < 0.77) {
        OpDelete(m);
      } else if (u < 0.92) {
        OpBatch(m);
      } else if (u < 0.95) {
        OpInvalid(m);
      } else {
        OpErase(m);
      }
      if (::testing::Test::HasFailure()) {
        std::cout << "[ model ] first failure at op " << op
                  << "; replay with CALLVAULT_SEED=" << seed_ << " CALLVAULT_MODEL_OPS=" << ops
                  << "\n";
        return;
      }
      if ((op + 1) % 500 == 0) {
        ASSERT_TRUE(IsOk(ts_.Reopen()));
        ++stats_["reopen"];
        CheckAll(/*full=*/true);
      } else if ((op + 1) % 50 == 0) {
        CheckAll(/*full=*/false);
      }
      if (::testing::Test::HasFailure()) {
        std::cout << "[ model ] first failure at the check after op " << op
                  << "; replay with CALLVAULT_SEED=" << seed_ << " CALLVAULT_MODEL_OPS=" << ops
                  << "\n";
        return;
      }
    }
    ASSERT_TRUE(IsOk(ts_.Reopen()));
    CheckAll(/*full=*/true);
    auto v = ts_->Verify();
    ASSERT_TRUE(IsOk(v));
    EXPECT_EQ(v->records_failed, 0u);
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::cout << "[ model ] seed=" << seed_ << " ops=" << ops << " seconds=" << secs;
    for (const auto& m : tenants_) std::cout << " " << m.id << "=" << m.calls.size();
    std::cout << "\n[ model ]";
    for (const auto& [k, n] : stats_) std::cout << " " << k << "=" << n;
    std::cout << "\n";
  }

 private:
  enum Kind { kNew, kReingest, kUpdate };

  Store* store() { return ts_.store.get(); }
  std::string FreshId() { return "call-" + std::to_string(next_id_++); }
  std::string FreshSource() { return "src-" + std::to_string(next_source_++); }

  const Call& AnyCall(const TenantModel& m) {
    auto it = m.calls.begin();
    std::advance(it, static_cast<std::ptrdiff_t>(r_.Below(m.calls.size())));
    return it->second;
  }

  // The call one put sends.
  Call OpCall(const TenantModel& m, Kind kind) {
    std::vector<const Call*> sourced;
    for (const auto& [id, c] : m.calls) {
      if (!c.source_call_id.empty()) sourced.push_back(&c);
    }
    if (kind == kReingest && sourced.empty()) kind = kUpdate;
    if (kind == kUpdate && m.calls.empty()) kind = kNew;
    if (kind == kNew) {
      std::string id = FreshId();
      if (!m.gone.empty() && r_.Chance(0.15)) {  // a deleted call's id, again
        auto it = m.gone.begin();
        std::advance(it, static_cast<std::ptrdiff_t>(r_.Below(m.gone.size())));
        id = *it;
      }
      Call c = model::RandomCall(r_, gen_, id);
      if (r_.Chance(0.5)) c.source_call_id = FreshSource();
      if (!sourced.empty() && r_.Chance(0.1)) {  // same origin id, another system
        const Call* s = sourced[r_.Below(sourced.size())];
        c.source_call_id = s->source_call_id;
        c.source_system = static_cast<SourceSystem>(
            (static_cast<int>(s->source_system) + 1 + static_cast<int>(r_.Below(6))) % 7);
      }
      ++stats_["put_new"];
      return c;
    }
    if (kind == kReingest) {
      const Call* s = sourced[r_.Below(sourced.size())];
      std::string id = FreshId();
      if (r_.Chance(0.2))
        id = s->call_id;
      else if (r_.Chance(0.25))
        id = AnyCall(m).call_id;  // another call's id: the source wins
      Call c = model::RandomCall(r_, gen_, id);
      c.source_system = s->source_system;
      c.source_call_id = s->source_call_id;
      ++stats_["put_reingest"];
      return c;
    }
    const Call& x = AnyCall(m);
    Call c = model::RandomCall(r_, gen_, x.call_id);
    const double u = static_cast<double>(r_.Below(100)) / 100.0;
    if (u < 0.6) {
      c.source_system = x.source_system;
      c.source_call_id = x.source_call_id;
    } else if (u < 0.8) {
      c.source_call_id.clear();
    } else {
      c.source_call_id = FreshSource();
    }
    ++stats_["put_update"];
    return c;
  }

  // A write returned `v` for call `id`: above every version that id ever had
  // (also before a delete), and the live call's version in the model.
  void NoteVersion(TenantModel& m, const std::string& id, uint64_t v, const std::string& what) {
    uint64_t& last = versions_[m.id][id];
    EXPECT_GT(v, last) << what << " " << m.id << "/" << id << ": version not above one seen before";
    last = std::max(last, v);
    auto it = m.calls.find(id);
    if (it != m.calls.end()) it->second.version = v;
  }

  // UpdateCall of random parts of a random call, with the right expected
  // version, a stale one (kConflict, nothing changed) or none.
  void OpUpdateCall(TenantModel& m) {
    if (m.calls.empty()) return OpPut(m, kNew);
    const std::string id = AnyCall(m).call_id;
    const Call before = m.calls.at(id);
    uint32_t parts = 0;
    while (parts == 0) {
      for (uint32_t bit : {kPartFields, kPartParticipants, kPartTranscript, kPartInsights}) {
        if (r_.Chance(0.4)) parts |= bit;
      }
    }
    Call p = model::RandomCall(r_, gen_, r_.Chance(0.5) ? id : "");
    if (r_.Chance(0.15)) p.transcript.clear();
    if (r_.Chance(0.15)) p.insights = Insights{};
    // Keep the source, or take a fresh one (a taken one is update_test's).
    p.source_system = before.source_system;
    p.source_call_id = r_.Chance(0.8) ? before.source_call_id : FreshSource();
    std::optional<uint64_t> expected;
    const uint32_t u = static_cast<uint32_t>(r_.Below(100));
    const bool stale = u >= 60 && u < 75;
    if (u < 60) expected = before.version;
    if (stale) expected = r_.Chance(0.5) ? before.version - 1 : before.version + 1 + r_.Below(3);
    const std::string what = "update parts " + std::to_string(parts) +
                             (stale ? " stale" : expected ? " expected" : "");
    const int64_t lo = model::WallMicros();
    auto res = store()->UpdateCall(m.id, id, parts, p, expected);
    const int64_t hi = model::WallMicros();
    if (stale) {
      ++stats_["update_conflict"];
      EXPECT_TRUE(HasCode(res, Code::kConflict)) << what;
      CheckGet(m, id);
      return;
    }
    ASSERT_TRUE(IsOk(res)) << what;
    ++stats_["update_call"];
    EXPECT_EQ(res->call_id, id);
    EXPECT_FALSE(res->created);
    const Call n = model::Normalized(p);
    Call& c = m.calls.at(id);
    if (parts & kPartFields) {
      c.source_system = n.source_system;
      c.source_call_id = n.source_call_id;
      c.workspace_id = n.workspace_id;
      c.started_at = n.started_at;
      c.duration_ms = n.duration_ms;
      c.scheduled_start = n.scheduled_start;
      c.scheduled_end = n.scheduled_end;
      c.title = n.title;
      c.direction = n.direction;
      c.scope = n.scope;
      c.media = n.media;
      c.language = n.language;
      c.status = n.status;
      c.tags = n.tags;
      c.owner_user_id = n.owner_user_id;
      c.team_ids = n.team_ids;
      c.crm_links = n.crm_links;
    }
    if (parts & kPartParticipants) c.participants = n.participants;
    if (parts & kPartTranscript) c.transcript = n.transcript;
    if (parts & kPartInsights) c.insights = n.insights;
    // A later updated_at is taken, else the store sets now (read back).
    c.updated_at = n.updated_at > before.updated_at ? n.updated_at : 0;
    NoteVersion(m, id, res->version, what);
    ReadBack(m, {id}, lo, hi);
    CheckGet(m, id);
  }

  // Reads back the instants the store chose (input 0) and checks them.
  void ReadBack(TenantModel& m, const std::vector<std::string>& ids, int64_t lo, int64_t hi) {
    for (const auto& id : ids) {
      Call& want = m.calls.at(id);
      if (want.created_at != 0 && want.updated_at != 0) continue;
      auto got = store()->GetCall(m.id, id, kPartMetadata);
      ASSERT_TRUE(IsOk(got));
      if (want.created_at == 0) {
        EXPECT_GE(got->created_at, lo) << id;
        EXPECT_LE(got->created_at, hi) << id;
        want.created_at = got->created_at;
      }
      if (want.updated_at == 0) {
        EXPECT_GE(got->updated_at, lo) << id;
        EXPECT_LE(got->updated_at, hi) << id;
        want.updated_at = got->updated_at;
      }
    }
  }

  void OpPut(TenantModel& m, Kind kind) {
    const Call c = OpCall(m, kind);
    const int64_t lo = model::WallMicros();
    auto res = store()->PutCall(m.id, c);
    const int64_t hi = model::WallMicros();
    ASSERT_TRUE(IsOk(res));
    auto [id, created] = m.ApplyPut(model::Normalized(c));
    EXPECT_EQ(res->call_id, id) << "input call_id " << c.call_id << " source " << c.source_call_id;
    EXPECT_EQ(res->created, created) << id;
    ++stats_[created ? "created" : "updated"];
    NoteVersion(m, id, res->version, "put");
    ReadBack(m, {id}, lo, hi);
    CheckGet(m, id);
  }

  void OpDelete(TenantModel& m) {
    ++stats_["delete"];
    if (m.calls.empty() || r_.Chance(0.15)) {
      std::string id = "never-" + std::to_string(next_id_++);
      if (!m.gone.empty() && r_.Chance(0.5)) id = *m.gone.begin();
      EXPECT_TRUE(HasCode(store()->DeleteCall(m.id, id), Code::kNotFound)) << id;
      return;
    }
    const std::string id = AnyCall(m).call_id;
    if (r_.Chance(0.5)) {
      ASSERT_TRUE(IsOk(store()->DeleteCall(m.id, id)));
    } else {
      const uint64_t v = m.calls.at(id).version;
      auto d = store()->DeleteCall(m.id, id, r_.Chance(0.5) ? std::optional<uint64_t>(v) : std::nullopt);
      ASSERT_TRUE(IsOk(d));
      NoteVersion(m, id, *d, "delete");
    }
    m.Remove(id);
    EXPECT_TRUE(HasCode(store()->GetCall(m.id, id), Code::kNotFound)) << id;
  }

  // A batch whose calls resolve to distinct stored calls (see BatchTest for
  // a batch that does not), applied to the model in order.
  void OpBatch(TenantModel& m) {
    ++stats_["batch"];
    const size_t k = 2 + r_.Below(8);
    std::vector<Call> batch;
    std::set<std::string> targets, ids, sources;
    for (size_t i = 0; i < k; ++i) {
      Call c = OpCall(m, static_cast<Kind>(r_.Below(3)));
      const Call n = model::Normalized(c);
      const Call* t = m.Target(n);
      const std::string target = t ? t->call_id : "new:" + n.call_id;
      const std::string source =
          std::to_string(static_cast<int>(c.source_system)) + "/" + c.source_call_id;
      if (targets.count(target) || ids.count(c.call_id) ||
          (!c.source_call_id.empty() && sources.count(source))) {
        continue;
      }
      targets.insert(target);
      ids.insert(c.call_id);
      if (!c.source_call_id.empty()) sources.insert(source);
      batch.push_back(std::move(c));
    }
    if (r_.Chance(0.08)) {
      OpCollidingBatch(m, std::move(batch));
      return;
    }
    const int64_t lo = model::WallMicros();
    auto res = store()->PutCalls(m.id, batch);
    const int64_t hi = model::WallMicros();
    ASSERT_TRUE(IsOk(res));
    ASSERT_EQ(res->size(), batch.size());
    std::vector<std::string> stored;
    for (size_t i = 0; i < batch.size(); ++i) {
      auto [id, created] = m.ApplyPut(model::Normalized(batch[i]));
      EXPECT_EQ((*res)[i].call_id, id) << "batch[" << i << "]";
      EXPECT_EQ((*res)[i].created, created) << "batch[" << i << "] " << id;
      ++stats_[created ? "created" : "updated"];
      NoteVersion(m, id, (*res)[i].version, "batch");
      stored.push_back(id);
    }
    ReadBack(m, stored, lo, hi);
  }

  // `batch` plus two calls that resolve to one stored call: one names it by
  // call_id, the other by its source_call_id. Rejected, nothing written
  // (see BatchTest).
  void OpCollidingBatch(TenantModel& m, std::vector<Call> batch) {
    const Call* s = nullptr;
    for (const auto& [id, c] : m.calls) {
      if (!c.source_call_id.empty() && (s == nullptr || r_.Chance(0.2))) s = &c;
    }
    if (s == nullptr) return;
    ++stats_["batch_colliding"];
    std::erase_if(batch, [&](const Call& c) {
      return c.call_id == s->call_id || c.source_call_id == s->source_call_id;
    });
    Call by_id = model::RandomCall(r_, gen_, s->call_id);
    by_id.source_call_id = r_.Chance(0.5) ? FreshSource() : "";
    Call by_source = model::RandomCall(r_, gen_, FreshId());
    by_source.source_system = s->source_system;
    by_source.source_call_id = s->source_call_id;
    batch.insert(batch.begin() + static_cast<std::ptrdiff_t>(r_.Below(batch.size() + 1)), by_id);
    batch.insert(batch.begin() + static_cast<std::ptrdiff_t>(r_.Below(batch.size() + 1)),
                 by_source);
    EXPECT_TRUE(HasCode(store()->PutCalls(m.id, batch), Code::kInvalidArgument));
    auto n = store()->CountCalls(m.id);
    ASSERT_TRUE(IsOk(n));
    EXPECT_EQ(*n, m.calls.size()) << "a rejected batch wrote something";
    CheckGet(m, s->call_id);
  }

  // A put or batch with one invalid call: rejected, nothing written.
  void OpInvalid(TenantModel& m) {
    ++stats_["invalid_put"];
    std::vector<Call> batch;
    for (size_t i = 0, k = r_.Below(4); i < k; ++i) {
      Call c = model::RandomCall(r_, gen_, FreshId());
      if (r_.Chance(0.5)) c.source_call_id = FreshSource();
      batch.push_back(std::move(c));
    }
    Call bad = m.calls.empty() ? model::RandomCall(r_, gen_, FreshId()) : AnyCall(m);
    switch (r_.Below(6)) {
      case 0:
        bad.participants.push_back(Participant{.name = "x", .email = "not-an-email"});
        break;
      case 1:
        bad.started_at = 0;
        break;
      case 2:
        bad.call_id = "has space";
        break;
      case 3:
        bad.participants.push_back(Participant{.name = "x", .phone = "0041 22 123"});
        break;
      case 4:
        bad.transcript.push_back(TranscriptSegment{1, 5000, 4000, "backwards", 0.5f});
        break;
      default:
        if (batch.empty()) {
          bad.updated_at = -1;
        } else {
          bad.call_id = batch[0].call_id;  // twice in one batch
          bad.source_call_id.clear();
        }
        break;
    }
    batch.insert(batch.begin() + static_cast<std::ptrdiff_t>(r_.Below(batch.size() + 1)), bad);
    if (batch.size() == 1) {
      EXPECT_TRUE(HasCode(store()->PutCall(m.id, batch[0]), Code::kInvalidArgument));
    } else {
      EXPECT_TRUE(HasCode(store()->PutCalls(m.id, batch), Code::kInvalidArgument));
    }
    auto n = store()->CountCalls(m.id);
    ASSERT_TRUE(IsOk(n));
    EXPECT_EQ(*n, m.calls.size()) << "a rejected batch wrote something";
    if (!m.calls.empty()) CheckGet(m, AnyCall(m).call_id);
  }

  void OpErase(TenantModel& m) {
    const std::string subject = r_.Pick(model::P().subjects);
    EraseRequest req;
    req.subject = model::RawSubject(r_, subject);
    req.mode = r_.Chance(0.3) ? EraseMode::kDelete : EraseMode::kRedact;
    req.dry_run = r_.Chance(0.25);
    req.physical = r_.Chance(0.15);
    std::vector<std::string> matched;
    for (const auto& [id, c] : m.calls) {
      if (model::Roles(c, subject) != 0) matched.push_back(id);
    }
    const bool guard = !matched.empty() && r_.Chance(0.2);
    if (guard) {
      req.max_calls = r_.Below(matched.size());
    } else if (r_.Chance(0.1)) {
      req.max_calls = matched.size();
    }
    const std::string what = "erase " + req.subject +
                             (req.mode == EraseMode::kDelete ? " delete" : " redact") +
                             (req.dry_run ? " dry" : "") + " max " + std::to_string(req.max_calls);
    const int64_t lo = model::WallMicros();
    auto res = store()->Erase(m.id, req);
    const int64_t hi = model::WallMicros();
    if (guard) {
      ++stats_["erase_guarded"];
      EXPECT_TRUE(HasCode(res, Code::kResourceExhausted)) << what;
      return;
    }
    ASSERT_TRUE(IsOk(res)) << what;
    EXPECT_EQ(res->matched, matched.size()) << what;
    if (req.dry_run || matched.empty()) {
      ++stats_[req.dry_run ? "erase_dry" : "erase_nothing"];
      EXPECT_EQ(res->changed, 0u) << what;
      EXPECT_FALSE(res->receipt.has_value()) << what;
      return;
    }
    ++stats_[req.mode == EraseMode::kDelete ? "erase_delete" : "erase_redact"];
    stats_["erased_calls"] += matched.size();
    EXPECT_EQ(res->changed, matched.size()) << what;
    ++expected_receipts_;
    EXPECT_TRUE(res->receipt.has_value()) << what;
    if (res->receipt) {
      EXPECT_EQ(res->receipt->kind,
                req.mode == EraseMode::kDelete ? "erasure_delete" : "erasure_redact");
      EXPECT_EQ(res->receipt->tenant_id, m.id);
      EXPECT_EQ(res->receipt->records, matched.size());
      ExpectNoPersonalData(res->receipt->ToJson());
    }
    for (const auto& id : matched) {
      if (req.mode == EraseMode::kDelete) {
        m.Remove(id);
        EXPECT_TRUE(HasCode(store()->GetCall(m.id, id), Code::kNotFound)) << what;
        continue;
      }
      Call& c = m.calls.at(id);
      const int64_t before = c.updated_at;
      model::Redact(&c, subject);
      auto got = store()->GetCall(m.id, id, kPartMetadata);
      ASSERT_TRUE(IsOk(got));
      EXPECT_GE(got->updated_at, lo) << what;
      EXPECT_LE(got->updated_at, hi) << what;
      EXPECT_NE(got->updated_at, before) << what;
      c.updated_at = got->updated_at;
      NoteVersion(m, id, got->version, what);  // a redaction is a new version
      CheckGet(m, id);
    }
    auto refs = store()->FindReferences(m.id, req.subject);
    ASSERT_TRUE(IsOk(refs));
    EXPECT_TRUE(refs->empty()) << what << ": " << refs->size() << " references remain";
  }

  void ExpectNoPersonalData(const std::string& text) {
    const model::Pools& p = model::P();
    for (const auto* pool : {&p.emails, &p.phones, &p.names}) {
      for (const auto& v : *pool) EXPECT_EQ(text.find(v), std::string::npos) << v << " in " << text;
    }
    EXPECT_EQ(text.find('@'), std::string::npos) << text;
  }

  // --- Checks ----------------------------------------------------------------

  void CheckGet(const TenantModel& m, const std::string& id) {
    ++stats_["get"];
    const Call& want = m.calls.at(id);
    auto whole = store()->GetCall(m.id, id);
    ASSERT_TRUE(IsOk(whole)) << m.id << "/" << id;
    if (!(*whole == want))
      ADD_FAILURE() << m.id << "/" << id << " differs:\n" << model::Diff(want, *whole);
    if (want.version != 0) {
      EXPECT_EQ(whole->version, want.version) << m.id << "/" << id;
    }
    const uint32_t parts = static_cast<uint32_t>(r_.Below(8));
    auto some = store()->GetCall(m.id, id, parts);
    ASSERT_TRUE(IsOk(some));
    const Call expect = model::Strip(want, parts);
    if (!(*some == expect)) {
      ADD_FAILURE() << m.id << "/" << id << " parts " << parts << " differs:\n"
                    << model::Diff(expect, *some);
    }
    const uint32_t from = static_cast<uint32_t>(r_.Below(40'000));
    const uint32_t to = from + static_cast<uint32_t>(r_.Below(40'000));
    auto w = store()->GetTranscriptWindow(m.id, id, from, to);
    ASSERT_TRUE(IsOk(w));
    std::vector<TranscriptSegment> ws;
    for (const auto& s : want.transcript) {
      if (s.end_ms > from && s.start_ms < to) ws.push_back(s);
    }
    EXPECT_TRUE(*w == ws) << m.id << "/" << id << " window [" << from << ", " << to << "): want "
                          << ws.size() << " segments, got " << w->size();
  }

  void CheckList(const TenantModel& m, const ListQuery& q) {
    ++stats_["list"];
    size_t pages = 0;
    const auto got = WalkAll(store(), m.id, q, &pages);
    stats_["pages"] += pages;
    ExpectListing(m, q, got);
    for (const auto& c : got) {
      auto it = m.calls.find(c.call_id);
      if (it != m.calls.end() && it->second.version != 0) {
        EXPECT_EQ(c.version, it->second.version) << m.id << "/" << c.call_id << " in a listing";
      }
    }
    if (r_.Chance(0.15)) {  // a count reads every candidate's summary: now and then
      ++stats_["count_query"];
      ListQuery cq = q;
      cq.limit = 0;
      auto n = store()->CountCalls(m.id, cq);
      ASSERT_TRUE(IsOk(n)) << model::QueryString(q);
      EXPECT_EQ(*n, got.size()) << "CountCalls " << model::QueryString(q);
    }
  }

  void CheckRefs(const TenantModel& m, const std::string& raw) {
    ++stats_["refs"];
    const auto subject = model::NormSubject(raw);
    ASSERT_TRUE(subject.has_value()) << raw;
    auto got = store()->FindReferences(m.id, raw);
    ASSERT_TRUE(IsOk(got)) << raw;
    std::map<std::string, std::pair<int64_t, uint32_t>> want, have;
    for (const auto& [id, c] : m.calls) {
      if (uint32_t roles = model::Roles(c, *subject)) want[id] = {c.started_at, roles};
    }
    for (size_t i = 0; i < got->size(); ++i) {
      const Reference& ref = (*got)[i];
      EXPECT_TRUE(have.emplace(ref.call_id, std::make_pair(ref.started_at, ref.roles)).second)
          << raw << ": " << ref.call_id << " twice";
      if (i > 0) {
        EXPECT_LE((*got)[i - 1].started_at, ref.started_at) << raw << ": not oldest first";
      }
    }
    if (want != have) {
      std::string d;
      for (const auto& [id, v] : want) {
        auto it = have.find(id);
        if (it == have.end())
          d += " missing " + id + " roles " + std::to_string(v.second) + ";";
        else if (it->second != v)
          d += " " + id + " roles want " + std::to_string(v.second) + " got " +
               std::to_string(it->second.second) + ";";
      }
      for (const auto& [id, v] : have) {
        if (!want.count(id)) d += " unexpected " + id + " roles " + std::to_string(v.second) + ";";
      }
      ADD_FAILURE() << m.id << " FindReferences(" << raw << "):" << d;
    }
  }

  void CheckTenant(const TenantModel& m, bool full) {
    auto n = store()->CountCalls(m.id);
    ASSERT_TRUE(IsOk(n));
    EXPECT_EQ(*n, m.calls.size()) << m.id;
    if (full) {
      for (const auto& [id, c] : m.calls) CheckGet(m, id);
    } else {
      for (int i = 0; i < 15 && !m.calls.empty(); ++i) CheckGet(m, AnyCall(m).call_id);
    }
    int gone = 0;
    for (const auto& id : m.gone) {
      if (++gone > 5) break;
      EXPECT_TRUE(HasCode(store()->GetCall(m.id, id), Code::kNotFound)) << m.id << "/" << id;
    }
    // A batch read of live and gone ids, in order, from the model.
    std::vector<std::string> ids;
    for (int i = 0; i < 8 && !m.calls.empty(); ++i) ids.push_back(AnyCall(m).call_id);
    if (!m.gone.empty()) ids.insert(ids.begin() + static_cast<std::ptrdiff_t>(r_.Below(ids.size() + 1)), *m.gone.begin());
    ids.push_back("never-" + std::to_string(next_id_++));
    const uint32_t parts = static_cast<uint32_t>(r_.Below(8));
    auto batch = store()->GetCalls(m.id, ids, parts);
    ASSERT_TRUE(IsOk(batch));
    ASSERT_EQ(batch->size(), ids.size());
    ++stats_["get_calls"];
    for (size_t i = 0; i < ids.size(); ++i) {
      auto it = m.calls.find(ids[i]);
      if (it == m.calls.end()) {
        EXPECT_TRUE(HasCode((*batch)[i], Code::kNotFound)) << m.id << "/" << ids[i];
        continue;
      }
      ASSERT_TRUE(IsOk((*batch)[i])) << m.id << "/" << ids[i];
      const Call expect = model::Strip(it->second, parts);
      if (!(*(*batch)[i] == expect)) {
        ADD_FAILURE() << "GetCalls " << m.id << "/" << ids[i] << " differs:\n"
                      << model::Diff(expect, *(*batch)[i]);
      }
      if (it->second.version != 0) {
        EXPECT_EQ((*batch)[i]->version, it->second.version);
      }
    }
    // One listing without filters (and so without a summary read), then random ones.
    ListQuery all;
    all.newest_first = r_.Chance(0.5);
    all.limit = 1 + r_.Below(50);
    CheckList(m, all);
    for (int i = 0; i < (full ? 12 : 5); ++i) CheckList(m, model::RandomQuery(r_));
    for (int i = 0; i < (full ? 6 : 3); ++i) {
      CheckRefs(m, model::RawSubject(r_, r_.Pick(model::P().subjects)));
    }
  }

  void CheckAll(bool full) {
    for (const auto& m : tenants_) {
      SCOPED_TRACE("check " + m.id + (full ? " (full)" : ""));
      CheckTenant(m, full);
      if (::testing::Test::HasFailure()) return;
    }
    auto receipts = store()->ListReceipts();
    ASSERT_TRUE(IsOk(receipts));
    EXPECT_EQ(receipts->size(), expected_receipts_);
    auto key = store()->SigningPublicKey();
    ASSERT_TRUE(IsOk(key));
    EXPECT_TRUE(IsOk(VerifyReceiptChain(*receipts, *key)));
  }

  uint64_t seed_;
  Rng r_;
  workload::Generator gen_;
  TestStore ts_;
  std::vector<TenantModel> tenants_;
  uint64_t next_id_ = 0, next_source_ = 0;
  size_t expected_receipts_ = 0;
  std::map<std::string, size_t> stats_;
  // tenant -> call id -> the highest version a write returned for it (kept
  // after a delete: a re-put must go above it).
  std::map<std::string, std::map<std::string, uint64_t>> versions_;
};

TEST(ModelTest, RandomOperationsMatchModel) {
  const uint64_t seed = model::SeedFromEnv();
  const size_t ops = static_cast<size_t>(model::EnvU64("CALLVAULT_MODEL_OPS", 4000));
  std::cout << "[ model ] seed=" << seed << " ops=" << ops << " (replay: CALLVAULT_SEED=" << seed
            << ")\n";
  RecordProperty("seed", std::to_string(seed));
  ModelRunner runner(seed);
  runner.Run(ops);
}

// ---------------------------------------------------------------------------
// Cursors under writers.

Call SmallCall(const std::string& id, int64_t started_at, size_t i) {
  Call c = testutil::MakeCall(id, started_at);
  c.owner_user_id = "u-" + std::to_string(i % 3);
  c.workspace_id = "ws-" + std::to_string(i % 2);
  c.duration_ms = static_cast<uint32_t>(1000 * (i % 7));
  c.participants[1].email = "guest" + std::to_string(i % 5) + "@customer.example";
  c.participants[0].user_id = c.owner_user_id;
  c.created_at = kC0;
  c.updated_at = kU0 + static_cast<int64_t>(i) * kSec;
  c.transcript.resize(2);
  return c;
}

std::vector<ListQuery> StabilityQueries() {
  std::vector<ListQuery> qs(8);
  qs[1].newest_first = false;
  qs[2].owners = {"u-1"};
  qs[3].participants = {"guest2@customer.example", "GUEST3@customer.example"};
  qs[3].newest_first = false;
  qs[4].workspace_id = "ws-0";
  qs[4].min_duration_ms = 2000;           // a summary filter on the workspace index
  qs[5].updated_since = kU0 + 50 * kSec;  // the updated_at plan
  qs[6].from = kT0 + 5 * kSec;
  qs[6].to = kT0 + 20 * kSec;
  qs[6].newest_first = false;
  qs[7].direction = Direction::kConference;  // a summary filter on the time index
  qs[7].tags = {"renewal"};
  for (auto& q : qs) q.limit = 7;
  return qs;
}

// Stable calls are never written while listings run; volatile ones are
// inserted, moved (started_at changes), updated and deleted meanwhile. Every
// stable call a query matches must appear exactly once.
TEST(CursorTest, StableUnderConcurrentWriters) {
  const uint64_t seed = model::SeedFromEnv();
  std::cout << "[ cursor ] seed=" << seed << "\n";
  TestStore ts;
  ts.options.sync_writes = false;
  ASSERT_TRUE(IsOk(ts.Open()));
  ASSERT_TRUE(IsOk(ts->CreateTenant({.tenant_id = "t"})));
  TenantModel stable{"t", {}, {}};
  std::vector<Call> init;
  for (size_t i = 0; i < 160; ++i) {
    Call c = SmallCall("s-" + std::to_string(i), kT0 + static_cast<int64_t>(i % 25) * kSec, i);
    stable.calls[c.call_id] = c;
    init.push_back(c);
  }
  for (size_t i = 0; i < 80; ++i) {
    init.push_back(
        SmallCall("v-" + std::to_string(i), kT0 + static_cast<int64_t>(i % 25) * kSec, i));
  }
  ASSERT_TRUE(IsOk(ts->PutCalls("t", init)));

  std::atomic<bool> stop{false};
  std::atomic<size_t> writes{0};
  std::thread writer([&] {
    Rng r(seed ^ 0x5eed);
    std::vector<std::string> live;
    for (size_t i = 0; i < 80; ++i) live.push_back("v-" + std::to_string(i));
    size_t next = 80;
    while (!stop.load()) {
      const size_t u = r.Below(3);
      const int64_t at = kT0 + (r.Slot(29) - 2) * kSec;
      if (u == 0 || live.empty()) {  // insert
        std::string id = "v-" + std::to_string(next++);
        EXPECT_TRUE(IsOk(ts->PutCall("t", SmallCall(id, at, r.Below(100)))));
        live.push_back(id);
      } else if (u == 1) {  // move and change
        Call c = SmallCall(live[r.Below(live.size())], at, r.Below(100));
        c.updated_at = 0;
        EXPECT_TRUE(IsOk(ts->PutCall("t", c)));
      } else {  // delete
        const size_t k = r.Below(live.size());
        EXPECT_TRUE(IsOk(ts->DeleteCall("t", live[k])));
        live.erase(live.begin() + static_cast<std::ptrdiff_t>(k));
      }
      writes.fetch_add(1);
    }
  });

  const auto queries = StabilityQueries();
  size_t walks = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(6);
  while (std::chrono::steady_clock::now() < deadline && !::testing::Test::HasFailure()) {
    for (const auto& q0 : queries) {
      ListQuery q = q0;
      std::vector<Call> got;
      for (;;) {
        auto page = ts->ListCalls("t", q);
        ASSERT_TRUE(IsOk(page)) << model::QueryString(q);
        for (auto& c : page->calls) got.push_back(std::move(c));
        if (page->next_cursor.empty()) break;
        q.cursor = page->next_cursor;
        std::this_thread::sleep_for(std::chrono::microseconds(300));  // let the writer in
      }
      ++walks;
      const std::string what = model::QueryString(q0);
      // Across pages the cursor only moves forward, so even moved calls keep
      // the whole listing ordered; a moved call may appear twice or not at all.
      for (size_t i = 1; i < got.size(); ++i) {
        const int64_t a = got[i - 1].started_at, b = got[i].started_at;
        EXPECT_TRUE(q0.newest_first ? b <= a : b >= a) << what << " at " << i;
      }
      std::map<std::string, int> seen;
      for (const auto& c : got) {
        ++seen[c.call_id];
        EXPECT_TRUE(c.call_id.starts_with("s-") || c.call_id.starts_with("v-")) << c.call_id;
        if (c.call_id.starts_with("s-")) {
          EXPECT_TRUE(model::Matches(q0, stable.calls.at(c.call_id))) << what << " " << c.call_id;
        }
      }
      for (const auto& [id, c] : stable.calls) {
        if (!model::Matches(q0, c)) continue;
        EXPECT_EQ(seen[id], 1) << what << ": stable call " << id << " listed " << seen[id]
                               << " times";
      }
    }
  }
  stop = true;
  writer.join();
  std::cout << "[ cursor ] walks=" << walks << " concurrent writes=" << writes.load() << "\n";
  EXPECT_GT(writes.load(), 50u);
}

// The same without threads, with the writes aimed at the cursor: after each
// page the call the cursor names is deleted (and sometimes put back at the
// same instant), calls are inserted at its started_at, unseen calls are
// moved behind it and seen ones ahead of it.
TEST(CursorTest, StableWhenTheCursorsCallIsDeletedAndNeighboursMove) {
  TestStore ts;
  ts.options.sync_writes = false;
  ASSERT_TRUE(IsOk(ts.Open()));
  ASSERT_TRUE(IsOk(ts->CreateTenant({.tenant_id = "t"})));
  TenantModel stable{"t", {}, {}};
  std::vector<Call> init;
  for (size_t i = 0; i < 200; ++i) {
    const bool vol = i % 2 == 1;
    Call c = SmallCall((vol ? "v-" : "s-") + std::to_string(i),
                       kT0 + static_cast<int64_t>(i % 12) * kSec, i);
    if (!vol) stable.calls[c.call_id] = c;
    init.push_back(c);
  }
  ASSERT_TRUE(IsOk(ts->PutCalls("t", init)));
  Rng r(7);
  size_t next = 1000, anchors_deleted = 0;
  for (const auto& q0 : StabilityQueries()) {
    ListQuery q = q0;
    std::vector<Call> got;
    std::set<std::string> seen_ids;
    for (;;) {
      auto page = ts->ListCalls("t", q);
      ASSERT_TRUE(IsOk(page)) << model::QueryString(q);
      for (auto& c : page->calls) {
        seen_ids.insert(c.call_id);
        got.push_back(std::move(c));
      }
      if (page->next_cursor.empty()) break;
      q.cursor = page->next_cursor;
      const Call& last = got.back();
      if (last.call_id.starts_with("v-")) {
        ASSERT_TRUE(IsOk(ts->DeleteCall("t", last.call_id)));
        ++anchors_deleted;
        if (r.Chance(0.5)) {  // back at the very same position
          ASSERT_TRUE(
              IsOk(ts->PutCall("t", SmallCall(last.call_id, last.started_at, r.Below(100)))));
        }
      }
      for (int k = 0; k < 2; ++k) {
        ASSERT_TRUE(IsOk(ts->PutCall(
            "t", SmallCall("v-" + std::to_string(next++), last.started_at, r.Below(100)))));
      }
      // Move a volatile call from ahead of the cursor to behind it, and one back.
      const int64_t behind =
          q0.newest_first ? last.started_at + 3 * kSec : last.started_at - 3 * kSec;
      const int64_t ahead =
          q0.newest_first ? last.started_at - 2 * kSec : last.started_at + 2 * kSec;
      const std::string mover = "v-" + std::to_string(2 * r.Below(100) + 1);
      ASSERT_TRUE(IsOk(ts->PutCall(
          "t", SmallCall(mover, seen_ids.count(mover) ? ahead : behind, r.Below(100)))));
    }
    const std::string what = model::QueryString(q0);
    for (size_t i = 1; i < got.size(); ++i) {
      const int64_t a = got[i - 1].started_at, b = got[i].started_at;
      EXPECT_TRUE(q0.newest_first ? b <= a : b >= a) << what << " at " << i;
    }
    std::map<std::string, int> seen;
    for (const auto& c : got) ++seen[c.call_id];
    for (const auto& [id, c] : stable.calls) {
      if (model::Matches(q0, c)) {
        EXPECT_EQ(seen[id], 1) << what << ": " << id;
      }
    }
  }
  EXPECT_GT(anchors_deleted, 10u);
}

// ---------------------------------------------------------------------------
// Reads while one call is rewritten and deleted: a read sees one version of
// the call or none, never a mix of two and never kCorruption (which
// status.h reserves for damaged or tampered storage).

Call Version(int n) {
  Call c = SmallCall("x", kT0 + (n % 5) * kSec, static_cast<size_t>(n));
  c.title = "v" + std::to_string(n);
  c.participants[1].email = "watched@customer.example";
  c.transcript.clear();
  c.insights = Insights{};
  if (n % 2 == 0) {  // even versions have a transcript and insights, odd ones none
    for (uint32_t i = 0; i < 3; ++i) {
      c.transcript.push_back(TranscriptSegment{1, i * 1000, i * 1000 + 900, c.title, 0.5f});
    }
    c.insights.summary = c.title;
  }
  return c;
}

TEST(ConcurrentReadTest, GetCallAndFindReferencesSeeOneVersion) {
  TestStore ts;
  ts.options.sync_writes = false;
  ASSERT_TRUE(IsOk(ts.Open()));
  ASSERT_TRUE(IsOk(ts->CreateTenant({.tenant_id = "t"})));
  ASSERT_TRUE(IsOk(ts->PutCall("t", Version(0))));
  std::atomic<bool> stop{false};
  std::atomic<int> versions{0};
  std::thread writer([&] {
    for (int n = 1; !stop.load(); ++n) {
      if (n % 7 == 0) {
        EXPECT_TRUE(IsOk(ts->DeleteCall("t", "x")));
      } else {
        EXPECT_TRUE(IsOk(ts->PutCall("t", Version(n))));
      }
      versions.store(n);
    }
  });
  std::map<std::string, int> errors;  // status -> count
  int gets = 0, found = 0, torn = 0, refs = 0;
  std::string example;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
  while (std::chrono::steady_clock::now() < deadline) {
    ++gets;
    auto c = ts->GetCall("t", "x");
    if (c.ok()) {
      ++found;
      const std::string& v = c->title;
      const int n = std::stoi(v.substr(1));
      bool whole = n % 2 == 0 ? c->transcript.size() == 3 && c->insights.summary == v
                              : c->transcript.empty() && c->insights.empty();
      for (const auto& seg : c->transcript) whole = whole && seg.text == v;
      if (!whole) {
        ++torn;
        example = "title " + v + " with " + std::to_string(c->transcript.size()) + " segments (" +
                  (c->transcript.empty() ? "" : c->transcript[0].text) + ") and summary '" +
                  c->insights.summary + "'";
      }
    } else if (c.status().code() != Code::kNotFound) {
      ++errors["GetCall: " + c.status().ToString()];
    }
    auto w = ts->GetTranscriptWindow("t", "x", 0, 1500);
    if (!w.ok() && w.status().code() != Code::kNotFound) {
      ++errors["GetTranscriptWindow: " + w.status().ToString()];
    }
    auto r = ts->FindReferences("t", "watched@customer.example");
    if (!r.ok()) {
      ++errors["FindReferences: " + r.status().ToString()];
    } else {
      refs += static_cast<int>(r->size());
    }
  }
  stop = true;
  writer.join();
  std::cout << "[ concurrent ] versions=" << versions.load() << " gets=" << gets
            << " found=" << found << " torn=" << torn << " references=" << refs << "\n";
  EXPECT_EQ(torn, 0) << "GetCall mixed two versions of the call, e.g. " << example;
  for (const auto& [e, n] : errors) ADD_FAILURE() << n << " x " << e;
  EXPECT_GT(found, 0);
}

// ---------------------------------------------------------------------------
// Forged cursors.

class CursorForgeryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(IsOk(ts.Open()));
    for (const char* t : {"a", "b"}) {
      ASSERT_TRUE(IsOk(ts->CreateTenant({.tenant_id = t})));
      std::vector<Call> calls;
      for (size_t i = 0; i < 60; ++i) {
        calls.push_back(
            SmallCall("c" + std::to_string(i), kT0 + static_cast<int64_t>(i % 9) * kSec, i));
      }
      ASSERT_TRUE(IsOk(ts->PutCalls(t, calls)));  // the same calls, ids included, in both tenants
    }
    q.owners = {"u-1", "u-2"};
    q.participants = {"guest1@customer.example", "guest2@customer.example"};
    q.from = kT0 + kSec;
    q.limit = 4;
    auto p = ts->ListCalls("a", q);
    ASSERT_TRUE(IsOk(p));
    ASSERT_FALSE(p->next_cursor.empty());
    auto p2 = ts->ListCalls("a", WithCursor(q, p->next_cursor));
    ASSERT_TRUE(IsOk(p2));
    ASSERT_FALSE(p2->next_cursor.empty());
    cursor = p2->next_cursor;  // from the middle of the listing
    auto rest = ts->ListCalls("a", WithCursor(q, cursor));
    ASSERT_TRUE(IsOk(rest));
    ASSERT_FALSE(rest->calls.empty());
    for (const auto& c : rest->calls) continuation.push_back(c.call_id);
  }

  static ListQuery WithCursor(ListQuery query, std::string c) {
    query.cursor = std::move(c);
    return query;
  }
  void ExpectRejected(const ListQuery& query, const std::string& what,
                      std::string_view tenant = "a") {
    auto p = ts->ListCalls(tenant, query);
    EXPECT_TRUE(HasCode(p, Code::kInvalidArgument)) << what << " cursor '" << query.cursor << "'";
  }
  std::vector<std::string> Continue(const ListQuery& query, std::string_view tenant = "a") {
    auto p = ts->ListCalls(tenant, query);
    EXPECT_TRUE(IsOk(p));
    std::vector<std::string> ids;
    if (p.ok()) {
      for (const auto& c : p->calls) ids.push_back(c.call_id);
    }
    return ids;
  }

  TestStore ts;
  ListQuery q;
  std::string cursor;
  std::vector<std::string> continuation;
};

constexpr char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

std::string B64Decode(const std::string& s) {
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : s) {
    acc = (acc << 6) | static_cast<uint32_t>(std::string_view(kB64).find(c));
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  return out;
}

std::string B64Encode(const std::string& b) {
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : b) {
    acc = (acc << 8) | static_cast<uint8_t>(c);
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out.push_back(kB64[(acc >> bits) & 63]);
    }
  }
  if (bits > 0) out.push_back(kB64[(acc << (6 - bits)) & 63]);
  return out;
}

TEST_F(CursorForgeryTest, TheValidCursorWorksAndSurvivesReopen) {
  EXPECT_EQ(B64Encode(B64Decode(cursor)), cursor) << "not base64url";
  EXPECT_EQ(Continue(WithCursor(q, cursor)), continuation);
  // The same query spelled differently is the same query; the page size is
  // not part of it.
  ListQuery same = q;
  same.owners = {"u-2", "u-1"};
  same.participants = {"GUEST2@Customer.Example", "guest1@customer.example"};
  EXPECT_EQ(Continue(WithCursor(same, cursor)), continuation);
  ListQuery bigger = q;
  bigger.limit = 100;
  auto rest = Continue(WithCursor(bigger, cursor));
  ASSERT_GE(rest.size(), continuation.size());
  EXPECT_TRUE(std::equal(continuation.begin(), continuation.end(), rest.begin()));
  ASSERT_TRUE(IsOk(ts.Reopen()));
  EXPECT_EQ(Continue(WithCursor(q, cursor)), continuation);
}

TEST_F(CursorForgeryTest, EverySingleCharacterChangeIsRejected) {
  const std::string others = std::string(kB64) + "=+/.~ \t\n%*";
  size_t tried = 0;
  for (size_t i = 0; i < cursor.size(); ++i) {
    for (char c : others) {
      if (c == cursor[i]) continue;
      std::string forged = cursor;
      forged[i] = c;
      ExpectRejected(WithCursor(q, forged), "char " + std::to_string(i));
      ++tried;
    }
    std::string nul = cursor;
    nul[i] = '\0';
    ExpectRejected(WithCursor(q, nul), "NUL at " + std::to_string(i));
  }
  std::cout << "[ cursor ] " << tried << " single-character forgeries rejected\n";
}

TEST_F(CursorForgeryTest, EveryTruncationExtensionAndDeletionIsRejected) {
  for (size_t n = 1; n < cursor.size(); ++n) {
    ExpectRejected(WithCursor(q, cursor.substr(0, n)), "prefix " + std::to_string(n));
    ExpectRejected(WithCursor(q, cursor.substr(cursor.size() - n)), "suffix " + std::to_string(n));
  }
  for (size_t i = 0; i < cursor.size(); ++i) {
    std::string d = cursor;
    d.erase(i, 1);
    ExpectRejected(WithCursor(q, d), "deleted " + std::to_string(i));
    if (i + 1 < cursor.size() && cursor[i] != cursor[i + 1]) {
      std::string s = cursor;
      std::swap(s[i], s[i + 1]);
      ExpectRejected(WithCursor(q, s), "swapped " + std::to_string(i));
    }
  }
  for (char c : std::string(kB64)) ExpectRejected(WithCursor(q, cursor + c), "extended");
  ExpectRejected(WithCursor(q, cursor + cursor), "doubled");
  ExpectRejected(WithCursor(q, cursor + "="), "padded");
  ExpectRejected(WithCursor(q, " " + cursor), "leading space");
}

TEST_F(CursorForgeryTest, EveryBitFlipIsRejected) {
  const std::string raw = B64Decode(cursor);
  ASSERT_EQ(raw.size(), 58u);
  for (size_t bit = 0; bit < raw.size() * 8; ++bit) {
    std::string flipped = raw;
    flipped[bit / 8] = static_cast<char>(flipped[bit / 8] ^ (1 << (bit % 8)));
    ExpectRejected(WithCursor(q, B64Encode(flipped)), "bit " + std::to_string(bit));
  }
  // Structurally valid cursors with made-up contents.
  Rng r(99);
  for (int i = 0; i < 200; ++i) {
    std::string forged = raw;
    for (size_t k = 10; k < forged.size(); ++k) {
      if (r.Chance(0.5)) forged[k] = static_cast<char>(r.Below(256));
    }
    if (forged == raw) continue;
    ExpectRejected(WithCursor(q, B64Encode(forged)), "random contents");
  }
}

TEST_F(CursorForgeryTest, CrossTenantAndCrossQueryCursorsAreRejected) {
  // Tenant b holds the very same calls under the same ids.
  ExpectRejected(WithCursor(q, cursor), "cross-tenant", "b");
  auto b_first = ts->ListCalls("b", q);
  ASSERT_TRUE(IsOk(b_first));
  ASSERT_FALSE(b_first->next_cursor.empty());
  ExpectRejected(WithCursor(q, b_first->next_cursor), "from tenant b");

  std::vector<std::pair<std::string, ListQuery>> other;
  auto vary = [&](const std::string& name, auto f) {
    ListQuery v = q;
    f(v);
    other.emplace_back(name, v);
  };
  vary("newest_first", [](ListQuery& v) { v.newest_first = !v.newest_first; });
  vary("from", [](ListQuery& v) { v.from += 1; });
  vary("to", [](ListQuery& v) { v.to = kT0 + 100 * kSec; });
  vary("owners-", [](ListQuery& v) { v.owners = {"u-1"}; });
  vary("owners+", [](ListQuery& v) { v.owners.push_back("u-0"); });
  vary("participants", [](ListQuery& v) { v.participants = {"guest1@customer.example"}; });
  vary("crm", [](ListQuery& v) {
    v.crm = CrmRef{"salesforce", CrmObjectType::kOpportunity, "006ABC"};
  });
  vary("workspace", [](ListQuery& v) { v.workspace_id = "ws-0"; });
  vary("updated_since", [](ListQuery& v) { v.updated_since = kU0; });
  vary("direction", [](ListQuery& v) { v.direction = Direction::kConference; });
  vary("scope", [](ListQuery& v) { v.scope = CallScope::kExternal; });
  vary("min_duration", [](ListQuery& v) { v.min_duration_ms = 1; });
  vary("max_duration", [](ListQuery& v) { v.max_duration_ms = 1'000'000; });
  vary("tags", [](ListQuery& v) { v.tags = {"renewal"}; });
  vary("no filters", [](ListQuery& v) { v = ListQuery{}; });
  for (auto& [name, v] : other) {
    v.cursor = cursor;
    ExpectRejected(v, "query changed: " + name);
  }
  // A purged tenant re-created under the same id has new keys.
  ASSERT_TRUE(IsOk(ts->PurgeTenant("a")));
  ASSERT_TRUE(IsOk(ts->CreateTenant({.tenant_id = "a"})));
  ASSERT_TRUE(IsOk(ts->PutCall("a", SmallCall("c1", kT0 + kSec, 1))));
  ExpectRejected(WithCursor(q, cursor), "tenant re-created");
}

// ---------------------------------------------------------------------------
// Erase.

constexpr char kSubjectEmail[] = "dana.subject@customer.example";
constexpr char kSubjectPhone[] = "+14155550199";
const std::vector<std::string> kEmailSpellings = {kSubjectEmail, "DANA.SUBJECT@CUSTOMER.EXAMPLE"};
const std::vector<std::string> kPhoneSpellings = {kSubjectPhone, "+1 (415) 555-0199",
                                                  "+1.415.555.0199"};

class EraseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(IsOk(ts.Open()));
    workload::Generator gen(FastGenerator(5));
    for (const char* t : {"a", "b"}) {
      ASSERT_TRUE(IsOk(ts->CreateTenant({.tenant_id = t})));
      models[t] = TenantModel{t, {}, {}};
      std::vector<Call> calls;
      for (size_t i = 0; i < 60; ++i) {
        Call c = gen.Next();
        c.call_id = "c" + std::to_string(i);
        c.started_at = kT0 + static_cast<int64_t>(i % 10) * kSec;
        c.created_at = kC0;
        c.updated_at = kU0;
        c.participants.resize(std::min<size_t>(c.participants.size(), 4));
        if (c.participants.size() < 2) c.participants.resize(2);
        for (size_t k = 0; k < c.participants.size(); ++k) {
          c.participants[k].speaker_id = static_cast<uint32_t>(k + 1);
          names.insert(c.participants[k].name);
        }
        for (auto& s : c.transcript)
          s.speaker_id = 1 + s.speaker_id % static_cast<uint32_t>(c.participants.size());
        Participant& p = c.participants[1];
        switch (i % 6) {
          case 0:  // a participant, by email (spelled in upper case)
            p.email = "Dana.Subject@Customer.example";
            break;
          case 1:  // by phone only, spelled with separators
            p.email.clear();
            p.phone = "+1 (415) 555-0199";
            break;
          case 2:  // the owner
            p.email = kSubjectEmail;
            p.user_id = c.owner_user_id;
            break;
          case 3:  // only a CRM contact
            c.crm_links.push_back(
                CrmLink{"hubspot", CrmObjectType::kContact, "DANA.SUBJECT@customer.example"});
            c.crm_links.push_back(
                CrmLink{"salesforce", CrmObjectType::kContact, "+1-415-555-0199"});
            break;
          default:  // not at all
            break;
        }
        names.insert(c.participants[1].name);
        calls.push_back(c);
        models[t].ApplyPut(model::Normalized(c));
      }
      ASSERT_TRUE(IsOk(ts->PutCalls(t, calls)));
    }
  }

  struct Snapshot {
    std::map<std::string, std::map<std::string, Call>> calls;  // tenant -> id -> call
    std::map<std::string, std::vector<std::string>> listings;
    std::map<std::string, std::vector<Reference>> refs;
    size_t receipts = 0;
    bool operator==(const Snapshot& o) const {
      auto same_refs = [](const std::vector<Reference>& a, const std::vector<Reference>& b) {
        if (a.size() != b.size()) return false;
        for (size_t i = 0; i < a.size(); ++i) {
          if (a[i].call_id != b[i].call_id || a[i].started_at != b[i].started_at ||
              a[i].roles != b[i].roles)
            return false;
        }
        return true;
      };
      if (calls != o.calls || listings != o.listings || receipts != o.receipts ||
          refs.size() != o.refs.size())
        return false;
      for (const auto& [k, v] : refs) {
        if (!o.refs.count(k) || !same_refs(v, o.refs.at(k))) return false;
      }
      return true;
    }
  };

  std::vector<ListQuery> Queries() {
    std::vector<ListQuery> qs(4);
    qs[1].participants = {kSubjectEmail};
    qs[2].participants = {kSubjectPhone, "guest@nowhere.example"};
    qs[2].newest_first = false;
    qs[3].crm = CrmRef{"hubspot", CrmObjectType::kContact, "DANA.SUBJECT@customer.example"};
    for (auto& q : qs) q.limit = 9;
    return qs;
  }

  Snapshot Take() {
    Snapshot s;
    for (const char* t : {"a", "b"}) {
      for (const auto& q : Queries()) {
        std::vector<std::string> ids;
        for (const auto& c : WalkAll(ts.store.get(), t, q)) {
          ids.push_back(c.call_id);
          auto full = ts->GetCall(t, c.call_id);
          EXPECT_TRUE(IsOk(full));
          if (full.ok()) s.calls[t][c.call_id] = *full;
        }
        s.listings[std::string(t) + model::QueryString(q)] = ids;
      }
      for (const char* subject : {kSubjectEmail, kSubjectPhone}) {
        auto r = ts->FindReferences(t, subject);
        EXPECT_TRUE(IsOk(r));
        if (r.ok()) s.refs[std::string(t) + subject] = *r;
      }
    }
    auto receipts = ts->ListReceipts();
    EXPECT_TRUE(IsOk(receipts));
    if (receipts.ok()) s.receipts = receipts->size();
    return s;
  }

  void ExpectNoPersonalData(const Receipt& r) {
    for (const std::string& text : {r.Canonical(), r.ToJson()}) {
      for (const char* v : {kSubjectEmail, kSubjectPhone, "Dana", "dana", "@"}) {
        EXPECT_EQ(text.find(v), std::string::npos) << v << " in " << text;
      }
      for (const auto& n : names) {
        if (!n.empty()) {
          EXPECT_EQ(text.find(n), std::string::npos) << n << " in " << text;
        }
      }
      for (const auto& [id, c] : models["a"].calls) {
        for (const auto& p : c.participants) {
          if (!p.email.empty()) {
            EXPECT_EQ(text.find(p.email), std::string::npos) << p.email;
          }
          if (!p.phone.empty()) {
            EXPECT_EQ(text.find(p.phone), std::string::npos) << p.phone;
          }
        }
      }
    }
  }

  // No reference and no listing, whatever the spelling of the subject.
  void ExpectNothingMatches(std::string_view tenant, const std::vector<std::string>& spellings) {
    for (const std::string& spelling : spellings) {
      auto refs = ts->FindReferences(tenant, spelling);
      ASSERT_TRUE(IsOk(refs));
      EXPECT_TRUE(refs->empty()) << spelling << ": " << refs->size() << " references left";
      ListQuery q;
      q.participants = {spelling};
      EXPECT_TRUE(WalkAll(ts.store.get(), tenant, q).empty()) << spelling;
      q.newest_first = false;
      q.limit = 1;
      EXPECT_TRUE(WalkAll(ts.store.get(), tenant, q).empty()) << spelling;
    }
  }

  void ExpectMatchesModel(const std::string& t) {
    TenantModel& m = models[t];
    auto n = ts->CountCalls(t);
    ASSERT_TRUE(IsOk(n));
    EXPECT_EQ(*n, m.calls.size());
    for (const auto& [id, want] : m.calls) {
      auto got = ts->GetCall(t, id);
      ASSERT_TRUE(IsOk(got));
      EXPECT_TRUE(*got == want) << t << "/" << id << ":\n" << model::Diff(want, *got);
    }
    for (const auto& q : Queries()) ExpectListing(m, q, WalkAll(ts.store.get(), t, q));
  }

  TestStore ts;
  std::map<std::string, TenantModel> models;
  std::set<std::string> names;
};

TEST_F(EraseTest, DryRunAndGuardChangeNothing) {
  const Snapshot before = Take();
  ASSERT_EQ(before.refs.at(std::string("a") + kSubjectEmail).size(), 30u);  // i % 6 in {0, 2, 3}
  for (const char* subject :
       {kSubjectEmail, "DANA.Subject@customer.EXAMPLE", kSubjectPhone, "+1 415.555.0199"}) {
    const size_t n = model::NormSubject(subject)->find('@') != std::string::npos ? 30u : 20u;
    for (EraseMode mode : {EraseMode::kDelete, EraseMode::kRedact}) {
      auto dry = ts->Erase("a", {.subject = subject, .mode = mode, .dry_run = true});
      ASSERT_TRUE(IsOk(dry));
      EXPECT_EQ(dry->matched, n) << subject;
      EXPECT_EQ(dry->changed, 0u);
      EXPECT_FALSE(dry->receipt.has_value());
      for (size_t max : {size_t{0}, size_t{1}, n - 1}) {
        auto guarded = ts->Erase("a", {.subject = subject, .mode = mode, .max_calls = max});
        EXPECT_TRUE(HasCode(guarded, Code::kResourceExhausted)) << subject << " max " << max;
      }
    }
  }
  EXPECT_TRUE(Take() == before) << "a dry run or a tripped guard changed something";
  ASSERT_TRUE(IsOk(ts.Reopen()));
  EXPECT_TRUE(Take() == before) << "after reopen";
}

TEST_F(EraseTest, RedactThenDeleteLeaveNothingAndReceiptsVerify) {
  const Snapshot before = Take();
  // Redact the phone: the 20 calls where it appears (participant or CRM).
  int64_t lo = model::WallMicros();
  auto red =
      ts->Erase("a", {.subject = "+1 (415) 555-0199", .mode = EraseMode::kRedact, .max_calls = 20});
  int64_t hi = model::WallMicros();
  ASSERT_TRUE(IsOk(red));
  EXPECT_EQ(red->matched, 20u);
  EXPECT_EQ(red->changed, 20u);
  ASSERT_TRUE(red->receipt.has_value());
  EXPECT_EQ(red->receipt->kind, "erasure_redact");
  EXPECT_EQ(red->receipt->records, 20u);
  ExpectNoPersonalData(*red->receipt);
  TenantModel& a = models["a"];
  for (auto& [id, c] : a.calls) {
    if (model::Roles(c, kSubjectPhone) == 0) continue;
    model::Redact(&c, kSubjectPhone);
    auto got = ts->GetCall("a", id, kPartMetadata);
    ASSERT_TRUE(IsOk(got));
    EXPECT_GE(got->updated_at, lo);
    EXPECT_LE(got->updated_at, hi);
    c.updated_at = got->updated_at;
  }
  ExpectNothingMatches("a", kPhoneSpellings);
  ExpectMatchesModel("a");
  // Redaction really removed the identity of the speaker.
  auto c1 = ts->GetCall("a", "c1");
  ASSERT_TRUE(IsOk(c1));
  EXPECT_TRUE(c1->participants[1].name.empty());
  EXPECT_TRUE(c1->participants[1].phone.empty());
  EXPECT_EQ(c1->participants[1].speaker_id, 0u);
  for (const auto& s : c1->transcript) EXPECT_NE(s.speaker_id, 2u);

  // Delete every call that references the email (30: participant, owner, CRM).
  lo = model::WallMicros();
  auto del = ts->Erase("a", {.subject = "Dana.Subject@customer.example", .max_calls = 30});
  ASSERT_TRUE(IsOk(del));
  EXPECT_EQ(del->matched, 30u);
  EXPECT_EQ(del->changed, 30u);
  ASSERT_TRUE(del->receipt.has_value());
  EXPECT_EQ(del->receipt->kind, "erasure_delete");
  ExpectNoPersonalData(*del->receipt);
  std::vector<std::string> deleted;
  for (const auto& [id, c] : a.calls) {
    if (model::Roles(c, kSubjectEmail) != 0) deleted.push_back(id);
  }
  EXPECT_EQ(deleted.size(), 30u);
  for (const auto& id : deleted) {
    a.Remove(id);
    EXPECT_TRUE(HasCode(ts->GetCall("a", id), Code::kNotFound)) << id;
  }
  ExpectNothingMatches("a", kEmailSpellings);
  ExpectMatchesModel("a");

  // Tenant b, which holds the same subject, is untouched.
  const Snapshot after = Take();
  for (const auto& [k, v] : before.listings) {
    if (k.starts_with("b")) {
      EXPECT_EQ(after.listings.at(k), v) << k;
    }
  }
  EXPECT_TRUE(after.calls.at("b") == before.calls.at("b"));
  EXPECT_EQ(after.refs.at(std::string("b") + kSubjectEmail).size(), 30u);
  ExpectMatchesModel("b");

  // A subject that appears nowhere: nothing matches, nothing changes.
  auto none = ts->Erase("a", {.subject = "nobody@nowhere.example"});
  ASSERT_TRUE(IsOk(none));
  EXPECT_EQ(none->matched, 0u);
  EXPECT_EQ(none->changed, 0u);

  auto receipts = ts->ListReceipts();
  ASSERT_TRUE(IsOk(receipts));
  ASSERT_GE(receipts->size(), 2u);
  auto key = ts->SigningPublicKey();
  ASSERT_TRUE(IsOk(key));
  EXPECT_TRUE(IsOk(VerifyReceiptChain(*receipts, *key)));
  for (const auto& r : *receipts) ExpectNoPersonalData(r);
  // An edited receipt does not verify.
  auto edited = *receipts;
  edited[0].records += 1;
  EXPECT_TRUE(HasCode(VerifyReceiptChain(edited, *key), Code::kCorruption));

  ASSERT_TRUE(IsOk(ts.Reopen()));
  ExpectNothingMatches("a", kEmailSpellings);
  ExpectNothingMatches("a", kPhoneSpellings);
  ExpectMatchesModel("a");
  auto again = ts->ListReceipts();
  ASSERT_TRUE(IsOk(again));
  EXPECT_TRUE(IsOk(VerifyReceiptChain(*again, *ts->SigningPublicKey())));
  // The subject is in no file of the store, in any spelling.
  EXPECT_TRUE(testutil::FindInTree(ts.db, {kSubjectEmail, "Dana.Subject", kSubjectPhone}).empty());
}

// ---------------------------------------------------------------------------
// Every plan the planner can choose gives the model's listing: the time
// index, each attribute index, several merged prefixes, the updated_at index
// (few updated) and its fallback (more than 2,000 updated since).

TEST(PlannerTest, EveryPlanMatchesTheModel) {
  TestStore ts;
  ts.options.sync_writes = false;
  ASSERT_TRUE(IsOk(ts.Open()));
  ASSERT_TRUE(IsOk(ts->CreateTenant({.tenant_id = "t"})));
  Rng r(11);
  workload::Generator gen(FastGenerator(11));
  TenantModel m{"t", {}, {}};
  std::vector<Call> batch;
  for (size_t i = 0; i < 2300; ++i) {
    Call c = model::RandomCall(r, gen, "p" + std::to_string(i));
    c.transcript.resize(std::min<size_t>(c.transcript.size(), 2));
    c.insights = Insights{};
    c.created_at = kC0;
    c.updated_at = kU0 + static_cast<int64_t>(i % 2200) * kSec;
    batch.push_back(c);
    m.ApplyPut(model::Normalized(c));
    if (batch.size() == 500) {
      ASSERT_TRUE(IsOk(ts->PutCalls("t", batch)));
      batch.clear();
    }
  }
  ASSERT_TRUE(IsOk(ts->PutCalls("t", batch)));
  std::vector<ListQuery> qs;
  auto add = [&](auto f) {
    for (bool newest : {true, false}) {
      ListQuery q;
      q.newest_first = newest;
      q.limit = newest ? 37 : 500;
      f(q);
      qs.push_back(q);
    }
  };
  add([](ListQuery&) {});
  add([](ListQuery& q) {
    q.from = kT0 + 30 * kSec;
    q.to = kT0 + 31 * kSec;
  });
  add([](ListQuery& q) {
    q.participants = {"guest4@customer1.example", "+1 415 555 0104", "crm.only@prospect.example"};
  });
  add([](ListQuery& q) { q.crm = CrmRef{"salesforce", CrmObjectType::kLead, "001ACME"}; });
  add([](ListQuery& q) {
    q.owners = {"u-1", "u-4"};
    q.tags = {"pricing"};
  });
  add([](ListQuery& q) {
    q.workspace_id = "ws-2";
    q.scope = CallScope::kInternal;
  });
  add([](ListQuery& q) { q.updated_since = kU0 + 2150 * kSec; });  // ~100: updated index
  add([](ListQuery& q) { q.updated_since = kU0 + 10 * kSec; });    // ~2,250: fallback
  add([](ListQuery& q) {
    q.updated_since = kU0 + 100 * kSec;
    q.direction = Direction::kInbound;
    q.max_duration_ms = 60'000;
  });
  add([](ListQuery& q) {
    q.min_duration_ms = 30'000;
    q.max_duration_ms = 30'000;
  });
  for (const auto& q : qs) {
    SCOPED_TRACE(model::QueryString(q));
    ExpectListing(m, q, WalkAll(ts.store.get(), "t", q));
  }
}

// ---------------------------------------------------------------------------
// PutCalls resolves every call of a batch against the store as it was before
// the batch. Two calls of one batch that resolve to the same stored call (one
// names it by call_id, the other by its source_call_id) were both planned
// over it: the first call's index entries were never removed, the second
// call was not created, and every unfiltered listing of the tenant failed
// with kCorruption from then on. Such a batch must be rejected
// (kInvalidArgument, nothing written) or behave like the same puts one after
// the other.

TEST(BatchTest, TwoCallsOfABatchResolvingToOneStoredCall) {
  Call a = SmallCall("A", kT0 + 10 * kSec, 1);
  a.source_system = SourceSystem::kZoom;
  a.source_call_id = "zoom-A";
  const Call c = SmallCall("C", kT0 + 40 * kSec, 4);
  // A by call_id, moved to another instant and given another source id.
  Call by_id = SmallCall("A", kT0 + 20 * kSec, 2);
  by_id.source_system = SourceSystem::kZoom;
  by_id.source_call_id = "zoom-A2";
  // A by its source id, under the id of a call that does not exist (B) or of
  // another call that does (C).
  Call by_source = SmallCall("B", kT0 + 30 * kSec, 3);
  by_source.source_system = SourceSystem::kZoom;
  by_source.source_call_id = "zoom-A";
  Call by_source_as_c = by_source;
  by_source_as_c.call_id = "C";
  Call by_id_no_source = by_id;
  by_id_no_source.source_call_id.clear();
  const std::vector<std::pair<std::string, std::vector<Call>>> cases = {
      {"by id, then by source", {by_id, by_source}},
      {"by source, then by id", {by_source, by_id}},
      {"by source under another call's id, then by id", {by_source_as_c, by_id_no_source}},
  };
  for (const auto& [name, batch] : cases) {
    SCOPED_TRACE(name);
    TestStore ts;
    ASSERT_TRUE(IsOk(ts.Open()));
    ASSERT_TRUE(IsOk(ts->CreateTenant({.tenant_id = "t"})));
    ASSERT_TRUE(IsOk(ts->PutCalls("t", {a, c})));
    auto res = ts->PutCalls("t", batch);
    size_t calls = 2;
    if (!res.ok()) {
      EXPECT_TRUE(HasCode(res, Code::kInvalidArgument));
      for (const Call* want : std::vector<const Call*>{&a, &c}) {
        auto still = ts->GetCall("t", want->call_id);
        ASSERT_TRUE(IsOk(still));
        EXPECT_TRUE(*still == *want) << model::Diff(*want, *still);
      }
    } else if (batch[0].call_id == "A") {
      // One put after the other: A is updated in place (and loses source
      // zoom-A), then B is a new call holding zoom-A.
      calls = 3;
      ASSERT_EQ(res->size(), 2u);
      EXPECT_EQ((*res)[0].call_id, "A");
      EXPECT_FALSE((*res)[0].created);
      EXPECT_EQ((*res)[1].call_id, "B") << "B was written over A";
      EXPECT_TRUE((*res)[1].created);
      auto got_a = ts->GetCall("t", "A");
      ASSERT_TRUE(IsOk(got_a));
      EXPECT_TRUE(*got_a == by_id) << model::Diff(by_id, *got_a);
      auto got_b = ts->GetCall("t", "B");
      EXPECT_TRUE(IsOk(got_b));
      if (got_b.ok()) {
        EXPECT_TRUE(*got_b == by_source) << model::Diff(by_source, *got_b);
      }
    } else {
      ADD_FAILURE() << "accepted; one put after the other would update A twice";
    }
    // Whatever the outcome, the store stays consistent.
    for (bool newest : {true, false}) {
      ListQuery q;
      q.newest_first = newest;
      auto page = ts->ListCalls("t", q);
      EXPECT_TRUE(IsOk(page)) << (newest ? "newest" : "oldest") << " first";
      if (page.ok()) {
        EXPECT_EQ(page->calls.size(), calls);
      }
    }
    auto n = ts->CountCalls("t");
    ASSERT_TRUE(IsOk(n));
    EXPECT_EQ(*n, calls) << "time index entries";
    auto v = ts->Verify("t");
    ASSERT_TRUE(IsOk(v));
    EXPECT_EQ(v->records_failed, 0u);
  }
}

}  // namespace
}  // namespace callvault
