#include "tests/testutil/fault_fs.h"

#include <cstdio>
#include <cstdlib>
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace callvault::testutil {

namespace fs = std::filesystem;
using rocksdb::FileOptions;
using rocksdb::IODebugContext;
using rocksdb::IOOptions;
using rocksdb::IOStatus;
using rocksdb::Slice;

namespace {

std::string Norm(const std::string& p) {
  std::string n = fs::path(p).lexically_normal().string();
  while (n.size() > 1 && n.back() == '/') n.pop_back();
  return n;
}
std::string Parent(const std::string& p) {
  size_t i = p.rfind('/');
  return i == std::string::npos ? "." : (i == 0 ? "/" : p.substr(0, i));
}
std::string Base(const std::string& p) {
  size_t i = p.rfind('/');
  return i == std::string::npos ? p : p.substr(i + 1);
}
std::string ReadReal(const std::string& path, uint64_t max = UINT64_MAX) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  if (s.size() > max) s.resize(max);
  return s;
}
void WriteReal(const std::string& path, const std::string& data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(data.data(), static_cast<std::streamsize>(data.size()));
}
bool Exists(const std::string& p) {
  std::error_code ec;
  return fs::exists(p, ec);
}

// --- File wrappers ---------------------------------------------------------------

class FaultWritable : public rocksdb::FSWritableFileOwnerWrapper {
 public:
  FaultWritable(std::unique_ptr<rocksdb::FSWritableFile> t, FaultFS* f, std::string path,
                uint64_t size)
      : FSWritableFileOwnerWrapper(std::move(t)), fs_(f), path_(std::move(path)), size_(size) {}

  IOStatus Append(const Slice& data, const IOOptions& o, IODebugContext* dbg) override {
    IOStatus s = fs_->Check(kOpWrite, path_);
    if (s.ok()) s = target()->Append(data, o, dbg);
    if (s.ok()) fs_->OnAppend(path_, size_ += data.size());
    return s;
  }
  IOStatus Append(const Slice& data, const IOOptions& o,
                  const rocksdb::DataVerificationInfo& /*info*/, IODebugContext* dbg) override {
    return Append(data, o, dbg);
  }
  IOStatus PositionedAppend(const Slice& data, uint64_t offset, const IOOptions& o,
                            IODebugContext* dbg) override {
    IOStatus s = fs_->Check(kOpWrite, path_);
    if (s.ok()) s = target()->PositionedAppend(data, offset, o, dbg);
    if (s.ok()) fs_->OnAppend(path_, size_ = std::max(size_, offset + data.size()));
    return s;
  }
  IOStatus PositionedAppend(const Slice& data, uint64_t offset, const IOOptions& o,
                            const rocksdb::DataVerificationInfo& /*info*/,
                            IODebugContext* dbg) override {
    return PositionedAppend(data, offset, o, dbg);
  }
  IOStatus Truncate(uint64_t size, const IOOptions& o, IODebugContext* dbg) override {
    IOStatus s = fs_->Check(kOpWrite, path_);
    if (s.ok()) s = target()->Truncate(size, o, dbg);
    if (s.ok()) fs_->OnAppend(path_, size_ = size);
    return s;
  }
  // The real fsync is not called: FaultFS decides what is durable.
  IOStatus Sync(const IOOptions& o, IODebugContext* dbg) override { return DoSync(o, dbg); }
  IOStatus Fsync(const IOOptions& o, IODebugContext* dbg) override { return DoSync(o, dbg); }
  IOStatus RangeSync(uint64_t, uint64_t, const IOOptions&, IODebugContext*) override {
    return fs_->frozen() ? IOStatus::IOError(kPowerLostMessage) : IOStatus::OK();
  }
  IOStatus Close(const IOOptions& o, IODebugContext* dbg) override {
    IOStatus s = fs_->Check(kOpClose, path_);
    IOStatus c = target()->Close(o, dbg);  // release the descriptor either way
    return s.ok() ? c : s;
  }

 private:
  IOStatus DoSync(const IOOptions& o, IODebugContext* dbg) {
    IOStatus s = fs_->Check(kOpSync, path_);
    if (s.ok()) s = target()->Flush(o, dbg);
    fs_->OnSync(path_, size_, s.ok());
    return s;
  }

  FaultFS* const fs_;
  const std::string path_;
  uint64_t size_;
};

class FaultRandomRW : public rocksdb::FSRandomRWFileOwnerWrapper {
 public:
  FaultRandomRW(std::unique_ptr<rocksdb::FSRandomRWFile> t, FaultFS* f, std::string path)
      : FSRandomRWFileOwnerWrapper(std::move(t)), fs_(f), path_(std::move(path)) {}
  IOStatus Write(uint64_t offset, const Slice& data, const IOOptions& o,
                 IODebugContext* dbg) override {
    IOStatus s = fs_->Check(kOpWrite, path_);
    if (s.ok()) s = target()->Write(offset, data, o, dbg);
    if (s.ok()) fs_->OnRandomWrite(path_);
    return s;
  }
  IOStatus Read(uint64_t offset, size_t n, const IOOptions& o, Slice* result, char* scratch,
                IODebugContext* dbg) const override {
    IOStatus s = fs_->Check(kOpRead, path_);
    return s.ok() ? target()->Read(offset, n, o, result, scratch, dbg) : s;
  }
  IOStatus Sync(const IOOptions& o, IODebugContext* dbg) override { return DoSync(o, dbg); }
  IOStatus Fsync(const IOOptions& o, IODebugContext* dbg) override { return DoSync(o, dbg); }
  IOStatus Close(const IOOptions& o, IODebugContext* dbg) override {
    IOStatus s = fs_->Check(kOpClose, path_);
    IOStatus c = target()->Close(o, dbg);
    return s.ok() ? c : s;
  }

 private:
  IOStatus DoSync(const IOOptions& o, IODebugContext* dbg) {
    IOStatus s = fs_->Check(kOpSync, path_);
    if (s.ok()) s = target()->Flush(o, dbg);
    fs_->OnRandomSync(path_, s.ok());
    return s;
  }
  FaultFS* const fs_;
  const std::string path_;
};

class FaultSequential : public rocksdb::FSSequentialFileOwnerWrapper {
 public:
  FaultSequential(std::unique_ptr<rocksdb::FSSequentialFile> t, FaultFS* f, std::string path)
      : FSSequentialFileOwnerWrapper(std::move(t)), fs_(f), path_(std::move(path)) {}
  IOStatus Read(size_t n, const IOOptions& o, Slice* result, char* scratch,
                IODebugContext* dbg) override {
    IOStatus s = fs_->Check(kOpRead, path_);
    return s.ok() ? FSSequentialFileOwnerWrapper::Read(n, o, result, scratch, dbg) : s;
  }
  IOStatus PositionedRead(uint64_t offset, size_t n, const IOOptions& o, Slice* result,
                          char* scratch, IODebugContext* dbg) override {
    IOStatus s = fs_->Check(kOpRead, path_);
    return s.ok() ? FSSequentialFileOwnerWrapper::PositionedRead(offset, n, o, result, scratch, dbg)
                  : s;
  }

 private:
  FaultFS* const fs_;
  const std::string path_;
};

class FaultRandomAccess : public rocksdb::FSRandomAccessFileOwnerWrapper {
 public:
  FaultRandomAccess(std::unique_ptr<rocksdb::FSRandomAccessFile> t, FaultFS* f, std::string path)
      : FSRandomAccessFileOwnerWrapper(std::move(t)), fs_(f), path_(std::move(path)) {}
  IOStatus Read(uint64_t offset, size_t n, const IOOptions& o, Slice* result, char* scratch,
                IODebugContext* dbg) const override {
    IOStatus s = fs_->Check(kOpRead, path_);
    return s.ok() ? FSRandomAccessFileOwnerWrapper::Read(offset, n, o, result, scratch, dbg) : s;
  }
  IOStatus MultiRead(rocksdb::FSReadRequest* reqs, size_t num, const IOOptions& o,
                     IODebugContext* dbg) override {
    IOStatus s = fs_->Check(kOpRead, path_);
    if (!s.ok()) {
      for (size_t i = 0; i < num; ++i) reqs[i].status = s;
      return s;
    }
    return FSRandomAccessFileOwnerWrapper::MultiRead(reqs, num, o, dbg);
  }
  IOStatus ReadAsync(rocksdb::FSReadRequest& req, const IOOptions& o,
                     std::function<void(const rocksdb::FSReadRequest&, void*)> cb, void* cb_arg,
                     void** io_handle, rocksdb::IOHandleDeleter* del_fn, IODebugContext* dbg) override {
    IOStatus s = fs_->Check(kOpRead, path_);
    if (!s.ok()) return s;
    return FSRandomAccessFileOwnerWrapper::ReadAsync(req, o, std::move(cb), cb_arg, io_handle,
                                                     del_fn, dbg);
  }

 private:
  FaultFS* const fs_;
  const std::string path_;
};

class FaultDirectory : public rocksdb::FSDirectoryWrapper {
 public:
  FaultDirectory(std::unique_ptr<rocksdb::FSDirectory> t, FaultFS* f, std::string path)
      : FSDirectoryWrapper(std::move(t)), fs_(f), path_(std::move(path)) {}
  IOStatus Fsync(const IOOptions&, IODebugContext*) override { return DoSync(); }
  IOStatus FsyncWithDirOptions(const IOOptions&, IODebugContext*,
                               const rocksdb::DirFsyncOptions&) override {
    return DoSync();
  }

 private:
  IOStatus DoSync() {
    IOStatus s = fs_->Check(kOpDirSync, path_);
    fs_->OnDirSync(path_, s.ok());
    return s;
  }
  FaultFS* const fs_;
  const std::string path_;
};

}  // namespace

const char* FaultOpName(uint32_t op) {
  switch (op) {
    case kOpWrite: return "write";
    case kOpSync: return "sync";
    case kOpDirSync: return "dirsync";
    case kOpRename: return "rename";
    case kOpCreate: return "create";
    case kOpDelete: return "delete";
    case kOpRead: return "read";
    case kOpClose: return "close";
    case kOpAll: return "any";
    case kOpMutating: return "mutating";
    default: return "mixed";
  }
}

const char* PowerLossModeName(PowerLossMode mode) {
  switch (mode) {
    case PowerLossMode::kDropUnsynced: return "drop-unsynced";
    case PowerLossMode::kRandomTail: return "random-tail";
    case PowerLossMode::kUndoDirOps: return "undo-dir-ops";
    case PowerLossMode::kTornGarbled: return "torn-garbled";
  }
  return "?";
}

FaultFS::FaultFS(uint64_t seed, std::shared_ptr<rocksdb::FileSystem> base)
    : FileSystemWrapper(std::move(base)), rng_(seed) {}
FaultFS::~FaultFS() = default;

void FaultFS::Freeze() {
  std::lock_guard<std::mutex> l(mu_);
  frozen_ = true;
}
void FaultFS::FreezeAt(uint64_t n) {
  std::lock_guard<std::mutex> l(mu_);
  freeze_at_ = n == 0 ? 0 : mutating_ + n;
}
bool FaultFS::frozen() const {
  std::lock_guard<std::mutex> l(mu_);
  return frozen_;
}
uint64_t FaultFS::mutating_ops() const {
  std::lock_guard<std::mutex> l(mu_);
  return mutating_;
}
void FaultFS::Inject(const FaultSpec& spec) {
  std::lock_guard<std::mutex> l(mu_);
  injecting_ = true;
  spec_ = spec;
  matched_ = 0;
}
void FaultFS::Lift() {
  std::lock_guard<std::mutex> l(mu_);
  injecting_ = false;
}
uint64_t FaultFS::injected() const {
  std::lock_guard<std::mutex> l(mu_);
  return injected_;
}
std::string FaultFS::first_injected() const {
  std::lock_guard<std::mutex> l(mu_);
  return first_injected_;
}

IOStatus FaultFS::Check(uint32_t op, const std::string& path) {
  std::lock_guard<std::mutex> l(mu_);
  return CheckLocked(op, path);
}

uint64_t FaultFS::ops_seen(uint32_t kinds) const {
  std::lock_guard<std::mutex> l(mu_);
  uint64_t n = 0;
  for (int b = 0; b < 8; ++b) {
    if (kinds & (1u << b)) n += seen_[b];
  }
  return n;
}
void FaultFS::ResetCounts() {
  std::lock_guard<std::mutex> l(mu_);
  for (auto& c : seen_) c = 0;
}

IOStatus FaultFS::CheckLocked(uint32_t op, const std::string& path) {
  static const char* trace = std::getenv("CALLVAULT_FAULTFS_TRACE");
  if (trace && path.find(trace) != std::string::npos && op != kOpRead) {
    fprintf(stderr, "FFS %s %s%s\n", FaultOpName(op), path.c_str(), frozen_ ? " (frozen)" : "");
  }
  for (int b = 0; b < 8; ++b) {
    if (op & (1u << b)) ++seen_[b];
  }
  if (frozen_) return IOStatus::IOError(kPowerLostMessage, path);
  if (op & kOpMutating) {
    ++mutating_;
    if (freeze_at_ != 0 && mutating_ >= freeze_at_) {
      frozen_ = true;
      return IOStatus::IOError(kPowerLostMessage, path);
    }
  }
  if (injecting_ && (spec_.kinds & op)) {
    ++matched_;
    if (matched_ == spec_.nth || (spec_.forever && matched_ > spec_.nth)) {
      ++injected_;
      std::string what = std::string(kInjectedMessage) + " (" + FaultOpName(op) + ")";
      if (first_injected_.empty()) first_injected_ = what + " " + path;
      if (spec_.no_space) return IOStatus::NoSpace(what, path);
      return IOStatus::IOError(what, path);
    }
  }
  return IOStatus::OK();
}

std::string FaultFS::DurableBytesLocked(const std::string& path) {
  auto it = files_.find(path);
  if (it == files_.end()) return ReadReal(path);
  const Node& n = it->second;
  if (n.has_snapshot) return n.snapshot;
  if (n.random) return "";
  return ReadReal(path, n.synced);
}

void FaultFS::LogLocked(const std::string& path, DirOp op) {
  dirs_[Parent(path)].log.push_back(std::move(op));
}

void FaultFS::TrackNewLocked(const std::string& path, bool random, uint64_t size) {
  Node n;
  n.random = random;
  n.size = size;
  files_[path] = std::move(n);
}

void FaultFS::OnAppend(const std::string& path, uint64_t new_size) {
  std::lock_guard<std::mutex> l(mu_);
  Node& n = files_[path];
  n.size = new_size;
  n.synced = std::min(n.synced, new_size);
}

void FaultFS::OnSync(const std::string& path, uint64_t size, bool ok) {
  std::lock_guard<std::mutex> l(mu_);
  Node& n = files_[path];
  if (!ok) {
    n.poisoned = true;
  } else if (!n.poisoned) {
    n.synced = size;
  }
}

void FaultFS::OnRandomWrite(const std::string& /*path*/) {}

void FaultFS::OnRandomSync(const std::string& path, bool ok) {
  std::lock_guard<std::mutex> l(mu_);
  Node& n = files_[path];
  if (ok) {
    n.snapshot = ReadReal(path);
    n.has_snapshot = true;
  }
}

void FaultFS::OnDirSync(const std::string& dir, bool ok) {
  std::lock_guard<std::mutex> l(mu_);
  Dir& d = dirs_[dir];
  if (!ok) {
    // The operations logged so far never become durable (the first
    // poisoned - 1); a later successful fsync makes the later ones durable,
    // as on Linux, where it persists the directory as it is then.
    d.poisoned = d.log.size() + 1;
  } else if (d.poisoned == 0) {
    d.log.clear();
  } else {
    d.log.resize(d.poisoned - 1);
  }
}

std::string FaultFS::SimulatePowerLoss(PowerLossMode mode) {
  std::lock_guard<std::mutex> l(mu_);
  frozen_ = true;
  std::ostringstream what;
  // 1. File contents.
  for (auto& [path, n] : files_) {
    if (!Exists(path)) continue;
    if (n.random || n.has_snapshot) {
      if (n.has_snapshot) {
        if (ReadReal(path) != n.snapshot) {
          WriteReal(path, n.snapshot);
          what << " restored " << path << ";";
        }
      }
      continue;
    }
    std::error_code ec;
    const uint64_t real = fs::file_size(path, ec);
    if (ec) continue;
    uint64_t keep = n.synced;
    const bool torn = mode == PowerLossMode::kTornGarbled;
    if ((mode == PowerLossMode::kRandomTail || torn) && real > n.synced) {
      keep = n.synced + rng_() % (real - n.synced + 1);
    }
    if (keep < real) {
      fs::resize_file(path, keep, ec);
      what << " " << path << " " << real << "->" << keep << ";";
    }
    if (torn && keep > n.synced) {
      // One sector of the kept, never synced part: random bytes or zeros.
      constexpr uint64_t kSector = 512;
      const uint64_t span = keep - n.synced;
      const uint64_t len = std::min(kSector, span);
      const uint64_t at = n.synced + rng_() % (span - len + 1);
      const bool zeros = rng_() % 2 == 0;
      std::string junk(len, '\0');
      if (!zeros) {
        for (auto& c : junk) c = static_cast<char>(rng_());
      }
      std::fstream io(path, std::ios::binary | std::ios::in | std::ios::out);
      io.seekp(static_cast<std::streamoff>(at));
      io.write(junk.data(), static_cast<std::streamsize>(len));
      what << " " << path << " garbled " << len << " bytes at " << at << (zeros ? " (zeros)" : "")
           << ";";
    }
  }
  // 2. Directory entries, deepest directories first, newest operation first.
  if (mode == PowerLossMode::kUndoDirOps) {
    // Removed directories first, outermost first, so that what was
    // unlinked from them can be put back below.
    for (auto& [dir, d] : dirs_) {
      for (const auto& op : d.log) {
        std::error_code ec;
        if (op.kind == DirOp::kDeleteDir && fs::create_directories(dir + "/" + op.a, ec)) {
          what << " made again dir " << dir << "/" << op.a << ";";
        }
      }
    }
    for (auto d = dirs_.rbegin(); d != dirs_.rend(); ++d) {
      const std::string& dir = d->first;
      auto& log = d->second.log;
      for (auto op = log.rbegin(); op != log.rend(); ++op) {
        std::error_code ec;
        const std::string a = dir + "/" + op->a, b = dir + "/" + op->b;
        switch (op->kind) {
          case DirOp::kCreate:
            if (fs::remove(a, ec)) what << " unlinked " << a << ";";
            break;
          case DirOp::kCreateDir:
            if (fs::remove_all(a, ec) > 0) what << " removed dir " << a << ";";
            break;
          case DirOp::kRename:
            if (Exists(b)) fs::rename(b, a, ec);
            if (op->stash_valid) WriteReal(b, op->stash);
            what << " unrenamed " << b << "->" << a << ";";
            break;
          case DirOp::kDelete:
            if (op->stash_valid && Exists(dir)) {  // (not if its rmdir was durable)
              WriteReal(a, op->stash);
              what << " undeleted " << a << ";";
            }
            break;
          case DirOp::kDeleteDir:  // made again above
            break;
        }
      }
    }
  }
  files_.clear();
  dirs_.clear();
  return what.str();
}

// --- FileSystem ---------------------------------------------------------------------

IOStatus FaultFS::NewSequentialFile(const std::string& f, const FileOptions& o,
                                    std::unique_ptr<rocksdb::FSSequentialFile>* r,
                                    IODebugContext* dbg) {
  const std::string p = Norm(f);
  IOStatus s = Check(kOpRead, p);
  if (!s.ok()) return s;
  std::unique_ptr<rocksdb::FSSequentialFile> t;
  s = target()->NewSequentialFile(f, o, &t, dbg);
  if (s.ok()) r->reset(new FaultSequential(std::move(t), this, p));
  return s;
}

IOStatus FaultFS::NewRandomAccessFile(const std::string& f, const FileOptions& o,
                                      std::unique_ptr<rocksdb::FSRandomAccessFile>* r,
                                      IODebugContext* dbg) {
  const std::string p = Norm(f);
  IOStatus s = Check(kOpRead, p);
  if (!s.ok()) return s;
  std::unique_ptr<rocksdb::FSRandomAccessFile> t;
  s = target()->NewRandomAccessFile(f, o, &t, dbg);
  if (s.ok()) r->reset(new FaultRandomAccess(std::move(t), this, p));
  return s;
}

IOStatus FaultFS::NewWritableFile(const std::string& f, const FileOptions& o,
                                  std::unique_ptr<rocksdb::FSWritableFile>* r,
                                  IODebugContext* dbg) {
  const std::string p = Norm(f);
  std::lock_guard<std::mutex> l(mu_);
  IOStatus s = CheckLocked(kOpCreate, p);
  if (!s.ok()) return s;
  // An empty file this FileSystem never saw was created just now by the
  // caller to choose its mode (fsutil::CreatePrivateFile, key files): it is
  // new, and a power loss that undoes directory operations removes it.
  std::error_code ec;
  const bool existed =
      Exists(p) && (files_.count(p) != 0 || !fs::is_regular_file(p, ec) || fs::file_size(p, ec) != 0);
  std::unique_ptr<rocksdb::FSWritableFile> t;
  s = target()->NewWritableFile(f, o, &t, dbg);
  if (!s.ok()) return s;
  if (!existed) LogLocked(p, DirOp{DirOp::kCreate, Base(p), "", false, ""});
  TrackNewLocked(p, false, 0);
  r->reset(new FaultWritable(std::move(t), this, p, 0));
  return s;
}

IOStatus FaultFS::ReopenWritableFile(const std::string& f, const FileOptions& o,
                                     std::unique_ptr<rocksdb::FSWritableFile>* r,
                                     IODebugContext* dbg) {
  const std::string p = Norm(f);
  std::lock_guard<std::mutex> l(mu_);
  IOStatus s = CheckLocked(kOpCreate, p);
  if (!s.ok()) return s;
  const bool existed = Exists(p);
  std::unique_ptr<rocksdb::FSWritableFile> t;
  s = target()->ReopenWritableFile(f, o, &t, dbg);
  if (!s.ok()) return s;
  std::error_code ec;
  const uint64_t size = existed ? fs::file_size(p, ec) : 0;
  if (!existed) LogLocked(p, DirOp{DirOp::kCreate, Base(p), "", false, ""});
  auto it = files_.find(p);
  if (it == files_.end()) {
    TrackNewLocked(p, false, size);
    files_[p].synced = size;  // untracked until now: durable
  }
  r->reset(new FaultWritable(std::move(t), this, p, size));
  return s;
}

IOStatus FaultFS::ReuseWritableFile(const std::string&, const std::string&, const FileOptions&,
                                    std::unique_ptr<rocksdb::FSWritableFile>*, IODebugContext*) {
  return IOStatus::NotSupported("FaultFS: ReuseWritableFile (recycle_log_file_num) not modelled");
}

IOStatus FaultFS::NewRandomRWFile(const std::string& f, const FileOptions& o,
                                  std::unique_ptr<rocksdb::FSRandomRWFile>* r,
                                  IODebugContext* dbg) {
  const std::string p = Norm(f);
  std::lock_guard<std::mutex> l(mu_);
  IOStatus s = CheckLocked(kOpCreate, p);
  if (!s.ok()) return s;
  const bool existed = Exists(p);
  std::string durable = existed ? DurableBytesLocked(p) : "";
  std::unique_ptr<rocksdb::FSRandomRWFile> t;
  s = target()->NewRandomRWFile(f, o, &t, dbg);
  if (!s.ok()) return s;
  if (!existed) LogLocked(p, DirOp{DirOp::kCreate, Base(p), "", false, ""});
  Node n;
  n.random = true;
  n.has_snapshot = true;
  n.snapshot = std::move(durable);
  files_[p] = std::move(n);
  r->reset(new FaultRandomRW(std::move(t), this, p));
  return s;
}

IOStatus FaultFS::NewDirectory(const std::string& d, const IOOptions& o,
                               std::unique_ptr<rocksdb::FSDirectory>* r, IODebugContext* dbg) {
  const std::string p = Norm(d);
  IOStatus s = Check(kOpRead, p);
  if (!s.ok()) return s;
  std::unique_ptr<rocksdb::FSDirectory> t;
  s = target()->NewDirectory(d, o, &t, dbg);
  if (s.ok()) r->reset(new FaultDirectory(std::move(t), this, p));
  return s;
}

IOStatus FaultFS::GetChildren(const std::string& d, const IOOptions& o,
                              std::vector<std::string>* r, IODebugContext* dbg) {
  IOStatus s = Check(kOpRead, Norm(d));
  return s.ok() ? target()->GetChildren(d, o, r, dbg) : s;
}

IOStatus FaultFS::GetFileSize(const std::string& f, const IOOptions& o, uint64_t* size,
                             IODebugContext* dbg) {
  IOStatus s = Check(kOpRead, Norm(f));
  return s.ok() ? target()->GetFileSize(f, o, size, dbg) : s;
}

IOStatus FaultFS::DeleteFile(const std::string& f, const IOOptions& o, IODebugContext* dbg) {
  const std::string p = Norm(f);
  std::lock_guard<std::mutex> l(mu_);
  IOStatus s = CheckLocked(kOpDelete, p);
  if (!s.ok()) return s;
  const bool existed = Exists(p);
  std::string durable = existed ? DurableBytesLocked(p) : "";
  s = target()->DeleteFile(f, o, dbg);
  if (s.ok() && existed) {
    LogLocked(p, DirOp{DirOp::kDelete, Base(p), "", true, std::move(durable)});
    files_.erase(p);
  }
  return s;
}

IOStatus FaultFS::Truncate(const std::string& f, size_t size, const IOOptions& o,
                           IODebugContext* dbg) {
  const std::string p = Norm(f);
  std::lock_guard<std::mutex> l(mu_);
  IOStatus s = CheckLocked(kOpWrite, p);
  if (!s.ok()) return s;
  s = target()->Truncate(f, size, o, dbg);
  if (s.ok()) {
    auto it = files_.find(p);
    if (it != files_.end()) {
      it->second.size = size;
      it->second.synced = std::min<uint64_t>(it->second.synced, size);
    }
  }
  return s;
}

IOStatus FaultFS::CreateDir(const std::string& d, const IOOptions& o, IODebugContext* dbg) {
  const std::string p = Norm(d);
  std::lock_guard<std::mutex> l(mu_);
  IOStatus s = CheckLocked(kOpCreate, p);
  if (!s.ok()) return s;
  const bool existed = Exists(p);
  s = target()->CreateDir(d, o, dbg);
  if (s.ok() && !existed) LogLocked(p, DirOp{DirOp::kCreateDir, Base(p), "", false, ""});
  return s;
}

IOStatus FaultFS::CreateDirIfMissing(const std::string& d, const IOOptions& o,
                                     IODebugContext* dbg) {
  const std::string p = Norm(d);
  std::lock_guard<std::mutex> l(mu_);
  const bool existed = Exists(p);
  IOStatus s = CheckLocked(existed ? kOpRead : kOpCreate, p);
  if (!s.ok()) return s;
  s = target()->CreateDirIfMissing(d, o, dbg);
  if (s.ok() && !existed) LogLocked(p, DirOp{DirOp::kCreateDir, Base(p), "", false, ""});
  return s;
}

IOStatus FaultFS::DeleteDir(const std::string& d, const IOOptions& o, IODebugContext* dbg) {
  const std::string p = Norm(d);
  std::lock_guard<std::mutex> l(mu_);
  IOStatus s = CheckLocked(kOpDelete, p);
  if (!s.ok()) return s;
  const bool existed = Exists(p);
  s = target()->DeleteDir(d, o, dbg);
  if (s.ok() && existed) LogLocked(p, DirOp{DirOp::kDeleteDir, Base(p), "", false, ""});
  return s;
}

IOStatus FaultFS::RenameFile(const std::string& src, const std::string& dst, const IOOptions& o,
                             IODebugContext* dbg) {
  const std::string ps = Norm(src), pt = Norm(dst);
  std::lock_guard<std::mutex> l(mu_);
  IOStatus s = CheckLocked(kOpRename, pt);
  if (!s.ok()) return s;
  const bool replaced = Exists(pt);
  std::string old = replaced ? DurableBytesLocked(pt) : "";
  std::string moved = Parent(ps) == Parent(pt) ? "" : DurableBytesLocked(ps);
  s = target()->RenameFile(src, dst, o, dbg);
  if (!s.ok()) return s;
  if (Parent(ps) == Parent(pt)) {
    LogLocked(pt, DirOp{DirOp::kRename, Base(ps), Base(pt), replaced, std::move(old)});
  } else {  // not done by callvault or RocksDB; modelled as unlink + create
    LogLocked(ps, DirOp{DirOp::kDelete, Base(ps), "", true, std::move(moved)});
    LogLocked(pt, DirOp{DirOp::kCreate, Base(pt), "", false, ""});
  }
  auto it = files_.find(ps);
  if (it != files_.end()) {
    Node n = std::move(it->second);
    files_.erase(it);
    files_[pt] = std::move(n);
  } else {
    files_.erase(pt);
  }
  return s;
}

IOStatus FaultFS::LinkFile(const std::string& src, const std::string& dst, const IOOptions& o,
                           IODebugContext* dbg) {
  const std::string pt = Norm(dst);
  std::lock_guard<std::mutex> l(mu_);
  IOStatus s = CheckLocked(kOpCreate, pt);
  if (!s.ok()) return s;
  s = target()->LinkFile(src, dst, o, dbg);
  if (s.ok()) LogLocked(pt, DirOp{DirOp::kCreate, Base(pt), "", false, ""});
  return s;
}

std::unique_ptr<rocksdb::Env> FaultEnv(const std::shared_ptr<FaultFS>& fs) {
  return rocksdb::NewCompositeEnv(fs);
}

}  // namespace callvault::testutil
