// The raw-RocksDB comparator's serialization: the same FlatBuffers schema as
// callvault (format/call.fbs, through its generated call_generated.h), one
// buffer per part: metadata with participants, transcript, insights. No
// compression and no encryption: RocksDB's block compression does that job
// for the comparator.
#ifndef CALLVAULT_BENCH_RAW_CODEC_H_
#define CALLVAULT_BENCH_RAW_CODEC_H_

#include <string>
#include <string_view>

#include "callvault/call.h"

namespace callvault::bench::rawcodec {

std::string EncodeMeta(const Call& c);
std::string EncodeTranscript(const Call& c);
std::string EncodeInsights(const Call& c);

// Verify (FlatBuffers Verifier) and decode into *c; false when the bytes
// fail verification.
bool DecodeMeta(std::string_view bytes, Call* c);
bool DecodeTranscript(std::string_view bytes, Call* c);
bool DecodeInsights(std::string_view bytes, Call* c);

// Bytes of the three serialized parts: the "logical" size of a call that
// ingest MB/s is counted in (the same for both systems).
size_t SerializedBytes(const Call& c);

}  // namespace callvault::bench::rawcodec

#endif  // CALLVAULT_BENCH_RAW_CODEC_H_
