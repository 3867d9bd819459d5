#include "tools/json/call_json.h"

#include <array>
#include <cmath>
#include <functional>
#include <limits>
#include <span>
#include <utility>

namespace callvault::json {
namespace {

using nlohmann::json;

// ---- enum names -----------------------------------------------------------

template <typename E>
struct EnumName {
  E value;
  std::string_view name;
};

constexpr EnumName<SourceSystem> kSourceSystems[] = {
    {SourceSystem::kZoom, "zoom"},     {SourceSystem::kTeams, "teams"},
    {SourceSystem::kMeet, "meet"},     {SourceSystem::kWebex, "webex"},
    {SourceSystem::kDialer, "dialer"}, {SourceSystem::kUpload, "upload"},
    {SourceSystem::kOther, "other"}};
constexpr EnumName<Direction> kDirections[] = {{Direction::kInbound, "inbound"},
                                               {Direction::kOutbound, "outbound"},
                                               {Direction::kConference, "conference"},
                                               {Direction::kUnknown, "unknown"}};
constexpr EnumName<CallScope> kScopes[] = {{CallScope::kInternal, "internal"},
                                           {CallScope::kExternal, "external"},
                                           {CallScope::kUnknown, "unknown"}};
constexpr EnumName<Media> kMedia[] = {{Media::kAudio, "audio"}, {Media::kVideo, "video"}};
constexpr EnumName<Affiliation> kAffiliations[] = {{Affiliation::kInternal, "internal"},
                                                   {Affiliation::kExternal, "external"},
                                                   {Affiliation::kUnknown, "unknown"}};
constexpr EnumName<CrmObjectType> kCrmObjectTypes[] = {{CrmObjectType::kAccount, "account"},
                                                       {CrmObjectType::kOpportunity, "opportunity"},
                                                       {CrmObjectType::kContact, "contact"},
                                                       {CrmObjectType::kLead, "lead"}};

template <typename E>
std::string_view NameOf(std::span<const EnumName<E>> names, E v) {
  for (const auto& n : names) {
    if (n.value == v) return n.name;
  }
  return "unknown";  // an out-of-range value in memory; never produced by parsing
}

// ---- error messages -------------------------------------------------------

Status Invalid(const std::string& path, std::string_view problem) {
  return Status::InvalidArgument(path + ": " + std::string(problem));
}

// Field names are shown only when they look like identifiers, so that a
// stray key holding personal data is never echoed.
std::string FieldPath(const std::string& path, std::string_view key) {
  const bool plain = !key.empty() && key.size() <= 64 &&
                     key.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                           "0123456789_-") == std::string_view::npos;
  return path + "." + (plain ? std::string(key) : std::string("<unprintable field name>"));
}

std::string IndexPath(const std::string& path, size_t i) {
  return path + "[" + std::to_string(i) + "]";
}

Status Unknown(const std::string& field_path) { return Invalid(field_path, "unknown field"); }

// ---- leaves (a JSON null leaves the default) --------------------------------

Status ReadString(const json& v, const std::string& path, std::string* out) {
  if (v.is_null()) return Status::OK();
  if (!v.is_string()) return Invalid(path, "expected a string");
  *out = v.get_ref<const std::string&>();
  return Status::OK();
}

// Shared by the integer readers: classifies a number that is not a
// non-negative integer up to `max`.
Status ReadUnsigned(const json& v, const std::string& path, uint64_t max, const char* range,
                    const char* expected, uint64_t* out) {
  if (v.is_number_unsigned()) {
    const auto u = v.get<uint64_t>();
    if (u > max) return Invalid(path, std::string("out of range for ") + range);
    *out = u;
    return Status::OK();
  }
  if (v.is_number_integer()) return Invalid(path, "must not be negative");
  if (v.is_number_float()) {
    // Integers beyond the uint64 range arrive as floats.
    const double d = v.get<double>();
    if (d < 0) return Invalid(path, "must not be negative");
    if (std::trunc(d) == d && d > static_cast<double>(max)) {
      return Invalid(path, std::string("out of range for ") + range);
    }
  }
  return Invalid(path, expected);
}

Status ReadU32(const json& v, const std::string& path, uint32_t* out) {
  if (v.is_null()) return Status::OK();
  uint64_t u = 0;
  CV_RETURN_IF_ERROR(ReadUnsigned(v, path, std::numeric_limits<uint32_t>::max(), "uint32",
                                  "expected a non-negative integer", &u));
  *out = static_cast<uint32_t>(u);
  return Status::OK();
}

Status ReadU64(const json& v, const std::string& path, uint64_t* out) {
  if (v.is_null()) return Status::OK();
  return ReadUnsigned(v, path, std::numeric_limits<uint64_t>::max(), "uint64",
                      "expected a non-negative integer", out);
}

// An instant: integer microseconds or an RFC 3339 string; never negative.
Status ReadInstant(const json& v, const std::string& path, int64_t* out) {
  if (v.is_null()) return Status::OK();
  if (v.is_string()) {
    Result<int64_t> t = ParseRfc3339(v.get_ref<const std::string&>());
    if (!t.ok()) return Invalid(path, t.status().message());
    if (*t < 0) return Invalid(path, "must not be before 1970");
    *out = *t;
    return Status::OK();
  }
  uint64_t u = 0;
  CV_RETURN_IF_ERROR(ReadUnsigned(v, path, std::numeric_limits<int64_t>::max(), "int64",
                                  "expected an integer (microseconds) or an RFC 3339 string", &u));
  *out = static_cast<int64_t>(u);
  return Status::OK();
}

Status ReadConfidence(const json& v, const std::string& path, float* out) {
  if (v.is_null()) return Status::OK();
  if (!v.is_number()) return Invalid(path, "expected a number");
  const double d = v.get<double>();
  if (!(d >= 0.0 && d <= 1.0)) return Invalid(path, "must be between 0 and 1");
  *out = static_cast<float>(d);
  return Status::OK();
}

template <typename E>
Status ReadEnum(const json& v, const std::string& path, std::span<const EnumName<E>> names, E* out) {
  if (v.is_null()) return Status::OK();
  if (v.is_string()) {
    const auto& s = v.get_ref<const std::string&>();
    for (const auto& n : names) {
      if (s == n.name) {
        *out = n.value;
        return Status::OK();
      }
    }
  }
  std::string expected = "expected one of";
  for (size_t i = 0; i < names.size(); ++i) {
    expected += (i == 0 ? " \"" : ", \"") + std::string(names[i].name) + "\"";
  }
  return Invalid(path, expected);
}

// ---- containers -------------------------------------------------------------

using FieldFn = std::function<Status(std::string_view key, const json& v, const std::string& path)>;

// Calls `field` for each member of the object `v`. The callback returns
// Unknown() for names it does not know.
Status ForEachField(const json& v, const std::string& path, const FieldFn& field) {
  if (!v.is_object()) return Invalid(path, "expected an object");
  for (const auto& [key, value] : v.items()) {
    CV_RETURN_IF_ERROR(field(key, value, FieldPath(path, key)));
  }
  return Status::OK();
}

template <typename T, typename Fn>
Status ReadArray(const json& v, const std::string& path, std::vector<T>* out, Fn read_element) {
  if (v.is_null()) return Status::OK();
  if (!v.is_array()) return Invalid(path, "expected an array");
  out->clear();
  out->resize(v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    CV_RETURN_IF_ERROR(read_element(v[i], IndexPath(path, i), &(*out)[i]));
  }
  return Status::OK();
}

Status ReadStrings(const json& v, const std::string& path, std::vector<std::string>* out) {
  return ReadArray(v, path, out, ReadString);
}

// ---- objects ---------------------------------------------------------------

Status ReadParticipant(const json& v, const std::string& path, Participant* p) {
  return ForEachField(v, path, [p](std::string_view k, const json& f, const std::string& fp) {
    if (k == "name") return ReadString(f, fp, &p->name);
    if (k == "email") return ReadString(f, fp, &p->email);
    if (k == "phone") return ReadString(f, fp, &p->phone);
    if (k == "title") return ReadString(f, fp, &p->title);
    if (k == "company") return ReadString(f, fp, &p->company);
    if (k == "affiliation") return ReadEnum<Affiliation>(f, fp, kAffiliations, &p->affiliation);
    if (k == "speaker_id") return ReadU32(f, fp, &p->speaker_id);
    if (k == "user_id") return ReadString(f, fp, &p->user_id);
    return Unknown(fp);
  });
}

Status ReadCrmLink(const json& v, const std::string& path, CrmLink* l) {
  return ForEachField(v, path, [l](std::string_view k, const json& f, const std::string& fp) {
    if (k == "system") return ReadString(f, fp, &l->system);
    if (k == "object_type") return ReadEnum<CrmObjectType>(f, fp, kCrmObjectTypes, &l->object_type);
    if (k == "object_id") return ReadString(f, fp, &l->object_id);
    return Unknown(fp);
  });
}

Status ReadSegment(const json& v, const std::string& path, TranscriptSegment* s) {
  CV_RETURN_IF_ERROR(ForEachField(v, path, [s](std::string_view k, const json& f, const std::string& fp) {
    if (k == "speaker_id") return ReadU32(f, fp, &s->speaker_id);
    if (k == "start_ms") return ReadU32(f, fp, &s->start_ms);
    if (k == "end_ms") return ReadU32(f, fp, &s->end_ms);
    if (k == "text") return ReadString(f, fp, &s->text);
    if (k == "confidence") return ReadConfidence(f, fp, &s->confidence);
    return Unknown(fp);
  }));
  if (s->end_ms < s->start_ms) return Invalid(path + ".end_ms", "must not be less than start_ms");
  return Status::OK();
}

Status ReadActionItem(const json& v, const std::string& path, ActionItem* a) {
  return ForEachField(v, path, [a](std::string_view k, const json& f, const std::string& fp) {
    if (k == "text") return ReadString(f, fp, &a->text);
    if (k == "owner_user_id") return ReadString(f, fp, &a->owner_user_id);
    return Unknown(fp);
  });
}

Status ReadTracker(const json& v, const std::string& path, Tracker* t) {
  return ForEachField(v, path, [t](std::string_view k, const json& f, const std::string& fp) {
    if (k == "name") return ReadString(f, fp, &t->name);
    if (k == "count") return ReadU32(f, fp, &t->count);
    return Unknown(fp);
  });
}

Status ReadInsights(const json& v, const std::string& path, Insights* in) {
  if (v.is_null()) return Status::OK();
  return ForEachField(v, path, [in](std::string_view k, const json& f, const std::string& fp) {
    if (k == "summary") return ReadString(f, fp, &in->summary);
    if (k == "action_items") return ReadArray(f, fp, &in->action_items, ReadActionItem);
    if (k == "topics") return ReadStrings(f, fp, &in->topics);
    if (k == "trackers") return ReadArray(f, fp, &in->trackers, ReadTracker);
    if (k == "model_name") return ReadString(f, fp, &in->model_name);
    if (k == "model_version") return ReadString(f, fp, &in->model_version);
    return Unknown(fp);
  });
}

// The fields of a call, except the required-field checks.
Status ReadCallField(std::string_view k, const json& f, const std::string& fp, Call* c) {
  if (k == "call_id") return ReadString(f, fp, &c->call_id);
  if (k == "source_system") return ReadEnum<SourceSystem>(f, fp, kSourceSystems, &c->source_system);
  if (k == "source_call_id") return ReadString(f, fp, &c->source_call_id);
  if (k == "workspace_id") return ReadString(f, fp, &c->workspace_id);
  if (k == "started_at") return ReadInstant(f, fp, &c->started_at);
  if (k == "duration_ms") return ReadU32(f, fp, &c->duration_ms);
  if (k == "scheduled_start") return ReadInstant(f, fp, &c->scheduled_start);
  if (k == "scheduled_end") return ReadInstant(f, fp, &c->scheduled_end);
  if (k == "created_at") return ReadInstant(f, fp, &c->created_at);
  if (k == "updated_at") return ReadInstant(f, fp, &c->updated_at);
  if (k == "title") return ReadString(f, fp, &c->title);
  if (k == "direction") return ReadEnum<Direction>(f, fp, kDirections, &c->direction);
  if (k == "scope") return ReadEnum<CallScope>(f, fp, kScopes, &c->scope);
  if (k == "media") return ReadEnum<Media>(f, fp, kMedia, &c->media);
  if (k == "language") return ReadString(f, fp, &c->language);
  if (k == "status") return ReadString(f, fp, &c->status);
  if (k == "tags") return ReadStrings(f, fp, &c->tags);
  if (k == "owner_user_id") return ReadString(f, fp, &c->owner_user_id);
  if (k == "team_ids") return ReadStrings(f, fp, &c->team_ids);
  if (k == "participants") return ReadArray(f, fp, &c->participants, ReadParticipant);
  if (k == "crm_links") return ReadArray(f, fp, &c->crm_links, ReadCrmLink);
  if (k == "transcript") return ReadArray(f, fp, &c->transcript, ReadSegment);
  if (k == "insights") return ReadInsights(f, fp, &c->insights);
  // Read back, e.g. from `call get`; PutCall and UpdateCall ignore it.
  if (k == "version") return ReadU64(f, fp, &c->version);
  return Unknown(fp);
}

bool Present(const json& object, const char* key) {
  const auto it = object.find(key);
  return it != object.end() && !it->is_null();
}

// ---- output ----------------------------------------------------------------

std::string RedactShort(const std::string& s, bool reveal) {
  return reveal || s.empty() ? s : std::string("[redacted]");
}

std::string RedactText(const std::string& s, bool reveal) {
  return reveal || s.empty() ? s : "[redacted " + std::to_string(s.size()) + " bytes]";
}

json ParticipantsToJson(const std::vector<Participant>& participants, bool reveal) {
  json out = json::array();
  for (const auto& p : participants) {
    out.push_back({{"name", RedactShort(p.name, reveal)},
                   {"email", RedactShort(p.email, reveal)},
                   {"phone", RedactShort(p.phone, reveal)},
                   {"title", RedactShort(p.title, reveal)},
                   {"company", p.company},
                   {"affiliation", AffiliationName(p.affiliation)},
                   {"speaker_id", p.speaker_id},
                   {"user_id", p.user_id}});
  }
  return out;
}

json TranscriptToJson(const std::vector<TranscriptSegment>& transcript, bool reveal) {
  json out = json::array();
  for (const auto& s : transcript) {
    out.push_back({{"speaker_id", s.speaker_id},
                   {"start_ms", s.start_ms},
                   {"end_ms", s.end_ms},
                   {"text", RedactText(s.text, reveal)},
                   {"confidence", static_cast<double>(s.confidence)}});
  }
  return out;
}

json InsightsToJson(const Insights& in, bool reveal) {
  json items = json::array();
  for (const auto& a : in.action_items) {
    items.push_back({{"text", RedactText(a.text, reveal)}, {"owner_user_id", a.owner_user_id}});
  }
  json trackers = json::array();
  for (const auto& t : in.trackers) trackers.push_back({{"name", t.name}, {"count", t.count}});
  return {{"summary", RedactText(in.summary, reveal)},
          {"action_items", std::move(items)},
          {"topics", in.topics},
          {"trackers", std::move(trackers)},
          {"model_name", in.model_name},
          {"model_version", in.model_version}};
}

json CrmLinksToJson(const std::vector<CrmLink>& links) {
  json out = json::array();
  for (const auto& l : links) {
    out.push_back({{"system", l.system},
                   {"object_type", CrmObjectTypeName(l.object_type)},
                   {"object_id", l.object_id}});
  }
  return out;
}

}  // namespace

std::string_view SourceSystemName(SourceSystem v) { return NameOf<SourceSystem>(kSourceSystems, v); }
std::string_view DirectionName(Direction v) { return NameOf<Direction>(kDirections, v); }
std::string_view ScopeName(CallScope v) { return NameOf<CallScope>(kScopes, v); }
std::string_view MediaName(Media v) { return NameOf<Media>(kMedia, v); }
std::string_view AffiliationName(Affiliation v) { return NameOf<Affiliation>(kAffiliations, v); }
std::string_view CrmObjectTypeName(CrmObjectType v) {
  return NameOf<CrmObjectType>(kCrmObjectTypes, v);
}

Result<Call> CallFromJson(const json& object, const std::string& path) {
  Call call;
  CV_RETURN_IF_ERROR(ForEachField(object, path, [&call](std::string_view k, const json& f,
                                                        const std::string& fp) {
    return ReadCallField(k, f, fp, &call);
  }));
  if (!Present(object, "call_id")) return Invalid(path + ".call_id", "required");
  if (call.call_id.empty()) return Invalid(path + ".call_id", "must not be empty");
  if (!Present(object, "started_at")) return Invalid(path + ".started_at", "required");
  if (call.started_at <= 0) return Invalid(path + ".started_at", "must be after 1970-01-01T00:00:00Z");
  return call;
}

Result<std::vector<Call>> ParseCalls(std::string_view text) {
  if (text.size() > kMaxInputBytes) {
    return Status::InvalidArgument("input is larger than 256 MiB");
  }
  try {
    const json doc = json::parse(text.begin(), text.end());
    if (!doc.is_object() && !doc.is_array()) {
      return Status::InvalidArgument("expected a JSON object or an array of objects");
    }
    std::vector<Call> calls;
    if (doc.is_object()) {
      CV_ASSIGN_OR_RETURN(Call call, CallFromJson(doc, "calls[0]"));
      calls.push_back(std::move(call));
      return calls;
    }
    calls.reserve(doc.size());
    for (size_t i = 0; i < doc.size(); ++i) {
      CV_ASSIGN_OR_RETURN(Call call, CallFromJson(doc[i], IndexPath("calls", i)));
      calls.push_back(std::move(call));
    }
    return calls;
  } catch (const json::parse_error& e) {
    return Status::InvalidArgument("malformed JSON at byte " + std::to_string(e.byte));
  } catch (const std::bad_alloc&) {
    return Status::ResourceExhausted("out of memory parsing JSON");
  } catch (const std::exception&) {
    return Status::InvalidArgument("malformed JSON");  // the message might echo input
  }
}

json CallToJson(const Call& c, const JsonOptions& options) {
  const bool reveal = options.reveal;
  json out = {{"call_id", c.call_id},
              {"source_system", SourceSystemName(c.source_system)},
              {"source_call_id", c.source_call_id},
              {"workspace_id", c.workspace_id},
              {"started_at", c.started_at},
              {"duration_ms", c.duration_ms},
              {"scheduled_start", c.scheduled_start},
              {"scheduled_end", c.scheduled_end},
              {"created_at", c.created_at},
              {"updated_at", c.updated_at},
              {"title", RedactShort(c.title, reveal)},
              {"direction", DirectionName(c.direction)},
              {"scope", ScopeName(c.scope)},
              {"media", MediaName(c.media)},
              {"language", c.language},
              {"status", c.status},
              {"tags", c.tags},
              {"owner_user_id", c.owner_user_id},
              {"team_ids", c.team_ids},
              {"crm_links", CrmLinksToJson(c.crm_links)},
              {"version", c.version}};
  if (options.parts & kPartParticipants) out["participants"] = ParticipantsToJson(c.participants, reveal);
  if (options.parts & kPartTranscript) out["transcript"] = TranscriptToJson(c.transcript, reveal);
  if (options.parts & kPartInsights) out["insights"] = InsightsToJson(c.insights, reveal);
  return out;
}

}  // namespace callvault::json
