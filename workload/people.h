// Deterministic people and companies for the generator: our staff, customer
// accounts and their contacts, derived from the seed and an index so the same
// person appears in many calls. Internal to the workload library.
#ifndef CALLVAULT_WORKLOAD_PEOPLE_H_
#define CALLVAULT_WORKLOAD_PEOPLE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "callvault/call.h"
#include "workload/random.h"

namespace callvault::workload {

inline constexpr uint32_t kAccounts = 600;         // distinct customer accounts
inline constexpr uint32_t kContactsPerAccount = 8;

struct Account {
  uint32_t index = 0;
  std::string name;    // "Bluepeak Systems"
  std::string domain;  // "bluepeak.com"
};

// Participant fields except speaker_id. Staff have user_id "u-<index>".
std::vector<Participant> MakeStaff(uint64_t seed, uint32_t count, const std::string& domain,
                                   const std::string& company);
Account MakeAccount(uint64_t seed, uint32_t index);
Participant MakeContact(uint64_t seed, const Account& account, uint32_t contact);

// "+1" and ten digits, a plausible North American number.
std::string PhoneFromHash(uint64_t h);
// A UUID-shaped (version 4) string.
std::string Uuid(Rng& rng);
// `n` characters from [0-9a-f].
std::string Hex(Rng& rng, size_t n);
// `n` characters from `alphabet`, derived from `h` (deterministic ids).
std::string CharsFromHash(uint64_t h, size_t n, std::string_view alphabet);
std::string Lower(std::string_view s);

}  // namespace callvault::workload

#endif  // CALLVAULT_WORKLOAD_PEOPLE_H_
