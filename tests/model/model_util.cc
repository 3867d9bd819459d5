#include "tests/model/model_util.h"

#include <algorithm>

#include "tests/model/redact_rule.h"

namespace callvault::model {

namespace {

Pools MakePools() {
  Pools p;
  for (int i = 0; i < 6; ++i) {
    p.owners.push_back("u-" + std::to_string(i));
    p.emails.push_back("rep" + std::to_string(i) + "@brightwave.com");
    p.names.push_back("Rep" + std::to_string(i) + " Brightwave");
  }
  p.workspaces = {"ws-0", "ws-1", "ws-2"};
  for (int j = 0; j < 14; ++j) {
    p.emails.push_back("guest" + std::to_string(j) + "@customer" + std::to_string(j % 3) +
                       ".example");
    p.names.push_back("Guest" + std::to_string(j) + " Customerson");
  }
  for (int k = 0; k < 8; ++k) p.phones.push_back("+1415555010" + std::to_string(k));
  p.phones.push_back("+442071838750");
  p.phones.push_back("+33142685300");
  p.crm = {
      {"salesforce", CrmObjectType::kAccount, "001ACME"},
      {"hubspot", CrmObjectType::kAccount, "001ACME"},  // same id, other system
      {"salesforce", CrmObjectType::kLead, "001ACME"},  // same id, other type
      {"salesforce", CrmObjectType::kOpportunity, "006DEAL1"},
      {"salesforce", CrmObjectType::kOpportunity, "006DEAL2"},
      {"hubspot", CrmObjectType::kContact, "Guest3@Customer0.example"},  // an email subject
      {"salesforce", CrmObjectType::kContact, "+1-415-555-0103"},        // a phone subject
      {"hubspot", CrmObjectType::kLead, "crm.only@prospect.example"},    // only ever in CRM
      {"salesforce", CrmObjectType::kContact, "+33.1.42.68.53.00"},
  };
  p.tags = {"renewal", "new-business", "churn-risk", "expansion", "pricing", "Pricing"};
  p.durations = {0, 1000, 29'999, 30'000, 60'000, 600'000, 3'600'000, UINT32_MAX};
  p.subjects = p.emails;
  p.subjects.insert(p.subjects.end(), p.phones.begin(), p.phones.end());
  p.subjects.push_back("crm.only@prospect.example");
  p.subjects.push_back("nobody@nowhere.example");  // never referenced
  return p;
}

}  // namespace

const Pools& P() {
  static const Pools pools = MakePools();
  return pools;
}

std::string NormEmail(std::string e) {
  for (char& c : e) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return e;
}

std::string NormPhone(const std::string& p) {
  std::string out;
  for (char c : p) {
    if (c == ' ' || c == '-' || c == '(' || c == ')' || c == '.') continue;
    out.push_back(c);
  }
  return out;
}

std::optional<std::string> NormSubject(const std::string& s) {
  if (s.find('@') != std::string::npos) {
    std::string e = NormEmail(s);
    size_t at = e.find('@');
    bool ok = at > 0 && at + 1 < e.size() && e.find('@', at + 1) == std::string::npos;
    for (char c : e) ok = ok && static_cast<unsigned char>(c) > 0x20 && c != 0x7f;
    if (!ok) return std::nullopt;
    return e;
  }
  std::string p = NormPhone(s);
  bool ok = p.size() >= 9 && p.size() <= 16 && p[0] == '+' && p[1] >= '1' && p[1] <= '9';
  for (size_t i = 1; ok && i < p.size(); ++i) ok = p[i] >= '0' && p[i] <= '9';
  if (!ok) return std::nullopt;
  return p;
}

Call Normalized(Call c) {
  for (auto& p : c.participants) {
    p.email = NormEmail(p.email);
    p.phone = NormPhone(p.phone);
  }
  return c;
}

std::string RawEmail(Rng& r, const std::string& e) {
  if (!r.Chance(0.4)) return e;
  std::string o = e;
  for (char& c : o) {
    if (c >= 'a' && c <= 'z' && r.Chance(0.3)) c = static_cast<char>(c - 'a' + 'A');
  }
  return o;
}

std::string RawPhone(Rng& r, const std::string& p) {
  if (!r.Chance(0.5)) return p;
  static constexpr char kSeps[] = " -.()";
  std::string o = "+";
  for (size_t i = 1; i < p.size(); ++i) {
    if (r.Chance(0.25)) o.push_back(kSeps[r.Below(5)]);
    o.push_back(p[i]);
  }
  return o;
}

std::string RawSubject(Rng& r, const std::string& s) {
  return s.find('@') != std::string::npos ? RawEmail(r, s) : RawPhone(r, s);
}

std::set<std::string> Subjects(const Call& c) {
  std::set<std::string> out;
  for (const auto& p : c.participants) {
    if (!p.email.empty()) out.insert(p.email);
    if (!p.phone.empty()) out.insert(p.phone);
  }
  for (const auto& l : c.crm_links) {
    if (auto s = NormSubject(l.object_id)) out.insert(*s);
  }
  return out;
}

uint32_t Roles(const Call& c, const std::string& subject) {
  uint32_t roles = 0;
  for (const auto& p : c.participants) {
    if (p.email != subject && p.phone != subject) continue;
    roles |= kRoleParticipant;
    if (!p.user_id.empty() && p.user_id == c.owner_user_id) roles |= kRoleOwner;
  }
  for (const auto& l : c.crm_links) {
    auto s = NormSubject(l.object_id);
    if (s && *s == subject) roles |= kRoleCrmContact;
  }
  return roles;
}

void Redact(Call* c, const std::string& subject) {
  RedactSubject(c, subject, [&](const std::string& object_id) {
    auto s = NormSubject(object_id);
    return s && *s == subject;
  });
}

Call Strip(Call c, uint32_t parts) {
  if (!(parts & kPartParticipants)) c.participants.clear();
  if (!(parts & kPartTranscript)) c.transcript.clear();
  if (!(parts & kPartInsights)) c.insights = Insights{};
  return c;
}

bool Matches(const ListQuery& q, const Call& c) {
  if (c.started_at < q.from || c.started_at >= q.to) return false;
  if (!q.owners.empty() &&
      std::find(q.owners.begin(), q.owners.end(), c.owner_user_id) == q.owners.end()) {
    return false;
  }
  if (!q.participants.empty()) {
    const std::set<std::string> have = Subjects(c);
    bool any = false;
    for (const auto& v : q.participants) {
      auto s = NormSubject(v);
      any = any || (s && have.count(*s));
    }
    if (!any) return false;
  }
  if (q.crm) {
    bool any = false;
    for (const auto& l : c.crm_links) {
      any = any || (l.system == q.crm->system && l.object_type == q.crm->object_type &&
                    l.object_id == q.crm->object_id);
    }
    if (!any) return false;
  }
  if (!q.workspace_id.empty() && c.workspace_id != q.workspace_id) return false;
  if (q.updated_since != 0 && c.updated_at < q.updated_since) return false;
  if (q.direction && c.direction != *q.direction) return false;
  if (q.scope && c.scope != *q.scope) return false;
  if (c.duration_ms < q.min_duration_ms || c.duration_ms > q.max_duration_ms) return false;
  if (!q.tags.empty()) {
    bool any = false;
    for (const auto& t : q.tags) {
      any = any || std::find(c.tags.begin(), c.tags.end(), t) != c.tags.end();
    }
    if (!any) return false;
  }
  return true;
}

Call RandomCall(Rng& r, workload::Generator& gen, const std::string& id) {
  const Pools& p = P();
  const Call base = gen.Next();
  Call c;
  c.call_id = id;
  c.source_system = static_cast<SourceSystem>(r.Below(7));
  c.workspace_id = r.Chance(0.1) ? "" : r.Pick(p.workspaces);
  c.started_at = kT0 + r.Slot(kSlots) * kSec + (r.Chance(0.1) ? 1 : 0);
  c.duration_ms = r.Pick(p.durations);
  if (r.Chance(0.5)) {
    c.scheduled_start = c.started_at - 120 * kSec;
    c.scheduled_end = c.scheduled_start + 1800 * kSec;
  }
  c.created_at = r.Chance(0.7) ? kC0 + r.Slot(1000) * kSec : 0;
  c.updated_at = r.Chance(0.75) ? kU0 + r.Slot(kUSlots) * kSec : 0;
  c.title = base.title;
  c.direction = static_cast<Direction>(r.Below(4));
  c.scope = static_cast<CallScope>(r.Below(3));
  c.media = base.media;
  c.language = base.language;
  c.status = base.status;
  for (size_t n = r.Below(4), i = 0; i < n; ++i) c.tags.push_back(r.Pick(p.tags));
  c.owner_user_id = r.Chance(0.1) ? "" : r.Pick(p.owners);
  c.team_ids = base.team_ids;
  const size_t np = r.Chance(0.05) ? 0 : 1 + r.Below(5);
  for (size_t i = 0; i < np; ++i) {
    Participant q;
    const size_t e = r.Below(p.emails.size());
    q.name = r.Chance(0.9) ? p.names[e] : "";
    const bool email = r.Chance(0.8);
    const bool phone = r.Chance(0.35) || (!email && r.Chance(0.7));
    if (email) q.email = RawEmail(r, p.emails[e]);
    if (phone) q.phone = RawPhone(r, r.Pick(p.phones));
    q.title = r.Chance(0.5) ? "Account Executive" : (r.Chance(0.5) ? "VP Engineering" : "");
    q.company = e < 6 ? "Brightwave" : "Customer";
    q.affiliation = e < 6 ? Affiliation::kInternal
                          : (r.Chance(0.8) ? Affiliation::kExternal : Affiliation::kUnknown);
    q.user_id = (e < 6 && r.Chance(0.8)) ? p.owners[e] : "";
    if (r.Chance(0.1)) {
      q.speaker_id = 0;
    } else if (i > 0 && r.Chance(0.1)) {
      q.speaker_id = c.participants[0].speaker_id;  // two people on one speaker
    } else {
      q.speaker_id = static_cast<uint32_t>(i + 1);
    }
    c.participants.push_back(std::move(q));
  }
  for (size_t n = r.Below(4), i = 0; i < n; ++i) c.crm_links.push_back(r.Pick(p.crm));
  if (!r.Chance(0.1)) {
    for (size_t i = 0; i < base.transcript.size() && i < 12; ++i) {
      TranscriptSegment s = base.transcript[i];
      s.speaker_id = np == 0 ? s.speaker_id : c.participants[s.speaker_id % np].speaker_id;
      c.transcript.push_back(std::move(s));
    }
  }
  if (r.Chance(0.6)) c.insights = base.insights;
  return c;
}

ListQuery RandomQuery(Rng& r) {
  const Pools& p = P();
  ListQuery q;
  q.newest_first = r.Chance(0.5);
  q.limit = r.Chance(0.05) ? 0 : 1 + r.Below(50);
  if (r.Chance(0.3)) {
    int64_t a = r.Slot(kSlots + 4) - 2, b = r.Slot(kSlots + 4) - 2;
    if (a > b) std::swap(a, b);
    q.from = kT0 + a * kSec + (r.Chance(0.2) ? 1 : 0);
    q.to = r.Chance(0.3) ? INT64_MAX : kT0 + b * kSec + (r.Chance(0.2) ? 1 : 0);
    if (q.to < q.from) q.to = q.from;
  }
  if (r.Chance(0.25)) {
    for (size_t n = 1 + r.Below(3), i = 0; i < n; ++i) {
      q.owners.push_back(r.Chance(0.05) ? "u-99" : r.Pick(p.owners));
    }
  }
  if (r.Chance(0.25)) {
    for (size_t n = 1 + r.Below(3), i = 0; i < n; ++i) {
      q.participants.push_back(RawSubject(r, r.Pick(p.subjects)));
    }
  }
  if (r.Chance(0.15)) {
    const CrmLink& l = r.Pick(p.crm);
    q.crm = CrmRef{l.system, l.object_type, l.object_id};
    if (r.Chance(0.15)) q.crm->object_type = r.Pick(p.crm).object_type;  // maybe no call has it
    if (r.Chance(0.05)) q.crm->object_id = "001NONE";
  }
  if (r.Chance(0.2)) q.workspace_id = r.Pick(p.workspaces);
  if (r.Chance(0.2)) {
    q.updated_since =
        r.Chance(0.7) ? kU0 + r.Slot(kUSlots) * kSec : WallMicros() - r.Slot(120) * kSec;
  }
  if (r.Chance(0.15)) q.direction = static_cast<Direction>(r.Below(4));
  if (r.Chance(0.15)) q.scope = static_cast<CallScope>(r.Below(3));
  if (r.Chance(0.15)) q.min_duration_ms = r.Pick(p.durations);
  if (r.Chance(0.15)) q.max_duration_ms = r.Pick(p.durations);
  if (q.min_duration_ms > q.max_duration_ms) std::swap(q.min_duration_ms, q.max_duration_ms);
  if (r.Chance(0.2)) {
    for (size_t n = 1 + r.Below(2), i = 0; i < n; ++i) q.tags.push_back(r.Pick(p.tags));
  }
  return q;
}

namespace {
std::string Join(const std::vector<std::string>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + v[i];
  return s + "]";
}
}  // namespace

std::string QueryString(const ListQuery& q) {
  std::ostringstream o;
  o << "{from=" << q.from << " to=" << q.to << " newest_first=" << q.newest_first
    << " limit=" << q.limit;
  if (!q.owners.empty()) o << " owners=" << Join(q.owners);
  if (!q.participants.empty()) o << " participants=" << Join(q.participants);
  if (q.crm) {
    o << " crm=" << q.crm->system << "/" << static_cast<int>(q.crm->object_type) << "/"
      << q.crm->object_id;
  }
  if (!q.workspace_id.empty()) o << " workspace=" << q.workspace_id;
  if (q.updated_since) o << " updated_since=" << q.updated_since;
  if (q.direction) o << " direction=" << static_cast<int>(*q.direction);
  if (q.scope) o << " scope=" << static_cast<int>(*q.scope);
  if (q.min_duration_ms) o << " min_duration=" << q.min_duration_ms;
  if (q.max_duration_ms != UINT32_MAX) o << " max_duration=" << q.max_duration_ms;
  if (!q.tags.empty()) o << " tags=" << Join(q.tags);
  o << "}";
  return o.str();
}

namespace {

std::string P2S(const Participant& p) {
  std::ostringstream o;
  o << "{" << p.name << "|" << p.email << "|" << p.phone << "|" << p.title << "|" << p.company
    << "|" << static_cast<int>(p.affiliation) << "|spk" << p.speaker_id << "|" << p.user_id << "}";
  return o.str();
}

template <typename T, typename F>
void DiffList(std::ostringstream& o, const char* name, const std::vector<T>& a,
              const std::vector<T>& b, F str) {
  if (a == b) return;
  o << name << ": want " << a.size() << " entries, got " << b.size() << ";";
  for (size_t i = 0; i < std::max(a.size(), b.size()); ++i) {
    if (i < a.size() && i < b.size() && a[i] == b[i]) continue;
    o << " [" << i << "] want " << (i < a.size() ? str(a[i]) : "-") << " got "
      << (i < b.size() ? str(b[i]) : "-") << ";";
  }
  o << "\n";
}

}  // namespace

std::string Diff(const Call& a, const Call& b) {
  std::ostringstream o;
#define CV_DIFF(f) \
  if (!(a.f == b.f)) o << #f << ": want " << a.f << " got " << b.f << "\n";
#define CV_DIFF_ENUM(f)                                                                        \
  if (a.f != b.f) {                                                                            \
    o << #f << ": want " << static_cast<int>(a.f) << " got " << static_cast<int>(b.f) << "\n"; \
  }
  CV_DIFF(call_id);
  CV_DIFF_ENUM(source_system);
  CV_DIFF(source_call_id);
  CV_DIFF(workspace_id);
  CV_DIFF(started_at);
  CV_DIFF(duration_ms);
  CV_DIFF(scheduled_start);
  CV_DIFF(scheduled_end);
  CV_DIFF(created_at);
  CV_DIFF(updated_at);
  CV_DIFF(title);
  CV_DIFF_ENUM(direction);
  CV_DIFF_ENUM(scope);
  CV_DIFF_ENUM(media);
  CV_DIFF(language);
  CV_DIFF(status);
  CV_DIFF(owner_user_id);
#undef CV_DIFF
#undef CV_DIFF_ENUM
  auto id = [](const std::string& s) { return s; };
  DiffList(o, "tags", a.tags, b.tags, id);
  DiffList(o, "team_ids", a.team_ids, b.team_ids, id);
  DiffList(o, "participants", a.participants, b.participants, P2S);
  DiffList(o, "crm_links", a.crm_links, b.crm_links, [](const CrmLink& l) {
    return l.system + "/" + std::to_string(static_cast<int>(l.object_type)) + "/" + l.object_id;
  });
  DiffList(o, "transcript", a.transcript, b.transcript, [](const TranscriptSegment& s) {
    return "spk" + std::to_string(s.speaker_id) + "@" + std::to_string(s.start_ms) + "-" +
           std::to_string(s.end_ms) + "(" + std::to_string(s.text.size()) + "B)";
  });
  if (!(a.insights == b.insights)) o << "insights differ\n";
  return o.str();
}

const Call* TenantModel::Target(const Call& in) const {
  if (!in.source_call_id.empty()) {
    for (const auto& [cid, c] : calls) {
      if (c.source_system == in.source_system && c.source_call_id == in.source_call_id) return &c;
    }
  }
  auto it = calls.find(in.call_id);
  return it == calls.end() ? nullptr : &it->second;
}

std::pair<std::string, bool> TenantModel::ApplyPut(Call in) {
  const Call* t = Target(in);
  const bool created = t == nullptr;
  if (t != nullptr) {
    in.call_id = t->call_id;  // re-ingest keeps the stored id
    if (in.created_at == 0) in.created_at = t->created_at;
  }
  std::string stored = in.call_id;
  calls[stored] = std::move(in);
  gone.erase(stored);
  return {stored, created};
}

}  // namespace callvault::model
