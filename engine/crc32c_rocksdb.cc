// RocksDB's CRC32C, computed with the CPU's crc32 instruction (decision
// 0075).
//
// Debian builds RocksDB 7.8.3 portable: its util/crc32c.cc holds only the
// table-driven code (no crc32 instruction in librocksdb.a), about 1.3 GB/s
// here, and every WAL record, table block (kCRC32c), MANIFEST record and
// blob read with checksums on goes through it. RocksDB calls it as
// `rocksdb::crc32c::Extend(crc, data, n)` (crc32c::Value is an inline
// Extend(0, ...)) from its other objects, so a link with
// `--wrap=_ZN7rocksdb6crc32c6ExtendEjPKcm` (engine/CMakeLists.txt, an
// interface link option of the static library) sends those calls here.
// Same function, same results (engine/crc32c.cc: CRC32C, pre- and
// post-inverted, `crc` the CRC of what came before). Without SSE4.2, or on
// another architecture, the call goes on to RocksDB's own code
// (`__real_...`). This object holds the wrap alone, so that the engine's
// own CRCs (engine/crc32c.h) never pull it, and its `__real_` reference,
// into a program linked without the wrap.
#include <atomic>
#include <cstddef>
#include <cstdint>

#include "engine/crc32c.h"
#include "engine/crc32c_rocksdb.h"

// The mangled name's `m` is size_t as unsigned long (LP64: x86-64, arm64).
static_assert(sizeof(size_t) == sizeof(unsigned long),
              "rocksdb::crc32c::Extend's mangled name assumes LP64");

extern "C" {
uint32_t __real__ZN7rocksdb6crc32c6ExtendEjPKcm(uint32_t crc, const char* data, size_t n);
uint32_t __wrap__ZN7rocksdb6crc32c6ExtendEjPKcm(uint32_t crc, const char* data, size_t n);
}

namespace callvault::crc32c {
namespace {

// Set by RocksDB's first call after TakeReachedByRocksdb: a load on the hot
// path, a store only when it was clear (a counter there made every small
// CRC of two threads contend for one cache line: 2.5x slower for 16 bytes).
std::atomic<bool> g_reached{false};

}  // namespace

bool TakeReachedByRocksdb() { return g_reached.exchange(false, std::memory_order_relaxed); }

}  // namespace callvault::crc32c

extern "C" uint32_t __wrap__ZN7rocksdb6crc32c6ExtendEjPKcm(uint32_t crc, const char* data, size_t n) {
  if (!callvault::crc32c::g_reached.load(std::memory_order_relaxed)) {
    callvault::crc32c::g_reached.store(true, std::memory_order_relaxed);
  }
  if (callvault::crc32c::Hardware()) return callvault::crc32c::Extend(crc, data, n);
  return __real__ZN7rocksdb6crc32c6ExtendEjPKcm(crc, data, n);
}
