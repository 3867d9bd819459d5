// Tenant move benchmark (issue 12 item 3, docs/decisions/0022): move time
// and fence (write-unavailability) time for tenants of 1,000 / 10,000 /
// 100,000 calls, between two stores on this machine, while one writer keeps
// writing to the tenant (retrying at the store a `moved` error names);
// then the time to move the same tenant to a new shard of the destination
// (Store::MoveTenantToShard, decision 0057). Prints one JSON object per size on stdout, with the load average at the
// start and the end (figures from a loaded machine are not comparable).
//
//   callvault_move_bench --work DIR [--calls 1000,10000,100000] [--out FILE]
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "bench/util.h"
#include "callvault/store.h"
#include "workload/workload.h"

namespace {

using namespace callvault;
namespace bench = callvault::bench;
using Clock = std::chrono::steady_clock;

std::unique_ptr<Store> OpenStore(const std::string& dir) {
  auto kp = NewFileKeyProvider(dir + "/keys", {.create_if_missing = true});
  if (!kp.ok()) {
    std::fprintf(stderr, "keys: %s\n", kp.status().ToString().c_str());
    std::exit(1);
  }
  Options o;
  o.key_provider = *kp;
  o.create_if_missing = true;
  auto s = Store::Open(o, dir + "/db");
  if (!s.ok()) {
    std::fprintf(stderr, "open: %s\n", s.status().ToString().c_str());
    std::exit(1);
  }
  return std::move(s).value();
}

nlohmann::json RunOne(const std::string& work, uint64_t calls) {
  const std::string dir = work + "/move-" + std::to_string(calls);
  bench::RemoveTree(dir);
  bench::MakeDirs(dir + "/a");
  bench::MakeDirs(dir + "/b");
  auto a = OpenStore(dir + "/a");
  auto b = OpenStore(dir + "/b");
  if (!a->CreateTenant({.tenant_id = "t"}).ok()) std::exit(1);
  workload::Generator gen;
  std::vector<Call> batch;
  for (uint64_t i = 0; i < calls; ++i) {
    batch.push_back(gen.Next());
    if (batch.size() == 500 || i + 1 == calls) {
      auto r = a->PutCalls("t", batch);
      if (!r.ok()) {
        std::fprintf(stderr, "fill: %s\n", r.status().ToString().c_str());
        std::exit(1);
      }
      batch.clear();
    }
  }
  if (!a->Flush().ok()) std::exit(1);
  const auto usage = bench::Usage(dir + "/a/db");

  // One writer: its longest gap between two acknowledged writes is the
  // write unavailability a client sees.
  std::atomic<bool> stop{false};
  std::atomic<Store*> target{a.get()};
  double longest_gap = 0;
  uint64_t writes = 0, moved = 0;
  std::thread writer([&] {
    workload::GeneratorOptions wo;
    wo.seed = 7;
    workload::Generator wg(wo);
    auto last = Clock::now();
    while (!stop.load()) {
      Call c = wg.Next();
      for (;;) {
        auto r = target.load()->PutCall("t", c);
        if (r.ok()) break;
        if (r.status().code() == Code::kMoved) {
          ++moved;
          target = b.get();
        } else if (r.status().code() != Code::kNotFound) {
          std::fprintf(stderr, "writer: %s\n", r.status().ToString().c_str());
          return;
        }
        if (stop.load()) return;
      }
      const auto now = Clock::now();
      longest_gap = std::max(longest_gap, std::chrono::duration<double>(now - last).count());
      last = now;
      ++writes;
    }
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  const auto t0 = Clock::now();
  auto report = MoveTenant(*a, *b, "t");
  const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  stop = true;
  writer.join();
  if (!report.ok()) {
    std::fprintf(stderr, "move: %s\n", report.status().ToString().c_str());
    std::exit(1);
  }
  nlohmann::json j;
  j["calls"] = calls;
  j["source_bytes"] = usage.total;
  j["rows"] = report->rows;
  j["rows_sent"] = report->rows_sent;
  j["catch_up_rounds"] = report->catch_up_rounds;
  j["move_seconds"] = seconds;
  j["copy_seconds"] = report->copy_micros / 1e6;
  j["fence_seconds"] = report->fence_micros / 1e6;
  j["fence_rows_read"] = report->fence_rows_read;  // decision 0043: the changes, not the tenant
  j["feed_fallback"] = report->feed_fallback;
  j["writer_longest_gap_seconds"] = longest_gap;
  j["writer_writes"] = writes;
  j["writer_moved_errors"] = moved;
  // The same tenant moved between shards of its store (decision 0057: a
  // key rotation whose copy goes to another shard), to a new shard of the
  // destination; no writer (the rotation's pause is in the rotate bench).
  auto stats = b->Stats();
  if (!stats.ok()) std::exit(1);
  const auto s0 = Clock::now();
  auto shard_move = b->MoveTenantToShard("t", static_cast<uint32_t>(stats->shards.size()));
  const double shard_seconds = std::chrono::duration<double>(Clock::now() - s0).count();
  if (!shard_move.ok()) {
    std::fprintf(stderr, "shard move: %s\n", shard_move.status().ToString().c_str());
    std::exit(1);
  }
  j["shard_move_seconds"] = shard_seconds;
  j["shard_move_rows"] = shard_move->records;
  a.reset();
  b.reset();
  bench::RemoveTree(dir);
  return j;
}

}  // namespace

int main(int argc, char** argv) {
  std::string work = "build/bench-work", out;
  std::vector<uint64_t> sizes = {1000, 10000, 100000};
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
    j["loadavg"] = bench::LoadAvg();
    std::printf("%s\n", j.dump().c_str());
    std::fflush(stdout);
    all["moves"].push_back(j);
  }
  all["loadavg_at_end"] = bench::LoadAvg();
  if (!out.empty()) std::ofstream(out) << all.dump(2) << '\n';
  return 0;
}
