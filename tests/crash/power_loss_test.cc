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
//      DeleteCall, PurgeTenant, Flush, and recordings: CreateRecording,
//      Append of 1-1.25 MiB in 256 KiB pieces, Finish, so a sealed full
//      chunk, above min_blob_size (1 MiB), goes to a blob file at the next
//      compaction) with a seeded RNG; the power goes at
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
//        TornGarbled   every file cut at a random point of its unsynced
//                      tail and one sector of what is kept of that tail
//                      overwritten with random bytes or zeros: a torn write
//                      that corrupts, never touching a synced byte, so
//                      recovery must stay quiet and lose nothing
//                      acknowledged;
//   5. before any open (which would run recovery and could repair
//      things), read the key directory as the power loss left it
//      (CheckPurgesOnRawKeyDir): no KEK generation retired by an
//      acknowledged purge exists, and no keyring that opens under a KEK
//      still present holds a DEK of a purged tenant.
// InitUndoDirOps cuts the power at every mutating I/O of a store's creation
// (kUndoDirOps). The checks after each reopen: 0 failed opens (an open may fail only when
// the power went inside it); every acknowledged (OK) write reads back as
// its last acknowledged version and every deleted or never-written call is
// absent (so no hole and nothing resurrected); the operation in flight has
// all or none of its effect; an acknowledged purge stays purged, its KEK
// generation gone and its receipt in a chain that verifies (one receipt per
// purge); every acknowledged recording is listed with its size and reads
// back byte for byte, an in-flight one is whole or absent; a tenant is live with its key and column family or not live with
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
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <sstream>

#include "callvault/store.h"
#include "engine/fs_util.h"
#include "engine/keyring.h"
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
std::string RecId(uint64_t seq) { return "rec-" + std::to_string(seq); }

// The content of the recording written by operation `seq`: 1-1.25 MiB,
// one full chunk, above min_blob_size, and a short one (kept small: Verify
// reads every chunk of every recording at each cycle).
std::string RecordingBytes(uint64_t seq) {
  const size_t size = (1u << 20) + (4u << 10) + (seq * 7919u) % (252u << 10);
  std::mt19937_64 r(seq);
  std::string out(size, '\0');
  for (size_t i = 0; i < size; i += 8) {
    const uint64_t v = r();
    std::memcpy(out.data() + i, &v, std::min<size_t>(8, size - i));
  }
  return out;
}

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
  std::map<int, std::set<uint64_t>> recs[kTenants];  // call idx -> recordings (by seq)
  uint64_t receipts = 0;
  // Acknowledged purges: (internal id, KEK generation retired).
  std::vector<std::pair<uint64_t, uint32_t>> purged;
  bool live(int t) const { return state[t] == TState::kLive; }
};

struct Op {
  uint64_t seq = 0;
  char type = 0;  // P put, M batch, D delete, R recording, C create, X purge, F flush
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
        m->recs[op.tenant].erase(op.calls[0]);
        return "";
      }
      if (!ok && !live && (code == Code::kTenantPurged || code == Code::kNotFound)) return "";
      if (!ok && live && !present && code == Code::kNotFound) return "";
      return what;
    }
    case 'R': {
      const bool present = live && m->calls[op.tenant].count(op.calls[0]);
      if (ok && present) {
        m->recs[op.tenant][op.calls[0]].insert(op.seq);
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
        m->recs[op.tenant].clear();
        return "";
      }
      if (!ok && live && code == Code::kAlreadyExists) return "";
      return what;
    case 'X':
      if (ok && live) {
        m->state[op.tenant] = TState::kPurged;
        m->calls[op.tenant].clear();
        m->recs[op.tenant].clear();
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
  if (r < 30) {
    op.type = 'P';
    op.calls = {pick(CallSlots(op.tenant))};
  } else if (r < 54 && r >= 42) {
    // A recording of a call that exists (mostly); a call with two already
    // is deleted instead, which takes its recordings along.
    op.type = 'R';
    const auto& present = m.calls[op.tenant];
    if (!present.empty() && pick(100) < 85) {
      auto it = present.begin();
      std::advance(it, pick(static_cast<int>(present.size())));
      op.calls = {it->first};
    } else {
      op.calls = {pick(CallSlots(op.tenant))};
    }
    auto rs = m.recs[op.tenant].find(op.calls[0]);
    if (rs != m.recs[op.tenant].end() && rs->second.size() >= 2) op.type = 'D';
  } else if (r < 42) {
    op.type = 'M';
    std::set<int> idx;
    const int n = std::min(2 + pick(3), CallSlots(op.tenant));
    while (static_cast<int>(idx.size()) < n) idx.insert(pick(CallSlots(op.tenant)));
    op.calls.assign(idx.begin(), idx.end());
  } else if (r < 66) {
    op.type = 'D';
    const auto& present = m.calls[op.tenant];
    if (!present.empty() && pick(100) < 80) {
      auto it = present.begin();
      std::advance(it, pick(static_cast<int>(present.size())));
      op.calls = {it->first};
    } else {
      op.calls = {pick(CallSlots(op.tenant))};
    }
  } else if (r < 78) {
    op.type = 'C';
    op.tenant = scratch(false);
  } else if (r < 90) {
    op.type = 'X';
    op.tenant = scratch(true);
  } else {
    op.type = 'F';
  }
  return op;
}

Status Run(Store& st, const Op& op, Model* m) {
  const std::string tenant = TenantName(op.tenant);
  switch (op.type) {
    case 'R': {
      RecordingSpec spec;
      spec.recording_id = RecId(op.seq);
      auto w = st.CreateRecording(tenant, CallId(op.calls[0]), spec);
      if (!w.ok()) return w.status();
      const std::string data = RecordingBytes(op.seq);
      for (size_t off = 0; off < data.size(); off += 256u << 10) {
        CV_RETURN_IF_ERROR((*w)->Append(std::string_view(data).substr(off, 256u << 10)));
      }
      return (*w)->Finish().status();
    }
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
    case 'X': {
      auto r = st.PurgeTenant(tenant);
      if (r.ok()) m->purged.emplace_back(r->tenant_internal_id, r->kek_generation_retired);
      return r.status();
    }
    case 'F':
      return st.Flush();
  }
  return Status::Internal("unknown op");
}

struct Stats {
  uint64_t acked = 0, in_flight = 0, open_crashes = 0, after_last_op = 0, reads = 0;
  uint64_t recordings_read = 0, raw_keyrings_opened = 0, raw_checks = 0;
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

// Reads recording `seq` of call `idx` of tenant `t` whole; true if it is
// byte for byte what operation `seq` wrote.
bool ReadsBack(Store& st, int t, int idx, uint64_t seq) {
  std::string got;
  Status s = st.ReadRecording(TenantName(t), CallId(idx), RecId(seq), 0, UINT64_MAX,
                              [&](std::string_view b) {
                                got.append(b);
                                return Status::OK();
                              });
  EXPECT_TRUE(s.ok()) << TenantName(t) << "/" << CallId(idx) << "/" << RecId(seq) << ": "
                      << s.ToString();
  return s.ok() && got == RecordingBytes(seq);
}

// The recordings of live tenant `t`: exactly the acknowledged ones (and
// perhaps the one in flight, whole), each with its size; the one in flight
// and one acknowledged one per tenant and cycle read back in full.
void VerifyRecordings(Store& st, int t, Model* m, const std::optional<Op>& pending,
                      Stats* stats) {
  std::vector<std::pair<int, uint64_t>> acked;
  for (const auto& [idx, version] : m->calls[t]) {
    auto list = st.ListRecordings(TenantName(t), CallId(idx));
    ASSERT_OK(list);
    std::set<uint64_t> want = m->recs[t].count(idx) ? m->recs[t][idx] : std::set<uint64_t>{};
    const bool maybe = pending && pending->type == 'R' && pending->tenant == t &&
                       pending->calls[0] == idx;
    std::set<uint64_t> got;
    for (const auto& info : *list) {
      uint64_t seq = 0;
      const bool ours = info.recording_id.rfind("rec-", 0) == 0 &&
                        (seq = std::stoull(info.recording_id.substr(4))) > 0;
      EXPECT_TRUE(ours && (want.count(seq) || (maybe && seq == pending->seq)))
          << TenantName(t) << "/" << CallId(idx) << " lists " << info.recording_id
          << ", never acknowledged (or deleted)";
      if (!ours) continue;
      got.insert(seq);
      EXPECT_EQ(info.size, RecordingBytes(seq).size()) << info.recording_id;
    }
    for (uint64_t seq : want) {
      EXPECT_TRUE(got.count(seq)) << TenantName(t) << "/" << CallId(idx) << "/" << RecId(seq)
                                  << " acknowledged and lost";
      acked.emplace_back(idx, seq);
    }
    if (maybe && got.count(pending->seq)) {
      EXPECT_TRUE(ReadsBack(st, t, idx, pending->seq)) << "in-flight recording partly there";
      ++stats->recordings_read;
      ++stats->in_flight_applied['R'];
      m->recs[t][idx].insert(pending->seq);
    }
  }
  if (!acked.empty()) {
    const auto& [idx, seq] = acked[stats->reads % acked.size()];
    EXPECT_TRUE(ReadsBack(st, t, idx, seq)) << "acknowledged recording " << RecId(seq);
    ++stats->recordings_read;
  }
}

// Before any open (which runs recovery): the key directory as the power
// loss left it. No KEK generation an acknowledged purge retired is there,
// and no keyring that opens under a KEK still present holds a DEK of a
// purged tenant. Read with a provider of its own, which takes no writer
// lock and changes nothing.
void CheckPurgesOnRawKeyDir(const std::string& keys, const Model& m, Stats* stats) {
  ++stats->raw_checks;
  const crashtest::KeyDirFiles files = crashtest::ScanKeyDir(keys);
  for (const auto& [id, kek] : m.purged) {
    EXPECT_FALSE(kek != 0 && std::count(files.keks.begin(), files.keks.end(), kek))
        << "KEK generation " << kek << " retired by an acknowledged purge (internal id " << id
        << ") is back after the power loss";
  }
  auto kp = NewFileKeyProvider(keys, {.create_if_missing = false});
  ASSERT_OK(kp);
  for (uint64_t g : files.keyrings) {
    auto bytes = (*kp)->ReadKeyring(g);
    if (!bytes.ok()) continue;
    auto ring = Keyring::Unseal(kp->get(), *bytes);
    if (!ring.ok()) continue;  // its KEK is gone: nothing in it can be read
    ++stats->raw_keyrings_opened;
    for (const auto& [id, kek] : m.purged) {
      EXPECT_FALSE(ring->HasTenant(id))
          << "KEYRING-" << g << " opens under KEK " << ring->kek_generation
          << " and holds the DEK of internal id " << id << ", purged and acknowledged";
    }
  }
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
      m->recs[t].clear();
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
        m->recs[t].erase(idx);
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
    VerifyRecordings(st, t, m, pending, stats);
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
  m->purged.clear();  // every purge with a receipt is acknowledged now
  for (const auto& r : *receipts) {
    if (r.kind == "tenant_purge") m->purged.emplace_back(r.tenant_internal_id, r.kek_generation_retired);
  }
  auto pk = st.SigningPublicKey();
  ASSERT_OK(pk);
  EXPECT_OK(VerifyReceiptChain(*receipts, *pk));
  auto v = st.Verify();
  ASSERT_OK(v);
  EXPECT_EQ(v->records_failed, 0u) << ::testing::PrintToString(v->failures);
}

// CALLVAULT_T2_KEEP=DIR: the store and key directory as they were before
// each of the last three opens are kept (DIR/cycle-N), and on a failure the
// ones before the failing cycle are left there to be read (ldb, the WAL
// scan). Off by default: copying costs time.
const char* KeepDir() {
  const char* d = std::getenv("CALLVAULT_T2_KEEP");
  return d != nullptr && *d != '\0' ? d : nullptr;
}
void KeepBeforeOpen(const std::string& root, int64_t cycle) {
  const char* keep = KeepDir();
  if (keep == nullptr) return;
  namespace fs = std::filesystem;
  fs::create_directories(keep);
  fs::remove_all(std::string(keep) + "/cycle-" + std::to_string(cycle - 3));
  testutil::CopyTree(root, std::string(keep) + "/cycle-" + std::to_string(cycle));
}
void KeptForFailure(uint64_t seed, int64_t cycle) {
  if (const char* keep = KeepDir()) {
    std::printf("[power-loss] seed %llu: the store before the opens of cycles %lld-%lld is kept in "
                "%s\n",
                static_cast<unsigned long long>(seed), static_cast<long long>(cycle - 2),
                static_cast<long long>(cycle), keep);
  }
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
    KeepBeforeOpen(tmp.path(), cycle);
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
      KeptForFailure(seed, cycle);
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
      Status s = Run(st, op, &m);
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
    CheckPurgesOnRawKeyDir(keys, m, &stats);
    if (::testing::Test::HasFailure()) {
      std::printf("[power-loss] failed at cycle %lld (raw key directory, before recovery) after "
                  "%s; last power loss dropped:%s\n",
                  static_cast<long long>(cycle), testutil::PowerLossModeName(mode),
                  last_loss.c_str());
      return;
    }
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::ostringstream o;
  o << "[power-loss " << testutil::PowerLossModeName(mode) << "] " << cycles << " cycles in "
    << secs << " s: " << stats.acked << " operations acknowledged; " << stats.in_flight
    << " in flight at the power loss (";
  for (char t : std::string("PMDRCXF")) {
    o << t << " " << stats.in_flight_by_type[t] << " applied " << stats.in_flight_applied[t]
      << (t == 'F' ? "" : ", ");
  }
  o << "); " << stats.after_last_op << " losses after the last operation; "
    << stats.open_crashes << " inside a recovering open; " << stats.reads
    << " call reads checked; " << stats.recordings_read << " recordings read back; "
    << stats.raw_checks << " raw key-directory checks before recovery (" << stats.raw_keyrings_opened
    << " keyrings opened); 0 failed opens\n";
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

// --- FaultFS itself -------------------------------------------------------------

void WriteSynced(rocksdb::FileSystem* fs, const std::string& path, const std::string& synced,
                 const std::string& unsynced) {
  std::unique_ptr<rocksdb::FSWritableFile> f;
  ASSERT_TRUE(fs->NewWritableFile(path, rocksdb::FileOptions(), &f, nullptr).ok());
  ASSERT_TRUE(f->Append(synced, rocksdb::IOOptions(), nullptr).ok());
  ASSERT_TRUE(f->Sync(rocksdb::IOOptions(), nullptr).ok());
  if (!unsynced.empty()) {
    ASSERT_TRUE(f->Append(unsynced, rocksdb::IOOptions(), nullptr).ok());
  }
  ASSERT_TRUE(f->Close(rocksdb::IOOptions(), nullptr).ok());
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// kUndoDirOps undoes unlinks and rmdirs that no fsync of their directory
// followed (the file comes back with its durable bytes, in its directory
// made again), and keeps those that one did; in a key directory too.
TEST(FaultFSTest, UndoDirOpsPutsBackDeletedFilesAndDirectories) {
  testutil::TempDir tmp;
  for (bool sync_parent : {false, true}) {
    SCOPED_TRACE(sync_parent ? "rmdir followed by a directory fsync" : "rmdir not synced");
    const std::string root = tmp.Sub(sync_parent ? "synced" : "unsynced");
    std::filesystem::create_directories(root);
    auto ffs = std::make_shared<FaultFS>(1);
    const std::string d = root + "/d", f = d + "/f";
    ASSERT_TRUE(ffs->CreateDir(d, rocksdb::IOOptions(), nullptr).ok());
    WriteSynced(ffs.get(), f, "durable", "lost");
    ASSERT_OK(fsutil::SyncDir(ffs.get(), d));
    ASSERT_OK(fsutil::SyncDir(ffs.get(), root));
    ASSERT_TRUE(ffs->DeleteFile(f, rocksdb::IOOptions(), nullptr).ok());
    ASSERT_TRUE(ffs->DeleteDir(d, rocksdb::IOOptions(), nullptr).ok());
    if (sync_parent) ASSERT_OK(fsutil::SyncDir(ffs.get(), root));
    ASSERT_FALSE(std::filesystem::exists(d));
    const std::string what = ffs->SimulatePowerLoss(PowerLossMode::kUndoDirOps);
    if (sync_parent) {
      EXPECT_FALSE(std::filesystem::exists(d)) << what;
    } else {
      EXPECT_TRUE(std::filesystem::is_directory(d)) << what;
      EXPECT_EQ(ReadFile(f), "durable") << what;
    }
  }
  // A key file removed without the directory fsync (fsutil::Remove with
  // sync_dir false, as a keyring generation is) comes back; with it, not.
  const std::string keys = tmp.Sub("keys");
  auto kp = NewFileKeyProvider(keys, {.create_if_missing = true});
  ASSERT_OK(kp);
  auto ffs = std::make_shared<FaultFS>(2);
  WriteSynced(ffs.get(), keys + "/KEYRING-7", "sealed", "");
  WriteSynced(ffs.get(), keys + "/KEK-3", "kek", "");
  ASSERT_OK(fsutil::SyncDir(ffs.get(), keys));
  ASSERT_OK(fsutil::Shred(ffs.get(), keys, "KEK-3"));  // its directory fsync persists all before it
  ASSERT_OK(fsutil::Remove(ffs.get(), keys, "KEYRING-7", /*sync_dir=*/false));
  const std::string what = ffs->SimulatePowerLoss(PowerLossMode::kUndoDirOps);
  EXPECT_EQ(ReadFile(keys + "/KEYRING-7"), "sealed") << what;
  // Shred zeroed it, fsynced, unlinked and fsynced the directory: gone.
  EXPECT_FALSE(std::filesystem::exists(keys + "/KEK-3")) << what;
}

// kTornGarbled changes only bytes that were never synced: it keeps a
// random part of the unsynced tail and garbles one sector of it.
TEST(FaultFSTest, TornGarbledChangesOnlyUnsyncedBytes) {
  testutil::TempDir tmp;
  const std::string synced(4096, 'A'), unsynced(8192, 'B');
  int garbled = 0, zeros = 0;
  for (uint64_t seed = 1; seed <= 64; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    const std::string path = tmp.Sub("f" + std::to_string(seed));
    auto ffs = std::make_shared<FaultFS>(seed);
    WriteSynced(ffs.get(), path, synced, unsynced);
    const std::string what = ffs->SimulatePowerLoss(PowerLossMode::kTornGarbled);
    const std::string got = ReadFile(path);
    ASSERT_GE(got.size(), synced.size());
    ASSERT_LE(got.size(), synced.size() + unsynced.size());
    EXPECT_EQ(got.substr(0, synced.size()), synced) << "a synced byte changed: " << what;
    const std::string tail = got.substr(synced.size());
    size_t changed = 0;
    for (char c : tail) changed += c != 'B';
    EXPECT_LE(changed, 512u);
    if (!tail.empty()) {
      EXPECT_GT(changed, 0u) << "unsynced tail kept but not garbled: " << what;
      ++garbled;
      zeros += what.find("(zeros)") != std::string::npos;
    }
  }
  EXPECT_GT(garbled, 40);
  EXPECT_GT(zeros, 5);
  EXPECT_LT(zeros, garbled - 5);
}

TEST(PowerLossTest, DropUnsynced) { RunPowerLoss(PowerLossMode::kDropUnsynced); }
TEST(PowerLossTest, RandomTail) { RunPowerLoss(PowerLossMode::kRandomTail); }
TEST(PowerLossTest, UndoDirOps) { RunPowerLoss(PowerLossMode::kUndoDirOps); }
TEST(PowerLossTest, TornGarbled) { RunPowerLoss(PowerLossMode::kTornGarbled); }

}  // namespace
}  // namespace callvault
