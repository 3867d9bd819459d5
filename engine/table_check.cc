#include "engine/table_check.h"

#include <cstring>
#include <string_view>
#include <vector>

#include "engine/wal_scan.h"

// RocksDB's own xxHash (util/xxhash.h, namespaced ROCKSDB_), exported by
// Debian's librocksdb 7.8: the very functions its block checksums use.
extern "C" {
uint32_t ROCKSDB_XXH32(const void* input, size_t length, uint32_t seed);
uint64_t ROCKSDB_XXH64(const void* input, size_t length, uint64_t seed);
uint64_t ROCKSDB_XXH3_64bits(const void* input, size_t length);
}

namespace callvault::tablecheck {
namespace {

// table/format.h, table/block_based/block_based_table_builder.cc (7.8.3).
constexpr uint64_t kBlockBasedTableMagic = 0x88e241b785f4cff7ull;
constexpr size_t kFooterSize = 1 + 40 + 4 + 8;  // format_version >= 1
constexpr size_t kTrailerSize = 5;              // compression type + checksum
constexpr uint64_t kMaxMetaBlock = 64u << 20;   // metaindex, properties: a few KiB
enum : uint8_t { kNoChecksum = 0, kCRC32c = 1, kxxHash = 2, kxxHash64 = 3, kXXH3 = 4 };

uint32_t Fixed32(const char* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;  // little-endian host (x86-64, arm64)
}
uint64_t Fixed64(const char* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

bool Varint64(std::string_view* in, uint64_t* v) {
  *v = 0;
  for (int shift = 0; shift <= 63 && !in->empty(); shift += 7) {
    const auto b = static_cast<uint8_t>(in->front());
    in->remove_prefix(1);
    *v |= static_cast<uint64_t>(b & 0x7f) << shift;
    if (!(b & 0x80)) return true;
  }
  return false;
}

struct Handle {
  uint64_t offset = 0;
  uint64_t size = 0;
};

bool DecodeHandle(std::string_view* in, Handle* h) {
  return Varint64(in, &h->offset) && Varint64(in, &h->size);
}

// table/format.cc ComputeBuiltinChecksumWithLastByte: the checksum of a
// block's `n` bytes and the compression type byte after them.
uint32_t Checksum(uint8_t type, const char* data, size_t n) {
  switch (type) {
    case kCRC32c:
      return walscan::Mask(walscan::Crc32c(data, n + 1));
    case kxxHash:
      return ROCKSDB_XXH32(data, n + 1, 0);
    case kxxHash64:
      return static_cast<uint32_t>(ROCKSDB_XXH64(data, n + 1, 0));
    case kXXH3: {
      const auto v = static_cast<uint32_t>(ROCKSDB_XXH3_64bits(data, n));
      return v ^ (static_cast<uint32_t>(static_cast<uint8_t>(data[n])) * 0x6b9083d9u);
    }
    default:
      return 0;
  }
}

class Checker {
 public:
  Checker(rocksdb::FSRandomAccessFile* file, uint64_t size, const std::string& path)
      : file_(file), size_(size), path_(path) {}

  rocksdb::IOStatus Run() {
    if (size_ < kFooterSize) return rocksdb::IOStatus::OK();  // RocksDB: "too short"
    std::string footer;
    rocksdb::IOStatus s = ReadAt(size_ - kFooterSize, kFooterSize, &footer);
    if (!s.ok() || footer.size() != kFooterSize) return s;
    if (Fixed64(footer.data() + kFooterSize - 8) != kBlockBasedTableMagic) return s;
    const uint32_t version = Fixed32(footer.data() + kFooterSize - 12);
    if (version < 1 || version > 5) return s;  // RocksDB refuses it
    checksum_type_ = static_cast<uint8_t>(footer[0]);
    if (checksum_type_ == kNoChecksum) {
      return Bad("its footer says its blocks have no checksums, which this store never writes");
    }
    if (checksum_type_ > kXXH3) return s;  // RocksDB refuses it
    std::string_view part2(footer.data() + 1, 40);
    Handle metaindex;
    if (!DecodeHandle(&part2, &metaindex)) return s;  // RocksDB refuses it
    std::string block;
    s = ReadBlock(metaindex, "metaindex", &block);
    if (!s.ok()) return s;
    Handle props;
    bool found = false;
    s = FindProperties(block, &props, &found);
    if (!s.ok() || !found) return s;
    return ReadBlock(props, "properties", &block);
  }

 private:
  rocksdb::IOStatus Bad(const std::string& why) const {
    return rocksdb::IOStatus::Corruption("table file " + path_ + ": " + why);
  }

  rocksdb::IOStatus ReadAt(uint64_t offset, size_t n, std::string* out) {
    out->assign(n, '\0');
    rocksdb::Slice got;
    rocksdb::IOStatus s = file_->Read(offset, n, rocksdb::IOOptions(), &got, out->data(), nullptr);
    if (!s.ok()) return s;
    if (got.data() != out->data()) std::memmove(out->data(), got.data(), got.size());
    out->resize(got.size());
    return s;
  }

  // The block `h` with its trailer, checked; `out` = the block alone.
  rocksdb::IOStatus ReadBlock(const Handle& h, const char* what, std::string* out) {
    const uint64_t end = size_ - kFooterSize;
    if (h.size > kMaxMetaBlock || h.offset > end || h.size + kTrailerSize > end - h.offset) {
      return Bad(std::string("its ") + what + " block lies outside the file (damaged footer or metaindex)");
    }
    const size_t n = static_cast<size_t>(h.size);
    rocksdb::IOStatus s = ReadAt(h.offset, n + kTrailerSize, out);
    if (!s.ok()) return s;
    if (out->size() != n + kTrailerSize) return Bad(std::string("its ") + what + " block is cut short");
    if (Fixed32(out->data() + n + 1) != Checksum(checksum_type_, out->data(), n)) {
      return Bad(std::string("its ") + what + " block does not match its checksum");
    }
    out->resize(n);
    return s;
  }

  // The metaindex block (checksum-checked, so as RocksDB wrote it; parsed
  // defensively anyway): restart-point entries "shared, non_shared,
  // value_length, key delta, value", the value a block handle.
  rocksdb::IOStatus FindProperties(const std::string& block, Handle* props, bool* found) {
    if (block.size() < 4) return Bad("its metaindex block is too short");
    const uint32_t restarts = Fixed32(block.data() + block.size() - 4) & 0x7fffffffu;
    if ((static_cast<uint64_t>(restarts) + 1) * 4 > block.size()) {
      return Bad("its metaindex block is malformed");
    }
    std::string_view in(block.data(), block.size() - (static_cast<size_t>(restarts) + 1) * 4);
    std::string key;
    while (!in.empty()) {
      uint64_t shared, non_shared, value_len;
      if (!Varint64(&in, &shared) || !Varint64(&in, &non_shared) || !Varint64(&in, &value_len) ||
          shared > key.size() || non_shared > in.size() || value_len > in.size() - non_shared) {
        return Bad("its metaindex block is malformed");
      }
      key.resize(static_cast<size_t>(shared));
      key.append(in.data(), static_cast<size_t>(non_shared));
      in.remove_prefix(static_cast<size_t>(non_shared));
      std::string_view value(in.data(), static_cast<size_t>(value_len));
      in.remove_prefix(static_cast<size_t>(value_len));
      if (key == "rocksdb.properties") {
        if (!DecodeHandle(&value, props)) return Bad("its metaindex block is malformed");
        *found = true;
        return rocksdb::IOStatus::OK();
      }
    }
    return rocksdb::IOStatus::OK();
  }

  rocksdb::FSRandomAccessFile* file_;
  const uint64_t size_;
  const std::string& path_;
  uint8_t checksum_type_ = kNoChecksum;
};

bool EndsWith(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

bool IsTableFile(const std::string& path) { return EndsWith(path, ".sst") || EndsWith(path, ".ldb"); }

rocksdb::IOStatus CheckTableFile(rocksdb::FSRandomAccessFile* file, uint64_t size,
                                 const std::string& path) {
  return Checker(file, size, path).Run();
}

}  // namespace callvault::tablecheck
