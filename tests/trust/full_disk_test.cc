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
//   FullDiskHelper.Fill), which then also tries a create, a purge, a close
//   and a reopen on the full disk: the child must exit normally (an abort,
//   e.g. an assertion in RocksDB's own info logger, shows as a signal).
//   Then the tmpfs is made larger and a reopen shows every put the child
//   acknowledged.
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

// The child: fills the tmpfs at $CV_FD_DB with puts, recording each
// acknowledged id in $CV_FD_ACKS (on another file system), then tries a
// create, a purge, a close and a reopen on the full disk. Exit 0: the disk
// filled and the failure was kIOError; 3: a put failed with another code;
// 4: the disk never filled.
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
  Status failed;
  for (int i = 0; i < 100000; ++i) {
    const std::string id = "c-" + std::to_string(i);
    failed = (*store)->PutCall("acme", BigCall(id, i, rng)).status();
    if (!failed.ok()) break;
    trust::AppendLine(acks, id);
  }
  if (failed.ok()) ::_exit(4);
  fprintf(stderr, "fill: the disk filled: %s\n", failed.ToString().c_str());
  if (failed.code() != Code::kIOError) ::_exit(3);
  // More operations on the full disk: errors, never an abort.
  Status s = (*store)->CreateTenant({.tenant_id = "newcomer"}).status();
  fprintf(stderr, "fill: create on a full disk: %s\n", s.ToString().c_str());
  s = (*store)->PurgeTenant("doomed").status();
  fprintf(stderr, "fill: purge on a full disk: %s\n", s.ToString().c_str());
  store->reset();
  auto again = Store::Open(o, db);
  fprintf(stderr, "fill: reopen on a full disk: %s\n", again.status().ToString().c_str());
  if (again.ok()) {
    s = (*again)->PutCall("acme", BigCall("after", 100001, rng)).status();
    fprintf(stderr, "fill: put after reopen: %s\n", s.ToString().c_str());
    if (s.ok()) trust::AppendLine(acks, "after");
  }
  again = Result<std::unique_ptr<Store>>(Status::Internal("closed"));
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
  bool Grow() {
    return ::mount("tmpfs", dir_.c_str(), "tmpfs", MS_REMOUNT, "size=64m,mode=0700") == 0;
  }

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
  pid_t child = trust::SpawnHelper(
      "FullDiskHelper.Fill", {"CV_FD_DB=" + db, "CV_FD_KEYS=" + keys, "CV_FD_ACKS=" + acks});
  ASSERT_GT(child, 0);
  const int status = trust::Wait(child);
  ASSERT_TRUE(WIFEXITED(status)) << "the process writing to a full disk was "
                                 << trust::DescribeStatus(status) << " (an abort)";
  ASSERT_EQ(WEXITSTATUS(status), 0) << trust::DescribeStatus(status);
  const auto acked = trust::ReadLines(acks);
  ASSERT_GT(acked.size(), 10u);
  ASSERT_TRUE(disk.Grow()) << std::strerror(errno);
  Options o = trust::StoreOptions(keys, false);
  auto store = Store::Open(o, db);
  ASSERT_OK(store);
  for (const auto& id : acked) {
    SCOPED_TRACE(id);
    EXPECT_OK((*store)->GetCall("acme", id, kPartMetadata));
  }
  auto report = (*store)->Verify();
  ASSERT_OK(report);
  EXPECT_EQ(report->records_failed, 0u);
  // And the store works again.
  ASSERT_OK((*store)->PutCall("acme", testutil::MakeCall("after-grow", kT0)));
}

}  // namespace
}  // namespace callvault
