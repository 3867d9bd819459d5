// The summary part of a call (Part::kSummary): the few attributes a listing
// filters on, as small fixed fields and 8-byte truncated blind hashes, so
// that a filtered listing decides on a candidate without decrypting its
// metadata. Spec: docs/format.md, "Call summary". Sealed like every record.
//
//   0   1   version (1)
//   1   8   started_at, LE
//   9   8   updated_at, LE
//   17  4   duration_ms, LE
//   21  1   direction
//   22  1   scope
//   23  8   owner hash (zeros: none)
//   31  8   workspace hash (zeros: none)
//   39  then three lists, each a u16 LE count and count * 8 bytes:
//           tag hashes, participant (email and phone) hashes, CRM hashes
#ifndef CALLVAULT_FORMAT_SUMMARY_H_
#define CALLVAULT_FORMAT_SUMMARY_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace callvault::format {

inline constexpr size_t kShortHashBytes = 8;

struct Summary {
  int64_t started_at = 0;
  int64_t updated_at = 0;
  uint32_t duration_ms = 0;
  uint8_t direction = 0;
  uint8_t scope = 0;
  std::string owner;      // kShortHashBytes or empty
  std::string workspace;  // kShortHashBytes or empty
  std::vector<std::string> tags;
  std::vector<std::string> participants;
  std::vector<std::string> crm;
};

std::string EncodeSummary(const Summary& s);
std::optional<Summary> DecodeSummary(std::string_view bytes);

}  // namespace callvault::format

#endif  // CALLVAULT_FORMAT_SUMMARY_H_
