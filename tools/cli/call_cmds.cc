// callvault call put | get | list | delete.
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ostream>

#include "tools/cli/command.h"
#include "tools/cli/format.h"
#include "tools/json/call_json.h"

namespace callvault::cli {

namespace {

// The whole of `path` ("-": stdin), at most json::kMaxInputBytes.
Result<std::string> ReadInput(const std::string& path) {
  std::FILE* f = path == "-" ? stdin : std::fopen(path.c_str(), "rb");
  if (f == nullptr) {
    const int e = errno;
    std::string m = "cannot open input file " + path + ": " + std::strerror(e);
    return e == ENOENT ? Status::NotFound(m) : Status::IOError(m);
  }
  std::string data;
  char buf[1 << 16];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) {
    data.append(buf, n);
    if (data.size() > json::kMaxInputBytes) break;
  }
  const bool failed = std::ferror(f) != 0;
  if (f != stdin) std::fclose(f);
  if (failed) return Status::IOError("cannot read input file " + path);
  if (data.size() > json::kMaxInputBytes) {
    return Status::InvalidArgument(
        fmt::format("input: larger than {} bytes", json::kMaxInputBytes));
  }
  return data;
}

class CallPutCommand final : public Command {
 public:
  std::string Group() const override { return "call"; }
  std::string Name() const override { return "put"; }
  std::string Help() const override {
    return "Store one call or a JSON array of calls, atomically (FILE or - for stdin)";
  }
  void AddFlags(CLI::App* app) override {
    app->add_option("TENANT", tenant_id_, "The tenant id")->required();
    app->add_option("FILE", path_, "A JSON file holding a call object or an array; - for stdin")
        ->required();
  }
  RunResult Run(Context& ctx) override {
    auto text = ReadInput(path_);
    if (!text.ok()) return text.status();
    auto calls = json::ParseCalls(*text);
    if (!calls.ok()) return calls.status();
    auto store = ctx.OpenStore();
    if (!store.ok()) return store.status();
    auto results = (*store)->PutCalls(tenant_id_, *calls);
    if (!results.ok()) return results.status();
    size_t created = 0;
    nlohmann::json a = nlohmann::json::array();
    for (const auto& r : *results) {
      created += r.created ? 1 : 0;
      if (ctx.json()) {
        a.push_back({{"call_id", r.call_id}, {"created", r.created}});
      } else {
        ctx.out() << (r.created ? "created  " : "updated  ") << r.call_id << '\n';
      }
    }
    if (ctx.json()) ctx.PrintJson({{"results", std::move(a)}});
    ctx.err() << fmt::format("stored {} call(s) in tenant {}: {} created, {} updated\n",
                             results->size(), tenant_id_, created, results->size() - created);
    return {};
  }

 private:
  std::string tenant_id_;
  std::string path_;
};

class CallGetCommand final : public Command {
 public:
  std::string Group() const override { return "call"; }
  std::string Name() const override { return "get"; }
  std::string Help() const override {
    return "Print one call as JSON (personal data redacted unless --reveal)";
  }
  void AddFlags(CLI::App* app) override {
    app->add_option("TENANT", tenant_id_, "The tenant id")->required();
    app->add_option("CALL_ID", call_id_, "The call id")->required();
    app->add_option("--parts", parts_,
                    "Comma-separated parts: metadata, participants, transcript, insights, all. "
                    "Metadata is always included. Default: all");
  }
  RunResult Run(Context& ctx) override {
    auto parts = ParseParts(parts_);
    if (!parts.ok()) return RunResult::Usage(parts.status().message());
    auto store = ctx.OpenStore();
    if (!store.ok()) return store.status();
    auto call = (*store)->GetCall(tenant_id_, call_id_, *parts);
    if (!call.ok()) return call.status();
    json::JsonOptions o;
    o.reveal = ctx.reveal();
    o.parts = *parts;
    ctx.PrintJson(json::CallToJson(*call, o));
    return {};
  }

 private:
  std::string tenant_id_;
  std::string call_id_;
  std::string parts_ = "all";
};

class CallListCommand final : public Command {
 public:
  std::string Group() const override { return "call"; }
  std::string Name() const override { return "list"; }
  std::string Help() const override {
    return "List a tenant's calls by started_at, newest first, a page at a time";
  }
  void AddFlags(CLI::App* app) override {
    app->add_option("TENANT", tenant_id_, "The tenant id")->required();
    app->add_option("--from", from_,
                    "Earliest started_at, inclusive: microseconds or RFC 3339. Default: no bound");
    app->add_option("--to", to_,
                    "Latest started_at, exclusive: microseconds or RFC 3339. Default: no bound");
    app->add_option("--limit", limit_, "Calls per page, 1-1000. Default: 100")
        ->check(CLI::Range(1, 1000));
    app->add_option("--cursor", cursor_,
                    "Continue after the page that printed this cursor (same query). Default: none");
    app->add_flag("--oldest-first", oldest_first_, "Oldest calls first. Default: newest first");
  }
  RunResult Run(Context& ctx) override {
    ListQuery q;
    if (!from_.empty()) {
      auto t = ParseTime(from_, "--from");
      if (!t.ok()) return RunResult::Usage(t.status().message());
      q.from = *t;
    }
    if (!to_.empty()) {
      auto t = ParseTime(to_, "--to");
      if (!t.ok()) return RunResult::Usage(t.status().message());
      q.to = *t;
    }
    q.limit = limit_;
    q.cursor = cursor_;
    q.newest_first = !oldest_first_;
    auto store = ctx.OpenStore();
    if (!store.ok()) return store.status();
    auto page = (*store)->ListCalls(tenant_id_, q);
    if (!page.ok()) return page.status();
    // The list holds metadata only; the participant count needs the
    // participants part of each call.
    std::vector<std::optional<size_t>> participants;
    for (const Call& c : page->calls) {
      auto full = (*store)->GetCall(tenant_id_, c.call_id, kPartParticipants);
      participants.push_back(full.ok() ? std::optional<size_t>(full->participants.size())
                                       : std::nullopt);
    }
    if (ctx.json()) {
      ctx.PrintJson(CallListToJson(*page, participants, ctx.reveal()));
    } else {
      PrintCallTable(ctx.out(), page->calls, participants, ctx.reveal());
      if (!page->next_cursor.empty()) ctx.err() << "next cursor: " << page->next_cursor << '\n';
    }
    return {};
  }

 private:
  std::string tenant_id_;
  std::string from_;
  std::string to_;
  size_t limit_ = 100;
  std::string cursor_;
  bool oldest_first_ = false;
};

class CallDeleteCommand final : public Command {
 public:
  std::string Group() const override { return "call"; }
  std::string Name() const override { return "delete"; }
  std::string Help() const override { return "Delete one call"; }
  void AddFlags(CLI::App* app) override {
    app->add_option("TENANT", tenant_id_, "The tenant id")->required();
    app->add_option("CALL_ID", call_id_, "The call id")->required();
  }
  RunResult Run(Context& ctx) override {
    auto store = ctx.OpenStore();
    if (!store.ok()) return store.status();
    Status s = (*store)->DeleteCall(tenant_id_, call_id_);
    if (!s.ok()) return s;
    if (ctx.json()) {
      ctx.PrintJson({{"call_id", call_id_}, {"deleted", true}});
    } else {
      ctx.out() << "deleted  " << call_id_ << '\n';
    }
    return {};
  }

 private:
  std::string tenant_id_;
  std::string call_id_;
};

}  // namespace

void AddCallCommands(std::vector<std::unique_ptr<Command>>* out) {
  out->push_back(std::make_unique<CallPutCommand>());
  out->push_back(std::make_unique<CallGetCommand>());
  out->push_back(std::make_unique<CallListCommand>());
  out->push_back(std::make_unique<CallDeleteCommand>());
}

}  // namespace callvault::cli
