// T5 (testing.md) at the level of whole files: >= 10,000 mutations per CI run
// of the files of a small prepared store, each on its own copy, each followed
// by a read-only and a read-write open, a read of every acknowledged write
// and Verify(). (tests/format/record_mutation_test.cc is T5 for one sealed
// record.)
//
// The prepared store (4 tenants, 2 shards, max_tenants_per_shard = 2):
//   phase 1  tenants A, B, C; 4 calls each; A's call 0 has a ~300 KiB
//            transcript and B and C a ~300 KiB recording (both >= 256 KiB:
//            blob files); then Store::Flush and Store::CompactAll (SSTs and
//            blob files of both shards and of the metadata instance; the
//            recordings, ingested as table files, reach blob files in the
//            compaction);
//   phase 2  2 more calls each, a ~270 KiB recording for A (an ingested
//            table file), B's call 3 deleted, B's retention set to 77 days
//            (a registry write), and tenant D created with 3 calls: all of
//            it but the recording only in the WALs
//            (avoid_flush_during_recovery keeps it there across opens).
// Every write was acknowledged (sync_writes). The files are then mutated one
// at a time: a bit flipped, a run of 1-512 bytes zeroed or randomised, the
// file truncated to a random length, or 1-256 bytes appended (a torn tail).
// One test per kind of file, so that the kinds that fail today can be kept
// out of `make test` (tests/crash/CMakeLists.txt, CALLVAULT_CRASH_KNOWN_BUGS):
//   FileMutation.ShardWal   the shards' WAL files (*.log under shards/)
//   FileMutation.MetaWal    the metadata instance's WAL (meta/*.log)
//   FileMutation.Sst        every SST, shards and metadata instance
//   FileMutation.Blob       the shards' blob files
//   FileMutation.Manifest   MANIFEST-*, CURRENT, OPTIONS-*, IDENTITY
//   FileMutation.Keyring    every file of the key directory
//
// After each mutation, for a read-only open and then a read-write open (and,
// for every 4th mutation whose writable open did not come out "repaired", a
// second writable open: the first may have rewritten the files), the
// outcome is classified:
//   repaired       every acknowledged call, recording and registry setting
//                  reads back exactly, Verify() reports nothing;
//   detected       the same, but Verify() (or the open's audit) reports damage;
//   refused        Store::Open fails with kCorruption, kKeyError or kIOError
//                  and a message (the whole store refused), for damage to
//                  the metadata instance or the key directory;
//   read_errors    open OK; the damaged reads return an error with a message
//                  (kCorruption, ...), Verify() reports the damage (after
//                  decision 0034 also a shard that does not open: its
//                  tenants answer kCorruption, the others serve);
//   reported_loss  open OK; an acknowledged write is missing (kNotFound, old
//                  value) but Verify() reports damage;
// and the FAILURES:
//   crash          the process died (each batch of mutations runs in a child
//                  process; the mutation in flight is the one blamed, and a
//                  new child goes on with the next);
//   hang           no progress for 120 s;
//   wrong          a read returned OK with other bytes than were written, or a
//                  deleted call came back;
//   silent_loss    an acknowledged write is missing or unreadable while the
//                  open succeeded and Verify() said all is well;
//   bad_code       Store::Open failed with another code (kNotFound would tell
//                  the operator there is no store; kInternal is a bug), or a
//                  read failed with kInternal, or without a message;
//   leak           an error message holds a tenant id, call id or content;
//   spread         a mutation of one shard's files (db/shards/NNNN/) refused
//                  the whole store, or hit a tenant of another shard or the
//                  purged tenant's state or receipt (decision 0034: a shard's
//                  damage stops its own tenants only). The tenants' shards
//                  are recorded at preparation (t5-shards.txt beside db/).
// The read-write open is run with the audit callback; whether it saw an
// event is counted ("audited") but not required here (the fix of issue 11
// item 1 owns that).
//
// Printed: the seed, and per test and per file sub-kind ("T5 files <test>
// <sub-kind>: ..." lines, which scripts/suite-counts.sh collects and sums
// per class of file) the mutations, the count of each class for the
// read-only and for the read-write open, and of the writable opens how
// many were audited, refused the whole store, or stayed contained in the
// mutated shard. CALLVAULT_SEED
// replays the plan; the prepared store's bytes differ from run to run (keys,
// nonces, RocksDB's ids), so a run with a failure keeps the prepared store,
// the plan and the children's log (a child that dies of a signal writes its
// stack there) in $CALLVAULT_T5_ARTIFACTS/<test>-<seed> (default
// $TMPDIR/callvault-t5-artifacts/...) and prints the command of an exact
// replay: CALLVAULT_T5_PRISTINE=<that>/pristine with the same seed mutates
// the same bytes. For a hunt: CALLVAULT_T5_ONLY=<sub-kind> (e.g. meta_sst)
// mutates only that sub-kind's files, CALLVAULT_T5_RO_ONLY=1 runs only the
// read-only open (scripts/t5-hunt.sh loops seeds);
// CALLVAULT_T5_MUTATIONS (default 10,000) is the total over the six tests,
// split 25/15/20/10/15/15 %. CALLVAULT_T5_SHOW (default 10) failures are
// printed in full. CURRENT files get at most CALLVAULT_T5_CURRENT (default
// 2) mutations per test: a read-only open of a store with a damaged CURRENT
// spends ~15 s retrying as if it raced a writer. The scratch copy lives in
// /dev/shm when there is one (CALLVAULT_T5_SCRATCH overrides).
// CALLVAULT_T5_TRACE=1 makes the child log each open's time to its log.
// CALLVAULT_T5_SHOW_REFUSED=N prints the first N whole-store refusals
// (not failures) with their messages: which damage still stops a store.
//
// Cost, measured at load average 14 on 2 cores: 10,000 mutations in ~9 min
// (~5 CPU-minutes): the suites that pass today (MetaWal, Sst, Blob,
// Manifest, Keyring) in the `file_mutation_test` entry of `make test`, the
// shard WAL one as a known bug (tests/crash/CMakeLists.txt). Manifest
// passes since decision 0015 (the high-water mark a clean close leaves:
// the prepared store is closed cleanly, so a cut or damaged final edit of
// a shard MANIFEST, a cut WAL or a damaged last WAL record is reported).
#include <fcntl.h>
#include <rocksdb/env.h>
#include <rocksdb/file_system.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <numeric>
#include <random>
#include <set>
#include <sstream>

#include "callvault/store.h"
#include "tests/crash/crash_util.h"
#include "tests/testutil/testutil.h"
#include "tests/testutil/no_prealloc_fs.h"

namespace callvault {
namespace {

namespace fs = std::filesystem;
using crashtest::Env;
using crashtest::ReportLine;

constexpr int64_t kT0 = 1'767'225'600'000'000;  // 2026-01-01T00:00:00Z
constexpr char kEnvDir[] = "CALLVAULT_T5_DIR";
constexpr char kEnvStart[] = "CALLVAULT_T5_START";
constexpr char kEnvScratch[] = "CALLVAULT_T5_SCRATCH_DIR";  // set for the child
constexpr char kEnvAbortAt[] = "CALLVAULT_T5_ABORT_AT";     // HarnessCountsACrash

// Where the scratch copy lives: CALLVAULT_T5_SCRATCH if set, else /dev/shm
// when there is one (every open of a damaged copy recovers and fsyncs; on a
// loaded disk that is most of the run time, and durability is T1 and T2's
// business, not this suite's), else the test's temporary directory.
class ScratchDir {
 public:
  explicit ScratchDir(const std::string& fallback) {
    std::string base = Env("CALLVAULT_T5_SCRATCH");
    if (base.empty() && ::access("/dev/shm", W_OK | X_OK) == 0) base = "/dev/shm";
    if (base.empty()) {
      path_ = fallback;
      return;
    }
    std::string tmpl = base + "/callvault-t5-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) std::abort();
    path_ = tmpl;
    owned_ = true;
  }
  ~ScratchDir() {
    if (owned_ && std::getenv("CALLVAULT_KEEP_TMP") == nullptr) {
      std::error_code ec;
      fs::remove_all(path_, ec);
    }
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  bool owned_ = false;
};

// --- The acknowledged content ------------------------------------------------

// Live tenants; kPurgedTenant was created, given a call and purged.
const char* const kTenants[] = {"t5tenant-alfa", "t5tenant-bravo", "t5tenant-charlie",
                                "t5tenant-delta"};
constexpr int kNumTenants = 4;
constexpr char kPurgedTenant[] = "t5tenant-echo";

std::string CallId(int t, int i) { return "t5call-" + std::to_string(t) + "-" + std::to_string(i); }
std::string Marker(int t, int i) { return "t5mark" + std::to_string(t * 100 + i) + "zq"; }

// Random alphanumeric text (zstd cannot shrink it much: blob-sized).
std::string RandomText(uint64_t seed, size_t n) {
  static const char kAlnum[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  std::mt19937_64 rng(seed);
  std::string s(n, 'a');
  for (auto& c : s) c = kAlnum[rng() % 62];
  return s;
}

std::string RandomBytes(uint64_t seed, size_t n) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

Call MakeExpectedCall(int t, int i) {
  Call c = testutil::MakeCall(CallId(t, i), kT0 + t * 1'000'000 + i * 1000, Marker(t, i));
  c.created_at = kT0 + 10 + t * 100 + i;
  c.updated_at = c.created_at;
  if (t == 0 && i == 0) {
    // ~300 KiB of transcript that zstd cannot shrink below 256 KiB.
    for (uint32_t k = 0; k < 20; ++k) {
      c.transcript.push_back(TranscriptSegment{1, 200000 + k * 1000, 200000 + k * 1000 + 900,
                                               RandomText(0x7000 + k, 15000), 0.5f});
    }
  }
  return c;
}

constexpr int kMaxCalls = 6;
const Call& ExpectedCall(int t, int i) {
  static const std::vector<Call> cache = [] {
    std::vector<Call> v;
    for (int k = 0; k < 5 * kMaxCalls; ++k)
      v.push_back(MakeExpectedCall(k / kMaxCalls, k % kMaxCalls));
    return v;
  }();
  return cache[static_cast<size_t>(t * kMaxCalls + i)];
}

struct RecSpec {
  int tenant;
  int call;
  const char* id;
  size_t bytes;
  int phase;
};
const RecSpec kRecordings[] = {
    // Over 1 MiB: a full chunk, over min_blob_size, reaches a blob file.
    {1, 0, "rec-b1", (1u << 20) + (44u << 10), 1},
    {2, 1, "rec-c1", (1u << 20) + (54u << 10), 1},
    {0, 2, "rec-a2", 270u << 10, 2},
};
const std::string& RecordingBytes(const RecSpec& r) {
  static const std::vector<std::string> cache = [] {
    std::vector<std::string> v;
    for (const auto& x : kRecordings)
      v.push_back(RandomBytes(0x9000 + x.tenant * 10 + x.call, x.bytes));
    return v;
  }();
  return cache[static_cast<size_t>(&r - kRecordings)];
}

// The prepared store's tenant placement: one line per tenant of kTenants,
// then kPurgedTenant, each its shard number.
constexpr char kShardsFile[] = "t5-shards.txt";

// Calls per tenant after phase 2, the deleted call, retention.
int Calls(int t) { return t == 3 ? 3 : 6; }
bool Deleted(int t, int i) { return t == 1 && i == 3; }
uint32_t Retention(int t) { return t == 1 ? 77 : 0; }

// RocksDB's preallocation off: tests/testutil/no_prealloc_fs.h says why.
using testutil::NoPreallocFS;

rocksdb::Env* TestEnv() {
  static const std::unique_ptr<rocksdb::Env> env =
      rocksdb::NewCompositeEnv(std::make_shared<NoPreallocFS>(rocksdb::FileSystem::Default()));
  return env.get();
}

Options StoreOptions(std::shared_ptr<KeyProvider> kp) {
  Options o = testutil::DefaultOptions(std::move(kp));
  o.env = TestEnv();
  o.max_tenants_per_shard = 2;
  o.dictionary_training_calls = 0;
  return o;
}

Status WriteRecording(Store& s, const RecSpec& r) {
  RecordingSpec spec;
  spec.recording_id = r.id;
  spec.content_type = "audio/mpeg";
  auto w = s.CreateRecording(kTenants[r.tenant], CallId(r.tenant, r.call), spec);
  if (!w.ok()) return w.status();
  CV_RETURN_IF_ERROR((*w)->Append(RecordingBytes(r)));
  auto info = (*w)->Finish();
  return info.ok() ? Status::OK() : info.status();
}

// Builds the store in dir/db with keys in dir/keys, and writes
// dir/kShardsFile.
void Prepare(const std::string& db, const std::string& keys) {
  auto kp = NewFileKeyProvider(keys);
  ASSERT_OK(kp);
  auto opened = Store::Open(StoreOptions(*kp), db);
  ASSERT_OK(opened);
  Store& s = **opened;
  for (int t = 0; t < 3; ++t) {
    ASSERT_OK(s.CreateTenant({.tenant_id = kTenants[t]}));
    for (int i = 0; i < 4; ++i) ASSERT_OK(s.PutCall(kTenants[t], ExpectedCall(t, i)));
  }
  for (const auto& r : kRecordings) {
    if (r.phase == 1) ASSERT_OK(WriteRecording(s, r));
  }
  ASSERT_OK(s.CreateTenant({.tenant_id = kPurgedTenant}));
  ASSERT_OK(s.PutCall(kPurgedTenant, MakeExpectedCall(4, 0)));
  ASSERT_OK(s.Flush());
  // Recordings are ingested as table files (decision 0055); a compaction
  // moves their chunks into blob files, where FileMutation.Blob finds them.
  ASSERT_OK(s.CompactAll());
  ASSERT_OK(s.PurgeTenant(kPurgedTenant));
  for (int t = 0; t < 3; ++t) {
    for (int i = 4; i < 6; ++i) ASSERT_OK(s.PutCall(kTenants[t], ExpectedCall(t, i)));
  }
  for (const auto& r : kRecordings) {
    if (r.phase == 2) ASSERT_OK(WriteRecording(s, r));
  }
  ASSERT_OK(s.DeleteCall(kTenants[1], CallId(1, 3)));
  ASSERT_OK(s.SetRetention(kTenants[1], Retention(1)));
  ASSERT_OK(s.CreateTenant({.tenant_id = kTenants[3]}));
  for (int i = 0; i < Calls(3); ++i) ASSERT_OK(s.PutCall(kTenants[3], ExpectedCall(3, i)));
  // Everything reads back as written (else the expectations are wrong).
  for (int t = 0; t < kNumTenants; ++t) {
    for (int i = 0; i < Calls(t); ++i) {
      auto c = s.GetCall(kTenants[t], CallId(t, i));
      if (Deleted(t, i)) {
        EXPECT_CODE(c, Code::kNotFound);
      } else {
        ASSERT_OK(c);
        ASSERT_TRUE(*c == ExpectedCall(t, i)) << t << "/" << i;
      }
    }
  }
  auto report = s.Verify();
  ASSERT_OK(report);
  ASSERT_TRUE(report->ok());
  // Which shard holds each tenant (the purged one last), beside db/ and
  // keys/ (no test mutates it): the containment check of CheckOnce.
  std::ostringstream shards;
  for (int t = 0; t <= kNumTenants; ++t) {
    auto info = s.DescribeTenant(t < kNumTenants ? kTenants[t] : kPurgedTenant);
    ASSERT_OK(info);
    shards << info->shard << "\n";
  }
  std::ofstream(fs::path(db).parent_path() / kShardsFile) << shards.str();
}

// --- The plan ---------------------------------------------------------------

enum class Op { kFlip, kZero, kRandom, kTruncate, kAppend };
const char* OpName(Op op) {
  switch (op) {
    case Op::kFlip:
      return "flip";
    case Op::kZero:
      return "zero";
    case Op::kRandom:
      return "random";
    case Op::kTruncate:
      return "truncate";
    case Op::kAppend:
      return "append";
  }
  return "?";
}

struct Mutation {
  size_t index = 0;
  std::string file;  // relative to the scratch root: db/... or keys/...
  Op op = Op::kFlip;
  uint64_t offset = 0;  // flip, zero, random: where; truncate: the new size
  uint64_t length = 0;  // zero, random, append: how many bytes; flip: the bit
  uint64_t seed = 0;    // random, append: the bytes

  std::string Encode() const {
    std::ostringstream o;
    o << index << " " << file << " " << static_cast<int>(op) << " " << offset << " " << length
      << " " << seed;
    return o.str();
  }
  static Mutation Decode(const std::string& line) {
    Mutation m;
    std::istringstream in(line);
    int op;
    in >> m.index >> m.file >> op >> m.offset >> m.length >> m.seed;
    m.op = static_cast<Op>(op);
    return m;
  }
  std::string Describe() const {
    std::ostringstream o;
    o << "#" << index << " " << OpName(op) << " " << file;
    switch (op) {
      case Op::kFlip:
        o << " byte " << offset << " bit " << length;
        break;
      case Op::kZero:
      case Op::kRandom:
        o << " bytes [" << offset << ", " << offset + length << ")";
        break;
      case Op::kTruncate:
        o << " to " << offset << " bytes";
        break;
      case Op::kAppend:
        o << " +" << length << (seed % 2 ? " random" : " zero") << " bytes";
        break;
    }
    return o.str();
  }
};

std::string Apply(const Mutation& m, std::string bytes) {
  switch (m.op) {
    case Op::kFlip:
      if (m.offset < bytes.size())
        bytes[m.offset] = static_cast<char>(bytes[m.offset] ^ (1u << m.length));
      break;
    case Op::kZero:
    case Op::kRandom: {
      const std::string run =
          m.op == Op::kZero ? std::string(m.length, '\0') : RandomBytes(m.seed, m.length);
      for (uint64_t k = 0; k < m.length && m.offset + k < bytes.size(); ++k)
        bytes[m.offset + k] = run[k];
      break;
    }
    case Op::kTruncate:
      bytes.resize(std::min<uint64_t>(m.offset, bytes.size()));
      break;
    case Op::kAppend:
      bytes += m.seed % 2 ? RandomBytes(m.seed, m.length) : std::string(m.length, '\0');
      break;
  }
  return bytes;
}

// The sub-kind of a file of the tree, "" for files no test mutates (LOG,
// LOCK: not data).
std::string SubKind(const std::string& rel) {
  const std::string name = fs::path(rel).filename().string();
  const bool keys = rel.rfind("keys/", 0) == 0;
  const bool meta = rel.rfind("db/meta/", 0) == 0;
  auto ends = [&](const char* suffix) {
    const size_t n = std::strlen(suffix);
    return name.size() > n && name.compare(name.size() - n, n, suffix) == 0;
  };
  if (keys) {
    if (name == "LOCK") return "";
    if (name.rfind("KEK-", 0) == 0) return "kek";
    if (name.rfind("KEYRING-", 0) == 0) return "keyring";
    if (name == "SIGNING-KEY") return "signing_key";
    return "keydir_other";
  }
  if (ends(".log")) return meta ? "meta_wal" : "shard_wal";
  if (ends(".sst")) return meta ? "meta_sst" : "shard_sst";
  if (ends(".blob")) return "blob";
  if (name.rfind("MANIFEST-", 0) == 0) return "manifest";
  if (name == "CURRENT") return "current";
  if (name.rfind("OPTIONS-", 0) == 0) return "options";
  if (name == "IDENTITY") return "identity";
  return "";
}

struct Suite {
  const char* name;
  std::vector<std::string> subkinds;
  int percent;
};
const Suite kSuites[] = {
    {"ShardWal", {"shard_wal"}, 25},
    {"MetaWal", {"meta_wal"}, 15},
    {"Sst", {"shard_sst", "meta_sst"}, 20},
    {"Blob", {"blob"}, 10},
    {"Manifest", {"manifest", "current", "options", "identity"}, 15},
    {"Keyring", {"kek", "keyring", "signing_key", "keydir_other"}, 15},
};

// MANIFESTs get most of their suite's mutations: RocksDB reads OPTIONS and
// IDENTITY files at open only to rewrite them (every mutation of them is
// "repaired", at 65 ms each). Each sub-kind's weight is shared by its files.
double Weight(const std::string& sub) {
  if (sub == "manifest") return 6;
  if (sub == "options") return 2.5;
  if (sub == "identity") return 1.5;
  return 1;
}

size_t PickFile(const std::vector<std::pair<std::string, uint64_t>>& files, std::mt19937_64& rng) {
  std::map<std::string, int> per_sub;
  for (const auto& f : files) ++per_sub[SubKind(f.first)];
  std::vector<double> w;
  for (const auto& f : files) {
    const std::string sub = SubKind(f.first);
    w.push_back(Weight(sub) / per_sub[sub]);
  }
  std::discrete_distribution<size_t> d(w.begin(), w.end());
  return d(rng);
}

std::vector<Mutation> MakePlan(const std::string& root, const Suite& suite, size_t count,
                               std::mt19937_64& rng) {
  std::vector<std::pair<std::string, uint64_t>> files;  // rel path, size
  for (const auto& f : testutil::ListFiles(root)) {
    const std::string rel = fs::relative(f, root).string();
    const std::string sub = SubKind(rel);
    // CALLVAULT_T5_ONLY=<sub-kind>: only that sub-kind's files (a hunt).
    const std::string only = Env("CALLVAULT_T5_ONLY");
    if (!only.empty() && sub != only) continue;
    if (std::find(suite.subkinds.begin(), suite.subkinds.end(), sub) != suite.subkinds.end()) {
      files.emplace_back(rel, fs::file_size(f));
    }
  }
  std::sort(files.begin(), files.end());
  std::vector<Mutation> plan;
  if (files.empty()) return plan;
  // A read-only open of a store whose CURRENT is damaged takes ~15 s (it
  // retries as if racing a writer: engine/shard.cc RetryWhileRacing), so
  // CURRENT files (16 bytes each) get at most CALLVAULT_T5_CURRENT
  // mutations per test run (default 2).
  size_t current_left = static_cast<size_t>(crashtest::EnvInt("CALLVAULT_T5_CURRENT", 2));
  bool others = false;
  for (const auto& f : files) others |= SubKind(f.first) != "current";
  for (size_t i = 0; i < count; ++i) {
    Mutation m;
    m.index = i;
    size_t pick = PickFile(files, rng);
    while (others && SubKind(files[pick].first) == "current" && current_left == 0)
      pick = PickFile(files, rng);
    if (SubKind(files[pick].first) == "current" && current_left > 0) --current_left;
    const auto& [rel, size] = files[pick];
    m.file = rel;
    m.seed = rng();
    const uint64_t r = rng() % 100;
    m.op = size == 0 ? Op::kAppend
           : r < 40  ? Op::kFlip
           : r < 55  ? Op::kZero
           : r < 70  ? Op::kRandom
           : r < 90  ? Op::kTruncate
                     : Op::kAppend;
    switch (m.op) {
      case Op::kFlip:
        m.offset = rng() % size;
        m.length = rng() % 8;
        break;
      case Op::kZero:
      case Op::kRandom:
        m.length = 1 + rng() % std::min<uint64_t>(512, size);
        m.offset = rng() % (size - m.length + 1);
        break;
      case Op::kTruncate:
        m.offset = rng() % size;
        break;
      case Op::kAppend:
        m.length = 1 + rng() % 256;
        break;
    }
    plan.push_back(m);
  }
  return plan;
}

// --- The tree in memory, and its restoration ---------------------------------

struct FileImage {
  std::string bytes;
  mode_t mode = 0600;
};

struct Tree {
  std::map<std::string, FileImage> files;  // rel -> content
  std::map<std::string, mode_t> dirs;      // rel -> mode, parents first

  static Tree Load(const std::string& root) {
    Tree t;
    for (auto it = fs::recursive_directory_iterator(root); it != fs::recursive_directory_iterator();
         ++it) {
      const std::string rel = fs::relative(it->path(), root).string();
      struct stat st;
      if (::lstat(it->path().c_str(), &st) != 0) std::abort();
      if (S_ISDIR(st.st_mode)) {
        t.dirs[rel] = st.st_mode & 07777;
      } else if (S_ISREG(st.st_mode)) {
        t.files[rel] = {testutil::ReadFile(it->path().string()),
                        static_cast<mode_t>(st.st_mode & 07777)};
      }
    }
    return t;
  }
};

struct StatKey {
  ino_t ino = 0;
  off_t size = 0;
  int64_t mtime_ns = 0;
  bool operator==(const StatKey&) const = default;
};

bool StatOf(const std::string& path, StatKey* out) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return false;
  *out = {st.st_ino, st.st_size,
          static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec};
  return true;
}

void WriteWhole(const std::string& path, const std::string& bytes, mode_t mode) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
  if (fd < 0) {
    std::cerr << "open " << path << ": " << std::strerror(errno) << std::endl;
    std::abort();
  }
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n <= 0) std::abort();
    done += static_cast<size_t>(n);
  }
  ::fchmod(fd, mode);
  ::close(fd);
}

// The scratch copy: the pristine tree, written once, then after each
// mutation brought back by rewriting only what changed.
class Scratch {
 public:
  Scratch(const Tree& pristine, std::string root) : pristine_(pristine), root_(std::move(root)) {
    std::error_code ec;
    fs::remove_all(root_, ec);
    fs::create_directories(root_);
    for (const auto& [rel, mode] : pristine_.dirs) {
      fs::create_directory(root_ + "/" + rel);
      ::chmod((root_ + "/" + rel).c_str(), mode);
    }
    for (const auto& [rel, img] : pristine_.files) Put(rel, img.bytes);
  }

  const std::string& root() const { return root_; }

  void Put(const std::string& rel, const std::string& bytes) {
    const std::string p = root_ + "/" + rel;
    WriteWhole(p, bytes, pristine_.files.at(rel).mode);
    StatOf(p, &stats_[rel]);
  }

  // Removes what is not in the pristine tree, rewrites what changed (by
  // inode, size or mtime) or is gone, and `mutated` always.
  void Restore(const std::string& mutated) {
    std::vector<fs::path> extra;
    for (auto it = fs::recursive_directory_iterator(root_);
         it != fs::recursive_directory_iterator(); ++it) {
      const std::string rel = fs::relative(it->path(), root_).string();
      const bool dir = it->is_directory();
      if (dir ? pristine_.dirs.count(rel) > 0 : pristine_.files.count(rel) > 0) continue;
      extra.push_back(it->path());
      if (dir) it.disable_recursion_pending();
    }
    for (const auto& p : extra) fs::remove_all(p);
    for (const auto& [rel, mode] : pristine_.dirs) {
      const std::string p = root_ + "/" + rel;
      if (!fs::is_directory(p)) fs::create_directory(p);
      ::chmod(p.c_str(), mode);
    }
    for (const auto& [rel, img] : pristine_.files) {
      StatKey now;
      if (rel == mutated || !StatOf(root_ + "/" + rel, &now) || !(now == stats_[rel]))
        Put(rel, img.bytes);
    }
  }

 private:
  const Tree& pristine_;
  std::string root_;
  std::map<std::string, StatKey> stats_;
};

// --- One open and its check --------------------------------------------------

enum Cls {
  kRepaired,
  kDetected,
  kRefused,
  kReadErrors,
  kReportedLoss,
  kNotRun,  // the other open of a mutation whose first open crashed or hung
  kFailCrash,
  kFailHang,
  kFailWrong,
  kFailSilentLoss,
  kFailBadCode,
  kFailLeak,
  kFailSpread,
  kNumCls
};
const char* const kClsNames[kNumCls] = {"repaired",      "detected",    "refused",  "read_errors",
                                        "reported_loss", "not_run",     "CRASH",    "HANG",
                                        "WRONG",         "SILENT_LOSS", "BAD_CODE", "LEAK",
                                        "SPREAD"};
constexpr Cls kFirstFailure = kFailCrash;

struct Outcome {
  Cls cls = kRepaired;
  bool audited = false;
  bool whole_store = false;  // Open refused
  int tenants_hit = 0;       // tenants with an error or a loss
  // A shard's file mutated (Where::shard >= 0), the store open and every
  // tenant hit in that shard: contained as decision 0034 says.
  bool contained = false;
  std::string detail;        // for failures
};

// What a mutation touched, for the containment check: the shard whose
// files it changed (-1: the metadata instance, the key directory), and
// where each tenant lives (index kNumTenants: the purged one; empty when
// a reused prepared store has no kShardsFile).
struct Where {
  int shard = -1;
  std::vector<int> shard_of;
};

// "db/shards/0003/..." -> 3; else -1.
int ShardOfFile(const std::string& rel) {
  static const std::string prefix = "db/shards/";
  if (rel.rfind(prefix, 0) != 0) return -1;
  const size_t slash = rel.find('/', prefix.size());
  if (slash == std::string::npos) return -1;
  return std::atoi(rel.substr(prefix.size(), slash - prefix.size()).c_str());
}

std::vector<int> ParseShards(const std::string& text) {
  std::vector<int> v;
  std::istringstream in(text);
  for (int x; in >> x;) v.push_back(x);
  if (v.size() != kNumTenants + 1) v.clear();
  return v;
}

// Tenant ids, call ids and content markers must never be in a message.
bool Leaks(const std::string& msg) {
  for (int t = 0; t < kNumTenants; ++t) {
    if (msg.find(kTenants[t]) != std::string::npos) return true;
  }
  return msg.find(kPurgedTenant) != std::string::npos || msg.find("t5call-") != std::string::npos ||
         msg.find("t5mark") != std::string::npos || msg.find("@example.com") != std::string::npos ||
         msg.find("@customer.example") != std::string::npos;
}

// After decision 0034 a mutation of one shard's files may hit that shard's
// tenants only: the store must open (a whole-store refusal is SPREAD) and
// every acknowledged write of the other shards' tenants, and the purged
// tenant's state and receipt (the metadata instance), must read back as
// written (a hit there is SPREAD). Damage to the metadata instance or the
// key directory may stop the store (issue 11 item 2).
Outcome CheckOnce(const std::string& root, bool read_only, const Where& where) {
  const auto start = std::chrono::steady_clock::now();
  struct Timer {
    std::chrono::steady_clock::time_point start;
    bool ro;
    ~Timer() {
      if (!Env("CALLVAULT_T5_TRACE").empty()) {
        std::cerr << (ro ? "ro " : "rw ")
                  << std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count()
                  << " s\n";
      }
    }
  } timer{start, read_only};
  Outcome out;
  std::vector<std::string> audit_kinds;
  auto kp = NewFileKeyProvider(root + "/keys", {.create_if_missing = false});
  Result<std::unique_ptr<Store>> opened =
      kp.ok() ? Result<std::unique_ptr<Store>>(Status::Internal("unset"))
              : Result<std::unique_ptr<Store>>(kp.status());
  if (kp.ok()) {
    Options o = StoreOptions(*kp);
    o.create_if_missing = false;
    o.read_only = read_only;
    o.audit_callback = [&audit_kinds](const AuditEvent& e) { audit_kinds.push_back(e.kind); };
    opened = Store::Open(o, root + "/db");
  }
  out.audited = !audit_kinds.empty();
  if (!opened.ok()) {
    const Status& s = opened.status();
    out.whole_store = true;
    out.tenants_hit = kNumTenants;
    if (Leaks(s.message())) {
      out.cls = kFailLeak;
      out.detail = "open message: " + s.ToString();
    } else if ((s.code() == Code::kCorruption || s.code() == Code::kKeyError ||
                s.code() == Code::kIOError) &&
               !s.message().empty()) {
      out.cls = where.shard >= 0 ? kFailSpread : kRefused;
      out.detail = (where.shard >= 0 ? "damage in shard " + std::to_string(where.shard) +
                                           "'s files refused the whole store: "
                                     : std::string()) +
                   s.ToString();
    } else {
      out.cls = kFailBadCode;
      out.detail = "open: " + s.ToString();
    }
    return out;
  }
  Store& store = **opened;
  bool wrong = false, missing = false, errors = false, bad_code = false, leak = false;
  // A tenant outside the mutated shard hit (its index in kTenants, or
  // kNumTenants for the purged tenant), -1: none.
  int spread = -1;
  auto outside = [&where](int t) {
    return where.shard >= 0 && !where.shard_of.empty() &&
           (t == kNumTenants || where.shard_of[static_cast<size_t>(t)] != where.shard);
  };
  // The first note of each kind: wrong, leak, bad code, missing, error.
  std::map<int, std::string> notes;
  // Every problem found (each sets one of the flags above with a note):
  // a tenant is hit when this grows while it is checked. (The flags
  // themselves are sticky: a second tenant with the same kind of problem
  // as the first would not change them.)
  size_t problems = 0;
  auto note = [&notes, &problems](int kind, const std::string& what) {
    notes.emplace(kind, what);
    ++problems;
  };
  auto read_error = [&](const Status& s, const std::string& what) {
    if (Leaks(s.message())) {
      leak = true;
      note(1, what + ": message leaks: " + s.ToString());
    }
    if (s.code() == Code::kNotFound || s.code() == Code::kTenantPurged) {
      missing = true;
      note(3, what + ": missing (" + s.ToString() + ")");
    } else if (s.code() == Code::kInternal || s.message().empty()) {
      bad_code = true;
      note(2, what + ": " + s.ToString());
    } else {
      errors = true;
      note(4, what + ": " + s.ToString());
    }
  };
  for (int t = 0; t < kNumTenants; ++t) {
    const size_t p0 = problems;
    const std::string tn = "tenant " + std::to_string(t);
    auto info = store.DescribeTenant(kTenants[t]);
    if (!info.ok()) {
      read_error(info.status(), tn + " describe");
    } else if (info->state != TenantState::kActive || info->retention_days != Retention(t)) {
      missing = true;
      note(3, tn + ": state " + TenantStateName(info->state) + ", retention " +
                  std::to_string(info->retention_days) + " (acknowledged: active, " +
                  std::to_string(Retention(t)) + ")");
    }
    for (int i = 0; i < Calls(t); ++i) {
      const std::string what = tn + " call " + std::to_string(i);
      auto c = store.GetCall(kTenants[t], CallId(t, i));
      if (Deleted(t, i)) {
        if (c.ok()) {
          // An acknowledged delete lost: stale data, not other bytes.
          missing = true;
          note(3, what + ": the acknowledged delete was lost, the call came back");
        } else if (c.status().code() != Code::kNotFound) {
          read_error(c.status(), what + " (deleted)");
        }
      } else if (!c.ok()) {
        read_error(c.status(), what);
      } else if (!(*c == ExpectedCall(t, i))) {
        wrong = true;
        note(0, what + ": read OK with other content");
      }
    }
    for (const auto& r : kRecordings) {
      if (r.tenant != t) continue;
      const std::string what = tn + " recording " + r.id;
      std::string got;
      Status s = store.ReadRecording(kTenants[t], CallId(t, r.call), r.id, 0, UINT64_MAX,
                                     [&got](std::string_view b) {
                                       got.append(b);
                                       return Status::OK();
                                     });
      if (!s.ok()) {
        read_error(s, what);
      } else if (got != RecordingBytes(r)) {
        wrong = true;
        note(0, what + ": read OK with other bytes (" + std::to_string(got.size()) + " of " +
                    std::to_string(r.bytes) + ")");
      }
    }
    if (problems != p0) {
      ++out.tenants_hit;
      if (spread < 0 && outside(t)) spread = t;
    }
  }
  {
    // The purge stays acknowledged: the tenant PURGED, its call gone, the
    // receipt there.
    const size_t p0 = problems;
    auto info = store.DescribeTenant(kPurgedTenant);
    if (!info.ok()) {
      read_error(info.status(), "purged tenant describe");
    } else if (info->state != TenantState::kPurged) {
      missing = true;
      note(3, std::string("purged tenant: state ") + TenantStateName(info->state));
    }
    auto c = store.GetCall(kPurgedTenant, CallId(4, 0));
    if (c.ok()) {
      wrong = true;
      note(0, "purged tenant's call read back");
    }
    auto receipts = store.ListReceipts();
    if (!receipts.ok()) {
      read_error(receipts.status(), "receipts");
    } else if (receipts->size() != 1) {
      missing = true;
      note(3, std::to_string(receipts->size()) + " receipts (acknowledged: 1)");
    }
    if (problems != p0) {
      ++out.tenants_hit;
      if (spread < 0 && outside(kNumTenants)) spread = kNumTenants;
    }
  }
  bool verify_reports = false;
  auto report = store.Verify();
  if (!report.ok()) {
    verify_reports = true;
    if (Leaks(report.status().message())) {
      leak = true;
      note(1, "verify message leaks: " + report.status().ToString());
    }
  } else {
    verify_reports = !report->ok();
  }
  out.audited = !audit_kinds.empty();
  opened = Status::Internal("closed");  // close before the files are restored
  if (wrong) {
    out.cls = kFailWrong;
  } else if (leak) {
    out.cls = kFailLeak;
  } else if (bad_code) {
    out.cls = kFailBadCode;
  } else if ((missing || errors) && !verify_reports) {
    out.cls = kFailSilentLoss;
  } else if (spread >= 0) {
    out.cls = kFailSpread;
  } else if (missing) {
    out.cls = kReportedLoss;
  } else if (errors) {
    out.cls = kReadErrors;
  } else {
    out.cls = verify_reports || out.audited ? kDetected : kRepaired;
  }
  if (!notes.empty()) out.detail = notes.begin()->second;
  if (out.cls == kFailSilentLoss) out.detail += "; Verify() reported nothing";
  if (out.cls == kFailSpread) {
    out.detail = "damage in shard " + std::to_string(where.shard) + "'s files hit " +
                 (spread == kNumTenants ? std::string("the purged tenant")
                                        : "tenant " + std::to_string(spread) + " of shard " +
                                              std::to_string(where.shard_of[static_cast<size_t>(spread)])) +
                 ": " + out.detail;
  }
  out.contained = where.shard >= 0 && out.tenants_hit > 0 && out.cls < kFirstFailure;
  return out;
}

// --- The child: runs the plan from CALLVAULT_T5_START --------------------------

// Result line: "R <index> <ro cls> <rw cls> <ro flags> <rw flags> <detail>",
// flags = audited, whole_store, contained, tenants_hit.
std::string Flags(const Outcome& o) {
  return std::to_string(o.audited) + std::to_string(o.whole_store) +
         std::to_string(o.contained) + std::to_string(o.tenants_hit);
}

constexpr size_t kReopenEvery = 4;

TEST(CrashChild, DISABLED_Run) {
  if (Env(crashtest::kEnvMode) != "t5") GTEST_SKIP();
  const std::string dir = Env(kEnvDir);
  const size_t start = static_cast<size_t>(std::strtoull(Env(kEnvStart).c_str(), nullptr, 10));
  std::vector<Mutation> plan;
  {
    std::ifstream in(dir + "/plan.txt");
    for (std::string line; std::getline(in, line);) plan.push_back(Mutation::Decode(line));
  }
  // A child that dies of a signal writes its stack into child.log (kept with
  // the failure's artifacts): crash_util.cc installs the handler.
  const Tree pristine = Tree::Load(dir + "/pristine");
  Scratch scratch(pristine, Env(kEnvScratch) + "/scratch");
  const auto shards_file = pristine.files.find(kShardsFile);
  const std::vector<int> shard_of =
      shards_file != pristine.files.end() ? ParseShards(shards_file->second.bytes) : std::vector<int>();
  for (size_t i = start; i < plan.size(); ++i) {
    const Mutation& m = plan[i];
    const Where where{ShardOfFile(m.file), shard_of};
    const auto t0 = std::chrono::steady_clock::now();
    ReportLine("B " + std::to_string(i) + " ro");
    scratch.Put(m.file, Apply(m, pristine.files.at(m.file).bytes));
    const Outcome ro = CheckOnce(scratch.root(), true, where);
    ReportLine("B " + std::to_string(i) + " rw " + std::to_string(ro.cls));
    if (std::to_string(i) == Env(kEnvAbortAt)) std::abort();
    // CALLVAULT_T5_RO_ONLY=1: the read-only open alone (a hunt); the
    // writable open is counted as repaired.
    static const bool ro_only = Env("CALLVAULT_T5_RO_ONLY") == "1";
    Outcome rw = ro_only ? Outcome{} : CheckOnce(scratch.root(), false, where);
    if (rw.cls != kRepaired && rw.cls < kFirstFailure && i % kReopenEvery == 0) {
      // The first writable open may have rewritten files (new MANIFEST, WAL,
      // keyring; RocksDB deletes files its MANIFEST does not list): the
      // damage must stay reported at the next open too. Every 4th mutation
      // (a third open of every one would cost a third more time).
      ReportLine("B " + std::to_string(i) + " rw2");
      Outcome again = CheckOnce(scratch.root(), false, where);
      if (again.cls >= kFirstFailure) {
        again.detail = "at the second writable open: " + again.detail;
        rw = again;
      }
    }
    scratch.Restore(m.file);
    std::string detail = ro.cls >= kFirstFailure ? "ro: " + ro.detail : "";
    if (rw.cls >= kFirstFailure) detail += (detail.empty() ? "rw: " : " | rw: ") + rw.detail;
    if (detail.empty()) detail = rw.detail.empty() ? ro.detail : rw.detail;
    std::replace(detail.begin(), detail.end(), '\n', ' ');
    if (detail.size() > 400) detail.resize(400);
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - t0);
    ReportLine("R " + std::to_string(i) + " " + std::to_string(ro.cls) + " " +
               std::to_string(rw.cls) + " " + Flags(ro) + " " + Flags(rw) + " " +
               std::to_string(ms.count()) + " " + detail);
  }
  ReportLine("D");
}

// --- The parent ----------------------------------------------------------------

struct Tally {
  std::map<std::string, std::array<std::array<uint64_t, kNumCls>, 2>> by_sub;  // [ro, rw]
  std::map<std::string, std::array<uint64_t, 5>>
      info;  // rw: audited, whole_store, one tenant hit, several hit, contained in its shard
  std::map<std::string, uint64_t> ms;  // time spent, by sub-kind
  uint64_t planned = 0;
  uint64_t mutations = 0;
  uint64_t failures = 0;
  std::vector<std::string> shown;
  std::vector<std::string> refused_shown;
};

// CALLVAULT_T5_SHOW_REFUSED (default 0): how many whole-store refusals to
// print (not failures; to see which damage still stops a store).
size_t RefusedShow() {
  static const size_t n = static_cast<size_t>(crashtest::EnvInt("CALLVAULT_T5_SHOW_REFUSED", 0));
  return n;
}

void Record(Tally& tally, const Mutation& m, Cls ro, Cls rw, const std::string& rw_flags,
            const std::string& detail, size_t show) {
  const std::string sub = SubKind(m.file);
  auto& row = tally.by_sub[sub];
  ++row[0][ro];
  ++row[1][rw];
  ++tally.mutations;
  if (rw_flags.size() == 4) {
    auto& info = tally.info[sub];
    info[0] += rw_flags[0] == '1';
    info[1] += rw_flags[1] == '1';
    info[2] += rw_flags[1] == '0' && rw_flags[3] == '1';
    info[3] += rw_flags[1] == '0' && rw_flags[3] > '1';
    info[4] += rw_flags[2] == '1';
  }
  if ((ro == kRefused || rw == kRefused) && tally.refused_shown.size() < RefusedShow()) {
    tally.refused_shown.push_back(m.Describe() + ": ro " + kClsNames[ro] + ", rw " +
                                  kClsNames[rw] + ": " + detail);
  }
  if (ro >= kFirstFailure || rw >= kFirstFailure) {
    ++tally.failures;
    if (tally.shown.size() < show) {
      tally.shown.push_back(m.Describe() + ": ro " + kClsNames[ro] + ", rw " + kClsNames[rw] +
                            ": " + detail);
    }
  }
}

uint64_t SuiteSeed() {
  static const uint64_t seed = [] {
    const uint64_t s = crashtest::SeedFromEnv();
    std::cout << "[seed] file_mutation_test: CALLVAULT_SEED=" << s << std::endl;
    return s;
  }();
  return seed;
}

// Runs `count` mutations (0: the suite's share of CALLVAULT_T5_MUTATIONS);
// `abort_at` >= 0 makes the child abort during that mutation's writable
// open (the harness's own test).
Tally RunSuite(const Suite& suite, size_t count = 0, long abort_at = -1) {
  Tally tally;
  const uint64_t seed = SuiteSeed() ^ std::hash<std::string>{}(suite.name);
  const size_t total = static_cast<size_t>(crashtest::EnvInt("CALLVAULT_T5_MUTATIONS", 10000));
  if (count == 0) count = std::max<size_t>(1, total * static_cast<size_t>(suite.percent) / 100);
  const size_t show = static_cast<size_t>(crashtest::EnvInt("CALLVAULT_T5_SHOW", 10));
  testutil::TempDir tmp;
  ScratchDir scratch_dir(tmp.path());
  const std::string root = tmp.Sub("pristine");
  // CALLVAULT_T5_PRISTINE=<dir>: mutate a store kept by an earlier run
  // (a failure's artifacts, below) instead of preparing a new one. The
  // prepared store's bytes differ from run to run (keys, nonces, RocksDB's
  // ids); with the same store and CALLVAULT_SEED the plan and every
  // mutated byte are the same: an exact replay.
  const std::string reuse = Env("CALLVAULT_T5_PRISTINE");
  if (!reuse.empty()) {
    fs::copy(reuse, root, fs::copy_options::recursive);
    for (auto it = fs::recursive_directory_iterator(reuse); it != fs::recursive_directory_iterator(); ++it) {
      struct stat st;
      if (::lstat(it->path().c_str(), &st) == 0) {
        ::chmod((root + "/" + fs::relative(it->path(), reuse).string()).c_str(), st.st_mode & 07777);
      }
    }
  } else {
    fs::create_directories(root);
    Prepare(root + "/db", root + "/keys");
  }
  if (::testing::Test::HasFatalFailure()) return tally;
  std::mt19937_64 rng(seed);
  const std::vector<Mutation> plan = MakePlan(root, suite, count, rng);
  if (plan.size() != count) {
    ADD_FAILURE() << "no file of this kind in the prepared store";
    return tally;
  }
  {
    std::ofstream out(tmp.Sub("plan.txt"));
    for (const auto& m : plan) out << m.Encode() << "\n";
  }
  tally.planned = plan.size();
  const auto t0 = std::chrono::steady_clock::now();
  size_t next = 0;
  int children = 0;
  while (next < plan.size()) {
    if (++children > 200) {
      ADD_FAILURE() << "too many children died; see " << tmp.Sub("child.log");
      return tally;
    }
    crashtest::Child child = crashtest::Spawn({{crashtest::kEnvMode, "t5"},
                                               {kEnvDir, tmp.path()},
                                               {kEnvStart, std::to_string(next)},
                                               {kEnvScratch, scratch_dir.path()},
                                               {kEnvAbortAt, std::to_string(abort_at)}},
                                              tmp.Sub("child.log"));
    std::string partial;
    std::vector<std::string> lines;
    long in_flight = -1;
    std::string phase;
    int ro_done = -1;  // the class of the in-flight mutation's read-only open
    bool done = false, hung = false;
    auto last = std::chrono::steady_clock::now();
    for (;;) {
      const bool open = crashtest::ReadLinesFor(child.fd, 1000, &partial, &lines);
      for (const auto& line : lines) {
        last = std::chrono::steady_clock::now();
        std::istringstream in(line);
        std::string tag;
        in >> tag;
        if (tag == "B") {
          ro_done = -1;
          in >> in_flight >> phase >> ro_done;
        } else if (tag == "R") {
          size_t i;
          int ro, rw;
          std::string ro_flags, rw_flags, detail;
          uint64_t ms = 0;
          in >> i >> ro >> rw >> ro_flags >> rw_flags >> ms;
          std::getline(in, detail);
          Record(tally, plan[i], static_cast<Cls>(ro), static_cast<Cls>(rw), rw_flags, detail,
                 show);
          tally.ms[SubKind(plan[i].file)] += ms;
          next = i + 1;
          in_flight = -1;
        } else if (tag == "D") {
          done = true;
        }
      }
      lines.clear();
      if (!open) break;
      if (std::chrono::steady_clock::now() - last > std::chrono::seconds(120)) {
        ::kill(child.pid, SIGKILL);
        hung = true;
      }
    }
    const int status = crashtest::WaitChild(child.pid);
    ::close(child.fd);
    if (done) break;
    if (in_flight < 0) {
      ADD_FAILURE() << "child died between mutations (" << crashtest::DescribeWait(status) << "):\n"
                    << crashtest::Tail(tmp.Sub("child.log"));
      break;
    }
    const Cls c = hung ? kFailHang : kFailCrash;
    const std::string why = (hung ? "no progress for 120 s" : crashtest::DescribeWait(status)) +
                            " during the " + phase + " open";
    const Mutation& m = plan[static_cast<size_t>(in_flight)];
    Record(tally, m, phase == "ro" ? c : static_cast<Cls>(ro_done < 0 ? kNotRun : ro_done),
           phase == "ro" ? kNotRun : c, "", why, show);
    next = static_cast<size_t>(in_flight) + 1;
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  std::ostringstream o;
  o << "T5 files " << suite.name << (abort_at >= 0 ? " (the harness's own test)" : "") << ": "
    << tally.mutations << " mutations, " << tally.failures << " failures (seed " << seed << ", "
    << children << " child process" << (children > 1 ? "es" : "") << ", " << static_cast<int>(secs)
    << " s)\n";
  // One line per file sub-kind and per open, each starting "T5 files
  // <suite> <sub-kind>" (scripts/suite-counts.sh picks them up and sums
  // them; the harness's own test's lines are indented instead).
  const std::string head =
      abort_at >= 0 ? std::string("  (harness) ") : "T5 files " + std::string(suite.name) + " ";
  for (const auto& [sub, row] : tally.by_sub) {
    const auto& info = tally.info[sub];
    const uint64_t n = std::accumulate(row[0].begin(), row[0].end(), uint64_t{0});
    o << head << sub << ": " << n << " mutations, "
      << (n ? tally.ms[sub] / n : 0) << " ms each; rw: audited=" << info[0]
      << " whole_store_refused=" << info[1] << " contained_in_shard=" << info[4]
      << " one_tenant_hit=" << info[2] << " several_tenants_hit=" << info[3] << "\n";
    for (int mode = 0; mode < 2; ++mode) {
      o << head << sub << (mode ? " rw:" : " ro:");
      for (int c = 0; c < kNumCls; ++c) {
        if (row[mode][c]) o << " " << kClsNames[c] << "=" << row[mode][c];
      }
      o << "\n";
    }
  }
  for (const auto& s : tally.shown) o << "  FAILURE " << s << "\n";
  if (tally.failures > 0 && abort_at < 0) {
    // Keep what an exact replay needs: the prepared store, the plan and the
    // children's log (with the stack of a child that died of a signal).
    std::string keep = Env("CALLVAULT_T5_ARTIFACTS");
    if (keep.empty()) keep = fs::temp_directory_path().string() + "/callvault-t5-artifacts";
    keep += "/" + std::string(suite.name) + "-" + std::to_string(SuiteSeed());
    std::error_code ec;
    fs::remove_all(keep, ec);
    fs::create_directories(keep, ec);
    fs::copy(root, keep + "/pristine", fs::copy_options::recursive, ec);
    fs::copy_file(tmp.Sub("plan.txt"), keep + "/plan.txt", ec);
    fs::copy_file(tmp.Sub("child.log"), keep + "/child.log", ec);
    o << "  artifacts in " << keep << " (replay: CALLVAULT_SEED=" << SuiteSeed()
      << " CALLVAULT_T5_PRISTINE=" << keep << "/pristine";
    if (!Env("CALLVAULT_T5_ONLY").empty()) o << " CALLVAULT_T5_ONLY=" << Env("CALLVAULT_T5_ONLY");
    o << " CALLVAULT_T5_MUTATIONS=" << crashtest::EnvInt("CALLVAULT_T5_MUTATIONS", 10000)
      << " --gtest_filter=FileMutation." << suite.name << ")\n";
  }
  for (const auto& s : tally.refused_shown) o << "  REFUSED " << s << "\n";
  std::cout << o.str() << std::flush;
  return tally;
}

void RunAndExpectNoFailure(const Suite& suite) {
  const Tally tally = RunSuite(suite);
  EXPECT_GT(tally.planned, 0u) << "T5 " << suite.name << ": no file of its kinds to mutate";
  EXPECT_EQ(tally.mutations, tally.planned);
  EXPECT_EQ(tally.failures, 0u) << "T5 " << suite.name
                                << ": replay with CALLVAULT_SEED=" << SuiteSeed();
}

TEST(FileMutation, ShardWal) { RunAndExpectNoFailure(kSuites[0]); }
TEST(FileMutation, MetaWal) { RunAndExpectNoFailure(kSuites[1]); }
TEST(FileMutation, Sst) { RunAndExpectNoFailure(kSuites[2]); }
TEST(FileMutation, Blob) { RunAndExpectNoFailure(kSuites[3]); }
TEST(FileMutation, Manifest) { RunAndExpectNoFailure(kSuites[4]); }
TEST(FileMutation, Keyring) { RunAndExpectNoFailure(kSuites[5]); }

// The harness itself: a child that dies in the middle of a mutation is
// counted as a crash of that mutation, and a new child goes on with the
// next one.
TEST(FileMutation, HarnessCountsACrash) {
  const Tally tally = RunSuite(kSuites[5], 4, 1);
  EXPECT_EQ(tally.mutations, 4u);
  EXPECT_EQ(tally.failures, 1u);
  ASSERT_EQ(tally.shown.size(), 1u);
  EXPECT_EQ(tally.shown[0].rfind("#1 ", 0), 0u) << tally.shown[0];
  EXPECT_NE(tally.shown[0].find("rw CRASH"), std::string::npos) << tally.shown[0];
  uint64_t crashes = 0;
  for (const auto& [sub, row] : tally.by_sub) crashes += row[1][kFailCrash];
  EXPECT_EQ(crashes, 1u);
}

// The containment oracle itself (decision 0034): a tenant's shard cut in
// half is contained when the mutation is blamed on that shard, and SPREAD
// when blamed on another one (its tenants hit outside the mutated shard);
// a whole-store refusal blamed on a shard is SPREAD too.
TEST(FileMutation, OracleCatchesSpread) {
  testutil::TempDir tmp;
  const std::string root = tmp.Sub("store");
  fs::create_directories(root);
  Prepare(root + "/db", root + "/keys");
  if (::testing::Test::HasFatalFailure()) return;
  const std::vector<int> shard_of = ParseShards(testutil::ReadFile(root + "/" + kShardsFile));
  ASSERT_EQ(shard_of.size(), static_cast<size_t>(kNumTenants + 1));
  const int mine = shard_of[0];
  int other = -1;
  for (int t = 1; t < kNumTenants; ++t) {
    if (shard_of[static_cast<size_t>(t)] != mine) other = shard_of[static_cast<size_t>(t)];
  }
  ASSERT_GE(other, 0) << "all tenants in one shard";
  char dir[32];
  std::snprintf(dir, sizeof dir, "db/shards/%04d", mine);
  std::string current = testutil::ReadFile(root + "/" + dir + "/CURRENT");
  while (!current.empty() && current.back() == '\n') current.pop_back();
  const std::string manifest = std::string(dir) + "/" + current;
  ASSERT_EQ(ShardOfFile(manifest), mine);
  const Tree pristine = Tree::Load(root);
  ScratchDir scratch_dir(tmp.path());
  Scratch scratch(pristine, scratch_dir.path() + "/scratch");
  const std::string& bytes = pristine.files.at(manifest).bytes;
  scratch.Put(manifest, bytes.substr(0, bytes.size() / 2));
  for (bool ro : {true, false}) {
    const Outcome right = CheckOnce(scratch.root(), ro, Where{mine, shard_of});
    EXPECT_EQ(right.cls, kReadErrors) << ro << ": " << right.detail;
    EXPECT_TRUE(right.contained) << ro;
    // Every live tenant of that shard is hit, each counted (a second one
    // with the same kind of error as the first is a hit too).
    EXPECT_EQ(right.tenants_hit, std::count(shard_of.begin(), shard_of.begin() + kNumTenants, mine))
        << ro;
    const Outcome wrong = CheckOnce(scratch.root(), ro, Where{other, shard_of});
    EXPECT_EQ(wrong.cls, kFailSpread) << ro << ": " << wrong.detail;
    EXPECT_FALSE(wrong.contained) << ro;
    EXPECT_NE(wrong.detail.find("damage in shard " + std::to_string(other)), std::string::npos)
        << wrong.detail;
  }
  // The metadata instance's CURRENT gone: the store is refused; blamed
  // on a shard, that is SPREAD; blamed on nothing, refused.
  scratch.Restore(manifest);
  ::unlink((scratch.root() + "/db/meta/CURRENT").c_str());
  EXPECT_EQ(CheckOnce(scratch.root(), false, Where{}).cls, kRefused);
  const Outcome spread = CheckOnce(scratch.root(), false, Where{mine, shard_of});
  EXPECT_EQ(spread.cls, kFailSpread) << spread.detail;
  EXPECT_TRUE(spread.whole_store);
}

}  // namespace
}  // namespace callvault
