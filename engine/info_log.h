// RocksDB's info log, written by us (docs/decisions/0011-read-only-opens-and-full-disks.md).
//
// Debian's RocksDB 7.8 is built with assertions, and its own info logger
// aborts the process (SIGABRT) when a write to LOG fails, e.g. on a full
// disk. Every instance of a store (meta/ and each shard) therefore gets an
// InfoLog as DBOptions::info_log: it appends lines to <instance>/LOG with
// write(2), never asserts, drops a line it cannot write (and says how many
// it dropped once writing works again), and rotates LOG to LOG.old past
// kMaxBytes. RocksDB's info log holds file names, options and statistics,
// never keys or values (values are ciphertext, keys are hashes).
#ifndef CALLVAULT_ENGINE_INFO_LOG_H_
#define CALLVAULT_ENGINE_INFO_LOG_H_

#include <rocksdb/env.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "callvault/metrics.h"

namespace callvault {

// The error CloseCheckFS gives RocksDB for an OPTIONS file when
// Options::keep_rocksdb_options_file is false. RocksDB logs it as a warning
// at every open, family create and drop and SetDBOptions ("Unnable to
// persist options -- Not implemented: <this>"); every info log here drops
// those lines (IsOptionsFileRefusal), and only those.
inline constexpr std::string_view kOptionsFileRefused =
    "OPTIONS files not kept (Options::keep_rocksdb_options_file)";
// A line (without its newline) of RocksDB's that says it could not persist
// its options because of that refusal: it mentions persisting options and
// ends with the refusal's text.
bool IsOptionsFileRefusal(std::string_view line);

// `dir` is the instance directory (the file is dir + "/LOG"); the file is
// opened on the first line that can be written, so the directory need not
// exist yet.
std::shared_ptr<rocksdb::Logger> NewInfoLog(const std::string& dir);
// Discards every line: for read-only opens, which write nothing anywhere.
std::shared_ptr<rocksdb::Logger> NewDiscardingInfoLog();
// Passes every line to Options::logger (one call per line, no newline),
// with RocksDB's level mapped to ours (header lines: info) and `source`
// ("rocksdb:meta", "rocksdb:shard-N"). Lines longer than 16 KiB are cut.
std::shared_ptr<rocksdb::Logger> NewHookInfoLog(Logger hook, std::string source);

}  // namespace callvault

#endif  // CALLVAULT_ENGINE_INFO_LOG_H_
