// A shard: one RocksDB instance holding a bounded number of tenant column
// families. Every shard of a store shares one block cache, one write-buffer
// budget and the Env's thread pools (SharedResources).
// Thread safety: every method is safe to call concurrently.
#ifndef CALLVAULT_ENGINE_SHARD_H_
#define CALLVAULT_ENGINE_SHARD_H_

#include <rocksdb/db.h>
#include <rocksdb/options.h>

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "callvault/status.h"
#include "callvault/store.h"

namespace callvault {

struct SharedResources {
  rocksdb::Env* env = nullptr;
  std::shared_ptr<rocksdb::Cache> block_cache;
  std::shared_ptr<rocksdb::WriteBufferManager> write_buffer_manager;
  rocksdb::DBOptions db_options;
  rocksdb::ColumnFamilyOptions tenant_cf_options;

  static std::unique_ptr<SharedResources> Make(const Options& options);
};

class Shard {
 public:
  // Opens every column family listed in the MANIFEST (ListColumnFamilies),
  // so that families whose tenant has no key can still be dropped.
  static Result<std::unique_ptr<Shard>> Open(uint32_t index, const std::string& path,
                                             const SharedResources& res, bool create);
  ~Shard();

  uint32_t index() const { return index_; }
  const std::string& path() const { return path_; }
  rocksdb::DB* db() const { return db_.get(); }

  // REQUIRES: the caller serialises Create and Drop (the store's admin lock).
  Result<rocksdb::ColumnFamilyHandle*> Create(const std::string& name);
  // Drops the family and destroys its handle. REQUIRES: no other thread
  // holds the handle (the tenant's exclusive lock).
  Status Drop(rocksdb::ColumnFamilyHandle* cf);
  // The handle of family `name`, or nullptr.
  rocksdb::ColumnFamilyHandle* Find(const std::string& name) const;
  std::vector<std::string> FamilyNames() const;
  // Flushes every family's memtable and syncs the WAL, so that no WAL file
  // is kept alive by unflushed data. Holds off Drop while it runs.
  Status FlushAll();
  size_t family_count() const;

 private:
  Shard(uint32_t index, std::string path, const SharedResources* res)
      : index_(index), path_(std::move(path)), res_(res) {}

  const uint32_t index_;
  const std::string path_;
  const SharedResources* const res_;  // owned by the store; outlives the shard
  std::unique_ptr<rocksdb::DB> db_;
  mutable std::mutex mu_;
  std::map<std::string, rocksdb::ColumnFamilyHandle*> families_;  // GUARDED_BY(mu_); excl. default
};

}  // namespace callvault

#endif  // CALLVAULT_ENGINE_SHARD_H_
