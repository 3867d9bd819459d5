// callvault receipts list | show | verify | pubkey.
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <ostream>

#include "tools/cli/command.h"
#include "tools/cli/format.h"

namespace callvault::cli {

namespace {

class ReceiptsListCommand final : public Command {
 public:
  std::string Group() const override { return "receipts"; }
  std::string Name() const override { return "list"; }
  std::string Help() const override {
    return "List the receipts (purges, erasures, retention sweeps), oldest first";
  }
  void AddFlags(CLI::App*) override {}
  RunResult Run(Context& ctx) override {
    auto store = ctx.OpenStore(OpenMode::kReadOnly);
    if (!store.ok()) return store.status();
    auto receipts = (*store)->ListReceipts();
    if (!receipts.ok()) return receipts.status();
    if (ctx.json()) {
      nlohmann::json a = nlohmann::json::array();
      for (const auto& r : *receipts) a.push_back(ReceiptToJson(r));
      ctx.PrintJson({{"receipts", std::move(a)}});
    } else {
      PrintReceiptTable(ctx.out(), *receipts);
    }
    return {};
  }
};

class ReceiptsShowCommand final : public Command {
 public:
  std::string Group() const override { return "receipts"; }
  std::string Name() const override { return "show"; }
  std::string Help() const override { return "Print one receipt in full"; }
  void AddFlags(CLI::App* app) override {
    app->add_option("SEQ", sequence_, "The receipt's sequence number (1, 2, ...)")->required();
  }
  RunResult Run(Context& ctx) override {
    auto store = ctx.OpenStore(OpenMode::kReadOnly);
    if (!store.ok()) return store.status();
    auto receipts = (*store)->ListReceipts();
    if (!receipts.ok()) return receipts.status();
    for (const auto& r : *receipts) {
      if (r.sequence != sequence_) continue;
      if (ctx.json()) {
        ctx.PrintJson(ReceiptToJson(r));
      } else {
        PrintReceipt(ctx.out(), r);
      }
      return {};
    }
    return Status::NotFound(fmt::format("no receipt with sequence {}", sequence_));
  }

 private:
  uint64_t sequence_ = 0;
};

// The signing key is made on first use, which writes the key directory: a
// read-only open that finds none yet reopens the store writable to make it.
Result<std::string> PublicKey(Context& ctx, std::unique_ptr<Store>* store) {
  auto key = (*store)->SigningPublicKey();
  if (key.ok() || key.status().code() != Code::kNotFound || !(*store)->read_only()) return key;
  store->reset();
  ctx.err() << "callvault: note: no receipt-signing key yet; opening the store writable to "
               "create it\n";
  auto writable = ctx.OpenStore(OpenMode::kWrite);
  if (!writable.ok()) return writable.status();
  *store = std::move(*writable);
  return (*store)->SigningPublicKey();
}

class ReceiptsVerifyCommand final : public Command {
 public:
  std::string Group() const override { return "receipts"; }
  std::string Name() const override { return "verify"; }
  std::string Help() const override {
    return "Check every receipt's signature and the hash chain (exit 76 on failure)";
  }
  void AddFlags(CLI::App*) override {}
  RunResult Run(Context& ctx) override {
    auto store = ctx.OpenStore(OpenMode::kReadOnly);
    if (!store.ok()) return store.status();
    auto key = PublicKey(ctx, &*store);
    if (!key.ok()) return key.status();
    auto receipts = (*store)->ListReceipts();
    if (!receipts.ok()) {
      // A receipt the store counts but cannot find, or whose sealed record
      // fails authentication, is a broken chain, not a missing store.
      const Code code = receipts.status().code();
      if (code != Code::kNotFound && code != Code::kCorruption) return receipts.status();
      Status s = Status::Corruption(
          "the receipts cannot be read (one is missing or tampered "
          "with at rest): " +
          receipts.status().message());
      if (ctx.json()) {
        ctx.PrintJson({{"ok", false},
                       {"receipts", nullptr},
                       {"public_key", Hex(*key)},
                       {"message", s.message()}});
      } else {
        ctx.out() << "FAILED  " << s.message() << '\n';
      }
      return RunResult::Reported(s);
    }
    Status s = VerifyReceiptChain(*receipts, *key);
    if (ctx.json()) {
      ctx.PrintJson({{"ok", s.ok()},
                     {"receipts", receipts->size()},
                     {"public_key", Hex(*key)},
                     {"message", s.ok() ? "" : s.message()}});
    } else if (s.ok()) {
      ctx.out() << fmt::format("OK: {} receipt(s), signatures and hash chain verified\n",
                               receipts->size());
      ctx.out() << "public_key  " << Hex(*key) << '\n';
    } else {
      ctx.out() << "FAILED  " << s.message() << '\n';
    }
    if (!s.ok()) return RunResult::Reported(s);
    return {};
  }
};

class ReceiptsPubkeyCommand final : public Command {
 public:
  std::string Group() const override { return "receipts"; }
  std::string Name() const override { return "pubkey"; }
  std::string Help() const override {
    return "Print the store's Ed25519 receipt-signing public key (hex)";
  }
  void AddFlags(CLI::App*) override {}
  RunResult Run(Context& ctx) override {
    auto store = ctx.OpenStore(OpenMode::kReadOnly);
    if (!store.ok()) return store.status();
    auto key = PublicKey(ctx, &*store);
    if (!key.ok()) return key.status();
    if (ctx.json()) {
      ctx.PrintJson({{"public_key", Hex(*key)}});
    } else {
      ctx.out() << Hex(*key) << '\n';
    }
    return {};
  }
};

}  // namespace

void AddReceiptCommands(std::vector<std::unique_ptr<Command>>* out) {
  out->push_back(std::make_unique<ReceiptsListCommand>());
  out->push_back(std::make_unique<ReceiptsShowCommand>());
  out->push_back(std::make_unique<ReceiptsVerifyCommand>());
  out->push_back(std::make_unique<ReceiptsPubkeyCommand>());
}

}  // namespace callvault::cli
