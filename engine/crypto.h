// libsodium wrappers: random bytes, subkeys, record AEAD, blind hashes.
// Spec: docs/crypto.md. Secrets are SecretBytes; nothing here logs.
#ifndef CALLVAULT_ENGINE_CRYPTO_H_
#define CALLVAULT_ENGINE_CRYPTO_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "callvault/secret.h"
#include "callvault/status.h"

namespace callvault::crypto {

inline constexpr size_t kKeyBytes = 32;

// Aborts if libsodium cannot initialise (no entropy source).
void Init();

std::string RandomString(size_t n);
SecretBytes RandomKey();

// Subkey ids under one tenant DEK (crypto_kdf context "cvtenant").
// Do not change: derived keys must stay the same across versions.
enum class Subkey : uint64_t { kRecord = 1, kIndex = 2, kRecording = 3, kCursor = 4 };
SecretBytes DeriveSubkey(const SecretBytes& master, Subkey id);

// XChaCha20-Poly1305 (IETF). Returns ciphertext || tag.
std::string AeadSeal(const SecretBytes& key, std::string_view nonce, std::string_view plaintext,
                     std::string_view aad);
// Decrypts into `out`. false if authentication fails.
bool AeadOpen(const SecretBytes& key, std::string_view nonce, std::string_view ciphertext,
              std::string_view aad, std::string* out);
// The same, into locked memory (for keyring bodies).
bool AeadOpenSecret(const SecretBytes& key, std::string_view nonce, std::string_view ciphertext,
                    std::string_view aad, SecretBytes* out);
std::string AeadSealSecret(const SecretBytes& key, std::string_view nonce,
                           const SecretBytes& plaintext, std::string_view aad);

// Keyed BLAKE2b, 16 bytes: blind index of an identifier. `domain` separates
// uses (call ids, sources, tenant ids) under one key.
std::string BlindHash(const SecretBytes& key, char domain, std::string_view value);
// Keyed BLAKE2b, 16 bytes: a MAC.
std::string Mac16(const SecretBytes& key, std::string_view message);
// Unkeyed BLAKE2b-256.
std::string Hash32(std::string_view message);
bool ConstantTimeEquals(std::string_view a, std::string_view b);

std::string Hex(std::string_view bytes);
// The inverse of Hex (either case): false for an odd length or a character
// that is not a hex digit.
bool FromHex(std::string_view hex, std::string* out);

}  // namespace callvault::crypto

#endif  // CALLVAULT_ENGINE_CRYPTO_H_
