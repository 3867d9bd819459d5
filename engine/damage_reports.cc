// Damage found by a read-only open, told to the writer (docs/decisions/0020).
//
// A read-only open may not write the durable damage mark (meta key `B`):
// the metadata instance is the writer's. What it finds in a tenant's files
// (a read, a Verify scan, a compaction of its own never runs) would be lost
// with the process. Instead it leaves a damage report: one small sealed
// file per damaged tenant in `<store>/damage-reports/` (docs/format.md),
// written atomically and synced. Every open reads the reports after the
// tenants are registered and marks the tenants they name (a read-only open
// in memory; a writable one durably, with a `tenant_damaged` audit event,
// then removes the report). A live writer reads them again in Stats,
// Verify and AcceptTenantDamage. No tenant id or content in a report: the
// internal id and what was met, sealed with the store data key.
#include <rocksdb/env.h>

#include <algorithm>
#include <string>

#include "engine/crypto.h"
#include "engine/fs_util.h"
#include "engine/record.h"
#include "engine/store_impl.h"
#include "format/coding.h"

namespace callvault {

namespace {
constexpr char kReportDir[] = "/damage-reports";
constexpr size_t kReportNameBytes = 32;  // hex of 16 random bytes

bool IsReportName(const std::string& name) {
  return name.size() == kReportNameBytes &&
         std::all_of(name.begin(), name.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

std::string ReportRowKey(const std::string& name) { return "damage_report:" + name; }

}  // namespace

void Store::Impl::ReportDamage(const Tenant& t, const std::string& why) {
  rocksdb::FileSystem* fs = res_->env->GetFileSystem().get();
  const std::string dir = path_ + kReportDir;
  const std::string name = crypto::Hex(crypto::RandomString(kReportNameBytes / 2));
  std::string plain;
  format::PutFixed64BE(&plain, t.rec.internal_id);
  plain += why;
  const std::string sealed = record::Seal(store_data_key_, record::Binding{}, ReportRowKey(name), plain);
  Status s = fsutil::FromRocks(res_->env->CreateDirIfMissing(dir), "create damage report directory");
  if (s.ok()) s = fsutil::SyncParentDir(fs, dir);
  if (s.ok()) {
    s = fsutil::AtomicWrite(fs, dir, name, reinterpret_cast<const uint8_t*>(sealed.data()),
                            sealed.size());
  }
  if (!s.ok()) {
    std::lock_guard<std::mutex> l(report_mu_);
    unreported_damage_.push_back(t.rec.tenant_id + ": " + s.ToString());
  }
}

std::vector<std::string> Store::Impl::UnreportedDamage() {
  std::lock_guard<std::mutex> l(report_mu_);
  return unreported_damage_;
}

Status Store::Impl::ApplyDamageReports() {
  std::lock_guard<std::mutex> l(report_mu_);
  rocksdb::FileSystem* fs = res_->env->GetFileSystem().get();
  const std::string dir = path_ + kReportDir;
  std::vector<std::string> children;
  rocksdb::IOStatus ls = fs->GetChildren(dir, rocksdb::IOOptions(), &children, nullptr);
  if (ls.IsNotFound() || ls.IsPathNotFound()) return Status::OK();
  CV_RETURN_IF_ERROR(fsutil::FromIO(ls, "list damage reports"));
  std::sort(children.begin(), children.end());
  bool removed = false;
  for (const auto& name : children) {
    if (!IsReportName(name)) continue;
    // A directory with a report's name is not a report (reports are files
    // written by AtomicWrite): left alone, it must not stop every open.
    bool is_dir = false;
    if (fs->IsDirectory(dir + "/" + name, rocksdb::IOOptions(), &is_dir, nullptr).ok() && is_dir) {
      continue;
    }
    std::string sealed, plain;
    rocksdb::IOStatus read = rocksdb::ReadFileToString(fs, dir + "/" + name, &sealed);
    if (read.IsNotFound() || read.IsPathNotFound()) continue;  // applied meanwhile
    CV_RETURN_IF_ERROR(fsutil::FromIO(read, "read damage report"));
    Status opened = record::Open(store_data_key_, record::Binding{}, ReportRowKey(name), sealed, &plain);
    if (opened.ok() && plain.size() < 8) opened = Status::Corruption("damage report too short");
    if (!opened.ok()) {
      // Not written by a process that held this store's keys (or damaged):
      // it marks nothing. Audited, and removed by a writer.
      Audit("auth_failure", "", "damage report " + name + " rejected: " + opened.ToString());
    } else {
      const uint64_t id = format::DecodeFixed64BE(plain.data());
      std::shared_ptr<Tenant> hit;
      {
        std::shared_lock<std::shared_mutex> m(map_mu_);
        for (const auto& [tid, t] : tenants_) {
          if (t->rec.internal_id == id && t->state.load() == TenantState::kActive) hit = t;
        }
      }
      // A tenant purged since is not marked: the purge took its data.
      if (hit) {
        MarkDamaged(hit, plain.substr(8) + " (found by a read-only open)", /*report=*/false);
        if (!read_only()) {
          // The report goes only once the mark is durable.
          std::string mark;
          rocksdb::Status got = meta_->Get(rocksdb::ReadOptions(), DamageKey(id), &mark);
          if (!got.ok()) {
            if (got.IsNotFound()) continue;  // the mark's write failed: the next open tries again
            return fsutil::FromRocks(got, "read damage mark");
          }
        }
      }
    }
    if (!read_only()) {
      CV_RETURN_IF_ERROR(fsutil::Remove(fs, dir, name, /*sync_dir=*/false));
      removed = true;
    }
  }
  if (removed) CV_RETURN_IF_ERROR(fsutil::SyncDir(fs, dir));
  return Status::OK();
}

}  // namespace callvault
