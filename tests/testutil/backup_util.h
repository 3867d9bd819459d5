// Helpers of the backup and restore tests (tests/backup, tests/damage):
// the options they open stores with, a restore into a new directory, and
// the checks and damage they apply to a backup directory.
#ifndef CALLVAULT_TESTS_TESTUTIL_BACKUP_UTIL_H_
#define CALLVAULT_TESTS_TESTUTIL_BACKUP_UTIL_H_

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "callvault/backup.h"
#include "callvault/store.h"
#include "tests/testutil/testutil.h"

namespace callvault::testutil {

// DefaultOptions without background dictionary training (no training
// thread writes while a backup or a restore is checked).
inline Options NoTrainingOptions(const std::string& keys) {
  Options o = DefaultOptions(keys);
  o.dictionary_training_calls = 0;
  return o;
}

// Store::Restore of `backup` (its cut `cut`, 0: the newest) into `new_dir`
// with the key directory `keys`.
inline Result<RestoreReport> RestoreTo(const std::string& backup, const std::string& keys,
                                       const std::string& new_dir, uint64_t cut = 0) {
  Options o = NoTrainingOptions(keys);
  o.create_if_missing = false;
  RestoreRequest req;
  req.cut = cut;
  return Store::Restore(o, backup, new_dir, req);
}

// A refused restore left nothing: no file at `dir`, no staging beside it.
inline void ExpectNothingRestored(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  EXPECT_FALSE(fs::exists(dir, ec) && !fs::is_empty(dir, ec)) << dir << " has files";
  for (const auto& e : fs::directory_iterator(fs::path(dir).parent_path())) {
    EXPECT_EQ(e.path().filename().string().find(".restoring-"), std::string::npos)
        << "staging left behind: " << e.path();
  }
}

// The shared table and blob files of a backup directory, sorted.
inline std::vector<std::string> BackupTableFiles(const std::string& dir) {
  std::vector<std::string> v;
  for (const auto& f : ListFiles(dir)) {
    if (f.find("shared_checksum") != std::string::npos &&
        (f.ends_with(".sst") || f.ends_with(".blob"))) {
      v.push_back(f);
    }
  }
  std::sort(v.begin(), v.end());
  return v;
}

// A store with tenants A and B, `calls` calls each ("a0", "b0", ...), its
// key directory and a backup directory beside it, in a temp directory.
struct TwoTenants {
  TempDir tmp;
  std::string db = tmp.Sub("db"), keys = tmp.Sub("keys"), bak = tmp.Sub("bak");
  std::unique_ptr<Store> s;
  // Call under ASSERT_NO_FATAL_FAILURE.
  void Make(int calls = 20) {
    auto o = Store::Open(NoTrainingOptions(keys), db);
    ASSERT_TRUE(o.ok()) << o.status().ToString();
    s = std::move(o).value();
    ASSERT_OK(s->CreateTenant({.tenant_id = "A"}));
    ASSERT_OK(s->CreateTenant({.tenant_id = "B"}));
    for (int i = 0; i < calls; ++i) {
      ASSERT_OK(s->PutCall("A", MakeCall("a" + std::to_string(i), 1700000000000000 + i, "ma")));
      ASSERT_OK(s->PutCall("B", MakeCall("b" + std::to_string(i), 1700000000000000 + i, "mb")));
    }
  }
  // Closes the store (its status checked) and lets it go. Call under
  // ASSERT_NO_FATAL_FAILURE.
  void Close() {
    ASSERT_OK(s->Close());
    s.reset();
  }
  // Backs the store up into `bak`, then Close().
  void BackupAndClose() {
    ASSERT_OK(s->Backup(bak));
    Close();
  }
};

// Flips the byte at `offset` of `path` in place (same size).
inline void FlipByte(const std::string& path, uint64_t offset) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  ASSERT_TRUE(f.good()) << path;
  f.seekg(static_cast<std::streamoff>(offset));
  char c = 0;
  f.read(&c, 1);
  c = static_cast<char>(c ^ 0x5a);
  f.seekp(static_cast<std::streamoff>(offset));
  f.write(&c, 1);
  ASSERT_TRUE(f.good());
}

}  // namespace callvault::testutil

#endif  // CALLVAULT_TESTS_TESTUTIL_BACKUP_UTIL_H_
