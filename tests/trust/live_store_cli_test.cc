// T9, issue 10 items 2 and 7, through the callvault binary as an operator
// runs it:
// - while another process (this binary run again as CliHelper.Holder)
//   holds the store open for writing and keeps writing, `stats`, `verify`,
//   `tenant list`, `tenant show`, `call get`, `call list`, `receipts
//   verify` and `audit verify` succeed (they open read-only), and a command
//   that writes exits 75 (EX_TEMPFAIL) naming the holder's pid and saying
//   that read-only commands work meanwhile;
// - the CLI disables core dumps for itself first thing: /proc/<pid>/limits
//   of a running CLI shows a core size limit of 0 (soft and hard) although
//   it was started with an unlimited one, and (run as another user, where
//   /proc shows it) the process is not dumpable;
// - DisableCoreDumps() (callvault/hardening.h) does the same for an
//   embedding process: a child that calls it and then aborts leaves no core.
// CALLVAULT_CLI=/path/to/callvault runs the CLI checks against another
// build (e.g. the one before the fix).
#include <gtest/gtest.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include <array>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "callvault/hardening.h"
#include "callvault/store.h"
#include "tests/testutil/process.h"
#include "tests/testutil/testutil.h"
#include "tests/trust/trust_util.h"

namespace callvault {
namespace {

namespace fs = std::filesystem;
constexpr int64_t kT0 = 1'767'225'600'000'000;

std::string Cli() {
  const char* v = std::getenv("CALLVAULT_CLI");
  return v != nullptr && *v != '\0' ? v : CALLVAULT_BIN;
}

// Runs the CLI with `args`; stdout and stderr captured through files.
testutil::ProcessOutcome RunCli(const std::string& dir, const std::vector<std::string>& args) {
  std::vector<std::string> all{Cli()};
  all.insert(all.end(), args.begin(), args.end());
  return testutil::RunProcess(all, dir);
}

// The holder: opens the store writable and puts a call into acme every
// few milliseconds, until $CV_CLI_STOP exists; writes "ready" to
// $CV_CLI_READY once it holds the store.
TEST(CliHelper, Holder) {
  const std::string db = trust::Env("CV_CLI_DB");
  if (db.empty()) GTEST_SKIP() << "helper process for LiveStoreCli.ReadCommandsWorkWhileHeld";
  auto store = Store::Open(trust::StoreOptions(db + ".keys", false), db);
  if (!store.ok()) {
    fprintf(stderr, "holder: %s\n", store.status().ToString().c_str());
    ::_exit(2);
  }
  trust::AppendLine(trust::Env("CV_CLI_READY"), "ready");
  for (int i = 0; !fs::exists(trust::Env("CV_CLI_STOP")) && i < 100000; ++i) {
    if (!(*store)->PutCall("acme", testutil::MakeCall("held-" + std::to_string(i), kT0 + i)).ok()) {
      ::_exit(3);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  store->reset();
  ::_exit(0);
}

TEST(LiveStoreCli, ReadCommandsWorkWhileHeld) {
  testutil::TempDir tmp;
  const std::string db = tmp.Sub("db");
  {
    auto store = Store::Open(trust::StoreOptions(db + ".keys", false), db);
    ASSERT_OK(store);
    ASSERT_OK((*store)->CreateTenant({.tenant_id = "acme"}));
    ASSERT_OK((*store)->CreateTenant({.tenant_id = "gone"}));
    ASSERT_OK((*store)->PutCall("acme", testutil::MakeCall("first", kT0)));
    ASSERT_OK((*store)->PurgeTenant("gone"));
  }
  const std::string ready = tmp.Sub("ready"), stop = tmp.Sub("stop");
  pid_t holder = trust::SpawnHelper(
      "CliHelper.Holder", {"CV_CLI_DB=" + db, "CV_CLI_READY=" + ready, "CV_CLI_STOP=" + stop});
  ASSERT_GT(holder, 0);
  for (int waited = 0; !fs::exists(ready); ++waited) {
    if (waited > 1200 || ::waitpid(holder, nullptr, WNOHANG) != 0) {
      trust::AppendLine(stop, "stop");
      trust::Wait(holder);
      FAIL() << "the holder did not start";
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  const std::vector<std::vector<std::string>> reads = {
      {"stats"},
      {"verify"},
      {"tenant", "list"},
      {"tenant", "show", "acme"},
      {"call", "get", "acme", "first"},
      {"call", "list", "acme"},
      {"receipts", "verify"},
      {"audit", "verify"},
      {"--json", "stats"},
  };
  for (const auto& args : reads) {
    std::vector<std::string> full{"--db", db};
    full.insert(full.end(), args.begin(), args.end());
    auto r = RunCli(tmp.path(), full);
    EXPECT_EQ(r.exit, 0) << args[0] << (args.size() > 1 ? " " + args[1] : "") << ": " << r.err;
    EXPECT_EQ(r.err.find("opened read-only"), std::string::npos) << r.err;  // no noise
  }
  auto w = RunCli(tmp.path(), {"--db", db, "tenant", "create", "newcomer"});
  EXPECT_EQ(w.exit, 75) << w.err;
  EXPECT_NE(w.err.find("open for writing in another process (pid " + std::to_string(holder) + ")"),
            std::string::npos)
      << w.err;
  EXPECT_NE(w.err.find("only read"), std::string::npos) << w.err;
  trust::AppendLine(stop, "stop");
  const int status = trust::Wait(holder);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << trust::DescribeStatus(status);
  // Nothing was created by the refused command.
  auto list = RunCli(tmp.path(), {"--db", db, "--json", "tenant", "list"});
  EXPECT_EQ(list.exit, 0) << list.err;
  EXPECT_EQ(list.out.find("newcomer"), std::string::npos);
}

// The "Max core file size" soft and hard limits in /proc/<pid>/limits.
std::string CoreLimits(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/limits");
  for (std::string line; std::getline(f, line);) {
    if (line.rfind("Max core file size", 0) == 0) {
      std::istringstream in(line.substr(std::strlen("Max core file size")));
      std::string soft, hard;
      in >> soft >> hard;
      return soft + " " + hard;
    }
  }
  return "";
}

TEST(LiveStoreCli, CliDisablesCoreDumps) {
  testutil::TempDir tmp;
  // The CLI reads the call from stdin before it opens any store: it blocks
  // there, and we look at it from outside.
  int in[2];
  ASSERT_EQ(::pipe(in), 0);
  const bool as_nobody = ::geteuid() == 0;
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(in[0], 0);
    ::close(in[1]);
    struct rlimit big {};
    ::getrlimit(RLIMIT_CORE, &big);
    big.rlim_cur = big.rlim_max;  // as much as we may: the CLI must lower it
    ::setrlimit(RLIMIT_CORE, &big);
    // As an unprivileged user, /proc/<pid> of a dumpable process belongs
    // to that user, and of a non-dumpable one to root.
    if (as_nobody && (::setresgid(65534, 65534, 65534) != 0 || ::setresuid(65534, 65534, 65534) != 0)) {
      ::_exit(126);
    }
    std::string bin = Cli();
    const std::string db = tmp.Sub("db");
    ::execl(bin.c_str(), bin.c_str(), "--db", db.c_str(), "call", "put", "acme", "-",
            static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::close(in[0]);
  ASSERT_GT(pid, 0);
  struct rlimit parent {};
  ::getrlimit(RLIMIT_CORE, &parent);
  ASSERT_NE(parent.rlim_max, 0u) << "this test needs a non-zero hard core limit to start from";
  std::string limits;
  bool exec_seen = false;
  for (int i = 0; i < 100; ++i) {
    std::error_code ec;
    const std::string exe = fs::read_symlink("/proc/" + std::to_string(pid) + "/exe", ec).string();
    exec_seen = exec_seen || (!ec && exe.find("callvault") != std::string::npos);
    limits = CoreLimits(pid);
    if (exec_seen && limits == "0 0") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  struct stat st {};
  const bool stat_ok = ::stat(("/proc/" + std::to_string(pid) + "/status").c_str(), &st) == 0;
  ::close(in[1]);  // EOF: the CLI stops waiting
  const int status = trust::Wait(pid);
  EXPECT_TRUE(WIFEXITED(status)) << trust::DescribeStatus(status);
  EXPECT_TRUE(exec_seen) << "the CLI did not start";
  EXPECT_EQ(limits, "0 0") << "RLIMIT_CORE of the running CLI (soft hard)";
  if (as_nobody) {
    ASSERT_TRUE(stat_ok);
    EXPECT_EQ(st.st_uid, 0u) << "/proc/<pid> of the CLI belongs to its user: it is dumpable";
  }
}

TEST(Hardening, DisableCoreDumpsLeavesNoCore) {
  testutil::TempDir tmp;
  EXPECT_FALSE(fs::exists(tmp.Sub("core")));
  pid_t pid = ::fork();
  if (pid == 0) {
    if (::chdir(tmp.path().c_str()) != 0) ::_exit(2);
    struct rlimit big {};
    ::getrlimit(RLIMIT_CORE, &big);
    big.rlim_cur = big.rlim_max;
    ::setrlimit(RLIMIT_CORE, &big);
    if (!DisableCoreDumps().ok()) ::_exit(3);
    if (!CoreDumpsDisabled()) ::_exit(4);
    struct rlimit now {};
    ::getrlimit(RLIMIT_CORE, &now);
    if (now.rlim_cur != 0 || now.rlim_max != 0) ::_exit(5);
    if (::prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != 0) ::_exit(6);
    // Nor can it be raised again.
    now.rlim_cur = now.rlim_max = 1 << 20;
    if (::setrlimit(RLIMIT_CORE, &now) == 0 && ::geteuid() != 0) ::_exit(7);
    if (!DisableCoreDumps().ok()) ::_exit(8);  // idempotent
    std::abort();
  }
  const int status = trust::Wait(pid);
  ASSERT_TRUE(WIFSIGNALED(status)) << trust::DescribeStatus(status);
  EXPECT_EQ(WTERMSIG(status), SIGABRT);
  EXPECT_FALSE(WCOREDUMP(status)) << "a core was dumped";
  for (const auto& e : fs::directory_iterator(tmp.path())) {
    EXPECT_EQ(e.path().filename().string().rfind("core", 0), std::string::npos) << e.path();
  }
}

}  // namespace
}  // namespace callvault
