// The per-tenant change feed (docs/decisions/0030): one sealed event row
// per changed call ('L' + sequence), written in the WriteBatch of the change
// itself, read back in sequence order with an opaque, MACed resume token.
#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include <limits>
#include <memory>

#include "callvault/limits.h"
#include "engine/crypto.h"
#include "engine/fs_util.h"
#include "engine/rotate_internal.h"
#include "engine/store_impl.h"
#include "format/coding.h"
#include "format/rowkey.h"

namespace callvault {

const char* ChangeKindName(ChangeKind kind) {
  switch (kind) {
    case ChangeKind::kPut: return "put";
    case ChangeKind::kUpdate: return "update";
    case ChangeKind::kDelete: return "delete";
  }
  return "unknown";
}

const char* ChangeCauseName(ChangeCause cause) {
  switch (cause) {
    case ChangeCause::kUser: return "user";
    case ChangeCause::kErasure: return "erasure";
    case ChangeCause::kRetention: return "retention";
    case ChangeCause::kRestore: return "restore";
  }
  return "unknown";
}

namespace {

// Events removed by one change at most (so a change after a long quiet
// spell does not turn into one huge batch; the rest go with later ones).
constexpr int kTrimPerChange = 256;
constexpr uint8_t kEventLayout = 1;
constexpr size_t kEventHeaderBytes = 19;  // layout, kind, cause, version, committed_at
constexpr uint8_t kTokenVersion = 1;
constexpr size_t kTokenBodyBytes = 1 + 8 + 8 + 8;  // version, cf generation, sequence, mark
constexpr size_t kMarkBytes = 8;
constexpr size_t kNonceOffset = 10;  // format/envelope.h: the nonce follows the 10-byte header
constexpr char kTokenDomain[] = "cvfeed1";

std::string EncodeEvent(const Store::Impl::ChangeNote& n, int64_t committed_at) {
  std::string out;
  out.push_back(static_cast<char>(kEventLayout));
  out.push_back(static_cast<char>(n.kind));
  out.push_back(static_cast<char>(n.cause));
  format::PutFixed64BE(&out, n.version);
  format::PutFixed64BE(&out, static_cast<uint64_t>(committed_at));
  out += n.call_id;
  return out;
}

Status DecodeEvent(std::string_view plain, ChangeEvent* e) {
  if (plain.size() <= kEventHeaderBytes || plain.size() > kEventHeaderBytes + limits::kMaxIdBytes ||
      static_cast<uint8_t>(plain[0]) != kEventLayout) {
    return Status::Corruption("malformed change feed event");
  }
  const auto kind = static_cast<uint8_t>(plain[1]);
  const auto cause = static_cast<uint8_t>(plain[2]);
  if (kind < 1 || kind > 3 || cause < 1 || cause > 4) {
    return Status::Corruption("malformed change feed event");
  }
  e->kind = static_cast<ChangeKind>(kind);
  e->cause = static_cast<ChangeCause>(cause);
  e->version = format::DecodeFixed64BE(plain.data() + 3);
  e->committed_at = static_cast<int64_t>(format::DecodeFixed64BE(plain.data() + 11));
  e->call_id.assign(plain.substr(kEventHeaderBytes));
  return Status::OK();
}

// What a token remembers of the event it follows: 8 bytes of that event's
// random nonce, so an event lost (a crash with sync_writes off) or rolled
// back (a restore) and replaced under the same sequence is noticed.
Status Mark(std::string_view sealed, std::string* mark) {
  if (sealed.size() < kNonceOffset + kMarkBytes) return Status::Corruption("malformed change feed event");
  mark->assign(sealed.substr(kNonceOffset, kMarkBytes));
  return Status::OK();
}

struct Token {
  uint64_t cf_generation = 0;
  uint64_t seq = 0;
  std::string mark = std::string(kMarkBytes, '\0');
};

std::string TokenMac(const TenantRef& t, std::string_view body) {
  std::string in(kTokenDomain);
  in.append(body);
  return crypto::Mac16(t->cursor_key, in);
}

std::string EncodeToken(const TenantRef& t, uint64_t seq, const std::string& mark) {
  std::string body;
  body.push_back(static_cast<char>(kTokenVersion));
  format::PutFixed64BE(&body, t->rec.cf_generation);
  format::PutFixed64BE(&body, seq);
  body += mark;
  return crypto::Hex(body + TokenMac(t, body));
}

Status ParseToken(const TenantRef& t, std::string_view text, Token* out) {
  const Status bad = Status::InvalidArgument(
      "token: not a change feed token of this tenant (malformed or forged)");
  std::string raw;
  if (text.size() != 2 * (kTokenBodyBytes + 16) || !crypto::FromHex(text, &raw)) return bad;
  const std::string_view body = std::string_view(raw).substr(0, kTokenBodyBytes);
  if (static_cast<uint8_t>(raw[0]) != kTokenVersion) return bad;
  if (!crypto::ConstantTimeEquals(TokenMac(t, body), std::string_view(raw).substr(kTokenBodyBytes))) {
    return bad;
  }
  out->cf_generation = format::DecodeFixed64BE(raw.data() + 1);
  out->seq = format::DecodeFixed64BE(raw.data() + 9);
  out->mark = raw.substr(17, kMarkBytes);
  if (out->cf_generation != t->rec.cf_generation) {
    return Status::OutOfRange("token: issued for another copy of the tenant's data; resync");
  }
  return Status::OK();
}

struct FeedBounds {
  std::string lower = std::string(1, format::kChangePrefix);
  std::string upper = std::string(1, static_cast<char>(format::kChangePrefix + 1));
  rocksdb::Slice lo{lower};
  rocksdb::Slice hi{upper};
  FeedBounds() = default;
  FeedBounds(const FeedBounds&) = delete;
  FeedBounds& operator=(const FeedBounds&) = delete;
  void Apply(rocksdb::ReadOptions* ro) const {
    ro->iterate_lower_bound = &lo;
    ro->iterate_upper_bound = &hi;
  }
};

Status SeqOf(const rocksdb::Iterator& it, uint64_t* seq) {
  auto s = format::ParseChangeKey(it.key().ToStringView());
  if (!s) return Status::Corruption("malformed change feed key");
  *seq = *s;
  return Status::OK();
}

}  // namespace

Status Store::Impl::AppendChanges(const TenantRef& t, const std::vector<ChangeNote>& notes,
                                  rocksdb::WriteBatch* b) {
  t->feed_after = Tenant::FeedState{};
  if (notes.empty()) return Status::OK();
  const Tenant::FeedState held = t->feed;
  t->feed.known = false;  // until `b` is written (WriteChanges)
  const bool cached = held.known && held.cf_generation == t->rec.cf_generation &&
                      held.family == t->rec.family;
  FeedBounds bounds;
  std::unique_ptr<rocksdb::Iterator> it;
  auto open_iterator = [&] {
    rocksdb::ReadOptions ro;
    bounds.Apply(&ro);
    it.reset(t->shard->db()->NewIterator(ro, t->cf));
  };
  // The newest event is never removed (below), so the sequence never
  // restarts while the tenant lives.
  uint64_t last = held.last;
  if (!cached) {
    open_iterator();
    last = 0;
    it->SeekToLast();
    if (it->Valid()) CV_RETURN_IF_ERROR(SeqOf(*it, &last));
    CV_RETURN_IF_ERROR(fsutil::FromRocks(it->status(), "read the change feed"));
  }
  const int64_t now = NowMicros();
  uint64_t seq = last;
  for (const auto& n : notes) {
    const std::string key = format::ChangeKey(++seq);
    CV_RETURN_IF_ERROR(fsutil::FromRocks(b->Put(t->cf, key, t->SealRecord(key, EncodeEvent(n, now))),
                                         "write batch"));
  }
  Tenant::FeedState next;
  next.known = true;
  next.cf_generation = t->rec.cf_generation;
  next.family = t->rec.family;
  next.last = seq;
  next.batch = b;
  if (last == 0) {
    next.first = 1;
    next.first_at_known = true;
    next.first_at = now;
    t->feed_after = next;
    return Status::OK();
  }
  // The horizon: the oldest events held before this change go while they
  // are beyond the count or older than the age limit.
  const uint64_t max_events = options_.change_feed_max_events;
  const uint64_t keep_from = max_events != 0 && seq > max_events ? seq - max_events + 1 : 0;
  const uint32_t age = options_.change_feed_retention_seconds;
  const int64_t horizon = age != 0 ? now - static_cast<int64_t>(age) * 1000000
                                   : std::numeric_limits<int64_t>::min();
  if (cached && held.first >= keep_from &&
      (age == 0 || (held.first_at_known && held.first_at >= horizon))) {
    // The oldest event stays: nothing to read or remove.
    next.first = held.first;
    next.first_at_known = held.first_at_known;
    next.first_at = held.first_at;
    t->feed_after = next;
    return Status::OK();
  }
  if (it == nullptr) open_iterator();
  int removed = 0;
  bool kept = false;  // stopped at an event that stays
  for (it->SeekToFirst(); it->Valid() && removed < kTrimPerChange; it->Next()) {
    uint64_t s = 0;
    CV_RETURN_IF_ERROR(SeqOf(*it, &s));
    if (s >= keep_from) {
      next.first = s;
      if (age == 0) {
        kept = true;
        break;
      }
      std::string plain;
      ChangeEvent e;
      // A damaged event is left where it is (Verify and ReadChanges report
      // it); the feed is not worth refusing the change for.
      if (!t->OpenRecord(it->key().ToStringView(), it->value().ToStringView(), &plain).ok() ||
          !DecodeEvent(plain, &e).ok()) {
        kept = true;
        break;
      }
      if (e.committed_at >= horizon) {
        next.first_at_known = true;
        next.first_at = e.committed_at;
        kept = true;
        break;
      }
    }
    CV_RETURN_IF_ERROR(fsutil::FromRocks(b->Delete(t->cf, it->key()), "write batch"));
    ++removed;
  }
  CV_RETURN_IF_ERROR(fsutil::FromRocks(it->status(), "read the change feed"));
  if (!kept) {
    if (it->Valid()) return Status::OK();  // more to remove: the next change reads on
    // Every event held before is removed: this change's are the oldest.
    next.first = last + 1;
    next.first_at_known = true;
    next.first_at = now;
  }
  t->feed_after = next;
  return Status::OK();
}

Status Store::Impl::WriteChanges(const TenantRef& t, const rocksdb::WriteOptions& o,
                                 rocksdb::WriteBatch* b, const char* what) {
  const Tenant::FeedState after = t->feed_after;
  t->feed_after = Tenant::FeedState{};
  CV_RETURN_IF_ERROR(fsutil::FromRocks(t->shard->db()->Write(o, b), what));
  if (after.known && after.batch == b) t->feed = after;
  return Status::OK();
}

Result<ChangePage> Store::Impl::ReadChanges(std::string_view tenant_id, std::string_view token,
                                            size_t limit) {
  if (limit == 0) limit = limits::kDefaultListLimit;
  if (limit > limits::kMaxListLimit) {
    return Status::InvalidArgument("limit: more than " + std::to_string(limits::kMaxListLimit));
  }
  CV_ASSIGN_OR_RETURN(TenantRef t, Acquire(tenant_id));
  Token tok;
  if (!token.empty()) CV_RETURN_IF_ERROR(ParseToken(t, token, &tok));
  rocksdb::ManagedSnapshot snap(t->shard->db());
  FeedBounds bounds;
  rocksdb::ReadOptions ro;
  ro.snapshot = snap.snapshot();
  bounds.Apply(&ro);
  std::unique_ptr<rocksdb::Iterator> it(t->shard->db()->NewIterator(ro, t->cf));
  uint64_t after = tok.seq;
  std::string mark = tok.mark;
  it->Seek(format::ChangeKey(tok.seq));
  CV_RETURN_IF_ERROR(fsutil::FromRocks(it->status(), "read the change feed"));
  if (tok.seq != 0) {
    uint64_t first = 0;
    if (it->Valid()) CV_RETURN_IF_ERROR(SeqOf(*it, &first));
    if (first == tok.seq) {
      std::string held;
      CV_RETURN_IF_ERROR(Mark(it->value().ToStringView(), &held));
      if (!crypto::ConstantTimeEquals(held, tok.mark)) {
        return Status::OutOfRange("token: the feed no longer holds the event it follows (lost at "
                                  "a crash or rolled back by a restore); resync");
      }
      it->Next();
    } else if (first == 0) {
      // Sequences are dense and the newest event is never trimmed: a
      // token beyond the newest one was issued by a feed since rolled back.
      return Status::OutOfRange("token: ahead of the change feed (events lost at a crash or "
                                "rolled back by a restore); resync");
    } else if (first != tok.seq + 1) {
      return Status::OutOfRange("token: behind the change feed's horizon (the events after it "
                                "were removed); resync");
    }
  } else if (it->Valid() && !token.empty()) {
    // A token issued on an empty feed: every event since must be held.
    uint64_t first = 0;
    CV_RETURN_IF_ERROR(SeqOf(*it, &first));
    if (first != 1) {
      return Status::OutOfRange("token: behind the change feed's horizon (the events after it "
                                "were removed); resync");
    }
  }
  ChangePage page;
  for (; it->Valid() && page.events.size() < limit; it->Next()) {
    ChangeEvent e;
    CV_RETURN_IF_ERROR(SeqOf(*it, &e.sequence));
    std::string plain;
    CV_RETURN_IF_ERROR(t->OpenRecord(it->key().ToStringView(), it->value().ToStringView(), &plain));
    CV_RETURN_IF_ERROR(DecodeEvent(plain, &e));
    CV_RETURN_IF_ERROR(Mark(it->value().ToStringView(), &mark));
    after = e.sequence;
    page.events.push_back(std::move(e));
  }
  CV_RETURN_IF_ERROR(fsutil::FromRocks(it->status(), "read the change feed"));
  page.next_token = EncodeToken(t, after, mark);
  return page;
}

// Key rotation (rotate.cc): the call an event names.
Status ChangeEventCallId(std::string_view plain, std::string* call_id) {
  ChangeEvent e;
  CV_RETURN_IF_ERROR(DecodeEvent(plain, &e));
  *call_id = std::move(e.call_id);
  return Status::OK();
}

// Key rotation (rotate.cc) and tenant moves (move.cc): the feed read at `ro`.
std::unique_ptr<rocksdb::Iterator> NewFeedIterator(const TenantRef& t,
                                                   const rocksdb::ReadOptions& ro) {
  // Static: the bounds outlive every iterator.
  static const std::string lower(1, format::kChangePrefix);
  static const std::string upper(1, static_cast<char>(format::kChangePrefix + 1));
  static const rocksdb::Slice lo(lower), hi(upper);
  rocksdb::ReadOptions fro = ro;
  fro.iterate_lower_bound = &lo;
  fro.iterate_upper_bound = &hi;
  return std::unique_ptr<rocksdb::Iterator>(t->shard->db()->NewIterator(fro, t->cf));
}

Status LastChangeSequence(const TenantRef& t, const rocksdb::ReadOptions& ro, uint64_t* seq) {
  std::unique_ptr<rocksdb::Iterator> it = NewFeedIterator(t, ro);
  *seq = 0;
  it->SeekToLast();
  if (it->Valid()) {
    auto s = format::ParseChangeKey(it->key().ToStringView());
    if (!s) return Status::Corruption("malformed change feed key");
    *seq = *s;
  }
  return fsutil::FromRocks(it->status(), "read the change feed");
}

Status ChangedCallsSince(const TenantRef& t, const rocksdb::ReadOptions& ro, uint64_t pos,
                         const std::function<Status(std::string_view key, std::string_view sealed,
                                                    std::string call_id)>& each,
                         uint64_t* last, bool* gap) {
  *gap = false;
  *last = pos;
  std::unique_ptr<rocksdb::Iterator> it = NewFeedIterator(t, ro);
  for (it->Seek(format::ChangeKey(pos + 1)); it->Valid(); it->Next()) {
    auto seq = format::ParseChangeKey(it->key().ToStringView());
    if (!seq) return Status::Corruption("malformed change feed key");
    if (*seq != *last + 1) {
      *gap = true;  // sequences are dense: events after the position were trimmed
      *last = pos;
      return Status::OK();
    }
    std::string plain, call_id;
    CV_RETURN_IF_ERROR(t->OpenRecord(it->key().ToStringView(), it->value().ToStringView(), &plain));
    CV_RETURN_IF_ERROR(ChangeEventCallId(plain, &call_id));
    CV_RETURN_IF_ERROR(each(it->key().ToStringView(), it->value().ToStringView(), std::move(call_id)));
    *last = *seq;
  }
  return fsutil::FromRocks(it->status(), "read the change feed");
}

// Verify (inspect.cc): one event row.
Status CheckChangeEvent(std::string_view key, std::string_view plain) {
  if (!format::ParseChangeKey(key)) return Status::Corruption("malformed change feed key");
  ChangeEvent e;
  return DecodeEvent(plain, &e);
}

}  // namespace callvault
