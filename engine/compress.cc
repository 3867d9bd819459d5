// For ZSTD_createDDict_byReference (stable in practice, exported by
// libzstd 1.5.x, but declared only for static linking).
#define ZSTD_STATIC_LINKING_ONLY
#include "engine/compress.h"

#include <sodium.h>
#include <zdict.h>
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
// A second context for dictionary compression: its sticky parameters (the
// referenced dictionary, no dictionary id in the frame) never leak into
// Compress() without a dictionary.
ZSTD_CCtx* ThreadDictCCtx() {
  thread_local std::unique_ptr<ZSTD_CCtx, CCtxFree> ctx(ZSTD_createCCtx());
  return ctx.get();
}
ZSTD_DCtx* ThreadDCtx() {
  thread_local std::unique_ptr<ZSTD_DCtx, DCtxFree> ctx(ZSTD_createDCtx());
  return ctx.get();
}

// The process-wide cache of built compression tables: every Dictionary
// whose tables_ is set is in `lru`, most recently used first.
struct TablesCache {
  std::mutex mu;
  std::list<const Dictionary*> lru;  // GUARDED_BY(mu)
};
TablesCache& Cache() {
  static TablesCache* c = new TablesCache;  // never destroyed: used from destructors
  return *c;
}
}  // namespace

struct Dictionary::CompressionTables {
  ZSTD_CDict* cdict = nullptr;
  ~CompressionTables() { ZSTD_freeCDict(cdict); }
};

size_t CachedCompressionTables() {
  TablesCache& c = Cache();
  std::lock_guard<std::mutex> l(c.mu);
  return c.lru.size();
}

std::shared_ptr<const Dictionary::CompressionTables> Dictionary::Tables() const {
  TablesCache& c = Cache();
  {
    std::lock_guard<std::mutex> l(c.mu);
    if (tables_) {
      c.lru.splice(c.lru.begin(), c.lru, lru_);
      return tables_;
    }
  }
  // Built outside the process-wide mutex (it takes about a millisecond), so
  // a miss does not stall every other tenant's compression.
  auto t = std::make_shared<CompressionTables>();
  // By reference: the tables hold no copy of the dictionary (tenant
  // plaintext, which only content_ keeps and zeroes). Safe: whoever holds
  // the tables holds the Dictionary (Compress's caller).
  t->cdict = ZSTD_createCDict_advanced(content_.data(), content_.size(), ZSTD_dlm_byRef,
                                       ZSTD_dct_fullDict,
                                       ZSTD_getCParams(kLevel, 0, content_.size()),
                                       ZSTD_defaultCMem);
  if (t->cdict == nullptr) return nullptr;  // out of memory
  std::lock_guard<std::mutex> l(c.mu);
  if (tables_) {
    // Another thread built them meanwhile: use those (ours are freed).
    c.lru.splice(c.lru.begin(), c.lru, lru_);
    return tables_;
  }
  tables_ = t;
  c.lru.push_front(this);
  lru_ = c.lru.begin();
  while (c.lru.size() > kCachedCompressionTables) {
    const Dictionary* victim = c.lru.back();
    victim->tables_.reset();  // freed when its last holder is done
    c.lru.pop_back();
  }
  return t;
}

Status Dictionary::Create(uint32_t id, std::string content,
                          std::shared_ptr<const Dictionary>* out) {
  if (id == 0) return Status::Corruption("compression dictionary id 0 is reserved");
  if (content.size() < kMinDictionaryBytes || content.size() > kMaxDictionaryBytes) {
    sodium_memzero(content.data(), content.size());
    return Status::Corruption("compression dictionary " + std::to_string(id) +
                              " has an out-of-range size");
  }
  // A trained dictionary carries zstd's magic; raw-content dictionaries
  // are never written, so refuse them.
  if (ZSTD_getDictID_fromDict(content.data(), content.size()) != id) {
    sodium_memzero(content.data(), content.size());
    return Status::Corruption("compression dictionary " + std::to_string(id) +
                              " is not a zstd dictionary with that id");
  }
  std::shared_ptr<Dictionary> d(new Dictionary(id, std::move(content)));
  d->ddict_ = ZSTD_createDDict_byReference(d->content_.data(), d->content_.size());
  if (d->ddict_ == nullptr) {
    return Status::Corruption("compression dictionary " + std::to_string(id) +
                              " does not load");
  }
  *out = std::move(d);
  return Status::OK();
}

size_t Dictionary::MemoryBytes() const {
  return sizeof(*this) + content_.capacity() + ZSTD_sizeof_DDict(ddict_);
}

Dictionary::~Dictionary() {
  {
    TablesCache& c = Cache();
    std::lock_guard<std::mutex> l(c.mu);
    if (tables_) {
      c.lru.erase(lru_);
      tables_.reset();
    }
  }
  ZSTD_freeDDict(ddict_);
  sodium_memzero(content_.data(), content_.size());
}

std::string Compress(std::string_view input) {
  std::string out(ZSTD_compressBound(input.size()), '\0');
  size_t n = ZSTD_compressCCtx(ThreadCCtx(), out.data(), out.size(), input.data(), input.size(),
                               kLevel);
  // Cannot fail with a bound-sized buffer; treat failure as a bug.
  if (ZSTD_isError(n)) std::abort();
  out.resize(n);
  return out;
}

std::string Compress(std::string_view input, const Dictionary& dict) {
  const auto tables = dict.Tables();  // kept alive until the frame is done
  if (tables == nullptr) std::abort();  // out of memory
  const ZSTD_CDict* cdict = tables->cdict;
  ZSTD_CCtx* c = ThreadDictCCtx();
  std::string out(ZSTD_compressBound(input.size()), '\0');
  ZSTD_CCtx_reset(c, ZSTD_reset_session_and_parameters);
  size_t n = ZSTD_CCtx_setParameter(c, ZSTD_c_dictIDFlag, 0);
  if (!ZSTD_isError(n)) n = ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, 1);
  if (!ZSTD_isError(n)) n = ZSTD_CCtx_refCDict(c, cdict);
  if (!ZSTD_isError(n)) n = ZSTD_compress2(c, out.data(), out.size(), input.data(), input.size());
  ZSTD_CCtx_refCDict(c, nullptr);  // hold no pointer to a dictionary that may go away
  if (ZSTD_isError(n)) std::abort();
  out.resize(n);
  return out;
}

Status Decompress(std::string_view input, size_t max_output, std::string* out,
                  const Dictionary* dict) {
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
  size_t n = dict != nullptr
                 ? ZSTD_decompress_usingDDict(ThreadDCtx(), out->data(), out->size(), input.data(),
                                              input.size(), dict->ddict())
                 : ZSTD_decompressDCtx(ThreadDCtx(), out->data(), out->size(), input.data(),
                                       input.size());
  if (ZSTD_isError(n) || n != size) {
    out->clear();
    return Status::Corruption(dict != nullptr
                                  ? "record payload failed to decompress with dictionary " +
                                        std::to_string(dict->id())
                                  : std::string("record payload failed to decompress"));
  }
  return Status::OK();
}

Status TrainDictionary(const std::vector<std::string>& samples, size_t max_bytes, uint32_t id,
                       std::string* out) {
  std::string joined;
  std::vector<size_t> sizes;
  sizes.reserve(samples.size());
  for (const auto& s : samples) {
    if (s.empty()) continue;
    joined.append(s);
    sizes.push_back(s.size());
  }
  std::string dict(max_bytes, '\0');
  size_t n = ZDICT_trainFromBuffer(dict.data(), dict.size(), joined.data(), sizes.data(),
                                   static_cast<unsigned>(sizes.size()));
  sodium_memzero(joined.data(), joined.size());
  if (ZDICT_isError(n)) {
    sodium_memzero(dict.data(), dict.size());
    return Status::InvalidArgument(std::string("dictionary training failed: ") +
                                   ZDICT_getErrorName(n));
  }
  sodium_memzero(dict.data() + n, dict.size() - n);
  dict.resize(n);
  // zstd's dictionary header: magic (4 bytes), then the dictionary id (4,
  // little-endian), which ZDICT derives from the content; ours instead.
  if (n < 8 || ZSTD_getDictID_fromDict(dict.data(), n) == 0) {
    sodium_memzero(dict.data(), dict.size());
    return Status::InvalidArgument("dictionary training gave no zstd dictionary");
  }
  for (int i = 0; i < 4; ++i) dict[4 + static_cast<size_t>(i)] = static_cast<char>(id >> (8 * i));
  *out = std::move(dict);
  return Status::OK();
}

}  // namespace callvault::compress
