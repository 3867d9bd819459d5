// File descriptors with many shards (issue 14 item 4, decision 0059): the
// store sizes each instance's max_open_files from RLIMIT_NOFILE, and a limit
// too low for its shards is refused up front, not met later as EMFILE in a
// flush. Each case runs in a child process (this binary, re-executed) that
// lowers its own limit first: the parent's stays as it was.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "callvault/store.h"
#include "tests/testutil/process.h"
#include "tests/testutil/testutil.h"

namespace callvault {
namespace {

namespace fs = std::filesystem;

constexpr char kEnvDb[] = "CALLVAULT_FD_DB";
constexpr char kEnvKeys[] = "CALLVAULT_FD_KEYS";
constexpr char kEnvSoft[] = "CALLVAULT_FD_SOFT";
constexpr char kEnvHard[] = "CALLVAULT_FD_HARD";

// 200 tenants at 40 a shard: 5 shards. Each tenant gets kRounds calls, a
// flush after each round: 600 table files, more than the limit of 512 the
// child runs under (the 5 x 512 table files a constant max_open_files
// allowed would keep every one of them open).
constexpr int kTenants = 200;
constexpr uint32_t kPerShard = 40;
constexpr int kRounds = 3;

std::string TenantId(int i) { return "t" + std::to_string(i); }
std::string CallId(int round) { return "c" + std::to_string(round); }

// A failed check in the child: says what, exits with `code`.
[[noreturn]] void Fail(int code, const std::string& what) {
  std::printf("[descriptors child] %s\n", what.c_str());
  // What the process holds open, by directory and kind: where they went.
  // (No exceptions: the limit may still be reached.)
  std::map<std::string, int> held;
  std::error_code ec;
  for (fs::directory_iterator e("/proc/self/fd", ec); !ec && e != fs::directory_iterator(); e.increment(ec)) {
    const fs::path target = fs::read_symlink(e->path(), ec);
    held[target.parent_path().string() + "/*" + target.extension().string()]++;
  }
  for (const auto& [where, n] : held) std::printf("  %5d %s\n", n, where.c_str());
  std::fflush(nullptr);
  ::_exit(code);
}

[[noreturn]] void Pass() {
  std::fflush(nullptr);
  ::_exit(0);
}

// Sets RLIMIT_NOFILE to $CALLVAULT_FD_SOFT / $CALLVAULT_FD_HARD.
void LowerLimit() {
  rlimit lim{};
  lim.rlim_cur = std::strtoull(std::getenv(kEnvSoft), nullptr, 10);
  lim.rlim_max = std::strtoull(std::getenv(kEnvHard), nullptr, 10);
  if (::setrlimit(RLIMIT_NOFILE, &lim) != 0) Fail(9, "setrlimit failed");
}

Options ChildOptions() {
  Options o = testutil::DefaultOptions(std::string(std::getenv(kEnvKeys)));
  o.max_tenants_per_shard = kPerShard;
  return o;
}

void ReadEveryCall(Store& store, const char* when) {
  for (int i = 0; i < kTenants; ++i) {
    for (int r = 0; r < kRounds; ++r) {
      auto c = store.GetCall(TenantId(i), CallId(r));
      if (!c.ok()) {
        Fail(4, std::string(when) + ": " + TenantId(i) + "/" + CallId(r) + ": " + c.status().ToString());
      }
      if (c->title != "Quarterly review " + TenantId(i)) Fail(5, std::string(when) + ": wrong call");
    }
  }
}

// Under soft 256 / hard 512: the open raises the soft limit to 512, then
// 5 shards are filled with table files, every call is read back, and again
// after a reopen.
TEST(DescriptorsChild, DISABLED_FillShards) {
  if (std::getenv(kEnvDb) == nullptr) GTEST_SKIP();
  LowerLimit();
  const std::string db = std::getenv(kEnvDb);
  {
    auto opened = Store::Open(ChildOptions(), db);
    if (!opened.ok()) Fail(2, "open: " + opened.status().ToString());
    Store& store = **opened;
    rlimit now{};
    ::getrlimit(RLIMIT_NOFILE, &now);
    if (now.rlim_cur != now.rlim_max) Fail(3, "the soft limit was not raised to the hard limit");
    for (int i = 0; i < kTenants; ++i) {
      TenantSpec t;
      t.tenant_id = TenantId(i);
      auto c = store.CreateTenant(t);
      if (!c.ok()) Fail(2, "create " + t.tenant_id + ": " + c.status().ToString());
    }
    for (int r = 0; r < kRounds; ++r) {
      for (int i = 0; i < kTenants; ++i) {
        auto put = store.PutCall(TenantId(i), testutil::MakeCall(CallId(r), 1772375400000000 + r, TenantId(i)));
        if (!put.ok()) Fail(2, "put: " + put.status().ToString());
      }
      Status f = store.Flush();
      if (!f.ok()) Fail(2, "flush: " + f.ToString());
    }
    ReadEveryCall(store, "after the writes");
    auto st = store.Stats();
    if (!st.ok()) Fail(2, "stats: " + st.status().ToString());
    std::printf("[descriptors child] shards %zu, nofile %llu, reserve %llu, %u table files per shard\n",
                st->shards.size(), static_cast<unsigned long long>(st->descriptors.nofile_limit),
                static_cast<unsigned long long>(st->descriptors.reserve),
                st->descriptors.open_files_per_shard);
    if (st->shards.size() != kTenants / kPerShard) Fail(6, "unexpected shard count");
    if (st->descriptors.nofile_limit != now.rlim_cur) Fail(6, "Stats does not report the limit");
    // (512 - 64 kept back) / (5 shards and the metadata instance) at most
    // (the budget was planned when the fourth shard opened, for a quarter
    // more), the floor at least.
    if (st->descriptors.open_files_per_shard < 64 || st->descriptors.open_files_per_shard > 448 / 6) {
      Fail(6, "unexpected per-shard budget");
    }
    auto m = store.Metrics();
    if (!m.ok() || m->open_files_per_shard != st->descriptors.open_files_per_shard ||
        m->nofile_limit != now.rlim_cur) {
      Fail(6, "Metrics does not report the budget");
    }
    Status closed = store.Close();
    if (!closed.ok()) Fail(2, "close: " + closed.ToString());
  }
  auto reopened = Store::Open(ChildOptions(), db);
  if (!reopened.ok()) Fail(7, "reopen: " + reopened.status().ToString());
  ReadEveryCall(**reopened, "after the reopen");
  if (!(*reopened)->Close().ok()) Fail(7, "close after the reopen");
  Pass();
}

// Under 256: the store FillShards left (5 shards) is refused at open.
TEST(DescriptorsChild, DISABLED_OpenRefused) {
  if (std::getenv(kEnvDb) == nullptr) GTEST_SKIP();
  LowerLimit();
  auto opened = Store::Open(ChildOptions(), std::getenv(kEnvDb));
  if (opened.ok()) Fail(2, "a store of 5 shards opened under nofile 256");
  std::printf("[descriptors child] %s\n", opened.status().ToString().c_str());
  const std::string m(opened.status().message());
  if (opened.status().code() != Code::kResourceExhausted ||
      m.find("RLIMIT_NOFILE is 256") == std::string::npos || m.find("at least 448") == std::string::npos) {
    Fail(3, "not the specific refusal");
  }
  Pass();
}

// Under 256 a fresh store holds 2 shards (of 1 tenant each here): the third
// tenant, which needs a third shard, is refused and nothing is created.
TEST(DescriptorsChild, DISABLED_ShardRefused) {
  if (std::getenv(kEnvDb) == nullptr) GTEST_SKIP();
  LowerLimit();
  const std::string db = std::getenv(kEnvDb);
  Options o = ChildOptions();
  o.max_tenants_per_shard = 1;
  {
    auto opened = Store::Open(o, db);
    if (!opened.ok()) Fail(2, "open: " + opened.status().ToString());
    Store& store = **opened;
    for (int i = 0; i < 2; ++i) {
      TenantSpec t;
      t.tenant_id = TenantId(i);
      if (!store.CreateTenant(t).ok()) Fail(2, "create " + t.tenant_id);
    }
    TenantSpec third;
    third.tenant_id = TenantId(2);
    auto refused = store.CreateTenant(third);
    if (refused.ok()) Fail(3, "a third shard was created under nofile 256");
    std::printf("[descriptors child] %s\n", refused.status().ToString().c_str());
    const std::string m(refused.status().message());
    if (refused.status().code() != Code::kResourceExhausted ||
        m.find("RLIMIT_NOFILE is 256") == std::string::npos ||
        m.find("at least 320") == std::string::npos) {
      Fail(3, "not the specific refusal");
    }
    auto tenants = store.ListTenants();
    if (!tenants.ok() || tenants->size() != 2) Fail(4, "the tenant list changed");
    if (fs::exists(db + "/shards/0002")) Fail(4, "a third shard directory was left");
    if (!store.Close().ok()) Fail(2, "close");
  }
  auto reopened = Store::Open(o, db);
  if (!reopened.ok()) Fail(5, "reopen: " + reopened.status().ToString());
  auto st = (*reopened)->Stats();
  if (!st.ok() || st->shards.size() != 2 || st->tenants.size() != 2) Fail(5, "the store changed");
  Pass();
}

std::map<std::string, uintmax_t> ShardFiles(const std::string& db) {
  std::map<std::string, uintmax_t> files;
  for (const auto& e : fs::recursive_directory_iterator(db + "/shards")) {
    if (e.is_regular_file()) files[e.path().string()] = e.file_size();
  }
  return files;
}

TEST(Descriptors, ManyShardsUnderALowLimitAndTheRefusals) {
  testutil::TempDir tmp;
  const std::string db = tmp.Sub("db"), keys = tmp.Sub("keys");
  auto env = [&](const char* soft, const char* hard) {
    return std::vector<std::pair<std::string, std::string>>{
        {kEnvDb, db}, {kEnvKeys, keys}, {kEnvSoft, soft}, {kEnvHard, hard}};
  };
  ASSERT_EQ(testutil::RunSelfChild("DescriptorsChild.DISABLED_FillShards", env("256", "512"),
                                   /*quiet=*/false, 300),
            "exit 0");
  const auto before = ShardFiles(db);
  ASSERT_EQ(testutil::RunSelfChild("DescriptorsChild.DISABLED_OpenRefused", env("256", "256"),
                                   /*quiet=*/false),
            "exit 0");
  EXPECT_EQ(ShardFiles(db), before) << "the refused open changed a shard's files";

  testutil::TempDir fresh;
  EXPECT_EQ(testutil::RunSelfChild("DescriptorsChild.DISABLED_ShardRefused",
                                   {{kEnvDb, fresh.Sub("db")},
                                    {kEnvKeys, fresh.Sub("keys")},
                                    {kEnvSoft, "256"},
                                    {kEnvHard, "256"}},
                                   /*quiet=*/false),
            "exit 0");
}

}  // namespace
}  // namespace callvault
