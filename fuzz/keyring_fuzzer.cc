// T6: the keyring file parsers (format/keyring_format.h). The header parser
// gets the input as a file; the body parser gets the input, and the input
// after a header, as a decrypted body. What parses must re-encode to the
// same bytes, with entries strictly sorted.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "format/keyring_format.h"
#include "fuzz/fuzz_util.h"

namespace {

using namespace callvault::format;
using callvault::fuzz::Bytes;

void Body(std::string_view b) {
  KeyringBodyView v;
  const std::string err = ParseKeyringBody(Bytes(b), b.size(), &v);
  if (!err.empty()) return;
  FUZZ_CHECK(b.size() == KeyringBodySize(v.entries.size()), "body size");
  FUZZ_CHECK(v.entries.size() <= kMaxKeyringEntries, "entry limit");
  std::vector<uint8_t> again(b.size());
  EncodeKeyringBodyFixed(again.data(), v.store_data_key, v.store_index_key,
                         static_cast<uint32_t>(v.entries.size()));
  for (size_t i = 0; i < v.entries.size(); ++i) {
    const auto& e = v.entries[i];
    FUZZ_CHECK(e.key >= Bytes(b) && e.key + kKeyBytes <= Bytes(b) + b.size(), "key inside body");
    if (i > 0) {
      const auto& p = v.entries[i - 1];
      FUZZ_CHECK(p.internal_id < e.internal_id ||
                     (p.internal_id == e.internal_id && p.key_version < e.key_version),
                 "entries strictly sorted");
    }
    EncodeKeyringEntry(again.data(), i, e.internal_id, e.key_version, e.key);
  }
  FUZZ_CHECK(std::string_view(reinterpret_cast<const char*>(again.data()), again.size()) == b,
             "body round trip");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input = callvault::fuzz::View(data, size);
  KeyringHeader h;
  if (ParseKeyringHeader(input, &h)) {
    FUZZ_CHECK(input.size() >= kKeyringHeaderBytes, "header size");
    FUZZ_CHECK(EncodeKeyringHeader(h) == input.substr(0, kKeyringHeaderBytes), "header round trip");
  }
  Body(input);
  if (input.size() >= kKeyringHeaderBytes) Body(input.substr(kKeyringHeaderBytes));
  return 0;
}
