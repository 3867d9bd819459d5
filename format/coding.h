// Fixed-width integer encoding. Bytes only: no RocksDB, no libsodium here.
#ifndef CALLVAULT_FORMAT_CODING_H_
#define CALLVAULT_FORMAT_CODING_H_

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace callvault::format {

inline void PutFixed32LE(std::string* dst, uint32_t v) {
  char b[4];
  for (int i = 0; i < 4; ++i) b[i] = static_cast<char>(v >> (8 * i));
  dst->append(b, 4);
}
inline void PutFixed64LE(std::string* dst, uint64_t v) {
  char b[8];
  for (int i = 0; i < 8; ++i) b[i] = static_cast<char>(v >> (8 * i));
  dst->append(b, 8);
}
// Big-endian keeps byte order equal to numeric order (for row keys).
inline void PutFixed64BE(std::string* dst, uint64_t v) {
  char b[8];
  for (int i = 0; i < 8; ++i) b[i] = static_cast<char>(v >> (56 - 8 * i));
  dst->append(b, 8);
}
inline uint32_t DecodeFixed32LE(const char* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= static_cast<uint32_t>(static_cast<uint8_t>(p[i])) << (8 * i);
  return v;
}
inline uint64_t DecodeFixed64LE(const char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= static_cast<uint64_t>(static_cast<uint8_t>(p[i])) << (8 * i);
  return v;
}
inline uint64_t DecodeFixed64BE(const char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}
// int64 timestamps in keys: flip the sign bit so that byte order is
// numeric order for negative values too.
inline void PutOrderedInt64(std::string* dst, int64_t v) {
  PutFixed64BE(dst, static_cast<uint64_t>(v) ^ (uint64_t{1} << 63));
}
inline int64_t DecodeOrderedInt64(const char* p) {
  return static_cast<int64_t>(DecodeFixed64BE(p) ^ (uint64_t{1} << 63));
}

}  // namespace callvault::format

#endif  // CALLVAULT_FORMAT_CODING_H_
