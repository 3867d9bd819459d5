// A customer's data export (issue 12 item 4; callvault/export.h,
// docs/format.md "Export format"). Every export is checked by an
// independent reader written here from the documented format alone: it
// parses manifest.json, lists the directory, and recomputes each file's
// size and SHA-256 with OpenSSL (the export uses libsodium), and it checks
// the modes (0700 directories, 0600 files).
//
//   RoundTrip            every field of every call (rich hand-made calls and
//                        the workload generator's) back through ParseCalls;
//                        recordings byte for byte; hostile ids; holds,
//                        retention, receipts and audit untouched
//   Refusals             non-empty DIR, symlink DIR, file DIR, missing parent,
//                        unknown and purged tenant: specific codes, nothing written
//   EmptyTenant          0 calls: an empty calls.ndjson and a valid manifest
//   ChurnedTenant        exported while reads are allowed; refused otherwise
//   LargeTenantMemory    2,000 calls exported by a fresh process whose peak
//                        resident memory grows by less than a fixed bound
//   BesideWriter         a second process writes while a read-only open (the
//                        library's, then the CLI's) exports: every call
//                        acknowledged before the open is in it
//   WriteFailureRemovesAll  a write fails (EFBIG) mid-export: kIOError naming
//                        the file, nothing left behind
//   ConcurrentWriterSameStore  a writer thread on the same store: every call
//                        that existed before the export appears exactly once
#include <fcntl.h>
#include <openssl/evp.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "callvault/export.h"
#include "callvault/limits.h"
#include "tests/testutil/testutil.h"
#include "tools/json/call_json.h"
#include "workload/workload.h"

extern char** environ;

namespace callvault {
namespace {

namespace fs = std::filesystem;
using testutil::ReadFile;
using testutil::TempDir;
using testutil::TestStore;

constexpr int64_t kT0 = 1767225600LL * 1000000;  // 2026-01-01

uint64_t Seed() {
  static const uint64_t seed = [] {
    const char* s = std::getenv("CV_EXPORT_SEED");
    uint64_t v = s ? std::strtoull(s, nullptr, 10) : static_cast<uint64_t>(::time(nullptr));
    std::printf("[export] seed %llu (CV_EXPORT_SEED to replay)\n", static_cast<unsigned long long>(v));
    return v;
  }();
  return seed;
}

std::string HexOf(const unsigned char* md, unsigned int n) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string s;
  for (unsigned int i = 0; i < n; ++i) {
    s += kDigits[md[i] >> 4];
    s += kDigits[md[i] & 15];
  }
  return s;
}

// SHA-256 of a file with OpenSSL, read 1 MiB at a time (for large exports).
std::string Sha256OfFile(const std::string& path, uint64_t* size) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
  std::ifstream in(path, std::ios::binary);
  std::vector<char> buf(1 << 20);
  *size = 0;
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    const auto got = in.gcount();
    if (got <= 0) break;
    EVP_DigestUpdate(ctx, buf.data(), static_cast<size_t>(got));
    *size += static_cast<uint64_t>(got);
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_DigestFinal_ex(ctx, md, &n);
  EVP_MD_CTX_free(ctx);
  return HexOf(md, n);
}

mode_t ModeOf(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return 0;
  return st.st_mode;
}

// What an independent reader makes of an export directory.
struct ReadExport {
  nlohmann::json manifest;
  // recording file path -> (call_id, recording_id)
  std::map<std::string, std::pair<std::string, std::string>> recordings;
  uint64_t calls = 0;
};

// Checks DIR against docs/format.md "Export format"; adds failures.
ReadExport VerifyExportDir(const std::string& dir, const std::string& tenant_id) {
  ReadExport r;
  SCOPED_TRACE("export dir " + dir);
  EXPECT_EQ(ModeOf(dir) & 0777, 0700u) << "export directory mode";
  EXPECT_EQ(ModeOf(dir + "/recordings") & 0777, 0700u) << "recordings/ mode";
  EXPECT_FALSE(fs::exists(dir + "/manifest.json.tmp")) << "the temporary manifest is left behind";
  const std::string text = ReadFile(dir + "/manifest.json");
  r.manifest = nlohmann::json::parse(text, nullptr, false);
  if (r.manifest.is_discarded() || !r.manifest.is_object()) {
    ADD_FAILURE() << "manifest.json is not a JSON object";
    return r;
  }
  const auto& m = r.manifest;
  EXPECT_EQ(m.value("format", ""), "callvault-export");
  EXPECT_EQ(m.value("format_version", 0), 1);
  EXPECT_EQ(m.value("tenant_id", ""), tenant_id);
  EXPECT_TRUE(json::ParseRfc3339(m.value("exported_at", "")).ok());
  EXPECT_TRUE(json::ParseRfc3339(m.value("completed_at", "")).ok());
  // Every file in DIR is in the manifest, and every manifest entry is a file.
  std::set<std::string> on_disk;
  for (const auto& f : testutil::ListFiles(dir)) {
    const std::string rel = fs::relative(f, dir).string();
    if (rel != "manifest.json") on_disk.insert(rel);
    EXPECT_EQ(ModeOf(f) & 0777, 0600u) << rel << " mode";
    EXPECT_TRUE(S_ISREG(ModeOf(f))) << rel;
  }
  std::set<std::string> listed;
  const std::regex safe_name(R"(calls\.ndjson|recordings/[1-9][0-9]*\.[a-z0-9]{1,5})");
  uint64_t bytes = 0, recording_bytes = 0, recordings = 0;
  bool saw_calls = false;
  if (!m.contains("files") || !m["files"].is_array()) {
    ADD_FAILURE() << "manifest has no files array";
    return r;
  }
  for (const auto& f : m["files"]) {
    const std::string path = f.value("path", "");
    EXPECT_TRUE(std::regex_match(path, safe_name)) << "unsafe or unexpected file name " << path;
    EXPECT_TRUE(listed.insert(path).second) << "listed twice: " << path;
    uint64_t size = 0;
    const std::string sha = Sha256OfFile(dir + "/" + path, &size);
    EXPECT_EQ(f.value("sha256", ""), sha) << path << ": SHA-256 differs from the file";
    EXPECT_EQ(f.value("bytes", uint64_t{0}), size) << path << ": size differs from the file";
    bytes += size;
    const std::string kind = f.value("kind", "");
    if (kind == "calls") {
      EXPECT_EQ(path, "calls.ndjson");
      saw_calls = true;
      r.calls = f.value("calls", uint64_t{0});
    } else {
      EXPECT_EQ(kind, "recording") << path;
      ++recordings;
      recording_bytes += size;
      r.recordings[path] = {f.value("call_id", ""), f.value("recording_id", "")};
      EXPECT_TRUE(json::ParseRfc3339(f.value("created_at", "")).ok()) << path;
      EXPECT_TRUE(f.contains("content_type") && f.contains("duration_ms")) << path;
    }
  }
  EXPECT_TRUE(saw_calls) << "no calls.ndjson entry";
  EXPECT_EQ(on_disk, listed) << "files on disk and in the manifest differ";
  const auto& c = m["counts"];
  EXPECT_EQ(c.value("calls", uint64_t{99999999}), r.calls);
  EXPECT_EQ(c.value("recordings", uint64_t{99999999}), recordings);
  EXPECT_EQ(c.value("recording_bytes", uint64_t{99999999}), recording_bytes);
  EXPECT_EQ(c.value("bytes", uint64_t{99999999}), bytes);
  // calls.ndjson: one JSON object per line, count as the manifest says.
  std::ifstream in(dir + "/calls.ndjson", std::ios::binary);
  std::string line;
  uint64_t lines = 0;
  while (std::getline(in, line)) ++lines;
  EXPECT_EQ(lines, r.calls) << "lines in calls.ndjson";
  return r;
}

// Every call of calls.ndjson, parsed back with the strict JSON parser.
std::vector<Call> ParseNdjson(const std::string& dir) {
  std::vector<Call> calls;
  std::ifstream in(dir + "/calls.ndjson", std::ios::binary);
  std::string line;
  size_t n = 0;
  while (std::getline(in, line)) {
    auto parsed = json::ParseCalls(line);
    EXPECT_TRUE(parsed.ok()) << "line " << n << ": " << parsed.status().ToString();
    if (parsed.ok()) {
      EXPECT_EQ(parsed->size(), 1u);
      for (auto& c : *parsed) calls.push_back(std::move(c));
    }
    ++n;
  }
  return calls;
}

// A call with every field of call.h set to something other than its default.
Call RichCall(const std::string& id, int64_t started_at, uint64_t salt) {
  Call c = testutil::MakeCall(id, started_at, "marker-" + std::to_string(salt));
  c.source_system = SourceSystem::kTeams;
  c.source_call_id = "src-" + id;
  c.scheduled_start = started_at - 60000000;
  c.scheduled_end = started_at + 3600000000LL;
  c.created_at = started_at + 1;
  c.updated_at = started_at + 2;
  c.media = Media::kVideo;
  c.tags = {"renewal", "q3", "Ünïcode ✓"};
  c.team_ids = {"team-a", "team-b"};
  c.participants[0].company = "Brightwave";
  c.participants[1].title = "Chief Technology Officer";
  c.crm_links.push_back(CrmLink{"hubspot", CrmObjectType::kContact, "bob@customer.example"});
  c.crm_links.push_back(CrmLink{"salesforce", CrmObjectType::kLead, "00Q" + std::to_string(salt)});
  c.transcript.push_back(TranscriptSegment{2, 70000, 70000, "quote \" backslash \\ tab\t nl\n 日本語 🎧", 0.123456f});
  c.insights.topics.push_back("roadmap");
  c.insights.trackers.push_back(Tracker{"pricing", 7});
  c.insights.action_items.push_back(ActionItem{"follow up", ""});
  return c;
}

std::string Hostile(int i) { return "../../" + std::to_string(i) + "/..%2F~!"; }

struct RecSpec {
  std::string call_id;
  std::string recording_id;
  std::string content_type;
  std::string content;
};

Status PutRecording(Store* store, const std::string& tenant, const RecSpec& r) {
  auto w = store->CreateRecording(tenant, r.call_id,
                                  {.recording_id = r.recording_id, .content_type = r.content_type,
                                   .duration_ms = 1234});
  if (!w.ok()) return w.status();
  for (size_t off = 0; off < r.content.size(); off += 300000) {
    CV_RETURN_IF_ERROR((*w)->Append(std::string_view(r.content).substr(off, 300000)));
  }
  auto info = (*w)->Finish();
  return info.ok() ? Status::OK() : info.status();
}

TEST(Export, RoundTrip) {
  const uint64_t seed = Seed();
  TestStore ts;
  ASSERT_OK(ts.Open());
  ASSERT_OK(ts->CreateTenant({.tenant_id = "acme", .retention_days = 365}));
  ASSERT_OK(ts->CreateTenant({.tenant_id = "globex"}));
  // Rich hand-made calls (one with a hostile id) and generated ones.
  std::vector<Call> calls;
  calls.push_back(RichCall("rich-1", kT0 + 1000, seed));
  calls.push_back(RichCall(Hostile(1), kT0 + 2000, seed + 1));
  workload::GeneratorOptions go;
  go.seed = seed;
  go.transcript_scale = 0.05;
  workload::Generator gen(go);
  for (int i = 0; i < 60; ++i) {
    Call c = gen.Next();
    c.call_id = "gen-" + std::to_string(i);
    calls.push_back(std::move(c));
  }
  ASSERT_OK(ts->PutCalls("acme", calls));
  ASSERT_OK(ts->PutCall("globex", RichCall("other-tenant", kT0, seed)));
  // Recordings: empty, small, multi-chunk, hostile ids, unknown types.
  std::vector<RecSpec> recs = {
      {"rich-1", "rec-a", "audio/mpeg", workload::RandomBytes(seed, 5000)},
      {"rich-1", Hostile(2), "video/mp4", workload::RandomBytes(seed + 1, (3u << 20) + 17)},
      {Hostile(1), "../manifest.json", "application/x-../../evil", workload::RandomBytes(seed + 2, 999)},
      {Hostile(1), "empty", "AUDIO/WAV; rate=8000", ""},
      {"gen-7", "rec-b", "application/x-custom", workload::RandomBytes(seed + 3, kRecordingChunkBytes)},
  };
  for (const auto& r : recs) ASSERT_OK(PutRecording(ts.store.get(), "acme", r));
  ASSERT_OK(ts->PlaceHold("acme", {.hold_id = "lit-1", .reason = "litigation"}));
  ASSERT_OK(ts->PlaceHold("acme", {.hold_id = "lit-2", .reason = "call", .call_id = "gen-3"}));
  ASSERT_OK(ts->SetWorkspaceRetention("acme", "ws-1", 30));

  auto before = ts->DescribeTenant("acme");
  ASSERT_OK(before);
  auto holds_before = ts->ListHolds("acme");
  ASSERT_OK(holds_before);
  auto audit_before = ts->ListAudit();
  ASSERT_OK(audit_before);
  auto receipts_before = ts->ListReceipts();
  ASSERT_OK(receipts_before);

  TempDir out;
  const std::string dir = out.Sub("export-acme");
  std::vector<ExportProgress> seen;
  ExportOptions eo;
  eo.page_size = 7;  // several pages
  eo.progress = [&](const ExportProgress& p) { seen.push_back(p); };
  auto report = ExportTenantData(*ts.store, "acme", dir, eo);
  ASSERT_OK(report);
  EXPECT_EQ(report->calls, calls.size());
  EXPECT_EQ(report->recordings, recs.size());

  // Progress: monotonic, against the tenant's count, ending complete.
  ASSERT_FALSE(seen.empty());
  for (size_t i = 1; i < seen.size(); ++i) EXPECT_GE(seen[i].calls_done, seen[i - 1].calls_done);
  EXPECT_EQ(seen.back().calls_done, calls.size());
  EXPECT_EQ(seen.back().calls_total, calls.size());
  EXPECT_EQ(seen.back().recordings_done, recs.size());
  EXPECT_EQ(seen.back().bytes_written, report->bytes);
  EXPECT_TRUE(seen.back().done);
  for (size_t i = 0; i + 1 < seen.size(); ++i) EXPECT_FALSE(seen[i].done);

  ReadExport rx = VerifyExportDir(dir, "acme");
  EXPECT_EQ(rx.calls, calls.size());
  uint64_t manifest_size = 0;
  EXPECT_EQ(Sha256OfFile(dir + "/manifest.json", &manifest_size), report->manifest_sha256);

  // Every field of every call, as the store gives it with every part.
  std::vector<Call> back = ParseNdjson(dir);
  ASSERT_EQ(back.size(), calls.size());
  std::set<std::string> ids;
  for (const Call& c : back) {
    EXPECT_TRUE(ids.insert(c.call_id).second) << "call exported twice";
    auto stored = ts->GetCall("acme", c.call_id, kPartAll);
    ASSERT_OK(stored);
    EXPECT_TRUE(c == *stored) << "call " << c.call_id << " differs after the round trip";
  }
  // ... and in the order of started_at (oldest first).
  for (size_t i = 1; i < back.size(); ++i) EXPECT_LE(back[i - 1].started_at, back[i].started_at);
  // The rich calls kept their every part (not only what the store returns).
  for (const Call& c : back) {
    if (c.call_id == "rich-1") {
      Call want = RichCall("rich-1", kT0 + 1000, seed);
      EXPECT_EQ(c.transcript, want.transcript);
      EXPECT_EQ(c.insights, want.insights);
      EXPECT_EQ(c.participants, want.participants);
      EXPECT_EQ(c.crm_links, want.crm_links);
      EXPECT_EQ(c.tags, want.tags);
    }
  }
  EXPECT_FALSE(ids.count("other-tenant")) << "another tenant's call exported";

  // Recordings byte for byte, mapped by the manifest (never by their ids).
  ASSERT_EQ(rx.recordings.size(), recs.size());
  std::set<std::string> names;
  for (const auto& r : recs) {
    bool found = false;
    for (const auto& [path, ids2] : rx.recordings) {
      if (ids2.first == r.call_id && ids2.second == r.recording_id) {
        found = true;
        names.insert(path);
        EXPECT_EQ(ReadFile(dir + "/" + path), r.content) << path;
      }
    }
    EXPECT_TRUE(found) << "recording missing from the manifest";
  }
  EXPECT_EQ(names.size(), recs.size());
  EXPECT_TRUE(rx.recordings.count("recordings/1.mp3") || rx.recordings.count("recordings/2.mp3"))
      << "audio/mpeg gets .mp3";
  for (const auto& [path, ids2] : rx.recordings) {
    if (ids2.second == "empty") {
      EXPECT_TRUE(path.ends_with(".wav")) << path;
    }
    if (ids2.second == "../manifest.json") {
      EXPECT_TRUE(path.ends_with(".bin")) << path;
    }
  }
  // Nothing was written outside DIR by the hostile ids.
  std::set<std::string> top;
  for (const auto& e : fs::directory_iterator(out.path())) top.insert(e.path().filename().string());
  EXPECT_EQ(top, std::set<std::string>{"export-acme"});

  // Holds, retention, receipts and audit untouched.
  auto after = ts->DescribeTenant("acme");
  ASSERT_OK(after);
  EXPECT_EQ(after->retention_days, before->retention_days);
  EXPECT_EQ(after->workspace_retention, before->workspace_retention);
  EXPECT_EQ(after->state, TenantState::kActive);
  EXPECT_EQ(after->churned_at, 0);
  EXPECT_EQ(after->purge_at, 0);
  auto holds_after = ts->ListHolds("acme");
  ASSERT_OK(holds_after);
  ASSERT_EQ(holds_after->size(), holds_before->size());
  for (size_t i = 0; i < holds_after->size(); ++i) {
    EXPECT_EQ((*holds_after)[i].hold_id, (*holds_before)[i].hold_id);
    EXPECT_EQ((*holds_after)[i].created_at, (*holds_before)[i].created_at);
  }
  auto audit_after = ts->ListAudit();
  ASSERT_OK(audit_after);
  EXPECT_EQ(audit_after->size(), audit_before->size());
  auto receipts_after = ts->ListReceipts();
  ASSERT_OK(receipts_after);
  EXPECT_EQ(receipts_after->size(), receipts_before->size());
  auto count = ts->CountCalls("acme");
  ASSERT_OK(count);
  EXPECT_EQ(*count, calls.size());
  std::printf("[export] round trip: %zu calls, %zu recordings, %llu bytes, 0 differences\n", calls.size(),
              recs.size(), static_cast<unsigned long long>(report->bytes));
}

// Nothing under `dir` (or `dir` itself absent).
std::vector<std::string> Entries(const std::string& dir) {
  std::vector<std::string> v;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) v.push_back(e.path().filename().string());
  return v;
}

TEST(Export, Refusals) {
  TestStore ts;
  ASSERT_OK(ts.Open());
  ASSERT_OK(ts->CreateTenant({.tenant_id = "acme-secret-tenant"}));
  ASSERT_OK(ts->PutCall("acme-secret-tenant", testutil::MakeCall("c1", kT0)));
  ASSERT_OK(ts->CreateTenant({.tenant_id = "gone"}));
  ASSERT_OK(ts->PutCall("gone", testutil::MakeCall("c1", kT0)));
  ASSERT_OK(ts->PurgeTenant("gone"));
  TempDir out;
  int refused = 0;
  auto no_leak = [&](const Status& s, const std::string& dir) {
    EXPECT_EQ(s.message().find("acme-secret-tenant"), std::string::npos) << s.message();
    EXPECT_EQ(s.message().find(dir), std::string::npos) << s.message();
    EXPECT_EQ(s.message().find("alice"), std::string::npos) << s.message();
    ++refused;
  };

  // A non-empty directory: kAlreadyExists, its content untouched, nothing added.
  const std::string full = out.Sub("full");
  fs::create_directory(full);
  { std::ofstream(full + "/keep.txt") << "mine"; }
  auto r = ExportTenantData(*ts.store, "acme-secret-tenant", full);
  EXPECT_CODE(r, Code::kAlreadyExists);
  if (!r.ok()) no_leak(r.status(), full);
  EXPECT_EQ(Entries(full), std::vector<std::string>{"keep.txt"});
  EXPECT_EQ(ReadFile(full + "/keep.txt"), "mine");

  // A directory that holds only a hidden file is not empty either.
  const std::string hidden = out.Sub("hidden");
  fs::create_directory(hidden);
  { std::ofstream(hidden + "/.x") << ""; }
  EXPECT_CODE(ExportTenantData(*ts.store, "acme-secret-tenant", hidden), Code::kAlreadyExists);
  EXPECT_EQ(Entries(hidden).size(), 1u);

  // A symlink to an empty directory: kInvalidArgument, the target stays empty.
  const std::string target = out.Sub("target");
  fs::create_directory(target);
  const std::string link = out.Sub("link");
  fs::create_directory_symlink(target, link);
  r = ExportTenantData(*ts.store, "acme-secret-tenant", link);
  EXPECT_CODE(r, Code::kInvalidArgument);
  if (!r.ok()) no_leak(r.status(), link);
  EXPECT_TRUE(Entries(target).empty());
  EXPECT_TRUE(fs::is_symlink(link));
  // ... also with a trailing slash (which lstat would follow).
  EXPECT_FALSE(ExportTenantData(*ts.store, "acme-secret-tenant", link + "/").ok());
  EXPECT_TRUE(Entries(target).empty());
  // A dangling symlink: refused, nothing created where it points.
  const std::string dangling = out.Sub("dangling");
  fs::create_directory_symlink(out.Sub("nowhere"), dangling);
  EXPECT_CODE(ExportTenantData(*ts.store, "acme-secret-tenant", dangling), Code::kInvalidArgument);
  EXPECT_FALSE(fs::exists(out.Sub("nowhere")));

  // A regular file.
  const std::string file = out.Sub("file");
  { std::ofstream(file) << "x"; }
  EXPECT_CODE(ExportTenantData(*ts.store, "acme-secret-tenant", file), Code::kInvalidArgument);
  EXPECT_EQ(ReadFile(file), "x");

  // A missing parent: kNotFound, nothing created.
  EXPECT_CODE(ExportTenantData(*ts.store, "acme-secret-tenant", out.Sub("no/such/dir")), Code::kNotFound);
  EXPECT_FALSE(fs::exists(out.Sub("no")));

  // An unknown tenant: kNotFound; a purged one: kTenantPurged. DIR not created.
  r = ExportTenantData(*ts.store, "nobody", out.Sub("x1"));
  EXPECT_CODE(r, Code::kNotFound);
  if (!r.ok()) no_leak(r.status(), out.Sub("x1"));
  EXPECT_FALSE(fs::exists(out.Sub("x1")));
  r = ExportTenantData(*ts.store, "gone", out.Sub("x2"));
  EXPECT_CODE(r, Code::kTenantPurged);
  if (!r.ok()) no_leak(r.status(), out.Sub("x2"));
  EXPECT_FALSE(fs::exists(out.Sub("x2")));
  // ... nor an empty DIR the caller made: still empty.
  const std::string empty = out.Sub("empty");
  fs::create_directory(empty);
  EXPECT_CODE(ExportTenantData(*ts.store, "gone", empty), Code::kTenantPurged);
  EXPECT_TRUE(Entries(empty).empty());

  // A bad page size.
  ExportOptions bad;
  bad.page_size = 0;
  EXPECT_CODE(ExportTenantData(*ts.store, "acme-secret-tenant", out.Sub("x3"), bad), Code::kInvalidArgument);
  EXPECT_FALSE(fs::exists(out.Sub("x3")));

  // A second export into the first one's DIR is refused; the first stays whole.
  const std::string ok_dir = out.Sub("ok");
  ASSERT_OK(ExportTenantData(*ts.store, "acme-secret-tenant", ok_dir));
  const std::string m1 = ReadFile(ok_dir + "/manifest.json");
  EXPECT_CODE(ExportTenantData(*ts.store, "acme-secret-tenant", ok_dir), Code::kAlreadyExists);
  EXPECT_EQ(ReadFile(ok_dir + "/manifest.json"), m1);
  VerifyExportDir(ok_dir, "acme-secret-tenant");

  // An existing empty directory with a loose mode is used and made 0700.
  const std::string loose = out.Sub("loose");
  fs::create_directory(loose);
  ::chmod(loose.c_str(), 0777);
  ASSERT_OK(ExportTenantData(*ts.store, "acme-secret-tenant", loose));
  VerifyExportDir(loose, "acme-secret-tenant");
  std::printf("[export] refusals: %d refused with no leak, 0 written\n", refused);
}

TEST(Export, EmptyTenant) {
  TestStore ts;
  ASSERT_OK(ts.Open());
  ASSERT_OK(ts->CreateTenant({.tenant_id = "acme"}));
  TempDir out;
  const std::string dir = out.Sub("e");
  auto r = ExportTenantData(*ts.store, "acme", dir);
  ASSERT_OK(r);
  EXPECT_EQ(r->calls, 0u);
  EXPECT_EQ(r->recordings, 0u);
  ReadExport rx = VerifyExportDir(dir, "acme");
  EXPECT_EQ(rx.calls, 0u);
  EXPECT_EQ(ReadFile(dir + "/calls.ndjson"), "");
  EXPECT_TRUE(Entries(dir + "/recordings").empty());
  EXPECT_EQ(rx.manifest["files"].size(), 1u);
}

// Export first, churn second: a churned tenant exports while its reads are
// allowed (the default) and is refused, with nothing written, when not.
TEST(Export, ChurnedTenant) {
  TestStore ts;
  ASSERT_OK(ts.Open());
  ASSERT_OK(ts->CreateTenant({.tenant_id = "acme"}));
  ASSERT_OK(ts->PutCall("acme", testutil::MakeCall("c1", kT0)));
  ASSERT_OK(ts->ScheduleTenantPurge("acme", limits::kMaxInstant - 1));
  TempDir out;
  auto r = ExportTenantData(*ts.store, "acme", out.Sub("a"));
  ASSERT_OK(r);
  EXPECT_EQ(r->calls, 1u);
  VerifyExportDir(out.Sub("a"), "acme");
  auto t = ts->DescribeTenant("acme");
  ASSERT_OK(t);
  EXPECT_EQ(t->purge_at, limits::kMaxInstant - 1) << "the export changed the churn";
  ts.options.allow_reads_after_churn = false;
  ASSERT_OK(ts.Reopen());
  EXPECT_CODE(ExportTenantData(*ts.store, "acme", out.Sub("b")), Code::kFailedPrecondition);
  EXPECT_FALSE(fs::exists(out.Sub("b")));
}

// --- child processes ---------------------------------------------------------

std::string EnvOr(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

uint64_t ProcStatusKb(const char* field) {
  const std::string s = ReadFile("/proc/self/status");
  const size_t at = s.find(std::string(field) + ":");
  if (at == std::string::npos) return 0;
  return std::strtoull(s.c_str() + at + std::strlen(field) + 1, nullptr, 10);
}

// Runs this binary's DISABLED_ test `name` with extra environment variables.
pid_t SpawnSelf(const std::string& name, const std::map<std::string, std::string>& vars) {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) env.emplace_back(*e);
  for (const auto& [k, v] : vars) env.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& s : env) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::string exe = "/proc/self/exe", filter = "--gtest_filter=" + name,
              disabled = "--gtest_also_run_disabled_tests";
  std::vector<char*> argv = {exe.data(), filter.data(), disabled.data(), nullptr};
  ::fflush(nullptr);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::execve(exe.c_str(), argv.data(), envp.data());
    ::_exit(127);
  }
  return pid;
}

int WaitExit(pid_t pid) {
  int status = 0;
  if (::waitpid(pid, &status, 0) != pid) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// Runs the callvault binary with `args`, stdout and stderr to `log`.
int RunCli(const std::vector<std::string>& args, const std::string& log) {
  std::string bin = CALLVAULT_BIN;
  std::vector<std::string> a = args;
  std::vector<char*> argv = {bin.data()};
  for (auto& s : a) argv.push_back(s.data());
  argv.push_back(nullptr);
  ::fflush(nullptr);
  pid_t pid = ::fork();
  if (pid == 0) {
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    const int in = ::open("/dev/null", O_RDONLY);
    if (fd < 0 || in < 0) ::_exit(126);
    ::dup2(in, 0);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    ::execv(bin.c_str(), argv.data());
    ::_exit(127);
  }
  return pid > 0 ? WaitExit(pid) : -1;
}

Options ChildOptions(bool read_only) {
  Options o = testutil::DefaultOptions(EnvOr("CV_EXPORT_KEYS"));
  o.create_if_missing = false;
  o.read_only = read_only;
  return o;
}

// Child: opens the store read-only, exports, and writes
// "<baseline VmHWM kB> <VmHWM after kB> <calls> <calls.ndjson bytes>" to CV_EXPORT_RESULT.
TEST(ExportChild, DISABLED_Memory) {
  if (EnvOr("CV_EXPORT_RESULT").empty()) GTEST_SKIP() << "runs only as a child of LargeTenantMemory";
  auto store = Store::Open(ChildOptions(/*read_only=*/true), EnvOr("CV_EXPORT_DB"));
  ASSERT_OK(store);
  ASSERT_OK((*store)->CountCalls("acme"));
  const uint64_t base = ProcStatusKb("VmHWM");
  auto r = ExportTenantData(**store, "acme", EnvOr("CV_EXPORT_DIR"));
  ASSERT_OK(r);
  const uint64_t peak = ProcStatusKb("VmHWM");
  std::ofstream(EnvOr("CV_EXPORT_RESULT")) << base << ' ' << peak << ' ' << r->calls << ' ' << r->calls_bytes
                                           << '\n';
}

TEST(Export, LargeTenantMemory) {
  const uint64_t seed = Seed();
  constexpr size_t kCalls = 2000;
  // The export holds one call, one page and one chunk: its peak must grow
  // by less than this, while calls.ndjson is several times larger.
  constexpr uint64_t kBoundKb = 24 * 1024;
  TestStore ts;
  ASSERT_OK(ts.Open());
  ASSERT_OK(ts->CreateTenant({.tenant_id = "acme"}));
  workload::GeneratorOptions go;
  go.seed = seed;
  go.transcript_scale = 0.6;
  workload::Generator gen(go);
  size_t n = 0;
  while (n < kCalls) {
    std::vector<Call> batch = gen.Batch(100);
    for (auto& c : batch) c.call_id = "c-" + std::to_string(n++);
    ASSERT_OK(ts->PutCalls("acme", batch));
  }
  ASSERT_OK(ts->Flush());
  ASSERT_OK(ts.store->Close());
  ts.Close();

  TempDir out;
  const std::string dir = out.Sub("big"), result = out.Sub("result");
  const auto t0 = std::chrono::steady_clock::now();
  pid_t pid = SpawnSelf("ExportChild.DISABLED_Memory", {{"CV_EXPORT_DB", ts.db},
                                                        {"CV_EXPORT_KEYS", ts.keys},
                                                        {"CV_EXPORT_DIR", dir},
                                                        {"CV_EXPORT_RESULT", result}});
  ASSERT_GT(pid, 0);
  ASSERT_EQ(WaitExit(pid), 0);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::istringstream in(ReadFile(result));
  uint64_t base = 0, peak = 0, calls = 0, ndjson = 0;
  ASSERT_TRUE(in >> base >> peak >> calls >> ndjson) << "child reported nothing";
  EXPECT_EQ(calls, kCalls);
  const uint64_t grew = peak - base;
  std::printf("[export] large tenant: %llu calls, calls.ndjson %llu KiB, peak resident memory %llu KiB -> "
              "%llu KiB (+%llu KiB; bound %llu KiB), %.1f s\n",
              static_cast<unsigned long long>(calls), static_cast<unsigned long long>(ndjson / 1024),
              static_cast<unsigned long long>(base), static_cast<unsigned long long>(peak),
              static_cast<unsigned long long>(grew), static_cast<unsigned long long>(kBoundKb), secs);
  EXPECT_GT(ndjson / 1024, 2 * kBoundKb) << "the tenant is too small to show a bound";
  EXPECT_LT(grew, kBoundKb) << "the export's memory grows with the tenant";
  ReadExport rx = VerifyExportDir(dir, "acme");
  EXPECT_EQ(rx.calls, kCalls);
}

// Child: exports with a 2 MiB limit on the size of any file it writes
// (RLIMIT_FSIZE; SIGXFSZ ignored, so write() fails with EFBIG) and writes
// "<code> <message>" to CV_EXPORT_RESULT.
TEST(ExportChild, DISABLED_FileTooBig) {
  if (EnvOr("CV_EXPORT_RESULT").empty()) GTEST_SKIP() << "runs only as a child of WriteFailureRemovesAll";
  auto store = Store::Open(ChildOptions(/*read_only=*/true), EnvOr("CV_EXPORT_DB"));
  ASSERT_OK(store);
  ::signal(SIGXFSZ, SIG_IGN);
  struct rlimit rl {};
  rl.rlim_cur = rl.rlim_max = 2u << 20;
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &rl), 0);
  auto r = ExportTenantData(**store, "acme", EnvOr("CV_EXPORT_DIR"));
  std::ofstream(EnvOr("CV_EXPORT_RESULT"))
      << static_cast<int>(r.ok() ? Code::kOk : r.status().code()) << ' '
      << (r.ok() ? std::string("ok") : r.status().message()) << '\n';
}

TEST(Export, WriteFailureRemovesAll) {
  const uint64_t seed = Seed();
  TestStore ts;
  ASSERT_OK(ts.Open());
  ASSERT_OK(ts->CreateTenant({.tenant_id = "acme"}));
  for (int i = 0; i < 5; ++i) ASSERT_OK(ts->PutCall("acme", testutil::MakeCall("c" + std::to_string(i), kT0 + i)));
  ASSERT_OK(PutRecording(ts.store.get(), "acme", {"c1", "small", "audio/mpeg", workload::RandomBytes(seed, 1000)}));
  ASSERT_OK(PutRecording(ts.store.get(), "acme",
                         {"c3", "big", "video/mp4", workload::RandomBytes(seed + 1, 3u << 20)}));
  ts.Close();
  TempDir out;
  // Into a directory the export creates (removed) and into an empty one the
  // caller made (kept, emptied).
  for (const bool precreate : {false, true}) {
    const std::string dir = out.Sub(precreate ? "made" : "new"), result = out.Sub("result");
    if (precreate) fs::create_directory(dir);
    pid_t pid = SpawnSelf("ExportChild.DISABLED_FileTooBig", {{"CV_EXPORT_DB", ts.db},
                                                              {"CV_EXPORT_KEYS", ts.keys},
                                                              {"CV_EXPORT_DIR", dir},
                                                              {"CV_EXPORT_RESULT", result}});
    ASSERT_GT(pid, 0);
    ASSERT_EQ(WaitExit(pid), 0);
    const std::string got = ReadFile(result);
    EXPECT_EQ(got.substr(0, got.find(' ')), std::to_string(static_cast<int>(Code::kIOError))) << got;
    EXPECT_NE(got.find("recordings/2.mp4"), std::string::npos) << "the message names the file: " << got;
    if (precreate) {
      EXPECT_TRUE(fs::is_directory(dir));
      EXPECT_TRUE(Entries(dir).empty()) << "a failed export left files behind";
    } else {
      EXPECT_FALSE(fs::exists(dir)) << "a failed export left its directory behind";
    }
  }
  std::printf("[export] write failure (EFBIG): 2 exports failed with io_error, 0 files left\n");
}

// Child: holds the store open for writing and puts one call at a time,
// appending each id to CV_EXPORT_ACKS once PutCall returned, until killed.
TEST(ExportChild, DISABLED_Writer) {
  if (EnvOr("CV_EXPORT_ACKS").empty()) GTEST_SKIP() << "runs only as a child of BesideWriter";
  auto store = Store::Open(ChildOptions(/*read_only=*/false), EnvOr("CV_EXPORT_DB"));
  ASSERT_OK(store);
  const int fd = ::open(EnvOr("CV_EXPORT_ACKS").c_str(), O_WRONLY | O_APPEND | O_CREAT, 0600);
  ASSERT_GE(fd, 0);
  for (int i = 0; i < 100000; ++i) {
    const std::string id = "w-" + std::to_string(i);
    ASSERT_OK((*store)->PutCall("acme", testutil::MakeCall(id, kT0 + 1000 * (i % 97), id)));
    const std::string line = id + "\n";
    ASSERT_EQ(::write(fd, line.data(), line.size()), static_cast<ssize_t>(line.size()));
  }
}

TEST(Export, BesideWriter) {
  TestStore ts;
  ASSERT_OK(ts.Open());
  ASSERT_OK(ts->CreateTenant({.tenant_id = "acme"}));
  for (int i = 0; i < 20; ++i) ASSERT_OK(ts->PutCall("acme", testutil::MakeCall("pre-" + std::to_string(i), kT0 + i)));
  ts.Close();
  TempDir out;
  const std::string acks = out.Sub("acks");
  pid_t pid = SpawnSelf("ExportChild.DISABLED_Writer",
                        {{"CV_EXPORT_DB", ts.db}, {"CV_EXPORT_KEYS", ts.keys}, {"CV_EXPORT_ACKS", acks}});
  ASSERT_GT(pid, 0);
  // Wait for the writer to acknowledge some calls.
  std::set<std::string> acked;
  for (int i = 0; i < 600 && acked.size() < 40; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    std::istringstream in(ReadFile(acks));
    std::string line;
    acked.clear();
    while (std::getline(in, line)) {
      if (!in.eof()) acked.insert(line);  // complete lines only
    }
  }
  ASSERT_GE(acked.size(), 40u) << "the writer acknowledged too little";
  // Read-only open beside the writer (no lock, nothing written), then export.
  Options ro = testutil::DefaultOptions(ts.keys);
  ro.create_if_missing = false;
  ro.read_only = true;
  auto store = Store::Open(ro, ts.db);
  ASSERT_OK(store);
  const std::string dir = out.Sub("live");
  auto r = ExportTenantData(**store, "acme", dir);
  // The CLI too, as an operator runs it beside the service: it opens the
  // store read-only by itself.
  const std::string cli_dir = out.Sub("live-cli");
  const int cli_exit = RunCli({"--db", ts.db, "--keys", ts.keys, "tenant", "export", "acme", "--to", cli_dir},
                              out.Sub("cli.out"));
  ::kill(pid, SIGKILL);
  WaitExit(pid);
  ASSERT_OK(r);
  EXPECT_EQ(cli_exit, 0) << ReadFile(out.Sub("cli.out"));
  if (cli_exit == 0) {
    VerifyExportDir(cli_dir, "acme");
    std::set<std::string> by_cli;
    for (const Call& c : ParseNdjson(cli_dir)) by_cli.insert(c.call_id);
    size_t cli_missing = 0;
    for (const auto& id : acked) cli_missing += by_cli.count(id) == 0;
    EXPECT_EQ(cli_missing, 0u) << "acknowledged calls missing from the CLI's export";
  }
  VerifyExportDir(dir, "acme");
  std::set<std::string> exported;
  for (const Call& c : ParseNdjson(dir)) EXPECT_TRUE(exported.insert(c.call_id).second) << "exported twice";
  size_t missing = 0;
  for (const auto& id : acked) missing += exported.count(id) == 0;
  for (int i = 0; i < 20; ++i) missing += exported.count("pre-" + std::to_string(i)) == 0;
  EXPECT_EQ(missing, 0u) << "acknowledged calls missing from the export";
  std::printf("[export] beside a writer: %zu acknowledged before the open, %zu exported, %zu missing\n",
              acked.size() + 20, exported.size(), missing);
}

TEST(Export, ConcurrentWriterSameStore) {
  TestStore ts;
  ASSERT_OK(ts.Open());
  ASSERT_OK(ts->CreateTenant({.tenant_id = "acme"}));
  std::vector<Call> pre;
  for (int i = 0; i < 300; ++i) pre.push_back(testutil::MakeCall("pre-" + std::to_string(i), kT0 + 1000 * i));
  ASSERT_OK(ts->PutCalls("acme", pre));
  std::atomic<bool> stop{false};
  std::atomic<int> writes{0};
  std::thread writer([&] {
    for (int i = 0; !stop.load(); ++i) {
      // New calls anywhere in time, and rewrites of existing ones (same started_at).
      auto s = ts->PutCall("acme", testutil::MakeCall("new-" + std::to_string(i), kT0 + 777 * (i % 500)));
      Call c = pre[static_cast<size_t>(i) % pre.size()];
      c.title = "rewritten " + std::to_string(i);
      auto s2 = ts->PutCall("acme", c);
      if (s.ok() && s2.ok()) writes += 2;
    }
  });
  TempDir out;
  ExportOptions eo;
  eo.page_size = 10;
  // Every 10 calls, let the writer land two more writes: the listing's
  // pages and the writes interleave on every run.
  eo.progress = [&](const ExportProgress& p) {
    if (p.done || p.calls_done % 10 != 0) return;
    const int target = writes.load() + 2;
    for (int i = 0; i < 5000 && writes.load() < target; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  };
  while (writes.load() < 2) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  const int writes_before = writes.load();
  auto r = ExportTenantData(*ts.store, "acme", out.Sub("x"), eo);
  const int writes_during = writes.load() - writes_before;
  stop = true;
  writer.join();
  ASSERT_OK(r);
  VerifyExportDir(out.Sub("x"), "acme");
  std::map<std::string, int> seen;
  for (const Call& c : ParseNdjson(out.Sub("x"))) ++seen[c.call_id];
  size_t wrong = 0;
  for (const auto& c : pre) wrong += seen[c.call_id] != 1;
  EXPECT_EQ(wrong, 0u) << "calls that existed before the export missing or duplicated";
  EXPECT_GE(writes_during, 40) << "the writer hardly ran during the export";
  std::printf("[export] same store, concurrent writer: %d writes during the export, %zu calls exported, "
              "%zu pre-existing calls missing or twice\n",
              writes_during, seen.size(), wrong);
}

}  // namespace
}  // namespace callvault
