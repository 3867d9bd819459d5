// Data-subject requests: find every call that references an email or phone,
// and erase them (delete, or redact the subject) with a guard, a dry run, a
// signed receipt, and optional physical removal from live files.
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <functional>

#include "engine/calls_internal.h"
#include "engine/codec.h"
#include "engine/fs_util.h"
#include "engine/indexing.h"
#include "engine/store_impl.h"
#include "engine/validate.h"

namespace callvault {

namespace {

struct Match {
  std::string hash;
  Call meta;
  uint32_t parts = 0;
  uint32_t roles = 0;
};

// The spellings a subject request looks for: the normalised subject, and
// for an email with a non-ASCII letter, its spelling as stores written
// before decision 0013 kept it (ASCII-only lower-casing), so that entries
// written then are still reached by the address as originally written.
struct Spellings {
  std::string subject;  // normalised (folded)
  std::string legacy;   // "" when the same as `subject`
  bool Matches(const std::string& v) const { return v == subject || (!legacy.empty() && v == legacy); }
};

Status Normalize(std::string_view raw, Spellings* out) {
  out->subject = std::string(raw);
  CV_RETURN_IF_ERROR(validate::NormalizeSubject(&out->subject));
  if (raw.find('@') == std::string_view::npos) return Status::OK();
  std::string legacy(raw);
  for (char& c : legacy) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  if (legacy != out->subject) out->legacy = std::move(legacy);
  return Status::OK();
}

uint32_t RolesOf(const Call& c, const Spellings& subject) {
  uint32_t roles = 0;
  for (const auto& p : c.participants) {
    if (subject.Matches(p.email) || subject.Matches(p.phone)) {
      roles |= kRoleParticipant;
      if (!p.user_id.empty() && p.user_id == c.owner_user_id) roles |= kRoleOwner;
    }
  }
  for (const auto& l : c.crm_links) {
    std::string id = l.object_id;
    if (validate::NormalizeSubject(&id).ok() && id == subject.subject) roles |= kRoleCrmContact;
  }
  return roles;
}

// Every call whose participant index names `spelling`, oldest first.
Status FindMatchesOf(const TenantRef& t, const std::string& spelling, const Spellings& subject,
                     std::set<std::string>* seen, std::vector<Match>* out) {
  const std::string prefix = format::AttributeIndexPrefix(
      format::kParticipantIndexPrefix, indexing::ParticipantHash(t->index_key, spelling));
  rocksdb::Slice lo(prefix);
  // The index and the calls from one snapshot: a call deleted meanwhile is
  // not "missing" (FindReferences takes no lock against writers).
  rocksdb::ManagedSnapshot snap(t->shard->db());
  rocksdb::ReadOptions point;
  point.snapshot = snap.snapshot();
  rocksdb::ReadOptions ro = point;
  ro.iterate_lower_bound = &lo;
  std::unique_ptr<rocksdb::Iterator> it(t->shard->db()->NewIterator(ro, t->cf));
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    auto tail = format::ParseIndexTail(it->key().ToStringView());
    if (!tail) return Status::Corruption("participant index holds a malformed key");
    Match m;
    m.hash = std::string(tail->call_hash);
    if (!seen->insert(m.hash).second) continue;  // found under the other spelling
    bool found = false;
    std::string plain;
    CV_RETURN_IF_ERROR(calls::GetSealed(t, point, format::CallKey(m.hash, format::Part::kMeta),
                                        &plain, &found));
    if (!found) return Status::Corruption("participant index names a missing call");
    CV_RETURN_IF_ERROR(codec::DecodeMeta(plain, &m.meta, &m.parts));
    m.roles = RolesOf(m.meta, subject);
    if (m.roles != 0) out->push_back(std::move(m));  // the sealed record decides
  }
  return fsutil::FromRocks(it->status(), "scan participant index");
}

// Every call whose participant index names the subject (in either
// spelling), oldest first per spelling, each call once.
Status FindMatches(const TenantRef& t, const Spellings& subject, std::vector<Match>* out) {
  std::set<std::string> seen;
  for (const std::string* s : {&subject.subject, &subject.legacy}) {
    if (s->empty()) continue;
    CV_RETURN_IF_ERROR(FindMatchesOf(t, *s, subject, &seen, out));
  }
  return Status::OK();
}

// Whether a participant's email or phone, and a CRM object id (normalised),
// name the subject. An erasure knows the subject (Spellings); a restore
// replaying a redaction from the tombstone log knows only its blind hashes.
struct SubjectTest {
  std::function<bool(const std::string&)> ident;  // p.email, p.phone as stored
  std::function<bool(const std::string&)> crm;    // a normalised CRM object id
};

SubjectTest ByName(const Spellings& subject) {
  return {[&subject](const std::string& v) { return subject.Matches(v); },
          [&subject](const std::string& id) { return id == subject.subject; }};
}

// Removes the subject from the call: its participant entries (identity and
// speaker), its CRM links, and the user id of those entries wherever the
// call names it as an owner (the call's owner, which the owner index and the
// summary follow, and action-item owners). PlanWrite then deletes the old
// owner index entry in the same batch.
void Redact(Call* c, const SubjectTest& subject) {
  std::set<uint32_t> speakers;
  std::set<std::string> user_ids;
  for (auto& p : c->participants) {
    if (!subject.ident(p.email) && !subject.ident(p.phone)) continue;
    if (p.speaker_id != 0) speakers.insert(p.speaker_id);
    if (!p.user_id.empty()) user_ids.insert(p.user_id);
    calls::ClearIdentity(&p);
    p.speaker_id = 0;
  }
  if (user_ids.count(c->owner_user_id)) c->owner_user_id.clear();
  for (auto& a : c->insights.action_items) {
    if (user_ids.count(a.owner_user_id)) a.owner_user_id.clear();
  }
  for (auto& s : c->transcript) {
    if (speakers.count(s.speaker_id)) s.speaker_id = 0;
  }
  std::erase_if(c->crm_links, [&](const CrmLink& l) {
    std::string id = l.object_id;
    return validate::NormalizeSubject(&id).ok() && subject.crm(id);
  });
}

}  // namespace

Result<std::vector<Reference>> Store::Impl::FindReferences(std::string_view tenant_id,
                                                           std::string_view subject_in) {
  Spellings subject;
  CV_RETURN_IF_ERROR(Normalize(subject_in, &subject));
  CV_ASSIGN_OR_RETURN(TenantRef t, Acquire(tenant_id));
  std::vector<Match> matches;
  CV_RETURN_IF_ERROR(FindMatches(t, subject, &matches));
  std::vector<Reference> out;
  for (const auto& m : matches) out.push_back(Reference{m.meta.call_id, m.meta.started_at, m.roles});
  return out;
}

Result<EraseResult> Store::Impl::Erase(std::string_view tenant_id, const EraseRequest& req) {
  Spellings subject;
  CV_RETURN_IF_ERROR(Normalize(req.subject, &subject));
  if (req.mode != EraseMode::kDelete && req.mode != EraseMode::kRedact) {
    return Status::InvalidArgument("mode: unknown enum value");
  }
  EraseResult result;
  Receipt r;
  {
    CV_ASSIGN_OR_RETURN(TenantRef t, Acquire(tenant_id, Access::kRemove));
    std::lock_guard<std::mutex> w(t->write_mu);
    std::vector<Match> matches;
    CV_RETURN_IF_ERROR(FindMatches(t, subject, &matches));
    result.matched = matches.size();
    if (matches.size() > req.max_calls) {
      return Status::ResourceExhausted(std::to_string(matches.size()) +
                                       " calls reference the subject, more than max_calls (" +
                                       std::to_string(req.max_calls) + "); nothing was changed");
    }
    if (req.dry_run || matches.empty()) return result;
    for (const auto& m : matches) CV_RETURN_IF_ERROR(CheckNotHeld(t, m.hash, /*any_call=*/false));
    rocksdb::WriteBatch b;
    const int64_t now = NowMicros();
    uint64_t counter = 0;  // a redaction is a new version of the call (decision 0028)
    CV_RETURN_IF_ERROR(calls::ReadVersionCounter(t, &counter));
    uint64_t planned = 0;
    ReportProgress("erase", "calls", 0, matches.size());
    std::vector<ChangeNote> notes;  // the calls changed, never the subject (decision 0030)
    std::vector<uint64_t> versions;  // the tombstone log's, per match (decision 0064)
    for (auto& m : matches) {
      if (planned++ > 0) ReportProgress("erase", "calls", planned - 1, matches.size());
      if (req.mode == EraseMode::kDelete) {
        CV_RETURN_IF_ERROR(calls::PlanDelete(t, m.meta, m.hash, &b));
        notes.push_back(ChangeNote{ChangeKind::kDelete, ChangeCause::kErasure, m.meta.call_id,
                                   m.meta.version});
        versions.push_back(m.meta.version);
        continue;
      }
      Call c = m.meta;
      if (m.parts & kPartTranscript) CV_RETURN_IF_ERROR(calls::ReadPart(t, m.hash, format::Part::kTranscript, &c));
      if (m.parts & kPartInsights) CV_RETURN_IF_ERROR(calls::ReadPart(t, m.hash, format::Part::kInsights, &c));
      Redact(&c, ByName(subject));
      c.updated_at = now;
      c.version = calls::NextVersion(&counter, m.meta.version);
      CV_RETURN_IF_ERROR(calls::PlanWrite(t, &m.meta, m.parts, c, m.hash, &b));
      notes.push_back(ChangeNote{ChangeKind::kUpdate, ChangeCause::kErasure, c.call_id, c.version});
      versions.push_back(c.version);
    }
    if (req.mode == EraseMode::kRedact) CV_RETURN_IF_ERROR(calls::PutVersionCounter(t, &b, counter));
    CV_RETURN_IF_ERROR(AppendChanges(t, notes, &b));
    {
      // Deletions and redactions are logged (outside the store) before they
      // are made: a restore of an older backup deletes these calls again, or
      // redacts them again from the subject's blind hashes (backup.cc).
      std::shared_lock<std::shared_mutex> tl(tombstone_mu_);
      std::vector<std::string> hashes;
      for (const auto& m : matches) hashes.push_back(m.hash);
      std::vector<std::string> redact;
      if (req.mode == EraseMode::kRedact) {
        redact.push_back(indexing::ParticipantHash(t->index_key, subject.subject));
        if (!subject.legacy.empty()) {
          redact.push_back(indexing::ParticipantHash(t->index_key, subject.legacy));
        }
      }
      CV_RETURN_IF_ERROR(LogTombstones(t->rec.internal_id, hashes, versions, redact));
      CV_RETURN_IF_ERROR(WriteChanges(t, WriteOpts(), &b, "erase"));
    }
    result.changed = matches.size();
    if (req.physical) {
      // Old versions live on in memtables, WAL files, SSTs and blob files
      // until flushed and compacted away.
      CV_RETURN_IF_ERROR(t->shard->FlushAll());
      rocksdb::CompactRangeOptions co;
      co.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForce;
      co.blob_garbage_collection_policy = rocksdb::BlobGarbageCollectionPolicy::kForce;
      co.blob_garbage_collection_age_cutoff = 1.0;
      CV_RETURN_IF_ERROR(fsutil::FromRocks(t->shard->db()->CompactRange(co, t->cf, nullptr, nullptr),
                                           "compact after erase"));
    }
    r.kind = req.mode == EraseMode::kDelete ? "erasure_delete" : "erasure_redact";
    r.tenant_id = t->rec.tenant_id;
    r.tenant_internal_id = t->rec.internal_id;
    r.column_family = format::ColumnFamilyName(t->rec.internal_id, t->rec.family);
    r.shard = t->rec.shard;
    r.records = result.changed;
  }
  // The tenant lock is released first: purge takes admin_mu_, then the tenant.
  std::lock_guard<std::mutex> l(admin_mu_);
  if (req.physical && result.changed > 0) {
    // An online key rotation (decision 0038) that ran meanwhile (it held
    // admin_mu_) copied the calls before the erasure into its copy, now the
    // tenant's family, then wrote them again as erased: the erased values
    // are in that family's files too, under the live key. Compacted here,
    // before the receipt (attack14).
    auto now_t = Acquire(tenant_id, Access::kInspect);
    if (!now_t.ok()) {
      // Purged or moved out meanwhile (both take admin_mu_): nothing of it
      // is left here to compact.
      auto gone = FindTenant(tenant_id);
      if (gone.ok() && (*gone)->state.load() == TenantState::kActive) return now_t.status();
    }
    if (now_t.ok() &&
        format::ColumnFamilyName((*now_t)->rec.internal_id, (*now_t)->rec.family) !=
            r.column_family) {
      const TenantRef& t = *now_t;
      CV_RETURN_IF_ERROR(t->shard->FlushAll());
      rocksdb::CompactRangeOptions co;
      co.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForce;
      co.blob_garbage_collection_policy = rocksdb::BlobGarbageCollectionPolicy::kForce;
      co.blob_garbage_collection_age_cutoff = 1.0;
      CV_RETURN_IF_ERROR(fsutil::FromRocks(
          t->shard->db()->CompactRange(co, t->cf, nullptr, nullptr), "compact after erase"));
    }
  }
  r.kek_generation_current = keyring_.kek_generation;
  r.keyring_generation = keyring_.generation;
  CV_ASSIGN_OR_RETURN(Receipt done, AppendReceipt(std::move(r), nullptr));
  Audit("erasure", done.tenant_id, done.kind + ": " + std::to_string(done.records) + " calls, receipt " +
                                        std::to_string(done.sequence));
  result.receipt = std::move(done);
  ReportProgress("erase", "calls", result.changed, result.changed, /*finished=*/true);
  return result;
}

Status Store::Impl::ReplayRedaction(const TenantRef& t, std::string_view call_hash,
                                    const std::vector<std::string>& subject_hashes, int64_t when,
                                    std::optional<uint64_t> version, rocksdb::WriteBatch* b,
                                    bool* changed, bool* held) {
  *changed = false;
  *held = false;
  Call meta;
  uint32_t parts = 0;
  bool found = false;
  CV_RETURN_IF_ERROR(calls::ReadMeta(t, call_hash, &meta, &parts, &found));
  if (!found) return Status::OK();
  // Already at the redaction's version or written after it: the subject in
  // it now was put there after the erasure (decision 0064).
  if (version && meta.version >= *version) return Status::OK();
  auto named = [&](const std::string& v) {
    if (v.empty()) return false;
    const std::string h = indexing::ParticipantHash(t->index_key, v);
    return std::find(subject_hashes.begin(), subject_hashes.end(), h) != subject_hashes.end();
  };
  // Only the normalised spelling (the first hash) names a CRM contact, as
  // in Erase.
  auto crm = [&](const std::string& id) {
    return !subject_hashes.empty() && indexing::ParticipantHash(t->index_key, id) == subject_hashes[0];
  };
  Call c = meta;
  if (parts & kPartTranscript) CV_RETURN_IF_ERROR(calls::ReadPart(t, call_hash, format::Part::kTranscript, &c));
  if (parts & kPartInsights) CV_RETURN_IF_ERROR(calls::ReadPart(t, call_hash, format::Part::kInsights, &c));
  const Call before = c;
  Redact(&c, SubjectTest{named, crm});
  if (c == before) return Status::OK();  // nothing of the subject left in it
  if (!CheckNotHeld(t, call_hash, /*any_call=*/false).ok()) {
    *held = true;
    return Status::OK();
  }
  c.updated_at = when;
  if (version) c.version = *version;  // as the erasure wrote it
  CV_RETURN_IF_ERROR(calls::PlanWrite(t, &meta, parts, c, call_hash, b));
  CV_RETURN_IF_ERROR(AppendChanges(
      t, {ChangeNote{ChangeKind::kUpdate, ChangeCause::kRestore, c.call_id, c.version}}, b));
  *changed = true;
  return Status::OK();
}

}  // namespace callvault
