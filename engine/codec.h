// Plain structs <-> FlatBuffers bytes. Decoders take verified bytes only
// (format/verify.h) and check enum ranges (the FlatBuffers verifier does
// not).
#ifndef CALLVAULT_ENGINE_CODEC_H_
#define CALLVAULT_ENGINE_CODEC_H_

#include <string>
#include <string_view>

#include "callvault/call.h"
#include "callvault/status.h"
#include "callvault/store.h"

namespace callvault::codec {

// The registry entry of one tenant (metadata instance).
struct TenantRecord {
  std::string tenant_id;
  TenantState state = TenantState::kCreating;
  std::string region;
  uint32_t retention_days = 0;
  int64_t created_at = 0;
  int64_t purged_at = 0;
  uint64_t internal_id = 0;
  uint32_t shard = 0;
  uint64_t cf_generation = 0;
  uint32_t key_version = 0;
  uint64_t receipt_sequence = 0;  // the purge receipt, once purged
  int64_t purge_at = 0;
  int64_t churned_at = 0;
  std::vector<Hold> holds;
  std::vector<std::pair<std::string, uint32_t>> workspace_retention;
  uint32_t purge_kek_generation = 0;  // set when the purge begins
  // Tenant moves (docs/decisions/0022).
  uint64_t ad_internal_id = 0;  // sealed-with internal id; 0: internal_id
  uint8_t move_state = 0;       // kMoveNone, kMoveFenced, kMoveIn
  std::string move_id;          // hex
  std::string move_peer;        // hex store id
  // Tenant key rotation (docs/decisions/0036). `family` names the live
  // column family (0: "t<id>"); while a rotation runs, rotation_* describe
  // the other copy: the one being written (copying) or the one being
  // destroyed (shredding).
  uint32_t family = 0;
  uint8_t rotation_state = 0;  // kRotationNone, kRotationCopying, kRotationShredding
  uint32_t rotation_family = 0;
  uint64_t rotation_cf_generation = 0;
  uint32_t rotation_key_version = 0;
  // The shard of rotation_family; kSameShard: `shard` (decision 0057).
  uint32_t rotation_shard = 0xffffffffu;
};
inline constexpr uint32_t kSameShard = 0xffffffffu;
// The shard the other copy of a rotation (rotation_family) lives in.
inline uint32_t RotationShard(const TenantRecord& t) {
  return t.rotation_shard == kSameShard ? t.shard : t.rotation_shard;
}
inline constexpr uint8_t kRotationNone = 0;
inline constexpr uint8_t kRotationCopying = 1;
inline constexpr uint8_t kRotationShredding = 2;
inline constexpr uint8_t kMoveNone = 0;
inline constexpr uint8_t kMoveFenced = 1;  // source: writes refused, copy at move_peer
inline constexpr uint8_t kMoveIn = 2;      // destination: arrived by a move

// `parts_present`: bit kPartTranscript / kPartInsights set when stored.
std::string EncodeMeta(const Call& call, uint32_t parts_present);
std::string EncodeTranscript(const Call& call);
std::string EncodeInsights(const Call& call);
std::string EncodeTenant(const TenantRecord& t);
std::string EncodeReceipt(const Receipt& r);
std::string EncodeHold(const Hold& h);
std::string EncodeAudit(const AuditEvent& e);

// Each verifies `bytes` first; kCorruption on any failure.
Status DecodeMeta(std::string_view bytes, Call* call, uint32_t* parts_present);
Status DecodeTranscript(std::string_view bytes, Call* call);
Status DecodeInsights(std::string_view bytes, Call* call);
Status DecodeTenant(std::string_view bytes, TenantRecord* t);
Status DecodeReceipt(std::string_view bytes, Receipt* r);
Status DecodeHold(std::string_view bytes, Hold* h);
Status DecodeAudit(std::string_view bytes, AuditEvent* e);

}  // namespace callvault::codec

#endif  // CALLVAULT_ENGINE_CODEC_H_
