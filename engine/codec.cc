#include "engine/codec.h"

#include "call_generated.h"
#include "format/verify.h"

namespace callvault::codec {

namespace {

using flatbuffers::FlatBufferBuilder;
using flatbuffers::Offset;
using flatbuffers::String;
using flatbuffers::Vector;

std::string Finish(FlatBufferBuilder& b) {
  return std::string(reinterpret_cast<const char*>(b.GetBufferPointer()), b.GetSize());
}

Offset<String> S(FlatBufferBuilder& b, const std::string& s) { return b.CreateString(s); }

Offset<Vector<Offset<String>>> Strings(FlatBufferBuilder& b, const std::vector<std::string>& v) {
  return b.CreateVectorOfStrings(v);
}

std::string Str(const String* s) { return s ? s->str() : std::string(); }

std::vector<std::string> Strs(const Vector<Offset<String>>* v) {
  std::vector<std::string> out;
  if (v) {
    out.reserve(v->size());
    for (const auto* s : *v) out.push_back(Str(s));
  }
  return out;
}

// FlatBuffers 2.0.8 checks nothing about enum ranges.
template <typename E>
bool EnumIn(uint8_t v, E max) {
  return v <= static_cast<uint8_t>(max);
}

const uint8_t* U(std::string_view s) { return reinterpret_cast<const uint8_t*>(s.data()); }

// FlatBuffers needs its input aligned; std::string data may not be after a
// substr, so verify and read from an aligned copy when needed.
struct Aligned {
  explicit Aligned(std::string_view in) {
    if (reinterpret_cast<uintptr_t>(in.data()) % 8 == 0) {
      view = in;
    } else {
      copy.assign(in.data(), in.size());
      view = copy;
    }
  }
  std::string copy;
  std::string_view view;
};

}  // namespace

std::string EncodeMeta(const Call& c, uint32_t parts_present) {
  FlatBufferBuilder b(1024);
  std::vector<Offset<fb::Participant>> ps;
  ps.reserve(c.participants.size());
  for (const auto& p : c.participants) {
    ps.push_back(fb::CreateParticipant(b, S(b, p.name), S(b, p.email), S(b, p.phone),
                                       S(b, p.title), S(b, p.company),
                                       static_cast<uint8_t>(p.affiliation), p.speaker_id,
                                       S(b, p.user_id)));
  }
  std::vector<Offset<fb::CrmLink>> crm;
  crm.reserve(c.crm_links.size());
  for (const auto& l : c.crm_links) {
    crm.push_back(fb::CreateCrmLink(b, S(b, l.system), static_cast<uint8_t>(l.object_type),
                                    S(b, l.object_id)));
  }
  auto m = fb::CreateCallMeta(
      b, S(b, c.call_id), static_cast<uint8_t>(c.source_system), S(b, c.source_call_id),
      S(b, c.workspace_id), c.started_at, c.duration_ms, c.scheduled_start, c.scheduled_end,
      c.created_at, c.updated_at, S(b, c.title), static_cast<uint8_t>(c.direction),
      static_cast<uint8_t>(c.scope), static_cast<uint8_t>(c.media), S(b, c.language),
      S(b, c.status), Strings(b, c.tags), S(b, c.owner_user_id), Strings(b, c.team_ids),
      b.CreateVector(ps), b.CreateVector(crm), parts_present, c.version);
  b.Finish(m);
  return Finish(b);
}

std::string EncodeTranscript(const Call& c) {
  FlatBufferBuilder b(1024 + c.transcript.size() * 64);
  std::vector<Offset<fb::Segment>> segs;
  segs.reserve(c.transcript.size());
  for (const auto& s : c.transcript) {
    segs.push_back(fb::CreateSegment(b, s.speaker_id, s.start_ms, s.end_ms, S(b, s.text),
                                     s.confidence));
  }
  b.Finish(fb::CreateTranscript(b, b.CreateVector(segs)));
  return Finish(b);
}

std::string EncodeInsights(const Call& c) {
  FlatBufferBuilder b(1024);
  const Insights& in = c.insights;
  std::vector<Offset<fb::ActionItem>> items;
  for (const auto& a : in.action_items) {
    items.push_back(fb::CreateActionItem(b, S(b, a.text), S(b, a.owner_user_id)));
  }
  std::vector<Offset<fb::Tracker>> trackers;
  for (const auto& t : in.trackers) trackers.push_back(fb::CreateTracker(b, S(b, t.name), t.count));
  b.Finish(fb::CreateInsights(b, S(b, in.summary), b.CreateVector(items), Strings(b, in.topics),
                              b.CreateVector(trackers), S(b, in.model_name),
                              S(b, in.model_version)));
  return Finish(b);
}

Status DecodeMeta(std::string_view bytes, Call* c, uint32_t* parts_present) {
  Aligned a(bytes);
  if (!format::VerifyCallMeta(U(a.view), a.view.size())) {
    return Status::Corruption("call metadata record fails FlatBuffers verification");
  }
  const fb::CallMeta* m = flatbuffers::GetRoot<fb::CallMeta>(a.view.data());
  if (!EnumIn(m->source_system(), SourceSystem::kUpload) ||
      !EnumIn(m->direction(), Direction::kConference) || !EnumIn(m->scope(), CallScope::kExternal) ||
      !EnumIn(m->media(), Media::kVideo)) {
    return Status::Corruption("call metadata record holds an out-of-range enum");
  }
  c->call_id = Str(m->call_id());
  c->source_system = static_cast<SourceSystem>(m->source_system());
  c->source_call_id = Str(m->source_call_id());
  c->workspace_id = Str(m->workspace_id());
  c->started_at = m->started_at();
  c->duration_ms = m->duration_ms();
  c->scheduled_start = m->scheduled_start();
  c->scheduled_end = m->scheduled_end();
  c->created_at = m->created_at();
  c->updated_at = m->updated_at();
  // Format 1 wrote no version: every such call is version 1 (docs/format.md).
  c->version = m->version() == 0 ? 1 : m->version();
  c->title = Str(m->title());
  c->direction = static_cast<Direction>(m->direction());
  c->scope = static_cast<CallScope>(m->scope());
  c->media = static_cast<Media>(m->media());
  c->language = Str(m->language());
  c->status = Str(m->status());
  c->tags = Strs(m->tags());
  c->owner_user_id = Str(m->owner_user_id());
  c->team_ids = Strs(m->team_ids());
  c->participants.clear();
  if (m->participants()) {
    for (const auto* p : *m->participants()) {
      if (!EnumIn(p->affiliation(), Affiliation::kExternal)) {
        return Status::Corruption("participant holds an out-of-range affiliation");
      }
      c->participants.push_back(Participant{Str(p->name()), Str(p->email()), Str(p->phone()),
                                            Str(p->title()), Str(p->company()),
                                            static_cast<Affiliation>(p->affiliation()),
                                            p->speaker_id(), Str(p->user_id())});
    }
  }
  c->crm_links.clear();
  if (m->crm_links()) {
    for (const auto* l : *m->crm_links()) {
      if (!EnumIn(l->object_type(), CrmObjectType::kLead)) {
        return Status::Corruption("CRM link holds an out-of-range object type");
      }
      c->crm_links.push_back(CrmLink{Str(l->system()),
                                     static_cast<CrmObjectType>(l->object_type()),
                                     Str(l->object_id())});
    }
  }
  *parts_present = m->parts();
  return Status::OK();
}

Status DecodeTranscript(std::string_view bytes, Call* c) {
  Aligned a(bytes);
  if (!format::VerifyTranscript(U(a.view), a.view.size())) {
    return Status::Corruption("transcript record fails FlatBuffers verification");
  }
  const fb::Transcript* t = flatbuffers::GetRoot<fb::Transcript>(a.view.data());
  c->transcript.clear();
  if (t->segments()) {
    c->transcript.reserve(t->segments()->size());
    for (const auto* s : *t->segments()) {
      c->transcript.push_back(TranscriptSegment{s->speaker_id(), s->start_ms(), s->end_ms(),
                                                Str(s->text()), s->confidence()});
    }
  }
  return Status::OK();
}

Status DecodeInsights(std::string_view bytes, Call* c) {
  Aligned a(bytes);
  if (!format::VerifyInsights(U(a.view), a.view.size())) {
    return Status::Corruption("insights record fails FlatBuffers verification");
  }
  const fb::Insights* in = flatbuffers::GetRoot<fb::Insights>(a.view.data());
  Insights& out = c->insights;
  out = Insights{};
  out.summary = Str(in->summary());
  if (in->action_items()) {
    for (const auto* x : *in->action_items()) {
      out.action_items.push_back(ActionItem{Str(x->text()), Str(x->owner_user_id())});
    }
  }
  out.topics = Strs(in->topics());
  if (in->trackers()) {
    for (const auto* x : *in->trackers()) out.trackers.push_back(Tracker{Str(x->name()), x->count()});
  }
  out.model_name = Str(in->model_name());
  out.model_version = Str(in->model_version());
  return Status::OK();
}

namespace {
Offset<fb::Hold> HoldOffset(FlatBufferBuilder& b, const Hold& h) {
  return fb::CreateHold(b, S(b, h.hold_id), S(b, h.reason), S(b, h.call_id), h.created_at);
}
Hold HoldFrom(const fb::Hold* h) {
  return Hold{Str(h->hold_id()), Str(h->reason()), Str(h->call_id()), h->created_at()};
}
}  // namespace

std::string EncodeTenant(const TenantRecord& t) {
  FlatBufferBuilder b(256);
  std::vector<Offset<fb::Hold>> holds;
  for (const auto& h : t.holds) holds.push_back(HoldOffset(b, h));
  std::vector<Offset<fb::WorkspaceRetention>> ws;
  for (const auto& [id, days] : t.workspace_retention) {
    ws.push_back(fb::CreateWorkspaceRetention(b, S(b, id), days));
  }
  b.Finish(fb::CreateTenantRecord(b, S(b, t.tenant_id), static_cast<uint8_t>(t.state),
                                  S(b, t.region), t.retention_days, t.created_at, t.purged_at,
                                  t.internal_id, t.shard, t.cf_generation, t.key_version,
                                  t.receipt_sequence, t.purge_at, t.churned_at,
                                  b.CreateVector(holds), b.CreateVector(ws),
                                  t.purge_kek_generation, t.ad_internal_id, t.move_state,
                                  t.move_id.empty() ? Offset<String>() : S(b, t.move_id),
                                  t.move_peer.empty() ? Offset<String>() : S(b, t.move_peer),
                                  t.family, t.rotation_state, t.rotation_family,
                                  t.rotation_cf_generation, t.rotation_key_version,
                                  t.rotation_shard));
  return Finish(b);
}

std::string EncodeHold(const Hold& h) {
  FlatBufferBuilder b(128);
  b.Finish(HoldOffset(b, h));
  return Finish(b);
}

Status DecodeHold(std::string_view bytes, Hold* h) {
  Aligned a(bytes);
  if (!format::VerifyHold(U(a.view), a.view.size())) {
    return Status::Corruption("hold record fails FlatBuffers verification");
  }
  *h = HoldFrom(flatbuffers::GetRoot<fb::Hold>(a.view.data()));
  return Status::OK();
}

std::string EncodeAudit(const AuditEvent& e) {
  FlatBufferBuilder b(256);
  b.Finish(fb::CreateAuditRecord(b, e.sequence, e.time, S(b, e.kind), S(b, e.tenant_id),
                                 S(b, e.detail), S(b, e.prev_hash)));
  return Finish(b);
}

Status DecodeAudit(std::string_view bytes, AuditEvent* e) {
  Aligned a(bytes);
  if (!format::VerifyAuditRecord(U(a.view), a.view.size())) {
    return Status::Corruption("audit record fails FlatBuffers verification");
  }
  const auto* r = flatbuffers::GetRoot<fb::AuditRecord>(a.view.data());
  *e = AuditEvent{r->sequence(), r->time(), Str(r->kind()), Str(r->tenant_id()), Str(r->detail()),
                  Str(r->prev_hash())};
  return Status::OK();
}

Status DecodeTenant(std::string_view bytes, TenantRecord* t) {
  Aligned a(bytes);
  if (!format::VerifyTenantRecord(U(a.view), a.view.size())) {
    return Status::Corruption("tenant registry record fails FlatBuffers verification");
  }
  const fb::TenantRecord* r = flatbuffers::GetRoot<fb::TenantRecord>(a.view.data());
  if (!EnumIn(r->state(), TenantState::kPurged)) {
    return Status::Corruption("tenant registry record holds an out-of-range state");
  }
  t->tenant_id = Str(r->tenant_id());
  t->state = static_cast<TenantState>(r->state());
  t->region = Str(r->region());
  t->retention_days = r->retention_days();
  t->created_at = r->created_at();
  t->purged_at = r->purged_at();
  t->internal_id = r->internal_id();
  t->shard = r->shard();
  t->cf_generation = r->cf_generation();
  t->key_version = r->key_version();
  t->receipt_sequence = r->receipt_sequence();
  t->purge_at = r->purge_at();
  t->purge_kek_generation = r->purge_kek_generation();
  t->churned_at = r->churned_at();
  t->ad_internal_id = r->ad_internal_id();
  if (r->move_state() > kMoveIn) {
    return Status::Corruption("tenant registry record holds an out-of-range move state");
  }
  t->move_state = r->move_state();
  t->move_id = Str(r->move_id());
  t->move_peer = Str(r->move_peer());
  if (r->rotation_state() > kRotationShredding) {
    return Status::Corruption("tenant registry record holds an out-of-range rotation state");
  }
  t->family = r->family();
  t->rotation_state = r->rotation_state();
  t->rotation_family = r->rotation_family();
  t->rotation_cf_generation = r->rotation_cf_generation();
  t->rotation_key_version = r->rotation_key_version();
  t->rotation_shard = r->rotation_shard();
  t->holds.clear();
  if (r->holds()) {
    for (const auto* h : *r->holds()) t->holds.push_back(HoldFrom(h));
  }
  t->workspace_retention.clear();
  if (r->workspace_retention()) {
    for (const auto* w : *r->workspace_retention()) {
      t->workspace_retention.emplace_back(Str(w->workspace_id()), w->days());
    }
  }
  return Status::OK();
}

std::string EncodeReceipt(const Receipt& r) {
  FlatBufferBuilder b(512);
  auto versions = b.CreateVector(r.key_versions_destroyed);
  b.Finish(fb::CreateReceiptRecord(b, r.sequence, S(b, r.kind), S(b, r.store_id), S(b, r.region),
                                   r.time, S(b, r.tenant_id), r.tenant_internal_id,
                                   S(b, r.column_family), r.shard, versions,
                                   r.kek_generation_retired, r.kek_generation_current,
                                   r.keyring_generation, r.records, r.bytes, S(b, r.prev_hash),
                                   S(b, r.signature),
                                   r.destination.empty() ? Offset<String>() : S(b, r.destination),
                                   r.irrecoverable_after, r.counts_unknown));
  return Finish(b);
}

Status DecodeReceipt(std::string_view bytes, Receipt* r) {
  Aligned a(bytes);
  if (!format::VerifyReceiptRecord(U(a.view), a.view.size())) {
    return Status::Corruption("receipt record fails FlatBuffers verification");
  }
  const fb::ReceiptRecord* x = flatbuffers::GetRoot<fb::ReceiptRecord>(a.view.data());
  r->sequence = x->sequence();
  r->kind = Str(x->kind());
  r->store_id = Str(x->store_id());
  r->region = Str(x->region());
  r->time = x->time();
  r->tenant_id = Str(x->tenant_id());
  r->tenant_internal_id = x->tenant_internal_id();
  r->column_family = Str(x->column_family());
  r->shard = x->shard();
  r->key_versions_destroyed.clear();
  if (x->key_versions_destroyed()) {
    for (uint32_t v : *x->key_versions_destroyed()) r->key_versions_destroyed.push_back(v);
  }
  r->destination = Str(x->destination());
  r->irrecoverable_after = x->irrecoverable_after();
  r->counts_unknown = x->counts_unknown();
  r->kek_generation_retired = x->kek_generation_retired();
  r->kek_generation_current = x->kek_generation_current();
  r->keyring_generation = x->keyring_generation();
  r->records = x->records();
  r->bytes = x->bytes();
  r->prev_hash = Str(x->prev_hash());
  r->signature = Str(x->signature());
  return Status::OK();
}

}  // namespace callvault::codec
