// callvault tenant create | list | show | purge.
#include <CLI/CLI.hpp>
#include <ostream>

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
      ctx.PrintJson(TenantToJson(*t));
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
    auto store = ctx.OpenStore();
    if (!store.ok()) return store.status();
    auto tenants = (*store)->ListTenants();
    if (!tenants.ok()) return tenants.status();
    if (ctx.json()) {
      nlohmann::json a = nlohmann::json::array();
      for (const auto& t : *tenants) a.push_back(TenantToJson(t));
      ctx.PrintJson({{"tenants", std::move(a)}});
    } else {
      PrintTenantTable(ctx.out(), *tenants);
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
    auto store = ctx.OpenStore();
    if (!store.ok()) return store.status();
    auto t = (*store)->DescribeTenant(tenant_id_);
    if (!t.ok()) return t.status();
    std::optional<uint64_t> calls;
    if (t->state == TenantState::kActive) {
      auto n = (*store)->CountCalls(tenant_id_);
      if (!n.ok()) return n.status();
      calls = *n;
    }
    if (ctx.json()) {
      nlohmann::json j = TenantToJson(*t);
      if (calls) j["calls"] = *calls;
      ctx.PrintJson(j);
    } else {
      PrintTenant(ctx.out(), *t, calls);
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

}  // namespace

void AddTenantCommands(std::vector<std::unique_ptr<Command>>* out) {
  out->push_back(std::make_unique<TenantCreateCommand>());
  out->push_back(std::make_unique<TenantListCommand>());
  out->push_back(std::make_unique<TenantShowCommand>());
  out->push_back(std::make_unique<TenantPurgeCommand>());
}

}  // namespace callvault::cli
