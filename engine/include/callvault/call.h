// The data model of one call, as product.md describes it.
//
// Units are normalised on ingest (Store::PutCall checks them): instants are
// int64 microseconds since the Unix epoch (UTC), at or after 1970-01-01 and
// before 2200-01-01 (limits::kMaxInstant); durations and offsets are
// uint32 milliseconds; emails are case-folded (Unicode simple case folding,
// docs/format.md); phones are E.164 ("+" and
// 8-15 digits); languages are BCP-47 tags. Limits on every field are in
// callvault/limits.h and docs/format.md.
//
// These are plain values: copy, move and compare them freely.
#ifndef CALLVAULT_CALL_H_
#define CALLVAULT_CALL_H_

#include <cstdint>
#include <string>
#include <vector>

namespace callvault {

// Do not renumber any enum below: the values are stored on disk.
enum class SourceSystem : uint8_t { kOther = 0, kZoom = 1, kTeams = 2, kMeet = 3, kWebex = 4, kDialer = 5, kUpload = 6 };
enum class Direction : uint8_t { kUnknown = 0, kInbound = 1, kOutbound = 2, kConference = 3 };
enum class CallScope : uint8_t { kUnknown = 0, kInternal = 1, kExternal = 2 };
enum class Media : uint8_t { kAudio = 0, kVideo = 1 };
enum class Affiliation : uint8_t { kUnknown = 0, kInternal = 1, kExternal = 2 };
enum class CrmObjectType : uint8_t { kAccount = 0, kOpportunity = 1, kContact = 2, kLead = 3 };

struct Participant {
  std::string name;
  std::string email;    // case-folded, or empty
  std::string phone;    // E.164, or empty
  std::string title;    // job title
  std::string company;
  Affiliation affiliation = Affiliation::kUnknown;
  uint32_t speaker_id = 0;  // matches TranscriptSegment::speaker_id
  std::string user_id;      // the SaaS user, for internal participants
  bool operator==(const Participant&) const = default;
};

struct CrmLink {
  std::string system;  // e.g. "salesforce", "hubspot"
  CrmObjectType object_type = CrmObjectType::kAccount;
  std::string object_id;
  bool operator==(const CrmLink&) const = default;
};

struct TranscriptSegment {
  uint32_t speaker_id = 0;
  uint32_t start_ms = 0;  // offset from the start of the call
  uint32_t end_ms = 0;    // >= start_ms
  std::string text;
  float confidence = 0;  // 0..1
  bool operator==(const TranscriptSegment&) const = default;
};

struct ActionItem {
  std::string text;
  std::string owner_user_id;  // may be empty
  bool operator==(const ActionItem&) const = default;
};

struct Tracker {
  std::string name;  // e.g. "pricing", "competitor:acme"
  uint32_t count = 0;
  bool operator==(const Tracker&) const = default;
};

// LLM output about the call; call data like any other.
struct Insights {
  std::string summary;
  std::vector<ActionItem> action_items;
  std::vector<std::string> topics;
  std::vector<Tracker> trackers;
  std::string model_name;
  std::string model_version;
  bool empty() const {
    return summary.empty() && action_items.empty() && topics.empty() && trackers.empty() &&
           model_name.empty() && model_version.empty();
  }
  bool operator==(const Insights&) const = default;
};

struct Call {
  // identity
  std::string call_id;         // required; caller-supplied, e.g. a UUID
  SourceSystem source_system = SourceSystem::kOther;
  std::string source_call_id;  // the origin's id; the idempotency key when set
  std::string workspace_id;
  // when
  int64_t started_at = 0;  // required, > 0 and < limits::kMaxInstant; microseconds since epoch
  uint32_t duration_ms = 0;
  int64_t scheduled_start = 0;  // 0 = unknown
  int64_t scheduled_end = 0;
  int64_t created_at = 0;  // set by the store on first put when 0
  int64_t updated_at = 0;  // set by the store on every put when 0
  // what
  std::string title;
  Direction direction = Direction::kUnknown;
  CallScope scope = CallScope::kUnknown;
  Media media = Media::kAudio;
  std::string language;  // BCP-47, e.g. "en-US"
  std::string status;    // e.g. "completed", "processing"
  std::vector<std::string> tags;
  // who
  std::string owner_user_id;
  std::vector<std::string> team_ids;
  std::vector<Participant> participants;
  // CRM
  std::vector<CrmLink> crm_links;
  // content
  std::vector<TranscriptSegment> transcript;
  Insights insights;
  // The call's version, set by the store on every read (GetCall, GetCalls,
  // ListCalls) and ignored by writes (PutCall, PutCalls, UpdateCall assign
  // the next one and return it in PutResult). Monotonic per call and never
  // reused, not even after a DeleteCall and a put of the same call_id: a
  // write with an expected version that a reader once saw can never match a
  // later incarnation (docs/decisions/0028). A call written by a store of
  // format version 1 reads as version 1.
  uint64_t version = 0;

  // Compares the content: every field but `version` (a call read back
  // equals the call that was put).
  bool operator==(const Call& o) const {
    return call_id == o.call_id && source_system == o.source_system &&
           source_call_id == o.source_call_id && workspace_id == o.workspace_id &&
           started_at == o.started_at && duration_ms == o.duration_ms &&
           scheduled_start == o.scheduled_start && scheduled_end == o.scheduled_end &&
           created_at == o.created_at && updated_at == o.updated_at && title == o.title &&
           direction == o.direction && scope == o.scope && media == o.media &&
           language == o.language && status == o.status && tags == o.tags &&
           owner_user_id == o.owner_user_id && team_ids == o.team_ids &&
           participants == o.participants && crm_links == o.crm_links &&
           transcript == o.transcript && insights == o.insights;
  }
};

// Which parts of a call GetCall returns. Metadata (identity, times, title,
// owner, teams, tags, CRM links) is always returned; the others are stored
// apart and decrypted only when asked for.
//
// UpdateCall takes the same bits for the parts it replaces, plus
// kPartFields: the metadata fields (every field of Call but call_id,
// created_at, updated_at, version, participants, transcript and insights).
enum Parts : uint32_t {
  kPartMetadata = 0,
  kPartParticipants = 1u << 0,
  kPartTranscript = 1u << 1,
  kPartInsights = 1u << 2,
  kPartAll = kPartParticipants | kPartTranscript | kPartInsights,
  // UpdateCall only (GetCall refuses it): replace the metadata fields.
  kPartFields = 1u << 3,
};

}  // namespace callvault

#endif  // CALLVAULT_CALL_H_
