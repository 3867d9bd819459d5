// T9, issue 10 item 7: a full disk gives kIOError ("disk full: ..."), never
// an abort, and loses nothing acknowledged.
//
// - FaultFS (tests/testutil/fault_fs.h) failing every write, sync, create,
//   rename and directory sync with NoSpace (ENOSPC) from the start of a
//   put, a tenant create, a purge, and an open: each returns kIOError
//   whose message says the disk is full; after the fault lifts, a reopen
//   shows every acknowledged put.
// - A real 4 MiB tmpfs (mount needs root; skipped with a message
//   otherwise) filled by puts in a CHILD process (this binary run again as
//   FullDiskHelper.Fill), which then fills the rest of the disk and tries a
//   put, a create, a purge (each kIOError, "disk full"), a close and a
//   reopen there (OK, or "disk full"), and a read-only open that still reads: the child must
//   exit normally (an abort, e.g. the assertion in RocksDB's own info
//   logger, shows as a signal). Then the filler is removed and a reopen
//   shows every put the child acknowledged.
#include <gtest/gtest.h>
#include <sys/mount.h>

#include <cstring>
#include <filesystem>
#include <random>

#include "callvault/store.h"
#include "tests/testutil/fault_fs.h"
#include "tests/testutil/testutil.h"
#include "tests/trust/trust_util.h"

namespace callvault {
namespace {

using testutil::FaultFS;
using testutil::FaultSpec;
namespace fs = std::filesystem;

constexpr int64_t kT0 = 1'767'225'600'000'000;
constexpr uint32_t kDiskOps = testutil::kOpWrite | testutil::kOpSync | testutil::kOpCreate |
                              testutil::kOpRename | testutil::kOpDirSync;

Options FaultOptions(const std::string& keys, rocksdb::Env* env) {
  auto kp = NewFileKeyProvider(keys, {.create_if_missing = true, .env = env});
  if (!kp.ok()) std::abort();
  Options o = trust::StoreOptions(keys, false);
  o.key_provider = *kp;
  o.env = env;
  return o;
}

Call BigCall(const std::string& id, int i, std::mt19937_64& rng) {
  Call c = testutil::MakeCall(id, kT0 + i * 1000, id);
  // Text that compresses poorly, so the disk fills in a few hundred puts.
  std::string text;
  static const char kAlphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789 ";
  for (int k = 0; k < 6000; ++k) text += kAlphabet[rng() % (sizeof kAlphabet - 1)];
  c.insights.summary = text;
  return c;
}

void ExpectDiskFull(const Status& s, const char* what) {
  EXPECT_EQ(s.code(), Code::kIOError) << what << ": " << s.ToString();
  EXPECT_NE(s.message().find("disk full"), std::string::npos) << what << ": " << s.ToString();
}

TEST(FullDisk, FaultFsNoSpaceGivesIoErrorAndLosesNothing) {
  testutil::TempDir tmp;
  const std::string db = tmp.Sub("db"), keys = tmp.Sub("keys");
  auto ffs = std::make_shared<FaultFS>(1);
  auto env = testutil::FaultEnv(ffs);
  std::mt19937_64 rng(7);
  std::vector<std::string> acked;
  int next = 0;
  auto open = [&] { return Store::Open(FaultOptions(keys, env.get()), db); };
  auto put_some = [&](Store& s, int n) {
    for (int i = 0; i < n; ++i, ++next) {
      const std::string id = "c-" + std::to_string(next);
      ASSERT_OK(s.PutCall("acme", BigCall(id, next, rng)));
      acked.push_back(id);
    }
  };
  {
    auto store = open();
    ASSERT_OK(store);
    ASSERT_OK((*store)->CreateTenant({.tenant_id = "acme"}));
    ASSERT_OK((*store)->CreateTenant({.tenant_id = "doomed"}));
    put_some(**store, 5);
  }
  const FaultSpec full{.kinds = kDiskOps, .nth = 1, .forever = true, .no_space = true};
  // A put.
  {
    auto store = open();
    ASSERT_OK(store);
    put_some(**store, 3);
    ffs->Inject(full);
    ExpectDiskFull((*store)->PutCall("acme", BigCall("lost-put", 999, rng)).status(), "put");
    ffs->Lift();
  }
  // A tenant create.
  {
    auto store = open();
    ASSERT_OK(store);
    put_some(**store, 3);
    ffs->Inject(full);
    ExpectDiskFull((*store)->CreateTenant({.tenant_id = "newcomer"}).status(), "create");
    ffs->Lift();
  }
  // A purge.
  {
    auto store = open();
    ASSERT_OK(store);
    put_some(**store, 3);
    ffs->Inject(full);
    ExpectDiskFull((*store)->PurgeTenant("doomed").status(), "purge");
    ffs->Lift();
  }
  // An open.
  ffs->Inject(full);
  {
    auto store = open();
    ExpectDiskFull(store.status(), "open");
  }
  ffs->Lift();
  // The disk has room again: every acknowledged put is there.
  auto store = open();
  ASSERT_OK(store);
  for (const auto& id : acked) {
    SCOPED_TRACE(id);
    EXPECT_OK((*store)->GetCall("acme", id, kPartMetadata));
  }
  auto n = (*store)->CountCalls("acme");
  ASSERT_OK(n);
  EXPECT_GE(*n, acked.size());
  EXPECT_LE(*n, acked.size() + 1);  // the failed put may or may not have reached the WAL
  auto report = (*store)->Verify();
  ASSERT_OK(report);
  EXPECT_EQ(report->records_failed, 0u);
}

// The child: puts calls into the tmpfs store at $CV_FD_DB, recording each
// acknowledged id in $CV_FD_ACKS (on another file system), then fills what
// is left of the disk with $CV_FD_FILLER and goes on: a put, a create, a
// purge, a close, a writable reopen (which writes RocksDB's info log first
// thing), and a read-only open that reads what was acknowledged. Exit 0:
// the put on the full disk failed with kIOError saying "disk full", the
// create, the purge and the reopen either did too or succeeded (a create or
// purge writes only a few small records: no OPTIONS file since decision
// 0069; each one that succeeded is named in $CV_FD_ACKS.admin and checked
// after the reopen), and the read-only open served the reads; 2-6: which
// step went wrong.
TEST(FullDiskHelper, Fill) {
  const std::string db = trust::Env("CV_FD_DB");
  if (db.empty()) GTEST_SKIP() << "helper process for FullDisk.RealTmpfsNoAbortNothingLost";
  const std::string keys = trust::Env("CV_FD_KEYS"), acks = trust::Env("CV_FD_ACKS");
  Options o = trust::StoreOptions(keys, false);
  o.write_buffer_bytes = 1u << 20;
  auto store = Store::Open(o, db);
  if (!store.ok()) {
    fprintf(stderr, "fill: open: %s\n", store.status().ToString().c_str());
    ::_exit(2);
  }
  if (!(*store)->CreateTenant({.tenant_id = "acme"}).ok() ||
      !(*store)->CreateTenant({.tenant_id = "doomed"}).ok()) {
    ::_exit(2);
  }
  std::mt19937_64 rng(11);
  for (int i = 0; i < 100; ++i) {
    const std::string id = "c-" + std::to_string(i);
    Status s = (*store)->PutCall("acme", BigCall(id, i, rng)).status();
    if (!s.ok()) break;  // full already
    trust::AppendLine(acks, id);
  }
  {
    // Whatever room is left goes to a filler file.
    FILE* f = std::fopen(trust::Env("CV_FD_FILLER"), "w");
    if (f == nullptr) ::_exit(3);
    std::string block(4096, 'x');
    while (std::fwrite(block.data(), 1, block.size(), f) == block.size() && std::fflush(f) == 0) {
    }
    std::fclose(f);
  }
  int ok = 0;
  auto full = [&](const Status& s, const char* what) {
    fprintf(stderr, "fill: %s on a full disk: %s\n", what, s.ToString().c_str());
    if (s.code() == Code::kIOError && s.message().find("disk full") != std::string::npos) ++ok;
  };
  Status put;
  for (int i = 0; i < 1000 && put.ok(); ++i) {  // until the WAL or a flush meets the full disk
    const std::string id = "f-" + std::to_string(i);
    put = (*store)->PutCall("acme", BigCall(id, 1000 + i, rng)).status();
    if (put.ok()) trust::AppendLine(acks, id);
  }
  full(put, "put");
  auto admin = [&](const Status& s, const char* what) {
    if (!s.ok()) return full(s, what);
    fprintf(stderr, "fill: %s on a full disk: ok (small writes)\n", what);
    trust::AppendLine(acks + ".admin", what);
    ++ok;
  };
  admin((*store)->CreateTenant({.tenant_id = "newcomer"}).status(), "create");
  admin((*store)->PurgeTenant("doomed").status(), "purge");
  store->reset();
  {
    // May succeed: the failed operations may have freed what they wrote.
    // If it fails, it must say why.
    auto again = Store::Open(o, db);
    if (again.ok()) ++ok;
    else full(again.status(), "writable reopen");
  }
  if (ok != 4) ::_exit(4);
  auto ro = Store::Open(trust::StoreOptions(keys, true), db);
  if (!ro.ok()) {
    fprintf(stderr, "fill: read-only open on a full disk: %s\n", ro.status().ToString().c_str());
    ::_exit(5);
  }
  for (const auto& id : trust::ReadLines(acks)) {
    if (!(*ro)->GetCall("acme", id, kPartMetadata).ok()) ::_exit(6);
  }
  ::_exit(0);
}

class Tmpfs {
 public:
  explicit Tmpfs(std::string dir) : dir_(std::move(dir)) {
    fs::create_directories(dir_);
    if (::mount("tmpfs", dir_.c_str(), "tmpfs", 0, "size=4m,mode=0700") == 0) {
      mounted_ = true;
    } else {
      error_ = std::strerror(errno);
    }
  }
  ~Tmpfs() {
    if (mounted_) ::umount2(dir_.c_str(), MNT_DETACH);
  }
  bool mounted() const { return mounted_; }
  const std::string& error() const { return error_; }

 private:
  std::string dir_;
  bool mounted_ = false;
  std::string error_;
};

TEST(FullDisk, RealTmpfsNoAbortNothingLost) {
  testutil::TempDir tmp;
  Tmpfs disk(tmp.Sub("mnt"));
  if (!disk.mounted()) {
    GTEST_SKIP() << "cannot mount a tmpfs here (" << disk.error()
                 << "); run as root to test a real full disk";
  }
  const std::string db = tmp.Sub("mnt") + "/db", keys = tmp.Sub("keys"), acks = tmp.Sub("acks");
  const std::string filler = tmp.Sub("mnt") + "/filler";
  pid_t child = trust::SpawnHelper("FullDiskHelper.Fill",
                                   {"CV_FD_DB=" + db, "CV_FD_KEYS=" + keys, "CV_FD_ACKS=" + acks,
                                    "CV_FD_FILLER=" + filler});
  ASSERT_GT(child, 0);
  const int status = trust::Wait(child);
  ASSERT_TRUE(WIFEXITED(status)) << "the process writing to a full disk was "
                                 << trust::DescribeStatus(status) << " (an abort)";
  ASSERT_EQ(WEXITSTATUS(status), 0) << trust::DescribeStatus(status);
  const auto acked = trust::ReadLines(acks);
  ASSERT_GT(acked.size(), 10u);
  EXPECT_TRUE(fs::exists(filler));
  ASSERT_TRUE(fs::remove(filler));  // the disk has room again
  Options o = trust::StoreOptions(keys, false);
  auto store = Store::Open(o, db);
  ASSERT_OK(store);
  for (const auto& id : acked) {
    SCOPED_TRACE(id);
    EXPECT_OK((*store)->GetCall("acme", id, kPartMetadata));
  }
  // A create or purge that returned OK on the full disk is durable.
  std::vector<std::string> admin;
  if (fs::exists(acks + ".admin")) admin = trust::ReadLines(acks + ".admin");
  for (const auto& what : admin) {
    SCOPED_TRACE(what);
    if (what == "create") {
      EXPECT_OK((*store)->DescribeTenant("newcomer"));
      EXPECT_OK((*store)->PutCall("newcomer", testutil::MakeCall("n1", kT0)));
    } else if (what == "purge") {
      EXPECT_CODE((*store)->GetCall("doomed", "x"), Code::kTenantPurged);
    } else {
      ADD_FAILURE() << "unknown line in " << acks << ".admin: " << what;
    }
  }
  std::printf("full disk: create and purge that succeeded on it: %zu\n", admin.size());
  auto report = (*store)->Verify();
  ASSERT_OK(report);
  EXPECT_EQ(report->records_failed, 0u);
  // And the store works again.
  ASSERT_OK((*store)->PutCall("acme", testutil::MakeCall("after-grow", kT0)));
}

}  // namespace
}  // namespace callvault
