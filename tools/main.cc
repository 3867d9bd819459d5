// callvault: main() only dispatches; the CLI is the library callvault_cli.
#include <iostream>

#include "tools/cli/cli.h"

int main(int argc, char** argv) { return callvault::cli::RunCli(argc, argv, std::cout, std::cerr); }
