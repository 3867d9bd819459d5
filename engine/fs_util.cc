#include "engine/fs_util.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>

#include "engine/kill_point.h"

namespace callvault::fsutil {

using rocksdb::IOOptions;
using rocksdb::IOStatus;

namespace {
std::string DiskFull(std::string m) {
  return "disk full: " + m +
         " (free space, then reopen the store: every acknowledged write is kept)";
}
}  // namespace

Status FromIO(const IOStatus& s, std::string_view what) {
  if (s.ok()) return Status::OK();
  std::string m(what);
  m += ": ";
  m += s.ToString();
  if (s.IsNotFound() || s.IsPathNotFound()) return Status::NotFound(std::move(m));
  if (s.IsCorruption()) return Status::Corruption(std::move(m));
  if (s.IsNoSpace() || m.find("No space left on device") != std::string::npos) {
    // (RocksDB wraps some, e.g. "Unable to persist options", in a plain IOError.)
    return Status::IOError(DiskFull(std::move(m)));
  }
  return Status::IOError(std::move(m));
}

Status FromRocks(const rocksdb::Status& s, std::string_view what) {
  if (s.ok()) return Status::OK();
  std::string m(what);
  m += ": ";
  m += s.ToString();
  if (s.IsNotFound() || s.IsPathNotFound()) return Status::NotFound(std::move(m));
  if (s.IsCorruption()) {
    // RocksDB 7.8 wraps a failed read of a table file at open as
    // "Corruption: Can't access /NNNNNN.sst: IO error: ...". A file that is
    // missing ("No such file or directory") is damage; any other I/O error
    // is an I/O error.
    const bool wrapped_io = m.find("IO error: ") != std::string::npos &&
                            m.find("No such file or directory") == std::string::npos;
    if (!wrapped_io) return Status::Corruption(std::move(m));
    if (m.find("No space left on device") != std::string::npos) {
      return Status::IOError(DiskFull(std::move(m)));
    }
    return Status::IOError(std::move(m));
  }
  if (s.IsInvalidArgument()) {
    // RocksDB 7.8's open reports a failed open of IDENTITY (or the MANIFEST)
    // for reading as InvalidArgument (DBImpl::Recover, "check if unsupported
    // Direct I/O is the root cause"): "Found options incompatible with
    // filesystem: <the I/O error>" when a second try fails too, "Direct I/O
    // is not supported by the specified DB" when it succeeds. callvault
    // never enables direct I/O, so both are a failed read: kIOError.
    if (m.find("Direct I/O is not supported") != std::string::npos) {
      return Status::IOError(
          m + " (a read at open failed once and succeeded when tried again; callvault does not "
              "use direct I/O)");
    }
    if (m.find("Found options incompatible with filesystem") == std::string::npos &&
        m.find("IO error: ") == std::string::npos) {
      return Status::FailedPrecondition(std::move(m));
    }
  }
  if (s.IsNoSpace() || m.find("No space left on device") != std::string::npos) {
    // (RocksDB wraps some, e.g. "Unable to persist options", in a plain IOError.)
    return Status::IOError(DiskFull(std::move(m)));
  }
  return Status::IOError(std::move(m));
}

Status SyncDir(rocksdb::FileSystem* fs, const std::string& dir) {
  std::unique_ptr<rocksdb::FSDirectory> d;
  CV_RETURN_IF_ERROR(FromIO(fs->NewDirectory(dir, IOOptions(), &d, nullptr), "open directory"));
  CV_RETURN_IF_ERROR(FromIO(d->Fsync(IOOptions(), nullptr), "fsync directory"));
  return FromIO(d->Close(IOOptions(), nullptr), "close directory");
}

Status SyncParentDir(rocksdb::FileSystem* fs, const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return SyncDir(fs, ".");
  return SyncDir(fs, slash == 0 ? "/" : path.substr(0, slash));
}

Status AtomicWrite(rocksdb::FileSystem* fs, const std::string& dir, const std::string& name,
                   const uint8_t* data, size_t size, bool sync_dir) {
  const std::string tmp = dir + "/" + name + ".tmp";
  const std::string dst = dir + "/" + name;
  {
    // Created 0600 first (a FileSystem cannot choose the mode), then opened
    // for writing through `fs`, which keeps its faults and power losses.
    CV_RETURN_IF_ERROR(CreatePrivateFile(tmp));
    std::unique_ptr<rocksdb::FSWritableFile> f;
    Status opened = FromIO(fs->NewWritableFile(tmp, rocksdb::FileOptions(), &f, nullptr),
                           "create " + name + ".tmp");
    if (!opened.ok()) {
      ::unlink(tmp.c_str());
      return opened;
    }
    Status s = FromIO(f->Append(rocksdb::Slice(reinterpret_cast<const char*>(data), size),
                                IOOptions(), nullptr),
                      "write " + name + ".tmp");
    if (s.ok()) s = FromIO(f->Sync(IOOptions(), nullptr), "fsync " + name + ".tmp");
    if (s.ok()) CV_KILL_POINT("atomic_write.after_fsync");
    Status c = FromIO(f->Close(IOOptions(), nullptr), "close " + name + ".tmp");
    if (s.ok()) s = c;
    if (!s.ok()) {
      fs->DeleteFile(tmp, IOOptions(), nullptr).PermitUncheckedError();
      return s;
    }
  }
  CV_RETURN_IF_ERROR(FromIO(fs->RenameFile(tmp, dst, IOOptions(), nullptr), "rename " + name));
  CV_KILL_POINT("atomic_write.after_rename");
  if (!sync_dir) return Status::OK();
  CV_RETURN_IF_ERROR(SyncDir(fs, dir));
  CV_KILL_POINT("atomic_write.after_dir_fsync");
  return Status::OK();
}

Status ReadAll(rocksdb::FileSystem* fs, const std::string& path, std::string* out) {
  return FromIO(rocksdb::ReadFileToString(fs, path, out), "read file");
}

Status ReadSecret(rocksdb::FileSystem* fs, const std::string& path, size_t expected_size,
                  SecretBytes* out) {
  CV_RETURN_IF_ERROR(CheckKeyFile(path, /*secret=*/true));
  uint64_t size = 0;
  CV_RETURN_IF_ERROR(FromIO(fs->GetFileSize(path, IOOptions(), &size, nullptr), "stat key file"));
  if (size != expected_size) return Status::KeyError("key file has the wrong size");
  std::unique_ptr<rocksdb::FSSequentialFile> f;
  CV_RETURN_IF_ERROR(
      FromIO(fs->NewSequentialFile(path, rocksdb::FileOptions(), &f, nullptr), "open key file"));
  SecretBytes buf(expected_size);
  size_t got = 0;
  while (got < expected_size) {
    rocksdb::Slice r;
    CV_RETURN_IF_ERROR(FromIO(f->Read(expected_size - got, IOOptions(), &r,
                                      reinterpret_cast<char*>(buf.data() + got), nullptr),
                              "read key file"));
    if (r.size() == 0) return Status::KeyError("key file is truncated");
    if (r.data() != reinterpret_cast<const char*>(buf.data() + got)) {
      std::copy(r.data(), r.data() + r.size(), buf.data() + got);
    }
    got += r.size();
  }
  *out = std::move(buf);
  return Status::OK();
}

Status Shred(rocksdb::FileSystem* fs, const std::string& dir, const std::string& name) {
  const std::string path = dir + "/" + name;
  {
    // Never written through a symlink (or into anything not a regular
    // file): such an entry is unlinked, its target left untouched.
    struct stat ls;
    if (::lstat(path.c_str(), &ls) != 0) {
      if (errno == ENOENT) return Status::OK();
      return Status::IOError("stat " + name + ": " + std::strerror(errno));
    }
    if (!S_ISREG(ls.st_mode)) return Remove(fs, dir, name);
  }
  uint64_t size = 0;
  IOStatus st = fs->GetFileSize(path, IOOptions(), &size, nullptr);
  if (st.IsNotFound() || st.IsPathNotFound()) return Status::OK();
  CV_RETURN_IF_ERROR(FromIO(st, "stat " + name));
  {
    std::unique_ptr<rocksdb::FSRandomRWFile> f;
    CV_RETURN_IF_ERROR(FromIO(fs->NewRandomRWFile(path, rocksdb::FileOptions(), &f, nullptr),
                              "open " + name + " to shred"));
    std::string zeros(size, '\0');
    CV_RETURN_IF_ERROR(FromIO(f->Write(0, zeros, IOOptions(), nullptr), "overwrite " + name));
    CV_RETURN_IF_ERROR(FromIO(f->Fsync(IOOptions(), nullptr), "fsync " + name));
    CV_KILL_POINT("shred.after_fsync");
    CV_RETURN_IF_ERROR(FromIO(f->Close(IOOptions(), nullptr), "close " + name));
  }
  return Remove(fs, dir, name);
}

Status Remove(rocksdb::FileSystem* fs, const std::string& dir, const std::string& name,
              bool sync_dir) {
  IOStatus st = fs->DeleteFile(dir + "/" + name, IOOptions(), nullptr);
  if (!st.ok() && !st.IsNotFound() && !st.IsPathNotFound()) return FromIO(st, "delete " + name);
  CV_KILL_POINT("remove.after_unlink");
  if (!sync_dir) return Status::OK();
  CV_RETURN_IF_ERROR(SyncDir(fs, dir));
  CV_KILL_POINT("remove.after_dir_fsync");
  return Status::OK();
}

Result<std::vector<std::string>> List(rocksdb::FileSystem* fs, const std::string& dir) {
  std::vector<std::string> names;
  CV_RETURN_IF_ERROR(FromIO(fs->GetChildren(dir, IOOptions(), &names, nullptr), "list directory"));
  return names;
}

// --- Private files and directories ---------------------------------------

namespace {

std::string Errno(int e) { return std::strerror(e); }

std::string Base(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

std::string Octal(mode_t m) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(m & 07777));
  return buf;
}

}  // namespace

Status CreatePrivateFile(const std::string& path) {
  for (int attempt = 0;; ++attempt) {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd >= 0) {
      // The umask can only have taken bits away; fchmod restores the
      // owner's read and write and never adds any for others.
      const int rc = ::fchmod(fd, 0600);
      const int e = errno;
      ::close(fd);
      if (rc != 0) {
        ::unlink(path.c_str());
        return Status::IOError("set mode of " + Base(path) + ": " + Errno(e));
      }
      return Status::OK();
    }
    const int e = errno;
    if (e == EEXIST && attempt == 0) {
      // A temp file left by a crash (or a symlink): removed, not followed.
      if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
        return Status::IOError("remove stale " + Base(path) + ": " + Errno(errno));
      }
      continue;
    }
    return Status::IOError("create " + Base(path) + ": " + Errno(e));
  }
}

Status ReadNoFollow(const std::string& path, uint64_t max_bytes, std::string* out,
                    NoFollowRead* result) {
  out->clear();
  const int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    const int e = errno;
    if (e == ENOENT) {
      *result = NoFollowRead::kMissing;
      return Status::OK();
    }
    if (e == ELOOP) {
      *result = NoFollowRead::kSymlink;
      return Status::OK();
    }
    return Status::IOError("open " + path + ": " + std::strerror(e));
  }
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    *result = NoFollowRead::kNotRegular;
    return Status::OK();
  }
  if (static_cast<uint64_t>(st.st_size) > max_bytes) {
    ::close(fd);
    *result = NoFollowRead::kTooLarge;
    return Status::OK();
  }
  char buf[65536];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int e = errno;
      ::close(fd);
      out->clear();
      return Status::IOError("read " + path + ": " + std::strerror(e));
    }
    if (n == 0) break;
    out->append(buf, static_cast<size_t>(n));
    if (out->size() > max_bytes) {
      ::close(fd);
      out->clear();
      *result = NoFollowRead::kTooLarge;
      return Status::OK();
    }
  }
  ::close(fd);
  *result = NoFollowRead::kRead;
  return Status::OK();
}

Status CheckKeyFile(const std::string& path, bool secret) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) {
    const int e = errno;
    if (e == ENOENT) return Status::NotFound("key file " + Base(path) + " does not exist");
    return Status::IOError("stat " + Base(path) + ": " + Errno(e));
  }
  if (!S_ISREG(st.st_mode)) {
    return Status::KeyError(
        "key directory entry " + path + " is " +
        (S_ISLNK(st.st_mode) ? std::string("a symbolic link") : std::string("not a regular file")) +
        ": a planted entry, not a key this store wrote; it is neither read nor written through "
        "(remove it after checking how it got there)");
  }
  const uid_t me = ::geteuid();
  if (st.st_uid != me) {
    return Status::FailedPrecondition("key file " + path + " is owned by uid " +
                                      std::to_string(st.st_uid) + ", not by this process's uid " +
                                      std::to_string(me) + "; fix: chown " + std::to_string(me) +
                                      " " + path);
  }
  if (secret && (st.st_mode & 077) != 0) {
    return Status::FailedPrecondition("key file " + path + " is accessible by other users (mode " +
                                      Octal(st.st_mode) + "); fix: chmod 600 " + path);
  }
  return Status::OK();
}

Status MakePrivateDir(const std::string& dir) {
  if (::mkdir(dir.c_str(), 0700) == 0) return Status::OK();
  const int e = errno;
  if (e == EEXIST) return Status::AlreadyExists("directory exists");
  if (e == ENOENT) return Status::NotFound("create key directory " + dir + ": its parent does not exist");
  return Status::IOError("create key directory " + dir + ": " + Errno(e));
}

Status CheckPrivateDir(const std::string& dir) {
  struct stat st;
  if (::lstat(dir.c_str(), &st) != 0) {
    const int e = errno;
    if (e == ENOENT) return Status::NotFound("key directory does not exist");
    return Status::IOError("key directory " + dir + ": " + Errno(e));
  }
  if (S_ISLNK(st.st_mode)) {
    return Status::FailedPrecondition(
        "key directory " + dir +
        " is a symbolic link; give the real directory's path (whoever can write the link's "
        "directory could point it elsewhere)");
  }
  if (!S_ISDIR(st.st_mode)) {
    return Status::FailedPrecondition("key directory " + dir + " is not a directory");
  }
  const uid_t me = ::geteuid();
  if (st.st_uid != me) {
    return Status::FailedPrecondition(
        "key directory " + dir + " is owned by uid " + std::to_string(st.st_uid) +
        ", not by this process's uid " + std::to_string(me) + "; fix: chown -R " +
        std::to_string(me) + " " + dir + " (or run as its owner)");
  }
  if ((st.st_mode & 077) != 0) {
    return Status::FailedPrecondition("key directory " + dir +
                                      " is accessible by other users (mode " + Octal(st.st_mode) +
                                      "); fix: chmod 700 " + dir);
  }
  return Status::OK();
}

namespace {

// What CheckStoreTree found wrong with one directory: "" if nothing (or
// it does not exist, or is not a directory: what the open makes of that is
// the open's to say). `owner` is set when the owner is another uid, to
// `*foreign_uid`.
std::string StoreDirProblem(const std::string& dir, bool* owner, uid_t* foreign_uid,
                            Status* error) {
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0) {
    const int e = errno;
    if (e != ENOENT && e != ENOTDIR) {
      *error = Status::IOError("store directory " + dir + ": " + Errno(e));
    }
    return "";
  }
  if (!S_ISDIR(st.st_mode)) return "";
  if (st.st_uid != ::geteuid()) {
    *owner = true;
    *foreign_uid = st.st_uid;
    return "store directory " + dir + " is owned by uid " + std::to_string(st.st_uid) +
           ", not by this process's uid " + std::to_string(::geteuid());
  }
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    return "store directory " + dir + " can be written by users other than its owner (mode " +
           Octal(st.st_mode) + ")";
  }
  return "";
}

bool AllDigits(const std::string& name) {
  return !name.empty() && name.find_first_not_of("0123456789") == std::string::npos;
}

}  // namespace

Status CheckStoreTree(const std::string& store) {
  std::vector<std::string> dirs = {store, store + "/meta", store + "/shards",
                                   store + "/damage-reports"};
  std::error_code ec;
  std::filesystem::directory_iterator it(store + "/shards", ec);
  // The shards' directories are named by number (printf "%04u"); another
  // entry is nothing the store writes into.
  for (; !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    if (!AllDigits(it->path().filename().string())) continue;
    dirs.push_back(it->path().string());
    dirs.push_back(it->path().string() + "/ingest");
  }
  if (ec && ec != std::errc::no_such_file_or_directory && ec != std::errc::not_a_directory) {
    return Status::IOError("store directory " + store + "/shards: " + ec.message());
  }
  // The first directory owned by another uid, else the first others can
  // write; how many more have either problem.
  std::string first;
  bool owner = false, loose = false;
  uid_t foreign = 0;
  size_t found = 0;
  for (const std::string& d : dirs) {
    Status error;
    bool is_owner = false;
    uid_t uid = 0;
    std::string p = StoreDirProblem(d, &is_owner, &uid, &error);
    CV_RETURN_IF_ERROR(error);
    if (p.empty()) continue;
    ++found;
    loose = loose || !is_owner;
    if (first.empty() || (is_owner && !owner)) {
      first = std::move(p);
      owner = is_owner;
      foreign = uid;
    }
  }
  if (first.empty()) return Status::OK();
  // The fix names the real directory: chown -R does not follow a symlink
  // given on its command line.
  std::string real = store;
  if (char* resolved = ::realpath(store.c_str(), nullptr)) {
    real = resolved;
    std::free(resolved);
  }
  if (found > 1) first += "; " + std::to_string(found - 1) + " more of its directories too";
  const std::string chmod = "chmod -R go-w " + real;
  if (owner) {
    return Status::FailedPrecondition(
        first + ": another user could plant a link there that the store would write through; "
                "fix: run as uid " + std::to_string(foreign) + ", or chown -R " +
        std::to_string(::geteuid()) + " " + real + (loose ? " && " + chmod : std::string()));
  }
  return Status::FailedPrecondition(
      first + ": a link planted there would be written through; fix: " + chmod);
}

namespace {

struct NodeId {
  dev_t dev;
  ino_t ino;
  bool operator==(const NodeId& o) const { return dev == o.dev && ino == o.ino; }
};

// (st_dev, st_ino) of `path` and of every directory above it, by ".." (the
// kernel's parent, whatever symlinks the path went through) up to "/".
Result<std::vector<NodeId>> Chain(const std::string& path) {
  int fd = ::open(path.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Status::IOError("open " + path + ": " + Errno(errno));
  std::vector<NodeId> chain;
  for (int depth = 0; depth < 4096; ++depth) {
    struct stat st;
    if (::fstat(fd, &st) != 0) {
      const int e = errno;
      ::close(fd);
      return Status::IOError("stat " + path + ": " + Errno(e));
    }
    const NodeId id{st.st_dev, st.st_ino};
    if (!chain.empty() && chain.back() == id) break;  // "/.." is "/"
    chain.push_back(id);
    int up = ::openat(fd, "..", O_PATH | O_DIRECTORY | O_CLOEXEC);
    const int e = errno;
    ::close(fd);
    if (up < 0) return Status::IOError("open parent of " + path + ": " + Errno(e));
    fd = up;
  }
  ::close(fd);
  return chain;
}

bool Contains(const std::vector<NodeId>& chain, const NodeId& id) {
  for (const auto& c : chain) {
    if (c == id) return true;
  }
  return false;
}

// /proc/self/mountinfo escapes space, tab, newline and backslash as \ooo.
std::string Unescape(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size()) {
      const std::string oct = s.substr(i + 1, 3);
      if (oct.size() == 3 && oct.find_first_not_of("01234567") == std::string::npos) {
        out.push_back(static_cast<char>(std::stoi(oct, nullptr, 8)));
        i += 3;
        continue;
      }
    }
    out.push_back(s[i]);
  }
  return out;
}

bool Under(const std::string& path, const std::string& dir) {
  if (dir == "/") return !path.empty() && path[0] == '/';
  return path == dir || (path.size() > dir.size() && path.compare(0, dir.size(), dir) == 0 &&
                         path[dir.size()] == '/');
}

// The mount table: each mount's device, the directory of that file system
// it shows (root) and where (mount point). Empty if unreadable.
struct Mount {
  std::string device;  // "major:minor"
  std::string root;
  std::string mount_point;
};
std::vector<Mount> Mounts() {
  std::vector<Mount> v;
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    // id parent major:minor root mount-point options ...
    std::istringstream fields(line);
    std::string id, parent;
    Mount m;
    if (!(fields >> id >> parent >> m.device >> m.root >> m.mount_point)) continue;
    m.root = Unescape(m.root);
    m.mount_point = Unescape(m.mount_point);
    v.push_back(std::move(m));
  }
  return v;
}

// Where a directory (a canonical path) lies: the device of its mount and its
// path from that file system's root, so that one directory seen through
// two bind mounts has one position.
struct FsPosition {
  std::string device;
  std::string path;
};
std::optional<FsPosition> Position(const std::vector<Mount>& mounts, const std::string& canonical) {
  std::optional<FsPosition> best;
  size_t best_len = 0;
  for (const auto& m : mounts) {
    if (!Under(canonical, m.mount_point)) continue;
    // The longest mount point wins; of equal ones the later (mounted over).
    if (best && m.mount_point.size() < best_len) continue;
    std::string rest = canonical.substr(m.mount_point == "/" ? 0 : m.mount_point.size());
    std::string p = m.root == "/" ? rest : m.root + rest;
    if (p.empty()) p = "/";
    best = FsPosition{m.device, p};
    best_len = m.mount_point.size();
  }
  return best;
}

// Whether the directory at `inner` (a position) can be reached below the
// canonical path `outer`: `outer` holds it in its own file system, or a
// mount below `outer` shows a directory that holds it.
bool Reachable(const std::vector<Mount>& mounts, const FsPosition& inner, const std::string& outer,
               const FsPosition& outer_pos) {
  if (inner.device == outer_pos.device && Under(inner.path, outer_pos.path)) return true;
  for (const auto& m : mounts) {
    if (m.device == inner.device && Under(m.mount_point, outer) && Under(inner.path, m.root)) {
      return true;
    }
  }
  return false;
}

}  // namespace

Status CheckApart(const std::string& store, const std::string& keys) {
  const Status refused = Status::InvalidArgument(
      "the key directory must not be the store directory, inside it, or hold it (compared by "
      "device and inode, through symlinks and bind mounts): a copy of the store would carry its "
      "keys, or the keys' backup the store");
  namespace stdfs = std::filesystem;
  std::error_code ec;
  stdfs::path s = stdfs::absolute(store, ec).lexically_normal();
  if (ec) return Status::IOError("store path: " + ec.message());
  // The store directory, or its nearest ancestor that exists (init).
  bool store_exists = true;
  while (::access(s.c_str(), F_OK) != 0) {
    store_exists = false;
    if (!s.has_relative_path()) break;
    s = s.parent_path();
  }
  CV_ASSIGN_OR_RETURN(auto key_chain, Chain(keys));
  CV_ASSIGN_OR_RETURN(auto store_chain, Chain(s.string()));
  if (store_exists && Contains(key_chain, store_chain.front())) return refused;
  if (Contains(store_chain, key_chain.front())) return refused;
  // Bind mounts: one directory reachable under two paths, whose ".." chains
  // need not meet. Compare positions within the file system.
  const std::string real_keys = stdfs::canonical(keys, ec).string();
  if (ec) return Status::OK();  // checked by identity above
  const std::string real_store = stdfs::canonical(s, ec).string();
  if (ec) return Status::OK();
  const auto mounts = Mounts();
  auto pk = Position(mounts, real_keys);
  auto ps = Position(mounts, real_store);
  if (pk && ps) {
    if (store_exists && Reachable(mounts, *pk, real_store, *ps)) return refused;
    if (Reachable(mounts, *ps, real_keys, *pk)) return refused;
  }
  return Status::OK();
}

}  // namespace callvault::fsutil
