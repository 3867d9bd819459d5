#include "format/keyring_format.h"

#include <cstring>

#include "format/coding.h"

namespace callvault::format {

namespace {
constexpr char kMagic[4] = {'C', 'V', 'K', 'R'};

void Store32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
void Store64(uint8_t* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
}  // namespace

std::string EncodeKeyringHeader(const KeyringHeader& h) {
  std::string out(kMagic, 4);
  out.push_back(static_cast<char>(kKeyringVersion));
  PutFixed32LE(&out, h.kek_generation);
  PutFixed64LE(&out, h.keyring_generation);
  std::string id = h.store_id;
  id.resize(kStoreIdBytes, '\0');
  out.append(id);
  return out;
}

bool ParseKeyringHeader(std::string_view file, KeyringHeader* out) {
  if (file.size() < kKeyringHeaderBytes) return false;
  if (std::memcmp(file.data(), kMagic, 4) != 0) return false;
  if (static_cast<uint8_t>(file[4]) != kKeyringVersion) return false;
  out->kek_generation = DecodeFixed32LE(file.data() + 5);
  out->keyring_generation = DecodeFixed64LE(file.data() + 9);
  out->store_id = std::string(file.substr(17, kStoreIdBytes));
  return true;
}

std::string ParseKeyringBody(const uint8_t* body, size_t size, KeyringBodyView* out) {
  if (size < kKeyringBodyFixedBytes) return "keyring body too short";
  if (body[0] != 1) return "unknown keyring body version";
  const char* p = reinterpret_cast<const char*>(body);
  uint32_t n = DecodeFixed32LE(p + 65);
  if (n > kMaxKeyringEntries) return "keyring entry count over limit";
  if (size != KeyringBodySize(n)) return "keyring body size does not match its entry count";
  out->store_data_key = body + 1;
  out->store_index_key = body + 33;
  out->entries.clear();
  out->entries.reserve(n);
  for (uint32_t i = 0; i < n; ++i) {
    const char* e = p + kKeyringBodyFixedBytes + i * kKeyringEntryBytes;
    KeyringEntryView v{DecodeFixed64LE(e), DecodeFixed32LE(e + 8),
                       reinterpret_cast<const uint8_t*>(e + 12)};
    if (!out->entries.empty()) {
      const auto& prev = out->entries.back();
      if (prev.internal_id > v.internal_id ||
          (prev.internal_id == v.internal_id && prev.key_version >= v.key_version)) {
        return "keyring entries out of order or duplicated";
      }
    }
    out->entries.push_back(v);
  }
  return "";
}

void EncodeKeyringBodyFixed(uint8_t* out, const uint8_t* store_data_key,
                            const uint8_t* store_index_key, uint32_t entries) {
  out[0] = 1;
  std::memcpy(out + 1, store_data_key, kKeyBytes);
  std::memcpy(out + 33, store_index_key, kKeyBytes);
  Store32(out + 65, entries);
}

void EncodeKeyringEntry(uint8_t* out, size_t index, uint64_t internal_id, uint32_t key_version,
                        const uint8_t* key) {
  uint8_t* e = out + kKeyringBodyFixedBytes + index * kKeyringEntryBytes;
  Store64(e, internal_id);
  Store32(e + 8, key_version);
  std::memcpy(e + 12, key, kKeyBytes);
}

}  // namespace callvault::format
