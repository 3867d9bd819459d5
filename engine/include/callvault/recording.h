// Recordings: a call's audio or video, written as a stream and read whole or
// by byte range. Stored in the tenant's column family as chunks of
// kRecordingChunkBytes, each sealed with XChaCha20-Poly1305 (chunk format 2;
// recordings written in the secretstream format 1 are still read) under a
// key bound to the tenant, the call and the recording; purging the
// tenant, deleting the call, retention and erasure take them along.
// Spec: docs/format.md ("Recordings") and docs/crypto.md.
#ifndef CALLVAULT_RECORDING_H_
#define CALLVAULT_RECORDING_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "callvault/status.h"

namespace callvault {

inline constexpr uint32_t kRecordingChunkBytes = 1u << 20;
inline constexpr uint64_t kMaxRecordingBytes = uint64_t{64} << 30;  // 64 GiB

struct RecordingSpec {
  // Caller-supplied id (limits.h id rules); empty: the store makes one.
  std::string recording_id;
  std::string content_type = "application/octet-stream";  // e.g. "audio/mpeg"
  uint32_t duration_ms = 0;
  // Optional: the SHA-256 (32 raw bytes) the content must have. Finish()
  // fails with kInvalidArgument (and keeps nothing) if it differs.
  std::string expected_sha256;
};

struct RecordingInfo {
  std::string recording_id;
  std::string content_type;
  uint32_t duration_ms = 0;
  uint64_t size = 0;
  std::string sha256;  // 32 raw bytes, computed by the store
  int64_t created_at = 0;
  uint32_t chunks = 0;
};

// Streams one recording into the store. Nothing is visible until Finish()
// returns OK; a writer destroyed (or a process killed) before that leaves an
// incomplete recording that is never listed or read and is removed at the
// next open. Not thread-safe; must not outlive its Store.
class RecordingWriter {
 public:
  virtual ~RecordingWriter() = default;
  // Buffers and seals full chunks as they fill. kTenantPurged if the tenant
  // was purged meanwhile; kInvalidArgument beyond kMaxRecordingBytes.
  virtual Status Append(std::string_view bytes) = 0;
  // Seals the last chunk with the FINAL tag, writes the manifest and syncs.
  virtual Result<RecordingInfo> Finish() = 0;
  // Removes what was written. Also done by the destructor if unfinished.
  virtual Status Abort() = 0;
};

// Receives decrypted bytes in order; a non-OK status stops the read.
using RecordingSink = std::function<Status(std::string_view bytes)>;

}  // namespace callvault

#endif  // CALLVAULT_RECORDING_H_
