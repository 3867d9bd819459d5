// SecretBytes: key material in locked, guarded memory (sodium_malloc; keys of
// up to 64 bytes share locked slabs), zeroed
// on destruction. Never copy a secret into a std::string, a log line or an
// error message.
//
// Thread safety: a SecretBytes is not synchronised; share it read-only.
#ifndef CALLVAULT_SECRET_H_
#define CALLVAULT_SECRET_H_

#include <cstddef>
#include <cstdint>

namespace callvault {

class SecretBytes {
 public:
  SecretBytes() = default;
  // Allocates `size` zeroed bytes. Aborts if the allocation fails (as
  // operator new would); size 0 gives an empty value.
  explicit SecretBytes(size_t size);
  ~SecretBytes();
  SecretBytes(SecretBytes&& other) noexcept;
  SecretBytes& operator=(SecretBytes&& other) noexcept;
  SecretBytes(const SecretBytes&) = delete;
  SecretBytes& operator=(const SecretBytes&) = delete;

  // Zeroes and frees the bytes now; size() becomes 0.
  void Wipe();
  SecretBytes Clone() const;

  uint8_t* data() { return data_; }
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  // Constant-time comparison.
  bool Equals(const SecretBytes& other) const;

 private:
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace callvault

#endif  // CALLVAULT_SECRET_H_
