// List cursors: opaque to callers, tamper-evident. Spec: docs/format.md,
// "Cursor". The engine fills `query_hash` (binding the cursor to the query)
// and `mac` (a keyed hash under the tenant's cursor subkey); this file only
// lays out the bytes.
//
//   0  1   version (1)
//   1  1   flags: bit 0 = newest first
//   2  8   started_at of the last call returned, little-endian
//   10 16  blind hash of the last call returned
//   26 16  query hash
//   42 16  MAC over bytes 0..41
// Text form: base64url without padding (78 characters).
#ifndef CALLVAULT_FORMAT_CURSOR_H_
#define CALLVAULT_FORMAT_CURSOR_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace callvault::format {

inline constexpr size_t kCursorBytes = 58;
inline constexpr size_t kCursorMacOffset = 42;

struct Cursor {
  bool newest_first = true;
  int64_t last_started_at = 0;
  std::string last_hash;   // 16 bytes
  std::string query_hash;  // 16 bytes
  std::string mac;         // 16 bytes
};

// The 42 bytes the MAC covers.
std::string CursorMacInput(const Cursor& c);
std::string EncodeCursor(const Cursor& c);  // base64url text
std::optional<Cursor> DecodeCursor(std::string_view text);

std::string Base64UrlEncode(std::string_view bytes);
std::optional<std::string> Base64UrlDecode(std::string_view text);

}  // namespace callvault::format

#endif  // CALLVAULT_FORMAT_CURSOR_H_
