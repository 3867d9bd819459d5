#include "bench/raw_codec.h"

#include "call_generated.h"
#include "format/verify.h"

namespace callvault::bench::rawcodec {

namespace {

using flatbuffers::FlatBufferBuilder;
using flatbuffers::Offset;
using flatbuffers::String;
using flatbuffers::Vector;

std::string Finish(FlatBufferBuilder& b) {
  return std::string(reinterpret_cast<const char*>(b.GetBufferPointer()), b.GetSize());
}
Offset<String> S(FlatBufferBuilder& b, const std::string& s) { return b.CreateString(s); }
std::string Str(const String* s) { return s ? s->str() : std::string(); }
std::vector<std::string> Strs(const Vector<Offset<String>>* v) {
  std::vector<std::string> out;
  if (v) {
    out.reserve(v->size());
    for (const auto* s : *v) out.push_back(Str(s));
  }
  return out;
}
const uint8_t* U(std::string_view s) { return reinterpret_cast<const uint8_t*>(s.data()); }

// The verifier needs 8-byte aligned input; copy when it is not.
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

std::string EncodeMeta(const Call& c) {
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
  for (const auto& l : c.crm_links) {
    crm.push_back(fb::CreateCrmLink(b, S(b, l.system), static_cast<uint8_t>(l.object_type),
                                    S(b, l.object_id)));
  }
  uint32_t parts = 0;
  if (!c.transcript.empty()) parts |= kPartTranscript;
  if (!c.insights.empty()) parts |= kPartInsights;
  auto m = fb::CreateCallMeta(
      b, S(b, c.call_id), static_cast<uint8_t>(c.source_system), S(b, c.source_call_id),
      S(b, c.workspace_id), c.started_at, c.duration_ms, c.scheduled_start, c.scheduled_end,
      c.created_at, c.updated_at, S(b, c.title), static_cast<uint8_t>(c.direction),
      static_cast<uint8_t>(c.scope), static_cast<uint8_t>(c.media), S(b, c.language),
      S(b, c.status), b.CreateVectorOfStrings(c.tags), S(b, c.owner_user_id),
      b.CreateVectorOfStrings(c.team_ids), b.CreateVector(ps), b.CreateVector(crm), parts);
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
  b.Finish(fb::CreateInsights(b, S(b, in.summary), b.CreateVector(items),
                              b.CreateVectorOfStrings(in.topics), b.CreateVector(trackers),
                              S(b, in.model_name), S(b, in.model_version)));
  return Finish(b);
}

bool DecodeMeta(std::string_view bytes, Call* c) {
  Aligned a(bytes);
  if (!format::VerifyCallMeta(U(a.view), a.view.size())) return false;
  const fb::CallMeta* m = flatbuffers::GetRoot<fb::CallMeta>(a.view.data());
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
      c->participants.push_back(Participant{Str(p->name()), Str(p->email()), Str(p->phone()),
                                            Str(p->title()), Str(p->company()),
                                            static_cast<Affiliation>(p->affiliation()),
                                            p->speaker_id(), Str(p->user_id())});
    }
  }
  c->crm_links.clear();
  if (m->crm_links()) {
    for (const auto* l : *m->crm_links()) {
      c->crm_links.push_back(CrmLink{Str(l->system()), static_cast<CrmObjectType>(l->object_type()),
                                     Str(l->object_id())});
    }
  }
  return true;
}

bool DecodeTranscript(std::string_view bytes, Call* c) {
  Aligned a(bytes);
  if (!format::VerifyTranscript(U(a.view), a.view.size())) return false;
  const fb::Transcript* t = flatbuffers::GetRoot<fb::Transcript>(a.view.data());
  c->transcript.clear();
  if (t->segments()) {
    c->transcript.reserve(t->segments()->size());
    for (const auto* s : *t->segments()) {
      c->transcript.push_back(TranscriptSegment{s->speaker_id(), s->start_ms(), s->end_ms(),
                                                Str(s->text()), s->confidence()});
    }
  }
  return true;
}

bool DecodeInsights(std::string_view bytes, Call* c) {
  Aligned a(bytes);
  if (!format::VerifyInsights(U(a.view), a.view.size())) return false;
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
  return true;
}

size_t SerializedBytes(const Call& c) {
  size_t n = EncodeMeta(c).size();
  if (!c.transcript.empty()) n += EncodeTranscript(c).size();
  if (!c.insights.empty()) n += EncodeInsights(c).size();
  return n;
}

}  // namespace callvault::bench::rawcodec
