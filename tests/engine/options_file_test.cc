// RocksDB's OPTIONS files are not kept by default (decision 0069): none is
// written, a writable open removes those a run that kept them left, their
// refusal is not logged, a read-only open leaves them alone, and the
// instances open as RocksDB's ldb opens them without one.
#include <gtest/gtest.h>
#include <rocksdb/db.h>
#include <rocksdb/env.h>
#include <rocksdb/file_system.h>
#include <rocksdb/options.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "callvault/store.h"
#include "engine/info_log.h"
#include "tests/testutil/testutil.h"

namespace callvault {
namespace {

namespace fs = std::filesystem;

// The OPTIONS-* files of the store's instances (meta/ and shards/NNNN/).
std::vector<std::string> OptionsFiles(const std::string& db) {
  std::vector<std::string> out;
  for (const auto& f : testutil::ListFiles(db)) {
    if (fs::path(f).filename().string().rfind("OPTIONS-", 0) == 0) out.push_back(f);
  }
  return out;
}

struct Lines {
  std::mutex mu;
  std::vector<std::string> all;
  Logger Hook() {
    return [this](LogLevel, std::string_view source, std::string_view message) {
      std::lock_guard<std::mutex> l(mu);
      all.push_back(std::string(source) + ": " + std::string(message));
    };
  }
  size_t Containing(std::string_view needle) {
    std::lock_guard<std::mutex> l(mu);
    size_t n = 0;
    for (const auto& s : all) n += s.find(needle) != std::string::npos;
    return n;
  }
};

TEST(OptionsFile, NotKeptByDefault) {
  EXPECT_FALSE(Options().keep_rocksdb_options_file);
}

TEST(OptionsFile, StaleOnesRemovedAndNothingLogged) {
  testutil::TempDir tmp;
  Options o = testutil::DefaultOptions(tmp.Sub("keys"));
  o.max_tenants_per_shard = 2;
  const std::string db = tmp.Sub("db");
  // A store run that kept them: one per instance (meta and three shards).
  o.keep_rocksdb_options_file = true;
  {
    auto s = Store::Open(o, db);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    for (const char* t : {"t0", "t1", "t2", "t3", "t4"}) {
      ASSERT_TRUE((*s)->CreateTenant({.tenant_id = t}).ok());
      ASSERT_TRUE((*s)->PutCall(t, testutil::MakeCall(std::string(t) + "-c", 1700000000000000)).ok());
    }
  }
  const auto kept = OptionsFiles(db);
  ASSERT_GE(kept.size(), 4u);
  // A plant beside them, with a name RocksDB would never pick for a file
  // of its own; garbage: nothing of the store reads it.
  std::ofstream(db + "/shards/0000/OPTIONS-999999") << "[garbage";

  // A read-only open writes nothing, removes nothing.
  o.create_if_missing = false;
  o.keep_rocksdb_options_file = false;
  {
    Options ro = o;
    ro.read_only = true;
    auto s = Store::Open(ro, db);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    ASSERT_TRUE((*s)->GetCall("t0", "t0-c").ok());
  }
  EXPECT_EQ(OptionsFiles(db).size(), kept.size() + 1);

  // The default: the writable open removes them; creates, purges and a
  // reopen write none, and their refusal is in no log line.
  Lines lines;
  o.logger = lines.Hook();
  {
    auto s = Store::Open(o, db);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    EXPECT_TRUE(OptionsFiles(db).empty()) << ::testing::PrintToString(OptionsFiles(db));
    ASSERT_TRUE((*s)->CreateTenant({.tenant_id = "t5"}).ok());
    ASSERT_TRUE((*s)->PutCall("t5", testutil::MakeCall("t5-c", 1700000000000000)).ok());
    ASSERT_TRUE((*s)->PurgeTenant("t1").ok());
    for (const char* t : {"t0", "t2", "t3", "t4", "t5"}) {
      auto got = (*s)->GetCall(t, std::string(t) + "-c");
      EXPECT_TRUE(got.ok()) << t << ": " << got.status().ToString();
    }
  }
  {
    auto s = Store::Open(o, db);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    EXPECT_EQ((*s)->GetCall("t1", "t1-c").status().code(), Code::kTenantPurged);
  }
  EXPECT_TRUE(OptionsFiles(db).empty()) << ::testing::PrintToString(OptionsFiles(db));
  EXPECT_GT(lines.Containing("rocksdb:"), 0u) << "the hook got RocksDB's lines";
  EXPECT_EQ(lines.Containing("persist options"), 0u);
  EXPECT_EQ(lines.Containing("OPTIONS files not kept"), 0u);
  // Nor the instances' own LOG files (written when no Options::logger is
  // set): an open, a create and a purge in a new shard.
  o.logger = nullptr;
  {
    auto s = Store::Open(o, db);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    ASSERT_TRUE((*s)->CreateTenant({.tenant_id = "t6"}).ok());
    ASSERT_TRUE((*s)->CreateTenant({.tenant_id = "t7"}).ok());
    ASSERT_TRUE((*s)->PurgeTenant("t6").ok());
  }
  EXPECT_TRUE(OptionsFiles(db).empty()) << ::testing::PrintToString(OptionsFiles(db));
  size_t logs = 0;
  for (const auto& f : testutil::ListFiles(db)) {
    if (fs::path(f).filename().string() != "LOG") continue;
    const std::string text = testutil::ReadFile(f);
    logs += text.find("DB pointer") != std::string::npos;  // RocksDB's open lines are there
    EXPECT_EQ(text.find("persist options"), std::string::npos) << f;
    EXPECT_EQ(text.find("OPTIONS files not kept"), std::string::npos) << f;
  }
  EXPECT_GE(logs, 2u);

  // What ldb does without an OPTIONS file: the families from the MANIFEST,
  // each opened with default options; a tenant's family reads.
  std::vector<std::string> names;
  ASSERT_TRUE(rocksdb::DB::ListColumnFamilies(rocksdb::DBOptions(), db + "/shards/0000", &names).ok());
  ASSERT_GE(names.size(), 2u);
  std::vector<rocksdb::ColumnFamilyDescriptor> descs;
  for (const auto& n : names) descs.emplace_back(n, rocksdb::ColumnFamilyOptions());
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status opened =
      rocksdb::DB::OpenForReadOnly(rocksdb::DBOptions(), db + "/shards/0000", descs, &handles, &raw);
  ASSERT_TRUE(opened.ok()) << opened.ToString();
  std::unique_ptr<rocksdb::DB> ldb(raw);
  size_t keys = 0;
  for (auto* h : handles) {
    if (h->GetName() == rocksdb::kDefaultColumnFamilyName) continue;
    std::unique_ptr<rocksdb::Iterator> it(ldb->NewIterator(rocksdb::ReadOptions(), h));
    for (it->SeekToFirst(); it->Valid(); it->Next()) ++keys;
    EXPECT_TRUE(it->status().ok()) << it->status().ToString();
  }
  EXPECT_GT(keys, 0u);
  for (auto* h : handles) ldb->DestroyColumnFamilyHandle(h).PermitUncheckedError();
}

// The refusal is of RocksDB's temporary OPTIONS file by its own name: a store
// under a directory called OPTIONS-something is created, and one that kept
// its files there opens for writing under the default (CURRENT and IDENTITY
// are written through NNNNNN.dbtmp files too; a match on the whole path
// refused them).
TEST(OptionsFile, StoreUnderADirectoryCalledOptions) {
  testutil::TempDir tmp;
  for (bool keep_first : {false, true}) {
    SCOPED_TRACE(keep_first ? "made keeping them" : "made without");
    const std::string db = tmp.Sub(keep_first ? "OPTIONS-a/db" : "OPTIONS-b/db");
    fs::create_directories(fs::path(db).parent_path());
    Options o = testutil::DefaultOptions(tmp.Sub(keep_first ? "keys-a" : "keys-b"));
    o.keep_rocksdb_options_file = keep_first;
    {
      auto s = Store::Open(o, db);
      ASSERT_TRUE(s.ok()) << s.status().ToString();
      ASSERT_TRUE((*s)->CreateTenant({.tenant_id = "t0"}).ok());
      ASSERT_TRUE((*s)->PutCall("t0", testutil::MakeCall("c0", 1700000000000000)).ok());
    }
    EXPECT_EQ(OptionsFiles(db).empty(), !keep_first);
    o.keep_rocksdb_options_file = false;
    o.create_if_missing = false;
    auto s = Store::Open(o, db);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    auto created = (*s)->CreateTenant({.tenant_id = "t1"});
    ASSERT_TRUE(created.ok()) << created.status().ToString();
    ASSERT_TRUE((*s)->PutCall("t1", testutil::MakeCall("c1", 1700000000000000)).ok());
    ASSERT_TRUE((*s)->GetCall("t0", "c0").ok());
    EXPECT_TRUE(OptionsFiles(db).empty()) << ::testing::PrintToString(OptionsFiles(db));
  }
}

// Only RocksDB's warning of the refusal is dropped from the logs: a line
// that holds the refusal's text anywhere else (a path can) is kept.
TEST(OptionsFile, OnlyTheRefusalWarningIsDropped) {
  const std::string refusal(kOptionsFileRefused);
  EXPECT_TRUE(IsOptionsFileRefusal("[WARN] Unnable to persist options -- Not implemented: " + refusal));
  EXPECT_TRUE(IsOptionsFileRefusal(
      "[WARN] Unable to persist options in SetDBOptions() -- Not implemented: " + refusal));
  EXPECT_FALSE(IsOptionsFileRefusal("[ERROR] Error when reading /x/" + refusal + "/store dir"));
  EXPECT_FALSE(IsOptionsFileRefusal("[WARN] Unnable to persist options -- IO error: /x/" + refusal +
                                    "/OPTIONS-000012.dbtmp: No space left on device"));
  EXPECT_FALSE(IsOptionsFileRefusal("[WARN] flush failed: " + refusal));
  EXPECT_FALSE(IsOptionsFileRefusal(""));
}

// Fails the removal of OPTIONS files (as an immutable file or a read-only
// mount would).
class KeepOptionsFS : public rocksdb::FileSystemWrapper {
 public:
  KeepOptionsFS() : FileSystemWrapper(rocksdb::FileSystem::Default()) {}
  const char* Name() const override { return "KeepOptionsFS"; }
  rocksdb::IOStatus DeleteFile(const std::string& f, const rocksdb::IOOptions& o,
                               rocksdb::IODebugContext* dbg) override {
    if (f.find("/OPTIONS-") != std::string::npos) return rocksdb::IOStatus::IOError(f, "Operation not permitted");
    return FileSystemWrapper::DeleteFile(f, o, dbg);
  }
};

// A stale OPTIONS file that cannot be removed is left, and said in the
// instance's info log: Options::logger when set, its LOG file otherwise.
TEST(OptionsFile, AFailedRemovalIsSaid) {
  testutil::TempDir tmp;
  const std::string db = tmp.Sub("db");
  Options o = testutil::DefaultOptions(tmp.Sub("keys"));
  o.keep_rocksdb_options_file = true;
  {
    auto s = Store::Open(o, db);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    ASSERT_TRUE((*s)->CreateTenant({.tenant_id = "t0"}).ok());
  }
  const size_t kept = OptionsFiles(db).size();
  ASSERT_GE(kept, 2u);
  auto fs = std::make_shared<KeepOptionsFS>();
  std::unique_ptr<rocksdb::Env> env = rocksdb::NewCompositeEnv(fs);
  o.env = env.get();
  o.keep_rocksdb_options_file = false;
  o.create_if_missing = false;
  Lines lines;
  o.logger = lines.Hook();
  {
    auto s = Store::Open(o, db);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    ASSERT_TRUE((*s)->GetCall("t0", "none").status().code() == Code::kNotFound);
  }
  EXPECT_EQ(OptionsFiles(db).size(), kept);
  EXPECT_GE(lines.Containing("could not remove a stale RocksDB OPTIONS file"), 2u);
  o.logger = nullptr;
  {
    auto s = Store::Open(o, db);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
  }
  size_t said = 0;
  for (const auto& f : testutil::ListFiles(db)) {
    if (fs::path(f).filename().string() != "LOG") continue;
    said += testutil::ReadFile(f).find("could not remove a stale RocksDB OPTIONS file") != std::string::npos;
  }
  EXPECT_GE(said, 2u) << "meta's LOG and the shard's";
}

}  // namespace
}  // namespace callvault
