// The entry point of the callvault CLI. main() (tools/main.cc) only calls
// RunCli; tests and other programs may call it too.
#ifndef CALLVAULT_TOOLS_CLI_CLI_H_
#define CALLVAULT_TOOLS_CLI_CLI_H_

#include <iosfwd>

namespace callvault::cli {

// Parses `argv`, runs the verb and returns the process exit code (see
// exit_codes.h). Data goes to `out`, messages and errors to `err`.
// Exception: `raw ldb` ends the process itself, because RocksDB's
// LDBTool::Run calls exit() with the tool's own status (but a bad argument
// ldb throws on, such as bad hex, is answered here: exit 65).
int RunCli(int argc, char** argv, std::ostream& out, std::ostream& err);

}  // namespace callvault::cli

#endif  // CALLVAULT_TOOLS_CLI_CLI_H_
