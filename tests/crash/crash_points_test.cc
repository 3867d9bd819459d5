// T3 (testing.md): a crash at every named kill point of tenant create, purge
// and KEK rotation (CommitKeyring's keyring.* points), and then at every
// point passed by the recovery of each of those crashes; and at every point
// of the open that repairs a damaged WAL (WalRepairKilledAndPowerCut).
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
// Every (point, hit) is taken twice: killed (SIGKILL there) and power-cut
// (the child runs on FaultFS; at the point the FaultFS freezes, so no later
// I/O reaches the disk, and once the store is gone the child rewrites the
// files to what a power loss leaves in kUndoDirOps mode: unsynced data
// dropped, creates, renames and unlinks not covered by a directory fsync
// undone). The points include every fsync and rename of AtomicWrite
// (atomic_write.*), of Shred and Remove (shred.*, remove.*) and of
// Shard::Drop (shard_drop.*). EveryCompiledPointCrashedBothWays, run last,
// asserts that every CV_KILL_POINT compiled into the engine
// (testing::CompiledKillPoints) was crashed at both ways by this suite.
//
// The suite prints the list of points and the count of trials per mode.
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>

#include "callvault/backup.h"
#include "callvault/store.h"
#include "engine/kill_point.h"
#include "format/rowkey.h"
#include "tests/crash/crash_points_workload.h"
#include "tests/crash/crash_util.h"
#include "tests/testutil/fault_fs.h"
#include "tests/testutil/raw_shard.h"
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
// passed. CALLVAULT_CRASH_POWER=1 runs the store on FaultFS and cuts the
// power at the armed point instead of dying (see the top comment).
// Lines: "B <step>", "P <step> <point>", "A <step> <code>", "C <step>" (the
// power went at the armed point, in that step; -1: in recovery), "D".

// The compliance case (CompliancePointsKilledAndPowerCut): "acme" keeps 30
// days and has kOld calls older than that (three sweep batches) and kYoung
// younger; "gone" is due for its scheduled purge.
constexpr int64_t kDay = int64_t{86400} * 1'000'000;
constexpr int64_t kComplianceNow = 1'767'225'600'000'000 + 400 * kDay;
constexpr int kOld = 250, kYoung = 20;

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
  const bool power = Env("CALLVAULT_CRASH_POWER") == "1";
  std::shared_ptr<testutil::FaultFS> ffs;
  std::unique_ptr<rocksdb::Env> fenv;
  if (power) {
    ffs = std::make_shared<testutil::FaultFS>(1);
    fenv = testutil::FaultEnv(ffs);
    testutil::FaultFS* f = ffs.get();
    testing::SetKillPointAction([f] { f->Freeze(); });
  }
  // The power went: nothing more reaches the disk; the store goes, then the
  // files become what a power loss leaves.
  auto cut = [&](std::unique_ptr<Store>* st, int step) {
    st->reset();
    ffs->SimulatePowerLoss(testutil::PowerLossMode::kUndoDirOps);
    ReportLine("C " + std::to_string(step));
  };
  const std::string keys = Env("CALLVAULT_CRASH_KEYS");
  if (mode == "backup" || mode == "restore") {
    // Files a backup and a restore write outside RocksDB (manifests, the
    // staging rename, RESTORE_PENDING) bypass the FaultFS: at the point the
    // power goes at once, with the process (no later write of any kind).
    if (power) {
      testutil::FaultFS* f = ffs.get();
      testing::SetKillPointAction([f] {
        f->Freeze();
        f->SimulatePowerLoss(testutil::PowerLossMode::kUndoDirOps);
        ReportLine("C 0");
        ReportLine("D");
        std::_Exit(0);
      });
    }
  }
  if (mode == "restore") {  // restore dir/bak into dir/db-r (BackupCase)
    const std::string bak = fs::path(Env("CALLVAULT_CRASH_DB")).parent_path().string() + "/bak";
    testing::RecordKillPoints(record);
    ArmFromEnv();
    ReportLine("B 0");
    auto r = Store::Restore(power ? StoreOptions(keys, fenv.get()) : StoreOptions(keys), bak,
                            Env("CALLVAULT_CRASH_DB") + "-r");
    report_points(0);
    ReportLine("A 0 " + std::to_string(static_cast<int>(r.status().code())));
    if (!r.ok()) ReportLine("X restore: " + r.status().ToString());
    ReportLine("D");
    return;
  }
  if (mode == "recover") {
    testing::RecordKillPoints(record);
    ArmFromEnv();
  }
  auto store = Store::Open(power ? StoreOptions(keys, fenv.get()) : StoreOptions(keys),
                           Env("CALLVAULT_CRASH_DB"));
  if (power && ffs->frozen()) {  // the power went inside recovery
    std::unique_ptr<Store> st = store.ok() ? std::move(*store) : nullptr;
    cut(&st, -1);
    ReportLine("D");
    return;
  }
  if (!store.ok()) {
    ReportLine("X open: " + store.status().ToString());
    FAIL() << store.status().ToString();
  }
  // A mode of one operation (step 0): its points, then the power cut if
  // it froze the store (no "A"), else its result.
  auto one_step = [&](const std::string& what, const std::function<Status()>& op) {
    testing::RecordKillPoints(record);
    ArmFromEnv();
    ReportLine("B 0");
    Status s = op();
    report_points(0);
    if (power && ffs->frozen()) {
      cut(&*store, 0);
      return;
    }
    ReportLine("A 0 " + std::to_string(static_cast<int>(s.code())));
    if (!s.ok()) ReportLine("X " + what + ": " + s.ToString());
  };
  if (mode == "backup") {  // a second cut into dir/bak (BackupCase)
    one_step("backup", [&] {
      const std::string bak = fs::path(Env("CALLVAULT_CRASH_DB")).parent_path().string() + "/bak";
      return (*store)->Backup(bak).status();
    });
  } else if (mode == "compliance") {  // the scheduled purges, then the retention sweep
    one_step("compliance", [&] {
      Status s = (*store)->RunScheduledPurges(kComplianceNow).status();
      if (s.ok() && !(power && ffs->frozen())) s = (*store)->RunRetention(kComplianceNow).status();
      return s;
    });
  } else if (mode == "reconcile") {  // destroy the orphan key of "acme" (ReconcileCase)
    one_step("reconcile", [&] {
      const uint64_t id = std::stoull(Env("CALLVAULT_CRASH_ORPHAN"));
      return (*store)->ReconcileKeys(/*dry_run=*/false, {id}).status();
    });
  } else if (mode == "move") {  // move "acme" to the store beside it (MoveCase)
    const std::string b_db = Env("CALLVAULT_CRASH_DB") + "-b";
    const std::string b_keys = keys + "-b";
    auto dst = Store::Open(power ? StoreOptions(b_keys, fenv.get()) : StoreOptions(b_keys), b_db);
    if (!dst.ok()) {
      ReportLine("X open b: " + dst.status().ToString());
      FAIL() << dst.status().ToString();
    }
    testing::RecordKillPoints(record);
    ArmFromEnv();
    ReportLine("B 0");
    Status s = MoveTenant(**store, **dst, "acme").status();
    report_points(0);
    if (power && ffs->frozen()) {
      dst->reset();  // both stores lose power together (one machine)
      cut(&*store, 0);
      ReportLine("D");
      return;
    }
    ReportLine("A 0 " + std::to_string(static_cast<int>(s.code())));
    if (!s.ok()) ReportLine("X move: " + s.ToString());
  } else if (mode == "workload") {
    testing::RecordKillPoints(record);
    ArmFromEnv();
    for (size_t i = 0; i < Workload().size(); ++i) {
      ReportLine("B " + std::to_string(i));
      Status s = RunStep(store->get(), Workload()[i]);
      report_points(static_cast<int>(i));
      if (power && ffs->frozen()) {  // in flight at the power cut: no "A"
        cut(&*store, static_cast<int>(i));
        break;
      }
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

// How a trial crashes at its point.
enum class Cut { kKill, kPower };
const char* CutName(Cut c) { return c == Cut::kKill ? "killed" : "power-cut"; }

// Every (point name) crashed at by this run of the suite, per mode, for
// EveryCompiledPointCrashedBothWays.
std::map<std::string, int>& Crashed(Cut c) {
  static std::map<std::string, int> killed, powered;
  return c == Cut::kKill ? killed : powered;
}

struct ChildRun {
  int wait_status = 0;
  int cut_step = -2;  // "C <step>": the power went at the armed point
  std::vector<Point> points;
  std::vector<int> begun;           // steps begun
  std::map<int, int> acked;         // step -> code
  std::vector<std::string> errors;  // "X ..." lines
  bool done = false;
  std::string log;
};

ChildRun RunChild(const std::string& mode, const std::string& dir, const std::string& arm,
                  bool record, Cut cut = Cut::kKill, const std::string& orphan = "") {
  const std::string log = dir + "/child.log";
  crashtest::Child c = crashtest::Spawn({{crashtest::kEnvMode, mode},
                                         {"CALLVAULT_CRASH_DB", dir + "/db"},
                                         {"CALLVAULT_CRASH_KEYS", dir + "/keys"},
                                         {"CALLVAULT_CRASH_ARM", arm},
                                         {"CALLVAULT_CRASH_RECORD", record ? "1" : "0"},
                                         {"CALLVAULT_CRASH_POWER", cut == Cut::kPower ? "1" : "0"},
                                         {"CALLVAULT_CRASH_ORPHAN", orphan}},
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
      case 'C':
        r.cut_step = std::stoi(line.substr(2));
        break;
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

// The metadata instance's registry row keys (the store must be closed).
std::set<std::string> RegistryKeys(const std::string& db) {
  testutil::RawShard meta(db + "/meta", /*read_only=*/true);
  EXPECT_TRUE(meta.status().ok()) << meta.status().ToString();
  std::set<std::string> out;
  for (auto& [k, v] : meta.Scan("default")) {
    if (!k.empty() && k[0] == format::kRegistryPrefix) out.insert(k);
  }
  return out;
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
  // child died (or lost power) there. Returns false if it did not.
  bool CrashAt(const Point& p, const std::string& dir, Cut cut = Cut::kKill) {
    CopyStore(prep_, dir);
    ChildRun r = RunChild("workload", dir, p.Arm(), false, cut);
    if (!CheckCut(r, cut, p.step, p.Label())) return false;
    ++Crashed(cut)[p.name];
    EXPECT_TRUE(r.errors.empty()) << ::testing::PrintToString(r.errors);
    // The pipe agrees: steps before p acknowledged OK, p's step in flight.
    EXPECT_FALSE(r.begun.empty());
    if (!r.begun.empty()) {
      EXPECT_EQ(r.begun.back(), p.step);
    }
    EXPECT_EQ(r.acked.size(), static_cast<size_t>(p.step));
    for (const auto& [step, code] : r.acked) EXPECT_EQ(code, 0) << "step " << step;
    return true;
  }

  // The child died by SIGKILL at its point, or cut the power there (in
  // `step`) and exited cleanly.
  static bool CheckCut(const ChildRun& r, Cut cut, int step, const std::string& label) {
    if (cut == Cut::kKill) {
      EXPECT_TRUE(crashtest::KilledBySigkill(r.wait_status))
          << "point " << label << " not reached: " << crashtest::DescribeWait(r.wait_status)
          << "\n"
          << r.log;
      return crashtest::KilledBySigkill(r.wait_status);
    }
    const bool ok = WIFEXITED(r.wait_status) && WEXITSTATUS(r.wait_status) == 0 && r.done &&
                    r.cut_step == step;
    EXPECT_TRUE(ok) << "power cut at " << label << " not reached (cut in step " << r.cut_step
                    << "): " << crashtest::DescribeWait(r.wait_status) << "\n"
                    << r.log;
    return ok;
  }
  // Every point `mode` passes (with `extra`), recorded by a child run to
  // its end in `dir`; `no_errors`: the child reported no error either.
  std::vector<Point> RecordPoints(const std::string& mode, const std::string& dir,
                                  const std::string& extra = "", bool no_errors = true) {
    ChildRun r = RunChild(mode, dir, "", /*record=*/true, Cut::kKill, extra);
    EXPECT_TRUE(WIFEXITED(r.wait_status) && WEXITSTATUS(r.wait_status) == 0 && r.done) << r.log;
    if (no_errors) {
      EXPECT_TRUE(r.errors.empty()) << ::testing::PrintToString(r.errors);
    }
    return r.points;
  }

  // `mode` armed at every point of `points`, killed and power-cut, each on
  // a fresh directory `name`-N that `prepare(dir)` fills; `check(dir)` after
  // each run that was cut at its point (`step`: CheckCut's). Stops at the
  // first fatal failure, as an ASSERT in the loop did. Returns the trials
  // per cut.
  template <typename Prepare, typename Check>
  std::map<Cut, size_t> CutAtEveryPoint(const std::string& name, const std::string& mode,
                                        const std::vector<Point>& points, int step,
                                        const std::string& extra, Prepare prepare, Check check) {
    std::map<Cut, size_t> trials;
    int i = 0;
    for (Cut cut : {Cut::kKill, Cut::kPower}) {
      for (const auto& p : points) {
        SCOPED_TRACE(std::string(CutName(cut)) + " at " + p.Label());
        const std::string dir = tmp_.Sub(name + "-" + std::to_string(i++));
        prepare(dir);
        ChildRun r = RunChild(mode, dir, p.Arm(), false, cut, extra);
        if (!CheckCut(r, cut, step, p.Label())) continue;
        ++Crashed(cut)[p.name];
        ++trials[cut];
        check(dir);
        if (HasFatalFailure()) return trials;
      }
    }
    return trials;
  }

  // Every live tenant has its key and family; no key without its tenant.
  static void ExpectKeysInOrder(Store& st, const std::string& keys) {
    crashtest::KeyCheck kc = crashtest::CheckKeysAndFamilies(st, keys);
    EXPECT_TRUE(kc.problems.empty()) << ::testing::PrintToString(kc.problems);
    EXPECT_TRUE(kc.stray.empty()) << ::testing::PrintToString(kc.stray);
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
                                              "purge.after_receipt",
                                              "rotate.after_begin",
                                              "rotate.after_keyring",
                                              "rotate.after_family",
                                              "rotate.after_batch",
                                              "rotate.after_copy",
                                              "rotate.after_switch",
                                              "rotate.after_shred",
                                              "rotate.after_drop",
                                              "rotate.after_receipt"};
  return names;
}

// The points named in testing.md and issue 11 (each fsync and rename of
// AtomicWrite, Shred/Remove and Shard::Drop) that the workload must pass.
const std::set<std::string>& RequiredFsPoints() {
  static const std::set<std::string> names = {
      "atomic_write.after_fsync", "atomic_write.after_rename", "atomic_write.after_dir_fsync",
      "shred.after_fsync",        "remove.after_unlink",       "remove.after_dir_fsync",
      "shard_drop.after_drop",    "shard_drop.after_destroy_handle"};
  return names;
}

void PrintPoints(const std::vector<Point>& points) {
  std::map<std::string, int> hits;
  for (const auto& p : points) ++hits[p.name];
  std::printf("[crash-points] %zu named points, %zu (point, hit) cases:", hits.size(),
              points.size());
  for (const auto& [name, n] : hits) std::printf(" %s x%d", name.c_str(), n);
  std::printf("\n");
}

TEST_F(CrashPointsTest, EveryPointOfCreatePurgeAndKekRotation) {
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<Point> points = RecordWorkload();
  ASSERT_FALSE(HasFailure());
  std::set<std::string> names;
  for (const auto& p : points) names.insert(p.name);
  for (const auto& n : RequiredPoints()) EXPECT_TRUE(names.count(n)) << "point never passed: " << n;
  for (const auto& n : RequiredFsPoints())
    EXPECT_TRUE(names.count(n)) << "point never passed: " << n;
  PrintPoints(points);

  int i = 0;
  std::map<Cut, size_t> trials;
  for (Cut cut : {Cut::kKill, Cut::kPower}) {
    for (const auto& p : points) {
      SCOPED_TRACE(std::string(CutName(cut)) + " at " + p.Label());
      const std::string dir = tmp_.Sub("case-" + std::to_string(i++));
      const Crash c = p.AsCrash();
      if (CrashAt(p, dir, cut)) {
        VerifyCase(dir, Expected(&c));
        ++trials[cut];
      }
      if (!HasFailure()) fs::remove_all(dir);
    }
  }
  std::printf("[crash-points] workload: %zu (point, hit) cases; %zu killed, %zu power-cut, in %.1f s\n",
              points.size(), trials[Cut::kKill], trials[Cut::kPower],
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
}

// A crash during the recovery of a crash: for each workload point, record
// the points that recovery passes, crash at each of them, then recover
// again. Killed at every one; power-cut at each (point, hit) of the
// recovery once per workload step (crashes in one step mostly recover
// through the same points: that keeps the suite's time in bounds).
TEST_F(CrashPointsTest, EveryPointOfRecoveryAfterEachCrash) {
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<Point> points = RecordWorkload();
  ASSERT_FALSE(HasFailure());
  std::map<Cut, size_t> nested;
  std::set<std::string> recovery_names;
  std::set<std::string> power_cut_done;  // "<step> <point>#<hit>"
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
    for (Cut cut : {Cut::kKill, Cut::kPower}) {
      for (const auto& q : r.points) {
        if (cut == Cut::kPower &&
            !power_cut_done.insert(std::to_string(p.step) + " " + q.Arm()).second) {
          continue;
        }
        SCOPED_TRACE(std::string("then in recovery ") + CutName(cut) + " at " + q.Label());
        recovery_names.insert(q.name);
        const std::string dir = tmp_.Sub("nested-" + std::to_string(i) + "-" +
                                         std::to_string(nested[Cut::kKill] + nested[Cut::kPower]));
        CopyStore(crashed, dir);
        ChildRun k = RunChild("recover", dir, q.Arm(), false, cut);
        if (CheckCut(k, cut, -1, "recovery point " + q.Label())) {
          ++Crashed(cut)[q.name];
          ++nested[cut];
        }
        VerifyCase(dir, Expected(&c));
        if (!HasFailure()) fs::remove_all(dir);
      }
    }
    if (!HasFailure()) {
      fs::remove_all(crashed);
      fs::remove_all(rec);
    }
    ++i;
  }
  std::printf("[crash-points] recovery: %zu named points:", recovery_names.size());
  for (const auto& n : recovery_names) std::printf(" %s", n.c_str());
  std::printf("\n[crash-points] recovery after each of %zu crash points: %zu killed, %zu "
              "power-cut, in %.1f s\n",
              points.size(), nested[Cut::kKill], nested[Cut::kPower],
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
// Every point a store's creation passes, killed and power-cut.
TEST_F(CrashPointsTest, CrashDuringStoreCreation) {
  const std::string record = tmp_.Sub("init-record");
  fs::create_directories(record);
  const std::vector<Point> points = RecordPoints("recover", record, "", /*no_errors=*/false);
  ASSERT_FALSE(HasFailure());
  bool init_point = false;
  for (const auto& p : points) init_point |= p.name == "init.after_keyring";
  EXPECT_TRUE(init_point) << "init.after_keyring never passed";
  auto trials = CutAtEveryPoint(
      "init", "recover", points, -1, "", [](const std::string& dir) { fs::create_directories(dir); },
      [&](const std::string& dir) {
        auto st = Store::Open(StoreOptions(dir + "/keys"), dir + "/db");
        ASSERT_OK(st);
        ASSERT_OK((*st)->CreateTenant({.tenant_id = "t1"}));
        ASSERT_OK((*st)->PutCall("t1", TestCall("t1", 1)));
        ASSERT_OK((*st)->PurgeTenant("t1"));
        ExpectKeysInOrder(**st, dir + "/keys");
      });
  std::printf("[crash-points] store creation: %zu (point, hit) cases; %zu killed, %zu power-cut\n",
              points.size(), trials[Cut::kKill], trials[Cut::kPower]);
}

// The scheduled purge and the retention sweep (points scheduled_purge.*,
// retention.* and the purge's own), killed and power-cut at every point;
// after recovery and a re-run of both jobs: the old calls gone, the young
// ones whole, "gone" purged once, receipts and keys in order.
TEST_F(CrashPointsTest, CompliancePointsKilledAndPowerCut) {
  const std::string prep = tmp_.Sub("compliance-prep");
  {
    fs::create_directories(prep);
    auto st = Store::Open(StoreOptions(prep + "/keys"), prep + "/db");
    ASSERT_OK(st);
    ASSERT_OK((*st)->CreateTenant({.tenant_id = "acme", .retention_days = 30}));
    ASSERT_OK((*st)->CreateTenant({.tenant_id = "gone"}));
    std::vector<Call> calls;
    for (int i = 0; i < kOld + kYoung; ++i) {
      const int64_t age = i < kOld ? 40 + i : 1 + (i - kOld);
      calls.push_back(testutil::MakeCall("c" + std::to_string(i), kComplianceNow - age * kDay));
    }
    ASSERT_OK((*st)->PutCalls("acme", calls));
    ASSERT_OK((*st)->PutCall("gone", testutil::MakeCall("g", kComplianceNow)));
    ASSERT_OK((*st)->ScheduleTenantPurge("gone", kComplianceNow - 1));
  }
  const std::string record = tmp_.Sub("compliance-record");
  CopyStore(prep, record);
  const std::vector<Point> points = RecordPoints("compliance", record);
  ASSERT_FALSE(HasFailure());
  PrintPoints(points);
  auto trials = CutAtEveryPoint(
      "compliance", "compliance", points, 0, "", [&](const std::string& dir) { CopyStore(prep, dir); },
      [&](const std::string& dir) {
      auto st = Store::Open(StoreOptions(dir + "/keys"), dir + "/db");
      ASSERT_OK(st);
      auto v = (*st)->Verify();
      ASSERT_OK(v);
      EXPECT_EQ(v->records_failed, 0u);
      ASSERT_OK((*st)->RunScheduledPurges(kComplianceNow));
      ASSERT_OK((*st)->RunRetention(kComplianceNow));
      auto n = (*st)->CountCalls("acme");
      ASSERT_OK(n);
      EXPECT_EQ(*n, static_cast<uint64_t>(kYoung));
      for (int k = kOld; k < kOld + kYoung; ++k) EXPECT_OK((*st)->GetCall("acme", "c" + std::to_string(k)));
      EXPECT_CODE((*st)->GetCall("acme", "c0"), Code::kNotFound);
      EXPECT_CODE((*st)->GetCall("gone", "g"), Code::kTenantPurged);
      auto receipts = (*st)->ListReceipts();
      ASSERT_OK(receipts);
      int purges = 0;
      for (const auto& x : *receipts) purges += x.tenant_id == "gone" && x.kind == "tenant_purge";
      EXPECT_EQ(purges, 1);
      auto pk = (*st)->SigningPublicKey();
      ASSERT_OK(pk);
      EXPECT_OK(VerifyReceiptChain(*receipts, *pk));
      ExpectKeysInOrder(**st, dir + "/keys");
      if (!HasFailure()) {
        st->reset();
        fs::remove_all(dir);
      }
      });
  std::printf("[crash-points] scheduled purge and retention: %zu (point, hit) cases; %zu killed, "
              "%zu power-cut\n",
              points.size(), trials[Cut::kKill], trials[Cut::kPower]);
}

// ReconcileKeys destroying an orphan key (a registry row deleted with plain
// RocksDB; recover_test shows how one arises), killed and power-cut at every
// point it passes (reconcile.after_shred and the KEK rotation's): afterwards
// the orphan's data is unreadable for good (no key left for it, its family
// dropped by the next open or a re-run), the other tenant whole, the receipt
// chain verifies, and no orphan is reported any more.
TEST_F(CrashPointsTest, ReconcileKilledAndPowerCut) {
  const std::string prep = tmp_.Sub("reconcile-prep");
  uint64_t orphan = 0;
  {
    fs::create_directories(prep);
    std::set<std::string> rows;
    {
      auto st = Store::Open(StoreOptions(prep + "/keys"), prep + "/db");
      ASSERT_OK(st);
      auto acme = (*st)->CreateTenant({.tenant_id = "acme"});
      ASSERT_OK(acme);
      orphan = acme->internal_id;
      ASSERT_OK((*st)->PutCall("acme", TestCall("acme", 1)));
      st->reset();
      rows = RegistryKeys(prep + "/db");  // acme's row only
      ASSERT_EQ(rows.size(), 1u);
      st = Store::Open(StoreOptions(prep + "/keys"), prep + "/db");
      ASSERT_OK(st);
      ASSERT_OK((*st)->CreateTenant({.tenant_id = "other"}));
      ASSERT_OK((*st)->PutCall("other", TestCall("other", 2)));
    }
    // acme's registry row deleted behind the store's back: its key is an
    // orphan that still reads data (so the operator names it to destroy).
    testutil::RawShard meta(prep + "/db/meta", /*read_only=*/false);
    ASSERT_TRUE(meta.status().ok()) << meta.status().ToString();
    meta.Delete("default", *rows.begin());
  }
  const std::string record = tmp_.Sub("reconcile-record");
  CopyStore(prep, record);
  const std::vector<Point> points = RecordPoints("reconcile", record, std::to_string(orphan));
  ASSERT_FALSE(HasFailure());
  PrintPoints(points);
  bool reached = false;
  for (const auto& p : points) reached |= p.name == "reconcile.after_shred";
  ASSERT_TRUE(reached) << "reconcile.after_shred never passed";
  auto trials = CutAtEveryPoint(
      "reconcile", "reconcile", points, 0, std::to_string(orphan),
      [&](const std::string& dir) { CopyStore(prep, dir); },
      [&](const std::string& dir) {
      auto st = Store::Open(StoreOptions(dir + "/keys"), dir + "/db");
      ASSERT_OK(st);
      // The interrupted reconcile either destroyed the key (then nothing is
      // an orphan any more) or did not (then a re-run completes it).
      auto again = (*st)->ReconcileKeys(/*dry_run=*/false, {orphan});
      ASSERT_OK(again);
      auto stats = (*st)->Stats();
      ASSERT_OK(stats);
      EXPECT_TRUE(stats->orphan_keys.empty());
      EXPECT_OK((*st)->GetCall("other", "other-call-2"));
      EXPECT_CODE((*st)->DescribeTenant("acme"), Code::kNotFound);
      auto receipts = (*st)->ListReceipts();
      ASSERT_OK(receipts);
      int destroyed = 0;
      for (const auto& x : *receipts) {
        destroyed += x.kind == "orphan_key_destroyed" && x.tenant_internal_id == orphan;
      }
      EXPECT_LE(destroyed, 1);
      auto pk = (*st)->SigningPublicKey();
      ASSERT_OK(pk);
      EXPECT_OK(VerifyReceiptChain(*receipts, *pk));
      ExpectKeysInOrder(**st, dir + "/keys");
      st->reset();
      // Reopened: nothing left half done (the orphan's family dropped).
      auto st2 = Store::Open(StoreOptions(dir + "/keys"), dir + "/db");
      ASSERT_OK(st2);
      crashtest::KeyCheck kc2 = crashtest::CheckKeysAndFamilies(**st2, dir + "/keys");
      EXPECT_TRUE(kc2.problems.empty()) << ::testing::PrintToString(kc2.problems);
      if (!HasFailure()) {
        st2->reset();
        fs::remove_all(dir);
      }
      });
  std::printf("[crash-points] reconcile: %zu (point, hit) cases; %zu killed, %zu power-cut\n",
              points.size(), trials[Cut::kKill], trials[Cut::kPower]);
}

// The open that repairs a damaged WAL (engine/wal_scan.cc, decision 0019),
// killed and power-cut at every point it passes: the damage record
// (wal_repair.after_damage_record), the kept copy and the rewrite
// (atomic_write.*, wal_repair.after_rewrite), the marks in the metadata and
// the removal of the evidence (remove.*). The damaged record is the LAST of
// its WAL file, later WALs continuing after it, so the repaired file and
// the kept copy alone show nothing (issue 11, attack11's
// RepairInterrupted/EndOfFile*): after the next open, acme (whose write the
// record held) must be marked damaged and Verify not ok, bravo whole or
// marked, and no evidence file left.
TEST_F(CrashPointsTest, WalRepairKilledAndPowerCut) {
  const std::string prep = tmp_.Sub("walrepair-prep");
  const std::string shard = prep + "/db/shards/0000";
  auto newest_wal = [&]() -> std::pair<std::string, uint64_t> {
    std::vector<std::string> v;
    for (const auto& e : fs::directory_iterator(shard)) {
      if (e.path().extension() == ".log" && fs::file_size(e.path()) > 0) v.push_back(e.path());
    }
    std::sort(v.begin(), v.end());
    if (v.empty()) return {"", 0};
    return {v.back(), fs::file_size(v.back())};
  };
  std::vector<int> acme = {1, 2, 3}, bravo = {4};
  std::string wal;
  uint64_t before = 0, after = 0;
  {
    fs::create_directories(prep);
    auto st = Store::Open(StoreOptions(prep + "/keys"), prep + "/db");
    ASSERT_OK(st);
    ASSERT_OK((*st)->CreateTenant({.tenant_id = "acme"}));
    ASSERT_OK((*st)->CreateTenant({.tenant_id = "bravo"}));
    ASSERT_EQ((*st)->DescribeTenant("acme")->shard, 0u);
    ASSERT_EQ((*st)->DescribeTenant("bravo")->shard, 0u);
    for (int i : acme) ASSERT_OK((*st)->PutCall("acme", TestCall("acme", i)));
    for (int i : bravo) ASSERT_OK((*st)->PutCall("bravo", TestCall("bravo", i)));
    std::tie(wal, before) = newest_wal();
    ASSERT_OK((*st)->PutCall("acme", TestCall("acme", 5)));  // the write the damage takes
    std::string same;
    std::tie(same, after) = newest_wal();
    ASSERT_EQ(same, wal);
    ASSERT_GT(after, before);
    st->reset();
    st = Store::Open(StoreOptions(prep + "/keys"), prep + "/db");  // later writes: a new WAL
    ASSERT_OK(st);
    for (int i = 10; i < 14; ++i) {
      ASSERT_OK((*st)->PutCall("bravo", TestCall("bravo", i)));
      bravo.push_back(i);
      ASSERT_OK((*st)->PutCall("acme", TestCall("acme", i + 10)));
      acme.push_back(i + 10);
    }
    ASSERT_OK((*st)->Close());
  }
  ASSERT_NE(newest_wal().first, wal) << "the damaged record must not be in the newest WAL";
  {
    std::fstream f(wal, std::ios::in | std::ios::out | std::ios::binary);
    ASSERT_TRUE(f);
    const auto at = static_cast<std::streamoff>(before + (after - before) / 2);
    f.seekg(at);
    char c = 0;
    f.read(&c, 1);
    c = static_cast<char>(c ^ 0x01);
    f.seekp(at);
    f.write(&c, 1);
  }
  std::vector<Point> points;
  {
    const std::string dir = tmp_.Sub("walrepair-record");
    CopyStore(prep, dir);
    ChildRun r = RunChild("recover", dir, "", /*record=*/true);
    ASSERT_TRUE(WIFEXITED(r.wait_status) && WEXITSTATUS(r.wait_status) == 0 && r.done) << r.log;
    ASSERT_TRUE(r.errors.empty()) << ::testing::PrintToString(r.errors);
    points = r.points;
  }
  PrintPoints(points);
  std::set<std::string> names;
  for (const auto& p : points) names.insert(p.name);
  for (const char* n : {"wal_repair.after_damage_record", "wal_repair.after_rewrite",
                        "wal_repair.after_db_open",
                        "atomic_write.after_fsync", "remove.after_unlink"}) {
    EXPECT_TRUE(names.count(n)) << "point never passed by the repair: " << n;
  }
  std::map<Cut, size_t> trials;
  int i = 0, loud = 0;
  for (Cut cut : {Cut::kKill, Cut::kPower}) {
    for (const auto& p : points) {
      SCOPED_TRACE(std::string(CutName(cut)) + " at " + p.Label());
      const std::string dir = tmp_.Sub("walrepair-" + std::to_string(i++));
      CopyStore(prep, dir);
      ChildRun r = RunChild("recover", dir, p.Arm(), false, cut);
      if (!CheckCut(r, cut, -1, p.Label())) continue;
      ++Crashed(cut)[p.name];
      ++trials[cut];
      auto st = Store::Open(StoreOptions(dir + "/keys"), dir + "/db");
      ASSERT_OK(st);
      auto a = (*st)->DescribeTenant("acme");
      ASSERT_OK(a);
      EXPECT_TRUE(a->damaged) << "the damage was lost: acme not marked";
      loud += a->damaged ? 1 : 0;
      auto b = (*st)->DescribeTenant("bravo");
      ASSERT_OK(b);
      if (!b->damaged) {
        for (int k : bravo) EXPECT_OK((*st)->GetCall("bravo", "bravo-call-" + std::to_string(k)));
      }
      auto v = (*st)->Verify(std::nullopt);
      ASSERT_OK(v);
      EXPECT_FALSE(v->ok());
      // The damage is in the metadata now: its record and copy are gone.
      for (const auto& e : fs::directory_iterator(dir + "/db/shards/0000")) {
        const std::string n = e.path().filename();
        EXPECT_EQ(n.find(".damage"), std::string::npos) << "left after recovery: " << n;
      }
      ASSERT_OK((*st)->Close());
      st->reset();
      if (!HasFailure()) fs::remove_all(dir);
    }
  }
  std::printf("[crash-points] WAL repair: %zu (point, hit) cases; %zu killed, %zu power-cut, %d "
              "loud after recovery\n",
              points.size(), trials[Cut::kKill], trials[Cut::kPower], loud);
}

// A tenant moved between two stores (decision 0022), killed and power-cut
// (both stores on one FaultFS: one machine) at every move.* point and at the
// first pass of every other point the move passes, on either side. After
// reopening both stores: at most one copy takes writes (the destination's
// once it committed, else the source's unless fenced), the authoritative
// copy holds every call, and a resumed move ends with exactly one: the
// destination live with every call, the source purged with one moved_out
// receipt, both stores' keys and families consistent.
TEST_F(CrashPointsTest, MoveKilledAndPowerCutOnEitherSide) {
  const std::string prep = tmp_.Sub("move-prep");
  constexpr int kCalls = 30;
  {
    fs::create_directories(prep);
    auto a = Store::Open(StoreOptions(prep + "/keys"), prep + "/db");
    ASSERT_OK(a);
    ASSERT_OK((*a)->CreateTenant({.tenant_id = "acme"}));
    ASSERT_OK((*a)->CreateTenant({.tenant_id = "other"}));
    for (int i = 0; i < kCalls; ++i) ASSERT_OK((*a)->PutCall("acme", TestCall("acme", i)));
    ASSERT_OK((*a)->PutCall("other", TestCall("other", 1)));
    auto b = Store::Open(StoreOptions(prep + "/keys-b"), prep + "/db-b");
    ASSERT_OK(b);
    ASSERT_OK((*b)->CreateTenant({.tenant_id = "resident"}));
  }
  auto copy = [&](const std::string& dir) {
    CopyStore(prep, dir);
    testutil::CopyTree(prep + "/db-b", dir + "/db-b");
    testutil::CopyTree(prep + "/keys-b", dir + "/keys-b");
  };
  std::vector<Point> points;
  {
    const std::string dir = tmp_.Sub("move-record");
    copy(dir);
    ChildRun r = RunChild("move", dir, "", /*record=*/true);
    ASSERT_TRUE(WIFEXITED(r.wait_status) && WEXITSTATUS(r.wait_status) == 0 && r.done) << r.log;
    ASSERT_TRUE(r.errors.empty()) << ::testing::PrintToString(r.errors);
    for (const auto& p : r.points) {
      if (p.name.starts_with("move.") || p.hit == 1) points.push_back(p);
    }
  }
  PrintPoints(points);
  size_t move_points = 0;
  for (const auto& p : points) move_points += p.name.starts_with("move.");
  ASSERT_GE(move_points, 8u) << "the move's own kill points were not passed";
  std::map<Cut, size_t> trials;
  size_t at_destination = 0, at_source = 0;
  int i = 0;
  for (Cut cut : {Cut::kKill, Cut::kPower}) {
    for (const auto& p : points) {
      SCOPED_TRACE(std::string(CutName(cut)) + " at " + p.Label());
      const std::string dir = tmp_.Sub("move-" + std::to_string(i++));
      copy(dir);
      ChildRun r = RunChild("move", dir, p.Arm(), false, cut);
      if (!CheckCut(r, cut, 0, p.Label())) continue;
      ++Crashed(cut)[p.name];
      ++trials[cut];
      auto a = Store::Open(StoreOptions(dir + "/keys"), dir + "/db");
      ASSERT_OK(a);
      auto b = Store::Open(StoreOptions(dir + "/keys-b"), dir + "/db-b");
      ASSERT_OK(b);
      auto ia = (*a)->DescribeTenant("acme");
      ASSERT_OK(ia);
      auto ib = (*b)->DescribeTenant("acme");
      const bool b_live = ib.ok() && ib->state == TenantState::kActive;
      const bool a_live = ia->state == TenantState::kActive;
      const bool a_writable = a_live && ia->moved_to.empty();
      EXPECT_FALSE(b_live && a_writable) << "two authoritative copies";
      EXPECT_TRUE(b_live || a_live) << "no copy left";
      Store& auth = b_live ? **b : **a;
      (b_live ? at_destination : at_source)++;
      auto n = auth.CountCalls("acme");
      ASSERT_OK(n);
      EXPECT_EQ(*n, static_cast<uint64_t>(kCalls));
      for (int c = 0; c < kCalls; c += 7) EXPECT_OK(auth.GetCall("acme", "acme-call-" + std::to_string(c)));
      if (b_live && a_live) {
        EXPECT_CODE((*a)->PutCall("acme", TestCall("acme", 99)), Code::kMoved);
      }
      // Resume (or redo) the move: one copy, at the destination.
      auto moved = MoveTenant(**a, **b, "acme");
      if (!moved.ok() && b_live && !a_live) {
        EXPECT_CODE(moved, Code::kMoved);  // the source had already purged
      } else {
        ASSERT_OK(moved);
      }
      EXPECT_EQ(*(*b)->CountCalls("acme"), static_cast<uint64_t>(kCalls));
      EXPECT_OK((*b)->PutCall("acme", TestCall("acme", 98)));
      EXPECT_EQ((*a)->DescribeTenant("acme")->state, TenantState::kPurged);
      EXPECT_CODE((*a)->GetCall("acme", "acme-call-1"), Code::kMoved);
      EXPECT_OK((*a)->GetCall("other", "other-call-1"));
      EXPECT_OK((*b)->DescribeTenant("resident"));
      auto receipts = (*a)->ListReceipts();
      ASSERT_OK(receipts);
      int moved_out = 0;
      for (const auto& x : *receipts) moved_out += x.kind == "moved_out" && x.tenant_id == "acme";
      EXPECT_EQ(moved_out, 1);
      auto pk = (*a)->SigningPublicKey();
      ASSERT_OK(pk);
      EXPECT_OK(VerifyReceiptChain(*receipts, *pk));
      for (auto [st, keys] : {std::pair{a->get(), dir + "/keys"}, std::pair{b->get(), dir + "/keys-b"}}) {
        crashtest::KeyCheck kc = crashtest::CheckKeysAndFamilies(*st, keys);
        EXPECT_TRUE(kc.problems.empty()) << ::testing::PrintToString(kc.problems);
        EXPECT_TRUE(kc.stray.empty()) << ::testing::PrintToString(kc.stray);
      }
      if (!HasFailure()) {
        a->reset();
        b->reset();
        fs::remove_all(dir);
      }
    }
  }
  std::printf("[crash-points] move: %zu (point, hit) cases; %zu killed, %zu power-cut; after the "
              "crash the destination was authoritative %zu times, the source %zu\n",
              points.size(), trials[Cut::kKill], trials[Cut::kPower], at_destination, at_source);
}

// Backup and restore (issue 12), killed and power-cut at every backup.* and
// restore.* point. The prepared store was backed up (dir/bak), then a call
// of "base" deleted and "bob" redacted from it. After a cut backup: the
// store reopens whole, a new backup succeeds, every cut listed verifies,
// and the newest restores. After a cut restore: if the restored store was
// renamed into place its next open finishes the replay (RESTORE_PENDING);
// if not, a new restore succeeds; either way the deleted call is gone and
// the redaction holds before the first read.
TEST_F(CrashPointsTest, BackupAndRestoreKilledAndPowerCut) {
  const std::string prep = tmp_.Sub("backup-prep");
  const std::string bob = "bob@customer.example";
  const std::string deleted = TestCall("base", 101).call_id;
  {
    ASSERT_OK(PrepareStore(prep));
    auto st = Store::Open(StoreOptions(prep + "/keys"), prep + "/db");
    ASSERT_OK(st);
    ASSERT_OK((*st)->Backup(prep + "/bak"));
    ASSERT_OK((*st)->DeleteCall("base", deleted));
    EraseRequest req;
    req.subject = bob;
    req.mode = EraseMode::kRedact;
    auto e = (*st)->Erase("base", req);
    ASSERT_OK(e);
    ASSERT_EQ(e->changed, 2u);
    ASSERT_OK((*st)->Close());
  }
  auto prepare = [&](const std::string& dir) {
    CopyStore(prep, dir);
    testutil::CopyTree(prep + "/bak", dir + "/bak");
  };
  // The state every restore must show before its first read.
  auto check_restored = [&](Store& st) {
    EXPECT_CODE(st.GetCall("base", deleted), Code::kNotFound);
    for (int i : {100, 102}) {
      auto c = st.GetCall("base", TestCall("base", i).call_id);
      ASSERT_OK(c);
      for (const auto& p : c->participants) EXPECT_NE(p.email, bob) << "redaction undone";
    }
    auto refs = st.FindReferences("base", bob);
    ASSERT_OK(refs);
    EXPECT_TRUE(refs->empty());
    auto d = st.DescribeTenant("old");
    ASSERT_OK(d);
    EXPECT_EQ(d->state, TenantState::kPurged);
    auto v = st.Verify();
    ASSERT_OK(v);
    EXPECT_EQ(v->records_failed, 0u);
  };
  size_t total = 0, finished_by_open = 0, restored_again = 0;
  std::map<Cut, size_t> all;
  for (const std::string mode : {"backup", "restore"}) {
    const std::string record = tmp_.Sub(mode + "-record");
    prepare(record);
    std::vector<Point> points;
    for (const auto& p : RecordPoints(mode, record)) {
      if (p.name.starts_with("backup.") || p.name.starts_with("restore.")) points.push_back(p);
    }
    ASSERT_FALSE(HasFailure());
    ASSERT_GE(points.size(), mode == "backup" ? 2u : 5u) << mode << ": its points were not passed";
    PrintPoints(points);
    total += points.size();
    auto trials = CutAtEveryPoint(
        mode, mode, points, 0, "", prepare, [&](const std::string& dir) {
          const std::string keys = dir + "/keys";
          if (mode == "backup") {
            auto st = Store::Open(StoreOptions(keys), dir + "/db");
            ASSERT_OK(st);
            EXPECT_CODE((*st)->GetCall("base", deleted), Code::kNotFound);
            ASSERT_OK((*st)->Backup(dir + "/bak"));
            auto pk = (*st)->SigningPublicKey();
            ASSERT_OK(pk);
            ASSERT_OK((*st)->Close());
            auto cuts = ListBackups(dir + "/bak");
            ASSERT_OK(cuts);
            EXPECT_GE(cuts->size(), 2u);
            for (const auto& m : *cuts) EXPECT_OK(VerifyBackup(dir + "/bak", m.cut, *pk));
            ASSERT_OK(Store::Restore(StoreOptions(keys), dir + "/bak", dir + "/r2"));
            auto r = Store::Open(StoreOptions(keys), dir + "/r2");
            ASSERT_OK(r);
            check_restored(**r);
          } else {
            const std::string target = dir + "/db-r";
            std::error_code ec;
            if (fs::exists(target + "/meta", ec)) {
              ++finished_by_open;
              EXPECT_TRUE(fs::exists(target + "/RESTORE_PENDING", ec)) << "renamed without the marker";
            } else {
              ++restored_again;
              ASSERT_OK(Store::Restore(StoreOptions(keys), dir + "/bak", target));
            }
            auto st = Store::Open(StoreOptions(keys), target);
            ASSERT_OK(st);
            EXPECT_FALSE(fs::exists(target + "/RESTORE_PENDING", ec));
            check_restored(**st);
          }
          if (!HasFailure()) fs::remove_all(dir);
        });
    all[Cut::kKill] += trials[Cut::kKill];
    all[Cut::kPower] += trials[Cut::kPower];
  }
  std::printf("[crash-points] backup and restore: %zu (point, hit) cases; %zu killed, %zu "
              "power-cut; %zu restores finished by the next open, %zu restored again\n",
              total, all[Cut::kKill], all[Cut::kPower], finished_by_open, restored_again);
}

// Points that this suite cannot reach, and the suite that crashes at them
// (a point only another suite can reach).
const std::map<std::string, std::string>& CoveredElsewhere() {
  static const std::map<std::string, std::string> m = {
      // A recording's Finish (decision 0055): killed and power-cut there.
      {"recording.before_ingest", "recording_ingest_test"},
      {"recording.after_ingest", "recording_ingest_test"},
      {"recording.after_manifest", "recording_ingest_test"},
  };
  return m;
}

// Last in this file (gtest runs a file's tests in order): every kill point
// compiled into the engine was crashed at, killed and power-cut, by the
// tests above, so a new point cannot be forgotten.
TEST(CrashPointsCoverage, EveryCompiledPointCrashedBothWays) {
  const std::vector<std::string> compiled = testing::CompiledKillPoints();
  std::printf("[crash-points] %zu points compiled into the engine:", compiled.size());
  for (const auto& n : compiled) std::printf(" %s", n.c_str());
  std::printf("\n");
  ASSERT_GE(compiled.size(), 20u) << "the cv_kill_points section is missing or short";
  if (Crashed(Cut::kKill).empty() && Crashed(Cut::kPower).empty()) {
    GTEST_SKIP() << "the crash tests of this binary did not run (filtered out)";
  }
  for (const auto& n : compiled) {
    if (CoveredElsewhere().count(n)) continue;
    EXPECT_GT(Crashed(Cut::kKill)[n], 0) << "kill point " << n << " never killed at";
    EXPECT_GT(Crashed(Cut::kPower)[n], 0) << "kill point " << n << " never power-cut at";
  }
  for (const auto& [n, where] : CoveredElsewhere()) {
    EXPECT_TRUE(std::count(compiled.begin(), compiled.end(), n))
        << n << " is listed as covered by " << where << " but no longer compiled";
  }
  size_t k = 0, pc = 0;
  for (const auto& [n, c] : Crashed(Cut::kKill)) k += static_cast<size_t>(c);
  for (const auto& [n, c] : Crashed(Cut::kPower)) pc += static_cast<size_t>(c);
  std::printf("[crash-points] coverage: %zu of %zu compiled points crashed at here (%zu others "
              "in the suites named in CoveredElsewhere); %zu killed trials, %zu power-cut trials\n",
              compiled.size() - CoveredElsewhere().size(), compiled.size(),
              CoveredElsewhere().size(), k, pc);
}

}  // namespace
}  // namespace callvault::crashpoints
