// Verification of untrusted FlatBuffers bytes (after AEAD open and
// decompression). FlatBuffers 2.0.8 checks the 2 GiB limit only with
// assert(), so the size is checked here first; depth and table counts are
// bounded explicitly.
#ifndef CALLVAULT_FORMAT_VERIFY_H_
#define CALLVAULT_FORMAT_VERIFY_H_

#include <cstddef>
#include <cstdint>

namespace callvault::format {

inline constexpr size_t kMaxFlatBufferBytes = 64u << 20;
inline constexpr unsigned kMaxDepth = 16;
inline constexpr unsigned kMaxTables = 2'000'000;

bool VerifyCallMeta(const uint8_t* data, size_t size);
bool VerifyTranscript(const uint8_t* data, size_t size);
bool VerifyInsights(const uint8_t* data, size_t size);
bool VerifyTenantRecord(const uint8_t* data, size_t size);
bool VerifyReceiptRecord(const uint8_t* data, size_t size);
bool VerifyRecordingManifest(const uint8_t* data, size_t size);
bool VerifyAuditRecord(const uint8_t* data, size_t size);
bool VerifyHold(const uint8_t* data, size_t size);

}  // namespace callvault::format

#endif  // CALLVAULT_FORMAT_VERIFY_H_
