// zstd before encryption. One compression and one decompression context per
// thread, reused. Decompression has a hard output limit.
#ifndef CALLVAULT_ENGINE_COMPRESS_H_
#define CALLVAULT_ENGINE_COMPRESS_H_

#include <string>
#include <string_view>

#include "callvault/status.h"

namespace callvault::compress {

inline constexpr int kLevel = 3;

std::string Compress(std::string_view input);
// kCorruption if `input` is not one zstd frame whose content is at most
// `max_output` bytes.
Status Decompress(std::string_view input, size_t max_output, std::string* out);

}  // namespace callvault::compress

#endif  // CALLVAULT_ENGINE_COMPRESS_H_
