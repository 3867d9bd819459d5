// Attack 13 (session 11): tenant key rotation (docs/decisions/0036) under an
// attacker and a 3 a.m. operator. "After a purge nothing of that tenant can
// be read, and nothing acknowledged is ever lost"; bad input gets a specific
// error and changes nothing; damage is loud and contained to one tenant.
//
// - A copy of the store taken before a rotation, with the current keys:
//   nothing of the tenant reads, its row keys share no blind hash with the
//   rotated family, the retired KEK is gone.
// - A copy of the key directory taken before the rotation: a clean refusal.
// - Registry values forged by someone holding the store's keys (a raw
//   RocksDB write, as `ldb` would do it) whose rotation fields name the
//   tenant's live family and key, or another tenant's: recovery must not
//   drop a live family or shred a live key.
// - Rotate then purge, rotate with holds/pins/erasures then backup, restore
//   and the tombstone log replayed; concurrent rotations, purges, backups.
// - A full disk in the middle of the copy: nothing lost, one key.
#include <filesystem>
#include <map>
#include <set>
#include <thread>

#include "callvault/store.h"
#include "engine/calls_internal.h"
#include "engine/codec.h"
#include "engine/keyring.h"
#include "engine/record.h"
#include "format/rowkey.h"
#include "tests/testutil/fault_fs.h"
#include "tests/testutil/raw_shard.h"
#include "tests/testutil/testutil.h"
#include "workload/workload.h"

namespace callvault {
namespace {

using testutil::MakeCall;
using testutil::RawShard;
using testutil::TestStore;

constexpr int64_t kT0 = 1'767'225'600'000'000;

std::string CallId(int i) { return "call-" + std::to_string(i); }

void PutCalls(Store* st, const std::string& tenant, int n) {
  for (int i = 0; i < n; ++i) {
    ASSERT_OK(st->PutCall(tenant, MakeCall(CallId(i), kT0 + i * 1'000'000, tenant + "-m" +
                                                                               std::to_string(i))));
  }
}

// Every call of the tenant reads back with its marker.
void ExpectCalls(Store* st, const std::string& tenant, int n) {
  for (int i = 0; i < n; ++i) {
    auto c = st->GetCall(tenant, CallId(i), kPartAll);
    ASSERT_OK(c);
    EXPECT_EQ(c->title, MakeCall(CallId(i), kT0, tenant + "-m" + std::to_string(i)).title);
  }
  auto n_now = st->CountCalls(tenant);
  ASSERT_OK(n_now);
  EXPECT_EQ(*n_now, uint64_t(n));
}

void ExpectChainVerifies(Store* s) {
  auto receipts = s->ListReceipts();
  ASSERT_OK(receipts);
  auto pk = s->SigningPublicKey();
  ASSERT_OK(pk);
  EXPECT_OK(VerifyReceiptChain(*receipts, *pk));
}

// The keyring a closed store's key directory holds now (its newest
// generation), unsealed as the store does it.
Result<Keyring> CurrentKeyring(const std::string& keys) {
  CV_ASSIGN_OR_RETURN(auto kp, NewFileKeyProvider(keys, {.create_if_missing = false}));
  CV_ASSIGN_OR_RETURN(auto gens, kp->ListKeyrings());
  if (gens.empty()) return Status::NotFound("no keyring");
  CV_ASSIGN_OR_RETURN(std::string bytes, kp->ReadKeyring(gens.back()));
  return Keyring::Unseal(kp.get(), bytes);
}

// Every (internal id, version) any keyring generation still in the key
// directory opens to (a generation whose KEK was destroyed opens to none).
std::set<std::pair<uint64_t, uint32_t>> EveryReadableDek(const std::string& keys) {
  std::set<std::pair<uint64_t, uint32_t>> out;
  auto kp = NewFileKeyProvider(keys, {.create_if_missing = false});
  EXPECT_OK(kp);
  if (!kp.ok()) return out;
  auto gens = (*kp)->ListKeyrings();
  EXPECT_OK(gens);
  if (!gens.ok()) return out;
  for (uint64_t g : *gens) {
    auto bytes = (*kp)->ReadKeyring(g);
    if (!bytes.ok()) continue;
    auto k = Keyring::Unseal(kp->get(), *bytes);
    if (!k.ok()) continue;
    for (const auto& [id, dek] : k->deks) out.insert(id);
  }
  return out;
}

// Rewrites `tenant`'s registry record in the closed store `db` with raw
// RocksDB, sealed with the store's key from `keys`: what an insider holding
// both directories can do with `ldb`.
void ForgeRegistry(const std::string& db, const std::string& keys, const std::string& tenant,
                   const std::function<void(codec::TenantRecord*)>& edit) {
  auto ring = CurrentKeyring(keys);
  ASSERT_OK(ring);
  RawShard meta(db + "/meta", /*read_only=*/false);
  ASSERT_TRUE(meta.status().ok()) << meta.status().ToString();
  bool found = false;
  for (auto& [k, v] : meta.Scan("default")) {
    if (k.empty() || k[0] != format::kRegistryPrefix) continue;
    std::string plain;
    ASSERT_OK(record::Open(ring->store_data_key, record::Binding{}, k, v, &plain));
    codec::TenantRecord rec;
    ASSERT_OK(codec::DecodeTenant(plain, &rec));
    if (rec.tenant_id != tenant) continue;
    edit(&rec);
    meta.Put("default", k,
             record::Seal(ring->store_data_key, record::Binding{}, k, codec::EncodeTenant(rec)));
    found = true;
  }
  ASSERT_TRUE(found) << tenant;
}

codec::TenantRecord ReadRegistry(const std::string& db, const std::string& keys,
                                 const std::string& tenant) {
  codec::TenantRecord out;
  auto ring = CurrentKeyring(keys);
  EXPECT_OK(ring);
  if (!ring.ok()) return out;
  RawShard meta(db + "/meta", /*read_only=*/true);
  EXPECT_TRUE(meta.status().ok()) << meta.status().ToString();
  for (auto& [k, v] : meta.Scan("default")) {
    if (k.empty() || k[0] != format::kRegistryPrefix) continue;
    std::string plain;
    EXPECT_OK(record::Open(ring->store_data_key, record::Binding{}, k, v, &plain));
    codec::TenantRecord rec;
    EXPECT_OK(codec::DecodeTenant(plain, &rec));
    if (rec.tenant_id == tenant) out = rec;
  }
  return out;
}

std::set<std::string> Families(const std::string& shard_path) {
  std::vector<std::string> names;
  auto s = testutil::ListLiveColumnFamilies(shard_path, &names);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return {names.begin(), names.end()};
}

class Attack13 : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK(ts.Open());
    for (const char* t : {"acme", "other"}) ASSERT_OK(ts->CreateTenant({.tenant_id = t}));
    PutCalls(ts.store.get(), "acme", kCalls);
    PutCalls(ts.store.get(), "other", kCalls);
  }

  // After recovery of a forged record: nothing of either tenant destroyed.
  // `acme` may be quarantined (then reinstated by the operator) but its
  // key and family must still be there.
  void ExpectNothingDestroyed() {
    auto st = ts.store.get();
    ExpectCalls(st, "other", kCalls);
    auto g = st->GetCall("acme", CallId(1));
    if (!g.ok()) {
      EXPECT_CODE(g, Code::kCorruption);  // quarantined, loudly
      ASSERT_OK(st->ReinstateTenant("acme"));
    }
    ExpectCalls(st, "acme", kCalls);
  }

  // Deletes the tenant's registry row with raw RocksDB (store closed).
  void DeleteRegistryRow(const std::string& tenant);
  // The orphan key of a rotated tenant whose calls are under a legal hold:
  // seen with its data and hold, not destroyed.
  void CheckOrphan(uint64_t internal_id, const std::string& column_family);

  static constexpr int kCalls = 30;
  TestStore ts;
};

// ---------------------------------------------------------------------------
// Forged registry values.

// COPYING whose copy is the tenant's own live family and key: rolling that
// "copy" back drops the live family and removes the live key.
TEST_F(Attack13, ForgedCopyingNamingTheLiveFamilyDestroysNothing) {
  ASSERT_OK(ts->RotateTenantKey("acme"));  // family 1, key version 2
  ts.Close();
  ForgeRegistry(ts.db, ts.keys, "acme", [](codec::TenantRecord* r) {
    r->rotation_state = codec::kRotationCopying;
    r->rotation_family = r->family;
    r->rotation_cf_generation = r->cf_generation;
    r->rotation_key_version = r->key_version;
  });
  ASSERT_OK(ts.Open());
  ExpectNothingDestroyed();
}

// SHREDDING whose "old" key and family are the live ones: finishing it
// shreds the live key and drops the live family.
TEST_F(Attack13, ForgedShreddingNamingTheLiveKeyDestroysNothing) {
  ts.Close();
  ForgeRegistry(ts.db, ts.keys, "acme", [](codec::TenantRecord* r) {
    r->rotation_state = codec::kRotationShredding;
    r->rotation_family = r->family;
    r->rotation_cf_generation = r->cf_generation;
    r->rotation_key_version = r->key_version;
  });
  ASSERT_OK(ts.Open());
  ExpectNothingDestroyed();
}

// A shard move's SHREDDING (decision 0057) naming a shard the store does
// not have as the old family's: finishing it would fail the whole open
// (the old family's shard is not open). The record is a contradiction:
// quarantined, nothing destroyed, the store opens. A quarantined tenant is
// not moved.
TEST_F(Attack13, ForgedShardMoveNamingNoShardDestroysNothing) {
  ASSERT_OK(ts->RotateTenantKey("acme"));  // family 1, key version 2
  ts.Close();
  ForgeRegistry(ts.db, ts.keys, "acme", [](codec::TenantRecord* r) {
    r->rotation_state = codec::kRotationShredding;
    r->rotation_family = r->family - 1;
    r->rotation_cf_generation = 1;
    r->rotation_key_version = r->key_version - 1;
    r->rotation_shard = 9;
  });
  ASSERT_OK(ts.Open());
  EXPECT_CODE(ts->MoveTenantToShard("acme", 0), Code::kCorruption);
  ExpectNothingDestroyed();
}

// A tenant held for a move to another store (fenced) is not moved between
// shards: refused, nothing changed.
TEST_F(Attack13, AFencedTenantIsNotMovedBetweenShards) {
  ts.Close();
  ForgeRegistry(ts.db, ts.keys, "acme", [](codec::TenantRecord* r) {
    r->move_state = codec::kMoveFenced;
    r->move_id = std::string(32, 'a');
    r->move_peer = std::string(32, 'b');
  });
  ASSERT_OK(ts.Open());
  // Refused as held for a move before the target shard is looked at.
  EXPECT_CODE(ts->MoveTenantToShard("acme", 1), Code::kFailedPrecondition);
  EXPECT_EQ(ts->DescribeTenant("acme")->shard, 0u);
  EXPECT_EQ(ts->DescribeTenant("acme")->key_version, 1u);
}

// SHREDDING with only the key version pointing at the live one (the family
// a stale one): the live key must not be shredded.
TEST_F(Attack13, ForgedShreddingNamingOnlyTheLiveKeyVersionDestroysNothing) {
  ASSERT_OK(ts->RotateTenantKey("acme"));  // family 1, key version 2
  ts.Close();
  ForgeRegistry(ts.db, ts.keys, "acme", [](codec::TenantRecord* r) {
    r->rotation_state = codec::kRotationShredding;
    r->rotation_family = 0;  // gone already
    r->rotation_key_version = r->key_version;
  });
  ASSERT_OK(ts.Open());
  ExpectNothingDestroyed();
}

// The CREATING value of a tenant's create, put back after the tenant was
// rotated, with the audit trail's rows deleted too (all but the newest,
// which the open reads: raw RocksDB, no keys). Recovery may roll a create back only when the tenant's family
// holds no row; it looked only at "t<id>", gone since the rotation, so it
// found nothing, rolled the "create" back and removed the live key.
TEST_F(Attack13, ReplayedCreatingOfARotatedTenantDestroysNothing) {
  ASSERT_OK(ts->RotateTenantKey("acme"));
  ts.Close();
  ForgeRegistry(ts.db, ts.keys, "acme", [](codec::TenantRecord* r) {
    r->state = TenantState::kCreating;  // as the create wrote it first
    r->family = 0;
    r->key_version = 1;
  });
  {
    RawShard meta(ts.db + "/meta", /*read_only=*/false);
    ASSERT_TRUE(meta.status().ok()) << meta.status().ToString();
    auto keys = meta.Keys("default", std::string(1, format::kAuditPrefix));
    ASSERT_GT(keys.size(), 2u);
    keys.pop_back();  // the open reads the newest one
    for (auto& k : keys) meta.Delete("default", k);
  }
  ASSERT_OK(ts.Open());
  ExpectCalls(ts.store.get(), "other", kCalls);
  ts.Close();
  // Whatever the open did with acme, its key and rotated family are there.
  auto info_id = ReadRegistry(ts.db, ts.keys, "acme").internal_id;
  int versions = 0;
  for (const auto& k : EveryReadableDek(ts.keys)) versions += k.first == info_id;
  EXPECT_EQ(versions, 1);
  EXPECT_EQ(Families(ts.db + "/shards/0000").count(format::ColumnFamilyName(info_id, 1)), 1u);
}

// The PURGING value of a purge begun before the rotation (as recover_test's
// ReplayedPurgingRespectsLegalHolds), put back after the rotation and after
// a legal hold was placed: the hold must be honoured. The record names
// family "t<id>", gone; recovery skipped the hold check (no family to look
// in) and finished the purge, shredding the rotated tenant's key.
TEST_F(Attack13, ReplayedPurgingOfARotatedTenantRespectsItsHold) {
  ASSERT_OK(ts->RotateTenantKey("acme"));
  ASSERT_OK(ts->PlaceHold("acme", {.hold_id = "lit", .reason = "court", .call_id = CallId(4)}));
  ts.Close();
  ForgeRegistry(ts.db, ts.keys, "acme", [](codec::TenantRecord* r) {
    r->state = TenantState::kPurging;  // as a purge begun before the rotation wrote it
    r->family = 0;
    r->key_version = 1;
    r->holds.clear();
  });
  ASSERT_OK(ts.Open());
  ExpectCalls(ts.store.get(), "other", kCalls);
  EXPECT_CODE(ts->GetCall("acme", CallId(4)), Code::kCorruption);  // quarantined, loudly
  ts.Close();
  auto id = ReadRegistry(ts.db, ts.keys, "acme").internal_id;
  int versions = 0;
  for (const auto& k : EveryReadableDek(ts.keys)) versions += k.first == id;
  EXPECT_EQ(versions, 1);
  EXPECT_EQ(Families(ts.db + "/shards/0000").count(format::ColumnFamilyName(id, 1)), 1u);
}

// A rotation version the keyring does not hold, and an out-of-range state:
// refused or quarantined, nothing else touched.
TEST_F(Attack13, ForgedVersionNotInTheKeyringAndBadState) {
  ts.Close();
  ForgeRegistry(ts.db, ts.keys, "acme", [](codec::TenantRecord* r) {
    r->rotation_state = codec::kRotationCopying;
    r->rotation_family = 77;
    r->rotation_key_version = 99;
  });
  ASSERT_OK(ts.Open());
  ExpectNothingDestroyed();
  ts.Close();
  ForgeRegistry(ts.db, ts.keys, "acme", [](codec::TenantRecord* r) { r->rotation_state = 7; });
  // Out-of-range state: the registry row does not decode; the open says so.
  auto st = Store::Open([&] {
    Options o = ts.options;
    o.create_if_missing = false;
    return o;
  }(), ts.db);
  EXPECT_FALSE(st.ok());
  if (!st.ok()) {
    EXPECT_EQ(st.status().code(), Code::kCorruption) << st.status().ToString();
  }
}

// acme's record forged to carry `other`'s internal id, in a SHREDDING state
// whose "old" family is other's live family: finishing it drops other's
// family. Damage must stay with the forged tenant.
TEST_F(Attack13, ForgedShreddingNamingAnotherTenantsFamilyDestroysNothing) {
  ASSERT_OK(ts->RotateTenantKey("other"));  // other: family 1, key version 2
  ts.Close();
  const codec::TenantRecord other = ReadRegistry(ts.db, ts.keys, "other");
  ASSERT_EQ(other.family, 1u);
  ASSERT_EQ(other.key_version, 2u);
  ForgeRegistry(ts.db, ts.keys, "acme", [&](codec::TenantRecord* r) {
    r->internal_id = other.internal_id;
    r->shard = other.shard;
    r->family = other.family + 1;
    r->key_version = other.key_version;
    r->rotation_state = codec::kRotationShredding;
    r->rotation_family = other.family;  // other's live family
    r->rotation_key_version = other.key_version - 1;
  });
  ASSERT_OK(ts.Open());
  // `other` may be quarantined (its id is claimed twice), never emptied.
  auto g = ts->GetCall("other", CallId(1));
  if (!g.ok()) {
    EXPECT_CODE(g, Code::kCorruption);
    ASSERT_OK(ts->ReinstateTenant("other"));
  }
  ExpectCalls(ts.store.get(), "other", kCalls);
}

// A rotated tenant's registry row deleted with raw RocksDB (someone who can
// write the store directory, no keys): its key becomes an "orphan key".
// `keys reconcile` must then refuse, as for any tenant, to destroy a key
// whose family still holds data (without --with-data) or a legal hold.
// Before the fix it looked only at family "t<id>", not at the rotated
// "t<id>r<n>", found no data and no hold, and shredded the key.
TEST_F(Attack13, ReconcileSeesTheRotatedFamilyOfAnOrphanKey) {
  ASSERT_OK(ts->PlaceHold("acme", {.hold_id = "lit", .reason = "court", .call_id = CallId(4)}));
  ASSERT_OK(ts->RotateTenantKey("acme"));
  auto info = ts->DescribeTenant("acme");
  ASSERT_OK(info);
  ts.Close();
  DeleteRegistryRow("acme");
  ASSERT_OK(ts.Open());
  CheckOrphan(info->internal_id, info->column_family);
}

// The same without a hold: refused without --with-data; with it, the key
// and every family of the id are gone, with a receipt naming the family.
TEST_F(Attack13, ReconcileDestroysARotatedOrphanOnlyWithData) {
  ASSERT_OK(ts->RotateTenantKey("acme"));
  auto info = ts->DescribeTenant("acme");
  ASSERT_OK(info);
  ts.Close();
  DeleteRegistryRow("acme");
  ASSERT_OK(ts.Open());
  EXPECT_CODE(ts->ReconcileKeys(false), Code::kFailedPrecondition);
  auto done = ts->ReconcileKeys(false, {info->internal_id});
  ASSERT_OK(done);
  ASSERT_EQ(done->receipts.size(), 1u);
  EXPECT_EQ(done->receipts[0].column_family, info->column_family);
  EXPECT_GT(done->receipts[0].records, uint64_t{kCalls});
  ExpectCalls(ts.store.get(), "other", kCalls);
  ExpectChainVerifies(ts.store.get());
  ts.Close();
  for (const auto& f : Families(ts.db + "/shards/0000")) {
    EXPECT_NE(format::ParseColumnFamilyName(f), std::optional<uint64_t>(info->internal_id)) << f;
  }
  for (const auto& k : EveryReadableDek(ts.keys)) EXPECT_NE(k.first, info->internal_id);
}

void Attack13::DeleteRegistryRow(const std::string& tenant) {
  auto ring = CurrentKeyring(ts.keys);
  ASSERT_OK(ring);
  RawShard meta(ts.db + "/meta", /*read_only=*/false);
  ASSERT_TRUE(meta.status().ok()) << meta.status().ToString();
  std::string row;
  for (auto& [k, v] : meta.Scan("default")) {
    if (k.empty() || k[0] != format::kRegistryPrefix) continue;
    std::string plain;
    ASSERT_OK(record::Open(ring->store_data_key, record::Binding{}, k, v, &plain));
    codec::TenantRecord rec;
    ASSERT_OK(codec::DecodeTenant(plain, &rec));
    if (rec.tenant_id == tenant) row = k;
  }
  ASSERT_FALSE(row.empty());
  meta.Delete("default", row);
}

void Attack13::CheckOrphan(uint64_t internal_id, const std::string& column_family) {
  auto dry = ts->ReconcileKeys(/*dry_run=*/true);
  ASSERT_OK(dry);
  ASSERT_EQ(dry->orphan_keys.size(), 1u);
  EXPECT_EQ(dry->orphan_keys[0].internal_id, internal_id);
  EXPECT_TRUE(dry->orphan_keys[0].has_column_family);
  EXPECT_TRUE(dry->orphan_keys[0].has_rows);
  EXPECT_TRUE(dry->orphan_keys[0].call_holds);
  EXPECT_EQ(dry->orphan_keys[0].column_family, column_family);
  // Refused: a legal hold covers a call there; even with --with-data.
  EXPECT_CODE(ts->ReconcileKeys(false), Code::kFailedPrecondition);
  EXPECT_CODE(ts->ReconcileKeys(false, {internal_id}), Code::kFailedPrecondition);
  ts.Close();
  int versions = 0;
  for (const auto& k : EveryReadableDek(ts.keys)) versions += k.first == internal_id;
  EXPECT_EQ(versions, 1);
}

// ---------------------------------------------------------------------------
// Copies taken before the rotation.

TEST_F(Attack13, StoreCopyFromBeforeTheRotationLeaksNothing) {
  ASSERT_OK(ts->PlaceHold("acme", {.hold_id = "h1", .reason = "r", .call_id = CallId(2)}));
  ASSERT_OK(ts->SetCallPinned("acme", CallId(3), true));
  auto w = ts->CreateRecording("acme", CallId(1), {.recording_id = "rec", .content_type = "a/b"});
  ASSERT_OK(w);
  ASSERT_OK((*w)->Append(workload::RandomBytes(5, 5000)));
  ASSERT_OK((*w)->Finish());
  auto info = ts->DescribeTenant("acme");
  ASSERT_OK(info);
  ts.Close();
  testutil::TempDir copy;
  testutil::CopyTree(ts.db, copy.Sub("db"));
  ASSERT_OK(ts.Open());
  auto receipt = ts->RotateTenantKey("acme");
  ASSERT_OK(receipt);
  auto after = ts->DescribeTenant("acme");
  ASSERT_OK(after);
  ts.Close();

  // The retired KEK file is gone; no keyring generation left opens DEK v1.
  ASSERT_NE(receipt->kek_generation_retired, 0u);
  EXPECT_FALSE(std::filesystem::exists(ts.keys + "/KEK-" +
                                       std::to_string(receipt->kek_generation_retired)));
  auto deks = EveryReadableDek(ts.keys);
  EXPECT_EQ(deks.count({info->internal_id, 1u}), 0u);
  EXPECT_EQ(deks.count({info->internal_id, 2u}), 1u);

  // No row key of the old family (blind hashes under the old index
  // subkey) appears in the new one: the old hashes test nothing there.
  std::set<std::string> old_keys, new_keys;
  {
    RawShard s(copy.Sub("db") + "/shards/0000", true);
    ASSERT_TRUE(s.status().ok()) << s.status().ToString();
    for (auto& [k, v] : s.Scan(info->column_family)) old_keys.insert(k);
  }
  {
    RawShard s(ts.db + "/shards/0000", true);
    ASSERT_TRUE(s.status().ok()) << s.status().ToString();
    EXPECT_EQ(s.cf(info->column_family), nullptr);  // dropped
    for (auto& [k, v] : s.Scan(after->column_family)) new_keys.insert(k);
  }
  ASSERT_GT(old_keys.size(), size_t{kCalls});
  ASSERT_GT(new_keys.size(), size_t{kCalls});
  size_t shared_hashed = 0;
  for (const auto& k : old_keys) {
    // Dictionaries, the version counter and the change feed keep their
    // keys (ids and sequences, no blind hash).
    if (k[0] == format::kDictionaryPrefix || k[0] == format::kVersionCounterPrefix ||
        k[0] == format::kChangePrefix) {
      continue;
    }
    shared_hashed += new_keys.count(k);
  }
  EXPECT_EQ(shared_hashed, 0u);

  // The copy opened with the current keys: every read of acme refused.
  Options o = ts.options;
  o.create_if_missing = false;
  auto old = Store::Open(o, copy.Sub("db"));
  ASSERT_OK(old);
  Store* s = old->get();
  EXPECT_FALSE(s->GetCall("acme", CallId(1)).ok());
  EXPECT_FALSE(s->ListCalls("acme", ListQuery{}).ok());
  EXPECT_FALSE(s->CountCalls("acme").ok());
  EXPECT_FALSE(s->ListHolds("acme").ok());
  EXPECT_FALSE(s->ReadChanges("acme", "", 10).ok());
  EXPECT_FALSE(s->ListRecordings("acme", CallId(1)).ok());
  EXPECT_FALSE(s->FindReferences("acme", "alice@example.com").ok());
  EXPECT_FALSE(s->ReadRecording("acme", CallId(1), "rec", 0, 100, [](std::string_view) {
                   return Status::OK();
                 }).ok());
  ExpectCalls(s, "other", kCalls);
  auto v = s->Verify();
  ASSERT_OK(v);
}

// The key directory as it was before the rotation, with the current store:
// a clean refusal (the store has seen a newer keyring), never a crash.
TEST_F(Attack13, KeyDirectoryFromBeforeTheRotationIsRefused) {
  ts.Close();
  testutil::TempDir old_keys;
  testutil::CopyTree(ts.keys, old_keys.Sub("keys"));
  std::filesystem::permissions(old_keys.Sub("keys"), std::filesystem::perms::owner_all,
                               std::filesystem::perm_options::replace);
  ASSERT_OK(ts.Open());
  ASSERT_OK(ts->RotateTenantKey("acme"));
  ts.Close();
  Options o = testutil::DefaultOptions(old_keys.Sub("keys"));
  o.create_if_missing = false;
  auto st = Store::Open(o, ts.db);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.status().code(), Code::kKeyError) << st.status().ToString();
  // And the store is still fine with its own keys.
  ASSERT_OK(ts.Open());
  ExpectCalls(ts.store.get(), "acme", kCalls);
}

// ---------------------------------------------------------------------------
// Sequences.

TEST_F(Attack13, RotateTwiceThenPurgeLeavesNoKeyAndNoFamily) {
  auto info = ts->DescribeTenant("acme");
  ASSERT_OK(info);
  ASSERT_OK(ts->RotateTenantKey("acme"));
  ASSERT_OK(ts->RotateTenantKey("acme"));
  EXPECT_EQ(ts->DescribeTenant("acme")->column_family,
            format::ColumnFamilyName(info->internal_id, 2));
  auto p = ts->PurgeTenant("acme");
  ASSERT_OK(p);
  EXPECT_EQ(p->key_versions_destroyed, std::vector<uint32_t>{3});
  ExpectChainVerifies(ts.store.get());
  ExpectCalls(ts.store.get(), "other", kCalls);
  ts.Close();
  for (const auto& id : EveryReadableDek(ts.keys)) EXPECT_NE(id.first, info->internal_id);
  for (const auto& f : Families(ts.db + "/shards/0000")) {
    EXPECT_NE(format::ParseColumnFamilyName(f), std::optional<uint64_t>(info->internal_id)) << f;
  }
  ASSERT_OK(ts.Open());
  EXPECT_CODE(ts->GetCall("acme", CallId(1)), Code::kTenantPurged);
  ExpectChainVerifies(ts.store.get());
}

// Erasures before the rotation; a backup after it; more removals after the
// backup (logged in the tombstone log under the new index subkey); restore:
// the later removals are re-applied, the earlier ones stay applied, holds
// and pins are kept.
TEST_F(Attack13, RotateBackupRestoreReplaysTombstonesUnderTheNewKey) {
  ASSERT_OK(ts->DeleteCall("acme", CallId(0)));
  Call bob = MakeCall("bob-1", kT0 + 99, "bob");
  Participant eve;
  eve.name = "Eve";
  eve.email = "eve@victim.example";
  bob.participants = {eve};
  ASSERT_OK(ts->PutCall("acme", bob));
  Call bob2 = MakeCall("bob-2", kT0 + 98, "bob");
  ASSERT_OK(ts->PutCall("acme", bob2));
  auto e1 = ts->Erase("acme", {.subject = "eve@victim.example", .mode = EraseMode::kDelete});
  ASSERT_OK(e1);
  EXPECT_EQ(e1->changed, 1u);
  Call held = MakeCall("held", kT0 + 97, "held");
  Participant carol;
  carol.name = "Carol";
  carol.email = "carol@example.com";
  held.participants = {carol};
  ASSERT_OK(ts->PutCall("acme", held));
  ASSERT_OK(ts->PlaceHold("acme", {.hold_id = "h1", .reason = "r", .call_id = "held"}));
  ASSERT_OK(ts->SetCallPinned("acme", CallId(3), true));
  ASSERT_OK(ts->RotateTenantKey("acme"));
  testutil::TempDir backups;
  ASSERT_OK(ts->Backup(backups.Sub("b")));
  // After the cut.
  ASSERT_OK(ts->DeleteCall("acme", CallId(5)));
  auto e2 = ts->Erase("acme", {.subject = "bob@customer.example", .mode = EraseMode::kRedact});
  ASSERT_OK(e2);
  EXPECT_GT(e2->changed, 0u);
  ts.Close();

  testutil::TempDir restored;
  Options o = ts.options;
  o.create_if_missing = false;
  auto report = Store::Restore(o, backups.Sub("b"), restored.Sub("db"));
  ASSERT_OK(report);
  EXPECT_GE(report->tombstones_replayed, 1u);
  EXPECT_GE(report->redactions_replayed, 1u);
  auto st = Store::Open(o, restored.Sub("db"));
  ASSERT_OK(st);
  Store* s = st->get();
  EXPECT_CODE(s->GetCall("acme", CallId(0)), Code::kNotFound);
  EXPECT_CODE(s->GetCall("acme", "bob-1"), Code::kNotFound);
  EXPECT_CODE(s->GetCall("acme", CallId(5)), Code::kNotFound);  // replayed
  auto refs = s->FindReferences("acme", "bob@customer.example");
  ASSERT_OK(refs);
  EXPECT_TRUE(refs->empty());
  EXPECT_OK(s->GetCall("acme", "held"));
  auto holds = s->ListHolds("acme");
  ASSERT_OK(holds);
  EXPECT_EQ(holds->size(), 1u);
  EXPECT_OK(s->GetCall("acme", CallId(3)));
  ExpectChainVerifies(s);
}

// Pins and call holds are keyed by the call's blind hash: after two
// rotations they still protect their calls from retention (the rest goes).
TEST_F(Attack13, PinsAndHoldsStillProtectAfterTwoRotations) {
  ASSERT_OK(ts->SetCallPinned("acme", CallId(3), true));
  ASSERT_OK(ts->PlaceHold("acme", {.hold_id = "h2", .reason = "r", .call_id = CallId(2)}));
  ASSERT_OK(ts->SetRetention("acme", 1));
  ASSERT_OK(ts->RotateTenantKey("acme"));
  ASSERT_OK(ts->RotateTenantKey("acme"));
  ASSERT_OK(ts.Reopen());
  auto rep = ts->RunRetention(kT0 + 400LL * 86'400'000'000);
  ASSERT_OK(rep);
  EXPECT_EQ(rep->calls_kept_pinned, 1u);
  EXPECT_EQ(rep->calls_kept_held, 1u);
  EXPECT_OK(ts->GetCall("acme", CallId(2)));
  EXPECT_OK(ts->GetCall("acme", CallId(3)));
  EXPECT_CODE(ts->GetCall("acme", CallId(1)), Code::kNotFound);
  EXPECT_EQ(*ts->CountCalls("acme"), 2u);
  ExpectChainVerifies(ts.store.get());
}

// Recordings written in chunk format 1 (secretstream) come back whole after
// the rotation (rewritten as format 2 under the new recording key), and
// verify finds nothing wrong.
TEST_F(Attack13, Format1RecordingsSurviveTheRotation) {
  calls::SetRecordingWriteFormatForTest(1);
  struct Reset {
    ~Reset() { calls::SetRecordingWriteFormatForTest(2); }
  } reset;
  const std::string a = workload::RandomBytes(21, 2 * kRecordingChunkBytes + 99);
  const std::string b = workload::RandomBytes(22, 5000);
  for (auto [id, data] : {std::pair<std::string, std::string>{"r-a", a}, {"r-b", b}}) {
    auto w = ts->CreateRecording("acme", CallId(1), {.recording_id = id, .content_type = "a/b"});
    ASSERT_OK(w);
    for (size_t i = 0; i < data.size(); i += 700000) {
      ASSERT_OK((*w)->Append(std::string_view(data).substr(i, 700000)));
    }
    ASSERT_OK((*w)->Finish());
  }
  calls::SetRecordingWriteFormatForTest(2);
  ASSERT_OK(ts->RotateTenantKey("acme"));
  ASSERT_OK(ts.Reopen());
  for (const auto& [id, data] : std::map<std::string, std::string>{{"r-a", a}, {"r-b", b}}) {
    std::string got;
    ASSERT_OK(ts->ReadRecording("acme", CallId(1), id, 0, UINT64_MAX, [&](std::string_view x) {
      got.append(x);
      return Status::OK();
    }));
    EXPECT_EQ(got, data) << id;
  }
  auto v = ts->Verify("acme");
  ASSERT_OK(v);
  EXPECT_TRUE(v->failures.empty()) << v->failures.front();
}

// Two rotations of one tenant at once, a purge of another, a backup: each
// either runs whole or is refused; nothing acknowledged is lost.
TEST_F(Attack13, ConcurrentRotationsPurgeAndBackup) {
  ASSERT_OK(ts->CreateTenant({.tenant_id = "third"}));
  PutCalls(ts.store.get(), "third", 5);
  Result<Receipt> r1 = Status::Internal("not run"), r2 = r1, r3 = r1, p = r1;
  Result<BackupInfo> b = Status::Internal("not run");
  testutil::TempDir backups;
  {
    std::thread t1([&] { r1 = ts->RotateTenantKey("acme"); });
    std::thread t2([&] { r2 = ts->RotateTenantKey("acme"); });
    std::thread t3([&] { r3 = ts->RotateTenantKey("third"); });
    std::thread t4([&] { p = ts->PurgeTenant("third"); });
    std::thread t5([&] { b = ts->Backup(backups.Sub("b")); });
    for (auto* t : {&t1, &t2, &t3, &t4, &t5}) t->join();
  }
  ASSERT_OK(r1);
  ASSERT_OK(r2);
  ASSERT_OK(p);
  ASSERT_OK(b);
  if (!r3.ok()) {
    EXPECT_CODE(r3, Code::kTenantPurged);
  }
  EXPECT_EQ(ts->DescribeTenant("acme")->key_version, 3u);
  ExpectCalls(ts.store.get(), "acme", kCalls);
  ExpectCalls(ts.store.get(), "other", kCalls);
  ExpectChainVerifies(ts.store.get());
  ts.Close();
  ASSERT_OK(ts.Open());
  ExpectCalls(ts.store.get(), "acme", kCalls);
  EXPECT_CODE(ts->GetCall("third", CallId(1)), Code::kTenantPurged);
  ts.Close();
  // The backup restores: whatever its cut, other whole; acme whole (cut
  // after both rotations) or refused as rotated since (kCorruption).
  testutil::TempDir restored;
  Options o = ts.options;
  o.create_if_missing = false;
  ASSERT_OK(Store::Restore(o, backups.Sub("b"), restored.Sub("db")));
  auto st = Store::Open(o, restored.Sub("db"));
  ASSERT_OK(st);
  ExpectCalls(st->get(), "other", kCalls);
  auto g = (*st)->GetCall("acme", CallId(1));
  if (g.ok()) {
    ExpectCalls(st->get(), "acme", kCalls);
  } else {
    EXPECT_CODE(g, Code::kCorruption);
  }
  ExpectChainVerifies(st->get());
}

// A recording read that spans a rotation: its names and stream key came
// from the old key, so its next chunk is not in the copy. Before the fix the
// read failed with kCorruption "recording chunk 1 is missing" and an
// auth_failure (tampering) audit event: a false alarm of lost data. Now it
// fails with kFailedPrecondition saying what happened; a new read works.
TEST_F(Attack13, ReadingARecordingAcrossARotationIsNoFalseAlarm) {
  const std::string data = workload::RandomBytes(9, 3 * kRecordingChunkBytes + 17);
  auto w = ts->CreateRecording("acme", CallId(1), {.recording_id = "big", .content_type = "a/b"});
  ASSERT_OK(w);
  for (size_t i = 0; i < data.size(); i += 700000) {
    ASSERT_OK((*w)->Append(std::string_view(data).substr(i, 700000)));
  }
  ASSERT_OK((*w)->Finish());
  std::thread rot;
  Result<Receipt> r = Status::Internal("not run");
  int chunks = 0;
  std::string got;
  Status s = ts->ReadRecording("acme", CallId(1), "big", 0, UINT64_MAX, [&](std::string_view b) {
    got.append(b);
    if (chunks++ == 0) {
      rot = std::thread([&] { r = ts->RotateTenantKey("acme"); });
      std::this_thread::sleep_for(std::chrono::milliseconds(200));  // the rotation waits
    }
    return Status::OK();
  });
  rot.join();
  ASSERT_OK(r);
  if (s.ok()) {
    EXPECT_EQ(got, data);
  } else {
    EXPECT_EQ(s.code(), Code::kFailedPrecondition) << s.ToString();
  }
  auto ev = ts->ListAudit(0, "auth_failure");
  ASSERT_OK(ev);
  for (const auto& e : *ev) ADD_FAILURE() << "false alarm: " << e.detail;
  std::string again;
  ASSERT_OK(ts->ReadRecording("acme", CallId(1), "big", 0, UINT64_MAX, [&](std::string_view b) {
    again.append(b);
    return Status::OK();
  }));
  EXPECT_EQ(again, data);
}

// ---------------------------------------------------------------------------
// A full disk (or an I/O error) in the middle of the copy: the rotation
// fails with a specific error, everything acknowledged reads back, before
// and after a reopen, under exactly one key version.
TEST(Attack13Faults, DiskFullMidCopyLosesNothing) {
  int mid_copy = 0;  // trials whose fault hit after the copy had started
  for (uint64_t nth : {1, 3, 8, 12, 16, 20, 25, 30, 40}) {
    SCOPED_TRACE("write " + std::to_string(nth));
    testutil::TempDir dir;
    const std::string db = dir.Sub("db"), keys = dir.Sub("keys");
    auto ffs = std::make_shared<testutil::FaultFS>(nth);
    auto env = testutil::FaultEnv(ffs);
    auto kp = NewFileKeyProvider(keys, {.create_if_missing = true, .env = env.get()});
    ASSERT_OK(kp);
    Options o = testutil::DefaultOptions(*kp);
    o.env = env.get();
    o.create_if_missing = true;
    uint64_t copied = 0;
    o.progress = [&](const Progress& p) {
      if (std::string_view(p.operation) == "rotate" && !p.finished) copied = p.done;
    };
    uint64_t id = 0;
    {
      auto st = Store::Open(o, db);
      ASSERT_OK(st);
      Store* s = st->get();
      for (const char* t : {"acme", "other"}) ASSERT_OK(s->CreateTenant({.tenant_id = t}));
      // Large transcripts: the copy needs several batches and WAL writes.
      for (int i = 0; i < 600; ++i) {
        Call c = MakeCall(CallId(i), kT0 + i, "acme-m" + std::to_string(i));
        ASSERT_OK(s->PutCall("acme", c));
      }
      PutCalls(s, "other", 10);
      id = s->DescribeTenant("acme")->internal_id;
      ffs->Inject({.kinds = testutil::kOpWrite | testutil::kOpSync, .nth = nth, .forever = true,
                   .no_space = true});
      auto r = s->RotateTenantKey("acme");
      ffs->Lift();
      // (A count past the rotation's writes lets it finish: fine too.)
      if (!r.ok() && copied > 0) ++mid_copy;
      // Served as before, in this process.
      for (int i = 0; i < 600; i += 37) {
        auto c = s->GetCall("acme", CallId(i));
        if (c.ok()) {
          EXPECT_EQ(c->call_id, CallId(i));
        }
      }
    }
    // Reopened without faults: every call there, under one key version.
    Options clean = testutil::DefaultOptions(keys);
    clean.create_if_missing = false;
    auto st = Store::Open(clean, db);
    ASSERT_OK(st);
    Store* s = st->get();
    auto n = s->CountCalls("acme");
    ASSERT_OK(n);
    EXPECT_EQ(*n, 600u);
    for (int i = 0; i < 600; i += 7) {
      auto c = s->GetCall("acme", CallId(i), kPartAll);
      ASSERT_OK(c);
      EXPECT_EQ(c->title, MakeCall(CallId(i), kT0 + i, "acme-m" + std::to_string(i)).title);
    }
    ExpectCalls(s, "other", 10);
    auto info = s->DescribeTenant("acme");
    ASSERT_OK(info);
    st->reset();
    int versions = 0;
    for (const auto& k : EveryReadableDek(keys)) versions += k.first == id;
    EXPECT_EQ(versions, 1);
    // The rotation can be run again, and it works.
    auto again = Store::Open(clean, db);
    ASSERT_OK(again);
    ASSERT_OK((*again)->RotateTenantKey("acme"));
    EXPECT_EQ(*(*again)->CountCalls("acme"), 600u);
  }
  EXPECT_GE(mid_copy, 2);
}

// The key directory fails (full, read-only) after the copy switched: the
// rotation returns the error. Someone who can write the store directory (no
// keys) then puts back the registry value the rotation wrote at its start
// (COPYING, found in old WAL or table files): recovery, which finds both key
// versions in the keyring, "undoes" the rotation and drops the copy. Before
// the fix the tenant was served from its copy after the failure, so a write
// acknowledged then was lost with it. Now the tenant takes no operation
// until the reopen (which finishes the rotation, or undoes it with nothing
// lost), and an honest reopen keeps everything.
TEST(Attack13Faults, ReplayedCopyingAfterAFailedShredLosesNoAcknowledgedWrite) {
  testutil::TempDir dir;
  const std::string db = dir.Sub("db"), keys = dir.Sub("keys");
  auto ffs = std::make_shared<testutil::FaultFS>(1);
  auto env = testutil::FaultEnv(ffs);
  auto kp = NewFileKeyProvider(keys, {.create_if_missing = true, .env = env.get()});
  ASSERT_OK(kp);
  Options o = testutil::DefaultOptions(*kp);
  std::map<std::string, std::string> before, copying;
  bool armed = false;
  bool acked = false;
  auto registry = [&] {
    std::map<std::string, std::string> out;
    RawShard meta(db + "/meta", /*read_only=*/true);
    EXPECT_TRUE(meta.status().ok()) << meta.status().ToString();
    for (auto& [k, v] : meta.Scan("default")) {
      if (!k.empty() && k[0] == format::kRegistryPrefix) out.emplace(k, v);
    }
    return out;
  };
  o.progress = [&](const Progress& p) {
    if (std::string_view(p.operation) != "rotate" || p.done == 0 || armed) return;
    armed = true;
    copying = registry();  // the COPYING value, as old files keep it
    ffs->Inject({.kinds = testutil::kOpMutating, .nth = 1, .forever = true});
  };
  {
    auto st = Store::Open(o, db);
    ASSERT_OK(st);
    Store* s = st->get();
    for (const char* t : {"acme", "other"}) ASSERT_OK(s->CreateTenant({.tenant_id = t}));
    PutCalls(s, "acme", 600);
    before = registry();
    auto r = s->RotateTenantKey("acme");
    ffs->Lift();
    ASSERT_TRUE(armed);
    ASSERT_FALSE(r.ok());
    // Held for writes until the next open finishes the rotation; reads
    // are served (every row is in the copy).
    auto put = s->PutCall("acme", MakeCall("after-switch", kT0, "acked"));
    acked = put.ok();
    EXPECT_CODE(put, Code::kFailedPrecondition);
    EXPECT_OK(s->GetCall("acme", CallId(1)));
    EXPECT_CODE(s->DeleteCall("acme", CallId(2)), Code::kFailedPrecondition);
    EXPECT_CODE(s->RotateTenantKey("acme"), Code::kFailedPrecondition);
    ExpectCalls(s, "other", 0);
  }
  std::string key, value;
  for (auto& [k, v] : copying) {
    auto it = before.find(k);
    if (it == before.end() || it->second != v) key = k, value = v;
  }
  ASSERT_FALSE(key.empty());
  testutil::TempDir attacked;
  testutil::CopyTree(db, attacked.Sub("db"));
  testutil::CopyTree(keys, attacked.Sub("keys"));
  std::filesystem::permissions(attacked.Sub("keys"), std::filesystem::perms::owner_all,
                               std::filesystem::perm_options::replace);
  // Honest reopen: the rotation finishes, the write is there.
  {
    Options clean = testutil::DefaultOptions(keys);
    clean.create_if_missing = false;
    auto st = Store::Open(clean, db);
    ASSERT_OK(st);
    if (acked) {
      EXPECT_OK((*st)->GetCall("acme", "after-switch"));
    }
    EXPECT_EQ(*(*st)->CountCalls("acme"), 600u + (acked ? 1 : 0));
    EXPECT_EQ((*st)->DescribeTenant("acme")->key_version, 2u);
    ExpectChainVerifies(st->get());
  }
  // The replayed COPYING value.
  {
    RawShard meta(attacked.Sub("db") + "/meta", /*read_only=*/false);
    ASSERT_TRUE(meta.status().ok()) << meta.status().ToString();
    meta.Put("default", key, value);
  }
  Options clean = testutil::DefaultOptions(attacked.Sub("keys"));
  clean.create_if_missing = false;
  auto st = Store::Open(clean, attacked.Sub("db"));
  ASSERT_OK(st);
  auto g = (*st)->GetCall("acme", CallId(1));
  if (!g.ok() && g.status().code() == Code::kCorruption) {
    ASSERT_OK((*st)->ReinstateTenant("acme"));  // quarantined, loudly: acceptable
  }
  // Everything acknowledged is there.
  if (acked) {
    EXPECT_OK((*st)->GetCall("acme", "after-switch"));
  }
  for (int i = 0; i < 600; i += 11) EXPECT_OK((*st)->GetCall("acme", CallId(i)));
}

}  // namespace
}  // namespace callvault
