// Tenant moves between stores (docs/decisions/0022-tenant-move.md,
// 0043-move-catch-up-from-the-change-feed.md, 0051-signed-move-replies.md,
// docs/format.md "Move bundle").
//
// The source streams signed segments to the destination: BEGIN (the tenant's
// registry record and its DEK, sealed to the destination's X25519 key), ROWS
// (the tenant's column family as it is: row keys and sealed values, never
// decrypted), then catch-up rounds (the rows of the calls the change feed
// names, and the rows that make no feed events, as they changed between two
// snapshots), the fence (durable; writes refused with kMoved), a last
// catch-up after the drain, and COMMIT (row count and digest, kept by each
// side with every row it writes), which the destination checks against its
// own before it makes the tenant ACTIVE. The source then purges its copy with a "moved_out" receipt.
// Every reply is signed by the destination and bound to its request; the
// source acts on no reply that does not verify against the key the
// destination's identity names (decision 0051).
//
// Authority: until the destination's ACTIVE record is durable the source
// holds the only authoritative copy (a destination that restarts rolls its
// partial copy back: registry CREATING + move_state kMoveIn); from then on
// the destination does, and the source is fenced (durably) until it purges.
#include <rocksdb/db.h>
#include <rocksdb/snapshot.h>
#include <rocksdb/write_batch.h>
#include <sodium.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstring>
#include <map>
#include <optional>
#include <set>

#include "callvault/limits.h"
#include "engine/calls_internal.h"
#include "engine/codec.h"
#include "engine/crypto.h"
#include "engine/indexing.h"
#include "engine/metrics_internal.h"
#include "engine/reseal.h"
#include "engine/fs_util.h"
#include "engine/kill_point.h"
#include "engine/rotate_internal.h"
#include "engine/store_impl.h"
#include "engine/validate.h"
#include "format/coding.h"
#include "format/rowkey.h"

namespace callvault {

namespace {

constexpr std::string_view kMagic = "cvmv1";
constexpr size_t kMoveIdBytes = 16;
constexpr size_t kHeaderBytes = 5 + 1 + kMoveIdBytes + 8 + 4;
constexpr size_t kSigBytes = crypto_sign_BYTES;
constexpr char kBegin = 'B';
constexpr char kRows = 'R';
constexpr char kCommit = 'C';
constexpr char kQuery = 'Q';
constexpr char kAbort = 'A';
// The meta instance's record of every move id this store accepted a BEGIN
// for: 'V' + 16 bytes. Kept for good, so a bundle is never applied twice.
constexpr char kMoveSeenPrefix = 'V';
// Replies are signed by the destination over this domain tag, the request's
// move id, type and sequence number, a hash of the whole request segment and
// the reply text (docs/format.md "Move bundle", decision 0051). The tag
// differs from a segment's "cvmv1" at its fifth byte and from the canonical
// JSON of receipts and manifests (which begin with '{'): the same key signs
// all three, and none can pass for another.
constexpr std::string_view kReplyDomain = "cvmvreply1";
// QUERY and ABORT bodies: a fresh random nonce, so that each one's signed
// reply answers that request only (a recorded "in_progress" or "aborted"
// cannot answer a later QUERY or ABORT of the same move).
constexpr size_t kNonceBytes = 16;

int64_t Micros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

void PutU32(std::string* s, uint32_t v) { format::PutFixed32LE(s, v); }
void PutBytes(std::string* s, std::string_view b) {
  PutU32(s, static_cast<uint32_t>(b.size()));
  s->append(b);
}

struct Reader {
  std::string_view s;
  bool U32(uint32_t* v) {
    if (s.size() < 4) return false;
    *v = format::DecodeFixed32LE(s.data());
    s.remove_prefix(4);
    return true;
  }
  bool U64(uint64_t* v) {
    if (s.size() < 8) return false;
    *v = format::DecodeFixed64LE(s.data());
    s.remove_prefix(8);
    return true;
  }
  bool Bytes(std::string_view* b) {
    uint32_t n;
    if (!U32(&n) || s.size() < n) return false;
    *b = s.substr(0, n);
    s.remove_prefix(n);
    return true;
  }
  bool Raw(size_t n, std::string_view* b) {
    if (s.size() < n) return false;
    *b = s.substr(0, n);
    s.remove_prefix(n);
    return true;
  }
};

struct Segment {
  char type = 0;
  std::string move_id;  // raw
  uint64_t seq = 0;
  std::string body;
};

std::string Unsigned(char type, std::string_view move_id, uint64_t seq, std::string_view body) {
  std::string s(kMagic);
  s.push_back(type);
  s.append(move_id);
  format::PutFixed64BE(&s, seq);
  PutU32(&s, static_cast<uint32_t>(body.size()));
  s.append(body);
  return s;
}

Status ParseSegment(std::string_view seg, std::string_view key, Segment* out) {
  if (key.size() != crypto_sign_PUBLICKEYBYTES) {
    return Status::InvalidArgument("source signing key: 32 bytes expected");
  }
  if (seg.size() < kHeaderBytes + kSigBytes) {
    return Status::Corruption("move bundle segment is truncated");
  }
  const std::string_view msg = seg.substr(0, seg.size() - kSigBytes);
  const std::string_view sig = seg.substr(seg.size() - kSigBytes);
  if (crypto_sign_verify_detached(reinterpret_cast<const unsigned char*>(sig.data()),
                                  reinterpret_cast<const unsigned char*>(msg.data()), msg.size(),
                                  reinterpret_cast<const unsigned char*>(key.data())) != 0) {
    metrics::CountSignatureFailure();
    return Status::Corruption(
        "move bundle segment does not verify against the source store's signing key (edited, "
        "truncated, or signed by another store); nothing applied");
  }
  if (msg.substr(0, kMagic.size()) != kMagic) {
    return Status::Corruption("move bundle segment: unknown format");
  }
  out->type = msg[5];
  out->move_id.assign(msg.substr(6, kMoveIdBytes));
  out->seq = format::DecodeFixed64BE(msg.data() + 6 + kMoveIdBytes);
  const uint32_t len = format::DecodeFixed32LE(msg.data() + 6 + kMoveIdBytes + 8);
  if (len != msg.size() - kHeaderBytes) {
    return Status::Corruption("move bundle segment: body length does not match");
  }
  out->body.assign(msg.substr(kHeaderBytes));
  return Status::OK();
}

// The message a reply's signature covers: kReplyDomain ‖ move id (16) ‖
// type (1) ‖ sequence (u64 BE) ‖ BLAKE2b-256(request segment, signature
// included) ‖ u32 LE text length ‖ text. REQUIRES: `segment` parsed (at
// least a header long).
std::string ReplyMessage(std::string_view segment, std::string_view text) {
  std::string m(kReplyDomain);
  m.append(segment.substr(kMagic.size() + 1, kMoveIdBytes));  // move id
  m.push_back(segment[kMagic.size()]);                         // type
  m.append(segment.substr(kMagic.size() + 1 + kMoveIdBytes, 8));  // sequence, BE
  unsigned char h[32];
  crypto_generichash(h, sizeof h, reinterpret_cast<const unsigned char*>(segment.data()),
                     segment.size(), nullptr, 0);
  m.append(reinterpret_cast<const char*>(h), sizeof h);
  PutU32(&m, static_cast<uint32_t>(text.size()));
  m.append(text);
  return m;
}

// The text of the destination's signed reply (text ‖ 64-byte signature) to
// `segment`, or kCorruption if it does not verify against the destination's
// key `dst_key`: another store's key, another move, type or sequence,
// another request, altered or truncated. Such a reply is no answer.
Result<std::string> OpenReply(std::string_view segment, std::string_view reply,
                              std::string_view dst_key) {
  if (reply.size() >= kSigBytes) {
    const std::string_view text = reply.substr(0, reply.size() - kSigBytes);
    const std::string_view sig = reply.substr(reply.size() - kSigBytes);
    const std::string msg = ReplyMessage(segment, text);
    if (crypto_sign_verify_detached(reinterpret_cast<const unsigned char*>(sig.data()),
                                    reinterpret_cast<const unsigned char*>(msg.data()), msg.size(),
                                    reinterpret_cast<const unsigned char*>(dst_key.data())) == 0) {
      return std::string(text);
    }
  }
  metrics::CountSignatureFailure();
  return Status::Corruption(
      "move: the destination's reply does not verify against the signing key of its identity "
      "(forged, altered, truncated, or the reply to another request or move); taken as no "
      "answer");
}

bool FromHex(std::string_view hex, std::string* out) {
  if (hex.size() % 2) return false;
  out->assign(hex.size() / 2, '\0');
  size_t n = 0;
  return sodium_hex2bin(reinterpret_cast<unsigned char*>(out->data()), out->size(), hex.data(),
                        hex.size(), nullptr, &n, nullptr) == 0 &&
         n == out->size();
}

struct Identity {
  std::string store_id;  // raw, 16 bytes
  std::string region;
  std::string public_key;   // raw, 32 bytes: X25519, for the sealed DEK
  std::string signing_key;  // raw, 32 bytes: Ed25519, the replies' (decision 0051)
};

// `whose` says which store's identity it is, for the messages: "destination"
// (MoveTenantOut) or "peer" (TrustMovePeer, where it is a source's).
// Hex is accepted in either case; FormatIdentity writes the canonical form.
Status ParseIdentity(std::string_view text, Identity* id,
                     std::string_view whose = "destination") {
  std::vector<std::string_view> parts;
  size_t at = 0;
  while (true) {
    size_t c = text.find(':', at);
    parts.push_back(text.substr(at, c == std::string_view::npos ? std::string_view::npos : c - at));
    if (c == std::string_view::npos) break;
    at = c + 1;
  }
  const bool peer = whose == "peer";
  if (parts[0] == "cvmove1") {
    // No key to verify the destination's replies with: a move to it could
    // be "committed" by whoever carries the segments (decision 0051). For a
    // source, no key to verify its segments with (decision 0062).
    return Status::InvalidArgument(
        peer ? "peer identity is cvmove1, which has no signing key to verify the source's "
               "segments with: take the source store's current `callvault identity` "
               "(cvmove2:...)"
             : "destination identity is cvmove1, which has no key for the destination's signed "
               "replies: take the destination's current `callvault identity` (cvmove2:...)");
  }
  if (parts.size() != 5 || parts[0] != "cvmove2" || !FromHex(parts[1], &id->store_id) ||
      id->store_id.size() != 16 || !FromHex(parts[3], &id->public_key) ||
      id->public_key.size() != crypto_box_PUBLICKEYBYTES || !FromHex(parts[4], &id->signing_key) ||
      id->signing_key.size() != crypto_sign_PUBLICKEYBYTES) {
    return Status::InvalidArgument(
        std::string(whose) +
        " identity: expected cvmove2:<store id hex>:<region>:<public key hex>:<signing key hex> "
        "(as `callvault identity` prints it" +
        (peer ? " on the source store)" : ")"));
  }
  id->region.assign(parts[2]);
  return validate::Region(id->region);
}

// The canonical text of an identity (lowercase hex), as MoveIdentity prints it.
std::string FormatIdentity(std::string_view store_id, std::string_view region,
                           std::string_view public_key, std::string_view signing_key) {
  return "cvmove2:" + crypto::Hex(store_id) + ":" + std::string(region) + ":" +
         crypto::Hex(public_key) + ":" + crypto::Hex(signing_key);
}

std::string FormatIdentity(const Identity& id) {
  return FormatIdentity(id.store_id, id.region, id.public_key, id.signing_key);
}

// The store's X25519 key pair for sealed boxes, derived from the store data
// key (never destroyed, in the keyring under the KEK): no new key file.
void BoxKeys(const SecretBytes& store_data_key, std::string* pk, SecretBytes* sk) {
  SecretBytes seed(crypto_box_SEEDBYTES);
  crypto_kdf_derive_from_key(seed.data(), seed.size(), 1, "cvmove01", store_data_key.data());
  pk->assign(crypto_box_PUBLICKEYBYTES, '\0');
  *sk = SecretBytes(crypto_box_SECRETKEYBYTES);
  crypto_box_seed_keypair(reinterpret_cast<unsigned char*>(pk->data()), sk->data(), seed.data());
}

// The digest of a family's rows, order-independent so that each side can
// keep it up to date with every row it writes instead of reading the family
// again (decision 0043): the sum modulo 2^256 of BLAKE2b-256("cvmvrow1" ‖
// u32 key length ‖ u32 value length ‖ key ‖ value) over the rows, each
// hash read as a little-endian 256-bit number; and the count of rows.
struct MultisetDigest {
  uint64_t limb[4] = {0, 0, 0, 0};
  uint64_t rows = 0;

  static void RowHash(std::string_view key, std::string_view value, uint64_t out[4]) {
    crypto_generichash_state st;
    crypto_generichash_init(&st, nullptr, 0, 32);
    std::string head("cvmvrow1");
    PutU32(&head, static_cast<uint32_t>(key.size()));
    PutU32(&head, static_cast<uint32_t>(value.size()));
    crypto_generichash_update(&st, reinterpret_cast<const unsigned char*>(head.data()), head.size());
    crypto_generichash_update(&st, reinterpret_cast<const unsigned char*>(key.data()), key.size());
    crypto_generichash_update(&st, reinterpret_cast<const unsigned char*>(value.data()),
                              value.size());
    unsigned char h[32];
    crypto_generichash_final(&st, h, sizeof h);
    for (int i = 0; i < 4; ++i) {
      out[i] = format::DecodeFixed64LE(reinterpret_cast<const char*>(h) + 8 * i);
    }
  }
  void Add(std::string_view key, std::string_view value) {
    uint64_t h[4];
    RowHash(key, value, h);
    AddHash(h);
  }
  void Remove(std::string_view key, std::string_view value) {
    uint64_t h[4];
    RowHash(key, value, h);
    RemoveHash(h);
  }
  void AddHash(const uint64_t h[4]) {
    uint64_t carry = 0;
    for (int i = 0; i < 4; ++i) {
      const uint64_t s = limb[i] + h[i];
      const uint64_t c1 = s < limb[i] ? 1 : 0;
      limb[i] = s + carry;
      carry = c1 | (limb[i] < s ? 1 : 0);
    }
    ++rows;
  }
  void RemoveHash(const uint64_t h[4]) {
    uint64_t borrow = 0;
    for (int i = 0; i < 4; ++i) {
      const uint64_t d = limb[i] - h[i];
      const uint64_t b1 = limb[i] < h[i] ? 1 : 0;
      const uint64_t r = d - borrow;
      borrow = b1 | (d < borrow ? 1 : 0);
      limb[i] = r;
    }
    --rows;
  }
  std::string Final() const {
    std::string d;
    for (uint64_t l : limb) format::PutFixed64LE(&d, l);
    return d;
  }
};

// One row of a difference: the value it had (nullptr: absent) and has.
using RowChange = std::function<Status(std::string_view key, const std::string_view* before,
                                       const std::string_view* after)>;

// Calls `each` for every row held at snapshot `a` (nullptr: an empty
// family) or `b` whose key is in [lower, upper) (empty: unbounded), in key
// order, with both its values (equal when unchanged); `*read` counts the
// rows read.
Status DiffRange(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf, const rocksdb::Snapshot* a,
                 const rocksdb::Snapshot* b, const std::string& lower, const std::string& upper,
                 const RowChange& each, uint64_t* read) {
  rocksdb::Slice lo(lower), hi(upper);
  rocksdb::ReadOptions ra, rb;
  ra.snapshot = a;
  rb.snapshot = b;
  ra.fill_cache = rb.fill_cache = false;
  if (!lower.empty()) ra.iterate_lower_bound = rb.iterate_lower_bound = &lo;
  if (!upper.empty()) ra.iterate_upper_bound = rb.iterate_upper_bound = &hi;
  std::unique_ptr<rocksdb::Iterator> ib(db->NewIterator(rb, cf));
  std::unique_ptr<rocksdb::Iterator> ia(a ? db->NewIterator(ra, cf) : nullptr);
  if (lower.empty()) {
    ib->SeekToFirst();
    if (ia) ia->SeekToFirst();
  } else {
    ib->Seek(lower);
    if (ia) ia->Seek(lower);
  }
  while (ib->Valid() || (ia && ia->Valid())) {
    const bool av = ia && ia->Valid();
    const int c = !av ? 1 : !ib->Valid() ? -1 : ia->key().compare(ib->key());
    if (c < 0) {  // gone in b
      const std::string_view va = ia->value().ToStringView();
      ++*read;
      CV_RETURN_IF_ERROR(each(ia->key().ToStringView(), &va, nullptr));
      ia->Next();
    } else if (c > 0) {  // new in b
      const std::string_view vb = ib->value().ToStringView();
      ++*read;
      CV_RETURN_IF_ERROR(each(ib->key().ToStringView(), nullptr, &vb));
      ib->Next();
    } else {
      const std::string_view va = ia->value().ToStringView();
      const std::string_view vb = ib->value().ToStringView();
      *read += 2;
      CV_RETURN_IF_ERROR(each(ib->key().ToStringView(), &va, &vb));
      ia->Next();
      ib->Next();
    }
  }
  CV_RETURN_IF_ERROR(fsutil::FromRocks(ib->status(), "move: read the tenant's rows"));
  if (ia) CV_RETURN_IF_ERROR(fsutil::FromRocks(ia->status(), "move: read the tenant's rows"));
  return Status::OK();
}

// The source's side of the copy (decision 0043): the family copied at a
// first snapshot, then brought from one snapshot to the next by what the
// change feed names (the rows of each call it names) and by the rows that
// make no feed events (holds, pins, dictionaries, the version counter,
// recording manifests and the chunks of those that changed, the feed's
// own rows), each row sent with its digest kept up to date. A feed trimmed
// past the copy's position falls back to a diff of the whole family.
class SourceCopy {
 public:
  using Emit = std::function<Status(bool put, std::string_view key, std::string_view value)>;
  explicit SourceCopy(Emit emit) : emit_(std::move(emit)) {}

  // The tenant as held by the current phase (its family and keys).
  void Bind(const TenantRef* t) {
    t_ = t;
    db_ = t != nullptr ? (*t)->shard->db() : nullptr;
  }

  // Everything at `snap`.
  Status CopyAll(const rocksdb::Snapshot* snap) {
    rocksdb::ReadOptions ro;
    ro.snapshot = snap;
    CV_RETURN_IF_ERROR(LastChangeSequence(*t_, ro, &pos_));
    return DiffRange(db_, (*t_)->cf, nullptr, snap, "", "", Changer(), &read_);
  }

  // What changed from snapshot `a` (the previous round's) to `b`.
  Status Round(const rocksdb::Snapshot* a, const rocksdb::Snapshot* b) {
    rocksdb::ReadOptions rb;
    rb.snapshot = b;
    rb.fill_cache = false;
    std::set<std::string> ids;
    std::vector<std::pair<std::string, std::string>> events;  // key, sealed (new in b)
    uint64_t last = pos_;
    bool gap = false;
    CV_RETURN_IF_ERROR(ChangedCallsSince(
        *t_, rb, pos_,
        [&ids, &events, this](std::string_view key, std::string_view sealed, std::string id) {
          ++read_;
          events.emplace_back(std::string(key), std::string(sealed));
          ids.insert(std::move(id));
          return Status::OK();
        },
        &last, &gap));
    if (gap) {
      // The calls changed since the position cannot be known: the whole family.
      fell_back_ = true;
      CV_RETURN_IF_ERROR(LastChangeSequence(*t_, rb, &pos_));
      return DiffRange(db_, (*t_)->cf, a, b, "", "", Changer(), &read_);
    }
    // The rows of every call the feed names, as they were and are.
    std::set<std::string> keys;
    for (const auto& id : ids) {
      const std::string hash = indexing::CallHash((*t_)->index_key, id);
      for (format::Part p : {format::Part::kMeta, format::Part::kTranscript,
                             format::Part::kInsights, format::Part::kSummary}) {
        keys.insert(format::CallKey(hash, p));
      }
      CV_RETURN_IF_ERROR(CallRowKeys(a, hash, &keys));
      CV_RETURN_IF_ERROR(CallRowKeys(b, hash, &keys));
    }
    rocksdb::ReadOptions ra = rb;
    ra.snapshot = a;
    for (const auto& key : keys) {
      std::string va, vb;
      bool ha = false, hb = false;
      CV_RETURN_IF_ERROR(Get(ra, key, &va, &ha));
      CV_RETURN_IF_ERROR(Get(rb, key, &vb, &hb));
      const std::string_view sa(va), sb(vb);
      CV_RETURN_IF_ERROR(Change(key, ha ? &sa : nullptr, hb ? &sb : nullptr));
    }
    // Rows no event describes. Small kinds: read whole.
    for (char kind : {format::kCallHoldPrefix, format::kPinPrefix, format::kDictionaryPrefix,
                      format::kVersionCounterPrefix}) {
      CV_RETURN_IF_ERROR(DiffRange(db_, (*t_)->cf, a, b, std::string(1, kind),
                                   std::string(1, static_cast<char>(kind + 1)), Changer(), &read_));
    }
    // Recordings: their manifests and pending markers (one row each); the
    // chunks of each recording whose manifest or marker changed, and of
    // each still being written.
    std::set<std::string> recordings;  // h(call) ‖ h(recording)
    const RowChange markers = [this, &recordings](std::string_view key,
                                                  const std::string_view* before,
                                                  const std::string_view* after) -> Status {
      if (key.size() != 1 + 2 * format::kHashBytes) {
        return Status::Corruption("malformed recording key");
      }
      const bool same = before && after && *before == *after;
      if (!same || key[0] == format::kRecordingPendingPrefix) {
        recordings.insert(std::string(key.substr(1)));
      }
      return Change(key, before, after);
    };
    for (char kind : {format::kRecordingManifestPrefix, format::kRecordingPendingPrefix}) {
      CV_RETURN_IF_ERROR(DiffRange(db_, (*t_)->cf, a, b, std::string(1, kind),
                                   std::string(1, static_cast<char>(kind + 1)), markers, &read_));
    }
    for (const auto& r : recordings) {
      const std::string lower = std::string(1, format::kRecordingChunkPrefix) + r;
      const std::string upper = lower + std::string(5, '\xff');
      CV_RETURN_IF_ERROR(DiffRange(db_, (*t_)->cf, a, b, lower, upper, Changer(), &read_));
    }
    // The feed: the events read above are new; the oldest ones trimmed
    // since `a` (sequences below the first one `b` holds) are gone.
    for (const auto& [key, sealed] : events) {
      const std::string_view v(sealed);
      CV_RETURN_IF_ERROR(Change(key, nullptr, &v));
    }
    CV_RETURN_IF_ERROR(Trimmed(a, b));
    pos_ = last;
    return Status::OK();
  }

  uint64_t read() const { return read_; }
  void ResetRead() { read_ = 0; }
  bool fell_back() const { return fell_back_; }
  const MultisetDigest& digest() const { return digest_; }

 private:
  RowChange Changer() {
    return [this](std::string_view key, const std::string_view* before,
                  const std::string_view* after) { return Change(key, before, after); };
  }

  // Sends the row if it changed, and keeps the digest.
  Status Change(std::string_view key, const std::string_view* before,
                const std::string_view* after) {
    if (before == nullptr && after == nullptr) return Status::OK();
    if (before != nullptr && after != nullptr && *before == *after) return Status::OK();
    if (before != nullptr) {
      // What the destination holds for the row: what was sent, which a
      // reseal may have replaced here since (see sent_deferred_).
      auto it = sent_deferred_.find(key);
      if (it != sent_deferred_.end()) {
        digest_.RemoveHash(it->second.data());
        sent_deferred_.erase(it);
      } else {
        digest_.Remove(key, *before);
      }
    }
    if (after != nullptr) {
      std::array<uint64_t, 4> h;
      MultisetDigest::RowHash(key, *after, h.data());
      digest_.AddHash(h.data());
      if (DeferredRecord(key, *after)) sent_deferred_.emplace(std::string(key), h);
      return emit_(true, key, *after);
    }
    return emit_(false, key, "");
  }

  Status Get(const rocksdb::ReadOptions& ro, const std::string& key, std::string* value,
             bool* found) {
    ++read_;
    rocksdb::Status s = db_->Get(ro, (*t_)->cf, key, value);
    *found = s.ok();
    if (s.IsNotFound()) return Status::OK();
    return fsutil::FromRocks(s, "move: read the tenant's rows");
  }

  // The index entries and source entry of the call stored at `hash` as of
  // `snap` (none if it is not there).
  Status CallRowKeys(const rocksdb::Snapshot* snap, const std::string& hash,
                     std::set<std::string>* keys) {
    rocksdb::ReadOptions ro;
    ro.snapshot = snap;
    ro.fill_cache = false;
    std::string plain;
    bool found = false;
    ++read_;
    CV_RETURN_IF_ERROR(
        calls::GetSealed(*t_, ro, format::CallKey(hash, format::Part::kMeta), &plain, &found));
    if (!found) return Status::OK();
    Call call;
    uint32_t parts = 0;
    CV_RETURN_IF_ERROR(codec::DecodeMeta(plain, &call, &parts));
    for (const auto& k : indexing::IndexKeys((*t_)->index_key, call, hash)) keys->insert(k);
    const std::string source = indexing::SourceHash((*t_)->index_key, call);
    if (!source.empty()) keys->insert(format::SourceIndexKey(source));
    return Status::OK();
  }

  // The events `a` holds below the first one `b` holds: trimmed since.
  Status Trimmed(const rocksdb::Snapshot* a, const rocksdb::Snapshot* b) {
    rocksdb::ReadOptions ro;
    ro.fill_cache = false;
    ro.snapshot = b;
    std::string first_b;  // empty: `b` holds no event
    {
      std::unique_ptr<rocksdb::Iterator> it = NewFeedIterator(*t_, ro);
      it->SeekToFirst();
      if (it->Valid()) first_b = it->key().ToString();
      CV_RETURN_IF_ERROR(fsutil::FromRocks(it->status(), "move: read the change feed"));
    }
    ro.snapshot = a;
    std::unique_ptr<rocksdb::Iterator> it = NewFeedIterator(*t_, ro);
    for (it->SeekToFirst(); it->Valid() && (first_b.empty() || it->key().compare(first_b) < 0);
         it->Next()) {
      ++read_;
      const std::string_view v = it->value().ToStringView();
      CV_RETURN_IF_ERROR(Change(it->key().ToStringView(), &v, nullptr));
    }
    return fsutil::FromRocks(it->status(), "move: read the change feed");
  }

  const TenantRef* t_ = nullptr;
  rocksdb::DB* db_ = nullptr;
  Emit emit_;
  MultisetDigest digest_;
  // The hash of each row sent as a deferred record (decision 0052): a
  // flush or compaction here may reseal it after it was sent (the same
  // entry, new bytes), so the value a later round reads for it at the
  // earlier snapshot is not what the destination holds, and removing that
  // one from the digest would leave it describing rows nobody holds (the
  // verdict then fails). Deferred rows only: others are never rewritten.
  std::map<std::string, std::array<uint64_t, 4>, std::less<>> sent_deferred_;
  uint64_t pos_ = 0;  // the feed sequence the copy is up to date with
  uint64_t read_ = 0;
  bool fell_back_ = false;
};

struct SnapshotGuard {
  rocksdb::DB* db = nullptr;
  const rocksdb::Snapshot* snap = nullptr;
  SnapshotGuard() = default;
  explicit SnapshotGuard(rocksdb::DB* d) : db(d), snap(d->GetSnapshot()) {}
  SnapshotGuard(SnapshotGuard&& o) noexcept : db(o.db), snap(o.snap) { o.snap = nullptr; }
  SnapshotGuard& operator=(SnapshotGuard&& o) noexcept {
    if (this != &o) {
      Reset();
      db = o.db;
      snap = o.snap;
      o.snap = nullptr;
    }
    return *this;
  }
  ~SnapshotGuard() { Reset(); }
  void Reset() {
    if (snap != nullptr) db->ReleaseSnapshot(snap);
    snap = nullptr;
  }
};

}  // namespace

// A registry record of what travels (identity, binding, policy), sealed to
// the destination's box key.
std::string SealedTenant(const codec::TenantRecord& rec, uint64_t ad_id, const SecretBytes* dek,
                         const std::string& public_key) {
  codec::TenantRecord out;
  out.tenant_id = rec.tenant_id;
  out.state = TenantState::kActive;
  out.region = rec.region;
  out.retention_days = rec.retention_days;
  out.created_at = rec.created_at;
  out.cf_generation = rec.cf_generation;
  out.key_version = rec.key_version;
  out.ad_internal_id = ad_id;
  out.holds = rec.holds;
  out.workspace_retention = rec.workspace_retention;
  const std::string enc = codec::EncodeTenant(out);
  // With a DEK: u32 length, record, DEK. Without: the record.
  const size_t n = dek ? 4 + enc.size() + 32 : enc.size();
  SecretBytes plain(n);
  if (dek) {
    std::string len;
    PutU32(&len, static_cast<uint32_t>(enc.size()));
    std::memcpy(plain.data(), len.data(), 4);
    std::memcpy(plain.data() + 4, enc.data(), enc.size());
    std::memcpy(plain.data() + 4 + enc.size(), dek->data(), 32);
  } else {
    std::memcpy(plain.data(), enc.data(), enc.size());
  }
  std::string sealed(plain.size() + crypto_box_SEALBYTES, '\0');
  crypto_box_seal(reinterpret_cast<unsigned char*>(sealed.data()), plain.data(), plain.size(),
                  reinterpret_cast<const unsigned char*>(public_key.data()));
  return sealed;
}

// --- Trusted move sources (decision 0062, docs/format.md "Trusted peers file")

namespace {

constexpr std::string_view kPeersHeader = "callvault-peers 1\n";

// What a peer identity is compared with: this store's own.
struct OwnMoveKeys {
  std::string_view store_id;
  std::string_view region;
  std::string box_key;      // X25519 public key (BoxKeys)
  std::string signing_key;  // Ed25519 public key; empty if none yet
};

bool AllZero(std::string_view bytes) {
  return sodium_is_zero(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size()) == 1;
}

// Why `id` can never be a trusted peer of this store, next to the peers
// `listed` already (OK if it can be), with the code `peer trust` answers.
// The one place these rules live: TrustMovePeer applies them to the new
// identity, LoadPeers to every line of the file, so that a hand-written or
// planted line is held to what `peer trust` would have refused.
Status PeerRefusal(const Identity& id, const std::vector<Identity>& listed,
                   const OwnMoveKeys& own) {
  // This store's own keys under another store id are this store too: its
  // own segments would be accepted as a peer's.
  auto own_key = [&](std::string_view k) {
    return crypto::ConstantTimeEquals(k, own.box_key) ||
           (!own.signing_key.empty() && crypto::ConstantTimeEquals(k, own.signing_key));
  };
  if (crypto::ConstantTimeEquals(id.store_id, own.store_id) || own_key(id.public_key) ||
      own_key(id.signing_key)) {
    return Status::InvalidArgument(
        "peer identity is this store's own (its store id, public key or signing key): a store "
        "moves no tenant to itself");
  }
  // No store has these: a placeholder or a forgery, never what `callvault
  // identity` printed. An all-zero signing key verifies nothing (libsodium
  // refuses small-order keys); a store's two keys are independent.
  if (AllZero(id.store_id)) {
    return Status::InvalidArgument("peer identity has an all-zero store id, which no store has");
  }
  if (AllZero(id.public_key) || AllZero(id.signing_key)) {
    return Status::InvalidArgument(
        "peer identity has an all-zero public or signing key, which no store has");
  }
  if (id.public_key == id.signing_key) {
    return Status::InvalidArgument(
        "peer identity's public key is its signing key: no store's two keys are equal");
  }
  // A move from another region is refused at its BEGIN (decision 0022):
  // trusting such a source would only look like it can move tenants here.
  if (id.region != own.region) {
    return Status::FailedPrecondition("peer identity is of another region ('" + id.region +
                                      "', this store is '" + std::string(own.region) +
                                      "'): tenants never move across regions (data residency)");
  }
  for (const auto& p : listed) {
    // A removal by store id must leave no line of that store behind.
    if (p.signing_key == id.signing_key || p.store_id == id.store_id) {
      return Status::AlreadyExists(
          "a peer with this store id or signing key is trusted already (remove it first to "
          "replace it)");
    }
    if (p.public_key == id.public_key || p.public_key == id.signing_key ||
        p.signing_key == id.public_key) {
      return Status::InvalidArgument(
          "peer identity's public key or signing key is another trusted peer's key: two stores "
          "never share one");
    }
  }
  // Keys that are no store's keys: an Ed25519 signing key that is not a
  // canonical point of the main subgroup (off the curve, or of small order)
  // verifies nothing, and an X25519 public key of small order gives the
  // same all-zero shared secret with every key (libsodium's
  // crypto_scalarmult refuses it; the scalar here is public, any will do).
  if (id.signing_key.size() != crypto_sign_PUBLICKEYBYTES ||
      crypto_core_ed25519_is_valid_point(
          reinterpret_cast<const unsigned char*>(id.signing_key.data())) != 1) {
    return Status::InvalidArgument(
        "peer identity's signing key is not an Ed25519 public key (not a point of the curve's "
        "main subgroup), which no store has");
  }
  std::array<unsigned char, crypto_scalarmult_SCALARBYTES> scalar;
  scalar.fill(0x5a);
  std::array<unsigned char, crypto_scalarmult_BYTES> product;
  if (id.public_key.size() != crypto_scalarmult_BYTES ||
      crypto_scalarmult(product.data(), scalar.data(),
                        reinterpret_cast<const unsigned char*>(id.public_key.data())) != 0) {
    return Status::InvalidArgument(
        "peer identity's public key is an X25519 key of small order, which no store has");
  }
  return Status::OK();
}

// The identities of a trusted-peers file, in order, each held to
// PeerRefusal. The file is written by FormatPeers only: anything else
// (another header, a line that is not a cvmove2 identity, a line `peer
// trust` would refuse, bytes after the last newline) is an edit made
// outside callvault, refused whole rather than half read. `out` holds each
// identity in canonical form (lowercase hex, as FormatIdentity writes it): a
// hand-written line in uppercase is the same peer, listed and rewritten
// canonically.
Status ParsePeers(std::string_view bytes, const OwnMoveKeys& own, std::vector<std::string>* out,
                  std::vector<Identity>* parsed) {
  out->clear();
  parsed->clear();
  if (bytes.empty()) return Status::OK();  // no list yet
  auto bad = [](const std::string& what) {
    return Status::Corruption("trusted-peers file (PEERS in the key directory): " + what +
                              "; it was not written by callvault: check how it got there, "
                              "then remove it and trust the sources again (`callvault peer "
                              "trust`)");
  };
  if (bytes.substr(0, kPeersHeader.size()) != kPeersHeader) return bad("unknown header");
  size_t at = kPeersHeader.size();
  int line = 1;
  while (at < bytes.size()) {
    ++line;
    const size_t nl = bytes.find('\n', at);
    if (nl == std::string_view::npos) {
      return bad("bytes after the last line (line " + std::to_string(line) + ")");
    }
    const std::string_view text = bytes.substr(at, nl - at);
    Identity id;
    if (!ParseIdentity(text, &id).ok()) {
      return bad("line " + std::to_string(line) + " is not a cvmove2 identity");
    }
    Status refused = PeerRefusal(id, *parsed, own);
    if (!refused.ok()) {
      // The message names the public identity's parts only, no key bytes.
      return bad("line " + std::to_string(line) + " would be refused by `peer trust` (" +
                 refused.message() + ")");
    }
    out->push_back(FormatIdentity(id));
    parsed->push_back(std::move(id));
    at = nl + 1;
  }
  return Status::OK();
}

std::string FormatPeers(const std::vector<std::string>& identities) {
  std::string out(kPeersHeader);
  for (const auto& i : identities) out += i + "\n";
  return out;
}

}  // namespace

struct Store::Impl::TrustedPeers {
  std::vector<std::string> ids;  // canonical (FormatIdentity), in file order
  std::vector<Identity> parsed;  // the same, parsed
  OwnMoveKeys own;               // what each was checked against
};

Status Store::Impl::LoadPeers(TrustedPeers* peers) {
  CV_ASSIGN_OR_RETURN(std::string bytes, kp_->ReadTrustedPeers());
  OwnMoveKeys& own = peers->own;
  own.store_id = store_id_;
  own.region = region_;
  SecretBytes own_box_sk;
  BoxKeys(store_data_key_, &own.box_key, &own_box_sk);
  // The existing key only: reading the list must not create a signing key
  // (SigningPublicKey would, on a writable store). None yet, none to claim.
  auto own_signing = kp_->ExistingSigningPublicKey();
  if (own_signing.ok()) {
    own.signing_key = std::move(*own_signing);
  } else if (own_signing.status().code() != Code::kNotFound &&
             own_signing.status().code() != Code::kNotSupported) {
    return own_signing.status();
  }
  return ParsePeers(bytes, own, &peers->ids, &peers->parsed);
}

Result<std::vector<std::string>> Store::Impl::ListMovePeers() {
  TrustedPeers peers;
  CV_RETURN_IF_ERROR(LoadPeers(&peers));
  return std::move(peers.ids);
}

Status Store::Impl::CheckMoveSource(std::string_view source_key, std::string* store_id) {
  TrustedPeers peers;
  Status loaded = LoadPeers(&peers);
  if (loaded.code() == Code::kNotSupported) {
    return Status::FailedPrecondition(
        "move refused: this store's key provider keeps no trusted-peers list, so it accepts "
        "moves only from callvault::MoveTenant (both stores in one process); nothing applied");
  }
  CV_RETURN_IF_ERROR(loaded);
  for (const auto& p : peers.parsed) {
    if (crypto::ConstantTimeEquals(p.signing_key, source_key)) {
      *store_id = p.store_id;
      return Status::OK();
    }
  }
  // An empty list refuses every source: a store trusts no one until its
  // operator says so.
  return Status::FailedPrecondition(
      "move refused: the source store is not a trusted peer of this store (its signing key is "
      "not in the trusted-peers list; `callvault peer trust <source's identity>` on this "
      "store); nothing applied");
}

Status Store::Impl::TrustMovePeer(std::string_view identity) {
  Identity id;
  CV_RETURN_IF_ERROR(ParseIdentity(identity, &id, "peer"));
  std::lock_guard<std::mutex> l(admin_mu_);
  TrustedPeers peers;
  CV_RETURN_IF_ERROR(LoadPeers(&peers));
  CV_RETURN_IF_ERROR(PeerRefusal(id, peers.parsed, peers.own));
  peers.ids.push_back(FormatIdentity(id));
  CV_RETURN_IF_ERROR(kp_->WriteTrustedPeers(FormatPeers(peers.ids)));
  Audit("move_peer_trusted", "", "store=" + crypto::Hex(id.store_id) + " region=" + id.region +
                                     " signing_key=" + crypto::Hex(id.signing_key));
  return Status::OK();
}

Status Store::Impl::RemoveMovePeer(std::string_view peer) {
  // Matched on parsed values, not text: hex in either case names the same
  // peer (`callvault identity` prints lowercase, an operator may type upper).
  // What is neither an identity nor a store id is bad input, not a peer
  // that is absent.
  Identity want;
  std::string want_store;
  const bool by_identity = peer.substr(0, 6) == "cvmove";
  if (by_identity) {
    CV_RETURN_IF_ERROR(ParseIdentity(peer, &want, "peer"));
  } else if (!FromHex(peer, &want_store) || want_store.size() != 16) {
    return Status::InvalidArgument(
        "peer: expected a store id (32 hex digits) or an identity (cvmove2:...), as `callvault "
        "peer list` prints them");
  }
  std::lock_guard<std::mutex> l(admin_mu_);
  TrustedPeers peers;
  CV_RETURN_IF_ERROR(LoadPeers(&peers));
  for (size_t i = 0; i < peers.ids.size(); ++i) {
    if ((by_identity && peers.ids[i] == FormatIdentity(want)) ||
        (!by_identity && peers.parsed[i].store_id == want_store)) {
      const std::string store = crypto::Hex(peers.parsed[i].store_id);
      peers.ids.erase(peers.ids.begin() + static_cast<std::ptrdiff_t>(i));
      CV_RETURN_IF_ERROR(kp_->WriteTrustedPeers(FormatPeers(peers.ids)));
      Audit("move_peer_removed", "", "store=" + store);
      return Status::OK();
    }
  }
  return Status::NotFound("no trusted peer with this identity or store id");
}

// --- Destination -----------------------------------------------------------

struct Store::Impl::IncomingMove {
  codec::TenantRecord rec;  // CREATING, move_state kMoveIn
  Shard* shard = nullptr;
  rocksdb::ColumnFamilyHandle* cf = nullptr;
  SecretBytes dek;
  std::string source_key;  // the source's signing public key
  uint64_t next_seq = 1;
  MultisetDigest digest;  // of the rows this copy holds, kept with each write
};

Result<std::string> Store::Impl::MoveIdentity() {
  std::string pk;
  SecretBytes sk;
  BoxKeys(store_data_key_, &pk, &sk);
  auto signing = SigningPublicKey();
  if (!signing.ok() && signing.status().code() == Code::kNotFound) {
    return Status::FailedPrecondition(
        "this store has no receipt-signing key yet, which its move identity names: open it "
        "writable once (`callvault identity` does)");
  }
  CV_RETURN_IF_ERROR(signing.status());
  return FormatIdentity(store_id_, region_, pk, *signing);
}

Result<std::string> Store::Impl::MoveTenantIn(std::string_view bytes, std::string_view source_key,
                                              bool in_process) {
  CV_ASSIGN_OR_RETURN(std::string text, ApplyMoveSegment(bytes, source_key, in_process));
  // Applied (or answered): the reply is signed and bound to this request,
  // so that no one between the stores can forge or replay it (decision 0051).
  CV_ASSIGN_OR_RETURN(std::string sig, kp_->Sign(ReplyMessage(bytes, text)));
  return text + sig;
}

Result<std::string> Store::Impl::ApplyMoveSegment(std::string_view bytes,
                                                  std::string_view source_key, bool in_process) {
  Segment seg;
  CV_RETURN_IF_ERROR(ParseSegment(bytes, source_key, &seg));
  const std::string mid = crypto::Hex(seg.move_id);
  std::lock_guard<std::mutex> l(admin_mu_);
  // Checked under admin_mu_, which RemoveMovePeer takes: once a removal
  // returns, no segment of the removed source is applied (decision 0062).
  std::string trusted_store_id;  // the listed source's store id (raw)
  if (!in_process) CV_RETURN_IF_ERROR(CheckMoveSource(source_key, &trusted_store_id));
  auto in = moves_in_.find(mid);
  switch (seg.type) {
    case kBegin: {
      if (seg.seq != 0) return Status::Corruption("move bundle: BEGIN out of order");
      Reader r{seg.body};
      std::string_view src_id, dst_id, src_region, sealed;
      if (!r.Raw(16, &src_id) || !r.Raw(16, &dst_id) || !r.Bytes(&src_region) ||
          !r.Bytes(&sealed) || !r.s.empty()) {
        return Status::Corruption("move bundle: malformed BEGIN");
      }
      if (!in_process && !crypto::ConstantTimeEquals(src_id, trusted_store_id)) {
        return Status::FailedPrecondition(
            "move bundle names another source store than the trusted peer whose key signed it; "
            "nothing applied");
      }
      if (!crypto::ConstantTimeEquals(dst_id, store_id_)) {
        return Status::FailedPrecondition(
            "move bundle is addressed to another store (destination store id differs); nothing "
            "applied");
      }
      if (src_region != region_) {
        return Status::FailedPrecondition("move from another region ('" + std::string(src_region) +
                                          "', this store is '" + region_ +
                                          "'): refused (data residency)");
      }
      std::string seen;
      std::string vkey(1, kMoveSeenPrefix);
      vkey += seg.move_id;
      rocksdb::Status gs = meta_->Get(rocksdb::ReadOptions(), vkey, &seen);
      if (gs.ok() || in != moves_in_.end()) {
        return Status::FailedPrecondition("replayed move bundle: move " + mid +
                                          " was received before; nothing applied");
      }
      if (!gs.IsNotFound()) CV_RETURN_IF_ERROR(fsutil::FromRocks(gs, "read move ids"));
      // Open the sealed payload: u32 len, registry record, DEK.
      if (sealed.size() < crypto_box_SEALBYTES) return Status::Corruption("move bundle: malformed BEGIN");
      std::string pk;
      SecretBytes sk;
      BoxKeys(store_data_key_, &pk, &sk);
      SecretBytes plain(sealed.size() - crypto_box_SEALBYTES);
      if (crypto_box_seal_open(plain.data(), reinterpret_cast<const unsigned char*>(sealed.data()),
                               sealed.size(), reinterpret_cast<const unsigned char*>(pk.data()),
                               sk.data()) != 0) {
        return Status::Corruption(
            "move bundle: the sealed data key does not open with this store's key (sealed to "
            "another store, or edited)");
      }
      const std::string_view pv(reinterpret_cast<const char*>(plain.data()), plain.size());
      if (pv.size() < 4 + 32) return Status::Corruption("move bundle: malformed sealed payload");
      const uint32_t rlen = format::DecodeFixed32LE(pv.data());
      if (pv.size() != 4 + size_t{rlen} + 32) {
        return Status::Corruption("move bundle: malformed sealed payload");
      }
      codec::TenantRecord incoming;
      CV_RETURN_IF_ERROR(codec::DecodeTenant(pv.substr(4, rlen), &incoming));
      CV_RETURN_IF_ERROR(validate::Id("tenant_id", incoming.tenant_id));
      if (incoming.region != region_) {
        return Status::FailedPrecondition("the tenant's region differs from this store's region '" +
                                          region_ + "' (data residency); nothing applied");
      }
      SecretBytes dek(32);
      std::memcpy(dek.data(), pv.data() + 4 + rlen, 32);
      uint64_t previous_receipt = 0;
      {
        std::shared_lock<std::shared_mutex> m(map_mu_);
        auto it = tenants_.find(incoming.tenant_id);
        if (it != tenants_.end()) {
          if (it->second->state.load() != TenantState::kPurged) {
            return Status::AlreadyExists("tenant exists at the destination store; nothing applied");
          }
          previous_receipt = it->second->Record().receipt_sequence;
        }
        for (const auto& [id, other] : moves_in_) {
          if (other->rec.tenant_id == incoming.tenant_id) {
            return Status::AlreadyExists(
                "tenant is arriving at the destination store by another move; nothing applied");
          }
        }
      }
      CV_ASSIGN_OR_RETURN(Shard * shard, PickShard());
      codec::TenantRecord rec;
      rec.tenant_id = incoming.tenant_id;
      rec.state = TenantState::kCreating;
      rec.region = region_;
      rec.retention_days = incoming.retention_days;
      rec.created_at = incoming.created_at;
      rec.internal_id = next_internal_id_++;
      rec.shard = shard->index();
      rec.cf_generation = incoming.cf_generation;
      rec.key_version = incoming.key_version;
      rec.ad_internal_id = incoming.ad_internal_id;
      rec.holds = incoming.holds;
      rec.workspace_retention = incoming.workspace_retention;
      rec.receipt_sequence = previous_receipt;
      rec.move_state = codec::kMoveIn;
      rec.move_id = mid;
      rec.move_peer = crypto::Hex(src_id);
      if (rec.ad_internal_id == 0 || rec.cf_generation == 0 || rec.key_version == 0) {
        return Status::Corruption("move bundle: the tenant's binding is missing");
      }
      {
        rocksdb::WriteBatch b;
        CV_RETURN_IF_ERROR(fsutil::FromRocks(
            b.Put(format::HeaderKey("next_internal_id"), std::to_string(next_internal_id_)),
            "registry batch"));
        CV_RETURN_IF_ERROR(fsutil::FromRocks(b.Put(vkey, ""), "registry batch"));
        CV_RETURN_IF_ERROR(WriteRegistry(rec, &b));
      }
      CV_KILL_POINT("move.in_after_registry");
      Status s;
      {
        Keyring next = keyring_.Clone();
        next.deks.emplace(std::make_pair(rec.internal_id, rec.key_version), dek.Clone());
        s = CommitKeyring(std::move(next), /*rotate=*/false);
      }
      CV_KILL_POINT("move.in_after_keyring");
      rocksdb::ColumnFamilyHandle* cf = nullptr;
      if (s.ok()) {
        auto c = shard->Create(format::ColumnFamilyName(rec.internal_id));
        s = c.status();
        if (s.ok()) cf = *c;
      }
      if (!s.ok()) {
        RollBackCreate(rec).IgnoreError();
        return s;
      }
      auto m = std::make_shared<IncomingMove>();
      m->rec = rec;
      m->shard = shard;
      m->cf = cf;
      m->dek = std::move(dek);
      m->source_key.assign(source_key);
      moves_in_[mid] = std::move(m);
      if (in_process) {
        // Not from the trusted-peers list: the caller held both stores open
        // (callvault::MoveTenant, `callvault tenant move --from --to`).
        Audit("move_source_in_process", rec.tenant_id,
              "from=" + rec.move_peer + " move=" + mid);
      }
      return std::string("ok");
    }
    case kRows:
    case kCommit: {
      if (in == moves_in_.end()) {
        return Status::FailedPrecondition(
            "no move in progress here with this id (the destination restarted, or the move was "
            "aborted or finished): the source starts it again");
      }
      IncomingMove& m = *in->second;
      if (!crypto::ConstantTimeEquals(m.source_key, source_key)) {
        return Status::Corruption("move bundle segment signed by another store than its BEGIN");
      }
      if (seg.seq != m.next_seq) {
        return Status::Corruption("move bundle segment out of order or replayed (sequence " +
                                  std::to_string(seg.seq) + ", expected " +
                                  std::to_string(m.next_seq) + "); nothing applied");
      }
      if (seg.type == kRows) {
        Reader r{seg.body};
        uint32_t n = 0;
        if (!r.U32(&n)) return Status::Corruption("move bundle: malformed ROWS");
        struct RowOp {
          bool put;
          std::string_view key, value;  // into seg.body
        };
        std::vector<RowOp> ops;
        ops.reserve(n);
        for (uint32_t i = 0; i < n; ++i) {
          std::string_view op, key, value;
          if (!r.Raw(1, &op) || !r.Bytes(&key) || (op[0] == 'P' && !r.Bytes(&value)) ||
              (op[0] != 'P' && op[0] != 'D')) {
            return Status::Corruption("move bundle: malformed ROWS");
          }
          ops.push_back({op[0] == 'P', key, value});
        }
        if (!r.s.empty()) return Status::Corruption("move bundle: malformed ROWS");
        // Each row's value in this copy before the segment (read from the
        // family in one MultiGet, or an earlier row of the segment): the
        // digest follows what the family holds, not what the source says
        // it sent.
        std::map<std::string_view, size_t> first;  // key -> index into `before`
        std::vector<rocksdb::Slice> keys;
        for (const RowOp& o : ops) {
          if (first.emplace(o.key, keys.size()).second) keys.emplace_back(o.key.data(), o.key.size());
        }
        std::vector<rocksdb::PinnableSlice> before(keys.size());
        std::vector<rocksdb::Status> got(keys.size());
        m.shard->db()->MultiGet(rocksdb::ReadOptions(), m.cf, keys.size(), keys.data(),
                                before.data(), got.data());
        std::vector<std::optional<std::string_view>> now(keys.size());
        for (size_t i = 0; i < keys.size(); ++i) {
          if (got[i].ok()) {
            now[i] = before[i].ToStringView();
          } else if (!got[i].IsNotFound()) {
            return fsutil::FromRocks(got[i], "move: read the copy's rows");
          }
        }
        rocksdb::WriteBatch b;
        MultisetDigest digest = m.digest;
        for (const RowOp& o : ops) {
          std::optional<std::string_view>& at = now[first[o.key]];
          if (at) digest.Remove(o.key, *at);
          if (o.put) {
            digest.Add(o.key, o.value);
            at = o.value;
          } else {
            at.reset();
          }
          rocksdb::Status ws = o.put ? b.Put(m.cf, o.key, o.value) : b.Delete(m.cf, o.key);
          CV_RETURN_IF_ERROR(fsutil::FromRocks(ws, "move rows batch"));
        }
        // Not synced one by one: COMMIT syncs the shard's WAL before the
        // tenant becomes ACTIVE, and a restart before that discards it all.
        rocksdb::WriteOptions wo;
        CV_RETURN_IF_ERROR(fsutil::FromRocks(m.shard->db()->Write(wo, &b), "move: write rows"));
        m.digest = digest;
        ++m.next_seq;
        return std::string("ok");
      }
      Reader r{seg.body};
      uint64_t rows = 0;
      std::string_view digest, sealed;
      if (!r.U64(&rows) || !r.Raw(32, &digest) || !r.Bytes(&sealed) || !r.s.empty() ||
          sealed.size() < crypto_box_SEALBYTES) {
        return Status::Corruption("move bundle: malformed COMMIT");
      }
      // The tenant's policy as the fence left it (holds, retention): sealed
      // to this store like the BEGIN's.
      codec::TenantRecord policy;
      {
        std::string pk;
        SecretBytes sk;
        BoxKeys(store_data_key_, &pk, &sk);
        SecretBytes plain(sealed.size() - crypto_box_SEALBYTES);
        if (crypto_box_seal_open(plain.data(), reinterpret_cast<const unsigned char*>(sealed.data()),
                                 sealed.size(), reinterpret_cast<const unsigned char*>(pk.data()),
                                 sk.data()) != 0) {
          return Status::Corruption("move bundle: the sealed policy does not open with this store's key");
        }
        CV_RETURN_IF_ERROR(codec::DecodeTenant(
            std::string_view(reinterpret_cast<const char*>(plain.data()), plain.size()), &policy));
        if (policy.tenant_id != m.rec.tenant_id) {
          return Status::Corruption("move bundle: the COMMIT names another tenant than its BEGIN");
        }
      }
      ++m.next_seq;
      // The copy's count and digest, kept with every row written (decision
      // 0043): the family is not read again.
      const uint64_t have = m.digest.rows;
      const std::string mine = m.digest.Final();
      Status s;
      if ((have != rows || !crypto::ConstantTimeEquals(mine, digest))) {
        s = Status::Corruption("move verify failed: the destination's copy holds " +
                               std::to_string(have) + " rows, the source's " +
                               std::to_string(rows) +
                               (have == rows ? " (digests differ)" : "") +
                               "; the copy here is discarded, the source keeps the tenant");
      }
      if (s.ok()) s = fsutil::FromRocks(m.shard->db()->FlushWAL(true), "move: sync rows");
      CV_KILL_POINT("move.in_before_commit");
      codec::TenantRecord rec = m.rec;
      rec.state = TenantState::kActive;
      rec.holds = policy.holds;
      rec.retention_days = policy.retention_days;
      rec.workspace_retention = policy.workspace_retention;
      if (s.ok()) s = WriteRegistry(rec);  // the switch: this copy is authoritative
      if (!s.ok()) {
        RollBackCreate(m.rec).IgnoreError();
        moves_in_.erase(in);
        return s;
      }
      CV_KILL_POINT("move.in_after_commit");
      auto t = std::make_shared<Tenant>();
      t->rec = rec;
      t->state = TenantState::kActive;
      t->shard = m.shard;
      t->cf = m.cf;
      DeriveKeys(t.get(), m.dek);
      {
        std::unique_lock<std::shared_mutex> mm(map_mu_);
        tenants_[rec.tenant_id] = std::move(t);
      }
      moves_in_.erase(in);
      // "tenant_created" with its internal id: recovery then knows the
      // tenant was live (a replayed CREATING value is never rolled back).
      Audit("tenant_created", rec.tenant_id,
            "internal_id=" + std::to_string(rec.internal_id) + " shard=" +
                std::to_string(rec.shard) + " moved_in_from=" + rec.move_peer + " move=" + mid);
      return "committed " + std::to_string(rows) + " " + crypto::Hex(digest);
    }
    case kQuery: {
      std::shared_lock<std::shared_mutex> m(map_mu_);
      for (const auto& [id, t] : tenants_) {
        std::lock_guard<std::mutex> rl(t->rec_mu);
        if (t->rec.move_state == codec::kMoveIn && t->rec.move_id == mid &&
            t->state.load() != TenantState::kCreating) {
          return std::string("committed");
        }
      }
      return std::string(in != moves_in_.end() ? "in_progress" : "unknown");
    }
    case kAbort: {
      if (in != moves_in_.end()) {
        if (!crypto::ConstantTimeEquals(in->second->source_key, source_key)) {
          return Status::Corruption("move bundle segment signed by another store than its BEGIN");
        }
        Status s = RollBackCreate(in->second->rec);
        moves_in_.erase(in);
        CV_RETURN_IF_ERROR(s);
      }
      return std::string("aborted");
    }
    default:
      return Status::Corruption("move bundle segment of an unknown type");
  }
}

// --- Source ----------------------------------------------------------------

Result<MoveReport> Store::Impl::MoveTenantOut(std::string_view tenant_id,
                                              std::string_view identity_text,
                                              const MoveTransport& to, const MoveOptions& options) {
  const int64_t start = Micros();
  CV_RETURN_IF_ERROR(validate::Id("tenant_id", tenant_id));
  Identity dst;
  CV_RETURN_IF_ERROR(ParseIdentity(identity_text, &dst));
  if (crypto::ConstantTimeEquals(dst.store_id, store_id_)) {
    return Status::InvalidArgument(
        "the destination is this store: moves between shards of one store are not supported");
  }
  if (!to) return Status::InvalidArgument("no transport to the destination");
  const uint32_t per_segment = std::max<uint32_t>(1, options.rows_per_segment);
  const std::string dst_hex = crypto::Hex(dst.store_id);

  MoveReport report;
  report.destination = dst_hex;
  std::shared_ptr<Tenant> t;
  std::string move_id;  // raw
  uint64_t seq = 0;

  // The destination's reply text, only if it verifies (decision 0051): an
  // error, or a reply that does not verify, is no answer.
  auto send = [&](char type, uint64_t s, std::string_view body) -> Result<std::string> {
    std::string seg = Unsigned(type, move_id, s, body);
    CV_ASSIGN_OR_RETURN(std::string sig, kp_->Sign(seg));
    seg += sig;
    auto reply = to(seg);
    if (options.after_segment) options.after_segment(type);
    CV_RETURN_IF_ERROR(reply.status());
    return OpenReply(seg, *reply, dst.signing_key);
  };
  // QUERY and ABORT carry a fresh nonce: their replies answer this request.
  auto query = [&]() { return send(kQuery, 0, crypto::RandomString(kNonceBytes)); };
  // The destination dropped its partial copy (or never had one): OK only on
  // its verified "aborted".
  auto abort_remote = [&]() -> Status {
    CV_ASSIGN_OR_RETURN(std::string r, send(kAbort, 0, crypto::RandomString(kNonceBytes)));
    if (r != "aborted") return Status::Corruption("move: unexpected reply from the destination");
    return Status::OK();
  };

  bool resume = false;
  {
    std::lock_guard<std::mutex> l(admin_mu_);
    CV_ASSIGN_OR_RETURN(t, FindTenant(tenant_id));
    codec::TenantRecord rec = t->Record();
    if (t->state.load() == TenantState::kPurged) {
      if (rec.move_state == codec::kMoveFenced) return MovedError(rec);
      return Status::TenantPurged("tenant purged");
    }
    if (t->state.load() != TenantState::kActive) {
      return Status::FailedPrecondition("tenant is being created or purged");
    }
    // Before BEGIN carries its sealed key anywhere: a damaged or
    // quarantined tenant cannot be copied whole (attack 12).
    if (t->quarantined.load()) {
      return Status::Corruption("tenant quarantined: it cannot move; reinstate or purge it first");
    }
    if (t->damaged.load()) {
      return Status::Corruption("tenant damaged: it cannot move until it is restored, purged or "
                                "its damage accepted (docs/operations.md)");
    }
    if (t->moving.load()) {
      return Status::FailedPrecondition("tenant is held for a move already in progress");
    }
    if (rec.move_state == codec::kMoveFenced) {
      if (rec.move_peer != dst_hex) {
        return Status::FailedPrecondition("tenant is held for an unfinished move to store " +
                                          rec.move_peer + "; resume it with that store");
      }
      resume = true;
      if (!FromHex(rec.move_id, &move_id)) return Status::Corruption("registry: bad move id");
    } else {
      if (rec.region != dst.region) {
        return Status::FailedPrecondition("the destination store is in another region ('" +
                                          dst.region + "', the tenant's is '" + rec.region +
                                          "'): refused (data residency)");
      }
      if (rec.purge_at != 0) {
        return Status::FailedPrecondition("tenant churned (a purge is scheduled): not moved");
      }
    }
    t->moving = true;
  }
  struct Unhold {
    Tenant* t;
    ~Unhold() { t->moving = false; }
  } unhold{t.get()};

  // The moved_out purge: the destination holds the authoritative copy.
  auto finish = [&]() -> Status {
    std::lock_guard<std::mutex> l(admin_mu_);
    codec::TenantRecord rec = t->Record();
    rec.purge_kek_generation = keyring_.kek_generation;
    rec.state = TenantState::kPurging;
    CV_RETURN_IF_ERROR(WriteRegistry(rec));
    CV_KILL_POINT("move.out_after_purging");
    t->state = TenantState::kPurging;
    std::unique_lock<std::shared_mutex> life(t->life);
    CV_ASSIGN_OR_RETURN(Receipt receipt, FinishPurge(&rec, t.get(), "moved_out", dst_hex));
    {
      std::lock_guard<std::mutex> r(t->rec_mu);
      t->rec = rec;
      t->state = TenantState::kPurged;
    }
    report.receipt_sequence = receipt.sequence;
    Audit("tenant_moved_out", rec.tenant_id, "to=" + dst_hex + " move=" + rec.move_id +
                                                 " receipt=" + std::to_string(receipt.sequence));
    return Status::OK();
  };
  // Lifts the fence (the destination does not have the tenant).
  auto unfence = [&]() -> Status {
    std::lock_guard<std::mutex> l(admin_mu_);
    codec::TenantRecord rec = t->Record();
    rec.move_state = codec::kMoveNone;
    rec.move_id.clear();
    rec.move_peer.clear();
    CV_RETURN_IF_ERROR(WriteRegistry(rec));
    std::lock_guard<std::mutex> r(t->rec_mu);
    t->rec = rec;
    return Status::OK();
  };

  if (resume) {
    CV_ASSIGN_OR_RETURN(std::string state, query());
    report.move_id = crypto::Hex(move_id);
    if (state == "committed") {
      report.resumed = true;
      CV_RETURN_IF_ERROR(finish());
      report.total_micros = static_cast<uint64_t>(Micros() - start);
      return report;
    }
    // Not committed there: the source's copy is the only one. Unfence and
    // move again under a new id.
    CV_RETURN_IF_ERROR(abort_remote());
    CV_RETURN_IF_ERROR(unfence());
    {
      std::lock_guard<std::mutex> l(admin_mu_);
      if (t->Record().region != dst.region) {
        return Status::FailedPrecondition("the destination store is in another region: refused");
      }
    }
  }

  move_id = crypto::RandomString(kMoveIdBytes);
  report.move_id = crypto::Hex(move_id);
  // BEGIN: the registry record and the DEK, sealed to the destination.
  {
    std::string body;
    {
      std::lock_guard<std::mutex> l(admin_mu_);
      codec::TenantRecord rec = t->Record();
      const SecretBytes* dek = keyring_.Find(rec.internal_id, rec.key_version);
      if (dek == nullptr || dek->size() != 32) {
        return Status::FailedPrecondition("tenant has no data key here");
      }
      const std::string sealed = SealedTenant(rec, t->ad_id(), dek, dst.public_key);
      body.append(store_id_);
      body.append(dst.store_id);
      PutBytes(&body, region_);
      PutBytes(&body, sealed);
    }
    auto begun = send(kBegin, seq++, body);
    if (!begun.ok() || *begun != "ok") {
      // Best effort: the destination may hold the BEGIN whose reply was lost.
      abort_remote().IgnoreError();
      return begun.ok() ? Status::Corruption("move: unexpected reply from the destination")
                        : begun.status();
    }
  }
  CV_KILL_POINT("move.out_after_begin");

  // Streams changes as ROWS segments.
  std::string rows_body;
  uint32_t rows_in_body = 0;
  auto flush_rows = [&]() -> Status {
    if (rows_in_body == 0) return Status::OK();
    std::string body;
    PutU32(&body, rows_in_body);
    body += rows_body;
    rows_body.clear();
    rows_in_body = 0;
    CV_ASSIGN_OR_RETURN(std::string reply, send(kRows, seq++, body));
    if (reply != "ok") return Status::Corruption("move: unexpected reply from the destination");
    return Status::OK();
  };
  uint64_t changed = 0;
  auto emit = [&](bool put, std::string_view key, std::string_view value) -> Status {
    rows_body.push_back(put ? 'P' : 'D');
    PutBytes(&rows_body, key);
    if (put) PutBytes(&rows_body, value);
    ++changed;
    ++report.rows_sent;
    if (++rows_in_body >= per_segment || rows_body.size() >= (8u << 20)) return flush_rows();
    return Status::OK();
  };
  SourceCopy source(emit);

  // Everything up to the fence; on failure the destination drops its copy.
  auto copy = [&]() -> Result<SnapshotGuard> {
    CV_ASSIGN_OR_RETURN(TenantRef ref, Acquire(tenant_id, Access::kRead));
    source.Bind(&ref);
    struct Unbind {
      SourceCopy* c;
      ~Unbind() { c->Bind(nullptr); }
    } unbind{&source};
    rocksdb::DB* db = ref->shard->db();
    SnapshotGuard prev(db);
    CV_RETURN_IF_ERROR(source.CopyAll(prev.snap));
    CV_RETURN_IF_ERROR(flush_rows());
    CV_KILL_POINT("move.out_after_copy");
    uint64_t last_changed = UINT64_MAX;
    for (uint32_t round = 0; round < options.max_catch_up_rounds; ++round) {
      SnapshotGuard next(db);
      changed = 0;
      CV_RETURN_IF_ERROR(source.Round(prev.snap, next.snap));
      CV_RETURN_IF_ERROR(flush_rows());
      ++report.catch_up_rounds;
      prev = std::move(next);
      // Few changes left, or no progress (writers outpace a round): fence.
      if (changed < options.fence_below_changes || changed >= last_changed) break;
      last_changed = changed;
    }
    return prev;
  };
  auto copied = copy();
  if (!copied.ok()) {
    abort_remote().IgnoreError();
    return copied.status();
  }
  SnapshotGuard prev = std::move(copied).value();
  report.copy_micros = static_cast<uint64_t>(Micros() - start);

  // Fence: durable first, so a restart keeps refusing writes.
  const int64_t fence_start = Micros();
  {
    std::lock_guard<std::mutex> l(admin_mu_);
    codec::TenantRecord rec = t->Record();
    rec.move_state = codec::kMoveFenced;
    rec.move_id = report.move_id;
    rec.move_peer = dst_hex;
    Status s = WriteRegistry(rec);
    if (!s.ok()) {
      abort_remote().IgnoreError();
      return s;
    }
    std::lock_guard<std::mutex> r(t->rec_mu);
    t->rec = rec;
  }
  CV_KILL_POINT("move.out_after_fence");
  // Drain: every operation that began before the fence has finished once
  // the exclusive lock is had; later ones see the fence.
  { std::unique_lock<std::shared_mutex> drain(t->life); }

  // Last catch-up and the verdict, on the drained family: what changed
  // since the last round only; the count and digest were kept with every
  // row sent (decision 0043).
  Status s;
  std::string reply;
  {
    auto ref = Acquire(tenant_id, Access::kRead);
    s = ref.status();
    if (s.ok()) {
      source.Bind(&*ref);
      source.ResetRead();
      rocksdb::DB* db = (*ref)->shard->db();
      SnapshotGuard last(db);
      s = source.Round(prev.snap, last.snap);
      if (s.ok()) s = flush_rows();
      source.Bind(nullptr);
      report.fence_rows_read = source.read();
      report.feed_fallback = source.fell_back();
      report.rows = source.digest().rows;
      std::string digest = source.digest().Final();
      prev.Reset();
      // A churn scheduled during the copy does not travel: refuse the move
      // (unfenced below) rather than let the deadline vanish.
      if (s.ok() && t->Record().purge_at != 0) {
        s = Status::FailedPrecondition("tenant churned during the move: not moved");
      }
      CV_KILL_POINT("move.out_before_commit");
      if (s.ok()) {
        std::string body;
        format::PutFixed64LE(&body, report.rows);
        body += digest;
        // Holds and retention as the fence left them (registry changes are
        // refused from the fence on).
        PutBytes(&body, SealedTenant(t->Record(), t->ad_id(), nullptr, dst.public_key));
        report.digest = crypto::Hex(digest);
        auto r = send(kCommit, seq++, body);
        s = r.status();
        if (s.ok()) reply = *r;
      }
    }
  }
  if (!s.ok()) {
    // The destination refused or was not reached. If it did not commit, the
    // tenant is served here again; if that cannot be known, it stays fenced
    // until the move is resumed.
    // Only a verified answer counts; and the fence is lifted only once the
    // destination verifiably dropped its copy (else a COMMIT it still holds
    // could make it ACTIVE beside this copy): otherwise the move is resumed.
    auto q = query();
    if (q.ok() && *q != "committed" && abort_remote().ok()) unfence().IgnoreError();
    return s;
  }
  if (reply != "committed " + std::to_string(report.rows) + " " + report.digest) {
    return Status::Corruption(
        "move: the destination's commit reply does not match the source's count and digest; the "
        "tenant stays fenced here: resume the move");
  }
  // Writes are served again, at the destination.
  report.fence_micros = static_cast<uint64_t>(Micros() - fence_start);
  CV_KILL_POINT("move.out_after_commit");
  CV_RETURN_IF_ERROR(finish());
  report.total_micros = static_cast<uint64_t>(Micros() - start);
  return report;
}

Result<MoveReport> MoveTenant(Store& from, Store& to, std::string_view tenant_id,
                              const MoveOptions& options) {
  CV_ASSIGN_OR_RETURN(std::string identity, to.MoveIdentity());
  CV_ASSIGN_OR_RETURN(std::string key, from.SigningPublicKey());
  // The caller holds both stores, so the source's key is known first hand:
  // the destination's trusted-peers list is not consulted (decision 0062).
  MoveTransport transport = [&to, key](std::string_view segment) {
    return to.MoveTenantInFromLocalStore(segment, key);
  };
  return from.MoveTenantOut(tenant_id, identity, transport, options);
}

}  // namespace callvault
