// Proves tsan_report_filter.cc's narrowing (tsan preset only), and asserts
// it itself: the test exits non-zero unless the filter counted what it
// must.
//
// Race 1 must be REPORTED: one thread of ours writes a buffer
// (instrumented: our frame makes the access) while another compares it with
// RocksDB's BytewiseComparator, whose memcmp reads it (the frame that makes
// that access is rocksdb::...::Compare). The old suppression
// `race:rocksdb::` hid exactly this report (a RocksDB frame is on the
// reader's stack); run without tsan_report_filter.cc and with the old
// tsan.supp, TSan prints nothing.
//
// Race 2 must be SUPPRESSED: RocksDB's PosixRandomAccessFile::Read fills a
// buffer (the pread interceptor's write, called from a RocksDB frame) while
// RocksDB's Compare reads it: RocksDB made the accesses and our code none,
// the shape of RocksDB's own hand-offs the filter exists to hide.
//
// The verdict: callvault_tsan_filter_counts() (the filter's own counts) must
// show at least one race of ours reported and one suppressed. A filter that
// is not linked, not called by TSan, or that decides everything one way
// fails the test. Race 1's report would make TSan exit 66 at exit; this
// binary sets exitcode=0 (below) so that its own verdict is the exit status.
#include <rocksdb/comparator.h>
#include <rocksdb/file_system.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>

extern "C" {
// Defined by tsan_report_filter.cc; weak, so that a binary without the
// filter links and says so instead of passing.
__attribute__((weak)) void callvault_tsan_filter_counts(long* reported_ours, long* suppressed);
// TSan's defaults for this binary: the test's exit status is its own
// verdict, not "TSan printed a report" (race 1 is reported on purpose).
const char* __tsan_default_options() { return "exitcode=0"; }
}

namespace callvault {
namespace {

constexpr size_t kSize = 4096;
constexpr auto kOverlap = std::chrono::milliseconds(300);

// Relaxed atomics: TSan sees no synchronisation in them, so the two loops
// of a race stay unordered; they only make both run at the same time (a
// report needs the other access still in TSan's shadow memory).
void Start(std::atomic<int>* started) {
  started->fetch_add(1, std::memory_order_relaxed);
  while (started->load(std::memory_order_relaxed) < 2) std::this_thread::yield();
}

struct RaceBuffers {
  char buffer[kSize];  // written by one thread, compared by RocksDB in another
  char other[kSize];
  std::atomic<int> started{0};
};

void RocksDbReads(RaceBuffers* b) {
  Start(&b->started);
  const auto end = std::chrono::steady_clock::now() + kOverlap;
  while (std::chrono::steady_clock::now() < end) {
    int c = rocksdb::BytewiseComparator()->Compare(rocksdb::Slice(b->buffer, kSize),
                                                   rocksdb::Slice(b->other, kSize));
    if (c < -1'000'000) std::abort();  // keeps the call
  }
}

// Race 1: our instrumented loop writes the bytes.
RaceBuffers g_race_ours;

void OurCodeWrites(RaceBuffers* b) {
  Start(&b->started);
  const auto end = std::chrono::steady_clock::now() + kOverlap;
  for (int round = 0; std::chrono::steady_clock::now() < end; ++round) {
    for (char& c : b->buffer) c = static_cast<char>('a' + round % 26);
  }
}

// Race 2: RocksDB's file read (pread, called by RocksDB) writes the bytes.
RaceBuffers g_race_rocksdb;
std::unique_ptr<rocksdb::FSRandomAccessFile> g_file;

void RocksDbWrites(RaceBuffers* b) {
  Start(&b->started);
  const auto end = std::chrono::steady_clock::now() + kOverlap;
  while (std::chrono::steady_clock::now() < end) {
    rocksdb::Slice got;
    rocksdb::IOStatus s = g_file->Read(0, kSize, rocksdb::IOOptions(), &got, b->buffer, nullptr);
    if (!s.ok() || got.size() != kSize) {
      std::printf("tsan_filter_test: FAILED: read: %s\n", s.ToString().c_str());
      std::exit(1);
    }
  }
}

void Race(void (*writer)(RaceBuffers*), RaceBuffers* b) {
  std::memset(b->buffer, 'a', kSize);
  std::memset(b->other, 'a', kSize);
  std::thread w(writer, b);
  std::thread r(RocksDbReads, b);
  w.join();
  r.join();
}

bool OpenFile() {
  char path[] = "/tmp/tsan_filter_test-XXXXXX";
  const int fd = mkstemp(path);
  if (fd < 0) return false;
  const std::string bytes(kSize, 'a');
  const bool written = write(fd, bytes.data(), kSize) == static_cast<ssize_t>(kSize);
  close(fd);
  rocksdb::IOStatus s = rocksdb::FileSystem::Default()->NewRandomAccessFile(
      path, rocksdb::FileOptions(), &g_file, nullptr);
  unlink(path);  // the open file stays readable
  return written && s.ok();
}

}  // namespace
}  // namespace callvault

int main() {
  using namespace callvault;
  if (callvault_tsan_filter_counts == nullptr) {
    std::printf("tsan_filter_test: FAILED: tsan_report_filter.cc is not linked in\n");
    return 1;
  }
  if (!OpenFile()) {
    std::printf("tsan_filter_test: FAILED: cannot write a temporary file\n");
    return 1;
  }
  Race(OurCodeWrites, &g_race_ours);
  long reported_1 = 0, suppressed_1 = 0;
  callvault_tsan_filter_counts(&reported_1, &suppressed_1);
  Race(RocksDbWrites, &g_race_rocksdb);
  long reported_2 = 0, suppressed_2 = 0;
  callvault_tsan_filter_counts(&reported_2, &suppressed_2);
  g_file.reset();
  std::printf("tsan_filter_test: race 1 (ours vs RocksDB): %ld reported (want >= 1), %ld suppressed "
              "(want 0); race 2 (RocksDB vs RocksDB): %ld suppressed (want >= 1), %ld reported "
              "(want 0)\n",
              reported_1, suppressed_1, suppressed_2 - suppressed_1, reported_2 - reported_1);
  const bool ok = reported_1 >= 1 && suppressed_1 == 0 && suppressed_2 - suppressed_1 >= 1 &&
                  reported_2 == reported_1;
  std::printf("tsan_filter_test: %s\n", ok ? "PASSED" : "FAILED");
  return ok ? 0 : 1;
}
