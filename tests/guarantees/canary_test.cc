// Guarantee 1: nothing readable at rest.
//
// Three tenants with distinctive ids get calls in which every string field
// carries a unique random marker, and a recording full of markers; then every byte of every file
// under the store directory and the key directory is searched for every marker (and its bare random
// core, and its lower-case form), every tenant id, call id, email and phone: zero hits, with the
// calls only in the WAL and the recordings in their ingested table files (store open, then closed
// without a flush), after Store::Flush (SST and
// blob files), and after Store::CompactAll (and a reopen). Positive controls show that the scanner
// finds a planted marker and does read inside WAL, SST and MANIFEST files, so the scan cannot pass
// by reading nothing.
#include <filesystem>
#include <fstream>
#include <random>
#include <set>

#include "callvault/limits.h"
#include "callvault/recording.h"
#include "callvault/store.h"
#include "format/coding.h"
#include "format/rowkey.h"
#include "tests/guarantees/guarantee_util.h"
#include "tests/testutil/testutil.h"

namespace callvault {
namespace {

namespace fs = std::filesystem;
using guarantees::Describe;
using guarantees::FilesMatching;
using guarantees::NeedleScanner;
using guarantees::RandDigits;
using guarantees::RandHex;
using guarantees::ScanTrees;
using testutil::TestStore;

constexpr int64_t kT0 = 1'767'225'600'000'000;  // 2026-01-01T00:00:00Z
constexpr int kTenants = 3;
constexpr int kCallsPerTenant = 6;  // the last one has a > 256 KiB transcript

class CanaryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    seed_ = guarantees::TestSeed();
    rng_.seed(seed_);
    // Any marker at all, whatever follows the dash.
    for (const char* hex = "0123456789abcdef"; *hex; ++hex) {
      scanner_.AddWithLower(std::string("CANARY-") + *hex);
    }
    // RocksDB's OPTIONS files (not kept by default, decision 0069) list
    // every family: kept here, so that they are scanned for the markers too.
    ts_.options.keep_rocksdb_options_file = true;
    ASSERT_OK(ts_.Open());
  }

  // A fresh marker "CANARY-<16 hex>", registered with its core.
  std::string M() {
    std::string core = RandHex(rng_, 16);
    std::string m = "CANARY-" + core;
    scanner_.AddWithLower(m);
    scanner_.Add(core);
    ++markers_;
    return m;
  }

  std::string Email() {
    std::string local = guarantees::Lower(M());
    std::string domain = RandHex(rng_, 10) + ".example";
    std::string e = local + "@" + domain;
    scanner_.Add(e);
    scanner_.Add(domain);
    return e;
  }

  std::string Phone() {
    std::string digits = "1555" + RandDigits(rng_, 7);
    scanner_.Add("+" + digits);
    scanner_.Add(digits);
    return "+" + digits;
  }

  // Random text that zstd cannot shrink much (6 bits per byte) and that
  // cannot contain a marker (no '-').
  std::string Noise(size_t n) {
    static const char* kAlpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string s(n, 'A');
    for (auto& c : s) c = kAlpha[rng_() & 63];
    return s;
  }

  Call CanaryCall(int64_t started_at, bool big) {
    Call c;
    c.call_id = M();
    c.source_system = SourceSystem::kTeams;
    c.source_call_id = M();
    c.workspace_id = M();
    c.started_at = started_at;
    c.duration_ms = 1'800'000;
    c.scheduled_start = started_at - 60'000'000;
    c.scheduled_end = started_at + 1'800'000'000;
    c.created_at = started_at + 5;
    c.updated_at = started_at + 7;
    c.title = "Title " + M();
    c.direction = Direction::kOutbound;
    c.scope = CallScope::kExternal;
    c.media = Media::kVideo;
    c.language = M();  // [A-Za-z0-9-], at most 35: a valid BCP-47 private-use-like tag
    c.status = M();
    c.tags = {M(), M()};
    c.owner_user_id = M();
    c.team_ids = {M(), M()};
    for (uint32_t i = 0; i < 3; ++i) {
      Participant p;
      p.name = "Name " + M();
      p.email = Email();
      p.phone = Phone();
      p.title = M();
      p.company = M();
      p.affiliation = i == 0 ? Affiliation::kInternal : Affiliation::kExternal;
      p.speaker_id = i + 1;
      p.user_id = M();
      c.participants.push_back(p);
    }
    c.crm_links = {CrmLink{M(), CrmObjectType::kOpportunity, M()},
                   CrmLink{M(), CrmObjectType::kContact, M()}};
    const int segments = big ? 140 : 8;  // big: over min_blob_size (1 MiB) compressed
    for (int i = 0; i < segments; ++i) {
      TranscriptSegment s;
      s.speaker_id = 1 + static_cast<uint32_t>(i % 3);
      s.start_ms = static_cast<uint32_t>(i) * 20'000;
      s.end_ms = s.start_ms + 19'000;
      s.text = "we said " + M();
      if (big) s.text += " " + Noise(12 * 1024) + " " + M();
      s.confidence = 0.875f;
      c.transcript.push_back(s);
    }
    c.insights.summary = "Summary " + M();
    c.insights.action_items = {ActionItem{"Do " + M(), M()}, ActionItem{"Then " + M(), ""}};
    c.insights.topics = {M(), M()};
    c.insights.trackers = {Tracker{M(), 3}};
    c.insights.model_name = M();
    c.insights.model_version = M();
    return c;
  }

  // Creates the tenants and writes their calls.
  void Populate() {
    for (int t = 0; t < kTenants; ++t) {
      std::string id = "org-" + M();
      scanner_.Add(id);
      auto info = ts_->CreateTenant({.tenant_id = id, .retention_days = 90});
      ASSERT_OK(info);
      cf_names_.push_back(info->column_family);
      std::vector<Call> calls;
      for (int i = 0; i < kCallsPerTenant; ++i) {
        int64_t at = kT0 + (t * 1000 + i) * 1'000'000'000LL;
        calls.push_back(CanaryCall(at, i == kCallsPerTenant - 1));
        time_prefixes_.push_back(TimePrefix(at));
      }
      // One batch and single puts, so both write paths are covered.
      std::vector<Call> batch(calls.begin(), calls.begin() + 3);
      ASSERT_OK(ts_->PutCalls(id, batch));
      for (size_t i = 3; i < calls.size(); ++i) ASSERT_OK(ts_->PutCall(id, calls[i]));
      // A recording of 1.25 chunks, marker-laden, on the first call.
      Recording rec;
      rec.call_id = calls[0].call_id;
      rec.recording_id = M();
      const std::string m = M();
      while (rec.bytes.size() < kRecordingChunkBytes + kRecordingChunkBytes / 4) {
        rec.bytes += "audio " + m + " " + Noise(200) + " ";
      }
      auto w = ts_->CreateRecording(id, rec.call_id,
                                    RecordingSpec{.recording_id = rec.recording_id,
                                                  .content_type = "audio/" + M(),
                                                  .duration_ms = 60'000});
      ASSERT_OK(w);
      ASSERT_OK((*w)->Append(rec.bytes.substr(0, 100'000)));
      ASSERT_OK((*w)->Append(rec.bytes.substr(100'000)));
      ASSERT_OK((*w)->Finish());
      recordings_[id] = rec;
      tenants_.emplace_back(id, std::move(calls));
    }
    std::cout << "[canary] " << markers_ << " markers, " << scanner_.size() << " needles"
              << std::endl;
  }

  // The time-index key prefix of a call: 'T' and its started_at, which are
  // stored in the clear; the positive control for reading inside RocksDB files.
  static std::string TimePrefix(int64_t started_at) {
    std::string k(1, format::kTimeIndexPrefix);
    format::PutOrderedInt64(&k, started_at);
    return k;
  }

  // Every call reads back whole: the markers really are stored.
  void ExpectAllReadBack() {
    for (const auto& [id, calls] : tenants_) {
      auto n = ts_->CountCalls(id);
      ASSERT_OK(n);
      EXPECT_EQ(*n, calls.size());
      for (const auto& c : calls) {
        auto got = ts_->GetCall(id, c.call_id);
        ASSERT_OK(got);
        EXPECT_TRUE(*got == c) << "call read back differs";
      }
      const Recording& rec = recordings_[id];
      std::string bytes;
      ASSERT_OK(ts_->ReadRecording(id, rec.call_id, rec.recording_id, 0, UINT64_MAX,
                                   [&](std::string_view b) {
                                     bytes.append(b);
                                     return Status::OK();
                                   }));
      EXPECT_TRUE(bytes == rec.bytes) << "recording read back differs";
    }
  }

  // Zero hits for any needle anywhere under the store and key directories.
  void ExpectNoHits(const std::string& state) {
    SCOPED_TRACE(state);
    size_t files = 0, bytes = 0;
    auto hits = ScanTrees({ts_.db, ts_.keys}, scanner_, &files, &bytes);
    std::cout << "[canary] " << state << ": scanned " << files << " files, " << bytes << " bytes, "
              << hits.size() << " hits" << std::endl;
    EXPECT_GT(files, 5u);
    EXPECT_TRUE(hits.empty()) << hits.size() << " plaintext hits:" << Describe(hits);
    // The scan did read inside RocksDB files: the clear-text time keys and
    // column-family names are found where they must be.
    EXPECT_TRUE(ControlFound(ts_.db + "/shards", time_prefixes_, {".log", ".sst"}))
        << "positive control: no time-index key found in any WAL or SST file";
    EXPECT_TRUE(ControlFound(ts_.db + "/shards", cf_names_, {"MANIFEST"}))
        << "positive control: no column family name found in any MANIFEST";
  }

  static bool ControlFound(const std::string& dir, const std::vector<std::string>& needles,
                           const std::vector<std::string>& name_parts) {
    NeedleScanner s;
    for (const auto& n : needles) s.Add(n);
    for (const auto& f : testutil::ListFiles(dir)) {
      std::string name = fs::path(f).filename().string();
      bool match = false;
      for (const auto& p : name_parts) match = match || name.find(p) != std::string::npos;
      if (match && !s.Find(testutil::ReadFile(f)).empty()) return true;
    }
    return false;
  }

  size_t CountFiles(const std::string& dir, const std::string& suffix) {
    size_t n = 0;
    for (const auto& f : testutil::ListFiles(dir)) {
      if (fs::path(f).extension() == suffix) ++n;
    }
    return n;
  }

  struct Recording {
    std::string call_id, recording_id, bytes;
  };
  std::map<std::string, Recording> recordings_;
  uint64_t seed_ = 0;
  std::mt19937_64 rng_;
  TestStore ts_;
  NeedleScanner scanner_;
  size_t markers_ = 0;
  std::vector<std::pair<std::string, std::vector<Call>>> tenants_;
  std::vector<std::string> cf_names_;
  std::vector<std::string> time_prefixes_;
};

TEST_F(CanaryTest, ScannerFindsPlantedMarkers) {
  // The positive control: a marker in a plain file, at the start, the end
  // and the middle of binary data, in a nested directory, is found.
  const std::string m1 = M(), m2 = M(), m3 = M();
  fs::create_directories(ts_.db + "/shards/nested");
  {
    std::ofstream(ts_.db + "/planted.txt") << "plain " << m1 << "\n";
    std::string bin(4096, '\0');
    bin.replace(0, m2.size(), m2);
    bin.replace(bin.size() - m3.size(), m3.size(), m3);
    std::ofstream(ts_.db + "/shards/nested/planted.bin", std::ios::binary) << bin;
  }
  auto hits = ScanTrees({ts_.db, ts_.keys}, scanner_);
  std::set<std::string> found;
  for (const auto& h : hits) found.insert(h.needle);
  EXPECT_TRUE(found.count(m1)) << Describe(hits);
  EXPECT_TRUE(found.count(m2)) << Describe(hits);
  EXPECT_TRUE(found.count(m3)) << Describe(hits);
  EXPECT_TRUE(found.count(m1.substr(7))) << "bare core not found";
  // A lower-cased copy is found too.
  std::ofstream(ts_.keys + "/planted-lower.txt") << guarantees::Lower(M());
  EXPECT_GT(ScanTrees({ts_.keys}, scanner_).size(), 0u);
}

TEST_F(CanaryTest, WalOnlyWhileOpenAndAfterCloseWithoutFlush) {
  Populate();
  ExpectAllReadBack();
  // The calls are in the WAL only; each recording is one table file,
  // ingested at its Finish (decision 0055), sealed chunks only.
  EXPECT_EQ(CountFiles(ts_.db + "/shards", ".sst"), recordings_.size())
      << "expected the calls in the WAL only";
  ExpectNoHits("(a) WAL only, store open");
  ts_.Close();
  EXPECT_EQ(CountFiles(ts_.db + "/shards", ".sst"), recordings_.size()) << "close flushed memtables";
  ExpectNoHits("(a) WAL only, store closed without flush");
}

TEST_F(CanaryTest, AfterFlushSstAndBlobFiles) {
  Populate();
  ASSERT_OK(ts_->Flush());
  EXPECT_GT(CountFiles(ts_.db + "/shards", ".sst"), 0u);
  // The > 1 MiB transcripts went to blob files, which hold no marker either.
  auto blobs = FilesMatching(ts_.db + "/shards", ".blob");
  ASSERT_FALSE(blobs.empty()) << "no blob file: the large transcript stayed inline";
  size_t blob_bytes = 0;
  for (const auto& b : blobs) blob_bytes += fs::file_size(b);
  EXPECT_GT(blob_bytes, static_cast<size_t>(kTenants) * (1u << 20));
  for (const auto& b : blobs) {
    auto found = scanner_.Find(testutil::ReadFile(b));
    EXPECT_TRUE(found.empty()) << b << " holds " << found.front();
  }
  ExpectAllReadBack();
  ExpectNoHits("(b) after Flush");
  ts_.Close();
  ExpectNoHits("(b) after Flush and close");
}

TEST_F(CanaryTest, AfterCompactAllAndReopen) {
  Populate();
  ASSERT_OK(ts_->Flush());
  // Overwrite one call per tenant with fresh markers and delete another, so
  // that compaction has versions to merge and tombstones to apply.
  for (auto& [id, calls] : tenants_) {
    Call fresh = CanaryCall(calls[1].started_at, false);
    fresh.call_id = calls[1].call_id;
    fresh.source_call_id = calls[1].source_call_id;
    ASSERT_OK(ts_->PutCall(id, fresh));
    calls[1] = fresh;
    ASSERT_OK(ts_->DeleteCall(id, calls[2].call_id));
    calls.erase(calls.begin() + 2);
  }
  ASSERT_OK(ts_->CompactAll());
  EXPECT_FALSE(FilesMatching(ts_.db + "/shards", ".blob").empty());
  ExpectAllReadBack();
  ExpectNoHits("(c) after CompactAll");
  ASSERT_OK(ts_.Reopen());
  ExpectAllReadBack();
  ExpectNoHits("(c) after CompactAll and reopen");
  ts_.Close();
  ExpectNoHits("(c) closed");
}

TEST_F(CanaryTest, ColumnFamilyNamesOptionsAndLogHoldNoTenantId) {
  Populate();
  ASSERT_OK(ts_->Flush());
  auto shards = ts_->ShardPaths();
  ts_.Close();
  NeedleScanner ids;
  for (const auto& [id, calls] : tenants_) {
    ids.AddWithLower(id);
    ids.Add(id.substr(4));  // without "org-"
  }
  ASSERT_FALSE(shards.empty());
  std::set<std::string> names;
  for (const auto& s : shards) {
    for (const auto& n : guarantees::ListColumnFamilies(s)) {
      names.insert(n);
      EXPECT_TRUE(ids.Find(n).empty()) << n;
      if (n != "default") {
        EXPECT_TRUE(format::ParseColumnFamilyName(n).has_value()) << "not an opaque name: " << n;
      }
    }
  }
  for (const auto& n : cf_names_) EXPECT_TRUE(names.count(n)) << n;
  size_t options = 0, logs = 0;
  for (const auto& f : testutil::ListFiles(ts_.db)) {
    std::string name = fs::path(f).filename().string();
    bool is_options = name.rfind("OPTIONS", 0) == 0;
    bool is_log = name.rfind("LOG", 0) == 0;
    if (!is_options && !is_log) continue;
    options += is_options;
    logs += is_log;
    std::string data = testutil::ReadFile(f);
    auto found = ids.Find(data);
    EXPECT_TRUE(found.empty()) << f << " names tenant " << found.front();
    // The tenant's opaque family name is there instead (the control).
    if (is_options && f.find("/shards/") != std::string::npos) {
      bool any = false;
      for (const auto& n : cf_names_) any = any || data.find(n) != std::string::npos;
      EXPECT_TRUE(any) << f << " lists no tenant column family";
    }
  }
  EXPECT_GE(options, 2u);  // meta and shard
  EXPECT_GE(logs, 2u);
}

}  // namespace
}  // namespace callvault
