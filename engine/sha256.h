// SHA-256 through OpenSSL's EVP (its SHA-NI / AVX2 code: ~6x libsodium's
// portable one on this project's machines): recording contents
// (engine/recordings.cc) and the files of a backup cut (engine/backup.cc,
// decision 0076).
#ifndef CALLVAULT_ENGINE_SHA256_H_
#define CALLVAULT_ENGINE_SHA256_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "callvault/status.h"

typedef struct evp_md_ctx_st EVP_MD_CTX;

namespace callvault {

constexpr size_t kSha256Bytes = 32;

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void Update(std::string_view bytes);
  // The 32-byte digest; the object is spent afterwards.
  [[nodiscard]] Status Final(std::string* out);

 private:
  EVP_MD_CTX* ctx_;
  bool ok_ = false;
};

// The SHA-256 of the regular file at `path` (a symbolic link is refused,
// never followed) and its size. kNotFound if it is missing, kIOError if it
// cannot be read, kCorruption if it is not a regular file.
Status Sha256OfFile(const std::string& path, std::string* digest, uint64_t* size);
// The same of its first `limit` bytes (*size: how many there were, less
// than `limit` for a shorter file).
Status Sha256OfFilePrefix(const std::string& path, uint64_t limit, std::string* digest,
                          uint64_t* size);

}  // namespace callvault

#endif  // CALLVAULT_ENGINE_SHA256_H_
