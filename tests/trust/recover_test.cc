// T9, recovery and the keyring (issue 10 items 3 and 4; decision 0012):
// someone who can write the store directory but holds no keys puts back old
// registry values or deletes registry rows with plain RocksDB; an operator
// puts back an older copy of the store. Recovery must destroy nothing that a
// live key still reads, report the contradiction as tampering, and every key
// no live tenant owns must be reported and destroyable with a receipt.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>

#include "callvault/store.h"
#include "format/rowkey.h"
#include "tests/testutil/raw_shard.h"
#include "tests/testutil/testutil.h"

namespace callvault {
namespace {

using testutil::RawShard;
using testutil::TestStore;

constexpr char kEnvDb[] = "CV_RECOVER_CHILD_DB";
constexpr char kEnvKeys[] = "CV_RECOVER_CHILD_KEYS";
constexpr char kEnvOp[] = "CV_RECOVER_CHILD_OP";
constexpr char kEnvTenant[] = "CV_RECOVER_CHILD_TENANT";

// The registry rows of a closed store's metadata instance, raw.
std::map<std::string, std::string> RegistryRows(const std::string& db) {
  RawShard meta(db + "/meta", /*read_only=*/true);
  EXPECT_TRUE(meta.status().ok()) << meta.status().ToString();
  std::map<std::string, std::string> out;
  for (auto& [k, v] : meta.Scan("default")) {
    if (!k.empty() && k[0] == format::kRegistryPrefix) out.emplace(k, v);
  }
  return out;
}

// Runs `op` ("create" or "purge") on `tenant` in a second process (this
// binary re-executed), SIGKILLed at `kill_point`.
void RunChildKilledAt(const std::string& db, const std::string& keys, const std::string& op,
                      const std::string& tenant, const std::string& kill_point) {
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    setenv(kEnvDb, db.c_str(), 1);
    setenv(kEnvKeys, keys.c_str(), 1);
    setenv(kEnvOp, op.c_str(), 1);
    setenv(kEnvTenant, tenant.c_str(), 1);
    setenv("CALLVAULT_KILL_POINT", kill_point.c_str(), 1);
    execl("/proc/self/exe", "/proc/self/exe", "--gtest_filter=RecoverChild.DISABLED_Run",
          "--gtest_also_run_disabled_tests", static_cast<char*>(nullptr));
    _exit(127);
  }
  int st = 0;
  ASSERT_EQ(waitpid(pid, &st, 0), pid);
  ASSERT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL) << "child status " << st;
}

// The registry value `op` leaves for `tenant` at `kill_point`, captured the
// way an attacker finds it in old SSTs or the WAL: the same operation run
// on a copy of the store and its keys (same keys, so the same sealed form
// and row key) in a process killed half way.
std::pair<std::string, std::string> CaptureRegistryValue(const TestStore& ts,
                                                         const std::string& op,
                                                         const std::string& tenant,
                                                         const std::string& kill_point) {
  const std::string db2 = ts.tmp.Sub("capture_db"), keys2 = ts.tmp.Sub("capture_keys");
  testutil::CopyTree(ts.db, db2);
  testutil::CopyTree(ts.keys, keys2);
  std::filesystem::permissions(keys2, std::filesystem::perms::owner_all,
                               std::filesystem::perm_options::replace);
  auto before = RegistryRows(db2);
  RunChildKilledAt(db2, keys2, op, tenant, kill_point);
  auto after = RegistryRows(db2);
  for (auto& [k, v] : after) {
    auto it = before.find(k);
    if (it == before.end() || it->second != v) return {k, v};
  }
  ADD_FAILURE() << "the child changed no registry row";
  return {};
}

void PutRaw(const std::string& db, const std::string& key, const std::string& value) {
  RawShard meta(db + "/meta", /*read_only=*/false);
  ASSERT_TRUE(meta.status().ok()) << meta.status().ToString();
  meta.Put("default", key, value);
}

void DeleteRaw(const std::string& db, const std::string& key) {
  RawShard meta(db + "/meta", /*read_only=*/false);
  ASSERT_TRUE(meta.status().ok()) << meta.status().ToString();
  meta.Delete("default", key);
}

// Deletes, with raw RocksDB, the one registry row that is not in `before`
// (a tenant created since): what someone who can write the store directory
// can do. The store must be closed.
void DeleteNewRegistryRow(const std::string& db, const std::map<std::string, std::string>& before) {
  std::string key;
  for (auto& [k, v] : RegistryRows(db)) {
    if (!before.count(k)) key = k;
  }
  ASSERT_FALSE(key.empty());
  DeleteRaw(db, key);
}

std::set<std::string> Families(const std::string& shard_path) {
  RawShard s(shard_path, /*read_only=*/true);
  EXPECT_TRUE(s.status().ok()) << s.status().ToString();
  auto v = s.Families();
  return {v.begin(), v.end()};
}

// Collects what the audit callback sees.
struct Seen {
  std::mutex mu;
  std::vector<AuditEvent> events;
  void Attach(Options* o) {
    o->audit_callback = [this](const AuditEvent& e) {
      std::lock_guard<std::mutex> l(mu);
      events.push_back(e);
    };
  }
  size_t Count(const std::string& kind, const std::string& needle = "") {
    std::lock_guard<std::mutex> l(mu);
    size_t n = 0;
    for (const auto& e : events) {
      if (e.kind == kind && e.detail.find(needle) != std::string::npos) ++n;
    }
    return n;
  }
};

size_t CountAudit(Store* s, const std::string& kind, const std::string& needle, int64_t since = 0) {
  auto ev = s->ListAudit(since, kind);
  EXPECT_OK(ev);
  if (!ev.ok()) return 0;
  size_t n = 0;
  for (const auto& e : *ev) n += e.detail.find(needle) != std::string::npos;
  return n;
}

void PutCalls(Store* s, const std::string& tenant, int n, const std::string& marker) {
  for (int i = 0; i < n; ++i) {
    ASSERT_OK(s->PutCall(tenant, testutil::MakeCall("c" + std::to_string(i),
                                                    1700000000000000 + i, marker)));
  }
}

void ExpectChainVerifies(Store* s) {
  auto receipts = s->ListReceipts();
  ASSERT_OK(receipts);
  auto pk = s->SigningPublicKey();
  ASSERT_OK(pk);
  EXPECT_OK(VerifyReceiptChain(*receipts, *pk));
}

// A replayed CREATING value of a tenant that holds calls: the old recovery
// "rolled back the create" (dropped the family, removed the key, no
// receipt, no event). Now: nothing destroyed, tampering reported, the
// tenant quarantined; the other tenant still served; reinstating it makes
// every call readable again.
TEST(RecoverTrust, ReplayedCreatingDestroysNothing) {
  TestStore ts;
  ASSERT_OK(ts.Open());
  ASSERT_OK(ts->CreateTenant({"other", "", 0}));
  PutCalls(ts.store.get(), "other", 2, "OTHER");
  ts.Close();
  auto [key, creating] =
      CaptureRegistryValue(ts, "create", "acme", "create.after_registry");
  ASSERT_FALSE(key.empty());

  ASSERT_OK(ts.Open());
  auto info = ts->CreateTenant({"acme", "", 0});
  ASSERT_OK(info);
  PutCalls(ts.store.get(), "acme", 5, "ACME");
  ts.Close();
  ASSERT_EQ(RegistryRows(ts.db).count(key), 1u);  // the same row the capture wrote
  PutRaw(ts.db, key, creating);

  Seen seen;
  seen.Attach(&ts.options);
  ASSERT_OK(ts.Open());  // the store opens and serves the other tenants
  auto got = ts->GetCall("acme", "c0", 0);
  EXPECT_CODE(got, Code::kCorruption);
  auto d = ts->DescribeTenant("acme");
  ASSERT_OK(d);
  EXPECT_TRUE(d->quarantined);
  EXPECT_OK(ts->GetCall("other", "c1", 0));
  EXPECT_GE(seen.Count("auth_failure", "tampering"), 1u);
  EXPECT_GE(CountAudit(ts.store.get(), "auth_failure", "create never finished"), 1u);
  EXPECT_EQ(CountAudit(ts.store.get(), "create_rolled_back", ""), 0u);
  auto st = ts->Stats();
  ASSERT_OK(st);
  EXPECT_EQ(st->quarantined_tenants, std::vector<std::string>{"acme"});
  EXPECT_TRUE(st->orphan_keys.empty());  // its record still owns its key
  auto v = ts->Verify();
  ASSERT_OK(v);
  EXPECT_EQ(v->quarantined_tenants, std::vector<std::string>{"acme"});

  // A reopen does not destroy it either.
  ASSERT_OK(ts.Reopen());
  EXPECT_CODE(ts->GetCall("acme", "c0", 0), Code::kCorruption);
  // The operator's decision: the tenant was live. Every call is back.
  ASSERT_OK(ts->ReinstateTenant("acme"));
  EXPECT_CODE(ts->ReinstateTenant("acme"), Code::kFailedPrecondition);
  for (int i = 0; i < 5; ++i) EXPECT_OK(ts->GetCall("acme", "c" + std::to_string(i), 0));
  ASSERT_OK(ts.Reopen());
  auto n = ts->CountCalls("acme");
  ASSERT_OK(n);
  EXPECT_EQ(*n, 5u);
  EXPECT_GE(CountAudit(ts.store.get(), "tenant_reinstated", ""), 1u);
}

// A replayed CREATING value of a live tenant that holds no row yet: the
// family is empty, but its creation was audited: quarantined, not undone.
TEST(RecoverTrust, ReplayedCreatingOfAnEmptyAuditedTenantIsNotRolledBack) {
  TestStore ts;
  ASSERT_OK(ts.Open());
  ts.Close();
  auto [key, creating] = CaptureRegistryValue(ts, "create", "acme", "create.after_registry");
  ASSERT_OK(ts.Open());
  ASSERT_OK(ts->CreateTenant({"acme", "", 0}));
  ts.Close();
  PutRaw(ts.db, key, creating);
  ASSERT_OK(ts.Open());
  auto d = ts->DescribeTenant("acme");
  ASSERT_OK(d);
  EXPECT_TRUE(d->quarantined);
  EXPECT_GE(CountAudit(ts.store.get(), "auth_failure", "creation was audited"), 1u);
  // Purging it is the other way out: a normal purge with its receipt.
  auto r = ts->PurgeTenant("acme");
  ASSERT_OK(r);
  EXPECT_EQ(r->kind, "tenant_purge");
  ExpectChainVerifies(ts.store.get());
}

// A legitimately interrupted create (killed after the keyring write and the
// family's creation) still rolls back, with an audit event.
TEST(RecoverTrust, CrashedCreateStillRollsBack) {
  TestStore ts;
  ASSERT_OK(ts.Open());
  ts.Close();
  RunChildKilledAt(ts.db, ts.keys, "create", "acme", "create.after_cf");
  ASSERT_OK(ts.Open());
  EXPECT_CODE(ts->DescribeTenant("acme"), Code::kNotFound);
  EXPECT_EQ(CountAudit(ts.store.get(), "create_rolled_back", "internal_id="), 1u);
  auto st = ts->Stats();
  ASSERT_OK(st);
  EXPECT_TRUE(st->orphan_keys.empty());
  EXPECT_TRUE(st->quarantined_tenants.empty());
  ASSERT_OK(ts->CreateTenant({"acme", "", 0}));
}

// A replayed PURGING value (from a purge begun before a legal hold was
// placed... on a copy) while the key is still there and a call hold now
// covers the tenant's data: the old recovery finished the purge, shredding
// held data. Now: quarantined, reported, the hold still blocks a purge.
TEST(RecoverTrust, ReplayedPurgingRespectsLegalHolds) {
  TestStore ts;
  ASSERT_OK(ts.Open());
  ASSERT_OK(ts->CreateTenant({"acme", "", 0}));
  PutCalls(ts.store.get(), "acme", 3, "ACME");
  ts.Close();
  auto [key, purging] = CaptureRegistryValue(ts, "purge", "acme", "purge.after_registry_purging");
  ASSERT_OK(ts.Open());
  Hold h;
  h.hold_id = "lit-1";
  h.reason = "litigation";
  h.call_id = "c1";
  ASSERT_OK(ts->PlaceHold("acme", h));
  ts.Close();
  PutRaw(ts.db, key, purging);
  ASSERT_OK(ts.Open());
  auto d = ts->DescribeTenant("acme");
  ASSERT_OK(d);
  EXPECT_NE(d->state, TenantState::kPurged);
  EXPECT_TRUE(d->quarantined);
  EXPECT_GE(CountAudit(ts.store.get(), "auth_failure", "legal hold"), 1u);
  EXPECT_CODE(ts->PurgeTenant("acme"), Code::kFailedPrecondition);
  ASSERT_OK(ts->ReinstateTenant("acme"));
  EXPECT_OK(ts->GetCall("acme", "c1", 0));
}

// A deleted registry row over a tenant with a call under a legal hold:
// reconcile refuses it even when the operator names it (the hold binds).
TEST(RecoverTrust, ReconcileRefusesAHeldOrphan) {
  TestStore ts;
  ASSERT_OK(ts.Open());
  auto rows_before = RegistryRows(ts.db);
  auto acme = ts->CreateTenant({"acme", "", 0});
  ASSERT_OK(acme);
  PutCalls(ts.store.get(), "acme", 2, "ACME");
  Hold h;
  h.hold_id = "lit-1";
  h.call_id = "c0";
  ASSERT_OK(ts->PlaceHold("acme", h));
  const std::string shard_path = ts->ShardPaths().at(acme->shard);
  ts.Close();
  ASSERT_NO_FATAL_FAILURE(DeleteNewRegistryRow(ts.db, rows_before));
  ASSERT_OK(ts.Open());
  auto dry = ts->ReconcileKeys(/*dry_run=*/true);
  ASSERT_OK(dry);
  ASSERT_EQ(dry->orphan_keys.size(), 1u);
  EXPECT_TRUE(dry->orphan_keys[0].call_holds);
  EXPECT_CODE(ts->ReconcileKeys(false, {acme->internal_id}), Code::kFailedPrecondition);
  auto st = ts->Stats();
  ASSERT_OK(st);
  EXPECT_EQ(st->orphan_keys.size(), 1u);
  ts.Close();
  EXPECT_TRUE(Families(shard_path).count(acme->column_family));  // nothing dropped
}

// A deleted registry row: the old recovery dropped the tenant's whole
// family as an orphan, silently. Now the family and its key stay, the
// contradiction is reported, and reconcile destroys them with a receipt.
TEST(RecoverTrust, DeletedRegistryRowKeepsDataUntilReconciled) {
  TestStore ts;
  ASSERT_OK(ts.Open());
  ASSERT_OK(ts->CreateTenant({"other", "", 0}));
  PutCalls(ts.store.get(), "other", 2, "OTHER");
  ts.Close();
  auto rows_before = RegistryRows(ts.db);
  ASSERT_OK(ts.Open());
  auto acme = ts->CreateTenant({"acme", "", 0});
  ASSERT_OK(acme);
  PutCalls(ts.store.get(), "acme", 4, "ACME");
  const std::string shard_path = ts->ShardPaths().at(acme->shard);
  ts.Close();
  ASSERT_NO_FATAL_FAILURE(DeleteNewRegistryRow(ts.db, rows_before));

  Seen seen;
  seen.Attach(&ts.options);
  ASSERT_OK(ts.Open());
  EXPECT_CODE(ts->DescribeTenant("acme"), Code::kNotFound);
  EXPECT_OK(ts->GetCall("other", "c0", 0));
  EXPECT_GE(seen.Count("auth_failure", acme->column_family), 1u);
  EXPECT_GE(seen.Count("orphan_key", "internal_id=" + std::to_string(acme->internal_id)), 1u);
  auto st = ts->Stats();
  ASSERT_OK(st);
  ASSERT_EQ(st->orphan_keys.size(), 1u);
  EXPECT_EQ(st->orphan_keys[0].internal_id, acme->internal_id);
  EXPECT_TRUE(st->orphan_keys[0].has_column_family);  // the data is still there
  auto v = ts->Verify();
  ASSERT_OK(v);
  EXPECT_EQ(v->orphan_keys.size(), 1u);
  ts.Close();
  EXPECT_TRUE(Families(shard_path).count(acme->column_family));

  ASSERT_OK(ts.Open());
  auto dry = ts->ReconcileKeys(/*dry_run=*/true);
  ASSERT_OK(dry);
  EXPECT_EQ(dry->orphan_keys.size(), 1u);
  EXPECT_TRUE(dry->receipts.empty());
  auto st1 = ts->Stats();
  ASSERT_OK(st1);
  const uint32_t kek_before = st1->kek_generation;
  EXPECT_EQ(st1->orphan_keys.size(), 1u);  // a dry run destroys nothing

  // Its family still holds data the key reads: not destroyed on the store
  // directory's word (a deleted row) without the operator naming it.
  ASSERT_TRUE(dry->orphan_keys[0].has_rows);
  EXPECT_FALSE(dry->orphan_keys[0].call_holds);
  auto refused = ts->ReconcileKeys(/*dry_run=*/false);
  EXPECT_CODE(refused, Code::kFailedPrecondition);
  EXPECT_NE(refused.status().message().find("--with-data"), std::string::npos);
  {
    auto again = ts->Stats();
    ASSERT_OK(again);
    EXPECT_EQ(again->kek_generation, kek_before);  // nothing shredded
    EXPECT_EQ(again->orphan_keys.size(), 1u);
  }

  auto done = ts->ReconcileKeys(/*dry_run=*/false, {acme->internal_id});
  ASSERT_OK(done);
  ASSERT_EQ(done->receipts.size(), 1u);
  const Receipt& r = done->receipts[0];
  EXPECT_EQ(r.kind, "orphan_key_destroyed");
  EXPECT_EQ(r.tenant_id, "");
  EXPECT_EQ(r.tenant_internal_id, acme->internal_id);
  EXPECT_EQ(r.column_family, acme->column_family);
  EXPECT_EQ(r.key_versions_destroyed, std::vector<uint32_t>{acme->key_version});
  EXPECT_EQ(r.kek_generation_retired, kek_before);
  EXPECT_GT(r.kek_generation_current, kek_before);
  EXPECT_GT(r.records, 0u);
  ExpectChainVerifies(ts.store.get());
  auto st2 = ts->Stats();
  ASSERT_OK(st2);
  EXPECT_TRUE(st2->orphan_keys.empty());
  EXPECT_OK(ts->GetCall("other", "c1", 0));
  ts.Close();
  EXPECT_FALSE(Families(shard_path).count(acme->column_family));
  // The retired KEK is gone from the key directory.
  auto kp = NewFileKeyProvider(ts.keys);
  ASSERT_OK(kp);
  auto keks = (*kp)->ListKeks();
  ASSERT_OK(keks);
  for (uint32_t g : *keks) EXPECT_NE(g, kek_before);
  ASSERT_OK(ts.Open());
  auto st3 = ts->Stats();
  ASSERT_OK(st3);
  EXPECT_TRUE(st3->orphan_keys.empty());
}

// ReconcileKeys killed after its key commit, before its receipts: the keys
// are destroyed (the safe direction); the next open drops the family, which
// no key reads any more, with an event, and reports no orphan.
TEST(RecoverTrust, ReconcileKilledAfterTheShredLeavesNothingReadable) {
  TestStore ts;
  ASSERT_OK(ts.Open());
  auto acme = ts->CreateTenant({"acme", "", 0});
  ASSERT_OK(acme);
  PutCalls(ts.store.get(), "acme", 2, "ACME");
  const std::string shard_path = ts->ShardPaths().at(acme->shard);
  ts.Close();
  auto rows = RegistryRows(ts.db);
  ASSERT_EQ(rows.size(), 1u);
  DeleteRaw(ts.db, rows.begin()->first);
  RunChildKilledAt(ts.db, ts.keys, "reconcile", "", "reconcile.after_shred");
  ASSERT_OK(ts.Open());
  auto st = ts->Stats();
  ASSERT_OK(st);
  EXPECT_TRUE(st->orphan_keys.empty());
  EXPECT_EQ(CountAudit(ts.store.get(), "orphan_family_dropped", acme->column_family), 1u);
  ts.Close();
  EXPECT_FALSE(Families(shard_path).count(acme->column_family));
}

// operations.md's restore: a copy of the store taken before tenant B was
// created is put back. B's key stays in the keyring (the key directory is
// not restored). Before: it stayed there forever, and the later copy of B
// stayed readable. Now: reported at open (audit, stats, verify), and
// reconcile destroys it with a receipt; the later copy of B is unreadable.
TEST(RecoverTrust, RestoreThenReconcile) {
  TestStore ts;
  ASSERT_OK(ts.Open());
  ASSERT_OK(ts->CreateTenant({"a", "", 0}));
  PutCalls(ts.store.get(), "a", 2, "AAA");
  ts.Close();
  const std::string old_copy = ts.tmp.Sub("old_copy"), later_copy = ts.tmp.Sub("later_copy");
  testutil::CopyTree(ts.db, old_copy);
  ASSERT_OK(ts.Open());
  auto b = ts->CreateTenant({"b", "", 0});
  ASSERT_OK(b);
  PutCalls(ts.store.get(), "b", 3, "BBB");
  ts.Close();
  testutil::CopyTree(ts.db, later_copy);
  std::filesystem::remove_all(ts.db);
  testutil::CopyTree(old_copy, ts.db);

  Seen seen;
  seen.Attach(&ts.options);
  ASSERT_OK(ts.Open());
  EXPECT_CODE(ts->DescribeTenant("b"), Code::kNotFound);
  EXPECT_EQ(seen.Count("orphan_key", "internal_id=" + std::to_string(b->internal_id)), 1u);
  auto st = ts->Stats();
  ASSERT_OK(st);
  ASSERT_EQ(st->orphan_keys.size(), 1u);
  EXPECT_EQ(st->orphan_keys[0].internal_id, b->internal_id);
  EXPECT_FALSE(st->orphan_keys[0].has_column_family);
  auto v = ts->Verify();
  ASSERT_OK(v);
  ASSERT_EQ(v->orphan_keys.size(), 1u);
  // A new tenant never reuses B's internal id.
  auto c = ts->CreateTenant({"c", "", 0});
  ASSERT_OK(c);
  EXPECT_GT(c->internal_id, b->internal_id);

  auto done = ts->ReconcileKeys(/*dry_run=*/false);
  ASSERT_OK(done);
  ASSERT_EQ(done->receipts.size(), 1u);
  EXPECT_EQ(done->receipts[0].kind, "orphan_key_destroyed");
  EXPECT_EQ(done->receipts[0].tenant_internal_id, b->internal_id);
  ExpectChainVerifies(ts.store.get());
  EXPECT_OK(ts->GetCall("a", "c0", 0));
  ts.Close();

  // The later copy, opened with today's keys: B's key is gone.
  Options o = ts.options;
  auto later = Store::Open(o, later_copy);
  ASSERT_OK(later);
  EXPECT_CODE((*later)->GetCall("b", "c0", 0), Code::kTenantPurged);
  auto bi = (*later)->DescribeTenant("b");
  ASSERT_OK(bi);
  EXPECT_EQ(bi->state, TenantState::kPurged);
}

// Child side of RunChildKilledAt: runs one operation; the armed kill point
// (CALLVAULT_KILL_POINT) ends the process half way.
TEST(RecoverChild, DISABLED_Run) {
  const char* db = std::getenv(kEnvDb);
  if (db == nullptr) GTEST_SKIP();
  Options o = testutil::DefaultOptions(std::getenv(kEnvKeys));
  o.create_if_missing = false;
  auto s = Store::Open(o, db);
  ASSERT_OK(s);
  const std::string op = std::getenv(kEnvOp), tenant = std::getenv(kEnvTenant);
  if (op == "create") {
    ASSERT_OK((*s)->CreateTenant({tenant, "", 0}));
  } else if (op == "reconcile") {
    auto dry = (*s)->ReconcileKeys(/*dry_run=*/true);
    ASSERT_OK(dry);
    std::vector<uint64_t> named;  // the operator names each one with data
    for (const auto& orphan : dry->orphan_keys) named.push_back(orphan.internal_id);
    ASSERT_OK((*s)->ReconcileKeys(/*dry_run=*/false, named));
  } else {
    ASSERT_OK((*s)->PurgeTenant(tenant));
  }
  FAIL() << "the kill point was not reached";
}

}  // namespace
}  // namespace callvault
