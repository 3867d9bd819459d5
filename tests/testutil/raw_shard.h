// RawShard: raw RocksDB access to one shard of a CLOSED store, for tests
// that tamper with or inspect stored bytes behind the engine's back. Opened
// with the engine's own DB and column-family options (integrated BlobDB, so
// large values written here go to blob files like the engine's), with every
// column family the MANIFEST lists.
#ifndef CALLVAULT_TESTS_RAW_SHARD_H_
#define CALLVAULT_TESTS_RAW_SHARD_H_

#include <gtest/gtest.h>
#include <rocksdb/db.h>
#include <rocksdb/metadata.h>

#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "callvault/store.h"
#include "engine/shard.h"

namespace callvault::testutil {

class RawShard {
 public:
  RawShard(const std::string& path, bool read_only) : res_(MakeResources()) {
    std::vector<std::string> names;
    status_ = rocksdb::DB::ListColumnFamilies(res_->db_options, path, &names);
    if (!status_.ok()) return;
    std::vector<rocksdb::ColumnFamilyDescriptor> descs;
    for (const auto& n : names) descs.emplace_back(n, res_->tenant_cf_options);
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    rocksdb::DB* db = nullptr;
    status_ = read_only ? rocksdb::DB::OpenForReadOnly(res_->db_options, path, descs, &handles, &db)
                        : rocksdb::DB::Open(res_->db_options, path, descs, &handles, &db);
    if (!status_.ok()) return;
    db_.reset(db);
    for (auto* h : handles) handles_[h->GetName()] = h;
  }
  ~RawShard() {
    if (!db_) return;
    db_->FlushWAL(/*sync=*/true).PermitUncheckedError();
    for (auto& [n, h] : handles_) db_->DestroyColumnFamilyHandle(h).PermitUncheckedError();
    db_->Close().PermitUncheckedError();
  }
  RawShard(const RawShard&) = delete;
  RawShard& operator=(const RawShard&) = delete;

  const rocksdb::Status& status() const { return status_; }
  rocksdb::DB* db() const { return db_.get(); }
  rocksdb::ColumnFamilyHandle* cf(const std::string& name) const {
    auto it = handles_.find(name);
    return it == handles_.end() ? nullptr : it->second;
  }
  std::vector<std::string> Families() const {
    std::vector<std::string> v;
    for (const auto& [n, h] : handles_) v.push_back(n);
    return v;
  }
  // Every (key, value) of a family.
  std::vector<std::pair<std::string, std::string>> Scan(const std::string& cf_name) const {
    std::vector<std::pair<std::string, std::string>> out;
    auto* h = cf(cf_name);
    if (h == nullptr) return out;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), h));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      out.emplace_back(it->key().ToString(), it->value().ToString());
    }
    EXPECT_TRUE(it->status().ok()) << it->status().ToString();
    return out;
  }
  // Every key of a family starting with `prefix`.
  std::vector<std::string> Keys(const std::string& cf_name, const std::string& prefix = "") const {
    std::vector<std::string> out;
    auto* h = cf(cf_name);
    EXPECT_NE(h, nullptr) << cf_name;
    if (h == nullptr) return out;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), h));
    for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
      out.push_back(it->key().ToString());
    }
    EXPECT_TRUE(it->status().ok()) << it->status().ToString();
    return out;
  }
  std::string Get(const std::string& cf_name, const std::string& key) const {
    std::string v;
    rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), cf(cf_name), key, &v);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return v;
  }
  void Put(const std::string& cf_name, const std::string& key, const std::string& value) {
    ASSERT_NE(cf(cf_name), nullptr) << cf_name;
    // Unsynced: the destructor syncs the WAL once before closing.
    rocksdb::Status s = db_->Put(rocksdb::WriteOptions(), cf(cf_name), key, value);
    ASSERT_TRUE(s.ok()) << s.ToString();
  }
  void Delete(const std::string& cf_name, const std::string& key) {
    rocksdb::Status s = db_->Delete(rocksdb::WriteOptions(), cf(cf_name), key);
    EXPECT_TRUE(s.ok()) << s.ToString();
  }
  // Names (no directory) of the blob files of one family.
  std::set<std::string> BlobFiles(const std::string& cf_name) const {
    std::set<std::string> out;
    rocksdb::ColumnFamilyMetaData md;
    db_->GetColumnFamilyMetaData(cf(cf_name), &md);
    for (const auto& b : md.blob_files) {
      out.insert(std::filesystem::path(b.blob_file_name).filename().string());
    }
    return out;
  }

 private:
  static std::unique_ptr<SharedResources> MakeResources() {
    Options o;
    o.block_cache_bytes = 8u << 20;
    o.write_buffer_budget_bytes = 64u << 20;
    o.write_buffer_bytes = 4u << 20;
    return SharedResources::Make(o);
  }
  std::unique_ptr<SharedResources> res_;
  rocksdb::Status status_;
  std::unique_ptr<rocksdb::DB> db_;
  std::map<std::string, rocksdb::ColumnFamilyHandle*> handles_;
};

}  // namespace callvault::testutil

#endif  // CALLVAULT_TESTS_RAW_SHARD_H_
