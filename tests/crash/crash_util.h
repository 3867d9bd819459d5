// Helpers shared by the crash suites (testing.md T1, T3): child processes
// that can be SIGKILLed, a line protocol from child to parent, and
// inspection of the key directory.
//
// A child is either this test binary re-executed (Spawn: fork + exec of
// /proc/self/exe) running only the test CrashChild.DISABLED_Run, which reads
// its parameters from the environment, or a bare fork (Fork) running a
// function of the parent's image. Exec is needed when the parent has RocksDB
// background threads (its own verification opens): a forked copy of a
// multi-threaded process has none of them, so flushes and compactions would
// never run in the child and locks held at fork time would never be freed.
// Fork is for a parent that never opened a store and has one thread (it
// checks): cheaper, and the child starts with the parent's state in memory.
#ifndef CALLVAULT_TESTS_CRASH_CRASH_UTIL_H_
#define CALLVAULT_TESTS_CRASH_CRASH_UTIL_H_

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "callvault/key_provider.h"
#include "callvault/status.h"
#include "callvault/store.h"

namespace callvault::crashtest {

// Environment variables of the child protocol.
inline constexpr char kEnvMode[] = "CALLVAULT_CRASH_MODE";  // set only in children
inline constexpr char kEnvFd[] = "CALLVAULT_CRASH_FD";      // write end of the report pipe

struct Child {
  pid_t pid = -1;
  int fd = -1;  // read end of the report pipe
};

// Every process of a crash suite (the test itself and its children) writes
// its stack to stderr when it dies of SIGABRT (and, outside sanitizer
// builds, SIGSEGV, SIGBUS, SIGFPE or SIGILL), then dies of the same signal:
// an assertion inside RocksDB (Debian's 7.8.3 keeps them) says where it
// fired. Installed at load time by crash_util.cc; this returns the banner
// the dump starts with, for the test that checks it.
const char* FatalSignalBanner();

// Starts a child running CrashChild.DISABLED_Run with `env` added to this
// process's environment. Its stdout and stderr go to `log_path`.
Child Spawn(const std::map<std::string, std::string>& env, const std::string& log_path);

// Starts a child by fork alone: it reports on a fresh pipe (ReportLine),
// writes stdout and stderr to `log_path`, runs `body` and _exits with its
// return value (no atexit handlers, no gtest teardown). The parent must
// have exactly one thread (SingleThreaded()); aborts otherwise, as a copy of
// a multi-threaded process may hold locks nobody will release.
Child Fork(const std::function<int()>& body, const std::string& log_path);
// True if this process has exactly one thread (/proc/self/status).
bool SingleThreaded();

// Reads every line the child sends until EOF (the child is dead or exited).
// A child still running after `timeout_s` is SIGKILLed and the line
// "X timeout" appended.
std::vector<std::string> ReadAllLines(const Child& child, int timeout_s = 300);

// Reads whatever is available within `timeout_ms`; appends complete lines to
// `lines` and keeps a partial one in `partial`. false at EOF.
bool ReadLinesFor(int fd, int timeout_ms, std::string* partial, std::vector<std::string>* lines);

// waitpid; returns the raw status.
int WaitChild(pid_t pid);
bool KilledBySigkill(int wait_status);
std::string DescribeWait(int wait_status);

// Child side: writes one line (adds '\n') to the report pipe. A line shorter
// than PIPE_BUF is written atomically, so a parent never sees half of one.
void ReportLine(const std::string& line);
// Child side: the value of an environment variable, "" if unset.
std::string Env(const char* name);

// Files of the key directory, by kind.
struct KeyDirFiles {
  std::vector<uint32_t> keks;      // KEK-<n>
  std::vector<uint64_t> keyrings;  // KEYRING-<n>
  std::vector<std::string> other;  // anything else but SIGNING-KEY
};
KeyDirFiles ScanKeyDir(const std::string& dir);

// The newest keyring generation in `dir`, unsealed (through engine/keyring.h)
// with a provider of its own: the DEK ids it holds and its KEK generation.
struct KeyringView {
  uint32_t kek_generation = 0;
  uint64_t generation = 0;
  std::vector<std::pair<uint64_t, uint32_t>> deks;  // (internal id, key version)
  bool Has(uint64_t internal_id) const;
};
Result<KeyringView> ReadNewestKeyring(const std::string& key_dir);

// Column families listed in the MANIFEST of the RocksDB at `path`, without
// "default".
Result<std::vector<std::string>> ListFamilies(const std::string& path);

// The store-wide invariants of keys and column families after recovery:
// no tenant left CREATING or PURGING; exactly one KEK-<n> and one
// KEYRING-<n> in the key directory, the keyring sealed under that KEK;
// the keyring's DEKs are exactly the live tenants' (internal id, key
// version); the column families of every shard (from its MANIFEST) are
// exactly the live tenants'. Files other than those and SIGNING-KEY go to
// `stray`.
struct KeyCheck {
  std::vector<std::string> problems;
  std::vector<std::string> stray;
};
KeyCheck CheckKeysAndFamilies(Store& store, const std::string& key_dir);

// A seed from CALLVAULT_SEED, else random; printed by the caller.
uint64_t SeedFromEnv();
// Integer environment knob with a default.
int64_t EnvInt(const char* name, int64_t dflt);
bool SoakMode();

// The last `max_bytes` of a file, for failure messages.
std::string Tail(const std::string& path, size_t max_bytes = 2000);

}  // namespace callvault::crashtest

#endif  // CALLVAULT_TESTS_CRASH_CRASH_UTIL_H_
