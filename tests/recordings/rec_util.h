// Helpers for the recording suites (tests/recordings): writing and reading
// recordings through the public API, raw RocksDB access to a closed
// store's shard (to tamper with chunks or look for leftovers), the chunk
// keys of each recording as stored, a child process that re-executes this
// test binary (crash and memory tests), and a byte scanner.
#ifndef CALLVAULT_TESTS_RECORDINGS_REC_UTIL_H_
#define CALLVAULT_TESTS_RECORDINGS_REC_UTIL_H_

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "callvault/store.h"
#include "engine/keyring.h"
#include "engine/shard.h"
#include "format/rowkey.h"
#include "tests/testutil/raw_shard.h"
#include "tests/testutil/testutil.h"

extern char** environ;

namespace callvault::rectest {

constexpr uint64_t kChunk = kRecordingChunkBytes;
constexpr int64_t kT0 = 1'767'225'600'000'000;

// The seed of this test: $CALLVAULT_SEED if set, else random; printed.
inline uint64_t TestSeed() {
  uint64_t seed;
  if (const char* env = std::getenv("CALLVAULT_SEED"); env != nullptr && *env) {
    seed = std::strtoull(env, nullptr, 0);
  } else {
    seed = (static_cast<uint64_t>(std::random_device{}()) << 32) ^ std::random_device{}();
  }
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::printf("[seed] %s: CALLVAULT_SEED=%llu\n", info ? info->name() : "?",
              static_cast<unsigned long long>(seed));
  std::fflush(stdout);
  return seed;
}

inline Result<RecordingInfo> WriteRecording(Store* store, const std::string& tenant,
                                            const std::string& call, const std::string& id,
                                            std::string_view data, size_t piece = 250000) {
  auto w = store->CreateRecording(tenant, call, {.recording_id = id, .content_type = "video/mp4"});
  if (!w.ok()) return w.status();
  for (size_t i = 0; i < data.size(); i += piece) {
    CV_RETURN_IF_ERROR((*w)->Append(data.substr(i, piece)));
  }
  return (*w)->Finish();
}

// Reads [off, off + len) into `out` (whatever the sink received, also on
// failure) and returns the read's status.
inline Status ReadRange(Store* store, const std::string& tenant, const std::string& call,
                        const std::string& id, uint64_t off, uint64_t len, std::string* out) {
  out->clear();
  return store->ReadRecording(tenant, call, id, off, len, [&](std::string_view b) {
    out->append(b);
    return Status::OK();
  });
}

using testutil::RawShard;  // tests/testutil/raw_shard.h

// The DEK of a tenant (internal id, key version), read from the newest
// keyring in a closed store's key directory (empty if it cannot be).
inline SecretBytes TenantDek(const std::string& key_dir, uint64_t internal_id, uint32_t key_version) {
  FileKeyProviderOptions po;
  po.create_if_missing = false;
  auto kp = NewFileKeyProvider(key_dir, po);
  EXPECT_OK(kp);
  if (!kp.ok()) return {};
  auto gens = (*kp)->ListKeyrings();
  EXPECT_OK(gens);
  if (!gens.ok() || gens->empty()) return {};
  auto bytes = (*kp)->ReadKeyring(gens->back());
  EXPECT_OK(bytes);
  if (!bytes.ok()) return {};
  auto ring = Keyring::Unseal(kp->get(), *bytes);
  EXPECT_OK(ring);
  if (!ring.ok()) return {};
  const SecretBytes* dek = ring->Find(internal_id, key_version);
  EXPECT_NE(dek, nullptr);
  return dek ? dek->Clone() : SecretBytes();
}

// The chunk keys of every recording stored in a family, by
// call hash (16) + recording hash (16), in chunk order.
inline std::map<std::string, std::vector<std::string>> ChunkGroups(const RawShard& raw,
                                                                   const std::string& cf_name) {
  std::map<std::string, std::vector<std::string>> groups;
  const size_t key_size = 1 + 2 * format::kHashBytes + 4;
  for (auto& k : raw.Keys(cf_name, std::string(1, format::kRecordingChunkPrefix))) {
    EXPECT_EQ(k.size(), key_size);
    groups[k.substr(1, 2 * format::kHashBytes)].push_back(k);
  }
  return groups;
}

// The chunk keys of the one recording stored with exactly `chunks` chunks.
inline std::vector<std::string> ChunksOfSize(const std::map<std::string, std::vector<std::string>>& groups,
                                             size_t chunks) {
  std::vector<std::string> found;
  int n = 0;
  for (const auto& [name, keys] : groups) {
    if (keys.size() == chunks) {
      found = keys;
      ++n;
    }
  }
  EXPECT_EQ(n, 1) << "recordings with " << chunks << " chunks";
  return found;
}

inline std::string ManifestKeyOf(const std::string& chunk_key) {
  return std::string(1, format::kRecordingManifestPrefix) + chunk_key.substr(1, 2 * format::kHashBytes);
}

// Files under `dir` whose name ends with `suffix`, with their sizes.
inline std::map<std::string, uint64_t> FilesEndingWith(const std::string& dir, const std::string& suffix) {
  std::map<std::string, uint64_t> out;
  for (const auto& f : testutil::ListFiles(dir)) {
    if (f.size() >= suffix.size() && f.compare(f.size() - suffix.size(), suffix.size(), suffix) == 0) {
      std::error_code ec;
      out[f] = std::filesystem::file_size(f, ec);
    }
  }
  return out;
}

inline uint64_t TotalSize(const std::map<std::string, uint64_t>& files) {
  uint64_t n = 0;
  for (const auto& [f, s] : files) n += s;
  return n;
}

// "file: needle#i" for every needle found in any file under `dir`.
inline std::vector<std::string> ScanTree(const std::string& dir, const std::vector<std::string>& needles,
                                         uint64_t* bytes_scanned = nullptr) {
  std::vector<std::string> hits;
  uint64_t total = 0;
  for (const auto& f : testutil::ListFiles(dir)) {
    std::string data = testutil::ReadFile(f);
    total += data.size();
    for (size_t i = 0; i < needles.size(); ++i) {
      if (::memmem(data.data(), data.size(), needles[i].data(), needles[i].size()) != nullptr) {
        hits.push_back(f + ": needle #" + std::to_string(i));
      }
    }
  }
  if (bytes_scanned) *bytes_scanned = total;
  return hits;
}

// --- Child processes --------------------------------------------------------
// A child re-executes this test binary running one (DISABLED_) test, with
// extra environment variables, and reports to the parent over a pipe whose
// write end is CV_REC_PIPE_FD. A fresh process (not a bare fork) so that
// RocksDB's thread pools and the child's peak memory start from scratch.
struct Child {
  pid_t pid = -1;
  int fd = -1;  // read end
  std::string buffered;

  // The next line, or nullopt at end of file or after `timeout_ms`.
  std::optional<std::string> ReadLine(int timeout_ms) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    for (;;) {
      size_t nl = buffered.find('\n');
      if (nl != std::string::npos) {
        std::string line = buffered.substr(0, nl);
        buffered.erase(0, nl + 1);
        return line;
      }
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                            deadline - std::chrono::steady_clock::now())
                            .count();
      if (left <= 0) return std::nullopt;
      pollfd p{fd, POLLIN, 0};
      int r = ::poll(&p, 1, static_cast<int>(left));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) return std::nullopt;
      char buf[4096];
      ssize_t n = ::read(fd, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return std::nullopt;
      buffered.append(buf, static_cast<size_t>(n));
    }
  }
  // Sends `sig` (if not 0) and reaps the child; returns the wait status.
  int KillAndWait(int sig) {
    if (pid <= 0) return -1;
    if (sig != 0) ::kill(pid, sig);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    pid = -1;
    if (fd >= 0) ::close(fd);
    fd = -1;
    return status;
  }
  ~Child() {
    if (pid > 0) KillAndWait(SIGKILL);
  }
};

inline Child SpawnSelf(const std::string& test_name, const std::map<std::string, std::string>& vars) {
  Child c;
  int p[2];
  if (::pipe(p) != 0) {
    ADD_FAILURE() << "pipe: " << std::strerror(errno);
    return c;
  }
  // Everything the child needs is built before fork: after it, only execve.
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string s(*e);
    std::string name = s.substr(0, s.find('='));
    if (name == "CV_REC_PIPE_FD" || vars.count(name)) continue;
    env_strings.push_back(std::move(s));
  }
  for (const auto& [k, v] : vars) env_strings.push_back(k + "=" + v);
  env_strings.push_back("CV_REC_PIPE_FD=" + std::to_string(p[1]));
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::string exe = "/proc/self/exe";
  std::string filter = "--gtest_filter=" + test_name;
  std::string disabled = "--gtest_also_run_disabled_tests";
  std::vector<char*> argv = {exe.data(), filter.data(), disabled.data(), nullptr};
  ::fflush(nullptr);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::close(p[0]);
    ::execve(exe.c_str(), argv.data(), envp.data());
    ::_exit(127);
  }
  ::close(p[1]);
  if (pid < 0) {
    ADD_FAILURE() << "fork: " << std::strerror(errno);
    ::close(p[0]);
    return c;
  }
  c.pid = pid;
  c.fd = p[0];
  return c;
}

// In a child: whether this process is one, and its report channel.
inline bool IsChild() { return std::getenv("CV_REC_PIPE_FD") != nullptr; }
inline void Report(const std::string& line) {
  const char* fd_s = std::getenv("CV_REC_PIPE_FD");
  if (fd_s == nullptr) return;
  int fd = std::atoi(fd_s);
  std::string l = line + "\n";
  size_t off = 0;
  while (off < l.size()) {
    ssize_t n = ::write(fd, l.data() + off, l.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    off += static_cast<size_t>(n);
  }
}
inline std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

// Peak and current resident memory of this process, in KiB (/proc/self/status).
inline uint64_t ProcStatusKb(const char* field) {
  std::string s = testutil::ReadFile("/proc/self/status");
  size_t at = s.find(std::string(field) + ":");
  if (at == std::string::npos) return 0;
  return std::strtoull(s.c_str() + at + std::strlen(field) + 1, nullptr, 10);
}

}  // namespace callvault::rectest

#endif  // CALLVAULT_TESTS_RECORDINGS_REC_UTIL_H_
