// Built-in lists the generator draws people, companies and labels from.
// Internal to the workload library.
#ifndef CALLVAULT_WORKLOAD_NAMES_H_
#define CALLVAULT_WORKLOAD_NAMES_H_

#include <cstddef>
#include <span>
#include <string_view>

namespace callvault::workload::names {

std::span<const std::string_view> FirstNames();
std::span<const std::string_view> LastNames();
std::span<const std::string_view> CompanyStems();     // "Blue", "North", ...
std::span<const std::string_view> CompanyEndings();   // "peak", "wind", ...
std::span<const std::string_view> CompanyKinds();     // "Systems", "Labs", ...
std::span<const std::string_view> TopLevelDomains();  // "com", "io", ...
std::span<const std::string_view> InternalTitles();   // job titles of our people
std::span<const std::string_view> ExternalTitles();   // job titles of theirs
std::span<const std::string_view> Topics();
std::span<const std::string_view> Trackers();
std::span<const std::string_view> ActionVerbs();
std::span<const std::string_view> Languages();        // BCP-47, "en-US" first

// External meeting stages: a title template ("%c" = their company, "%o" = ours)
// and the tag that goes with it.
struct Stage {
  std::string_view title;
  std::string_view tag;
};
std::span<const Stage> ExternalStages();
// Internal meeting titles ("%c" = an account name).
std::span<const std::string_view> InternalMeetingTitles();

}  // namespace callvault::workload::names

#endif  // CALLVAULT_WORKLOAD_NAMES_H_
