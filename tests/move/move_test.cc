// Issue 12 item 3: tenant moves between two stores on one machine, with
// writes continuing (docs/decisions/0022-tenant-move.md). Real RocksDB, real
// key directories, real threads; every refusal leaves both stores as they
// were.
#include <gtest/gtest.h>
#include <sodium.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "callvault/store.h"
#include "tests/testutil/process.h"
#include "tests/testutil/testutil.h"

namespace callvault {
namespace {

using testutil::MakeCall;
using testutil::TempDir;

constexpr int64_t kT0 = 1700000000000000;

uint32_t Seed() {
  static const uint32_t seed = [] {
    const char* e = std::getenv("CALLVAULT_SEED");
    uint32_t s = e ? static_cast<uint32_t>(std::strtoul(e, nullptr, 10)) : std::random_device{}();
    std::printf("[move] seed %u\n", s);
    return s;
  }();
  return seed;
}

struct Side {
  TempDir tmp;
  std::string db = tmp.Sub("db");
  std::string keys = tmp.Sub("keys");
  std::unique_ptr<Store> store;
  Options Opts(const std::string& region = "default") const {
    Options o = testutil::DefaultOptions(keys);
    o.create_if_missing = true;
    o.region = region;
    o.dictionary_training_calls = 64;
    return o;
  }
  void Open(const std::string& region = "default") {
    auto s = Store::Open(Opts(region), db);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store = std::move(s).value();
  }
  Store* operator->() const { return store.get(); }
};

// The source's signing key, for a test's own transport into dst's
// MoveTenantIn, after dst trusted the source (decision 0062).
Result<std::string> TrustedSourceKey(Side& src, Side& dst) {
  auto id = src->MoveIdentity();
  if (!id.ok()) return id.status();
  Status s = dst->TrustMovePeer(*id);
  if (!s.ok() && s.code() != Code::kAlreadyExists) return s;
  return src->SigningPublicKey();
}

// Writes `bytes` as dst's PEERS file by hand (as an operator, or an attacker
// with access to the key directory, would).
void PlantPeers(Side& dst, const std::string& bytes) {
  const std::string path = dst.keys + "/PEERS";
  std::remove(path.c_str());
  std::FILE* f = std::fopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  ASSERT_EQ(std::fwrite(bytes.data(), 1, bytes.size(), f), bytes.size());
  std::fclose(f);
}

// Identity text with one field replaced: 1 store id, 2 region, 3 public
// key, 4 signing key (cvmove2:<store id>:<region>:<public key>:<signing key>).
std::string WithField(const std::string& identity, int field, const std::string& value) {
  std::vector<std::string> parts;
  size_t at = 0;
  for (size_t c; (c = identity.find(':', at)) != std::string::npos; at = c + 1) {
    parts.push_back(identity.substr(at, c - at));
  }
  parts.push_back(identity.substr(at));
  parts.at(static_cast<size_t>(field)) = value;
  std::string out = parts[0];
  for (size_t i = 1; i < parts.size(); ++i) out += ":" + parts[i];
  return out;
}

std::string FieldOf(const std::string& identity, int field) {
  std::string rest = identity;
  for (int i = 0; i < field; ++i) rest = rest.substr(rest.find(':') + 1);
  return rest.substr(0, rest.find(':'));
}

std::string StoreIdOf(Store& s) {
  auto id = s.MoveIdentity();
  EXPECT_TRUE(id.ok());
  // cvmove2:<store id>:...
  return id->substr(8, 32);
}

void Fill(Store& s, const std::string& tenant, int calls, int from = 0) {
  std::vector<Call> batch;
  for (int i = from; i < from + calls; ++i) {
    batch.push_back(MakeCall("call-" + std::to_string(i), kT0 + i * 1000000LL, "m" + std::to_string(i)));
    if (batch.size() == 50) {
      ASSERT_TRUE(s.PutCalls(tenant, batch).ok());
      batch.clear();
    }
  }
  if (!batch.empty()) {
    ASSERT_TRUE(s.PutCalls(tenant, batch).ok());
  }
  // A dictionary trained in the background (decision 0045) is stored before
  // the test goes on.
  ASSERT_TRUE(testutil::WaitForDictionaryTraining(s));
}

std::string RecordingBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string b(n, '\0');
  for (auto& c : b) c = static_cast<char>(rng());
  return b;
}

void AddRecording(Store& s, const std::string& tenant, const std::string& call_id,
                  const std::string& rec_id, const std::string& bytes) {
  auto w = s.CreateRecording(tenant, call_id, {.recording_id = rec_id, .content_type = "audio/mpeg"});
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  ASSERT_TRUE((*w)->Append(bytes).ok());
  ASSERT_TRUE((*w)->Finish().ok());
}

// Every query of the query API, answered by one store, as comparable text.
std::vector<std::string> Answers(Store& s, const std::string& tenant) {
  std::vector<std::string> out;
  auto put = [&](const std::string& what, const Status& st) {
    out.push_back(what + " -> " + st.ToString());
  };
  auto count = s.CountCalls(tenant);
  put("count " + (count.ok() ? std::to_string(*count) : ""), count.status());
  std::vector<ListQuery> queries(7);
  queries[1].participants = {"alice@example.com"};
  queries[2].owners = {"u-1"};
  queries[2].newest_first = false;
  queries[3].crm = CrmRef{"salesforce", CrmObjectType::kOpportunity, "006ABC"};
  queries[4].tags = {"renewal"};
  queries[4].from = kT0 + 20 * 1000000LL;
  queries[4].to = kT0 + 90 * 1000000LL;
  queries[5].workspace_id = "ws-1";
  queries[5].limit = 7;
  queries[6].direction = Direction::kConference;
  queries[6].min_duration_ms = 1000;
  for (size_t q = 0; q < queries.size(); ++q) {
    ListQuery query = queries[q];
    for (int page = 0; page < 1000; ++page) {
      auto p = s.ListCalls(tenant, query);
      if (!p.ok()) {
        put("list " + std::to_string(q), p.status());
        break;
      }
      std::string ids;
      for (const auto& c : p->calls) ids += c.call_id + "/" + c.title + "/" + std::to_string(c.updated_at) + ",";
      out.push_back("list " + std::to_string(q) + " page " + std::to_string(page) + ": " + ids);
      if (p->next_cursor.empty()) break;
      query.cursor = p->next_cursor;
    }
  }
  ListQuery all;
  all.limit = 1000;
  auto every = s.ListCalls(tenant, all);
  if (every.ok()) {
    for (const auto& c : every->calls) {
      auto g = s.GetCall(tenant, c.call_id, kPartAll);
      out.push_back("get " + c.call_id + " " + (g.ok() ? g->title + " " + g->insights.summary +
                                                            " " + std::to_string(g->transcript.size())
                                                      : g.status().ToString()));
      auto w = s.GetTranscriptWindow(tenant, c.call_id, 3000, 9000);
      out.push_back("window " + c.call_id + " " + (w.ok() ? std::to_string(w->size()) : w.status().ToString()));
      auto recs = s.ListRecordings(tenant, c.call_id);
      if (!recs.ok()) {
        put("recordings " + c.call_id, recs.status());
        continue;
      }
      for (const auto& r : *recs) {
        std::string bytes;
        Status rs = s.ReadRecording(tenant, c.call_id, r.recording_id, 0, UINT64_MAX,
                                    [&](std::string_view b) {
                                      bytes.append(b);
                                      return Status::OK();
                                    });
        out.push_back("recording " + c.call_id + "/" + r.recording_id + " " +
                      std::to_string(r.size) + " " + std::to_string(bytes.size()) + " " +
                      std::to_string(std::hash<std::string>{}(bytes)) + " " + rs.ToString());
      }
    }
  }
  auto refs = s.FindReferences(tenant, "bob@customer.example");
  put("refs " + (refs.ok() ? std::to_string(refs->size()) : ""), refs.status());
  auto holds = s.ListHolds(tenant);
  if (holds.ok()) {
    for (const auto& h : *holds) out.push_back("hold " + h.hold_id + " " + h.reason + " " + h.call_id);
  }
  put("holds", holds.status());
  return out;
}

// ---------------------------------------------------------------------------

TEST(Move, ConcurrentWritesEveryQueryAnswersTheSameAndTheSourceCopyIsUnreadable) {
  const uint32_t seed = Seed();
  Side a, b;
  ASSERT_NO_FATAL_FAILURE(a.Open());
  ASSERT_NO_FATAL_FAILURE(b.Open());
  ASSERT_TRUE(a->CreateTenant({.tenant_id = "acme", .retention_days = 0}).ok());
  ASSERT_TRUE(a->CreateTenant({.tenant_id = "other"}).ok());
  ASSERT_NO_FATAL_FAILURE(Fill(*a.store, "acme", 300));
  ASSERT_NO_FATAL_FAILURE(Fill(*a.store, "other", 20));
  // Recordings: one in blob files (over min_blob_size once compacted: an
  // ingested recording arrives as a table file of its own, decision 0055,
  // and compactions move its chunks to blob files), one small.
  const std::string big = RecordingBytes(3u << 20, seed);
  ASSERT_NO_FATAL_FAILURE(AddRecording(*a.store, "acme", "call-1", "rec-big", big));
  ASSERT_NO_FATAL_FAILURE(AddRecording(*a.store, "acme", "call-2", "rec-small", RecordingBytes(5000, seed + 1)));
  ASSERT_TRUE(a->PlaceHold("acme", Hold{.hold_id = "h1", .reason = "litigation", .call_id = ""}).ok());
  ASSERT_TRUE(a->PlaceHold("acme", Hold{.hold_id = "h2", .reason = "call hold", .call_id = "call-3"}).ok());
  ASSERT_TRUE(a->Flush().ok());
  ASSERT_TRUE(a->CompactAll().ok());
  // The dictionary was trained (64 calls) and recordings went to blob files.
  size_t blobs = 0;
  for (const auto& f : testutil::ListFiles(a.db)) blobs += f.ends_with(".blob");
  ASSERT_GT(blobs, 0u) << "the big recording is not in a blob file";

  // The pre-move copy of the source store, as a stolen disk or an old backup.
  const std::string old_copy = a.tmp.Sub("old-copy");
  {
    a.store.reset();
    testutil::CopyTree(a.db, old_copy);
    ASSERT_NO_FATAL_FAILURE(a.Open());
  }

  const std::string a_id = StoreIdOf(*a.store);
  const std::string b_id = StoreIdOf(*b.store);
  // Writers keep writing; on `moved` they retry at the store it names.
  std::atomic<bool> stop{false};
  std::mutex mu;
  std::map<std::string, std::string> acked;  // call id -> title of the acknowledged write
  std::atomic<uint64_t> moved_errors{0}, written_at_b{0}, other_errors{0};
  // Writers that reached the destination wait here until both sides were
  // compared (at the commit), so the comparison sees one state.
  std::atomic<bool> gate_open{false};
  std::vector<std::thread> writers;
  for (int w = 0; w < 2; ++w) {
    writers.emplace_back([&, w] {
      Store* target = a.store.get();
      for (int i = 0;; ++i) {
        if (stop.load() && target == b.store.get()) break;
        while (target == b.store.get() && !gate_open.load()) {
          std::this_thread::sleep_for(std::chrono::microseconds(100));
        }
        // New calls only: the tenant hold h1 blocks changes of existing
        // calls (decision 0028), not puts of new ones.
        const std::string id = "w" + std::to_string(w) + "-" + std::to_string(i);
        Call c = MakeCall(id, kT0 + (1000 + i) * 1000000LL, "v" + std::to_string(i));
        auto r = target->PutCall("acme", c);
        if (r.ok()) {
          std::lock_guard<std::mutex> l(mu);
          acked[id] = c.title;
          if (target == b.store.get()) ++written_at_b;
          continue;
        }
        if (r.status().code() == Code::kMoved) {
          ++moved_errors;
          // Retryable, naming the destination store (never the tenant).
          EXPECT_NE(r.status().message().find(b_id), std::string::npos) << r.status().ToString();
          EXPECT_EQ(r.status().message().find("acme"), std::string::npos);
          target = b.store.get();
          --i;
          continue;
        }
        if (target == b.store.get() && r.status().code() == Code::kNotFound) {
          // Fenced at the source, not yet switched at the destination.
          std::this_thread::sleep_for(std::chrono::microseconds(200));
          --i;
          continue;
        }
        ++other_errors;
        ADD_FAILURE() << r.status().ToString();
        return;
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(50));

  std::vector<std::string> at_a, at_b;
  MoveOptions mo;
  mo.rows_per_segment = 100;
  mo.after_segment = [&](char type) {
    if (type == 'C') {
      // Committed at the destination, fenced and drained here, not yet
      // purged: both sides answer every query the same.
      at_a = Answers(*a.store, "acme");
      at_b = Answers(*b.store, "acme");
      gate_open = true;
    }
  };
  auto report = MoveTenant(*a.store, *b.store, "acme", mo);
  gate_open = true;
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  stop = true;
  for (auto& t : writers) t.join();
  ASSERT_EQ(other_errors.load(), 0u);

  ASSERT_FALSE(at_a.empty());
  EXPECT_EQ(at_a.size(), at_b.size());
  for (size_t i = 0; i < std::min(at_a.size(), at_b.size()); ++i) {
    if (at_a[i] != at_b[i]) {
      ADD_FAILURE() << "answer " << i << " differs:\n  source:      " << at_a[i].substr(0, 300)
                    << "\n  destination: " << at_b[i].substr(0, 300);
      break;
    }
  }
  EXPECT_EQ(report->destination, b_id);
  EXPECT_GT(report->rows, 0u);
  EXPECT_GE(report->catch_up_rounds, 1u);
  EXPECT_GT(moved_errors.load(), 0u);
  std::printf("[move] concurrent: %llu rows, %u catch-up rounds, %llu rows sent, %llu moved "
              "errors, %llu writes at the destination, copy %llu us, fence %llu us, 0 lost\n",
              (unsigned long long)report->rows, report->catch_up_rounds,
              (unsigned long long)report->rows_sent, (unsigned long long)moved_errors.load(),
              (unsigned long long)written_at_b.load(), (unsigned long long)report->copy_micros,
              (unsigned long long)report->fence_micros);

  // Every acknowledged write is at the destination, with its last value.
  for (const auto& [id, title] : acked) {
    auto g = b->GetCall("acme", id);
    ASSERT_TRUE(g.ok()) << id << " " << g.status().ToString();
    EXPECT_EQ(g->title, title) << id;
  }
  // The recordings and the dictionary-compressed records read back.
  std::string got;
  ASSERT_TRUE(b->ReadRecording("acme", "call-1", "rec-big", 0, UINT64_MAX, [&](std::string_view x) {
                 got.append(x);
                 return Status::OK();
               }).ok());
  EXPECT_EQ(got, big);
  auto v = b->Verify("acme");
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v->ok());
  // Holds travelled: a purge at the destination is refused.
  EXPECT_EQ(b->PurgeTenant("acme").status().code(), Code::kFailedPrecondition);
  auto info = b->DescribeTenant("acme");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->moved_from, a_id);
  EXPECT_EQ(info->state, TenantState::kActive);

  // The source: a moved_out receipt naming the destination, verified chain;
  // every operation gets `moved`.
  auto receipts = a->ListReceipts();
  ASSERT_TRUE(receipts.ok());
  ASSERT_FALSE(receipts->empty());
  EXPECT_EQ(receipts->back().kind, "moved_out");
  EXPECT_EQ(receipts->back().destination, b_id);
  EXPECT_EQ(receipts->back().tenant_id, "acme");
  auto pk = a->SigningPublicKey();
  ASSERT_TRUE(pk.ok());
  EXPECT_TRUE(VerifyReceiptChain(*receipts, *pk).ok());
  EXPECT_EQ(a->GetCall("acme", "call-1").status().code(), Code::kMoved);
  EXPECT_EQ(a->PutCall("acme", MakeCall("x", kT0)).status().code(), Code::kMoved);
  EXPECT_EQ(a->DescribeTenant("acme")->state, TenantState::kPurged);
  // The other tenant is untouched.
  EXPECT_EQ(*a->CountCalls("other"), 20u);

  // The pre-move copy, opened with the source's keys now: unreadable.
  a.store.reset();
  {
    Options o = a.Opts();
    o.create_if_missing = false;
    o.read_only = true;
    auto old = Store::Open(o, old_copy);
    if (old.ok()) {
      auto g = (*old)->GetCall("acme", "call-1");
      EXPECT_FALSE(g.ok());
      auto l = (*old)->ListCalls("acme", ListQuery{});
      EXPECT_FALSE(l.ok());
      EXPECT_EQ(*(*old)->CountCalls("other"), 20u);
    }
  }
  // Reopen both: the destination serves, the source still says moved.
  b.store.reset();
  ASSERT_NO_FATAL_FAILURE(b.Open());
  EXPECT_TRUE(b->GetCall("acme", "call-1").ok());
  ASSERT_TRUE(b->PutCall("acme", MakeCall("after-reopen", kT0)).ok());
  ASSERT_NO_FATAL_FAILURE(a.Open());
  EXPECT_EQ(a->GetCall("acme", "call-1").status().code(), Code::kMoved);
}

// The destination moves it on again, back to the first store.
// Decision 0043: the fenced round reads what changed, not the tenant. A
// tenant of `calls` calls moves with no round before the fence; during its
// copy the same changes of every row kind are made (new calls, a call put
// again with other index entries, a delete, a pin, a call hold, a
// recording), so all of them are caught up in the fenced round. Both sides
// answer every query the same at the commit.
struct FencedMove {
  MoveReport report;
  std::vector<std::string> at_a, at_b;
};

// The tenant's whole change feed, as comparable text (its resume token too:
// the same at both ends when the same events travelled).
void AddFeed(Store& s, const std::string& tenant, std::vector<std::string>* out) {
  std::string token;
  for (int page = 0; page < 1000; ++page) {
    auto p = s.ReadChanges(tenant, token, 500);
    if (!p.ok()) {
      out->push_back("feed -> " + p.status().ToString());
      return;
    }
    for (const auto& e : p->events) {
      out->push_back("event " + std::to_string(e.sequence) + " " +
                     std::to_string(static_cast<int>(e.kind)) + " " +
                     std::to_string(static_cast<int>(e.cause)) + " " + e.call_id + " " +
                     std::to_string(e.version) + " " + std::to_string(e.committed_at));
    }
    if (p->events.empty()) {
      out->push_back("feed token " + p->next_token);
      return;
    }
    token = p->next_token;
  }
}

void MoveWithChangesDuringCopy(int calls, uint64_t feed_max_events, FencedMove* out) {
  const uint32_t seed = Seed();
  Side a, b;
  {
    Options o = a.Opts();
    o.change_feed_max_events = feed_max_events;
    auto s = Store::Open(o, a.db);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    a.store = std::move(s).value();
  }
  ASSERT_NO_FATAL_FAILURE(b.Open());
  ASSERT_TRUE(a->CreateTenant({.tenant_id = "acme", .retention_days = 0}).ok());
  ASSERT_NO_FATAL_FAILURE(Fill(*a.store, "acme", calls));
  ASSERT_NO_FATAL_FAILURE(
      AddRecording(*a.store, "acme", "call-2", "rec-old", RecordingBytes(5000, seed)));
  ASSERT_TRUE(a->SetCallPinned("acme", "call-11", true).ok());
  ASSERT_TRUE(a->Flush().ok());

  bool changed = false;
  MoveOptions mo;
  mo.rows_per_segment = 100;
  mo.max_catch_up_rounds = 0;  // every change below waits for the fenced round
  mo.after_segment = [&](char type) {
    if (type == 'R' && !changed) {
      changed = true;
      for (int i = 0; i < 3; ++i) {
        const std::string id = "new-" + std::to_string(i);
        EXPECT_TRUE(a->PutCall("acme", MakeCall(id, kT0 + (5000 + i) * 1000000LL, id)).ok());
      }
      // Put again: another title, and another start time (every index
      // entry that holds it moves).
      EXPECT_TRUE(a->PutCall("acme", MakeCall("call-5", kT0 + 7000 * 1000000LL, "again")).ok());
      EXPECT_TRUE(a->DeleteCall("acme", "call-7").ok());
      EXPECT_TRUE(a->SetCallPinned("acme", "call-8", true).ok());
      EXPECT_TRUE(a->SetCallPinned("acme", "call-12", true).ok());
      EXPECT_TRUE(a->SetCallPinned("acme", "call-11", false).ok());
      EXPECT_TRUE(
          a->PlaceHold("acme", Hold{.hold_id = "h9", .reason = "call hold", .call_id = "call-9"})
              .ok());
      AddRecording(*a.store, "acme", "call-10", "rec-new", RecordingBytes(7000, seed + 1));
      EXPECT_TRUE(a->DeleteRecording("acme", "call-2", "rec-old").ok());
    }
    if (type == 'C') {
      out->at_a = Answers(*a.store, "acme");
      out->at_b = Answers(*b.store, "acme");
      AddFeed(*a.store, "acme", &out->at_a);
      AddFeed(*b.store, "acme", &out->at_b);
    }
  };
  auto report = MoveTenant(*a.store, *b.store, "acme", mo);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  ASSERT_TRUE(changed);
  out->report = *report;
  // The changes are at the destination.
  auto g = b->GetCall("acme", "call-5");
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  EXPECT_EQ(g->title, MakeCall("call-5", kT0 + 7000 * 1000000LL, "again").title);
  EXPECT_EQ(b->GetCall("acme", "call-7").status().code(), Code::kNotFound);
  EXPECT_TRUE(b->GetCall("acme", "new-2").ok());
  auto recs = b->ListRecordings("acme", "call-10");
  ASSERT_TRUE(recs.ok());
  EXPECT_EQ(recs->size(), 1u);
  auto gone = b->ListRecordings("acme", "call-2");
  ASSERT_TRUE(gone.ok());
  EXPECT_TRUE(gone->empty());
  EXPECT_EQ(b->DeleteCall("acme", "call-9").code(), Code::kFailedPrecondition)
      << "the call hold placed during the copy travelled";
  auto count = b->CountCalls("acme");
  ASSERT_TRUE(count.ok());
  EXPECT_EQ(*count, static_cast<uint64_t>(calls + 3 - 1));
  // The pins as the copy left them: call-8 and call-12 pinned, call-11 no
  // longer.
  ASSERT_TRUE(b->SetRetention("acme", 1).ok());
  auto kept = b->RunRetention(kT0 + 3650LL * 24 * 3600 * 1000000LL, /*dry_run=*/true);
  ASSERT_TRUE(kept.ok()) << kept.status().ToString();
  EXPECT_EQ(kept->calls_kept_pinned, 2u);
}

void ExpectSameAnswers(const FencedMove& m) {
  ASSERT_FALSE(m.at_a.empty());
  ASSERT_EQ(m.at_a.size(), m.at_b.size());
  for (size_t i = 0; i < m.at_a.size(); ++i) {
    ASSERT_EQ(m.at_a[i], m.at_b[i]) << "answer " << i;
  }
}

TEST(Move, FencedRoundReadsWhatChangedNotTheTenant) {
  FencedMove small, big;
  ASSERT_NO_FATAL_FAILURE(MoveWithChangesDuringCopy(200, 1000000, &small));
  ASSERT_NO_FATAL_FAILURE(MoveWithChangesDuringCopy(2000, 1000000, &big));
  ExpectSameAnswers(small);
  ExpectSameAnswers(big);
  EXPECT_FALSE(small.report.feed_fallback);
  EXPECT_FALSE(big.report.feed_fallback);
  EXPECT_EQ(small.report.catch_up_rounds, 0u);
  std::printf("[move] fenced round: %llu of %llu rows read (200 calls), %llu of %llu (2000 calls)\n",
              (unsigned long long)small.report.fence_rows_read,
              (unsigned long long)small.report.rows,
              (unsigned long long)big.report.fence_rows_read, (unsigned long long)big.report.rows);
  EXPECT_GT(small.report.fence_rows_read, 0u);
  // Ten times the calls, the same changes: the same fenced work.
  EXPECT_EQ(big.report.fence_rows_read, small.report.fence_rows_read);
  EXPECT_GT(big.report.rows, 9 * small.report.rows);
  EXPECT_LT(big.report.fence_rows_read * 20, big.report.rows);
}

TEST(Move, FeedTrimmedDuringTheCopyFallsBackToTheSnapshotDiff) {
  FencedMove m;
  // 4 events kept: the changes made during the copy trim the event after
  // the copy's position.
  ASSERT_NO_FATAL_FAILURE(MoveWithChangesDuringCopy(200, 4, &m));
  ExpectSameAnswers(m);
  EXPECT_TRUE(m.report.feed_fallback);
  // The whole family was read in the fenced round.
  EXPECT_GE(m.report.fence_rows_read, m.report.rows);
}

TEST(Move, BackAndForth) {
  Side a, b;
  ASSERT_NO_FATAL_FAILURE(a.Open());
  ASSERT_NO_FATAL_FAILURE(b.Open());
  ASSERT_TRUE(a->CreateTenant({.tenant_id = "acme"}).ok());
  ASSERT_NO_FATAL_FAILURE(Fill(*a.store, "acme", 100));
  ASSERT_NO_FATAL_FAILURE(AddRecording(*a.store, "acme", "call-5", "r1", RecordingBytes(70000, 5)));
  const auto before = Answers(*a.store, "acme");
  ASSERT_TRUE(MoveTenant(*a.store, *b.store, "acme").ok());
  ASSERT_TRUE(MoveTenant(*b.store, *a.store, "acme").ok());
  EXPECT_EQ(Answers(*a.store, "acme"), before);
  EXPECT_EQ(b->GetCall("acme", "call-1").status().code(), Code::kMoved);
  ASSERT_TRUE(a->PutCall("acme", MakeCall("new", kT0)).ok());
  a.store.reset();
  ASSERT_NO_FATAL_FAILURE(a.Open());
  EXPECT_TRUE(a->GetCall("acme", "new").ok());
  EXPECT_EQ(*a->CountCalls("acme"), 101u);
}

// Each refusal: the specific error, and both stores as they were.
void ExpectUntouched(Side& a, Side& b, const std::string& tenant, uint64_t calls,
                     bool b_has_tenant = false) {
  auto count = a->CountCalls(tenant);
  ASSERT_TRUE(count.ok()) << count.status().ToString();
  EXPECT_EQ(*count, calls);
  auto info = a->DescribeTenant(tenant);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->state, TenantState::kActive);
  EXPECT_TRUE(info->moved_to.empty());
  EXPECT_TRUE(a->PutCall(tenant, MakeCall("probe-" + std::to_string(calls), kT0)).ok());
  EXPECT_TRUE(a->DeleteCall(tenant, "probe-" + std::to_string(calls)).ok());
  auto at_b = b->DescribeTenant(tenant);
  if (!b_has_tenant) {
    EXPECT_TRUE(!at_b.ok() || at_b->state == TenantState::kPurged);
  }
  // No column family or key was left behind at the destination.
  auto orphans = b->ReconcileKeys(/*dry_run=*/true);
  ASSERT_TRUE(orphans.ok());
  EXPECT_TRUE(orphans->orphan_keys.empty());
}

TEST(Move, RefusedTenantExistsAtDestination) {
  Side a, b;
  ASSERT_NO_FATAL_FAILURE(a.Open());
  ASSERT_NO_FATAL_FAILURE(b.Open());
  ASSERT_TRUE(a->CreateTenant({.tenant_id = "acme"}).ok());
  ASSERT_TRUE(b->CreateTenant({.tenant_id = "acme"}).ok());
  ASSERT_NO_FATAL_FAILURE(Fill(*a.store, "acme", 30));
  ASSERT_NO_FATAL_FAILURE(Fill(*b.store, "acme", 3));
  auto r = MoveTenant(*a.store, *b.store, "acme");
  EXPECT_EQ(r.status().code(), Code::kAlreadyExists) << r.status().ToString();
  EXPECT_EQ(r.status().message().find("acme"), std::string::npos);
  ExpectUntouched(a, b, "acme", 30, /*b_has_tenant=*/true);
  EXPECT_EQ(*b->CountCalls("acme"), 3u);
}

TEST(Move, RefusedAnotherRegion) {
  Side a, b;
  ASSERT_NO_FATAL_FAILURE(a.Open());
  ASSERT_NO_FATAL_FAILURE(b.Open("us-east"));
  ASSERT_TRUE(a->CreateTenant({.tenant_id = "acme"}).ok());
  ASSERT_NO_FATAL_FAILURE(Fill(*a.store, "acme", 10));
  auto r = MoveTenant(*a.store, *b.store, "acme");
  EXPECT_EQ(r.status().code(), Code::kFailedPrecondition) << r.status().ToString();
  EXPECT_NE(r.status().message().find("region"), std::string::npos);
  ExpectUntouched(a, b, "acme", 10);
  // An identity edited to claim the source's region: the destination
  // still refuses (it checks the tenant's region itself).
  auto id = b->MoveIdentity();
  ASSERT_TRUE(id.ok());
  std::string forged = *id;
  forged.replace(forged.find(":us-east:"), 9, ":default:");
  // `peer trust` refuses a source of another region (decision 0062
  // amendment), and so does a list written by hand that names it (session
  // 18 amendment); a hand-written line claiming this store's region for
  // a's keys is accepted, and the BEGIN's own region check refuses the move.
  EXPECT_EQ(b->TrustMovePeer(*a->MoveIdentity()).code(), Code::kFailedPrecondition);
  ASSERT_NO_FATAL_FAILURE(PlantPeers(b, "callvault-peers 1\n" + *a->MoveIdentity() + "\n"));
  EXPECT_EQ(b->ListMovePeers().status().code(), Code::kCorruption);
  ASSERT_NO_FATAL_FAILURE(
      PlantPeers(b, "callvault-peers 1\n" + WithField(*a->MoveIdentity(), 2, "us-east") + "\n"));
  ASSERT_TRUE(b->ListMovePeers().ok());
  auto key = a->SigningPublicKey();
  ASSERT_TRUE(key.ok());
  auto r2 = a->MoveTenantOut("acme", forged,
                             [&](std::string_view seg) { return b->MoveTenantIn(seg, *key); });
  EXPECT_EQ(r2.status().code(), Code::kFailedPrecondition) << r2.status().ToString();
  ExpectUntouched(a, b, "acme", 10);
}

TEST(Move, RefusedPurgedChurnedAndHeldForMove) {
  Side a, b;
  ASSERT_NO_FATAL_FAILURE(a.Open());
  ASSERT_NO_FATAL_FAILURE(b.Open());
  ASSERT_TRUE(a->CreateTenant({.tenant_id = "gone"}).ok());
  ASSERT_TRUE(a->PurgeTenant("gone").ok());
  EXPECT_EQ(MoveTenant(*a.store, *b.store, "gone").status().code(), Code::kTenantPurged);
  EXPECT_EQ(MoveTenant(*a.store, *b.store, "nobody").status().code(), Code::kNotFound);
  ASSERT_TRUE(a->CreateTenant({.tenant_id = "churned"}).ok());
  ASSERT_TRUE(a->ScheduleTenantPurge("churned", kT0 + 86400000000LL * 365 * 20).ok());
  EXPECT_EQ(MoveTenant(*a.store, *b.store, "churned").status().code(), Code::kFailedPrecondition);
  EXPECT_EQ(MoveTenant(*a.store, *a.store, "churned").status().code(), Code::kInvalidArgument);

  // While a move copies the tenant, it is held: a second move and a purge
  // are refused.
  ASSERT_TRUE(a->CreateTenant({.tenant_id = "acme"}).ok());
  ASSERT_NO_FATAL_FAILURE(Fill(*a.store, "acme", 40));
  Status second, purge;
  MoveOptions mo;
  mo.rows_per_segment = 10;
  bool once = false;
  mo.after_segment = [&](char type) {
    if (type == 'R' && !once) {
      once = true;
      second = MoveTenant(*a.store, *b.store, "acme").status();
      purge = a->PurgeTenant("acme").status();
      // A hold and a retention change made during the copy travel too.
      EXPECT_TRUE(a->PlaceHold("acme", Hold{.hold_id = "late", .reason = "placed mid-move"}).ok());
      EXPECT_TRUE(a->SetRetention("acme", 30).ok());
    }
  };
  ASSERT_TRUE(MoveTenant(*a.store, *b.store, "acme", mo).ok());
  EXPECT_EQ(second.code(), Code::kFailedPrecondition) << second.ToString();
  EXPECT_EQ(purge.code(), Code::kFailedPrecondition) << purge.ToString();
  EXPECT_EQ(*b->CountCalls("acme"), 40u);
  auto holds = b->ListHolds("acme");
  ASSERT_TRUE(holds.ok());
  ASSERT_EQ(holds->size(), 1u);
  EXPECT_EQ((*holds)[0].reason, "placed mid-move");
  EXPECT_EQ(b->DescribeTenant("acme")->retention_days, 30u);

  // A churn scheduled during the copy: the move is refused and undone.
  ASSERT_TRUE(a->CreateTenant({.tenant_id = "late"}).ok());
  ASSERT_NO_FATAL_FAILURE(Fill(*a.store, "late", 40));
  bool churned = false;
  mo.after_segment = [&](char type) {
    if (type == 'R' && !churned) {
      churned = true;
      EXPECT_TRUE(a->ScheduleTenantPurge("late", kT0 + 86400000000LL * 365 * 20).ok());
    }
  };
  auto late = MoveTenant(*a.store, *b.store, "late", mo);
  EXPECT_EQ(late.status().code(), Code::kFailedPrecondition) << late.status().ToString();
  EXPECT_EQ(a->DescribeTenant("late")->state, TenantState::kActive);
  EXPECT_TRUE(a->DescribeTenant("late")->moved_to.empty());
  EXPECT_EQ(*a->CountCalls("late"), 40u);
  EXPECT_FALSE(b->DescribeTenant("late").ok());
  ASSERT_TRUE(a->CancelTenantPurge("late").ok());
  ASSERT_TRUE(a->PutCall("late", MakeCall("after", kT0)).ok());
}

// A transport that edits one segment in flight, as a hand edits a bundle.
TEST(Move, EditedBundleRefusedNothingChanged) {
  const uint32_t seed = Seed();
  Side a, b, c;
  ASSERT_NO_FATAL_FAILURE(a.Open());
  ASSERT_NO_FATAL_FAILURE(b.Open());
  ASSERT_NO_FATAL_FAILURE(c.Open());
  ASSERT_TRUE(a->CreateTenant({.tenant_id = "acme"}).ok());
  ASSERT_NO_FATAL_FAILURE(Fill(*a.store, "acme", 60));
  auto key = TrustedSourceKey(a, b);
  ASSERT_TRUE(key.ok());
  auto identity = b->MoveIdentity();
  ASSERT_TRUE(identity.ok());
  std::mt19937 rng(seed);
  int refused = 0;
  // Edit one segment at a random byte: the BEGIN, the first ROWS segments,
  // the COMMIT.
  const std::vector<std::pair<char, int>> targets = {{'B', 0}, {'R', 0}, {'R', 1}, {'R', 2},
                                                     {'C', 0}, {'B', 0}, {'C', 0}};
  for (const auto& target : targets) {
    // Not a structured binding: clang 14 cannot capture one in a lambda.
    const char type = target.first;
    const int index = target.second;
    int seen = 0;
    bool edited = false;
    MoveOptions mo;
    mo.rows_per_segment = 50;
    auto r = a->MoveTenantOut("acme", *identity, [&](std::string_view seg) -> Result<std::string> {
      std::string s(seg);
      if (s[5] == type && seen++ == index) {
        const size_t at = std::uniform_int_distribution<size_t>(0, s.size() - 1)(rng);
        s[at] = static_cast<char>(s[at] ^ (1 + rng() % 255));
        edited = true;
      }
      return b->MoveTenantIn(s, *key);
    }, mo);
    ASSERT_TRUE(edited) << type << index;
    EXPECT_EQ(r.status().code(), Code::kCorruption) << type << index << " " << r.status().ToString();
    ++refused;
    ExpectUntouched(a, b, "acme", 60);
  }
  EXPECT_EQ(refused, 7);
  // Segments signed by another store (c re-signs a's bundle): refused.
  auto ckey = c->SigningPublicKey();
  ASSERT_TRUE(ckey.ok());
  auto r = a->MoveTenantOut("acme", *identity,
                            [&](std::string_view seg) { return b->MoveTenantIn(seg, *ckey); });
  EXPECT_EQ(r.status().code(), Code::kCorruption);
  ExpectUntouched(a, b, "acme", 60);
  // A bundle sealed to another store's key (c's identity) is refused by b.
  auto cid = c->MoveIdentity();
  ASSERT_TRUE(cid.ok());
  auto r3 = a->MoveTenantOut("acme", *cid,
                             [&](std::string_view seg) { return b->MoveTenantIn(seg, *key); });
  EXPECT_EQ(r3.status().code(), Code::kFailedPrecondition) << r3.status().ToString();
  ExpectUntouched(a, b, "acme", 60);
  // Malformed identity.
  EXPECT_EQ(a->MoveTenantOut("acme", "cvmove1:zz", [&](std::string_view) -> Result<std::string> {
               return std::string("ok");
             }).status().code(),
            Code::kInvalidArgument);
  // After all that, a clean move goes through.
  ASSERT_TRUE(MoveTenant(*a.store, *b.store, "acme").ok());
  EXPECT_EQ(*b->CountCalls("acme"), 60u);
  std::printf("[move] edited bundles: %d refused, 0 applied\n", refused);
}

TEST(Move, ReplayRefused) {
  Side a, b;
  ASSERT_NO_FATAL_FAILURE(a.Open());
  ASSERT_NO_FATAL_FAILURE(b.Open());
  ASSERT_TRUE(a->CreateTenant({.tenant_id = "acme"}).ok());
  ASSERT_NO_FATAL_FAILURE(Fill(*a.store, "acme", 30));
  auto key = TrustedSourceKey(a, b);
  ASSERT_TRUE(key.ok());
  auto identity = b->MoveIdentity();
  ASSERT_TRUE(identity.ok());
  // A ROWS segment sent twice within a move: refused, the move fails and
  // the source keeps the tenant.
  {
    int rows = 0;
    MoveOptions mo;
    mo.rows_per_segment = 20;
    auto r = a->MoveTenantOut("acme", *identity, [&](std::string_view seg) -> Result<std::string> {
      auto reply = b->MoveTenantIn(seg, *key);
      if (seg[5] == 'R' && rows++ == 0) return b->MoveTenantIn(seg, *key);
      return reply;
    }, mo);
    EXPECT_EQ(r.status().code(), Code::kCorruption) << r.status().ToString();
    ExpectUntouched(a, b, "acme", 30);
  }
  // A whole bundle recorded, moved, then replayed after the destination
  // purged the tenant: the BEGIN is refused (move id seen), nothing applied.
  std::vector<std::string> recorded;
  auto r = a->MoveTenantOut("acme", *identity, [&](std::string_view seg) {
    recorded.emplace_back(seg);
    return b->MoveTenantIn(seg, *key);
  });
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  auto again = b->MoveTenantIn(recorded[0], *key);
  EXPECT_EQ(again.status().code(), Code::kFailedPrecondition) << again.status().ToString();
  ASSERT_TRUE(b->PurgeTenant("acme").ok());
  for (const auto& seg : recorded) {
    if (seg[5] == 'Q' || seg[5] == 'A') continue;
    auto x = b->MoveTenantIn(seg, *key);
    EXPECT_FALSE(x.ok());
  }
  EXPECT_EQ(b->DescribeTenant("acme")->state, TenantState::kPurged);
  EXPECT_FALSE(b->GetCall("acme", "call-1").ok());
  auto orphans = b->ReconcileKeys(true);
  ASSERT_TRUE(orphans.ok());
  EXPECT_TRUE(orphans->orphan_keys.empty());
  // And after a restart of the destination (move ids are durable).
  b.store.reset();
  ASSERT_NO_FATAL_FAILURE(b.Open());
  EXPECT_EQ(b->MoveTenantIn(recorded[0], *key).status().code(), Code::kFailedPrecondition);
}

// The destination restarts in the middle of a move: its partial copy is
// discarded at open, the source is unfenced and the move runs again.
TEST(Move, DestinationRestartMidMoveThenResume) {
  Side a, b;
  ASSERT_NO_FATAL_FAILURE(a.Open());
  ASSERT_NO_FATAL_FAILURE(b.Open());
  ASSERT_TRUE(a->CreateTenant({.tenant_id = "acme"}).ok());
  ASSERT_NO_FATAL_FAILURE(Fill(*a.store, "acme", 50));
  auto key = TrustedSourceKey(a, b);
  auto identity = b->MoveIdentity();
  int n = 0;
  MoveOptions mo;
  mo.rows_per_segment = 20;
  auto r = a->MoveTenantOut("acme", *identity, [&](std::string_view seg) -> Result<std::string> {
    if (n++ == 2) {
      b.store.reset();
      b.Open();
    }
    return b->MoveTenantIn(seg, *key);
  }, mo);
  EXPECT_EQ(r.status().code(), Code::kFailedPrecondition) << r.status().ToString();
  ExpectUntouched(a, b, "acme", 50);
  ASSERT_TRUE(MoveTenant(*a.store, *b.store, "acme").ok());
  EXPECT_EQ(*b->CountCalls("acme"), 50u);
}

// --- Signed replies (decision 0051) ----------------------------------------
// Whoever carries the segments sees the ROWS and the COMMIT (its count and
// digest), so it could answer for the destination. Every reply is signed by
// the destination and bound to its request; the source acts on no other.

// The message a reply's signature covers, implemented from docs/format.md
// "Move bundle" alone: "cvmvreply1" ‖ move id ‖ type ‖ sequence (BE) ‖
// BLAKE2b-256(request segment) ‖ u32 LE text length ‖ text.
std::string ReplyMessage(std::string_view segment, std::string_view text) {
  std::string m = "cvmvreply1";
  m.append(segment.substr(6, 16));
  m.push_back(segment[5]);
  m.append(segment.substr(22, 8));
  unsigned char h[32];
  crypto_generichash(h, sizeof h, reinterpret_cast<const unsigned char*>(segment.data()),
                     segment.size(), nullptr, 0);
  m.append(reinterpret_cast<const char*>(h), sizeof h);
  const uint32_t n = static_cast<uint32_t>(text.size());
  for (int i = 0; i < 4; ++i) m.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
  m.append(text);
  return m;
}

std::string Hex(std::string_view b) {
  std::string h(b.size() * 2 + 1, '\0');
  sodium_bin2hex(h.data(), h.size(), reinterpret_cast<const unsigned char*>(b.data()), b.size());
  h.pop_back();
  return h;
}

std::string Unhex(std::string_view h) {
  std::string b(h.size() / 2, '\0');
  size_t n = 0;
  EXPECT_EQ(sodium_hex2bin(reinterpret_cast<unsigned char*>(b.data()), b.size(), h.data(), h.size(),
                           nullptr, &n, nullptr),
            0);
  b.resize(n);
  return b;
}

// The field after the last ':' of a cvmove2 identity: the signing key.
std::string SigningKeyOf(const std::string& identity) {
  return Unhex(identity.substr(identity.rfind(':') + 1));
}

// What a forger can read off a COMMIT segment: "committed <rows> <digest>"
// (the body after the 34-byte header starts with u64 LE rows, 32 bytes).
std::string CommittedTextOf(std::string_view commit) {
  uint64_t rows = 0;
  for (int i = 7; i >= 0; --i) rows = (rows << 8) | static_cast<unsigned char>(commit[34 + i]);
  return "committed " + std::to_string(rows) + " " + Hex(commit.substr(42, 32));
}

size_t MovedOutReceipts(Store& s, const std::string& tenant) {
  auto receipts = s.ListReceipts();
  EXPECT_TRUE(receipts.ok()) << receipts.status().ToString();
  if (!receipts.ok()) return 0;
  size_t n = 0;
  for (const auto& r : *receipts) n += r.kind == "moved_out" && r.tenant_id == tenant;
  return n;
}

// The tenant is fenced at `a` (for a move to `b`), not purged, and every
// call still reads there; no moved_out receipt.
void ExpectFencedNotPurged(Side& a, const std::string& tenant, uint64_t calls) {
  auto info = a->DescribeTenant(tenant);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->state, TenantState::kActive);
  EXPECT_FALSE(info->moved_to.empty());
  auto count = a->CountCalls(tenant);
  ASSERT_TRUE(count.ok()) << count.status().ToString();
  EXPECT_EQ(*count, calls);
  for (uint64_t i = 0; i < calls; ++i) {
    EXPECT_TRUE(a->GetCall(tenant, "call-" + std::to_string(i), kPartAll).ok()) << i;
  }
  EXPECT_EQ(MovedOutReceipts(*a.store, tenant), 0u);
}

// A move whose COMMIT, QUERY and ABORT never reach the destination: the
// source cannot know whether it committed, so the tenant stays fenced.
void LeaveFenced(Side& a, Side& b, const std::string& tenant, uint64_t calls) {
  auto key = TrustedSourceKey(a, b);
  ASSERT_TRUE(key.ok());
  auto identity = b->MoveIdentity();
  ASSERT_TRUE(identity.ok());
  auto r = a->MoveTenantOut(tenant, *identity, [&](std::string_view seg) -> Result<std::string> {
    if (seg[5] == 'C' || seg[5] == 'Q' || seg[5] == 'A') return Status::IOError("unreachable");
    return b->MoveTenantIn(seg, *key);
  });
  ASSERT_EQ(r.status().code(), Code::kIOError) << r.status().ToString();
  ASSERT_NO_FATAL_FAILURE(ExpectFencedNotPurged(a, tenant, calls));
}

// The carrier keeps the COMMIT from the destination and answers
// "committed <rows> <digest>" itself, with the source's own count and
// digest (read off the COMMIT it carries): unsigned, or with a signature of
// garbage. The source must not purge; the destination, still holding the
// partial copy, answers the QUERY, so the source unfences.
TEST(MoveReply, ForgedCommitReplyDoesNotPurge) {
  Side a, b;
  ASSERT_NO_FATAL_FAILURE(a.Open());
  ASSERT_NO_FATAL_FAILURE(b.Open());
  ASSERT_TRUE(a->CreateTenant({.tenant_id = "acme"}).ok());
  ASSERT_NO_FATAL_FAILURE(Fill(*a.store, "acme", 40));
  auto key = TrustedSourceKey(a, b);
  ASSERT_TRUE(key.ok());
  auto identity = b->MoveIdentity();
  ASSERT_TRUE(identity.ok());
  for (const std::string& tail : {std::string(), std::string(64, '\x5a')}) {
    std::string forged;
    MoveOptions mo;
    mo.rows_per_segment = 10;
    auto r = a->MoveTenantOut("acme", *identity, [&](std::string_view seg) -> Result<std::string> {
      if (seg[5] == 'C') {
        forged = CommittedTextOf(seg);
        return forged + tail;
      }
      return b->MoveTenantIn(seg, *key);
    }, mo);
    ASSERT_FALSE(forged.empty());
    EXPECT_EQ(r.status().code(), Code::kCorruption) << r.status().ToString();
    EXPECT_NE(r.status().message().find("reply does not verify"), std::string::npos)
        << r.status().ToString();
    EXPECT_EQ(MovedOutReceipts(*a.store, "acme"), 0u);
    ExpectUntouched(a, b, "acme", 40);
  }
  // The forged text was the one the source expects: an honest move answers it.
  std::string honest;
  auto r = a->MoveTenantOut("acme", *identity, [&](std::string_view seg) -> Result<std::string> {
    auto reply = b->MoveTenantIn(seg, *key);
    if (seg[5] == 'C' && reply.ok()) honest = CommittedTextOf(seg);
    return reply;
  });
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(honest, "committed " + std::to_string(r->rows) + " " + r->digest);
  EXPECT_EQ(MovedOutReceipts(*a.store, "acme"), 1u);
  EXPECT_EQ(*b->CountCalls("acme"), 40u);
}

// A move left fenced is resumed through a carrier that answers the QUERY
// "committed" itself: the source stays fenced, nothing purged. The honest
// resume then finds the move uncommitted, unfences and moves the tenant.
TEST(MoveReply, ForgedQueryCommittedDoesNotPurge) {
  Side a, b;
  ASSERT_NO_FATAL_FAILURE(a.Open());
  ASSERT_NO_FATAL_FAILURE(b.Open());
  ASSERT_TRUE(a->CreateTenant({.tenant_id = "acme"}).ok());
  ASSERT_NO_FATAL_FAILURE(Fill(*a.store, "acme", 30));
  ASSERT_NO_FATAL_FAILURE(LeaveFenced(a, b, "acme", 30));
  auto key = TrustedSourceKey(a, b);
  auto identity = b->MoveIdentity();
  for (const std::string& tail : {std::string(), std::string(64, '\x5a')}) {
    int queries = 0;
    auto r = a->MoveTenantOut("acme", *identity, [&](std::string_view seg) -> Result<std::string> {
      if (seg[5] == 'Q') {
        ++queries;
        return "committed" + tail;
      }
      return b->MoveTenantIn(seg, *key);
    });
    EXPECT_EQ(queries, 1);
    EXPECT_EQ(r.status().code(), Code::kCorruption) << r.status().ToString();
    ASSERT_NO_FATAL_FAILURE(ExpectFencedNotPurged(a, "acme", 30));
  }
  auto r = MoveTenant(*a.store, *b.store, "acme");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_FALSE(r->resumed);  // not committed there: moved again
  EXPECT_EQ(*b->CountCalls("acme"), 30u);
  EXPECT_EQ(MovedOutReceipts(*a.store, "acme"), 1u);
}

// The destination's genuine signed "committed", recorded from the QUERY of
// an earlier move (of another tenant), replayed for a fenced move: bound to
// the other move's id and QUERY, it does not verify.
TEST(MoveReply, ReplayedReplyOfAnotherMoveDoesNotPurge) {
  Side a, b;
  ASSERT_NO_FATAL_FAILURE(a.Open());
  ASSERT_NO_FATAL_FAILURE(b.Open());
  ASSERT_TRUE(a->CreateTenant({.tenant_id = "other"}).ok());
  ASSERT_NO_FATAL_FAILURE(Fill(*a.store, "other", 20));
  ASSERT_TRUE(a->CreateTenant({.tenant_id = "acme"}).ok());
  ASSERT_NO_FATAL_FAILURE(Fill(*a.store, "acme", 30));
  auto key = TrustedSourceKey(a, b);
  auto identity = b->MoveIdentity();
  // "other": the COMMIT reaches b but its reply is lost; the QUERY that
  // follows is answered "committed" (recorded), and a resume finishes it.
  std::string recorded;
  auto r = a->MoveTenantOut("other", *identity, [&](std::string_view seg) -> Result<std::string> {
    auto reply = b->MoveTenantIn(seg, *key);
    if (seg[5] == 'C') return Status::IOError("reply lost");
    if (seg[5] == 'Q' && reply.ok()) recorded = *reply;
    return reply;
  });
  EXPECT_EQ(r.status().code(), Code::kIOError) << r.status().ToString();
  ASSERT_EQ(recorded.substr(0, 9), "committed");
  ASSERT_TRUE(MoveTenant(*a.store, *b.store, "other").ok());
  EXPECT_EQ(MovedOutReceipts(*a.store, "other"), 1u);

  ASSERT_NO_FATAL_FAILURE(LeaveFenced(a, b, "acme", 30));
  int replayed = 0;
  r = a->MoveTenantOut("acme", *identity, [&](std::string_view seg) -> Result<std::string> {
    if (seg[5] == 'Q') {
      ++replayed;
      return recorded;
    }
    return b->MoveTenantIn(seg, *key);
  });
  EXPECT_EQ(replayed, 1);
  EXPECT_EQ(r.status().code(), Code::kCorruption) << r.status().ToString();
  ASSERT_NO_FATAL_FAILURE(ExpectFencedNotPurged(a, "acme", 30));
  ASSERT_TRUE(MoveTenant(*a.store, *b.store, "acme").ok());
  EXPECT_EQ(*b->CountCalls("acme"), 30u);
}

// Replies signed by a key other than the one the identity names: an
// identity naming another store's signing key (c's) with b's genuine
// replies, and a forged COMMIT reply correctly framed but signed by a key of
// the carrier's. Every genuine reply verifies under b's key with the
// framing of format.md (implemented here from the text).
TEST(MoveReply, ReplySignedByAnotherKeyDoesNotPurge) {
  Side a, b, c;
  ASSERT_NO_FATAL_FAILURE(a.Open());
  ASSERT_NO_FATAL_FAILURE(b.Open());
  ASSERT_NO_FATAL_FAILURE(c.Open());
  ASSERT_TRUE(a->CreateTenant({.tenant_id = "acme"}).ok());
  ASSERT_NO_FATAL_FAILURE(Fill(*a.store, "acme", 30));
  auto key = TrustedSourceKey(a, b);
  auto identity = b->MoveIdentity();
  ASSERT_TRUE(identity.ok());
  const std::string b_key = SigningKeyOf(*identity);
  ASSERT_EQ(b_key.size(), 32u);
  auto c_identity = c->MoveIdentity();
  ASSERT_TRUE(c_identity.ok());
  // b's identity naming c's signing key: b's replies do not verify under
  // it, from the BEGIN's on; nothing is left at b (its ABORT was applied).
  {
    const std::string mixed = identity->substr(0, identity->rfind(':') + 1) +
                              c_identity->substr(c_identity->rfind(':') + 1);
    int sent = 0;
    auto r = a->MoveTenantOut("acme", mixed, [&](std::string_view seg) {
      ++sent;
      return b->MoveTenantIn(seg, *key);
    });
    EXPECT_EQ(r.status().code(), Code::kCorruption) << r.status().ToString();
    EXPECT_EQ(sent, 2);  // the BEGIN, then the ABORT
    ExpectUntouched(a, b, "acme", 30);
  }
  unsigned char pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
  crypto_sign_keypair(pk, sk);
  auto sign = [&](std::string_view seg, const std::string& text) {
    const std::string m = ReplyMessage(seg, text);
    std::string sig(crypto_sign_BYTES, '\0');
    crypto_sign_detached(reinterpret_cast<unsigned char*>(sig.data()), nullptr,
                         reinterpret_cast<const unsigned char*>(m.data()), m.size(), sk);
    return text + sig;
  };
  int genuine = 0;
  bool forged = false;
  auto r = a->MoveTenantOut("acme", *identity, [&](std::string_view seg) -> Result<std::string> {
    if (seg[5] == 'C') {
      forged = true;
      return sign(seg, CommittedTextOf(seg));
    }
    auto reply = b->MoveTenantIn(seg, *key);
    if (reply.ok()) {
      // A genuine reply: text ‖ Ed25519 signature by b over the framing.
      EXPECT_GE(reply->size(), crypto_sign_BYTES);
      const std::string text = reply->substr(0, reply->size() - crypto_sign_BYTES);
      const std::string m = ReplyMessage(seg, text);
      EXPECT_EQ(crypto_sign_verify_detached(
                    reinterpret_cast<const unsigned char*>(reply->data() + text.size()),
                    reinterpret_cast<const unsigned char*>(m.data()), m.size(),
                    reinterpret_cast<const unsigned char*>(b_key.data())),
                0)
          << seg[5] << " " << text;
      ++genuine;
    }
    return reply;
  });
  ASSERT_TRUE(forged);
  EXPECT_GE(genuine, 4);  // BEGIN, ROWS, QUERY, ABORT
  EXPECT_EQ(r.status().code(), Code::kCorruption) << r.status().ToString();
  EXPECT_EQ(MovedOutReceipts(*a.store, "acme"), 0u);
  ExpectUntouched(a, b, "acme", 30);
}

// A genuine reply with its text altered ("in_progress" made "committed",
// the signature kept) or truncated: no answer; the source stays fenced.
TEST(MoveReply, AlteredReplyTextDoesNotPurge) {
  Side a, b;
  ASSERT_NO_FATAL_FAILURE(a.Open());
  ASSERT_NO_FATAL_FAILURE(b.Open());
  ASSERT_TRUE(a->CreateTenant({.tenant_id = "acme"}).ok());
  ASSERT_NO_FATAL_FAILURE(Fill(*a.store, "acme", 30));
  ASSERT_NO_FATAL_FAILURE(LeaveFenced(a, b, "acme", 30));
  auto key = TrustedSourceKey(a, b);
  auto identity = b->MoveIdentity();
  for (int variant = 0; variant < 2; ++variant) {
    std::string genuine;
    auto r = a->MoveTenantOut("acme", *identity, [&](std::string_view seg) -> Result<std::string> {
      auto reply = b->MoveTenantIn(seg, *key);
      if (seg[5] != 'Q' || !reply.ok()) return reply;
      genuine = *reply;
      std::string altered = *reply;
      if (variant == 0) {
        altered.replace(0, std::string("in_progress").size(), "committed");
      } else {
        altered.pop_back();
      }
      return altered;
    });
    EXPECT_EQ(genuine.substr(0, 11), "in_progress");
    EXPECT_EQ(r.status().code(), Code::kCorruption) << variant << " " << r.status().ToString();
    ASSERT_NO_FATAL_FAILURE(ExpectFencedNotPurged(a, "acme", 30));
  }
  ASSERT_TRUE(MoveTenant(*a.store, *b.store, "acme").ok());
  EXPECT_EQ(*b->CountCalls("acme"), 30u);
}

// After a COMMIT that got no answer, the destination verifiably says
// "in_progress" but its ABORT is lost: the source stays fenced (it used to
// unfence). The carrier still holds the COMMIT and hands it over later; the
// destination switches, and had the source unfenced both would serve the
// tenant. Resumed, the move finishes.
TEST(MoveReply, FenceLiftedOnlyAfterAVerifiedAbort) {
  Side a, b;
  ASSERT_NO_FATAL_FAILURE(a.Open());
  ASSERT_NO_FATAL_FAILURE(b.Open());
  ASSERT_TRUE(a->CreateTenant({.tenant_id = "acme"}).ok());
  ASSERT_NO_FATAL_FAILURE(Fill(*a.store, "acme", 30));
  auto key = TrustedSourceKey(a, b);
  auto identity = b->MoveIdentity();
  std::string commit;
  auto r = a->MoveTenantOut("acme", *identity, [&](std::string_view seg) -> Result<std::string> {
    if (seg[5] == 'C') {
      commit.assign(seg);
      return Status::IOError("unreachable");
    }
    if (seg[5] == 'A') return Status::IOError("unreachable");
    return b->MoveTenantIn(seg, *key);  // QUERY: "in_progress"
  });
  EXPECT_EQ(r.status().code(), Code::kIOError) << r.status().ToString();
  ASSERT_FALSE(commit.empty());
  ASSERT_NO_FATAL_FAILURE(ExpectFencedNotPurged(a, "acme", 30));
  EXPECT_EQ(a->PutCall("acme", MakeCall("late", kT0)).status().code(), Code::kMoved);
  // The held COMMIT reaches the destination: it switches.
  ASSERT_TRUE(b->MoveTenantIn(commit, *key).ok());
  EXPECT_EQ(b->DescribeTenant("acme")->state, TenantState::kActive);
  auto resumed = MoveTenant(*a.store, *b.store, "acme");
  ASSERT_TRUE(resumed.ok()) << resumed.status().ToString();
  EXPECT_TRUE(resumed->resumed);
  EXPECT_EQ(MovedOutReceipts(*a.store, "acme"), 1u);
  EXPECT_EQ(*b->CountCalls("acme"), 30u);
}

// A cvmove1 identity names no key for the replies: refused before anything
// is sent, with a message that tells the operator what to take instead.
TEST(MoveReply, Cvmove1IdentityRefusedBeforeAnythingIsSent) {
  Side a, b;
  ASSERT_NO_FATAL_FAILURE(a.Open());
  ASSERT_NO_FATAL_FAILURE(b.Open());
  ASSERT_TRUE(a->CreateTenant({.tenant_id = "acme"}).ok());
  ASSERT_NO_FATAL_FAILURE(Fill(*a.store, "acme", 10));
  auto identity = b->MoveIdentity();
  ASSERT_TRUE(identity.ok());
  // cvmove1:<store id>:<region>:<X25519 key>, as session 13's stores printed it.
  std::string v1 = "cvmove1:" + identity->substr(8);
  if (std::count(v1.begin(), v1.end(), ':') == 4) v1.erase(v1.rfind(':'));
  auto key = TrustedSourceKey(a, b);
  int sent = 0;
  auto r = a->MoveTenantOut("acme", v1, [&](std::string_view seg) {
    ++sent;
    return b->MoveTenantIn(seg, *key);
  });
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument) << r.status().ToString();
  EXPECT_NE(r.status().message().find("cvmove1"), std::string::npos) << r.status().ToString();
  EXPECT_NE(r.status().message().find("callvault identity"), std::string::npos);
  EXPECT_EQ(sent, 0);
  ExpectUntouched(a, b, "acme", 10);
  // A cvmove2 identity with its signing key cut short: refused too.
  const std::string cut = identity->substr(0, identity->size() - 2);
  EXPECT_EQ(a->MoveTenantOut("acme", cut, [&](std::string_view seg) {
               ++sent;
               return b->MoveTenantIn(seg, *key);
             }).status().code(),
            Code::kInvalidArgument);
  EXPECT_EQ(sent, 0);
}

int RunCli(const std::string& args, std::string* out) {
  return testutil::RunShell(std::string(CALLVAULT_BIN) + " " + args + " 2>&1", out);
}

// The operator's path: `callvault identity`, `callvault tenant move`.
TEST(Move, Cli) {
  Side a, b;
  ASSERT_NO_FATAL_FAILURE(a.Open());
  ASSERT_NO_FATAL_FAILURE(b.Open());
  ASSERT_TRUE(a->CreateTenant({.tenant_id = "acme"}).ok());
  ASSERT_NO_FATAL_FAILURE(Fill(*a.store, "acme", 25));
  const std::string b_identity = *b->MoveIdentity();
  a.store.reset();
  b.store.reset();
  std::string out;
  ASSERT_EQ(RunCli("--db " + b.db + " --keys " + b.keys + " identity", &out), 0) << out;
  EXPECT_EQ(out, b_identity + "\n");
  const std::string move = "tenant move acme --from " + a.db + " --from-keys " + a.keys + " --to " +
                           b.db + " --to-keys " + b.keys;
  out.clear();
  ASSERT_EQ(RunCli(move, &out), 0) << out;
  EXPECT_NE(out.find("moved_out receipt"), std::string::npos) << out;
  out.clear();
  ASSERT_EQ(RunCli("--db " + b.db + " --keys " + b.keys + " tenant show acme", &out), 0) << out;
  EXPECT_NE(out.find("moved_from"), std::string::npos) << out;
  out.clear();
  EXPECT_EQ(RunCli(move, &out), 75) << out;  // moved: retry at the destination
  EXPECT_NE(out.find("moved to store " + b_identity.substr(8, 32)), std::string::npos) << out;
  ASSERT_NO_FATAL_FAILURE(b.Open());
  EXPECT_EQ(*b->CountCalls("acme"), 25u);
  // A store that never signed anything has no signing key for its identity
  // to name: `identity` opens it writable once (creating the key), then
  // prints the same identity read-only.
  Side c;
  ASSERT_NO_FATAL_FAILURE(c.Open());
  c.store.reset();
  out.clear();
  ASSERT_EQ(RunCli("--db " + c.db + " --keys " + c.keys + " identity", &out), 0) << out;
  EXPECT_EQ(out.substr(0, 8), "cvmove2:") << out;
  EXPECT_EQ(std::count(out.begin(), out.end(), ':'), 4) << out;
  std::string again;
  ASSERT_EQ(RunCli("--db " + c.db + " --keys " + c.keys + " identity", &again), 0) << again;
  EXPECT_EQ(again, out);
}


// --- Trusted move sources (decision 0062) ----------------------------------

// Sends `tenant` from `src` to `dst` through MoveTenantIn with the source's
// own, correctly signed segments: what a network transport would do.
Result<MoveReport> MoveOverTransport(Side& src, Side& dst, const std::string& tenant) {
  auto identity = dst->MoveIdentity();
  if (!identity.ok()) return identity.status();
  auto key = src->SigningPublicKey();
  if (!key.ok()) return key.status();
  Store* in = dst.store.get();
  const std::string k = *key;
  return src->MoveTenantOut(tenant, *identity,
                            [in, k](std::string_view seg) { return in->MoveTenantIn(seg, k); });
}

// Nothing of `tenant` at b: no tenant, no key left behind.
void ExpectNothingArrived(Side& b, const std::string& tenant) {
  auto at_b = b->DescribeTenant(tenant);
  EXPECT_EQ(at_b.status().code(), Code::kNotFound) << at_b.status().ToString();
  auto orphans = b->ReconcileKeys(/*dry_run=*/true);
  ASSERT_TRUE(orphans.ok());
  EXPECT_TRUE(orphans->orphan_keys.empty());
}

TEST(MovePeers, UntrustedSourceRefusedNothingWritten) {
  Side a, b, c;
  ASSERT_NO_FATAL_FAILURE(a.Open());
  ASSERT_NO_FATAL_FAILURE(b.Open());
  ASSERT_NO_FATAL_FAILURE(c.Open());
  // c: a third store, knowing b's public identity, seals a tenant's DEK to
  // it and signs every segment with its own, genuine key.
  ASSERT_TRUE(c->CreateTenant({.tenant_id = "forged"}).ok());
  ASSERT_NO_FATAL_FAILURE(Fill(*c.store, "forged", 20));
  // An empty list refuses every source.
  auto peers = b->ListMovePeers();
  ASSERT_TRUE(peers.ok());
  EXPECT_TRUE(peers->empty());
  auto r = MoveOverTransport(c, b, "forged");
  EXPECT_EQ(r.status().code(), Code::kFailedPrecondition) << r.status().ToString();
  EXPECT_NE(r.status().message().find("not a trusted peer"), std::string::npos)
      << r.status().ToString();
  ExpectNothingArrived(b, "forged");
  ExpectUntouched(c, b, "forged", 20);
  // b trusts a, not c: still refused.
  auto a_id = a->MoveIdentity();
  ASSERT_TRUE(a_id.ok());
  ASSERT_TRUE(b->TrustMovePeer(*a_id).ok());
  r = MoveOverTransport(c, b, "forged");
  EXPECT_EQ(r.status().code(), Code::kFailedPrecondition) << r.status().ToString();
  ExpectNothingArrived(b, "forged");
  ExpectUntouched(c, b, "forged", 20);
  // Across a restart too (the list is read from the key directory).
  b.store.reset();
  ASSERT_NO_FATAL_FAILURE(b.Open());
  r = MoveOverTransport(c, b, "forged");
  EXPECT_EQ(r.status().code(), Code::kFailedPrecondition) << r.status().ToString();
  ExpectNothingArrived(b, "forged");
  // c's keys listed under another store id: its BEGIN (naming c's store
  // id) is refused all the same.
  auto c_id = c->MoveIdentity();
  ASSERT_TRUE(c_id.ok());
  std::string other = *c_id;
  other.replace(8, 32, std::string(32, 'a'));
  ASSERT_TRUE(b->TrustMovePeer(other).ok());
  r = MoveOverTransport(c, b, "forged");
  EXPECT_EQ(r.status().code(), Code::kFailedPrecondition) << r.status().ToString();
  EXPECT_NE(r.status().message().find("another source store"), std::string::npos)
      << r.status().ToString();
  ExpectNothingArrived(b, "forged");
  ExpectUntouched(c, b, "forged", 20);
}

TEST(MovePeers, TrustedSourceAcceptedAndRemovalTakesEffect) {
  Side a, b;
  ASSERT_NO_FATAL_FAILURE(a.Open());
  ASSERT_NO_FATAL_FAILURE(b.Open());
  for (const char* t : {"one", "two", "three"}) {
    ASSERT_TRUE(a->CreateTenant({.tenant_id = t}).ok());
    ASSERT_NO_FATAL_FAILURE(Fill(*a.store, t, 30));
  }
  auto a_id = a->MoveIdentity();
  ASSERT_TRUE(a_id.ok());
  ASSERT_TRUE(b->TrustMovePeer(*a_id).ok());
  EXPECT_EQ(b->TrustMovePeer(*a_id).code(), Code::kAlreadyExists);
  auto peers = b->ListMovePeers();
  ASSERT_TRUE(peers.ok());
  EXPECT_EQ(*peers, std::vector<std::string>{*a_id});
  auto trusted = b->ListAudit(0, "move_peer_trusted");
  ASSERT_TRUE(trusted.ok());
  EXPECT_EQ(trusted->size(), 1u);

  auto r = MoveOverTransport(a, b, "one");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(*b->CountCalls("one"), 30u);
  // Not the in-process path: no such audit event.
  auto in_process = b->ListAudit(0, "move_source_in_process");
  ASSERT_TRUE(in_process.ok());
  EXPECT_TRUE(in_process->empty());

  // Removed by store id: the next move is refused, nothing written.
  const std::string a_store = StoreIdOf(*a.store);
  ASSERT_TRUE(b->RemoveMovePeer(a_store).ok());
  EXPECT_EQ(b->RemoveMovePeer(a_store).code(), Code::kNotFound);
  EXPECT_TRUE(b->ListMovePeers()->empty());
  r = MoveOverTransport(a, b, "two");
  EXPECT_EQ(r.status().code(), Code::kFailedPrecondition) << r.status().ToString();
  ExpectUntouched(a, b, "two", 30);
  ExpectNothingArrived(b, "two");

  // Removed while a move of it is under way: the segments after the
  // removal are refused; the partial copy is gone after b restarts.
  ASSERT_TRUE(b->TrustMovePeer(*a_id).ok());
  auto identity = b->MoveIdentity();
  ASSERT_TRUE(identity.ok());
  auto key = a->SigningPublicKey();
  ASSERT_TRUE(key.ok());
  int sent = 0;
  MoveOptions mo;
  mo.rows_per_segment = 50;
  r = a->MoveTenantOut("three", *identity, [&](std::string_view seg) -> Result<std::string> {
    if (sent++ == 1) {
      EXPECT_TRUE(b->RemoveMovePeer(*a_id).ok());
    }
    return b->MoveTenantIn(seg, *key);
  }, mo);
  EXPECT_GT(sent, 1);
  EXPECT_EQ(r.status().code(), Code::kFailedPrecondition) << r.status().ToString();
  // The source serves it as before (b holds a partial copy until it
  // restarts, as after any move that failed mid-copy).
  EXPECT_EQ(*a->CountCalls("three"), 30u);
  EXPECT_EQ(a->DescribeTenant("three")->state, TenantState::kActive);
  EXPECT_TRUE(a->PutCall("three", MakeCall("after", kT0)).ok());
  b.store.reset();
  ASSERT_NO_FATAL_FAILURE(b.Open());
  auto at_b = b->DescribeTenant("three");
  EXPECT_TRUE(!at_b.ok() || at_b->state == TenantState::kPurged) << at_b.status().ToString();
  auto orphans = b->ReconcileKeys(/*dry_run=*/true);
  ASSERT_TRUE(orphans.ok());
  EXPECT_TRUE(orphans->orphan_keys.empty());
  auto removed = b->ListAudit(0, "move_peer_removed");
  ASSERT_TRUE(removed.ok());
  EXPECT_EQ(removed->size(), 2u);
}

TEST(MovePeers, InProcessMoveNeedsNoListAndIsAudited) {
  Side a, b;
  ASSERT_NO_FATAL_FAILURE(a.Open());
  ASSERT_NO_FATAL_FAILURE(b.Open());
  ASSERT_TRUE(a->CreateTenant({.tenant_id = "acme"}).ok());
  ASSERT_NO_FATAL_FAILURE(Fill(*a.store, "acme", 10));
  ASSERT_TRUE(b->ListMovePeers()->empty());
  auto r = MoveTenant(*a.store, *b.store, "acme");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(*b->CountCalls("acme"), 10u);
  auto events = b->ListAudit(0, "move_source_in_process");
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events->size(), 1u);
  EXPECT_EQ(events->front().tenant_id, "acme");
  EXPECT_NE(events->front().detail.find("from=" + StoreIdOf(*a.store)), std::string::npos);
  // It added nothing to the list.
  EXPECT_TRUE(b->ListMovePeers()->empty());
}

TEST(MovePeers, PlantedOrEditedPeersFileRefused) {
  Side a, b;
  ASSERT_NO_FATAL_FAILURE(a.Open());
  ASSERT_NO_FATAL_FAILURE(b.Open());
  ASSERT_TRUE(a->CreateTenant({.tenant_id = "acme"}).ok());
  ASSERT_NO_FATAL_FAILURE(Fill(*a.store, "acme", 10));
  auto a_id = a->MoveIdentity();
  ASSERT_TRUE(a_id.ok());
  const std::string peers = b.keys + "/PEERS";
  auto plant = [&](const std::string& bytes) { PlantPeers(b, bytes); };
  // Written by hand from format.md alone: accepted (the key directory is
  // the operator's; this checks the format as documented).
  const std::string good = "callvault-peers 1\n" + *a_id + "\n";
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"another header", "callvault-peers 2\n" + *a_id + "\n"},
      {"trailing garbage", good + "x"},
      {"no final newline", good.substr(0, good.size() - 1)},
      {"a line that is no identity", good + "cvmove2:zz\n"},
      {"an empty line", good + "\n"},
      {"a key listed twice", good + *a_id + "\n"},
      // a's store id with other keys: `peer remove STORE_ID` would take
      // out only the first line and leave the store trusted.
      {"a store id listed twice",
       good + a_id->substr(0, a_id->size() - 64) + std::string(64, 'b') + "\n"},
      {"a cvmove1 identity", "callvault-peers 1\ncvmove1:" + a_id->substr(8) + "\n"},
  };
  for (const auto& [what, bytes] : bad) {
    ASSERT_NO_FATAL_FAILURE(plant(bytes));
    auto r = MoveOverTransport(a, b, "acme");
    EXPECT_EQ(r.status().code(), Code::kCorruption) << what << ": " << r.status().ToString();
    EXPECT_NE(r.status().message().find("trusted-peers file"), std::string::npos) << what;
    EXPECT_EQ(b->ListMovePeers().status().code(), Code::kCorruption) << what;
    EXPECT_EQ(b->TrustMovePeer(*a_id).code(), Code::kCorruption) << what;
    ExpectUntouched(a, b, "acme", 10);
    ExpectNothingArrived(b, "acme");
  }
  // A symlink to a well-formed list elsewhere: not followed.
  TempDir elsewhere;
  const std::string target = elsewhere.Sub("PEERS");
  {
    std::FILE* f = std::fopen(target.c_str(), "wb");
    ASSERT_NE(f, nullptr);
    std::fwrite(good.data(), 1, good.size(), f);
    std::fclose(f);
  }
  std::remove(peers.c_str());
  ASSERT_EQ(::symlink(target.c_str(), peers.c_str()), 0);
  auto r = MoveOverTransport(a, b, "acme");
  EXPECT_EQ(r.status().code(), Code::kKeyError) << r.status().ToString();
  EXPECT_EQ(b->ListMovePeers().status().code(), Code::kKeyError);
  ExpectUntouched(a, b, "acme", 10);
  ExpectNothingArrived(b, "acme");
  // The well-formed file itself: accepted.
  std::remove(peers.c_str());
  ASSERT_NO_FATAL_FAILURE(plant(good));
  auto listed = b->ListMovePeers();
  ASSERT_TRUE(listed.ok()) << listed.status().ToString();
  EXPECT_EQ(*listed, std::vector<std::string>{*a_id});
  r = MoveOverTransport(a, b, "acme");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(*b->CountCalls("acme"), 10u);
}

// An identity's hex in uppercase, as an operator may type it (the region
// and the "cvmove2" tag keep their case).
std::string UpperHex(const std::string& identity) {
  std::string out = identity;
  const size_t region_at = 8 + 32 + 1;
  const size_t region_end = out.find(':', region_at);
  for (size_t i = 8; i < out.size(); ++i) {
    if (i >= region_at && i < region_end) continue;
    out[i] = static_cast<char>(std::toupper(static_cast<unsigned char>(out[i])));
  }
  return out;
}

TEST(MovePeers, IdentityStoredCanonicallyAndRemovedInEitherCase) {
  Side a, b;
  ASSERT_NO_FATAL_FAILURE(a.Open());
  ASSERT_NO_FATAL_FAILURE(b.Open());
  ASSERT_TRUE(a->CreateTenant({.tenant_id = "acme"}).ok());
  ASSERT_NO_FATAL_FAILURE(Fill(*a.store, "acme", 10));
  auto a_id = a->MoveIdentity();
  ASSERT_TRUE(a_id.ok());
  const std::string upper = UpperHex(*a_id);
  ASSERT_NE(upper, *a_id);
  const std::string a_store = StoreIdOf(*a.store);
  std::string upper_store = a_store;
  for (auto& ch : upper_store) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  // Trusted as typed in uppercase: listed (and stored) as `identity` prints
  // it, so each removal below finds it.
  const std::vector<std::pair<std::string, std::string>> cases = {
      {upper, *a_id}, {upper, a_store}, {upper, upper_store}, {*a_id, upper}};
  for (const auto& [trusted, removed] : cases) {
    ASSERT_TRUE(b->TrustMovePeer(trusted).ok()) << trusted;
    EXPECT_EQ(*b->ListMovePeers(), std::vector<std::string>{*a_id}) << trusted;
    EXPECT_EQ(b->TrustMovePeer(*a_id).code(), Code::kAlreadyExists);
    Status s = b->RemoveMovePeer(removed);
    ASSERT_TRUE(s.ok()) << trusted << " removed as " << removed << ": " << s.ToString();
    EXPECT_TRUE(b->ListMovePeers()->empty());
    // No longer trusted: refused, nothing arrives.
    auto r = MoveOverTransport(a, b, "acme");
    EXPECT_EQ(r.status().code(), Code::kFailedPrecondition) << r.status().ToString();
    ExpectNothingArrived(b, "acme");
  }
  // A hand-written list in uppercase: the same peer, removed by the
  // lowercase store id.
  ASSERT_NO_FATAL_FAILURE(PlantPeers(b, "callvault-peers 1\n" + upper + "\n"));
  EXPECT_EQ(*b->ListMovePeers(), std::vector<std::string>{*a_id});
  ASSERT_TRUE(b->RemoveMovePeer(a_store).ok());
  EXPECT_TRUE(b->ListMovePeers()->empty());
  auto r = MoveOverTransport(a, b, "acme");
  EXPECT_EQ(r.status().code(), Code::kFailedPrecondition) << r.status().ToString();
  ExpectNothingArrived(b, "acme");
}

// This store's own signing key or box key under another store id is this
// store: refused at trust time, nothing listed.
TEST(MovePeers, OwnKeysUnderAnotherStoreIdRefused) {
  Side a, b;
  ASSERT_NO_FATAL_FAILURE(a.Open());
  ASSERT_NO_FATAL_FAILURE(b.Open());
  auto a_id = a->MoveIdentity();
  auto b_id = b->MoveIdentity();
  ASSERT_TRUE(a_id.ok() && b_id.ok());
  const size_t keys_at = b_id->size() - 64 - 1 - 64;  // <public key>:<signing key>
  std::string own_both = *b_id;
  own_both.replace(8, 32, std::string(32, 'a'));
  std::string own_signing = a_id->substr(0, a_id->size() - 64) + b_id->substr(b_id->size() - 64);
  std::string own_box = a_id->substr(0, keys_at) + b_id->substr(keys_at, 64) +
                        a_id->substr(a_id->size() - 65);
  for (const auto& id : {*b_id, UpperHex(*b_id), own_both, own_signing, own_box}) {
    Status s = b->TrustMovePeer(id);
    EXPECT_EQ(s.code(), Code::kInvalidArgument) << id << ": " << s.ToString();
    EXPECT_NE(s.message().find("this store's own"), std::string::npos) << s.ToString();
  }
  EXPECT_TRUE(b->ListMovePeers()->empty());
  ASSERT_TRUE(b->TrustMovePeer(*a_id).ok());  // a's own identity is a peer's
}

// A source of another region is refused when trusted, not only at its
// first move (decision 0022 refuses that move anyway).
TEST(MovePeers, AnotherRegionRefusedAtTrust) {
  Side a, b;
  ASSERT_NO_FATAL_FAILURE(a.Open("us-east"));
  ASSERT_NO_FATAL_FAILURE(b.Open());
  auto a_id = a->MoveIdentity();
  ASSERT_TRUE(a_id.ok());
  Status s = b->TrustMovePeer(*a_id);
  EXPECT_EQ(s.code(), Code::kFailedPrecondition) << s.ToString();
  EXPECT_NE(s.message().find("another region ('us-east'"), std::string::npos) << s.ToString();
  EXPECT_TRUE(b->ListMovePeers()->empty());
}

// A cvmove1 identity (no signing key) gets its own message, not the
// generic "expected cvmove2:..." one.
TEST(MovePeers, Cvmove1IdentityNamedAsSuch) {
  Side a, b;
  ASSERT_NO_FATAL_FAILURE(a.Open());
  ASSERT_NO_FATAL_FAILURE(b.Open());
  auto a_id = a->MoveIdentity();
  ASSERT_TRUE(a_id.ok());
  // cvmove1:<store id>:<region>:<X25519 key>, as session 13's stores printed it.
  const std::string v1 = "cvmove1:" + a_id->substr(8, a_id->size() - 8 - 65);
  Status s = b->TrustMovePeer(v1);
  EXPECT_EQ(s.code(), Code::kInvalidArgument) << s.ToString();
  EXPECT_NE(s.message().find("peer identity is cvmove1"), std::string::npos) << s.ToString();
  EXPECT_NE(s.message().find("source store's current `callvault identity`"), std::string::npos)
      << s.ToString();
  EXPECT_TRUE(b->ListMovePeers()->empty());
}

size_t AuditCount(Side& s, const char* kind) {
  auto events = s->ListAudit(0, kind);
  EXPECT_TRUE(events.ok());
  return events.ok() ? events->size() : 0;
}

// Identities that can never be a peer (issue 12, session 18 attack F6b):
// refused by `peer trust` with invalid_argument and their own message; the
// list and the audit log unchanged.
TEST(MovePeers, NeverAPeerRefusedAtTrust) {
  Side a, b, c;
  ASSERT_NO_FATAL_FAILURE(a.Open());
  ASSERT_NO_FATAL_FAILURE(b.Open());
  ASSERT_NO_FATAL_FAILURE(c.Open());
  auto a_id = a->MoveIdentity();
  auto b_id = b->MoveIdentity();
  auto c_id = c->MoveIdentity();
  ASSERT_TRUE(a_id.ok() && b_id.ok() && c_id.ok());
  ASSERT_TRUE(b->TrustMovePeer(*a_id).ok());
  const std::string zero32(32, '0'), zero64(64, '0');
  const std::vector<std::pair<std::string, std::string>> cases = {
      {WithField(*c_id, 1, zero32), "all-zero store id"},
      {WithField(*c_id, 3, zero64), "all-zero public or signing key"},
      {WithField(*c_id, 4, zero64), "all-zero public or signing key"},
      {WithField(*c_id, 3, FieldOf(*c_id, 4)), "public key is its signing key"},
      // The Ed25519 identity point (small order); p itself (not canonical).
      {WithField(*c_id, 4, "01" + std::string(62, '0')), "signing key is not an Ed25519 public key"},
      {WithField(*c_id, 4, "ed" + std::string(60, 'f') + "7f"), "signing key is not an Ed25519 public key"},
      // X25519 points of small order: u = 1, and a point of order 8.
      {WithField(*c_id, 3, "01" + std::string(62, '0')), "X25519 key of small order"},
      {WithField(*c_id, 3, "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
       "X25519 key of small order"},
      // b's own signing key as the public key, b's box key as the signing key.
      {WithField(*c_id, 3, FieldOf(*b_id, 4)), "this store's own"},
      {WithField(*c_id, 4, FieldOf(*b_id, 3)), "this store's own"},
      // a (trusted) uses this public key already; or its signing key.
      {WithField(*c_id, 3, FieldOf(*a_id, 3)), "another trusted peer's key"},
      {WithField(*c_id, 3, FieldOf(*a_id, 4)), "another trusted peer's key"},
      {WithField(*c_id, 4, FieldOf(*a_id, 3)), "another trusted peer's key"},
  };
  for (const auto& [id, why] : cases) {
    Status s = b->TrustMovePeer(id);
    EXPECT_EQ(s.code(), Code::kInvalidArgument) << id << ": " << s.ToString();
    EXPECT_NE(s.message().find(why), std::string::npos) << id << ": " << s.ToString();
    EXPECT_EQ(*b->ListMovePeers(), std::vector<std::string>{*a_id}) << id;
  }
  EXPECT_EQ(AuditCount(b, "move_peer_trusted"), 1u);
  // c's own identity is still a peer's.
  ASSERT_TRUE(b->TrustMovePeer(*c_id).ok());
  EXPECT_EQ(AuditCount(b, "move_peer_trusted"), 2u);
}

// A PEERS file listing what `peer trust` refuses (session 18 attack F6a:
// this store's own identity, another region, ...) is refused whole, with
// corruption naming the line and no key bytes: nothing listed, trusted,
// removed, moved in or audited.
TEST(MovePeers, PlantedLineThatCanNeverBeAPeerRefused) {
  Side a, b, c, d;
  ASSERT_NO_FATAL_FAILURE(a.Open());
  ASSERT_NO_FATAL_FAILURE(b.Open());
  ASSERT_NO_FATAL_FAILURE(c.Open());
  ASSERT_NO_FATAL_FAILURE(d.Open("us-east"));
  ASSERT_TRUE(a->CreateTenant({.tenant_id = "acme"}).ok());
  ASSERT_NO_FATAL_FAILURE(Fill(*a.store, "acme", 10));
  auto a_id = a->MoveIdentity();
  auto b_id = b->MoveIdentity();
  auto c_id = c->MoveIdentity();
  auto d_id = d->MoveIdentity();
  ASSERT_TRUE(a_id.ok() && b_id.ok() && c_id.ok() && d_id.ok());
  const std::string head = "callvault-peers 1\n" + *a_id + "\n";
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"this store's own identity", head + *b_id + "\n"},
      {"this store's own identity, first", "callvault-peers 1\n" + *b_id + "\n" + *a_id + "\n"},
      {"this store's keys under another store id",
       head + WithField(*b_id, 1, std::string(32, 'c')) + "\n"},
      {"another region", head + *d_id + "\n"},
      {"an all-zero store id", head + WithField(*c_id, 1, std::string(32, '0')) + "\n"},
      {"an all-zero public key", head + WithField(*c_id, 3, std::string(64, '0')) + "\n"},
      {"a public key equal to its signing key",
       head + WithField(*c_id, 3, FieldOf(*c_id, 4)) + "\n"},
      {"another line's public key", head + WithField(*c_id, 3, FieldOf(*a_id, 3)) + "\n"},
      {"a signing key of small order", head + WithField(*c_id, 4, "01" + std::string(62, '0')) + "\n"},
      {"a public key of small order", head + WithField(*c_id, 3, "01" + std::string(62, '0')) + "\n"},
  };
  for (const auto& [what, bytes] : bad) {
    ASSERT_NO_FATAL_FAILURE(PlantPeers(b, bytes));
    const std::string line = what == "this store's own identity, first" ? "line 2" : "line 3";
    auto listed = b->ListMovePeers();
    EXPECT_EQ(listed.status().code(), Code::kCorruption)
        << what << ": " << listed.status().ToString();
    const std::string m(listed.status().message());
    EXPECT_NE(m.find("trusted-peers file"), std::string::npos) << what << ": " << m;
    EXPECT_NE(m.find(line + " would be refused by `peer trust`"), std::string::npos)
        << what << ": " << m;
    // Nothing but what the file's public identities name: no key in hex.
    for (const auto* id : {&*a_id, &*b_id, &*c_id, &*d_id}) {
      EXPECT_EQ(m.find(FieldOf(*id, 3)), std::string::npos) << what << ": " << m;
      EXPECT_EQ(m.find(FieldOf(*id, 4)), std::string::npos) << what << ": " << m;
    }
    auto r = MoveOverTransport(a, b, "acme");
    EXPECT_EQ(r.status().code(), Code::kCorruption) << what << ": " << r.status().ToString();
    EXPECT_EQ(b->TrustMovePeer(*c_id).code(), Code::kCorruption) << what;
    EXPECT_EQ(b->RemoveMovePeer(*a_id).code(), Code::kCorruption) << what;
    ExpectUntouched(a, b, "acme", 10);
    ExpectNothingArrived(b, "acme");
    EXPECT_EQ(AuditCount(b, "move_peer_trusted"), 0u) << what;
    EXPECT_EQ(AuditCount(b, "move_peer_removed"), 0u) << what;
  }
  // The same file without the planted line: a's move accepted.
  ASSERT_NO_FATAL_FAILURE(PlantPeers(b, head));
  auto r = MoveOverTransport(a, b, "acme");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
}

// Reading the list compares each line with this store's signing key only
// if it has one: listing, or a refused move in, creates none (a writable
// open of a store that never signed anything has no SIGNING-KEY yet).
TEST(MovePeers, ReadingTheListCreatesNoSigningKey) {
  Side b;
  ASSERT_NO_FATAL_FAILURE(b.Open());
  const std::string signing_key = b.keys + "/SIGNING-KEY";
  ASSERT_FALSE(std::filesystem::exists(signing_key));
  ASSERT_TRUE(b->ListMovePeers().ok());
  EXPECT_FALSE(std::filesystem::exists(signing_key));
}

// What is neither a store id nor an identity is bad input (invalid_argument,
// CLI exit 65), not a peer that is absent (not_found, 66): attack F6c.
TEST(MovePeers, RemoveOfMalformedPeerIsInvalidArgument) {
  Side a, b;
  ASSERT_NO_FATAL_FAILURE(a.Open());
  ASSERT_NO_FATAL_FAILURE(b.Open());
  auto a_id = a->MoveIdentity();
  ASSERT_TRUE(a_id.ok());
  ASSERT_TRUE(b->TrustMovePeer(*a_id).ok());
  const std::vector<std::string> malformed = {"zz",
                                              "00",
                                              "",
                                              std::string(31, 'a'),
                                              std::string(34, 'a'),
                                              std::string(32, 'z'),
                                              "cvmove2:zz",
                                              "cvmove1:" + a_id->substr(8)};
  for (const auto& peer : malformed) {
    Status s = b->RemoveMovePeer(peer);
    EXPECT_EQ(s.code(), Code::kInvalidArgument) << "'" << peer << "': " << s.ToString();
  }
  EXPECT_EQ(*b->ListMovePeers(), std::vector<std::string>{*a_id});
  // Well-formed but not listed: not found.
  EXPECT_EQ(b->RemoveMovePeer(std::string(32, 'a')).code(), Code::kNotFound);
  EXPECT_EQ(AuditCount(b, "move_peer_removed"), 0u);
}

}  // namespace
}  // namespace callvault
