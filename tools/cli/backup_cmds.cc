// callvault backup --to DIR | backup list DIR | backup verify DIR; restore DIR --db NEW |
// restore finish --db DIR | restore abandon RESTORE_ID --keys K;
// tombstones prune --keep BACKUP_DIR...
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <ostream>

#include "callvault/backup.h"
#include "callvault/tombstones.h"
#include "tools/cli/command.h"
#include "tools/cli/format.h"

namespace callvault::cli {

namespace {

// Says on stderr which manifests of a backup directory do not read
// (ListBackups): every command that reads the directory skips them, and
// only their own cut's verify or restore fails, so a cron job's `backup`
// and `backup verify` would otherwise never mention one.
void PrintUnreadable(Context& ctx, const std::vector<UnreadableCut>& unreadable) {
  for (const auto& u : unreadable) {
    ctx.err() << "warning: " << u.manifest << " does not read: " << u.problem << '\n';
  }
}
void WarnUnreadable(Context& ctx, const std::string& dir) {
  std::vector<UnreadableCut> unreadable;
  if (ListBackups(dir, &unreadable).ok()) PrintUnreadable(ctx, unreadable);
  // else: the command itself reports the directory's problem
}

nlohmann::json UnreadableJson(const std::vector<UnreadableCut>& unreadable) {
  nlohmann::json bad = nlohmann::json::array();
  for (const auto& u : unreadable) {
    bad.push_back({{"manifest", u.manifest}, {"cut", u.cut}, {"problem", u.problem}});
  }
  return bad;
}

nlohmann::json ManifestJson(const BackupManifest& m) {
  nlohmann::json a = nlohmann::json::array();
  for (const auto& in : m.instances) {
    a.push_back({{"name", in.name},
                 {"dir", in.dir},
                 {"backup_id", in.backup_id},
                 {"sequence", in.sequence},
                 {"bytes", in.bytes},
                 {"files", in.files}});
  }
  return {{"format", m.format},
          {"cut", m.cut},
          {"cut_id", m.cut_id},
          {"store_id", m.store_id},
          {"region", m.region},
          {"time", m.time},
          {"keyring_generation", m.keyring_generation},
          {"kek_generation", m.kek_generation},
          {"receipt_seq", m.receipt_seq},
          {"audit_seq", m.audit_seq},
          {"instances", std::move(a)}};
}

uint64_t TotalBytes(const BackupManifest& m) {
  uint64_t b = 0;
  for (const auto& in : m.instances) b += in.bytes;
  return b;
}

bool ParseHexKey(const std::string& hex, std::string* out) {
  if (hex.size() != 64) return false;
  out->clear();
  for (size_t i = 0; i < hex.size(); i += 2) {
    auto nib = [](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      if (c >= 'A' && c <= 'F') return c - 'A' + 10;
      return -1;
    };
    int hi = nib(hex[i]), lo = nib(hex[i + 1]);
    if (hi < 0 || lo < 0) return false;
    out->push_back(static_cast<char>(hi * 16 + lo));
  }
  return true;
}

// `backup --to DIR` (with --db), `backup list DIR`, `backup verify DIR`.
// One verb with an optional action, so that `callvault backup --db D --to B`
// reads as the operator writes it.
class BackupCommand final : public Command {
 public:
  std::string Name() const override { return "backup"; }
  std::string Help() const override {
    return "Back up a serving store (--to DIR), or list / verify a backup directory";
  }
  void AddFlags(CLI::App* app) override {
    app->add_option("ACTION", action_, "list or verify (none: take a backup with --to)")
        ->check(CLI::IsMember({"list", "verify"}));
    app->add_option("BACKUP_DIR", dir_, "The backup directory (list, verify)");
    app->add_option("--to", to_, "Take a backup of --db into this backup directory");
    app->add_option("--cut", cut_, "verify: the cut to check (default: the newest)");
    app->add_option("--pubkey", pubkey_,
                    "verify: the store's public key in hex (`callvault pubkey`); default: read "
                    "from the key directory (--keys or <db>.keys)");
    app->add_flag("--flush", flush_, "Flush memtables first: the backup holds no WAL");
  }
  bool NeedsStore() const override { return false; }
  RunResult Run(Context& ctx) override {
    if (action_.empty()) return Create(ctx);
    if (dir_.empty()) return RunResult::Usage("backup " + action_ + " needs BACKUP_DIR");
    if (action_ == "list") return List(ctx);
    return Verify(ctx);
  }

 private:
  RunResult Create(Context& ctx) {
    if (to_.empty()) return RunResult::Usage("backup needs --to BACKUP_DIR (or list / verify)");
    if (ctx.flags().db.empty()) return RunResult::Usage("--db DIR is required");
    auto store = ctx.OpenStore(OpenMode::kWrite);
    if (!store.ok()) return store.status();
    BackupOptions o;
    o.flush_before_backup = flush_;
    auto info = (*store)->Backup(to_, o);
    WarnUnreadable(ctx, to_);
    if (!info.ok()) return info.status();
    Status closed = (*store)->Close();
    if (!closed.ok()) return closed;
    if (ctx.json()) {
      nlohmann::json j = ManifestJson(info->manifest);
      j["manifest_path"] = info->manifest_path;
      j["new_files"] = info->new_files;
      j["new_bytes"] = info->new_bytes;
      j["admin_lock_ms"] = info->admin_lock_micros / 1000.0;
      ctx.PrintJson(j);
    } else {
      ctx.out() << fmt::format("backup cut {} of store {}: {} instances, {} bytes, {} new files "
                               "({} bytes copied); admin lock held {:.1f} ms\n",
                               info->manifest.cut, info->manifest.store_id,
                               info->manifest.instances.size(), TotalBytes(info->manifest),
                               info->new_files, info->new_bytes,
                               info->admin_lock_micros / 1000.0);
      ctx.out() << "manifest " << info->manifest_path << " (signed; no key material copied)\n";
    }
    return {};
  }

  RunResult List(Context& ctx) {
    std::vector<UnreadableCut> unreadable;
    auto all = ListBackups(dir_, &unreadable);
    if (!all.ok()) return all.status();
    PrintUnreadable(ctx, unreadable);
    if (ctx.json()) {
      nlohmann::json a = nlohmann::json::array();
      for (const auto& m : *all) a.push_back(ManifestJson(m));
      ctx.PrintJson({{"cuts", std::move(a)}, {"unreadable", UnreadableJson(unreadable)}});
      return {};
    }
    ctx.out() << fmt::format("{:>5}  {:<16}  {:>9}  {:>8}  {:>8}  {:>12}\n", "CUT", "TIME (us)",
                             "INSTANCES", "KEYRING", "RECEIPTS", "BYTES");
    for (const auto& m : *all) {
      ctx.out() << fmt::format("{:>5}  {:<16}  {:>9}  {:>8}  {:>8}  {:>12}\n", m.cut, m.time,
                               m.instances.size(), m.keyring_generation, m.receipt_seq,
                               TotalBytes(m));
    }
    return {};
  }

  RunResult Verify(Context& ctx) {
    std::string key;
    if (!pubkey_.empty()) {
      if (!ParseHexKey(pubkey_, &key)) {
        return RunResult::Usage("--pubkey must be 64 hex digits (`callvault pubkey`)");
      }
    } else {
      if (ctx.flags().keys.empty() && ctx.flags().db.empty()) {
        return RunResult::Usage("backup verify needs --pubkey HEX, --keys DIR or --db DIR");
      }
      auto kp = ctx.MakeKeyProvider(/*create_if_missing=*/false);
      if (!kp.ok()) return kp.status();
      auto k = (*kp)->ExistingSigningPublicKey();
      if (!k.ok()) return k.status();
      key = *k;
    }
    WarnUnreadable(ctx, dir_);
    auto m = VerifyBackup(dir_, cut_, key);
    if (!m.ok()) return m.status();
    if (ctx.json()) {
      nlohmann::json j = ManifestJson(*m);
      j["ok"] = true;
      ctx.PrintJson(j);
    } else {
      size_t files = 0;
      for (const auto& in : m->instances) files += in.contents.size();
      if (m->format >= 2) {
        ctx.out() << fmt::format(
            "backup cut {}: OK (manifest signature, {} instance backups of this cut, the SHA-256 "
            "of each of their {} files as signed)\n",
            m->cut, m->instances.size(), files);
      } else {
        ctx.out() << fmt::format(
            "backup cut {}: OK (manifest signature, {} instance backups of this cut, every file's "
            "crc32c; a cut of format 1 does not sign its files' contents: take a new backup)\n",
            m->cut, m->instances.size());
      }
    }
    return {};
  }

  std::string action_;
  std::string dir_;
  std::string to_;
  std::string pubkey_;
  uint64_t cut_ = 0;
  bool flush_ = false;
};

// `restore BACKUP_DIR --db NEW`, `restore finish --db DIR` (the writable
// open that finishes a pending restore), `restore abandon RESTORE_ID`
// (drops the ledger line of a restore whose copy is lost). A backup
// directory named `finish` or `abandon` is written `./finish`.
class RestoreCommand final : public Command {
 public:
  std::string Name() const override { return "restore"; }
  std::string Help() const override {
    return "Restore a backup into a new store directory (--db) with the current key directory; "
           "finish a pending restore (finish); drop a restore whose copy is lost (abandon ID)";
  }
  void AddFlags(CLI::App* app) override {
    app->add_option("BACKUP_DIR", dir_, "The backup directory, or finish, or abandon")->required();
    app->add_option("RESTORE_ID", id_, "abandon: the restore id (as a refusal named it)");
    cut_opt_ = app->add_option("--cut", cut_, "The cut to restore (default: the newest)");
  }
  bool NeedsStore() const override { return false; }  // abandon needs only --keys
  RunResult Run(Context& ctx) override {
    RunResult r = Dispatch(ctx);
    // The key directory held by another process: retry later (75), as a
    // store held by another process is (attack4 F7).
    if (!r.ok() && !r.usage()) ctx.NoteKeyDirBusy(r.status());
    return r;
  }

 private:
  RunResult Dispatch(Context& ctx) {
    if ((dir_ == "abandon" || dir_ == "finish") && cut_opt_->count() > 0) {
      // A restore's cut: silently ignored here, it would look obeyed.
      return RunResult::Usage("restore " + dir_ + " takes no --cut (only a restore picks a cut)");
    }
    if (dir_ == "abandon") return Abandon(ctx);
    if (!id_.empty()) return RunResult::Usage("only `restore abandon` takes a restore id");
    if (ctx.flags().db.empty()) return RunResult::Usage("--db DIR is required");
    if (dir_ == "finish") return Finish(ctx);
    auto kp = ctx.MakeKeyProvider(/*create_if_missing=*/false);
    if (!kp.ok()) {
      if (kp.status().code() == Code::kNotFound) {
        return Status::KeyError("key directory " + ctx.KeyDir() +
                                " does not exist (restore needs the store's current key "
                                "directory: pass --keys DIR)");
      }
      return kp.status();
    }
    Options o;
    o.key_provider = *kp;
    RestoreRequest req;
    req.cut = cut_;
    WarnUnreadable(ctx, dir_);
    auto r = Store::Restore(o, dir_, ctx.flags().db, req);
    if (!r.ok()) return r.status();
    if (ctx.json()) {
      nlohmann::json j;
      j["cut"] = r->manifest.cut;
      j["store_id"] = r->manifest.store_id;
      j["purged_since_backup"] = r->purged_since_backup;
      j["orphan_key_internal_ids"] = r->orphan_key_internal_ids;
      j["erasures_after_backup_reapplied"] = !r->erasures_after_backup_not_reapplied;
      j["tombstones_replayed"] = r->tombstones_replayed;
      j["redactions_replayed"] = r->redactions_replayed;
      j["recordings_replayed"] = r->recordings_replayed;
      j["tombstones_kept_held"] = r->tombstones_kept_held;
      j["stale_stagings_removed"] = r->stale_stagings_removed;
      j["stale_staging_notes"] = r->stale_staging_notes;
      j["quarantined_tenants"] = r->quarantined_tenants;
      ctx.PrintJson(j);
      return {};
    }
    ctx.out() << fmt::format("restored cut {} of store {} into {}\n", r->manifest.cut,
                             r->manifest.store_id, ctx.flags().db);
    for (const auto& d : r->stale_stagings_removed) {
      ctx.out() << "removed " << d << ": the staging directory of an earlier restore that died\n";
    }
    for (const auto& n : r->stale_staging_notes) ctx.out() << "note: " << n << "\n";
    for (const auto& t : r->purged_since_backup) {
      ctx.out() << "tenant " << t
                << ": purged since the backup (its data key is gone from the key directory); "
                   "rolled forward to PURGED (purge_on_open receipt)\n";
    }
    if (!r->orphan_key_internal_ids.empty()) {
      ctx.out() << r->orphan_key_internal_ids.size()
                << " data key(s) in the key directory belong to no restored tenant (created "
                   "after the backup): run `callvault keys reconcile` to see and destroy them\n";
    }
    for (const auto& t : r->quarantined_tenants) {
      ctx.out() << "tenant " << t
                << ": quarantined in the restored store, unreadable (e.g. a backup older than a key "
                   "rotation of the tenant: its data there is under the destroyed key); the counts "
                   "below do not cover it: purge it there, or see docs/operations.md (key "
                   "rotation, \"Backups\")\n";
    }
    if (r->erasures_after_backup_not_reapplied) {
      ctx.out() << "note: erasures, call deletions and retention removals done after the backup "
                   "are NOT re-applied (this key provider keeps no tombstone log): run them again\n";
    } else {
      ctx.out() << r->tombstones_replayed
                << " call(s) erased, deleted or removed by retention after the backup were removed "
                   "again, "
                << r->redactions_replayed << " redacted again, " << r->recordings_replayed
                << " deleted recording(s) deleted again (tombstone log)";
      if (r->tombstones_kept_held > 0) {
        ctx.out() << "; " << r->tombstones_kept_held << " kept: a legal hold in the backup covers them";
      }
      ctx.out() << "\n";
    }
    return {};
  }

  RunResult Finish(Context& ctx) {
    auto store = ctx.OpenStore(OpenMode::kWrite);
    if (!store.ok()) return store.status();
    const RestoreFinishReport r = (*store)->RestoreFinishedAtOpen();
    Status closed = (*store)->Close();
    if (!closed.ok()) return closed;
    if (ctx.json()) {
      ctx.PrintJson({{"restore_id", r.restore_id},
                     {"replayed", r.replayed},
                     {"resumed", r.resumed},
                     {"removed", r.removed},
                     {"recordings", r.recordings},
                     {"redacted", r.redacted},
                     {"kept_held", r.kept_held}});
      return {};
    }
    if (r.restore_id.empty()) {
      ctx.out() << ctx.flags().db << ": nothing pending (no restore to finish)\n";
    } else if (!r.replayed) {
      ctx.out() << "restore " << r.restore_id
                << " finished: its erasure replay was done by an earlier open that died\n";
    } else {
      ctx.out() << fmt::format(
          "restore {} finished: {} call(s) removed again, {} deleted recording(s) deleted again, "
          "{} redacted again{}{}\n",
          r.restore_id, r.removed, r.recordings, r.redacted,
          r.kept_held > 0 ? fmt::format("; {} kept by a legal hold", r.kept_held) : "",
          r.resumed ? " (resumed a replay killed midway; counts of every run)" : "");
    }
    return {};
  }

  RunResult Abandon(Context& ctx) {
    if (id_.empty()) return RunResult::Usage("restore abandon needs the RESTORE_ID");
    const std::string keys = ctx.KeyDir();
    if (keys.empty()) return RunResult::Usage("pass --keys DIR (or --db DIR)");
    auto r = AbandonRestore(keys, id_);
    if (!r.ok()) return r.status();
    if (ctx.json()) {
      ctx.PrintJson({{"restore_id", r->restore_id}, {"state", r->state}, {"from", r->from}});
      return {};
    }
    ctx.out() << "abandoned " << r->state << " restore " << r->restore_id << " in the ledger of "
              << keys
              << (r->state == "pending"
                      ? fmt::format(" (its replay would have started at tombstone log offset {})",
                                    r->from)
                      : std::string())
              << "; a copy of it opened later is refused as abandoned\n";
    return {};
  }

  std::string dir_;
  std::string id_;
  uint64_t cut_ = 0;
  CLI::Option* cut_opt_ = nullptr;
};

// `tombstones prune --keep BACKUP_DIR...` (decision 0044): drops the
// tombstone log's entries that no cut of the kept backups needs. Offline.
class TombstonesPruneCommand final : public Command {
 public:
  std::string Group() const override { return "tombstones"; }
  std::string Name() const override { return "prune"; }
  std::string Help() const override {
    return "Drop the tombstone log entries no kept backup needs (the store must be closed)";
  }
  bool NeedsStore() const override { return false; }
  void AddFlags(CLI::App* app) override {
    app->add_option("--keep", keep_,
                    "A backup directory you keep (repeat for each; every cut in it is kept)")
        ->required();
  }
  RunResult Run(Context& ctx) override {
    const std::string keys = ctx.KeyDir();
    if (keys.empty()) return Status::InvalidArgument("pass --keys DIR (or --db DIR)");
    auto r = PruneTombstoneLog(keys, keep_);
    if (!r.ok()) return r.status();
    if (ctx.json()) {
      ctx.PrintJson({{"previous_base", r->previous_base},
                     {"base", r->base},
                     {"size", r->size},
                     {"lines_dropped", r->lines_dropped},
                     {"oldest_kept_cut_time", r->oldest_kept_cut_time}});
      return {};
    }
    ctx.out() << fmt::format(
        "tombstone log of {}: {} line(s) dropped; it now starts at offset {} (was {}); backups "
        "whose tombstone_offset is below {} can no longer be restored\n",
        keys, r->lines_dropped, r->base, r->previous_base, r->base);
    return {};
  }

 private:
  std::vector<std::string> keep_;
};

}  // namespace

void AddBackupCommands(std::vector<std::unique_ptr<Command>>* out) {
  out->push_back(std::make_unique<BackupCommand>());
  out->push_back(std::make_unique<RestoreCommand>());
  out->push_back(std::make_unique<TombstonesPruneCommand>());
}

}  // namespace callvault::cli
