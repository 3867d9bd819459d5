// callvault_harness: callvault side by side with raw RocksDB on the same
// generated calls. Writes JSON (default bench/out/harness.json); progress
// goes to stderr. docs/benchmarks.md describes every figure.
//
//   callvault_harness --mode quick|full [--out FILE] [--work DIR]
//                     [--only ingest,scale,recordings,purge,tenants]
//                     [--main-calls N] [--main-scale X]   (override the mode's ingest pool)
//                     [--sync-calls N]   (calls of the sync-per-write runs; at most --main-calls)
//                     [--sync-only]      (ingest: only the sync-per-write runs, for profiles)
//                     [--systems callvault,rocksdb]  (ingest: the systems run, in this order)
//                     [--reps N]         (override the mode's repetitions)
//                     [--scale-calls N] [--scale-scale X]  (override the scale point)
// Environment: CALLVAULT_BENCH_DICTIONARY_CALLS=N sets callvault's
// Options::dictionary_training_calls (0 = no dictionaries), for before/after
// runs; CALLVAULT_BENCH_DEFER_COMPRESSION=0 sets Options::defer_compression
// false (decision 0052); CALLVAULT_BENCH_RECORDING_PIPELINE=0 sets
// Options::recording_pipeline false, and CALLVAULT_BENCH_RECORDING_AB=1 runs
// the recordings step's writer with it off too, as "callvault-serial"
// (decision 0061); CALLVAULT_BENCH_FLUSH_THREADS=N sets Options::flush_threads
// and CALLVAULT_BENCH_FLUSH_BACKLOG=BYTES (or "max": writers never wait)
// Options::flush_backlog_bytes (decision 0066);
// CALLVAULT_BENCH_FLUSH_PRIORITY=low|idle runs the flush pool's threads at a
// lower CPU priority (process-wide; decision 0068's amendment);
// CALLVAULT_BENCH_KEEP_OPTIONS_FILE=1 sets Options::keep_rocksdb_options_file
// (decision 0069). Unset, callvault runs with its defaults.
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>

#include "bench/harness.h"
#include "bench/systems.h"
#include "workload/workload.h"

namespace callvault::bench {

Config QuickConfig() {
  Config c;
  c.mode = "quick";
  c.reps = 1;
  c.main_calls = 1500;
  c.main_scale = 0.25;
  c.sync_calls = 200;
  c.scale_calls = 3000;
  c.scale_transcript_scale = 0.05;
  c.gets = 1000;
  c.lists = 100;
  c.recording_bytes = 8u << 20;
  c.purge_sizes = {1000, 10000};
  c.purge_scale = 0.02;
  c.purge_pool = 2000;
  c.purge_reps = 1;
  c.tenant_counts = {100, 1000};
  c.tenant_reps = 1;
  c.tenant_reps_large = 1;
  c.tenant_samples_small = 3;
  c.tenant_samples_large = 3;
  c.tenant_create_budget_s = 15;
  c.active_counts = {100, 1000};
  c.active_calls = 4000;
  c.active_batch = 2;
  c.active_scale = 0.05;
  return c;
}

Config FullConfig() {
  Config c;
  c.mode = "full";
  // Steady state (issue 14 item 3): ~960 MB of full-size calls, 29-57x the
  // memtables that can hold one or two tenants' data, so both systems pay
  // their flushes and compactions inside the measured runs; the synced runs
  // are long enough for the same (each writes ~96 MB).
  c.main_calls = 20000;
  c.sync_calls = 2000;
  c.purge_scale = 0.02;
  c.purge_pool = 5000;
  // Creating tenants one by one costs ~25-100 ms each on this machine (it
  // grows with the tenants in the shard being filled): the 10,000-tenant
  // run stops after 15 minutes of creates and says so.
  c.tenant_create_budget_s = 900;
  // Issue 14 item 4 asks for 2,000 and 10,000 active tenants beside 100.
  c.tenant_counts = {100, 1000, 2000, 10000};
  c.active_counts = {100, 2000, 10000};
  // ~14 KiB calls (the size the scale run used): 100,000 calls are
  // ~1.4 GB, 5.5x the shared memtable budget; 2,000 tenants get 10 rounds,
  // 10,000 the least, 4 (200,000 calls).
  c.active_calls = 100000;
  c.active_batch = 5;
  c.active_scale = 0.25;
  return c;
}

std::vector<Call> MakeCalls(size_t n, double scale, uint64_t seed) {
  workload::GeneratorOptions o;
  o.seed = seed;
  o.transcript_scale = scale;
  workload::Generator g(o);
  return g.Batch(n);
}

namespace {

std::string Timestamp() {
  std::time_t t = std::time(nullptr);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

void Write(const Json& j, const std::string& path) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp);
    out << j.dump(1) << "\n";
    if (!out) Fail("cannot write " + tmp);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) Fail("cannot rename " + tmp);
}

std::string SelfPath() {
  char buf[4096];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) Fail("readlink /proc/self/exe");
  return std::string(buf, static_cast<size_t>(n));
}

int Main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (!args.empty() && args[0] == "--child") {
    return TenantScaleChild(std::vector<std::string>(args.begin() + 1, args.end()));
  }
  std::string mode = "quick", out = "bench/out/harness.json", work, only, main_calls, main_scale,
              sync_calls, reps, scale_calls, scale_scale, systems;
  bool sync_only = false;
  for (size_t i = 0; i < args.size(); ++i) {
    auto value = [&]() -> std::string {
      if (i + 1 >= args.size()) Fail("missing value after " + args[i]);
      return args[++i];
    };
    if (args[i] == "--mode") mode = value();
    else if (args[i] == "--out") out = value();
    else if (args[i] == "--work") work = value();
    else if (args[i] == "--only") only = value();
    else if (args[i] == "--main-calls") main_calls = value();
    else if (args[i] == "--main-scale") main_scale = value();
    else if (args[i] == "--sync-calls") sync_calls = value();
    else if (args[i] == "--sync-only") sync_only = true;
    else if (args[i] == "--systems") systems = value();
    else if (args[i] == "--reps") reps = value();
    else if (args[i] == "--scale-calls") scale_calls = value();
    else if (args[i] == "--scale-scale") scale_scale = value();
    else Fail("unknown argument " + args[i] + " (see the comment at the top of bench/harness.cc)");
  }
  if (mode != "quick" && mode != "full") Fail("--mode must be quick or full");
  Config cfg = mode == "full" ? FullConfig() : QuickConfig();
  if (!main_calls.empty()) cfg.main_calls = std::stoul(main_calls);
  if (!main_scale.empty()) cfg.main_scale = std::stod(main_scale);
  if (!sync_calls.empty()) cfg.sync_calls = std::stoul(sync_calls);
  cfg.sync_only = sync_only;
  if (!systems.empty()) {
    cfg.systems.clear();
    std::stringstream ss(systems);
    for (std::string s; std::getline(ss, s, ',');) {
      if (s != "callvault" && s != "rocksdb") Fail("unknown system " + s + " in --systems");
      cfg.systems.push_back(s);
    }
  }
  if (!reps.empty()) cfg.reps = cfg.purge_reps = cfg.tenant_reps = std::stoi(reps);
  if (!scale_calls.empty()) cfg.scale_calls = std::stoul(scale_calls);
  if (!scale_scale.empty()) cfg.scale_transcript_scale = std::stod(scale_scale);
  if (cfg.main_calls == 0 || cfg.scale_calls == 0 || cfg.reps < 1) {
    Fail("--main-calls, --scale-calls and --reps must be at least 1");
  }
  cfg.self = SelfPath();
  cfg.work = work.empty() ? out + ".work" : work;
  const std::set<std::string> all_phases = {"ingest", "scale", "recordings", "purge", "tenants"};
  std::set<std::string> phases = all_phases;
  if (!only.empty()) {
    phases.clear();
    std::stringstream ss(only);
    for (std::string p; std::getline(ss, p, ',');) {
      if (!all_phases.count(p)) Fail("unknown phase " + p + " in --only");
      phases.insert(p);
    }
  }
  RemoveTree(cfg.work);
  MakeDirs(cfg.work);

  Json j;
  j["mode"] = cfg.mode;
  j["reps"] = cfg.reps;
  j["started"] = Timestamp();
  j["machine"] = MachineInfo();
  j["work_dir"] = cfg.work;
  if (const char* v = std::getenv("CALLVAULT_BENCH_DICTIONARY_CALLS")) {
    j["callvault_dictionary_training_calls"] = v;
  }
  if (const char* v = std::getenv("CALLVAULT_BENCH_DEFER_COMPRESSION")) {
    j["callvault_defer_compression"] = v;
  }
  Timer total;
  Progress("mode %s, %d repetition(s) after a warm-up; scratch %s", cfg.mode.c_str(), cfg.reps,
           cfg.work.c_str());
  // Each phase: its JSON under `key`, with the load average at its start
  // and end (phase_loadavg) and its time in phase_seconds.
  auto run = [&](const char* key, const std::function<Json()>& f) {
    if (!phases.count(key)) return;
    LoadWindow load;
    Timer t;
    j[key == std::string("ingest") ? "workload" : key] = f();
    j[key == std::string("ingest") ? "workload" : key]["phase_loadavg"] = load.End();
    j["phase_seconds"][key] = t.Seconds();
    Write(j, out);
  };
  run("ingest", [&] {
    Progress("generating %zu calls (transcript_scale %.2f)", cfg.main_calls, cfg.main_scale);
    Timer g;
    std::vector<Call> pool = MakeCalls(cfg.main_calls, cfg.main_scale, 42);
    Progress("generated in %.1f s", g.Seconds());
    j["phase_seconds"]["ingest_generate"] = g.Seconds();
    return RunIngestAndReads(cfg, pool);
  });
  run("scale", [&] { return RunScale(cfg); });
  run("recordings", [&] { return RunRecordings(cfg); });
  run("purge", [&] { return RunPurge(cfg); });
  run("tenants", [&] { return RunTenantScale(cfg); });
  j["duration_s"] = total.Seconds();
  j["machine"]["loadavg_at_end"] = LoadAvg();
  Write(j, out);
  RemoveTree(cfg.work);
  Progress("done in %.0f s; wrote %s", total.Seconds(), out.c_str());
  return 0;
}

}  // namespace
}  // namespace callvault::bench

int main(int argc, char** argv) { return callvault::bench::Main(argc, argv); }
