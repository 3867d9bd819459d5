#include "engine/shard.h"

#include <malloc.h>
#include <sys/resource.h>

#include <rocksdb/cache.h>
#include <rocksdb/env.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/sst_file_reader.h>
#include <rocksdb/statistics.h>
#include <rocksdb/table.h>
#include <rocksdb/write_buffer_manager.h>

#include <algorithm>
#include <filesystem>
#include <charconv>
#include <chrono>
#include <set>
#include <sstream>
#include <thread>

#include "engine/close_mark.h"
#include "engine/fs_util.h"
#include "engine/info_log.h"
#include "engine/kill_point.h"
#include "engine/table_check.h"
#include "engine/wal_scan.h"

namespace callvault {

namespace {

// RocksDB's OPTIONS files (its OptionsFileName, TempOptionsFileName):
// OPTIONS-NNNNNN, written as OPTIONS-NNNNNN.dbtmp and renamed. Refused by
// CloseCheckFS and removed at a writable open unless kept (decision 0069).
constexpr std::string_view kOptionsFilePrefix = "OPTIONS-";
constexpr std::string_view kTempFileSuffix = ".dbtmp";

// MANIFEST edits are appended, and a new MANIFEST (the whole state) is
// started past this size and at every writable open. Every sync of a
// MANIFEST records its synced length in MANIFEST_SYNCED, so that an open
// can tell a torn, never-acknowledged tail (not read) from damage to what
// was synced (refused) (decision 0067, replacing 0025's MANIFEST per
// edit). 7.8's SetCurrentFile error path, met at every new MANIFEST, then
// deletes the MANIFEST CURRENT still names on a full disk;
// CloseCheckFS::HoldDeletions keeps it (decision 0025).
constexpr uint64_t kManifestRollBytes = uint64_t{8} << 20;

bool IsManifestWrite(const std::string& path) {
  const std::string base = path.substr(path.rfind('/') + 1);
  return base.rfind("MANIFEST-", 0) == 0 ||
         (base.size() > 6 && base.compare(base.size() - 6, 6, ".dbtmp") == 0);
}

std::string DirOf(const std::string& path);

class CloseCheckedFile : public rocksdb::FSWritableFileOwnerWrapper {
 public:
  CloseCheckedFile(std::unique_ptr<rocksdb::FSWritableFile> f, CloseCheckFS* fs, std::string path)
      : FSWritableFileOwnerWrapper(std::move(f)), fs_(fs), path_(std::move(path)) {}
  rocksdb::IOStatus Close(const rocksdb::IOOptions& o, rocksdb::IODebugContext* dbg) override {
    rocksdb::IOStatus s = target()->Close(o, dbg);
    // A table or blob file's close error goes to its job, as its write
    // errors do (Note): not the instance's (attack33b).
    if (!s.ok() && !table_or_blob_) fs_->RecordCloseError(path_, s);
    return s;
  }
  // Any failed write or sync: the instance's files may hold bytes that
  // were never durable, so no high-water mark describes them (decision
  // 0015; CloseCheckFS::TakeWriteFailure).
  rocksdb::IOStatus Append(const rocksdb::Slice& d, const rocksdb::IOOptions& o,
                           rocksdb::IODebugContext* dbg) override {
    return Note(target()->Append(d, o, dbg));
  }
  rocksdb::IOStatus Append(const rocksdb::Slice& d, const rocksdb::IOOptions& o,
                           const rocksdb::DataVerificationInfo& v,
                           rocksdb::IODebugContext* dbg) override {
    return Note(target()->Append(d, o, v, dbg));
  }
  rocksdb::IOStatus PositionedAppend(const rocksdb::Slice& d, uint64_t off,
                                     const rocksdb::IOOptions& o,
                                     rocksdb::IODebugContext* dbg) override {
    return Note(target()->PositionedAppend(d, off, o, dbg));
  }
  rocksdb::IOStatus PositionedAppend(const rocksdb::Slice& d, uint64_t off,
                                     const rocksdb::IOOptions& o,
                                     const rocksdb::DataVerificationInfo& v,
                                     rocksdb::IODebugContext* dbg) override {
    return Note(target()->PositionedAppend(d, off, o, v, dbg));
  }
  rocksdb::IOStatus Truncate(uint64_t size, const rocksdb::IOOptions& o,
                             rocksdb::IODebugContext* dbg) override {
    return Note(target()->Truncate(size, o, dbg));
  }
  rocksdb::IOStatus Flush(const rocksdb::IOOptions& o, rocksdb::IODebugContext* dbg) override {
    return Note(target()->Flush(o, dbg));
  }
  rocksdb::IOStatus Sync(const rocksdb::IOOptions& o, rocksdb::IODebugContext* dbg) override {
    return Note(Synced(target()->Sync(o, dbg), o, dbg));
  }
  rocksdb::IOStatus Fsync(const rocksdb::IOOptions& o, rocksdb::IODebugContext* dbg) override {
    return Note(Synced(target()->Fsync(o, dbg), o, dbg));
  }
  rocksdb::IOStatus RangeSync(uint64_t off, uint64_t n, const rocksdb::IOOptions& o,
                              rocksdb::IODebugContext* dbg) override {
    return Note(target()->RangeSync(off, n, o, dbg));
  }

 private:
  // A table or blob file's failed write is not recorded: a flush's fails
  // the flush, which fails the instance (ErrorFlag); a compaction's
  // output is deleted, never installed (decision 0083); a recording
  // writer's ingest file is refused to the writer. The mark describes the
  // WAL and the MANIFEST, which none of them touched.
  rocksdb::IOStatus Note(rocksdb::IOStatus s) {
    if (!s.ok() && !table_or_blob_) {
      fs_->RecordWriteFailure(DirOf(path_));
      if (IsManifestWrite(path_)) fs_->HoldDeletions(DirOf(path_));
    }
    return s;
  }
  // A MANIFEST's sync is done once its synced length is recorded.
  rocksdb::IOStatus Synced(rocksdb::IOStatus s, const rocksdb::IOOptions& o,
                           rocksdb::IODebugContext* dbg) {
    if (!s.ok() || !manifest_) return s;
    return fs_->RecordManifestSynced(path_, target()->GetFileSize(o, dbg));
  }
  CloseCheckFS* const fs_;  // outlives every file: owned by SharedResources
  const std::string path_;
  const bool manifest_ = ManifestNumber(path_.substr(path_.rfind('/') + 1)).has_value();
  const bool table_or_blob_ = tablecheck::IsTableFile(path_) || path_.ends_with(".blob");
};

// A MANIFEST as if it ended at `limit` bytes (CloseCheckFS::LimitManifestRead).
class LimitedSequentialFile : public rocksdb::FSSequentialFileOwnerWrapper {
 public:
  LimitedSequentialFile(std::unique_ptr<rocksdb::FSSequentialFile> f, uint64_t limit)
      : FSSequentialFileOwnerWrapper(std::move(f)), left_(limit) {}
  rocksdb::IOStatus Read(size_t n, const rocksdb::IOOptions& o, rocksdb::Slice* result,
                         char* scratch, rocksdb::IODebugContext* dbg) override {
    n = static_cast<size_t>(std::min<uint64_t>(n, left_));
    if (n == 0) {
      *result = rocksdb::Slice();
      return rocksdb::IOStatus::OK();
    }
    rocksdb::IOStatus s = target()->Read(n, o, result, scratch, dbg);
    if (s.ok()) left_ -= std::min<uint64_t>(left_, result->size());
    return s;
  }
  rocksdb::IOStatus Skip(uint64_t n) override {
    n = std::min(n, left_);
    left_ -= n;
    return target()->Skip(n);
  }
  rocksdb::IOStatus PositionedRead(uint64_t, size_t, const rocksdb::IOOptions&, rocksdb::Slice*,
                                   char*, rocksdb::IODebugContext*) override {
    return rocksdb::IOStatus::NotSupported("positioned read of a MANIFEST being cut");
  }

 private:
  uint64_t left_;
};

// One descriptor of `dir`, shared by every CheckedDirectory of it (see
// CloseCheckFS::NewDirectory): Close leaves it to the last one to go.
class CheckedDirectory : public rocksdb::FSDirectoryWrapper {
 public:
  CheckedDirectory(std::shared_ptr<rocksdb::FSDirectory> d, CloseCheckFS* fs, std::string dir)
      : FSDirectoryWrapper(d.get()), shared_(std::move(d)), fs_(fs), dir_(std::move(dir)) {}
  rocksdb::IOStatus Fsync(const rocksdb::IOOptions& o, rocksdb::IODebugContext* dbg) override {
    return Note(FSDirectoryWrapper::Fsync(o, dbg));
  }
  rocksdb::IOStatus FsyncWithDirOptions(const rocksdb::IOOptions& o, rocksdb::IODebugContext* dbg,
                                        const rocksdb::DirFsyncOptions& d) override {
    return Note(FSDirectoryWrapper::FsyncWithDirOptions(o, dbg, d));
  }
  // The descriptor is closed when its last user lets go of it.
  rocksdb::IOStatus Close(const rocksdb::IOOptions&, rocksdb::IODebugContext*) override {
    return rocksdb::IOStatus::OK();
  }

 private:
  rocksdb::IOStatus Note(rocksdb::IOStatus s) {
    if (!s.ok()) {
      fs_->RecordWriteFailure(dir_);
      fs_->HoldDeletions(dir_);  // (SetCurrentFile syncs the directory)
    }
    return s;
  }
  const std::shared_ptr<rocksdb::FSDirectory> shared_;
  CloseCheckFS* const fs_;
  const std::string dir_;
};

// An Env that is `base` in everything but its FileSystem.
class FileSystemEnv : public rocksdb::EnvWrapper {
 public:
  FileSystemEnv(rocksdb::Env* base, std::shared_ptr<rocksdb::FileSystem> fs) : EnvWrapper(base) {
    file_system_ = std::move(fs);
  }
  // 7.8 deletes obsolete MANIFESTs through the Env (DeleteObsoleteFileImpl),
  // which EnvWrapper hands to `base`: through the FileSystem instead, so
  // that CloseCheckFS::HoldDeletions sees it (decision 0025).
  rocksdb::Status DeleteFile(const std::string& f) override {
    return file_system_->DeleteFile(f, rocksdb::IOOptions(), nullptr);
  }
  const char* Name() const override { return "CallvaultFileSystemEnv"; }
};

// A WAL file's repaired content, read from memory.
class MemorySequentialFile : public rocksdb::FSSequentialFile {
 public:
  explicit MemorySequentialFile(std::shared_ptr<const std::string> data) : data_(std::move(data)) {}
  rocksdb::IOStatus Read(size_t n, const rocksdb::IOOptions&, rocksdb::Slice* result, char* scratch,
                         rocksdb::IODebugContext*) override {
    n = std::min(n, data_->size() - pos_);
    std::copy_n(data_->data() + pos_, n, scratch);
    *result = rocksdb::Slice(scratch, n);
    pos_ += n;
    return rocksdb::IOStatus::OK();
  }
  rocksdb::IOStatus Skip(uint64_t n) override {
    pos_ += static_cast<size_t>(std::min<uint64_t>(n, data_->size() - pos_));
    return rocksdb::IOStatus::OK();
  }

 private:
  const std::shared_ptr<const std::string> data_;
  size_t pos_ = 0;
};

// A read-only open's view of a shard whose WAL files are damaged
// (docs/decisions/0020): each damaged WAL file reads as its repaired
// content (walscan's `repaired`: every whole record kept, only the damaged
// ones left out), held in memory; every other file as it is on disk.
// RocksDB 7.8's recovery cannot skip a damaged fragment of a multi-block
// record by itself: kSkipAnyCorruptedRecords drops it but leaves it in the
// reader's record-checksum state, and the next fragmented record then fails
// the whole open ("Write batch content corrupted."). A writable open
// repairs the file on disk instead; a read-only one may not write.
class RepairedWalFS : public rocksdb::FileSystemWrapper {
 public:
  RepairedWalFS(const std::shared_ptr<rocksdb::FileSystem>& base, const std::string& dir,
                std::vector<std::pair<std::string, std::string>> repaired)
      : FileSystemWrapper(base) {
    for (auto& [name, data] : repaired) {
      files_[dir + "/" + name] = std::make_shared<const std::string>(std::move(data));
    }
  }
  const char* Name() const override { return "CallvaultRepairedWalFS"; }
  rocksdb::IOStatus NewSequentialFile(const std::string& f, const rocksdb::FileOptions& o,
                                      std::unique_ptr<rocksdb::FSSequentialFile>* r,
                                      rocksdb::IODebugContext* dbg) override {
    auto it = files_.find(f);
    if (it == files_.end()) return target()->NewSequentialFile(f, o, r, dbg);
    r->reset(new MemorySequentialFile(it->second));
    return rocksdb::IOStatus::OK();
  }
  rocksdb::IOStatus GetFileSize(const std::string& f, const rocksdb::IOOptions& o, uint64_t* size,
                                rocksdb::IODebugContext* dbg) override {
    auto it = files_.find(f);
    if (it == files_.end()) return target()->GetFileSize(f, o, size, dbg);
    *size = it->second->size();
    return rocksdb::IOStatus::OK();
  }

 private:
  std::map<std::string, std::shared_ptr<const std::string>> files_;  // by path; fixed
};

std::string DirOf(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

bool IsWalName(const std::string& name) {
  return name.size() > 4 && name.compare(name.size() - 4, 4, ".log") == 0 &&
         name.find_first_not_of("0123456789") == name.size() - 4;
}

// `NNNNNN.log.tmp`, `NNNNNN.log.damage.tmp`, `NNNNNN.log.damaged.tmp`:
// the names fsutil::AtomicWrite gives its temp files in a WAL repair.
bool IsRepairTempName(const std::string& name) {
  constexpr std::string_view kTmp = ".tmp";
  if (name.size() <= kTmp.size() ||
      name.compare(name.size() - kTmp.size(), kTmp.size(), kTmp) != 0) {
    return false;
  }
  std::string base = name.substr(0, name.size() - kTmp.size());
  for (std::string_view suffix : {walscan::kEvidenceSuffix, walscan::kDamageRecordSuffix}) {
    if (base.size() > suffix.size() &&
        base.compare(base.size() - suffix.size(), suffix.size(), suffix) == 0) {
      base.resize(base.size() - suffix.size());
      break;
    }
  }
  return IsWalName(base);
}

// The table files of recordings being written (Shard::ingest_dir,
// decision 0055): whatever is there at open is a crash's leftover or
// planted, and a writer ingests only the file it made, by its name: every
// entry is removed, unread (symlinks unlinked, not followed; a
// subdirectory with what is in it). A symlink in the directory's own place
// is unlinked too: a writer makes a real directory there.
Status SweepIngestDir(rocksdb::FileSystem* fs, const std::string& dir) {
  namespace sfs = std::filesystem;
  std::error_code ec;
  const sfs::file_status st = sfs::symlink_status(dir, ec);
  if (ec || st.type() == sfs::file_type::not_found) return Status::OK();
  if (st.type() != sfs::file_type::directory) {
    CV_RETURN_IF_ERROR(fsutil::FromIO(fs->DeleteFile(dir, rocksdb::IOOptions(), nullptr),
                                      "remove a non-directory in the recording ingest directory's place"));
    return Status::OK();
  }
  std::vector<std::string> children;
  CV_RETURN_IF_ERROR(fsutil::FromIO(fs->GetChildren(dir, rocksdb::IOOptions(), &children, nullptr),
                                    "list the recording ingest directory"));
  for (const auto& name : children) {
    if (name == "." || name == "..") continue;
    const std::string p = dir + "/" + name;
    const sfs::file_status cst = sfs::symlink_status(p, ec);
    if (!ec && cst.type() == sfs::file_type::directory) {
      sfs::remove_all(p, ec);
      if (ec) return Status::IOError("remove " + p + ": " + ec.message());
      continue;
    }
    CV_RETURN_IF_ERROR(fsutil::FromIO(fs->DeleteFile(p, rocksdb::IOOptions(), nullptr),
                                      "remove a leftover recording table file"));
  }
  return Status::OK();
}

Status RemoveRepairTempFiles(rocksdb::FileSystem* fs, const std::string& dir) {
  std::vector<std::string> children;
  rocksdb::IOStatus ls = fs->GetChildren(dir, rocksdb::IOOptions(), &children, nullptr);
  if (ls.IsNotFound() || ls.IsPathNotFound()) return Status::OK();
  CV_RETURN_IF_ERROR(fsutil::FromIO(ls, "list shard directory"));
  bool removed = false;
  for (const auto& name : children) {
    if (!IsRepairTempName(name)) continue;
    // AtomicWrite leaves files only: a directory with such a name (or a
    // symlink to one) is someone else's, left alone rather than refusing
    // the open (unlink: EISDIR). A symlink to a file is unlinked, not followed.
    bool is_dir = false;
    if (fs->IsDirectory(dir + "/" + name, rocksdb::IOOptions(), &is_dir, nullptr).ok() && is_dir) {
      continue;
    }
    CV_RETURN_IF_ERROR(fsutil::Remove(fs, dir, name, /*sync_dir=*/false));
    removed = true;
  }
  return removed ? fsutil::SyncDir(fs, dir) : Status::OK();
}

// An existing shard that will not open (a damaged or missing CURRENT or
// MANIFEST): damage to restore, never "not found" (an operator told "no
// such store" may init over it). Other codes (kIOError, kCorruption) stay.
Status Damaged(uint32_t index, Status s) {
  if (s.code() != Code::kNotFound && s.code() != Code::kInvalidArgument) return s;
  return Status::Corruption("shard " + std::to_string(index) + " damaged: " + s.message() +
                            "; restore the store from a backup (docs/operations.md)");
}

}  // namespace

void RemoveStaleOptionsFiles(const SharedResources& res, const std::string& dir,
                             rocksdb::Logger* info_log) {
  if (!res.close_check->RefusesOptionsFiles()) return;
  rocksdb::FileSystem* fs = res.env->GetFileSystem().get();
  std::vector<std::string> children;
  if (!fs->GetChildren(dir, rocksdb::IOOptions(), &children, nullptr).ok()) return;
  for (const auto& name : children) {
    if (name.rfind(kOptionsFilePrefix, 0) != 0) continue;
    bool is_dir = false;
    if (fs->IsDirectory(dir + "/" + name, rocksdb::IOOptions(), &is_dir, nullptr).ok() && is_dir) {
      continue;
    }
    Status removed = fsutil::Remove(fs, dir, name, /*sync_dir=*/false);
    if (!removed.ok()) {
      rocksdb::Log(rocksdb::InfoLogLevel::WARN_LEVEL, info_log,
                   "could not remove a stale RocksDB OPTIONS file, %s (the store does not read "
                   "it; `ldb` would: remove it by hand): %s",
                   name.c_str(), removed.ToString().c_str());
    }
  }
}

// Only while CURRENT names the mark's MANIFEST: no open has run since the
// close that wrote it, so nothing may have shrunk or gone. A failed read is
// kIOError (the open fails; nothing is marked).
Result<std::string> CheckMarkFiles(rocksdb::FileSystem* fs, const std::string& dir,
                                   const walscan::ManifestInfo& current, const ShardMark& m,
                                   std::string* replaced) {
  // A mark made from the WAL ledger (decision 0040): valid at every open,
  // for its WAL files only; one that RocksDB deleted as obsolete is skipped.
  const bool ledger = m.manifest == kLedgerManifest;
  if (m.manifest.empty() || (!ledger && current.name != m.manifest)) return std::string();
  // false: the file is gone.
  auto size_of = [&](const std::string& name, uint64_t* size) -> Result<bool> {
    rocksdb::IOStatus s = fs->GetFileSize(dir + "/" + name, rocksdb::IOOptions(), size, nullptr);
    if (s.IsNotFound() || s.IsPathNotFound()) return false;
    CV_RETURN_IF_ERROR(fsutil::FromIO(s, "shard mark: size of " + name));
    return true;
  };
  uint64_t size = 0;
  bool there = false;
  if (ledger) {
    std::optional<walscan::ScanResult> scanned;  // the directory's, when a digest mismatches
    for (const auto& listed : m.wals) {
      // (Not a structured binding: the lambda below uses them, which
      // clang 14 refuses.)
      const std::string& name = listed.first;
      const uint64_t want = listed.second;
      // Its number, against the replay floor (a name that is not a WAL's:
      // none, never below the floor, never "needed").
      uint64_t number = 0;
      const bool numbered =
          IsWalName(name) &&
          std::from_chars(name.data(), name.data() + name.size() - 4, number).ec == std::errc();
      CV_ASSIGN_OR_RETURN(there, size_of(name, &size));
      // A repair's kept copy (the file as it was before a repair rewrote
      // it), counted only beside its damage record, which the repair
      // writes first and removes last: a stray copy proves nothing.
      const std::string copy_name = name + std::string(walscan::kEvidenceSuffix);
      auto kept_copy = [&](uint64_t* kept) -> Result<bool> {
        uint64_t record = 0;
        CV_ASSIGN_OR_RETURN(bool copy, size_of(copy_name, kept));
        CV_ASSIGN_OR_RETURN(bool recorded,
                            size_of(name + std::string(walscan::kDamageRecordSuffix), &record));
        return copy && recorded && *kept >= want;
      };
      uint64_t kept = 0;
      if (there && size >= want) {
        // As long as listed; and the same file (decision 0050): another
        // file of that length put in its place (another shard's WAL of the
        // same sessions, whose sequence numbers line up) would replay
        // another history without a gap, and an end overwritten would read
        // as a torn tail.
        auto e = m.edges.find(name);
        if (e == m.edges.end()) continue;
        auto digest = ReadWalEdgeDigest(fs, dir + "/" + name, want);
        if (digest.status().code() == Code::kNotFound) {
          there = false;  // deleted since its size was read: the rule below
        } else {
          CV_RETURN_IF_ERROR(digest.status());
          if (*digest == e->second) continue;
          CV_ASSIGN_OR_RETURN(bool copy, kept_copy(&kept));
          if (copy) {
            CV_ASSIGN_OR_RETURN(std::string k, ReadWalEdgeDigest(fs, dir + "/" + copy_name, want));
            if (k == e->second) continue;
          }
          // A WAL recovery does not replay (below a floor read whole) is
          // not checked: what it holds is in table files.
          if (current.replay_floor_read && numbered && number < current.replay_floor) continue;
          // Damaged bytes, or another file? If the WAL scan of the
          // directory (the one the open runs next) finds damage in this
          // file, it reports it, family by family, and repairs it. Otherwise
          // the bytes the close left changed and the scan reads the file
          // as whole records, or as records and a torn tail: another file
          // put in its place (another shard's WAL, padded or not), or its
          // end overwritten. Either way it must not be replayed.
          // (Scanned once per check, however many files mismatch.)
          if (!scanned) {
            CV_ASSIGN_OR_RETURN(scanned, walscan::ScanDirectory(fs, dir, /*repair=*/false,
                                                                /*in_memory=*/false, &current));
          }
          bool damaged = false;
          for (const auto& d : scanned->damage) damaged = damaged || d.file == name;
          if (damaged) continue;
          const std::string why = "WAL file " + name +
                                  " is not the file the last clean close left: its first or last "
                                  "bytes differ and no record in it fails its checksum (by " +
                                  kWalLedgerFile +
                                  "; another file put in its place, or its end overwritten)";
          if (replaced == nullptr) return why;
          if (replaced->empty()) *replaced = why;
          continue;
        }
      }
      if (!there) {
        // A listed WAL that is gone (decision 0041): RocksDB 7.8.3 deletes
        // a WAL only when its number is below min_log_number_to_keep,
        // which it raises in memory only after the MANIFEST edit carrying
        // it is synced, and which never exceeds the smallest log number of
        // a live family; the replay floor (the larger of the two, as the
        // MANIFEST says now) is therefore above every WAL RocksDB ever
        // deleted. One at or above it is a WAL recovery would replay,
        // deleted by someone else. Only a floor read whole counts
        // (decision 0050): one from the edits before the first that did
        // not decode is lower than recovery's, and a WAL between the two
        // was deleted by RocksDB; a floor of 0 read whole counts (an
        // instance that never flushed deleted no WAL: every listed one is
        // needed).
        if (current.present && current.replay_floor_read && numbered &&
            number >= current.replay_floor) {
          return "WAL file " + name + " is gone, and recovery starts at WAL " +
                 std::to_string(current.replay_floor) + " (by " + kWalLedgerFile +
                 "; deleted while still needed)";
        }
        continue;
      }
      CV_ASSIGN_OR_RETURN(bool copy, kept_copy(&kept));
      if (copy) continue;
      return "WAL file " + name + " is " + std::to_string(size) + " bytes, " +
             std::to_string(want) + " at the last clean close (by " +
             kWalLedgerFile + "; truncated)";
    }
    return std::string();
  }
  CV_RETURN_IF_ERROR(current.read_error);
  if (!current.present) return m.manifest + " is gone";
  size = current.data.size();
  if (size < m.manifest_size) {
    return m.manifest + " is " + std::to_string(size) + " bytes, " +
           std::to_string(m.manifest_size) + " at the last close (truncated: edits lost)";
  }
  // Every edit the close left must read whole: RocksDB takes a damaged
  // final edit for a torn tail and drops it (and with it, say, a flush:
  // its table file unreferenced, the WAL it replaced deleted).
  walscan::WalFile mf;
  mf.name = m.manifest;
  mf.data = current.data.substr(0, m.manifest_size);
  const walscan::ScanResult edits = walscan::Scan({mf});
  if (!edits.damage.empty() || edits.tail_drops > 0) {
    return m.manifest + " has a damaged record within the " + std::to_string(m.manifest_size) +
           " bytes of the last close (edits lost)";
  }
  for (const auto& [name, want] : m.wals) {
    CV_ASSIGN_OR_RETURN(there, size_of(name, &size));
    // A repair an earlier open began and did not record (decision 0019):
    // the WAL was rewritten without its damaged records, and the kept copy
    // holds what the close left. The WAL scan reports that damage from the
    // copy, with the families of the records lost; the shorter WAL is not
    // a loss of its own (it would mark every tenant of the shard).
    uint64_t kept = 0;
    if (there && size < want) {
      CV_ASSIGN_OR_RETURN(bool copy,
                          size_of(name + std::string(walscan::kEvidenceSuffix), &kept));
      if (copy && kept >= want) continue;
    }
    if (!there) return "WAL file " + name + " is gone";
    if (size < want) {
      return "WAL file " + name + " is " + std::to_string(size) + " bytes, " +
             std::to_string(want) + " at the last close (truncated)";
    }
  }
  return std::string();
}

bool TakeMark(rocksdb::FileSystem* fs, const std::string& dir, ShardMark* out) {
  ShardMark m;
  const walscan::ManifestInfo manifest = walscan::ReadCurrentManifest(fs, dir);
  m.manifest = manifest.name;
  m.manifest_size = manifest.data.size();
  std::vector<std::string> children;
  bool ok = manifest.present && fs->GetChildren(dir, rocksdb::IOOptions(), &children, nullptr).ok();
  // Every non-empty WAL recovery replays (at or above the MANIFEST's
  // replay floor) with its size, and the highest sequence number of a
  // record in them (walscan, the same reading the next open's scan does).
  const uint64_t floor = manifest.replay_floor;
  std::vector<walscan::WalFile> wals;
  for (const auto& c : children) {
    if (!ok || !IsWalName(c)) continue;
    walscan::WalFile f;
    for (size_t k = 0; k + 4 < c.size(); ++k) f.number = f.number * 10 + static_cast<uint64_t>(c[k] - '0');
    if (f.number < floor) continue;
    f.name = c;
    ok = rocksdb::ReadFileToString(fs, dir + "/" + c, &f.data).ok();
    if (!f.data.empty()) wals.push_back(std::move(f));
  }
  std::sort(wals.begin(), wals.end(),
            [](const walscan::WalFile& a, const walscan::WalFile& b) { return a.number < b.number; });
  walscan::ScanResult scan = walscan::Scan(wals);
  if (!ok || !scan.damage.empty()) return false;
  m.sequence = scan.last_sequence;
  for (const auto& f : wals) {
    m.wals.emplace_back(f.name, f.data.size());
    m.edges[f.name] = WalEdgeDigest(f.data);
  }
  *out = std::move(m);
  return true;
}

std::string ShardMark::Encode() const {
  std::string s = "v1 " + std::to_string(sequence) + " " + (manifest.empty() ? "-" : manifest) +
                  " " + std::to_string(manifest_size);
  for (const auto& [name, size] : wals) s += " " + name + " " + std::to_string(size);
  return s;
}

bool ShardMark::Decode(std::string_view text, ShardMark* out) {
  std::istringstream in{std::string(text)};
  std::string version, manifest;
  ShardMark m;
  if (!(in >> version >> m.sequence >> manifest >> m.manifest_size) || version != "v1") return false;
  if (manifest != "-") m.manifest = manifest;
  std::string name;
  uint64_t size = 0;
  while (in >> name) {
    if (!(in >> size) || !IsWalName(name)) return false;
    m.wals.emplace_back(name, size);
  }
  if (!in.eof()) return false;
  *out = std::move(m);
  return true;
}

rocksdb::IOStatus CloseCheckFS::NewWritableFile(const std::string& f, const rocksdb::FileOptions& o,
                                                std::unique_ptr<rocksdb::FSWritableFile>* r,
                                                rocksdb::IODebugContext* dbg) {
  // RocksDB's TempOptionsFileName: <dir>/OPTIONS-NNNNNN.dbtmp. The file's own
  // name only: CURRENT and IDENTITY go through <dir>/NNNNNN.dbtmp too, and a
  // directory on the store's path may be called OPTIONS-something.
  const std::string_view base = std::string_view(f).substr(f.rfind('/') + 1);
  if (refuse_options_files_ && base.size() > kOptionsFilePrefix.size() + kTempFileSuffix.size() &&
      base.rfind(kOptionsFilePrefix, 0) == 0 &&
      base.compare(base.size() - kTempFileSuffix.size(), kTempFileSuffix.size(), kTempFileSuffix) == 0) {
    return rocksdb::IOStatus::NotSupported(std::string(kOptionsFileRefused));
  }
  rocksdb::IOStatus s = target()->NewWritableFile(f, o, r, dbg);
  if (s.ok()) r->reset(new CloseCheckedFile(std::move(*r), this, f));
  return s;
}

rocksdb::IOStatus CloseCheckFS::NewSequentialFile(const std::string& f,
                                                  const rocksdb::FileOptions& o,
                                                  std::unique_ptr<rocksdb::FSSequentialFile>* r,
                                                  rocksdb::IODebugContext* dbg) {
  rocksdb::IOStatus s = target()->NewSequentialFile(f, o, r, dbg);
  if (!s.ok()) return s;
  std::lock_guard<std::mutex> l(mu_);
  auto it = read_limits_.find(f);
  if (it != read_limits_.end()) r->reset(new LimitedSequentialFile(std::move(*r), it->second));
  return s;
}

rocksdb::IOStatus CloseCheckFS::RecordManifestSynced(const std::string& path, uint64_t synced) {
  const auto number = ManifestNumber(path.substr(path.rfind('/') + 1));
  if (!number) return rocksdb::IOStatus::OK();
  return manifest_marks_.Record(target(), DirOf(path), *number, synced);
}

void CloseCheckFS::LimitManifestRead(const std::string& path, uint64_t bytes) {
  std::lock_guard<std::mutex> l(mu_);
  read_limits_[path] = bytes;
}

void CloseCheckFS::ClearManifestLimit(const std::string& path) {
  std::lock_guard<std::mutex> l(mu_);
  read_limits_.erase(path);
}

namespace {

// The synced length MANIFEST_SYNCED records for the MANIFEST `m` is, or
// nullopt.
std::optional<uint64_t> SyncedLength(const std::string& mark_file, const walscan::ManifestInfo& m) {
  if (!m.present) return std::nullopt;
  const auto number = ManifestNumber(m.name);
  if (!number) return std::nullopt;
  return SyncedManifestBytes(mark_file, *number);
}

// ManifestSyncedLoss for a MANIFEST synced up to `synced` bytes.
std::string SyncedLoss(const walscan::ManifestInfo& m, uint64_t synced) {
  const uint64_t whole = std::min(m.readable_bytes, m.size);
  if (whole >= synced) return std::string();
  return m.name + " reads whole only to byte " + std::to_string(whole) + " of the " +
         std::to_string(synced) + " its " + kManifestMarkFile + " records as synced (" +
         (m.size < synced ? "cut" : "damaged") + ": acknowledged edits lost)";
}

}  // namespace

std::string ManifestSyncedLoss(const std::string& mark_file, const walscan::ManifestInfo& m) {
  const std::optional<uint64_t> synced = SyncedLength(mark_file, m);
  return synced ? SyncedLoss(m, *synced) : std::string();
}

ManifestTailCut::ManifestTailCut(CloseCheckFS* fs, const std::string& dir,
                                 const std::string& mark_file, const walscan::ManifestInfo& m)
    : fs_(fs) {
  const std::optional<uint64_t> synced = SyncedLength(mark_file, m);
  if (!synced) return;  // no mark: RocksDB decides
  lost_ = SyncedLoss(m, *synced);
  if (!lost_.empty()) return;
  if (m.readable_bytes >= m.size) return;  // every record reads
  path_ = dir + "/" + m.name;
  fs_->LimitManifestRead(path_, m.readable_bytes);
  what_ = m.name + ": " + std::to_string(m.size - m.readable_bytes) +
          " byte(s) after its last whole record (at " + std::to_string(m.readable_bytes) + ", " +
          std::to_string(*synced) +
          " synced) not read: a MANIFEST write a crash tore before it was synced (never "
          "acknowledged; decision 0067)";
}

ManifestTailCut::~ManifestTailCut() {
  if (!path_.empty()) fs_->ClearManifestLimit(path_);
}

rocksdb::IOStatus CloseCheckFS::ReopenWritableFile(const std::string& f,
                                                   const rocksdb::FileOptions& o,
                                                   std::unique_ptr<rocksdb::FSWritableFile>* r,
                                                   rocksdb::IODebugContext* dbg) {
  rocksdb::IOStatus s = target()->ReopenWritableFile(f, o, r, dbg);
  if (s.ok()) r->reset(new CloseCheckedFile(std::move(*r), this, f));
  return s;
}

rocksdb::IOStatus CloseCheckFS::NewRandomAccessFile(const std::string& f,
                                                    const rocksdb::FileOptions& o,
                                                    std::unique_ptr<rocksdb::FSRandomAccessFile>* r,
                                                    rocksdb::IODebugContext* dbg) {
  rocksdb::IOStatus s = target()->NewRandomAccessFile(f, o, r, dbg);
  // Direct reads need aligned buffers; this store never asks for them.
  if (!s.ok() || o.use_direct_reads || !tablecheck::IsTableFile(f)) return s;
  uint64_t size = 0;
  s = target()->GetFileSize(f, o.io_options, &size, dbg);
  if (s.ok()) s = tablecheck::CheckTableFile(r->get(), size, f);
  if (!s.ok()) r->reset();
  return s;
}

rocksdb::IOStatus CloseCheckFS::NewDirectory(const std::string& name, const rocksdb::IOOptions& o,
                                             std::unique_ptr<rocksdb::FSDirectory>* r,
                                             rocksdb::IODebugContext* dbg) {
  std::string dir = name;
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  std::lock_guard<std::mutex> l(dirs_mu_);
  std::shared_ptr<rocksdb::FSDirectory> shared = dirs_[dir].lock();
  if (!shared) {
    std::unique_ptr<rocksdb::FSDirectory> opened;
    rocksdb::IOStatus s = target()->NewDirectory(name, o, &opened, dbg);
    if (!s.ok()) return s;
    shared = std::move(opened);
    dirs_[dir] = shared;
  }
  r->reset(new CheckedDirectory(std::move(shared), this, dir));
  return rocksdb::IOStatus::OK();
}

rocksdb::IOStatus CloseCheckFS::RenameFile(const std::string& src, const std::string& target,
                                           const rocksdb::IOOptions& o,
                                           rocksdb::IODebugContext* dbg) {
  rocksdb::IOStatus s = FileSystemWrapper::RenameFile(src, target, o, dbg);
  if (!s.ok()) {
    RecordWriteFailure(DirOf(target));
    if (target.size() >= 8 && target.compare(target.size() - 8, 8, "/CURRENT") == 0) {
      HoldDeletions(DirOf(target));
    }
  }
  return s;
}

rocksdb::IOStatus CloseCheckFS::DeleteFile(const std::string& f, const rocksdb::IOOptions& o,
                                           rocksdb::IODebugContext* dbg) {
  const std::string base = f.substr(f.rfind('/') + 1);
  auto ends = [&base](std::string_view tail) {
    return base.size() > tail.size() &&
           base.compare(base.size() - tail.size(), tail.size(), tail) == 0;
  };
  const bool rocksdb_file = base.rfind("MANIFEST-", 0) == 0 || ends(".log") || ends(".sst") ||
                            ends(".blob");
  if (rocksdb_file && DeletionsHeld(DirOf(f))) {
    return rocksdb::IOStatus::IOError(
        "file deletion held until the instance is reopened: a MANIFEST write failed "
        "(decision 0025)");
  }
  return FileSystemWrapper::DeleteFile(f, o, dbg);
}

void CloseCheckFS::HoldDeletions(const std::string& dir) {
  std::lock_guard<std::mutex> l(mu_);
  hold_deletes_.insert(dir);
}

void CloseCheckFS::ReleaseDeletions(const std::string& dir) {
  std::lock_guard<std::mutex> l(mu_);
  hold_deletes_.erase(dir);
}

bool CloseCheckFS::DeletionsHeld(const std::string& dir) {
  std::lock_guard<std::mutex> l(mu_);
  return hold_deletes_.count(dir) > 0;
}

void CloseCheckFS::RecordWriteFailure(const std::string& dir) {
  std::lock_guard<std::mutex> l(mu_);
  write_failed_.insert(dir);
}

bool CloseCheckFS::TakeWriteFailure(const std::string& dir) {
  std::lock_guard<std::mutex> l(mu_);
  return write_failed_.erase(dir) > 0;
}

bool CloseCheckFS::WriteFailed(const std::string& dir) {
  std::lock_guard<std::mutex> l(mu_);
  return write_failed_.count(dir) > 0;
}

void CloseCheckFS::RecordCloseError(const std::string& path, const rocksdb::IOStatus& s) {
  std::lock_guard<std::mutex> l(mu_);
  failed_.emplace(DirOf(path), fsutil::FromIO(s, "close " + path));  // keeps the first
}

Status CloseCheckFS::TakeCloseError(const std::string& dir) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = failed_.find(dir);
  if (it == failed_.end()) return Status::OK();
  Status s = std::move(it->second);
  failed_.erase(it);
  return s;
}

std::shared_ptr<rocksdb::Logger> SharedResources::InfoLog(const std::string& dir,
                                                         const std::string& source,
                                                         bool read_only) const {
  if (logger) return NewHookInfoLog(logger, "rocksdb:" + source);
  return read_only ? NewDiscardingInfoLog() : NewInfoLog(dir);
}

uint64_t RaiseFileLimit(std::string* raised) {
  raised->clear();
  struct rlimit r {};
  if (::getrlimit(RLIMIT_NOFILE, &r) != 0) return 1024;  // the usual default, assumed
  if (r.rlim_cur != RLIM_INFINITY && (r.rlim_max == RLIM_INFINITY || r.rlim_cur < r.rlim_max)) {
    struct rlimit up = r;
    up.rlim_cur = r.rlim_max;
    // Linux caps an infinite hard limit at fs.nr_open: setrlimit then
    // fails, and the soft limit stays as it was.
    if (::setrlimit(RLIMIT_NOFILE, &up) == 0) {
      *raised = "RLIMIT_NOFILE soft limit raised from " + std::to_string(r.rlim_cur) +
                " to the hard limit " +
                (r.rlim_max == RLIM_INFINITY ? std::string("(unlimited)") : std::to_string(r.rlim_max));
      r = up;
    }
  }
  if (r.rlim_cur == RLIM_INFINITY) return uint64_t{1} << 30;
  return r.rlim_cur;
}

uint64_t FileReserve(uint64_t limit) { return std::max<uint64_t>(64, limit / 8); }

int OpenFilesPerInstance(uint64_t limit, uint32_t shards) {
  const uint64_t reserve = FileReserve(limit);
  if (limit <= reserve) return 0;
  const uint64_t each = (limit - reserve) / (uint64_t{shards} + 1);  // + the metadata instance
  if (each < static_cast<uint64_t>(kMinOpenFilesPerInstance)) return 0;
  return static_cast<int>(std::min<uint64_t>(each, kMaxOpenFilesPerInstance));
}

uint64_t WalCapBytes(uint64_t write_buffer_budget, uint32_t shards) {
  return std::max<uint64_t>(128u << 20, write_buffer_budget / std::max<uint32_t>(shards, 1));
}

int FlushThreads(const Options& options) {
  if (options.flush_threads > 0) return options.flush_threads;
  // Two at least: with the MANIFEST edit appended (decision 0067) a flush
  // mostly waits on its fsyncs, and a second thread flushes another shard
  // meanwhile (decision 0068); a flush that hangs no longer holds them all.
  return std::max(2, options.background_threads / 2);
}

size_t FlushBacklogLimit(size_t option, size_t budget, uint32_t shards) {
  if (option > 0) return option;
  return shards <= 1 ? budget : budget / 2;
}

uint32_t MaxShardsForLimit(uint64_t limit) {
  const uint64_t reserve = FileReserve(limit);
  if (limit <= reserve) return 0;
  const uint64_t instances = (limit - reserve) / kMinOpenFilesPerInstance;
  return instances == 0 ? 0 : static_cast<uint32_t>(std::min<uint64_t>(instances - 1, 100000));
}

uint64_t FileLimitNeeded(uint32_t shards) {
  const uint64_t tables = (uint64_t{shards} + 1) * kMinOpenFilesPerInstance;
  // FileReserve: 64 up to a limit of 512, an eighth above; the estimate
  // may be a few above the least (integer division).
  uint64_t need = std::max(tables + 64, (tables * 8 + 6) / 7);
  while (need > tables && OpenFilesPerInstance(need - 1, shards) > 0) --need;
  return need;
}

void HeapTrimmer::MaybeTrim() {
#if defined(__GLIBC__)
  if (step_ == 0) return;
  const size_t now = wbm_->memory_usage();
  size_t high = high_.load();
  while (now > high && !high_.compare_exchange_weak(high, now)) {
  }
  high = high_.load();  // a trim may have lowered it meanwhile
  if (high <= now || high - now < step_) return;
  // Not while writes keep the memtables near their budget: trims there
  // slowed the writers (decision 0060: at 2,000 tenants the ingest's
  // second round fell from 727 to 389 calls/s, batch p99 52 -> 80 ms), and
  // the pages handed back would be taken again at once.
  if (now > wbm_->buffer_size() / 4) return;
  bool idle = false;
  if (!trimming_.compare_exchange_strong(idle, true)) return;  // another flush thread trims
  high_.store(now);
  malloc_trim(0);
  trims_.fetch_add(1, std::memory_order_relaxed);
  trimming_.store(false);
#endif
}

namespace {
int64_t SteadyMicros(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
}
}  // namespace

void FlushBacklog::Wait() {
  uint64_t low = backlog();
  if (low <= limit()) {
    if (pass_until_.load(std::memory_order_relaxed) != 0) pass_until_.store(0, std::memory_order_relaxed);
    return;
  }
  const auto start = std::chrono::steady_clock::now();
  if (SteadyMicros(start) < pass_until_.load(std::memory_order_relaxed)) return;
  // Progress is the backlog falling to a new low: flushes of other shards
  // complete while a failed shard's memtables stay, and a reader's pinned
  // ones too, so completions alone say nothing.
  auto low_at = start;
  const auto cap = start + 10 * patience_;
  bool gave_up = false;
  {
    std::unique_lock<std::mutex> l(mu_);
    for (uint64_t now_backlog = low; now_backlog > limit(); now_backlog = backlog()) {
      const auto now = std::chrono::steady_clock::now();
      if (now_backlog < low) {
        low = now_backlog;
        low_at = now;
      }
      if (now - low_at >= patience_ || now >= cap) {
        gave_up = true;
        break;
      }
      // A flushed memtable is freed after its completion is reported: poll
      // as well as wait for the report.
      cv_.wait_for(l, std::chrono::milliseconds(2));
    }
  }
  const auto end = std::chrono::steady_clock::now();
  if (gave_up) {
    pass_until_.store(SteadyMicros(end + rearm_), std::memory_order_relaxed);
    gave_up_.fetch_add(1, std::memory_order_relaxed);
  }
  waits_.fetch_add(1, std::memory_order_relaxed);
  wait_micros_.fetch_add(
      static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(end - start).count()),
      std::memory_order_relaxed);
}

void FlushBacklog::OnFlushCompleted(rocksdb::DB*, const rocksdb::FlushJobInfo&) {
  { std::lock_guard<std::mutex> l(mu_); }  // a waiter is waiting on cv_, or sees the change
  cv_.notify_all();
}

void SharedResources::AddFailedInstance(rocksdb::DB* db, bool hard) const {
  std::lock_guard<std::mutex> l(failed_mu);
  auto [it, added] = failed_instances.emplace(db, FailedInstance{});
  it->second.hard = it->second.hard || hard;
  if (added) ++failed_instance_count;
  failed_backlog_at.store(0, std::memory_order_relaxed);
}

void SharedResources::RemoveFailedInstance(rocksdb::DB* db) const {
  std::lock_guard<std::mutex> l(failed_mu);
  if (failed_instances.erase(db) > 0) --failed_instance_count;
  failed_backlog_at.store(0, std::memory_order_relaxed);
}

uint64_t SharedResources::FailedInstancesBacklog() const {
  if (failed_instance_count.load(std::memory_order_relaxed) == 0) return 0;
  const int64_t now = SteadyMicros(std::chrono::steady_clock::now());
  const int64_t at = failed_backlog_at.load(std::memory_order_relaxed);
  if (at != 0 && now - at < 100000) return failed_backlog.load(std::memory_order_relaxed);
  // One writer recomputes; the others take the last figure meanwhile.
  std::unique_lock<std::mutex> l(failed_mu, std::try_to_lock);
  if (!l.owns_lock()) return failed_backlog.load(std::memory_order_relaxed);
  uint64_t total = 0;
  for (auto& [db, f] : failed_instances) {
    // Every memtable less the mutable ones: queued (their flush failed and
    // is not retried: ErrorFlag turns RocksDB's resume off) or pinned by a
    // reader.
    uint64_t all = 0, active = 0;
    if (!db->GetAggregatedIntProperty(rocksdb::DB::Properties::kSizeAllMemTables, &all) ||
        !db->GetAggregatedIntProperty(rocksdb::DB::Properties::kCurSizeActiveMemTable, &active)) {
      continue;
    }
    const uint64_t stuck = all > active ? all - active : 0;
    if (f.cap == UINT64_MAX) f.cap = stuck;
    total += f.hard ? stuck : std::min(stuck, f.cap);
  }
  failed_backlog.store(total, std::memory_order_relaxed);
  failed_backlog_at.store(now, std::memory_order_relaxed);
  return total;
}

uint64_t AllocatorFreeBytes() {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 33)
  return mallinfo2().fordblks;
#else
  return 0;
#endif
}

std::unique_ptr<SharedResources> SharedResources::Make(const Options& options) {
  auto r = std::make_unique<SharedResources>();
  rocksdb::Env* base = options.env ? options.env : rocksdb::Env::Default();
  r->close_check = std::make_shared<CloseCheckFS>(base->GetFileSystem());
  r->own_env = std::make_unique<FileSystemEnv>(base, r->close_check);
  r->env = r->own_env.get();
  r->block_cache = rocksdb::NewLRUCache(options.block_cache_bytes);
  r->write_buffer_manager =
      std::make_shared<rocksdb::WriteBufferManager>(options.write_buffer_budget_bytes);
  r->dictionaries = std::make_unique<DictionaryCache>(options.dictionary_cache_bytes);
  r->statistics = rocksdb::CreateDBStatistics();
  r->statistics->set_stats_level(rocksdb::StatsLevel::kExceptHistogramOrTimers);
  r->logger = options.logger;
  r->defer_compression = options.defer_compression;
  r->recording_ingest = options.recording_ingest;
  r->recording_pipeline = options.recording_pipeline;
  r->env->SetBackgroundThreads(FlushThreads(options), rocksdb::Env::HIGH);
  r->env->SetBackgroundThreads(std::max(1, options.background_threads), rocksdb::Env::LOW);
  if (options.low_priority_compactions && !options.read_only) {
    // Each thread of the pool lowers itself before its next job; an Env
    // without the call (a custom one) keeps its priorities.
    r->env->LowerThreadPoolCPUPriority(rocksdb::Env::LOW, rocksdb::CpuPriority::kLow)
        .PermitUncheckedError();
  }

  rocksdb::DBOptions& d = r->db_options;
  d.env = r->env;
  d.create_if_missing = false;
  d.create_missing_column_families = false;
  // 7.8 defaults this to false; a half-written OPTIONS file must not pass.
  d.fail_if_options_file_error = options.keep_rocksdb_options_file;
  if (!options.keep_rocksdb_options_file) r->close_check->RefuseOptionsFiles();
  // Proven by the kill tests; a shard whose WAL scan finds damage opens
  // with kSkipAnyCorruptedRecords instead (docs/decisions/0014).
  d.wal_recovery_mode = rocksdb::WALRecoveryMode::kPointInTimeRecovery;
  d.write_buffer_manager = r->write_buffer_manager;
  r->heap_trimmer = std::make_shared<HeapTrimmer>(r->write_buffer_manager, options.heap_trim_step_bytes);
  d.listeners.push_back(r->heap_trimmer);
  // Sized for one shard until the store knows how many it has
  // (SizeOpenFiles sets it again, with the WAL cap).
  r->flush_backlog_option = options.flush_backlog_bytes;
  r->flush_backlog = std::make_shared<FlushBacklog>(
      r->write_buffer_manager,
      FlushBacklogLimit(options.flush_backlog_bytes, options.write_buffer_budget_bytes, 1));
  r->flush_backlog->set_excluded([res = r.get()] { return res->FailedInstancesBacklog(); });
  d.listeners.push_back(r->flush_backlog);
  d.statistics = r->statistics;
  // Its periodic dump of the statistics into the info log: off (Metrics()
  // reads them; with a logger they would flood it every 10 minutes).
  d.stats_dump_period_sec = 0;
  d.max_background_jobs = std::max(2, options.background_threads);
  // Sized from RLIMIT_NOFILE once the shard count is known (Store's
  // SizeOpenFiles, decision 0059); until then the metadata instance's.
  r->nofile_limit = RaiseFileLimit(&r->nofile_raised);
  r->nofile_reserve = FileReserve(r->nofile_limit);
  d.max_open_files = std::max(kMinOpenFilesPerInstance, OpenFilesPerInstance(r->nofile_limit, 0));
  r->open_files_per_instance = d.max_open_files;
  d.keep_log_file_num = 3;
  // At open RocksDB 7.8 starts this many threads for every column family to
  // load its table readers (VersionBuilder::LoadTableHandlers), even one
  // without a table file, until the instance's table cache holds 16
  // readers: a store of 10,000 tenants whose calls were still in the WAL
  // started ~150,000 threads and opened in 9.0-11.6 s instead of 0.84 s
  // (decision 0073). One: the opening thread loads those few files itself.
  d.max_file_opening_threads = 1;
  // Edits appended, their synced length recorded (decision 0067).
  d.max_manifest_file_size = kManifestRollBytes;
  d.avoid_unnecessary_blocking_io = false;  // dropped families' files go before PurgeTenant returns
  // Opening 10,000 tenants: the WAL's data stays in memtables instead of
  // one small L0 file (and fdatasync) per family at every open (58 s -> 5 s
  // at 10,000 tenants with data in the WAL, measured).
  d.avoid_flush_during_recovery = true;
  // Recovered memtables of idle tenants would otherwise keep every WAL since
  // (the default cap is 4x all write buffers: gigabytes per shard). Past
  // this, RocksDB flushes the families holding the oldest WAL. At the
  // shard's share of the memtable budget, so that in steady ingest the
  // budget's flushes (one family, its oldest memtable, at a time) come
  // first: a cap below it flushed every family of the shard at once into
  // small L0 files that compactions wrote again (decision 0065). Sized for
  // one shard until the store knows how many it has (SizeOpenFiles).
  r->wal_cap_bytes = WalCapBytes(options.write_buffer_budget_bytes, 1);
  d.max_total_wal_size = r->wal_cap_bytes.load();

  rocksdb::ColumnFamilyOptions& c = r->tenant_cf_options;
  // Values are ciphertext: RocksDB's compression would only burn CPU.
  c.compression = rocksdb::kNoCompression;
  c.bottommost_compression = rocksdb::kNoCompression;
  c.write_buffer_size = options.write_buffer_bytes;
  // A memtable's arena grows in blocks of this size, and the shared
  // WriteBufferManager counts whole blocks: with the default (1/8 of the
  // write buffer, 1 MiB) every tenant with one unflushed write counted as
  // 1 MiB, so a few hundred lightly written tenants filled the budget and
  // kept RocksDB flushing one-entry memtables into tiny L0 files.
  // 16 KiB blocks were measured and not kept (decision 0073): they hold a
  // reopen's recovered memtables smaller, but fewer of a store's first
  // writes are flushed, and with more memtables recovered the 10,000-tenant
  // ingest's memtables rose to 1 GB.
  c.arena_block_size = 64u << 10;
  c.max_write_buffer_number = 2;  // <= 2: flush-retry ordering bug before 7.9
  c.level_compaction_dynamic_level_bytes = true;
  c.target_file_size_base = 32u << 20;
  c.max_bytes_for_level_base = 128u << 20;
  // Large values (recordings, long transcripts) go to blob files, which
  // are dropped with the column family.
  c.enable_blob_files = true;
  c.min_blob_size = kMinBlobBytes;  // engine/reseal.h: deferred records stay below it
  c.blob_file_size = 64u << 20;
  c.enable_blob_garbage_collection = true;
  rocksdb::BlockBasedTableOptions t;
  t.block_cache = r->block_cache;
  t.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  t.block_size = 16u << 10;
  t.cache_index_and_filter_blocks = true;
  t.pin_l0_filter_and_index_blocks_in_cache = true;
  c.table_factory.reset(rocksdb::NewBlockBasedTableFactory(t));
  return r;
}

Status SyncWal(rocksdb::DB* db, const ErrorFlag& flag, std::string_view what, CloseCheckFS* fs,
               const std::string& dir) {
  if (flag.failed() || (fs != nullptr && fs->WriteFailed(dir))) {
    return Status::IOError(std::string(what) +
                           ": an earlier write or sync of this instance failed; its WAL is not "
                           "synced again until the store is reopened");
  }
  return fsutil::FromRocks(db->FlushWAL(true), what);
}

std::string ManifestStamp(rocksdb::FileSystem* fs, const std::string& dir) {
  std::string current;
  if (!rocksdb::ReadFileToString(fs, dir + "/CURRENT", &current).ok()) return "(no CURRENT)";
  while (!current.empty() && current.back() == '\n') current.pop_back();
  uint64_t size = 0;
  if (!fs->GetFileSize(dir + "/" + current, rocksdb::IOOptions(), &size, nullptr).ok()) {
    return current + ":(missing)";
  }
  return current + ":" + std::to_string(size);
}

Status CheckStamp(rocksdb::FileSystem* fs, const std::string& dir, const std::string& before) {
  if (ManifestStamp(fs, dir) == before) return Status::OK();
  return Status::IOError(std::string(kRaceMessage) + " (" + dir + ")");
}

Status RetryWhileRacing(const std::function<Status()>& attempt) {
  Status s = attempt();
  // A flush or compaction takes a few milliseconds; a writer that flushes
  // continuously still leaves gaps. About 4 s in all before giving up.
  for (int k = 0; k < kReadOnlyAttempts && s.code() == Code::kIOError &&
                  s.message().find(kRaceMessage) != std::string_view::npos;
       ++k) {
    std::this_thread::sleep_for(std::chrono::milliseconds(std::min(2 * (k + 1), 40)));
    s = attempt();
  }
  return s;
}

Result<std::unique_ptr<Shard>> Shard::Open(uint32_t index, const std::string& path,
                                           const SharedResources& res, bool create,
                                           bool read_only, const ShardMark* mark) {
  if (!read_only) return OpenOnce(index, path, res, create, false, mark);
  std::unique_ptr<Shard> opened;
  Status s = RetryWhileRacing([&]() -> Status {
    auto r = OpenOnce(index, path, res, false, true, mark);
    if (!r.ok()) return r.status();
    opened = std::move(*r);
    return Status::OK();
  });
  CV_RETURN_IF_ERROR(s);
  return opened;
}

Result<std::unique_ptr<Shard>> Shard::OpenOnce(uint32_t index, const std::string& path,
                                               const SharedResources& res, bool create,
                                               bool read_only, const ShardMark* mark) {
  std::unique_ptr<Shard> shard(new Shard(index, path, &res, read_only));
  // The open reads CURRENT again: what it calls obsolete is (decision 0025).
  if (!read_only) {
    res.close_check->ReleaseDeletions(path);
    res.close_check->TrackManifests(path);  // decision 0067
  }
  // Temp files of a WAL repair (fsutil::AtomicWrite of NNNNNN.log, its
  // .damage record or .damaged copy) a crash left between create and
  // rename: never read, removed by the writer (which holds the store's lock).
  if (!read_only && !create) {
    CV_RETURN_IF_ERROR(RemoveRepairTempFiles(res.env->GetFileSystem().get(), path));
    CV_RETURN_IF_ERROR(SweepIngestDir(res.env->GetFileSystem().get(), path + "/ingest"));
  }
  rocksdb::DBOptions dbo = res.db_options;
  shard->cf_options_ = res.tenant_cf_options;
  shard->cf_options_.compaction_filter_factory = shard->reseal_;
  shard->error_->Attach(&res, "shard-" + std::to_string(index));
  dbo.listeners.push_back(shard->error_);
  dbo.info_log = res.InfoLog(path, "shard-" + std::to_string(index), read_only);
  if (!read_only && !create) RemoveStaleOptionsFiles(res, path, dbo.info_log.get());
  dbo.max_open_files = read_only ? -1 : res.open_files_per_instance.load();
  dbo.max_total_wal_size = res.wal_cap_bytes.load();
  rocksdb::FileSystem* fs = res.env->GetFileSystem().get();
  // Taken before the families are listed: a family the writer drops after
  // the listing must show up as a change, not as "Column family not found".
  const std::string stamp = read_only ? ManifestStamp(fs, path) : "";
  // The MANIFEST CURRENT names, read once for this open (the guard
  // below, the high-water mark, the WAL scan), and read by RocksDB (the
  // listing, the open) without a torn, unsynced tail (decision 0067).
  const std::string mark_file = ReadManifestMarkFile(fs, path);
  walscan::ManifestInfo manifest = walscan::ReadCurrentManifest(fs, path);
  const ManifestTailCut cut(res.close_check.get(), path, mark_file, manifest);
  if (!cut.what().empty()) {
    rocksdb::Log(rocksdb::InfoLogLevel::WARN_LEVEL, dbo.info_log, "shard %u: %s", index,
                 cut.what().c_str());
  }
  std::vector<std::string> names;
  rocksdb::Status s = rocksdb::DB::ListColumnFamilies(dbo, path, &names);
  if (!s.ok()) {
    if (read_only) CV_RETURN_IF_ERROR(CheckStamp(fs, path, stamp));
    if (!create || read_only) {
      return Damaged(index, fsutil::FromRocks(s, "shard " + std::to_string(index) + ": list column families"));
    }
    names = {rocksdb::kDefaultColumnFamilyName};
    dbo.create_if_missing = true;
  }
  std::vector<rocksdb::ColumnFamilyDescriptor> descs;
  for (const auto& n : names) descs.emplace_back(n, shard->cf_options_);
  // One that RocksDB 7.8.3 would abort on (WAL-tracking edits in a
  // read-only open, a replay floor beyond every file number: hand-made) is
  // refused first.
  if (!dbo.create_if_missing) {
    CV_RETURN_IF_ERROR(
        walscan::RefuseManifest(manifest, "shard " + std::to_string(index), read_only));
  }
  // Damage in the WAL (docs/decisions/0014): found before RocksDB recovery
  // drops it. Recovery then skips the damaged bytes only, so the other
  // families' later writes are kept; the families that lost writes are
  // named after the open.
  // Files the last clean close left, shorter now (decision 0015): checked
  // before the WAL scan, which may rewrite a damaged WAL.
  std::string lost_files;
  if (mark != nullptr && !dbo.create_if_missing) {
    std::string replaced;
    CV_ASSIGN_OR_RETURN(lost_files, CheckMarkFiles(fs, path, manifest, *mark, &replaced));
    if (!replaced.empty()) {
      // Another file in a listed WAL's place (decision 0050): refused like
      // a WAL of another history below, before the scan or recovery reads
      // it (replayed, its records would land in this shard's families and
      // the file be deleted after the next flush); nothing is marked.
      return Status::Corruption("shard " + std::to_string(index) + ": " + replaced +
                                ": put the shard's own file back (from a backup or the copy it "
                                "was taken from), or move this one out of the shard directory "
                                "and restore the shard's tenants; the shard opens again then "
                                "(docs/operations.md, \"WAL ledger\")");
    }
  }
  walscan::ScanResult scan;
  if (!dbo.create_if_missing) {
    // Read-only: repaired in memory, served through RepairedWalFS.
    CV_ASSIGN_OR_RETURN(scan, walscan::ScanDirectory(fs, path, /*repair=*/true,
                                                     /*in_memory=*/read_only, &manifest));
    res.CountWalScan(scan);
    if (!scan.sequence_regress.empty()) {
      return Status::Corruption("shard " + std::to_string(index) + ": " + scan.sequence_regress +
                                ": a WAL file of another history (another shard's or store's, "
                                "planted or restored here, or one of this shard's renamed or "
                                "copied); move it out of the shard directory, or give a renamed "
                                "WAL its name back: nothing is lost then (docs/operations.md)");
    }
    shard->wal_evidence_ = scan.evidence;
    if (!scan.damage.empty()) {
      dbo.wal_recovery_mode = rocksdb::WALRecoveryMode::kSkipAnyCorruptedRecords;
    }
    if (read_only && !scan.repaired.empty()) {
      shard->view_env_ = std::make_unique<FileSystemEnv>(
          res.env, std::make_shared<RepairedWalFS>(res.env->GetFileSystem(), path,
                                                   std::move(scan.repaired)));
      dbo.env = shard->view_env_.get();
    }
    // A header that mode reads again forever (wal_scan.h, `stuck`): never
    // reported with `repair` (such a file is re-framed, in memory for a
    // read-only open); kept as a guard: refuse rather than hang.
    if (read_only && !scan.damage.empty() && !scan.stuck.empty()) {
      return Status::Corruption("shard " + std::to_string(index) + ": " + scan.stuck.front() +
                                ": a damaged record header that a read-only open cannot get "
                                "past (" + scan.damage.front().Describe() +
                                "); open the store writable once, which repairs the WAL and "
                                "marks the tenants that lost writes (docs/operations.md)");
    }
  }
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* db = nullptr;
  s = read_only ? rocksdb::DB::OpenForReadOnly(dbo, path, descs, &handles, &db)
                : rocksdb::DB::Open(dbo, path, descs, &handles, &db);
  // One family's damaged table or blob file, read by the open itself (it
  // loads a few table files' meta blocks): with paranoid_checks the whole
  // shard would refuse to open. Opened again without, the file's family is
  // named below and its tenant marked damaged (docs/decisions/0014).
  // The same for a read-only open, which loads every table file
  // (max_open_files = -1), and for an error that names only the MANIFEST
  // being applied ("properties unsorted in file .../MANIFEST-…": a table
  // file's properties block): the MANIFEST's own parse does not depend on
  // paranoid_checks, so if the second open works the damage was in a table
  // file, found below.
  // Never for a table file that is missing ("No such file": RocksDB then
  // names the .ldb it tried last): the MANIFEST and the directory disagree
  // (a truncated or damaged MANIFEST naming an older state), and a writable
  // open would delete the files that MANIFEST does not list.
  std::string table_damage;
  const rocksdb::Status first = s;
  const std::string first_error = s.ToString();
  if (!s.ok() && s.IsCorruption() && first_error.find("No such file") == std::string::npos &&
      first_error.find("IO error") == std::string::npos &&
      (first_error.find(".sst") != std::string::npos ||
       first_error.find(".blob") != std::string::npos ||
       first_error.find("/MANIFEST-") != std::string::npos)) {
    table_damage = first_error;
    dbo.paranoid_checks = false;
    shard->degraded_ = true;
    handles.clear();
    s = read_only ? rocksdb::DB::OpenForReadOnly(dbo, path, descs, &handles, &db)
                  : rocksdb::DB::Open(dbo, path, descs, &handles, &db);
    if (!s.ok() && s.IsCorruption()) s = first;  // the first error says more
  }
  if (!s.ok()) {
    // A file the writer removed meanwhile (compaction, flush) is a race,
    // not damage, if the instance changed: the caller retries.
    if (read_only) CV_RETURN_IF_ERROR(CheckStamp(fs, path, stamp));
    if (create) return fsutil::FromRocks(s, "shard " + std::to_string(index) + ": open");
    return Damaged(index, fsutil::FromRocks(s, "shard " + std::to_string(index) + ": open"));
  }
  shard->db_.reset(db);
  if (!read_only) shard->error_->SetDb(db);  // a failure from now on is the store's to know
  if (!table_damage.empty()) {
    std::vector<rocksdb::LiveFileMetaData> live;
    db->GetLiveFilesMetaData(&live);
    WalDamage w;
    w.kind = "file_damage";
    w.description = "shard " + std::to_string(index) + ": damaged files of its column family: " +
                    table_damage;
    w.all_families = true;
    for (const auto& f : live) {
      const std::string base = f.name.substr(f.name.rfind('/') + 1);
      if (table_damage.find("/" + base) != std::string::npos) {
        w.families = {f.column_family_name};
        w.all_families = false;
      }
    }
    if (w.all_families) {
      // The message names no live table file: open each one alone.
      rocksdb::Options opts(dbo, res.tenant_cf_options);
      std::set<std::string> bad;
      for (const auto& f : live) {
        rocksdb::SstFileReader reader(opts);
        if (!reader.Open(f.db_path + f.name).ok()) bad.insert(f.column_family_name);
      }
      if (!bad.empty()) {
        w.families.assign(bad.begin(), bad.end());
        w.all_families = false;
      }
    }
    shard->wal_damage_.push_back(std::move(w));
  }
  if (!scan.damage.empty()) {
    // RocksDB recovered past the damage (a new MANIFEST: the high-water
    // mark no longer applies); only the scan's damage record keeps it until
    // the metadata does (decision 0019).
    CV_KILL_POINT("wal_repair.after_db_open");
    std::map<uint32_t, std::string> by_id;
    for (auto* h : handles) by_id[h->GetID()] = h->GetName();
    for (const auto& d : scan.damage) {
      WalDamage w;
      w.description = "shard " + std::to_string(index) + ": " + d.Describe();
      w.all_families = d.unknown_families;
      for (uint32_t id : d.column_families) {
        auto it = by_id.find(id);
        if (it == by_id.end()) {
          w.all_families = true;  // a family since dropped, or a damaged id
        } else if (it->second == rocksdb::kDefaultColumnFamilyName) {
          w.all_families = true;  // never written by the engine: a damaged id
        } else {
          w.families.push_back(it->second);
        }
      }
      shard->wal_damage_.push_back(std::move(w));
    }
  }
  // The high-water mark (decision 0015): acknowledged writes lost without
  // a trace the WAL scan calls damage (a truncated WAL, a damaged last
  // record: a torn tail to it and to RocksDB; a lost MANIFEST edit). The
  // WAL files the last clean close left must replay to the sequence number
  // they did then: compared with what the scan found replayable, not with
  // RocksDB's recovered sequence number, which 7.8 may lower legitimately
  // (a WAL that holds only a dropped family's writes is skipped without its
  // sequence numbers being kept in the MANIFEST).
  // Or edits the MANIFEST had synced that do not read (its MANIFEST_SYNCED,
  // decision 0067; also in a crash image, where no close mark applies):
  // RocksDB read it as ending earlier (a length past the end reads as a
  // torn tail). Said once: the close mark's check, when it applies, names
  // the same loss.
  std::string why = mark != nullptr ? lost_files : std::string();
  if (why.empty()) why = cut.lost();
  if (mark != nullptr) {
    if (scan.last_sequence < mark->sequence) {
      why += std::string(why.empty() ? "" : "; ") + "the WAL files replay to sequence number " +
             std::to_string(scan.last_sequence) + ", " + std::to_string(mark->sequence) +
             " at the last clean close (by its close mark; a mark of another store, or "
             "one from a build before the close counter put back after a later flush, "
             "is a false alarm: docs/operations.md, \"Close mark\")";
    }
  }
  if (!why.empty()) {
    WalDamage w;
    w.kind = "shard_loss";
    w.description = "shard " + std::to_string(index) + ": acknowledged writes lost: " + why;
    w.all_families = true;
    shard->wal_damage_.push_back(std::move(w));
  }
  Status stable = read_only ? CheckStamp(fs, path, stamp) : Status::OK();
  for (auto* h : handles) {
    if (h->GetName() == rocksdb::kDefaultColumnFamilyName) {
      db->DestroyColumnFamilyHandle(h).PermitUncheckedError();
    } else {
      shard->families_[h->GetName()] = h;
    }
  }
  CV_RETURN_IF_ERROR(stable);
  return shard;
}

Shard::~Shard() { Close().IgnoreError(); }

Status Shard::Close() {
  std::lock_guard<std::mutex> l(mu_);
  if (!db_) return Status::OK();
  // No filter reaches the store's tenants once it closes (a flush during
  // the close keeps records as written).
  reseal_->ClearLookup();
  // Handles of dropped families first: the reaper destroys what it holds.
  StopReaper();
  const std::string name = "shard " + std::to_string(index_) + ": ";
  Status first;
  auto keep = [&first](Status s) {
    if (first.ok() && !s.ok()) first = std::move(s);
  };
  // Every acknowledged write is synced already; this makes unsynced ones
  // (sync_writes = false) durable too before closing. A failed instance is
  // not synced again (SyncWal): its close reports that earlier failure.
  bool synced_ok = false;
  if (!read_only_) {
    Status synced = callvault::SyncWal(db_.get(), *error_, name + "sync WAL at close",
                                       res_->close_check.get(), path_);
    synced_ok = synced.ok();
    keep(std::move(synced));
  }
  error_->SetDb(nullptr);  // no longer one of the store's failed instances
  for (auto& [n, h] : families_) {
    keep(fsutil::FromRocks(db_->DestroyColumnFamilyHandle(h), name + "destroy column family handle"));
  }
  families_.clear();
  // Closes the WAL and MANIFEST files (and the info log): an error closing
  // one comes back here.
  keep(fsutil::FromRocks(db_->Close(), name + "close"));
  db_.reset();
  // DB::Close drops the status of closing its WAL and MANIFEST files.
  keep(res_->close_check->TakeCloseError(path_));
  // Closed cleanly, and no write or sync of its files failed since the
  // open: what the next open must find again (decision 0015).
  const bool write_failed = res_->close_check->TakeWriteFailure(path_);
  if (synced_ok && first.ok() && !error_->failed() && !write_failed) {
    ShardMark m;
    if (!TakeMark(res_->env->GetFileSystem().get(), path_, &m)) {
      m = ShardMark();  // nothing to check against
    }
    close_mark_ = std::move(m);
  }
  return first;
}

Result<rocksdb::ColumnFamilyHandle*> Shard::Create(const std::string& name) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = families_.find(name);
  if (it != families_.end()) return it->second;
  rocksdb::ColumnFamilyHandle* h = nullptr;
  rocksdb::Status s = db_->CreateColumnFamily(cf_options_, name, &h);
  // 7.8 returns an error together with a live handle when the family is in
  // the MANIFEST but its OPTIONS file could not be written: keep the handle,
  // so that a rollback can drop the family and closing destroys the handle
  // (an undestroyed handle fails an assertion in DB::Close).
  if (h != nullptr) families_[name] = h;
  CV_RETURN_IF_ERROR(fsutil::FromRocks(s, "create column family"));
  return h;
}

Status Shard::Drop(rocksdb::ColumnFamilyHandle* cf) {
  std::lock_guard<std::mutex> l(mu_);
  const std::string name = cf->GetName();
  CV_RETURN_IF_ERROR(fsutil::FromRocks(db_->DropColumnFamily(cf), "drop column family"));
  CV_KILL_POINT("shard_drop.after_drop");  // the drop is in the synced MANIFEST
  families_.erase(name);
  CV_RETURN_IF_ERROR(
      fsutil::FromRocks(db_->DestroyColumnFamilyHandle(cf), "destroy column family handle"));
  CV_KILL_POINT("shard_drop.after_destroy_handle");  // its files are obsolete now
  return Status::OK();
}

Status Shard::DropAndDeleteLater(rocksdb::ColumnFamilyHandle* cf,
                                 std::function<void(Status)> deleted) {
  {
    std::lock_guard<std::mutex> l(mu_);
    const std::string name = cf->GetName();
    CV_RETURN_IF_ERROR(fsutil::FromRocks(db_->DropColumnFamily(cf), "drop column family"));
    CV_KILL_POINT("shard_drop.after_drop");  // the drop is in the synced MANIFEST
    families_.erase(name);
  }
  std::lock_guard<std::mutex> l(reap_mu_);
  reap_queue_.emplace_back(cf, std::move(deleted));
  if (!reaper_.joinable()) reaper_ = std::thread([this] { Reap(); });
  reap_cv_.notify_one();
  return Status::OK();
}

size_t Shard::deletions_pending() const {
  std::lock_guard<std::mutex> l(reap_mu_);
  return reap_queue_.size() + reap_running_;
}

void Shard::Reap() {
  std::unique_lock<std::mutex> l(reap_mu_);
  for (;;) {
    reap_cv_.wait(l, [this] { return reap_stop_ || !reap_queue_.empty(); });
    if (reap_queue_.empty()) return;  // stopped, and nothing left to destroy
    auto [cf, deleted] = std::move(reap_queue_.front());
    reap_queue_.pop_front();
    ++reap_running_;
    l.unlock();
    // db_ stays open until StopReaper has joined this thread (Close).
    // No kill point here: this thread's timing against the caller's next
    // operations is not deterministic, and the crash-point suite needs it
    // to be (the synchronous Drop keeps shard_drop.after_destroy_handle).
    Status s = fsutil::FromRocks(db_->DestroyColumnFamilyHandle(cf), "destroy column family handle");
    if (deleted) deleted(s);
    l.lock();
    --reap_running_;
  }
}

void Shard::StopReaper() {
  {
    std::lock_guard<std::mutex> l(reap_mu_);
    reap_stop_ = true;
    reap_cv_.notify_one();
  }
  if (reaper_.joinable()) reaper_.join();
}

rocksdb::ColumnFamilyHandle* Shard::Find(const std::string& name) const {
  std::lock_guard<std::mutex> l(mu_);
  auto it = families_.find(name);
  return it == families_.end() ? nullptr : it->second;
}

std::vector<std::string> Shard::FamilyNames() const {
  std::lock_guard<std::mutex> l(mu_);
  std::vector<std::string> v;
  for (const auto& [n, h] : families_) v.push_back(n);
  return v;
}

Status Shard::FlushAll() {
  std::lock_guard<std::mutex> l(mu_);
  if (error_->failed()) return SyncWal();  // says why; touches nothing
  std::vector<rocksdb::ColumnFamilyHandle*> all;
  for (const auto& [n, h] : families_) all.push_back(h);
  all.push_back(db_->DefaultColumnFamily());
  CV_RETURN_IF_ERROR(fsutil::FromRocks(db_->Flush(rocksdb::FlushOptions(), all), "flush shard"));
  return SyncWal();
}

Status Shard::SyncWal() {
  return callvault::SyncWal(db_.get(), *error_, "sync WAL", res_->close_check.get(), path_);
}

Status Shard::DropWalEvidence() {
  rocksdb::FileSystem* fs = res_->env->GetFileSystem().get();
  for (const auto& name : wal_evidence_) CV_RETURN_IF_ERROR(fsutil::Remove(fs, path_, name));
  wal_evidence_.clear();
  return Status::OK();
}

Status Shard::DisableCompactions(rocksdb::ColumnFamilyHandle* cf, bool disable) {
  if (read_only_) return Status::OK();
  return fsutil::FromRocks(
      db_->SetOptions(cf, {{"disable_auto_compactions", disable ? "true" : "false"}}),
      "set compaction option");
}

size_t Shard::family_count() const {
  std::lock_guard<std::mutex> l(mu_);
  return families_.size();
}

}  // namespace callvault
