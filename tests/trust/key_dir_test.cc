// T9, issue 10 items 1, 5, 6: the key directory as a trust boundary.
//   - one writer per key directory: a second writer (another process, or
//     another provider object in this process) is refused with an error
//     naming the directory, and changes nothing in it; a restored copy of
//     the store cannot bring a purged DEK back or destroy live KEKs;
//   - a store whose view of the key directory is stale (a provider without
//     a lock) writes and destroys nothing;
//   - key files are 0600 from their creation (checked at the moment the
//     FileSystem opens them, under umask 000), the key directory 0700; a
//     loose, foreign-owned or symlinked key directory is refused with the fix;
//   - keys and store apart by identity: a symlink or a bind mount cannot
//     put one inside the other; a refused init leaves no directory behind.
//
// Second processes are this binary re-executed (fork + exec of
// /proc/self/exe) running only KeyDirChild.DISABLED_Run, configured through
// the environment; it exits with the Status code of what it tried.
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <rocksdb/env.h>
#include <rocksdb/file_system.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <vector>

#include "callvault/key_provider.h"
#include "callvault/store.h"
#include "tests/testutil/testutil.h"

namespace callvault {
namespace {

namespace fs = std::filesystem;
using testutil::TempDir;

constexpr char kEnvKeys[] = "CV_KD_KEYS";
constexpr char kEnvDb[] = "CV_KD_DB";
constexpr char kEnvAction[] = "CV_KD_ACTION";  // "open" | "create" | "purge:<id>"
constexpr char kEnvOut[] = "CV_KD_OUT";        // the child's status message goes here

std::string EnvOr(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

Options BaseOptions(std::shared_ptr<KeyProvider> kp) {
  return testutil::DefaultOptions(std::move(kp));
}

Result<std::unique_ptr<Store>> OpenStore(const std::string& db, const std::string& keys,
                                         bool create = false) {
  auto kp = NewFileKeyProvider(keys, {.create_if_missing = create});
  if (!kp.ok()) return kp.status();
  Options o = BaseOptions(*kp);
  o.create_if_missing = create;
  return Store::Open(o, db);
}

// Child side: what a second program against the public headers would do.
TEST(KeyDirChild, DISABLED_Run) {
  const std::string out = EnvOr(kEnvOut);
  auto finish = [&](const Status& s) {
    std::ofstream(out) << s.ToString();
    std::fflush(nullptr);
    ::_exit(static_cast<int>(s.code()));
  };
  auto store = OpenStore(EnvOr(kEnvDb), EnvOr(kEnvKeys));
  if (!store.ok()) finish(store.status());
  const std::string action = EnvOr(kEnvAction);
  if (action == "create") finish((*store)->CreateTenant({.tenant_id = "intruder"}).status());
  if (action.rfind("purge:", 0) == 0) finish((*store)->PurgeTenant(action.substr(6)).status());
  finish(Status::OK());
}

struct ChildResult {
  int code = -1;  // the Status code, or -1 if the child did not exit normally
  std::string message;
};

ChildResult RunChild(const std::string& db, const std::string& keys, const std::string& action,
                     const std::string& scratch) {
  const std::string out = scratch + "/child-" + std::to_string(::getpid()) + ".txt";
  fs::remove(out);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::setenv(kEnvKeys, keys.c_str(), 1);
    ::setenv(kEnvDb, db.c_str(), 1);
    ::setenv(kEnvAction, action.c_str(), 1);
    ::setenv(kEnvOut, out.c_str(), 1);
    int devnull = ::open("/dev/null", O_WRONLY);
    if (devnull >= 0) {
      ::dup2(devnull, 1);
      ::dup2(devnull, 2);
    }
    ::execl("/proc/self/exe", "key_dir_test", "--gtest_filter=KeyDirChild.DISABLED_Run",
            "--gtest_also_run_disabled_tests", static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ChildResult r;
  int st = 0;
  if (pid > 0 && ::waitpid(pid, &st, 0) == pid && WIFEXITED(st)) r.code = WEXITSTATUS(st);
  r.message = testutil::ReadFile(out);
  return r;
}

// Every file of the key directory: its size and a digest of its bytes (key
// bytes themselves stay out of failure messages).
std::map<std::string, std::string> Snapshot(const std::string& dir) {
  std::map<std::string, std::string> m;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string bytes = testutil::ReadFile(e.path().string());
    m[e.path().filename().string()] =
        std::to_string(bytes.size()) + " bytes, hash " +
        std::to_string(std::hash<std::string>{}(bytes));
  }
  return m;
}

// A store with two tenants and a call each, closed.
void MakeStore(const std::string& db, const std::string& keys) {
  auto s = OpenStore(db, keys, /*create=*/true);
  ASSERT_OK(s);
  for (const char* t : {"x", "y"}) {
    ASSERT_OK((*s)->CreateTenant({.tenant_id = t}));
    ASSERT_OK((*s)->PutCall(t, testutil::MakeCall("c1", 1700000000000, "MARKER")));
  }
}

// --- 1. one writer per key directory ---------------------------------------------

TEST(KeyDirLock, SecondWriterProcessRefusedAndChangesNothing) {
  TempDir tmp;
  const std::string db = tmp.Sub("db"), copy = tmp.Sub("copy"), keys = tmp.Sub("keys");
  MakeStore(db, keys);
  testutil::CopyTree(db, copy);
  auto a = OpenStore(db, keys);
  ASSERT_OK(a);
  const auto before = Snapshot(keys);
  // The same store and a copy of it (a restored backup), each with the keys.
  for (const auto& target : {db, copy}) {
    for (const char* action : {"open", "create", "purge:x"}) {
      SCOPED_TRACE(target + " " + action);
      ChildResult r = RunChild(target, keys, action, tmp.path());
      EXPECT_EQ(r.code, static_cast<int>(Code::kFailedPrecondition)) << r.message;
      EXPECT_NE(r.message.find("key directory " + keys + " is in use by another process (pid " +
                               std::to_string(::getpid()) + ")"),
                std::string::npos)
          << r.message;
      EXPECT_EQ(Snapshot(keys), before) << "a refused writer changed the key directory";
    }
  }
  // A still works, and after it closes the next writer gets the lock.
  ASSERT_OK((*a)->CreateTenant({.tenant_id = "z"}));
  a->reset();
  ChildResult r = RunChild(db, keys, "open", tmp.path());
  EXPECT_EQ(r.code, 0) << r.message;
}

TEST(KeyDirLock, SecondProviderInThisProcessRefused) {
  TempDir tmp;
  const std::string db = tmp.Sub("db"), copy = tmp.Sub("copy"), keys = tmp.Sub("keys");
  MakeStore(db, keys);
  testutil::CopyTree(db, copy);
  auto a = OpenStore(db, keys);
  ASSERT_OK(a);
  const auto before = Snapshot(keys);
  auto b = OpenStore(copy, keys);
  EXPECT_CODE(b, Code::kFailedPrecondition);
  EXPECT_NE(b.status().message().find("key directory " + keys + " is in use"), std::string::npos)
      << b.status().ToString();
  EXPECT_EQ(Snapshot(keys), before);
  // The same provider object for a second store: refused as well.
  auto kp = NewFileKeyProvider(keys, {.create_if_missing = false});
  ASSERT_OK(kp);
  a->reset();
  auto c = Store::Open(BaseOptions(*kp), db);
  ASSERT_OK(c);
  auto d = Store::Open(BaseOptions(*kp), copy);
  EXPECT_CODE(d, Code::kFailedPrecondition);
  c->reset();  // releases the lock: the provider can serve the next store
  auto e = Store::Open(BaseOptions(*kp), copy);
  EXPECT_OK(e);
}

// The restored-copy scenario of issue 10: B (a copy with the same keys)
// must neither bring A's purged tenant back nor destroy A's keys.
TEST(KeyDirLock, RestoredCopyCannotResurrectPurgedTenant) {
  TempDir tmp;
  const std::string db = tmp.Sub("db"), copy = tmp.Sub("copy"), old = tmp.Sub("old"),
                    keys = tmp.Sub("keys");
  MakeStore(db, keys);
  testutil::CopyTree(db, copy);
  testutil::CopyTree(db, old);  // x's pre-purge backup
  auto a = OpenStore(db, keys);
  ASSERT_OK(a);
  ASSERT_OK((*a)->PurgeTenant("x"));
  const auto after_purge = Snapshot(keys);
  // B in another process while A runs: refused, nothing changed.
  for (const char* action : {"open", "create", "purge:y"}) {
    ChildResult r = RunChild(copy, keys, action, tmp.path());
    EXPECT_EQ(r.code, static_cast<int>(Code::kFailedPrecondition)) << action << ": " << r.message;
    EXPECT_EQ(Snapshot(keys), after_purge) << action;
  }
  a->reset();
  // After A closed, B opens, creates and purges.
  ChildResult r = RunChild(copy, keys, "create", tmp.path());
  ASSERT_EQ(r.code, 0) << r.message;
  r = RunChild(copy, keys, "purge:y", tmp.path());
  ASSERT_EQ(r.code, 0) << r.message;
  // x's pre-purge copy stays unreadable with the current keys.
  {
    auto o = OpenStore(old, keys);
    ASSERT_OK(o);
    EXPECT_CODE((*o)->GetCall("x", "c1"), Code::kTenantPurged);
  }
  // A's store still opens; x stays purged there too.
  auto again = OpenStore(db, keys);
  ASSERT_OK(again);
  EXPECT_CODE((*again)->GetCall("x", "c1"), Code::kTenantPurged);
}

// A provider that takes no lock (as an HSM or KMS provider might not): the
// store still re-reads the key directory before every change and refuses
// to build on a stale view.
class UnlockedProvider final : public KeyProvider {
 public:
  explicit UnlockedProvider(std::shared_ptr<KeyProvider> inner) : in_(std::move(inner)) {}
  std::string Describe() const override { return in_->Describe(); }
  Result<std::vector<uint32_t>> ListKeks() override { return in_->ListKeks(); }
  Status CreateKek(uint32_t g) override { return in_->CreateKek(g); }
  Status DestroyKek(uint32_t g) override { return in_->DestroyKek(g); }
  Result<std::string> Seal(uint32_t g, const SecretBytes& p, std::string_view aad) override {
    return in_->Seal(g, p, aad);
  }
  Result<SecretBytes> Open(uint32_t g, std::string_view s, std::string_view aad) override {
    return in_->Open(g, s, aad);
  }
  Result<std::vector<uint64_t>> ListKeyrings() override { return in_->ListKeyrings(); }
  Result<std::string> ReadKeyring(uint64_t g) override { return in_->ReadKeyring(g); }
  Status WriteKeyring(uint64_t g, std::string_view b) override { return in_->WriteKeyring(g, b); }
  Status RemoveKeyring(uint64_t g) override { return in_->RemoveKeyring(g); }
  Result<std::string> SigningPublicKey() override { return in_->SigningPublicKey(); }
  Result<std::string> Sign(std::string_view m) override { return in_->Sign(m); }

 private:
  std::shared_ptr<KeyProvider> in_;
};

TEST(KeyDirLock, StaleViewWritesAndDestroysNothing) {
  TempDir tmp;
  const std::string db = tmp.Sub("db"), copy = tmp.Sub("copy"), keys = tmp.Sub("keys");
  MakeStore(db, keys);
  testutil::CopyTree(db, copy);
  auto inner = NewFileKeyProvider(keys, {.create_if_missing = false});
  ASSERT_OK(inner);
  ASSERT_OK((*inner)->AcquireWriterLock());
  auto a = Store::Open(BaseOptions(std::make_shared<UnlockedProvider>(*inner)), db);
  ASSERT_OK(a);
  auto b = Store::Open(BaseOptions(std::make_shared<UnlockedProvider>(*inner)), copy);
  ASSERT_OK(b);
  ASSERT_OK((*a)->PurgeTenant("x"));
  const auto after_purge = Snapshot(keys);
  // B still holds the keyring with x's DEK; it must not write it back, nor
  // destroy A's new KEK.
  auto created = (*b)->CreateTenant({.tenant_id = "late"});
  EXPECT_CODE(created, Code::kFailedPrecondition);
  EXPECT_NE(created.status().message().find("key directory changed outside this store"),
            std::string::npos)
      << created.status().ToString();
  EXPECT_CODE((*b)->PurgeTenant("y"), Code::kFailedPrecondition);
  EXPECT_EQ(Snapshot(keys), after_purge) << "a stale store changed the key directory";
  b->reset();
  a->reset();
  (*inner)->ReleaseWriterLock();
  auto again = OpenStore(db, keys);
  ASSERT_OK(again);
  EXPECT_CODE((*again)->GetCall("x", "c1"), Code::kTenantPurged);
  EXPECT_OK((*again)->GetCall("y", "c1"));
}

// A KEK left by a crash after CreateKek and before its keyring: never
// destroyed by an open (it is newer than the current keyring's KEK); the
// next rotation adopts it.
TEST(KeyDirLock, NewerUnusedKekSurvivesOpenAndIsAdoptedByNextRotation) {
  TempDir tmp;
  const std::string db = tmp.Sub("db"), keys = tmp.Sub("keys");
  MakeStore(db, keys);
  std::vector<std::string> keks;
  for (const auto& [n, _] : Snapshot(keys)) {
    if (n.rfind("KEK-", 0) == 0) keks.push_back(n);
  }
  ASSERT_EQ(keks.size(), 1u);
  const uint32_t current = static_cast<uint32_t>(std::stoul(keks[0].substr(4)));
  {
    auto kp = NewFileKeyProvider(keys, {.create_if_missing = false});
    ASSERT_OK(kp);
    ASSERT_OK((*kp)->AcquireWriterLock());
    ASSERT_OK((*kp)->CreateKek(current + 5));
  }
  auto s = OpenStore(db, keys);
  ASSERT_OK(s);
  EXPECT_TRUE(fs::exists(keys + "/KEK-" + std::to_string(current + 5)));
  EXPECT_TRUE(fs::exists(keys + "/KEK-" + std::to_string(current)));
  ASSERT_OK((*s)->PurgeTenant("x"));
  std::vector<std::string> now;
  for (const auto& [n, _] : Snapshot(keys)) {
    if (n.rfind("KEK-", 0) == 0) now.push_back(n);
  }
  EXPECT_EQ(now, std::vector<std::string>{"KEK-" + std::to_string(current + 5)})
      << "the rotation adopts the unused newer KEK and retires the older one";
  EXPECT_OK((*s)->GetCall("y", "c1"));
}

// --- 5. private key files and directories ----------------------------------------

// Records the mode of every file and directory at the moment the
// FileSystem creates or opens it for writing.
class ModeRecordingFS : public rocksdb::FileSystemWrapper {
 public:
  ModeRecordingFS() : FileSystemWrapper(rocksdb::FileSystem::Default()) {}
  const char* Name() const override { return "ModeRecordingFS"; }
  rocksdb::IOStatus NewWritableFile(const std::string& f, const rocksdb::FileOptions& o,
                                    std::unique_ptr<rocksdb::FSWritableFile>* r,
                                    rocksdb::IODebugContext* d) override {
    auto s = target()->NewWritableFile(f, o, r, d);
    Record(f);
    return s;
  }
  rocksdb::IOStatus CreateDirIfMissing(const std::string& p, const rocksdb::IOOptions& o,
                                       rocksdb::IODebugContext* d) override {
    auto s = target()->CreateDirIfMissing(p, o, d);
    Record(p);
    return s;
  }
  rocksdb::IOStatus CreateDir(const std::string& p, const rocksdb::IOOptions& o,
                              rocksdb::IODebugContext* d) override {
    auto s = target()->CreateDir(p, o, d);
    Record(p);
    return s;
  }
  std::map<std::string, mode_t> seen() {
    std::lock_guard<std::mutex> l(mu_);
    return seen_;
  }

 private:
  void Record(const std::string& p) {
    struct stat st;
    if (::stat(p.c_str(), &st) != 0) return;
    std::lock_guard<std::mutex> l(mu_);
    seen_[p] = st.st_mode & 07777;
  }
  std::mutex mu_;
  std::map<std::string, mode_t> seen_;
};

class UmaskZero {
 public:
  UmaskZero() : old_(::umask(0)) {}
  ~UmaskZero() { ::umask(old_); }

 private:
  mode_t old_;
};

TEST(KeyFileModes, PrivateFromCreationUnderUmaskZero) {
  TempDir tmp;
  const std::string db = tmp.Sub("db"), keys = tmp.Sub("keys");
  auto rfs = std::make_shared<ModeRecordingFS>();
  auto env = rocksdb::NewCompositeEnv(rfs);
  UmaskZero umask_zero;
  {
    auto kp = NewFileKeyProvider(keys, {.create_if_missing = true, .env = env.get()});
    ASSERT_OK(kp);
    struct stat st;
    ASSERT_EQ(::stat(keys.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0700u);
    auto s = Store::Open(BaseOptions(*kp), db);
    ASSERT_OK(s);
    ASSERT_OK((*s)->CreateTenant({.tenant_id = "x"}));   // a keyring write
    ASSERT_OK((*s)->CreateTenant({.tenant_id = "y"}));
    ASSERT_OK((*s)->PurgeTenant("x"));                   // a KEK, a keyring, the signing key
    ASSERT_OK((*s)->SigningPublicKey());
    struct stat lock;
    ASSERT_EQ(::lstat((keys + "/LOCK").c_str(), &lock), 0);
    EXPECT_TRUE(S_ISREG(lock.st_mode));
    EXPECT_EQ(lock.st_mode & 07777, 0600u) << "LOCK";
  }
  EXPECT_FALSE(fs::exists(keys + "/LOCK")) << "the store removes its LOCK when it closes";
  // Every key file, at the moment it was opened for writing (the temp file
  // later renamed into place): 0600, never wider.
  size_t key_files = 0;
  for (const auto& [path, mode] : rfs->seen()) {
    if (path.rfind(keys + "/", 0) != 0 && path != keys) continue;
    ++key_files;
    EXPECT_EQ(mode, path == keys ? 0700u : 0600u) << path;
  }
  EXPECT_GE(key_files, 5u) << "KEK-1, KEYRING-1..4, SIGNING-KEY, KEK-2 were written";
  // And as they are now.
  std::set<std::string> names;
  for (const auto& e : fs::directory_iterator(keys)) {
    struct stat st;
    ASSERT_EQ(::lstat(e.path().c_str(), &st), 0);
    EXPECT_TRUE(S_ISREG(st.st_mode)) << e.path();
    EXPECT_EQ(st.st_mode & 07777, 0600u) << e.path();
    names.insert(e.path().filename().string());
  }
  EXPECT_TRUE(names.count("SIGNING-KEY")) << testing::PrintToString(names);
}

TEST(KeyFileModes, StaleTempFileOrSymlinkIsReplacedNotFollowed) {
  TempDir tmp;
  const std::string db = tmp.Sub("db"), keys = tmp.Sub("keys");
  MakeStore(db, keys);
  // A symlink where the next keyring's temp file goes, pointing at a file
  // an attacker could read: not followed.
  const std::string bait = tmp.Sub("bait");
  { std::ofstream(bait) << "bait"; }
  ::chmod(bait.c_str(), 0644);
  for (int g = 1; g < 20; ++g) {
    fs::create_symlink(bait, keys + "/KEYRING-" + std::to_string(g) + ".tmp");
    fs::create_symlink(bait, keys + "/KEK-" + std::to_string(g) + ".tmp");
  }
  auto s = OpenStore(db, keys);
  ASSERT_OK(s);
  ASSERT_OK((*s)->CreateTenant({.tenant_id = "z"}));
  ASSERT_OK((*s)->PurgeTenant("x"));
  EXPECT_EQ(testutil::ReadFile(bait), "bait");
  for (const auto& e : fs::directory_iterator(keys)) {
    if (fs::is_symlink(e.symlink_status())) continue;  // leftovers never used
    struct stat st;
    ASSERT_EQ(::lstat(e.path().c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0600u) << e.path();
  }
}

// What a SIGKILL between an atomic write's create and its rename leaves
// (the T1 kill loop found KEYRING-<n>.tmp files that stayed forever, as
// generations only grow): the next writable open removes every such temp
// file (one with key bytes shredded); a read-only open leaves them alone.
TEST(KeyFileModes, LeftoverTempFilesRemovedByTheNextWriter) {
  TempDir tmp;
  const std::string db = tmp.Sub("db"), keys = tmp.Sub("keys");
  MakeStore(db, keys);
  const std::vector<std::string> temps = {"KEYRING-90.tmp", "KEK-90.tmp", "SIGNING-KEY.tmp"};
  for (const auto& n : temps) {
    const int fd = ::open((keys + "/" + n).c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600);
    ASSERT_GE(fd, 0) << n;
    ASSERT_EQ(::write(fd, "0123456789abcdef0123456789abcdef", 32), 32);
    ::close(fd);
  }
  { std::ofstream(keys + "/notes.tmp") << "not ours"; }  // not a key file's temp: kept
  ::chmod((keys + "/notes.tmp").c_str(), 0600);
  {
    auto kp = NewFileKeyProvider(keys, {.create_if_missing = false});
    ASSERT_OK(kp);
    Options o = BaseOptions(*kp);
    o.read_only = true;
    o.create_if_missing = false;
    auto ro = Store::Open(o, db);
    ASSERT_OK(ro);
    for (const auto& n : temps) EXPECT_TRUE(fs::exists(keys + "/" + n)) << n;
  }
  {
    auto s = OpenStore(db, keys);
    ASSERT_OK(s);
    for (const auto& n : temps) EXPECT_FALSE(fs::exists(keys + "/" + n)) << n;
    EXPECT_TRUE(fs::exists(keys + "/notes.tmp"));
    ASSERT_OK((*s)->PurgeTenant("x"));  // the key hierarchy still works
  }
  auto again = OpenStore(db, keys);
  ASSERT_OK(again);
  auto call = (*again)->GetCall("y", "c1");
  EXPECT_OK(call);
}

// A directory under a temp file's name (PEERS.tmp, KEK-<n>.tmp, ...) cannot
// be shredded: every writable open is refused with a message naming it and
// what to do, not a bare "delete PEERS.tmp: Is a directory"; once removed,
// the store opens. A read-only open does not clean, so it still opens.
TEST(KeyFileModes, DirectoryUnderATempNameRefusedWithFix) {
  TempDir tmp;
  const std::string db = tmp.Sub("db"), keys = tmp.Sub("keys");
  MakeStore(db, keys);
  for (const std::string n : {"PEERS.tmp", "KEK-90.tmp", "SIGNING-KEY.tmp"}) {
    ASSERT_EQ(::mkdir((keys + "/" + n).c_str(), 0700), 0) << n;
    auto s = OpenStore(db, keys);
    ASSERT_FALSE(s.ok()) << n;
    EXPECT_EQ(s.status().code(), Code::kKeyError) << s.status().ToString();
    EXPECT_NE(s.status().message().find(n + " is a directory"), std::string::npos)
        << s.status().ToString();
    EXPECT_NE(s.status().message().find("remove it"), std::string::npos) << s.status().ToString();
    EXPECT_TRUE(fs::is_directory(keys + "/" + n)) << n;  // left for the operator to check
    ASSERT_EQ(::rmdir((keys + "/" + n).c_str()), 0) << n;
    auto again = OpenStore(db, keys);
    ASSERT_OK(again);
  }
}

TEST(KeyDirModes, LooseDirectoryRefusedWithFix) {
  for (mode_t mode : {0755, 0750, 0701, 0707, 0770}) {
    SCOPED_TRACE(mode);
    TempDir tmp;
    const std::string db = tmp.Sub("db"), keys = tmp.Sub("keys");
    MakeStore(db, keys);
    ASSERT_EQ(::chmod(keys.c_str(), mode), 0);
    const auto before = Snapshot(keys);
    auto kp = NewFileKeyProvider(keys, {.create_if_missing = false});
    EXPECT_CODE(kp, Code::kFailedPrecondition);
    EXPECT_NE(kp.status().message().find("accessible by other users"), std::string::npos)
        << kp.status().ToString();
    EXPECT_NE(kp.status().message().find("chmod 700 " + keys), std::string::npos)
        << kp.status().ToString();
    EXPECT_EQ(Snapshot(keys), before);
    // A new directory given with a loose mode is refused too (not chmod'ed).
    const std::string fresh = tmp.Sub("fresh");
    ASSERT_EQ(::mkdir(fresh.c_str(), mode), 0);
    ASSERT_EQ(::chmod(fresh.c_str(), mode), 0);
    EXPECT_CODE(NewFileKeyProvider(fresh), Code::kFailedPrecondition);
    ASSERT_EQ(::chmod(keys.c_str(), 0700), 0);
    EXPECT_OK(OpenStore(db, keys));
  }
}

TEST(KeyDirModes, ForeignOwnedDirectoryRefusedWithFix) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to chown the key directory to nobody";
  TempDir tmp;
  const std::string db = tmp.Sub("db"), keys = tmp.Sub("keys");
  MakeStore(db, keys);
  ASSERT_EQ(::chown(keys.c_str(), 65534, 65534), 0);
  auto kp = NewFileKeyProvider(keys, {.create_if_missing = false});
  EXPECT_CODE(kp, Code::kFailedPrecondition);
  EXPECT_NE(kp.status().message().find("owned by uid 65534"), std::string::npos)
      << kp.status().ToString();
  EXPECT_NE(kp.status().message().find("chown"), std::string::npos) << kp.status().ToString();
  ASSERT_EQ(::chown(keys.c_str(), 0, 0), 0);
  EXPECT_OK(OpenStore(db, keys));
}

TEST(KeyDirModes, SymlinkedKeyDirectoryRefused) {
  TempDir tmp;
  const std::string db = tmp.Sub("db"), keys = tmp.Sub("keys"), link = tmp.Sub("link");
  MakeStore(db, keys);
  fs::create_directory_symlink(keys, link);
  auto kp = NewFileKeyProvider(link, {.create_if_missing = false});
  EXPECT_CODE(kp, Code::kFailedPrecondition);
  EXPECT_NE(kp.status().message().find("symbolic link"), std::string::npos)
      << kp.status().ToString();
}

// --- 6. placement by identity ------------------------------------------------------

void ExpectRefusedAndNothingCreated(const std::string& db, const std::string& keys) {
  const bool db_existed = fs::exists(db);
  auto s = OpenStore(db, keys, /*create=*/true);
  EXPECT_CODE(s, Code::kInvalidArgument);
  EXPECT_NE(s.status().message().find("key directory must not be"), std::string::npos)
      << s.status().ToString();
  if (!db_existed) {
    EXPECT_FALSE(fs::exists(db)) << "a refused init left " << db;
  }
}

TEST(KeyPlacement, StoreInsideKeyDirectoryRefused) {
  TempDir tmp;
  const std::string keys = tmp.Sub("keys");
  ASSERT_OK(NewFileKeyProvider(keys));
  ExpectRefusedAndNothingCreated(keys + "/db", keys);
  ExpectRefusedAndNothingCreated(keys, keys);
}

TEST(KeyPlacement, StoreInsideKeyDirectoryThroughSymlinkRefused) {
  TempDir tmp;
  const std::string keys = tmp.Sub("keys");
  ASSERT_OK(NewFileKeyProvider(keys));
  ASSERT_EQ(::mkdir((keys + "/sub").c_str(), 0700), 0);
  fs::create_directory_symlink(keys + "/sub", tmp.Sub("dblink"));
  ExpectRefusedAndNothingCreated(tmp.Sub("dblink") + "/db", keys);
  ExpectRefusedAndNothingCreated(tmp.Sub("dblink"), keys);
}

TEST(KeyPlacement, KeysInsideStoreThroughSymlinkRefused) {
  TempDir tmp;
  const std::string db = tmp.Sub("db");
  ASSERT_EQ(::mkdir(db.c_str(), 0700), 0);
  fs::create_directory_symlink(db, tmp.Sub("dblink"));
  const std::string keys = tmp.Sub("dblink") + "/keys";
  ASSERT_OK(NewFileKeyProvider(keys));
  ExpectRefusedAndNothingCreated(db, keys);
}

// Bind mounts: the same directory under two names whose parent chains do
// not meet. Needs CAP_SYS_ADMIN (root in a container that allows mount).
class BindMount {
 public:
  BindMount(const std::string& from, const std::string& to) : to_(to) {
    ok_ = ::mount(from.c_str(), to.c_str(), nullptr, MS_BIND, nullptr) == 0;
    err_ = ok_ ? 0 : errno;
  }
  ~BindMount() {
    if (ok_) ::umount2(to_.c_str(), MNT_DETACH);
  }
  bool ok() const { return ok_; }
  std::string error() const { return std::strerror(err_); }

 private:
  std::string to_;
  bool ok_ = false;
  int err_ = 0;
};

TEST(KeyPlacement, KeysReachedThroughBindMountOfStoreRefused) {
  TempDir tmp;
  const std::string db = tmp.Sub("db"), mnt = tmp.Sub("mnt");
  ASSERT_EQ(::mkdir(db.c_str(), 0700), 0);
  ASSERT_EQ(::mkdir(mnt.c_str(), 0700), 0);
  BindMount bind(db, mnt);
  if (!bind.ok()) GTEST_SKIP() << "mount --bind not permitted here: " << bind.error();
  // The keys given as mnt/keys are physically db/keys.
  ASSERT_OK(NewFileKeyProvider(mnt + "/keys"));
  ExpectRefusedAndNothingCreated(db, mnt + "/keys");
}

TEST(KeyPlacement, KeyDirectoryBindMountedIntoStoreRefused) {
  TempDir tmp;
  const std::string db = tmp.Sub("db"), keys = tmp.Sub("keys");
  ASSERT_OK(NewFileKeyProvider(keys));
  ASSERT_EQ(::mkdir(db.c_str(), 0700), 0);
  ASSERT_EQ(::mkdir((db + "/k").c_str(), 0700), 0);
  // The KEKs show up inside the store directory: a copy of it carries them.
  BindMount bind(keys, db + "/k");
  if (!bind.ok()) GTEST_SKIP() << "mount --bind not permitted here: " << bind.error();
  ExpectRefusedAndNothingCreated(db, keys);
}

TEST(KeyPlacement, StoreBindMountedFromInsideKeyDirectoryRefused) {
  TempDir tmp;
  const std::string keys = tmp.Sub("keys"), db = tmp.Sub("db");
  ASSERT_OK(NewFileKeyProvider(keys));
  ASSERT_EQ(::mkdir((keys + "/store").c_str(), 0700), 0);
  ASSERT_EQ(::mkdir(db.c_str(), 0700), 0);
  BindMount bind(keys + "/store", db);
  if (!bind.ok()) GTEST_SKIP() << "mount --bind not permitted here: " << bind.error();
  ExpectRefusedAndNothingCreated(db, keys);
}

// `callvault init` refused for placement leaves neither the store
// directory nor the key directory it created.
int RunCli(const std::vector<std::string>& args, std::string* err) {
  std::string cmd = CALLVAULT_BIN;
  for (const auto& a : args) cmd += " '" + a + "'";
  cmd += " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return -1;
  char buf[512];
  while (std::fgets(buf, sizeof buf, p) != nullptr) *err += buf;
  const int st = ::pclose(p);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

TEST(KeyPlacement, RefusedCliInitLeavesNoDirectory) {
  TempDir tmp;
  const std::string keys = tmp.Sub("kk");
  std::string out;
  EXPECT_NE(RunCli({"--db", keys + "/db", "--keys", keys, "init"}, &out), 0);
  EXPECT_NE(out.find("key directory must not be"), std::string::npos) << out;
  EXPECT_FALSE(fs::exists(keys)) << "the refused init left its key directory: " << out;
  // Store inside a key directory reached through a symlink, key dir existing:
  // the key directory stays (it was there before), the store is not created.
  ASSERT_OK(NewFileKeyProvider(keys));
  fs::create_directory_symlink(keys, tmp.Sub("link"));
  out.clear();
  EXPECT_NE(RunCli({"--db", tmp.Sub("link") + "/db", "--keys", keys, "init"}, &out), 0);
  EXPECT_NE(out.find("key directory must not be"), std::string::npos) << out;
  EXPECT_FALSE(fs::exists(keys + "/db"));
  EXPECT_TRUE(fs::is_empty(keys)) << "nothing written into the existing key directory";
}

TEST(KeyPlacement, SeparateDirectoriesStillOpen) {
  TempDir tmp;
  ASSERT_EQ(::mkdir(tmp.Sub("a").c_str(), 0700), 0);
  EXPECT_OK(OpenStore(tmp.Sub("a/db"), tmp.Sub("keys"), /*create=*/true));
  EXPECT_OK(OpenStore(tmp.Sub("a/db2"), tmp.Sub("a/keys"), /*create=*/true));
}

// --- 6. planted entries and a LOCK pulled from under its holder -------------------

uint32_t CurrentKek(const std::string& keys) {
  std::vector<std::string> keks;
  for (const auto& [n, _] : Snapshot(keys)) {
    if (n.rfind("KEK-", 0) == 0) keks.push_back(n);
  }
  EXPECT_EQ(keks.size(), 1u);
  return keks.empty() ? 0 : static_cast<uint32_t>(std::stoul(keks[0].substr(4)));
}

// A world-readable file outside the key directory, planted as the next KEK
// generation by a symlink: never adopted (nothing sealed under it) and never
// zeroed by a purge's shred.
TEST(KeyDirPlanted, SymlinkKekRefusedAndTargetUntouched) {
  TempDir tmp;
  const std::string db = tmp.Sub("db"), keys = tmp.Sub("keys"), evil = tmp.Sub("evilkek");
  MakeStore(db, keys);
  const uint32_t current = CurrentKek(keys);
  const std::string planted = "KEK-" + std::to_string(current + 1);
  const std::string evil_bytes(32, 'A');
  { std::ofstream(evil, std::ios::binary) << evil_bytes; }
  ASSERT_EQ(::chmod(evil.c_str(), 0644), 0);
  ASSERT_EQ(::symlink(evil.c_str(), (keys + "/" + planted).c_str()), 0);
  Status first;
  auto s = OpenStore(db, keys);
  if (!s.ok()) {
    first = s.status();
  } else {
    first = (*s)->PurgeTenant("x").status();
    if (first.ok()) first = (*s)->PurgeTenant("y").status();
  }
  EXPECT_EQ(first.code(), Code::kKeyError) << first.ToString();
  EXPECT_NE(first.message().find(keys + "/" + planted + " is a symbolic link"), std::string::npos)
      << first.ToString();
  EXPECT_EQ(testutil::ReadFile(evil), evil_bytes) << "the symlink's target was written through";
  EXPECT_TRUE(fs::is_symlink(keys + "/" + planted));
}

// Shred (a KEK's destruction) of a symlink unlinks the link only.
TEST(KeyDirPlanted, DestroyOfSymlinkKekUnlinksLinkOnly) {
  TempDir tmp;
  const std::string keys = tmp.Sub("keys"), evil = tmp.Sub("victim");
  auto kp = NewFileKeyProvider(keys, {.create_if_missing = true});
  ASSERT_OK(kp);
  ASSERT_OK((*kp)->AcquireWriterLock());
  const std::string victim(32, 'V');
  { std::ofstream(evil, std::ios::binary) << victim; }
  ASSERT_EQ(::symlink(evil.c_str(), (keys + "/KEK-7").c_str()), 0);
  EXPECT_OK((*kp)->DestroyKek(7));
  EXPECT_FALSE(fs::exists(fs::symlink_status(keys + "/KEK-7")));
  EXPECT_EQ(testutil::ReadFile(evil), victim) << "shred wrote through the symlink";
}

TEST(KeyDirPlanted, KekWithLooseModeRefusedWithFix) {
  TempDir tmp;
  const std::string db = tmp.Sub("db"), keys = tmp.Sub("keys");
  MakeStore(db, keys);
  const std::string kek = keys + "/KEK-" + std::to_string(CurrentKek(keys));
  ASSERT_EQ(::chmod(kek.c_str(), 0644), 0);
  auto s = OpenStore(db, keys);
  EXPECT_CODE(s, Code::kFailedPrecondition);
  EXPECT_NE(s.status().message().find("key file " + kek + " is accessible by other users (mode "
                                      "0644); fix: chmod 600 " + kek),
            std::string::npos)
      << s.status().ToString();
}

TEST(KeyDirLock, SymlinkedLockRefusedWithSpecificMessage) {
  TempDir tmp;
  const std::string db = tmp.Sub("db"), keys = tmp.Sub("keys");
  MakeStore(db, keys);
  ASSERT_EQ(::symlink(tmp.Sub("elsewhere").c_str(), (keys + "/LOCK").c_str()), 0);
  auto s = OpenStore(db, keys);
  EXPECT_CODE(s, Code::kFailedPrecondition);
  EXPECT_NE(s.status().message().find("key directory " + keys + ": its LOCK is a symbolic link"),
            std::string::npos)
      << s.status().ToString();
  EXPECT_FALSE(fs::exists(tmp.Sub("elsewhere")));
}

// LOCK unlinked while held: a second writer can flock a fresh LOCK, so the
// first writer's next key change is refused (and stays refused).
TEST(KeyDirLock, LockRemovedWhileHeldStopsTheFirstWriter) {
  TempDir tmp;
  const std::string db = tmp.Sub("db"), copy = tmp.Sub("copy"), keys = tmp.Sub("keys");
  MakeStore(db, keys);
  testutil::CopyTree(db, copy);
  auto a = OpenStore(db, keys);
  ASSERT_OK(a);
  ASSERT_EQ(::unlink((keys + "/LOCK").c_str()), 0);
  auto b = OpenStore(copy, keys);  // the second writer got in through a fresh LOCK
  ASSERT_OK(b);
  const auto before = Snapshot(keys);
  for (int i = 0; i < 2; ++i) {
    Status p = (*a)->PurgeTenant("x").status();
    EXPECT_EQ(p.code(), Code::kFailedPrecondition) << p.ToString();
    EXPECT_NE(p.message().find("key directory " + keys +
                               ": LOCK was removed or replaced while held; another writer may "
                               "have opened it; close this store"),
              std::string::npos)
        << p.ToString();
  }
  EXPECT_EQ(Snapshot(keys), before) << "the first writer changed keys after losing its lock";
  a->reset();
  EXPECT_TRUE(fs::exists(keys + "/LOCK")) << "the first writer unlinked the second's LOCK";
  EXPECT_OK((*b)->PurgeTenant("y"));
}

// --- 7. the store's directories (decision 0078) ---------------------------------------

// Every file under `dir` (recursively): its size and a digest of its bytes;
// directories by name.
std::map<std::string, std::string> TreeSnapshot(const std::string& dir) {
  std::map<std::string, std::string> m;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    const std::string rel = fs::relative(e.path(), dir).string();
    if (e.is_directory()) {
      m[rel] = "dir";
      continue;
    }
    const std::string bytes = testutil::ReadFile(e.path().string());
    m[rel] = std::to_string(bytes.size()) + " bytes, hash " +
             std::to_string(std::hash<std::string>{}(bytes));
  }
  return m;
}

Result<std::unique_ptr<Store>> OpenReadOnly(const std::string& db, const std::string& keys) {
  auto kp = NewFileKeyProvider(keys, {.create_if_missing = false});
  if (!kp.ok()) return kp.status();
  Options o = BaseOptions(*kp);
  o.read_only = true;
  o.create_if_missing = false;
  return Store::Open(o, db);
}

// The store's directories in a store of two shards (MakeTwoShardStore):
// the ones the opens create, and the two created later (a shard's ingest/
// by the first recording writer, damage-reports/ by a read-only open that
// finds damage), made here.
std::vector<std::string> StoreDirs(const std::string& db) {
  for (const char* d : {"/shards/0001/ingest", "/damage-reports"}) {
    if (!fs::exists(db + d)) fs::create_directory(db + d);
  }
  return {"",          "meta",        "shards", "shards/0000", "shards/0001", "shards/0001/ingest",
          "damage-reports"};
}

// MakeStore, with one tenant per shard: x in shards/0000, y in shards/0001.
void MakeTwoShardStore(const std::string& db, const std::string& keys) {
  auto kp = NewFileKeyProvider(keys, {.create_if_missing = true});
  ASSERT_OK(kp);
  Options o = BaseOptions(*kp);
  o.create_if_missing = true;
  o.max_tenants_per_shard = 1;
  auto s = Store::Open(o, db);
  ASSERT_OK(s);
  for (const char* t : {"x", "y"}) {
    ASSERT_OK((*s)->CreateTenant({.tenant_id = t}));
    ASSERT_OK((*s)->PutCall(t, testutil::MakeCall("c1", 1700000000000, "MARKER")));
  }
  ASSERT_TRUE(fs::is_directory(db + "/shards/0001"));
}

// Whoever else can write a store directory can plant a link under the name
// of a file the store is about to create (RocksDB opens its new files
// without O_NOFOLLOW, O_TRUNC included), and the store would write through
// it: into the key directory, say. Each of the store's directories with a
// write bit for group or others is refused, by a writable and a read-only
// open alike, before anything is written, with the chmod that fixes it.
TEST(StoreDirModes, DirectoryOthersCanWriteRefusedWithFixAndNothingChanged) {
  TempDir tmp;
  const std::string db = tmp.Sub("db"), keys = tmp.Sub("keys");
  MakeTwoShardStore(db, keys);
  for (const std::string& rel : StoreDirs(db)) {
    for (mode_t mode : {0777, 0775, 0757, 01777, 0730}) {
      const std::string dir = rel.empty() ? db : db + "/" + rel;
      SCOPED_TRACE(dir + " mode " + std::to_string(mode));
      ASSERT_EQ(::chmod(dir.c_str(), mode), 0);
      const auto store_before = TreeSnapshot(db);
      const auto keys_before = Snapshot(keys);
      auto w = OpenStore(db, keys);
      EXPECT_CODE(w, Code::kFailedPrecondition);
      EXPECT_NE(w.status().message().find("store directory " + dir +
                                          " can be written by users other than its owner"),
                std::string::npos)
          << w.status().ToString();
      EXPECT_NE(w.status().message().find("fix: chmod -R go-w " + db), std::string::npos)
          << w.status().ToString();
      auto r = OpenReadOnly(db, keys);
      EXPECT_CODE(r, Code::kFailedPrecondition);
      EXPECT_NE(r.status().message().find("fix: chmod -R go-w " + db), std::string::npos)
          << r.status().ToString();
      EXPECT_EQ(TreeSnapshot(db), store_before) << "a refused open changed the store";
      EXPECT_EQ(Snapshot(keys), keys_before) << "a refused open changed the key directory";
      ASSERT_EQ(::chmod(dir.c_str(), 0755), 0);
    }
  }
  // Fixed as the message says, the store opens and reads.
  auto s = OpenStore(db, keys);
  ASSERT_OK(s);
  auto got = (*s)->GetCall("x", "c1");
  ASSERT_OK(got);
  EXPECT_EQ(got->title, "Quarterly review MARKER");
}

// Owned by another uid: that uid can plant links (and, for a process
// running as root, writing through a user's link is the classic way up).
TEST(StoreDirModes, DirectoryOwnedByAnotherUidRefusedWithFix) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to chown a store directory to nobody";
  TempDir tmp;
  const std::string db = tmp.Sub("db"), keys = tmp.Sub("keys");
  MakeTwoShardStore(db, keys);
  for (const std::string& rel : StoreDirs(db)) {
    const std::string dir = rel.empty() ? db : db + "/" + rel;
    SCOPED_TRACE(dir);
    ASSERT_EQ(::chown(dir.c_str(), 65534, 65534), 0);
    const auto store_before = TreeSnapshot(db);
    auto w = OpenStore(db, keys);
    EXPECT_CODE(w, Code::kFailedPrecondition);
    EXPECT_NE(w.status().message().find("store directory " + dir + " is owned by uid 65534"),
              std::string::npos)
        << w.status().ToString();
    EXPECT_NE(w.status().message().find("fix: run as uid 65534, or chown -R 0 " + db),
              std::string::npos)
        << w.status().ToString();
    EXPECT_CODE(OpenReadOnly(db, keys), Code::kFailedPrecondition);
    EXPECT_EQ(TreeSnapshot(db), store_before) << "a refused open changed the store";
    ASSERT_EQ(::chown(dir.c_str(), 0, 0), 0);
  }
  EXPECT_OK(OpenStore(db, keys));
}

// The common deployments still open: the store's path a symlink to a
// private directory (a data disk mounted elsewhere), and a store directory
// that others may read and enter but not write (0755, RocksDB's own mode
// for the directories it makes).
TEST(StoreDirModes, PrivateTreeOpensThroughASymlinkedPath) {
  TempDir tmp;
  const std::string db = tmp.Sub("db"), keys = tmp.Sub("keys"), link = tmp.Sub("link");
  MakeStore(db, keys);
  fs::create_directory_symlink(db, link);
  auto s = OpenStore(link, keys);
  ASSERT_OK(s);
  EXPECT_OK((*s)->GetCall("y", "c1"));
  s->reset();
  // A store made under umask 000 still gets directories nobody else can write.
  TempDir tmp2;
  const mode_t old = ::umask(0);
  auto made = OpenStore(tmp2.Sub("db"), tmp2.Sub("keys"), /*create=*/true);
  ::umask(old);
  ASSERT_OK(made);
  ASSERT_OK((*made)->CreateTenant({.tenant_id = "z"}));
  made->reset();
  EXPECT_OK(OpenStore(tmp2.Sub("db"), tmp2.Sub("keys")));
}

// A symbolic link among the store's directories is judged by what it points
// to: a shard directory (or the store's path) linked to a directory others
// can write is refused; more than one loose directory is counted in one
// message whose fix covers them all; an entry of shards/ that is not a
// shard's name (lost+found on a mounted volume) is none of the store's.
TEST(StoreDirModes, LinksAreJudgedByTheirTargetAndEveryDirectoryIsCounted) {
  TempDir tmp;
  const std::string db = tmp.Sub("db"), keys = tmp.Sub("keys"), loose = tmp.Sub("loose");
  MakeTwoShardStore(db, keys);
  ASSERT_EQ(::mkdir(loose.c_str(), 0777), 0);
  ASSERT_EQ(::chmod(loose.c_str(), 0777), 0);
  const std::string shard1 = db + "/shards/0001";
  fs::rename(shard1, loose + "/0001");
  fs::create_directory_symlink(loose + "/0001", shard1);
  ASSERT_EQ(::chmod((loose + "/0001").c_str(), 0777), 0);
  auto w = OpenStore(db, keys);
  EXPECT_CODE(w, Code::kFailedPrecondition);
  EXPECT_NE(w.status().message().find("store directory " + shard1 + " can be written"),
            std::string::npos)
      << w.status().ToString();
  // Through a linked store path, the fix names the real directory.
  fs::create_directory_symlink(db, tmp.Sub("link"));
  ASSERT_EQ(::chmod(db.c_str(), 0775), 0);
  auto l = OpenStore(tmp.Sub("link"), keys);
  EXPECT_CODE(l, Code::kFailedPrecondition);
  EXPECT_NE(l.status().message().find("1 more of its directories too"), std::string::npos)
      << l.status().ToString();
  EXPECT_NE(l.status().message().find("fix: chmod -R go-w " + db), std::string::npos)
      << l.status().ToString();
  ASSERT_EQ(::chmod(db.c_str(), 0755), 0);
  ASSERT_EQ(::chmod((loose + "/0001").c_str(), 0755), 0);
  ASSERT_EQ(::mkdir((db + "/shards/lost+found").c_str(), 0777), 0);
  ASSERT_EQ(::chmod((db + "/shards/lost+found").c_str(), 0777), 0);
  auto ok = OpenStore(tmp.Sub("link"), keys);
  ASSERT_OK(ok);
  EXPECT_OK((*ok)->GetCall("y", "c1"));
}

// `callvault raw ldb` opens a shard with RocksDB's own tool, which writes
// there (its info LOG, rotated and created with O_TRUNC; put, compact):
// refused as a store open is, whether the shard is named with --shard or
// with ldb's own --db=.
TEST(StoreDirModes, RawLdbRefusedOnADirectoryOthersCanWrite) {
  TempDir tmp;
  const std::string db = tmp.Sub("db"), keys = tmp.Sub("keys");
  MakeStore(db, keys);
  const std::string shard = db + "/shards/0000";
  ASSERT_EQ(::chmod(shard.c_str(), 0777), 0);
  const auto before = TreeSnapshot(db);
  const std::vector<std::string> by_shard = {"--db",  db,    "--keys", keys, "raw",
                                             "ldb",   "--shard", "0", "list_column_families"};
  std::string out;
  EXPECT_EQ(RunCli(by_shard, &out), 78) << out;
  EXPECT_NE(out.find("fix: chmod -R go-w " + db), std::string::npos) << out;
  out.clear();
  EXPECT_EQ(RunCli({"--keys", keys, "raw", "ldb", "--db=" + shard, "list_column_families"}, &out),
            78)
      << out;
  EXPECT_NE(out.find("store directory " + shard + " can be written"), std::string::npos) << out;
  EXPECT_EQ(TreeSnapshot(db), before);
  ASSERT_EQ(::chmod(shard.c_str(), 0755), 0);
  out.clear();
  EXPECT_EQ(RunCli(by_shard, &out), 0) << out;
}

// A restore under umask 002 (a common login umask) gives a copy that opens:
// the restore makes its directories 0755, not 0777 less the umask.
TEST(StoreDirModes, RestoreUnderAGroupUmaskGivesACopyThatOpens) {
  TempDir tmp;
  const std::string db = tmp.Sub("db"), keys = tmp.Sub("keys"), backups = tmp.Sub("backups"),
                    restored = tmp.Sub("restored");
  MakeStore(db, keys);
  {
    auto s = OpenStore(db, keys);
    ASSERT_OK(s);
    ASSERT_OK((*s)->Backup(backups));
  }
  auto kp = NewFileKeyProvider(keys, {.create_if_missing = false});
  ASSERT_OK(kp);
  const mode_t old = ::umask(002);
  auto r = Store::Restore(BaseOptions(*kp), backups, restored);
  ::umask(old);
  ASSERT_OK(r);
  auto s = OpenStore(restored, keys);
  ASSERT_OK(s);
  EXPECT_OK((*s)->GetCall("x", "c1"));
}

}  // namespace
}  // namespace callvault
