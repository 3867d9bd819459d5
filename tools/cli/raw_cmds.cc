// callvault raw ldb | sst_dump: RocksDB's own tools, embedded, pointed at
// one RocksDB instance of the store. They see only sealed bytes: keys and
// values are ciphertext or opaque hashes, column families opaque names.
//
// The store layout they rely on (docs/format.md): <store>/meta is the
// metadata instance and <store>/shards/NNNN the shards, created with the
// first tenant that needs them.
//
// Each tool runs in a child process: Debian's RocksDB keeps its assertions,
// and its tools parse table blocks without their checksums unless asked
// (sst_dump's --verify_checksum, added here unless given; ldb's
// dump_live_files, dump --path), so a damaged file could abort them. The
// abort of the child is reported as damage (exit 76), not as a crash of
// callvault (decision 0074).
#include <fmt/format.h>
#include <rocksdb/ldb_tool.h>
#include <rocksdb/sst_dump_tool.h>

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <iostream>

#include "callvault/hardening.h"
#include "tools/cli/command.h"

namespace callvault::cli {

namespace {

bool StartsWith(const std::string& s, std::string_view p) { return s.rfind(p, 0) == 0; }

// The arguments of a raw verb with our own --shard N / --meta taken out.
struct RawArgs {
  std::vector<std::string> tool_args;
  std::optional<uint32_t> shard;
  bool meta = false;
  bool has_target = false;  // the user named the instance (--db= / --file=)
};

// `target_flags`: the tool's flags that name what it opens (ldb: --db=, or
// --path= for a single file; sst_dump: --file=).
Result<RawArgs> SplitArgs(const std::vector<std::string>& args,
                          const std::vector<std::string_view>& target_flags) {
  RawArgs r;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    std::string value;
    if (a == "--shard") {
      if (i + 1 == args.size()) return Status::InvalidArgument("--shard needs a number");
      value = args[++i];
    } else if (StartsWith(a, "--shard=")) {
      value = a.substr(8);
    } else if (a == "--meta") {
      r.meta = true;
      continue;
    } else {
      for (std::string_view f : target_flags) r.has_target |= StartsWith(a, f);
      r.tool_args.push_back(a);
      continue;
    }
    if (value.empty() || value.size() > 9 ||
        value.find_first_not_of("0123456789") != std::string::npos) {
      return Status::InvalidArgument("--shard needs a number");
    }
    r.shard = static_cast<uint32_t>(std::stoul(value));
  }
  if (r.meta && r.shard) return Status::InvalidArgument("--meta and --shard exclude each other");
  return r;
}

// Resolves the instance directory and injects `target_flag`<dir> unless the
// user named a target (any of `target_flags`, the first of which is
// `target_flag`). `writes`: the tool may write in the directory, which is
// checked first as Store::Open checks a store's (decision 0078).
RunResult Prepare(Context& ctx, const std::vector<std::string>& args,
                  const std::vector<std::string_view>& target_flags, bool writes,
                  std::vector<std::string>* argv) {
  const std::string_view target_flag = target_flags.front();
  auto split = SplitArgs(args, target_flags);
  if (!split.ok()) return RunResult::Usage(split.status().message());
  *argv = std::move(split->tool_args);
  if (split->has_target) {
    if (split->meta || split->shard) {
      return RunResult::Usage(fmt::format("give either {} or --shard/--meta", target_flag));
    }
    // ldb writes in the directory it opens (its info LOG, rotated and
    // created with O_TRUNC; put, compact): only where nobody else can plant
    // a link (decision 0078). sst_dump and ldb's --path= only read.
    if (writes) {
      for (const std::string& a : *argv) {
        if (StartsWith(a, "--db=")) CV_RETURN_IF_ERROR(CheckStoreDirectories(a.substr(5)));
      }
    }
    return {};
  }
  if (ctx.flags().db.empty()) {
    return RunResult::Usage(
        fmt::format("--db DIR (before `raw`) or {}PATH is required", target_flag));
  }
  if (writes) CV_RETURN_IF_ERROR(CheckStoreDirectories(ctx.flags().db));
  std::string dir = split->meta
                        ? ctx.flags().db + "/meta"
                        : fmt::format("{}/shards/{:04}", ctx.flags().db, split->shard.value_or(0));
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) {
    return Status::NotFound(dir + " does not exist (shards are created with the first tenant)");
  }
  argv->insert(argv->begin(), std::string(target_flag) + dir);
  return {};
}

// Runs one of RocksDB's tools in the calling process. They throw on some
// bad arguments instead of answering them: `const char*` "Invalid hex
// input" for a key or value given in hex (ldb's get, put, delete, scan
// --from, ...; sst_dump's --from with --input_key_hex), and whatever else a
// parser throws. Uncaught, that aborts the process (exit 134, as a crash);
// it is bad input (65).
template <typename F>
RunResult RunTool(std::string_view tool, F run) {
  std::string what;
  try {
    return run();
  } catch (const char* e) {
    what = e;
  } catch (const std::exception& e) {
    what = e.what();
  } catch (...) {
    what = "an unknown exception";
  }
  std::fflush(stdout);
  const bool hex = what.find("hex") != std::string::npos;
  return Status::InvalidArgument(fmt::format(
      "raw {}: RocksDB's {} refused an argument: {}{}", tool, tool, what,
      hex ? " (a key or value given in hex is 0x followed by pairs of hex digits)" : ""));
}

// RunTool in a child process. The child's exit status is the tool's; a
// refused argument comes back through a pipe as the message RunTool made;
// a child ended by a signal (an assertion of RocksDB's on a damaged file:
// SIGABRT) is kCorruption. The child writes no core file.
template <typename F>
RunResult RunToolInChild(std::string_view tool, F run) {
  std::fflush(stdout);
  std::fflush(stderr);
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    return Status::IOError(fmt::format("raw {}: pipe: {}", tool, std::strerror(errno)));
  }
  const pid_t pid = ::fork();
  if (pid < 0) {
    const int e = errno;
    ::close(fds[0]);
    ::close(fds[1]);
    return Status::IOError(fmt::format("raw {}: fork: {}", tool, std::strerror(e)));
  }
  if (pid == 0) {
    ::close(fds[0]);
    const struct rlimit none = {0, 0};
    ::setrlimit(RLIMIT_CORE, &none);
    RunResult r = RunTool(tool, run);
    std::fflush(stdout);
    std::fflush(stderr);
    if (r.exit_override() >= 0) ::_exit(r.exit_override());
    const std::string msg(r.status().message());
    for (size_t off = 0; off < msg.size();) {
      const ssize_t n = ::write(fds[1], msg.data() + off, msg.size() - off);
      if (n <= 0) break;
      off += static_cast<size_t>(n);
    }
    ::_exit(r.ok() ? 0 : 65);
  }
  ::close(fds[1]);
  std::string refused;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(fds[0], buf, sizeof buf);
    if (n > 0) {
      refused.append(buf, static_cast<size_t>(n));
    } else if (n == 0 || errno != EINTR) {
      break;
    }
  }
  ::close(fds[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) {
      return Status::IOError(fmt::format("raw {}: waitpid: {}", tool, std::strerror(errno)));
    }
  }
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    return Status::Corruption(fmt::format(
        "raw {}: RocksDB's {} stopped on signal {} ({}): an assertion of RocksDB's on a damaged "
        "file, most likely (its message is above); `callvault verify` names the damaged tenant",
        tool, tool, sig, ::strsignal(sig)));
  }
  if (!refused.empty()) return Status::InvalidArgument(refused);
  return RunResult::Exit(WIFEXITED(status) ? WEXITSTATUS(status) : 70);
}

std::vector<char*> CArgs(const std::string& tool, std::vector<std::string>* args) {
  args->insert(args->begin(), tool);
  std::vector<char*> v;
  for (auto& a : *args) v.push_back(a.data());
  v.push_back(nullptr);
  return v;
}

class RawLdbCommand final : public Command {
 public:
  std::string Group() const override { return "raw"; }
  std::string Name() const override { return "ldb"; }
  std::string Help() const override {
    return "RocksDB's ldb on shard 0 (or --shard N, or --meta), unless you pass --db=PATH or "
           "--path=FILE; arguments are ldb's";
  }
  void AddFlags(CLI::App*) override {}
  bool PassThrough() const override { return true; }
  void SetPassThroughArgs(std::vector<std::string> args) override { args_ = std::move(args); }
  RunResult Run(Context& ctx) override {
    std::vector<std::string> args;
    RunResult r = Prepare(ctx, args_, {"--db=", "--path="}, /*writes=*/true, &args);
    if (!r.ok()) return r;
    std::vector<char*> argv = CArgs("ldb", &args);
    ctx.out().flush();
    std::cout.flush();
    // LDBTool::Run ends the (child) process with ldb's own exit status.
    rocksdb::LDBOptions ldb_options;
    ldb_options.print_help_header = "callvault raw ldb: RocksDB's ldb on a callvault store";
    return RunToolInChild("ldb", [&] {
      rocksdb::LDBTool().Run(static_cast<int>(argv.size() - 1), argv.data(), rocksdb::Options(),
                             ldb_options);
      return RunResult::Exit(0);
    });
  }

 private:
  std::vector<std::string> args_;
};

class RawSstDumpCommand final : public Command {
 public:
  std::string Group() const override { return "raw"; }
  std::string Name() const override { return "sst_dump"; }
  std::string Help() const override {
    return "RocksDB's sst_dump on shard 0's files (or --shard N, or --meta), unless you pass "
           "--file=PATH; arguments are sst_dump's";
  }
  void AddFlags(CLI::App*) override {}
  bool PassThrough() const override { return true; }
  void SetPassThroughArgs(std::vector<std::string> args) override { args_ = std::move(args); }
  RunResult Run(Context& ctx) override {
    std::vector<std::string> args;
    RunResult r = Prepare(ctx, args_, {"--file="}, /*writes=*/false, &args);
    if (!r.ok()) return r;
    // Blocks checked against their checksums before they are parsed
    // (sst_dump's default is not to).
    bool verify = false;
    for (const auto& a : args) verify |= a == "--verify_checksum";
    if (!verify) args.push_back("--verify_checksum");
    std::vector<char*> argv = CArgs("sst_dump", &args);
    ctx.out().flush();
    std::cout.flush();
    return RunToolInChild("sst_dump", [&] {
      int rc = rocksdb::SSTDumpTool().Run(static_cast<int>(argv.size() - 1), argv.data());
      std::fflush(stdout);
      return RunResult::Exit(rc);
    });
  }

 private:
  std::vector<std::string> args_;
};

}  // namespace

void AddRawCommands(std::vector<std::unique_ptr<Command>>* out) {
  out->push_back(std::make_unique<RawLdbCommand>());
  out->push_back(std::make_unique<RawSstDumpCommand>());
}

}  // namespace callvault::cli
