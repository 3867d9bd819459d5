// The memtables a writable open recovered from the WAL are flushed in the
// background once they hold more than an eighth of the memtable budget
// (docs/decisions/0082): the memory they held is given back, every call
// stays readable, Close stops the drain part way, a purge during it is not
// disturbed, and a read-only open or a store below the bound drains nothing.
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "callvault/store.h"
#include "tests/testutil/testutil.h"

namespace callvault {
namespace {

constexpr int64_t kT0 = 1'767'225'600'000'000;  // 2026-01-01T00:00:00Z
// A memtable takes at least one 64 KiB arena block (engine/shard.cc).
constexpr uint64_t kArenaBlock = 64u << 10;

std::string Tenant(int i) { return "t" + std::to_string(i); }

class RecoveredMemtablesTest : public ::testing::Test {
 protected:
  // An 8 MiB budget: 60 tenants' one-call memtables (~3.75 MiB) stay under
  // its flush trigger while written, and pass an eighth of it (1 MiB).
  Options Opts(bool read_only = false) {
    Options o = testutil::DefaultOptions(tmp_.Sub("keys"));
    o.write_buffer_budget_bytes = 8u << 20;
    o.read_only = read_only;
    if (read_only) o.create_if_missing = false;
    return o;
  }
  // `tenants` tenants with one call each, left in the WAL (Close flushes
  // no memtable).
  void MakeStore(int tenants) {
    auto store = Store::Open(Opts(), db_);
    ASSERT_OK(store);
    for (int i = 0; i < tenants; ++i) {
      ASSERT_OK((*store)->CreateTenant({.tenant_id = Tenant(i)}));
      ASSERT_OK((*store)->PutCall(Tenant(i), testutil::MakeCall("c", kT0 + i, Tenant(i))));
    }
    auto st = (*store)->Stats();
    ASSERT_OK(st);
    ASSERT_GE(st->memory.memtable_bytes, tenants * kArenaBlock) << "flushed while written";
    ASSERT_OK((*store)->Close());
  }
  void ExpectCalls(Store& store, int tenants, int skip_below = 0) {
    for (int i = skip_below; i < tenants; ++i) {
      SCOPED_TRACE(i);
      auto got = store.GetCall(Tenant(i), "c");
      ASSERT_OK(got);
      EXPECT_EQ(got->title, testutil::MakeCall("c", kT0 + i, Tenant(i)).title);
    }
  }
  // Stats once `done` holds for them, or after 30 s.
  template <typename Done>
  StoreStats WaitFor(Store& store, Done done) {
    StoreStats st;
    for (int i = 0; i < 3000; ++i) {
      auto s = store.Stats();
      EXPECT_OK(s);
      if (!s.ok()) break;
      st = *s;
      if (done(st)) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return st;
  }

  testutil::TempDir tmp_;
  std::string db_ = tmp_.Sub("db");
};

TEST_F(RecoveredMemtablesTest, AReopenFlushesTheMemtablesItRecovered) {
  constexpr int kTenants = 60;
  MakeStore(kTenants);
  auto store = Store::Open(Opts(), db_);
  ASSERT_OK(store);
  const StoreStats st = WaitFor(**store, [](const StoreStats& s) {
    return s.memory.recovered_memtables_pending == 0 &&
           s.memory.recovered_memtables_flushed == kTenants && s.memory.memtable_bytes < kArenaBlock * 4;
  });
  EXPECT_EQ(st.memory.recovered_memtables_flushed, uint64_t{kTenants});
  EXPECT_EQ(st.memory.recovered_memtables_pending, 0u);
  // What they held is given back (a few empty memtables' inline blocks
  // remain), where it was 60 arena blocks before.
  EXPECT_LT(st.memory.memtable_bytes, kArenaBlock * 4);
  ExpectCalls(**store, kTenants);
  ASSERT_OK((*store)->Close());
  // The calls are in table files now: the next open recovers nothing.
  store = Store::Open(Opts(), db_);
  ASSERT_OK(store);
  auto again = (*store)->Stats();
  ASSERT_OK(again);
  EXPECT_EQ(again->memory.recovered_memtables_flushed, 0u);
  EXPECT_EQ(again->memory.recovered_memtables_pending, 0u);
  EXPECT_LT(again->memory.memtable_bytes, kArenaBlock * 4);
  ExpectCalls(**store, kTenants);
  auto verify = (*store)->Verify();
  ASSERT_OK(verify);
  EXPECT_TRUE(verify->ok());
}

TEST_F(RecoveredMemtablesTest, BelowAnEighthOfTheBudgetNothingIsFlushed) {
  constexpr int kTenants = 8;  // 512 KiB of memtables, under 1 MiB
  MakeStore(kTenants);
  auto store = Store::Open(Opts(), db_);
  ASSERT_OK(store);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  auto st = (*store)->Stats();
  ASSERT_OK(st);
  EXPECT_EQ(st->memory.recovered_memtables_flushed, 0u);
  EXPECT_EQ(st->memory.recovered_memtables_pending, 0u);
  EXPECT_GE(st->memory.memtable_bytes, kTenants * kArenaBlock);
  ExpectCalls(**store, kTenants);
}

TEST_F(RecoveredMemtablesTest, AReadOnlyOpenFlushesNothing) {
  constexpr int kTenants = 60;
  MakeStore(kTenants);
  {
    auto ro = Store::Open(Opts(/*read_only=*/true), db_);
    ASSERT_OK(ro);
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    auto st = (*ro)->Stats();
    ASSERT_OK(st);
    EXPECT_EQ(st->memory.recovered_memtables_flushed, 0u);
    EXPECT_EQ(st->memory.recovered_memtables_pending, 0u);
    ExpectCalls(**ro, kTenants);
  }
  // The writer still finds them to flush.
  auto store = Store::Open(Opts(), db_);
  ASSERT_OK(store);
  const StoreStats st = WaitFor(**store, [](const StoreStats& s) {
    return s.memory.recovered_memtables_flushed == kTenants;
  });
  EXPECT_EQ(st.memory.recovered_memtables_flushed, uint64_t{kTenants});
}

// A flush backlog bound of one memtable makes the drain wait for each
// flush: Close comes while it runs, purges and writes run beside it.
TEST_F(RecoveredMemtablesTest, CloseStopsTheDrainAndPurgesRunBesideIt) {
  constexpr int kTenants = 100;  // ~6.4 MiB, under the budget's 7 MiB trigger
  MakeStore(kTenants);
  auto slow = [this] {
    Options o = Opts();
    o.flush_backlog_bytes = kArenaBlock;
    return o;
  };
  {
    auto store = Store::Open(slow(), db_);
    ASSERT_OK(store);
    auto st = (*store)->Stats();
    ASSERT_OK(st);
    EXPECT_GT(st->memory.recovered_memtables_pending, 0u) << "drained before Close came";
    const auto t0 = std::chrono::steady_clock::now();
    ASSERT_OK((*store)->Close());
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
  }
  auto store = Store::Open(slow(), db_);
  ASSERT_OK(store);
  {
    // What Close left is found again (Close does not flush).
    auto st = (*store)->Stats();
    ASSERT_OK(st);
    EXPECT_GT(st->memory.recovered_memtables_pending + st->memory.recovered_memtables_flushed, 0u);
  }
  // Purges of the first tenants and writes to the last, while it drains.
  constexpr int kPurged = 10;
  for (int i = 0; i < kPurged; ++i) ASSERT_OK((*store)->PurgeTenant(Tenant(i)));
  for (int i = kTenants - 10; i < kTenants; ++i) {
    ASSERT_OK((*store)->PutCall(Tenant(i), testutil::MakeCall("d", kT0 + i, "later")));
  }
  const StoreStats st = WaitFor(**store, [](const StoreStats& s) {
    return s.memory.recovered_memtables_pending == 0;
  });
  EXPECT_EQ(st.memory.recovered_memtables_pending, 0u);
  EXPECT_LE(st.memory.recovered_memtables_flushed, uint64_t{kTenants});
  for (int i = 0; i < kPurged; ++i) {
    EXPECT_CODE((*store)->GetCall(Tenant(i), "c"), Code::kTenantPurged);
  }
  ExpectCalls(**store, kTenants, kPurged);
  ASSERT_OK((*store)->Close());
  store = Store::Open(Opts(), db_);
  ASSERT_OK(store);
  ExpectCalls(**store, kTenants, kPurged);
  for (int i = kTenants - 10; i < kTenants; ++i) ASSERT_OK((*store)->GetCall(Tenant(i), "d"));
  auto verify = (*store)->Verify();
  ASSERT_OK(verify);
  EXPECT_TRUE(verify->ok());
}

}  // namespace
}  // namespace callvault
