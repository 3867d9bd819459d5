#include "tools/cli/exit_codes.h"

namespace callvault::cli {

int ExitCodeFor(Code code) {
  // The one table. Keep docs/cli.md ("Exit codes") in step.
  switch (code) {
    case Code::kOk:
      return kExitOk;
    case Code::kInvalidArgument:
      return kExitDataError;
    case Code::kNotFound:
      return kExitNoInput;
    case Code::kTenantPurged:
      return kExitNoInput;
    case Code::kAlreadyExists:
      return kExitCantCreate;
    case Code::kFailedPrecondition:
      return kExitConfig;
    case Code::kCorruption:
      return kExitProtocol;
    case Code::kIOError:
      return kExitIoError;
    case Code::kResourceExhausted:
      return kExitUnavailable;
    case Code::kNotSupported:
      return kExitUnavailable;
    case Code::kKeyError:
      return kExitNoPerm;
    case Code::kInternal:
      return kExitSoftware;
    case Code::kMoved:
      return kExitTempFail;  // retry at the store the message names
    case Code::kConflict:
      return kExitTempFail;  // read the call again and retry
    case Code::kOutOfRange:
      return kExitNoInput;  // the change feed events the token follows are gone: resync
  }
  return kExitSoftware;
}

}  // namespace callvault::cli
