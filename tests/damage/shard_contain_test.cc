// Decision 0034: damage that stops one shard from opening (its CURRENT or
// MANIFEST, as T5's Manifest mutations do) stops that shard's tenants only.
// Before it, Store::Open failed with kCorruption for every tenant of every
// shard (T5: 239 of 264 MANIFEST mutations refused the whole store).
//
// Two tenants in two shards (max_tenants_per_shard 1); shard 0's MANIFEST
// damaged by hand in a closed store. Then: the store opens (writable and
// read-only); the other shard's tenant reads and writes; the damaged
// shard's tenant answers kCorruption naming the shard; stats, tenant show
// and verify say so; a new tenant is created; backup is refused; accepting
// the damage is refused; a purge works (the key shredded) and stays done
// when the shard comes back; an untouched tenant comes back whole when the
// shard's files are restored.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "callvault/store.h"
#include "tests/damage/damage_util.h"
#include "tests/testutil/testutil.h"

namespace callvault {
namespace {

namespace fs = std::filesystem;
using testutil::MakeCall;
using testutil::TestStore;

constexpr int64_t kAt = 1700000000000000;

class ShardContain : public ::testing::Test {
 protected:
  void SetUp() override {
    s.options.max_tenants_per_shard = 1;
    ASSERT_OK(s.Open());
    for (const char* t : {"acme", "bravo", "carol"}) {
      TenantSpec spec;
      spec.tenant_id = t;
      ASSERT_OK(s->CreateTenant(spec));
      for (int i = 0; i < 5; ++i) {
        ASSERT_OK(s->PutCall(t, MakeCall(std::string(t) + std::to_string(i), kAt + i, "m")));
      }
    }
    ASSERT_OK(s->Flush());
    acme_shard = s->DescribeTenant("acme")->shard;
    ASSERT_NE(acme_shard, s->DescribeTenant("bravo")->shard);
    shard_dir = s.db + "/shards/" + fmt(acme_shard);
    s.Close();
  }
  static std::string fmt(uint32_t i) {
    char b[8];
    std::snprintf(b, sizeof b, "%04u", i);
    return b;
  }
  // A byte in the middle of the MANIFEST CURRENT names flipped (a bad
  // sector): a synced record fails its checksum and RocksDB refuses the
  // shard. (Cut in half instead, an appended MANIFEST reads as an older
  // state: the shard opens with its tenants marked damaged, decision 0067.)
  void DamageManifest() {
    std::string current = testutil::ReadFile(shard_dir + "/CURRENT");
    ASSERT_FALSE(current.empty());
    current.pop_back();  // '\n'
    const std::string manifest = shard_dir + "/" + current;
    ASSERT_TRUE(fs::exists(manifest)) << manifest;
    damage::XorByte(manifest, fs::file_size(manifest) / 2, 0x5a);
  }
  void ExpectContained(Store& st, bool writable) {
    auto a = st.GetCall("acme", "acme0");
    ASSERT_EQ(a.status().code(), Code::kCorruption) << a.status().ToString();
    EXPECT_NE(a.status().message().find("shard " + std::to_string(acme_shard)), std::string::npos)
        << a.status().message();
    EXPECT_EQ(a.status().message().find("acme"), std::string::npos) << "tenant id in a message";
    EXPECT_CODE(st.ListCalls("acme", ListQuery{}), Code::kCorruption);
    auto info = st.DescribeTenant("acme");
    ASSERT_OK(info);
    EXPECT_TRUE(info->damaged);
    for (const char* t : {"bravo", "carol"}) {
      for (int i = 0; i < 5; ++i) {
        auto c = st.GetCall(t, std::string(t) + std::to_string(i));
        ASSERT_OK(c);
        EXPECT_EQ(c->call_id, std::string(t) + std::to_string(i));
        EXPECT_EQ(c->started_at, kAt + i);
      }
      auto d = st.DescribeTenant(t);
      ASSERT_OK(d);
      EXPECT_FALSE(d->damaged);
    }
    auto stats = st.Stats();
    ASSERT_OK(stats);
    bool shown = false;
    for (const auto& sh : stats->shards) {
      if (sh.shard == acme_shard) shown = !sh.damage.empty();
      else EXPECT_TRUE(sh.damage.empty());
    }
    EXPECT_TRUE(shown) << "stats does not name the damaged shard";
    auto v = st.Verify();
    ASSERT_OK(v);
    EXPECT_FALSE(v->ok());
    bool named = false;
    for (const auto& f : v->failures) {
      named |= f.find("shard " + std::to_string(acme_shard)) != std::string::npos;
    }
    EXPECT_TRUE(named) << ::testing::PrintToString(v->failures);
    if (writable) {
      ASSERT_OK(st.PutCall("bravo", MakeCall("bravo9", kAt + 9, "n")));
      EXPECT_CODE(st.PutCall("acme", MakeCall("acme9", kAt + 9, "n")), Code::kCorruption);
    }
  }

  TestStore s;
  uint32_t acme_shard = 0;
  std::string shard_dir;
};

TEST_F(ShardContain, DamagedManifestStopsItsShardOnly) {
  const std::string pristine = s.tmp.Sub("pristine");
  testutil::CopyTree(shard_dir, pristine);
  DamageManifest();
  {  // read-only first: it changes nothing
    Options ro = s.options;
    ro.read_only = true;
    ro.create_if_missing = false;
    auto st = Store::Open(ro, s.db);
    ASSERT_OK(st);
    ExpectContained(**st, /*writable=*/false);
  }
  ASSERT_OK(s.Open());
  ExpectContained(*s.store, /*writable=*/true);
  // A new tenant goes to a shard that opens.
  TenantSpec dave;
  dave.tenant_id = "dave";
  auto created = s->CreateTenant(dave);
  ASSERT_OK(created);
  EXPECT_NE(created->shard, acme_shard);
  ASSERT_OK(s->PutCall("dave", MakeCall("dave0", kAt, "d")));
  // What needs the shard is refused with a reason.
  BackupOptions bo;
  EXPECT_CODE(s->Backup(s.tmp.Sub("backup"), bo), Code::kCorruption);
  EXPECT_CODE(s->AcceptTenantDamage("acme"), Code::kFailedPrecondition);
  s.Close();
  // The shard's files restored: every tenant whole again.
  fs::remove_all(shard_dir);
  testutil::CopyTree(pristine, shard_dir);
  ASSERT_OK(s.Open());
  for (const char* t : {"acme", "bravo", "carol"}) {
    for (int i = 0; i < 5; ++i) {
      EXPECT_TRUE(s->GetCall(t, std::string(t) + std::to_string(i)).ok()) << t << i;
    }
  }
  EXPECT_OK(s->GetCall("bravo", "bravo9"));
  EXPECT_OK(s->GetCall("dave", "dave0"));
  EXPECT_FALSE(s->DescribeTenant("acme")->damaged);
  auto v = s->Verify();
  ASSERT_OK(v);
  EXPECT_TRUE(v->ok()) << ::testing::PrintToString(v->failures);
}

TEST_F(ShardContain, PurgeOfADamagedShardsTenantShredsItsKeyAndStaysDone) {
  const std::string pristine = s.tmp.Sub("pristine");
  testutil::CopyTree(shard_dir, pristine);
  DamageManifest();
  ASSERT_OK(s.Open());
  auto receipt = s->PurgeTenant("acme");
  ASSERT_OK(receipt);
  EXPECT_NE(receipt->kek_generation_retired, 0u);
  // Its shard did not open: the receipt says the counts are unknown rather
  // than claiming nothing was destroyed, and says so in its signed form.
  EXPECT_TRUE(receipt->counts_unknown);
  EXPECT_EQ(receipt->records, 0u);
  EXPECT_NE(receipt->Canonical().find("\"counts_unknown\":true"), std::string::npos);
  EXPECT_CODE(s->GetCall("acme", "acme0"), Code::kTenantPurged);
  s.Close();
  // The shard restored (its files hold acme's family): acme stays purged,
  // its family is dropped at open (no key reads it), the others whole.
  fs::remove_all(shard_dir);
  testutil::CopyTree(pristine, shard_dir);
  ASSERT_OK(s.Open());
  EXPECT_CODE(s->GetCall("acme", "acme0"), Code::kTenantPurged);
  EXPECT_EQ(s->DescribeTenant("acme")->state, TenantState::kPurged);
  for (int i = 0; i < 5; ++i) EXPECT_OK(s->GetCall("bravo", "bravo" + std::to_string(i)));
  auto v = s->Verify();
  ASSERT_OK(v);
  EXPECT_TRUE(v->ok()) << ::testing::PrintToString(v->failures);
  auto receipts = s->ListReceipts();
  ASSERT_OK(receipts);
  ASSERT_EQ(receipts->size(), 1u);
  EXPECT_TRUE((*receipts)[0].counts_unknown);  // read back from the store
  auto pk = s->SigningPublicKey();
  ASSERT_OK(pk);
  EXPECT_OK(VerifyReceiptChain(*receipts, *pk));
  // The flag is signed: clearing it breaks the chain.
  (*receipts)[0].counts_unknown = false;
  EXPECT_FALSE(VerifyReceiptChain(*receipts, *pk).ok());
}

}  // namespace
}  // namespace callvault
