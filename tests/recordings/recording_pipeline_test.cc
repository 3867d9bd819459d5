// The recording writer's pipeline (Options::recording_pipeline,
// docs/decisions/0061): the caller's thread seals chunk N+1 while a thread
// of the writer hashes chunk N and adds it to the table file.
//   - the manifest's SHA-256 is the content's, and expected_sha256 is
//     checked, at every size around a chunk boundary, with the pipeline on
//     and off;
//   - a write error of the worker (FaultFS) is returned by the next Append
//     that seals a chunk, or by Finish; the writer's table file is removed
//     then, every later call fails, and nothing of the recording is kept;
//   - a writer destroyed (or aborted) with a chunk in flight joins its
//     worker and removes its file (run under asan-ubsan and tsan too).
#include <sodium.h>

#include "engine/calls_internal.h"
#include "tests/recordings/rec_util.h"
#include "tests/testutil/fault_fs.h"
#include "workload/workload.h"

namespace callvault {
namespace {

using rectest::kChunk;
using rectest::kT0;
using rectest::RawShard;
namespace fs = std::filesystem;

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

class RecordingPipelineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_GE(sodium_init(), 0);
    seed_ = rectest::TestSeed();
    ASSERT_TRUE(ts.options.recording_pipeline) << "the pipeline is the default";
    ASSERT_OK(ts.Open());
    ASSERT_OK(ts->CreateTenant({.tenant_id = "acme"}));
    ASSERT_OK(ts->PutCall("acme", testutil::MakeCall("call-1", kT0)));
    auto info = ts->DescribeTenant("acme");
    ASSERT_OK(info);
    cf_ = info->column_family;
    shard_path_ = ts->ShardPaths().at(info->shard);
  }
  size_t IngestEntries() const {
    std::error_code ec;
    size_t n = 0;
    for (auto it = fs::directory_iterator(shard_path_ + "/ingest", ec); !ec && it != fs::directory_iterator();
         it.increment(ec)) {
      ++n;
    }
    return n;
  }
  // The store closed: no chunk and no marker of an unfinished recording.
  void ExpectNothingKept() {
    ts.Close();
    RawShard raw(shard_path_, /*read_only=*/true);
    ASSERT_TRUE(raw.status().ok()) << raw.status().ToString();
    EXPECT_EQ(raw.Keys(cf_, std::string(1, format::kRecordingChunkPrefix)).size(), 0u);
    EXPECT_EQ(raw.Keys(cf_, std::string(1, format::kRecordingPendingPrefix)).size(), 0u);
    EXPECT_EQ(raw.Keys(cf_, std::string(1, format::kRecordingManifestPrefix)).size(), 0u);
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

  uint64_t seed_ = 0;
  testutil::TestStore ts;
  std::string cf_, shard_path_;
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
// Inject), on the worker. The Append that seals chunk 2 waits for chunk 1:
// it returns the error. The file is gone at once; every later call fails;
// nothing is kept.
TEST_F(RecordingPipelineTest, WorkerWriteErrorReturnsAtTheNextAppend) {
  SmallFiles small;
  const std::string data = workload::RandomBytes(seed_, 4 * kChunk);
  {
    std::unique_ptr<Store> store = OpenFaulty();
    ASSERT_NE(store, nullptr);
    auto w = store->CreateRecording("acme", "call-1", {.recording_id = "r1", .content_type = "audio/ogg"});
    ASSERT_OK(w);
    ffs_->Inject({.kinds = testutil::kOpWrite, .nth = 1});
    Status s = (*w)->Append(std::string_view(data).substr(0, 3 * kChunk));
    ffs_->Lift();
    EXPECT_EQ(ffs_->injected(), 1u) << "no write failed: " << ffs_->first_injected();
    EXPECT_FALSE(s.ok()) << "the worker's failed chunk was not returned by the Append that waited for it";
    EXPECT_NE(s.ToString().find(testutil::kInjectedMessage), std::string::npos) << s.ToString();
    EXPECT_EQ(IngestEntries(), 0u) << "the failed writer's table file was kept";
    EXPECT_FALSE((*w)->Append(std::string_view(data).substr(3 * kChunk)).ok());
    EXPECT_FALSE((*w)->Finish().ok());
    EXPECT_EQ(IngestEntries(), 0u);
    std::string got;
    EXPECT_EQ(rectest::ReadRange(store.get(), "acme", "call-1", "r1", 0, UINT64_MAX, &got).code(), Code::kNotFound);
  }
  ExpectNothingKept();
}

// The same failure with no chunk after it: Finish waits for the worker
// and returns its error. (Lost, Finish would go on with a new file for the
// last chunk and fail on the broken first one without the injected error.)
TEST_F(RecordingPipelineTest, WorkerWriteErrorReturnsAtFinish) {
  SmallFiles small;
  const std::string data = workload::RandomBytes(seed_, 2 * kChunk);
  {
    std::unique_ptr<Store> store = OpenFaulty();
    ASSERT_NE(store, nullptr);
    auto w = store->CreateRecording("acme", "call-1", {.recording_id = "r1", .content_type = "audio/ogg"});
    ASSERT_OK(w);
    ffs_->Inject({.kinds = testutil::kOpWrite, .nth = 1});
    // Chunks 0 and 1 handed over; chunk 1's Put fails on the worker, after
    // this Append looked for an error. Finish seals the (empty) last chunk.
    ASSERT_OK((*w)->Append(data));
    auto fin = (*w)->Finish();
    ffs_->Lift();
    EXPECT_EQ(ffs_->injected(), 1u);
    ASSERT_FALSE(fin.ok()) << "a failed chunk was lost: the recording was finished";
    EXPECT_NE(fin.status().ToString().find(testutil::kInjectedMessage), std::string::npos) << fin.status().ToString();
    EXPECT_EQ(IngestEntries(), 0u) << "the failed writer's table file was kept";
    EXPECT_FALSE((*w)->Finish().ok());
    std::string got;
    EXPECT_EQ(rectest::ReadRange(store.get(), "acme", "call-1", "r1", 0, UINT64_MAX, &got).code(), Code::kNotFound);
    // The store writes on: another recording after the fault.
    ASSERT_OK(rectest::WriteRecording(store.get(), "acme", "call-1", "r2", data));
    ASSERT_OK(rectest::ReadRange(store.get(), "acme", "call-1", "r2", 0, UINT64_MAX, &got));
    EXPECT_TRUE(got == data);
    ASSERT_OK(store->DeleteRecording("acme", "call-1", "r2"));
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
    std::unique_ptr<Store> store = OpenFaulty();
    ASSERT_NE(store, nullptr);
    auto w = store->CreateRecording("acme", "call-1", {.recording_id = "f", .content_type = "audio/ogg"});
    ASSERT_OK(w);
    SmallFiles small;
    ffs_->Inject({.kinds = testutil::kOpWrite, .nth = 1, .forever = true});
    (*w)->Append(std::string_view(data).substr(0, 2 * kChunk)).IgnoreError();
    w->reset();  // its worker failed (or is failing) on chunk 1
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
