// Call versions, conditional writes, partial updates (UpdateCall), batch
// reads (GetCalls) and counts by query (CountCalls with a ListQuery):
// docs/decisions/0028.
#include <atomic>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "callvault/limits.h"
#include "callvault/store.h"
#include "callvault/version.h"
#include "format/rowkey.h"
#include "tests/testutil/raw_shard.h"
#include "tests/testutil/testutil.h"

namespace callvault {
namespace {

using testutil::MakeCall;
using testutil::RawShard;
using testutil::TestStore;

constexpr int64_t kT0 = 1'767'225'600'000'000;  // 2026-01-01T00:00:00Z
constexpr int64_t kMinute = 60'000'000;

class UpdateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK(ts.Open());
    ASSERT_OK(ts->CreateTenant({.tenant_id = "acme", .retention_days = 0}));
  }
  uint64_t VersionOf(const std::string& id) {
    auto got = ts->GetCall("acme", id, kPartMetadata);
    EXPECT_OK(got);
    return got.ok() ? got->version : 0;
  }
  // Every row of the tenant's family, read raw with the store closed.
  std::map<std::string, std::string> Rows() {
    auto info = ts->DescribeTenant("acme");
    EXPECT_OK(info);
    const std::string shard = ts->ShardPaths().at(info->shard);
    ts.Close();
    std::map<std::string, std::string> out;
    {
      RawShard raw(shard, /*read_only=*/true);
      EXPECT_TRUE(raw.status().ok()) << raw.status().ToString();
      for (auto& [k, v] : raw.Scan(info->column_family)) out[k] = v;
    }
    EXPECT_OK(ts.Open());
    return out;
  }
  // The keys of rows that differ (changed, added or removed) between a and b.
  static std::set<std::string> Changed(const std::map<std::string, std::string>& a,
                                       const std::map<std::string, std::string>& b) {
    std::set<std::string> out;
    for (const auto& [k, v] : a) {
      auto it = b.find(k);
      if (it == b.end() || it->second != v) out.insert(k);
    }
    for (const auto& [k, v] : b) {
      if (!a.count(k)) out.insert(k);
    }
    return out;
  }
  // The call-part row of `part` among `rows` (one call in the tenant).
  static std::string PartKey(const std::map<std::string, std::string>& rows, format::Part part) {
    for (const auto& [k, v] : rows) {
      auto ck = format::ParseCallKey(k);
      if (ck && ck->part == part) return k;
    }
    return "";
  }
  TestStore ts;
};

TEST_F(UpdateTest, EveryReadAndWriteReturnsTheVersion) {
  auto put = ts->PutCall("acme", MakeCall("c1", kT0));
  ASSERT_OK(put);
  EXPECT_GT(put->version, 0u);
  auto got = ts->GetCall("acme", "c1");
  ASSERT_OK(got);
  EXPECT_EQ(got->version, put->version);
  ListQuery q;
  auto page = ts->ListCalls("acme", q);
  ASSERT_OK(page);
  ASSERT_EQ(page->calls.size(), 1u);
  EXPECT_EQ(page->calls[0].version, put->version);
  auto batch = ts->GetCalls("acme", {"c1"});
  ASSERT_OK(batch);
  ASSERT_OK((*batch)[0]);
  EXPECT_EQ((*batch)[0]->version, put->version);

  Call patch;
  patch.insights.summary = "new insights";
  auto upd = ts->UpdateCall("acme", "c1", kPartInsights, patch);
  ASSERT_OK(upd);
  EXPECT_GT(upd->version, put->version);
  EXPECT_EQ(VersionOf("c1"), upd->version);
  auto again = ts->PutCall("acme", MakeCall("c1", kT0));
  ASSERT_OK(again);
  EXPECT_GT(again->version, upd->version);
  auto del = ts->DeleteCall("acme", "c1", std::optional<uint64_t>(again->version));
  ASSERT_OK(del);
  EXPECT_GT(*del, again->version);
  // A re-put of the id after its delete never reuses a version a reader saw.
  auto reput = ts->PutCall("acme", MakeCall("c1", kT0));
  ASSERT_OK(reput);
  EXPECT_TRUE(reput->created);
  EXPECT_GT(reput->version, *del);
  std::printf("versions: put %llu, update %llu, put %llu, delete %llu, re-put %llu\n",
              static_cast<unsigned long long>(put->version),
              static_cast<unsigned long long>(upd->version),
              static_cast<unsigned long long>(again->version),
              static_cast<unsigned long long>(*del),
              static_cast<unsigned long long>(reput->version));
}

TEST_F(UpdateTest, VersionsStayMonotonicAcrossReopenDeleteAndBatches) {
  std::map<std::string, uint64_t> seen;  // the highest version seen per call
  std::mt19937_64 rng(7);
  std::printf("seed 7\n");
  for (int round = 0; round < 60; ++round) {
    const std::string id = "c" + std::to_string(rng() % 5);
    const int op = static_cast<int>(rng() % 5);
    uint64_t v = 0;
    if (op == 0) {
      auto d = ts->DeleteCall("acme", id, std::optional<uint64_t>());
      if (!d.ok()) {
        ASSERT_EQ(d.status().code(), Code::kNotFound);
        continue;
      }
      v = *d;
    } else if (op == 1) {
      auto r = ts->PutCalls("acme", {MakeCall(id, kT0), MakeCall(id + "-b", kT0 + 1)});
      ASSERT_OK(r);
      v = (*r)[0].version;
      EXPECT_GT((*r)[1].version, seen[id + "-b"]);
      seen[id + "-b"] = (*r)[1].version;
    } else if (op == 2) {
      ASSERT_OK(ts.Reopen());
      continue;
    } else {
      auto r = ts->PutCall("acme", MakeCall(id, kT0 + round));
      ASSERT_OK(r);
      v = r->version;
    }
    EXPECT_GT(v, seen[id]) << "round " << round;
    seen[id] = v;
  }
  auto report = ts->Verify("acme");
  ASSERT_OK(report);
  EXPECT_TRUE(report->ok()) << (report->failures.empty() ? "" : report->failures[0]);
}

TEST_F(UpdateTest, ExpectedVersionMismatchIsAConflictAndChangesNothing) {
  auto put = ts->PutCall("acme", MakeCall("c1", kT0));
  ASSERT_OK(put);
  const uint64_t v = put->version;
  auto before = ts->GetCall("acme", "c1");
  ASSERT_OK(before);

  Call changed = MakeCall("c1", kT0);
  changed.title = "changed";
  EXPECT_CODE(ts->PutCall("acme", changed, v + 1), Code::kConflict);
  EXPECT_CODE(ts->PutCall("acme", changed, 0), Code::kConflict);  // 0: must not exist
  Call patch;
  patch.insights.summary = "x";
  EXPECT_CODE(ts->UpdateCall("acme", "c1", kPartInsights, patch, v - 1), Code::kConflict);
  EXPECT_CODE(ts->DeleteCall("acme", "c1", std::optional<uint64_t>(v + 7)), Code::kConflict);
  auto after = ts->GetCall("acme", "c1");
  ASSERT_OK(after);
  EXPECT_EQ(*after, *before);
  EXPECT_EQ(after->version, v);
  EXPECT_EQ(std::string(CodeName(Code::kConflict)), "conflict");
  EXPECT_EQ(static_cast<int>(Code::kConflict), 13);

  // The matching version is applied; expected 0 creates a new call.
  ASSERT_OK(ts->PutCall("acme", changed, v));
  EXPECT_CODE(ts->PutCall("acme", MakeCall("c2", kT0), 5), Code::kConflict);  // absent
  EXPECT_CODE(ts->GetCall("acme", "c2"), Code::kNotFound);
  auto created = ts->PutCall("acme", MakeCall("c2", kT0), 0);
  ASSERT_OK(created);
  EXPECT_TRUE(created->created);
  // A vanished call is a conflict for a conditional writer, kNotFound otherwise.
  EXPECT_CODE(ts->UpdateCall("acme", "nope", kPartInsights, patch, 3), Code::kConflict);
  EXPECT_CODE(ts->UpdateCall("acme", "nope", kPartInsights, patch), Code::kNotFound);
  EXPECT_CODE(ts->DeleteCall("acme", "nope", std::optional<uint64_t>()), Code::kNotFound);
}

TEST_F(UpdateTest, UpdateInsightsLeavesTheTranscriptRecordUntouched) {
  ASSERT_OK(ts->PutCall("acme", MakeCall("c1", kT0)));
  auto before = Rows();
  const std::string transcript_key = PartKey(before, format::Part::kTranscript);
  ASSERT_FALSE(transcript_key.empty());
  Call patch;
  patch.insights.summary = "after the LLM ran";
  patch.insights.topics = {"pricing", "security"};
  auto upd = ts->UpdateCall("acme", "c1", kPartInsights, patch);
  ASSERT_OK(upd);
  auto after = Rows();
  ASSERT_EQ(after.count(transcript_key), 1u);
  EXPECT_EQ(after.at(transcript_key), before.at(transcript_key)) << "transcript re-sealed";
  // What changed: metadata, summary, insights, the updated_at index entry
  // (one removed, one added) and the version counter; nothing else.
  std::set<std::string> changed = Changed(before, after);
  EXPECT_TRUE(changed.count(PartKey(after, format::Part::kMeta)));
  EXPECT_TRUE(changed.count(PartKey(after, format::Part::kInsights)));
  EXPECT_TRUE(changed.count(PartKey(after, format::Part::kSummary)));
  EXPECT_TRUE(changed.count(format::VersionCounterKey()));
  for (const auto& k : changed) {
    auto ck = format::ParseCallKey(k);
    const bool ok = (ck && ck->part != format::Part::kTranscript) ||
                    k[0] == format::kUpdatedIndexPrefix || k == format::VersionCounterKey() ||
                    k[0] == format::kChangePrefix;  // its change feed event (decision 0030)
    EXPECT_TRUE(ok) << "unexpected change of a row of kind '" << k[0] << "'";
  }
  auto got = ts->GetCall("acme", "c1");
  ASSERT_OK(got);
  Call expect = MakeCall("c1", kT0);
  EXPECT_EQ(got->transcript, expect.transcript);
  EXPECT_EQ(got->participants, expect.participants);
  EXPECT_EQ(got->title, expect.title);
  EXPECT_EQ(got->source_call_id, expect.source_call_id);
  EXPECT_EQ(got->insights, patch.insights);
  EXPECT_EQ(got->version, upd->version);
}

TEST_F(UpdateTest, UpdateInsightsDoesNotReadTheTranscript) {
  // A damaged transcript record: an insights update neither reads nor
  // rewrites it (it would fail authentication if it did).
  ASSERT_OK(ts->PutCall("acme", MakeCall("c1", kT0)));
  auto rows = Rows();
  const std::string tk = PartKey(rows, format::Part::kTranscript);
  auto info = ts->DescribeTenant("acme");
  ASSERT_OK(info);
  const std::string shard = ts->ShardPaths().at(info->shard);
  ts.Close();
  std::string damaged = rows.at(tk);
  damaged[damaged.size() / 2] ^= 0x01;
  {
    RawShard raw(shard, /*read_only=*/false);
    ASSERT_TRUE(raw.status().ok());
    raw.Put(info->column_family, tk, damaged);
  }
  ASSERT_OK(ts.Open());
  Call patch;
  patch.insights.summary = "fresh";
  ASSERT_OK(ts->UpdateCall("acme", "c1", kPartInsights, patch));
  auto got = ts->GetCall("acme", "c1", kPartInsights);
  ASSERT_OK(got);
  EXPECT_EQ(got->insights.summary, "fresh");
  EXPECT_CODE(ts->GetCall("acme", "c1", kPartTranscript), Code::kCorruption);
  EXPECT_EQ(Rows().at(tk), damaged);
}

TEST_F(UpdateTest, ReTranscriptionLeavesInsightsAndRemovesAnEmptiedPart) {
  ASSERT_OK(ts->PutCall("acme", MakeCall("c1", kT0)));
  auto before = Rows();
  const std::string ik = PartKey(before, format::Part::kInsights);
  const std::string tk = PartKey(before, format::Part::kTranscript);
  Call patch;
  patch.transcript = {TranscriptSegment{1, 0, 1000, "re-transcribed", 0.99f}};
  ASSERT_OK(ts->UpdateCall("acme", "c1", kPartTranscript, patch));
  auto after = Rows();
  EXPECT_EQ(after.at(ik), before.at(ik));
  EXPECT_NE(after.at(tk), before.at(tk));
  auto got = ts->GetCall("acme", "c1");
  ASSERT_OK(got);
  EXPECT_EQ(got->transcript, patch.transcript);
  EXPECT_EQ(got->insights, MakeCall("c1", kT0).insights);
  // An empty transcript named removes the part.
  ASSERT_OK(ts->UpdateCall("acme", "c1", kPartTranscript, Call{}));
  got = ts->GetCall("acme", "c1");
  ASSERT_OK(got);
  EXPECT_TRUE(got->transcript.empty());
  EXPECT_EQ(got->insights, MakeCall("c1", kT0).insights);
  EXPECT_EQ(Rows().count(tk), 0u);
}

TEST_F(UpdateTest, FieldAndParticipantUpdatesKeepEveryIndexRight) {
  Call c = MakeCall("c1", kT0);
  c.source_call_id = "zoom-1";
  ASSERT_OK(ts->PutCall("acme", c));
  ASSERT_OK(ts->PutCall("acme", MakeCall("c2", kT0 + kMinute)));
  auto read = ts->GetCall("acme", "c1", kPartMetadata);
  ASSERT_OK(read);
  Call f = *read;
  f.owner_user_id = "u-9";
  f.workspace_id = "ws-9";
  f.tags = {"escalation"};
  f.started_at = kT0 + 10 * kMinute;
  f.crm_links = {CrmLink{"hubspot", CrmObjectType::kAccount, "acct-9"}};
  f.status = "reviewed";
  f.source_call_id = "zoom-1b";
  ASSERT_OK(ts->UpdateCall("acme", "c1", kPartFields, f, read->version));
  Call p;
  p.participants = {Participant{"Carol", "Carol@New.Example", "", "", "", Affiliation::kExternal, 3, ""}};
  auto upd = ts->UpdateCall("acme", "c1", kPartParticipants, p);
  ASSERT_OK(upd);

  auto ids = [&](ListQuery q) {
    std::vector<std::string> out;
    auto page = ts->ListCalls("acme", q);
    EXPECT_OK(page);
    if (page.ok()) {
      for (const auto& x : page->calls) out.push_back(x.call_id);
    }
    auto n = ts->CountCalls("acme", q);
    EXPECT_OK(n);
    if (n.ok()) {
      EXPECT_EQ(*n, out.size());
    }
    return out;
  };
  using V = std::vector<std::string>;
  EXPECT_EQ(ids({.owners = {"u-1"}}), V{"c2"});
  EXPECT_EQ(ids({.owners = {"u-9"}}), V{"c1"});
  EXPECT_EQ(ids({.workspace_id = "ws-9"}), V{"c1"});
  EXPECT_EQ(ids({.workspace_id = "ws-1"}), V{"c2"});
  EXPECT_EQ(ids({.tags = {"renewal"}}), V{"c2"});
  EXPECT_EQ(ids({.tags = {"escalation"}}), V{"c1"});
  EXPECT_EQ(ids({.participants = {"carol@new.example"}}), V{"c1"});
  EXPECT_EQ(ids({.participants = {"alice@example.com"}}), V{"c2"});
  EXPECT_EQ(ids({.crm = CrmRef{"hubspot", CrmObjectType::kAccount, "acct-9"}}), V{"c1"});
  EXPECT_EQ(ids({.crm = CrmRef{"salesforce", CrmObjectType::kOpportunity, "006ABC"}}), V{"c2"});
  EXPECT_EQ(ids({.from = kT0 + 5 * kMinute}), V{"c1"});
  EXPECT_EQ(ids({.to = kT0 + 5 * kMinute}), V{"c2"});
  auto got = ts->GetCall("acme", "c1");
  ASSERT_OK(got);
  EXPECT_EQ(ids({.updated_since = got->updated_at}), V{"c1"});
  EXPECT_EQ(got->status, "reviewed");
  EXPECT_EQ(got->participants[0].email, "carol@new.example");  // normalised as a put would
  EXPECT_EQ(got->transcript, c.transcript);
  EXPECT_EQ(got->created_at, read->created_at);
  EXPECT_EQ(got->version, upd->version);
  EXPECT_GT(got->updated_at, read->updated_at);  // f carried the old one: now instead
  // References follow: the old participant no longer names c1.
  auto refs = ts->FindReferences("acme", "alice@example.com");
  ASSERT_OK(refs);
  ASSERT_EQ(refs->size(), 1u);
  EXPECT_EQ((*refs)[0].call_id, "c2");
  // The new source id resolves to c1; the old one is free.
  Call again = MakeCall("other", kT0);
  again.source_call_id = "zoom-1b";
  auto r = ts->PutCall("acme", again);
  ASSERT_OK(r);
  EXPECT_EQ(r->call_id, "c1");
  Call fresh = MakeCall("c3", kT0);
  fresh.source_call_id = "zoom-1";
  r = ts->PutCall("acme", fresh);
  ASSERT_OK(r);
  EXPECT_EQ(r->call_id, "c3");
  // A source id another call has is refused.
  auto c3 = ts->GetCall("acme", "c3", kPartMetadata);
  ASSERT_OK(c3);
  Call steal = *c3;
  steal.source_call_id = "zoom-1b";
  EXPECT_CODE(ts->UpdateCall("acme", "c3", kPartFields, steal), Code::kAlreadyExists);
  auto report = ts->Verify("acme");
  ASSERT_OK(report);
  EXPECT_TRUE(report->ok());
}

TEST_F(UpdateTest, BadUpdatesAreRefusedAndChangeNothing) {
  ASSERT_OK(ts->PutCall("acme", MakeCall("c1", kT0)));
  auto before = ts->GetCall("acme", "c1");
  ASSERT_OK(before);
  Call patch;
  EXPECT_CODE(ts->UpdateCall("acme", "c1", 0, patch), Code::kInvalidArgument);
  EXPECT_CODE(ts->UpdateCall("acme", "c1", 1u << 9, patch), Code::kInvalidArgument);
  patch.call_id = "c2";
  EXPECT_CODE(ts->UpdateCall("acme", "c1", kPartInsights, patch), Code::kInvalidArgument);
  patch.call_id.clear();
  patch.insights.summary.assign(limits::kMaxSummaryBytes + 1, 'x');
  auto r = ts->UpdateCall("acme", "c1", kPartInsights, patch);
  EXPECT_CODE(r, Code::kInvalidArgument);
  EXPECT_EQ(r.status().message().find('x'), std::string::npos);  // no content in the message
  Call fields = *before;
  fields.started_at = 0;
  EXPECT_CODE(ts->UpdateCall("acme", "c1", kPartFields, fields), Code::kInvalidArgument);
  EXPECT_CODE(ts->GetCall("acme", "c1", kPartFields), Code::kInvalidArgument);
  auto after = ts->GetCall("acme", "c1");
  ASSERT_OK(after);
  EXPECT_EQ(*after, *before);
  EXPECT_EQ(after->version, before->version);
}

TEST_F(UpdateTest, LegalHoldsBlockUpdatesOfWhatTheyCover) {
  ASSERT_OK(ts->PutCall("acme", MakeCall("c1", kT0)));
  ASSERT_OK(ts->PutCall("acme", MakeCall("c2", kT0 + 1)));
  ASSERT_OK(ts->PlaceHold("acme", Hold{.hold_id = "h1", .reason = "case 1", .call_id = "c1"}));
  auto before = ts->GetCall("acme", "c1");
  ASSERT_OK(before);
  Call patch;
  patch.insights.summary = "rewritten";
  Call replaced = MakeCall("c1", kT0);
  replaced.transcript.clear();
  EXPECT_CODE(ts->UpdateCall("acme", "c1", kPartInsights, patch), Code::kFailedPrecondition);
  EXPECT_CODE(ts->PutCall("acme", replaced), Code::kFailedPrecondition);
  EXPECT_CODE(ts->PutCalls("acme", {MakeCall("c3", kT0), replaced}), Code::kFailedPrecondition);
  EXPECT_CODE(ts->GetCall("acme", "c3"), Code::kNotFound);  // the batch wrote nothing
  auto after = ts->GetCall("acme", "c1");
  ASSERT_OK(after);
  EXPECT_EQ(*after, *before);
  EXPECT_EQ(after->version, before->version);
  // The call the hold does not cover is updated.
  ASSERT_OK(ts->UpdateCall("acme", "c2", kPartInsights, patch));
  // A tenant-level hold covers every existing call; new calls still come in.
  ASSERT_OK(ts->PlaceHold("acme", Hold{.hold_id = "h2", .reason = "case 2"}));
  EXPECT_CODE(ts->UpdateCall("acme", "c2", kPartInsights, patch), Code::kFailedPrecondition);
  ASSERT_OK(ts->PutCall("acme", MakeCall("c4", kT0 + 2)));
  ASSERT_OK(ts->ReleaseHold("acme", "h2"));
  ASSERT_OK(ts->ReleaseHold("acme", "h1"));
  ASSERT_OK(ts->UpdateCall("acme", "c1", kPartInsights, patch));
  ASSERT_OK(ts->PutCall("acme", replaced));
}

TEST_F(UpdateTest, RedactionIsANewVersion) {
  auto put = ts->PutCall("acme", MakeCall("c1", kT0));
  ASSERT_OK(put);
  auto erased = ts->Erase("acme", {.subject = "bob@customer.example", .mode = EraseMode::kRedact});
  ASSERT_OK(erased);
  ASSERT_EQ(erased->changed, 1u);
  EXPECT_GT(VersionOf("c1"), put->version);
  // A writer holding the call as read before the erasure cannot put it back.
  EXPECT_CODE(ts->PutCall("acme", MakeCall("c1", kT0), put->version), Code::kConflict);
  auto refs = ts->FindReferences("acme", "bob@customer.example");
  ASSERT_OK(refs);
  EXPECT_TRUE(refs->empty());
}

TEST_F(UpdateTest, GetCallsReportsMissingIdsPerId) {
  ASSERT_OK(ts->PutCall("acme", MakeCall("c1", kT0)));
  ASSERT_OK(ts->PutCall("acme", MakeCall("c2", kT0 + 1)));
  auto r = ts->GetCalls("acme", {"c2", "missing", "c1", "bad id", "c2"}, kPartInsights);
  ASSERT_OK(r);
  ASSERT_EQ(r->size(), 5u);
  ASSERT_OK((*r)[0]);
  EXPECT_EQ((*r)[0]->call_id, "c2");
  EXPECT_FALSE((*r)[0]->insights.empty());
  EXPECT_TRUE((*r)[0]->transcript.empty());
  EXPECT_TRUE((*r)[0]->participants.empty());
  EXPECT_CODE((*r)[1], Code::kNotFound);
  ASSERT_OK((*r)[2]);
  EXPECT_EQ((*r)[2]->call_id, "c1");
  EXPECT_CODE((*r)[3], Code::kInvalidArgument);
  ASSERT_OK((*r)[4]);
  EXPECT_EQ((*r)[4]->call_id, "c2");
  auto all = ts->GetCalls("acme", {"c1"});
  ASSERT_OK(all);
  ASSERT_OK((*all)[0]);
  Call expect = MakeCall("c1", kT0);
  expect.created_at = (*all)[0]->created_at;
  expect.updated_at = (*all)[0]->updated_at;
  EXPECT_EQ(*(*all)[0], expect);
  auto empty = ts->GetCalls("acme", {});
  ASSERT_OK(empty);
  EXPECT_TRUE(empty->empty());
  EXPECT_CODE(ts->GetCalls("acme", std::vector<std::string>(limits::kMaxListLimit + 1, "c1")),
              Code::kInvalidArgument);
  EXPECT_CODE(ts->GetCalls("acme", {"c1"}, 1u << 9), Code::kInvalidArgument);
  EXPECT_CODE(ts->GetCalls("nobody", {"c1"}), Code::kNotFound);
}

TEST_F(UpdateTest, CountCallsMatchesEveryPageOfTheListing) {
  std::mt19937_64 rng(11);
  std::printf("seed 11\n");
  std::vector<Call> calls;
  for (int i = 0; i < 300; ++i) {
    Call c = MakeCall("c" + std::to_string(i), kT0 + static_cast<int64_t>(rng() % 1000) * kMinute);
    c.owner_user_id = "u-" + std::to_string(rng() % 4);
    c.workspace_id = "ws-" + std::to_string(rng() % 3);
    c.tags = {"t" + std::to_string(rng() % 5)};
    c.duration_ms = static_cast<uint32_t>(rng() % 100000);
    c.direction = static_cast<Direction>(rng() % 4);
    c.transcript.clear();
    calls.push_back(c);
  }
  ASSERT_OK(ts->PutCalls("acme", calls));
  int queries = 0;
  for (int i = 0; i < 40; ++i) {
    ListQuery q;
    if (rng() % 2) q.owners = {"u-" + std::to_string(rng() % 4)};
    if (rng() % 3 == 0) q.workspace_id = "ws-" + std::to_string(rng() % 3);
    if (rng() % 3 == 0) q.tags = {"t" + std::to_string(rng() % 5)};
    if (rng() % 3 == 0) q.min_duration_ms = 50000;
    if (rng() % 4 == 0) q.direction = Direction::kInbound;
    if (rng() % 2) q.from = kT0 + static_cast<int64_t>(rng() % 500) * kMinute;
    if (rng() % 4 == 0) q.participants = {"alice@example.com"};
    q.limit = 37;
    uint64_t listed = 0;
    ListQuery page_q = q;
    for (;;) {
      auto page = ts->ListCalls("acme", page_q);
      ASSERT_OK(page);
      listed += page->calls.size();
      if (page->next_cursor.empty()) break;
      page_q.cursor = page->next_cursor;
    }
    auto n = ts->CountCalls("acme", q);
    ASSERT_OK(n);
    EXPECT_EQ(*n, listed) << "query " << i;
    ++queries;
  }
  auto all = ts->CountCalls("acme", ListQuery{});
  ASSERT_OK(all);
  EXPECT_EQ(*all, 300u);
  auto plain = ts->CountCalls("acme");
  ASSERT_OK(plain);
  EXPECT_EQ(*plain, 300u);
  ListQuery bad;
  bad.from = 5;
  bad.to = 4;
  EXPECT_CODE(ts->CountCalls("acme", bad), Code::kInvalidArgument);
  std::printf("CountCalls: %d queries, 0 mismatches\n", queries);
}

// An "insights" job and a "re-transcription" job update one call at the same
// time, each by read-modify-write of its part and of the call's tags (which
// both change), with expected versions: every successful update is in the
// final call, and a loser gets kConflict and retries.
struct RaceOutcome {
  int successes = 0;
  int conflicts = 0;
  int lost = 0;  // successful tag additions missing from the final call
};

RaceOutcome RunRace(Store* store, const std::string& id, bool conditional, int per_job) {
  RaceOutcome out;
  std::atomic<int> successes{0}, conflicts{0};
  auto job = [&](const std::string& name, uint32_t part) {
    for (int k = 0; k < per_job; ++k) {
      for (;;) {
        auto cur = store->GetCall("acme", id, part);
        if (!cur.ok()) {
          ADD_FAILURE() << cur.status().ToString();
          return;
        }
        Call patch = *cur;
        patch.tags.push_back(name + "-" + std::to_string(k));
        if (part == kPartInsights) {
          patch.insights.summary = name + " " + std::to_string(k);
        } else {
          patch.transcript = {TranscriptSegment{1, 0, 1000, name + " " + std::to_string(k), 0.9f}};
        }
        auto r = store->UpdateCall("acme", id, part | kPartFields, patch,
                                   conditional ? std::optional<uint64_t>(cur->version)
                                               : std::nullopt);
        if (r.ok()) {
          ++successes;
          break;
        }
        if (r.status().code() != Code::kConflict) {
          ADD_FAILURE() << r.status().ToString();
          return;
        }
        ++conflicts;  // the loser re-reads and retries
      }
    }
  };
  std::thread a(job, "insights", kPartInsights);
  std::thread b(job, "transcript", kPartTranscript);
  a.join();
  b.join();
  out.successes = successes;
  out.conflicts = conflicts;
  auto final_call = store->GetCall("acme", id);
  if (!final_call.ok()) {
    ADD_FAILURE() << final_call.status().ToString();
    return out;
  }
  std::set<std::string> tags(final_call->tags.begin(), final_call->tags.end());
  for (const std::string name : {"insights", "transcript"}) {
    for (int k = 0; k < per_job; ++k) out.lost += tags.count(name + "-" + std::to_string(k)) ? 0 : 1;
  }
  if (conditional) {
    EXPECT_EQ(final_call->insights.summary, "insights " + std::to_string(per_job - 1));
    EXPECT_EQ(final_call->transcript.size(), 1u);
    if (!final_call->transcript.empty()) {
      EXPECT_EQ(final_call->transcript[0].text, "transcript " + std::to_string(per_job - 1));
    }
  }
  return out;
}

TEST_F(UpdateTest, RacingJobsWithExpectedVersionsNeverLoseAnUpdate) {
  constexpr int kPerJob = 45;  // tags: at most 100 per call
  constexpr int kRounds = 4;
  RaceOutcome with, without;
  for (int round = 0; round < kRounds; ++round) {
    const std::string id = "race-" + std::to_string(round);
    Call base = MakeCall(id, kT0 + round);
    base.tags.clear();
    ASSERT_OK(ts->PutCall("acme", base));
    RaceOutcome r = RunRace(ts.store.get(), id, /*conditional=*/true, kPerJob);
    EXPECT_EQ(r.successes, 2 * kPerJob);
    EXPECT_EQ(r.lost, 0);
    with.successes += r.successes;
    with.conflicts += r.conflicts;
    with.lost += r.lost;
    // The same race without expected versions, for contrast: it may lose
    // updates (how many depends on the scheduling; not asserted).
    const std::string id2 = "free-" + std::to_string(round);
    base.call_id = id2;
    ASSERT_OK(ts->PutCall("acme", base));
    r = RunRace(ts.store.get(), id2, /*conditional=*/false, kPerJob);
    without.successes += r.successes;
    without.lost += r.lost;
  }
  std::printf("race: %d updates, %d conflicts retried, %d lost with expected versions; "
              "%d lost of %d without\n",
              with.successes, with.conflicts, with.lost, without.lost, without.successes);
}

// PutCalls with one expected version per call: all or nothing.
class PutCallsExpectedTest : public UpdateTest {
 protected:
  // The feed's events after `*token` (advanced to the end).
  std::vector<ChangeEvent> EventsAfter(std::string* token) {
    std::vector<ChangeEvent> out;
    for (;;) {
      auto page = ts->ReadChanges("acme", *token, 100);
      EXPECT_OK(page);
      if (!page.ok()) return out;
      *token = page->next_token;
      for (auto& e : page->events) out.push_back(e);
      if (page->events.size() < 100) return out;
    }
  }
  std::string EndToken() {
    std::string token;
    EventsAfter(&token);
    return token;
  }
};

TEST_F(PutCallsExpectedTest, MatchingVersionsAreAllApplied) {
  auto p1 = ts->PutCall("acme", MakeCall("c1", kT0));
  auto p2 = ts->PutCall("acme", MakeCall("c2", kT0 + kMinute));
  ASSERT_OK(p1);
  ASSERT_OK(p2);
  std::string token = EndToken();
  std::vector<Call> batch = {MakeCall("c1", kT0), MakeCall("c2", kT0 + kMinute),
                             MakeCall("c3", kT0 + 2 * kMinute), MakeCall("c4", kT0)};
  for (auto& c : batch) c.title = "batch " + c.call_id;
  // c1, c2 at their versions; c3 must not exist (0); c4 unconditional.
  auto r = ts->PutCalls("acme", batch, {p1->version, p2->version, uint64_t{0}, std::nullopt});
  ASSERT_OK(r);
  ASSERT_EQ(r->size(), 4u);
  EXPECT_FALSE((*r)[0].created);
  EXPECT_FALSE((*r)[1].created);
  EXPECT_TRUE((*r)[2].created);
  EXPECT_TRUE((*r)[3].created);
  EXPECT_GT((*r)[0].version, p1->version);
  EXPECT_GT((*r)[1].version, p2->version);
  for (size_t i = 0; i < batch.size(); ++i) {
    auto got = ts->GetCall("acme", batch[i].call_id);
    ASSERT_OK(got);
    EXPECT_EQ(got->title, "batch " + batch[i].call_id);
    EXPECT_EQ(got->version, (*r)[i].version);
  }
  auto events = EventsAfter(&token);
  ASSERT_EQ(events.size(), 4u);
  for (size_t i = 0; i < events.size(); ++i) {
    EXPECT_EQ(events[i].kind, ChangeKind::kPut);
    EXPECT_EQ(events[i].call_id, batch[i].call_id);
    EXPECT_EQ(events[i].version, (*r)[i].version);
  }
}

TEST_F(PutCallsExpectedTest, OneStaleVersionRefusesTheWholeBatch) {
  auto p1 = ts->PutCall("acme", MakeCall("c1", kT0));
  auto p2 = ts->PutCall("acme", MakeCall("c2", kT0 + kMinute));
  ASSERT_OK(p1);
  ASSERT_OK(p2);
  Call patch;
  patch.insights.summary = "moved on";
  auto moved = ts->UpdateCall("acme", "c2", kPartInsights, patch);  // c2's p2 is now stale
  ASSERT_OK(moved);
  const std::string token = EndToken();
  const auto rows = Rows();

  std::vector<Call> batch = {MakeCall("c1", kT0), MakeCall("c2", kT0 + kMinute),
                             MakeCall("c3", kT0 + 2 * kMinute)};
  for (auto& c : batch) c.title = "overwritten";
  struct Case {
    std::vector<std::optional<uint64_t>> expected;
    std::string names;  // the call id the conflict names
  };
  const std::vector<Case> cases = {
      {{p1->version, p2->version, uint64_t{0}}, "c2"},        // stale
      {{p1->version, moved->version, uint64_t{7}}, "c3"},     // absent, expected 7
      {{uint64_t{0}, moved->version, uint64_t{0}}, "c1"},     // 0: must not exist
      {{std::nullopt, std::nullopt, moved->version}, "c3"},   // c3 absent
  };
  for (const auto& c : cases) {
    auto r = ts->PutCalls("acme", batch, c.expected);
    EXPECT_CODE(r, Code::kConflict);
    const std::string msg = r.status().message();
    EXPECT_NE(msg.find("call_id " + c.names + ")"), std::string::npos) << msg;
  }
  // Nothing of any batch was written: no row changed, no event appended.
  EXPECT_EQ(Changed(rows, Rows()), std::set<std::string>{});
  std::string t = token;
  EXPECT_EQ(EventsAfter(&t).size(), 0u);
  auto c1 = ts->GetCall("acme", "c1");
  ASSERT_OK(c1);
  EXPECT_EQ(c1->version, p1->version);
  EXPECT_EQ(c1->title, MakeCall("c1", kT0).title);
  EXPECT_EQ(VersionOf("c2"), moved->version);
  EXPECT_CODE(ts->GetCall("acme", "c3"), Code::kNotFound);

  // With c2's current version, the same batch goes through.
  ASSERT_OK(ts->PutCalls("acme", batch, {p1->version, moved->version, uint64_t{0}}));
  EXPECT_EQ(EventsAfter(&t).size(), 3u);
}

TEST_F(PutCallsExpectedTest, ExpectedVersionsOfAnotherLengthAreRefused) {
  auto p1 = ts->PutCall("acme", MakeCall("c1", kT0));
  ASSERT_OK(p1);
  const std::string token = EndToken();
  std::vector<Call> batch = {MakeCall("c1", kT0), MakeCall("c2", kT0)};
  batch[0].title = "overwritten";
  EXPECT_CODE(ts->PutCalls("acme", batch, {p1->version}), Code::kInvalidArgument);
  EXPECT_CODE(ts->PutCalls("acme", batch, {p1->version, uint64_t{0}, uint64_t{0}}),
              Code::kInvalidArgument);
  EXPECT_CODE(ts->PutCalls("acme", batch, {}), Code::kInvalidArgument);
  auto c1 = ts->GetCall("acme", "c1");
  ASSERT_OK(c1);
  EXPECT_EQ(c1->version, p1->version);
  EXPECT_EQ(c1->title, MakeCall("c1", kT0).title);
  EXPECT_CODE(ts->GetCall("acme", "c2"), Code::kNotFound);
  std::string t = token;
  EXPECT_EQ(EventsAfter(&t).size(), 0u);
}

TEST(UpdateFormatTest, NewStoresAreFormatThree) {
  EXPECT_EQ(kStoreFormatVersion, 3u);  // 2: call versions; 3: the change feed (decision 0030)
  EXPECT_EQ(kMinReadableStoreFormatVersion, 1u);
}

}  // namespace
}  // namespace callvault
