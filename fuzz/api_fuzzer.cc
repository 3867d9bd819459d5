// api_fuzzer (testing.md T6): sequences of API operations against a model.
//
// Each input is decoded into up to kMaxOps operations on a small store --
// PutCall, PutCalls (batches), UpdateCall (a subset of the parts, from a
// patch), DeleteCall (each write without an expected version, with the
// call's version, a stale one or 0), CreateTenant, PurgeTenant, PlaceHold /
// ReleaseHold, Erase of a subject (delete or redact, dry runs, max_calls),
// GetCall, FindReferences, ListCalls by participant, ReadChanges, and close
// + reopen -- and every result is checked against a std::map model: the
// returned code, and after every operation that changes a tenant, the
// tenant's whole content (CountCalls, ListCalls paged two at a time, GetCall
// of every call with all its parts, and every call's version). A purged
// tenant reads as kTenantPurged; a held call or tenant is never changed,
// deleted, erased or purged; a batch is all or nothing; an idempotent re-put
// by source_call_id keeps the stored call_id; UpdateCall changes only the
// parts it names; a write with an expected version other than the call's is
// kConflict and changes nothing; every version a write hands out (returned,
// or read back after a redaction) is greater than every version the tenant
// handed out before it in the input (decision 0028: a per-tenant counter),
// so greater than the call's previous one. The model records the change-feed
// events each write must make (kind, call id, cause, version; decision
// 0030), and ReadChanges from the model's last token (an operation, and at
// the end of every input for every tenant) must return exactly those since
// (an erasure's events in any order among themselves); a purge resets the
// tenant's feed. Any disagreement prints the operation and aborts
// (a libFuzzer crash).
//
// Speed: one store is kept open across inputs (opening one costs ~20 ms,
// creating a tenant ~10 ms under ASan), in a directory on /dev/shm when it
// exists (or $CALLVAULT_FUZZ_DIR; named by pid, removed at exit, and by a
// later run if the process died), with sync_writes off and no RocksDB
// OPTIONS file (Options::keep_rocksdb_options_file; docs/decisions/0026),
// RocksDB's preallocation of WALs and MANIFESTs off (NoPreallocFS), and at
// most kMaxTenantChanges tenant creates/purges per input. Every input starts
// from the same state as seen through the API: each of the kTenants tenants
// live, empty and without holds (the harness releases the holds and deletes
// the calls the previous input left, and creates again a tenant it purged,
// then reads each tenant's change feed to its end so that the input's model
// starts from that token), so an input replayed alone on a fresh store
// returns the same results (versions and feed sequences aside: they are
// checked relative to the input's own writes). Not
// reset: a zstd dictionary a tenant trained (Options::dictionary_training_calls)
// stays, which changes how records are compressed but no result. Every
// kWipeEvery inputs the store is deleted and created afresh, which bounds
// its growth (WAL files, tombstones, receipts, audit events).
#include <fuzzer/FuzzedDataProvider.h>
#include <rocksdb/env.h>
#include <rocksdb/file_system.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "callvault/key_provider.h"
#include "callvault/store.h"
#include "tests/model/redact_rule.h"
#include "tests/testutil/no_prealloc_fs.h"

namespace callvault {
namespace {

constexpr int kTenants = 3;
constexpr int kMaxOps = 24;
// Every kWipeEvery inputs the store is deleted and created afresh
// (CALLVAULT_FUZZ_WIPE_EVERY overrides it, to measure). A tenant that gets
// few writes pins every WAL since its memtable's first write (with
// avoid_flush_during_recovery they stay across opens), so the WALs of a
// kept store grow with the inputs: after 3,000 inputs one shard had ~250
// WAL files, each reopen scanned (walscan) and replayed all of them, and
// reopens were ~45% of the time. Measured (CPU per execution, runs side
// by side at the same load): 14.9 ms at 5,000, 12.2 ms at 250 (5,000
// fuzzed executions each); 7% less again at 50 than at 250 (the same
// 2,634 inputs replayed). A wipe (a new store, kTenants creates) costs
// about one reopen. Not reached any more: stores older than 50 inputs
// (hundreds of WAL files, many flushes by size); recovery over many WALs
// is T1, T2 and T5's (docs/decisions/0026, amendment).
constexpr uint64_t kWipeEvery = 50;
uint64_t WipeEvery() {
  static const uint64_t n = [] {
    const char* v = std::getenv("CALLVAULT_FUZZ_WIPE_EVERY");
    return v != nullptr ? std::strtoull(v, nullptr, 10) : kWipeEvery;
  }();
  return n;
}
constexpr int64_t kT0 = 1'767'225'600'000'000;  // 2026-01-01T00:00:00Z

// At most this many tenant creates and purges that change a tenant (a
// column family created or dropped, the keyring re-sealed, a receipt: ~10 ms
// each under ASan, and every purge costs the next input's reset a create)
// per input; CALLVAULT_FUZZ_TENANT_CHANGES overrides it (to measure).
constexpr int kMaxTenantChanges = 2;
int TenantChangeBudget() {
  static const int n = [] {
    const char* v = std::getenv("CALLVAULT_FUZZ_TENANT_CHANGES");
    return v != nullptr ? std::atoi(v) : kMaxTenantChanges;
  }();
  return n;
}

uint32_t TenantsPerShard() {
  const char* v = std::getenv("CALLVAULT_FUZZ_TENANTS_PER_SHARD");
  return v != nullptr ? static_cast<uint32_t>(std::atoi(v)) : 2;
}

// RocksDB's preallocation off: tests/testutil/no_prealloc_fs.h says why.
// CALLVAULT_FUZZ_PREALLOC=1 keeps it.
using testutil::NoPreallocFS;

rocksdb::Env* FuzzEnv() {
  static rocksdb::Env* env = [] {
    const char* v = std::getenv("CALLVAULT_FUZZ_PREALLOC");
    if (v != nullptr && *v == '1') return rocksdb::Env::Default();
    // Outlives every store (never deleted: the harness is removed at exit).
    return rocksdb::NewCompositeEnv(std::make_shared<NoPreallocFS>(rocksdb::FileSystem::Default()))
        .release();
  }();
  return env;
}

bool KeepOptionsFile() {
  const char* v = std::getenv("CALLVAULT_FUZZ_KEEP_OPTIONS");
  return v != nullptr && *v == '1';
}

// CALLVAULT_FUZZ_STATS=1: at exit, what the inputs ran and where the time
// went (to size the budgets below; docs/decisions/0026).
struct Stats {
  uint64_t inputs = 0, ops = 0, creates = 0, purges = 0, reopens = 0, skipped = 0, wipes = 0;
  uint64_t updates = 0, conflicts = 0, feed_events = 0;  // applied, kConflict, events checked
  double reset_s = 0, create_s = 0, purge_s = 0, reopen_s = 0, total_s = 0;
};
Stats g_stats;

struct Timed {
  double* into;
  std::chrono::steady_clock::time_point t0 = std::chrono::steady_clock::now();
  ~Timed() { *into += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); }
};

void PrintStats() {
  const Stats& s = g_stats;
  std::fprintf(stderr,
               "api_fuzzer stats: %llu inputs, %llu ops, %llu creates, %llu purges, %llu reopens, "
               "%llu over budget, %llu wipes, %llu updates, %llu conflicts, %llu feed events "
               "checked; seconds: total %.1f, reset %.1f, create %.1f, purge %.1f, reopen %.1f\n",
               (unsigned long long)s.inputs, (unsigned long long)s.ops, (unsigned long long)s.creates,
               (unsigned long long)s.purges, (unsigned long long)s.reopens,
               (unsigned long long)s.skipped, (unsigned long long)s.wipes,
               (unsigned long long)s.updates, (unsigned long long)s.conflicts,
               (unsigned long long)s.feed_events, s.total_s, s.reset_s,
               s.create_s, s.purge_s, s.reopen_s);
}

const char* const kEmails[] = {"ann@a.example", "bob@b.example", "cat@c.example"};
const char* const kPhones[] = {"+14155550100", "+14155550101"};
const char* const kUsers[] = {"u0", "u1", "u2"};

std::string TenantId(int t) { return "tenant-" + std::to_string(t); }

[[noreturn]] void Fail(const std::string& what) {
  std::fprintf(stderr, "api_fuzzer: model mismatch: %s\n", what.c_str());
  std::fflush(stderr);
  std::abort();
}

void Expect(bool ok, const std::string& what) {
  if (!ok) Fail(what);
}

template <typename T>
const Status& StatusOf(const Result<T>& r) {
  return r.status();
}
const Status& StatusOf(const Status& s) { return s; }

template <typename R>
void ExpectCode(const R& r, Code want, const std::string& op) {
  const Status& s = StatusOf(r);
  if (s.code() != want) {
    Fail(op + ": got " + s.ToString() + ", want " + CodeName(want));
  }
  if (want == Code::kConflict) ++g_stats.conflicts;
}

// --- The model ----------------------------------------------------------------

struct MHold {
  std::string hold_id;
  std::string call_id;  // "" = the tenant
};

// A change-feed event the model expects (decision 0030). Events of one
// Erase share a nonzero `group` and may come in any order among themselves.
struct MEvent {
  ChangeKind kind = ChangeKind::kPut;
  ChangeCause cause = ChangeCause::kUser;
  std::string call_id;
  uint64_t version = 0;
  int group = 0;
};

struct MTenant {
  bool live = true;  // else purged (every tenant exists, live, at the start of an input)
  // By call_id; created_at/updated_at zeroed, `version` the store's.
  std::map<std::string, Call> calls;
  std::vector<MHold> holds;
  uint64_t purge_receipt = 0;  // the receipt sequence of its purge (when !live)
  // The greatest version a write of this input handed out in the tenant.
  uint64_t max_version = 0;
  // The change feed: ReadChanges resumes at `feed_token`; `feed` holds the
  // events written since, in commit order; `feed_seq` the sequence of the
  // last event read (0: none read in this input).
  std::string feed_token;
  std::vector<MEvent> feed;
  uint64_t feed_seq = 0;

  bool TenantHeld() const {
    return std::any_of(holds.begin(), holds.end(), [](const MHold& h) { return h.call_id.empty(); });
  }
  bool CallHeld(const std::string& id) const {
    return std::any_of(holds.begin(), holds.end(), [&](const MHold& h) { return h.call_id == id; });
  }
  // The stored call a put of `c` resolves to: by source id, else by call id.
  std::string Target(const Call& c) const {
    if (!c.source_call_id.empty()) {
      for (const auto& [id, stored] : calls) {
        if (stored.source_system == c.source_system && stored.source_call_id == c.source_call_id) {
          return id;
        }
      }
    }
    return c.call_id;
  }
};

bool References(const Call& c, const std::string& subject) {
  for (const auto& p : c.participants) {
    if (p.email == subject || p.phone == subject) return true;
  }
  for (const auto& l : c.crm_links) {
    if (l.object_id == subject) return true;
  }
  return false;
}

// The model of Erase's redaction (subjects.cc): tests/model/redact_rule.h,
// shared with the model tests. The fuzzer's CRM object ids are either one
// of its (normalised) emails or not a subject at all: a link goes when its
// object id is the subject.
void ModelRedact(Call* c, const std::string& subject) {
  model::RedactSubject(c, subject, [&](const std::string& object_id) { return object_id == subject; });
}

// --- The store under test -------------------------------------------------------

class Harness {
 public:
  Harness() {
    const char* base = std::getenv("CALLVAULT_FUZZ_DIR");
    std::string b = base ? base : (std::filesystem::is_directory("/dev/shm") ? "/dev/shm" : "/tmp");
    // A run that crashed (a finding) or was killed left its store behind:
    // remove those of processes that are gone.
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(b, ec)) {
      const std::string name = e.path().filename().string();
      const std::string prefix = "callvault-api-fuzz-";
      if (name.rfind(prefix, 0) != 0) continue;
      const long pid = std::strtol(name.c_str() + prefix.size(), nullptr, 10);
      if (pid > 0 && kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) {
        std::filesystem::remove_all(e.path(), ec);
      }
    }
    std::string tmpl = b + "/callvault-api-fuzz-" + std::to_string(getpid()) + "-XXXXXX";
    if (mkdtemp(tmpl.data()) == nullptr) Fail("mkdtemp in " + b);
    root_ = tmpl;
    Wipe();
  }
  ~Harness() {
    store_.reset();
    std::error_code ec;
    std::filesystem::remove_all(root_, ec);
  }

  Store* store() { return store_.get(); }

  void Open() {
    store_.reset();
    FileKeyProviderOptions kpo;
    auto kp = NewFileKeyProvider(root_ + "/keys", kpo);
    if (!kp.ok()) Fail("key provider: " + kp.status().ToString());
    Options o;
    o.key_provider = *kp;
    o.env = FuzzEnv();
    o.create_if_missing = true;
    o.region = "eu-west";
    o.sync_writes = false;
    o.max_tenants_per_shard = TenantsPerShard();
    o.block_cache_bytes = 1u << 20;
    o.write_buffer_budget_bytes = 8u << 20;
    o.write_buffer_bytes = 256u << 10;
    o.background_threads = 1;
    o.dictionary_training_calls = 5;
    // No OPTIONS file (rewritten and re-parsed by RocksDB at every open,
    // tenant create and purge: a third of the CPU; docs/decisions/0026),
    // as every store by default since decision 0069;
    // CALLVAULT_FUZZ_KEEP_OPTIONS=1 fuzzes the store that keeps them.
    o.keep_rocksdb_options_file = KeepOptionsFile();
    auto s = Store::Open(o, root_ + "/db");
    if (!s.ok()) Fail("open: " + s.status().ToString());
    store_ = std::move(s).value();
  }

  // A fresh store in which every tenant exists, live and empty.
  void Wipe() {
    store_.reset();
    std::error_code ec;
    std::filesystem::remove_all(root_ + "/db", ec);
    std::filesystem::remove_all(root_ + "/keys", ec);
    Open();
    for (int t = 0; t < kTenants; ++t) {
      auto c = store_->CreateTenant({.tenant_id = TenantId(t)});
      if (!c.ok()) Fail("setup create: " + c.status().ToString());
    }
    inputs_since_wipe_ = 0;
    ++g_stats.wipes;
  }

  // Brings the store back to "every tenant live, empty, without holds" from
  // the state the previous input left (`last`, its model), and returns each
  // tenant's change-feed token at the end of its feed.
  std::array<std::string, kTenants> Reset(const std::array<MTenant, kTenants>* last) {
    std::array<std::string, kTenants> tokens;
    if (++inputs_since_wipe_ >= WipeEvery()) {
      Wipe();
      return tokens;  // fresh tenants: empty feeds
    }
    if (last == nullptr) return tokens;
    for (int t = 0; t < kTenants; ++t) {
      const MTenant& m = (*last)[t];
      if (!m.live) {
        auto c = store_->CreateTenant({.tenant_id = TenantId(t)});
        if (!c.ok()) Fail("reset create: " + c.status().ToString());
        continue;  // a new tenant: its feed starts at ""
      }
      tokens[t] = m.feed_token;
      for (const auto& h : m.holds) {
        Status s = store_->ReleaseHold(TenantId(t), h.hold_id);
        if (!s.ok()) Fail("reset release hold: " + s.ToString());
      }
      for (const auto& [id, c] : m.calls) {
        Status s = store_->DeleteCall(TenantId(t), id);
        if (!s.ok()) Fail("reset delete: " + s.ToString());
      }
      // To the end of the feed: the previous input's unread events and the
      // deletes above.
      for (int pages = 0;; ++pages) {
        if (pages > 10000) Fail("reset: a change feed without end");
        auto page = store_->ReadChanges(TenantId(t), tokens[t], 1000);
        if (!page.ok()) Fail("reset ReadChanges: " + page.status().ToString());
        tokens[t] = page->next_token;
        if (page->events.size() < 1000) break;
      }
    }
    return tokens;
  }

 private:
  std::string root_;
  std::unique_ptr<Store> store_;
  uint64_t inputs_since_wipe_ = 0;
};

Harness& TheHarness() {
  static Harness* h = new Harness();  // outlives every input; removed at exit
  static const bool registered = [] {
    std::atexit([] { delete &TheHarness(); });
    if (const char* v = std::getenv("CALLVAULT_FUZZ_STATS"); v != nullptr && *v == '1') {
      std::atexit(PrintStats);
    }
    return true;
  }();
  (void)registered;
  return *h;
}

// --- Decoding inputs ------------------------------------------------------------

std::string PickSubject(FuzzedDataProvider& in) {
  uint8_t k = in.ConsumeIntegralInRange<uint8_t>(0, 5);
  if (k < 3) return kEmails[k];
  if (k < 5) return kPhones[k - 3];
  return "dan@d.example";  // referenced by nobody
}

// A call from five bytes: which call id, which source id, when, and a seed
// for the rest (participants, CRM links, transcript, insights, and now and
// then one invalid field), so that an operation costs the fuzzer few bytes.
Call MakeCall(FuzzedDataProvider& in, bool* valid) {
  Call c;
  c.call_id = "call-" + std::to_string(in.ConsumeIntegralInRange<int>(0, 5));
  const uint8_t src = in.ConsumeIntegral<uint8_t>();
  if (src & 1) {
    c.source_system = (src & 2) ? SourceSystem::kZoom : SourceSystem::kTeams;
    c.source_call_id = "src-" + std::to_string((src >> 2) % 4);
  }
  c.started_at = kT0 + in.ConsumeIntegralInRange<int64_t>(0, 6) * 1'000'000;
  std::minstd_rand r(in.ConsumeIntegral<uint16_t>() + 1u);
  auto pick = [&r](uint32_t n) { return static_cast<uint32_t>(r() % n); };
  c.workspace_id = pick(2) ? "ws-1" : "";
  c.duration_ms = pick(4) * 1000;
  c.title = "title " + std::to_string(pick(256));
  c.direction = static_cast<Direction>(pick(4));
  c.tags = {"tag" + std::to_string(pick(3))};
  c.owner_user_id = pick(2) ? kUsers[pick(3)] : "";
  const uint32_t np = pick(4);
  for (uint32_t i = 0; i < np; ++i) {
    Participant p;
    p.name = "person " + std::to_string(i);
    const uint32_t e = pick(4);
    if (e < 3) p.email = kEmails[e];
    const uint32_t ph = pick(3);
    if (ph < 2) p.phone = kPhones[ph];
    p.title = pick(2) ? "CTO" : "";
    p.speaker_id = pick(3);
    if (pick(2)) p.user_id = kUsers[pick(3)];
    c.participants.push_back(std::move(p));
  }
  if (pick(2)) {
    const uint32_t k = pick(4);
    c.crm_links.push_back(CrmLink{"salesforce", CrmObjectType::kContact,
                                  k < 3 ? std::string(kEmails[k]) : std::string("006ABC")});
  }
  const uint32_t ns = pick(4);
  for (uint32_t i = 0; i < ns; ++i) {
    c.transcript.push_back(TranscriptSegment{pick(3), i * 1000, i * 1000 + 500,
                                             "segment " + std::to_string(i), 0.5f});
  }
  if (pick(2)) {
    c.insights.summary = "summary";
    if (pick(2)) c.insights.action_items = {ActionItem{"follow up", kUsers[pick(3)]}};
  }
  *valid = true;
  switch (pick(16)) {  // now and then, one invalid field
    case 0: c.started_at = 0; *valid = false; break;
    case 1: c.call_id.clear(); *valid = false; break;
    case 2:
      c.participants.push_back(Participant{.name = "x", .email = "not an email"});
      *valid = false;
      break;
    case 3:
      c.transcript.push_back(TranscriptSegment{0, 10, 5, "backwards", 0.5f});
      *valid = false;
      break;
    default: break;
  }
  return c;
}

Call Comparable(Call c) {
  c.created_at = 0;
  c.updated_at = 0;
  return c;
}

std::string Describe(const Call& c) {
  return c.call_id + " (" + std::to_string(c.participants.size()) + " participants, " +
         std::to_string(c.transcript.size()) + " segments, " + std::to_string(c.crm_links.size()) +
         " links)";
}

// --- Checks ---------------------------------------------------------------------

void CheckTenant(Store* st, int t, const MTenant& m, const std::string& after) {
  const std::string id = TenantId(t);
  const std::string where = after + ": " + id;
  if (!m.live) {
    ExpectCode(st->CountCalls(id), Code::kTenantPurged, where + " CountCalls");
    ExpectCode(st->GetCall(id, "call-0"), Code::kTenantPurged, where + " GetCall");
    ListQuery q;
    ExpectCode(st->ListCalls(id, q), Code::kTenantPurged, where + " ListCalls");
    return;
  }
  auto n = st->CountCalls(id);
  ExpectCode(n, Code::kOk, where + " CountCalls");
  Expect(*n == m.calls.size(), where + " CountCalls " + std::to_string(*n) + " != model " +
                                   std::to_string(m.calls.size()));
  // Every call, two per page, newest first.
  ListQuery q;
  q.limit = 2;
  std::vector<std::string> listed;
  int64_t last = INT64_MAX;
  for (int pages = 0;; ++pages) {
    Expect(pages <= 10, where + " ListCalls does not end");
    auto page = st->ListCalls(id, q);
    ExpectCode(page, Code::kOk, where + " ListCalls");
    for (const auto& c : page->calls) {
      Expect(c.started_at <= last, where + " ListCalls out of order");
      last = c.started_at;
      auto it = m.calls.find(c.call_id);
      Expect(it != m.calls.end(), where + " ListCalls returned a call the model lacks: " + c.call_id);
      Expect(it->second.started_at == c.started_at && it->second.title == c.title,
             where + " ListCalls metadata differs for " + c.call_id);
      Expect(it->second.version == c.version, where + " ListCalls version of " + c.call_id + ": " +
                                                  std::to_string(c.version) + ", model " +
                                                  std::to_string(it->second.version));
      listed.push_back(c.call_id);
    }
    if (page->next_cursor.empty()) break;
    q.cursor = page->next_cursor;
  }
  std::sort(listed.begin(), listed.end());
  Expect(std::adjacent_find(listed.begin(), listed.end()) == listed.end(),
         where + " ListCalls returned a call twice");
  Expect(listed.size() == m.calls.size(), where + " ListCalls returned " + std::to_string(listed.size()) +
                                              " calls, model has " + std::to_string(m.calls.size()));
  for (const auto& [cid, want] : m.calls) {
    auto got = st->GetCall(id, cid);
    ExpectCode(got, Code::kOk, where + " GetCall " + cid);
    Expect(got->created_at > 0 && got->updated_at >= got->created_at, where + " timestamps of " + cid);
    Expect(Comparable(*got) == want, where + " GetCall " + cid + " differs from the model: got " +
                                         Describe(*got) + ", want " + Describe(want));
    Expect(got->version == want.version, where + " GetCall " + cid + " version " +
                                             std::to_string(got->version) + ", model " +
                                             std::to_string(want.version));
  }
}

// An expected version for a write of `call_id`, as input byte `mode` asks:
// 0 none, 1 the call's version (0 when the model has no such call), 2 a
// stale one (never the call's), 3 zero ("must not exist").
std::optional<uint64_t> ExpectedVersion(const MTenant& m, const std::string& call_id, uint8_t mode) {
  auto it = m.calls.find(call_id);
  const uint64_t v = it != m.calls.end() ? it->second.version : 0;
  switch (mode) {
    case 0: return std::nullopt;
    case 1: return v;
    case 2: return v > 1 ? v - 1 : v + 1 + m.max_version;
    default: return uint64_t{0};
  }
}

// What a write with `expected` finds (PutCall's, UpdateCall's and
// DeleteCall's CheckExpected): true when it may go on.
bool Matches(std::optional<uint64_t> expected, const MTenant& m, const std::string& call_id) {
  if (!expected) return true;
  auto it = m.calls.find(call_id);
  if (*expected == 0) return it == m.calls.end();
  return it != m.calls.end() && it->second.version == *expected;
}

std::string EventString(ChangeKind kind, ChangeCause cause, const std::string& call_id,
                        uint64_t version) {
  return std::string(ChangeKindName(kind)) + "/" + ChangeCauseName(cause) + " " + call_id + " v" +
         std::to_string(version);
}

class Run {
 public:
  // `tokens`: each tenant's change-feed token at the end of its feed.
  Run(Store* st, const std::array<std::string, kTenants>& tokens) : st_(st) {
    for (int t = 0; t < kTenants; ++t) model_[t].feed_token = tokens[t];
  }
  const std::array<MTenant, kTenants>& model() const { return model_; }
  void set_store(Store* st) { st_ = st; }

  void CheckAll(const std::string& after) {
    for (int t = 0; t < kTenants; ++t) CheckTenant(st_, t, model_[t], after);
  }

  void Create(int t) {
    MTenant& m = model_[t];
    auto r = st_->CreateTenant({.tenant_id = TenantId(t)});
    if (m.live) return ExpectCode(r, Code::kAlreadyExists, "CreateTenant of a live tenant");
    ExpectCode(r, Code::kOk, "CreateTenant");
    m = MTenant{.live = true};
    CheckTenant(st_, t, m, "CreateTenant");
  }

  void Purge(int t) {
    MTenant& m = model_[t];
    auto r = st_->PurgeTenant(TenantId(t));
    if (!m.live) {
      ExpectCode(r, Code::kOk, "PurgeTenant of a purged tenant");
      Expect(r->sequence == m.purge_receipt, "PurgeTenant again: a different receipt");
      return;
    }
    if (!m.holds.empty()) {
      ExpectCode(r, Code::kFailedPrecondition, "PurgeTenant of a held tenant");
      return CheckTenant(st_, t, m, "PurgeTenant refused");
    }
    ExpectCode(r, Code::kOk, "PurgeTenant");
    Expect(r->tenant_id == TenantId(t) && r->kind == "tenant_purge", "PurgeTenant receipt");
    m = MTenant{.live = false, .purge_receipt = r->sequence};
    CheckTenant(st_, t, m, "PurgeTenant");
  }

  // A version a write handed out: greater than every version before it in
  // the tenant (so than the call's previous one).
  void NewVersion(MTenant& m, uint64_t v, const std::string& op) {
    Expect(v > m.max_version, op + ": version " + std::to_string(v) + " not above " +
                                  std::to_string(m.max_version));
    m.max_version = v;
  }

  // Applies a put to the model (valid call, live tenant); returns the stored id.
  std::string ModelPut(MTenant& m, Call c, const std::string& target, uint64_t version) {
    c.call_id = target;
    c.version = version;
    m.calls[target] = std::move(c);
    m.feed.push_back(MEvent{ChangeKind::kPut, ChangeCause::kUser, target, version});
    return target;
  }

  void Put(int t, const Call& c, bool valid, uint8_t expect_mode) {
    MTenant& m = model_[t];
    const std::optional<uint64_t> expected = ExpectedVersion(m, m.Target(c), expect_mode);
    auto r = st_->PutCall(TenantId(t), c, expected);
    if (!valid) {
      ExpectCode(r, Code::kInvalidArgument, "PutCall of an invalid call");
      return CheckTenant(st_, t, m, "PutCall refused");
    }
    if (!m.live) return ExpectCode(r, Code::kTenantPurged, "PutCall on a purged tenant");
    const std::string target = m.Target(c);
    const bool created = !m.calls.count(target);
    if (!Matches(expected, m, target)) {
      ExpectCode(r, Code::kConflict, "PutCall with another expected version");
      return CheckTenant(st_, t, m, "PutCall refused");
    }
    if (!created && (m.TenantHeld() || m.CallHeld(target))) {  // holds block changes (decision 0028)
      ExpectCode(r, Code::kFailedPrecondition, "PutCall over a held call");
      return CheckTenant(st_, t, m, "PutCall refused");
    }
    ExpectCode(r, Code::kOk, "PutCall " + Describe(c));
    Expect(r->call_id == target, "PutCall stored under " + r->call_id + ", model says " + target);
    Expect(r->created == created, "PutCall created flag");
    NewVersion(m, r->version, "PutCall");
    ModelPut(m, c, target, r->version);
    CheckTenant(st_, t, m, "PutCall");
  }

  // `expect_modes`: empty (PutCalls without expected versions) or one mode
  // per call (ExpectedVersion), the last dropped when `short_by_one`.
  void PutBatch(int t, const std::vector<Call>& calls, bool valid,
                const std::vector<uint8_t>& expect_modes, bool short_by_one) {
    MTenant& m = model_[t];
    std::vector<std::optional<uint64_t>> expected;
    for (size_t i = 0; i < expect_modes.size() && i < calls.size(); ++i) {
      expected.push_back(ExpectedVersion(m, m.Target(calls[i]), expect_modes[i]));
    }
    const bool conditional = !expect_modes.empty();
    const bool mismatch = conditional && short_by_one && !expected.empty();
    if (mismatch) expected.pop_back();
    auto r = conditional ? st_->PutCalls(TenantId(t), calls, expected)
                         : st_->PutCalls(TenantId(t), calls);
    std::set<std::string> ids, sources, targets;
    bool dup = false;
    for (const auto& c : calls) {
      dup |= !ids.insert(c.call_id).second;
      if (!c.source_call_id.empty()) {
        dup |= !sources.insert(std::to_string(static_cast<int>(c.source_system)) + "/" + c.source_call_id).second;
      }
    }
    if (!valid || dup || calls.empty() || mismatch) {
      ExpectCode(r, Code::kInvalidArgument, "PutCalls of an invalid batch");
      if (m.live) CheckTenant(st_, t, m, "PutCalls refused");
      return;
    }
    if (!m.live) return ExpectCode(r, Code::kTenantPurged, "PutCalls on a purged tenant");
    // Each call resolves against the store as it was before the batch; two
    // resolving to one stored call are refused, else the batch equals the
    // puts one after the other.
    // In the engine's order: each call is checked against holds (decision
    // 0028: a held call is not changed) before the next one resolves.
    std::vector<std::string> resolved;
    for (size_t i = 0; i < calls.size(); ++i) {
      resolved.push_back(m.Target(calls[i]));
      const std::string& id = resolved.back();
      if (conditional && !Matches(expected[i], m, id)) {
        ExpectCode(r, Code::kConflict, "PutCalls with another expected version");
        Expect(r.status().message().find(calls.size() > 1 ? "(call_id " + calls[i].call_id + ")"
                                                          : std::string("version")) !=
                   std::string::npos,
               "PutCalls conflict names the call: " + r.status().message());
        return CheckTenant(st_, t, m, "PutCalls refused");
      }
      if (m.calls.count(id) && (m.TenantHeld() || m.CallHeld(id))) {
        ExpectCode(r, Code::kFailedPrecondition, "PutCalls over a held call");
        return CheckTenant(st_, t, m, "PutCalls refused");
      }
      if (!targets.insert(id).second) {
        ExpectCode(r, Code::kInvalidArgument, "PutCalls resolving twice to one call");
        return CheckTenant(st_, t, m, "PutCalls refused");
      }
    }
    ExpectCode(r, Code::kOk, "PutCalls");
    Expect(r->size() == calls.size(), "PutCalls result count");
    for (size_t i = 0; i < calls.size(); ++i) {
      Expect((*r)[i].call_id == resolved[i], "PutCalls stored id");
      Expect((*r)[i].created == !m.calls.count(resolved[i]), "PutCalls created flag");
    }
    for (size_t i = 0; i < calls.size(); ++i) {
      NewVersion(m, (*r)[i].version, "PutCalls");
      ModelPut(m, calls[i], resolved[i], (*r)[i].version);
    }
    CheckTenant(st_, t, m, "PutCalls");
  }

  // UpdateCall of `call_id`: the `parts` named (nonzero: kPartParticipants,
  // kPartTranscript, kPartInsights, kPartFields) taken from `patch`.
  void Update(int t, const std::string& call_id, uint32_t parts, Call patch, uint8_t expect_mode) {
    MTenant& m = model_[t];
    const std::optional<uint64_t> expected = ExpectedVersion(m, call_id, expect_mode);
    auto r = st_->UpdateCall(TenantId(t), call_id, parts, patch, expected);
    if (!m.live) return ExpectCode(r, Code::kTenantPurged, "UpdateCall on a purged tenant");
    auto it = m.calls.find(call_id);
    if (it == m.calls.end()) {
      // A conditional writer lost the race to a delete: kConflict.
      ExpectCode(r, expected && *expected != 0 ? Code::kConflict : Code::kNotFound,
                 "UpdateCall of a missing call");
      return CheckTenant(st_, t, m, "UpdateCall refused");
    }
    if (!Matches(expected, m, call_id)) {
      ExpectCode(r, Code::kConflict, "UpdateCall with another expected version");
      return CheckTenant(st_, t, m, "UpdateCall refused");
    }
    if (m.TenantHeld() || m.CallHeld(call_id)) {
      ExpectCode(r, Code::kFailedPrecondition, "UpdateCall of a held call");
      return CheckTenant(st_, t, m, "UpdateCall refused");
    }
    // MakeCall's invalid fields, each in one part: only a named part is checked.
    bool invalid = (parts & kPartFields) && patch.started_at == 0;
    if (parts & kPartParticipants) {
      for (const auto& p : patch.participants) invalid |= p.email == "not an email";
    }
    if (parts & kPartTranscript) {
      for (const auto& s : patch.transcript) invalid |= s.end_ms < s.start_ms;
    }
    if (invalid) {
      ExpectCode(r, Code::kInvalidArgument, "UpdateCall with an invalid part");
      return CheckTenant(st_, t, m, "UpdateCall refused");
    }
    Call next = it->second;
    if (parts & kPartFields) {
      const uint64_t version = next.version;
      std::vector<Participant> participants = std::move(next.participants);
      std::vector<TranscriptSegment> transcript = std::move(next.transcript);
      Insights insights = std::move(next.insights);
      next = patch;
      next.call_id = call_id;
      next.version = version;
      next.participants = std::move(participants);
      next.transcript = std::move(transcript);
      next.insights = std::move(insights);
      next.created_at = next.updated_at = 0;
      for (const auto& [id, other] : m.calls) {
        if (id != call_id && !next.source_call_id.empty() &&
            other.source_system == next.source_system && other.source_call_id == next.source_call_id) {
          ExpectCode(r, Code::kAlreadyExists, "UpdateCall to another call's source id");
          return CheckTenant(st_, t, m, "UpdateCall refused");
        }
      }
    }
    if (parts & kPartParticipants) next.participants = patch.participants;
    if (parts & kPartTranscript) next.transcript = patch.transcript;
    if (parts & kPartInsights) next.insights = patch.insights;
    ExpectCode(r, Code::kOk, "UpdateCall");
    Expect(r->call_id == call_id && !r->created, "UpdateCall result");
    NewVersion(m, r->version, "UpdateCall");
    ++g_stats.updates;
    next.version = r->version;
    it->second = std::move(next);
    m.feed.push_back(MEvent{ChangeKind::kUpdate, ChangeCause::kUser, call_id, r->version});
    CheckTenant(st_, t, m, "UpdateCall");
  }

  void Delete(int t, const std::string& call_id, uint8_t expect_mode) {
    MTenant& m = model_[t];
    const std::optional<uint64_t> expected = ExpectedVersion(m, call_id, expect_mode);
    auto r = st_->DeleteCall(TenantId(t), call_id, expected);
    if (!m.live) return ExpectCode(r, Code::kTenantPurged, "DeleteCall on a purged tenant");
    if (!m.calls.count(call_id)) {
      ExpectCode(r, expected && *expected != 0 ? Code::kConflict : Code::kNotFound,
                 "DeleteCall of a missing call");
    } else if (!Matches(expected, m, call_id)) {
      ExpectCode(r, Code::kConflict, "DeleteCall with another expected version");
    } else if (m.TenantHeld() || m.CallHeld(call_id)) {
      ExpectCode(r, Code::kFailedPrecondition, "DeleteCall of a held call");
    } else {
      ExpectCode(r, Code::kOk, "DeleteCall");
      NewVersion(m, *r, "DeleteCall");  // the delete takes a version of its own
      m.calls.erase(call_id);
      m.feed.push_back(MEvent{ChangeKind::kDelete, ChangeCause::kUser, call_id, *r});
    }
    CheckTenant(st_, t, m, "DeleteCall");
  }

  // Reads the tenant's feed from the model's token to its end, `limit` a
  // page, and checks it holds exactly the events the model recorded since.
  void ReadChanges(int t, size_t limit) {
    MTenant& m = model_[t];
    std::vector<ChangeEvent> got;
    std::string token = m.feed_token;
    for (int pages = 0;; ++pages) {
      Expect(pages <= 1000, "ReadChanges does not end");
      auto page = st_->ReadChanges(TenantId(t), token, limit);
      if (!m.live) return ExpectCode(page, Code::kTenantPurged, "ReadChanges on a purged tenant");
      ExpectCode(page, Code::kOk, "ReadChanges");
      Expect(page->events.size() <= limit, "ReadChanges returned more than its limit");
      token = page->next_token;
      for (auto& e : page->events) got.push_back(std::move(e));
      if (page->events.size() < limit) break;
    }
    const std::string where = "ReadChanges of " + TenantId(t);
    Expect(got.size() == m.feed.size(), where + ": " + std::to_string(got.size()) +
                                            " events, model " + std::to_string(m.feed.size()));
    uint64_t seq = m.feed_seq;
    for (size_t i = 0; i < got.size(); ++i) {
      Expect(seq == 0 || got[i].sequence == seq + 1, where + ": sequence not dense");
      seq = got[i].sequence;
    }
    // In order, but one Erase's events in any order among themselves.
    for (size_t i = 0; i < got.size();) {
      size_t j = i + 1;
      while (m.feed[i].group != 0 && j < got.size() && m.feed[j].group == m.feed[i].group) ++j;
      std::vector<std::string> want_s, got_s;
      for (size_t k = i; k < j; ++k) {
        want_s.push_back(EventString(m.feed[k].kind, m.feed[k].cause, m.feed[k].call_id,
                                     m.feed[k].version));
        got_s.push_back(EventString(got[k].kind, got[k].cause, got[k].call_id, got[k].version));
      }
      std::sort(want_s.begin(), want_s.end());
      std::sort(got_s.begin(), got_s.end());
      for (size_t k = 0; k < want_s.size(); ++k) {
        Expect(got_s[k] == want_s[k],
               where + ": event " + std::to_string(i + k) + " is " + got_s[k] + ", model " + want_s[k]);
      }
      i = j;
    }
    g_stats.feed_events += got.size();
    m.feed.clear();
    m.feed_token = token;
    m.feed_seq = seq;
  }

  void Get(int t, const std::string& call_id) {
    const MTenant& m = model_[t];
    auto r = st_->GetCall(TenantId(t), call_id, kPartTranscript);
    if (!m.live) return ExpectCode(r, Code::kTenantPurged, "GetCall on a purged tenant");
    auto it = m.calls.find(call_id);
    if (it == m.calls.end()) return ExpectCode(r, Code::kNotFound, "GetCall of a missing call");
    ExpectCode(r, Code::kOk, "GetCall");
    Expect(r->participants.empty() && r->insights.empty(), "GetCall returned parts not asked for");
    Expect(r->transcript == it->second.transcript, "GetCall transcript differs");
  }

  void PlaceHold(int t, const std::string& hold_id, const std::string& call_id) {
    MTenant& m = model_[t];
    Status s = st_->PlaceHold(TenantId(t), Hold{.hold_id = hold_id, .reason = "litigation", .call_id = call_id});
    if (!m.live) return ExpectCode(s, Code::kTenantPurged, "PlaceHold on a purged tenant");
    bool taken = std::any_of(m.holds.begin(), m.holds.end(), [&](const MHold& h) { return h.hold_id == hold_id; });
    if (taken) return ExpectCode(s, Code::kAlreadyExists, "PlaceHold with a taken id");
    if (!call_id.empty() && !m.calls.count(call_id)) {
      return ExpectCode(s, Code::kNotFound, "PlaceHold on a missing call");
    }
    ExpectCode(s, Code::kOk, "PlaceHold");
    m.holds.push_back(MHold{hold_id, call_id});
    auto listed = st_->ListHolds(TenantId(t));
    ExpectCode(listed, Code::kOk, "ListHolds");
    Expect(listed->size() == m.holds.size(), "ListHolds count");
  }

  void ReleaseHold(int t, const std::string& hold_id) {
    MTenant& m = model_[t];
    Status s = st_->ReleaseHold(TenantId(t), hold_id);
    if (!m.live) return ExpectCode(s, Code::kTenantPurged, "ReleaseHold on a purged tenant");
    auto it = std::find_if(m.holds.begin(), m.holds.end(), [&](const MHold& h) { return h.hold_id == hold_id; });
    if (it == m.holds.end()) return ExpectCode(s, Code::kNotFound, "ReleaseHold of a missing hold");
    ExpectCode(s, Code::kOk, "ReleaseHold");
    m.holds.erase(it);
    auto listed = st_->ListHolds(TenantId(t));
    ExpectCode(listed, Code::kOk, "ListHolds");
    Expect(listed->size() == m.holds.size(), "ListHolds count after release");
  }

  void Erase(int t, const std::string& subject, EraseMode mode, bool dry_run, size_t max_calls,
             bool physical) {
    MTenant& m = model_[t];
    EraseRequest req{.subject = subject, .mode = mode, .dry_run = dry_run, .max_calls = max_calls,
                     .physical = physical};
    auto r = st_->Erase(TenantId(t), req);
    if (!m.live) return ExpectCode(r, Code::kTenantPurged, "Erase on a purged tenant");
    std::vector<std::string> matched;
    bool held = m.TenantHeld();
    for (const auto& [id, c] : m.calls) {
      if (!References(c, subject)) continue;
      matched.push_back(id);
      held |= m.CallHeld(id);
    }
    const std::string op = std::string(dry_run ? "dry-run " : "") +
                           (mode == EraseMode::kDelete ? "Erase(delete)" : "Erase(redact)");
    if (matched.size() > max_calls) {
      ExpectCode(r, Code::kResourceExhausted, op + " over max_calls");
    } else if (dry_run || matched.empty()) {
      ExpectCode(r, Code::kOk, op);
      Expect(r->matched == matched.size() && r->changed == 0 && !r->receipt, op + " result");
    } else if (held) {
      ExpectCode(r, Code::kFailedPrecondition, op + " of a held call");
    } else {
      ExpectCode(r, Code::kOk, op);
      Expect(r->matched == matched.size() && r->changed == matched.size() && r->receipt.has_value(),
             op + " result counts");
      ++groups_;
      const uint64_t before = m.max_version;
      std::set<uint64_t> versions;  // one new version per redacted call
      for (const auto& id : matched) {
        if (mode == EraseMode::kDelete) {
          // The event of an erasure's delete carries the version the call had.
          m.feed.push_back(MEvent{ChangeKind::kDelete, ChangeCause::kErasure, id,
                                  m.calls[id].version, groups_});
          m.calls.erase(id);
        } else {
          // A redaction is a new version of the call, read back.
          ModelRedact(&m.calls[id], subject);
          auto got = st_->GetCall(TenantId(t), id, kPartMetadata);
          ExpectCode(got, Code::kOk, op + " GetCall of a redacted call");
          Expect(got->version > before, op + ": redacted " + id + " at version " +
                                            std::to_string(got->version) + ", not above " +
                                            std::to_string(before));
          Expect(versions.insert(got->version).second, op + ": two redactions share a version");
          m.max_version = std::max(m.max_version, got->version);
          m.calls[id].version = got->version;
          m.feed.push_back(MEvent{ChangeKind::kUpdate, ChangeCause::kErasure, id, got->version,
                                  groups_});
        }
      }
    }
    CheckTenant(st_, t, m, op);
    auto refs = st_->FindReferences(TenantId(t), subject);
    ExpectCode(refs, Code::kOk, "FindReferences after " + op);
    size_t want = 0;
    for (const auto& [id, c] : m.calls) want += References(c, subject) ? 1 : 0;
    Expect(refs->size() == want, "FindReferences after " + op + ": " + std::to_string(refs->size()) +
                                     " calls, model " + std::to_string(want));
  }

  void ListByParticipant(int t, const std::string& subject) {
    const MTenant& m = model_[t];
    ListQuery q;
    q.participants = {subject};
    q.limit = 1000;
    auto r = st_->ListCalls(TenantId(t), q);
    if (!m.live) return ExpectCode(r, Code::kTenantPurged, "ListCalls on a purged tenant");
    ExpectCode(r, Code::kOk, "ListCalls by participant");
    std::set<std::string> got, want;
    for (const auto& c : r->calls) got.insert(c.call_id);
    for (const auto& [id, c] : m.calls) {
      if (References(c, subject)) want.insert(id);
    }
    Expect(got == want, "ListCalls by participant: " + std::to_string(got.size()) + " calls, model " +
                            std::to_string(want.size()));
  }

 private:
  Store* st_;
  std::array<MTenant, kTenants> model_;
  int groups_ = 0;  // Erase operations that changed calls (MEvent::group)
};

std::optional<std::array<MTenant, kTenants>> g_last;

}  // namespace
}  // namespace callvault

// RocksDB's background threads register thread_local destructors with
// glibc, which LeakSanitizer reports when such a thread ends; not ours.
extern "C" const char* __lsan_default_suppressions() { return "leak:__cxa_thread_atexit_impl\n"; }

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace callvault;
  Harness& h = TheHarness();
  ++g_stats.inputs;
  Timed whole{&g_stats.total_s};
  std::array<std::string, kTenants> tokens;
  {
    Timed t{&g_stats.reset_s};
    tokens = h.Reset(g_last ? &*g_last : nullptr);
  }
  Run run(h.store(), tokens);
  FuzzedDataProvider in(data, size);
  int reopens = 0;
  int changes = 0;  // creates of a purged tenant and purges that drop one
  for (int op = 0; op < kMaxOps && in.remaining_bytes() > 0; ++op) {
    const int t = in.ConsumeIntegralInRange<int>(0, kTenants - 1);
    ++g_stats.ops;
    switch (in.ConsumeIntegralInRange<int>(0, 14)) {
      case 0: {
        // Over the budget, a create that would create is skipped (its
        // bytes consumed all the same); one that is refused still runs.
        const bool creates = !run.model()[t].live;
        if (creates && changes >= TenantChangeBudget()) {
          ++g_stats.skipped;
          break;
        }
        if (!creates) {
          run.Create(t);
          break;
        }
        ++changes;
        ++g_stats.creates;
        Timed tm{&g_stats.create_s};
        run.Create(t);
        break;
      }
      case 1: {
        const MTenant& m = run.model()[t];
        const bool drops = m.live && m.holds.empty();
        if (drops && changes >= TenantChangeBudget()) {
          ++g_stats.skipped;
          break;
        }
        if (!drops) {
          run.Purge(t);
          break;
        }
        ++changes;
        ++g_stats.purges;
        Timed tm{&g_stats.purge_s};
        run.Purge(t);
        break;
      }
      case 2:
      case 3: {
        bool valid = true;
        Call c = MakeCall(in, &valid);
        // Mostly unconditional (the common put), now and then an expected version.
        const uint8_t mode = in.ConsumeIntegralInRange<uint8_t>(0, 7);
        run.Put(t, c, valid, mode < 4 ? 0 : mode - 4);
        break;
      }
      case 4: {
        std::vector<Call> calls;
        bool valid = true;
        int n = in.ConsumeIntegralInRange<int>(0, 4);
        for (int i = 0; i < n; ++i) {
          bool v = true;
          calls.push_back(MakeCall(in, &v));
          valid &= v;
        }
        // 0: PutCalls without expected versions; else one mode per call
        // (two bits each), and with 3 one expected version too few.
        const uint8_t how = in.ConsumeIntegralInRange<uint8_t>(0, 3);
        std::vector<uint8_t> modes;
        if (how != 0) {
          const uint8_t bits = in.ConsumeIntegral<uint8_t>();
          for (int i = 0; i < n; ++i) modes.push_back((bits >> (2 * i)) & 3);
        }
        run.PutBatch(t, calls, valid, modes, how == 3);
        break;
      }
      case 5: {
        const std::string id = "call-" + std::to_string(in.ConsumeIntegralInRange<int>(0, 5));
        const uint8_t mode = in.ConsumeIntegralInRange<uint8_t>(0, 7);  // as a put's
        run.Delete(t, id, mode < 4 ? 0 : mode - 4);
        break;
      }
      case 13: {
        const std::string id = "call-" + std::to_string(in.ConsumeIntegralInRange<int>(0, 5));
        const uint32_t parts = in.ConsumeIntegralInRange<uint32_t>(1, 15);
        const uint8_t mode = in.ConsumeIntegralInRange<uint8_t>(0, 3);
        const bool name_id = in.ConsumeBool();
        bool valid = true;
        Call patch = MakeCall(in, &valid);
        patch.call_id = name_id ? id : "";  // the patch may name its call or not
        run.Update(t, id, parts, std::move(patch), mode);
        break;
      }
      case 14:
        run.ReadChanges(t, in.ConsumeIntegralInRange<size_t>(1, 8));
        break;
      case 6:
        run.Get(t, "call-" + std::to_string(in.ConsumeIntegralInRange<int>(0, 5)));
        break;
      case 7: {
        std::string hold = "hold-" + std::to_string(in.ConsumeIntegralInRange<int>(0, 2));
        std::string call = in.ConsumeBool() ? "" : "call-" + std::to_string(in.ConsumeIntegralInRange<int>(0, 5));
        run.PlaceHold(t, hold, call);
        break;
      }
      case 8:
        run.ReleaseHold(t, "hold-" + std::to_string(in.ConsumeIntegralInRange<int>(0, 2)));
        break;
      case 9:
      case 10: {
        std::string subject = PickSubject(in);
        EraseMode mode = in.ConsumeBool() ? EraseMode::kDelete : EraseMode::kRedact;
        bool dry = in.ConsumeIntegralInRange<int>(0, 3) == 0;
        size_t max_calls = in.ConsumeIntegralInRange<size_t>(0, 7);
        // A physical erase flushes and compacts: slow, so now and then.
        bool physical = in.ConsumeIntegralInRange<int>(0, 7) == 0;
        run.Erase(t, subject, mode, dry, max_calls, physical);
        break;
      }
      case 11:
        run.ListByParticipant(t, PickSubject(in));
        break;
      case 12:
        // Close + reopen costs ~25 ms (three RocksDB instances), ten times a
        // whole input's other operations: once an input at most, and only
        // when a second byte agrees, so most mutations of an input with a
        // reopen lose it and the run keeps its speed.
        if (in.ConsumeIntegralInRange<int>(0, 7) == 0 && reopens++ < 1) {
          ++g_stats.reopens;
          Timed tm{&g_stats.reopen_s};
          h.Open();
          run.set_store(h.store());
          run.CheckAll("reopen");
        }
        break;
    }
  }
  // Every event the input's writes made, checked once more: whatever the
  // ReadChanges operations above read, the rest of each feed must equal the
  // model's (a purged tenant's feed reads kTenantPurged).
  for (int t = 0; t < kTenants; ++t) run.ReadChanges(t, 1000);
  g_last = run.model();
  return 0;
}
