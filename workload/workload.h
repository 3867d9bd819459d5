// A seeded generator of realistic calls, for the demo, tests and benchmarks.
//
// The mix follows product.md: about 60% short dialer calls (median 80 s,
// 2 participants, ~2 KB transcript), 35% meetings (43 +- 15 min, 2-8
// participants, ~65 KB transcript, ~3 KB summary) and 5% long meetings
// (90-180 min, ~250 KB transcript). Transcript words are drawn with a Zipf
// distribution (s = 1.07) over a fixed shuffled ranking of an English word
// list, so compression behaves like it does on speech.
//
// Deterministic: the same options (seed included) give the same calls. The
// generator uses its own PRNG and distributions, not the implementation-
// defined ones of <random>, so standard libraries do not change the output.
// Every string respects callvault/limits.h.
//
// Thread safety: a Generator is not synchronised; use one per thread (give
// each a different seed). Loading the word list is thread-safe and cached.
#ifndef CALLVAULT_WORKLOAD_WORKLOAD_H_
#define CALLVAULT_WORKLOAD_WORKLOAD_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "callvault/call.h"

namespace callvault::workload {

// 2026-01-01T00:00:00Z in microseconds since the Unix epoch.
inline constexpr int64_t kDefaultStartUs = 1767225600LL * 1000000;

struct GeneratorOptions {
  uint64_t seed = 42;
  // One word a line; lower-case alphabetic words of at most 12 letters are
  // kept. A missing or unusable file falls back to ~200 built-in words.
  std::string words_path = "/usr/share/dict/words";
  // started_at is uniform in [start_us, start_us + span_days).
  int64_t start_us = kDefaultStartUs;
  int64_t span_days = 365;
  // Multiplies the number of transcript words (0.05 for fast tests). The
  // call's duration and segment timing are unchanged.
  double transcript_scale = 1.0;
  // Owner i ("u-<i>", i < owners) always works in workspace "ws-<i % workspaces>"
  // and team "t-<i % teams>" (sometimes with a second team). Zero counts as one.
  uint32_t owners = 25;
  uint32_t workspaces = 3;
  uint32_t teams = 5;
  // The size mix; meetings take the rest.
  double dialer_fraction = 0.60;
  double long_fraction = 0.05;
  // Internal participants' e-mail domain.
  std::string company_domain = "brightwave.com";
  std::string company_name = "Brightwave";
};

// The size class of a generated call (kept out of Call; derivable from
// source_system and duration, exposed for tests and benchmarks).
enum class CallKind : uint8_t { kDialer = 0, kMeeting = 1, kLongMeeting = 2 };

class Generator {
 public:
  explicit Generator(GeneratorOptions options = {});
  ~Generator();
  Generator(Generator&&) noexcept;
  Generator& operator=(Generator&&) noexcept;
  Generator(const Generator&) = delete;
  Generator& operator=(const Generator&) = delete;

  // The next call of the sequence.
  Call Next();
  // The next call and its size class.
  Call Next(CallKind* kind);
  // The next `n` calls.
  std::vector<Call> Batch(size_t n);

  const GeneratorOptions& options() const;
  // The vocabulary, most frequent first (the Zipf ranking).
  const std::vector<std::string>& words() const;

  class Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// `n` pseudo-random bytes (incompressible, like encoded media), determined by
// `seed`. Fast: meant for recording payloads of many megabytes.
std::string RandomBytes(uint64_t seed, size_t n);

// Total bytes of transcript text of `call` (sum of segment text sizes).
size_t TranscriptBytes(const Call& call);

}  // namespace callvault::workload

#endif  // CALLVAULT_WORKLOAD_WORKLOAD_H_
