// Recordings written through SST ingestion (Options::recording_ingest,
// docs/decisions/0055): the chunks of a recording go into a table file in
// the shard's `ingest/` directory and Finish ingests it into the tenant's
// family, then writes the manifest synced.
//   - the chunks are not written to the WAL, and nothing is left in the
//     ingest directory after Finish, Abort, a purge, a DeleteCall or a
//     rotation during the write;
//   - a file planted in the ingest directory is removed at open, unread;
//   - a recording deleted and written again under the same ids reads the
//     new content (the ingested chunks win over the earlier tombstones);
//   - a crash (SIGKILL) at recording.before_ingest, .after_ingest or
//     .after_manifest leaves the recording whole or absent, with no chunk
//     of it left behind; a power cut at .after_ingest too (the pending
//     marker is synced before the ingestion); a power cut after Finish
//     returned keeps it whole;
//   - a backup cut taken while a writer sits between its ingestion and its
//     manifest restores nothing of that recording (the pending marker is
//     in the cut with the chunks; the restore's open removes them).
//   - the writer's pipeline (decision 0061): the manifest's SHA-256 is the
//     content's at every size around a chunk boundary, pipeline on and off;
//     table files finished on the worker hold the chunks in order; a write
//     error of the worker is returned by the next Append that waits for it
//     or by Finish, with the writer's file removed at once and nothing
//     kept; a writer destroyed or aborted with chunks in flight joins its
//     worker and removes its file (run under asan-ubsan and tsan too).
#include <sodium.h>

#include <fstream>
#include <future>
#include <thread>

#include "callvault/backup.h"
#include "engine/calls_internal.h"
#include "engine/kill_point.h"
#include "tests/damage/damage_util.h"
#include "tests/recordings/rec_util.h"
#include "tests/testutil/fault_fs.h"
#include "workload/workload.h"

namespace callvault {
namespace {

using rectest::kChunk;
using rectest::kT0;
using rectest::RawShard;
namespace fs = std::filesystem;

constexpr const char* kChildTest = "RecordingIngestChild.DISABLED_Run";

// Table files of two chunks: the worker finishes (writes out and syncs)
// each file after its second chunk.
struct SmallFiles {
  SmallFiles() { calls::SetRecordingIngestFileBytesForTest(2 * kChunk); }
  ~SmallFiles() { calls::SetRecordingIngestFileBytesForTest(0); }
};

std::string Sha256(std::string_view data) {
  std::string out(crypto_hash_sha256_BYTES, '\0');
  crypto_hash_sha256(reinterpret_cast<unsigned char*>(out.data()),
                     reinterpret_cast<const unsigned char*>(data.data()), data.size());
  return out;
}

// The child: opens the store (CV_REC_DB, CV_REC_KEYS), writes recording
// CV_REC_ID of CV_REC_BYTES and finishes it; CALLVAULT_KILL_POINT kills it
// on the way. Reports "F" if Finish returned.
TEST(RecordingIngestChild, DISABLED_Run) {
  if (!rectest::IsChild()) GTEST_SKIP() << "runs only as a child of recording_ingest_test";
  Options o = testutil::DefaultOptions(rectest::Env("CV_REC_KEYS"));
  o.create_if_missing = false;
  auto store = Store::Open(o, rectest::Env("CV_REC_DB"));
  if (!store.ok()) return rectest::Report("E open: " + store.status().ToString());
  const std::string data = workload::RandomBytes(7, std::stoull(rectest::Env("CV_REC_BYTES")));
  auto info = rectest::WriteRecording(store->get(), "acme", "call-1", rectest::Env("CV_REC_ID"), data);
  rectest::Report(info.ok() ? "F" : "E finish: " + info.status().ToString());
  for (;;) ::pause();  // until SIGKILL
}

class RecordingIngestTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_GE(sodium_init(), 0);
    seed_ = rectest::TestSeed();
    ASSERT_TRUE(ts.options.recording_ingest) << "the ingested path is the default";
    ASSERT_OK(ts.Open());
    ASSERT_OK(ts->CreateTenant({.tenant_id = "acme"}));
    ASSERT_OK(ts->PutCall("acme", testutil::MakeCall("call-1", kT0)));
    Locate();
  }
  void TearDown() override {
    testing::DisarmKillPoints();
    testing::SetKillPointAction(nullptr);
  }
  void Locate() {
    auto info = ts->DescribeTenant("acme");
    ASSERT_OK(info);
    cf_ = info->column_family;
    shard_path_ = ts->ShardPaths().at(info->shard);
  }
  std::string IngestDir() const { return shard_path_ + "/ingest"; }
  // Entries in the ingest directory (0 when it does not exist).
  size_t IngestEntries() const {
    std::error_code ec;
    size_t n = 0;
    for (auto it = fs::directory_iterator(IngestDir(), ec); !ec && it != fs::directory_iterator();
         it.increment(ec)) {
      ++n;
    }
    return n;
  }
  uint64_t WalBytes() const { return rectest::TotalSize(rectest::FilesEndingWith(shard_path_, ".log")); }
  // Chunk keys, pending markers and manifests of the family on disk
  // (the store closed).
  struct RawState {
    size_t chunks = 0, pending = 0, manifests = 0;
  };
  RawState Raw() {
    RawState st;
    RawShard raw(shard_path_, /*read_only=*/true);
    EXPECT_TRUE(raw.status().ok()) << raw.status().ToString();
    if (!raw.status().ok()) return st;
    st.chunks = raw.Keys(cf_, std::string(1, format::kRecordingChunkPrefix)).size();
    st.pending = raw.Keys(cf_, std::string(1, format::kRecordingPendingPrefix)).size();
    st.manifests = raw.Keys(cf_, std::string(1, format::kRecordingManifestPrefix)).size();
    return st;
  }
  void ExpectAbsent(const std::string& id) {
    std::string got;
    EXPECT_EQ(rectest::ReadRange(ts.store.get(), "acme", "call-1", id, 0, UINT64_MAX, &got).code(),
              Code::kNotFound);
    auto list = ts->ListRecordings("acme", "call-1");
    ASSERT_OK(list);
    EXPECT_TRUE(list->empty());
  }
  void ExpectWhole(const std::string& id, const std::string& data) {
    std::string got;
    ASSERT_OK(rectest::ReadRange(ts.store.get(), "acme", "call-1", id, 0, UINT64_MAX, &got));
    EXPECT_TRUE(got == data) << "recording " << id << " differs";
  }
  void ExpectVerifyClean() {
    auto v = ts->Verify();
    ASSERT_OK(v);
    EXPECT_TRUE(v->ok()) << (v->failures.empty() ? "" : v->failures.front());
  }

  uint64_t seed_ = 0;
  testutil::TestStore ts;
  std::string cf_, shard_path_;
};

TEST_F(RecordingIngestTest, ChunksSkipTheWalAndNoFileIsLeft) {
  const std::string data = workload::RandomBytes(seed_, 5 * kChunk + 1234);
  const uint64_t wal_before = WalBytes();
  auto w = ts->CreateRecording("acme", "call-1", {.recording_id = "r1", .content_type = "audio/ogg"});
  ASSERT_OK(w);
  ASSERT_OK((*w)->Append(data.substr(0, 3 * kChunk)));
  // Sealed chunks wait in the writer's table file, not in the family.
  EXPECT_EQ(IngestEntries(), 1u);
  ASSERT_OK((*w)->Append(data.substr(3 * kChunk)));
  ASSERT_OK((*w)->Finish());
  EXPECT_EQ(IngestEntries(), 0u) << "the table file was moved into the shard";
  // 5 MiB of chunks, none of them through the WAL (the WAL path writes
  // every chunk there).
  EXPECT_LT(WalBytes() - wal_before, kChunk) << "chunks went through the WAL";
  ExpectWhole("r1", data);
  ASSERT_OK(ts.Reopen());
  ExpectWhole("r1", data);
  ExpectVerifyClean();
}

// A byte flipped in the first entry of an ingested table file (its
// varint header and the chunk's key, bytes RocksDB parses before the
// chunk's AEAD tag is ever checked) is kCorruption, never a crash, a wrong
// chunk or a silent NotFound. Before decision 0074 chunk reads skipped
// RocksDB's block checksums, and Debian's RocksDB (built with assertions)
// aborted in DataBlockIter::ParseNextDataKey on a damaged key of an
// ingested file (file_mutation_test, FileMutation.Sst).
TEST_F(RecordingIngestTest, DamagedTableEntryIsCorruptionNotACrash) {
  const std::string data = workload::RandomBytes(seed_, 3 * kChunk + 77);
  ASSERT_OK(rectest::WriteRecording(ts.store.get(), "acme", "call-1", "r1", data));
  ts.Close();
  // The recording's table file: the one shard table file holding chunks.
  std::string table;
  for (const auto& [path, size] : rectest::FilesEndingWith(shard_path_, ".sst")) {
    if (size > 3 * kChunk) {
      ASSERT_TRUE(table.empty()) << "two table files hold chunks: " << table << ", " << path;
      table = path;
    }
  }
  ASSERT_FALSE(table.empty());
  ASSERT_GT(fs::file_size(table), 3 * kChunk);
  // Each damage starts from the closed store as written: a read that met
  // damage marks the tenant damaged, and later reads would stop there.
  testutil::TempDir pristine;
  testutil::CopyTree(ts.db, pristine.Sub("db"));
  testutil::CopyTree(ts.keys, pristine.Sub("keys"));
  auto restore = [&] {
    fs::remove_all(ts.db);
    fs::remove_all(ts.keys);
    testutil::CopyTree(pristine.Sub("db"), ts.db);
    testutil::CopyTree(pristine.Sub("keys"), ts.keys);
  };
  // The first entry: shared (1 byte), non-shared and value lengths
  // (varints), the chunk key with its 8-byte sequence/type footer.
  for (size_t off = 0; off < 48; ++off) {
    for (int bit : {0, 4}) {
      restore();
      damage::XorByte(table, off, static_cast<uint8_t>(1u << bit));
      if (HasFatalFailure()) return;
      ASSERT_OK(ts.Open());
      std::string got;
      const Status s = rectest::ReadRange(ts.store.get(), "acme", "call-1", "r1", 0, UINT64_MAX, &got);
      EXPECT_EQ(s.code(), Code::kCorruption) << "byte " << off << " bit " << bit << ": " << s.ToString();
      EXPECT_TRUE(got.empty()) << "byte " << off << ": bytes of the damaged first chunk reached the sink";
      ts.Close();
    }
  }
  restore();
  ASSERT_OK(ts.Open());
  ExpectWhole("r1", data);
  ExpectVerifyClean();
}

TEST_F(RecordingIngestTest, TheWalPathStaysSelectable) {
  ts.options.recording_ingest = false;
  ASSERT_OK(ts.Reopen());
  const std::string data = workload::RandomBytes(seed_, 3 * kChunk + 5);
  const uint64_t wal_before = WalBytes();
  ASSERT_OK(rectest::WriteRecording(ts.store.get(), "acme", "call-1", "old", data));
  EXPECT_GE(WalBytes() - wal_before, 3 * kChunk) << "recording_ingest = false writes through the WAL";
  EXPECT_EQ(IngestEntries(), 0u);
  ts.options.recording_ingest = true;
  ASSERT_OK(ts.Reopen());
  ExpectWhole("old", data);
}

TEST_F(RecordingIngestTest, PlantedFilesAreRemovedAtOpenAndNeverIngested) {
  // A real table file holding a chunk key of a recording id that is then
  // written: it must not be ingested, and the open removes it unread.
  ts.Close();
  fs::create_directories(IngestDir());
  {
    std::ofstream(IngestDir() + "/planted.sst") << "not a table";
    std::ofstream(IngestDir() + "/000123.sst") << std::string(4096, 'x');
    fs::create_directories(IngestDir() + "/sub");
    std::ofstream(IngestDir() + "/sub/x.sst") << "x";
    fs::create_symlink("/etc/hostname", IngestDir() + "/link.sst");
  }
  ASSERT_OK(ts.Open());
  EXPECT_EQ(IngestEntries(), 0u) << "the open sweeps the ingest directory";
  EXPECT_TRUE(fs::exists("/etc/hostname")) << "a symlink is unlinked, not followed";
  const std::string data = workload::RandomBytes(seed_, 2 * kChunk + 3);
  ASSERT_OK(rectest::WriteRecording(ts.store.get(), "acme", "call-1", "r1", data));
  ExpectWhole("r1", data);
  ExpectVerifyClean();
}

TEST_F(RecordingIngestTest, AbortAndDestructorRemoveTheFile) {
  const std::string data = workload::RandomBytes(seed_, 2 * kChunk + 3);
  {
    auto w = ts->CreateRecording("acme", "call-1", {.recording_id = "a", .content_type = "audio/ogg"});
    ASSERT_OK(w);
    ASSERT_OK((*w)->Append(data));
    EXPECT_EQ(IngestEntries(), 1u);
    ASSERT_OK((*w)->Abort());
    EXPECT_EQ(IngestEntries(), 0u);
  }
  {
    auto w = ts->CreateRecording("acme", "call-1", {.recording_id = "b", .content_type = "audio/ogg"});
    ASSERT_OK(w);
    ASSERT_OK((*w)->Append(data));
  }
  EXPECT_EQ(IngestEntries(), 0u);
  ExpectAbsent("a");
  ts.Close();
  RawState st = Raw();
  EXPECT_EQ(st.chunks, 0u);
  EXPECT_EQ(st.pending, 0u);
}

TEST_F(RecordingIngestTest, WriterKeptPastCloseRemovesItsFile) {
  const std::string data = workload::RandomBytes(seed_, 2 * kChunk + 3);
  auto w = ts->CreateRecording("acme", "call-1", {.recording_id = "r1", .content_type = "audio/ogg"});
  ASSERT_OK(w);
  ASSERT_OK((*w)->Append(data));
  ASSERT_EQ(IngestEntries(), 1u);
  ASSERT_OK(ts->Close());
  EXPECT_EQ((*w)->Finish().status().code(), Code::kFailedPrecondition);
  EXPECT_EQ(IngestEntries(), 0u);
  w->reset();
  ts.Close();
  ASSERT_OK(ts.Open());
  ExpectAbsent("r1");
  ExpectVerifyClean();
}

TEST_F(RecordingIngestTest, PurgeDuringTheWriteLeavesNothing) {
  const std::string data = workload::RandomBytes(seed_, 3 * kChunk + 3);
  auto w = ts->CreateRecording("acme", "call-1", {.recording_id = "r1", .content_type = "audio/ogg"});
  ASSERT_OK(w);
  ASSERT_OK((*w)->Append(std::string_view(data).substr(0, 2 * kChunk)));
  ASSERT_EQ(IngestEntries(), 1u);
  auto receipt = ts->PurgeTenant("acme");
  ASSERT_OK(receipt);
  // The next chunk finds the tenant gone: its file goes with it.
  EXPECT_FALSE((*w)->Append(std::string_view(data).substr(2 * kChunk)).ok());
  EXPECT_EQ(IngestEntries(), 0u) << "a purged tenant's ciphertext left in the ingest directory";
  EXPECT_FALSE((*w)->Finish().ok());
  w->reset();
  EXPECT_EQ(IngestEntries(), 0u);
  auto receipts = ts->ListReceipts();
  ASSERT_OK(receipts);
  ASSERT_EQ(receipts->size(), 1u);
  EXPECT_EQ(receipts->front().tenant_id, "acme");
  EXPECT_FALSE(ts->ListRecordings("acme", "call-1").ok());
}

TEST_F(RecordingIngestTest, PurgeBeforeFinishLeavesNothing) {
  const std::string data = workload::RandomBytes(seed_, kChunk / 2);
  auto w = ts->CreateRecording("acme", "call-1", {.recording_id = "r1", .content_type = "audio/ogg"});
  ASSERT_OK(w);
  ASSERT_OK((*w)->Append(data));  // nothing sealed yet: the last chunk is sealed by Finish
  ASSERT_OK(ts->PurgeTenant("acme"));
  EXPECT_FALSE((*w)->Finish().ok());
  EXPECT_EQ(IngestEntries(), 0u);
}

TEST_F(RecordingIngestTest, DeleteCallDuringTheWriteKeepsNothing) {
  const std::string data = workload::RandomBytes(seed_, 3 * kChunk + 3);
  auto w = ts->CreateRecording("acme", "call-1", {.recording_id = "r1", .content_type = "audio/ogg"});
  ASSERT_OK(w);
  ASSERT_OK((*w)->Append(data));
  ASSERT_OK(ts->DeleteCall("acme", "call-1"));
  EXPECT_EQ((*w)->Finish().status().code(), Code::kNotFound);
  EXPECT_EQ(IngestEntries(), 0u);
  ts.Close();
  RawState st = Raw();
  EXPECT_EQ(st.chunks, 0u);
  EXPECT_EQ(st.pending, 0u);
  EXPECT_EQ(st.manifests, 0u);
}

TEST_F(RecordingIngestTest, RotationDuringTheWriteKeepsNothing) {
  const std::string data = workload::RandomBytes(seed_, 3 * kChunk + 3);
  auto w = ts->CreateRecording("acme", "call-1", {.recording_id = "r1", .content_type = "audio/ogg"});
  ASSERT_OK(w);
  ASSERT_OK((*w)->Append(std::string_view(data).substr(0, 2 * kChunk)));
  ASSERT_OK(ts->RotateTenantKey("acme"));
  auto done = (*w)->Finish();
  EXPECT_EQ(done.status().code(), Code::kNotFound) << done.status().ToString();
  EXPECT_EQ(IngestEntries(), 0u);
  ExpectAbsent("r1");
  ExpectVerifyClean();
  // The same id is written again, under the new key.
  ASSERT_OK(rectest::WriteRecording(ts.store.get(), "acme", "call-1", "r1", data));
  ExpectWhole("r1", data);
}

TEST_F(RecordingIngestTest, RewrittenUnderTheSameIdsTheNewChunksWin) {
  // Written, deleted (tombstones in the memtable), written again under the
  // same ids: ingestion must place the new chunks above the tombstones.
  for (int round = 0; round < 3; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    const std::string data = workload::RandomBytes(seed_ + round, (3 - round) * kChunk + 17 * round);
    ASSERT_OK(rectest::WriteRecording(ts.store.get(), "acme", "call-1", "same", data));
    ExpectWhole("same", data);
    ASSERT_OK(ts->DeleteRecording("acme", "call-1", "same"));
    ExpectAbsent("same");
    if (round == 1) ASSERT_OK(ts.Reopen());  // tombstones flushed or replayed
  }
  const std::string last = workload::RandomBytes(seed_ ^ 9, 4 * kChunk);
  ASSERT_OK(rectest::WriteRecording(ts.store.get(), "acme", "call-1", "same", last));
  ExpectWhole("same", last);
  ASSERT_OK(ts.Reopen());
  ExpectWhole("same", last);
  ExpectVerifyClean();
}

// SIGKILL at each point of Finish: whole or absent, nothing left behind.
TEST_F(RecordingIngestTest, KilledAtEachPointOfFinish) {
  const std::string data = workload::RandomBytes(7, 3 * kChunk + 99);
  for (const char* point : {"recording.before_ingest", "recording.after_ingest", "recording.after_manifest"}) {
    SCOPED_TRACE(point);
    const std::string id = std::string("k-") + point;
    ts.Close();
    {
      rectest::Child c = rectest::SpawnSelf(kChildTest, {{"CV_REC_DB", ts.db},
                                                        {"CV_REC_KEYS", ts.keys},
                                                        {"CV_REC_ID", id},
                                                        {"CV_REC_BYTES", std::to_string(data.size())},
                                                        {"CALLVAULT_KILL_POINT", point}});
      std::optional<std::string> line = c.ReadLine(120000);
      EXPECT_FALSE(line.has_value()) << "the child reported '" << *line << "' instead of dying at the point";
      int status = c.KillAndWait(0);
      ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "wait status " << status;
    }
    ASSERT_OK(ts.Open());
    EXPECT_EQ(IngestEntries(), 0u);
    if (std::string(point) == "recording.after_manifest") {
      ExpectWhole(id, data);
      ASSERT_OK(ts->DeleteRecording("acme", "call-1", id));
    } else {
      ExpectAbsent(id);
    }
    ExpectVerifyClean();
    ts.Close();
    RawState st = Raw();
    EXPECT_EQ(st.chunks, 0u) << "chunks of an unfinished recording kept";
    EXPECT_EQ(st.pending, 0u);
    ASSERT_OK(ts.Open());
  }
}

// A power cut right after the ingestion (before the manifest): the marker
// must be as durable as the ingested chunks, or nothing would clean them.
// And a power cut after Finish returned keeps the recording whole.
TEST_F(RecordingIngestTest, PowerCutAfterIngestionAndAfterFinish) {
  ts.Close();
  const std::string data = workload::RandomBytes(seed_, 3 * kChunk + 99);
  for (bool at_point : {true, false}) {
    SCOPED_TRACE(at_point ? "cut at recording.after_ingest" : "cut after Finish returned");
    const std::string id = at_point ? "cut-mid" : "cut-done";
    auto ffs = std::make_shared<testutil::FaultFS>(seed_);
    auto env = testutil::FaultEnv(ffs);
    Options o = testutil::DefaultOptions(ts.keys);
    o.env = env.get();
    o.create_if_missing = false;
    {
      auto store = Store::Open(o, ts.db);
      ASSERT_OK(store);
      if (at_point) {
        testing::SetKillPointAction([&] { ffs->Freeze(); });
        testing::ArmKillPoint("recording.after_ingest");
        EXPECT_FALSE(rectest::WriteRecording(store->get(), "acme", "call-1", id, data).ok());
        testing::DisarmKillPoints();
        testing::SetKillPointAction(nullptr);
      } else {
        ASSERT_OK(rectest::WriteRecording(store->get(), "acme", "call-1", id, data));
        ffs->Freeze();
      }
      (*store)->Close().IgnoreError();
    }
    ffs->SimulatePowerLoss(testutil::PowerLossMode::kUndoDirOps);
    ASSERT_OK(ts.Open());
    if (at_point) {
      ExpectAbsent(id);
    } else {
      ExpectWhole(id, data);
    }
    ExpectVerifyClean();
    ts.Close();
    RawState st = Raw();
    EXPECT_EQ(st.chunks, at_point ? 0u : 4u);
    EXPECT_EQ(st.pending, 0u);
  }
}

// A backup cut between the ingestion and the manifest holds the ingested
// chunks and the (synced) pending marker, not the manifest: the restored
// store must not show a half recording, and keeps no chunk of it.
TEST_F(RecordingIngestTest, BackupCutBetweenIngestionAndManifestRestoresNothingOfIt) {
  const std::string data = workload::RandomBytes(seed_, 3 * kChunk + 7);
  const std::string keep = workload::RandomBytes(seed_ + 1, kChunk + 9);
  ASSERT_OK(rectest::WriteRecording(ts.store.get(), "acme", "call-1", "keep", keep));
  const std::string bak = ts.tmp.Sub("bak");
  std::promise<void> ingested, backed_up;
  std::shared_future<void> go_on = backed_up.get_future().share();
  testing::SetKillPointAction([&] {
    ingested.set_value();
    go_on.wait();
  });
  testing::ArmKillPoint("recording.after_ingest");
  std::thread writer([&] {
    EXPECT_OK(rectest::WriteRecording(ts.store.get(), "acme", "call-1", "mid", data));
  });
  ingested.get_future().wait();
  auto cut = ts->Backup(bak);
  backed_up.set_value();
  writer.join();
  testing::DisarmKillPoints();
  testing::SetKillPointAction(nullptr);
  ASSERT_OK(cut);
  ExpectWhole("mid", data);  // the live store finished it
  ts.Close();
  Options o = testutil::DefaultOptions(ts.keys);
  o.create_if_missing = false;
  const std::string restored = ts.tmp.Sub("restored");
  ASSERT_OK(Store::Restore(o, bak, restored));
  ts.db = restored;
  ASSERT_OK(ts.Open());
  Locate();
  std::string got;
  EXPECT_EQ(rectest::ReadRange(ts.store.get(), "acme", "call-1", "mid", 0, UINT64_MAX, &got).code(),
            Code::kNotFound);
  auto list = ts->ListRecordings("acme", "call-1");
  ASSERT_OK(list);
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ(list->front().recording_id, "keep");
  ExpectWhole("keep", keep);
  ExpectVerifyClean();
  ts.Close();
  RawState st = Raw();
  EXPECT_EQ(st.chunks, 2u) << "chunks of the half recording restored";
  EXPECT_EQ(st.pending, 0u);
  EXPECT_EQ(st.manifests, 1u);
}

// The writer's pipeline (Options::recording_pipeline, docs/decisions/0061):
// the caller's thread seals chunk N+1 while a thread of the writer hashes
// chunk N and adds it to the table file.
class RecordingPipelineTest : public RecordingIngestTest {
 protected:
  void SetUp() override {
    ASSERT_TRUE(ts.options.recording_pipeline) << "the pipeline is the default";
    RecordingIngestTest::SetUp();
  }
  // The store closed: no chunk, marker or manifest of the recording.
  void ExpectNothingKept() {
    ts.Close();
    RawState st = Raw();
    EXPECT_EQ(st.chunks, 0u);
    EXPECT_EQ(st.pending, 0u);
    EXPECT_EQ(st.manifests, 0u);
  }
  // Reopens the store on a FaultFS (the test's store closed first).
  std::unique_ptr<Store> OpenFaulty() {
    ts.Close();
    ffs_ = std::make_shared<testutil::FaultFS>(seed_);
    env_ = testutil::FaultEnv(ffs_);
    Options o = testutil::DefaultOptions(ts.keys);
    o.env = env_.get();
    o.create_if_missing = false;
    auto store = Store::Open(o, ts.db);
    EXPECT_TRUE(store.ok()) << store.status().ToString();
    return store.ok() ? std::move(store).value() : nullptr;
  }
  // A store on a FaultFS and writer "r1" of it, writing table files of two
  // chunks, with the next write of any file failing (forever: every later
  // one).
  struct Faulty {
    SmallFiles small;
    std::unique_ptr<Store> store;
    std::unique_ptr<RecordingWriter> w;
  };
  void StartFaultyWriter(Faulty* f, bool forever = false) {
    f->store = OpenFaulty();
    ASSERT_NE(f->store, nullptr);
    auto created = f->store->CreateRecording("acme", "call-1", {.recording_id = "r1", .content_type = "audio/ogg"});
    ASSERT_OK(created);
    f->w = std::move(created).value();
    ffs_->Inject({.kinds = testutil::kOpWrite, .nth = 1, .forever = forever});
  }

  std::shared_ptr<testutil::FaultFS> ffs_;
  std::unique_ptr<rocksdb::Env> env_;
};

// The worker hashes every chunk but the last, Finish the last: the
// manifest's hash must still be the content's, in order, whatever the size.
TEST_F(RecordingPipelineTest, HashIsTheContentsAtEverySize) {
  const std::string data = workload::RandomBytes(seed_, 3 * kChunk + 17);
  int n = 0;
  for (bool pipeline : {true, false}) {
    ts.options.recording_pipeline = pipeline;
    ASSERT_OK(ts.Reopen());
    for (size_t size : {size_t{0}, size_t{1}, kChunk - 1, kChunk, kChunk + 1, 2 * kChunk, 3 * kChunk + 17}) {
      SCOPED_TRACE("pipeline " + std::to_string(pipeline) + ", " + std::to_string(size) + " bytes");
      const std::string_view content = std::string_view(data).substr(0, size);
      const std::string id = "r" + std::to_string(n++);
      auto info = rectest::WriteRecording(ts.store.get(), "acme", "call-1", id, content, 300000);
      ASSERT_OK(info);
      EXPECT_TRUE(info->sha256 == Sha256(content)) << "the manifest's SHA-256 is not the content's";
      std::string got;
      ASSERT_OK(rectest::ReadRange(ts.store.get(), "acme", "call-1", id, 0, UINT64_MAX, &got));
      EXPECT_TRUE(got == content);
      // expected_sha256: the content's passes, another fails and keeps nothing.
      for (bool right : {true, false}) {
        std::string expect = Sha256(content);
        if (!right) expect[5] ^= 1;
        const std::string eid = id + (right ? "-ok" : "-bad");
        auto w = ts->CreateRecording("acme", "call-1",
                                     {.recording_id = eid, .content_type = "audio/ogg", .expected_sha256 = expect});
        ASSERT_OK(w);
        ASSERT_OK((*w)->Append(content));
        auto fin = (*w)->Finish();
        if (right) {
          ASSERT_OK(fin);
        } else {
          EXPECT_EQ(fin.status().code(), Code::kInvalidArgument);
          EXPECT_EQ(rectest::ReadRange(ts.store.get(), "acme", "call-1", eid, 0, UINT64_MAX, &got).code(),
                    Code::kNotFound);
        }
      }
    }
    EXPECT_EQ(IngestEntries(), 0u);
  }
}

// Files of two chunks, written in order on the worker, each finished there.
TEST_F(RecordingPipelineTest, FilesFinishedOnTheWorkerHoldTheChunksInOrder) {
  SmallFiles small;
  const std::string data = workload::RandomBytes(seed_, 5 * kChunk + 3);
  ASSERT_OK(rectest::WriteRecording(ts.store.get(), "acme", "call-1", "r1", data));
  EXPECT_EQ(IngestEntries(), 0u);
  std::string got;
  ASSERT_OK(rectest::ReadRange(ts.store.get(), "acme", "call-1", "r1", 0, UINT64_MAX, &got));
  EXPECT_TRUE(got == data);
  auto v = ts->Verify();
  ASSERT_OK(v);
  EXPECT_TRUE(v->ok()) << (v->failures.empty() ? "" : v->failures.front());
}

// A write error of the worker. SstFileWriter::Put keeps a failed write's
// status to itself (RocksDB 7.8.3 returns it from Finish only): with files
// of two chunks, the worker finishes the first file after chunk 1 and that
// Finish returns the write error of chunk 0's block (the first write after
// Inject), on the worker. The Append that seals chunk 2 needs the next
// file, opened only with the worker idle: it waits, and returns the error. The file is gone at once; every later call fails;
// nothing is kept.
TEST_F(RecordingPipelineTest, WorkerWriteErrorReturnsAtTheNextAppend) {
  const std::string data = workload::RandomBytes(seed_, 4 * kChunk);
  {
    Faulty f;
    ASSERT_NO_FATAL_FAILURE(StartFaultyWriter(&f));
    auto& w = f.w;
    Status s = w->Append(std::string_view(data).substr(0, 3 * kChunk));
    ffs_->Lift();
    EXPECT_EQ(ffs_->injected(), 1u) << "no write failed: " << ffs_->first_injected();
    EXPECT_FALSE(s.ok()) << "the worker's failed chunk was not returned by the Append that waited for it";
    EXPECT_NE(s.ToString().find(testutil::kInjectedMessage), std::string::npos) << s.ToString();
    EXPECT_EQ(IngestEntries(), 0u) << "the failed writer's table file was kept";
    EXPECT_FALSE(w->Append(std::string_view(data).substr(3 * kChunk)).ok());
    EXPECT_FALSE(w->Finish().ok());
    EXPECT_EQ(IngestEntries(), 0u);
    std::string got;
    EXPECT_EQ(rectest::ReadRange(f.store.get(), "acme", "call-1", "r1", 0, UINT64_MAX, &got).code(), Code::kNotFound);
  }
  ExpectNothingKept();
}

// The same failure with no chunk after it: Finish waits for the worker
// and returns its error. (Lost, Finish would go on with a new file for the
// last chunk and fail on the broken first one without the injected error.)
TEST_F(RecordingPipelineTest, WorkerWriteErrorReturnsAtFinish) {
  const std::string data = workload::RandomBytes(seed_, 2 * kChunk);
  {
    Faulty f;
    ASSERT_NO_FATAL_FAILURE(StartFaultyWriter(&f));
    auto& w = f.w;
    // Chunks 0 and 1 handed over; chunk 1's Put fails on the worker, after
    // this Append looked for an error. Finish seals the (empty) last chunk.
    ASSERT_OK(w->Append(data));
    auto fin = w->Finish();
    ffs_->Lift();
    EXPECT_EQ(ffs_->injected(), 1u);
    ASSERT_FALSE(fin.ok()) << "a failed chunk was lost: the recording was finished";
    EXPECT_NE(fin.status().ToString().find(testutil::kInjectedMessage), std::string::npos) << fin.status().ToString();
    EXPECT_EQ(IngestEntries(), 0u) << "the failed writer's table file was kept";
    EXPECT_FALSE(w->Finish().ok());
    std::string got;
    EXPECT_EQ(rectest::ReadRange(f.store.get(), "acme", "call-1", "r1", 0, UINT64_MAX, &got).code(), Code::kNotFound);
    // The store writes on: another recording after the fault.
    ASSERT_OK(rectest::WriteRecording(f.store.get(), "acme", "call-1", "r2", data));
    ASSERT_OK(rectest::ReadRange(f.store.get(), "acme", "call-1", "r2", 0, UINT64_MAX, &got));
    EXPECT_TRUE(got == data);
    ASSERT_OK(f.store->DeleteRecording("acme", "call-1", "r2"));
  }
  ExpectNothingKept();
}

// A writer destroyed, or aborted, right after an Append handed a chunk to
// the worker (it may still be writing it): the worker is joined, the file
// removed, nothing kept; and a writer whose worker failed is destroyed
// cleanly too. Sizes vary where the last chunk handed over ends.
TEST_F(RecordingPipelineTest, WriterDestroyedMidPipeline) {
  const std::string data = workload::RandomBytes(seed_, 4 * kChunk + 3);
  for (int i = 0; i < 12; ++i) {
    const size_t size = (i % 4 + 1) * kChunk + (i % 3) * 7;
    auto w = ts->CreateRecording("acme", "call-1",
                                 {.recording_id = "r" + std::to_string(i), .content_type = "audio/ogg"});
    ASSERT_OK(w);
    ASSERT_OK((*w)->Append(std::string_view(data).substr(0, size)));
    if (i % 2) ASSERT_OK((*w)->Abort());
    w->reset();
    EXPECT_EQ(IngestEntries(), 0u) << "writer " << i;
  }
  {
    Faulty f;
    ASSERT_NO_FATAL_FAILURE(StartFaultyWriter(&f, /*forever=*/true));
    f.w->Append(std::string_view(data).substr(0, 2 * kChunk)).IgnoreError();
    f.w.reset();  // its worker failed (or is failing) on chunk 1
    ffs_->Lift();
    EXPECT_EQ(IngestEntries(), 0u);
  }
  ASSERT_OK(ts.Open());
  auto list = ts->ListRecordings("acme", "call-1");
  ASSERT_OK(list);
  EXPECT_TRUE(list->empty());
  ExpectNothingKept();
}

}  // namespace
}  // namespace callvault
