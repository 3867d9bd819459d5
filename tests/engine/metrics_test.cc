// Store::Metrics, RenderPrometheus, Options::logger and Options::progress
// (callvault/metrics.h; docs/decisions/0031).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <map>
#include <mutex>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "callvault/metrics.h"
#include "callvault/store.h"
#include "tests/testutil/prometheus.h"
#include "tests/testutil/raw_shard.h"
#include "tests/testutil/testutil.h"

namespace callvault {
namespace {

using testutil::MakeCall;
using testutil::ParseScrape;
using testutil::RawShard;
using testutil::TestStore;

// Calls start on 2026-01-01T00:00:00Z, a minute apart.
constexpr int64_t kMinute = 60'000'000;
constexpr int64_t kDay = 1440 * kMinute;
constexpr int64_t kT0 = 20454 * kDay;

TEST(MetricsUnit, QuantileFromBuckets) {
  LatencyHistogram h;
  EXPECT_EQ(h.Quantile(0.5), 0u);
  h.counts[0] = 50;  // <= 50 us
  h.counts[4] = 49;  // <= 1 ms
  h.counts[kLatencyBuckets - 1] = 1;  // > 60 s
  h.count = 100;
  EXPECT_EQ(h.Quantile(0.5), 50u);
  EXPECT_EQ(h.Quantile(0.51), 1000u);
  EXPECT_EQ(h.Quantile(0.99), 1000u);
  EXPECT_EQ(h.Quantile(1.0), UINT64_MAX);
  std::printf("MetricsUnit: %zu buckets, p50 %llu us, p99 %llu us\n", kLatencyBuckets,
              static_cast<unsigned long long>(h.Quantile(0.5)),
              static_cast<unsigned long long>(h.Quantile(0.99)));
}

TEST(MetricsUnit, RenderingParses) {
  Metrics m;
  m.ops[0].counts[2] = 3;
  m.ops[0].counts[kLatencyBuckets - 1] = 1;
  m.ops[0].count = 4;
  m.ops[0].sum_micros = 70'000'123;
  m.ops[0].errors = 1;
  m.block_cache_hits = 3;
  m.block_cache_misses = 1;
  auto samples = ParseScrape(RenderPrometheus(m));
  EXPECT_EQ(samples.at("callvault_op_duration_seconds_bucket{op=\"put\",le=\"0.0001\"}"), 0);
  EXPECT_EQ(samples.at("callvault_op_duration_seconds_bucket{op=\"put\",le=\"0.00025\"}"), 3);
  EXPECT_EQ(samples.at("callvault_op_duration_seconds_bucket{op=\"put\",le=\"60\"}"), 3);
  EXPECT_EQ(samples.at("callvault_op_duration_seconds_bucket{op=\"put\",le=\"+Inf\"}"), 4);
  EXPECT_EQ(samples.at("callvault_op_duration_seconds_count{op=\"put\"}"), 4);
  EXPECT_DOUBLE_EQ(samples.at("callvault_op_duration_seconds_sum{op=\"put\"}"), 70.000123);
  EXPECT_EQ(samples.at("callvault_op_errors_total{op=\"put\"}"), 1);
  EXPECT_DOUBLE_EQ(samples.at("callvault_block_cache_hit_ratio"), 0.75);
  std::printf("MetricsUnit: %zu samples rendered and parsed\n", samples.size());
}

class MetricsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK(ts.Open());
    ASSERT_OK(ts->CreateTenant({.tenant_id = "acme", .retention_days = 0}));
  }
  Metrics Get() {
    auto m = ts->Metrics();
    EXPECT_OK(m);
    return m.ok() ? *m : Metrics{};
  }
  TestStore ts;
};

// Every operation named in callvault/metrics.h lands in its histogram,
// errors in its error count; purges are counted.
TEST_F(MetricsTest, EveryOperationIsTimed) {
  const Metrics before = Get();
  for (size_t i = 0; i < kOpCount; ++i) EXPECT_EQ(before.ops[i].count, 0u) << OpName(Op(i));

  ASSERT_OK(ts->PutCall("acme", MakeCall("c1", kT0)));
  ASSERT_OK(ts->PutCalls("acme", {MakeCall("c2", kT0 + kMinute), MakeCall("c3", kT0 + 2 * kMinute)}));
  Call patch;
  patch.insights.summary = "new summary";
  ASSERT_OK(ts->UpdateCall("acme", "c1", kPartInsights, patch));
  ASSERT_OK(ts->GetCall("acme", "c1"));
  EXPECT_EQ(ts->GetCall("acme", "nope").status().code(), Code::kNotFound);
  ASSERT_OK(ts->GetCalls("acme", {"c1", "c2"}));
  ASSERT_OK(ts->ListCalls("acme", ListQuery{}));
  ASSERT_OK(ts->CountCalls("acme"));
  ASSERT_OK(ts->CountCalls("acme", ListQuery{}));
  ASSERT_OK(ts->DeleteCall("acme", "c3"));
  EraseRequest erase;
  erase.subject = "bob@customer.example";
  ASSERT_OK(ts->Erase("acme", erase));
  ASSERT_OK(ts->RunRetention(kT0 + 400 * kDay, /*dry_run=*/true));
  {
    ASSERT_OK(ts->PutCall("acme", MakeCall("r1", kT0)));
    RecordingSpec spec;
    spec.recording_id = "rec1";
    auto w = ts->CreateRecording("acme", "r1", spec);
    ASSERT_OK(w);
    ASSERT_OK((*w)->Append(std::string(1000, 'x')));
    ASSERT_OK((*w)->Finish());
    std::string got;
    ASSERT_OK(ts->ReadRecording("acme", "r1", "rec1", 0, 1000, [&](std::string_view b) {
      got.append(b);
      return Status::OK();
    }));
    EXPECT_EQ(got.size(), 1000u);
  }
  ASSERT_OK(ts->Backup(ts.tmp.Sub("backup")));
  ASSERT_OK(ts->Verify());
  ASSERT_OK(ts->CreateTenant({.tenant_id = "gone", .retention_days = 0}));
  ASSERT_OK(ts->PurgeTenant("gone"));

  const Metrics m = Get();
  const std::map<Op, uint64_t> expect = {
      {Op::kPut, 2},     {Op::kPutBatch, 1},  {Op::kUpdate, 1},         {Op::kGet, 2},
      {Op::kGetBatch, 1}, {Op::kList, 1},     {Op::kCount, 2},          {Op::kDelete, 1},
      {Op::kErase, 1},   {Op::kRetention, 1}, {Op::kPurge, 1},          {Op::kRecordingWrite, 2},
      {Op::kRecordingRead, 1}, {Op::kBackup, 1}, {Op::kVerify, 1}};
  ASSERT_EQ(expect.size(), kOpCount);
  for (const auto& [op, n] : expect) {
    const LatencyHistogram& h = m.op(op);
    EXPECT_EQ(h.count, n) << OpName(op);
    uint64_t in_buckets = 0;
    for (uint64_t c : h.counts) in_buckets += c;
    EXPECT_EQ(in_buckets, h.count) << OpName(op);
    EXPECT_GT(h.sum_micros, 0u) << OpName(op);
    EXPECT_GT(h.Quantile(0.99), 0u) << OpName(op);
  }
  EXPECT_EQ(m.op(Op::kGet).errors, 1u);  // the kNotFound
  EXPECT_EQ(m.op(Op::kPut).errors, 0u);
  EXPECT_EQ(m.purges, 1u);
  EXPECT_EQ(m.live_tenants, 1u);
  EXPECT_GE(m.shards, 1u);
  EXPECT_GT(m.memtable_budget, 0u);
  EXPECT_GT(m.block_cache_capacity, 0u);
  EXPECT_EQ(m.background_errors, 0u);
  // The reads went through RocksDB's block cache (after Backup's flush).
  ASSERT_OK(ts->Flush());
  ASSERT_OK(ts.Reopen());
  ASSERT_OK(ts->GetCall("acme", "r1"));
  ASSERT_OK(ts->GetCall("acme", "r1"));
  const Metrics after = Get();
  EXPECT_GT(after.block_cache_hits + after.block_cache_misses, 0u);
  EXPECT_EQ(after.op(Op::kGet).count, 2u);  // a reopen starts again
  std::printf("EveryOperationIsTimed: %zu operations, put p50 %llu us, cache hit rate %.2f\n",
              kOpCount, static_cast<unsigned long long>(m.op(Op::kPut).Quantile(0.5)),
              after.block_cache_hit_rate());
}

// The scrape of a store that served calls: every line parses, every
// metric has HELP and TYPE, no tenant id, call id or data in it.
TEST_F(MetricsTest, PrometheusScrapeOfALiveStore) {
  ASSERT_OK(ts->CreateTenant({.tenant_id = "tenant-secret-name", .retention_days = 0}));
  for (int i = 0; i < 20; ++i) {
    ASSERT_OK(ts->PutCall("tenant-secret-name",
                          MakeCall("call-" + std::to_string(i), kT0 + i * kMinute, "CANARYXYZ")));
  }
  ASSERT_OK(ts->GetCall("tenant-secret-name", "call-3"));
  auto m = ts->Metrics();
  ASSERT_OK(m);
  const std::string text = RenderPrometheus(*m);
  auto samples = ParseScrape(text);
  EXPECT_EQ(samples.at("callvault_op_duration_seconds_count{op=\"put\"}"), 20);
  EXPECT_EQ(samples.at("callvault_op_duration_seconds_bucket{op=\"put\",le=\"+Inf\"}"), 20);
  EXPECT_EQ(samples.at("callvault_live_tenants"), 2);
  for (const char* secret : {"tenant-secret-name", "acme", "call-3", "CANARYXYZ", "alice"}) {
    EXPECT_EQ(text.find(secret), std::string::npos) << secret;
  }
  // Every op has its 20 buckets, each at least the one before.
  for (size_t i = 0; i < kOpCount; ++i) {
    const std::string prefix =
        std::string("callvault_op_duration_seconds_bucket{op=\"") + OpName(Op(i)) + "\",le=\"";
    double prev = 0;
    size_t buckets = 0;
    for (size_t b = 0; b < kLatencyBuckets; ++b) {
      std::string le = "+Inf";
      if (b + 1 < kLatencyBuckets) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%g", static_cast<double>(kLatencyBoundsMicros[b]) / 1e6);
        le = buf;
        // %g writes 5e-05 where the rendering writes 0.00005.
        if (le.find('e') != std::string::npos) le = b == 0 ? "0.00005" : le;
      }
      auto it = samples.find(prefix + le + "\"}");
      ASSERT_NE(it, samples.end()) << prefix << le;
      EXPECT_GE(it->second, prev);
      prev = it->second;
      ++buckets;
    }
    EXPECT_EQ(buckets, kLatencyBuckets);
    EXPECT_EQ(prev, samples.at(std::string("callvault_op_duration_seconds_count{op=\"") +
                               OpName(Op(i)) + "\"}"));
  }
  std::printf("PrometheusScrapeOfALiveStore: %zu samples, %zu bytes\n", samples.size(), text.size());
}

// A record that fails authentication is counted (AEAD failures, the
// store's auth_failure events); a forged receipt signature too.
TEST_F(MetricsTest, AuthFailuresAreCounted) {
  ASSERT_OK(ts->PutCall("acme", MakeCall("c1", kT0)));
  ASSERT_OK(ts->Flush());
  auto info = ts->DescribeTenant("acme");
  ASSERT_OK(info);
  const std::string shard = ts->ShardPaths().at(info->shard);
  ts.Close();
  {
    RawShard raw(shard, /*read_only=*/false);
    ASSERT_TRUE(raw.status().ok()) << raw.status().ToString();
    int flipped = 0;
    for (auto [k, v] : raw.Scan(info->column_family)) {
      if (v.size() < 40) continue;
      v[v.size() - 1] ^= 0x01;
      ASSERT_TRUE(raw.db()->Put(rocksdb::WriteOptions(), raw.cf(info->column_family), k, v).ok());
      ++flipped;
    }
    ASSERT_GT(flipped, 0);
  }
  ASSERT_OK(ts.Open());
  const Metrics before = Get();
  EXPECT_EQ(ts->GetCall("acme", "c1").status().code(), Code::kCorruption);
  const Metrics after = Get();
  EXPECT_GT(after.aead_open_failures, before.aead_open_failures);
  EXPECT_EQ(after.audit_auth_failures, before.audit_auth_failures + 1);
  EXPECT_EQ(after.op(Op::kGet).errors, 1u);

  auto receipts = ts->ListReceipts();
  ASSERT_OK(receipts);
  ASSERT_OK(ts->CreateTenant({.tenant_id = "gone", .retention_days = 0}));
  ASSERT_OK(ts->PurgeTenant("gone"));
  receipts = ts->ListReceipts();
  ASSERT_OK(receipts);
  ASSERT_FALSE(receipts->empty());
  auto key = ts->SigningPublicKey();
  ASSERT_OK(key);
  std::vector<Receipt> forged = *receipts;
  forged.back().records += 1;
  EXPECT_FALSE(VerifyReceiptChain(forged, *key).ok());
  const Metrics last = Get();
  EXPECT_GT(last.signature_failures, after.signature_failures);
  const std::string text = RenderPrometheus(last);
  EXPECT_NE(text.find("callvault_auth_failure_events_total 1\n"), std::string::npos) << text;
  std::printf("AuthFailuresAreCounted: aead %llu, signature %llu, audit %llu\n",
              static_cast<unsigned long long>(last.aead_open_failures),
              static_cast<unsigned long long>(last.signature_failures),
              static_cast<unsigned long long>(last.audit_auth_failures));
}

// Puts from 4 threads while Metrics() and RenderPrometheus are read: no
// race (the t7-tsan CI part runs this test), every put counted once.
TEST_F(MetricsTest, ConcurrentPutsAndScrapes) {
  constexpr int kThreads = 4;
  constexpr int kPerThread = 100;
  ts.options.sync_writes = false;
  ASSERT_OK(ts.Reopen());
  std::atomic<bool> stop{false};
  std::atomic<int> scrapes{0};
  std::thread scraper([&] {
    while (!stop.load()) {
      auto m = ts->Metrics();
      if (!m.ok()) {
        ADD_FAILURE() << m.status().ToString();
        return;
      }
      const LatencyHistogram& h = m->op(Op::kPut);
      uint64_t in_buckets = 0;
      for (uint64_t c : h.counts) in_buckets += c;
      EXPECT_EQ(in_buckets, h.count);
      EXPECT_LE(h.count, static_cast<uint64_t>(kThreads * kPerThread));
      EXPECT_FALSE(RenderPrometheus(*m).empty());
      ++scrapes;
    }
  });
  std::vector<std::thread> writers;
  for (int t = 0; t < kThreads; ++t) {
    writers.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        Status s = ts->PutCall("acme", MakeCall("t" + std::to_string(t) + "-" + std::to_string(i),
                                                kT0 + i * kMinute))
                       .status();
        if (!s.ok()) ADD_FAILURE() << s.ToString();
      }
    });
  }
  for (auto& w : writers) w.join();
  stop = true;
  scraper.join();
  const Metrics m = Get();
  EXPECT_EQ(m.op(Op::kPut).count, static_cast<uint64_t>(kThreads * kPerThread));
  EXPECT_EQ(m.op(Op::kPut).errors, 0u);
  EXPECT_GT(scrapes.load(), 0);
  std::printf("ConcurrentPutsAndScrapes: %d threads x %d puts, %d scrapes, p99 %llu us\n", kThreads,
              kPerThread, scrapes.load(),
              static_cast<unsigned long long>(m.op(Op::kPut).Quantile(0.99)));
}

// The table and blob files of the purged tenant's family, as a set of paths
// under `dirs` (the shard directories).
std::set<std::string> TableFiles(const std::vector<std::string>& dirs) {
  std::set<std::string> out;
  for (const auto& d : dirs) {
    for (const auto& e : std::filesystem::directory_iterator(d)) {
      const std::string ext = e.path().extension().string();
      if (ext == ".sst" || ext == ".blob") out.insert(e.path().string());
    }
  }
  return out;
}

// Decision 0049: a purge returns after its receipt, and the family's files
// are deleted afterwards on the shard's reaper thread, which reports it
// (log line at info, Metrics::purge_deletions_pending back to 0); Close
// waits for the deletions still running.
TEST(MetricsPurge, PurgedFilesAreDeletedAfterTheReceiptAndReported) {
  TestStore ts;
  auto mu = std::make_shared<std::mutex>();
  auto lines = std::make_shared<std::vector<std::string>>();
  ts.options.logger = [mu, lines](LogLevel level, std::string_view, std::string_view msg) {
    if (level != LogLevel::kInfo || msg.find("purge: the files of dropped family") == std::string_view::npos) return;
    std::lock_guard<std::mutex> l(*mu);
    lines->emplace_back(msg);
  };
  auto deleted_lines = [&] {
    std::lock_guard<std::mutex> l(*mu);
    return lines->size();
  };
  ASSERT_OK(ts.Open());
  for (int round = 0; round < 2; ++round) {
    const std::string tenant = "gone" + std::to_string(round);
    ASSERT_OK(ts->CreateTenant({.tenant_id = tenant, .retention_days = 0}));
    const std::vector<std::string> dirs = ts->ShardPaths();  // shards open as tenants need them
    ASSERT_FALSE(dirs.empty());
    const std::set<std::string> before = TableFiles(dirs);
    for (int i = 0; i < 50; ++i) {
      Call c = MakeCall("c" + std::to_string(i), kT0 + i * kMinute);
      c.transcript.resize(1);
      c.transcript[0].text = std::string(2000, static_cast<char>('a' + i % 26));
      ASSERT_OK(ts->PutCall(tenant, c));
    }
    ASSERT_OK(ts->Flush());
    std::set<std::string> family;
    for (const auto& f : TableFiles(dirs)) {
      if (!before.count(f)) family.insert(f);
    }
    ASSERT_FALSE(family.empty()) << "the flush wrote no table file for the tenant";
    const size_t logged = deleted_lines();
    ASSERT_OK(ts->PurgeTenant(tenant));
    EXPECT_CODE(ts->GetCall(tenant, "c1"), Code::kTenantPurged);
    if (round == 0) {
      // Wait for the reaper: every file of the family goes, the gauge
      // returns to 0, and one line says so.
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
      for (;;) {
        auto m = ts->Metrics();
        ASSERT_OK(m);
        bool gone = true;
        for (const auto& f : family) gone = gone && !std::filesystem::exists(f);
        if (gone && m->purge_deletions_pending == 0 && deleted_lines() == logged + 1) break;
        ASSERT_LT(std::chrono::steady_clock::now(), deadline)
            << "files left: " << gone << ", pending " << m->purge_deletions_pending;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
    } else {
      // Close right away: it returns only once the files are deleted.
      ts.Close();
      ASSERT_OK(ts.Open());  // for the next round; the store was closed
      for (const auto& f : family) EXPECT_FALSE(std::filesystem::exists(f)) << f;
      EXPECT_EQ(deleted_lines(), logged + 1);
    }
  }
  std::lock_guard<std::mutex> l(*mu);
  for (const auto& line : *lines) {
    EXPECT_EQ(line.find("gone"), std::string::npos) << "a tenant id in: " << line;
  }
}

struct LogLine {
  LogLevel level;
  std::string source;
  std::string message;
};

// With Options::logger, RocksDB's info logs and the engine's messages go
// to it (and no LOG file is written); none holds plaintext, a tenant id or
// key bytes.
TEST(MetricsLogger, EngineAndRocksDbMessagesGoThroughTheHook) {
  TestStore ts;
  auto mu = std::make_shared<std::mutex>();
  auto lines = std::make_shared<std::vector<LogLine>>();
  ts.options.logger = [mu, lines](LogLevel level, std::string_view source, std::string_view msg) {
    std::lock_guard<std::mutex> l(*mu);
    lines->push_back({level, std::string(source), std::string(msg)});
  };
  ASSERT_OK(ts.Open());
  ASSERT_OK(ts->CreateTenant({.tenant_id = "tenant-canary-id", .retention_days = 0}));
  for (int i = 0; i < 10; ++i) {
    ASSERT_OK(ts->PutCall("tenant-canary-id",
                          MakeCall("call-canary-" + std::to_string(i), kT0 + i * kMinute, "PLAINCANARY")));
  }
  ASSERT_OK(ts->Flush());
  ASSERT_OK(ts->PurgeTenant("tenant-canary-id"));
  ts.Close();

  std::lock_guard<std::mutex> l(*mu);
  std::map<std::string, int> by_source;
  bool rocksdb_open = false, engine_open = false, audit_purge = false;
  for (const auto& line : *lines) {
    ++by_source[line.source];
    if (line.source.rfind("rocksdb:", 0) == 0 && line.message.find("RocksDB version") != std::string::npos) {
      rocksdb_open = true;
    }
    if (line.source == "callvault" && line.message.rfind("store opened", 0) == 0) engine_open = true;
    if (line.source == "callvault" && line.message.find("tenant_purged") != std::string::npos) {
      audit_purge = true;
    }
    EXPECT_FALSE(line.message.empty());
    EXPECT_NE(line.message.back(), '\n');
    for (const char* canary : {"PLAINCANARY", "tenant-canary-id", "call-canary", "alice@example.com",
                               "Alice", "+14155550100"}) {
      EXPECT_EQ(line.message.find(canary), std::string::npos) << canary << " in: " << line.message;
    }
  }
  EXPECT_TRUE(rocksdb_open);
  EXPECT_TRUE(engine_open);
  EXPECT_TRUE(audit_purge);
  EXPECT_GT(by_source["rocksdb:meta"], 0);
  EXPECT_GT(by_source["rocksdb:shard-0"], 0);
  // The info logs went to the hook, not to <instance>/LOG.
  for (const auto& f : testutil::ListFiles(ts.db)) {
    EXPECT_EQ(f.find("/LOG"), std::string::npos) << f;
  }
  // Key bytes: no line holds a long run of hex or base64 that is not a
  // RocksDB identity (the keys are 32 random bytes; a hex dump would be 64
  // hex digits).
  static const std::regex kHex64("[0-9a-fA-F]{64}");
  for (const auto& line : *lines) {
    EXPECT_FALSE(std::regex_search(line.message, kHex64)) << line.message;
  }
  std::printf("EngineAndRocksDbMessagesGoThroughTheHook: %zu lines (%d rocksdb:meta, %d callvault)\n",
              lines->size(), by_source["rocksdb:meta"], by_source["callvault"]);
}

// Options::progress: Verify, RunRetention, Erase and RunScheduledPurges
// report from 0 to the total, and say when they finished.
TEST(MetricsProgress, LongOperationsReport) {
  TestStore ts;
  std::vector<std::tuple<std::string, std::string, uint64_t, uint64_t, bool>> seen;
  ts.options.progress = [&seen](const Progress& p) {
    seen.emplace_back(p.operation, p.unit, p.done, p.total, p.finished);
  };
  ASSERT_OK(ts.Open());
  for (const char* id : {"a1", "a2", "a3"}) {
    ASSERT_OK(ts->CreateTenant({.tenant_id = id, .retention_days = 0}));
  }
  for (int i = 0; i < 4; ++i) ASSERT_OK(ts->PutCall("a1", MakeCall("c" + std::to_string(i), kT0 + i)));
  auto check = [&seen](const std::string& op, const std::string& unit, uint64_t total) {
    ASSERT_GE(seen.size(), 2u) << op;
    EXPECT_EQ(std::get<0>(seen.front()), op);
    EXPECT_EQ(std::get<1>(seen.front()), unit);
    EXPECT_EQ(std::get<2>(seen.front()), 0u);
    EXPECT_EQ(std::get<3>(seen.front()), total);
    EXPECT_FALSE(std::get<4>(seen.front()));
    EXPECT_EQ(std::get<2>(seen.back()), total) << op;
    EXPECT_TRUE(std::get<4>(seen.back())) << op;
    uint64_t prev = 0;
    for (const auto& s : seen) {
      EXPECT_EQ(std::get<0>(s), op);
      EXPECT_GE(std::get<2>(s), prev);
      prev = std::get<2>(s);
    }
    seen.clear();
  };
  seen.clear();
  ASSERT_OK(ts->Verify());
  check("verify", "tenants", 3);
  ASSERT_OK(ts->RunRetention(kT0 + kDay, /*dry_run=*/false));
  check("retention", "tenants", 3);
  EraseRequest erase;
  erase.subject = "alice@example.com";
  ASSERT_OK(ts->Erase("a1", erase));
  check("erase", "calls", 4);
  ASSERT_OK(ts->ScheduleTenantPurge("a2", kT0));
  ASSERT_OK(ts->ScheduleTenantPurge("a3", kT0));
  ASSERT_OK(ts->RunScheduledPurges(kT0 + kDay));
  check("purges", "tenants", 2);
  std::printf("LongOperationsReport: verify, retention, erase, purges reported\n");
}

// Decision 0060: what the store holds beyond its three budgets is in
// Stats().memory: the readers of its open table files, the free memory
// malloc keeps, and the trims that returned it to the system once the
// memtables had shrunk by Options::heap_trim_step_bytes. Asserts on the
// engine's own accounting, not on the resident size (noisy).
TEST(MetricsMemory, TableReadersAndHeapTrimsAreReported) {
  for (const size_t step : {size_t{0}, size_t{256} << 10}) {
    SCOPED_TRACE(step);
    TestStore ts;
    ts.options.heap_trim_step_bytes = step;
    ASSERT_OK(ts.Open());
    ASSERT_OK(ts->CreateTenant({.tenant_id = "acme", .retention_days = 0}));
    uint64_t memtable_high = 0;
    constexpr int kRounds = 6;
    // Rounds of ~1 MiB of calls, each flushed: a flush frees its memtable
    // after it reports its end, so the next round's flush sees the drop.
    for (int round = 0; round < kRounds; ++round) {
      for (int i = 0; i < 16; ++i) {
        Call c = MakeCall("c" + std::to_string(round) + "-" + std::to_string(i), kT0 + round * 100 + i);
        for (auto& seg : c.transcript) seg.text = std::string(3000, static_cast<char>('a' + i));
        ASSERT_OK(ts->PutCall("acme", c));
      }
      auto filled = ts->Stats();
      ASSERT_OK(filled);
      memtable_high = std::max(memtable_high, filled->memory.memtable_bytes);
      ASSERT_OK(ts->Flush());
    }
    auto st = ts->Stats();
    ASSERT_OK(st);
    EXPECT_GT(memtable_high, step) << "each round fills more than a step";
    EXPECT_GT(st->memory.table_reader_bytes, 0u) << "the flushes opened table files";
    // Within its bound: a few table files here, a few KiB each; far below
    // the memtables they came from.
    EXPECT_LT(st->memory.table_reader_bytes, memtable_high);
    EXPECT_GT(st->memory.allocator_free_bytes, 0u);
    if (step == 0) {
      EXPECT_EQ(st->memory.heap_trims, 0u) << "0 = never";
    } else {
      EXPECT_GT(st->memory.heap_trims, 0u) << "the memtables shrank by more than a step";
      // At most one a round: each frees one memtable of ~1 MiB.
      EXPECT_LE(st->memory.heap_trims, static_cast<uint64_t>(kRounds));
    }
    std::printf("TableReadersAndHeapTrimsAreReported: step %zu, memtables up to %llu, table readers %llu, "
                "free in malloc %llu, %llu trims\n",
                step, static_cast<unsigned long long>(memtable_high),
                static_cast<unsigned long long>(st->memory.table_reader_bytes),
                static_cast<unsigned long long>(st->memory.allocator_free_bytes),
                static_cast<unsigned long long>(st->memory.heap_trims));
  }
}

}  // namespace
}  // namespace callvault
