// Calls: put (single and batch, idempotent on source_call_id), get by parts,
// delete, and listing by started_at with a tamper-evident cursor.
#include <rocksdb/write_batch.h>

#include <set>

#include "callvault/limits.h"
#include "engine/codec.h"
#include "engine/crypto.h"
#include "engine/fs_util.h"
#include "engine/store_impl.h"
#include "engine/validate.h"
#include "format/coding.h"
#include "format/cursor.h"

namespace callvault {

namespace {

using format::Part;

// Blind-hash domains under the tenant's index subkey. Do not change.
constexpr char kCallDomain = 'C';
constexpr char kSourceDomain = 'S';

std::string CallHash(const TenantRef& t, std::string_view call_id) {
  return crypto::BlindHash(t->index_key, kCallDomain, call_id);
}

std::string SourceHash(const TenantRef& t, const Call& c) {
  if (c.source_call_id.empty()) return "";
  std::string v(1, static_cast<char>(c.source_system));
  v += c.source_call_id;
  return crypto::BlindHash(t->index_key, kSourceDomain, v);
}

// Reads and opens one sealed value; *found false when absent.
Status GetSealed(const TenantRef& t, const rocksdb::ReadOptions& ro, const std::string& key,
                 std::string* plain, bool* found) {
  std::string sealed;
  rocksdb::Status s = t->shard->db()->Get(ro, t->cf, key, &sealed);
  if (s.IsNotFound()) {
    *found = false;
    return Status::OK();
  }
  CV_RETURN_IF_ERROR(fsutil::FromRocks(s, "read record"));
  *found = true;
  return record::Open(t->record_key, t->binding(), key, sealed, plain);
}

Status PutSealed(const TenantRef& t, rocksdb::WriteBatch* b, const std::string& key,
                 std::string_view plain) {
  return fsutil::FromRocks(b->Put(t->cf, key, record::Seal(t->record_key, t->binding(), key, plain)),
                           "write batch");
}

Status Del(const TenantRef& t, rocksdb::WriteBatch* b, const std::string& key) {
  return fsutil::FromRocks(b->Delete(t->cf, key), "write batch");
}

std::string QueryHash(const TenantRef& t, const ListQuery& q) {
  std::string m = "list1";
  format::PutFixed64LE(&m, static_cast<uint64_t>(q.from));
  format::PutFixed64LE(&m, static_cast<uint64_t>(q.to));
  m.push_back(q.newest_first ? 1 : 0);
  return crypto::Mac16(t->cursor_key, m);
}

}  // namespace

Status Store::Impl::ReadMeta(TenantRef& t, std::string_view call_hash, Call* out, uint32_t* parts,
                             bool* found) {
  std::string plain;
  CV_RETURN_IF_ERROR(GetSealed(t, rocksdb::ReadOptions(), format::CallKey(call_hash, Part::kMeta),
                               &plain, found));
  if (!*found) return Status::OK();
  return codec::DecodeMeta(plain, out, parts);
}

Status Store::Impl::PlanPut(TenantRef& t, Call call, int64_t now, rocksdb::WriteBatch* b,
                            PutResult* result) {
  std::string target = CallHash(t, call.call_id);
  const std::string source = SourceHash(t, call);
  if (!source.empty()) {
    std::string existing;
    bool found = false;
    CV_RETURN_IF_ERROR(GetSealed(t, rocksdb::ReadOptions(), format::SourceIndexKey(source),
                                 &existing, &found));
    if (found) {
      if (existing.size() != format::kHashBytes) {
        return Status::Corruption("source index entry has a bad size");
      }
      target = existing;
    }
  }
  Call old;
  uint32_t old_parts = 0;
  bool found = false;
  CV_RETURN_IF_ERROR(ReadMeta(t, target, &old, &old_parts, &found));
  if (found) call.call_id = old.call_id;  // re-ingest keeps the stored id
  call.created_at = call.created_at ? call.created_at : (found ? old.created_at : now);
  call.updated_at = call.updated_at ? call.updated_at : now;
  uint32_t parts = 0;
  if (!call.transcript.empty()) parts |= kPartTranscript;
  if (!call.insights.empty()) parts |= kPartInsights;

  CV_RETURN_IF_ERROR(PutSealed(t, b, format::CallKey(target, Part::kMeta), codec::EncodeMeta(call, parts)));
  if (parts & kPartTranscript) {
    CV_RETURN_IF_ERROR(PutSealed(t, b, format::CallKey(target, Part::kTranscript), codec::EncodeTranscript(call)));
  } else if (old_parts & kPartTranscript) {
    CV_RETURN_IF_ERROR(Del(t, b, format::CallKey(target, Part::kTranscript)));
  }
  if (parts & kPartInsights) {
    CV_RETURN_IF_ERROR(PutSealed(t, b, format::CallKey(target, Part::kInsights), codec::EncodeInsights(call)));
  } else if (old_parts & kPartInsights) {
    CV_RETURN_IF_ERROR(Del(t, b, format::CallKey(target, Part::kInsights)));
  }
  if (found && old.started_at != call.started_at) {
    CV_RETURN_IF_ERROR(Del(t, b, format::TimeIndexKey(old.started_at, target)));
  }
  CV_RETURN_IF_ERROR(PutSealed(t, b, format::TimeIndexKey(call.started_at, target), ""));
  if (found) {
    std::string old_source = SourceHash(t, old);
    if (!old_source.empty() && old_source != source) {
      CV_RETURN_IF_ERROR(Del(t, b, format::SourceIndexKey(old_source)));
    }
  }
  if (!source.empty()) CV_RETURN_IF_ERROR(PutSealed(t, b, format::SourceIndexKey(source), target));
  result->call_id = call.call_id;
  result->created = !found;
  return Status::OK();
}

Result<std::vector<PutResult>> Store::Impl::PutCalls(std::string_view tenant_id,
                                                     std::vector<Call> calls) {
  if (calls.empty()) return Status::InvalidArgument("no calls to put");
  if (calls.size() > limits::kMaxBatchCalls) {
    return Status::InvalidArgument("batch holds more than " +
                                   std::to_string(limits::kMaxBatchCalls) + " calls");
  }
  std::set<std::string> ids, sources;
  for (size_t i = 0; i < calls.size(); ++i) {
    Status s = validate::NormalizeCall(&calls[i]);
    const std::string where = calls.size() > 1 ? "calls[" + std::to_string(i) + "]." : "";
    if (!s.ok()) return Status(s.code(), where + s.message());
    if (!ids.insert(calls[i].call_id).second) {
      return Status::InvalidArgument(where + "call_id: appears twice in the batch");
    }
    if (!calls[i].source_call_id.empty() &&
        !sources.insert(std::to_string(static_cast<int>(calls[i].source_system)) + "/" +
                        calls[i].source_call_id).second) {
      return Status::InvalidArgument(where + "source_call_id: appears twice in the batch");
    }
  }
  CV_ASSIGN_OR_RETURN(TenantRef t, Acquire(tenant_id));
  std::lock_guard<std::mutex> w(t->write_mu);
  rocksdb::WriteBatch batch;
  std::vector<PutResult> results(calls.size());
  const int64_t now = NowMicros();
  for (size_t i = 0; i < calls.size(); ++i) {
    CV_RETURN_IF_ERROR(PlanPut(t, std::move(calls[i]), now, &batch, &results[i]));
  }
  CV_RETURN_IF_ERROR(fsutil::FromRocks(t->shard->db()->Write(WriteOpts(), &batch), "write calls"));
  return results;
}

Result<Call> Store::Impl::GetCall(std::string_view tenant_id, std::string_view call_id,
                                  uint32_t parts) {
  CV_RETURN_IF_ERROR(validate::Id("call_id", call_id));
  if (parts & ~static_cast<uint32_t>(kPartAll)) return Status::InvalidArgument("parts: unknown bits");
  CV_ASSIGN_OR_RETURN(TenantRef t, Acquire(tenant_id));
  const std::string h = CallHash(t, call_id);
  Call call;
  uint32_t present = 0;
  bool found = false;
  CV_RETURN_IF_ERROR(ReadMeta(t, h, &call, &present, &found));
  if (!found) return Status::NotFound("no such call");
  if (!(parts & kPartParticipants)) call.participants.clear();
  struct PartRead { uint32_t bit; Part part; };
  for (PartRead p : {PartRead{kPartTranscript, Part::kTranscript}, PartRead{kPartInsights, Part::kInsights}}) {
    if (!(parts & p.bit) || !(present & p.bit)) continue;
    std::string plain;
    CV_RETURN_IF_ERROR(GetSealed(t, rocksdb::ReadOptions(), format::CallKey(h, p.part), &plain, &found));
    if (!found) return Status::Corruption("a stored part of the call is missing");
    CV_RETURN_IF_ERROR(p.part == Part::kTranscript ? codec::DecodeTranscript(plain, &call)
                                                   : codec::DecodeInsights(plain, &call));
  }
  return call;
}

Status Store::Impl::DeleteCall(std::string_view tenant_id, std::string_view call_id) {
  CV_RETURN_IF_ERROR(validate::Id("call_id", call_id));
  CV_ASSIGN_OR_RETURN(TenantRef t, Acquire(tenant_id));
  std::lock_guard<std::mutex> w(t->write_mu);
  const std::string h = CallHash(t, call_id);
  Call old;
  uint32_t parts = 0;
  bool found = false;
  CV_RETURN_IF_ERROR(ReadMeta(t, h, &old, &parts, &found));
  if (!found) return Status::NotFound("no such call");
  rocksdb::WriteBatch b;
  for (Part p : {Part::kMeta, Part::kTranscript, Part::kInsights}) {
    CV_RETURN_IF_ERROR(Del(t, &b, format::CallKey(h, p)));
  }
  CV_RETURN_IF_ERROR(Del(t, &b, format::TimeIndexKey(old.started_at, h)));
  std::string source = SourceHash(t, old);
  if (!source.empty()) CV_RETURN_IF_ERROR(Del(t, &b, format::SourceIndexKey(source)));
  return fsutil::FromRocks(t->shard->db()->Write(WriteOpts(), &b), "delete call");
}

Result<CallPage> Store::Impl::ListCalls(std::string_view tenant_id, const ListQuery& q) {
  size_t limit = q.limit == 0 ? limits::kDefaultListLimit : q.limit;
  if (limit > limits::kMaxListLimit) {
    return Status::InvalidArgument("limit: more than " + std::to_string(limits::kMaxListLimit));
  }
  if (q.from > q.to) return Status::InvalidArgument("from: after to");
  CV_ASSIGN_OR_RETURN(TenantRef t, Acquire(tenant_id));
  const std::string qhash = QueryHash(t, q);
  std::optional<format::Cursor> cursor;
  if (!q.cursor.empty()) {
    cursor = format::DecodeCursor(q.cursor);
    if (!cursor) return Status::InvalidArgument("cursor: malformed");
    if (!crypto::ConstantTimeEquals(crypto::Mac16(t->cursor_key, format::CursorMacInput(*cursor)),
                                    cursor->mac) ||
        !crypto::ConstantTimeEquals(cursor->query_hash, qhash)) {
      return Status::InvalidArgument("cursor: not issued for this tenant and query");
    }
  }
  rocksdb::DB* db = t->shard->db();
  const rocksdb::Snapshot* snap = db->GetSnapshot();
  struct SnapGuard {
    rocksdb::DB* db; const rocksdb::Snapshot* s;
    ~SnapGuard() { db->ReleaseSnapshot(s); }
  } guard{db, snap};
  const std::string lower = format::TimeIndexKey(q.from, "");
  const std::string upper = format::TimeIndexKey(q.to, "");
  rocksdb::Slice lo(lower), hi(upper);
  rocksdb::ReadOptions ro;
  ro.snapshot = snap;
  ro.iterate_lower_bound = &lo;
  ro.iterate_upper_bound = &hi;
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(ro, t->cf));
  std::string resume;
  if (cursor) resume = format::TimeIndexKey(cursor->last_started_at, cursor->last_hash);
  if (q.newest_first) {
    if (cursor) {
      it->SeekForPrev(resume);
      if (it->Valid() && it->key() == resume) it->Prev();
    } else {
      it->SeekToLast();
    }
  } else {
    if (cursor) {
      it->Seek(resume);
      if (it->Valid() && it->key() == resume) it->Next();
    } else {
      it->SeekToFirst();
    }
  }
  std::vector<std::pair<int64_t, std::string>> hits;  // (started_at, hash)
  bool more = false;
  for (; it->Valid(); q.newest_first ? it->Prev() : it->Next()) {
    auto parsed = format::ParseTimeIndexKey(it->key().ToStringView());
    if (!parsed) return Status::Corruption("time index holds a malformed key");
    if (hits.size() == limit) {
      more = true;
      break;
    }
    std::string empty;
    CV_RETURN_IF_ERROR(record::Open(t->record_key, t->binding(), it->key().ToStringView(),
                                    it->value().ToStringView(), &empty));
    hits.emplace_back(parsed->started_at, std::string(parsed->call_hash));
  }
  CV_RETURN_IF_ERROR(fsutil::FromRocks(it->status(), "scan time index"));

  CallPage page;
  std::vector<std::string> keys;
  keys.reserve(hits.size());
  for (const auto& h : hits) keys.push_back(format::CallKey(h.second, Part::kMeta));
  std::vector<rocksdb::Slice> key_slices(keys.begin(), keys.end());
  std::vector<rocksdb::PinnableSlice> values(keys.size());
  std::vector<rocksdb::Status> statuses(keys.size());
  db->MultiGet(ro, t->cf, keys.size(), key_slices.data(), values.data(), statuses.data());
  for (size_t i = 0; i < keys.size(); ++i) {
    if (statuses[i].IsNotFound()) return Status::Corruption("time index names a missing call");
    CV_RETURN_IF_ERROR(fsutil::FromRocks(statuses[i], "read call metadata"));
    std::string plain;
    CV_RETURN_IF_ERROR(record::Open(t->record_key, t->binding(), keys[i], values[i].ToStringView(), &plain));
    Call c;
    uint32_t parts = 0;
    CV_RETURN_IF_ERROR(codec::DecodeMeta(plain, &c, &parts));
    c.participants.clear();
    page.calls.push_back(std::move(c));
  }
  if (more && !hits.empty()) {
    format::Cursor c;
    c.newest_first = q.newest_first;
    c.last_started_at = hits.back().first;
    c.last_hash = hits.back().second;
    c.query_hash = qhash;
    c.mac = crypto::Mac16(t->cursor_key, format::CursorMacInput(c));
    page.next_cursor = format::EncodeCursor(c);
  }
  return page;
}

Result<uint64_t> Store::Impl::CountCalls(std::string_view tenant_id) {
  CV_ASSIGN_OR_RETURN(TenantRef t, Acquire(tenant_id));
  const std::string lower(1, format::kTimeIndexPrefix);
  const std::string upper(1, static_cast<char>(format::kTimeIndexPrefix + 1));
  rocksdb::Slice lo(lower), hi(upper);
  rocksdb::ReadOptions ro;
  ro.iterate_lower_bound = &lo;
  ro.iterate_upper_bound = &hi;
  std::unique_ptr<rocksdb::Iterator> it(t->shard->db()->NewIterator(ro, t->cf));
  uint64_t n = 0;
  for (it->SeekToFirst(); it->Valid(); it->Next()) ++n;
  CV_RETURN_IF_ERROR(fsutil::FromRocks(it->status(), "scan time index"));
  return n;
}

}  // namespace callvault
