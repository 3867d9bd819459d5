// Decides which ThreadSanitizer race reports are RocksDB's own hand-offs
// (linked into the crash suites under the tsan preset only; see tsan.supp).
//
// Debian's librocksdb.a is not instrumented. TSan sees its memory accesses
// only through the calls it makes into intercepted functions (memcpy,
// memcmp, ...): such an access shows the interceptor on top, then the
// RocksDB function that called it (the interceptor's caller pc), then our
// frames (TSan's shadow stack has only instrumented functions). RocksDB's
// lock-free hand-offs (the write thread's writer list, the memtable's skip
// list) are std::atomic operations TSan cannot see, so they look like races.
//
// A suppression file cannot tell those apart from a race in our code:
// `race:rocksdb::` matches a frame anywhere on either stack, and every
// RocksDB access has our frames under it (we called RocksDB), so it would
// hide our own races against RocksDB too; `race_top:` looks at one stack's
// top frame only, so a report with RocksDB on one side and our code on the
// other is suppressed as well. So this file replaces them: TSan calls
// __tsan::OnReport (a weak hook of its runtime) for every report before
// printing it; for a data race we classify each of its accesses by the
// first frame below the interceptors (with the functions inlined into it):
//   - ours           a callvault:: function, or a header function inlined into
//                    one: our instrumented code made the access;
//   - rocksdb        a RocksDB function (none of ours inlined around it);
//   - std library    an out-of-line function of libstdc++.so (uninstrumented;
//                    its caller, ours or RocksDB's, is not on the stack);
//   - a std:: template instantiated in the binary is skipped: its caller
//     decides; anything unknown counts as ours.
// The report is suppressed only in four cases (OnReport below says why each
// is RocksDB's): (1) RocksDB made an access and our code none; (2) both
// accesses are libstdc++'s out-of-line std::string::_M_append (the write
// group's batch merge); (3) the memory is on thread T's stack, our access
// was T's own earlier use of it, the other access RocksDB's (stack reuse
// under RocksDB's Writer objects); (4) the memory is a heap block RocksDB
// allocated, our access a read, the other RocksDB's write (an iterator's
// key or value in the memtable, read by us in another thread than the
// writer's). Every other race in which our code reads or writes is
// reported, whatever is on the other stack; so is one between two other
// std-library accesses. What stays hidden: a race of ours made only through
// _M_append on both sides; one on a thread's own stack memory that RocksDB
// touches from another thread (our code never hands RocksDB a local it
// still writes); and our read of RocksDB's memory after RocksDB freed and
// reused it (a use after free: the same suite under ASan reports it).
//
// CALLVAULT_TSAN_FILTER_LOG=1 prints one line per decision to stderr.
// callvault_tsan_filter_counts() returns how many races it has reported
// with an access of ours, how many it suppressed, and how many of those had
// an access of ours (cases 3 and 4): tsan_filter_test
// checks them (a filter that is not called, or decides nothing, fails it).
//
// The hook runs inside TSan's report path with its internal locks held: it
// must not call anything TSan intercepts (malloc, pthread locks, stdio,
// strstr...), or it deadlocks. So: fixed buffers, hand-written string
// search, the write syscall; this file is compiled without -fsanitize=thread
// (CMakeLists.txt), and TSan serialises reports, so its cache needs no lock.
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>

extern "C" {
void* __tsan_get_current_report();
int __tsan_get_report_data(void* report, const char** description, int* count, int* stack_count,
                           int* mop_count, int* loc_count, int* mutex_count, int* thread_count,
                           int* unique_tid_count, void** sleep_trace, unsigned long trace_size);
int __tsan_get_report_mop(void* report, unsigned long idx, int* tid, void** addr, int* size,
                          int* write, int* atomic, void** trace, unsigned long trace_size);
int __tsan_get_report_loc(void* report, unsigned long idx, const char** type, void** addr,
                          void** start, unsigned long* size, int* tid, int* fd, int* suppressable,
                          void** trace, unsigned long trace_size);
void __sanitizer_symbolize_pc(void* pc, const char* fmt, char* out_buf, unsigned long out_buf_size);
// The decisions so far: races reported in which our code made an access,
// and races suppressed (see OnReport). Any thread, any time.
void callvault_tsan_filter_counts(long* reported_ours, long* suppressed, long* suppressed_ours);
}

namespace __tsan {
struct ReportDesc;
bool OnReport(const ReportDesc* rep, bool suppressed);
}  // namespace __tsan

namespace {

enum Side : uint8_t { kUnknown = 0, kSkip, kRocksDb, kStd, kStdAppend, kOurs };

size_t Len(const char* s) {
  size_t n = 0;
  while (s[n] != 0) ++n;
  return n;
}

bool StartsWith(const char* s, const char* p) {
  for (; *p != 0; ++s, ++p) {
    if (*s != *p) return false;
  }
  return true;
}

// Does s[0, n) contain p?
bool Contains(const char* s, size_t n, const char* p) {
  size_t m = Len(p);
  for (size_t i = 0; i + m <= n; ++i) {
    if (StartsWith(s + i, p)) return true;
  }
  return false;
}

// Function names may start with a return type ("void rocksdb::..."), or
// be a thunk ("non-virtual thunk to rocksdb::..."): a namespace counts at
// the start of the name or after a space, before the parameter list.
bool InNamespace(const char* function, const char* ns) {
  size_t head = 0;
  while (function[head] != 0 && function[head] != '(') ++head;
  if (StartsWith(function, ns)) return true;
  char spaced[32] = " ";
  size_t k = 1;
  for (const char* p = ns; *p != 0 && k + 1 < sizeof(spaced); ++p) spaced[k++] = *p;
  spaced[k] = 0;
  return Contains(function, head, spaced);
}

bool IsRuntime(const char* module, const char* function) {
  static const char* const kRuntime[] = {"__interceptor_", "___interceptor_", "__tsan", "__sanitizer",
                                         "memcpy", "memmove", "memset", "memcmp", "bcmp",
                                         "strlen", "strcmp", "strncmp", "free", "malloc",
                                         "realloc", "operator new", "operator delete", "pthread_"};
  for (const char* p : kRuntime) {
    if (StartsWith(function, p)) return true;
  }
  return Contains(module, Len(module), "libc.so") || Contains(module, Len(module), "libclang_rt");
}

// Classifies the frames at `pc`: the function and its callers inlined into
// it, innermost first.
Side Classify(void* pc) {
  static char buf[8192];
  for (char& c : buf) c = 0;
  // One "module\x01function" per inlined frame, each ended by a NUL, the
  // list by two.
  __sanitizer_symbolize_pc(pc, "%m\x01%f", buf, sizeof(buf));
  bool first = true, rocksdb = false, first_std = false;
  for (const char* p = buf; *p != 0 && p < buf + sizeof(buf); p += Len(p) + 1) {
    const char* sep = p;
    while (*sep != 0 && *sep != '\x01') ++sep;
    if (*sep == 0) continue;
    char module[512];
    size_t mlen = static_cast<size_t>(sep - p) < sizeof(module) - 1 ? static_cast<size_t>(sep - p)
                                                                     : sizeof(module) - 1;
    for (size_t i = 0; i < mlen; ++i) module[i] = p[i];
    module[mlen] = 0;
    const char* function = sep + 1;
    if (first) {
      if (IsRuntime(module, function)) return kSkip;
      // libstdc++'s out-of-line functions (std::string::_M_append, ...) are
      // not instrumented: whoever called them, ours or RocksDB's, is unknown.
      if (Contains(module, mlen, "libstdc++")) {
        return Contains(function, Len(function), "::_M_append(") ? kStdAppend : kStd;
      }
      first_std = InNamespace(function, "std::") || InNamespace(function, "__gnu_cxx::");
      first = false;
    }
    // Our function, or a header function inlined into ours: our access.
    if (InNamespace(function, "callvault::")) return kOurs;
    rocksdb |= InNamespace(function, "rocksdb::");
  }
  if (first) return kOurs;  // not symbolized: do not hide it
  if (rocksdb) return kRocksDb;
  // A std:: template instantiated in the binary (one copy kept by the
  // linker, instrumented or not): decided by its caller.
  if (first_std) return kSkip;
  return kOurs;
}

// pc -> Side, open addressing; full: classify again.
constexpr size_t kCacheSize = 1 << 14;
void* g_pcs[kCacheSize];
uint8_t g_sides[kCacheSize];

Side ClassifyPc(void* pc) {
  size_t h = (reinterpret_cast<uintptr_t>(pc) >> 2) * 0x9E3779B97F4A7C15ull >> 50;
  for (size_t i = 0; i < 64; ++i) {
    size_t k = (h + i) & (kCacheSize - 1);
    if (g_pcs[k] == pc) return static_cast<Side>(g_sides[k]);
    if (g_pcs[k] == nullptr) {
      Side s = Classify(pc);
      g_pcs[k] = pc;
      g_sides[k] = s;
      return s;
    }
  }
  return Classify(pc);
}

// The side that made one access: its first frame not in the runtime.
Side AccessSide(void** trace, int n) {
  for (int i = 0; i < n; ++i) {
    if (trace[i] == nullptr) break;
    Side s = ClassifyPc(trace[i]);
    if (s != kSkip) return s;
  }
  return kOurs;  // nothing but runtime and std frames: do not hide it
}

const char* Name(Side s) {
  switch (s) {
    case kRocksDb: return "rocksdb";
    case kStd: return "std";
    case kStdAppend: return "std-append";
    case kOurs: return "ours";
    default: return "runtime";
  }
}

// Lock-free counters (std::atomic<long> is a plain instruction here, not
// an intercepted call), read by callvault_tsan_filter_counts.
std::atomic<long> g_reported_ours{0};
std::atomic<long> g_suppressed{0};
std::atomic<long> g_suppressed_ours{0};  // of those, with an access of ours (cases 3, 4)

// Read once at start-up: getenv inside the report path is not safe.
const bool g_log = std::getenv("CALLVAULT_TSAN_FILTER_LOG") != nullptr;

void Append(char* out, size_t cap, size_t* n, const char* s) {
  while (*s != 0 && *n + 1 < cap) out[(*n)++] = *s++;
  out[*n] = 0;
}

}  // namespace

namespace __tsan {

bool OnReport(const ReportDesc* rep, bool suppressed) {
  (void)rep;
  void* report = __tsan_get_current_report();
  if (report == nullptr) return suppressed;
  const char* description = nullptr;
  int count = 0, stacks = 0, mops = 0, locs = 0, mutexes = 0, threads = 0, tids = 0;
  void* sleep_trace[1];
  if (!__tsan_get_report_data(report, &description, &count, &stacks, &mops, &locs, &mutexes,
                              &threads, &tids, sleep_trace, 1)) {
    return suppressed;
  }
  // Races only; every other kind of report follows tsan.supp.
  if (description == nullptr || !StartsWith(description, "data-race")) return suppressed;
  // Where the racy memory is: on a thread's stack, which thread's; or in a
  // heap block, and whether RocksDB allocated it (the allocation stack's
  // first frame below the allocator is RocksDB's).
  int stack_tid = -1;
  bool rocksdb_heap = false;
  for (int i = 0; i < locs; ++i) {
    const char* type = nullptr;
    void *addr = nullptr, *start = nullptr;
    unsigned long size = 0;
    int tid = -1, fd = -1, suppressable = 0;
    void* trace[64];
    for (void*& t : trace) t = nullptr;
    if (!__tsan_get_report_loc(report, i, &type, &addr, &start, &size, &tid, &fd, &suppressable,
                               trace, 64) ||
        type == nullptr) {
      continue;
    }
    if (StartsWith(type, "stack") && type[5] == 0) stack_tid = tid;
    if (StartsWith(type, "heap") && type[4] == 0 && trace[0] != nullptr) {
      rocksdb_heap = AccessSide(trace, 64) == kRocksDb;
    }
  }
  int rocksdb = 0, ours = 0, ours_on_own_stack = 0, appends = 0, ours_reads = 0;
  char line[256];
  size_t n = 0;
  line[0] = 0;
  Append(line, sizeof(line), &n, "tsan_report_filter: ");
  Append(line, sizeof(line), &n, description);
  Append(line, sizeof(line), &n, " ");
  for (int i = 0; i < mops; ++i) {
    int tid = 0, size = 0, write = 0, atomic = 0;
    void* addr = nullptr;
    void* trace[64];
    for (void*& t : trace) t = nullptr;
    if (!__tsan_get_report_mop(report, i, &tid, &addr, &size, &write, &atomic, trace, 64)) {
      return suppressed;
    }
    Side s = AccessSide(trace, 64);
    rocksdb += s == kRocksDb;
    ours += s == kOurs;
    ours_on_own_stack += s == kOurs && stack_tid >= 0 && tid == stack_tid;
    ours_reads += s == kOurs && write == 0 && atomic == 0;
    appends += s == kStdAppend;
    if (i > 0) Append(line, sizeof(line), &n, "/");
    Append(line, sizeof(line), &n, Name(s));
  }
  // (1) RocksDB made an access and our code none.
  // (2) Both accesses are libstdc++'s out-of-line std::string::_M_append:
  //     the write-group leader appending a follower's WriteBatch (the
  //     RocksDB frames between it and our PutCall(s) are invisible), racing
  //     with the follower's own appends to its batch.
  // (3) Memory on the stack of thread T that T's own code (ours) used
  //     earlier, against RocksDB in another thread: RocksDB's Writer objects
  //     live on each writer's stack, written by uninstrumented code TSan does
  //     not see, so TSan pairs the leader's access with whatever frame of
  //     ours used those bytes before (stack reuse).
  // (4) Our read of a heap block RocksDB allocated, against RocksDB's write
  //     of it (the allocation itself, or its memcpy): a memtable entry or
  //     cache block RocksDB handed us (an iterator's key or value) after
  //     publishing it with atomics TSan cannot see (the skip list's release
  //     store of the node that points at it). RocksDB never writes an entry
  //     it has published, so such a pair is a race only if we read a slice
  //     after RocksDB freed and reused its memory: a use after free, which
  //     the same suite under ASan (t7-asan) reports. Our WRITE into
  //     RocksDB's memory, and our read of our own memory that RocksDB
  //     writes (a read buffer we lent it), stay reported.
  const bool hide = ours == 0 ? (rocksdb > 0 || (appends > 0 && appends == mops))
                              : (rocksdb > 0 && mops == 2 &&
                                 (ours == ours_on_own_stack ||
                                  (rocksdb_heap && stack_tid < 0 && ours == 1 && ours_reads == 1)));
  if (hide) {
    g_suppressed.fetch_add(1, std::memory_order_relaxed);
    if (ours > 0) g_suppressed_ours.fetch_add(1, std::memory_order_relaxed);
  } else if (ours > 0) {
    g_reported_ours.fetch_add(1, std::memory_order_relaxed);
  }
  if (g_log) {
    if (stack_tid >= 0) Append(line, sizeof(line), &n, " (stack)");
    if (rocksdb_heap) Append(line, sizeof(line), &n, " (RocksDB's heap)");
    Append(line, sizeof(line), &n, hide ? " -> suppressed\n" : " -> reported\n");
    long r = syscall(SYS_write, 2, line, n);
    (void)r;
  }
  return hide;
}

}  // namespace __tsan

extern "C" void callvault_tsan_filter_counts(long* reported_ours, long* suppressed,
                                            long* suppressed_ours) {
  *reported_ours = g_reported_ours.load(std::memory_order_relaxed);
  *suppressed = g_suppressed.load(std::memory_order_relaxed);
  *suppressed_ours = g_suppressed_ours.load(std::memory_order_relaxed);
}
