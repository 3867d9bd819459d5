#include "tests/crash/crash_util.h"

#include <fcntl.h>
#include <poll.h>
#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <signal.h>
#include <execinfo.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "engine/keyring.h"
#include "tests/testutil/sanitizers.h"
#include "tests/testutil/testutil.h"

extern char** environ;

namespace callvault::crashtest {

namespace {

constexpr char kFatalBanner[] = "*** callvault crash suite: fatal signal, stack:";

// Async-signal-safe enough for a process that is dying anyway: backtrace()
// is preloaded below so that it does not allocate here on first use.
void DumpStackAndDie(int sig) {
  void* frames[64];
  const int n = ::backtrace(frames, 64);
  (void)!::write(2, "\n", 1);
  (void)!::write(2, kFatalBanner, sizeof(kFatalBanner) - 1);
  (void)!::write(2, "\n", 1);
  ::backtrace_symbols_fd(frames, n, 2);
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

struct FatalSignalStack {
  FatalSignalStack() {
    void* warm[1];
    (void)::backtrace(warm, 1);  // loads libgcc's unwinder now, not in the handler
    ::signal(SIGABRT, DumpStackAndDie);
#ifndef CV_SANITIZED
    // The sanitizers report these themselves, with more than a stack.
    for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL}) ::signal(sig, DumpStackAndDie);
#endif
  }
};
const FatalSignalStack g_fatal_signal_stack;

bool ParseNumbered(const std::string& name, const std::string& prefix, uint64_t* out) {
  if (name.size() <= prefix.size() || name.compare(0, prefix.size(), prefix) != 0) return false;
  uint64_t v = 0;
  for (size_t i = prefix.size(); i < name.size(); ++i) {
    if (name[i] < '0' || name[i] > '9') return false;
    v = v * 10 + static_cast<uint64_t>(name[i] - '0');
  }
  *out = v;
  return true;
}

void SplitLines(std::string* partial, std::vector<std::string>* lines) {
  size_t start = 0;
  for (size_t nl; (nl = partial->find('\n', start)) != std::string::npos; start = nl + 1) {
    lines->push_back(partial->substr(start, nl - start));
  }
  partial->erase(0, start);
}

}  // namespace

const char* FatalSignalBanner() { return kFatalBanner; }

Child Spawn(const std::map<std::string, std::string>& env, const std::string& log_path) {
  int p[2];
  if (::pipe(p) != 0) std::abort();
  // Everything the child needs is built before fork: between fork and exec
  // only async-signal-safe calls are allowed.
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string s(*e);
    std::string key = s.substr(0, s.find('='));
    if (env.count(key) || key == kEnvFd) continue;
    env_strings.push_back(std::move(s));
  }
  for (const auto& [k, v] : env) env_strings.push_back(k + "=" + v);
  env_strings.push_back(std::string(kEnvFd) + "=" + std::to_string(p[1]));
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::string a0 = "/proc/self/exe", a1 = "--gtest_filter=CrashChild.DISABLED_Run",
              a2 = "--gtest_also_run_disabled_tests";
  char* argv[] = {a0.data(), a1.data(), a2.data(), nullptr};
  int log = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log < 0) std::abort();

  pid_t pid = ::fork();
  if (pid < 0) std::abort();
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive the test
    ::close(p[0]);
    ::dup2(log, 1);
    ::dup2(log, 2);
    ::execve("/proc/self/exe", argv, envp.data());
    ::_exit(127);
  }
  ::close(log);
  ::close(p[1]);
  ::fcntl(p[0], F_SETFD, FD_CLOEXEC);
  return Child{pid, p[0]};
}

namespace {
int g_report_fd = -2;  // -2: not yet read from the environment
}  // namespace

bool SingleThreaded() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("Threads:", 0) == 0) return std::strtol(line.c_str() + 8, nullptr, 10) == 1;
  }
  return false;
}

Child Fork(const std::function<int()>& body, const std::string& log_path) {
  if (!SingleThreaded()) {
    std::fprintf(stderr, "crashtest::Fork: the parent has more than one thread\n");
    std::abort();
  }
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) std::abort();
  int log = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log < 0) std::abort();
  std::fflush(nullptr);  // nothing buffered in the parent is written twice
  pid_t pid = ::fork();
  if (pid < 0) std::abort();
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive the test
    ::close(p[0]);
    ::dup2(log, 1);
    ::dup2(log, 2);
    ::close(log);
    g_report_fd = p[1];
    const int rc = body();
    std::fflush(nullptr);
    ::_exit(rc);
  }
  ::close(log);
  ::close(p[1]);
  return Child{pid, p[0]};
}

std::vector<std::string> ReadAllLines(const Child& child, int timeout_s) {
  std::string partial;
  std::vector<std::string> lines;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  bool killed = false;
  while (ReadLinesFor(child.fd, 1000, &partial, &lines)) {
    if (!killed && std::chrono::steady_clock::now() > deadline) {
      ::kill(child.pid, SIGKILL);
      killed = true;
    }
  }
  if (!partial.empty()) lines.push_back(partial);  // a line cut short (never expected)
  if (killed) lines.push_back("X timeout: the child ran for " + std::to_string(timeout_s) + " s");
  return lines;
}

bool ReadLinesFor(int fd, int timeout_ms, std::string* partial, std::vector<std::string>* lines) {
  struct pollfd pfd = {fd, POLLIN, 0};
  int r = ::poll(&pfd, 1, timeout_ms);
  if (r < 0) return errno == EINTR;
  if (r == 0) return true;
  char buf[4096];
  ssize_t n = ::read(fd, buf, sizeof buf);
  if (n < 0) return errno == EINTR || errno == EAGAIN;
  if (n == 0) return false;
  partial->append(buf, static_cast<size_t>(n));
  SplitLines(partial, lines);
  return true;
}

int WaitChild(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) std::abort();
  }
  return status;
}

bool KilledBySigkill(int s) { return WIFSIGNALED(s) && WTERMSIG(s) == SIGKILL; }

std::string DescribeWait(int s) {
  if (WIFEXITED(s)) return "exited with status " + std::to_string(WEXITSTATUS(s));
  if (WIFSIGNALED(s)) return std::string("killed by signal ") + ::strsignal(WTERMSIG(s));
  return "wait status " + std::to_string(s);
}

void ReportLine(const std::string& line) {
  if (g_report_fd == -2) {
    const char* v = std::getenv(kEnvFd);
    g_report_fd = v ? std::atoi(v) : -1;
  }
  const int fd = g_report_fd;
  if (fd < 0) return;
  std::string l = line + "\n";
  const char* p = l.data();
  size_t left = l.size();
  while (left > 0) {
    ssize_t n = ::write(fd, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      std::abort();
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
}

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

KeyDirFiles ScanKeyDir(const std::string& dir) {
  KeyDirFiles f;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    const std::string n = e.path().filename().string();
    uint64_t g;
    if (ParseNumbered(n, "KEK-", &g)) {
      f.keks.push_back(static_cast<uint32_t>(g));
    } else if (ParseNumbered(n, "KEYRING-", &g)) {
      f.keyrings.push_back(g);
    } else if (n != "SIGNING-KEY" && n != "LOCK" &&  // LOCK: the writer lock
               n != "TOMBSTONES" &&                  // the tombstone log (no key)
               n != "RESTORES") {                    // the restore ledger (no key)
      f.other.push_back(n);
    }
  }
  std::sort(f.keks.begin(), f.keks.end());
  std::sort(f.keyrings.begin(), f.keyrings.end());
  return f;
}

bool KeyringView::Has(uint64_t internal_id) const {
  for (const auto& d : deks) {
    if (d.first == internal_id) return true;
  }
  return false;
}

Result<KeyringView> ReadNewestKeyring(const std::string& key_dir) {
  CV_ASSIGN_OR_RETURN(auto kp, NewFileKeyProvider(key_dir, {.create_if_missing = false}));
  CV_ASSIGN_OR_RETURN(auto gens, kp->ListKeyrings());
  if (gens.empty()) return Status::NotFound("no keyring");
  CV_ASSIGN_OR_RETURN(std::string bytes, kp->ReadKeyring(gens.back()));
  CV_ASSIGN_OR_RETURN(Keyring k, Keyring::Unseal(kp.get(), bytes));
  KeyringView v;
  v.kek_generation = k.kek_generation;
  v.generation = k.generation;
  for (const auto& [id, dek] : k.deks) v.deks.push_back(id);
  return v;
}

Result<std::vector<std::string>> ListFamilies(const std::string& path) {
  std::vector<std::string> names;
  rocksdb::Status s = testutil::ListLiveColumnFamilies(path, &names);
  if (!s.ok()) return Status::IOError("ListColumnFamilies " + path + ": " + s.ToString());
  std::vector<std::string> out;
  for (auto& n : names) {
    if (n != rocksdb::kDefaultColumnFamilyName) out.push_back(std::move(n));
  }
  return out;
}

KeyCheck CheckKeysAndFamilies(Store& st, const std::string& key_dir) {
  KeyCheck out;
  auto problem = [&](std::string m) { out.problems.push_back(std::move(m)); };
  auto tenants = st.ListTenants();
  if (!tenants.ok()) {
    problem("ListTenants: " + tenants.status().ToString());
    return out;
  }
  std::set<std::pair<uint64_t, uint32_t>> live_keys;
  std::set<std::pair<uint32_t, std::string>> live_families;
  for (const auto& t : *tenants) {
    if (t.state == TenantState::kActive) {
      live_keys.emplace(t.internal_id, t.key_version);
      live_families.emplace(t.shard, t.column_family);
    } else if (t.state != TenantState::kPurged) {
      problem("tenant " + t.tenant_id + " left " + TenantStateName(t.state) + " after recovery");
    }
  }
  KeyDirFiles files = ScanKeyDir(key_dir);
  out.stray = files.other;
  if (files.keks.size() != 1) problem(std::to_string(files.keks.size()) + " KEK files, not 1");
  if (files.keyrings.size() != 1) {
    problem(std::to_string(files.keyrings.size()) + " keyring generations, not 1");
  }
  auto ring = ReadNewestKeyring(key_dir);
  if (!ring.ok()) {
    problem("newest keyring: " + ring.status().ToString());
  } else {
    if (!files.keks.empty() && ring->kek_generation != files.keks.back()) {
      problem("keyring sealed under KEK " + std::to_string(ring->kek_generation) +
              ", not under the one KEK file " + std::to_string(files.keks.back()));
    }
    std::set<std::pair<uint64_t, uint32_t>> ring_keys(ring->deks.begin(), ring->deks.end());
    for (const auto& k : ring_keys) {
      if (!live_keys.count(k))
        problem("keyring holds a DEK of internal id " + std::to_string(k.first) +
                ", which is not live");
    }
    for (const auto& k : live_keys) {
      if (!ring_keys.count(k))
        problem("live internal id " + std::to_string(k.first) + " has no DEK");
    }
  }
  std::set<std::pair<uint32_t, std::string>> families;
  const auto paths = st.ShardPaths();
  for (uint32_t i = 0; i < paths.size(); ++i) {
    auto names = ListFamilies(paths[i]);
    if (!names.ok()) {
      problem(names.status().ToString());
      continue;
    }
    for (const auto& n : *names) families.emplace(i, n);
  }
  for (const auto& f : families) {
    if (!live_families.count(f))
      problem("shard " + std::to_string(f.first) + " holds family " + f.second +
              " of no live tenant");
  }
  for (const auto& f : live_families) {
    if (!families.count(f))
      problem("live family " + f.second + " missing from shard " + std::to_string(f.first));
  }
  return out;
}

uint64_t SeedFromEnv() {
  std::string s = Env("CALLVAULT_SEED");
  if (!s.empty()) return std::strtoull(s.c_str(), nullptr, 10);
  return std::random_device{}() ^ (static_cast<uint64_t>(std::random_device{}()) << 32);
}

int64_t EnvInt(const char* name, int64_t dflt) {
  std::string s = Env(name);
  return s.empty() ? dflt : std::strtoll(s.c_str(), nullptr, 10);
}

bool SoakMode() {
  std::string s = Env("CALLVAULT_SOAK");
  return !s.empty() && s != "0";
}

std::string Tail(const std::string& path, size_t max_bytes) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  std::string all = ss.str();
  return all.size() > max_bytes ? all.substr(all.size() - max_bytes) : all;
}

}  // namespace callvault::crashtest
