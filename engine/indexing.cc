#include "engine/indexing.h"

#include "engine/crypto.h"
#include "engine/validate.h"
#include "format/rowkey.h"
#include "format/summary.h"

namespace callvault::indexing {

namespace {
std::string Short(std::string h) {
  h.resize(format::kShortHashBytes);
  return h;
}
}  // namespace

std::string CallHash(const SecretBytes& k, std::string_view call_id) {
  return crypto::BlindHash(k, kCallDomain, call_id);
}

std::string SourceHash(const SecretBytes& k, const Call& c) {
  if (c.source_call_id.empty()) return "";
  std::string v(1, static_cast<char>(c.source_system));
  v += c.source_call_id;
  return crypto::BlindHash(k, kSourceDomain, v);
}

std::string OwnerHash(const SecretBytes& k, std::string_view v) {
  return crypto::BlindHash(k, kOwnerDomain, v);
}
std::string WorkspaceHash(const SecretBytes& k, std::string_view v) {
  return crypto::BlindHash(k, kWorkspaceDomain, v);
}
std::string ParticipantHash(const SecretBytes& k, std::string_view v) {
  return crypto::BlindHash(k, kParticipantDomain, v);
}
std::string CrmHash(const SecretBytes& k, std::string_view system, CrmObjectType type,
                    std::string_view object_id) {
  std::string v(system);
  v.push_back('\0');
  v.push_back(static_cast<char>(type));
  v.append(object_id);
  return crypto::BlindHash(k, kCrmDomain, v);
}
std::string TagHash(const SecretBytes& k, std::string_view v) {
  return crypto::BlindHash(k, kTagDomain, v);
}

std::set<std::string> Subjects(const Call& c) {
  std::set<std::string> out;
  for (const auto& p : c.participants) {
    if (!p.email.empty()) out.insert(p.email);
    if (!p.phone.empty()) out.insert(p.phone);
  }
  for (const auto& l : c.crm_links) {
    std::string s = l.object_id;
    if (validate::NormalizeSubject(&s).ok()) out.insert(s);
  }
  return out;
}

AttributeHashes HashAttributes(const SecretBytes& k, const Call& c) {
  AttributeHashes h;
  if (!c.owner_user_id.empty()) h.owner = OwnerHash(k, c.owner_user_id);
  if (!c.workspace_id.empty()) h.workspace = WorkspaceHash(k, c.workspace_id);
  for (const auto& s : Subjects(c)) h.subjects.push_back(ParticipantHash(k, s));
  for (const auto& l : c.crm_links) {
    h.crm.push_back(CrmHash(k, l.system, l.object_type, l.object_id));
  }
  return h;
}

std::set<std::string> IndexKeys(const AttributeHashes& a, const Call& c, std::string_view h) {
  std::set<std::string> keys;
  keys.insert(format::TimeIndexKey(c.started_at, h));
  keys.insert(format::UpdatedIndexKey(c.updated_at, h));
  if (!a.owner.empty()) {
    keys.insert(format::AttributeIndexKey(format::kOwnerIndexPrefix, a.owner, c.started_at, h));
  }
  if (!a.workspace.empty()) {
    keys.insert(
        format::AttributeIndexKey(format::kWorkspaceIndexPrefix, a.workspace, c.started_at, h));
  }
  for (const auto& s : a.subjects) {
    keys.insert(format::AttributeIndexKey(format::kParticipantIndexPrefix, s, c.started_at, h));
  }
  for (const auto& l : a.crm) {
    keys.insert(format::AttributeIndexKey(format::kCrmIndexPrefix, l, c.started_at, h));
  }
  return keys;
}

std::set<std::string> IndexKeys(const SecretBytes& k, const Call& c, std::string_view h) {
  return IndexKeys(HashAttributes(k, c), c, h);
}

std::string SummaryBytes(const SecretBytes& k, const AttributeHashes& a, const Call& c) {
  format::Summary s;
  s.started_at = c.started_at;
  s.updated_at = c.updated_at;
  s.duration_ms = c.duration_ms;
  s.direction = static_cast<uint8_t>(c.direction);
  s.scope = static_cast<uint8_t>(c.scope);
  if (!a.owner.empty()) s.owner = Short(a.owner);
  if (!a.workspace.empty()) s.workspace = Short(a.workspace);
  for (const auto& t : c.tags) s.tags.push_back(Short(TagHash(k, t)));
  for (const auto& p : a.subjects) s.participants.push_back(Short(p));
  for (const auto& l : a.crm) s.crm.push_back(Short(l));
  return format::EncodeSummary(s);
}

}  // namespace callvault::indexing
