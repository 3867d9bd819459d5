#include "engine/record.h"

#include "callvault/limits.h"
#include "engine/compress.h"
#include "engine/crypto.h"
#include "format/envelope.h"
#include "format/verify.h"

namespace callvault::record {

namespace {
// The envelope of `body` under header `h` (its key version set here).
std::string SealBody(const SecretBytes& key, const Binding& b, std::string_view row_key,
                     format::EnvelopeHeader h, std::string_view body) {
  h.key_version = b.key_version;
  std::string out = format::EncodeEnvelopeHeader(h);
  std::string nonce = crypto::RandomString(format::kNonceBytes);
  std::string aad = format::RecordAad(out, b.internal_id, b.cf_generation, row_key);
  out += nonce;
  out += crypto::AeadSeal(key, nonce, body, aad);
  return out;
}
}  // namespace

std::string SealUncompressed(const SecretBytes& key, const Binding& b, std::string_view row_key,
                             std::string_view plaintext) {
  return SealBody(key, b, row_key, format::EnvelopeHeader(), plaintext);
}

std::string Seal(const SecretBytes& key, const Binding& b, std::string_view row_key,
                 std::string_view plaintext, const compress::Dictionary* dict) {
  format::EnvelopeHeader h;
  std::string compressed;
  std::string_view body = plaintext;
  if (dict != nullptr && plaintext.size() >= kDictCompressMinBytes) {
    compressed = compress::Compress(plaintext, *dict);
    if (compressed.size() < plaintext.size()) {
      h.codec = format::Codec::kZstdDict;
      h.dict_id = dict->id();
      body = compressed;
    }
  } else if (plaintext.size() >= kCompressMinBytes) {
    compressed = compress::Compress(plaintext);
    h.codec = format::Codec::kZstd;
    body = compressed;
  }
  return SealBody(key, b, row_key, h, body);
}

Status Open(const SecretBytes& key, const Binding& b, std::string_view row_key,
            std::string_view sealed, std::string* plaintext, DictionarySource* dicts) {
  format::EnvelopeView v;
  format::EnvelopeError e = format::ParseEnvelope(sealed, limits::kMaxRecordBytes, &v);
  if (e != format::EnvelopeError::kOk) {
    return Status::Corruption(std::string("record envelope: ") + format::EnvelopeErrorName(e));
  }
  if (v.header.key_version != b.key_version) {
    return Status::Corruption("record sealed under key version " +
                              std::to_string(v.header.key_version) + ", tenant has " +
                              std::to_string(b.key_version));
  }
  // Header consistency before the AEAD (the AEAD would reject these too,
  // since the header is associated data; this is a clearer message).
  const bool dict_codec = v.header.codec == format::Codec::kZstdDict;
  if (dict_codec && v.header.dict_id == 0) {
    return Status::Corruption("record uses a compression dictionary but names none");
  }
  if (!dict_codec && v.header.dict_id != 0) {
    return Status::Corruption("record envelope: dictionary id on a record without dictionary "
                              "compression");
  }
  if (dict_codec && dicts == nullptr) {
    return Status::Corruption("record uses a compression dictionary this store does not have");
  }
  std::string aad = format::RecordAad(v.header_bytes, b.internal_id, b.cf_generation, row_key);
  std::string body;
  if (!crypto::AeadOpen(key, v.nonce, v.ciphertext, aad, &body)) {
    return Status::Corruption(
        "record failed authentication (tampered, moved from another tenant or row, or sealed "
        "under another key)");
  }
  if (dict_codec) {
    std::shared_ptr<const compress::Dictionary> dict;
    CV_RETURN_IF_ERROR(dicts->Find(v.header.dict_id, &dict));
    if (dict == nullptr || dict->id() != v.header.dict_id) {
      return Status::Corruption("record uses compression dictionary " +
                                std::to_string(v.header.dict_id) + ", which was not found");
    }
    return compress::Decompress(body, format::kMaxFlatBufferBytes, plaintext, dict.get());
  }
  if (v.header.codec == format::Codec::kZstd) {
    return compress::Decompress(body, format::kMaxFlatBufferBytes, plaintext);
  }
  *plaintext = std::move(body);
  return Status::OK();
}

}  // namespace callvault::record
