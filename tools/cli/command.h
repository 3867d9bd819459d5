// The callvault CLI as a library, shaped like RocksDB's LDBTool: one class
// per verb, each with Name(), Help(), AddFlags() and Run(); main() only
// dispatches (see cli.h). Verbs print data on Context::out() (stdout) and
// messages and progress on Context::err() (stderr); with --json, stdout
// holds exactly one JSON document. docs/cli.md describes every verb.
#ifndef CALLVAULT_TOOLS_CLI_COMMAND_H_
#define CALLVAULT_TOOLS_CLI_COMMAND_H_

#include <chrono>
#include <cstdint>
#include <iosfwd>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "callvault/status.h"
#include "callvault/store.h"

namespace CLI {
class App;
}

namespace callvault::cli {

// The flags that come before (or, except for `raw`, after) the verb.
struct GlobalFlags {
  std::string db;       // --db: the store directory. Default: none.
  std::string keys;     // --keys: the key directory. Default: "<db>.keys".
  bool json = false;    // --json: machine-readable output. Default: off.
  bool reveal = false;  // --reveal: show personal data. Default: off (redacted).
  // --progress: progress lines on stderr even when it is not a terminal.
  // Default: off (progress only on a terminal).
  bool progress = false;
  // The PKCS#11 key provider (docs/cli.md "Keys in an HSM"): given a module,
  // KEKs and the signing key live in that token and --keys names the local
  // state directory (keyrings, tombstone log, writer lock). The PIN only
  // from a file or an environment variable: never a flag value (`ps`).
  std::string key_provider;     // --key-provider file|pkcs11 ("": pkcs11 iff --pkcs11-module)
  std::string pkcs11_module;    // --pkcs11-module PATH
  std::string pkcs11_token;     // --pkcs11-token LABEL
  std::string pkcs11_pin_file;  // --pkcs11-pin-file FILE
  std::string pkcs11_pin_env;   // --pkcs11-pin-env VAR
};

// The default key directory of a store: "<db>.keys", beside the store and
// never inside it (Store::Open refuses a key directory inside the store).
std::string DefaultKeyDir(const std::string& db);

// What a verb hands back to the dispatcher.
class [[nodiscard]] RunResult {
 public:
  RunResult() = default;                                    // success, exit 0
  RunResult(Status status) : status_(std::move(status)) {}  // NOLINT: implicit by design
  // A command-line mistake the parser cannot see (exit 64).
  static RunResult Usage(std::string message);
  // A failure whose details the verb has printed on stdout already (with
  // --json, no second JSON document is printed); the dispatcher still
  // prints the one-line message on stderr and exits with its code.
  static RunResult Reported(Status status);
  // An exit code chosen by the verb (the embedded RocksDB tools).
  static RunResult Exit(int code);

  bool ok() const { return !usage_ && status_.ok() && exit_ < 0; }
  bool usage() const { return usage_; }
  bool reported() const { return reported_; }
  int exit_override() const { return exit_; }
  const Status& status() const { return status_; }
  const std::string& usage_message() const { return usage_message_; }

 private:
  Status status_;
  bool usage_ = false;
  bool reported_ = false;
  int exit_ = -1;
  std::string usage_message_;
};

// How a verb opens the store: commands that only read open it read-only
// (Options::read_only: no lock taken, nothing written), so they work while
// a service holds the store open; commands that write open it writable.
enum class OpenMode { kWrite, kReadOnly };

// The state a verb runs with: the global flags and the output streams.
class Context {
 public:
  Context(GlobalFlags flags, std::ostream& out, std::ostream& err)
      : flags_(std::move(flags)), out_(out), err_(err) {}

  const GlobalFlags& flags() const { return flags_; }
  bool json() const { return flags_.json; }
  bool reveal() const { return flags_.reveal; }
  std::ostream& out() { return out_; }
  std::ostream& err() { return err_; }
  // True when err() is the process's stderr and that is a terminal: the
  // only case in which verbs draw progress bars.
  bool ErrIsTerminal() const;
  // True when out() is the process's stdout and that is a terminal.
  bool OutIsTerminal() const;
  // Whether long operations (verify, erase, retention run, purges run,
  // export) show their progress on err(): --progress, or err() a terminal.
  bool ShowProgress() const { return flags_.progress || ErrIsTerminal(); }
  // Draws one progress report on err(): on a terminal a bar redrawn in
  // place (at most every 100 ms), otherwise a plain line (at most every
  // second); the start and the end always. Never on out().
  void PrintProgress(const std::string& operation, const std::string& unit, uint64_t done,
                     uint64_t total, bool finished) const;

  // --keys, or DefaultKeyDir(--db).
  std::string KeyDir() const;
  // The key provider the flags name: the file provider on KeyDir(), or the
  // PKCS#11 provider (token from --pkcs11-*, state directory KeyDir()).
  // kNotFound if KeyDir() does not exist and !create_if_missing.
  Result<std::shared_ptr<KeyProvider>> MakeKeyProvider(bool create_if_missing) const;
  // Opens the existing store named by --db with the keys of KeyDir().
  // kNotFound if there is no store there; kKeyError if the key directory
  // does not exist. kReadOnly notes on stderr when the store needs recovery
  // that a read-only open cannot do. kWrite on a store that another process
  // holds open: kFailedPrecondition naming that process if known, and the
  // command exits with 75 (EX_TEMPFAIL, store_busy()).
  // `provider`, if given, receives the key provider the store was opened with.
  Result<std::unique_ptr<Store>> OpenStore(OpenMode mode = OpenMode::kWrite,
                                           std::shared_ptr<KeyProvider>* provider = nullptr) const;
  // A writable open failed because another process holds the store.
  bool store_busy() const { return store_busy_; }
  // Marks the command busy (exit 75, as a store held by another process)
  // when `s` is the key provider's refusal of its writer lock held by
  // another process ("key directory D is in use by another process"):
  // for the commands that take that lock without a store (restore).
  void NoteKeyDirBusy(const Status& s) const;
  // Prints `value` on stdout, indented by two spaces, invalid UTF-8 replaced.
  void PrintJson(const nlohmann::json& value);

 private:
  GlobalFlags flags_;
  std::ostream& out_;
  std::ostream& err_;
  mutable bool store_busy_ = false;
  mutable std::chrono::steady_clock::time_point progress_last_{};
  mutable bool progress_drawn_ = false;  // a bar is on the terminal's line
};

// One verb. Group() is "" for a top-level verb ("init", "verify", "refs",
// ...) or the noun it belongs to ("tenant", "call", "recording", "receipts",
// "retention", "purges", "audit", "raw").
class Command {
 public:
  virtual ~Command() = default;
  virtual std::string Group() const { return ""; }
  virtual std::string Name() const = 0;
  // One line for --help.
  virtual std::string Help() const = 0;
  // Registers the verb's own flags and positional arguments on `app`,
  // binding them to members of the command.
  virtual void AddFlags(CLI::App* app) = 0;
  // False for verbs that need no --db (demo).
  virtual bool NeedsStore() const { return true; }
  // True for verbs that take their arguments verbatim (raw ldb, raw sst_dump).
  virtual bool PassThrough() const { return false; }
  // Receives the arguments after the verb when PassThrough().
  virtual void SetPassThroughArgs(std::vector<std::string> args) {}
  virtual RunResult Run(Context& ctx) = 0;
};

// Every verb, in the order --help lists them.
std::vector<std::unique_ptr<Command>> AllCommands();

// Factories, one per file of verbs.
void AddInitCommands(std::vector<std::unique_ptr<Command>>* out);
void AddTenantCommands(std::vector<std::unique_ptr<Command>>* out);
void AddCallCommands(std::vector<std::unique_ptr<Command>>* out);
void AddInspectCommands(std::vector<std::unique_ptr<Command>>* out);
void AddReceiptCommands(std::vector<std::unique_ptr<Command>>* out);
void AddRawCommands(std::vector<std::unique_ptr<Command>>* out);
void AddRecordingCommands(std::vector<std::unique_ptr<Command>>* out);
void AddSubjectCommands(std::vector<std::unique_ptr<Command>>* out);
void AddComplianceCommands(std::vector<std::unique_ptr<Command>>* out);
void AddDemoCommands(std::vector<std::unique_ptr<Command>>* out);
void AddBackupCommands(std::vector<std::unique_ptr<Command>>* out);

}  // namespace callvault::cli

#endif  // CALLVAULT_TOOLS_CLI_COMMAND_H_
