#include "engine/close_mark.h"

#include <sodium.h>

#include <rocksdb/env.h>

#include "engine/crypto.h"
#include "engine/fs_util.h"

namespace callvault {

namespace {

constexpr std::string_view kVersionLine = "callvault close mark v1\n";
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

}  // namespace

std::string EncodeCloseMark(const CloseMark& m) {
  std::string body(kVersionLine);
  if (m.meta) body += "meta " + m.meta->Encode() + "\n";
  for (const auto& [i, mark] : m.shards) body += "shard " + std::to_string(i) + " " + mark.Encode() + "\n";
  return body + std::string(kDigestTag) + Sha256Hex(body) + "\n";
}

Status DecodeCloseMark(std::string_view bytes, CloseMark* out) {
  if (bytes.empty()) return Damaged("is empty");
  if (bytes.back() != '\n') return Damaged("is truncated (no final newline)");
  const size_t last = bytes.rfind('\n', bytes.size() - 2);
  const size_t tag = last == std::string_view::npos ? 0 : last + 1;
  const std::string_view body = bytes.substr(0, tag);
  const std::string_view digest_line = bytes.substr(tag, bytes.size() - 1 - tag);
  if (digest_line.substr(0, kDigestTag.size()) != kDigestTag ||
      digest_line.size() != kDigestTag.size() + 2 * crypto_hash_sha256_BYTES) {
    return Damaged("is truncated or malformed (no sha256 line at its end)");
  }
  if (!crypto::ConstantTimeEquals(std::string(digest_line.substr(kDigestTag.size())),
                                  Sha256Hex(body))) {
    return Damaged("fails its checksum (sha256 of its content)");
  }
  if (body.substr(0, kVersionLine.size()) != kVersionLine) {
    return Damaged("has an unknown version line (this build reads v1)");
  }
  CloseMark m;
  size_t pos = kVersionLine.size();
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

Status ReadCloseMark(rocksdb::FileSystem* fs, const std::string& root, CloseMark* out,
                     bool* present) {
  *present = false;
  const std::string path = root + "/" + kCloseMarkFile;
  std::string bytes;
  // Read at most one byte more than a close mark can hold: a huge file
  // (sparse, or a damaged size) is damage, never a whole-file allocation.
  std::unique_ptr<rocksdb::FSSequentialFile> file;
  rocksdb::IOStatus s = fs->NewSequentialFile(path, rocksdb::FileOptions(), &file, nullptr);
  if (s.IsNotFound() || s.IsPathNotFound()) return Status::OK();
  const std::string what = "read " + std::string(kCloseMarkFile);
  CV_RETURN_IF_ERROR(fsutil::FromIO(s, what));
  constexpr size_t kChunk = 64 * 1024;
  std::unique_ptr<char[]> buf(new char[kChunk]);
  while (bytes.size() <= kMaxCloseMarkBytes) {
    rocksdb::Slice got;
    CV_RETURN_IF_ERROR(fsutil::FromIO(
        file->Read(kChunk, rocksdb::IOOptions(), &got, buf.get(), nullptr), what));
    if (got.empty()) break;
    bytes.append(got.data(), got.size());
  }
  if (bytes.size() > kMaxCloseMarkBytes) {
    return Damaged("is larger than any close mark (over " + std::to_string(kMaxCloseMarkBytes) +
                   " bytes)");
  }
  CV_RETURN_IF_ERROR(DecodeCloseMark(bytes, out));
  *present = true;
  return Status::OK();
}

}  // namespace callvault
