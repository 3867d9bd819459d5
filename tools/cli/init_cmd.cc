// callvault init: creates a store and its key directory.
#include <CLI/CLI.hpp>
#include <filesystem>
#include <ostream>

#include "callvault/key_provider.h"
#include "tools/cli/command.h"
#include "tools/cli/format.h"

namespace callvault::cli {

namespace {

// Removes `dir` if it holds nothing but the writer lock's LOCK file.
void RemoveIfKeyless(const std::string& dir) {
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    if (e.path().filename() != "LOCK") return;
  }
  if (ec) return;
  std::filesystem::remove(dir + "/LOCK", ec);
  std::filesystem::remove(dir, ec);
}

class InitCommand final : public Command {
 public:
  std::string Name() const override { return "init"; }
  std::string Help() const override {
    return "Create a new store in --db (a new or empty directory) and its keys in --keys";
  }
  void AddFlags(CLI::App* app) override {
    app->add_option("--region", region_,
                    "The store's region, fixed for its life ([a-z0-9-]+). Default: default");
    app->add_option("--max-tenants-per-shard", max_tenants_per_shard_,
                    "Tenants per RocksDB instance before a new shard is created. Default: 128")
        ->check(CLI::Range(1, 100000));
  }

  RunResult Run(Context& ctx) override {
    // A store that opens already exists; NotFound means there is none yet
    // (an empty directory, or an init that crashed before it finished).
    auto existing = ctx.OpenStore();
    if (existing.ok()) {
      return Status::AlreadyExists("a callvault store exists in " + ctx.flags().db + " already");
    }
    if (existing.status().code() != Code::kNotFound) return existing.status();

    std::error_code ec;
    const bool keys_existed = std::filesystem::exists(ctx.KeyDir(), ec) || ec;
    auto kp = ctx.MakeKeyProvider(/*create_if_missing=*/true);
    if (!kp.ok()) return kp.status();
    Options o;
    o.key_provider = *kp;
    o.create_if_missing = true;
    o.region = region_;
    o.max_tenants_per_shard = max_tenants_per_shard_;
    auto store = Store::Open(o, ctx.flags().db);
    if (!store.ok()) {
      // A refused init leaves no directory behind: the key directory this
      // init made goes again if it holds no key (the store directory is
      // removed by Store::Open itself).
      if (!keys_existed) RemoveIfKeyless(ctx.KeyDir());
      return store.status();
    }
    auto stats = (*store)->Stats();
    if (!stats.ok()) return stats.status();
    if (ctx.json()) {
      ctx.PrintJson({{"store", ctx.flags().db},
                     {"keys", ctx.KeyDir()},
                     {"region", stats->region},
                     {"store_id", stats->store_id},
                     {"max_tenants_per_shard", max_tenants_per_shard_}});
    } else {
      PrintFields(ctx.out(), {{"store", ctx.flags().db},
                              {"keys", ctx.KeyDir()},
                              {"region", stats->region},
                              {"store_id", stats->store_id},
                              {"max_tenants_per_shard", std::to_string(max_tenants_per_shard_)}});
    }
    ctx.err() << "created a store; keep its key directory apart from it: a copy of the store "
                 "without the keys holds no readable data\n";
    return {};
  }

 private:
  std::string region_;
  uint32_t max_tenants_per_shard_ = Options().max_tenants_per_shard;
};

}  // namespace

void AddInitCommands(std::vector<std::unique_ptr<Command>>* out) {
  out->push_back(std::make_unique<InitCommand>());
}

}  // namespace callvault::cli
