// attack12_test: the attack of session 9 on what sessions 7 and 8 landed
// (decisions 0030, 0031, 0033, 0034), with real files and real stores.
//
// - A shard that does not open (decision 0034): every operation on its
//   tenants is kCorruption, the other shard serves; Metrics (and so
//   `callvault stats --prometheus`) must not crash on the missing shard;
//   the open writes an audit event (issue 11 item 1: damage is loud).
// - Damage planted in a shard's CURRENT, OPTIONS, WAL directory: the store
//   opens or refuses as operations.md says, never crashes.
// - The change feed (decision 0030): a token from before a purge and a
//   re-create of the same tenant id; an erasure's events; a horizon of 1.
// - The logger (decision 0031): a wider workload than metrics_test's
//   (erasure, holds, compaction, damage, verify, backup) with a capturing
//   logger and audit callback: no plaintext, subject, tenant id or key.
// - A tenant-level legal hold blocks the purge of a damaged shard's tenant;
//   a refused backup creates nothing (in the store, the key directory or a
//   new directory); ENOSPC during UpdateCall and feed trims; bytes flipped
//   in the tables that index recording chunks, read in a child process.
// - Known bugs, DISABLED_ with their reasons: a WAL file of another shard
//   aborts every open; cut close marks and a cut shard WAL lose calls
//   silently.
#include <gtest/gtest.h>
#include <signal.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <random>
#include <thread>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <regex>
#include <string>
#include <vector>

#include "callvault/move.h"
#include "callvault/store.h"
#include "tests/damage/damage_util.h"
#include "tests/testutil/fault_fs.h"
#include "tests/testutil/process.h"
#include "tests/testutil/testutil.h"

namespace callvault {
namespace {

namespace fs = std::filesystem;
using testutil::MakeCall;
using testutil::TestStore;

constexpr int64_t kAt = 1700000000000000;

std::string ShardName(uint32_t i) {
  char b[8];
  std::snprintf(b, sizeof b, "%04u", i);
  return b;
}

void WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << bytes;
}

// Two tenants in two shards, acme with a recording; closed.
class Attack12Shard : public ::testing::Test {
 protected:
  void SetUp() override {
    s.options.max_tenants_per_shard = 1;
    ASSERT_OK(s.Open());
    for (const char* t : {"acme", "bravo"}) {
      ASSERT_OK(s->CreateTenant(TenantSpec{t, "", 0}));
      for (int i = 0; i < 5; ++i) {
        ASSERT_OK(s->PutCall(t, MakeCall(std::string(t) + std::to_string(i), kAt + i, "m")));
      }
    }
    {
      auto w = s->CreateRecording("acme", "acme0", RecordingSpec{"rec1", "audio/mpeg", 1000, ""});
      ASSERT_OK(w);
      ASSERT_OK((*w)->Append(std::string(5000, 'r')));
      ASSERT_OK((*w)->Finish());
    }
    ASSERT_OK(s->Flush());
    acme_shard = s->DescribeTenant("acme")->shard;
    ASSERT_NE(acme_shard, s->DescribeTenant("bravo")->shard);
    shard_dir = s.db + "/shards/" + ShardName(acme_shard);
    s.Close();
  }
  // A byte in the middle of acme's shard's MANIFEST flipped: a record
  // within what was synced fails its checksum and RocksDB refuses the
  // shard (it does not open). (Cut in half, an appended MANIFEST would read
  // as an older state, and the shard open with its tenants marked damaged:
  // decision 0067.)
  void DamageManifest() {
    std::string current = testutil::ReadFile(shard_dir + "/CURRENT");
    ASSERT_FALSE(current.empty());
    current.pop_back();
    const std::string manifest = shard_dir + "/" + current;
    std::string bytes = testutil::ReadFile(manifest);
    ASSERT_GT(bytes.size(), 64u);
    bytes[bytes.size() / 2] = static_cast<char>(bytes[bytes.size() / 2] ^ 0x5a);
    WriteFile(manifest, bytes);
  }

  TestStore s;
  uint32_t acme_shard = 0;
  std::string shard_dir;
};

// FINDING (fixed): Store::Metrics dereferenced the null entry decision 0034
// keeps for a shard that does not open: `stats --prometheus` (and any
// scrape) crashed the process of a store with a damaged shard.
TEST_F(Attack12Shard, MetricsWithADamagedShardDoesNotCrash) {
  DamageManifest();
  ASSERT_OK(s.Open());
  ASSERT_TRUE(s->DescribeTenant("acme")->damaged);
  auto m = s->Metrics();
  ASSERT_OK(m);
  EXPECT_GE(m->shards, 2u);
  EXPECT_EQ(m->live_tenants, 2u);
  std::string text = RenderPrometheus(*m);
  EXPECT_NE(text.find("callvault_"), std::string::npos);
}

// FINDING (fixed): a shard that does not open wrote no audit event and
// called no audit callback (issue 11 item 1: "an audit event is written
// (and the callback called)"); only Stats and Verify said so.
TEST_F(Attack12Shard, AShardThatDoesNotOpenIsAudited) {
  DamageManifest();
  std::vector<AuditEvent> seen;
  auto mu = std::make_shared<std::mutex>();
  s.options.audit_callback = [&seen, mu](const AuditEvent& e) {
    std::lock_guard<std::mutex> l(*mu);
    seen.push_back(e);
  };
  ASSERT_OK(s.Open());
  auto has = [&](const std::vector<AuditEvent>& v) {
    for (const auto& e : v) {
      if (e.kind == "shard_damaged" &&
          e.detail.find("shard " + std::to_string(acme_shard)) != std::string::npos) {
        EXPECT_EQ(e.detail.find("acme"), std::string::npos) << e.detail;
        return true;
      }
    }
    return false;
  };
  {
    std::lock_guard<std::mutex> l(*mu);
    EXPECT_TRUE(has(seen)) << "no shard_damaged event to the callback";
  }
  auto log = s->ListAudit(0, "shard_damaged");
  ASSERT_OK(log);
  EXPECT_TRUE(has(*log)) << "no shard_damaged event in the audit log";
  EXPECT_OK(VerifyAuditChain(*s->ListAudit()));
  s.Close();
  // A read-only open tells its callback too (it writes nothing).
  Options ro = s.options;
  ro.read_only = true;
  ro.create_if_missing = false;
  {
    std::lock_guard<std::mutex> l(*mu);
    seen.clear();
  }
  auto r = Store::Open(ro, s.db);
  ASSERT_OK(r);
  std::lock_guard<std::mutex> l(*mu);
  EXPECT_TRUE(has(seen));
}

// Every operation on a tenant of the damaged shard answers kCorruption
// (purge works); the other shard's tenant reads and writes; a move, a
// backup and an export are refused; a purged, re-created tenant id lives
// in a shard that opens, and the restored shard gives back the untouched
// files without resurrecting the purged tenant.
TEST_F(Attack12Shard, EveryOperationOfADamagedShardsTenant) {
  const std::string pristine = s.tmp.Sub("pristine");
  testutil::CopyTree(shard_dir, pristine);
  DamageManifest();
  ASSERT_OK(s.Open());
  Store& st = *s.store;
  Call c = MakeCall("acme9", kAt + 9, "n");
  EXPECT_CODE(st.GetCall("acme", "acme0"), Code::kCorruption);
  EXPECT_CODE(st.GetCalls("acme", {"acme0", "acme1"}), Code::kCorruption);
  EXPECT_CODE(st.PutCall("acme", c), Code::kCorruption);
  EXPECT_CODE(st.PutCalls("acme", {c}), Code::kCorruption);
  Call patch = MakeCall("acme0", kAt, "patched");
  EXPECT_CODE(st.UpdateCall("acme", "acme0", kPartFields, patch), Code::kCorruption);
  EXPECT_CODE(st.DeleteCall("acme", "acme0"), Code::kCorruption);
  EXPECT_CODE(st.DeleteCall("acme", "acme0", std::optional<uint64_t>(1)), Code::kCorruption);
  EXPECT_CODE(st.ListCalls("acme", ListQuery{}), Code::kCorruption);
  EXPECT_CODE(st.CountCalls("acme"), Code::kCorruption);
  EXPECT_CODE(st.CountCalls("acme", ListQuery{}), Code::kCorruption);
  EXPECT_CODE(st.ReadChanges("acme", "", 10), Code::kCorruption);
  EXPECT_CODE(st.GetTranscriptWindow("acme", "acme0", 0, 10000), Code::kCorruption);
  EXPECT_CODE(st.CreateRecording("acme", "acme0", RecordingSpec{}), Code::kCorruption);
  EXPECT_CODE(st.ListRecordings("acme", "acme0"), Code::kCorruption);
  EXPECT_CODE(st.ReadRecording("acme", "acme0", "rec1", 0, 10, [](std::string_view) { return Status::OK(); }),
              Code::kCorruption);
  EXPECT_CODE(st.DeleteRecording("acme", "acme0", "rec1"), Code::kCorruption);
  EXPECT_CODE(st.FindReferences("acme", "alice@example.com"), Code::kCorruption);
  EraseRequest er;
  er.subject = "alice@example.com";
  EXPECT_CODE(st.Erase("acme", er), Code::kCorruption);
  EXPECT_CODE(st.SetRetention("acme", 30), Code::kCorruption);
  EXPECT_CODE(st.SetWorkspaceRetention("acme", "ws-1", 30u), Code::kCorruption);
  EXPECT_CODE(st.SetCallPinned("acme", "acme0", true), Code::kCorruption);
  EXPECT_CODE(st.PlaceHold("acme", Hold{"h2", "r", "", 0}), Code::kCorruption);
  EXPECT_CODE(st.ListHolds("acme"), Code::kCorruption);
  EXPECT_CODE(st.ReleaseHold("acme", "h2"), Code::kCorruption);
  EXPECT_CODE(st.ScheduleTenantPurge("acme", kAt), Code::kCorruption);
  EXPECT_CODE(st.Verify("acme"), Code::kCorruption);
  EXPECT_CODE(st.AcceptTenantDamage("acme"), Code::kFailedPrecondition);
  EXPECT_CODE(st.Backup(s.tmp.Sub("backup")), Code::kCorruption);
  EXPECT_FALSE(fs::exists(s.tmp.Sub("backup")) && !fs::is_empty(s.tmp.Sub("backup")));
  {
    TestStore dst;
    ASSERT_OK(dst.Open());
    // Refused before BEGIN: no segment (the first carries the sealed key)
    // reaches the destination.
    int segments = 0;
    MoveOptions mo;
    mo.after_segment = [&segments](char) { ++segments; };
    EXPECT_CODE(MoveTenant(st, *dst.store, "acme", mo), Code::kCorruption);
    EXPECT_EQ(segments, 0);
    EXPECT_CODE(dst->DescribeTenant("acme"), Code::kNotFound);
    auto orphans = dst->ReconcileKeys(/*dry_run=*/true);
    ASSERT_OK(orphans);
    EXPECT_TRUE(orphans->orphan_keys.empty()) << orphans->orphan_keys.size() << " orphan key(s)";
  }
  // The other shard serves reads and writes, every kind.
  ASSERT_OK(st.PutCall("bravo", MakeCall("bravo9", kAt + 9, "n")));
  patch.call_id = "bravo9";
  ASSERT_OK(st.UpdateCall("bravo", "bravo9", kPartFields, patch));
  auto n = st.CountCalls("bravo");
  ASSERT_OK(n);
  EXPECT_EQ(*n, 6u);
  auto feed = st.ReadChanges("bravo", "", 100);
  ASSERT_OK(feed);
  EXPECT_EQ(feed->events.size(), 7u);
  auto listed = st.ListCalls("bravo", ListQuery{});
  ASSERT_OK(listed);
  EXPECT_EQ(listed->calls.size(), 6u);
  {
    // Retention skips the damaged tenant, and says so (not silently).
    auto ret = st.RunRetention(kAt + int64_t{3650} * 86400 * 1000000);
    ASSERT_OK(ret);
    EXPECT_EQ(ret->tenants_damaged, std::vector<std::string>{"acme"});
  }
  ASSERT_OK(st.Flush());
  ASSERT_OK(st.CompactAll());
  // Purge of the damaged tenant works; its receipt names its shard.
  auto receipt = st.PurgeTenant("acme");
  ASSERT_OK(receipt);
  EXPECT_EQ(receipt->shard, acme_shard);
  EXPECT_FALSE(receipt->key_versions_destroyed.empty());
  EXPECT_CODE(st.GetCall("acme", "acme0"), Code::kTenantPurged);
  EXPECT_CODE(st.ReadChanges("acme", "", 10), Code::kTenantPurged);
  // The id re-created: a shard that opens.
  auto again = st.CreateTenant(TenantSpec{"acme", "", 0});
  ASSERT_OK(again);
  EXPECT_NE(again->shard, acme_shard);
  EXPECT_FALSE(again->damaged);
  ASSERT_OK(st.PutCall("acme", MakeCall("new0", kAt, "z")));
  s.Close();
  // Shard restored: the old family is an orphan, dropped; the new acme
  // serves; the old calls never come back.
  fs::remove_all(shard_dir);
  testutil::CopyTree(pristine, shard_dir);
  ASSERT_OK(s.Open());
  EXPECT_OK(s->GetCall("acme", "new0"));
  EXPECT_CODE(s->GetCall("acme", "acme0"), Code::kNotFound);
  auto v = s->Verify();
  ASSERT_OK(v);
  EXPECT_TRUE(v->ok()) << ::testing::PrintToString(v->failures);
  auto stats = s->Stats();
  ASSERT_OK(stats);
  for (const auto& sh : stats->shards) EXPECT_TRUE(sh.damage.empty()) << sh.shard;
}

// FINDING (fixed): a tenant-level legal hold did not block the purge of a
// tenant whose shard does not open: PurgeTenant checked holds only when the
// tenant had a column family handle, and decision 0034 leaves it none.
// operations.md: "unreadable call holds do not block it, a tenant-level
// hold still does". A scheduled purge must not get past it either.
TEST_F(Attack12Shard, ATenantHoldBlocksThePurgeOfADamagedShardsTenant) {
  ASSERT_OK(s.Open());
  ASSERT_OK(s->PlaceHold("acme", Hold{"lit-1", "litigation", "", 0}));
  ASSERT_OK(s->ScheduleTenantPurge("acme", kAt));
  s.Close();
  DamageManifest();
  ASSERT_OK(s.Open());
  ASSERT_TRUE(s->DescribeTenant("acme")->damaged);
  auto r = s->PurgeTenant("acme");
  EXPECT_CODE(r, Code::kFailedPrecondition);
  EXPECT_NE(r.status().message().find("legal hold"), std::string::npos) << r.status().ToString();
  auto due = s->RunScheduledPurges(kAt + 1);
  ASSERT_OK(due);
  EXPECT_TRUE(due->empty());
  auto info = s->DescribeTenant("acme");
  ASSERT_OK(info);
  EXPECT_EQ(info->state, TenantState::kActive);
  EXPECT_TRUE(s->ListReceipts()->empty());
}

// Files planted in or removed from one shard's directory: the store opens
// (the other tenant serving) or refuses with kCorruption; it never crashes,
// and a tenant that opens reads its own calls only.
struct Plant {
  const char* name;
  void (*act)(const std::string& dir);
  bool acme_ok;  // acme serves after it
};

std::string CurrentManifest(const std::string& dir) {
  std::string c = testutil::ReadFile(dir + "/CURRENT");
  if (!c.empty()) c.pop_back();
  return c;
}

const Plant kPlants[] = {
    {"current_removed", [](const std::string& d) { fs::remove(d + "/CURRENT"); }, false},
    {"current_names_missing_manifest",
     [](const std::string& d) { WriteFile(d + "/CURRENT", "MANIFEST-999999\n"); }, false},
    {"current_garbage", [](const std::string& d) { WriteFile(d + "/CURRENT", "\x01\x02garbage"); }, false},
    {"current_empty", [](const std::string& d) { WriteFile(d + "/CURRENT", ""); }, false},
    {"manifest_removed", [](const std::string& d) { fs::remove(d + "/" + CurrentManifest(d)); }, false},
    {"manifest_zeroed",
     [](const std::string& d) {
       const std::string m = d + "/" + CurrentManifest(d);
       damage::ZeroBytes(m, 0, fs::file_size(m));
     },
     false},
    {"options_removed",
     [](const std::string& d) {
       for (const auto& e : fs::directory_iterator(d)) {
         if (e.path().filename().string().rfind("OPTIONS-", 0) == 0) fs::remove(e.path());
       }
     },
     true},
    {"options_garbage",
     [](const std::string& d) {
       for (const auto& e : fs::directory_iterator(d)) {
         if (e.path().filename().string().rfind("OPTIONS-", 0) == 0) WriteFile(e.path().string(), "[garbage");
       }
       // None is kept by default (decision 0069): a planted one too.
       WriteFile(d + "/OPTIONS-999999", "[garbage");
     },
     true},
    {"stray_table_file", [](const std::string& d) { WriteFile(d + "/999990.sst", std::string(4096, 'x')); },
     true},
    {"identity_removed", [](const std::string& d) { fs::remove(d + "/IDENTITY"); }, true},
};

TEST_F(Attack12Shard, PlantedAndRemovedShardFiles) {
  const std::string base = s.tmp.Sub("base");
  testutil::CopyTree(s.db, base);
  for (const auto& p : kPlants) {
    SCOPED_TRACE(p.name);
    fs::remove_all(s.db);
    testutil::CopyTree(base, s.db);
    p.act(shard_dir);
    auto opened = s.Open();
    ASSERT_OK(opened);
    auto b = s->GetCall("bravo", "bravo1");
    ASSERT_OK(b);
    EXPECT_EQ(b->call_id, "bravo1");
    ASSERT_OK(s->PutCall("bravo", MakeCall("bravo8", kAt + 8, "n")));
    auto a = s->GetCall("acme", "acme1");
    if (p.acme_ok) {
      ASSERT_OK(a);
      EXPECT_EQ(a->call_id, "acme1");
    } else {
      EXPECT_CODE(a, Code::kCorruption);
      auto v = s->Verify();
      ASSERT_OK(v);
      EXPECT_FALSE(v->ok());
      EXPECT_OK(s->Metrics());
    }
    std::printf("plant %s: acme %s\n", p.name, a.ok() ? "ok" : a.status().ToString().c_str());
    s.Close();
  }
}

// FINDING (fixed): a backup refused because its directory is inside the
// store or the key directory created `cuts/`, `shards/` and a LOCK file
// there first (bad input must change nothing); and one refused for a
// shard that does not open left them in the new backup directory.
std::vector<std::string> Tree(const std::string& dir) {
  std::vector<std::string> v;
  for (const auto& e : fs::recursive_directory_iterator(dir)) v.push_back(e.path().string());
  std::sort(v.begin(), v.end());
  return v;
}

TEST_F(Attack12Shard, RefusedBackupCreatesNothing) {
  ASSERT_OK(s.Open());
  ASSERT_OK(s->Flush());
  const auto store_before = Tree(s.db);
  const auto keys_before = Tree(s.keys);
  for (const std::string& dir : {s.db + "/bk", s.db + "/shards/0009", s.db + "/meta/bk/deeper", s.keys + "/bk",
                                 s.keys + "/a/b"}) {
    SCOPED_TRACE(dir);
    EXPECT_CODE(s->Backup(dir), Code::kInvalidArgument);
    EXPECT_FALSE(fs::exists(dir));
  }
  EXPECT_EQ(Tree(s.keys), keys_before);
  auto after = Tree(s.db);
  for (const auto& f : after) {
    EXPECT_TRUE(std::find(store_before.begin(), store_before.end(), f) != store_before.end() ||
                (f.find("/bk") == std::string::npos && f.find("/0009") == std::string::npos))
        << f;
  }
  s.Close();
  ASSERT_OK(s.Open());
  auto stats = s->Stats();
  ASSERT_OK(stats);
  for (const auto& sh : stats->shards) EXPECT_TRUE(sh.damage.empty()) << sh.shard << ": " << sh.damage;
  auto v = s->Verify();
  ASSERT_OK(v);
  EXPECT_TRUE(v->ok()) << ::testing::PrintToString(v->failures);
  s.Close();
  // A shard that does not open: refused before anything is created.
  DamageManifest();
  ASSERT_OK(s.Open());
  const std::string bk = s.tmp.Sub("fresh-backup");
  EXPECT_CODE(s->Backup(bk), Code::kCorruption);
  EXPECT_FALSE(fs::exists(bk));
}

// --- recordings: chunk reads skip RocksDB's checksums (decision 0033) --------

// Bytes flipped across the table files that hold a tenant's recording
// chunks (their blob indexes, read with verify_checksums = false): a child
// process opens the store and reads both recordings whole and a range of
// each. It must exit 0 (the right bytes), 3 (a read's error status) or 4
// (the open refused); never a signal, a hang, or 2 (OK with other bytes).
constexpr char kEnvDb[] = "CV_ATTACK12_DB";
constexpr char kEnvKeys[] = "CV_ATTACK12_KEYS";
constexpr uint64_t kRecBytes = 3 * kRecordingChunkBytes + 1000;

std::string Media(uint32_t seed) {
  std::mt19937_64 rng(seed);
  std::string m(kRecBytes, '\0');
  for (auto& c : m) c = static_cast<char>(rng());
  return m;
}

TEST(Attack12RecordingChild, DISABLED_Read) {
  const char* db = std::getenv(kEnvDb);
  const char* keys = std::getenv(kEnvKeys);
  if (db == nullptr || keys == nullptr) GTEST_SKIP();
  auto kp = NewFileKeyProvider(keys);
  if (!kp.ok()) ::_exit(3);
  Options o = testutil::DefaultOptions(*kp);
  o.create_if_missing = false;
  auto st = Store::Open(o, db);
  if (!st.ok()) ::_exit(4);
  int rc = 0;
  for (uint32_t i = 1; i <= 2; ++i) {
    const std::string want = Media(i);
    std::string got;
    Status r = (*st)->ReadRecording("acme", "c" + std::to_string(i), "r", 0, kRecBytes,
                                    [&got](std::string_view b) {
                                      got.append(b);
                                      return Status::OK();
                                    });
    if (!r.ok()) rc = std::max(rc, 3);
    else if (got != want) ::_exit(2);
    std::string part;
    const uint64_t off = kRecordingChunkBytes + 77;
    r = (*st)->ReadRecording("acme", "c" + std::to_string(i), "r", off, 5000, [&part](std::string_view b) {
      part.append(b);
      return Status::OK();
    });
    if (!r.ok()) rc = std::max(rc, 3);
    else if (part != want.substr(off, 5000)) ::_exit(2);
  }
  ::_exit(rc);
}

std::string RunReadChild(const std::string& db, const std::string& keys,
                         const std::string& child = "Attack12RecordingChild.DISABLED_Read") {
  return testutil::RunSelfChild(child, {{kEnvDb, db}, {kEnvKeys, keys}});
}

TEST(Attack12Recording, FlippedChunkIndexBytesNeverGiveOtherBytes) {
  TestStore ts;
  ASSERT_OK(ts.Open());
  ASSERT_OK(ts->CreateTenant(TenantSpec{"acme", "", 0}));
  for (uint32_t i = 1; i <= 2; ++i) {
    const std::string id = "c" + std::to_string(i);
    ASSERT_OK(ts->PutCall("acme", MakeCall(id, kAt + i)));
    auto w = ts->CreateRecording("acme", id, RecordingSpec{"r", "audio/mpeg", 1000, ""});
    ASSERT_OK(w);
    ASSERT_OK((*w)->Append(Media(i)));
    ASSERT_OK((*w)->Finish());
  }
  ASSERT_OK(ts->Flush());
  auto info = ts->DescribeTenant("acme");
  ASSERT_OK(info);
  const std::string shard_rel = "/shards/" + ShardName(info->shard);
  ts.Close();
  ASSERT_EQ(RunReadChild(ts.db, ts.keys), "exit 0") << "the untouched store";
  const auto ssts = damage::FamilySsts(ts.db + shard_rel, info->column_family);
  ASSERT_FALSE(ssts.empty());
  const std::string work = ts.tmp.Sub("work");
  std::map<std::string, int> outcomes;
  for (const auto& sst : ssts) {
    const std::string name = fs::path(sst).filename().string();
    const uint64_t size = fs::file_size(sst);
    const uint64_t step = std::max<uint64_t>(1, size / 60);
    for (uint64_t off = 0; off < size; off += step) {
      fs::remove_all(work);
      testutil::CopyTree(ts.db, work);
      damage::XorByte(work + shard_rel + "/" + name, off, 0x10);
      const std::string r = RunReadChild(work, ts.keys);
      ++outcomes[r];
      EXPECT_TRUE(r == "exit 0" || r == "exit 3" || r == "exit 4") << name << " offset " << off << ": " << r;
    }
  }
  std::string tally;
  for (const auto& [r, n] : outcomes) tally += r + ": " + std::to_string(n) + "; ";
  std::printf("flipped chunk-index bytes: %s\n", tally.c_str());
}

// --- a WAL file of another shard ---------------------------------------------

// The child: opens the store read-only, then writable, and reads bravo (of
// the shard left alone). Exit 0: both opened and bravo served; 3: an open
// or bravo's read returned an error status. A signal: the process died.
TEST(Attack12WalChild, DISABLED_Open) {
  const char* db = std::getenv(kEnvDb);
  const char* keys = std::getenv(kEnvKeys);
  if (db == nullptr || keys == nullptr) GTEST_SKIP();
  for (bool read_only : {true, false}) {
    auto kp = NewFileKeyProvider(keys);
    if (!kp.ok()) ::_exit(3);
    Options o = testutil::DefaultOptions(*kp);
    o.create_if_missing = false;
    o.read_only = read_only;
    auto st = Store::Open(o, db);
    if (!st.ok()) ::_exit(3);
    if (!(*st)->GetCall("bravo", "bravo1").ok()) ::_exit(3);
    // acme's shard holds the planted file: it does not open (decision
    // 0034), acme's reads say so and verify fails.
    if ((*st)->GetCall("acme", "acme1").status().code() != Code::kCorruption) ::_exit(4);
    auto v = (*st)->Verify();
    if (!v.ok() || v->failures.empty()) ::_exit(5);
  }
  ::_exit(0);
}

// Found by attack12: a valid WAL file of one shard copied
// into another shard's directory (a restore into the wrong shard, a misplaced file)
// aborts every process that opens the store, read-only ones included
// (`callvault stats`, `verify`): RocksDB 7.8.3 as Debian builds it
// (assertions on) asserts `seq_per_batch_` in MemTableInserter::PutCFImpl
// when the planted records' (key, sequence) pairs repeat shard 1's own (the
// change feed's 'L' keys and the sequence numbers of young shards are the
// same in both). On main: the child dies of SIGABRT (signal 6). Issue 11: damage is loud and contained, never an
// abort. A fix: the WAL scan (engine/wal_scan.cc, which reads every record
// before RocksDB does) refuses a shard whose recovered records' sequence
// numbers go back from one WAL file to the next (kCorruption: the shard
// does not open, decision 0034); it needs the crash suites' power-loss
// cases run against it (a torn tail must stay quiet), so it is left for a
// session that can run them.
TEST(Attack12Wal, AnotherShardsWalNeverAborts) {
  TestStore s;
  s.options.max_tenants_per_shard = 1;
  ASSERT_OK(s.Open());
  // Two young shards with the same history: one tenant each, one call each.
  for (const char* t : {"acme", "bravo"}) {
    ASSERT_OK(s->CreateTenant(TenantSpec{t, "", 0}));
    ASSERT_OK(s->PutCall(t, MakeCall(std::string(t) + "1", kAt, "w")));
  }
  const uint32_t acme_shard = s->DescribeTenant("acme")->shard;
  s.Close();
  const std::string mine = s.db + "/shards/" + ShardName(acme_shard);
  const std::string other = s.db + "/shards/" + ShardName(acme_shard == 0 ? 1 : 0);
  std::string wal;
  uint64_t best = 0;
  for (const auto& f : damage::FilesWith(other, ".log")) {
    if (fs::file_size(f) > best) {
      best = fs::file_size(f);
      wal = f;
    }
  }
  ASSERT_GT(best, 0u) << "bravo's shard has no WAL with records";
  // acme's shard gets a copy of bravo's WAL; bravo's shard is untouched.
  fs::copy_file(wal, mine + "/000998.log");
  const std::string r = RunReadChild(s.db, s.keys, "Attack12WalChild.DISABLED_Open");
  EXPECT_EQ(r, "exit 0") << "3: an open or bravo's read failed; 4: acme read without kCorruption; "
                           "5: verify errored or found nothing; a signal: the process died";
}

// The child for the metadata instance: every open, read-only and
// writable, must return kCorruption naming the metadata instance. Exit 0:
// both did; 3: an open succeeded or failed otherwise.
TEST(Attack12MetaWalChild, DISABLED_Open) {
  const char* db = std::getenv(kEnvDb);
  const char* keys = std::getenv(kEnvKeys);
  if (db == nullptr || keys == nullptr) GTEST_SKIP();
  for (bool read_only : {true, false}) {
    auto kp = NewFileKeyProvider(keys);
    if (!kp.ok()) ::_exit(3);
    Options o = testutil::DefaultOptions(*kp);
    o.create_if_missing = false;
    o.read_only = read_only;
    auto st = Store::Open(o, db);
    if (st.ok() || st.status().code() != Code::kCorruption ||
        st.status().message().find("metadata instance") == std::string::npos ||
        st.status().message().find("go back") == std::string::npos) {
      ::_exit(3);
    }
  }
  ::_exit(0);
}

// A shard's WAL planted in the metadata instance's directory: the store
// refuses to open with a specific error, never an abort.
TEST(Attack12Wal, AShardsWalInTheMetadataInstanceNeverAborts) {
  TestStore s;
  ASSERT_OK(s.Open());
  ASSERT_OK(s->CreateTenant(TenantSpec{"acme", "", 0}));
  for (int i = 0; i < 20; ++i) ASSERT_OK(s->PutCall("acme", MakeCall("acme" + std::to_string(i), kAt, "w")));
  const uint32_t shard = s->DescribeTenant("acme")->shard;
  s.Close();
  std::string wal;
  uint64_t best = 0;
  for (const auto& f : damage::FilesWith(s.db + "/shards/" + ShardName(shard), ".log")) {
    if (fs::file_size(f) > best) {
      best = fs::file_size(f);
      wal = f;
    }
  }
  ASSERT_GT(best, 0u);
  fs::copy_file(wal, s.db + "/meta/000998.log");
  EXPECT_EQ(RunReadChild(s.db, s.keys, "Attack12MetaWalChild.DISABLED_Open"), "exit 0")
      << "3: an open did not return the specific kCorruption; a signal: the process died";
}

// Finding 6, fixed by decision 0035: the high-water marks of decision 0015
// lived in the newest metadata WAL, written at Close. Cut that WAL's tail
// (the marks, quietly taken for a torn tail) and a shard's WAL as well,
// and acknowledged, synced calls were gone with no error, no audit event
// and `verify` OK. The marks are now in <store>/CLOSE_MARK, written
// atomically after every instance closed, with a mark of the metadata
// instance itself.
TEST(Attack12Marks, CutMarksAndShardWalAreNotSilent) {
  TestStore s;
  std::mutex mu;
  std::vector<AuditEvent> seen;
  s.options.audit_callback = [&mu, &seen](const AuditEvent& e) {
    std::lock_guard<std::mutex> l(mu);
    seen.push_back(e);
  };
  ASSERT_OK(s.Open());
  ASSERT_OK(s->CreateTenant(TenantSpec{"acme", "", 0}));
  ASSERT_OK(s->PutCall("acme", MakeCall("acme1", kAt, "w")));
  s.Close();
  auto newest = [](const std::string& dir) {
    auto v = damage::FilesWith(dir, ".log");
    std::string best;
    for (const auto& f : v) {
      if (fs::file_size(f) > 0) best = f;
    }
    return best;
  };
  const std::string meta_wal = newest(s.db + "/meta");
  const std::string shard_wal = newest(s.db + "/shards/0000");
  ASSERT_FALSE(meta_wal.empty());
  ASSERT_FALSE(shard_wal.empty());
  ASSERT_TRUE(fs::exists(s.db + "/CLOSE_MARK"));
  fs::resize_file(meta_wal, fs::file_size(meta_wal) / 2);
  fs::resize_file(shard_wal, fs::file_size(shard_wal) - 200);
  // The marks are in CLOSE_MARK now (decision 0035), out of the metadata
  // WAL's reach: the metadata instance's own mark finds its WAL cut, and
  // the store stops, loudly, for a read-only open as for a writable one.
  Options ro = s.options;
  ro.read_only = true;
  ro.create_if_missing = false;
  auto r = Store::Open(ro, s.db);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kCorruption) << r.status().ToString();
  auto opened = s.Open();
  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(opened.code(), Code::kCorruption) << opened.ToString();
  EXPECT_NE(opened.message().find("metadata instance damaged: acknowledged writes lost"),
            std::string::npos)
      << opened.ToString();
  EXPECT_NE(opened.message().find(fs::path(meta_wal).filename().string()), std::string::npos)
      << opened.ToString();
  std::lock_guard<std::mutex> l(mu);
  size_t losses = 0;
  for (const auto& e : seen) losses += e.kind == "metadata_loss" ? 1 : 0;
  EXPECT_EQ(losses, 2u) << "one audit callback per open (read-only and writable)";
  // Nothing was consumed: the evidence stays for the operator.
  EXPECT_TRUE(fs::exists(s.db + "/CLOSE_MARK"));
}

// A close on a full disk: the CLOSE_MARK write fails (at its rename, or
// every write of the close failing), Close says so, no CLOSE_MARK is left
// (AtomicWrite: never a half file), and the next open is quiet and serves
// every acknowledged call.
TEST(Attack12Marks, FullDiskCloseLeavesNoHalfMark) {
  for (int variant = 0; variant < 2; ++variant) {
    SCOPED_TRACE(variant);
    testutil::TempDir tmp;
    const std::string db = tmp.Sub("db"), keys = tmp.Sub("keys");
    auto ffs = std::make_shared<testutil::FaultFS>(7);
    auto env = testutil::FaultEnv(ffs);
    std::vector<AuditEvent> seen;
    auto open = [&]() -> Result<std::unique_ptr<Store>> {
      FileKeyProviderOptions ko;
      ko.create_if_missing = true;
      ko.env = env.get();
      auto kp = NewFileKeyProvider(keys, ko);
      if (!kp.ok()) return kp.status();
      Options o = testutil::DefaultOptions(*kp);
      o.env = env.get();
      o.audit_callback = [&seen](const AuditEvent& e) { seen.push_back(e); };
      return Store::Open(o, db);
    };
    {
      auto st = open();
      ASSERT_OK(st);
      ASSERT_OK((*st)->CreateTenant(TenantSpec{"acme", "", 0}));
      for (int i = 0; i < 5; ++i) ASSERT_OK((*st)->PutCall("acme", MakeCall("c" + std::to_string(i), kAt + i)));
      if (variant == 0) {
        ffs->Inject(testutil::FaultSpec{.kinds = testutil::kOpRename, .nth = 1, .forever = true,
                                        .no_space = true});
      } else {
        ffs->Inject(testutil::FaultSpec{.kinds = testutil::kOpWrite | testutil::kOpSync |
                                                 testutil::kOpCreate | testutil::kOpRename |
                                                 testutil::kOpDirSync,
                                        .nth = 1, .forever = true, .no_space = true});
      }
      Status closed = (*st)->Close();
      ffs->Lift();
      EXPECT_FALSE(closed.ok());
      EXPECT_EQ(closed.code(), Code::kIOError) << closed.ToString();
    }
    EXPECT_FALSE(fs::exists(db + "/CLOSE_MARK")) << "no half mark";
    auto st = open();
    ASSERT_OK(st);
    EXPECT_FALSE(fs::exists(db + "/CLOSE_MARK.tmp"));
    for (int i = 0; i < 5; ++i) EXPECT_OK((*st)->GetCall("acme", "c" + std::to_string(i), kPartAll));
    auto v = (*st)->Verify(std::nullopt);
    ASSERT_OK(v);
    EXPECT_TRUE(v->ok());
    for (const auto& e : seen) {
      EXPECT_TRUE(e.kind != "shard_loss" && e.kind != "metadata_loss" && e.kind != "wal_damage")
          << e.kind << ": " << e.detail;
    }
    // And a clean close after it leaves a whole mark the next open accepts.
    ASSERT_OK((*st)->Close());
    st->reset();
    EXPECT_TRUE(fs::exists(db + "/CLOSE_MARK"));
    ASSERT_OK(open());
  }
}

// --- change feed ------------------------------------------------------------

// A token from before a purge and a re-create of the same tenant id is not
// the new tenant's (a new key): kInvalidArgument, never events of the new
// tenant read from the old position; an erasure's events name calls only.
TEST(Attack12Feed, TokenAcrossPurgeAndRecreateAndErasureEvents) {
  TestStore ts;
  ASSERT_OK(ts.Open());
  ASSERT_OK(ts->CreateTenant(TenantSpec{"acme", "", 0}));
  for (int i = 0; i < 5; ++i) ASSERT_OK(ts->PutCall("acme", MakeCall("c" + std::to_string(i), kAt + i)));
  auto p = ts->ReadChanges("acme", "", 3);
  ASSERT_OK(p);
  const std::string old_token = p->next_token;
  ASSERT_OK(ts->PurgeTenant("acme"));
  EXPECT_CODE(ts->ReadChanges("acme", old_token, 10), Code::kTenantPurged);
  ASSERT_OK(ts->CreateTenant(TenantSpec{"acme", "", 0}));
  for (int i = 0; i < 6; ++i) ASSERT_OK(ts->PutCall("acme", MakeCall("n" + std::to_string(i), kAt + i)));
  EXPECT_CODE(ts->ReadChanges("acme", old_token, 10), Code::kInvalidArgument);
  // Erasure: events for the calls it changed, no subject anywhere.
  auto head = ts->ReadChanges("acme", "", 100);
  ASSERT_OK(head);
  ASSERT_EQ(head->events.size(), 6u);
  EraseRequest er;
  er.subject = "alice@example.com";
  auto erased = ts->Erase("acme", er);
  ASSERT_OK(erased);
  auto tail = ts->ReadChanges("acme", head->next_token, 100);
  ASSERT_OK(tail);
  ASSERT_EQ(tail->events.size(), 6u);
  for (const auto& e : tail->events) {
    EXPECT_EQ(e.cause, ChangeCause::kErasure);
    EXPECT_EQ(e.call_id.find("alice"), std::string::npos);
    EXPECT_EQ(e.call_id.rfind("n", 0), 0u) << e.call_id;
  }
  // A token past the end (the newest event's sequence + 1, MAC of another
  // tenant) is refused as not this tenant's.
  ASSERT_OK(ts->CreateTenant(TenantSpec{"other", "", 0}));
  for (int i = 0; i < 20; ++i) ASSERT_OK(ts->PutCall("other", MakeCall("o" + std::to_string(i), kAt + i)));
  auto other = ts->ReadChanges("other", "", 20);
  ASSERT_OK(other);
  EXPECT_CODE(ts->ReadChanges("acme", other->next_token, 10), Code::kInvalidArgument);
}

// --- full disk ----------------------------------------------------------------

// The feed against the calls: the newest event of each call the feed holds
// names the version the store holds (a delete: no call). Returns the number
// of calls checked.
size_t ExpectFeedMatchesCalls(Store& st, const std::string& tenant) {
  auto all = st.ReadChanges(tenant, "", 1000);
  EXPECT_TRUE(all.ok()) << all.status().ToString();
  if (!all.ok()) return 0;
  std::map<std::string, ChangeEvent> last;
  uint64_t prev = 0;
  for (const auto& e : all->events) {
    EXPECT_EQ(e.sequence, prev == 0 ? e.sequence : prev + 1) << "sequences not dense";
    prev = e.sequence;
    last[e.call_id] = e;
  }
  for (const auto& [id, e] : last) {
    auto c = st.GetCall(tenant, id, kPartMetadata);
    if (e.kind == ChangeKind::kDelete) {
      EXPECT_EQ(c.status().code(), Code::kNotFound) << id;
    } else {
      EXPECT_TRUE(c.ok()) << id << ": " << c.status().ToString();
      if (c.ok()) {
        EXPECT_EQ(c->version, e.version) << id;
      }
    }
  }
  return last.size();
}

// ENOSPC (FaultFS) from the first disk operation of an UpdateCall and of a
// put whose batch trims the feed (change_feed_max_events 3): each is
// kIOError, nothing acknowledged is lost, and after a reopen the feed's
// newest events agree with the calls (no change without its event, no
// event without its change, no trimmed-then-lost newest event).
TEST(Attack12Disk, FullDiskDuringUpdateAndFeedTrim) {
  testutil::TempDir tmp;
  const std::string db = tmp.Sub("db"), keys = tmp.Sub("keys");
  auto ffs = std::make_shared<testutil::FaultFS>(5);
  auto env = testutil::FaultEnv(ffs);
  auto open = [&]() -> Result<std::unique_ptr<Store>> {
    FileKeyProviderOptions ko;
    ko.create_if_missing = true;
    ko.env = env.get();
    auto kp = NewFileKeyProvider(keys, ko);
    if (!kp.ok()) return kp.status();
    Options o = testutil::DefaultOptions(*kp);
    o.env = env.get();
    o.change_feed_max_events = 3;
    return Store::Open(o, db);
  };
  constexpr uint32_t kDisk = testutil::kOpWrite | testutil::kOpSync | testutil::kOpCreate |
                             testutil::kOpRename | testutil::kOpDirSync;
  std::map<std::string, uint64_t> acked;  // call id -> version acknowledged
  int failed_updates = 0, failed_puts = 0;
  {
    auto st = open();
    ASSERT_OK(st);
    ASSERT_OK((*st)->CreateTenant(TenantSpec{"acme", "", 0}));
    for (int i = 0; i < 6; ++i) {
      auto r = (*st)->PutCall("acme", MakeCall("c" + std::to_string(i), kAt + i, "d"));
      ASSERT_OK(r);
      acked[r->call_id] = r->version;
    }
  }
  for (int round = 0; round < 6; ++round) {
    SCOPED_TRACE(round);
    auto st = open();
    ASSERT_OK(st);
    EXPECT_GE(ExpectFeedMatchesCalls(**st, "acme"), 1u);
    const std::string id = "c" + std::to_string(round % 3);
    for (uint64_t nth = 1; nth <= 3; ++nth) {
      ffs->Inject(testutil::FaultSpec{.kinds = kDisk, .nth = nth, .forever = true, .no_space = true});
      Call patch = MakeCall(id, kAt, "u" + std::to_string(round));
      auto u = (*st)->UpdateCall("acme", id, kPartFields, patch);
      auto p = (*st)->PutCall("acme", MakeCall("n" + std::to_string(round) + "-" + std::to_string(nth), kAt, "t"));
      ffs->Lift();
      if (u.ok()) acked[id] = u->version;
      else EXPECT_EQ(u.status().code(), Code::kIOError) << u.status().ToString();
      if (p.ok()) acked[p->call_id] = p->version;
      else EXPECT_EQ(p.status().code(), Code::kIOError) << p.status().ToString();
      failed_updates += u.ok() ? 0 : 1;
      failed_puts += p.ok() ? 0 : 1;
    }
  }
  EXPECT_GT(failed_updates, 0);
  EXPECT_GT(failed_puts, 0);
  std::printf("full disk: %d updates and %d trimming puts failed, %zu calls acknowledged\n", failed_updates,
              failed_puts, acked.size());
  auto st = open();
  ASSERT_OK(st);
  for (const auto& [id, v] : acked) {
    auto c = (*st)->GetCall("acme", id, kPartMetadata);
    ASSERT_OK(c);
    EXPECT_GE(c->version, v) << id;
  }
  ExpectFeedMatchesCalls(**st, "acme");
  auto all = (*st)->ReadChanges("acme", "", 1000);
  ASSERT_OK(all);
  EXPECT_LE(all->events.size(), 3u + 2u);  // the cap, give or take the last batch
  auto v = (*st)->Verify();
  ASSERT_OK(v);
  EXPECT_TRUE(v->ok()) << ::testing::PrintToString(v->failures);
}

// --- logger -------------------------------------------------------------------

// Options::logger and the audit callback over a workload with erasure,
// holds, compaction, a damaged table file, verify and backup: no line holds
// a tenant id, a call id, a subject, call content, a hold reason, or 32+
// bytes of hex or base64.
TEST(Attack12Logger, NoPlaintextThroughTheLoggerOrAuditCallback) {
  TestStore ts;
  auto mu = std::make_shared<std::mutex>();
  auto lines = std::make_shared<std::vector<std::string>>();
  ts.options.logger = [mu, lines](LogLevel, std::string_view source, std::string_view msg) {
    std::lock_guard<std::mutex> l(*mu);
    lines->push_back(std::string(source) + ": " + std::string(msg));
  };
  ts.options.audit_callback = [mu, lines](const AuditEvent& e) {
    std::lock_guard<std::mutex> l(*mu);
    lines->push_back("audit_callback " + e.kind + ": " + e.detail);
  };
  ASSERT_OK(ts.Open());
  const std::string tenant = "tenantzqx";
  ASSERT_OK(ts->CreateTenant(TenantSpec{tenant, "", 1}));
  for (int i = 0; i < 40; ++i) {
    Call c = MakeCall("callzqx" + std::to_string(i), kAt + i, "PLAINZQX");
    c.participants[0].email = "subjectzqx@example.com";
    ASSERT_OK(ts->PutCall(tenant, c));
  }
  ASSERT_OK(ts->PlaceHold(tenant, Hold{"holdzqx", "reasonzqx", "callzqx1", 0}));
  Call patch = MakeCall("callzqx2", kAt + 2, "PLAINZQX patched");
  ASSERT_OK(ts->UpdateCall(tenant, "callzqx2", kPartFields, patch));
  ASSERT_OK(ts->Flush());
  ASSERT_OK(ts->CompactAll());
  EraseRequest er;
  er.subject = "subjectzqx@example.com";
  auto erased = ts->Erase(tenant, er);
  EXPECT_TRUE(erased.ok() || erased.status().code() == Code::kFailedPrecondition) << erased.status().ToString();
  ASSERT_OK(ts->ReleaseHold(tenant, "holdzqx"));
  ASSERT_OK(ts->RunRetention(kAt + int64_t{400} * 86400 * 1000000));
  ASSERT_OK(ts->Backup(ts.tmp.Sub("bk")));
  ASSERT_OK(ts->Verify());
  // A damaged table file of the tenant: the corruption's messages too.
  for (int i = 0; i < 20; ++i) {
    ASSERT_OK(ts->PutCall(tenant, MakeCall("late" + std::to_string(i), kAt + int64_t{500} * 86400 * 1000000,
                                           "PLAINZQX")));
  }
  ASSERT_OK(ts->Flush());
  auto info = ts->DescribeTenant(tenant);
  ASSERT_OK(info);
  const std::string shard = ts->ShardPaths().at(info->shard);
  ts.Close();
  auto ssts = damage::FamilySsts(shard, info->column_family);
  ASSERT_FALSE(ssts.empty());
  damage::XorBytes(ssts.back(), fs::file_size(ssts.back()) / 3, 64);
  ASSERT_OK(ts.Open());
  (void)ts->GetCall(tenant, "late3");
  (void)ts->ListCalls(tenant, ListQuery{});
  (void)ts->Verify();
  (void)ts->Stats();
  ts.Close();

  std::lock_guard<std::mutex> l(*mu);
  ASSERT_GT(lines->size(), 10u);
  static const std::regex kHex("[0-9a-fA-F]{64}");
  static const std::regex kB64("[A-Za-z0-9+/]{43}=");
  for (const auto& line : *lines) {
    for (const char* canary : {"tenantzqx", "callzqx", "subjectzqx", "PLAINZQX", "reasonzqx", "Alice",
                               "+14155550100", "pricing and the roadmap", "late3"}) {
      EXPECT_EQ(line.find(canary), std::string::npos) << canary << " in: " << line;
    }
    EXPECT_FALSE(std::regex_search(line, kHex)) << line;
    EXPECT_FALSE(std::regex_search(line, kB64)) << line;
  }
}

}  // namespace
}  // namespace callvault
