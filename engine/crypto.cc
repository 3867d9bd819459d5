#include "engine/crypto.h"
#include "engine/metrics_internal.h"

#include <sodium.h>

#include <cstdlib>

namespace callvault::crypto {

void Init() {
  static const bool ok = sodium_init() >= 0;
  if (!ok) std::abort();
}

std::string RandomString(size_t n) {
  Init();
  std::string s(n, '\0');
  randombytes_buf(s.data(), n);
  return s;
}

SecretBytes RandomKey() {
  Init();
  SecretBytes k(kKeyBytes);
  randombytes_buf(k.data(), kKeyBytes);
  return k;
}

SecretBytes DeriveSubkey(const SecretBytes& master, Subkey id) {
  static_assert(crypto_kdf_KEYBYTES == kKeyBytes);
  SecretBytes out(kKeyBytes);
  crypto_kdf_derive_from_key(out.data(), kKeyBytes, static_cast<uint64_t>(id), "cvtenant",
                             master.data());
  return out;
}

namespace {
const unsigned char* U(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}
}  // namespace

std::string AeadSeal(const SecretBytes& key, std::string_view nonce, std::string_view plaintext,
                     std::string_view aad) {
  std::string out(plaintext.size() + crypto_aead_xchacha20poly1305_ietf_ABYTES, '\0');
  unsigned long long n = 0;
  crypto_aead_xchacha20poly1305_ietf_encrypt(reinterpret_cast<unsigned char*>(out.data()), &n,
                                             U(plaintext), plaintext.size(), U(aad), aad.size(),
                                             nullptr, U(nonce), key.data());
  out.resize(n);
  return out;
}

bool AeadOpen(const SecretBytes& key, std::string_view nonce, std::string_view ciphertext,
              std::string_view aad, std::string* out) {
  if (ciphertext.size() < crypto_aead_xchacha20poly1305_ietf_ABYTES ||
      nonce.size() != crypto_aead_xchacha20poly1305_ietf_NPUBBYTES || key.size() != kKeyBytes) {
    return false;
  }
  out->resize(ciphertext.size() - crypto_aead_xchacha20poly1305_ietf_ABYTES);
  unsigned long long n = 0;
  if (crypto_aead_xchacha20poly1305_ietf_decrypt(reinterpret_cast<unsigned char*>(out->data()), &n,
                                                 nullptr, U(ciphertext), ciphertext.size(), U(aad),
                                                 aad.size(), U(nonce), key.data()) != 0) {
    out->clear();
    metrics::CountAeadFailure();
    return false;
  }
  out->resize(n);
  return true;
}

bool AeadOpenSecret(const SecretBytes& key, std::string_view nonce, std::string_view ciphertext,
                    std::string_view aad, SecretBytes* out) {
  if (ciphertext.size() < crypto_aead_xchacha20poly1305_ietf_ABYTES ||
      nonce.size() != crypto_aead_xchacha20poly1305_ietf_NPUBBYTES || key.size() != kKeyBytes) {
    return false;
  }
  SecretBytes plain(ciphertext.size() - crypto_aead_xchacha20poly1305_ietf_ABYTES);
  unsigned long long n = 0;
  if (crypto_aead_xchacha20poly1305_ietf_decrypt(plain.data(), &n, nullptr, U(ciphertext),
                                                 ciphertext.size(), U(aad), aad.size(), U(nonce),
                                                 key.data()) != 0) {
    metrics::CountAeadFailure();
    return false;
  }
  *out = std::move(plain);
  return true;
}

std::string AeadSealSecret(const SecretBytes& key, std::string_view nonce,
                           const SecretBytes& plaintext, std::string_view aad) {
  std::string out(plaintext.size() + crypto_aead_xchacha20poly1305_ietf_ABYTES, '\0');
  unsigned long long n = 0;
  crypto_aead_xchacha20poly1305_ietf_encrypt(reinterpret_cast<unsigned char*>(out.data()), &n,
                                             plaintext.data(), plaintext.size(), U(aad),
                                             aad.size(), nullptr, U(nonce), key.data());
  out.resize(n);
  return out;
}

std::string BlindHash(const SecretBytes& key, char domain, std::string_view value) {
  crypto_generichash_state st;
  crypto_generichash_init(&st, key.data(), key.size(), 16);
  unsigned char d = static_cast<unsigned char>(domain);
  crypto_generichash_update(&st, &d, 1);
  crypto_generichash_update(&st, U(value), value.size());
  std::string out(16, '\0');
  crypto_generichash_final(&st, reinterpret_cast<unsigned char*>(out.data()), 16);
  return out;
}

std::string Mac16(const SecretBytes& key, std::string_view message) {
  std::string out(16, '\0');
  crypto_generichash(reinterpret_cast<unsigned char*>(out.data()), 16, U(message), message.size(),
                     key.data(), key.size());
  return out;
}

std::string Hash32(std::string_view message) {
  std::string out(32, '\0');
  crypto_generichash(reinterpret_cast<unsigned char*>(out.data()), 32, U(message), message.size(),
                     nullptr, 0);
  return out;
}

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && sodium_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string Hex(std::string_view bytes) {
  static const char* d = "0123456789abcdef";
  std::string s;
  s.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    s.push_back(d[c >> 4]);
    s.push_back(d[c & 15]);
  }
  return s;
}

bool FromHex(std::string_view hex, std::string* out) {
  if (hex.size() % 2) return false;
  out->assign(hex.size() / 2, '\0');
  size_t bin_len = 0;
  return sodium_hex2bin(reinterpret_cast<unsigned char*>(out->data()), out->size(), hex.data(),
                        hex.size(), nullptr, &bin_len, nullptr) == 0 &&
         bin_len == out->size();
}

}  // namespace callvault::crypto
