// Durable file operations through a rocksdb::FileSystem (so that tests can
// inject faults and power loss into key and keyring files too).
#ifndef CALLVAULT_ENGINE_FS_UTIL_H_
#define CALLVAULT_ENGINE_FS_UTIL_H_

#include <rocksdb/file_system.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "callvault/secret.h"
#include "callvault/status.h"

namespace callvault::fsutil {

Status FromIO(const rocksdb::IOStatus& s, std::string_view what);
Status FromRocks(const rocksdb::Status& s, std::string_view what);

// Writes `dir/name` atomically and durably: `name.tmp`, fsync, rename,
// fsync `dir`. A failure at any step is returned; nothing is retried.
// With `sync_dir` false the rename is durable only after the caller's next
// SyncDir of `dir` (which persists every entry of the directory).
Status AtomicWrite(rocksdb::FileSystem* fs, const std::string& dir, const std::string& name,
                   const uint8_t* data, size_t size, bool sync_dir = true);
Status ReadAll(rocksdb::FileSystem* fs, const std::string& path, std::string* out);
Status ReadSecret(rocksdb::FileSystem* fs, const std::string& path, size_t expected_size,
                  SecretBytes* out);
// Overwrites the file with zeros, fsyncs, unlinks and fsyncs `dir`.
// OK if the file does not exist.
Status Shred(rocksdb::FileSystem* fs, const std::string& dir, const std::string& name);
// Unlinks `dir/name` (OK if it does not exist), then fsyncs `dir` if
// `sync_dir`.
Status Remove(rocksdb::FileSystem* fs, const std::string& dir, const std::string& name,
              bool sync_dir = true);
Status SyncDir(rocksdb::FileSystem* fs, const std::string& dir);
// Fsyncs the directory holding `path` (path has no trailing '/'), so that a
// directory just created at `path` survives a power loss.
Status SyncParentDir(rocksdb::FileSystem* fs, const std::string& path);
Result<std::vector<std::string>> List(rocksdb::FileSystem* fs, const std::string& dir);

// --- Private (key) files and directories: POSIX calls, not the FileSystem:
// a rocksdb::FileSystem cannot choose the mode of what it creates. ---

// Creates `path` as a new empty regular file with mode 0600
// (O_CREAT|O_EXCL|O_NOFOLLOW|O_CLOEXEC, independent of the umask), so that
// no other user can ever open it. A leftover at `path` (a temp file of a
// crash, or a symlink) is unlinked first, never followed.
Status CreatePrivateFile(const std::string& path);
// Creates directory `dir` with mode 0700 (mkdir, never chmod afterwards).
// kAlreadyExists if it exists.
Status MakePrivateDir(const std::string& dir);
// kFailedPrecondition, with the command that fixes it, unless `dir` is a
// directory (not a symlink to one) owned by this process's effective uid
// with no permission bits for group or others. kNotFound if it is missing.
Status CheckPrivateDir(const std::string& dir);
// The store's directories that exist among `store` (the path given, a
// symlink to a directory allowed: its target is checked), meta/, shards/,
// each shards/NNNN/ (all-digit names) and its ingest/, and damage-reports/:
// kFailedPrecondition unless each is owned by this process's effective
// uid and writable by nobody else (no write bit for group or others). The
// message names the first directory owned by another uid (else the first
// others can write), counts the rest, and gives the command that fixes
// them all (on the real path). Whoever else can write one of them can
// plant a link under a name the store is about to create or write (RocksDB
// opens its new files without O_NOFOLLOW), and the store would write
// through it: into the key directory, say (decision 0078). kIOError if one
// cannot be examined.
Status CheckStoreTree(const std::string& store);
// Checks, without following a symlink (lstat), that `path` is a regular
// file owned by this process's effective uid and, if `secret`, with no
// permission bits for group or others. kNotFound if missing; kKeyError
// naming the entry if it is a symlink or not a regular file (a planted
// entry: never read, adopted or written through); kFailedPrecondition with
// the fixing command for a foreign owner or loose mode.
// Residual: the check and the later open through the FileSystem are two
// steps; only the key directory's owner (the directory is 0700 and ours,
// CheckPrivateDir) can swap the entry between them.
Status CheckKeyFile(const std::string& path, bool secret);

// Reads the whole of `path` without following a symbolic link: opened with
// O_NOFOLLOW|O_NONBLOCK, then fstat on what was opened, so neither a link nor
// a FIFO or device planted under the name is ever read through. The outcome
// is in *result (kRead: *out holds the bytes); only an I/O error is a
// non-OK status (its message names `path`). More than `max_bytes` is
// kTooLarge (checked before and while reading: a file that grows is refused
// too). The restore marker, the tombstone log and the restore ledger.
enum class NoFollowRead { kRead, kMissing, kSymlink, kNotRegular, kTooLarge };
Status ReadNoFollow(const std::string& path, uint64_t max_bytes, std::string* out,
                    NoFollowRead* result);

// kInvalidArgument if the key directory `keys` is the store directory
// `store`, inside it, or holds it, judged by identity (st_dev, st_ino)
// along both parent chains and by file system position across bind mounts
// (/proc/self/mountinfo), not by spelling. `store` need not exist yet (its
// nearest existing ancestor is used).
Status CheckApart(const std::string& store, const std::string& keys);

}  // namespace callvault::fsutil

#endif  // CALLVAULT_ENGINE_FS_UTIL_H_
