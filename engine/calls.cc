// Calls: put (single and batch, idempotent on source_call_id), get by parts,
// transcript windows, delete. Listing is in list.cc, data-subject requests
// in subjects.cc.
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <optional>
#include <set>

#include "callvault/limits.h"
#include "engine/calls_internal.h"
#include "engine/codec.h"
#include "engine/fs_util.h"
#include "engine/indexing.h"
#include "engine/reseal.h"
#include "engine/store_impl.h"
#include "engine/validate.h"
#include "format/coding.h"

namespace callvault {

using format::Part;

namespace calls {

Status GetSealed(const TenantRef& t, const rocksdb::ReadOptions& ro, const std::string& key,
                 std::string* plain, bool* found, std::string* stored) {
  std::string sealed;
  rocksdb::Status s = t->shard->db()->Get(ro, t->cf, key, &sealed);
  if (s.IsNotFound()) {
    *found = false;
    return Status::OK();
  }
  CV_RETURN_IF_ERROR(fsutil::FromRocks(s, "read record"));
  *found = true;
  CV_RETURN_IF_ERROR(t->OpenRecord(key, sealed, plain));
  if (stored != nullptr) *stored = std::move(sealed);
  return Status::OK();
}

Status ReadMeta(const TenantRef& t, std::string_view call_hash, Call* out, uint32_t* parts,
                bool* found) {
  std::string plain;
  CV_RETURN_IF_ERROR(GetSealed(t, rocksdb::ReadOptions(), format::CallKey(call_hash, Part::kMeta),
                               &plain, found));
  if (!*found) return Status::OK();
  return codec::DecodeMeta(plain, out, parts);
}

Status ReadPart(const TenantRef& t, std::string_view call_hash, Part part, Call* call) {
  std::string plain;
  bool found = false;
  CV_RETURN_IF_ERROR(GetSealed(t, rocksdb::ReadOptions(), format::CallKey(call_hash, part), &plain, &found));
  if (!found) return Status::Corruption("a stored part of the call is missing");
  return part == Part::kTranscript ? codec::DecodeTranscript(plain, call)
                                   : codec::DecodeInsights(plain, call);
}

namespace {
// A call's metadata, transcript and insights records are left uncompressed
// for the reseal filter when the store defers compression (decision 0052)
// and they stay below the shards' min_blob_size sealed (DeferrableSize,
// decision 0079), except in a key rotation's copy (Tenant::compress_writes:
// no filter reaches its family before the switch). Not its summary
// (DeferredPart); the rows of the version counter and the source index are
// smaller than anything compressed. A record larger than readers accept
// once sealed is refused here, before anything is written: acknowledged, it
// could never be read back. Under today's input limits none is (the largest
// insights, 17 MB of text, compress to at most ~14 MB); the check keeps a
// limit that grows from turning into silent loss.
//
// How much a batch defers (decision 0081). A record is deferred only while
// its batch, with it, holds at most kDeferredBatchBytes: the rest of a
// larger batch is compressed by the writer, so one PutCalls puts at most
// that much more into the WAL and a memtable than compressed records would
// (10,000 calls of records just under 1 MiB would otherwise be ~10 GB in
// one write). A long record (kLongRecordBytes and more) is deferred only in
// a batch of at most kLongRecordBatchBytes, i.e. a put of one or a few
// calls: there the writer's compression of it (~1.5 ms for 300 KiB) is
// most of the caller's CPU and its uncompressed bytes cost the WAL's sync
// less. In a group commit of many calls, both cores are busy and the WAL
// bytes and flushes cost more than the compression they move (the
// harness's batches of 100 calls ran 14% slower with them deferred).
constexpr size_t kDeferredBatchBytes = 16u << 20;
constexpr size_t kLongRecordBytes = 256u << 10;
constexpr size_t kLongRecordBatchBytes = 1u << 20;

bool Defer(const TenantRef& t, const rocksdb::WriteBatch& b, const std::string& key,
           size_t plain_bytes) {
  if (!t->shard->defer_compression() || t->compress_writes || !DeferrableSize(plain_bytes) ||
      !DeferredRow(key)) {
    return false;
  }
  const size_t within =
      plain_bytes < kLongRecordBytes ? kDeferredBatchBytes : kLongRecordBatchBytes;
  return b.GetDataSize() + plain_bytes <= within;
}

Status PutSealed(const TenantRef& t, rocksdb::WriteBatch* b, const std::string& key,
                 std::string_view plain) {
  const bool defer = Defer(t, *b, key, plain.size());
  std::string sealed = t->SealRecord(key, plain, !defer);
  if (sealed.size() > limits::kMaxRecordBytes) {
    return Status::InvalidArgument(
        "a record of the call is " + std::to_string(sealed.size()) +
        " bytes compressed and sealed, above the " +
        std::to_string(limits::kMaxRecordBytes >> 20) +
        " MiB every reader accepts: make its transcript or insights smaller");
  }
  return fsutil::FromRocks(b->Put(t->cf, key, sealed), "write batch");
}

Status Del(const TenantRef& t, rocksdb::WriteBatch* b, const std::string& key) {
  return fsutil::FromRocks(b->Delete(t->cf, key), "write batch");
}
}  // namespace

Status PlanWrite(const TenantRef& t, const Call* old, uint32_t old_parts, const Call& call,
                 std::string_view hash, rocksdb::WriteBatch* b, uint32_t rewrite) {
  const SecretBytes& k = t->index_key;
  // A part not rewritten keeps its stored record (and its bit).
  uint32_t parts = old_parts & (kPartTranscript | kPartInsights) & ~rewrite;
  if ((rewrite & kPartTranscript) && !call.transcript.empty()) parts |= kPartTranscript;
  if ((rewrite & kPartInsights) && !call.insights.empty()) parts |= kPartInsights;
  CV_RETURN_IF_ERROR(PutSealed(t, b, format::CallKey(hash, Part::kMeta), codec::EncodeMeta(call, parts)));
  const indexing::AttributeHashes hashes = indexing::HashAttributes(k, call);
  CV_RETURN_IF_ERROR(PutSealed(t, b, format::CallKey(hash, Part::kSummary),
                               indexing::SummaryBytes(k, hashes, call)));
  if (rewrite & kPartTranscript) {
    if (parts & kPartTranscript) {
      CV_RETURN_IF_ERROR(PutSealed(t, b, format::CallKey(hash, Part::kTranscript), codec::EncodeTranscript(call)));
    } else if (old_parts & kPartTranscript) {
      CV_RETURN_IF_ERROR(Del(t, b, format::CallKey(hash, Part::kTranscript)));
    }
  }
  if (rewrite & kPartInsights) {
    if (parts & kPartInsights) {
      CV_RETURN_IF_ERROR(PutSealed(t, b, format::CallKey(hash, Part::kInsights), codec::EncodeInsights(call)));
    } else if (old_parts & kPartInsights) {
      CV_RETURN_IF_ERROR(Del(t, b, format::CallKey(hash, Part::kInsights)));
    }
  }
  std::set<std::string> keys = indexing::IndexKeys(hashes, call, hash);
  const std::string source = indexing::SourceHash(k, call);
  if (old != nullptr) {
    for (const auto& key : indexing::IndexKeys(k, *old, hash)) {
      if (!keys.count(key)) CV_RETURN_IF_ERROR(Del(t, b, key));
    }
    std::string old_source = indexing::SourceHash(k, *old);
    if (!old_source.empty() && old_source != source) {
      CV_RETURN_IF_ERROR(Del(t, b, format::SourceIndexKey(old_source)));
    }
  }
  for (const auto& key : keys) {
    CV_RETURN_IF_ERROR(fsutil::FromRocks(b->Put(t->cf, key, rocksdb::Slice()), "write batch"));
  }
  if (!source.empty()) CV_RETURN_IF_ERROR(PutSealed(t, b, format::SourceIndexKey(source), hash));
  return Status::OK();
}

Status ReadVersionCounter(const TenantRef& t, uint64_t* counter) {
  std::string plain;
  bool found = false;
  CV_RETURN_IF_ERROR(GetSealed(t, rocksdb::ReadOptions(), format::VersionCounterKey(), &plain, &found));
  if (!found) {
    // A tenant of a format 1 store: each of its calls is version 1.
    *counter = 1;
    return Status::OK();
  }
  if (plain.size() != 8) return Status::Corruption("malformed version counter");
  *counter = format::DecodeFixed64BE(plain.data());
  if (*counter == 0) return Status::Corruption("malformed version counter");
  return Status::OK();
}

Status PutVersionCounter(const TenantRef& t, rocksdb::WriteBatch* b, uint64_t counter) {
  std::string plain;
  format::PutFixed64BE(&plain, counter);
  return PutSealed(t, b, format::VersionCounterKey(), plain);
}

uint64_t NextVersion(uint64_t* counter, uint64_t old_version) {
  *counter = std::max(*counter, old_version) + 1;
  return *counter;
}

Status CheckExpected(std::optional<uint64_t> expected, bool found, uint64_t version) {
  if (!expected) return Status::OK();
  if (*expected == 0) {
    if (found) return Status::Conflict("the call exists (version " + std::to_string(version) +
                                       "); expected version 0 (no such call)");
    return Status::OK();
  }
  if (!found) {
    return Status::Conflict("no such call; expected version " + std::to_string(*expected));
  }
  if (version != *expected) {
    return Status::Conflict("the call is at version " + std::to_string(version) +
                            ", not the expected version " + std::to_string(*expected));
  }
  return Status::OK();
}

size_t BatchBytesHint(const std::vector<Call>& calls) {
  size_t n = 0;
  for (const auto& c : calls) {
    n += 4096 + c.insights.summary.size();
    for (const auto& s : c.transcript) n += s.text.size() + 32;
  }
  return std::min(n, size_t{64} << 20);
}

Status PlanDelete(const TenantRef& t, const Call& old, std::string_view hash, rocksdb::WriteBatch* b) {
  for (Part p : {Part::kMeta, Part::kTranscript, Part::kInsights, Part::kSummary}) {
    CV_RETURN_IF_ERROR(Del(t, b, format::CallKey(hash, p)));
  }
  for (const auto& key : indexing::IndexKeys(t->index_key, old, hash)) {
    CV_RETURN_IF_ERROR(Del(t, b, key));
  }
  std::string source = indexing::SourceHash(t->index_key, old);
  if (!source.empty()) CV_RETURN_IF_ERROR(Del(t, b, format::SourceIndexKey(source)));
  // A pin belongs to the call (holds block the delete before it gets here).
  std::string pin(1, format::kPinPrefix);
  pin.append(hash);
  CV_RETURN_IF_ERROR(Del(t, b, pin));
  return PlanDeleteRecordings(t, hash, b);
}

}  // namespace calls

Status Store::Impl::PlanPut(TenantRef& t, Call call, int64_t now,
                            std::optional<uint64_t> expected_version, uint64_t* version_counter,
                            rocksdb::WriteBatch* b, PutResult* result) {
  std::string target = indexing::CallHash(t->index_key, call.call_id);
  const std::string source = indexing::SourceHash(t->index_key, call);
  if (!source.empty()) {
    std::string existing;
    bool found = false;
    CV_RETURN_IF_ERROR(calls::GetSealed(t, rocksdb::ReadOptions(), format::SourceIndexKey(source),
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
  CV_RETURN_IF_ERROR(calls::ReadMeta(t, target, &old, &old_parts, &found));
  CV_RETURN_IF_ERROR(calls::CheckExpected(expected_version, found, old.version));
  // A hold keeps the call as it is (decision 0028).
  if (found) CV_RETURN_IF_ERROR(CheckNotHeld(t, target, /*any_call=*/false));
  if (found) call.call_id = old.call_id;  // re-ingest keeps the stored id
  call.created_at = call.created_at ? call.created_at : (found ? old.created_at : now);
  call.updated_at = call.updated_at ? call.updated_at : now;
  call.version = calls::NextVersion(version_counter, found ? old.version : 0);
  CV_RETURN_IF_ERROR(calls::PlanWrite(t, found ? &old : nullptr, old_parts, call, target, b));
  result->call_id = call.call_id;
  result->created = !found;
  result->version = call.version;
  return Status::OK();
}

Result<std::vector<PutResult>> Store::Impl::PutCalls(std::string_view tenant_id,
                                                     std::vector<Call> calls,
                                                     const std::vector<std::optional<uint64_t>>* expected) {
  if (calls.empty()) return Status::InvalidArgument("no calls to put");
  if (calls.size() > limits::kMaxBatchCalls) {
    return Status::InvalidArgument("batch holds more than " +
                                   std::to_string(limits::kMaxBatchCalls) + " calls");
  }
  if (expected != nullptr && expected->size() != calls.size()) {
    return Status::InvalidArgument("expected_versions: " + std::to_string(expected->size()) +
                                   " given for " + std::to_string(calls.size()) + " calls");
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
  res_->flush_backlog->Wait();  // before any lock (decision 0066)
  CV_ASSIGN_OR_RETURN(TenantRef t, Acquire(tenant_id, Access::kWrite));
  std::lock_guard<std::mutex> w(t->write_mu);
  PrepareDictionary(t);
  rocksdb::WriteBatch batch(calls::BatchBytesHint(calls));
  std::vector<PutResult> results(calls.size());
  const int64_t now = NowMicros();
  // Each call is resolved against the store as it was before the batch, so
  // two calls resolving to one stored call (one by call_id, the other by
  // source_call_id) would both be planned over it and leave stale index
  // entries. Refused; with distinct stored calls, the batch equals the puts
  // one after the other.
  std::set<std::string> stored;
  uint64_t counter = 0;
  CV_RETURN_IF_ERROR(calls::ReadVersionCounter(t, &counter));
  for (size_t i = 0; i < calls.size(); ++i) {
    // Each expected version is checked against the store before the batch
    // (under the write lock held above); the first that differs refuses the
    // whole batch before anything is written.
    const std::optional<uint64_t> expected_version =
        expected != nullptr ? (*expected)[i] : std::nullopt;
    std::string call_id = calls[i].call_id;
    Status planned = PlanPut(t, std::move(calls[i]), now, expected_version, &counter, &batch,
                             &results[i]);
    if (planned.code() == Code::kConflict && calls.size() > 1) {
      return Status(planned.code(), "calls[" + std::to_string(i) + "] (call_id " + call_id +
                                        "): " + planned.message());
    }
    CV_RETURN_IF_ERROR(planned);
    if (!stored.insert(results[i].call_id).second) {
      return Status::InvalidArgument("calls[" + std::to_string(i) +
                                     "]: resolves to the same stored call as an earlier call "
                                     "of the batch (by call_id or source_call_id)");
    }
  }
  CV_RETURN_IF_ERROR(calls::PutVersionCounter(t, &batch, counter));
  std::vector<ChangeNote> notes;
  notes.reserve(results.size());
  for (const auto& r : results) {
    notes.push_back(ChangeNote{ChangeKind::kPut, ChangeCause::kUser, r.call_id, r.version});
  }
  CV_RETURN_IF_ERROR(AppendChanges(t, notes, &batch));
  CV_RETURN_IF_ERROR(WriteChanges(t, WriteOpts(), &batch, "write calls"));
  uint64_t created = 0;
  for (const auto& r : results) created += r.created ? 1 : 0;
  AfterPut(t, created);
  return results;
}

namespace {
// One call as of `ro`'s snapshot: kNotFound if absent.
// Reads the calls named by `hashes` (their metadata and the parts in
// `parts`) with one MultiGet. RocksDB 7.8.3 reads every key of a
// single-family MultiGet at one sequence number, over one referenced super
// version, so each call (and the batch) comes from one point in time: under
// a concurrent put or delete a reader gets the old call or the new one,
// never a mix of two (nor a part reported "missing"). No snapshot is
// registered: releasing the last registered snapshot makes RocksDB mark
// every bottommost file below it for a compaction that only zeroes sequence
// numbers, and a small tenant's flushed files are all bottommost, so a get
// per write used to double the bytes flushes wrote (docs/decisions/0058).
// (*each)[i] is OK, NotFound, or the record's error; a read error of the
// batch is returned.
Status ReadCalls(const TenantRef& t, const std::vector<std::string>& hashes, uint32_t parts,
                 std::vector<Status>* each, std::vector<Call>* calls) {
  static constexpr std::pair<uint32_t, Part> kParts[] = {{kPartTranscript, Part::kTranscript},
                                                          {kPartInsights, Part::kInsights}};
  std::vector<std::string> keys;
  keys.reserve(hashes.size() * 3);
  for (const auto& h : hashes) {
    keys.push_back(format::CallKey(h, Part::kMeta));
    for (const auto& [bit, part] : kParts) {
      if (parts & bit) keys.push_back(format::CallKey(h, part));
    }
  }
  std::vector<rocksdb::Slice> slices(keys.begin(), keys.end());
  std::vector<rocksdb::PinnableSlice> values(keys.size());
  std::vector<rocksdb::Status> statuses(keys.size());
  t->shard->db()->MultiGet(rocksdb::ReadOptions(), t->cf, keys.size(), slices.data(), values.data(),
                           statuses.data());
  for (const auto& st : statuses) {
    if (!st.ok() && !st.IsNotFound()) return fsutil::FromRocks(st, "read record");
  }
  each->assign(hashes.size(), Status::OK());
  calls->assign(hashes.size(), Call());
  std::string plain;
  size_t k = 0;
  for (size_t i = 0; i < hashes.size(); ++i) {
    const size_t meta = k++;
    size_t first_part = k;
    for (const auto& [bit, part] : kParts) {
      if (parts & bit) ++k;
    }
    Status& out = (*each)[i];
    Call& call = (*calls)[i];
    if (statuses[meta].IsNotFound()) {
      out = Status::NotFound("no such call");
      continue;
    }
    uint32_t present = 0;
    out = t->OpenRecord(keys[meta], values[meta].ToStringView(), &plain);
    if (out.ok()) out = codec::DecodeMeta(plain, &call, &present);
    if (!out.ok()) continue;
    if (!(parts & kPartParticipants)) call.participants.clear();
    for (const auto& [bit, part] : kParts) {
      if (!(parts & bit)) continue;
      const size_t j = first_part++;
      if (!(present & bit)) continue;
      if (statuses[j].IsNotFound()) {
        out = Status::Corruption("a stored part of the call is missing");
        break;
      }
      out = t->OpenRecord(keys[j], values[j].ToStringView(), &plain);
      if (out.ok()) {
        out = part == Part::kTranscript ? codec::DecodeTranscript(plain, &call)
                                        : codec::DecodeInsights(plain, &call);
      }
      if (!out.ok()) break;
    }
  }
  return Status::OK();
}
}  // namespace

Result<Call> Store::Impl::GetCall(std::string_view tenant_id, std::string_view call_id,
                                  uint32_t parts) {
  CV_RETURN_IF_ERROR(validate::Id("call_id", call_id));
  if (parts & ~static_cast<uint32_t>(kPartAll)) return Status::InvalidArgument("parts: unknown bits");
  CV_ASSIGN_OR_RETURN(TenantRef t, Acquire(tenant_id));
  std::vector<Status> each;
  std::vector<Call> calls;
  CV_RETURN_IF_ERROR(ReadCalls(t, {indexing::CallHash(t->index_key, call_id)}, parts, &each, &calls));
  CV_RETURN_IF_ERROR(each[0]);
  return std::move(calls[0]);
}

Result<std::vector<Result<Call>>> Store::Impl::GetCalls(std::string_view tenant_id,
                                                        const std::vector<std::string>& call_ids,
                                                        uint32_t parts) {
  if (call_ids.size() > limits::kMaxListLimit) {
    return Status::InvalidArgument("call_ids: more than " + std::to_string(limits::kMaxListLimit));
  }
  if (parts & ~static_cast<uint32_t>(kPartAll)) return Status::InvalidArgument("parts: unknown bits");
  CV_ASSIGN_OR_RETURN(TenantRef t, Acquire(tenant_id));
  // Every valid id in one read, so the batch comes from one point in time.
  std::vector<Result<Call>> out(call_ids.size(), Result<Call>(Status::NotFound("no such call")));
  std::vector<std::string> hashes;
  std::vector<size_t> where;
  for (size_t i = 0; i < call_ids.size(); ++i) {
    Status valid = validate::Id("call_id", call_ids[i]);
    if (!valid.ok()) {
      out[i] = std::move(valid);
      continue;
    }
    hashes.push_back(indexing::CallHash(t->index_key, call_ids[i]));
    where.push_back(i);
  }
  std::vector<Status> each;
  std::vector<Call> calls;
  CV_RETURN_IF_ERROR(ReadCalls(t, hashes, parts, &each, &calls));
  for (size_t j = 0; j < hashes.size(); ++j) {
    if (each[j].code() == Code::kNotFound) {
      out[where[j]] = std::move(each[j]);
      continue;
    }
    // Damaged storage fails the batch, as it fails GetCall: not a per-id answer.
    CV_RETURN_IF_ERROR(each[j]);
    out[where[j]] = std::move(calls[j]);
  }
  return out;
}

Result<PutResult> Store::Impl::UpdateCall(std::string_view tenant_id, std::string_view call_id,
                                          uint32_t parts, Call patch,
                                          std::optional<uint64_t> expected_version) {
  CV_RETURN_IF_ERROR(validate::Id("call_id", call_id));
  constexpr uint32_t kKnown = kPartAll | kPartFields;
  if (parts & ~kKnown) return Status::InvalidArgument("parts: unknown bits");
  if (parts == 0) return Status::InvalidArgument("parts: none named");
  if (!patch.call_id.empty() && patch.call_id != call_id) {
    return Status::InvalidArgument("call_id: the patch names another call");
  }
  res_->flush_backlog->Wait();  // before any lock (decision 0066)
  CV_ASSIGN_OR_RETURN(TenantRef t, Acquire(tenant_id, Access::kWrite));
  std::lock_guard<std::mutex> w(t->write_mu);
  PrepareDictionary(t);
  const std::string h = indexing::CallHash(t->index_key, call_id);
  Call old;
  uint32_t old_parts = 0;
  bool found = false;
  CV_RETURN_IF_ERROR(calls::ReadMeta(t, h, &old, &old_parts, &found));
  if (!found) {
    // With an expected version, a vanished call is a lost race: kConflict.
    if (expected_version && *expected_version != 0) {
      return calls::CheckExpected(expected_version, false, 0);
    }
    return Status::NotFound("no such call");
  }
  CV_RETURN_IF_ERROR(calls::CheckExpected(expected_version, true, old.version));
  CV_RETURN_IF_ERROR(CheckNotHeld(t, h, /*any_call=*/false));
  Call next = old;  // metadata and participants; no transcript, no insights
  if (parts & kPartFields) {
    const Call& f = patch;
    next.source_system = f.source_system;
    next.source_call_id = f.source_call_id;
    next.workspace_id = f.workspace_id;
    next.started_at = f.started_at;
    next.duration_ms = f.duration_ms;
    next.scheduled_start = f.scheduled_start;
    next.scheduled_end = f.scheduled_end;
    next.title = f.title;
    next.direction = f.direction;
    next.scope = f.scope;
    next.media = f.media;
    next.language = f.language;
    next.status = f.status;
    next.tags = f.tags;
    next.owner_user_id = f.owner_user_id;
    next.team_ids = f.team_ids;
    next.crm_links = f.crm_links;
  }
  if (parts & kPartParticipants) next.participants = std::move(patch.participants);
  if (parts & kPartTranscript) next.transcript = std::move(patch.transcript);
  if (parts & kPartInsights) next.insights = std::move(patch.insights);
  next.updated_at = patch.updated_at;
  // The result is checked (and normalised) as a put would be; the parts not
  // named are not loaded, so only what changes is checked.
  CV_RETURN_IF_ERROR(validate::NormalizeCall(&next));
  next.created_at = old.created_at;
  // A patch made from the call as read carries its old updated_at: only a
  // later one is taken, else now (so updated_since listings see the change).
  if (next.updated_at <= old.updated_at) next.updated_at = NowMicros();
  const std::string source = indexing::SourceHash(t->index_key, next);
  if (!source.empty() && source != indexing::SourceHash(t->index_key, old)) {
    std::string owner;
    bool taken = false;
    CV_RETURN_IF_ERROR(calls::GetSealed(t, rocksdb::ReadOptions(), format::SourceIndexKey(source),
                                        &owner, &taken));
    if (taken && owner != h) {
      return Status::AlreadyExists("source_call_id: another call has this source system and id");
    }
  }
  uint64_t counter = 0;
  CV_RETURN_IF_ERROR(calls::ReadVersionCounter(t, &counter));
  next.version = calls::NextVersion(&counter, old.version);
  rocksdb::WriteBatch b;
  CV_RETURN_IF_ERROR(calls::PlanWrite(t, &old, old_parts, next, h, &b,
                                      parts & (kPartTranscript | kPartInsights)));
  CV_RETURN_IF_ERROR(calls::PutVersionCounter(t, &b, counter));
  CV_RETURN_IF_ERROR(AppendChanges(
      t, {ChangeNote{ChangeKind::kUpdate, ChangeCause::kUser, std::string(call_id), next.version}}, &b));
  CV_RETURN_IF_ERROR(WriteChanges(t, WriteOpts(), &b, "update call"));
  return PutResult{std::string(call_id), false, next.version};
}

Result<std::vector<TranscriptSegment>> Store::Impl::GetTranscriptWindow(std::string_view tenant_id,
                                                                        std::string_view call_id,
                                                                        uint32_t from_ms,
                                                                        uint32_t to_ms) {
  if (from_ms > to_ms) return Status::InvalidArgument("from_ms: after to_ms");
  CV_ASSIGN_OR_RETURN(Call call, GetCall(tenant_id, call_id, kPartTranscript));
  std::vector<TranscriptSegment> out;
  for (auto& s : call.transcript) {
    if (s.end_ms > from_ms && s.start_ms < to_ms) out.push_back(std::move(s));
  }
  return out;
}

Result<uint64_t> Store::Impl::DeleteCall(std::string_view tenant_id, std::string_view call_id,
                                         std::optional<uint64_t> expected_version) {
  CV_RETURN_IF_ERROR(validate::Id("call_id", call_id));
  CV_ASSIGN_OR_RETURN(TenantRef t, Acquire(tenant_id, Access::kRemove));
  std::lock_guard<std::mutex> w(t->write_mu);
  const std::string h = indexing::CallHash(t->index_key, call_id);
  Call old;
  uint32_t parts = 0;
  bool found = false;
  CV_RETURN_IF_ERROR(calls::ReadMeta(t, h, &old, &parts, &found));
  if (!found && !(expected_version && *expected_version != 0)) return Status::NotFound("no such call");
  CV_RETURN_IF_ERROR(calls::CheckExpected(expected_version, found, old.version));
  CV_RETURN_IF_ERROR(CheckNotHeld(t, h, /*any_call=*/false));
  // The delete takes a version of its own, so the counter stays above every
  // version the call had and a re-put of the id gets a greater one.
  uint64_t counter = 0;
  CV_RETURN_IF_ERROR(calls::ReadVersionCounter(t, &counter));
  const uint64_t version = calls::NextVersion(&counter, old.version);
  rocksdb::WriteBatch b;
  CV_RETURN_IF_ERROR(calls::PlanDelete(t, old, h, &b));
  CV_RETURN_IF_ERROR(calls::PutVersionCounter(t, &b, counter));
  CV_RETURN_IF_ERROR(AppendChanges(
      t, {ChangeNote{ChangeKind::kDelete, ChangeCause::kUser, old.call_id, version}}, &b));
  // Logged (blind hash, outside the store) before the delete is written: a
  // restore of an older backup deletes the call again (backup.cc).
  std::shared_lock<std::shared_mutex> tl(tombstone_mu_);
  CV_RETURN_IF_ERROR(LogTombstones(t->rec.internal_id, {h}, {old.version}));
  CV_RETURN_IF_ERROR(WriteChanges(t, WriteOpts(), &b, "delete call"));
  return version;
}

Status calls::CountTimeIndex(const TenantRef& t, uint64_t limit, uint64_t* n) {
  const std::string lower(1, format::kTimeIndexPrefix);
  const std::string upper(1, static_cast<char>(format::kTimeIndexPrefix + 1));
  rocksdb::Slice lo(lower), hi(upper);
  rocksdb::ReadOptions ro;
  ro.iterate_lower_bound = &lo;
  ro.iterate_upper_bound = &hi;
  std::unique_ptr<rocksdb::Iterator> it(t->shard->db()->NewIterator(ro, t->cf));
  *n = 0;
  for (it->SeekToFirst(); it->Valid() && *n < limit; it->Next()) ++*n;
  return fsutil::FromRocks(it->status(), "scan time index");
}

Result<uint64_t> Store::Impl::CountCalls(std::string_view tenant_id, const ListQuery& q) {
  uint64_t n = 0;
  CV_RETURN_IF_ERROR(ListCalls(tenant_id, q, &n).status());
  return n;
}

Result<uint64_t> Store::Impl::CountCalls(std::string_view tenant_id) {
  CV_ASSIGN_OR_RETURN(TenantRef t, Acquire(tenant_id));
  uint64_t n = 0;
  CV_RETURN_IF_ERROR(calls::CountTimeIndex(t, UINT64_MAX, &n));
  return n;
}

}  // namespace callvault
