#include "bench/util.h"

#include <rocksdb/version.h>
#include <sodium.h>
#include <malloc.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <zstd.h>

#include <algorithm>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

namespace callvault::bench {

namespace fs = std::filesystem;

double ProcessCpuSeconds() {
  struct rusage u;
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

double ThreadCpuSeconds() {
  struct rusage u;
  getrusage(RUSAGE_THREAD, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t rank = static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(v.size())));
  rank = std::clamp<size_t>(rank, 1, v.size());
  return v[rank - 1];
}

double Median(const std::vector<double>& v) {
  if (v.empty()) return 0;
  std::vector<double> s = v;
  std::sort(s.begin(), s.end());
  size_t n = s.size();
  return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

Json Summary(const std::vector<double>& runs) {
  Json j;
  j["median"] = Median(runs);
  j["min"] = runs.empty() ? 0 : *std::min_element(runs.begin(), runs.end());
  j["max"] = runs.empty() ? 0 : *std::max_element(runs.begin(), runs.end());
  j["runs"] = runs;
  return j;
}

static bool EndsWith(const std::string& s, const char* suffix) {
  std::string x(suffix);
  return s.size() >= x.size() && s.compare(s.size() - x.size(), x.size(), x) == 0;
}

DirUsage Usage(const std::string& dir) {
  DirUsage u;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    std::error_code e2;
    if (!it->is_regular_file(e2)) continue;
    uint64_t n = it->file_size(e2);
    if (e2) continue;  // deleted while we looked
    const std::string name = it->path().filename().string();
    ++u.files;
    u.total += n;
    if (EndsWith(name, ".sst")) u.sst += n;
    else if (EndsWith(name, ".blob")) u.blob += n;
    else if (EndsWith(name, ".log")) u.wal += n;
  }
  return u;
}

std::vector<std::string> DataFiles(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (EndsWith(name, ".sst") || EndsWith(name, ".blob")) out.push_back(it->path().string());
  }
  return out;
}

void RemoveTree(const std::string& dir) {
  std::error_code ec;
  fs::remove_all(dir, ec);
}

void MakeDirs(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
}

static uint64_t StatusField(const char* field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  const size_t n = std::char_traits<char>::length(field);
  while (std::getline(in, line)) {
    if (line.compare(0, n, field) == 0) {
      return std::strtoull(line.c_str() + n, nullptr, 10) * 1024;  // kB
    }
  }
  return 0;
}

uint64_t RssBytes() { return StatusField("VmRSS:"); }
uint64_t PeakRssBytes() { return StatusField("VmHWM:"); }

uint64_t HeapInUseBytes() {
  const struct mallinfo2 mi = mallinfo2();
  return mi.uordblks + mi.hblkhd;
}

Json HeapBreakdown() {
  const struct mallinfo2 mi = mallinfo2();
  Json j{{"heap_in_use_bytes", HeapInUseBytes()},
         {"heap_free_kept_bytes", mi.fordblks},
         {"heap_mmapped_bytes", mi.hblkhd},
         {"heap_arena_bytes", mi.arena}};
  std::ifstream in("/proc/self/smaps_rollup");
  const std::pair<const char*, const char*> fields[] = {{"Rss:", "smaps_rss_bytes"},
                                                       {"Anonymous:", "anonymous_bytes"}};
  for (std::string line; std::getline(in, line);) {
    for (const auto& [field, name] : fields) {
      if (line.rfind(field, 0) == 0) {
        j[name] = std::strtoull(line.c_str() + std::strlen(field), nullptr, 10) * 1024;  // kB
      }
    }
  }
  malloc_trim(0);
  j["rss_after_trim_bytes"] = RssBytes();
  return j;
}

static std::string CpuModel() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      auto p = line.find(':');
      if (p != std::string::npos) return line.substr(p + 2);
    }
  }
  return "unknown";
}

static uint64_t MemTotal() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  uint64_t kb = 0;
  in >> key >> kb;
  return kb * 1024;
}

std::string LoadAvg() {
  std::ifstream in("/proc/loadavg");
  std::string a, b, c;
  in >> a >> b >> c;
  return a + " " + b + " " + c;
}

Json MachineInfo() {
  Json j;
  j["cpu_model"] = CpuModel();
  j["cores"] = std::thread::hardware_concurrency();
  j["memory_bytes"] = MemTotal();
  struct utsname u;
  if (uname(&u) == 0) j["kernel"] = std::string(u.sysname) + " " + u.release + " " + u.machine;
  j["compiler"] = __VERSION__;
#ifdef CALLVAULT_BENCH_BUILD_TYPE
  j["build_type"] = CALLVAULT_BENCH_BUILD_TYPE;
#else
  j["build_type"] = "unknown";
#endif
#ifdef NDEBUG
  j["asserts"] = false;
#else
  j["asserts"] = true;
#endif
  j["rocksdb"] = std::to_string(ROCKSDB_MAJOR) + "." + std::to_string(ROCKSDB_MINOR) + "." +
                 std::to_string(ROCKSDB_PATCH);
  j["libsodium"] = sodium_version_string();
  j["zstd"] = ZSTD_versionString();
  j["loadavg_at_start"] = LoadAvg();
  return j;
}

static const double kStart = NowSeconds();

void Progress(const char* fmt, ...) {
  std::fprintf(stderr, "[bench %7.1fs] ", NowSeconds() - kStart);
  va_list ap;
  va_start(ap, fmt);
  std::vfprintf(stderr, fmt, ap);
  va_end(ap);
  std::fputc('\n', stderr);
  std::fflush(stderr);
}

}  // namespace callvault::bench
