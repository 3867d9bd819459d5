// Small helpers shared by the harness: clocks, order statistics, directory
// sizes, process memory, machine description, progress lines.
#ifndef CALLVAULT_BENCH_UTIL_H_
#define CALLVAULT_BENCH_UTIL_H_

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace callvault::bench {

using Json = nlohmann::json;

inline double NowSeconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Wall-clock stopwatch.
class Timer {
 public:
  Timer() : start_(NowSeconds()) {}
  double Seconds() const { return NowSeconds() - start_; }
  double Millis() const { return Seconds() * 1e3; }
  double Micros() const { return Seconds() * 1e6; }

 private:
  double start_;
};

// CPU seconds (user + system) this process has used, all threads.
double ProcessCpuSeconds();
// CPU seconds (user + system) of the calling thread.
double ThreadCpuSeconds();

// The p-th percentile (0..100) of `v` by nearest rank; 0 for an empty vector.
double Percentile(std::vector<double> v, double p);
double Median(const std::vector<double>& v);

// {"median", "min", "max", "runs"} of repeated measurements of one figure.
Json Summary(const std::vector<double>& runs);

struct DirUsage {
  uint64_t total = 0;  // every regular file
  uint64_t sst = 0;    // *.sst
  uint64_t blob = 0;   // *.blob
  uint64_t wal = 0;    // *.log (WAL) files; LOG is the info log, counted in total only
  uint64_t files = 0;
};
DirUsage Usage(const std::string& dir);
// Names (full paths) of the *.sst and *.blob files under `dir`.
std::vector<std::string> DataFiles(const std::string& dir);
void RemoveTree(const std::string& dir);
void MakeDirs(const std::string& dir);

// Resident set size of this process (VmRSS), bytes; and its peak (VmHWM).
uint64_t RssBytes();
uint64_t PeakRssBytes();
// Where the resident memory is, for the many-active-tenants step: glibc's
// heap (mallinfo2: bytes in use by live allocations, free bytes it keeps,
// mmapped chunks, arenas' total), the process's anonymous and file-backed
// resident bytes (smaps_rollup), and the resident size after malloc_trim(0)
// (what the heap kept free but could return). Trims the heap: call last.
Json HeapBreakdown();
// The heap's bytes in use by live allocations now (mallinfo2: arenas and
// mmapped chunks).
uint64_t HeapInUseBytes();

// /proc/loadavg's first three fields (other work on the machine skews absolute times).
std::string LoadAvg();

// The load average at the start and at the end of a measured stretch (a
// phase or one repetition), as {"start": "1 5 15", "end": "1 5 15"}: the
// report prints it beside the figures and warns when the 1-minute figure
// was above 1.5 (scripts/bench_report.py, load_note).
class LoadWindow {
 public:
  LoadWindow() : start_(LoadAvg()) {}
  Json End() const { return Json{{"start", start_}, {"end", LoadAvg()}}; }

 private:
  std::string start_;
};

// CPU model, core count, memory, kernel, compiler, library versions.
Json MachineInfo();

// A progress line on stderr, prefixed with the elapsed time since start.
void Progress(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

}  // namespace callvault::bench

#endif  // CALLVAULT_BENCH_UTIL_H_
