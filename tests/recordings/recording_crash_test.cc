// Crash safety of recordings (issue 4 item 4). A child process (this
// binary, re-executed) opens the store and writes a recording; the parent
// SIGKILLs it at a point the child reported over a pipe:
//   - mid-write (after some appends, or after all of them but before
//     Finish): after reopening, the recording is not listed, reads give
//     kNotFound, the raw shard holds no pending marker, manifest or chunk
//     of it, and the same recording id can be written again;
//   - right after Finish returned: the recording is complete and equal
//     (acknowledged means durable).
#include <sodium.h>

#include "tests/recordings/rec_util.h"
#include "workload/workload.h"

namespace callvault {
namespace {

using rectest::Child;
using rectest::kChunk;
using rectest::kT0;
using rectest::RawShard;

constexpr const char* kChildTest = "RecordingCrashChild.DISABLED_Run";
constexpr size_t kPiece = 96 * 1024;  // not a divisor of the chunk size

std::string Sha256(std::string_view data) {
  std::string out(crypto_hash_sha256_BYTES, '\0');
  crypto_hash_sha256(reinterpret_cast<unsigned char*>(out.data()),
                     reinterpret_cast<const unsigned char*>(data.data()), data.size());
  return out;
}

std::string Hex(std::string_view b) {
  static const char* kHex = "0123456789abcdef";
  std::string s;
  for (unsigned char c : b) {
    s.push_back(kHex[c >> 4]);
    s.push_back(kHex[c & 15]);
  }
  return s;
}

// The child: CV_REC_MODE = "midwrite" (append CV_REC_BYTES in pieces,
// reporting "A <bytes>" after each, then "D", never Finish) or "finish"
// (write, Finish, report "F <sha256 hex>"); then wait to be killed.
TEST(RecordingCrashChild, DISABLED_Run) {
  if (!rectest::IsChild()) GTEST_SKIP() << "runs only as a child of recording_crash_test";
  auto fail = [](const std::string& what, const Status& s) { rectest::Report("E " + what + ": " + s.ToString()); };
  Options o = testutil::DefaultOptions(rectest::Env("CV_REC_KEYS"));
  o.create_if_missing = false;
  o.recording_ingest = rectest::Env("CV_REC_INGEST") != "0";
  auto store = Store::Open(o, rectest::Env("CV_REC_DB"));
  if (!store.ok()) return fail("open", store.status());
  const std::string mode = rectest::Env("CV_REC_MODE");
  const std::string id = rectest::Env("CV_REC_ID");
  const uint64_t seed = std::stoull(rectest::Env("CV_REC_SEED"));
  const std::string data = workload::RandomBytes(seed, std::stoull(rectest::Env("CV_REC_BYTES")));
  auto w = (*store)->CreateRecording("acme", "call-1", {.recording_id = id, .content_type = "audio/mpeg"});
  if (!w.ok()) return fail("create", w.status());
  rectest::Report("C");
  for (size_t i = 0; i < data.size(); i += kPiece) {
    Status s = (*w)->Append(std::string_view(data).substr(i, kPiece));
    if (!s.ok()) return fail("append", s);
    if (mode == "midwrite") rectest::Report("A " + std::to_string(std::min(data.size(), i + kPiece)));
  }
  if (mode == "midwrite") {
    rectest::Report("D");
  } else {
    auto info = (*w)->Finish();
    if (!info.ok()) return fail("finish", info.status());
    rectest::Report("F " + Hex(info->sha256));
  }
  for (;;) ::pause();  // until SIGKILL
}

class RecordingCrashTest : public ::testing::Test {
 protected:
  struct RawState {
    size_t pending = 0, manifests = 0;
    std::map<std::string, std::vector<std::string>> groups;
  };
  RawState Raw() {
    RawState st;
    RawShard raw(shard_path_, /*read_only=*/true);
    EXPECT_TRUE(raw.status().ok()) << raw.status().ToString();
    if (!raw.status().ok()) return st;
    st.pending = raw.Keys(cf_, std::string(1, format::kRecordingPendingPrefix)).size();
    st.manifests = raw.Keys(cf_, std::string(1, format::kRecordingManifestPrefix)).size();
    st.groups = rectest::ChunkGroups(raw, cf_);
    return st;
  }

  void SetUp() override {
    ASSERT_GE(sodium_init(), 0);
    seed_ = rectest::TestSeed();
    ASSERT_OK(ts.Open());
    ASSERT_OK(ts->CreateTenant({.tenant_id = "acme"}));
    ASSERT_OK(ts->PutCall("acme", testutil::MakeCall("call-1", kT0)));
    // A finished recording that the cleanup must leave alone: 3 chunks.
    keep_ = workload::RandomBytes(seed_ ^ 0x5eed, 2 * kChunk + 777);
    ASSERT_OK(rectest::WriteRecording(ts.store.get(), "acme", "call-1", "keep", keep_));
    auto info = ts->DescribeTenant("acme");
    ASSERT_OK(info);
    cf_ = info->column_family;
    shard_path_ = ts->ShardPaths().at(info->shard);
    ts.Close();
    RawState st = Raw();
    ASSERT_EQ(st.groups.size(), 1u);
    keep_group_ = st.groups.begin()->first;
  }

  Child Spawn(const std::string& mode, const std::string& id, uint64_t seed, uint64_t bytes,
              bool ingest = true) {
    return rectest::SpawnSelf(kChildTest, {{"CV_REC_MODE", mode},
                                           {"CV_REC_INGEST", ingest ? "1" : "0"},
                                           {"CV_REC_DB", ts.db},
                                           {"CV_REC_KEYS", ts.keys},
                                           {"CV_REC_ID", id},
                                           {"CV_REC_SEED", std::to_string(seed)},
                                           {"CV_REC_BYTES", std::to_string(bytes)}});
  }

  // Reads the child's reports until `until` accepts one (then SIGKILLs it).
  // Returns the accepted line, or "" after a failure.
  std::string KillWhen(Child& c, const std::function<bool(const std::string&)>& until) {
    std::string accepted;
    for (;;) {
      auto line = c.ReadLine(120000);
      if (!line) {
        ADD_FAILURE() << "the child ended or stalled before the kill point";
        break;
      }
      if (line->rfind("E ", 0) == 0) {
        ADD_FAILURE() << "child: " << *line;
        break;
      }
      if (until(*line)) {
        accepted = *line;
        break;
      }
    }
    int status = c.KillAndWait(SIGKILL);
    if (!accepted.empty()) {
      EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "wait status " << status;
    }
    return accepted;
  }

  // After a crash mid-write of `id`: nothing of it is visible or stored,
  // "keep" is intact, and `id` can be written again.
  void CheckCleanedUpAndRewrite(const std::string& id) {
    ASSERT_OK(ts.Open());
    EXPECT_TRUE(rectest::FilesEndingWith(shard_path_ + "/ingest", "").empty())
        << "the open left the crashed writer's table file";
    auto list = ts->ListRecordings("acme", "call-1");
    ASSERT_OK(list);
    ASSERT_EQ(list->size(), 1u);
    EXPECT_EQ((*list)[0].recording_id, "keep");
    std::string out;
    EXPECT_CODE(rectest::ReadRange(ts.store.get(), "acme", "call-1", id, 0, UINT64_MAX, &out), Code::kNotFound);
    EXPECT_TRUE(out.empty());
    EXPECT_CODE(ts->DeleteRecording("acme", "call-1", id), Code::kNotFound);
    ts.Close();
    RawState st = Raw();
    EXPECT_EQ(st.pending, 0u) << "a pending marker survived the cleanup";
    EXPECT_EQ(st.manifests, 1u);
    ASSERT_EQ(st.groups.size(), 1u) << "chunks of the unfinished recording survived the cleanup";
    EXPECT_EQ(st.groups.begin()->first, keep_group_);
    EXPECT_EQ(st.groups.begin()->second.size(), 3u);
    ASSERT_OK(ts.Open());
    EXPECT_EQ(rectest::ReadRange(ts.store.get(), "acme", "call-1", "keep", 0, UINT64_MAX, &out).code(), Code::kOk);
    EXPECT_TRUE(out == keep_);
    const std::string again = workload::RandomBytes(seed_ + 99, kChunk + 4321);
    ASSERT_OK(rectest::WriteRecording(ts.store.get(), "acme", "call-1", id, again));
    EXPECT_OK(rectest::ReadRange(ts.store.get(), "acme", "call-1", id, 0, UINT64_MAX, &out));
    EXPECT_TRUE(out == again) << "the rewritten recording differs";
    auto v = ts->Verify("acme");
    ASSERT_OK(v);
    EXPECT_EQ(v->records_failed, 0u);
    ASSERT_OK(ts->DeleteRecording("acme", "call-1", id));
    ts.Close();
  }

  uint64_t seed_ = 0;
  testutil::TestStore ts;
  std::string keep_, cf_, shard_path_, keep_group_;
};

// Both write paths (Options::recording_ingest, decision 0055): ingested,
// the sealed chunks wait in the writer's table file in the shard's ingest
// directory; through the WAL, they are in the family already.
class RecordingCrashPathTest : public RecordingCrashTest, public ::testing::WithParamInterface<bool> {};
INSTANTIATE_TEST_SUITE_P(Paths, RecordingCrashPathTest, ::testing::Values(true, false),
                         [](const auto& p) { return p.param ? "Ingest" : "Wal"; });

TEST_P(RecordingCrashPathTest, KilledMidWriteLeavesNoRecording) {
  const bool ingest = GetParam();
  const uint64_t total = 5 * kChunk + 4242;
  // Kill after: the writer was created (no chunk yet), ~1.5 chunks, ~3.2
  // chunks, and every byte appended but Finish not called.
  struct Point {
    std::string name;
    uint64_t after_bytes;  // kill at the first report of at least this many bytes
    bool all = false;
  };
  for (const Point& p : {Point{"created", 0}, Point{"1.5 chunks", kChunk + kChunk / 2},
                         Point{"3.2 chunks", 3 * kChunk + kChunk / 5}, Point{"all appended", 0, true}}) {
    SCOPED_TRACE("killed after: " + p.name);
    Child c = Spawn("midwrite", "crashy", seed_ + 1, total, ingest);
    ASSERT_GT(c.pid, 0);
    const std::string at = KillWhen(c, [&](const std::string& line) {
      if (p.all) return line == "D";
      if (p.after_bytes == 0) return line == "C";
      return line.rfind("A ", 0) == 0 && std::stoull(line.substr(2)) >= p.after_bytes;
    });
    ASSERT_FALSE(at.empty());
    // The crash left an unfinished recording on disk: its marker, and the
    // chunks sealed before the kill point (ingested path: in the writer's
    // table file, none in the family; WAL path: in the family).
    const uint64_t sealed = p.all ? total / kChunk : p.after_bytes / kChunk;
    {
      if (ingest && sealed > 0) {
        EXPECT_EQ(rectest::FilesEndingWith(shard_path_ + "/ingest", ".sst").size(), 1u)
            << "no table file of the writer: the crash state is not what this test means to check";
      }
      RawState st = Raw();
      EXPECT_EQ(st.pending, 1u) << "no pending marker: the crash state is not what this test means to check";
      EXPECT_EQ(st.manifests, 1u);
      size_t crashy_chunks = 0;
      for (const auto& [name, keys] : st.groups) {
        if (name != keep_group_) crashy_chunks = keys.size();
      }
      if (ingest) {
        EXPECT_EQ(crashy_chunks, 0u) << "chunks reached the family before Finish";
      } else {
        EXPECT_GE(crashy_chunks, sealed);
        EXPECT_LE(crashy_chunks, total / kChunk);
      }
      std::printf("[crash] killed after %s (report '%s'): %zu chunks and the marker on disk\n", p.name.c_str(),
                  at.c_str(), crashy_chunks);
    }
    CheckCleanedUpAndRewrite("crashy");
    if (HasFatalFailure()) return;
  }
}

TEST_F(RecordingCrashTest, KilledRightAfterFinishKeepsTheRecording) {
  for (uint64_t size : {5 * kChunk + 12345, 4 * kChunk}) {
    SCOPED_TRACE("size " + std::to_string(size));
    const std::string id = "durable-" + std::to_string(size);
    const uint64_t seed = seed_ + size;
    Child c = Spawn("finish", id, seed, size);
    ASSERT_GT(c.pid, 0);
    const std::string at = KillWhen(c, [](const std::string& line) { return line.rfind("F ", 0) == 0; });
    ASSERT_FALSE(at.empty());
    const std::string data = workload::RandomBytes(seed, size);
    EXPECT_EQ(at.substr(2), Hex(Sha256(data)));
    ASSERT_OK(ts.Open());
    auto list = ts->ListRecordings("acme", "call-1");
    ASSERT_OK(list);
    const RecordingInfo* info = nullptr;
    for (const auto& r : *list) {
      if (r.recording_id == id) info = &r;
    }
    ASSERT_NE(info, nullptr) << "an acknowledged recording is gone after the crash";
    EXPECT_EQ(info->size, size);
    EXPECT_EQ(info->chunks, size / kChunk + 1);
    EXPECT_EQ(info->content_type, "audio/mpeg");
    EXPECT_TRUE(info->sha256 == Sha256(data));
    std::string out;
    EXPECT_OK(rectest::ReadRange(ts.store.get(), "acme", "call-1", id, 0, UINT64_MAX, &out));
    EXPECT_TRUE(out == data) << "read back differs";
    EXPECT_OK(rectest::ReadRange(ts.store.get(), "acme", "call-1", id, kChunk - 3, kChunk + 6, &out));
    EXPECT_TRUE(out == data.substr(kChunk - 3, kChunk + 6));
    auto v = ts->Verify("acme");
    ASSERT_OK(v);
    EXPECT_EQ(v->records_failed, 0u);
    ts.Close();
    EXPECT_EQ(Raw().pending, 0u);
  }
}

}  // namespace
}  // namespace callvault
