// Many active tenants growing in lockstep (issue 14 item 4, decision
// 0045): N tenants, each given batches of B calls round-robin until it holds
// C calls, so every tenant crosses Options::dictionary_training_calls in the
// same round. Prints, per round, the ingest rate and the batch p50/p99 with
// the machine's load average beside them, then the trainings done (after
// the queue drained) and the time the queue took to drain.
//
//   callvault_active_tenants DIR TENANTS CALLS BATCH THRESHOLD THREADS [SCALE]
//
// THREADS is Options::dictionary_training_threads (0: the crossing put
// trains, the behaviour before decision 0045). Output: JSON on stdout,
// progress on stderr.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "bench/util.h"
#include "callvault/store.h"
#include "workload/workload.h"

using namespace callvault;
using callvault::bench::Json;

namespace {
std::string TenantName(size_t i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "tenant-%06zu", i);
  return buf;
}
void Check(const Status& s, const char* what) {
  if (!s.ok()) {
    std::fprintf(stderr, "%s: %s\n", what, s.ToString().c_str());
    std::exit(1);
  }
}
}  // namespace

int main(int argc, char** argv) {
  if (argc < 7) {
    std::fprintf(stderr, "usage: %s DIR TENANTS CALLS BATCH THRESHOLD THREADS [SCALE]\n", argv[0]);
    return 2;
  }
  const std::string dir = argv[1];
  const size_t tenants = std::stoul(argv[2]);
  const size_t calls = std::stoul(argv[3]);
  const size_t batch = std::stoul(argv[4]);
  const uint32_t threshold = static_cast<uint32_t>(std::stoul(argv[5]));
  const int threads = std::stoi(argv[6]);
  const double scale = argc > 7 ? std::stod(argv[7]) : 0.4;

  bench::RemoveTree(dir);
  bench::MakeDirs(dir);
  auto kp = NewFileKeyProvider(dir + "/keys");
  Check(kp.status(), "key provider");
  Options o;  // defaults, as a user gets them
  o.key_provider = *kp;
  o.create_if_missing = true;
  o.region = "bench";
  o.dictionary_training_calls = threshold;
  o.dictionary_training_threads = threads;
  auto opened = Store::Open(o, dir + "/store");
  Check(opened.status(), "open");
  std::unique_ptr<Store> store = std::move(opened).value();

  // A pool of distinct calls; each tenant takes its own rotation of it.
  workload::GeneratorOptions g;
  g.seed = 14;
  g.transcript_scale = scale;
  workload::Generator gen(g);
  const std::vector<Call> pool = gen.Batch(1000);
  double bytes = 0;
  for (const auto& c : pool) {
    for (const auto& s : c.transcript) bytes += static_cast<double>(s.text.size());
  }
  for (size_t t = 0; t < tenants; ++t)
    Check(store->CreateTenant({.tenant_id = TenantName(t)}).status(), "create");

  Json out;
  out["tenants"] = tenants;
  out["calls_per_tenant"] = calls;
  out["batch"] = batch;
  out["dictionary_training_calls"] = threshold;
  out["dictionary_training_threads"] = threads;
  out["transcript_bytes_mean"] = bytes / static_cast<double>(pool.size());
  out["loadavg_at_start"] = bench::LoadAvg();
  const double start = bench::NowSeconds();
  size_t round = 0;
  for (size_t done = 0; done < calls; done += batch, ++round) {
    std::vector<double> ms;
    ms.reserve(tenants);
    const double t0 = bench::NowSeconds();
    size_t n = 0;
    for (size_t t = 0; t < tenants; ++t) {
      std::vector<Call> b;
      for (size_t i = done; i < std::min(calls, done + batch); ++i) {
        Call c = pool[(t * 131 + i) % pool.size()];
        c.call_id = "c-" + std::to_string(i);
        c.source_call_id.clear();
        b.push_back(std::move(c));
      }
      n += b.size();
      const double b0 = bench::NowSeconds();
      Check(store->PutCalls(TenantName(t), std::move(b)).status(), "put");
      ms.push_back((bench::NowSeconds() - b0) * 1e3);
    }
    const double secs = bench::NowSeconds() - t0;
    auto st = store->Stats();
    Check(st.status(), "stats");
    Json r{{"round", round},
           {"calls_per_s", static_cast<double>(n) / secs},
           {"seconds", secs},
           {"batch_p50_ms", bench::Percentile(ms, 50)},
           {"batch_p99_ms", bench::Percentile(ms, 99)},
           {"trained_so_far", st->dictionary_training.trained},
           {"queued_at_end", st->dictionary_training.queued + st->dictionary_training.running},
           {"loadavg", bench::LoadAvg()}};
    std::fprintf(stderr,
                 "round %zu: %.0f calls/s, batch p50 %.1f ms p99 %.1f ms, trained %llu, queued "
                 "%llu, load %s\n",
                 round, r["calls_per_s"].get<double>(), r["batch_p50_ms"].get<double>(),
                 r["batch_p99_ms"].get<double>(),
                 static_cast<unsigned long long>(st->dictionary_training.trained),
                 static_cast<unsigned long long>(st->dictionary_training.queued +
                                                 st->dictionary_training.running),
                 bench::LoadAvg().c_str());
    out["rounds"].push_back(r);
  }
  const double ingest_s = bench::NowSeconds() - start;
  out["ingest_seconds"] = ingest_s;
  out["ingest_calls_per_s"] = static_cast<double>(tenants * calls) / ingest_s;
  // The queue drains after the last put.
  const double q0 = bench::NowSeconds();
  StoreStats::DictionaryTraining tr;
  while (true) {
    auto st = store->Stats();
    Check(st.status(), "stats");
    tr = st->dictionary_training;
    if (tr.queued == 0 && tr.running == 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  out["drain_seconds"] = bench::NowSeconds() - q0;
  out["trained"] = tr.trained;
  out["failed"] = tr.failed;
  out["given_up"] = tr.given_up;
  out["loadavg_at_end"] = bench::LoadAvg();
  std::printf("%s\n", out.dump(1).c_str());
  store.reset();
  bench::RemoveTree(dir);
  return 0;
}
