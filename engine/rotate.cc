// Tenant key rotation (docs/decisions/0036-tenant-key-rotation.md; the
// copy is online, docs/decisions/0038-online-key-rotation.md).
//
// The index subkey (blind hashes in row keys and summaries), the record
// subkey, the recording subkey and the cursor subkey all derive from the
// tenant's DEK, so a new DEK means new row keys, not only new ciphertexts:
// the rotation copies every row of the tenant, re-keyed and re-sealed, into
// a new column family ("t<id>r<n>"), switches the registry to it in one
// write, then shreds the old DEK as a purge does and drops the old family.
//
// Steps (kill points in brackets; docs/crypto.md, "Tenant key rotation"):
//   1. registry: rotation COPYING (the copy's family, generation, key
//      version) [rotate.after_begin]
//   2. keyring with the new DEK, no KEK rotation [rotate.after_keyring]
//   3. the copy's family [rotate.after_family]
//   4. the copy, in batches [rotate.after_batch], WAL synced
//      [rotate.after_copy]. Online (decision 0038): the calls and
//      recordings from a snapshot while the tenant is served; then the
//      calls the change feed names since, in rounds; then, with the tenant
//      held, the last feed tail, the rows that make no feed events (holds,
//      pins, dictionaries, version counter, the feed itself) and the
//      recordings added, changed or removed since the snapshot.
//   5. registry: the copy is the tenant, rotation SHREDDING (the old
//      family, generation, key version) [rotate.after_switch]
//   6. keyring without the old DEK under a new KEK, the old KEK destroyed
//      [rotate.after_shred]; the old family dropped [rotate.after_drop];
//      the receipt and the registry's rotation cleared in one synced batch
//      [rotate.after_receipt]
// Recovery at open: COPYING rolls back (the copy's family dropped, its key
// removed), SHREDDING rolls forward from step 6.
#include <rocksdb/write_batch.h>

#include <map>
#include <set>

#include "callvault/limits.h"
#include "engine/calls_internal.h"
#include "engine/codec.h"
#include "engine/crypto.h"
#include "engine/fs_util.h"
#include "engine/indexing.h"
#include "engine/kill_point.h"
#include "engine/rotate_internal.h"
#include "engine/store_impl.h"
#include "engine/validate.h"
#include "format/coding.h"

namespace callvault {

namespace {

constexpr char kHoldDomain = 'H';  // as compliance.cc
constexpr size_t kBatchRows = 256;
constexpr size_t kBatchBytes = 4u << 20;

std::string IdText(uint64_t internal_id) { return "internal_id=" + std::to_string(internal_id); }

// Sets the rotation fields of `live`'s in-memory record only: its other
// fields, the identity ones that operations read without rec_mu
// (Tenant::binding), do not change, and the tenant is served meanwhile.
void SetRotation(Tenant* live, const codec::TenantRecord& from) {
  std::lock_guard<std::mutex> r(live->rec_mu);
  live->rec.rotation_state = from.rotation_state;
  live->rec.rotation_family = from.rotation_family;
  live->rec.rotation_cf_generation = from.rotation_cf_generation;
  live->rec.rotation_key_version = from.rotation_key_version;
}

codec::TenantRecord WithoutRotation(codec::TenantRecord rec) {
  rec.rotation_state = codec::kRotationNone;
  rec.rotation_family = 0;
  rec.rotation_cf_generation = 0;
  rec.rotation_key_version = 0;
  return rec;
}

// Copies every row of `from` into `to`, re-keyed under `to`'s index subkey
// and re-sealed under its record subkey. Rows are read in key order: call
// rows ('C') before the holds, pins and recordings ('H', 'M', 'N') that
// name a call by its hash.
class Copier {
 public:
  // `base`: rows already reported by an online copy this one restarts
  // (decision 0038 point 4): the progress goes on from there, never back.
  Copier(Store::Impl* store, const TenantRef& from, const TenantRef& to, uint64_t base = 0)
      : store_(store), from_(from), to_(to), base_(base) {}

  Status Run(uint64_t* rows) {
    uint64_t total = 0;
    from_->shard->db()->GetIntProperty(from_->cf, "rocksdb.estimate-num-keys", &total);
    total_ = total;
    store_->ReportProgress("rotate", "rows", base_, base_ + total_);
    std::unique_ptr<rocksdb::Iterator> it(
        from_->shard->db()->NewIterator(rocksdb::ReadOptions(), from_->cf));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      CV_RETURN_IF_ERROR(CopyRow(it->key().ToStringView(), it->value().ToStringView()));
      ++read_;
      if (batch_.Count() >= kBatchRows || batch_.GetDataSize() >= kBatchBytes) {
        CV_RETURN_IF_ERROR(Flush());
      }
    }
    CV_RETURN_IF_ERROR(fsutil::FromRocks(it->status(), "scan the tenant's rows"));
    CV_RETURN_IF_ERROR(Flush());
    *rows = written_;
    return Status::OK();
  }
  uint64_t read() const { return read_; }

 private:
  Status Flush() {
    if (batch_.Count() > 0) {
      written_ += batch_.Count();
      CV_RETURN_IF_ERROR(fsutil::FromRocks(
          to_->shard->db()->Write(rocksdb::WriteOptions(), &batch_), "write the rotated copy"));
      batch_.Clear();
      CV_KILL_POINT("rotate.after_batch");
    }
    // Between the start and the end: the total is an estimate (never below
    // what was read), the last report is RotateTenantKey's.
    if (read_ > 0) {
      store_->ReportProgress("rotate", "rows", base_ + read_,
                             base_ + std::max(total_, read_ + 1));
    }
    return Status::OK();
  }

  Status Put(const std::string& key, std::string_view plain) {
    return fsutil::FromRocks(batch_.Put(to_->cf, key, to_->SealRecord(key, plain)), "batch");
  }

  // The call a hash names, from the call rows already read.
  const std::string* CallOf(std::string_view old_hash) const {
    auto it = calls_.find(std::string(old_hash));
    return it == calls_.end() ? nullptr : &it->second;
  }

  Status CopyRow(std::string_view key, std::string_view value) {
    const char kind = key.empty() ? '\0' : key[0];
    const size_t h = format::kHashBytes;
    switch (kind) {
      case format::kCallPrefix: {
        if (key.size() != 2 + h) return Status::Corruption("malformed call row key");
        if (static_cast<format::Part>(key[1 + h]) != format::Part::kMeta) return Status::OK();
        const std::string old_hash(key.substr(1, h));
        std::string plain;
        CV_RETURN_IF_ERROR(from_->OpenRecord(key, value, &plain));
        Call call;
        uint32_t parts = 0;
        CV_RETURN_IF_ERROR(codec::DecodeMeta(plain, &call, &parts));
        if (indexing::CallHash(from_->index_key, call.call_id) != old_hash) {
          return Status::Corruption("a call record is stored under another call's key");
        }
        if (parts & kPartTranscript) {
          CV_RETURN_IF_ERROR(calls::ReadPart(from_, old_hash, format::Part::kTranscript, &call));
        }
        if (parts & kPartInsights) {
          CV_RETURN_IF_ERROR(calls::ReadPart(from_, old_hash, format::Part::kInsights, &call));
        }
        const std::string new_hash = indexing::CallHash(to_->index_key, call.call_id);
        // Parts, summary, every index entry and the source entry, as a put
        // of the same call (same version and times) would write them.
        CV_RETURN_IF_ERROR(calls::PlanWrite(to_, nullptr, 0, call, new_hash, &batch_,
                                            kPartTranscript | kPartInsights));
        calls_.emplace(old_hash, call.call_id);
        return Status::OK();
      }
      // Index entries and the other parts: written with their call.
      case format::kTimeIndexPrefix:
      case format::kUpdatedIndexPrefix:
      case format::kSourceIndexPrefix:
      case format::kOwnerIndexPrefix:
      case format::kParticipantIndexPrefix:
      case format::kCrmIndexPrefix:
      case format::kWorkspaceIndexPrefix:
      // Chunks: copied with their manifest. A pending marker is a recording
      // being written: its writer's Finish finds no marker in the copy and
      // keeps nothing (kNotFound), as after a delete of its call.
      case format::kRecordingChunkPrefix:
      case format::kRecordingPendingPrefix:
        return Status::OK();
      case format::kCallHoldPrefix: {
        std::string plain;
        CV_RETURN_IF_ERROR(from_->OpenRecord(key, value, &plain));
        Hold hold;
        CV_RETURN_IF_ERROR(codec::DecodeHold(plain, &hold));
        const std::string k = format::RecordingKey(
            format::kCallHoldPrefix, indexing::CallHash(to_->index_key, hold.call_id),
            crypto::BlindHash(to_->index_key, kHoldDomain, hold.hold_id));
        return Put(k, plain);
      }
      case format::kPinPrefix: {
        if (key.size() != 1 + h) return Status::Corruption("malformed pin row key");
        std::string plain;
        CV_RETURN_IF_ERROR(from_->OpenRecord(key, value, &plain));
        const std::string* call_id = CallOf(key.substr(1));
        if (call_id == nullptr) {
          ++dropped_;  // the pin of a call that no longer exists: nothing to keep
          return Status::OK();
        }
        std::string k(1, format::kPinPrefix);
        k += indexing::CallHash(to_->index_key, *call_id);
        return Put(k, plain);
      }
      case format::kRecordingManifestPrefix: {
        if (key.size() != 1 + 2 * h) return Status::Corruption("malformed recording key");
        const std::string* call_id = CallOf(key.substr(1, h));
        if (call_id == nullptr) {
          ++dropped_;  // a recording of a call that no longer exists (verify reports it)
          return Status::OK();
        }
        // Chunks go straight to the copy's family (1 MiB each): the batch
        // first, so rows land in key order of the source.
        CV_RETURN_IF_ERROR(Flush());
        return calls::CopyRecordingRekeyed(store_, from_, to_, *call_id, key, value, &written_);
      }
      case format::kDictionaryPrefix: {
        // Sealed without a dictionary (dictionaries.cc); same id.
        std::string plain;
        CV_RETURN_IF_ERROR(record::Open(from_->record_key, from_->binding(), key, value, &plain));
        return fsutil::FromRocks(
            batch_.Put(to_->cf, std::string(key),
                       record::Seal(to_->record_key, to_->binding(), key, plain)),
            "batch");
      }
      case format::kVersionCounterPrefix:
      case format::kChangePrefix: {
        std::string plain;
        CV_RETURN_IF_ERROR(from_->OpenRecord(key, value, &plain));
        return Put(std::string(key), plain);
      }
      default:
        return Status::Corruption("the tenant's column family holds a row of an unknown kind");
    }
  }

  Store::Impl* const store_;
  const TenantRef& from_;
  const TenantRef& to_;
  const uint64_t base_;
  rocksdb::WriteBatch batch_;
  std::map<std::string, std::string> calls_;  // old call hash -> call id
  uint64_t read_ = 0;
  uint64_t total_ = 0;
  uint64_t written_ = 0;
  uint64_t dropped_ = 0;
};

std::mutex g_hook_mu;
std::function<void(const char*)> g_hook;  // GUARDED_BY(g_hook_mu)

void RunHook(const char* phase) {
  std::function<void(const char*)> hook;
  {
    std::lock_guard<std::mutex> l(g_hook_mu);
    hook = g_hook;
  }
  if (hook) hook(phase);
}

// Feed catch-up rounds while the tenant is served, and the tail (events)
// short enough to be caught up with the tenant held.
constexpr int kMaxRounds = 8;
constexpr uint64_t kHeldTail = 256;

// The online copy (decision 0038). Phase 1, CopySnapshot: the calls and
// complete recordings of a snapshot, with the tenant served (its life lock
// held shared, as a reader holds it). Phase 2, CatchUp: every call the
// change feed names after the last position read, brought to its state in
// a fresh snapshot (re-written over its previous copy, or its copy removed
// when it is gone); repeated while the tail is long. Phase 3, with the
// tenant held exclusively: CatchUp once more, then CopyRest: the rows that
// make no feed events (holds, pins, dictionaries, the version counter, the
// feed) wholesale, and the recordings added, replaced or removed since
// phase 1 read them.
class OnlineCopier {
 public:
  OnlineCopier(Store::Impl* store, const TenantRef& from, const TenantRef& to)
      : store_(store), from_(from), to_(to), db_(from->shard->db()) {}

  Status CopySnapshot() {
    rocksdb::ManagedSnapshot snap(db_);
    rocksdb::ReadOptions ro;
    ro.snapshot = snap.snapshot();
    CV_RETURN_IF_ERROR(LastSequence(ro, &pos_));
    RunHook("phase1");
    uint64_t total = 0;
    db_->GetIntProperty(from_->cf, "rocksdb.estimate-num-keys", &total);
    total_ = total;
    store_->ReportProgress("rotate", "rows", 0, total_);
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, from_->cf));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      CV_RETURN_IF_ERROR(CopyRow(ro, it->key().ToStringView(), it->value().ToStringView()));
      ++read_;
      if (batch_.Count() >= kBatchRows || batch_.GetDataSize() >= kBatchBytes) {
        CV_RETURN_IF_ERROR(Flush());
      }
    }
    CV_RETURN_IF_ERROR(fsutil::FromRocks(it->status(), "scan the tenant's rows"));
    return Flush();
  }

  // Brings every call the feed names after the last position to its state
  // in a snapshot taken now. *gap: the feed no longer holds the event after
  // the position (trimmed: Options::change_feed_max_events or its age), so
  // the calls changed since cannot be known; nothing was read.
  Status CatchUp(uint64_t* events, bool* gap) {
    *events = 0;
    *gap = false;
    rocksdb::ManagedSnapshot snap(db_);
    rocksdb::ReadOptions ro;
    ro.snapshot = snap.snapshot();
    std::set<std::string> ids;
    uint64_t last = pos_;
    CV_RETURN_IF_ERROR(ChangedCallsSince(
        from_, ro, pos_,
        [&ids](std::string_view, std::string_view, std::string call_id) {
          ids.insert(std::move(call_id));
          return Status::OK();
        },
        &last, gap));
    if (*gap) return Status::OK();
    std::vector<std::pair<std::string, std::string>> sources;  // source hash, call hash (copy)
    for (const auto& id : ids) {
      CV_RETURN_IF_ERROR(RecopyCall(ro, id, &sources));
      ++read_;
      if (batch_.Count() >= kBatchRows || batch_.GetDataSize() >= kBatchBytes) {
        CV_RETURN_IF_ERROR(Flush());
      }
    }
    // A source id moves between calls (a call deleted, another put with
    // its source id): the re-copy of the call that lost it may have removed
    // the entry another call of this round wrote. The calls that hold one
    // now write it last.
    for (const auto& [source, hash] : sources) {
      CV_RETURN_IF_ERROR(Put(format::SourceIndexKey(source), hash));
    }
    CV_RETURN_IF_ERROR(Flush());
    *events = last - pos_;
    pos_ = last;
    return Status::OK();
  }

  // Phase 3. REQUIRES: the tenant held exclusively, CatchUp done.
  Status CopyRest() {
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), from_->cf));
    const size_t h = format::kHashBytes;
    for (char kind : {format::kCallHoldPrefix, format::kPinPrefix, format::kDictionaryPrefix,
                      format::kVersionCounterPrefix, format::kChangePrefix}) {
      const std::string prefix(1, kind);
      for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
        const std::string_view key = it->key().ToStringView();
        const std::string_view value = it->value().ToStringView();
        std::string plain;
        ++read_;
        if (kind == format::kDictionaryPrefix) {
          // Sealed without a dictionary (dictionaries.cc); same id.
          CV_RETURN_IF_ERROR(record::Open(from_->record_key, from_->binding(), key, value, &plain));
          CV_RETURN_IF_ERROR(fsutil::FromRocks(
              batch_.Put(to_->cf, std::string(key),
                         record::Seal(to_->record_key, to_->binding(), key, plain)),
              "batch"));
        } else {
          CV_RETURN_IF_ERROR(from_->OpenRecord(key, value, &plain));
          if (kind == format::kCallHoldPrefix) {
            Hold hold;
            CV_RETURN_IF_ERROR(codec::DecodeHold(plain, &hold));
            const std::string k = format::RecordingKey(
                format::kCallHoldPrefix, indexing::CallHash(to_->index_key, hold.call_id),
                crypto::BlindHash(to_->index_key, kHoldDomain, hold.hold_id));
            CV_RETURN_IF_ERROR(Put(k, plain));
          } else if (kind == format::kPinPrefix) {
            if (key.size() != 1 + h) return Status::Corruption("malformed pin row key");
            std::string call_id;
            CV_RETURN_IF_ERROR(CallIdOf(key.substr(1), &call_id));
            if (call_id.empty()) {
              ++dropped_;  // the pin of a call that no longer exists: nothing to keep
            } else {
              std::string k(1, format::kPinPrefix);
              k += indexing::CallHash(to_->index_key, call_id);
              CV_RETURN_IF_ERROR(Put(k, plain));
            }
          } else {
            CV_RETURN_IF_ERROR(Put(std::string(key), plain));
          }
        }
        if (batch_.Count() >= kBatchRows || batch_.GetDataSize() >= kBatchBytes) {
          CV_RETURN_IF_ERROR(Flush());
        }
      }
      CV_RETURN_IF_ERROR(fsutil::FromRocks(it->status(), "scan the tenant's rows"));
    }
    CV_RETURN_IF_ERROR(Flush());
    // Recordings: each complete one now, unless phase 1 copied it as it is
    // (a manifest is sealed with a fresh nonce whenever it is written, so
    // equal bytes are the same recording); then the copies of those gone.
    std::set<std::string> kept;
    const std::string prefix(1, format::kRecordingManifestPrefix);
    for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
      const std::string key = it->key().ToString();
      const std::string value = it->value().ToString();
      if (key.size() != 1 + 2 * h) return Status::Corruption("malformed recording key");
      ++read_;
      auto e = recordings_.find(key);
      if (e != recordings_.end() && e->second.copied && e->second.sealed == value) {
        kept.insert(key);
        continue;
      }
      std::string call_id;
      CV_RETURN_IF_ERROR(CallIdOf(std::string_view(key).substr(1, h), &call_id));
      if (call_id.empty()) {
        ++dropped_;  // a recording of a call that no longer exists (verify reports it)
        continue;
      }
      // What the copy holds under this recording's names (phase 1's copy
      // of a recording replaced since, or chunks of an attempt that met
      // it being replaced) goes first: the new one may have fewer chunks.
      std::string copy_key;
      CV_RETURN_IF_ERROR(calls::RecordingCopyKey(from_, to_, call_id, key, value, &copy_key));
      CV_RETURN_IF_ERROR(calls::PlanDeleteRecordingRows(to_, copy_key, &batch_));
      CV_RETURN_IF_ERROR(Flush());
      CV_RETURN_IF_ERROR(
          calls::CopyRecordingRekeyed(store_, from_, to_, call_id, key, value, &written_));
      kept.insert(key);
    }
    CV_RETURN_IF_ERROR(fsutil::FromRocks(it->status(), "scan the tenant's recordings"));
    for (const auto& [key, e] : recordings_) {
      if (kept.count(key) || e.copy_key.empty()) continue;
      CV_RETURN_IF_ERROR(calls::PlanDeleteRecordingRows(to_, e.copy_key, &batch_));
      CV_RETURN_IF_ERROR(Flush());
    }
    return Flush();
  }

  uint64_t read() const { return read_; }
  uint64_t written() const { return written_; }

 private:
  struct Recording {
    std::string sealed;    // its manifest row's value when phase 1 read it
    std::string copy_key;  // its manifest's key in the copy
    bool copied = false;   // phase 1 copied it whole
  };

  Status LastSequence(const rocksdb::ReadOptions& ro, uint64_t* seq) {
    return LastChangeSequence(from_, ro, seq);
  }

  Status Flush() {
    if (batch_.Count() > 0) {
      written_ += batch_.Count();
      CV_RETURN_IF_ERROR(fsutil::FromRocks(
          to_->shard->db()->Write(rocksdb::WriteOptions(), &batch_), "write the rotated copy"));
      batch_.Clear();
      CV_KILL_POINT("rotate.after_batch");
    }
    if (read_ > 0) store_->ReportProgress("rotate", "rows", read_, std::max(total_, read_ + 1));
    return Status::OK();
  }

  Status Put(const std::string& key, std::string_view plain) {
    return fsutil::FromRocks(batch_.Put(to_->cf, key, to_->SealRecord(key, plain)), "batch");
  }

  // The call of `from` stored at `old_hash`, as of `ro`, whole (metadata,
  // transcript, insights). *found false if there is none.
  Status ReadCallAt(const rocksdb::ReadOptions& ro, std::string_view old_hash, Call* call,
                    bool* found) {
    std::string plain;
    CV_RETURN_IF_ERROR(calls::GetSealed(from_, ro, format::CallKey(old_hash, format::Part::kMeta),
                                        &plain, found));
    if (!*found) return Status::OK();
    uint32_t parts = 0;
    CV_RETURN_IF_ERROR(codec::DecodeMeta(plain, call, &parts));
    if (indexing::CallHash(from_->index_key, call->call_id) != old_hash) {
      return Status::Corruption("a call record is stored under another call's key");
    }
    for (const auto& [bit, part] : {std::pair{kPartTranscript, format::Part::kTranscript},
                                    std::pair{kPartInsights, format::Part::kInsights}}) {
      if (!(parts & bit)) continue;
      bool there = false;
      CV_RETURN_IF_ERROR(
          calls::GetSealed(from_, ro, format::CallKey(old_hash, part), &plain, &there));
      if (!there) return Status::Corruption("a stored part of the call is missing");
      CV_RETURN_IF_ERROR(part == format::Part::kTranscript ? codec::DecodeTranscript(plain, call)
                                                          : codec::DecodeInsights(plain, call));
    }
    return Status::OK();
  }

  // The id of the call of `from` stored at `old_hash` now; empty if none.
  Status CallIdOf(std::string_view old_hash, std::string* call_id) {
    Call call;
    uint32_t parts = 0;
    bool found = false;
    CV_RETURN_IF_ERROR(calls::ReadMeta(from_, old_hash, &call, &parts, &found));
    call_id->clear();
    if (found) *call_id = call.call_id;
    return Status::OK();
  }

  // Phase 2: the copy of `call_id` brought to its state as of `ro`.
  Status RecopyCall(const rocksdb::ReadOptions& ro, const std::string& call_id,
                    std::vector<std::pair<std::string, std::string>>* sources) {
    const std::string old_hash = indexing::CallHash(from_->index_key, call_id);
    const std::string new_hash = indexing::CallHash(to_->index_key, call_id);
    Call call;
    bool found = false;
    CV_RETURN_IF_ERROR(ReadCallAt(ro, old_hash, &call, &found));
    Call prev;
    uint32_t prev_parts = 0;
    bool had = false;
    CV_RETURN_IF_ERROR(calls::ReadMeta(to_, new_hash, &prev, &prev_parts, &had));
    if (found) {
      // Its previous copy's parts and index entries that the new version
      // does not have are removed, as a put over it removes them.
      CV_RETURN_IF_ERROR(calls::PlanWrite(to_, had ? &prev : nullptr, had ? prev_parts : 0, call,
                                          new_hash, &batch_, kPartTranscript | kPartInsights));
      const std::string source = indexing::SourceHash(to_->index_key, call);
      if (!source.empty()) sources->emplace_back(source, new_hash);
    } else if (had) {
      // Gone (deleted, erased, removed by retention): its copy with its
      // index entries, pin and recordings, as a delete removes them.
      CV_RETURN_IF_ERROR(calls::PlanDelete(to_, prev, new_hash, &batch_));
    }
    return Status::OK();
  }

  Status CopyRow(const rocksdb::ReadOptions& ro, std::string_view key, std::string_view value) {
    const char kind = key.empty() ? '\0' : key[0];
    const size_t h = format::kHashBytes;
    switch (kind) {
      case format::kCallPrefix: {
        if (key.size() != 2 + h) return Status::Corruption("malformed call row key");
        if (static_cast<format::Part>(key[1 + h]) != format::Part::kMeta) return Status::OK();
        const std::string old_hash(key.substr(1, h));
        Call call;
        bool found = false;
        CV_RETURN_IF_ERROR(ReadCallAt(ro, old_hash, &call, &found));
        if (!found) return Status::Corruption("a call row vanished from a snapshot");
        const std::string new_hash = indexing::CallHash(to_->index_key, call.call_id);
        CV_RETURN_IF_ERROR(calls::PlanWrite(to_, nullptr, 0, call, new_hash, &batch_,
                                            kPartTranscript | kPartInsights));
        calls_.emplace(old_hash, call.call_id);
        return Status::OK();
      }
      // Index entries and the other parts: written with their call. Chunks:
      // with their manifest. Pending markers: not copied (decision 0036).
      // Holds, pins, dictionaries, the version counter and the feed make no
      // feed events: copied in phase 3, with the tenant held.
      case format::kTimeIndexPrefix:
      case format::kUpdatedIndexPrefix:
      case format::kSourceIndexPrefix:
      case format::kOwnerIndexPrefix:
      case format::kParticipantIndexPrefix:
      case format::kCrmIndexPrefix:
      case format::kWorkspaceIndexPrefix:
      case format::kRecordingChunkPrefix:
      case format::kRecordingPendingPrefix:
      case format::kCallHoldPrefix:
      case format::kPinPrefix:
      case format::kDictionaryPrefix:
      case format::kVersionCounterPrefix:
      case format::kChangePrefix:
        return Status::OK();
      case format::kRecordingManifestPrefix: {
        if (key.size() != 1 + 2 * h) return Status::Corruption("malformed recording key");
        auto c = calls_.find(std::string(key.substr(1, h)));
        if (c == calls_.end()) return Status::OK();  // phase 3 decides (no call: dropped)
        CV_RETURN_IF_ERROR(Flush());
        Recording r;
        r.sealed.assign(value);
        CV_RETURN_IF_ERROR(calls::RecordingCopyKey(from_, to_, c->second, key, value, &r.copy_key));
        // Its chunks are read as they are now, not from the snapshot: a
        // recording deleted or replaced meanwhile fails to read; phase 3
        // copies whatever is there then.
        Status s =
            calls::CopyRecordingRekeyed(store_, from_, to_, c->second, key, value, &written_);
        if (s.ok()) {
          r.copied = true;
        } else {
          std::string now;
          rocksdb::Status g = db_->Get(rocksdb::ReadOptions(), from_->cf, key, &now);
          if (!g.ok() && !g.IsNotFound()) return fsutil::FromRocks(g, "read a recording manifest");
          if (g.ok() && now == value) return s;  // the recording as it was: a real failure
        }
        recordings_.emplace(std::string(key), std::move(r));
        return Status::OK();
      }
      default:
        return Status::Corruption("the tenant's column family holds a row of an unknown kind");
    }
  }

  Store::Impl* const store_;
  const TenantRef& from_;
  const TenantRef& to_;
  rocksdb::DB* const db_;
  rocksdb::WriteBatch batch_;
  std::map<std::string, std::string> calls_;  // old call hash -> call id (phase 1's snapshot)
  std::map<std::string, Recording> recordings_;  // old manifest key -> what phase 1 did
  uint64_t pos_ = 0;  // the feed sequence the copy is up to date with
  uint64_t read_ = 0;
  uint64_t total_ = 0;
  uint64_t written_ = 0;
  uint64_t dropped_ = 0;
};

}  // namespace

Result<Receipt> Store::Impl::RotateTenantKey(std::string_view tenant_id) {
  return RotateInto(tenant_id, std::nullopt);
}

Result<Receipt> Store::Impl::MoveTenantToShard(std::string_view tenant_id, uint32_t to_shard) {
  return RotateInto(tenant_id, to_shard);
}

// A key rotation whose copy goes to shard `to_shard` (decision 0057), or
// to the tenant's own shard (nullopt: RotateTenantKey).
Result<Receipt> Store::Impl::RotateInto(std::string_view tenant_id,
                                        std::optional<uint32_t> to_shard) {
  CV_RETURN_IF_ERROR(validate::Id("tenant_id", tenant_id));
  std::lock_guard<std::mutex> l(admin_mu_);
  // The refusals every operation gives (unknown, purged, quarantined,
  // damaged, a read-only open's unrecovered tenant), then a move's.
  {
    CV_ASSIGN_OR_RETURN(TenantRef ref, Acquire(tenant_id, Access::kInspect));
    std::lock_guard<std::mutex> r(ref->rec_mu);
    if (ref->moving.load() || ref->rec.move_state == codec::kMoveFenced) {
      return Status::FailedPrecondition(
          "tenant is held for a move to another store; rotate its key at its destination");
    }
    if (to_shard && ref->rec.rotation_state != codec::kRotationNone) {
      return Status::FailedPrecondition("a key rotation of this tenant is unfinished; reopen the "
                                        "store to complete or undo it, then move it");
    }
    // The target of a shard move (decision 0057): an open, undamaged shard
    // of this store other than the tenant's, with room for one more tenant.
    if (to_shard) {
      const uint32_t n = *to_shard;
      // shards_.size(): the next shard, opened for the move (below), so a
      // big tenant can be given a shard of its own.
      if (n > shards_.size() && !damaged_shards_.count(n)) {
        return Status::InvalidArgument("shard " + std::to_string(n) + " does not exist (the "
                                       "store has " + std::to_string(shards_.size()) +
                                       " shards; " + std::to_string(shards_.size()) +
                                       " opens a new one)");
      }
      if (n == ref->rec.shard) {
        return Status::AlreadyExists("the tenant is in shard " + std::to_string(n) + " already");
      }
      if (n < shards_.size() && (damaged_shards_.count(n) || !shards_[n])) {
        return Status::Corruption("shard " + std::to_string(n) + " is damaged (it did not open); "
                                  "nothing moved");
      }
      if (n < shards_.size() && shards_[n]->family_count() >= max_tenants_per_shard_) {
        return Status::ResourceExhausted(
            "shard " + std::to_string(n) + " holds " +
            std::to_string(shards_[n]->family_count()) + " column families, the store's "
            "max_tenants_per_shard is " + std::to_string(max_tenants_per_shard_));
      }
    }
  }
  // A move to the next shard opens it (empty: a new tenant may be placed
  // in it later whatever becomes of the move). Before the tenant is held:
  // it takes map_mu_, which Close takes before a tenant's life.
  if (to_shard && *to_shard == shards_.size()) {
    CV_RETURN_IF_ERROR(OpenNextShard().status());
  }
  // The tenant is served during the copy (decision 0038): held shared, as
  // a reader holds it, until the last phase of the copy. Purges, moves and
  // holds wait for admin_mu_.
  CV_ASSIGN_OR_RETURN(TenantRef served, Acquire(tenant_id, Access::kInspect));
  std::shared_ptr<Tenant> t = served.t;
  const codec::TenantRecord rec = t->Record();
  if (rec.rotation_state != codec::kRotationNone) {
    return Status::FailedPrecondition("a key rotation of this tenant is unfinished; reopen the "
                                      "store to complete or undo it");
  }
  // The copy's shard: the tenant's own for a rotation, the target for a
  // move. The old family stays in `from_shard`.
  Shard* const from_shard = t->shard;
  Shard* const shard = to_shard ? shards_[*to_shard].get() : from_shard;
  const bool moving = shard != from_shard;

  // 1. The registry says where the copy goes before anything of it exists,
  //    so recovery can always undo it.
  codec::TenantRecord copying = rec;
  copying.rotation_state = codec::kRotationCopying;
  copying.rotation_family = rec.family + 1;
  copying.rotation_cf_generation = next_internal_id_++;  // never reused
  copying.rotation_key_version = rec.key_version + 1;
  copying.rotation_shard = moving ? shard->index() : codec::kSameShard;
  {
    rocksdb::WriteBatch b;
    CV_RETURN_IF_ERROR(fsutil::FromRocks(
        b.Put(format::HeaderKey("next_internal_id"), std::to_string(next_internal_id_)),
        "registry batch"));
    CV_RETURN_IF_ERROR(WriteRegistry(copying, &b));
  }
  SetRotation(t.get(), copying);
  CV_KILL_POINT("rotate.after_begin");

  auto copy = std::make_shared<Tenant>();
  copy->rec = WithoutRotation(rec);
  copy->rec.family = copying.rotation_family;
  copy->rec.cf_generation = copying.rotation_cf_generation;
  copy->rec.key_version = copying.rotation_key_version;
  copy->rec.ad_internal_id = 0;  // sealed with its own internal id from now on
  copy->shard = shard;
  copy->compress_writes = true;  // no reseal filter reaches the copy's family
  auto undo = [&](Status why) -> Status {
    copy->cf = nullptr;  // RollBackRotation drops it by name
    copy->WipeKeys();
    codec::TenantRecord r = copying;
    Status s = RollBackRotation(&r, t.get());
    if (!s.ok()) {
      Log(LogLevel::kError, "key rotation: undoing a failed rotation failed (" + s.ToString() +
                                "); the next open undoes it");
    }
    return why;
  };

  // 2. The new DEK. It protects nothing yet: no KEK rotation.
  {
    Keyring next = keyring_.Clone();
    SecretBytes dek = crypto::RandomKey();
    DeriveKeys(copy.get(), dek);
    next.deks.emplace(std::make_pair(rec.internal_id, copying.rotation_key_version), std::move(dek));
    Status s = CommitKeyring(std::move(next), /*rotate=*/false);
    if (!s.ok()) return undo(s);
  }
  CV_KILL_POINT("rotate.after_keyring");

  // 3. The copy's family.
  {
    auto c = shard->Create(copy->family_name());
    if (!c.ok()) return undo(c.status());
    copy->cf = *c;
  }
  CV_KILL_POINT("rotate.after_family");

  // 4. The copy (online, decision 0038), then every WAL synced: the switch
  //    must not reach the disk before the rows it points to.
  uint64_t rows = 0;
  uint64_t read = 0;
  std::unique_lock<std::shared_mutex> life;
  {
    TenantRef to{copy, std::shared_lock<std::shared_mutex>(copy->life)};
    OnlineCopier copier(this, served, to);
    bool gap = false;
    // Phases 1 and 2: the tenant served.
    Status s = copier.CopySnapshot();
    if (s.ok()) RunHook("phase2");
    for (int round = 0; s.ok() && !gap && round < kMaxRounds; ++round) {
      uint64_t events = 0;
      s = copier.CatchUp(&events, &gap);
      if (events <= kHeldTail) break;
    }
    if (s.ok()) {
      // Phase 3: operations in flight finish first; new ones are held back
      // meanwhile (Tenant::exclusive_waiting), then wait on `life` until the
      // rotation ends.
      RunHook("phase3");
      served.lock.unlock();
      to.lock.unlock();  // lock order: the tenant's life before the copy's
      t->exclusive_waiting = true;
      life = std::unique_lock<std::shared_mutex>(t->life);
      t->exclusive_waiting = false;
      to.lock = std::shared_lock<std::shared_mutex>(copy->life);
      if (t->state.load() != TenantState::kActive || t->cf == nullptr) {
        s = Status::TenantPurged("tenant purged");
      } else if (t->quarantined.load() || t->damaged.load()) {
        s = Status::Corruption("tenant damaged or quarantined during its key rotation: undone");
      }
    }
    TenantRef held{t, std::shared_lock<std::shared_mutex>()};  // life held exclusively
    if (s.ok() && !gap) {
      uint64_t events = 0;
      s = copier.CatchUp(&events, &gap);
    }
    if (s.ok() && !gap) s = copier.CopyRest();
    read = copier.read();
    rows = copier.written();
    if (s.ok() && gap) {
      // The feed lost events after the copy's position (trimmed): which
      // calls changed is not known. The copy is made again from scratch,
      // the tenant held, as before decision 0038.
      Log(LogLevel::kWarn, "key rotation: the change feed was trimmed during the copy; copying "
                           "again with the tenant held");
      to.lock.unlock();
      {
        std::unique_lock<std::shared_mutex> x(copy->life);
        auto* old_copy = copy->cf;
        copy->cf = nullptr;
        s = shard->Drop(old_copy);
        if (s.ok()) {
          auto c = shard->Create(copy->family_name());
          if (c.ok()) {
            copy->cf = *c;
          } else {
            s = c.status();
          }
        }
      }
      to.lock = std::shared_lock<std::shared_mutex>(copy->life);
      if (s.ok()) {
        Copier again(this, held, to, /*base=*/read);
        s = again.Run(&rows);
        read += again.read();
      }
    }
    if (s.ok()) s = shard->SyncWal();
    if (!s.ok()) {
      to.lock.unlock();
      served.lock = std::shared_lock<std::shared_mutex>();
      if (IsStorageCorruption(s)) {
        // The source's files are damaged (decision 0014): the copy is
        // undone and the tenant marked, as any read that met them would.
        Status u = undo(s);
        if (life.owns_lock()) life.unlock();
        MarkDamaged(t, "key rotation: its column family's files are damaged: " + s.message());
        return u;
      }
      return undo(s);
    }
  }
  CV_KILL_POINT("rotate.after_copy");

  // 5. The switch: one registry write makes the copy the tenant.
  // The record as it is (registry writes take admin_mu_, held: it is the
  // COPYING one), with the copy's family, generation and key version.
  codec::TenantRecord switched = t->Record();
  switched.family = copy->rec.family;
  switched.cf_generation = copy->rec.cf_generation;
  switched.key_version = copy->rec.key_version;
  switched.ad_internal_id = copy->rec.ad_internal_id;
  switched.rotation_state = codec::kRotationShredding;
  switched.rotation_family = rec.family;
  switched.rotation_cf_generation = rec.cf_generation;
  switched.rotation_key_version = rec.key_version;
  if (moving) {
    // The tenant's record names the new shard; the old family is found in
    // the old one (decision 0057).
    switched.shard = shard->index();
    switched.rotation_shard = from_shard->index();
  }
  if (Status s = WriteRegistry(switched); !s.ok()) {
    // The record may still be in the metadata WAL and come back at the
    // next open, which then finishes the rotation: until then nothing may
    // be written to the old family, whose writes that would lose.
    {
      std::lock_guard<std::mutex> r(t->rec_mu);
      t->rotation_unfinished_why = "a key rotation could not record its switch to the new key (" +
                                   s.message() + "); reopen the store, which completes or undoes it";
    }
    t->rotation_unfinished = true;
    copy->WipeKeys();
    return s;
  }
  CV_KILL_POINT("rotate.after_switch");
  rocksdb::ColumnFamilyHandle* old_cf = t->cf;
  (void)old_cf;  // dropped by name in FinishRotation
  {
    // `shard` too: every reader of it holds `life` (the reseal lookup
    // included), held here exclusively.
    std::lock_guard<std::mutex> r(t->rec_mu);
    t->rec = switched;
    t->shard = shard;
    t->cf = copy->cf;
    t->record_key = std::move(copy->record_key);
    t->index_key = std::move(copy->index_key);
    t->cursor_key = std::move(copy->cursor_key);
    t->recording_key = std::move(copy->recording_key);
  }
  copy->cf = nullptr;
  if (moving) {
    // Its dictionaries were cached in the old shard's cache; the new
    // shard's loads them from the copy's rows.
    from_shard->dictionaries().EraseOwner(t->dicts.cache_owner);
  }

  // 6. Shred the old key, drop the old family, the receipt.
  auto done = FinishRotation(&switched, t.get(), rows);
  if (!done.ok()) {
    // The next open finishes this. Until then the tenant takes no write:
    // the registry value of step 1 (COPYING) can be put back by anyone who
    // can write the store directory, and while the old key is not shredded
    // the keyring cannot tell it from a real one, so recovery would undo
    // the rotation and drop the copy with every write made to it since the
    // switch (attack13: ReplayedCopyingAfterAFailedShred). Its reads are
    // served: every row is in the copy, sealed under the new key.
    {
      std::lock_guard<std::mutex> r(t->rec_mu);
      t->rotation_unfinished_why = "a key rotation switched to the new key but could not finish (" +
                                   done.status().message() + ")";
    }
    t->rotation_unfinished = true;
    return done.status();
  }
  {
    std::lock_guard<std::mutex> r(t->rec_mu);
    t->rec = switched;
  }
  ReportProgress("rotate", "rows", read, read, /*finished=*/true);
  return done;
}

Status Store::Impl::RollBackRotation(codec::TenantRecord* rec, Tenant* live) {
  if (rec->rotation_state != codec::kRotationCopying) return Status::OK();
  const uint32_t in = codec::RotationShard(*rec);  // the copy's shard (decision 0057)
  Shard* shard = in < shards_.size() ? shards_[in].get() : nullptr;
  if (shard != nullptr) {
    if (auto* cf = shard->Find(format::ColumnFamilyName(rec->internal_id, rec->rotation_family))) {
      CV_RETURN_IF_ERROR(shard->Drop(cf));
    }
  }
  if (keyring_.Find(rec->internal_id, rec->rotation_key_version) != nullptr) {
    // The copy's key sealed only the copy, dropped above: no KEK rotation.
    Keyring next = keyring_.Clone();
    next.deks.erase({rec->internal_id, rec->rotation_key_version});
    CV_RETURN_IF_ERROR(CommitKeyring(std::move(next), /*rotate=*/false));
  }
  codec::TenantRecord back = WithoutRotation(*rec);
  CV_RETURN_IF_ERROR(WriteRegistry(back));
  if (live != nullptr) SetRotation(live, back);
  *rec = back;
  Audit("tenant_key_rotation_undone", rec->tenant_id,
        IdText(rec->internal_id) + ": a key rotation that had not switched to its copy was "
                                   "undone; the tenant keeps key version " +
            std::to_string(rec->key_version) + "; run it again");
  return Status::OK();
}

Result<Receipt> Store::Impl::FinishRotation(codec::TenantRecord* rec, Tenant* live, uint64_t rows) {
  (void)live;
  Receipt r;
  r.kind = "key_rotation";
  r.tenant_id = rec->tenant_id;
  r.tenant_internal_id = rec->internal_id;
  r.column_family = format::ColumnFamilyName(rec->internal_id, rec->rotation_family);
  // The old family's shard: the tenant's before a shard move (decision 0057).
  const uint32_t old_shard = codec::RotationShard(*rec);
  r.shard = old_shard;
  r.key_versions_destroyed = {rec->rotation_key_version};
  rocksdb::WriteBatch deferred;  // written with the receipt
  // 1. Crypto-shred the old DEK: the keyring without it under a new KEK
  //    generation, the old KEK destroyed (CommitKeyring).
  if (keyring_.Find(rec->internal_id, rec->rotation_key_version) != nullptr) {
    Keyring next = keyring_.Clone();
    next.deks.erase({rec->internal_id, rec->rotation_key_version});
    r.kek_generation_retired = keyring_.kek_generation;
    CV_RETURN_IF_ERROR(CommitKeyring(std::move(next), /*rotate=*/true, &deferred));
  } else {
    // Shredded before a crash: which KEK that retired is not known here.
    CV_RETURN_IF_ERROR(RetireStaleKeys());
  }
  if (r.kek_generation_retired != 0) {
    CV_ASSIGN_OR_RETURN(r.irrecoverable_after,
                        kp_->IrrecoverableAfter(r.kek_generation_retired, NowMicros()));
  }
  CV_KILL_POINT("rotate.after_shred");
  // 2. Drop the old family (unreadable now).
  Shard* shard = old_shard < shards_.size() ? shards_[old_shard].get() : nullptr;
  if (shard == nullptr) {
    return Status::Corruption("key rotation: the old family's shard is not open; its old column "
                              "family is dropped at an open that opens it");
  }
  if (auto* cf = shard->Find(r.column_family)) {
    uint64_t keys = 0, sst = 0, blobs = 0;
    shard->db()->GetIntProperty(cf, "rocksdb.estimate-num-keys", &keys);
    shard->db()->GetIntProperty(cf, "rocksdb.live-sst-files-size", &sst);
    shard->db()->GetIntProperty(cf, "rocksdb.live-blob-file-size", &blobs);
    r.records = rows != 0 ? rows : keys;
    r.bytes = sst + blobs;
    CV_RETURN_IF_ERROR(shard->Drop(cf));
  } else {
    r.records = rows;
  }
  CV_KILL_POINT("rotate.after_drop");
  // 3. The receipt and the registry without the rotation, in one batch.
  r.kek_generation_current = keyring_.kek_generation;
  r.keyring_generation = keyring_.generation;
  codec::TenantRecord done = WithoutRotation(*rec);
  const std::string key = format::RegistryKey(TenantHash(done.tenant_id));
  CV_RETURN_IF_ERROR(fsutil::FromRocks(
      deferred.Put(key, record::Seal(store_data_key_, record::Binding{}, key,
                                     codec::EncodeTenant(done))),
      "registry batch"));
  CV_ASSIGN_OR_RETURN(Receipt receipt, AppendReceipt(std::move(r), nullptr, &deferred));
  *rec = done;
  CV_KILL_POINT("rotate.after_receipt");
  if (receipt.kek_generation_retired != 0) {
    Audit("key_rotation", "", "kek_generation " + std::to_string(receipt.kek_generation_retired) +
                                  " destroyed, " +
                                  std::to_string(receipt.kek_generation_current) + " current");
  }
  Audit("tenant_key_rotated", done.tenant_id,
        IdText(done.internal_id) + " key_version " + std::to_string(done.key_version) +
            " (version " + std::to_string(receipt.key_versions_destroyed.front()) +
            " destroyed) receipt=" + std::to_string(receipt.sequence));
  return receipt;
}

namespace testing {
void SetRotationHookForTest(std::function<void(const char* phase)> hook) {
  std::lock_guard<std::mutex> l(g_hook_mu);
  g_hook = std::move(hook);
}
}  // namespace testing

}  // namespace callvault
