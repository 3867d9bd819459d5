// Damage reports (docs/decisions/0020): what a read-only open finds in a
// tenant's table files is left for the writer as a sealed file in
// <store>/damage-reports/, which every open applies; a live writer picks it
// up without reopening; a forged report marks nothing; a report that
// cannot be written is said by Verify.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "callvault/store.h"
#include "tests/testutil/fault_fs.h"
#include "tests/damage/damage_util.h"
#include "tests/testutil/testutil.h"

namespace callvault {
namespace {

namespace fs = std::filesystem;
using testutil::MakeCall;
using testutil::TestStore;

constexpr int64_t kT0 = 1700000000000000;

struct Reports : ::testing::Test {
  TestStore s;
  std::string reports() const { return s.db + "/damage-reports"; }
  size_t ReportCount() const {
    if (!fs::exists(reports())) return 0;
    return static_cast<size_t>(std::distance(fs::directory_iterator(reports()), fs::directory_iterator()));
  }
  // acme and bravo in shard 0, 20 calls each, flushed; then one byte of
  // acme's table file's first data block flipped (the store closed).
  void SetUp() override {
    ASSERT_OK(s.Open());
    ASSERT_OK(s->CreateTenant({"acme", "", 0}));
    ASSERT_OK(s->CreateTenant({"bravo", "", 0}));
    for (int i = 0; i < 20; ++i) {
      ASSERT_OK(s->PutCall("acme", MakeCall("a" + std::to_string(i), kT0 + i, std::string(200, 'm'))));
      ASSERT_OK(s->PutCall("bravo", MakeCall("b" + std::to_string(i), kT0 + i)));
    }
    ASSERT_OK(s->Flush());
    const std::string cf = s->DescribeTenant("acme")->column_family;
    s.Close();
    const std::string shard = s.db + "/shards/0000";
    const auto ssts = damage::FamilySsts(shard, cf);
    ASSERT_FALSE(ssts.empty());
    damage::XorByte(ssts.back(), 1000);
    s.options.create_if_missing = false;
  }
  std::unique_ptr<Store> OpenReadOnly(rocksdb::Env* env = nullptr) {
    Options o = s.options;
    o.read_only = true;
    if (env != nullptr) {
      auto kp = NewFileKeyProvider(s.keys, {.create_if_missing = false, .env = env});
      EXPECT_OK(kp);
      if (!kp.ok()) return nullptr;
      o.key_provider = *kp;
      o.env = env;
    }
    auto st = Store::Open(o, s.db);
    EXPECT_OK(st);
    return st.ok() ? std::move(*st) : nullptr;
  }
};

// A read-only open that finds nothing writes nothing; one whose Verify meets
// the damage leaves one report, which the next read-only open applies in
// memory (and keeps), and the next writable open applies durably (a
// tenant_damaged event) and removes.
TEST_F(Reports, ReadOnlyFindingReachesTheNextOpens) {
  {
    auto ro = OpenReadOnly();
    ASSERT_NE(ro, nullptr);
    EXPECT_OK(ro->GetCall("bravo", "b1", kPartAll));
    EXPECT_FALSE(fs::exists(reports())) << "a read-only open that found nothing wrote";
    auto v = ro->Verify(std::nullopt);
    ASSERT_OK(v);
    ASSERT_EQ(v->damaged_tenants.size(), 1u);
    EXPECT_EQ(v->damaged_tenants[0].rfind("acme: ", 0), 0u) << v->damaged_tenants[0];
  }
  EXPECT_EQ(ReportCount(), 1u);
  {
    auto ro = OpenReadOnly();
    ASSERT_NE(ro, nullptr);
    EXPECT_TRUE(ro->DescribeTenant("acme")->damaged);
    EXPECT_FALSE(ro->DescribeTenant("bravo")->damaged);
    EXPECT_CODE(ro->GetCall("acme", "a1", kPartAll), Code::kCorruption);
    EXPECT_EQ(ro->Stats()->damaged_tenants.size(), 1u);
  }
  EXPECT_EQ(ReportCount(), 1u);
  ASSERT_OK(s.Open());
  EXPECT_TRUE(s->DescribeTenant("acme")->damaged);
  EXPECT_FALSE(s->DescribeTenant("bravo")->damaged);
  EXPECT_EQ(ReportCount(), 0u);
  auto ev = s->ListAudit(0, "tenant_damaged");
  ASSERT_OK(ev);
  ASSERT_EQ(ev->size(), 1u);
  EXPECT_EQ((*ev)[0].tenant_id, "acme");
  // Durable: after another reopen, without the report, still marked.
  ASSERT_OK(s.Reopen());
  EXPECT_TRUE(s->DescribeTenant("acme")->damaged);
  ASSERT_OK(s->AcceptTenantDamage("acme"));
  ASSERT_OK(s.Reopen());
  EXPECT_FALSE(s->DescribeTenant("acme")->damaged);
}

// A service holding the store open learns of damage that a read-only
// process (the CLI's verify) found, without reopening: at Stats, and at
// AcceptTenantDamage.
TEST_F(Reports, LiveWriterLearnsWithoutReopening) {
  ASSERT_OK(s.Open());
  EXPECT_FALSE(s->DescribeTenant("acme")->damaged);
  {
    auto ro = OpenReadOnly();
    ASSERT_NE(ro, nullptr);
    EXPECT_FALSE(ro->Verify(std::nullopt)->ok());
  }
  ASSERT_EQ(ReportCount(), 1u);
  auto st = s->Stats();
  ASSERT_OK(st);
  ASSERT_EQ(st->damaged_tenants.size(), 1u);
  EXPECT_TRUE(s->DescribeTenant("acme")->damaged);
  EXPECT_EQ(ReportCount(), 0u);
  // The same through AcceptTenantDamage alone.
  ASSERT_OK(s->AcceptTenantDamage("acme"));
  {
    auto ro = OpenReadOnly();
    ASSERT_NE(ro, nullptr);
    // A verify finds it again (a single read may miss the damaged block:
    // the row keys, and so their order, depend on the tenant's key).
    EXPECT_FALSE(ro->Verify(std::nullopt)->ok());
  }
  ASSERT_EQ(ReportCount(), 1u);
  EXPECT_OK(s->AcceptTenantDamage("acme"));
  EXPECT_EQ(ReportCount(), 0u);
  EXPECT_EQ(s->ListAudit(0, "damage_accepted")->size(), 2u);
}

// A report not sealed with this store's key (written by hand into the
// store directory) marks nothing: an auth_failure event, and the writer
// removes it. A report for a tenant purged since is dropped.
TEST_F(Reports, ForgedReportMarksNothingAndStaleOneIsDropped) {
  fs::create_directories(reports());
  {
    std::ofstream f(reports() + "/0123456789abcdef0123456789abcdef", std::ios::binary);
    f << std::string(64, '\x07');
  }
  ASSERT_OK(s.Open());
  EXPECT_FALSE(s->DescribeTenant("acme")->damaged);
  EXPECT_FALSE(s->DescribeTenant("bravo")->damaged);
  EXPECT_EQ(ReportCount(), 0u);
  auto ev = s->ListAudit(0, "auth_failure");
  ASSERT_OK(ev);
  ASSERT_EQ(ev->size(), 1u);
  EXPECT_NE((*ev)[0].detail.find("damage report"), std::string::npos) << (*ev)[0].detail;
  s.Close();
  {
    auto ro = OpenReadOnly();
    ASSERT_NE(ro, nullptr);
    EXPECT_FALSE(ro->Verify(std::nullopt)->ok());
  }
  ASSERT_EQ(ReportCount(), 1u);
  // Purged by a writer that never read the report (it opened before it).
  ASSERT_OK(s.Open());
  ASSERT_OK(s->PurgeTenant("acme"));
  ASSERT_OK(s.Reopen());
  EXPECT_EQ(ReportCount(), 0u);
  EXPECT_TRUE(s->Verify(std::nullopt)->ok());
}

// A read-only open that cannot write its report (every create fails: a
// read-only file system) says so in Verify, and the damage is still found
// by the writer's own verify.
TEST_F(Reports, UnwritableReportIsSaidByVerify) {
  auto ffs = std::make_shared<testutil::FaultFS>(1);
  auto env = testutil::FaultEnv(ffs);
  {
    ffs->Inject({.kinds = testutil::kOpCreate | testutil::kOpWrite | testutil::kOpRename,
                 .nth = 1, .forever = true});
    auto ro = OpenReadOnly(env.get());
    ASSERT_NE(ro, nullptr);
    auto v = ro->Verify(std::nullopt);
    ASSERT_OK(v);
    EXPECT_FALSE(v->ok());
    const bool said = std::any_of(v->failures.begin(), v->failures.end(), [](const std::string& f) {
      return f.find("damage not reported to the writer") != std::string::npos;
    });
    EXPECT_TRUE(said) << "verify did not say the damage was not reported";
    EXPECT_GT(ffs->injected(), 0u);
  }
  EXPECT_EQ(ReportCount(), 0u);
  ASSERT_OK(s.Open());
  EXPECT_FALSE(s->Verify(std::nullopt)->ok());
  EXPECT_TRUE(s->DescribeTenant("acme")->damaged);
  std::printf("[reports] read-only finding -> report -> writer: 4 paths checked\n");
}

}  // namespace
}  // namespace callvault
