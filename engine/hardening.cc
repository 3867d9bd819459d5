#include "callvault/hardening.h"

#include <sys/prctl.h>
#include <sys/resource.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "engine/fs_util.h"

namespace callvault {

Status DisableCoreDumps() {
  std::string failed;
  struct rlimit none {};
  none.rlim_cur = 0;
  none.rlim_max = 0;
  if (::setrlimit(RLIMIT_CORE, &none) != 0) {
    failed = std::string("setrlimit(RLIMIT_CORE, 0): ") + std::strerror(errno);
  }
  if (::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
    if (!failed.empty()) failed += "; ";
    failed += std::string("prctl(PR_SET_DUMPABLE, 0): ") + std::strerror(errno);
  }
  if (!failed.empty()) return Status::IOError("cannot disable core dumps: " + failed);
  return Status::OK();
}

bool CoreDumpsDisabled() {
  struct rlimit r {};
  if (::getrlimit(RLIMIT_CORE, &r) != 0) return false;
  return r.rlim_cur == 0 && ::prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) == 0;
}

Status CheckStoreDirectories(const std::string& store) { return fsutil::CheckStoreTree(store); }

}  // namespace callvault
