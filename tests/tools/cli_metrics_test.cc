// `callvault stats --prometheus` and progress on stderr (decision 0031),
// through the binary as an operator runs it, on a real store. Progress is
// shown on a terminal or with --progress, never otherwise (the golden test
// runs without a terminal: unchanged), and never on stdout.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "callvault/store.h"
#include "tests/testutil/process.h"
#include "tests/testutil/prometheus.h"
#include "tests/testutil/testutil.h"

namespace callvault {
namespace {

using testutil::MakeCall;
using testutil::TestStore;
using Outcome = testutil::ProcessOutcome;

constexpr int64_t kT0 = 1'767'225'600'000'000;  // 2026-01-01T00:00:00Z

// The callvault binary, stdin /dev/null, stdout and stderr pipes (no tty).
Outcome Cli(const TestStore& s, std::vector<std::string> args) {
  std::vector<std::string> argv = {CALLVAULT_BIN, "--db", s.db, "--keys", s.keys};
  argv.insert(argv.end(), args.begin(), args.end());
  return testutil::RunProcess(argv, s.tmp.path());
}

bool Has(const std::string& text, const std::string& what) {
  return text.find(what) != std::string::npos;
}

class CliMetricsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK(s.Open());
    for (const char* id : {"acme", "bravo", "gone"}) {
      ASSERT_OK(s->CreateTenant({.tenant_id = id, .retention_days = 30}));
    }
    for (int i = 0; i < 12; ++i) {
      ASSERT_OK(s->PutCall("acme", MakeCall("a" + std::to_string(i), kT0 + i, "CANARYQ")));
      ASSERT_OK(s->PutCall("bravo", MakeCall("b" + std::to_string(i), kT0 + i)));
    }
    ASSERT_OK(s->ScheduleTenantPurge("gone", kT0));
    s.Close();
  }
  TestStore s;
};

TEST_F(CliMetricsTest, StatsPrometheusScrapesLineByLine) {
  Outcome o = Cli(s, {"stats", "--prometheus"});
  ASSERT_EQ(o.exit, 0) << o.err;
  EXPECT_EQ(o.err, "");
  const auto samples = testutil::ParseScrape(o.out);
  EXPECT_EQ(samples.at("callvault_live_tenants"), 3);
  EXPECT_GE(samples.at("callvault_shards"), 1);
  EXPECT_EQ(samples.at("callvault_op_duration_seconds_bucket{op=\"put\",le=\"+Inf\"}"), 0);
  EXPECT_GT(samples.at("callvault_memtable_budget_bytes"), 0);
  EXPECT_TRUE(samples.count("callvault_rocksdb_pending_compaction_bytes"));
  EXPECT_TRUE(samples.count("callvault_rocksdb_stall_seconds_total"));
  EXPECT_TRUE(samples.count("callvault_block_cache_hit_ratio"));
  for (const char* secret : {"acme", "bravo", "gone", "CANARYQ", "a3"}) {
    EXPECT_FALSE(Has(o.out, secret)) << secret;
  }
  const size_t bytes = o.out.size();
  // With --json: the usage error as the one JSON document, no scrape.
  o = Cli(s, {"--json", "stats", "--prometheus"});
  EXPECT_EQ(o.exit, 64) << o.out << o.err;
  EXPECT_TRUE(Has(o.out, "\"code\": \"usage\"")) << o.out;
  EXPECT_FALSE(Has(o.out, "# HELP")) << o.out;
  std::printf("StatsPrometheusScrapesLineByLine: %zu samples, %zu bytes\n", samples.size(), bytes);
}

// For each long verb: without a terminal nothing on stderr says progress;
// with --progress the lines appear on stderr, from 0 to done, and stdout
// is byte for byte what it is without the flag.
TEST_F(CliMetricsTest, ProgressOnlyWithTheFlagAndOnlyOnStderr) {
  struct Case {
    std::vector<std::string> args;
    std::string first, last;
  };
  // Read-only verbs run twice on the same store; verbs that write run on
  // two copies of it, so both runs see the same store.
  const std::vector<Case> cases = {
      {{"verify"}, "progress: verify 0/3 tenants", "progress: verify 3/3 tenants, done"},
      {{"retention", "run", "--dry-run", "--now", std::to_string(kT0 + 400LL * 86'400'000'000)},
       "progress: retention 0/3 tenants", "progress: retention 3/3 tenants, done"},
      {{"erase", "acme", "--email", "alice@example.com"}, "progress: erase 0/12 calls",
       "progress: erase 12/12 calls, done"},
      {{"purges", "run", "--now", std::to_string(kT0 + 1)}, "progress: purges 0/1 tenants",
       "progress: purges 1/1 tenants, done"},
      {{"tenant", "export", "bravo", "--to", "EXPORT"}, "progress: export 1/12 calls",
       "progress: export 12/12 calls, done"},
  };
  int n = 0;
  for (const Case& c : cases) {
    SCOPED_TRACE(c.args.front());
    TestStore a, b;
    testutil::CopyTree(s.db, a.db);
    testutil::CopyTree(s.keys, a.keys);
    testutil::CopyTree(s.db, b.db);
    testutil::CopyTree(s.keys, b.keys);
    std::vector<std::string> plain_args = c.args, flag_args = c.args;
    for (auto& arg : plain_args) if (arg == "EXPORT") arg = a.tmp.Sub("export");
    for (auto& arg : flag_args) if (arg == "EXPORT") arg = b.tmp.Sub("export");
    Outcome plain = Cli(a, plain_args);
    flag_args.insert(flag_args.begin(), "--progress");
    Outcome flagged = Cli(b, flag_args);
    EXPECT_EQ(plain.exit, 0) << plain.err;
    EXPECT_EQ(flagged.exit, 0) << flagged.err;
    EXPECT_FALSE(Has(plain.err, "progress")) << plain.err;
    EXPECT_FALSE(Has(plain.err, "\r")) << plain.err;
    EXPECT_TRUE(Has(flagged.err, c.first + "\n")) << flagged.err;
    EXPECT_TRUE(Has(flagged.err, c.last + "\n")) << flagged.err;
    EXPECT_LT(flagged.err.find(c.first), flagged.err.find(c.last));
    EXPECT_FALSE(Has(flagged.out, "progress")) << flagged.out;
    // stdout unchanged; export and erase print fresh ids, times and
    // receipts: compared with those masked.
    auto mask = [&](std::string text) {
      for (const std::string& dir : {a.tmp.path(), b.tmp.path()}) {
        for (size_t at; (at = text.find(dir)) != std::string::npos;) text.replace(at, dir.size(), "TMP");
      }
      std::string out;
      for (char ch : text) out += (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') ? '#' : ch;
      return out;
    };
    EXPECT_EQ(mask(plain.out), mask(flagged.out));
    ++n;
  }
  std::printf("ProgressOnlyWithTheFlagAndOnlyOnStderr: %d verbs checked\n", n);
}

}  // namespace
}  // namespace callvault
