// A tenant's data export: every call of one tenant, with every part, and
// every recording, written to a directory in a portable, documented form
// (docs/format.md, "Export format") so that a customer gets a copy of their
// data (before they churn, for instance). Distinct from a backup or a
// tenant move: the export holds plaintext and no key.
//
// A layer over the public API only (Store::CountCalls, ListCalls, GetCall,
// ListRecordings, ReadRecording) and tools/json's CallToJson; the engine does
// not know it exists. It only reads: holds, retention, churn deadlines,
// receipts and audit events are untouched, and a store opened read-only
// (Options::read_only, e.g. beside a live writer) exports as well.
//
// What DIR holds afterwards:
//   calls.ndjson        one call per line: CallToJson(call, reveal, kPartAll),
//                       which ParseCalls (and `callvault call put`) reads back
//   recordings/<n>.<ext> one file per recording, n = 1, 2, ...; the extension
//                       comes from a fixed table of content types ("bin"
//                       otherwise), never from a caller-supplied id
//   manifest.json       format version, tenant id, times, counts, and the
//                       SHA-256 and size of every other file; which call and
//                       recording id each recording file holds
// DIR is created 0700 and every file 0600 (it holds personal data). Files
// are written through descriptors opened relative to DIR's own descriptor
// (O_NOFOLLOW), fsynced, and manifest.json is renamed into place last: a
// DIR without manifest.json is an interrupted export, not a short one.
//
// Memory: one call at a time (decoded, as a JSON tree and as its line: a
// few times the call's size, tens of MiB for the largest call limits.h
// allows, well under 1 MiB for a typical one), one page of call metadata
// (ExportOptions::page_size), one recording chunk (1 MiB) and a 256 KiB
// write buffer per open file; nothing grows with the number of calls or
// recordings (the manifest's list of files is streamed to disk, not kept).
// tests/export measures it: 2,000 calls (~80 MB of NDJSON) grow the peak
// resident memory by ~12 MiB, most of it RocksDB's block cache.
//
// Consistency: the export is not a snapshot of a live tenant. A call that
// exists unchanged for the whole export appears exactly once (ListCalls'
// cursor guarantee); a call written or deleted meanwhile may or may not
// appear, and one whose started_at changes meanwhile may appear twice (a
// reader keeps the last line of each call_id). Export from a read-only open
// for a fixed picture.
//
// Why it is built this way: docs/decisions/0016-tenant-export.md.
//
// Thread safety: ExportTenantData may run concurrently with any other use of
// the store; the options' callback is called from the calling thread.
#ifndef CALLVAULT_EXPORT_H_
#define CALLVAULT_EXPORT_H_

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "callvault/status.h"
#include "callvault/store.h"

namespace callvault {

// The manifest's "format_version"; a reader refuses versions it does not know.
inline constexpr int kExportFormatVersion = 1;

struct ExportProgress {
  uint64_t calls_done = 0;
  // CountCalls at the start; a live tenant may end with more or fewer.
  uint64_t calls_total = 0;
  uint64_t recordings_done = 0;
  uint64_t bytes_written = 0;  // all files so far
  bool done = false;  // the last call: the export is complete
};

struct ExportOptions {
  // Called after each call (with its recordings) is written, and once at
  // the end. Must not call back into the export. Default: none.
  std::function<void(const ExportProgress&)> progress;
  // Calls listed per ListCalls page (1..limits::kMaxListLimit). Default: 100.
  size_t page_size = 100;
};

struct ExportReport {
  std::string dir;
  uint64_t calls = 0;
  uint64_t recordings = 0;
  uint64_t recording_bytes = 0;
  uint64_t calls_bytes = 0;  // size of calls.ndjson
  uint64_t bytes = 0;        // every file but manifest.json
  std::string manifest_sha256;  // hex, of manifest.json as written
  int64_t exported_at = 0;   // microseconds since epoch, when it began
};

// Exports `tenant_id` into `dir`. Refused before anything is written:
//  - kInvalidArgument: dir is empty, a symbolic link, or not a directory;
//    the page size is out of range;
//  - kAlreadyExists: dir exists and is not empty (an earlier export, or
//    anything else: nothing is overwritten);
//  - kNotFound: no such tenant, or dir's parent does not exist;
//  - kTenantPurged: the tenant is purged or being purged;
//  - the tenant's own read errors (kFailedPrecondition for a churned tenant
//    whose reads are refused, kCorruption for a damaged or quarantined one).
// Later failures (kIOError writing, kCorruption reading, a recording whose
// content does not match the SHA-256 the store recorded) remove what this
// export wrote and the directory if it created it; a crash leaves a DIR
// without manifest.json. Messages name the step and the file, never a call,
// tenant or recording id or any content.
Result<ExportReport> ExportTenantData(Store& store, std::string_view tenant_id,
                                      const std::string& dir, const ExportOptions& options = {});

// The file name (relative to DIR) of the n-th recording (n >= 1) with this
// content type: "recordings/<n>.<ext>", ext from a fixed table
// (docs/format.md), "bin" for any other type.
std::string ExportRecordingFileName(uint64_t n, std::string_view content_type);

}  // namespace callvault

#endif  // CALLVAULT_EXPORT_H_
