// The engine's side of callvault/metrics.h: the recorder every operation
// reports to, and the process-wide authentication-failure counters.
#ifndef CALLVAULT_ENGINE_METRICS_INTERNAL_H_
#define CALLVAULT_ENGINE_METRICS_INTERNAL_H_

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <utility>

#include "callvault/metrics.h"

namespace callvault::metrics {

// Lock-free: relaxed atomic increments only. One per store
// (SharedResources::metrics).
class Recorder {
 public:
  void Record(Op op, uint64_t micros, bool ok);
  // The counters of this recorder into `m` (the histograms, purges,
  // background errors, audit auth failures).
  void Fill(Metrics* m) const;

  std::atomic<uint64_t> purges{0};
  std::atomic<uint64_t> background_errors{0};
  std::atomic<uint64_t> compaction_errors_retried{0};
  std::atomic<uint64_t> audit_auth_failures{0};

 private:
  // One cache line per operation's hot counters, so threads doing
  // different operations do not share a line.
  struct alignas(64) Hist {
    std::array<std::atomic<uint64_t>, kLatencyBuckets> counts{};
    std::atomic<uint64_t> errors{0};
    std::atomic<uint64_t> sum_micros{0};
  };
  std::array<Hist, kOpCount> hist_{};
};

// The bucket of a latency (index into LatencyHistogram::counts).
size_t BucketOf(uint64_t micros);

// Times one operation from construction to destruction; Done() records
// whether it failed. `r` may be null (nothing recorded).
class Timer {
 public:
  Timer(Recorder* r, Op op) : r_(r), op_(op), start_(std::chrono::steady_clock::now()) {}
  ~Timer() {
    if (r_ == nullptr) return;
    const auto d = std::chrono::steady_clock::now() - start_;
    r_->Record(op_,
               static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(d).count()),
               ok_);
  }
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;
  // Passes a Status or Result through, noting whether it is OK.
  template <typename R>
  R Done(R r) {
    ok_ = r.ok();
    return r;
  }

 private:
  Recorder* const r_;
  const Op op_;
  const std::chrono::steady_clock::time_point start_;
  bool ok_ = true;
};

// Process-wide (callvault/metrics.h): counted where the crypto layer
// rejects a sealed value or a signature.
void CountAeadFailure();
void CountSignatureFailure();
uint64_t AeadFailures();
uint64_t SignatureFailures();

}  // namespace callvault::metrics

#endif  // CALLVAULT_ENGINE_METRICS_INTERNAL_H_
