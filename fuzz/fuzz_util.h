// Shared by the libFuzzer targets: a check that aborts (a finding), and
// byte/string views.
#ifndef CALLVAULT_FUZZ_FUZZ_UTIL_H_
#define CALLVAULT_FUZZ_FUZZ_UTIL_H_

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

// A property of the code under test that does not hold: report and abort, so
// that libFuzzer saves the input as a crash.
#define FUZZ_CHECK(cond, what)                                                         \
  do {                                                                                 \
    if (!(cond)) {                                                                     \
      std::fprintf(stderr, "FUZZ_CHECK failed: %s: %s (%s:%d)\n", #cond, what, __FILE__, \
                   __LINE__);                                                          \
      std::abort();                                                                    \
    }                                                                                  \
  } while (0)

namespace callvault::fuzz {

inline std::string_view View(const uint8_t* data, size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}
inline const uint8_t* Bytes(std::string_view s) { return reinterpret_cast<const uint8_t*>(s.data()); }

}  // namespace callvault::fuzz

#endif  // CALLVAULT_FUZZ_FUZZ_UTIL_H_
