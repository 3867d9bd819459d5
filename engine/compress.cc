#include "engine/compress.h"

#include <zstd.h>

#include <cstdint>
#include <memory>

namespace callvault::compress {

namespace {
struct CCtxFree {
  void operator()(ZSTD_CCtx* c) const { ZSTD_freeCCtx(c); }
};
struct DCtxFree {
  void operator()(ZSTD_DCtx* c) const { ZSTD_freeDCtx(c); }
};

ZSTD_CCtx* ThreadCCtx() {
  thread_local std::unique_ptr<ZSTD_CCtx, CCtxFree> ctx(ZSTD_createCCtx());
  return ctx.get();
}
ZSTD_DCtx* ThreadDCtx() {
  thread_local std::unique_ptr<ZSTD_DCtx, DCtxFree> ctx(ZSTD_createDCtx());
  return ctx.get();
}
}  // namespace

std::string Compress(std::string_view input) {
  std::string out(ZSTD_compressBound(input.size()), '\0');
  size_t n = ZSTD_compressCCtx(ThreadCCtx(), out.data(), out.size(), input.data(), input.size(),
                               kLevel);
  // Cannot fail with a bound-sized buffer; treat failure as a bug.
  if (ZSTD_isError(n)) std::abort();
  out.resize(n);
  return out;
}

Status Decompress(std::string_view input, size_t max_output, std::string* out) {
  // Exactly one frame, and not a skippable one (whose content size reads as
  // 0): ZSTD_decompressDCtx alone would also accept trailing empty or
  // skippable frames.
  uint32_t magic = 0;
  for (size_t i = 0; i < 4 && i < input.size(); ++i) {
    magic |= static_cast<uint32_t>(static_cast<uint8_t>(input[i])) << (8 * i);
  }
  const size_t frame = ZSTD_findFrameCompressedSize(input.data(), input.size());
  if (ZSTD_isError(frame) || frame != input.size() ||
      (magic & ZSTD_MAGIC_SKIPPABLE_MASK) == ZSTD_MAGIC_SKIPPABLE_START) {
    return Status::Corruption("record payload is not one zstd frame");
  }
  unsigned long long size = ZSTD_getFrameContentSize(input.data(), input.size());
  if (size == ZSTD_CONTENTSIZE_ERROR || size == ZSTD_CONTENTSIZE_UNKNOWN) {
    return Status::Corruption("record payload is not a sized zstd frame");
  }
  if (size > max_output) return Status::Corruption("record payload exceeds its size limit");
  out->resize(static_cast<size_t>(size));
  size_t n = ZSTD_decompressDCtx(ThreadDCtx(), out->data(), out->size(), input.data(),
                                 input.size());
  if (ZSTD_isError(n) || n != size) {
    out->clear();
    return Status::Corruption("record payload failed to decompress");
  }
  return Status::OK();
}

}  // namespace callvault::compress
