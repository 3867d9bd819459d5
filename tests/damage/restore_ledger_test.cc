// The restore ledger (decision 0027, "The ledger"): a restored copy is
// served only once the key directory, not the copy's own files, says its
// erasure replay was done. The session 18 CLI attack on restores (attack2):
//   - F1: a pending copy copied and its RESTORE_PENDING removed was served
//     with the calls erased after the cut (and its restore id dropped);
//   - F2: a genuine marker and the restore id (`raw ldb --meta put`)
//     transplanted into the live store replayed erasures there;
//   - F3: a pending copy finished with an older copy of the key directory
//     replayed the older tombstone log (erased calls came back);
//   - F4: a replay killed midway and retried audited only the retry's
//     removals;
//   - F5: a killed restore's `<dir>.restoring-<hex>.lock` stayed forever.
// Issue 12 (attack3, the ledger's operator edges):
//   - 2: a restore killed before its rename left its `pending` line for
//     good, and `tombstones prune` refused for good;
//   - 3: the documented way to finish a pending restore (`verify`) was
//     refused, and no message named a command that works;
//   - 5: a line that just closed could be dropped at once by the bound;
//   - 6: an empty RESTORES passed for no ledger;
//   - a writable open the ledger refused left the copy's staging lock.
// Attack4 (the cleanup of dead stagings dropped ledger lines):
//   - F1: a planted `S.restoring-<hex>/` and `.lock` naming another
//     restore's pending id made the next writable open of S drop that
//     line: the genuine copy elsewhere was refused for good;
//   - F2: a restore refused for a non-empty target changed the ledger;
//   - F4: the printed `restore finish` command lacked `--keys`;
//   - F6: `--cut` was silently ignored by `restore finish` and `abandon`;
//   - F7: an abandoned copy was refused as "never issued"; `abandon` of a
//     `done` restore made a replayed copy unusable.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <string>

#include "callvault/backup.h"
#include "callvault/store.h"
#include "callvault/tombstones.h"
#include "tests/testutil/backup_util.h"
#include "tests/testutil/process.h"
#include "tests/testutil/testutil.h"

namespace callvault {
namespace {

namespace fs = std::filesystem;
using testutil::MakeCall;
using testutil::TwoTenants;

Options Opts(const std::string& keys) { return testutil::NoTrainingOptions(keys); }

Options ReadOnly(const std::string& keys) {
  Options o = Opts(keys);
  o.create_if_missing = false;
  o.read_only = true;
  return o;
}

int RunCli(const std::string& args, std::string* out, const std::string& env = "") {
  return testutil::RunShell(
      (env.empty() ? "" : env + " ") + std::string(CALLVAULT_BIN) + " " + args + " 2>&1", out);
}

void WriteWhole(const std::string& path, const std::string& data) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << data;
  ASSERT_TRUE(f.good()) << path;
}

// The restore id a marker names.
std::string MarkerRestoreId(const std::string& marker) {
  const std::string text = testutil::ReadFile(marker);
  std::smatch m;
  static const std::regex re("\"restore_id\": *\"([0-9a-f]{32})\"");
  return std::regex_search(text, m, re) ? m[1].str() : "";
}

// The store header's restore_id of the store at `db` (its files, through
// `raw ldb`, as the attack read and wrote it); "" if it has none.
std::string HeaderRestoreId(const std::string& db) {
  std::string out;
  if (RunCli("--db " + db + " raw ldb --meta get Xrestore_id", &out) != 0) return "";
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out;
}

// A restore of `backup` into `dir` by the CLI, killed at `point`.
void KilledRestoreOf(const TwoTenants& t, const std::string& backup, const std::string& dir,
                     const std::string& point) {
  std::string out;
  // (sh reports the CLI's SIGKILL as exit status 128 + 9.)
  ASSERT_EQ(RunCli("--db " + dir + " --keys " + t.keys + " restore " + backup, &out,
                   "CALLVAULT_KILL_POINT=" + point),
            128 + 9)
      << "not killed at " << point << ": " << out;
}

// A restore of t.bak into `dir` by the CLI, killed at `point`: a copy whose
// replay is pending (the ledger says pending), as attack2 made them.
void KilledRestore(const TwoTenants& t, const std::string& dir, const std::string& point) {
  ASSERT_NO_FATAL_FAILURE(KilledRestoreOf(t, t.bak, dir, point));
  ASSERT_TRUE(fs::exists(dir + "/RESTORE_PENDING"));
}

// A store with A and B (3 calls each) backed up, then a1 and a2 of A and
// b1 of B deleted: calls a restore must not bring back.
void MakeAndEraseAfterBackup(TwoTenants& t) {
  ASSERT_NO_FATAL_FAILURE(t.Make(3));
  ASSERT_OK(t.s->Backup(t.bak));
  ASSERT_OK(t.s->DeleteCall("A", "a1"));
  ASSERT_OK(t.s->DeleteCall("A", "a2"));
  ASSERT_OK(t.s->DeleteCall("B", "b1"));
  ASSERT_NO_FATAL_FAILURE(t.Close());
}

// MakeAndEraseAfterBackup, then a restore of t.bak into `dir` killed at
// `point` (a copy pending, or done); its restore id into *id.
void KilledCopy(TwoTenants& t, const std::string& dir, const std::string& point,
                std::string* id) {
  ASSERT_NO_FATAL_FAILURE(MakeAndEraseAfterBackup(t));
  ASSERT_NO_FATAL_FAILURE(KilledRestore(t, dir, point));
  *id = MarkerRestoreId(dir + "/RESTORE_PENDING");
  ASSERT_EQ(id->size(), 32u);
}

// F1: `cp -a COPY X; rm X/RESTORE_PENDING`: X was served with a1 (erased
// after the cut), its writable open silently dropped the restore id, and
// read-only opens never looked at it. Now both opens are refused, naming
// the restore id, and X keeps its id; with the marker put back X finishes.
TEST(RestoreLedger, PendingCopyWithoutItsMarkerIsRefused) {
  TwoTenants t;
  ASSERT_NO_FATAL_FAILURE(MakeAndEraseAfterBackup(t));
  const std::string r = t.tmp.Sub("r"), x = t.tmp.Sub("x");
  ASSERT_NO_FATAL_FAILURE(KilledRestore(t, r, "restore.after_rename"));
  const std::string id = MarkerRestoreId(r + "/RESTORE_PENDING");
  ASSERT_EQ(id.size(), 32u);
  fs::copy(r, x, fs::copy_options::recursive);
  fs::remove(x + "/RESTORE_PENDING");
  for (bool ro : {true, false}) {
    SCOPED_TRACE(ro ? "read-only" : "writable");
    auto o = Store::Open(ro ? ReadOnly(t.keys) : Opts(t.keys), x);
    if (o.ok()) {
      EXPECT_FALSE((*o)->GetCall("A", "a1").ok()) << "a call erased after the cut served";
      ADD_FAILURE() << "a pending copy without its marker was opened";
      continue;
    }
    EXPECT_EQ(o.status().code(), Code::kFailedPrecondition) << o.status().ToString();
    EXPECT_NE(o.status().message().find(id), std::string::npos) << o.status().ToString();
    EXPECT_EQ(o.status().message().find("writable once"), std::string::npos)
        << "advice that the writable open refuses: " << o.status().ToString();
  }
  EXPECT_EQ(HeaderRestoreId(x), id) << "the refused open dropped the restore id";
  // The marker put back: the copy finishes as a restore.
  fs::copy_file(r + "/RESTORE_PENDING", x + "/RESTORE_PENDING");
  auto o = Store::Open(Opts(t.keys), x);
  ASSERT_OK(o);
  EXPECT_CODE((*o)->GetCall("A", "a1"), Code::kNotFound);
  EXPECT_OK((*o)->GetCall("A", "a0"));
  EXPECT_OK((*o)->Close());
  EXPECT_FALSE(fs::exists(x + "/RESTORE_PENDING"));
  EXPECT_EQ(HeaderRestoreId(x), "");
  // Its twin r, still pending, now presents the id of a finished restore.
  EXPECT_CODE(Store::Open(Opts(t.keys), r), Code::kCorruption);
}

// The live store after a1 was deleted and put again (a call a replay of the
// tombstone log from the cut would delete a second time).
void PutA1Again(TwoTenants& t) {
  auto o = Store::Open(Opts(t.keys), t.db);
  ASSERT_OK(o);
  ASSERT_OK((*o)->PutCall("A", MakeCall("a1", 1700000000000001, "put again")));
  ASSERT_OK((*o)->Close());
}

// A pending restore into `r` (killed after its rename) of a store where a1
// was deleted after the backup and put again; *id: its restore id.
void PendingRestoreWithA1PutAgain(TwoTenants& t, const std::string& r, std::string* id) {
  ASSERT_NO_FATAL_FAILURE(MakeAndEraseAfterBackup(t));
  ASSERT_NO_FATAL_FAILURE(PutA1Again(t));
  ASSERT_NO_FATAL_FAILURE(KilledRestore(t, r, "restore.after_rename"));
  *id = MarkerRestoreId(r + "/RESTORE_PENDING");
  ASSERT_EQ(id->size(), 32u);
}

// Transplants `copy`'s genuine marker and its restore id (through `raw
// ldb`, no keys needed) into the live store.
void Transplant(const TwoTenants& t, const std::string& copy, const std::string& id) {
  fs::copy_file(copy + "/RESTORE_PENDING", t.db + "/RESTORE_PENDING",
                fs::copy_options::overwrite_existing);
  std::string out;
  ASSERT_EQ(RunCli("--db " + t.db + " raw ldb --meta put Xrestore_id " + id, &out), 0) << out;
  ASSERT_EQ(HeaderRestoreId(t.db), id);
}

// F2 (b): the transplant after the genuine copy finished replayed the log
// in the live store (a1, put again after its deletion, deleted again) and
// audited it as a normal restore_replayed. The ledger says the restore is
// closed: refused, naming the id; nothing changed.
TEST(RestoreLedger, TransplantOfAFinishedRestoreIsRefused) {
  TwoTenants t;
  const std::string r = t.tmp.Sub("r");
  std::string id;
  ASSERT_NO_FATAL_FAILURE(PendingRestoreWithA1PutAgain(t, r, &id));
  const std::string marker = t.tmp.Sub("marker");
  fs::copy_file(r + "/RESTORE_PENDING", marker);
  {
    auto o = Store::Open(Opts(t.keys), r);  // the genuine copy finishes
    ASSERT_OK(o);
    ASSERT_OK((*o)->Close());
  }
  fs::copy_file(marker, r + "/RESTORE_PENDING");
  ASSERT_NO_FATAL_FAILURE(Transplant(t, r, id));
  for (bool ro : {true, false}) {
    auto o = Store::Open(ro ? ReadOnly(t.keys) : Opts(t.keys), t.db);
    ASSERT_FALSE(o.ok()) << (ro ? "read-only" : "writable") << ": the transplant was accepted";
    EXPECT_EQ(o.status().code(), Code::kCorruption) << o.status().ToString();
    EXPECT_NE(o.status().message().find(id), std::string::npos) << o.status().ToString();
  }
  EXPECT_TRUE(fs::exists(t.db + "/RESTORE_PENDING"));
  EXPECT_EQ(HeaderRestoreId(t.db), id);
  // Once the operator removed both, the live store is as it was.
  fs::remove(t.db + "/RESTORE_PENDING");
  std::string out;
  ASSERT_EQ(RunCli("--db " + t.db + " raw ldb --meta delete Xrestore_id", &out), 0) << out;
  auto o = Store::Open(Opts(t.keys), t.db);
  ASSERT_OK(o);
  EXPECT_OK((*o)->GetCall("A", "a1"));
  auto audit = (*o)->ListAudit(0, "restore_replayed");
  ASSERT_OK(audit);
  EXPECT_TRUE(audit->empty()) << "the live store replayed the tombstone log";
  EXPECT_OK((*o)->Close());
}

// F2 (a): the transplant while the genuine copy is still pending cannot be
// told from the genuine copy by the key directory (both present the same
// signed marker and id; decision 0027 names it). What holds: once the
// genuine copy finished, the transplanted one is refused before it
// replays anything.
TEST(RestoreLedger, TransplantWhileThePendingCopyFinishesFirstIsRefused) {
  TwoTenants t;
  const std::string r = t.tmp.Sub("r");
  std::string id;
  ASSERT_NO_FATAL_FAILURE(PendingRestoreWithA1PutAgain(t, r, &id));
  ASSERT_NO_FATAL_FAILURE(Transplant(t, r, id));
  {
    auto o = Store::Open(Opts(t.keys), r);
    ASSERT_OK(o);
    EXPECT_CODE((*o)->GetCall("A", "a1"), Code::kNotFound);
    ASSERT_OK((*o)->Close());
  }
  auto live = Store::Open(Opts(t.keys), t.db);
  ASSERT_FALSE(live.ok()) << "the transplant replayed in the live store";
  EXPECT_EQ(live.status().code(), Code::kCorruption) << live.status().ToString();
  EXPECT_NE(live.status().message().find(id), std::string::npos);
}

// F3: the pending copy opened with the key directory put back from a copy
// taken before the last erasures (its TOMBSTONES cut back): the older log
// was replayed and a1 served. Refused now, nothing changed, for read-only
// opens too (and without advice the writable open would refuse); with the
// log as it was the copy finishes. A log grown since (a new erasure in the
// live store) is accepted, and the new erasure applied too.
TEST(RestoreLedger, OlderTombstoneLogRefusedNewerAccepted) {
  TwoTenants t;
  ASSERT_NO_FATAL_FAILURE(t.Make(3));
  ASSERT_OK(t.s->Backup(t.bak));
  const std::string at_cut = testutil::ReadFile(t.keys + "/TOMBSTONES");
  ASSERT_OK(t.s->DeleteCall("A", "a1"));
  ASSERT_NO_FATAL_FAILURE(t.Close());
  const std::string log = testutil::ReadFile(t.keys + "/TOMBSTONES");
  const std::string r = t.tmp.Sub("r");
  ASSERT_NO_FATAL_FAILURE(KilledRestore(t, r, "restore.after_rename"));
  const std::string id = MarkerRestoreId(r + "/RESTORE_PENDING");
  // Older: cut back to the cut, and the last line's hash changed.
  std::string edited = log;
  edited[edited.size() - 2] = edited[edited.size() - 2] == '0' ? '1' : '0';
  for (const std::string& older : {at_cut, edited}) {
    WriteWhole(t.keys + "/TOMBSTONES", older);
    for (bool ro : {true, false}) {
      auto o = Store::Open(ro ? ReadOnly(t.keys) : Opts(t.keys), r);
      ASSERT_FALSE(o.ok()) << (ro ? "read-only" : "writable")
                           << ": finished with an older tombstone log";
      EXPECT_EQ(o.status().code(), Code::kFailedPrecondition) << o.status().ToString();
      EXPECT_NE(o.status().message().find(id), std::string::npos) << o.status().ToString();
      EXPECT_EQ(o.status().message().find("writable once"), std::string::npos);
    }
    EXPECT_TRUE(fs::exists(r + "/RESTORE_PENDING"));
  }
  WriteWhole(t.keys + "/TOMBSTONES", log);
  {
    auto o = Store::Open(Opts(t.keys), t.db);  // the live store erases more
    ASSERT_OK(o);
    ASSERT_OK((*o)->DeleteCall("B", "b2"));
    ASSERT_OK((*o)->Close());
  }
  auto o = Store::Open(Opts(t.keys), r);
  ASSERT_OK(o);
  EXPECT_CODE((*o)->GetCall("A", "a1"), Code::kNotFound);
  EXPECT_CODE((*o)->GetCall("B", "b2"), Code::kNotFound);
  EXPECT_OK((*o)->GetCall("A", "a0"));
  EXPECT_OK((*o)->Close());
}

// `tombstones prune` keeping only a newer backup dropped the lines a
// pending restore of an older one still had to replay: its copy could then
// never be finished. Refused while that restore is pending, naming it; once
// its copy is opened (the replay done), the prune goes ahead.
TEST(RestoreLedger, PruneRefusedPastAPendingRestore) {
  TwoTenants t;
  ASSERT_NO_FATAL_FAILURE(t.Make(3));
  const std::string old_bak = t.tmp.Sub("old-bak");
  ASSERT_OK(t.s->Backup(old_bak));
  ASSERT_OK(t.s->DeleteCall("A", "a0"));  // needed by old-bak only
  ASSERT_OK(t.s->Backup(t.bak));
  ASSERT_NO_FATAL_FAILURE(t.Close());
  const std::string r = t.tmp.Sub("r");
  ASSERT_NO_FATAL_FAILURE(KilledRestoreOf(t, old_bak, r, "restore.after_rename"));
  const std::string id = MarkerRestoreId(r + "/RESTORE_PENDING");
  const std::string log = testutil::ReadFile(t.keys + "/TOMBSTONES");
  auto refused = PruneTombstoneLog(t.keys, {t.bak});
  EXPECT_CODE(refused, Code::kFailedPrecondition);
  if (!refused.ok()) {
    EXPECT_NE(refused.status().message().find(id), std::string::npos) << refused.status().ToString();
  }
  EXPECT_EQ(testutil::ReadFile(t.keys + "/TOMBSTONES"), log);
  {
    auto o = Store::Open(Opts(t.keys), r);
    ASSERT_OK(o);
    EXPECT_CODE((*o)->GetCall("A", "a0"), Code::kNotFound);
    EXPECT_OK((*o)->Close());
  }
  auto pruned = PruneTombstoneLog(t.keys, {t.bak});
  ASSERT_OK(pruned);
  EXPECT_EQ(pruned->lines_dropped, 1u);
}

// The removed= of the restore_replayed audit events of the store at `db`.
std::vector<std::string> ReplayAudits(const std::string& db, const std::string& keys) {
  auto o = Store::Open(Opts(keys), db);
  EXPECT_TRUE(o.ok()) << o.status().ToString();
  if (!o.ok()) return {};
  auto audit = (*o)->ListAudit(0, "restore_replayed");
  EXPECT_TRUE(audit.ok());
  std::vector<std::string> v;
  static const std::regex re("removed=([0-9]+)");
  for (const auto& e : audit.ok() ? *audit : std::vector<AuditEvent>{}) {
    std::smatch m;
    v.push_back(std::regex_search(e.detail, m, re) ? m[1].str() : "?");
    if (v.size() == 1) {
      EXPECT_NE(e.detail.find("resumed=1"), std::string::npos) << e.detail;
    }
  }
  EXPECT_CODE((*o)->GetCall("A", "a1"), Code::kNotFound);
  EXPECT_CODE((*o)->GetCall("B", "b1"), Code::kNotFound);
  EXPECT_OK((*o)->Close());
  return v;
}

// F4: the replay killed after its first tenant (A: a1 and a2 removed) or
// after the whole replay, then retried by the next open: the retry's audit
// said removed=1 (or 0). It reports what every run removed (3) and that it
// resumed.
TEST(RestoreLedger, KilledReplayAuditsEveryRunsRemovals) {
  for (const std::string point : {"restore.replay_after_tenant", "restore.after_replay"}) {
    SCOPED_TRACE(point);
    TwoTenants t;
    ASSERT_NO_FATAL_FAILURE(MakeAndEraseAfterBackup(t));
    const std::string r = t.tmp.Sub("r");
    ASSERT_NO_FATAL_FAILURE(KilledRestore(t, r, point));
    EXPECT_EQ(ReplayAudits(r, t.keys), std::vector<std::string>{"3"});
  }
}

// The `.restoring-<hex>.lock` files of restores into a directory: `<dir>`
// itself excluded.
std::vector<std::string> StagingLeftovers(const std::string& dir) {
  std::vector<std::string> v;
  const fs::path p(dir);
  for (const auto& e : fs::directory_iterator(p.parent_path())) {
    const std::string n = e.path().filename().string();
    if (n.starts_with(p.filename().string() + ".restoring-")) v.push_back(n);
  }
  return v;
}

// The staging directory of a restore into `dir` that died before its
// rename (its lock excluded); "" if none.
std::string DeadStaging(const std::string& dir) {
  for (const auto& n : StagingLeftovers(dir)) {
    if (!n.ends_with(".lock")) return fs::path(dir).parent_path().string() + "/" + n;
  }
  return "";
}

// F5: a restore killed after its rename left `<dir>.restoring-<hex>.lock`
// beside the store for good. The store's next writable open removes it
// (its owner is dead: the lock can be taken).
TEST(RestoreLedger, KilledRestoresLockIsRemovedByTheNextOpen) {
  TwoTenants t;
  ASSERT_NO_FATAL_FAILURE(MakeAndEraseAfterBackup(t));
  const std::string r = t.tmp.Sub("r");
  ASSERT_NO_FATAL_FAILURE(KilledRestore(t, r, "restore.after_rename"));
  ASSERT_EQ(StagingLeftovers(r).size(), 1u);
  auto o = Store::Open(Opts(t.keys), r);
  ASSERT_OK(o);
  EXPECT_TRUE(StagingLeftovers(r).empty()) << StagingLeftovers(r)[0];
  EXPECT_OK((*o)->Close());
}

// The key directory's restore ledger, as its file holds it.
std::string Ledger(const TwoTenants& t) { return testutil::ReadFile(t.keys + "/RESTORES"); }

// A store with A and B (3 calls each) backed up into `old_bak`, then a0 of A
// deleted (needed by old_bak only) and backed up again into t.bak: a prune
// keeping t.bak drops what a restore of old_bak needs.
void TwoBackupsAroundADeletion(TwoTenants& t, const std::string& old_bak) {
  ASSERT_NO_FATAL_FAILURE(t.Make(3));
  ASSERT_OK(t.s->Backup(old_bak));
  ASSERT_OK(t.s->DeleteCall("A", "a0"));
  ASSERT_OK(t.s->Backup(t.bak));
  ASSERT_NO_FATAL_FAILURE(t.Close());
}

// Issue 12, 2: a restore killed after its marker, before its rename, left
// `pending` in the ledger and `<dir>.restoring-<hex>` beside the target; the
// next restore into that target removed the staging but not the line, and
// `tombstones prune` refused for good. The line stays (the cleanup trusts
// no lock file's word, attack4 F1), but the restore that removes the
// staging names the id and `restore abandon`; the operator abandons it,
// and prune then goes ahead.
TEST(RestoreLedger, DeadStagingNamesItsPendingLineForAbandon) {
  TwoTenants t;
  const std::string old_bak = t.tmp.Sub("old-bak");
  ASSERT_NO_FATAL_FAILURE(TwoBackupsAroundADeletion(t, old_bak));
  const std::string r = t.tmp.Sub("r");
  ASSERT_NO_FATAL_FAILURE(KilledRestoreOf(t, old_bak, r, "restore.after_marker"));
  std::string out;
  ASSERT_FALSE(fs::exists(r));
  ASSERT_EQ(StagingLeftovers(r).size(), 2u);  // the staging and its lock
  const std::string staging = DeadStaging(r);
  const std::string id = MarkerRestoreId(staging + "/RESTORE_PENDING");
  ASSERT_EQ(id.size(), 32u);
  ASSERT_NE(Ledger(t).find("pending " + id), std::string::npos) << Ledger(t);
  auto refused = PruneTombstoneLog(t.keys, {t.bak});
  ASSERT_EQ(refused.status().code(), Code::kFailedPrecondition) << refused.status().ToString();
  EXPECT_NE(refused.status().message().find("restore abandon " + id), std::string::npos)
      << refused.status().ToString();
  EXPECT_NE(refused.status().message().find("--keys " + t.keys + " restore finish"),
            std::string::npos)
      << refused.status().ToString();
  // The next restore into r removes the dead staging, not its line, and
  // says how to drop it.
  ASSERT_EQ(RunCli("--db " + r + " --keys " + t.keys + " restore " + t.bak, &out), 0) << out;
  EXPECT_NE(out.find("removed " + staging), std::string::npos) << out;
  EXPECT_NE(out.find("restore " + id + " died before its copy existed"), std::string::npos) << out;
  EXPECT_NE(out.find("callvault --keys " + t.keys + " restore abandon " + id), std::string::npos)
      << out;
  EXPECT_NE(Ledger(t).find("pending " + id), std::string::npos) << Ledger(t);
  EXPECT_TRUE(StagingLeftovers(r).empty());
  EXPECT_CODE(PruneTombstoneLog(t.keys, {t.bak}), Code::kFailedPrecondition);
  ASSERT_EQ(RunCli("--keys " + t.keys + " restore abandon " + id, &out), 0) << out;
  EXPECT_NE(Ledger(t).find("abandoned " + id), std::string::npos) << Ledger(t);
  auto pruned = PruneTombstoneLog(t.keys, {t.bak});
  ASSERT_OK(pruned);
  EXPECT_EQ(pruned->lines_dropped, 1u);
}

// The same, the dead staging removed by a writable open of a store made in
// the target since (not by a restore): the line stays, the open says (its
// log, and the CLI's note) how to drop it.
TEST(RestoreLedger, DeadStagingRemovedByAnOpenKeepsItsLine) {
  TwoTenants t;
  ASSERT_NO_FATAL_FAILURE(MakeAndEraseAfterBackup(t));
  const std::string r = t.tmp.Sub("r");
  ASSERT_NO_FATAL_FAILURE(KilledRestoreOf(t, t.bak, r, "restore.after_marker"));
  ASSERT_EQ(StagingLeftovers(r).size(), 2u);
  const std::string id = MarkerRestoreId(DeadStaging(r) + "/RESTORE_PENDING");
  ASSERT_NE(Ledger(t).find("pending " + id), std::string::npos);
  // A store created in r meanwhile, with these keys (the source closed).
  fs::copy(t.db, r, fs::copy_options::recursive);
  Options opts = Opts(t.keys);
  std::vector<std::string> warned;
  opts.logger = [&](LogLevel level, std::string_view, std::string_view m) {
    if (level == LogLevel::kWarn) warned.emplace_back(m);
  };
  auto o = Store::Open(opts, r);
  ASSERT_OK(o);
  ASSERT_EQ((*o)->RestoreFinishedAtOpen().stale_staging_notes.size(), 1u);
  EXPECT_OK((*o)->Close());
  EXPECT_TRUE(StagingLeftovers(r).empty());
  EXPECT_NE(Ledger(t).find("pending " + id), std::string::npos) << Ledger(t);
  ASSERT_EQ(warned.size(), 1u);
  EXPECT_NE(warned[0].find("restore abandon " + id), std::string::npos) << warned[0];
}

// Attack4 F1: a planted `S.restoring-000000000000/` and `.lock` holding
// another restore's pending id, beside any store S of the key directory:
// the next writable open of S dropped that line, and the genuine pending
// copy was refused for good ("never issued"). The line stays, the
// staging goes, and the genuine copy finishes.
TEST(RestoreLedger, PlantedLockNamingAnotherRestoreChangesNoLine) {
  TwoTenants t;
  const std::string r = t.tmp.Sub("r");
  std::string id;
  ASSERT_NO_FATAL_FAILURE(KilledCopy(t, r, "restore.after_rename", &id));
  const std::string ledger = Ledger(t);
  ASSERT_NE(ledger.find("pending " + id), std::string::npos);
  const std::string planted = t.db + ".restoring-000000000000";
  fs::create_directories(planted);
  WriteWhole(planted + ".lock", id + "\n");
  std::string out;
  ASSERT_EQ(RunCli("--db " + t.db + " --keys " + t.keys + " tenant list", &out), 0) << out;
  ASSERT_EQ(RunCli("--db " + t.db + " --keys " + t.keys + " restore finish", &out), 0) << out;
  EXPECT_FALSE(fs::exists(planted));
  EXPECT_NE(out.find("restore abandon " + id), std::string::npos) << out;
  EXPECT_EQ(Ledger(t), ledger) << "the cleanup changed the ledger on a planted lock's word";
  ASSERT_EQ(RunCli("--db " + r + " --keys " + t.keys + " restore finish", &out), 0) << out;
  EXPECT_NE(out.find("restore " + id + " finished"), std::string::npos) << out;
}

// Attack4 F2: a restore refused because its target is not empty ("nothing
// written") still removed the dead staging beside it first. Now the ledger
// and the dead staging are as they were.
TEST(RestoreLedger, RestoreRefusedForANonEmptyTargetChangesNothing) {
  TwoTenants t;
  ASSERT_NO_FATAL_FAILURE(MakeAndEraseAfterBackup(t));
  const std::string r = t.tmp.Sub("r");
  ASSERT_NO_FATAL_FAILURE(KilledRestoreOf(t, t.bak, r, "restore.after_marker"));
  ASSERT_EQ(StagingLeftovers(r).size(), 2u);
  const std::string ledger = Ledger(t);
  fs::create_directories(r);
  WriteWhole(r + "/something", "x");
  std::string out;
  EXPECT_EQ(RunCli("--db " + r + " --keys " + t.keys + " restore " + t.bak, &out), 78) << out;
  EXPECT_NE(out.find("is not empty"), std::string::npos) << out;
  EXPECT_EQ(Ledger(t), ledger);
  EXPECT_EQ(StagingLeftovers(r).size(), 2u) << "a refused restore removed the dead staging";
}

// Attack4 F3/F5: the dead staging removed by an open with another key
// directory, and with a damaged ledger: the open goes ahead, neither
// ledger changes.
TEST(RestoreLedger, DeadStagingCleanupNeedsNoReadableLedger) {
  TwoTenants t;
  ASSERT_NO_FATAL_FAILURE(MakeAndEraseAfterBackup(t));
  const std::string r = t.tmp.Sub("r");
  ASSERT_NO_FATAL_FAILURE(KilledRestoreOf(t, t.bak, r, "restore.after_marker"));
  const std::string id = MarkerRestoreId(DeadStaging(r) + "/RESTORE_PENDING");
  fs::copy(t.db, r, fs::copy_options::recursive);
  const std::string ledger = Ledger(t);
  WriteWhole(t.keys + "/RESTORES", "damaged");
  auto o = Store::Open(Opts(t.keys), r);
  ASSERT_OK(o);
  ASSERT_EQ((*o)->RestoreFinishedAtOpen().stale_staging_notes.size(), 1u);
  EXPECT_NE((*o)->RestoreFinishedAtOpen().stale_staging_notes[0].find("restore abandon " + id),
            std::string::npos);
  ASSERT_OK((*o)->PutCall("A", MakeCall("new", 1700000000000009, "written")));
  EXPECT_OK((*o)->Close());
  EXPECT_TRUE(StagingLeftovers(r).empty());
  EXPECT_EQ(Ledger(t), "damaged");
  WriteWhole(t.keys + "/RESTORES", ledger);
  EXPECT_NE(Ledger(t).find("pending " + id), std::string::npos);
}

// Issue 12, 2 (the way out): the copy of a pending restore is lost (killed
// after its rename, then deleted): no command dropped its line, and prune
// refused for good. `restore abandon` drops it, says what it dropped,
// refuses an id it does not hold (66); prune then goes ahead, and a copy of
// that restore found later is refused as never issued.
TEST(RestoreLedger, AbandonDropsTheLineOfALostCopy) {
  TwoTenants t;
  const std::string old_bak = t.tmp.Sub("old-bak");
  ASSERT_NO_FATAL_FAILURE(TwoBackupsAroundADeletion(t, old_bak));
  const std::string r = t.tmp.Sub("r"), kept = t.tmp.Sub("kept");
  ASSERT_NO_FATAL_FAILURE(KilledRestoreOf(t, old_bak, r, "restore.after_rename"));
  std::string out;
  const std::string id = MarkerRestoreId(r + "/RESTORE_PENDING");
  ASSERT_EQ(id.size(), 32u);
  fs::copy(r, kept, fs::copy_options::recursive);
  fs::remove_all(r);  // the copy is lost
  EXPECT_CODE(PruneTombstoneLog(t.keys, {t.bak}), Code::kFailedPrecondition);
  EXPECT_EQ(RunCli("--keys " + t.keys + " restore abandon " + id + " --cut 1", &out), 64) << out;
  ASSERT_EQ(RunCli("--keys " + t.keys + " restore abandon " + id, &out), 0) << out;
  EXPECT_NE(out.find("abandoned pending restore " + id), std::string::npos) << out;
  EXPECT_NE(Ledger(t).find("abandoned " + id), std::string::npos) << Ledger(t);
  EXPECT_EQ(RunCli("--keys " + t.keys + " restore abandon " + id, &out), 66) << out;
  EXPECT_EQ(RunCli("--keys " + t.keys + " restore abandon nothex", &out), 65) << out;
  ASSERT_OK(PruneTombstoneLog(t.keys, {t.bak}));
  // Attack4 F7: refused as abandoned, not as never issued.
  for (bool read_only : {false, true}) {
    auto o = Store::Open(read_only ? ReadOnly(t.keys) : Opts(t.keys), kept);
    ASSERT_FALSE(o.ok()) << "a copy of an abandoned restore was opened";
    EXPECT_EQ(o.status().code(), Code::kFailedPrecondition) << o.status().ToString();
    EXPECT_NE(o.status().message().find("was abandoned"), std::string::npos)
        << o.status().ToString();
  }
}

// Attack4 F7: `restore abandon` of a `done` restore (replayed, the open
// died before it removed the marker) made a fully replayed copy unusable.
// Refused (78, naming `restore finish`), the line unchanged; the copy then
// finishes.
TEST(RestoreLedger, AbandonOfADoneRestoreIsRefused) {
  TwoTenants t;
  const std::string r = t.tmp.Sub("r");
  std::string id;
  ASSERT_NO_FATAL_FAILURE(KilledCopy(t, r, "restore.after_ledger_done", &id));
  const std::string ledger = Ledger(t);
  ASSERT_NE(ledger.find("done " + id), std::string::npos) << ledger;
  std::string out;
  EXPECT_EQ(RunCli("--keys " + t.keys + " restore abandon " + id, &out), 78) << out;
  EXPECT_NE(out.find("its replay is done"), std::string::npos) << out;
  EXPECT_NE(out.find("restore finish"), std::string::npos) << out;
  EXPECT_EQ(Ledger(t), ledger);
  EXPECT_EQ(RunCli("--db " + r + " --keys " + t.keys + " restore finish --cut 1", &out), 64) << out;
  ASSERT_EQ(RunCli("--db " + r + " --keys " + t.keys + " restore finish", &out), 0) << out;
  EXPECT_NE(Ledger(t).find("closed " + id), std::string::npos) << Ledger(t);
}

// Attack4 F7: a key directory held by another process answered 78 from
// `restore finish`, `restore abandon` and `restore`, while a busy store
// answers 75 (retry later). Now 75 too, nothing changed.
TEST(RestoreLedger, KeyDirectoryHeldElsewhereIsBusyForRestoreCommands) {
  TwoTenants t;
  const std::string r = t.tmp.Sub("r");
  std::string id;
  ASSERT_NO_FATAL_FAILURE(KilledCopy(t, r, "restore.after_rename", &id));
  const std::string ledger = Ledger(t);
  auto held = Store::Open(Opts(t.keys), t.db);  // this process: "another process" to the CLI
  ASSERT_OK(held);
  std::string out;
  EXPECT_EQ(RunCli("--keys " + t.keys + " restore abandon " + id, &out), 75) << out;
  EXPECT_EQ(RunCli("--db " + r + " --keys " + t.keys + " restore finish", &out), 75) << out;
  EXPECT_EQ(RunCli("--db " + t.tmp.Sub("r2") + " --keys " + t.keys + " restore " + t.bak, &out),
            75)
      << out;
  EXPECT_NE(out.find("in use by another process"), std::string::npos) << out;
  EXPECT_OK((*held)->Close());
  EXPECT_EQ(Ledger(t), ledger);
  EXPECT_TRUE(fs::exists(r + "/RESTORE_PENDING"));
}

// Issue 12, 3: docs/operations.md said to finish a pending restore with "any
// writable command (e.g. `verify`)"; `verify` opens read-only and was
// refused with advice naming no command. The refusal now names `restore
// finish`, which finishes it and says what it replayed; run again, it says
// nothing is pending. A restore whose replay was done by an open that died
// is finished too, and said so.
TEST(RestoreLedger, RestoreFinishFinishesAPendingRestore) {
  TwoTenants t;
  ASSERT_NO_FATAL_FAILURE(MakeAndEraseAfterBackup(t));
  const std::string r = t.tmp.Sub("r"), r2 = t.tmp.Sub("r2");
  ASSERT_NO_FATAL_FAILURE(KilledRestore(t, r, "restore.after_rename"));
  const std::string id = MarkerRestoreId(r + "/RESTORE_PENDING");
  std::string out;
  ASSERT_EQ(RunCli("--db " + r + " --keys " + t.keys + " verify", &out), 78) << out;
  // Attack4 F4: with the key directory in use (not the default <db>.keys).
  EXPECT_NE(out.find("--db " + r + " --keys " + t.keys + " restore finish"), std::string::npos)
      << out;
  ASSERT_EQ(RunCli("--db " + r + " --keys " + t.keys + " restore finish", &out), 0) << out;
  EXPECT_NE(out.find("restore " + id + " finished: 3 call(s) removed again"), std::string::npos)
      << out;
  EXPECT_FALSE(fs::exists(r + "/RESTORE_PENDING"));
  EXPECT_NE(Ledger(t).find("closed " + id), std::string::npos);
  ASSERT_EQ(RunCli("--db " + r + " --keys " + t.keys + " restore finish", &out), 0) << out;
  EXPECT_NE(out.find("nothing pending"), std::string::npos) << out;
  ASSERT_EQ(RunCli("--db " + r + " --keys " + t.keys + " verify", &out), 0) << out;
  // Replayed and marked done by an open killed before it removed the marker.
  ASSERT_NO_FATAL_FAILURE(KilledRestore(t, r2, "restore.after_ledger_done"));
  const std::string id2 = MarkerRestoreId(r2 + "/RESTORE_PENDING");
  ASSERT_EQ(RunCli("--db " + r2 + " --keys " + t.keys + " restore finish", &out), 0) << out;
  EXPECT_NE(out.find("restore " + id2 + " finished: its erasure replay was done by an earlier open"),
            std::string::npos)
      << out;
}

// Issue 12, 5: lines kept their place when their state changed, so the
// bound of 64 closed lines dropped a line that had just closed (the oldest
// by position) rather than the one closed longest ago. A pending restore
// older than 64 closed ones now keeps its closed line once it finishes.
TEST(RestoreLedger, JustClosedLineSurvivesTheBound) {
  TwoTenants t;
  ASSERT_NO_FATAL_FAILURE(MakeAndEraseAfterBackup(t));
  const std::string r = t.tmp.Sub("r");
  ASSERT_NO_FATAL_FAILURE(KilledRestore(t, r, "restore.after_rename"));
  const std::string id = MarkerRestoreId(r + "/RESTORE_PENDING");
  // 64 restores closed since (their lines written as the engine would).
  std::string ledger = Ledger(t);
  for (int i = 0; i < 64; ++i) {
    char hex[33];
    std::snprintf(hex, sizeof(hex), "%032x", i + 1);
    ledger += "closed " + std::string(hex) + "\n";
  }
  WriteWhole(t.keys + "/RESTORES", ledger);
  auto o = Store::Open(Opts(t.keys), r);
  ASSERT_OK(o);
  EXPECT_OK((*o)->Close());
  const std::string after = Ledger(t);
  EXPECT_NE(after.find("closed " + id), std::string::npos) << "the line that just closed was dropped";
  EXPECT_EQ(after.find("closed 00000000000000000000000000000001"), std::string::npos)
      << "the line closed longest ago was kept";
}

// Issue 12, 6: an empty RESTORES passed for no ledger: a pending copy was
// told "never issued", a prune went past the pending restore, a new restore
// wrote over it. Absent: no restore ever; present without its header: the
// ledger is damaged, for every reader; nothing changed.
TEST(RestoreLedger, EmptyLedgerIsRefusedByEveryReader) {
  TwoTenants t;
  const std::string old_bak = t.tmp.Sub("old-bak");
  ASSERT_NO_FATAL_FAILURE(TwoBackupsAroundADeletion(t, old_bak));
  const std::string r = t.tmp.Sub("r");
  ASSERT_NO_FATAL_FAILURE(KilledRestoreOf(t, old_bak, r, "restore.after_rename"));
  WriteWhole(t.keys + "/RESTORES", "");
  const std::string log = testutil::ReadFile(t.keys + "/TOMBSTONES");
  auto damaged = [](const Status& s) {
    return s.code() == Code::kCorruption && s.message().find("RESTORES") != std::string::npos &&
           s.message().find("never issued") == std::string::npos;
  };
  auto o = Store::Open(Opts(t.keys), r);
  EXPECT_FALSE(o.ok() || !damaged(o.status())) << o.status().ToString();
  auto pruned = PruneTombstoneLog(t.keys, {t.bak});
  EXPECT_FALSE(pruned.ok() || !damaged(pruned.status())) << pruned.status().ToString();
  EXPECT_EQ(testutil::ReadFile(t.keys + "/TOMBSTONES"), log);
  Options ro = Opts(t.keys);
  auto restored = Store::Restore(ro, t.bak, t.tmp.Sub("r2"));
  EXPECT_FALSE(restored.ok() || !damaged(restored.status())) << restored.status().ToString();
  EXPECT_EQ(Ledger(t), "") << "the damaged ledger was written over";
  // Absent: no restore was ever made with these keys; a new one goes ahead.
  fs::remove(t.keys + "/RESTORES");
  EXPECT_OK(Store::Restore(ro, t.bak, t.tmp.Sub("r3")));
}

// Issue 12 (small): a writable open that the ledger refuses (the pending
// copy's marker removed) left the copy's `.restoring-<hex>.lock` (its
// restore killed after its rename): removed now, before the open is
// refused; the copy's pending line stays (that staging was renamed into
// the copy).
TEST(RestoreLedger, RefusedOpenStillRemovesTheDeadLock) {
  TwoTenants t;
  ASSERT_NO_FATAL_FAILURE(MakeAndEraseAfterBackup(t));
  const std::string r = t.tmp.Sub("r");
  ASSERT_NO_FATAL_FAILURE(KilledRestore(t, r, "restore.after_rename"));
  const std::string id = MarkerRestoreId(r + "/RESTORE_PENDING");
  ASSERT_EQ(StagingLeftovers(r).size(), 1u);
  fs::remove(r + "/RESTORE_PENDING");
  auto o = Store::Open(Opts(t.keys), r);
  EXPECT_CODE(o, Code::kFailedPrecondition);
  // Attack4 F7: the refusal names the command that drops the line it leaves.
  EXPECT_NE(o.status().message().find("callvault --keys " + t.keys + " restore abandon " + id),
            std::string::npos)
      << o.status().ToString();
  EXPECT_TRUE(StagingLeftovers(r).empty());
  EXPECT_NE(Ledger(t).find("pending " + id), std::string::npos) << Ledger(t);
}

}  // namespace
}  // namespace callvault
