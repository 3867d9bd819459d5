// ListCalls: the query planner, index streams merged in (started_at, call
// hash) order, filtering on sealed summaries, and the cursor.
#include <algorithm>
#include <set>

#include "callvault/limits.h"
#include "engine/calls_internal.h"
#include "engine/codec.h"
#include "engine/crypto.h"
#include "engine/fs_util.h"
#include "engine/indexing.h"
#include "engine/store_impl.h"
#include "engine/validate.h"
#include "format/coding.h"
#include "format/cursor.h"
#include "format/summary.h"

namespace callvault {

namespace {

using format::Part;

constexpr size_t kMaxFilterValues = 100;
constexpr size_t kCandidateBatch = 64;
// The updated_at index is used when fewer calls than this were updated
// since the filter's instant; they are then sorted in memory.
constexpr size_t kUpdatedPlanCap = 2000;

std::string Short(std::string h) {
  h.resize(format::kShortHashBytes);
  return h;
}

bool HasAny(const std::vector<std::string>& have, const std::set<std::string>& want) {
  for (const auto& h : have) {
    if (want.count(h)) return true;
  }
  return false;
}

// The query, normalised, with its attribute hashes.
struct Plan {
  ListQuery q;
  size_t limit = 0;
  std::set<std::string> owners, participants, tags;  // short hashes
  std::string crm, workspace;                        // short hashes
  std::vector<std::string> prefixes;                 // index prefixes to merge
  bool needs_summary = false;
  std::string query_hash;
};

Status Normalize(ListQuery* q) {
  if (q->owners.size() > kMaxFilterValues || q->participants.size() > kMaxFilterValues ||
      q->tags.size() > kMaxFilterValues) {
    return Status::InvalidArgument("filters: more than " + std::to_string(kMaxFilterValues) +
                                   " values in one list");
  }
  for (const auto& o : q->owners) CV_RETURN_IF_ERROR(validate::Id("owners[]", o));
  for (auto& p : q->participants) CV_RETURN_IF_ERROR(validate::NormalizeSubject(&p));
  for (const auto& t : q->tags) {
    if (t.empty() || t.size() > limits::kMaxShortTextBytes) {
      return Status::InvalidArgument("tags[]: empty or too long");
    }
  }
  if (q->crm) {
    CV_RETURN_IF_ERROR(validate::Id("crm.system", q->crm->system));
    CV_RETURN_IF_ERROR(validate::Id("crm.object_id", q->crm->object_id));
    if (static_cast<uint8_t>(q->crm->object_type) > static_cast<uint8_t>(CrmObjectType::kLead)) {
      return Status::InvalidArgument("crm.object_type: unknown enum value");
    }
  }
  if (!q->workspace_id.empty()) CV_RETURN_IF_ERROR(validate::Id("workspace_id", q->workspace_id));
  if (q->min_duration_ms > q->max_duration_ms) {
    return Status::InvalidArgument("min_duration_ms: above max_duration_ms");
  }
  if (q->updated_since < 0) return Status::InvalidArgument("updated_since: negative");
  // Sorted so that equal queries give equal cursors.
  std::sort(q->owners.begin(), q->owners.end());
  std::sort(q->participants.begin(), q->participants.end());
  std::sort(q->tags.begin(), q->tags.end());
  return Status::OK();
}

std::string QueryBytes(const ListQuery& q) {
  std::string m = "list2";
  auto str = [&m](std::string_view s) {
    format::PutFixed32LE(&m, static_cast<uint32_t>(s.size()));
    m.append(s);
  };
  auto list = [&](const std::vector<std::string>& v) {
    format::PutFixed32LE(&m, static_cast<uint32_t>(v.size()));
    for (const auto& s : v) str(s);
  };
  format::PutFixed64LE(&m, static_cast<uint64_t>(q.from));
  format::PutFixed64LE(&m, static_cast<uint64_t>(q.to));
  m.push_back(q.newest_first ? 1 : 0);
  list(q.owners);
  list(q.participants);
  m.push_back(q.crm ? 1 : 0);
  if (q.crm) {
    str(q.crm->system);
    m.push_back(static_cast<char>(q.crm->object_type));
    str(q.crm->object_id);
  }
  str(q.workspace_id);
  format::PutFixed64LE(&m, static_cast<uint64_t>(q.updated_since));
  m.push_back(q.direction ? static_cast<char>(1 + static_cast<int>(*q.direction)) : 0);
  m.push_back(q.scope ? static_cast<char>(1 + static_cast<int>(*q.scope)) : 0);
  format::PutFixed32LE(&m, q.min_duration_ms);
  format::PutFixed32LE(&m, q.max_duration_ms);
  list(q.tags);
  return m;
}

// The same predicate on decrypted metadata: every returned call is checked,
// so a forged index entry (one whose filter the index alone answers) is
// caught even when no summary was read.
bool MetaMatches(const Plan& p, const Call& c) {
  const ListQuery& q = p.q;
  if (c.started_at < q.from || c.started_at >= q.to) return false;
  if (!q.owners.empty() && !std::binary_search(q.owners.begin(), q.owners.end(), c.owner_user_id)) {
    return false;
  }
  if (!q.participants.empty()) {
    bool any = false;
    for (const auto& s : indexing::Subjects(c)) {
      any = any || std::binary_search(q.participants.begin(), q.participants.end(), s);
    }
    if (!any) return false;
  }
  if (q.crm) {
    bool any = false;
    for (const auto& l : c.crm_links) {
      any = any || (l.system == q.crm->system && l.object_type == q.crm->object_type &&
                    l.object_id == q.crm->object_id);
    }
    if (!any) return false;
  }
  if (!q.workspace_id.empty() && c.workspace_id != q.workspace_id) return false;
  if (q.updated_since && c.updated_at < q.updated_since) return false;
  if (q.direction && c.direction != *q.direction) return false;
  if (q.scope && c.scope != *q.scope) return false;
  if (c.duration_ms < q.min_duration_ms || c.duration_ms > q.max_duration_ms) return false;
  if (!q.tags.empty()) {
    bool any = false;
    for (const auto& t : c.tags) any = any || std::binary_search(q.tags.begin(), q.tags.end(), t);
    if (!any) return false;
  }
  return true;
}

bool Matches(const Plan& p, const format::Summary& s) {
  const ListQuery& q = p.q;
  if (s.started_at < q.from || s.started_at >= q.to) return false;
  if (!p.owners.empty() && !p.owners.count(s.owner)) return false;
  if (!p.participants.empty() && !HasAny(s.participants, p.participants)) return false;
  if (!p.crm.empty() && !HasAny(s.crm, {p.crm})) return false;
  if (!p.workspace.empty() && s.workspace != p.workspace) return false;
  if (q.updated_since && s.updated_at < q.updated_since) return false;
  if (q.direction && s.direction != static_cast<uint8_t>(*q.direction)) return false;
  if (q.scope && s.scope != static_cast<uint8_t>(*q.scope)) return false;
  if (s.duration_ms < q.min_duration_ms || s.duration_ms > q.max_duration_ms) return false;
  if (!p.tags.empty() && !HasAny(s.tags, p.tags)) return false;
  return true;
}

// One index prefix scanned in order within [from, to), after the cursor.
struct Stream {
  std::string prefix, lower, upper;
  rocksdb::Slice lo, hi;
  std::unique_ptr<rocksdb::Iterator> it;
  std::string_view Tail() const { return it->key().ToStringView().substr(prefix.size()); }
};

// (started_at, call hash) of a candidate, as the 24 ordered key bytes.
using Tail = std::string;

int64_t TailTime(const Tail& t) { return format::DecodeOrderedInt64(t.data()); }
std::string TailHash(const Tail& t) { return t.substr(8); }

// Reads and opens the sealed summary part of each call, in order.
Status ReadSummaries(const TenantRef& t, const rocksdb::ReadOptions& ro,
                     const std::vector<std::string>& hashes, std::vector<format::Summary>* out) {
  std::vector<std::string> keys;
  keys.reserve(hashes.size());
  for (const auto& h : hashes) keys.push_back(format::CallKey(h, Part::kSummary));
  std::vector<rocksdb::Slice> ks(keys.begin(), keys.end());
  std::vector<rocksdb::PinnableSlice> vals(keys.size());
  std::vector<rocksdb::Status> sts(keys.size());
  t->shard->db()->MultiGet(ro, t->cf, keys.size(), ks.data(), vals.data(), sts.data());
  out->clear();
  for (size_t i = 0; i < keys.size(); ++i) {
    if (sts[i].IsNotFound()) return Status::Corruption("index names a missing call");
    CV_RETURN_IF_ERROR(fsutil::FromRocks(sts[i], "read call summary"));
    std::string plain;
    CV_RETURN_IF_ERROR(t->OpenRecord(keys[i], vals[i].ToStringView(), &plain));
    auto sum = format::DecodeSummary(plain);
    if (!sum) return Status::Corruption("call summary is malformed");
    out->push_back(std::move(*sum));
  }
  return Status::OK();
}

}  // namespace

Result<CallPage> Store::Impl::ListCalls(std::string_view tenant_id, const ListQuery& query,
                                        uint64_t* count) {
  Plan p;
  p.q = query;
  p.limit = query.limit == 0 ? limits::kDefaultListLimit : query.limit;
  if (count != nullptr) p.limit = limits::kMaxListLimit;  // a count has no page
  if (p.limit > limits::kMaxListLimit) {
    return Status::InvalidArgument("limit: more than " + std::to_string(limits::kMaxListLimit));
  }
  if (query.from > query.to) return Status::InvalidArgument("from: after to");
  CV_RETURN_IF_ERROR(Normalize(&p.q));
  CV_ASSIGN_OR_RETURN(TenantRef t, Acquire(tenant_id));
  const SecretBytes& k = t->index_key;
  const ListQuery& q = p.q;
  p.query_hash = crypto::Mac16(t->cursor_key, QueryBytes(q));
  std::optional<format::Cursor> cursor;
  if (!q.cursor.empty()) {
    cursor = format::DecodeCursor(q.cursor);
    if (!cursor) return Status::InvalidArgument("cursor: malformed");
    if (!crypto::ConstantTimeEquals(crypto::Mac16(t->cursor_key, format::CursorMacInput(*cursor)),
                                    cursor->mac) ||
        !crypto::ConstantTimeEquals(cursor->query_hash, p.query_hash)) {
      return Status::InvalidArgument("cursor: not issued for this tenant and query");
    }
  }
  for (const auto& o : q.owners) p.owners.insert(Short(indexing::OwnerHash(k, o)));
  for (const auto& v : q.participants) p.participants.insert(Short(indexing::ParticipantHash(k, v)));
  for (const auto& g : q.tags) p.tags.insert(Short(indexing::TagHash(k, g)));
  if (q.crm) p.crm = Short(indexing::CrmHash(k, q.crm->system, q.crm->object_type, q.crm->object_id));
  if (!q.workspace_id.empty()) p.workspace = Short(indexing::WorkspaceHash(k, q.workspace_id));

  // The plan: the most selective index the query names.
  int covered = 0;  // which filter the chosen index answers by itself
  if (!q.participants.empty()) {
    for (const auto& v : q.participants) {
      p.prefixes.push_back(format::AttributeIndexPrefix(format::kParticipantIndexPrefix, indexing::ParticipantHash(k, v)));
    }
    covered = 1;
  } else if (q.crm) {
    p.prefixes.push_back(format::AttributeIndexPrefix(
        format::kCrmIndexPrefix, indexing::CrmHash(k, q.crm->system, q.crm->object_type, q.crm->object_id)));
    covered = 2;
  } else if (!q.owners.empty()) {
    for (const auto& o : q.owners) {
      p.prefixes.push_back(format::AttributeIndexPrefix(format::kOwnerIndexPrefix, indexing::OwnerHash(k, o)));
    }
    covered = 3;
  } else if (!q.workspace_id.empty()) {
    p.prefixes.push_back(format::AttributeIndexPrefix(format::kWorkspaceIndexPrefix, indexing::WorkspaceHash(k, q.workspace_id)));
    covered = 4;
  } else {
    p.prefixes.push_back(std::string(1, format::kTimeIndexPrefix));
  }
  int filters = (!q.participants.empty()) + (q.crm.has_value()) + (!q.owners.empty()) +
                (!q.workspace_id.empty()) + (q.updated_since != 0) + q.direction.has_value() +
                q.scope.has_value() + (q.min_duration_ms != 0) +
                (q.max_duration_ms != UINT32_MAX) + (!q.tags.empty());
  p.needs_summary = filters > (covered ? 1 : 0);
  // A count reads no metadata, so the sealed summary decides every candidate.
  if (count != nullptr) p.needs_summary = true;

  rocksdb::DB* db = t->shard->db();
  const rocksdb::Snapshot* snap = db->GetSnapshot();
  struct SnapGuard {
    rocksdb::DB* db;
    const rocksdb::Snapshot* s;
    ~SnapGuard() { db->ReleaseSnapshot(s); }
  } guard{db, snap};
  rocksdb::ReadOptions ro;
  ro.snapshot = snap;

  std::string resume_tail;
  if (cursor) {
    format::PutOrderedInt64(&resume_tail, cursor->last_started_at);
    resume_tail += cursor->last_hash;
  }
  auto after_cursor = [&](std::string_view tail) {
    if (!cursor) return true;
    return q.newest_first ? tail < resume_tail : tail > resume_tail;
  };

  // Candidates in order, without duplicates.
  std::vector<Tail> candidates;
  bool exhausted = false;
  std::vector<Stream> streams;
  std::vector<Tail> materialized;  // the updated_at plan
  size_t materialized_pos = 0;
  bool use_updated = false;
  if (covered == 0 && q.updated_since != 0) {
    // Few calls updated since the instant? Then scan them and sort.
    std::string lower(1, format::kUpdatedIndexPrefix);
    format::PutOrderedInt64(&lower, q.updated_since);
    std::string upper(1, static_cast<char>(format::kUpdatedIndexPrefix + 1));
    rocksdb::Slice lo(lower), hi(upper);
    rocksdb::ReadOptions uro = ro;
    uro.iterate_lower_bound = &lo;
    uro.iterate_upper_bound = &hi;
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(uro, t->cf));
    std::vector<std::string> hashes;
    for (it->SeekToFirst(); it->Valid() && hashes.size() <= kUpdatedPlanCap; it->Next()) {
      auto tail = format::ParseIndexTail(it->key().ToStringView());
      if (!tail) return Status::Corruption("updated index holds a malformed key");
      hashes.emplace_back(tail->call_hash);
    }
    CV_RETURN_IF_ERROR(fsutil::FromRocks(it->status(), "scan updated index"));
    if (hashes.size() <= kUpdatedPlanCap) {
      use_updated = true;
      std::vector<format::Summary> sums;
      CV_RETURN_IF_ERROR(ReadSummaries(t, ro, hashes, &sums));
      for (size_t i = 0; i < sums.size(); ++i) {
        if (!Matches(p, sums[i])) continue;
        Tail tail;
        format::PutOrderedInt64(&tail, sums[i].started_at);
        tail += hashes[i];
        if (after_cursor(tail)) materialized.push_back(std::move(tail));
      }
      std::sort(materialized.begin(), materialized.end());
      if (q.newest_first) std::reverse(materialized.begin(), materialized.end());
      p.needs_summary = false;  // already filtered
      if (count != nullptr) {
        *count = materialized.size();
        return CallPage{};
      }
    }
  }
  if (!use_updated) {
    streams.resize(p.prefixes.size());
    for (size_t i = 0; i < p.prefixes.size(); ++i) {
      Stream& s = streams[i];
      s.prefix = p.prefixes[i];
      s.lower = s.prefix;
      format::PutOrderedInt64(&s.lower, q.from);
      s.upper = s.prefix;
      format::PutOrderedInt64(&s.upper, q.to);
      s.lo = s.lower;
      s.hi = s.upper;
      rocksdb::ReadOptions sro = ro;
      sro.iterate_lower_bound = &s.lo;
      sro.iterate_upper_bound = &s.hi;
      s.it.reset(db->NewIterator(sro, t->cf));
      if (cursor) {
        std::string resume = s.prefix + resume_tail;
        if (q.newest_first) {
          s.it->SeekForPrev(resume);
          if (s.it->Valid() && s.it->key() == resume) s.it->Prev();
        } else {
          s.it->Seek(resume);
          if (s.it->Valid() && s.it->key() == resume) s.it->Next();
        }
      } else if (q.newest_first) {
        s.it->SeekToLast();
      } else {
        s.it->SeekToFirst();
      }
    }
  }
  // The next candidate from the merged streams, or false at the end.
  auto next_candidate = [&](Tail* out) -> Result<bool> {
    if (use_updated) {
      if (materialized_pos == materialized.size()) return false;
      *out = materialized[materialized_pos++];
      return true;
    }
    Stream* best = nullptr;
    for (auto& s : streams) {
      if (!s.it->Valid()) {
        CV_RETURN_IF_ERROR(fsutil::FromRocks(s.it->status(), "scan index"));
        continue;
      }
      if (s.it->key().size() != s.prefix.size() + 8 + format::kHashBytes) {
        return Status::Corruption("index holds a malformed key");
      }
      if (best == nullptr || (q.newest_first ? s.Tail() > best->Tail() : s.Tail() < best->Tail())) {
        best = &s;
      }
    }
    if (best == nullptr) return false;
    *out = std::string(best->Tail());
    // Advance every stream positioned on the same call (it matched twice).
    for (auto& s : streams) {
      if (s.it->Valid() && s.Tail() == *out) q.newest_first ? s.it->Prev() : s.it->Next();
    }
    return true;
  };

  std::vector<Tail> matches;
  while ((count != nullptr || matches.size() <= p.limit) && !exhausted) {
    candidates.clear();
    while (candidates.size() < kCandidateBatch) {
      Tail c;
      CV_ASSIGN_OR_RETURN(bool more, next_candidate(&c));
      if (!more) {
        exhausted = true;
        break;
      }
      candidates.push_back(std::move(c));
    }
    if (!p.needs_summary) {
      for (auto& c : candidates) matches.push_back(std::move(c));
      continue;
    }
    std::vector<std::string> hashes;
    for (const auto& c : candidates) hashes.push_back(TailHash(c));
    std::vector<format::Summary> sums;
    CV_RETURN_IF_ERROR(ReadSummaries(t, ro, hashes, &sums));
    for (size_t i = 0; i < sums.size(); ++i) {
      // A stale or forged index entry never matches: the sealed summary decides.
      if (sums[i].started_at == TailTime(candidates[i]) && Matches(p, sums[i])) {
        if (count != nullptr) ++*count;
        else matches.push_back(candidates[i]);
      }
    }
  }
  if (count != nullptr) return CallPage{};
  bool more = matches.size() > p.limit;
  if (more) matches.resize(p.limit);

  CallPage page;
  std::vector<std::string> keys;
  for (const auto& m : matches) keys.push_back(format::CallKey(TailHash(m), Part::kMeta));
  std::vector<rocksdb::Slice> ks(keys.begin(), keys.end());
  std::vector<rocksdb::PinnableSlice> vals(keys.size());
  std::vector<rocksdb::Status> sts(keys.size());
  db->MultiGet(ro, t->cf, keys.size(), ks.data(), vals.data(), sts.data());
  for (size_t i = 0; i < keys.size(); ++i) {
    if (sts[i].IsNotFound()) return Status::Corruption("index names a missing call");
    CV_RETURN_IF_ERROR(fsutil::FromRocks(sts[i], "read call metadata"));
    std::string plain;
    CV_RETURN_IF_ERROR(t->OpenRecord(keys[i], vals[i].ToStringView(), &plain));
    Call c;
    uint32_t parts = 0;
    CV_RETURN_IF_ERROR(codec::DecodeMeta(plain, &c, &parts));
    if (c.started_at != TailTime(matches[i]) || !MetaMatches(p, c)) {
      return Status::Corruption("an index entry disagrees with its call (tampered index)");
    }
    c.participants.clear();
    page.calls.push_back(std::move(c));
  }
  if (more && !matches.empty()) {
    format::Cursor c;
    c.newest_first = q.newest_first;
    c.last_started_at = TailTime(matches.back());
    c.last_hash = TailHash(matches.back());
    c.query_hash = p.query_hash;
    c.mac = crypto::Mac16(t->cursor_key, format::CursorMacInput(c));
    page.next_cursor = format::EncodeCursor(c);
  }
  return page;
}

}  // namespace callvault
