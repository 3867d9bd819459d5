// Online backup and restore (callvault/backup.h; docs/decisions/0018).
//
// The cut: under admin_mu_ (which serialises create, purge, erasure and
// retention receipts, and every keyring write) and tombstone_mu_, each
// instance (metadata first, then every shard) starts its backup through its
// own RocksDB BackupEngine directory; the locks are released once every
// instance's live-file list is taken, and the copies run on without them.
// A signed manifest then names the backup id of each and every file with
// its SHA-256, each hash vouched for first (decision 0076). Puts and reads never
// take either lock.
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <rocksdb/utilities/backup_engine.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <thread>
#include <condition_variable>
#include <nlohmann/json.hpp>
#include <sstream>

#include "callvault/backup.h"
#include "callvault/store.h"
#include "callvault/tombstones.h"
#include "engine/calls_internal.h"
#include "engine/crypto.h"
#include "engine/fs_util.h"
#include "engine/keyring.h"
#include "engine/kill_point.h"
#include "engine/sha256.h"
#include "engine/signed_json.h"
#include "engine/store_impl.h"

namespace callvault {

namespace {
namespace fs = std::filesystem;

// Written: 2 (every file's SHA-256 signed, decision 0076). Read: 1 and 2.
constexpr uint32_t kManifestFormat = 2;
constexpr uint32_t kOldestManifestFormat = 1;
// ~130 bytes a file in format 2: room for 250,000 files.
constexpr uint64_t kMaxManifestBytes = 32u << 20;
constexpr char kAppMetadataTag[] = "callvault-cut";

std::string ShardBackupDir(uint32_t i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "shards/%04u", i);
  return buf;
}
std::string ShardName(uint32_t i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "shard/%04u", i);
  return buf;
}
// The highest cut number a manifest name holds (eight digits).
constexpr uint64_t kMaxCut = 99999999;
std::string ManifestName(uint64_t cut) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "cuts/%08llu.json", static_cast<unsigned long long>(cut));
  return buf;
}
// What each instance backup carries as BackupEngine app metadata: ties it
// to one cut, so that instances of different cuts are told apart.
std::string AppMetadata(const std::string& cut_id, const BackupInstance& in) {
  return std::string(kAppMetadataTag) + " " + cut_id + " " + in.name + " " +
         std::to_string(in.sequence);
}

nlohmann::json Body(const BackupManifest& m) {
  nlohmann::json j;
  j["format"] = m.format;
  j["cut"] = m.cut;
  j["cut_id"] = m.cut_id;
  j["store_id"] = m.store_id;
  j["region"] = m.region;
  j["time"] = m.time;
  j["keyring_generation"] = m.keyring_generation;
  j["kek_generation"] = m.kek_generation;
  j["receipt_seq"] = m.receipt_seq;
  j["audit_seq"] = m.audit_seq;
  j["tombstone_log"] = m.tombstone_log;
  j["tombstone_offset"] = m.tombstone_offset;
  nlohmann::json a = nlohmann::json::array();
  for (const auto& in : m.instances) {
    nlohmann::json e = {{"name", in.name},
                        {"dir", in.dir},
                        {"backup_id", in.backup_id},
                        {"sequence", in.sequence},
                        {"bytes", in.bytes},
                        {"files", in.files}};
    if (m.format >= 2) {
      nlohmann::json c = nlohmann::json::array();
      for (const auto& f : in.contents) {
        c.push_back({{"path", f.path}, {"size", f.size}, {"sha256", f.sha256}});
      }
      e["contents"] = std::move(c);
    }
    a.push_back(std::move(e));
  }
  j["instances"] = std::move(a);
  return j;
}

// A file's path inside an instance's BackupEngine directory, as
// BackupEngine names its files: "shared_checksum/<name>", "shared/<name>"
// or "private/<backup id>/<name>", each part of [A-Za-z0-9._-] and none
// "." or "..". Anything else (a path leaving the directory) is refused
// before it is opened.
bool SafeBackupPath(const std::string& path) {
  if (path.empty() || path.size() > 512) return false;
  std::vector<std::string> parts;
  size_t from = 0;
  for (;;) {
    const size_t slash = path.find('/', from);
    parts.push_back(
        path.substr(from, slash == std::string::npos ? std::string::npos : slash - from));
    if (slash == std::string::npos) break;
    from = slash + 1;
  }
  for (const auto& p : parts) {
    if (p.empty() || p == "." || p == "..") return false;
    for (char c : p) {
      const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '.' || c == '_' || c == '-';
      if (!ok) return false;
    }
  }
  if (parts.size() == 2) return parts[0] == "shared_checksum" || parts[0] == "shared";
  if (parts.size() == 3) {
    return parts[0] == "private" && std::all_of(parts[1].begin(), parts[1].end(),
                                                [](char c) { return c >= '0' && c <= '9'; });
  }
  return false;
}

bool LowerHex(const std::string& s, size_t n) {
  return s.size() == n && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

// The name a file of an instance backup is restored under: what RocksDB
// 7.8.3's BackupEngine does (BackupEngineImpl::FileInfo::GetDbFileName):
// the last part of the path; in shared_checksum/, without what lies from
// the first '_' to the last '.' ("000012_s1Q...X.sst" -> "000012.sst").
// "" for a name that rule does not fit.
std::string RestoredName(const std::string& path) {
  const size_t slash = path.rfind('/');
  std::string name = slash == std::string::npos ? path : path.substr(slash + 1);
  if (path.compare(0, 16, "shared_checksum/") == 0) {
    const size_t us = name.find('_');
    const size_t dot = name.rfind('.');
    if (us == std::string::npos || dot == std::string::npos || dot < us) return "";
    name.erase(us, dot - us);
  }
  return name;
}

Status ParseManifest(const std::string& text, const std::string& where, BackupManifest* m) {
  auto bad = [&](const std::string& why) {
    return Status::Corruption("backup manifest " + where + ": " + why);
  };
  nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return bad("not a JSON object");
  try {
    const uint32_t format = j.at("format").get<uint32_t>();
    if (format > kManifestFormat) {
      return Status::NotSupported("backup manifest " + where + ": format " +
                                  std::to_string(format) +
                                  " is newer than this build understands");
    }
    if (format < kOldestManifestFormat) {
      return bad("format " + std::to_string(format) + " is unknown");
    }
    m->format = format;
    m->cut = j.at("cut").get<uint64_t>();
    m->cut_id = j.at("cut_id").get<std::string>();
    m->store_id = j.at("store_id").get<std::string>();
    m->region = j.at("region").get<std::string>();
    m->time = j.at("time").get<int64_t>();
    m->keyring_generation = j.at("keyring_generation").get<uint64_t>();
    m->kek_generation = j.at("kek_generation").get<uint32_t>();
    m->receipt_seq = j.at("receipt_seq").get<uint64_t>();
    m->audit_seq = j.at("audit_seq").get<uint64_t>();
    m->tombstone_log = j.at("tombstone_log").get<bool>();
    m->tombstone_offset = j.at("tombstone_offset").get<uint64_t>();
    m->signature = j.at("signature").get<std::string>();
    for (const auto& e : j.at("instances")) {
      BackupInstance in;
      in.name = e.at("name").get<std::string>();
      in.dir = e.at("dir").get<std::string>();
      in.backup_id = e.at("backup_id").get<uint32_t>();
      in.sequence = e.at("sequence").get<uint64_t>();
      in.bytes = e.at("bytes").get<uint64_t>();
      in.files = e.at("files").get<uint32_t>();
      if (format >= 2) {
        if (e.at("contents").size() != in.files) {
          return bad("instance " + in.name + ": contents does not list its " +
                     std::to_string(in.files) + " files");
        }
        for (const auto& f : e.at("contents")) {
          BackupFile bf;
          bf.path = f.at("path").get<std::string>();
          bf.size = f.at("size").get<uint64_t>();
          bf.sha256 = f.at("sha256").get<std::string>();
          if (!SafeBackupPath(bf.path) || RestoredName(bf.path).empty()) {
            return bad("instance " + in.name + ": a file path is not one BackupEngine writes");
          }
          if (!LowerHex(bf.sha256, 2 * kSha256Bytes)) {
            return bad("instance " + in.name + ": a file's sha256 is not 64 lowercase hex digits");
          }
          if (!in.contents.empty() && !(in.contents.back().path < bf.path)) {
            return bad("instance " + in.name + ": files are not in path order (or listed twice)");
          }
          in.contents.push_back(std::move(bf));
        }
      }
      m->instances.push_back(std::move(in));
    }
  } catch (const std::exception&) {
    return bad("a field is missing or of the wrong type");
  }
  // Exactly as this build writes it: a number read as another (2.9 as 2,
  // 2^32 + 2 as 2) or a field added would otherwise be signed as one thing
  // and read as another (attack28 F6).
  nlohmann::json body = j;
  body.erase("signature");
  if (signed_json::Canonical(body) != m->Canonical()) {
    return bad("a field is not in the form this build writes (a number out of range or not an "
               "integer, or a field it does not know)");
  }
  // The layout is fixed: meta, then shard/0000 ... in order. Anything else
  // (a path that leaves the backup directory) is refused before use.
  if (m->instances.empty() || m->instances[0].name != "meta" || m->instances[0].dir != "meta") {
    return bad("the first instance must be the metadata instance");
  }
  for (size_t i = 1; i < m->instances.size(); ++i) {
    const uint32_t s = static_cast<uint32_t>(i - 1);
    if (m->instances[i].name != ShardName(s) || m->instances[i].dir != ShardBackupDir(s)) {
      return bad("instance " + std::to_string(i) + " is not shard " + std::to_string(s));
    }
  }
  return Status::OK();
}

Status ReadText(const std::string& path, std::string* out) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return Status::NotFound("cannot read " + path);
  std::ostringstream ss;
  ss << f.rdbuf();
  *out = ss.str();
  return Status::OK();
}

// Temp file, fsync, rename, fsync the directory.
Status WriteFileDurably(const std::string& path, const std::string& data) {
  const std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return Status::IOError("backup: create " + tmp + ": " + std::strerror(errno));
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int e = errno;
      ::close(fd);
      return Status::IOError("backup: write " + tmp + ": " + std::strerror(e));
    }
    off += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) {
    int e = errno;
    ::close(fd);
    return Status::IOError("backup: fsync " + tmp + ": " + std::strerror(e));
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    return Status::IOError("backup: rename " + tmp + ": " + std::strerror(errno));
  }
  const std::string dir = fs::path(path).parent_path().string();
  int d = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (d < 0) return Status::IOError("backup: open " + dir + ": " + std::strerror(errno));
  int rc = ::fsync(d);
  ::close(d);
  if (rc != 0) return Status::IOError("backup: fsync " + dir + ": " + std::strerror(errno));
  return Status::OK();
}

// Regular files under `dir` and their total size.
void TreeSize(const std::string& dir, uint64_t* files, uint64_t* bytes) {
  *files = 0;
  *bytes = 0;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    std::error_code e2;
    if (it->is_regular_file(e2)) {
      ++*files;
      *bytes += it->file_size(e2);
    }
  }
}

// Whether `path` (or, while it does not exist, its nearest existing
// ancestor: where it would be created) is `dir` or lies inside it, compared
// by device and inode along its canonical ".." chain (symlinks resolved).
// Bind mounts are left to fsutil::CheckApart, once the path exists.
bool InsideOf(const std::string& path, const std::string& dir) {
  std::error_code ec;
  fs::path p = fs::absolute(path, ec).lexically_normal();
  if (ec) return false;
  while (!fs::exists(p, ec) && p.has_relative_path()) p = p.parent_path();
  p = fs::canonical(p, ec);
  if (ec) return false;
  for (;;) {
    if (fs::equivalent(p, dir, ec) && !ec) return true;
    if (!p.has_relative_path()) return false;
    p = p.parent_path();
  }
}

// An exclusive lock on BACKUP_DIR/LOCK for the duration of a backup: two
// BackupEngines writing one directory at once is unspecified behaviour.
class DirLock {
 public:
  Status Take(const std::string& dir) {
    const std::string path = dir + "/LOCK";
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd_ < 0) return Status::IOError("backup: open " + path + ": " + std::strerror(errno));
    if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      return Status::FailedPrecondition("backup directory " + dir +
                                        " is in use by another backup");
    }
    return Status::OK();
  }
  ~DirLock() {
    if (fd_ >= 0) ::close(fd_);
  }

 private:
  int fd_ = -1;
};

Status FromIo(const rocksdb::IOStatus& s, const std::string& what) {
  if (s.ok()) return Status::OK();
  if (s.IsCorruption()) return Status::Corruption(what + ": " + s.ToString());
  if (s.IsNotFound()) return Status::NotFound(what + ": " + s.ToString());
  return Status::IOError(what + ": " + s.ToString());
}

// BackupEngine calls progress_callback once per this many bytes copied by
// a copy thread, in a loop after each 5 MB read: at 1 (what the cut needs,
// the first bytes) it was called once per byte, under a mutex, and those
// calls were most of a full backup's CPU time (decision 0063: 73 MB backed
// up at 16-35 MB/s, 1.3 s of user time). At 4 KiB the first call still
// comes with the first read of any but the smallest files, and a 5 MB read
// costs 1,280 calls, not 5 million.
constexpr uint64_t kCutSignalBytes = 4096;

rocksdb::BackupEngineOptions EngineOptions(const std::string& dir) {
  rocksdb::BackupEngineOptions o(dir);
  o.share_table_files = true;
  o.share_files_with_checksum = true;
  o.sync = true;
  o.max_background_operations = 2;
  return o;
}

// The tombstone log's header (decision 0044): a log pruned by
// PruneTombstoneLog starts with "cvtomb1 base <offset>\n"; its first entry
// is at logical offset <offset>. Offsets (a manifest's tombstone_offset)
// are logical: the bytes ever appended before that point.
constexpr std::string_view kTombstoneHeader = "cvtomb1 base ";
struct TombstoneLogView {
  uint64_t base = 0;     // logical offset of the first entry held
  size_t body_at = 0;    // where the entries start in the file
  uint64_t size = 0;     // logical size: base + entry bytes held
};
Status ParseTombstoneLogBase(const std::string& log, TombstoneLogView* v) {
  *v = {};
  if (log.compare(0, kTombstoneHeader.size(), kTombstoneHeader) == 0) {
    const size_t nl = log.find('\n');
    const std::string digits =
        nl == std::string::npos ? "" : log.substr(kTombstoneHeader.size(), nl - kTombstoneHeader.size());
    if (digits.empty() || digits.size() > 19 ||
        !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      return Status::Corruption("the tombstone log's header is malformed");
    }
    v->base = std::stoull(digits);
    v->body_at = nl + 1;
  }
  v->size = v->base + (log.size() - v->body_at);
  return Status::OK();
}

// A restore of a cut whose offset the log no longer holds, refused.
Status CheckTombstoneOffset(const TombstoneLogView& v, uint64_t offset) {
  if (offset < v.base) {
    return Status::FailedPrecondition(
        "the tombstone log was pruned past this backup (its offset " + std::to_string(offset) +
        " is before the log's base " + std::to_string(v.base) +
        "): the erasures done after it can no longer be re-applied, so it is not restored; "
        "restore a newer backup");
  }
  if (offset > v.size) {
    return Status::Corruption("the tombstone log is shorter than at the backup's cut (truncated or "
                              "replaced)");
  }
  return Status::OK();
}

// One manifest file of cuts/ (`n`: its name there), read and parsed.
Status ReadManifest(const std::string& cuts, const std::string& n, BackupManifest* m) {
  std::string text;
  // Read before any signature is checked: bounded (attack28 F4: a planted
  // manifest of 192 MB took 1.4 GB to parse).
  fsutil::NoFollowRead read;
  CV_RETURN_IF_ERROR(fsutil::ReadNoFollow(cuts + "/" + n, kMaxManifestBytes, &text, &read));
  if (read == fsutil::NoFollowRead::kMissing) return Status::NotFound("cannot read cuts/" + n);
  if (read == fsutil::NoFollowRead::kTooLarge) {
    return Status::Corruption("backup manifest cuts/" + n + " is larger than " +
                              std::to_string(kMaxManifestBytes >> 20) +
                              " MiB: not one this build wrote");
  }
  if (read != fsutil::NoFollowRead::kRead) {
    return Status::Corruption("backup manifest cuts/" + n + " is not a regular file");
  }
  CV_RETURN_IF_ERROR(ParseManifest(text, "cuts/" + n, m));
  if (ManifestName(m->cut) != "cuts/" + n) {
    return Status::Corruption("backup manifest cuts/" + n + ": names cut " +
                              std::to_string(m->cut) + " (renamed?)");
  }
  return Status::OK();
}

// The manifests of a backup directory, oldest first, and those that do not
// read or parse (attack28 F5: one such manifest used to stop the backup,
// verify and restore of every other cut). kNotFound when there is none.
struct Manifests {
  std::vector<BackupManifest> cuts;
  std::vector<UnreadableCut> unreadable;
  // kCorruption naming the first unreadable manifest when none reads.
  Status AnyReads(const std::string& backup_dir) const {
    if (!cuts.empty()) return Status::OK();
    return Status::Corruption("no manifest of " + backup_dir + " reads: " +
                              unreadable.front().problem);
  }
  // The highest cut number in use, unreadable manifests included.
  uint64_t HighestCut() const {
    uint64_t h = cuts.empty() ? 0 : cuts.back().cut;
    for (const auto& u : unreadable) h = std::max(h, u.cut);
    return h;
  }
};

Result<Manifests> ReadAllManifests(const std::string& backup_dir) {
  Manifests out;
  const std::string cuts = backup_dir + "/cuts";
  std::error_code ec;
  if (!fs::is_directory(cuts, ec)) {
    return Status::NotFound("no backup in " + backup_dir + " (no cuts/ directory)");
  }
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(cuts, ec)) {
    const std::string n = e.path().filename().string();
    // Only the names this build writes (ManifestName: eight digits): any
    // other entry is not a manifest, and its name is never printed.
    if (n.size() == 13 && n.ends_with(".json") &&
        std::all_of(n.begin(), n.begin() + 8, [](char c) { return c >= '0' && c <= '9'; })) {
      names.push_back(n);
    }
  }
  std::sort(names.begin(), names.end());
  for (const auto& n : names) {
    BackupManifest m;
    Status s = ReadManifest(cuts, n, &m);
    if (s.ok()) {
      out.cuts.push_back(std::move(m));
      continue;
    }
    UnreadableCut u;
    u.manifest = "cuts/" + n;
    u.cut = std::stoull(n.substr(0, 8));
    u.problem = s.message();
    out.unreadable.push_back(std::move(u));
  }
  if (out.cuts.empty() && out.unreadable.empty()) {
    return Status::NotFound("no backup in " + backup_dir + " (no manifest)");
  }
  return out;
}

// The readable manifests; kCorruption naming the first unreadable one when
// none reads.
Result<std::vector<BackupManifest>> ReadManifests(
    const std::string& backup_dir, std::vector<UnreadableCut>* unreadable = nullptr) {
  CV_ASSIGN_OR_RETURN(Manifests all, ReadAllManifests(backup_dir));
  CV_RETURN_IF_ERROR(all.AnyReads(backup_dir));
  if (unreadable != nullptr) *unreadable = std::move(all.unreadable);
  return std::move(all.cuts);
}

Status CheckSignature(const BackupManifest& m, std::string_view public_key) {
  CV_RETURN_IF_ERROR(signed_json::CheckPublicKey(public_key));
  if (!signed_json::Verifies(m.Canonical(), m.signature, public_key)) {
    return Status::Corruption("backup manifest of cut " + std::to_string(m.cut) +
                              ": signature does not verify against this store's signing key "
                              "(edited by hand, or another store's backup)");
  }
  return Status::OK();
}

// BackupEngine's descriptions of an instance's backups (`meta/<id>`),
// checked before RocksDB loads them: Debian's build (assertions on) aborts
// the process on a file two descriptions give different crc32c values
// (BackupMeta::AddFile's assert(false)), and a shared_checksum name
// without '_' makes it throw std::out_of_range (GetDbFileName). Both are
// edits by hand (attack28 F3); refused here as kCorruption naming the
// description. Only what those two need is parsed (RocksDB 7.8.3's
// BackupMeta::LoadFromFile has the format).
Status CheckEngineDescriptions(const std::string& engine_dir, const std::string& label) {
  constexpr uint64_t kMaxDescriptionBytes = 64u << 20;
  std::error_code ec;
  const std::string meta = engine_dir + "/meta";
  if (!fs::is_directory(meta, ec)) return Status::OK();  // no backup yet
  std::map<std::string, std::pair<std::string, std::string>> crc_of;  // file -> (crc, where)
  for (auto it = fs::directory_iterator(meta, ec); !ec && it != fs::directory_iterator();
       it.increment(ec)) {
    const std::string id = it->path().filename().string();
    if (id.empty() ||
        !std::all_of(id.begin(), id.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      continue;  // RocksDB loads meta/<digits> only
    }
    const std::string where = label + "/meta/" + id;
    auto bad = [&](const std::string& why) {
      return Status::Corruption("backup directory: BackupEngine's description " + where + " " +
                                why + " (edited by hand); nothing read from it");
    };
    std::string text;
    fsutil::NoFollowRead read;
    CV_RETURN_IF_ERROR(
        fsutil::ReadNoFollow(it->path().string(), kMaxDescriptionBytes, &text, &read));
    if (read == fsutil::NoFollowRead::kMissing) return Status::NotFound("cannot read " + where);
    if (read == fsutil::NoFollowRead::kTooLarge) return bad("is too large");
    if (read != fsutil::NoFollowRead::kRead) return bad("is not a regular file");
    std::vector<std::string> lines;
    for (size_t from = 0; from < text.size();) {
      const size_t nl = text.find('\n', from);
      lines.push_back(text.substr(from, nl == std::string::npos ? std::string::npos : nl - from));
      if (nl == std::string::npos) break;
      from = nl + 1;
    }
    size_t i = 0;
    if (i < lines.size() && lines[i].starts_with("schema_version ")) ++i;
    i += 2;  // timestamp, sequence number
    while (i < lines.size() && !(lines[i].size() > 0 && lines[i][0] >= '0' && lines[i][0] <= '9')) {
      ++i;  // meta fields ("metadata <hex>")
    }
    ++i;  // the number of files
    std::set<std::string> listed;
    for (; i < lines.size(); ++i) {
      const std::string& line = lines[i];
      if (line.empty() || line.starts_with("//")) continue;  // a schema 2 footer
      const size_t sp = line.find(' ');
      const std::string file = line.substr(0, sp);
      if (!SafeBackupPath(file) || RestoredName(file).empty()) {
        return bad("names a file " + file + " of a form BackupEngine does not write");
      }
      if (!listed.insert(file).second) return bad("lists " + file + " twice");
      const size_t at = line.find(" crc32 ");
      if (at == std::string::npos) continue;
      const std::string crc = line.substr(at + 7, line.find(' ', at + 7) - (at + 7));
      auto [known, inserted] = crc_of.try_emplace(file, crc, where);
      if (!inserted && known->second.first != crc) {
        return bad("gives " + file + " another crc32c than " + known->second.second);
      }
    }
  }
  if (ec) return Status::IOError("backup: list " + meta + ": " + ec.message());
  return Status::OK();
}

// What CheckInstances reads of each instance backup.
enum class Depth {
  // The backup exists, belongs to this cut and (format 2) lists exactly
  // the files the manifest signs, at their signed sizes: no file is read.
  kListing,
  // And every file's contents: its SHA-256 against the signed one (format
  // 2); its crc32c against BackupEngine's (format 1, which signs none).
  kContents,
};

std::string CutWhat(const BackupManifest& m, const BackupInstance& in) {
  return "backup cut " + std::to_string(m.cut) + ": instance " + in.name;
}

// The files an instance backup lists (BackupEngine's meta/<id>), against
// those the manifest signs.
Status CheckListing(const BackupManifest& m, const BackupInstance& in,
                    const rocksdb::BackupInfo& info) {
  std::vector<std::pair<std::string, uint64_t>> listed;
  for (const auto& f : info.file_details) listed.emplace_back(f.relative_filename, f.size);
  std::sort(listed.begin(), listed.end());
  std::vector<std::pair<std::string, uint64_t>> want;
  for (const auto& f : in.contents) want.emplace_back(f.path, f.size);
  if (listed == want) return Status::OK();
  auto named = [](const std::pair<std::string, uint64_t>& f) {
    return f.first + " (" + std::to_string(f.second) + " bytes)";
  };
  std::string example;
  for (size_t i = 0; i < std::max(listed.size(), want.size()) && example.empty(); ++i) {
    if (i >= listed.size()) {
      example = "signed " + named(want[i]) + " is not listed";
    } else if (i >= want.size()) {
      example = named(listed[i]) + " is listed but not signed";
    } else if (listed[i] != want[i]) {
      example = "listed " + named(listed[i]) + ", signed " + named(want[i]);
    }
  }
  return Status::Corruption(CutWhat(m, in) + ": its backup in " + in.dir +
                            " lists other files than the manifest signs (" + example +
                            "): its description meta/" + std::to_string(in.backup_id) +
                            " was edited or replaced");
}

// Each signed file under `root` (the instance's BackupEngine directory, or
// the directory it was restored into when `restored`) has its signed size
// and SHA-256.
Status CheckContents(const BackupManifest& m, const BackupInstance& in, const std::string& root,
                     bool restored) {
  for (const auto& f : in.contents) {
    const std::string name = restored ? RestoredName(f.path) : f.path;
    std::string digest;
    uint64_t size = 0;
    Status s = Sha256OfFile(root + "/" + name, &digest, &size);
    if (s.code() == Code::kIOError) {  // unreadable here (permissions, a disk error): not damage
      return Status::IOError(CutWhat(m, in) + ": file " + name + (restored ? " (restored)" : "") +
                             ": " + s.message());
    }
    if (!s.ok()) {
      return Status::Corruption(CutWhat(m, in) + ": file " + name +
                                (restored ? " (restored)" : "") + ": " + s.message());
    }
    if (size != f.size || crypto::Hex(digest) != f.sha256) {
      return Status::Corruption(
          CutWhat(m, in) + ": file " + f.path + (restored ? " as restored" : "") +
          " does not match the SHA-256 the manifest signs (" +
          (size != f.size ? std::to_string(size) + " bytes, signed " + std::to_string(f.size)
                          : "other contents") +
          "): it was changed after the cut (damaged, or replaced by a file whose own checksums "
          "were made to match)");
    }
  }
  return Status::OK();
}

// A restored instance (format 2): the directory holds exactly the signed
// files, under the names BackupEngine restores them to, each with its
// signed contents. Read from the copy, not the backup: a file swapped in
// the backup directory between the checks before the copy and the copy
// itself is caught here.
Status CheckRestoredInstance(const BackupManifest& m, const BackupInstance& in,
                             const std::string& target) {
  std::set<std::string> names;
  for (const auto& f : in.contents) {
    if (!names.insert(RestoredName(f.path)).second) {
      return Status::Corruption(CutWhat(m, in) + ": two signed files restore to one name (" +
                                RestoredName(f.path) + ")");
    }
  }
  std::error_code ec;
  for (auto it = fs::directory_iterator(target, ec); !ec && it != fs::directory_iterator();
       it.increment(ec)) {
    const std::string n = it->path().filename().string();
    if (names.count(n) == 0) {
      return Status::Corruption(CutWhat(m, in) + ": the restore wrote " + n +
                                ", a file the manifest does not sign");
    }
  }
  if (ec) return Status::IOError("restore: list " + target + ": " + ec.message());
  return CheckContents(m, in, target, /*restored=*/true);
}

// Every instance backup the manifest names exists and was taken in this
// cut; then as `depth` says.
Status CheckInstances(const std::string& backup_dir, const BackupManifest& m, Depth depth) {
  for (const auto& in : m.instances) {
    rocksdb::BackupEngineReadOnly* raw = nullptr;
    const std::string dir = backup_dir + "/" + in.dir;
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) {
      return Status::Corruption(CutWhat(m, in) + ": its directory " + in.dir + " is missing");
    }
    CV_RETURN_IF_ERROR(CheckEngineDescriptions(dir, in.dir));
    CV_RETURN_IF_ERROR(FromIo(rocksdb::BackupEngineReadOnly::Open(
                                  EngineOptions(dir), rocksdb::Env::Default(), &raw),
                              "backup: open " + in.dir));
    std::unique_ptr<rocksdb::BackupEngineReadOnly> engine(raw);
    rocksdb::BackupInfo info;
    rocksdb::Status s = engine->GetBackupInfo(in.backup_id, &info, /*include_file_details=*/true);
    if (!s.ok()) {
      return Status::Corruption(CutWhat(m, in) + ": backup id " + std::to_string(in.backup_id) +
                                " is not in " + in.dir + " (missing or corrupt)");
    }
    if (info.app_metadata != AppMetadata(m.cut_id, in)) {
      return Status::Corruption(CutWhat(m, in) + ": backup id " + std::to_string(in.backup_id) +
                                " belongs to another cut (instances from different cuts: " +
                                in.dir + " was replaced or mixed in)");
    }
    if (m.format >= 2) {
      CV_RETURN_IF_ERROR(CheckListing(m, in, info));
      if (depth == Depth::kContents) CV_RETURN_IF_ERROR(CheckContents(m, in, dir, false));
    } else if (depth == Depth::kContents) {
      rocksdb::IOStatus v = engine->VerifyBackup(in.backup_id, true);
      if (!v.ok()) {
        return Status::Corruption(CutWhat(m, in) +
                                  ": a file does not match its checksum or size: " + v.ToString());
      }
    }
  }
  return Status::OK();
}

// (instance dir, path) -> (size, hex SHA-256).
using SignedHashes =
    std::map<std::pair<std::string, std::string>, std::pair<uint64_t, std::string>>;

// The files of an instance backup just made, each with the SHA-256 of its
// bytes in the backup directory, and where those bytes are vouched for
// (decision 0076):
// - a file an earlier cut whose signature verifies names at the same path
//   and size (BackupEngine reused it without reading it) must have the
//   SHA-256 that cut signed;
// - any other file must equal the instance's own file in the store
//   (`source_dir`, whose file deletions are held off until this is done):
//   a shared table or blob file whole, a MANIFEST or WAL file as the prefix
//   BackupEngine copied, CURRENT naming the MANIFEST of this backup. So a
//   file changed in the backup directory while the copy ran, or reused from
//   a backup no signed cut names (one a killed backup left, a cut whose
//   manifest no longer verifies, a cut of format 1), is never signed.
// Anything else is kCorruption naming the file; nothing is then added.
Status HashInstance(rocksdb::BackupEngine* engine, rocksdb::BackupID id, const std::string& root,
                    const std::string& instance_dir, const std::string& source_dir,
                    const SignedHashes& earlier, std::vector<BackupFile>* out) {
  rocksdb::BackupInfo info;
  rocksdb::Status s = engine->GetBackupInfo(id, &info, /*include_file_details=*/true);
  if (!s.ok()) return Status::IOError("backup: describe " + instance_dir + ": " + s.ToString());
  out->clear();
  std::string manifest;  // the MANIFEST file of this backup, for CURRENT
  for (const auto& f : info.file_details) {
    const std::string name = RestoredName(f.relative_filename);
    if (name.starts_with("MANIFEST-")) manifest = name;
  }
  auto refused = [&](const std::string& path, const std::string& why) {
    return Status::Corruption(
        "backup: instance " + instance_dir + ": the new cut does not verify (" + path + " " + why +
        "): a file of the backup directory was changed, or is reused from a backup no signed cut "
        "vouches for; nothing was added. Back up into a new directory, and keep this one only for "
        "the cuts `callvault backup verify` still passes");
  };
  for (const auto& f : info.file_details) {
    BackupFile bf;
    bf.path = f.relative_filename;
    bf.size = f.size;
    const std::string name = RestoredName(bf.path);
    if (!SafeBackupPath(bf.path) || name.empty()) {
      return Status::Internal("backup: " + instance_dir + ": BackupEngine named a file " + bf.path +
                              ", not of a form this build signs");
    }
    std::string digest;
    uint64_t size = 0;
    CV_RETURN_IF_ERROR(Sha256OfFile(root + "/" + bf.path, &digest, &size));
    bf.sha256 = crypto::Hex(digest);
    if (size != bf.size) {
      return refused(bf.path, "holds " + std::to_string(size) + " bytes, BackupEngine recorded " +
                                  std::to_string(bf.size));
    }
    const auto signed_before = earlier.find({instance_dir, bf.path});
    if (signed_before != earlier.end() && signed_before->second.first == bf.size) {
      if (signed_before->second.second != bf.sha256) {
        return refused(bf.path, "no longer has the SHA-256 an earlier cut signed");
      }
    } else if (name == "CURRENT") {
      std::string current;
      if (!ReadText(root + "/" + bf.path, &current).ok() || manifest.empty() ||
          current != manifest + "\n") {
        return refused(bf.path, "does not name this backup's MANIFEST");
      }
    } else {
      // Shared files are immutable: the whole file. Private ones (MANIFEST,
      // WAL) were copied up to their size at the cut: that prefix.
      std::string source;
      uint64_t source_size = 0;
      Status read = Sha256OfFilePrefix(source_dir + "/" + name, bf.size, &source, &source_size);
      if (read.code() == Code::kNotFound) {
        return refused(bf.path, "is not in the store (" + name + "), and no signed cut names it");
      }
      CV_RETURN_IF_ERROR(read);
      if (source_size != bf.size || source != digest) {
        return refused(bf.path, "differs from the store's " + name);
      }
    }
    out->push_back(std::move(bf));
  }
  std::sort(out->begin(), out->end(),
            [](const BackupFile& a, const BackupFile& b) { return a.path < b.path; });
  for (size_t i = 1; i < out->size(); ++i) {
    if ((*out)[i - 1].path == (*out)[i].path) {
      return Status::Internal("backup: " + instance_dir + ": BackupEngine lists " + (*out)[i].path +
                              " twice");
    }
  }
  return Status::OK();
}

// The log holds at least what every cut of this backup directory signed
// by this store recorded. A restore of an older cut checks the log only
// from its own offset on; a log cut back, edited (a line dropped) or put
// back from a copy of the key directory taken before later erasures still
// reaches that offset, and the erasures it lost would stay undone without
// a word. A newer cut's offset shows the log was once longer. Manifests
// that do not verify are left out: they prove nothing (and a damaged newer
// cut must not stop the restore of an older one). A newer cut whose
// manifest does not read at all refuses the restore of `restoring` (an
// older cut), though: it may be the one that shows the log was cut back
// (attack on session 30's fix of attack28 F5: a damaged disk, or a build
// older than the cut's format, with a key directory put back from a copy,
// restored an erasure-undone store with exit 0). The operator who knows the
// log is current moves that manifest out of cuts/ and restores again.
Status CheckLogNotOlderThanCuts(const std::string& backup_dir, const TombstoneLogView& view,
                                std::string_view public_key, uint64_t restoring) {
  CV_ASSIGN_OR_RETURN(Manifests all, ReadAllManifests(backup_dir));
  for (const auto& u : all.unreadable) {
    if (u.cut <= restoring) continue;
    return Status::Corruption(
        "cut " + std::to_string(u.cut) + " of this backup directory, newer than cut " +
        std::to_string(restoring) + ", does not read (" + u.problem +
        "), so whether the key directory's tombstone log was cut back since cannot be checked, "
        "and erasures done after cut " + std::to_string(restoring) +
        " could come back; nothing restored. If you know the log is current, move " +
        u.manifest + " out of cuts/ and restore again");
  }
  for (const auto& c : all.cuts) {
    if (!c.tombstone_log || c.tombstone_offset <= view.size) continue;
    if (!CheckSignature(c, public_key).ok()) continue;
    return Status::Corruption(
        "the tombstone log is shorter (" + std::to_string(view.size) + " bytes) than cut " +
        std::to_string(c.cut) + " of this backup directory recorded (" +
        std::to_string(c.tombstone_offset) +
        "): it was cut back, edited or put back from an older copy of the key directory, and "
        "erasures done after the restored cut may be missing from it; nothing restored");
  }
  return Status::OK();
}

// Cut `cut` (0: the newest). An unreadable manifest refuses only its own
// cut, and "the newest" when it has the highest number: the newest cut
// that reads would be an older state than the caller asked for.
Result<BackupManifest> PickCut(const std::string& backup_dir, uint64_t cut) {
  CV_ASSIGN_OR_RETURN(Manifests all, ReadAllManifests(backup_dir));
  CV_RETURN_IF_ERROR(all.AnyReads(backup_dir));
  const uint64_t want = cut != 0 ? cut : all.HighestCut();
  for (const auto& u : all.unreadable) {
    if (u.cut == want) {
      return Status::Corruption("cut " + std::to_string(u.cut) + (cut == 0 ? ", the newest," : "") +
                                " of " + backup_dir + " cannot be used: " + u.problem +
                                (cut == 0 ? "; name an older cut (--cut N; `backup list`)" : ""));
    }
  }
  for (auto& m : all.cuts) {
    if (m.cut == want) return m;
  }
  return Status::NotFound("backup " + backup_dir + " has no cut " + std::to_string(cut));
}
}  // namespace

std::string BackupManifest::Canonical() const { return signed_json::Canonical(Body(*this)); }

std::string BackupManifest::ToJson() const {
  return signed_json::WithSignature(Body(*this), signature, 2) + "\n";
}

Result<std::vector<BackupManifest>> ListBackups(const std::string& backup_dir,
                                                std::vector<UnreadableCut>* unreadable) {
  return ReadManifests(backup_dir, unreadable);
}

Result<BackupManifest> VerifyBackup(const std::string& backup_dir, uint64_t cut,
                                    std::string_view public_key) {
  CV_ASSIGN_OR_RETURN(BackupManifest m, PickCut(backup_dir, cut));
  CV_RETURN_IF_ERROR(CheckSignature(m, public_key));
  CV_RETURN_IF_ERROR(CheckInstances(backup_dir, m, Depth::kContents));
  return m;
}

// ---------------------------------------------------------------------------
// Backup

Result<BackupInfo> Store::Impl::Backup(const std::string& dir_in, const BackupOptions& opts) {
  const int64_t start = NowMicros();
  if (dir_in.empty()) return Status::InvalidArgument("backup directory is empty");
  std::error_code ec;
  std::string dir = fs::absolute(dir_in, ec).lexically_normal().string();
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  // Refusals come before anything is created: a refused backup changes
  // nothing (no `cuts/` and `shards/` left in the store, the key directory
  // or a new directory).
  if (!damaged_shards_.empty()) {  // decision 0034: a backup is of the whole store
    const auto& [i, why] = *damaged_shards_.begin();
    return Status::Corruption("backup: shard " + std::to_string(i) + " does not open (" + why +
                              "); a backup of the store needs every shard");
  }
  const Status in_store = Status::InvalidArgument(
      "the backup directory must be apart from the store directory (not inside it, nor "
      "holding it)");
  const Status in_keys = Status::InvalidArgument(
      "the backup directory must be apart from the key directory (a backup holds no key)");
  const std::string keys = kp_->LocalDirectory();
  if (InsideOf(dir, path_)) return in_store;
  if (!keys.empty() && InsideOf(dir, keys)) return in_keys;
  if (fs::exists(dir, ec)) {
    if (!fsutil::CheckApart(path_, dir).ok()) return in_store;
    if (!keys.empty() && !fsutil::CheckApart(dir, keys).ok()) return in_keys;
  }
  fs::create_directories(dir + "/cuts", ec);
  if (!ec) fs::create_directories(dir + "/shards", ec);
  if (ec) return Status::IOError("backup: create " + dir + ": " + ec.message());
  ::chmod(dir.c_str(), 0700);
  // Again once it exists (CheckApart judges a missing path by its parent;
  // bind mounts): never inside the store (its files would be backed up into
  // themselves) nor inside or around the key directory (a backup holds no key).
  if (!fsutil::CheckApart(path_, dir).ok()) return in_store;
  if (!keys.empty() && !fsutil::CheckApart(dir, keys).ok()) return in_keys;
  DirLock dir_lock;
  CV_RETURN_IF_ERROR(dir_lock.Take(dir));

  uint64_t files_before = 0, bytes_before = 0;
  TreeSize(dir, &files_before, &bytes_before);
  uint64_t cut = 1;
  // The signing key is created (if need be) before the cut: never under
  // the admin lock.
  CV_ASSIGN_OR_RETURN(std::string public_key, kp_->SigningPublicKey());
  SignedHashes earlier_hashes;
  if (auto all = ReadAllManifests(dir); all.ok()) {
    // One backup directory serves one store: another store's cut would
    // become its newest, which this store's restore, `backup verify` and
    // `tombstones prune --keep` then refuse.
    const std::string mine = crypto::Hex(store_id_);
    for (const auto& c : all->cuts) {
      if (c.store_id != mine) {
        return Status::FailedPrecondition(
            "backup directory " + dir + " holds cut " + std::to_string(c.cut) +
            " of another store (" + c.store_id + "); back this store up into its own directory");
      }
    }
    // With no manifest that reads, nothing tells whose directory it is.
    if (all->cuts.empty()) {
      return Status::FailedPrecondition(
          "backup directory " + dir + " holds no manifest that reads (" +
          all->unreadable.front().manifest + ": " + all->unreadable.front().problem +
          "); back this store up into a directory of its own");
    }
    // After every cut number in use, unreadable ones included: a new cut
    // never takes the name of one this build cannot read.
    cut = all->HighestCut() + 1;
    // Manifest names have eight digits (ManifestName; the listing reads no
    // other): a ninth would write a cut nothing lists again.
    if (cut > kMaxCut) {
      return Status::FailedPrecondition("backup directory " + dir + " has used every cut number (" +
                                        ManifestName(cut - 1) +
                                        "); back this store up into a new directory");
    }
    for (const auto& c : all->cuts) {
      if (c.format < 2 || !CheckSignature(c, public_key).ok()) continue;
      for (const auto& in : c.instances) {
        for (const auto& f : in.contents) earlier_hashes[{in.dir, f.path}] = {f.size, f.sha256};
      }
    }
  } else if (all.status().code() != Code::kNotFound) {
    return all.status();
  }

  BackupManifest m;
  m.cut = cut;
  m.cut_id = crypto::Hex(crypto::RandomString(16));
  m.store_id = crypto::Hex(store_id_);
  m.region = region_;

  struct Done {
    rocksdb::BackupEngine* engine;
    uint32_t id;
  };
  std::vector<std::unique_ptr<rocksdb::BackupEngine>> engines;
  std::vector<Done> created;
  // One instance's copy (see below).
  struct CopyJob {
    BackupInstance in;
    rocksdb::BackupEngine* engine = nullptr;
    rocksdb::BackupID id = 0;
    rocksdb::IOStatus status;
    std::string source_dir;  // the instance's directory in the store
    std::thread thread;
    std::mutex mu;
    std::condition_variable cv;
    bool cut_taken = false;
    // True the first time: the instance's cut is fixed, its copy starts.
    bool CutTaken() {
      std::lock_guard<std::mutex> l(mu);
      const bool first = !cut_taken;
      cut_taken = true;
      cv.notify_all();
      return first;
    }
    void WaitCutTaken() {
      std::unique_lock<std::mutex> l(mu);
      cv.wait(l, [this] { return cut_taken; });
    }
  };
  std::vector<std::unique_ptr<CopyJob>> jobs;
  // Instances whose file deletions this backup holds off (see the cut
  // below); given back once the copy is hashed, or on any way out.
  std::vector<rocksdb::DB*> deletions_held;
  struct GiveBack {
    std::vector<rocksdb::DB*>* dbs;
    ~GiveBack() {
      for (rocksdb::DB* db : *dbs) db->EnableFileDeletions(/*force=*/false).PermitUncheckedError();
    }
  } give_back{&deletions_held};
  Status failed;
  int64_t locked_at = 0, unlocked_at = 0;
  {
    std::lock_guard<std::mutex> l(admin_mu_);
    locked_at = NowMicros();
    m.time = locked_at;
    m.keyring_generation = keyring_.generation;
    m.kek_generation = keyring_.kek_generation;
    m.receipt_seq = receipt_seq_;
    {
      std::lock_guard<std::mutex> a(audit_mu_);
      m.audit_seq = audit_seq_;
    }
    // Every erasure or retention removal logged before this point has
    // written its deletion already (it holds tombstone_mu_ shared from its
    // append to its write), so it is in the copy; every later one is after
    // the offset and a restore replays it.
    std::unique_lock<std::shared_mutex> tombstones(tombstone_mu_);
    if (auto log = kp_->ReadTombstones(); log.ok()) {
      TombstoneLogView view;
      CV_RETURN_IF_ERROR(ParseTombstoneLogBase(*log, &view));
      m.tombstone_log = true;
      m.tombstone_offset = view.size;
    } else if (log.status().code() != Code::kNotSupported) {
      return log.status();
    }
    struct Todo {
      BackupInstance in;
      rocksdb::DB* db;
      std::string source_dir;
    };
    std::vector<Todo> todo;
    todo.push_back({BackupInstance{"meta", "meta"}, meta_.get(), path_ + "/meta"});
    for (uint32_t i = 0; i < shards_.size(); ++i) {
      if (!shards_[i]) {  // decision 0034: a backup is of the whole store
        // find(), not operator[]: the map is read only after the open.
        const auto d = damaged_shards_.find(i);
        return Status::Corruption("backup: shard " + std::to_string(i) + " does not open (" +
                                  (d != damaged_shards_.end() ? d->second : "no reason recorded") +
                                  "); a backup of the store needs every shard");
      }
      todo.push_back(
          {BackupInstance{ShardName(i), ShardBackupDir(i)}, shards_[i]->db(), shards_[i]->path()});
    }
    // Each instance is copied by its own thread; the locks are held only
    // until every instance's point in the cut is taken. BackupEngine takes
    // the instance's live-file list (and the live WAL's size) first and
    // calls progress_callback only while it copies those files, so the first
    // call (or the end of the backup, if less than kCutSignalBytes needed
    // copying) means the instance's cut is fixed.
    for (auto& [in, db, source_dir] : todo) {
      if (Status d = CheckEngineDescriptions(dir + "/" + in.dir, in.dir); !d.ok()) {
        failed = d;
        break;
      }
      rocksdb::BackupEngineOptions eo = EngineOptions(dir + "/" + in.dir);
      eo.callback_trigger_interval_size = kCutSignalBytes;
      rocksdb::BackupEngine* raw = nullptr;
      rocksdb::IOStatus o = rocksdb::BackupEngine::Open(eo, res_->env, &raw);
      if (!o.ok()) {
        failed = FromIo(o, "backup: open " + in.dir);
        break;
      }
      engines.emplace_back(raw);
      // The store's files stay until the copy is hashed against them
      // (HashInstance): BackupEngine holds deletions off only while it
      // copies.
      if (rocksdb::Status d = db->DisableFileDeletions(); !d.ok()) {
        failed = Status::IOError("backup: " + in.name + ": hold file deletions: " + d.ToString());
        break;
      }
      deletions_held.push_back(db);
      auto job = std::make_unique<CopyJob>();
      job->in = in;
      job->in.sequence = db->GetLatestSequenceNumber();
      job->source_dir = source_dir;
      CopyJob* j = job.get();
      const std::string metadata = AppMetadata(m.cut_id, j->in);
      const bool flush = opts.flush_before_backup;
      rocksdb::DB* const instance = db;  // clang 14: no capture of a structured binding
      j->thread = std::thread([j, raw, instance, metadata, flush] {
        rocksdb::CreateBackupOptions co;
        co.flush_before_backup = flush;
        co.progress_callback = [j] {
          // Once per instance, in its copy thread, with its files being copied.
          if (j->CutTaken()) CV_KILL_POINT("backup.copying");
        };
        try {
          j->status = raw->CreateNewBackupWithMetadata(co, instance, metadata, &j->id);
        } catch (const std::exception& e) {  // RocksDB's own, on a malformed name
          j->status = rocksdb::IOStatus::Corruption("BackupEngine failed", e.what());
        }
        j->CutTaken();
      });
      j->engine = raw;
      j->WaitCutTaken();
      jobs.push_back(std::move(job));
    }
    unlocked_at = NowMicros();
  }
  for (auto& j : jobs) {
    j->thread.join();
    if (!j->status.ok()) {
      if (failed.ok()) failed = FromIo(j->status, "backup: instance " + j->in.name);
      continue;
    }
    created.push_back({j->engine, j->id});
    CV_KILL_POINT("backup.after_instance");
    j->in.backup_id = j->id;
    rocksdb::BackupInfo info;
    if (j->engine->GetBackupInfo(j->id, &info).ok()) {
      j->in.bytes = info.size;
      j->in.files = info.number_files;
    }
    m.instances.push_back(j->in);
  }
  // The new cut, read back before it is signed (decisions 0063, 0076): every
  // file hashed, and each hash vouched for by an earlier signed cut or by
  // the store's own file (HashInstance). BackupEngine reuses a shared file
  // already in the directory by its name and size without reading it: a
  // file damaged or replaced there since would otherwise be in this cut
  // too. One thread per instance, as the copy.
  if (failed.ok()) {
    std::vector<Status> hashed(jobs.size());
    std::vector<std::thread> hashers;
    for (size_t i = 0; i < jobs.size(); ++i) {
      CopyJob* j = jobs[i].get();
      const std::string root = dir + "/" + j->in.dir;
      hashers.emplace_back(
          [j, root, &earlier_hashes, out = &hashed[i], contents = &m.instances[i].contents] {
            *out = HashInstance(j->engine, j->id, root, j->in.dir, j->source_dir, earlier_hashes,
                                contents);
          });
    }
    for (auto& t : hashers) t.join();
    for (size_t i = 0; i < jobs.size() && failed.ok(); ++i) failed = hashed[i];
  }
  for (rocksdb::DB* db : deletions_held) {
    db->EnableFileDeletions(/*force=*/false).PermitUncheckedError();
  }
  deletions_held.clear();
  if (failed.ok()) {
    auto sig = kp_->Sign(m.Canonical());
    if (!sig.ok()) failed = sig.status();
    else m.signature = crypto::Hex(*sig);
  }
  if (failed.ok()) failed = WriteFileDurably(dir + "/" + ManifestName(m.cut), m.ToJson());
  if (failed.ok()) CV_KILL_POINT("backup.after_manifest");
  if (!failed.ok()) {
    // No manifest names them: remove the instance backups of this cut.
    for (const auto& d : created) d.engine->DeleteBackup(d.id).PermitUncheckedError();
    return failed;
  }
  BackupInfo out;
  out.manifest = std::move(m);
  out.manifest_path = dir + "/" + ManifestName(out.manifest.cut);
  uint64_t files_after = 0, bytes_after = 0;
  TreeSize(dir, &files_after, &bytes_after);
  out.new_files = files_after > files_before ? files_after - files_before : 0;
  out.new_bytes = bytes_after > bytes_before ? bytes_after - bytes_before : 0;
  out.admin_lock_micros = unlocked_at - locked_at;
  out.total_micros = NowMicros() - start;
  Audit("backup", "",
        "cut=" + std::to_string(out.manifest.cut) + " cut_id=" + out.manifest.cut_id +
            " instances=" + std::to_string(out.manifest.instances.size()) +
            " new_bytes=" + std::to_string(out.new_bytes));
  return out;
}

// ---------------------------------------------------------------------------
// Tombstone log (docs/format.md "Tombstone log"), one line per call:
//   "<time_us> <internal_id> <hex call hash> v <version>\n"      removal
//   "<time_us> <internal_id> <hex call hash> v <version> r <hex subject hash>[ <hex>]\n"
//                                                                 redaction
//   "<time_us> <internal_id> <hex call hash> d <hex rec hash> c <created_at>\n"
//                                                                 recording
// Lines without "v"/"c" were written by builds before decision 0064.

Status Store::Impl::LogTombstones(uint64_t internal_id, const std::vector<std::string>& hashes,
                                  const std::vector<uint64_t>& versions,
                                  const std::vector<std::string>& redact_hashes) {
  if (hashes.empty()) return Status::OK();
  if (versions.size() != hashes.size()) {
    return Status::Internal("tombstone log: one version per call hash expected");
  }
  std::string lines;
  const std::string prefix = std::to_string(NowMicros()) + " " + std::to_string(internal_id) + " ";
  std::string suffix;
  if (!redact_hashes.empty()) {
    suffix = " r";
    for (const auto& h : redact_hashes) suffix += " " + crypto::Hex(h);
  }
  for (size_t i = 0; i < hashes.size(); ++i) {
    lines += prefix + crypto::Hex(hashes[i]) + " v " + std::to_string(versions[i]) + suffix + "\n";
  }
  Status s = kp_->AppendTombstones(lines);
  if (s.code() == Code::kNotSupported) return Status::OK();
  return s;
}

Status Store::Impl::LogRecordingTombstone(uint64_t internal_id, const std::string& call_hash,
                                          const std::string& rec_hash, int64_t created_at) {
  const std::string line = std::to_string(NowMicros()) + " " + std::to_string(internal_id) + " " +
                           crypto::Hex(call_hash) + " d " + crypto::Hex(rec_hash) + " c " +
                           std::to_string(created_at < 0 ? 0 : created_at) + "\n";
  Status s = kp_->AppendTombstones(line);
  if (s.code() == Code::kNotSupported) return Status::OK();
  return s;
}

namespace {
struct TombstoneEntry {
  int64_t time = 0;
  std::string call_hash;
  std::vector<std::string> redact;  // empty: a removal
  std::string recording;            // not empty: the removal of this recording only
  // Decision 0064. A versioned removal: the removed call's last version; a
  // versioned redaction: the version it wrote; a versioned recording line:
  // the recording's created_at. Unversioned lines (earlier builds) are
  // replayed only from the restore's offset, by the rule before 0064.
  bool versioned = false;
  uint64_t version = 0;
  int64_t created_at = 0;
};

// A blind hash (crypto::BlindHash): 16 bytes, 32 hex digits. Any other
// length is a malformed line, not a hash that matches nothing.
bool Hash16(const std::string& hex, std::string* out) {
  return hex.size() == 32 && crypto::FromHex(hex, out) && out->size() == 16;
}

bool Digits(const std::string& s) {
  return !s.empty() && s.size() <= 19 &&
         std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// internal id -> entries in log order: every versioned line from byte
// `body` on, and the unversioned ones from byte `from` on (from >= body); a
// torn last line (no newline) is ignored. `base` is the logical offset of
// byte `body` (a malformed line is named by its logical offset, the one
// manifests and markers use).
Status ParseTombstones(const std::string& log, size_t body, uint64_t base, size_t from,
                       std::map<uint64_t, std::vector<TombstoneEntry>>* out) {
  size_t pos = body;
  while (pos < log.size()) {
    const size_t nl = log.find('\n', pos);
    if (nl == std::string::npos) break;
    const size_t at = pos;
    std::vector<std::string> f;
    std::istringstream in(log.substr(pos, nl - pos));
    for (std::string w; in >> w;) f.push_back(w);
    pos = nl + 1;
    auto bad = [&] {
      return Status::Corruption("the tombstone log holds a malformed line at logical offset " +
                                std::to_string(base + (at - body)));
    };
    if (f.size() < 3 || !Digits(f[0]) || !Digits(f[1])) return bad();
    TombstoneEntry e;
    e.time = static_cast<int64_t>(std::stoull(f[0]));
    if (!Hash16(f[2], &e.call_hash)) return bad();
    size_t i = 3;
    if (f.size() > i && f[i] == "v") {
      if (f.size() < i + 2 || !Digits(f[i + 1])) return bad();
      e.versioned = true;
      e.version = std::stoull(f[i + 1]);
      // Versions are below 2^63 (a put adds one to the highest; the API's
      // expected versions are int64): a larger one was never written.
      if (e.version > static_cast<uint64_t>(INT64_MAX)) return bad();
      i += 2;
    }
    if (f.size() > i && f[i] == "d") {
      if (e.versioned || f.size() < i + 2 || !Hash16(f[i + 1], &e.recording)) return bad();
      i += 2;
      if (f.size() > i) {
        if (f.size() != i + 2 || f[i] != "c" || !Digits(f[i + 1])) return bad();
        const uint64_t c = std::stoull(f[i + 1]);
        if (c > static_cast<uint64_t>(INT64_MAX)) return bad();
        e.versioned = true;
        e.created_at = static_cast<int64_t>(c);
        i += 2;
      }
    } else if (f.size() > i) {
      if (f[i] != "r" || f.size() < i + 2 || f.size() > i + 3) return bad();
      for (size_t k = i + 1; k < f.size(); ++k) {
        std::string h;
        if (!Hash16(f[k], &h)) return bad();
        e.redact.push_back(std::move(h));
      }
      i = f.size();
    }
    if (i != f.size()) return bad();
    if (!e.versioned && at < from) continue;
    (*out)[std::stoull(f[1])].push_back(std::move(e));
  }
  return Status::OK();
}
}  // namespace

Status Store::Impl::ReplayTombstones(uint64_t from, ReplayCounts* counts,
                                     const std::function<Status(const ReplayCounts&)>& progress) {
  counts->kept_held = 0;  // what holds keep is counted afresh by every run
  auto log = kp_->ReadTombstones();
  if (!log.ok()) return log.status().code() == Code::kNotSupported ? Status::OK() : log.status();
  TombstoneLogView view;
  CV_RETURN_IF_ERROR(ParseTombstoneLogBase(*log, &view));
  CV_RETURN_IF_ERROR(CheckTombstoneOffset(view, from));
  std::map<uint64_t, std::vector<TombstoneEntry>> todo;
  // Versioned lines are replayed from the log's base whatever `from` says
  // (decision 0064): the version rule below makes a line already in the
  // copy a no-op, so a marker naming a later cut than the copy's (attack3)
  // cannot hide the erasures between them. Unversioned ones from `from`.
  CV_RETURN_IF_ERROR(
      ParseTombstones(*log, view.body_at, view.base, view.body_at + (from - view.base), &todo));
  std::map<uint64_t, std::string> live;  // internal id -> tenant id
  {
    std::shared_lock<std::shared_mutex> m(map_mu_);
    for (const auto& [tid, t] : tenants_) {
      if (t->state != TenantState::kActive) continue;
      // Quarantined without a key (a copy older than a key rotation of
      // the tenant, decision 0036): nothing of it is readable, nothing to
      // remove, and it can only be purged. Any other quarantined tenant
      // still gets its removals (it may be reinstated): refused below.
      std::shared_lock<std::shared_mutex> life(t->life);
      if (t->quarantined.load() && t->cf == nullptr) continue;
      live[t->rec.internal_id] = tid;
    }
  }
  for (const auto& [id, entries] : todo) {
    auto l = live.find(id);
    if (l == live.end()) continue;  // purged, or created after the cut
    CV_ASSIGN_OR_RETURN(TenantRef t, Acquire(l->second, Access::kRemove));
    std::lock_guard<std::mutex> w(t->write_mu);
    rocksdb::DB* db = t->shard->db();
    // Removals gather in one batch; a redaction reads the call, so what is
    // pending is written first. Unsynced writes, then one WAL sync per
    // tenant: the replay is durable when this returns.
    rocksdb::WriteBatch batch;
    std::set<std::string> pending;  // calls whose removal is in `batch`
    std::vector<ChangeNote> notes;  // their change feed events
    auto write_pending = [&]() -> Status {
      if (batch.Count() == 0) return Status::OK();
      CV_RETURN_IF_ERROR(AppendChanges(t, notes, &batch));
      CV_RETURN_IF_ERROR(WriteChanges(t, rocksdb::WriteOptions(), &batch, "replay tombstones"));
      CV_RETURN_IF_ERROR(progress(*counts));
      batch.Clear();
      pending.clear();
      notes.clear();
      return Status::OK();
    };
    for (const auto& e : entries) {
      if (!e.redact.empty()) {
        CV_RETURN_IF_ERROR(write_pending());
        rocksdb::WriteBatch rb;
        bool changed = false, held = false;
        std::optional<uint64_t> version;
        if (e.versioned) version = e.version;
        CV_RETURN_IF_ERROR(
            ReplayRedaction(t, e.call_hash, e.redact, e.time, version, &rb, &changed, &held));
        if (held) ++counts->kept_held;
        if (!changed) continue;
        CV_RETURN_IF_ERROR(WriteChanges(t, rocksdb::WriteOptions(), &rb, "replay a redaction"));
        ++counts->redacted;
        CV_RETURN_IF_ERROR(progress(*counts));
        continue;
      }
      if (pending.count(e.call_hash)) continue;
      if (!e.recording.empty()) {
        rocksdb::WriteBatch rb;
        bool found = false;
        int64_t created_at = 0;
        CV_RETURN_IF_ERROR(
            calls::PlanDeleteRecordingByHash(t, e.call_hash, e.recording, &rb, &found, &created_at));
        if (!found) continue;
        // A recording made after this delete, under the same id, stays.
        if (e.versioned && created_at > e.created_at) continue;
        if (!CheckNotHeld(t, e.call_hash, /*any_call=*/false).ok()) {
          ++counts->kept_held;
          continue;
        }
        CV_RETURN_IF_ERROR(write_pending());
        CV_RETURN_IF_ERROR(fsutil::FromRocks(db->Write(rocksdb::WriteOptions(), &rb),
                                             "replay a recording delete"));
        ++counts->recordings;
        CV_RETURN_IF_ERROR(progress(*counts));
        continue;
      }
      Call meta;
      uint32_t parts = 0;
      bool found = false;
      CV_RETURN_IF_ERROR(calls::ReadMeta(t, e.call_hash, &meta, &parts, &found));
      if (!found) continue;
      // The call was put again after this removal (a greater version): kept.
      if (e.versioned && meta.version > e.version) continue;
      if (!CheckNotHeld(t, e.call_hash, /*any_call=*/false).ok()) {
        ++counts->kept_held;
        continue;
      }
      CV_RETURN_IF_ERROR(calls::PlanDelete(t, meta, e.call_hash, &batch));
      notes.push_back(ChangeNote{ChangeKind::kDelete, ChangeCause::kRestore, meta.call_id, meta.version});
      pending.insert(e.call_hash);
      ++counts->removed;
    }
    CV_RETURN_IF_ERROR(write_pending());
    // The copy's version counter is raised to the greatest version the log
    // names for the tenant: the log holds lines of the timeline this copy
    // leaves behind, and a call written here later must get a greater
    // version than any of them, or a later restore's replay from the base
    // would remove or redact it (decision 0064).
    uint64_t logged = 0;
    for (const auto& e : entries) {
      if (e.versioned && e.recording.empty()) logged = std::max(logged, e.version);
    }
    uint64_t counter = 0;
    CV_RETURN_IF_ERROR(calls::ReadVersionCounter(t, &counter));
    if (counter < logged) {
      rocksdb::WriteBatch vb;
      CV_RETURN_IF_ERROR(calls::PutVersionCounter(t, &vb, logged));
      CV_RETURN_IF_ERROR(fsutil::FromRocks(db->Write(rocksdb::WriteOptions(), &vb),
                                           "replay: raise the version counter"));
    }
    CV_RETURN_IF_ERROR(fsutil::FromRocks(db->FlushWAL(/*sync=*/true), "sync the replay"));
    CV_KILL_POINT("restore.replay_after_tenant");
  }
  return Status::OK();
}

// ---------------------------------------------------------------------------
// RESTORE_PENDING: written (signed) into a restored store before it becomes
// openable; every writable open replays the tombstone log from its offset
// before it serves, and removes it once that replay is synced. A restore
// killed at any point after the copy is thus finished by the next open.
//
// The marker is bound to the copy it was written into (decision 0027,
// "A marker bound to its copy"): Restore records a random restore id in the
// copy's metadata instance (header field restore_id) before it signs the
// marker naming it. Another directory of the same store (the live one)
// never holds that id, so a genuine marker copied there is refused; the id
// is removed from the header once the replay is done, so an old marker put
// back into the finished copy is refused as well.

namespace {
constexpr char kRestorePending[] = "RESTORE_PENDING";
constexpr char kRestoreIdField[] = "restore_id";
constexpr int kRestorePendingFormat = 2;
constexpr size_t kRestoreIdBytes = 16;
constexpr size_t kMaxRestorePendingBytes = 64u << 10;

nlohmann::json PendingBody(const BackupManifest& m, const std::string& restore_id) {
  nlohmann::json j;
  j["format"] = kRestorePendingFormat;
  j["store_id"] = m.store_id;
  j["cut"] = m.cut;
  j["cut_id"] = m.cut_id;
  j["tombstone_offset"] = m.tombstone_offset;
  j["restore_id"] = restore_id;
  return j;
}

Status BadMarker(const std::string& why) {
  return Status::Corruption("RESTORE_PENDING: " + why +
                            "; nothing was changed: the restore cannot be finished from it: restore "
                            "again (docs/operations.md, \"Restore\")");
}

// Reads the marker without following a symbolic link: a link or another
// non-regular entry is refused, never read. *present is false if there is
// none.
Status ReadMarkerFile(const std::string& path, std::string* out, bool* present) {
  fsutil::NoFollowRead r;
  CV_RETURN_IF_ERROR(fsutil::ReadNoFollow(path, kMaxRestorePendingBytes, out, &r));
  *present = r != fsutil::NoFollowRead::kMissing;
  switch (r) {
    case fsutil::NoFollowRead::kRead:
    case fsutil::NoFollowRead::kMissing:
      return Status::OK();
    case fsutil::NoFollowRead::kSymlink:
      return BadMarker("is a symbolic link, not a marker a restore wrote");
    case fsutil::NoFollowRead::kNotRegular:
      return BadMarker("is not a regular file, not a marker a restore wrote");
    case fsutil::NoFollowRead::kTooLarge:
      break;
  }
  return BadMarker("is larger than any marker a restore writes");
}

// Writes the restore id into the copy's metadata instance, opened as a
// store opens it (same resources and options), synced.
Status WriteRestoreId(const Options& options, const std::string& meta_dir, const std::string& id) {
  std::unique_ptr<SharedResources> res = SharedResources::Make(options);
  rocksdb::Options mo(res->db_options, res->tenant_cf_options);
  mo.enable_blob_files = false;
  mo.info_log = res->InfoLog(meta_dir, "meta", /*read_only=*/false);
  rocksdb::DB* raw = nullptr;
  CV_RETURN_IF_ERROR(fsutil::FromRocks(rocksdb::DB::Open(mo, meta_dir, &raw),
                                       "restore: open the copy's metadata instance"));
  std::unique_ptr<rocksdb::DB> db(raw);
  rocksdb::WriteOptions wo;
  wo.sync = true;
  CV_RETURN_IF_ERROR(fsutil::FromRocks(db->Put(wo, format::HeaderKey(kRestoreIdField), id),
                                       "restore: record the restore id"));
  CV_RETURN_IF_ERROR(fsutil::FromRocks(db->Close(), "restore: close the copy's metadata instance"));
  db.reset();
  return fsutil::SyncDir(res->env->GetFileSystem().get(), meta_dir);
}

// --- The restore ledger (docs/format.md "Restore ledger"; decision 0027,
// "The ledger"). Kept by the key provider: the store directory, header
// included, is not trusted to say whether a restore finished.
//
//   cvrestores1
//   pending <restore id> <from> <length> <hash>
//   done <restore id>
//   closed <restore id>
//   abandoned <restore id>
//
// One line per restore, in the order of their last change (a line whose
// state changes moves to the end). pending: Store::Restore wrote the
// copy's marker; the replay must run from logical offset <from> over a log
// at least <length> bytes long whose bytes [from, length) hash (BLAKE2b-256,
// hex) to <hash>. done: the replay is synced (written before the marker is
// unlinked). closed: the copy's header no longer names the id (written
// after it is dropped). abandoned: the operator gave the restore up
// (AbandonRestore): a copy of it is refused, saying so. An absent file: no
// restore ever; a present one without the header (an empty one too) is
// refused. Bounded: the kClosedKept most recently closed lines, and as
// many abandoned ones, are kept; a pending or done line stays until its
// copy is opened, the restore that wrote it failed (in that process) and
// removed it, or the operator abandons it. Nothing else changes a line:
// the removal of a dead staging directory (RemoveDeadStagings) does not,
// because what its lock names is the word of a file anyone can plant
// (attack4 F1). Each left-over line needs a restore killed (or a copy
// lost) and is ended by one of those.
constexpr std::string_view kLedgerHeader = "cvrestores1";
constexpr size_t kClosedKept = 64;

struct LedgerEntry {
  std::string id;     // hex
  std::string state;  // "pending", "done", "closed", "abandoned"
  uint64_t from = 0, length = 0;
  std::string hash;   // hex; pending only
};

Status BadLedger(const std::string& why) {
  return Status::Corruption("the key directory's restore ledger (RESTORES) " + why +
                            ": not one the engine wrote; restore it from your copy of the key "
                            "directory (docs/operations.md, \"Restore\")");
}

bool RestoreIdHex(const std::string& s) {
  std::string bytes;
  return s.size() == 2 * kRestoreIdBytes && crypto::FromHex(s, &bytes) &&
         crypto::Hex(bytes) == s;
}

Status ParseLedger(const std::string& text, std::vector<LedgerEntry>* out) {
  out->clear();
  std::istringstream in(text);
  std::string line;
  if (!std::getline(in, line) || line != kLedgerHeader) return BadLedger("has no valid header");
  std::set<std::string> seen;
  while (std::getline(in, line)) {
    std::vector<std::string> f;
    std::istringstream ls(line);
    for (std::string w; ls >> w;) f.push_back(w);
    LedgerEntry e;
    const bool pending = f.size() == 5 && f[0] == "pending";
    if (!(pending || (f.size() == 2 && (f[0] == "done" || f[0] == "closed" ||
                                         f[0] == "abandoned"))) ||
        !RestoreIdHex(f[1])) {
      return BadLedger("holds a malformed line");
    }
    e.state = f[0];
    e.id = f[1];
    if (pending) {
      std::string h;
      if (!Digits(f[2]) || !Digits(f[3]) || f[4].size() != 64 || !crypto::FromHex(f[4], &h)) {
        return BadLedger("holds a malformed line");
      }
      e.from = std::stoull(f[2]);
      e.length = std::stoull(f[3]);
      e.hash = f[4];
      if (e.from > e.length) return BadLedger("holds a malformed line");
    }
    if (!seen.insert(e.id).second) return BadLedger("names a restore id twice");
    out->push_back(std::move(e));
  }
  if (!text.ends_with('\n')) return BadLedger("ends in a torn line");
  return Status::OK();
}

std::string FormatLedger(const std::vector<LedgerEntry>& entries) {
  size_t closed = 0, abandoned = 0;
  for (const auto& e : entries) {
    closed += e.state == "closed";
    abandoned += e.state == "abandoned";
  }
  std::string out(kLedgerHeader);
  out += "\n";
  for (const auto& e : entries) {
    // The oldest closed and abandoned ones, each kept up to the bound.
    if (e.state == "closed" && closed-- > kClosedKept) continue;
    if (e.state == "abandoned" && abandoned-- > kClosedKept) continue;
    out += e.state + " " + e.id;
    if (e.state == "pending") {
      out += " " + std::to_string(e.from) + " " + std::to_string(e.length) + " " + e.hash;
    }
    out += "\n";
  }
  return out;
}

Result<std::vector<LedgerEntry>> LoadLedger(KeyProvider* kp) {
  auto text = kp->ReadRestoreLedger();
  std::vector<LedgerEntry> v;
  if (text.status().code() == Code::kNotFound) return v;  // no restore ever
  CV_RETURN_IF_ERROR(text.status());
  CV_RETURN_IF_ERROR(ParseLedger(*text, &v));
  return v;
}

// `--keys <dir>` for a command a message prints: the CLI's default key
// directory (<db>.keys) may not be the one in use (attack4 F4).
std::string KeysFlag(const KeyProvider* kp) {
  const std::string dir = kp->LocalDirectory();
  return dir.empty() ? "--keys KEYDIR (the same key directory)" : "--keys " + dir;
}

const LedgerEntry* FindEntry(const std::vector<LedgerEntry>& v, const std::string& id) {
  for (const auto& e : v) {
    if (crypto::ConstantTimeEquals(e.id, id)) return &e;
  }
  return nullptr;
}

// Sets the state of restore `id` (removed if `state` is empty), durably: a
// new line, or one whose state changes, goes to the end, so that the bound
// drops the lines closed longest ago, never one that just closed. Needs
// the writer lock.
Status SetLedger(KeyProvider* kp, const LedgerEntry& entry) {
  CV_ASSIGN_OR_RETURN(auto v, LoadLedger(kp));
  auto it = std::find_if(v.begin(), v.end(), [&](const LedgerEntry& e) { return e.id == entry.id; });
  if (it != v.end()) {
    if (entry.state.empty() || it->state != entry.state) {
      v.erase(it);
    } else {
      *it = entry;
      return kp->WriteRestoreLedger(FormatLedger(v));
    }
  } else if (entry.state.empty()) {
    return Status::OK();
  }
  if (!entry.state.empty()) v.push_back(entry);
  return kp->WriteRestoreLedger(FormatLedger(v));
}

Status SetLedgerState(KeyProvider* kp, const std::string& id, const std::string& state) {
  LedgerEntry e;
  e.id = id;
  e.state = state;
  return SetLedger(kp, e);
}

// BLAKE2b-256 (hex) of the log's logical bytes [from, length): what a
// pending restore's replay must find again. kFailedPrecondition if the log
// does not hold that range (pruned past `from`, or shorter than `length`).
Result<std::string> LogRangeHash(const std::string& log, const TombstoneLogView& view,
                                 uint64_t from, uint64_t length) {
  if (from < view.base || length > view.size || from > length) {
    return Status::FailedPrecondition("the tombstone log does not hold bytes " +
                                      std::to_string(from) + ".." + std::to_string(length));
  }
  return crypto::Hex(crypto::Hash32(std::string_view(log).substr(
      view.body_at + (from - view.base), length - from)));
}

// The running replay counts of a restore (header field restore_replay:
// "<restore id> <removed> <recordings> <redacted>"), written after each
// write of the replay so that a replay killed midway and run again reports
// what every run removed (the second run finds nothing of what the first
// removed).
constexpr char kReplayCountsField[] = "restore_replay";
}  // namespace

Status Store::Impl::ReadRestoreMarker(bool store_exists) {
  const std::string path = path_ + "/" + kRestorePending;
  std::string text;
  bool present = false;
  CV_RETURN_IF_ERROR(ReadMarkerFile(path, &text, &present));
  if (!present) return Status::OK();
  if (!store_exists) return BadMarker("lies in a directory that holds no store");
  nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("signature") || !j["signature"].is_string()) {
    return BadMarker("not a signed JSON object (edited by hand?)");
  }
  const std::string sig = j["signature"].get<std::string>();
  j.erase("signature");
  CV_ASSIGN_OR_RETURN(std::string public_key, kp_->ExistingSigningPublicKey());
  if (!signed_json::Verifies(signed_json::Canonical(j), sig, public_key)) {
    return BadMarker("its signature does not verify against this store's signing key (edited by "
                     "hand, or another key directory's)");
  }
  RestoreMarker m;
  try {
    const int format = j.at("format").get<int>();
    if (format == 1) {
      // Bound to nothing but the store id: it could be any copy's.
      return BadMarker("written by an earlier callvault, not bound to the copy it lies in");
    }
    if (format != kRestorePendingFormat) return BadMarker("unknown format " + std::to_string(format));
    m.store_id = j.at("store_id").get<std::string>();
    m.restore_id = j.at("restore_id").get<std::string>();
    m.tombstone_offset = j.at("tombstone_offset").get<uint64_t>();
    m.cut = j.at("cut").get<uint64_t>();
  } catch (const std::exception&) {
    return BadMarker("a field is missing or of the wrong type");
  }
  if (!RestoreIdHex(m.restore_id)) return BadMarker("its restore id is malformed");
  restore_marker_ = std::move(m);
  return Status::OK();
}

// Writable and read-only opens alike, after the header is read and before
// recovery: what the marker, the header's restore id and the key
// provider's ledger say together (decision 0027, "The ledger").
Status Store::Impl::CheckRestoreMarker() {
  restore_step_ = RestoreStep::kNone;
  auto header = GetHeader(kRestoreIdField);
  if (!header.ok() && header.status().code() != Code::kNotFound) return header.status();
  if (!restore_marker_ && !header.ok()) return Status::OK();
  if (restore_marker_) {
    if (restore_marker_->store_id != crypto::Hex(store_id_)) return BadMarker("another store's");
    if (!header.ok() || !crypto::ConstantTimeEquals(*header, restore_marker_->restore_id)) {
      return BadMarker(
          "the marker of restore " + restore_marker_->restore_id +
          " is not the marker of a restore into this directory (that restore id is not in the "
          "metadata instance): a marker copied from another restore, or kept from one that "
          "finished; if this store was not restored here, remove the marker after checking how "
          "it got there");
    }
  }
  const std::string id = restore_marker_ ? restore_marker_->restore_id : *header;
  auto ledger = LoadLedger(kp_);
  if (ledger.status().code() == Code::kNotSupported) {
    return Status::FailedPrecondition("the store names restore " + id +
                                      ", but the key provider keeps no restore ledger to say "
                                      "whether it finished; nothing was changed");
  }
  CV_RETURN_IF_ERROR(ledger.status());
  const LedgerEntry* e = FindEntry(*ledger, id);
  if (e == nullptr) {
    return Status::Corruption(
        "the store names restore " + id +
        ", which this key directory never issued (or closed so long ago that its ledger line was "
        "dropped): a restore id written by hand, or a copy restored with another key directory; "
        "nothing was changed; restore again (docs/operations.md, \"Restore\")");
  }
  if (e->state == "abandoned") {
    return Status::FailedPrecondition(
        "the store names restore " + id + ", which was abandoned (`restore abandon`): its copy "
        "was given up and is never finished or served; nothing was changed; restore again "
        "(docs/operations.md, \"Restore\")");
  }
  if (restore_marker_) {
    if (e->state == "closed") {
      return Status::Corruption(
          "RESTORE_PENDING: the marker of restore " + id +
          ", which finished already (its copy was opened and replayed): a marker and restore id "
          "copied from that restore; nothing was changed; remove both only after checking how "
          "they got here (docs/operations.md, \"Restore\")");
    }
    if (e->state == "pending") {
      // F3 of attack2: the log must be the one the restore saw, or longer.
      auto log = kp_->ReadTombstones();
      if (!log.ok() && log.status().code() != Code::kNotSupported) return log.status();
      const std::string text = log.ok() ? *log : std::string();
      TombstoneLogView view;
      CV_RETURN_IF_ERROR(ParseTombstoneLogBase(text, &view));
      auto hash = LogRangeHash(text, view, e->from, e->length);
      if (e->from != restore_marker_->tombstone_offset || !hash.ok() ||
          !crypto::ConstantTimeEquals(*hash, e->hash)) {
        return Status::FailedPrecondition(
            "restore " + id + " cannot be finished with this key directory: its tombstone log "
            "is shorter than when the restore was made (" + std::to_string(view.size) + " < " +
            std::to_string(e->length) + " bytes) or its entries differ: an older copy of the key "
            "directory; nothing was changed; open it with the key directory the restore was made "
            "with (docs/operations.md, \"Restore\")");
      }
      restore_step_ = RestoreStep::kReplay;
    } else {
      restore_step_ = RestoreStep::kUnlinkMarker;  // replayed; the open that did it died
    }
    restored_copy_ = true;
    return Status::OK();
  }
  if (e->state == "pending") {
    return Status::FailedPrecondition(
        "restore " + id + " has not replayed its erasures, and its RESTORE_PENDING marker was "
        "removed: the copy cannot be finished or served; nothing was changed; restore again, "
        "and drop its pending line with `callvault " + KeysFlag(kp_) + " restore abandon " + id +
        "` (docs/operations.md, \"Restore\")");
  }
  if (e->state == "closed") {
    return Status::Corruption(
        "the store names restore " + id + ", which finished in another directory: a copy of "
        "that restored store taken before it finished; nothing was changed; restore again "
        "(docs/operations.md, \"Restore\")");
  }
  restore_step_ = RestoreStep::kDropId;  // done: the open that replayed died before the drop
  return Status::OK();
}

Status Store::Impl::FinishRestore() {
  if (read_only()) {
    if (restore_step_ != RestoreStep::kReplay && restore_step_ != RestoreStep::kUnlinkMarker) {
      return Status::OK();
    }
    return Status::FailedPrecondition(
        "the store is a restore (" + restore_marker_->restore_id +
        ") whose erasure replay has not finished (RESTORE_PENDING); finish it before reading "
        "with `callvault --db " + path_ + " " + KeysFlag(kp_) +
        " restore finish` (a writable open, which replays it)");
  }
  if (restore_step_ == RestoreStep::kNone) return Status::OK();
  const std::string path = path_ + "/" + kRestorePending;
  const std::string id = restore_marker_ ? restore_marker_->restore_id : *GetHeader(kRestoreIdField);
  rocksdb::WriteOptions synced;
  synced.sync = true;
  if (restore_step_ == RestoreStep::kReplay) {
    const uint64_t cut = restore_marker_->cut;
    // The counts of an earlier run of this replay, killed midway.
    ReplayCounts counts;
    bool resumed = false;
    auto before = GetHeader(kReplayCountsField);
    if (!before.ok() && before.status().code() != Code::kNotFound) return before.status();
    if (before.ok()) {
      std::istringstream in(*before);
      std::string was;
      ReplayCounts c;
      if (in >> was >> c.removed >> c.recordings >> c.redacted && was == id) {
        counts = c;
        resumed = true;
      }
    }
    auto progress = [&](const ReplayCounts& c) {
      return PutHeader(kReplayCountsField, id + " " + std::to_string(c.removed) + " " +
                                               std::to_string(c.recordings) + " " +
                                               std::to_string(c.redacted));
    };
    if (Status r = ReplayTombstones(restore_marker_->tombstone_offset, &counts, progress); !r.ok()) {
      if (r.code() != Code::kCorruption) return r;
      return Status::Corruption(
          "restore " + id + ": its erasure replay cannot finish: " + r.message() +
          "; the copy is not served. Put back the key directory's TOMBSTONES from your copy of "
          "it and run `callvault --db " + path_ + " " + KeysFlag(kp_) +
          " restore finish` again, or give this copy up (`callvault " + KeysFlag(kp_) +
          " restore abandon " + id + "`) and restore again");
    }
    restore_replay_ = counts;
    restore_resumed_ = resumed;
    CV_KILL_POINT("restore.after_replay");
    Audit("restore_replayed", "",
          "cut=" + std::to_string(cut) + " restore_id=" + id +
              " removed=" + std::to_string(counts.removed) +
              " recordings=" + std::to_string(counts.recordings) +
              " redacted=" + std::to_string(counts.redacted) +
              " kept_held=" + std::to_string(counts.kept_held) + (resumed ? " resumed=1" : ""));
    // Done in the ledger before the marker goes: from here on the copy is
    // finished by the key directory's word, not by what its files say.
    CV_RETURN_IF_ERROR(SetLedgerState(kp_, id, "done"));
    CV_KILL_POINT("restore.after_ledger_done");
    restore_replayed_ = true;
  }
  if (restore_marker_) {
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
      return Status::IOError("remove " + path + ": " + std::strerror(errno));
    }
    int d = ::open(path_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (d < 0) return Status::IOError("open " + path_ + ": " + std::strerror(errno));
    const int rc = ::fsync(d);
    ::close(d);
    if (rc != 0) return Status::IOError("fsync " + path_ + ": " + std::strerror(errno));
  }
  // The id (and the replay's counts) out of the header, synced, and only
  // then closed in the ledger: a crash between the two leaves a store that
  // names no restore. A directory still naming the id afterwards (a copy
  // taken before) is refused.
  rocksdb::WriteBatch drop;
  drop.Delete(format::HeaderKey(kRestoreIdField));
  drop.Delete(format::HeaderKey(kReplayCountsField));
  CV_RETURN_IF_ERROR(fsutil::FromRocks(meta_->Write(synced, &drop), "remove the finished restore's id"));
  CV_RETURN_IF_ERROR(SetLedgerState(kp_, id, "closed"));
  restore_finished_id_ = id;
  restore_marker_.reset();
  restore_step_ = RestoreStep::kNone;
  return Status::OK();
}

// ---------------------------------------------------------------------------
// Restore

namespace {

constexpr char kStagingInfix[] = ".restoring-";
constexpr size_t kStagingHex = 12;  // 6 random bytes

bool LowerHex(std::string_view s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

// Makes every missing directory of `dir`, each 0755 (less the umask).
void MakeParents(const fs::path& dir) {
  if (dir.empty()) return;
  std::error_code ec;
  if (fs::exists(dir, ec)) return;
  MakeParents(dir.parent_path());
  ::mkdir(dir.c_str(), 0755);
}

// `<staging>.lock` beside a restore's staging directory, flocked for the
// whole restore. It is created under a temporary name, locked, then renamed
// into place (the flock stays with the inode), so a `.lock` that can be
// seen is locked from the moment it appears: a restore that can take it
// knows its owner died. It holds the restore id of the restore (if it has
// one), so that whoever removes a dead staging can tell the operator which
// restore died (never to change the ledger: attack4 F1).
class StagingLock {
 public:
  Status Take(const std::string& staging, const std::string& restore_id) {
    path_ = staging + ".lock";
    const std::string tmp = path_ + ".tmp";
    fd_ = ::open(tmp.c_str(), O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd_ < 0) return Status::IOError("restore: create " + tmp + ": " + std::strerror(errno));
    const std::string body = restore_id.empty() ? "" : restore_id + "\n";
    if (::flock(fd_, LOCK_EX | LOCK_NB) != 0 ||
        ::write(fd_, body.data(), body.size()) != static_cast<ssize_t>(body.size()) ||
        ::rename(tmp.c_str(), path_.c_str()) != 0) {
      Status s = Status::IOError("restore: lock " + path_ + ": " + std::strerror(errno));
      ::unlink(tmp.c_str());
      ::close(fd_);
      fd_ = -1;
      return s;
    }
    return Status::OK();
  }
  ~StagingLock() {
    if (fd_ < 0) return;
    ::unlink(path_.c_str());  // while still holding it
    ::close(fd_);
  }

 private:
  std::string path_;
  int fd_ = -1;
};

// Removes the staging directories of earlier restores into `new_dir` that
// died before their rename: those whose `.lock` this process can lock (a
// running restore holds its own). A symbolic link, a file of another user
// or a name of another shape is left alone. The restore id a removed
// staging's lock names, if any, goes to `named`: only for a message. The
// ledger is neither read nor changed: a planted `.restoring-<hex>` and lock
// naming another restore's id must not drop that restore's line (attack4
// F1), nor a damaged ledger or another key directory's make the cleanup
// fail (F5, F3).
Status RemoveDeadStagings(const std::string& new_dir, std::vector<std::string>* removed,
                          std::vector<std::string>* named) {
  const fs::path target(new_dir);
  const std::string parent = target.parent_path().string();
  const std::string prefix = target.filename().string() + kStagingInfix;
  std::error_code ec;
  std::vector<std::string> locks;
  for (const auto& e : fs::directory_iterator(parent, ec)) {
    const std::string n = e.path().filename().string();
    if (n.size() == prefix.size() + kStagingHex + 5 && n.starts_with(prefix) &&
        n.ends_with(".lock") && LowerHex(std::string_view(n).substr(prefix.size(), kStagingHex))) {
      locks.push_back(parent + "/" + n);
    }
  }
  if (ec) return Status::OK();  // no parent yet: nothing can be left in it
  std::sort(locks.begin(), locks.end());
  for (const auto& lock : locks) {
    const int fd = ::open(lock.c_str(), O_RDWR | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) continue;
    struct stat st;
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != ::geteuid() ||
        ::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      ::close(fd);  // not ours, or a restore still running
      continue;
    }
    const std::string staging = lock.substr(0, lock.size() - 5);
    struct stat d;
    if (::lstat(staging.c_str(), &d) == 0 && S_ISDIR(d.st_mode)) {
      char buf[2 * kRestoreIdBytes + 2];
      const ssize_t n = ::pread(fd, buf, sizeof(buf), 0);
      std::string id(buf, n > 0 ? static_cast<size_t>(n) : 0);
      if (id.ends_with('\n')) id.pop_back();
      fs::remove_all(staging, ec);
      if (ec) {
        ::close(fd);
        return Status::IOError("restore: remove " + staging + " (left by a restore that died): " +
                               ec.message());
      }
      removed->push_back(staging);
      if (RestoreIdHex(id)) named->push_back(id);
    }
    ::unlink(lock.c_str());
    ::close(fd);
  }
  return Status::OK();
}

// What the operator is told of the restores that dead stagings' locks
// name (RemoveDeadStagings): their lines are never dropped automatically,
// only by `restore abandon` once the operator knows no copy is kept (the
// lock is a file: it may have been planted, or copied from elsewhere). The
// ledger is only read, and a ledger that cannot be read only changes the
// wording.
std::vector<std::string> DeadRestoreNotes(KeyProvider* kp, const std::vector<std::string>& ids) {
  std::vector<std::string> notes;
  if (ids.empty()) return notes;
  auto ledger = LoadLedger(kp);
  for (const auto& id : ids) {
    const LedgerEntry* e = ledger.ok() ? FindEntry(*ledger, id) : nullptr;
    if (e != nullptr && e->state != "pending") continue;  // ended (or a copy exists)
    if (e != nullptr) {
      notes.push_back("restore " + id + " died before its copy existed; once you know no copy "
                      "of it is kept, `callvault " + KeysFlag(kp) + " restore abandon " + id +
                      "`");
    } else {
      notes.push_back("a dead staging named restore " + id + ", which the ledger of this key "
                      "directory does not hold pending" +
                      (ledger.ok() ? std::string() : " (" + ledger.status().ToString() + ")") +
                      ": a restore killed before it recorded its line leaves none, and then "
                      "nothing is left to do; if it was made with another key directory that "
                      "holds it pending and no copy of it is kept, run `callvault --keys "
                      "THAT_KEYDIR restore abandon " + id + "`");
    }
  }
  return notes;
}

}  // namespace

// A restore killed after its rename leaves `<dir>.restoring-<hex>.lock`
// beside the store it made (attack2 F5); one killed before, its staging
// directory too (its pending ledger line stays: see DeadRestoreNotes).
// Nothing else removes them once the target exists. Runs before the store
// itself is opened, so that an open refused later still removed them;
// logged once the open is done.
Status Store::Impl::RemoveStaleRestoreStagings() {
  std::vector<std::string> named;
  CV_RETURN_IF_ERROR(RemoveDeadStagings(path_, &stale_stagings_removed_, &named));
  stale_staging_notes_ = DeadRestoreNotes(kp_, named);
  return Status::OK();
}

void Store::Impl::LogStaleRestoreStagings() const {
  for (const auto& d : stale_stagings_removed_) {
    Log(LogLevel::kInfo, "removed " + d + ", left by a restore into this directory that died");
  }
  for (const auto& n : stale_staging_notes_) Log(LogLevel::kWarn, n);
}

Result<RestoreReport> Store::Restore(const Options& options, const std::string& backup_dir,
                                     const std::string& new_dir_in, const RestoreRequest& request) {
  if (options.read_only) return Status::InvalidArgument("a restore cannot be read-only");
  // Before anything is copied: the final open would refuse them only
  // after the copy is in place.
  CV_RETURN_IF_ERROR(CheckOptions(options));
  if (new_dir_in.empty()) return Status::InvalidArgument("restore: the new store directory is empty");
  crypto::Init();
  KeyProvider* kp = options.key_provider.get();
  std::error_code ec;
  std::string new_dir = fs::absolute(new_dir_in, ec).lexically_normal().string();
  while (new_dir.size() > 1 && new_dir.back() == '/') new_dir.pop_back();

  // 1. The cut and its manifest.
  CV_ASSIGN_OR_RETURN(BackupManifest m, PickCut(backup_dir, request.cut));
  // 2. The current key directory must hold this store's keys.
  CV_ASSIGN_OR_RETURN(auto gens, kp->ListKeyrings());
  if (gens.empty()) {
    return Status::KeyError("restore: the key directory holds no keyring (wrong key directory?)");
  }
  CV_ASSIGN_OR_RETURN(std::string sealed, kp->ReadKeyring(gens.back()));
  CV_ASSIGN_OR_RETURN(Keyring k, Keyring::Unseal(kp, sealed));
  if (crypto::Hex(k.store_id) != m.store_id) {
    return Status::KeyError("restore: the backup is of another store than the key directory's "
                            "(store " + m.store_id + "); use that store's key directory");
  }
  if (k.generation < m.keyring_generation) {
    return Status::KeyError("restore: the key directory holds keyring generation " +
                            std::to_string(k.generation) + ", older than the backup's (" +
                            std::to_string(m.keyring_generation) + "): a rolled-back key directory");
  }
  // 3. The manifest's signature, then every instance of the cut.
  CV_ASSIGN_OR_RETURN(std::string public_key, kp->ExistingSigningPublicKey());
  CV_RETURN_IF_ERROR(CheckSignature(m, public_key));
  // The store's region, as the final open checks it (LoadHeader): before
  // the copy, which that refusal would leave in place (attack33b).
  if (!options.region.empty() && options.region != m.region) {
    return Status::FailedPrecondition("restore: the backup is of a store of region '" + m.region +
                                      "', not the region in the options");
  }
  // Format 2: the listings now, the contents in the copy once it is made
  // (CheckRestoredInstance); format 1 signs no contents: its crc32c now.
  CV_RETURN_IF_ERROR(
      CheckInstances(backup_dir, m, m.format >= 2 ? Depth::kListing : Depth::kContents));
  const std::string keys = kp->LocalDirectory();
  if (!keys.empty()) CV_RETURN_IF_ERROR(fsutil::CheckApart(new_dir, keys));
  // The writer lock on the key directory: a store still running on these
  // keys (the one backed up) must be closed first. Taken before anything is
  // written (dead stagings removed included) and held through
  // the copy; released just before Store::Open, which takes it again.
  CV_RETURN_IF_ERROR(kp->AcquireWriterLock());
  struct WriterLock {
    KeyProvider* kp;
    bool held = true;
    void Release() {
      if (held) kp->ReleaseWriterLock();
      held = false;
    }
    ~WriterLock() { Release(); }
  } writer_lock{kp};
  // 4. An empty (or absent) target, apart from the keys.
  if (fs::exists(new_dir, ec)) {
    if (!fs::is_directory(new_dir, ec) || !fs::is_empty(new_dir, ec)) {
      return Status::FailedPrecondition("restore: " + new_dir +
                                        " is not empty (restore into a new or empty directory)");
    }
  }
  // Staging directories and locks of earlier restores into this target
  // that were killed: removed once this restore goes ahead (a refused one
  // writes nothing, attack4 F2). Their ledger lines stay (DeadRestoreNotes).
  RestoreReport report;
  {
    std::vector<std::string> named;
    CV_RETURN_IF_ERROR(RemoveDeadStagings(new_dir, &report.stale_stagings_removed, &named));
    report.stale_staging_notes = DeadRestoreNotes(kp, named);
  }
  // The tombstone log still holds the cut's offset (not pruned past it,
  // decision 0044; no prune runs while the lock is held).
  // The ledger entry of this restore (decision 0027, "The ledger"): the log
  // as it is now, which the replay must find again or longer.
  LedgerEntry pending;
  if (m.tombstone_log) {
    auto log = kp->ReadTombstones();
    if (log.ok()) {
      TombstoneLogView view;
      CV_RETURN_IF_ERROR(ParseTombstoneLogBase(*log, &view));
      CV_RETURN_IF_ERROR(CheckTombstoneOffset(view, m.tombstone_offset));
      CV_RETURN_IF_ERROR(CheckLogNotOlderThanCuts(backup_dir, view, public_key, m.cut));
      // Every line the replay will read, parsed now: a malformed one found
      // by the copy's first open would leave a pending copy at new_dir
      // that no open can finish (the session-18 attack5).
      std::map<uint64_t, std::vector<TombstoneEntry>> lines;
      if (Status p = ParseTombstones(*log, view.body_at, view.base,
                                     view.body_at + (m.tombstone_offset - view.base), &lines);
          !p.ok()) {
        return Status::Corruption("restore: " + p.message() +
                                  " (TOMBSTONES in the key directory; edited by hand, or damaged): "
                                  "its replay could not finish; nothing was restored");
      }
      pending.from = m.tombstone_offset;
      pending.length = view.size;
      CV_ASSIGN_OR_RETURN(pending.hash, LogRangeHash(*log, view, pending.from, pending.length));
    } else if (log.status().code() != Code::kNotSupported) {
      return log.status();
    }
    auto ledger = LoadLedger(kp);
    if (ledger.status().code() == Code::kNotSupported) {
      return Status::NotSupported(
          "restore: the key provider keeps no restore ledger, so the copy's erasure replay could "
          "not be bound to it (decision 0027); nothing was restored");
    }
    CV_RETURN_IF_ERROR(ledger.status());
  }
  // 5. Every instance into a staging directory beside the target, then one
  // rename: a failed restore leaves no half store at new_dir.
  const std::string staging = new_dir + kStagingInfix + crypto::Hex(crypto::RandomString(6));
  auto cleanup = [&] { fs::remove_all(staging, ec); };
  // Missing parents are made 0755 whatever the umask (decision 0078).
  MakeParents(fs::path(staging).parent_path());
  // The copy's restore id, named by the staging's lock before the ledger
  // holds it (RemoveDeadStagings).
  const std::string restore_id =
      m.tombstone_log ? crypto::Hex(crypto::RandomString(kRestoreIdBytes)) : std::string();
  StagingLock staging_lock;
  CV_RETURN_IF_ERROR(staging_lock.Take(staging, restore_id));
  // 0755 whatever the umask: the copy's open refuses a store directory
  // group or others can write (decision 0078).
  if (::mkdir(staging.c_str(), 0755) != 0) {
    // Not ours to remove: someone else's entry at this random name.
    return Status::IOError("restore: create " + staging + ": " + std::strerror(errno));
  }
  if (::mkdir((staging + "/shards").c_str(), 0755) != 0) {
    Status s = Status::IOError("restore: create " + staging + "/shards: " + std::strerror(errno));
    cleanup();
    return s;
  }
  // After the checks of the backup directory, before the copy (a test
  // changes a backed-up file here: the copy's own check must catch it).
  CV_KILL_POINT("restore.before_copy");
  for (size_t i = 0; i < m.instances.size(); ++i) {
    const auto& in = m.instances[i];
    rocksdb::BackupEngineReadOnly* raw = nullptr;
    rocksdb::IOStatus o = rocksdb::BackupEngineReadOnly::Open(
        EngineOptions(backup_dir + "/" + in.dir), rocksdb::Env::Default(), &raw);
    if (!o.ok()) {
      cleanup();
      return FromIo(o, "restore: open " + in.dir);
    }
    std::unique_ptr<rocksdb::BackupEngineReadOnly> engine(raw);
    const std::string target =
        i == 0 ? staging + "/meta" : staging + "/" + ShardBackupDir(static_cast<uint32_t>(i - 1));
    rocksdb::IOStatus r;
    try {
      r = engine->RestoreDBFromBackup(rocksdb::RestoreOptions(), in.backup_id, target, target);
    } catch (const std::exception& e) {  // RocksDB's own, on a malformed name
      r = rocksdb::IOStatus::Corruption("BackupEngine failed", e.what());
    }
    if (!r.ok()) {
      cleanup();
      return FromIo(r, "restore: instance " + in.name);
    }
    if (m.format >= 2) {
      if (Status c = CheckRestoredInstance(m, in, target); !c.ok()) {
        cleanup();
        return Status::Corruption(c.message() + "; nothing was restored");
      }
    }
  }
  CV_KILL_POINT("restore.after_copy");
  // The replay marker, signed, before the store can be opened at all: a
  // restore killed from here on is finished by the next writable open.
  if (m.tombstone_log) {
    // Bound to this copy: its restore id first into the copy's metadata
    // instance, then the marker that names it.
    // Pending in the ledger first: a copy whose id the ledger does not hold
    // is never opened. A restore that fails before its rename takes the
    // line out again (best effort: a line left is only a line).
    pending.id = restore_id;
    pending.state = "pending";
    Status led = SetLedger(kp, pending);
    if (!led.ok()) {
      cleanup();
      return led;
    }
    auto unledger = [&] {
      LedgerEntry gone;
      gone.id = restore_id;
      SetLedger(kp, gone).IgnoreError();
    };
    Status id = WriteRestoreId(options, staging + "/meta", restore_id);
    if (!id.ok()) {
      cleanup();
      unledger();
      return id;
    }
    const nlohmann::json body = PendingBody(m, restore_id);
    auto sig = kp->Sign(signed_json::Canonical(body));
    if (!sig.ok()) {
      cleanup();
      unledger();
      return sig.status();
    }
    Status w = WriteFileDurably(staging + "/" + kRestorePending,
                                signed_json::WithSignature(body, crypto::Hex(*sig), 2) + "\n");
    if (!w.ok()) {
      cleanup();
      unledger();
      return w;
    }
    CV_KILL_POINT("restore.after_marker");
  }
  if (fs::exists(new_dir, ec)) fs::remove(new_dir, ec);  // empty, checked above
  if (::rename(staging.c_str(), new_dir.c_str()) != 0) {
    Status s = Status::IOError("restore: rename into " + new_dir + ": " + std::strerror(errno));
    cleanup();
    return s;
  }
  {
    const std::string parent = fs::path(new_dir).parent_path().string();
    int d = ::open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (d >= 0) {
      ::fsync(d);
      ::close(d);
    }
  }
  CV_KILL_POINT("restore.after_rename");
  // 6. Open with the current keys: recovery rolls every tenant whose key
  // is gone (purged since the backup) forward to PURGED; then the open
  // re-applies the erasures, redactions, call deletions and retention
  // removals made since the cut (RESTORE_PENDING, FinishRestore) before
  // it returns the store.
  Options o = options;
  o.create_if_missing = false;
  writer_lock.Release();
  CV_ASSIGN_OR_RETURN(std::unique_ptr<Store> store, Store::Open(o, new_dir));
  report.manifest = m;
  CV_ASSIGN_OR_RETURN(auto receipts, store->ListReceipts());
  for (const auto& r : receipts) {
    if (r.sequence <= m.receipt_seq) continue;
    if (report.first_new_receipt == 0) report.first_new_receipt = r.sequence;
    if (r.kind == "purge_on_open") report.purged_since_backup.push_back(r.tenant_id);
  }
  if (m.tombstone_log) {
    if (!store->impl_->restore_replayed_) {
      return Status::Internal("restore: the open did not replay the tombstone log");
    }
    report.tombstones_replayed = store->impl_->restore_replay_.removed;
    report.redactions_replayed = store->impl_->restore_replay_.redacted;
    report.recordings_replayed = store->impl_->restore_replay_.recordings;
    report.tombstones_kept_held = store->impl_->restore_replay_.kept_held;
    report.erasures_after_backup_not_reapplied = false;
  }
  CV_ASSIGN_OR_RETURN(auto tenants, store->ListTenants());
  for (const auto& t : tenants) {
    if (t.quarantined) report.quarantined_tenants.push_back(t.tenant_id);
  }
  CV_ASSIGN_OR_RETURN(auto orphans, store->ReconcileKeys(true));
  for (const auto& ok : orphans.orphan_keys) report.orphan_key_internal_ids.push_back(ok.internal_id);
  store->impl_->Audit(
      "store_restored", "",
      "cut=" + std::to_string(m.cut) + " cut_id=" + m.cut_id +
          " backup_time=" + std::to_string(m.time) + " backup_receipt_seq=" +
          std::to_string(m.receipt_seq) + " backup_audit_seq=" + std::to_string(m.audit_seq) +
          " purged_since_backup=" + std::to_string(report.purged_since_backup.size()) +
          " orphan_keys=" + std::to_string(report.orphan_key_internal_ids.size()) +
          " tombstones_replayed=" + std::to_string(report.tombstones_replayed) +
          " redactions_replayed=" + std::to_string(report.redactions_replayed) +
          " recordings_replayed=" + std::to_string(report.recordings_replayed) +
          " tombstones_kept_held=" + std::to_string(report.tombstones_kept_held) +
          " stale_stagings_removed=" + std::to_string(report.stale_stagings_removed.size()) +
          " quarantined=" + std::to_string(report.quarantined_tenants.size()) +
          ": receipts and audit events written after the backup are not in this store; " +
          (report.erasures_after_backup_not_reapplied
               ? "erasures and retention removals done after the backup were not re-applied"
               : "erasures (deletions and redactions), call deletions and retention removals "
                 "done after the backup were re-applied from the tombstone log"));
  CV_RETURN_IF_ERROR(store->Close());
  return report;
}

RestoreFinishReport Store::RestoreFinishedAtOpen() const {
  const Impl& impl = *impl_;
  RestoreFinishReport report;
  report.restore_id = impl.restore_finished_id_;
  report.replayed = impl.restore_replayed_;
  report.resumed = impl.restore_resumed_;
  report.removed = impl.restore_replay_.removed;
  report.recordings = impl.restore_replay_.recordings;
  report.redacted = impl.restore_replay_.redacted;
  report.kept_held = impl.restore_replay_.kept_held;
  report.stale_stagings_removed = impl.stale_stagings_removed_;
  report.stale_staging_notes = impl.stale_staging_notes_;
  return report;
}

namespace {

// The file key directory `key_dir` opened offline: its writer lock held (no
// store or restore runs on it meanwhile) until this goes.
class OfflineKeyDir {
 public:
  Status Open(const std::string& key_dir) {
    CV_ASSIGN_OR_RETURN(kp_, NewFileKeyProvider(key_dir, {.create_if_missing = false}));
    CV_RETURN_IF_ERROR(kp_->AcquireWriterLock());
    locked_ = true;
    return Status::OK();
  }
  ~OfflineKeyDir() {
    if (locked_) kp_->ReleaseWriterLock();
  }
  KeyProvider* get() const { return kp_.get(); }
  KeyProvider* operator->() const { return kp_.get(); }

 private:
  std::shared_ptr<KeyProvider> kp_;
  bool locked_ = false;
};

}  // namespace

Result<AbandonedRestore> AbandonRestore(const std::string& key_dir, const std::string& restore_id) {
  crypto::Init();
  if (!RestoreIdHex(restore_id)) {
    return Status::InvalidArgument("a restore id is " + std::to_string(2 * kRestoreIdBytes) +
                                   " lowercase hex digits (as the refusal that named it printed)");
  }
  OfflineKeyDir kp;  // as every ledger write: no store or restore runs meanwhile
  CV_RETURN_IF_ERROR(kp.Open(key_dir));
  CV_ASSIGN_OR_RETURN(auto ledger, LoadLedger(kp.get()));
  const LedgerEntry* e = FindEntry(ledger, restore_id);
  if (e == nullptr) {
    return Status::NotFound("the restore ledger of " + key_dir + " holds no restore " + restore_id +
                            " (never issued by this key directory, or abandoned or closed so "
                            "long ago that its line was dropped); nothing changed");
  }
  if (e->state == "abandoned") {
    return Status::NotFound("restore " + restore_id + " was abandoned already; nothing changed");
  }
  if (e->state == "closed") {
    return Status::FailedPrecondition("restore " + restore_id + " finished (its copy was opened "
                                      "and replayed): nothing to abandon; nothing changed");
  }
  if (e->state == "done") {
    // Its copy is fully replayed: abandoning it would make that copy
    // unusable for nothing (attack4 F7).
    return Status::FailedPrecondition(
        "restore " + restore_id + ": its replay is done: finish it with `callvault --db COPY "
        "--keys " + key_dir + " restore finish` instead; nothing changed");
  }
  AbandonedRestore out;
  out.restore_id = e->id;
  out.state = e->state;
  out.from = e->from;
  // Kept as abandoned (bounded like closed), so that a copy of it found
  // later is refused as abandoned, not as never issued.
  CV_RETURN_IF_ERROR(SetLedgerState(kp.get(), restore_id, "abandoned"));
  return out;
}

// ---------------------------------------------------------------------------
// Pruning the tombstone log (decision 0044)

Result<TombstonePruneReport> PruneTombstoneLog(const std::string& key_dir,
                                               const std::vector<std::string>& keep) {
  crypto::Init();
  if (keep.empty()) {
    return Status::InvalidArgument(
        "name every backup directory you keep (--keep): the log keeps what their oldest cut needs");
  }
  OfflineKeyDir kp;  // no store appends while the log is rewritten
  CV_RETURN_IF_ERROR(kp.Open(key_dir));
  CV_ASSIGN_OR_RETURN(std::string public_key, kp->ExistingSigningPublicKey());
  TombstonePruneReport report;
  uint64_t keep_from = UINT64_MAX;
  for (const auto& dir : keep) {
    std::vector<UnreadableCut> unreadable;
    CV_ASSIGN_OR_RETURN(auto cuts, ReadManifests(dir, &unreadable));
    // Which log entries an unreadable cut needs is unknown: nothing goes.
    if (!unreadable.empty()) {
      return Status::Corruption("kept backup directory " + dir + ": " +
                                unreadable.front().manifest + " does not read (" +
                                unreadable.front().problem +
                                "); nothing pruned (move it aside if that cut is not kept)");
    }
    for (const auto& m : cuts) {
      CV_RETURN_IF_ERROR(CheckSignature(m, public_key));
      if (!m.tombstone_log) continue;
      if (m.tombstone_offset < keep_from) {
        keep_from = m.tombstone_offset;
        report.oldest_kept_cut_time = static_cast<uint64_t>(m.time);
      }
    }
  }
  CV_ASSIGN_OR_RETURN(std::string log, kp->ReadTombstones());
  TombstoneLogView view;
  CV_RETURN_IF_ERROR(ParseTombstoneLogBase(log, &view));
  report.previous_base = report.base = view.base;
  report.size = view.size;
  if (keep_from == UINT64_MAX) {
    return Status::InvalidArgument("none of the kept backups records a tombstone log offset: "
                                   "nothing tells which entries they need; nothing pruned");
  }
  if (keep_from > view.size) {
    return Status::Corruption("a kept backup records a tombstone log offset beyond the log (" +
                              std::to_string(keep_from) + " > " + std::to_string(view.size) +
                              "): another key directory's backup, or a replaced log; nothing "
                              "pruned");
  }
  if (keep_from <= view.base) return report;  // nothing more to drop
  // A restore still pending replays from its own offset: pruning past it
  // would leave its copy unfinishable (refused at its open: the log no
  // longer holds what the ledger recorded).
  auto ledger = LoadLedger(kp.get());
  if (!ledger.ok() && ledger.status().code() != Code::kNotSupported) return ledger.status();
  for (const auto& e : ledger.ok() ? *ledger : std::vector<LedgerEntry>{}) {
    if (e.state == "pending" && e.from < keep_from) {
      return Status::FailedPrecondition(
          "restore " + e.id + " is pending and replays the log from offset " +
          std::to_string(e.from) + ", before what the kept backups need (" +
          std::to_string(keep_from) + "): finish its copy first (`callvault --db COPY --keys " +
          key_dir + " restore finish`), or, if that copy is lost, drop the restore with `callvault --keys " + key_dir +
          " restore abandon " + e.id + "`; nothing pruned");
    }
  }
  // Entries end at newlines: the new base is at a line start (a manifest's
  // offset always is: it is the size of whole appends).
  const size_t cut_at = view.body_at + (keep_from - view.base);
  if (cut_at > view.body_at && log[cut_at - 1] != '\n') {
    return Status::Corruption("a kept backup's tombstone offset is not at the start of a log line; "
                              "nothing pruned");
  }
  report.lines_dropped = static_cast<uint64_t>(
      std::count(log.begin() + static_cast<std::ptrdiff_t>(view.body_at),
                 log.begin() + static_cast<std::ptrdiff_t>(cut_at), '\n'));
  std::string out(kTombstoneHeader);
  out += std::to_string(keep_from);
  out.push_back('\n');
  out.append(log, cut_at, std::string::npos);
  CV_RETURN_IF_ERROR(WriteFileDurably(key_dir + "/TOMBSTONES", out));
  report.base = keep_from;
  return report;
}

}  // namespace callvault
