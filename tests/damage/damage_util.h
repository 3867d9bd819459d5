// Helpers shared by the damage suites (damage_test.cc, attack11_test.cc):
// bytes damaged by hand in a closed store's files, and where those files
// are. Header-only (each suite is one binary).
#ifndef CALLVAULT_TESTS_DAMAGE_DAMAGE_UTIL_H_
#define CALLVAULT_TESTS_DAMAGE_DAMAGE_UTIL_H_

#include <gtest/gtest.h>
#include <rocksdb/metadata.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "tests/testutil/raw_shard.h"
#include "tests/testutil/testutil.h"

namespace callvault::damage {

// XORs `n` bytes of `path` from `offset` with `mask`.
inline void XorBytes(const std::string& path, uint64_t offset, size_t n, uint8_t mask = 0x5a) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  ASSERT_TRUE(f) << path;
  for (size_t i = 0; i < n; ++i) {
    f.seekg(static_cast<std::streamoff>(offset + i));
    char c = 0;
    f.read(&c, 1);
    c = static_cast<char>(c ^ mask);
    f.seekp(static_cast<std::streamoff>(offset + i));
    f.write(&c, 1);
  }
}

// One bit (by default) of one byte.
// 300 bytes appended to a log file (a MANIFEST): a full record header of
// 40 bytes whose checksum fails, then junk: what a torn, garbled write
// past the synced end leaves (decision 0067).
inline void AppendGarbledRecord(const std::string& path) {
  std::ofstream f(path, std::ios::app | std::ios::binary);
  std::string junk(300, '\0');
  for (size_t i = 0; i < junk.size(); ++i) junk[i] = static_cast<char>(i * 37 + 11);
  junk[4] = 40, junk[5] = 0, junk[6] = 1;  // length 40, kFullType
  f << junk;
}

inline void XorByte(const std::string& path, uint64_t offset, uint8_t mask = 0x01) {
  XorBytes(path, offset, 1, mask);
}

inline void ZeroBytes(const std::string& path, uint64_t offset, size_t n) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  ASSERT_TRUE(f) << path;
  f.seekp(static_cast<std::streamoff>(offset));
  std::string z(n, '\0');
  f.write(z.data(), static_cast<std::streamsize>(n));
}

// The files of `dir` ending in `ext`, sorted by name.
inline std::vector<std::string> FilesWith(const std::string& dir, const std::string& ext) {
  std::vector<std::string> v;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.path().extension() == ext) v.push_back(e.path().string());
  }
  std::sort(v.begin(), v.end());
  return v;
}

inline std::string Shard0(const testutil::TestStore& s) { return s.db + "/shards/0000"; }

// The newest WAL of shard 0 and its size now (the store is open: synced);
// with `non_empty`, the newest one that holds anything.
inline std::pair<std::string, uint64_t> NewestWal(const testutil::TestStore& s,
                                                  bool non_empty = false) {
  auto v = FilesWith(Shard0(s), ".log");
  for (auto it = v.rbegin(); it != v.rend(); ++it) {
    const uint64_t size = std::filesystem::file_size(*it);
    if (!non_empty || size > 0) return {*it, size};
  }
  return {v.empty() ? "" : v.back(), 0};
}

// The SST files of one family of the shard in `shard_dir` (the store
// closed), in RocksDB's level order.
inline std::vector<std::string> FamilySsts(const std::string& shard_dir, const std::string& cf) {
  testutil::RawShard raw(shard_dir, /*read_only=*/true);
  EXPECT_TRUE(raw.status().ok()) << raw.status().ToString();
  std::vector<std::string> v;
  if (!raw.status().ok()) return v;
  rocksdb::ColumnFamilyMetaData md;
  raw.db()->GetColumnFamilyMetaData(raw.cf(cf), &md);
  for (const auto& l : md.levels) {
    for (const auto& f : l.files) {
      v.push_back(shard_dir + "/" + std::filesystem::path(f.name).filename().string());
    }
  }
  return v;
}

// The SST files of one family of shard 0 (the store closed).
inline std::vector<std::string> TenantSsts(const testutil::TestStore& s, const std::string& cf) {
  return FamilySsts(Shard0(s), cf);
}

}  // namespace callvault::damage

#endif  // CALLVAULT_TESTS_DAMAGE_DAMAGE_UTIL_H_
