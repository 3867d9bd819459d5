// T3 (testing.md): a crash at every named kill point of tenant create, purge
// and KEK rotation (CommitKeyring's keyring.* points), and then at every
// point passed by the recovery of each of those crashes.
//
// A recording child runs a fixed workload (creates, synced puts, purges, the
// re-creation of a purged id) and reports every point it passes, in order.
// Then for each (point, hit) a child runs the same workload on a fresh copy
// of a prepared store with that point armed and dies by SIGKILL there; the
// parent reopens and checks the invariants (CheckRecovered, in
// crash_points_workload.h): every tenant either live with its key, its
// column family and its acknowledged calls, or not live with no key and no
// column family; one KEK; receipts for every purge that began, in a chain
// that verifies; purges roll forward and creates roll back; the ids stay
// usable.
//
// 34 workload points and 88 recovery points: about 20 s on an idle
// machine (fsync-bound), more on a busy one.
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <set>

#include "callvault/store.h"
#include "engine/kill_point.h"
#include "tests/crash/crash_points_workload.h"
#include "tests/crash/crash_util.h"
#include "tests/testutil/testutil.h"

namespace callvault::crashpoints {
namespace {

using crashtest::Env;
using crashtest::ReportLine;
namespace fs = std::filesystem;

// --- The child ----------------------------------------------------------------
// CALLVAULT_CRASH_MODE=workload: open, then run the workload.
// CALLVAULT_CRASH_MODE=recover: only open (recovery), then exit.
// CALLVAULT_CRASH_ARM="name:hit" arms a point (after open for the workload,
// before it for recovery); CALLVAULT_CRASH_RECORD=1 reports the points
// passed. Lines: "B <step>", "P <step> <point>", "A <step> <code>", "D".

void ArmFromEnv() {
  std::string arm = Env("CALLVAULT_CRASH_ARM");
  if (arm.empty()) return;
  size_t colon = arm.rfind(':');
  testing::ArmKillPoint(arm.substr(0, colon), std::stoi(arm.substr(colon + 1)));
}

TEST(CrashChild, DISABLED_Run) {
  const std::string mode = Env(crashtest::kEnvMode);
  if (mode.empty()) GTEST_SKIP() << "runs only as a crash-test child";
  const bool record = Env("CALLVAULT_CRASH_RECORD") == "1";
  size_t reported = 0;
  auto report_points = [&](int step) {
    auto seen = testing::KillPointsSeen();
    for (; reported < seen.size(); ++reported) {
      ReportLine("P " + std::to_string(step) + " " + seen[reported]);
    }
  };
  if (mode == "recover") {
    testing::RecordKillPoints(record);
    ArmFromEnv();
  }
  auto store = Store::Open(StoreOptions(Env("CALLVAULT_CRASH_KEYS")), Env("CALLVAULT_CRASH_DB"));
  if (!store.ok()) {
    ReportLine("X open: " + store.status().ToString());
    FAIL() << store.status().ToString();
  }
  if (mode == "workload") {
    testing::RecordKillPoints(record);
    ArmFromEnv();
    for (size_t i = 0; i < Workload().size(); ++i) {
      ReportLine("B " + std::to_string(i));
      Status s = RunStep(store->get(), Workload()[i]);
      report_points(static_cast<int>(i));
      ReportLine("A " + std::to_string(i) + " " + std::to_string(static_cast<int>(s.code())));
      if (!s.ok()) ReportLine("X step " + std::to_string(i) + ": " + s.ToString());
    }
  } else {
    report_points(-1);
  }
  ReportLine("D");
}

// --- The parent: running children ------------------------------------------------

struct Point {
  std::string name;
  int hit = 1;    // the how-many-th pass of `name`
  int step = -1;  // the workload step it is in; -1 for recovery
  std::string Arm() const { return name + ":" + std::to_string(hit); }
  Crash AsCrash() const { return Crash{step, name}; }
  std::string Label() const {
    return name + "#" + std::to_string(hit) + " (step " + std::to_string(step) + ")";
  }
};

struct ChildRun {
  int wait_status = 0;
  std::vector<Point> points;
  std::vector<int> begun;           // steps begun
  std::map<int, int> acked;         // step -> code
  std::vector<std::string> errors;  // "X ..." lines
  bool done = false;
  std::string log;
};

ChildRun RunChild(const std::string& mode, const std::string& dir, const std::string& arm,
                  bool record) {
  const std::string log = dir + "/child.log";
  crashtest::Child c = crashtest::Spawn({{crashtest::kEnvMode, mode},
                                         {"CALLVAULT_CRASH_DB", dir + "/db"},
                                         {"CALLVAULT_CRASH_KEYS", dir + "/keys"},
                                         {"CALLVAULT_CRASH_ARM", arm},
                                         {"CALLVAULT_CRASH_RECORD", record ? "1" : "0"}},
                                        log);
  ChildRun r;
  std::map<std::string, int> hits;
  for (const std::string& line : crashtest::ReadAllLines(c)) {
    if (line.empty()) continue;
    switch (line[0]) {
      case 'B':
        r.begun.push_back(std::stoi(line.substr(2)));
        break;
      case 'A': {
        size_t sp = line.find(' ', 2);
        r.acked[std::stoi(line.substr(2, sp - 2))] = std::stoi(line.substr(sp + 1));
        break;
      }
      case 'P': {
        size_t sp = line.find(' ', 2);
        Point p;
        p.step = std::stoi(line.substr(2, sp - 2));
        p.name = line.substr(sp + 1);
        p.hit = ++hits[p.name];
        r.points.push_back(p);
        break;
      }
      case 'D':
        r.done = true;
        break;
      default:
        r.errors.push_back(line);
        break;
    }
  }
  ::close(c.fd);
  r.wait_status = crashtest::WaitChild(c.pid);
  r.log = crashtest::Tail(log);
  return r;
}

void CopyStore(const std::string& from, const std::string& to) {
  fs::create_directories(to);
  testutil::CopyTree(from + "/db", to + "/db");
  testutil::CopyTree(from + "/keys", to + "/keys");
}

// --- The fixture ---------------------------------------------------------------------

class CrashPointsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    prep_ = tmp_.Sub("prep");
    ASSERT_OK(PrepareStore(prep_));
  }

  // Every point the workload passes, recorded by a child on a copy.
  std::vector<Point> RecordWorkload() {
    const std::string dir = tmp_.Sub("record");
    CopyStore(prep_, dir);
    ChildRun r = RunChild("workload", dir, "", /*record=*/true);
    EXPECT_TRUE(WIFEXITED(r.wait_status) && WEXITSTATUS(r.wait_status) == 0)
        << crashtest::DescribeWait(r.wait_status) << "\n"
        << r.log;
    EXPECT_TRUE(r.done) << r.log;
    EXPECT_TRUE(r.errors.empty()) << ::testing::PrintToString(r.errors);
    EXPECT_EQ(r.acked.size(), Workload().size());
    for (const auto& [step, code] : r.acked) EXPECT_EQ(code, 0) << "step " << step;
    // The full run itself must end in the expected state.
    VerifyCase(dir, Expected(nullptr));
    return r.points;
  }

  // Runs the workload armed at `p` on a fresh copy in `dir`; checks the
  // child died there. Returns false if it did not.
  bool CrashAt(const Point& p, const std::string& dir) {
    CopyStore(prep_, dir);
    ChildRun r = RunChild("workload", dir, p.Arm(), false);
    EXPECT_TRUE(crashtest::KilledBySigkill(r.wait_status))
        << "point " << p.Label() << " not reached: " << crashtest::DescribeWait(r.wait_status)
        << "\n"
        << r.log;
    EXPECT_TRUE(r.errors.empty()) << ::testing::PrintToString(r.errors);
    // The pipe agrees: steps before p acknowledged OK, p's step in flight.
    EXPECT_FALSE(r.begun.empty());
    if (!r.begun.empty()) {
      EXPECT_EQ(r.begun.back(), p.step);
    }
    EXPECT_EQ(r.acked.size(), static_cast<size_t>(p.step));
    for (const auto& [step, code] : r.acked) EXPECT_EQ(code, 0) << "step " << step;
    return crashtest::KilledBySigkill(r.wait_status);
  }

  // The receipts of the uninterrupted workload (run by RecordWorkload).
  std::vector<Receipt> ReferenceReceipts() {
    auto st = Store::Open(StoreOptions(tmp_.Sub("record/keys")), tmp_.Sub("record/db"));
    EXPECT_OK(st);
    if (!st.ok()) return {};
    auto r = (*st)->ListReceipts();
    EXPECT_OK(r);
    return r.ok() ? *r : std::vector<Receipt>{};
  }

  testutil::TempDir tmp_;
  std::string prep_;
};

const std::set<std::string>& RequiredPoints() {
  static const std::set<std::string> names = {"create.after_registry",
                                              "create.after_keyring",
                                              "create.after_cf",
                                              "create.after_active",
                                              "purge.after_registry_purging",
                                              "keyring.after_new_kek",
                                              "keyring.after_write",
                                              "keyring.after_header",
                                              "keyring.after_destroy_kek",
                                              "purge.after_shred",
                                              "purge.after_drop",
                                              "purge.after_receipt"};
  return names;
}

TEST_F(CrashPointsTest, EveryPointOfCreatePurgeAndKekRotation) {
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<Point> points = RecordWorkload();
  ASSERT_FALSE(HasFailure());
  std::set<std::string> names;
  for (const auto& p : points) names.insert(p.name);
  for (const auto& n : RequiredPoints()) EXPECT_TRUE(names.count(n)) << "point never passed: " << n;
  std::printf("[crash-points] %zu (point, hit) cases:", points.size());
  for (const auto& p : points) std::printf(" %s", p.Label().c_str());
  std::printf("\n");

  int i = 0;
  for (const auto& p : points) {
    SCOPED_TRACE("crash at " + p.Label());
    const std::string dir = tmp_.Sub("case-" + std::to_string(i++));
    const Crash c = p.AsCrash();
    if (CrashAt(p, dir)) VerifyCase(dir, Expected(&c));
    if (!HasFailure()) fs::remove_all(dir);
  }
  std::printf("[crash-points] %zu cases in %.1f s\n", points.size(),
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
}

// A crash during the recovery of a crash: for each workload point, record
// the points that recovery passes, crash at each of them, then recover again.
TEST_F(CrashPointsTest, EveryPointOfRecoveryAfterEachCrash) {
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<Point> points = RecordWorkload();
  ASSERT_FALSE(HasFailure());
  size_t nested = 0;
  int i = 0;
  for (const auto& p : points) {
    SCOPED_TRACE("crash at " + p.Label());
    const Crash c = p.AsCrash();
    const std::string crashed = tmp_.Sub("crashed-" + std::to_string(i));
    if (!CrashAt(p, crashed)) continue;
    const std::string rec = tmp_.Sub("rec-" + std::to_string(i));
    CopyStore(crashed, rec);
    ChildRun r = RunChild("recover", rec, "", /*record=*/true);
    EXPECT_TRUE(WIFEXITED(r.wait_status) && WEXITSTATUS(r.wait_status) == 0 && r.done)
        << crashtest::DescribeWait(r.wait_status) << "\n"
        << r.log;
    for (const auto& q : r.points) {
      SCOPED_TRACE("then in recovery at " + q.Label());
      const std::string dir =
          tmp_.Sub("nested-" + std::to_string(i) + "-" + std::to_string(nested++));
      CopyStore(crashed, dir);
      ChildRun k = RunChild("recover", dir, q.Arm(), false);
      EXPECT_TRUE(crashtest::KilledBySigkill(k.wait_status))
          << "recovery point " << q.Label()
          << " not reached: " << crashtest::DescribeWait(k.wait_status) << "\n"
          << k.log;
      VerifyCase(dir, Expected(&c));
      if (!HasFailure()) fs::remove_all(dir);
    }
    if (!HasFailure()) {
      fs::remove_all(crashed);
      fs::remove_all(rec);
    }
    ++i;
  }
  std::printf("[crash-points] %zu crashes during recovery after %zu crash points, %.1f s\n", nested,
              points.size(),
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
}

// A purge interrupted after its keyring commit is finished by recovery
// (FinishPurge) through the branch for a tenant whose key is already gone;
// its receipt must still name the KEK generation the purge retired, the
// key versions destroyed and the current generation, as an uninterrupted
// purge's does. (Regression: that branch once left kek_generation_retired
// at 0; the PURGING registry record now carries the generation.)
TEST_F(CrashPointsTest, ReceiptAfterRecoveryNamesTheRetiredKek) {
  std::vector<Point> points = RecordWorkload();
  ASSERT_FALSE(HasFailure());
  std::vector<Receipt> want = ReferenceReceipts();
  ASSERT_GE(want.size(), 3u);
  int i = 0;
  for (const auto& p : points) {
    if (Workload()[static_cast<size_t>(p.step)].op != Op::kPurge) continue;
    SCOPED_TRACE("crash at " + p.Label());
    const std::string dir = tmp_.Sub("receipt-" + std::to_string(i++));
    if (!CrashAt(p, dir)) continue;
    auto st = Store::Open(StoreOptions(dir + "/keys"), dir + "/db");
    ASSERT_OK(st);
    auto got = (*st)->ListReceipts();
    ASSERT_OK(got);
    for (size_t k = 0; k < got->size() && k < want.size(); ++k) {
      EXPECT_EQ((*got)[k].kek_generation_retired, want[k].kek_generation_retired)
          << "receipt " << (k + 1) << " (" << (*got)[k].tenant_id << ")";
      EXPECT_EQ((*got)[k].kek_generation_current, want[k].kek_generation_current)
          << "receipt " << (k + 1) << " (" << (*got)[k].tenant_id << ")";
      EXPECT_EQ((*got)[k].key_versions_destroyed, want[k].key_versions_destroyed);
    }
  }
}

// A crash while a new store is being created (between its first keyring
// and its header): the next open adopts the keys and the store works.
TEST_F(CrashPointsTest, CrashDuringStoreCreation) {
  const std::string dir = tmp_.Sub("init");
  fs::create_directories(dir);
  ChildRun r = RunChild("recover", dir, "init.after_keyring:1", false);
  ASSERT_TRUE(crashtest::KilledBySigkill(r.wait_status))
      << "init.after_keyring not reached: " << crashtest::DescribeWait(r.wait_status) << "\n"
      << r.log;
  auto st = Store::Open(StoreOptions(dir + "/keys"), dir + "/db");
  ASSERT_OK(st);
  ASSERT_OK((*st)->CreateTenant({.tenant_id = "t1"}));
  ASSERT_OK((*st)->PutCall("t1", TestCall("t1", 1)));
  ASSERT_OK((*st)->PurgeTenant("t1"));
  crashtest::KeyCheck kc = crashtest::CheckKeysAndFamilies(**st, dir + "/keys");
  EXPECT_TRUE(kc.problems.empty()) << ::testing::PrintToString(kc.problems);
  EXPECT_TRUE(kc.stray.empty()) << ::testing::PrintToString(kc.stray);
}

}  // namespace
}  // namespace callvault::crashpoints
