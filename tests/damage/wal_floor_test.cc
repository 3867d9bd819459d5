// What the WAL scan (engine/wal_scan.cc) must not take for damage: WAL
// files recovery does not replay, and writes the engine leaves unsynced on
// purpose. Issue 11, the T2 false alarm of PowerLossTest.RandomTail
// ("WAL file N offset 0: truncated record; 4 acknowledged write(s) lost"
// after a plain power loss).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "callvault/store.h"
#include "tests/testutil/fault_fs.h"
#include "tests/testutil/testutil.h"

namespace callvault {
namespace {

using testutil::FaultFS;

constexpr int64_t kT0 = 1700000000000000;

Options FaultOptions(const std::string& keys, rocksdb::Env* env, bool create) {
  Options o = testutil::DefaultOptions(keys);
  auto kp = NewFileKeyProvider(keys, {.create_if_missing = create, .env = env});
  if (!kp.ok()) std::abort();
  o.key_provider = *kp;
  o.env = env;
  o.create_if_missing = create;
  return o;
}

namespace fs = std::filesystem;

std::vector<std::string> Wals(const std::string& dir) {
  std::vector<std::string> v;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().extension() == ".log") v.push_back(e.path().string());
  }
  std::sort(v.begin(), v.end());
  return v;
}

// RocksDB deletes the WALs a flush made obsolete newest first. A crash in
// the middle leaves an older one, here with the torn tail of an earlier
// crash, beside the newer live WALs: the sequence numbers jump from its
// last whole record to the first live one, and a scan that reads it as
// part of what recovery replays calls the jump acknowledged writes lost.
// Recovery skips it (below the MANIFEST's replay floor); so must the scan.
TEST(WalFloor, TornObsoleteWalLeftByACrashIsQuiet) {
  testutil::TestStore s;
  ASSERT_OK(s.Open());
  ASSERT_OK(s->CreateTenant({.tenant_id = "acme"}));
  ASSERT_OK(s->PutCall("acme", testutil::MakeCall("c1", kT0)));
  ASSERT_OK(s->PutCall("acme", testutil::MakeCall("c2", kT0 + 1)));
  const std::string shard = s.db + "/shards/0000";
  // A crash image: the live directories copied while the store is open
  // (every write above was synced), then a torn append at the WAL's end.
  testutil::TempDir img;
  testutil::CopyTree(s.tmp.path(), img.path());
  s.Close();
  fs::remove_all(s.db);
  fs::remove_all(s.keys);
  testutil::CopyTree(img.path(), s.tmp.path());
  const std::vector<std::string> before = Wals(shard);
  ASSERT_FALSE(before.empty());
  const std::string torn = before.back();
  ASSERT_GT(fs::file_size(torn), 0u);
  {
    std::ofstream f(torn, std::ios::app | std::ios::binary);
    const char header[7] = {0x11, 0x22, 0x33, 0x44, static_cast<char>(200), 0, 1};  // FULL, 200 bytes
    f.write(header, sizeof header);
    f.write(std::string(20, 'z').data(), 20);  // ... of which 20 reached the disk
  }
  ASSERT_OK(s.Open());  // a torn tail: quiet
  EXPECT_FALSE(s->DescribeTenant("acme")->damaged);
  ASSERT_OK(s->PutCall("acme", testutil::MakeCall("c3", kT0 + 2)));
  testutil::TempDir keep;
  fs::copy_file(torn, keep.path() + "/torn.log");
  ASSERT_OK(s->Flush());  // the WALs so far are obsolete now, and deleted
  ASSERT_FALSE(fs::exists(torn)) << "the flush did not retire " << torn;
  ASSERT_OK(s->PutCall("acme", testutil::MakeCall("c4", kT0 + 3)));
  ASSERT_OK(s->PutCall("acme", testutil::MakeCall("c5", kT0 + 4)));
  s.Close();
  // The crash came while RocksDB deleted the obsolete WALs: the newer one
  // went, the torn older one stayed.
  fs::copy_file(keep.path() + "/torn.log", torn);
  ASSERT_OK(s.Open());
  auto d = s->DescribeTenant("acme");
  ASSERT_OK(d);
  EXPECT_FALSE(d->damaged) << "an obsolete WAL's torn tail was taken for lost writes";
  for (const char* id : {"c1", "c2", "c3", "c4", "c5"}) {
    SCOPED_TRACE(id);
    auto got = s->GetCall("acme", id, kPartAll);
    EXPECT_OK(got);
  }
  auto v = s->Verify(std::nullopt);
  ASSERT_OK(v);
  EXPECT_TRUE(v->ok());
}

// A power loss in the middle of a MANIFEST write (a flush, a new tenant's
// family), its unsynced bytes then cut and garbled as a torn write leaves
// them (FaultFS kTornGarbled). Appending edits to one MANIFEST, the file
// CURRENT names could hold such a tail, and 7.8 refuses a store whose
// MANIFEST has a garbled record ("checksum mismatch", acknowledged or not:
// T2 TornGarbled). With a new MANIFEST per edit (CURRENT names it only
// once it is synced) the power loss never touches the MANIFEST CURRENT
// names (decision 0025; it failed with appended edits, decision 0024).
TEST(WalFloor, TornManifestWriteNeverHitsTheCurrentManifest) {
  testutil::TempDir prepared;
  const std::string pdb = prepared.Sub("db"), pkeys = prepared.Sub("keys");
  {
    auto st = Store::Open(FaultOptions(pkeys, rocksdb::Env::Default(), true), pdb);
    ASSERT_OK(st);
    ASSERT_OK((*st)->CreateTenant({.tenant_id = "acme"}));
    for (int i = 0; i < 4; ++i) {
      ASSERT_OK((*st)->PutCall("acme", testutil::MakeCall("c" + std::to_string(i), kT0 + i)));
    }
  }
  int trials = 0, manifest_in_flight = 0;
  for (uint64_t n = 1; n < 40; ++n) {
    SCOPED_TRACE("power loss at I/O " + std::to_string(n));
    testutil::TempDir tmp;
    testutil::CopyTree(prepared.path(), tmp.path());
    const std::string db = tmp.Sub("db"), keys = tmp.Sub("keys");
    bool frozen = false;
    std::string lost;
    {
      auto ffs = std::make_shared<FaultFS>(n);
      auto env = testutil::FaultEnv(ffs);
      auto st = Store::Open(FaultOptions(keys, env.get(), false), db);
      ASSERT_OK(st);
      ffs->FreezeAt(n);
      (*st)->Flush().IgnoreError();
      (*st)->CreateTenant({.tenant_id = "bravo"}).status().IgnoreError();
      (*st)->Flush().IgnoreError();
      frozen = ffs->frozen();
      if (!frozen) ffs->Freeze();
      st.value().reset();
      lost = ffs->SimulatePowerLoss(testutil::PowerLossMode::kTornGarbled);
    }
    ++trials;
    // Which MANIFEST each instance's CURRENT names after the power loss;
    // none of them may have lost or garbled a byte.
    for (const std::string& dir : {db + "/meta", db + "/shards/0000"}) {
      std::ifstream in(dir + "/CURRENT");
      std::string current;
      std::getline(in, current);
      ASSERT_FALSE(current.empty()) << dir;
      if (lost.find("MANIFEST") != std::string::npos) ++manifest_in_flight;
      EXPECT_EQ(lost.find(dir + "/" + current + " "), std::string::npos)
          << "the power loss cut the MANIFEST CURRENT names: " << lost;
    }
    auto st = Store::Open(FaultOptions(keys, rocksdb::Env::Default(), false), db);
    ASSERT_OK(st);
    auto d = (*st)->DescribeTenant("acme");
    ASSERT_OK(d);
    EXPECT_FALSE(d->damaged);
    for (int i = 0; i < 4; ++i) {
      auto got = (*st)->GetCall("acme", "c" + std::to_string(i), kPartAll);
      EXPECT_OK(got);
    }
    if (!frozen) break;  // the power went after the last operation
  }
  std::printf("[walfloor] torn MANIFEST writes: %d power losses, %d with a MANIFEST write in "
              "flight, none cut the MANIFEST CURRENT names\n", trials, manifest_in_flight);
  EXPECT_GT(manifest_in_flight, 3);
}

// The other side of the test above: a damaged record the MANIFEST CURRENT
// names holds *synced* (an edit acknowledged: a family created, a flush
// whose WAL may be gone) is never taken for a torn tail: the open is
// refused with kCorruption, or the tenant is marked damaged (decision 0025).
// After a clean close (the high-water mark knows the MANIFEST's size) and
// in a crash image (no mark: RocksDB's own checksum).
TEST(WalFloor, DamagedSyncedManifestRecordIsLoud) {
  for (const bool crash : {false, true}) {
    SCOPED_TRACE(crash ? "crash image" : "after a clean close");
    testutil::TestStore s;
    ASSERT_OK(s.Open());
    ASSERT_OK(s->CreateTenant({.tenant_id = "acme"}));
    ASSERT_OK(s->PutCall("acme", testutil::MakeCall("c1", kT0)));
    ASSERT_OK(s->Flush());
    ASSERT_OK(s->CreateTenant({.tenant_id = "bravo"}));  // the last edit: bravo's family
    const std::string shard = s.db + "/shards/0000";
    testutil::TempDir img;
    if (crash) testutil::CopyTree(s.tmp.path(), img.path());
    s.Close();
    if (crash) {
      fs::remove_all(s.db);
      fs::remove_all(s.keys);
      testutil::CopyTree(img.path(), s.tmp.path());
    }
    std::string current;
    {
      std::ifstream in(shard + "/CURRENT");
      std::getline(in, current);
    }
    const std::string manifest = shard + "/" + current;
    const auto size = fs::file_size(manifest);
    ASSERT_GT(size, 8u);
    {
      std::fstream f(manifest, std::ios::in | std::ios::out | std::ios::binary);
      f.seekg(static_cast<std::streamoff>(size - 3));
      char c = 0;
      f.read(&c, 1);
      c = static_cast<char>(c ^ 0x5a);
      f.seekp(static_cast<std::streamoff>(size - 3));
      f.write(&c, 1);
    }
    Status st = s.Open();
    if (!st.ok()) {
      EXPECT_EQ(st.code(), Code::kCorruption) << st.ToString();
      EXPECT_EQ(st.message().find("acme"), std::string::npos) << st.ToString();
      std::printf("[walfloor] damaged synced MANIFEST record (%s): open refused: %s\n",
                  crash ? "crash image" : "clean close", st.ToString().c_str());
      continue;
    }
    auto d = s->DescribeTenant("bravo");
    ASSERT_OK(d);
    EXPECT_TRUE(d->damaged) << "a damaged synced MANIFEST edit was dropped quietly";
    std::printf("[walfloor] damaged synced MANIFEST record (%s): opened, bravo damaged=%d\n",
                crash ? "crash image" : "clean close", static_cast<int>(d->damaged));
  }
}

// A crash inside fsutil::AtomicWrite during a WAL repair (between the temp
// file's create and its rename) leaves `<name>.tmp` in the shard
// directory: the next writable open removes those of its own names
// (NNNNNN.log, .log.damage, .log.damaged + .tmp) and nothing else; a
// read-only open removes nothing.
TEST(WalFloor, StaleRepairTempFilesRemovedAtWritableOpenOnly) {
  testutil::TestStore s;
  ASSERT_OK(s.Open());
  ASSERT_OK(s->CreateTenant({.tenant_id = "acme"}));
  ASSERT_OK(s->PutCall("acme", testutil::MakeCall("c1", kT0)));
  s.Close();
  const std::string shard = s.db + "/shards/0000";
  const std::vector<std::string> ours = {"000123.log.tmp", "000123.log.damage.tmp",
                                         "000123.log.damaged.tmp"};
  const std::vector<std::string> foreign = {"notes.tmp", "000123.sst.tmp", "x000123.log.tmp",
                                            "000123.log.tmp.keep"};
  for (const auto& n : ours) std::ofstream(shard + "/" + n) << "partial";
  for (const auto& n : foreign) std::ofstream(shard + "/" + n) << "not ours";
  s.options.read_only = true;
  s.options.create_if_missing = false;
  ASSERT_OK(s.Open());
  s.Close();
  for (const auto& n : ours) EXPECT_TRUE(fs::exists(shard + "/" + n)) << n << " removed read-only";
  s.options.read_only = false;
  ASSERT_OK(s.Open());
  for (const auto& n : ours) EXPECT_FALSE(fs::exists(shard + "/" + n)) << n << " left behind";
  for (const auto& n : foreign) EXPECT_TRUE(fs::exists(shard + "/" + n)) << n << " removed";
  EXPECT_OK(s->GetCall("acme", "c1", kPartAll));
}

// A power loss that drops writes the engine made unsynced on purpose
// (recording markers and chunks before Finish) while a later MANIFEST edit
// (a new tenant's column family) was made: nothing acknowledged is lost, so
// the store opens quiet, now and at every later open.
TEST(WalFloor, PowerLossAfterUnsyncedRecordingWritesIsQuiet) {
  testutil::TempDir tmp;
  const std::string db = tmp.Sub("db"), keys = tmp.Sub("keys");
  {
    auto ffs = std::make_shared<FaultFS>(1);
    auto env = testutil::FaultEnv(ffs);
    auto st = Store::Open(FaultOptions(keys, env.get(), true), db);
    ASSERT_OK(st);
    ASSERT_OK((*st)->CreateTenant({.tenant_id = "acme"}));
    ASSERT_OK((*st)->PutCall("acme", testutil::MakeCall("c1", kT0)));
    // Unsynced on purpose: the marker and a chunk, visible only at Finish.
    RecordingSpec spec;
    spec.recording_id = "r1";
    auto w = (*st)->CreateRecording("acme", "c1", spec);
    ASSERT_OK(w);
    ASSERT_OK((*w)->Append(std::string(300u << 10, 'x')));
    ASSERT_OK((*w)->Append(std::string(900u << 10, 'y')));
    // A MANIFEST edit (CreateColumnFamily) records the last sequence.
    ASSERT_OK((*st)->CreateTenant({.tenant_id = "bravo"}));
    ffs->Freeze();
    w.value().reset();
    st.value().reset();
    ffs->SimulatePowerLoss(testutil::PowerLossMode::kDropUnsynced);
  }
  for (int round = 0; round < 3; ++round) {
    SCOPED_TRACE("open " + std::to_string(round));
    auto st = Store::Open(FaultOptions(keys, rocksdb::Env::Default(), false), db);
    ASSERT_OK(st);
    for (const char* t : {"acme", "bravo"}) {
      auto d = (*st)->DescribeTenant(t);
      ASSERT_OK(d);
      EXPECT_FALSE(d->damaged) << t << " marked damaged after a plain power loss";
    }
    auto got = (*st)->GetCall("acme", "c1", kPartAll);
    EXPECT_OK(got);
    ASSERT_OK((*st)->PutCall("acme", testutil::MakeCall("c" + std::to_string(round + 2), kT0)));
    ASSERT_OK((*st)->Close());
  }
}

}  // namespace
}  // namespace callvault
