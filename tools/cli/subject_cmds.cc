// callvault refs | erase: data-subject requests for one email or phone.
// The subject is personal data: it is printed only with --reveal.
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <ostream>

#include "tools/cli/command.h"
#include "tools/cli/format.h"

namespace callvault::cli {

namespace {

// --email E | --phone P, exactly one.
struct SubjectFlags {
  std::string email;
  std::string phone;

  void Add(CLI::App* app) {
    CLI::Option* e = app->add_option("--email", email, "The subject's email address");
    CLI::Option* p = app->add_option("--phone", phone, "The subject's phone number (E.164)");
    e->excludes(p);
  }
  // The subject, or a usage message.
  Result<std::string> Get() const {
    if (email.empty() && phone.empty()) {
      return Status::InvalidArgument("give the subject as --email E or --phone P");
    }
    if (!email.empty() && email.find('@') == std::string::npos) {
      return Status::InvalidArgument("--email: expected an address");
    }
    if (!phone.empty() && phone.find('@') != std::string::npos) {
      return Status::InvalidArgument(
          "--phone: expected an E.164 number (use --email for addresses)");
    }
    return email.empty() ? phone : email;
  }
  // How text output names the subject.
  std::string Shown(bool reveal) const {
    if (reveal) return email.empty() ? phone : email;
    return email.empty() ? "the phone number" : "the email address";
  }
};

class RefsCommand final : public Command {
 public:
  std::string Name() const override { return "refs"; }
  std::string Help() const override {
    return "List the calls that reference an email or phone, and in which roles";
  }
  void AddFlags(CLI::App* app) override {
    app->add_option("TENANT", tenant_id_, "The tenant id")->required();
    subject_.Add(app);
  }
  RunResult Run(Context& ctx) override {
    auto subject = subject_.Get();
    if (!subject.ok()) return RunResult::Usage(subject.status().message());
    auto store = ctx.OpenStore(OpenMode::kReadOnly);
    if (!store.ok()) return store.status();
    auto refs = (*store)->FindReferences(tenant_id_, *subject);
    if (!refs.ok()) return refs.status();
    if (ctx.json()) {
      nlohmann::json a = nlohmann::json::array();
      for (const auto& r : *refs) {
        a.push_back(
            {{"call_id", r.call_id}, {"started_at", r.started_at}, {"roles", RoleNames(r.roles)}});
      }
      nlohmann::json j = {{"references", std::move(a)}};
      if (ctx.reveal()) j["subject"] = *subject;
      ctx.PrintJson(j);
    } else {
      Table table({"CALL_ID", "STARTED_AT", "ROLES"});
      for (const auto& r : *refs) {
        std::string roles;
        for (const auto& n : RoleNames(r.roles)) roles += (roles.empty() ? "" : ",") + n;
        table.Add({r.call_id, FormatTime(r.started_at), roles});
      }
      table.Print(ctx.out());
    }
    ctx.err() << fmt::format("{} call(s) of tenant {} reference {}\n", refs->size(), tenant_id_,
                             subject_.Shown(ctx.reveal()));
    return {};
  }

 private:
  std::string tenant_id_;
  SubjectFlags subject_;
};

class EraseCommand final : public Command {
 public:
  std::string Name() const override { return "erase"; }
  std::string Help() const override {
    return "Delete the calls that reference an email or phone, or redact it from them";
  }
  void AddFlags(CLI::App* app) override {
    app->add_option("TENANT", tenant_id_, "The tenant id")->required();
    subject_.Add(app);
    app->add_option("--mode", mode_,
                    "delete: remove the calls; redact: remove the subject (name, email, phone, "
                    "title, user id also as owner, CRM links, speaker identity) from them. Default: delete")
        ->check(CLI::IsMember({"delete", "redact"}));
    app->add_flag("--dry-run", request_.dry_run, "Count the calls; change nothing. Default: off");
    app->add_option("--max-calls", request_.max_calls,
                    "Refuse (exit 69, nothing changed) when more calls match. Default: 1000");
    app->add_flag("--no-physical", no_physical_,
                  "Skip the flush and compaction that remove the old bytes from live files. "
                  "Default: off (they are removed)");
  }
  RunResult Run(Context& ctx) override {
    auto subject = subject_.Get();
    if (!subject.ok()) return RunResult::Usage(subject.status().message());
    request_.subject = *subject;
    request_.mode = mode_ == "redact" ? EraseMode::kRedact : EraseMode::kDelete;
    request_.physical = !no_physical_;
    auto store = ctx.OpenStore(request_.dry_run ? OpenMode::kReadOnly : OpenMode::kWrite);
    if (!store.ok()) return store.status();
    auto result = (*store)->Erase(tenant_id_, request_);
    if (!result.ok()) return result.status();
    if (ctx.json()) {
      nlohmann::json j = {
          {"mode", mode_},
          {"dry_run", request_.dry_run},
          {"matched", result->matched},
          {"changed", result->changed},
          {"receipt", result->receipt ? ReceiptToJson(*result->receipt) : nlohmann::json(nullptr)}};
      if (ctx.reveal()) j["subject"] = *subject;
      ctx.PrintJson(j);
    } else {
      PrintFields(ctx.out(), {{"mode", mode_},
                              {"dry_run", request_.dry_run ? "yes" : "no"},
                              {"matched", std::to_string(result->matched)},
                              {"changed", std::to_string(result->changed)}});
      if (result->receipt) {
        ctx.out() << "receipt:\n";
        PrintReceipt(ctx.out(), *result->receipt, "  ");
      }
    }
    const std::string who = subject_.Shown(ctx.reveal());
    if (request_.dry_run) {
      ctx.err() << fmt::format(
          "dry run: {} call(s) of tenant {} reference {}; nothing was changed\n", result->matched,
          tenant_id_, who);
    } else if (result->receipt) {
      if (request_.mode == EraseMode::kRedact) {
        ctx.err() << fmt::format("redacted {} from {} call(s) of tenant {}; receipt {}\n", who,
                                 result->changed, tenant_id_, result->receipt->sequence);
      } else {
        ctx.err() << fmt::format("deleted {} call(s) of tenant {} that referenced {}; receipt {}\n",
                                 result->changed, tenant_id_, who, result->receipt->sequence);
      }
    } else {
      ctx.err() << fmt::format("no call of tenant {} references {}; nothing to erase\n", tenant_id_,
                               who);
    }
    return {};
  }

 private:
  std::string tenant_id_;
  SubjectFlags subject_;
  std::string mode_ = "delete";
  bool no_physical_ = false;
  EraseRequest request_;
};

}  // namespace

void AddSubjectCommands(std::vector<std::unique_ptr<Command>>* out) {
  out->push_back(std::make_unique<RefsCommand>());
  out->push_back(std::make_unique<EraseCommand>());
}

}  // namespace callvault::cli
