// T1 (testing.md): the kill loop.
//
// The parent (this test) never opens a store and keeps one thread, so each
// cycle is a bare fork (crashtest::Fork, no exec): the child starts with the
// parent's model in memory. A cycle:
//   1. The child opens the store (recovering what the last kill left) and
//      reports "O"; then it checks the store against the model (below),
//      resolving the one operation that was in flight at the last kill
//      ("R 0|1": did it take effect), and reports "V".
//   2. It runs a seeded random mix until killed: PutCall and PutCalls with
//      sync, DeleteCall, GetCall (checked against the model), Flush,
//      recordings (CreateRecording, Append in 64 KiB pieces across 1 MiB
//      chunks, Finish) and CreateTenant / PurgeTenant of scratch tenants,
//      reporting each operation on the pipe before it starts ("B") and after
//      it returns ("A", with the code: acknowledged).
//   3. The parent SIGKILLs it 1-500 ms (random, log-uniform: short windows
//      are as likely per decade as long ones, mean ~80 ms) after "V", or in a
//      quarter of the cycles after its start (then often inside the open or
//      the recovery). After a third of the kills one to three more children
//      only open the store and are killed 1-150 ms after their start (crashes
//      inside a recovery that has work to do).
// The check of step 1, every cycle, on the same store (never a fresh copy:
// recovery on top of recovery):
//   - 0 failed opens;
//   - every acknowledged put reads back exactly as its last acknowledged
//     version unless a later acknowledged delete removed it; every call not
//     in the model is absent (nothing comes back from a purge or a delete);
//   - the one operation in flight has all or none of its effect (a batch is
//     atomic; a tenant create or purge happened or not; a recording is listed
//     complete and reads back byte for byte, or is not listed at all);
//   - every acknowledged recording is listed with its size and content;
//     raw: no pending-recording marker survives the open and each tenant's
//     family holds exactly the chunks of its listed recordings;
//   - acknowledged purges stay purged; receipts, one per purge, chain;
//   - keys and column families (CheckKeysAndFamilies, crash_util.h), and ANY
//     file in the key directory that the keyring does not account for (a
//     temp file of an interrupted write, a KEK or keyring of another
//     generation) is a failure;
//   - Verify() decrypts every record (and finds no orphan chunk);
//     CountCalls matches the model.
// The child reports each problem as an "E" line; the parent fails the test.
//
// CI (make test): 1,000 cycles. CALLVAULT_SOAK=1: 3,000;
// CALLVAULT_KILL_CYCLES=N overrides; CALLVAULT_SEED=S replays a run (the kill delays depend on
// timing, so a replay is close, not exact). The last line reads
// "T1: N cycles, K kills in recovery, L lost, F failed opens, seed S".
#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <set>
#include <sstream>

#include "callvault/recording.h"
#include "callvault/store.h"
#include "engine/info_log.h"
#include "format/rowkey.h"
#include "tests/crash/crash_util.h"
#include "tests/testutil/testutil.h"

namespace callvault {
namespace {

using crashtest::ReportLine;

constexpr int64_t kT0 = 1'767'225'600'000'000;  // 2026-01-01T00:00:00Z
constexpr int kPersistent = 3;                  // tenants p0..p2, never purged
constexpr int kScratch = 3;                     // tenants s0..s2, created and purged
constexpr int kTenants = kPersistent + kScratch;
constexpr int kMaxRecordingsPerCall = 2;
// Past this many bytes of recordings in the store (measured: at 3 MiB a
// check took 190 ms of a 300 ms cycle at load 10), the workload deletes a
// call that has recordings instead of adding one: every check reads every
// recording (twice: Verify and the read-back), so an unbounded store would
// make late cycles several times slower than early ones.
constexpr uint64_t kRecordingBudget = 3u << 19;  // 1.5 MiB

std::string TenantName(int t) {
  return (t < kPersistent ? "p" : "s") + std::to_string(t < kPersistent ? t : t - kPersistent);
}
int CallSlots(int t) { return t < kPersistent ? 40 : 10; }
std::string CallId(int idx) { return "call-" + std::to_string(idx); }
std::string RecordingId(uint64_t seq) { return "r" + std::to_string(seq); }

// The content of call `idx` of tenant `t` at `version` (the sequence number
// of the operation that wrote it). Some versions move started_at (so the
// time index entry moves) and some carry a transcript large enough for a
// blob file.
Call VersionedCall(int t, int idx, uint64_t version) {
  Call c = testutil::MakeCall(
      CallId(idx), kT0 + static_cast<int64_t>(version % 5) * 1000 + idx,
      TenantName(t) + "/" + std::to_string(idx) + "/v" + std::to_string(version));
  c.created_at = kT0 + static_cast<int64_t>(version);
  c.updated_at = c.created_at;
  if (version % 23 == 0) {
    const std::string text(1500, static_cast<char>('a' + version % 26));
    for (uint32_t i = 0; i < 200; ++i) {
      c.transcript.push_back(
          TranscriptSegment{1, 100000 + i * 10, 100000 + i * 10 + 5, text, 0.5f});
    }
  }
  return c;
}

uint64_t Mix(uint64_t x) {  // splitmix64
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// The size and bytes of the recording written by operation `seq`: mostly
// small (the store stays small, so verifying everything each cycle stays
// cheap), some of several chunks, some empty or exactly one chunk.
uint64_t RecordingSize(uint64_t seq) {
  const uint64_t h = Mix(seq ^ 0x5eed), r = h % 100, v = Mix(h);
  if (r < 2) return 0;
  if (r < 3) return kRecordingChunkBytes;
  if (r < 7) return kRecordingChunkBytes + v % (64 << 10);  // two chunks
  if (r < 40) return (16 << 10) + v % (112 << 10);
  return 1 + v % (16 << 10);
}
std::string RecordingBytes(uint64_t seq) {
  std::string out(RecordingSize(seq), '\0');
  uint64_t s = Mix(seq);
  for (size_t i = 0; i < out.size(); i += 8) {
    s = Mix(s);
    std::memcpy(out.data() + i, &s, std::min<size_t>(8, out.size() - i));
  }
  return out;
}
uint64_t Chunks(uint64_t seq) { return RecordingSize(seq) / kRecordingChunkBytes + 1; }

Options StoreOptions(const std::string& keys) {
  Options o = testutil::DefaultOptions(keys);
  o.max_tenants_per_shard = 3;
  return o;
}

// --- The model ------------------------------------------------------------------

enum class TState { kAbsent, kLive, kPurged };

struct Model {
  TState state[kTenants] = {};
  std::map<int, uint64_t> calls[kTenants];            // idx -> version
  std::map<int, std::set<uint64_t>> recs[kTenants];  // idx -> recording seqs
  uint64_t next_seq = 1;
  uint64_t receipts = 0;

  bool live(int t) const { return state[t] == TState::kLive; }
  size_t recordings(int t, int idx) const {
    auto it = recs[t].find(idx);
    return it == recs[t].end() ? 0 : it->second.size();
  }
};

// One operation as reported by the child.
struct OpMsg {
  uint64_t seq = 0;
  // P put, M batch put, D delete, C create, X purge, R recording, F flush
  char type = 0;
  int tenant = 0;
  std::vector<int> calls;

  std::string Encode() const {
    std::string s = "B " + std::to_string(seq) + " " + type + " " + std::to_string(tenant) + " " +
                    std::to_string(calls.size());
    for (int c : calls) s += " " + std::to_string(c);
    return s;
  }
  static OpMsg Decode(const std::string& line) {
    std::istringstream in(line.substr(2));
    OpMsg m;
    size_t n = 0;
    in >> m.seq >> m.type >> m.tenant >> n;
    m.calls.resize(n);
    for (auto& c : m.calls) in >> c;
    return m;
  }
};

// Applies an acknowledged operation to the model; returns a problem, or "".
// Also applies an operation found to have taken effect after a kill
// (code kOk).
std::string Acknowledge(Model* m, const OpMsg& op, Code code) {
  const bool live = m->live(op.tenant);
  const bool ok = code == Code::kOk;
  const bool gone = code == Code::kTenantPurged || code == Code::kNotFound;
  const std::string what =
      std::string(1, op.type) + " on " + TenantName(op.tenant) + " returned " + CodeName(code);
  switch (op.type) {
    case 'P':
    case 'M':
      if (ok && live) {
        for (int c : op.calls) m->calls[op.tenant][c] = op.seq;
        return "";
      }
      if (!ok && !live && gone) return "";
      return what + (live ? " (tenant live)" : " (tenant not live)");
    case 'D':
    case 'R': {
      const bool present = live && m->calls[op.tenant].count(op.calls[0]);
      if (ok && present) {
        if (op.type == 'D') {
          m->calls[op.tenant].erase(op.calls[0]);
          m->recs[op.tenant].erase(op.calls[0]);  // a call's recordings go with it
        } else {
          m->recs[op.tenant][op.calls[0]].insert(op.seq);
        }
        return "";
      }
      if (!ok && !live && gone) return "";
      if (!ok && live && !present && code == Code::kNotFound) return "";
      return what + (present ? " (call present)" : " (call absent)");
    }
    case 'C':
      if (ok && !live) {
        m->state[op.tenant] = TState::kLive;
        m->calls[op.tenant].clear();
        m->recs[op.tenant].clear();
        return "";
      }
      if (!ok && live && code == Code::kAlreadyExists) return "";
      return what;
    case 'X':
      if (ok && live) {
        m->state[op.tenant] = TState::kPurged;
        m->calls[op.tenant].clear();
        m->recs[op.tenant].clear();
        ++m->receipts;
        return "";
      }
      if (ok && m->state[op.tenant] == TState::kPurged) return "";  // idempotent
      if (!ok && m->state[op.tenant] == TState::kAbsent && code == Code::kNotFound) return "";
      return what;
    case 'F':
      return ok ? "" : what;
  }
  return "unknown op " + std::string(1, op.type);
}

// --- The child: check after recovery ------------------------------------------------------

// Problems go to the parent as "E <kind>: ..." lines; kind "lost" counts as
// a lost acknowledged write in the summary.
void Problem(const std::string& kind, const std::string& what) {
  std::string line = "E " + kind + ": " + what;
  if (line.size() > 3000) line.resize(3000);  // one atomic pipe write (< PIPE_BUF)
  ReportLine(line);
}

// Reads call `idx` of live tenant `t`: the version found, 0 if absent; a
// problem if it is neither absent nor a version in `candidates`.
uint64_t ReadVersion(Store& st, int t, int idx, const std::vector<uint64_t>& candidates) {
  const std::string where = TenantName(t) + "/" + CallId(idx);
  auto got = st.GetCall(TenantName(t), CallId(idx));
  if (got.status().code() == Code::kNotFound) {
    if (std::find(candidates.begin(), candidates.end(), 0) == candidates.end()) {
      Problem("lost", where + " missing; expected version " + std::to_string(candidates[0]));
    }
    return 0;
  }
  if (!got.ok()) {
    Problem("lost", where + ": " + got.status().ToString());
    return 0;
  }
  for (uint64_t c : candidates) {
    if (c != 0 && *got == VersionedCall(t, idx, c)) return c;
  }
  Problem(candidates[0] != 0 ? "lost" : "wrong",
          where + " holds \"" + got->title + "\", none of the expected versions");
  return 0;
}

// Per column family of the shard at `path`: pending-recording markers and
// recording chunks, read raw (a read-only RocksDB beside the store's, no
// info log of its own).
struct RawCounts {
  uint64_t markers = 0, chunks = 0;
};
Result<std::map<std::string, RawCounts>> CountRecordingKeys(const std::string& path) {
  rocksdb::DBOptions dbo;
  dbo.info_log = NewDiscardingInfoLog();
  std::vector<std::string> names;
  rocksdb::Status s = rocksdb::DB::ListColumnFamilies(dbo, path, &names);
  if (!s.ok()) return Status::IOError("list families: " + s.ToString());
  std::vector<rocksdb::ColumnFamilyDescriptor> descs;
  for (const auto& n : names) descs.emplace_back(n, rocksdb::ColumnFamilyOptions());
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  s = rocksdb::DB::OpenForReadOnly(dbo, path, descs, &handles, &raw);
  if (!s.ok()) return Status::IOError("read-only open: " + s.ToString());
  std::unique_ptr<rocksdb::DB> db(raw);
  std::map<std::string, RawCounts> out;
  Status result;
  for (auto* h : handles) {
    RawCounts& c = out[h->GetName()];
    for (char prefix : {format::kRecordingPendingPrefix, format::kRecordingChunkPrefix}) {
      std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions(), h));
      const std::string p(1, prefix);
      for (it->Seek(p); it->Valid() && it->key().starts_with(p); it->Next()) {
        ++(prefix == format::kRecordingChunkPrefix ? c.chunks : c.markers);
      }
      if (!it->status().ok() && result.ok()) result = Status::IOError(it->status().ToString());
    }
  }
  for (auto* h : handles) db->DestroyColumnFamilyHandle(h).PermitUncheckedError();
  db->Close().PermitUncheckedError();
  if (!result.ok()) return result;
  return out;
}

struct CheckCounts {
  uint64_t call_reads = 0, recordings = 0, recording_bytes = 0;
  bool raw = false;  // the raw check ran
};

// Checks the store against `m`, with `pending` (the operation in flight at
// the last kill, if any) allowed either outcome, and applies that outcome to
// `m`. Returns whether the pending operation took effect.
bool CheckStore(Store& st, const std::string& keys, Model* m, const std::optional<OpMsg>& pending,
                bool raw_check, CheckCounts* counts) {
  bool applied = false;
  auto resolve = [&](bool took_effect) {
    if (!took_effect || applied) return;
    applied = true;
    const std::string p = Acknowledge(m, *pending, Code::kOk);
    if (!p.empty()) Problem("model", "in-flight operation applied: " + p);
  };

  // Tenants first: a create or purge in flight may have happened or not.
  for (int t = 0; t < kTenants; ++t) {
    auto d = st.DescribeTenant(TenantName(t));
    const bool live = d.ok() && d->state == TenantState::kActive;
    if (d.ok()) {
      if (d->state != TenantState::kActive && d->state != TenantState::kPurged)
        Problem("tenant", TenantName(t) + " left " + TenantStateName(d->state));
      if (d->quarantined) Problem("tenant", TenantName(t) + " quarantined by recovery");
    } else if (d.status().code() != Code::kNotFound) {
      Problem("tenant", TenantName(t) + ": " + d.status().ToString());
    }
    const bool ambiguous =
        pending && pending->tenant == t &&
        ((pending->type == 'C' && !m->live(t)) || (pending->type == 'X' && m->live(t)));
    if (ambiguous && live != m->live(t)) resolve(true);
    if (live != m->live(t)) {
      Problem(m->live(t) ? "lost" : "wrong", TenantName(t) + (m->live(t) ? " lost" : " came back"));
    }
    if (m->state[t] == TState::kPurged && !(d.ok() && d->state == TenantState::kPurged)) {
      Problem("wrong", TenantName(t) + " not purged");
    }
  }

  // Calls: a put or batch in flight is all old or all new; a delete in
  // flight leaves the old version or nothing.
  for (int t = 0; t < kTenants; ++t) {
    if (!m->live(t)) {
      auto got = st.GetCall(TenantName(t), CallId(0));
      if (got.status().code() != Code::kTenantPurged && got.status().code() != Code::kNotFound)
        Problem("wrong", TenantName(t) + " is not live but read: " + got.status().ToString());
      continue;
    }
    const bool in_flight_here = pending && pending->tenant == t &&
                                (pending->type == 'P' || pending->type == 'M' || pending->type == 'D');
    std::vector<bool> outcomes;  // per call the operation in flight touches: is its effect there?
    for (int idx = 0; idx < CallSlots(t); ++idx) {
      auto it = m->calls[t].find(idx);
      const uint64_t old = it == m->calls[t].end() ? 0 : it->second;
      const bool touched = in_flight_here && std::find(pending->calls.begin(), pending->calls.end(),
                                                       idx) != pending->calls.end();
      std::vector<uint64_t> candidates = {old};
      if (touched) candidates.push_back(pending->type == 'D' ? 0 : pending->seq);
      const uint64_t found = ReadVersion(st, t, idx, candidates);
      ++counts->call_reads;
      if (touched) outcomes.push_back(found != old);
    }
    if (!outcomes.empty()) {
      const bool all = std::all_of(outcomes.begin(), outcomes.end(), [](bool b) { return b; });
      const bool none = std::none_of(outcomes.begin(), outcomes.end(), [](bool b) { return b; });
      if (!all && !none) {
        Problem("atomicity", "operation " + std::to_string(pending->seq) + " (" + pending->type +
                                 ") applied in part: " + ::testing::PrintToString(outcomes));
      }
      resolve(all);
    }
    auto n = st.CountCalls(TenantName(t));
    if (!n.ok()) {
      Problem("count", TenantName(t) + ": " + n.status().ToString());
    } else if (*n != m->calls[t].size()) {
      Problem("count", TenantName(t) + ": time index holds " + std::to_string(*n) +
                           " calls, the model " + std::to_string(m->calls[t].size()));
    }
  }

  // Recordings: every acknowledged one listed with its size and content;
  // the one in flight listed complete or not at all; nothing else.
  for (int t = 0; t < kTenants; ++t) {
    if (!m->live(t)) continue;
    for (int idx = 0; idx < CallSlots(t); ++idx) {
      const bool call_present = m->calls[t].count(idx) > 0;
      auto listed = st.ListRecordings(TenantName(t), CallId(idx));
      const std::string where = TenantName(t) + "/" + CallId(idx);
      std::vector<RecordingInfo> infos;
      if (listed.ok()) {
        infos = std::move(*listed);
      } else if (!(listed.status().code() == Code::kNotFound && !call_present)) {
        Problem("lost", where + ": ListRecordings: " + listed.status().ToString());
        continue;
      }
      std::set<uint64_t> expected;
      if (auto it = m->recs[t].find(idx); it != m->recs[t].end()) expected = it->second;
      const bool candidate = pending && pending->type == 'R' && pending->tenant == t &&
                             pending->calls[0] == idx;
      std::set<uint64_t> seen;
      for (const auto& info : infos) {
        uint64_t seq = 0;
        if (info.recording_id.size() > 1 && info.recording_id[0] == 'r')
          seq = std::strtoull(info.recording_id.c_str() + 1, nullptr, 10);
        if (!expected.count(seq) && !(candidate && seq == pending->seq)) {
          Problem("wrong", where + ": recording " + info.recording_id + " should not exist");
          continue;
        }
        seen.insert(seq);
        const std::string want = RecordingBytes(seq);
        if (info.size != want.size() || info.chunks != Chunks(seq)) {
          Problem("lost", where + ": recording " + info.recording_id + " lists " +
                              std::to_string(info.size) + " bytes in " +
                              std::to_string(info.chunks) + " chunks, not " +
                              std::to_string(want.size()));
          continue;
        }
        std::string got;
        got.reserve(want.size());
        Status r = st.ReadRecording(TenantName(t), CallId(idx), info.recording_id, 0, info.size,
                                    [&](std::string_view b) {
                                      got.append(b);
                                      return Status::OK();
                                    });
        if (!r.ok() || got != want) {
          Problem("lost", where + ": recording " + info.recording_id + " reads back " +
                              (r.ok() ? "different bytes" : r.ToString()));
        }
        ++counts->recordings;
        counts->recording_bytes += want.size();
      }
      for (uint64_t seq : expected) {
        if (!seen.count(seq))
          Problem("lost", where + ": acknowledged recording " + RecordingId(seq) + " missing");
      }
      if (candidate) resolve(seen.count(pending->seq) > 0);
    }
  }

  // Raw: no pending marker survives the open; chunks are exactly those of
  // the listed recordings (none of an interrupted one left behind). A
  // read-only open of every shard costs more than the rest of the check
  // together, so the parent asks for it when a recording was in flight at a
  // kill since the last raw check (only that leaves a marker and chunks
  // without a manifest), every 8th cycle, and at the end.
  auto tenants = st.ListTenants();
  counts->raw = raw_check && tenants.ok();
  if (!raw_check) {
  } else if (!tenants.ok()) {
    Problem("tenant", "ListTenants: " + tenants.status().ToString());
  } else {
    const auto paths = st.ShardPaths();
    std::vector<std::map<std::string, RawCounts>> raw(paths.size());
    for (size_t i = 0; i < paths.size(); ++i) {
      // The store's compactions may delete a file the read-only open is
      // about to read (the race of a reader beside a writer): retry.
      auto c = CountRecordingKeys(paths[i]);
      for (int attempt = 0; !c.ok() && attempt < 50; ++attempt) {
        ::usleep(2000);
        c = CountRecordingKeys(paths[i]);
      }
      if (!c.ok()) {
        Problem("raw", "shard " + std::to_string(i) + ": " + c.status().ToString());
      } else {
        raw[i] = std::move(*c);
      }
    }
    for (const auto& info : *tenants) {
      if (info.state != TenantState::kActive || info.shard >= raw.size()) continue;
      int t = 0;
      while (t < kTenants && TenantName(t) != info.tenant_id) ++t;
      if (t == kTenants) continue;
      uint64_t want_chunks = 0;
      for (const auto& [idx, seqs] : m->recs[t]) {
        for (uint64_t seq : seqs) want_chunks += Chunks(seq);
      }
      auto found = raw[info.shard].find(info.column_family);
      if (found == raw[info.shard].end()) {
        Problem("raw", TenantName(t) + ": family " + info.column_family + " not in shard " +
                           std::to_string(info.shard));
        continue;
      }
      const RawCounts c = found->second;
      if (c.markers != 0)
        Problem("recording", TenantName(t) + ": " + std::to_string(c.markers) +
                                 " pending-recording markers after the open");
      if (c.chunks != want_chunks)
        Problem("recording", TenantName(t) + ": " + std::to_string(c.chunks) +
                                 " recording chunks stored, the model's recordings have " +
                                 std::to_string(want_chunks));
    }
  }

  // Keys, families, and every file of the key directory accounted for.
  crashtest::KeyCheck kc = crashtest::CheckKeysAndFamilies(st, keys);
  for (const auto& p : kc.problems) Problem("keys", p);
  for (const auto& f : kc.stray) {
    Problem("keys", "leftover file in the key directory after recovery: " + f);
  }
  auto receipts = st.ListReceipts();
  if (!receipts.ok()) {
    Problem("receipts", receipts.status().ToString());
  } else {
    if (receipts->size() != m->receipts) {
      Problem("receipts", std::to_string(receipts->size()) + " receipts, " +
                              std::to_string(m->receipts) + " purges");
    }
    auto pk = st.SigningPublicKey();
    if (!pk.ok()) {
      Problem("receipts", "SigningPublicKey: " + pk.status().ToString());
    } else if (Status s = VerifyReceiptChain(*receipts, *pk); !s.ok()) {
      Problem("receipts", s.ToString());
    }
  }
  auto v = st.Verify();
  if (!v.ok()) {
    Problem("verify", v.status().ToString());
  } else if (v->records_failed != 0 || !v->ok()) {
    Problem("verify", ::testing::PrintToString(v->failures) + " " +
                          ::testing::PrintToString(v->unchecked));
  }
  return applied;
}

// --- The child: the workload ----------------------------------------------------------------

// Random operations until killed. Keeps its own copy of the model to choose
// useful operations and to check its reads.
[[noreturn]] void RunWorkload(Store& st, Model m, uint64_t seed) {
  std::mt19937_64 rng(seed);
  auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<uint64_t>(n)); };
  auto pick_scratch = [&](bool want_live, int percent) {
    std::vector<int> good;
    for (int t = kPersistent; t < kTenants; ++t) {
      if (m.live(t) == want_live) good.push_back(t);
    }
    if (good.empty() || pick(100) >= percent) return kPersistent + pick(kScratch);
    return good[static_cast<size_t>(pick(static_cast<int>(good.size())))];
  };
  auto write_tenant = [&] { return pick(100) < 75 ? pick(kPersistent) : pick_scratch(true, 90); };
  auto present_call = [&](int t, bool for_recording) {
    std::vector<int> good;
    for (const auto& [idx, v] : m.calls[t]) {
      if (!for_recording || m.recordings(t, idx) < kMaxRecordingsPerCall) good.push_back(idx);
    }
    if (good.empty() || pick(100) >= 85) return pick(CallSlots(t));
    return good[static_cast<size_t>(pick(static_cast<int>(good.size())))];
  };
  for (;;) {
    OpMsg op;
    op.seq = m.next_seq++;
    const int r = pick(100);
    if (r < 76) {
      op.tenant = write_tenant();
      if (r < 26) {
        op.type = 'P';
        op.calls = {pick(CallSlots(op.tenant))};
      } else if (r < 38) {
        op.type = 'M';
        std::set<int> idx;
        const int n = 2 + pick(5);
        while (static_cast<int>(idx.size()) < std::min(n, CallSlots(op.tenant)))
          idx.insert(pick(CallSlots(op.tenant)));
        op.calls.assign(idx.begin(), idx.end());
      } else if (r < 50) {
        op.type = 'D';
        op.calls = {present_call(op.tenant, false)};
      } else if (r < 57) {
        op.type = 'C';
        op.tenant = pick_scratch(false, 90);
      } else if (r < 63) {
        op.type = 'X';
        op.tenant = pick_scratch(true, 80);
      } else if (r < 74) {
        op.type = 'R';
        op.calls = {present_call(op.tenant, true)};
        uint64_t bytes = 0;
        std::vector<std::pair<int, int>> with;  // (tenant, call) holding recordings
        for (int t = 0; t < kTenants; ++t) {
          for (const auto& [idx, seqs] : m.recs[t]) {
            for (uint64_t s : seqs) bytes += RecordingSize(s);
            if (!seqs.empty()) with.emplace_back(t, idx);
          }
        }
        if (bytes > kRecordingBudget && !with.empty()) {
          const auto& [t, idx] = with[static_cast<size_t>(pick(static_cast<int>(with.size())))];
          op.type = 'D';
          op.tenant = t;
          op.calls = {idx};
        }
      } else {
        op.type = 'F';
        op.tenant = 0;
      }
    } else {
      // A read, checked here against the model (not reported: no effect).
      const int t = write_tenant();
      const int idx = pick(CallSlots(t));
      auto got = st.GetCall(TenantName(t), CallId(idx));
      auto want = m.calls[t].find(idx);
      std::string problem;
      if (!m.live(t)) {
        if (got.ok()) problem = "read of a tenant that is not live succeeded";
      } else if (want == m.calls[t].end()) {
        if (got.status().code() != Code::kNotFound)
          problem = "absent call read: " + got.status().ToString();
      } else if (!got.ok()) {
        problem = "acknowledged call unreadable: " + got.status().ToString();
      } else if (!(*got == VersionedCall(t, idx, want->second))) {
        problem = "call differs from version " + std::to_string(want->second);
      }
      if (!problem.empty()) Problem("read", TenantName(t) + "/" + CallId(idx) + ": " + problem);
      continue;
    }
    ReportLine(op.Encode());
    Status s;
    const std::string tenant = TenantName(op.tenant);
    switch (op.type) {
      case 'P':
        s = st.PutCall(tenant, VersionedCall(op.tenant, op.calls[0], op.seq)).status();
        break;
      case 'M': {
        std::vector<Call> calls;
        for (int c : op.calls) calls.push_back(VersionedCall(op.tenant, c, op.seq));
        s = st.PutCalls(tenant, calls).status();
        break;
      }
      case 'D':
        s = st.DeleteCall(tenant, CallId(op.calls[0]));
        break;
      case 'C':
        s = st.CreateTenant({.tenant_id = tenant}).status();
        break;
      case 'X':
        s = st.PurgeTenant(tenant).status();
        break;
      case 'F':
        s = st.Flush();
        break;
      case 'R': {
        RecordingSpec spec;
        spec.recording_id = RecordingId(op.seq);
        spec.content_type = "audio/ogg";
        spec.duration_ms = static_cast<uint32_t>(op.seq % 100000);
        auto w = st.CreateRecording(tenant, CallId(op.calls[0]), spec);
        if (!w.ok()) {
          s = w.status();
          break;
        }
        const std::string bytes = RecordingBytes(op.seq);
        constexpr size_t kPiece = 64 << 10;
        for (size_t off = 0; s.ok() && off < bytes.size(); off += kPiece) {
          s = (*w)->Append(std::string_view(bytes).substr(off, kPiece));
        }
        if (s.ok()) s = (*w)->Finish().status();
        break;
      }
    }
    ReportLine("A " + std::to_string(op.seq) + " " + std::to_string(static_cast<int>(s.code())));
    std::string problem = Acknowledge(&m, op, s.code());
    if (!problem.empty()) Problem("ack", problem + ": " + s.ToString());
  }
}

enum class ChildMode { kCreate, kWork, kRecoverOnly, kCheckOnly };

// The body of a forked child; returns its exit code (killed before, except
// kCreate and kCheckOnly).
int ChildMain(ChildMode mode, const std::string& db, const std::string& keys, const Model& model,
              const std::optional<OpMsg>& pending, uint64_t seed, bool raw_check = true) {
  const auto start = std::chrono::steady_clock::now();
  auto ms_since = [](std::chrono::steady_clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                 t)
        .count();
  };
  auto opened = Store::Open(StoreOptions(keys), db);
  if (!opened.ok()) {
    ReportLine("X open: " + opened.status().ToString());
    return 1;
  }
  ReportLine("O");
  Store& st = **opened;
  if (mode == ChildMode::kRecoverOnly) {
    for (;;) ::pause();
  }
  if (mode == ChildMode::kCreate) {
    for (int t = 0; t < kPersistent; ++t) {
      Status s = st.CreateTenant({.tenant_id = TenantName(t)}).status();
      if (!s.ok()) Problem("setup", s.ToString());
    }
    ReportLine("V");
    opened->reset();
    return 0;
  }
  const auto open_ms = ms_since(start);
  const auto check_start = std::chrono::steady_clock::now();
  Model m = model;
  CheckCounts counts;
  const bool applied = CheckStore(st, keys, &m, pending, raw_check, &counts);
  if (pending) ReportLine(std::string("R ") + (applied ? "1" : "0"));
  ReportLine("V " + std::to_string(counts.call_reads) + " " + std::to_string(counts.recordings) +
             " " + std::to_string(counts.recording_bytes) + " " + std::to_string(open_ms) + " " +
             std::to_string(ms_since(check_start)) + " " + (counts.raw ? "1" : "0"));
  if (mode == ChildMode::kCheckOnly) {
    opened->reset();
    return 0;
  }
  RunWorkload(st, std::move(m), seed);
}

// --- The parent -------------------------------------------------------------------------

struct Stats {
  uint64_t cycles = 0, acked = 0, in_flight = 0, kills_in_recovery = 0, reads_checked = 0;
  uint64_t recovery_kills = 0, recordings_checked = 0, recording_bytes_checked = 0;
  uint64_t lost = 0, failed_opens = 0, problems = 0;
  uint64_t checks = 0, open_ms = 0, check_ms = 0, raw_checks = 0;  // of the children that got through the check
  std::map<char, uint64_t> in_flight_by_type, in_flight_applied;
};

// One forked child: waits for "V" (if `after_check`) and then `delay_ms`,
// or `delay_ms` from its start; SIGKILLs it (unless `kill` is false: then
// waits for its exit); returns its lines.
std::vector<std::string> RunChild(const std::function<int()>& body, int delay_ms, bool after_check,
                                  bool kill, const std::string& log) {
  crashtest::Child c = crashtest::Fork(body, log);
  std::string partial;
  std::vector<std::string> lines;
  bool open = true;
  auto checked = [&] {
    return std::any_of(lines.begin(), lines.end(), [](const std::string& l) {
      return l[0] == 'V' || l[0] == 'X';
    });
  };
  if (after_check || !kill) {
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    while (open && !checked()) {
      if (std::chrono::steady_clock::now() > give_up) {
        ADD_FAILURE() << "the child did not open and check the store within 120 s";
        break;
      }
      open = crashtest::ReadLinesFor(c.fd, 1000, &partial, &lines);
    }
  }
  if (kill) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(delay_ms);
    while (open) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                      deadline - std::chrono::steady_clock::now())
                      .count();
      if (left <= 0) break;
      open = crashtest::ReadLinesFor(c.fd, static_cast<int>(left), &partial, &lines);
    }
    ::kill(c.pid, SIGKILL);
  }
  while (crashtest::ReadLinesFor(c.fd, 1000, &partial, &lines)) {  // EOF: the child is gone
  }
  ::close(c.fd);
  const int status = crashtest::WaitChild(c.pid);
  if (kill) {
    EXPECT_TRUE(crashtest::KilledBySigkill(status))
        << "child " << crashtest::DescribeWait(status) << "\n"
        << crashtest::Tail(log);
  } else {
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << "child " << crashtest::DescribeWait(status) << "\n"
        << crashtest::Tail(log);
  }
  EXPECT_TRUE(partial.empty()) << "half a line from the child: " << partial;
  return lines;
}

// Log-uniform in [1, max_ms].
int SkewedDelay(std::mt19937_64& rng, int max_ms) {
  const double u = std::uniform_real_distribution<double>(0.0, 1.0)(rng);
  return std::clamp(static_cast<int>(std::exp(u * std::log(static_cast<double>(max_ms)))), 1,
                    max_ms);
}

// Applies a child's lines to the parent's model and stats. Returns false
// (with failures recorded) on a problem.
void Absorb(const std::vector<std::string>& lines, Model* m, std::optional<OpMsg>* pending,
            Stats* stats, bool* opened, bool* raw_due = nullptr) {
  for (const auto& line : lines) {
    if (line == "O") {
      *opened = true;
    } else if (line[0] == 'V') {
      std::istringstream in(line.substr(1));
      uint64_t reads = 0, recs = 0, bytes = 0, open_ms = 0, check_ms = 0, raw = 0;
      in >> reads >> recs >> bytes >> open_ms >> check_ms >> raw;
      if (raw) {
        ++stats->raw_checks;
        if (raw_due) *raw_due = false;
      }
      stats->open_ms += open_ms;
      stats->check_ms += check_ms;
      ++stats->checks;
      stats->reads_checked += reads;
      stats->recordings_checked += recs;
      stats->recording_bytes_checked += bytes;
    } else if (line[0] == 'R') {
      if (!*pending) {
        ADD_FAILURE() << "resolution without an operation in flight: " << line;
        continue;
      }
      if (line == "R 1") {
        ++stats->in_flight_applied[(*pending)->type];
        EXPECT_EQ(Acknowledge(m, **pending, Code::kOk), "") << "seq " << (*pending)->seq;
      }
      pending->reset();
    } else if (line[0] == 'B') {
      if (*pending) ADD_FAILURE() << "an operation began with another unresolved: " << line;
      *pending = OpMsg::Decode(line);
    } else if (line[0] == 'A') {
      std::istringstream in(line.substr(2));
      uint64_t seq;
      int code;
      in >> seq >> code;
      if (!*pending || (*pending)->seq != seq) {
        ADD_FAILURE() << "acknowledgement of an operation not begun: " << line;
        continue;
      }
      EXPECT_EQ(Acknowledge(m, **pending, static_cast<Code>(code)), "") << "seq " << seq;
      m->next_seq = seq + 1;
      ++stats->acked;
      pending->reset();
    } else if (line[0] == 'X') {
      ++stats->failed_opens;
      ADD_FAILURE() << "child: " << line;
    } else {
      if (line.rfind("E lost", 0) == 0) ++stats->lost;
      ++stats->problems;
      ADD_FAILURE() << "child: " << line;
    }
  }
}

// An abort inside the engine or RocksDB (an assertion: Debian's 7.8.3 keeps
// them) in any crash suite's process leaves its stack on stderr, so a
// failure seen once in CI says where it happened (crash_util.cc).
TEST(KillLoopTest, AnAbortPrintsItsStack) {
  EXPECT_EXIT(std::abort(), ::testing::KilledBySignal(SIGABRT),
              std::string(crashtest::FatalSignalBanner()).substr(4) + "\n.*kill_loop_test");
}

TEST(KillLoopTest, AcknowledgedWritesSurviveSigkill) {
  const uint64_t seed = crashtest::SeedFromEnv();
  const int64_t cycles =
      crashtest::EnvInt("CALLVAULT_KILL_CYCLES", crashtest::SoakMode() ? 3000 : 1000);
  std::printf("[kill-loop] seed=%llu cycles=%lld (replay: CALLVAULT_SEED=%llu)\n",
              static_cast<unsigned long long>(seed), static_cast<long long>(cycles),
              static_cast<unsigned long long>(seed));
  std::fflush(stdout);
  // The parent never opens a store: forked children need a parent with one
  // thread (RocksDB starts background threads at the first open).
  ASSERT_TRUE(crashtest::SingleThreaded()) << "the kill loop forks; it needs a single thread";
  testutil::TempDir tmp;
  const std::string db = tmp.Sub("db"), keys = tmp.Sub("keys"), log = tmp.Sub("child.log");
  Model m;
  std::optional<OpMsg> pending;
  Stats stats;
  bool opened = false;
  bool raw_due = true;
  {
    auto lines = RunChild([&] { return ChildMain(ChildMode::kCreate, db, keys, m, pending, 0); },
                          0, false, /*kill=*/false, log);
    Absorb(lines, &m, &pending, &stats, &opened);
    ASSERT_FALSE(HasFailure());
    for (int t = 0; t < kPersistent; ++t) m.state[t] = TState::kLive;
  }
  std::mt19937_64 rng(seed);
  const auto t0 = std::chrono::steady_clock::now();
  auto summary = [&] {
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::ostringstream o;
    o << "[kill-loop] " << stats.cycles << " cycles in " << secs << " s: " << stats.acked
      << " operations acknowledged; " << stats.in_flight << " in flight at the kill (";
    for (char t : std::string("PMDCXRF")) {
      o << t << " " << stats.in_flight_by_type[t] << " applied " << stats.in_flight_applied[t]
        << (t == 'F' ? "" : ", ");
    }
    o << "); " << stats.recovery_kills << " kills of a recovering child; " << stats.reads_checked
      << " call reads and " << stats.recordings_checked << " recordings ("
      << stats.recording_bytes_checked << " bytes) checked; a child's open took "
      << (stats.checks ? stats.open_ms / stats.checks : 0) << " ms and its check "
      << (stats.checks ? stats.check_ms / stats.checks : 0) << " ms on average; " << stats.raw_checks
      << " raw checks of the recording keys\n";
    o << "T1: " << stats.cycles << " cycles, " << stats.kills_in_recovery << " kills in recovery, "
      << stats.lost << " lost, " << stats.failed_opens << " failed opens, " << stats.problems
      << " other problems, seed " << seed << "\n";
    std::printf("%s", o.str().c_str());
    std::fflush(stdout);
  };
  for (int64_t cycle = 0; cycle < cycles; ++cycle) {
    SCOPED_TRACE("cycle " + std::to_string(cycle) + " (seed " + std::to_string(seed) + ")");
    // The kill comes 1-500 ms after the child's check finished, or, in a
    // quarter of the cycles, after its start (then often inside the open).
    const bool from_start = rng() % 4 == 0;
    const int delay_ms = SkewedDelay(rng, 500);
    const uint64_t child_seed = rng();
    const uint64_t carried = pending ? pending->seq : 0;  // in flight since an earlier kill
    opened = false;
    if (cycle % 8 == 0) raw_due = true;
    auto lines = RunChild(
        [&] { return ChildMain(ChildMode::kWork, db, keys, m, pending, child_seed, raw_due); },
        delay_ms, /*after_check=*/!from_start, /*kill=*/true, log);
    Absorb(lines, &m, &pending, &stats, &opened, &raw_due);
    if (pending && pending->type == 'R') raw_due = true;
    if (!opened) ++stats.kills_in_recovery;
    if (pending && pending->seq != carried) {
      m.next_seq = pending->seq + 1;
      ++stats.in_flight;
      ++stats.in_flight_by_type[pending->type];
    }
    // Sometimes one to three more children that only open (recover) and are
    // killed 1-150 ms after their start.
    for (int chain = 0; chain < 3 && rng() % 3 == 0 && !HasFailure(); ++chain) {
      bool rec_opened = false;
      auto rec_lines = RunChild(
          [&] { return ChildMain(ChildMode::kRecoverOnly, db, keys, m, pending, 0); },
          SkewedDelay(rng, 150), /*after_check=*/false, /*kill=*/true, log);
      std::optional<OpMsg> none;
      Absorb(rec_lines, &m, &none, &stats, &rec_opened);
      ++stats.recovery_kills;
      if (!rec_opened) ++stats.kills_in_recovery;
    }
    ++stats.cycles;
    if (stats.cycles % 250 == 0 && stats.cycles < static_cast<uint64_t>(cycles)) {
      std::printf("[kill-loop] %llu cycles, %.0f s\n", static_cast<unsigned long long>(stats.cycles),
                  std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      std::fflush(stdout);
    }
    if (HasFailure()) {
      summary();
      std::printf("[kill-loop] stopping at cycle %lld; child log:\n%s\n",
                  static_cast<long long>(cycle), crashtest::Tail(log).c_str());
      return;
    }
    ::unlink(log.c_str());
  }
  // A last child checks what the last kill left, and exits.
  auto lines = RunChild([&] { return ChildMain(ChildMode::kCheckOnly, db, keys, m, pending, 0); },
                        0, false, /*kill=*/false, log);
  Absorb(lines, &m, &pending, &stats, &opened);
  EXPECT_FALSE(pending) << "the last operation in flight was not resolved";
  summary();
}

}  // namespace
}  // namespace callvault
