// RocksDB's CRC32C through the CPU's crc32 instruction (decision 0075;
// engine/crc32c_rocksdb.cc says how RocksDB's calls reach it; the function
// itself is engine/crc32c.h's).
#ifndef CALLVAULT_ENGINE_CRC32C_ROCKSDB_H_
#define CALLVAULT_ENGINE_CRC32C_ROCKSDB_H_

#include <cstddef>
#include <cstdint>

namespace callvault::crc32c {

// Whether RocksDB's own code called its crc32c::Extend and reached the
// wrap since the previous call (never, when the binary was linked without
// the wrap); clears it. Tests.
bool TakeReachedByRocksdb();

}  // namespace callvault::crc32c

#endif  // CALLVAULT_ENGINE_CRC32C_ROCKSDB_H_
