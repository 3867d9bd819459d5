// JSON <-> Call conversion, with the field names of product.md and call.h.
//
// Parsing is strict: unknown fields, wrong types, out-of-range numbers and
// unknown enum names are errors. Every error is kInvalidArgument with a
// message naming the JSON path and the problem, e.g.
//   "calls[3].participants[1].speaker_id: expected a non-negative integer"
// and never the offending value (it may be personal data). The path always
// starts with "calls[i]", also when the input is a single object (i = 0).
//
// Instants (started_at, scheduled_start, scheduled_end, created_at,
// updated_at) are integers (microseconds since the Unix epoch) or RFC 3339
// strings ("2026-03-01T14:30:00Z", "2026-03-01T14:30:00.123456+02:00").
// A JSON null is the same as an absent field.
//
// ParseCalls and CallFromJson throw nothing. CallToJson gives a json value
// whose dump() throws if a string is not valid UTF-8 (never the case for
// calls parsed here); pass nlohmann::json::error_handler_t::replace to dump()
// when printing calls from elsewhere. Duplicate keys: the last one wins
// (nlohmann's behaviour).
#ifndef CALLVAULT_TOOLS_JSON_CALL_JSON_H_
#define CALLVAULT_TOOLS_JSON_CALL_JSON_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "callvault/call.h"
#include "callvault/status.h"

namespace callvault::json {

// Inputs larger than this are refused (kInvalidArgument).
inline constexpr size_t kMaxInputBytes = 256u << 20;

// Parses one JSON object or an array of objects. Requires call_id (non-empty)
// and started_at (> 0) in each. Malformed JSON gives
// "malformed JSON at byte N".
Result<std::vector<Call>> ParseCalls(std::string_view text);

// Parses one call object; `path` prefixes error messages (e.g. "calls[0]").
Result<Call> CallFromJson(const nlohmann::json& object, const std::string& path);

struct JsonOptions {
  // false: personal data is redacted. Participant name, email, phone and
  // title and the call title become "[redacted]" (when non-empty); transcript
  // text, the summary and action item texts become "[redacted N bytes]".
  // Identifiers (call_id, user ids, CRM ids), times and labels are shown.
  bool reveal = false;
  // Which of "participants", "transcript" and "insights" appear (see Parts
  // in call.h); metadata always does.
  uint32_t parts = kPartAll;
};

// Every field is present (instants as integers), except the parts not
// requested; "version" is the call's version (Call::version: 0 for a call
// not read from a store). With reveal and kPartAll,
// ParseCalls(CallToJson(c).dump()) gives back `c`, version included.
nlohmann::json CallToJson(const Call& call, const JsonOptions& options = {});

// Enum names as they appear in JSON ("zoom", "conference", ...).
std::string_view SourceSystemName(SourceSystem v);
std::string_view DirectionName(Direction v);
std::string_view ScopeName(CallScope v);
std::string_view MediaName(Media v);
std::string_view AffiliationName(Affiliation v);
std::string_view CrmObjectTypeName(CrmObjectType v);

// RFC 3339 date-time ("YYYY-MM-DDTHH:MM:SS[.frac](Z|+hh:mm|-hh:mm)"; 't', 'z'
// and a space separator are accepted too) to microseconds since the epoch.
// Digits past microseconds are truncated. Years 0000-9999; may be negative
// (before 1970). kInvalidArgument (message without the input) when malformed.
Result<int64_t> ParseRfc3339(std::string_view text);
// Microseconds since the epoch to "YYYY-MM-DDTHH:MM:SS.ffffffZ" (the fraction
// is omitted when zero). Years outside 0000-9999 are clamped.
std::string FormatRfc3339(int64_t micros);

}  // namespace callvault::json

#endif  // CALLVAULT_TOOLS_JSON_CALL_JSON_H_
