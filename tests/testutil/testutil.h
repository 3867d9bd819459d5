// Shared test helpers: temporary directories, status assertions, a store
// with its own key directory, small calls, and a byte scanner for files.
#ifndef CALLVAULT_TESTS_TESTUTIL_H_
#define CALLVAULT_TESTS_TESTUTIL_H_

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include <rocksdb/status.h>

#include "callvault/store.h"

#define ASSERT_OK(expr)                                      \
  do {                                                       \
    const auto& cv_s_ = (expr);                              \
    ASSERT_TRUE(::callvault::testutil::StatusOf(cv_s_).ok()) \
        << ::callvault::testutil::StatusOf(cv_s_).ToString(); \
  } while (0)
#define EXPECT_OK(expr)                                      \
  do {                                                       \
    const auto& cv_s_ = (expr);                              \
    EXPECT_TRUE(::callvault::testutil::StatusOf(cv_s_).ok()) \
        << ::callvault::testutil::StatusOf(cv_s_).ToString(); \
  } while (0)
#define EXPECT_CODE(expr, code_)                                                  \
  do {                                                                            \
    const auto& cv_s_ = (expr);                                                   \
    EXPECT_EQ(::callvault::testutil::StatusOf(cv_s_).code(), ::callvault::code_) \
        << ::callvault::testutil::StatusOf(cv_s_).ToString();                     \
  } while (0)

namespace callvault::testutil {

inline const Status& StatusOf(const Status& s) { return s; }
template <typename T>
const Status& StatusOf(const Result<T>& r) {
  return r.status();
}

// A fresh directory under $TMPDIR (or /tmp), removed on destruction unless
// CALLVAULT_KEEP_TMP is set.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string Sub(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// A store in tmp/db with keys in tmp/keys.
struct TestStore {
  TempDir tmp;
  std::string db = tmp.Sub("db");
  std::string keys = tmp.Sub("keys");
  Options options;
  std::unique_ptr<Store> store;

  TestStore();
  // Opens (creating) with a fresh FileKeyProvider on `keys`.
  Status Open();
  void Close() { store.reset(); }
  Status Reopen() {
    Close();
    return Open();
  }
  Store* operator->() const { return store.get(); }
};

Options DefaultOptions(const std::string& key_dir);
// The same small test options over a key provider the test made itself.
Options DefaultOptions(std::shared_ptr<KeyProvider> key_provider);

// A small valid call.
Call MakeCall(const std::string& call_id, int64_t started_at, const std::string& marker = "");

// Copies a directory tree (files and subdirectories).
void CopyTree(const std::string& from, const std::string& to);
// Every regular file under `dir`, recursively.
std::vector<std::string> ListFiles(const std::string& dir);
// rocksdb::DB::ListColumnFamilies of a shard or instance another handle
// may have open. A live instance appends to its MANIFEST at each edit and
// starts a new one now and then (decision 0067), so a listing can read a
// record being appended or find its MANIFEST gone: listed again while
// CURRENT or its MANIFEST's size keeps changing under it (up to 100
// times); an error with both unchanged is returned.
rocksdb::Status ListLiveColumnFamilies(const std::string& path, std::vector<std::string>* names);
std::string ReadFile(const std::string& path);
// "file: needle" for every needle found in any file under `dir`.
std::vector<std::string> FindInTree(const std::string& dir, const std::vector<std::string>& needles);
// Waits until no dictionary training is queued or running (decision 0045:
// trainings run in the background), polling Stats(); false after 60 s.
bool WaitForDictionaryTraining(Store& store);
// Waits (up to 30 s) until no purged family's files are still being deleted
// by a shard's reaper (Metrics::purge_deletions_pending == 0; decision
// 0049). False on timeout or if Metrics fails.
bool WaitForPurgeDeletions(Store& store);

}  // namespace callvault::testutil

#endif  // CALLVAULT_TESTS_TESTUTIL_H_
