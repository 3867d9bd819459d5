#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tools/json/call_json.h"
#include "workload/workload.h"

namespace callvault::json {
namespace {

constexpr int64_t k20260301T1430 = 1772375400000000;

std::vector<Call> Generate(size_t n, uint64_t seed = 42) {
  workload::GeneratorOptions o;
  o.seed = seed;
  o.transcript_scale = 0.05;
  return workload::Generator(o).Batch(n);
}

JsonOptions Reveal(uint32_t parts = kPartAll) {
  JsonOptions o;
  o.reveal = true;
  o.parts = parts;
  return o;
}

std::string Revealed(const Call& c) { return CallToJson(c, Reveal()).dump(); }

// ---- round trip -------------------------------------------------------------

TEST(CallJsonTest, RoundTripsEveryGeneratedCall) {
  for (const Call& c : Generate(300)) {
    Result<std::vector<Call>> parsed = ParseCalls(Revealed(c));
    ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
    ASSERT_EQ(parsed->size(), 1u);
    ASSERT_EQ(parsed->front(), c) << c.call_id;
  }
}

TEST(CallJsonTest, RoundTripsAnArray) {
  const std::vector<Call> calls = Generate(40, 7);
  nlohmann::json array = nlohmann::json::array();
  for (const Call& c : calls) array.push_back(CallToJson(c, Reveal()));
  Result<std::vector<Call>> parsed = ParseCalls(array.dump(2));
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(*parsed, calls);
}

TEST(CallJsonTest, RoundTripsEveryEnumValue) {
  Call c;
  c.call_id = "c1";
  c.started_at = 1;
  for (int s = 0; s <= 6; ++s) {
    for (int d = 0; d <= 3; ++d) {
      c.source_system = static_cast<SourceSystem>(s);
      c.direction = static_cast<Direction>(d);
      c.scope = static_cast<CallScope>(d % 3);
      c.media = static_cast<Media>(d % 2);
      c.participants.assign(1, Participant());
      c.participants[0].affiliation = static_cast<Affiliation>(d % 3);
      c.crm_links.assign(1, CrmLink());
      c.crm_links[0].system = "hubspot";
      c.crm_links[0].object_type = static_cast<CrmObjectType>(d);
      Result<std::vector<Call>> parsed = ParseCalls(Revealed(c));
      ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
      EXPECT_EQ(parsed->front(), c);
    }
  }
}

TEST(CallJsonTest, AcceptsAMinimalCallAndNulls) {
  Result<std::vector<Call>> parsed =
      ParseCalls(R"({"call_id":"c1","started_at":5,"title":null,"insights":null,"tags":null})");
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  Call expected;
  expected.call_id = "c1";
  expected.started_at = 5;
  EXPECT_EQ(parsed->front(), expected);
  Result<std::vector<Call>> empty = ParseCalls("[]");
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->empty());
}

// ---- instants ---------------------------------------------------------------

TEST(Rfc3339Test, ParsesExactValues) {
  const std::pair<const char*, int64_t> cases[] = {
      {"1970-01-01T00:00:00Z", 0},
      {"2026-01-01T00:00:00Z", 1767225600000000},
      {"2026-03-01T14:30:00Z", k20260301T1430},
      {"2026-03-01t14:30:00z", k20260301T1430},
      {"2026-03-01 14:30:00Z", k20260301T1430},
      {"2026-03-01T14:30:00.123456Z", k20260301T1430 + 123456},
      {"2026-03-01T14:30:00.1Z", k20260301T1430 + 100000},
      {"2026-03-01T14:30:00.1234569Z", k20260301T1430 + 123456},  // truncated
      {"2026-03-01T16:30:00+02:00", k20260301T1430},
      {"2026-03-01T09:00:00.5-05:30", k20260301T1430 + 500000},
      {"2026-03-01T14:30:00-00:00", k20260301T1430},
      {"2024-02-29T00:00:00Z", 1709164800000000},
      {"1999-12-31T23:59:59Z", 946684799000000},
      {"9999-12-31T23:59:59Z", 253402300799000000},
      {"1969-12-31T23:59:59Z", -1000000},
  };
  for (const auto& [text, micros] : cases) {
    Result<int64_t> t = ParseRfc3339(text);
    ASSERT_TRUE(t.ok()) << text << ": " << t.status().ToString();
    EXPECT_EQ(*t, micros) << text;
  }
}

TEST(Rfc3339Test, RejectsMalformedWithoutEchoingThem) {
  const char* bad[] = {"",
                       "2026-03-01",
                       "2026-03-01T14:30Z",
                       "2026-03-01T14:30:00",
                       "2026-03-01T14:30:00.Z",
                       "2026-13-01T00:00:00Z",
                       "2026-00-10T00:00:00Z",
                       "2023-02-29T00:00:00Z",
                       "2026-04-31T00:00:00Z",
                       "2026-03-01T24:00:00Z",
                       "2026-03-01T14:60:00Z",
                       "2026-03-01T14:30:00+2:00",
                       "2026-03-01T14:30:00+24:00",
                       "2026-03-01T14:30:00Zjunk",
                       "26-03-01T14:30:00Z",
                       "2026/03/01T14:30:00Z"};
  for (const char* text : bad) {
    Result<int64_t> t = ParseRfc3339(text);
    ASSERT_FALSE(t.ok()) << text;
    EXPECT_EQ(t.status().code(), Code::kInvalidArgument);
    EXPECT_EQ(t.status().message().find("2026"), std::string::npos) << t.status().message();
  }
}

TEST(Rfc3339Test, FormatsAndParsesBack) {
  const int64_t values[] = {0, 1, 999999, k20260301T1430, k20260301T1430 + 123456, -1000000,
                            253402300799999999};
  for (int64_t v : values) {
    Result<int64_t> back = ParseRfc3339(FormatRfc3339(v));
    ASSERT_TRUE(back.ok()) << FormatRfc3339(v);
    EXPECT_EQ(*back, v);
  }
  EXPECT_EQ(FormatRfc3339(k20260301T1430), "2026-03-01T14:30:00Z");
  EXPECT_EQ(FormatRfc3339(k20260301T1430 + 1500), "2026-03-01T14:30:00.001500Z");
}

TEST(CallJsonTest, InstantsAcceptStringsAndIntegers) {
  Result<std::vector<Call>> parsed = ParseCalls(R"({"call_id":"c","started_at":"2026-03-01T16:30:00+02:00",
      "scheduled_start":"2026-03-01T14:30:00.25Z","scheduled_end":1772377200000000,
      "created_at":"2026-03-01T15:00:00Z","updated_at":0})");
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  const Call& c = parsed->front();
  EXPECT_EQ(c.started_at, k20260301T1430);
  EXPECT_EQ(c.scheduled_start, k20260301T1430 + 250000);
  EXPECT_EQ(c.scheduled_end, 1772377200000000);
  EXPECT_EQ(c.created_at, k20260301T1430 + 30 * 60 * 1000000LL);
  EXPECT_EQ(c.updated_at, 0);
}

// ---- errors -----------------------------------------------------------------

struct ErrorCase {
  const char* json;
  const char* message;  // the exact message expected
  const char* secret;   // must not appear in the message (nullptr: nothing to check)
};

const ErrorCase kErrorCases[] = {
    {R"({"started_at":1})", "calls[0].call_id: required", nullptr},
    {R"({"call_id":null,"started_at":1})", "calls[0].call_id: required", nullptr},
    {R"({"call_id":"c"})", "calls[0].started_at: required", nullptr},
    {R"({"call_id":"","started_at":1})", "calls[0].call_id: must not be empty", nullptr},
    {R"({"call_id":"c","started_at":0})", "calls[0].started_at: must be after 1970-01-01T00:00:00Z",
     nullptr},
    {R"({"call_id":"c","started_at":-77123})", "calls[0].started_at: must not be negative", "77123"},
    {R"([{"call_id":"a","started_at":1},{"call_id":"b","started_at":1,"participants":[{"speaker_id":1},{"speaker_id":"Jane Roe"}]}])",
     "calls[1].participants[1].speaker_id: expected a non-negative integer", "Jane"},
    {R"({"call_id":"c","started_at":1,"duration_ms":-4242})", "calls[0].duration_ms: must not be negative",
     "4242"},
    {R"({"call_id":"c","started_at":1,"duration_ms":4294967296})",
     "calls[0].duration_ms: out of range for uint32", "4294967296"},
    {R"({"call_id":"c","started_at":1,"duration_ms":12.5})",
     "calls[0].duration_ms: expected a non-negative integer", "12.5"},
    {R"({"call_id":"c","started_at":98765432109876543210})", "calls[0].started_at: out of range for int64",
     "98765"},
    {R"({"call_id":"c","started_at":9223372036854775808})", "calls[0].started_at: out of range for int64",
     "9223372036854775808"},
    {R"({"call_id":"c","started_at":true})",
     "calls[0].started_at: expected an integer (microseconds) or an RFC 3339 string", nullptr},
    {R"({"call_id":"c","started_at":"jane.roe@example.com"})",
     "calls[0].started_at: invalid RFC 3339 date-time: expected a YYYY-MM-DD date", "jane"},
    {R"({"call_id":"c","started_at":"2026-02-30T10:00:00Z"})",
     "calls[0].started_at: invalid RFC 3339 date-time: day out of range", "2026"},
    {R"({"call_id":"c","started_at":1,"secret_field":1})", "calls[0].secret_field: unknown field", nullptr},
    {R"({"call_id":"c","started_at":1,"jane.roe@example.com":1})",
     "calls[0].<unprintable field name>: unknown field", "jane"},
    {R"({"call_id":"c","started_at":1,"participants":[{"nickname":"Janey"}]})",
     "calls[0].participants[0].nickname: unknown field", "Janey"},
    {R"({"call_id":"c","started_at":1,"title":31337})", "calls[0].title: expected a string", "31337"},
    {R"({"call_id":"c","started_at":1,"direction":"sideways"})",
     R"(calls[0].direction: expected one of "inbound", "outbound", "conference", "unknown")", "sideways"},
    {R"({"call_id":"c","started_at":1,"source_system":"skype"})",
     R"(calls[0].source_system: expected one of "zoom", "teams", "meet", "webex", "dialer", "upload", "other")",
     "skype"},
    {R"({"call_id":"c","started_at":1,"crm_links":[{"object_type":"deal"}]})",
     R"(calls[0].crm_links[0].object_type: expected one of "account", "opportunity", "contact", "lead")",
     "deal"},
    {R"({"call_id":"c","started_at":1,"participants":[{"affiliation":"friend"}]})",
     R"(calls[0].participants[0].affiliation: expected one of "internal", "external", "unknown")", "friend"},
    {R"({"call_id":"c","started_at":1,"transcript":[{"confidence":1.75}]})",
     "calls[0].transcript[0].confidence: must be between 0 and 1", "1.75"},
    {R"({"call_id":"c","started_at":1,"transcript":[{"start_ms":5000,"end_ms":4000}]})",
     "calls[0].transcript[0].end_ms: must not be less than start_ms", "4000"},
    {R"({"call_id":"c","started_at":1,"transcript":[{"text":["hello there"]}]})",
     "calls[0].transcript[0].text: expected a string", "hello"},
    {R"({"call_id":"c","started_at":1,"insights":{"trackers":[{"name":"x","count":-3}]}})",
     "calls[0].insights.trackers[0].count: must not be negative", nullptr},
    {R"({"call_id":"c","started_at":1,"insights":[]})", "calls[0].insights: expected an object", nullptr},
    {R"({"call_id":"c","started_at":1,"insights":{"action_items":[{"text":"call Jane","due":1}]}})",
     "calls[0].insights.action_items[0].due: unknown field", "Jane"},
    {R"({"call_id":"c","started_at":1,"tags":["ok",7]})", "calls[0].tags[1]: expected a string", nullptr},
    {R"({"call_id":"c","started_at":1,"team_ids":"t-1"})", "calls[0].team_ids: expected an array", "t-1"},
    {R"([{"call_id":"c","started_at":1},"jane.roe@example.com"])", "calls[1]: expected an object", "jane"},
    {R"("jane.roe@example.com")", "expected a JSON object or an array of objects", "jane"},
    {R"(42)", "expected a JSON object or an array of objects", "42"},
    {R"({"call_id":"jane.roe@example.com", )", "malformed JSON at byte 36", "jane"},
    {R"({"call_id":"jane.roe@exa)", "malformed JSON at byte 25", "jane"},
    {"", "malformed JSON at byte 1", nullptr},
    {"{\"call_id\":\"jane\xff\",\"started_at\":1}", "malformed JSON at byte 17", "jane"},
};

TEST(CallJsonTest, ErrorsNameThePathAndNotTheValue) {
  for (const ErrorCase& e : kErrorCases) {
    Result<std::vector<Call>> parsed = ParseCalls(e.json);
    ASSERT_FALSE(parsed.ok()) << e.json;
    EXPECT_EQ(parsed.status().code(), Code::kInvalidArgument) << e.json;
    EXPECT_EQ(parsed.status().message(), e.message) << e.json;
    if (e.secret != nullptr) {
      EXPECT_EQ(parsed.status().message().find(e.secret), std::string::npos)
          << e.json << " -> " << parsed.status().message();
    }
  }
}

TEST(CallJsonTest, RefusesOversizedInput) {
  const std::string huge(kMaxInputBytes + 1, ' ');
  Result<std::vector<Call>> parsed = ParseCalls(huge);
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.status().code(), Code::kInvalidArgument);
  EXPECT_EQ(parsed.status().message(), "input is larger than 256 MiB");
}

TEST(CallJsonTest, SurvivesDeepNesting) {
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  Result<std::vector<Call>> parsed = ParseCalls(deep);
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.status().message(), "calls[0]: expected an object");
}

// ---- output -----------------------------------------------------------------

TEST(CallJsonTest, RedactionHidesPersonalData) {
  for (const Call& c : Generate(30, 3)) {
    const nlohmann::json j = CallToJson(c);  // reveal = false by default
    const std::string text = j.dump();
    EXPECT_EQ(text.find(c.title), std::string::npos);
    for (const auto& p : c.participants) {
      EXPECT_EQ(text.find(p.name), std::string::npos);
      if (!p.email.empty()) {
        EXPECT_EQ(text.find(p.email), std::string::npos);
      }
      if (!p.phone.empty()) {
        EXPECT_EQ(text.find(p.phone), std::string::npos);
      }
    }
    for (const auto& s : c.transcript) EXPECT_EQ(text.find(s.text), std::string::npos);
    EXPECT_EQ(text.find(c.insights.summary), std::string::npos);
    for (const auto& a : c.insights.action_items) EXPECT_EQ(text.find(a.text), std::string::npos);
    // Identifiers and sizes stay visible.
    EXPECT_EQ(j["call_id"], c.call_id);
    EXPECT_EQ(j["owner_user_id"], c.owner_user_id);
    EXPECT_EQ(j["title"], "[redacted]");
    EXPECT_EQ(j["participants"][0]["email"], "[redacted]");
    EXPECT_EQ(j["participants"][0]["user_id"], c.participants[0].user_id);
    EXPECT_EQ(j["transcript"][0]["text"],
              "[redacted " + std::to_string(c.transcript[0].text.size()) + " bytes]");
    EXPECT_EQ(j["insights"]["summary"],
              "[redacted " + std::to_string(c.insights.summary.size()) + " bytes]");
    // Revealed, the same data is there.
    const std::string revealed = Revealed(c);
    EXPECT_NE(revealed.find(c.participants[0].email), std::string::npos);
    EXPECT_NE(revealed.find(c.transcript[0].text), std::string::npos);
  }
}

TEST(CallJsonTest, RedactionLeavesEmptyFieldsEmpty) {
  Call c;
  c.call_id = "c";
  c.started_at = 1;
  c.participants.assign(1, Participant());
  c.participants[0].name = "Jane Roe";
  c.participants[0].speaker_id = 1;
  const nlohmann::json j = CallToJson(c);
  EXPECT_EQ(j["title"], "");
  EXPECT_EQ(j["participants"][0]["name"], "[redacted]");
  EXPECT_EQ(j["participants"][0]["email"], "");
}

TEST(CallJsonTest, PartsSelectSections) {
  const Call c = Generate(1).front();
  const nlohmann::json meta = CallToJson(c, Reveal(kPartMetadata));
  EXPECT_FALSE(meta.contains("participants"));
  EXPECT_FALSE(meta.contains("transcript"));
  EXPECT_FALSE(meta.contains("insights"));
  EXPECT_TRUE(meta.contains("crm_links"));
  EXPECT_TRUE(meta.contains("tags"));
  const nlohmann::json transcript = CallToJson(c, Reveal(kPartTranscript));
  EXPECT_TRUE(transcript.contains("transcript"));
  EXPECT_FALSE(transcript.contains("participants"));
  EXPECT_FALSE(transcript.contains("insights"));
  // Metadata alone parses back to the call without its parts.
  Call expected = c;
  expected.participants.clear();
  expected.transcript.clear();
  expected.insights = {};
  Result<std::vector<Call>> parsed = ParseCalls(meta.dump());
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(parsed->front(), expected);
}

TEST(CallJsonTest, EveryFieldIsPresent) {
  Call c;
  c.call_id = "c";
  c.started_at = 1;
  const nlohmann::json j = CallToJson(c);
  for (const char* key :
       {"call_id", "source_system", "source_call_id", "workspace_id", "started_at", "duration_ms",
        "scheduled_start", "scheduled_end", "created_at", "updated_at", "title", "direction", "scope",
        "media", "language", "status", "tags", "owner_user_id", "team_ids", "participants", "crm_links",
        "transcript", "insights", "version"}) {
    EXPECT_TRUE(j.contains(key)) << key;
  }
  EXPECT_EQ(j.size(), 24u);
  EXPECT_EQ(j["version"], 0u);
  EXPECT_EQ(j["source_system"], "other");
  EXPECT_EQ(j["insights"]["model_name"], "");
}

// "version" (as `call get` prints it) is read back into Call::version;
// a negative or non-integer one is refused.
TEST(CallJsonTest, VersionIsReadBack) {
  Call c;
  c.call_id = "c";
  c.started_at = 1;
  c.version = 18446744073709551615u;
  auto parsed = ParseCalls(CallToJson(c).dump());
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(parsed->front().version, c.version);
  for (const char* bad : {"-1", "1.5", "\"7\""}) {
    auto r = ParseCalls(std::string(R"({"call_id":"c","started_at":1,"version":)") + bad + "}");
    EXPECT_EQ(r.status().code(), Code::kInvalidArgument) << bad;
    EXPECT_NE(r.status().message().find("calls[0].version"), std::string::npos)
        << r.status().message();
  }
}

}  // namespace
}  // namespace callvault::json
