// T6: the decode pipeline fed plaintext. Random bytes never pass the AEAD
// tag, so the input is sealed first (record::Seal with a fixed key), opened
// again (record::Open, which must give it back), and the plaintext goes to
// every FlatBuffers decoder of engine/codec.h and to format::DecodeSummary.
// Whatever decodes must re-encode stably. The raw input also goes to
// compress::Decompress with a small output limit.
#include <cstdint>
#include <string>
#include <string_view>

#include "callvault/secret.h"
#include "engine/codec.h"
#include "engine/compress.h"
#include "engine/record.h"
#include "format/rowkey.h"
#include "format/summary.h"
#include "format/verify.h"
#include "fuzz/fuzz_util.h"

namespace callvault::fuzz {
namespace {

const SecretBytes& FixedKey() {
  static const SecretBytes* key = [] {
    auto* k = new SecretBytes(32);
    for (size_t i = 0; i < k->size(); ++i) k->data()[i] = static_cast<uint8_t>(0x42 + i);
    return k;
  }();
  return *key;
}

// decode(x) ok => encode(decode(x)) decodes, and re-encodes to the same bytes.
template <typename T, typename Decode, typename Encode>
void Stable(std::string_view plain, Decode decode, Encode encode, const char* what) {
  T first{};
  if (!decode(plain, &first).ok()) return;
  const std::string e1 = encode(first);
  T second{};
  FUZZ_CHECK(decode(e1, &second).ok(), what);
  FUZZ_CHECK(encode(second) == e1, what);
}

}  // namespace
}  // namespace callvault::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace callvault;
  using namespace callvault::fuzz;
  const std::string_view input = View(data, size);

  // Seal and open: the plaintext comes back exactly.
  const record::Binding binding{7, 3, 1};
  const std::string row = format::CallKey(std::string(format::kHashBytes, 'h'), format::Part::kMeta);
  const std::string sealed = record::Seal(FixedKey(), binding, row, input);
  std::string plain;
  const Status opened = record::Open(FixedKey(), binding, row, sealed, &plain);
  FUZZ_CHECK(opened.ok(), "record::Open of record::Seal");
  FUZZ_CHECK(plain == input, "record round trip");

  struct Meta {
    Call call;
    uint32_t parts = 0;
  };
  Stable<Meta>(
      plain, [](std::string_view b, Meta* m) { return codec::DecodeMeta(b, &m->call, &m->parts); },
      [](const Meta& m) { return codec::EncodeMeta(m.call, m.parts); }, "meta");
  Stable<Call>(
      plain, [](std::string_view b, Call* c) { return codec::DecodeTranscript(b, c); },
      [](const Call& c) { return codec::EncodeTranscript(c); }, "transcript");
  Stable<Call>(
      plain, [](std::string_view b, Call* c) { return codec::DecodeInsights(b, c); },
      [](const Call& c) { return codec::EncodeInsights(c); }, "insights");
  Stable<codec::TenantRecord>(
      plain, [](std::string_view b, codec::TenantRecord* t) { return codec::DecodeTenant(b, t); },
      [](const codec::TenantRecord& t) { return codec::EncodeTenant(t); }, "tenant");
  Stable<Receipt>(
      plain, [](std::string_view b, Receipt* r) { return codec::DecodeReceipt(b, r); },
      [](const Receipt& r) { return codec::EncodeReceipt(r); }, "receipt");
  Stable<Hold>(
      plain, [](std::string_view b, Hold* h) { return codec::DecodeHold(b, h); },
      [](const Hold& h) { return codec::EncodeHold(h); }, "hold");
  Stable<AuditEvent>(
      plain, [](std::string_view b, AuditEvent* e) { return codec::DecodeAudit(b, e); },
      [](const AuditEvent& e) { return codec::EncodeAudit(e); }, "audit");
  // No decoder in codec.h; the verifier alone.
  (void)format::VerifyRecordingManifest(Bytes(plain), plain.size());

  // The summary encoding is canonical: what decodes re-encodes to itself.
  if (auto s = format::DecodeSummary(plain)) {
    FUZZ_CHECK(format::EncodeSummary(*s) == plain, "summary round trip");
  }

  // zstd with a hard output limit, on the raw input.
  constexpr size_t kLimit = 1 << 20;
  std::string out = "previous";
  const Status d = compress::Decompress(input, kLimit, &out);
  if (d.ok()) {
    FUZZ_CHECK(out.size() <= kLimit, "decompress limit");
    std::string again;
    FUZZ_CHECK(compress::Decompress(compress::Compress(out), kLimit, &again).ok(), "recompress");
    FUZZ_CHECK(again == out, "recompress round trip");
  } else {
    FUZZ_CHECK(d.code() == Code::kCorruption, "decompress error code");
    FUZZ_CHECK(out.empty() || out == "previous", "decompress left partial output");
  }
  return 0;
}
