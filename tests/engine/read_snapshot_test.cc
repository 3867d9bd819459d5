// Point reads register no RocksDB snapshot (docs/decisions/0058).
//
// RocksDB 7.8.3: when the last registered snapshot is released, every
// bottommost table file whose sequence numbers are all below the new oldest
// snapshot is marked for a compaction that only zeroes them, and that
// compaction is scheduled from inside ReleaseSnapshot. A small tenant's
// flushed files are all bottommost, so GetCall taking a snapshot made every
// get after a flush rewrite that flush's files: the bytes flushes wrote,
// written twice. The test counts the compaction jobs scheduled on the
// store's Env (Options::env) while it reads flushed calls: none may be.
#include <gtest/gtest.h>
#include <rocksdb/env.h>

#include <atomic>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "callvault/store.h"
#include "tests/testutil/calls.h"
#include "tests/testutil/testutil.h"

namespace callvault {
namespace {

// Counts jobs scheduled on the low-priority (compaction) pool.
class CountingEnv : public rocksdb::EnvWrapper {
 public:
  CountingEnv() : EnvWrapper(rocksdb::Env::Default()) {}
  const char* Name() const override { return "CountingEnv"; }
  void Schedule(void (*f)(void* arg), void* a, Priority pri, void* tag,
                void (*u)(void* arg)) override {
    if (pri == Priority::LOW) low_.fetch_add(1);
    target()->Schedule(f, a, pri, tag, u);
  }
  int low() const { return low_.load(); }

 private:
  std::atomic<int> low_{0};
};

TEST(ReadSnapshotTest, GetsOfFlushedCallsScheduleNoCompaction) {
  CountingEnv env;
  testutil::TestStore ts;
  ts.options.env = &env;
  ASSERT_OK(ts.Open());
  ASSERT_OK(ts->CreateTenant({.tenant_id = "acme"}));
  const auto calls = testutil::GeneratedCalls(20, 11, "c-");
  ASSERT_OK(ts->PutCalls("acme", calls));
  ASSERT_OK(ts->Flush());  // one bottommost L0 file per family, nothing to compact
  // Writes go on (they move the sequence past the flushed files'); this one
  // stays in the memtable.
  ASSERT_OK(ts->PutCall("acme", testutil::GeneratedCalls(1, 12, "later-")[0]));
  const int before = env.low();
  std::vector<std::string> ids;
  for (const auto& c : calls) {
    auto got = ts->GetCall("acme", c.call_id, kPartAll);
    ASSERT_OK(got);
    EXPECT_EQ(got->transcript.size(), c.transcript.size());
    ids.push_back(c.call_id);
  }
  auto many = ts->GetCalls("acme", ids, kPartAll);
  ASSERT_OK(many);
  for (const auto& r : *many) ASSERT_OK(r);
  EXPECT_EQ(env.low(), before) << "a get scheduled a compaction (a released snapshot marked the "
                                  "flushed files for a rewrite)";
}

// The same reads still come from one point in time per call: while a
// writer replaces calls with another generation of the same ids (other
// title, transcript and insights) and deletes some, every read is whole
// and of one generation, or kNotFound.
TEST(ReadSnapshotTest, ReadsUnderWritersSeeOneGenerationOfEachCall) {
  testutil::TestStore ts;
  ASSERT_OK(ts.Open());
  ASSERT_OK(ts->CreateTenant({.tenant_id = "acme"}));
  const auto first = testutil::GeneratedCalls(8, 12, "c-");
  const auto second = testutil::GeneratedCalls(8, 13, "c-");  // same ids, other content
  std::map<std::string, const Call*> by_title;
  for (const auto* gen : {&first, &second}) {
    for (const auto& c : *gen) {
      ASSERT_FALSE(c.transcript.empty());
      ASSERT_TRUE(by_title.emplace(c.title, &c).second) << "titles must tell the generations apart";
    }
  }
  ASSERT_OK(ts->PutCalls("acme", first));
  auto check = [&](const Call& got) {
    auto it = by_title.find(got.title);
    ASSERT_NE(it, by_title.end()) << "a title of neither generation";
    const Call& want = *it->second;
    ASSERT_EQ(got.call_id, want.call_id);
    ASSERT_EQ(got.transcript.size(), want.transcript.size()) << "transcript of the other generation";
    ASSERT_EQ(got.transcript.front().text, want.transcript.front().text);
    ASSERT_EQ(got.insights.summary, want.insights.summary) << "insights of the other generation";
  };
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    for (int round = 0; round < 60; ++round) {
      const auto& batch = round % 2 ? first : second;
      for (const auto& c : batch) {
        if (!ts->PutCall("acme", c).ok()) ADD_FAILURE() << "put";
      }
      if (round % 5 == 4 && !ts->DeleteCall("acme", batch[round % batch.size()].call_id).ok()) {
        ADD_FAILURE() << "delete";
      }
      if (round % 7 == 6 && !ts->Flush().ok()) ADD_FAILURE() << "flush";
    }
    stop = true;
  });
  std::vector<std::string> ids;
  for (const auto& c : first) ids.push_back(c.call_id);
  size_t whole = 0;
  while (!stop.load()) {
    for (const auto& id : ids) {
      auto got = ts->GetCall("acme", id, kPartAll);
      if (!got.ok()) {
        ASSERT_EQ(got.status().code(), Code::kNotFound) << got.status().ToString();
        continue;
      }
      ++whole;
      check(*got);
    }
    auto many = ts->GetCalls("acme", ids, kPartAll);
    ASSERT_OK(many);
    for (const auto& r : *many) {
      if (r.ok()) check(*r);
      else ASSERT_EQ(r.status().code(), Code::kNotFound) << r.status().ToString();
    }
  }
  writer.join();
  EXPECT_GT(whole, 0u);
}

}  // namespace
}  // namespace callvault
