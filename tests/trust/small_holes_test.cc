// Issue 10 item 8, the smaller holes: redaction removes the subject's user id
// wherever the call names it as an owner (and the owner index entry), every
// instant is bounded, emails fold case by Unicode simple case folding
// everywhere a subject is hashed, and Options::clock decides deadlines but
// never stamps evidence.
#include <rocksdb/db.h>

#include <chrono>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "callvault/limits.h"
#include "callvault/store.h"
#include "tests/testutil/testutil.h"

namespace callvault {
namespace {

using testutil::MakeCall;
using testutil::TestStore;

constexpr int64_t kDay = int64_t{86400} * 1'000'000;
constexpr int64_t kT0 = 1'767'225'600'000'000;  // 2026-01-01

int64_t SystemNow() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

bool Mentions(const Status& s, const std::string& what) {
  return s.message().find(what) != std::string::npos;
}

// Keys of every tenant column family of every shard that start with
// `prefix`, read with RocksDB directly (the store closed).
size_t CountTenantKeys(const std::vector<std::string>& shard_paths, char prefix) {
  size_t n = 0;
  for (const auto& path : shard_paths) {
    std::vector<std::string> names;
    EXPECT_TRUE(rocksdb::DB::ListColumnFamilies(rocksdb::DBOptions(), path, &names).ok()) << path;
    std::vector<rocksdb::ColumnFamilyDescriptor> cfs;
    for (const auto& name : names) cfs.emplace_back(name, rocksdb::ColumnFamilyOptions());
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    rocksdb::DB* raw = nullptr;
    rocksdb::Status s = rocksdb::DB::OpenForReadOnly(rocksdb::DBOptions(), path, cfs, &handles, &raw);
    EXPECT_TRUE(s.ok()) << s.ToString();
    if (!s.ok()) continue;
    std::unique_ptr<rocksdb::DB> db(raw);
    for (auto* h : handles) {
      std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions(), h));
      for (it->Seek(std::string(1, prefix)); it->Valid() && it->key()[0] == prefix; it->Next()) ++n;
      EXPECT_TRUE(it->status().ok());
    }
    for (auto* h : handles) db->DestroyColumnFamilyHandle(h).PermitUncheckedError();
  }
  return n;
}

// --- Redaction removes owner ids --------------------------------------------

TEST(SmallHolesTest, RedactRemovesTheSubjectsOwnerIdsAndOwnerIndexEntry) {
  TestStore ts;
  ASSERT_OK(ts.Open());
  ASSERT_OK(ts->CreateTenant({.tenant_id = "acme"}));
  // alice@example.com is participant 0 with user id u-1, the call's owner
  // and the owner of its action item.
  ASSERT_OK(ts->PutCall("acme", MakeCall("owned-by-alice", kT0)));
  Call other = MakeCall("owned-by-carol", kT0 + kDay);
  other.owner_user_id = "u-3";
  other.participants[0].user_id = "u-2";  // alice here is someone else's account
  other.insights.action_items = {ActionItem{"follow up", "u-3"}, ActionItem{"call back", "u-2"}};
  ASSERT_OK(ts->PutCall("acme", other));

  auto refs = ts->FindReferences("acme", "alice@example.com");
  ASSERT_OK(refs);
  ASSERT_EQ(refs->size(), 2u);
  for (const auto& r : *refs) {
    EXPECT_EQ(static_cast<bool>(r.roles & kRoleOwner), r.call_id == "owned-by-alice") << r.call_id;
  }
  const std::vector<std::string> shards = ts->ShardPaths();

  auto erased = ts->Erase("acme", {.subject = "alice@example.com", .mode = EraseMode::kRedact});
  ASSERT_OK(erased);
  EXPECT_EQ(erased->changed, 2u);

  auto c = ts->GetCall("acme", "owned-by-alice", kPartAll);
  ASSERT_OK(c);
  EXPECT_EQ(c->owner_user_id, "") << "the subject's user id is still the call's owner";
  ASSERT_EQ(c->insights.action_items.size(), 1u);
  EXPECT_EQ(c->insights.action_items[0].owner_user_id, "") << "still the action item's owner";
  for (const auto& p : c->participants) EXPECT_NE(p.user_id, "u-1");

  auto o = ts->GetCall("acme", "owned-by-carol", kPartAll);
  ASSERT_OK(o);
  EXPECT_EQ(o->owner_user_id, "u-3");  // not the subject's
  ASSERT_EQ(o->insights.action_items.size(), 2u);
  EXPECT_EQ(o->insights.action_items[0].owner_user_id, "u-3");
  EXPECT_EQ(o->insights.action_items[1].owner_user_id, "") << "u-2 was the subject's user id in this call";

  // The owner filter no longer finds the call by the subject's user id.
  ListQuery q;
  q.owners = {"u-1"};
  auto page = ts->ListCalls("acme", q);
  ASSERT_OK(page);
  EXPECT_TRUE(page->calls.empty());
  q.owners = {"u-3"};
  page = ts->ListCalls("acme", q);
  ASSERT_OK(page);
  ASSERT_EQ(page->calls.size(), 1u);

  // And no role remains: the subject is gone from both calls.
  refs = ts->FindReferences("acme", "alice@example.com");
  ASSERT_OK(refs);
  EXPECT_TRUE(refs->empty());
  auto v = ts->Verify("acme");
  ASSERT_OK(v);
  EXPECT_EQ(v->records_failed, 0u);

  // On disk: one owner index entry (O|h(u-3)|...) is left, not two.
  ts.Close();
  EXPECT_EQ(CountTenantKeys(shards, 'O'), 1u);
}

// --- Instants are bounded -------------------------------------------------------

TEST(SmallHolesTest, EveryInstantIsBoundedAndNamedWhenOutOfRange) {
  TestStore ts;
  ASSERT_OK(ts.Open());
  ASSERT_OK(ts->CreateTenant({.tenant_id = "acme", .retention_days = 30}));
  ASSERT_OK(ts->PutCall("acme", MakeCall("ok", kT0)));
  const int64_t kMax = std::numeric_limits<int64_t>::max();

  // A call that would be counted but never listed and never expire.
  Call far = MakeCall("far", kMax);
  Status s = ts->PutCall("acme", far).status();
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_TRUE(Mentions(s, "started_at")) << s.ToString();
  far.started_at = limits::kMaxInstant;
  EXPECT_CODE(ts->PutCall("acme", far), Code::kInvalidArgument);
  far.started_at = limits::kMaxInstant - 1;  // the last instant accepted
  ASSERT_OK(ts->PutCall("acme", far));
  for (auto set : std::vector<std::pair<std::string, void (*)(Call&)>>{
           {"scheduled_start", [](Call& c) { c.scheduled_start = limits::kMaxInstant; }},
           {"scheduled_end", [](Call& c) { c.scheduled_end = std::numeric_limits<int64_t>::max(); }},
           {"created_at", [](Call& c) { c.created_at = limits::kMaxInstant + 5; }},
           {"updated_at", [](Call& c) { c.updated_at = -1; }},
       }) {
    Call c = MakeCall("bad-" + set.first, kT0);
    set.second(c);
    s = ts->PutCall("acme", c).status();
    EXPECT_EQ(s.code(), Code::kInvalidArgument) << set.first;
    EXPECT_TRUE(Mentions(s, set.first)) << s.ToString();
  }
  EXPECT_EQ(*ts->CountCalls("acme"), 2u);  // nothing written
  // Everything stored is listed by the default query.
  auto page = ts->ListCalls("acme", ListQuery{});
  ASSERT_OK(page);
  EXPECT_EQ(page->calls.size(), 2u);

  // The other instants: purge_at, and the `now` of the sweeps.
  s = ts->ScheduleTenantPurge("acme", kMax);
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_TRUE(Mentions(s, "purge_at")) << s.ToString();
  auto info = ts->DescribeTenant("acme");
  ASSERT_OK(info);
  EXPECT_EQ(info->purge_at, 0);
  EXPECT_EQ(info->churned_at, 0);
  auto r = ts->RunRetention(kMax);
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  EXPECT_TRUE(Mentions(r.status(), "now")) << r.status().ToString();
  auto p = ts->RunScheduledPurges(kMax);
  EXPECT_EQ(p.status().code(), Code::kInvalidArgument);
  EXPECT_TRUE(Mentions(p.status(), "now")) << p.status().ToString();
  EXPECT_CODE(ts->RunRetention(-1), Code::kInvalidArgument);
  EXPECT_EQ(*ts->CountCalls("acme"), 2u);
  // In range, retention works as before: the 2026 call is 30+ days old in
  // 2199, the far one is not.
  auto swept = ts->RunRetention(limits::kMaxInstant - 1);
  ASSERT_OK(swept);
  EXPECT_EQ(swept->calls_removed, 1u);
}

// --- Unicode simple case folding ------------------------------------------------

struct FoldCase {
  const char* stored;  // as the caller wrote it
  const char* asked;   // another spelling of the same address
};

TEST(SmallHolesTest, EmailsFoldCaseByUnicodeSimpleCaseFoldingEverywhere) {
  TestStore ts;
  ASSERT_OK(ts.Open());
  ASSERT_OK(ts->CreateTenant({.tenant_id = "acme"}));
  const std::vector<FoldCase> cases = {
      {"Bob@Example.COM", "bob@example.com"},                         // ASCII, as before
      {"\xc3\x84na@example.com", "\xc3\xa4na@example.com"},          // Latin-1: Ä / ä
      {"\xc3\x89LODIE@example.fr", "\xc3\xa9lodie@EXAMPLE.fr"},      // É / é
      {"\xc2\xb5-lab@example.com", "\xce\xbc-lab@example.com"},      // µ (micro) / Greek μ
      {"\xc5\x81ukasz@example.pl", "\xc5\x82ukasz@example.pl"},      // Latin Ext-A: Ł / ł
      {"\xc5\xb8ves@example.fr", "\xc3\xbfves@example.fr"},          // Ÿ (U+0178) / ÿ (U+00FF)
      {"\xc7\x84@example.com", "\xc7\x85@example.com"},              // Latin Ext-B: Ǆ / ǅ (both to ǆ)
      {"\xc8\xba@example.com", "\xe2\xb1\xa5@example.com"},          // Ⱥ (2 bytes) / ⱥ (3 bytes)
      {"\xce\xa3\xce\x9f\xce\xa6\xce\x99\xce\x91@example.gr",        // ΣΟΦΙΑ
       "\xcf\x83\xce\xbf\xcf\x86\xce\xb9\xce\xb1@example.gr"},       // σοφια
      {"\xce\xbd\xce\xb9\xce\xba\xce\xbf\xcf\x82@example.gr",        // νικος (final sigma)
       "\xce\x9d\xce\x99\xce\x9a\xce\x9f\xce\xa3@example.gr"},       // ΝΙΚΟΣ
      {"\xd0\x98\xd0\xb2\xd0\xb0\xd0\xbd@example.ru",                // Иван
       "\xd0\xb8\xd0\x92\xd0\x90\xd0\x9d@example.ru"},               // иВАН
      {"\xd0\x81\xd0\xb6@example.ru", "\xd1\x91\xd0\x96@example.ru"},  // Ёж / ёЖ (U+0401/0451)
      {"\xe1\xba\x9e" "ach@example.de", "\xc3\x9f" "ach@example.de"},  // ẞ (U+1E9E) / ß
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    Call c = MakeCall("fold-" + std::to_string(i), kT0 + static_cast<int64_t>(i));
    c.participants[1].email = cases[i].stored;
    ASSERT_OK(ts->PutCall("acme", c));
  }
  for (size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE(i);
    for (const char* spelling : {cases[i].stored, cases[i].asked}) {
      auto refs = ts->FindReferences("acme", spelling);
      ASSERT_OK(refs);
      ASSERT_EQ(refs->size(), 1u) << "a spelling of case " << i << " misses its call";
      EXPECT_EQ((*refs)[0].call_id, "fold-" + std::to_string(i));
      ListQuery q;
      q.participants = {spelling};
      auto page = ts->ListCalls("acme", q);
      ASSERT_OK(page);
      EXPECT_EQ(page->calls.size(), 1u);
    }
  }
  // The stored form is the folded one: the two spellings read back equal.
  auto got = ts->GetCall("acme", "fold-1", kPartParticipants);
  ASSERT_OK(got);
  EXPECT_EQ(got->participants[1].email, "\xc3\xa4na@example.com");

  // Not folded (documented): the Turkic dotted capital I (status T/F only),
  // and ß is not "ss" (full folding is not used).
  Call turkic = MakeCall("turkic", kT0 + kDay);
  turkic.participants[1].email = "\xc4\xb0pek@example.com";  // İpek
  ASSERT_OK(ts->PutCall("acme", turkic));
  EXPECT_TRUE(ts->FindReferences("acme", "ipek@example.com")->empty());
  EXPECT_EQ(ts->FindReferences("acme", "\xc4\xb0PEK@example.com")->size(), 1u);
  EXPECT_TRUE(ts->FindReferences("acme", "sach@example.de")->empty());
  EXPECT_TRUE(ts->FindReferences("acme", "ssach@example.de")->empty());

  // Erasure by the other spelling reaches the call (the reported hole:
  // an erasure for äna@ missed Äna@).
  auto erased = ts->Erase("acme", {.subject = "\xc3\xa4NA@EXAMPLE.COM", .mode = EraseMode::kDelete});
  ASSERT_OK(erased);
  EXPECT_EQ(erased->changed, 1u);
  EXPECT_EQ(ts->GetCall("acme", "fold-1", kPartMetadata).status().code(), Code::kNotFound);

  // Invalid UTF-8: rejected with a specific error naming the field, nothing
  // changed and the bytes not echoed.
  const uint64_t before = *ts->CountCalls("acme");
  for (const char* bad : {"\xc3@example.com", "a\xff@example.com", "\xc0\xaf@example.com",
                          "\xed\xa0\x80@example.com", "\xf4\x90\x80\x80@example.com"}) {
    SCOPED_TRACE(bad);
    auto f = ts->FindReferences("acme", bad);
    EXPECT_EQ(f.status().code(), Code::kInvalidArgument);
    EXPECT_EQ(f.status().message(), "subject: not valid UTF-8");
    auto e = ts->Erase("acme", {.subject = bad});
    EXPECT_EQ(e.status().code(), Code::kInvalidArgument);
    EXPECT_EQ(e.status().message(), "subject: not valid UTF-8");
    Call c = MakeCall("bad-utf8", kT0);
    c.participants[1].email = bad;
    Status p = ts->PutCall("acme", c).status();
    EXPECT_EQ(p.code(), Code::kInvalidArgument);
    EXPECT_EQ(p.message(), "participants[1].email: not valid UTF-8");
  }
  EXPECT_EQ(*ts->CountCalls("acme"), before);
}

// --- Options::clock decides deadlines, never stamps evidence ---------------------

TEST(SmallHolesTest, ClockDrivesDeadlinesButEvidenceUsesTheSystemClock) {
  TestStore ts;
  const int64_t fake = int64_t{978'307'200'000'000};  // 2001-01-01: far from now
  int64_t clock = fake;
  ts.options.clock = [&clock] { return clock; };
  const int64_t t0 = SystemNow();
  ASSERT_OK(ts.Open());
  ASSERT_OK(ts->CreateTenant({.tenant_id = "acme"}));
  ASSERT_OK(ts->CreateTenant({.tenant_id = "globex"}));
  ASSERT_OK(ts->PlaceHold("globex", {.hold_id = "h1", .reason = "litigation"}));
  // The churn schedule follows the clock: a deadline in its future is
  // accepted and not yet due.
  ASSERT_OK(ts->ScheduleTenantPurge("acme", fake + kDay));
  auto info = ts->DescribeTenant("acme");
  ASSERT_OK(info);
  EXPECT_EQ(info->churned_at, fake);
  auto due = ts->RunScheduledPurges(clock);
  ASSERT_OK(due);
  EXPECT_TRUE(due->empty());
  clock = fake + kDay;
  due = ts->RunScheduledPurges(clock);
  ASSERT_OK(due);
  ASSERT_EQ(due->size(), 1u);
  const int64_t t1 = SystemNow();

  auto in_now = [&](int64_t t) { return t >= t0 && t <= t1; };
  EXPECT_TRUE(in_now((*due)[0].time)) << "receipt time " << (*due)[0].time << " is not the system clock";
  auto g = ts->DescribeTenant("globex");
  ASSERT_OK(g);
  EXPECT_TRUE(in_now(g->created_at)) << "tenant created_at " << g->created_at;
  ASSERT_EQ(g->holds.size(), 1u);
  EXPECT_TRUE(in_now(g->holds[0].created_at)) << "hold created_at " << g->holds[0].created_at;
  auto events = ts->ListAudit();
  ASSERT_OK(events);
  ASSERT_FALSE(events->empty());
  for (const auto& e : *events) EXPECT_TRUE(in_now(e.time)) << e.kind << " at " << e.time;
  auto receipts = ts->ListReceipts();
  ASSERT_OK(receipts);
  for (const auto& r : *receipts) EXPECT_TRUE(in_now(r.time)) << r.kind;
}

}  // namespace
}  // namespace callvault
