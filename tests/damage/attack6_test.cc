// attack6 (issue 11): the WAL scan's replay floor (decision 0024) against
// MANIFESTs edited by hand. The floor may err low (the scan reads more
// files), never high: a floor above what RocksDB replays makes the scan
// leave out a WAL that RocksDB does replay, and damage in it goes unseen.
// Each test appends one hand-made version edit to a real MANIFEST, opens
// the instance with RocksDB 7.8.3 itself and checks that RocksDB replayed
// the live WAL (its key reads back) while ReplayFloor stays at or below
// that WAL's number.
#include <gtest/gtest.h>
#include <rocksdb/db.h>
#include <rocksdb/env.h>

#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "callvault/store.h"
#include "engine/wal_scan.h"
#include "format/coding.h"
#include "tests/testutil/testutil.h"

namespace callvault::walscan {
namespace {

constexpr size_t kBlock = 32768;

void PutVarint(std::string* s, uint64_t v) {
  while (v >= 128) {
    s->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  s->push_back(static_cast<char>(v));
}

// Appends one logical record the way log::Writer does (fragments, padded
// block trailers).
void AppendRecord(std::string* file, const std::string& payload) {
  size_t left = payload.size(), pos = 0;
  bool begin = true;
  do {
    size_t room = kBlock - file->size() % kBlock;
    if (room < 7) {
      file->append(room, '\0');
      room = kBlock;
    }
    const size_t n = std::min(left, room - 7);
    const bool end = n == left;
    const char type = begin && end ? 1 : begin ? 2 : end ? 4 : 3;
    std::string body(1, type);
    body.append(payload, pos, n);
    std::string h;
    format::PutFixed32LE(&h, Mask(Crc32c(body.data(), body.size())));
    h.push_back(static_cast<char>(n & 0xff));
    h.push_back(static_cast<char>(n >> 8));
    *file += h;
    file->append(body);
    pos += n;
    left -= n;
    begin = false;
  } while (left > 0);
}

std::string ReadAll(const std::string& path) {
  std::string s;
  EXPECT_TRUE(rocksdb::ReadFileToString(rocksdb::Env::Default(), path, &s).ok()) << path;
  return s;
}

void WriteAll(const std::string& path, const std::string& data) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr) << path;
  ASSERT_EQ(std::fwrite(data.data(), 1, data.size(), f), data.size());
  ASSERT_EQ(std::fclose(f), 0);
}

// A closed instance whose live WAL holds key "live" (not flushed), then
// `edit` appended to its MANIFEST. Returns the live WAL's number, the
// floor ReplayFloor computes, and whether RocksDB's open replayed the WAL.
struct Outcome {
  uint64_t live_wal = 0;
  uint64_t floor = 0;
  bool opened = false;
  bool replayed = false;
  std::string error;
};

Outcome ForgeAndOpen(const std::string& dir, const std::string& edit) {
  namespace fs = std::filesystem;
  Outcome out;
  rocksdb::Options o;
  o.create_if_missing = true;
  o.avoid_flush_during_recovery = true;
  o.avoid_flush_during_shutdown = true;
  {
    rocksdb::DB* db = nullptr;
    EXPECT_TRUE(rocksdb::DB::Open(o, dir, &db).ok());
    if (db == nullptr) return out;
    // Two flushes so the default family's log number is above 1.
    rocksdb::WriteOptions w;
    w.sync = true;
    EXPECT_TRUE(db->Put(w, "old", "1").ok());
    EXPECT_TRUE(db->Flush({}).ok());
    EXPECT_TRUE(db->Put(w, "old2", "1").ok());
    EXPECT_TRUE(db->Flush({}).ok());
    EXPECT_TRUE(db->Put(w, "live", "v").ok());
    delete db;
  }
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().extension() == ".log" && fs::file_size(e.path()) > 0) {
      out.live_wal = std::max<uint64_t>(out.live_wal, std::stoull(e.path().stem().string()));
    }
  }
  std::string current = ReadAll(dir + "/CURRENT");
  current.pop_back();
  std::string manifest = ReadAll(dir + "/" + current);
  const uint64_t before = ReplayFloor(manifest);
  EXPECT_LE(before, out.live_wal) << "the unforged MANIFEST";
  AppendRecord(&manifest, edit);
  WriteAll(dir + "/" + current, manifest);
  out.floor = ReplayFloor(manifest);
  o.create_if_missing = false;
  rocksdb::DB* db = nullptr;
  // (Writable: 7.8.3's read-only open asserts on WAL edits in a MANIFEST.)
  rocksdb::Status s = rocksdb::DB::Open(o, dir, &db);
  out.opened = s.ok();
  if (!s.ok()) {
    out.error = s.ToString();
    return out;
  }
  std::string v;
  out.replayed = db->Get({}, "live", &v).ok() && v == "v";
  delete db;
  std::printf("[attack6] live WAL %llu, floor %llu before the edit, %llu after; RocksDB %s it\n",
              static_cast<unsigned long long>(out.live_wal),
              static_cast<unsigned long long>(before), static_cast<unsigned long long>(out.floor),
              out.replayed ? "replayed" : "skipped");
  return out;
}

// The invariant: RocksDB opened and replayed the live WAL, so the floor
// must not be above it (else the scan leaves it out: damage unseen).
void ExpectFloorNotAboveReplayed(const Outcome& out) {
  ASSERT_TRUE(out.opened) << out.error;
  ASSERT_TRUE(out.replayed) << "RocksDB itself skipped the live WAL: not this test's case";
  EXPECT_LE(out.floor, out.live_wal)
      << "ReplayFloor is above a WAL RocksDB replays: the scan would skip damage in it";
}

// kMinLogNumberToKeep twice in one edit: VersionEdit::DecodeFrom keeps the
// last value (an assignment), VersionEditHandler then takes the maximum
// across edits. A floor that takes the maximum inside the edit too is
// raised by the first, higher, value.
TEST(Attack6ReplayFloor, MinLogNumberToKeepTwiceInOneEditLastWins) {
  testutil::TempDir tmp;
  std::string edit;
  PutVarint(&edit, 200);  // kColumnFamily 0
  PutVarint(&edit, 0);
  PutVarint(&edit, 10);  // kMinLogNumberToKeep: high, then low
  PutVarint(&edit, 1000);
  PutVarint(&edit, 10);
  PutVarint(&edit, 1);
  ExpectFloorNotAboveReplayed(ForgeAndOpen(tmp.Sub("db"), edit));
}

// A WAL-addition edit (kWalAddition2) is applied by OnWalAddition only:
// VersionEditHandler::ApplyVersionEdit leaves its family null and so
// ignores a kLogNumber in the same edit. A floor that applies it is raised.
TEST(Attack6ReplayFloor, LogNumberInAWalAdditionEditIsIgnoredByRocksDb) {
  testutil::TempDir tmp;
  std::string wal;
  PutVarint(&wal, 999);  // WAL number
  PutVarint(&wal, 1);    // kTerminate
  std::string edit;
  PutVarint(&edit, 8199);  // kWalAddition2, length-prefixed
  PutVarint(&edit, wal.size());
  edit += wal;
  PutVarint(&edit, 2);  // kLogNumber
  PutVarint(&edit, 1000);
  ExpectFloorNotAboveReplayed(ForgeAndOpen(tmp.Sub("db"), edit));
}

// The same with a WAL deletion (kWalDeletion2, "every WAL below N").
TEST(Attack6ReplayFloor, LogNumberInAWalDeletionEditIsIgnoredByRocksDb) {
  testutil::TempDir tmp;
  std::string wal;
  PutVarint(&wal, 2);  // delete WALs before 2
  std::string edit;
  PutVarint(&edit, 8200);  // kWalDeletion2, length-prefixed
  PutVarint(&edit, wal.size());
  edit += wal;
  PutVarint(&edit, 2);  // kLogNumber
  PutVarint(&edit, 1000);
  ExpectFloorNotAboveReplayed(ForgeAndOpen(tmp.Sub("db"), edit));
}


// A read-only open (the CLI's verify, stats, tenant show) of a store whose
// shard MANIFEST holds a WAL-addition edit (hand-made: callvault never
// turns on track_and_verify_wals_in_manifest): RocksDB 7.8.3 as Debian
// builds it asserts (`recovery_ctx != nullptr`, db_impl_open.cc) and the
// process aborts. Wanted: a specific error, no crash. Run in a child
// process (fork) so the abort is observed, not suffered.
void WalEditReadOnly(const std::string& instance, const std::string& who) {
  testutil::TestStore s;
  ASSERT_TRUE(s.Open().ok());
  ASSERT_TRUE(s->CreateTenant({"acme", "", 0}).ok());
  ASSERT_TRUE(s->PutCall("acme", testutil::MakeCall("c1", 1700000000000000)).ok());
  s.Close();
  const std::string dir = s.db + "/" + instance;
  std::string current = ReadAll(dir + "/CURRENT");
  current.pop_back();
  std::string manifest = ReadAll(dir + "/" + current);
  std::string wal, edit;
  PutVarint(&wal, 999);
  PutVarint(&wal, 1);
  PutVarint(&edit, 8199);
  PutVarint(&edit, wal.size());
  edit += wal;
  AppendRecord(&manifest, edit);
  WriteAll(dir + "/" + current, manifest);
  s.options.read_only = true;
  s.options.create_if_missing = false;
  std::fflush(nullptr);
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    auto st = Store::Open(s.options, s.db);
    // 2: refused as damage, naming the instance and no tenant: the open
    // for the metadata instance, acme's reads for a shard (decision 0034);
    // 0: served as if nothing were wrong; 1: another error.
    Status why = st.ok() ? (*st)->GetCall("acme", "c1").status() : st.status();
    const bool named = !why.ok() && why.message().find(who) != std::string::npos &&
                       why.message().find("acme") == std::string::npos;
    std::_Exit(why.ok() ? 0 : why.code() == Code::kCorruption && named ? 2 : 1);
  }
  int ws = 0;
  ASSERT_EQ(waitpid(pid, &ws, 0), pid);
  ASSERT_TRUE(WIFEXITED(ws)) << "the read-only open died of signal "
                             << (WIFSIGNALED(ws) ? WTERMSIG(ws) : 0);
  EXPECT_EQ(WEXITSTATUS(ws), 2) << "0: served, 1: another error";
  // A writable open reads it (RocksDB drops the WAL set), and then a
  // read-only open works again.
  s.options.read_only = false;
  ASSERT_TRUE(s.Open().ok());
  ASSERT_TRUE(s->GetCall("acme", "c1", kPartAll).ok());
  s.Close();
  s.options.read_only = true;
  ASSERT_TRUE(s.Open().ok());
  EXPECT_TRUE(s->GetCall("acme", "c1", kPartAll).ok());
}

TEST(Attack6ReadOnly, WalEditInShardManifestIsAnErrorNotAnAbort) {
  WalEditReadOnly("shards/0000", "shard 0");
}

TEST(Attack6ReadOnly, WalEditInMetaManifestIsAnErrorNotAnAbort) {
  WalEditReadOnly("meta", "metadata instance");
}


// Read-only opens (the CLI's verify, stats, tenant show) of a store whose
// shard CURRENT or MANIFEST was damaged by hand: each in a child process
// with a deadline, which must exit (no signal, no hang) with an error
// (exit 2: kCorruption naming the shard, no tenant id) or open with the
// tenant reported damaged (exit 3), and write nothing but a damage report.
TEST(Attack6ReadOnly, DamagedCurrentOrManifestIsASpecificErrorNoCrashNoWrite) {
  namespace fs = std::filesystem;
  struct Case {
    const char* what;
    void (*damage)(const std::string& dir, const std::string& manifest);
  };
  const Case cases[] = {
      {"MANIFEST empty", [](const std::string& d, const std::string& m) { fs::resize_file(d + "/" + m, 0); }},
      {"MANIFEST gone", [](const std::string& d, const std::string& m) { fs::remove(d + "/" + m); }},
      {"CURRENT names a path outside",
       [](const std::string& d, const std::string&) { WriteAll(d + "/CURRENT", "../../meta/CURRENT\n"); }},
      {"CURRENT empty", [](const std::string& d, const std::string&) { WriteAll(d + "/CURRENT", ""); }},
      {"MANIFEST's first block zeroed",
       [](const std::string& d, const std::string& m) {
         std::string b = ReadAll(d + "/" + m);
         std::fill(b.begin(), b.begin() + static_cast<long>(std::min<size_t>(b.size(), 64)), '\0');
         WriteAll(d + "/" + m, b);
       }},
  };
  int n = 0;
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    testutil::TestStore s;
    ASSERT_TRUE(s.Open().ok());
    ASSERT_TRUE(s->CreateTenant({"acme", "", 0}).ok());
    ASSERT_TRUE(s->PutCall("acme", testutil::MakeCall("c1", 1700000000000000)).ok());
    s.Close();
    const std::string dir = s.db + "/shards/0000";
    std::string current = ReadAll(dir + "/CURRENT");
    current.pop_back();
    c.damage(dir, current);
    std::vector<std::string> before = testutil::ListFiles(s.db);
    std::sort(before.begin(), before.end());
    s.options.read_only = true;
    s.options.create_if_missing = false;
    std::fflush(nullptr);
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      alarm(60);  // a hang is a failure too (SIGALRM)
      auto st = Store::Open(s.options, s.db);
      if (!st.ok()) std::fprintf(stderr, "[attack6] %s: %s\n", c.what, st.status().ToString().c_str());
      const bool named = !st.ok() && st.status().message().find("shard 0") != std::string::npos &&
                         st.status().message().find("acme") == std::string::npos;
      if (st.ok()) {
        // Opened: loud only if the loss is reported (a MANIFEST cut after
        // whole edits reads as an older state; the mark of the last close
        // names the truncation, decision 0015).
        auto d = (*st)->DescribeTenant("acme");
        auto got = (*st)->GetCall("acme", "c1", kPartAll);
        std::fprintf(stderr, "[attack6] %s: opened; acme damaged=%d, state=%s, read: %s\n", c.what,
                     d.ok() && d->damaged, d.ok() ? TenantStateName(d->state) : "?",
                     got.status().ToString().c_str());
        std::_Exit(d.ok() && d->damaged ? 3 : 0);
      }
      std::_Exit(st.status().code() == Code::kCorruption && named ? 2 : 1);
    }
    int ws = 0;
    ASSERT_EQ(waitpid(pid, &ws, 0), pid);
    ASSERT_TRUE(WIFEXITED(ws)) << "died of signal " << (WIFSIGNALED(ws) ? WTERMSIG(ws) : 0);
    EXPECT_TRUE(WEXITSTATUS(ws) == 2 || WEXITSTATUS(ws) == 3)
        << WEXITSTATUS(ws) << " (0: opened and nothing reported, 1: another error or code)";
    std::vector<std::string> after = testutil::ListFiles(s.db);
    // A read-only open that finds damage writes its report (decision 0020).
    after.erase(std::remove_if(after.begin(), after.end(),
                               [](const std::string& f) {
                                 return f.find("/damage-reports/") != std::string::npos;
                               }),
                after.end());
    std::sort(after.begin(), after.end());
    EXPECT_EQ(before, after) << "a read-only open created or removed files";
    ++n;
  }
  std::printf("[attack6] read-only opens of damaged CURRENT/MANIFEST: %d cases, no crash\n", n);
}

// A shard MANIFEST cut in half after a clean close (the family of the
// tenant created since the open is gone from it): the close's mark (0015)
// names the truncation, and every tenant the registry places in the shard
// is reported damaged, also the one whose family the cut lost (it said
// "needs recovery", kFailedPrecondition, before decision 0025).
TEST(Attack6ReadOnly, ManifestCutInHalfIsReportedDamaged) {
  namespace fs = std::filesystem;
  testutil::TestStore s;
  ASSERT_TRUE(s.Open().ok());
  ASSERT_TRUE(s->CreateTenant({"acme", "", 0}).ok());
  ASSERT_TRUE(s->PutCall("acme", testutil::MakeCall("c1", 1700000000000000)).ok());
  s.Close();
  const std::string dir = s.db + "/shards/0000";
  std::string current = ReadAll(dir + "/CURRENT");
  current.pop_back();
  fs::resize_file(dir + "/" + current, fs::file_size(dir + "/" + current) / 2);
  s.options.read_only = true;
  s.options.create_if_missing = false;
  auto st = Store::Open(s.options, s.db);
  if (!st.ok()) {
    EXPECT_EQ(st.status().code(), Code::kCorruption) << st.status().ToString();
    return;
  }
  auto d = (*st)->DescribeTenant("acme");
  ASSERT_TRUE(d.ok());
  EXPECT_TRUE(d->damaged) << "the truncated MANIFEST is not reported";
  auto got = (*st)->GetCall("acme", "c1", kPartAll);
  EXPECT_EQ(got.status().code(), Code::kCorruption) << got.status().ToString();
}

// A forged edit that raises what RocksDB itself replays
// (kMinLogNumberToKeep above the live WAL): RocksDB and the scan both skip
// the live WAL, and its acknowledged writes are gone. The high-water mark
// of the last clean close (decision 0015) must make that loud: an open
// error or the tenant marked damaged, never a quiet NotFound.
void RaisedFloorIsLoud(bool just_above) {
  testutil::TestStore s;
  ASSERT_TRUE(s.Open().ok());
  ASSERT_TRUE(s->CreateTenant({"acme", "", 0}).ok());
  ASSERT_TRUE(s->Flush().ok());
  ASSERT_TRUE(s->PutCall("acme", testutil::MakeCall("c1", 1700000000000000)).ok());
  s.Close();
  const std::string dir = s.db + "/shards/0000";
  std::string current = ReadAll(dir + "/CURRENT");
  current.pop_back();
  std::string manifest = ReadAll(dir + "/" + current);
  uint64_t live = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.path().extension() == ".log" && std::filesystem::file_size(e.path()) > 0) {
      live = std::max<uint64_t>(live, std::stoull(e.path().stem().string()));
    }
  }
  ASSERT_GT(live, 0u);
  std::string edit;
  PutVarint(&edit, 10);
  PutVarint(&edit, just_above ? live + 1 : 100000);
  AppendRecord(&manifest, edit);
  WriteAll(dir + "/" + current, manifest);
  s.options.create_if_missing = false;
  // RocksDB 7.8.3 as Debian builds it asserts in the writable open of a
  // floor far above (FindObsoleteFiles: `alive_log_files_.size()`); the
  // store refuses it first (decision 0025). The open runs in a child
  // process all the same, so that a regression is a failure, not an abort.
  std::fflush(nullptr);
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    alarm(60);
    Status st = s.Open();
    if (!st.ok()) {
      std::printf("[attack6] raised floor: open refused: %s\n", st.ToString().c_str());
      std::fflush(nullptr);
      std::_Exit(st.message().find("acme") == std::string::npos ? 0 : 4);
    }
    auto d = s->DescribeTenant("acme");
    auto got = s->GetCall("acme", "c1", kPartAll);
    std::printf("[attack6] raised floor: open ok, acme damaged=%d, call %s\n",
                d.ok() && d->damaged ? 1 : 0, got.ok() ? "read" : got.status().ToString().c_str());
    std::fflush(nullptr);
    std::_Exit(got.ok() || (d.ok() && d->damaged) ? 0 : 3);
  }
  int ws = 0;
  ASSERT_EQ(waitpid(pid, &ws, 0), pid);
  ASSERT_TRUE(WIFEXITED(ws)) << "the open died of signal " << (WIFSIGNALED(ws) ? WTERMSIG(ws) : 0);
  EXPECT_EQ(WEXITSTATUS(ws), 0) << "3: an acknowledged write lost, nothing said; 4: tenant id in the error";
}

TEST(Attack6ReplayFloor, FloorRaisedFarAboveForRocksDbTooIsLoud) { RaisedFloorIsLoud(false); }
TEST(Attack6ReplayFloor, FloorRaisedJustAboveTheLiveWalIsLoud) { RaisedFloorIsLoud(true); }

// A directory named like a damage report in `damage-reports/` (an operator's
// mkdir, a tool's leftover, a planted name): every open, writable or
// read-only, reads it as a report and fails ("read damage report: ... Is a
// directory"), so the store does not open at all. Wanted: not a report,
// skipped; the store opens.
TEST(Attack6Reports, DirectoryNamedLikeAReportDoesNotStopTheStore) {
  testutil::TestStore s;
  ASSERT_TRUE(s.Open().ok());
  ASSERT_TRUE(s->CreateTenant({"acme", "", 0}).ok());
  ASSERT_TRUE(s->PutCall("acme", testutil::MakeCall("c1", 1700000000000000)).ok());
  s.Close();
  std::filesystem::create_directories(s.db + "/damage-reports/" + std::string(32, 'a'));
  for (const bool ro : {true, false}) {
    s.options.read_only = ro;
    s.options.create_if_missing = false;
    Status st = s.Open();
    ASSERT_TRUE(st.ok()) << (ro ? "read-only: " : "writable: ") << st.ToString();
    EXPECT_TRUE(s->GetCall("acme", "c1", kPartAll).ok());
    s.Close();
  }
}

// The cost of one MANIFEST per edit (decision 0024), run by hand (it
// asserts nothing): `attack6_test --gtest_also_run_disabled_tests
// --gtest_filter=Attack6Cost.*`, once as built and once with
// kManifestRollBytes (engine/shard.cc) set back to 64 MiB.
TEST(Attack6Cost, DISABLED_CreateTenantsAndFlushes) {
  using Clock = std::chrono::steady_clock;
  testutil::TestStore s;
  ASSERT_TRUE(s.Open().ok());
  const auto t0 = Clock::now();
  for (int i = 0; i < 200; ++i) {
    ASSERT_TRUE(s->CreateTenant({"t" + std::to_string(i), "", 0}).ok());
  }
  const auto t1 = Clock::now();
  for (int i = 0; i < 100; ++i) {
    ASSERT_TRUE(s->PutCall("t" + std::to_string(i % 7),
                           testutil::MakeCall("c" + std::to_string(i), 1700000000000000 + i))
                    .ok());
    ASSERT_TRUE(s->Flush().ok());
  }
  const auto t2 = Clock::now();
  auto ms = [](auto d) {
    return static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(d).count());
  };
  std::printf("[attack6] cost: CreateTenant x200 %lld ms, PutCall+Flush x100 %lld ms\n", ms(t1 - t0),
              ms(t2 - t1));
}

}  // namespace
}  // namespace callvault::walscan
