// Session 13 attack on issue 11's loss detection (decisions 0014, 0015,
// 0035, 0039, 0040, 0041) and on decision 0049 (a purge deletes the
// dropped family's files after its receipt, on the shard's reaper thread),
// as an attacker with the store directory and as an operator at 3 a.m.:
// WAL files renamed, duplicated or swapped between shards after a crash,
// a SIGKILL in the middle of the close's CLOSE_MARK / WAL_LEDGER writes, a
// purge killed before its files were deleted, a purge racing Close, a
// backup taken while a deletion is pending, and read-only opens of damaged
// stores (loud, and nothing on disk changed). Builds on attack13_test.cc
// (same store shape, same child-process crash), without repeating it.
#include <algorithm>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "callvault/backup.h"
#include "callvault/metrics.h"
#include "callvault/store.h"
#include "engine/close_mark.h"
#include "engine/kill_point.h"
#include "tests/damage/audit_recorder.h"
#include "tests/damage/damage_util.h"
#include "tests/testutil/process.h"
#include "tests/testutil/testutil.h"

namespace callvault {
namespace {

namespace fs = std::filesystem;
using damage::FilesWith;
using testutil::MakeCall;
using testutil::TestStore;

constexpr int64_t kAt = 1700000000000000;
constexpr char kEnvDb[] = "CALLVAULT_ATTACK15_DB";
constexpr char kEnvKeys[] = "CALLVAULT_ATTACK15_KEYS";
// What the child does, in order, comma-separated: put (5 acme calls n0-n4),
// flush, purge (carol), arm:<point>:<hit>, close, list:<file> (the shards'
// files, one a line, written to <file>), fsize (file writes fail from now
// on), closecheck (exit 12 if Close succeeded, 13 if it failed).
constexpr char kEnvOps[] = "CALLVAULT_ATTACK15_OPS";

// acme alone in shard 0, bravo alone in shard 1, carol alone in shard 2;
// every audit event kept.
struct A15 : ::testing::Test, damage::AuditRecorder {
  TestStore s;
  void SetUp() override {
    s.options.max_tenants_per_shard = 1;
    RecordInto(&s.options);
    ASSERT_OK(s.Open());
    for (const char* t : {"acme", "bravo", "carol"}) ASSERT_OK(s->CreateTenant({t, "", 0}));
    for (int i = 0; i < 3; ++i) {
      ASSERT_OK(s->PutCall("acme", MakeCall("a" + std::to_string(i), kAt + i)));
      ASSERT_OK(s->PutCall("bravo", MakeCall("b" + std::to_string(i), kAt + i)));
      ASSERT_OK(s->PutCall("carol", MakeCall("c" + std::to_string(i), kAt + i)));
    }
    s.options.create_if_missing = false;
  }
  // Any alarm of issue 11 (a loss or damage reported).
  bool Alarm() {
    return Saw("shard_loss") || Saw("wal_damage") || Saw("metadata_loss") || Saw("file_damage") ||
           Saw("tenant_damaged");
  }
  void PrintEvents(const std::string& what) {
    for (const auto& k : Kinds()) std::printf("[attack15] %s: event %s\n", what.c_str(), k.c_str());
  }
  Result<std::unique_ptr<Store>> OpenMode(bool read_only) {
    Options o = s.options;
    o.read_only = read_only;
    o.create_if_missing = false;
    return Store::Open(o, s.db);
  }
  void ExpectAll(Store* st, const std::string& t, const std::string& p, int n = 3) {
    for (int i = 0; i < n; ++i) {
      auto g = st->GetCall(t, p + std::to_string(i), kPartAll);
      EXPECT_TRUE(g.ok()) << t << " " << p << i << ": " << g.status().ToString();
    }
  }
  std::string Child(const std::string& ops) {
    return testutil::RunSelfChild("A15Child.DISABLED_Run",
                                  {{kEnvDb, s.db}, {kEnvKeys, s.keys}, {kEnvOps, ops}});
  }
  // Opens `db` (the store's when empty) once per entry of `modes` (true:
  // read-only), each time expecting no alarm of issue 11, acme's a0-a2 and
  // bravo's b0-b2 readable, `check` to pass and Verify ok; a writable store
  // is closed with Close() (its error returned).
  void QuietOpens(const std::string& what, std::initializer_list<bool> modes,
                  const std::function<void(Store*, bool)>& check, const std::string& db = "") {
    for (bool ro : modes) {
      SCOPED_TRACE(what + (ro ? " (read-only)" : " (writable)"));
      seen.clear();
      Options o = s.options;
      o.read_only = ro;
      o.create_if_missing = false;
      auto r = Store::Open(o, db.empty() ? s.db : db);
      ASSERT_TRUE(r.ok()) << r.status().ToString();
      PrintEvents(what + (ro ? " ro" : " rw"));
      EXPECT_FALSE(Alarm()) << "a false alarm";
      ExpectAll(r->get(), "acme", "a");
      ExpectAll(r->get(), "bravo", "b");
      check(r->get(), ro);
      auto v = (*r)->Verify(std::nullopt);
      ASSERT_OK(v);
      EXPECT_TRUE(v->ok());
      if (!ro) {
        ASSERT_OK((*r)->Close());
      }
    }
  }
  // A real loss after whatever the test did: an older WAL of a cleanly
  // closed session deleted after a crash; the next open reports it.
  void LaterLossIsLoud() {
    auto wals = SessionsThenACrash();
    ASSERT_GE(wals.size(), 3u);
    ASSERT_TRUE(fs::remove(wals[wals.size() - 3]));
    seen.clear();
    ASSERT_OK(s.Open());
    EXPECT_TRUE(Saw("shard_loss")) << "a later loss muted";
    EXPECT_CODE(s->GetCall("acme", "s1", kPartAll), Code::kCorruption);
  }
  // Sessions that each put one acme call (s<i>) and close cleanly, then a
  // child that puts n0-n4 and is SIGKILLed: the WALs of shard 0 are
  // [a's,] s0's, s1's, s2's, n's; no CLOSE_MARK, the ledger lists all but n's.
  std::vector<std::string> SessionsThenACrash() {
    s.Close();
    for (int i = 0; i < 3; ++i) {
      EXPECT_OK(s.Open());
      EXPECT_OK(s->PutCall("acme", MakeCall("s" + std::to_string(i), kAt + 10 + i)));
      EXPECT_OK(s->PutCall("bravo", MakeCall("s" + std::to_string(i), kAt + 10 + i)));
      s.Close();
    }
    EXPECT_EQ(Child("put"), "signal 9");
    EXPECT_FALSE(fs::exists(s.db + "/CLOSE_MARK"));
    std::vector<std::string> wals;
    for (const auto& f : FilesWith(s.db + "/shards/0000", ".log")) {
      if (fs::file_size(f) > 0) wals.push_back(f);
    }
    return wals;
  }
};

std::vector<std::string> SplitOps(const std::string& ops) {
  std::vector<std::string> v;
  size_t b = 0;
  while (b <= ops.size()) {
    size_t e = ops.find(',', b);
    if (e == std::string::npos) e = ops.size();
    if (e > b) v.push_back(ops.substr(b, e - b));
    b = e + 1;
  }
  return v;
}

void ListShardFiles(const std::string& db, const std::string& out) {
  std::ofstream o(out);
  for (const auto& f : testutil::ListFiles(db + "/shards")) o << f << "\n";
}

TEST(A15Child, DISABLED_Run) {
  const char* db = std::getenv(kEnvDb);
  const char* keys = std::getenv(kEnvKeys);
  const char* ops = std::getenv(kEnvOps);
  if (db == nullptr || keys == nullptr || ops == nullptr) GTEST_SKIP();
  auto kp = NewFileKeyProvider(keys);
  if (!kp.ok()) ::_exit(3);
  Options o = testutil::DefaultOptions(*kp);
  o.max_tenants_per_shard = 1;
  o.create_if_missing = false;
  if (const char* a = std::getenv("CALLVAULT_ATTACK15_ARMOPEN")) {
    const std::string arm = a;
    const size_t c = arm.rfind(':');
    testing::ArmKillPoint(arm.substr(0, c), std::atoi(arm.c_str() + c + 1));
  }
  auto st = Store::Open(o, db);
  if (!st.ok()) ::_exit(4);
  testing::DisarmKillPoints();
  for (const auto& op : SplitOps(ops)) {
    if (op == "put") {
      for (int i = 0; i < 5; ++i) {
        if (!(*st)->PutCall("acme", MakeCall("n" + std::to_string(i), kAt + 100 + i)).ok())
          ::_exit(5);
      }
    } else if (op == "flush") {
      if (!(*st)->Flush().ok()) ::_exit(6);
    } else if (op == "purge") {
      if (!(*st)->PurgeTenant("carol").ok()) ::_exit(7);
    } else if (op.rfind("list:", 0) == 0) {
      ListShardFiles(db, op.substr(5));
    } else if (op.rfind("arm:", 0) == 0) {
      const size_t c = op.rfind(':');
      testing::ArmKillPoint(op.substr(4, c - 4), std::atoi(op.c_str() + c + 1));
    } else if (op == "fsize") {
      // A full disk, as near as a child can make one: every write past
      // byte 64 of any file fails (EFBIG; SIGXFSZ ignored).
      std::signal(SIGXFSZ, SIG_IGN);
      rlimit lim;
      lim.rlim_cur = lim.rlim_max = 64;
      if (::setrlimit(RLIMIT_FSIZE, &lim) != 0) ::_exit(9);
    } else if (op == "closecheck") {
      Status c = (*st)->Close();
      std::printf("[attack15] close on a full disk: %s\n", c.ToString().c_str());
      std::fflush(nullptr);
      ::_exit(c.ok() ? 12 : 13);
    } else if (op == "close") {
      (void)(*st)->Close();
      ::_exit(10);  // the armed point did not kill
    } else {
      ::_exit(11);
    }
  }
  std::fflush(nullptr);
  ::kill(::getpid(), SIGKILL);
  ::_exit(8);
}

// --- Decision 0049: a purge killed before the reaper deleted its files ---

// A purge of carol (alone in shard 2, flushed: table files, and WALs the
// last clean closes listed in WAL_LEDGER) returns its receipt, and the child
// is SIGKILLed right then, with carol's files most likely still on disk.
// Expected: the next open deletes them (RocksDB's obsolete-file scan), no
// alarm of any kind, no tenant damaged, carol stays purged, the other
// tenants read, Verify ok; and again at the open after that (the ledger the
// open rewrote names no WAL that is then gone at or above the floor).
void PurgeKilled(A15* t, bool flush) {
  TestStore& s = t->s;
  // Two clean sessions with carol's writes, so the ledger lists shard 2's WALs.
  for (int i = 0; i < 2; ++i) {
    ASSERT_OK(s->PutCall("carol", MakeCall("x" + std::to_string(i), kAt + 20 + i)));
    ASSERT_OK(s.Reopen());
  }
  s.Close();
  const std::string list = s.tmp.Sub("files_at_kill");
  ASSERT_EQ(t->Child(std::string(flush ? "flush," : "") + "put,purge,list:" + list), "signal 9");
  std::vector<std::string> at_kill;
  {
    std::ifstream in(list);
    for (std::string l; std::getline(in, l);) {
      if (l.find("/shards/0002/") != std::string::npos &&
          (l.size() > 4 &&
           (l.compare(l.size() - 4, 4, ".sst") == 0 || l.compare(l.size() - 4, 4, ".log") == 0))) {
        at_kill.push_back(l);
      }
    }
  }
  std::printf("[attack15] purge killed (%s): %zu table/WAL files of shard 2 left at the kill\n",
              flush ? "flushed" : "not flushed", at_kill.size());
  for (int round = 0; round < 3; ++round) {
    t->QuietOpens(
        "purge killed, round " + std::to_string(round), {true, false}, [&](Store* st, bool ro) {
          auto info = st->DescribeTenant("carol");
          if (info.ok()) {
            EXPECT_EQ(info->state, TenantState::kPurged);
            EXPECT_FALSE(info->damaged) << info->damage;
          }
          EXPECT_FALSE(st->GetCall("carol", "c0", kPartAll).ok()) << "a purged tenant read back";
          t->ExpectAll(st, "acme", "n", 5);
          if (!ro) {
            EXPECT_OK(
                st->PutCall("acme", MakeCall("r" + std::to_string(round), kAt + 300 + round)));
          }
        });
    for (const auto& f : at_kill) {
      if (f.compare(f.size() - 4, 4, ".sst") == 0) {
        EXPECT_FALSE(fs::exists(f)) << "a purged family's table file left: " << f;
      }
    }
  }
}

TEST_F(A15, PurgeKilledBeforeItsFilesAreDeletedIsNoAlarm) { PurgeKilled(this, true); }
TEST_F(A15, UnflushedPurgeKilledBeforeItsFilesAreDeletedIsNoAlarm) { PurgeKilled(this, false); }

// A purge and Close racing (an operator's script purges while the service
// shuts down): whichever wins, no crash, and the next opens raise no alarm;
// carol is either purged (then unreadable) or still whole.
TEST_F(A15, PurgeRacingCloseIsNoAlarm) {
  int purged = 0;
  for (int i = 0; i < 8; ++i) {
    const std::string t = "race" + std::to_string(i);
    ASSERT_OK(s->CreateTenant({t, "", 0}));
    for (int j = 0; j < 40; ++j)
      ASSERT_OK(s->PutCall(t, MakeCall("y" + std::to_string(j), kAt + 40 + j)));
    ASSERT_OK(s->Flush());
    Status purge;
    std::thread th([&] { purge = s->PurgeTenant(t).status(); });
    std::this_thread::sleep_for(std::chrono::microseconds(250 * i));
    Status closed = s->Close();
    th.join();
    std::printf("[attack15] purge racing Close (%d us): purge %s, close %s\n", 250 * i,
                purge.ToString().c_str(), closed.ToString().c_str());
    EXPECT_OK(closed);
    purged += purge.ok();
    s.Close();
    QuietOpens("purge racing close " + t, {true, false}, [&](Store* st, bool) {
      if (purge.ok()) {
        EXPECT_FALSE(st->GetCall(t, "y0", kPartAll).ok()) << "an acknowledged purge undone";
      } else {
        EXPECT_OK(st->GetCall(t, "y0", kPartAll));
      }
    });
    ASSERT_OK(s.Open());
  }
  std::printf("[attack15] purges that won the race against Close: %d of 8\n", purged);
}

// A backup taken right after PurgeTenant returned (the family's files may
// still be on disk, being deleted by the reaper): the restored store opens
// without an alarm, carol is not readable in it, the others are.
TEST_F(A15, BackupWhileADeletionIsPendingRestoresWithoutAlarm) {
  // Several flushed table files, so that the reaper has work when the
  // backup starts (the count pending is printed: timing decides it).
  for (int f = 0; f < 4; ++f) {
    for (int i = 0; i < 500; ++i) {
      ASSERT_OK(s->PutCall("carol", MakeCall("y" + std::to_string(f * 500 + i), kAt + 40 + i)));
    }
    ASSERT_OK(s->Flush());
  }
  testutil::TempDir bak;
  ASSERT_OK(s->PurgeTenant("carol"));
  auto m = s->Metrics();
  ASSERT_OK(m);
  std::printf("[attack15] backup with %u purge deletions pending\n", m->purge_deletions_pending);
  ASSERT_OK(s->Backup(bak.Sub("b"), BackupOptions{}));
  s.Close();
  const std::string restored = s.tmp.Sub("restored");
  ASSERT_OK(Store::Restore(s.options, bak.Sub("b"), restored));
  QuietOpens(
      "restored", {true, false, false},
      [](Store* st, bool) {
        EXPECT_FALSE(st->GetCall("carol", "c0", kPartAll).ok()) << "a purged tenant restored";
      },
      restored);
}

// The operator accepts a loss the ledger found (`tenant accept-damage`),
// then the service crashes and comes back: no alarm again for what was
// accepted; a new loss afterwards (another listed WAL deleted after the
// next crash) is loud again: an accepted loss does not mute the ledger.
TEST_F(A15, AcceptedLossStaysQuietAndALaterLossIsLoud) {
  auto wals = SessionsThenACrash();
  ASSERT_EQ(wals.size(), 5u);
  ASSERT_TRUE(fs::remove(wals[2]));
  ASSERT_OK(s.Open());
  ASSERT_TRUE(Saw("shard_loss"));
  ASSERT_OK(s->AcceptTenantDamage("acme"));
  ASSERT_OK(s->PutCall("acme", MakeCall("after", kAt + 999)));
  s.Close();
  ASSERT_EQ(Child("put"), "signal 9");
  QuietOpens("accepted, then a crash", {true, false}, [](Store* st, bool) {
    for (const char* id : {"s0", "s2", "after"}) EXPECT_OK(st->GetCall("acme", id, kPartAll));
  });
  LaterLossIsLoud();
}

// --- A SIGKILL inside the close's CLOSE_MARK / WAL_LEDGER writes ---

// The close writes CLOSE_MARK then WAL_LEDGER, each with AtomicWrite
// (tmp, fsync, rename, directory fsync). A kill at each step of either
// leaves an old or new file beside an old or new other: the next opens
// must raise no alarm and lose nothing; a later real loss (an older WAL
// deleted after a further crash) must still be loud.
TEST_F(A15, KillInsideTheCloseMarkOrLedgerWriteIsNoAlarm) {
  s.Close();
  int killed = 0;
  for (const char* point : {"atomic_write.after_fsync", "atomic_write.after_rename"}) {
    for (int hit = 1; hit <= 3; ++hit) {
      const std::string res =
          Child(std::string("put,arm:") + point + ":" + std::to_string(hit) + ",close");
      std::printf("[attack15] kill at %s hit %d in close: %s (CLOSE_MARK %s, tmp files: %s%s)\n",
                  point, hit, res.c_str(), fs::exists(s.db + "/CLOSE_MARK") ? "present" : "absent",
                  fs::exists(s.db + "/CLOSE_MARK.tmp") ? "CLOSE_MARK.tmp " : "",
                  fs::exists(s.db + "/WAL_LEDGER.tmp") ? "WAL_LEDGER.tmp" : "");
      killed += res == "signal 9";
      QuietOpens(std::string(point) + " " + std::to_string(hit), {true, false},
                 [this](Store* st, bool) { ExpectAll(st, "acme", "n", 5); });
    }
  }
  EXPECT_GE(killed, 4) << "the scenario: the close passes these points";
  LaterLossIsLoud();
}

// A full disk at close (the operator's 3 a.m. case): Close fails and says
// so; the next opens raise no alarm, every acknowledged call reads; a real
// loss after it (an older WAL deleted after a later crash) is still loud.
TEST_F(A15, FullDiskAtCloseIsNoAlarmAndLosesNothing) {
  s.Close();
  EXPECT_EQ(Child("put,fsize,closecheck"), "exit 13") << "Close on a full disk must fail";
  QuietOpens("after a full disk at close", {true, false, false},
             [this](Store* st, bool) { ExpectAll(st, "acme", "n", 5); });
  LaterLossIsLoud();
}

// The crash loop at 3 a.m.: an open that finds a loss (an older WAL of a
// cleanly closed session deleted after a crash) is SIGKILLed at each step
// of its atomic writes (the ledger rewrite after the loss is recorded, and
// whatever else it writes), again and again. Every next open must still
// report the loss (never forgotten), and the untouched tenants read.
TEST_F(A15, KillsInsideAnOpenThatFoundALossNeverForgetIt) {
  auto wals = SessionsThenACrash();
  ASSERT_EQ(wals.size(), 5u);
  ASSERT_TRUE(fs::remove(wals[2]));
  int killed = 0;
  for (const char* point :
       {"atomic_write.after_fsync", "atomic_write.after_rename", "open.after_shards_opened"}) {
    for (int hit = 1; hit <= 3; ++hit) {
      const std::string res = testutil::RunSelfChild(
          "A15Child.DISABLED_Run",
          {{kEnvDb, s.db},
           {kEnvKeys, s.keys},
           {kEnvOps, "close"},
           {"CALLVAULT_ATTACK15_ARMOPEN", std::string(point) + ":" + std::to_string(hit)}});
      std::printf("[attack15] open with a loss killed at %s hit %d: %s\n", point, hit, res.c_str());
      killed += res == "signal 9";
      seen.clear();
      auto r = OpenMode(/*read_only=*/true);
      ASSERT_TRUE(r.ok()) << r.status().ToString();
      SCOPED_TRACE(std::string(point) + " " + std::to_string(hit));
      EXPECT_CODE((*r)->GetCall("acme", "s1", kPartAll), Code::kCorruption);
      auto v = (*r)->Verify(std::nullopt);
      ASSERT_OK(v);
      EXPECT_FALSE(v->ok()) << point << " " << hit << ": the loss forgotten";
      ExpectAll(r->get(), "bravo", "b");
    }
  }
  // The first open kills at its one atomic write (hit 1) and after its
  // shards opened; the open that completes records the loss, and later
  // opens write nothing (hits 2 and 3 are not reached).
  EXPECT_GE(killed, 2) << "the scenario: the open passes these points";
  seen.clear();
  ASSERT_OK(s.Open());
  EXPECT_CODE(s->GetCall("acme", "s1", kPartAll), Code::kCorruption);
  EXPECT_CODE(s->PutCall("acme", MakeCall("x", kAt + 999)), Code::kCorruption);
  auto info = s->DescribeTenant("acme");
  ASSERT_OK(info);
  EXPECT_TRUE(info->damaged);
  ExpectAll(s.store.get(), "bravo", "b");
}

// A tenant created and written in a cleanly closed session, then a SIGKILLed
// session (no CLOSE_MARK), then the metadata WAL of the clean session
// deleted (its records not flushed yet). Before decision 0042 every open
// succeeded, dave was an "unknown tenant" and the only event was
// `orphan_key`, steering the operator towards destroying the key of an
// acknowledged tenant's data. With the metadata instance in WAL_LEDGER
// (0042), the open still missed it while the instance had never flushed:
// its MANIFEST's replay floor is 0, which 0041's check read as "not known".
// ManifestInfo::replay_floor_read now tells a floor of 0 read whole (no WAL
// was ever deleted, every listed one is needed) from nothing read: the open
// fails kCorruption naming the metadata loss, with a metadata_loss event.
TEST_F(A15, MetadataWalDeletedAfterACrashIsLoud) {
  s.Close();
  ASSERT_OK(s.Open());
  ASSERT_OK(s->CreateTenant({"dave", "", 0}));
  ASSERT_OK(s->PutCall("dave", MakeCall("d0", kAt)));
  s.Close();
  // dave's session's metadata WAL: the newest one when it closed cleanly
  // (every writable open since decision 0042 writes a synced batch, so the
  // crashed child below writes one of its own).
  std::vector<std::string> mw;
  for (const auto& f : FilesWith(s.db + "/meta", ".log")) {
    if (fs::file_size(f) > 0) mw.push_back(f);
  }
  ASSERT_GE(mw.size(), 2u);
  std::sort(mw.begin(), mw.end());
  const std::string daves = mw.back();
  ASSERT_EQ(Child("put"), "signal 9");
  ASSERT_TRUE(fs::exists(daves));
  ASSERT_TRUE(fs::remove(daves));
  for (bool ro : {true, false}) {
    seen.clear();
    auto r = OpenMode(ro);
    PrintEvents(std::string("metadata WAL deleted ") + (ro ? "ro" : "rw"));
    if (!r.ok()) {
      EXPECT_EQ(r.status().code(), Code::kCorruption) << r.status().ToString();
      EXPECT_NE(r.status().message().find("metadata"), std::string::npos) << r.status().ToString();
      continue;
    }
    auto g = (*r)->GetCall("dave", "d0", kPartAll);
    std::printf("[attack15] metadata WAL deleted, %s: dave d0: %s\n", ro ? "ro" : "rw",
                g.ok() ? "OK" : g.status().ToString().c_str());
    EXPECT_TRUE(g.ok() || g.status().code() == Code::kCorruption)
        << "an acknowledged tenant lost: " << g.status().ToString();
    EXPECT_TRUE(g.ok() || Saw("metadata_loss")) << "no metadata_loss event";
    auto v = (*r)->Verify(std::nullopt);
    ASSERT_OK(v);
    EXPECT_TRUE(g.ok() || !v->ok());
  }
}

// CLOSE_MARK lost after a clean close (deleted, as a crash would leave
// none), and the newest WAL then cut by a byte: the ledger still lists its
// size at that close, so the loss is loud without the mark.
TEST_F(A15, NewestWalCutWithTheCloseMarkGoneIsLoudByTheLedger) {
  s.Close();
  ASSERT_TRUE(fs::remove(s.db + "/CLOSE_MARK"));
  auto wals = FilesWith(s.db + "/shards/0000", ".log");
  ASSERT_FALSE(wals.empty());
  fs::resize_file(wals.back(), fs::file_size(wals.back()) - 1);
  for (bool ro : {true, false}) {
    seen.clear();
    auto r = OpenMode(ro);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    PrintEvents(std::string("mark gone, WAL cut ") + (ro ? "ro" : "rw"));
    EXPECT_TRUE(Saw("shard_loss")) << (ro ? "ro" : "rw");
    EXPECT_CODE((*r)->GetCall("acme", "a2", kPartAll), Code::kCorruption);
    auto v = (*r)->Verify(std::nullopt);
    ASSERT_OK(v);
    EXPECT_FALSE(v->ok());
    ExpectAll(r->get(), "bravo", "b");
  }
}

// --- WAL files renamed, duplicated, swapped between shards after a crash ---

enum class Move { kRenamedHigher, kRenamedLower, kSwappedFromBravo, kDuplicatedHigher };

const char* MoveName(Move m) {
  switch (m) {
    case Move::kRenamedHigher:
      return "renamed to a higher number";
    case Move::kRenamedLower:
      return "renamed to a lower number";
    case Move::kSwappedFromBravo:
      return "replaced by shard 1's WAL of the same session";
    case Move::kDuplicatedHigher:
      return "duplicated under a higher number";
  }
  return "?";
}

std::string WalName(uint64_t n) {
  char b[32];
  std::snprintf(b, sizeof(b), "%06llu.log", static_cast<unsigned long long>(n));
  return b;
}

// s1's WAL (a cleanly closed session's, listed in WAL_LEDGER) moved after
// a crash. Expected: s1 reads, or its loss is loud (kCorruption, an audit
// event, Verify not ok); a duplicate loses nothing and must raise no alarm
// that names a loss, and every call reads.
void MovedWal(A15* t, Move how) {
  TestStore& s = t->s;
  auto wals = t->SessionsThenACrash();
  ASSERT_EQ(wals.size(), 5u);
  const std::string victim = wals[2];  // s1's
  const fs::path dir = fs::path(victim).parent_path();
  const uint64_t num = std::stoull(fs::path(victim).stem().string());
  switch (how) {
    case Move::kRenamedHigher:
      fs::rename(victim, dir / WalName(num + 1000));
      break;
    case Move::kRenamedLower:
      fs::rename(victim, dir / WalName(1));
      break;
    case Move::kDuplicatedHigher:
      fs::copy_file(victim, dir / WalName(num + 1000));
      break;
    case Move::kSwappedFromBravo: {
      std::vector<std::string> bw;
      for (const auto& f : FilesWith(s.db + "/shards/0001", ".log")) {
        if (fs::file_size(f) > 0) bw.push_back(f);
      }
      ASSERT_EQ(bw.size(), 4u);  // b's, s0's, s1's, s2's (the crashed child wrote acme only)
      // Both shards ran the same sessions, so the file is about as long
      // as the listed one (a byte more or less, run to run): zero-padded
      // up to the listed size when shorter, so the ledger's size check
      // passes every run (trailing zeros read as a torn tail).
      const uint64_t listed = fs::file_size(victim);
      fs::copy_file(bw[2], victim, fs::copy_options::overwrite_existing);
      if (fs::file_size(victim) < listed) fs::resize_file(victim, listed);
      break;
    }
  }
  for (bool ro : {true, false, false}) {
    t->seen.clear();
    auto r = t->OpenMode(ro);
    std::printf("[attack15] s1's WAL %s, %s open: %s\n", MoveName(how), ro ? "ro" : "rw",
                r.ok() ? "OK" : r.status().ToString().c_str());
    t->PrintEvents(MoveName(how));
    if (!r.ok()) {
      EXPECT_EQ(r.status().code(), Code::kCorruption) << r.status().ToString();
      continue;
    }
    auto g = (*r)->GetCall("acme", "s1", kPartAll);
    std::printf("[attack15]   acme s1: %s\n", g.ok() ? "OK" : g.status().ToString().c_str());
    auto v = (*r)->Verify(std::nullopt);
    ASSERT_OK(v);
    std::printf("[attack15]   verify %s (%ju records ok, %ju failed)\n", v->ok() ? "ok" : "not ok",
                static_cast<uintmax_t>(v->records_ok), static_cast<uintmax_t>(v->records_failed));
    if (how == Move::kDuplicatedHigher) {
      // Loud: a planted file of the same history, named as such; nothing
      // is marked lost (the shard_loss path would tell the operator to
      // purge or accept a loss that did not happen).
      EXPECT_TRUE(g.ok() || !v->ok()) << g.status().ToString();
      EXPECT_FALSE(t->Saw("shard_loss")) << "a false loss: nothing was lost";
    } else {
      EXPECT_TRUE(g.ok() || (g.status().code() == Code::kCorruption && !v->ok()))
          << "an acknowledged call lost silently: " << g.status().ToString();
    }
    // Calls of the other sessions and of the other shard are untouched.
    for (const char* id : {"s0", "s2", "n0", "n4"}) {
      auto o = (*r)->GetCall("acme", id, kPartAll);
      EXPECT_TRUE(o.ok() || o.status().code() == Code::kCorruption)
          << id << ": " << o.status().ToString();
    }
    t->ExpectAll(r->get(), "bravo", "b");
    t->ExpectAll(r->get(), "bravo", "s");
    // Bravo's writes replayed into acme's shard must never read as acme's.
    EXPECT_FALSE((*r)->GetCall("bravo", "s1", kPartAll).status().code() == Code::kNotFound);
    if (!ro) {
      ASSERT_OK((*r)->Close());
    }
  }
  // The operator does what the message says (the planted or renamed file
  // moved out, or back): nothing was lost in these two cases, so every
  // call reads, no tenant stays damaged, Verify ok, without accept-damage.
  if (how == Move::kRenamedHigher || how == Move::kDuplicatedHigher) {
    if (how == Move::kRenamedHigher) {
      fs::rename(dir / WalName(num + 1000), victim);
    } else {
      fs::remove(dir / WalName(num + 1000));
    }
    t->seen.clear();
    auto r = t->OpenMode(false);
    ASSERT_OK(r);
    t->PrintEvents(std::string(MoveName(how)) + ", undone");
    EXPECT_FALSE(t->Alarm());
    for (const char* id : {"a0", "s0", "s1", "s2", "n0", "n4"}) {
      auto o = (*r)->GetCall("acme", id, kPartAll);
      EXPECT_TRUE(o.ok()) << MoveName(how) << ", undone: " << id << ": " << o.status().ToString();
    }
    auto v = (*r)->Verify(std::nullopt);
    ASSERT_OK(v);
    EXPECT_TRUE(v->ok());
  }
}

TEST_F(A15, WalRenamedHigherAfterACrashIsNotSilent) { MovedWal(this, Move::kRenamedHigher); }
TEST_F(A15, WalRenamedLowerAfterACrashIsNotSilent) { MovedWal(this, Move::kRenamedLower); }
// s1's WAL of shard 0 replaced by shard 1's WAL of the same session (same
// name; zero-padded to the listed size when a byte shorter). The two shards
// ran the same sessions, so their sequence numbers line up exactly and the
// families have the same column family id: the scan sees no gap and no
// step back, the ledger's size check passes, and before decision 0050
// RocksDB replayed bravo's write into acme's family silently (acme s1
// kNotFound, no event; only Verify failed). Now the ledger's edge digest
// differs and the scan finds no damaged record in the file: shard 0 does
// not open (shard_damaged), acme answers kCorruption, bravo serves.
TEST_F(A15, WalSwappedFromAnotherShardAfterACrashIsNotSilent) {
  MovedWal(this, Move::kSwappedFromBravo);
}
TEST_F(A15, WalDuplicatedUnderAHigherNumberIsLoudButNoLoss) {
  MovedWal(this, Move::kDuplicatedHigher);
}

// --- Read-only opens of damaged stores: loud, and nothing on disk changes ---

std::map<std::string, std::string> Tree(const std::string& root) {
  std::map<std::string, std::string> m;
  for (const auto& e : fs::recursive_directory_iterator(root)) {
    const std::string p = e.path().string();
    if (e.is_symlink()) {
      m[p] = "-> " + fs::read_symlink(e.path()).string();
    } else if (e.is_regular_file()) {
      m[p] = testutil::ReadFile(p);
    } else {
      m[p] = "<dir>";
    }
  }
  return m;
}

void ExpectSameTree(const std::map<std::string, std::string>& a,
                    const std::map<std::string, std::string>& b, const std::string& what) {
  for (const auto& [p, c] : a) {
    auto it = b.find(p);
    if (it == b.end()) {
      ADD_FAILURE() << what << ": removed " << p;
    } else if (it->second != c) {
      ADD_FAILURE() << what << ": changed " << p;
    }
  }
  for (const auto& [p, c] : b) {
    if (a.count(p) == 0) ADD_FAILURE() << what << ": created " << p;
  }
}

enum class Damage {
  kWalDeletedAfterCrash,
  kNewestWalCutAfterClose,
  kWalFlippedAfterClose,
  kLedgerCut
};

void ReadOnlyOfDamaged(A15* t, Damage d, const std::string& what) {
  TestStore& s = t->s;
  if (d == Damage::kWalDeletedAfterCrash) {
    auto wals = t->SessionsThenACrash();
    ASSERT_EQ(wals.size(), 5u);
    ASSERT_TRUE(fs::remove(wals[2]));
  } else {
    for (int i = 0; i < 20; ++i)
      ASSERT_OK(s->PutCall("acme", MakeCall("m" + std::to_string(i), kAt + 50 + i)));
    s.Close();
    auto wals = FilesWith(s.db + "/shards/0000", ".log");
    ASSERT_FALSE(wals.empty());
    const std::string w = wals.back();
    if (d == Damage::kNewestWalCutAfterClose) fs::resize_file(w, fs::file_size(w) - 1);
    if (d == Damage::kWalFlippedAfterClose) damage::XorByte(w, fs::file_size(w) / 3);
    if (d == Damage::kLedgerCut)
      fs::resize_file(s.db + "/WAL_LEDGER", fs::file_size(s.db + "/WAL_LEDGER") - 3);
  }
  const auto before = Tree(s.db);
  for (int i = 0; i < 2; ++i) {
    t->seen.clear();
    auto r = t->OpenMode(/*read_only=*/true);
    std::printf("[attack15] read-only open of %s: %s\n", what.c_str(),
                r.ok() ? "OK" : r.status().ToString().c_str());
    t->PrintEvents("ro " + what);
    if (!r.ok()) {
      EXPECT_EQ(r.status().code(), Code::kCorruption) << r.status().ToString();
    } else {
      auto v = (*r)->Verify(std::nullopt);
      ASSERT_OK(v);
      EXPECT_FALSE(v->ok()) << what << ": verify ok on a damaged store";
      EXPECT_TRUE(t->Alarm()) << what << ": no audit callback";
      auto l = (*r)->ListCalls("acme", ListQuery{});
      EXPECT_FALSE(l.ok()) << what << ": acme listed as if whole";
    }
  }
  // The operator's read-only commands (docs/cli.md: they write nothing but
  // a damage report of a tenant's files, which WAL damage is not).
  const std::string cli = std::string(CALLVAULT_BIN) + " --db " + s.db + " --keys " + s.keys + " ";
  std::string out;
  const int verify = testutil::RunShell(cli + "verify 2>&1", &out);
  std::printf("[attack15] callvault verify of %s: exit %d\n", what.c_str(), verify);
  EXPECT_EQ(verify, 76) << what << ": " << out;
  out.clear();
  const int list = testutil::RunShell(cli + "call list acme 2>&1", &out);
  std::printf("[attack15] callvault call list acme of %s: exit %d: %s\n", what.c_str(), list,
              out.c_str());
  EXPECT_EQ(list, 76) << what << ": " << out;
  ExpectSameTree(before, Tree(s.db), what);
}

TEST_F(A15, ReadOnlyOpenOfAStoreWithADeletedWalIsLoudAndChangesNothing) {
  ReadOnlyOfDamaged(this, Damage::kWalDeletedAfterCrash, "older WAL deleted after a crash");
}
TEST_F(A15, ReadOnlyOpenOfAStoreWithACutWalIsLoudAndChangesNothing) {
  ReadOnlyOfDamaged(this, Damage::kNewestWalCutAfterClose, "newest WAL cut after a clean close");
}
TEST_F(A15, ReadOnlyOpenOfAStoreWithAFlippedWalIsLoudAndChangesNothing) {
  ReadOnlyOfDamaged(this, Damage::kWalFlippedAfterClose, "WAL byte flipped after a clean close");
}
TEST_F(A15, ReadOnlyOpenOfAStoreWithACutLedgerIsLoudAndChangesNothing) {
  ReadOnlyOfDamaged(this, Damage::kLedgerCut, "WAL_LEDGER cut");
}

}  // namespace
}  // namespace callvault
