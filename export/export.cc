// ExportTenantData: see callvault/export.h and docs/format.md ("Export format").
#include "callvault/export.h"

#include <dirent.h>
#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "callvault/limits.h"
#include "tools/json/call_json.h"

namespace callvault {

namespace {

constexpr const char* kCallsFile = "calls.ndjson";
constexpr const char* kRecordingsDir = "recordings";
constexpr const char* kManifestFile = "manifest.json";
constexpr const char* kManifestTmp = "manifest.json.tmp";
constexpr size_t kBufferBytes = 256u << 10;

int64_t NowMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string Hex(const unsigned char* p, size_t n) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string s(2 * n, '0');
  for (size_t i = 0; i < n; ++i) {
    s[2 * i] = kDigits[p[i] >> 4];
    s[2 * i + 1] = kDigits[p[i] & 15];
  }
  return s;
}

Status Errno(const std::string& what, int e) {
  std::string m = what + ": " + std::strerror(e);
  if (e == ENOSPC) m = "disk full: " + m;
  return Status::IOError(std::move(m));
}

// A JSON string (quoted and escaped) that never throws.
std::string Quote(std::string_view s) {
  return nlohmann::json(std::string(s)).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// One output file: buffered, hashed (SHA-256) as it is written, fsynced
// and closed by Finish. Created with O_EXCL | O_NOFOLLOW relative to a
// directory descriptor, mode 0600.
class OutFile {
 public:
  OutFile() = default;
  ~OutFile() {
    if (fd_ >= 0) ::close(fd_);
  }
  OutFile(const OutFile&) = delete;
  OutFile& operator=(const OutFile&) = delete;

  // `name` relative to `dirfd`; `display` (relative to DIR) in messages.
  Status Create(int dirfd, const std::string& name, std::string display) {
    name_ = std::move(display);
    fd_ = ::openat(dirfd, name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd_ < 0) return Errno("cannot create " + name_, errno);
    if (::fchmod(fd_, 0600) != 0) return Errno("cannot set the mode of " + name_, errno);
    crypto_hash_sha256_init(&sha_);
    buf_.reserve(kBufferBytes);
    return Status::OK();
  }

  Status Write(std::string_view bytes) {
    crypto_hash_sha256_update(&sha_, reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size());
    bytes_ += bytes.size();
    if (buf_.size() + bytes.size() <= kBufferBytes) {
      buf_.append(bytes);
      return Status::OK();
    }
    CV_RETURN_IF_ERROR(Drain());
    if (bytes.size() >= kBufferBytes) return WriteAll(bytes);
    buf_.append(bytes);
    return Status::OK();
  }

  // Flushes, fsyncs and closes; `sha256_hex` gets the digest.
  Status Finish(std::string* sha256_hex) {
    CV_RETURN_IF_ERROR(Drain());
    if (::fsync(fd_) != 0) return Errno("cannot sync " + name_, errno);
    const int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) return Errno("cannot close " + name_, errno);
    unsigned char digest[crypto_hash_sha256_BYTES];
    crypto_hash_sha256_final(&sha_, digest);
    *sha256_hex = Hex(digest, sizeof digest);
    raw_sha256_.assign(reinterpret_cast<const char*>(digest), sizeof digest);
    return Status::OK();
  }

  uint64_t bytes() const { return bytes_; }
  const std::string& raw_sha256() const { return raw_sha256_; }

 private:
  Status Drain() {
    Status s = WriteAll(buf_);
    buf_.clear();
    return s;
  }
  Status WriteAll(std::string_view bytes) {
    while (!bytes.empty()) {
      ssize_t n = ::write(fd_, bytes.data(), bytes.size());
      if (n < 0) {
        if (errno == EINTR) continue;
        return Errno("cannot write " + name_, errno);
      }
      bytes.remove_prefix(static_cast<size_t>(n));
    }
    return Status::OK();
  }

  int fd_ = -1;
  std::string name_;
  std::string buf_;
  crypto_hash_sha256_state sha_{};
  uint64_t bytes_ = 0;
  std::string raw_sha256_;
};

class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  void reset(int fd) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_;
};

// Is the directory open on `fd` empty? (Reads a duplicate descriptor.)
Result<bool> DirIsEmpty(int fd) {
  int dup = ::openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dup < 0) return Errno("cannot read the export directory", errno);
  DIR* d = ::fdopendir(dup);
  if (d == nullptr) {
    const int e = errno;
    ::close(dup);
    return Errno("cannot read the export directory", e);
  }
  bool empty = true;
  errno = 0;
  while (struct dirent* e = ::readdir(d)) {
    if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) {
      empty = false;
      break;
    }
  }
  const int e = errno;
  ::closedir(d);
  if (empty && e != 0) return Errno("cannot read the export directory", e);
  return empty;
}

// Removes every entry of the directory open on `fd` (files only).
void RemoveFilesIn(int fd) {
  int dup = ::openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dup < 0) return;
  DIR* d = ::fdopendir(dup);
  if (d == nullptr) {
    ::close(dup);
    return;
  }
  std::vector<std::string> names;
  while (struct dirent* e = ::readdir(d)) {
    if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) names.emplace_back(e->d_name);
  }
  ::closedir(d);
  for (const auto& n : names) ::unlinkat(fd, n.c_str(), 0);
}

Status SyncDir(int fd, const char* what) {
  if (::fsync(fd) != 0) return Errno(std::string("cannot sync ") + what, errno);
  return Status::OK();
}

std::string ParentOf(const std::string& path) {
  std::string p = path;
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  const size_t slash = p.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return p.substr(0, slash);
}

// Opens (creating it if absent) the export directory; refuses a symbolic
// link, a non-directory and a non-empty directory. `created` says whether
// this call made it.
Status OpenExportDir(const std::string& dir, Fd* out, bool* created) {
  *created = false;
  if (dir.empty()) return Status::InvalidArgument("export directory: empty path");
  struct stat st {};
  if (::lstat(dir.c_str(), &st) == 0) {
    if (S_ISLNK(st.st_mode)) {
      return Status::InvalidArgument("export directory is a symbolic link; name the real directory");
    }
    if (!S_ISDIR(st.st_mode)) return Status::InvalidArgument("export directory exists and is not a directory");
  } else if (errno != ENOENT) {
    return Errno("cannot inspect the export directory", errno);
  } else {
    if (::mkdir(dir.c_str(), 0700) != 0) {
      if (errno == ENOENT) return Status::NotFound("the export directory's parent does not exist");
      if (errno == EEXIST) return Status::AlreadyExists("export directory appeared meanwhile; not used");
      return Errno("cannot create the export directory", errno);
    }
    *created = true;
  }
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    const int e = errno;
    if (e == ELOOP || e == ENOTDIR) {
      return Status::InvalidArgument("export directory is a symbolic link or not a directory");
    }
    return Errno("cannot open the export directory", e);
  }
  out->reset(fd);
  if (!*created) {
    CV_ASSIGN_OR_RETURN(bool empty, DirIsEmpty(fd));
    if (!empty) {
      return Status::AlreadyExists(
          "export directory is not empty (an earlier export?); name a new or empty directory");
    }
  }
  if (::fchmod(fd, 0700) != 0) return Errno("cannot set the mode of the export directory", errno);
  if (*created) {
    Fd parent(::open(ParentOf(dir).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (parent.get() < 0) return Errno("cannot open the export directory's parent", errno);
    CV_RETURN_IF_ERROR(SyncDir(parent.get(), "the export directory's parent"));
  }
  return Status::OK();
}

struct ExtEntry {
  const char* type;
  const char* ext;
};
constexpr ExtEntry kExtensions[] = {
    {"audio/mpeg", "mp3"},  {"audio/mp3", "mp3"},    {"audio/wav", "wav"},
    {"audio/x-wav", "wav"}, {"audio/wave", "wav"},   {"audio/mp4", "m4a"},
    {"audio/x-m4a", "m4a"}, {"audio/aac", "aac"},    {"audio/ogg", "ogg"},
    {"audio/opus", "opus"}, {"audio/flac", "flac"},  {"audio/webm", "weba"},
    {"video/mp4", "mp4"},   {"video/webm", "webm"},  {"video/x-matroska", "mkv"},
    {"video/quicktime", "mov"}, {"application/json", "json"}, {"text/plain", "txt"},
};

class Exporter {
 public:
  Exporter(Store& store, std::string_view tenant_id, const ExportOptions& options)
      : store_(store), tenant_(tenant_id), options_(options) {}

  Result<ExportReport> Run(const std::string& dir);

 private:
  Status Prepare();
  Status WriteAll();
  Status WriteRecording(const std::string& call_id, const RecordingInfo& info);
  Status FinishManifest();
  void RemoveWritten(const std::string& dir);
  void Progress() {
    if (options_.progress) options_.progress(progress_);
  }

  Store& store_;
  const std::string tenant_;
  const ExportOptions& options_;
  Fd dir_;
  Fd rec_dir_;
  bool created_ = false;
  OutFile calls_;
  OutFile manifest_;
  bool first_entry_ = true;
  ExportProgress progress_;
  ExportReport report_;
};

Status Exporter::Prepare() {
  if (options_.page_size == 0 || options_.page_size > limits::kMaxListLimit) {
    return Status::InvalidArgument("export page_size: must be 1..1000");
  }
  if (sodium_init() < 0) return Status::Internal("libsodium failed to initialise");
  // Every check that can refuse runs before anything is written.
  CV_ASSIGN_OR_RETURN(TenantInfo info, store_.DescribeTenant(tenant_));
  if (info.state == TenantState::kPurged || info.state == TenantState::kPurging) {
    return Status::TenantPurged("tenant is purged: nothing to export");
  }
  if (info.state != TenantState::kActive) {
    return Status::FailedPrecondition("tenant is being created: nothing to export yet");
  }
  CV_ASSIGN_OR_RETURN(progress_.calls_total, store_.CountCalls(tenant_));
  return Status::OK();
}

Result<ExportReport> Exporter::Run(const std::string& dir) {
  // The directory is checked (not created) first, then the tenant, so that
  // a refusal of either writes nothing.
  struct stat st {};
  if (!dir.empty() && ::lstat(dir.c_str(), &st) == 0 && S_ISLNK(st.st_mode)) {
    return Status::InvalidArgument("export directory is a symbolic link; name the real directory");
  }
  if (!dir.empty() && ::lstat(dir.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
    Fd probe(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (probe.get() >= 0) {
      CV_ASSIGN_OR_RETURN(bool empty, DirIsEmpty(probe.get()));
      if (!empty) {
        return Status::AlreadyExists(
            "export directory is not empty (an earlier export?); name a new or empty directory");
      }
    }
  } else if (!dir.empty() && ::access(ParentOf(dir).c_str(), F_OK) != 0 && errno == ENOENT) {
    return Status::NotFound("the export directory's parent does not exist");
  }
  CV_RETURN_IF_ERROR(Prepare());
  CV_RETURN_IF_ERROR(OpenExportDir(dir, &dir_, &created_));
  report_.dir = dir;
  report_.exported_at = NowMicros();
  Status s = WriteAll();
  if (!s.ok()) {
    RemoveWritten(dir);
    return s;
  }
  progress_.done = true;
  Progress();
  return std::move(report_);
}

Status Exporter::WriteAll() {
  if (::mkdirat(dir_.get(), kRecordingsDir, 0700) != 0) return Errno("cannot create recordings/", errno);
  rec_dir_.reset(::openat(dir_.get(), kRecordingsDir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (rec_dir_.get() < 0) return Errno("cannot open recordings/", errno);
  if (::fchmod(rec_dir_.get(), 0700) != 0) return Errno("cannot set the mode of recordings/", errno);
  CV_RETURN_IF_ERROR(manifest_.Create(dir_.get(), kManifestTmp, kManifestTmp));
  CV_RETURN_IF_ERROR(calls_.Create(dir_.get(), kCallsFile, kCallsFile));
  CV_RETURN_IF_ERROR(manifest_.Write(
      "{\n  \"format\": \"callvault-export\",\n  \"format_version\": " + std::to_string(kExportFormatVersion) +
      ",\n  \"tenant_id\": " + Quote(tenant_) + ",\n  \"exported_at\": " +
      Quote(json::FormatRfc3339(report_.exported_at)) + ",\n  \"files\": ["));

  json::JsonOptions jo;
  jo.reveal = true;
  jo.parts = kPartAll;
  ListQuery q;
  q.newest_first = false;
  q.limit = options_.page_size;
  std::string line;
  for (;;) {
    CV_ASSIGN_OR_RETURN(CallPage page, store_.ListCalls(tenant_, q));
    for (const Call& listed : page.calls) {
      auto call = store_.GetCall(tenant_, listed.call_id, kPartAll);
      if (!call.ok()) {
        if (call.status().code() == Code::kNotFound) continue;  // deleted meanwhile
        return call.status();
      }
      line = json::CallToJson(*call, jo).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
      line += '\n';
      CV_RETURN_IF_ERROR(calls_.Write(line));
      ++report_.calls;
      auto recordings = store_.ListRecordings(tenant_, listed.call_id);
      if (!recordings.ok()) {
        if (recordings.status().code() != Code::kNotFound) return recordings.status();
      } else {
        for (const RecordingInfo& r : *recordings) CV_RETURN_IF_ERROR(WriteRecording(listed.call_id, r));
      }
      progress_.calls_done = report_.calls;
      progress_.bytes_written = calls_.bytes() + report_.recording_bytes;
      Progress();
    }
    if (page.next_cursor.empty()) break;
    q.cursor = std::move(page.next_cursor);
  }
  std::string calls_sha;
  CV_RETURN_IF_ERROR(calls_.Finish(&calls_sha));
  report_.calls_bytes = calls_.bytes();
  CV_RETURN_IF_ERROR(SyncDir(rec_dir_.get(), "recordings/"));
  nlohmann::json entry = {{"path", kCallsFile},   {"kind", "calls"},
                          {"bytes", calls_.bytes()}, {"sha256", calls_sha},
                          {"calls", report_.calls}};
  CV_RETURN_IF_ERROR(manifest_.Write(std::string(first_entry_ ? "\n    " : ",\n    ") + entry.dump()));
  first_entry_ = false;
  report_.bytes = report_.calls_bytes + report_.recording_bytes;
  progress_.bytes_written = report_.bytes;
  return FinishManifest();
}

Status Exporter::WriteRecording(const std::string& call_id, const RecordingInfo& info) {
  const uint64_t n = report_.recordings + 1;
  const std::string path = ExportRecordingFileName(n, info.content_type);
  const std::string name = path.substr(std::strlen(kRecordingsDir) + 1);
  OutFile out;
  CV_RETURN_IF_ERROR(out.Create(rec_dir_.get(), name, path));
  Status s = store_.ReadRecording(tenant_, call_id, info.recording_id, 0, info.size,
                                  [&](std::string_view bytes) { return out.Write(bytes); });
  if (s.code() == Code::kNotFound) {
    // Deleted (with its call) meanwhile: not exported.
    std::string ignored;
    out.Finish(&ignored).IgnoreError();
    ::unlinkat(rec_dir_.get(), name.c_str(), 0);
    return Status::OK();
  }
  CV_RETURN_IF_ERROR(s);
  std::string sha;
  CV_RETURN_IF_ERROR(out.Finish(&sha));
  if (out.bytes() != info.size || out.raw_sha256() != info.sha256) {
    return Status::Corruption(path + ": the content read does not match the size and SHA-256 the store "
                              "recorded for it");
  }
  nlohmann::json entry = {{"path", path},
                          {"kind", "recording"},
                          {"bytes", out.bytes()},
                          {"sha256", sha},
                          {"call_id", call_id},
                          {"recording_id", info.recording_id},
                          {"content_type", info.content_type},
                          {"duration_ms", info.duration_ms},
                          {"created_at", json::FormatRfc3339(info.created_at)}};
  CV_RETURN_IF_ERROR(manifest_.Write(
      std::string(first_entry_ ? "\n    " : ",\n    ") +
      entry.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)));
  first_entry_ = false;
  ++report_.recordings;
  report_.recording_bytes += out.bytes();
  progress_.recordings_done = report_.recordings;
  return Status::OK();
}

Status Exporter::FinishManifest() {
  nlohmann::json counts = {{"calls", report_.calls},
                           {"recordings", report_.recordings},
                           {"recording_bytes", report_.recording_bytes},
                           {"bytes", report_.bytes}};
  CV_RETURN_IF_ERROR(manifest_.Write("\n  ],\n  \"counts\": " + counts.dump() + ",\n  \"completed_at\": " +
                                     Quote(json::FormatRfc3339(NowMicros())) + "\n}\n"));
  CV_RETURN_IF_ERROR(manifest_.Finish(&report_.manifest_sha256));
  // Last: the rename that makes the export complete.
  if (::renameat(dir_.get(), kManifestTmp, dir_.get(), kManifestFile) != 0) {
    return Errno("cannot rename manifest.json.tmp to manifest.json", errno);
  }
  return SyncDir(dir_.get(), "the export directory");
}

void Exporter::RemoveWritten(const std::string& dir) {
  if (dir_.get() < 0) return;
  if (rec_dir_.get() >= 0) RemoveFilesIn(rec_dir_.get());
  ::unlinkat(dir_.get(), kRecordingsDir, AT_REMOVEDIR);
  ::unlinkat(dir_.get(), kCallsFile, 0);
  ::unlinkat(dir_.get(), kManifestTmp, 0);
  ::unlinkat(dir_.get(), kManifestFile, 0);
  if (created_) ::rmdir(dir.c_str());
}

}  // namespace

std::string ExportRecordingFileName(uint64_t n, std::string_view content_type) {
  std::string type(content_type.substr(0, content_type.find(';')));
  while (!type.empty() && type.back() == ' ') type.pop_back();
  std::transform(type.begin(), type.end(), type.begin(),
                 [](unsigned char c) { return static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c); });
  const char* ext = "bin";
  for (const auto& e : kExtensions) {
    if (type == e.type) ext = e.ext;
  }
  return std::string(kRecordingsDir) + "/" + std::to_string(n) + "." + ext;
}

Result<ExportReport> ExportTenantData(Store& store, std::string_view tenant_id, const std::string& dir,
                                      const ExportOptions& options) {
  // "link/" would make lstat and O_NOFOLLOW follow a symbolic link "link".
  std::string path = dir;
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  Exporter e(store, tenant_id, options);
  return e.Run(path);
}

}  // namespace callvault
