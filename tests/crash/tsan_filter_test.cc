// Proves tsan_report_filter.cc's narrowing (tsan preset only): a deliberate
// race between our code and a RocksDB access must be REPORTED. One thread
// of ours writes a buffer (instrumented: our frame makes the access) while
// another compares it with RocksDB's BytewiseComparator, whose memcmp reads
// it (the frame that makes that access is rocksdb::...::Compare). The old
// suppression `race:rocksdb::` hid exactly this report (a RocksDB frame is
// on the reader's stack); run without tsan_report_filter.cc and with the old
// tsan.supp, TSan prints nothing and exits 0.
//
// Registered by CMakeLists.txt with PASS_REGULAR_EXPRESSION: the test
// passes when the filter logs the race as reported (TSan then exits 66);
// never built outside the tsan preset.
#include <rocksdb/comparator.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

namespace callvault {
namespace {

std::string g_buffer(4096, 'a');
std::string g_other(4096, 'a');
// Relaxed atomics: TSan sees no synchronisation in them, so the two loops
// below stay unordered; they only make both run at the same time (a
// report needs the other access still in TSan's shadow memory).
std::atomic<int> g_started{0};
constexpr auto kOverlap = std::chrono::milliseconds(300);

void Start() {
  g_started.fetch_add(1, std::memory_order_relaxed);
  while (g_started.load(std::memory_order_relaxed) < 2) std::this_thread::yield();
}

void WriteOurBuffer() {
  Start();
  const auto end = std::chrono::steady_clock::now() + kOverlap;
  for (int round = 0; std::chrono::steady_clock::now() < end; ++round) {
    for (char& c : g_buffer) c = static_cast<char>('a' + round % 26);
  }
}

void RocksDbReadsIt() {
  Start();
  const auto end = std::chrono::steady_clock::now() + kOverlap;
  while (std::chrono::steady_clock::now() < end) {
    int c = rocksdb::BytewiseComparator()->Compare(rocksdb::Slice(g_buffer), rocksdb::Slice(g_other));
    if (c < -1'000'000) std::abort();  // keeps the call
  }
}

}  // namespace
}  // namespace callvault

int main() {
  std::thread a(callvault::WriteOurBuffer);
  std::thread b(callvault::RocksDbReadsIt);
  a.join();
  b.join();
  std::printf("tsan_filter_test: done\n");
  return 0;
}
