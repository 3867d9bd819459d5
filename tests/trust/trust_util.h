// Helpers shared by the tests/trust suites of this slice: a second process
// (this test binary run again with a helper test selected), file-tree
// snapshots, and the options of a store opened writable or read-only.
#ifndef CALLVAULT_TESTS_TRUST_TRUST_UTIL_H_
#define CALLVAULT_TESTS_TRUST_TRUST_UTIL_H_

#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "callvault/store.h"
#include "tests/testutil/testutil.h"

namespace callvault::trust {

inline Options StoreOptions(const std::string& keys, bool read_only) {
  FileKeyProviderOptions ko;
  ko.create_if_missing = !read_only;
  auto kp = NewFileKeyProvider(keys, ko);
  if (!kp.ok()) std::abort();
  Options o = testutil::DefaultOptions(*kp);
  o.create_if_missing = !read_only;
  o.read_only = read_only;
  return o;
}

// Every entry under `root`: its type, mode and (files) bytes.
inline std::map<std::string, std::string> Snapshot(const std::string& root) {
  namespace fs = std::filesystem;
  std::map<std::string, std::string> out;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(root, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    struct stat st {};
    const std::string p = it->path().string();
    if (::lstat(p.c_str(), &st) != 0) continue;
    std::string v = std::to_string(st.st_mode) + ":";
    if (S_ISREG(st.st_mode)) {
      std::ifstream f(p, std::ios::binary);
      std::stringstream ss;
      ss << f.rdbuf();
      v += ss.str();
    }
    out[p.substr(root.size())] = std::move(v);
  }
  return out;
}

// Names the entries in which two snapshots differ.
inline std::string Diff(const std::map<std::string, std::string>& a,
                        const std::map<std::string, std::string>& b) {
  std::string d;
  for (const auto& [k, v] : a) {
    auto it = b.find(k);
    if (it == b.end()) d += " removed:" + k;
    else if (it->second != v) d += " changed:" + k;
  }
  for (const auto& [k, v] : b) {
    if (!a.count(k)) d += " added:" + k;
  }
  return d;
}

// Runs this test binary again with only `test` selected and `env` added.
// Returns the child's pid.
inline pid_t SpawnHelper(const std::string& test, const std::vector<std::string>& env) {
  const std::string filter = "--gtest_filter=" + test;
  pid_t pid = ::fork();
  if (pid == 0) {
    for (const auto& e : env) ::putenv(const_cast<char*>(::strdup(e.c_str())));
    ::execl("/proc/self/exe", "trust_helper", filter.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  return pid;
}

// Waits for the child; its status from waitpid.
inline int Wait(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return status;
}

inline std::string DescribeStatus(int status) {
  if (WIFEXITED(status)) return "exited with " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return "killed by signal " + std::to_string(WTERMSIG(status));
  return "status " + std::to_string(status);
}

inline std::vector<std::string> ReadLines(const std::string& path) {
  std::vector<std::string> v;
  std::ifstream f(path);
  for (std::string line; std::getline(f, line);) {
    if (!line.empty()) v.push_back(line);
  }
  return v;
}

// Appends one line with write(2) (an acknowledgement: the call returned OK).
inline void AppendLine(const std::string& path, const std::string& line) {
  std::ofstream f(path, std::ios::app);
  f << line << '\n';
  f.flush();
}

inline const char* Env(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? "" : v;
}

}  // namespace callvault::trust

#endif  // CALLVAULT_TESTS_TRUST_TRUST_UTIL_H_
