// docs/operations.md, "A tenant is damaged", through the callvault binary
// (decision 0020): a flipped byte in one tenant's table file, found by the
// read-only `verify`, is known to every command after it: `stats` and
// `tenant show` name the tenant, `tenant accept-damage` works (it is not
// "tenant is not damaged"), `audit list` has the tenant_damaged and
// damage_accepted events. On the old code verify printed DAMAGED and exited
// 76, and everything after it behaved as if nothing had been found.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>

#include "callvault/store.h"
#include "tests/damage/damage_util.h"
#include "tests/testutil/process.h"
#include "tests/testutil/testutil.h"

namespace callvault {
namespace {

namespace fs = std::filesystem;
using testutil::MakeCall;
using testutil::TestStore;

using Outcome = testutil::ProcessOutcome;

// A real second process: the callvault binary, stdin /dev/null.
Outcome Cli(const TestStore& s, std::vector<std::string> args) {
  std::vector<std::string> argv = {CALLVAULT_BIN, "--db", s.db, "--keys", s.keys};
  argv.insert(argv.end(), args.begin(), args.end());
  return testutil::RunProcess(argv, s.tmp.path());
}

bool Has(const std::string& text, const std::string& what) { return text.find(what) != std::string::npos; }

TEST(CliDamage, TableDamageFoundByVerifyFollowsTheOperatorPath) {
  TestStore s;
  ASSERT_OK(s.Open());
  ASSERT_OK(s->CreateTenant({"acme", "", 0}));
  ASSERT_OK(s->CreateTenant({"bravo", "", 0}));
  for (int i = 0; i < 20; ++i) {
    ASSERT_OK(s->PutCall("acme", MakeCall("a" + std::to_string(i), 1700000000000000 + i, std::string(200, 'm'))));
    ASSERT_OK(s->PutCall("bravo", MakeCall("b" + std::to_string(i), 1700000000000000 + i)));
  }
  ASSERT_OK(s->Flush());
  const std::string cf = s->DescribeTenant("acme")->column_family;
  const std::string shard = s.db + "/shards/" + [&] {
    char b[8];
    std::snprintf(b, sizeof b, "%04u", s->DescribeTenant("acme")->shard);
    return std::string(b);
  }();
  s.Close();
  const auto ssts = damage::FamilySsts(shard, cf);
  ASSERT_FALSE(ssts.empty());
  damage::XorByte(ssts.back(), 1000);  // the first data block: acme's call rows

  // Before verify: nothing has read the block yet.
  Outcome o = Cli(s, {"stats"});
  EXPECT_EQ(o.exit, 0) << o.err;
  EXPECT_FALSE(Has(o.out, "DAMAGED")) << o.out;

  o = Cli(s, {"verify"});
  EXPECT_EQ(o.exit, 76) << o.out << o.err;
  EXPECT_TRUE(Has(o.out, "DAMAGED  tenant acme")) << o.out;
  EXPECT_FALSE(Has(o.out, "tenant bravo:")) << o.out;

  // Read-only commands after it name the tenant.
  o = Cli(s, {"stats"});
  EXPECT_EQ(o.exit, 0) << o.err;
  EXPECT_TRUE(Has(o.out, "DAMAGED  tenant acme")) << o.out;
  o = Cli(s, {"tenant", "show", "acme"});
  EXPECT_TRUE(Has(o.out, "(damaged)")) << o.out << o.err;
  o = Cli(s, {"tenant", "show", "bravo"});
  EXPECT_EQ(o.exit, 0) << o.err;
  EXPECT_FALSE(Has(o.out, "(damaged)")) << o.out;
  // Retention skips the damaged tenant loudly: reported, exit 76.
  o = Cli(s, {"retention", "run"});
  EXPECT_EQ(o.exit, 76) << o.out << o.err;
  EXPECT_TRUE(Has(o.out, "tenants_damaged")) << o.out;
  EXPECT_TRUE(Has(o.err, "retention skipped 1 damaged tenant(s) (acme)")) << o.err;
  o = Cli(s, {"call", "get", "bravo", "b3"});
  EXPECT_EQ(o.exit, 0) << o.err;

  // The operator accepts the loss: the writable open records the damage
  // (a tenant_damaged event), then the acceptance.
  o = Cli(s, {"tenant", "accept-damage", "acme"});
  EXPECT_EQ(o.exit, 0) << o.out << o.err;
  o = Cli(s, {"audit", "list", "--kind", "tenant_damaged"});
  EXPECT_EQ(o.exit, 0) << o.err;
  EXPECT_TRUE(Has(o.out, "acme")) << o.out;
  o = Cli(s, {"audit", "list", "--kind", "damage_accepted"});
  EXPECT_TRUE(Has(o.out, "acme")) << o.out;
  o = Cli(s, {"tenant", "show", "acme"});
  EXPECT_EQ(o.exit, 0) << o.err;
  EXPECT_FALSE(Has(o.out, "(damaged)")) << o.out;
  // Accepted once: a second accept is refused, nothing is left over.
  o = Cli(s, {"tenant", "accept-damage", "acme"});
  EXPECT_EQ(o.exit, 78) << o.out << o.err;
  EXPECT_TRUE(!fs::exists(s.db + "/damage-reports") || fs::is_empty(s.db + "/damage-reports"));

  // Purge works too (the other way out): the damage comes back at the next
  // verify (the block is still bad), and the purge takes the tenant.
  o = Cli(s, {"verify"});
  EXPECT_EQ(o.exit, 76);
  o = Cli(s, {"tenant", "purge", "acme", "--yes"});
  EXPECT_EQ(o.exit, 0) << o.out << o.err;
  o = Cli(s, {"verify"});
  EXPECT_EQ(o.exit, 0) << o.out << o.err;
  std::printf("[cli_damage] verify -> stats -> show -> accept-damage -> audit -> purge: ok\n");
}

}  // namespace
}  // namespace callvault
