// Input limits. Store::PutCall and CreateTenant reject anything beyond them
// with kInvalidArgument, naming the field and the limit (never the value).
// docs/format.md repeats this table; keep the two in step.
#ifndef CALLVAULT_LIMITS_H_
#define CALLVAULT_LIMITS_H_

#include <cstddef>
#include <cstdint>

namespace callvault::limits {

// Identifiers (tenant_id, call_id, source_call_id, workspace_id, user ids,
// CRM ids): 1..128 bytes of printable ASCII without spaces.
inline constexpr size_t kMaxIdBytes = 128;
inline constexpr size_t kMaxRegionBytes = 32;  // [a-z0-9-]+
inline constexpr size_t kMaxTitleBytes = 1024;
inline constexpr size_t kMaxShortTextBytes = 256;  // names, emails, titles, tags, ...
inline constexpr size_t kMaxSegmentTextBytes = 16 * 1024;
inline constexpr size_t kMaxSummaryBytes = 64 * 1024;
inline constexpr size_t kMaxParticipants = 1000;
inline constexpr size_t kMaxTags = 100;
inline constexpr size_t kMaxTeams = 100;
inline constexpr size_t kMaxCrmLinks = 100;
inline constexpr size_t kMaxSegments = 100000;
inline constexpr size_t kMaxListItems = 1000;  // action items, topics, trackers
// The serialised transcript of one call (about 10 hours of speech).
inline constexpr size_t kMaxTranscriptBytes = 8 * 1024 * 1024;
// One sealed record as read from disk; larger is corruption.
inline constexpr size_t kMaxRecordBytes = 16 * 1024 * 1024;
inline constexpr size_t kMaxBatchCalls = 10000;
inline constexpr uint32_t kMaxRetentionDays = 36500;
// Instants (microseconds since the Unix epoch, UTC) are bounded to
// [kMinInstant, kMaxInstant): 1970-01-01T00:00:00Z up to, not including,
// 2200-01-01T00:00:00Z. Applies to Call::started_at (> 0), scheduled_start,
// scheduled_end, created_at, updated_at (0 = unset), the purge_at of
// ScheduleTenantPurge and the `now` of RunScheduledPurges and RunRetention.
// A later instant would sort after every listing's default end
// (ListQuery::to) and never expire.
inline constexpr int64_t kMinInstant = 0;
inline constexpr int64_t kMaxInstant = 7'258'118'400'000'000;  // 2200-01-01T00:00:00Z
inline constexpr size_t kDefaultListLimit = 100;
inline constexpr size_t kMaxListLimit = 1000;

}  // namespace callvault::limits

#endif  // CALLVAULT_LIMITS_H_
