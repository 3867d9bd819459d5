// T9, issue 10 item 2: read-only opens (Options::read_only).
//
// - A read-only open beside a writer in another process (this binary run
//   again as ReadOnlyHelper.Writer: puts, flushes, creates and purges
//   tenants, so the keyring rotates under the reader) serves get, list,
//   count, verify, stats, receipts and audit, and sees every call the
//   writer acknowledged before the open; a second writable open is refused
//   with kFailedPrecondition; after the writer stops, every call it
//   acknowledged is there.
// - A read-only open leaves every file of the store directory and of the
//   key directory byte-identical (names, modes, bytes), through every read
//   and every refused write; each write returns kNotSupported.
// - A copy restored from before a purge (a tenant the registry calls
//   ACTIVE whose key is gone) is shown as it is, not rolled forward, and
//   the copy is left byte-identical.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "callvault/store.h"
#include "tests/testutil/testutil.h"
#include "tests/trust/trust_util.h"

namespace callvault {
namespace {

using trust::StoreOptions;
namespace fs = std::filesystem;

constexpr int64_t kT0 = 1'767'225'600'000'000;
constexpr int kBaseCalls = 12;

Call TestCall(const std::string& id, int i) {
  return testutil::MakeCall(id, kT0 + i * 1000, "marker-" + id);
}

// acme: kBaseCalls calls (some flushed, some only in the WAL) and a hold;
// gone: purged (a receipt, a KEK rotation, audit events).
void Prepare(const std::string& db, const std::string& keys) {
  auto store = Store::Open(StoreOptions(keys, false), db);
  ASSERT_OK(store);
  Store& s = **store;
  ASSERT_OK(s.CreateTenant({.tenant_id = "acme", .retention_days = 0}));
  ASSERT_OK(s.CreateTenant({.tenant_id = "gone", .retention_days = 0}));
  for (int i = 0; i < kBaseCalls; ++i) {
    ASSERT_OK(s.PutCall("acme", TestCall("base-" + std::to_string(i), i)));
    if (i == kBaseCalls / 2) ASSERT_OK(s.Flush());
  }
  ASSERT_OK(s.PutCall("gone", TestCall("g-1", 1)));
  ASSERT_OK(s.PurgeTenant("gone"));
  ASSERT_OK(s.PlaceHold("acme", Hold{.hold_id = "h1", .reason = "litigation", .call_id = "base-1"}));
}

// Every write API on a read-only store: kNotSupported, naming the mode.
void ExpectWritesRefused(Store& s) {
  auto refused = [](const Status& st, const char* what) {
    EXPECT_EQ(st.code(), Code::kNotSupported) << what << ": " << st.ToString();
    EXPECT_NE(st.message().find("store opened read-only"), std::string::npos) << what;
  };
  refused(s.CreateTenant({.tenant_id = "new"}).status(), "CreateTenant");
  refused(s.PurgeTenant("acme").status(), "PurgeTenant");
  refused(s.PutCall("acme", TestCall("ro-put", 1)).status(), "PutCall");
  refused(s.PutCalls("acme", {TestCall("ro-puts", 1)}).status(), "PutCalls");
  refused(s.DeleteCall("acme", "base-0"), "DeleteCall");
  refused(s.CreateRecording("acme", "base-0", RecordingSpec{}).status(), "CreateRecording");
  refused(s.DeleteRecording("acme", "base-0", "r1"), "DeleteRecording");
  refused(s.Erase("acme", EraseRequest{.subject = "alice@example.com"}).status(), "Erase");
  refused(s.ScheduleTenantPurge("acme", kT0), "ScheduleTenantPurge");
  refused(s.CancelTenantPurge("acme"), "CancelTenantPurge");
  refused(s.RunScheduledPurges(kT0).status(), "RunScheduledPurges");
  refused(s.SetRetention("acme", 30), "SetRetention");
  refused(s.SetWorkspaceRetention("acme", "ws-1", 30), "SetWorkspaceRetention");
  refused(s.SetCallPinned("acme", "base-0", true), "SetCallPinned");
  refused(s.RunRetention(kT0 * 2, false).status(), "RunRetention");
  refused(s.PlaceHold("acme", Hold{.hold_id = "h2", .reason = "x"}), "PlaceHold");
  refused(s.ReleaseHold("acme", "h1"), "ReleaseHold");
  refused(s.Flush(), "Flush");
  refused(s.CompactAll(), "CompactAll");
}

// The reads an operator runs; `expected` calls of acme must be readable.
void ExpectReadsServed(Store& s, const std::vector<std::string>& expected, size_t min_calls) {
  ASSERT_TRUE(s.read_only());
  auto tenants = s.ListTenants();
  ASSERT_OK(tenants);
  std::map<std::string, TenantState> states;
  for (const auto& t : *tenants) states[t.tenant_id] = t.state;
  EXPECT_EQ(states["acme"], TenantState::kActive);
  EXPECT_EQ(states["gone"], TenantState::kPurged);
  ASSERT_OK(s.DescribeTenant("acme"));
  for (const auto& id : expected) {
    auto c = s.GetCall("acme", id);
    ASSERT_OK(c);
    EXPECT_EQ(c->title, "Quarterly review marker-" + id);
  }
  EXPECT_CODE(s.GetCall("gone", "g-1"), Code::kTenantPurged);
  auto n = s.CountCalls("acme");
  ASSERT_OK(n);
  EXPECT_GE(*n, min_calls);
  std::set<std::string> listed;
  ListQuery q;
  q.limit = 100;
  for (;;) {
    auto page = s.ListCalls("acme", q);
    ASSERT_OK(page);
    for (const auto& c : page->calls) listed.insert(c.call_id);
    if (page->next_cursor.empty()) break;
    q.cursor = page->next_cursor;
  }
  for (const auto& id : expected) EXPECT_TRUE(listed.count(id)) << id;
  ASSERT_OK(s.GetTranscriptWindow("acme", "base-0", 0, 10000));
  auto refs = s.FindReferences("acme", "alice@example.com");
  ASSERT_OK(refs);
  EXPECT_GE(refs->size(), expected.size());
  auto report = s.Verify();
  ASSERT_OK(report);
  EXPECT_EQ(report->records_failed, 0u);
  EXPECT_GE(report->tenants, 1u);
  EXPECT_GT(report->records_ok, 0u);
  auto stats = s.Stats();
  ASSERT_OK(stats);
  EXPECT_GE(stats->receipts, 1u);
  auto receipts = s.ListReceipts();
  ASSERT_OK(receipts);
  EXPECT_GE(receipts->size(), 1u);
  auto key = s.SigningPublicKey();
  ASSERT_OK(key);
  EXPECT_OK(VerifyReceiptChain(*receipts, *key));
  auto audit = s.ListAudit();
  ASSERT_OK(audit);
  EXPECT_GE(audit->size(), 3u);
  EXPECT_OK(VerifyAuditChain(*audit));
  auto holds = s.ListHolds("acme");
  ASSERT_OK(holds);
  EXPECT_EQ(holds->size(), 1u);
  auto dry = s.Erase("acme", EraseRequest{.subject = "bob@customer.example", .dry_run = true,
                                          .max_calls = 1000000});
  ASSERT_OK(dry);
  EXPECT_GE(dry->matched, expected.size());
  ASSERT_OK(s.RunRetention(kT0 * 2, /*dry_run=*/true));
}

std::vector<std::string> BaseIds() {
  std::vector<std::string> v;
  for (int i = 0; i < kBaseCalls; ++i) v.push_back("base-" + std::to_string(i));
  return v;
}

TEST(ReadOnly, LeavesStoreAndKeyDirectoryByteIdentical) {
  testutil::TempDir tmp;
  const std::string db = tmp.Sub("db"), keys = tmp.Sub("keys");
  Prepare(db, keys);
  if (HasFatalFailure()) return;
  const auto db_before = trust::Snapshot(db), keys_before = trust::Snapshot(keys);
  ASSERT_FALSE(db_before.empty());
  {
    std::vector<AuditEvent> seen;
    Options o = StoreOptions(keys, true);
    o.audit_callback = [&](const AuditEvent& e) { seen.push_back(e); };
    auto store = Store::Open(o, db);
    ASSERT_OK(store);
    EXPECT_EQ((*store)->RecoveryPending(), 0u);
    ExpectReadsServed(**store, BaseIds(), kBaseCalls);
    ExpectWritesRefused(**store);
    // A second read-only open beside the first.
    auto second = Store::Open(StoreOptions(keys, true), db);
    ASSERT_OK(second);
    EXPECT_OK((*second)->CountCalls("acme"));
  }
  EXPECT_EQ(trust::Diff(db_before, trust::Snapshot(db)), "");
  EXPECT_EQ(trust::Diff(keys_before, trust::Snapshot(keys)), "");
  // And read_only with create_if_missing is a mistake, refused at once.
  Options both = StoreOptions(keys, true);
  both.create_if_missing = true;
  EXPECT_CODE(Store::Open(both, tmp.Sub("other")), Code::kInvalidArgument);
  EXPECT_FALSE(fs::exists(tmp.Sub("other")));
  // A missing store: kNotFound, nothing created.
  EXPECT_CODE(Store::Open(StoreOptions(keys, true), tmp.Sub("none")), Code::kNotFound);
  EXPECT_FALSE(fs::exists(tmp.Sub("none")));
}

TEST(ReadOnly, NeverCreatesTheSigningKey) {
  testutil::TempDir tmp;
  const std::string db = tmp.Sub("db"), keys = tmp.Sub("keys");
  {
    auto store = Store::Open(StoreOptions(keys, false), db);
    ASSERT_OK(store);
    ASSERT_OK((*store)->CreateTenant({.tenant_id = "acme"}));
  }
  ASSERT_FALSE(fs::exists(keys + "/SIGNING-KEY"));  // no receipt signed yet
  const auto before = trust::Snapshot(keys);
  {
    auto store = Store::Open(StoreOptions(keys, true), db);
    ASSERT_OK(store);
    EXPECT_CODE((*store)->SigningPublicKey(), Code::kNotFound);
    auto receipts = (*store)->ListReceipts();
    ASSERT_OK(receipts);
    EXPECT_TRUE(receipts->empty());
  }
  EXPECT_EQ(trust::Diff(before, trust::Snapshot(keys)), "");
}

// A damaged CURRENT (metadata instance, then a shard) is damage, not a
// writer racing the open: the read-only open returns RocksDB's own error
// at once, never the race message after seconds of retries.
// (The attack review's case: a shard's CURRENT removed.)
TEST(ReadOnly, DamagedCurrentIsNotTakenForARace) {
  struct Case {
    const char* instance;
    bool remove;  // else CURRENT names a MANIFEST that is not there
  };
  for (const Case c : {Case{"meta", false}, Case{"shards/0000", false}, Case{"shards/0000", true}}) {
    testutil::TempDir tmp;
    const std::string db = tmp.Sub("db"), keys = tmp.Sub("keys");
    Prepare(db, keys);
    if (HasFatalFailure()) return;
    const std::string current = db + "/" + c.instance + "/CURRENT";
    ASSERT_TRUE(fs::exists(current)) << current;
    if (c.remove) {
      fs::remove(current);
    } else {
      std::ofstream f(current, std::ios::trunc);
      f << "MANIFEST-999999\n";
    }
    auto store = Store::Open(StoreOptions(keys, true), db);
    // A shard's damage stops its tenants, not the open (decision 0034):
    // the error is then in the shard's stats line.
    Status why = store.ok() ? Status::OK() : store.status();
    if (store.ok()) {
      ASSERT_NE(std::string(c.instance), "meta");
      auto stats = (*store)->Stats();
      ASSERT_OK(stats);
      ASSERT_FALSE(stats->shards.empty());
      ASSERT_FALSE(stats->shards[0].damage.empty()) << c.instance << ": shard 0 not reported";
      why = Status::Corruption(stats->shards[0].damage);
    }
    EXPECT_EQ(why.message().find("the writer changed the instance"), std::string::npos)
        << c.instance << ": " << why.ToString();
    EXPECT_NE(why.code(), Code::kIOError) << c.instance << ": " << why.ToString();
  }
}

// A copy of the store taken before a purge, opened read-only with the
// current keys: the registry says ACTIVE, the keyring has no key. The
// writable open would roll the purge forward (and write a receipt); the
// read-only open shows the tenant as it is and changes nothing.
TEST(ReadOnly, ReportsPendingRecoveryAsItIs) {
  testutil::TempDir tmp;
  const std::string db = tmp.Sub("db"), keys = tmp.Sub("keys"), copy = tmp.Sub("copy");
  Prepare(db, keys);
  if (HasFatalFailure()) return;
  {
    auto store = Store::Open(StoreOptions(keys, false), db);
    ASSERT_OK(store);
    ASSERT_OK((*store)->CreateTenant({.tenant_id = "later"}));
    ASSERT_OK((*store)->PutCall("later", TestCall("l-1", 1)));
  }
  fs::copy(db, copy, fs::copy_options::recursive);
  {
    auto store = Store::Open(StoreOptions(keys, false), db);
    ASSERT_OK(store);
    ASSERT_OK((*store)->PurgeTenant("later"));
  }
  const auto before = trust::Snapshot(copy), keys_before = trust::Snapshot(keys);
  {
    auto store = Store::Open(StoreOptions(keys, true), copy);
    ASSERT_OK(store);
    EXPECT_EQ((*store)->RecoveryPending(), 1u);
    auto later = (*store)->DescribeTenant("later");
    ASSERT_OK(later);
    EXPECT_EQ(later->state, TenantState::kActive);  // as the copy's registry has it
    auto get = (*store)->GetCall("later", "l-1");
    EXPECT_CODE(get, Code::kFailedPrecondition);
    EXPECT_NE(get.status().message().find("read-only open cannot do"), std::string::npos);
    EXPECT_OK((*store)->GetCall("acme", "base-0"));
    auto report = (*store)->Verify();
    ASSERT_OK(report);
    EXPECT_EQ(report->records_failed, 0u);
    // The tenant it could not read is reported, never passed over: verify
    // is not OK while recovery is pending.
    EXPECT_FALSE(report->ok());
    ASSERT_EQ(report->unchecked.size(), 1u);
    EXPECT_NE(report->unchecked[0].find("not checked"), std::string::npos) << report->unchecked[0];
  }
  EXPECT_EQ(trust::Diff(before, trust::Snapshot(copy)), "");
  EXPECT_EQ(trust::Diff(keys_before, trust::Snapshot(keys)), "");
  // The writable open does the recovery.
  auto store = Store::Open(StoreOptions(keys, false), copy);
  ASSERT_OK(store);
  EXPECT_EQ((*store)->RecoveryPending(), 0u);
  auto later = (*store)->DescribeTenant("later");
  ASSERT_OK(later);
  EXPECT_EQ(later->state, TenantState::kPurged);
}

// The writer process: puts calls into acme, one synced put at a time, and
// appends each acknowledged call id to $CV_RO_ACKS; flushes now and then;
// creates and purges a tenant now and then (the keyring and KEK rotate).
// Stops when $CV_RO_STOP exists. Exit 0 if every operation succeeded.
TEST(ReadOnlyHelper, Writer) {
  const std::string db = trust::Env("CV_RO_DB");
  if (db.empty()) GTEST_SKIP() << "helper process for ReadOnly.ServesReadsWhileAnotherProcessWrites";
  const std::string keys = trust::Env("CV_RO_KEYS"), acks = trust::Env("CV_RO_ACKS"),
                    stop = trust::Env("CV_RO_STOP");
  auto store = Store::Open(StoreOptions(keys, false), db);
  if (!store.ok()) {
    fprintf(stderr, "writer: open: %s\n", store.status().ToString().c_str());
    ::_exit(2);
  }
  for (int i = 0; i < 20000 && !fs::exists(stop); ++i) {
    const std::string id = "live-" + std::to_string(i);
    Status s = (*store)->PutCall("acme", TestCall(id, kBaseCalls + i)).status();
    if (!s.ok()) {
      fprintf(stderr, "writer: put %s: %s\n", id.c_str(), s.ToString().c_str());
      ::_exit(3);
    }
    trust::AppendLine(acks, id);
    if (i % 25 == 24) s = (*store)->Flush();
    if (s.ok() && i % 40 == 39) {
      const std::string t = "churn-" + std::to_string(i);
      s = (*store)->CreateTenant({.tenant_id = t}).status();
      if (s.ok()) s = (*store)->PutCall(t, TestCall("c", 1)).status();
      if (s.ok()) s = (*store)->PurgeTenant(t).status();
    }
    if (!s.ok()) {
      fprintf(stderr, "writer: %s\n", s.ToString().c_str());
      ::_exit(4);
    }
  }
  store->reset();
  ::_exit(0);
}

TEST(ReadOnly, ServesReadsWhileAnotherProcessWrites) {
  testutil::TempDir tmp;
  const std::string db = tmp.Sub("db"), keys = tmp.Sub("keys");
  const std::string acks = tmp.Sub("acks"), stop = tmp.Sub("stop");
  Prepare(db, keys);
  if (HasFatalFailure()) return;
  pid_t writer = trust::SpawnHelper("ReadOnlyHelper.Writer",
                                    {"CV_RO_DB=" + db, "CV_RO_KEYS=" + keys, "CV_RO_ACKS=" + acks,
                                     "CV_RO_STOP=" + stop});
  ASSERT_GT(writer, 0);
  auto stop_writer = [&] {
    trust::AppendLine(stop, "stop");
    return trust::Wait(writer);
  };
  // Until the writer has acknowledged a few puts (it holds the store then).
  for (int waited = 0; trust::ReadLines(acks).size() < 30; ++waited) {
    if (waited > 1200 || ::waitpid(writer, nullptr, WNOHANG) != 0) {
      stop_writer();
      FAIL() << "the writer did not start";
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  // A second writer is refused, clearly: the key directory's writer lock
  // is the first it meets (the store's own meta/LOCK comes after it).
  {
    auto second = Store::Open(StoreOptions(keys, false), db);
    EXPECT_CODE(second, Code::kFailedPrecondition);
    EXPECT_NE(second.status().message().find("is in use by another process (pid " +
                                              std::to_string(writer) + ")"),
              std::string::npos)
        << second.status().ToString();
  }
  size_t rounds = 0;
  for (int round = 0; round < 6; ++round) {
    std::vector<std::string> expected = BaseIds();
    for (const auto& id : trust::ReadLines(acks)) expected.push_back(id);  // acknowledged before open
    auto store = Store::Open(StoreOptions(keys, true), db);
    ASSERT_OK(store);
    ExpectReadsServed(**store, expected, expected.size());
    ExpectWritesRefused(**store);
    if (HasFailure()) break;
    ++rounds;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  const int status = stop_writer();
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << trust::DescribeStatus(status);
  EXPECT_EQ(rounds, 6u);
  // Every call the writer acknowledged is there.
  const auto all = trust::ReadLines(acks);
  ASSERT_GT(all.size(), 30u);
  auto store = Store::Open(StoreOptions(keys, false), db);
  ASSERT_OK(store);
  for (const auto& id : all) EXPECT_OK((*store)->GetCall("acme", id, kPartMetadata));
  auto n = (*store)->CountCalls("acme");
  ASSERT_OK(n);
  EXPECT_EQ(*n, all.size() + kBaseCalls);
}

}  // namespace
}  // namespace callvault
