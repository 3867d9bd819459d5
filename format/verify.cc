#include "format/verify.h"

#include "call_generated.h"

namespace callvault::format {

namespace {
template <typename T>
bool VerifyRoot(const uint8_t* data, size_t size) {
  if (data == nullptr || size < 8 || size > kMaxFlatBufferBytes) return false;
  // The buffer must be aligned for the verifier's alignment checks; callers
  // pass std::string data, which is.
  flatbuffers::Verifier::Options opts;
  opts.max_depth = kMaxDepth;
  opts.max_tables = kMaxTables;
  flatbuffers::Verifier v(data, size, opts);
  return v.VerifyBuffer<T>(nullptr);
}
}  // namespace

bool VerifyCallMeta(const uint8_t* d, size_t n) { return VerifyRoot<fb::CallMeta>(d, n); }
bool VerifyTranscript(const uint8_t* d, size_t n) { return VerifyRoot<fb::Transcript>(d, n); }
bool VerifyInsights(const uint8_t* d, size_t n) { return VerifyRoot<fb::Insights>(d, n); }
bool VerifyTenantRecord(const uint8_t* d, size_t n) { return VerifyRoot<fb::TenantRecord>(d, n); }
bool VerifyReceiptRecord(const uint8_t* d, size_t n) { return VerifyRoot<fb::ReceiptRecord>(d, n); }
bool VerifyRecordingManifest(const uint8_t* d, size_t n) {
  return VerifyRoot<fb::RecordingManifest>(d, n);
}

bool VerifyAuditRecord(const uint8_t* d, size_t n) { return VerifyRoot<fb::AuditRecord>(d, n); }
bool VerifyHold(const uint8_t* d, size_t n) { return VerifyRoot<fb::Hold>(d, n); }

}  // namespace callvault::format
