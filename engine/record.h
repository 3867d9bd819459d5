// Sealing and opening one record: plaintext -> zstd -> XChaCha20-Poly1305,
// in the envelope of format/envelope.h, bound to its tenant, column-family
// generation and row key. Decode order for stored bytes: size cap, envelope
// checks, AEAD open, zstd with an output limit; the caller then verifies the
// FlatBuffers bytes.
#ifndef CALLVAULT_ENGINE_RECORD_H_
#define CALLVAULT_ENGINE_RECORD_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "callvault/secret.h"
#include "callvault/status.h"

namespace callvault::record {

struct Binding {
  uint64_t internal_id = 0;    // 0 for store-level records
  uint64_t cf_generation = 0;  // 0 for store-level records
  uint32_t key_version = 0;
};

// Values under this size are stored without compression.
inline constexpr size_t kCompressMinBytes = 128;

std::string Seal(const SecretBytes& key, const Binding& b, std::string_view row_key,
                 std::string_view plaintext);
// kCorruption with a specific message on any failure; never plaintext.
Status Open(const SecretBytes& key, const Binding& b, std::string_view row_key,
            std::string_view sealed, std::string* plaintext);

}  // namespace callvault::record

#endif  // CALLVAULT_ENGINE_RECORD_H_
