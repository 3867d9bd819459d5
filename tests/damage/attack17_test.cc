// Session 16 attack on what that session built: recordings written through
// SST ingestion (decision 0055), synced put cuts (0056), a tenant moved
// between shards (0057) and point reads through one MultiGet (0058). (The
// brief named this file attack16_test.cc; that name is session 14's attack
// on the WAL ledger, so this one is attack17.)
//   - a table file of a recording writer swapped, in the ingest directory,
//     for a forged one between the writer's Append and its Finish (same
//     name), or just before the ingestion, must not be ingested: a forged
//     file holding one range deletion over the whole key space deleted
//     every call of the tenant (fixed: the writer checks the file is the
//     one it finished);
//   - a stale writer (its call deleted and put again, its recording id
//     taken by a new writer) must neither be kept nor delete or overwrite
//     the new writer's recording, on either path (fixed: a writer knows its
//     pending marker by its bytes);
//   - a second writer of an open id is refused;
//   - GetCalls answers every position of a batch with repeated ids, fails
//     a batch holding a damaged record as GetCall fails (no plaintext in
//     the message), and under a concurrent purge answers whole or refuses;
//   - invalid UTF-8 past the first 8-byte word of a transcript segment is
//     refused naming the field, nothing written;
//   - a full disk while a recording's table file is written, or from the
//     ingestion on: Finish fails, nothing is left, the store goes on.
#include <gtest/gtest.h>
#include <rocksdb/options.h>
#include <rocksdb/sst_file_writer.h>

#include <filesystem>
#include <atomic>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "callvault/recording.h"
#include "callvault/store.h"
#include "engine/kill_point.h"
#include "format/rowkey.h"
#include "tests/testutil/fault_fs.h"
#include "tests/testutil/raw_shard.h"
#include "tests/testutil/testutil.h"

namespace callvault {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kT0 = 1'767'225'600'000'000;
constexpr uint64_t kChunk = kRecordingChunkBytes;
constexpr int kCalls = 5;

std::string Bytes(size_t n, uint64_t seed) {
  std::mt19937_64 g(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(g());
  return s;
}

std::string CallId(int i) { return "call-" + std::to_string(i); }

class Attack17Test : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_NO_FATAL_FAILURE(Start()); }
  void Start() {
    ASSERT_OK(ts.Open());
    ASSERT_OK(ts->CreateTenant({.tenant_id = "acme"}));
    for (int i = 0; i < kCalls; ++i) ASSERT_OK(ts->PutCall("acme", testutil::MakeCall(CallId(i), kT0 + i)));
    auto info = ts->DescribeTenant("acme");
    ASSERT_OK(info);
    shard_path_ = ts->ShardPaths().at(info->shard);
  }
  std::string IngestDir() const { return shard_path_ + "/ingest"; }
  std::vector<std::string> IngestFiles() const {
    std::vector<std::string> out;
    std::error_code ec;
    for (auto it = fs::directory_iterator(IngestDir(), ec); !ec && it != fs::directory_iterator();
         it.increment(ec)) {
      out.push_back(it->path().string());
    }
    return out;
  }
  void ExpectCallsReadable(const char* when) {
    SCOPED_TRACE(when);
    for (int i = 0; i < kCalls; ++i) {
      auto c = ts->GetCall("acme", CallId(i));
      EXPECT_TRUE(c.ok()) << CallId(i) << ": " << c.status().ToString();
    }
  }

  testutil::TestStore ts;
  std::string shard_path_;
};

// A table file of one range deletion over every key, as RocksDB's own
// SstFileWriter makes it (a valid file for the family's comparator).
void WriteWipeTable(const std::string& path) {
  rocksdb::Options o;
  rocksdb::SstFileWriter sst(rocksdb::EnvOptions(), o);
  ASSERT_TRUE(sst.Open(path).ok());
  ASSERT_TRUE(sst.DeleteRange(std::string(), std::string(64, '\xff')).ok());
  ASSERT_TRUE(sst.Finish().ok());
}

// Finding: Finish ingests whatever file is at the writer's path. Whoever can
// write <shard>/ingest (the sweep at open treats anything found there as
// planted) replaces the writer's file, keeping its name, with a table file of
// one range deletion: the ingestion gives it a sequence number above every
// row of the family, and every call of the tenant is gone, silently (no
// error, no audit event; the reopen and its table check see a file the
// MANIFEST lists). The writer must check that the file it ingests is the one
// it finished.
TEST_F(Attack17Test, IngestFileSwappedBeforeFinishIsRefused) {
  auto w = ts->CreateRecording("acme", CallId(0), {.recording_id = "r1", .content_type = "audio/ogg"});
  ASSERT_OK(w);
  ASSERT_OK((*w)->Append(Bytes(2 * kChunk + 7, 1)));
  const auto files = IngestFiles();
  ASSERT_EQ(files.size(), 1u) << "the writer's table file is in the ingest directory";
  const std::string forged = IngestDir() + "/forged.tmp";
  ASSERT_NO_FATAL_FAILURE(WriteWipeTable(forged));
  fs::rename(forged, files[0]);  // the writer keeps its descriptor of the old inode
  Status fin = (*w)->Finish().status();
  EXPECT_FALSE(fin.ok()) << "a table file the writer did not write was ingested";
  ExpectCallsReadable("after Finish");
  w->reset();
  EXPECT_TRUE(IngestFiles().empty()) << "the refused file is left in the ingest directory";
  ASSERT_OK(ts.Reopen());
  ExpectCallsReadable("after reopen");
  auto v = ts->Verify();
  ASSERT_OK(v);
  EXPECT_TRUE(v->ok()) << (v->failures.empty() ? "" : v->failures.front());
}

// The same swap in the narrowest window the writer leaves: after Finish
// finished the table file and synced the pending marker, just before the
// ingestion (recording.before_ingest).
TEST_F(Attack17Test, IngestFileSwappedJustBeforeTheIngestionIsRefused) {
  auto w = ts->CreateRecording("acme", CallId(0), {.recording_id = "r3", .content_type = "audio/ogg"});
  ASSERT_OK(w);
  ASSERT_OK((*w)->Append(Bytes(kChunk / 2, 3)));  // nothing sealed yet: Finish makes the file
  const std::string forged = IngestDir() + "/forged.tmp";
  bool swapped = false;
  testing::SetKillPointAction([&] {
    const auto files = IngestFiles();
    if (files.size() != 1) return;
    WriteWipeTable(forged);
    fs::rename(forged, files[0]);
    swapped = true;
  });
  testing::ArmKillPoint("recording.before_ingest");
  Status fin = (*w)->Finish().status();
  testing::DisarmKillPoints();
  testing::SetKillPointAction(nullptr);
  ASSERT_TRUE(swapped) << "the ingest directory did not hold the writer's one file";
  EXPECT_FALSE(fin.ok()) << "a table file the writer did not write was ingested";
  ExpectCallsReadable("after Finish");
  w->reset();
  EXPECT_TRUE(IngestFiles().empty());
  ASSERT_OK(ts.Reopen());
  ExpectCallsReadable("after reopen");
}

// Same with the forged file in place of a table file the writer already
// finished (a recording over kIngestFileBytes is split; here the last file
// is finished by Finish itself, so the swap is of a finished file's
// contents through another name: hard link the forged file over it).
TEST_F(Attack17Test, IngestFileOverwrittenInPlaceIsRefused) {
  auto w = ts->CreateRecording("acme", CallId(1), {.recording_id = "r2", .content_type = "audio/ogg"});
  ASSERT_OK(w);
  ASSERT_OK((*w)->Append(Bytes(kChunk + 3, 2)));
  const auto files = IngestFiles();
  ASSERT_EQ(files.size(), 1u);
  // Same inode kept, bytes replaced: open the writer's path for writing
  // after the writer's next appends land (they land in the same inode).
  const std::string forged = IngestDir() + "/forged.tmp";
  ASSERT_NO_FATAL_FAILURE(WriteWipeTable(forged));
  const std::string table = testutil::ReadFile(forged);
  fs::remove(forged);
  {
    FILE* f = std::fopen(files[0].c_str(), "r+b");
    ASSERT_NE(f, nullptr);
    ASSERT_EQ(std::fwrite(table.data(), 1, table.size(), f), table.size());
    std::fclose(f);
    fs::resize_file(files[0], table.size());
  }
  // Finish writes the table's last blocks and footer after the forged
  // bytes' end (the writer's offset): the file is no valid table then, or
  // one whose properties are not the writer's. Either way nothing of the
  // family may go.
  Status fin = (*w)->Finish().status();
  (void)fin;
  ExpectCallsReadable("after Finish");
  w->reset();
  ASSERT_OK(ts.Reopen());
  ExpectCallsReadable("after reopen");
}

// A recording id is taken while a writer of it is open (its pending
// marker), but a DeleteCall removes that marker, and once the call is put
// again a second writer of the same id may begin. The first writer's marker
// check at Finish then finds the second's marker and takes it for its own.
// Finding: the stale writer (of the deleted call) is kept under the new
// call, and the new writer's Finish then finds no marker, calls its
// recording deleted and deletes the stale one's manifest (chunks of the
// ingested path left behind with no manifest).
TEST_F(Attack17Test, StaleWriterOfADeletedCallDoesNotTakeTheNewWritersMarker) {
  const std::string stale = Bytes(2 * kChunk + 11, 6), fresh = Bytes(kChunk + 5, 7);
  auto a = ts->CreateRecording("acme", CallId(0), {.recording_id = "r1", .content_type = "audio/ogg"});
  ASSERT_OK(a);
  ASSERT_OK((*a)->Append(stale));
  ASSERT_OK(ts->DeleteCall("acme", CallId(0)));
  ASSERT_OK(ts->PutCall("acme", testutil::MakeCall(CallId(0), kT0)));
  auto b = ts->CreateRecording("acme", CallId(0), {.recording_id = "r1", .content_type = "audio/ogg"});
  ASSERT_OK(b);
  ASSERT_OK((*b)->Append(fresh));
  auto fa = (*a)->Finish();
  EXPECT_EQ(fa.status().code(), Code::kNotFound)
      << "the recording of a deleted call was kept under the call put again: " << fa.status().ToString();
  auto fb = (*b)->Finish();
  EXPECT_TRUE(fb.ok()) << fb.status().ToString();
  std::string got;
  Status rs = ts->ReadRecording("acme", CallId(0), "r1", 0, UINT64_MAX, [&](std::string_view bytes) {
    got.append(bytes);
    return Status::OK();
  });
  EXPECT_TRUE(rs.ok()) << rs.ToString();
  EXPECT_TRUE(got == fresh) << "r1 does not read as the second writer's content";
}

// Two writers of one recording id at once: the second is refused while the
// first is open, and the first's recording is whole.
TEST_F(Attack17Test, SecondWriterOfTheSameIdIsRefused) {
  const std::string data = Bytes(kChunk + 9, 12);
  auto a = ts->CreateRecording("acme", CallId(4), {.recording_id = "r1", .content_type = "audio/ogg"});
  ASSERT_OK(a);
  ASSERT_OK((*a)->Append(data));
  auto b = ts->CreateRecording("acme", CallId(4), {.recording_id = "r1", .content_type = "audio/ogg"});
  EXPECT_EQ(b.status().code(), Code::kAlreadyExists);
  ASSERT_OK((*a)->Finish());
  std::string got;
  ASSERT_OK(ts->ReadRecording("acme", CallId(4), "r1", 0, UINT64_MAX, [&](std::string_view bytes) {
    got.append(bytes);
    return Status::OK();
  }));
  EXPECT_TRUE(got == data);
}

// The same, with the stale writer abandoned (destroyed without Finish: its
// Abort) after the second one finished: the second's recording must stay.
TEST_F(Attack17Test, StaleWriterAbortLeavesTheNewRecording) {
  const std::string fresh = Bytes(kChunk + 5, 8);
  auto a = ts->CreateRecording("acme", CallId(1), {.recording_id = "r1", .content_type = "audio/ogg"});
  ASSERT_OK(a);
  ASSERT_OK((*a)->Append(Bytes(2 * kChunk, 9)));
  ASSERT_OK(ts->DeleteCall("acme", CallId(1)));
  ASSERT_OK(ts->PutCall("acme", testutil::MakeCall(CallId(1), kT0)));
  auto b = ts->CreateRecording("acme", CallId(1), {.recording_id = "r1", .content_type = "audio/ogg"});
  ASSERT_OK(b);
  ASSERT_OK((*b)->Append(fresh));
  ASSERT_OK((*b)->Finish());
  a->reset();  // Abort
  auto list = ts->ListRecordings("acme", CallId(1));
  ASSERT_OK(list);
  EXPECT_EQ(list->size(), 1u) << "the stale writer's Abort deleted the finished recording";
  ASSERT_OK(ts.Reopen());
  list = ts->ListRecordings("acme", CallId(1));
  ASSERT_OK(list);
  EXPECT_EQ(list->size(), 1u);
}

// The same stale writer on the WAL path (Options::recording_ingest =
// false), whose chunks are Put into the family under the recording's names
// as they are sealed: after the new writer finished, the stale one's next
// chunks overwrote the new recording's ("recording chunk 0 belongs to
// another recording"), an acknowledged recording lost.
TEST_F(Attack17Test, StaleWriterOnTheWalPathDoesNotOverwriteTheNewRecording) {
  ts.options.recording_ingest = false;
  ASSERT_OK(ts.Reopen());
  const std::string fresh = Bytes(kChunk + 5, 10);
  auto a = ts->CreateRecording("acme", CallId(2), {.recording_id = "r1", .content_type = "audio/ogg"});
  ASSERT_OK(a);
  ASSERT_OK(ts->DeleteCall("acme", CallId(2)));
  ASSERT_OK(ts->PutCall("acme", testutil::MakeCall(CallId(2), kT0)));
  auto b = ts->CreateRecording("acme", CallId(2), {.recording_id = "r1", .content_type = "audio/ogg"});
  ASSERT_OK(b);
  ASSERT_OK((*b)->Append(fresh));
  ASSERT_OK((*b)->Finish());
  (*a)->Append(Bytes(2 * kChunk, 11)).IgnoreError();  // seals chunks 0 and 1
  a->reset();
  std::string got;
  Status rs = ts->ReadRecording("acme", CallId(2), "r1", 0, UINT64_MAX, [&](std::string_view bytes) {
    got.append(bytes);
    return Status::OK();
  });
  EXPECT_TRUE(rs.ok()) << rs.ToString();
  EXPECT_TRUE(got == fresh) << "the finished recording does not read as written";
}

// GetCalls reads the batch with one MultiGet (decision 0058): an id asked
// for twice is answered twice, each position with the call.
TEST_F(Attack17Test, GetCallsWithRepeatedIds) {
  std::vector<std::string> ids = {CallId(0), CallId(0), "nope", CallId(3), CallId(0), "nope", CallId(3)};
  auto got = ts->GetCalls("acme", ids);
  ASSERT_OK(got);
  ASSERT_EQ(got->size(), ids.size());
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] == "nope") {
      EXPECT_EQ((*got)[i].status().code(), Code::kNotFound) << i;
      continue;
    }
    ASSERT_TRUE((*got)[i].ok()) << i << ": " << (*got)[i].status().ToString();
    EXPECT_EQ((*got)[i]->call_id, ids[i]) << i;
  }
  // And after a flush (values from table files, pinned blocks).
  ASSERT_OK(ts.Reopen());
  got = ts->GetCalls("acme", ids);
  ASSERT_OK(got);
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] != "nope") {
      EXPECT_TRUE((*got)[i].ok() && (*got)[i]->call_id == ids[i]) << i;
    }
  }
}

// A damaged record among the keys of a GetCalls batch (one MultiGet,
// decision 0058): the batch fails with kCorruption as GetCall of that id
// does, naming no plaintext; the other ids still read one by one, and the
// batch without the damaged part reads.
TEST_F(Attack17Test, DamagedRecordInAGetCallsBatch) {
  const std::string marker = "zebra-secret-7731";
  ASSERT_OK(ts->PutCall("acme", testutil::MakeCall("marked", kT0 + 50, marker)));
  auto info = ts->DescribeTenant("acme");
  ASSERT_OK(info);
  const std::string cf = info->column_family;
  ts.Close();
  {
    testutil::RawShard raw(shard_path_, /*read_only=*/false);
    ASSERT_TRUE(raw.status().ok()) << raw.status().ToString();
    // The largest call record: the marked call's transcript (its text is
    // the longest of the six calls').
    std::string key, value;
    for (auto& [k, v] : raw.Scan(cf)) {
      if (!k.empty() && k[0] == format::kCallPrefix && v.size() > value.size()) {
        key = k;
        value = v;
      }
    }
    ASSERT_FALSE(key.empty());
    value[value.size() / 2] ^= 0x20;
    raw.Put(cf, key, value);
  }
  ASSERT_OK(ts.Open());
  std::vector<std::string> ids;
  for (int i = 0; i < kCalls; ++i) ids.push_back(CallId(i));
  ids.push_back("marked");
  auto one = ts->GetCall("acme", "marked", kPartAll);
  ASSERT_FALSE(one.ok());
  auto got = ts->GetCalls("acme", ids, kPartAll);
  ASSERT_FALSE(got.ok()) << "a damaged record answered as a call";
  EXPECT_EQ(got.status().code(), one.status().code()) << got.status().ToString();
  EXPECT_EQ(std::string(got.status().message()).find(marker), std::string::npos) << got.status().ToString();
  ExpectCallsReadable("beside the damaged call");
  // Damaged was one part of one call: without it the batch reads.
  auto metas = ts->GetCalls("acme", ids, kPartParticipants);
  if (metas.ok()) {
    for (size_t i = 0; i < ids.size(); ++i) EXPECT_TRUE((*metas)[i].ok()) << ids[i];
  }
}

// GetCalls under a concurrent purge (no registered snapshot any more,
// decision 0058): every batch answers whole (each id the call) or fails
// as a read of a purged tenant; never a batch with some calls missing.
TEST_F(Attack17Test, GetCallsDuringAPurge) {
  std::vector<std::string> ids;
  for (int i = 0; i < kCalls; ++i) ids.push_back(CallId(i));
  std::atomic<bool> stop{false};
  std::atomic<int> whole{0}, refused{0}, partial{0};
  std::vector<std::thread> readers;
  for (int r = 0; r < 2; ++r) {
    readers.emplace_back([&] {
      while (!stop.load()) {
        auto got = ts->GetCalls("acme", ids, kPartAll);
        if (!got.ok()) {
          ++refused;
          continue;
        }
        int ok = 0;
        for (const auto& c : *got) ok += c.ok() ? 1 : 0;
        (ok == kCalls ? whole : partial)++;
      }
    });
  }
  // The readers have read at least once before the purge: no sleep, a
  // spin on the count.
  while (whole.load() + refused.load() + partial.load() < 4) std::this_thread::yield();
  EXPECT_OK(ts->PurgeTenant("acme"));  // not ASSERT: the readers must be joined
  const int before = whole.load() + refused.load() + partial.load();
  while (whole.load() + refused.load() + partial.load() < before + 4) std::this_thread::yield();
  stop = true;
  for (auto& t : readers) t.join();
  EXPECT_EQ(partial.load(), 0) << "a batch answered with some calls missing";
  EXPECT_GT(refused.load(), 0);
  auto after = ts->GetCalls("acme", ids, kPartAll);
  EXPECT_FALSE(after.ok());
}

// Synced put cuts (decision 0056): a transcript segment whose text is
// invalid UTF-8 only past its first eight-byte word (a 4-byte sequence cut
// at the word's end, a surrogate, an overlong NUL, a lone continuation
// byte), at every offset 0..15: the put is refused with the segment's field
// path, nothing is written; NUL bytes themselves are valid UTF-8 and kept.
TEST_F(Attack17Test, InvalidUtf8InATranscriptSegmentIsRefusedByPath) {
  const std::vector<std::string> bad = {"\xf0\x9f\x98", "\xed\xa0\x80", "\xc0\x80", "\x80",
                                        "\xf4\x90\x80\x80", "\xe0\x80\xaf"};
  int n = 0;
  for (const auto& b : bad) {
    for (size_t off = 0; off < 16; ++off) {
      const std::string id = "utf8-" + std::to_string(n++);
      Call c = testutil::MakeCall(id, kT0 + 1000 + n);
      ASSERT_GE(c.transcript.size(), 3u);
      c.transcript[2].text = std::string(off, 'a') + b + "tail text";
      auto put = ts->PutCall("acme", c);
      ASSERT_FALSE(put.ok()) << "offset " << off;
      EXPECT_EQ(put.status().code(), Code::kInvalidArgument);
      EXPECT_NE(std::string(put.status().message()).find("transcript[2].text"), std::string::npos)
          << put.status().ToString();
      EXPECT_EQ(ts->GetCall("acme", id).status().code(), Code::kNotFound) << "written though refused";
    }
  }
  Call c = testutil::MakeCall("nul", kT0 + 5000);
  c.transcript[1].text = std::string("ab\0cd\0\0\0\0\0\0\0\0ef", 15);
  ASSERT_OK(ts->PutCall("acme", c));
  auto got = ts->GetCall("acme", "nul");
  ASSERT_OK(got);
  EXPECT_EQ(got->transcript[1].text, c.transcript[1].text);
}

// A full disk while the recording's table file is written (ENOSPC from
// every write): Append or Finish fails, the writer's file goes, and with
// space back the store takes calls and recordings again.
TEST_F(Attack17Test, FullDiskDuringTheTableFileWrite) {
  ts.Close();
  auto ffs = std::make_shared<testutil::FaultFS>(17);
  auto env = testutil::FaultEnv(ffs);
  Options o = testutil::DefaultOptions(ts.keys);
  o.env = env.get();
  o.create_if_missing = false;
  auto store = Store::Open(o, ts.db);
  ASSERT_OK(store);
  {
    auto w = (*store)->CreateRecording("acme", CallId(2), {.recording_id = "full", .content_type = "audio/ogg"});
    ASSERT_OK(w);
    ASSERT_OK((*w)->Append(Bytes(kChunk + 1, 3)));
    ffs->Inject({.kinds = testutil::kOpWrite | testutil::kOpSync, .nth = 1, .forever = true, .no_space = true});
    Status s = (*w)->Append(Bytes(3 * kChunk, 4));
    if (s.ok()) s = (*w)->Finish().status();
    EXPECT_FALSE(s.ok()) << "the table file was written on a full disk";
    ffs->Lift();
  }
  EXPECT_TRUE(IngestFiles().empty()) << "a failed writer's table file is left";
  auto st = (*store)->PutCall("acme", testutil::MakeCall("after-full", kT0 + 100));
  EXPECT_TRUE(st.ok()) << st.status().ToString();
  auto w = (*store)->CreateRecording("acme", CallId(2), {.recording_id = "again", .content_type = "audio/ogg"});
  ASSERT_OK(w);
  ASSERT_OK((*w)->Append(Bytes(2 * kChunk, 5)));
  auto info = (*w)->Finish();
  EXPECT_TRUE(info.ok()) << info.status().ToString();
}

// A full disk from the ingestion on (the n-th mutating operation after
// recording.before_ingest and every one after it fail with ENOSPC: the
// hard link, the file's and directory's syncs, the MANIFEST edit, the
// manifest batch): Finish fails or the recording is whole; after the disk
// has room again and the store is reopened, the recording is whole or
// absent, the calls read, the ingest directory is empty and verify is
// clean.
TEST_F(Attack17Test, FullDiskDuringTheIngestion) {
  int refused = 0;
  for (uint64_t nth = 1; nth <= 8; ++nth) {
    SCOPED_TRACE("ENOSPC from mutating operation " + std::to_string(nth) + " after before_ingest");
    ts.Close();
    auto ffs = std::make_shared<testutil::FaultFS>(nth);
    auto env = testutil::FaultEnv(ffs);
    Options o = testutil::DefaultOptions(ts.keys);
    o.env = env.get();
    o.create_if_missing = false;
    const std::string id = "full-" + std::to_string(nth);
    const std::string data = Bytes(2 * kChunk + 5, 20 + nth);
    bool finished = false;
    {
      auto store = Store::Open(o, ts.db);
      ASSERT_OK(store);
      auto w = (*store)->CreateRecording("acme", CallId(3), {.recording_id = id, .content_type = "audio/ogg"});
      ASSERT_OK(w);
      ASSERT_OK((*w)->Append(data));
      testing::SetKillPointAction(
          [&] { ffs->Inject({.kinds = testutil::kOpMutating, .nth = nth, .forever = true, .no_space = true}); });
      testing::ArmKillPoint("recording.before_ingest");
      finished = (*w)->Finish().ok();
      testing::DisarmKillPoints();
      testing::SetKillPointAction(nullptr);
      ffs->Lift();
      if (ffs->injected() != 0) {
        ++refused;
        std::printf("nth %llu: Finish %s; first failed: %s\n", static_cast<unsigned long long>(nth),
                    finished ? "returned" : "failed", ffs->first_injected().c_str());
      }
      w->reset();
      (*store)->Close().IgnoreError();
    }
    ASSERT_OK(ts.Open());
    std::string got;
    Status rs = ts->ReadRecording("acme", CallId(3), id, 0, UINT64_MAX, [&](std::string_view b) {
      got.append(b);
      return Status::OK();
    });
    if (finished) {
      EXPECT_TRUE(rs.ok() && got == data) << "a finished recording is not whole: " << rs.ToString();
    } else {
      EXPECT_TRUE(rs.ok() ? got == data : rs.code() == Code::kNotFound) << rs.ToString();
    }
    ExpectCallsReadable("after the full disk");
    EXPECT_TRUE(IngestFiles().empty());
    auto v = ts->Verify();
    ASSERT_OK(v);
    EXPECT_TRUE(v->ok()) << (v->failures.empty() ? "" : v->failures.front());
  }
  EXPECT_GE(refused, 4) << "the full disk reached too few of the ingestion's operations";
}

}  // namespace
}  // namespace callvault
