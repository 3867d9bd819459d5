#include "callvault/secret.h"

#include <sodium.h>

#include <algorithm>
#include <cstdlib>
#include <mutex>
#include <utility>
#include <vector>

namespace callvault {

namespace {

// Small secrets (keys, 32-64 bytes) come from slabs of locked, guarded
// memory: one sodium_malloc (with its mlock and guard pages, ~0.1 ms) per
// 1024 keys instead of per key, so a store of 10,000 tenants opens, creates
// and purges without 10,000s of system calls. Slots are zeroed when freed;
// slabs live as long as the process.
class SecureSlab {
 public:
  static constexpr size_t kSlotBytes = 64;
  static constexpr size_t kSlotsPerSlab = 1024;

  static SecureSlab& Get() {
    static SecureSlab* slab = new SecureSlab();  // never destroyed: outlives static SecretBytes
    return *slab;
  }

  uint8_t* Allocate() {
    std::lock_guard<std::mutex> l(mu_);
    if (free_.empty()) {
      auto* base = static_cast<uint8_t*>(sodium_malloc(kSlotBytes * kSlotsPerSlab));
      if (base == nullptr) std::abort();
      sodium_memzero(base, kSlotBytes * kSlotsPerSlab);
      for (size_t i = kSlotsPerSlab; i-- > 0;) free_.push_back(base + i * kSlotBytes);
    }
    uint8_t* p = free_.back();
    free_.pop_back();
    return p;
  }

  void Free(uint8_t* p) {
    sodium_memzero(p, kSlotBytes);
    std::lock_guard<std::mutex> l(mu_);
    free_.push_back(p);
  }

 private:
  std::mutex mu_;
  std::vector<uint8_t*> free_;  // GUARDED_BY(mu_)
};

bool FromSlab(size_t size) { return size <= SecureSlab::kSlotBytes; }

}  // namespace

SecretBytes::SecretBytes(size_t size) : size_(size) {
  if (size == 0) return;
  if (sodium_init() < 0) std::abort();
  if (FromSlab(size)) {
    data_ = SecureSlab::Get().Allocate();
  } else {
    data_ = static_cast<uint8_t*>(sodium_malloc(size));
    if (data_ == nullptr) std::abort();
  }
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
    if (FromSlab(size_)) {
      SecureSlab::Get().Free(data_);
    } else {
      sodium_memzero(data_, size_);
      sodium_free(data_);
    }
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
