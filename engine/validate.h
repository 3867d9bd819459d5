// Input validation and normalisation (limits.h). Messages name the field
// and the rule, never the value.
#ifndef CALLVAULT_ENGINE_VALIDATE_H_
#define CALLVAULT_ENGINE_VALIDATE_H_

#include <string>
#include <string_view>

#include "callvault/call.h"
#include "callvault/status.h"

namespace callvault::validate {

// 1..kMaxIdBytes printable ASCII (0x21..0x7e).
Status Id(std::string_view field, std::string_view id);
// [a-z0-9-], 1..kMaxRegionBytes.
Status Region(std::string_view region);
// An instant in [limits::kMinInstant, limits::kMaxInstant); kInvalidArgument
// naming `field` otherwise.
Status Instant(std::string_view field, int64_t t);
// Case-folds emails (FoldCase), strips spaces, dashes, dots and parentheses from
// phones, then checks every field of the call against limits.h.
Status NormalizeCall(Call* call);
bool IsUtf8(std::string_view s);
// Unicode simple case folding (CaseFolding.txt, status C and S; no Turkic
// rules, no normalisation) of valid UTF-8 (check IsUtf8 first). ASCII
// folds to lower case as before. docs/format.md, decision 0013.
std::string FoldCase(std::string_view s);
// An email (contains '@': lower-cased) or a phone (normalised to E.164).
// kInvalidArgument if it is neither.
Status NormalizeSubject(std::string* subject);

}  // namespace callvault::validate

#endif  // CALLVAULT_ENGINE_VALIDATE_H_
