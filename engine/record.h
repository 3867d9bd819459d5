// Sealing and opening one record: plaintext -> zstd -> XChaCha20-Poly1305,
// in the envelope of format/envelope.h, bound to its tenant, column-family
// generation and row key. Decode order for stored bytes: size cap, envelope
// checks, AEAD open, dictionary lookup (codec kZstdDict), zstd with an
// output limit; the caller then verifies the FlatBuffers bytes.
#ifndef CALLVAULT_ENGINE_RECORD_H_
#define CALLVAULT_ENGINE_RECORD_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "callvault/secret.h"
#include "callvault/status.h"
#include "engine/compress.h"

namespace callvault::record {

struct Binding {
  uint64_t internal_id = 0;    // 0 for store-level records
  uint64_t cf_generation = 0;  // 0 for store-level records
  uint32_t key_version = 0;
};

// Values under this size are stored without compression.
inline constexpr size_t kCompressMinBytes = 128;
// With a dictionary, smaller values compress too (and the smaller of the
// compressed and the plain form is kept).
inline constexpr size_t kDictCompressMinBytes = 24;

// Where Open finds the dictionary a record names. Consulted only after the
// record authenticated (the id is in the authenticated header).
class DictionarySource {
 public:
  virtual ~DictionarySource() = default;
  // kCorruption with a specific message when the dictionary is missing or
  // does not open.
  virtual Status Find(uint32_t dict_id, std::shared_ptr<const compress::Dictionary>* out) = 0;
};

// With `dict`, compresses with it (codec kZstdDict, dict_id = dict->id()).
std::string Seal(const SecretBytes& key, const Binding& b, std::string_view row_key,
                 std::string_view plaintext, const compress::Dictionary* dict = nullptr);
// Codec none whatever the size (Options::defer_compression: the reseal
// filter compresses it later, engine/reseal.h).
std::string SealUncompressed(const SecretBytes& key, const Binding& b, std::string_view row_key,
                             std::string_view plaintext);
// kCorruption with a specific message on any failure; never plaintext.
// Records with codec kZstdDict need `dicts`; without it they fail.
Status Open(const SecretBytes& key, const Binding& b, std::string_view row_key,
            std::string_view sealed, std::string* plaintext, DictionarySource* dicts = nullptr);

}  // namespace callvault::record

#endif  // CALLVAULT_ENGINE_RECORD_H_
