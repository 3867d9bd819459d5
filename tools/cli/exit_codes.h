// Exit codes of the callvault CLI, after BSD sysexits(3). The table in
// exit_codes.cc is the only place a callvault::Code becomes an exit code;
// docs/cli.md repeats it. Do not change existing values: scripts test them.
#ifndef CALLVAULT_TOOLS_CLI_EXIT_CODES_H_
#define CALLVAULT_TOOLS_CLI_EXIT_CODES_H_

#include "callvault/status.h"

namespace callvault::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitUsage = 64;        // EX_USAGE: bad flags or arguments
inline constexpr int kExitDataError = 65;    // EX_DATAERR: invalid input
inline constexpr int kExitNoInput = 66;      // EX_NOINPUT: not found, tenant purged
inline constexpr int kExitUnavailable = 69;  // EX_UNAVAILABLE: not supported, limit tripped
inline constexpr int kExitSoftware = 70;     // EX_SOFTWARE: internal error (a bug)
inline constexpr int kExitCantCreate = 73;   // EX_CANTCREAT: already exists
inline constexpr int kExitIoError = 74;      // EX_IOERR: file system or RocksDB I/O
inline constexpr int kExitTempFail = 75;     // EX_TEMPFAIL: the store is open in another process
inline constexpr int kExitProtocol = 76;     // EX_PROTOCOL: corruption, verify failure
inline constexpr int kExitNoPerm = 77;       // EX_NOPERM: wrong keys, keyring rollback
inline constexpr int kExitConfig = 78;       // EX_CONFIG: failed precondition

// The exit code for a failed `code` (kExitOk for Code::kOk).
int ExitCodeFor(Code code);

}  // namespace callvault::cli

#endif  // CALLVAULT_TOOLS_CLI_EXIT_CODES_H_
