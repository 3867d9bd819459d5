// Helpers shared by calls.cc, list.cc and subjects.cc.
#ifndef CALLVAULT_ENGINE_CALLS_INTERNAL_H_
#define CALLVAULT_ENGINE_CALLS_INTERNAL_H_

#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/store_impl.h"

namespace callvault::calls {

// Reads and opens one sealed value; *found false when absent. With
// `stored`, also the value's stored (sealed) bytes.
Status GetSealed(const TenantRef& t, const rocksdb::ReadOptions& ro, const std::string& key,
                 std::string* plain, bool* found, std::string* stored = nullptr);
Status ReadMeta(const TenantRef& t, std::string_view call_hash, Call* out, uint32_t* parts,
                bool* found);
// Reads the transcript or insights part into `call`.
Status ReadPart(const TenantRef& t, std::string_view call_hash, format::Part part, Call* call);
// Adds to `b` the writes that store `call` under `hash`, replacing `old`
// (nullptr when new) and its stale index entries. Only the heavy parts named
// in `rewrite` (kPartTranscript, kPartInsights) are written or removed from
// `call`; the others keep their stored records untouched (UpdateCall).
Status PlanWrite(const TenantRef& t, const Call* old, uint32_t old_parts, const Call& call,
                 std::string_view hash, rocksdb::WriteBatch* b,
                 uint32_t rewrite = kPartTranscript | kPartInsights);

// Versions (docs/decisions/0028). The tenant's counter: the highest version
// assigned in it (its `V` row; 1 when absent, a format 1 tenant).
Status ReadVersionCounter(const TenantRef& t, uint64_t* counter);
// Adds the counter's new value to `b`.
Status PutVersionCounter(const TenantRef& t, rocksdb::WriteBatch* b, uint64_t counter);
// The version of a write to a call whose version is `old_version` (0: new):
// above the counter and the call's version; advances the counter.
uint64_t NextVersion(uint64_t* counter, uint64_t old_version);
// kConflict unless `expected` is unset or matches (0: the call is absent).
Status CheckExpected(std::optional<uint64_t> expected, bool found, uint64_t version);
// Adds to `b` the deletes of every record and index entry of `old`.
Status PlanDelete(const TenantRef& t, const Call& old, std::string_view hash, rocksdb::WriteBatch* b);

// About the bytes of a write batch that puts `calls` (their transcripts and
// LLM summaries, plus a few KiB each for metadata, index rows and
// envelopes; at most 64 MiB): reserved up front, so the batch of a long
// call is not copied over and over as it grows.
size_t BatchBytesHint(const std::vector<Call>& calls);

// Counts the tenant's calls (its time-index entries), stopping at `limit`.
Status CountTimeIndex(const TenantRef& t, uint64_t limit, uint64_t* n);

// The participant fields an erasure removes (subjects.cc Redact), which
// dictionary training (dictionaries.cc) also leaves out of its samples.
inline void ClearIdentity(Participant* p) {
  p->name.clear();
  p->email.clear();
  p->phone.clear();
  p->title.clear();
  p->user_id.clear();
}

// recordings.cc: adds the deletes of every recording of a call.
Status PlanDeleteRecordings(const TenantRef& t, std::string_view call_hash, rocksdb::WriteBatch* b);
// recordings.cc: adds the deletes of one recording, named by its blind
// hashes (a tombstone log line); *found false (and nothing added) if the
// recording is not there, else *created_at is its manifest's.
Status PlanDeleteRecordingByHash(const TenantRef& t, std::string_view call_hash,
                                 std::string_view rec_hash, rocksdb::WriteBatch* b, bool* found,
                                 int64_t* created_at);
// recordings.cc: opens a manifest and every chunk of its recording.
Status VerifyRecording(const TenantRef& t, std::string_view manifest_key, std::string_view sealed,
                       uint64_t* chunks);
// recordings.cc, key rotation (decision 0036): copies the complete
// recording whose manifest row of `from` is (`manifest_key`, `sealed`), a
// recording of call `call_id`, into `to`: every chunk opened under
// `from`'s keys and sealed again (chunk format 2, a fresh nonce prefix)
// under `to`'s, at `to`'s blind hashes, then its manifest. Unsynced (the
// caller syncs the WAL before it relies on the copy). Adds the rows
// written to *rows.
Status CopyRecordingRekeyed(Store::Impl* store, const TenantRef& from, const TenantRef& to,
                            std::string_view call_id, std::string_view manifest_key,
                            std::string_view sealed, uint64_t* rows);
// recordings.cc: removes recordings whose writer never finished.
Status CleanIncompleteRecordings(const TenantRef& t);
// recordings.cc, tests only: the chunk format new recordings are written in
// (2, the default; 1, the secretstream format of decision 0003).
void SetRecordingWriteFormatForTest(uint32_t chunk_format);
// Ingested recordings start a new table file after this many bytes of
// chunks (0: the default, 256 MiB).
void SetRecordingIngestFileBytesForTest(uint64_t bytes);

}  // namespace callvault::calls

#endif  // CALLVAULT_ENGINE_CALLS_INTERNAL_H_
