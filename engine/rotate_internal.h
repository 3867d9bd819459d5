// Internals of the online key rotation (rotate.cc, decision 0038) that live
// next to the code they depend on: recording rows (recordings.cc) and change
// feed events (changes.cc). Included by those files, rotate.cc and tests.
#ifndef CALLVAULT_ENGINE_ROTATE_INTERNAL_H_
#define CALLVAULT_ENGINE_ROTATE_INTERNAL_H_

#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "callvault/status.h"
#include "engine/store_impl.h"

namespace callvault {

namespace calls {
// recordings.cc: the key in `to` of the manifest that the complete
// recording whose manifest row of `from` is (`manifest_key`, `sealed`), a
// recording of call `call_id`, has once copied (CopyRecordingRekeyed).
Status RecordingCopyKey(const TenantRef& from, const TenantRef& to, std::string_view call_id,
                        std::string_view manifest_key, std::string_view sealed,
                        std::string* copy_key);
// recordings.cc: adds to `b` the deletes of the manifest at `manifest_key`
// of `t`, its pending marker and every chunk stored under its names
// (however many, with or without a manifest).
Status PlanDeleteRecordingRows(const TenantRef& t, std::string_view manifest_key,
                               rocksdb::WriteBatch* b);
}  // namespace calls

// changes.cc: the call id an opened change feed event names.
Status ChangeEventCallId(std::string_view plain, std::string* call_id);
// changes.cc: an iterator over `t`'s feed rows (`L`) only, as of `ro`.
std::unique_ptr<rocksdb::Iterator> NewFeedIterator(const TenantRef& t,
                                                   const rocksdb::ReadOptions& ro);
// changes.cc: the sequence of the newest event of `t`'s feed as of `ro` (0:
// none). Key rotation (decision 0038) and tenant moves (decision 0043).
Status LastChangeSequence(const TenantRef& t, const rocksdb::ReadOptions& ro, uint64_t* seq);
// changes.cc: calls `each(row key, sealed value, call id)` for every event
// of `t`'s feed after sequence `pos` as of `ro`, in order; *last is the
// last sequence read (`pos` if none). *gap: the event after `pos` is no
// longer held (trimmed), so the calls changed since cannot be known;
// nothing more is read and *last is `pos`.
Status ChangedCallsSince(const TenantRef& t, const rocksdb::ReadOptions& ro, uint64_t pos,
                         const std::function<Status(std::string_view key, std::string_view sealed,
                                                    std::string call_id)>& each,
                         uint64_t* last, bool* gap);

namespace testing {
// Called by RotateTenantKey at "phase1" (the copy's snapshot is taken, the
// copy not begun), "phase2" (the snapshot copied, the feed not yet caught
// up) and "phase3" (the tenant about to be held); the tenant is served at
// each. nullptr: none. Tests only.
void SetRotationHookForTest(std::function<void(const char* phase)> hook);
}  // namespace testing

}  // namespace callvault

#endif  // CALLVAULT_ENGINE_ROTATE_INTERNAL_H_
