// Session 17 attack on issue 12's backups, restores and moves, as an
// operator at 3 a.m. would meet them.
//   - a tombstone log older than a newer cut of the same backup directory
//     (the key directory put back from its own copy, or a line dropped by
//     hand) let a restore of an older cut miss erasures silently: fixed,
//     the restore compares the log with every signed cut it can see;
//   - a line dropped, or the log cut back to the restored cut, when no newer
//     cut records more: not detectable today (DISABLED_, reported);
//   - TOMBSTONES replaced by a symbolic link, a line planted for a tenant
//     that never existed, lines reordered: refused, or harmless;
//   - a restore of a destination's cut taken mid move-in (a drill, the live
//     store only stopped) took the moved tenant's key from the shared key
//     directory, and the live store purged the tenant at its next open:
//     fixed, a restored copy's rollback of a move-in keeps the key;
//   - a backup taken while erasures, deletions and puts run: no erasure lost;
//   - a second store backed up into the first one's backup directory:
//     accepted as its newest cut, which broke the first store's restore,
//     verify and prune: fixed, refused;
//   - a backup directory given as a link into the store or the keys: refused;
//   - a genuine RESTORE_PENDING kept from a killed restore and copied into
//     the live store replayed erasures there; an unsigned one, or a link,
//     was refused only after recovery ran as for a restored copy: fixed,
//     the marker is verified first and bound to its copy;
//   - a shared table file that older cuts need, deleted: every cut that
//     needs it fails `backup verify` and its restore, nothing restored, and
//     the next backup is whole;
//   - the same file damaged (same size): the next incremental backup reuses
//     it and reports success, a backup that cannot be restored (DISABLED_,
//     reported).
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "callvault/backup.h"
#include "callvault/key_provider.h"
#include "callvault/store.h"
#include "engine/kill_point.h"
#include "tests/testutil/backup_util.h"
#include "tests/testutil/testutil.h"

namespace callvault {
namespace {

namespace fs = std::filesystem;
using testutil::ExpectNothingRestored;
using testutil::MakeCall;
using testutil::RestoreTo;
using testutil::TempDir;

Options Opts(const std::string& keys) { return testutil::NoTrainingOptions(keys); }

void WriteWhole(const std::string& path, const std::string& data) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << data;
  ASSERT_TRUE(f.good()) << path;
}

// testutil::TwoTenants with what these tests read of its key directory.
struct A18Store : testutil::TwoTenants {
  std::string Log() const { return testutil::ReadFile(keys + "/TOMBSTONES"); }
  std::string PublicKey() const {
    auto kp = NewFileKeyProvider(keys);
    EXPECT_TRUE(kp.ok()) << kp.status().ToString();
    if (!kp.ok()) return "";
    auto pk = (*kp)->ExistingSigningPublicKey();
    EXPECT_TRUE(pk.ok()) << pk.status().ToString();
    return pk.ok() ? *pk : "";
  }
};

// Whether a restore of `bak` (cut `cut`) into `dir` brought back `call` of
// A, a call deleted after that cut: false when the restore was refused
// (nothing restored) or the call is gone.
bool DeletedCallCameBack(const A18Store& t, const std::string& dir, uint64_t cut,
                         const std::string& call, Status* restore_status) {
  auto r = RestoreTo(t.bak, t.keys, dir, cut);
  *restore_status = r.status();
  if (!r.ok()) {
    ExpectNothingRestored(dir);
    return false;
  }
  auto o = Store::Open(Opts(t.keys), dir);
  EXPECT_TRUE(o.ok()) << o.status().ToString();
  if (!o.ok()) return false;
  const bool back = (*o)->GetCall("A", call).ok();
  EXPECT_OK((*o)->Close());
  return back;
}

// The key directory put back from a copy taken before the last erasures
// (its TOMBSTONES shorter than a newer cut of the same backup directory
// recorded): restoring the newer cut is refused (offset beyond the log);
// restoring the older cut replayed the short log and brought the deleted
// call back without a word. The restore now checks the log against every
// signed cut of the directory.
TEST(A18, TombstoneLogOlderThanANewerCutIsRefused) {
  A18Store t;
  t.Make(4);
  ASSERT_OK(t.s->Backup(t.bak));  // cut 1
  ASSERT_OK(t.s->DeleteCall("A", "a0"));
  const std::string log_after_a0 = t.Log();
  ASSERT_OK(t.s->DeleteCall("A", "a1"));
  ASSERT_OK(t.s->Backup(t.bak));  // cut 2: records the log with both lines
  ASSERT_NO_FATAL_FAILURE(t.Close());
  // The key directory's copy from between the two deletions.
  WriteWhole(t.keys + "/TOMBSTONES", log_after_a0);
  Status st;
  EXPECT_FALSE(DeletedCallCameBack(t, t.tmp.Sub("r2"), 2, "a1", &st));
  EXPECT_EQ(st.code(), Code::kCorruption) << st.ToString();
  EXPECT_FALSE(DeletedCallCameBack(t, t.tmp.Sub("r1"), 1, "a1", &st))
      << "cut 1 restored with a tombstone log shorter than cut 2 recorded: DeleteCall(a1) undone";
  EXPECT_EQ(st.code(), Code::kCorruption) << st.ToString();
  EXPECT_NE(st.ToString().find("cut 2"), std::string::npos) << st.ToString();
  // The same with a line dropped by hand from the middle of the log.
  std::string full = log_after_a0;
  {
    A18Store u;  // a fresh pair, the edit on a whole log
    u.Make(4);
    ASSERT_OK(u.s->Backup(u.bak));
    ASSERT_OK(u.s->DeleteCall("A", "a0"));
    ASSERT_OK(u.s->DeleteCall("A", "a1"));
    ASSERT_OK(u.s->Backup(u.bak));
    ASSERT_NO_FATAL_FAILURE(u.Close());
    full = u.Log();
    const size_t nl = full.find('\n');
    ASSERT_NE(nl, std::string::npos);
    WriteWhole(u.keys + "/TOMBSTONES", full.substr(nl + 1));  // a0's line dropped
    EXPECT_FALSE(DeletedCallCameBack(u, u.tmp.Sub("r1"), 1, "a0", &st))
        << "a dropped tombstone line went unnoticed";
    EXPECT_EQ(st.code(), Code::kCorruption) << st.ToString();
  }
}

// FINDING (not fixed): with no newer cut to compare with, a tombstone line
// dropped by hand, or the log cut back to the restored cut's offset (e.g.
// the key directory put back from a copy taken at backup time), is not
// detected: the restore succeeds and the call deleted after the cut is
// readable again, no audit event saying an erasure was skipped. The log
// carries no chain or count a restore could check; detecting this needs an
// anchor outside the log (e.g. each line chained under a key of the key
// directory, and the chain head kept where the restored store can compare
// it). Today: "a1 came back" for both edits.
TEST(A18, DISABLED_TombstoneLineDroppedWithNoNewerCutIsNotSilent) {
  for (const bool cut_back_to_offset : {false, true}) {
    A18Store t;
    t.Make(4);
    ASSERT_OK(t.s->Backup(t.bak));
    const std::string at_cut = t.Log();
    ASSERT_OK(t.s->DeleteCall("A", "a0"));
    ASSERT_OK(t.s->DeleteCall("A", "a1"));
    ASSERT_NO_FATAL_FAILURE(t.Close());
    std::string log = t.Log();
    if (cut_back_to_offset) {
      log = at_cut;
    } else {
      const size_t first = log.find('\n', at_cut.size());
      ASSERT_NE(first, std::string::npos);
      log = log.substr(0, first + 1);  // keeps a0's line, drops a1's
    }
    WriteWhole(t.keys + "/TOMBSTONES", log);
    Status st;
    EXPECT_FALSE(DeletedCallCameBack(t, t.tmp.Sub("r"), 0, "a1", &st))
        << (cut_back_to_offset ? "log cut back to the cut" : "last line dropped")
        << ": a1 came back";
  }
}

// TOMBSTONES replaced by a symbolic link (to an empty file, or to the log
// itself): the restore is refused before anything is written; never a
// restore that read nothing and replayed nothing.
TEST(A18, TombstoneLogSymlinkRefused) {
  A18Store t;
  t.Make(3);
  ASSERT_OK(t.s->Backup(t.bak));
  ASSERT_OK(t.s->DeleteCall("A", "a0"));
  ASSERT_NO_FATAL_FAILURE(t.Close());
  const std::string log = t.keys + "/TOMBSTONES";
  const std::string real = t.tmp.Sub("TOMBSTONES.real");
  fs::rename(log, real);
  for (const std::string& to : {real, t.tmp.Sub("empty")}) {
    if (to != real) WriteWhole(to, "");
    std::error_code ec;
    fs::remove(log, ec);
    fs::create_symlink(to, log);
    Status st;
    EXPECT_FALSE(DeletedCallCameBack(t, t.tmp.Sub("r"), 0, "a0", &st)) << to;
    EXPECT_FALSE(st.ok()) << to;
    EXPECT_NE(st.ToString().find("TOMBSTONES"), std::string::npos) << st.ToString();
  }
}

// A line planted for a tenant internal id that never existed, and the
// real lines after the cut reordered: the restore replays the real ones
// (both calls gone), skips the planted one, and every other call is whole.
TEST(A18, PlantedAndReorderedTombstoneLinesAreHarmless) {
  A18Store t;
  t.Make(4);
  ASSERT_OK(t.s->Backup(t.bak));
  const size_t at_cut = t.Log().size();
  ASSERT_OK(t.s->DeleteCall("A", "a0"));
  ASSERT_OK(t.s->DeleteCall("B", "b1"));
  ASSERT_NO_FATAL_FAILURE(t.Close());
  const std::string log = t.Log();
  std::vector<std::string> lines;
  for (size_t p = at_cut; p < log.size();) {
    const size_t nl = log.find('\n', p);
    lines.push_back(log.substr(p, nl + 1 - p));
    p = nl + 1;
  }
  ASSERT_EQ(lines.size(), 2u);
  const std::string planted = "1700000000000000 987654 " + std::string(32, 'c') + "\n";
  WriteWhole(t.keys + "/TOMBSTONES", log.substr(0, at_cut) + lines[1] + planted + lines[0]);
  auto r = RestoreTo(t.bak, t.keys, t.tmp.Sub("r"));
  ASSERT_OK(r);
  EXPECT_EQ(r->tombstones_replayed, 2u);
  auto o = Store::Open(Opts(t.keys), t.tmp.Sub("r"));
  ASSERT_OK(o);
  EXPECT_CODE((*o)->GetCall("A", "a0"), Code::kNotFound);
  EXPECT_CODE((*o)->GetCall("B", "b1"), Code::kNotFound);
  for (const char* id : {"a1", "a2", "a3"}) EXPECT_OK((*o)->GetCall("A", id));
  for (const char* id : {"b0", "b2", "b3"}) EXPECT_OK((*o)->GetCall("B", id));
  EXPECT_OK((*o)->Close());
}

// Tenant M (`calls` calls) moved from `src` into `dst`, both opened here,
// with a backup of `dst` taken while the source catches up (after its
// copy): the destination holds M as CREATING + kMoveIn in that cut. The
// move then commits; `src` is closed, `dst` left open.
void MoveWithABackupMidMoveIn(A18Store& src, A18Store& dst, int calls) {
  auto so = Store::Open(Opts(src.keys), src.db);
  ASSERT_OK(so);
  src.s = std::move(so).value();
  auto dopen = Store::Open(Opts(dst.keys), dst.db);
  ASSERT_OK(dopen);
  dst.s = std::move(dopen).value();
  ASSERT_OK(src.s->CreateTenant({.tenant_id = "M"}));
  for (int i = 0; i < calls; ++i) {
    ASSERT_OK(src.s->PutCall("M", MakeCall("m" + std::to_string(i), 1700000000000000 + i, "mm")));
  }
  Status mid;
  Store* d = dst.s.get();
  const std::string bak = dst.bak;
  testing::SetKillPointAction([d, bak, &mid] { mid = d->Backup(bak).status(); });
  testing::ArmKillPoint("move.out_after_copy");
  auto moved = MoveTenant(*src.s, *dst.s, "M");
  testing::DisarmKillPoints();
  testing::SetKillPointAction(nullptr);
  ASSERT_OK(moved);
  ASSERT_OK(mid);
  ASSERT_NO_FATAL_FAILURE(src.Close());
}

// A backup of a destination store taken while a tenant was moving in (BEGIN
// and the rows received, registry CREATING + kMoveIn; the move then
// committed), restored with the destination's key directory while the live
// destination is stopped (a restore drill, or a restore later abandoned):
// the restored copy's open rolls the unfinished move-in back. That must not
// take the moved tenant's key from the key directory the live destination
// reads: the live store, opened again, still serves the tenant whole.
TEST(A18, RestoreOfACutTakenMidMoveInLeavesTheLiveTenantsKey) {
  A18Store src, dst;
  ASSERT_NO_FATAL_FAILURE(MoveWithABackupMidMoveIn(src, dst, 20));
  auto n = dst.s->CountCalls("M");
  ASSERT_OK(n);
  ASSERT_EQ(*n, 20u);
  ASSERT_NO_FATAL_FAILURE(dst.Close());
  // The restore (a drill: the live destination is only stopped).
  auto r = RestoreTo(dst.bak, dst.keys, dst.tmp.Sub("drill"));
  ASSERT_OK(r);
  // The copy held M half moved in: rolled back there, its key an orphan.
  EXPECT_EQ(r->orphan_key_internal_ids.size(), 1u);
  {
    auto copy = Store::Open(Opts(dst.keys), dst.tmp.Sub("drill"));
    ASSERT_OK(copy);
    auto m = (*copy)->DescribeTenant("M");
    EXPECT_TRUE(!m.ok() || m->state != TenantState::kActive);
    EXPECT_CODE((*copy)->GetCall("M", "m3"), Code::kNotFound);
    EXPECT_OK((*copy)->Close());
  }
  // The live destination again.
  auto again = Store::Open(Opts(dst.keys), dst.db);
  ASSERT_OK(again);
  auto info = (*again)->DescribeTenant("M");
  ASSERT_OK(info);
  EXPECT_EQ(info->state, TenantState::kActive)
      << "the restore of a cut taken mid-move-in destroyed the live tenant's key";
  auto count = (*again)->CountCalls("M");
  EXPECT_OK(count);
  if (count.ok()) {
    EXPECT_EQ(*count, 20u);
  }
  EXPECT_OK((*again)->GetCall("M", "m3"));
  EXPECT_OK((*again)->Close());
}

// A backup taken while one thread puts calls and erases each one's subject
// again (every fourth erasure physical), and deletes others, and another
// thread puts into B: after the restore, no call whose erasure or deletion
// was acknowledged before the restore is readable (those before the cut
// are in the copy, those after it are replayed), and every put of B
// acknowledged before Backup was called is there, whole.
TEST(A18, BackupWhileErasuresAndDeletesRunLosesNone) {
  A18Store t;
  t.Make(0);
  std::atomic<bool> stop{false};
  std::atomic<int> erased{0}, written{0};
  std::atomic<bool> failed{false};
  std::thread eraser([&] {
    for (int i = 0; !stop.load(); ++i) {
      Call c = MakeCall("e" + std::to_string(i), 1700000000000000 + i, "me");
      c.participants[1].email = "s" + std::to_string(i) + "@customer.example";
      Call d = MakeCall("d" + std::to_string(i), 1700000000000000 + i, "md");
      EraseRequest req;
      req.subject = c.participants[1].email;
      req.physical = i % 4 == 0;
      if (!t.s->PutCall("A", c).ok() || !t.s->PutCall("A", d).ok() || !t.s->Erase("A", req).ok() ||
          !t.s->DeleteCall("A", d.call_id).ok()) {
        failed = true;
        return;
      }
      erased = i + 1;
    }
  });
  std::thread writer([&] {
    for (int j = 0; !stop.load(); ++j) {
      if (!t.s->PutCall("B", MakeCall("w" + std::to_string(j), 1700000000000000 + j, "mw")).ok()) {
        failed = true;
        return;
      }
      written = j + 1;
    }
  });
  auto wait_for = [&](int n) {
    while (erased.load() < n && !failed.load()) std::this_thread::yield();
  };
  wait_for(5);
  const int written_before = written.load();
  auto b = t.s->Backup(t.bak);
  const int erased_at_backup = erased.load();
  wait_for(erased_at_backup + 5);
  stop = true;
  eraser.join();
  writer.join();
  ASSERT_FALSE(failed.load());
  ASSERT_OK(b);
  const int erased_total = erased.load();
  ASSERT_NO_FATAL_FAILURE(t.Close());
  auto r = RestoreTo(t.bak, t.keys, t.tmp.Sub("r"));
  ASSERT_OK(r);
  auto o = Store::Open(Opts(t.keys), t.tmp.Sub("r"));
  ASSERT_OK(o);
  for (int i = 0; i < erased_total; ++i) {
    SCOPED_TRACE(i);
    EXPECT_CODE((*o)->GetCall("A", "e" + std::to_string(i)), Code::kNotFound);
    EXPECT_CODE((*o)->GetCall("A", "d" + std::to_string(i)), Code::kNotFound);
    auto refs = (*o)->FindReferences("A", "s" + std::to_string(i) + "@customer.example");
    ASSERT_OK(refs);
    EXPECT_TRUE(refs->empty()) << i;
  }
  for (int j = 0; j < written_before; ++j) {
    auto c = (*o)->GetCall("B", "w" + std::to_string(j));
    ASSERT_OK(c);
    EXPECT_EQ(c->participants.size(), 2u);
  }
  std::printf("[attack18] backup under erasures: %d erased when Backup returned, %d in all, "
              "%llu replayed at restore, 0 back\n",
              erased_at_backup, erased_total,
              static_cast<unsigned long long>(r->tombstones_replayed));
  EXPECT_OK((*o)->Close());
}

// Two stores pointed at one backup directory (a copy-pasted cron line):
// the second store's backup is refused (nothing written into the
// directory), so the first store's `backup verify` and `restore` of the
// newest cut go on working. It was accepted as the directory's newest
// cut: the first store's restore without --cut then failed ("the backup is
// of another store"), `backup verify` failed its signature and
// `tombstones prune --keep` refused the directory.
TEST(A18, BackupDirectoryOfAnotherStoreRefused) {
  A18Store x, y;
  x.Make(3);
  y.Make(2);
  ASSERT_OK(x.s->Backup(x.bak));
  const auto files_before = testutil::ListFiles(x.bak);
  auto other = y.s->Backup(x.bak);
  EXPECT_CODE(other, Code::kFailedPrecondition);
  if (!other.ok()) {
    EXPECT_NE(other.status().message().find("another store"), std::string::npos)
        << other.status().ToString();
  }
  EXPECT_EQ(testutil::ListFiles(x.bak), files_before);
  auto cuts = ListBackups(x.bak);
  ASSERT_OK(cuts);
  EXPECT_EQ(cuts->size(), 1u);
  ASSERT_NO_FATAL_FAILURE(y.Close());
  ASSERT_NO_FATAL_FAILURE(x.Close());
  EXPECT_OK(VerifyBackup(x.bak, 0, x.PublicKey()));
  EXPECT_OK(RestoreTo(x.bak, x.keys, x.tmp.Sub("r")));
}

// A backup directory given as a symbolic link into the store, into the key
// directory, or to a directory holding the store: refused
// (kInvalidArgument) with nothing written where the link points.
TEST(A18, BackupDirectoryLinkedIntoTheStoreOrKeysRefused) {
  A18Store t;
  t.Make(2);
  std::error_code ec;
  fs::create_directories(t.db + "/empty-in-store", ec);
  fs::create_directories(t.keys + "/empty-in-keys", ec);
  ::chmod(t.keys.c_str(), 0700);
  const std::vector<std::pair<std::string, std::string>> links = {
      {t.tmp.Sub("to-store"), t.db + "/empty-in-store"},
      {t.tmp.Sub("to-keys"), t.keys + "/empty-in-keys"},
      {t.tmp.Sub("to-parent"), t.tmp.path()},
  };
  for (const auto& [link, to] : links) {
    SCOPED_TRACE(link);
    fs::create_directory_symlink(to, link);
    const auto before = testutil::ListFiles(to);
    EXPECT_CODE(t.s->Backup(link), Code::kInvalidArgument);
    // Below the link: inside the store or the keys, but for the parent
    // (beside them there, which is allowed).
    if (to != t.tmp.path()) {
      EXPECT_CODE(t.s->Backup(link + "/sub"), Code::kInvalidArgument);
      EXPECT_FALSE(fs::exists(to + "/sub")) << to;
    }
    EXPECT_EQ(testutil::ListFiles(to), before);
    EXPECT_FALSE(fs::exists(to + "/cuts")) << to;
  }
  ASSERT_NO_FATAL_FAILURE(t.Close());
}

// Incremental backups share table files. One that cut 1 and cut 2 both
// need, deleted: `backup verify` fails for both with a specific error,
// their restore is refused with nothing left behind, and the next backup
// (cut 3) copies the file again: it verifies and restores whole.
TEST(A18, SharedFileDeletedFailsEveryCutThatNeedsItAndTheNextBackupIsWhole) {
  A18Store t;
  t.Make(50);
  ASSERT_OK(t.s->Flush());
  ASSERT_OK(t.s->Backup(t.bak));
  ASSERT_OK(t.s->PutCall("A", MakeCall("later", 1700000000000100, "ml")));
  ASSERT_OK(t.s->Backup(t.bak));
  const auto tables = testutil::BackupTableFiles(t.bak);
  ASSERT_FALSE(tables.empty());
  fs::remove(tables.front());
  const std::string pk = t.PublicKey();
  for (uint64_t cut : {1, 2}) {
    auto v = VerifyBackup(t.bak, cut, pk);
    EXPECT_CODE(v, Code::kCorruption);
    Status st;
    EXPECT_FALSE(DeletedCallCameBack(t, t.tmp.Sub("r" + std::to_string(cut)), cut, "a0", &st));
    EXPECT_EQ(st.code(), Code::kCorruption) << st.ToString();
  }
  auto third = t.s->Backup(t.bak);
  ASSERT_OK(third);
  EXPECT_EQ(third->manifest.cut, 3u);
  EXPECT_OK(VerifyBackup(t.bak, 3, pk));
  ASSERT_NO_FATAL_FAILURE(t.Close());
  auto r = RestoreTo(t.bak, t.keys, t.tmp.Sub("r3"), 3);
  ASSERT_OK(r);
  auto o = Store::Open(Opts(t.keys), t.tmp.Sub("r3"));
  ASSERT_OK(o);
  auto n = (*o)->CountCalls("A");
  ASSERT_OK(n);
  EXPECT_EQ(*n, 51u);
  EXPECT_OK((*o)->Close());
}

// What a restore killed right after its rename leaves (the CLI's
// CALLVAULT_KILL_POINT=restore.after_rename): the restored copy with its
// RESTORE_PENDING, copied to `killed` at that point; the restore into `dir`
// then carries on and finishes. The key directory's restore ledger is put
// back as it was at that point (decision 0027, "The ledger": the finished
// twin closed the restore id, which would refuse `killed`), so that
// `killed` is the killed restore it stands for.
void RestoreKilledAfterRename(const A18Store& t, const std::string& dir, const std::string& killed) {
  Status copied;
  std::string ledger;
  testing::SetKillPointAction([&dir, &killed, &copied, &ledger, &t] {
    std::error_code ec;
    fs::copy(dir, killed, fs::copy_options::recursive, ec);
    if (ec) copied = Status::IOError("copy " + dir + ": " + ec.message());
    ledger = testutil::ReadFile(t.keys + "/RESTORES");
  });
  testing::ArmKillPoint("restore.after_rename");
  auto r = RestoreTo(t.bak, t.keys, dir);
  testing::DisarmKillPoints();
  testing::SetKillPointAction(nullptr);
  ASSERT_OK(r);
  ASSERT_OK(copied);
  ASSERT_TRUE(fs::exists(killed + "/RESTORE_PENDING"));
  ASSERT_NO_FATAL_FAILURE(WriteWhole(t.keys + "/RESTORES", ledger));
}

// A genuine RESTORE_PENDING (signed with the store's key, of its store id),
// kept from a killed restore and copied into the live store: its next open
// replayed the tombstone log from the cut, and deleted again a call deleted
// after the cut and put again since (the audit a normal restore_replayed).
// The marker is now bound to the copy it was written into (a restore id in
// that copy's metadata instance): refused, nothing changed. The same for the
// marker put back into the restored copy once its replay finished. The
// killed copy itself still finishes at its next open.
TEST(A18, RestoreMarkerCopiedIntoAnotherDirectoryIsRefused) {
  A18Store t;
  t.Make(3);
  ASSERT_OK(t.s->Backup(t.bak));
  ASSERT_OK(t.s->DeleteCall("A", "a1"));
  ASSERT_OK(t.s->PutCall("A", MakeCall("a1", 1700000000000001, "put again")));
  ASSERT_NO_FATAL_FAILURE(t.Close());
  const std::string r = t.tmp.Sub("r"), killed = t.tmp.Sub("killed");
  ASSERT_NO_FATAL_FAILURE(RestoreKilledAfterRename(t, r, killed));
  const std::string marker = killed + "/RESTORE_PENDING";
  // Into the live store.
  fs::copy_file(marker, t.db + "/RESTORE_PENDING");
  {
    auto live = Store::Open(Opts(t.keys), t.db);
    EXPECT_CODE(live, Code::kCorruption);
    if (!live.ok()) {
      EXPECT_NE(live.status().message().find("restore id"), std::string::npos);
    }
  }
  EXPECT_TRUE(fs::exists(t.db + "/RESTORE_PENDING")) << "the refused marker was consumed";
  fs::remove(t.db + "/RESTORE_PENDING");
  {
    auto o = Store::Open(Opts(t.keys), t.db);
    ASSERT_OK(o);
    // Deleted again by the copied marker's replay without the fix.
    EXPECT_OK((*o)->GetCall("A", "a1"));
    EXPECT_OK((*o)->Close());
  }
  // Into the restored copy whose replay finished.
  fs::copy_file(marker, r + "/RESTORE_PENDING");
  EXPECT_CODE(Store::Open(Opts(t.keys), r), Code::kCorruption);
  // The killed restore's copy finishes at its next open (the retry).
  auto k = Store::Open(Opts(t.keys), killed);
  ASSERT_OK(k);
  EXPECT_FALSE(fs::exists(marker));
  EXPECT_CODE((*k)->GetCall("A", "a1"), Code::kNotFound);
  EXPECT_OK((*k)->GetCall("A", "a0"));
  EXPECT_OK((*k)->Close());
}

// Whether the copy at `dir` still holds M half moved in (registry CREATING
// + kMoveIn, untouched by recovery): read without its marker, read-only.
// A pending copy without its marker is never served (decision 0027, "The
// ledger"): read a scratch copy of it, without the marker, with a scratch
// copy of the key directory whose ledger says the replay is done.
bool HalfMovedIn(const A18Store& t, const std::string& dir) {
  const std::string peek = dir + ".peek", keys = dir + ".peek-keys";
  std::error_code ec;
  fs::remove_all(peek, ec);
  fs::remove_all(keys, ec);
  fs::copy(dir, peek, fs::copy_options::recursive);
  fs::copy(t.keys, keys, fs::copy_options::recursive);
  fs::remove(peek + "/RESTORE_PENDING", ec);
  const std::string ledger = testutil::ReadFile(keys + "/RESTORES");
  EXPECT_NO_FATAL_FAILURE(WriteWhole(
      keys + "/RESTORES",
      std::regex_replace(ledger, std::regex("pending ([0-9a-f]{32}) [^\n]*"), "done $1")));
  Options ro = Opts(keys);
  ro.create_if_missing = false;
  ro.read_only = true;
  bool half = false;
  {
    auto o = Store::Open(ro, peek);
    EXPECT_TRUE(o.ok()) << o.status().ToString();
    if (o.ok()) {
      auto m = (*o)->DescribeTenant("M");
      half = m.ok() && !m->moved_from.empty();
      EXPECT_OK((*o)->Close());
    }
  }
  fs::remove_all(peek, ec);
  fs::remove_all(keys, ec);
  return half;
}

// A RESTORE_PENDING that is not a signed marker (`{}`), or a symbolic link
// to a genuine one, in a restored copy holding a tenant half moved in: the
// open refused it only after recovery had run as for a restored copy (the
// move-in rolled back, its key kept: an orphan), and a link was followed.
// Now it is read (without following a link) and verified before anything
// changes: refused, the copy untouched; the genuine marker then finishes it.
TEST(A18, InvalidRestoreMarkerIsRefusedBeforeRecovery) {
  A18Store src, dst;
  ASSERT_NO_FATAL_FAILURE(MoveWithABackupMidMoveIn(src, dst, 5));
  ASSERT_NO_FATAL_FAILURE(dst.Close());
  const std::string killed = dst.tmp.Sub("killed");
  ASSERT_NO_FATAL_FAILURE(RestoreKilledAfterRename(dst, dst.tmp.Sub("drill"), killed));
  const std::string marker = killed + "/RESTORE_PENDING", genuine = dst.tmp.Sub("genuine");
  fs::copy_file(marker, genuine);
  ASSERT_TRUE(HalfMovedIn(dst, killed));
  // Not a signed marker.
  ASSERT_NO_FATAL_FAILURE(WriteWhole(marker, "{}\n"));
  EXPECT_CODE(Store::Open(Opts(dst.keys), killed), Code::kCorruption);
  EXPECT_TRUE(HalfMovedIn(dst, killed)) << "recovery ran before the marker was refused";
  // A symbolic link to the genuine marker.
  fs::remove(marker);
  fs::create_symlink(genuine, marker);
  {
    auto linked = Store::Open(Opts(dst.keys), killed);
    EXPECT_CODE(linked, Code::kCorruption);
    if (!linked.ok()) {
      EXPECT_NE(linked.status().message().find("symbolic link"), std::string::npos);
    }
  }
  EXPECT_TRUE(HalfMovedIn(dst, killed)) << "recovery ran before the link was refused";
  // The genuine marker: the copy finishes (M rolled back there).
  fs::remove(marker);
  fs::copy_file(genuine, marker);
  {
    auto o = Store::Open(Opts(dst.keys), killed);
    ASSERT_OK(o);
    EXPECT_FALSE(fs::exists(marker));
    auto m = (*o)->DescribeTenant("M");
    EXPECT_TRUE(!m.ok() || m->state != TenantState::kActive);
    EXPECT_OK((*o)->Close());
  }
}

// The same shared file damaged in place (a byte flipped, same size). The
// next incremental backup found a file of that name and size and reused it
// without reading it: Backup returned OK and wrote a signed manifest for a
// cut that failed `backup verify` and could not be restored. Backup now
// reads the new cut back with checksums before signing it (decision 0063):
// kCorruption naming the damaged file, no cut added; a backup into a new
// directory is whole.
TEST(A18, DamagedSharedFileIsNotReusedByTheNextBackup) {
  A18Store t;
  t.Make(50);
  ASSERT_OK(t.s->Flush());
  ASSERT_OK(t.s->Backup(t.bak));
  const auto tables = testutil::BackupTableFiles(t.bak);
  ASSERT_FALSE(tables.empty());
  const std::string damaged = tables.front();
  ASSERT_NO_FATAL_FAILURE(testutil::FlipByte(damaged, fs::file_size(damaged) / 2));
  auto second = t.s->Backup(t.bak);
  if (second.ok()) {
    auto v = VerifyBackup(t.bak, second->manifest.cut, t.PublicKey());
    EXPECT_TRUE(v.ok()) << "Backup reported success for a cut that does not verify: "
                        << v.status().ToString();
  } else {
    EXPECT_EQ(second.status().code(), Code::kCorruption) << second.status().ToString();
    EXPECT_NE(second.status().message().find(fs::path(damaged).filename().string()),
              std::string::npos)
        << "the refusal does not name the damaged file: " << second.status().ToString();
    auto cuts = ListBackups(t.bak);
    ASSERT_OK(cuts);
    EXPECT_EQ(cuts->size(), 1u) << "a refused backup added a cut";
  }
  // What the refusal says to do: a new directory gets a whole cut.
  const std::string fresh = t.tmp.Sub("bak2");
  auto other = t.s->Backup(fresh);
  ASSERT_OK(other);
  EXPECT_OK(VerifyBackup(fresh, other->manifest.cut, t.PublicKey()));
  ASSERT_NO_FATAL_FAILURE(t.Close());
}

}  // namespace
}  // namespace callvault
