// callvault recording put | get | list | delete: a call's media, streamed
// in and out in kRecordingChunkBytes pieces (memory stays bounded whatever
// the size), with a progress bar on stderr when it is a terminal.
#include <fmt/format.h>
#include <sys/stat.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ostream>

#include "tools/cli/command.h"
#include "tools/cli/format.h"

namespace callvault::cli {

namespace {

using Clock = std::chrono::steady_clock;

// A one-line progress bar on stderr, drawn only when stderr is a terminal
// and the transfer lasts long enough to need one (small files print nothing).
class ProgressBar {
 public:
  ProgressBar(Context& ctx, std::string verb, uint64_t total)
      : ctx_(ctx), verb_(std::move(verb)), total_(total), enabled_(ctx.ErrIsTerminal()) {}
  ~ProgressBar() { Finish(); }

  void Update(uint64_t done) {
    done_ = done;
    if (!enabled_) return;
    const auto now = Clock::now();
    if (now - start_ < std::chrono::milliseconds(300) ||
        now - last_ < std::chrono::milliseconds(100)) {
      return;
    }
    last_ = now;
    Draw();
  }
  // Draws the final state (if anything was drawn) and ends the line.
  void Finish() {
    if (!enabled_ || finished_) return;
    finished_ = true;
    if (last_ == Clock::time_point()) return;
    Draw();
    ctx_.err() << '\n' << std::flush;
  }

 private:
  void Draw() {
    constexpr int kWidth = 30;
    const double s = std::chrono::duration<double>(Clock::now() - start_).count();
    const double rate = s > 0 ? static_cast<double>(done_) / s : 0;
    std::string line = "\r  " + verb_ + " ";
    if (total_ > 0) {
      const int filled = static_cast<int>(kWidth * std::min<uint64_t>(done_, total_) / total_);
      line +=
          fmt::format("[{}{}] {} / {}", std::string(filled, '#'), std::string(kWidth - filled, '.'),
                      FormatBytes(done_), FormatBytes(total_));
    } else {
      line += FormatBytes(done_);
    }
    line += fmt::format("  {}/s   ", FormatBytes(static_cast<uint64_t>(rate)));
    ctx_.err() << line << std::flush;
  }

  Context& ctx_;
  const std::string verb_;
  const uint64_t total_;
  const bool enabled_;
  const Clock::time_point start_ = Clock::now();
  Clock::time_point last_;
  uint64_t done_ = 0;
  bool finished_ = false;
};

// A content type from a file name's extension, for --type's default.
std::string GuessContentType(const std::string& path) {
  static constexpr std::pair<const char*, const char*> kTypes[] = {
      {".mp3", "audio/mpeg"}, {".wav", "audio/wav"},   {".m4a", "audio/mp4"},
      {".ogg", "audio/ogg"},  {".opus", "audio/ogg"},  {".flac", "audio/flac"},
      {".mp4", "video/mp4"},  {".webm", "video/webm"}, {".mkv", "video/x-matroska"},
  };
  for (const auto& [ext, type] : kTypes) {
    const std::string e = ext;
    if (path.size() > e.size() && path.compare(path.size() - e.size(), e.size(), e) == 0) {
      return type;
    }
  }
  return "application/octet-stream";
}

Status OpenError(const std::string& what, const std::string& path, int e) {
  std::string m = "cannot open " + what + " " + path + ": " + std::strerror(e);
  return e == ENOENT ? Status::NotFound(m) : Status::IOError(m);
}

class RecordingPutCommand final : public Command {
 public:
  std::string Group() const override { return "recording"; }
  std::string Name() const override { return "put"; }
  std::string Help() const override {
    return "Store a recording for a call from FILE (- for stdin), streamed in 1 MiB chunks";
  }
  void AddFlags(CLI::App* app) override {
    app->add_option("TENANT", tenant_id_, "The tenant id")->required();
    app->add_option("CALL_ID", call_id_, "The call id (the call must exist)")->required();
    app->add_option("FILE", path_, "The media file; - for stdin")->required();
    app->add_option("--id", spec_.recording_id,
                    "The recording's id, unique within the call. Default: rec-<random hex>");
    app->add_option("--type", type_,
                    "The content type, e.g. audio/mpeg. Default: from FILE's extension (.mp3, "
                    ".wav, .mp4, ...), else application/octet-stream");
    app->add_option("--duration-ms", spec_.duration_ms,
                    "The media's duration. Default: 0 (unknown)");
    app->add_option("--sha256", sha256_,
                    "The content's SHA-256 (64 hex digits); the put fails and keeps nothing if "
                    "it differs. Default: not checked");
  }
  RunResult Run(Context& ctx) override {
    if (!sha256_.empty()) {
      auto raw = ParseSha256(sha256_, "--sha256");
      if (!raw.ok()) return RunResult::Usage(raw.status().message());
      spec_.expected_sha256 = *raw;
    }
    spec_.content_type = type_.empty() ? GuessContentType(path_) : type_;
    std::FILE* f = path_ == "-" ? stdin : std::fopen(path_.c_str(), "rb");
    if (f == nullptr) return OpenError("input file", path_, errno);
    struct Closer {
      std::FILE* f;
      ~Closer() {
        if (f != stdin) std::fclose(f);
      }
    } closer{f};
    uint64_t total = 0;  // 0: unknown (a pipe)
    struct stat st {};
    if (::fstat(::fileno(f), &st) == 0 && S_ISREG(st.st_mode))
      total = static_cast<uint64_t>(st.st_size);

    auto store = ctx.OpenStore();
    if (!store.ok()) return store.status();
    auto writer = (*store)->CreateRecording(tenant_id_, call_id_, spec_);
    if (!writer.ok()) return writer.status();
    // One chunk's worth at a time: memory stays bounded by the chunk size.
    std::string buf(kRecordingChunkBytes, '\0');
    uint64_t done = 0;
    ProgressBar bar(ctx, "put", total);
    for (;;) {
      const size_t n = std::fread(buf.data(), 1, buf.size(), f);
      if (n > 0) {
        Status s = (*writer)->Append(std::string_view(buf.data(), n));
        if (!s.ok()) return s;  // the writer's destructor removes what was written
        done += n;
        bar.Update(done);
      }
      if (n < buf.size()) break;
    }
    if (std::ferror(f) != 0) {
      return Status::IOError("cannot read input file " + path_ + ": " + std::strerror(errno));
    }
    auto info = (*writer)->Finish();
    bar.Finish();
    if (!info.ok()) return info.status();
    if (ctx.json()) {
      nlohmann::json j = RecordingToJson(*info);
      j["call_id"] = call_id_;
      ctx.PrintJson(j);
    } else {
      PrintRecording(ctx.out(), *info);
    }
    ctx.err() << fmt::format("stored recording {} of call {} in tenant {}: {} in {} chunk(s)\n",
                             info->recording_id, call_id_, tenant_id_, FormatBytes(info->size),
                             info->chunks);
    return {};
  }

 private:
  std::string tenant_id_;
  std::string call_id_;
  std::string path_;
  std::string type_;
  std::string sha256_;
  RecordingSpec spec_;
};

// The call's recordings; kNotFound naming the call if it does not exist
// (ListRecordings lists nothing for an unknown call).
Result<std::vector<RecordingInfo>> ListOfCall(Store* store, const std::string& tenant_id,
                                              const std::string& call_id) {
  auto recordings = store->ListRecordings(tenant_id, call_id);
  if (!recordings.ok() || !recordings->empty()) return recordings;
  auto call = store->GetCall(tenant_id, call_id, kPartMetadata);
  if (!call.ok()) return call.status();
  return recordings;
}

// "A-B" (bytes A to B, inclusive) or "A-" (A to the end): *first = A, and
// *last = B or nullopt.
Status ParseRange(const std::string& text, uint64_t* first, std::optional<uint64_t>* last) {
  const auto bad = [] {
    return Status::InvalidArgument(
        "--range: expected A-B (bytes A to B, inclusive) or A- (to the end)");
  };
  const size_t dash = text.find('-');
  if (dash == std::string::npos || dash == 0) return bad();
  const auto number = [](std::string_view s, uint64_t* v) {
    if (s.empty() || s.size() > 19) return false;
    *v = 0;
    for (char c : s) {
      if (c < '0' || c > '9') return false;
      *v = *v * 10 + static_cast<uint64_t>(c - '0');
    }
    return true;
  };
  if (!number(std::string_view(text).substr(0, dash), first)) return bad();
  if (dash + 1 == text.size()) return Status::OK();
  uint64_t b = 0;
  if (!number(std::string_view(text).substr(dash + 1), &b)) return bad();
  if (b < *first) return Status::InvalidArgument("--range: B is before A");
  *last = b;
  return Status::OK();
}

class RecordingGetCommand final : public Command {
 public:
  std::string Group() const override { return "recording"; }
  std::string Name() const override { return "get"; }
  std::string Help() const override {
    return "Write a recording (or a byte range of it) to stdout or --output, streamed";
  }
  void AddFlags(CLI::App* app) override {
    app->add_option("TENANT", tenant_id_, "The tenant id")->required();
    app->add_option("CALL_ID", call_id_, "The call id")->required();
    app->add_option("RECORDING_ID", recording_id_,
                    "The recording. Default: the call's only recording");
    app->add_option("--range", range_,
                    "Bytes A-B (inclusive; B past the end is clamped) or A- (to the end). "
                    "Default: the whole recording");
    app->add_option("--output", output_,
                    "Write to this file instead of stdout (removed again if the read fails). "
                    "Default: stdout");
  }
  RunResult Run(Context& ctx) override {
    uint64_t first = 0;
    std::optional<uint64_t> last;
    if (!range_.empty()) {
      Status s = ParseRange(range_, &first, &last);
      if (!s.ok()) return RunResult::Usage(s.message());
    }
    if (output_.empty() && ctx.json()) {
      return RunResult::Usage("--json needs --output FILE: stdout carries the recording");
    }
    if (output_.empty() && ctx.OutIsTerminal()) {
      return RunResult::Usage(
          "refusing to write a recording to a terminal: redirect stdout (> FILE) or pass "
          "--output FILE");
    }
    auto store = ctx.OpenStore(OpenMode::kReadOnly);
    if (!store.ok()) return store.status();
    auto recordings = ListOfCall(store->get(), tenant_id_, call_id_);
    if (!recordings.ok()) return recordings.status();
    const RecordingInfo* info = nullptr;
    if (recording_id_.empty()) {
      if (recordings->empty()) return Status::NotFound("the call has no recordings");
      if (recordings->size() > 1) {
        std::string ids;
        for (const auto& r : *recordings) ids += (ids.empty() ? "" : ", ") + r.recording_id;
        return RunResult::Usage(fmt::format(
            "the call has {} recordings ({}); name one as RECORDING_ID", recordings->size(), ids));
      }
      info = &recordings->front();
    } else {
      for (const auto& r : *recordings) {
        if (r.recording_id == recording_id_) info = &r;
      }
      if (info == nullptr) return Status::NotFound("no such recording");
    }
    uint64_t length = info->size;
    if (!range_.empty()) {
      if (first >= info->size) {
        return Status::InvalidArgument(
            fmt::format("--range: starts at byte {}, past the end of the recording ({} bytes)",
                        first, info->size));
      }
      const uint64_t end = last ? std::min(*last + 1, info->size) : info->size;
      length = end - first;
    }

    std::FILE* f = nullptr;
    if (!output_.empty()) {
      f = std::fopen(output_.c_str(), "wb");
      if (f == nullptr) return OpenError("output file", output_, errno);
    }
    ProgressBar bar(ctx, "get", length);
    uint64_t written = 0;
    Status s = (*store)->ReadRecording(
        tenant_id_, call_id_, info->recording_id, first, length, [&](std::string_view bytes) {
          if (f != nullptr) {
            if (std::fwrite(bytes.data(), 1, bytes.size(), f) != bytes.size()) {
              return Status::IOError("cannot write " + output_ + ": " + std::strerror(errno));
            }
          } else if (!ctx.out().write(bytes.data(), static_cast<std::streamsize>(bytes.size()))) {
            return Status::IOError("cannot write to stdout");
          }
          written += bytes.size();
          bar.Update(written);
          return Status::OK();
        });
    if (f != nullptr) {
      if (std::fclose(f) != 0 && s.ok()) s = Status::IOError("cannot write " + output_);
      if (!s.ok()) std::remove(output_.c_str());
    } else {
      ctx.out().flush();
    }
    bar.Finish();
    if (!s.ok()) {
      if (output_.empty() && written > 0) {
        ctx.err() << "callvault: the " << written
                  << " byte(s) already written to stdout are not to be used\n";
      }
      return s;
    }
    if (ctx.json()) {
      nlohmann::json j = RecordingToJson(*info);
      j["call_id"] = call_id_;
      j["offset"] = first;
      j["length"] = written;
      j["output"] = output_;
      ctx.PrintJson(j);
    }
    ctx.err() << fmt::format("wrote {} byte(s) of recording {} ({} bytes", written,
                             info->recording_id, info->size);
    if (!range_.empty()) ctx.err() << fmt::format("; range {}-{}", first, first + length - 1);
    ctx.err() << ")" << (output_.empty() ? "" : " to " + output_) << '\n';
    return {};
  }

 private:
  std::string tenant_id_;
  std::string call_id_;
  std::string recording_id_;
  std::string range_;
  std::string output_;
};

class RecordingListCommand final : public Command {
 public:
  std::string Group() const override { return "recording"; }
  std::string Name() const override { return "list"; }
  std::string Help() const override { return "List a call's complete recordings"; }
  void AddFlags(CLI::App* app) override {
    app->add_option("TENANT", tenant_id_, "The tenant id")->required();
    app->add_option("CALL_ID", call_id_, "The call id")->required();
  }
  RunResult Run(Context& ctx) override {
    auto store = ctx.OpenStore(OpenMode::kReadOnly);
    if (!store.ok()) return store.status();
    auto recordings = ListOfCall(store->get(), tenant_id_, call_id_);
    if (!recordings.ok()) return recordings.status();
    if (ctx.json()) {
      nlohmann::json a = nlohmann::json::array();
      for (const auto& r : *recordings) a.push_back(RecordingToJson(r));
      ctx.PrintJson({{"call_id", call_id_}, {"recordings", std::move(a)}});
    } else {
      PrintRecordingTable(ctx.out(), *recordings);
    }
    return {};
  }

 private:
  std::string tenant_id_;
  std::string call_id_;
};

class RecordingDeleteCommand final : public Command {
 public:
  std::string Group() const override { return "recording"; }
  std::string Name() const override { return "delete"; }
  std::string Help() const override { return "Delete one recording of a call"; }
  void AddFlags(CLI::App* app) override {
    app->add_option("TENANT", tenant_id_, "The tenant id")->required();
    app->add_option("CALL_ID", call_id_, "The call id")->required();
    app->add_option("RECORDING_ID", recording_id_, "The recording id")->required();
  }
  RunResult Run(Context& ctx) override {
    auto store = ctx.OpenStore();
    if (!store.ok()) return store.status();
    Status s = (*store)->DeleteRecording(tenant_id_, call_id_, recording_id_);
    if (!s.ok()) return s;
    if (ctx.json()) {
      ctx.PrintJson({{"call_id", call_id_}, {"recording_id", recording_id_}, {"deleted", true}});
    } else {
      ctx.out() << "deleted  " << recording_id_ << '\n';
    }
    return {};
  }

 private:
  std::string tenant_id_;
  std::string call_id_;
  std::string recording_id_;
};

}  // namespace

void AddRecordingCommands(std::vector<std::unique_ptr<Command>>* out) {
  out->push_back(std::make_unique<RecordingPutCommand>());
  out->push_back(std::make_unique<RecordingGetCommand>());
  out->push_back(std::make_unique<RecordingListCommand>());
  out->push_back(std::make_unique<RecordingDeleteCommand>());
}

}  // namespace callvault::cli
