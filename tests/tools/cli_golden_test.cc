// Tests of the real `callvault` binary (CALLVAULT_BIN) against fresh stores.
//
// CliGolden runs testdata/cli.txt, in the style of pebble's tool/testdata:
// each case is one command line, a "----" line, and the exact expected
// output: stdout, then each stderr line prefixed "stderr: ", then
// "exit <code>". The output ends at a blank line; output that contains blank
// lines is wrapped in a second pair of "----" lines. Lines starting with '#'
// are comments. In a command line:
//   callvault   the binary under test
//   $DB $TMP    a store path in a fresh temporary directory, and that directory
//   $TESTDATA   tests/tools/testdata
//   $CURSOR     the last cursor printed (text "next cursor: C" or JSON "next_cursor")
//   < FILE      stdin from FILE (stdin is /dev/null otherwise)
// What varies between runs is normalised before comparing: the temporary
// directory becomes $TMP (and testdata $TESTDATA), cursors <cursor>, times within two days of now
// (RFC 3339 or integer microseconds) <now>, and hex strings of 32 digits or
// more (store ids, keys, signatures, hashes) <hex>, and a receipt's
// approximate `bytes` <bytes>.
//
// CALLVAULT_UPDATE_GOLDEN=1 rewrites testdata/cli.txt with the actual output.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "tests/testutil/process.h"
#include "tests/testutil/testutil.h"
#include "tools/json/call_json.h"

namespace callvault {
namespace {

using testutil::TempDir;

const std::string kBin = CALLVAULT_BIN;
const std::string kTestdata = CALLVAULT_TESTDATA;

using Outcome = testutil::ProcessOutcome;

// Runs argv[0] with argv, stdin from `stdin_path` (or /dev/null).
Outcome Exec(const std::vector<std::string>& argv, const std::string& stdin_path,
             const std::string& scratch) {
  return testutil::RunProcess(argv, scratch, stdin_path);
}

// Words of a command line; '...' quotes a word with spaces.
std::vector<std::string> Split(const std::string& line) {
  std::vector<std::string> words;
  std::string w;
  bool quoted = false, any = false;
  for (char c : line) {
    if (c == '\'') {
      quoted = !quoted;
      any = true;
    } else if (!quoted && (c == ' ' || c == '\t')) {
      if (any) words.push_back(w);
      w.clear();
      any = false;
    } else {
      w += c;
      any = true;
    }
  }
  if (any) words.push_back(w);
  return words;
}

void ReplaceAll(std::string* s, const std::string& from, const std::string& to) {
  if (from.empty()) return;
  for (size_t p = s->find(from); p != std::string::npos; p = s->find(from, p + to.size())) {
    s->replace(p, from.size(), to);
  }
}

template <typename F>
std::string RegexMap(const std::string& s, const std::regex& re, F f) {
  std::string out;
  auto it = std::sregex_iterator(s.begin(), s.end(), re);
  size_t last = 0;
  for (; it != std::sregex_iterator(); ++it) {
    out.append(s, last, it->position() - last);
    out += f(it->str());
    last = it->position() + it->length();
  }
  out.append(s, last, std::string::npos);
  return out;
}

// One run of the binary against a temporary directory, with the
// substitutions and normalisation described at the top of the file.
class Session {
 public:
  std::string db() const { return tmp_.Sub("db"); }
  const std::string& tmp() const { return tmp_.path(); }

  Outcome Run(const std::string& line) {
    std::vector<std::string> argv;
    std::string stdin_path;
    std::vector<std::string> words = Split(line);
    for (size_t i = 0; i < words.size(); ++i) {
      std::string w = words[i];
      ReplaceAll(&w, "$DB", db());
      ReplaceAll(&w, "$TMP", tmp());
      ReplaceAll(&w, "$TESTDATA", kTestdata);
      ReplaceAll(&w, "$CURSOR", cursor_);
      if (words[i] == "<" && i + 1 < words.size()) {
        stdin_path = words[++i];
        ReplaceAll(&stdin_path, "$TESTDATA", kTestdata);
        ReplaceAll(&stdin_path, "$TMP", tmp());
        continue;
      }
      argv.push_back(i == 0 && w == "callvault" ? kBin : w);
    }
    Outcome o = Exec(argv, stdin_path, tmp());
    Capture(o.out + o.err);
    return o;
  }

  // The golden form of an outcome.
  std::string Render(const Outcome& o) const {
    std::string s = Normalise(o.out);
    if (!s.empty() && s.back() != '\n') s += "\n";
    std::istringstream err(Normalise(o.err));
    for (std::string l; std::getline(err, l);) s += "stderr: " + l + "\n";
    return s + "exit " + std::to_string(o.exit) + "\n";
  }

 private:
  void Capture(const std::string& text) {
    static const std::regex kText("next cursor: (\\S+)");
    static const std::regex kJson("\"next_cursor\": \"([^\"]+)\"");
    std::smatch m;
    for (const auto* re : {&kText, &kJson}) {
      if (std::regex_search(text, m, *re)) {
        cursor_ = m[1].str();
        cursors_.insert(cursor_);
      }
    }
  }

  std::string Normalise(std::string s) const {
    ReplaceAll(&s, tmp(), "$TMP");
    ReplaceAll(&s, kTestdata, "$TESTDATA");
    for (const auto& c : cursors_) ReplaceAll(&s, c, "<cursor>");
    const int64_t now = std::chrono::duration_cast<std::chrono::microseconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count();
    const int64_t slack = 2LL * 86400 * 1000000;
    static const std::regex kRfc3339("\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}(\\.\\d+)?Z");
    s = RegexMap(s, kRfc3339, [&](const std::string& t) {
      auto v = json::ParseRfc3339(t);
      return v.ok() && std::llabs(*v - now) < slack ? std::string("<now>") : t;
    });
    static const std::regex kMicros("\\b1\\d{15}\\b");
    s = RegexMap(s, kMicros, [&](const std::string& t) {
      return std::llabs(std::stoll(t) - now) < slack ? std::string("<now>") : t;
    });
    static const std::regex kHex("\\b[0-9a-f]{32,}\\b");
    s = std::regex_replace(s, kHex, "<hex>");
    // A receipt's bytes (the column family's approximate size) vary with the
    // compressed size of store-set timestamps.
    static const std::regex kBytesField("((?:^|\\n)bytes +|\"bytes\": )\\d+");
    return std::regex_replace(s, kBytesField, "$1<bytes>");
  }

  TempDir tmp_;
  std::string cursor_;
  std::set<std::string> cursors_;
};

// --- the golden file -----------------------------------------------------------

struct Case {
  std::string before;  // comments and blank lines before the case, verbatim
  std::string command;
  std::string expected;
  size_t line = 0;
};

struct Golden {
  std::vector<Case> cases;
  std::string trailer;
};

Golden ParseGolden(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  Golden g;
  std::string pending;
  for (size_t i = 0; i < lines.size();) {
    if (lines[i].empty() || lines[i][0] == '#') {
      pending += lines[i++] + "\n";
      continue;
    }
    Case c;
    c.before = std::move(pending);
    pending.clear();
    c.command = lines[i];
    c.line = i + 1;
    if (i + 1 >= lines.size() || lines[i + 1] != "----") {
      ADD_FAILURE() << "cli.txt:" << c.line << ": expected a ---- line after the command";
      return g;
    }
    i += 2;
    if (i < lines.size() && lines[i] == "----") {  // output with blank lines
      for (++i; i < lines.size() &&
                !(lines[i] == "----" && i + 1 < lines.size() && lines[i + 1] == "----");
           ++i) {
        c.expected += lines[i] + "\n";
      }
      i += 2;
    } else {
      for (; i < lines.size() && !lines[i].empty(); ++i) c.expected += lines[i] + "\n";
    }
    g.cases.push_back(std::move(c));
  }
  g.trailer = pending;
  return g;
}

std::string FormatGolden(const Golden& g) {
  std::string s;
  for (const auto& c : g.cases) {
    s += c.before + c.command + "\n----\n";
    const bool blank = c.expected.find("\n\n") != std::string::npos || c.expected.front() == '\n';
    s += blank ? "----\n" + c.expected + "----\n----\n" : c.expected;
  }
  return s + g.trailer;
}

TEST(CliGolden, TestdataCliTxt) {
  const std::string path = kTestdata + "/cli.txt";
  Golden g = ParseGolden(testutil::ReadWholeFile(path));
  ASSERT_FALSE(g.cases.empty());
  const bool update = std::getenv("CALLVAULT_UPDATE_GOLDEN") != nullptr &&
                      std::string(std::getenv("CALLVAULT_UPDATE_GOLDEN")) == "1";
  Session session;
  for (auto& c : g.cases) {
    std::string actual = session.Render(session.Run(c.command));
    if (update) {
      c.expected = actual;
    } else {
      EXPECT_EQ(c.expected, actual) << "cli.txt:" << c.line << ": " << c.command;
    }
  }
  if (update) {
    std::ofstream(path, std::ios::binary | std::ios::trunc) << FormatGolden(g);
    std::cerr << "rewrote " << path << "\n";
  }
}

// --- other tests of the binary --------------------------------------------------

// A store with tenant acme holding testdata/calls.json.
class CliStore : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(Run("callvault --db $DB init --region eu-west").exit, 0);
    ASSERT_EQ(Run("callvault --db $DB tenant create acme").exit, 0);
    ASSERT_EQ(Run("callvault --db $DB call put acme $TESTDATA/calls.json").exit, 0);
  }
  Outcome Run(const std::string& line) { return session_.Run(line); }
  Session session_;
};

TEST_F(CliStore, RawLdbListsColumnFamilies) {
  Outcome o = Run("callvault --db $DB raw ldb list_column_families");
  EXPECT_EQ(o.exit, 0) << o.err;
  EXPECT_NE(o.out.find("{default, t0000000000000001}"), std::string::npos) << o.out;
  o = Run("callvault --db $DB raw ldb --meta list_column_families");
  EXPECT_EQ(o.exit, 0) << o.err;
  // The tool sees the tenant's column family, but no plaintext in it.
  o = Run("callvault --db $DB raw ldb --column_family=t0000000000000001 scan");
  EXPECT_EQ(o.exit, 0) << o.err;
  EXPECT_FALSE(o.out.empty());
  for (const char* secret : {"acme", "call-001", "Northwind", "priya", "pricing"}) {
    EXPECT_EQ(o.out.find(secret), std::string::npos) << secret;
  }
  o = Run("callvault --db $DB raw ldb --shard 9 list_column_families");
  EXPECT_EQ(o.exit, 66) << o.err;
}

TEST_F(CliStore, RawSstDumpReadsTheShard) {
  ASSERT_EQ(Run("callvault --db $DB raw ldb --column_family=t0000000000000001 compact").exit, 0);
  Outcome o = Run("callvault --db $DB raw sst_dump --command=check");
  EXPECT_EQ(o.exit, 0) << o.err;
  EXPECT_NE(o.out.find(".sst"), std::string::npos) << o.out;
}

// A value overwritten behind the store's back: verify reports it, exit 76.
TEST_F(CliStore, VerifyFailsWithExit76OnTamperedRecord) {
  Outcome scan = Run("callvault --db $DB raw ldb --column_family=t0000000000000001 --hex scan");
  ASSERT_EQ(scan.exit, 0) << scan.err;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(scan.out, m, std::regex("(0x[0-9A-F]+) : 0x")));
  Outcome put = Run("callvault --db $DB raw ldb --column_family=t0000000000000001 --hex put " +
                    m[1].str() + " 0x0102030405060708090A0B0C0D0E0F101112131415161718191A1B1C");
  ASSERT_EQ(put.exit, 0) << put.out << put.err;
  Outcome v = Run("callvault --db $DB verify");
  EXPECT_EQ(v.exit, 76) << v.out << v.err;
  EXPECT_NE(v.out.find("FAILED"), std::string::npos) << v.out;
  EXPECT_NE(v.err.find("callvault: corruption: verify failed"), std::string::npos) << v.err;
  v = Run("callvault --db $DB --json verify");
  EXPECT_EQ(v.exit, 76);
  auto j = nlohmann::json::parse(v.out);
  EXPECT_EQ(j["ok"], false);
  EXPECT_GE(j["records_failed"].get<int>(), 1);
}

// operations.md's restore: a store copy from before tenant globex was created
// is put back; globex's key is an orphan until `keys reconcile --yes`.
TEST_F(CliStore, KeysReconcileAfterRestore) {
  const std::string old_copy = session_.tmp() + "/old_copy";
  std::filesystem::copy(session_.db(), old_copy, std::filesystem::copy_options::recursive);
  ASSERT_EQ(Run("callvault --db $DB tenant create globex").exit, 0);
  ASSERT_EQ(Run("callvault --db $DB call put globex $TESTDATA/calls.json").exit, 0);
  std::filesystem::remove_all(session_.db());
  std::filesystem::copy(old_copy, session_.db(), std::filesystem::copy_options::recursive);

  Outcome o = Run("callvault --db $DB stats");
  EXPECT_EQ(o.exit, 0) << o.err;
  EXPECT_NE(o.out.find("ORPHAN KEY  internal_id 2"), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("callvault keys reconcile --yes"), std::string::npos) << o.out;
  o = Run("callvault --db $DB verify");
  EXPECT_EQ(o.exit, 76) << o.out << o.err;
  EXPECT_NE(o.err.find("1 orphan key(s)"), std::string::npos) << o.err;
  o = Run("callvault --db $DB keys reconcile");  // a dry run
  EXPECT_EQ(o.exit, 0) << o.err;
  EXPECT_NE(o.out.find("ORPHAN KEY  internal_id 2"), std::string::npos) << o.out;
  EXPECT_NE(o.err.find("--yes"), std::string::npos) << o.err;
  o = Run("callvault --db $DB --json keys reconcile --yes");
  ASSERT_EQ(o.exit, 0) << o.err;
  auto j = nlohmann::json::parse(o.out);
  EXPECT_EQ(j["dry_run"], false);
  ASSERT_EQ(j["receipts"].size(), 1u);
  EXPECT_EQ(j["receipts"][0]["kind"], "orphan_key_destroyed");
  EXPECT_EQ(j["receipts"][0]["tenant_internal_id"], 2);
  EXPECT_EQ(Run("callvault --db $DB receipts verify").exit, 0);
  o = Run("callvault --db $DB verify");
  EXPECT_EQ(o.exit, 0) << o.out << o.err;
  o = Run("callvault --db $DB keys reconcile");
  EXPECT_NE(o.err.find("no orphan keys"), std::string::npos) << o.err;
  o = Run("callvault --db $DB tenant reinstate acme");
  EXPECT_EQ(o.exit, 78) << o.err;  // not quarantined
}

TEST_F(CliStore, StatsJson) {
  Outcome o = Run("callvault --db $DB --json stats");
  ASSERT_EQ(o.exit, 0) << o.err;
  auto j = nlohmann::json::parse(o.out);
  EXPECT_EQ(j["region"], "eu-west");
  ASSERT_EQ(j["tenants"].size(), 1u);
  EXPECT_EQ(j["tenants"][0]["tenant_id"], "acme");
  EXPECT_EQ(j["tenants"][0]["calls"], 3);
  EXPECT_GT(j["total_bytes"].get<uint64_t>(), 0u);
  o = Run("callvault --db $DB stats");
  ASSERT_EQ(o.exit, 0) << o.err;
  EXPECT_NE(o.out.find("bytes_on_disk"), std::string::npos);
}

TEST_F(CliStore, WrongKeysExit77) {
  ASSERT_EQ(Run("callvault --db $TMP/other init").exit, 0);
  Outcome o = Run("callvault --db $DB --keys $TMP/other.keys tenant list");
  EXPECT_EQ(o.exit, 77) << o.err;
  EXPECT_EQ(o.err.rfind("callvault: key_error: ", 0), 0u) << o.err;
}

// recording put + recording get round-trip the bytes exactly: whole, by
// ranges at and across the 1 MiB chunk boundaries, through stdout and
// --output, from a file and from stdin.
TEST_F(CliStore, RecordingRoundTripsBytesExactly) {
  const size_t kMiB = 1 << 20;
  std::string bytes(3 * kMiB + 12345, '\0');
  std::mt19937_64 rng(7);
  for (auto& c : bytes) c = static_cast<char>(rng());
  const std::string src = session_.tmp() + "/media.bin";
  std::ofstream(src, std::ios::binary) << bytes;
  Outcome o = Run(
      "callvault --db $DB recording put acme call-001 $TMP/media.bin --id m1 --type audio/mpeg");
  ASSERT_EQ(o.exit, 0) << o.err;
  EXPECT_NE(o.out.find("chunks        4"), std::string::npos) << o.out;

  // Whole, to stdout and to a file.
  o = Run("callvault --db $DB recording get acme call-001 m1");
  ASSERT_EQ(o.exit, 0) << o.err;
  EXPECT_TRUE(o.out == bytes) << "stdout differs; " << o.out.size() << " bytes";
  o = Run("callvault --db $DB recording get acme call-001 --output $TMP/back.bin");
  ASSERT_EQ(o.exit, 0) << o.err;
  EXPECT_TRUE(testutil::ReadWholeFile(session_.tmp() + "/back.bin") == bytes);

  // Ranges: inclusive A-B, and A- to the end.
  const std::vector<std::pair<uint64_t, uint64_t>> ranges = {{0, 0},
                                                             {0, kMiB - 1},
                                                             {kMiB - 1, kMiB},
                                                             {kMiB, 2 * kMiB - 1},
                                                             {kMiB - 7, 3 * kMiB + 5},
                                                             {2 * kMiB, 2 * kMiB},
                                                             {3 * kMiB, bytes.size() - 1},
                                                             {bytes.size() - 1, bytes.size() - 1},
                                                             {12345, 2 * kMiB + 77}};
  for (const auto& [a, b] : ranges) {
    const std::string want = bytes.substr(a, b - a + 1);
    o = Run("callvault --db $DB recording get acme call-001 m1 --range " + std::to_string(a) + "-" +
            std::to_string(b));
    ASSERT_EQ(o.exit, 0) << a << "-" << b << ": " << o.err;
    EXPECT_TRUE(o.out == want) << a << "-" << b << ": got " << o.out.size() << " bytes";
    o = Run("callvault --db $DB recording get acme call-001 m1 --output $TMP/part.bin --range " +
            std::to_string(a) + "-" + std::to_string(b));
    ASSERT_EQ(o.exit, 0) << o.err;
    EXPECT_TRUE(testutil::ReadWholeFile(session_.tmp() + "/part.bin") == want) << a << "-" << b;
  }
  for (uint64_t a : {uint64_t{0}, kMiB - 1, kMiB, uint64_t{2 * kMiB + 1}}) {
    o = Run("callvault --db $DB recording get acme call-001 m1 --range " + std::to_string(a) + "-");
    ASSERT_EQ(o.exit, 0) << o.err;
    EXPECT_TRUE(o.out == bytes.substr(a)) << a << "-";
  }
  // Past the end: an error, and no partial output file left behind.
  o = Run("callvault --db $DB recording get acme call-001 m1 --output $TMP/none.bin --range " +
          std::to_string(bytes.size()) + "-");
  EXPECT_EQ(o.exit, 65) << o.err;
  EXPECT_FALSE(std::ifstream(session_.tmp() + "/none.bin").good());

  // From stdin, with the content hash checked by the store.
  o = Run("callvault --db $DB recording put acme call-002 - --id m2 < $TMP/media.bin");
  ASSERT_EQ(o.exit, 0) << o.err;
  o = Run("callvault --db $DB --json recording list acme call-002");
  ASSERT_EQ(o.exit, 0) << o.err;
  auto j = nlohmann::json::parse(o.out);
  ASSERT_EQ(j["recordings"].size(), 1u);
  EXPECT_EQ(j["recordings"][0]["size"], bytes.size());
  const std::string sha = j["recordings"][0]["sha256"];
  o = Run("callvault --db $DB recording put acme call-003 $TMP/media.bin --id m3 --sha256 " + sha);
  EXPECT_EQ(o.exit, 0) << o.err;
  o = Run("callvault --db $DB recording get acme call-002 m2");
  ASSERT_EQ(o.exit, 0) << o.err;
  EXPECT_TRUE(o.out == bytes);
  // No progress bar: stderr is not a terminal here.
  EXPECT_EQ(o.err.find('\r'), std::string::npos);
}

// Receipts of every kind verify; a receipt removed or swapped at rest (with
// RocksDB's own ldb, behind the store's back) makes `receipts verify` fail
// with exit 76, not "not found".
TEST_F(CliStore, ReceiptsVerifyFailsWhenTamperedAtRest) {
  ASSERT_EQ(Run("callvault --db $DB tenant create globex").exit, 0);
  ASSERT_EQ(Run("callvault --db $DB call put globex $TESTDATA/calls.json").exit, 0);
  ASSERT_EQ(
      Run("callvault --db $DB erase acme --email tomas.lindqvist@northwind.example --mode redact")
          .exit,
      0);
  ASSERT_EQ(Run("callvault --db $DB erase acme --phone +4915123456789").exit, 0);
  ASSERT_EQ(Run("callvault --db $DB tenant retention acme --days 30").exit, 0);
  ASSERT_EQ(Run("callvault --db $DB retention run --now 2024-06-01T00:00:00Z").exit, 0);
  ASSERT_EQ(Run("callvault --db $DB tenant churn globex --purge-at 2024-01-01T00:00:00Z").exit, 0);
  ASSERT_EQ(Run("callvault --db $DB purges run").exit, 0);
  Outcome o = Run("callvault --db $DB --json receipts list");
  ASSERT_EQ(o.exit, 0) << o.err;
  std::vector<std::string> kinds;
  const nlohmann::json list = nlohmann::json::parse(o.out);
  for (const auto& r : list["receipts"]) kinds.push_back(r["kind"]);
  EXPECT_EQ(kinds, (std::vector<std::string>{"erasure_redact", "erasure_delete", "retention",
                                             "tenant_purge"}));
  o = Run("callvault --db $DB receipts verify");
  ASSERT_EQ(o.exit, 0) << o.err;
  EXPECT_NE(o.out.find("OK: 4 receipt(s)"), std::string::npos) << o.out;

  // Receipt 3's sealed value copied over receipt 2: it fails authentication.
  Outcome v3 = Run("callvault --db $DB raw ldb --meta --hex get 0x510000000000000003");
  ASSERT_EQ(v3.exit, 0) << v3.err;
  std::string value = v3.out.substr(0, v3.out.find_first_of("\r\n"));
  ASSERT_EQ(Run("callvault --db $DB raw ldb --meta --hex put 0x510000000000000002 " + value).exit,
            0);
  o = Run("callvault --db $DB receipts verify");
  EXPECT_EQ(o.exit, 76) << o.out << o.err;
  EXPECT_NE(o.out.find("FAILED  the receipts cannot be read"), std::string::npos) << o.out;
  // Removed: the chain has a gap.
  ASSERT_EQ(Run("callvault --db $DB raw ldb --meta --hex delete 0x510000000000000002").exit, 0);
  o = Run("callvault --db $DB --json receipts verify");
  EXPECT_EQ(o.exit, 76) << o.out << o.err;
  auto j = nlohmann::json::parse(o.out);
  EXPECT_EQ(j["ok"], false);
  EXPECT_NE(j["message"].get<std::string>().find("position 2"), std::string::npos) << j.dump();
}

// An audit event removed at rest: `audit verify` names its position, exit 76.
TEST_F(CliStore, AuditVerifyReportsThePositionOfAGap) {
  ASSERT_EQ(Run("callvault --db $DB tenant hold acme --id h1").exit, 0);
  ASSERT_EQ(Run("callvault --db $DB tenant release acme --id h1").exit, 0);
  ASSERT_EQ(Run("callvault --db $DB tenant hold acme --id h2").exit, 0);
  Outcome o = Run("callvault --db $DB audit verify");
  ASSERT_EQ(o.exit, 0) << o.err;
  EXPECT_EQ(o.out, "OK: 4 event(s), hash chain verified\n");
  ASSERT_EQ(Run("callvault --db $DB raw ldb --meta --hex delete 0x410000000000000002").exit, 0);
  o = Run("callvault --db $DB audit verify");
  EXPECT_EQ(o.exit, 76) << o.out << o.err;
  EXPECT_NE(o.out.find("FAILED  audit event at position 2 (sequence 3)"), std::string::npos)
      << o.out;
  EXPECT_NE(o.err.find("callvault: corruption: audit event at position 2"), std::string::npos)
      << o.err;
}

TEST(Cli, HelpAndVersion) {
  Session s;
  Outcome o = s.Run("callvault --help");
  EXPECT_EQ(o.exit, 0);
  EXPECT_NE(o.out.find("Exit codes"), std::string::npos);
  o = s.Run("callvault tenant --help");
  EXPECT_EQ(o.exit, 0);
  EXPECT_NE(o.out.find("purge"), std::string::npos);
  o = s.Run("callvault");
  EXPECT_EQ(o.exit, 64);
  o = s.Run("callvault --version");
  EXPECT_EQ(o.exit, 0);
}

// The demo end to end, small.
TEST(Cli, DemoSmall) {
  Session s;
  Outcome o = s.Run(
      "callvault demo --dir $TMP/demo --tenants 3 --calls 60 --batch 10 --transcript-scale 0.05");
  ASSERT_EQ(o.exit, 0) << o.out << o.err;
  for (const char* want :
       {"== 1. Create the store ==", "== 5. Recordings ==", "== 7. Purge tenant globex ==",
        "callvault: tenant_purged:", "[exit 66]", "OK: 2 tenant(s)",
        "Every byte read back is identical", "== 9. Erase a data subject ==", "== 10. Retention ==",
        "calls_to_remove", "signatures and hash chain verified", "hash chain verified",
        "== Summary ==", "read back identical; unreadable (tenant_purged)"}) {
    EXPECT_NE(o.out.find(want), std::string::npos) << want << "\n" << o.out;
  }
  EXPECT_EQ(o.out.find("callvault: corruption"), std::string::npos);
  // The erased address is never shown.
  EXPECT_NE(o.out.find("refs acme --email $EMAIL"), std::string::npos);
  // The directory stays, and the store in it opens.
  o = s.Run("callvault --db $TMP/demo/store tenant list");
  EXPECT_EQ(o.exit, 0) << o.err;
  EXPECT_NE(o.out.find("purged"), std::string::npos);
  // A second demo into the same directory refuses to touch it.
  o = s.Run("callvault demo --dir $TMP/demo --calls 10");
  EXPECT_EQ(o.exit, 73) << o.err;
}

}  // namespace
}  // namespace callvault
