#include "tools/cli/demo.h"

#include <fmt/format.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <ostream>
#include <regex>
#include <sstream>
#include <thread>

#include "callvault/key_provider.h"
#include "tools/cli/cli.h"
#include "tools/cli/format.h"
#include "workload/workload.h"

namespace callvault::cli {

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr const char* kTenantNames[] = {"acme",  "globex", "initech", "umbrella",  "hooli",
                                        "stark", "wayne",  "wonka",   "cyberdyne", "tyrell"};
constexpr uint32_t kRetentionDays[] = {365, 730, 0, 90, 1095};
constexpr char kRegion[] = "eu-west";

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }
double MiB(uint64_t bytes) { return static_cast<double>(bytes) / (1 << 20); }

// Bytes of every string in a call: what an application would call its content.
uint64_t ContentBytes(const Call& c) {
  uint64_t n = c.title.size() + c.call_id.size() + c.source_call_id.size() + c.workspace_id.size() +
               c.language.size() + c.status.size() + c.owner_user_id.size();
  for (const auto& t : c.tags) n += t.size();
  for (const auto& t : c.team_ids) n += t.size();
  for (const auto& p : c.participants) {
    n += p.name.size() + p.email.size() + p.phone.size() + p.title.size() + p.company.size() +
         p.user_id.size();
  }
  for (const auto& l : c.crm_links) n += l.system.size() + l.object_id.size();
  for (const auto& s : c.transcript) n += s.text.size();
  n += c.insights.summary.size() + c.insights.model_name.size() + c.insights.model_version.size();
  for (const auto& a : c.insights.action_items) n += a.text.size() + a.owner_user_id.size();
  for (const auto& t : c.insights.topics) n += t.size();
  for (const auto& t : c.insights.trackers) n += t.name.size();
  return n;
}

// This executable, for the commands the demo suggests.
std::string SelfPath() {
  std::error_code ec;
  fs::path p = fs::read_symlink("/proc/self/exe", ec);
  return ec ? std::string("callvault") : p.string();
}

uint64_t TreeBytes(const std::string& dir, uint64_t* files) {
  uint64_t bytes = 0;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_regular_file(ec)) {
      ++*files;
      bytes += it->file_size(ec);
    }
  }
  return bytes;
}

// Batches from the generator thread to the ingesting thread.
class BatchQueue {
 public:
  explicit BatchQueue(size_t capacity) : capacity_(capacity) {}
  // False once the consumer cancelled.
  bool Push(std::vector<Call> batch) {
    std::unique_lock<std::mutex> l(mu_);
    cv_.wait(l, [&] { return cancelled_ || q_.size() < capacity_; });
    if (cancelled_) return false;
    q_.push_back(std::move(batch));
    cv_.notify_all();
    return true;
  }
  // False when the producer is done and the queue is empty.
  bool Pop(std::vector<Call>* batch) {
    std::unique_lock<std::mutex> l(mu_);
    cv_.wait(l, [&] { return closed_ || !q_.empty(); });
    if (q_.empty()) return false;
    *batch = std::move(q_.front());
    q_.pop_front();
    cv_.notify_all();
    return true;
  }
  void Close() { Set(&closed_); }
  void Cancel() { Set(&cancelled_); }

 private:
  void Set(bool* flag) {
    std::lock_guard<std::mutex> l(mu_);
    *flag = true;
    cv_.notify_all();
  }
  const size_t capacity_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::vector<Call>> q_;
  bool closed_ = false;
  bool cancelled_ = false;
};

class Demo {
 public:
  Demo(const DemoConfig& config, Context& ctx) : cfg_(config), ctx_(ctx), out_(ctx.out()) {}
  RunResult Run();

 private:
  Status PrepareDirectory();
  void Section(const std::string& title) { out_ << "\n== " << title << " ==\n"; }
  // Runs `callvault --db <store> args...` in-process, showing the command
  // (with each key of `shown` replaced by its value, to keep personal data
  // off the screen).
  int Cli(const std::vector<std::string>& args,
          const std::map<std::string, std::string>& shown = {});
  // Cli, timed in milliseconds (opening the store included).
  int TimedCli(const std::vector<std::string>& args, double* ms,
               const std::map<std::string, std::string>& shown = {});
  Status CreateTenants(Store* store);
  Status Ingest(Store* store);
  void Progress(uint64_t done, bool final);
  void ReportIngest();
  Status Purge();
  void ShowListAndGet();
  Status ShowRecordings();
  void ShowRecordingsPurged();
  void ShowVerify();
  Status ShowErasure();
  void ShowRetention();
  void Summary(const StoreStats& stats);
  // The demo's store, opened with its keys (closed before each Cli call).
  Result<std::unique_ptr<Store>> OpenStore() const;

  const DemoConfig cfg_;
  Context& ctx_;
  std::ostream& out_;
  bool tty_ = ::isatty(STDERR_FILENO) == 1;
  Clock::time_point start_ = Clock::now();
  std::string dir_, store_, keys_;
  std::vector<std::string> tenants_;
  std::string first_cf_;                        // the first tenant's column family
  std::string purged_;                          // the tenant the demo purges
  std::string purged_call_id_;                  // one of its calls
  std::vector<std::string> recorded_call_ids_;  // calls of purged_ given recordings
  // Measurements.
  uint64_t calls_ = 0, content_bytes_ = 0, batches_ = 0, transcript_bytes_ = 0;
  double generate_s_ = 0, put_s_ = 0, ingest_wall_s_ = 0, flush_s_ = 0, purge_ms_ = 0,
         verify_s_ = 0;
  // Recordings, erasure and retention.
  uint64_t recording_bytes_ = 0;
  size_t recordings_ = 0;
  double recording_put_ms_ = 0, recording_get_ms_ = 0;
  bool recordings_identical_ = false, recordings_gone_ = false;
  std::string erase_summary_ = "skipped", retention_summary_ = "skipped";
  std::string last_output_;  // of the last Cli call
};

Status Demo::PrepareDirectory() {
  std::error_code ec;
  if (cfg_.dir.empty()) {
    std::string tmpl = "/tmp/callvault-demo-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) {
      return Status::IOError("cannot create a directory under /tmp");
    }
    dir_ = tmpl;
  } else {
    dir_ = cfg_.dir;
    fs::create_directories(dir_, ec);
    if (ec) return Status::IOError("cannot create " + dir_ + ": " + ec.message());
  }
  store_ = dir_ + "/store";
  keys_ = DefaultKeyDir(store_);
  for (const auto& p : {store_, keys_}) {
    if (fs::exists(p, ec) && !fs::is_empty(p, ec)) {
      return Status::AlreadyExists(p + " exists already; give the demo a new --dir");
    }
  }
  return Status::OK();
}

Result<std::unique_ptr<Store>> Demo::OpenStore() const {
  auto kp = NewFileKeyProvider(keys_, {.create_if_missing = false});
  if (!kp.ok()) return kp.status();
  Options o;
  o.key_provider = *kp;
  return Store::Open(o, store_);
}

int Demo::Cli(const std::vector<std::string>& args,
              const std::map<std::string, std::string>& shown_as) {
  std::string shown = "$ callvault --db $DB";
  for (const auto& a : args) {
    auto it = shown_as.find(a);
    shown += " " + (it == shown_as.end() ? a : it->second);
  }
  out_ << shown << '\n';
  std::vector<std::string> full = {"callvault", "--db", store_};
  full.insert(full.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : full) argv.push_back(a.data());
  argv.push_back(nullptr);
  // Errors go to the same stream, so the walkthrough reads in order.
  std::ostringstream captured;
  int rc = RunCli(static_cast<int>(full.size()), argv.data(), captured, captured);
  last_output_ = captured.str();
  out_ << last_output_;
  if (rc != 0) out_ << "[exit " << rc << "]\n";
  return rc;
}

int Demo::TimedCli(const std::vector<std::string>& args, double* ms,
                   const std::map<std::string, std::string>& shown) {
  auto t0 = Clock::now();
  int rc = Cli(args, shown);
  *ms = Seconds(Clock::now() - t0) * 1000;
  return rc;
}

Status Demo::CreateTenants(Store* store) {
  Table table({"TENANT", "RETENTION", "SHARD", "COLUMN_FAMILY"});
  for (uint32_t i = 0; i < cfg_.tenants; ++i) {
    std::string id = i < std::size(kTenantNames) ? kTenantNames[i] : fmt::format("tenant-{:03}", i);
    TenantSpec spec{id, "", kRetentionDays[i % std::size(kRetentionDays)]};
    auto t = store->CreateTenant(spec);
    if (!t.ok()) return t.status();
    table.Add({t->tenant_id, spec.retention_days ? fmt::format("{}d", spec.retention_days) : "none",
               std::to_string(t->shard), t->column_family});
    tenants_.push_back(id);
    if (first_cf_.empty()) first_cf_ = t->column_family;
  }
  out_ << "Each tenant gets its own random data key (sealed in the keyring) and its own\n"
          "column family, named by an opaque number. Like `callvault tenant create ID`:\n";
  table.Print(out_);
  purged_ = tenants_[1];
  return Status::OK();
}

void Demo::Progress(uint64_t done, bool final) {
  if (!tty_) return;
  constexpr int kWidth = 40;
  int filled = cfg_.calls ? static_cast<int>(kWidth * done / cfg_.calls) : kWidth;
  ctx_.err() << fmt::format("\r  [{}{}] {}/{} calls", std::string(filled, '#'),
                            std::string(kWidth - filled, '.'), done, cfg_.calls)
             << (final ? "\n" : "") << std::flush;
}

Status Demo::Ingest(Store* store) {
  workload::GeneratorOptions go;
  go.seed = cfg_.seed;
  go.transcript_scale = cfg_.transcript_scale;
  BatchQueue queue(4);
  double generate_s = 0;
  std::thread producer([&] {
    workload::Generator gen(go);
    for (uint32_t done = 0; done < cfg_.calls;) {
      uint32_t n = std::min(cfg_.batch, cfg_.calls - done);
      auto t0 = Clock::now();
      std::vector<Call> batch = gen.Batch(n);
      generate_s += Seconds(Clock::now() - t0);
      if (!queue.Push(std::move(batch))) return;
      done += n;
    }
    queue.Close();
  });
  Status status;
  auto wall0 = Clock::now();
  std::vector<Call> batch;
  while (queue.Pop(&batch)) {
    const std::string& tenant = tenants_[batches_ % tenants_.size()];
    auto t0 = Clock::now();
    auto r = store->PutCalls(tenant, batch);
    put_s_ += Seconds(Clock::now() - t0);
    if (!r.ok()) {
      status = r.status();
      queue.Cancel();
      break;
    }
    for (const Call& c : batch) {
      content_bytes_ += ContentBytes(c);
      transcript_bytes_ += workload::TranscriptBytes(c);
    }
    if (tenant == purged_) {
      if (purged_call_id_.empty()) purged_call_id_ = batch.front().call_id;
      for (size_t i = 0; i < batch.size() && recorded_call_ids_.size() < 3; ++i) {
        recorded_call_ids_.push_back(batch[i].call_id);
      }
    }
    calls_ += batch.size();
    ++batches_;
    Progress(calls_, false);
  }
  producer.join();
  ingest_wall_s_ = Seconds(Clock::now() - wall0);
  generate_s_ = generate_s;
  Progress(calls_, true);
  if (!status.ok()) return status;
  auto f0 = Clock::now();
  CV_RETURN_IF_ERROR(store->Flush());
  flush_s_ = Seconds(Clock::now() - f0);
  ReportIngest();
  return Status::OK();
}

void Demo::ReportIngest() {
  out_ << fmt::format(
      "Stored {} calls in {} synced batches (PutCalls, up to {} calls each, atomic per tenant).\n"
      "Call content: {:.1f} MiB, of which transcripts {:.1f} MiB.\n"
      "Store time: {:.2f} s in PutCalls = {:.0f} calls/s, {:.1f} MiB/s (compress, encrypt, "
      "fsync).\n"
      "Wall time: {:.2f} s (the generator ran alongside on its own thread: {:.2f} s).\n"
      "Flushed the memtables to SST files in {:.2f} s.\n",
      calls_, batches_, cfg_.batch, MiB(content_bytes_), MiB(transcript_bytes_), put_s_,
      put_s_ > 0 ? calls_ / put_s_ : 0.0, put_s_ > 0 ? MiB(content_bytes_) / put_s_ : 0.0,
      ingest_wall_s_, generate_s_, flush_s_);
}

void Demo::ShowListAndGet() {
  out_ << "The newest calls of " << tenants_[0]
       << ". Titles are personal data: redacted unless --reveal.\n";
  Cli({"call", "list", tenants_[0], "--limit", "5"});
  // The newest call of the first tenant, and the size of its transcript.
  std::string call_id;
  std::string transcript_note;
  auto store = OpenStore();
  if (store.ok()) {
    ListQuery q;
    q.limit = 1;
    auto page = (*store)->ListCalls(tenants_[0], q);
    if (page.ok() && !page->calls.empty()) {
      call_id = page->calls[0].call_id;
      auto full = (*store)->GetCall(tenants_[0], call_id, kPartTranscript);
      if (full.ok()) {
        transcript_note = fmt::format(
            "(Not shown: its transcript, {} segments and {} of text;\n"
            " `--parts transcript` prints it, redacted unless --reveal.)\n",
            full->transcript.size(), FormatBytes(workload::TranscriptBytes(*full)));
      }
    }
  }
  store = Status::Internal("closed");  // the CLI below opens the store itself
  if (call_id.empty()) return;
  out_ << "\nThat call: names, emails, phones, job titles, the title and the summary are\n"
          "redacted; ids, times and labels are shown.\n";
  Cli({"call", "get", tenants_[0], call_id, "--parts", "metadata,participants,insights"});
  out_ << transcript_note;
  out_ << "\nIts first 30 seconds, read as a transcript window:\n";
  Cli({"call", "transcript", tenants_[0], call_id, "--to-ms", "30000"});
  out_ << "\nFilters combine (the planner scans the most selective blind index and checks the\n"
          "rest on sealed summaries): outbound calls of at least a minute,\n";
  Cli({"call", "list", tenants_[0], "--direction", "outbound", "--min-duration", "60000", "--limit",
       "3"});
}

Status Demo::Purge() {
  out_ << "Purging crypto-shreds the tenant (its data key leaves the keyring, which is\n"
          "re-sealed under a new KEK generation; the old KEK is destroyed) and then drops\n"
          "its column family. Like `callvault tenant purge "
       << purged_ << " --yes`:\n";
  auto store = OpenStore();
  if (!store.ok()) return store.status();
  auto t0 = Clock::now();
  auto receipt = (*store)->PurgeTenant(purged_);
  purge_ms_ = Seconds(Clock::now() - t0) * 1000;
  if (!receipt.ok()) return receipt.status();
  PrintReceipt(out_, *receipt);
  out_ << fmt::format("Purged {} in {:.1f} ms: {} records and {} made unreadable and dropped.\n",
                      purged_, purge_ms_, receipt->records, FormatBytes(receipt->bytes));
  return Status::OK();
}

Status Demo::ShowRecordings() {
  if (recorded_call_ids_.empty()) return Status::OK();
  out_ << "Recordings are streamed in 1 MiB chunks, each sealed with XChaCha20-Poly1305\n"
          "(secretstream) under a key bound to the tenant, the call and the recording, and\n"
          "stored in the tenant's column family (large values in blob files). These are\n"
          "random bytes standing in for encoded media, on calls of "
       << purged_ << ", the tenant purged below.\n";
  const std::string media = dir_ + "/media";
  std::error_code ec;
  fs::create_directories(media, ec);
  if (ec) return Status::IOError("cannot create " + media + ": " + ec.message());
  // 3.2, 5.5 and 7.8 MiB: not multiples of the chunk size.
  constexpr uint64_t kSizes[] = {(3u << 20) + 209715, (5u << 20) + 524288, (7u << 20) + 838861};
  struct Made {
    std::string call_id, id, path, bytes;
  };
  std::vector<Made> made;
  for (size_t i = 0; i < recorded_call_ids_.size(); ++i) {
    Made m{recorded_call_ids_[i], fmt::format("rec-{}", i + 1),
           fmt::format("{}/rec-{}.mp3", media, i + 1),
           workload::RandomBytes(cfg_.seed * 1000 + i, kSizes[i % std::size(kSizes)])};
    std::ofstream(m.path, std::ios::binary) << m.bytes;
    made.push_back(std::move(m));
  }
  // A real (tiny) recording too, if espeak-ng is there to speak one.
  std::string wav = media + "/hello.wav";
  const bool have_wav =
      std::system("command -v espeak-ng >/dev/null 2>&1") == 0 &&
      std::system(("espeak-ng -w '" + wav +
                   "' 'This call is recorded and encrypted by callvault.' >/dev/null 2>&1")
                      .c_str()) == 0 &&
      fs::file_size(wav, ec) > 0 && !ec;
  for (const auto& m : made) {
    double ms = 0;
    TimedCli({"recording", "put", purged_, m.call_id, m.path, "--id", m.id, "--type", "audio/mpeg",
              "--duration-ms", std::to_string(m.bytes.size() / 16)},
             &ms);
    recording_put_ms_ += ms;
    recording_bytes_ += m.bytes.size();
    ++recordings_;
  }
  if (have_wav) {
    out_ << "A short WAV spoken by espeak-ng:\n";
    Cli({"recording", "put", purged_, recorded_call_ids_[0], wav, "--id", "hello"});
  }
  out_ << "\nA call's recordings (the SHA-256 is computed by the store while it writes):\n";
  Cli({"recording", "list", purged_, made[0].call_id});
  out_ << "\nRead back whole, and a byte range across a chunk boundary (only the chunks that\n"
          "overlap the range are decrypted):\n";
  bool identical = true;
  for (const auto& m : made) {
    const std::string back = m.path + ".back";
    double ms = 0;
    TimedCli({"recording", "get", purged_, m.call_id, m.id, "--output", back}, &ms);
    recording_get_ms_ += ms;
    std::ifstream in(back, std::ios::binary);
    std::stringstream got;
    got << in.rdbuf();
    identical = identical && got.str() == m.bytes;
    fs::remove(back, ec);
  }
  const std::string part = media + "/range.bin";
  Cli({"recording", "get", purged_, made[0].call_id, made[0].id, "--range", "1048000-1049599",
       "--output", part});
  {
    std::ifstream in(part, std::ios::binary);
    std::stringstream got;
    got << in.rdbuf();
    identical = identical && got.str() == made[0].bytes.substr(1048000, 1600);
  }
  recordings_identical_ = identical;
  out_ << (identical ? "Every byte read back is identical to what was written.\n"
                     : "MISMATCH: bytes read back differ from what was written.\n");
  fs::remove_all(media, ec);  // the store keeps the recordings; the sources go
  return Status::OK();
}

void Demo::ShowRecordingsPurged() {
  if (recorded_call_ids_.empty()) return;
  out_ << "\nIts recordings went with it (same key, same column family, same blob files):\n";
  const std::string out = dir_ + "/should-not-exist.bin";
  const int list_rc = Cli({"recording", "list", purged_, recorded_call_ids_[0]});
  const int get_rc =
      Cli({"recording", "get", purged_, recorded_call_ids_[0], "rec-1", "--output", out});
  std::error_code ec;
  recordings_gone_ = list_rc == 66 && get_rc == 66 && !fs::exists(out, ec);
}

Status Demo::ShowErasure() {
  const std::string tenant = tenants_[0];
  // The external participant (a customer's contact: a data subject) of the
  // first calls listed who appears in the most calls.
  std::string email;
  size_t best = 0;
  {
    auto store = OpenStore();
    if (!store.ok()) return store.status();
    ListQuery q;
    q.limit = 20;
    q.scope = CallScope::kExternal;
    auto page = (*store)->ListCalls(tenant, q);
    if (!page.ok()) return page.status();
    for (const Call& c : page->calls) {
      auto full = (*store)->GetCall(tenant, c.call_id, kPartParticipants);
      if (!full.ok()) return full.status();
      for (const auto& p : full->participants) {
        if (p.affiliation != Affiliation::kExternal || p.email.empty()) continue;
        auto refs = (*store)->FindReferences(tenant, p.email);
        if (refs.ok() && refs->size() > best) {
          best = refs->size();
          email = p.email;
        }
      }
    }
  }
  if (email.empty()) {
    out_ << "(No external participant with an email in " << tenant << "; skipped.)\n";
    return Status::OK();
  }
  const std::map<std::string, std::string> shown = {{email, "$EMAIL"}};
  out_ << "A customer's contact asks to be forgotten. EMAIL is their address (personal data:\n"
          "not shown, and the CLI never prints it without --reveal). Which calls mention it?\n";
  Cli({"refs", tenant, "--email", email}, shown);
  out_ << "\nA dry run counts and changes nothing; --max-calls guards against a too-broad\n"
          "request (exit 69 when more calls match):\n";
  Cli({"erase", tenant, "--email", email, "--dry-run"}, shown);
  out_ << "\nRedact them from those calls (their name, email, phone, title, CRM links and\n"
          "their transcript segments' speaker identity), then flush and compact so no live\n"
          "file keeps the old bytes; the signed receipt names no person:\n";
  double ms = 0;
  int rc = TimedCli({"erase", tenant, "--email", email, "--mode", "redact"}, &ms, shown);
  out_ << "\nAfterwards nothing references the address:\n";
  Cli({"refs", tenant, "--email", email}, shown);
  erase_summary_ = rc == 0 ? fmt::format(
                                 "{} call(s) redacted in {:.0f} ms (flush and compaction "
                                 "included)",
                                 best, ms)
                           : "failed";
  return Status::OK();
}

void Demo::ShowRetention() {
  const std::string year_ahead = FormatTime(NowMicros() + int64_t{365} * 86400 * 1000000);
  out_ << "Tenants keep calls 90 days to 3 years (or forever). A dry run with the clock a\n"
          "year ahead shows what retention would remove then (pinned and held calls stay):\n";
  double ms = 0;
  if (TimedCli({"retention", "run", "--now", year_ahead, "--dry-run"}, &ms) != 0) return;
  std::smatch m;
  static const std::regex kRemoved("calls_to_remove +(\\d+)");
  if (std::regex_search(last_output_, m, kRemoved)) {
    retention_summary_ =
        fmt::format("{} calls would go a year ahead (dry run, {:.0f} ms)", m[1].str(), ms);
  }
}

void Demo::ShowVerify() {
  out_ << "verify decrypts and checks every record of every live tenant:\n";
  auto t0 = Clock::now();
  Cli({"verify"});
  verify_s_ = Seconds(Clock::now() - t0);
  out_ << "\nThe purged tenant fails cleanly, with a specific error and exit code:\n";
  if (!purged_call_id_.empty()) Cli({"call", "get", purged_, purged_call_id_});
  Cli({"verify", "--tenant", purged_});
  out_ << "\n...while the other tenants still pass, one by one:\n";
  for (const auto& t : tenants_) {
    if (t != purged_) Cli({"verify", "--tenant", t});
  }
}

void Demo::Summary(const StoreStats& stats) {
  uint64_t key_files = 0;
  uint64_t key_bytes = TreeBytes(keys_, &key_files);
  const double total_s = Seconds(Clock::now() - start_);
  PrintFields(
      out_,
      {
          {"tenants", fmt::format("{} created, 1 purged ({}), {} live", tenants_.size(), purged_,
                                  stats.tenants.size())},
          {"calls", fmt::format("{} ingested (seed {}, transcript scale {})", calls_, cfg_.seed,
                                cfg_.transcript_scale)},
          {"call content", fmt::format("{:.1f} MiB", MiB(content_bytes_))},
          {"ingest",
           fmt::format("{:.0f} calls/s, {:.1f} MiB/s ({:.2f} s in PutCalls, {} "
                       "synced batches)",
                       put_s_ > 0 ? calls_ / put_s_ : 0.0,
                       put_s_ > 0 ? MiB(content_bytes_) / put_s_ : 0.0, put_s_, batches_)},
          {"recordings",
           recordings_ == 0
               ? std::string("none")
               : fmt::format(
                     "{} ({:.1f} MiB) on {}: put {:.0f} MiB/s, read {:.0f} MiB/s "
                     "(through the CLI, opening the store included); read back {}; "
                     "{} after the purge",
                     recordings_, MiB(recording_bytes_), purged_,
                     recording_put_ms_ > 0 ? MiB(recording_bytes_) / recording_put_ms_ * 1000 : 0.0,
                     recording_get_ms_ > 0 ? MiB(recording_bytes_) / recording_get_ms_ * 1000 : 0.0,
                     recordings_identical_ ? "identical" : "DIFFERENT",
                     recordings_gone_ ? "unreadable (tenant_purged)" : "STILL READABLE")},
          {"purge", fmt::format("{:.1f} ms", purge_ms_)},
          {"verify", fmt::format("{:.2f} s for every live record", verify_s_)},
          {"erasure", erase_summary_},
          {"retention", retention_summary_},
          {"bytes on disk", fmt::format("{} in {} files (store); {} in {} files (keys)",
                                        FormatBytes(stats.total_bytes), stats.files,
                                        FormatBytes(key_bytes), key_files)},
          {"total time", fmt::format("{:.1f} s", total_s)},
      });
}

RunResult Demo::Run() {
  if (cfg_.tenants < 2) return RunResult::Usage("--tenants must be at least 2 (one is purged)");
  if (cfg_.batch == 0) return RunResult::Usage("--batch must be at least 1");
  CV_RETURN_IF_ERROR(PrepareDirectory());
  out_ << "callvault demo: a conversation-intelligence call store, end to end.\n"
       << "Directory: " << dir_ << "\n  store: " << store_ << "\n  keys:  " << keys_
       << "  (beside the store, never inside it)\n"
       << "Commands below use DB=" << store_ << "\n";

  Section("1. Create the store");
  if (Cli({"init", "--region", kRegion}) != 0) return Status::Internal("init failed");
  {
    auto store = OpenStore();
    if (!store.ok()) return store.status();
    Section(fmt::format("2. Create {} tenants", cfg_.tenants));
    CV_RETURN_IF_ERROR(CreateTenants(store->get()));
    Section(fmt::format("3. Ingest {} calls from the seeded generator", cfg_.calls));
    out_ << "About 60% short dialer calls, 35% meetings (~65 KB transcripts), 5% long meetings\n"
            "(~250 KB); transcripts are English words with a Zipf distribution.\n";
    CV_RETURN_IF_ERROR(Ingest(store->get()));
  }
  Section("4. List a page and fetch a call");
  ShowListAndGet();
  Section("5. Recordings");
  CV_RETURN_IF_ERROR(ShowRecordings());
  Section("6. Stats: sizes per tenant");
  Cli({"stats"});
  Section("7. Purge tenant " + purged_);
  CV_RETURN_IF_ERROR(Purge());
  ShowRecordingsPurged();
  Section("8. Verify");
  ShowVerify();
  Section("9. Erase a data subject");
  CV_RETURN_IF_ERROR(ShowErasure());
  Section("10. Retention");
  ShowRetention();
  Section("11. Verify the receipt chain and the audit log");
  out_ << "Every purge, erasure and retention sweep appends a receipt signed with the store's\n"
          "Ed25519 key and chained by hash; security events go to a hash-chained audit log:\n";
  Cli({"receipts", "list"});
  Cli({"receipts", "verify"});
  Cli({"audit", "verify"});

  Section("Summary");
  {
    auto store = OpenStore();
    if (!store.ok()) return store.status();
    auto stats = (*store)->Stats();
    if (!stats.ok()) return stats.status();
    Summary(*stats);
  }
  out_ << "\nTry it yourself (the directory stays; remove it with rm -rf " << dir_ << "):\n"
       << "  DB=" << store_ << "\n"
       << "  alias callvault=" << SelfPath() << "\n"
       << "  callvault --db $DB tenant list\n"
       << "  callvault --db $DB call list " << tenants_[0] << " --limit 3 --reveal\n"
       << "  callvault --db $DB receipts list\n"
       << "  callvault --db $DB audit list\n"
       << "  callvault --db $DB call list " << tenants_[0]
       << " --direction outbound --min-duration 60000\n"
       << "  callvault --db $DB raw ldb list_column_families\n"
       << "  callvault --db $DB raw ldb --column_family=" << first_cf_
       << " --hex scan --max_keys=3   # ciphertext only\n";
  return {};
}

class DemoCommand final : public Command {
 public:
  std::string Name() const override { return "demo"; }
  std::string Help() const override {
    return "Build a realistic synthetic store and walk its lifecycle (ingest, recordings, purge, "
           "erasure, retention, verify)";
  }
  bool NeedsStore() const override { return false; }
  void AddFlags(CLI::App* app) override;
  RunResult Run(Context& ctx) override { return RunDemo(config_, ctx); }

 private:
  DemoConfig config_;
};

void DemoCommand::AddFlags(CLI::App* app) {
  app->add_option("--dir", config_.dir,
                  "Put the store in DIR/store and its keys in DIR/store.keys, and leave them. "
                  "Default: a new directory /tmp/callvault-demo-XXXXXX");
  app->add_option("--tenants", config_.tenants, "Tenants to create (one is purged). Default: 10")
      ->check(CLI::Range(2, 10000));
  app->add_option("--calls", config_.calls, "Calls to ingest. Default: 5000")
      ->check(CLI::Range(1, 10000000));
  app->add_option("--seed", config_.seed, "The generator's seed. Default: 42");
  app->add_option("--transcript-scale", config_.transcript_scale,
                  "Multiplies transcript lengths (1 = product sizes). Default: 1")
      ->check(CLI::Range(0.001, 4.0));
  app->add_option("--batch", config_.batch, "Calls per synced PutCalls batch. Default: 100")
      ->check(CLI::Range(1, 10000));
}

}  // namespace

RunResult RunDemo(const DemoConfig& config, Context& ctx) { return Demo(config, ctx).Run(); }

void AddDemoCommands(std::vector<std::unique_ptr<Command>>* out) {
  out->push_back(std::make_unique<DemoCommand>());
}

}  // namespace callvault::cli
