// Guarantees 3 (purge is crypto-shredding plus drop) and 5 (restore obeys
// the shred).
//
// Three tenants are populated (SST, blob and WAL data); the store directory
// and the key directory are copied (a backup) before tenant B is purged.
// Then: the receipt says what was destroyed and verifies; B's column family
// is gone from the live MANIFEST and its SST and blob files are deleted (by
// the shard's reaper right after the receipt: decision 0049); the
// retired KEK generation and old keyring are gone; no key that still exists
// opens any of B's records in the backup (SST, blob or WAL), while the
// backup's own keys would have (the control); opening the backup with the
// current keys brings A and C back whole and B not at all (its column
// family dropped from the copy); and a key directory rolled back to before
// the purge is refused with kKeyError.
#include <rocksdb/env.h>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "callvault/store.h"
#include "engine/crypto.h"
#include "engine/keyring.h"
#include "engine/record.h"
#include "format/envelope.h"
#include "tests/guarantees/guarantee_util.h"
#include "tests/testutil/testutil.h"

namespace callvault {
namespace {

namespace fs = std::filesystem;
using guarantees::RawShard;
using testutil::TestStore;

constexpr int64_t kT0 = 1'767'225'600'000'000;  // 2026-01-01T00:00:00Z
const std::vector<std::string> kTenants = {"acme", "bravo", "charlie"};

// The SST and blob files of one column family of a shard.
std::vector<std::string> FilesOfFamily(const std::string& shard, const std::string& cf) {
  RawShard raw(shard, /*read_only=*/true);
  EXPECT_TRUE(raw.status().ok()) << raw.status().ToString();
  std::vector<std::string> out;
  if (!raw.status().ok() || raw.cf(cf) == nullptr) return out;
  rocksdb::ColumnFamilyMetaData meta;
  raw.db()->GetColumnFamilyMetaData(raw.cf(cf), &meta);
  auto join = [](const std::string& dir, const std::string& name) {
    return !name.empty() && name[0] == '/' ? dir + name : dir + "/" + name;
  };
  for (const auto& level : meta.levels) {
    for (const auto& f : level.files) out.push_back(join(f.directory, f.relative_filename));
  }
  for (const auto& b : meta.blob_files) out.push_back(join(b.blob_file_path, b.blob_file_name));
  return out;
}

int64_t NowMicrosForTest() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::set<std::string> KeyDirNames(const std::string& dir) {
  std::set<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.insert(e.path().filename().string());
  return names;
}

class PurgeBackupTest : public ::testing::Test {
 protected:
  void SetUp() override {
    rng_.seed(guarantees::TestSeed());
    ASSERT_OK(ts_.Open());
  }

  std::string Marker() { return "PB-" + guarantees::RandHex(rng_, 16); }

  Call MakeCall(const std::string& id, int64_t at, bool big) {
    Call c = testutil::MakeCall(id, at, Marker());
    c.created_at = at + 1;
    c.updated_at = at + 2;
    if (big) {  // > 1 MiB (min_blob_size) after compression: a blob file
      static const char* kAlpha =
          "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
      for (int s = 0; s < 140; ++s) {
        std::string text(12 * 1024, 'a');
        for (auto& ch : text) ch = kAlpha[rng_() & 63];
        c.transcript.push_back(
            TranscriptSegment{1, 100000u + s * 1000u, 100000u + s * 1000u + 900u, text, 0.5f});
      }
    }
    return c;
  }

  void Put(const std::string& tenant, const Call& c) {
    ASSERT_OK(ts_->PutCall(tenant, c));
    written_[tenant][c.call_id] = c;
  }

  // Every call of `tenant` written so far reads back whole from `store`.
  void ExpectWhole(Store* store, const std::string& tenant) {
    auto n = store->CountCalls(tenant);
    ASSERT_OK(n);
    EXPECT_EQ(*n, written_[tenant].size()) << tenant;
    for (const auto& [id, c] : written_[tenant]) {
      auto got = store->GetCall(tenant, id);
      ASSERT_OK(got);
      EXPECT_TRUE(*got == c) << tenant << "/" << id << " differs";
    }
    auto v = store->Verify(tenant);
    ASSERT_OK(v);
    EXPECT_EQ(v->records_failed, 0u) << tenant;
    EXPECT_GT(v->records_ok, 0u);
  }

  std::mt19937_64 rng_;
  TestStore ts_;
  std::map<std::string, std::map<std::string, Call>> written_;
};

TEST_F(PurgeBackupTest, PurgeShredsDropsAndBackupRestoreObeysIt) {
  std::map<std::string, TenantInfo> info;
  for (const auto& t : kTenants) {
    auto i = ts_->CreateTenant({.tenant_id = t, .retention_days = 365});
    ASSERT_OK(i);
    info[t] = *i;
  }
  const TenantInfo b = info["bravo"];
  // Part in SST and blob files, part only in the WAL.
  for (size_t ti = 0; ti < kTenants.size(); ++ti) {
    for (int i = 0; i < 4; ++i) {
      Put(kTenants[ti], MakeCall("call-" + std::to_string(i), kT0 + ti * 100 + i, i == 0));
    }
  }
  ASSERT_OK(ts_->Flush());
  for (size_t ti = 0; ti < kTenants.size(); ++ti) {
    for (int i = 4; i < 7; ++i) {
      Put(kTenants[ti], MakeCall("call-" + std::to_string(i), kT0 + ti * 100 + i, i == 4));
    }
  }
  const std::string shard = ts_->ShardPaths()[b.shard];
  auto before = ts_->Stats();
  ASSERT_OK(before);

  // The backup: store and key directories, before the purge.
  ts_.Close();
  const std::string backup = ts_.tmp.Sub("backup");
  const std::string keys_before = ts_.tmp.Sub("keys-before");
  testutil::CopyTree(ts_.db, backup);
  testutil::CopyTree(ts_.keys, keys_before);
  ASSERT_OK(ts_.Open());

  // B's files, right before the purge.
  const std::vector<std::string> b_files = FilesOfFamily(shard, b.column_family);
  size_t b_sst = 0, b_blob = 0;
  for (const auto& f : b_files) {
    EXPECT_TRUE(fs::exists(f)) << f;
    b_sst += f.ends_with(".sst");
    b_blob += f.ends_with(".blob");
  }
  EXPECT_GT(b_sst, 0u);
  EXPECT_GT(b_blob, 0u) << "the large transcript should be in a blob file";

  // --- The purge and its receipt.
  const int64_t t_start = NowMicrosForTest();
  auto receipt = ts_->PurgeTenant("bravo");
  const int64_t t_end = NowMicrosForTest();
  ASSERT_OK(receipt);
  auto after = ts_->Stats();
  ASSERT_OK(after);
  EXPECT_EQ(receipt->sequence, 1u);
  EXPECT_EQ(receipt->kind, "tenant_purge");
  EXPECT_EQ(receipt->store_id, before->store_id);
  EXPECT_EQ(receipt->region, "eu-west");
  EXPECT_GE(receipt->time, t_start);
  EXPECT_LE(receipt->time, t_end);
  EXPECT_EQ(receipt->tenant_id, "bravo");
  EXPECT_EQ(receipt->tenant_internal_id, b.internal_id);
  EXPECT_EQ(receipt->column_family, b.column_family);
  EXPECT_EQ(receipt->shard, b.shard);
  EXPECT_EQ(receipt->key_versions_destroyed, std::vector<uint32_t>{b.key_version});
  EXPECT_EQ(receipt->kek_generation_retired, before->kek_generation);
  EXPECT_EQ(receipt->kek_generation_current, before->kek_generation + 1);
  EXPECT_EQ(receipt->kek_generation_current, after->kek_generation);
  EXPECT_GT(receipt->keyring_generation, before->keyring_generation);
  EXPECT_EQ(receipt->keyring_generation, after->keyring_generation);
  EXPECT_GT(receipt->records, 0u);
  EXPECT_GT(receipt->bytes, 1u << 20);  // at least the blob
  EXPECT_EQ(receipt->prev_hash, "");
  EXPECT_EQ(receipt->signature.size(), 128u);
  EXPECT_EQ(receipt->ToJson().find("PB-"), std::string::npos) << "call content in the receipt";
  auto receipts = ts_->ListReceipts();
  ASSERT_OK(receipts);
  ASSERT_EQ(receipts->size(), 1u);
  EXPECT_EQ((*receipts)[0].Canonical(), receipt->Canonical());
  auto pk = ts_->SigningPublicKey();
  ASSERT_OK(pk);
  EXPECT_OK(VerifyReceiptChain(*receipts, *pk));
  EXPECT_EQ(after->purged_tenants, 1u);
  EXPECT_EQ(after->tenants.size(), 2u);

  // --- The live store: B unreachable, A and C whole.
  EXPECT_CODE(ts_->GetCall("bravo", "call-1"), Code::kTenantPurged);
  EXPECT_CODE(ts_->ListCalls("bravo", {}), Code::kTenantPurged);
  EXPECT_CODE(ts_->PutCall("bravo", MakeCall("late", kT0, false)), Code::kTenantPurged);
  ExpectWhole(ts_.store.get(), "acme");
  ExpectWhole(ts_.store.get(), "charlie");
  ts_.Close();
  for (const auto& f : b_files) EXPECT_FALSE(fs::exists(f)) << "still there after close: " << f;
  auto names = guarantees::ListColumnFamilies(shard);
  EXPECT_EQ(std::count(names.begin(), names.end(), b.column_family), 0)
      << "B's column family is still in the live MANIFEST";
  EXPECT_EQ(std::count(names.begin(), names.end(), info["acme"].column_family), 1);

  // --- The key directory: the retired KEK and old keyrings are gone.
  auto key_names = KeyDirNames(ts_.keys);
  EXPECT_FALSE(key_names.count("KEK-" + std::to_string(receipt->kek_generation_retired)));
  EXPECT_TRUE(key_names.count("KEK-" + std::to_string(receipt->kek_generation_current)));
  EXPECT_TRUE(key_names.count("KEYRING-" + std::to_string(receipt->keyring_generation)));
  for (const auto& n : key_names) {
    EXPECT_TRUE(n == "SIGNING-KEY" || n == "LOCK" ||  // LOCK: the open store's writer lock
                n == "KEK-" + std::to_string(receipt->kek_generation_current) ||
                n == "KEYRING-" + std::to_string(receipt->keyring_generation))
        << "left in the key directory: " << n;
  }
  auto keyring = guarantees::LoadCurrentKeyring(ts_.keys);
  ASSERT_OK(keyring);
  EXPECT_FALSE(keyring->HasTenant(b.internal_id)) << "the current keyring still holds B's DEK";
  EXPECT_TRUE(keyring->HasTenant(info["acme"].internal_id));
  EXPECT_TRUE(keyring->HasTenant(info["charlie"].internal_id));

  // --- B's records in the backup (SST, blob and WAL): every key that
  // exists fails; the keys of the backup time would have opened them.
  std::vector<std::pair<std::string, std::string>> b_records;
  {
    RawShard raw(backup + "/shards/" + fs::path(shard).filename().string(), /*read_only=*/true);
    ASSERT_TRUE(raw.status().ok()) << raw.status().ToString();
    for (auto& kv : raw.Scan(b.column_family)) {
      if (kv.second.size() >= format::kEnvelopeOverhead) b_records.push_back(std::move(kv));
    }
  }
  ASSERT_GE(b_records.size(), 7u * 3);                    // three sealed parts per call at least
  std::vector<std::pair<std::string, SecretBytes>> keys;  // every key that exists
  for (const auto& [id, dek] : keyring->deks) {
    const std::string who = "DEK of " + std::to_string(id.first);
    keys.emplace_back(who, dek.Clone());
    for (auto sub : {crypto::Subkey::kRecord, crypto::Subkey::kIndex, crypto::Subkey::kRecording,
                     crypto::Subkey::kCursor}) {
      keys.emplace_back(who + " subkey " + std::to_string(static_cast<int>(sub)),
                        crypto::DeriveSubkey(dek, sub));
    }
  }
  keys.emplace_back("store data key", keyring->store_data_key.Clone());
  keys.emplace_back("store index key", keyring->store_index_key.Clone());
  for (const auto& n : KeyDirNames(ts_.keys)) {
    std::string bytes = testutil::ReadFile(ts_.keys + "/" + n);
    if (n.rfind("KEK-", 0) == 0 || n == "SIGNING-KEY") {
      SecretBytes k(32);
      std::copy_n(bytes.data(), 32, k.data());
      keys.emplace_back(n, std::move(k));
    }
  }
  std::vector<record::Binding> bindings = {
      record::Binding{b.internal_id, b.internal_id, b.key_version}};
  for (const auto& t : {"acme", "charlie"}) {
    bindings.push_back({info[t].internal_id, info[t].internal_id, info[t].key_version});
  }
  size_t attempts = 0;
  for (const auto& [k, v] : b_records) {
    for (const auto& [who, key] : keys) {
      for (const auto& binding : bindings) {
        std::string plain;
        Status s = record::Open(key, binding, k, v, &plain);
        ++attempts;
        EXPECT_FALSE(s.ok()) << "a key that still exists (" << who << ") opened B's record";
      }
    }
  }
  std::cout << "[purge] " << b_records.size() << " sealed records of B in the backup, "
            << keys.size() << " existing keys, " << attempts << " attempts, none opened"
            << std::endl;
  {
    // The control: the key directory of before the purge opens them all.
    auto old_keyring = guarantees::LoadCurrentKeyring(keys_before);
    ASSERT_OK(old_keyring);
    auto old_keys = guarantees::KeysOf(*old_keyring, b);
    ASSERT_TRUE(old_keys.has_value());
    for (const auto& [k, v] : b_records) {
      std::string plain;
      EXPECT_OK(record::Open(old_keys->record_key, old_keys->binding, k, v, &plain));
    }
  }

  // --- Restore: the backup opened with the current keys.
  {
    Options o = testutil::DefaultOptions(ts_.keys);
    o.create_if_missing = false;
    auto restored = Store::Open(o, backup);
    ASSERT_OK(restored);
    Store* r = restored->get();
    EXPECT_CODE(r->GetCall("bravo", "call-1"), Code::kTenantPurged);
    EXPECT_CODE(r->ListCalls("bravo", {}), Code::kTenantPurged);
    auto d = r->DescribeTenant("bravo");
    ASSERT_OK(d);
    EXPECT_EQ(d->state, TenantState::kPurged);
    ExpectWhole(r, "acme");
    ExpectWhole(r, "charlie");
    auto rr = r->ListReceipts();
    ASSERT_OK(rr);
    ASSERT_EQ(rr->size(), 1u);
    EXPECT_EQ((*rr)[0].tenant_id, "bravo");
    EXPECT_OK(VerifyReceiptChain(*rr, *pk));
    auto all = r->Verify();
    ASSERT_OK(all);
    EXPECT_EQ(all->tenants, 2u);
    EXPECT_EQ(all->records_failed, 0u);
  }
  auto restored_names =
      guarantees::ListColumnFamilies(backup + "/shards/" + fs::path(shard).filename().string());
  EXPECT_EQ(std::count(restored_names.begin(), restored_names.end(), b.column_family), 0)
      << "recovery kept B's column family in the restored copy";
  EXPECT_EQ(std::count(restored_names.begin(), restored_names.end(), info["acme"].column_family),
            1);

  // --- The live store opens again and B stays purged.
  ASSERT_OK(ts_.Open());
  EXPECT_CODE(ts_->GetCall("bravo", "call-1"), Code::kTenantPurged);
  ExpectWhole(ts_.store.get(), "acme");
  ts_.Close();

  // --- Rollback: the key directory of before the purge, copied back.
  const std::string keys_now = ts_.tmp.Sub("keys-now");
  testutil::CopyTree(ts_.keys, keys_now);
  auto open_live = [&]() {
    Options o = testutil::DefaultOptions(ts_.keys);
    o.create_if_missing = false;
    return Store::Open(o, ts_.db);
  };
  auto restore_keys = [&](const std::string& from) {
    fs::remove_all(ts_.keys);
    testutil::CopyTree(from, ts_.keys);
  };
  const std::string old_keyring_name = "KEYRING-" + std::to_string(before->keyring_generation);
  const std::string old_kek_name = "KEK-" + std::to_string(before->kek_generation);
  ASSERT_TRUE(fs::exists(keys_before + "/" + old_keyring_name));
  {
    // The whole old key directory (old KEK and old keyring).
    restore_keys(keys_before);
    auto s = open_live();
    EXPECT_CODE(s, Code::kKeyError);
    EXPECT_NE(s.status().message().find("rollback"), std::string::npos) << s.status().ToString();
  }
  {
    // Only the old keyring, in place of the current one.
    restore_keys(keys_now);
    fs::remove(ts_.keys + "/KEYRING-" + std::to_string(receipt->keyring_generation));
    fs::copy_file(keys_before + "/" + old_keyring_name, ts_.keys + "/" + old_keyring_name);
    auto s = open_live();
    EXPECT_CODE(s, Code::kKeyError);
  }
  {
    // The old keyring renamed as a newer generation, with its KEK.
    restore_keys(keys_now);
    fs::copy_file(keys_before + "/" + old_kek_name, ts_.keys + "/" + old_kek_name);
    fs::copy_file(keys_before + "/" + old_keyring_name,
                  ts_.keys + "/KEYRING-" + std::to_string(receipt->keyring_generation + 1));
    auto s = open_live();
    EXPECT_CODE(s, Code::kKeyError);
  }
  {
    // The old keyring and KEK beside the current ones: the current keyring
    // wins, the stale files are destroyed, B stays purged.
    restore_keys(keys_now);
    fs::copy_file(keys_before + "/" + old_kek_name, ts_.keys + "/" + old_kek_name);
    fs::copy_file(keys_before + "/" + old_keyring_name, ts_.keys + "/" + old_keyring_name);
    auto s = open_live();
    ASSERT_OK(s);
    EXPECT_CODE((*s)->GetCall("bravo", "call-1"), Code::kTenantPurged);
    ExpectWhole(s->get(), "acme");
    s->reset();
    EXPECT_FALSE(fs::exists(ts_.keys + "/" + old_kek_name));
    EXPECT_FALSE(fs::exists(ts_.keys + "/" + old_keyring_name));
  }
  // After the refused opens, the current keys still open the store.
  restore_keys(keys_now);
  ASSERT_OK(ts_.Open());
  EXPECT_CODE(ts_->GetCall("bravo", "call-1"), Code::kTenantPurged);
  ExpectWhole(ts_.store.get(), "acme");
  ExpectWhole(ts_.store.get(), "charlie");
}

// Occupies every thread of the Env's HIGH and LOW pools until destroyed
// (at most 20 s), as a long flush or compaction of another tenant would.
class BusyBackgroundPools {
 public:
  BusyBackgroundPools() {
    rocksdb::Env* env = rocksdb::Env::Default();
    for (auto pri : {rocksdb::Env::Priority::HIGH, rocksdb::Env::Priority::LOW}) {
      const int n = env->GetBackgroundThreads(pri);
      for (int i = 0; i < n; ++i) env->Schedule(&BusyBackgroundPools::Work, this, pri);
      expected_ += n;
    }
    std::unique_lock<std::mutex> l(mu_);
    cv_.wait_for(l, std::chrono::seconds(10), [&] { return running_ == expected_; });
    EXPECT_EQ(running_, expected_) << "background threads did not all start";
  }
  ~BusyBackgroundPools() {
    {
      std::lock_guard<std::mutex> l(mu_);
      release_ = true;
    }
    cv_.notify_all();
    // Every scheduled task must have run and left before `this` goes.
    std::unique_lock<std::mutex> l(mu_);
    cv_.wait(l, [&] { return finished_ == expected_; });
  }

 private:
  static void Work(void* arg) {
    auto* self = static_cast<BusyBackgroundPools*>(arg);
    std::unique_lock<std::mutex> l(self->mu_);
    ++self->running_;
    self->cv_.notify_all();
    self->cv_.wait_for(l, std::chrono::seconds(20), [&] { return self->release_; });
    ++self->finished_;
    self->cv_.notify_all();
  }
  std::mutex mu_;
  std::condition_variable cv_;
  int expected_ = 0;
  int running_ = 0;
  int finished_ = 0;
  bool release_ = false;
};

// Guarantee 3: "Once PurgeTenant returns ... the column family is dropped
// and its files deleted". Since decision 0049 (issue 14 item 5) the files
// go right after the receipt, on the shard's reaper thread, which RocksDB's
// background pools do not hold up: they are gone once
// purge_deletions_pending is back to 0, while those pools are still busy.
TEST_F(PurgeBackupTest, FilesAreDeletedRightAfterPurgeReturns) {
  auto b = ts_->CreateTenant({.tenant_id = "bravo"});
  ASSERT_OK(b);
  ASSERT_OK(ts_->CreateTenant({.tenant_id = "acme"}));
  for (int i = 0; i < 3; ++i) {
    Put("bravo", MakeCall("call-" + std::to_string(i), kT0 + i, i == 0));
    Put("acme", MakeCall("call-" + std::to_string(i), kT0 + i, false));
    ASSERT_OK(ts_->Flush());
  }
  const std::string shard = ts_->ShardPaths()[b->shard];
  const std::vector<std::string> files = FilesOfFamily(shard, b->column_family);
  ASSERT_GE(files.size(), 4u);  // three SSTs and a blob file
  {
    BusyBackgroundPools busy;
    ASSERT_OK(ts_->PurgeTenant("bravo"));
    ASSERT_TRUE(testutil::WaitForPurgeDeletions(*ts_.store)) << "the reaper did not delete the files";
    for (const auto& f : files) {
      EXPECT_FALSE(fs::exists(f)) << "still there after the reaper's deletion: " << f;
    }
  }
  ExpectWhole(ts_.store.get(), "acme");
  ts_.Close();
  for (const auto& f : files) EXPECT_FALSE(fs::exists(f)) << "still there after close: " << f;
}

}  // namespace
}  // namespace callvault
