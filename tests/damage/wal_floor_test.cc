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
#include "engine/manifest_mark.h"
#include "tests/damage/damage_util.h"
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
// them (FaultFS kTornGarbled). Edits are appended to one MANIFEST, so the
// file CURRENT names holds such a tail, and 7.8 refuses a MANIFEST with a
// garbled record ("checksum mismatch", acknowledged or not). The open
// reads it only up to its last whole record, because every unreadable
// byte lies past the length MANIFEST_SYNCED records as synced (decision
// 0067; 0024 met this as T2 TornGarbled failures, 0025 avoided it with a
// new MANIFEST per edit at ~1.5x the cost of a flush).
TEST(WalFloor, TornManifestTailIsNotRead) {
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
  int trials = 0, current_torn = 0;
  for (uint64_t n = 1; n < 60; ++n) {
    SCOPED_TRACE("power loss at I/O " + std::to_string(n));
    testutil::TempDir tmp;
    testutil::CopyTree(prepared.path(), tmp.path());
    const std::string db = tmp.Sub("db"), keys = tmp.Sub("keys");
    bool frozen = false, bravo_acked = false;
    std::string lost;
    {
      auto ffs = std::make_shared<FaultFS>(n);
      auto env = testutil::FaultEnv(ffs);
      auto st = Store::Open(FaultOptions(keys, env.get(), false), db);
      ASSERT_OK(st);
      ffs->FreezeAt(n);
      (*st)->Flush().IgnoreError();
      bravo_acked = (*st)->CreateTenant({.tenant_id = "bravo"}).ok();
      (*st)->Flush().IgnoreError();
      frozen = ffs->frozen();
      if (!frozen) ffs->Freeze();
      st.value().reset();
      lost = ffs->SimulatePowerLoss(testutil::PowerLossMode::kTornGarbled);
    }
    ++trials;
    // Whether the power loss tore the MANIFEST CURRENT names after it.
    for (const std::string& dir : {db + "/meta", db + "/shards/0000"}) {
      std::ifstream in(dir + "/CURRENT");
      std::string current;
      std::getline(in, current);
      ASSERT_FALSE(current.empty()) << dir;
      if (lost.find(dir + "/" + current + " ") != std::string::npos) ++current_torn;
    }
    auto st = Store::Open(FaultOptions(keys, rocksdb::Env::Default(), false), db);
    ASSERT_TRUE(st.ok()) << st.status().ToString() << "\n" << lost;
    auto d = (*st)->DescribeTenant("acme");
    ASSERT_OK(d);
    EXPECT_FALSE(d->damaged);
    for (int i = 0; i < 4; ++i) {
      auto got = (*st)->GetCall("acme", "c" + std::to_string(i), kPartAll);
      EXPECT_OK(got);
    }
    if (bravo_acked) {
      auto b = (*st)->DescribeTenant("bravo");
      EXPECT_TRUE(b.ok()) << "an acknowledged tenant lost with a torn MANIFEST tail";
      if (b.ok()) {
        EXPECT_FALSE(b->damaged);
      }
    }
    if (!frozen) break;  // the power went after the last operation
  }
  std::printf("[walfloor] torn MANIFEST writes: %d power losses, %d tore the MANIFEST CURRENT "
              "names; every store opened with nothing acknowledged lost\n",
              trials, current_torn);
  EXPECT_GT(current_torn, 3);
}

// The mark decides. Garbage appended to the MANIFEST CURRENT names (a torn
// write's bytes, past the synced end) is not read, in writable and
// read-only opens alike; the same garbage with MANIFEST_SYNCED gone (a
// store restored by hand, an older build's) or with both its slots damaged
// is refused as RocksDB refuses it, never cut on a guess.
TEST(WalFloor, GarbagePastTheSyncedMarkIsNotRead) {
  for (const char* variant : {"mark", "no mark", "damaged mark"}) {
    SCOPED_TRACE(variant);
    testutil::TestStore s;
    ASSERT_OK(s.Open());
    ASSERT_OK(s->CreateTenant({.tenant_id = "acme"}));
    ASSERT_OK(s->PutCall("acme", testutil::MakeCall("c1", kT0)));
    ASSERT_OK(s->Flush());
    s.Close();
    const std::string shard = s.db + "/shards/0000";
    std::string current;
    {
      std::ifstream in(shard + "/CURRENT");
      std::getline(in, current);
    }
    const auto size = fs::file_size(shard + "/" + current);
    damage::AppendGarbledRecord(shard + "/" + current);
    const std::string mark = shard + "/MANIFEST_SYNCED";
    ASSERT_TRUE(fs::exists(mark));
    ASSERT_EQ(fs::file_size(mark), 8192u);
    if (std::string(variant) == "no mark") fs::remove(mark);
    if (std::string(variant) == "damaged mark") {
      std::fstream f(mark, std::ios::in | std::ios::out | std::ios::binary);
      for (std::streamoff off : {std::streamoff(20), std::streamoff(4096 + 20)}) {
        f.seekp(off);
        f.put('\x7f');
      }
    }
    s.options.create_if_missing = false;
    if (std::string(variant) != "mark") {
      // Loud: the open refused, or the shard's tenant marked damaged.
      Status st = s.Open();
      if (!st.ok()) {
        EXPECT_EQ(st.code(), Code::kCorruption) << st.ToString();
      } else {
        auto d = s->DescribeTenant("acme");
        ASSERT_OK(d);
        EXPECT_TRUE(d->damaged) << "a MANIFEST with an unreadable tail and no mark read quietly";
      }
      std::printf("[walfloor] garbage past the MANIFEST's end, %s: %s\n", variant,
                  st.ok() ? "acme marked damaged" : st.ToString().c_str());
      continue;
    }
    s.options.read_only = true;
    ASSERT_OK(s.Open());
    EXPECT_OK(s->GetCall("acme", "c1", kPartAll));
    s.Close();
    EXPECT_EQ(fs::file_size(shard + "/" + current), size + 300) << "a read-only open wrote";
    s.options.read_only = false;
    ASSERT_OK(s.Open());
    auto d = s->DescribeTenant("acme");
    ASSERT_OK(d);
    EXPECT_FALSE(d->damaged);
    EXPECT_OK(s->GetCall("acme", "c1", kPartAll));
    ASSERT_OK(s->PutCall("acme", testutil::MakeCall("c2", kT0 + 1)));
    s.Close();
    ASSERT_OK(s.Open());
    EXPECT_OK(s->GetCall("acme", "c2", kPartAll));
  }
}

// MANIFEST_SYNCED replaced by a symlink (to a file of the right size, or
// to a file elsewhere the process may write): never written through, never
// read as a mark; the next MANIFEST sync makes a regular file again.
TEST(ManifestMark, PlantedSymlinkIsNeverFollowed) {
  testutil::TestStore s;
  ASSERT_OK(s.Open());
  ASSERT_OK(s->CreateTenant({.tenant_id = "acme"}));
  ASSERT_OK(s->PutCall("acme", testutil::MakeCall("c1", kT0)));
  s.Close();
  const std::string mark = s.db + "/shards/0000/MANIFEST_SYNCED";
  const std::string victim = s.tmp.Sub("victim");
  const std::string victim_bytes(kManifestMarkFileBytes, 'v');
  {
    std::ofstream(victim, std::ios::binary) << victim_bytes;
  }
  fs::remove(mark);
  fs::create_symlink(victim, mark);
  ASSERT_OK(s.Open());
  ASSERT_OK(s->PutCall("acme", testutil::MakeCall("c2", kT0 + 1)));
  ASSERT_OK(s->Flush());  // MANIFEST edits: marks written
  s.Close();
  std::ifstream in(victim, std::ios::binary);
  const std::string after((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(after, victim_bytes) << "a mark was written through a planted symlink";
  EXPECT_FALSE(fs::is_symlink(mark));
  EXPECT_TRUE(fs::is_regular_file(mark));
  EXPECT_EQ(fs::file_size(mark), kManifestMarkFileBytes);
  ASSERT_OK(s.Open());
  EXPECT_OK(s->GetCall("acme", "c2", kPartAll));
}

// The slots of MANIFEST_SYNCED: the newer whole slot naming the MANIFEST
// wins; a torn slot leaves the other; a slot of another MANIFEST, a short
// or damaged file name nothing.
TEST(ManifestMark, SlotsDecideTheSyncedLength) {
  auto file = [](const std::optional<ManifestMarkSlot>& a, const std::optional<ManifestMarkSlot>& b) {
    std::string f(kManifestMarkFileBytes, '\0');
    if (a) f.replace(0, 36, EncodeManifestMarkSlot(*a));
    if (b) f.replace(kManifestMarkSlotBytes, 36, EncodeManifestMarkSlot(*b));
    return f;
  };
  const std::string both = file(ManifestMarkSlot{7, 12, 5000}, ManifestMarkSlot{8, 12, 5200});
  EXPECT_EQ(SyncedManifestBytes(both, 12), std::optional<uint64_t>(5200));
  EXPECT_EQ(SyncedManifestBytes(file(ManifestMarkSlot{9, 12, 5400}, ManifestMarkSlot{8, 12, 5200}), 12),
            std::optional<uint64_t>(5400));
  EXPECT_EQ(SyncedManifestBytes(both, 13), std::nullopt);
  // A new MANIFEST's first sync beside the last of the one CURRENT still names.
  const std::string roll = file(ManifestMarkSlot{9, 14, 900}, ManifestMarkSlot{8, 12, 5200});
  EXPECT_EQ(SyncedManifestBytes(roll, 12), std::optional<uint64_t>(5200));
  EXPECT_EQ(SyncedManifestBytes(roll, 14), std::optional<uint64_t>(900));
  // Torn: any byte of the newer slot changed, the older one is read.
  for (size_t i = 0; i < 36; ++i) {
    std::string t = both;
    t[kManifestMarkSlotBytes + i] ^= 0x01;
    EXPECT_EQ(SyncedManifestBytes(t, 12), std::optional<uint64_t>(5000)) << "byte " << i;
  }
  EXPECT_EQ(SyncedManifestBytes(both.substr(0, 8191), 12), std::nullopt);
  EXPECT_EQ(SyncedManifestBytes(std::string(kManifestMarkFileBytes, '\0'), 12), std::nullopt);
  EXPECT_EQ(ManifestNumber("MANIFEST-000012"), std::optional<uint64_t>(12));
  EXPECT_EQ(ManifestNumber("MANIFEST-"), std::nullopt);
  EXPECT_EQ(ManifestNumber("MANIFEST-12x"), std::nullopt);
  EXPECT_EQ(ManifestNumber("MANIFEST_SYNCED"), std::nullopt);
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
