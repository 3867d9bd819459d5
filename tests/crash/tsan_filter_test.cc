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
// Race 3 must be SUPPRESSED (the filter's case 4): a real DB; one thread
// puts, another iterates the memtable and reads each value in our
// instrumented code. RocksDB allocated and filled the entries (Arena,
// memcpy) and published them through its skip list's atomics, which TSan
// does not see: the shape of concurrency_test's background dictionary
// sampling, which CI reported.
//
// Race 4 must be REPORTED: the same DB, but our code WRITES the bytes of
// the memtable's keys (the values they hold) while RocksDB compares keys in
// another thread's puts: our write into RocksDB's memory.
//
// Race 5 must be REPORTED: a heap buffer of ours that RocksDB's file read
// fills while our code reads it: our read, RocksDB's write, but not
// RocksDB's heap.
//
// The verdict: callvault_tsan_filter_counts() (the filter's own counts),
// taken after each race, must show each race counted the way it must. A filter that
// is not linked, not called by TSan, or that decides everything one way
// fails the test. Race 1's report would make TSan exit 66 at exit; this
// binary sets exitcode=0 (below) so that its own verdict is the exit status.
#include <rocksdb/comparator.h>
#include <rocksdb/db.h>
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
__attribute__((weak)) void callvault_tsan_filter_counts(long* reported_ours, long* suppressed,
                                                        long* suppressed_ours);
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

// Race 5: our loop reads what RocksDB's file read writes, in our heap.
void OurCodeReads(RaceBuffers* b) {
  Start(&b->started);
  const auto end = std::chrono::steady_clock::now() + kOverlap;
  long sum = 0;
  while (std::chrono::steady_clock::now() < end) {
    for (char c : b->buffer) sum += c;
  }
  if (sum == 42) std::printf(" ");  // keeps the loop
}

void OursAgainstRocksDbWrites(RaceBuffers* b) {
  std::memset(b->buffer, 'a', kSize);
  std::thread w(RocksDbWrites, b);
  std::thread r(OurCodeReads, b);
  w.join();
  r.join();
}

// Races 3 and 4: a DB whose memtable one thread fills while another reads
// (race 3) or rewrites (race 4) its entries through an iterator. The
// threads take turns by relaxed atomics (TSan sees no order in them), not
// by timing, so every run has the same races: the puts write the entries,
// then the other thread reads or writes all of them, then (race 4) the
// puts go on, comparing new keys with the rewritten ones.
struct MemtableRace {
  rocksdb::DB* db = nullptr;
  std::atomic<int> step{0};  // 1: first puts done; 2: entries read or written
};

void WaitFor(std::atomic<int>* step, int want) {
  while (step->load(std::memory_order_relaxed) < want) std::this_thread::yield();
}

void Puts(MemtableRace* m, int from, int n) {
  char key[32], value[128];
  std::memset(value, 'v', sizeof(value));
  for (int i = from; i < from + n; ++i) {
    std::snprintf(key, sizeof(key), "k%09d", (i * 7919) % 1000003);
    rocksdb::Status s = m->db->Put(rocksdb::WriteOptions(), rocksdb::Slice(key),
                                   rocksdb::Slice(value, sizeof(value)));
    if (!s.ok()) {
      std::printf("tsan_filter_test: FAILED: put: %s\n", s.ToString().c_str());
      std::exit(1);
    }
  }
}

constexpr int kEntries = 200;

void PutsThenMore(MemtableRace* m) {
  Puts(m, 0, kEntries);
  m->step.store(1, std::memory_order_relaxed);
  WaitFor(&m->step, 2);
  Puts(m, kEntries, kEntries);
}

void ReadsEntries(MemtableRace* m, bool write_keys) {
  WaitFor(&m->step, 1);
  long sum = 0;
  int seen = 0;
  rocksdb::ReadOptions ro;
  ro.pin_data = write_keys;  // key() then points into the memtable, not a copy
  {
    std::unique_ptr<rocksdb::Iterator> it(m->db->NewIterator(ro));
    for (it->SeekToFirst(); it->Valid(); it->Next(), ++seen) {
      if (write_keys) {
        // The bytes it holds, written back: the skip list's order stays.
        volatile char* k = const_cast<char*>(it->key().data());
        for (size_t i = 0; i < it->key().size(); ++i) k[i] = k[i];
      } else {
        const rocksdb::Slice v = it->value();
        for (size_t i = 0; i < v.size(); ++i) sum += v.data()[i];
      }
    }
  }
  if (seen < kEntries || sum == 42) {
    std::printf("tsan_filter_test: FAILED: the iterator saw %d entries of %d\n", seen, kEntries);
    std::exit(1);
  }
  m->step.store(2, std::memory_order_relaxed);
}

bool MemtableRaces(bool write_keys) {
  char dir[] = "/tmp/tsan_filter_db-XXXXXX";
  if (mkdtemp(dir) == nullptr) return false;
  rocksdb::Options o;
  o.create_if_missing = true;
  o.write_buffer_size = 256 << 20;  // no flush: every entry stays in the memtable
  MemtableRace m;
  if (!rocksdb::DB::Open(o, dir, &m.db).ok()) return false;
  std::thread w(PutsThenMore, &m);
  std::thread r(ReadsEntries, &m, write_keys);
  w.join();
  r.join();
  delete m.db;
  rocksdb::DestroyDB(dir, o);
  rmdir(dir);
  return true;
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
  // The filter's counts after each race: {reported of ours, suppressed,
  // suppressed with an access of ours}.
  long counts[6][3] = {};
  auto take = [&](int i) { callvault_tsan_filter_counts(&counts[i][0], &counts[i][1], &counts[i][2]); };
  take(0);
  Race(OurCodeWrites, &g_race_ours);
  take(1);
  Race(RocksDbWrites, &g_race_rocksdb);
  take(2);
  const bool db3 = MemtableRaces(/*write_keys=*/false);
  take(3);
  const bool db4 = MemtableRaces(/*write_keys=*/true);
  take(4);
  auto* heap = new RaceBuffers;
  OursAgainstRocksDbWrites(heap);
  delete heap;
  take(5);
  g_file.reset();
  if (!db3 || !db4) {
    std::printf("tsan_filter_test: FAILED: cannot open a temporary DB\n");
    return 1;
  }
  // What each race must add to each count: 1: at least one; 0: none;
  // -1: any number.
  static const char* const kRace[5] = {
      "race 1 (our write vs RocksDB's read)", "race 2 (RocksDB vs RocksDB)",
      "race 3 (our read of a memtable entry vs RocksDB's write)",
      "race 4 (our write of a memtable key vs RocksDB's read)",
      "race 5 (our read of our heap vs RocksDB's write)"};
  static const char* const kCount[3] = {"reported with ours", "suppressed",
                                        "suppressed with ours"};
  static const int kWant[5][3] = {{1, 0, 0}, {0, 1, 0}, {0, -1, 1}, {1, -1, -1}, {1, -1, 0}};
  bool ok = true;
  for (int i = 0; i < 5; ++i) {
    std::printf("tsan_filter_test: %s:", kRace[i]);
    for (int c = 0; c < 3; ++c) {
      const long got = counts[i + 1][c] - counts[i][c];
      const int want = kWant[i][c];
      const bool good = want < 0 || (want == 0 ? got == 0 : got >= 1);
      std::printf(" %ld %s (want %s)%s;", got, kCount[c], want < 0 ? "any" : want == 0 ? "0" : ">= 1",
                  good ? "" : " <-- WRONG");
      ok = ok && good;
    }
    std::printf("\n");
  }
  std::printf("tsan_filter_test: %s\n", ok ? "PASSED" : "FAILED");
  return ok ? 0 : 1;
}
