#include "callvault/secret.h"

#include <sodium.h>

#include <algorithm>
#include <cstdlib>
#include <utility>

namespace callvault {

SecretBytes::SecretBytes(size_t size) : size_(size) {
  if (size == 0) return;
  if (sodium_init() < 0) std::abort();
  data_ = static_cast<uint8_t*>(sodium_malloc(size));
  if (data_ == nullptr) std::abort();
  sodium_memzero(data_, size);
}

SecretBytes::~SecretBytes() { Wipe(); }

SecretBytes::SecretBytes(SecretBytes&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}

SecretBytes& SecretBytes::operator=(SecretBytes&& other) noexcept {
  if (this != &other) {
    Wipe();
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

void SecretBytes::Wipe() {
  if (data_ != nullptr) {
    sodium_memzero(data_, size_);
    sodium_free(data_);
  }
  data_ = nullptr;
  size_ = 0;
}

SecretBytes SecretBytes::Clone() const {
  SecretBytes c(size_);
  if (size_ > 0) std::copy(data_, data_ + size_, c.data_);
  return c;
}

bool SecretBytes::Equals(const SecretBytes& other) const {
  if (size_ != other.size_) return false;
  if (size_ == 0) return true;
  return sodium_memcmp(data_, other.data_, size_) == 0;
}

}  // namespace callvault
