// Session 14 attack on issue 11's WAL ledger with head digests (decision
// 0050, amending 0040, 0041, 0042), as an operator at 3 a.m. and as a
// storage engineer with a copy of a store. Two kinds of result:
//  1. false alarms: normal operation (clean closes and SIGKILLed sessions
//     mixed with flushes, tenant create/purge, key rotation, recordings,
//     backup and restore, a read-only open beside a live writer, a WAL
//     repaired by the damage path, a full disk, older or v2 ledgers put
//     back) must open quietly with every acknowledged call readable;
//  2. silent losses: a listed WAL replaced by another file of the same
//     length (same shard, another session; another store), a WAL whose
//     first 32 KiB are intact and whose rest is not, ledgers deleted or
//     taken from elsewhere.
// Builds on attack15_test.cc (same store shape, same child-process crash).
#include <gtest/gtest.h>
#include <rocksdb/env.h>
#include <rocksdb/file_system.h>
#include <sodium.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
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
#include "callvault/recording.h"
#include "callvault/store.h"
#include "engine/close_mark.h"
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

std::string ReadWholeFileOr(const std::string& p) { return testutil::ReadWholeFile(p); }
std::string ReadAll(const std::string& p) { return testutil::ReadWholeFile(p); }
void WriteAll(const std::string& p, const std::string& bytes) {
  std::ofstream o(p, std::ios::binary | std::ios::trunc);
  o << bytes;
}
constexpr char kEnvDb[] = "CALLVAULT_ATTACK16_DB";
constexpr char kEnvKeys[] = "CALLVAULT_ATTACK16_KEYS";
constexpr char kEnvPerShard[] = "CALLVAULT_ATTACK16_PER_SHARD";
// What the child does, comma-separated: put:<tenant>:<prefix> (5 calls
// <prefix>0-4), flush, accept:<tenant> (AcceptTenantDamage), fsize (file writes past byte 64 fail
// from now on), closecheck (exit 12 if Close succeeded, 13 if it failed); then SIGKILL.
constexpr char kEnvOps[] = "CALLVAULT_ATTACK16_OPS";
// Set: the child's file writes fail from before its open on (fsize).
constexpr char kEnvFullBeforeOpen[] = "CALLVAULT_ATTACK16_FULL_BEFORE_OPEN";

std::vector<std::string> SplitOn(const std::string& s, char sep) {
  std::vector<std::string> v;
  size_t b = 0;
  while (b <= s.size()) {
    size_t e = s.find(sep, b);
    if (e == std::string::npos) e = s.size();
    if (e > b) v.push_back(s.substr(b, e - b));
    b = e + 1;
  }
  return v;
}

void FullDisk() {
  // A full disk, as near as a child can make one: every write past byte
  // 64 of any file fails (EFBIG; SIGXFSZ ignored).
  std::signal(SIGXFSZ, SIG_IGN);
  rlimit lim;
  lim.rlim_cur = lim.rlim_max = 64;
  if (::setrlimit(RLIMIT_FSIZE, &lim) != 0) ::_exit(9);
}

TEST(A16Child, DISABLED_Run) {
  const char* db = std::getenv(kEnvDb);
  const char* keys = std::getenv(kEnvKeys);
  const char* ops = std::getenv(kEnvOps);
  const char* per = std::getenv(kEnvPerShard);
  if (db == nullptr || keys == nullptr || ops == nullptr || per == nullptr) GTEST_SKIP();
  auto kp = NewFileKeyProvider(keys);
  if (!kp.ok()) ::_exit(3);
  Options o = testutil::DefaultOptions(*kp);
  o.max_tenants_per_shard = static_cast<uint32_t>(std::atoi(per));
  o.create_if_missing = false;
  if (std::getenv(kEnvFullBeforeOpen) != nullptr) FullDisk();
  auto st = Store::Open(o, db);
  if (!st.ok()) {
    std::printf("[attack16] child open: %s\n", st.status().ToString().c_str());
    std::fflush(nullptr);
    ::_exit(4);
  }
  for (const auto& op : SplitOn(ops, ',')) {
    const auto f = SplitOn(op, ':');
    if (f[0] == "put" && f.size() == 3) {
      for (int i = 0; i < 5; ++i) {
        if (!(*st)->PutCall(f[1], MakeCall(f[2] + std::to_string(i), kAt + 100 + i)).ok())
          ::_exit(5);
      }
    } else if (op == "flush") {
      if (!(*st)->Flush().ok()) ::_exit(6);
    } else if (f[0] == "accept" && f.size() == 2) {
      // A tenant that is not damaged is fine (kFailedPrecondition).
      const Status a = (*st)->AcceptTenantDamage(f[1]);
      if (!a.ok() && a.code() != Code::kFailedPrecondition) ::_exit(7);
    } else if (op == "fsize") {
      FullDisk();
    } else if (op == "closecheck") {
      Status c = (*st)->Close();
      std::printf("[attack16] child close: %s\n", c.ToString().c_str());
      std::fflush(nullptr);
      ::_exit(c.ok() ? 12 : 13);
    } else {
      ::_exit(11);
    }
  }
  std::fflush(nullptr);
  ::kill(::getpid(), SIGKILL);
  ::_exit(8);
}

// acme, bravo, carol with 3 calls each (a0-a2, b0-b2, c0-c2); by default
// one tenant per shard (acme 0, bravo 1, carol 2). Every acknowledged call
// is kept in `want`; every audit event in `seen`.
struct A16 : ::testing::Test, damage::AuditRecorder {
  TestStore s;
  std::map<std::string, std::vector<std::string>> want;
  uint32_t per_shard = 1;

  void SetUp() override { Build(&s, 1); }
  void Build(TestStore* t, uint32_t per) {
    per_shard = per;
    t->options.max_tenants_per_shard = per;
    RecordInto(&t->options);
    ASSERT_OK(t->Open());
    for (const char* n : {"acme", "bravo", "carol"}) ASSERT_OK((*t)->CreateTenant({n, "", 0}));
    for (int i = 0; i < 3; ++i) {
      for (const char* n : {"acme", "bravo", "carol"})
        Put(t, n, std::string(1, n[0]) + std::to_string(i), i);
    }
    t->options.create_if_missing = false;
  }
  void Put(TestStore* t, const std::string& tenant, const std::string& id, int64_t at) {
    ASSERT_OK((*t)->PutCall(tenant, MakeCall(id, kAt + at)));
    want[tenant].push_back(id);
  }
  void Put(const std::string& tenant, const std::string& id, int64_t at = 7) {
    Put(&s, tenant, id, at);
  }
  bool Alarm() {
    return Saw("shard_loss") || Saw("wal_damage") || Saw("metadata_loss") || Saw("file_damage") ||
           Saw("tenant_damaged") || Saw("shard_damaged");
  }
  void PrintEvents(const std::string& what) {
    for (const auto& k : Kinds()) std::printf("[attack16] %s: event %s\n", what.c_str(), k.c_str());
  }
  Result<std::unique_ptr<Store>> OpenMode(bool read_only, const std::string& db = "") {
    Options o = s.options;
    o.read_only = read_only;
    o.create_if_missing = false;
    return Store::Open(o, db.empty() ? s.db : db);
  }
  // A child on `db` (the store's when empty) that runs `ops`, then dies of SIGKILL.
  std::string Child(const std::string& ops, const std::string& db = "",
                    bool full_before_open = false) {
    std::vector<std::pair<std::string, std::string>> env = {
        {kEnvDb, db.empty() ? s.db : db},
        {kEnvKeys, s.keys},
        {kEnvOps, ops},
        {kEnvPerShard, std::to_string(per_shard)}};
    if (full_before_open) env.emplace_back(kEnvFullBeforeOpen, "1");
    return testutil::RunSelfChild("A16Child.DISABLED_Run", env);
  }
  // A crashed session: the child puts 5 calls of `tenant` (<prefix>0-4),
  // acknowledged, and is SIGKILLed.
  void Crash(const std::string& tenant, const std::string& prefix, const std::string& db = "",
             const std::string& more = "") {
    ASSERT_EQ(Child(more + "put:" + tenant + ":" + prefix, db), "signal 9");
    for (int i = 0; i < 5; ++i) want[tenant].push_back(prefix + std::to_string(i));
  }
  void ExpectWanted(Store* st, const std::string& what) {
    for (const auto& [t, ids] : want) {
      for (const auto& id : ids) {
        auto g = st->GetCall(t, id, kPartAll);
        EXPECT_TRUE(g.ok()) << what << ": " << t << " " << id << ": " << g.status().ToString();
      }
    }
  }
  // Opens `db` once per entry of `modes` (true: read-only), each time
  // expecting no alarm, every call of `want` readable, `check` to pass and
  // Verify ok; a writable store is closed with Close().
  void QuietOpens(const std::string& what, std::initializer_list<bool> modes,
                  const std::function<void(Store*, bool)>& check = nullptr,
                  const std::string& db = "") {
    for (bool ro : modes) {
      const std::string w = what + (ro ? " (read-only)" : " (writable)");
      SCOPED_TRACE(w);
      seen.clear();
      auto r = OpenMode(ro, db);
      ASSERT_TRUE(r.ok()) << w << ": " << r.status().ToString();
      PrintEvents(w);
      EXPECT_FALSE(Alarm()) << w << ": a false alarm";
      ExpectWanted(r->get(), w);
      if (check) check(r->get(), ro);
      auto v = (*r)->Verify(std::nullopt);
      ASSERT_OK(v);
      EXPECT_TRUE(v->ok()) << w;
      if (!ro) {
        ASSERT_OK((*r)->Close());
      }
    }
  }
  // The non-empty WAL files of shard `i` of `db`, by name.
  std::vector<std::string> Wals(uint32_t i, const std::string& db = "") {
    char d[16];
    std::snprintf(d, sizeof(d), "%04u", i);
    std::vector<std::string> v;
    for (const auto& f : FilesWith((db.empty() ? s.db : db) + "/shards/" + d, ".log")) {
      if (fs::file_size(f) > 0) v.push_back(f);
    }
    return v;
  }
  // Three sessions that each put one acme and one bravo call (s0-s2) and
  // close cleanly, then a SIGKILLed one that puts acme n0-n4: shard 0's
  // WALs are a's, s0's, s1's, s2's, n's (one tenant per shard).
  void SessionsThenACrash() {
    s.Close();
    for (int i = 0; i < 3; ++i) {
      ASSERT_OK(s.Open());
      Put("acme", "s" + std::to_string(i), 10 + i);
      Put("bravo", "s" + std::to_string(i), 10 + i);
      s.Close();
    }
    Crash("acme", "n");
    ASSERT_FALSE(fs::exists(s.db + "/CLOSE_MARK"));
  }
  // Every open of the store after a damage: loud, or every call of `want`
  // reads (nothing lost). `what` is printed with the outcome.
  void NotSilent(const std::string& what,
                 std::initializer_list<bool> modes = {true, false, false}) {
    bool alarmed = false;
    for (bool ro : modes) {
      const std::string w = what + (ro ? " (read-only)" : " (writable)");
      SCOPED_TRACE(w);
      seen.clear();
      auto r = OpenMode(ro);
      std::printf("[attack16] %s: open %s\n", w.c_str(),
                  r.ok() ? "OK" : r.status().ToString().c_str());
      PrintEvents(w);
      if (!r.ok()) {
        EXPECT_EQ(r.status().code(), Code::kCorruption) << r.status().ToString();
        continue;
      }
      int lost = 0, damaged = 0;
      for (const auto& [t, ids] : want) {
        for (const auto& id : ids) {
          auto g = (*r)->GetCall(t, id, kPartAll);
          if (g.ok()) continue;
          if (g.status().code() == Code::kCorruption) {
            ++damaged;
          } else if (++lost <= 3) {
            std::printf("[attack16]   %s %s: %s\n", t.c_str(), id.c_str(),
                        g.status().ToString().c_str());
          }
        }
      }
      auto v = (*r)->Verify(std::nullopt);
      ASSERT_OK(v);
      std::string marked;
      for (const auto& [t, ids] : want) {
        auto info = (*r)->DescribeTenant(t);
        if (info.ok() && info->damaged) marked += " " + t;
      }
      std::printf("[attack16]   %d call(s) kNotFound, %d kCorruption; verify %s; damaged:%s\n",
                  lost, damaged, v->ok() ? "ok" : "not ok",
                  marked.empty() ? " none" : marked.c_str());
      EXPECT_EQ(lost, 0) << w << ": acknowledged calls lost without an error";
      // The open that finds the loss reports it; later ones serve the
      // tenants it marked damaged (kCorruption).
      alarmed = alarmed || Alarm();
      if (lost + damaged > 0) {
        EXPECT_TRUE(alarmed) << w << ": calls lost and no audit event";
        EXPECT_FALSE(v->ok()) << w << ": calls lost and Verify ok";
      }
      if (!ro) {
        ASSERT_OK((*r)->Close());
      }
    }
  }
};

// A second store beside the test's (another store, a move's destination).
struct Peer : A16 {
  void TestBody() override {}
};

// --- 1. False alarms ---------------------------------------------------

// Sessions that close cleanly and sessions that are SIGKILLed, mixed with
// flushes (in the parent and in a crashed child), tenant create and purge,
// key rotation and recordings; after every step a read-only and a writable
// open: no alarm, every acknowledged call reads, Verify ok.
TEST_F(A16, MixedSessionsCrashesFlushesPurgesRotationsRaiseNoAlarm) {
  for (int round = 0; round < 4; ++round) {
    const std::string r = std::to_string(round);
    Put("acme", "r" + r, 20 + round);
    Put("bravo", "r" + r, 20 + round);
    switch (round) {
      case 0:
        ASSERT_OK(s->Flush());
        break;
      case 1: {
        ASSERT_OK(s->CreateTenant({"tmp" + r, "", 0}));
        Put("tmp" + r, "x0");
        ASSERT_OK(s->PurgeTenant("tmp" + r));
        want.erase("tmp" + r);
        auto rot = s->RotateTenantKey("bravo");
        ASSERT_TRUE(rot.ok()) << rot.status().ToString();
        break;
      }
      case 2: {
        auto w =
            s->CreateRecording("acme", "a0", {.recording_id = "rec", .content_type = "audio/mpeg"});
        ASSERT_OK(w);
        ASSERT_OK((*w)->Append(std::string(100000, 'r')));
        ASSERT_OK((*w)->Finish());
        break;
      }
      case 3:
        ASSERT_OK(s->PurgeTenant("carol"));
        want.erase("carol");
        ASSERT_OK(s->RotateTenantKey("acme"));
        break;
    }
    s.Close();
    QuietOpens("round " + r + " clean close", {true});
    Crash(round % 2 ? "bravo" : "acme", "k" + r, "", round == 1 ? "flush," : "");
    QuietOpens("round " + r + " crash", {true, false}, [&](Store* st, bool) {
      if (round >= 2) {
        auto l = st->ListRecordings("acme", "a0");
        ASSERT_OK(l);
        EXPECT_EQ(l->size(), 1u);
      }
    });
    ASSERT_OK(s.Open());
  }
}

// A backup, restored; the restored store lives through clean closes and
// crashes (its ledger starts at its first clean close): no alarm.
TEST_F(A16, RestoredStoreThroughSessionsAndCrashesRaisesNoAlarm) {
  ASSERT_OK(s->Flush());
  Put("acme", "u0");
  testutil::TempDir bak;
  ASSERT_OK(s->Backup(bak.Sub("b"), BackupOptions{}));
  s.Close();
  const std::string restored = s.tmp.Sub("restored");
  ASSERT_OK(Store::Restore(s.options, bak.Sub("b"), restored));
  QuietOpens("restored", {true, false}, nullptr, restored);
  for (int i = 0; i < 2; ++i) {
    {
      auto r = OpenMode(false, restored);
      ASSERT_OK(r);
      ASSERT_OK((*r)->PutCall("acme", MakeCall("v" + std::to_string(i), kAt + 30 + i)));
      want["acme"].push_back("v" + std::to_string(i));
      ASSERT_OK((*r)->Close());
    }
    Crash("acme", "w" + std::to_string(i), restored);
    QuietOpens("restored, crash " + std::to_string(i), {true, false}, nullptr, restored);
  }
}

// A read-only open (an operator's `verify`) beside the live writer, with
// writes before and after it, then the writer closes and later crashes: no
// alarm anywhere.
TEST_F(A16, ReadOnlyOpenBesideALiveWriterRaisesNoAlarm) {
  Put("acme", "l0");
  {
    seen.clear();
    auto ro = OpenMode(true);
    ASSERT_TRUE(ro.ok()) << ro.status().ToString();
    PrintEvents("read-only beside the writer");
    EXPECT_FALSE(Alarm());
    auto v = (*ro)->Verify(std::nullopt);
    ASSERT_OK(v);
    EXPECT_TRUE(v->ok());
    Put("acme", "l1");
    ASSERT_OK(s->Flush());
    Put("bravo", "l2");
  }
  s.Close();
  QuietOpens("after the read-only open", {true, false});
  Crash("bravo", "k");
  QuietOpens("after a crash", {true, false, false});
}

// The damage path repairs a WAL (a byte flipped in an older, listed WAL
// after a crash; the kept copy `.damaged` goes once the damage is
// recorded): the tenant hit is damaged and accepted; afterwards crashes
// and opens raise no new alarm. Two tenants share shard 0 (acme and
// bravo); s1's WAL holds acme's writes only.
void RepairedWal(A16* t, bool check_containment) {
  TestStore& s = t->s;
  s.Close();
  for (int i = 0; i < 3; ++i) {
    ASSERT_OK(s.Open());
    t->Put("acme", "s" + std::to_string(i), 10 + i);
    if (i != 1) t->Put("bravo", "s" + std::to_string(i), 10 + i);
    s.Close();
  }
  t->Crash("acme", "n");
  auto wals = t->Wals(0);
  ASSERT_EQ(wals.size(), 5u);
  const std::string victim = wals[2];  // s1's: acme's one write
  damage::XorByte(victim, fs::file_size(victim) / 2);
  t->seen.clear();
  {
    auto r = t->OpenMode(false);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    t->PrintEvents("flipped byte in s1's WAL (rw)");
    EXPECT_TRUE(t->Saw("wal_damage") || t->Saw("shard_loss"));
    EXPECT_CODE((*r)->GetCall("acme", "s1", kPartAll), Code::kCorruption);
    if (check_containment) {
      // Decision 0014: damage is contained to the tenants whose records it
      // hit. bravo wrote nothing in s1's WAL.
      EXPECT_FALSE(t->Saw("shard_loss"))
          << "a flipped record reported as a loss of the whole shard";
      auto b = (*r)->DescribeTenant("bravo");
      ASSERT_OK(b);
      EXPECT_FALSE(b->damaged) << "bravo damaged by acme's record: " << b->damage;
      for (const char* id : {"b0", "s0", "s2"}) EXPECT_OK((*r)->GetCall("bravo", id, kPartAll));
    }
    ASSERT_OK((*r)->AcceptTenantDamage("acme"));
    if (!check_containment) (void)(*r)->AcceptTenantDamage("bravo");
    ASSERT_OK((*r)->Close());
  }
  EXPECT_FALSE(fs::exists(victim + ".damaged"))
      << "the kept copy stays after the damage was recorded";
  auto& a = t->want["acme"];
  a.erase(std::remove(a.begin(), a.end(), "s1"), a.end());
  t->QuietOpens("repaired WAL, damage accepted", {true, false});
  t->Crash("acme", "m");
  t->QuietOpens("repaired WAL, then a crash", {true, false, false});
}

// acme and bravo in shard 0, carol in shard 1.
struct A16Two : A16 {
  void SetUp() override { Build(&s, 2); }
};

TEST_F(A16Two, RepairedWalRaisesNoAlarmOnceItsDamageIsRecorded) { RepairedWal(this, false); }

// The same repair made by an open that is SIGKILLed after it recorded the
// damage (the operator's accept-damage done in that session): no clean
// close rewrites the ledger. bravo is accepted too when marked (the
// shard_loss of the finding below marks it). Seen when written: the
// repairing open leaves none of the listed WALs (shard 0 holds only its
// new, empty WAL after it), so the next opens skip them as below the
// floor; the open's ledger refresh is not what keeps them quiet here (the
// test passes with it disabled).
TEST_F(A16Two, RepairedWalRaisesNoAlarmAfterACrashOnceItsDamageIsRecorded) {
  s.Close();
  for (int i = 0; i < 3; ++i) {
    ASSERT_OK(s.Open());
    Put("acme", "s" + std::to_string(i), 10 + i);
    if (i != 1) Put("bravo", "s" + std::to_string(i), 10 + i);
    s.Close();
  }
  Crash("acme", "n");
  auto wals = Wals(0);
  ASSERT_EQ(wals.size(), 5u);
  damage::XorByte(wals[2], fs::file_size(wals[2]) / 2);
  ASSERT_EQ(Child("accept:acme,accept:bravo"), "signal 9");
  EXPECT_FALSE(fs::exists(wals[2] + ".damaged"))
      << "the kept copy stays after the damage was recorded";
  auto& a = want["acme"];
  a.erase(std::remove(a.begin(), a.end(), "s1"), a.end());
  QuietOpens("repaired by a crashed open", {true, false, false});
}

// FOUND by attack16 and fixed in the same session (decision 0050: edge
// digests, the WAL scan's verdict first, a replaced file refuses the shard).
// What was observed before the fix (decision 0050 regresses decision 0014's containment): one bit
// flipped in the middle of s1's WAL of shard 0 (listed in WAL_LEDGER; its
// only records are acme's; bravo shares the shard), after a crash.
// Expected: `wal_damage` for acme only (as before 0050: the size check
// passes, the scan attributes the damaged record); bravo undamaged and
// readable. Observed (every open, ro and rw): besides `wal_damage ...
// tenants marked damaged: internal_ids=1`, `shard_loss: shard 0:
// acknowledged writes lost: WAL file 000018.log is not the file the last
// clean close left: its first 1819 bytes differ (by WAL_LEDGER; another
// file put in its place); tenants marked damaged: internal_ids=1,2`:
// bravo is damaged (every call kCorruption until accept-damage) and the
// message sends the operator looking for a file someone put there. The
// ledger check (Shard::Open, CheckMarkFiles) runs before the WAL scan, so
// the repair's kept copy `.damaged` that the head check accepts does not
// exist yet (and never does in a read-only open). A head mismatch in a file
// the scan finds damaged records in is the scan's damage, not another file.
TEST_F(A16Two, FlippedByteInAListedWalIsContainedToTheTenantItHit) {
  RepairedWal(this, true);
}

// Full disks: a session whose writes fail from the middle on (SIGKILLed
// then), one whose Close fails, and one that cannot open at all; each
// followed by opens that raise nothing and lose nothing.
TEST_F(A16, FullDisksRaiseNoAlarmAndLoseNothing) {
  s.Close();
  Crash("acme", "f", "", "");
  ASSERT_EQ(Child("put:bravo:g,fsize"), "signal 9");
  for (int i = 0; i < 5; ++i) want["bravo"].push_back("g" + std::to_string(i));
  QuietOpens("writes failing, then a kill", {true, false});
  EXPECT_EQ(Child("put:acme:h,fsize,closecheck"), "exit 13");
  for (int i = 0; i < 5; ++i) want["acme"].push_back("h" + std::to_string(i));
  QuietOpens("close on a full disk", {true, false});
  const std::string full = Child("put:acme:z", "", /*full_before_open=*/true);
  std::printf("[attack16] open on a full disk: %s\n", full.c_str());
  if (full == "signal 9") {
    for (int i = 0; i < 5; ++i) want["acme"].push_back("z" + std::to_string(i));
  }
  QuietOpens("open on a full disk", {true, false, false});
}

// A torn tail (the write in flight at a crash: a partial record appended
// to the crashed session's WAL) is quiet (0014); the next clean close lists
// that WAL with its torn bytes and their head; later sessions, crashes and
// flushes must stay quiet with it listed.
TEST_F(A16, TornTailListedByALaterCloseRaisesNoAlarm) {
  s.Close();
  Crash("acme", "t");
  auto wals = Wals(0);
  ASSERT_FALSE(wals.empty());
  {
    // A record header claiming 200 bytes, and 40 of them: cut mid-write.
    std::ofstream o(wals.back(), std::ios::binary | std::ios::app);
    const char header[7] = {'\x11', '\x22', '\x33', '\x44', '\xc8', '\x00', '\x01'};
    o.write(header, sizeof(header));
    o << std::string(40, 'x');
  }
  QuietOpens("torn tail", {true, false});  // the writable open's close lists it
  Crash("bravo", "u");
  QuietOpens("torn tail listed, then a crash", {true, false});
  ASSERT_OK(s.Open());
  Put("acme", "after-torn");
  ASSERT_OK(s->Flush());
  s.Close();
  Crash("acme", "v");
  QuietOpens("torn tail listed, a flush, a crash", {true, false});
}

// WAL_LEDGER removed the way the docs allow (after a clean close, to go
// back to an older build, or when it alone was damaged), then sessions and
// crashes with this build: quiet, and the next clean close writes a v3
// ledger that sees a loss again.
TEST_F(A16, LedgerRemovedKnowinglyThenSessionsRaiseNoAlarm) {
  s.Close();
  ASSERT_TRUE(fs::remove(s.db + "/WAL_LEDGER"));
  QuietOpens("ledger removed", {true, false});
  EXPECT_EQ(ReadWholeFileOr(s.db + "/WAL_LEDGER").rfind("callvault wal ledger v3\n", 0), 0u);
  ASSERT_TRUE(fs::remove(s.db + "/WAL_LEDGER"));
  Crash("acme", "k");
  QuietOpens("ledger removed, then a crash", {true, false, false});
  Crash("bravo", "k");
  auto wals = Wals(0);
  ASSERT_GE(wals.size(), 2u);
  ASSERT_TRUE(fs::remove(wals.front()));  // listed by the last clean close
  seen.clear();
  auto r = OpenMode(true);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  PrintEvents("ledger rewritten, a listed WAL deleted");
  EXPECT_TRUE(Saw("shard_loss"));
}

// A tenant moved between two stores open in one process (`callvault tenant
// move`), then clean closes and crashes of both: no alarm in either.
TEST_F(A16, TenantMoveBetweenStoresRaisesNoAlarmInEither) {
  Peer dst;
  dst.per_shard = 1;
  dst.s.options.max_tenants_per_shard = 1;
  dst.RecordInto(&dst.s.options);
  ASSERT_OK(dst.s.Open());
  dst.s.options.create_if_missing = false;
  ASSERT_OK(dst.s->CreateTenant({"zed", "", 0}));
  dst.Put(&dst.s, "zed", "z0", 1);
  ASSERT_OK(dst.s.Reopen());
  Put("acme", "before-move");
  auto rep = MoveTenant(*s.store, *dst.s.store, "acme");
  ASSERT_TRUE(rep.ok()) << rep.status().ToString();
  dst.want["acme"] = want["acme"];
  want.erase("acme");
  dst.Put(&dst.s, "acme", "after-move", 2);
  s.Close();
  dst.s.Close();
  QuietOpens("move source", {true, false});
  dst.QuietOpens("move destination", {true, false});
  Crash("bravo", "k");
  dst.Crash("acme", "k");
  QuietOpens("move source, crash", {true, false, false});
  dst.QuietOpens("move destination, crash", {true, false, false});
}

// The metadata instance never flushed (round 0: its replay floor of 0 is
// read whole and counts, decision 0050), then flushed (round 1: Store::Flush
// flushes it too), each with a tenant created and a crash after the clean
// close: no metadata_loss, every call reads.
TEST_F(A16, MetadataFlushedOrNeverFlushedRaisesNoAlarmOverCrashes) {
  for (int i = 0; i < 2; ++i) {
    ASSERT_OK(s->CreateTenant({"m" + std::to_string(i), "", 0}));
    Put("m" + std::to_string(i), "x");
    if (i == 1) ASSERT_OK(s->Flush());
    s.Close();
    Crash("acme", "c" + std::to_string(i));
    QuietOpens("meta round " + std::to_string(i), {true, false});
    ASSERT_OK(s.Open());
  }
}

// --- 2. Silent losses --------------------------------------------------

// Replaces `victim` with `from`'s bytes, cut or zero-padded to the victim's
// size (the ledger's size check then passes).
void ReplaceKeepingSize(const std::string& victim, const std::string& from) {
  const uint64_t listed = fs::file_size(victim);
  fs::copy_file(from, victim, fs::copy_options::overwrite_existing);
  fs::resize_file(victim, listed);
}

// Another shard's WAL of the same session in `victim`'s place, as attack 15
// swaps: zero-padded to the listed size when a byte shorter, left whole
// when longer (cutting it would cut the file's one record, which the scan
// then reports by chance, run to run).
void SwapInLikeA15(const std::string& victim, const std::string& from) {
  const uint64_t listed = fs::file_size(victim);
  fs::copy_file(from, victim, fs::copy_options::overwrite_existing);
  if (fs::file_size(victim) < listed) fs::resize_file(victim, listed);
}

// s1's WAL of shard 0 replaced by s2's WAL of the same shard (another
// session of the same store), of the listed length.
TEST_F(A16, WalReplacedByTheSameShardsOtherSessionIsNotSilent) {
  SessionsThenACrash();
  auto wals = Wals(0);
  ASSERT_EQ(wals.size(), 5u);
  ReplaceKeepingSize(wals[2], wals[3]);
  NotSilent("s1's WAL replaced by s2's");
}

// s1's WAL of shard 0 replaced by the same-numbered position's WAL of
// another store that ran the same sessions (a copy put back into the wrong
// store's directory).
TEST_F(A16, WalReplacedByAnotherStoresIsNotSilent) {
  Peer other;
  other.Build(&other.s, 1);
  other.SessionsThenACrash();
  SessionsThenACrash();
  auto wals = Wals(0);
  auto theirs = other.Wals(0, other.s.db);
  ASSERT_EQ(wals.size(), 5u);
  ASSERT_EQ(theirs.size(), 5u);
  ReplaceKeepingSize(wals[2], theirs[2]);
  NotSilent("s1's WAL replaced by another store's");
}

// The head digest covers the first 32 KiB. A listed WAL longer than that
// whose bytes past 32 KiB are zeroed (media damage: blocks lost) or
// garbled, its length kept: `zero`. The crashed session after it writes
// to `crash_tenant`'s shard (acme's: shard 0) only.
void TailPastTheHead(A16* t, bool zero, const std::string& damaged_tenant) {
  TestStore& s = t->s;
  // The last clean session writes well over 32 KiB to both shards.
  for (int i = 0; i < 200; ++i) {
    t->Put("acme", "big" + std::to_string(i), 40 + i);
    t->Put("bravo", "big" + std::to_string(i), 40 + i);
  }
  s.Close();
  t->Crash("acme", "n");
  const uint32_t shard = damaged_tenant == "acme" ? 0 : 1;
  auto wals = t->Wals(shard);
  ASSERT_GE(wals.size(), 1u);
  // The clean session's WAL: the last non-empty one of bravo's shard (the
  // crashed child wrote nothing there), the one before n's in acme's.
  const std::string victim = shard == 0 ? wals[wals.size() - 2] : wals.back();
  const uint64_t size = fs::file_size(victim);
  std::printf("[attack16] %s's WAL %s: %ju bytes\n", damaged_tenant.c_str(),
              fs::path(victim).filename().c_str(), static_cast<uintmax_t>(size));
  ASSERT_GT(size, kWalEdgeBytes + 8192) << "the scenario: more than one block";
  if (zero) {
    damage::ZeroBytes(victim, kWalEdgeBytes, size - kWalEdgeBytes);
  } else {
    damage::XorBytes(victim, kWalEdgeBytes, size - kWalEdgeBytes);
  }
  t->NotSilent(std::string(zero ? "zeroed" : "garbled") + " past 32 KiB in " + damaged_tenant +
               "'s last listed WAL");
}

// acme's shard: n's WAL after it continues the sequence numbers, so the
// gap is damage (0014).
TEST_F(A16, ZeroedPastTheHeadWithALaterSessionIsNotSilent) { TailPastTheHead(this, true, "acme"); }
// FOUND by attack16 and fixed in the same session (decision 0050: edge
// digests, the WAL scan's verdict first, a replaced file refuses the shard).
// What was observed before the fix (issue 11 item 1; 0050's "a change further in is the WAL scan's
// (checksums) and the size check's" does not hold for the newest listed WAL
// of a shard the crashed session did not write to): bravo's shard 1, its
// last clean session's WAL (000004.log, ~371 KB), bytes from 32768 to the
// end zeroed (or XORed), length kept, after a crash. The head matches, the
// size matches, no CLOSE_MARK (crash), and the scan takes damage that runs
// to the end of the last WAL for a torn tail (quiet). Expected: loud
// (shard_loss or wal_damage, Verify not ok) or nothing lost. Observed (ro,
// rw, rw): open OK, no audit event, "186 call(s) kNotFound, 0 kCorruption;
// verify ok" (bravo big14..big199: "not_found: no such call"). Before 0050
// the same (size only); the close mark's sequence check catches it only at
// the first open after a clean close. A fix: the ledger keeps, per listed
// WAL, the digest of its last min(size, 32 KiB) bytes too (a tail digest;
// damage between head and tail is followed by records the scan checks), or
// the sequence number its records reach, checked against that file alone.
TEST_F(A16, ZeroedPastTheHeadOfTheLastListedWalIsNotSilent) {
  TailPastTheHead(this, true, "bravo");
}
TEST_F(A16, GarbledPastTheHeadOfTheLastListedWalIsNotSilent) {
  TailPastTheHead(this, false, "bravo");
}

// The writer's first flush of a session deletes the WALs its last clean
// close listed (below the new replay floor) while read-only opens (an
// operator's `verify`) check the ledger against the MANIFEST they read a
// moment before: no alarm in either, however they interleave.
TEST_F(A16, ReadOnlyOpensDuringTheWritersFirstFlushRaiseNoAlarm) {
  int refused = 0;
  for (int i = 0; i < 8; ++i) {
    const std::string n = std::to_string(i);
    Put("acme", "q" + n);
    Put("bravo", "q" + n);
    ASSERT_OK(s.Reopen());
    Put("acme", "p" + n);
    Status flushed;
    seen.clear();
    std::thread th([&] { flushed = s->Flush(); });
    auto r = OpenMode(true);
    th.join();
    ASSERT_OK(flushed);
    if (!r.ok()) {
      // A MANIFEST replaced under the read-only open (decision 0025) may
      // refuse it; never as a loss.
      ++refused;
      std::printf("[attack16] read-only open during a flush: %s\n", r.status().ToString().c_str());
      EXPECT_EQ(r.status().message().find("lost"), std::string::npos) << r.status().ToString();
      continue;
    }
    PrintEvents("read-only open during the first flush " + n);
    EXPECT_FALSE(Alarm()) << "round " << n << ": a false alarm beside a live writer";
  }
  std::printf("[attack16] read-only opens refused during a flush: %d of 8\n", refused);
  s.Close();
  QuietOpens("after the flushes", {true, false});
}

void LedgerAsV2(const std::string& db);

// A v2 ledger (no heads: the first crash after an upgrade from a build of
// decision 0042, before any clean close of this build) and s1's WAL of
// shard 0 replaced by shard 1's of the same session (attack 15's swap,
// which decision 0050's heads made loud).
// FINDING (the upgrade window; heads forged to `-` are the same): observed
// (ro, rw, rw): open OK, no audit event, acme s1 "not_found: no such call"
// (Verify not ok: bravo's records in acme's family), as A15 found before
// 0050. A v2 ledger is checked by size only until the first clean close of
// a 0050 build rewrites it, and then with the heads of the files as they
// are (seen: after these opens WAL_LEDGER is v3 and lists 000015.log, the
// swapped file, with its head), so the swap is never reported afterwards
// either. Expected: loud (the upgrade window is the first crash after an
// upgrade); at least the writable open's ledger refresh should not turn an
// unknown head (`-`) into the head of the file found there.
void SwapUnderAHeadlessLedger(A16* t, bool v2) {
  t->SessionsThenACrash();
  if (v2) {
    LedgerAsV2(t->s.db);
  } else {
    // Heads forged to `-` (a v3 file re-encoded without them: the ledger's
    // sha256 is not keyed, decision 0050's alternatives).
    WalLedger l;
    ASSERT_OK(DecodeWalLedger(testutil::ReadWholeFile(t->s.db + "/WAL_LEDGER"), &l));
    l.shard_edges.clear();
    l.meta_edges.clear();
    WriteAll(t->s.db + "/WAL_LEDGER", EncodeWalLedger(l));
  }
  auto mine = t->Wals(0), bravos = t->Wals(1);
  ASSERT_EQ(mine.size(), 5u);
  ASSERT_EQ(bravos.size(), 4u);  // b's, s0's, s1's, s2's
  SwapInLikeA15(mine[2], bravos[2]);
  t->NotSilent(std::string(v2 ? "v2 ledger" : "heads forged to -") +
               ", s1's WAL replaced by shard 1's");
}

TEST_F(A16, DISABLED_V2LedgerAndAWalSwappedFromAnotherShardIsNotSilent) {
  SwapUnderAHeadlessLedger(this, true);
}
// The same with heads forged to `-` (outside issue 11's threat model,
// decision 0050; shown for completeness: same outcome as the v2 file).
TEST_F(A16, DISABLED_HeadsForgedAndAWalSwappedFromAnotherShardIsNotSilent) {
  SwapUnderAHeadlessLedger(this, false);
}

// s1's WAL of shard 0 replaced by shard 1's (attack 15's swap) with the
// original left beside it as `<wal>.damaged`, the name of a WAL repair's
// kept copy (decision 0019), which the head check accepts in the file's
// place (a copy of a shard directory taken while such a repair was under
// way, put back over a wrong one).
// FOUND by attack16 and fixed in the same session (decision 0050: edge
// digests, the WAL scan's verdict first, a replaced file refuses the shard).
// What was observed before the fix: observed (ro, rw, rw): open OK, no audit event, acme s1
// "not_found: no such call" (Verify not ok). CheckMarkFiles takes any
// `<wal>.damaged` of the listed size and head for the file, also without
// the repair's damage record `<wal>.damage`, which a repair writes before
// it keeps the copy and removes after it (decision 0019; ScanResult::
// evidence's order): a stray kept copy mutes the head check (and 0040's
// size check the same way). Expected: loud. A fix: accept the kept copy
// only while its damage record exists.
TEST_F(A16, SwappedWalBesideAKeptCopyOfTheOriginalIsNotSilent) {
  SessionsThenACrash();
  auto mine = Wals(0), bravos = Wals(1);
  ASSERT_EQ(mine.size(), 5u);
  ASSERT_EQ(bravos.size(), 4u);
  fs::copy_file(mine[2], mine[2] + ".damaged");
  SwapInLikeA15(mine[2], bravos[2]);
  NotSilent("s1's WAL swapped, the original kept as .damaged");
}

// One bit flipped in an older metadata WAL (a cleanly closed session's,
// listed in WAL_LEDGER's meta line) after a crash: what the operator is
// told. Printed; loud either way (the metadata instance stops the store).
TEST_F(A16, FlippedByteInAListedMetadataWalIsLoud) {
  s.Close();
  ASSERT_OK(s.Open());
  ASSERT_OK(s->CreateTenant({"dave", "", 0}));
  Put("dave", "d0");
  s.Close();
  std::vector<std::string> mw;
  for (const auto& f : FilesWith(s.db + "/meta", ".log")) {
    if (fs::file_size(f) > 0) mw.push_back(f);
  }
  ASSERT_GE(mw.size(), 2u);
  const std::string daves = mw.back();
  Crash("acme", "n");
  damage::XorByte(daves, fs::file_size(daves) / 2);
  for (bool ro : {true, false}) {
    seen.clear();
    auto r = OpenMode(ro);
    std::printf("[attack16] metadata WAL flipped (%s): %s\n", ro ? "ro" : "rw",
                r.ok() ? "OK" : r.status().ToString().c_str());
    PrintEvents(std::string("metadata WAL flipped ") + (ro ? "ro" : "rw"));
    if (r.ok()) {
      auto g = (*r)->GetCall("dave", "d0", kPartAll);
      EXPECT_TRUE(g.ok() || g.status().code() == Code::kCorruption) << g.status().ToString();
      EXPECT_TRUE(g.ok() || Alarm());
    } else {
      EXPECT_EQ(r.status().code(), Code::kCorruption);
    }
  }
}

// The operator's way out after a swap was reported by a writable open
// (tenants marked damaged, the ledger refreshed to the file found): the
// shard's own file put back (from the copy they made), the damage
// accepted. Nothing is lost then; the next opens must be quiet and read
// every call, s1 included.
// FOUND by attack16 and fixed in the same session (decision 0050: edge
// digests, the WAL scan's verdict first, a replaced file refuses the shard).
// What was observed before the fix (loud, but the writable open that finds "another file put in its
// place" makes the loss permanent and plants foreign records): observed:
// the rw open reports `shard_loss ... WAL file 000015.log is not the file
// the last clean close left ...; tenants marked damaged: internal_ids=1`,
// and still lets RocksDB replay the file (bravo's record into acme's
// family) and the WALs go (shard 0 is flushed: the own file put back later
// is below the replay floor, ignored). After the put-back and
// accept-damage: no event, acme s1 "not_found: no such call", and Verify
// not ok at every later open (bravo's records in acme's family fail
// authentication; only a purge of acme clears it). docs/operations.md
// says to put the file back "before the store opens writable", but the
// service's own restart is that writable open. Expected: a head mismatch
// refuses the shard as a sequence regress does ("a WAL file of another
// history ...: move it out"), before RocksDB replays the file, so that
// putting the own file back loses nothing.
TEST_F(A16, OwnWalPutBackAfterASwapWasRecordedLosesNothing) {
  SessionsThenACrash();
  auto mine = Wals(0), bravos = Wals(1);
  ASSERT_EQ(mine.size(), 5u);
  ASSERT_EQ(bravos.size(), 4u);
  const std::string own = s.tmp.Sub("own.log");
  fs::copy_file(mine[2], own);
  SwapInLikeA15(mine[2], bravos[2]);
  seen.clear();
  {
    auto r = OpenMode(false);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    PrintEvents("swap recorded");
    ASSERT_TRUE(Alarm());
    // Closed at once: the operator stops the service to fix it.
    ASSERT_OK((*r)->Close());
  }
  std::printf("[attack16] shard 0 WALs after the open that recorded the swap:");
  for (const auto& f : FilesWith(s.db + "/shards/0000", ".log")) {
    std::printf(" %s (%ju)", fs::path(f).filename().c_str(),
                static_cast<uintmax_t>(fs::file_size(f)));
  }
  std::printf("\n");
  fs::copy_file(own, mine[2], fs::copy_options::overwrite_existing);
  {
    seen.clear();
    auto r = OpenMode(false);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    PrintEvents("own WAL put back");
    for (const auto& t : {"acme", "bravo"}) {
      auto info = (*r)->DescribeTenant(t);
      ASSERT_OK(info);
      if (info->damaged) {
        ASSERT_OK((*r)->AcceptTenantDamage(t));
      }
    }
    ASSERT_OK((*r)->Close());
  }
  {
    auto r = OpenMode(true);
    ASSERT_OK(r);
    auto v = (*r)->Verify(std::nullopt);
    ASSERT_OK(v);
    std::printf(
        "[attack16] own WAL put back, accepted: acme s1 %s; verify %s (%ju ok, %ju failed)\n",
        (*r)->GetCall("acme", "s1", kPartAll).status().ToString().c_str(),
        v->ok() ? "ok" : "not ok", static_cast<uintmax_t>(v->records_ok),
        static_cast<uintmax_t>(v->records_failed));
  }
  QuietOpens("own WAL put back, damage accepted", {true, false, false});
}

// --- Ledgers deleted, put back, taken from elsewhere ---

// The ledger of an older clean close put back after later sessions and a
// crash: no false alarm (it names older files, unchanged); a loss of a WAL
// it lists is still loud.
TEST_F(A16, OlderLedgerPutBackRaisesNoAlarmAndStillSeesALoss) {
  s.Close();
  const std::string old_ledger = ReadAll(s.db + "/WAL_LEDGER");
  ASSERT_FALSE(old_ledger.empty());
  SessionsThenACrash();
  WriteAll(s.db + "/WAL_LEDGER", old_ledger);
  const auto saved = s.tmp.Sub("saved");
  testutil::CopyTree(s.db, saved);
  QuietOpens("older ledger put back", {true, false});
  // Again from the copy, then a WAL the older ledger lists (a's) cut.
  fs::remove_all(s.db);
  testutil::CopyTree(saved, s.db);
  auto wals = Wals(0);
  ASSERT_EQ(wals.size(), 5u);
  fs::resize_file(wals[0], fs::file_size(wals[0]) - 1);
  seen.clear();
  auto r = OpenMode(true);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  PrintEvents("older ledger, a's WAL cut");
  EXPECT_TRUE(Saw("shard_loss"));
}

// Rewrites the store's v3 ledger as v2 (sizes only), as a build of decision
// 0042 wrote it.
void LedgerAsV2(const std::string& db) {
  WalLedger l;
  ASSERT_OK(DecodeWalLedger(ReadAll(db + "/WAL_LEDGER"), &l));
  auto entries = [](const std::vector<std::pair<std::string, uint64_t>>& w) {
    std::string e;
    for (const auto& [n, sz] : w) e += " " + n + " " + std::to_string(sz);
    return e;
  };
  std::string body = "callvault wal ledger v2\nmeta" + (l.meta ? entries(*l.meta) : "") + "\n";
  for (const auto& [i, w] : l.shards) body += "shard " + std::to_string(i) + entries(w) + "\n";
  unsigned char d[crypto_hash_sha256_BYTES];
  crypto_hash_sha256(d, reinterpret_cast<const unsigned char*>(body.data()), body.size());
  char hex[2 * crypto_hash_sha256_BYTES + 1];
  sodium_bin2hex(hex, sizeof(hex), d, sizeof(d));
  WriteAll(db + "/WAL_LEDGER", body + "sha256 " + hex + "\n");
  WalLedger back;
  ASSERT_OK(DecodeWalLedger(ReadAll(db + "/WAL_LEDGER"), &back));
  EXPECT_TRUE(back.shard_edges.empty());
}

// A v2 ledger (an upgrade from a build of decision 0042) over crashed and
// clean sessions: no alarm; the next clean close writes v3.
TEST_F(A16, V2LedgerRaisesNoAlarmAndBecomesV3) {
  SessionsThenACrash();
  LedgerAsV2(s.db);
  QuietOpens("v2 ledger after a crash", {true, false});
  EXPECT_EQ(ReadAll(s.db + "/WAL_LEDGER").rfind("callvault wal ledger v3\n", 0), 0u);
  Crash("acme", "v");
  QuietOpens("v3 ledger after a crash", {true, false});
}

// A v2 ledger put back (or heads forged to `-`) and a listed WAL replaced
// by another session's of the same length: checked by size only (decision
// 0050: `-` is not known), so this is as before 0050. Shows what a
// downgrade of the ledger gives up.
TEST_F(A16, V2LedgerPutBackWithAWalReplacedIsNotSilent) {
  SessionsThenACrash();
  LedgerAsV2(s.db);
  auto wals = Wals(0);
  ASSERT_EQ(wals.size(), 5u);
  ReplaceKeepingSize(wals[2], wals[3]);
  NotSilent("v2 ledger, s1's WAL replaced by s2's");
}

// WAL_LEDGER deleted (an operator "removing the file knowingly" after it
// was reported damaged) after a crash, then an older listed WAL deleted.
// FINDING (a documented limit, docs/operations.md "WAL ledger": "older WAL
// files are not checked until the next clean close"): observed (ro, rw,
// rw): open OK, no event, acme s1 "not_found: no such call", Verify ok.
// The ledger's own damage message offers the removal as the way out at
// 3 a.m.; from then until a clean close, a deleted WAL is a silent loss.
TEST_F(A16, DISABLED_LedgerDeletedThenAnOlderWalDeletedIsNotSilent) {
  SessionsThenACrash();
  ASSERT_TRUE(fs::remove(s.db + "/WAL_LEDGER"));
  auto wals = Wals(0);
  ASSERT_EQ(wals.size(), 5u);
  ASSERT_TRUE(fs::remove(wals[2]));
  NotSilent("ledger deleted, s1's WAL deleted");
}

// Another store's WAL_LEDGER copied in (the operator copies "the store
// files" from the wrong host): nothing of this store was lost.
// FINDING (false alarm; 0040's limits say a foreign ledger "can raise a
// false alarm ... tenant accept-damage", but the metadata line, 0042,
// makes it a refusal of the whole store): observed (ro and rw): open fails
// `corruption: metadata instance damaged: acknowledged writes lost: WAL
// file 000004.log is 2319 bytes, 2322 at the last clean close (by
// WAL_LEDGER; truncated); the store does not open without them: restore
// it from a backup`, with a `metadata_loss` audit event. Nothing was lost;
// the advice is to restore the whole store from a backup (and with heads,
// any same-named WAL of the other store now mismatches, not only a longer
// one). Expected: the ledger names its store (the store id, as the backup
// manifest does) and one of another store is refused as such ("WAL_LEDGER
// is another store's: remove it"), or ignored.
TEST_F(A16, DISABLED_AnotherStoresLedgerRaisesNoLoss) {
  Peer other;
  other.Build(&other.s, 1);
  other.SessionsThenACrash();
  SessionsThenACrash();
  fs::copy_file(other.s.db + "/WAL_LEDGER", s.db + "/WAL_LEDGER",
                fs::copy_options::overwrite_existing);
  for (bool ro : {true, false}) {
    seen.clear();
    auto r = OpenMode(ro);
    std::printf("[attack16] another store's ledger (%s): open %s\n", ro ? "ro" : "rw",
                r.ok() ? "OK" : r.status().ToString().c_str());
    PrintEvents(std::string("another store's ledger ") + (ro ? "ro" : "rw"));
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_FALSE(Saw("shard_loss") || Saw("metadata_loss"))
        << "a loss reported for another store's ledger";
    ExpectWanted(r->get(), "another store's ledger");
    if (!ro) {
      ASSERT_OK((*r)->Close());
    }
  }
}

// A file system that runs `hook` once, the first time `trigger` (a path
// suffix) is opened for reading, before the open goes on.
class HookFS : public rocksdb::FileSystemWrapper {
 public:
  HookFS(std::string trigger, std::function<void()> hook)
      : FileSystemWrapper(rocksdb::FileSystem::Default()), trigger_(std::move(trigger)),
        hook_(std::move(hook)) {}
  const char* Name() const override { return "A16HookFS"; }
  rocksdb::IOStatus NewSequentialFile(const std::string& f, const rocksdb::FileOptions& o,
                                      std::unique_ptr<rocksdb::FSSequentialFile>* r,
                                      rocksdb::IODebugContext* dbg) override {
    if (hook_ && f.size() >= trigger_.size() &&
        f.compare(f.size() - trigger_.size(), trigger_.size(), trigger_) == 0) {
      auto h = std::move(hook_);
      hook_ = nullptr;
      h();
    }
    return target()->NewSequentialFile(f, o, r, dbg);
  }

 private:
  const std::string trigger_;
  std::function<void()> hook_;
};

// attack6 (session 19) F1: a read-only open (`callvault stats`) read
// CLOSE_MARK, then the writer opened (consuming it), wrote and flushed
// (deleting the WAL files the mark counted) before the read-only open read
// shard 0: it reported every tenant of the shard as having lost
// acknowledged writes ("the WAL files replay to sequence number 0, N at the
// last clean close"), a false alarm. The read-only open now sees the mark
// changed and reads the store again.
TEST_F(A16, ReadOnlyOpenWhileTheWriterOpensAndFlushesRaisesNoAlarm) {
  Put("acme", "m0");
  s.Close();  // a clean close: CLOSE_MARK
  ASSERT_TRUE(fs::exists(s.db + "/CLOSE_MARK"));
  bool hooked = false;
  auto hook = std::make_shared<HookFS>("/shards/0000/CURRENT", [&] {
    hooked = true;
    ASSERT_OK(s.Open());
    Put("acme", "m1");
    ASSERT_OK(s->Flush());
  });
  std::unique_ptr<rocksdb::Env> env = rocksdb::NewCompositeEnv(hook);
  Options o = s.options;
  o.read_only = true;
  o.create_if_missing = false;
  o.env = env.get();
  seen.clear();
  auto ro = Store::Open(o, s.db);
  ASSERT_TRUE(hooked) << "the writer never opened during the read-only open";
  ASSERT_FALSE(fs::exists(s.db + "/CLOSE_MARK")) << "the writer's open consumes the mark";
  ASSERT_TRUE(ro.ok()) << ro.status().ToString();
  PrintEvents("read-only open across the writer's open and flush");
  EXPECT_FALSE(Alarm()) << "a false alarm: the mark was consumed under the read-only open";
  auto st = (*ro)->Stats();
  ASSERT_OK(st);
  EXPECT_TRUE(st->damaged_tenants.empty()) << st->damaged_tenants.front();
  ro->reset();
  ExpectWanted(s.store.get(), "the writer after the read-only open");
}

}  // namespace
}  // namespace callvault
