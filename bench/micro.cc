// callvault_micro: the physical limits on this machine, per core: AEAD seal
// (XChaCha20-Poly1305, and AES-256-GCM where the CPU has it) of 16 KiB
// messages, zstd level 3 on generated transcript text, memcpy. Google
// Benchmark; bytes/s via SetBytesProcessed.
#include <benchmark/benchmark.h>
#include <sodium.h>
#include <zstd.h>

#include <cstring>
#include <string>
#include <vector>

#include "workload/workload.h"

namespace {

// Generated transcript text (Zipf words over the English word list), one
// segment a line, at least `n` bytes, cut to `n`.
const std::string& TranscriptText(size_t n) {
  static std::string text;
  if (text.size() < n) {
    callvault::workload::GeneratorOptions o;
    o.seed = 1;
    callvault::workload::Generator g(o);
    while (text.size() < n) {
      for (const auto& s : g.Next().transcript) {
        text += s.text;
        text += '\n';
      }
    }
  }
  static std::string cut;
  cut = text.substr(0, n);
  return cut;
}

std::string Random(size_t n) {
  std::string s(n, '\0');
  randombytes_buf(s.data(), n);
  return s;
}

void BM_XChaCha20Poly1305_Seal(benchmark::State& state) {
  const size_t n = static_cast<size_t>(state.range(0));
  std::string msg = Random(n), out(n + crypto_aead_xchacha20poly1305_ietf_ABYTES, '\0');
  unsigned char key[crypto_aead_xchacha20poly1305_ietf_KEYBYTES];
  unsigned char nonce[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES];
  crypto_aead_xchacha20poly1305_ietf_keygen(key);
  randombytes_buf(nonce, sizeof nonce);
  for (auto _ : state) {
    unsigned long long len = 0;
    crypto_aead_xchacha20poly1305_ietf_encrypt(
        reinterpret_cast<unsigned char*>(out.data()), &len,
        reinterpret_cast<const unsigned char*>(msg.data()), n, nullptr, 0, nullptr, nonce, key);
    benchmark::DoNotOptimize(out.data());
    ++nonce[0];
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(n));
}
BENCHMARK(BM_XChaCha20Poly1305_Seal)->Arg(16 << 10);

void BM_AES256GCM_Seal(benchmark::State& state) {
  if (!crypto_aead_aes256gcm_is_available()) {
    state.SkipWithError("AES-256-GCM is not available on this CPU (libsodium)");
    for (auto _ : state) {
    }
    return;
  }
  const size_t n = static_cast<size_t>(state.range(0));
  std::string msg = Random(n), out(n + crypto_aead_aes256gcm_ABYTES, '\0');
  unsigned char key[crypto_aead_aes256gcm_KEYBYTES];
  unsigned char nonce[crypto_aead_aes256gcm_NPUBBYTES];
  crypto_aead_aes256gcm_keygen(key);
  randombytes_buf(nonce, sizeof nonce);
  crypto_aead_aes256gcm_state st;
  crypto_aead_aes256gcm_beforenm(&st, key);
  for (auto _ : state) {
    unsigned long long len = 0;
    crypto_aead_aes256gcm_encrypt_afternm(reinterpret_cast<unsigned char*>(out.data()), &len,
                                          reinterpret_cast<const unsigned char*>(msg.data()), n,
                                          nullptr, 0, nullptr, nonce, &st);
    benchmark::DoNotOptimize(out.data());
    ++nonce[0];
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(n));
}
BENCHMARK(BM_AES256GCM_Seal)->Arg(16 << 10);

void BM_Zstd3_Compress_Transcript(benchmark::State& state) {
  const size_t n = static_cast<size_t>(state.range(0));
  const std::string in = TranscriptText(n);
  std::string out(ZSTD_compressBound(n), '\0');
  ZSTD_CCtx* cctx = ZSTD_createCCtx();
  size_t csize = 0;
  for (auto _ : state) {
    csize = ZSTD_compressCCtx(cctx, out.data(), out.size(), in.data(), n, 3);
    benchmark::DoNotOptimize(out.data());
  }
  ZSTD_freeCCtx(cctx);
  if (ZSTD_isError(csize)) state.SkipWithError("zstd failed");
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(n));
  state.counters["ratio"] = static_cast<double>(n) / static_cast<double>(csize);
}
BENCHMARK(BM_Zstd3_Compress_Transcript)->Arg(2 << 10)->Arg(64 << 10);

void BM_Zstd3_Decompress_Transcript(benchmark::State& state) {
  const size_t n = static_cast<size_t>(state.range(0));
  const std::string in = TranscriptText(n);
  std::string comp(ZSTD_compressBound(n), '\0');
  comp.resize(ZSTD_compress(comp.data(), comp.size(), in.data(), n, 3));
  std::string out(n, '\0');
  ZSTD_DCtx* dctx = ZSTD_createDCtx();
  for (auto _ : state) {
    size_t r = ZSTD_decompressDCtx(dctx, out.data(), n, comp.data(), comp.size());
    benchmark::DoNotOptimize(r);
  }
  ZSTD_freeDCtx(dctx);
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(n));
}
BENCHMARK(BM_Zstd3_Decompress_Transcript)->Arg(64 << 10);

// callvault's per-record write path without the FlatBuffers step: zstd 3,
// then XChaCha20-Poly1305 of the compressed bytes. Bytes are plaintext bytes.
void BM_Record_Zstd3_Then_XChaCha_Seal(benchmark::State& state) {
  const size_t n = static_cast<size_t>(state.range(0));
  const std::string in = TranscriptText(n);
  std::string comp(ZSTD_compressBound(n), '\0');
  std::string out(comp.size() + crypto_aead_xchacha20poly1305_ietf_ABYTES, '\0');
  unsigned char key[crypto_aead_xchacha20poly1305_ietf_KEYBYTES];
  unsigned char nonce[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES];
  crypto_aead_xchacha20poly1305_ietf_keygen(key);
  randombytes_buf(nonce, sizeof nonce);
  ZSTD_CCtx* cctx = ZSTD_createCCtx();
  for (auto _ : state) {
    size_t c = ZSTD_compressCCtx(cctx, comp.data(), comp.size(), in.data(), n, 3);
    unsigned long long len = 0;
    crypto_aead_xchacha20poly1305_ietf_encrypt(reinterpret_cast<unsigned char*>(out.data()), &len,
                                               reinterpret_cast<const unsigned char*>(comp.data()),
                                               c, nullptr, 0, nullptr, nonce, key);
    benchmark::DoNotOptimize(out.data());
    ++nonce[0];
  }
  ZSTD_freeCCtx(cctx);
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(n));
}
BENCHMARK(BM_Record_Zstd3_Then_XChaCha_Seal)->Arg(64 << 10);

void BM_Memcpy(benchmark::State& state) {
  const size_t n = static_cast<size_t>(state.range(0));
  std::vector<char> src(n, 'x'), dst(n);
  for (auto _ : state) {
    std::memcpy(dst.data(), src.data(), n);
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(n));
}
BENCHMARK(BM_Memcpy)->Arg(16 << 10)->Arg(16 << 20);

}  // namespace

int main(int argc, char** argv) {
  if (sodium_init() < 0) return 1;
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
