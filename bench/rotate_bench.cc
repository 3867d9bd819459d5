// Tenant key rotation benchmark (issue 15, "Benchmarks"; docs/decisions/
// 0036): rotation throughput (rows/s, calls/s, MB/s of the tenant's column
// family) for a tenant of N calls, and the effect of a rotation on a
// concurrent load on another tenant of the same store: that tenant's put
// and get latencies (p50, p99) during the rotation beside the same load
// without one, just before.
//
// Per size: a store (file key provider, default Options: synced writes),
// tenant "t" of N generated calls and tenant "load" of 1,000, flushed.
//   1. "alone": t rotated with nothing else running (throughput).
//   2. "baseline": one putter (new calls, PutCall) and one getter (GetCall
//      of the 1,000) on "load" for --baseline seconds.
//   3. "during": t rotated again while the same two threads run; each
//      operation counted in the phase it started and ended in.
// Prints one JSON object per size on stdout, with the load average (1/5/15
// min) after every measured figure (figures from a loaded machine are not
// comparable).
//
//   callvault_rotate_bench --work DIR [--calls 2000,20000] [--baseline 2] [--out FILE]
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

[[noreturn]] void Die(const char* what, const Status& s) {
  std::fprintf(stderr, "rotate_bench: %s: %s\n", what, s.ToString().c_str());
  std::exit(1);
}

std::unique_ptr<Store> OpenStore(const std::string& dir) {
  auto kp = NewFileKeyProvider(dir + "/keys", {.create_if_missing = true});
  if (!kp.ok()) Die("keys", kp.status());
  Options o;
  o.key_provider = *kp;
  o.create_if_missing = true;
  auto s = Store::Open(o, dir + "/db");
  if (!s.ok()) Die("open", s.status());
  return std::move(s).value();
}

std::vector<std::string> Fill(Store* st, const std::string& tenant, uint64_t calls, uint64_t seed) {
  if (Status s = st->CreateTenant({.tenant_id = tenant}).status(); !s.ok()) Die("create", s);
  workload::GeneratorOptions go;
  go.seed = seed;
  workload::Generator gen(go);
  std::vector<std::string> ids;
  std::vector<Call> batch;
  for (uint64_t i = 0; i < calls; ++i) {
    batch.push_back(gen.Next());
    ids.push_back(batch.back().call_id);
    if (batch.size() == 500 || i + 1 == calls) {
      auto r = st->PutCalls(tenant, batch);
      if (!r.ok()) Die("fill", r.status());
      batch.clear();
    }
  }
  return ids;
}

// Latencies (ms) of one kind of operation, per phase.
struct Lat {
  std::vector<double> phase[3];  // 0 unused, 1 baseline, 2 during
};

nlohmann::json Figures(const std::vector<double>& v) {
  nlohmann::json j;
  j["ops"] = v.size();
  j["p50_ms"] = bench::Percentile(v, 50);
  j["p99_ms"] = bench::Percentile(v, 99);
  j["max_ms"] = bench::Percentile(v, 100);
  return j;
}

nlohmann::json Rotation(const Receipt& r, uint64_t calls, double seconds) {
  nlohmann::json j;
  j["seconds"] = seconds;
  j["rows"] = r.records;
  j["bytes"] = r.bytes;
  j["rows_per_s"] = seconds > 0 ? double(r.records) / seconds : 0;
  j["calls_per_s"] = seconds > 0 ? double(calls) / seconds : 0;
  j["mb_per_s"] = seconds > 0 ? double(r.bytes) / 1e6 / seconds : 0;
  j["loadavg"] = bench::LoadAvg();
  return j;
}

nlohmann::json RunOne(const std::string& work, uint64_t calls, double baseline_s) {
  const std::string dir = work + "/rotate-" + std::to_string(calls);
  bench::RemoveTree(dir);
  bench::MakeDirs(dir);
  auto st = OpenStore(dir);
  Fill(st.get(), "t", calls, 1);
  const std::vector<std::string> load_ids = Fill(st.get(), "load", 1000, 2);
  if (Status s = st->Flush(); !s.ok()) Die("flush", s);
  nlohmann::json j;
  j["calls"] = calls;
  j["store_bytes"] = bench::Usage(dir + "/db").total;

  // 1. Alone.
  bench::Timer alone_t;
  auto alone = st->RotateTenantKey("t");
  const double alone_s = alone_t.Seconds();
  if (!alone.ok()) Die("rotate", alone.status());
  j["alone"] = Rotation(*alone, calls, alone_s);

  // 2. and 3. The load on the other tenant, without and with a rotation.
  std::atomic<int> phase{0};
  std::atomic<bool> stop{false};
  Lat puts, gets;
  std::thread putter([&] {
    workload::GeneratorOptions go;
    go.seed = 3;
    workload::Generator gen(go);
    while (!stop.load()) {
      Call c = gen.Next();
      const int p = phase.load();
      bench::Timer t;
      auto r = st->PutCall("load", c);
      const double ms = t.Millis();
      if (!r.ok()) Die("load put", r.status());
      if (p != 0 && phase.load() == p) puts.phase[p].push_back(ms);
    }
  });
  std::thread getter([&] {
    size_t i = 0;
    while (!stop.load()) {
      const std::string& id = load_ids[(i++ * 7919) % load_ids.size()];
      const int p = phase.load();
      bench::Timer t;
      auto r = st->GetCall("load", id);
      const double ms = t.Millis();
      if (!r.ok()) Die("load get", r.status());
      if (p != 0 && phase.load() == p) gets.phase[p].push_back(ms);
    }
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // warm
  phase = 1;
  std::this_thread::sleep_for(std::chrono::duration<double>(baseline_s));
  const std::string load_baseline = bench::LoadAvg();
  phase = 2;
  bench::Timer during_t;
  auto during = st->RotateTenantKey("t");
  const double during_s = during_t.Seconds();
  phase = 0;
  stop = true;
  putter.join();
  getter.join();
  if (!during.ok()) Die("rotate under load", during.status());
  j["during"] = Rotation(*during, calls, during_s);
  nlohmann::json load;
  load["baseline_seconds"] = baseline_s;
  load["put_baseline"] = Figures(puts.phase[1]);
  load["put_during"] = Figures(puts.phase[2]);
  load["get_baseline"] = Figures(gets.phase[1]);
  load["get_during"] = Figures(gets.phase[2]);
  load["put_p99_ratio"] = bench::Percentile(puts.phase[1], 99) > 0
                              ? bench::Percentile(puts.phase[2], 99) / bench::Percentile(puts.phase[1], 99)
                              : 0;
  load["get_p99_ratio"] = bench::Percentile(gets.phase[1], 99) > 0
                              ? bench::Percentile(gets.phase[2], 99) / bench::Percentile(gets.phase[1], 99)
                              : 0;
  load["loadavg_baseline"] = load_baseline;
  load["loadavg_during"] = j["during"]["loadavg"];
  j["load"] = load;
  st.reset();
  bench::RemoveTree(dir);
  return j;
}

}  // namespace

int main(int argc, char** argv) {
  std::string work = "build/bench-work", out;
  std::vector<uint64_t> sizes = {2000, 20000};
  double baseline_s = 2;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--work") {
      work = v;
    } else if (k == "--out") {
      out = v;
    } else if (k == "--baseline") {
      baseline_s = std::stod(v);
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
    nlohmann::json j = RunOne(work, n, baseline_s);
    std::printf("%s\n", j.dump().c_str());
    std::fflush(stdout);
    all["rotations"].push_back(j);
  }
  all["loadavg_at_end"] = bench::LoadAvg();
  if (!out.empty()) std::ofstream(out) << all.dump(2) << '\n';
  return 0;
}
