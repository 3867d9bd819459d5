// Helpers shared by the guarantee suites (tests/guarantees): a seeded RNG
// that prints its seed, marker strings, a fast multi-needle byte scanner for
// whole directory trees, and raw RocksDB access to a closed store's shards
// with the engine's own options.
#ifndef CALLVAULT_TESTS_GUARANTEES_GUARANTEE_UTIL_H_
#define CALLVAULT_TESTS_GUARANTEES_GUARANTEE_UTIL_H_

#include <gtest/gtest.h>
#include <rocksdb/db.h>
#include <rocksdb/options.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "callvault/store.h"
#include "engine/crypto.h"
#include "engine/keyring.h"
#include "engine/record.h"
#include "engine/shard.h"
#include "tests/testutil/raw_shard.h"
#include "tests/testutil/testutil.h"

namespace callvault::guarantees {

// The seed of this test: $CALLVAULT_SEED if set (to replay a failure), else
// random. Printed on stdout and recorded as a test property.
inline uint64_t TestSeed() {
  uint64_t seed;
  if (const char* env = std::getenv("CALLVAULT_SEED"); env != nullptr && *env) {
    seed = std::strtoull(env, nullptr, 0);
  } else {
    seed = (static_cast<uint64_t>(std::random_device{}()) << 32) ^ std::random_device{}();
  }
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::cout << "[seed] " << (info ? info->name() : "?") << ": CALLVAULT_SEED=" << seed << std::endl;
  ::testing::Test::RecordProperty("seed", std::to_string(seed));
  return seed;
}

inline std::string RandHex(std::mt19937_64& rng, size_t n) {
  static const char* kHex = "0123456789abcdef";
  std::string s(n, '0');
  for (auto& c : s) c = kHex[rng() & 15];
  return s;
}

inline std::string RandDigits(std::mt19937_64& rng, size_t n) {
  std::string s(n, '0');
  for (auto& c : s) c = static_cast<char>('0' + rng() % 10);
  return s;
}

inline std::string Lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

inline std::string ToHex(std::string_view bytes) {
  static const char* kHex = "0123456789abcdef";
  std::string s;
  s.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    s.push_back(kHex[c >> 4]);
    s.push_back(kHex[c & 15]);
  }
  return s;
}

// Finds any of a set of needles (each >= 8 bytes) in byte strings, fast:
// one hash lookup of the 8-byte window at every offset, then a full compare.
class NeedleScanner {
 public:
  static constexpr size_t kMinNeedle = 8;

  void Add(const std::string& needle) {
    if (needle.size() < kMinNeedle) {
      ADD_FAILURE() << "scanner needle shorter than " << kMinNeedle << " bytes: " << needle;
      return;
    }
    if (!all_.insert(needle).second) return;
    by_prefix_[Prefix(needle.data())].push_back(needle);
  }
  // The needle and its lower-case form.
  void AddWithLower(const std::string& needle) {
    Add(needle);
    Add(Lower(needle));
  }
  size_t size() const { return all_.size(); }

  // Every needle found in `data` (each reported once).
  std::vector<std::string> Find(std::string_view data) const {
    std::set<std::string> found;
    if (data.size() >= kMinNeedle) {
      for (size_t i = 0; i + kMinNeedle <= data.size(); ++i) {
        auto it = by_prefix_.find(Prefix(data.data() + i));
        if (it == by_prefix_.end()) continue;
        for (const auto& n : it->second) {
          if (i + n.size() <= data.size() &&
              std::memcmp(data.data() + i, n.data(), n.size()) == 0) {
            found.insert(n);
          }
        }
      }
    }
    return {found.begin(), found.end()};
  }

 private:
  static uint64_t Prefix(const char* p) {
    uint64_t v;
    std::memcpy(&v, p, sizeof v);
    return v;
  }
  std::set<std::string> all_;
  std::unordered_map<uint64_t, std::vector<std::string>> by_prefix_;
};

struct ScanHit {
  std::string file;
  std::string needle;
};

// Scans every byte of every regular file under each of `dirs`. `files`, if
// given, receives the number of files read; `bytes` the bytes read.
inline std::vector<ScanHit> ScanTrees(const std::vector<std::string>& dirs,
                                      const NeedleScanner& scanner, size_t* files = nullptr,
                                      size_t* bytes = nullptr) {
  std::vector<ScanHit> hits;
  size_t nf = 0, nb = 0;
  for (const auto& dir : dirs) {
    for (const auto& f : testutil::ListFiles(dir)) {
      std::string data = testutil::ReadFile(f);
      ++nf;
      nb += data.size();
      for (auto& n : scanner.Find(data)) hits.push_back({f, n});
    }
  }
  if (files) *files = nf;
  if (bytes) *bytes = nb;
  return hits;
}

inline std::string Describe(const std::vector<ScanHit>& hits, size_t max = 20) {
  std::string s;
  for (size_t i = 0; i < hits.size() && i < max; ++i) {
    s += "\n  " + hits[i].file + ": '" + hits[i].needle + "'";
  }
  if (hits.size() > max) s += "\n  ... " + std::to_string(hits.size() - max) + " more";
  return s;
}

inline std::vector<std::string> FilesMatching(const std::string& dir, const std::string& needle) {
  std::vector<std::string> out;
  for (const auto& f : testutil::ListFiles(dir)) {
    if (std::filesystem::path(f).filename().string().find(needle) != std::string::npos) {
      out.push_back(f);
    }
  }
  return out;
}

using testutil::RawShard;  // tests/testutil/raw_shard.h

inline std::vector<std::string> ListColumnFamilies(const std::string& shard_path) {
  std::vector<std::string> names;
  rocksdb::Status s = testutil::ListLiveColumnFamilies(shard_path, &names);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return names;
}

// The current keyring of a key directory, opened with a new provider.
inline Result<Keyring> LoadCurrentKeyring(const std::string& keys_dir) {
  FileKeyProviderOptions po;
  po.create_if_missing = false;
  CV_ASSIGN_OR_RETURN(auto kp, NewFileKeyProvider(keys_dir, po));
  CV_ASSIGN_OR_RETURN(auto gens, kp->ListKeyrings());
  if (gens.empty()) return Status::NotFound("no keyring");
  CV_ASSIGN_OR_RETURN(std::string bytes, kp->ReadKeyring(gens.back()));
  return Keyring::Unseal(kp.get(), bytes);
}

// A tenant's record key and binding, from the keyring, as the engine
// derives them (the column-family generation is the internal id at
// creation; callers check the binding by opening a known record).
struct TenantKeys {
  SecretBytes record_key;
  record::Binding binding;
};
inline std::optional<TenantKeys> KeysOf(const Keyring& k, const TenantInfo& info) {
  const SecretBytes* dek = k.Find(info.internal_id, info.key_version);
  if (dek == nullptr) return std::nullopt;
  TenantKeys t;
  t.record_key = crypto::DeriveSubkey(*dek, crypto::Subkey::kRecord);
  t.binding = record::Binding{info.internal_id, info.internal_id, info.key_version};
  return t;
}

}  // namespace callvault::guarantees

#endif  // CALLVAULT_TESTS_GUARANTEES_GUARANTEE_UTIL_H_
