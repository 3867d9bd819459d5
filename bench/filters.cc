// First page of 100 for each ListCalls filter on one tenant of N calls
// (default 100,000), against a full-scan baseline that pages through every
// call's metadata and filters in memory (what a store without secondary
// indexes does). Writes JSON to stdout; progress on stderr.
//
//   callvault_filters [N] [DIR]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>

#include "callvault/store.h"
#include "workload/workload.h"

using namespace callvault;

namespace {
double Ms(std::chrono::steady_clock::duration d) {
  return std::chrono::duration<double, std::milli>(d).count();
}

double MedianMs(int reps, const std::function<size_t()>& fn, size_t* out) {
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    *out = fn();
    t.push_back(Ms(std::chrono::steady_clock::now() - t0));
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}
}  // namespace

int main(int argc, char** argv) {
  const size_t n = argc > 1 ? std::stoul(argv[1]) : 100000;
  const std::string dir = argc > 2 ? argv[2] : "build/bench-work/filters";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  Options o;
  o.key_provider = *NewFileKeyProvider(dir + "/keys");
  o.create_if_missing = true;
  o.sync_writes = false;  // loading only; every query below is a read
  auto store = Store::Open(o, dir + "/db");
  if (!store.ok()) return fprintf(stderr, "%s\n", store.status().ToString().c_str()), 1;
  Store& s = **store;
  (void)s.CreateTenant({.tenant_id = "t"});
  workload::GeneratorOptions go;
  go.transcript_scale = 0.01;  // listing reads metadata only; keep the load fast
  workload::Generator gen(go);
  Call probe;
  auto t0 = std::chrono::steady_clock::now();
  for (size_t done = 0; done < n;) {
    std::vector<Call> batch = gen.Batch(std::min<size_t>(1000, n - done));
    if (probe.call_id.empty() && done >= n / 2) {
      for (const auto& c : batch) {
        bool email = false;
        for (const auto& p : c.participants) email = email || !p.email.empty();
        if (email && !c.crm_links.empty()) {
          probe = c;
          break;
        }
      }
    }
    auto r = s.PutCalls("t", batch);
    if (!r.ok()) return fprintf(stderr, "%s\n", r.status().ToString().c_str()), 1;
    done += batch.size();
    if (done % 20000 == 0) fprintf(stderr, "loaded %zu calls\n", done);
  }
  double load_s = Ms(std::chrono::steady_clock::now() - t0) / 1000;
  (void)s.Flush();

  struct Q {
    std::string name;
    ListQuery q;
    std::function<bool(const Call&)> keep;
  };
  std::vector<Q> qs;
  auto add = [&](std::string name, std::function<void(ListQuery&)> set, std::function<bool(const Call&)> keep) {
    Q x{std::move(name), {}, std::move(keep)};
    set(x.q);
    x.q.limit = 100;
    qs.push_back(std::move(x));
  };
  std::string email;
  for (const auto& p : probe.participants) {
    if (!p.email.empty()) email = p.email;
  }
  add("time", [](ListQuery&) {}, [](const Call&) { return true; });
  add("owner", [&](ListQuery& q) { q.owners = {probe.owner_user_id}; },
      [&](const Call& c) { return c.owner_user_id == probe.owner_user_id; });
  add("email", [&](ListQuery& q) { q.participants = {email}; }, [&](const Call& c) {
    for (const auto& p : c.participants) if (p.email == email) return true;
    return false;
  });
  if (!probe.crm_links.empty()) {
    CrmLink l = probe.crm_links.front();
    add("crm", [&, l](ListQuery& q) { q.crm = CrmRef{l.system, l.object_type, l.object_id}; }, [l](const Call& c) {
      for (const auto& x : c.crm_links) if (x == l) return true;
      return false;
    });
  }
  add("workspace", [&](ListQuery& q) { q.workspace_id = probe.workspace_id; },
      [&](const Call& c) { return c.workspace_id == probe.workspace_id; });
  add("direction+duration", [](ListQuery& q) { q.direction = Direction::kInbound; q.min_duration_ms = 600000; },
      [](const Call& c) { return c.direction == Direction::kInbound && c.duration_ms >= 600000; });
  add("updated_since(recent)", [&](ListQuery& q) { q.updated_since = probe.updated_at; },
      [&](const Call& c) { return c.updated_at >= probe.updated_at; });

  nlohmann::json out;
  out["calls"] = n;
  out["load_seconds"] = load_s;
  for (const auto& x : qs) {
    size_t got = 0, base = 0;
    double idx = MedianMs(5, [&] { return s.ListCalls("t", x.q)->calls.size(); }, &got);
    // Baseline: decrypt every call's metadata, filter, keep the newest 100.
    double scan = MedianMs(3, [&] {
      ListQuery all;
      all.limit = 1000;
      size_t kept = 0;
      for (;;) {
        auto p = s.ListCalls("t", all);
        for (const auto& c : p->calls) {
          if (x.name == "email") {
            // Listing returns metadata without participants: read them.
            auto full = s.GetCall("t", c.call_id, kPartParticipants);
            kept += full.ok() && x.keep(*full) ? 1 : 0;
          } else {
            kept += x.keep(c) ? 1 : 0;
          }
        }
        if (p->next_cursor.empty()) break;
        all.cursor = p->next_cursor;
      }
      return std::min<size_t>(kept, 100);
    }, &base);
    fprintf(stderr, "%-24s index %8.2f ms  full scan %9.1f ms  ratio %.4f  (%zu/%zu)\n", x.name.c_str(), idx, scan,
            idx / scan, got, base);
    out["queries"].push_back({{"filter", x.name}, {"first_page_ms", idx}, {"full_scan_ms", scan},
                              {"ratio", idx / scan}, {"returned", got}, {"baseline_returned", base}});
  }
  printf("%s\n", out.dump(2).c_str());
  store->reset();
  std::filesystem::remove_all(dir);
  return 0;
}
