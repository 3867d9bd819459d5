// The demo: builds a realistic synthetic store and walks its whole life
// (create, ingest, list, fetch, recordings, stats, purge, verify, erasure,
// retention, receipts and audit), printing each step as the CLI command a
// user would type and its output.
#ifndef CALLVAULT_TOOLS_CLI_DEMO_H_
#define CALLVAULT_TOOLS_CLI_DEMO_H_

#include <cstdint>
#include <string>

#include "tools/cli/command.h"

namespace callvault::cli {

struct DemoConfig {
  // Where the store (<dir>/store) and its keys (<dir>/store.keys) go.
  // Default: a new directory /tmp/callvault-demo-XXXXXX.
  std::string dir;
  uint32_t tenants = 10;  // Default: 10 (at least 2: one is purged)
  uint32_t calls = 5000;  // Default: 5,000
  uint64_t seed = 42;     // Default: 42
  // workload::GeneratorOptions::transcript_scale. Default: 1.0 (product sizes).
  double transcript_scale = 1.0;
  // Calls per PutCalls batch (one synced write each). Default: 100.
  uint32_t batch = 100;
};

// Runs the demo; prints on ctx.out(), progress on ctx.err().
RunResult RunDemo(const DemoConfig& config, Context& ctx);

}  // namespace callvault::cli

#endif  // CALLVAULT_TOOLS_CLI_DEMO_H_
