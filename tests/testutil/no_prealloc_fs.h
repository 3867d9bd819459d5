// NoPreallocFS: a FileSystem that turns off RocksDB's preallocation of the
// files it writes (FileOptions::allow_fallocate = false). RocksDB
// preallocates every WAL and MANIFEST it creates (fallocate: MiBs; 4 MiB
// for each MANIFEST, a new one at every writable open) and trims
// it at close; on tmpfs that is page zeroing and freeing, most of the CPU
// of a small store's writable open. The files' contents are the same
// without it, and no callvault code runs differently. Header-only: the
// fuzz build (fuzz/api_fuzzer.cc), which does not link callvault_testutil,
// uses it too, as does T5 (tests/crash/file_mutation_test.cc).
#ifndef CALLVAULT_TESTS_TESTUTIL_NO_PREALLOC_FS_H_
#define CALLVAULT_TESTS_TESTUTIL_NO_PREALLOC_FS_H_

#include <rocksdb/file_system.h>

#include <memory>
#include <string>

namespace callvault::testutil {

class NoPreallocFS : public rocksdb::FileSystemWrapper {
 public:
  explicit NoPreallocFS(std::shared_ptr<rocksdb::FileSystem> t) : FileSystemWrapper(std::move(t)) {}
  const char* Name() const override { return "NoPreallocFS"; }
  rocksdb::IOStatus NewWritableFile(const std::string& f, const rocksdb::FileOptions& o,
                                    std::unique_ptr<rocksdb::FSWritableFile>* r,
                                    rocksdb::IODebugContext* d) override {
    rocksdb::FileOptions no = o;
    no.allow_fallocate = false;
    return target()->NewWritableFile(f, no, r, d);
  }
  rocksdb::IOStatus ReopenWritableFile(const std::string& f, const rocksdb::FileOptions& o,
                                       std::unique_ptr<rocksdb::FSWritableFile>* r,
                                       rocksdb::IODebugContext* d) override {
    rocksdb::FileOptions no = o;
    no.allow_fallocate = false;
    return target()->ReopenWritableFile(f, no, r, d);
  }
};

}  // namespace callvault::testutil

#endif  // CALLVAULT_TESTS_TESTUTIL_NO_PREALLOC_FS_H_
