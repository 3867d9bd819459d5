// The redaction rule of EraseMode::kRedact, restated from subjects.cc for the
// models that check Erase against the store: tests/model (model_util.cc's
// Redact) and fuzz/api_fuzzer.cc. Header-only: the fuzzer is built apart
// from the tests (fuzz/CMakeLists.txt) and links nothing of tests/.
#ifndef CALLVAULT_TESTS_MODEL_REDACT_RULE_H_
#define CALLVAULT_TESTS_MODEL_REDACT_RULE_H_

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "callvault/call.h"

namespace callvault::model {

// Redacts `subject` (an email or phone, normalised) from `c`: the
// participant entries that name it lose their identity and speaker; their
// user ids stop owning the call and its action items (issue 10); their
// transcript segments lose the speaker; and the CRM links for which
// `link_is_subject(object_id)` holds go. updated_at is the caller's.
template <typename LinkIsSubject>
void RedactSubject(Call* c, const std::string& subject, LinkIsSubject link_is_subject) {
  std::set<uint32_t> speakers;
  std::set<std::string> users;
  for (auto& p : c->participants) {
    if (p.email != subject && p.phone != subject) continue;
    if (p.speaker_id != 0) speakers.insert(p.speaker_id);
    if (!p.user_id.empty()) users.insert(p.user_id);
    p.name.clear();
    p.email.clear();
    p.phone.clear();
    p.title.clear();
    p.user_id.clear();
    p.speaker_id = 0;
  }
  if (users.count(c->owner_user_id)) c->owner_user_id.clear();
  for (auto& a : c->insights.action_items) {
    if (users.count(a.owner_user_id)) a.owner_user_id.clear();
  }
  for (auto& s : c->transcript) {
    if (speakers.count(s.speaker_id)) s.speaker_id = 0;
  }
  std::erase_if(c->crm_links, [&](const CrmLink& l) { return link_is_subject(l.object_id); });
}

}  // namespace callvault::model

#endif  // CALLVAULT_TESTS_MODEL_REDACT_RULE_H_
