// Committed store fixtures (a store directory and its key directory written
// by an older build, kept under tests/*/testdata): writing one, and copying
// one to a temporary directory to open it. Header-only; used by
// tests/engine/compat_test.cc and tests/recordings/recording_format_test.cc.
#ifndef CALLVAULT_TESTS_TESTUTIL_FIXTURE_H_
#define CALLVAULT_TESTS_TESTUTIL_FIXTURE_H_

#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

#include "callvault/store.h"
#include "tests/testutil/testutil.h"

namespace callvault::testutil {

// The directory named by $CALLVAULT_WRITE_FIXTURE, emptied: the fixture's
// store goes to <dir>/db, its keys to <dir>/keys. Empty if the variable is
// not set.
inline std::string FixtureOutputDir() {
  const char* out = std::getenv("CALLVAULT_WRITE_FIXTURE");
  if (out == nullptr || *out == '\0') return "";
  std::filesystem::remove_all(out);
  std::filesystem::create_directories(out);
  return out;
}

// RocksDB's info logs are not part of the format: removed from a written
// fixture's store.
inline void RemoveInfoLogs(const std::string& db) {
  for (const auto& e : std::filesystem::recursive_directory_iterator(db)) {
    if (e.path().filename().string().rfind("LOG", 0) == 0) std::filesystem::remove(e.path());
  }
}

// A fixture's store and keys, copied to a temporary directory with the
// modes the key provider requires (git keeps neither 0700 nor 0600).
struct FixtureCopy {
  TempDir tmp;
  std::string db = tmp.Sub("db");
  std::string keys = tmp.Sub("keys");
  explicit FixtureCopy(const std::string& fixture) {
    CopyTree(fixture + "/db", db);
    CopyTree(fixture + "/keys", keys);
    for (const std::string& d : {db, keys}) {
      ::chmod(d.c_str(), 0700);
      for (const auto& e : std::filesystem::recursive_directory_iterator(d)) {
        ::chmod(e.path().c_str(), e.is_directory() ? 0700 : 0600);
      }
    }
  }
  Result<std::unique_ptr<Store>> Open(bool read_only = false) {
    Options o = DefaultOptions(keys);
    o.read_only = read_only;
    if (read_only) o.create_if_missing = false;
    return Store::Open(o, db);
  }
};

}  // namespace callvault::testutil

#endif  // CALLVAULT_TESTS_TESTUTIL_FIXTURE_H_
