// libsodium (and OpenSSL for long AEAD messages) wrappers: random bytes,
// subkeys, record AEAD, blind hashes.
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

// XChaCha20-Poly1305 (IETF), the one AEAD of every record, keyring body
// and recording chunk (docs/crypto.md). Two implementations give the same
// bytes: libsodium's, and for messages of kAeadOpenSslFrom bytes or more
// OpenSSL's ChaCha20-Poly1305 (AVX-512 here: ~2.3x libsodium's speed at
// 1 MiB) under the HChaCha20 subkey of the key and the nonce's first 16
// bytes, with the nonce 0^4 || its last 8 bytes (decision 0072).
inline constexpr size_t kAeadNonceBytes = 24;
inline constexpr size_t kAeadTagBytes = 16;
inline constexpr size_t kAeadOpenSslFrom = 4096;

// Seals m[0, n) into out[0, n + kAeadTagBytes) (ciphertext || tag).
// `nonce` holds kAeadNonceBytes, `key` kKeyBytes. out must not overlap m:
// when OpenSSL fails part way, libsodium seals m again from the start.
void AeadSealTo(unsigned char* out, const unsigned char* m, size_t n, std::string_view aad,
                const unsigned char* nonce, const unsigned char* key);
// Opens c[0, clen) (ciphertext || tag, clen >= kAeadTagBytes) into
// out[0, clen - kAeadTagBytes), which must not overlap c. false if
// authentication fails; out is then all zeros (nothing of an
// unauthenticated plaintext is left there).
bool AeadOpenTo(unsigned char* out, const unsigned char* c, size_t clen, std::string_view aad,
                const unsigned char* nonce, const unsigned char* key);

// Whether messages of kAeadOpenSslFrom bytes or more go through OpenSSL:
// its default provider has ChaCha20-Poly1305 and it gave libsodium's bytes
// for a fixed message at first use (otherwise libsodium does them all).
bool AeadOpenSslInUse();

// Tests: which implementation AeadSealTo / AeadOpenTo use.
enum class AeadImpl { kBySize, kLibsodium, kOpenSsl };
void SetAeadImplForTesting(AeadImpl impl);

// XChaCha20-Poly1305 (IETF). Returns ciphertext || tag. REQUIRES: nonce of
// kAeadNonceBytes, key of kKeyBytes (the engine's own, never input).
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
