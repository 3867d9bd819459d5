// The two systems measured side by side: callvault through its public API,
// and "raw RocksDB", what a team would build without callvault: the same
// FlatBuffers parts (bench/raw_codec.h) in one column family per tenant,
// RocksDB's own zstd block compression, no encryption, WAL on, the same
// memory and thread budgets as callvault's defaults.
//
// Every failure aborts the run with a message: a benchmark that carries on
// after an error measures nothing.
#ifndef CALLVAULT_BENCH_SYSTEMS_H_
#define CALLVAULT_BENCH_SYSTEMS_H_

#include <rocksdb/db.h>

#include <functional>
#include <map>
#include <memory>
#include <shared_mutex>
#include <string>
#include <vector>

#include "bench/util.h"
#include "callvault/store.h"

namespace callvault::bench {

[[noreturn]] void Fail(const std::string& what);

// Bytes RocksDB hands to the files it writes, by kind of file, for both
// systems alike (the many-active-tenants step's breakdown of its bytes
// written): an Env whose FileSystem counts every append. Kinds by name:
// WAL (*.log), table (*.sst), blob (*.blob), MANIFEST (MANIFEST-*), info
// log (LOG, LOG.old.*) and other (OPTIONS, CURRENT's temp file, ...).
class WriteCounter {
 public:
  enum Kind { kWal, kTable, kBlob, kManifest, kInfoLog, kOther, kKinds };
  WriteCounter();
  ~WriteCounter();
  rocksdb::Env* env() const { return env_.get(); }
  uint64_t bytes(Kind k) const;
  // {"wal": .., "table": .., ...} since construction.
  Json ToJson() const;

 private:
  class FS;
  std::shared_ptr<FS> fs_;
  std::unique_ptr<rocksdb::Env> env_;
};
void Check(const Status& s, const char* what);
void Check(const rocksdb::Status& s, const char* what);

// One page of a listing: newest first, by started_at in [from, to),
// optionally only the calls of one owner or with one participant email.
struct ListSpec {
  enum Kind { kTime, kOwner, kEmail } kind = kTime;
  std::string value;  // owner_user_id or email
  int64_t from = 0;
  int64_t to = INT64_MAX;
  size_t limit = 100;
};

// Both systems' memtable budgets, from their options: the shared budget
// (write-buffer manager), the memtable size per column family and how many
// a family keeps, and for each count in `tenants` (column families written
// at once) the bytes those memtables can hold before data must be flushed:
// min(shared budget, tenants x size x number).
Json MemtableBudgets(const std::vector<size_t>& tenants);

class System {
 public:
  virtual ~System() = default;
  virtual const char* name() const = 0;
  // The directory whose files are the stored data (for bytes on disk).
  virtual std::string DataDir() const = 0;
  virtual void CreateTenant(const std::string& tenant) = 0;
  // One atomic, synced write of every call.
  virtual void Put(const std::string& tenant, const std::vector<Call>& calls) = 0;
  // Reads a call with the given parts (callvault::Parts); false if absent.
  virtual bool Get(const std::string& tenant, const std::string& call_id, uint32_t parts,
                   Call* out) = 0;
  // One page of call metadata (decoded); returns the number of calls.
  virtual size_t List(const std::string& tenant, const ListSpec& spec) = 0;
  // Stores `data` as a recording of an existing call, appended in pieces of
  // `piece` bytes; durable on return.
  virtual void WriteRecording(const std::string& tenant, const std::string& call_id,
                              const std::string& recording_id, const std::string& data,
                              size_t piece) = 0;
  // Reads a whole recording; returns its bytes.
  virtual uint64_t ReadRecording(const std::string& tenant, const std::string& call_id,
                                 const std::string& recording_id, uint64_t size) = 0;
  // Memtables to SST files, then full compaction of everything.
  virtual void Flush() = 0;
  virtual void CompactAll() = 0;
  // Waits until the one-time work that writes start in the background is
  // done (callvault: dictionary training); nothing for raw RocksDB.
  virtual void Settle() {}
};

// callvault with default Options (sync_writes on), keys in <dir>/keys and
// the store in <dir>/store.
class CallvaultSystem : public System {
 public:
  // `adjust`, if given, changes the options after the environment's (an A/B
  // of one option within one run).
  explicit CallvaultSystem(const std::string& dir, bool create = true,
                           const std::function<void(Options*)>& adjust = nullptr);
  ~CallvaultSystem() override;
  const char* name() const override { return "callvault"; }
  std::string DataDir() const override { return dir_ + "/store"; }
  std::string KeyDir() const { return dir_ + "/keys"; }
  void CreateTenant(const std::string& tenant) override;
  void Put(const std::string& tenant, const std::vector<Call>& calls) override;
  bool Get(const std::string& tenant, const std::string& call_id, uint32_t parts,
           Call* out) override;
  size_t List(const std::string& tenant, const ListSpec& spec) override;
  void WriteRecording(const std::string& tenant, const std::string& call_id,
                      const std::string& recording_id, const std::string& data,
                      size_t piece) override;
  uint64_t ReadRecording(const std::string& tenant, const std::string& call_id,
                         const std::string& recording_id, uint64_t size) override;
  void Flush() override;
  void CompactAll() override;
  void Settle() override;

  Store* store() { return store_.get(); }
  void Close() { store_.reset(); }

 private:
  std::string dir_;
  std::unique_ptr<Store> store_;
};

// Raw RocksDB. Keys per tenant column family (started_at: 8 bytes,
// big-endian, sign bit flipped), values FlatBuffers or empty:
//   'C' call_id part(1 byte)          part 0 metadata+participants,
//                                     1 transcript, 2 insights
//   'T' started_at call_id            time index
//   'O' owner 0x00 started_at call_id    owner index
//   'E' email 0x00 started_at call_id    participant e-mail index
//   'R' call_id 0x00 recording_id 0x00 chunk(4, BE)   recording chunk
class RawSystem : public System {
 public:
  // Opens (creating if needed) the database at <dir>/raw with every column
  // family it holds.
  // `env`: nullptr for Env::Default().
  explicit RawSystem(const std::string& dir, rocksdb::Env* env = nullptr);
  ~RawSystem() override;
  const char* name() const override { return "rocksdb"; }
  std::string DataDir() const override { return path_; }
  void CreateTenant(const std::string& tenant) override;
  void Put(const std::string& tenant, const std::vector<Call>& calls) override;
  bool Get(const std::string& tenant, const std::string& call_id, uint32_t parts,
           Call* out) override;
  size_t List(const std::string& tenant, const ListSpec& spec) override;
  void WriteRecording(const std::string& tenant, const std::string& call_id,
                      const std::string& recording_id, const std::string& data,
                      size_t piece) override;
  uint64_t ReadRecording(const std::string& tenant, const std::string& call_id,
                         const std::string& recording_id, uint64_t size) override;
  void Flush() override;
  void CompactAll() override;

  // One CreateColumnFamilies call per `chunk` tenants (setup for tenant scale).
  void CreateTenantsBulk(const std::vector<std::string>& tenants, size_t chunk);
  // The ways a team would delete a tenant. Each returns once the tenant's
  // data is unreadable through the API (synced).
  void DeleteByIteration(const std::string& tenant);  // iterate + Delete, batches of 1000
  void DeleteByRange(const std::string& tenant);      // one DeleteRange over the family
  void DropTenant(const std::string& tenant);         // DropColumnFamily + destroy handle
  void CompactTenant(const std::string& tenant);
  // The SST file paths of one tenant's column family.
  std::vector<std::string> TenantFiles(const std::string& tenant);
  size_t tenant_count() const;
  rocksdb::DB* db() { return db_.get(); }
  // Every memtable's arena blocks, switched out ones until they are freed
  // (the count callvault's Stats().memory.memtable_bytes reports).
  size_t memtable_bytes() const { return dbo_.write_buffer_manager->memory_usage(); }

 private:
  rocksdb::ColumnFamilyHandle* Cf(const std::string& tenant) const;

  std::string path_;
  std::shared_ptr<rocksdb::Cache> cache_;
  rocksdb::DBOptions dbo_;
  rocksdb::ColumnFamilyOptions cfo_;
  std::unique_ptr<rocksdb::DB> db_;
  mutable std::shared_mutex mu_;
  std::map<std::string, rocksdb::ColumnFamilyHandle*> cfs_;  // GUARDED_BY(mu_)
};

}  // namespace callvault::bench

#endif  // CALLVAULT_BENCH_SYSTEMS_H_
