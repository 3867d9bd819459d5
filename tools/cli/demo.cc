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
#include <mutex>
#include <ostream>
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
  // Runs `callvault --db <store> args...` in-process, showing the command.
  int Cli(const std::vector<std::string>& args);
  Status CreateTenants(Store* store);
  Status Ingest(Store* store);
  void Progress(uint64_t done, bool final);
  void ReportIngest();
  Status Purge();
  void ShowListAndGet();
  void ShowVerify();
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
  std::string first_cf_;        // the first tenant's column family
  std::string purged_;          // the tenant the demo purges
  std::string purged_call_id_;  // one of its calls
  // Measurements.
  uint64_t calls_ = 0, content_bytes_ = 0, batches_ = 0, transcript_bytes_ = 0;
  double generate_s_ = 0, put_s_ = 0, ingest_wall_s_ = 0, flush_s_ = 0, purge_ms_ = 0,
         verify_s_ = 0;
  uint64_t verified_records_ = 0;
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

int Demo::Cli(const std::vector<std::string>& args) {
  std::string shown = "$ callvault --db $DB";
  for (const auto& a : args) shown += " " + a;
  out_ << shown << '\n';
  std::vector<std::string> full = {"callvault", "--db", store_};
  full.insert(full.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : full) argv.push_back(a.data());
  argv.push_back(nullptr);
  // Errors go to the same stream, so the walkthrough reads in order.
  int rc = RunCli(static_cast<int>(full.size()), argv.data(), out_, out_);
  if (rc != 0) out_ << "[exit " << rc << "]\n";
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
    if (tenant == purged_ && purged_call_id_.empty()) purged_call_id_ = batch.front().call_id;
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
  PrintFields(out_,
              {
                  {"tenants", fmt::format("{} created, 1 purged ({}), {} live", tenants_.size(),
                                          purged_, stats.tenants.size())},
                  {"calls", fmt::format("{} ingested (seed {}, transcript scale {})", calls_,
                                        cfg_.seed, cfg_.transcript_scale)},
                  {"call content", fmt::format("{:.1f} MiB", MiB(content_bytes_))},
                  {"ingest",
                   fmt::format("{:.0f} calls/s, {:.1f} MiB/s ({:.2f} s in PutCalls, {} "
                               "synced batches)",
                               put_s_ > 0 ? calls_ / put_s_ : 0.0,
                               put_s_ > 0 ? MiB(content_bytes_) / put_s_ : 0.0, put_s_, batches_)},
                  {"purge", fmt::format("{:.1f} ms", purge_ms_)},
                  {"verify", fmt::format("{:.2f} s for every live record", verify_s_)},
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
  Section("5. Stats: sizes per tenant");
  Cli({"stats"});
  Section("6. Purge tenant " + purged_);
  CV_RETURN_IF_ERROR(Purge());
  Section("7. Verify");
  ShowVerify();
  Section("8. Verify the receipt chain");
  Cli({"receipts", "verify"});

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
       << "  callvault --db $DB raw ldb list_column_families\n"
       << "  callvault --db $DB raw ldb --column_family=" << first_cf_
       << " --hex scan --max_keys=3   # ciphertext only\n";
  return {};
}

class DemoCommand final : public Command {
 public:
  std::string Name() const override { return "demo"; }
  std::string Help() const override {
    return "Build a realistic synthetic store and walk its lifecycle (ingest, purge, verify)";
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
