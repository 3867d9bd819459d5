// The fixture shared by the guarantee-6 suites (bad_input_test.cc,
// bad_open_test.cc): a store with two tenants, every key that exists (to
// check that no message holds key bytes), and a snapshot of everything a
// rejected operation must leave as it was.
#ifndef CALLVAULT_TESTS_GUARANTEES_BAD_INPUT_FIXTURE_H_
#define CALLVAULT_TESTS_GUARANTEES_BAD_INPUT_FIXTURE_H_

#include <filesystem>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "callvault/store.h"
#include "engine/crypto.h"
#include "engine/keyring.h"
#include "tests/guarantees/guarantee_util.h"
#include "tests/testutil/testutil.h"

namespace callvault::guarantees {

namespace fs = std::filesystem;
using testutil::TestStore;

inline constexpr int64_t kT0 = 1'767'225'600'000'000;  // 2026-01-01T00:00:00Z

// What "nothing changed" compares.
struct Snapshot {
  std::string tenants;  // id, state, internal id, family, created_at of each
  std::map<std::string, uint64_t> counts;
  std::map<std::string, std::pair<uint64_t, uint64_t>> records_bytes;
  uint64_t receipts = 0, keyring_generation = 0, files = 0, total_bytes = 0, purged = 0;
  bool operator==(const Snapshot&) const = default;
  // What a reopen keeps (files and memtables change on open).
  bool SameContent(const Snapshot& o) const {
    return tenants == o.tenants && counts == o.counts && receipts == o.receipts &&
           keyring_generation == o.keyring_generation && purged == o.purged;
  }
};

inline std::map<std::string, std::string> DirContents(const std::string& dir) {
  std::map<std::string, std::string> out;
  for (const auto& f : testutil::ListFiles(dir)) out[f] = testutil::ReadFile(f);
  return out;
}

class BadInputTest : public ::testing::Test {
 protected:
  void SetUp() override {
    rng_.seed(guarantees::TestSeed());
    ASSERT_OK(ts_.Open());
    ASSERT_OK(ts_->CreateTenant({.tenant_id = "acme", .retention_days = 30}));
    ASSERT_OK(ts_->CreateTenant({.tenant_id = "globex"}));
    for (int i = 0; i < 3; ++i) {
      ASSERT_OK(ts_->PutCall("acme", testutil::MakeCall("call-" + std::to_string(i), kT0 + i)));
    }
    Call sourced = testutil::MakeCall("sourced", kT0 + 10);
    sourced.source_call_id = "zoom-1";
    ASSERT_OK(ts_->PutCall("acme", sourced));
    ASSERT_OK(ts_->PutCall("globex", testutil::MakeCall("g", kT0)));
    CollectKeyMaterial(ts_.keys);
  }

  // A random marker carried by an offending value.
  std::string Bad() { return "BADVAL-" + guarantees::RandHex(rng_, 16); }

  // Every key that exists: KEK and signing-key files, the keyring's keys
  // and the subkeys of every DEK.
  void CollectKeyMaterial(const std::string& keys_dir) {
    for (const auto& f : testutil::ListFiles(keys_dir)) {
      std::string name = fs::path(f).filename().string();
      if (name.rfind("KEK-", 0) == 0 || name == "SIGNING-KEY") {
        std::string bytes = testutil::ReadFile(f);
        secrets_.push_back(bytes);
        if (bytes.size() == 64) {
          secrets_.push_back(bytes.substr(0, 32));
          secrets_.push_back(bytes.substr(32));
        }
      }
    }
    auto k = guarantees::LoadCurrentKeyring(keys_dir);
    ASSERT_OK(k);
    auto add = [&](const SecretBytes& s) {
      secrets_.emplace_back(reinterpret_cast<const char*>(s.data()), s.size());
    };
    add(k->store_data_key);
    add(k->store_index_key);
    for (const auto& [id, dek] : k->deks) {
      add(dek);
      for (auto sub : {crypto::Subkey::kRecord, crypto::Subkey::kIndex, crypto::Subkey::kRecording,
                       crypto::Subkey::kCursor}) {
        add(crypto::DeriveSubkey(dek, sub));
      }
    }
  }

  void ExpectNoSecrets(const std::string& message) {
    const std::string lower = Lower(message);
    for (const auto& s : secrets_) {
      EXPECT_EQ(message.find(s), std::string::npos) << "raw key bytes in a message";
      const std::string hex = ToHex(s);
      for (size_t i = 0; i + 16 <= hex.size(); i += 2) {
        ASSERT_EQ(lower.find(hex.substr(i, 16)), std::string::npos)
            << "key bytes (hex) in message: " << message;
      }
    }
  }

  Snapshot Snap() {
    Snapshot s;
    auto tenants = ts_->ListTenants();
    EXPECT_OK(tenants);
    if (tenants.ok()) {
      for (const auto& t : *tenants) {
        s.tenants += t.tenant_id + "/" + TenantStateName(t.state) + "/" +
                     std::to_string(t.internal_id) + "/" + t.column_family + "/" +
                     std::to_string(t.created_at) + ";";
        if (t.state == TenantState::kActive) s.counts[t.tenant_id] = *ts_->CountCalls(t.tenant_id);
      }
    }
    auto st = ts_->Stats();
    EXPECT_OK(st);
    if (st.ok()) {
      for (const auto& t : st->tenants) s.records_bytes[t.tenant_id] = {t.records, t.bytes};
      s.receipts = st->receipts;
      s.keyring_generation = st->keyring_generation;
      s.files = st->files;
      s.total_bytes = st->total_bytes;
      s.purged = st->purged_tenants;
    }
    return s;
  }

  // `r` failed with `code`; its message names `field` and holds none of
  // `offending` (in any case) and no key bytes; and nothing changed.
  template <typename R>
  void ExpectRejected(const R& r, Code code, const std::string& field,
                      const std::vector<std::string>& offending, const Snapshot& before) {
    const Status& s = testutil::StatusOf(r);
    EXPECT_EQ(s.code(), code) << s.ToString();
    EXPECT_FALSE(s.message().empty());
    if (!field.empty()) {
      EXPECT_NE(s.message().find(field), std::string::npos)
          << "message does not name " << field << ": " << s.ToString();
    }
    for (const auto& o : offending) {
      EXPECT_EQ(Lower(s.message()).find(Lower(o)), std::string::npos)
          << "offending value in message: " << s.ToString();
    }
    ExpectNoSecrets(s.message());
    EXPECT_TRUE(Snap() == before) << "something was written by a rejected operation ("
                                  << s.ToString() << ")";
    ++cases_;
  }

  Call Valid(const std::string& id = "new-call") {
    Call c = testutil::MakeCall(id, kT0 + 1000);
    c.participants.push_back(Participant{"Carol", "carol@x.example", "+442071838750", "VP", "X",
                                         Affiliation::kExternal, 3, ""});
    return c;
  }

  std::mt19937_64 rng_;
  TestStore ts_;
  std::vector<std::string> secrets_;
  size_t cases_ = 0;
};

}  // namespace callvault::guarantees

#endif  // CALLVAULT_TESTS_GUARANTEES_BAD_INPUT_FIXTURE_H_
