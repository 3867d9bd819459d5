// Damaged files of a closed store (issue 11 items 1 and 2; decision 0014).
// Each case damages a real file of a real store by hand, reopens, and
// checks that the damage is loud (kCorruption with a specific message, an
// audit event, the callback, Verify not ok), that it is contained to the
// tenant it hit (the other tenants, same shard included, read and write),
// that the damaged state survives a reopen, and that an operator can act
// (AcceptTenantDamage, PurgeTenant). A torn tail stays quiet.
#include <gtest/gtest.h>
#include <rocksdb/metadata.h>
#include <sodium.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>

#include "callvault/store.h"
#include "engine/close_mark.h"
#include "engine/wal_scan.h"
#include "format/rowkey.h"
#include "tests/damage/damage_util.h"
#include "tests/testutil/raw_shard.h"
#include "tests/testutil/testutil.h"

namespace callvault {
namespace {

namespace fs = std::filesystem;
using damage::FilesWith;
using damage::NewestWal;
using damage::Shard0;
using damage::TenantSsts;
using damage::XorBytes;
using damage::ZeroBytes;
using testutil::MakeCall;
using testutil::TestStore;

uint64_t FileSize(const std::string& p) { return fs::file_size(p); }

// The offset of the header of the last physical record of a file in
// RocksDB's log format (WAL, MANIFEST): 32 KiB blocks, 7-byte headers.
uint64_t LastRecordOffset(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  const std::string d((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  uint64_t last = 0;
  for (size_t p = 0; p + 7 <= d.size();) {
    const size_t room = 32768 - p % 32768;
    if (room < 7) {
      p += room;
      continue;
    }
    const size_t len = static_cast<uint8_t>(d[p + 4]) | (static_cast<size_t>(static_cast<uint8_t>(d[p + 5])) << 8);
    if (d[p + 6] == 0 && len == 0) {
      p += room;  // padding
      continue;
    }
    last = p;
    p += 7 + len;
  }
  return last;
}

// What a crash leaves: the store's files as they are now (every write
// acknowledged was synced), without the close (and so without the
// high-water mark a clean close writes, decision 0015).
void CrashImage(TestStore& s) {
  testutil::TempDir copy;
  testutil::CopyTree(s.db, copy.path() + "/db");
  s.Close();
  fs::remove_all(s.db);
  testutil::CopyTree(copy.path() + "/db", s.db);
}

// A store with an audit callback that keeps every event it sees.
struct Fixture : ::testing::Test {
  TestStore s;
  std::mutex mu;
  std::vector<AuditEvent> seen;
  void SetUp() override {
    OpenWithAcmeAndBravo();
    ASSERT_EQ(s->DescribeTenant("acme")->shard, s->DescribeTenant("bravo")->shard);
  }
  // Opens the store (every audit event kept in `seen`) and creates acme
  // and bravo.
  void OpenWithAcmeAndBravo() {
    s.options.audit_callback = [this](const AuditEvent& e) {
      std::lock_guard<std::mutex> l(mu);
      seen.push_back(e);
    };
    ASSERT_OK(s.Open());
    ASSERT_OK(s->CreateTenant({"acme", "", 0}));
    ASSERT_OK(s->CreateTenant({"bravo", "", 0}));
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
  // 20 calls each for acme (a0..a19) and bravo (b0..b19), flushed, the
  // store closed: acme's SST files (asserted not empty) and bravo's ids.
  std::vector<std::string> FlushedAcmeSsts(std::vector<std::string>* bravo_ids) {
    for (int i = 0; i < 20; ++i) {
      Put("acme", "a" + std::to_string(i));
      Put("bravo", "b" + std::to_string(i));
      bravo_ids->push_back("b" + std::to_string(i));
    }
    EXPECT_OK(s->Flush());
    const std::string cf = s->DescribeTenant("acme")->column_family;
    s.Close();
    auto ssts = TenantSsts(s, cf);
    EXPECT_FALSE(ssts.empty());
    return ssts;
  }
  void ExpectHealthy(const std::string& t, const std::vector<std::string>& ids) {
    ExpectCalls(t, ids);
    EXPECT_OK(s->PutCall(t, MakeCall(t + "-written-after", 1700000000000000)));
    EXPECT_OK(s->GetCall(t, t + "-written-after", kPartAll));
    EXPECT_FALSE(s->DescribeTenant(t)->damaged);
  }
};

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
// writes made since the recovery. (After a clean close the same cut is a
// loss: MarkFixture below.)
TEST_F(Fixture, TornTailIsQuiet) {
  std::vector<std::string> acked;
  for (int i = 0; i < 8; ++i) {
    Put(i % 2 ? "acme" : "bravo", "c" + std::to_string(i));
    acked.push_back("c" + std::to_string(i));
  }
  auto [wal, before] = NewestWal(s);
  Put("acme", "in-flight");
  auto [wal2, after] = NewestWal(s);
  CrashImage(s);
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
  CrashImage(s);
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

// Item 2: bytes flipped in one tenant's SST. On the old code the open
// itself failed (the table's meta blocks are read at open), for every tenant.
TEST_F(Fixture, SstFlipDamagesOneTenantOnly) {
  std::vector<std::string> b;
  const auto ssts = FlushedAcmeSsts(&b);
  ASSERT_FALSE(HasFailure());
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
  const auto ssts = FlushedAcmeSsts(&b);
  ASSERT_FALSE(HasFailure());
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
  for (int i = 0; i < 96; ++i) {  // ~1.25 MB compressed: over min_blob_size
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

// MANIFEST flips: the metadata instance's stops the store, the shard's
// stops that shard's tenants (decision 0034), with a specific error, never
// silently.
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
    Status why = r.ok() ? Status::OK() : r.status();
    if (dir == Shard0(s)) {  // the store opens; the shard's tenant is refused
      ASSERT_OK(r);
      auto got = (*r)->GetCall("acme", "a0");
      ASSERT_FALSE(got.ok());
      why = got.status();
      EXPECT_NE(why.message().find("shard 0"), std::string::npos) << why.ToString();
      r = Status::Internal("closed");
    } else {
      ASSERT_FALSE(r.ok()) << dir;
    }
    EXPECT_EQ(why.code(), Code::kCorruption) << why.ToString();
    EXPECT_NE(why.message().find("MANIFEST"), std::string::npos) << why.ToString();
    std::printf("[damage] MANIFEST of %s: %s\n", dir.c_str(), why.ToString().c_str());
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

// ---------------------------------------------------------------------------
// The high-water mark (decision 0015): losses the WAL scan cannot see. A
// truncated WAL, a damaged last record, a lost MANIFEST edit all look like
// a crash's torn tail to RocksDB and to the scan; the mark that the last
// clean close left says acknowledged writes were there. On the old code
// every case below opened, served the shortened data and verified ok.

// acme alone in shard 0, bravo alone in shard 1.
struct MarkFixture : Fixture {
  void SetUp() override {
    s.options.max_tenants_per_shard = 1;
    OpenWithAcmeAndBravo();
    ASSERT_EQ(s->DescribeTenant("acme")->shard, 0u);
    ASSERT_EQ(s->DescribeTenant("bravo")->shard, 1u);
    for (int i = 0; i < 3; ++i) Put("bravo", "b" + std::to_string(i));
  }
  std::string Manifest(const std::string& dir) {
    const std::string current = testutil::ReadFile(dir + "/CURRENT");
    return dir + "/" + current.substr(0, current.find('\n'));
  }
  // acme's call a0, then a1: shard 0's WAL and where a1's record begins
  // and ends in it (the store open).
  struct LastRecord {
    std::string wal;
    uint64_t begin = 0, end = 0;
  };
  LastRecord PutTwoAndFindTheLast() {
    Put("acme", "a0");
    auto [wal, before] = NewestWal(s);
    Put("acme", "a1");
    auto [wal2, after] = NewestWal(s);
    EXPECT_EQ(wal2, wal);
    return {wal, before, after};
  }
  // acme's calls a0-a2 flushed: shard 0's MANIFEST and its size before the
  // flush's edit (which it asserts was appended).
  // Three calls, then a flush; the MANIFEST CURRENT named before it.
  std::string FlushThreeCalls() {
    for (int i = 0; i < 3; ++i) Put("acme", "a" + std::to_string(i));
    const std::string manifest = Manifest(Shard0(s));
    EXPECT_OK(s->Flush());
    return manifest;
  }
  // acme lost acknowledged writes: shard-wide damage, loud; bravo serves.
  void ExpectShardLoss() {
    ExpectDamaged("acme", "acknowledged writes lost");
    ExpectHealthy("bravo", {"b0", "b1", "b2"});
    EXPECT_TRUE(Saw("shard_loss"));
    auto events = s->ListAudit(0, "shard_loss");
    ASSERT_OK(events);
    ASSERT_EQ(events->size(), 1u);
    EXPECT_NE((*events)[0].detail.find("shard 0"), std::string::npos) << (*events)[0].detail;
    EXPECT_EQ((*events)[0].detail.find("acme"), std::string::npos) << (*events)[0].detail;
    std::printf("[damage] %s\n", (*events)[0].detail.c_str());
    // The loss is recorded: the reopen keeps the tenant damaged and does
    // not report the loss again (the mark came down).
    ASSERT_OK(s.Reopen());
    ExpectDamaged("acme", "acknowledged writes lost");
    EXPECT_EQ(s->ListAudit(0, "shard_loss")->size(), 1u);
    ASSERT_OK(s.Reopen());
    EXPECT_EQ(s->ListAudit(0, "shard_loss")->size(), 1u);
  }
  // The same store opened read-only reports it too, and writes nothing.
  void ExpectReadOnlySeesLoss() {
    Options ro = s.options;
    ro.read_only = true;
    ro.create_if_missing = false;
    auto r = Store::Open(ro, s.db);
    ASSERT_OK(r);
    auto g = (*r)->GetCall("acme", "a0", kPartAll);
    EXPECT_CODE(g, Code::kCorruption);
    EXPECT_OK((*r)->GetCall("bravo", "b0", kPartAll));
    auto v = (*r)->Verify(std::nullopt);
    ASSERT_OK(v);
    EXPECT_FALSE(v->ok());
  }
};

// Truncated after a clean close, at a record boundary: the last
// acknowledged writes are simply gone, and the WAL reads as whole.
TEST_F(MarkFixture, WalTruncatedAtARecordBoundaryIsLoud) {
  Put("acme", "a0");
  auto [wal, before] = NewestWal(s);
  for (int i = 1; i < 4; ++i) Put("acme", "a" + std::to_string(i));
  s.Close();
  fs::resize_file(wal, before);
  ExpectReadOnlySeesLoss();
  ASSERT_OK(s.Open());
  ExpectShardLoss();
}

// Truncated mid-record: to RocksDB and to the WAL scan a torn tail.
TEST_F(MarkFixture, WalTruncatedMidRecordIsLoud) {
  const LastRecord last = PutTwoAndFindTheLast();
  s.Close();
  fs::resize_file(last.wal, last.begin + (last.end - last.begin) / 2);
  ASSERT_OK(s.Open());
  ExpectShardLoss();
}

// A flipped byte in the last record: dropped as a torn tail (decision 0014
// named it a limit); the file keeps its size, the sequence number tells.
TEST_F(MarkFixture, WalLastRecordFlipIsLoud) {
  const LastRecord last = PutTwoAndFindTheLast();
  s.Close();
  XorBytes(last.wal, last.begin + (last.end - last.begin) / 2, 1, 0x01);
  ASSERT_OK(s.Open());
  ExpectShardLoss();
}

// A shard MANIFEST truncated after a flush: the flush's edit is gone, its
// table file unreferenced and the WAL it replaced deleted; the later
// writes' WAL still recovers a high sequence number.
TEST_F(MarkFixture, ManifestTruncatedAfterAFlushIsLoud) {
  FlushThreeCalls();
  Put("acme", "a3");
  s.Close();
  // The flush's edit is the MANIFEST's last record.
  const std::string manifest = Manifest(Shard0(s));
  const uint64_t before = LastRecordOffset(manifest);
  ASSERT_GT(before, 0u);
  fs::resize_file(manifest, before + 3);
  ExpectReadOnlySeesLoss();
  ASSERT_OK(s.Open());
  ExpectShardLoss();
}

// A flipped bit in the length of the shard MANIFEST's last edit (the
// flush's): the edit now seems to run past the end of the file, and RocksDB
// drops it as a torn tail; the file keeps its size. (A flip inside the
// edit fails its checksum: RocksDB refuses the open, loud already.)
TEST_F(MarkFixture, ManifestLastEditFlipIsLoud) {
  FlushThreeCalls();
  Put("acme", "a3");
  s.Close();
  const std::string manifest = Manifest(Shard0(s));
  const uint64_t before = LastRecordOffset(manifest);  // the flush's edit
  ASSERT_GT(before, 0u);
  XorBytes(manifest, before + 5, 1, 0x01);  // the header's length, high byte
  ASSERT_OK(s.Open());
  ExpectShardLoss();
}

// The metadata instance without its header (a lost flush edit) or without
// a readable CURRENT is a damaged store, never "no store, run init": not
// for a plain open, a read-only one, nor an init (create_if_missing), which
// would otherwise build a new store over it.
TEST_F(MarkFixture, DamagedMetadataIsCorruptionNeverNoStore) {
  ASSERT_OK(s->Flush());
  s.Close();
  testutil::TempDir copy;
  testutil::CopyTree(s.db, copy.path() + "/db");
  auto restore = [&] {
    fs::remove_all(s.db);
    testutil::CopyTree(copy.path() + "/db", s.db);
  };
  const size_t keys_before = testutil::ListFiles(s.keys).size();
  auto expect_damaged = [&](const std::string& what) {
    for (int mode = 0; mode < 3; ++mode) {
      Options o = s.options;
      o.read_only = mode == 1;
      o.create_if_missing = mode == 2;
      auto r = Store::Open(o, s.db);
      ASSERT_FALSE(r.ok()) << what << " mode " << mode;
      EXPECT_EQ(r.status().code(), Code::kCorruption) << what << ": " << r.status().ToString();
      EXPECT_NE(r.status().message().find("damaged"), std::string::npos) << r.status().ToString();
      if (mode == 0) std::printf("[damage] %s: %s\n", what.c_str(), r.status().ToString().c_str());
    }
    // Nothing was created over it: the key directory is as it was.
    EXPECT_EQ(testutil::ListFiles(s.keys).size(), keys_before) << what;
  };
  const std::string meta = s.db + "/meta";
  // Every edit after the first one lost: the header's table file is gone
  // from the instance's view.
  const std::string manifest = Manifest(meta);
  fs::resize_file(manifest, 60);
  expect_damaged("meta MANIFEST truncated");
  restore();
  {
    std::ofstream(meta + "/CURRENT", std::ios::trunc) << "MANIFEST-999999\n";
  }
  expect_damaged("meta CURRENT naming a missing MANIFEST");
  restore();
  fs::remove(meta + "/CURRENT");
  expect_damaged("meta CURRENT removed");
  restore();
  {
    std::ofstream(Shard0(s) + "/CURRENT", std::ios::trunc) << "MANIFEST-999999\n";
  }
  for (int mode = 0; mode < 2; ++mode) {
    Options o = s.options;
    o.read_only = mode == 1;
    o.create_if_missing = false;
    // The store opens; the shard's tenants are refused (decision 0034).
    auto r = Store::Open(o, s.db);
    ASSERT_OK(r);
    for (const char* t : {"acme", "bravo"}) {
      auto d = (*r)->DescribeTenant(t);
      ASSERT_OK(d);
      if (d->shard != 0) {  // the other shard serves
        EXPECT_FALSE(d->damaged) << t;
        EXPECT_OK((*r)->ListCalls(t, ListQuery{}));
        continue;
      }
      EXPECT_TRUE(d->damaged) << t;
      auto got = (*r)->ListCalls(t, ListQuery{});
      EXPECT_EQ(got.status().code(), Code::kCorruption) << got.status().ToString();
      EXPECT_NE(got.status().message().find("shard 0 damaged"), std::string::npos)
          << got.status().ToString();
    }
  }
  restore();
  ASSERT_OK(s.Open());
  ExpectHealthy("acme", {});
  ExpectHealthy("bravo", {"b0", "b1", "b2"});
}

// No false alarm: a crash (no close) with a torn tail, a purge, a new
// shard, and opens after each.
TEST_F(MarkFixture, CrashesPurgesAndNewShardsAreQuiet) {
  for (int i = 0; i < 3; ++i) Put("acme", "a" + std::to_string(i));
  s.Close();  // a mark for shards 0 and 1
  ASSERT_OK(s.Open());
  Put("acme", "a3");
  auto [wal, before] = NewestWal(s);
  Put("acme", "in-flight");
  auto [wal2, after] = NewestWal(s);
  CrashImage(s);
  fs::resize_file(wal, before + (after - before) / 2);  // the write in flight, torn
  ASSERT_OK(s.Open());
  ExpectHealthy("acme", {"a0", "a1", "a2", "a3"});
  ASSERT_OK(s->PurgeTenant("bravo"));
  ASSERT_OK(s->CreateTenant({"charlie", "", 0}));  // shard 2, new
  ASSERT_OK(s.Reopen());
  ASSERT_OK(s->CreateTenant({"delta", "", 0}));
  Put("charlie", "c0");
  CrashImage(s);
  ASSERT_OK(s.Open());
  ASSERT_OK(s.Reopen());
  EXPECT_FALSE(Saw("shard_loss"));
  EXPECT_FALSE(Saw("wal_damage"));
  for (const auto& e : seen) {
    if (e.kind == "shard_loss" || e.kind == "wal_damage") ADD_FAILURE() << e.detail;
  }
  EXPECT_TRUE(s->Verify(std::nullopt)->ok());
  ExpectHealthy("acme", {"a0", "a1", "a2", "a3"});
  ExpectHealthy("charlie", {"c0"});
}

// ---------------------------------------------------------------------------
// The close mark file (decision 0035): the marks of every shard and of the
// metadata instance, in <store>/CLOSE_MARK, out of reach of a torn tail of
// the metadata WAL.

std::string NewestNonEmptyWal(const std::string& dir) {
  std::string best;
  for (const auto& f : FilesWith(dir, ".log")) {
    if (fs::file_size(f) > 0) best = f;
  }
  return best;
}

bool NoLossReported(const std::vector<AuditEvent>& seen) {
  bool quiet = true;
  for (const auto& e : seen) {
    if (e.kind == "shard_loss" || e.kind == "wal_damage" || e.kind == "metadata_loss" ||
        e.kind == "shard_damaged" || e.kind == "tenant_damaged") {
      ADD_FAILURE() << e.kind << ": " << e.detail;
      quiet = false;
    }
  }
  return quiet;
}

// Written by a clean close (a version line, the metadata instance's mark,
// each shard's, a checksum), never into the metadata instance; left by a
// read-only open, consumed by a writable one.
TEST_F(MarkFixture, CloseMarkIsAFileOutsideTheMetadataWal) {
  Put("acme", "a0");
  s.Close();
  const std::string mark = s.db + "/CLOSE_MARK";
  ASSERT_TRUE(fs::exists(mark));
  const std::string text = testutil::ReadFile(mark);
  // v2 (decision 0042): the close counter right after the version line.
  EXPECT_EQ(text.rfind("callvault close mark v2\ncounter ", 0), 0u) << text;
  EXPECT_NE(text.find("\nmeta v1 "), std::string::npos) << text;
  EXPECT_NE(text.find("\nshard 0 v1 "), std::string::npos) << text;
  EXPECT_NE(text.find("\nshard 1 v1 "), std::string::npos) << text;
  EXPECT_NE(text.find("\nsha256 "), std::string::npos) << text;
  EXPECT_TRUE(testutil::FindInTree(s.db + "/meta", {"shard_mark."}).empty());
  Options ro = s.options;
  ro.read_only = true;
  ro.create_if_missing = false;
  {
    auto r = Store::Open(ro, s.db);
    ASSERT_OK(r);
    EXPECT_OK((*r)->GetCall("acme", "a0", kPartAll));
  }
  EXPECT_EQ(testutil::ReadFile(mark), text) << "a read-only open leaves it";
  ASSERT_OK(s.Open());
  EXPECT_FALSE(fs::exists(mark)) << "a writable open consumes it";
  EXPECT_TRUE(NoLossReported(seen));
}

// The metadata WAL cut after a clean close, alone: the metadata instance's
// own mark sees it; the store stops (decision 0015: metadata damage may),
// for every kind of open, and the callback hears it.
TEST_F(MarkFixture, MetaWalCutAfterACleanCloseIsLoud) {
  for (int i = 0; i < 3; ++i) ASSERT_OK(s->CreateTenant({"t" + std::to_string(i), "", 0}));
  s.Close();
  const std::string wal = NewestNonEmptyWal(s.db + "/meta");
  ASSERT_FALSE(wal.empty());
  testutil::TempDir copy;
  testutil::CopyTree(s.db, copy.path() + "/db");
  fs::resize_file(wal, fs::file_size(wal) - 1);
  for (int mode = 0; mode < 3; ++mode) {
    Options o = s.options;
    o.read_only = mode == 1;
    o.create_if_missing = mode == 2;
    auto r = Store::Open(o, s.db);
    ASSERT_FALSE(r.ok()) << mode;
    EXPECT_EQ(r.status().code(), Code::kCorruption) << r.status().ToString();
    EXPECT_NE(r.status().message().find("metadata instance damaged: acknowledged writes lost: WAL file " +
                                        fs::path(wal).filename().string()),
              std::string::npos)
        << r.status().ToString();
    if (mode == 0) std::printf("[damage] meta WAL cut by 1 byte: %s\n", r.status().ToString().c_str());
  }
  EXPECT_TRUE(Saw("metadata_loss"));
  // The same files, uncut: no false alarm.
  fs::remove_all(s.db);
  testutil::CopyTree(copy.path() + "/db", s.db);
  seen.clear();
  ASSERT_OK(s.Open());
  EXPECT_TRUE(NoLossReported(seen));
  EXPECT_OK(s->DescribeTenant("t2"));
  ExpectHealthy("bravo", {"b0", "b1", "b2"});
}

// A damaged CLOSE_MARK is kCorruption "close mark damaged", never ignored
// (a cut or changed mark could hide a loss); removing it is the operator's
// knowing choice, and then the store opens unchecked.
// `body` with the sha256 line CLOSE_MARK and WAL_LEDGER end in (docs/format.md).
std::string Sealed(const std::string& body) {
  unsigned char d[crypto_hash_sha256_BYTES];
  crypto_hash_sha256(d, reinterpret_cast<const unsigned char*>(body.data()), body.size());
  char hex[2 * crypto_hash_sha256_BYTES + 1];
  sodium_bin2hex(hex, sizeof(hex), d, sizeof(d));
  return body + "sha256 " + hex + "\n";
}

// Each body, sealed, is refused by `decode` with kCorruption `prefix` + why.
template <typename Decoded>
void ExpectEachRefused(Status (*decode)(std::string_view, Decoded*), const std::string& prefix,
                       const std::vector<std::pair<std::string, std::string>>& bad) {
  for (const auto& [body, why] : bad) {
    Decoded got;
    Status st = decode(Sealed(body), &got);
    EXPECT_EQ(st.code(), Code::kCorruption) << body;
    EXPECT_NE(st.message().find(prefix + why), std::string::npos) << body << ": " << st.ToString();
  }
}

// The close mark's codec (docs/format.md, "Close mark"; decision 0042): a
// mark with a close counter is v2 and reads back with it; one without is v1
// (a build before 0042) and reads back without. A v2 file whose counter
// line is missing, repeated or bad, sealed with a matching checksum, is
// damage, as is a counter line in a v1 file.
TEST(CloseMarkCodec, CounterMakesV2AndV1StillReads) {
  CloseMark m;
  m.shards[0].sequence = 7;
  m.shards[0].manifest = "MANIFEST-000005";
  m.shards[0].manifest_size = 99;
  m.shards[0].wals = {{"000004.log", 123}};
  CloseMark got;
  const std::string v1 = EncodeCloseMark(m);
  EXPECT_EQ(v1.rfind("callvault close mark v1\nshard 0 v1 7 MANIFEST-000005 99 000004.log 123\n", 0), 0u) << v1;
  ASSERT_OK(DecodeCloseMark(v1, &got));
  EXPECT_FALSE(got.counter.has_value());
  EXPECT_EQ(got.shards[0].wals, m.shards[0].wals);
  m.counter = UINT64_MAX;
  const std::string v2 = EncodeCloseMark(m);
  EXPECT_EQ(v2.rfind("callvault close mark v2\ncounter 18446744073709551615\nshard 0 v1 7 ", 0), 0u) << v2;
  EXPECT_EQ(Sealed(v2.substr(0, v2.rfind("sha256 "))), v2) << "the test's sealing is the file's";
  ASSERT_OK(DecodeCloseMark(v2, &got));
  ASSERT_TRUE(got.counter.has_value());
  EXPECT_EQ(*got.counter, UINT64_MAX);
  EXPECT_EQ(got.shards[0].sequence, 7u);
  ASSERT_OK(DecodeCloseMark(Sealed("callvault close mark v2\ncounter 0\n"), &got));
  ASSERT_TRUE(got.counter.has_value());
  EXPECT_EQ(*got.counter, 0u);
  EXPECT_TRUE(got.shards.empty());
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"callvault close mark v2\n", "has a bad counter line"},
      {"callvault close mark v2\nshard 0 v1 7 - 0\n", "has a bad counter line"},
      {"callvault close mark v2\ncounter \n", "has a bad counter line"},
      {"callvault close mark v2\ncounter -1\n", "has a bad counter line"},
      {"callvault close mark v2\ncounter +1\n", "has a bad counter line"},
      {"callvault close mark v2\ncounter 1x\n", "has a bad counter line"},
      {"callvault close mark v2\ncounter 18446744073709551616\n", "has a bad counter line"},
      {"callvault close mark v2\ncounter 1\ncounter 1\n", "has a bad line"},
      {"callvault close mark v1\ncounter 1\n", "has a bad line"},
      {"callvault close mark v3\ncounter 1\n", "has an unknown version line (this build reads v1 and v2)"},
  };
  ExpectEachRefused(DecodeCloseMark, "close mark damaged: CLOSE_MARK ", bad);
}

// The WAL ledger's codec (docs/format.md, "WAL ledger"; decisions 0042,
// 0050): a ledger is written as v3 (a `meta` line first, each WAL with its
// edge digest or `-`) and reads back with its edges; v1 (no meta line) and
// v2 (meta line, no edges) files still read. A line that does not parse,
// a head that is not 32 lowercase hex digits, a WAL listed twice, or a
// meta line missing or out of place is damage.
TEST(WalLedgerCodec, V3KeepsEdgesAndV1V2StillRead) {
  WalLedger l;
  l.shards[1] = {{"000004.log", 123}, {"000006.log", 9}};
  l.shard_edges[1]["000004.log"] = std::string(32, 'a');  // 000006.log: no head
  l.meta = {{"000009.log", 77}, {"000011.log", 5}};
  l.meta_edges["000011.log"] = WalEdgeDigest("x");
  const std::string v3 = EncodeWalLedger(l);
  EXPECT_EQ(v3.rfind("callvault wal ledger v3\nmeta 000009.log 77 - 000011.log 5 " + WalEdgeDigest("x") +
                         "\nshard 1 000004.log 123 " + std::string(32, 'a') + " 000006.log 9 -\nsha256 ",
                     0),
            0u)
      << v3;
  EXPECT_EQ(Sealed(v3.substr(0, v3.rfind("sha256 "))), v3) << "the test's sealing is the file's";
  WalLedger got;
  ASSERT_OK(DecodeWalLedger(v3, &got));
  ASSERT_TRUE(got.meta.has_value());
  EXPECT_EQ(*got.meta, *l.meta);
  EXPECT_EQ(got.meta_edges, l.meta_edges);
  EXPECT_EQ(got.shards, l.shards);
  EXPECT_EQ(got.shard_edges, l.shard_edges);
  // No metadata entry yet: an empty meta line.
  EXPECT_EQ(EncodeWalLedger(WalLedger{}).rfind("callvault wal ledger v3\nmeta\nsha256 ", 0), 0u);
  // The edge digest: BLAKE2b-128 of the first and the last 32 KiB before
  // the listed size: a change at either end shows, one in the middle (the
  // WAL scan's checksums) and bytes past the size (later appends) do not.
  const std::string wal(100 * 1024, 'w');
  std::string mid = wal, front = wal, back = wal;
  mid[50 * 1024] = 'x';
  front[10] = 'x';
  back[wal.size() - 10] = 'x';
  EXPECT_EQ(WalEdgeDigest(mid), WalEdgeDigest(wal));
  EXPECT_NE(WalEdgeDigest(front), WalEdgeDigest(wal));
  EXPECT_NE(WalEdgeDigest(back), WalEdgeDigest(wal));
  EXPECT_EQ(WalEdgeDigest(wal + "appended", wal.size()), WalEdgeDigest(wal));
  EXPECT_EQ(WalEdgeDigest("x"), WalEdgeDigest("x", 1));
  {
    // Read from a file at its two ends, the same digest.
    testutil::TempDir tmp;
    const std::string path = tmp.Sub("000007.log");
    std::ofstream(path, std::ios::binary) << back << "appended later";
    auto read = ReadWalEdgeDigest(rocksdb::FileSystem::Default().get(), path, back.size());
    ASSERT_OK(read);
    EXPECT_EQ(*read, WalEdgeDigest(back));
    auto small = ReadWalEdgeDigest(rocksdb::FileSystem::Default().get(), path, 5);
    ASSERT_OK(small);
    EXPECT_EQ(*small, WalEdgeDigest(back.substr(0, 5)));
    EXPECT_EQ(ReadWalEdgeDigest(rocksdb::FileSystem::Default().get(), tmp.Sub("gone.log"), 5)
                  .status()
                  .code(),
              Code::kNotFound);
  }
  // v1 and v2, as earlier builds wrote them: read, without edges.
  ASSERT_OK(DecodeWalLedger(Sealed("callvault wal ledger v1\nshard 1 000004.log 123\n"), &got));
  EXPECT_FALSE(got.meta.has_value());
  EXPECT_EQ(got.shards[1], (std::vector<std::pair<std::string, uint64_t>>{{"000004.log", 123}}));
  EXPECT_TRUE(got.shard_edges.empty());
  ASSERT_OK(DecodeWalLedger(
      Sealed("callvault wal ledger v2\nmeta 000009.log 77 000011.log 5\nshard 1 000004.log 123\n"), &got));
  ASSERT_TRUE(got.meta.has_value());
  EXPECT_EQ(*got.meta, *l.meta);
  EXPECT_TRUE(got.meta_edges.empty());
  ASSERT_OK(DecodeWalLedger(Sealed("callvault wal ledger v2\nmeta\n"), &got));
  ASSERT_TRUE(got.meta.has_value());
  EXPECT_TRUE(got.meta->empty());
  const std::string h(32, 'b');
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"callvault wal ledger v2\n", "has a bad meta line"},
      {"callvault wal ledger v2\nshard 1 000004.log 123\n", "has a bad meta line"},
      {"callvault wal ledger v2\nmeta 000009.log\n", "has a bad meta line"},
      {"callvault wal ledger v2\nmetax 000009.log 1\n", "has a bad meta line"},
      {"callvault wal ledger v2\nmeta notawal 1\n", "has a bad meta line"},
      {"callvault wal ledger v2\nmeta\nmeta\n", "has a bad line"},
      {"callvault wal ledger v1\nmeta 000009.log 1\n", "has a bad line"},
      {"callvault wal ledger v3\n", "has no meta line"},
      {"callvault wal ledger v3\nshard 1 000004.log 123 " + h + "\n", "has a bad meta line"},
      {"callvault wal ledger v3\nmeta 000009.log 1\n", "has a bad meta line"},
      {"callvault wal ledger v3\nmeta 000009.log 1 " + h.substr(1) + "\n", "has a bad meta line"},
      {"callvault wal ledger v3\nmeta 000009.log 1 " + std::string(32, 'B') + "\n", "has a bad meta line"},
      {"callvault wal ledger v3\nmeta 000009.log 1 - 000009.log 2 -\n", "has a bad meta line"},
      {"callvault wal ledger v3\nmeta  000009.log 1 -\n", "has a bad meta line"},
      {"callvault wal ledger v3\nmeta\nshard 1 000004.log 123\n", "has a bad line"},
      {"callvault wal ledger v3\nmeta\nshard 1 000004.log x " + h + "\n", "has a bad line"},
      {"callvault wal ledger v3\nmeta\nshard 1 000004.log 1 -\nshard 1\n", "has a bad line"},
      {"callvault wal ledger v3\nmeta\nmeta\n", "has a bad line"},
      {"callvault wal ledger v4\nmeta\n", "has an unknown version line (this build reads v1 to v3)"},
  };
  ExpectEachRefused(DecodeWalLedger, "WAL ledger damaged: WAL_LEDGER ", bad);
}

TEST_F(MarkFixture, DamagedCloseMarkIsCorruption) {
  Put("acme", "a0");
  s.Close();
  const std::string mark = s.db + "/CLOSE_MARK";
  const std::string good = testutil::ReadFile(mark);
  ASSERT_GT(good.size(), 100u);
  auto write = [&](const std::string& bytes) {
    std::ofstream(mark, std::ios::binary | std::ios::trunc) << bytes;
  };
  auto expect_damaged = [&](const std::string& what, const std::string& needle) {
    for (int mode = 0; mode < 2; ++mode) {
      Options o = s.options;
      o.read_only = mode == 1;
      o.create_if_missing = false;
      auto r = Store::Open(o, s.db);
      ASSERT_FALSE(r.ok()) << what;
      EXPECT_EQ(r.status().code(), Code::kCorruption) << what << ": " << r.status().ToString();
      EXPECT_NE(r.status().message().find("close mark damaged: CLOSE_MARK " + needle), std::string::npos)
          << what << ": " << r.status().ToString();
      if (mode == 0) std::printf("[damage] %s: %s\n", what.c_str(), r.status().ToString().c_str());
    }
    EXPECT_TRUE(fs::exists(mark)) << what << ": kept for the operator";
  };
  write(good.substr(0, good.size() / 2));
  expect_damaged("CLOSE_MARK truncated", "is truncated");
  write(good.substr(0, good.size() - 1));
  expect_damaged("CLOSE_MARK without its last byte", "is truncated");
  write("");
  expect_damaged("CLOSE_MARK empty", "is empty");
  for (size_t at : {size_t{3}, good.size() / 2, good.size() - 10}) {
    std::string flipped = good;
    flipped[at] ^= 0x01;
    write(flipped);
    expect_damaged("CLOSE_MARK byte " + std::to_string(at) + " flipped", "fails its checksum");
  }
  write(good + "shard 7 v1 0 - 0\n");
  expect_damaged("CLOSE_MARK with a line appended", "is truncated or malformed");
  write(good);
  {
    Options ro = s.options;
    ro.read_only = true;
    ro.create_if_missing = false;
    EXPECT_OK(Store::Open(ro, s.db));
  }
  fs::remove(mark);  // the operator's way out (docs/operations.md)
  ASSERT_OK(s.Open());
  ExpectHealthy("acme", {"a0"});
  EXPECT_TRUE(NoLossReported(seen));
}

// A store last closed by a build before decision 0035 holds its marks as
// header fields `shard_mark.<i>`: still checked, and consumed. They win
// over a CLOSE_MARK beside them (an older build's close is the newer one;
// the file is stale), and both are gone after the writable open.
TEST_F(MarkFixture, HeaderMarksOfAnOlderBuildAreStillChecked) {
  Put("acme", "a0");
  auto [wal, before] = NewestWal(s);
  for (int i = 1; i < 4; ++i) Put("acme", "a" + std::to_string(i));
  s.Close();
  const std::string file = s.db + "/CLOSE_MARK";
  const std::string bytes = testutil::ReadFile(file);
  CloseMark marks;
  ASSERT_OK(DecodeCloseMark(bytes, &marks));
  ASSERT_EQ(marks.shards.count(0), 1u);
  ASSERT_EQ(marks.shards.count(1), 1u);
  fs::remove(file);
  {
    // What an older build's close wrote (0015): the mark in the header.
    testutil::RawShard meta(s.db + "/meta", /*read_only=*/false);
    ASSERT_TRUE(meta.status().ok()) << meta.status().ToString();
    meta.Put(rocksdb::kDefaultColumnFamilyName, format::HeaderKey("shard_mark.0"),
             marks.shards[0].Encode());
  }
  // And a stale CLOSE_MARK beside it, which would fire on shard 1 (bravo)
  // if it were used: a sequence number shard 1 never reached. Shard 0's
  // loss can only be seen through the header mark (the file has none).
  CloseMark stale;
  stale.shards[1] = marks.shards[1];
  stale.shards[1].manifest.clear();
  stale.shards[1].sequence = uint64_t{1} << 40;
  std::ofstream(file, std::ios::binary | std::ios::trunc) << EncodeCloseMark(stale);
  fs::resize_file(wal, before);
  ASSERT_OK(s.Open());
  EXPECT_FALSE(fs::exists(file));
  ExpectShardLoss();
  EXPECT_FALSE(Saw("metadata_loss"));
}

// No false alarm from the file: clean close/open cycles (writable and
// read-only) after puts, flushes, a purge, a new shard and a compaction,
// and a crash (no close, no file) whose torn tail is quiet.
TEST_F(MarkFixture, CleanCloseCyclesAreQuiet) {
  Options ro = s.options;
  ro.read_only = true;
  ro.create_if_missing = false;
  std::vector<std::string> acme;
  auto cycle = [&](const std::string& what) {
    SCOPED_TRACE(what);
    s.Close();
    ASSERT_TRUE(fs::exists(s.db + "/CLOSE_MARK"));
    {
      auto r = Store::Open(ro, s.db);
      ASSERT_OK(r);
      auto v = (*r)->Verify(std::nullopt);
      ASSERT_OK(v);
      EXPECT_TRUE(v->ok());
    }
    ASSERT_OK(s.Open());
    EXPECT_FALSE(fs::exists(s.db + "/CLOSE_MARK"));
    ExpectHealthy("acme", acme);
    auto v = s->Verify(std::nullopt);
    ASSERT_OK(v);
    EXPECT_TRUE(v->ok());
  };
  for (int round = 0; round < 2; ++round) {
    const std::string r = std::to_string(round);
    acme.push_back("p" + r);
    Put("acme", acme.back());
    cycle("puts " + r);
    acme.push_back("f" + r);
    Put("acme", acme.back());
    ASSERT_OK(s->Flush());
    cycle("flush " + r);
    ASSERT_OK(s->CreateTenant({"gone" + r, "", 0}));
    ASSERT_OK(s->PutCall("gone" + r, MakeCall("g", 1700000000000000)));
    ASSERT_OK(s->PurgeTenant("gone" + r));
    cycle("purge " + r);
    ASSERT_OK(s->CreateTenant({"new" + r, "", 0}));  // a new shard
    ASSERT_OK(s->PutCall("new" + r, MakeCall("n", 1700000000000000)));
    cycle("new shard " + r);
    ASSERT_OK(s->CompactAll());
    cycle("compaction " + r);
  }
  // A crash: no close, no file; the write in flight torn.
  Put("acme", "last");
  acme.push_back("last");
  auto [wal, before] = NewestWal(s);
  Put("acme", "in-flight");
  auto [wal2, after] = NewestWal(s);
  CrashImage(s);
  EXPECT_FALSE(fs::exists(s.db + "/CLOSE_MARK"));
  fs::resize_file(wal, before + (after - before) / 2);
  ASSERT_OK(s.Open());
  ExpectHealthy("acme", acme);
  cycle("after the crash");
  EXPECT_TRUE(NoLossReported(seen));
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
  double open_s = 0, scan_s = 0, close_s = 0;
  const int rounds = 3;
  for (int r = 0; r < rounds; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    ASSERT_OK(s.Open());
    open_s += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    auto paths = s->ShardPaths();
    paths.push_back(s->MetaPath());
    // Close: syncs, and (decision 0015) reads the shards' WALs for the
    // high-water mark and writes it.
    t0 = std::chrono::steady_clock::now();
    ASSERT_OK(s->Close());
    close_s += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
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
              "(%.0f MB/s); close %.3f s; load average %.2f\n",
              n, wal_bytes / 1e6, open_s / rounds, scan_s / rounds, wal_bytes / 1e6 / (scan_s / rounds),
              close_s / rounds, load[0]);
}

}  // namespace
}  // namespace callvault
