// A real second process for tests: runs a binary (the callvault CLI,
// mostly) with stdout and stderr captured through files, as an operator's
// shell would see them.
#ifndef CALLVAULT_TESTS_TESTUTIL_PROCESS_H_
#define CALLVAULT_TESTS_TESTUTIL_PROCESS_H_

#include <string>
#include <utility>
#include <vector>

namespace callvault::testutil {

struct ProcessOutcome {
  // The exit code, or 128 + the signal that ended the process (a shell's
  // convention); -1 if it could not be started or waited for.
  int exit = -1;
  std::string out, err;
};

// Runs argv[0] with `argv` and waits for it. stdin comes from `stdin_path`
// (/dev/null when empty); stdout and stderr go through `scratch_dir`/.stdout
// and .stderr, which are overwritten.
ProcessOutcome RunProcess(const std::vector<std::string>& argv, const std::string& scratch_dir,
                          const std::string& stdin_path = "");

// Runs `command` with /bin/sh (the caller quotes and redirects), appends
// its stdout to `*out`; returns its exit code, or -1 if it could not be run
// or died of a signal.
int RunShell(const std::string& command, std::string* out);

// Runs one (usually DISABLED_) test of this very test binary in a child
// process (fork, then exec of /proc/self/exe with --gtest_filter=`test` and
// --gtest_also_run_disabled_tests), with `env` set in the child: for a test
// that expects a crash, an abort or a hang to be caught where it cannot
// take the parent with it. `quiet`: the child's stdout (and stderr) go to
// /dev/null. Returns "exit N", "signal N", or "hang" (killed after
// `timeout_s` seconds), or "no such test: ..." when `test` names no test
// of this binary (the child would run nothing and exit 0).
std::string RunSelfChild(const std::string& test,
                         const std::vector<std::pair<std::string, std::string>>& env,
                         bool quiet = true, int timeout_s = 60);

// The whole content of a file ("" if it cannot be read).
std::string ReadWholeFile(const std::string& path);

}  // namespace callvault::testutil

#endif  // CALLVAULT_TESTS_TESTUTIL_PROCESS_H_
