#include "format/summary.h"

#include <algorithm>

#include "format/coding.h"

namespace callvault::format {

namespace {
void PutHash(std::string* out, const std::string& h) {
  std::string v = h;
  v.resize(kShortHashBytes, '\0');
  out->append(v);
}

void PutList(std::string* out, const std::vector<std::string>& v) {
  uint16_t n = static_cast<uint16_t>(std::min<size_t>(v.size(), 0xffff));
  out->push_back(static_cast<char>(n & 0xff));
  out->push_back(static_cast<char>(n >> 8));
  for (size_t i = 0; i < n; ++i) PutHash(out, v[i]);
}

bool GetList(std::string_view* in, std::vector<std::string>* v) {
  if (in->size() < 2) return false;
  size_t n = static_cast<uint8_t>((*in)[0]) | (static_cast<size_t>(static_cast<uint8_t>((*in)[1])) << 8);
  in->remove_prefix(2);
  if (in->size() < n * kShortHashBytes) return false;
  v->clear();
  for (size_t i = 0; i < n; ++i) {
    v->emplace_back(in->substr(0, kShortHashBytes));
    in->remove_prefix(kShortHashBytes);
  }
  return true;
}

std::string OrEmpty(std::string_view h) {
  return h.find_first_not_of('\0') == std::string_view::npos ? std::string() : std::string(h);
}
}  // namespace

std::string EncodeSummary(const Summary& s) {
  std::string out;
  out.push_back(1);
  PutFixed64LE(&out, static_cast<uint64_t>(s.started_at));
  PutFixed64LE(&out, static_cast<uint64_t>(s.updated_at));
  PutFixed32LE(&out, s.duration_ms);
  out.push_back(static_cast<char>(s.direction));
  out.push_back(static_cast<char>(s.scope));
  PutHash(&out, s.owner);
  PutHash(&out, s.workspace);
  PutList(&out, s.tags);
  PutList(&out, s.participants);
  PutList(&out, s.crm);
  return out;
}

std::optional<Summary> DecodeSummary(std::string_view b) {
  if (b.size() < 39 || b[0] != 1) return std::nullopt;
  Summary s;
  s.started_at = static_cast<int64_t>(DecodeFixed64LE(b.data() + 1));
  s.updated_at = static_cast<int64_t>(DecodeFixed64LE(b.data() + 9));
  s.duration_ms = DecodeFixed32LE(b.data() + 17);
  s.direction = static_cast<uint8_t>(b[21]);
  s.scope = static_cast<uint8_t>(b[22]);
  s.owner = OrEmpty(b.substr(23, kShortHashBytes));
  s.workspace = OrEmpty(b.substr(31, kShortHashBytes));
  b.remove_prefix(39);
  if (!GetList(&b, &s.tags) || !GetList(&b, &s.participants) || !GetList(&b, &s.crm) || !b.empty()) {
    return std::nullopt;
  }
  return s;
}

}  // namespace callvault::format
