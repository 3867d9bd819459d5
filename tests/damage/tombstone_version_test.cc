// Tombstone lines that carry the version they remove or write (decision
// 0064; docs/format.md "Tombstone log"), so a restore replays the log from
// its base and the marker's offset no longer decides what is replayed.
// attack3 finding 1: two restores left pending, of cuts A (older) and B; the
// copy of A given B's restore id and B's marker replayed from B's offset
// only, and a call erased between the two cuts was served again.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <string>
#include <vector>

#include "callvault/backup.h"
#include "callvault/recording.h"
#include "callvault/store.h"
#include "tests/testutil/backup_util.h"
#include "tests/testutil/process.h"
#include "tests/testutil/testutil.h"

namespace callvault {
namespace {

namespace fs = std::filesystem;
using testutil::MakeCall;
using testutil::RestoreTo;
using testutil::TwoTenants;

Options Opts(const std::string& keys) { return testutil::NoTrainingOptions(keys); }

int RunCli(const std::string& args, std::string* out, const std::string& env = "") {
  return testutil::RunShell(
      (env.empty() ? "" : env + " ") + std::string(CALLVAULT_BIN) + " " + args + " 2>&1", out);
}

std::unique_ptr<Store> OpenOrDie(const std::string& keys, const std::string& db) {
  auto o = Store::Open(Opts(keys), db);
  EXPECT_TRUE(o.ok()) << o.status().ToString();
  return o.ok() ? std::move(o).value() : nullptr;
}

// The restore id a marker names.
std::string MarkerRestoreId(const std::string& marker) {
  const std::string text = testutil::ReadFile(marker);
  std::smatch m;
  static const std::regex re("\"restore_id\": *\"([0-9a-f]{32})\"");
  return std::regex_search(text, m, re) ? m[1].str() : "";
}

// A restore of `bak` into `dir` by the CLI, killed once the copy is in
// place: its replay is pending.
void KilledRestore(const std::string& keys, const std::string& bak, const std::string& dir) {
  std::string out;
  // (sh reports the CLI's SIGKILL as exit status 128 + 9.)
  ASSERT_EQ(RunCli("--db " + dir + " --keys " + keys + " restore " + bak, &out,
                   "CALLVAULT_KILL_POINT=restore.after_rename"),
            128 + 9)
      << out;
  ASSERT_TRUE(fs::exists(dir + "/RESTORE_PENDING")) << out;
}

// A call of tenant A naming carol (one participant's email), so an erasure
// of carol matches it alone.
Call CarolCall(const std::string& id, const std::string& marker) {
  Call c = MakeCall(id, 1700000000000001, marker);
  c.participants[1].email = "carol@customer.example";
  return c;
}

bool NamesCarol(const Call& c) {
  for (const auto& p : c.participants) {
    if (p.email == "carol@customer.example") return true;
  }
  return false;
}

EraseRequest RedactCarol() {
  EraseRequest r;
  r.subject = "carol@customer.example";
  r.mode = EraseMode::kRedact;
  return r;
}

// Restores t.bak into a new directory (its report in *report) and reads
// call a1 of A there.
Result<Call> RestoreAndGetA1(TwoTenants& t, RestoreReport* report) {
  const std::string r = t.tmp.Sub("r");
  auto restored = RestoreTo(t.bak, t.keys, r);
  if (!restored.ok()) return restored.status();
  *report = *restored;
  auto o = Store::Open(Opts(t.keys), r);
  if (!o.ok()) return o.status();
  Result<Call> a1 = (*o)->GetCall("A", "a1");
  Status closed = (*o)->Close();
  if (!closed.ok()) return closed;
  return a1;
}

// attack3 finding 1, in process: QA (cut A, before DeleteCall(a1)) given
// the restore id and the marker of QB (cut B, after it) finishes with a1
// removed: the replay runs from the log's base, not from B's offset.
TEST(TombstoneVersion, PendingCopyOfAnOlderCutWithANewerMarkerStillLosesTheErasure) {
  TwoTenants t;
  ASSERT_NO_FATAL_FAILURE(t.Make(3));
  const std::string bak2 = t.tmp.Sub("bak2");
  ASSERT_OK(t.s->Backup(t.bak));
  ASSERT_OK(t.s->DeleteCall("A", "a1"));
  ASSERT_OK(t.s->Backup(bak2));
  ASSERT_NO_FATAL_FAILURE(t.Close());
  const std::string qa = t.tmp.Sub("qa"), qb = t.tmp.Sub("qb");
  ASSERT_NO_FATAL_FAILURE(KilledRestore(t.keys, t.bak, qa));
  ASSERT_NO_FATAL_FAILURE(KilledRestore(t.keys, bak2, qb));
  const std::string id_b = MarkerRestoreId(qb + "/RESTORE_PENDING");
  ASSERT_EQ(id_b.size(), 32u);
  std::string out;
  ASSERT_EQ(RunCli("--db " + qa + " raw ldb --meta put Xrestore_id " + id_b, &out), 0) << out;
  fs::copy_file(qb + "/RESTORE_PENDING", qa + "/RESTORE_PENDING",
                fs::copy_options::overwrite_existing);
  auto o = Store::Open(Opts(t.keys), qa);
  ASSERT_OK(o);
  EXPECT_EQ((*o)->GetCall("A", "a1").status().code(), Code::kNotFound)
      << "the call deleted between the two cuts was served again";
  EXPECT_OK((*o)->GetCall("A", "a0"));
  EXPECT_OK((*o)->Close());
}

// A cut from before DeleteCall(a1): the delete's line removes the copy's
// a1, although a1 was put again later (that put is not in the cut).
TEST(TombstoneVersion, RemovalAppliesToTheVersionItRemoved) {
  TwoTenants t;
  ASSERT_NO_FATAL_FAILURE(t.Make(3));
  ASSERT_OK(t.s->Backup(t.bak));
  ASSERT_OK(t.s->DeleteCall("A", "a1"));
  ASSERT_OK(t.s->PutCall("A", MakeCall("a1", 1700000000000001, "again")));
  ASSERT_NO_FATAL_FAILURE(t.Close());
  RestoreReport rep;
  EXPECT_CODE(RestoreAndGetA1(t, &rep), Code::kNotFound);
  EXPECT_EQ(rep.tombstones_replayed, 1u);
}

// A cut after the delete and the put again: the replay from the base reads
// the delete's line, and keeps a1 (a greater version than it removed).
TEST(TombstoneVersion, RemovalKeepsACallPutAgainAfterIt) {
  TwoTenants t;
  ASSERT_NO_FATAL_FAILURE(t.Make(3));
  ASSERT_OK(t.s->DeleteCall("A", "a1"));
  ASSERT_OK(t.s->PutCall("A", MakeCall("a1", 1700000000000001, "again")));
  ASSERT_NO_FATAL_FAILURE(t.BackupAndClose());
  RestoreReport rep;
  auto a1 = RestoreAndGetA1(t, &rep);
  ASSERT_TRUE(a1.ok()) << "a call put again after its delete was removed by the replay: "
                       << a1.status().ToString();
  EXPECT_NE(a1->participants[0].name.find("again"), std::string::npos);
  EXPECT_EQ(rep.tombstones_replayed, 0u) << "the audit counts a removal not made";
}

// The redaction pair: a cut before the erasure is redacted again; a cut
// holding the call written again (naming carol) after it is left alone.
TEST(TombstoneVersion, RedactionAppliesToEarlierVersionsOnly) {
  {
    TwoTenants t;
    ASSERT_NO_FATAL_FAILURE(t.Make(3));
    ASSERT_OK(t.s->PutCall("A", CarolCall("a1", "one")));
    ASSERT_OK(t.s->Backup(t.bak));
    auto e = t.s->Erase("A", RedactCarol());
    ASSERT_OK(e);
    ASSERT_EQ(e->changed, 1u);
    ASSERT_NO_FATAL_FAILURE(t.Close());
    RestoreReport rep;
    auto a1 = RestoreAndGetA1(t, &rep);
    ASSERT_OK(a1);
    EXPECT_FALSE(NamesCarol(*a1)) << "a cut from before the erasure still names the subject";
    EXPECT_EQ(rep.redactions_replayed, 1u);
  }
  {
    TwoTenants t;
    ASSERT_NO_FATAL_FAILURE(t.Make(3));
    ASSERT_OK(t.s->PutCall("A", CarolCall("a1", "one")));
    ASSERT_OK(t.s->Erase("A", RedactCarol()));
    ASSERT_OK(t.s->PutCall("A", CarolCall("a1", "two")));  // written again after the erasure
    ASSERT_NO_FATAL_FAILURE(t.BackupAndClose());
    RestoreReport rep;
    auto a1 = RestoreAndGetA1(t, &rep);
    ASSERT_OK(a1);
    EXPECT_TRUE(NamesCarol(*a1)) << "a call written after the erasure was redacted by the replay";
    EXPECT_EQ(rep.redactions_replayed, 0u) << "the audit counts a redaction not made";
  }
}

// Writes recording r1 of a0 with `bytes`.
void WriteR1(Store* s, const std::string& bytes) {
  RecordingSpec spec;
  spec.recording_id = "r1";
  auto w = s->CreateRecording("A", "a0", spec);
  ASSERT_OK(w);
  ASSERT_OK((*w)->Append(bytes));
  ASSERT_OK((*w)->Finish());
}

// The size of a0's recording r1 in the store at `db`; -1 if there is none.
int64_t R1Size(const std::string& keys, const std::string& db) {
  auto s = OpenOrDie(keys, db);
  if (s == nullptr) return -2;
  auto l = s->ListRecordings("A", "a0");
  EXPECT_OK(l);
  int64_t size = -1;
  if (l.ok()) {
    for (const auto& r : *l) {
      if (r.recording_id == "r1") size = static_cast<int64_t>(r.size);
    }
  }
  EXPECT_OK(s->Close());
  return size;
}

// A recording's line (its created_at): a cut from before DeleteRecording
// loses the recording; a cut holding the recording written again under the
// same id keeps it.
TEST(TombstoneVersion, RecordingDeleteSparesALaterRecordingOfTheSameId) {
  for (bool cut_before_delete : {true, false}) {
    SCOPED_TRACE(cut_before_delete ? "cut before the delete" : "cut after the second recording");
    TwoTenants t;
    ASSERT_NO_FATAL_FAILURE(t.Make(3));
    ASSERT_NO_FATAL_FAILURE(WriteR1(t.s.get(), "one"));
    if (cut_before_delete) ASSERT_OK(t.s->Backup(t.bak));
    ASSERT_OK(t.s->DeleteRecording("A", "a0", "r1"));
    ASSERT_NO_FATAL_FAILURE(WriteR1(t.s.get(), "four"));
    if (!cut_before_delete) ASSERT_OK(t.s->Backup(t.bak));
    ASSERT_NO_FATAL_FAILURE(t.Close());
    const std::string r = t.tmp.Sub("r");
    auto rep = RestoreTo(t.bak, t.keys, r);
    ASSERT_OK(rep);
    // -1: no recording r1; 4: the second one ("four").
    EXPECT_EQ(R1Size(t.keys, r), cut_before_delete ? -1 : 4)
        << "the delete's line did not remove exactly the recording it deleted";
    EXPECT_EQ(rep->recordings_replayed, cut_before_delete ? 1u : 0u)
        << "the audit counts a recording delete not made";
  }
}

// After a restore of an older cut, the log still holds the lines of the
// timeline the copy left (DeleteCall(a1) at a high version). A call the
// restored store writes later must get a greater version, or a restore of
// the restored store's own backup would remove it again from the base.
TEST(TombstoneVersion, ARestoredStoresLaterWritesOutrankTheLinesItLeftBehind) {
  TwoTenants t;
  ASSERT_NO_FATAL_FAILURE(t.Make(3));
  ASSERT_OK(t.s->Backup(t.bak));
  for (int i = 0; i < 5; ++i) {  // versions well above the cut's
    ASSERT_OK(t.s->PutCall("A", MakeCall("a1", 1700000000000001, "v" + std::to_string(i))));
  }
  ASSERT_OK(t.s->DeleteCall("A", "a1"));
  ASSERT_NO_FATAL_FAILURE(t.Close());
  const std::string r = t.tmp.Sub("r"), bak2 = t.tmp.Sub("bak2"), r2 = t.tmp.Sub("r2");
  ASSERT_OK(RestoreTo(t.bak, t.keys, r));
  {
    auto s = OpenOrDie(t.keys, r);
    ASSERT_NE(s, nullptr);
    ASSERT_EQ(s->GetCall("A", "a1").status().code(), Code::kNotFound);
    ASSERT_OK(s->PutCall("A", MakeCall("a1", 1700000000000001, "restored timeline")));
    ASSERT_OK(s->Backup(bak2));
    ASSERT_OK(s->Close());
  }
  ASSERT_OK(RestoreTo(bak2, t.keys, r2));
  auto s = OpenOrDie(t.keys, r2);
  ASSERT_NE(s, nullptr);
  EXPECT_TRUE(s->GetCall("A", "a1").ok())
      << "a call written after a restore was removed by a line of the timeline it left";
  EXPECT_OK(s->Close());
}

// A log mixing lines of earlier builds (no version) with versioned ones:
// the unversioned lines are replayed from the cut's offset only, the
// versioned ones from the base.
TEST(TombstoneVersion, UnversionedLinesReplayFromTheOffsetOnly) {
  TwoTenants t;
  ASSERT_NO_FATAL_FAILURE(t.Make(4));
  ASSERT_OK(t.s->DeleteCall("A", "a0"));
  ASSERT_OK(t.s->DeleteCall("A", "a1"));
  ASSERT_OK(t.s->PutCall("A", MakeCall("a0", 1700000000000000, "again")));
  ASSERT_OK(t.s->PutCall("A", MakeCall("a1", 1700000000000001, "again")));
  ASSERT_OK(t.s->Backup(t.bak));
  ASSERT_OK(t.s->DeleteCall("A", "a2"));
  ASSERT_OK(t.s->DeleteCall("A", "a3"));
  ASSERT_NO_FATAL_FAILURE(t.Close());
  // Lines 0 (a0, before the cut) and 2 (a2, after it) made unversioned as
  // an earlier build wrote them: " v <n>" blanked, so no offset moves.
  const std::string path = t.keys + "/TOMBSTONES";
  std::string log = testutil::ReadFile(path);
  std::vector<size_t> starts{0};
  for (size_t i = 0; i < log.size(); ++i) {
    if (log[i] == '\n' && i + 1 < log.size()) starts.push_back(i + 1);
  }
  ASSERT_EQ(starts.size(), 4u) << log;
  for (size_t line : {0u, 2u}) {
    const size_t v = log.find(" v ", starts[line]);
    const size_t nl = log.find('\n', starts[line]);
    ASSERT_LT(v, nl) << log;
    std::fill(log.begin() + v, log.begin() + nl, ' ');
  }
  {
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f << log;
    ASSERT_TRUE(f.good());
  }
  const std::string r = t.tmp.Sub("r");
  auto rep = RestoreTo(t.bak, t.keys, r);
  ASSERT_OK(rep);
  EXPECT_EQ(rep->tombstones_replayed, 2u);
  auto s = OpenOrDie(t.keys, r);
  ASSERT_NE(s, nullptr);
  EXPECT_TRUE(s->GetCall("A", "a0").ok()) << "an unversioned line before the cut was replayed";
  EXPECT_TRUE(s->GetCall("A", "a1").ok()) << "a versioned line removed a call put again after it";
  EXPECT_EQ(s->GetCall("A", "a2").status().code(), Code::kNotFound)
      << "an unversioned line after the cut was not replayed";
  EXPECT_EQ(s->GetCall("A", "a3").status().code(), Code::kNotFound)
      << "a versioned line after the cut was not replayed";
  EXPECT_OK(s->Close());
}

// A malformed line in the part of the log a restore replays (a version no
// build writes, above 2^63 - 1; an unversioned line; a recording line with
// a created_at out of range) refuses the restore before anything is
// copied: no directory at the target, no ledger line (the session-18
// attack5 found the copy renamed into place and pending, which no open
// could finish). The error names the line by its logical offset.
TEST(TombstoneVersion, MalformedLineRefusesTheRestoreBeforeTheCopy) {
  for (const std::string& bad :
       {std::string(" v 18446744073709551615"), std::string(" v 9223372036854775808"),
        std::string(" v -1"), std::string(" d 00000000000000000000000000000000 c 9223372036854775808")}) {
    SCOPED_TRACE(bad);
    TwoTenants t;
    ASSERT_NO_FATAL_FAILURE(t.Make(2));
    ASSERT_NO_FATAL_FAILURE(t.BackupAndClose());
    const std::string path = t.keys + "/TOMBSTONES";
    std::string log = fs::exists(path) ? testutil::ReadFile(path) : std::string();
    const size_t offset = log.size();
    log += "1700000000000000 1 b534a611448ae030bd1b716948629f46" + bad + "\n";
    {
      std::ofstream f(path, std::ios::binary | std::ios::trunc);
      f << log;
      ASSERT_TRUE(f.good());
    }
    const std::string ledger = t.keys + "/RESTORES";
    const bool had_ledger = fs::exists(ledger);
    const std::string ledger_before = had_ledger ? testutil::ReadFile(ledger) : std::string();
    const std::string r = t.tmp.Sub("r");
    auto rep = RestoreTo(t.bak, t.keys, r);
    ASSERT_EQ(rep.status().code(), Code::kCorruption) << rep.status().ToString();
    EXPECT_NE(rep.status().message().find("logical offset " + std::to_string(offset)),
              std::string::npos)
        << rep.status().ToString();
    EXPECT_NE(rep.status().message().find("nothing was restored"), std::string::npos)
        << rep.status().ToString();
    EXPECT_FALSE(fs::exists(r) && !fs::is_empty(r)) << "a copy was left at the target";
    EXPECT_EQ(fs::exists(ledger), had_ledger);
    if (had_ledger) {
      EXPECT_EQ(testutil::ReadFile(ledger), ledger_before) << "the ledger changed";
    }
  }
}

}  // namespace
}  // namespace callvault
