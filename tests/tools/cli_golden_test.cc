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
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "tests/testutil/testutil.h"
#include "tools/json/call_json.h"

namespace callvault {
namespace {

using testutil::TempDir;

const std::string kBin = CALLVAULT_BIN;
const std::string kTestdata = CALLVAULT_TESTDATA;

struct Outcome {
  std::string out;
  std::string err;
  int exit = -1;
};

std::string Slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

// Runs argv[0] with argv, stdin from `stdin_path` (or /dev/null).
Outcome Exec(const std::vector<std::string>& argv, const std::string& stdin_path,
             const std::string& scratch) {
  const std::string out_path = scratch + "/.stdout", err_path = scratch + "/.stderr";
  pid_t pid = ::fork();
  if (pid == 0) {
    int in = ::open(stdin_path.empty() ? "/dev/null" : stdin_path.c_str(), O_RDONLY);
    int out = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int err = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (in < 0 || out < 0 || err < 0) ::_exit(126);
    ::dup2(in, 0);
    ::dup2(out, 1);
    ::dup2(err, 2);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  Outcome o;
  int status = 0;
  if (pid < 0 || ::waitpid(pid, &status, 0) != pid) return o;
  o.exit = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  o.out = Slurp(out_path);
  o.err = Slurp(err_path);
  return o;
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
  Golden g = ParseGolden(Slurp(path));
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
       {"== 1. Create the store ==", "== 6. Purge tenant globex ==", "callvault: tenant_purged:",
        "[exit 66]", "OK: 2 tenant(s)", "signatures and hash chain verified", "== Summary =="}) {
    EXPECT_NE(o.out.find(want), std::string::npos) << want << "\n" << o.out;
  }
  EXPECT_EQ(o.out.find("callvault: corruption"), std::string::npos);
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
