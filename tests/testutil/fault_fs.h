// FaultFS: a rocksdb::FileSystemWrapper for the power-loss (T2) and I/O
// error (T4) suites of testing.md. Our own, written for RocksDB 7.8's
// FileSystem API: Debian's librocksdb does not ship FaultInjectionTestFS.
//
// Every file and directory operation of a store goes through it when the
// store's Options::env and its FileKeyProviderOptions::env are an Env made
// by FaultEnv (NewCompositeEnv over this FileSystem). It does three things:
//
// 1. Tracks durability. Data goes to the real files at once (so the live
//    process reads what it wrote, as from the page cache), but FaultFS
//    remembers, per file, how much of it a Sync/Fsync made durable
//    (appendable files: the synced prefix; random-write files: a copy of the
//    content at the last sync), and, per directory, every create, rename and
//    unlink since that directory's last fsync (with the durable bytes of
//    any file an unlink or a rename-over removed). The real fsync is never
//    called: durability is what FaultFS says it is, which keeps a test
//    fast. Files that existed before this FaultFS was made count as
//    durable. RangeSync makes nothing durable.
//
// 2. Simulates power loss. Freeze() (or FreezeAt(n), at the n-th mutating
//    operation) makes that and every later operation fail with an IOError,
//    so nothing more reaches the disk; after the store is destroyed,
//    SimulatePowerLoss(mode) rewrites the real files to what survives:
//      kDropUnsynced     every file cut to its synced prefix (random-write
//                        files back to their last synced content);
//      kRandomTail       each file cut at a random point between its synced
//                        prefix and its end (a partial write-back);
//      kUndoDirOps       kDropUnsynced, and then every create (files and
//                        directories), rename and unlink (files: DeleteFile,
//                        directories: DeleteDir) not covered by a later
//                        fsync of its directory is undone, newest first:
//                        created entries deleted (directories with their
//                        contents), renames moved back (restoring the
//                        durable content of a target they replaced),
//                        unlinked files put back with their durable bytes,
//                        removed directories made again (first, so that
//                        the files unlinked from them can come back).
//                        The key directory goes through the same FileSystem
//                        (FileKeyProviderOptions::env), so its unlinks (a
//                        shredded KEK, a removed keyring) are undone too
//                        when its fsync did not follow.
//      kTornGarbled      a torn write that corrupts bytes: each file cut
//                        at a random point of its unsynced tail, as
//                        kRandomTail, and then one sector (512 bytes, or
//                        what is left) inside the kept unsynced part
//                        overwritten with random bytes or with zeros. Only
//                        bytes never synced change: what was acknowledged
//                        is intact, so recovery must stay quiet (a WAL
//                        damaged before its synced end is another matter:
//                        tests/damage).
//    A failed Sync is modelled like Linux after an fsync error: the
//    unsynced data of an appendable file is lost for good (later syncs of
//    that file make nothing before the failure durable), and a directory
//    whose fsync failed never becomes durable for the operations before the
//    failure (a later successful fsync makes the later ones durable). So
//    "retry the fsync and acknowledge" shows up as lost data.
//
// 3. Injects I/O errors. Inject({kinds, nth, forever, no_space}) fails the
//    nth operation (counting from the call) whose kind is in `kinds`, and
//    with `forever` every later operation of those kinds too, with an
//    IOError whose message contains kInjectedMessage (with `no_space`,
//    IOStatus::NoSpace: ENOSPC, "No space left on device"). Lift() ends it.
//    ops_seen(kinds) counts the operations of those kinds, so a test can
//    learn how many I/Os of each kind an operation does.
//
// Debugging: with CALLVAULT_FAULTFS_TRACE=<substring> set, every operation
// but reads on a path containing it is printed to stderr.
//
// Thread safety: every method may be called from any thread (RocksDB's
// background threads use the same FileSystem); one mutex guards the state.
#ifndef CALLVAULT_TESTS_TESTUTIL_FAULT_FS_H_
#define CALLVAULT_TESTS_TESTUTIL_FAULT_FS_H_

#include <rocksdb/env.h>
#include <rocksdb/file_system.h>

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <vector>

namespace callvault::testutil {

// Kinds of operations, as bits.
enum FaultOp : uint32_t {
  kOpWrite = 1u << 0,     // Append, PositionedAppend, random-file Write, Truncate
  kOpSync = 1u << 1,      // file Sync / Fsync
  kOpDirSync = 1u << 2,   // directory Fsync
  kOpRename = 1u << 3,    // RenameFile
  kOpCreate = 1u << 4,    // NewWritableFile, ReopenWritableFile, NewRandomRWFile, CreateDir*
  kOpDelete = 1u << 5,    // DeleteFile, DeleteDir
  kOpRead = 1u << 6,      // Read of any file, opening a file for reading, GetChildren
  kOpClose = 1u << 7,     // Close of a written file
  kOpAll = 0xffu,
  // The operations that change the disk: what FreezeAt counts.
  kOpMutating = kOpWrite | kOpSync | kOpDirSync | kOpRename | kOpCreate | kOpDelete,
};
const char* FaultOpName(uint32_t op);

enum class PowerLossMode { kDropUnsynced, kRandomTail, kUndoDirOps, kTornGarbled };
const char* PowerLossModeName(PowerLossMode mode);

inline constexpr char kInjectedMessage[] = "injected fault";
inline constexpr char kPowerLostMessage[] = "power lost";

struct FaultSpec {
  uint32_t kinds = kOpAll;
  uint64_t nth = 1;      // 1 = the first matching operation after Inject
  bool forever = false;  // keep failing every later matching operation
  // Fail with IOStatus::NoSpace (ENOSPC, a full disk) instead of IOError.
  bool no_space = false;
};

class FaultFS : public rocksdb::FileSystemWrapper {
 public:
  explicit FaultFS(uint64_t seed,
                   std::shared_ptr<rocksdb::FileSystem> base = rocksdb::FileSystem::Default());
  ~FaultFS() override;
  const char* Name() const override { return "CallvaultFaultFS"; }

  // --- power loss ---
  // From now on every operation fails (nothing more reaches the disk).
  void Freeze();
  // Freeze at the n-th mutating operation from now (that one fails). 0: never.
  void FreezeAt(uint64_t n);
  bool frozen() const;
  // Mutating operations seen so far (all threads).
  uint64_t mutating_ops() const;
  // Rewrites the real files to what a power loss now would leave. Call it
  // after every file is closed (the store destroyed). Returns a short
  // description of what was dropped (for failure messages).
  std::string SimulatePowerLoss(PowerLossMode mode);

  // --- I/O errors ---
  void Inject(const FaultSpec& spec);
  void Lift();
  // Operations failed by Inject so far, and a description of the first.
  uint64_t injected() const;
  std::string first_injected() const;
  // Operations seen (failed or not) of any kind in `kinds` since the last
  // ResetCounts (or construction): how many Nth there are to fail.
  uint64_t ops_seen(uint32_t kinds) const;
  void ResetCounts();

  // --- per-operation bookkeeping, used by the file wrappers ---
  // Counts one operation of kind `op` on `path`; returns the error to give
  // it, or OK.
  rocksdb::IOStatus Check(uint32_t op, const std::string& path);
  void OnAppend(const std::string& path, uint64_t new_size);
  void OnSync(const std::string& path, uint64_t size, bool ok);
  void OnRandomWrite(const std::string& path);
  void OnRandomSync(const std::string& path, bool ok);
  void OnDirSync(const std::string& dir, bool ok);

  // --- FileSystem ---
  // These declarations repeat rocksdb::FileSystem's signatures, as
  // CloseCheckFS's do (engine/shard.h; `duplicates` pairs the two): each
  // wrapper must declare the virtuals it overrides, and nothing else is
  // shared. The two do different work (fault injection here, close-failure
  // tracking there) and stack (the store wraps this FileSystem in its
  // CloseCheckFS); a common base would put a test tool into the engine.
  rocksdb::IOStatus NewSequentialFile(const std::string& f, const rocksdb::FileOptions& o,
                                      std::unique_ptr<rocksdb::FSSequentialFile>* r,
                                      rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus NewRandomAccessFile(const std::string& f, const rocksdb::FileOptions& o,
                                        std::unique_ptr<rocksdb::FSRandomAccessFile>* r,
                                        rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus NewWritableFile(const std::string& f, const rocksdb::FileOptions& o,
                                    std::unique_ptr<rocksdb::FSWritableFile>* r,
                                    rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus ReopenWritableFile(const std::string& f, const rocksdb::FileOptions& o,
                                       std::unique_ptr<rocksdb::FSWritableFile>* r,
                                       rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus ReuseWritableFile(const std::string& f, const std::string& old,
                                      const rocksdb::FileOptions& o,
                                      std::unique_ptr<rocksdb::FSWritableFile>* r,
                                      rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus NewRandomRWFile(const std::string& f, const rocksdb::FileOptions& o,
                                    std::unique_ptr<rocksdb::FSRandomRWFile>* r,
                                    rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus NewDirectory(const std::string& d, const rocksdb::IOOptions& o,
                                 std::unique_ptr<rocksdb::FSDirectory>* r,
                                 rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus GetChildren(const std::string& d, const rocksdb::IOOptions& o,
                                std::vector<std::string>* r, rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus GetFileSize(const std::string& f, const rocksdb::IOOptions& o, uint64_t* size,
                                rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus DeleteFile(const std::string& f, const rocksdb::IOOptions& o,
                               rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus Truncate(const std::string& f, size_t size, const rocksdb::IOOptions& o,
                             rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus CreateDir(const std::string& d, const rocksdb::IOOptions& o,
                              rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus CreateDirIfMissing(const std::string& d, const rocksdb::IOOptions& o,
                                       rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus DeleteDir(const std::string& d, const rocksdb::IOOptions& o,
                              rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus RenameFile(const std::string& s, const std::string& t,
                               const rocksdb::IOOptions& o, rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus LinkFile(const std::string& s, const std::string& t,
                             const rocksdb::IOOptions& o, rocksdb::IODebugContext* dbg) override;

 private:
  struct Node {              // one file written through us (by its current path)
    bool random = false;     // opened with NewRandomRWFile
    uint64_t size = 0;       // bytes appended so far (appendable files)
    uint64_t synced = 0;     // durable prefix (appendable files)
    bool poisoned = false;   // a Sync failed: nothing after `synced` ever becomes durable
    bool has_snapshot = false;
    std::string snapshot;    // durable content (random-write files, or files untracked until now)
  };
  struct DirOp {
    enum Kind { kCreate, kCreateDir, kRename, kDelete, kDeleteDir } kind;
    std::string a, b;        // names within the directory (rename: a -> b)
    bool stash_valid = false;
    std::string stash;       // durable bytes of the file the op removed
  };
  struct Dir {
    std::vector<DirOp> log;  // since the last successful fsync
    size_t poisoned = 0;     // a failed fsync: the first `poisoned` - 1 ops never become durable
  };

  rocksdb::IOStatus CheckLocked(uint32_t op, const std::string& path);
  // The durable bytes of `path` now (its synced prefix, snapshot, or the
  // whole file if untracked).
  std::string DurableBytesLocked(const std::string& path);
  void LogLocked(const std::string& path, DirOp op);
  void TrackNewLocked(const std::string& path, bool random, uint64_t size);

  mutable std::mutex mu_;
  std::mt19937_64 rng_;
  bool frozen_ = false;
  uint64_t freeze_at_ = 0;     // absolute mutating-op count; 0 = none
  uint64_t mutating_ = 0;
  bool injecting_ = false;
  FaultSpec spec_;
  uint64_t matched_ = 0;       // matching ops since Inject
  uint64_t injected_ = 0;
  std::string first_injected_;
  uint64_t seen_[8] = {};      // per kind bit, since ResetCounts
  std::map<std::string, Node> files_;
  std::map<std::string, Dir> dirs_;
};

// An Env whose FileSystem is `fs` (rocksdb::NewCompositeEnv): pass it as
// Options::env and FileKeyProviderOptions::env. Thread pools and clocks are
// Env::Default()'s.
std::unique_ptr<rocksdb::Env> FaultEnv(const std::shared_ptr<FaultFS>& fs);

}  // namespace callvault::testutil

#endif  // CALLVAULT_TESTS_TESTUTIL_FAULT_FS_H_
