// Keeps every audit event a store reports through Options::audit_callback,
// for the damage tests that check which alarm (wal_damage, shard_loss,
// metadata_loss, ...) an open raised.
#ifndef CALLVAULT_TESTS_DAMAGE_AUDIT_RECORDER_H_
#define CALLVAULT_TESTS_DAMAGE_AUDIT_RECORDER_H_

#include <mutex>
#include <string>
#include <vector>

#include "callvault/store.h"

namespace callvault::damage {

struct AuditRecorder {
  std::mutex mu;
  std::vector<AuditEvent> seen;

  // Sets `o`'s audit callback to record here (this must outlive the store).
  void RecordInto(Options* o) {
    o->audit_callback = [this](const AuditEvent& e) {
      std::lock_guard<std::mutex> l(mu);
      seen.push_back(e);
    };
  }
  // "kind: detail" per event, in order.
  std::vector<std::string> Kinds() {
    std::lock_guard<std::mutex> l(mu);
    std::vector<std::string> v;
    for (const auto& e : seen) v.push_back(e.kind + ": " + e.detail);
    return v;
  }
  bool Saw(const std::string& kind) {
    std::lock_guard<std::mutex> l(mu);
    for (const auto& e : seen) {
      if (e.kind == kind) return true;
    }
    return false;
  }
};

}  // namespace callvault::damage

#endif  // CALLVAULT_TESTS_DAMAGE_AUDIT_RECORDER_H_
