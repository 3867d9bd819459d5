#include "engine/manifest_mark.h"

#include <sys/stat.h>

#include <cerrno>
#include <string_view>

#include "engine/fs_util.h"
#include "engine/wal_scan.h"
#include "format/coding.h"

namespace callvault {

namespace {

constexpr std::string_view kMagic = "CVMSYNC1";
constexpr size_t kSlotBody = 32;              // magic + three fixed64
constexpr size_t kSlotBytes = kSlotBody + 4;  // + masked crc32c

uint32_t SlotCrc(const char* p) { return walscan::Mask(walscan::Crc32c(p, kSlotBody)); }

// False for a symlink, a directory or any other non-regular entry at
// `path` (planted: never followed nor written through).
bool RegularOrMissing(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) return errno == ENOENT;
  return S_ISREG(st.st_mode);
}

}  // namespace

std::string EncodeManifestMarkSlot(const ManifestMarkSlot& slot) {
  std::string out(kMagic);
  format::PutFixed64LE(&out, slot.counter);
  format::PutFixed64LE(&out, slot.manifest);
  format::PutFixed64LE(&out, slot.synced);
  format::PutFixed32LE(&out, SlotCrc(out.data()));
  return out;
}

std::optional<ManifestMarkSlot> DecodeManifestMarkSlot(std::string_view bytes) {
  if (bytes.size() < kSlotBytes || bytes.substr(0, kMagic.size()) != kMagic) return std::nullopt;
  if (format::DecodeFixed32LE(bytes.data() + kSlotBody) != SlotCrc(bytes.data())) {
    return std::nullopt;
  }
  ManifestMarkSlot slot;
  slot.counter = format::DecodeFixed64LE(bytes.data() + 8);
  slot.manifest = format::DecodeFixed64LE(bytes.data() + 16);
  slot.synced = format::DecodeFixed64LE(bytes.data() + 24);
  return slot;
}

std::optional<uint64_t> SyncedManifestBytes(std::string_view file, uint64_t manifest) {
  if (file.size() != kManifestMarkFileBytes) return std::nullopt;
  std::optional<ManifestMarkSlot> best;
  for (size_t i = 0; i < 2; ++i) {
    auto slot = DecodeManifestMarkSlot(file.substr(i * kManifestMarkSlotBytes, kManifestMarkSlotBytes));
    if (slot && slot->manifest == manifest && (!best || slot->counter > best->counter)) best = slot;
  }
  if (!best) return std::nullopt;
  return best->synced;
}

std::string ReadManifestMarkFile(rocksdb::FileSystem* fs, const std::string& dir) {
  const std::string path = dir + "/" + kManifestMarkFile;
  if (!RegularOrMissing(path)) return std::string();  // planted: no mark
  uint64_t size = 0;
  std::string data;
  if (!fs->GetFileSize(path, rocksdb::IOOptions(), &size, nullptr).ok() ||
      size != kManifestMarkFileBytes || !fsutil::ReadAll(fs, path, &data).ok() ||
      data.size() != kManifestMarkFileBytes) {
    return std::string();
  }
  return data;
}

std::optional<uint64_t> ManifestNumber(std::string_view name) {
  constexpr std::string_view kPrefix = "MANIFEST-";
  if (name.substr(0, kPrefix.size()) != kPrefix || name.size() == kPrefix.size() ||
      name.size() > kPrefix.size() + 19) {
    return std::nullopt;
  }
  uint64_t n = 0;
  for (char c : name.substr(kPrefix.size())) {
    if (c < '0' || c > '9') return std::nullopt;
    n = n * 10 + static_cast<uint64_t>(c - '0');
  }
  return n;
}

void ManifestMarks::Track(const std::string& dir) {
  std::lock_guard<std::mutex> l(mu_);
  auto& d = dirs_[dir];
  if (!d) d = std::make_unique<Dir>();
}

ManifestMarks::Dir* ManifestMarks::Of(const std::string& dir) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = dirs_.find(dir);
  return it == dirs_.end() ? nullptr : it->second.get();
}

namespace {

// N of the MANIFEST-N `dir`/CURRENT names, or 0.
uint64_t CurrentManifest(rocksdb::FileSystem* fs, const std::string& dir) {
  return ManifestNumber(walscan::ReadCurrentName(fs, dir)).value_or(0);
}

}  // namespace

rocksdb::IOStatus ManifestMarks::Record(rocksdb::FileSystem* fs, const std::string& dir,
                                        uint64_t manifest, uint64_t synced) {
  Dir* d = Of(dir);
  if (d == nullptr) return rocksdb::IOStatus::OK();  // not an instance's (a backup's copy)
  std::lock_guard<std::mutex> l(d->mu);
  const std::string path = dir + "/" + kManifestMarkFile;
  rocksdb::IOOptions io;
  // Gone or replaced since it was read (removed by hand, a symlink
  // planted): read or made again, never written through a link.
  struct stat st;
  if (d->loaded && (::lstat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode))) d->loaded = false;
  if (!d->loaded) {
    const std::string data = ReadManifestMarkFile(fs, dir);
    d->slots[0].reset();
    d->slots[1].reset();
    if (!data.empty()) {
      for (int i = 0; i < 2; ++i) {
        d->slots[i] = DecodeManifestMarkSlot(
            std::string_view(data).substr(i * kManifestMarkSlotBytes, kManifestMarkSlotBytes));
      }
    } else {
      // Missing, or cut by a crash while it was made: made again, zeros
      // (no whole slot), synced with its directory entry. A symlink in its
      // place is removed first, never written through; another kind of
      // entry (a directory) fails the MANIFEST's sync.
      rocksdb::IOStatus s;
      if (!RegularOrMissing(path)) {
        struct stat entry;
        if (::lstat(path.c_str(), &entry) == 0 && S_ISLNK(entry.st_mode)) {
          s = fs->DeleteFile(path, io, nullptr);
        } else {
          s = rocksdb::IOStatus::IOError(path + ": not a regular file (decision 0067)");
        }
        if (!s.ok()) return s;
      }
      std::unique_ptr<rocksdb::FSWritableFile> f;
      s = fs->NewWritableFile(path, rocksdb::FileOptions(), &f, nullptr);
      if (s.ok()) s = f->Append(std::string(kManifestMarkFileBytes, '\0'), io, nullptr);
      if (s.ok()) s = f->Sync(io, nullptr);
      if (f) {
        rocksdb::IOStatus c = f->Close(io, nullptr);
        if (s.ok()) s = c;
      }
      if (s.ok()) {
        std::unique_ptr<rocksdb::FSDirectory> dd;
        s = fs->NewDirectory(dir, io, &dd, nullptr);
        if (s.ok()) s = dd->Fsync(io, nullptr);
      }
      if (!s.ok()) return s;
    }
    d->loaded = true;
  }
  // The slot to write: the older one, unless it holds the newest mark of
  // another MANIFEST that CURRENT names (a new MANIFEST being written
  // before CURRENT is renamed to it, or after such a rename failed, as
  // often as that happens): then the other, even if that overwrites this
  // MANIFEST's own last mark (it was never CURRENT's).
  uint64_t counter = 0;
  int target = 0;
  bool another = false;
  for (int i = 0; i < 2; ++i) {
    if (!d->slots[i]) continue;
    another = another || d->slots[i]->manifest != manifest;
    if (d->slots[i]->counter >= counter) {
      counter = d->slots[i]->counter;
      target = 1 - i;
    }
  }
  const uint64_t current = another ? CurrentManifest(fs, dir) : manifest;
  if (current != manifest) {
    int keep = -1;  // the slot with the newest mark of CURRENT's MANIFEST
    for (int i = 0; i < 2; ++i) {
      if (d->slots[i] && d->slots[i]->manifest == current &&
          (keep < 0 || d->slots[i]->counter > d->slots[keep]->counter)) {
        keep = i;
      }
    }
    if (keep >= 0) target = 1 - keep;
  }
  std::unique_ptr<rocksdb::FSRandomRWFile> f;
  rocksdb::IOStatus s = fs->NewRandomRWFile(path, rocksdb::FileOptions(), &f, nullptr);
  const ManifestMarkSlot slot{counter + 1, manifest, synced};
  if (s.ok()) {
    s = f->Write(static_cast<uint64_t>(target) * kManifestMarkSlotBytes, EncodeManifestMarkSlot(slot),
                 io, nullptr);
  }
  if (s.ok()) s = f->Sync(io, nullptr);
  if (f) {
    rocksdb::IOStatus c = f->Close(io, nullptr);
    if (s.ok()) s = c;
  }
  if (!s.ok()) {
    d->loaded = false;  // read again before the next write
    return s;
  }
  d->slots[target] = slot;
  return s;
}

}  // namespace callvault
