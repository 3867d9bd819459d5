// Guarantee 6: bad input gets a clear error and changes nothing.
//
// Every malformed call field, batch, tenant operation and query gets its
// own specific Code, never a crash; the message names the field but never
// holds the offending value (each carries a random marker) nor any key
// bytes; and nothing is written: call counts, per-tenant records and bytes
// (memtables included), the tenant list, receipts, the keyring generation
// and the size of every file under the store stay as they were. Opening
// with bad keys or paths: bad_open_test.cc.
#include <functional>
#include <limits>

#include "callvault/limits.h"
#include "callvault/store.h"
#include "tests/guarantees/bad_input_fixture.h"

namespace callvault::guarantees {
namespace {

struct FieldCase {
  std::string name;
  std::string field;  // what the message must name
  // Makes the call malformed; `m` is a random marker to put in the value.
  std::function<void(Call&, const std::string& m)> mutate;
};

// `n` decimal digits derived from the random part of marker `m` (phones).
std::string Digits(const std::string& m, size_t n) {
  const std::string hex = m.substr(m.rfind('-') + 1);
  std::string d;
  for (size_t i = 0; d.size() < n; ++i)
    d.push_back(static_cast<char>('0' + hex[i % hex.size()] % 10));
  return d;
}

// `m` repeated (space- or underscore-separated) to exactly `n` bytes.
std::string Fill(const std::string& m, size_t n, char sep = ' ') {
  std::string s;
  while (s.size() < n) s += m + sep;
  return s.substr(0, n);
}

TEST_F(BadInputTest, EveryMalformedCallFieldIsRejectedAlone) {
  using S = std::string;
  using namespace limits;
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  const std::vector<FieldCase> cases = {
      // Required fields and instants.
      {"missing call_id", "call_id", [](Call& c, const S&) { c.call_id.clear(); }},
      {"started_at 0", "started_at", [](Call& c, const S&) { c.started_at = 0; }},
      {"started_at < 0", "started_at", [](Call& c, const S&) { c.started_at = -5; }},
      {"negative created_at", "created_at", [](Call& c, const S&) { c.created_at = -1; }},
      // Instants at or after 2200-01-01 (limits::kMaxInstant): such a call
      // would be counted but never listed and never expire.
      {"started_at INT64_MAX", "started_at",
       [](Call& c, const S&) { c.started_at = std::numeric_limits<int64_t>::max(); }},
      {"started_at at kMaxInstant", "started_at", [](Call& c, const S&) { c.started_at = kMaxInstant; }},
      {"scheduled_start far future", "scheduled_start",
       [](Call& c, const S&) { c.scheduled_start = kMaxInstant + 1; }},
      {"scheduled_end far future", "scheduled_end",
       [](Call& c, const S&) { c.scheduled_end = std::numeric_limits<int64_t>::max(); }},
      {"created_at far future", "created_at", [](Call& c, const S&) { c.created_at = kMaxInstant; }},
      {"updated_at far future", "updated_at",
       [](Call& c, const S&) { c.updated_at = std::numeric_limits<int64_t>::max() - 1; }},
      {"scheduled_end before start", "scheduled_end",
       [](Call& c, const S&) { c.scheduled_start = kT0, c.scheduled_end = kT0 - 1; }},
      // Oversized text and ids.
      {"title too long", "title",
       [](Call& c, const S& m) { c.title = Fill(m, kMaxTitleBytes + 1); }},
      {"segment text too long", "transcript[3].text",
       [](Call& c, const S& m) { c.transcript[3].text = Fill(m, kMaxSegmentTextBytes + 1); }},
      {"summary too long", "insights.summary",
       [](Call& c, const S& m) { c.insights.summary = Fill(m, kMaxSummaryBytes + 1); }},
      {"participant name too long", "participants[1].name",
       [](Call& c, const S& m) { c.participants[1].name = Fill(m, kMaxShortTextBytes + 1); }},
      {"tag too long", "tags[0]",
       [](Call& c, const S& m) { c.tags[0] = Fill(m, kMaxShortTextBytes + 1); }},
      {"call_id too long", "call_id",
       [](Call& c, const S& m) { c.call_id = Fill(m, kMaxIdBytes + 1, '_'); }},
      {"source_call_id too long", "source_call_id",
       [](Call& c, const S& m) { c.source_call_id = Fill(m, kMaxIdBytes + 1, '_'); }},
      {"workspace_id too long", "workspace_id",
       [](Call& c, const S& m) { c.workspace_id = Fill(m, kMaxIdBytes + 1, '_'); }},
      {"owner_user_id too long", "owner_user_id",
       [](Call& c, const S& m) { c.owner_user_id = Fill(m, kMaxIdBytes + 1, '_'); }},
      {"team id too long", "team_ids[0]",
       [](Call& c, const S& m) { c.team_ids[0] = Fill(m, kMaxIdBytes + 1, '_'); }},
      {"CRM object id too long", "crm_links[0].object_id",
       [](Call& c, const S& m) { c.crm_links[0].object_id = Fill(m, kMaxIdBytes + 1, '_'); }},
      {"participant user_id with a space", "participants[0].user_id",
       [](Call& c, const S& m) { c.participants[0].user_id = m + " x"; }},
      {"call_id with a control byte", "call_id",
       [](Call& c, const S& m) { c.call_id = m + "\x01"; }},
      // Too many entries.
      {"too many participants", "participants",
       [](Call& c, const S& m) {
         c.participants.assign(kMaxParticipants + 1, Participant{.name = m, .speaker_id = 1});
       }},
      {"too many tags", "tags", [](Call& c, const S& m) { c.tags.assign(kMaxTags + 1, m); }},
      // Emails and phones.
      {"email without @", "participants[2].email",
       [](Call& c, const S& m) { c.participants[2].email = m + ".example.com"; }},
      {"email with two @", "participants[0].email",
       [](Call& c, const S& m) { c.participants[0].email = m + "@a@b.example"; }},
      {"email with a space", "participants[0].email",
       [](Call& c, const S& m) { c.participants[0].email = m + " x@b.example"; }},
      {"email ending in @", "participants[0].email",
       [](Call& c, const S& m) { c.participants[0].email = m + "@"; }},
      {"phone without +", "participants[0].phone",
       [](Call& c, const S& m) { c.participants[0].phone = Digits(m, 11); }},
      {"phone too short", "participants[0].phone",
       [](Call& c, const S& m) { c.participants[0].phone = "+" + Digits(m, 6); }},
      {"phone with letters", "participants[2].phone",
       [](Call& c, const S& m) { c.participants[2].phone = "+1555" + m; }},
      {"phone starting +0", "participants[0].phone",
       [](Call& c, const S& m) { c.participants[0].phone = "+0" + Digits(m, 10); }},
      // Invalid UTF-8.
      {"title: lone continuation byte", "title", [](Call& c, const S& m) { c.title = m + "\x80"; }},
      {"title: 0xff", "title", [](Call& c, const S& m) { c.title = m + "\xff"; }},
      {"title: overlong '/'", "title", [](Call& c, const S& m) { c.title = m + "\xc0\xaf"; }},
      {"title: surrogate", "title", [](Call& c, const S& m) { c.title = m + "\xed\xa0\x80"; }},
      {"title: truncated sequence", "title", [](Call& c, const S& m) { c.title = m + "\xe2\x82"; }},
      {"title: beyond U+10FFFF", "title",
       [](Call& c, const S& m) { c.title = m + "\xf4\x90\x80\x80"; }},
      {"segment text: invalid UTF-8", "transcript[0].text",
       [](Call& c, const S& m) { c.transcript[0].text = m + "\xfe"; }},
      {"participant company: invalid UTF-8", "participants[1].company",
       [](Call& c, const S& m) { c.participants[1].company = "\xc3" + m; }},
      {"topic: invalid UTF-8", "insights.topics[0]",
       [](Call& c, const S& m) { c.insights.topics[0] = m + "\xa0"; }},
      // Transcript segments.
      {"end_ms before start_ms", "transcript[5].end_ms",
       [](Call& c, const S&) { c.transcript[5].end_ms = c.transcript[5].start_ms - 1; }},
      {"confidence NaN", "transcript[0].confidence",
       [&](Call& c, const S&) { c.transcript[0].confidence = nan; }},
      {"confidence +inf", "transcript[1].confidence",
       [&](Call& c, const S&) { c.transcript[1].confidence = inf; }},
      {"confidence negative", "transcript[0].confidence",
       [](Call& c, const S&) { c.transcript[0].confidence = -0.25f; }},
      {"confidence above 1", "transcript[0].confidence",
       [](Call& c, const S&) { c.transcript[0].confidence = 1.5f; }},
      // Enum values cast in from out of range.
      {"source_system 7", "source_system",
       [](Call& c, const S&) { c.source_system = static_cast<SourceSystem>(7); }},
      {"source_system 255", "source_system",
       [](Call& c, const S&) { c.source_system = static_cast<SourceSystem>(255); }},
      {"direction 4", "direction",
       [](Call& c, const S&) { c.direction = static_cast<Direction>(4); }},
      {"scope 3", "scope", [](Call& c, const S&) { c.scope = static_cast<CallScope>(3); }},
      {"media 2", "media", [](Call& c, const S&) { c.media = static_cast<Media>(2); }},
      {"affiliation 3", "participants[1].affiliation",
       [](Call& c, const S&) { c.participants[1].affiliation = static_cast<Affiliation>(3); }},
      {"CRM object type 4", "crm_links[0].object_type",
       [](Call& c, const S&) { c.crm_links[0].object_type = static_cast<CrmObjectType>(4); }},
      {"language not BCP-47", "language", [](Call& c, const S& m) { c.language = m + "_x"; }},
  };
  const Snapshot before = Snap();
  for (const auto& fc : cases) {
    SCOPED_TRACE(fc.name);
    Call c = Valid();
    const std::string m = Bad();
    fc.mutate(c, m);
    const std::vector<std::string> offending = {m, Digits(m, 6)};
    ExpectRejected(ts_->PutCall("acme", c), Code::kInvalidArgument, fc.field, offending, before);
    // The same call second in a batch: "calls[1]." and still nothing written.
    std::vector<Call> batch = {Valid("batch-ok"), c};
    ExpectRejected(ts_->PutCalls("acme", batch), Code::kInvalidArgument, "calls[1]." + fc.field,
                   offending, before);
    // And against a tenant that does not exist: the call is still checked.
    ExpectRejected(ts_->PutCall("nobody", c), Code::kInvalidArgument, fc.field, offending, before);
  }
  std::cout << "[bad-input] " << cases.size() << " malformed fields, " << cases_
            << " rejected operations" << std::endl;
  // The control: the valid base call is accepted.
  EXPECT_OK(ts_->PutCall("acme", Valid()));
  EXPECT_FALSE(Snap() == before);
}

TEST_F(BadInputTest, BatchErrors) {
  const Snapshot before = Snap();
  ExpectRejected(ts_->PutCalls("acme", {}), Code::kInvalidArgument, "", {}, before);
  ExpectRejected(ts_->PutCalls("acme", {Valid("dup"), Valid("other"), Valid("dup")}),
                 Code::kInvalidArgument, "call_id", {"dup"}, before);
  {
    std::vector<Call> b = {Valid("s1"), Valid("s2")};
    std::string m = Bad();
    b[0].source_call_id = b[1].source_call_id = m;
    ExpectRejected(ts_->PutCalls("acme", b), Code::kInvalidArgument, "source_call_id", {m}, before);
  }
  {
    // Over the batch limit, cheaply: the size is checked before any call.
    std::vector<Call> b(limits::kMaxBatchCalls + 1);
    auto r = ts_->PutCalls("acme", b);
    // limits.h says kInvalidArgument; status.h lists "too large a batch"
    // under kResourceExhausted. Either is specific; nothing may be written.
    EXPECT_TRUE(r.status().code() == Code::kInvalidArgument ||
                r.status().code() == Code::kResourceExhausted)
        << r.status().ToString();
    ExpectRejected(r, r.status().code(), std::to_string(limits::kMaxBatchCalls), {}, before);
  }
}

// Two calls of one batch that resolve to the same stored call (one by its
// call_id, one by the source id of that call) are one call twice.
// Regression (engine/calls.cc, Store::Impl::PutCalls, as of c054e8f): the
// batch was accepted; each call was planned against the stored state, not
// the batch's, so the call kept two time-index entries (CountCalls counted
// it twice), ListCalls of the tenant failed with kCorruption for good ("time
// index disagrees with the call"), and its source index entry was deleted.
TEST_F(BadInputTest, BatchNamingOneStoredCallTwiceIsRejectedOrConsistent) {
  const Snapshot before = Snap();
  Call by_source = Valid("fresh-id");
  by_source.source_call_id = "zoom-1";  // "sourced" has it
  by_source.started_at = kT0 + 50;
  Call by_id = Valid("sourced");
  by_id.started_at = kT0 + 60;
  auto r = ts_->PutCalls("acme", {by_source, by_id});
  if (!r.ok()) {
    ExpectRejected(r, Code::kInvalidArgument, "", {}, before);
    return;
  }
  // Accepted: the store must still hold one call "sourced", listed once.
  EXPECT_EQ(*ts_->CountCalls("acme"), before.counts.at("acme"))
      << "the time index holds an entry for a call that is not there";
  ListQuery q;
  q.limit = limits::kMaxListLimit;
  auto page = ts_->ListCalls("acme", q);
  ASSERT_OK(page);
  EXPECT_EQ(page->calls.size(), before.counts.at("acme"));
  auto v = ts_->Verify("acme");
  ASSERT_OK(v);
  EXPECT_EQ(v->records_failed, 0u);
}

TEST_F(BadInputTest, TenantErrors) {
  const Snapshot before = Snap();
  const std::string unknown = Lower(Bad());
  const std::vector<std::string> off = {unknown};
  ExpectRejected(ts_->PutCall(unknown, Valid()), Code::kNotFound, "", off, before);
  ExpectRejected(ts_->PutCalls(unknown, {Valid()}), Code::kNotFound, "", off, before);
  ExpectRejected(ts_->GetCall(unknown, "call-1"), Code::kNotFound, "", off, before);
  ExpectRejected(ts_->DeleteCall(unknown, "call-1"), Code::kNotFound, "", off, before);
  ExpectRejected(ts_->ListCalls(unknown, {}), Code::kNotFound, "", off, before);
  ExpectRejected(ts_->CountCalls(unknown), Code::kNotFound, "", off, before);
  ExpectRejected(ts_->DescribeTenant(unknown), Code::kNotFound, "", off, before);
  ExpectRejected(ts_->PurgeTenant(unknown), Code::kNotFound, "", off, before);
  ExpectRejected(ts_->Verify(unknown), Code::kNotFound, "", off, before);
  // Unknown call in a known tenant.
  const std::string call = Bad();
  ExpectRejected(ts_->GetCall("acme", call), Code::kNotFound, "", {call}, before);
  ExpectRejected(ts_->DeleteCall("acme", call), Code::kNotFound, "", {call}, before);
  // Duplicate tenant.
  ExpectRejected(ts_->CreateTenant({.tenant_id = "acme"}), Code::kAlreadyExists, "", {}, before);
  // Invalid tenant ids, in every operation that takes one.
  const std::string m = Bad();
  for (const std::string& id :
       {std::string(), m + " space", m + "\t", m + "\n", "t\xc3\xa9nant-" + m, m + "\x7f",
        m + std::string(limits::kMaxIdBytes, 'x')}) {
    SCOPED_TRACE(id);
    ExpectRejected(ts_->CreateTenant({.tenant_id = id}), Code::kInvalidArgument, "tenant_id", {m},
                   before);
    ExpectRejected(ts_->PutCall(id, Valid()), Code::kInvalidArgument, "tenant_id", {m}, before);
    ExpectRejected(ts_->GetCall(id, "call-1"), Code::kInvalidArgument, "tenant_id", {m}, before);
    ExpectRejected(ts_->PurgeTenant(id), Code::kInvalidArgument, "tenant_id", {m}, before);
    ExpectRejected(ts_->DescribeTenant(id), Code::kInvalidArgument, "tenant_id", {m}, before);
  }
  // Region: another valid region is a residency violation; a malformed one
  // is invalid.
  ExpectRejected(ts_->CreateTenant({.tenant_id = "newco", .region = "us-east"}),
                 Code::kFailedPrecondition, "region", {"us-east"}, before);
  const std::string region_marker = Lower(Bad()).substr(0, 14);
  ExpectRejected(ts_->CreateTenant({.tenant_id = "newco", .region = "EU " + region_marker}),
                 Code::kInvalidArgument, "region", {region_marker}, before);
  ExpectRejected(ts_->CreateTenant({.tenant_id = "newco", .region = std::string(33, 'a')}),
                 Code::kInvalidArgument, "region", {}, before);
  ExpectRejected(
      ts_->CreateTenant({.tenant_id = "newco", .retention_days = limits::kMaxRetentionDays + 1}),
      Code::kInvalidArgument, "retention_days", {}, before);
  // A purged tenant's operations get kTenantPurged (after a real purge).
  ASSERT_OK(ts_->PurgeTenant("globex"));
  const Snapshot purged = Snap();
  ExpectRejected(ts_->PutCall("globex", Valid()), Code::kTenantPurged, "", {}, purged);
  ExpectRejected(ts_->GetCall("globex", "g"), Code::kTenantPurged, "", {}, purged);
  ExpectRejected(ts_->ListCalls("globex", {}), Code::kTenantPurged, "", {}, purged);
}

TEST_F(BadInputTest, QueryErrors) {
  const Snapshot before = Snap();
  ListQuery q;
  q.limit = limits::kMaxListLimit + 1;
  ExpectRejected(ts_->ListCalls("acme", q), Code::kInvalidArgument, "limit", {}, before);
  q = ListQuery{};
  q.from = kT0 + 10;
  q.to = kT0;
  ExpectRejected(ts_->ListCalls("acme", q), Code::kInvalidArgument, "from", {}, before);
  q = ListQuery{};
  const std::string cursor = Bad();
  q.cursor = cursor;
  ExpectRejected(ts_->ListCalls("acme", q), Code::kInvalidArgument, "cursor", {cursor}, before);
  for (uint32_t parts : {uint32_t{1} << 3, uint32_t{1} << 31, ~uint32_t{0}}) {
    ExpectRejected(ts_->GetCall("acme", "call-1", parts), Code::kInvalidArgument, "parts", {},
                   before);
  }
  ExpectRejected(ts_->GetCall("acme", ""), Code::kInvalidArgument, "call_id", {}, before);
  const std::string m = Bad();
  ExpectRejected(ts_->GetCall("acme", m + " x"), Code::kInvalidArgument, "call_id", {m}, before);
}

}  // namespace
}  // namespace callvault::guarantees
