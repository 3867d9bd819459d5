// RocksDB's CRC32C through the crc32 instruction (decision 0075): the
// engine's function (engine/crc32c.h), with the instruction and with its
// portable tables, matches RocksDB's own table-driven code on every length
// and alignment, the WAL scanner's CRC is it, and RocksDB's own calls (WAL
// records, table blocks) reach it in a binary linked with the static
// library.
#include <gtest/gtest.h>
#include <rocksdb/db.h>

#include <random>
#include <string>

#include "engine/crc32c.h"
#include "engine/crc32c_rocksdb.h"
#include "engine/wal_scan.h"
#include "tests/testutil/testutil.h"

// RocksDB's own function: with --wrap, __real_ names the original.
extern "C" uint32_t __real__ZN7rocksdb6crc32c6ExtendEjPKcm(uint32_t crc, const char* data, size_t n);

namespace callvault {
namespace {

uint32_t Ours(uint32_t crc, const std::string& s, size_t off, size_t n) {
  return crc32c::Extend(crc, s.data() + off, n);
}
uint32_t Theirs(uint32_t crc, const std::string& s, size_t off, size_t n) {
  return __real__ZN7rocksdb6crc32c6ExtendEjPKcm(crc, s.data() + off, n);
}

TEST(Crc32cTest, KnownVectors) {
  // RFC 3720 B.4 and the classic check value.
  EXPECT_EQ(crc32c::Extend(0, "123456789", 9), 0xE3069283u);
  const std::string zeros(32, '\0'), ones(32, '\xff');
  std::string ascending;
  for (int i = 0; i < 32; ++i) ascending.push_back(static_cast<char>(i));
  EXPECT_EQ(crc32c::Extend(0, zeros.data(), 32), 0x8A9136AAu);
  EXPECT_EQ(crc32c::Extend(0, ones.data(), 32), 0x62A8AB43u);
  EXPECT_EQ(crc32c::Extend(0, ascending.data(), 32), 0x46DD794Eu);
  EXPECT_EQ(crc32c::Extend(0, nullptr, 0), 0u);
}

TEST(Crc32cTest, MatchesRocksDbsOwnOnEveryLengthAndAlignment) {
  std::mt19937_64 rng(75);  // fixed: the same buffers on every run
  std::string buf(70000, '\0');
  for (auto& c : buf) c = static_cast<char>(rng());
  for (size_t off = 0; off < 16; ++off) {
    for (size_t n = 0; n <= 300; ++n) {
      const uint32_t init = static_cast<uint32_t>(rng());
      ASSERT_EQ(Ours(init, buf, off, n), Theirs(init, buf, off, n)) << "offset " << off << " length " << n;
      ASSERT_EQ(crc32c::ExtendPortable(init, buf.data() + off, n), Theirs(init, buf, off, n))
          << "portable: offset " << off << " length " << n;
      ASSERT_EQ(Ours(init, buf, off, n), walscan::Crc32c(buf.data() + off, n, init));
    }
  }
  for (size_t n : {4095u, 4096u, 4097u, 16389u, 65536u, 69990u}) {
    const size_t off = static_cast<size_t>(rng() % 8);
    EXPECT_EQ(Ours(0, buf, off, n), Theirs(0, buf, off, n)) << n;
  }
  // Extend continues a CRC: the CRC of a whole is the CRC of its parts.
  for (int i = 0; i < 200; ++i) {
    const size_t a = static_cast<size_t>(rng() % 5000), b = static_cast<size_t>(rng() % 5000);
    EXPECT_EQ(Ours(Ours(0, buf, 3, a), buf, 3 + a, b), Ours(0, buf, 3, a + b));
  }
}

// RocksDB's WAL records and table blocks go through it: a write and a
// flush each reach it. Fails when the static library's link option
// (engine/CMakeLists.txt) is lost.
TEST(Crc32cTest, RocksDbsOwnCallsReachIt) {
  testutil::TempDir tmp;
  rocksdb::Options o;
  o.create_if_missing = true;
  rocksdb::DB* raw = nullptr;
  ASSERT_TRUE(rocksdb::DB::Open(o, tmp.Sub("db"), &raw).ok());
  std::unique_ptr<rocksdb::DB> db(raw);
  crc32c::TakeReachedByRocksdb();
  ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), "k", std::string(5000, 'v')).ok());
  EXPECT_TRUE(crc32c::TakeReachedByRocksdb()) << "the WAL record's CRC did not come here";
  ASSERT_TRUE(db->Flush(rocksdb::FlushOptions()).ok());
  EXPECT_TRUE(crc32c::TakeReachedByRocksdb()) << "the table's block checksums did not come here";
  std::string v;
  ASSERT_TRUE(db->Get(rocksdb::ReadOptions(), "k", &v).ok());
  EXPECT_EQ(v, std::string(5000, 'v'));
#if defined(__x86_64__)
  EXPECT_TRUE(crc32c::Hardware()) << "an x86-64 CPU without SSE4.2: RocksDB's own code is used";
#endif
}

}  // namespace
}  // namespace callvault
