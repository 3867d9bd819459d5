// The in-memory model of what a tenant of the store holds, and the pieces the
// model tests share: seeded randomness, the pools calls are drawn from, the
// engine's normalisation and redaction rules restated independently, the
// listing filter, and a field-by-field call diff for failure messages.
//
// The model restates the documented behaviour (store.h, call.h, issue 3); it
// does not call into the engine. Where the engine's rule is the only
// specification (redaction, reference roles), the rule is copied from
// subjects.cc and named here so a change there shows up as a test failure.
#ifndef CALLVAULT_TESTS_MODEL_MODEL_UTIL_H_
#define CALLVAULT_TESTS_MODEL_MODEL_UTIL_H_

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "callvault/store.h"
#include "workload/workload.h"

namespace callvault::model {

// started_at values sit on a grid of kSlots seconds from kT0, so that many
// calls share one started_at (ties are ordered by a keyed hash).
inline constexpr int64_t kSec = 1'000'000;
inline constexpr int64_t kT0 = workload::kDefaultStartUs;
inline constexpr int64_t kSlots = 120;
inline constexpr int64_t kC0 = kT0 - 86'400 * kSec;  // explicit created_at values
inline constexpr int64_t kU0 = kT0 + 86'400 * kSec;  // explicit updated_at values
inline constexpr int64_t kUSlots = 400;

inline int64_t WallMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

inline uint64_t EnvU64(const char* name, uint64_t fallback) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  return std::strtoull(v, nullptr, 0);
}

// CALLVAULT_SEED replays a run; otherwise a fresh seed each run.
inline uint64_t SeedFromEnv() {
  std::random_device rd;
  uint64_t fresh = (static_cast<uint64_t>(rd()) << 32) ^ rd() ^ static_cast<uint64_t>(WallMicros());
  return EnvU64("CALLVAULT_SEED", fresh);
}

// A seeded PRNG with distributions of our own (the <random> distributions
// are implementation-defined, so a seed would not replay across libraries).
class Rng {
 public:
  explicit Rng(uint64_t seed) : g_(seed) {}
  uint64_t Next() { return g_(); }
  size_t Below(size_t n) { return n == 0 ? 0 : static_cast<size_t>(g_() % n); }
  int64_t Slot(int64_t n) { return static_cast<int64_t>(Below(static_cast<size_t>(n))); }
  bool Chance(double p) { return static_cast<double>(g_() >> 11) * 0x1.0p-53 < p; }
  template <typename T>
  const T& Pick(const std::vector<T>& v) {
    return v[Below(v.size())];
  }

 private:
  std::mt19937_64 g_;
};

// What calls are drawn from: small pools, so filters and subjects collide.
struct Pools {
  std::vector<std::string> owners;      // u-0 .. u-5
  std::vector<std::string> workspaces;  // ws-0 .. ws-2
  std::vector<std::string> emails;      // normalised; the first 6 belong to the owners
  std::vector<std::string> names;       // one per email
  std::vector<std::string> phones;      // normalised E.164
  std::vector<CrmLink> crm;             // some object ids are an email or a phone
  std::vector<std::string> tags;
  std::vector<uint32_t> durations;
  std::vector<std::string> subjects;  // emails, phones, and the CRM-only subjects
};
const Pools& P();

// The engine's normalisation (validate.cc), restated.
std::string NormEmail(std::string e);
std::string NormPhone(const std::string& p);
// An email or E.164 phone, normalised; nullopt if it is neither.
std::optional<std::string> NormSubject(const std::string& s);
// Participants' emails lower-cased, phones stripped to E.164.
Call Normalized(Call c);

// A raw (caller-side) spelling of a normalised value: random upper case for
// emails, random separators for phones.
std::string RawEmail(Rng& r, const std::string& e);
std::string RawPhone(Rng& r, const std::string& p);
std::string RawSubject(Rng& r, const std::string& s);

// Every email and phone the call references: its participants' and its CRM
// links' object ids that are an email or a phone (normalised).
std::set<std::string> Subjects(const Call& c);
// ReferenceRole bits of `subject` (normalised) in `c`.
uint32_t Roles(const Call& c, const std::string& subject);
// The redaction rule of EraseMode::kRedact (updated_at is set by the caller):
// the subject's participant entries, CRM links, and its user ids as call and
// action-item owner.
void Redact(Call* c, const std::string& subject);
// The parts GetCall returns for `parts`.
Call Strip(Call c, uint32_t parts);
// Whether `c` passes every filter of `q` (the cursor and limit aside).
bool Matches(const ListQuery& q, const Call& c);

// A random call: content from the workload generator, attributes from the pools.
Call RandomCall(Rng& r, workload::Generator& gen, const std::string& id);
ListQuery RandomQuery(Rng& r);

std::string QueryString(const ListQuery& q);
// "field: want ... got ..." for every field that differs; "" if equal.
std::string Diff(const Call& want, const Call& got);

// One tenant of the model: every call by its stored call_id.
struct TenantModel {
  std::string id;
  std::map<std::string, Call> calls;
  std::set<std::string> gone;  // ids that were stored once and are not now

  // The stored call a put of `in` (normalised) updates, or nullptr if it
  // creates one: the call with the same (source_system, source_call_id),
  // else the call with the same call_id.
  const Call* Target(const Call& in) const;
  // Applies a put of `in` (normalised). Returns the stored call_id and
  // whether it created a call. created_at/updated_at stay 0 where the store
  // chooses them (the caller reads them back).
  std::pair<std::string, bool> ApplyPut(Call in);
  void Remove(const std::string& call_id) {
    calls.erase(call_id);
    gone.insert(call_id);
  }
};

}  // namespace callvault::model

#endif  // CALLVAULT_TESTS_MODEL_MODEL_UTIL_H_
