// Recordings: chunks of 1 MiB in the tenant's column family (large values
// go to blob files), written by a streaming writer and read by byte range.
//
// Chunk format 2 (written today; docs/decisions/0033-recording-chunks-aead.md):
// each chunk is one crypto_aead_xchacha20poly1305_ietf message under a key
// derived once per recording, with the nonce = a random 16-byte prefix of the
// recording (stored in front of every chunk and in the sealed manifest) ||
// the chunk index (8, LE). The associated data binds the tenant, its column
// family generation, the call and recording (blind hashes), the chunk index
// and whether the chunk is the last one (FINAL): a reader derives all of it
// from docs/format.md with public libsodium calls alone. A reordered, moved,
// truncated chunk, or one of an earlier incarnation of the same recording
// fails.
//
// Chunk format 1 (read only): a crypto_secretstream_xchacha20poly1305 stream
// whose chunks each carry the 12-byte state nonce as it was before the chunk
// was pushed (docs/decisions/0003-recording-chunks.md).
#include <rocksdb/sst_file_reader.h>
#include <rocksdb/sst_file_writer.h>
#include <rocksdb/table.h>
#include <rocksdb/table_properties.h>
#include <rocksdb/write_batch.h>
#include <sodium.h>
#include <sys/stat.h>

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <optional>
#include <system_error>
#include <thread>

#include "call_generated.h"
#include "callvault/store.h"
#include "engine/calls_internal.h"
#include "engine/metrics_internal.h"
#include "engine/crypto.h"
#include "engine/sha256.h"
#include "engine/fs_util.h"
#include "engine/indexing.h"
#include "engine/kill_point.h"
#include "engine/rotate_internal.h"
#include "engine/store_impl.h"
#include "engine/validate.h"
#include "format/coding.h"
#include "format/verify.h"

namespace callvault {

namespace {

// Format 1: secretstream.
using State = crypto_secretstream_xchacha20poly1305_state;
constexpr size_t kStateNonceBytes = sizeof(State{}.nonce);
constexpr size_t kHeaderBytes = crypto_secretstream_xchacha20poly1305_HEADERBYTES;
constexpr size_t kStreamOverhead = crypto_secretstream_xchacha20poly1305_ABYTES;
// Format 2: XChaCha20-Poly1305 (IETF) per chunk.
constexpr uint32_t kFormatSecretstream = 1;
constexpr uint32_t kFormatAead = 2;
constexpr size_t kPrefixBytes = 16;
constexpr size_t kAeadTagBytes = crypto_aead_xchacha20poly1305_ietf_ABYTES;
static_assert(kPrefixBytes + 8 == crypto_aead_xchacha20poly1305_ietf_NPUBBYTES);
constexpr char kRecordingDomain = 'R';
// Ingested recordings (decision 0055): a recording's chunks go into table
// files of at most about this many bytes each, all ingested at Finish in
// one IngestExternalFile (atomic: all of them or none). Smaller files make
// the compactions that later move the chunks into blob files finer.
// Tests set less to start files after a few chunks.
std::atomic<uint64_t> g_ingest_file_bytes{uint64_t{256} << 20};

// The chunk format new recordings are written in (tests set 1 to make
// recordings of the old format).
std::atomic<uint32_t> g_write_format{kFormatAead};

struct Names {
  std::string call_hash;
  std::string rec_hash;
};

Names NamesOf(const TenantRef& t, std::string_view call_id, std::string_view recording_id) {
  return Names{indexing::CallHash(t->index_key, call_id),
               crypto::BlindHash(t->index_key, kRecordingDomain, recording_id)};
}

// What a reader needs besides the manifest's info: the chunk format and
// its per-recording material (format 1: the 24-byte stream header; format
// 2: the 16-byte nonce prefix).
struct Stream {
  uint32_t format = kFormatAead;
  std::string material;
};

// The key of one recording, bound to tenant, column family, call and
// recording: keyed BLAKE2b-256 under the recording subkey.
SecretBytes StreamKey(const TenantRef& t, const Names& n, uint32_t format) {
  std::string m = format == kFormatSecretstream ? "cvrs1" : "cvrs2";
  format::PutFixed64BE(&m, t->ad_id());
  format::PutFixed64BE(&m, t->rec.cf_generation);
  m += n.call_hash;
  m += n.rec_hash;
  SecretBytes k(crypto::kKeyBytes);
  crypto_generichash(k.data(), k.size(), reinterpret_cast<const unsigned char*>(m.data()), m.size(),
                     t->recording_key.data(), t->recording_key.size());
  return k;
}

// Format 1: "cvrc1" binding index. Format 2: "cvrc2" binding index final.
std::string ChunkAd(const TenantRef& t, const Names& n, uint32_t format, uint32_t index, bool final) {
  std::string ad = format == kFormatSecretstream ? "cvrc1" : "cvrc2";
  format::PutFixed64BE(&ad, t->ad_id());
  format::PutFixed64BE(&ad, t->rec.cf_generation);
  ad += n.call_hash;
  ad += n.rec_hash;
  format::PutFixed32LE(&ad, index);
  if (format == kFormatAead) ad.push_back(final ? '\x01' : '\x00');
  return ad;
}

// Format 2: nonce prefix || chunk index (8, LE).
void ChunkNonce(std::string_view prefix, uint32_t index, unsigned char out[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES]) {
  std::memcpy(out, prefix.data(), kPrefixBytes);
  uint64_t v = index;
  for (size_t b = 0; b < 8; ++b) out[kPrefixBytes + b] = static_cast<unsigned char>(v >> (8 * b));
}

// Format 2: seals chunk `index` (plaintext `plain`, associated data `ad`)
// into *value: the recording's nonce prefix, then the AEAD message.
void SealAeadChunk(std::string_view prefix, const SecretBytes& key, std::string_view plain, std::string_view ad,
                   uint32_t index, std::string* value) {
  value->resize(kPrefixBytes + plain.size() + kAeadTagBytes);
  std::memcpy(value->data(), prefix.data(), kPrefixBytes);
  unsigned char nonce[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES];
  ChunkNonce(prefix, index, nonce);
  crypto::AeadSealTo(reinterpret_cast<unsigned char*>(value->data() + kPrefixBytes),
                     reinterpret_cast<const unsigned char*>(plain.data()), plain.size(), ad, nonce, key.data());
}

std::string EncodeManifest(const RecordingInfo& info, uint32_t chunk_bytes, const Stream& stream) {
  flatbuffers::FlatBufferBuilder b(256);
  auto sha = b.CreateVector(reinterpret_cast<const uint8_t*>(info.sha256.data()), info.sha256.size());
  auto material = b.CreateVector(reinterpret_cast<const uint8_t*>(stream.material.data()), stream.material.size());
  auto rid = b.CreateString(info.recording_id);
  auto ctype = b.CreateString(info.content_type);
  fb::RecordingManifestBuilder m(b);
  m.add_recording_id(rid);
  m.add_content_type(ctype);
  m.add_duration_ms(info.duration_ms);
  m.add_size(info.size);
  m.add_chunk_bytes(chunk_bytes);
  m.add_chunks(info.chunks);
  m.add_sha256(sha);
  m.add_created_at(info.created_at);
  if (stream.format == kFormatSecretstream) {
    m.add_stream_header(material);
  } else {
    m.add_chunk_format(stream.format);
    m.add_nonce_prefix(material);
  }
  b.Finish(m.Finish());
  return std::string(reinterpret_cast<const char*>(b.GetBufferPointer()), b.GetSize());
}

Status DecodeManifest(std::string plain, RecordingInfo* info, Stream* stream) {
  if (!format::VerifyRecordingManifest(reinterpret_cast<const uint8_t*>(plain.data()), plain.size())) {
    return Status::Corruption("recording manifest fails FlatBuffers verification");
  }
  const auto* m = flatbuffers::GetRoot<fb::RecordingManifest>(plain.data());
  // The writer seals size / chunk_bytes full chunks, then the rest (maybe
  // nothing) as the FINAL chunk.
  if (!m->sha256() || m->sha256()->size() != kSha256Bytes || m->chunk_bytes() != kRecordingChunkBytes ||
      m->size() / m->chunk_bytes() + 1 != m->chunks()) {
    return Status::Corruption("recording manifest is inconsistent");
  }
  // Format 1 has no chunk_format (0) and a stream header; format 2 has a
  // nonce prefix and no stream header. Anything else is not ours.
  if (m->chunk_format() == 0) {
    if (!m->stream_header() || m->stream_header()->size() != kHeaderBytes || m->nonce_prefix()) {
      return Status::Corruption("recording manifest is inconsistent");
    }
    stream->format = kFormatSecretstream;
    stream->material.assign(reinterpret_cast<const char*>(m->stream_header()->data()), kHeaderBytes);
  } else if (m->chunk_format() == kFormatAead) {
    if (!m->nonce_prefix() || m->nonce_prefix()->size() != kPrefixBytes || m->stream_header()) {
      return Status::Corruption("recording manifest is inconsistent");
    }
    stream->format = kFormatAead;
    stream->material.assign(reinterpret_cast<const char*>(m->nonce_prefix()->data()), kPrefixBytes);
  } else {
    return Status::Corruption("recording manifest names an unknown chunk format");
  }
  info->recording_id = m->recording_id() ? m->recording_id()->str() : "";
  info->content_type = m->content_type() ? m->content_type()->str() : "";
  info->duration_ms = m->duration_ms();
  info->size = m->size();
  info->chunks = m->chunks();
  info->created_at = m->created_at();
  info->sha256.assign(reinterpret_cast<const char*>(m->sha256()->data()), m->sha256()->size());
  return Status::OK();
}

// With `stored`, also the manifest row's stored (sealed) bytes: they are
// unique to one write of the recording (a random nonce), so a read can
// tell later whether the recording it began is still the one there.
Status ReadManifest(const TenantRef& t, const Names& n, RecordingInfo* info, Stream* stream,
                    std::string* stored = nullptr) {
  std::string plain;
  bool found = false;
  CV_RETURN_IF_ERROR(calls::GetSealed(t, rocksdb::ReadOptions(),
                                      format::RecordingKey(format::kRecordingManifestPrefix, n.call_hash, n.rec_hash),
                                      &plain, &found, stored));
  if (!found) return Status::NotFound("no such recording");
  return DecodeManifest(std::move(plain), info, stream);
}

// Deletes chunks [0, chunks) and the manifest and pending markers.
Status PlanDeleteRecording(const TenantRef& t, const Names& n, uint32_t chunks, rocksdb::WriteBatch* b) {
  for (uint32_t i = 0; i < chunks; ++i) {
    CV_RETURN_IF_ERROR(fsutil::FromRocks(b->Delete(t->cf, format::RecordingChunkKey(n.call_hash, n.rec_hash, i)), "batch"));
  }
  for (char kind : {format::kRecordingManifestPrefix, format::kRecordingPendingPrefix}) {
    CV_RETURN_IF_ERROR(fsutil::FromRocks(b->Delete(t->cf, format::RecordingKey(kind, n.call_hash, n.rec_hash)), "batch"));
  }
  return Status::OK();
}

// Deletes every chunk stored for the recording, however many.
Status PlanDeleteAllChunks(const TenantRef& t, const Names& n, rocksdb::WriteBatch* b) {
  const std::string prefix = format::RecordingKey(format::kRecordingChunkPrefix, n.call_hash, n.rec_hash);
  std::unique_ptr<rocksdb::Iterator> it(t->shard->db()->NewIterator(rocksdb::ReadOptions(), t->cf));
  uint32_t count = 0;
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) ++count;
  CV_RETURN_IF_ERROR(fsutil::FromRocks(it->status(), "scan recording chunks"));
  return PlanDeleteRecording(t, n, count, b);
}

class Writer final : public RecordingWriter {
 public:
  Writer(Store::Impl* store, std::string tenant_id, std::string call_id, RecordingSpec spec)
      : store_(store), tenant_id_(std::move(tenant_id)), call_id_(std::move(call_id)),
        spec_(std::move(spec)), state_(sizeof(State)) {}
  ~Writer() override {
    if (!done_) Abort().IgnoreError();
    StopWorker();  // Abort stops it too, unless the writer was done or never began
  }

  Status Begin(const TenantRef& t, const Names& n, std::string marker) {
    names_ = n;
    marker_ = std::move(marker);
    key_version_ = t->rec.key_version;
    stream_.format = g_write_format.load(std::memory_order_relaxed);
    key_ = StreamKey(t, n, stream_.format);
    if (stream_.format == kFormatSecretstream) {
      stream_.material.resize(kHeaderBytes);
      crypto_secretstream_xchacha20poly1305_init_push(
          State_(), reinterpret_cast<unsigned char*>(stream_.material.data()), key_.data());
    } else {
      // Random per incarnation: a recording deleted and written again under
      // the same ids has the same key; its nonces must not repeat.
      stream_.material = crypto::RandomString(kPrefixBytes);
    }
    buffer_.reserve(kRecordingChunkBytes);
    ingest_ = t->shard->recording_ingest();
    pipeline_ = ingest_ && t->shard->recording_pipeline();
    if (pipeline_) {
      for (Job& j : jobs_) j.plain.reserve(kRecordingChunkBytes);
    }
    started_ = true;
    return Status::OK();
  }

  Status Append(std::string_view bytes) override {
    metrics::Timer timer(&store_->res_->metrics, Op::kRecordingWrite);
    return timer.Done(AppendImpl(bytes));
  }
  Result<RecordingInfo> Finish() override {
    metrics::Timer timer(&store_->res_->metrics, Op::kRecordingWrite);
    return timer.Done(FinishImpl());
  }

 private:
  Status AppendImpl(std::string_view bytes) {
    if (done_) return Status::FailedPrecondition("recording writer already finished");
    if (size_ + bytes.size() > kMaxRecordingBytes) {
      return Status::InvalidArgument("recording: larger than " + std::to_string(kMaxRecordingBytes) + " bytes");
    }
    // A failed chunk of the worker is this call's error, even when this
    // call fills no chunk (without waiting for the chunk in flight).
    if (pipeline_ && broken_.ok()) CV_RETURN_IF_ERROR(PollWorkerError());
    size_ += bytes.size();
    while (!bytes.empty()) {
      size_t take = std::min(bytes.size(), kRecordingChunkBytes - buffer_.size());
      buffer_.append(bytes.substr(0, take));
      // The content hash, in order, of the bytes just copied: hot in the
      // cache there (SHA-256 here runs at ~1.9 GB/s from the cache, ~1.2
      // from memory).
      sha_.Update(std::string_view(buffer_).substr(buffer_.size() - take));
      bytes.remove_prefix(take);
      if (buffer_.size() == kRecordingChunkBytes) CV_RETURN_IF_ERROR(Seal(false));
    }
    return Status::OK();
  }

  Result<RecordingInfo> FinishImpl() {
    if (done_) return Status::FailedPrecondition("recording writer already finished");
    RecordingInfo info;
    if (pipeline_) {
      // The worker's chunks sealed and in the file first.
      if (broken_.ok()) CV_RETURN_IF_ERROR(TakeWorkerError());
      if (!broken_.ok()) return broken_;
    }
    CV_RETURN_IF_ERROR(sha_.Final(&info.sha256));
    if (!spec_.expected_sha256.empty() && !crypto::ConstantTimeEquals(spec_.expected_sha256, info.sha256)) {
      Abort().IgnoreError();
      return Status::InvalidArgument("recording: content does not match expected_sha256; nothing kept");
    }
    if (!broken_.ok()) return broken_;
    CV_RETURN_IF_ERROR(Seal(true));
    if (pipeline_) CV_RETURN_IF_ERROR(TakeWorkerError());
    if (ingest_) {
      Status s = CloseFile();
      if (!s.ok()) {
        DropFiles();
        broken_ = s;
        return s;
      }
    }
    info.recording_id = spec_.recording_id;
    info.content_type = spec_.content_type;
    info.duration_ms = spec_.duration_ms;
    info.size = size_;
    info.chunks = next_chunk_;
    info.created_at = NowMicros();
    Result<TenantRef> acquired = store_->AcquireForRecording(tenant_id_);
    if (!acquired.ok()) {
      DropFiles();  // purged (or closed) while written: its file goes now
      return acquired.status();
    }
    TenantRef t = std::move(*acquired);
    std::lock_guard<std::mutex> w(t->write_mu);
    // DeleteCall (or erasure, or retention) removes the marker of a
    // recording being written; then nothing of it may be kept.
    CV_ASSIGN_OR_RETURN(Owner owner, OwnerOfNames(t));
    if (owner != Owner::kThisWriter) {
      done_ = true;
      Wipe();
      DropFiles();
      if (owner == Owner::kNobody) {
        rocksdb::WriteBatch drop;
        CV_RETURN_IF_ERROR(PlanDeleteRecording(t, names_, ingest_ ? 0 : next_chunk_, &drop));
        CV_RETURN_IF_ERROR(fsutil::FromRocks(t->shard->db()->Write(rocksdb::WriteOptions(), &drop), "drop recording"));
      }
      if (t->rec.key_version != key_version_) return RotatedError();
      return Status::NotFound("the call was deleted while its recording was written; nothing was kept");
    }
    rocksdb::WriteBatch b;
    const std::string mkey = format::RecordingKey(format::kRecordingManifestPrefix, names_.call_hash, names_.rec_hash);
    CV_RETURN_IF_ERROR(fsutil::FromRocks(
        b.Put(t->cf, mkey, record::Seal(t->record_key, t->binding(), mkey,
                                        EncodeManifest(info, kRecordingChunkBytes, stream_))),
        "batch"));
    CV_RETURN_IF_ERROR(fsutil::FromRocks(
        b.Delete(t->cf, format::RecordingKey(format::kRecordingPendingPrefix, names_.call_hash, names_.rec_hash)), "batch"));
    if (ingest_) {
      // The marker is synced first (its Put was not): chunks that an
      // ingestion made durable must never outlive it in a power loss, or
      // no open would find them to clean (CleanIncompleteRecordings).
      Status s = t->shard->SyncWal();
      if (s.ok() && t->rec.key_version != key_version_) s = RotatedError();
      if (!s.ok()) {
        DropFiles();
        return s;
      }
      CV_KILL_POINT("recording.before_ingest");
      s = CheckOwnFiles(t);
      if (!s.ok()) {
        DropFiles();
        return s;
      }
      // Linked into the shard's directory (move_files), synced with that
      // directory and recorded in the synced MANIFEST before this returns
      // (RocksDB 7.8.3, ExternalSstFileIngestionJob). Atomic: every file
      // or none. Keys under an earlier incarnation's tombstones get a
      // sequence number above them (ingestion flushes an overlapping
      // memtable first). The sequence number lives in the MANIFEST only:
      // the file is not rewritten in place.
      rocksdb::IngestExternalFileOptions io;
      io.move_files = true;  // a copy (synced) where a hard link fails
      io.write_global_seqno = false;
      io.verify_checksums_before_ingest = false;
      rocksdb::Status is = t->shard->db()->IngestExternalFile(t->cf, files_, io);
      if (!is.ok()) {
        DropFiles();
        return fsutil::FromRocks(is, "ingest recording chunks");
      }
      files_.clear();  // moved into the shard: RocksDB removed our names
      finished_.clear();
      ingested_ = true;
      CV_KILL_POINT("recording.after_ingest");
    } else {
      // The chunks went to the WAL unsynced; sync every live WAL, then the
      // manifest with a synced write: the recording is visible only whole.
      CV_RETURN_IF_ERROR(t->shard->SyncWal());
    }
    rocksdb::WriteOptions wo;
    wo.sync = true;
    CV_RETURN_IF_ERROR(fsutil::FromRocks(t->shard->db()->Write(wo, &b), "write recording manifest"));
    if (ingest_) CV_KILL_POINT("recording.after_manifest");
    done_ = true;
    Wipe();
    return info;
  }

 public:
  Status Abort() override {
    if (done_ || !started_) return Status::OK();
    done_ = true;
    Wipe();
    DropFiles();
    CV_ASSIGN_OR_RETURN(TenantRef t, store_->AcquireForRecording(tenant_id_));
    std::lock_guard<std::mutex> w(t->write_mu);
    CV_ASSIGN_OR_RETURN(Owner owner, OwnerOfNames(t));
    // The call was deleted and put again and another writer took the id:
    // the marker or manifest there is its own, not ours to remove.
    if (owner == Owner::kAnotherWriter) return Status::OK();
    rocksdb::WriteBatch b;
    // Ingested path: no chunk is in the family unless an ingestion
    // succeeded (and the manifest write after it did not).
    CV_RETURN_IF_ERROR(PlanDeleteRecording(t, names_, ingest_ && !ingested_ ? 0 : next_chunk_, &b));
    return fsutil::FromRocks(t->shard->db()->Write(rocksdb::WriteOptions(), &b), "abort recording");
  }

 private:
  State* State_() { return reinterpret_cast<State*>(state_.data()); }
  // Its names and stream key are the old key's (decision 0036, point 1):
  // the call is there; the caller writes the recording again.
  static Status RotatedError() {
    return Status::NotFound("the tenant's key was rotated while the recording was written; "
                            "nothing was kept; write it again");
  }
  void Wipe() {
    StopWorker();  // it may hold a chunk's plaintext
    state_.Wipe();
    key_.Wipe();
    sodium_memzero(buffer_.data(), buffer_.size());
    for (Job& j : jobs_) sodium_memzero(j.plain.data(), j.plain.size());
  }

  // The pipeline (Options::recording_pipeline, decisions 0061 and 0072):
  // the caller's thread hashes the content as it is appended and fills
  // chunk N+1 while the worker seals chunk N (format 2; its associated
  // data and index come with it, computed by the caller, which holds the
  // tenant) and adds the sealed bytes to the table file (SstFileWriter::Put:
  // the copy into the block, the XXH3 checksums, the write; at a file's end
  // its synced Finish). At most kChunksInFlight chunks are handed over and
  // not yet written: the caller waits for a free slot (two, so that a
  // worker scheduled late on a busy machine does not stall the caller at
  // every chunk). The worker takes them in order; it alone touches sst_,
  // files_ and finished_ until it is idle (the hand-offs under work_mu_
  // order them). A new table file is opened on the caller's thread, which
  // holds the tenant, with the worker idle.

  // Waits until the worker is idle; its first error, if any, stays (every
  // later chunk is skipped by it).
  Status WaitWorker() {
    std::unique_lock<std::mutex> l(work_mu_);
    work_cv_.wait(l, [this] { return work_queued_ == 0; });
    return work_status_;
  }
  // A failed chunk of the worker breaks the writer and removes its files,
  // as a failed chunk on the caller's thread does.
  Status Broken(Status s) {
    if (!s.ok()) {
      DropFiles();
      broken_ = s;
    }
    return s;
  }
  // Waits until the worker is idle and returns its error.
  Status TakeWorkerError() { return Broken(WaitWorker()); }
  // The worker's error if it has failed, without waiting.
  Status PollWorkerError() {
    Status s;
    {
      std::lock_guard<std::mutex> l(work_mu_);
      s = work_status_;
    }
    return Broken(s);
  }
  // Hands the chunk's plaintext buffer_ and value_ (under `key`) to the
  // worker, which seals buffer_ into value_ under `ad` when `ad` is not
  // empty (format 2; format 1 arrives sealed), writes it, and finishes the
  // table file after it when `close`. Waits for a free slot; the caller
  // fills the slot's previous buffers next.
  Status Submit(std::string key, std::string ad, bool close) {
    Status s;
    {
      std::unique_lock<std::mutex> l(work_mu_);
      work_cv_.wait(l, [this] { return work_queued_ < kChunksInFlight; });
      s = work_status_;
      if (s.ok()) {
        Job& j = jobs_[(work_head_ + work_queued_) % kChunksInFlight];
        std::swap(buffer_, j.plain);
        std::swap(value_, j.value);
        j.key = std::move(key);
        j.ad = std::move(ad);
        j.index = next_chunk_;
        j.close = close;
        ++work_queued_;
        work_cv_.notify_all();
      }
    }
    return Broken(s);
  }
  // At the first chunk, before anything is handed over.
  Status StartWorker() {
    try {
      worker_ = std::thread([this] { WorkerLoop(); });
    } catch (const std::system_error&) {
      return Status::ResourceExhausted(
          "recording: cannot start the writer's thread (Options::recording_pipeline = false writes on the "
          "caller's thread)");
    }
    return Status::OK();
  }
  void WorkerLoop() {
    std::unique_lock<std::mutex> l(work_mu_);
    for (;;) {
      work_cv_.wait(l, [this] { return work_queued_ > 0 || work_stop_; });
      if (work_queued_ == 0) return;  // stopped, nothing in flight
      Job& j = jobs_[work_head_];  // the caller leaves a queued slot alone
      const bool skip = !work_status_.ok();
      l.unlock();
      Status s;
      if (!skip) {
        if (!j.ad.empty()) SealChunk(j.plain, j.ad, j.index, &j.value);
        s = PutChunk(j.key, j.value);
        if (s.ok() && j.close) s = CloseFile();
      }
      l.lock();
      if (work_status_.ok()) work_status_ = s;
      work_head_ = (work_head_ + 1) % kChunksInFlight;
      --work_queued_;
      work_cv_.notify_all();
    }
  }
  // Joins the worker after the chunks in flight (a writer destroyed or
  // aborted mid-pipeline: their file goes with DropFiles).
  void StopWorker() {
    if (!worker_.joinable()) return;
    {
      std::lock_guard<std::mutex> l(work_mu_);
      work_stop_ = true;
      work_cv_.notify_all();
    }
    worker_.join();
  }

  // Whose rows are at this writer's names. REQUIRES: t->write_mu held.
  // The pending marker is this writer's when it holds the very bytes
  // CreateRecording stored for it (sealed with a random nonce: no two
  // writers' are alike). A DeleteCall removes the marker; once the call is
  // put again, another writer may take the same recording id, and its
  // marker, then its manifest, are at the same names: neither is this
  // writer's to keep or to delete.
  enum class Owner { kThisWriter, kNobody, kAnotherWriter };
  Result<Owner> OwnerOfNames(const TenantRef& t) {
    rocksdb::DB* db = t->shard->db();
    std::string v;
    rocksdb::Status s = db->Get(rocksdb::ReadOptions(), t->cf,
                                format::RecordingKey(format::kRecordingPendingPrefix, names_.call_hash, names_.rec_hash), &v);
    if (s.ok()) return v == marker_ ? Owner::kThisWriter : Owner::kAnotherWriter;
    if (!s.IsNotFound()) return fsutil::FromRocks(s, "read recording marker");
    s = db->Get(rocksdb::ReadOptions(), t->cf,
                format::RecordingKey(format::kRecordingManifestPrefix, names_.call_hash, names_.rec_hash), &v);
    if (s.ok()) return Owner::kAnotherWriter;
    if (!s.IsNotFound()) return fsutil::FromRocks(s, "read recording manifest");
    return Owner::kNobody;
  }

  // The options of the writer's table files, to write and to check them:
  // the family's (its comparator), with a table format of our own: XXH3
  // block checksums (RocksDB's CRC32C is Debian's slow portable one; the
  // checksum type is per file, in its footer), no compression
  // (ciphertext), no filter (chunks are read by key), no block cache.
  static rocksdb::Options IngestFileOptions(const TenantRef& t) {
    rocksdb::DB* db = t->shard->db();
    rocksdb::Options o(db->GetDBOptions(), db->GetOptions(t->cf));
    rocksdb::BlockBasedTableOptions bt;
    if (const auto* cur = o.table_factory->GetOptions<rocksdb::BlockBasedTableOptions>()) bt = *cur;
    bt.checksum = rocksdb::kXXH3;
    bt.filter_policy.reset();
    bt.block_cache.reset();
    bt.no_block_cache = true;
    o.table_factory.reset(rocksdb::NewBlockBasedTableFactory(bt));
    o.compression = rocksdb::kNoCompression;
    o.bottommost_compression = rocksdb::kNoCompression;
    return o;
  }

  // Ingested path: starts the writer's next table file unless one is open.
  // Pipelined: only with the worker idle.
  Status OpenFile(const TenantRef& t) {
    rocksdb::DB* db = t->shard->db();
    if (sst_ == nullptr) {
      rocksdb::FileSystem* fs = db->GetEnv()->GetFileSystem().get();
      const std::string dir = t->shard->ingest_dir();
      CV_RETURN_IF_ERROR(fsutil::FromIO(fs->CreateDirIfMissing(dir, rocksdb::IOOptions(), nullptr),
                                        "create the recording ingest directory"));
      const rocksdb::Options o = IngestFileOptions(t);
      rocksdb::EnvOptions eo(o);
      // Written back while the next chunks are sealed, not all at the
      // final sync.
      eo.bytes_per_sync = 4u << 20;
      sst_ = std::make_unique<rocksdb::SstFileWriter>(eo, o, t->cf, /*invalidate_page_cache=*/false,
                                                      rocksdb::Env::IO_TOTAL, /*skip_filters=*/true);
      sst_path_ = dir + "/" + crypto::Hex(crypto::RandomString(12)) + ".sst";
      sst_bytes_ = 0;
      rocksdb::Status s = sst_->Open(sst_path_);
      if (!s.ok()) {
        sst_.reset();
        fs->DeleteFile(sst_path_, rocksdb::IOOptions(), nullptr).PermitUncheckedError();
        sst_path_.clear();
        return fsutil::FromRocks(s, "create a recording table file");
      }
    }
    return Status::OK();
  }

  // Ingested path: appends a sealed chunk to the open table file (OpenFile).
  Status PutChunk(const std::string& key, const std::string& value) {
    return fsutil::FromRocks(sst_->Put(key, value), "write recording chunk");
  }
  // Counts a sealed chunk of `bytes` into the open file's bytes (the
  // caller's count: the worker may still be writing earlier chunks); true
  // when the file is to be finished after it.
  bool FileFullAfterThisChunk(size_t bytes) {
    sst_bytes_ += bytes;
    return sst_bytes_ >= g_ingest_file_bytes.load(std::memory_order_relaxed);
  }

  // Format 2: SealAeadChunk under this writer's stream. On the caller's
  // thread, or on the worker's when pipelined: key_ and stream_ do not
  // change after Begin until Wipe, which stops the worker first.
  void SealChunk(const std::string& plain, std::string_view ad, uint32_t index, std::string* value) const {
    SealAeadChunk(stream_.material, key_, plain, ad, index, value);
  }

  // Finishes the current table file (synced: SstFileWriter::Finish) and
  // notes what it is (CheckOwnFiles).
  Status CloseFile() {
    if (sst_ == nullptr) return Status::OK();
    Finished f;
    rocksdb::Status s = sst_->Finish(&f.info);
    sst_.reset();
    struct stat st;
    if (s.ok() && ::stat(sst_path_.c_str(), &st) == 0) {
      f.have_stat = true;
      f.dev = st.st_dev;
      f.ino = st.st_ino;
      f.size = st.st_size;
      f.ctime_sec = st.st_ctim.tv_sec;
      f.ctime_nsec = st.st_ctim.tv_nsec;
    }
    finished_.push_back(std::move(f));
    files_.push_back(std::move(sst_path_));
    sst_path_.clear();
    return fsutil::FromRocks(s, "finish a recording table file");
  }

  // Each file about to be ingested must be the one this writer finished:
  // the ingest directory is outside RocksDB's view, and an ingestion
  // trusts what it is given (a file put in one's place, keeping its name,
  // holding one range deletion, would delete every row of the family at a
  // sequence number above them all). The same inode, unchanged since
  // Finish (size and ctime: userspace cannot set ctime back), and
  // properties that are the writer's: its entry count, no range deletion.
  // Reads the table's footer and properties only.
  Status CheckOwnFiles(const TenantRef& t) {
    if (finished_.size() != files_.size()) {
      return Status::Corruption("recording: the writer lost track of its table files; nothing kept");
    }
    const Status foreign = Status::Corruption(
        "recording: a table file in the recording ingest directory is not the one this writer "
        "wrote (replaced or changed after it was finished); nothing kept");
    // Read as the file was written: outside the shard's block cache.
    const rocksdb::Options o = IngestFileOptions(t);
    for (size_t i = 0; i < files_.size(); ++i) {
      const Finished& f = finished_[i];
      if (f.have_stat) {
        struct stat st;
        if (::stat(files_[i].c_str(), &st) != 0 || st.st_dev != f.dev || st.st_ino != f.ino ||
            static_cast<uint64_t>(st.st_size) != f.size || st.st_ctim.tv_sec != f.ctime_sec ||
            st.st_ctim.tv_nsec != f.ctime_nsec) {
          return foreign;
        }
      }
      rocksdb::SstFileReader reader(o);
      rocksdb::Status s = reader.Open(files_[i]);
      if (!s.ok()) return foreign;
      std::shared_ptr<const rocksdb::TableProperties> p = reader.GetTableProperties();
      if (p == nullptr || p->num_entries != f.info.num_entries || p->num_range_deletions != 0 ||
          f.info.num_range_del_entries != 0) {
        return foreign;
      }
    }
    return Status::OK();
  }

  // Removes every table file of this writer (none is ingested then).
  void DropFiles() {
    WaitWorker().IgnoreError();  // the worker writes sst_ and files_ until idle
    file_open_ = false;
    if (!ingest_ || (sst_ == nullptr && sst_path_.empty() && files_.empty())) return;
    sst_.reset();  // abandons an unfinished file
    if (!sst_path_.empty()) files_.push_back(std::move(sst_path_));
    sst_path_.clear();
    rocksdb::FileSystem* fs = store_->res_->env->GetFileSystem().get();
    for (const auto& f : files_) {
      rocksdb::IOStatus s = fs->DeleteFile(f, rocksdb::IOOptions(), nullptr);
      // Gone already (ingestion moved it in, or a sweep): nothing to do.
      s.PermitUncheckedError();
    }
    files_.clear();
    finished_.clear();
  }

  Status Seal(bool final) {
    if (!broken_.ok()) return broken_;
    Result<TenantRef> acquired = store_->AcquireForRecording(tenant_id_);
    if (!acquired.ok()) {
      // Purged, closed, or refused: the table file being written holds
      // this tenant's ciphertext; it goes now, not at the writer's end.
      if (ingest_) {
        DropFiles();
        broken_ = acquired.status();
      }
      return acquired.status();
    }
    TenantRef t = std::move(*acquired);
    if (t->rec.key_version != key_version_) {
      if (ingest_) DropFiles();
      // The tenant's key was rotated since Begin: this writer's names and
      // stream key are the old key's, and its chunks so far went with the
      // old family. A chunk written now would land in the new family under
      // names no marker or manifest there has (Verify: "recording chunks
      // without a manifest", kept for good by a crash). Nothing is written;
      // Finish says the same; Abort (or the destructor) removes nothing
      // there (attack14).
      return RotatedError();
    }
    const std::string ad = ChunkAd(t, names_, stream_.format, next_chunk_, final);
    unsigned long long clen = 0;
    if (stream_.format == kFormatSecretstream) {
      value_.resize(kStateNonceBytes + buffer_.size() + kStreamOverhead);
      std::memcpy(value_.data(), State_()->nonce, kStateNonceBytes);
      crypto_secretstream_xchacha20poly1305_push(
          State_(), reinterpret_cast<unsigned char*>(value_.data() + kStateNonceBytes), &clen,
          reinterpret_cast<const unsigned char*>(buffer_.data()), buffer_.size(),
          reinterpret_cast<const unsigned char*>(ad.data()), ad.size(),
          final ? crypto_secretstream_xchacha20poly1305_TAG_FINAL : crypto_secretstream_xchacha20poly1305_TAG_MESSAGE);
      value_.resize(kStateNonceBytes + clen);
    } else if (!pipeline_) {
      SealChunk(buffer_, ad, next_chunk_, &value_);
    }
    std::string key = format::RecordingChunkKey(names_.call_hash, names_.rec_hash, next_chunk_);
    if (pipeline_) {
      if (!worker_.joinable()) CV_RETURN_IF_ERROR(Broken(StartWorker()));
      // A new file once the worker has finished the previous one (rare:
      // every g_ingest_file_bytes).
      if (!file_open_) {
        CV_RETURN_IF_ERROR(TakeWorkerError());
        CV_RETURN_IF_ERROR(Broken(OpenFile(t)));
        file_open_ = true;
      }
      // Format 2: the worker seals the chunk (its size is known now).
      const bool seal = stream_.format == kFormatAead;
      const bool close = FileFullAfterThisChunk(seal ? kPrefixBytes + buffer_.size() + kAeadTagBytes : value_.size());
      if (close) file_open_ = false;
      CV_RETURN_IF_ERROR(Submit(std::move(key), seal ? ad : std::string(), close));
    } else if (ingest_) {
      Status s = OpenFile(t);
      if (s.ok()) s = PutChunk(key, value_);
      if (s.ok() && FileFullAfterThisChunk(value_.size())) s = CloseFile();
      if (!s.ok()) {
        DropFiles();
        broken_ = s;
        return s;
      }
    } else {
      // The WAL path puts the chunk straight into the family under the
      // recording's names: only while the marker there is this writer's.
      // A stale writer (its call deleted and put again, its id taken by
      // another writer) would overwrite the other's chunks. Under write_mu,
      // which DeleteCall and CreateRecording take.
      std::lock_guard<std::mutex> w(t->write_mu);
      CV_ASSIGN_OR_RETURN(Owner owner, OwnerOfNames(t));
      if (owner != Owner::kThisWriter) {
        broken_ = Status::NotFound("the call was deleted while its recording was written; nothing was kept");
        return broken_;
      }
      CV_RETURN_IF_ERROR(fsutil::FromRocks(t->shard->db()->Put(rocksdb::WriteOptions(), t->cf, key, value_),
                                           "write recording chunk"));
    }
    ++next_chunk_;
    buffer_.clear();
    return Status::OK();
  }

  Store::Impl* const store_;
  const std::string tenant_id_;
  const std::string call_id_;
  RecordingSpec spec_;
  Names names_;
  SecretBytes state_;  // format 1: the secretstream state holds a key
  SecretBytes key_;
  Stream stream_;
  Sha256 sha_;
  std::string buffer_;  // plaintext of the chunk being filled
  std::string value_;   // the sealed chunk, reused
  // Pipelined (decision 0061): the worker thread and the chunk it holds.
  bool pipeline_ = false;
  static constexpr size_t kChunksInFlight = 2;
  struct Job {
    std::string plain;  // the chunk's plaintext (sealed by the worker), then the caller's next buffer
    std::string value;  // the sealed chunk
    std::string key;
    std::string ad;      // format 2: the chunk's associated data; the worker seals it
    uint32_t index = 0;  // the chunk's index (its nonce)
    bool close = false;  // finish the table file after this chunk
  };
  std::array<Job, kChunksInFlight> jobs_;
  std::thread worker_;
  std::mutex work_mu_;
  std::condition_variable work_cv_;
  size_t work_head_ = 0;    // the slot of the oldest chunk handed over
  size_t work_queued_ = 0;  // chunks handed over and not yet written
  bool work_stop_ = false;
  Status work_status_;      // the worker's first failure
  bool file_open_ = false;  // the caller's view: sst_ takes more chunks
  uint64_t size_ = 0;
  uint32_t next_chunk_ = 0;
  uint32_t key_version_ = 0;  // the tenant's at Begin
  bool started_ = false;
  bool done_ = false;
  std::string marker_;  // the pending marker's stored bytes, as CreateRecording wrote them
  // Ingested path (Options::recording_ingest, decision 0055): the chunks
  // go into table files in the shard's ingest directory, named here, and
  // only those files, by these names, are ingested at Finish.
  bool ingest_ = false;
  bool ingested_ = false;  // the chunks are in the family (Abort removes them)
  Status broken_;          // a failed chunk or a lost tenant: every later call fails so
  std::unique_ptr<rocksdb::SstFileWriter> sst_;
  std::string sst_path_;           // the file sst_ writes
  uint64_t sst_bytes_ = 0;
  std::vector<std::string> files_;  // finished files, in key order
  // What each of files_ was when finished (CheckOwnFiles).
  struct Finished {
    rocksdb::ExternalSstFileInfo info;
    bool have_stat = false;  // stat works where the store's files are real files
    uint64_t dev = 0, ino = 0, size = 0;
    int64_t ctime_sec = 0, ctime_nsec = 0;
  };
  std::vector<Finished> finished_;
};

// Opens chunk `i` (stored `value`) of a recording into `msg` (its first
// *mlen bytes). Checks its place: every chunk but the last holds exactly
// kRecordingChunkBytes, the last the remainder and the FINAL mark.
Status OpenChunk(const TenantRef& t, const Names& n, const RecordingInfo& info, const Stream& stream,
                 const SecretBytes& key, uint32_t i, std::string_view value, std::string* msg, uint64_t* mlen) {
  const bool is_last = i + 1 == info.chunks;
  const uint64_t expect = is_last ? info.size - uint64_t{i} * kRecordingChunkBytes : kRecordingChunkBytes;
  if (msg->size() < expect) msg->resize(expect);
  const std::string ad = ChunkAd(t, n, stream.format, i, is_last);
  auto* out = reinterpret_cast<unsigned char*>(msg->data());
  if (stream.format == kFormatAead) {
    if (value.size() < kPrefixBytes + kAeadTagBytes || value.size() > kPrefixBytes + kAeadTagBytes + kRecordingChunkBytes) {
      return Status::Corruption("recording chunk " + std::to_string(i) + " has a bad size");
    }
    if (value.size() != kPrefixBytes + kAeadTagBytes + expect) {
      return Status::Corruption("recording chunk " + std::to_string(i) + " is out of place in the stream");
    }
    // Not secret: a prefix other than the manifest's is a chunk of another
    // incarnation or recording (it would fail authentication as well).
    if (value.substr(0, kPrefixBytes) != stream.material) {
      return Status::Corruption("recording chunk " + std::to_string(i) + " belongs to another recording");
    }
    unsigned char nonce[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES];
    ChunkNonce(stream.material, i, nonce);
    if (!crypto::AeadOpenTo(out, reinterpret_cast<const unsigned char*>(value.data() + kPrefixBytes),
                            value.size() - kPrefixBytes, ad, nonce, key.data())) {
      metrics::CountAeadFailure();
      return Status::Corruption("recording chunk " + std::to_string(i) +
                                " failed authentication (tampered, moved, or from another recording)");
    }
    *mlen = expect;
    return Status::OK();
  }
  if (value.size() < kStateNonceBytes + kStreamOverhead ||
      value.size() > kStateNonceBytes + kStreamOverhead + kRecordingChunkBytes) {
    return Status::Corruption("recording chunk " + std::to_string(i) + " has a bad size");
  }
  if (msg->size() < value.size() - kStateNonceBytes - kStreamOverhead) {
    msg->resize(value.size() - kStateNonceBytes - kStreamOverhead);
    out = reinterpret_cast<unsigned char*>(msg->data());
  }
  SecretBytes state_mem(sizeof(State));
  State* state = reinterpret_cast<State*>(state_mem.data());
  if (crypto_secretstream_xchacha20poly1305_init_pull(
          state, reinterpret_cast<const unsigned char*>(stream.material.data()), key.data()) != 0) {
    return Status::Corruption("recording stream header is invalid");
  }
  std::memcpy(state->nonce, value.data(), kStateNonceBytes);
  unsigned long long len = 0;
  unsigned char tag = 0;
  if (crypto_secretstream_xchacha20poly1305_pull(
          state, out, &len, &tag, reinterpret_cast<const unsigned char*>(value.data() + kStateNonceBytes),
          value.size() - kStateNonceBytes, reinterpret_cast<const unsigned char*>(ad.data()), ad.size()) != 0) {
    metrics::CountAeadFailure();
    return Status::Corruption("recording chunk " + std::to_string(i) +
                              " failed authentication (tampered, moved, or from another recording)");
  }
  if ((tag == crypto_secretstream_xchacha20poly1305_TAG_FINAL) != is_last || len != expect) {
    return Status::Corruption("recording chunk " + std::to_string(i) + " is out of place in the stream");
  }
  *mlen = len;
  return Status::OK();
}

// Fetches one chunk's stored value at a time on a thread of its own, so
// that a read of several chunks overlaps fetching chunk i+1 (the table or
// blob read and its copies) with opening chunk i (decision 0072). It only
// reads bytes: the tenant reference it reads through and the slice it
// fills are the caller's, who waits for the fetch before either goes.
class ChunkFetcher {
 public:
  ChunkFetcher() = default;
  ChunkFetcher(const ChunkFetcher&) = delete;
  ChunkFetcher& operator=(const ChunkFetcher&) = delete;
  // Waits for a fetch in flight, then ends the thread.
  ~ChunkFetcher() {
    if (!thread_.joinable()) return;
    {
      std::lock_guard<std::mutex> l(mu_);
      stop_ = true;
      cv_.notify_all();
    }
    thread_.join();
  }
  // false if no thread could start: the caller fetches on its own thread.
  bool Start() {
    try {
      thread_ = std::thread([this] { Loop(); });
    } catch (const std::system_error&) {
      return false;
    }
    return true;
  }
  // Starts fetching `key` of t's family into *value. REQUIRES: no fetch in
  // flight; *t, *ro and *value live until Wait returns.
  void Fetch(const TenantRef* t, const rocksdb::ReadOptions* ro, std::string key, rocksdb::PinnableSlice* value) {
    std::lock_guard<std::mutex> l(mu_);
    t_ = t;
    ro_ = ro;
    key_ = std::move(key);
    value_ = value;
    pending_ = true;
    cv_.notify_all();
  }
  // The fetch's status, once it is done.
  rocksdb::Status Wait() {
    std::unique_lock<std::mutex> l(mu_);
    cv_.wait(l, [this] { return !pending_; });
    return status_;
  }

 private:
  void Loop() {
    std::unique_lock<std::mutex> l(mu_);
    for (;;) {
      cv_.wait(l, [this] { return pending_ || stop_; });
      if (!pending_) return;  // stopped, nothing in flight
      l.unlock();
      rocksdb::Status s = (*t_)->shard->db()->Get(*ro_, (*t_)->cf, key_, value_);
      l.lock();
      status_ = std::move(s);
      pending_ = false;
      cv_.notify_all();
    }
  }

  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool pending_ = false;
  bool stop_ = false;
  const TenantRef* t_ = nullptr;
  const rocksdb::ReadOptions* ro_ = nullptr;
  std::string key_;
  rocksdb::PinnableSlice* value_ = nullptr;
  rocksdb::Status status_;
};

// Decrypts chunks overlapping [offset, offset + length) and passes the
// bytes to `sink`, one chunk at a time: at most three sealed chunks and
// one plaintext chunk (4 MiB) in memory, whatever the length. Re-acquires
// the tenant per chunk: a purge is never held up by a long read, and one
// that completes ends the read (kTenantPurged). With `held`, uses that
// tenant reference throughout instead. `cf_generation`: the tenant's family
// generation the names and key were derived under (re-acquired reads
// only): a key rotation in between (decision 0036) moves every chunk to
// new names under a new key, and the read ends with kFailedPrecondition,
// not with a "missing chunk" kCorruption that would look like tampering.
//
// A read of more than one chunk fetches chunk i+1 on a ChunkFetcher's
// thread while this one opens chunk i and passes it on (decision 0072),
// through the reference acquired for chunk i; chunk i+1 is passed on only
// after the tenant is acquired again for it, as without the fetcher. A
// re-acquired read given `manifest` (the manifest row's stored bytes when
// the read began) also checks, once the tenant is acquired again for each
// later chunk, that the row still holds them: a DeleteRecording,
// DeleteCall, erasure or retention that completed meanwhile (none changes
// the family generation) ends the read with kNotFound before a chunk
// fetched ahead of it is passed on (attack25), and a chunk missing because
// of one is reported as that, not as damage.
Status ReadChunks(Store::Impl* store, const TenantRef* held, std::string_view tenant_id,
                  const Names& n, const RecordingInfo& info, const Stream& stream,
                  const SecretBytes& key, uint64_t offset, uint64_t length,
                  const RecordingSink& sink, uint64_t cf_generation = 0,
                  const std::string* manifest = nullptr) {
  // An empty recording is one empty FINAL chunk, read only as [0, ...).
  if (length == 0 || (offset >= info.size && !(offset == 0 && info.size == 0))) return Status::OK();
  const uint64_t end = std::min<uint64_t>(info.size, offset + std::min<uint64_t>(length, info.size));
  const uint32_t first = static_cast<uint32_t>(offset / kRecordingChunkBytes);
  // A read that reaches the end also opens the last chunk, the FINAL one,
  // even when it holds no bytes (a size that is a multiple of the chunk size
  // ends with an empty FINAL chunk): a whole read checks the whole stream.
  const uint32_t last = end == info.size ? info.chunks - 1 : static_cast<uint32_t>((end - 1) / kRecordingChunkBytes);
  std::string msg;
  // The plaintext of the last chunk opened is wiped however the read ends
  // (the whole capacity: a shorter last chunk leaves the previous one's
  // bytes past its size), as the writer wipes its buffer.
  struct WipeOnExit {
    std::string* s;
    ~WipeOnExit() {
      s->resize(s->capacity());
      sodium_memzero(s->data(), s->size());
    }
  } wipe_msg{&msg};
  // Three slices, used in turn: chunk i is opened from one while chunk
  // i+1 is fetched into another, and chunk i-1 stays pinned in the third.
  // RocksDB 7.8.3 reads a blob into a fresh 1 MiB buffer and copies it
  // into another it hands over; freeing the previous chunk before that
  // left 2 MiB free at the top of the heap, which glibc gave back to the
  // kernel (brk) and faulted in again, zeroed, on the next chunk: a
  // quarter of a read's time (decision 0047). Held one chunk longer, the
  // freed space stays below a live block and is reused.
  rocksdb::PinnableSlice values[3];
  // RocksDB's checksums are verified (decision 0074): the chunk's Poly1305
  // tag authenticates its value, but RocksDB parses the table entry around
  // it (lengths, key, sequence and type) before the tag is ever checked,
  // and Debian's RocksDB (assertions on) aborts the process on a damaged
  // key of an ingested table file. Chunk blocks stay out of the shared
  // block cache (a chunk is read once; it would evict the calls' blocks).
  rocksdb::ReadOptions ro;
  ro.fill_cache = false;
  // Declared after what it reads through and into: destroyed (waiting for
  // a fetch in flight) before them.
  ChunkFetcher fetcher;
  const bool prefetch = last > first && fetcher.Start();
  rocksdb::Status fetched;  // the fetch of chunk i, when it is due
  for (uint32_t i = first; i <= last; ++i) {
    std::optional<TenantRef> acquired;
    if (held == nullptr) {
      // A read: served by a source that a move fenced (decision 0022).
      CV_ASSIGN_OR_RETURN(TenantRef r, store->AcquireForRecording(tenant_id, Access::kRead));
      if (cf_generation != 0 && r->Record().cf_generation != cf_generation) {
        return Status::FailedPrecondition(
            "the tenant's key was rotated during the read; read the recording again");
      }
      acquired.emplace(std::move(r));
    }
    const TenantRef& t = held ? *held : *acquired;
    // Still the recording this read began? (Its first chunk is read under
    // the reference the manifest was read with, or one acquired after it.)
    auto still_there = [&]() -> Status {
      std::string now;
      rocksdb::Status g = t->shard->db()->Get(
          rocksdb::ReadOptions(), t->cf, format::RecordingKey(format::kRecordingManifestPrefix, n.call_hash, n.rec_hash),
          &now);
      if (g.IsNotFound() || (g.ok() && now != *manifest)) {
        return Status::NotFound("the recording was deleted during the read");
      }
      return fsutil::FromRocks(g, "read recording manifest");
    };
    if (manifest != nullptr && i > first) CV_RETURN_IF_ERROR(still_there());
    rocksdb::PinnableSlice& value = values[i % 3];
    if (i == first || !prefetch) {
      value.Reset();
      fetched = t->shard->db()->Get(ro, t->cf, format::RecordingChunkKey(n.call_hash, n.rec_hash, i), &value);
    }
    // The fetch reads through t: waited for before t is released, however
    // this iteration ends.
    struct InFlight {
      ChunkFetcher* f = nullptr;
      rocksdb::Status Wait() {
        rocksdb::Status s = f->Wait();
        f = nullptr;
        return s;
      }
      ~InFlight() {
        if (f != nullptr) f->Wait().PermitUncheckedError();
      }
    } in_flight;
    if (prefetch && i < last) {
      rocksdb::PinnableSlice& next = values[(i + 1) % 3];
      next.Reset();
      fetcher.Fetch(&t, &ro, format::RecordingChunkKey(n.call_hash, n.rec_hash, i + 1), &next);
      in_flight.f = &fetcher;
    }
    Status s;
    if (fetched.IsNotFound()) {
      if (manifest != nullptr) s = still_there();
      if (s.ok()) s = Status::Corruption("recording chunk " + std::to_string(i) + " is missing");
    } else {
      s = fsutil::FromRocks(fetched, "read recording chunk");
    }
    uint64_t mlen = 0;
    if (s.ok()) s = OpenChunk(t, n, info, stream, key, i, value.ToStringView(), &msg, &mlen);
    if (s.ok()) {
      const uint64_t chunk_start = uint64_t{i} * kRecordingChunkBytes;
      const uint64_t from = std::max(offset, chunk_start) - chunk_start;
      const uint64_t to = std::min<uint64_t>(end, chunk_start + mlen) - chunk_start;
      s = sink(std::string_view(msg).substr(from, to - from));
    }
    if (in_flight.f != nullptr) fetched = in_flight.Wait();
    CV_RETURN_IF_ERROR(s);
  }
  return Status::OK();
}

}  // namespace

// Chunks of a recording being written count as writes; an abort removes.
Result<TenantRef> Store::Impl::AcquireForRecording(std::string_view tenant_id, Access access) {
  return Acquire(tenant_id, access);
}

Result<std::unique_ptr<RecordingWriter>> Store::Impl::CreateRecording(std::string_view tenant_id,
                                                                      std::string_view call_id,
                                                                      const RecordingSpec& spec_in) {
  RecordingSpec spec = spec_in;
  if (spec.recording_id.empty()) spec.recording_id = "rec-" + crypto::Hex(crypto::RandomString(8));
  CV_RETURN_IF_ERROR(validate::Id("recording_id", spec.recording_id));
  CV_RETURN_IF_ERROR(validate::Id("call_id", call_id));
  if (spec.content_type.empty() || spec.content_type.size() > 128 || !validate::IsUtf8(spec.content_type)) {
    return Status::InvalidArgument("content_type: 1-128 bytes of UTF-8");
  }
  if (!spec.expected_sha256.empty() && spec.expected_sha256.size() != crypto_hash_sha256_BYTES) {
    return Status::InvalidArgument("expected_sha256: must be 32 bytes");
  }
  CV_ASSIGN_OR_RETURN(TenantRef t, Acquire(tenant_id, Access::kWrite));
  std::lock_guard<std::mutex> w(t->write_mu);
  Names n = NamesOf(t, call_id, spec.recording_id);
  Call meta;
  uint32_t parts = 0;
  bool found = false;
  CV_RETURN_IF_ERROR(calls::ReadMeta(t, n.call_hash, &meta, &parts, &found));
  if (!found) return Status::NotFound("no such call");
  for (char kind : {format::kRecordingManifestPrefix, format::kRecordingPendingPrefix}) {
    std::string v;
    rocksdb::Status s = t->shard->db()->Get(rocksdb::ReadOptions(), t->cf, format::RecordingKey(kind, n.call_hash, n.rec_hash), &v);
    if (s.ok()) return Status::AlreadyExists("recording id is taken");
    if (!s.IsNotFound()) return fsutil::FromRocks(s, "read recording");
  }
  const std::string pkey = format::RecordingKey(format::kRecordingPendingPrefix, n.call_hash, n.rec_hash);
  std::string marker = record::Seal(t->record_key, t->binding(), pkey, "");
  CV_RETURN_IF_ERROR(fsutil::FromRocks(t->shard->db()->Put(rocksdb::WriteOptions(), t->cf, pkey, marker),
                                       "write recording marker"));
  auto writer = std::make_unique<Writer>(this, std::string(tenant_id), std::string(call_id), spec);
  CV_RETURN_IF_ERROR(writer->Begin(t, n, std::move(marker)));
  return std::unique_ptr<RecordingWriter>(std::move(writer));
}

Result<std::vector<RecordingInfo>> Store::Impl::ListRecordings(std::string_view tenant_id,
                                                               std::string_view call_id) {
  CV_RETURN_IF_ERROR(validate::Id("call_id", call_id));
  CV_ASSIGN_OR_RETURN(TenantRef t, Acquire(tenant_id));
  const std::string call_hash = indexing::CallHash(t->index_key, call_id);
  const std::string prefix = format::RecordingKey(format::kRecordingManifestPrefix, call_hash, "");
  std::unique_ptr<rocksdb::Iterator> it(t->shard->db()->NewIterator(rocksdb::ReadOptions(), t->cf));
  std::vector<RecordingInfo> out;
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    std::string plain;
    Stream stream;
    CV_RETURN_IF_ERROR(t->OpenRecord(it->key().ToStringView(), it->value().ToStringView(), &plain));
    RecordingInfo info;
    CV_RETURN_IF_ERROR(DecodeManifest(std::move(plain), &info, &stream));
    out.push_back(std::move(info));
  }
  CV_RETURN_IF_ERROR(fsutil::FromRocks(it->status(), "list recordings"));
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.recording_id < b.recording_id; });
  return out;
}

Status Store::Impl::ReadRecording(std::string_view tenant_id, std::string_view call_id,
                                  std::string_view recording_id, uint64_t offset, uint64_t length,
                                  const RecordingSink& sink) {
  CV_RETURN_IF_ERROR(validate::Id("call_id", call_id));
  CV_RETURN_IF_ERROR(validate::Id("recording_id", recording_id));
  RecordingInfo info;
  Stream stream;
  Names n;
  SecretBytes key;
  uint64_t cf_generation = 0;
  std::string manifest;
  {
    CV_ASSIGN_OR_RETURN(TenantRef t, Acquire(tenant_id));
    n = NamesOf(t, call_id, recording_id);
    CV_RETURN_IF_ERROR(ReadManifest(t, n, &info, &stream, &manifest));
    key = StreamKey(t, n, stream.format);
    cf_generation = t->Record().cf_generation;
  }
  return ReadChunks(this, nullptr, tenant_id, n, info, stream, key, offset, length, sink,
                    cf_generation, &manifest);
}

Status Store::Impl::DeleteRecording(std::string_view tenant_id, std::string_view call_id,
                                    std::string_view recording_id) {
  CV_RETURN_IF_ERROR(validate::Id("call_id", call_id));
  CV_RETURN_IF_ERROR(validate::Id("recording_id", recording_id));
  CV_ASSIGN_OR_RETURN(TenantRef t, Acquire(tenant_id, Access::kRemove));
  std::lock_guard<std::mutex> w(t->write_mu);
  Names n = NamesOf(t, call_id, recording_id);
  RecordingInfo info;
  Stream stream;
  CV_RETURN_IF_ERROR(ReadManifest(t, n, &info, &stream));
  CV_RETURN_IF_ERROR(CheckNotHeld(t, n.call_hash, /*any_call=*/false));
  rocksdb::WriteBatch b;
  CV_RETURN_IF_ERROR(PlanDeleteAllChunks(t, n, &b));
  // Logged (blind hashes, outside the store) before the delete is written:
  // a restore of an older backup deletes the recording again (backup.cc).
  std::shared_lock<std::shared_mutex> tl(tombstone_mu_);
  CV_RETURN_IF_ERROR(LogRecordingTombstone(t->rec.internal_id, n.call_hash, n.rec_hash, info.created_at));
  return fsutil::FromRocks(t->shard->db()->Write(WriteOpts(), &b), "delete recording");
}

namespace calls {

Status PlanDeleteRecordingByHash(const TenantRef& t, std::string_view call_hash,
                                 std::string_view rec_hash, rocksdb::WriteBatch* b, bool* found,
                                 int64_t* created_at) {
  Names n{std::string(call_hash), std::string(rec_hash)};
  RecordingInfo info;
  Stream stream;
  Status s = ReadManifest(t, n, &info, &stream);
  *found = s.ok();
  *created_at = info.created_at;
  if (s.code() == Code::kNotFound) return Status::OK();
  CV_RETURN_IF_ERROR(s);
  return PlanDeleteAllChunks(t, n, b);
}

Status PlanDeleteRecordings(const TenantRef& t, std::string_view call_hash, rocksdb::WriteBatch* b) {
  for (char kind : {format::kRecordingManifestPrefix, format::kRecordingPendingPrefix}) {
    const std::string prefix = format::RecordingKey(kind, call_hash, "");
    std::unique_ptr<rocksdb::Iterator> it(t->shard->db()->NewIterator(rocksdb::ReadOptions(), t->cf));
    for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
      Names n{std::string(call_hash), std::string(it->key().ToStringView().substr(prefix.size()))};
      CV_RETURN_IF_ERROR(PlanDeleteAllChunks(t, n, b));
    }
    CV_RETURN_IF_ERROR(fsutil::FromRocks(it->status(), "scan recordings"));
  }
  return Status::OK();
}

Status VerifyRecording(const TenantRef& t, std::string_view manifest_key, std::string_view sealed,
                       uint64_t* chunks) {
  std::string plain;
  CV_RETURN_IF_ERROR(t->OpenRecord(manifest_key, sealed, &plain));
  RecordingInfo info;
  Stream stream;
  CV_RETURN_IF_ERROR(DecodeManifest(std::move(plain), &info, &stream));
  std::string_view k = manifest_key.substr(1);
  if (k.size() != 2 * format::kHashBytes) return Status::Corruption("malformed recording key");
  Names n{std::string(k.substr(0, format::kHashBytes)), std::string(k.substr(format::kHashBytes))};
  SecretBytes key = StreamKey(t, n, stream.format);
  // Every chunk, the empty last one included, must open in place.
  CV_RETURN_IF_ERROR(ReadChunks(nullptr, &t, t->rec.tenant_id, n, info, stream, key, 0, UINT64_MAX,
                                [](std::string_view) { return Status::OK(); }));
  *chunks = info.chunks;
  return Status::OK();
}

Status CopyRecordingRekeyed(Store::Impl* store, const TenantRef& from, const TenantRef& to,
                            std::string_view call_id, std::string_view manifest_key,
                            std::string_view sealed, uint64_t* rows) {
  (void)store;
  std::string plain;
  CV_RETURN_IF_ERROR(from->OpenRecord(manifest_key, sealed, &plain));
  RecordingInfo info;
  Stream stream;
  CV_RETURN_IF_ERROR(DecodeManifest(std::move(plain), &info, &stream));
  std::string_view k = manifest_key.substr(1);
  if (k.size() != 2 * format::kHashBytes) return Status::Corruption("malformed recording key");
  Names n{std::string(k.substr(0, format::kHashBytes)), std::string(k.substr(format::kHashBytes))};
  // The manifest must be the one of the row it is in (the AEAD bound it to
  // the row key; the ids in it are what the copy's names are made of).
  const Names check = NamesOf(from, call_id, info.recording_id);
  if (check.call_hash != n.call_hash || check.rec_hash != n.rec_hash) {
    return Status::Corruption("recording manifest names another recording than its row");
  }
  SecretBytes key = StreamKey(from, n, stream.format);
  const Names out = NamesOf(to, call_id, info.recording_id);
  Stream out_stream;
  out_stream.format = kFormatAead;
  out_stream.material = crypto::RandomString(kPrefixBytes);
  SecretBytes out_key = StreamKey(to, out, kFormatAead);
  std::string buffer;  // plaintext of the chunk being filled
  std::string value;
  uint32_t next = 0;
  uint64_t left = info.size;
  auto seal = [&](bool final) -> Status {
    SealAeadChunk(out_stream.material, out_key, buffer, ChunkAd(to, out, kFormatAead, next, final), next, &value);
    CV_RETURN_IF_ERROR(fsutil::FromRocks(
        to->shard->db()->Put(rocksdb::WriteOptions(), to->cf,
                             format::RecordingChunkKey(out.call_hash, out.rec_hash, next), value),
        "write recording chunk"));
    ++next;
    ++*rows;
    sodium_memzero(buffer.data(), buffer.size());
    buffer.clear();
    return Status::OK();
  };
  Status s = ReadChunks(nullptr, &from, from->rec.tenant_id, n, info, stream, key, 0, UINT64_MAX,
                        [&](std::string_view bytes) -> Status {
                          while (!bytes.empty()) {
                            size_t take = std::min(bytes.size(), kRecordingChunkBytes - buffer.size());
                            buffer.append(bytes.substr(0, take));
                            bytes.remove_prefix(take);
                            left -= take;
                            // Every full chunk but a last one that ends the content
                            // exactly: that one is followed by an empty FINAL chunk.
                            if (buffer.size() == kRecordingChunkBytes) CV_RETURN_IF_ERROR(seal(false));
                          }
                          return Status::OK();
                        });
  if (s.ok() && left != 0) s = Status::Corruption("recording is shorter than its manifest says");
  if (s.ok()) s = seal(true);
  sodium_memzero(buffer.data(), buffer.size());
  CV_RETURN_IF_ERROR(s);
  if (next != info.chunks) return Status::Corruption("recording copy has another chunk count");
  const std::string mkey = format::RecordingKey(format::kRecordingManifestPrefix, out.call_hash, out.rec_hash);
  CV_RETURN_IF_ERROR(fsutil::FromRocks(
      to->shard->db()->Put(rocksdb::WriteOptions(), to->cf, mkey,
                           record::Seal(to->record_key, to->binding(), mkey,
                                        EncodeManifest(info, kRecordingChunkBytes, out_stream))),
      "write recording manifest"));
  ++*rows;
  return Status::OK();
}

Status RecordingCopyKey(const TenantRef& from, const TenantRef& to, std::string_view call_id,
                        std::string_view manifest_key, std::string_view sealed,
                        std::string* copy_key) {
  std::string plain;
  CV_RETURN_IF_ERROR(from->OpenRecord(manifest_key, sealed, &plain));
  RecordingInfo info;
  Stream stream;
  CV_RETURN_IF_ERROR(DecodeManifest(std::move(plain), &info, &stream));
  const Names out = NamesOf(to, call_id, info.recording_id);
  *copy_key = format::RecordingKey(format::kRecordingManifestPrefix, out.call_hash, out.rec_hash);
  return Status::OK();
}

Status PlanDeleteRecordingRows(const TenantRef& t, std::string_view manifest_key,
                               rocksdb::WriteBatch* b) {
  std::string_view k = manifest_key.substr(1);
  if (k.size() != 2 * format::kHashBytes) return Status::Corruption("malformed recording key");
  Names n{std::string(k.substr(0, format::kHashBytes)), std::string(k.substr(format::kHashBytes))};
  return PlanDeleteAllChunks(t, n, b);
}

Status CleanIncompleteRecordings(const TenantRef& t) {
  const std::string prefix(1, format::kRecordingPendingPrefix);
  std::unique_ptr<rocksdb::Iterator> it(t->shard->db()->NewIterator(rocksdb::ReadOptions(), t->cf));
  rocksdb::WriteBatch b;
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    std::string_view k = it->key().ToStringView().substr(1);
    if (k.size() != 2 * format::kHashBytes) return Status::Corruption("malformed recording marker");
    Names n{std::string(k.substr(0, format::kHashBytes)), std::string(k.substr(format::kHashBytes))};
    CV_RETURN_IF_ERROR(PlanDeleteAllChunks(t, n, &b));
  }
  CV_RETURN_IF_ERROR(fsutil::FromRocks(it->status(), "scan recording markers"));
  if (b.Count() == 0) return Status::OK();
  rocksdb::WriteOptions wo;
  wo.sync = true;
  return fsutil::FromRocks(t->shard->db()->Write(wo, &b), "remove incomplete recordings");
}

void SetRecordingIngestFileBytesForTest(uint64_t bytes) {
  g_ingest_file_bytes.store(bytes == 0 ? uint64_t{256} << 20 : bytes, std::memory_order_relaxed);
}

void SetRecordingWriteFormatForTest(uint32_t chunk_format) {
  g_write_format.store(chunk_format == kFormatSecretstream ? kFormatSecretstream : kFormatAead,
                       std::memory_order_relaxed);
}

}  // namespace calls

}  // namespace callvault
