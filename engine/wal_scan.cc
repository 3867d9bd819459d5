#include "engine/wal_scan.h"

#include <chrono>

#include <rocksdb/env.h>

#include <algorithm>
#include <limits>
#include <map>
#include <set>
#include <type_traits>

#include "engine/crc32c.h"
#include "engine/fs_util.h"
#include "engine/kill_point.h"
#include "format/coding.h"

namespace callvault::walscan {

namespace {

constexpr size_t kBlockSize = 32768;
constexpr size_t kHeaderSize = 7;
constexpr size_t kRecyclableHeaderSize = 11;
// log_format.h record types.
constexpr int kZeroType = 0, kFullType = 1, kFirstType = 2, kMiddleType = 3, kLastType = 4;
constexpr int kRecyclableFullType = 5, kRecyclableLastType = 8, kSetCompressionType = 9;

// Slicing-by-8 tables of crc32c (reflected polynomial 0x82f63b78).
// Column families named by a write batch, and whether it parsed whole.
struct BatchInfo {
  bool header = false;  // at least the 12-byte header
  uint64_t seq = 0;
  uint32_t count = 0;
  bool parsed = false;
  bool trusted = false;  // its own checksum held: it was written as it is
  std::set<uint32_t> cfs;
  std::string payload;  // trusted only: kept by a repair
};

// A varint (32 or 64 bits) and a length-prefixed slice, as RocksDB's
// util/coding.h encodes them; false on a truncated or overlong encoding.
template <typename T>
bool GetVarint(std::string_view* in, T* v) {
  static_assert(std::is_same_v<T, uint32_t> || std::is_same_v<T, uint64_t>);
  T r = 0;
  for (int shift = 0; shift < static_cast<int>(8 * sizeof(T)) && !in->empty(); shift += 7) {
    const auto byte = static_cast<uint8_t>(in->front());
    in->remove_prefix(1);
    r |= static_cast<T>(byte & 0x7f) << shift;
    if ((byte & 0x80) == 0) {
      *v = r;
      return true;
    }
  }
  return false;
}
bool GetVarint32(std::string_view* in, uint32_t* v) { return GetVarint(in, v); }
bool GetVarint64(std::string_view* in, uint64_t* v) { return GetVarint(in, v); }

bool SkipLengthPrefixed(std::string_view* in) {
  uint32_t n = 0;
  if (!GetVarint32(in, &n) || n > in->size()) return false;
  in->remove_prefix(n);
  return true;
}

// Parses a write batch (db/write_batch.cc's format) without RocksDB: the
// bytes may be damaged, and `WriteBatch::Iterate` is not safe on damaged
// input (Debian's build keeps RocksDB's assertions: a stray transaction tag,
// kTypeBeginPrepareXID and its kin, aborted the process in
// `WriteBatchInternal::Iterate`; issue 11). Records of the kinds the engine
// never writes (two-phase-commit markers, timestamps, unknown tags) end the
// parse as damaged; the families named before that are kept, best effort.
BatchInfo ParseBatch(std::string_view rep) {
  BatchInfo b;
  if (rep.size() < 12) return b;
  b.header = true;
  b.seq = format::DecodeFixed64LE(rep.data());
  b.count = format::DecodeFixed32LE(rep.data() + 8);
  std::string_view in = rep.substr(12);
  uint64_t found = 0;
  while (!in.empty()) {
    const auto tag = static_cast<uint8_t>(in.front());
    in.remove_prefix(1);
    bool has_cf = false;
    bool counted = true;
    int slices = 2;
    switch (tag) {
      case 0x5:   // kTypeColumnFamilyValue
      case 0xE:   // kTypeColumnFamilyRangeDeletion
      case 0x6:   // kTypeColumnFamilyMerge
      case 0x10:  // kTypeColumnFamilyBlobIndex
      case 0x17:  // kTypeColumnFamilyWideColumnEntity
        has_cf = true;
        break;
      case 0x1:   // kTypeValue
      case 0xF:   // kTypeRangeDeletion
      case 0x2:   // kTypeMerge
      case 0x11:  // kTypeBlobIndex
      case 0x16:  // kTypeWideColumnEntity
        break;
      case 0x4:  // kTypeColumnFamilyDeletion
      case 0x8:  // kTypeColumnFamilySingleDeletion
        has_cf = true;
        slices = 1;
        break;
      case 0x0:  // kTypeDeletion
      case 0x7:  // kTypeSingleDeletion
        slices = 1;
        break;
      case 0x3:  // kTypeLogData
        slices = 1;
        counted = false;
        break;
      case 0xD:  // kTypeNoop
        slices = 0;
        counted = false;
        break;
      default:
        return b;
    }
    uint32_t cf = 0;  // the default family
    if (has_cf && !GetVarint32(&in, &cf)) return b;
    for (int k = 0; k < slices; ++k) {
      if (!SkipLengthPrefixed(&in)) return b;
    }
    if (counted) {
      b.cfs.insert(cf);
      ++found;
    }
  }
  b.parsed = found == b.count;
  return b;
}

enum class DropKind { kCorrupt, kTruncatedAtEnd };

// One thing recovery meets, in log order: a record it replays, or bytes it drops.
struct Item {
  bool recovered = false;
  // recovered
  uint64_t seq = 0;
  uint32_t count = 0;
  bool seq_known = false;
  std::string payload;
  size_t file_index = 0;
  // dropped
  DropKind kind = DropKind::kCorrupt;
  std::string file;
  uint64_t offset = 0;
  std::string reason;
  std::vector<BatchInfo> candidates;  // records recovered would lose, as far as parsed
};

bool CrcOk(const std::string& d, size_t p, size_t hs, size_t len) {
  const uint32_t expected = format::DecodeFixed32LE(d.data() + p);
  const uint32_t actual = Crc32c(d.data() + p + 6, hs - 6 + len);
  return Mask(actual) == expected;
}

// Checksum-valid full records anywhere in [from, end): what the dropped
// rest of a block held (RocksDB drops it whole after a bad header).
// A checksum-valid FIRST fragment among them (it ends the block) goes to
// `first`: its MIDDLE and LAST fragments in the next blocks complete it.
void FindCandidates(const std::string& d, size_t from, size_t end, std::vector<BatchInfo>* out,
                    std::string* first = nullptr) {
  for (size_t q = from; q + kHeaderSize <= end; ++q) {
    const int type = static_cast<uint8_t>(d[q + 6]);
    if (type == kFirstType && first != nullptr) {
      const size_t len = static_cast<uint8_t>(d[q + 4]) |
                         (static_cast<size_t>(static_cast<uint8_t>(d[q + 5])) << 8);
      if (q + kHeaderSize + len <= end && end - (q + kHeaderSize + len) < kHeaderSize &&
          CrcOk(d, q, kHeaderSize, len)) {
        first->assign(d, q + kHeaderSize, len);
        return;
      }
      continue;
    }
    if (type != kFullType && type != kRecyclableFullType) continue;
    const size_t hs = type == kFullType ? kHeaderSize : kRecyclableHeaderSize;
    const size_t len = static_cast<uint8_t>(d[q + 4]) | (static_cast<size_t>(static_cast<uint8_t>(d[q + 5])) << 8);
    if (q + hs + len > end || len < 12) continue;
    if (!CrcOk(d, q, hs, len)) continue;
    BatchInfo b = ParseBatch(std::string_view(d).substr(q + hs, len));
    b.trusted = true;
    if (b.parsed) {
      b.payload.assign(d, q + hs, len);
      out->push_back(std::move(b));
    }
    q += hs + len - 1;
  }
}

// `stuck`: the offset of the first header RocksDB's reader would not get
// past with kSkipAnyCorruptedRecords (or npos): a header of a recyclable
// type (5-8) naming another log number is returned as kOldRecord before its
// checksum is looked at, without consuming it, and that mode then reads the
// same header again forever (7.8's db/log_reader.cc). The engine never
// recycles logs, so such a header is always damage.
void ScanFile(const WalFile& f, size_t file_index, std::vector<Item>* items, uint64_t* records,
              uint64_t* stuck) {
  const std::string& d = f.data;
  bool in_frag = false;
  std::string frag;
  uint64_t frag_off = 0;
  // A whole record inside dropped bytes that continues into the next
  // blocks (its FIRST fragment found by FindCandidates): completed from
  // the MIDDLE/LAST fragments the reader drops as "missing start".
  std::string pending;
  bool pending_active = false;
  size_t pending_item = 0;
  auto start_pending = [&](std::string first) {
    pending_active = !first.empty();
    pending = std::move(first);
    pending_item = items->size() - 1;
  };
  auto recovered = [&](std::string_view payload) {
    Item it;
    it.recovered = true;
    if (payload.size() >= 12) {
      it.seq = format::DecodeFixed64LE(payload.data());
      it.count = format::DecodeFixed32LE(payload.data() + 8);
      it.seq_known = true;
    }
    it.payload.assign(payload);
    it.file_index = file_index;
    ++*records;
    items->push_back(std::move(it));
  };
  auto drop = [&](uint64_t off, DropKind kind, std::string reason) -> Item& {
    Item it;
    it.kind = kind;
    it.file = f.name;
    it.offset = off;
    it.reason = std::move(reason);
    it.file_index = file_index;
    items->push_back(std::move(it));
    return items->back();
  };
  auto lose_fragment = [&](DropKind kind) {
    if (!in_frag) return;
    Item& it = drop(frag_off, kind, "fragmented record cut short");
    BatchInfo b = ParseBatch(frag);
    if (b.header) it.candidates.push_back(std::move(b));
    in_frag = false;
    frag.clear();
  };
  for (size_t start = 0; start < d.size(); start += kBlockSize) {
    const size_t end = std::min(start + kBlockSize, d.size());
    const bool short_block = end - start < kBlockSize;  // RocksDB's eof_
    size_t p = start;
    while (true) {
      if (end - p < kHeaderSize) {
        if (end > p && short_block) {
          lose_fragment(DropKind::kTruncatedAtEnd);
          drop(p, DropKind::kTruncatedAtEnd, "truncated header");
        }
        break;  // a block trailer, or the end
      }
      const int type = static_cast<uint8_t>(d[p + 6]);
      const size_t len = static_cast<uint8_t>(d[p + 4]) |
                         (static_cast<size_t>(static_cast<uint8_t>(d[p + 5])) << 8);
      const bool recyclable = type >= kRecyclableFullType && type <= kRecyclableLastType;
      const size_t hs = recyclable ? kRecyclableHeaderSize : kHeaderSize;
      if (recyclable && end - p >= hs && *stuck == std::string::npos &&
          format::DecodeFixed32LE(d.data() + p + kHeaderSize) != static_cast<uint32_t>(f.number)) {
        *stuck = p;
      }
      if (end - p < hs || p + hs + len > end) {
        std::vector<BatchInfo> later;
        std::string first;
        FindCandidates(d, p + 1, end, &later, &first);
        if (short_block && later.empty() && first.empty()) {
          lose_fragment(DropKind::kTruncatedAtEnd);
          drop(p, DropKind::kTruncatedAtEnd, "truncated record");
          break;
        }
        lose_fragment(DropKind::kCorrupt);
        Item& it = drop(p, DropKind::kCorrupt, "bad record length");
        it.candidates = std::move(later);
        start_pending(std::move(first));
        break;
      }
      if (type == kZeroType && len == 0) {
        // RocksDB skips the rest of the block without a word.
        bool zeros = true;
        for (size_t q = p; q < end && zeros; ++q) zeros = d[q] == 0;
        lose_fragment(DropKind::kCorrupt);
        Item& it = drop(p, short_block && zeros ? DropKind::kTruncatedAtEnd : DropKind::kCorrupt,
                        "zeroed bytes");
        std::string first;
        FindCandidates(d, p + 1, end, &it.candidates, &first);
        start_pending(std::move(first));
        break;
      }
      if (!CrcOk(d, p, hs, len)) {
        lose_fragment(DropKind::kCorrupt);
        Item& it = drop(p, DropKind::kCorrupt, "checksum mismatch");
        // Best effort: the damaged record itself, if its length held.
        if (type == kFullType || type == kRecyclableFullType) {
          BatchInfo b = ParseBatch(std::string_view(d).substr(p + hs, len));
          if (b.header) it.candidates.push_back(std::move(b));
        }
        std::string first;
        FindCandidates(d, p + 1, end, &it.candidates, &first);
        start_pending(std::move(first));
        break;
      }
      const std::string_view payload = std::string_view(d).substr(p + hs, len);
      const uint64_t at = p;
      p += hs + len;
      const int base = recyclable ? type - (kRecyclableFullType - kFullType) : type;
      if (pending_active && !in_frag && (base == kMiddleType || base == kLastType)) {
        pending.append(payload);
        if (base == kLastType) {
          BatchInfo b = ParseBatch(pending);
          b.trusted = true;
          if (b.parsed) {
            b.payload = std::move(pending);
            (*items)[pending_item].candidates.push_back(std::move(b));
          }
          pending_active = false;
          pending.clear();
        }
        drop(at, DropKind::kCorrupt, "missing start of fragmented record");
        continue;
      }
      pending_active = false;
      switch (recyclable ? type - (kRecyclableFullType - kFullType) : type) {
        case kFullType:
          lose_fragment(DropKind::kCorrupt);
          recovered(payload);
          break;
        case kFirstType:
          lose_fragment(DropKind::kCorrupt);
          in_frag = true;
          frag.assign(payload);
          frag_off = at;
          break;
        case kMiddleType:
          if (!in_frag) drop(at, DropKind::kCorrupt, "missing start of fragmented record");
          else frag.append(payload);
          break;
        case kLastType:
          if (!in_frag) {
            drop(at, DropKind::kCorrupt, "missing start of fragmented record");
          } else {
            frag.append(payload);
            recovered(frag);
            in_frag = false;
            frag.clear();
          }
          break;
        default:
          if (type == kSetCompressionType) break;
          lose_fragment(DropKind::kCorrupt);
          drop(at, DropKind::kCorrupt, "unknown record type " + std::to_string(type));
          break;
      }
    }
  }
  lose_fragment(DropKind::kTruncatedAtEnd);
}

}  // namespace

void AppendRecord(std::string* log, std::string_view payload) {
  size_t left = payload.size(), pos = 0;
  bool begin = true;
  do {
    size_t room = kBlockSize - log->size() % kBlockSize;
    if (room < kHeaderSize) {
      log->append(room, '\0');
      room = kBlockSize;
    }
    const size_t n = std::min(left, room - kHeaderSize);
    const bool end = n == left;
    const char type = static_cast<char>(begin && end ? kFullType
                                        : begin      ? kFirstType
                                        : end        ? kLastType
                                                     : kMiddleType);
    std::string body(1, type);
    body.append(payload.substr(pos, n));
    format::PutFixed32LE(log, Mask(Crc32c(body.data(), body.size())));
    log->push_back(static_cast<char>(n & 0xff));
    log->push_back(static_cast<char>(n >> 8));
    log->append(body);
    pos += n;
    left -= n;
    begin = false;
  } while (left > 0);
}

uint32_t Crc32c(const char* data, size_t n, uint32_t init) {
  return crc32c::Extend(init, data, n);
}

std::string Damage::Describe() const {
  std::string s = "WAL file " + file + " offset " + std::to_string(offset) + ": " + reason;
  // lost_sequences counts RocksDB sequence numbers, one per row written
  // (a call is several rows: record, indexes), not API operations.
  s += "; acknowledged writes lost";
  if (lost_sequences > 0) s += ": " + std::to_string(lost_sequences) + " row(s)";
  return s;
}

ScanResult Scan(const std::vector<WalFile>& files, bool repair) {
  ScanResult r;
  std::vector<Item> items;
  std::map<size_t, uint64_t> stuck_at;  // file index -> offset (ScanFile)
  for (size_t fi = 0; fi < files.size(); ++fi) {
    ++r.files;
    r.bytes += files[fi].data.size();
    uint64_t at = std::string::npos;
    ScanFile(files[fi], fi, &items, &r.records, &at);
    if (at != std::string::npos) stuck_at[fi] = at;
  }
  for (const auto& it : items) {
    if (it.recovered && it.seq_known && it.count > 0) {
      r.last_sequence = std::max(r.last_sequence, it.seq + it.count - 1);
    }
    // Checksum-valid records inside dropped bytes (a repair keeps them).
    for (const auto& c : it.candidates) {
      if (c.trusted && c.header && c.count > 0) {
        r.last_sequence = std::max(r.last_sequence, c.seq + c.count - 1);
      }
    }
  }
  // Sequence numbers ascend in log order; one that goes back is a file of
  // another history (ScanResult::sequence_regress).
  {
    uint64_t end = 0;  // one past the last recovered record's sequence numbers
    for (const auto& it : items) {
      if (!it.recovered || !it.seq_known) continue;
      if (it.seq < end && r.sequence_regress.empty()) {
        r.sequence_regress = "WAL file " + files[it.file_index].name + ": sequence numbers go back from " +
                             std::to_string(end - 1) + " to " + std::to_string(it.seq);
      }
      end = std::max(end, it.seq + it.count);
    }
  }
  std::set<size_t> damaged_files;
  // Walk the drops between recovered records.
  const Item* prev = nullptr;  // last recovered record
  size_t i = 0;
  while (i < items.size()) {
    if (items[i].recovered) {
      prev = &items[i];
      ++i;
      continue;
    }
    size_t j = i;
    while (j < items.size() && !items[j].recovered) ++j;
    const Item* next = j < items.size() ? &items[j] : nullptr;
    // Checksum-valid records inside the dropped bytes: written whole after
    // the damaged one, so not a torn tail whatever follows.
    uint64_t trusted_end = 0;
    bool any_trusted = false;
    for (size_t k = i; k < j; ++k) {
      for (const auto& c : items[k].candidates) {
        if (c.trusted && c.header) {
          any_trusted = true;
          trusted_end = std::max(trusted_end, c.seq + c.count);
        }
      }
    }
    const bool expected_known = prev != nullptr && prev->seq_known;
    const uint64_t expected = expected_known ? prev->seq + prev->count : 0;
    bool damaged = false;
    uint64_t lost_to = 0;  // sequence numbers [expected, lost_to) lost, if known
    bool lost_to_known = false;
    if (next == nullptr) {
      damaged = any_trusted;  // otherwise a torn tail
      if (any_trusted && expected_known && trusted_end > expected) {
        lost_to = trusted_end;
        lost_to_known = true;
      }
    } else if (expected_known && next->seq_known) {
      damaged = next->seq > expected;
      lost_to = next->seq;
      lost_to_known = true;
    } else {
      // No predecessor: a truncated end of an older file is a crash's torn
      // tail that a later open moved past; anything else is damage unless
      // what it held was superseded (sequence numbers at or past `next`).
      damaged = any_trusted;
      for (size_t k = i; k < j; ++k) {
        if (items[k].kind != DropKind::kCorrupt) continue;
        bool superseded = !items[k].candidates.empty() && next->seq_known;
        for (const auto& c : items[k].candidates) superseded = superseded && c.seq >= next->seq;
        if (!superseded) damaged = true;
      }
    }
    if (!damaged) {
      if (next == nullptr) r.tail_drops += j - i;
      i = j;
      continue;
    }
    Damage dm;
    const Item& first = items[i];
    damaged_files.insert(first.file_index);
    dm.file = first.file;
    dm.offset = first.offset;
    dm.reason = first.reason;
    // Account for the lost sequence numbers with what could be parsed.
    std::map<uint64_t, const BatchInfo*> by_seq;
    for (size_t k = i; k < j; ++k) {
      for (const auto& c : items[k].candidates) {
        if (!c.header) continue;
        auto [it, fresh] = by_seq.emplace(c.seq, &c);
        if (!fresh && c.trusted) it->second = &c;  // prefer the checksum-valid one
      }
    }
    if (expected_known && lost_to_known) {
      // With `repair`, the checksum-valid records are kept: only the rest
      // is lost. Without, recovery drops them too.
      uint64_t at = expected, kept = 0;
      while (at < lost_to) {
        auto it = by_seq.find(at);
        if (it == by_seq.end() || !it->second->parsed || it->second->count == 0 ||
            at + it->second->count > lost_to) {
          dm.unknown_families = true;
          break;
        }
        const BatchInfo& c = *it->second;
        if (c.trusted && repair) kept += c.count;
        else dm.column_families.insert(c.cfs.begin(), c.cfs.end());
        at += c.count;
      }
      for (; at < lost_to;) {  // what could not be walked: count the kept ones still
        auto it = by_seq.lower_bound(at);
        if (it == by_seq.end() || it->first >= lost_to) break;
        if (it->second->trusted && repair) kept += it->second->count;
        at = it->first + std::max<uint32_t>(1, it->second->count);
      }
      dm.lost_sequences = lost_to - expected - std::min(kept, lost_to - expected);
    } else {
      for (const auto& [sq, c] : by_seq) {
        if (!(c->trusted && repair)) dm.column_families.insert(c->cfs.begin(), c->cfs.end());
      }
      dm.unknown_families = true;
    }
    r.damage.push_back(std::move(dm));
    i = j;
  }
  // Damage makes the open use kSkipAnyCorruptedRecords, which loops on a
  // header ScanFile found "stuck" (a quiet torn tail can hold one too): a
  // repair re-frames that file as well (its whole records are all kept);
  // a read-only open, which repairs nothing, must not hand it to RocksDB.
  if (!r.damage.empty()) {
    for (const auto& [fi, at] : stuck_at) {
      if (repair) {
        damaged_files.insert(fi);
      } else {
        r.stuck.push_back("WAL file " + files[fi].name + " offset " + std::to_string(at));
      }
    }
  }
  // Each damaged file re-framed with every record that is whole: the ones
  // recovery replays and the checksum-valid ones inside dropped bytes, in
  // their order, with their own sequence numbers. Only the damaged records
  // themselves are left out.
  for (size_t fi : damaged_files) {
    std::string out;
    for (const auto& it : items) {
      if (it.file_index != fi) continue;
      if (it.recovered) {
        AppendRecord(&out, it.payload);
      } else {
        for (const auto& c : it.candidates) {
          if (c.trusted) AppendRecord(&out, c.payload);
        }
      }
    }
    r.repaired.push_back({files[fi].name, std::move(out)});
  }
  return r;
}


// --- The MANIFEST's replay floor -------------------------------------------

namespace {

// What one version edit says about WAL replay (db/version_edit.cc 7.8.3).
struct EditInfo {
  uint32_t cf = 0;
  bool has_log = false;
  uint64_t log = 0;
  uint64_t min_log_to_keep = 0;
  uint64_t next_file = 0;  // kNextFileNumber (0: none in this edit)
  bool add = false, drop = false;
  // A WAL addition or deletion (kWalAddition2, kWalDeletion2): RocksDB
  // applies such an edit to its WAL set only, with no family, and so
  // ignores a kLogNumber in it (VersionEditHandler::ApplyVersionEdit).
  bool wal_edit = false;
  // WAL additions (kWalAddition2; the old kWalAddition, which this decoder
  // stops at, as number 0) and the number a deletion removes every WAL
  // below (kWalDeletion2): see ManifestTracksWals.
  std::vector<uint64_t> wal_additions;
  uint64_t wal_deletion = 0;
  bool in_group = false;
  uint32_t remaining = 0;
};

// Custom fields of kNewFile4 and of blob file additions/garbage: tag, then
// a length-prefixed value, until the terminator: 1 for kNewFile4
// (NewFileCustomTag::kTerminate), 0 for the blob edits (their
// CustomFieldTags::kEndMarker, db/blob/blob_file_addition.cc and
// blob_file_garbage.cc). `hack` gets the fixed64 of
// kMinLogNumberToKeepHack (NewFile4 custom tag 3); as in
// VersionEdit::DecodeFrom, the last value in an edit wins.
bool SkipCustomFields(std::string_view* in, uint64_t* hack, uint32_t terminator) {
  while (true) {
    uint32_t tag = 0;
    if (!GetVarint32(in, &tag)) return false;
    if (tag == terminator) return true;
    uint32_t n = 0;
    if (!GetVarint32(in, &n) || n > in->size()) return false;
    if (hack != nullptr && tag == 3) {
      if (n != 8) return false;
      *hack = format::DecodeFixed64LE(in->data());
    }
    in->remove_prefix(n);
  }
}

// Decodes one version edit; false on anything it does not know how to
// skip (then the caller stops: what it read so far is a safe floor).
bool DecodeEdit(std::string_view in, EditInfo* e) {
  uint64_t u64 = 0;
  uint32_t u32 = 0;
  while (!in.empty()) {
    uint32_t tag = 0;
    if (!GetVarint32(&in, &tag)) return false;
    switch (tag) {
      case 1:    // kComparator
      case 201:  // kColumnFamilyAdd (the name)
        if (!SkipLengthPrefixed(&in)) return false;
        if (tag == 201) e->add = true;
        break;
      case 2:  // kLogNumber
        if (!GetVarint64(&in, &e->log)) return false;
        e->has_log = true;
        break;
      case 3:  // kNextFileNumber
        if (!GetVarint64(&in, &e->next_file)) return false;
        break;
      case 4:  // kLastSequence
      case 9:  // kPrevLogNumber
        if (!GetVarint64(&in, &u64)) return false;
        break;
      case 10:  // kMinLogNumberToKeep: an assignment (the last one wins, as
                // in DecodeFrom; only across edits is it the maximum)
        if (!GetVarint64(&in, &e->min_log_to_keep)) return false;
        break;
      case 5:  // kCompactCursor: level, internal key
        if (!GetVarint32(&in, &u32) || !SkipLengthPrefixed(&in)) return false;
        break;
      case 6:  // kDeletedFile: level, number
        if (!GetVarint32(&in, &u32) || !GetVarint64(&in, &u64)) return false;
        break;
      case 7:    // kNewFile: level, number, size, smallest, largest
      case 100:  // kNewFile2: ... smallest_seqno, largest_seqno
      case 102:  // kNewFile3: level, number, path id, size, keys, seqnos
      case 103: {  // kNewFile4: as kNewFile2, then custom fields
        if (!GetVarint32(&in, &u32) || !GetVarint64(&in, &u64)) return false;
        if (tag == 102 && !GetVarint32(&in, &u32)) return false;
        if (!GetVarint64(&in, &u64) || !SkipLengthPrefixed(&in) || !SkipLengthPrefixed(&in)) {
          return false;
        }
        if (tag != 7 && (!GetVarint64(&in, &u64) || !GetVarint64(&in, &u64))) return false;
        if (tag == 103 && !SkipCustomFields(&in, &e->min_log_to_keep, 1)) return false;
        break;
      }
      case 200:  // kColumnFamily
        if (!GetVarint32(&in, &e->cf)) return false;
        break;
      case 202:  // kColumnFamilyDrop
        e->drop = true;
        break;
      case 203:  // kMaxColumnFamily
        if (!GetVarint32(&in, &u32)) return false;
        break;
      case 300:  // kInAtomicGroup
        if (!GetVarint32(&in, &e->remaining)) return false;
        e->in_group = true;
        break;
      case 400:  // kBlobFileAddition: number, count, bytes, method, value, fields
        if (!GetVarint64(&in, &u64) || !GetVarint64(&in, &u64) || !GetVarint64(&in, &u64) ||
            !SkipLengthPrefixed(&in) || !SkipLengthPrefixed(&in) ||
            !SkipCustomFields(&in, nullptr, 0)) {
          return false;
        }
        break;
      case 401:  // kBlobFileGarbage: number, count, bytes, fields
        if (!GetVarint64(&in, &u64) || !GetVarint64(&in, &u64) || !GetVarint64(&in, &u64) ||
            !SkipCustomFields(&in, nullptr, 0)) {
          return false;
        }
        break;
      default:
        // Tags from 8193 on (kTagSafeIgnoreMask set) that 7.8.3 writes
        // (db id, WAL additions/deletions in their length-prefixed forms,
        // full_history_ts_low) and future ones: a length-prefixed value.
        // The older unprefixed kWalAddition (8196) and kWalDeletion (8197)
        // are not written by 7.8.3: stop (a lower floor is safe).
        if (tag == 8196) e->wal_additions.push_back(0);
        if ((tag & 8192u) == 0 || tag == 8194 || tag == 8195 || tag == 8196 || tag == 8197) {
          return false;
        }
        if (tag == 8199 || tag == 8200) {  // the value starts with the WAL number
          std::string_view v = in;
          uint32_t n = 0;
          if (!GetVarint32(&v, &n) || n > v.size() || !GetVarint64(&v, &u64)) return false;
          if (tag == 8199) e->wal_additions.push_back(u64);
          else e->wal_deletion = std::max(e->wal_deletion, u64);
        }
        // (A kWalDeletion2 of WAL 0 is empty to RocksDB and the edit's log
        // number applies; ignoring it here only lowers the floor.)
        if (tag == 8199 || tag == 8200) e->wal_edit = true;
        if (!SkipLengthPrefixed(&in)) return false;
        break;
    }
  }
  return true;
}

// Logical records, read as log::Reader does (no recycled headers in a
// MANIFEST); the first bad or short one ends the read.
// Its logical records up to the first that cannot be read; `*readable`:
// where that one starts (the end of the last whole record), or the file's
// size when every record reads.
std::vector<std::string> ManifestRecords(const std::string& manifest, uint64_t* readable) {
  std::vector<std::string> records;
  std::string frag;
  bool in_frag = false;
  bool stop = false;
  uint64_t whole_end = 0;
  for (size_t start = 0; start < manifest.size() && !stop; start += kBlockSize) {
    const size_t end = std::min(start + kBlockSize, manifest.size());
    size_t p = start;
    while (end - p >= kHeaderSize) {
      const int type = static_cast<uint8_t>(manifest[p + 6]);
      const size_t len = static_cast<uint8_t>(manifest[p + 4]) |
                         (static_cast<size_t>(static_cast<uint8_t>(manifest[p + 5])) << 8);
      if (type == kZeroType && len == 0 && !in_frag) break;  // the rest of the block is padding
      if (p + kHeaderSize + len > end || !CrcOk(manifest, p, kHeaderSize, len)) {
        stop = true;
        break;
      }
      const std::string_view payload = std::string_view(manifest).substr(p + kHeaderSize, len);
      p += kHeaderSize + len;
      if (type == kFullType && !in_frag) {
        records.emplace_back(payload);
        whole_end = p;
      } else if (type == kFirstType && !in_frag) {
        frag.assign(payload);
        in_frag = true;
      } else if (type == kMiddleType && in_frag) {
        frag.append(payload);
      } else if (type == kLastType && in_frag) {
        frag.append(payload);
        records.push_back(std::move(frag));
        frag.clear();
        in_frag = false;
        whole_end = p;
      } else {
        stop = true;
        break;
      }
    }
  }
  *readable = stop || in_frag ? whole_end : manifest.size();
  return records;
}

}  // namespace

ManifestInfo DecodeManifest(const std::string& manifest) {
  ManifestInfo info;
  const std::vector<std::string> records = ManifestRecords(manifest, &info.readable_bytes);
  info.size = manifest.size();
  // The floor, applied as VersionSet recovery does: an atomic group only
  // when whole; a family's log number only grows; dropped families do not
  // count; an edit that adds and drops is an add (ApplyVersionEdit tests
  // the add first); a WAL edit's log number is ignored.
  std::map<uint32_t, uint64_t> family_log;  // live families
  uint64_t min_log_to_keep = 0;
  std::vector<EditInfo> group;
  auto apply = [&](const EditInfo& e) {
    min_log_to_keep = std::max(min_log_to_keep, e.min_log_to_keep);
    info.next_file_number = std::max(info.next_file_number, e.next_file);
    if (e.drop && !e.add) {
      family_log.erase(e.cf);
      return;
    }
    if (e.wal_edit && !e.add) return;
    uint64_t& log = family_log[e.cf];  // (an add, or the default family)
    if (e.has_log) log = std::max(log, e.log);
  };
  // WAL tracking, as WalSet: an addition adds, a deletion removes every
  // WAL below its number. (Atomic groups count whole; an old-format
  // addition: true.)
  std::set<uint64_t> wals;
  bool decoded_all = true;
  for (const auto& rec : records) {
    EditInfo e;
    const bool decoded = DecodeEdit(rec, &e);
    wals.insert(e.wal_additions.begin(), e.wal_additions.end());
    if (!decoded) {
      if (!e.wal_additions.empty()) info.tracks_wals = true;
      decoded_all = false;
      break;  // RocksDB cannot decode it either: its open fails
    }
    wals.erase(wals.begin(), wals.lower_bound(e.wal_deletion));
    if (!e.in_group) {
      group.clear();  // an unfinished group before a plain edit: dropped
      apply(e);
      continue;
    }
    group.push_back(e);
    if (e.remaining == 0) {
      for (const auto& g : group) apply(g);
      group.clear();
    }
  }
  info.tracks_wals = info.tracks_wals || !wals.empty();
  uint64_t floor = std::numeric_limits<uint64_t>::max();
  for (const auto& [cf, log] : family_log) floor = std::min(floor, log);
  if (family_log.empty()) floor = 0;
  info.replay_floor = std::max(floor, min_log_to_keep);
  info.replay_floor_read = decoded_all && !family_log.empty();
  return info;
}

uint64_t ReplayFloor(const std::string& manifest) { return DecodeManifest(manifest).replay_floor; }

bool ManifestTracksWals(const std::string& manifest) {
  return DecodeManifest(manifest).tracks_wals;
}

std::string ReadCurrentName(rocksdb::FileSystem* fs, const std::string& dir) {
  std::string current;
  if (!rocksdb::ReadFileToString(fs, dir + "/CURRENT", &current).ok()) return std::string();
  while (!current.empty() && (current.back() == '\n' || current.back() == '\r')) current.pop_back();
  if (current.find('/') != std::string::npos || current.rfind("MANIFEST-", 0) != 0) {
    return std::string();
  }
  return current;
}

ManifestInfo ReadCurrentManifest(rocksdb::FileSystem* fs, const std::string& dir) {
  std::string current = ReadCurrentName(fs, dir);
  if (current.empty()) return ManifestInfo();  // RocksDB's own open reports it
  std::string data;
  rocksdb::IOStatus read = rocksdb::ReadFileToString(fs, dir + "/" + current, &data);
  ManifestInfo info;
  if (read.ok()) {
    info = DecodeManifest(data);
    info.present = true;
    info.data = std::move(data);
  } else if (!read.IsNotFound() && !read.IsPathNotFound()) {
    info.read_error = fsutil::FromIO(read, "read " + current);
  }
  info.name = std::move(current);
  return info;
}

Status RefuseManifest(const ManifestInfo& m, const std::string& what, bool read_only) {
  if (read_only && m.tracks_wals) {
    return Status::Corruption(what + ": its MANIFEST holds WAL-tracking edits, which this store "
                              "never writes (edited by hand or by another tool); a read-only "
                              "open cannot read it (a writable open rewrites the MANIFEST "
                              "without them); if nobody meant to edit it, restore the store "
                              "from a backup (docs/operations.md)");
  }
  if (m.next_file_number > 0 && m.replay_floor > m.next_file_number) {
    return Status::Corruption(
        what + ": its MANIFEST says recovery starts at WAL " + std::to_string(m.replay_floor) +
        ", beyond every file number it has handed out (" + std::to_string(m.next_file_number) +
        "): the MANIFEST was edited by hand or is damaged; restore the store from a backup "
        "(docs/operations.md)");
  }
  return Status::OK();
}

namespace {
constexpr std::string_view kRecordMagic = "callvault wal damage record 1\n";

bool ParseU64(std::string_view v, uint64_t* out) {
  if (v.empty() || v.size() > 19) return false;
  *out = 0;
  for (char c : v) {
    if (c < '0' || c > '9') return false;
    *out = *out * 10 + static_cast<uint64_t>(c - '0');
  }
  return true;
}

// The next space-separated field of `*line` (and the space after it).
std::string_view Field(std::string_view* line) {
  const size_t sp = line->find(' ');
  std::string_view f = line->substr(0, sp);
  line->remove_prefix(sp == std::string_view::npos ? line->size() : sp + 1);
  return f;
}

std::string Hex32(uint32_t v) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string h(8, '0');
  for (int i = 7; i >= 0; --i, v >>= 4) h[static_cast<size_t>(i)] = kHex[v & 0xf];
  return h;
}
}  // namespace

std::string EncodeDamageRecord(const std::string& file, const std::vector<Damage>& damage) {
  std::string out(kRecordMagic);
  out += "file " + file + "\n";
  for (const auto& d : damage) {
    std::string families;
    for (uint32_t cf : d.column_families) {
      families += (families.empty() ? "" : ",") + std::to_string(cf);
    }
    std::string reason = d.reason;
    for (char& c : reason) {
      if (c == '\n' || c == '\r') c = ' ';
    }
    out += "damage " + std::to_string(d.offset) + " " + std::to_string(d.lost_sequences) + " " +
           (d.unknown_families ? "1" : "0") + " " + (families.empty() ? "-" : families) + " " +
           reason + "\n";
  }
  out += "crc32c " + Hex32(Crc32c(out.data(), out.size())) + "\n";
  return out;
}

Result<std::vector<Damage>> DecodeDamageRecord(const std::string& file, std::string_view data) {
  // The last line: "crc32c <8 hex digits>" of every byte before it.
  constexpr size_t kCrcLine = 7 + 8 + 1;
  if (data.size() < kRecordMagic.size() + kCrcLine || data.back() != '\n' ||
      data.substr(data.size() - kCrcLine, 7) != "crc32c ") {
    return Status::Corruption("damage record: truncated");
  }
  const std::string_view body = data.substr(0, data.size() - kCrcLine);
  if (Hex32(Crc32c(body.data(), body.size())) != data.substr(data.size() - 9, 8)) {
    return Status::Corruption("damage record: checksum mismatch");
  }
  if (body.substr(0, kRecordMagic.size()) != kRecordMagic) {
    return Status::Corruption("damage record: unknown format");
  }
  std::string_view rest = body.substr(kRecordMagic.size());
  std::vector<Damage> out;
  bool named = false;
  while (!rest.empty()) {
    const size_t nl = rest.find('\n');
    if (nl == std::string_view::npos) return Status::Corruption("damage record: unterminated line");
    std::string_view line = rest.substr(0, nl);
    rest.remove_prefix(nl + 1);
    const std::string_view kind = Field(&line);
    if (!named) {
      if (kind != "file" || line != file) {
        return Status::Corruption("damage record: names another WAL file");
      }
      named = true;
      continue;
    }
    if (kind != "damage") return Status::Corruption("damage record: unknown line");
    Damage d;
    d.file = file;
    uint64_t unknown = 0;
    if (!ParseU64(Field(&line), &d.offset) || !ParseU64(Field(&line), &d.lost_sequences) ||
        !ParseU64(Field(&line), &unknown) || unknown > 1) {
      return Status::Corruption("damage record: bad number");
    }
    d.unknown_families = unknown == 1;
    std::string_view families = Field(&line);
    if (families != "-") {
      while (!families.empty()) {
        const size_t comma = families.find(',');
        uint64_t cf = 0;
        if (!ParseU64(families.substr(0, comma), &cf) || cf > UINT32_MAX) {
          return Status::Corruption("damage record: bad column family id");
        }
        d.column_families.insert(static_cast<uint32_t>(cf));
        families.remove_prefix(comma == std::string_view::npos ? families.size() : comma + 1);
      }
    }
    if (line.empty()) return Status::Corruption("damage record: no reason");
    d.reason.assign(line);
    out.push_back(std::move(d));
  }
  if (!named || out.empty()) return Status::Corruption("damage record: no damage");
  return out;
}

namespace {
bool EndsWith(const std::string& s, std::string_view tail) {
  return s.size() > tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}
bool WalNumber(std::string_view stem, uint64_t* n) {
  *n = 0;
  if (stem.empty()) return false;
  for (char c : stem) {
    if (c < '0' || c > '9') return false;
    *n = *n * 10 + static_cast<uint64_t>(c - '0');
  }
  return true;
}
}  // namespace

Result<ScanResult> ScanDirectory(rocksdb::FileSystem* fs, const std::string& dir, bool repair,
                                 bool in_memory, const ManifestInfo* manifest) {
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::string> children;
  rocksdb::IOStatus ls = fs->GetChildren(dir, rocksdb::IOOptions(), &children, nullptr);
  if (!ls.ok()) return fsutil::FromIO(ls, "list WAL files");
  std::vector<WalFile> files, evidence, records;
  for (const auto& name : children) {
    const bool damaged = EndsWith(name, kEvidenceSuffix);
    const bool record = EndsWith(name, kDamageRecordSuffix);
    const std::string base =
        damaged  ? name.substr(0, name.size() - kEvidenceSuffix.size())
        : record ? name.substr(0, name.size() - kDamageRecordSuffix.size())
                 : name;
    if (!EndsWith(base, ".log")) continue;
    WalFile f;
    if (!WalNumber(std::string_view(base).substr(0, base.size() - 4), &f.number)) continue;
    f.name = name;
    rocksdb::IOStatus read = rocksdb::ReadFileToString(fs, dir + "/" + name, &f.data);
    if (read.IsPathNotFound() || read.IsNotFound()) continue;  // retired meanwhile
    CV_RETURN_IF_ERROR(fsutil::FromIO(read, record ? "read WAL damage record" : "read WAL file"));
    (damaged ? evidence : record ? records : files).push_back(std::move(f));
  }
  std::sort(files.begin(), files.end(),
            [](const WalFile& a, const WalFile& b) { return a.number < b.number; });
  // WALs below the MANIFEST's replay floor are not replayed (their writes
  // are in table files) and wait to be deleted: a crash while RocksDB
  // deletes them (newest first) can leave an older one with a torn tail
  // beside newer live ones, which is not a gap in what recovery replays.
  const uint64_t floor =
      manifest != nullptr ? manifest->replay_floor : ReadCurrentManifest(fs, dir).replay_floor;
  uint64_t obsolete = 0;
  files.erase(std::remove_if(files.begin(), files.end(),
                             [&](const WalFile& f) {
                               const bool skip = f.number < floor;
                               obsolete += skip ? 1 : 0;
                               return skip;
                             }),
              files.end());
  ScanResult r = Scan(files, repair);
  r.replay_floor = floor;
  r.obsolete_files = obsolete;
  // `same_loss`: a duplicate only if it names the same families too (a
  // record's offset is in the file as it was; a repaired file's offsets
  // differ, so a match on the offset alone may be other damage).
  auto add = [&r](Damage d, bool same_loss) {
    for (const auto& x : r.damage) {
      if (x.file == d.file && x.offset == d.offset &&
          (!same_loss || (x.column_families == d.column_families &&
                          x.unknown_families == d.unknown_families))) {
        return;
      }
    }
    r.damage.push_back(std::move(d));
  };
  // Damage recorded by a repair whose open did not get to record it in the
  // metadata (the file itself may be repaired already: nothing left to find).
  std::vector<std::string> record_names;
  for (const auto& rec : records) {
    record_names.push_back(rec.name);
    const std::string file = rec.name.substr(0, rec.name.size() - kDamageRecordSuffix.size());
    Result<std::vector<Damage>> got = DecodeDamageRecord(file, rec.data);
    if (!got.ok()) {
      Damage d;
      d.file = file;
      d.reason = got.status().message() + " (the damage it recorded is unknown)";
      d.unknown_families = true;
      add(std::move(d), true);
      continue;
    }
    for (auto& d : *got) add(std::move(d), true);
  }
  if (repair && !in_memory) {
    // Every damage found is durable before any file is touched: a crash or
    // an error from here on leaves it to the next open, whatever the file
    // will look like then.
    bool recorded = false;
    for (const auto& repaired : r.repaired) {
      const std::string& name = repaired.first;
      std::vector<Damage> mine;
      for (const auto& d : r.damage) {
        if (d.file == name) mine.push_back(d);
      }
      if (mine.empty()) continue;  // re-framed only (`stuck`): nothing lost in it
      const std::string rec = name + std::string(kDamageRecordSuffix);
      const std::string content = EncodeDamageRecord(name, mine);
      CV_RETURN_IF_ERROR(fsutil::AtomicWrite(
          fs, dir, rec, reinterpret_cast<const uint8_t*>(content.data()), content.size()));
      if (std::find(record_names.begin(), record_names.end(), rec) == record_names.end()) {
        record_names.push_back(rec);
      }
      recorded = true;
    }
    if (recorded) CV_KILL_POINT("wal_repair.after_damage_record");
    for (const auto& repaired : r.repaired) {
      // (Not a structured binding: clang 14, the fuzz build's compiler,
      // cannot capture one in the lambda below.)
      const std::string& name = repaired.first;
      const std::string& content = repaired.second;
      // The damaged file kept first (its damage is found again from it if
      // a crash comes before the store recorded it), then replaced whole.
      const std::string keep = name + std::string(kEvidenceSuffix);
      bool kept = false;
      for (const auto& e : evidence) kept = kept || e.name == keep;
      if (!kept) {
        const auto it = std::find_if(files.begin(), files.end(),
                                     [&n = name](const WalFile& f) { return f.name == n; });
        CV_RETURN_IF_ERROR(fsutil::AtomicWrite(fs, dir, keep,
                                               reinterpret_cast<const uint8_t*>(it->data.data()),
                                               it->data.size()));
        r.evidence.push_back(keep);
      }
      CV_RETURN_IF_ERROR(fsutil::AtomicWrite(
          fs, dir, name, reinterpret_cast<const uint8_t*>(content.data()), content.size()));
    }
    if (!r.repaired.empty()) CV_KILL_POINT("wal_repair.after_rewrite");
  }
  // Kept damaged files whose damage a crash may have kept from being recorded.
  for (auto& e : evidence) {
    r.evidence.push_back(e.name);
    ScanResult old = Scan({e}, /*repair=*/true);
    for (auto& d : old.damage) {
      d.file = e.name.substr(0, e.name.size() - kEvidenceSuffix.size());
      add(std::move(d), false);
    }
  }
  // Removed last: while one is left, the damage is reported again.
  for (auto& name : record_names) r.evidence.push_back(std::move(name));
  r.micros = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                      std::chrono::steady_clock::now() - start)
                                      .count());
  return r;
}

}  // namespace callvault::walscan
