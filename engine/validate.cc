#include "engine/validate.h"

#include <cmath>
#include <string>

#include "callvault/limits.h"

namespace callvault::validate {

namespace {

using namespace callvault::limits;

std::string Path(std::string_view base, size_t i, std::string_view field = "") {
  std::string p(base);
  p += "[" + std::to_string(i) + "]";
  if (!field.empty()) {
    p += ".";
    p += field;
  }
  return p;
}

Status Text(std::string_view field, std::string_view s, size_t max) {
  if (s.size() > max) {
    return Status::InvalidArgument(std::string(field) + ": longer than " + std::to_string(max) +
                                   " bytes");
  }
  if (!IsUtf8(s)) return Status::InvalidArgument(std::string(field) + ": not valid UTF-8");
  return Status::OK();
}

Status OptionalId(std::string_view field, std::string_view id) {
  return id.empty() ? Status::OK() : Id(field, id);
}

Status Email(const std::string& field, std::string* email) {
  if (email->empty()) return Status::OK();
  for (char& c : *email) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  CV_RETURN_IF_ERROR(Text(field, *email, kMaxShortTextBytes));
  size_t at = email->find('@');
  bool ok = at != std::string::npos && at > 0 && at + 1 < email->size() &&
            email->find('@', at + 1) == std::string::npos;
  for (char c : *email) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) ok = false;
  }
  if (!ok) return Status::InvalidArgument(field + ": not a valid email address");
  return Status::OK();
}

Status Phone(const std::string& field, std::string* phone) {
  if (phone->empty()) return Status::OK();
  if (phone->size() > kMaxShortTextBytes) {
    return Status::InvalidArgument(field + ": longer than " + std::to_string(kMaxShortTextBytes) +
                                   " bytes");
  }
  std::string out;
  for (char c : *phone) {
    if (c == ' ' || c == '-' || c == '(' || c == ')' || c == '.') continue;
    out.push_back(c);
  }
  bool ok = out.size() >= 9 && out.size() <= 16 && out[0] == '+' && out[1] >= '1' && out[1] <= '9';
  for (size_t i = 1; ok && i < out.size(); ++i) ok = out[i] >= '0' && out[i] <= '9';
  if (!ok) return Status::InvalidArgument(field + ": not an E.164 phone number (+ and 8-15 digits)");
  *phone = std::move(out);
  return Status::OK();
}

Status StringList(std::string_view field, const std::vector<std::string>& v, size_t max_items,
                  size_t max_bytes, bool ids) {
  if (v.size() > max_items) {
    return Status::InvalidArgument(std::string(field) + ": more than " + std::to_string(max_items) +
                                   " entries");
  }
  for (size_t i = 0; i < v.size(); ++i) {
    CV_RETURN_IF_ERROR(ids ? Id(Path(field, i), v[i]) : Text(Path(field, i), v[i], max_bytes));
  }
  return Status::OK();
}

template <typename E>
Status Enum(std::string_view field, E v, E max) {
  if (static_cast<uint8_t>(v) > static_cast<uint8_t>(max)) {
    return Status::InvalidArgument(std::string(field) + ": unknown enum value");
  }
  return Status::OK();
}

Status Language(std::string_view s) {
  if (s.empty()) return Status::OK();
  bool ok = s.size() <= 35;
  for (char c : s) {
    ok = ok && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                c == '-');
  }
  if (!ok) return Status::InvalidArgument("language: not a BCP-47 tag");
  return Status::OK();
}

Status Participants(Call* c) {
  if (c->participants.size() > kMaxParticipants) {
    return Status::InvalidArgument("participants: more than " + std::to_string(kMaxParticipants) +
                                   " entries");
  }
  for (size_t i = 0; i < c->participants.size(); ++i) {
    Participant& p = c->participants[i];
    CV_RETURN_IF_ERROR(Text(Path("participants", i, "name"), p.name, kMaxShortTextBytes));
    CV_RETURN_IF_ERROR(Email(Path("participants", i, "email"), &p.email));
    CV_RETURN_IF_ERROR(Phone(Path("participants", i, "phone"), &p.phone));
    CV_RETURN_IF_ERROR(Text(Path("participants", i, "title"), p.title, kMaxShortTextBytes));
    CV_RETURN_IF_ERROR(Text(Path("participants", i, "company"), p.company, kMaxShortTextBytes));
    CV_RETURN_IF_ERROR(Enum(Path("participants", i, "affiliation"), p.affiliation,
                            Affiliation::kExternal));
    CV_RETURN_IF_ERROR(OptionalId(Path("participants", i, "user_id"), p.user_id));
  }
  return Status::OK();
}

Status Transcript(const Call& c) {
  if (c.transcript.size() > kMaxSegments) {
    return Status::InvalidArgument("transcript: more than " + std::to_string(kMaxSegments) +
                                   " segments");
  }
  size_t total = 0;
  for (size_t i = 0; i < c.transcript.size(); ++i) {
    const TranscriptSegment& s = c.transcript[i];
    CV_RETURN_IF_ERROR(Text(Path("transcript", i, "text"), s.text, kMaxSegmentTextBytes));
    if (s.end_ms < s.start_ms) {
      return Status::InvalidArgument(Path("transcript", i, "end_ms") + ": before start_ms");
    }
    if (!(s.confidence >= 0.0f && s.confidence <= 1.0f)) {
      return Status::InvalidArgument(Path("transcript", i, "confidence") + ": not in [0, 1]");
    }
    total += s.text.size() + 16;
  }
  if (total > kMaxTranscriptBytes) {
    return Status::InvalidArgument("transcript: larger than " +
                                   std::to_string(kMaxTranscriptBytes) + " bytes");
  }
  return Status::OK();
}

Status InsightsOf(const Call& c) {
  const Insights& in = c.insights;
  CV_RETURN_IF_ERROR(Text("insights.summary", in.summary, kMaxSummaryBytes));
  if (in.action_items.size() > kMaxListItems) {
    return Status::InvalidArgument("insights.action_items: more than " +
                                   std::to_string(kMaxListItems) + " entries");
  }
  for (size_t i = 0; i < in.action_items.size(); ++i) {
    CV_RETURN_IF_ERROR(Text(Path("insights.action_items", i, "text"), in.action_items[i].text,
                            kMaxSegmentTextBytes));
    CV_RETURN_IF_ERROR(OptionalId(Path("insights.action_items", i, "owner_user_id"),
                                  in.action_items[i].owner_user_id));
  }
  CV_RETURN_IF_ERROR(StringList("insights.topics", in.topics, kMaxListItems, kMaxShortTextBytes, false));
  if (in.trackers.size() > kMaxListItems) {
    return Status::InvalidArgument("insights.trackers: more than " +
                                   std::to_string(kMaxListItems) + " entries");
  }
  for (size_t i = 0; i < in.trackers.size(); ++i) {
    CV_RETURN_IF_ERROR(Text(Path("insights.trackers", i, "name"), in.trackers[i].name,
                            kMaxShortTextBytes));
  }
  CV_RETURN_IF_ERROR(Text("insights.model_name", in.model_name, kMaxShortTextBytes));
  return Text("insights.model_version", in.model_version, kMaxShortTextBytes);
}

}  // namespace

bool IsUtf8(std::string_view s) {
  size_t i = 0;
  const size_t n = s.size();
  while (i < n) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    int len;
    uint32_t cp;
    if ((c & 0xe0) == 0xc0) { len = 2; cp = c & 0x1f; }
    else if ((c & 0xf0) == 0xe0) { len = 3; cp = c & 0x0f; }
    else if ((c & 0xf8) == 0xf0) { len = 4; cp = c & 0x07; }
    else return false;
    if (i + static_cast<size_t>(len) > n) return false;
    for (int k = 1; k < len; ++k) {
      unsigned char cc = static_cast<unsigned char>(s[i + static_cast<size_t>(k)]);
      if ((cc & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3f);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
      return false;
    }
    i += static_cast<size_t>(len);
  }
  return true;
}

Status Id(std::string_view field, std::string_view id) {
  if (id.empty()) return Status::InvalidArgument(std::string(field) + ": required");
  if (id.size() > kMaxIdBytes) {
    return Status::InvalidArgument(std::string(field) + ": longer than " +
                                   std::to_string(kMaxIdBytes) + " bytes");
  }
  for (char c : id) {
    if (c < 0x21 || c > 0x7e) {
      return Status::InvalidArgument(std::string(field) +
                                     ": must be printable ASCII without spaces");
    }
  }
  return Status::OK();
}

Status Region(std::string_view region) {
  bool ok = !region.empty() && region.size() <= kMaxRegionBytes;
  for (char c : region) ok = ok && ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-');
  if (!ok) return Status::InvalidArgument("region: must be 1-32 characters of [a-z0-9-]");
  return Status::OK();
}

Status NormalizeSubject(std::string* subject) {
  if (subject->find('@') != std::string::npos) return Email("subject", subject);
  return Phone("subject", subject);
}

Status NormalizeCall(Call* c) {
  CV_RETURN_IF_ERROR(Id("call_id", c->call_id));
  CV_RETURN_IF_ERROR(Enum("source_system", c->source_system, SourceSystem::kUpload));
  CV_RETURN_IF_ERROR(OptionalId("source_call_id", c->source_call_id));
  CV_RETURN_IF_ERROR(OptionalId("workspace_id", c->workspace_id));
  if (c->started_at <= 0) return Status::InvalidArgument("started_at: required, > 0 (microseconds)");
  if (c->scheduled_start < 0 || c->scheduled_end < 0 || c->created_at < 0 || c->updated_at < 0) {
    return Status::InvalidArgument("instants must not be negative");
  }
  if (c->scheduled_start && c->scheduled_end && c->scheduled_end < c->scheduled_start) {
    return Status::InvalidArgument("scheduled_end: before scheduled_start");
  }
  CV_RETURN_IF_ERROR(Text("title", c->title, kMaxTitleBytes));
  CV_RETURN_IF_ERROR(Enum("direction", c->direction, Direction::kConference));
  CV_RETURN_IF_ERROR(Enum("scope", c->scope, CallScope::kExternal));
  CV_RETURN_IF_ERROR(Enum("media", c->media, Media::kVideo));
  CV_RETURN_IF_ERROR(Language(c->language));
  CV_RETURN_IF_ERROR(Text("status", c->status, kMaxShortTextBytes));
  CV_RETURN_IF_ERROR(StringList("tags", c->tags, kMaxTags, kMaxShortTextBytes, false));
  CV_RETURN_IF_ERROR(OptionalId("owner_user_id", c->owner_user_id));
  CV_RETURN_IF_ERROR(StringList("team_ids", c->team_ids, kMaxTeams, kMaxIdBytes, true));
  CV_RETURN_IF_ERROR(Participants(c));
  if (c->crm_links.size() > kMaxCrmLinks) {
    return Status::InvalidArgument("crm_links: more than " + std::to_string(kMaxCrmLinks) +
                                   " entries");
  }
  for (size_t i = 0; i < c->crm_links.size(); ++i) {
    CV_RETURN_IF_ERROR(Id(Path("crm_links", i, "system"), c->crm_links[i].system));
    CV_RETURN_IF_ERROR(Enum(Path("crm_links", i, "object_type"), c->crm_links[i].object_type,
                            CrmObjectType::kLead));
    CV_RETURN_IF_ERROR(Id(Path("crm_links", i, "object_id"), c->crm_links[i].object_id));
  }
  CV_RETURN_IF_ERROR(Transcript(*c));
  return InsightsOf(*c);
}

}  // namespace callvault::validate
