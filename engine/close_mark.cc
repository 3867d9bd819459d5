#include "engine/close_mark.h"

#include <sodium.h>

#include <rocksdb/env.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <vector>

#include "engine/crypto.h"
#include "engine/fs_util.h"
#include "format/rowkey.h"

namespace callvault {

namespace {

constexpr std::string_view kVersionLine = "callvault close mark v1\n";
// v2 (decision 0042): a `counter <n>` line right after the version line.
constexpr std::string_view kVersion2Line = "callvault close mark v2\n";
constexpr std::string_view kCounterTag = "counter ";
constexpr std::string_view kDigestTag = "sha256 ";

std::string Sha256Hex(std::string_view bytes) {
  unsigned char digest[crypto_hash_sha256_BYTES];
  crypto_hash_sha256(digest, reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size());
  char hex[2 * crypto_hash_sha256_BYTES + 1];
  sodium_bin2hex(hex, sizeof(hex), digest, sizeof(digest));
  return std::string(hex, 2 * crypto_hash_sha256_BYTES);
}

Status Damaged(const std::string& why) {
  return Status::Corruption("close mark damaged: " + std::string(kCloseMarkFile) + " " + why +
                            "; restore the store from a backup, or remove the file knowingly "
                            "(the next open then checks nothing; docs/operations.md, \"Close "
                            "mark\")");
}

bool ParseIndex(std::string_view s, uint32_t* out) {
  if (s.empty() || s.size() > 6 || s.find_first_not_of("0123456789") != std::string_view::npos) {
    return false;
  }
  *out = static_cast<uint32_t>(std::stoul(std::string(s)));
  return true;
}

// The framing CLOSE_MARK and WAL_LEDGER share (docs/format.md): a version
// line, the content lines, then "sha256 <hex of everything before>\n".
// `body` is everything before the digest line, version line included;
// `damaged` words the error for the file at hand.
Status CheckedBody(std::string_view bytes, std::string_view version_line, std::string_view reads,
                   Status (*damaged)(const std::string&), std::string_view* body) {
  if (bytes.empty()) return damaged("is empty");
  if (bytes.back() != '\n') return damaged("is truncated (no final newline)");
  const size_t last = bytes.rfind('\n', bytes.size() - 2);
  const size_t tag = last == std::string_view::npos ? 0 : last + 1;
  *body = bytes.substr(0, tag);
  const std::string_view digest_line = bytes.substr(tag, bytes.size() - 1 - tag);
  if (digest_line.substr(0, kDigestTag.size()) != kDigestTag ||
      digest_line.size() != kDigestTag.size() + 2 * crypto_hash_sha256_BYTES) {
    return damaged("is truncated or malformed (no sha256 line at its end)");
  }
  if (!crypto::ConstantTimeEquals(std::string(digest_line.substr(kDigestTag.size())),
                                  Sha256Hex(*body))) {
    return damaged("fails its checksum (sha256 of its content)");
  }
  if (body->substr(0, version_line.size()) != version_line) {
    return damaged("has an unknown version line (this build reads " + std::string(reads) + ")");
  }
  return Status::OK();
}

}  // namespace

std::string EncodeCloseMark(const CloseMark& m) {
  std::string body(m.counter ? kVersion2Line : kVersionLine);
  if (m.counter) body += std::string(kCounterTag) + std::to_string(*m.counter) + "\n";
  if (m.meta) body += "meta " + m.meta->Encode() + "\n";
  for (const auto& [i, mark] : m.shards) body += "shard " + std::to_string(i) + " " + mark.Encode() + "\n";
  return body + std::string(kDigestTag) + Sha256Hex(body) + "\n";
}

Status DecodeCloseMark(std::string_view bytes, CloseMark* out) {
  std::string_view body;
  const bool v2 = bytes.substr(0, kVersion2Line.size()) == kVersion2Line;
  CV_RETURN_IF_ERROR(CheckedBody(bytes, v2 ? kVersion2Line : kVersionLine, "v1 and v2", Damaged, &body));
  CloseMark m;
  size_t pos = kVersionLine.size();
  if (v2) {
    // The counter line, first and once (decision 0042).
    const size_t nl = body.find('\n', pos);
    const std::string_view line = body.substr(pos, nl - pos);
    const std::string_view digits = line.substr(std::min(line.size(), kCounterTag.size()));
    uint64_t counter = 0;
    const auto r = std::from_chars(digits.data(), digits.data() + digits.size(), counter);
    if (nl == std::string_view::npos || line.substr(0, kCounterTag.size()) != kCounterTag ||
        digits.empty() || r.ec != std::errc() || r.ptr != digits.data() + digits.size()) {
      return Damaged("has a bad counter line");
    }
    m.counter = counter;
    pos = nl + 1;
  }
  while (pos < body.size()) {
    const size_t nl = body.find('\n', pos);
    const std::string_view line = body.substr(pos, nl - pos);
    pos = nl + 1;
    ShardMark mark;
    if (line.rfind("meta ", 0) == 0) {
      if (m.meta || !ShardMark::Decode(line.substr(5), &mark)) return Damaged("has a bad meta line");
      m.meta = std::move(mark);
      continue;
    }
    uint32_t index = 0;
    const size_t sp = line.find(' ', 6);
    if (line.rfind("shard ", 0) != 0 || sp == std::string_view::npos ||
        !ParseIndex(line.substr(6, sp - 6), &index) || m.shards.count(index) != 0 ||
        !ShardMark::Decode(line.substr(sp + 1), &mark)) {
      return Damaged("has a bad line");
    }
    m.shards[index] = std::move(mark);
  }
  *out = std::move(m);
  return Status::OK();
}

namespace {

// Reads at most one byte more than kMaxCloseMarkBytes: a huge file (sparse,
// or a damaged size) is damage, never a whole-file allocation.
Status ReadBounded(rocksdb::FileSystem* fs, const std::string& path, const std::string& name,
                   std::string* bytes, bool* there) {
  *there = false;
  std::unique_ptr<rocksdb::FSSequentialFile> file;
  rocksdb::IOStatus s = fs->NewSequentialFile(path, rocksdb::FileOptions(), &file, nullptr);
  if (s.IsNotFound() || s.IsPathNotFound()) return Status::OK();
  const std::string what = "read " + name;
  CV_RETURN_IF_ERROR(fsutil::FromIO(s, what));
  constexpr size_t kChunk = 64 * 1024;
  std::unique_ptr<char[]> buf(new char[kChunk]);
  while (bytes->size() <= kMaxCloseMarkBytes) {
    rocksdb::Slice got;
    CV_RETURN_IF_ERROR(fsutil::FromIO(
        file->Read(kChunk, rocksdb::IOOptions(), &got, buf.get(), nullptr), what));
    if (got.empty()) break;
    bytes->append(got.data(), got.size());
  }
  *there = true;
  return Status::OK();
}

}  // namespace

Status ReadCloseMark(rocksdb::FileSystem* fs, const std::string& root, CloseMark* out,
                     bool* present) {
  *present = false;
  std::string bytes;
  bool there = false;
  CV_RETURN_IF_ERROR(ReadBounded(fs, root + "/" + kCloseMarkFile, kCloseMarkFile, &bytes, &there));
  if (!there) return Status::OK();
  if (bytes.size() > kMaxCloseMarkBytes) {
    return Damaged("is larger than any close mark (over " + std::to_string(kMaxCloseMarkBytes) +
                   " bytes)");
  }
  CV_RETURN_IF_ERROR(DecodeCloseMark(bytes, out));
  *present = true;
  return Status::OK();
}

namespace {

constexpr std::string_view kLedgerVersionLine = "callvault wal ledger v1\n";
// v2 (decision 0042): a `meta` line first, the metadata instance's WALs.
constexpr std::string_view kLedgerVersion2Line = "callvault wal ledger v2\n";
// v3 (decision 0050): each listed WAL with its edge digest.
constexpr std::string_view kLedgerVersion3Line = "callvault wal ledger v3\n";
constexpr size_t kEdgeDigestBytes = 16;

Status LedgerDamaged(const std::string& why) {
  return Status::Corruption("WAL ledger damaged: " + std::string(kWalLedgerFile) + " " + why +
                            "; restore the store from a backup, or remove the file knowingly "
                            "(older WAL files are then not checked until the next clean close; "
                            "docs/operations.md, \"WAL ledger\")");
}

}  // namespace

namespace {

// BLAKE2b-128 of `first` then `last`, 32 lowercase hex digits: the edge
// digest of a file whose first and last kWalEdgeBytes (at most) they are.
std::string EdgeDigestHex(std::string_view first, std::string_view last) {
  crypto_generichash_state st;
  crypto_generichash_init(&st, nullptr, 0, kEdgeDigestBytes);
  crypto_generichash_update(&st, reinterpret_cast<const unsigned char*>(first.data()), first.size());
  crypto_generichash_update(&st, reinterpret_cast<const unsigned char*>(last.data()), last.size());
  unsigned char digest[kEdgeDigestBytes];
  crypto_generichash_final(&st, digest, sizeof(digest));
  char hex[2 * kEdgeDigestBytes + 1];
  sodium_bin2hex(hex, sizeof(hex), digest, sizeof(digest));
  return std::string(hex, 2 * kEdgeDigestBytes);
}

}  // namespace

std::string WalEdgeDigest(std::string_view data, uint64_t size) {
  const size_t n = static_cast<size_t>(std::min<uint64_t>(size, data.size()));
  const size_t edge = static_cast<size_t>(std::min<uint64_t>(n, kWalEdgeBytes));
  return EdgeDigestHex(data.substr(0, edge), data.substr(n - edge, edge));
}

Result<std::string> ReadWalEdgeDigest(rocksdb::FileSystem* fs, const std::string& path,
                                      uint64_t size) {
  const size_t edge = static_cast<size_t>(std::min(size, kWalEdgeBytes));
  std::unique_ptr<rocksdb::FSRandomAccessFile> file;
  rocksdb::IOStatus s = fs->NewRandomAccessFile(path, rocksdb::FileOptions(), &file, nullptr);
  if (s.IsNotFound() || s.IsPathNotFound()) return Status::NotFound(path + " is gone");
  const std::string what = "read the edges of " + path;
  CV_RETURN_IF_ERROR(fsutil::FromIO(s, what));
  // The first and the last `edge` bytes before `size`.
  std::string ends[2] = {std::string(edge, '\0'), std::string(edge, '\0')};
  for (int part = 0; part < 2; ++part) {
    const uint64_t at = part == 0 ? 0 : size - edge;
    char* to = ends[part].data();
    size_t got = 0;
    while (got < edge) {
      rocksdb::Slice r;
      CV_RETURN_IF_ERROR(fsutil::FromIO(
          file->Read(at + got, edge - got, rocksdb::IOOptions(), &r, to + got, nullptr), what));
      if (r.empty()) break;
      if (r.data() != to + got) std::memmove(to + got, r.data(), r.size());
      got += r.size();
    }
    if (got < edge) return Status::IOError(what + ": short read");
  }
  return EdgeDigestHex(ends[0], ends[1]);
}

namespace {

// " <wal> <size> <edges>" per WAL (v3; `-` when not known).
std::string LedgerEntries(const std::vector<std::pair<std::string, uint64_t>>& wals,
                          const std::map<std::string, std::string>* edges) {
  std::string s;
  for (const auto& [name, size] : wals) {
    s += " " + name + " " + std::to_string(size);
    auto h = edges == nullptr ? decltype(edges->end()){} : edges->find(name);
    s += edges != nullptr && h != edges->end() ? " " + h->second : std::string(" -");
  }
  return s;
}

// NNNNNN.log, as RocksDB names a WAL file.
bool IsWalFileName(std::string_view name) {
  return name.size() > 4 && name.substr(name.size() - 4) == ".log" &&
         name.find_first_not_of("0123456789") == name.size() - 4;
}

bool IsEdgeDigest(std::string_view h) {
  return h.size() == 2 * kEdgeDigestBytes && h.find_first_not_of("0123456789abcdef") == std::string_view::npos;
}

// The entries of a v3 line after its tag: "<wal> <size> <edges>" triples.
bool ParseLedgerEntries(std::string_view rest, std::vector<std::pair<std::string, uint64_t>>* wals,
                        std::map<std::string, std::string>* edges) {
  std::vector<std::string_view> tokens;
  size_t pos = 0;
  while (pos < rest.size()) {
    if (rest[pos] != ' ') return false;
    const size_t end = std::min(rest.find(' ', pos + 1), rest.size());
    tokens.push_back(rest.substr(pos + 1, end - pos - 1));
    pos = end;
  }
  if (tokens.size() % 3 != 0) return false;
  for (size_t i = 0; i < tokens.size(); i += 3) {
    const std::string_view name = tokens[i], size = tokens[i + 1], digest = tokens[i + 2];
    uint64_t n = 0;
    const auto r = std::from_chars(size.data(), size.data() + size.size(), n);
    if (!IsWalFileName(name) || size.empty() || r.ec != std::errc() ||
        r.ptr != size.data() + size.size() || (digest != "-" && !IsEdgeDigest(digest))) {
      return false;
    }
    for (const auto& w : *wals) {
      if (w.first == name) return false;  // listed twice
    }
    wals->emplace_back(std::string(name), n);
    if (digest != "-") (*edges)[std::string(name)] = std::string(digest);
  }
  return true;
}

}  // namespace

std::string EncodeWalLedger(const WalLedger& l) {
  std::string body(kLedgerVersion3Line);
  static const std::vector<std::pair<std::string, uint64_t>> kNone;
  body += "meta" + LedgerEntries(l.meta ? *l.meta : kNone, &l.meta_edges) + "\n";
  for (const auto& [i, wals] : l.shards) {
    auto h = l.shard_edges.find(i);
    body += "shard " + std::to_string(i) +
            LedgerEntries(wals, h == l.shard_edges.end() ? nullptr : &h->second) + "\n";
  }
  return body + std::string(kDigestTag) + Sha256Hex(body) + "\n";
}

Status DecodeWalLedger(std::string_view bytes, WalLedger* out) {
  std::string_view body;
  if (bytes.substr(0, kLedgerVersion3Line.size()) == kLedgerVersion3Line) {
    CV_RETURN_IF_ERROR(CheckedBody(bytes, kLedgerVersion3Line, "v1 to v3", LedgerDamaged, &body));
    WalLedger l;
    size_t pos = kLedgerVersion3Line.size();
    bool first = true;
    while (pos < body.size()) {
      const size_t nl = body.find('\n', pos);
      const std::string_view line = body.substr(pos, nl - pos);
      pos = nl + 1;
      if (first) {
        // The metadata instance's line, first and once.
        first = false;
        std::vector<std::pair<std::string, uint64_t>> wals;
        if (line.substr(0, 4) != "meta" || !ParseLedgerEntries(line.substr(4), &wals, &l.meta_edges)) {
          return LedgerDamaged("has a bad meta line");
        }
        l.meta = std::move(wals);
        continue;
      }
      const size_t sp = std::min(line.find(' ', 6), line.size());
      uint32_t index = 0;
      std::vector<std::pair<std::string, uint64_t>> wals;
      std::map<std::string, std::string> edges;
      if (line.rfind("shard ", 0) != 0 || !ParseIndex(line.substr(6, sp - 6), &index) ||
          l.shards.count(index) != 0 || !ParseLedgerEntries(line.substr(sp), &wals, &edges)) {
        return LedgerDamaged("has a bad line");
      }
      l.shards[index] = std::move(wals);
      if (!edges.empty()) l.shard_edges[index] = std::move(edges);
    }
    if (first) return LedgerDamaged("has no meta line");
    *out = std::move(l);
    return Status::OK();
  }
  const bool v2 = bytes.substr(0, kLedgerVersion2Line.size()) == kLedgerVersion2Line;
  CV_RETURN_IF_ERROR(CheckedBody(bytes, v2 ? kLedgerVersion2Line : kLedgerVersionLine, "v1 to v3",
                                 LedgerDamaged, &body));
  WalLedger l;
  size_t pos = kLedgerVersionLine.size();
  if (v2) {
    // The metadata instance's line, first and once (decision 0042).
    const size_t nl = body.find('\n', pos);
    const std::string_view line = body.substr(pos, nl - pos);
    ShardMark m;
    if (nl == std::string_view::npos || (line != "meta" && line.rfind("meta ", 0) != 0) ||
        !ShardMark::Decode("v1 0 - 0" + std::string(line.substr(4)), &m)) {
      return LedgerDamaged("has a bad meta line");
    }
    l.meta = std::move(m.wals);
    pos = nl + 1;
  }
  while (pos < body.size()) {
    const size_t nl = body.find('\n', pos);
    const std::string_view line = body.substr(pos, nl - pos);
    pos = nl + 1;
    // Parsed by the ShardMark grammar: "v1 0 - 0 <wal> <size>...".
    const size_t sp = line.find(' ', 6);
    uint32_t index = 0;
    ShardMark m;
    if (line.rfind("shard ", 0) != 0 ||
        !ParseIndex(line.substr(6, (sp == std::string_view::npos ? line.size() : sp) - 6), &index) ||
        l.shards.count(index) != 0 ||
        !ShardMark::Decode("v1 0 - 0" + std::string(sp == std::string_view::npos ? "" : line.substr(sp)),
                           &m)) {
      return LedgerDamaged("has a bad line");
    }
    l.shards[index] = std::move(m.wals);
  }
  *out = std::move(l);
  return Status::OK();
}

Status ReadWalLedger(rocksdb::FileSystem* fs, const std::string& root, WalLedger* out,
                     bool* present) {
  *present = false;
  std::string bytes;
  bool there = false;
  CV_RETURN_IF_ERROR(ReadBounded(fs, root + "/" + kWalLedgerFile, kWalLedgerFile, &bytes, &there));
  if (!there) return Status::OK();
  if (bytes.size() > kMaxCloseMarkBytes) {
    return LedgerDamaged("is larger than any WAL ledger (over " +
                         std::to_string(kMaxCloseMarkBytes) + " bytes)");
  }
  CV_RETURN_IF_ERROR(DecodeWalLedger(bytes, out));
  *present = true;
  return Status::OK();
}

Status WriteWalLedger(rocksdb::FileSystem* fs, const std::string& root, const WalLedger& l) {
  const std::string bytes = EncodeWalLedger(l);
  if (bytes.size() > kMaxCloseMarkBytes) {
    if (!fs->FileExists(root + "/" + kWalLedgerFile, rocksdb::IOOptions(), nullptr).ok()) {
      return Status::OK();
    }
    return fsutil::Remove(fs, root, kWalLedgerFile, /*sync_dir=*/true);
  }
  return fsutil::AtomicWrite(fs, root, kWalLedgerFile, reinterpret_cast<const uint8_t*>(bytes.data()),
                             bytes.size());
}

Result<uint64_t> ReadCloseCounter(rocksdb::DB* meta) {
  std::string v;
  rocksdb::Status s = meta->Get(rocksdb::ReadOptions(), format::HeaderKey(kCloseCounterField), &v);
  if (s.IsNotFound()) return uint64_t{0};
  CV_RETURN_IF_ERROR(fsutil::FromRocks(s, "read store header"));
  uint64_t n = 0;
  const auto r = std::from_chars(v.data(), v.data() + v.size(), n);
  if (v.empty() || r.ec != std::errc() || r.ptr != v.data() + v.size()) {
    return Status::Corruption("store header: bad " + std::string(kCloseCounterField));
  }
  return n;
}

ShardMark LedgerMark(const std::vector<std::pair<std::string, uint64_t>>& wals,
                     const std::map<std::string, std::string>& edges) {
  ShardMark m;
  m.manifest = kLedgerManifest;
  m.wals = wals;
  m.edges = edges;
  return m;
}

}  // namespace callvault
