#include "format/cursor.h"

#include "format/coding.h"

namespace callvault::format {

namespace {
constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

int DecodeChar(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '-') return 62;
  if (c == '_') return 63;
  return -1;
}
}  // namespace

std::string Base64UrlEncode(std::string_view bytes) {
  std::string out;
  size_t i = 0;
  uint32_t acc = 0;
  int bits = 0;
  for (; i < bytes.size(); ++i) {
    acc = (acc << 8) | static_cast<uint8_t>(bytes[i]);
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out.push_back(kAlphabet[(acc >> bits) & 63]);
    }
  }
  if (bits > 0) out.push_back(kAlphabet[(acc << (6 - bits)) & 63]);
  return out;
}

std::optional<std::string> Base64UrlDecode(std::string_view text) {
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : text) {
    int d = DecodeChar(c);
    if (d < 0) return std::nullopt;
    acc = (acc << 6) | static_cast<uint32_t>(d);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  // Leftover bits must be zero padding of fewer than 8 bits.
  if (bits >= 6 || (acc & ((1u << bits) - 1)) != 0) return std::nullopt;
  return out;
}

std::string CursorMacInput(const Cursor& c) {
  std::string b;
  b.push_back(1);
  b.push_back(c.newest_first ? 1 : 0);
  PutFixed64LE(&b, static_cast<uint64_t>(c.last_started_at));
  b.append(c.last_hash);
  b.append(c.query_hash);
  return b;
}

std::string EncodeCursor(const Cursor& c) { return Base64UrlEncode(CursorMacInput(c) + c.mac); }

std::optional<Cursor> DecodeCursor(std::string_view text) {
  auto raw = Base64UrlDecode(text);
  if (!raw || raw->size() != kCursorBytes) return std::nullopt;
  const std::string& b = *raw;
  if (b[0] != 1 || (static_cast<uint8_t>(b[1]) & ~1u) != 0) return std::nullopt;
  Cursor c;
  c.newest_first = b[1] == 1;
  c.last_started_at = static_cast<int64_t>(DecodeFixed64LE(b.data() + 2));
  c.last_hash = b.substr(10, 16);
  c.query_hash = b.substr(26, 16);
  c.mac = b.substr(kCursorMacOffset, 16);
  return c;
}

}  // namespace callvault::format
