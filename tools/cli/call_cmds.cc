// callvault call put | update | get | list | delete | transcript | pin | unpin | hold.
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ostream>

#include "tools/cli/command.h"
#include "tools/cli/format.h"
#include "tools/json/call_json.h"

namespace callvault::cli {

namespace {

// --expected-version: decimal digits only, at most 2^63 - 1 (call versions
// never reach it). CLI11 alone clamps a larger number to the int64 maximum
// and reads "-5" as a negative number, which these commands took for "no
// version given": a conditional write would have become unconditional.
const CLI::Validator kCallVersion(
    [](std::string& v) -> std::string {
      const bool digits = !v.empty() && v.size() <= 19 &&
                          std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; });
      if (!digits || (v.size() == 19 && v > "9223372036854775807")) {
        return "a call version is a decimal number from 0 to 9223372036854775807, not " + v;
      }
      return std::string();
    },
    "VERSION");

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
    app->add_option("--expected-version", expected_,
                    "Store only if the call is at this version, 0: only if it does not exist "
                    "(else exit 75, conflict). One call in FILE only")
        ->check(kCallVersion);
  }
  RunResult Run(Context& ctx) override {
    auto text = ReadInput(path_);
    if (!text.ok()) return text.status();
    auto calls = json::ParseCalls(*text);
    if (!calls.ok()) return calls.status();
    if (expected_ >= 0 && calls->size() != 1) {
      return RunResult::Usage("--expected-version: FILE must hold one call, not " +
                              std::to_string(calls->size()));
    }
    auto store = ctx.OpenStore();
    if (!store.ok()) return store.status();
    auto results =
        expected_ >= 0
            ? (*store)->PutCalls(tenant_id_, *calls, {static_cast<uint64_t>(expected_)})
            : (*store)->PutCalls(tenant_id_, *calls);
    if (!results.ok()) return results.status();
    size_t created = 0;
    nlohmann::json a = nlohmann::json::array();
    for (const auto& r : *results) {
      created += r.created ? 1 : 0;
      if (ctx.json()) {
        a.push_back({{"call_id", r.call_id}, {"created", r.created}, {"version", r.version}});
      } else {
        ctx.out() << (r.created ? "created  " : "updated  ") << r.call_id << "  version "
                  << r.version << '\n';
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
  int64_t expected_ = -1;
};

// call update: Store::UpdateCall with the parts named taken from a call
// object (e.g. `call get --reveal` output, edited).
class CallUpdateCommand final : public Command {
 public:
  std::string Group() const override { return "call"; }
  std::string Name() const override { return "update"; }
  std::string Help() const override {
    return "Replace only the named parts of one call with those of a JSON call object "
           "(FILE or - for stdin)";
  }
  void AddFlags(CLI::App* app) override {
    app->add_option("TENANT", tenant_id_, "The tenant id")->required();
    app->add_option("CALL_ID", call_id_, "The call id")->required();
    app->add_option("FILE", path_,
                    "A JSON call object (as `call get --reveal` prints it); - for stdin")
        ->required();
    app->add_option("--parts", parts_,
                    "Comma-separated parts to replace: fields (every metadata field), "
                    "participants, transcript, insights")
        ->required();
    app->add_option("--expected-version", expected_,
                    "Replace only if the call is at this version (else exit 75, conflict)")
        ->check(kCallVersion);
  }
  RunResult Run(Context& ctx) override {
    auto parts = ParseUpdateParts(parts_);
    if (!parts.ok()) return RunResult::Usage(parts.status().message());
    auto text = ReadInput(path_);
    if (!text.ok()) return text.status();
    auto calls = json::ParseCalls(*text);
    if (!calls.ok()) return calls.status();
    if (calls->size() != 1) return Status::InvalidArgument("input: expected one call object");
    auto store = ctx.OpenStore();
    if (!store.ok()) return store.status();
    std::optional<uint64_t> expected;
    if (expected_ >= 0) expected = static_cast<uint64_t>(expected_);
    auto r = (*store)->UpdateCall(tenant_id_, call_id_, *parts, calls->front(), expected);
    if (!r.ok()) return r.status();
    if (ctx.json()) {
      ctx.PrintJson({{"call_id", r->call_id}, {"version", r->version}});
    } else {
      ctx.out() << "updated  " << r->call_id << "  version " << r->version << '\n';
    }
    return {};
  }

 private:
  std::string tenant_id_;
  std::string call_id_;
  std::string path_;
  std::string parts_;
  int64_t expected_ = -1;
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
    auto store = ctx.OpenStore(OpenMode::kReadOnly);
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
    return "List a tenant's calls by started_at, newest first, a page at a time, with filters";
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
    // Filters: one value per flag occurrence; repeat a flag for "any of".
    app->add_option("--owner", q_.owners, "Owner user id; repeat for any of several. Default: any")
        ->allow_extra_args(false);
    app->add_option("--email", emails_,
                    "A participant's email (or a CRM link's id); repeat for any of. Default: any")
        ->allow_extra_args(false);
    app->add_option("--phone", phones_,
                    "A participant's E.164 phone (or a CRM link's id); repeat for any of. "
                    "Default: any")
        ->allow_extra_args(false);
    app->add_option("--crm", crm_,
                    "Calls linked to this CRM object, SYSTEM:TYPE:ID with TYPE account, "
                    "opportunity, contact or lead. Default: any");
    app->add_option("--workspace", q_.workspace_id, "Workspace id. Default: any");
    app->add_option("--updated-since", updated_since_,
                    "updated_at at or after this: microseconds or RFC 3339. Default: any");
    app->add_option("--direction", direction_,
                    "inbound, outbound, conference or unknown. Default: any")
        ->check(CLI::IsMember({"inbound", "outbound", "conference", "unknown"}));
    app->add_option("--scope", scope_, "internal, external or unknown. Default: any")
        ->check(CLI::IsMember({"internal", "external", "unknown"}));
    app->add_option("--min-duration", q_.min_duration_ms,
                    "Shortest duration_ms, inclusive. Default: 0");
    app->add_option("--max-duration", q_.max_duration_ms,
                    "Longest duration_ms, inclusive. Default: no bound");
    app->add_option("--tag", q_.tags, "A tag; repeat for any of several. Default: any")
        ->allow_extra_args(false);
  }
  RunResult Run(Context& ctx) override {
    ListQuery q = q_;
    for (const auto& e : emails_) {
      if (e.find('@') == std::string::npos) return RunResult::Usage("--email: expected an address");
      q.participants.push_back(e);
    }
    for (const auto& p : phones_) {
      if (p.find('@') != std::string::npos) {
        return RunResult::Usage("--phone: expected an E.164 number (use --email for addresses)");
      }
      q.participants.push_back(p);
    }
    if (!crm_.empty()) {
      auto crm = ParseCrm(crm_);
      if (!crm.ok()) return RunResult::Usage(crm.status().message());
      q.crm = *crm;
    }
    if (!updated_since_.empty()) {
      auto t = ParseTime(updated_since_, "--updated-since");
      if (!t.ok()) return RunResult::Usage(t.status().message());
      q.updated_since = *t;
    }
    if (!direction_.empty()) {
      for (Direction d : {Direction::kUnknown, Direction::kInbound, Direction::kOutbound,
                          Direction::kConference}) {
        if (json::DirectionName(d) == direction_) q.direction = d;
      }
    }
    if (!scope_.empty()) {
      for (CallScope c : {CallScope::kUnknown, CallScope::kInternal, CallScope::kExternal}) {
        if (json::ScopeName(c) == scope_) q.scope = c;
      }
    }
    if (q.min_duration_ms > q.max_duration_ms) {
      return RunResult::Usage("--min-duration: above --max-duration");
    }
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
    auto store = ctx.OpenStore(OpenMode::kReadOnly);
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
  ListQuery q_;  // the filters bound directly
  std::vector<std::string> emails_, phones_;
  std::string crm_, updated_since_, direction_, scope_;
};

class CallDeleteCommand final : public Command {
 public:
  std::string Group() const override { return "call"; }
  std::string Name() const override { return "delete"; }
  std::string Help() const override { return "Delete one call"; }
  void AddFlags(CLI::App* app) override {
    app->add_option("TENANT", tenant_id_, "The tenant id")->required();
    app->add_option("CALL_ID", call_id_, "The call id")->required();
    app->add_option("--expected-version", expected_,
                    "Delete only if the call is at this version (else exit 75, conflict)")
        ->check(kCallVersion);
  }
  RunResult Run(Context& ctx) override {
    auto store = ctx.OpenStore();
    if (!store.ok()) return store.status();
    std::optional<uint64_t> expected;
    if (expected_ >= 0) expected = static_cast<uint64_t>(expected_);
    // The delete's own version (greater than the call's last one).
    auto version = (*store)->DeleteCall(tenant_id_, call_id_, expected);
    if (!version.ok()) return version.status();
    if (ctx.json()) {
      ctx.PrintJson({{"call_id", call_id_}, {"deleted", true}, {"version", *version}});
    } else {
      ctx.out() << "deleted  " << call_id_ << "  version " << *version << '\n';
    }
    return {};
  }

 private:
  std::string tenant_id_;
  std::string call_id_;
  int64_t expected_ = -1;
};

// call transcript: the segments overlapping a window of the call.
class CallTranscriptCommand final : public Command {
 public:
  std::string Group() const override { return "call"; }
  std::string Name() const override { return "transcript"; }
  std::string Help() const override {
    return "Print the transcript segments between two offsets (text redacted unless --reveal)";
  }
  void AddFlags(CLI::App* app) override {
    app->add_option("TENANT", tenant_id_, "The tenant id")->required();
    app->add_option("CALL_ID", call_id_, "The call id")->required();
    app->add_option("--from-ms", from_ms_,
                    "Segments ending after this offset (milliseconds). Default: 0");
    app->add_option("--to-ms", to_ms_,
                    "Segments starting before this offset (milliseconds). Default: the end");
  }
  RunResult Run(Context& ctx) override {
    if (from_ms_ > to_ms_) return RunResult::Usage("--from-ms: after --to-ms");
    auto store = ctx.OpenStore(OpenMode::kReadOnly);
    if (!store.ok()) return store.status();
    auto segments = (*store)->GetTranscriptWindow(tenant_id_, call_id_, from_ms_, to_ms_);
    if (!segments.ok()) return segments.status();
    if (ctx.json()) {
      nlohmann::json a = nlohmann::json::array();
      for (const auto& s : *segments) {
        a.push_back({{"speaker_id", s.speaker_id},
                     {"start_ms", s.start_ms},
                     {"end_ms", s.end_ms},
                     {"confidence", s.confidence},
                     {"text", RedactText(s.text, ctx.reveal())}});
      }
      ctx.PrintJson({{"call_id", call_id_}, {"segments", std::move(a)}});
      return {};
    }
    Table table({"START", "END", "SPEAKER", "CONFIDENCE", "TEXT"});
    for (const auto& s : *segments) {
      table.Add({FormatOffset(s.start_ms), FormatOffset(s.end_ms), std::to_string(s.speaker_id),
                 fmt::format("{:.2f}", s.confidence), RedactText(s.text, ctx.reveal())});
    }
    table.Print(ctx.out());
    return {};
  }

 private:
  std::string tenant_id_;
  std::string call_id_;
  uint32_t from_ms_ = 0;
  uint32_t to_ms_ = UINT32_MAX;
};

// call pin / call unpin: exempt a call from retention, or stop exempting it.
class CallPinCommand final : public Command {
 public:
  explicit CallPinCommand(bool pin) : pin_(pin) {}
  std::string Group() const override { return "call"; }
  std::string Name() const override { return pin_ ? "pin" : "unpin"; }
  std::string Help() const override {
    return pin_ ? "Exempt a call from retention (a pinned call is kept)"
                : "Undo `call pin`: the call follows its retention again";
  }
  void AddFlags(CLI::App* app) override {
    app->add_option("TENANT", tenant_id_, "The tenant id")->required();
    app->add_option("CALL_ID", call_id_, "The call id")->required();
  }
  RunResult Run(Context& ctx) override {
    auto store = ctx.OpenStore();
    if (!store.ok()) return store.status();
    Status s = (*store)->SetCallPinned(tenant_id_, call_id_, pin_);
    if (!s.ok()) return s;
    if (ctx.json()) {
      ctx.PrintJson({{"call_id", call_id_}, {"pinned", pin_}});
    } else {
      ctx.out() << (pin_ ? "pinned    " : "unpinned  ") << call_id_ << '\n';
    }
    return {};
  }

 private:
  const bool pin_;
  std::string tenant_id_;
  std::string call_id_;
};

// call hold: a legal hold on one call (released with `call release`).
class CallHoldCommand final : public Command {
 public:
  std::string Group() const override { return "call"; }
  std::string Name() const override { return "hold"; }
  std::string Help() const override {
    return "Place a legal hold on one call: it cannot be deleted, erased or expired";
  }
  void AddFlags(CLI::App* app) override {
    app->add_option("TENANT", tenant_id_, "The tenant id")->required();
    app->add_option("CALL_ID", hold_.call_id, "The call id")->required();
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
                     {"call_id", hold_.call_id},
                     {"placed", true}});
    } else {
      ctx.out() << "placed hold " << hold_.hold_id << " on call " << hold_.call_id << '\n';
    }
    ctx.err() << "release it with `callvault call release " << tenant_id_ << " " << hold_.call_id
              << " --id " << hold_.hold_id << "`\n";
    return {};
  }

 private:
  std::string tenant_id_;
  Hold hold_;
};

// call release: releases a hold placed on one call. Refuses a hold that is
// not on that call (a tenant-level hold, or another call's), so that a
// typo in an incident does not lift the wrong hold.
class CallReleaseCommand final : public Command {
 public:
  std::string Group() const override { return "call"; }
  std::string Name() const override { return "release"; }
  std::string Help() const override {
    return "Release a legal hold placed on one call; blocked work runs at its next run";
  }
  void AddFlags(CLI::App* app) override {
    app->add_option("TENANT", tenant_id_, "The tenant id")->required();
    app->add_option("CALL_ID", call_id_, "The call id")->required();
    app->add_option("--id", hold_id_, "The hold's id")->required();
  }
  RunResult Run(Context& ctx) override {
    auto store = ctx.OpenStore();
    if (!store.ok()) return store.status();
    auto holds = (*store)->ListHolds(tenant_id_);
    if (!holds.ok()) return holds.status();
    auto it = std::find_if(holds->begin(), holds->end(),
                           [&](const Hold& h) { return h.hold_id == hold_id_; });
    if (it == holds->end()) {
      return Status::NotFound("tenant " + tenant_id_ + " has no hold " + hold_id_);
    }
    if (it->call_id != call_id_) {
      return Status::InvalidArgument(
          it->call_id.empty()
              ? "hold " + hold_id_ + " is on the whole tenant, not on a call: release it with "
                    "`callvault tenant release " + tenant_id_ + " --id " + hold_id_ + "`"
              : "hold " + hold_id_ + " is on another call, not on " + call_id_);
    }
    Status s = (*store)->ReleaseHold(tenant_id_, hold_id_);
    if (!s.ok()) return s;
    if (ctx.json()) {
      ctx.PrintJson({{"tenant_id", tenant_id_},
                     {"hold_id", hold_id_},
                     {"call_id", call_id_},
                     {"released", true}});
    } else {
      ctx.out() << "released hold " << hold_id_ << " on call " << call_id_ << '\n';
    }
    return {};
  }

 private:
  std::string tenant_id_, call_id_, hold_id_;
};

// changes: a tenant's change feed (Store::ReadChanges, decision 0030).
class ChangesCommand final : public Command {
 public:
  std::string Name() const override { return "changes"; }
  std::string Help() const override {
    return "A tenant's change feed: puts, updates and deletes of calls in commit order";
  }
  void AddFlags(CLI::App* app) override {
    app->add_option("--tenant", tenant_id_, "The tenant id")->required();
    app->add_option("--token", token_,
                    "Continue after the events that printed this token. Default: from the "
                    "oldest event held");
    app->add_option("--limit", limit_, "Events per page, 1-1000. Default: 100")
        ->check(CLI::Range(1, 1000));
  }
  RunResult Run(Context& ctx) override {
    auto store = ctx.OpenStore(OpenMode::kReadOnly);
    if (!store.ok()) return store.status();
    auto page = (*store)->ReadChanges(tenant_id_, token_, limit_);
    if (!page.ok()) return page.status();
    if (ctx.json()) {
      nlohmann::json events = nlohmann::json::array();
      for (const auto& e : page->events) {
        events.push_back({{"sequence", e.sequence},
                          {"kind", ChangeKindName(e.kind)},
                          {"cause", ChangeCauseName(e.cause)},
                          {"call_id", e.call_id},
                          {"version", e.version},
                          {"committed_at", FormatTime(e.committed_at)}});
      }
      ctx.PrintJson({{"events", events}, {"next_token", page->next_token}});
      return {};
    }
    ctx.out() << "SEQ  KIND    CAUSE      VERSION  COMMITTED_AT  CALL_ID\n";
    for (const auto& e : page->events) {
      char line[96];
      std::snprintf(line, sizeof line, "%-4llu %-7s %-10s %-8llu ",
                    static_cast<unsigned long long>(e.sequence), ChangeKindName(e.kind),
                    ChangeCauseName(e.cause), static_cast<unsigned long long>(e.version));
      ctx.out() << line << FormatTime(e.committed_at) << "  " << e.call_id << '\n';
    }
    ctx.err() << "next token: " << page->next_token << '\n';
    return {};
  }

 private:
  std::string tenant_id_;
  std::string token_;
  size_t limit_ = 100;
};

}  // namespace

void AddCallCommands(std::vector<std::unique_ptr<Command>>* out) {
  out->push_back(std::make_unique<CallPutCommand>());
  out->push_back(std::make_unique<CallUpdateCommand>());
  out->push_back(std::make_unique<CallGetCommand>());
  out->push_back(std::make_unique<CallListCommand>());
  out->push_back(std::make_unique<CallDeleteCommand>());
  out->push_back(std::make_unique<CallTranscriptCommand>());
  out->push_back(std::make_unique<CallPinCommand>(true));
  out->push_back(std::make_unique<CallPinCommand>(false));
  out->push_back(std::make_unique<CallHoldCommand>());
  out->push_back(std::make_unique<CallReleaseCommand>());
  out->push_back(std::make_unique<ChangesCommand>());
}

}  // namespace callvault::cli
