#include "format/envelope.h"

#include "format/coding.h"

namespace callvault::format {

std::string EncodeEnvelopeHeader(const EnvelopeHeader& h) {
  std::string out;
  out.reserve(kEnvelopeHeaderBytes);
  out.push_back(static_cast<char>(h.version));
  out.push_back(static_cast<char>(h.codec));
  PutFixed32LE(&out, h.key_version);
  PutFixed32LE(&out, h.dict_id);
  return out;
}

const char* EnvelopeErrorName(EnvelopeError e) {
  switch (e) {
    case EnvelopeError::kOk: return "ok";
    case EnvelopeError::kTooShort: return "envelope shorter than its fixed overhead";
    case EnvelopeError::kTooLong: return "envelope larger than the record size limit";
    case EnvelopeError::kBadVersion: return "unknown envelope format version";
    case EnvelopeError::kBadCodec: return "unknown envelope codec";
  }
  return "unknown envelope error";
}

EnvelopeError ParseEnvelope(std::string_view bytes, size_t max_bytes, EnvelopeView* out) {
  if (bytes.size() > max_bytes) return EnvelopeError::kTooLong;
  if (bytes.size() < kEnvelopeOverhead) return EnvelopeError::kTooShort;
  EnvelopeHeader h;
  h.version = static_cast<uint8_t>(bytes[0]);
  if (h.version != kEnvelopeVersion) return EnvelopeError::kBadVersion;
  uint8_t codec = static_cast<uint8_t>(bytes[1]);
  if (codec > static_cast<uint8_t>(Codec::kZstdDict)) return EnvelopeError::kBadCodec;
  h.codec = static_cast<Codec>(codec);
  h.key_version = DecodeFixed32LE(bytes.data() + 2);
  h.dict_id = DecodeFixed32LE(bytes.data() + 6);
  out->header = h;
  out->header_bytes = bytes.substr(0, kEnvelopeHeaderBytes);
  out->nonce = bytes.substr(kEnvelopeHeaderBytes, kNonceBytes);
  out->ciphertext = bytes.substr(kEnvelopeHeaderBytes + kNonceBytes);
  return EnvelopeError::kOk;
}

std::string RecordAad(std::string_view header_bytes, uint64_t tenant_internal_id,
                      uint64_t cf_generation, std::string_view row_key) {
  std::string aad = "cvrec1";
  aad.append(header_bytes);
  PutFixed64BE(&aad, tenant_internal_id);
  PutFixed64BE(&aad, cf_generation);
  aad.append(row_key);
  return aad;
}

}  // namespace callvault::format
