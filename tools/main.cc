// callvault: main() only dispatches; the CLI is the library callvault_cli.
#include <iostream>

#include "callvault/hardening.h"
#include "tools/cli/cli.h"

int main(int argc, char** argv) {
  // Before anything holds plaintext: a core dump would write it out
  // (docs/operations.md, "Core dumps").
  callvault::Status hardened = callvault::DisableCoreDumps();
  if (!hardened.ok()) std::cerr << "callvault: warning: " << hardened.message() << '\n';
  return callvault::cli::RunCli(argc, argv, std::cout, std::cerr);
}
