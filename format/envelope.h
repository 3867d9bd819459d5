// The value envelope: how one sealed record is laid out on disk.
// Spec: docs/format.md, "Record envelope". Bytes only; the engine does the
// cryptography.
//
//   offset size
//   0      1    format version (kEnvelopeVersion)
//   1      1    codec (Codec)
//   2      4    key version, little-endian
//   6      4    dictionary id, little-endian (0 = none)
//   10     24   nonce
//   34     n+16 ciphertext || Poly1305 tag
//
// The first kEnvelopeHeaderBytes bytes are authenticated as associated data,
// together with the record's binding (RecordAad).
#ifndef CALLVAULT_FORMAT_ENVELOPE_H_
#define CALLVAULT_FORMAT_ENVELOPE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace callvault::format {

// Do not change the values of existing entries: they are on disk.
inline constexpr uint8_t kEnvelopeVersion = 1;
enum class Codec : uint8_t { kNone = 0, kZstd = 1, kZstdDict = 2 };

inline constexpr size_t kEnvelopeHeaderBytes = 10;
inline constexpr size_t kNonceBytes = 24;
inline constexpr size_t kTagBytes = 16;
inline constexpr size_t kEnvelopeOverhead = kEnvelopeHeaderBytes + kNonceBytes + kTagBytes;

struct EnvelopeHeader {
  uint8_t version = kEnvelopeVersion;
  Codec codec = Codec::kNone;
  uint32_t key_version = 0;
  uint32_t dict_id = 0;
};

std::string EncodeEnvelopeHeader(const EnvelopeHeader& h);

// A parsed view into an envelope; valid while the bytes are.
struct EnvelopeView {
  EnvelopeHeader header;
  std::string_view header_bytes;  // the authenticated header
  std::string_view nonce;
  std::string_view ciphertext;  // including the tag
};

enum class EnvelopeError { kOk, kTooShort, kTooLong, kBadVersion, kBadCodec };
const char* EnvelopeErrorName(EnvelopeError e);

// Checks sizes, version and codec; does not authenticate anything.
EnvelopeError ParseEnvelope(std::string_view bytes, size_t max_bytes, EnvelopeView* out);

// What binds a record to its place. Domain-separated from every other
// associated data the engine builds.
//   "cvrec1" || header || tenant internal id (8, BE) || column-family
//   generation (8, BE) || row key
std::string RecordAad(std::string_view header_bytes, uint64_t tenant_internal_id,
                      uint64_t cf_generation, std::string_view row_key);

}  // namespace callvault::format

#endif  // CALLVAULT_FORMAT_ENVELOPE_H_
