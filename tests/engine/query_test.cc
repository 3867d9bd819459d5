// Filters, the planner's index choice, transcript windows, references and
// erasure.
#include <set>

#include <rocksdb/db.h>

#include "callvault/store.h"
#include "tests/testutil/testutil.h"

namespace callvault {
namespace {

using testutil::MakeCall;
using testutil::TestStore;

constexpr int64_t kT0 = 1'767'225'600'000'000;

class QueryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK(ts.Open());
    ASSERT_OK(ts->CreateTenant({.tenant_id = "acme"}));
    std::vector<Call> calls;
    for (int i = 0; i < 40; ++i) {
      Call c = MakeCall("c" + std::to_string(i), kT0 + i * 1000);
      c.owner_user_id = "u-" + std::to_string(i % 4);
      c.workspace_id = "ws-" + std::to_string(i % 2);
      c.duration_ms = 1000u * static_cast<uint32_t>(i);
      c.direction = i % 3 == 0 ? Direction::kInbound : Direction::kOutbound;
      c.tags = {i % 5 == 0 ? "renewal" : "new-business"};
      c.participants[1].email = "guest" + std::to_string(i % 8) + "@customer.example";
      c.participants[1].phone = i % 10 == 0 ? "+442071838750" : "";
      c.crm_links = {CrmLink{"salesforce", CrmObjectType::kAccount, "acc-" + std::to_string(i % 3)}};
      calls.push_back(c);
    }
    ASSERT_OK(ts->PutCalls("acme", calls));
  }

  std::vector<std::string> ListAll(ListQuery q, size_t page = 3) {
    q.limit = page;
    std::vector<std::string> ids;
    for (;;) {
      auto p = ts->ListCalls("acme", q);
      EXPECT_OK(p);
      if (!p.ok()) break;
      for (const auto& c : p->calls) ids.push_back(c.call_id);
      if (p->next_cursor.empty()) break;
      q.cursor = p->next_cursor;
    }
    return ids;
  }

  static std::vector<std::string> Ids(std::initializer_list<int> is, bool newest_first = true) {
    std::vector<std::string> v;
    for (int i : is) v.push_back("c" + std::to_string(i));
    if (newest_first) std::reverse(v.begin(), v.end());
    return v;
  }

  TestStore ts;
};

TEST_F(QueryTest, FiltersByOwners) {
  ListQuery q;
  q.owners = {"u-1", "u-3"};
  auto ids = ListAll(q);
  EXPECT_EQ(ids.size(), 20u);
  for (const auto& id : ids) EXPECT_EQ(std::stoi(id.substr(1)) % 2, 1) << id;
}

TEST_F(QueryTest, FiltersByParticipantEmailAnyCase) {
  ListQuery q;
  q.participants = {"GUEST3@customer.example"};
  q.newest_first = false;
  EXPECT_EQ(ListAll(q), Ids({3, 11, 19, 27, 35}, false));
  q.participants = {"+44 20 7183 8750"};
  EXPECT_EQ(ListAll(q), Ids({0, 10, 20, 30}, false));
}

TEST_F(QueryTest, CombinesIndexAndSummaryFilters) {
  ListQuery q;
  q.crm = CrmRef{"salesforce", CrmObjectType::kAccount, "acc-0"};
  q.direction = Direction::kInbound;  // i % 3 == 0, same as acc-0
  q.min_duration_ms = 10000;
  q.max_duration_ms = 30000;
  EXPECT_EQ(ListAll(q), Ids({12, 15, 18, 21, 24, 27, 30}));
  q = ListQuery{};
  q.workspace_id = "ws-0";
  q.tags = {"renewal"};
  EXPECT_EQ(ListAll(q), Ids({0, 10, 20, 30}));
  q = ListQuery{};
  q.owners = {"u-0"};
  q.participants = {"guest4@customer.example"};
  q.from = kT0 + 5000;
  EXPECT_EQ(ListAll(q), Ids({12, 20, 28, 36}));
}

TEST_F(QueryTest, UpdatedSinceUsesUpdatedIndex) {
  auto before = ts->GetCall("acme", "c7");
  ASSERT_OK(before);
  Call c = *before;
  c.updated_at = before->updated_at + 10'000'000;
  c.title = "edited";
  ASSERT_OK(ts->PutCall("acme", c));
  ListQuery q;
  q.updated_since = before->updated_at + 1;
  EXPECT_EQ(ListAll(q), Ids({7}));
}

TEST_F(QueryTest, ReingestDropsStaleIndexEntries) {
  auto c = ts->GetCall("acme", "c5");
  ASSERT_OK(c);
  Call changed = *c;
  changed.owner_user_id = "u-new";
  changed.participants[1].email = "someone-else@customer.example";
  ASSERT_OK(ts->PutCall("acme", changed));
  ListQuery q;
  q.owners = {"u-1"};
  auto ids = ListAll(q);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), "c5"), 0);
  q = ListQuery{};
  q.owners = {"u-new"};
  EXPECT_EQ(ListAll(q), Ids({5}));
  auto refs = ts->FindReferences("acme", "guest5@customer.example");
  ASSERT_OK(refs);
  for (const auto& r : *refs) EXPECT_NE(r.call_id, "c5");
}

TEST_F(QueryTest, TranscriptWindow) {
  auto w = ts->GetTranscriptWindow("acme", "c1", 6000, 12000);
  ASSERT_OK(w);
  ASSERT_EQ(w->size(), 2u);  // segments at 6000-8500 and 9000-11500
  EXPECT_EQ((*w)[0].start_ms, 6000u);
  EXPECT_EQ((*w)[1].start_ms, 9000u);
  EXPECT_CODE(ts->GetTranscriptWindow("acme", "c1", 10, 5), Code::kInvalidArgument);
}

TEST_F(QueryTest, FindReferencesWithRoles) {
  auto refs = ts->FindReferences("acme", "alice@example.com");
  ASSERT_OK(refs);
  EXPECT_EQ(refs->size(), 40u);  // Alice takes part in every call ...
  int owner = 0;
  for (const auto& r : *refs) {
    EXPECT_TRUE(r.roles & kRoleParticipant);
    owner += (r.roles & kRoleOwner) ? 1 : 0;
  }
  EXPECT_EQ(owner, 10);  // ... and is its owner (user u-1) in every fourth
  auto all = ts->FindReferences("acme", "guest2@customer.example");
  ASSERT_OK(all);
  EXPECT_EQ(all->size(), 5u);
  EXPECT_CODE(ts->FindReferences("acme", "not a subject"), Code::kInvalidArgument);
}

TEST_F(QueryTest, EraseDryRunGuardDeleteAndRedact) {
  const std::string guest = "guest2@customer.example";
  auto dry = ts->Erase("acme", {.subject = guest, .dry_run = true});
  ASSERT_OK(dry);
  EXPECT_EQ(dry->matched, 5u);
  EXPECT_EQ(dry->changed, 0u);
  EXPECT_FALSE(dry->receipt.has_value());
  EXPECT_EQ(ts->FindReferences("acme", guest)->size(), 5u);
  EXPECT_CODE(ts->Erase("acme", {.subject = guest, .max_calls = 4}), Code::kResourceExhausted);
  EXPECT_EQ(ts->FindReferences("acme", guest)->size(), 5u);

  auto red = ts->Erase("acme", {.subject = guest, .mode = EraseMode::kRedact});
  ASSERT_OK(red);
  EXPECT_EQ(red->changed, 5u);
  ASSERT_TRUE(red->receipt.has_value());
  EXPECT_EQ(red->receipt->kind, "erasure_redact");
  EXPECT_EQ(red->receipt->Canonical().find(guest), std::string::npos);
  EXPECT_TRUE(ts->FindReferences("acme", guest)->empty());
  auto c = ts->GetCall("acme", "c2");
  ASSERT_OK(c);
  EXPECT_TRUE(c->participants[1].email.empty());
  EXPECT_TRUE(c->participants[1].name.empty());
  for (const auto& s : c->transcript) EXPECT_NE(s.speaker_id, 2u);
  EXPECT_EQ(*ts->CountCalls("acme"), 40u);

  auto del = ts->Erase("acme", {.subject = "guest3@customer.example"});
  ASSERT_OK(del);
  EXPECT_EQ(del->changed, 5u);
  EXPECT_EQ(*ts->CountCalls("acme"), 35u);
  EXPECT_CODE(ts->GetCall("acme", "c3"), Code::kNotFound);
  auto receipts = ts->ListReceipts();
  ASSERT_OK(receipts);
  EXPECT_EQ(receipts->size(), 2u);
  EXPECT_OK(VerifyReceiptChain(*receipts, *ts->SigningPublicKey()));
  auto v = ts->Verify("acme");
  ASSERT_OK(v);
  EXPECT_EQ(v->records_failed, 0u);
}

// Every sealed value of the tenant, read through a read-only RocksDB open.
std::set<std::string> SealedValues(const std::string& shard) {
  std::vector<std::string> names;
  EXPECT_TRUE(testutil::ListLiveColumnFamilies(shard, &names).ok());
  std::vector<rocksdb::ColumnFamilyDescriptor> descs;
  for (const auto& n : names) descs.emplace_back(n, rocksdb::ColumnFamilyOptions());
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  EXPECT_TRUE(rocksdb::DB::OpenForReadOnly(rocksdb::DBOptions(), shard, descs, &handles, &raw).ok());
  std::set<std::string> out;
  if (raw == nullptr) return out;
  for (auto* h : handles) {
    std::unique_ptr<rocksdb::Iterator> it(raw->NewIterator(rocksdb::ReadOptions(), h));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      if (it->value().size() >= 50) out.insert(it->value().ToString());
    }
  }
  for (auto* h : handles) raw->DestroyColumnFamilyHandle(h).PermitUncheckedError();
  delete raw;
  return out;
}

TEST_F(QueryTest, PhysicalEraseLeavesNoCiphertextInLiveFiles) {
  ASSERT_OK(ts->Flush());
  const std::string shard = ts->ShardPaths().at(0);
  std::set<std::string> before = SealedValues(shard);
  ASSERT_GT(before.size(), 100u);
  auto del = ts->Erase("acme", {.subject = "guest6@customer.example"});
  ASSERT_OK(del);
  EXPECT_EQ(del->changed, 5u);
  std::set<std::string> after = SealedValues(shard);
  ts.Close();
  // 5 calls x (metadata, summary, transcript, insights) are gone from the
  // store, and from every byte of every file under it (WAL, SST, blob).
  std::vector<std::string> gone;
  for (const auto& v : before) {
    if (!after.count(v)) gone.push_back(v);
  }
  EXPECT_EQ(gone.size(), 20u);
  std::vector<std::string> files = testutil::ListFiles(ts.db);
  for (const auto& f : files) {
    std::string data = testutil::ReadFile(f);
    for (const auto& v : gone) EXPECT_EQ(data.find(v), std::string::npos) << f;
  }
  // Positive control: a value still live is found in some file.
  bool found_live = false;
  for (const auto& f : files) found_live = found_live || testutil::ReadFile(f).find(*after.begin()) != std::string::npos;
  EXPECT_TRUE(found_live);
}

TEST_F(QueryTest, BadQueries) {
  ListQuery q;
  q.min_duration_ms = 10;
  q.max_duration_ms = 5;
  EXPECT_CODE(ts->ListCalls("acme", q), Code::kInvalidArgument);
  q = ListQuery{};
  q.participants = {"nonsense"};
  EXPECT_CODE(ts->ListCalls("acme", q), Code::kInvalidArgument);
  q = ListQuery{};
  q.owners = std::vector<std::string>(101, "u");
  EXPECT_CODE(ts->ListCalls("acme", q), Code::kInvalidArgument);
  // A cursor is bound to the filters too.
  q = ListQuery{};
  q.owners = {"u-1"};
  q.limit = 2;
  auto p = ts->ListCalls("acme", q);
  ASSERT_OK(p);
  q.owners = {"u-2"};
  q.cursor = p->next_cursor;
  EXPECT_CODE(ts->ListCalls("acme", q), Code::kInvalidArgument);
}

}  // namespace
}  // namespace callvault

namespace callvault {
namespace {

// A forged index entry (an owner entry naming another owner's call) is
// caught by the check of every returned call against the query.
TEST(QueryTamperTest, ForgedIndexEntryIsCorruptionNotAMatch) {
  testutil::TestStore ts;
  ASSERT_OK(ts.Open());
  ASSERT_OK(ts->CreateTenant({.tenant_id = "acme"}));
  Call a = testutil::MakeCall("a", kT0);
  a.owner_user_id = "u-a";
  Call b = testutil::MakeCall("b", kT0 + 1);
  b.owner_user_id = "u-b";
  ASSERT_OK(ts->PutCalls("acme", {a, b}));
  const std::string shard = ts->ShardPaths().at(0);
  const std::string cf = ts->DescribeTenant("acme")->column_family;
  ts.Close();
  {
    std::vector<std::string> names;
    ASSERT_TRUE(rocksdb::DB::ListColumnFamilies(rocksdb::DBOptions(), shard, &names).ok());
    std::vector<rocksdb::ColumnFamilyDescriptor> descs;
    for (const auto& n : names) descs.emplace_back(n, rocksdb::ColumnFamilyOptions());
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    rocksdb::DB* raw = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(rocksdb::DBOptions(), shard, descs, &handles, &raw).ok());
    rocksdb::ColumnFamilyHandle* h = nullptr;
    for (auto* x : handles) {
      if (x->GetName() == cf) h = x;
    }
    ASSERT_NE(h, nullptr);
    // The two owner entries: 'O' + h(owner)[16] + time[8] + h(call)[16].
    std::vector<std::string> owner_keys;
    std::unique_ptr<rocksdb::Iterator> it(raw->NewIterator(rocksdb::ReadOptions(), h));
    for (it->Seek("O"); it->Valid() && it->key().starts_with("O"); it->Next()) owner_keys.push_back(it->key().ToString());
    it.reset();
    ASSERT_EQ(owner_keys.size(), 2u);
    // Owner prefix of the first entry + time and call of the second.
    std::string forged = owner_keys[0].substr(0, 17) + owner_keys[1].substr(17);
    ASSERT_TRUE(raw->Put(rocksdb::WriteOptions(), h, forged, "").ok());
    for (auto* x : handles) raw->DestroyColumnFamilyHandle(x).PermitUncheckedError();
    delete raw;
  }
  ASSERT_OK(ts.Open());
  int corrupt = 0;
  for (const char* owner : {"u-a", "u-b"}) {
    ListQuery q;
    q.owners = {owner};
    auto page = ts->ListCalls("acme", q);
    if (!page.ok()) {
      EXPECT_CODE(page, Code::kCorruption);
      ++corrupt;
      continue;
    }
    for (const auto& c : page->calls) EXPECT_EQ(c.owner_user_id, owner);
  }
  EXPECT_EQ(corrupt, 1);
}

}  // namespace
}  // namespace callvault
