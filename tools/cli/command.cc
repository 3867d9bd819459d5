#include "tools/cli/command.h"

#include <unistd.h>

#include <filesystem>
#include <iostream>
#include <ostream>

#include "callvault/key_provider.h"

namespace callvault::cli {

namespace fs = std::filesystem;

std::string DefaultKeyDir(const std::string& db) {
  std::string d = db;
  while (d.size() > 1 && d.back() == '/') d.pop_back();
  return d + ".keys";
}

RunResult RunResult::Usage(std::string message) {
  RunResult r;
  r.usage_ = true;
  r.usage_message_ = std::move(message);
  return r;
}

RunResult RunResult::Reported(Status status) {
  RunResult r(std::move(status));
  r.reported_ = true;
  return r;
}

RunResult RunResult::Exit(int code) {
  RunResult r;
  r.exit_ = code;
  return r;
}

std::string Context::KeyDir() const {
  return flags_.keys.empty() ? DefaultKeyDir(flags_.db) : flags_.keys;
}

bool Context::ErrIsTerminal() const { return &err_ == &std::cerr && ::isatty(STDERR_FILENO) == 1; }

bool Context::OutIsTerminal() const { return &out_ == &std::cout && ::isatty(STDOUT_FILENO) == 1; }

Result<std::unique_ptr<Store>> Context::OpenStore() const {
  std::error_code ec;
  const bool has_files = fs::is_directory(flags_.db, ec) && !fs::is_empty(flags_.db, ec);
  if (!has_files) {
    return Status::NotFound("no callvault store in " + flags_.db + " (create one with `init`)");
  }
  FileKeyProviderOptions ko;
  ko.create_if_missing = false;
  auto kp = NewFileKeyProvider(KeyDir(), ko);
  if (!kp.ok()) {
    if (kp.status().code() == Code::kNotFound) {
      return Status::KeyError("key directory " + KeyDir() +
                              " does not exist (the default is <db>.keys; pass --keys DIR)");
    }
    return kp.status();
  }
  Options o;
  o.key_provider = *kp;
  o.create_if_missing = false;
  return Store::Open(o, flags_.db);
}

void Context::PrintJson(const nlohmann::json& value) {
  out_ << value.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
}

std::vector<std::unique_ptr<Command>> AllCommands() {
  std::vector<std::unique_ptr<Command>> v;
  AddInitCommands(&v);
  AddTenantCommands(&v);
  AddCallCommands(&v);
  AddRecordingCommands(&v);
  AddSubjectCommands(&v);
  AddInspectCommands(&v);
  AddReceiptCommands(&v);
  AddComplianceCommands(&v);
  AddRawCommands(&v);
  AddDemoCommands(&v);
  return v;
}

}  // namespace callvault::cli
