// The memtables a writable open recovered from the WAL, flushed in the
// background (docs/decisions/0082).
//
// RocksDB replays each family's unflushed writes into a memtable of its own
// at open (decision 0059 keeps them there rather than flushing each into a
// small table file during the open). Each such memtable takes at least one
// arena block (64 KiB, shard.cc) for what may be one call, and counts
// against the shared budget until it is switched out. The write buffer
// manager switches out one family per write once the budget is full: under
// writes spread over many tenants, a switch that frees a recovered memtable
// while the write adds a batch leaves the excess in place for good (0073).
// So the families holding them are flushed here, one at a time, while the
// switched-out memtables are under the flush backlog bound (0066): the
// drain takes its turn with the writers' flushes, and does not fill the
// backlog at once (which would hold every writer for seconds). At half the
// bound it starved once the writers kept the backlog near it (0082).
#include <rocksdb/db.h>

#include <chrono>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/shard.h"
#include "engine/store_impl.h"

namespace callvault {

namespace {

// How much recovered memtable memory is worth a thread: an eighth of the
// budget (32 MiB by default, ~500 tenants' memtables). Below it the
// budget's own switches and the WAL cap (0065) flush them soon enough.
constexpr uint64_t kDrainShareOfBudget = 8;

}  // namespace

void Store::Impl::StartDrain() {
  std::vector<std::pair<std::string, std::shared_ptr<Tenant>>> tenants;
  {
    std::shared_lock<std::shared_mutex> m(map_mu_);
    tenants.assign(tenants_.begin(), tenants_.end());
  }
  std::vector<std::string> ids;
  uint64_t bytes = 0;
  for (const auto& [tid, t] : tenants) {
    if (t->state.load() != TenantState::kActive) continue;
    std::shared_lock<std::shared_mutex> life(t->life);  // no map_mu_ held (lock order)
    if (t->cf == nullptr || t->shard == nullptr || t->shard->failed()) continue;
    rocksdb::DB* db = t->shard->db();
    uint64_t entries = 0, size = 0;
    if (!db->GetIntProperty(t->cf, "rocksdb.num-entries-active-mem-table", &entries) ||
        entries == 0) {
      continue;
    }
    db->GetIntProperty(t->cf, "rocksdb.cur-size-active-mem-table", &size);
    ids.push_back(tid);
    bytes += size;
  }
  if (ids.empty() || bytes * kDrainShareOfBudget < options_.write_buffer_budget_bytes) return;
  recovered_pending_.store(ids.size());
  drain_thread_ = std::thread([this, ids = std::move(ids)] { DrainRecovered(ids); });
}

void Store::Impl::StopDrain() {
  {
    std::lock_guard<std::mutex> l(drain_mu_);
    drain_stop_ = true;
  }
  drain_cv_.notify_all();
  if (drain_thread_.joinable()) drain_thread_.join();
}

void Store::Impl::DrainRecovered(const std::vector<std::string>& tenant_ids) {
  FlushBacklog& backlog = *res_->flush_backlog;
  // True once Close asks; else waits up to `d` for it.
  auto stop_within = [this](std::chrono::milliseconds d) {
    std::unique_lock<std::mutex> l(drain_mu_);
    return drain_cv_.wait_for(l, d, [this] { return drain_stop_; });
  };
  for (const std::string& id : tenant_ids) {
    while (backlog.backlog() >= backlog.limit()) {
      if (stop_within(std::chrono::milliseconds(1))) return;
    }
    if (stop_within(std::chrono::milliseconds(0))) return;
    recovered_pending_.fetch_sub(1, std::memory_order_relaxed);
    // Purged, moved, damaged or closing meanwhile: nothing to do for it.
    auto ref = Acquire(id, Access::kInspect);
    if (!ref.ok()) continue;
    TenantRef& t = *ref;
    if (t->shard->failed()) continue;  // decision 0071: its memtables wait for the reopen
    rocksdb::DB* db = t->shard->db();
    uint64_t queued = 0, entries = 0;
    // A family with a memtable queued is being flushed already; a second
    // switch would leave two queued, which stops its writers
    // (max_write_buffer_number 2) until the first is flushed (0073).
    if (!db->GetIntProperty(t->cf, "rocksdb.num-immutable-mem-table", &queued) || queued > 0) {
      continue;
    }
    if (!db->GetIntProperty(t->cf, "rocksdb.num-entries-active-mem-table", &entries) ||
        entries == 0) {
      continue;  // flushed meanwhile (the budget's switch, the WAL cap)
    }
    rocksdb::FlushOptions fo;
    fo.wait = false;
    // Not waiting inside RocksDB for a flush that would not stall: the
    // check above is that, and this thread holds the tenant meanwhile.
    fo.allow_write_stall = true;
    // A failure is RocksDB's background error, which the shard's own
    // listener records (decision 0034); the next tenants see failed().
    if (db->Flush(fo, t->cf).ok()) recovered_flushed_.fetch_add(1, std::memory_order_relaxed);
  }
}

}  // namespace callvault
