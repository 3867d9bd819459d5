// Generated calls for engine tests: `n` calls of the workload generator
// (seeded, transcripts at `scale` of full size), renamed `prefix` + index
// unless `prefix` is empty. Tests that include this link callvault_workload.
#ifndef CALLVAULT_TESTS_TESTUTIL_CALLS_H_
#define CALLVAULT_TESTS_TESTUTIL_CALLS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "callvault/call.h"
#include "workload/workload.h"

namespace callvault::testutil {

inline std::vector<Call> GeneratedCalls(size_t n, uint64_t seed, const std::string& prefix = "",
                                        double scale = 0.05) {
  workload::GeneratorOptions o;
  o.seed = seed;
  o.transcript_scale = scale;
  workload::Generator g(o);
  std::vector<Call> calls = g.Batch(n);
  if (!prefix.empty()) {
    for (size_t i = 0; i < calls.size(); ++i) calls[i].call_id = prefix + std::to_string(i);
  }
  return calls;
}

}  // namespace callvault::testutil

#endif  // CALLVAULT_TESTS_TESTUTIL_CALLS_H_
