// Recordings: write and read MB/s of one recording of incompressible bytes
// (like encoded audio), callvault's streamed secretstream chunks against raw
// RocksDB storing the same bytes as plain 1 MiB chunks. Compare both with
// the AEAD limit from callvault_micro.
#include <algorithm>
#include <map>

#include "bench/harness.h"
#include "bench/systems.h"
#include "workload/workload.h"

namespace callvault::bench {

namespace {

constexpr size_t kPiece = 256u << 10;  // bytes per Append

std::unique_ptr<System> Make(const std::string& which, const std::string& dir) {
  if (which == "callvault") return std::make_unique<CallvaultSystem>(dir);
  return std::make_unique<RawSystem>(dir);
}

}  // namespace

Json RunRecordings(const Config& cfg) {
  const std::string data = workload::RandomBytes(5, cfg.recording_bytes);
  const std::string warm = data.substr(0, std::min<size_t>(data.size(), 8u << 20));
  const Call call = MakeCalls(1, 0.05, 77)[0];
  std::map<std::string, std::vector<double>> write_mb_s, read_mb_s;
  const std::vector<std::string> systems = {"callvault", "rocksdb"};
  for (int rep = -1; rep < cfg.reps; ++rep) {  // rep -1: warm-up, not recorded
    std::vector<std::string> order = systems;
    if (rep % 2) std::reverse(order.begin(), order.end());
    for (const auto& s : order) {
      const std::string dir = cfg.work + "/recordings-" + s;
      RemoveTree(dir);
      auto sys = Make(s, dir);
      sys->CreateTenant("t0");
      sys->Put("t0", {call});
      const std::string& bytes = rep < 0 ? warm : data;
      Timer w;
      sys->WriteRecording("t0", call.call_id, "rec-1", bytes, kPiece);
      const double ws = w.Seconds();
      // Read from files, as a recording is read long after it was written.
      sys->Flush();
      Timer r;
      const uint64_t n = sys->ReadRecording("t0", call.call_id, "rec-1", bytes.size());
      const double rs = r.Seconds();
      if (n != bytes.size()) Fail("recording read returned the wrong size");
      if (rep >= 0) {
        write_mb_s[s].push_back(static_cast<double>(bytes.size()) / ws / 1e6);
        read_mb_s[s].push_back(static_cast<double>(bytes.size()) / rs / 1e6);
        Progress("recording rep %d %-9s %zu MiB: write %.0f MB/s, read %.0f MB/s", rep + 1, s.c_str(),
                 bytes.size() >> 20, static_cast<double>(bytes.size()) / ws / 1e6,
                 static_cast<double>(bytes.size()) / rs / 1e6);
      }
      sys.reset();
      RemoveTree(dir);
    }
  }
  Json j;
  j["bytes"] = cfg.recording_bytes;
  j["append_bytes"] = kPiece;
  for (const auto& s : systems) {
    j[s]["write_mb_per_s"] = Summary(write_mb_s[s]);
    j[s]["read_mb_per_s"] = Summary(read_mb_s[s]);
  }
  return j;
}

}  // namespace callvault::bench
