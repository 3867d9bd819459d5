// RocksDB's CRC32C through the CPU's crc32 instruction (decision 0075;
// engine/crc32c_rocksdb.cc says how RocksDB's calls reach it).
#ifndef CALLVAULT_ENGINE_CRC32C_ROCKSDB_H_
#define CALLVAULT_ENGINE_CRC32C_ROCKSDB_H_

#include <cstddef>
#include <cstdint>

namespace callvault::crc32c {

// CRC32C of `data[0, n)` following `crc` (the CRC of what came before; 0
// for none): rocksdb::crc32c::Extend's contract.
uint32_t Extend(uint32_t crc, const char* data, size_t n);
// Whether Extend uses the crc32 instruction (SSE4.2) on this CPU.
bool Hardware();
// Whether RocksDB's own code called its crc32c::Extend and reached Extend
// above since the previous call (never, when the binary was linked without
// the wrap); clears it. Tests.
bool TakeReachedByRocksdb();

}  // namespace callvault::crc32c

#endif  // CALLVAULT_ENGINE_CRC32C_ROCKSDB_H_
