// callvault tenant create | list | show | purge | churn | cancel-churn |
// retention | hold | holds | release | export.
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <map>
#include <ostream>

#include "callvault/export.h"

#include "tools/cli/command.h"
#include "tools/cli/format.h"

namespace callvault::cli {

namespace {

class TenantCreateCommand final : public Command {
 public:
  std::string Group() const override { return "tenant"; }
  std::string Name() const override { return "create"; }
  std::string Help() const override { return "Create a tenant with its own key and column family"; }
  void AddFlags(CLI::App* app) override {
    app->add_option("ID", spec_.tenant_id, "The tenant id (1-128 printable ASCII, no spaces)")
        ->required();
    app->add_option("--region", spec_.region,
                    "Must be the store's region. Default: the store's region");
    app->add_option("--retention-days", spec_.retention_days,
                    "Days a call is kept; 0 keeps calls until the tenant is purged. Default: 0");
  }
  RunResult Run(Context& ctx) override {
    auto store = ctx.OpenStore();
    if (!store.ok()) return store.status();
    auto t = (*store)->CreateTenant(spec_);
    if (!t.ok()) return t.status();
    if (ctx.json()) {
      ctx.PrintJson(TenantToJson(*t, ctx.reveal()));
    } else {
      PrintTenant(ctx.out(), *t, std::nullopt);
    }
    return {};
  }

 private:
  TenantSpec spec_;
};

class TenantListCommand final : public Command {
 public:
  std::string Group() const override { return "tenant"; }
  std::string Name() const override { return "list"; }
  std::string Help() const override { return "List every tenant, purged ones included"; }
  void AddFlags(CLI::App*) override {}
  RunResult Run(Context& ctx) override {
    auto store = ctx.OpenStore(OpenMode::kReadOnly);
    if (!store.ok()) return store.status();
    auto tenants = (*store)->ListTenants();
    if (!tenants.ok()) return tenants.status();
    // Holds on single calls block the tenant's purge too: counted per live
    // tenant (a purged one has none to list).
    std::map<std::string, size_t> call_holds;
    for (const auto& t : *tenants) {
      if (t.state != TenantState::kActive) continue;
      auto holds = (*store)->ListHolds(t.tenant_id);
      if (!holds.ok()) continue;
      call_holds[t.tenant_id] = static_cast<size_t>(std::count_if(
          holds->begin(), holds->end(), [](const Hold& h) { return !h.call_id.empty(); }));
    }
    if (ctx.json()) {
      nlohmann::json a = nlohmann::json::array();
      for (const auto& t : *tenants) {
        nlohmann::json j = TenantToJson(t, ctx.reveal());
        auto c = call_holds.find(t.tenant_id);
        j["call_holds"] = c == call_holds.end() ? nlohmann::json(nullptr) : nlohmann::json(c->second);
        a.push_back(std::move(j));
      }
      ctx.PrintJson({{"tenants", std::move(a)}});
    } else {
      PrintTenantTable(ctx.out(), *tenants, call_holds);
    }
    return {};
  }
};

class TenantShowCommand final : public Command {
 public:
  std::string Group() const override { return "tenant"; }
  std::string Name() const override { return "show"; }
  std::string Help() const override { return "Describe one tenant (and count its calls)"; }
  void AddFlags(CLI::App* app) override {
    app->add_option("ID", tenant_id_, "The tenant id")->required();
  }
  RunResult Run(Context& ctx) override {
    auto store = ctx.OpenStore(OpenMode::kReadOnly);
    if (!store.ok()) return store.status();
    auto t = (*store)->DescribeTenant(tenant_id_);
    if (!t.ok()) return t.status();
    std::optional<uint64_t> calls;
    std::optional<std::vector<Hold>> holds;
    if (t->state == TenantState::kActive && !t->damaged) {
      // A churned tenant whose reads are refused has no count; a damaged
      // one (decision 0014) shows what was found instead.
      auto n = (*store)->CountCalls(tenant_id_);
      if (n.ok()) {
        calls = *n;
      } else if (n.status().code() != Code::kFailedPrecondition) {
        return n.status();
      }
      auto h = (*store)->ListHolds(tenant_id_);
      if (!h.ok()) return h.status();
      holds = std::move(h).value();
    }
    if (ctx.json()) {
      nlohmann::json j = TenantToJson(*t, ctx.reveal());
      if (calls) j["calls"] = *calls;
      if (holds) {
        nlohmann::json call_holds = nlohmann::json::array();
        for (const auto& h : *holds) {
          if (!h.call_id.empty()) call_holds.push_back(HoldToJson(h, ctx.reveal()));
        }
        j["call_holds"] = std::move(call_holds);
      }
      ctx.PrintJson(j);
    } else {
      PrintTenant(ctx.out(), *t, calls, holds);
    }
    return {};
  }

 private:
  std::string tenant_id_;
};

class TenantPurgeCommand final : public Command {
 public:
  std::string Group() const override { return "tenant"; }
  std::string Name() const override { return "purge"; }
  std::string Help() const override {
    return "Crypto-shred a tenant and drop its data; prints the signed receipt (needs --yes)";
  }
  void AddFlags(CLI::App* app) override {
    app->add_option("ID", tenant_id_, "The tenant id")->required();
    app->add_flag("--yes", yes_, "Confirm: the tenant's calls cannot be recovered. Default: off");
  }
  RunResult Run(Context& ctx) override {
    if (!yes_) {
      return RunResult::Usage(
          "refusing to purge without --yes: purging destroys the tenant's key and every call "
          "it holds, for good");
    }
    auto store = ctx.OpenStore();
    if (!store.ok()) return store.status();
    auto receipt = (*store)->PurgeTenant(tenant_id_);
    if (!receipt.ok()) return receipt.status();
    if (ctx.json()) {
      ctx.PrintJson(ReceiptToJson(*receipt));
    } else {
      PrintReceipt(ctx.out(), *receipt);
    }
    ctx.err() << "purged tenant " << tenant_id_ << "; receipt " << receipt->sequence << '\n';
    return {};
  }

 private:
  std::string tenant_id_;
  bool yes_ = false;
};

class TenantRotateKeyCommand final : public Command {
 public:
  std::string Group() const override { return "tenant"; }
  std::string Name() const override { return "rotate-key"; }
  std::string Help() const override {
    return "Give a tenant a new data key: its data re-sealed under it, the old key shredded; "
           "prints the signed receipt";
  }
  void AddFlags(CLI::App* app) override {
    app->add_option("ID", tenant_id_, "The tenant id")->required();
  }
  RunResult Run(Context& ctx) override {
    auto store = ctx.OpenStore();
    if (!store.ok()) return store.status();
    auto receipt = (*store)->RotateTenantKey(tenant_id_);
    if (!receipt.ok()) return receipt.status();
    if (ctx.json()) {
      ctx.PrintJson(ReceiptToJson(*receipt));
    } else {
      PrintReceipt(ctx.out(), *receipt);
    }
    ctx.err() << "rotated the key of tenant " << tenant_id_ << "; receipt " << receipt->sequence
              << "; backups taken before now cannot restore this tenant: take a backup\n";
    return {};
  }

 private:
  std::string tenant_id_;
};

// Moves a tenant to another shard of the store (docs/decisions/0057): a key
// rotation whose copy is made there.
class TenantMoveShardCommand final : public Command {
 public:
  std::string Group() const override { return "tenant"; }
  std::string Name() const override { return "move-shard"; }
  std::string Help() const override {
    return "Move a tenant to another shard of this store (rebalancing): its data copied there "
           "under a new key while it is served, the old copy dropped and its key shredded; "
           "prints the signed receipt";
  }
  void AddFlags(CLI::App* app) override {
    app->add_option("ID", tenant_id_, "The tenant id")->required();
    app->add_option("--to-shard", to_shard_, "The shard to move it to (see `stats`)")->required();
  }
  RunResult Run(Context& ctx) override {
    auto store = ctx.OpenStore();
    if (!store.ok()) return store.status();
    auto receipt = (*store)->MoveTenantToShard(tenant_id_, to_shard_);
    if (!receipt.ok()) return receipt.status();
    if (ctx.json()) {
      ctx.PrintJson(ReceiptToJson(*receipt));
    } else {
      PrintReceipt(ctx.out(), *receipt);
    }
    ctx.err() << "moved tenant " << tenant_id_ << " from shard " << receipt->shard
              << " to shard " << to_shard_ << " under a new key; receipt " << receipt->sequence
              << "; backups taken before now cannot restore this tenant: take a backup\n";
    return {};
  }

 private:
  std::string tenant_id_;
  uint32_t to_shard_ = 0;
};

// Prints the tenant after a change, as `tenant show` would (without counts).
RunResult ShowAfter(Context& ctx, Store* store, const std::string& tenant_id) {
  auto t = store->DescribeTenant(tenant_id);
  if (!t.ok()) return t.status();
  if (ctx.json()) {
    ctx.PrintJson(TenantToJson(*t, ctx.reveal()));
  } else {
    PrintTenant(ctx.out(), *t, std::nullopt);
  }
  return {};
}

class TenantChurnCommand final : public Command {
 public:
  std::string Group() const override { return "tenant"; }
  std::string Name() const override { return "churn"; }
  std::string Help() const override {
    return "Mark a tenant churned: writes are refused and a purge is scheduled (cancellable)";
  }
  void AddFlags(CLI::App* app) override {
    app->add_option("ID", tenant_id_, "The tenant id")->required();
    CLI::Option* at =
        app->add_option("--purge-at", purge_at_,
                        "When the purge runs: microseconds or RFC 3339. Default: see --after-days");
    app->add_option("--after-days", after_days_,
                    "Days from now until the purge (the grace period). Default: 30")
        ->check(CLI::Range(0u, 36500u))
        ->excludes(at);
  }
  RunResult Run(Context& ctx) override {
    // Whole seconds: a deadline reads better without a fraction.
    constexpr int64_t kSecond = 1000000;
    int64_t purge_at = (NowMicros() / kSecond + int64_t{after_days_} * 86400) * kSecond;
    if (!purge_at_.empty()) {
      auto t = ParseTime(purge_at_, "--purge-at");
      if (!t.ok()) return RunResult::Usage(t.status().message());
      purge_at = *t;
    }
    auto store = ctx.OpenStore();
    if (!store.ok()) return store.status();
    Status s = (*store)->ScheduleTenantPurge(tenant_id_, purge_at);
    if (!s.ok()) return s;
    RunResult r = ShowAfter(ctx, store->get(), tenant_id_);
    ctx.err() << "tenant " << tenant_id_ << " churned: writes are refused; purge scheduled for "
              << FormatTime(purge_at) << " (run by `retention run --purges` or `purges run`; "
              << "cancel before then with `callvault tenant cancel-churn " << tenant_id_ << "`)\n";
    return r;
  }

 private:
  std::string tenant_id_;
  std::string purge_at_;
  uint32_t after_days_ = 30;
};

class TenantCancelChurnCommand final : public Command {
 public:
  std::string Group() const override { return "tenant"; }
  std::string Name() const override { return "cancel-churn"; }
  std::string Help() const override {
    return "Cancel a scheduled purge before its deadline; the tenant takes writes again";
  }
  void AddFlags(CLI::App* app) override {
    app->add_option("ID", tenant_id_, "The tenant id")->required();
  }
  RunResult Run(Context& ctx) override {
    auto store = ctx.OpenStore();
    if (!store.ok()) return store.status();
    Status s = (*store)->CancelTenantPurge(tenant_id_);
    if (!s.ok()) return s;
    RunResult r = ShowAfter(ctx, store->get(), tenant_id_);
    ctx.err() << "churn of tenant " << tenant_id_ << " cancelled; it takes writes again\n";
    return r;
  }

 private:
  std::string tenant_id_;
};

class TenantRetentionCommand final : public Command {
 public:
  std::string Group() const override { return "tenant"; }
  std::string Name() const override { return "retention"; }
  std::string Help() const override {
    return "Set a tenant's retention in days, or a workspace's override (--clear removes it)";
  }
  void AddFlags(CLI::App* app) override {
    app->add_option("ID", tenant_id_, "The tenant id")->required();
    CLI::Option* days = app->add_option(
        "--days", days_,
        "Days a call is kept after started_at; 0 keeps calls. Required unless --clear");
    days->check(CLI::Range(0, 36500));
    app->add_option("--workspace", workspace_,
                    "Set (or --clear) this workspace's override instead. Default: the tenant's "
                    "own retention");
    app->add_flag("--clear", clear_, "Remove the --workspace override. Default: off")
        ->excludes(days);
  }
  RunResult Run(Context& ctx) override {
    if (clear_ && workspace_.empty()) return RunResult::Usage("--clear needs --workspace W");
    if (!clear_ && days_ < 0)
      return RunResult::Usage("--days N is required (or --clear --workspace W)");
    const uint32_t days = static_cast<uint32_t>(std::max<int64_t>(days_, 0));
    auto store = ctx.OpenStore();
    if (!store.ok()) return store.status();
    Status s;
    if (workspace_.empty()) {
      s = (*store)->SetRetention(tenant_id_, days);
    } else {
      s = (*store)->SetWorkspaceRetention(tenant_id_, workspace_,
                                          clear_ ? std::nullopt : std::optional<uint32_t>(days));
    }
    if (!s.ok()) return s;
    RunResult r = ShowAfter(ctx, store->get(), tenant_id_);
    const std::string what = clear_      ? "the tenant's own"
                             : days == 0 ? "none (calls are kept)"
                                         : fmt::format("{} days", days);
    ctx.err() << "retention of tenant " << tenant_id_
              << (workspace_.empty() ? "" : ", workspace " + workspace_) << ": " << what
              << "; applied by `callvault retention run`\n";
    return r;
  }

 private:
  std::string tenant_id_;
  int64_t days_ = -1;
  std::string workspace_;
  bool clear_ = false;
};

class TenantHoldCommand final : public Command {
 public:
  std::string Group() const override { return "tenant"; }
  std::string Name() const override { return "hold"; }
  std::string Help() const override {
    return "Place a legal hold on a whole tenant: blocks purge, retention, erasure, deletes";
  }
  void AddFlags(CLI::App* app) override {
    app->add_option("ID", tenant_id_, "The tenant id")->required();
    app->add_option("--id", hold_.hold_id, "The hold's id, unique in the tenant")->required();
    app->add_option("--reason", hold_.reason,
                    "Free text, at most 1024 bytes; sealed at rest, shown only with --reveal. "
                    "Default: none");
  }
  RunResult Run(Context& ctx) override {
    auto store = ctx.OpenStore();
    if (!store.ok()) return store.status();
    Status s = (*store)->PlaceHold(tenant_id_, hold_);
    if (!s.ok()) return s;
    if (ctx.json()) {
      ctx.PrintJson({{"tenant_id", tenant_id_},
                     {"hold_id", hold_.hold_id},
                     {"call_id", ""},
                     {"placed", true}});
    } else {
      ctx.out() << "placed hold " << hold_.hold_id << " on tenant " << tenant_id_ << '\n';
    }
    ctx.err() << "release it with `callvault tenant release " << tenant_id_ << " --id "
              << hold_.hold_id << "`\n";
    return {};
  }

 private:
  std::string tenant_id_;
  Hold hold_;
};

class TenantHoldsCommand final : public Command {
 public:
  std::string Group() const override { return "tenant"; }
  std::string Name() const override { return "holds"; }
  std::string Help() const override {
    return "List a tenant's legal holds, on the tenant and on single calls";
  }
  void AddFlags(CLI::App* app) override {
    app->add_option("ID", tenant_id_, "The tenant id")->required();
  }
  RunResult Run(Context& ctx) override {
    auto store = ctx.OpenStore(OpenMode::kReadOnly);
    if (!store.ok()) return store.status();
    auto holds = (*store)->ListHolds(tenant_id_);
    if (!holds.ok()) return holds.status();
    if (ctx.json()) {
      nlohmann::json a = nlohmann::json::array();
      for (const auto& h : *holds) a.push_back(HoldToJson(h, ctx.reveal()));
      ctx.PrintJson({{"holds", std::move(a)}});
    } else {
      PrintHoldTable(ctx.out(), *holds, ctx.reveal());
    }
    return {};
  }

 private:
  std::string tenant_id_;
};

class TenantReleaseCommand final : public Command {
 public:
  std::string Group() const override { return "tenant"; }
  std::string Name() const override { return "release"; }
  std::string Help() const override {
    return "Release a legal hold (on the tenant or on a call); blocked work runs at its next run";
  }
  void AddFlags(CLI::App* app) override {
    app->add_option("ID", tenant_id_, "The tenant id")->required();
    app->add_option("--id", hold_id_, "The hold's id")->required();
  }
  RunResult Run(Context& ctx) override {
    auto store = ctx.OpenStore();
    if (!store.ok()) return store.status();
    Status s = (*store)->ReleaseHold(tenant_id_, hold_id_);
    if (!s.ok()) return s;
    if (ctx.json()) {
      ctx.PrintJson({{"tenant_id", tenant_id_}, {"hold_id", hold_id_}, {"released", true}});
    } else {
      ctx.out() << "released hold " << hold_id_ << '\n';
    }
    return {};
  }

 private:
  std::string tenant_id_;
  std::string hold_id_;
};

// A customer's data export (callvault/export.h): read-only open, so it runs
// beside the service that holds the store. Progress on stderr
// (Context::PrintProgress): on a terminal, or with --progress.
class TenantExportCommand final : public Command {
 public:
  std::string Group() const override { return "tenant"; }
  std::string Name() const override { return "export"; }
  std::string Help() const override {
    return "Export a tenant's calls (NDJSON), recordings and a SHA-256 manifest to a new "
           "directory (holds plaintext)";
  }
  void AddFlags(CLI::App* app) override {
    app->add_option("ID", tenant_id_, "The tenant id")->required();
    app->add_option("--to", dir_,
                    "The directory to create (or an empty one); made 0700, files 0600. A "
                    "symbolic link or a non-empty directory is refused")
        ->required();
  }
  RunResult Run(Context& ctx) override {
    auto store = ctx.OpenStore(OpenMode::kReadOnly);
    if (!store.ok()) return store.status();
    ExportOptions options;
    if (ctx.ShowProgress()) {
      options.progress = [&ctx](const ExportProgress& p) {
        ctx.PrintProgress("export", "calls", p.calls_done, p.calls_total, p.done);
      };
    }
    auto report = ExportTenantData(**store, tenant_id_, dir_, options);
    if (!report.ok()) return report.status();
    if (ctx.json()) {
      ctx.PrintJson({{"dir", report->dir},
                     {"tenant_id", tenant_id_},
                     {"calls", report->calls},
                     {"recordings", report->recordings},
                     {"recording_bytes", report->recording_bytes},
                     {"calls_bytes", report->calls_bytes},
                     {"bytes", report->bytes},
                     {"manifest_sha256", report->manifest_sha256},
                     {"exported_at", report->exported_at}});
    } else {
      PrintFields(ctx.out(), {{"dir", report->dir},
                              {"tenant_id", tenant_id_},
                              {"calls", std::to_string(report->calls)},
                              {"recordings", std::to_string(report->recordings)},
                              {"bytes", FormatBytes(report->bytes)},
                              {"manifest_sha256", report->manifest_sha256},
                              {"exported_at", FormatTime(report->exported_at)}});
    }
    ctx.err() << "exported tenant " << tenant_id_ << ": " << report->calls << " call(s), "
              << report->recordings << " recording(s); the directory holds personal data in "
              << "the clear: hand it over and remove it\n";
    return {};
  }

 private:
  std::string tenant_id_;
  std::string dir_;
};

// A tenant move between two stores on this machine (Store::MoveTenantOut,
// docs/operations.md "Moving a tenant"). Both stores are opened for writing
// by this process: the move runs while nothing else serves them (an
// embedding service calls MoveTenant itself to keep writes going).
class TenantMoveCommand final : public Command {
 public:
  std::string Group() const override { return "tenant"; }
  std::string Name() const override { return "move"; }
  std::string Help() const override {
    return "Move a tenant to another store (rows stay sealed; the data key travels sealed to the "
           "destination); the source's copy is purged with a moved_out receipt";
  }
  bool NeedsStore() const override { return false; }
  void AddFlags(CLI::App* app) override {
    app->add_option("ID", tenant_id_, "The tenant id")->required();
    app->add_option("--from", from_, "The source store directory")->required();
    app->add_option("--to", to_, "The destination store directory")->required();
    app->add_option("--from-keys", from_keys_, "The source's key directory (default <from>.keys)");
    app->add_option("--to-keys", to_keys_, "The destination's key directory (default <to>.keys)");
  }
  RunResult Run(Context& ctx) override {
    Context src(GlobalFlags{.db = from_, .keys = from_keys_}, ctx.out(), ctx.err());
    Context dst(GlobalFlags{.db = to_, .keys = to_keys_}, ctx.out(), ctx.err());
    auto a = src.OpenStore(OpenMode::kWrite);
    if (!a.ok()) return a.status();
    auto b = dst.OpenStore(OpenMode::kWrite);
    if (!b.ok()) return b.status();
    auto report = MoveTenant(**a, **b, tenant_id_);
    if (!report.ok()) return report.status();
    Status ca = (*a)->Close();
    Status cb = (*b)->Close();
    if (!ca.ok()) return ca;
    if (!cb.ok()) return cb;
    if (ctx.json()) {
      ctx.PrintJson({{"tenant_id", tenant_id_},
                     {"move_id", report->move_id},
                     {"destination", report->destination},
                     {"resumed", report->resumed},
                     {"rows", report->rows},
                     {"digest", report->digest},
                     {"catch_up_rounds", report->catch_up_rounds},
                     {"feed_fallback", report->feed_fallback},
                     {"fence_rows_read", report->fence_rows_read},
                     {"fence_ms", static_cast<double>(report->fence_micros) / 1000.0},
                     {"receipt", report->receipt_sequence},
                     {"total_ms", report->total_micros / 1000}});
    } else {
      PrintFields(ctx.out(), {{"tenant_id", tenant_id_},
                              {"move_id", report->move_id},
                              {"destination", report->destination},
                              {"rows", std::to_string(report->rows)},
                              {"digest", report->digest},
                              {"receipt", std::to_string(report->receipt_sequence)}});
    }
    ctx.err() << "moved tenant " << tenant_id_ << (report->resumed ? " (resumed)" : "")
              << "; the source's copy is purged (moved_out receipt "
              << report->receipt_sequence << ")\n";
    return {};
  }

 private:
  std::string tenant_id_, from_, to_, from_keys_, to_keys_;
};

}  // namespace

void AddTenantCommands(std::vector<std::unique_ptr<Command>>* out) {
  out->push_back(std::make_unique<TenantCreateCommand>());
  out->push_back(std::make_unique<TenantListCommand>());
  out->push_back(std::make_unique<TenantShowCommand>());
  out->push_back(std::make_unique<TenantPurgeCommand>());
  out->push_back(std::make_unique<TenantRotateKeyCommand>());
  out->push_back(std::make_unique<TenantMoveShardCommand>());
  out->push_back(std::make_unique<TenantChurnCommand>());
  out->push_back(std::make_unique<TenantCancelChurnCommand>());
  out->push_back(std::make_unique<TenantRetentionCommand>());
  out->push_back(std::make_unique<TenantHoldCommand>());
  out->push_back(std::make_unique<TenantHoldsCommand>());
  out->push_back(std::make_unique<TenantReleaseCommand>());
  out->push_back(std::make_unique<TenantExportCommand>());
  out->push_back(std::make_unique<TenantMoveCommand>());
}

}  // namespace callvault::cli
