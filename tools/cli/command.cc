#include "tools/cli/command.h"

#include <fcntl.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <iostream>
#include <ostream>

#include "callvault/key_provider.h"
#include "callvault/pkcs11_key_provider.h"

namespace callvault::cli {

namespace fs = std::filesystem;

std::string DefaultKeyDir(const std::string& db) {
  std::string d = db;
  while (d.size() > 1 && d.back() == '/') d.pop_back();
  return d + ".keys";
}

RunResult RunResult::Usage(std::string message) {
  RunResult r;
  r.usage_ = true;
  r.usage_message_ = std::move(message);
  return r;
}

RunResult RunResult::Reported(Status status) {
  RunResult r(std::move(status));
  r.reported_ = true;
  return r;
}

RunResult RunResult::Exit(int code) {
  RunResult r;
  r.exit_ = code;
  return r;
}

std::string Context::KeyDir() const {
  return flags_.keys.empty() ? DefaultKeyDir(flags_.db) : flags_.keys;
}

Result<std::shared_ptr<KeyProvider>> Context::MakeKeyProvider(bool create_if_missing) const {
  if (flags_.key_provider == "pkcs11" && flags_.pkcs11_module.empty()) {
    return Status::InvalidArgument("--key-provider pkcs11 needs --pkcs11-module PATH");
  }
  if (flags_.key_provider == "file" && !flags_.pkcs11_module.empty()) {
    return Status::InvalidArgument("--key-provider file takes no --pkcs11-module (the keys are files in --keys)");
  }
  if (flags_.pkcs11_module.empty()) {
    if (!flags_.pkcs11_token.empty() || !flags_.pkcs11_pin_file.empty() ||
        !flags_.pkcs11_pin_env.empty()) {
      return Status::InvalidArgument("--pkcs11-token and --pkcs11-pin-* need --pkcs11-module");
    }
    FileKeyProviderOptions ko;
    ko.create_if_missing = create_if_missing;
    return NewFileKeyProvider(KeyDir(), ko);
  }
  if (flags_.pkcs11_token.empty()) return Status::InvalidArgument("--pkcs11-module needs --pkcs11-token LABEL");
  Pkcs11KeyProviderOptions po;
  po.module_path = flags_.pkcs11_module;
  po.token_label = flags_.pkcs11_token;
  po.pin_file = flags_.pkcs11_pin_file;
  po.pin_env = flags_.pkcs11_pin_env;
  po.state_dir = KeyDir();
  po.create_if_missing = create_if_missing;
  return NewPkcs11KeyProvider(po);
}

bool Context::ErrIsTerminal() const { return &err_ == &std::cerr && ::isatty(STDERR_FILENO) == 1; }

bool Context::OutIsTerminal() const { return &out_ == &std::cout && ::isatty(STDOUT_FILENO) == 1; }

void Context::PrintProgress(const std::string& operation, const std::string& unit, uint64_t done,
                            uint64_t total, bool finished) const {
  using Clock = std::chrono::steady_clock;
  const bool tty = ErrIsTerminal();
  const Clock::time_point now = Clock::now();
  const bool first = done == 0 && !finished;
  const auto every = tty ? std::chrono::milliseconds(100) : std::chrono::milliseconds(1000);
  if (!first && !finished && now - progress_last_ < every) return;
  progress_last_ = now;
  const std::string counts =
      total > 0 ? fmt::format("{}/{} {}", done, total, unit) : fmt::format("{} {}", done, unit);
  if (tty) {
    constexpr uint64_t kWidth = 30;
    const uint64_t filled = total > 0 ? kWidth * std::min(done, total) / total : 0;
    err_ << fmt::format("\r  {} [{}{}] {}   ", operation, std::string(filled, '#'),
                        std::string(kWidth - filled, '.'), counts);
    progress_drawn_ = true;
    if (finished) {
      err_ << '\n';
      progress_drawn_ = false;
    }
    err_ << std::flush;
  } else {
    err_ << "progress: " << operation << ' ' << counts << (finished ? ", done" : "") << '\n';
  }
}

namespace {

// The process holding RocksDB's lock on the store's metadata instance
// (fcntl F_GETLK on meta/LOCK: opened read-only, nothing changed): its pid,
// 0 if held by a process we cannot name, -1 if not held.
long LockHolder(const std::string& db) {
  const std::string lock = db + "/meta/LOCK";
  int fd = ::open(lock.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  struct flock fl {};
  fl.l_type = F_WRLCK;
  fl.l_whence = SEEK_SET;
  long holder = -1;
  if (::fcntl(fd, F_GETLK, &fl) == 0 && fl.l_type != F_UNLCK) holder = fl.l_pid > 0 ? fl.l_pid : 0;
  ::close(fd);
  return holder;
}

}  // namespace

Result<std::unique_ptr<Store>> Context::OpenStore(OpenMode mode,
                                                  std::shared_ptr<KeyProvider>* provider) const {
  std::error_code ec;
  const bool has_files = fs::is_directory(flags_.db, ec) && !fs::is_empty(flags_.db, ec);
  if (!has_files) {
    return Status::NotFound("no callvault store in " + flags_.db + " (create one with `init`)");
  }
  auto kp = MakeKeyProvider(/*create_if_missing=*/false);
  if (!kp.ok()) {
    if (kp.status().code() == Code::kNotFound) {
      return Status::KeyError("key directory " + KeyDir() +
                              " does not exist (the default is <db>.keys; pass --keys DIR)");
    }
    return kp.status();
  }
  if (provider != nullptr) *provider = *kp;
  Options o;
  o.key_provider = *kp;
  o.create_if_missing = false;
  o.read_only = mode == OpenMode::kReadOnly;
  if (ShowProgress()) {
    o.progress = [this](const Progress& p) {
      PrintProgress(p.operation, p.unit, p.done, p.total, p.finished);
    };
  }
  auto store = Store::Open(o, flags_.db);
  if (!store.ok()) {
    if (mode == OpenMode::kWrite) {
      const long holder = LockHolder(flags_.db);
      if (holder >= 0) {
        store_busy_ = true;
        return Status::FailedPrecondition(
            "the store is open for writing in another process" +
            (holder > 0 ? " (pid " + std::to_string(holder) + ")" : std::string()) +
            "; this command writes: retry when that process has closed it. Commands that only "
            "read (stats, verify, tenant list/show, call get/list, receipts, audit, ...) work "
            "meanwhile");
      }
    }
    return store.status();
  }
  if (mode == OpenMode::kWrite) {
    // Dead restore stagings this open removed: the ledger lines their
    // locks name are the operator's to drop (`restore abandon`).
    const RestoreFinishReport f = (*store)->RestoreFinishedAtOpen();
    for (const auto& d : f.stale_stagings_removed) {
      err_ << "callvault: note: removed " << d << ": the staging directory of a restore into "
           << flags_.db << " that died\n";
    }
    for (const auto& n : f.stale_staging_notes) err_ << "callvault: note: " << n << "\n";
  }
  if ((*store)->RecoveryPending() > 0) {
    err_ << "callvault: note: " << (*store)->RecoveryPending()
         << " tenant(s) are mid-create or mid-purge, or lack their key or column family; a "
            "read-only open shows them as they are and cannot read them (the process that holds "
            "the store, or the next command that writes, completes the recovery)\n";
  }
  return store;
}

void Context::NoteKeyDirBusy(const Status& s) const {
  // The wording Store::Open and KeyProvider::AcquireWriterLock document.
  if (s.code() == Code::kFailedPrecondition && s.message().starts_with("key directory ") &&
      s.message().find(" is in use by another process") != std::string::npos) {
    store_busy_ = true;
  }
}

void Context::PrintJson(const nlohmann::json& value) {
  out_ << value.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
}

std::vector<std::unique_ptr<Command>> AllCommands() {
  std::vector<std::unique_ptr<Command>> v;
  AddInitCommands(&v);
  AddTenantCommands(&v);
  AddCallCommands(&v);
  AddRecordingCommands(&v);
  AddSubjectCommands(&v);
  AddInspectCommands(&v);
  AddReceiptCommands(&v);
  AddComplianceCommands(&v);
  AddBackupCommands(&v);
  AddRawCommands(&v);
  AddDemoCommands(&v);
  return v;
}

}  // namespace callvault::cli
