// Recordings: chunked crypto_secretstream_xchacha20poly1305 streams in the
// tenant's column family (large values go to blob files).
//
// Random access: secretstream is sequential, but its evolving state is a
// key derived once from the stream key and header, plus a 12-byte nonce
// that is not secret. Each chunk is stored as that nonce (as it was before
// the chunk was pushed) followed by the secretstream message, so a reader
// re-derives the key from the header, sets the nonce and pulls any chunk
// alone. The chunk's index and the recording's binding are the message's
// associated data, so a moved, reordered or duplicated chunk fails, and the
// last chunk must carry the FINAL tag. docs/decisions/0003-recording-chunks.md.
#include <rocksdb/write_batch.h>
#include <sodium.h>

#include <cstring>
#include <optional>

#include "call_generated.h"
#include "callvault/store.h"
#include "engine/calls_internal.h"
#include "engine/metrics_internal.h"
#include "engine/crypto.h"
#include "engine/fs_util.h"
#include "engine/indexing.h"
#include "engine/store_impl.h"
#include "engine/validate.h"
#include "format/coding.h"
#include "format/verify.h"

namespace callvault {

namespace {

using State = crypto_secretstream_xchacha20poly1305_state;
constexpr size_t kStateNonceBytes = sizeof(State{}.nonce);
constexpr size_t kHeaderBytes = crypto_secretstream_xchacha20poly1305_HEADERBYTES;
constexpr size_t kStreamOverhead = crypto_secretstream_xchacha20poly1305_ABYTES;
constexpr char kRecordingDomain = 'R';

struct Names {
  std::string call_hash;
  std::string rec_hash;
};

Names NamesOf(const TenantRef& t, std::string_view call_id, std::string_view recording_id) {
  return Names{indexing::CallHash(t->index_key, call_id),
               crypto::BlindHash(t->index_key, kRecordingDomain, recording_id)};
}

// The stream key of one recording, bound to tenant, column family, call
// and recording.
SecretBytes StreamKey(const TenantRef& t, const Names& n) {
  std::string m = "cvrs1";
  format::PutFixed64BE(&m, t->ad_id());
  format::PutFixed64BE(&m, t->rec.cf_generation);
  m += n.call_hash;
  m += n.rec_hash;
  SecretBytes k(crypto_secretstream_xchacha20poly1305_KEYBYTES);
  crypto_generichash(k.data(), k.size(), reinterpret_cast<const unsigned char*>(m.data()), m.size(),
                     t->recording_key.data(), t->recording_key.size());
  return k;
}

std::string ChunkAd(const TenantRef& t, const Names& n, uint32_t index) {
  std::string ad = "cvrc1";
  format::PutFixed64BE(&ad, t->ad_id());
  format::PutFixed64BE(&ad, t->rec.cf_generation);
  ad += n.call_hash;
  ad += n.rec_hash;
  format::PutFixed32LE(&ad, index);
  return ad;
}

std::string EncodeManifest(const RecordingInfo& info, uint32_t chunk_bytes, std::string_view header) {
  flatbuffers::FlatBufferBuilder b(256);
  auto sha = b.CreateVector(reinterpret_cast<const uint8_t*>(info.sha256.data()), info.sha256.size());
  auto hdr = b.CreateVector(reinterpret_cast<const uint8_t*>(header.data()), header.size());
  b.Finish(fb::CreateRecordingManifest(b, b.CreateString(info.recording_id),
                                       b.CreateString(info.content_type), info.duration_ms,
                                       info.size, chunk_bytes, info.chunks, sha, info.created_at, hdr));
  return std::string(reinterpret_cast<const char*>(b.GetBufferPointer()), b.GetSize());
}

Status DecodeManifest(std::string plain, RecordingInfo* info, std::string* header) {
  if (!format::VerifyRecordingManifest(reinterpret_cast<const uint8_t*>(plain.data()), plain.size())) {
    return Status::Corruption("recording manifest fails FlatBuffers verification");
  }
  const auto* m = flatbuffers::GetRoot<fb::RecordingManifest>(plain.data());
  // The writer seals size / chunk_bytes full chunks, then the rest (maybe
  // nothing) as the FINAL chunk.
  if (!m->sha256() || m->sha256()->size() != crypto_hash_sha256_BYTES || !m->stream_header() ||
      m->stream_header()->size() != kHeaderBytes || m->chunk_bytes() != kRecordingChunkBytes ||
      m->size() / m->chunk_bytes() + 1 != m->chunks()) {
    return Status::Corruption("recording manifest is inconsistent");
  }
  info->recording_id = m->recording_id() ? m->recording_id()->str() : "";
  info->content_type = m->content_type() ? m->content_type()->str() : "";
  info->duration_ms = m->duration_ms();
  info->size = m->size();
  info->chunks = m->chunks();
  info->created_at = m->created_at();
  info->sha256.assign(reinterpret_cast<const char*>(m->sha256()->data()), m->sha256()->size());
  header->assign(reinterpret_cast<const char*>(m->stream_header()->data()), kHeaderBytes);
  return Status::OK();
}

Status ReadManifest(const TenantRef& t, const Names& n, RecordingInfo* info, std::string* header) {
  std::string plain;
  bool found = false;
  CV_RETURN_IF_ERROR(calls::GetSealed(t, rocksdb::ReadOptions(),
                                      format::RecordingKey(format::kRecordingManifestPrefix, n.call_hash, n.rec_hash),
                                      &plain, &found));
  if (!found) return Status::NotFound("no such recording");
  return DecodeManifest(std::move(plain), info, header);
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
        spec_(std::move(spec)), state_(sizeof(State)) {
    crypto_hash_sha256_init(&sha_);
  }
  ~Writer() override {
    if (!done_) Abort().IgnoreError();
  }

  Status Begin(const TenantRef& t, const Names& n) {
    names_ = n;
    SecretBytes key = StreamKey(t, n);
    header_.resize(kHeaderBytes);
    crypto_secretstream_xchacha20poly1305_init_push(State_(), reinterpret_cast<unsigned char*>(header_.data()), key.data());
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
    crypto_hash_sha256_update(&sha_, reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size());
    size_ += bytes.size();
    while (!bytes.empty()) {
      size_t take = std::min(bytes.size(), kRecordingChunkBytes - buffer_.size());
      buffer_.append(bytes.substr(0, take));
      bytes.remove_prefix(take);
      if (buffer_.size() == kRecordingChunkBytes) CV_RETURN_IF_ERROR(Seal(false));
    }
    return Status::OK();
  }

  Result<RecordingInfo> FinishImpl() {
    if (done_) return Status::FailedPrecondition("recording writer already finished");
    RecordingInfo info;
    info.sha256.resize(crypto_hash_sha256_BYTES);
    crypto_hash_sha256_final(&sha_, reinterpret_cast<unsigned char*>(info.sha256.data()));
    if (!spec_.expected_sha256.empty() && !crypto::ConstantTimeEquals(spec_.expected_sha256, info.sha256)) {
      Abort().IgnoreError();
      return Status::InvalidArgument("recording: content does not match expected_sha256; nothing kept");
    }
    CV_RETURN_IF_ERROR(Seal(true));
    info.recording_id = spec_.recording_id;
    info.content_type = spec_.content_type;
    info.duration_ms = spec_.duration_ms;
    info.size = size_;
    info.chunks = next_chunk_;
    info.created_at = NowMicros();
    CV_ASSIGN_OR_RETURN(TenantRef t, store_->AcquireForRecording(tenant_id_));
    std::lock_guard<std::mutex> w(t->write_mu);
    // DeleteCall (or erasure, or retention) removes the marker of a
    // recording being written; then nothing of it may be kept.
    std::string marker;
    const std::string pkey = format::RecordingKey(format::kRecordingPendingPrefix, names_.call_hash, names_.rec_hash);
    rocksdb::Status ms = t->shard->db()->Get(rocksdb::ReadOptions(), t->cf, pkey, &marker);
    if (ms.IsNotFound()) {
      done_ = true;
      state_.Wipe();
      rocksdb::WriteBatch drop;
      CV_RETURN_IF_ERROR(PlanDeleteRecording(t, names_, next_chunk_, &drop));
      CV_RETURN_IF_ERROR(fsutil::FromRocks(t->shard->db()->Write(rocksdb::WriteOptions(), &drop), "drop recording"));
      return Status::NotFound("the call was deleted while its recording was written; nothing was kept");
    }
    CV_RETURN_IF_ERROR(fsutil::FromRocks(ms, "read recording marker"));
    rocksdb::WriteBatch b;
    const std::string mkey = format::RecordingKey(format::kRecordingManifestPrefix, names_.call_hash, names_.rec_hash);
    CV_RETURN_IF_ERROR(fsutil::FromRocks(
        b.Put(t->cf, mkey, record::Seal(t->record_key, t->binding(), mkey,
                                        EncodeManifest(info, kRecordingChunkBytes, header_))),
        "batch"));
    CV_RETURN_IF_ERROR(fsutil::FromRocks(
        b.Delete(t->cf, format::RecordingKey(format::kRecordingPendingPrefix, names_.call_hash, names_.rec_hash)), "batch"));
    // The chunks went to the WAL unsynced; sync every live WAL, then the
    // manifest with a synced write: the recording is visible only whole.
    CV_RETURN_IF_ERROR(t->shard->SyncWal());
    rocksdb::WriteOptions wo;
    wo.sync = true;
    CV_RETURN_IF_ERROR(fsutil::FromRocks(t->shard->db()->Write(wo, &b), "write recording manifest"));
    done_ = true;
    state_.Wipe();
    return info;
  }

 public:
  Status Abort() override {
    if (done_ || !started_) return Status::OK();
    done_ = true;
    state_.Wipe();
    CV_ASSIGN_OR_RETURN(TenantRef t, store_->AcquireForRecording(tenant_id_));
    rocksdb::WriteBatch b;
    CV_RETURN_IF_ERROR(PlanDeleteRecording(t, names_, next_chunk_, &b));
    return fsutil::FromRocks(t->shard->db()->Write(rocksdb::WriteOptions(), &b), "abort recording");
  }

 private:
  State* State_() { return reinterpret_cast<State*>(state_.data()); }

  Status Seal(bool final) {
    CV_ASSIGN_OR_RETURN(TenantRef t, store_->AcquireForRecording(tenant_id_));
    std::string value(kStateNonceBytes + buffer_.size() + kStreamOverhead, '\0');
    std::memcpy(value.data(), State_()->nonce, kStateNonceBytes);
    const std::string ad = ChunkAd(t, names_, next_chunk_);
    unsigned long long clen = 0;
    crypto_secretstream_xchacha20poly1305_push(
        State_(), reinterpret_cast<unsigned char*>(value.data() + kStateNonceBytes), &clen,
        reinterpret_cast<const unsigned char*>(buffer_.data()), buffer_.size(),
        reinterpret_cast<const unsigned char*>(ad.data()), ad.size(),
        final ? crypto_secretstream_xchacha20poly1305_TAG_FINAL : crypto_secretstream_xchacha20poly1305_TAG_MESSAGE);
    value.resize(kStateNonceBytes + clen);
    const std::string key = format::RecordingChunkKey(names_.call_hash, names_.rec_hash, next_chunk_);
    CV_RETURN_IF_ERROR(fsutil::FromRocks(t->shard->db()->Put(rocksdb::WriteOptions(), t->cf, key, value),
                                         "write recording chunk"));
    ++next_chunk_;
    buffer_.clear();
    return Status::OK();
  }

  Store::Impl* const store_;
  const std::string tenant_id_;
  const std::string call_id_;
  RecordingSpec spec_;
  Names names_;
  SecretBytes state_;  // the secretstream state holds a key
  std::string header_;
  crypto_hash_sha256_state sha_;
  std::string buffer_;
  uint64_t size_ = 0;
  uint32_t next_chunk_ = 0;
  bool started_ = false;
  bool done_ = false;
};

// Decrypts chunks overlapping [offset, offset + length) and passes the
// bytes to `sink`. Re-acquires the tenant per chunk: a purge is never held
// up by a long read, and one that completes ends the read (kTenantPurged).
// With `held`, uses that tenant reference throughout instead.
Status ReadChunks(Store::Impl* store, const TenantRef* held, std::string_view tenant_id,
                  const Names& n, const RecordingInfo& info, const std::string& header,
                  const SecretBytes& key, uint64_t offset, uint64_t length,
                  const RecordingSink& sink) {
  // An empty recording is one empty FINAL chunk, read only as [0, ...).
  if (length == 0 || (offset >= info.size && !(offset == 0 && info.size == 0))) return Status::OK();
  const uint64_t end = std::min<uint64_t>(info.size, offset + std::min<uint64_t>(length, info.size));
  const uint32_t first = static_cast<uint32_t>(offset / kRecordingChunkBytes);
  // A read that reaches the end also opens the last chunk, the FINAL one,
  // even when it holds no bytes (a size that is a multiple of the chunk size
  // ends with an empty FINAL chunk): a whole read checks the whole stream.
  const uint32_t last = end == info.size ? info.chunks - 1 : static_cast<uint32_t>((end - 1) / kRecordingChunkBytes);
  SecretBytes state_mem(sizeof(State));
  State* state = reinterpret_cast<State*>(state_mem.data());
  std::string msg;
  for (uint32_t i = first; i <= last; ++i) {
    std::optional<TenantRef> acquired;
    if (held == nullptr) {
      // A read: served by a source that a move fenced (decision 0022).
      CV_ASSIGN_OR_RETURN(TenantRef r, store->AcquireForRecording(tenant_id, Access::kRead));
      acquired.emplace(std::move(r));
    }
    const TenantRef& t = held ? *held : *acquired;
    std::string value;
    rocksdb::Status s = t->shard->db()->Get(rocksdb::ReadOptions(), t->cf,
                                            format::RecordingChunkKey(n.call_hash, n.rec_hash, i), &value);
    if (s.IsNotFound()) return Status::Corruption("recording chunk " + std::to_string(i) + " is missing");
    CV_RETURN_IF_ERROR(fsutil::FromRocks(s, "read recording chunk"));
    if (value.size() < kStateNonceBytes + kStreamOverhead ||
        value.size() > kStateNonceBytes + kStreamOverhead + kRecordingChunkBytes) {
      return Status::Corruption("recording chunk " + std::to_string(i) + " has a bad size");
    }
    if (crypto_secretstream_xchacha20poly1305_init_pull(state, reinterpret_cast<const unsigned char*>(header.data()), key.data()) != 0) {
      return Status::Corruption("recording stream header is invalid");
    }
    std::memcpy(state->nonce, value.data(), kStateNonceBytes);
    const std::string ad = ChunkAd(t, n, i);
    msg.resize(value.size() - kStateNonceBytes - kStreamOverhead);
    unsigned long long mlen = 0;
    unsigned char tag = 0;
    if (crypto_secretstream_xchacha20poly1305_pull(
            state, reinterpret_cast<unsigned char*>(msg.data()), &mlen, &tag,
            reinterpret_cast<const unsigned char*>(value.data() + kStateNonceBytes), value.size() - kStateNonceBytes,
            reinterpret_cast<const unsigned char*>(ad.data()), ad.size()) != 0) {
      metrics::CountAeadFailure();
      return Status::Corruption("recording chunk " + std::to_string(i) +
                                " failed authentication (tampered, moved, or from another recording)");
    }
    const bool is_last = i + 1 == info.chunks;
    const uint64_t expect = is_last ? info.size - uint64_t{i} * kRecordingChunkBytes : kRecordingChunkBytes;
    if ((tag == crypto_secretstream_xchacha20poly1305_TAG_FINAL) != is_last || mlen != expect) {
      return Status::Corruption("recording chunk " + std::to_string(i) + " is out of place in the stream");
    }
    const uint64_t chunk_start = uint64_t{i} * kRecordingChunkBytes;
    const uint64_t from = std::max(offset, chunk_start) - chunk_start;
    const uint64_t to = std::min<uint64_t>(end, chunk_start + mlen) - chunk_start;
    CV_RETURN_IF_ERROR(sink(std::string_view(msg).substr(from, to - from)));
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
  CV_RETURN_IF_ERROR(fsutil::FromRocks(
      t->shard->db()->Put(rocksdb::WriteOptions(), t->cf, pkey, record::Seal(t->record_key, t->binding(), pkey, "")),
      "write recording marker"));
  auto writer = std::make_unique<Writer>(this, std::string(tenant_id), std::string(call_id), spec);
  CV_RETURN_IF_ERROR(writer->Begin(t, n));
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
    std::string plain, header;
    CV_RETURN_IF_ERROR(t->OpenRecord(it->key().ToStringView(), it->value().ToStringView(), &plain));
    RecordingInfo info;
    CV_RETURN_IF_ERROR(DecodeManifest(std::move(plain), &info, &header));
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
  std::string header;
  Names n;
  SecretBytes key;
  {
    CV_ASSIGN_OR_RETURN(TenantRef t, Acquire(tenant_id));
    n = NamesOf(t, call_id, recording_id);
    CV_RETURN_IF_ERROR(ReadManifest(t, n, &info, &header));
    key = StreamKey(t, n);
  }
  return ReadChunks(this, nullptr, tenant_id, n, info, header, key, offset, length, sink);
}

Status Store::Impl::DeleteRecording(std::string_view tenant_id, std::string_view call_id,
                                    std::string_view recording_id) {
  CV_RETURN_IF_ERROR(validate::Id("call_id", call_id));
  CV_RETURN_IF_ERROR(validate::Id("recording_id", recording_id));
  CV_ASSIGN_OR_RETURN(TenantRef t, Acquire(tenant_id, Access::kRemove));
  std::lock_guard<std::mutex> w(t->write_mu);
  Names n = NamesOf(t, call_id, recording_id);
  RecordingInfo info;
  std::string header;
  CV_RETURN_IF_ERROR(ReadManifest(t, n, &info, &header));
  CV_RETURN_IF_ERROR(CheckNotHeld(t, n.call_hash, /*any_call=*/false));
  rocksdb::WriteBatch b;
  CV_RETURN_IF_ERROR(PlanDeleteAllChunks(t, n, &b));
  // Logged (blind hashes, outside the store) before the delete is written:
  // a restore of an older backup deletes the recording again (backup.cc).
  std::shared_lock<std::shared_mutex> tl(tombstone_mu_);
  CV_RETURN_IF_ERROR(LogRecordingTombstone(t->rec.internal_id, n.call_hash, n.rec_hash));
  return fsutil::FromRocks(t->shard->db()->Write(WriteOpts(), &b), "delete recording");
}

namespace calls {

Status PlanDeleteRecordingByHash(const TenantRef& t, std::string_view call_hash,
                                 std::string_view rec_hash, rocksdb::WriteBatch* b, bool* found) {
  Names n{std::string(call_hash), std::string(rec_hash)};
  RecordingInfo info;
  std::string header;
  Status s = ReadManifest(t, n, &info, &header);
  *found = s.ok();
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
  std::string plain, header;
  CV_RETURN_IF_ERROR(t->OpenRecord(manifest_key, sealed, &plain));
  RecordingInfo info;
  CV_RETURN_IF_ERROR(DecodeManifest(std::move(plain), &info, &header));
  std::string_view k = manifest_key.substr(1);
  if (k.size() != 2 * format::kHashBytes) return Status::Corruption("malformed recording key");
  Names n{std::string(k.substr(0, format::kHashBytes)), std::string(k.substr(format::kHashBytes))};
  SecretBytes key = StreamKey(t, n);
  // Every chunk, the empty last one included, must open in place.
  CV_RETURN_IF_ERROR(ReadChunks(nullptr, &t, t->rec.tenant_id, n, info, header, key, 0, UINT64_MAX,
                                [](std::string_view) { return Status::OK(); }));
  *chunks = info.chunks;
  return Status::OK();
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

}  // namespace calls

}  // namespace callvault
