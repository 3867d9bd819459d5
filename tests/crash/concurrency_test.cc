// T7 (testing.md): purge under load.
//
// Worker threads put, get and list calls of several tenants while a purger
// thread purges tenants and creates them again. Every call carries a canary
// naming its tenant and the tenant's incarnation (how many times the id was
// created). Checked on every operation:
//   - a read or list never returns another tenant's canary;
//   - a read or list that started after PurgeTenant of incarnation k
//     returned never returns data of incarnation k or older (the purger
//     publishes "purged up to k" after PurgeTenant returns; a reader loads it
//     before it starts);
//   - one call's parts (metadata, transcript, insights) carry one canary;
//     one page holds one incarnation;
//   - errors are only the expected ones: kTenantPurged (the tenant is being
//     or was purged), kNotFound (a call not written in this incarnation),
//     and kInvalidArgument for a cursor of an incarnation purged meanwhile;
//   - PurgeTenant and CreateTenant always succeed; right after a purge the
//     tenant's reads and puts get kTenantPurged;
//   - at the end every record decrypts (Verify) before and after a reopen.
// Writers stamp the incarnation they read under a per-tenant gate that the
// purger takes only around CreateTenant, so a put can never land in an
// incarnation newer than its stamp; puts still race with the purge itself.
//
// make test: 10 s. CALLVAULT_SOAK=1: 120 s. CALLVAULT_T7_SECONDS=N overrides.
// .ci/run also runs it 120 s under TSan (make t7-tsan; races are decided by
// tests/crash/tsan_report_filter.cc, see tsan.supp) and 120 s under ASan +
// UBSan (make t7-asan).
#include <atomic>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <random>
#include <shared_mutex>
#include <thread>

#include "callvault/store.h"
#include "tests/crash/crash_util.h"
#include "tests/testutil/testutil.h"

namespace callvault {
namespace {

constexpr int64_t kT0 = 1'767'225'600'000'000;  // 2026-01-01T00:00:00Z
constexpr int kTenantCount = 8;
constexpr int kWorkers = 16;
constexpr int kCallSlots = 24;

std::string TenantName(int t) { return "tenant-" + std::to_string(t); }
std::string CallId(int idx) { return "call-" + std::to_string(idx); }
std::string Canary(int t, uint32_t inc) {
  return "CANARY{" + std::to_string(t) + ":" + std::to_string(inc) + "}";
}

struct Stamp {
  int tenant = -1;
  uint32_t incarnation = 0;
  bool operator==(const Stamp&) const = default;
};

// The canary in `text`, if any.
std::optional<Stamp> ParseCanary(const std::string& text) {
  size_t p = text.find("CANARY{");
  if (p == std::string::npos) return std::nullopt;
  Stamp s;
  if (std::sscanf(text.c_str() + p, "CANARY{%d:%u}", &s.tenant, &s.incarnation) != 2)
    return std::nullopt;
  return s;
}

Call CanaryCall(int t, uint32_t inc, int idx, uint64_t n) {
  Call c = testutil::MakeCall(CallId(idx),
                              kT0 + static_cast<int64_t>(idx) * 1000 + static_cast<int64_t>(n % 7),
                              Canary(t, inc));
  c.transcript.resize(3 + n % 5);
  return c;
}

class PurgeUnderLoad {
 public:
  explicit PurgeUnderLoad(Store* st, uint64_t seed) : st_(st), seed_(seed) {
    for (int t = 0; t < kTenantCount; ++t) incarnation_[t] = 1;
  }

  void Run(std::chrono::seconds duration) {
    stop_at_ = std::chrono::steady_clock::now() + duration;
    std::vector<std::thread> threads;
    for (int i = 0; i < kWorkers; ++i) threads.emplace_back([this, i] { Worker(i); });
    threads.emplace_back([this] { Purger(); });
    for (auto& th : threads) th.join();
  }

  std::vector<std::string> violations() {
    std::lock_guard<std::mutex> l(mu_);
    return violations_;
  }
  std::string Summary() const {
    char buf[512];
    std::snprintf(buf, sizeof buf,
                  "puts %llu ok / %llu purged; gets %llu ok / %llu not found / %llu purged; lists "
                  "%llu ok / %llu purged / %llu stale cursor, %llu calls listed; purges %llu",
                  (unsigned long long)puts_ok_, (unsigned long long)puts_purged_,
                  (unsigned long long)gets_ok_, (unsigned long long)gets_missing_,
                  (unsigned long long)gets_purged_, (unsigned long long)lists_ok_,
                  (unsigned long long)lists_purged_, (unsigned long long)lists_stale_,
                  (unsigned long long)listed_, (unsigned long long)purges_);
    return buf;
  }
  // Whether the run raced what it is meant to race: puts, gets and lists
  // that worked and purges, and operations that met a purge. A run that did
  // next to nothing (a stuck worker, a starved machine) proves nothing.
  std::string TooLittle() const {
    std::string why;
    if (puts_ok_ < 100) why += " puts ok " + std::to_string(puts_ok_.load()) + " < 100;";
    if (gets_ok_ < 100) why += " gets ok " + std::to_string(gets_ok_.load()) + " < 100;";
    if (lists_ok_ < 100) why += " lists ok " + std::to_string(lists_ok_.load()) + " < 100;";
    if (purges_ < 5) why += " purges " + std::to_string(purges_.load()) + " < 5;";
    if (puts_purged_ + gets_purged_ + lists_purged_ == 0) why += " no operation met a purge;";
    return why;
  }

 private:
  bool Running() const { return std::chrono::steady_clock::now() < stop_at_ && !abort_; }

  void Violation(std::string m) {
    std::lock_guard<std::mutex> l(mu_);
    if (violations_.size() < 50) violations_.push_back(std::move(m));
    if (violations_.size() >= 50) abort_ = true;
  }

  // Checks one returned call: its tenant, an incarnation not yet purged when
  // the read started, and one canary across its parts.
  void CheckCall(const Call& c, int t, uint32_t purged_before, const char* what,
                 std::optional<Stamp>* page_stamp = nullptr) {
    std::optional<Stamp> s = ParseCanary(c.title);
    if (!s) {
      Violation(std::string(what) + ": " + TenantName(t) + " returned a call without a canary");
      return;
    }
    if (s->tenant != t) {
      Violation(std::string(what) + ": " + TenantName(t) + " returned tenant " +
                std::to_string(s->tenant) + "'s call (cross-tenant leak)");
    }
    if (s->incarnation <= purged_before) {
      Violation(std::string(what) + ": " + TenantName(t) + " returned incarnation " +
                std::to_string(s->incarnation) + " after the purge of incarnation " +
                std::to_string(purged_before) + " returned");
    }
    for (const auto& seg : c.transcript) {
      if (!(ParseCanary(seg.text) == s))
        Violation(std::string(what) + ": transcript canary differs");
    }
    if (!c.insights.summary.empty() && !(ParseCanary(c.insights.summary) == s)) {
      Violation(std::string(what) + ": insights canary differs");
    }
    if (page_stamp) {
      if (*page_stamp && !(**page_stamp == *s)) Violation("list: one page mixes incarnations");
      *page_stamp = s;
    }
  }

  void Worker(int id) {
    std::mt19937_64 rng(seed_ + static_cast<uint64_t>(id) * 7919);
    uint64_t n = 0;
    while (Running()) {
      const int t = static_cast<int>(rng() % kTenantCount);
      const int idx = static_cast<int>(rng() % kCallSlots);
      const int r = static_cast<int>(rng() % 100);
      ++n;
      if (r < 40) {
        Put(t, idx, n, rng);
      } else if (r < 80) {
        Get(t, idx);
      } else {
        List(t, rng);
      }
    }
  }

  void Put(int t, int idx, uint64_t n, std::mt19937_64& rng) {
    if (recreating_[t].load()) return;  // do not starve the purger of the gate
    std::shared_lock<std::shared_mutex> gate(gate_[t]);
    const uint32_t inc = incarnation_[t].load();
    Status s;
    if (rng() % 4 == 0) {
      std::vector<Call> batch = {CanaryCall(t, inc, idx, n),
                                 CanaryCall(t, inc, (idx + 1) % kCallSlots, n)};
      s = st_->PutCalls(TenantName(t), batch).status();
    } else {
      s = st_->PutCall(TenantName(t), CanaryCall(t, inc, idx, n)).status();
    }
    if (s.ok()) {
      ++puts_ok_;
    } else if (s.code() == Code::kTenantPurged) {
      ++puts_purged_;
    } else {
      Violation("put: " + TenantName(t) + ": unexpected " + s.ToString());
    }
  }

  void Get(int t, int idx) {
    const uint32_t purged_before = purged_upto_[t].load();
    auto got = st_->GetCall(TenantName(t), CallId(idx));
    if (got.ok()) {
      ++gets_ok_;
      CheckCall(*got, t, purged_before, "get");
    } else if (got.status().code() == Code::kNotFound) {
      ++gets_missing_;
    } else if (got.status().code() == Code::kTenantPurged) {
      ++gets_purged_;
    } else {
      Violation("get: " + TenantName(t) + ": unexpected " + got.status().ToString());
    }
  }

  void List(int t, std::mt19937_64& rng) {
    const uint32_t first_purged_before = purged_upto_[t].load();
    const uint32_t inc_before = incarnation_[t].load();
    ListQuery q;
    q.limit = 1 + rng() % 8;
    q.newest_first = rng() % 2 == 0;
    for (int page = 0; page < 4; ++page) {
      const uint32_t purged_before = purged_upto_[t].load();  // this page starts after that purge
      auto got = st_->ListCalls(TenantName(t), q);
      if (!got.ok()) {
        const Code c = got.status().code();
        if (c == Code::kTenantPurged) {
          ++lists_purged_;
        } else if (c == Code::kInvalidArgument && page > 0 &&
                   (purged_upto_[t].load() != first_purged_before ||
                    incarnation_[t].load() != inc_before)) {
          ++lists_stale_;  // the cursor belongs to an incarnation purged meanwhile
        } else {
          Violation("list: " + TenantName(t) + ": unexpected " + got.status().ToString());
        }
        return;
      }
      ++lists_ok_;
      std::optional<Stamp> page_stamp;
      for (const auto& c : got->calls) {
        ++listed_;
        CheckCall(c, t, purged_before, "list", &page_stamp);
      }
      if (got->next_cursor.empty()) return;
      q.cursor = got->next_cursor;
      // Now and then a slow reader, whose cursor may outlive the incarnation.
      // (A purge with its fsyncs takes tens of milliseconds.)
      if (rng() % 32 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(20 + rng() % 150));
    }
  }

  void Purger() {
    std::mt19937_64 rng(seed_ ^ 0x9e3779b97f4a7c15ull);
    while (Running()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5 + rng() % 40));
      const int t = static_cast<int>(rng() % kTenantCount);
      const uint32_t inc = incarnation_[t].load();
      auto receipt = st_->PurgeTenant(TenantName(t));
      if (!receipt.ok()) {
        Violation("purge " + TenantName(t) + ": " + receipt.status().ToString());
        return;
      }
      if (receipt->tenant_id != TenantName(t)) Violation("purge: receipt names another tenant");
      purged_upto_[t].store(inc);
      ++purges_;
      // Right after the purge returned: nothing of the tenant is reachable.
      auto got = st_->GetCall(TenantName(t), CallId(0));
      if (got.status().code() != Code::kTenantPurged) {
        Violation("get right after purge: " + got.status().ToString());
      }
      auto put = st_->PutCall(TenantName(t), CanaryCall(t, inc, 0, 0));
      if (put.status().code() != Code::kTenantPurged) {
        Violation("put right after purge: " + put.status().ToString());
      }
      // Let readers meet the purged state for a moment, then re-create.
      std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 5));
      recreating_[t] = true;
      {
        std::unique_lock<std::shared_mutex> gate(gate_[t]);
        auto created = st_->CreateTenant({.tenant_id = TenantName(t)});
        if (!created.ok()) {
          Violation("re-create " + TenantName(t) + ": " + created.status().ToString());
          recreating_[t] = false;
          return;
        }
        incarnation_[t].store(inc + 1);
      }
      recreating_[t] = false;
    }
  }

  Store* const st_;
  const uint64_t seed_;
  std::chrono::steady_clock::time_point stop_at_;
  std::atomic<bool> abort_{false};
  std::shared_mutex gate_[kTenantCount];
  std::atomic<bool> recreating_[kTenantCount] = {};
  std::atomic<uint32_t> incarnation_[kTenantCount] = {};
  std::atomic<uint32_t> purged_upto_[kTenantCount] = {};
  std::atomic<uint64_t> puts_ok_{0}, puts_purged_{0}, gets_ok_{0}, gets_missing_{0},
      gets_purged_{0}, lists_ok_{0}, lists_purged_{0}, lists_stale_{0}, listed_{0}, purges_{0};
  std::mutex mu_;
  std::vector<std::string> violations_;  // GUARDED_BY(mu_)
};

TEST(ConcurrencyTest, PurgeUnderLoadNeverLeaksAcrossTenantsOrIncarnations) {
  const uint64_t seed = crashtest::SeedFromEnv();
  const int64_t seconds =
      crashtest::EnvInt("CALLVAULT_T7_SECONDS", crashtest::SoakMode() ? 120 : 10);
  std::printf("[purge-under-load] seed=%llu seconds=%lld threads=%d+1 tenants=%d\n",
              static_cast<unsigned long long>(seed), static_cast<long long>(seconds), kWorkers,
              kTenantCount);
  std::fflush(stdout);
  testutil::TestStore ts;
  ts.options.max_tenants_per_shard = 3;  // several shards
  // Tenants train their compression dictionary after a few calls, so that
  // training, lazy loading and use of dictionaries race with the purges.
  ts.options.dictionary_training_calls = 6;
  ASSERT_OK(ts.Open());
  for (int t = 0; t < kTenantCount; ++t) {
    ASSERT_OK(ts->CreateTenant({.tenant_id = TenantName(t)}));
    for (int idx = 0; idx < kCallSlots; idx += 3)
      ASSERT_OK(ts->PutCall(TenantName(t), CanaryCall(t, 1, idx, 0)));
  }
  PurgeUnderLoad load(ts.store.get(), seed);
  load.Run(std::chrono::seconds(seconds));
  std::printf("[purge-under-load] %s\n", load.Summary().c_str());
  EXPECT_EQ(load.TooLittle(), "") << "the run raced too little to show anything";
  auto violations = load.violations();
  EXPECT_TRUE(violations.empty()) << violations.size() << " violations (seed " << seed << "):\n"
                                  << ::testing::PrintToString(violations);

  auto v = ts->Verify();
  ASSERT_OK(v);
  EXPECT_EQ(v->records_failed, 0u) << ::testing::PrintToString(v->failures);
  auto receipts = ts->ListReceipts();
  ASSERT_OK(receipts);
  auto pk = ts->SigningPublicKey();
  ASSERT_OK(pk);
  EXPECT_OK(VerifyReceiptChain(*receipts, *pk));
  ASSERT_OK(ts.Reopen());
  v = ts->Verify();
  ASSERT_OK(v);
  EXPECT_EQ(v->records_failed, 0u) << ::testing::PrintToString(v->failures);
  crashtest::KeyCheck kc = crashtest::CheckKeysAndFamilies(*ts.store, ts.keys);
  EXPECT_TRUE(kc.problems.empty()) << ::testing::PrintToString(kc.problems);
}

}  // namespace
}  // namespace callvault
