#include "tests/testutil/process.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <signal.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

namespace callvault::testutil {

std::string ReadWholeFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

int RunShell(const std::string& command, std::string* out) {
  std::fflush(nullptr);
  FILE* p = ::popen(command.c_str(), "r");
  if (p == nullptr) return -1;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out->append(buf, n);
  const int st = ::pclose(p);
  return st != -1 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

ProcessOutcome RunProcess(const std::vector<std::string>& argv, const std::string& scratch_dir,
                          const std::string& stdin_path) {
  ProcessOutcome o;
  if (argv.empty()) return o;
  const std::string out_path = scratch_dir + "/.stdout", err_path = scratch_dir + "/.stderr";
  // Everything the child needs is built before fork: after it, only
  // async-signal-safe calls (the test may run threads).
  std::vector<std::string> words = argv;
  std::vector<char*> args;
  for (auto& w : words) args.push_back(w.data());
  args.push_back(nullptr);
  const std::string in_path = stdin_path.empty() ? "/dev/null" : stdin_path;
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid == 0) {
    const int in = ::open(in_path.c_str(), O_RDONLY);
    const int out = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    const int err = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (in < 0 || out < 0 || err < 0) ::_exit(126);
    ::dup2(in, 0);
    ::dup2(out, 1);
    ::dup2(err, 2);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  if (pid < 0) return o;
  int status = 0;
  pid_t w;
  do {
    w = ::waitpid(pid, &status, 0);
  } while (w < 0 && errno == EINTR);
  if (w != pid) return o;
  o.exit = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  o.out = ReadWholeFile(out_path);
  o.err = ReadWholeFile(err_path);
  return o;
}

std::string RunSelfChild(const std::string& test,
                         const std::vector<std::pair<std::string, std::string>>& env, bool quiet,
                         int timeout_s) {
  // Built before the fork: the child only calls async-signal-safe functions
  // (setenv aside, which a single-threaded child after fork may).
  // A name that matches no test would run nothing and exit 0: refuse it.
  bool known = false;
  const ::testing::UnitTest* u = ::testing::UnitTest::GetInstance();
  for (int i = 0; i < u->total_test_suite_count() && !known; ++i) {
    const ::testing::TestSuite* ts = u->GetTestSuite(i);
    for (int j = 0; j < ts->total_test_count() && !known; ++j) {
      known = test == std::string(ts->name()) + "." + ts->GetTestInfo(j)->name();
    }
  }
  if (!known) return "no such test: " + test;
  const std::string filter = "--gtest_filter=" + test;
  const char* verbose = std::getenv("CALLVAULT_CHILD_VERBOSE");
  quiet = quiet && (verbose == nullptr || *verbose != '1');
  const pid_t pid = ::fork();
  if (pid < 0) return "fork failed";
  if (pid == 0) {
    for (const auto& [k, v] : env) ::setenv(k.c_str(), v.c_str(), 1);
    if (quiet) {
      const int null = ::open("/dev/null", O_WRONLY);
      if (null >= 0) {
        ::dup2(null, 1);
        ::dup2(null, 2);
      }
    }
    ::execl("/proc/self/exe", "test-child", filter.c_str(), "--gtest_also_run_disabled_tests",
            static_cast<char*>(nullptr));
    ::_exit(127);
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  int status = 0;
  for (;;) {
    const pid_t w = ::waitpid(pid, &status, WNOHANG);
    if (w == pid) break;
    if (w < 0 && errno != EINTR) return "wait failed";
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      return "hang";
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  if (WIFSIGNALED(status)) return "signal " + std::to_string(WTERMSIG(status));
  return "exit " + std::to_string(WEXITSTATUS(status));
}

}  // namespace callvault::testutil
