// Dictionary training off the write path (docs/decisions/0045, issue 14
// item 4): the put that brings a tenant to the threshold only queues it, a
// training thread trains it; a purge, a key rotation or Close racing a
// queued or running job leaves every record readable and never a 'Z' row
// in the wrong family (a dropped one, a new incarnation's, or sealed under a
// key the family is no longer under). The races are placed with the
// training hook (engine/dictionary_training.h), never with sleeps.
#include "engine/dictionary_training.h"

#include <gtest/gtest.h>

#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "callvault/metrics.h"
#include "callvault/store.h"
#include "engine/crypto.h"
#include "engine/rotate_internal.h"
#include "format/rowkey.h"
#include "tests/testutil/calls.h"
#include "tests/testutil/raw_shard.h"
#include "tests/testutil/testutil.h"
#include "workload/workload.h"

namespace callvault {
namespace {

using testutil::RawShard;

constexpr size_t kThreshold = 60;

std::vector<Call> Calls(size_t n, uint64_t seed, const std::string& prefix) {
  return testutil::GeneratedCalls(n, seed, prefix);
}

// The training hook: records which thread reached each phase, and holds the
// first job that reaches `block_at` until Release().
class Gate {
 public:
  explicit Gate(std::string block_at) : block_at_(std::move(block_at)) {
    testing::SetDictionaryTrainingHookForTest([this](const char* phase) { Hook(phase); });
  }
  ~Gate() {
    Release();
    testing::SetDictionaryTrainingHookForTest(nullptr);
  }
  void Hook(const char* phase) {
    std::unique_lock<std::mutex> l(mu_);
    threads_[phase].insert(std::this_thread::get_id());
    ++count_[phase];
    cv_.notify_all();
    if (!blocked_once_ && phase == block_at_) {
      blocked_once_ = true;
      cv_.wait(l, [this] { return released_; });
    }
  }
  // Waits until `phase` was reached `n` times (false after 60 s).
  bool WaitFor(const std::string& phase, int n = 1) {
    std::unique_lock<std::mutex> l(mu_);
    return cv_.wait_for(l, std::chrono::seconds(60), [&] { return count_[phase] >= n; });
  }
  void Release() {
    std::lock_guard<std::mutex> l(mu_);
    released_ = true;
    cv_.notify_all();
  }
  int Count(const std::string& phase) {
    std::lock_guard<std::mutex> l(mu_);
    return count_[phase];
  }
  std::set<std::thread::id> Threads(const std::string& phase) {
    std::lock_guard<std::mutex> l(mu_);
    return threads_[phase];
  }

 private:
  const std::string block_at_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, std::set<std::thread::id>> threads_;
  std::map<std::string, int> count_;
  bool blocked_once_ = false;
  bool released_ = false;
};

class DictionaryTrainingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    crypto::Init();
    ts_.options.dictionary_training_calls = kThreshold;
    // The writer's own compression: the tests read which records a writer
    // sealed with the dictionary (with the default, decision 0052, the
    // flush decides; reseal_test.cc).
    ts_.options.defer_compression = false;
    ASSERT_TRUE(ts_.Open().ok());
    ASSERT_TRUE(ts_->CreateTenant({.tenant_id = "acme"}).ok());
    ASSERT_TRUE(ts_->CreateTenant({.tenant_id = "other"}).ok());
    calls_ = Calls(kThreshold + 40, 7, "call-");
  }

  void Put(const std::string& tenant, const std::vector<Call>& calls, size_t from, size_t to) {
    for (size_t i = from; i < to; i += 10) {
      std::vector<Call> b(calls.begin() + static_cast<long>(i),
                          calls.begin() + static_cast<long>(std::min(to, i + 10)));
      auto r = ts_->PutCalls(tenant, b);
      ASSERT_TRUE(r.ok()) << r.status().ToString();
    }
  }

  StoreStats::DictionaryTraining Training() {
    auto st = ts_->Stats();
    EXPECT_TRUE(st.ok()) << st.status().ToString();
    return st.ok() ? st->dictionary_training : StoreStats::DictionaryTraining{};
  }

  // family -> its 'Z' keys, every family of every shard (store closed).
  std::map<std::string, size_t> DictionaryRows() {
    std::map<std::string, size_t> out;
    for (const auto& path : shards_) {
      RawShard raw(path, /*read_only=*/true);
      EXPECT_TRUE(raw.status().ok()) << raw.status().ToString();
      for (const auto& f : raw.Families()) {
        const size_t n = raw.Keys(f, std::string(1, format::kDictionaryPrefix)).size();
        if (n > 0) out[f] = n;
      }
    }
    return out;
  }
  void Close() {
    shards_ = ts_->ShardPaths();
    ts_.Close();
  }
  std::string Family(const std::string& tenant) {
    auto info = ts_->DescribeTenant(tenant);
    EXPECT_TRUE(info.ok());
    return info.ok() ? info->column_family : "";
  }

  void ExpectReadable(const std::string& tenant, const std::vector<Call>& calls, size_t n) {
    for (size_t i = 0; i < n; ++i) {
      auto r = ts_->GetCall(tenant, calls[i].call_id, kPartAll);
      ASSERT_TRUE(r.ok()) << i << ": " << r.status().ToString();
      EXPECT_EQ(r->transcript, calls[i].transcript) << i;
      EXPECT_EQ(r->title, calls[i].title) << i;
    }
  }
  void ExpectVerifyClean() {
    auto report = ts_->Verify(std::nullopt);
    ASSERT_TRUE(report.ok()) << report.status().ToString();
    EXPECT_EQ(report->records_failed, 0u);
    for (const auto& f : report->failures) ADD_FAILURE() << f;
  }

  // Closes the store, compares the 'Z' rows of every family with `rows`,
  // reopens it: the first `n` of `calls` of `tenant` read back, Verify clean.
  void CheckAfterReopen(const std::map<std::string, size_t>& rows, const std::string& tenant,
                        const std::vector<Call>& calls, size_t n) {
    Close();
    EXPECT_EQ(DictionaryRows(), rows);
    ASSERT_TRUE(ts_.Open().ok());
    ExpectReadable(tenant, calls, n);
    ExpectVerifyClean();
  }

  testutil::TestStore ts_;
  std::vector<std::string> shards_;
  std::vector<Call> calls_;
};

// The crossing put returns while its training is held on the training
// thread (so the put did not train); the tenant is queued once however many
// puts follow; the trained dictionary is used by later records, counted in
// Stats() and the metrics.
TEST_F(DictionaryTrainingTest, CrossingPutOnlyQueuesAndThePoolTrains) {
  Gate gate("sampled");
  Put("acme", calls_, 0, kThreshold - 10);
  EXPECT_EQ(gate.Count("queued"), 0);
  Put("acme", calls_, kThreshold - 10, kThreshold);  // reaches the threshold
  ASSERT_EQ(gate.Count("queued"), 1);
  EXPECT_EQ(gate.Threads("queued"), std::set<std::thread::id>{std::this_thread::get_id()});
  ASSERT_TRUE(gate.WaitFor("sampled"));
  // The job is held after its sampling: nothing trained, the put returned.
  auto tr = Training();
  EXPECT_EQ(tr.running, 1u);
  EXPECT_EQ(tr.queued, 0u);
  EXPECT_EQ(tr.trained, 0u);
  EXPECT_EQ(gate.Count("trained"), 0);
  // More puts meanwhile: no second job for the tenant.
  Put("acme", calls_, kThreshold, kThreshold + 20);
  EXPECT_EQ(gate.Count("queued"), 1);
  tr = Training();
  EXPECT_EQ(tr.queued, 0u);
  EXPECT_EQ(tr.running, 1u);
  auto m = ts_->Metrics();
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->dictionary_training_queue, 1u);
  gate.Release();
  ASSERT_TRUE(testutil::WaitForDictionaryTraining(*ts_.store));
  tr = Training();
  EXPECT_EQ(tr.trained, 1u);
  EXPECT_EQ(tr.failed, 0u);
  EXPECT_EQ(tr.given_up, 0u);
  // Trained on the training thread: the one that sampled, not this one.
  const auto trained_on = gate.Threads("trained");
  ASSERT_EQ(trained_on.size(), 1u);
  EXPECT_EQ(trained_on, gate.Threads("sampled"));
  EXPECT_EQ(trained_on.count(std::this_thread::get_id()), 0u);
  m = ts_->Metrics();
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->dictionary_trainings, 1u);
  EXPECT_EQ(m->dictionary_training_queue, 0u);
  EXPECT_NE(RenderPrometheus(*m).find("callvault_dictionary_trainings_total 1\n"),
            std::string::npos);
  Put("acme", calls_, kThreshold + 20, calls_.size());
  const std::string acme = Family("acme");
  auto info = ts_->DescribeTenant("acme");
  ASSERT_TRUE(info.ok());
  const uint32_t shard = info->shard;
  Close();
  // One dictionary row, in acme's family; the records written after it
  // name it (codec 2), those before do not.
  EXPECT_EQ(DictionaryRows(), (std::map<std::string, size_t>{{acme, 1}}));
  {
    RawShard raw(shards_[shard], true);
    std::map<uint8_t, size_t> codecs;
    for (const auto& [k, v] : raw.Scan(acme)) {
      auto ck = format::ParseCallKey(k);
      if (ck && ck->part == format::Part::kMeta) ++codecs[static_cast<uint8_t>(v[1])];
    }
    EXPECT_EQ(codecs[1], kThreshold + 20);
    EXPECT_EQ(codecs[2], calls_.size() - kThreshold - 20);
  }
  ASSERT_TRUE(ts_.Open().ok());
  ExpectReadable("acme", calls_, calls_.size());
  ExpectVerifyClean();
}

// Purged while its training runs (between the training and the write, no
// tenant lock held: the purge does not wait for it), and created again
// under the same id: the job gives up; no row in the new incarnation's
// family, the old one dropped.
TEST_F(DictionaryTrainingTest, PurgeAndRecreateWhileTrainingRuns) {
  Gate gate("trained");
  Put("acme", calls_, 0, kThreshold);
  ASSERT_TRUE(gate.WaitFor("trained"));
  const std::string old_family = Family("acme");
  ASSERT_TRUE(ts_->PurgeTenant("acme").ok());
  ASSERT_TRUE(ts_->CreateTenant({.tenant_id = "acme"}).ok());
  const std::string new_family = Family("acme");
  ASSERT_NE(new_family, old_family);
  Put("acme", calls_, 0, 10);
  gate.Release();
  ASSERT_TRUE(testutil::WaitForDictionaryTraining(*ts_.store));
  auto tr = Training();
  EXPECT_EQ(tr.trained, 0u);
  EXPECT_EQ(tr.given_up, 1u);
  CheckAfterReopen({}, "acme", calls_, 10);
}

// Purged while queued behind another tenant's job: given up; the other
// tenant's dictionary is trained and stored in its own family.
TEST_F(DictionaryTrainingTest, PurgeWhileQueued) {
  Gate gate("sampled");
  const auto others = Calls(kThreshold, 9, "o-");
  Put("other", others, 0, kThreshold);
  ASSERT_TRUE(gate.WaitFor("sampled"));
  Put("acme", calls_, 0, kThreshold);
  EXPECT_EQ(Training().queued, 1u);
  ASSERT_TRUE(ts_->PurgeTenant("acme").ok());
  gate.Release();
  ASSERT_TRUE(testutil::WaitForDictionaryTraining(*ts_.store));
  auto tr = Training();
  EXPECT_EQ(tr.trained, 1u);
  EXPECT_EQ(tr.given_up, 1u);
  const std::string other = Family("other");
  CheckAfterReopen({{other, 1}}, "other", others, others.size());
}

// A key rotation runs whole between the training and the write: the row is
// sealed under the key the family is under when it is written (the new
// one), in the new family; Verify opens it; records read after a reopen.
TEST_F(DictionaryTrainingTest, RotationBetweenTrainingAndWrite) {
  Gate gate("trained");
  Put("acme", calls_, 0, kThreshold);
  ASSERT_TRUE(gate.WaitFor("trained"));
  const std::string old_family = Family("acme");
  ASSERT_TRUE(ts_->RotateTenantKey("acme").ok());
  const std::string new_family = Family("acme");
  ASSERT_NE(new_family, old_family);
  gate.Release();
  ASSERT_TRUE(testutil::WaitForDictionaryTraining(*ts_.store));
  EXPECT_EQ(Training().trained, 1u);
  Put("acme", calls_, kThreshold, calls_.size());
  CheckAfterReopen({{new_family, 1}}, "acme", calls_, calls_.size());
}

// The row is written while a rotation copies the tenant (served, phase 2):
// the rotation's held phase copies it, re-sealed under the new key; the
// records that name it read after the switch and a reopen.
TEST_F(DictionaryTrainingTest, RowWrittenDuringARotationsCopy) {
  Gate gate("trained");
  Put("acme", calls_, 0, kThreshold);
  ASSERT_TRUE(gate.WaitFor("trained"));
  const std::string old_family = Family("acme");
  testing::SetRotationHookForTest([&](const char* phase) {
    if (std::string_view(phase) != "phase2") return;
    gate.Release();
    ASSERT_TRUE(gate.WaitFor("done"));
  });
  auto rotated = ts_->RotateTenantKey("acme");
  testing::SetRotationHookForTest(nullptr);
  ASSERT_TRUE(rotated.ok()) << rotated.status().ToString();
  EXPECT_EQ(Training().trained, 1u);
  const std::string new_family = Family("acme");
  ASSERT_NE(new_family, old_family);
  Put("acme", calls_, kThreshold, calls_.size());
  CheckAfterReopen({{new_family, 1}}, "acme", calls_, calls_.size());
}

// Close while a job runs (held before its write) and another is queued:
// Close waits for the running one (which gives up or finishes) and drops
// the queued one; nothing is lost; after a reopen the next put queues the
// tenant again and it is trained.
TEST_F(DictionaryTrainingTest, CloseWithARunningAndAQueuedJob) {
  Gate gate("trained");
  const auto others = Calls(kThreshold, 9, "o-");
  Put("other", others, 0, kThreshold);
  ASSERT_TRUE(gate.WaitFor("trained"));
  Put("acme", calls_, 0, kThreshold);
  EXPECT_EQ(Training().queued, 1u);
  shards_ = ts_->ShardPaths();
  std::thread closer([&] { ts_.Close(); });
  gate.Release();
  closer.join();
  const auto rows = DictionaryRows();
  for (const auto& [family, n] : rows) EXPECT_EQ(n, 1u) << family;
  EXPECT_LE(rows.size(), 1u) << "the queued job ran after Close";
  ASSERT_TRUE(ts_.Open().ok());
  ExpectReadable("other", others, others.size());
  ExpectReadable("acme", calls_, kThreshold);
  ExpectVerifyClean();
  // The threshold is counted again at the first put after the open.
  Put("acme", calls_, kThreshold, kThreshold + 10);
  ASSERT_TRUE(testutil::WaitForDictionaryTraining(*ts_.store));
  EXPECT_EQ(Training().trained, 1u);
  const std::string acme = Family("acme");
  Close();
  EXPECT_EQ(DictionaryRows().count(acme), 1u);
}

// Options::dictionary_training_threads = 0: the crossing put trains, as
// before decision 0045 (nothing queued; trained when the put returns).
TEST_F(DictionaryTrainingTest, NoThreadsTrainsInThePut) {
  Gate gate("never");
  ts_.options.dictionary_training_threads = 0;
  ASSERT_TRUE(ts_.Reopen().ok());
  Put("acme", calls_, 0, kThreshold);
  auto tr = Training();
  EXPECT_EQ(tr.trained, 1u);
  EXPECT_EQ(tr.queued + tr.running, 0u);
  EXPECT_EQ(gate.Count("queued"), 0);
  EXPECT_EQ(gate.Count("sampled"), 0);
}

}  // namespace
}  // namespace callvault
