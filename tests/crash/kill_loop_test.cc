// T1 (testing.md): the kill loop.
//
// Each cycle the parent starts a child that opens the store and runs a
// seeded random mix (PutCall and PutCalls with sync, DeleteCall, GetCall,
// CreateTenant and PurgeTenant of scratch tenants), reporting each operation
// on a pipe before it starts ("B") and after it returns ("A", with the
// code: acknowledged). 1-500 ms (random) after the child's open finished,
// or in a quarter of the cycles after its start, the parent SIGKILLs it.
// After a third of the kills, one to three more children only open the
// store (recovering what the kill left) and are killed 1-150 ms after their
// start. Then the parent reopens the same store (never a fresh copy:
// recovery on top of recovery) and checks it against its model:
//   - 0 failed opens;
//   - every acknowledged put reads back exactly as its last acknowledged
//     version unless a later acknowledged delete removed it; every call not
//     in the model is absent (nothing comes back from a purge or a delete);
//   - the one operation in flight at the kill has all or none of its effect
//     (a batch is atomic; a tenant create or purge either happened or not);
//   - acknowledged purges stay purged; receipts, one per purge, chain;
//   - keys and column families: CheckKeysAndFamilies (crash_util.h);
//   - Verify() decrypts every record; CountCalls matches the model.
// Then the model takes the observed outcome of the in-flight operation.
//
// CI: 200 cycles (about 90 s). CALLVAULT_SOAK=1: 1,000 cycles.
// CALLVAULT_KILL_CYCLES=N overrides; CALLVAULT_SEED=S replays a run (the
// kill delays depend on timing, so a replay is close, not exact).
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <random>
#include <set>
#include <sstream>

#include "callvault/store.h"
#include "tests/crash/crash_util.h"
#include "tests/testutil/testutil.h"

namespace callvault {
namespace {

using crashtest::Env;
using crashtest::ReportLine;

constexpr int64_t kT0 = 1'767'225'600'000'000;  // 2026-01-01T00:00:00Z
constexpr int kPersistent = 3;                  // tenants p0..p2, never purged
constexpr int kScratch = 3;                     // tenants s0..s2, created and purged
constexpr int kTenants = kPersistent + kScratch;

std::string TenantName(int t) {
  return (t < kPersistent ? "p" : "s") + std::to_string(t < kPersistent ? t : t - kPersistent);
}
int CallSlots(int t) { return t < kPersistent ? 40 : 10; }
std::string CallId(int idx) { return "call-" + std::to_string(idx); }

// The content of call `idx` of tenant `t` at `version` (the sequence number
// of the operation that wrote it). Some versions move started_at (so the
// time index entry moves) and some carry a transcript large enough for a
// blob file.
Call VersionedCall(int t, int idx, uint64_t version) {
  Call c = testutil::MakeCall(
      CallId(idx), kT0 + static_cast<int64_t>(version % 5) * 1000 + idx,
      TenantName(t) + "/" + std::to_string(idx) + "/v" + std::to_string(version));
  c.created_at = kT0 + static_cast<int64_t>(version);
  c.updated_at = c.created_at;
  if (version % 23 == 0) {
    const std::string text(1500, static_cast<char>('a' + version % 26));
    for (uint32_t i = 0; i < 200; ++i) {
      c.transcript.push_back(
          TranscriptSegment{1, 100000 + i * 10, 100000 + i * 10 + 5, text, 0.5f});
    }
  }
  return c;
}

Options StoreOptions(const std::string& keys) {
  Options o = testutil::DefaultOptions(keys);
  o.max_tenants_per_shard = 3;
  return o;
}

// --- The model ------------------------------------------------------------------

enum class TState { kAbsent, kLive, kPurged };

struct Model {
  TState state[kTenants] = {};
  std::map<int, uint64_t> calls[kTenants];  // idx -> version
  uint64_t next_seq = 1;
  uint64_t receipts = 0;

  bool live(int t) const { return state[t] == TState::kLive; }

  std::string Serialize() const {
    std::ostringstream o;
    o << "S " << next_seq << " " << receipts << "\n";
    for (int t = 0; t < kTenants; ++t) {
      o << "T " << t << " " << static_cast<int>(state[t]) << "\n";
      for (const auto& [idx, v] : calls[t]) o << "C " << t << " " << idx << " " << v << "\n";
    }
    return o.str();
  }
  static Model Parse(const std::string& text) {
    Model m;
    std::istringstream in(text);
    std::string tag;
    while (in >> tag) {
      if (tag == "S") {
        in >> m.next_seq >> m.receipts;
      } else if (tag == "T") {
        int t, s;
        in >> t >> s;
        m.state[t] = static_cast<TState>(s);
      } else if (tag == "C") {
        int t, idx;
        uint64_t v;
        in >> t >> idx >> v;
        m.calls[t][idx] = v;
      }
    }
    return m;
  }
};

// One operation as reported by the child.
struct OpMsg {
  uint64_t seq = 0;
  char type = 0;  // P put, M batch put, D delete, C create, X purge
  int tenant = 0;
  std::vector<int> calls;

  std::string Encode() const {
    std::string s = "B " + std::to_string(seq) + " " + type + " " + std::to_string(tenant) + " " +
                    std::to_string(calls.size());
    for (int c : calls) s += " " + std::to_string(c);
    return s;
  }
  static OpMsg Decode(const std::string& line) {
    std::istringstream in(line.substr(2));
    OpMsg m;
    size_t n = 0;
    in >> m.seq >> m.type >> m.tenant >> n;
    m.calls.resize(n);
    for (auto& c : m.calls) in >> c;
    return m;
  }
};

// Applies an acknowledged operation to the model; returns a problem, or "".
std::string Acknowledge(Model* m, const OpMsg& op, Code code) {
  const bool live = m->live(op.tenant);
  const bool ok = code == Code::kOk;
  const std::string what =
      std::string(1, op.type) + " on " + TenantName(op.tenant) + " returned " + CodeName(code);
  switch (op.type) {
    case 'P':
    case 'M':
      if (ok && live) {
        for (int c : op.calls) m->calls[op.tenant][c] = op.seq;
        return "";
      }
      if (!ok && !live && (code == Code::kTenantPurged || code == Code::kNotFound)) return "";
      return what + (live ? " (tenant live)" : " (tenant not live)");
    case 'D': {
      const bool present = live && m->calls[op.tenant].count(op.calls[0]);
      if (ok && present) {
        m->calls[op.tenant].erase(op.calls[0]);
        return "";
      }
      if (!ok && !live && (code == Code::kTenantPurged || code == Code::kNotFound)) return "";
      if (!ok && live && !present && code == Code::kNotFound) return "";
      return what + (present ? " (call present)" : " (call absent)");
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
      if (ok && m->state[op.tenant] == TState::kPurged) return "";  // idempotent
      if (!ok && m->state[op.tenant] == TState::kAbsent && code == Code::kNotFound) return "";
      return what;
  }
  return "unknown op " + std::string(1, op.type);
}

// --- The child ----------------------------------------------------------------------

// Random operations until killed. Keeps its own copy of the model to choose
// useful operations and to check its reads.
TEST(CrashChild, DISABLED_Run) {
  const std::string mode = Env(crashtest::kEnvMode);
  if (mode != "killloop" && mode != "recover") GTEST_SKIP() << "runs only as a kill-loop child";
  if (mode == "recover") {
    // Only the open (recovery); then wait for the kill.
    auto store = Store::Open(StoreOptions(Env("CALLVAULT_CRASH_KEYS")), Env("CALLVAULT_CRASH_DB"));
    ReportLine(store.ok() ? "O" : "X open: " + store.status().ToString());
    for (;;) ::pause();
  }
  std::ifstream in(Env("CALLVAULT_KL_MODEL"));
  std::stringstream text;
  text << in.rdbuf();
  Model m = Model::Parse(text.str());
  std::mt19937_64 rng(std::stoull(Env("CALLVAULT_KL_SEED")));
  auto store = Store::Open(StoreOptions(Env("CALLVAULT_CRASH_KEYS")), Env("CALLVAULT_CRASH_DB"));
  if (!store.ok()) {
    ReportLine("X open: " + store.status().ToString());
    FAIL() << store.status().ToString();
  }
  ReportLine("O");
  Store& st = **store;
  auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<uint64_t>(n)); };
  auto pick_scratch = [&](bool want_live, int percent) {
    std::vector<int> good;
    for (int t = kPersistent; t < kTenants; ++t) {
      if (m.live(t) == want_live) good.push_back(t);
    }
    if (good.empty() || pick(100) >= percent) return kPersistent + pick(kScratch);
    return good[static_cast<size_t>(pick(static_cast<int>(good.size())))];
  };
  auto write_tenant = [&] { return pick(100) < 75 ? pick(kPersistent) : pick_scratch(true, 90); };
  for (;;) {
    OpMsg op;
    op.seq = m.next_seq++;
    const int r = pick(100);
    if (r < 76) {
      op.tenant = write_tenant();
      if (r < 30) {
        op.type = 'P';
        op.calls = {pick(CallSlots(op.tenant))};
      } else if (r < 45) {
        op.type = 'M';
        std::set<int> idx;
        const int n = 2 + pick(5);
        while (static_cast<int>(idx.size()) < std::min(n, CallSlots(op.tenant)))
          idx.insert(pick(CallSlots(op.tenant)));
        op.calls.assign(idx.begin(), idx.end());
      } else if (r < 60) {
        op.type = 'D';
        const auto& present = m.calls[op.tenant];
        if (!present.empty() && pick(100) < 80) {
          auto it = present.begin();
          std::advance(it, pick(static_cast<int>(present.size())));
          op.calls = {it->first};
        } else {
          op.calls = {pick(CallSlots(op.tenant))};
        }
      } else if (r < 68) {
        op.type = 'C';
        op.tenant = pick_scratch(false, 90);
      } else {
        op.type = 'X';
        op.tenant = pick_scratch(true, 80);
      }
    } else {
      // A read, checked here against the model (not reported: no effect).
      const int t = write_tenant();
      const int idx = pick(CallSlots(t));
      auto got = st.GetCall(TenantName(t), CallId(idx));
      auto want = m.calls[t].find(idx);
      std::string problem;
      if (!m.live(t)) {
        if (got.ok()) problem = "read of a tenant that is not live succeeded";
      } else if (want == m.calls[t].end()) {
        if (got.status().code() != Code::kNotFound)
          problem = "absent call read: " + got.status().ToString();
      } else if (!got.ok()) {
        problem = "acknowledged call unreadable: " + got.status().ToString();
      } else if (!(*got == VersionedCall(t, idx, want->second))) {
        problem = "call differs from version " + std::to_string(want->second);
      }
      if (!problem.empty()) ReportLine("E " + TenantName(t) + "/" + CallId(idx) + ": " + problem);
      continue;
    }
    ReportLine(op.Encode());
    Status s;
    const std::string tenant = TenantName(op.tenant);
    switch (op.type) {
      case 'P':
        s = st.PutCall(tenant, VersionedCall(op.tenant, op.calls[0], op.seq)).status();
        break;
      case 'M': {
        std::vector<Call> calls;
        for (int c : op.calls) calls.push_back(VersionedCall(op.tenant, c, op.seq));
        s = st.PutCalls(tenant, calls).status();
        break;
      }
      case 'D':
        s = st.DeleteCall(tenant, CallId(op.calls[0]));
        break;
      case 'C':
        s = st.CreateTenant({.tenant_id = tenant}).status();
        break;
      case 'X':
        s = st.PurgeTenant(tenant).status();
        break;
    }
    ReportLine("A " + std::to_string(op.seq) + " " + std::to_string(static_cast<int>(s.code())));
    std::string problem = Acknowledge(&m, op, s.code());
    if (!problem.empty()) ReportLine("E child: " + problem + ": " + s.ToString());
  }
}

// --- The parent -------------------------------------------------------------------------

struct Stats {
  uint64_t acked = 0, in_flight = 0, kills_before_open = 0, reads_checked = 0;
  uint64_t recovery_kills = 0, recovery_kills_mid_open = 0;
  std::map<char, uint64_t> in_flight_by_type, in_flight_applied;
  std::set<std::string> stray;
};

// Reads call `idx` of live tenant `t`: the version found, 0 if absent.
// Fails the test if it is neither absent nor a version in `candidates`.
uint64_t ReadVersion(Store& st, int t, int idx, const std::vector<uint64_t>& candidates) {
  auto got = st.GetCall(TenantName(t), CallId(idx));
  if (got.status().code() == Code::kNotFound) {
    for (uint64_t c : candidates) {
      if (c == 0) return 0;
    }
    ADD_FAILURE() << TenantName(t) << "/" << CallId(idx) << " missing; expected version "
                  << ::testing::PrintToString(candidates);
    return 0;
  }
  if (!got.ok()) {
    ADD_FAILURE() << TenantName(t) << "/" << CallId(idx) << ": " << got.status().ToString();
    return 0;
  }
  for (uint64_t c : candidates) {
    if (c != 0 && *got == VersionedCall(t, idx, c)) return c;
  }
  ADD_FAILURE() << TenantName(t) << "/" << CallId(idx) << " holds \"" << got->title
                << "\", none of the versions " << ::testing::PrintToString(candidates);
  return 0;
}

// Reopens, checks everything against `m` with `pending` (the operation in
// flight, if any) allowed either outcome, and updates `m` to what is there.
void VerifyAndResolve(const std::string& db, const std::string& keys, Model* m,
                      const std::optional<OpMsg>& pending, Stats* stats) {
  auto opened = Store::Open(StoreOptions(keys), db);
  ASSERT_OK(opened);  // 0 failed opens
  Store& st = **opened;

  // Tenants first: a create or purge in flight may have happened or not.
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
    if (!m->live(t) && m->state[t] == TState::kPurged) {
      EXPECT_TRUE(d.ok() && d->state == TenantState::kPurged) << TenantName(t) << " not purged";
    }
  }

  // Calls: a put or batch in flight is all old or all new; a delete in
  // flight leaves the old version or nothing.
  for (int t = 0; t < kTenants; ++t) {
    if (!m->live(t)) {
      auto got = st.GetCall(TenantName(t), CallId(0));
      EXPECT_TRUE(got.status().code() == Code::kTenantPurged ||
                  got.status().code() == Code::kNotFound)
          << TenantName(t) << " is not live but read: " << got.status().ToString();
      continue;
    }
    std::vector<bool> outcomes;  // per call the operation in flight touches: is its effect there?
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
      ++stats->reads_checked;
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
      EXPECT_TRUE(all || none) << "operation " << pending->seq << " (" << pending->type
                               << ") applied in part: " << ::testing::PrintToString(outcomes);
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
  auto pk = st.SigningPublicKey();
  ASSERT_OK(pk);
  EXPECT_OK(VerifyReceiptChain(*receipts, *pk));
  auto v = st.Verify();
  ASSERT_OK(v);
  EXPECT_EQ(v->records_failed, 0u) << ::testing::PrintToString(v->failures);
}

// Starts a child, SIGKILLs it `delay_ms` after its start (or, with
// `after_open`, after it reported "O"), collects its lines and checks it
// died by the kill.
void KillChild(const std::map<std::string, std::string>& env, int delay_ms, bool after_open,
               const std::string& log, std::vector<std::string>* lines) {
  crashtest::Child c = crashtest::Spawn(env, log);
  std::string partial;
  bool open = true;
  if (after_open) {
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    auto opened = [&] {
      return std::any_of(lines->begin(), lines->end(),
                         [](const std::string& l) { return l == "O" || l[0] == 'X'; });
    };
    while (open && !opened()) {
      if (std::chrono::steady_clock::now() > give_up) {
        ADD_FAILURE() << "the child did not open the store within 120 s";
        break;
      }
      open = crashtest::ReadLinesFor(c.fd, 1000, &partial, lines);
    }
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(delay_ms);
  while (open) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                    deadline - std::chrono::steady_clock::now())
                    .count();
    if (left <= 0) break;
    open = crashtest::ReadLinesFor(c.fd, static_cast<int>(left), &partial, lines);
  }
  ::kill(c.pid, SIGKILL);
  while (crashtest::ReadLinesFor(c.fd, 1000, &partial, lines)) {  // EOF: the child is gone
  }
  ::close(c.fd);
  const int status = crashtest::WaitChild(c.pid);
  EXPECT_TRUE(crashtest::KilledBySigkill(status))
      << "child " << crashtest::DescribeWait(status) << "\n"
      << crashtest::Tail(log);
  EXPECT_TRUE(partial.empty()) << "half a line from the child: " << partial;
}

TEST(KillLoopTest, AcknowledgedWritesSurviveSigkill) {
  const uint64_t seed = crashtest::SeedFromEnv();
  const int64_t cycles =
      crashtest::EnvInt("CALLVAULT_KILL_CYCLES", crashtest::SoakMode() ? 1000 : 200);
  std::printf("[kill-loop] seed=%llu cycles=%lld (replay: CALLVAULT_SEED=%llu)\n",
              static_cast<unsigned long long>(seed), static_cast<long long>(cycles),
              static_cast<unsigned long long>(seed));
  std::fflush(stdout);
  testutil::TempDir tmp;
  const std::string db = tmp.Sub("db"), keys = tmp.Sub("keys"), model_path = tmp.Sub("model.txt");
  const std::string log = tmp.Sub("child.log");
  Model m;
  {
    auto st = Store::Open(StoreOptions(keys), db);
    ASSERT_OK(st);
    for (int t = 0; t < kPersistent; ++t) {
      ASSERT_OK((*st)->CreateTenant({.tenant_id = TenantName(t)}));
      m.state[t] = TState::kLive;
    }
  }
  std::mt19937_64 rng(seed);
  Stats stats;
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t cycle = 0; cycle < cycles; ++cycle) {
    SCOPED_TRACE("cycle " + std::to_string(cycle) + " (seed " + std::to_string(seed) + ")");
    {
      std::ofstream out(model_path, std::ios::trunc);
      out << m.Serialize();
    }
    // The kill comes 1-500 ms after the child's open finished, or, in a
    // quarter of the cycles, after its start (then often inside the open).
    const bool from_start = rng() % 4 == 0;
    const int delay_ms = 1 + static_cast<int>(rng() % 500);
    std::vector<std::string> lines;
    KillChild({{crashtest::kEnvMode, "killloop"},
               {"CALLVAULT_CRASH_DB", db},
               {"CALLVAULT_CRASH_KEYS", keys},
               {"CALLVAULT_KL_MODEL", model_path},
               {"CALLVAULT_KL_SEED", std::to_string(rng())}},
              delay_ms, /*after_open=*/!from_start, log, &lines);
    if (HasFailure()) return;
    // Sometimes one to three more children that only open (recover) and are
    // killed 1-150 ms after their start: crashes inside a recovery that has
    // work to do (the parent's own reopen below is never interrupted).
    for (int chain = 0; chain < 3 && rng() % 3 == 0; ++chain) {
      std::vector<std::string> rec_lines;
      KillChild({{crashtest::kEnvMode, "recover"},
                 {"CALLVAULT_CRASH_DB", db},
                 {"CALLVAULT_CRASH_KEYS", keys}},
                1 + static_cast<int>(rng() % 150), /*after_open=*/false, log, &rec_lines);
      if (HasFailure()) return;
      ++stats.recovery_kills;
      if (std::find(rec_lines.begin(), rec_lines.end(), "O") == rec_lines.end())
        ++stats.recovery_kills_mid_open;
      for (const auto& l : rec_lines) {
        if (l != "O") ADD_FAILURE() << "recovery child: " << l;
      }
    }

    std::optional<OpMsg> pending;
    bool opened = false;
    for (const auto& line : lines) {
      if (line == "O") {
        opened = true;
      } else if (line[0] == 'B') {
        pending = OpMsg::Decode(line);
      } else if (line[0] == 'A') {
        std::istringstream in(line.substr(2));
        uint64_t seq;
        int code;
        in >> seq >> code;
        ASSERT_TRUE(pending && pending->seq == seq) << line;
        std::string problem = Acknowledge(&m, *pending, static_cast<Code>(code));
        EXPECT_EQ(problem, "") << "seq " << seq;
        m.next_seq = seq + 1;
        ++stats.acked;
        pending.reset();
      } else {
        ADD_FAILURE() << "child: " << line;
      }
    }
    if (pending) {
      m.next_seq = pending->seq + 1;
      ++stats.in_flight;
      ++stats.in_flight_by_type[pending->type];
    }
    if (!opened) ++stats.kills_before_open;
    VerifyAndResolve(db, keys, &m, pending, &stats);
    if (HasFailure()) {
      std::printf("[kill-loop] stopping at cycle %lld; child log:\n%s\n",
                  static_cast<long long>(cycle), crashtest::Tail(log).c_str());
      return;
    }
    ::unlink(log.c_str());
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::ostringstream o;
  o << "[kill-loop] " << cycles << " cycles in " << secs << " s: " << stats.acked
    << " operations acknowledged; " << stats.in_flight << " in flight at the kill (";
  for (char t : std::string("PMDCX")) {
    o << t << " " << stats.in_flight_by_type[t] << " of which applied "
      << stats.in_flight_applied[t] << (t == 'X' ? "" : ", ");
  }
  o << "); " << stats.kills_before_open << " kills before the child's open finished; "
    << stats.recovery_kills << " kills of a recovering child (" << stats.recovery_kills_mid_open
    << " inside its open); " << stats.reads_checked << " call reads checked; 0 failed opens\n";
  std::printf("%s", o.str().c_str());
  if (!stats.stray.empty()) {
    std::printf(
        "[kill-loop] leftover files in the key directory (temp files of interrupted "
        "atomic writes): %s\n",
        ::testing::PrintToString(stats.stray).c_str());
  }
}

}  // namespace
}  // namespace callvault
