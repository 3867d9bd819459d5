#include "engine/fs_util.h"

#include <sys/stat.h>

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
  if (s.IsCorruption()) return Status::Corruption(std::move(m));
  if (s.IsInvalidArgument()) return Status::FailedPrecondition(std::move(m));
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
    std::unique_ptr<rocksdb::FSWritableFile> f;
    CV_RETURN_IF_ERROR(FromIO(fs->NewWritableFile(tmp, rocksdb::FileOptions(), &f, nullptr),
                              "create " + name + ".tmp"));
    ::chmod(tmp.c_str(), 0600);  // best effort; keys are for the owner only
    Status s = FromIO(f->Append(rocksdb::Slice(reinterpret_cast<const char*>(data), size),
                                IOOptions(), nullptr),
                      "write " + name + ".tmp");
    if (s.ok()) s = FromIO(f->Sync(IOOptions(), nullptr), "fsync " + name + ".tmp");
    Status c = FromIO(f->Close(IOOptions(), nullptr), "close " + name + ".tmp");
    if (s.ok()) s = c;
    if (!s.ok()) {
      fs->DeleteFile(tmp, IOOptions(), nullptr).PermitUncheckedError();
      return s;
    }
  }
  CV_RETURN_IF_ERROR(FromIO(fs->RenameFile(tmp, dst, IOOptions(), nullptr), "rename " + name));
  return sync_dir ? SyncDir(fs, dir) : Status::OK();
}

Status ReadAll(rocksdb::FileSystem* fs, const std::string& path, std::string* out) {
  return FromIO(rocksdb::ReadFileToString(fs, path, out), "read file");
}

Status ReadSecret(rocksdb::FileSystem* fs, const std::string& path, size_t expected_size,
                  SecretBytes* out) {
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
    CV_RETURN_IF_ERROR(FromIO(f->Close(IOOptions(), nullptr), "close " + name));
  }
  return Remove(fs, dir, name);
}

Status Remove(rocksdb::FileSystem* fs, const std::string& dir, const std::string& name,
              bool sync_dir) {
  IOStatus st = fs->DeleteFile(dir + "/" + name, IOOptions(), nullptr);
  if (!st.ok() && !st.IsNotFound() && !st.IsPathNotFound()) return FromIO(st, "delete " + name);
  return sync_dir ? SyncDir(fs, dir) : Status::OK();
}

Result<std::vector<std::string>> List(rocksdb::FileSystem* fs, const std::string& dir) {
  std::vector<std::string> names;
  CV_RETURN_IF_ERROR(FromIO(fs->GetChildren(dir, IOOptions(), &names, nullptr), "list directory"));
  return names;
}

}  // namespace callvault::fsutil
