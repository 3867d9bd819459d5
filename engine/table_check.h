// Table files checked before RocksDB parses them (docs/decisions/0026).
//
// RocksDB 7.8.3 reads a table file's properties block WITHOUT checking its
// checksum (table/meta_blocks.cc ReadTablePropertiesHelper: for ingested
// files whose global sequence number was rewritten in place), parses it,
// and only then checks the checksum. Parsing damaged bytes can reach an
// assertion, which Debian's build keeps: a properties block whose last word
// claims a hash index aborts the process in DataBlockHashIndex::Initialize
// (`size > num_buckets_ * sizeof(uint8_t)`). Every open of a table file
// (a read-only open loads them all; a writable one a few, the rest at their
// first read; compactions; SstFileReader) goes through the FileSystem's
// NewRandomAccessFile, so CloseCheckFS checks the file there first: the
// footer, then the metaindex block and the properties block against their
// checksums, as RocksDB would (table/format.cc: footer format_version >= 1,
// block trailer = 1 byte compression type + 4 bytes checksum of the block
// and that byte, checksum type from the footer). A mismatch is kCorruption
// naming the file, before RocksDB reads a byte of it.
#ifndef CALLVAULT_ENGINE_TABLE_CHECK_H_
#define CALLVAULT_ENGINE_TABLE_CHECK_H_

#include <rocksdb/file_system.h>

#include <cstdint>
#include <string>

namespace callvault::tablecheck {

// Whether `path` names a table file (*.sst, or the legacy *.ldb).
bool IsTableFile(const std::string& path);

// Checks the footer, metaindex block and properties block of the table file
// `path` (`file`, `size` bytes). OK when they match their checksums, and
// also when the footer is not one this check knows (not a block-based table,
// an unknown format version or checksum type, a file shorter than a footer):
// RocksDB refuses those itself, before any unchecked parse. Corruption
// ("table file <path>: ...") when a block it reads does not match its
// checksum, lies outside the file, or the footer says kNoChecksum (this
// store never writes such tables). An I/O error of a read is returned as is.
rocksdb::IOStatus CheckTableFile(rocksdb::FSRandomAccessFile* file, uint64_t size,
                                 const std::string& path);

}  // namespace callvault::tablecheck

#endif  // CALLVAULT_ENGINE_TABLE_CHECK_H_
