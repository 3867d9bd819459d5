// Format compatibility (docs/compatibility.md): this build opens a store of
// every format it reads, each a fixture committed in tests/engine/testdata
// and written by a build of that format: store-format-1 (the first),
// store-format-2 (call versions, decision 0028) and store-format-3 (the
// current one: the change feed, decision 0030), reading calls, versions and
// (format 3) the change feed's events exactly as written; and it refuses,
// with a specific error and without changing the header, a store whose
// header claims a format it does not read. store-format-3-blobs (format 3,
// written by a build before decision 0081, whose min_blob_size was 256 KiB)
// holds long calls that build left in a blob file and in its WAL: this
// build, whose min_blob_size is 1 MiB, reads them, writes, compacts and
// purges over them.
//
// The fixture of the current format is written (only when the format
// changes; the older ones are kept) by DISABLED_MakeFixture:
//   CALLVAULT_WRITE_FIXTURE=$PWD/tests/engine/testdata/store-format-3
//   build/release/tests/engine/compat_test --gtest_also_run_disabled_tests
//       --gtest_filter='*MakeFixture*'
//   (the first line an environment variable of the second). store-format-2
// was written by its steps up to the second put of call-2 (a format 2
// build), store-format-1 by the puts and the purge (format 1).
// store-format-3-blobs is written the same way by DISABLED_MakeBlobFixture
// (--gtest_filter='*MakeBlobFixture', CALLVAULT_WRITE_FIXTURE naming
// store-format-3-blobs), but only by a build before a3c50a7 (it was
// written by 7a6b9f2): this build would keep those records in table files.
#include <rocksdb/db.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "callvault/store.h"
#include "callvault/version.h"
#include "format/rowkey.h"
#include "tests/testutil/fixture.h"
#include "tests/testutil/testutil.h"

#ifndef CALLVAULT_TESTDATA_DIR
#error "CALLVAULT_TESTDATA_DIR must name tests/engine/testdata"
#endif

namespace callvault {
namespace {


using testutil::MakeCall;

constexpr int64_t kT0 = 1'767'225'600'000'000;  // 2026-01-01T00:00:00Z
const char kFixture[] = CALLVAULT_TESTDATA_DIR "/store-format-1";
const char kFixture2[] = CALLVAULT_TESTDATA_DIR "/store-format-2";
const char kFixture3[] = CALLVAULT_TESTDATA_DIR "/store-format-3";
const char kFixtureBlobs[] = CALLVAULT_TESTDATA_DIR "/store-format-3-blobs";
// The participant of call-3 only, erased from the format 3 fixture.
const char kErasedSubject[] = "erin@erased.example";

// The fixture's store and keys, copied to a temporary directory.
struct FixtureCopy : testutil::FixtureCopy {
  explicit FixtureCopy(const char* fixture = kFixture) : testutil::FixtureCopy(fixture) {}
};

Call Expected(int i) { return MakeCall("call-" + std::to_string(i), kT0 + i, "fixture"); }

// call-3 of the format 3 fixture: one participant nobody else has, erased.
Call ErasedCall() {
  Call c = Expected(3);
  c.participants = {Participant{.name = "Erin", .email = kErasedSubject, .speaker_id = 1}};
  return c;
}

// The long calls of store-format-3-blobs: 96 segments of 4 KiB drawn from
// 64 letters by std::mt19937_64 (whose output the standard fixes, unlike
// the distributions', so any build regenerates it) from `seed`. At 6 bits
// a letter zstd keeps about 3/4 of the transcript's 384 KiB: its sealed
// record is ~300 KiB, above the 256 KiB min_blob_size of the builds before
// decision 0081 and below this build's 1 MiB.
constexpr uint32_t kLongSegments = 96;
constexpr size_t kLongSegmentBytes = 4096;
// The min_blob_size of the builds before decision 0081.
constexpr uint64_t kMinOldBlobBytes = 256u << 10;
const uint64_t kLongBlobSeed = 81;  // "long-blob": flushed into a blob file
const uint64_t kLongWalSeed = 82;   // "long-wal": left in the WAL

Call LongCall(const std::string& call_id, uint64_t seed) {
  static constexpr char kLetters[] =
      "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .";
  static_assert(sizeof kLetters == 64 + 1);
  std::mt19937_64 rng(seed);
  Call c = MakeCall(call_id, kT0 + static_cast<int64_t>(seed), "long");
  c.transcript.clear();
  for (uint32_t i = 0; i < kLongSegments; ++i) {
    std::string text(kLongSegmentBytes, ' ');
    for (char& ch : text) ch = kLetters[rng() >> 58];  // the top 6 bits
    c.transcript.push_back(
        TranscriptSegment{1 + i % 2, i * 3000, i * 3000 + 2500, std::move(text), 0.9f});
  }
  return c;
}

// The calls of store-format-3-blobs by id.
Call BlobFixtureCall(const std::string& call_id) {
  if (call_id == "long-blob") return LongCall(call_id, kLongBlobSeed);
  if (call_id == "long-wal") return LongCall(call_id, kLongWalSeed);
  return MakeCall(call_id, kT0, "blobs");
}

// The size of the largest *.blob file under store directory `db` (0 if
// none): a fixture without one would let the test below pass vacuously.
uint64_t LargestBlobFile(const std::string& db) {
  uint64_t largest = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(db)) {
    if (e.is_regular_file() && e.path().extension() == ".blob") {
      largest = std::max<uint64_t>(largest, e.file_size());
    }
  }
  return largest;
}
// The bytes of the WALs (*.log) of the shards of store directory `db`.
uint64_t ShardWalBytes(const std::string& db) {
  uint64_t total = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(db + "/shards")) {
    if (e.is_regular_file() && e.path().extension() == ".log") total += e.file_size();
  }
  return total;
}

std::string ReadFormatHeader(const std::string& db) {
  rocksdb::DB* raw = nullptr;
  rocksdb::Options o;
  auto s = rocksdb::DB::OpenForReadOnly(o, db + "/meta", &raw);
  if (!s.ok()) return "open failed: " + s.ToString();
  std::unique_ptr<rocksdb::DB> meta(raw);
  std::string v;
  s = meta->Get(rocksdb::ReadOptions(), format::HeaderKey("format"), &v);
  return s.ok() ? v : "get failed: " + s.ToString();
}

void WriteFormatHeader(const std::string& db, const std::string& value) {
  rocksdb::DB* raw = nullptr;
  rocksdb::Options o;
  ASSERT_TRUE(rocksdb::DB::Open(o, db + "/meta", &raw).ok());
  std::unique_ptr<rocksdb::DB> meta(raw);
  rocksdb::WriteOptions w;
  w.sync = true;
  ASSERT_TRUE(meta->Put(w, format::HeaderKey("format"), value).ok());
}

// Not a test: writes the fixture (see the comment at the top).
TEST(CompatTest, DISABLED_MakeFixture) {
  const std::string out = testutil::FixtureOutputDir();
  ASSERT_FALSE(out.empty()) << "set CALLVAULT_WRITE_FIXTURE";
  auto store = Store::Open(testutil::DefaultOptions(out + "/keys"), out + "/db");
  ASSERT_OK(store);
  ASSERT_OK((*store)->CreateTenant({.tenant_id = "acme", .retention_days = 3650}));
  ASSERT_OK((*store)->CreateTenant({.tenant_id = "globex", .retention_days = 30}));
  for (int i = 0; i < 3; ++i) ASSERT_OK((*store)->PutCall("acme", Expected(i)));
  // Format 2: versions. call-1 updated once; call-2 deleted and put again.
  Call insights;
  insights.insights.summary = "updated insights";
  ASSERT_OK((*store)->UpdateCall("acme", "call-1", kPartInsights, insights));
  ASSERT_OK((*store)->DeleteCall("acme", "call-2"));
  ASSERT_OK((*store)->PutCall("acme", Expected(2)));
  // Format 3: the change feed. Besides the events above, an erasure.
  ASSERT_OK((*store)->PutCall("acme", ErasedCall()));
  auto erased = (*store)->Erase(
      "acme", {.subject = kErasedSubject, .mode = EraseMode::kDelete, .physical = false});
  ASSERT_OK(erased);
  ASSERT_EQ(erased->changed, 1u);
  ASSERT_OK((*store)->PutCall("globex", Expected(9)));
  ASSERT_OK((*store)->PurgeTenant("globex"));
  ASSERT_OK((*store)->Close());
  store->reset();
  testutil::RemoveInfoLogs(out + "/db");
}

// Not a test: writes store-format-3-blobs (see the comment at the top).
// It must run on a build before a3c50a7 (decision 0081), e.g. 7a6b9f2,
// whose min_blob_size is 256 KiB: this build keeps records under 1 MiB in
// table files, and the fixture would hold no blob file.
TEST(CompatTest, DISABLED_MakeBlobFixture) {
  const std::string out = testutil::FixtureOutputDir();
  ASSERT_FALSE(out.empty()) << "set CALLVAULT_WRITE_FIXTURE";
  auto store = Store::Open(testutil::DefaultOptions(out + "/keys"), out + "/db");
  ASSERT_OK(store);
  ASSERT_OK((*store)->CreateTenant({.tenant_id = "acme", .retention_days = 3650}));
  ASSERT_OK((*store)->PutCall("acme", BlobFixtureCall("short-0")));
  ASSERT_OK((*store)->PutCall("acme", BlobFixtureCall("long-blob")));
  // The flush writes long-blob's transcript record into a blob file.
  ASSERT_OK((*store)->Flush());
  // long-wal is only in the WAL: Close syncs it but flushes no memtable.
  ASSERT_OK((*store)->PutCall("acme", BlobFixtureCall("long-wal")));
  ASSERT_OK((*store)->Close());
  store->reset();
  testutil::RemoveInfoLogs(out + "/db");
  EXPECT_GE(LargestBlobFile(out + "/db"), kMinOldBlobBytes);
  EXPECT_GT(ShardWalBytes(out + "/db"), kMinOldBlobBytes);
}

TEST(CompatTest, OpensAStoreWrittenByThePreviousFormatVersion) {
  ASSERT_EQ(ReadFormatHeader(kFixture + std::string("/db")), "1");
  FixtureCopy copy;
  {
    // A read-only open reads it as it is and leaves the header at 1.
    auto ro = copy.Open(/*read_only=*/true);
    ASSERT_OK(ro);
    auto got = (*ro)->GetCall("acme", "call-0");
    ASSERT_OK(got);
    EXPECT_EQ(got->version, 1u);
  }
  EXPECT_EQ(ReadFormatHeader(copy.db), "1");
  {
    auto store = copy.Open();
    ASSERT_OK(store);
    for (int i = 0; i < 3; ++i) {
      auto got = (*store)->GetCall("acme", "call-" + std::to_string(i));
      ASSERT_OK(got);
      Call expect = Expected(i);
      expect.created_at = got->created_at;
      expect.updated_at = got->updated_at;
      EXPECT_EQ(*got, expect) << i;
      EXPECT_EQ(got->version, 1u) << "format 1 calls read as version 1";
    }
    // Versions go on from 1: a conditional update on version 1 applies; a
    // delete and a re-put never give a call version 1 again.
    Call patch;
    patch.insights.summary = "after the upgrade";
    auto upd = (*store)->UpdateCall("acme", "call-0", kPartInsights, patch, 1);
    ASSERT_OK(upd);
    EXPECT_GT(upd->version, 1u);
    EXPECT_CODE((*store)->UpdateCall("acme", "call-0", kPartInsights, patch, 1), Code::kConflict);
    auto del = (*store)->DeleteCall("acme", "call-1", std::optional<uint64_t>(1));
    ASSERT_OK(del);
    auto reput = (*store)->PutCall("acme", Expected(1));
    ASSERT_OK(reput);
    EXPECT_GT(reput->version, 1u);
    auto verify = (*store)->Verify();
    ASSERT_OK(verify);
    EXPECT_TRUE(verify->ok());
    auto upgraded = (*store)->ListAudit(0, "store_format_upgraded");
    ASSERT_OK(upgraded);
    ASSERT_EQ(upgraded->size(), 1u);
    EXPECT_EQ((*upgraded)[0].detail, "from=1 to=3");
    auto page = (*store)->ListCalls("acme", {.limit = 10});
    ASSERT_OK(page);
    EXPECT_EQ(page->calls.size(), 3u);
    EXPECT_CODE((*store)->GetCall("globex", "call-9"), Code::kTenantPurged);
    auto receipts = (*store)->ListReceipts();
    auto key = (*store)->SigningPublicKey();
    ASSERT_OK(receipts);
    ASSERT_OK(key);
    ASSERT_EQ(receipts->size(), 1u);
    EXPECT_OK(VerifyReceiptChain(*receipts, *key));
    // The newer library writes to the older store and reopens it.
    ASSERT_OK((*store)->PutCall("acme", Expected(5)));
    ASSERT_OK((*store)->Close());
  }
  auto again = copy.Open();
  ASSERT_OK(again);
  EXPECT_OK((*again)->GetCall("acme", "call-5"));
  EXPECT_OK((*again)->GetCall("acme", "call-0"));
  ASSERT_OK((*again)->Close());
  // The writable open raised the header to 3 (decisions 0028, 0030): a
  // format 1 library, which would write calls without advancing their
  // versions (or a format 2 one, without change feed events), now refuses
  // the store.
  EXPECT_EQ(ReadFormatHeader(copy.db), "3");
}

TEST(CompatTest, OpensAStoreOfThePreviousFormatWithItsVersions) {
  ASSERT_EQ(ReadFormatHeader(kFixture2 + std::string("/db")), "2");
  FixtureCopy copy(kFixture2);
  auto store = copy.Open();
  ASSERT_OK(store);
  // Format 3 (decision 0030): the upgraded store's change feed starts empty
  // and holds the changes made from the open on.
  EXPECT_EQ(ReadFormatHeader(copy.db), "3");
  auto feed = (*store)->ReadChanges("acme", "");
  ASSERT_OK(feed);
  EXPECT_TRUE(feed->events.empty());
  uint64_t v[3] = {};
  for (int i = 0; i < 3; ++i) {
    auto got = (*store)->GetCall("acme", "call-" + std::to_string(i));
    ASSERT_OK(got);
    Call expect = Expected(i);
    if (i == 1) {
      expect.insights = Insights{};
      expect.insights.summary = "updated insights";
    }
    expect.created_at = got->created_at;
    expect.updated_at = got->updated_at;
    EXPECT_EQ(*got, expect) << i;
    v[i] = got->version;
  }
  // As written: call-0 put once; call-1 put, updated; call-2 put, deleted, put.
  EXPECT_EQ(v[0], 2u);
  EXPECT_EQ(v[1], 5u);
  EXPECT_EQ(v[2], 7u);
  // The tenant's counter was stored: the next version is above all of them.
  auto next = (*store)->PutCall("acme", Expected(0), v[0]);
  ASSERT_OK(next);
  EXPECT_EQ(next->version, 8u);
  auto after = (*store)->ReadChanges("acme", feed->next_token);
  ASSERT_OK(after);
  ASSERT_EQ(after->events.size(), 1u);
  EXPECT_EQ(after->events[0].sequence, 1u);
  EXPECT_EQ(after->events[0].call_id, "call-0");
  EXPECT_EQ(after->events[0].version, 8u);
  EXPECT_EQ(after->events[0].kind, ChangeKind::kPut);
  EXPECT_CODE((*store)->GetCall("globex", "call-9"), Code::kTenantPurged);
  auto verify = (*store)->Verify();
  ASSERT_OK(verify);
  EXPECT_TRUE(verify->ok());
}

TEST(CompatTest, OpensAStoreOfTheCurrentFormatWithItsChangeFeed) {
  ASSERT_EQ(ReadFormatHeader(kFixture3 + std::string("/db")), "3");
  // The events as DISABLED_MakeFixture wrote them: kind, cause, call, version.
  struct Want {
    ChangeKind kind;
    ChangeCause cause;
    const char* call_id;
    uint64_t version;
  };
  const Want want[] = {
      {ChangeKind::kPut, ChangeCause::kUser, "call-0", 2},
      {ChangeKind::kPut, ChangeCause::kUser, "call-1", 3},
      {ChangeKind::kPut, ChangeCause::kUser, "call-2", 4},
      {ChangeKind::kUpdate, ChangeCause::kUser, "call-1", 5},
      {ChangeKind::kDelete, ChangeCause::kUser, "call-2", 6},  // the delete's own version
      {ChangeKind::kPut, ChangeCause::kUser, "call-2", 7},
      {ChangeKind::kPut, ChangeCause::kUser, "call-3", 8},
      {ChangeKind::kDelete, ChangeCause::kErasure, "call-3", 8},  // the version it had
  };
  constexpr size_t kEvents = sizeof want / sizeof want[0];
  FixtureCopy copy(kFixture3);
  for (bool read_only : {true, false}) {
    SCOPED_TRACE(read_only ? "read-only open" : "writable open");
    auto store = copy.Open(read_only);
    ASSERT_OK(store);
    // Pages of three: the token of each page resumes the next.
    std::vector<ChangeEvent> events;
    std::string token;
    for (int pages = 0; pages < 10; ++pages) {
      auto page = (*store)->ReadChanges("acme", token, 3);
      ASSERT_OK(page);
      token = page->next_token;
      for (const auto& e : page->events) events.push_back(e);
      if (page->events.size() < 3) break;
    }
    ASSERT_EQ(events.size(), kEvents);
    int64_t committed = 0;
    for (size_t i = 0; i < kEvents; ++i) {
      SCOPED_TRACE(i);
      EXPECT_EQ(events[i].sequence, i + 1);
      EXPECT_EQ(events[i].kind, want[i].kind);
      EXPECT_EQ(events[i].cause, want[i].cause);
      EXPECT_EQ(events[i].call_id, want[i].call_id);
      EXPECT_EQ(events[i].version, want[i].version);
      EXPECT_GE(events[i].committed_at, committed);  // in commit order
      committed = events[i].committed_at;
    }
    EXPECT_GT(committed, 0);
    // The calls as written, at the versions the feed names.
    const uint64_t versions[] = {2, 5, 7};
    for (int i = 0; i < 3; ++i) {
      auto got = (*store)->GetCall("acme", "call-" + std::to_string(i));
      ASSERT_OK(got);
      Call expect = Expected(i);
      if (i == 1) {
        expect.insights = Insights{};
        expect.insights.summary = "updated insights";
      }
      expect.created_at = got->created_at;
      expect.updated_at = got->updated_at;
      EXPECT_EQ(*got, expect) << i;
      EXPECT_EQ(got->version, versions[i]) << i;
    }
    EXPECT_CODE((*store)->GetCall("acme", "call-3"), Code::kNotFound);  // erased
    auto refs = (*store)->FindReferences("acme", kErasedSubject);
    ASSERT_OK(refs);
    EXPECT_TRUE(refs->empty());
    EXPECT_CODE((*store)->GetCall("globex", "call-9"), Code::kTenantPurged);
    EXPECT_CODE((*store)->ReadChanges("globex", ""), Code::kTenantPurged);
    auto verify = (*store)->Verify();
    ASSERT_OK(verify);
    EXPECT_TRUE(verify->ok());
    if (read_only) continue;
    // The feed goes on after the fixture's last event, and the token read
    // above resumes at it; the version counter was stored.
    auto next = (*store)->PutCall("acme", Expected(0), versions[0]);
    ASSERT_OK(next);
    EXPECT_EQ(next->version, 9u);
    auto after = (*store)->ReadChanges("acme", token);
    ASSERT_OK(after);
    ASSERT_EQ(after->events.size(), 1u);
    EXPECT_EQ(after->events[0].sequence, kEvents + 1);
    EXPECT_EQ(after->events[0].call_id, "call-0");
    EXPECT_EQ(after->events[0].version, 9u);
    ASSERT_OK((*store)->Close());
    // The current format: nothing to upgrade, no audit event.
    EXPECT_EQ(ReadFormatHeader(copy.db), "3");
  }
}

// Decision 0081 raised min_blob_size from 256 KiB to 1 MiB. A build before
// it put each record of 256 KiB or more into a blob file at flush: this
// build reads those records of 256 KiB to 1 MiB where it put them (a blob
// file: long-blob's transcript) and where it left them (its WAL, replayed
// by this build's open: long-wal's), and writes, compacts and purges over
// them.
TEST(CompatTest, ReadsLongCallsAnOlderBuildLeftInBlobFilesAndItsWal) {
  const std::string fixture_db = kFixtureBlobs + std::string("/db");
  ASSERT_EQ(ReadFormatHeader(fixture_db), "3");
  ASSERT_GE(LargestBlobFile(fixture_db), kMinOldBlobBytes) << "no blob file in the fixture";
  ASSERT_GE(ShardWalBytes(fixture_db), kMinOldBlobBytes) << "no long record in its WAL";
  const std::vector<std::string> all = {"short-0", "long-blob", "long-wal"};
  // Each call of `ids` reads back as the older build wrote it (long-blob's
  // insights, once updated, as `summary`), compared whole.
  auto read_all = [](Store& store, const std::vector<std::string>& ids,
                     const std::string& summary) {
    for (const std::string& id : ids) {
      SCOPED_TRACE(id);
      auto got = store.GetCall("acme", id);
      ASSERT_OK(got);
      Call expect = BlobFixtureCall(id);
      if (id == "long-blob" && !summary.empty()) {
        expect.insights = Insights{};
        expect.insights.summary = summary;
      }
      expect.created_at = got->created_at;
      expect.updated_at = got->updated_at;
      EXPECT_EQ(*got, expect);
    }
  };
  FixtureCopy copy(kFixtureBlobs);
  {
    // Read-only: the WAL's record from a memtable, the other from its blob.
    auto ro = copy.Open(/*read_only=*/true);
    ASSERT_OK(ro);
    read_all(**ro, all, "");
    auto verify = (*ro)->Verify();
    ASSERT_OK(verify);
    EXPECT_TRUE(verify->ok());
  }
  {
    auto store = copy.Open();
    ASSERT_OK(store);
    read_all(**store, all, "");
    // An update of long-blob's insights leaves its transcript in the blob.
    Call insights;
    insights.insights.summary = "updated over a blob";
    ASSERT_OK((*store)->UpdateCall("acme", "long-blob", kPartInsights, insights));
    read_all(**store, {"long-blob"}, "updated over a blob");
    // The flush before the compaction writes long-wal's record, recovered
    // into a memtable, into a table file (this build's min_blob_size);
    // long-blob's stays in the older build's blob file, the only and so the
    // newest one, which blob garbage collection leaves as it is.
    ASSERT_OK((*store)->CompactAll());
    read_all(**store, all, "updated over a blob");
    auto verify = (*store)->Verify();
    ASSERT_OK(verify);
    EXPECT_TRUE(verify->ok());
    ASSERT_OK((*store)->Close());
  }
  auto store = copy.Open();
  ASSERT_OK(store);
  read_all(**store, all, "updated over a blob");
  ASSERT_OK((*store)->DeleteCall("acme", "long-wal"));
  EXPECT_CODE((*store)->GetCall("acme", "long-wal"), Code::kNotFound);
  read_all(**store, {"short-0", "long-blob"}, "updated over a blob");
  ASSERT_OK((*store)->PurgeTenant("acme"));
  for (const std::string& id : all) {
    SCOPED_TRACE(id);
    EXPECT_CODE((*store)->GetCall("acme", id), Code::kTenantPurged);
  }
  ASSERT_OK((*store)->Close());
}

TEST(CompatTest, ANewerFormatIsRefusedAndLeftAsItIs) {
  FixtureCopy copy;
  const std::string newer = std::to_string(kStoreFormatVersion + 1);
  WriteFormatHeader(copy.db, newer);
  for (bool read_only : {false, true}) {
    Options o = testutil::DefaultOptions(copy.keys);
    o.read_only = read_only;
    o.create_if_missing = false;
    auto store = Store::Open(o, copy.db);
    ASSERT_FALSE(store.ok());
    EXPECT_EQ(store.status().code(), Code::kNotSupported) << store.status().ToString();
    EXPECT_NE(store.status().message().find("store format version " + newer +
                                            " is newer than this build reads"),
              std::string::npos)
        << store.status().ToString();
  }
  EXPECT_EQ(ReadFormatHeader(copy.db), newer);
  // Put back, the store opens as before: nothing else was changed.
  WriteFormatHeader(copy.db, "1");
  auto store = copy.Open();
  ASSERT_OK(store);
  EXPECT_OK((*store)->GetCall("acme", "call-0"));
}

TEST(CompatTest, AnOlderFormatThanThisBuildReadsIsRefused) {
  FixtureCopy copy;
  WriteFormatHeader(copy.db, std::to_string(kMinReadableStoreFormatVersion - 1));
  auto store = copy.Open();
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), Code::kNotSupported);
  EXPECT_NE(store.status().message().find("is older than this build reads"), std::string::npos)
      << store.status().ToString();
}

TEST(CompatTest, AnUnreadableFormatFieldIsCorruption) {
  FixtureCopy copy;
  WriteFormatHeader(copy.db, "1x");
  auto store = copy.Open();
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), Code::kCorruption) << store.status().ToString();
  EXPECT_EQ(store.status().message(), "store header: bad format version");
}

}  // namespace
}  // namespace callvault
