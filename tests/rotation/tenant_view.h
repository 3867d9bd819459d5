// What the public API shows of a tenant's data, taken before and after an
// operation that copies the tenant (a key rotation, a move to another shard)
// and compared: the rotation tests' shared view.
#ifndef CALLVAULT_TESTS_ROTATION_TENANT_VIEW_H_
#define CALLVAULT_TESTS_ROTATION_TENANT_VIEW_H_

#include <map>
#include <string>
#include <vector>

#include "callvault/store.h"
#include "tests/testutil/testutil.h"

namespace callvault::rotationtest {

// Everything the public API shows of a tenant's data.
struct Snapshot {
  std::map<std::string, Call> calls;
  std::vector<std::string> by_participant;  // ListCalls on the participant index
  std::vector<std::string> by_workspace;
  std::vector<std::string> by_owner;
  uint64_t count = 0;
  std::map<std::string, std::string> recordings;  // call/recording -> content
  std::vector<std::string> holds;                 // hold id / call id / reason
  std::vector<std::string> feed;                  // sequence kind cause call version
  std::vector<std::string> refs;                  // FindReferences
  // Other queries a test adds (each "query: ids" or a value).
  std::vector<std::string> queries;
  bool operator==(const Snapshot&) const = default;
};

inline std::vector<std::string> Ids(Store* st, const std::string& tenant, ListQuery q) {
  std::vector<std::string> out;
  q.limit = 1000;
  auto page = st->ListCalls(tenant, q);
  EXPECT_OK(page);
  if (!page.ok()) return out;
  for (const auto& c : page->calls) out.push_back(c.call_id);
  return out;
}

inline Snapshot Take(Store* st, const std::string& tenant) {
  Snapshot s;
  ListQuery all;
  for (const auto& id : Ids(st, tenant, all)) {
    auto c = st->GetCall(tenant, id, kPartAll);
    EXPECT_OK(c);
    if (c.ok()) s.calls[id] = *c;
    auto recs = st->ListRecordings(tenant, id);
    EXPECT_OK(recs);
    if (!recs.ok()) continue;
    for (const auto& r : *recs) {
      std::string data;
      EXPECT_OK(st->ReadRecording(tenant, id, r.recording_id, 0, UINT64_MAX, [&](std::string_view b) {
        data.append(b);
        return Status::OK();
      }));
      s.recordings[id + "/" + r.recording_id] = data;
    }
  }
  ListQuery p;
  p.participants = {"bob@customer.example"};
  s.by_participant = Ids(st, tenant, p);
  ListQuery w;
  w.workspace_id = "ws-2";
  s.by_workspace = Ids(st, tenant, w);
  ListQuery o;
  o.owners = {"u-1"};
  s.by_owner = Ids(st, tenant, o);
  auto n = st->CountCalls(tenant);
  EXPECT_OK(n);
  if (n.ok()) s.count = *n;
  auto holds = st->ListHolds(tenant);
  EXPECT_OK(holds);
  if (holds.ok()) {
    for (const auto& h : *holds) s.holds.push_back(h.hold_id + "/" + h.call_id + "/" + h.reason);
  }
  std::string token;
  for (;;) {
    auto page = st->ReadChanges(tenant, token, 100);
    EXPECT_OK(page);
    if (!page.ok() || page->events.empty()) break;
    for (const auto& e : page->events) {
      s.feed.push_back(std::to_string(e.sequence) + " " + std::to_string(int(e.kind)) + " " +
                       std::to_string(int(e.cause)) + " " + e.call_id + " " +
                       std::to_string(e.version));
    }
    token = page->next_token;
  }
  auto refs = st->FindReferences(tenant, "alice@example.com");
  EXPECT_OK(refs);
  if (refs.ok()) {
    for (const auto& r : *refs) s.refs.push_back(r.call_id + " " + std::to_string(r.roles));
  }
  return s;
}

inline Result<RecordingInfo> WriteRecording(Store* st, const std::string& tenant, const std::string& call,
                                     const std::string& id, const std::string& data) {
  auto w = st->CreateRecording(tenant, call, {.recording_id = id, .content_type = "audio/wav"});
  if (!w.ok()) return w.status();
  for (size_t i = 0; i < data.size(); i += 700000) {
    CV_RETURN_IF_ERROR((*w)->Append(std::string_view(data).substr(i, 700000)));
  }
  return (*w)->Finish();
}

}  // namespace callvault::rotationtest

#endif  // CALLVAULT_TESTS_ROTATION_TENANT_VIEW_H_
