// T6: the small fixed-layout parsers of format/: record envelope, list
// cursor (and its base64url text), index keys, call keys, column family
// names. Each accepts only the canonical encoding: what parses re-encodes to
// the input.
#include <cstdint>
#include <string>
#include <string_view>

#include "callvault/limits.h"
#include "format/cursor.h"
#include "format/envelope.h"
#include "format/rowkey.h"
#include "fuzz/fuzz_util.h"

namespace {

using namespace callvault::format;

void Envelope(std::string_view in, size_t max_bytes) {
  EnvelopeView v;
  if (ParseEnvelope(in, max_bytes, &v) != EnvelopeError::kOk) return;
  FUZZ_CHECK(in.size() <= max_bytes && in.size() >= kEnvelopeOverhead, "envelope size");
  FUZZ_CHECK(v.header_bytes.size() == kEnvelopeHeaderBytes, "header size");
  FUZZ_CHECK(v.nonce.size() == kNonceBytes, "nonce size");
  FUZZ_CHECK(v.ciphertext.size() >= kTagBytes, "tag present");
  FUZZ_CHECK(std::string(v.header_bytes) + std::string(v.nonce) + std::string(v.ciphertext) == in,
             "envelope covers its input");
  FUZZ_CHECK(EncodeEnvelopeHeader(v.header) == v.header_bytes, "header round trip");
}

void IndexTail(std::string_view in) {
  auto t = ParseIndexTail(in);
  if (!t) return;
  std::string again;
  switch (in[0]) {
    case kTimeIndexPrefix: again = TimeIndexKey(t->started_at, t->call_hash); break;
    case kUpdatedIndexPrefix: again = UpdatedIndexKey(t->started_at, t->call_hash); break;
    default:
      again = AttributeIndexKey(in[0], in.substr(1, kHashBytes), t->started_at, t->call_hash);
  }
  FUZZ_CHECK(again == in, "index key round trip");
  if (auto k = ParseTimeIndexKey(in)) {
    FUZZ_CHECK(in[0] == kTimeIndexPrefix && k->started_at == t->started_at, "time key");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in = callvault::fuzz::View(data, size);
  Envelope(in, callvault::limits::kMaxRecordBytes);
  Envelope(in, 64);

  if (auto c = DecodeCursor(in)) FUZZ_CHECK(EncodeCursor(*c) == in, "cursor round trip");
  if (auto b = Base64UrlDecode(in)) FUZZ_CHECK(Base64UrlEncode(*b) == in, "base64url canonical");
  {
    auto b = Base64UrlDecode(Base64UrlEncode(in));
    FUZZ_CHECK(b && *b == in, "base64url round trip");
  }

  IndexTail(in);
  if (auto k = ParseCallKey(in)) FUZZ_CHECK(CallKey(k->call_hash, k->part) == in, "call key round trip");
  if (auto f = ParseFamilyName(in)) {
    FUZZ_CHECK(ColumnFamilyName(f->internal_id, f->family) == in, "column family name round trip");
    FUZZ_CHECK(ParseColumnFamilyName(in) == f->internal_id, "column family name id");
  } else {
    FUZZ_CHECK(!ParseColumnFamilyName(in), "column family name parsers agree");
  }
  return 0;
}
