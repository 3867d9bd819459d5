// CRC32C (Castagnoli), pre- and post-inverted, with the CPU's crc32
// instruction when it has one (SSE4.2) and slicing-by-8 tables otherwise:
// what the engine checksums itself (the WAL scan at open, table_check, the
// MANIFEST_SYNCED mark) and, through engine/crc32c_rocksdb.cc, what RocksDB
// computes (decision 0075).
#ifndef CALLVAULT_ENGINE_CRC32C_H_
#define CALLVAULT_ENGINE_CRC32C_H_

#include <cstddef>
#include <cstdint>

namespace callvault::crc32c {

// CRC32C of `data[0, n)` following `crc` (the CRC of what came before; 0
// for none): rocksdb::crc32c::Extend's contract.
uint32_t Extend(uint32_t crc, const char* data, size_t n);
// Whether Extend uses the crc32 instruction on this CPU.
bool Hardware();
// The table-driven code Extend uses without it. Tests.
uint32_t ExtendPortable(uint32_t crc, const char* data, size_t n);

}  // namespace callvault::crc32c

#endif  // CALLVAULT_ENGINE_CRC32C_H_
