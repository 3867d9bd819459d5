// Row keys. Spec: docs/format.md, "Row keys". No identifier is ever in a key
// in the clear: ids appear only as keyed blind hashes (kHashBytes, computed
// by the engine under the tenant's index subkey). Timestamps are in the
// clear (big-endian, sign bit flipped) so that ranges scan.
//
// Tenant column family:
//   'C' h(call_id) part          sealed part of a call (Part)
//   'T' started_at h(call_id)    time index; empty value
//   'S' h(source)                source index; value: sealed h(call_id)
//   'O' h(owner) started_at h(call_id)            owner index; empty value
//   'E' h(email|phone) started_at h(call_id)      participant index; empty value
//   'K' h(crm system,type,id) started_at h(call_id)  CRM index; empty value
//   'W' h(workspace) started_at h(call_id)        workspace index; empty value
//   'U' updated_at h(call_id)                     updated index; empty value
//   'M' h(call_id) h(recording_id)                sealed RecordingManifest
//   'P' h(call_id) h(recording_id)                recording being written
//   'D' h(call_id) h(recording_id) chunk (4, BE)  recording chunk
//   'H' h(call_id) h(hold_id)                     sealed Hold on one call
//   'N' h(call_id)                                sealed empty: pinned, exempt from retention
//   'Z' dict_id (4, BE)                           sealed zstd dictionary trained from this
//                                                 tenant's records (codec kZstdDict)
//   'V'                                           sealed version counter (format 2)
//   'L' sequence (8, BE)                          sealed change feed event (format 3)
// Index entries carry no value: a listing checks every candidate against
// the call's sealed summary part (Part::kSummary), so a forged or stale
// index entry can never make a call match.
// Metadata instance (default column family):
//   'R' h_store(tenant_id)       sealed TenantRecord
//   'Q' sequence (8, BE)         sealed ReceiptRecord
//   'A' sequence (8, BE)         sealed AuditRecord
//   'F' time (8, BE) random (8)  plain text "code: message": a keyring failure
//                                seen before the keys could open (folded into
//                                the audit log at the next successful open)
//   'X' name                     store header values (format.md)
#ifndef CALLVAULT_FORMAT_ROWKEY_H_
#define CALLVAULT_FORMAT_ROWKEY_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace callvault::format {

inline constexpr size_t kHashBytes = 16;

// Do not change the values of existing entries: they are on disk.
inline constexpr char kCallPrefix = 'C';
inline constexpr char kTimeIndexPrefix = 'T';
inline constexpr char kSourceIndexPrefix = 'S';
inline constexpr char kRegistryPrefix = 'R';
inline constexpr char kReceiptPrefix = 'Q';
inline constexpr char kHeaderPrefix = 'X';
inline constexpr char kOwnerIndexPrefix = 'O';
inline constexpr char kParticipantIndexPrefix = 'E';
inline constexpr char kCrmIndexPrefix = 'K';
inline constexpr char kWorkspaceIndexPrefix = 'W';
inline constexpr char kUpdatedIndexPrefix = 'U';
inline constexpr char kRecordingManifestPrefix = 'M';
inline constexpr char kRecordingPendingPrefix = 'P';
inline constexpr char kRecordingChunkPrefix = 'D';
inline constexpr char kCallHoldPrefix = 'H';
inline constexpr char kPinPrefix = 'N';
inline constexpr char kAuditPrefix = 'A';
inline constexpr char kPendingFailurePrefix = 'F';
inline constexpr char kDictionaryPrefix = 'Z';
// Tenant column families, store format 2: the one row 'V' whose sealed value
// is the highest call version assigned in the tenant (8 bytes BE). (In the
// metadata instance 'V' rows are move ids; the two never meet.)
inline constexpr char kVersionCounterPrefix = 'V';
// Tenant column families, store format 3: the change feed
// (docs/decisions/0030), 'L' + event sequence (8 bytes BE); sealed event.
inline constexpr char kChangePrefix = 'L';
// Metadata instance: a damaged tenant (docs/decisions/0014), keyed by
// internal id: kDamagePrefix + 8-byte big-endian internal id.
inline constexpr char kDamagePrefix = 'B';

enum class Part : uint8_t { kMeta = 0, kTranscript = 1, kInsights = 2, kSummary = 3 };
inline constexpr int kPartCount = 4;

std::string CallKey(std::string_view call_hash, Part part);
// The prefix shared by every part of one call.
std::string CallKeyPrefix(std::string_view call_hash);
std::string TimeIndexKey(int64_t started_at, std::string_view call_hash);
std::string SourceIndexKey(std::string_view source_hash);
// The tenant's version counter row: kVersionCounterPrefix alone.
inline std::string VersionCounterKey() { return std::string(1, kVersionCounterPrefix); }
// A change feed event's row: kChangePrefix + sequence (8 bytes BE).
inline std::string ChangeKey(uint64_t seq) {
  std::string k(1, kChangePrefix);
  for (int i = 7; i >= 0; --i) k.push_back(static_cast<char>((seq >> (8 * i)) & 0xff));
  return k;
}
inline std::optional<uint64_t> ParseChangeKey(std::string_view key) {
  if (key.size() != 9 || key[0] != kChangePrefix) return std::nullopt;
  uint64_t seq = 0;
  for (size_t i = 1; i < 9; ++i) seq = (seq << 8) | static_cast<uint8_t>(key[i]);
  return seq;
}
// 'O' / 'E' / 'K' / 'W' entries: prefix, attribute hash, then the time key.
std::string AttributeIndexPrefix(char prefix, std::string_view attr_hash);
std::string AttributeIndexKey(char prefix, std::string_view attr_hash, int64_t started_at,
                              std::string_view call_hash);
std::string UpdatedIndexKey(int64_t updated_at, std::string_view call_hash);
std::string RegistryKey(std::string_view tenant_hash);
std::string ReceiptKey(uint64_t sequence);
std::string AuditKey(uint64_t sequence);
std::string HeaderKey(std::string_view name);
// A tenant's compression dictionary; ids start at 1.
std::string DictionaryKey(uint32_t dict_id);
std::optional<uint32_t> ParseDictionaryKey(std::string_view key);

struct ParsedCallKey {
  std::string_view call_hash;
  Part part;
};
std::optional<ParsedCallKey> ParseCallKey(std::string_view key);

struct ParsedTimeKey {
  int64_t started_at;
  std::string_view call_hash;
};
std::optional<ParsedTimeKey> ParseTimeIndexKey(std::string_view key);
// Parses the (time, call hash) tail of a 'T', 'U' or attribute index key.
std::optional<ParsedTimeKey> ParseIndexTail(std::string_view key);
bool IsIndexKey(std::string_view key);

// Recordings. `kind` is one of the three recording prefixes; with an empty
// recording hash, the prefix of every recording of a call.
std::string RecordingKey(char kind, std::string_view call_hash, std::string_view recording_hash);
std::string RecordingChunkKey(std::string_view call_hash, std::string_view recording_hash,
                              uint32_t index);

// Column family names: opaque, from the tenant's internal id.
// "t" + 16 hex digits (family 0, every tenant until its first key
// rotation), or "t" + 16 hex digits + "r" + 8 hex digits (family n > 0,
// after n rotations: docs/decisions/0036).
std::string ColumnFamilyName(uint64_t internal_id, uint32_t family = 0);
struct FamilyId {
  uint64_t internal_id = 0;
  uint32_t family = 0;
};
// Either form, canonical (lower case) only; "t<id>r00000000" is not.
std::optional<FamilyId> ParseFamilyName(std::string_view name);
// The internal id of either form.
std::optional<uint64_t> ParseColumnFamilyName(std::string_view name);

}  // namespace callvault::format

#endif  // CALLVAULT_FORMAT_ROWKEY_H_
