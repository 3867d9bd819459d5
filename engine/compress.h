// zstd before encryption. One compression and one decompression context per
// thread, reused. Decompression has a hard output limit.
//
// Per-tenant dictionaries (docs/decisions/0009): a Dictionary is trained
// from one tenant's own records, stored sealed in that tenant's column
// family, and only ever used for that tenant's records.
#ifndef CALLVAULT_ENGINE_COMPRESS_H_
#define CALLVAULT_ENGINE_COMPRESS_H_

#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "callvault/status.h"

struct ZSTD_CDict_s;
struct ZSTD_DDict_s;

namespace callvault::compress {

inline constexpr int kLevel = 3;

// Dictionaries: size bounds of a stored dictionary (a trained one is
// kDictionaryBytes at most; anything outside the bounds is refused at load).
inline constexpr size_t kDictionaryBytes = 64u << 10;
inline constexpr size_t kMinDictionaryBytes = 256;
inline constexpr size_t kMaxDictionaryBytes = 256u << 10;

// One compiled zstd dictionary. Immutable once created and safe to share
// between threads. The content is zeroed when the object goes away (it is
// derived from tenant plaintext).
class Dictionary {
 public:
  // kCorruption if `content` is not a zstd dictionary within the bounds
  // whose own header carries `id`.
  static Status Create(uint32_t id, std::string content, std::shared_ptr<const Dictionary>* out);
  ~Dictionary();
  Dictionary(const Dictionary&) = delete;
  Dictionary& operator=(const Dictionary&) = delete;

  uint32_t id() const { return id_; }
  std::string_view content() const { return content_; }
  const ZSTD_DDict_s* ddict() const { return ddict_; }
  // What it holds in memory: the content and zstd's decompression tables
  // (the compression tables are bounded apart: kCachedCompressionTables).
  size_t MemoryBytes() const;

 private:
  friend std::string Compress(std::string_view input, const Dictionary& dict);
  struct CompressionTables;
  Dictionary(uint32_t id, std::string content) : id_(id), content_(std::move(content)) {}
  // The compression tables (~0.5 MiB at level 3), built at first use, so
  // only tenants that write pay for them, and kept for at most
  // kCachedCompressionTables dictionaries in the process (least recently
  // used ones are dropped and rebuilt when needed). Holders keep the tables
  // alive while they compress.
  std::shared_ptr<const CompressionTables> Tables() const;

  uint32_t id_;
  std::string content_;
  ZSTD_DDict_s* ddict_ = nullptr;  // refers to content_ (no copy)
  // Guarded by the process-wide cache's mutex (compress.cc).
  mutable std::shared_ptr<const CompressionTables> tables_;
  mutable std::list<const Dictionary*>::iterator lru_;
};

// Dictionaries whose compression tables stay built at once, process-wide:
// a bound of about 32 MiB however many tenants write.
inline constexpr size_t kCachedCompressionTables = 64;
// How many dictionaries have their compression tables built now.
size_t CachedCompressionTables();

std::string Compress(std::string_view input);
// With a dictionary; the frame does not repeat the dictionary id (the
// envelope carries it, authenticated).
std::string Compress(std::string_view input, const Dictionary& dict);
// kCorruption if `input` is not one zstd frame whose content is at most
// `max_output` bytes (or does not decode with `dict`, when given).
Status Decompress(std::string_view input, size_t max_output, std::string* out,
                  const Dictionary* dict = nullptr);

// Trains a dictionary of at most `max_bytes` from `samples`, with id `id`
// (nonzero; zstd's dictionary header carries it). kInvalidArgument when
// zstd cannot (too few or too uniform samples).
Status TrainDictionary(const std::vector<std::string>& samples, size_t max_bytes, uint32_t id,
                       std::string* out);

}  // namespace callvault::compress

#endif  // CALLVAULT_ENGINE_COMPRESS_H_
