// Background dictionary training (dictionaries.cc, docs/decisions/0045):
// the hook tests use to place races with it deterministically.
#ifndef CALLVAULT_ENGINE_DICTIONARY_TRAINING_H_
#define CALLVAULT_ENGINE_DICTIONARY_TRAINING_H_

#include <functional>

namespace callvault {
namespace testing {
// Called with "queued" in the put that queued its tenant (the caller's
// thread, under the tenant's write lock), and on the training thread with
// "sampled" (samples read, no tenant lock held), "trained" (the dictionary
// trained, no tenant lock held, about to take the put's locks to store it)
// and "done" (the job finished, whatever its outcome). nullptr: none.
// Tests only.
void SetDictionaryTrainingHookForTest(std::function<void(const char* phase)> hook);
}  // namespace testing
}  // namespace callvault

#endif  // CALLVAULT_ENGINE_DICTIONARY_TRAINING_H_
