// callvault verify | stats.
#include <fmt/format.h>

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
    return "Decrypt and check every record of one or all live tenants (exit 76 on any failure)";
  }
  void AddFlags(CLI::App* app) override {
    app->add_option("--tenant", tenant_id_, "Verify this tenant only. Default: every live tenant");
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
    if (report->records_failed != 0) {
      return RunResult::Reported(Status::Corruption(fmt::format(
          "verify failed: {} record(s) did not decrypt or decode", report->records_failed)));
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
  void AddFlags(CLI::App*) override {}
  RunResult Run(Context& ctx) override {
    auto store = ctx.OpenStore(OpenMode::kReadOnly);
    if (!store.ok()) return store.status();
    auto stats = (*store)->Stats();
    if (!stats.ok()) return stats.status();
    if (ctx.json()) {
      ctx.PrintJson(StatsToJson(*stats));
    } else {
      PrintStats(ctx.out(), *stats);
    }
    return {};
  }
};

}  // namespace

void AddInspectCommands(std::vector<std::unique_ptr<Command>>* out) {
  out->push_back(std::make_unique<VerifyCommand>());
  out->push_back(std::make_unique<StatsCommand>());
}

}  // namespace callvault::cli
