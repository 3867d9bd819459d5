// Backup and restore benchmark (issue 12, docs/operations.md "Backups"):
// full backup throughput (MB/s), and as a ratio to a plain copy of the same
// files (cp -r of the closed store: the floor); the longest gap between two
// acknowledged writes of a writer running during the backup, beside its
// longest gap over the same time without a backup; an incremental backup of
// the unchanged store (bytes copied, time); and the restore time. Prints one
// JSON object per size on stdout with the load average beside each
// (figures from a loaded machine are not comparable).
//
//   callvault_backup_bench --work DIR [--calls 2000,20000] [--out FILE]
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "bench/util.h"
#include "callvault/backup.h"
#include "callvault/store.h"
#include "workload/workload.h"

namespace {

using namespace callvault;
namespace bench = callvault::bench;
using Clock = std::chrono::steady_clock;

Options StoreOptions(const std::string& keys) {
  auto kp = NewFileKeyProvider(keys, {.create_if_missing = true});
  if (!kp.ok()) {
    std::fprintf(stderr, "keys: %s\n", kp.status().ToString().c_str());
    std::exit(1);
  }
  Options o;
  o.key_provider = *kp;
  o.create_if_missing = true;
  return o;
}

std::unique_ptr<Store> OpenStore(const std::string& db, const std::string& keys) {
  auto s = Store::Open(StoreOptions(keys), db);
  if (!s.ok()) {
    std::fprintf(stderr, "open: %s\n", s.status().ToString().c_str());
    std::exit(1);
  }
  return std::move(s).value();
}

template <typename T>
T Must(Result<T> r, const char* what) {
  if (!r.ok()) {
    std::fprintf(stderr, "%s: %s\n", what, r.status().ToString().c_str());
    std::exit(1);
  }
  return std::move(r).value();
}

// A writer putting calls into tenant "w" until stopped: its longest gap
// between two acknowledged (synced) writes.
struct Writer {
  std::atomic<bool> stop{false};
  double longest = 0;
  uint64_t writes = 0;
  std::thread t;
  void Start(Store* s, uint64_t seed) {
    t = std::thread([this, s, seed] {
      workload::GeneratorOptions wo;
      wo.seed = seed;
      workload::Generator g(wo);
      auto last = Clock::now();
      while (!stop.load()) {
        auto r = s->PutCall("w", g.Next());
        if (!r.ok()) {
          std::fprintf(stderr, "writer: %s\n", r.status().ToString().c_str());
          std::exit(1);
        }
        const auto now = Clock::now();
        longest = std::max(longest, std::chrono::duration<double>(now - last).count());
        last = now;
        ++writes;
      }
    });
  }
  void Stop() {
    stop = true;
    t.join();
  }
};

nlohmann::json RunOne(const std::string& work, uint64_t calls) {
  const std::string dir = work + "/backup-" + std::to_string(calls);
  bench::RemoveTree(dir);
  bench::MakeDirs(dir);
  const std::string db = dir + "/db", keys = dir + "/keys", bak = dir + "/bak";
  auto s = OpenStore(db, keys);
  for (const char* t : {"t", "w"}) Must(s->CreateTenant({.tenant_id = t}), "create");
  workload::Generator gen;
  std::vector<Call> batch;
  for (uint64_t i = 0; i < calls; ++i) {
    batch.push_back(gen.Next());
    if (batch.size() == 500 || i + 1 == calls) {
      Must(s->PutCalls("t", batch), "fill");
      batch.clear();
    }
  }
  if (!s->Flush().ok()) std::exit(1);
  const auto usage = bench::Usage(db);

  // The floor: a plain copy of the store's files (closed store, cp -a, synced).
  if (!s->Close().ok()) std::exit(1);
  s.reset();
  const auto c0 = Clock::now();
  std::filesystem::copy(db, dir + "/plain-copy", std::filesystem::copy_options::recursive);
  if (std::system(("sync -f " + dir + "/plain-copy").c_str()) != 0) std::exit(1);
  const double copy_s = std::chrono::duration<double>(Clock::now() - c0).count();
  bench::RemoveTree(dir + "/plain-copy");
  s = OpenStore(db, keys);

  // The writer alone, for as long as the backup will take (estimated from
  // the plain copy, at least 1 s), then during the backup.
  nlohmann::json j;
  {
    Writer w;
    w.Start(s.get(), 11);
    std::this_thread::sleep_for(std::chrono::duration<double>(std::max(1.0, 3 * copy_s)));
    w.Stop();
    j["writer_alone_longest_gap_ms"] = w.longest * 1e3;
    j["writer_alone_writes"] = w.writes;
  }
  const std::string load_before = bench::LoadAvg();
  Writer w;
  w.Start(s.get(), 12);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const auto b0 = Clock::now();
  BackupInfo full = Must(s->Backup(bak), "backup");
  const double full_s = std::chrono::duration<double>(Clock::now() - b0).count();
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  w.Stop();
  j["loadavg_backup"] = load_before + " / " + bench::LoadAvg();

  // Unchanged store: an incremental backup copies (almost) nothing. The
  // writer's calls are flushed and backed up once first (the live WAL is
  // copied by every backup, table files only once). A full compaction
  // first: a compaction the flush would trigger could otherwise end between
  // the two backups and its new files be counted as the increment (34 MB
  // of 50 MB did, once the full backup stopped taking seconds; 0063).
  if (!s->Flush().ok() || !s->CompactAll().ok()) std::exit(1);
  Must(s->Backup(bak), "backup after flush");
  const auto i0 = Clock::now();
  BackupInfo inc = Must(s->Backup(bak), "incremental backup");
  const double inc_s = std::chrono::duration<double>(Clock::now() - i0).count();
  j["loadavg_incremental"] = bench::LoadAvg();
  if (!s->Close().ok()) std::exit(1);
  s.reset();

  Options ro = StoreOptions(keys);
  ro.create_if_missing = false;
  const auto r0 = Clock::now();
  RestoreReport rep = Must(Store::Restore(ro, bak, dir + "/restored"), "restore");
  const double restore_s = std::chrono::duration<double>(Clock::now() - r0).count();
  j["loadavg_restore"] = bench::LoadAvg();
  (void)rep;

  const double mb = static_cast<double>(full.new_bytes) / 1e6;
  j["calls"] = calls;
  j["store_bytes"] = usage.total;
  j["plain_copy_seconds"] = copy_s;
  j["plain_copy_mb_per_s"] = static_cast<double>(usage.total) / 1e6 / copy_s;
  j["backup_bytes"] = full.new_bytes;
  j["backup_seconds"] = full_s;
  j["backup_mb_per_s"] = mb / full_s;
  j["backup_admin_lock_ms"] = full.admin_lock_micros / 1e3;
  j["writer_backup_longest_gap_ms"] = w.longest * 1e3;
  j["writer_backup_writes"] = w.writes;
  j["incremental_bytes"] = inc.new_bytes;
  j["incremental_files"] = inc.new_files;
  j["incremental_seconds"] = inc_s;
  j["restore_seconds"] = restore_s;
  bench::RemoveTree(dir);
  return j;
}

}  // namespace

int main(int argc, char** argv) {
  std::string work = "build/bench-work", out;
  std::vector<uint64_t> sizes = {2000, 20000};
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--work") {
      work = v;
    } else if (k == "--out") {
      out = v;
    } else if (k == "--calls") {
      sizes.clear();
      std::stringstream ss(v);
      std::string part;
      while (std::getline(ss, part, ',')) sizes.push_back(std::stoull(part));
    }
  }
  nlohmann::json all;
  all["loadavg_at_start"] = bench::LoadAvg();
  for (uint64_t n : sizes) {
    nlohmann::json j = RunOne(work, n);
    std::printf("%s\n", j.dump().c_str());
    std::fflush(stdout);
    all["backups"].push_back(j);
  }
  all["loadavg_at_end"] = bench::LoadAvg();
  if (!out.empty()) std::ofstream(out) << all.dump(2) << '\n';
  return 0;
}
