// The keyring file: every live tenant's data keys and the store keys, sealed
// as a whole under one KEK generation. Spec: docs/format.md, "Keyring".
//
// File (KEYRING-<gen> in the key directory):
//   0   4   magic "CVKR"
//   4   1   format version (kKeyringVersion)
//   5   4   KEK generation, little-endian
//   9   8   keyring generation, little-endian
//   17  16  store id
//   33  ..  sealed body: nonce (24) || ciphertext || tag (16)
// The 33 header bytes are the associated data of the seal.
//
// Body (plaintext; only ever in locked memory):
//   0   1   body version (1)
//   1   32  store data key (seals registry records and receipts)
//   33  32  store index key (blind hashes of tenant ids)
//   65  4   entry count n, little-endian
//   69  n * 44: internal id (8, LE) || key version (4, LE) || DEK (32)
// Entries are sorted by (internal id, key version), without duplicates.
#ifndef CALLVAULT_FORMAT_KEYRING_FORMAT_H_
#define CALLVAULT_FORMAT_KEYRING_FORMAT_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace callvault::format {

inline constexpr uint8_t kKeyringVersion = 1;
inline constexpr size_t kKeyringHeaderBytes = 33;
inline constexpr size_t kStoreIdBytes = 16;
inline constexpr size_t kKeyBytes = 32;
inline constexpr size_t kKeyringBodyFixedBytes = 69;
inline constexpr size_t kKeyringEntryBytes = 44;
// At most this many entries (a store of 100,000 tenants with spare).
inline constexpr uint32_t kMaxKeyringEntries = 1u << 20;

struct KeyringHeader {
  uint32_t kek_generation = 0;
  uint64_t keyring_generation = 0;
  std::string store_id;  // kStoreIdBytes
};

std::string EncodeKeyringHeader(const KeyringHeader& h);
// false if the magic, version or size is wrong.
bool ParseKeyringHeader(std::string_view file, KeyringHeader* out);

struct KeyringEntryView {
  uint64_t internal_id;
  uint32_t key_version;
  const uint8_t* key;  // kKeyBytes, points into the body
};

struct KeyringBodyView {
  const uint8_t* store_data_key;
  const uint8_t* store_index_key;
  std::vector<KeyringEntryView> entries;
};

inline size_t KeyringBodySize(size_t entries) {
  return kKeyringBodyFixedBytes + entries * kKeyringEntryBytes;
}

// Parses a decrypted body in place. Returns an error message, or "" when the
// body is well formed (sizes, count, sort order).
std::string ParseKeyringBody(const uint8_t* body, size_t size, KeyringBodyView* out);

// Writes the fixed part of a body into `out` (KeyringBodySize(n) bytes);
// then call EncodeKeyringEntry for i in [0, n).
void EncodeKeyringBodyFixed(uint8_t* out, const uint8_t* store_data_key,
                            const uint8_t* store_index_key, uint32_t entries);
void EncodeKeyringEntry(uint8_t* out, size_t index, uint64_t internal_id, uint32_t key_version,
                        const uint8_t* key);

}  // namespace callvault::format

#endif  // CALLVAULT_FORMAT_KEYRING_FORMAT_H_
