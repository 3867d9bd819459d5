#include "engine/crypto.h"
#include "engine/metrics_internal.h"

#include <openssl/evp.h>
#include <sodium.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include <atomic>
#include <cstdlib>
#include <cstring>

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

static_assert(kAeadNonceBytes == crypto_aead_xchacha20poly1305_ietf_NPUBBYTES);
static_assert(kAeadTagBytes == crypto_aead_xchacha20poly1305_ietf_ABYTES);
static_assert(kKeyBytes == crypto_aead_xchacha20poly1305_ietf_KEYBYTES);

namespace {

std::atomic<AeadImpl> g_aead_impl{AeadImpl::kBySize};

EVP_CIPHER* ChaChaPoly();
bool OpenSslMatchesLibsodium(EVP_CIPHER* cipher);

bool UseOpenSsl(size_t n) {
  switch (g_aead_impl.load(std::memory_order_relaxed)) {
    case AeadImpl::kLibsodium:
      return false;
    case AeadImpl::kOpenSsl:
      return ChaChaPoly() != nullptr;
    case AeadImpl::kBySize:
      break;
  }
  return n >= kAeadOpenSslFrom && ChaChaPoly() != nullptr;
}

#if defined(__x86_64__)
__attribute__((target("avx"))) void ZeroUpperAvx() { _mm256_zeroupper(); }
bool HasAvx() {
  static const bool has = __builtin_cpu_supports("avx");
  return has;
}
#endif

// OpenSSL's ChaCha20-Poly1305 can return with the upper halves of the AVX
// registers in use (OpenSSL 3.0's AVX-512 Poly1305 on an AMD EPYC leaves
// XINUSE bit 2 set): until a VZEROUPPER, the thread's legacy-SSE code runs
// slowly. RocksDB's XXH3 checksum (SSE2) of a sealed recording chunk took
// 4.5x as long after it, a SHA-NI hash ~17% (decision 0077). VZEROUPPER
// clears that state; it keeps the low 128 bits, and no caller holds a
// value in the upper halves across this call (the ABI does not keep them).
void CleanVectorState() {
#if defined(__x86_64__)
  if (HasAvx()) ZeroUpperAvx();
#endif
}

// XChaCha20-Poly1305 is ChaCha20-Poly1305 (IETF, 12-byte nonce) under the
// subkey HChaCha20(key, nonce[0, 16)) with the nonce 0^4 || nonce[16, 24)
// (draft-irtf-cfrg-xchacha, libsodium's construction). One EVP context per
// message: EVP_CIPHER_CTX_free wipes the key schedule it held, and the
// subkey here is wiped before returning. The tag is checked by OpenSSL's
// final call, after the plaintext is written: a caller sees it only on
// success (AeadOpenTo wipes it otherwise).
class EvpChaCha {
 public:
  explicit EvpChaCha(EVP_CIPHER* cipher) : cipher_(cipher), ctx_(EVP_CIPHER_CTX_new()) {}
  ~EvpChaCha() {
    EVP_CIPHER_CTX_free(ctx_);
    sodium_memzero(subkey_, sizeof(subkey_));
    CleanVectorState();
  }
  EvpChaCha(const EvpChaCha&) = delete;
  EvpChaCha& operator=(const EvpChaCha&) = delete;

  // false: OpenSSL could not run it (allocation, provider); the caller
  // uses libsodium for the same message.
  bool Seal(unsigned char* out, const unsigned char* m, size_t n, std::string_view aad,
            const unsigned char* nonce, const unsigned char* key) {
    if (!Init(/*encrypt=*/1, nonce, key) || !Aad(aad)) return false;
    if (!Crypt(out, m, n)) return false;
    int len = 0;
    return EVP_EncryptFinal_ex(ctx_, out + n, &len) == 1 && len == 0 &&
           EVP_CIPHER_CTX_ctrl(ctx_, EVP_CTRL_AEAD_GET_TAG, kAeadTagBytes, out + n) == 1;
  }
  // kFailed: OpenSSL could not run it; kForged: the tag did not match.
  enum class Opened { kOk, kForged, kFailed };
  Opened Open(unsigned char* out, const unsigned char* c, size_t clen, std::string_view aad,
              const unsigned char* nonce, const unsigned char* key) {
    const size_t n = clen - kAeadTagBytes;
    if (!Init(/*encrypt=*/0, nonce, key) || !Aad(aad) || !Crypt(out, c, n) ||
        EVP_CIPHER_CTX_ctrl(ctx_, EVP_CTRL_AEAD_SET_TAG, kAeadTagBytes,
                            const_cast<unsigned char*>(c + n)) != 1) {
      return Opened::kFailed;
    }
    int len = 0;
    return EVP_DecryptFinal_ex(ctx_, out + n, &len) == 1 && len == 0 ? Opened::kOk : Opened::kForged;
  }

 private:
  bool Init(int encrypt, const unsigned char* nonce, const unsigned char* key) {
    if (ctx_ == nullptr) return false;
    crypto_core_hchacha20(subkey_, nonce, key, nullptr);
    unsigned char iv[12] = {0, 0, 0, 0};
    std::memcpy(iv + 4, nonce + 16, 8);
    return EVP_CipherInit_ex2(ctx_, cipher_, subkey_, iv, encrypt, nullptr) == 1;
  }
  bool Aad(std::string_view aad) {
    int len = 0;
    return aad.empty() || EVP_CipherUpdate(ctx_, nullptr, &len, U(aad), static_cast<int>(aad.size())) == 1;
  }
  // EVP takes int lengths: a message is fed in pieces of at most 1 GiB.
  bool Crypt(unsigned char* out, const unsigned char* in, size_t n) {
    constexpr size_t kPiece = size_t{1} << 30;
    for (size_t done = 0; done < n;) {
      const size_t piece = std::min(kPiece, n - done);
      int len = 0;
      if (EVP_CipherUpdate(ctx_, out + done, &len, in + done, static_cast<int>(piece)) != 1 ||
          static_cast<size_t>(len) != piece) {
        return false;
      }
      done += piece;
    }
    return true;
  }

  EVP_CIPHER* const cipher_;
  EVP_CIPHER_CTX* const ctx_;
  unsigned char subkey_[kKeyBytes];
};

// OpenSSL's ChaCha20-Poly1305 (RFC 8439) of the default provider, fetched
// once (an implicit fetch at every EVP init costs a lookup under a lock),
// and used only if it gives libsodium's bytes for a fixed message: an
// embedding process's OpenSSL configuration could route the name
// elsewhere. nullptr otherwise; libsodium does every message then.
EVP_CIPHER* ChaChaPoly() {
  static EVP_CIPHER* const cipher = []() -> EVP_CIPHER* {
    EVP_CIPHER* c = EVP_CIPHER_fetch(nullptr, "ChaCha20-Poly1305", "provider=default");
    if (c != nullptr && !OpenSslMatchesLibsodium(c)) {
      EVP_CIPHER_free(c);
      c = nullptr;
    }
    return c;
  }();
  return cipher;
}

// Seals and opens one fixed message (past the 4 KiB switch, not a multiple
// of a block, with associated data) both ways and compares the bytes.
bool OpenSslMatchesLibsodium(EVP_CIPHER* cipher) {
  unsigned char key[kKeyBytes], nonce[kAeadNonceBytes];
  for (size_t i = 0; i < sizeof(key); ++i) key[i] = static_cast<unsigned char>(i * 7 + 1);
  for (size_t i = 0; i < sizeof(nonce); ++i) nonce[i] = static_cast<unsigned char>(i * 13 + 5);
  const std::string_view aad = "callvault aead self-check";
  std::string m(kAeadOpenSslFrom + 13, '\0');
  for (size_t i = 0; i < m.size(); ++i) m[i] = static_cast<char>(i * 31 + (i >> 8));
  std::string want(m.size() + kAeadTagBytes, '\0'), got(want.size(), '\0'), opened(m.size(), '\0');
  unsigned long long clen = 0;
  crypto_aead_xchacha20poly1305_ietf_encrypt(reinterpret_cast<unsigned char*>(want.data()), &clen, U(m), m.size(),
                                             U(aad), aad.size(), nullptr, nonce, key);
  if (!EvpChaCha(cipher).Seal(reinterpret_cast<unsigned char*>(got.data()), U(m), m.size(), aad, nonce, key) ||
      got != want) {
    return false;
  }
  return EvpChaCha(cipher).Open(reinterpret_cast<unsigned char*>(opened.data()), U(want), want.size(), aad, nonce,
                                key) == EvpChaCha::Opened::kOk &&
         opened == m;
}

}  // namespace

bool AeadOpenSslInUse() { return ChaChaPoly() != nullptr; }

void SetAeadImplForTesting(AeadImpl impl) { g_aead_impl.store(impl); }

void AeadSealTo(unsigned char* out, const unsigned char* m, size_t n, std::string_view aad,
                const unsigned char* nonce, const unsigned char* key) {
  if (UseOpenSsl(n) && EvpChaCha(ChaChaPoly()).Seal(out, m, n, aad, nonce, key)) return;
  unsigned long long clen = 0;
  crypto_aead_xchacha20poly1305_ietf_encrypt(out, &clen, m, n, U(aad), aad.size(), nullptr, nonce, key);
}

bool AeadOpenTo(unsigned char* out, const unsigned char* c, size_t clen, std::string_view aad,
                const unsigned char* nonce, const unsigned char* key) {
  if (clen < kAeadTagBytes) return false;
  const size_t n = clen - kAeadTagBytes;
  if (UseOpenSsl(n)) {
    switch (EvpChaCha(ChaChaPoly()).Open(out, c, clen, aad, nonce, key)) {
      case EvpChaCha::Opened::kOk:
        return true;
      case EvpChaCha::Opened::kForged:
        sodium_memzero(out, n);
        return false;
      case EvpChaCha::Opened::kFailed:
        break;  // libsodium decides
    }
  }
  unsigned long long mlen = 0;
  // libsodium checks the tag first and zeroes `out` when it fails.
  if (crypto_aead_xchacha20poly1305_ietf_decrypt(out, &mlen, nullptr, c, clen, U(aad), aad.size(), nonce,
                                                 key) != 0) {
    sodium_memzero(out, n);
    return false;
  }
  return true;
}

std::string AeadSeal(const SecretBytes& key, std::string_view nonce, std::string_view plaintext,
                     std::string_view aad) {
  std::string out(plaintext.size() + kAeadTagBytes, '\0');
  AeadSealTo(reinterpret_cast<unsigned char*>(out.data()), U(plaintext), plaintext.size(), aad, U(nonce),
             key.data());
  return out;
}

bool AeadOpen(const SecretBytes& key, std::string_view nonce, std::string_view ciphertext,
              std::string_view aad, std::string* out) {
  if (ciphertext.size() < kAeadTagBytes || nonce.size() != kAeadNonceBytes || key.size() != kKeyBytes) {
    return false;
  }
  out->resize(ciphertext.size() - kAeadTagBytes);
  if (!AeadOpenTo(reinterpret_cast<unsigned char*>(out->data()), U(ciphertext), ciphertext.size(), aad,
                  U(nonce), key.data())) {
    out->clear();
    metrics::CountAeadFailure();
    return false;
  }
  return true;
}

bool AeadOpenSecret(const SecretBytes& key, std::string_view nonce, std::string_view ciphertext,
                    std::string_view aad, SecretBytes* out) {
  if (ciphertext.size() < kAeadTagBytes || nonce.size() != kAeadNonceBytes || key.size() != kKeyBytes) {
    return false;
  }
  SecretBytes plain(ciphertext.size() - kAeadTagBytes);
  if (!AeadOpenTo(plain.data(), U(ciphertext), ciphertext.size(), aad, U(nonce), key.data())) {
    metrics::CountAeadFailure();
    return false;
  }
  *out = std::move(plain);
  return true;
}

std::string AeadSealSecret(const SecretBytes& key, std::string_view nonce,
                           const SecretBytes& plaintext, std::string_view aad) {
  std::string out(plaintext.size() + kAeadTagBytes, '\0');
  AeadSealTo(reinterpret_cast<unsigned char*>(out.data()), plaintext.data(), plaintext.size(), aad,
             U(nonce), key.data());
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
