// T4 (testing.md): I/O errors.
//
// A prepared store is copied afresh for every trial and opened on FaultFS
// (tests/testutil/fault_fs.h):
//   p0   calls 0..3 in SST files (flushed), 4..5 only in the WAL, call 6
//        put and then deleted (both acknowledged);
//   s0   calls 0..2 (flushed), to purge;
//   s1   absent, to create;
//   old  created and purged before (so receipts chain).
// Two more prepared stores come from a second process (this binary
// re-executed) SIGKILLed at a kill point: "half purge" (s0 killed at
// purge.after_shred: its key gone, its family and PURGING record still
// there) and "half create" (s1 killed at create.after_keyring).
// FaultFS then fails the Nth I/O operation of a kind (write, sync,
// directory sync, rename, create, delete, read, close, or any of them),
// once or forever, as EIO or as ENOSPC (a full disk), during one operation:
//   create   CreateTenant(s1)
//   purge    PurgeTenant(s0) (also the KEK rotation: the store has no other)
//   open     Store::Open of a half-purge or half-create store (the
//            recovering open: the Nth I/O of recovery fails; N steps
//            through each kind's I/Os in about 10 trials, every N with
//            CALLVAULT_SOAK=1); a failed open is retried as a restarted
//            process would, on a new FaultFS and key provider, for odd N
//            after a power loss)
//   put      PutCall(p0, call 1) with sync
//   batch    PutCalls(p0, {call 2, new call 7})
//   delete   DeleteCall(p0, call 3)
//   get      GetCall of p0's calls 0 (an SST read) and 4 (the memtable)
//   list     ListCalls(p0), every page
//   verify   Verify() of the whole store
//   flush    Store::Flush() (memtables to SST files)
// The trial stores run without a block cache, so that get, list and verify
// read table blocks from the disk (ReadsReachTheDisk checks that they do).
// Exhaustively (N = 1, 2, ... until the operation runs without reaching the
// Nth I/O of that kind) for create, purge and both recovering opens: every
// kind once and forever as EIO ("any kind" only forever: failing the Nth
// I/O of any kind once is one of the single-kind trials), and the kinds
// that can run out of space (write, create, sync, dirsync, rename) once as
// ENOSPC. And 200 random trials, each a distinct (kind, N, mode, operation)
// over every operation above but create, purge and open (the set of tuples
// run is asserted to hold 200 members and printed summarized), N drawn
// from the I/Os that operation actually does (counted by a dry run).
// After the operation the fault lifts (a failed open is retried once
// without it), one more synced PutCall runs in the same process, the store
// is closed with Store::Close, and then the same files are checked twice: as
// they are (a clean reopen), and after a power loss (FaultFS kUndoDirOps:
// whatever was not durably synced is gone). Passes when:
//   - a failed operation returns kIOError (never kFailedPrecondition,
//     kCorruption or kNotFound) whose message names the failed I/O (the
//     injected error text), "disk full: ..." for ENOSPC, and nothing crashes;
//     a read that returns OK returns the right data; a verify never counts
//     an I/O error as a failed record;
//   - after the fault lifts, get and list work again at once;
//   - Close returns OK when no fault fired, kIOError otherwise;
//   - an operation that returned OK has its whole effect after both
//     reopens, so an OK after a failed fsync (a retried fsync) shows as
//     lost data after the power loss;
//   - a failed operation has all or none of its effect: a failed create
//     leaves s1 live with its key and family or absent; a failed purge
//     leaves s0 live with every call readable, or purged (no key, no
//     family, a receipt); a failed put, batch or delete leaves the old
//     calls or the new ones (both of a batch);
//   - EVERY acknowledged write (of the prepared store, and the trial's own:
//     the operation if it returned OK, the put after it) reads back with
//     its exact value, a deleted call stays deleted, a listing shows
//     exactly the calls that may exist; both reopens succeed; keys and
//     families match the live tenants; receipts verify; Verify is clean.
//
// CALLVAULT_SEED=S replays the random part; CALLVAULT_T4_RANDOM=N sets the
// number of random trials (default 200; 1,000 with CALLVAULT_SOAK=1).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <tuple>

#include "callvault/store.h"
#include "engine/kill_point.h"
#include "tests/crash/crash_util.h"
#include "tests/testutil/fault_fs.h"
#include "tests/testutil/testutil.h"

namespace callvault {
namespace {

using testutil::FaultFS;
using testutil::FaultSpec;
namespace fs = std::filesystem;

constexpr int64_t kT0 = 1'767'225'600'000'000;

Call TestCall(const std::string& tenant, int idx, int version) {
  Call c = testutil::MakeCall("call-" + std::to_string(idx), kT0 + idx * 1000 + version,
                              tenant + "/" + std::to_string(idx) + "/v" + std::to_string(version));
  c.created_at = kT0 + idx;
  c.updated_at = kT0 + idx + version;
  return c;
}
std::string Id(int idx) { return "call-" + std::to_string(idx); }

Options BaseOptions(const std::string& keys) {
  Options o = testutil::DefaultOptions(keys);
  o.max_tenants_per_shard = 2;
  return o;
}

Options StoreOptions(const std::string& keys, rocksdb::Env* env) {
  Options o = testutil::DefaultOptions(keys);
  auto kp = NewFileKeyProvider(keys, {.create_if_missing = false, .env = env});
  if (!kp.ok()) std::abort();
  o.key_provider = *kp;
  o.env = env;
  o.create_if_missing = false;
  o.max_tenants_per_shard = 2;
  o.background_threads = 1;
  // No block cache: every read of a table block goes to the disk, where
  // FaultFS can fail it (with a cache, the reads of a small store are
  // served from memory and a read fault never reaches GetCall).
  o.block_cache_bytes = 0;
  return o;
}

enum class Target { kCreate, kPurge, kOpen, kPut, kBatch, kDelete, kGet, kList, kVerify, kFlush };
const char* TargetName(Target t) {
  switch (t) {
    case Target::kCreate: return "create";
    case Target::kPurge: return "purge";
    case Target::kOpen: return "open";
    case Target::kPut: return "put";
    case Target::kBatch: return "batch";
    case Target::kDelete: return "delete";
    case Target::kGet: return "get";
    case Target::kList: return "list";
    case Target::kVerify: return "verify";
    case Target::kFlush: return "flush";
  }
  return "?";
}
bool IsRead(Target t) {
  return t == Target::kGet || t == Target::kList || t == Target::kVerify;
}

// Which prepared store a trial starts from.
enum class Base { kPlain, kHalfPurge, kHalfCreate };
const char* BaseName(Base b) {
  return b == Base::kPlain ? "plain" : b == Base::kHalfPurge ? "half-purge" : "half-create";
}

std::string ModeName(const FaultSpec& s) {
  return std::string(s.forever ? "forever" : "once") + (s.no_space ? "/enospc" : "/eio");
}

// ---- The acknowledged state --------------------------------------------------

// Per tenant and call id, the values a reopen may show: one when
// acknowledged, more when an operation that failed had it in flight.
// std::nullopt: absent (never written, or deleted).
using Allowed = std::vector<std::optional<Call>>;
struct Model {
  std::map<std::string, std::map<std::string, Allowed>> calls;
  bool s0_live_ok = true, s0_purged_ok = false;
  bool s1_absent_ok = true, s1_live_ok = false;
  void Ack(const std::string& t, const std::string& id, std::optional<Call> v) {
    calls[t][id] = {std::move(v)};
  }
  void Doubt(const std::string& t, const std::string& id, std::optional<Call> v) {
    calls[t][id].push_back(std::move(v));
  }
};

constexpr int kFlushedCalls = 4;  // p0's calls 0..3 are in SST files
constexpr int kP0Calls = 6;       // 0..5 acknowledged; 6 put and deleted
constexpr int kS0Calls = 3;

Model PreparedModel(Base base) {
  Model m;
  for (int i = 0; i < kP0Calls; ++i) m.Ack("p0", Id(i), TestCall("p0", i, 1));
  m.Ack("p0", Id(6), std::nullopt);
  m.Ack("p0", Id(7), std::nullopt);
  m.Ack("p0", Id(9), std::nullopt);
  for (int i = 0; i < kS0Calls; ++i) m.Ack("s0", Id(i), TestCall("s0", i, 1));
  if (base == Base::kHalfPurge) {  // its key is gone: recovery must finish the purge
    m.s0_live_ok = false;
    m.s0_purged_ok = true;
  }
  if (base == Base::kHalfCreate) m.s1_live_ok = true;  // recovery rolls it back or forward
  return m;
}

// The prepared store at db/keys, plain.
void Prepare(const std::string& db, const std::string& keys) {
  Options o = BaseOptions(keys);
  auto st = Store::Open(o, db);
  ASSERT_OK(st);
  ASSERT_OK((*st)->CreateTenant({.tenant_id = "old"}));
  ASSERT_OK((*st)->PutCall("old", TestCall("old", 0, 1)));
  ASSERT_OK((*st)->PurgeTenant("old"));
  ASSERT_OK((*st)->CreateTenant({.tenant_id = "p0"}));
  ASSERT_OK((*st)->CreateTenant({.tenant_id = "s0"}));
  for (int i = 0; i < kFlushedCalls; ++i) ASSERT_OK((*st)->PutCall("p0", TestCall("p0", i, 1)));
  for (int i = 0; i < kS0Calls; ++i) ASSERT_OK((*st)->PutCall("s0", TestCall("s0", i, 1)));
  ASSERT_OK((*st)->Flush());
  for (int i = kFlushedCalls; i < kP0Calls; ++i) {
    ASSERT_OK((*st)->PutCall("p0", TestCall("p0", i, 1)));
  }
  ASSERT_OK((*st)->PutCall("p0", TestCall("p0", 6, 1)));
  ASSERT_OK((*st)->DeleteCall("p0", Id(6)));
  ASSERT_OK((*st)->Close());
}

// A copy of `plain` with an operation killed half way by SIGKILL in a
// second process (CrashChild below) at `point`.
void PrepareHalf(const std::string& plain, const std::string& out, const std::string& op,
                 const std::string& point) {
  fs::create_directories(out);
  testutil::CopyTree(plain, out);
  crashtest::Child c = crashtest::Spawn({{crashtest::kEnvMode, "t4"},
                                         {"CALLVAULT_KILL_POINT", point},
                                         {"CALLVAULT_T4_DB", out + "/db"},
                                         {"CALLVAULT_T4_KEYS", out + "/keys"},
                                         {"CALLVAULT_T4_OP", op}},
                                        out + "-child.log");
  const auto lines = crashtest::ReadAllLines(c, 120);
  const int w = crashtest::WaitChild(c.pid);
  ASSERT_TRUE(crashtest::KilledBySigkill(w))
      << "the child was to die at " << point << ": " << crashtest::DescribeWait(w) << " "
      << ::testing::PrintToString(lines) << " " << testutil::ReadFile(out + "-child.log");
}

TEST(CrashChild, DISABLED_Run) {
  if (crashtest::Env(crashtest::kEnvMode) != "t4") GTEST_SKIP() << "runs only as a T4 child";
  auto st = Store::Open(BaseOptions(crashtest::Env("CALLVAULT_T4_KEYS")),
                        crashtest::Env("CALLVAULT_T4_DB"));
  ASSERT_OK(st);
  const std::string op = crashtest::Env("CALLVAULT_T4_OP");
  Status s = op == "purge" ? (*st)->PurgeTenant("s0").status()
                           : (*st)->CreateTenant({.tenant_id = "s1"}).status();
  crashtest::ReportLine("X the kill point was not reached: " + s.ToString());
}

// ---- One trial -------------------------------------------------------------

struct Trial {
  Target target;
  FaultSpec spec;
  Base base = Base::kPlain;
};
std::string Describe(const Trial& t) {
  return std::string(TargetName(t.target)) +
         (t.base == Base::kPlain ? "" : std::string("(") + BaseName(t.base) + ")") + " " +
         testutil::FaultOpName(t.spec.kinds) + " N=" + std::to_string(t.spec.nth) + " " +
         ModeName(t.spec);
}

struct Outcome {
  bool fired = false;
  Status op;         // the faulted operation
  Status follow_up;  // the synced put after the fault lifted
  Status close;
};

struct Totals {
  uint64_t trials = 0, failed_ops = 0, ok_despite_fault = 0, reopens = 0, open_retries = 0;
  uint64_t close_failed = 0, checked_writes = 0, rocksdb_rewritten = 0;
  std::map<std::string, uint64_t> applied_after_failure;  // target -> count
  std::map<std::string, uint64_t> codes;
  std::set<std::string> examples;  // one message per (target, kind)
};

// Lists every call of `tenant`, every page.
Result<std::set<std::string>> ListAll(Store& st, const std::string& tenant) {
  std::set<std::string> ids;
  ListQuery q;
  q.limit = 3;  // several pages: several reads
  for (int pages = 0; pages < 100; ++pages) {
    auto page = st.ListCalls(tenant, q);
    if (!page.ok()) return page.status();
    for (const auto& c : page->calls) ids.insert(c.call_id);
    if (page->next_cursor.empty()) return ids;
    q.cursor = page->next_cursor;
  }
  return Status::Internal("ListCalls never ended");
}

// Every call the model has for a live tenant reads back as one of its
// allowed values, and a listing shows exactly the calls that may exist.
void CheckCalls(Store& st, const Model& m, const std::string& tenant, Totals* totals) {
  auto it = m.calls.find(tenant);
  ASSERT_TRUE(it != m.calls.end());
  std::set<std::string> must, may;
  for (const auto& [id, allowed] : it->second) {
    auto got = st.GetCall(tenant, id);
    std::optional<Call> seen;
    if (got.ok()) {
      seen = *got;
    } else {
      ASSERT_EQ(got.status().code(), Code::kNotFound)
          << tenant << "/" << id << ": " << got.status().ToString();
    }
    const bool fits = std::find(allowed.begin(), allowed.end(), seen) != allowed.end();
    EXPECT_TRUE(fits) << tenant << "/" << id << ": "
                      << (seen ? "found a value no acknowledged or in-flight write had"
                               : "acknowledged write lost");
    ++totals->checked_writes;
    bool any_present = false, all_present = true;
    for (const auto& a : allowed) {
      if (a) any_present = true;
      else all_present = false;
    }
    if (any_present) may.insert(id);
    if (all_present) must.insert(id);
  }
  auto listed = ListAll(st, tenant);
  ASSERT_OK(listed);
  for (const auto& id : *listed) EXPECT_TRUE(may.count(id)) << tenant << ": listed " << id;
  for (const auto& id : must) EXPECT_TRUE(listed->count(id)) << tenant << ": not listed " << id;
}

// Checks the store at db/keys (opened on a FaultFS that injects nothing)
// against the model.
void CheckAfter(const std::string& db, const std::string& keys, const Trial& trial,
                const Outcome& out, const Model& m, const std::string& variant, Totals* totals) {
  SCOPED_TRACE(variant);
  // A FaultFS that injects nothing: the same files, without real fsyncs
  // (FaultFS never calls them), which would only slow the suite down.
  auto quiet = std::make_shared<FaultFS>(0);
  auto env = testutil::FaultEnv(quiet);
  auto opened = Store::Open(StoreOptions(keys, env.get()), db);
  ASSERT_OK(opened);  // 0 failed opens
  ++totals->reopens;
  Store& st = **opened;
  const std::string target = TargetName(trial.target);
  // p0: every call.
  CheckCalls(st, m, "p0", totals);
  if (trial.target == Target::kBatch && !out.op.ok()) {
    auto a = st.GetCall("p0", Id(2));
    auto b = st.GetCall("p0", Id(7));
    ASSERT_OK(a);
    EXPECT_EQ(*a == TestCall("p0", 2, 2), b.ok()) << "a failed batch applied in part";
    if (b.ok()) ++totals->applied_after_failure[target];
  }
  if (!out.op.ok() && (trial.target == Target::kPut || trial.target == Target::kDelete)) {
    auto got = st.GetCall("p0", Id(trial.target == Target::kPut ? 1 : 3));
    if (trial.target == Target::kPut ? (got.ok() && got->updated_at == kT0 + 1 + 2) : !got.ok()) {
      ++totals->applied_after_failure[target];
    }
  }
  // s1: created or absent.
  auto s1 = st.DescribeTenant("s1");
  if (s1.ok()) {
    EXPECT_TRUE(m.s1_live_ok) << "s1 exists without a create";
    EXPECT_EQ(s1->state, TenantState::kActive);
    if (!out.op.ok() && trial.target == Target::kCreate) ++totals->applied_after_failure[target];
    EXPECT_OK(st.PutCall("s1", TestCall("s1", 0, 1)));  // usable: has its key and family
    auto back = st.GetCall("s1", Id(0));
    EXPECT_OK(back);
  } else {
    EXPECT_CODE(s1, Code::kNotFound);
    EXPECT_TRUE(m.s1_absent_ok) << "acknowledged create lost";
  }
  // s0: live with every call, or purged.
  auto s0 = st.DescribeTenant("s0");
  ASSERT_OK(s0);
  EXPECT_TRUE(s0->state == TenantState::kActive || s0->state == TenantState::kPurged)
      << "s0 left " << TenantStateName(s0->state);
  if (s0->state == TenantState::kActive) {
    EXPECT_TRUE(m.s0_live_ok) << "acknowledged (or keyless) purge came back";
    CheckCalls(st, m, "s0", totals);
  } else {
    EXPECT_TRUE(m.s0_purged_ok) << "s0 purged without a purge";
    EXPECT_CODE(st.GetCall("s0", Id(0)), Code::kTenantPurged);
    if (!out.op.ok() && trial.target == Target::kPurge) ++totals->applied_after_failure[target];
  }
  crashtest::KeyCheck kc = crashtest::CheckKeysAndFamilies(st, keys);
  EXPECT_TRUE(kc.problems.empty()) << ::testing::PrintToString(kc.problems);
  auto receipts = st.ListReceipts();
  ASSERT_OK(receipts);
  EXPECT_EQ(receipts->size(), s0->state == TenantState::kPurged ? 2u : 1u) << "one per purge";
  const crashtest::KeyDirFiles files = crashtest::ScanKeyDir(keys);
  for (const auto& r : *receipts) {
    EXPECT_FALSE(r.kek_generation_retired != 0 &&
                 std::count(files.keks.begin(), files.keks.end(), r.kek_generation_retired))
        << "retired KEK generation " << r.kek_generation_retired << " exists";
  }
  auto pk = st.SigningPublicKey();
  ASSERT_OK(pk);
  EXPECT_OK(VerifyReceiptChain(*receipts, *pk));
  auto v = st.Verify();
  ASSERT_OK(v);
  EXPECT_EQ(v->records_failed, 0u) << ::testing::PrintToString(v->failures);
  EXPECT_EQ(v->records_unchecked, 0u) << ::testing::PrintToString(v->unchecked);
  EXPECT_OK(st.Close());
}

// Runs the read of a kGet / kList / kVerify trial; checks any data it
// returns against the model (a read that returns OK returns the truth).
Status RunRead(Store& st, Target target, const Model& m, bool fired_expected) {
  switch (target) {
    case Target::kGet: {
      for (int i : {0, 4}) {
        auto got = st.GetCall("p0", Id(i));
        if (!got.ok()) return got.status();
        EXPECT_EQ(*got, TestCall("p0", i, 1)) << "a read returned the wrong call";
      }
      return Status::OK();
    }
    case Target::kList: {
      auto ids = ListAll(st, "p0");
      if (!ids.ok()) return ids.status();
      std::set<std::string> want;
      for (const auto& [id, allowed] : m.calls.at("p0")) {
        if (allowed.front()) want.insert(id);
      }
      EXPECT_EQ(*ids, want) << "a listing returned the wrong calls";
      return Status::OK();
    }
    case Target::kVerify: {
      auto v = st.Verify();
      if (!v.ok()) return v.status();
      // An I/O error is never a failed record: it stops a scan.
      EXPECT_EQ(v->records_failed, 0u) << ::testing::PrintToString(v->failures);
      EXPECT_EQ(v->metadata_failed, 0u) << ::testing::PrintToString(v->failures);
      if (!v->ok()) {
        EXPECT_TRUE(fired_expected) << "verify not clean without a fault";
        const std::string all = ::testing::PrintToString(v->unchecked);
        EXPECT_NE(all.find(testutil::kInjectedMessage), std::string::npos)
            << "a stopped scan does not name the failed I/O: " << all;
        EXPECT_NE(all.find("io_error"), std::string::npos) << all;
        // Reported as an I/O error to the caller through the report.
        return Status::IOError("verify: " + all);
      }
      return Status::OK();
    }
    default:
      return Status::Internal("not a read");
  }
}

// Runs the operation of `trial` on an open store; updates the model.
Status RunOp(Store& st, const Trial& trial, Model* m) {
  switch (trial.target) {
    case Target::kCreate: return st.CreateTenant({.tenant_id = "s1"}).status();
    case Target::kPurge: return st.PurgeTenant("s0").status();
    case Target::kPut: return st.PutCall("p0", TestCall("p0", 1, 2)).status();
    case Target::kBatch:
      return st.PutCalls("p0", {TestCall("p0", 2, 2), TestCall("p0", 7, 1)}).status();
    case Target::kDelete: return st.DeleteCall("p0", Id(3));
    case Target::kFlush: return st.Flush();
    case Target::kGet:
    case Target::kList:
    case Target::kVerify: return RunRead(st, trial.target, *m, true);
    case Target::kOpen: return Status::Internal("not an operation on an open store");
  }
  return Status::Internal("?");
}

void ApplyToModel(const Trial& trial, bool ok, Model* m) {
  auto put = [&](const std::string& t, const std::string& id, std::optional<Call> v) {
    if (ok) m->Ack(t, id, std::move(v));
    else m->Doubt(t, id, std::move(v));
  };
  switch (trial.target) {
    case Target::kCreate:
      m->s1_live_ok = true;
      m->s1_absent_ok = !ok;
      break;
    case Target::kPurge:
      m->s0_purged_ok = true;
      m->s0_live_ok = !ok;
      break;
    case Target::kPut: put("p0", Id(1), TestCall("p0", 1, 2)); break;
    case Target::kBatch:
      put("p0", Id(2), TestCall("p0", 2, 2));
      put("p0", Id(7), TestCall("p0", 7, 1));
      break;
    case Target::kDelete: put("p0", Id(3), std::nullopt); break;
    default: break;
  }
}

// The paths of the prepared stores.
struct Bases {
  std::string plain, half_purge, half_create;
  const std::string& Of(Base b) const {
    return b == Base::kPlain ? plain : b == Base::kHalfPurge ? half_purge : half_create;
  }
};

// One trial on a fresh copy of a prepared store. Returns whether the fault
// fired (false: the operation has fewer than N such I/Os).
bool RunTrial(const Bases& bases, const std::string& work, const Trial& trial, uint64_t seed,
              Totals* totals) {
  std::error_code ec;
  fs::remove_all(work, ec);
  fs::create_directories(work);
  testutil::CopyTree(bases.Of(trial.base), work);
  const std::string db = work + "/db", keys = work + "/keys";
  SCOPED_TRACE(Describe(trial));
  Outcome out;
  Model m = PreparedModel(trial.base);
  auto ffs = std::make_shared<FaultFS>(seed);
  {
    auto env = testutil::FaultEnv(ffs);
    Options options = StoreOptions(keys, env.get());
    if (trial.target == Target::kOpen) ffs->Inject(trial.spec);
    auto opened = Store::Open(options, db);
    if (trial.target == Target::kOpen) {
      out.op = opened.status();
      out.fired = ffs->injected() > 0;
      ffs->Lift();
    }
    if (!opened.ok() && out.fired) {
      // The failed open is retried as a restarted process would: on a new
      // FaultFS and key provider (a provider whose key write failed makes
      // no key change again). For odd N the machine also lost power
      // first: the retry sees only what the failed open made durable.
      ++totals->open_retries;
      if (trial.spec.nth % 2 == 1) ffs->SimulatePowerLoss(testutil::PowerLossMode::kUndoDirOps);
      ffs = std::make_shared<FaultFS>(seed + 1);
      auto env2 = testutil::FaultEnv(ffs);
      options = StoreOptions(keys, env2.get());
      env = std::move(env2);
      opened = Store::Open(options, db);
    }
    EXPECT_OK(opened);
    if (!opened.ok()) return out.fired;
    Store& st = **opened;
    if (trial.target != Target::kOpen) {
      ffs->Inject(trial.spec);
      out.op = RunOp(st, trial, &m);
      out.fired = ffs->injected() > 0;
      ffs->Lift();
      ApplyToModel(trial, out.op.ok(), &m);
      if (IsRead(trial.target) && out.fired) {
        // Nothing of a failed read sticks: the same read works at once.
        SCOPED_TRACE("the same read after the fault lifted");
        EXPECT_OK(RunRead(st, trial.target, m, false));
      }
    }
    out.follow_up = st.PutCall("p0", TestCall("p0", 9, 3)).status();
    if (out.follow_up.ok()) m.Ack("p0", Id(9), TestCall("p0", 9, 3));
    else m.Doubt("p0", Id(9), TestCall("p0", 9, 3));
    if (!out.fired) {
      EXPECT_TRUE(out.op.ok()) << "no fault, yet the operation failed: " << out.op.ToString();
    } else if (out.op.ok()) {
      ++totals->ok_despite_fault;
    } else {
      ++totals->failed_ops;
      ++totals->codes[CodeName(out.op.code())];
      // An injected I/O error comes back as one.
      EXPECT_EQ(out.op.code(), Code::kIOError) << out.op.ToString();
      // RocksDB 7.8 rewrites one failure: when opening IDENTITY fails at a
      // new instance's open and a second try succeeds, it reports "Direct
      // I/O is not supported" (db_impl_open.cc); callvault returns it as
      // kIOError saying so (fs_util.cc). Every other error carries the
      // failed I/O's own message.
      const bool rewritten =
          out.op.message().find("Direct I/O is not supported") != std::string::npos;
      if (rewritten) ++totals->rocksdb_rewritten;
      EXPECT_TRUE(rewritten ||
                  out.op.message().find(testutil::kInjectedMessage) != std::string::npos)
          << "the error does not name the failed I/O: " << out.op.ToString();
      if (trial.spec.no_space && !rewritten) {
        EXPECT_NE(out.op.message().find("disk full"), std::string::npos)
            << "ENOSPC not reported as a full disk: " << out.op.ToString();
      }
      const std::string key = std::string(TargetName(trial.target)) + "/" +
                              testutil::FaultOpName(trial.spec.kinds) + "/" + ModeName(trial.spec);
      if (totals->examples.size() < 400) totals->examples.insert(key + ": " + out.op.ToString());
    }
    out.close = st.Close();
    if (!out.close.ok()) {
      ++totals->close_failed;
      EXPECT_TRUE(out.fired) << "close failed without a fault: " << out.close.ToString();
      EXPECT_EQ(out.close.code(), Code::kIOError) << out.close.ToString();
    }
    EXPECT_CODE(st.GetCall("p0", Id(0)), Code::kFailedPrecondition);  // closed
    opened.value().reset();
  }
  ++totals->trials;
  if (::testing::Test::HasFailure()) return out.fired;
  // The files as the process left them, then after a power loss.
  const std::string clean = work + "-clean";
  fs::remove_all(clean, ec);
  fs::create_directories(clean);
  testutil::CopyTree(work, clean);
  CheckAfter(clean + "/db", clean + "/keys", trial, out, m, "clean reopen", totals);
  if (::testing::Test::HasFailure()) return out.fired;
  const std::string dropped = ffs->SimulatePowerLoss(testutil::PowerLossMode::kUndoDirOps);
  CheckAfter(db, keys, trial, out, m, "reopen after power loss (dropped:" + dropped + ")", totals);
  fs::remove_all(clean, ec);
  return out.fired;
}

// How many I/Os of each kind `trial`'s operation does (the fault never
// fires: N is past any count).
std::map<uint32_t, uint64_t> CountIOs(const Bases& bases, const std::string& work, Target target,
                                      Base base, const std::vector<uint32_t>& kinds) {
  std::error_code ec;
  fs::remove_all(work, ec);
  fs::create_directories(work);
  testutil::CopyTree(bases.Of(base), work);
  auto ffs = std::make_shared<FaultFS>(1);
  auto env = testutil::FaultEnv(ffs);
  const Options options = StoreOptions(work + "/keys", env.get());
  std::map<uint32_t, uint64_t> n;
  Model m = PreparedModel(base);
  if (target == Target::kOpen) {
    ffs->ResetCounts();
    auto st = Store::Open(options, work + "/db");
    for (uint32_t k : kinds) n[k] = ffs->ops_seen(k);
    EXPECT_OK(st);
    return n;
  }
  auto st = Store::Open(options, work + "/db");
  EXPECT_OK(st);
  if (!st.ok()) return n;
  ffs->ResetCounts();
  EXPECT_OK(RunOp(**st, Trial{target, FaultSpec{}}, &m));
  for (uint32_t k : kinds) n[k] = ffs->ops_seen(k);
  return n;
}

const std::vector<uint32_t>& AllKinds() {
  static const std::vector<uint32_t> k = {
      testutil::kOpWrite, testutil::kOpSync,  testutil::kOpDirSync, testutil::kOpRename,
      testutil::kOpCreate, testutil::kOpDelete, testutil::kOpRead,  testutil::kOpClose,
      testutil::kOpAll,   testutil::kOpMutating};
  return k;
}
bool CanRunOutOfSpace(uint32_t kind) {
  return kind == testutil::kOpWrite || kind == testutil::kOpCreate || kind == testutil::kOpSync ||
         kind == testutil::kOpDirSync || kind == testutil::kOpRename ||
         kind == testutil::kOpMutating;
}

class IoErrorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    seed_ = crashtest::SeedFromEnv();
    std::printf("[io-error] seed=%llu (replay: CALLVAULT_SEED=%llu)\n",
                static_cast<unsigned long long>(seed_), static_cast<unsigned long long>(seed_));
    std::fflush(stdout);
    bases_.plain = tmp_.Sub("plain");
    work_ = tmp_.Sub("work");
    fs::create_directories(bases_.plain);
    Prepare(bases_.plain + "/db", bases_.plain + "/keys");
  }

  void PrepareHalves() {
    bases_.half_purge = tmp_.Sub("half-purge");
    bases_.half_create = tmp_.Sub("half-create");
    PrepareHalf(bases_.plain, bases_.half_purge, "purge", "purge.after_shred");
    PrepareHalf(bases_.plain, bases_.half_create, "create", "create.after_keyring");
  }

  // Every kind, once and forever (EIO), and once as ENOSPC for the kinds
  // that can run out of space; N = 1.. until the fault no longer fires.
  // With `max_per_mode`, N steps so that about that many trials cover the
  // operation's I/Os of each kind (N = 1, 1 + s, 1 + 2s, ...).
  void Exhaustive(Target target, Base base = Base::kPlain, uint64_t max_per_mode = 0) {
    const auto t0 = std::chrono::steady_clock::now();
    const uint64_t trials_before = totals_.trials;
    std::mt19937_64 rng(seed_);
    std::ostringstream per_kind;
    const std::vector<uint32_t> kinds = {testutil::kOpWrite,  testutil::kOpSync,
                                         testutil::kOpDirSync, testutil::kOpRename,
                                         testutil::kOpCreate, testutil::kOpDelete,
                                         testutil::kOpRead,   testutil::kOpAll};
    std::map<uint32_t, uint64_t> counts;
    if (max_per_mode > 0) counts = CountIOs(bases_, work_, target, base, kinds);
    for (uint32_t k : kinds) {
      const uint64_t stride =
          max_per_mode == 0 ? 1 : std::max<uint64_t>(1, (counts[k] + max_per_mode - 1) / max_per_mode);
      for (int mode = 0; mode < 3; ++mode) {
        const bool forever = mode == 1, no_space = mode == 2;
        // Failing the Nth I/O of any kind once is the same trial as failing
        // that I/O by its own kind: only "any, forever" is new.
        if (k == testutil::kOpAll && !forever) continue;
        if (no_space && !CanRunOutOfSpace(k)) continue;
        uint64_t n = 1, fired = 0;
        for (; n < 100000; n += stride) {
          Trial t{target, FaultSpec{k, n, forever, no_space}, base};
          if (!RunTrial(bases_, work_, t, rng(), &totals_)) break;
          ++fired;
          if (HasFailure()) {
            std::printf("[io-error] first failure: %s\n", Describe(t).c_str());
            return;
          }
        }
        if (mode == 0 || (k == testutil::kOpAll && forever)) {
          per_kind << " " << testutil::FaultOpName(k) << "="
                   << (max_per_mode == 0 ? n - 1 : counts[k]);
          if (stride > 1) per_kind << " (N step " << stride << ": " << fired << " trials)";
        }
      }
    }
    Report(std::string(TargetName(target)) +
               (base == Base::kPlain ? "" : std::string(" ") + BaseName(base)),
           t0, totals_.trials - trials_before,
           " I/Os of each kind in the operation:" + per_kind.str());
  }

  void Report(const std::string& what, std::chrono::steady_clock::time_point t0, uint64_t trials,
              const std::string& extra) {
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const char* w = what.c_str();
    std::printf("[io-error %s] T4: %llu trials in %.1f s (%s); %llu failed with the fault, %llu "
                "returned OK despite it (the fault hit a step after the durable point, or a "
                "read RocksDB retried); %llu reopens, 0 failed; %llu acknowledged writes "
                "checked, 0 lost; Close failed after %llu trials (all kIOError)\n",
                w, static_cast<unsigned long long>(trials), secs, extra.c_str(),
                static_cast<unsigned long long>(totals_.failed_ops),
                static_cast<unsigned long long>(totals_.ok_despite_fault),
                static_cast<unsigned long long>(totals_.reopens),
                static_cast<unsigned long long>(totals_.checked_writes),
                static_cast<unsigned long long>(totals_.close_failed));
    if (totals_.rocksdb_rewritten > 0) {
      std::printf("[io-error %s]   %llu errors worded by RocksDB as \"Direct I/O is not "
                  "supported\" (a failed read of IDENTITY at an instance's open; kIOError)\n",
                  w, static_cast<unsigned long long>(totals_.rocksdb_rewritten));
    }
    if (totals_.open_retries > 0) {
      std::printf("[io-error %s]   %llu faulted opens retried without the fault\n", w,
                  static_cast<unsigned long long>(totals_.open_retries));
    }
    for (const auto& [k, n] : totals_.applied_after_failure) {
      std::printf("[io-error %s]   failed %s found applied after recovery (per reopen): %llu\n",
                  w, k.c_str(), static_cast<unsigned long long>(n));
    }
    for (const auto& [k, n] : totals_.codes) {
      std::printf("[io-error %s]   code %s: %llu\n", w, k.c_str(),
                  static_cast<unsigned long long>(n));
    }
    size_t shown = 0;
    std::string last_kind;
    for (const auto& e : totals_.examples) {
      const std::string kind = e.substr(0, e.find(':'));
      if (kind == last_kind) continue;
      last_kind = kind;
      if (++shown > 16) break;
      std::printf("[io-error %s]   e.g. %s\n", w, e.c_str());
    }
    std::fflush(stdout);
  }

  testutil::TempDir tmp_;
  Bases bases_;
  std::string work_;
  uint64_t seed_ = 0;
  Totals totals_;
};

// The read trials are only worth their name if a read goes to the disk.
TEST_F(IoErrorTest, ReadsReachTheDisk) {
  for (Target op : {Target::kGet, Target::kList, Target::kVerify}) {
    const auto n = CountIOs(bases_, work_, op, Base::kPlain, {testutil::kOpRead});
    EXPECT_GT(n.at(testutil::kOpRead), 0u) << TargetName(op) << " read nothing from the disk";
    std::printf("[io-error] %s: %llu reads\n", TargetName(op),
                static_cast<unsigned long long>(n.at(testutil::kOpRead)));
  }
}

TEST_F(IoErrorTest, CreateTenant) { Exhaustive(Target::kCreate); }
TEST_F(IoErrorTest, PurgeTenant) { Exhaustive(Target::kPurge); }

// The recovering open of a store left half purged / half created by a
// SIGKILL: the Nth I/O of the open (and of its recovery) fails. An open
// reads a lot (MANIFESTs, WALs, tables, keys): N steps through each kind's
// I/Os in about kOpenTrialsPerMode trials (every N with CALLVAULT_SOAK=1).
const uint64_t kOpenTrialsPerMode = crashtest::SoakMode() ? 0 : 10;
TEST_F(IoErrorTest, RecoveringOpenHalfPurge) {
  PrepareHalves();
  if (HasFailure()) return;
  Exhaustive(Target::kOpen, Base::kHalfPurge, kOpenTrialsPerMode);
}
TEST_F(IoErrorTest, RecoveringOpenHalfCreate) {
  PrepareHalves();
  if (HasFailure()) return;
  Exhaustive(Target::kOpen, Base::kHalfCreate, kOpenTrialsPerMode);
}

TEST_F(IoErrorTest, Random) {
  // Distinct (kind, N, mode, operation) tuples, N within the I/Os the
  // operation does, until `wanted` of them fired.
  const int64_t wanted =
      crashtest::EnvInt("CALLVAULT_T4_RANDOM", crashtest::SoakMode() ? 1000 : 200);
  const auto t0 = std::chrono::steady_clock::now();
  std::mt19937_64 rng(seed_);
  using Tuple = std::tuple<uint32_t, uint64_t, int, Target>;  // kind, N, mode, op
  std::vector<Tuple> candidates;
  std::ostringstream counts;
  for (Target op : {Target::kPut, Target::kBatch, Target::kDelete, Target::kGet, Target::kList,
                    Target::kVerify, Target::kFlush}) {
    const auto n = CountIOs(bases_, work_, op, Base::kPlain, AllKinds());
    counts << " " << TargetName(op) << "{";
    for (uint32_t k : AllKinds()) {
      if (k != testutil::kOpAll && k != testutil::kOpMutating && n.at(k) > 0) {
        counts << testutil::FaultOpName(k) << "=" << n.at(k) << " ";
      }
      for (uint64_t i = 1; i <= n.at(k); ++i) {
        for (int mode = 0; mode < 4; ++mode) {  // bit 0: forever, bit 1: ENOSPC
          if ((mode & 2) && !CanRunOutOfSpace(k)) continue;
          candidates.emplace_back(k, i, mode, op);
        }
      }
    }
    counts << "}";
  }
  // Shuffled, then interleaved by operation (one of each in turn), so that
  // an operation with many I/Os (flush) does not take most of the trials.
  std::shuffle(candidates.begin(), candidates.end(), rng);
  {
    std::map<Target, std::vector<Tuple>> by_target;
    for (const auto& c : candidates) by_target[std::get<3>(c)].push_back(c);
    candidates.clear();
    for (size_t i = 0;; ++i) {
      bool any = false;
      for (auto& [op, v] : by_target) {
        if (i < v.size()) {
          candidates.push_back(v[i]);
          any = true;
        }
      }
      if (!any) break;
    }
  }
  std::set<Tuple> fired_set;
  std::map<std::string, uint64_t> by_op, by_kind, by_mode;
  uint64_t max_n = 0;
  size_t attempts = 0;
  for (; attempts < candidates.size() && static_cast<int64_t>(fired_set.size()) < wanted;
       ++attempts) {
    const auto& [k, n, mode, op] = candidates[attempts];
    Trial t{op, FaultSpec{k, n, (mode & 1) != 0, (mode & 2) != 0}};
    const bool fired = RunTrial(bases_, work_, t, rng(), &totals_);
    if (HasFailure()) {
      std::printf("[io-error] first failure: trial %zu: %s\n", attempts, Describe(t).c_str());
      return;
    }
    if (!fired) continue;  // background I/O made the dry run's count too high
    fired_set.insert(candidates[attempts]);
    ++by_op[TargetName(op)];
    ++by_kind[testutil::FaultOpName(k)];
    ++by_mode[ModeName(t.spec)];
    max_n = std::max(max_n, n);
  }
  EXPECT_EQ(static_cast<int64_t>(fired_set.size()), wanted)
      << "too few distinct trials reached an I/O of their operation";
  auto line = [](const std::map<std::string, uint64_t>& m) {
    std::string s;
    for (const auto& [k, v] : m) s += " " + k + "=" + std::to_string(v);
    return s;
  };
  Report("random", t0, totals_.trials,
         std::to_string(fired_set.size()) + " distinct (kind, N, mode, op) tuples fired, of " +
             std::to_string(attempts) + " tried, " + std::to_string(candidates.size()) +
             " possible");
  std::printf("[io-error random]   I/Os per operation:%s\n", counts.str().c_str());
  std::printf("[io-error random]   tuples by op:%s\n", line(by_op).c_str());
  std::printf("[io-error random]   tuples by kind:%s\n", line(by_kind).c_str());
  std::printf("[io-error random]   tuples by mode:%s; N from 1 to %llu\n", line(by_mode).c_str(),
              static_cast<unsigned long long>(max_n));
}

// Item 4 of issue 11: Store::Close returns the first error of syncing and
// closing; the store refuses every call afterwards.
class CloseTest : public ::testing::Test {
 protected:
  testutil::TempDir tmp_;
};

TEST_F(CloseTest, ReturnsTheFaultOfSyncOrClose) {
  struct Case {
    uint32_t kind;
    bool no_space;
  };
  const Case cases[] = {{testutil::kOpSync, false},
                        {testutil::kOpSync, true},
                        {testutil::kOpClose, false}};
  const std::string base = tmp_.Sub("base");
  fs::create_directories(base);
  Prepare(base + "/db", base + "/keys");
  if (HasFailure()) return;
  int n = 0;
  for (const Case& c : cases) {
    SCOPED_TRACE(std::string(testutil::FaultOpName(c.kind)) + (c.no_space ? " enospc" : ""));
    const std::string work = tmp_.Sub("w" + std::to_string(n++));
    fs::create_directories(work);
    testutil::CopyTree(base, work);
    auto ffs = std::make_shared<FaultFS>(7);
    auto env = testutil::FaultEnv(ffs);
    Options o = StoreOptions(work + "/keys", env.get());
    o.sync_writes = false;  // leaves the WAL unsynced: Close has to sync it
    auto st = Store::Open(o, work + "/db");
    ASSERT_OK(st);
    ASSERT_OK((*st)->PutCall("p0", TestCall("p0", 8, 1)));
    ffs->Inject(FaultSpec{c.kind, 1, true, c.no_space});
    const Status closed = (*st)->Close();
    ffs->Lift();
    EXPECT_GT(ffs->injected(), 0u) << "Close did no I/O of this kind";
    EXPECT_EQ(closed.code(), Code::kIOError) << closed.ToString();
    EXPECT_NE(closed.message().find(testutil::kInjectedMessage), std::string::npos)
        << closed.ToString();
    if (c.no_space) {
      EXPECT_NE(closed.message().find("disk full"), std::string::npos);
    }
    std::printf("[close] %s%s at close (%llu failed, first: %s) -> %s\n",
                testutil::FaultOpName(c.kind), c.no_space ? " (ENOSPC)" : "",
                static_cast<unsigned long long>(ffs->injected()), ffs->first_injected().c_str(),
                closed.ToString().c_str());
    // Closed for good: a second Close is OK, every call refused.
    EXPECT_OK((*st)->Close());
    EXPECT_CODE((*st)->GetCall("p0", Id(0)), Code::kFailedPrecondition);
    st->reset();
  }
}

TEST_F(CloseTest, CleanCloseThenEveryCallIsRefused) {
  const std::string dir = tmp_.Sub("s");
  fs::create_directories(dir);
  Prepare(dir + "/db", dir + "/keys");
  if (HasFailure()) return;
  auto st = Store::Open(BaseOptions(dir + "/keys"), dir + "/db");
  ASSERT_OK(st);
  Store& s = **st;
  auto writer = s.CreateRecording("p0", Id(0), RecordingSpec{.recording_id = "r1"});
  ASSERT_OK(writer);
  ASSERT_OK(s.Close());
  ASSERT_OK(s.Close());
  EXPECT_CODE(s.GetCall("p0", Id(0)), Code::kFailedPrecondition);
  EXPECT_CODE(s.PutCall("p0", TestCall("p0", 1, 5)), Code::kFailedPrecondition);
  EXPECT_CODE(s.DeleteCall("p0", Id(1)), Code::kFailedPrecondition);
  EXPECT_CODE(s.ListCalls("p0", ListQuery{}), Code::kFailedPrecondition);
  EXPECT_CODE(s.CountCalls("p0"), Code::kFailedPrecondition);
  EXPECT_CODE(s.CreateTenant({.tenant_id = "x"}), Code::kFailedPrecondition);
  EXPECT_CODE(s.PurgeTenant("s0"), Code::kFailedPrecondition);
  EXPECT_CODE(s.ListTenants(), Code::kFailedPrecondition);
  EXPECT_CODE(s.DescribeTenant("p0"), Code::kFailedPrecondition);
  EXPECT_CODE(s.Verify(), Code::kFailedPrecondition);
  EXPECT_CODE(s.Stats(), Code::kFailedPrecondition);
  EXPECT_CODE(s.ListReceipts(), Code::kFailedPrecondition);
  EXPECT_CODE(s.ListAudit(), Code::kFailedPrecondition);
  EXPECT_CODE(s.SigningPublicKey(), Code::kFailedPrecondition);
  EXPECT_CODE(s.Flush(), Code::kFailedPrecondition);
  EXPECT_CODE(s.CompactAll(), Code::kFailedPrecondition);
  EXPECT_CODE(s.ListHolds("p0"), Code::kFailedPrecondition);
  EXPECT_CODE(s.RunRetention(0, true), Code::kFailedPrecondition);
  EXPECT_CODE(s.ReconcileKeys(true), Code::kFailedPrecondition);
  EXPECT_CODE((*writer)->Finish(), Code::kFailedPrecondition);  // a writer kept past Close
  writer->reset();                                    // its abort is refused too, no crash
  EXPECT_TRUE(s.ShardPaths().empty());
  st->reset();
  // Everything was synced and closed: the store opens again with every call.
  auto again = Store::Open(BaseOptions(dir + "/keys"), dir + "/db");
  ASSERT_OK(again);
  for (int i = 0; i < kP0Calls; ++i) EXPECT_OK((*again)->GetCall("p0", Id(i)));
  EXPECT_OK((*again)->Close());
}

}  // namespace
}  // namespace callvault
