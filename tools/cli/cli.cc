#include "tools/cli/cli.h"

#include <CLI/CLI.hpp>
#include <cstring>
#include <exception>
#include <filesystem>
#include <map>
#include <ostream>

#include "tools/cli/command.h"
#include "tools/cli/exit_codes.h"

#ifndef CALLVAULT_VERSION
#define CALLVAULT_VERSION "unknown"
#endif

namespace callvault::cli {

namespace {

constexpr char kFooter[] =
    "Exit codes: 0 ok, 64 usage, 65 invalid input, 66 not found or tenant purged,\n"
    "69 unavailable, 70 internal, 73 already exists, 74 I/O error, 75 store open in\n"
    "another process (retry later), 76 corruption (verify failed), 77 key error,\n"
    "78 failed precondition. See docs/cli.md.";

std::string GroupHelp(const std::string& group) {
  if (group == "tenant") {
    return "Create, list, show and purge tenants; churn, retention and legal holds";
  }
  if (group == "call") return "Put, get, list and delete calls; transcript windows, pins, holds";
  if (group == "recording") return "Store, read, list and delete a call's recordings (streamed)";
  if (group == "receipts") {
    return "Signed receipts (purge, erasure, retention): list, show, verify the chain, public key";
  }
  if (group == "retention") return "Apply retention now (and the scheduled purges)";
  if (group == "purges") return "Run the scheduled purges of churned tenants";
  if (group == "audit") return "The hash-chained audit log: list events, verify the chain";
  if (group == "raw") return "RocksDB's own ldb and sst_dump on the store's files";
  if (group == "keys") return "Data keys no live tenant owns: list them, destroy them with receipts";
  if (group == "peer") {
    return "The stores this one accepts tenant moves from: trust, list, remove their identities";
  }
  if (group == "tombstones") return "The tombstone log: drop the entries no kept backup needs";
  return "";
}

std::string AbsolutePath(const std::string& path) {
  if (path.empty()) return path;
  std::error_code ec;
  std::filesystem::path p = std::filesystem::absolute(path, ec);
  if (ec) return path;
  std::string s = p.lexically_normal().string();
  while (s.size() > 1 && s.back() == '/') s.pop_back();
  return s;
}

void PrintError(Context& ctx, const std::string& code_name, const std::string& message,
                bool print_json) {
  ctx.err() << "callvault: " << code_name << ": " << message << '\n';
  if (print_json) ctx.PrintJson({{"error", {{"code", code_name}, {"message", message}}}});
}

int Finish(Context& ctx, const RunResult& r) {
  if (r.exit_override() >= 0) return r.exit_override();
  if (r.ok()) return kExitOk;
  if (r.usage()) {
    PrintError(ctx, "usage", r.usage_message(), ctx.json());
    return kExitUsage;
  }
  PrintError(ctx, CodeName(r.status().code()), r.status().message(), ctx.json() && !r.reported());
  if (ctx.store_busy()) return kExitTempFail;
  return ExitCodeFor(r.status().code());
}

RunResult RunGuarded(Command* command, Context& ctx) {
  try {
    return command->Run(ctx);
  } catch (const std::exception& e) {
    return Status::Internal(std::string("unexpected exception: ") + e.what());
  }
}

// The CLI11 app and the verbs registered on it.
struct Parser {
  CLI::App app{"callvault: operate and inspect an encrypted, tenant-partitioned call store.",
               "callvault"};
  std::vector<std::unique_ptr<Command>> commands = AllCommands();
  std::vector<std::pair<CLI::App*, Command*>> leaves;

  explicit Parser(GlobalFlags* flags) {
    app.fallthrough();
    app.require_subcommand(1);
    app.set_version_flag("--version", CALLVAULT_VERSION);
    app.footer(kFooter);
    app.add_option("--db", flags->db, "The store directory. Required by every command but demo.");
    app.add_option("--keys", flags->keys,
                   "The key directory. Default: <db>.keys, beside the store (never inside it).");
    app.add_option("--key-provider", flags->key_provider,
                   "Where the KEKs and the signing key live: file (in --keys) or pkcs11 (a token: "
                   "--pkcs11-module, --pkcs11-token, --pkcs11-pin-*). Default: pkcs11 if "
                   "--pkcs11-module is given, else file.")
        ->check(CLI::IsMember({"file", "pkcs11"}));
    app.add_option("--pkcs11-module", flags->pkcs11_module,
                   "Keep the KEKs and the signing key in a PKCS#11 token: the module (.so). "
                   "--keys is then the local state directory. Default: none (key files).");
    app.add_option("--pkcs11-token", flags->pkcs11_token, "The token's label (with --pkcs11-module).");
    app.add_option("--pkcs11-pin-file", flags->pkcs11_pin_file,
                   "A file holding the token's user PIN (mode 0600).");
    app.add_option("--pkcs11-pin-env", flags->pkcs11_pin_env,
                   "The NAME of an environment variable holding the PIN (never the PIN itself).");
    app.add_flag("--json", flags->json, "Print one JSON document on stdout. Default: text.");
    app.add_flag("--progress", flags->progress,
                 "Show the progress of verify, erase, retention run, purges run and export on "
                 "stderr even when it is not a terminal. Default: only on a terminal.");
    app.add_flag("--reveal", flags->reveal,
                 "Show personal data (names, emails, phones, titles, transcript and summary "
                 "text). Default: redacted.");
    std::map<std::string, CLI::App*> groups;
    for (auto& c : commands) {
      CLI::App* parent = &app;
      if (!c->Group().empty()) {
        CLI::App*& g = groups[c->Group()];
        if (g == nullptr) {
          g = app.add_subcommand(c->Group(), GroupHelp(c->Group()));
          g->require_subcommand(1);
        }
        parent = g;
      }
      CLI::App* sub = parent->add_subcommand(c->Name(), c->Help());
      if (c->PassThrough()) {  // everything after the verb goes to the tool
        sub->prefix_command();
        sub->allow_extras();
        sub->fallthrough(false);
      }
      c->AddFlags(sub);
      leaves.emplace_back(sub, c.get());
    }
  }

  // A usage message for a parse error; names an unknown verb when that is
  // what went wrong.
  std::string UsageMessage(const CLI::ParseError& e) {
    const std::string hint = " (see callvault --help)";
    if (dynamic_cast<const CLI::RequiredError*>(&e) == nullptr) return e.what() + hint;
    std::vector<std::string> rest = app.remaining(true);
    if (!rest.empty()) {
      const char* what = rest.front().rfind('-', 0) == 0 ? "unknown option" : "unknown command";
      return std::string(what) + " '" + rest.front() + "'" + hint;
    }
    // The deepest verb given; if it needs a sub-verb, name the choices.
    CLI::App* cur = &app;
    while (!cur->get_subcommands().empty()) cur = cur->get_subcommands().front();
    if (cur->get_require_subcommand_min() > 0) {
      std::string names;
      for (const CLI::App* s : cur->get_subcommands([](CLI::App*) { return true; })) {
        names += (names.empty() ? "" : ", ") + s->get_name();
      }
      std::string who = cur == &app ? "callvault" : "'" + cur->get_name() + "'";
      return who + " needs a command: " + names + hint;
    }
    return e.what() + hint;
  }
};

}  // namespace

int RunCli(int argc, char** argv, std::ostream& out, std::ostream& err) {
  GlobalFlags flags;
  Parser parser(&flags);
  if (argc <= 1) {
    err << parser.app.help();
    return kExitUsage;
  }
  try {
    parser.app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    out << parser.app.help();
    return kExitOk;
  } catch (const CLI::CallForAllHelp&) {
    out << parser.app.help("", CLI::AppFormatMode::All);
    return kExitOk;
  } catch (const CLI::CallForVersion&) {
    out << "callvault " << CALLVAULT_VERSION << '\n';
    return kExitOk;
  } catch (const CLI::ParseError& e) {
    for (int i = 1; i < argc; ++i) flags.json |= std::strcmp(argv[i], "--json") == 0;
    Context ctx(flags, out, err);
    PrintError(ctx, "usage", parser.UsageMessage(e), ctx.json());
    return kExitUsage;
  }

  // Absolute paths: the engine resolves relative ones with Env::GetAbsolutePath,
  // which in RocksDB 7.8 returns the working directory without the path.
  flags.db = AbsolutePath(flags.db);
  flags.keys = AbsolutePath(flags.keys);
  flags.pkcs11_pin_file = AbsolutePath(flags.pkcs11_pin_file);
  Context ctx(flags, out, err);
  for (auto& [sub, command] : parser.leaves) {
    if (!sub->parsed()) continue;
    if (command->NeedsStore() && flags.db.empty() && !command->PassThrough()) {
      return Finish(ctx, RunResult::Usage("--db DIR is required"));
    }
    if (command->PassThrough()) command->SetPassThroughArgs(sub->remaining());
    RunResult r = RunGuarded(command, ctx);
    out.flush();
    return Finish(ctx, r);
  }
  return Finish(ctx, RunResult::Usage("no command given (see callvault --help)"));
}

}  // namespace callvault::cli
