#include "format/rowkey.h"

#include <cstdio>

#include "format/coding.h"

namespace callvault::format {

std::string CallKeyPrefix(std::string_view call_hash) {
  std::string k(1, kCallPrefix);
  k.append(call_hash);
  return k;
}

std::string CallKey(std::string_view call_hash, Part part) {
  std::string k = CallKeyPrefix(call_hash);
  k.push_back(static_cast<char>(part));
  return k;
}

std::string TimeIndexKey(int64_t started_at, std::string_view call_hash) {
  std::string k(1, kTimeIndexPrefix);
  PutOrderedInt64(&k, started_at);
  k.append(call_hash);
  return k;
}

std::string SourceIndexKey(std::string_view source_hash) {
  std::string k(1, kSourceIndexPrefix);
  k.append(source_hash);
  return k;
}

std::string AttributeIndexPrefix(char prefix, std::string_view attr_hash) {
  std::string k(1, prefix);
  k.append(attr_hash);
  return k;
}

std::string AttributeIndexKey(char prefix, std::string_view attr_hash, int64_t started_at,
                              std::string_view call_hash) {
  std::string k = AttributeIndexPrefix(prefix, attr_hash);
  PutOrderedInt64(&k, started_at);
  k.append(call_hash);
  return k;
}

std::string UpdatedIndexKey(int64_t updated_at, std::string_view call_hash) {
  std::string k(1, kUpdatedIndexPrefix);
  PutOrderedInt64(&k, updated_at);
  k.append(call_hash);
  return k;
}

std::string RecordingKey(char kind, std::string_view call_hash, std::string_view recording_hash) {
  std::string k(1, kind);
  k.append(call_hash);
  k.append(recording_hash);
  return k;
}

std::string RecordingChunkKey(std::string_view call_hash, std::string_view recording_hash,
                              uint32_t index) {
  std::string k = RecordingKey(kRecordingChunkPrefix, call_hash, recording_hash);
  for (int i = 3; i >= 0; --i) k.push_back(static_cast<char>(index >> (8 * i)));
  return k;
}

std::string RegistryKey(std::string_view tenant_hash) {
  std::string k(1, kRegistryPrefix);
  k.append(tenant_hash);
  return k;
}

std::string ReceiptKey(uint64_t sequence) {
  std::string k(1, kReceiptPrefix);
  PutFixed64BE(&k, sequence);
  return k;
}

std::string AuditKey(uint64_t sequence) {
  std::string k(1, kAuditPrefix);
  PutFixed64BE(&k, sequence);
  return k;
}

std::string HeaderKey(std::string_view name) {
  std::string k(1, kHeaderPrefix);
  k.append(name);
  return k;
}

std::optional<ParsedCallKey> ParseCallKey(std::string_view key) {
  if (key.size() != 1 + kHashBytes + 1 || key[0] != kCallPrefix) return std::nullopt;
  uint8_t part = static_cast<uint8_t>(key[1 + kHashBytes]);
  if (part >= kPartCount) return std::nullopt;
  return ParsedCallKey{key.substr(1, kHashBytes), static_cast<Part>(part)};
}

std::optional<ParsedTimeKey> ParseTimeIndexKey(std::string_view key) {
  if (key.size() != 1 + 8 + kHashBytes || key[0] != kTimeIndexPrefix) return std::nullopt;
  return ParsedTimeKey{DecodeOrderedInt64(key.data() + 1), key.substr(9, kHashBytes)};
}

std::optional<ParsedTimeKey> ParseIndexTail(std::string_view key) {
  if (key.empty()) return std::nullopt;
  size_t expect = 0;
  switch (key[0]) {
    case kTimeIndexPrefix:
    case kUpdatedIndexPrefix:
      expect = 1 + 8 + kHashBytes;
      break;
    case kOwnerIndexPrefix:
    case kParticipantIndexPrefix:
    case kCrmIndexPrefix:
    case kWorkspaceIndexPrefix:
      expect = 1 + kHashBytes + 8 + kHashBytes;
      break;
    default:
      return std::nullopt;
  }
  if (key.size() != expect) return std::nullopt;
  const char* tail = key.data() + key.size() - kHashBytes - 8;
  return ParsedTimeKey{DecodeOrderedInt64(tail), key.substr(key.size() - kHashBytes)};
}

std::string DictionaryKey(uint32_t dict_id) {
  std::string k(1, kDictionaryPrefix);
  for (int shift = 24; shift >= 0; shift -= 8) k.push_back(static_cast<char>(dict_id >> shift));
  return k;
}

std::optional<uint32_t> ParseDictionaryKey(std::string_view key) {
  if (key.size() != 5 || key[0] != kDictionaryPrefix) return std::nullopt;
  uint32_t id = 0;
  for (size_t i = 1; i < 5; ++i) id = (id << 8) | static_cast<uint8_t>(key[i]);
  return id;
}

bool IsIndexKey(std::string_view key) { return ParseIndexTail(key).has_value(); }

std::string ColumnFamilyName(uint64_t internal_id, uint32_t family) {
  char buf[40];
  if (family == 0) {
    std::snprintf(buf, sizeof buf, "t%016llx", static_cast<unsigned long long>(internal_id));
  } else {
    std::snprintf(buf, sizeof buf, "t%016llxr%08x", static_cast<unsigned long long>(internal_id),
                  static_cast<unsigned>(family));
  }
  return buf;
}

namespace {
bool ParseLowerHex(std::string_view digits, uint64_t* out) {
  uint64_t v = 0;
  for (char c : digits) {
    int d;
    if (c >= '0' && c <= '9') d = c - '0';
    else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
    else return false;
    v = (v << 4) | static_cast<uint64_t>(d);
  }
  *out = v;
  return true;
}
}  // namespace

std::optional<FamilyId> ParseFamilyName(std::string_view name) {
  if ((name.size() != 17 && name.size() != 26) || name[0] != 't') return std::nullopt;
  FamilyId f;
  if (!ParseLowerHex(name.substr(1, 16), &f.internal_id)) return std::nullopt;
  if (name.size() == 26) {
    uint64_t family = 0;
    if (name[17] != 'r' || !ParseLowerHex(name.substr(18), &family) || family == 0) {
      return std::nullopt;
    }
    f.family = static_cast<uint32_t>(family);
  }
  return f;
}

std::optional<uint64_t> ParseColumnFamilyName(std::string_view name) {
  auto f = ParseFamilyName(name);
  if (!f) return std::nullopt;
  return f->internal_id;
}

}  // namespace callvault::format
