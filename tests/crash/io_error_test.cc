// T4 (testing.md): I/O errors.
//
// A prepared store (p0 with acknowledged calls; s0 with calls, to purge;
// s1 absent, to create; a tenant purged before, so receipts chain) is
// copied afresh for every trial and opened on FaultFS
// (tests/testutil/fault_fs.h). Then FaultFS fails the Nth I/O operation of
// a kind (write, sync, directory sync, rename, create, delete, read, or any
// of them), once or forever, during one operation:
//   CreateTenant(s1), PurgeTenant(s0) (which is also the KEK rotation: the
//   store has no other public rotation), PutCall(p0) with sync;
// for N = 1, 2, ... until the operation runs without reaching the Nth I/O
// (the keyring and purge paths fully: every kind, both modes; "any kind"
// only forever, since failing the Nth I/O of any kind once is one of the
// single-kind trials), and for PutCall 200 random (kind, N, mode) that
// reach one of its I/Os. After the operation the fault lifts, one more
// synced PutCall runs in the same process, the store is closed,
// and then the same files are checked twice: as they are (a clean reopen),
// and after a power loss (FaultFS kUndoDirOps: whatever was not durably
// synced is gone). Passes when:
//   - the failed operation returns a non-OK status whose message names the
//     failed I/O (the injected error text), and nothing crashes;
//   - an operation that returned OK has its whole effect after both
//     reopens, so an OK after a failed fsync (a retried fsync) shows as
//     lost data after the power loss;
//   - a failed operation has all or none of its effect: a failed create
//     leaves s1 live with its key and family or absent; a failed purge
//     leaves s0 live with every call readable, or purged (no key, no
//     family, a receipt); a failed put leaves the old call or the new one;
//   - every previously acknowledged write is there; both reopens succeed;
//     keys and families match the live tenants; receipts verify.
//
// CALLVAULT_SEED=S replays the random part; CALLVAULT_T4_PUTS=N sets the
// number of random PutCall trials (default 200; 1,000 with CALLVAULT_SOAK=1).
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <random>
#include <set>
#include <sstream>

#include "callvault/store.h"
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

Options StoreOptions(const std::string& keys, rocksdb::Env* env) {
  Options o = testutil::DefaultOptions(keys);
  auto kp = NewFileKeyProvider(keys, {.create_if_missing = false, .env = env});
  if (!kp.ok()) std::abort();
  o.key_provider = *kp;
  o.env = env;
  o.create_if_missing = false;
  o.max_tenants_per_shard = 2;
  o.background_threads = 1;
  return o;
}

enum class Target { kCreate, kPurge, kPut };
const char* TargetName(Target t) {
  return t == Target::kCreate ? "create" : t == Target::kPurge ? "purge" : "put";
}

constexpr int kBaseCalls = 4;

// The prepared store: p0 (calls 0..3 at version 1), s0 (calls 0..2),
// "old" created and purged.
void Prepare(const std::string& db, const std::string& keys) {
  Options o = testutil::DefaultOptions(keys);
  o.max_tenants_per_shard = 2;
  auto st = Store::Open(o, db);
  ASSERT_OK(st);
  ASSERT_OK((*st)->CreateTenant({.tenant_id = "old"}));
  ASSERT_OK((*st)->PutCall("old", TestCall("old", 0, 1)));
  ASSERT_OK((*st)->PurgeTenant("old"));
  ASSERT_OK((*st)->CreateTenant({.tenant_id = "p0"}));
  ASSERT_OK((*st)->CreateTenant({.tenant_id = "s0"}));
  for (int i = 0; i < kBaseCalls; ++i) ASSERT_OK((*st)->PutCall("p0", TestCall("p0", i, 1)));
  for (int i = 0; i < 3; ++i) ASSERT_OK((*st)->PutCall("s0", TestCall("s0", i, 1)));
}

struct Trial {
  Target target;
  FaultSpec spec;
};

struct Outcome {
  bool fired = false;
  Status op;         // the faulted operation
  Status follow_up;  // the synced put after the fault lifted
};

struct Totals {
  uint64_t trials = 0, failed_ops = 0, ok_despite_fault = 0, reopens = 0, rocksdb_rewritten = 0;
  std::map<std::string, uint64_t> applied_after_failure;  // target -> count
  std::map<std::string, uint64_t> codes;
  std::set<std::string> examples;  // one message per (target, kind)
};

// Checks the store at db/keys (opened on a plain FileSystem) after `trial`.
void CheckAfter(const std::string& db, const std::string& keys, const Trial& trial,
                const Outcome& out, const std::string& variant, Totals* totals) {
  SCOPED_TRACE(variant);
  // A FaultFS that injects nothing: the same files, without real fsyncs
  // (FaultFS never calls them), which would only slow the suite down.
  auto quiet = std::make_shared<FaultFS>(0);
  auto env = testutil::FaultEnv(quiet);
  auto opened = Store::Open(StoreOptions(keys, env.get()), db);
  ASSERT_OK(opened);  // 0 failed opens
  ++totals->reopens;
  Store& st = **opened;
  // Acknowledged before: p0's calls; call 1 was rewritten by the put.
  for (int i = 0; i < kBaseCalls; ++i) {
    auto got = st.GetCall("p0", "call-" + std::to_string(i));
    ASSERT_OK(got);
    if (i == 1 && trial.target == Target::kPut) {
      const bool is_new = *got == TestCall("p0", 1, 2);
      if (out.op.ok()) {
        EXPECT_TRUE(is_new) << "acknowledged put lost";
      } else {
        EXPECT_TRUE(is_new || *got == TestCall("p0", 1, 1)) << "put applied in part";
        if (is_new) ++totals->applied_after_failure["put"];
      }
    } else {
      EXPECT_EQ(*got, TestCall("p0", i, 1)) << "call " << i;
    }
  }
  auto follow = st.GetCall("p0", "call-9");
  if (out.follow_up.ok()) {
    EXPECT_OK(follow);  // acknowledged after the fault lifted
    if (follow.ok()) {
      EXPECT_EQ(*follow, TestCall("p0", 9, 3));
    }
  } else if (follow.ok()) {
    EXPECT_EQ(*follow, TestCall("p0", 9, 3));
  } else {
    EXPECT_CODE(follow, Code::kNotFound);
  }
  // s1: created or absent.
  auto s1 = st.DescribeTenant("s1");
  if (trial.target == Target::kCreate && out.op.ok()) {
    EXPECT_TRUE(s1.ok() && s1->state == TenantState::kActive) << "acknowledged create lost";
  }
  if (s1.ok()) {
    EXPECT_EQ(trial.target, Target::kCreate) << "s1 exists without a create";
    EXPECT_EQ(s1->state, TenantState::kActive);
    if (!out.op.ok()) ++totals->applied_after_failure["create"];
    EXPECT_OK(st.PutCall("s1", TestCall("s1", 0, 1)));  // usable: has its key and family
    auto back = st.GetCall("s1", "call-0");
    EXPECT_OK(back);
  } else {
    EXPECT_CODE(s1, Code::kNotFound);
  }
  // s0: live with every call, or purged.
  auto s0 = st.DescribeTenant("s0");
  ASSERT_OK(s0);
  EXPECT_TRUE(s0->state == TenantState::kActive || s0->state == TenantState::kPurged)
      << "s0 left " << TenantStateName(s0->state);
  if (trial.target == Target::kPurge && out.op.ok()) {
    EXPECT_EQ(s0->state, TenantState::kPurged) << "acknowledged purge came back";
  }
  if (trial.target != Target::kPurge) {
    EXPECT_EQ(s0->state, TenantState::kActive);
  }
  if (s0->state == TenantState::kActive) {
    for (int i = 0; i < 3; ++i) {
      auto got = st.GetCall("s0", "call-" + std::to_string(i));
      ASSERT_TRUE(got.ok()) << "s0 live but call " << i
                            << " unreadable (half purged): " << got.status().ToString();
      EXPECT_EQ(*got, TestCall("s0", i, 1));
    }
  } else {
    EXPECT_CODE(st.GetCall("s0", "call-0"), Code::kTenantPurged);
    if (!out.op.ok()) ++totals->applied_after_failure["purge"];
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
}

// One trial on a fresh copy of the prepared store. Returns whether the
// fault fired (false: the operation has fewer than N such I/Os).
bool RunTrial(const std::string& base, const std::string& work, const Trial& trial,
              uint64_t seed, Totals* totals) {
  std::error_code ec;
  fs::remove_all(work, ec);
  fs::create_directories(work);
  testutil::CopyTree(base, work);
  const std::string db = work + "/db", keys = work + "/keys";
  const std::string what = std::string(TargetName(trial.target)) + " " +
                           testutil::FaultOpName(trial.spec.kinds) + " N=" +
                           std::to_string(trial.spec.nth) + (trial.spec.forever ? " forever" : " once");
  SCOPED_TRACE(what);
  Outcome out;
  auto ffs = std::make_shared<FaultFS>(seed);
  {
    auto env = testutil::FaultEnv(ffs);
    auto opened = Store::Open(StoreOptions(keys, env.get()), db);
    EXPECT_OK(opened);
    if (!opened.ok()) return false;
    Store& st = **opened;
    ffs->Inject(trial.spec);
    switch (trial.target) {
      case Target::kCreate:
        out.op = st.CreateTenant({.tenant_id = "s1"}).status();
        break;
      case Target::kPurge:
        out.op = st.PurgeTenant("s0").status();
        break;
      case Target::kPut:
        out.op = st.PutCall("p0", TestCall("p0", 1, 2)).status();
        break;
    }
    out.fired = ffs->injected() > 0;
    ffs->Lift();
    out.follow_up = st.PutCall("p0", TestCall("p0", 9, 3)).status();
    if (!out.fired) {
      EXPECT_TRUE(out.op.ok()) << "no fault, yet the operation failed: " << out.op.ToString();
    } else if (out.op.ok()) {
      ++totals->ok_despite_fault;
    } else {
      ++totals->failed_ops;
      ++totals->codes[CodeName(out.op.code())];
      EXPECT_FALSE(out.op.message().empty());
      // RocksDB 7.8 rewrites one failure: when opening IDENTITY fails at a
      // new instance's open and a second try succeeds, it reports "Direct
      // I/O is not supported" (db_impl_open.cc). Every other error must
      // carry the failed I/O's own message.
      const bool rewritten =
          out.op.message().find("Direct I/O is not supported") != std::string::npos;
      if (rewritten) ++totals->rocksdb_rewritten;
      EXPECT_TRUE(rewritten ||
                  out.op.message().find(testutil::kInjectedMessage) != std::string::npos)
          << "the error does not name the failed I/O: " << out.op.ToString();
      const std::string key = std::string(TargetName(trial.target)) + "/" +
                              testutil::FaultOpName(trial.spec.kinds);
      if (totals->examples.size() < 400) totals->examples.insert(key + ": " + out.op.ToString());
    }
    opened.value().reset();
  }
  ++totals->trials;
  if (::testing::Test::HasFailure()) return out.fired;
  // The files as the process left them, then after a power loss.
  const std::string clean = work + "-clean";
  fs::remove_all(clean, ec);
  fs::create_directories(clean);
  testutil::CopyTree(work, clean);
  CheckAfter(clean + "/db", clean + "/keys", trial, out, "clean reopen", totals);
  if (::testing::Test::HasFailure()) return out.fired;
  const std::string dropped = ffs->SimulatePowerLoss(testutil::PowerLossMode::kUndoDirOps);
  CheckAfter(db, keys, trial, out, "reopen after power loss (dropped:" + dropped + ")", totals);
  fs::remove_all(clean, ec);
  return out.fired;
}

class IoErrorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    seed_ = crashtest::SeedFromEnv();
    std::printf("[io-error] seed=%llu (replay: CALLVAULT_SEED=%llu)\n",
                static_cast<unsigned long long>(seed_), static_cast<unsigned long long>(seed_));
    std::fflush(stdout);
    base_ = tmp_.Sub("base");
    work_ = tmp_.Sub("work");
    fs::create_directories(base_);
    Prepare(base_ + "/db", base_ + "/keys");
  }

  // Every kind, once and forever, N = 1.. until the fault no longer fires.
  void Exhaustive(Target target) {
    const auto t0 = std::chrono::steady_clock::now();
    std::mt19937_64 rng(seed_);
    const uint32_t kinds[] = {testutil::kOpWrite,  testutil::kOpSync,   testutil::kOpDirSync,
                              testutil::kOpRename, testutil::kOpCreate, testutil::kOpDelete,
                              testutil::kOpRead,   testutil::kOpAll};
    std::ostringstream per_kind;
    for (uint32_t k : kinds) {
      for (bool forever : {false, true}) {
        // Failing the Nth I/O of any kind once is the same trial as failing
        // that I/O by its own kind: only "any, forever" is new.
        if (k == testutil::kOpAll && !forever) continue;
        uint64_t n = 1;
        for (; n < 1000; ++n) {
          Trial t{target, FaultSpec{k, n, forever}};
          if (!RunTrial(base_, work_, t, rng(), &totals_)) break;
          if (HasFailure()) {
            std::printf("[io-error] first failure: %s %s N=%llu %s\n", TargetName(target),
                        testutil::FaultOpName(k), static_cast<unsigned long long>(n),
                        forever ? "forever" : "once");
            return;
          }
        }
        if (!forever) per_kind << " " << testutil::FaultOpName(k) << "=" << n - 1;
      }
    }
    Report(target, t0, per_kind.str());
  }

  void Report(Target target, std::chrono::steady_clock::time_point t0, const std::string& extra) {
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("[io-error %s] %llu trials in %.1f s (I/Os of each kind in the operation:%s); "
                "%llu failed with the fault, %llu returned OK despite it (the fault hit a "
                "step after the durable point); %llu reopens, 0 failed\n",
                TargetName(target), static_cast<unsigned long long>(totals_.trials), secs,
                extra.c_str(), static_cast<unsigned long long>(totals_.failed_ops),
                static_cast<unsigned long long>(totals_.ok_despite_fault),
                static_cast<unsigned long long>(totals_.reopens));
    if (totals_.rocksdb_rewritten > 0) {
      std::printf("[io-error %s]   %llu errors worded by RocksDB as \"Direct I/O is not "
                  "supported\" (a failed read of IDENTITY at a shard's open)\n",
                  TargetName(target), static_cast<unsigned long long>(totals_.rocksdb_rewritten));
    }
    for (const auto& [k, n] : totals_.applied_after_failure) {
      std::printf("[io-error %s]   failed %s found applied after recovery (per reopen): %llu\n",
                  TargetName(target), k.c_str(), static_cast<unsigned long long>(n));
    }
    for (const auto& [k, n] : totals_.codes) {
      std::printf("[io-error %s]   code %s: %llu\n", TargetName(target), k.c_str(),
                  static_cast<unsigned long long>(n));
    }
    size_t shown = 0;
    std::string last_kind;
    for (const auto& e : totals_.examples) {
      const std::string kind = e.substr(0, e.find(':'));
      if (kind == last_kind) continue;
      last_kind = kind;
      if (++shown > 12) break;
      std::printf("[io-error %s]   e.g. %s\n", TargetName(target), e.c_str());
    }
  }

  testutil::TempDir tmp_;
  std::string base_, work_;
  uint64_t seed_ = 0;
  Totals totals_;
};

TEST_F(IoErrorTest, CreateTenant) { Exhaustive(Target::kCreate); }
TEST_F(IoErrorTest, PurgeTenant) { Exhaustive(Target::kPurge); }

TEST_F(IoErrorTest, PutCallRandom) {
  // Random (kind, N, once/forever) until `trials` of them hit an I/O of the
  // put (a synced put has few: the WAL append, its sync, and the WAL
  // directory's sync after a new WAL file).
  const int64_t trials =
      crashtest::EnvInt("CALLVAULT_T4_PUTS", crashtest::SoakMode() ? 1000 : 200);
  const auto t0 = std::chrono::steady_clock::now();
  std::mt19937_64 rng(seed_);
  const uint32_t kinds[] = {testutil::kOpWrite, testutil::kOpSync, testutil::kOpDirSync,
                            testutil::kOpAll, testutil::kOpMutating};
  int64_t fired = 0, attempts = 0;
  for (; fired < trials && attempts < 4 * trials; ++attempts) {
    Trial t{Target::kPut, FaultSpec{kinds[rng() % std::size(kinds)], 1 + rng() % 3, rng() % 2 == 0}};
    if (RunTrial(base_, work_, t, rng(), &totals_)) ++fired;
    if (HasFailure()) {
      std::printf("[io-error] first failure: trial %lld\n", static_cast<long long>(attempts));
      return;
    }
  }
  EXPECT_EQ(fired, trials) << "too few trials reached an I/O of the put";
  Report(Target::kPut, t0, " random; " + std::to_string(fired) + " of " +
                               std::to_string(attempts) + " reached it");
}

}  // namespace
}  // namespace callvault
