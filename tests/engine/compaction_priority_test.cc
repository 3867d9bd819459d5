// Options::low_priority_compactions (decision 0084): RocksDB's compaction
// threads (the LOW pool, "rocksdb:low") run at nice 19 once the store asks,
// the flush threads ("rocksdb:high") keep the process's priority, and by
// default (false) nothing is lowered. A binary of its own: the lowering is
// process-wide and lasts, so the default case must run before any store
// opened with true (and --gtest_repeat finds the pool lowered by the first
// round).
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include "callvault/store.h"
#include "tests/testutil/testutil.h"

namespace callvault {
namespace {

// Nice value of every thread of this process whose name starts with
// `prefix`, by thread id.
std::map<int, int> NiceOf(const std::string& prefix) {
  std::map<int, int> out;
  for (const auto& e : std::filesystem::directory_iterator("/proc/self/task")) {
    std::ifstream comm(e.path() / "comm");
    std::string name;
    std::getline(comm, name);
    if (name.rfind(prefix, 0) != 0) continue;
    const int tid = std::stoi(e.path().filename().string());
    errno = 0;
    const int nice = getpriority(PRIO_PROCESS, static_cast<id_t>(tid));
    if (errno == 0) out[tid] = nice;
  }
  return out;
}

// A compaction in tenant "acme"'s family: two overlapping table files.
void Compact(Store& store) {
  ASSERT_TRUE(store.CreateTenant({.tenant_id = "acme"}).ok());
  for (int round = 0; round < 2; ++round) {
    for (int i = 0; i < 20; ++i) {
      Call c = testutil::MakeCall("c" + std::to_string(i), 1700000000000000 + i);
      auto r = store.PutCall("acme", c);
      ASSERT_TRUE(r.ok()) << r.status().ToString();
    }
    ASSERT_TRUE(store.Flush().ok());
  }
  const Status s = store.CompactAll();
  ASSERT_TRUE(s.ok()) << s.ToString();
}

TEST(CompactionPriority, LoweredForCompactionsOnlyAndOnlyWhenAsked) {
  errno = 0;
  const int base = getpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)));
  ASSERT_EQ(errno, 0);
  if (base >= 19) GTEST_SKIP() << "the test already runs at nice " << base;
  testutil::TempDir tmp;
  {
    Options o = testutil::DefaultOptions(tmp.Sub("keys-a"));
    auto store = Store::Open(o, tmp.Sub("a"));
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    Compact(**store);
    if (HasFatalFailure()) return;
    const auto low = NiceOf("rocksdb:low");
    ASSERT_FALSE(low.empty()) << "no compaction thread";
    for (const auto& [tid, nice] : low) EXPECT_EQ(nice, base) << "rocksdb:low thread " << tid;
  }
  Options o = testutil::DefaultOptions(tmp.Sub("keys-b"));
  EXPECT_FALSE(o.low_priority_compactions) << "the default";
  o.low_priority_compactions = true;
  auto store = Store::Open(o, tmp.Sub("b"));
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  Compact(**store);
  if (HasFatalFailure()) return;
  // A thread lowers itself before its next job: the one that ran the
  // compaction has; none is above nice 19's lowering nor below the base.
  int lowered = 0;
  for (const auto& [tid, nice] : NiceOf("rocksdb:low")) {
    if (nice == 19) ++lowered;
    else EXPECT_EQ(nice, base) << "rocksdb:low thread " << tid;
  }
  EXPECT_GE(lowered, 1) << "no compaction thread at nice 19";
  const auto high = NiceOf("rocksdb:high");
  ASSERT_FALSE(high.empty()) << "no flush thread";
  for (const auto& [tid, nice] : high) EXPECT_EQ(nice, base) << "rocksdb:high thread " << tid;
  // And the store works as before.
  auto got = (*store)->GetCall("acme", "c7");
  EXPECT_TRUE(got.ok()) << got.status().ToString();
}

}  // namespace
}  // namespace callvault
