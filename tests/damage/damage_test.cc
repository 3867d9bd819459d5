// Damaged files of a closed store (issue 11 items 1 and 2; decision 0014).
// Each case damages a real file of a real store by hand, reopens, and
// checks that the damage is loud (kCorruption with a specific message, an
// audit event, the callback, Verify not ok), that it is contained to the
// tenant it hit (the other tenants, same shard included, read and write),
// that the damaged state survives a reopen, and that an operator can act
// (AcceptTenantDamage, PurgeTenant). A torn tail stays quiet.
#include <gtest/gtest.h>
#include <rocksdb/metadata.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>

#include "callvault/store.h"
#include "engine/wal_scan.h"
#include "tests/testutil/raw_shard.h"
#include "tests/testutil/testutil.h"

namespace callvault {
namespace {

namespace fs = std::filesystem;
using testutil::MakeCall;
using testutil::TestStore;

uint64_t FileSize(const std::string& p) { return fs::file_size(p); }

void XorBytes(const std::string& path, uint64_t offset, size_t n, uint8_t mask = 0x5a) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  ASSERT_TRUE(f) << path;
  for (size_t i = 0; i < n; ++i) {
    f.seekg(static_cast<std::streamoff>(offset + i));
    char c = 0;
    f.read(&c, 1);
    c = static_cast<char>(c ^ mask);
    f.seekp(static_cast<std::streamoff>(offset + i));
    f.write(&c, 1);
  }
}

void ZeroBytes(const std::string& path, uint64_t offset, size_t n) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  ASSERT_TRUE(f) << path;
  f.seekp(static_cast<std::streamoff>(offset));
  std::string z(n, '\0');
  f.write(z.data(), static_cast<std::streamsize>(n));
}

// The files of `dir` ending in `ext`, sorted by name.
std::vector<std::string> FilesWith(const std::string& dir, const std::string& ext) {
  std::vector<std::string> v;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().extension() == ext) v.push_back(e.path().string());
  }
  std::sort(v.begin(), v.end());
  return v;
}

std::string Shard0(const TestStore& s) { return s.db + "/shards/0000"; }

// A store with an audit callback that keeps every event it sees.
struct Fixture : ::testing::Test {
  TestStore s;
  std::mutex mu;
  std::vector<AuditEvent> seen;
  void SetUp() override {
    s.options.audit_callback = [this](const AuditEvent& e) {
      std::lock_guard<std::mutex> l(mu);
      seen.push_back(e);
    };
    ASSERT_OK(s.Open());
    ASSERT_OK(s->CreateTenant({"acme", "", 0}));
    ASSERT_OK(s->CreateTenant({"bravo", "", 0}));
    ASSERT_EQ(s->DescribeTenant("acme")->shard, s->DescribeTenant("bravo")->shard);
  }
  bool Saw(const std::string& kind) {
    std::lock_guard<std::mutex> l(mu);
    for (const auto& e : seen) {
      if (e.kind == kind) return true;
    }
    return false;
  }
  void Put(const std::string& t, const std::string& id, int64_t at = 1700000000000000) {
    ASSERT_OK(s->PutCall(t, MakeCall(id, at)));
  }
  void ExpectCalls(const std::string& t, const std::vector<std::string>& ids) {
    for (const auto& id : ids) EXPECT_OK(s->GetCall(t, id, kPartAll));
  }
  void ExpectDamaged(const std::string& t, const std::string& needle) {
    auto g = s->GetCall(t, "any", kPartAll);
    EXPECT_CODE(g, Code::kCorruption);
    EXPECT_NE(g.status().message().find("tenant damaged: "), std::string::npos)
        << g.status().ToString();
    EXPECT_NE(g.status().message().find(needle), std::string::npos) << g.status().ToString();
    EXPECT_CODE(s->PutCall(t, MakeCall("new-after-damage", 1700000000000000)), Code::kCorruption);
    auto info = s->DescribeTenant(t);
    ASSERT_OK(info);
    EXPECT_TRUE(info->damaged);
    EXPECT_NE(info->damage.find(needle), std::string::npos) << info->damage;
    auto st = s->Stats();
    ASSERT_OK(st);
    ASSERT_EQ(st->damaged_tenants.size(), 1u);
    EXPECT_EQ(st->damaged_tenants[0].rfind(t + ": ", 0), 0u) << st->damaged_tenants[0];
    auto v = s->Verify(std::nullopt);
    ASSERT_OK(v);
    EXPECT_FALSE(v->ok());
    ASSERT_EQ(v->damaged_tenants.size(), 1u);
    // The damage mark itself is a known, authentic metadata row.
    EXPECT_EQ(v->metadata_failed, 0u);
    for (const auto& f : v->failures) ADD_FAILURE() << f;
  }
  void ExpectHealthy(const std::string& t, const std::vector<std::string>& ids) {
    ExpectCalls(t, ids);
    EXPECT_OK(s->PutCall(t, MakeCall(t + "-written-after", 1700000000000000)));
    EXPECT_OK(s->GetCall(t, t + "-written-after", kPartAll));
    EXPECT_FALSE(s->DescribeTenant(t)->damaged);
  }
};

// The newest WAL of shard 0 and its size now (the store is open: synced).
std::pair<std::string, uint64_t> NewestWal(const TestStore& s) {
  auto v = FilesWith(Shard0(s), ".log");
  if (v.empty()) return {"", 0};
  return {v.back(), FileSize(v.back())};
}

// Item 1: a byte flipped in the middle of a shard WAL record with 10
// acknowledged calls after it. On the old code the open succeeded, verify
// was ok, and every call after the flip (of both tenants) was gone.
TEST_F(Fixture, WalFlipMidLogIsLoudAndContained) {
  for (int i = 0; i < 3; ++i) Put("acme", "a" + std::to_string(i));
  Put("bravo", "b0");
  auto [wal, before] = NewestWal(s);
  Put("acme", "a-target");
  auto [wal2, after] = NewestWal(s);
  ASSERT_EQ(wal, wal2);
  std::vector<std::string> a_after, b_after = {"b0"};
  for (int i = 0; i < 5; ++i) {
    Put("bravo", "b-after" + std::to_string(i));
    b_after.push_back("b-after" + std::to_string(i));
    Put("acme", "a-after" + std::to_string(i));
    a_after.push_back("a-after" + std::to_string(i));
  }
  s.Close();
  XorBytes(wal, before + (after - before) / 2, 1, 0x01);
  const uint64_t wal_bytes = FileSize(wal);

  ASSERT_OK(s.Open());
  ExpectDamaged("acme", "WAL file");
  ExpectHealthy("bravo", b_after);
  EXPECT_TRUE(Saw("wal_damage"));
  EXPECT_TRUE(Saw("tenant_damaged") || Saw("wal_damage"));
  auto events = s->ListAudit(0, "wal_damage");
  ASSERT_OK(events);
  ASSERT_EQ(events->size(), 1u);
  EXPECT_NE((*events)[0].detail.find(fs::path(wal).filename().string()), std::string::npos)
      << (*events)[0].detail;
  // The damaged WAL was retired: a reopen neither scans nor replays it,
  // and the tenant stays damaged from its stored mark.
  EXPECT_FALSE(fs::exists(wal) && FileSize(wal) == wal_bytes);
  ASSERT_OK(s.Reopen());
  ExpectDamaged("acme", "WAL file");
  ExpectHealthy("bravo", b_after);

  // The operator accepts the loss: what survived is served again; only the
  // damaged record's call is gone.
  ASSERT_OK(s->AcceptTenantDamage("acme"));
  EXPECT_CODE(s->AcceptTenantDamage("acme"), Code::kFailedPrecondition);
  ExpectCalls("acme", {"a0", "a1", "a2"});
  ExpectCalls("acme", a_after);
  EXPECT_CODE(s->GetCall("acme", "a-target", kPartAll), Code::kNotFound);
  ExpectHealthy("acme", {});
  auto accepted = s->ListAudit(0, "damage_accepted");
  ASSERT_OK(accepted);
  EXPECT_EQ(accepted->size(), 1u);
  ASSERT_OK(s.Reopen());
  EXPECT_FALSE(s->DescribeTenant("acme")->damaged);
  EXPECT_TRUE(s->Verify(std::nullopt)->ok());
  std::printf("[damage] wal flip: acme damaged, bravo %zu calls intact, acme %zu of %zu kept\n",
              b_after.size(), a_after.size() + 3, a_after.size() + 4);
}

// Zeroed bytes mid-log: RocksDB skips the rest of the block without a word
// in any recovery mode; the scan does not.
TEST_F(Fixture, WalZeroedMidLogIsLoud) {
  Put("bravo", "b0");
  auto [wal, before] = NewestWal(s);
  Put("acme", "a-target");
  auto [wal2, after] = NewestWal(s);
  for (int i = 0; i < 10; ++i) Put(i % 2 ? "acme" : "bravo", "after" + std::to_string(i));
  s.Close();
  // 64 zero bytes inside the record's value: its checksum fails, its
  // header and column family still parse.
  ZeroBytes(wal, before + (after - before) / 2, 64);
  ASSERT_OK(s.Open());
  ExpectDamaged("acme", "checksum mismatch");
  // bravo's records after it, in the same 32 KiB block (which RocksDB
  // drops whole after a bad record), were kept by the repair.
  ExpectHealthy("bravo", {"b0", "after0", "after2", "after4", "after6", "after8"});
  ExpectCalls("bravo", {"b0"});
}

// Damage that cannot be attributed (a damaged record whose batch does not
// parse) damages every tenant of the shard, loudly; never none.
TEST_F(Fixture, UnattributableWalDamageDamagesTheWholeShard) {
  Put("bravo", "b0");
  auto [wal, before] = NewestWal(s);
  Put("acme", "a-target");
  for (int i = 0; i < 6; ++i) Put(i % 2 ? "acme" : "bravo", "after" + std::to_string(i));
  s.Close();
  // The record's header length and the batch header: nothing parses.
  XorBytes(wal, before + 4, 12, 0xff);
  ASSERT_OK(s.Open());
  EXPECT_TRUE(s->DescribeTenant("acme")->damaged);
  EXPECT_TRUE(s->DescribeTenant("bravo")->damaged);
  EXPECT_FALSE(s->Verify(std::nullopt)->ok());
  // A tenant created now, in the same shard, is fine.
  ASSERT_OK(s->CreateTenant({"charlie", "", 0}));
  ExpectHealthy("charlie", {});
}

// A torn tail (the write in flight at a crash; never acknowledged) is
// recovered quietly: truncated, or garbled in place, and again after
// writes made since the recovery.
TEST_F(Fixture, TornTailIsQuiet) {
  std::vector<std::string> acked;
  for (int i = 0; i < 8; ++i) {
    Put(i % 2 ? "acme" : "bravo", "c" + std::to_string(i));
    acked.push_back("c" + std::to_string(i));
  }
  auto [wal, before] = NewestWal(s);
  Put("acme", "in-flight");
  auto [wal2, after] = NewestWal(s);
  s.Close();
  std::filesystem::resize_file(wal, before + (after - before) / 2);  // truncated mid-record
  ASSERT_OK(s.Open());
  for (size_t i = 0; i < acked.size(); ++i) EXPECT_OK(s->GetCall(i % 2 ? "acme" : "bravo", acked[i], kPartAll));
  EXPECT_FALSE(s->DescribeTenant("acme")->damaged);
  EXPECT_FALSE(s->DescribeTenant("bravo")->damaged);
  EXPECT_TRUE(s->Verify(std::nullopt)->ok());
  EXPECT_FALSE(Saw("wal_damage"));
  // Writes after that recovery, then a garbled (not truncated) tail.
  Put("acme", "later1");
  auto [wal3, before3] = NewestWal(s);
  Put("bravo", "in-flight2");
  auto [wal4, after3] = NewestWal(s);
  s.Close();
  XorBytes(wal4, before3 + (after3 - before3) / 2, after3 - before3 - (after3 - before3) / 2);
  ASSERT_OK(s.Open());
  EXPECT_OK(s->GetCall("acme", "later1", kPartAll));
  EXPECT_FALSE(s->DescribeTenant("acme")->damaged);
  EXPECT_FALSE(s->DescribeTenant("bravo")->damaged);
  EXPECT_TRUE(s->Verify(std::nullopt)->ok());
  EXPECT_FALSE(Saw("wal_damage"));
  ASSERT_OK(s.Reopen());
  EXPECT_TRUE(s->Verify(std::nullopt)->ok());
}

// The SST files of one family of shard 0 (the store closed).
std::vector<std::string> TenantSsts(const TestStore& s, const std::string& cf) {
  testutil::RawShard raw(Shard0(s), /*read_only=*/true);
  EXPECT_TRUE(raw.status().ok()) << raw.status().ToString();
  std::vector<std::string> v;
  if (!raw.status().ok()) return v;
  rocksdb::ColumnFamilyMetaData md;
  raw.db()->GetColumnFamilyMetaData(raw.cf(cf), &md);
  for (const auto& l : md.levels) {
    for (const auto& f : l.files) v.push_back(Shard0(s) + "/" + fs::path(f.name).filename().string());
  }
  return v;
}

// Item 2: bytes flipped in one tenant's SST. On the old code the open
// itself failed (the table's meta blocks are read at open), for every tenant.
TEST_F(Fixture, SstFlipDamagesOneTenantOnly) {
  std::vector<std::string> a, b;
  for (int i = 0; i < 20; ++i) {
    Put("acme", "a" + std::to_string(i));
    a.push_back("a" + std::to_string(i));
    Put("bravo", "b" + std::to_string(i));
    b.push_back("b" + std::to_string(i));
  }
  ASSERT_OK(s->Flush());
  const std::string cf = s->DescribeTenant("acme")->column_family;
  s.Close();
  auto ssts = TenantSsts(s, cf);
  ASSERT_FALSE(ssts.empty());
  // Near the end: the index, properties and footer that opening a table reads.
  const uint64_t size = FileSize(ssts[0]);
  XorBytes(ssts[0], size - 120, 64);
  ASSERT_OK(s.Open());
  ExpectHealthy("bravo", b);
  auto g = s->GetCall("acme", "a3", kPartAll);
  EXPECT_CODE(g, Code::kCorruption);
  ExpectDamaged("acme", "damaged files");
  EXPECT_TRUE(Saw("tenant_damaged") || Saw("file_damage"));
  ASSERT_OK(s.Reopen());
  ExpectDamaged("acme", "damaged files");
  ExpectHealthy("bravo", b);
  // Purging the damaged tenant works: crypto-shredding needs none of its data.
  auto receipt = s->PurgeTenant("acme");
  ASSERT_OK(receipt);
  EXPECT_EQ(s->DescribeTenant("acme")->state, TenantState::kPurged);
  EXPECT_TRUE(s->Verify(std::nullopt)->ok());
  ASSERT_OK(s.Reopen());
  EXPECT_EQ(s->DescribeTenant("acme")->state, TenantState::kPurged);
  EXPECT_TRUE(s->Stats()->damaged_tenants.empty());
  ExpectHealthy("bravo", b);
}

// A flipped data block (not read at open): the first read that meets it
// marks the tenant damaged for good, not just that one read.
TEST_F(Fixture, SstDataBlockFlipMarksTenantOnRead) {
  std::vector<std::string> b;
  for (int i = 0; i < 20; ++i) {
    Put("acme", "a" + std::to_string(i));
    Put("bravo", "b" + std::to_string(i));
    b.push_back("b" + std::to_string(i));
  }
  ASSERT_OK(s->Flush());
  const std::string cf = s->DescribeTenant("acme")->column_family;
  s.Close();
  auto ssts = TenantSsts(s, cf);
  ASSERT_FALSE(ssts.empty());
  XorBytes(ssts[0], 100, 32);  // the first data block
  ASSERT_OK(s.Open());
  EXPECT_FALSE(s->Verify(std::nullopt)->ok());  // the scan meets it
  ExpectDamaged("acme", "damaged files");
  ExpectHealthy("bravo", b);
  ASSERT_OK(s.Reopen());
  ExpectDamaged("acme", "damaged files");
}

// A flipped blob file (large values): the read that meets it marks the tenant.
TEST_F(Fixture, BlobFlipDamagesOneTenantOnly) {
  std::mt19937 rng(7);
  Call big = MakeCall("big", 1700000000000000);
  for (int i = 0; i < 40; ++i) {
    TranscriptSegment seg;
    seg.start_ms = static_cast<uint32_t>(i * 1000);
    seg.end_ms = seg.start_ms + 500;
    for (int k = 0; k < 16000; ++k) seg.text.push_back(static_cast<char>('!' + rng() % 90));
    big.transcript.push_back(std::move(seg));
  }
  ASSERT_OK(s->PutCall("acme", big));
  Put("bravo", "b0");
  ASSERT_OK(s->Flush());
  s.Close();
  auto blobs = FilesWith(Shard0(s), ".blob");
  ASSERT_EQ(blobs.size(), 1u);
  XorBytes(blobs[0], FileSize(blobs[0]) / 2, 16);
  ASSERT_OK(s.Open());
  EXPECT_CODE(s->GetCall("acme", "big", kPartAll), Code::kCorruption);
  ExpectDamaged("acme", "damaged files");
  ExpectHealthy("bravo", {"b0"});
}

// MANIFEST flips: the shard's or the metadata instance's. The store may
// stop, with a specific error, never silently.
TEST_F(Fixture, ManifestFlipsStopWithAClearError) {
  Put("acme", "a0");
  ASSERT_OK(s->Flush());
  s.Close();
  testutil::TempDir copy;
  testutil::CopyTree(s.tmp.path(), copy.path());
  for (const std::string& dir : std::vector<std::string>{Shard0(s), s.db + "/meta"}) {
    std::string manifest;
    for (const auto& f : fs::directory_iterator(dir)) {
      if (f.path().filename().string().rfind("MANIFEST-", 0) == 0) manifest = f.path().string();
    }
    ASSERT_FALSE(manifest.empty());
    XorBytes(manifest, FileSize(manifest) / 2, 8);
    auto r = Store::Open(s.options, s.db);
    ASSERT_FALSE(r.ok()) << dir;
    EXPECT_EQ(r.status().code(), Code::kCorruption) << r.status().ToString();
    EXPECT_NE(r.status().message().find("MANIFEST"), std::string::npos) << r.status().ToString();
    std::printf("[damage] MANIFEST of %s: %s\n", dir.c_str(), r.status().ToString().c_str());
    fs::remove_all(s.tmp.path() + "/db");
    testutil::CopyTree(copy.path() + "/db", s.db);
  }
  ASSERT_OK(s.Open());
  ExpectHealthy("acme", {"a0"});
}

// The metadata instance's WAL: the store stops, saying so, and the
// callback hears it.
TEST_F(Fixture, MetaWalDamageStopsTheStoreWithAClearError) {
  auto metas = FilesWith(s.db + "/meta", ".log");
  ASSERT_FALSE(metas.empty());
  const uint64_t before = FileSize(metas.back());
  for (int i = 0; i < 5; ++i) ASSERT_OK(s->CreateTenant({"t" + std::to_string(i), "", 0}));
  s.Close();
  XorBytes(metas.back(), before + 20, 1, 0x04);
  auto r = Store::Open(s.options, s.db);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kCorruption) << r.status().ToString();
  EXPECT_NE(r.status().message().find("metadata instance: WAL file"), std::string::npos)
      << r.status().ToString();
  EXPECT_TRUE(Saw("wal_damage"));
}

// A keyring flip: the store does not open, with a key error that says why.
TEST_F(Fixture, KeyringFlipStopsTheStoreWithAClearError) {
  s.Close();
  std::string ring;
  for (const auto& f : fs::directory_iterator(s.keys)) {
    if (f.path().filename().string().rfind("KEYRING-", 0) == 0) ring = f.path().string();
  }
  ASSERT_FALSE(ring.empty());
  XorBytes(ring, FileSize(ring) / 2, 1, 0x10);
  auto r = Store::Open(s.options, s.db);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.status().code() == Code::kKeyError || r.status().code() == Code::kCorruption)
      << r.status().ToString();
  EXPECT_NE(r.status().message().find("keyring"), std::string::npos) << r.status().ToString();
  std::printf("[damage] keyring flip: %s\n", r.status().ToString().c_str());
}

// Purging a tenant damaged by its WAL.
TEST_F(Fixture, PurgeOfAWalDamagedTenant) {
  Put("bravo", "b0");
  auto [wal, before] = NewestWal(s);
  Put("acme", "a-target");
  auto [wal2, after] = NewestWal(s);
  for (int i = 0; i < 4; ++i) Put(i % 2 ? "acme" : "bravo", "after" + std::to_string(i));
  s.Close();
  XorBytes(wal, before + (after - before) / 2, 1, 0x80);
  ASSERT_OK(s.Open());
  ASSERT_TRUE(s->DescribeTenant("acme")->damaged);
  ASSERT_OK(s->PurgeTenant("acme"));
  ASSERT_OK(s.Reopen());
  EXPECT_EQ(s->DescribeTenant("acme")->state, TenantState::kPurged);
  EXPECT_TRUE(s->Verify(std::nullopt)->ok());
  ExpectHealthy("bravo", {"b0", "after0", "after2"});
}

}  // namespace
}  // namespace callvault

namespace callvault {
namespace {

// What the WAL scan costs at open (CALLVAULT_DAMAGE_BENCH=1; not in make
// test): a store with 1,000 tenants, one call each, all in the WALs; the
// open timed, and the scan alone over the same directories.
// StoreStats::open says what the open cost and how much of it was the WAL
// scan: the bytes are exactly the WAL files' at the open.
TEST(OpenCost, StatsReportTheWalScan) {
  TestStore s;
  ASSERT_OK(s.Open());
  ASSERT_OK(s->CreateTenant({"acme", "", 0}));
  for (int k = 0; k < 20; ++k) {
    ASSERT_OK(s->PutCall("acme", MakeCall("c" + std::to_string(k), 1700000000000000)));
  }
  s.Close();
  uint64_t wal_bytes = 0, wal_files = 0;
  for (const auto& f : testutil::ListFiles(s.db)) {
    if (f.size() > 4 && f.substr(f.size() - 4) == ".log") {
      wal_bytes += fs::file_size(f);
      ++wal_files;
    }
  }
  ASSERT_GT(wal_bytes, 0u);
  ASSERT_OK(s.Open());
  auto st = s->Stats();
  ASSERT_OK(st);
  EXPECT_EQ(st->open.wal_bytes, wal_bytes);
  EXPECT_EQ(st->open.wal_files, wal_files);
  EXPECT_GT(st->open.wal_scan_micros, 0u);
  EXPECT_GT(st->open.open_micros, 0u);
}

TEST(DamageBench, OpenWithDataInTheWal) {
  if (std::getenv("CALLVAULT_DAMAGE_BENCH") == nullptr) GTEST_SKIP() << "set CALLVAULT_DAMAGE_BENCH=1";
  TestStore s;
  ASSERT_OK(s.Open());
  const int n = 1000;
  for (int i = 0; i < n; ++i) {
    const std::string t = "t" + std::to_string(i);
    ASSERT_OK(s->CreateTenant({t, "", 0}));
    for (int k = 0; k < 3; ++k) {
      ASSERT_OK(s->PutCall(t, MakeCall("c" + std::to_string(k), 1700000000000000)));
    }
  }
  s.Close();
  uint64_t wal_bytes = 0;
  for (const auto& f : testutil::ListFiles(s.db)) {
    if (f.size() > 4 && f.substr(f.size() - 4) == ".log") wal_bytes += fs::file_size(f);
  }
  double open_s = 0, scan_s = 0;
  const int rounds = 3;
  for (int r = 0; r < rounds; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    ASSERT_OK(s.Open());
    open_s += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    auto paths = s->ShardPaths();
    paths.push_back(s->MetaPath());
    s.Close();
    t0 = std::chrono::steady_clock::now();
    for (const auto& p : paths) {
      auto scan = walscan::ScanDirectory(rocksdb::FileSystem::Default().get(), p);
      ASSERT_OK(scan);
      ASSERT_TRUE(scan->damage.empty());
    }
    scan_s += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  double load[3] = {0, 0, 0};
  if (getloadavg(load, 3) < 0) load[0] = -1;
  std::printf("[damage-bench] %d tenants, %.1f MB of WAL: open %.3f s, of which the WAL scan %.3f s "
              "(%.0f MB/s); load average %.2f\n",
              n, wal_bytes / 1e6, open_s / rounds, scan_s / rounds, wal_bytes / 1e6 / (scan_s / rounds),
              load[0]);
}

}  // namespace
}  // namespace callvault
