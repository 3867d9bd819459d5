// T2 (testing.md): power loss.
//
// The store and its key directory run on FaultFS (tests/testutil/fault_fs.h)
// through Options::env and FileKeyProviderOptions::env. Each cycle:
//   1. open the store on a fresh FaultFS (everything on disk counts as
//      durable); in one cycle in eight the power goes during this open, at
//      one of its first 120 mutating I/Os (a crash inside recovery);
//   2. check the store against the model (below) and resolve the operation
//      that was in flight at the last power loss;
//   3. run 1-8 random operations (CreateTenant, PutCall, PutCalls,
//      DeleteCall, PurgeTenant, Flush) with a seeded RNG; the power goes at
//      a random mutating I/O among the next 1..12*ops (the operation it
//      interrupts is "in flight"), or after the last operation returned;
//   4. destroy the store (every I/O fails from the power loss on, so
//      nothing more reaches the disk) and rewrite the files to what
//      survives, in one of three modes (one TEST each):
//        DropUnsynced  every file cut to what was synced;
//        RandomTail    every file cut at a random point of its unsynced tail;
//        UndoDirOps    unsynced data dropped, and every create, rename and
//                      unlink (files and directories, store and key
//                      directory) not followed by an fsync of its directory
//                      undone.
// InitUndoDirOps cuts the power at every mutating I/O of a store's creation
// (kUndoDirOps). The checks after each reopen: 0 failed opens (an open may fail only when
// the power went inside it); every acknowledged (OK) write reads back as
// its last acknowledged version and every deleted or never-written call is
// absent (so no hole and nothing resurrected); the operation in flight has
// all or none of its effect; an acknowledged purge stays purged, its KEK
// generation gone and its receipt in a chain that verifies (one receipt per
// purge); a tenant is live with its key and column family or not live with
// neither (CheckKeysAndFamilies); Verify() opens every record; CountCalls
// matches.
//
// Deterministic per seed: the workload and the power-loss points are drawn
// from the seed; RocksDB's background threads could in principle shift the
// I/O count (the workload keeps memtables far from full, and Flush waits).
// CI: 500 cycles per mode. CALLVAULT_SOAK=1: 5,000. CALLVAULT_T2_CYCLES=N
// overrides; CALLVAULT_SEED=S replays.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <optional>
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
using testutil::PowerLossMode;

constexpr int64_t kT0 = 1'767'225'600'000'000;  // 2026-01-01T00:00:00Z
constexpr int kPersistent = 2;                  // p0, p1: never purged
constexpr int kScratch = 3;                     // s0..s2: created and purged
constexpr int kTenants = kPersistent + kScratch;

std::string TenantName(int t) {
  return (t < kPersistent ? "p" : "s") + std::to_string(t < kPersistent ? t : t - kPersistent);
}
int CallSlots(int t) { return t < kPersistent ? 12 : 6; }
std::string CallId(int idx) { return "call-" + std::to_string(idx); }

Call VersionedCall(int t, int idx, uint64_t version) {
  Call c = testutil::MakeCall(CallId(idx), kT0 + static_cast<int64_t>(version % 7) * 1000 + idx,
                              TenantName(t) + "/" + std::to_string(idx) + "/v" +
                                  std::to_string(version));
  c.created_at = kT0 + static_cast<int64_t>(version);
  c.updated_at = c.created_at;
  return c;
}

Options StoreOptions(const std::string& keys, rocksdb::Env* env) {
  Options o = testutil::DefaultOptions(keys);
  auto kp = NewFileKeyProvider(keys, {.create_if_missing = true, .env = env});
  if (!kp.ok()) std::abort();
  o.key_provider = *kp;
  o.env = env;
  o.max_tenants_per_shard = 2;
  o.background_threads = 1;
  return o;
}

enum class TState { kAbsent, kLive, kPurged };

struct Model {
  TState state[kTenants] = {};
  std::map<int, uint64_t> calls[kTenants];  // idx -> version
  uint64_t receipts = 0;
  bool live(int t) const { return state[t] == TState::kLive; }
};

struct Op {
  uint64_t seq = 0;
  char type = 0;  // P put, M batch, D delete, C create, X purge, F flush
  int tenant = 0;
  std::vector<int> calls;
  std::string Describe() const {
    return std::string(1, type) + "#" + std::to_string(seq) + " " + TenantName(tenant) + " " +
           ::testing::PrintToString(calls);
  }
};

// Applies an operation that returned `code` before any power loss; returns
// a problem, or "".
std::string Acknowledge(Model* m, const Op& op, const Status& s) {
  const Code code = s.code();
  const bool live = m->live(op.tenant);
  const bool ok = code == Code::kOk;
  const std::string what = op.Describe() + " returned " + s.ToString();
  switch (op.type) {
    case 'F':
      return ok ? "" : what;
    case 'P':
    case 'M':
      if (ok && live) {
        for (int c : op.calls) m->calls[op.tenant][c] = op.seq;
        return "";
      }
      if (!ok && !live && (code == Code::kTenantPurged || code == Code::kNotFound)) return "";
      return what;
    case 'D': {
      const bool present = live && m->calls[op.tenant].count(op.calls[0]);
      if (ok && present) {
        m->calls[op.tenant].erase(op.calls[0]);
        return "";
      }
      if (!ok && !live && (code == Code::kTenantPurged || code == Code::kNotFound)) return "";
      if (!ok && live && !present && code == Code::kNotFound) return "";
      return what;
    }
    case 'C':
      if (ok && !live) {
        m->state[op.tenant] = TState::kLive;
        m->calls[op.tenant].clear();
        return "";
      }
      if (!ok && live && code == Code::kAlreadyExists) return "";
      return what;
    case 'X':
      if (ok && live) {
        m->state[op.tenant] = TState::kPurged;
        m->calls[op.tenant].clear();
        ++m->receipts;
        return "";
      }
      if (ok && m->state[op.tenant] == TState::kPurged) return "";
      if (!ok && m->state[op.tenant] == TState::kAbsent && code == Code::kNotFound) return "";
      return what;
  }
  return "unknown op";
}

Op ChooseOp(std::mt19937_64& rng, const Model& m, uint64_t seq) {
  auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<uint64_t>(n)); };
  auto scratch = [&](bool want_live) {
    std::vector<int> good;
    for (int t = kPersistent; t < kTenants; ++t) {
      if (m.live(t) == want_live) good.push_back(t);
    }
    if (good.empty() || pick(100) >= 85) return kPersistent + pick(kScratch);
    return good[static_cast<size_t>(pick(static_cast<int>(good.size())))];
  };
  Op op;
  op.seq = seq;
  op.tenant = pick(100) < 70 ? pick(kPersistent) : scratch(true);
  const int r = pick(100);
  if (r < 35) {
    op.type = 'P';
    op.calls = {pick(CallSlots(op.tenant))};
  } else if (r < 50) {
    op.type = 'M';
    std::set<int> idx;
    const int n = std::min(2 + pick(3), CallSlots(op.tenant));
    while (static_cast<int>(idx.size()) < n) idx.insert(pick(CallSlots(op.tenant)));
    op.calls.assign(idx.begin(), idx.end());
  } else if (r < 65) {
    op.type = 'D';
    const auto& present = m.calls[op.tenant];
    if (!present.empty() && pick(100) < 80) {
      auto it = present.begin();
      std::advance(it, pick(static_cast<int>(present.size())));
      op.calls = {it->first};
    } else {
      op.calls = {pick(CallSlots(op.tenant))};
    }
  } else if (r < 80) {
    op.type = 'C';
    op.tenant = scratch(false);
  } else if (r < 95) {
    op.type = 'X';
    op.tenant = scratch(true);
  } else {
    op.type = 'F';
  }
  return op;
}

Status Run(Store& st, const Op& op) {
  const std::string tenant = TenantName(op.tenant);
  switch (op.type) {
    case 'P':
      return st.PutCall(tenant, VersionedCall(op.tenant, op.calls[0], op.seq)).status();
    case 'M': {
      std::vector<Call> calls;
      for (int c : op.calls) calls.push_back(VersionedCall(op.tenant, c, op.seq));
      return st.PutCalls(tenant, calls).status();
    }
    case 'D':
      return st.DeleteCall(tenant, CallId(op.calls[0]));
    case 'C':
      return st.CreateTenant({.tenant_id = tenant}).status();
    case 'X':
      return st.PurgeTenant(tenant).status();
    case 'F':
      return st.Flush();
  }
  return Status::Internal("unknown op");
}

struct Stats {
  uint64_t acked = 0, in_flight = 0, open_crashes = 0, after_last_op = 0, reads = 0;
  std::map<char, uint64_t> in_flight_by_type, in_flight_applied;
  std::set<std::string> stray;
};

// Reads call `idx` of live tenant `t`: the version found (0 if absent),
// failing the test unless it is one of `candidates`.
uint64_t ReadVersion(Store& st, int t, int idx, const std::vector<uint64_t>& candidates) {
  auto got = st.GetCall(TenantName(t), CallId(idx));
  const std::string where = TenantName(t) + "/" + CallId(idx);
  if (got.status().code() == Code::kNotFound) {
    if (std::find(candidates.begin(), candidates.end(), 0) != candidates.end()) return 0;
    ADD_FAILURE() << where << " missing; expected version " << ::testing::PrintToString(candidates);
    return 0;
  }
  if (!got.ok()) {
    ADD_FAILURE() << where << ": " << got.status().ToString();
    return 0;
  }
  for (uint64_t c : candidates) {
    if (c != 0 && *got == VersionedCall(t, idx, c)) return c;
  }
  ADD_FAILURE() << where << " holds \"" << got->title << "\", none of the versions "
                << ::testing::PrintToString(candidates);
  return 0;
}

// Checks the freshly opened store against `m`, with `pending` (in flight at
// the power loss) allowed either outcome; updates `m` to what is there.
void VerifyAndResolve(Store& st, const std::string& keys, Model* m,
                      const std::optional<Op>& pending, Stats* stats) {
  for (int t = 0; t < kTenants; ++t) {
    auto d = st.DescribeTenant(TenantName(t));
    const bool live = d.ok() && d->state == TenantState::kActive;
    if (d.ok()) {
      EXPECT_TRUE(d->state == TenantState::kActive || d->state == TenantState::kPurged)
          << TenantName(t) << " left " << TenantStateName(d->state);
    } else {
      EXPECT_CODE(d, Code::kNotFound);
    }
    const bool ambiguous =
        pending && pending->tenant == t &&
        ((pending->type == 'C' && !m->live(t)) || (pending->type == 'X' && m->live(t)));
    if (ambiguous && live != m->live(t)) {
      ++stats->in_flight_applied[pending->type];
      if (live) {
        m->state[t] = TState::kLive;
      } else {
        m->state[t] = TState::kPurged;
        ++m->receipts;
      }
      m->calls[t].clear();
    }
    EXPECT_EQ(live, m->live(t)) << TenantName(t) << (m->live(t) ? " lost" : " came back");
    if (m->state[t] == TState::kPurged) {
      EXPECT_TRUE(d.ok() && d->state == TenantState::kPurged) << TenantName(t) << " not purged";
    }
  }
  for (int t = 0; t < kTenants; ++t) {
    if (!m->live(t)) {
      auto got = st.GetCall(TenantName(t), CallId(0));
      EXPECT_TRUE(got.status().code() == Code::kTenantPurged ||
                  got.status().code() == Code::kNotFound)
          << TenantName(t) << " is not live but read: " << got.status().ToString();
      continue;
    }
    std::vector<bool> outcomes;
    for (int idx = 0; idx < CallSlots(t); ++idx) {
      auto it = m->calls[t].find(idx);
      const uint64_t old = it == m->calls[t].end() ? 0 : it->second;
      const bool touched =
          pending && pending->tenant == t &&
          (pending->type == 'P' || pending->type == 'M' || pending->type == 'D') &&
          std::find(pending->calls.begin(), pending->calls.end(), idx) != pending->calls.end();
      std::vector<uint64_t> candidates = {old};
      if (touched) candidates.push_back(pending->type == 'D' ? 0 : pending->seq);
      const uint64_t found = ReadVersion(st, t, idx, candidates);
      ++stats->reads;
      if (!touched) continue;
      outcomes.push_back(found != old);
      if (found == 0) {
        m->calls[t].erase(idx);
      } else {
        m->calls[t][idx] = found;
      }
    }
    if (!outcomes.empty()) {
      const bool all = std::all_of(outcomes.begin(), outcomes.end(), [](bool b) { return b; });
      const bool none = std::none_of(outcomes.begin(), outcomes.end(), [](bool b) { return b; });
      EXPECT_TRUE(all || none) << pending->Describe() << " applied in part";
      if (all) ++stats->in_flight_applied[pending->type];
    }
    auto n = st.CountCalls(TenantName(t));
    ASSERT_OK(n);
    EXPECT_EQ(*n, m->calls[t].size()) << TenantName(t) << ": time index out of step";
  }
  crashtest::KeyCheck kc = crashtest::CheckKeysAndFamilies(st, keys);
  EXPECT_TRUE(kc.problems.empty()) << ::testing::PrintToString(kc.problems);
  stats->stray.insert(kc.stray.begin(), kc.stray.end());
  auto receipts = st.ListReceipts();
  ASSERT_OK(receipts);
  EXPECT_EQ(receipts->size(), m->receipts) << "one receipt per purge";
  const crashtest::KeyDirFiles files = crashtest::ScanKeyDir(keys);
  for (const auto& r : *receipts) {
    EXPECT_FALSE(r.kek_generation_retired != 0 &&
                 std::count(files.keks.begin(), files.keks.end(), r.kek_generation_retired))
        << "KEK generation " << r.kek_generation_retired << " retired by receipt " << r.sequence
        << " exists again";
  }
  auto pk = st.SigningPublicKey();
  ASSERT_OK(pk);
  EXPECT_OK(VerifyReceiptChain(*receipts, *pk));
  auto v = st.Verify();
  ASSERT_OK(v);
  EXPECT_EQ(v->records_failed, 0u) << ::testing::PrintToString(v->failures);
}

void RunPowerLoss(PowerLossMode mode) {
  const uint64_t seed = crashtest::SeedFromEnv();
  const int64_t cycles =
      crashtest::EnvInt("CALLVAULT_T2_CYCLES", crashtest::SoakMode() ? 5000 : 500);
  std::printf("[power-loss %s] seed=%llu cycles=%lld (replay: CALLVAULT_SEED=%llu)\n",
              testutil::PowerLossModeName(mode), static_cast<unsigned long long>(seed),
              static_cast<long long>(cycles), static_cast<unsigned long long>(seed));
  std::fflush(stdout);
  testutil::TempDir tmp;
  const std::string db = tmp.Sub("db"), keys = tmp.Sub("keys");
  Model m;
  {  // The persistent tenants, on a plain FileSystem: durable.
    auto st = Store::Open(StoreOptions(keys, rocksdb::Env::Default()), db);
    ASSERT_OK(st);
    for (int t = 0; t < kPersistent; ++t) {
      ASSERT_OK((*st)->CreateTenant({.tenant_id = TenantName(t)}));
      m.state[t] = TState::kLive;
    }
  }
  std::mt19937_64 rng(seed);
  Stats stats;
  std::optional<Op> pending;
  uint64_t seq = 1;
  std::string last_loss;
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t cycle = 0; cycle < cycles; ++cycle) {
    SCOPED_TRACE("cycle " + std::to_string(cycle) + " (seed " + std::to_string(seed) + ")");
    auto ffs = std::make_shared<FaultFS>(rng());
    auto env = testutil::FaultEnv(ffs);
    const bool crash_in_open = rng() % 8 == 0;
    if (crash_in_open) ffs->FreezeAt(1 + rng() % 120);
    auto opened = Store::Open(StoreOptions(keys, env.get()), db);
    if (!opened.ok() || ffs->frozen()) {
      ASSERT_TRUE(ffs->frozen()) << "failed open: " << opened.status().ToString()
                                 << "\nlast power loss dropped:" << last_loss;
      if (opened.ok()) opened.value().reset();
      last_loss = ffs->SimulatePowerLoss(mode);
      ++stats.open_crashes;
      continue;
    }
    ffs->FreezeAt(0);
    Store& st = **opened;
    VerifyAndResolve(st, keys, &m, pending, &stats);
    if (::testing::Test::HasFailure()) {
      std::printf("[power-loss] failed at cycle %lld after %s; in flight: %s; last power loss "
                  "dropped:%s\n",
                  static_cast<long long>(cycle), testutil::PowerLossModeName(mode),
                  pending ? pending->Describe().c_str() : "none", last_loss.c_str());
      return;
    }
    pending.reset();

    const int ops = 1 + static_cast<int>(rng() % 8);
    ffs->FreezeAt(1 + rng() % (12 * static_cast<uint64_t>(ops)));
    for (int i = 0; i < ops; ++i) {
      Op op = ChooseOp(rng, m, seq++);
      Status s = Run(st, op);
      if (ffs->frozen() && !s.ok()) {
        pending = op;  // the power went during it: either outcome
        ++stats.in_flight;
        ++stats.in_flight_by_type[op.type];
        break;
      }
      // Returned OK (even if the power went during its last steps), or
      // failed before the power loss: acknowledged as it returned.
      std::string problem = Acknowledge(&m, op, s);
      ASSERT_EQ(problem, "") << "before the power loss";
      ++stats.acked;
      if (ffs->frozen()) break;
    }
    if (!ffs->frozen()) {
      ffs->Freeze();
      ++stats.after_last_op;
    }
    opened.value().reset();  // the store goes; nothing it writes now lands
    last_loss = ffs->SimulatePowerLoss(mode);
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::ostringstream o;
  o << "[power-loss " << testutil::PowerLossModeName(mode) << "] " << cycles << " cycles in "
    << secs << " s: " << stats.acked << " operations acknowledged; " << stats.in_flight
    << " in flight at the power loss (";
  for (char t : std::string("PMDCXF")) {
    o << t << " " << stats.in_flight_by_type[t] << " applied " << stats.in_flight_applied[t]
      << (t == 'F' ? "" : ", ");
  }
  o << "); " << stats.after_last_op << " losses after the last operation; "
    << stats.open_crashes << " inside a recovering open; " << stats.reads
    << " call reads checked; 0 failed opens\n";
  std::printf("%s", o.str().c_str());
  if (!stats.stray.empty()) {
    std::printf("[power-loss] leftover files in the key directory: %s\n",
                ::testing::PrintToString(stats.stray).c_str());
  }
}

// Store creation (Open with create_if_missing, the key directory made by
// NewFileKeyProvider) with the power going at its k-th mutating I/O, for
// every k, in kUndoDirOps mode (creates and renames not covered by a
// directory fsync undone). An init that returned OK must survive whole:
// the store opens without create_if_missing and takes a tenant. One cut
// short must leave something a second init completes (or adopts).
TEST(PowerLossTest, InitUndoDirOps) {
  const uint64_t seed = crashtest::SeedFromEnv();
  std::printf("[power-loss init] seed=%llu (replay: CALLVAULT_SEED=%llu)\n",
              static_cast<unsigned long long>(seed), static_cast<unsigned long long>(seed));
  testutil::TempDir tmp;
  const auto t0 = std::chrono::steady_clock::now();
  uint64_t k = 1;
  for (; k < 2000; ++k) {
    SCOPED_TRACE("power loss at mutating I/O " + std::to_string(k));
    const std::string root = tmp.Sub(std::to_string(k));
    const std::string db = root + "/db", keys = root + "/keys";
    std::filesystem::create_directories(root);
    auto ffs = std::make_shared<FaultFS>(seed + k);
    auto env = testutil::FaultEnv(ffs);
    ffs->FreezeAt(k);
    bool acknowledged = false;
    {
      auto kp = NewFileKeyProvider(keys, {.create_if_missing = true, .env = env.get()});
      if (kp.ok()) {
        Options o = StoreOptions(keys, rocksdb::Env::Default());
        o.key_provider = *kp;
        o.env = env.get();
        auto st = Store::Open(o, db);
        acknowledged = st.ok() && !ffs->frozen();
        if (!st.ok()) {
          EXPECT_TRUE(ffs->frozen()) << "init failed without a power loss: "
                                     << st.status().ToString();
        }
        ffs->Freeze();
      }
    }
    const std::string dropped = ffs->SimulatePowerLoss(PowerLossMode::kUndoDirOps);
    auto quiet = std::make_shared<FaultFS>(0);  // injects nothing, skips real fsyncs
    auto quiet_env = testutil::FaultEnv(quiet);
    Options o = StoreOptions(keys, quiet_env.get());
    o.create_if_missing = !acknowledged;
    auto st = Store::Open(o, db);
    ASSERT_TRUE(st.ok()) << (acknowledged ? "acknowledged init lost: " : "init cannot complete: ")
                         << st.status().ToString() << "\ndropped:" << dropped;
    ASSERT_OK((*st)->CreateTenant({.tenant_id = "t"}));
    ASSERT_OK((*st)->PutCall("t", VersionedCall(0, 0, 1)));
    if (acknowledged) break;  // the power went after the whole init
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("[power-loss init] a power loss at each of the %llu mutating I/Os of an init, and "
              "one after it, in %.1f s: every init completed or was adopted; the acknowledged "
              "one survived\n",
              static_cast<unsigned long long>(k - 1), secs);
}

TEST(PowerLossTest, DropUnsynced) { RunPowerLoss(PowerLossMode::kDropUnsynced); }
TEST(PowerLossTest, RandomTail) { RunPowerLoss(PowerLossMode::kRandomTail); }
TEST(PowerLossTest, UndoDirOps) { RunPowerLoss(PowerLossMode::kUndoDirOps); }

}  // namespace
}  // namespace callvault
