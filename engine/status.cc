#include "callvault/status.h"

namespace callvault {

const char* CodeName(Code code) {
  switch (code) {
    case Code::kOk: return "ok";
    case Code::kInvalidArgument: return "invalid_argument";
    case Code::kNotFound: return "not_found";
    case Code::kAlreadyExists: return "already_exists";
    case Code::kFailedPrecondition: return "failed_precondition";
    case Code::kTenantPurged: return "tenant_purged";
    case Code::kCorruption: return "corruption";
    case Code::kIOError: return "io_error";
    case Code::kResourceExhausted: return "resource_exhausted";
    case Code::kKeyError: return "key_error";
    case Code::kInternal: return "internal";
    case Code::kNotSupported: return "not_supported";
    case Code::kMoved: return "moved";
    case Code::kConflict: return "conflict";
    case Code::kOutOfRange: return "out_of_range";
  }
  return "unknown";
}

std::string Status::ToString() const {
  if (ok()) return "ok";
  std::string s = CodeName(code_);
  if (!message_.empty()) {
    s += ": ";
    s += message_;
  }
  return s;
}

}  // namespace callvault
