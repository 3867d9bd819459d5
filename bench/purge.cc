// Purge of one tenant of 1k / 10k / 100k calls: time until its data is
// unreadable (the call returns) and until its files are gone from disk
// (polled), for callvault's PurgeTenant and for raw RocksDB deleting the
// same tenant three ways (iterate + Delete, DeleteRange, DropColumnFamily).
// Every tenant is fully compacted first, so its files are a stable set.
#include <atomic>
#include <chrono>
#include <filesystem>
#include <map>
#include <thread>

#include "bench/harness.h"
#include "bench/systems.h"

namespace callvault::bench {

namespace {

namespace fs = std::filesystem;

// Loads `n` calls into `tenant`, cycling through `pool` with the ids of
// every further pass made unique.
void Load(System& sys, const std::string& tenant, const std::vector<Call>& pool, size_t n,
          size_t batch) {
  std::vector<Call> b;
  for (size_t i = 0; i < n; ++i) {
    Call c = pool[i % pool.size()];
    if (size_t pass = i / pool.size(); pass > 0) {
      c.call_id += "-" + std::to_string(pass);
      if (!c.source_call_id.empty()) c.source_call_id += "-" + std::to_string(pass);
    }
    b.push_back(std::move(c));
    if (b.size() == batch || i + 1 == n) {
      sys.Put(tenant, b);
      b.clear();
    }
  }
}

uint64_t Bytes(const std::vector<std::string>& files) {
  uint64_t n = 0;
  for (const auto& f : files) {
    std::error_code ec;
    n += fs::file_size(f, ec);
  }
  return n;
}

// Milliseconds since `t` until none of `files` exists (polled every 0.2 ms),
// or -1 after `timeout_s`.
double WaitGone(const Timer& t, const std::vector<std::string>& files, double timeout_s) {
  size_t next = 0;
  while (t.Seconds() < timeout_s) {
    while (next < files.size() && !fs::exists(files[next])) ++next;
    if (next == files.size()) return t.Millis();
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  return -1;
}

struct Figures {
  std::vector<double> unreadable_ms, returned_ms, gone_ms, bytes, files;
  Json ToJson() const {
    return Json{{"unreadable_ms", Summary(unreadable_ms)},
                {"returned_ms", Summary(returned_ms)},
                {"files_gone_ms", Summary(gone_ms)},
                {"tenant_bytes", Summary(bytes)},
                {"tenant_files", Summary(files)}};
  }
};

constexpr double kTimeout = 120;

void CallvaultOnce(const Config& cfg, const std::vector<Call>& pool, size_t size, Figures* f) {
  const std::string dir = cfg.work + "/purge-callvault";
  RemoveTree(dir);
  CallvaultSystem sys(dir);
  sys.CreateTenant("victim");
  Load(sys, "victim", pool, size, cfg.batch);
  sys.CompactAll();
  std::vector<std::string> files;
  for (const auto& p : sys.store()->ShardPaths()) {
    auto v = DataFiles(p);
    files.insert(files.end(), v.begin(), v.end());
  }
  const uint64_t bytes = Bytes(files);
  // The tenant's data is unreadable everywhere (store, WAL, copies) once the
  // KEK generation its keyring was sealed under no longer exists: the
  // purge's shred step destroys it (overwrite, fsync, unlink). Watched from
  // another thread, so the time does not include the steps after it
  // (dropping the column family, deleting its files, the receipt).
  std::vector<std::string> keks;
  for (const auto& e : fs::directory_iterator(sys.KeyDir())) {
    if (e.path().filename().string().rfind("KEK-", 0) == 0) keks.push_back(e.path().string());
  }
  if (keks.size() != 1) Fail("callvault: expected one KEK generation before the purge");
  std::atomic<bool> stop{false};
  double shredded = -1;
  Timer t;
  std::thread watch([&] {
    // Polled every 50 µs (a spinning thread would take a core from the
    // purge on a 2-core machine).
    while (!stop.load() && fs::exists(keks[0])) {
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
    if (!fs::exists(keks[0])) shredded = t.Millis();
  });
  Status purged = sys.store()->PurgeTenant("victim").status();
  const double returned = t.Millis();
  stop = true;
  watch.join();
  Check(purged, "callvault PurgeTenant");
  if (shredded < 0) Fail("callvault: the KEK generation survived the purge");
  const double unreadable = shredded;
  const double gone = WaitGone(t, files, kTimeout);
  if (sys.store()->GetCall("victim", pool[0].call_id).status().code() != Code::kTenantPurged) {
    Fail("callvault: purged tenant still answers");
  }
  f->unreadable_ms.push_back(unreadable);
  f->returned_ms.push_back(returned);
  f->gone_ms.push_back(gone);
  f->bytes.push_back(static_cast<double>(bytes));
  f->files.push_back(static_cast<double>(files.size()));
  Progress("purge %6zu calls callvault PurgeTenant: unreadable (KEK destroyed) %.1f ms, returned %.1f ms, files gone %.1f ms (%zu files, %.1f MB)",
           size, unreadable, returned, gone, files.size(), static_cast<double>(bytes) / 1e6);
  sys.Close();
  RemoveTree(dir);
}

void RawOnce(const Config& cfg, const std::vector<Call>& pool, size_t size,
             std::map<std::string, Figures>* out) {
  const std::string dir = cfg.work + "/purge-raw";
  RemoveTree(dir);
  RawSystem sys(dir);
  const char* methods[] = {"iterate_delete", "delete_range", "drop_cf"};
  for (const char* m : methods) {
    sys.CreateTenant(m);
    Load(sys, m, pool, size, cfg.batch);
  }
  sys.CompactAll();
  for (const char* m : methods) {
    const std::string method = m;
    std::vector<std::string> files = sys.TenantFiles(method);
    const uint64_t bytes = Bytes(files);
    Timer t;
    if (method == "iterate_delete") sys.DeleteByIteration(method);
    else if (method == "delete_range") sys.DeleteByRange(method);
    else sys.DropTenant(method);
    const double unreadable = t.Millis();
    if (method != "drop_cf") {
      Call c;
      if (sys.Get(method, pool[0].call_id, kPartAll, &c)) Fail("raw: deleted tenant still answers");
      // Tombstones hide the data; only a compaction removes it from disk.
      sys.CompactTenant(method);
    }
    const double gone = WaitGone(t, files, kTimeout);
    Figures& f = (*out)[method];
    f.unreadable_ms.push_back(unreadable);
    f.returned_ms.push_back(unreadable);
    f.gone_ms.push_back(gone);
    f.bytes.push_back(static_cast<double>(bytes));
    f.files.push_back(static_cast<double>(files.size()));
    Progress("purge %6zu calls rocksdb %-14s: unreadable %.1f ms, files gone %.1f ms (%zu files, %.1f MB)",
             size, m, unreadable, gone, files.size(), static_cast<double>(bytes) / 1e6);
  }
}

}  // namespace

Json RunPurge(const Config& cfg) {
  Progress("purge: generating a pool of %zu calls (transcript_scale %.2f)", cfg.purge_pool,
           cfg.purge_scale);
  const std::vector<Call> pool = MakeCalls(cfg.purge_pool, cfg.purge_scale, 1234);
  Json j;
  j["transcript_scale"] = cfg.purge_scale;
  j["pool_calls"] = cfg.purge_pool;
  j["reps"] = cfg.purge_reps;
  for (size_t size : cfg.purge_sizes) {
    Figures cv;
    std::map<std::string, Figures> raw;
    Json rep_loads = Json::array();
    for (int rep = 0; rep < cfg.purge_reps; ++rep) {
      LoadWindow load;
      if (rep % 2 == 0) {
        CallvaultOnce(cfg, pool, size, &cv);
        RawOnce(cfg, pool, size, &raw);
      } else {
        RawOnce(cfg, pool, size, &raw);
        CallvaultOnce(cfg, pool, size, &cv);
      }
      rep_loads.push_back(load.End());
    }
    RemoveTree(cfg.work + "/purge-raw");
    Json s;
    s["rep_loadavg"] = rep_loads;
    s["callvault"] = cv.ToJson();
    for (const auto& [m, f] : raw) s["rocksdb_" + m] = f.ToJson();
    j["sizes"][std::to_string(size)] = s;
  }
  return j;
}

}  // namespace callvault::bench
