// Attacks on deferred compression (docs/decisions/0052): the reseal filter
// that compresses and seals again, at flush and compaction, the call
// records a put sealed uncompressed. Each test is a guarantee the filter
// must not break:
//  - a tenant move (decision 0043) agrees on its digest when the source's
//    flushes reseal rows it already sent;
//  - no record the reads refuse is turned into one they accept (copied
//    from another row, from a purged tenant of the same id);
//  - no plaintext canary in any file of the store at any step;
//  - a record that never shrinks is not opened and compressed again by
//    every compaction;
//  - a record flushed while no filter can reach its tenant (WAL replay at
//    open) is compressed by a later compaction, even when it sits in a
//    blob file;
//  - purges, rotations and flushes racing do not deadlock, and nothing of a
//    purged tenant reads back;
//  - a SIGKILL in the middle of a resealing flush loses no acknowledged
//    call, Verify is clean, and the next flush compresses what is left;
//  - a backup taken before the flush restores, reads back and is compressed
//    by the restored store (defer_compression off: the filter still runs);
//  - a read-only open reads and verifies deferred records, and rewrites
//    nothing; a purge killed while flushes reseal stays purged;
//  - a key rotation's copy is compressed (it was not: fixed).
// Three findings were fixed since (see the comments of the tests that
// showed them: moved-in and replayed long transcripts, summaries retried).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "callvault/limits.h"
#include "callvault/move.h"
#include "callvault/store.h"
#include "engine/crypto.h"
#include "engine/kill_point.h"
#include "engine/reseal.h"
#include "format/envelope.h"
#include "format/rowkey.h"
#include "tests/testutil/calls.h"
#include "tests/testutil/process.h"
#include "tests/testutil/raw_shard.h"
#include "tests/testutil/testutil.h"
#include "workload/workload.h"

namespace callvault {
namespace {

using testutil::RawShard;

std::vector<Call> Calls(size_t n, uint64_t seed, const std::string& prefix, double scale = 0.05) {
  return testutil::GeneratedCalls(n, seed, prefix, scale);
}

void PutAll(Store& s, const std::string& tenant, const std::vector<Call>& calls) {
  for (size_t i = 0; i < calls.size(); i += 10) {
    std::vector<Call> b(calls.begin() + static_cast<long>(i),
                        calls.begin() + static_cast<long>(std::min(calls.size(), i + 10)));
    ASSERT_OK(s.PutCalls(tenant, b));
  }
}

void ExpectSame(Store& store, const std::string& tenant, const std::vector<Call>& calls) {
  for (const auto& want : calls) {
    auto got = store.GetCall(tenant, want.call_id, kPartAll);
    ASSERT_OK(got);
    EXPECT_EQ(got->transcript, want.transcript) << want.call_id;
    EXPECT_EQ(got->insights.summary, want.insights.summary) << want.call_id;
  }
}

// The deferred (uncompressed) call records of a family, read raw from a
// closed store: their value sizes.
std::vector<size_t> DeferredRows(const std::string& shard, const std::string& cf) {
  RawShard raw(shard, /*read_only=*/true);
  EXPECT_TRUE(raw.status().ok()) << raw.status().ToString();
  std::vector<size_t> sizes;
  for (const auto& [k, v] : raw.Scan(cf)) {
    if (DeferredRecord(k, v)) sizes.push_back(v.size());
  }
  return sizes;
}

// Runs `body` on a thread and fails (instead of hanging the suite) when it
// does not finish within `limit`: a deadlock is a finding.
bool FinishesWithin(std::chrono::seconds limit, std::function<void()> body) {
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  std::thread t([&] {
    body();
    std::lock_guard<std::mutex> l(mu);
    done = true;
    cv.notify_all();
  });
  std::unique_lock<std::mutex> l(mu);
  if (!cv.wait_for(l, limit, [&] { return done; })) {
    l.unlock();
    t.detach();  // hung: the process is ended by the failure below
    return false;
  }
  l.unlock();
  t.join();
  return true;
}

// --- 1. Moves -------------------------------------------------------------

struct Side {
  testutil::TempDir tmp;
  std::string db = tmp.Sub("db");
  std::string keys = tmp.Sub("keys");
  std::unique_ptr<Store> store;
  void Open() {
    Options o = testutil::DefaultOptions(keys);
    o.create_if_missing = true;
    o.dictionary_training_calls = 0;
    auto s = Store::Open(o, db);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store = std::move(s).value();
  }
  Store* operator->() const { return store.get(); }
};

// The source copies its rows as they are (sealed), then catches up on what
// changed from one snapshot to the next, removing from its digest each
// changed row's value at the earlier snapshot, read again at that point. A
// flush between the copy and the catch-up reseals those rows: the value
// read again is not the one sent, and the source's digest no longer
// describes what the destination holds. The move must still commit.
TEST(Attack52, MoveCommitsWhenAFlushResealsRowsAlreadySent) {
  crypto::Init();
  Side a, b;
  a.Open();
  b.Open();
  ASSERT_OK(a->CreateTenant({.tenant_id = "acme"}));
  const auto calls = Calls(30, 11, "m-");
  PutAll(*a.store, "acme", calls);
  auto updated = Calls(5, 12, "m-");  // the same ids, new content
  bool done = false;
  MoveOptions mo;
  mo.rows_per_segment = 100000;  // the copy in one ROWS segment
  mo.after_segment = [&](char type) {
    if (type != 'R' || done) return;
    done = true;
    // After the copy, before the first catch-up round: the flush reseals
    // the rows just sent, then the writer changes some of those calls. On
    // another thread, as RocksDB's own flushes and a writer would be (the
    // move holds locks here that Store::Flush must not be taken under).
    std::thread([&] {
      ASSERT_OK(a->Flush());
      auto st = a->Stats();
      ASSERT_OK(st);
      EXPECT_GT(st->compression.resealed, 0u);
      ASSERT_OK(a->PutCalls("acme", updated));
    }).join();
  };
  auto report = MoveTenant(*a.store, *b.store, "acme", mo);
  ASSERT_TRUE(done);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  std::vector<Call> want(calls);
  for (size_t i = 0; i < updated.size(); ++i) want[i] = updated[i];
  ExpectSame(*b.store, "acme", want);
  // The destination's filters reach the moved-in tenant (records sealed
  // with the source's internal id): its deferred records are compressed.
  ASSERT_OK(b->Flush());
  ASSERT_OK(b->CompactAll());
  ExpectSame(*b.store, "acme", want);
  auto report_b = b->Verify(std::nullopt);
  ASSERT_OK(report_b);
  EXPECT_EQ(report_b->records_failed, 0u);
  auto info = b->DescribeTenant("acme");
  ASSERT_OK(info);
  const std::string shard = b->ShardPaths()[info->shard];
  b.store.reset();
  for (size_t bytes : DeferredRows(shard, info->column_family)) {
    ADD_FAILURE() << "a moved-in record of " << bytes << " bytes still uncompressed";
  }
}

// A move copies rows as they are: the source's deferred records arrive
// deferred, into a family no filter at the destination reaches before
// COMMIT (its Tenant joins the map at the switch). The destination's
// flushes during the copy keep them, and long transcripts go to blob files
// there, uncompressed for good (the mechanism of the replay case below).
TEST(Attack52, ALongTranscriptMovedInIsCompressedEventually) {
  // Was a finding (bytes on disk only; every call reads back): the long
  // transcripts went to blob files uncompressed for good. Fixed: a record
  // that would reach min_blob_size sealed is never deferred (DeferrableSize,
  // decision 0079), so a deferred record stays in table files, which the
  // destination's compactions reseal.
  crypto::Init();
  Side a, b;
  a.Open();
  {
    Options o = testutil::DefaultOptions(b.keys);
    o.create_if_missing = true;
    o.dictionary_training_calls = 0;
    o.write_buffer_bytes = 1u << 20;  // the destination flushes during the copy
    auto s = Store::Open(o, b.db);
    ASSERT_OK(s);
    b.store = std::move(s).value();
  }
  ASSERT_OK(a->CreateTenant({.tenant_id = "acme"}));
  const auto calls = Calls(12, 51, "l-", 12.0);
  for (const auto& c : calls) ASSERT_OK(a->PutCalls("acme", {c}));  // deferred, in a's memtable
  MoveOptions mo;
  mo.rows_per_segment = 4;
  auto report = MoveTenant(*a.store, *b.store, "acme", mo);
  ASSERT_OK(report);
  ASSERT_OK(b->Flush());
  ASSERT_OK(b->CompactAll());
  ExpectSame(*b.store, "acme", calls);
  auto info = b->DescribeTenant("acme");
  ASSERT_OK(info);
  const std::string shard = b->ShardPaths()[info->shard];
  b.store.reset();
  for (size_t bytes : DeferredRows(shard, info->column_family)) {
    ADD_FAILURE() << "a moved-in record of " << bytes
                  << " bytes still uncompressed after a flush and a full compaction";
  }
}

// --- 2. Laundering --------------------------------------------------------

// Records that reads refuse, planted in a tenant's family as deferred
// records: one copied from another row of the same tenant (same key
// version), one of an earlier tenant of the same id (purged, then created
// again), one of the same tenant from before its key rotation. After a
// flush and a full compaction they must still be refused (kCorruption),
// byte for byte as planted.
TEST(Attack52, NoRecordTheReadsRefuseIsLaunderedByTheFilter) {
  crypto::Init();
  testutil::TestStore ts;
  ts.options.dictionary_training_calls = 0;
  ASSERT_OK(ts.Open());
  ASSERT_OK(ts->CreateTenant({.tenant_id = "acme"}));
  PutAll(*ts.store, "acme", Calls(10, 21, "x-"));
  auto old_info = ts->DescribeTenant("acme");
  ASSERT_OK(old_info);
  const std::string shard = ts->ShardPaths()[old_info->shard];
  // A family's deferred transcript records, raw, from the closed store.
  auto deferred_transcripts = [&](const std::string& cf) {
    std::map<std::string, std::string> rows;
    RawShard raw(shard, true);
    EXPECT_TRUE(raw.status().ok()) << raw.status().ToString();
    for (const auto& [k, v] : raw.Scan(cf)) {
      auto ck = format::ParseCallKey(k);
      if (ck && ck->part == format::Part::kTranscript && DeferredRecord(k, v)) rows[k] = v;
    }
    return rows;
  };
  ts.Close();
  const auto purged_rows = deferred_transcripts(old_info->column_family);
  ASSERT_FALSE(purged_rows.empty());
  ASSERT_OK(ts.Open());
  ASSERT_OK(ts->PurgeTenant("acme"));
  ASSERT_OK(ts->CreateTenant({.tenant_id = "acme"}));
  const auto calls = Calls(10, 21, "x-");
  PutAll(*ts.store, "acme", calls);
  auto before = ts->DescribeTenant("acme");
  ASSERT_OK(before);
  ts.Close();
  const auto pre_rotation_rows = deferred_transcripts(before->column_family);
  ASSERT_FALSE(pre_rotation_rows.empty());
  ASSERT_OK(ts.Open());
  ASSERT_OK(ts->RotateTenantKey("acme"));
  const auto more = Calls(3, 22, "y-");
  PutAll(*ts.store, "acme", more);  // deferred, under the new key
  auto info = ts->DescribeTenant("acme");
  ASSERT_OK(info);
  ASSERT_EQ(info->shard, old_info->shard);
  ts.Close();
  const auto current_rows = deferred_transcripts(info->column_family);
  ASSERT_FALSE(current_rows.empty());

  std::map<std::string, std::string> planted;
  {
    RawShard raw(shard, false);
    ASSERT_TRUE(raw.status().ok()) << raw.status().ToString();
    // Targets: the metadata rows of three calls (every call has one).
    std::vector<std::string> targets;
    for (const auto& [k, v] : raw.Scan(info->column_family)) {
      auto ck = format::ParseCallKey(k);
      if (ck && ck->part == format::Part::kMeta) targets.push_back(k);
    }
    ASSERT_GE(targets.size(), 3u);
    // (a) another row's record, same tenant, same key version.
    planted[targets[0]] = current_rows.begin()->second;
    // (b) a record of the purged acme (same tenant id): its own row's when
    // the keys match, else any.
    auto p = purged_rows.find(targets[1]);
    planted[targets[1]] = p != purged_rows.end() ? p->second : purged_rows.begin()->second;
    // (c) a record of this acme from before its key rotation.
    auto r = pre_rotation_rows.find(targets[2]);
    planted[targets[2]] = r != pre_rotation_rows.end() ? r->second : pre_rotation_rows.begin()->second;
    for (const auto& [k, v] : planted) {
      ASSERT_TRUE(DeferredRecord(k, v));
      ASSERT_TRUE(raw.db()->Put(rocksdb::WriteOptions(), raw.cf(info->column_family), k, v).ok());
    }
  }
  ASSERT_OK(ts.Open());
  auto m0 = ts->Metrics();
  ASSERT_OK(m0);
  ASSERT_OK(ts->Flush());
  ASSERT_OK(ts->CompactAll());
  ASSERT_OK(ts->CompactAll());
  auto m1 = ts->Metrics();
  ASSERT_OK(m1);
  // Not asserted (a judgement for the lead): the filter's attempts count as
  // authentication failures, at every compaction, with no read.
  std::cout << "[attack52] aead_open_failures counted by a flush and two compactions, no read: "
            << m1->aead_open_failures - m0->aead_open_failures << " (" << planted.size()
            << " planted records)" << std::endl;
  ts.Close();
  {
    RawShard raw(shard, true);
    for (const auto& [k, v] : planted) {
      std::string got;
      ASSERT_TRUE(raw.db()->Get(rocksdb::ReadOptions(), raw.cf(info->column_family), k, &got).ok());
      EXPECT_EQ(got, v) << "a record that does not open was rewritten";
    }
  }
  ASSERT_OK(ts.Open());
  size_t refused = 0;
  std::vector<Call> all(calls);
  all.insert(all.end(), more.begin(), more.end());
  for (const auto& c : all) {
    auto r = ts->GetCall("acme", c.call_id, kPartAll);
    if (r.ok()) continue;
    EXPECT_EQ(r.status().code(), Code::kCorruption) << r.status().ToString();
    ++refused;
  }
  EXPECT_EQ(refused, planted.size());
}

// --- 3. Plaintext at rest ---------------------------------------------------

TEST(Attack52, NoCanaryInAnyFileAtAnyStep) {
  crypto::Init();
  for (int dict = 0; dict < 2; ++dict) {
    testutil::TestStore ts;
    ts.options.dictionary_training_calls = dict ? 40 : 0;
    ASSERT_OK(ts.Open());
    ASSERT_OK(ts->CreateTenant({.tenant_id = "acme"}));
    auto calls = Calls(60, 31, "k-");
    const std::string canary = "ZQXJ-canary-7781-plaintext";
    const std::string summary_canary = "QQWV-summary-canary-4420";
    for (auto& c : calls) {
      c.transcript[0].text += " " + canary;
      c.insights.summary += " " + summary_canary;
    }
    PutAll(*ts.store, "acme", calls);
    if (dict) {
      ASSERT_TRUE(testutil::WaitForDictionaryTraining(*ts.store));
    }
    // A recording too (its chunks are sealed as before).
    auto w = ts->CreateRecording("acme", "k-0", {.recording_id = "r", .content_type = "audio/wav"});
    ASSERT_OK(w);
    ASSERT_OK((*w)->Append(std::string(3000, 'a') + canary + std::string(3000, 'b')));
    ASSERT_OK((*w)->Finish());
    auto check = [&](const char* step) {
      auto hits = testutil::FindInTree(ts.db, {canary, summary_canary});
      for (const auto& h : hits) ADD_FAILURE() << step << " (dictionary " << dict << "): " << h;
    };
    check("after the puts");
    ASSERT_OK(ts->Flush());
    check("after the flush");
    ASSERT_OK(ts->CompactAll());
    check("after the compaction");
    ts.Close();
    check("after the close");
  }
}

// --- 4. Work per compaction -------------------------------------------------

// A record that does not shrink with the tenant's dictionary (summaries:
// mostly keyed hashes, reseal_test) stays deferred, and every compaction
// that sees it opens it and compresses it again, for nothing:
// StoreStats::compression.kept grows by the same count with every full
// compaction of the same, unchanged data.
TEST(Attack52, ARecordThatNeverShrinksIsNotRetriedByEveryCompaction) {
  // Was a finding (each CompactAll of the same unchanged data opened and
  // compressed every such summary again); fixed: summaries are compressed
  // by the writer and never deferred (decision 0052).
  crypto::Init();
  testutil::TestStore ts;
  ts.options.dictionary_training_calls = 60;
  ASSERT_OK(ts.Open());
  ASSERT_OK(ts->CreateTenant({.tenant_id = "acme"}));
  // With a dictionary a record is sealed compressed only when that is
  // smaller (record::Seal). A call's summary part is mostly keyed hashes
  // (of its participants, tags, ...): with many of them it is well past
  // 128 bytes and does not shrink.
  auto calls = Calls(100, 5, "d-");
  for (auto& c : calls) {
    for (int i = 0; i < 12; ++i) {
      c.tags.push_back("tag-" + std::to_string(i) + "-" + c.call_id);
      c.participants.push_back(Participant{"P" + std::to_string(i),
                                           "p" + std::to_string(i) + c.call_id + "@example.com",
                                           "", "", "", Affiliation::kExternal,
                                           static_cast<uint32_t>(10 + i), ""});
    }
  }
  PutAll(*ts.store, "acme", calls);
  ASSERT_TRUE(testutil::WaitForDictionaryTraining(*ts.store));
  ASSERT_OK(ts->Flush());
  auto s0 = ts->Stats();
  ASSERT_OK(s0);
  uint64_t last = s0->compression.kept;
  std::cout << "[attack52] flush: kept " << last << ", resealed " << s0->compression.resealed
            << std::endl;
  for (int i = 0; i < 3; ++i) {
    ASSERT_OK(ts->CompactAll());
    auto s = ts->Stats();
    ASSERT_OK(s);
    std::cout << "[attack52] compaction " << i << ": kept " << s->compression.kept - last
              << " more (opened and compressed again), resealed " << s->compression.resealed
              << std::endl;
    EXPECT_EQ(s->compression.kept, last) << "the same records opened and compressed again";
    last = s->compression.kept;
  }
  ExpectSame(*ts.store, "acme", calls);
}

// --- 5. Records flushed before the store can reach their tenant ------------

// With a small write buffer, the WAL replay of an open fills the memtable
// and RocksDB flushes it during DB::Open, before the store has activated
// its tenants: no filter reaches them, those records are written
// uncompressed. Two ways they then stay so:
//  - those past min_blob_size (256 KiB then; 1 MiB since decision 0081,
//    which defers these transcripts and keeps them in table files) go to a
//    blob file, which the filter never reads back (FilterBlobByKey kKeep):
//    uncompressed for good;
//  - the L0 files of the replay trigger an automatic compaction as DB::Open
//    ends, still before the tenants are active (its filter finds none): it
//    rewrites them, uncompressed, into the bottommost level, and CompactAll
//    (kForceOptimized) then skips that file, which appeared during it. In
//    2 of 3 runs here every deferred record of the replay (36) was left.
TEST(Attack52, ALongTranscriptReplayedAtOpenIsCompressedEventually) {
  // Was a finding: records replayed (and flushed) at open stayed deferred,
  // in blob files for good. Fixed as the move case above (DeferrableSize);
  // in table files they wait for a compaction that reaches the tenant
  // (decision 0052, Consequences: an idle tenant's bottommost file can
  // keep them until it is compacted again).
  crypto::Init();
  testutil::TestStore ts;
  ts.options.dictionary_training_calls = 0;
  ASSERT_OK(ts.Open());
  ASSERT_OK(ts->CreateTenant({.tenant_id = "acme"}));
  auto calls = Calls(12, 51, "l-", 12.0);  // transcripts of ~300-400 KiB
  size_t long_ones = 0;
  for (const auto& c : calls) {
    size_t bytes = 0;
    for (const auto& s : c.transcript) bytes += s.text.size() + 16;
    long_ones += bytes > (300u << 10) ? 1 : 0;
  }
  ASSERT_GT(long_ones, 0u);
  for (const auto& c : calls) ASSERT_OK(ts->PutCalls("acme", {c}));
  auto info = ts->DescribeTenant("acme");
  ASSERT_OK(info);
  const std::string shard = ts->ShardPaths()[info->shard];
  ts.Close();  // no flush: everything is in the WAL
  ts.options.write_buffer_bytes = 1u << 20;
  ASSERT_OK(ts.Open());  // replay: memtables fill and flush during DB::Open
  ASSERT_OK(ts->Flush());
  auto s0 = ts->Stats();
  ASSERT_OK(s0);
  ASSERT_OK(ts->CompactAll());
  auto s1 = ts->Stats();
  ASSERT_OK(s1);
  std::cout << "[attack52] after the open's flush: resealed " << s0->compression.resealed
            << ", kept " << s0->compression.kept << "; after CompactAll: resealed "
            << s1->compression.resealed << ", kept " << s1->compression.kept << std::endl;
  ExpectSame(*ts.store, "acme", calls);
  ts.Close();
  for (size_t bytes : DeferredRows(shard, info->column_family)) {
    ADD_FAILURE() << "a record of " << bytes
                  << " bytes still uncompressed after a flush and a full compaction";
  }
}

// A key rotation copies the calls through the writers' path (calls::
// PlanWrite: the rows' keyed hashes change). Deferred there too, the
// copy's call records went uncompressed into a family no tenant had yet:
// the copy's flushes found no tenant and kept them, and the long
// transcripts among them went to blob files, uncompressed for good, as in
// the case above. The copy compresses (Tenant::compress_writes), as
// decision 0052 says it does.
TEST(Attack52, ALongTranscriptCopiedByAKeyRotationIsCompressed) {
  crypto::Init();
  testutil::TestStore ts;
  ts.options.dictionary_training_calls = 0;
  ts.options.write_buffer_bytes = 1u << 20;  // the copy flushes as it goes
  ASSERT_OK(ts.Open());
  ASSERT_OK(ts->CreateTenant({.tenant_id = "acme"}));
  auto calls = Calls(12, 51, "l-", 12.0);
  for (const auto& c : calls) ASSERT_OK(ts->PutCalls("acme", {c}));
  ASSERT_OK(ts->Flush());
  ASSERT_OK(ts->RotateTenantKey("acme"));
  ASSERT_OK(ts->Flush());
  ASSERT_OK(ts->CompactAll());
  ExpectSame(*ts.store, "acme", calls);
  auto info = ts->DescribeTenant("acme");
  ASSERT_OK(info);
  const std::string shard = ts->ShardPaths()[info->shard];
  ts.Close();
  for (size_t bytes : DeferredRows(shard, info->column_family)) {
    ADD_FAILURE() << "a record of " << bytes
                  << " bytes still uncompressed after the rotation, a flush and a full compaction";
  }
}

// The same long transcripts flushed by the open store (its filter reaches
// the tenant): compressed before RocksDB moves them to a blob file.
TEST(Attack52, ALongTranscriptFlushedByTheStoreIsCompressed) {
  crypto::Init();
  testutil::TestStore ts;
  ts.options.dictionary_training_calls = 0;
  ASSERT_OK(ts.Open());
  ASSERT_OK(ts->CreateTenant({.tenant_id = "acme"}));
  auto calls = Calls(12, 51, "l-", 12.0);
  for (const auto& c : calls) ASSERT_OK(ts->PutCalls("acme", {c}));
  auto info = ts->DescribeTenant("acme");
  ASSERT_OK(info);
  const std::string shard = ts->ShardPaths()[info->shard];
  ASSERT_OK(ts->Flush());
  ASSERT_OK(ts->CompactAll());
  ExpectSame(*ts.store, "acme", calls);
  ts.Close();
  for (size_t bytes : DeferredRows(shard, info->column_family)) {
    ADD_FAILURE() << "a record of " << bytes << " bytes still uncompressed";
  }
}

// Words of a sales call, `bytes` long (compressible, as real text is).
std::string Words(size_t bytes, uint64_t seed) {
  static const char* kWords[] = {"pricing", "renewal", "contract", "the",      "customer",
                                 "asked",   "about",   "integration", "timeline", "budget",
                                 "next",    "week",    "follow",   "up",       "with",
                                 "legal",   "security", "review"};
  std::mt19937_64 r(seed);
  std::string s;
  while (s.size() < bytes) {
    s += kWords[r() % 18];
    s += ' ';
  }
  s.resize(bytes);
  if (s.back() == ' ') s.back() = 'x';
  return s;
}

// The largest insights the input limits allow encode to more than the 16
// MiB (limits::kMaxRecordBytes) every reader accepts. Deferred at every
// size (the first version of decision 0079), such a call was acknowledged
// and never read back: its get and Verify failed and its tenant's key
// rotation was refused, before and after a flush. A record that would
// reach the blob size sealed is compressed by the writer (DeferrableSize).
TEST(Attack52, TheLargestInsightsAllowedReadBack) {
  crypto::Init();
  testutil::TestStore ts;
  ts.options.dictionary_training_calls = 0;
  ASSERT_OK(ts.Open());
  ASSERT_OK(ts->CreateTenant({.tenant_id = "acme"}));
  Call c = testutil::MakeCall("big-1", 1'700'000'000'000'000);
  c.insights = Insights{};
  c.insights.summary = Words(limits::kMaxSummaryBytes, 1);
  for (size_t i = 0; i < limits::kMaxListItems; ++i) {
    c.insights.action_items.push_back(ActionItem{Words(limits::kMaxSegmentTextBytes, 100 + i),
                                                 std::string(100, 'u') + std::to_string(i)});
    std::string topic = "topic-" + std::to_string(i) + "-";
    topic += Words(limits::kMaxShortTextBytes - topic.size(), 5000 + i);
    c.insights.topics.push_back(topic);
    std::string tracker = "tracker-" + std::to_string(i) + "-";
    tracker += Words(limits::kMaxShortTextBytes - tracker.size(), 9000 + i);
    c.insights.trackers.push_back(Tracker{tracker, 3});
  }
  c.insights.model_name = "m";
  c.insights.model_version = "1";
  ASSERT_OK(ts->PutCalls("acme", {c}));
  auto check = [&](const char* when) {
    auto got = ts->GetCall("acme", "big-1", kPartAll);
    ASSERT_TRUE(got.ok()) << when << ": " << got.status().ToString();
    EXPECT_EQ(got->insights, c.insights) << when;
    auto v = ts->Verify("acme");
    ASSERT_OK(v);
    EXPECT_EQ(v->records_failed, 0u) << when << ": " << (v->failures.empty() ? "" : v->failures[0]);
  };
  check("in the memtable");
  ts.Close();
  ASSERT_OK(ts.Open());  // replayed from the WAL
  check("after a reopen");
  ASSERT_OK(ts->Flush());
  ASSERT_OK(ts->CompactAll());
  check("after a flush and a compaction");
  ASSERT_OK(ts->RotateTenantKey("acme"));
  check("after a key rotation");
}

// Records up to 1 MiB are deferred (decision 0081), within bounds per
// batch (engine/calls.cc): one PutCalls of many calls would otherwise put
// all of them uncompressed into the WAL and a memtable (up to ~10 GB for
// 10,000 calls). A batch defers records only while it holds at most 16
// MiB, and long records (256 KiB and more) only in a batch of at most 1
// MiB (a put of one or a few calls); the writer compresses the rest.

// A call with `segments` segments of 16 KiB of words.
Call LongCall(const std::string& id, int segments, uint64_t seed) {
  Call c = testutil::MakeCall(id, 1'700'000'000'000'000 + static_cast<int64_t>(seed));
  c.transcript.clear();
  for (int k = 0; k < segments; ++k) {
    const auto at = static_cast<uint32_t>(k) * 1000;
    c.transcript.push_back(TranscriptSegment{1, at, at + 900,
                                             Words(limits::kMaxSegmentTextBytes, seed * 100 + k),
                                             0.5f});
  }
  return c;
}

// The deferred records of the tenant's family, put and not yet flushed
// (read from the WAL by a raw open of the closed store): their sizes.
std::vector<size_t> DeferredAfter(testutil::TestStore& ts, const std::vector<Call>& calls) {
  EXPECT_OK(ts->PutCalls("acme", calls));
  auto info = ts->DescribeTenant("acme");
  EXPECT_OK(info);
  if (!info.ok()) return {};
  const std::string shard = ts->ShardPaths()[info->shard];
  ts.Close();  // no flush: the batch is in the WAL
  std::vector<size_t> sizes = DeferredRows(shard, info->column_family);
  EXPECT_OK(ts.Open());
  if (!::testing::Test::HasFailure()) ExpectSame(*ts.store, "acme", calls);
  return sizes;
}

class Attack52Batch : public ::testing::Test {
 protected:
  void SetUp() override {
    crypto::Init();
    ts.options.dictionary_training_calls = 0;
    ts.options.write_buffer_bytes = 64u << 20;  // each batch stays in the memtable
    ASSERT_OK(ts.Open());
    ASSERT_OK(ts->CreateTenant({.tenant_id = "acme"}));
  }
  testutil::TestStore ts;
};

TEST_F(Attack52Batch, ALongCallPutAloneIsDeferred) {
  const auto sizes = DeferredAfter(ts, {LongCall("long-0", 45, 1)});  // ~720 KiB
  size_t longest = 0;
  for (size_t s : sizes) longest = std::max(longest, s);
  EXPECT_GT(longest, size_t{700} << 10) << "the transcript was compressed by the writer";
}

TEST_F(Attack52Batch, ABatchOfLongCallsDefersAtMostOneMiBOfThem) {
  std::vector<Call> calls;
  for (int i = 0; i < 12; ++i) {
    calls.push_back(LongCall("long-" + std::to_string(i), 20, i));  // 320 KiB each
  }
  size_t long_bytes = 0, long_rows = 0;
  for (size_t s : DeferredAfter(ts, calls)) {
    if (s >= size_t{256} << 10) {
      long_bytes += s;
      ++long_rows;
    }
  }
  std::cout << "[attack52] 12 calls of 320 KiB in one batch: " << long_rows
            << " long records deferred, " << long_bytes << " bytes" << std::endl;
  EXPECT_GE(long_rows, 1u);  // the first
  EXPECT_LE(long_bytes, size_t{1} << 20);
}

TEST_F(Attack52Batch, ABatchDefersAtMostSixteenMiB) {
  std::vector<Call> calls;
  size_t text = 0;
  for (int i = 0; i < 150; ++i) {  // ~240 KiB each, below the long records: ~36 MB in all
    calls.push_back(LongCall("mid-" + std::to_string(i), 15, i));
    text += 15 * limits::kMaxSegmentTextBytes;
  }
  size_t deferred = 0;
  for (size_t s : DeferredAfter(ts, calls)) deferred += s;
  std::cout << "[attack52] one batch of " << text << " bytes of transcripts: " << deferred
            << " bytes deferred" << std::endl;
  EXPECT_LE(deferred, size_t{16} << 20);
  EXPECT_GT(deferred, size_t{12} << 20);  // the first part of the batch is still deferred
  ASSERT_OK(ts->Flush());
  ASSERT_OK(ts->CompactAll());
  ExpectSame(*ts.store, "acme", calls);
  auto v = ts->Verify("acme");
  ASSERT_OK(v);
  EXPECT_EQ(v->records_failed, 0u);
  // The flush and compaction compressed every deferred record.
  auto info = ts->DescribeTenant("acme");
  ASSERT_OK(info);
  const std::string shard = ts->ShardPaths()[info->shard];
  ts.Close();
  EXPECT_EQ(DeferredRows(shard, info->column_family).size(), 0u);
}

// --- 6. Purge, rotation and flushes racing --------------------------------

TEST(Attack52, PurgeAndRotationRacingFlushesNeitherHangNorLeak) {
  crypto::Init();
  testutil::TestStore ts;
  ts.options.dictionary_training_calls = 30;
  ts.options.write_buffer_bytes = 256u << 10;  // flushes all along
  ASSERT_OK(ts.Open());
  constexpr int kTenants = 6;
  for (int i = 0; i < kTenants; ++i) {
    ASSERT_OK(ts->CreateTenant({.tenant_id = "t" + std::to_string(i)}));
  }
  const auto calls = Calls(40, 61, "p-", 0.3);
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> errors{0};
  bool finished = FinishesWithin(std::chrono::seconds(240), [&] {
    std::vector<std::thread> threads;
    // Writers on every tenant; flushes and compactions in a loop.
    for (int i = 0; i < kTenants; ++i) {
      threads.emplace_back([&, i] {
        const std::string t = "t" + std::to_string(i);
        for (size_t k = 0; !stop.load() && k < calls.size(); k += 5) {
          std::vector<Call> b(calls.begin() + static_cast<long>(k),
                              calls.begin() + static_cast<long>(k + 5));
          auto r = ts->PutCalls(t, b);
          if (!r.ok() && r.status().code() != Code::kTenantPurged &&
              r.status().code() != Code::kNotFound) {
            ++errors;
            ADD_FAILURE() << t << ": " << r.status().ToString();
          }
        }
      });
    }
    threads.emplace_back([&] {
      while (!stop.load()) {
        EXPECT_OK(ts->Flush());
        EXPECT_OK(ts->CompactAll());
      }
    });
    // Rotations of even tenants, purges of odd ones, while all that runs.
    for (int i = 0; i < kTenants; ++i) {
      const std::string t = "t" + std::to_string(i);
      if (i % 2 == 0) {
        auto r = ts->RotateTenantKey(t);
        EXPECT_TRUE(r.ok()) << t << ": " << r.status().ToString();
      } else {
        auto r = ts->PurgeTenant(t);
        EXPECT_TRUE(r.ok()) << t << ": " << r.status().ToString();
        auto g = ts->GetCall(t, calls[0].call_id, kPartAll);
        EXPECT_FALSE(g.ok()) << "a purged tenant's call reads back";
      }
    }
    stop = true;
    for (auto& th : threads) th.join();
  });
  ASSERT_TRUE(finished) << "purge/rotation and flushes did not finish in 240 s: deadlock";
  EXPECT_EQ(errors.load(), 0u);
  // What was written to the rotated tenants reads back, Verify clean.
  ASSERT_OK(ts->Flush());
  ASSERT_OK(ts->CompactAll());
  ts.Close();
  ASSERT_OK(ts.Open());
  for (int i = 0; i < kTenants; i += 2) {
    const std::string t = "t" + std::to_string(i);
    for (const auto& c : calls) {
      auto g = ts->GetCall(t, c.call_id, kPartAll);
      if (!g.ok()) {
        EXPECT_EQ(g.status().code(), Code::kNotFound) << g.status().ToString();
        continue;
      }
      EXPECT_EQ(g->transcript, c.transcript);
    }
  }
  auto report = ts->Verify(std::nullopt);
  ASSERT_OK(report);
  EXPECT_EQ(report->records_failed, 0u);
  for (const auto& f : report->failures) ADD_FAILURE() << f;
}

// --- 7. A crash in the middle of a flush that reseals ---------------------

Options CrashOptions(const std::string& keys) {
  Options o = testutil::DefaultOptions(keys);
  o.create_if_missing = true;
  o.dictionary_training_calls = 0;
  return o;
}

std::vector<Call> CrashCalls() { return Calls(400, 71, "z-", 0.5); }

// The child: every put acknowledged (synced), then a flush, during which a
// watcher sends SIGKILL as soon as the filters resealed a quarter of the
// records (mid-flush). Exits 3 if the flush finished first.
TEST(Attack52, DISABLED_CrashChildMidFlush) {
  crypto::Init();
  const char* db = std::getenv("CV_ATTACK52_DB");
  const char* keys = std::getenv("CV_ATTACK52_KEYS");
  ASSERT_TRUE(db != nullptr && keys != nullptr);
  auto opened = Store::Open(CrashOptions(keys), db);
  ASSERT_OK(opened);
  std::unique_ptr<Store> store = std::move(opened).value();
  ASSERT_OK(store->CreateTenant({.tenant_id = "acme"}));
  const auto calls = CrashCalls();
  PutAll(*store, "acme", calls);
  std::atomic<bool> flushed{false};
  std::thread watcher([&] {
    while (!flushed.load()) {
      auto st = store->Stats();
      if (st.ok() && st->compression.resealed >= calls.size() / 4) raise(SIGKILL);
      std::this_thread::yield();
    }
  });
  ASSERT_OK(store->Flush());
  flushed = true;
  watcher.join();
  std::exit(3);
}

// The child: four tenants written, flushes and compactions running in a
// loop, and a purge killed (SIGKILL) after it shredded the tenant's key.
TEST(Attack52, DISABLED_CrashChildMidPurge) {
  crypto::Init();
  const char* db = std::getenv("CV_ATTACK52_DB");
  const char* keys = std::getenv("CV_ATTACK52_KEYS");
  ASSERT_TRUE(db != nullptr && keys != nullptr);
  Options o = CrashOptions(keys);
  o.write_buffer_bytes = 256u << 10;
  auto opened = Store::Open(o, db);
  ASSERT_OK(opened);
  std::unique_ptr<Store> store = std::move(opened).value();
  const auto calls = Calls(60, 91, "q-", 0.3);
  for (int i = 0; i < 4; ++i) {
    const std::string t = "t" + std::to_string(i);
    ASSERT_OK(store->CreateTenant({.tenant_id = t}));
    PutAll(*store, t, calls);
  }
  std::atomic<bool> stop{false};
  std::thread churn([&] {
    while (!stop.load()) {
      store->Flush().IgnoreError();
      store->CompactAll().IgnoreError();
    }
  });
  testing::ArmKillPoint("purge.after_shred");
  (void)store->PurgeTenant("t1");
  stop = true;
  churn.join();
  std::exit(3);  // the kill point was not reached
}

TEST(Attack52, APurgeKilledWhileFlushesResealStaysPurged) {
  crypto::Init();
  testutil::TempDir tmp;
  const std::string db = tmp.Sub("db"), keys = tmp.Sub("keys");
  const std::string outcome = testutil::RunSelfChild(
      "Attack52.DISABLED_CrashChildMidPurge", {{"CV_ATTACK52_DB", db}, {"CV_ATTACK52_KEYS", keys}},
      /*quiet=*/false, /*timeout_s=*/300);
  ASSERT_EQ(outcome, "signal 9");
  auto opened = Store::Open(CrashOptions(keys), db);
  ASSERT_OK(opened);
  std::unique_ptr<Store> store = std::move(opened).value();
  const auto calls = Calls(60, 91, "q-", 0.3);
  for (int i = 0; i < 4; ++i) {
    const std::string t = "t" + std::to_string(i);
    if (i == 1) {
      auto g = store->GetCall(t, calls[0].call_id, kPartAll);
      EXPECT_FALSE(g.ok()) << "a call of the purged tenant reads back";
      continue;
    }
    ExpectSame(*store, t, calls);
  }
  ASSERT_OK(store->Flush());
  ASSERT_OK(store->CompactAll());
  auto report = store->Verify(std::nullopt);
  ASSERT_OK(report);
  EXPECT_EQ(report->records_failed, 0u);
  for (const auto& f : report->failures) ADD_FAILURE() << f;
}

TEST(Attack52, EveryCallReadsBackAfterACrashInAResealingFlush) {
  crypto::Init();
  testutil::TempDir tmp;
  const std::string db = tmp.Sub("db"), keys = tmp.Sub("keys");
  const std::string outcome = testutil::RunSelfChild(
      "Attack52.DISABLED_CrashChildMidFlush", {{"CV_ATTACK52_DB", db}, {"CV_ATTACK52_KEYS", keys}},
      /*quiet=*/false, /*timeout_s=*/300);
  if (outcome == "exit 3") GTEST_SKIP() << "the flush finished before the kill";
  ASSERT_EQ(outcome, "signal 9");
  auto opened = Store::Open(CrashOptions(keys), db);
  ASSERT_OK(opened);
  std::unique_ptr<Store> store = std::move(opened).value();
  const auto calls = CrashCalls();
  ExpectSame(*store, "acme", calls);
  auto report = store->Verify(std::nullopt);
  ASSERT_OK(report);
  EXPECT_EQ(report->records_failed, 0u);
  for (const auto& f : report->failures) ADD_FAILURE() << f;
  ASSERT_OK(store->Flush());
  ASSERT_OK(store->CompactAll());
  ExpectSame(*store, "acme", calls);
  auto info = store->DescribeTenant("acme");
  ASSERT_OK(info);
  const std::string shard = store->ShardPaths()[info->shard];
  store.reset();
  for (size_t bytes : DeferredRows(shard, info->column_family)) {
    ADD_FAILURE() << "a record of " << bytes << " bytes still uncompressed after the recovery";
  }
}

// --- 8. Operators: backups of unflushed stores, defer switched off ---------

// A backup taken before any flush holds the deferred records in its WAL;
// restored, then opened with defer_compression off: every call reads back,
// Verify is clean, and the flush still compresses them (the filter runs
// whatever the writer's setting).
TEST(Attack52, ABackupTakenBeforeTheFlushRestoresAndCompresses) {
  crypto::Init();
  testutil::TempDir tmp;
  const std::string db = tmp.Sub("db"), keys = tmp.Sub("keys"), bak = tmp.Sub("bak"),
                    restored = tmp.Sub("restored");
  const auto calls = Calls(50, 81, "b-", 0.3);
  {
    auto opened = Store::Open(CrashOptions(keys), db);
    ASSERT_OK(opened);
    std::unique_ptr<Store> store = std::move(opened).value();
    ASSERT_OK(store->CreateTenant({.tenant_id = "acme"}));
    PutAll(*store, "acme", calls);
    ASSERT_OK(store->Backup(bak));
  }
  Options o = CrashOptions(keys);
  o.defer_compression = false;
  ASSERT_OK(Store::Restore(o, bak, restored));
  auto opened = Store::Open(o, restored);
  ASSERT_OK(opened);
  std::unique_ptr<Store> store = std::move(opened).value();
  ExpectSame(*store, "acme", calls);
  ASSERT_OK(store->Flush());
  ASSERT_OK(store->CompactAll());
  ExpectSame(*store, "acme", calls);
  auto report = store->Verify(std::nullopt);
  ASSERT_OK(report);
  EXPECT_EQ(report->records_failed, 0u);
  auto info = store->DescribeTenant("acme");
  ASSERT_OK(info);
  const std::string shard = store->ShardPaths()[info->shard];
  store.reset();
  for (size_t bytes : DeferredRows(shard, info->column_family)) {
    ADD_FAILURE() << "a record of " << bytes << " bytes still uncompressed after the restore";
  }
}

// A read-only open of a store whose calls are still deferred (in its WALs)
// reads them and verifies them, and no filter runs (nothing is written).
TEST(Attack52, AReadOnlyOpenReadsDeferredRecords) {
  crypto::Init();
  testutil::TempDir tmp;
  const std::string db = tmp.Sub("db"), keys = tmp.Sub("keys");
  const auto calls = Calls(40, 101, "r-", 0.3);
  std::string shard, cf;
  {
    auto opened = Store::Open(CrashOptions(keys), db);
    ASSERT_OK(opened);
    std::unique_ptr<Store> store = std::move(opened).value();
    ASSERT_OK(store->CreateTenant({.tenant_id = "acme"}));
    PutAll(*store, "acme", calls);
    auto info = store->DescribeTenant("acme");
    ASSERT_OK(info);
    shard = store->ShardPaths()[info->shard];
    cf = info->column_family;
  }
  const size_t deferred = DeferredRows(shard, cf).size();
  ASSERT_GT(deferred, 0u);
  Options o = CrashOptions(keys);
  o.read_only = true;
  o.create_if_missing = false;
  auto opened = Store::Open(o, db);
  ASSERT_OK(opened);
  std::unique_ptr<Store> store = std::move(opened).value();
  ExpectSame(*store, "acme", calls);
  auto report = store->Verify(std::nullopt);
  ASSERT_OK(report);
  EXPECT_EQ(report->records_failed, 0u);
  auto st = store->Stats();
  ASSERT_OK(st);
  EXPECT_EQ(st->compression.resealed + st->compression.kept, 0u);
  store.reset();
  EXPECT_EQ(DeferredRows(shard, cf).size(), deferred);
}

}  // namespace
}  // namespace callvault
