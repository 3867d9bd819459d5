#include "engine/sha256.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <memory>

namespace callvault {

Sha256::Sha256() : ctx_(EVP_MD_CTX_new()) {
  ok_ = ctx_ != nullptr && EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr) == 1;
}

Sha256::~Sha256() { EVP_MD_CTX_free(ctx_); }

void Sha256::Update(std::string_view bytes) {
  if (ok_ && !bytes.empty()) ok_ = EVP_DigestUpdate(ctx_, bytes.data(), bytes.size()) == 1;
}

Status Sha256::Final(std::string* out) {
  out->assign(kSha256Bytes, '\0');
  unsigned int len = 0;
  if (!ok_ || EVP_DigestFinal_ex(ctx_, reinterpret_cast<unsigned char*>(out->data()), &len) != 1 ||
      len != kSha256Bytes) {
    return Status::Internal("SHA-256 failed");
  }
  ok_ = false;
  return Status::OK();
}

Status Sha256OfFile(const std::string& path, std::string* digest, uint64_t* size) {
  return Sha256OfFilePrefix(path, UINT64_MAX, digest, size);
}

Status Sha256OfFilePrefix(const std::string& path, uint64_t limit, std::string* digest,
                          uint64_t* size) {
  // O_NONBLOCK: a FIFO planted at `path` must not block the open (it is
  // then refused as not a regular file); no effect on a regular file.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  if (fd < 0) {
    const int e = errno;
    if (e == ENOENT) return Status::NotFound(path + " is missing");
    if (e == ELOOP) return Status::Corruption(path + " is a symbolic link, not a file");
    return Status::IOError("open " + path + ": " + std::strerror(e));
  }
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st;
  if (::fstat(fd, &st) != 0) return Status::IOError("stat " + path + ": " + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) return Status::Corruption(path + " is not a regular file");
  constexpr size_t kBuffer = 1 << 20;
  std::unique_ptr<char[]> buf(new char[kBuffer]);
  Sha256 h;
  uint64_t total = 0;
  while (total < limit) {
    const ssize_t n =
        ::read(fd, buf.get(), static_cast<size_t>(std::min<uint64_t>(kBuffer, limit - total)));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::IOError("read " + path + ": " + std::strerror(errno));
    if (n == 0) break;
    h.Update(std::string_view(buf.get(), static_cast<size_t>(n)));
    total += static_cast<uint64_t>(n);
  }
  CV_RETURN_IF_ERROR(h.Final(digest));
  *size = total;
  return Status::OK();
}

}  // namespace callvault
