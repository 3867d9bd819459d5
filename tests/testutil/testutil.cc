#include "tests/testutil/testutil.h"

#include <rocksdb/db.h>

#include <chrono>
#include <cstdlib>
#include <thread>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace callvault::testutil {

namespace fs = std::filesystem;

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base && *base ? base : "/tmp") + "/callvault-test-XXXXXX";
  char* p = ::mkdtemp(tmpl.data());
  if (p == nullptr) std::abort();
  path_ = p;
}

TempDir::~TempDir() {
  if (std::getenv("CALLVAULT_KEEP_TMP") == nullptr) {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
}

Options DefaultOptions(const std::string& key_dir) {
  auto kp = NewFileKeyProvider(key_dir);
  if (!kp.ok()) std::abort();
  return DefaultOptions(*kp);
}

Options DefaultOptions(std::shared_ptr<KeyProvider> key_provider) {
  Options o;
  o.key_provider = std::move(key_provider);
  o.create_if_missing = true;
  o.region = "eu-west";
  o.block_cache_bytes = 8u << 20;
  o.write_buffer_budget_bytes = 64u << 20;
  o.write_buffer_bytes = 4u << 20;
  return o;
}

TestStore::TestStore() : options(DefaultOptions(keys)) {}

Status TestStore::Open() {
  auto kp = NewFileKeyProvider(keys);
  if (!kp.ok()) return kp.status();
  options.key_provider = *kp;
  auto s = Store::Open(options, db);
  if (!s.ok()) return s.status();
  store = std::move(s).value();
  return Status::OK();
}

Call MakeCall(const std::string& call_id, int64_t started_at, const std::string& marker) {
  Call c;
  c.call_id = call_id;
  c.source_system = SourceSystem::kZoom;
  c.workspace_id = "ws-1";
  c.started_at = started_at;
  c.duration_ms = 60000;
  c.title = "Quarterly review " + marker;
  c.direction = Direction::kConference;
  c.scope = CallScope::kExternal;
  c.media = Media::kVideo;
  c.language = "en-US";
  c.status = "completed";
  c.tags = {"renewal"};
  c.owner_user_id = "u-1";
  c.team_ids = {"team-a"};
  c.participants = {
      Participant{"Alice " + marker, "alice@example.com", "+14155550100", "AE", "Example",
                  Affiliation::kInternal, 1, "u-1"},
      Participant{"Bob " + marker, "bob@customer.example", "", "CTO", "Customer",
                  Affiliation::kExternal, 2, ""}};
  c.crm_links = {CrmLink{"salesforce", CrmObjectType::kOpportunity, "006ABC"}};
  for (uint32_t i = 0; i < 20; ++i) {
    c.transcript.push_back(TranscriptSegment{1 + i % 2, i * 3000, i * 3000 + 2500,
                                             "we talked about pricing and the roadmap " + marker,
                                             0.9f});
  }
  c.insights.summary = "The customer wants a discount. " + marker;
  c.insights.action_items = {ActionItem{"send proposal " + marker, "u-1"}};
  c.insights.topics = {"pricing"};
  c.insights.trackers = {Tracker{"competitor", 2}};
  c.insights.model_name = "gpt-4o";
  c.insights.model_version = "2024-08-06";
  return c;
}

void CopyTree(const std::string& from, const std::string& to) {
  fs::copy(from, to, fs::copy_options::recursive | fs::copy_options::overwrite_existing);
}

std::vector<std::string> ListFiles(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    if (it->is_regular_file()) out.push_back(it->path().string());
  }
  return out;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> FindInTree(const std::string& dir, const std::vector<std::string>& needles) {
  std::vector<std::string> hits;
  for (const auto& f : ListFiles(dir)) {
    std::string data = ReadFile(f);
    for (const auto& n : needles) {
      if (!n.empty() && data.find(n) != std::string::npos) hits.push_back(f + ": " + n);
    }
  }
  return hits;
}

rocksdb::Status ListLiveColumnFamilies(const std::string& path, std::vector<std::string>* names) {
  rocksdb::DBOptions dbo;
  rocksdb::Status s;
  // CURRENT and the size of the MANIFEST it names.
  auto stamp = [&path]() {
    std::string current = ReadFile(path + "/CURRENT");
    std::error_code ec;
    std::string name = current;
    while (!name.empty() && name.back() == '\n') name.pop_back();
    const auto size = std::filesystem::file_size(path + "/" + name, ec);
    return current + " " + (ec ? std::string("-") : std::to_string(size));
  };
  for (int attempt = 0; attempt < 100; ++attempt) {
    const std::string before = stamp();
    names->clear();
    s = rocksdb::DB::ListColumnFamilies(dbo, path, names);
    if (s.ok() || stamp() == before) return s;  // (unchanged: not a race)
  }
  return s;
}

bool WaitForDictionaryTraining(Store& store) {
  for (int i = 0; i < 6000; ++i) {
    auto st = store.Stats();
    if (!st.ok()) return false;
    if (st->dictionary_training.queued == 0 && st->dictionary_training.running == 0) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

bool WaitForPurgeDeletions(Store& store) {
  for (int i = 0; i < 30000; ++i) {
    auto m = store.Metrics();
    if (!m.ok()) return false;
    if (m->purge_deletions_pending == 0) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return false;
}

}  // namespace callvault::testutil
