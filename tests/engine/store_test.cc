// The public Store API end to end: tenants, calls, parts, listing, purge,
// receipts, reopen.
#include <filesystem>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "callvault/limits.h"
#include "callvault/store.h"
#include "tests/testutil/testutil.h"

namespace callvault {
namespace {

using testutil::MakeCall;
using testutil::TestStore;

constexpr int64_t kT0 = 1'767'225'600'000'000;  // 2026-01-01T00:00:00Z

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK(ts.Open());
    ASSERT_OK(ts->CreateTenant({.tenant_id = "acme", .retention_days = 30}));
  }
  TestStore ts;
};

TEST_F(StoreTest, PutGetRoundTripsEveryField) {
  Call c = MakeCall("call-1", kT0 + 5);
  auto put = ts->PutCall("acme", c);
  ASSERT_OK(put);
  EXPECT_TRUE(put->created);
  auto got = ts->GetCall("acme", "call-1");
  ASSERT_OK(got);
  Call expect = c;
  expect.created_at = got->created_at;
  expect.updated_at = got->updated_at;
  EXPECT_GT(got->created_at, 0);
  EXPECT_EQ(*got, expect);
}

TEST_F(StoreTest, GetSelectedPartsOnly) {
  ASSERT_OK(ts->PutCall("acme", MakeCall("call-1", kT0)));
  auto meta = ts->GetCall("acme", "call-1", kPartMetadata);
  ASSERT_OK(meta);
  EXPECT_TRUE(meta->participants.empty());
  EXPECT_TRUE(meta->transcript.empty());
  EXPECT_TRUE(meta->insights.empty());
  EXPECT_EQ(meta->title, MakeCall("call-1", kT0).title);
  auto tr = ts->GetCall("acme", "call-1", kPartTranscript);
  ASSERT_OK(tr);
  EXPECT_EQ(tr->transcript.size(), 20u);
  EXPECT_TRUE(tr->insights.empty());
  auto in = ts->GetCall("acme", "call-1", kPartInsights | kPartParticipants);
  ASSERT_OK(in);
  EXPECT_EQ(in->participants.size(), 2u);
  EXPECT_FALSE(in->insights.summary.empty());
  EXPECT_TRUE(in->transcript.empty());
}

TEST_F(StoreTest, NormalisesEmailsAndPhones) {
  Call c = MakeCall("call-1", kT0);
  c.participants[0].email = "Alice@Example.COM";
  c.participants[0].phone = "+1 (415) 555-0100";
  ASSERT_OK(ts->PutCall("acme", c));
  auto got = ts->GetCall("acme", "call-1");
  ASSERT_OK(got);
  EXPECT_EQ(got->participants[0].email, "alice@example.com");
  EXPECT_EQ(got->participants[0].phone, "+14155550100");
}

TEST_F(StoreTest, ReingestBySourceIdUpdatesInPlace) {
  Call c = MakeCall("call-1", kT0);
  c.source_call_id = "zoom-123";
  ASSERT_OK(ts->PutCall("acme", c));
  Call again = MakeCall("call-1-retry", kT0 + 1000);
  again.source_call_id = "zoom-123";
  again.title = "Updated";
  auto r = ts->PutCall("acme", again);
  ASSERT_OK(r);
  EXPECT_FALSE(r->created);
  EXPECT_EQ(r->call_id, "call-1");
  EXPECT_EQ(*ts->CountCalls("acme"), 1u);
  auto got = ts->GetCall("acme", "call-1");
  ASSERT_OK(got);
  EXPECT_EQ(got->title, "Updated");
  EXPECT_EQ(got->started_at, kT0 + 1000);
  auto page = ts->ListCalls("acme", {});
  ASSERT_OK(page);
  ASSERT_EQ(page->calls.size(), 1u);  // the old time index entry is gone
  EXPECT_CODE(ts->GetCall("acme", "call-1-retry"), Code::kNotFound);
}

TEST_F(StoreTest, DeleteRemovesCallAndIndexes) {
  ASSERT_OK(ts->PutCall("acme", MakeCall("call-1", kT0)));
  ASSERT_OK(ts->DeleteCall("acme", "call-1"));
  EXPECT_CODE(ts->GetCall("acme", "call-1"), Code::kNotFound);
  EXPECT_CODE(ts->DeleteCall("acme", "call-1"), Code::kNotFound);
  EXPECT_EQ(*ts->CountCalls("acme"), 0u);
  auto v = ts->Verify("acme");
  ASSERT_OK(v);
  // Only the tenant's version counter is left (decision 0028): it outlives
  // the calls so that a re-put never reuses a version; and the change feed's
  // two events, the put and the delete (decision 0030).
  EXPECT_EQ(v->records_ok, 3u);
}

TEST_F(StoreTest, ListPagesInBothOrdersWithCursor) {
  std::vector<Call> calls;
  for (int i = 0; i < 57; ++i) calls.push_back(MakeCall("c" + std::to_string(i), kT0 + i * 1000));
  ASSERT_OK(ts->PutCalls("acme", calls));
  for (bool newest : {true, false}) {
    ListQuery q;
    q.newest_first = newest;
    q.limit = 10;
    std::vector<int64_t> seen;
    int pages = 0;
    do {
      auto page = ts->ListCalls("acme", q);
      ASSERT_OK(page);
      for (const auto& c : page->calls) seen.push_back(c.started_at);
      q.cursor = page->next_cursor;
      ++pages;
    } while (!q.cursor.empty());
    EXPECT_EQ(pages, 6);
    ASSERT_EQ(seen.size(), 57u);
    for (size_t i = 1; i < seen.size(); ++i) {
      EXPECT_TRUE(newest ? seen[i - 1] > seen[i] : seen[i - 1] < seen[i]);
    }
  }
  ListQuery range;
  range.from = kT0 + 10 * 1000;
  range.to = kT0 + 20 * 1000;
  auto page = ts->ListCalls("acme", range);
  ASSERT_OK(page);
  EXPECT_EQ(page->calls.size(), 10u);
}

TEST_F(StoreTest, CursorRejectedForOtherQueryOrTenantOrForged) {
  std::vector<Call> calls;
  for (int i = 0; i < 5; ++i) calls.push_back(MakeCall("c" + std::to_string(i), kT0 + i));
  ASSERT_OK(ts->PutCalls("acme", calls));
  ASSERT_OK(ts->CreateTenant({.tenant_id = "globex"}));
  ASSERT_OK(ts->PutCalls("globex", calls));
  ListQuery q;
  q.limit = 2;
  auto page = ts->ListCalls("acme", q);
  ASSERT_OK(page);
  ASSERT_FALSE(page->next_cursor.empty());
  ListQuery other = q;
  other.cursor = page->next_cursor;
  EXPECT_CODE(ts->ListCalls("globex", other), Code::kInvalidArgument);
  other.newest_first = false;
  EXPECT_CODE(ts->ListCalls("acme", other), Code::kInvalidArgument);
  ListQuery forged = q;
  forged.cursor = page->next_cursor;
  forged.cursor[5] = forged.cursor[5] == 'A' ? 'B' : 'A';
  EXPECT_CODE(ts->ListCalls("acme", forged), Code::kInvalidArgument);
  forged.cursor = "not a cursor!";
  EXPECT_CODE(ts->ListCalls("acme", forged), Code::kInvalidArgument);
}

TEST_F(StoreTest, CursorStableUnderConcurrentInserts) {
  std::vector<Call> calls;
  for (int i = 0; i < 30; ++i) calls.push_back(MakeCall("c" + std::to_string(i), kT0 + i * 10));
  ASSERT_OK(ts->PutCalls("acme", calls));
  ListQuery q;
  q.limit = 7;
  std::multiset<std::string> seen;
  int extra = 0;
  do {
    auto page = ts->ListCalls("acme", q);
    ASSERT_OK(page);
    for (const auto& c : page->calls) seen.insert(c.call_id);
    // Insert calls before, after and between the pages.
    ++extra;
    ASSERT_OK(ts->PutCall("acme", MakeCall("new" + std::to_string(extra), kT0 + extra * 7)));
    q.cursor = page->next_cursor;
  } while (!q.cursor.empty());
  for (int i = 0; i < 30; ++i) EXPECT_EQ(seen.count("c" + std::to_string(i)), 1u) << i;
}

TEST_F(StoreTest, BatchIsAllOrNothing) {
  std::vector<Call> calls = {MakeCall("a", kT0), MakeCall("b", kT0 + 1)};
  calls[1].participants[0].email = "not-an-email";
  auto r = ts->PutCalls("acme", calls);
  EXPECT_CODE(r, Code::kInvalidArgument);
  EXPECT_NE(r.status().message().find("calls[1].participants[0].email"), std::string::npos);
  EXPECT_EQ(r.status().message().find("not-an-email"), std::string::npos);
  EXPECT_EQ(*ts->CountCalls("acme"), 0u);
  calls = {MakeCall("a", kT0), MakeCall("a", kT0 + 1)};
  EXPECT_CODE(ts->PutCalls("acme", calls), Code::kInvalidArgument);
  EXPECT_EQ(*ts->CountCalls("acme"), 0u);
}

TEST_F(StoreTest, SurvivesReopen) {
  ASSERT_OK(ts->PutCall("acme", MakeCall("call-1", kT0)));
  ASSERT_OK(ts.Reopen());
  auto got = ts->GetCall("acme", "call-1");
  ASSERT_OK(got);
  EXPECT_EQ(got->transcript.size(), 20u);
  auto info = ts->DescribeTenant("acme");
  ASSERT_OK(info);
  EXPECT_EQ(info->state, TenantState::kActive);
  EXPECT_EQ(info->retention_days, 30u);
  EXPECT_EQ(info->region, "eu-west");
}

TEST_F(StoreTest, PurgeMakesTenantUnreachableAndSignsReceipt) {
  ASSERT_OK(ts->PutCall("acme", MakeCall("call-1", kT0)));
  ASSERT_OK(ts->CreateTenant({.tenant_id = "globex"}));
  ASSERT_OK(ts->PutCall("globex", MakeCall("call-1", kT0)));
  auto before = ts->Stats();
  ASSERT_OK(before);
  auto receipt = ts->PurgeTenant("acme");
  ASSERT_OK(receipt);
  EXPECT_EQ(receipt->kind, "tenant_purge");
  EXPECT_EQ(receipt->tenant_id, "acme");
  EXPECT_EQ(receipt->kek_generation_retired, before->kek_generation);
  EXPECT_EQ(receipt->kek_generation_current, before->kek_generation + 1);
  EXPECT_EQ(receipt->key_versions_destroyed, std::vector<uint32_t>{1});
  EXPECT_CODE(ts->GetCall("acme", "call-1"), Code::kTenantPurged);
  EXPECT_CODE(ts->PutCall("acme", MakeCall("x", kT0)), Code::kTenantPurged);
  EXPECT_CODE(ts->ListCalls("acme", {}), Code::kTenantPurged);
  EXPECT_OK(ts->GetCall("globex", "call-1"));
  // Idempotent: purging again returns the same receipt.
  auto again = ts->PurgeTenant("acme");
  ASSERT_OK(again);
  EXPECT_EQ(again->sequence, receipt->sequence);
  EXPECT_EQ(again->signature, receipt->signature);
  // The receipt chain verifies; an edit is caught.
  auto receipts = ts->ListReceipts();
  ASSERT_OK(receipts);
  auto pk = ts->SigningPublicKey();
  ASSERT_OK(pk);
  ASSERT_OK(VerifyReceiptChain(*receipts, *pk));
  auto edited = *receipts;
  edited[0].records += 1;
  EXPECT_CODE(VerifyReceiptChain(edited, *pk), Code::kCorruption);
  ASSERT_OK(ts.Reopen());
  EXPECT_CODE(ts->GetCall("acme", "call-1"), Code::kTenantPurged);
  EXPECT_OK(ts->GetCall("globex", "call-1"));
}

TEST_F(StoreTest, PurgedTenantIdCanBeCreatedAgainEmpty) {
  ASSERT_OK(ts->PutCall("acme", MakeCall("call-1", kT0)));
  auto old = ts->DescribeTenant("acme");
  ASSERT_OK(ts->PurgeTenant("acme"));
  auto again = ts->CreateTenant({.tenant_id = "acme"});
  ASSERT_OK(again);
  EXPECT_NE(again->internal_id, old->internal_id);
  EXPECT_NE(again->column_family, old->column_family);
  EXPECT_CODE(ts->GetCall("acme", "call-1"), Code::kNotFound);
  ASSERT_OK(ts->PutCall("acme", MakeCall("call-2", kT0)));
  ASSERT_OK(ts->PurgeTenant("acme"));
  auto receipts = ts->ListReceipts();
  ASSERT_OK(receipts);
  EXPECT_EQ(receipts->size(), 2u);
  ASSERT_OK(VerifyReceiptChain(*receipts, *ts->SigningPublicKey()));
}

TEST_F(StoreTest, TenantErrors) {
  EXPECT_CODE(ts->CreateTenant({.tenant_id = "acme"}), Code::kAlreadyExists);
  EXPECT_CODE(ts->CreateTenant({.tenant_id = "has space"}), Code::kInvalidArgument);
  EXPECT_CODE(ts->CreateTenant({.tenant_id = ""}), Code::kInvalidArgument);
  EXPECT_CODE(ts->CreateTenant({.tenant_id = std::string(limits::kMaxIdBytes + 1, 'x')}),
              Code::kInvalidArgument);
  EXPECT_CODE(ts->CreateTenant({.tenant_id = "x", .region = "us-east"}),
              Code::kFailedPrecondition);
  EXPECT_CODE(ts->GetCall("nobody", "c"), Code::kNotFound);
  EXPECT_CODE(ts->PurgeTenant("nobody"), Code::kNotFound);
  auto list = ts->ListTenants();
  ASSERT_OK(list);
  EXPECT_EQ(list->size(), 1u);
}

TEST_F(StoreTest, ShardsGrowPastTheTenantLimit) {
  ts.Close();
  TestStore small;
  small.options.max_tenants_per_shard = 2;
  ASSERT_OK(small.Open());
  for (int i = 0; i < 5; ++i) {
    ASSERT_OK(small->CreateTenant({.tenant_id = "t" + std::to_string(i)}));
    ASSERT_OK(small->PutCall("t" + std::to_string(i), MakeCall("c", kT0)));
  }
  EXPECT_EQ(small->ShardPaths().size(), 3u);
  ASSERT_OK(small->PurgeTenant("t3"));
  ASSERT_OK(small.Reopen());
  for (int i = 0; i < 5; ++i) {
    auto got = small->GetCall("t" + std::to_string(i), "c");
    if (i == 3) EXPECT_CODE(got, Code::kTenantPurged);
    else EXPECT_OK(got);
  }
  auto info = small->DescribeTenant("t4");
  ASSERT_OK(info);
  EXPECT_EQ(info->shard, 2u);
}

// Options out of range get a specific error naming the option, before
// anything is created; the bounds themselves open.
TEST(StoreOptions, OutOfRangeRefusedByNameBeforeAnythingIsCreated) {
  testutil::TempDir tmp;
  const std::string db = tmp.Sub("db");
  struct Case {
    const char* option;
    std::function<void(Options&)> set;
  };
  const std::vector<Case> cases = {
      {"write_buffer_budget_bytes", [](Options& o) { o.write_buffer_budget_bytes = 0; }},
      {"write_buffer_budget_bytes",
       [](Options& o) { o.write_buffer_budget_bytes = (64u << 10) - 1; }},
      {"write_buffer_bytes", [](Options& o) { o.write_buffer_bytes = 0; }},
      {"write_buffer_bytes", [](Options& o) { o.write_buffer_bytes = (64u << 10) - 1; }},
      {"write_buffer_bytes", [](Options& o) {
         o.write_buffer_bytes = (size_t{64} << 30) + 1;
         o.write_buffer_budget_bytes = SIZE_MAX;
       }},
      {"background_threads", [](Options& o) { o.background_threads = -1; }},
      {"background_threads", [](Options& o) { o.background_threads = 1000000; }},
      {"flush_threads", [](Options& o) { o.flush_threads = -2; }},
      {"flush_threads", [](Options& o) { o.flush_threads = 257; }},
      {"dictionary_training_threads", [](Options& o) { o.dictionary_training_threads = -1; }},
      {"dictionary_training_threads", [](Options& o) { o.dictionary_training_threads = 100000; }},
      {"max_tenants_per_shard", [](Options& o) { o.max_tenants_per_shard = 0; }},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.option);
    Options o = testutil::DefaultOptions(tmp.Sub("keys"));
    c.set(o);
    auto opened = Store::Open(o, db);
    EXPECT_CODE(opened, Code::kInvalidArgument);
    if (!opened.ok()) {
      const std::string& message = opened.status().message();
      EXPECT_NE(message.find(std::string("options.") + c.option + " must"), std::string::npos)
          << message;
    }
    EXPECT_FALSE(std::filesystem::exists(db));
  }
  // At the bounds the store opens and takes a call; a budget below the
  // write buffer is fine (RocksDB flushes at 7/8 of it), as before.
  Options o = testutil::DefaultOptions(tmp.Sub("keys"));
  o.write_buffer_bytes = 8u << 20;
  o.write_buffer_budget_bytes = 64u << 10;
  o.background_threads = 0;
  o.flush_threads = 256;
  o.dictionary_training_threads = 0;
  auto opened = Store::Open(o, db);
  ASSERT_OK(opened);
  ASSERT_OK((*opened)->CreateTenant({.tenant_id = "acme"}));
  ASSERT_OK((*opened)->PutCall("acme", MakeCall("c", kT0)));
  EXPECT_OK((*opened)->GetCall("acme", "c"));
}

}  // namespace
}  // namespace callvault
