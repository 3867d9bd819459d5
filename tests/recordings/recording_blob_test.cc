// Where recordings are stored and how they leave (issue 4 items 3 and 6):
//   - a 20 MiB recording goes to blob files of its tenant's column family;
//     marker and random bytes of it appear in no file under the store (WAL,
//     SSTs, blob files, keys) after the write, a flush and a compaction;
//   - PurgeTenant removes the tenant's blob files (after its receipt, on the
//     shard's reaper: decision 0049) and leaves others';
//   - DeleteCall and Erase take the call's recordings with them (nothing
//     listed or stored; a re-created call has none);
//   - DeleteRecording followed by CompactAll gives the blob bytes back;
//   - a whole read does not fault fresh memory in per chunk (decision 0047).
#include <sys/resource.h>

#include <chrono>
#include <cstring>
#include <thread>

#include "tests/recordings/rec_util.h"
#include "tests/testutil/sanitizers.h"
#include "workload/workload.h"

namespace callvault {
namespace {

using rectest::kChunk;
using rectest::kT0;
using rectest::RawShard;
using testutil::MakeCall;

std::string Join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += "\n  " + x;
  return s;
}

class RecordingBlobTest : public ::testing::Test {
 protected:
  void SetUp() override {
    seed_ = rectest::TestSeed();
    ASSERT_OK(ts.Open());
  }

  void AddTenant(const std::string& t) {
    ASSERT_OK(ts->CreateTenant({.tenant_id = t}));
    ASSERT_OK(ts->PutCall(t, MakeCall("call-1", kT0)));
    auto info = ts->DescribeTenant(t);
    ASSERT_OK(info);
    cf_[t] = info->column_family;
    shard_path_ = ts->ShardPaths().at(info->shard);
  }

  std::string ReadAll(const std::string& t, const std::string& call, const std::string& id) {
    std::string out;
    EXPECT_OK(rectest::ReadRange(ts.store.get(), t, call, id, 0, UINT64_MAX, &out));
    return out;
  }

  // Blob files of each family, from a raw read-only open of the closed store.
  std::map<std::string, std::set<std::string>> BlobFilesByTenant() {
    std::map<std::string, std::set<std::string>> out;
    RawShard raw(shard_path_, /*read_only=*/true);
    EXPECT_TRUE(raw.status().ok()) << raw.status().ToString();
    if (!raw.status().ok()) return out;
    for (const auto& [t, cf] : cf_) {
      if (raw.cf(cf) != nullptr) out[t] = raw.BlobFiles(cf);
    }
    return out;
  }

  bool Exists(const std::string& blob_name) {
    return std::filesystem::exists(shard_path_ + "/" + blob_name);
  }

  uint64_t seed_ = 0;
  testutil::TestStore ts;
  std::map<std::string, std::string> cf_;
  std::string shard_path_;
};

TEST_F(RecordingBlobTest, BlobFilesCanaryAndPurge) {
  AddTenant("acme");
  AddTenant("globex");
  std::mt19937_64 rng(seed_);
  // 20 MiB of random bytes with 32-byte markers written over it at chunk
  // boundaries and inside chunks, plus 32-byte windows of the random bytes.
  std::string data = workload::RandomBytes(seed_, 20 * kChunk);
  std::vector<std::string> needles;
  for (uint64_t off : {uint64_t{0}, kChunk - 10, kChunk + 17, 7 * kChunk + kChunk / 2, 13 * kChunk - 5,
                       20 * kChunk - 32}) {
    std::string m = "CVCANARY";
    static const char* kHex = "0123456789abcdef";
    while (m.size() < 32) m.push_back(kHex[rng() & 15]);
    data.replace(off, m.size(), m);
    needles.push_back(m);
  }
  for (int i = 0; i < 8; ++i) needles.push_back(data.substr(rng() % (data.size() - 32), 32));
  const std::string other = workload::RandomBytes(seed_ + 1, 6 * kChunk + 999);

  auto info = rectest::WriteRecording(ts.store.get(), "acme", "call-1", "meeting", data, 333333);
  ASSERT_OK(info);
  ASSERT_OK(rectest::WriteRecording(ts.store.get(), "globex", "call-1", "standup", other));
  uint64_t scanned = 0;
  EXPECT_TRUE(rectest::ScanTree(ts.tmp.path(), needles, &scanned).empty()) << "after the write (WAL)";
  ASSERT_OK(ts->Flush());
  EXPECT_TRUE(rectest::ScanTree(ts.tmp.path(), needles).empty()) << "after Flush";
  ASSERT_OK(ts->CompactAll());
  auto hits = rectest::ScanTree(ts.tmp.path(), needles, &scanned);
  EXPECT_TRUE(hits.empty()) << "after CompactAll:" << Join(hits);
  std::printf("[canary] %zu needles, %llu bytes scanned after CompactAll: %zu hits\n", needles.size(),
              static_cast<unsigned long long>(scanned), hits.size());
  // The markers are really in the recording.
  EXPECT_TRUE(ReadAll("acme", "call-1", "meeting") == data);

  const auto blobs_on_disk = rectest::FilesEndingWith(shard_path_, ".blob");
  std::printf("[blob] %zu blob files, %llu bytes, in the shard after CompactAll\n", blobs_on_disk.size(),
              static_cast<unsigned long long>(rectest::TotalSize(blobs_on_disk)));
  EXPECT_GE(rectest::TotalSize(blobs_on_disk), data.size() + other.size()) << "recordings are not in blob files";
  ts.Close();

  auto by_tenant = BlobFilesByTenant();
  const std::set<std::string> acme_blobs = by_tenant["acme"], globex_blobs = by_tenant["globex"];
  ASSERT_FALSE(acme_blobs.empty());
  ASSERT_FALSE(globex_blobs.empty());
  uint64_t acme_bytes = 0;
  for (const auto& b : acme_blobs) {
    EXPECT_FALSE(globex_blobs.count(b)) << b << " is shared";
    ASSERT_TRUE(Exists(b)) << b;
    acme_bytes += std::filesystem::file_size(shard_path_ + "/" + b);
  }
  EXPECT_GE(acme_bytes, data.size());

  ASSERT_OK(ts.Open());
  ASSERT_OK(ts->PurgeTenant("acme"));
  // The files go after the receipt, on the shard's reaper (decision 0049).
  ASSERT_TRUE(testutil::WaitForPurgeDeletions(*ts.store)) << "the purged family's files are not deleted";
  for (const auto& b : acme_blobs) EXPECT_FALSE(Exists(b)) << b << " still exists once its deletion is done";
  EXPECT_TRUE(ReadAll("globex", "call-1", "standup") == other);
  ts.Close();
  for (const auto& b : acme_blobs) EXPECT_FALSE(Exists(b)) << b << " still exists after purge and close";
  for (const auto& b : globex_blobs) EXPECT_TRUE(Exists(b)) << "another tenant's blob file " << b << " is gone";
  const auto after = rectest::FilesEndingWith(shard_path_, ".blob");
  for (const auto& [f, size] : after) {
    EXPECT_TRUE(globex_blobs.count(std::filesystem::path(f).filename().string())) << "unexpected blob file " << f;
  }
  std::printf("[blob] purge: blob files %zu -> %zu, bytes %llu -> %llu\n", blobs_on_disk.size(), after.size(),
              static_cast<unsigned long long>(rectest::TotalSize(blobs_on_disk)),
              static_cast<unsigned long long>(rectest::TotalSize(after)));
  hits = rectest::ScanTree(ts.tmp.path(), needles);
  EXPECT_TRUE(hits.empty()) << "after purge:" << Join(hits);
  ASSERT_OK(ts.Open());
  EXPECT_TRUE(ReadAll("globex", "call-1", "standup") == other);
}

TEST_F(RecordingBlobTest, DeleteCallAndEraseTakeRecordings) {
  AddTenant("acme");
  AddTenant("initech");
  ASSERT_OK(ts->PutCall("acme", MakeCall("call-2", kT0 + 1)));
  const std::string a = workload::RandomBytes(seed_, 3 * kChunk + 1);
  const std::string b = workload::RandomBytes(seed_ + 1, kChunk + kChunk / 2);
  const std::string c = workload::RandomBytes(seed_ + 2, 4000);
  ASSERT_OK(rectest::WriteRecording(ts.store.get(), "acme", "call-2", "a", a));
  ASSERT_OK(rectest::WriteRecording(ts.store.get(), "acme", "call-2", "b", b));
  ASSERT_OK(rectest::WriteRecording(ts.store.get(), "acme", "call-1", "c", c));
  ASSERT_OK(rectest::WriteRecording(ts.store.get(), "initech", "call-1", "x", a));
  ASSERT_OK(ts->Flush());

  ASSERT_OK(ts->DeleteCall("acme", "call-2"));
  auto list = ts->ListRecordings("acme", "call-2");
  if (list.ok()) {
    EXPECT_TRUE(list->empty());
  } else {
    EXPECT_CODE(list, Code::kNotFound);
  }
  std::string out;
  EXPECT_CODE(rectest::ReadRange(ts.store.get(), "acme", "call-2", "a", 0, UINT64_MAX, &out), Code::kNotFound);
  ASSERT_OK(ts->PutCall("acme", MakeCall("call-2", kT0 + 1)));
  list = ts->ListRecordings("acme", "call-2");
  ASSERT_OK(list);
  EXPECT_TRUE(list->empty()) << "a re-created call has the old call's recordings";
  EXPECT_CODE(rectest::ReadRange(ts.store.get(), "acme", "call-2", "b", 0, 10, &out), Code::kNotFound);
  EXPECT_TRUE(ReadAll("acme", "call-1", "c") == c);

  // Erasure of a subject deletes the calls that reference it (MakeCall's
  // participants), recordings included; physical erasure compacts.
  auto er = ts->Erase("initech", {.subject = "alice@example.com", .mode = EraseMode::kDelete});
  ASSERT_OK(er);
  EXPECT_EQ(er->changed, 1u);
  EXPECT_TRUE(ts->ListRecordings("initech", "call-1")->empty());
  ASSERT_OK(ts->PutCall("initech", MakeCall("call-1", kT0)));
  EXPECT_TRUE(ts->ListRecordings("initech", "call-1")->empty());
  EXPECT_CODE(rectest::ReadRange(ts.store.get(), "initech", "call-1", "x", 0, 10, &out), Code::kNotFound);
  ts.Close();

  {
    RawShard raw(shard_path_, true);
    ASSERT_TRUE(raw.status().ok()) << raw.status().ToString();
    auto groups = rectest::ChunkGroups(raw, cf_["acme"]);
    ASSERT_EQ(groups.size(), 1u) << "chunks of deleted recordings remain";
    EXPECT_EQ(groups.begin()->second.size(), 1u);  // c's
    EXPECT_EQ(raw.Keys(cf_["acme"], std::string(1, format::kRecordingManifestPrefix)).size(), 1u);
    EXPECT_TRUE(raw.Keys(cf_["acme"], std::string(1, format::kRecordingPendingPrefix)).empty());
    EXPECT_TRUE(rectest::ChunkGroups(raw, cf_["initech"]).empty()) << "erasure left chunks";
    EXPECT_TRUE(raw.Keys(cf_["initech"], std::string(1, format::kRecordingManifestPrefix)).empty());
    EXPECT_TRUE(raw.BlobFiles(cf_["initech"]).empty()) << "physical erasure left blob files";
  }
  ASSERT_OK(ts.Open());
  // The ids are free again.
  ASSERT_OK(rectest::WriteRecording(ts.store.get(), "acme", "call-2", "a", b));
  EXPECT_TRUE(ReadAll("acme", "call-2", "a") == b);
}

// A writer still open when its call is deleted must not leave a recording
// (whole or with its first chunks missing) attached to the call id.
// KNOWN BUG (tests/recordings/CMakeLists.txt): DeleteCall removes the
// pending marker and the chunks sealed so far, but the writer goes on:
// Finish() seals the rest and writes the manifest without checking that
// its marker (or call) still exists, and returns OK. The result is a
// recording under a deleted call (DeleteCall on it says kNotFound), which
// a re-created call with the same id lists, and whose reads fail with
// kCorruption "recording chunk 0 is missing"; its chunks stay until purge.
TEST_F(RecordingBlobTest, CallDeletedWhileRecordingIsWritten) {
  AddTenant("acme");
  const std::string data = workload::RandomBytes(seed_, 2 * kChunk + 500);
  auto w = ts->CreateRecording("acme", "call-1", {.recording_id = "live"});
  ASSERT_OK(w);
  ASSERT_OK((*w)->Append(std::string_view(data).substr(0, kChunk + 100)));
  ASSERT_OK(ts->DeleteCall("acme", "call-1"));
  (*w)->Append(std::string_view(data).substr(kChunk + 100)).IgnoreError();
  auto fin = (*w)->Finish();
  w->reset();
  auto list = ts->ListRecordings("acme", "call-1");
  ASSERT_OK(list);
  EXPECT_TRUE(list->empty()) << "Finish " << (fin.ok() ? "returned OK" : fin.status().ToString())
                             << " and left a recording under a deleted call";
  ASSERT_OK(ts->PutCall("acme", MakeCall("call-1", kT0)));
  list = ts->ListRecordings("acme", "call-1");
  ASSERT_OK(list);
  EXPECT_TRUE(list->empty()) << "the re-created call has the deleted call's recording";
  std::string out;
  Status s = rectest::ReadRange(ts.store.get(), "acme", "call-1", "live", 0, UINT64_MAX, &out);
  EXPECT_EQ(s.code(), Code::kNotFound) << s.ToString();
  ts.Close();
  RawShard raw(shard_path_, true);
  ASSERT_TRUE(raw.status().ok());
  EXPECT_TRUE(rectest::ChunkGroups(raw, cf_["acme"]).empty()) << "chunks of the recording remain";
  EXPECT_TRUE(raw.Keys(cf_["acme"], std::string(1, format::kRecordingManifestPrefix)).empty());
}

// The WAL path (Options::recording_ingest = false): chunks reach blob files
// at flush, each recording's in blob files of its own flushes.
TEST_F(RecordingBlobTest, DeleteRecordingThenCompactionFreesBlobBytes) {
  ts.options.recording_ingest = false;
  ASSERT_OK(ts.Reopen());
  AddTenant("acme");
  const std::string big = workload::RandomBytes(seed_, 20 * kChunk);
  const std::string small = workload::RandomBytes(seed_ + 1, 2 * kChunk + 3);
  ASSERT_OK(rectest::WriteRecording(ts.store.get(), "acme", "call-1", "big", big, 1 << 20));
  ASSERT_OK(rectest::WriteRecording(ts.store.get(), "acme", "call-1", "small", small));
  ASSERT_OK(ts->CompactAll());
  const uint64_t before = rectest::TotalSize(rectest::FilesEndingWith(shard_path_, ".blob"));
  EXPECT_GE(before, big.size() + small.size());
  ASSERT_OK(ts->DeleteRecording("acme", "call-1", "big"));
  ASSERT_OK(ts->CompactAll());
  const uint64_t after = rectest::TotalSize(rectest::FilesEndingWith(shard_path_, ".blob"));
  std::printf("[blob] DeleteRecording(20 MiB) + CompactAll: blob bytes %llu -> %llu\n",
              static_cast<unsigned long long>(before), static_cast<unsigned long long>(after));
  EXPECT_LE(after + 15 * kChunk, before) << "deleting a 20 MiB recording freed less than 15 MiB of blob files";
  EXPECT_TRUE(ReadAll("acme", "call-1", "small") == small);
  ts.Close();
  ASSERT_OK(ts.Open());
  EXPECT_TRUE(ReadAll("acme", "call-1", "small") == small);
  auto v = ts->Verify("acme");
  ASSERT_OK(v);
  EXPECT_EQ(v->records_failed, 0u);
}

// RocksDB 7.8.3 reads each 1 MiB blob into a fresh buffer and copies it
// into a second one it hands over. Released before the next chunk's read,
// the two left 2 MiB free at the top of glibc's heap, which went back to
// the kernel and was faulted in again (zeroed) for every chunk: ~2 minor
// faults per 4 KiB read. ReadChunks keeps the previous chunk pinned until
// the next one is fetched (decision 0047). Measured with the process's
// minor-fault count around a second whole read of a compacted recording
// (the sink compares in place and allocates nothing).
// The ingested path (decision 0055): a recording's chunks arrive as a
// table file of their own; deleting it and compacting frees its bytes,
// and the chunks of the one kept move into blob files.
TEST_F(RecordingBlobTest, DeleteIngestedRecordingThenCompactionFreesItsBytes) {
  AddTenant("acme");
  const std::string big = workload::RandomBytes(seed_, 20 * kChunk);
  const std::string small = workload::RandomBytes(seed_ + 1, 2 * kChunk + 3);
  ASSERT_OK(rectest::WriteRecording(ts.store.get(), "acme", "call-1", "big", big, 1 << 20));
  ASSERT_OK(rectest::WriteRecording(ts.store.get(), "acme", "call-1", "small", small));
  auto stored = [&] {
    return rectest::TotalSize(rectest::FilesEndingWith(shard_path_, ".blob")) +
           rectest::TotalSize(rectest::FilesEndingWith(shard_path_, ".sst"));
  };
  const uint64_t before = stored();
  EXPECT_GE(before, big.size() + small.size());
  ASSERT_OK(ts->DeleteRecording("acme", "call-1", "big"));
  ASSERT_OK(ts->CompactAll());
  const uint64_t after = stored();
  std::printf("[blob] ingested: DeleteRecording(20 MiB) + CompactAll: table and blob bytes %llu -> %llu\n",
              static_cast<unsigned long long>(before), static_cast<unsigned long long>(after));
  EXPECT_LE(after + 15 * kChunk, before) << "deleting a 20 MiB recording freed less than 15 MiB";
  EXPECT_GE(rectest::TotalSize(rectest::FilesEndingWith(shard_path_, ".blob")), small.size())
      << "the compaction kept the chunks inline in table files";
  EXPECT_TRUE(ReadAll("acme", "call-1", "small") == small);
  ts.Close();
  ASSERT_OK(ts.Open());
  EXPECT_TRUE(ReadAll("acme", "call-1", "small") == small);
  auto v = ts->Verify("acme");
  ASSERT_OK(v);
  EXPECT_EQ(v->records_failed, 0u);
}

TEST_F(RecordingBlobTest, WholeReadDoesNotFaultFreshMemoryPerChunk) {
#ifdef CV_SANITIZED
  GTEST_SKIP() << "the sanitizers' allocators place memory their own way";
#else
  AddTenant("acme");
  constexpr size_t kChunks = 24;
  const std::string data = workload::RandomBytes(seed_, kChunks * kChunk + 17);
  ASSERT_OK(rectest::WriteRecording(ts.store.get(), "acme", "call-1", "rec", data, 1 << 20));
  ASSERT_OK(ts->CompactAll());
  auto read_whole = [&](uint64_t* faults) -> Status {
    uint64_t at = 0;
    bool same = true;
    rusage before{}, after{};
    ::getrusage(RUSAGE_SELF, &before);
    Status s = ts->ReadRecording("acme", "call-1", "rec", 0, UINT64_MAX, [&](std::string_view b) {
      same = same && at + b.size() <= data.size() && std::memcmp(b.data(), data.data() + at, b.size()) == 0;
      at += b.size();
      return Status::OK();
    });
    ::getrusage(RUSAGE_SELF, &after);
    *faults = static_cast<uint64_t>(after.ru_minflt - before.ru_minflt);
    if (s.ok() && (!same || at != data.size())) return Status::Corruption("read returned other bytes");
    return s;
  };
  uint64_t warm = 0, faults = 0;
  ASSERT_OK(read_whole(&warm));
  ASSERT_OK(read_whole(&faults));
  const uint64_t pages = data.size() / 4096;
  std::printf("[blob] whole read of %zu MiB: %llu minor faults (first read %llu; %llu pages read)\n",
              kChunks, static_cast<unsigned long long>(faults), static_cast<unsigned long long>(warm),
              static_cast<unsigned long long>(pages));
  // Refaulting per chunk is ~2 faults per page read (~12,600 here); reused
  // memory leaves a few hundred at most (one chunk's buffers, 257 pages each).
  EXPECT_LT(faults, pages / 4) << "a whole read faulted fresh memory in for its chunks";
#endif
}

}  // namespace
}  // namespace callvault
