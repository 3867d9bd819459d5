// A fresh SoftHSM2 token per test: its own token directory and config file
// (SOFTHSM2_CONF points at it), initialised with the real softhsm2-util in a
// child process (fork/exec), and a PIN file of mode 0600.
#ifndef CALLVAULT_TESTS_PROVIDERS_SOFTHSM_H_
#define CALLVAULT_TESTS_PROVIDERS_SOFTHSM_H_

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "callvault/pkcs11_key_provider.h"
#include "tests/testutil/testutil.h"

namespace callvault::testutil {

inline constexpr char kSoftHsmModule[] = "/usr/lib/softhsm/libsofthsm2.so";
inline constexpr char kSoftHsmUtil[] = "/usr/bin/softhsm2-util";

// Runs argv[0] with argv, stdout/stderr to /dev/null; its exit status.
inline int RunQuiet(const std::vector<std::string>& argv) {
  pid_t pid = ::fork();
  if (pid == 0) {
    int null = ::open("/dev/null", O_WRONLY);
    ::dup2(null, 1);
    ::dup2(null, 2);
    std::vector<char*> a;
    for (const auto& s : argv) a.push_back(const_cast<char*>(s.c_str()));
    a.push_back(nullptr);
    ::execv(a[0], a.data());
    ::_exit(127);
  }
  int st = 0;
  ::waitpid(pid, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

class SoftHsmToken {
 public:
  explicit SoftHsmToken(const std::string& root, const std::string& label = "cv-test",
                        const std::string& pin = "1234")
      : tokens_(root + "/tokens"), conf_(root + "/softhsm2.conf"), pin_file_(root + "/pin"),
        label_(label) {
    ::mkdir(tokens_.c_str(), 0700);
    std::ofstream(conf_) << "directories.tokendir = " << tokens_
                         << "\nobjectstore.backend = file\nlog.level = ERROR\n";
    ::setenv("SOFTHSM2_CONF", conf_.c_str(), 1);
    ok_ = RunQuiet({kSoftHsmUtil, "--init-token", "--free", "--label", label, "--pin", pin,
                    "--so-pin", "5678"}) == 0;
    int fd = ::open(pin_file_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd >= 0) {
      const std::string line = pin + "\n";
      ok_ = ok_ && ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size());
      ::close(fd);
    }
  }
  bool ok() const { return ok_; }
  const std::string& tokens_dir() const { return tokens_; }
  const std::string& pin_file() const { return pin_file_; }
  const std::string& label() const { return label_; }

  Pkcs11KeyProviderOptions Options(const std::string& state_dir) const {
    Pkcs11KeyProviderOptions o;
    o.module_path = kSoftHsmModule;
    o.token_label = label_;
    o.pin_file = pin_file_;
    o.state_dir = state_dir;
    return o;
  }

 private:
  std::string tokens_, conf_, pin_file_, label_;
  bool ok_ = false;
};

}  // namespace callvault::testutil

#endif  // CALLVAULT_TESTS_PROVIDERS_SOFTHSM_H_
