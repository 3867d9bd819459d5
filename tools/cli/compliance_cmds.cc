// callvault retention run | purges run | audit list | audit verify: the
// operator's side of the compliance lifecycle (docs/operations.md).
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <CLI/CLI.hpp>
#include <ostream>

#include "tools/cli/command.h"
#include "tools/cli/format.h"

namespace callvault::cli {

namespace {

// --now T, or the system clock.
Result<int64_t> NowFlag(const std::string& text) {
  if (text.empty()) return NowMicros();
  return ParseTime(text, "--now");
}

// What a run of the scheduled purges did (or, on a dry run, would do) to one
// churned tenant whose deadline has come.
struct PurgeOutcome {
  std::string tenant_id;
  int64_t purge_at = 0;
  std::string status;  // "purged", "due", "blocked: ..." ("held" on a dry run)
  std::optional<Receipt> receipt;
};

Result<std::vector<PurgeOutcome>> RunPurges(Store* store, int64_t now, bool dry_run) {
  CV_ASSIGN_OR_RETURN(std::vector<TenantInfo> tenants, store->ListTenants());
  std::vector<PurgeOutcome> due;
  for (const auto& t : tenants) {
    if (t.state == TenantState::kActive && t.purge_at != 0 && t.purge_at <= now) {
      due.push_back({t.tenant_id, t.purge_at, "", std::nullopt});
    }
  }
  std::vector<Receipt> receipts;
  if (!dry_run && !due.empty()) {
    CV_ASSIGN_OR_RETURN(receipts, store->RunScheduledPurges(now));
  }
  for (auto& d : due) {
    for (const auto& r : receipts) {
      if (r.tenant_id == d.tenant_id) d.receipt = r;
    }
    if (d.receipt) {
      d.status = "purged";
      continue;
    }
    // Not purged (or a dry run): a legal hold is what blocks a due purge.
    auto holds = store->ListHolds(d.tenant_id);
    if (holds.ok() && !holds->empty()) {
      d.status =
          fmt::format("{}: legal hold {}", dry_run ? "held" : "blocked", holds->front().hold_id);
    } else {
      d.status = dry_run ? "due" : "not purged";
    }
  }
  return due;
}

nlohmann::json PurgesToJson(const std::vector<PurgeOutcome>& purges) {
  nlohmann::json a = nlohmann::json::array();
  for (const auto& p : purges) {
    a.push_back({{"tenant_id", p.tenant_id},
                 {"purge_at", p.purge_at},
                 {"status", p.status},
                 {"receipt", p.receipt ? ReceiptToJson(*p.receipt) : nlohmann::json(nullptr)}});
  }
  return a;
}

// After a run (not a dry run): kFailedPrecondition (exit 78) naming every
// due purge that was not done and what blocked it, so that a cron job or an
// operator's script sees it; OK when every due purge was done.
Status UndonePurges(const std::vector<PurgeOutcome>& purges) {
  std::string undone;
  size_t n = 0;
  for (const auto& p : purges) {
    if (p.receipt) continue;
    ++n;
    undone += fmt::format("{}{} ({})", undone.empty() ? "" : ", ", p.tenant_id, p.status);
  }
  if (n == 0) return Status::OK();
  return Status::FailedPrecondition(
      fmt::format("{} due purge(s) not done: {}; release the hold (`tenant release` or `call "
                  "release`) and run again",
                  n, undone));
}

void PrintPurges(std::ostream& out, const std::vector<PurgeOutcome>& purges) {
  if (purges.empty()) {
    out << "scheduled purges: none due\n";
    return;
  }
  out << "scheduled purges:\n";
  Table table({"  TENANT", "RECEIPT", "STATUS", "PURGE_AT"});
  for (const auto& p : purges) {
    table.Add({"  " + p.tenant_id, p.receipt ? std::to_string(p.receipt->sequence) : "-", p.status,
               FormatTime(p.purge_at)});
  }
  table.Print(out);
}

class RetentionRunCommand final : public Command {
 public:
  std::string Group() const override { return "retention"; }
  std::string Name() const override { return "run"; }
  std::string Help() const override {
    return "Remove the calls older than their retention (unless pinned or held); prints the report";
  }
  void AddFlags(CLI::App* app) override {
    app->add_option("--now", now_,
                    "The time to apply retention at: microseconds or RFC 3339. Default: the clock");
    app->add_flag("--dry-run", dry_run_,
                  "Count what would be removed; remove nothing. Default: off");
    app->add_flag("--purges", purges_,
                  "Also run the scheduled purges that are due at --now (first). Default: off");
  }
  RunResult Run(Context& ctx) override {
    auto now = NowFlag(now_);
    if (!now.ok()) return RunResult::Usage(now.status().message());
    auto store = ctx.OpenStore(dry_run_ ? OpenMode::kReadOnly : OpenMode::kWrite);
    if (!store.ok()) return store.status();
    std::vector<PurgeOutcome> purges;
    if (purges_) {
      auto p = RunPurges(store->get(), *now, dry_run_);
      if (!p.ok()) return p.status();
      purges = std::move(p).value();
    }
    auto report = (*store)->RunRetention(*now, dry_run_);
    if (!report.ok()) return report.status();
    if (ctx.json()) {
      nlohmann::json j = RetentionReportToJson(*report);
      if (purges_) j["scheduled_purges"] = PurgesToJson(purges);
      ctx.PrintJson(j);
    } else {
      if (purges_) PrintPurges(ctx.out(), purges);
      PrintRetentionReport(ctx.out(), *report);
    }
    ctx.err() << fmt::format(
        "retention{}: {} call(s) {} in {} tenant(s){}\n", dry_run_ ? " (dry run)" : "",
        report->calls_removed, dry_run_ ? "would be removed" : "removed",
        report->removed_by_tenant.size(),
        report->receipts.empty() ? "" : fmt::format("; {} receipt(s)", report->receipts.size()));
    if (purges_ && !dry_run_) {
      Status undone = UndonePurges(purges);
      if (!undone.ok()) return undone;
    }
    if (!report->tenants_damaged.empty()) {
      // As for a blocked purge: a cron job notices calls kept past their
      // retention because their tenant is damaged.
      return Status::Corruption(fmt::format(
          "retention skipped {} damaged tenant(s) ({}): their expired calls are kept until each is "
          "restored, purged or its damage accepted (docs/operations.md)",
          report->tenants_damaged.size(), fmt::join(report->tenants_damaged, " ")));
    }
    return {};
  }

 private:
  std::string now_;
  bool dry_run_ = false;
  bool purges_ = false;
};

class PurgesRunCommand final : public Command {
 public:
  std::string Group() const override { return "purges"; }
  std::string Name() const override { return "run"; }
  std::string Help() const override {
    return "Purge every churned tenant whose deadline has come and that no hold covers";
  }
  void AddFlags(CLI::App* app) override {
    app->add_option("--now", now_,
                    "The time to run at: microseconds or RFC 3339. Default: the clock");
    app->add_flag("--dry-run", dry_run_,
                  "List the purges that are due; purge nothing. Default: off");
  }
  RunResult Run(Context& ctx) override {
    auto now = NowFlag(now_);
    if (!now.ok()) return RunResult::Usage(now.status().message());
    auto store = ctx.OpenStore(dry_run_ ? OpenMode::kReadOnly : OpenMode::kWrite);
    if (!store.ok()) return store.status();
    auto purges = RunPurges(store->get(), *now, dry_run_);
    if (!purges.ok()) return purges.status();
    if (ctx.json()) {
      ctx.PrintJson(
          {{"now", *now}, {"dry_run", dry_run_}, {"scheduled_purges", PurgesToJson(*purges)}});
    } else {
      PrintPurges(ctx.out(), *purges);
    }
    if (!dry_run_) return UndonePurges(*purges);
    return {};
  }

 private:
  std::string now_;
  bool dry_run_ = false;
};

class AuditListCommand final : public Command {
 public:
  std::string Group() const override { return "audit"; }
  std::string Name() const override { return "list"; }
  std::string Help() const override { return "List the audit events, oldest first"; }
  void AddFlags(CLI::App* app) override {
    app->add_option("--since", since_,
                    "Events at or after this time: microseconds or RFC 3339. Default: all");
    app->add_option("--kind", kind_,
                    "Only this kind (tenant_created, tenant_churned, churn_cancelled, "
                    "tenant_purged, scheduled_purge_blocked, create_rolled_back, "
                    "tenant_reinstated, orphan_family_dropped, orphan_key, orphan_key_destroyed, "
                    "hold_placed, hold_released, erasure, retention_sweep, key_rotation, "
                    "auth_failure, verify_incomplete, keyring_auth_failure, background_error, "
                    "backup; damage: wal_damage, file_damage, shard_loss, tenant_damaged, "
                    "damage_accepted). Default: all");
  }
  RunResult Run(Context& ctx) override {
    int64_t since = 0;
    if (!since_.empty()) {
      auto t = ParseTime(since_, "--since");
      if (!t.ok()) return RunResult::Usage(t.status().message());
      since = *t;
    }
    auto store = ctx.OpenStore(OpenMode::kReadOnly);
    if (!store.ok()) return store.status();
    auto events = (*store)->ListAudit(since, kind_);
    if (!events.ok()) return events.status();
    if (ctx.json()) {
      nlohmann::json a = nlohmann::json::array();
      for (const auto& e : *events) a.push_back(AuditEventToJson(e));
      ctx.PrintJson({{"events", std::move(a)}});
    } else {
      PrintAuditTable(ctx.out(), *events);
    }
    return {};
  }

 private:
  std::string since_;
  std::string kind_;
};

class AuditVerifyCommand final : public Command {
 public:
  std::string Group() const override { return "audit"; }
  std::string Name() const override { return "verify"; }
  std::string Help() const override {
    return "Check the audit log's hash chain from the first event (exit 76 on failure)";
  }
  void AddFlags(CLI::App*) override {}
  RunResult Run(Context& ctx) override {
    auto store = ctx.OpenStore(OpenMode::kReadOnly);
    if (!store.ok()) return store.status();
    auto events = (*store)->ListAudit();
    if (!events.ok()) return events.status();
    Status s = VerifyAuditChain(*events);
    if (ctx.json()) {
      ctx.PrintJson(
          {{"ok", s.ok()}, {"events", events->size()}, {"message", s.ok() ? "" : s.message()}});
    } else if (s.ok()) {
      ctx.out() << fmt::format("OK: {} event(s), hash chain verified\n", events->size());
    } else {
      ctx.out() << "FAILED  " << s.message() << '\n';
    }
    if (!s.ok()) return RunResult::Reported(s);
    return {};
  }
};

}  // namespace

void AddComplianceCommands(std::vector<std::unique_ptr<Command>>* out) {
  out->push_back(std::make_unique<RetentionRunCommand>());
  out->push_back(std::make_unique<PurgesRunCommand>());
  out->push_back(std::make_unique<AuditListCommand>());
  out->push_back(std::make_unique<AuditVerifyCommand>());
}

}  // namespace callvault::cli
