// callvault verify | stats.
#include <fmt/format.h>
#include <chrono>

#include <CLI/CLI.hpp>
#include <ostream>

#include "tools/cli/command.h"
#include "tools/cli/format.h"

namespace callvault::cli {

namespace {

class VerifyCommand final : public Command {
 public:
  std::string Name() const override { return "verify"; }
  std::string Help() const override {
    return "Decrypt and check every record of one or all live tenants and the metadata (exit 76 on any "
           "failure or unchecked record)";
  }
  void AddFlags(CLI::App* app) override {
    app->add_option("--tenant", tenant_id_, "Verify this tenant only (not the metadata). Default: every live tenant and the metadata");
  }
  RunResult Run(Context& ctx) override {
    auto store = ctx.OpenStore(OpenMode::kReadOnly);
    if (!store.ok()) return store.status();
    std::optional<std::string_view> only;
    if (!tenant_id_.empty()) only = tenant_id_;
    auto report = (*store)->Verify(only);
    if (!report.ok()) return report.status();
    if (ctx.json()) {
      ctx.PrintJson(VerifyReportToJson(*report));
    } else {
      PrintVerifyReport(ctx.out(), *report);
    }
    if (!report->ok()) {
      return RunResult::Reported(Status::Corruption(fmt::format(
          "verify failed: {} record(s) did not decrypt or decode, {} metadata failure(s), about {} "
          "record(s) unchecked, {} quarantined tenant(s), {} orphan key(s), {} damaged tenant(s)",
          report->records_failed, report->metadata_failed, report->records_unchecked,
          report->quarantined_tenants.size(), report->orphan_keys.size(),
          report->damaged_tenants.size())));
    }
    return {};
  }

 private:
  std::string tenant_id_;
};

class StatsCommand final : public Command {
 public:
  std::string Name() const override { return "stats"; }
  std::string Help() const override {
    return "Sizes per tenant and shard, files, bytes on disk, key generations";
  }
  void AddFlags(CLI::App* app) override {
    app->add_flag("--prometheus", prometheus_,
                  "Print Store::Metrics in the Prometheus text format instead (the RocksDB "
                  "figures of the store as opened by this command; operation counters of this "
                  "process only, so 0)");
  }
  RunResult Run(Context& ctx) override {
    auto store = ctx.OpenStore(OpenMode::kReadOnly);
    if (!store.ok()) return store.status();
    if (prometheus_) {
      if (ctx.json()) return RunResult::Usage("--prometheus and --json exclude each other");
      auto metrics = (*store)->Metrics();
      if (!metrics.ok()) return metrics.status();
      ctx.out() << RenderPrometheus(*metrics);
      return {};
    }
    auto stats = (*store)->Stats();
    if (!stats.ok()) return stats.status();
    if (ctx.json()) {
      ctx.PrintJson(StatsToJson(*stats));
    } else {
      PrintStats(ctx.out(), *stats);
    }
    return {};
  }

 private:
  bool prometheus_ = false;
};

// callvault keys reconcile [--yes]: the keys no live tenant owns (decision 0012).
class KeysReconcileCommand final : public Command {
 public:
  std::string Group() const override { return "keys"; }
  std::string Name() const override { return "reconcile"; }
  std::string Help() const override {
    return "List the data keys no live tenant owns; with --yes destroy them (KEK rotation, "
           "signed receipts)";
  }
  void AddFlags(CLI::App* app) override {
    app->add_flag("--yes", yes_,
                  "Destroy them: every copy of their data becomes unreadable, for good. "
                  "Default: off (dry run)");
    app->add_option("--with-data", with_data_,
                    "Also destroy the orphan key with this internal id although its column family "
                    "here still holds data it reads (repeatable). Default: none (refused)");
  }
  RunResult Run(Context& ctx) override {
    auto store = ctx.OpenStore();
    if (!store.ok()) return store.status();
    auto report = (*store)->ReconcileKeys(/*dry_run=*/!yes_, with_data_);
    if (!report.ok()) return report.status();
    if (ctx.json()) {
      nlohmann::json receipts = nlohmann::json::array();
      for (const auto& r : report->receipts) receipts.push_back(ReceiptToJson(r));
      ctx.PrintJson({{"dry_run", report->dry_run},
                     {"orphan_keys", OrphanKeysToJson(report->orphan_keys)},
                     {"receipts", std::move(receipts)}});
    } else {
      for (const auto& o : report->orphan_keys) {
        ctx.out() << fmt::format("{}  internal_id {} key_version {} column family {} {}\n",
                                 report->dry_run ? "ORPHAN KEY" : "DESTROYED", o.internal_id,
                                 o.key_version, o.column_family,
                                 o.has_column_family ? fmt::format("in shard {}", o.shard)
                                                     : std::string("absent"));
      }
      for (const auto& r : report->receipts) PrintReceipt(ctx.out(), r);
    }
    if (report->orphan_keys.empty()) {
      ctx.err() << "no orphan keys: every data key belongs to a live tenant\n";
    } else if (report->dry_run) {
      ctx.err() << report->orphan_keys.size()
                << " orphan key(s); run again with --yes to destroy them (or restore the "
                   "registry that owned them)\n"
                << "an orphan whose family is absent may own data in another copy of this store "
                   "on the same key directory: destroy it only if this store replaced that copy\n";
    } else {
      ctx.err() << "destroyed " << report->orphan_keys.size() << " orphan key(s); "
                << report->receipts.size() << " receipt(s)\n";
    }
    return {};
  }

 private:
  bool yes_ = false;
  std::vector<uint64_t> with_data_;
};

// callvault keys status: the key provider, its KEK generations, and every
// data key the store destroyed (from the signed receipts) with when it
// became, or becomes, irrecoverable (issue 15 item 5). Read-only open.
class KeysStatusCommand final : public Command {
 public:
  std::string Group() const override { return "keys"; }
  std::string Name() const override { return "status"; }
  std::string Help() const override {
    return "Show the key provider, its KEK generations and every destroyed data key with when it "
           "is irrecoverable";
  }
  void AddFlags(CLI::App*) override {}
  RunResult Run(Context& ctx) override {
    std::shared_ptr<KeyProvider> kp;
    auto store = ctx.OpenStore(OpenMode::kReadOnly, &kp);
    if (!store.ok()) return store.status();
    auto keks = kp->ListKeks();
    if (!keks.ok()) return keks.status();
    auto stats = (*store)->Stats();
    if (!stats.ok()) return stats.status();
    auto receipts = (*store)->ListReceipts();
    if (!receipts.ok()) return receipts.status();
    const int64_t now = std::chrono::duration_cast<std::chrono::microseconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count();
    // "irrecoverable" once the provider's date has passed; before it, a KMS
    // with soft delete can still bring the key back.
    auto state = [now](const Receipt& r) -> std::string {
      if (r.irrecoverable_after == 0) return "destroyed (date not recorded)";
      if (r.irrecoverable_after <= now) return "irrecoverable";
      return "recoverable by the provider until " + FormatTime(r.irrecoverable_after);
    };
    std::vector<const Receipt*> destroyed;
    for (const auto& r : *receipts) {
      if (!r.key_versions_destroyed.empty()) destroyed.push_back(&r);
    }
    if (ctx.json()) {
      nlohmann::json list = nlohmann::json::array();
      for (const Receipt* r : destroyed) {
        list.push_back({{"receipt", r->sequence},
                        {"kind", r->kind},
                        {"tenant_id", r->tenant_id},
                        {"tenant_internal_id", r->tenant_internal_id},
                        {"key_versions", r->key_versions_destroyed},
                        {"kek_generation_retired", r->kek_generation_retired},
                        {"time", FormatTime(r->time)},
                        {"irrecoverable_after",
                         r->irrecoverable_after != 0 ? FormatTime(r->irrecoverable_after) : "-"},
                        {"state", state(*r)}});
      }
      ctx.PrintJson({{"provider", kp->Describe()},
                     {"kek_generations", *keks},
                     {"kek_generation_current", stats->kek_generation},
                     {"keyring_generation", stats->keyring_generation},
                     {"live_tenants", stats->tenants.size()},
                     {"orphan_keys", stats->orphan_keys.size()},
                     {"destroyed", std::move(list)}});
      return {};
    }
    std::string gens;
    for (uint32_t g : *keks) gens += (gens.empty() ? "" : " ") + std::to_string(g);
    PrintFields(ctx.out(), {{"provider", kp->Describe()},
                            {"kek_generations", gens.empty() ? "-" : gens},
                            {"kek_generation_current", std::to_string(stats->kek_generation)},
                            {"keyring_generation", std::to_string(stats->keyring_generation)},
                            {"live_tenants", std::to_string(stats->tenants.size())},
                            {"orphan_keys", std::to_string(stats->orphan_keys.size())},
                            {"destroyed_keys", std::to_string(destroyed.size())}});
    if (destroyed.empty()) return {};
    Table table({"RECEIPT", "KIND", "TENANT", "KEY_VERSIONS", "KEK_RETIRED", "DESTROYED_AT", "STATE"});
    for (const Receipt* r : destroyed) {
      std::string versions;
      for (uint32_t v : r->key_versions_destroyed) {
        versions += (versions.empty() ? "" : ",") + std::to_string(v);
      }
      table.Add({std::to_string(r->sequence), r->kind,
                 r->tenant_id.empty() ? "(internal id " + std::to_string(r->tenant_internal_id) + ")"
                                      : r->tenant_id,
                 versions, std::to_string(r->kek_generation_retired), FormatTime(r->time), state(*r)});
    }
    table.Print(ctx.out());
    return {};
  }
};

// callvault tenant reinstate ID: a tenant recovery quarantined is live again.
class TenantReinstateCommand final : public Command {
 public:
  std::string Group() const override { return "tenant"; }
  std::string Name() const override { return "reinstate"; }
  std::string Help() const override {
    return "Make a tenant that recovery quarantined (registry contradicted by its key or data) "
           "live again";
  }
  void AddFlags(CLI::App* app) override {
    app->add_option("ID", tenant_id_, "The tenant id")->required();
  }
  RunResult Run(Context& ctx) override {
    auto store = ctx.OpenStore();
    if (!store.ok()) return store.status();
    Status s = (*store)->ReinstateTenant(tenant_id_);
    if (!s.ok()) return s;
    ctx.err() << "reinstated tenant " << tenant_id_ << '\n';
    return {};
  }

 private:
  std::string tenant_id_;
};

// callvault tenant accept-damage ID: the operator accepts a damaged
// tenant's loss (decision 0014); it is served again with what survived.
class TenantAcceptDamageCommand final : public Command {
 public:
  std::string Group() const override { return "tenant"; }
  std::string Name() const override { return "accept-damage"; }
  std::string Help() const override {
    return "Serve a damaged tenant again with what survived, accepting the loss (audited); "
           "else restore it or purge it";
  }
  void AddFlags(CLI::App* app) override {
    app->add_option("ID", tenant_id_, "The tenant id")->required();
  }
  RunResult Run(Context& ctx) override {
    auto store = ctx.OpenStore();
    if (!store.ok()) return store.status();
    Status s = (*store)->AcceptTenantDamage(tenant_id_);
    if (!s.ok()) return s;
    ctx.err() << "accepted the damage of tenant " << tenant_id_ << '\n';
    return {};
  }

 private:
  std::string tenant_id_;
};

// The store's move identity (Store::MoveIdentity): what a source needs to
// seal a tenant's data key to this store and verify its replies. Public;
// read-only open (writable once, if the store has no signing key yet).
class IdentityCommand final : public Command {
 public:
  std::string Name() const override { return "identity"; }
  std::string Help() const override {
    return "Print this store's move identity (store id, region, public keys for sealed data keys and "
           "signed replies)";
  }
  void AddFlags(CLI::App*) override {}
  RunResult Run(Context& ctx) override {
    auto store = ctx.OpenStore(OpenMode::kReadOnly);
    if (!store.ok()) return store.status();
    auto id = (*store)->MoveIdentity();
    if (id.status().code() == Code::kFailedPrecondition) {
      // No receipt-signing key yet (the identity names it): a writable open
      // creates it. Read-only otherwise, so a running store can be asked.
      store->reset();
      store = ctx.OpenStore(OpenMode::kWrite);
      if (!store.ok()) return store.status();
      id = (*store)->MoveIdentity();
    }
    if (!id.ok()) return id.status();
    if (ctx.json()) {
      ctx.PrintJson({{"identity", *id}});
    } else {
      ctx.out() << *id << '\n';
    }
    return {};
  }
};

// The stores this store accepts tenant moves from (decision 0062): a list
// kept in the key directory, of the sources' `callvault identity` lines.
class PeerTrustCommand final : public Command {
 public:
  std::string Group() const override { return "peer"; }
  std::string Name() const override { return "trust"; }
  std::string Help() const override {
    return "Accept tenant moves from the store with this identity (its `callvault identity`)";
  }
  void AddFlags(CLI::App* app) override {
    app->add_option("IDENTITY", identity_, "The source store's identity (cvmove2:...)")->required();
  }
  RunResult Run(Context& ctx) override {
    auto store = ctx.OpenStore(OpenMode::kWrite);
    if (!store.ok()) return store.status();
    Status s = (*store)->TrustMovePeer(identity_);
    if (!s.ok()) return s;
    if (ctx.json()) ctx.PrintJson({{"trusted", identity_}});
    ctx.err() << "trusted: tenant moves from this store are accepted\n";
    return {};
  }

 private:
  std::string identity_;
};

class PeerListCommand final : public Command {
 public:
  std::string Group() const override { return "peer"; }
  std::string Name() const override { return "list"; }
  std::string Help() const override { return "List the stores this store accepts tenant moves from"; }
  void AddFlags(CLI::App*) override {}
  RunResult Run(Context& ctx) override {
    auto store = ctx.OpenStore(OpenMode::kReadOnly);
    if (!store.ok()) return store.status();
    auto peers = (*store)->ListMovePeers();
    if (!peers.ok()) return peers.status();
    if (ctx.json()) {
      ctx.PrintJson({{"peers", *peers}});
    } else {
      for (const auto& p : *peers) ctx.out() << p << '\n';
    }
    return {};
  }
};

class PeerRemoveCommand final : public Command {
 public:
  std::string Group() const override { return "peer"; }
  std::string Name() const override { return "remove"; }
  std::string Help() const override { return "Stop accepting tenant moves from a store"; }
  void AddFlags(CLI::App* app) override {
    app->add_option("PEER", peer_, "The store's identity (cvmove2:...) or store id (hex)")->required();
  }
  RunResult Run(Context& ctx) override {
    auto store = ctx.OpenStore(OpenMode::kWrite);
    if (!store.ok()) return store.status();
    Status s = (*store)->RemoveMovePeer(peer_);
    if (!s.ok()) return s;
    if (ctx.json()) ctx.PrintJson({{"removed", peer_}});
    ctx.err() << "removed: tenant moves from this store are refused\n";
    return {};
  }

 private:
  std::string peer_;
};

}  // namespace

void AddInspectCommands(std::vector<std::unique_ptr<Command>>* out) {
  out->push_back(std::make_unique<VerifyCommand>());
  out->push_back(std::make_unique<StatsCommand>());
  out->push_back(std::make_unique<KeysReconcileCommand>());
  out->push_back(std::make_unique<KeysStatusCommand>());
  out->push_back(std::make_unique<TenantReinstateCommand>());
  out->push_back(std::make_unique<TenantAcceptDamageCommand>());
  out->push_back(std::make_unique<IdentityCommand>());
  out->push_back(std::make_unique<PeerTrustCommand>());
  out->push_back(std::make_unique<PeerListCommand>());
  out->push_back(std::make_unique<PeerRemoveCommand>());
}

}  // namespace callvault::cli
