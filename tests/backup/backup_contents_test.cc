// Decision 0076 (attack27 F2): a cut's signed manifest names every file of
// every instance backup with its SHA-256. A backed-up file changed after the
// cut, even with BackupEngine's crc32c of it made to match (what anyone with
// write access to the backup directory can do), fails `backup verify` and
// the restore, which leaves nothing behind; a file swapped in the backup
// directory while a restore runs is caught in the copy; a backup that would
// reuse a file changed since an earlier cut signed it fails; cuts of
// format 1 (written before 0076) still verify and restore.
#include <rocksdb/utilities/backup_engine.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "callvault/backup.h"
#include "callvault/store.h"
#include "callvault/tombstones.h"
#include "engine/kill_point.h"
#include "engine/crypto.h"
#include "tests/testutil/backup_util.h"
#include "tests/testutil/process.h"
#include "tests/testutil/testutil.h"

// RocksDB's CRC32C (BackupEngine's per-file checksum).
namespace rocksdb::crc32c {
uint32_t Extend(uint32_t init_crc, const char* data, size_t n);
}

namespace callvault {
namespace {

namespace fs = std::filesystem;
using testutil::ExpectNothingRestored;
using testutil::MakeCall;
using testutil::RestoreTo;
using testutil::TwoTenants;

std::string PublicKey(const std::string& keys) {
  auto kp = NewFileKeyProvider(keys, {.create_if_missing = false});
  EXPECT_TRUE(kp.ok()) << kp.status().ToString();
  if (!kp.ok()) return "";
  auto k = (*kp)->ExistingSigningPublicKey();
  EXPECT_TRUE(k.ok()) << k.status().ToString();
  return k.ok() ? *k : "";
}

void WriteBytes(const std::string& path, const std::string& bytes) {
  ::chmod(path.c_str(), 0600);  // BackupEngine may leave its files read-only
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << bytes;
  ASSERT_TRUE(f.good()) << path;
}

// A table file of an instance backup, and where BackupEngine records it.
struct Target {
  std::string instance;  // e.g. <bak>/shards/0000
  std::string rel;       // e.g. shared_checksum/000012_s....sst
  std::string path() const { return instance + "/" + rel; }
};

// The largest shared table file of the backup (a shard's: it holds calls).
Target LargestTable(const std::string& bak) {
  Target t;
  uint64_t best = 0;
  for (const auto& f : testutil::BackupTableFiles(bak)) {
    if (!f.ends_with(".sst") || f.find("/shards/") == std::string::npos) continue;
    const uint64_t size = fs::file_size(f);
    if (size <= best) continue;
    best = size;
    const size_t at = f.find("/shared_checksum/");
    t.instance = f.substr(0, at);
    t.rel = f.substr(at + 1);
  }
  EXPECT_GT(best, 0u) << "no shard table file in " << bak;
  return t;
}

// Writes `bytes` as the file and makes BackupEngine's record of it
// ("<rel> crc32 <decimal>" in every meta/<id> naming it) match: the forgery
// passes BackupEngine's own checks, VerifyBackup and the restore's copy.
void ForgeWithMatchingCrc(const Target& t, const std::string& bytes) {
  ASSERT_NO_FATAL_FAILURE(WriteBytes(t.path(), bytes));
  const uint32_t crc = rocksdb::crc32c::Extend(0, bytes.data(), bytes.size());
  int edited = 0;
  for (const auto& e : fs::directory_iterator(t.instance + "/meta")) {
    std::string meta = testutil::ReadFile(e.path().string());
    const std::regex line("(^|\n)" + std::regex_replace(t.rel, std::regex("[.]"), "[.]") +
                          " crc32 [0-9]+");
    if (!std::regex_search(meta, line)) continue;
    meta = std::regex_replace(meta, line, "$1" + t.rel + " crc32 " + std::to_string(crc));
    ASSERT_NO_FATAL_FAILURE(WriteBytes(e.path().string(), meta));
    ++edited;
  }
  ASSERT_GT(edited, 0) << "no meta file of " << t.instance << " names " << t.rel;
}

// The file with one byte in its middle changed.
std::string Flipped(const Target& t) {
  std::string bytes = testutil::ReadFile(t.path());
  bytes[bytes.size() / 2] ^= 0x20;
  return bytes;
}

// BackupEngine's own check of backup `id` (crc32c and size of every file).
rocksdb::IOStatus EngineVerify(const std::string& instance, uint32_t id) {
  rocksdb::BackupEngineReadOnly* raw = nullptr;
  rocksdb::IOStatus o = rocksdb::BackupEngineReadOnly::Open(
      rocksdb::BackupEngineOptions(instance), rocksdb::Env::Default(), &raw);
  if (!o.ok()) return o;
  std::unique_ptr<rocksdb::BackupEngineReadOnly> engine(raw);
  return engine->VerifyBackup(id, true);
}

bool Has(const Status& s, const std::string& needle) {
  return s.message().find(needle) != std::string::npos;
}

// A flushed store of two tenants, backed up (cut 1) and closed.
void MakeBackup(TwoTenants* t) {
  ASSERT_NO_FATAL_FAILURE(t->Make(60));
  ASSERT_OK(t->s->Flush());
  ASSERT_NO_FATAL_FAILURE(t->BackupAndClose());
}

TEST(BackupContents, ManifestSignsEveryFileOfEveryInstance) {
  TwoTenants t;
  ASSERT_NO_FATAL_FAILURE(MakeBackup(&t));
  auto cuts = ListBackups(t.bak);
  ASSERT_OK(cuts);
  ASSERT_EQ(cuts->size(), 1u);
  const BackupManifest& m = cuts->front();
  EXPECT_EQ(m.format, 2u);
  size_t files = 0;
  for (const auto& in : m.instances) {
    EXPECT_EQ(in.contents.size(), in.files) << in.name;
    for (const auto& f : in.contents) {
      const std::string path = t.bak + "/" + in.dir + "/" + f.path;
      ASSERT_TRUE(fs::is_regular_file(path)) << path;
      EXPECT_EQ(fs::file_size(path), f.size) << path;
      EXPECT_EQ(f.sha256.size(), 64u);
      ++files;
    }
  }
  EXPECT_GT(files, m.instances.size());  // every instance has MANIFEST and CURRENT at least
  EXPECT_OK(VerifyBackup(t.bak, 0, PublicKey(t.keys)));
}

// attack27 F2: before 0076 this cut passed `backup verify` and the restore,
// and the restored store aborted on the read that parsed the forged entry.
TEST(BackupContents, FileForgedWithMatchingCrcFailsVerifyAndRestore) {
  TwoTenants t;
  ASSERT_NO_FATAL_FAILURE(MakeBackup(&t));
  const Target f = LargestTable(t.bak);
  ASSERT_NO_FATAL_FAILURE(ForgeWithMatchingCrc(f, Flipped(f)));
  // The forgery passes what BackupEngine checks.
  ASSERT_TRUE(EngineVerify(f.instance, 1).ok());

  auto v = VerifyBackup(t.bak, 0, PublicKey(t.keys));
  EXPECT_CODE(v, Code::kCorruption);
  EXPECT_TRUE(Has(v.status(), "does not match the SHA-256")) << v.status().ToString();
  EXPECT_TRUE(Has(v.status(), f.rel)) << v.status().ToString();
  std::string out;
  EXPECT_NE(testutil::RunShell(std::string(CALLVAULT_BIN) + " --keys " + t.keys +
                                   " backup verify " + t.bak + " 2>&1",
                               &out),
            0)
      << out;
  EXPECT_NE(out.find("SHA-256"), std::string::npos) << out;

  auto r = RestoreTo(t.bak, t.keys, t.tmp.Sub("r"));
  EXPECT_CODE(r, Code::kCorruption);
  EXPECT_TRUE(Has(r.status(), "SHA-256")) << r.status().ToString();
  ExpectNothingRestored(t.tmp.Sub("r"));
}

// A file of another size (BackupEngine takes sizes from the directory):
// the listing no longer matches the signed one, refused before any copy.
TEST(BackupContents, ResizedFileIsRefusedBeforeTheCopy) {
  TwoTenants t;
  ASSERT_NO_FATAL_FAILURE(MakeBackup(&t));
  const Target f = LargestTable(t.bak);
  const std::string whole = testutil::ReadFile(f.path());
  ASSERT_NO_FATAL_FAILURE(ForgeWithMatchingCrc(f, whole.substr(0, whole.size() / 2)));
  ASSERT_TRUE(EngineVerify(f.instance, 1).ok());
  auto v = VerifyBackup(t.bak, 0, PublicKey(t.keys));
  EXPECT_CODE(v, Code::kCorruption);
  EXPECT_TRUE(Has(v.status(), "lists other files than the manifest signs")) << v.status().ToString();
  // Refused at the listing: the restore copies nothing.
  testing::RecordKillPoints(true);
  auto r = RestoreTo(t.bak, t.keys, t.tmp.Sub("r"));
  const auto seen = testing::KillPointsSeen();
  testing::RecordKillPoints(false);
  EXPECT_CODE(r, Code::kCorruption);
  EXPECT_TRUE(Has(r.status(), "lists other files")) << r.status().ToString();
  EXPECT_EQ(std::count(seen.begin(), seen.end(), "restore.before_copy"), 0);
  ExpectNothingRestored(t.tmp.Sub("r"));
}

// The file is forged after the restore checked the backup directory and
// before it copies: the copy's own check finds it.
TEST(BackupContents, FileSwappedDuringTheRestoreIsCaughtInTheCopy) {
  TwoTenants t;
  ASSERT_NO_FATAL_FAILURE(MakeBackup(&t));
  const Target f = LargestTable(t.bak);
  const std::string forged = Flipped(f);
  bool swapped = false;
  testing::SetKillPointAction([&] {
    ForgeWithMatchingCrc(f, forged);
    swapped = true;
  });
  testing::ArmKillPoint("restore.before_copy");
  auto r = RestoreTo(t.bak, t.keys, t.tmp.Sub("r"));
  testing::DisarmKillPoints();
  testing::SetKillPointAction(nullptr);
  ASSERT_TRUE(swapped) << "the restore did not pass restore.before_copy";
  EXPECT_CODE(r, Code::kCorruption);
  EXPECT_TRUE(Has(r.status(), "as restored")) << r.status().ToString();
  EXPECT_TRUE(Has(r.status(), "nothing was restored")) << r.status().ToString();
  ExpectNothingRestored(t.tmp.Sub("r"));
}

// A file of cut 1 forged in place, crc32c included: BackupEngine would
// reuse it in cut 2 unread and its crc32c read back passes it; cut 2's
// SHA-256 pass finds it differs from what cut 1 signed, and the backup
// fails with nothing added (decision 0063's promise: OK only for a cut
// that verifies).
TEST(BackupContents, ReusedFileForgedSinceAnEarlierCutFailsTheBackup) {
  TwoTenants t;
  ASSERT_NO_FATAL_FAILURE(t.Make(60));
  ASSERT_OK(t.s->Flush());
  ASSERT_OK(t.s->Backup(t.bak));
  ASSERT_OK(t.s->PutCall("A", MakeCall("later", 1700000000000000, "ml")));
  ASSERT_OK(t.s->Backup(t.bak));  // cut 2: reuses cut 1's files, all signed
  const Target f = LargestTable(t.bak);
  ASSERT_NO_FATAL_FAILURE(ForgeWithMatchingCrc(f, Flipped(f)));
  ASSERT_TRUE(EngineVerify(f.instance, 1).ok());
  ASSERT_OK(t.s->PutCall("A", MakeCall("later2", 1700000000000001, "ml")));
  const size_t files_before = testutil::ListFiles(t.bak).size();
  auto third = t.s->Backup(t.bak);
  EXPECT_CODE(third, Code::kCorruption);
  EXPECT_TRUE(Has(third.status(), "no longer has the SHA-256 an earlier cut signed"))
      << third.status().ToString();
  EXPECT_TRUE(Has(third.status(), f.rel)) << third.status().ToString();
  ASSERT_NO_FATAL_FAILURE(t.Close());
  auto cuts = ListBackups(t.bak);
  ASSERT_OK(cuts);
  EXPECT_EQ(cuts->size(), 2u);  // no cut 3
  EXPECT_EQ(testutil::ListFiles(t.bak).size(), files_before);
  for (uint64_t cut : {1, 2}) {
    auto v = VerifyBackup(t.bak, cut, PublicKey(t.keys));
    EXPECT_CODE(v, Code::kCorruption);
    EXPECT_TRUE(Has(v.status(), f.rel)) << v.status().ToString();
  }
}

// A manifest that names a path outside BackupEngine's layout is refused
// when read, before its signature is checked or any file is opened.
TEST(BackupContents, PathLeavingTheInstanceDirectoryIsRefused) {
  TwoTenants t;
  ASSERT_NO_FATAL_FAILURE(MakeBackup(&t));
  const std::string m = t.bak + "/cuts/00000001.json";
  nlohmann::json j = nlohmann::json::parse(testutil::ReadFile(m));
  ASSERT_FALSE(j["instances"][1]["contents"].empty());
  for (const std::string bad : {"../../../keys/KEYRING", "/etc/passwd", "shared_checksum/../x.sst",
                                "private/1/../../x", "shared_checksum/a b.sst", "other/x.sst"}) {
    nlohmann::json k = j;
    k["instances"][1]["contents"][0]["path"] = bad;
    ASSERT_NO_FATAL_FAILURE(WriteBytes(m, k.dump(2)));
    auto l = ListBackups(t.bak);
    EXPECT_CODE(l, Code::kCorruption);
    EXPECT_TRUE(Has(l.status(), "not one BackupEngine writes")) << bad << ": " << l.status().ToString();
  }
}

// A cut written before decision 0076 (format 1: no contents, signed as it
// was) still verifies (crc32c) and restores; a flipped byte fails both.
TEST(BackupContents, FormatOneCutStillVerifiesAndRestores) {
  TwoTenants t;
  ASSERT_NO_FATAL_FAILURE(MakeBackup(&t));
  auto cuts = ListBackups(t.bak);
  ASSERT_OK(cuts);
  BackupManifest old = cuts->front();
  old.format = 1;
  for (auto& in : old.instances) in.contents.clear();
  {
    auto kp = NewFileKeyProvider(t.keys, {.create_if_missing = false});
    ASSERT_OK(kp);
    auto sig = (*kp)->Sign(old.Canonical());
    ASSERT_OK(sig);
    old.signature = crypto::Hex(*sig);
  }
  ASSERT_EQ(old.Canonical().find("contents"), std::string::npos);
  ASSERT_NO_FATAL_FAILURE(WriteBytes(t.bak + "/cuts/00000001.json", old.ToJson()));
  auto v = VerifyBackup(t.bak, 0, PublicKey(t.keys));
  ASSERT_OK(v);
  EXPECT_EQ(v->format, 1u);
  {
    auto r = RestoreTo(t.bak, t.keys, t.tmp.Sub("r"));
    ASSERT_OK(r);
    auto s = Store::Open(testutil::NoTrainingOptions(t.keys), t.tmp.Sub("r"));
    ASSERT_OK(s);
    auto c = (*s)->GetCall("A", "a7");
    ASSERT_OK(c);
    ASSERT_OK((*s)->Close());
  }
  const Target f = LargestTable(t.bak);
  testutil::FlipByte(f.path(), fs::file_size(f.path()) / 2);
  auto bad = VerifyBackup(t.bak, 0, PublicKey(t.keys));
  EXPECT_CODE(bad, Code::kCorruption);
  EXPECT_TRUE(Has(bad.status(), "checksum")) << bad.status().ToString();
  EXPECT_CODE(RestoreTo(t.bak, t.keys, t.tmp.Sub("r2")), Code::kCorruption);
  ExpectNothingRestored(t.tmp.Sub("r2"));
}

// attack28 F1: a backup that no signed cut names (here cut 2, its manifest
// gone; a killed backup leaves the same) shares a table file the attacker
// forged, crc32c included. The next backup reuses it unread; before the
// fix it signed the forged file's SHA-256. It now compares the file with
// the store's own and fails, nothing added.
TEST(BackupContents, FileReusedFromAnUnsignedBackupIsComparedWithTheStore) {
  TwoTenants t;
  ASSERT_NO_FATAL_FAILURE(t.Make(60));
  ASSERT_OK(t.s->Flush());
  ASSERT_OK(t.s->Backup(t.bak));
  auto c1 = ListBackups(t.bak);
  ASSERT_OK(c1);
  std::set<std::string> in_cut1;
  for (const auto& in : c1->front().instances) {
    for (const auto& f : in.contents) in_cut1.insert(t.bak + "/" + in.dir + "/" + f.path);
  }
  for (int i = 0; i < 40; ++i) {
    ASSERT_OK(t.s->PutCall("A", MakeCall("more" + std::to_string(i), 1700000000000000 + i, "mm")));
  }
  ASSERT_OK(t.s->Flush());
  ASSERT_OK(t.s->Backup(t.bak));
  ASSERT_TRUE(fs::remove(t.bak + "/cuts/00000002.json"));
  Target f;
  for (const auto& p : testutil::BackupTableFiles(t.bak)) {
    if (p.ends_with(".sst") && p.find("/shards/") != std::string::npos && !in_cut1.count(p)) {
      const size_t at = p.find("/shared_checksum/");
      f = {p.substr(0, at), p.substr(at + 1)};
    }
  }
  ASSERT_FALSE(f.rel.empty()) << "cut 2 added no table file";
  ASSERT_NO_FATAL_FAILURE(ForgeWithMatchingCrc(f, Flipped(f)));
  ASSERT_OK(t.s->PutCall("A", MakeCall("last", 1700000000000099, "ml")));
  auto again = t.s->Backup(t.bak);
  EXPECT_CODE(again, Code::kCorruption);
  EXPECT_TRUE(Has(again.status(), "differs from the store's")) << again.status().ToString();
  EXPECT_TRUE(Has(again.status(), f.rel)) << again.status().ToString();
  ASSERT_NO_FATAL_FAILURE(t.Close());
  auto cuts = ListBackups(t.bak);
  ASSERT_OK(cuts);
  EXPECT_EQ(cuts->size(), 1u);  // cut 1 only: nothing signed the forged file
}

// attack28 F2: a table file replaced in the backup directory after
// BackupEngine copied it and before the cut is read back: the copy no
// longer equals the store's file, and the backup fails.
TEST(BackupContents, FileSwappedDuringTheBackupIsNotSigned) {
  TwoTenants t;
  ASSERT_NO_FATAL_FAILURE(t.Make(60));
  ASSERT_OK(t.s->Flush());
  int shards = 0;
  for (const auto& e : fs::directory_iterator(t.db + "/shards")) shards += e.is_directory();
  ASSERT_GT(shards, 0);
  bool swapped = false;
  testing::SetKillPointAction([&] {
    const Target f = LargestTable(t.bak);
    ForgeWithMatchingCrc(f, Flipped(f));
    swapped = true;
  });
  // After the last instance's copy is joined, before the read back.
  testing::ArmKillPoint("backup.after_instance", 1 + shards);
  auto r = t.s->Backup(t.bak);
  testing::DisarmKillPoints();
  testing::SetKillPointAction(nullptr);
  ASSERT_TRUE(swapped);
  EXPECT_CODE(r, Code::kCorruption);
  EXPECT_TRUE(Has(r.status(), "differs from the store's")) << r.status().ToString();
  ASSERT_NO_FATAL_FAILURE(t.Close());
  EXPECT_CODE(ListBackups(t.bak), Code::kNotFound);  // no cut
}

// attack28 F3: a BackupEngine description (meta/<id>) giving a file
// another crc32c than a second description does made Debian's RocksDB
// abort every process that opened the directory (the store backing up
// included); one naming a shared_checksum file without '_' made it throw.
// Both are kCorruption now, from verify, restore and backup alike.
TEST(BackupContents, EditedBackupEngineDescriptionIsRefusedNotACrash) {
  TwoTenants t;
  ASSERT_NO_FATAL_FAILURE(t.Make(60));
  ASSERT_OK(t.s->Flush());
  ASSERT_OK(t.s->Backup(t.bak));
  ASSERT_OK(t.s->PutCall("A", MakeCall("later", 1700000000000000, "ml")));
  ASSERT_OK(t.s->Backup(t.bak));
  const Target f = LargestTable(t.bak);  // in cut 1, reused by cut 2
  const std::string meta1 = f.instance + "/meta/1";

  const std::string original = testutil::ReadFile(meta1);
  std::smatch crc;
  ASSERT_TRUE(std::regex_search(
      original, crc,
      std::regex(std::regex_replace(f.rel, std::regex("[.]"), "[.]") + " crc32 ([0-9]+)")));
  const uint32_t other = static_cast<uint32_t>(std::stoul(crc[1].str()) + 1);
  const std::string edits[] = {
      std::regex_replace(original, std::regex(" crc32 " + crc[1].str()),
                         " crc32 " + std::to_string(other)),
      std::regex_replace(original, std::regex("shared_checksum/([0-9]+)_[A-Za-z0-9_]+[.]sst"),
                         "shared_checksum/$1x.sst"),
  };
  for (const std::string& edited : edits) {
    ASSERT_NE(edited, original);
    ASSERT_NO_FATAL_FAILURE(WriteBytes(meta1, edited));
    auto v = VerifyBackup(t.bak, 2, PublicKey(t.keys));
    EXPECT_CODE(v, Code::kCorruption);
    EXPECT_TRUE(Has(v.status(), "meta/1")) << v.status().ToString();
    auto b = t.s->Backup(t.bak);
    EXPECT_CODE(b, Code::kCorruption);
    EXPECT_TRUE(Has(b.status(), "edited by hand")) << b.status().ToString();
  }
  ASSERT_NO_FATAL_FAILURE(t.Close());
  auto r = RestoreTo(t.bak, t.keys, t.tmp.Sub("r"));
  EXPECT_CODE(r, Code::kCorruption);
  ExpectNothingRestored(t.tmp.Sub("r"));
}

// attack28 F4, F6: manifests are read before their signature is checked;
// one too large to be this build's, or with a number in another form than
// this build writes (2.9 read as 2), is refused as it is read.
TEST(BackupContents, ManifestOfAnotherFormIsRefusedAsItIsRead) {
  TwoTenants t;
  ASSERT_NO_FATAL_FAILURE(MakeBackup(&t));
  const std::string m = t.bak + "/cuts/00000001.json";
  const std::string original = testutil::ReadFile(m);
  for (const auto& [from, to] : std::vector<std::pair<std::string, std::string>>{
           {"\"format\": 2,", "\"format\": 2.9,"},
           {"\"format\": 2,", "\"format\": 4294967298,"},
           {"\"format\": 2,", "\"format\": 2, \"extra\": 1,"}}) {
    const size_t at = original.find(from);
    ASSERT_NE(at, std::string::npos) << original.substr(0, 200);
    std::string edited = original;
    edited.replace(at, from.size(), to);
    ASSERT_NO_FATAL_FAILURE(WriteBytes(m, edited));
    auto l = ListBackups(t.bak);
    EXPECT_CODE(l, Code::kCorruption);
    EXPECT_TRUE(Has(l.status(), "not in the form this build writes"))
        << to << ": " << l.status().ToString();
  }
  ASSERT_NO_FATAL_FAILURE(WriteBytes(m, original));
  ASSERT_OK(ListBackups(t.bak));
  ASSERT_NO_FATAL_FAILURE(WriteBytes(t.bak + "/cuts/00000002.json", std::string((33u << 20), ' ')));
  std::vector<UnreadableCut> bad;
  auto big = ListBackups(t.bak, &bad);
  ASSERT_OK(big);  // cut 1 still lists; the planted one is reported
  EXPECT_EQ(big->size(), 1u);
  ASSERT_EQ(bad.size(), 1u);
  EXPECT_EQ(bad[0].cut, 2u);
  EXPECT_TRUE(bad[0].problem.find("larger than") != std::string::npos) << bad[0].problem;
}

// Attack28 F5: one manifest that does not read (damaged, or a newer
// build's format) stopped the backup, verify and restore of every other cut
// of the directory. Now it stops only what needs its cut: the others list,
// verify and restore, "the newest" is refused while it is the highest
// number (rather than silently meaning an older cut), a new backup takes
// the number after it, and a prune that keeps the directory is refused
// (which log entries that cut needs is unknown).
TEST(BackupContents, OneUnreadableManifestStopsOnlyItsOwnCut) {
  TwoTenants t;
  ASSERT_NO_FATAL_FAILURE(t.Make(20));
  ASSERT_OK(t.s->Flush());
  ASSERT_OK(t.s->Backup(t.bak));  // cut 1
  ASSERT_OK(t.s->PutCall("A", MakeCall("late", 1700000000009999, "ma")));
  ASSERT_OK(t.s->Backup(t.bak));  // cut 2
  ASSERT_NO_FATAL_FAILURE(t.Close());
  const std::string public_key = PublicKey(t.keys);
  // Cut 2's manifest damaged in place: not JSON any more.
  const std::string m2 = t.bak + "/cuts/00000002.json";
  std::string text = testutil::ReadFile(m2);
  text[text.size() / 2] = '\x01';
  ASSERT_NO_FATAL_FAILURE(WriteBytes(m2, text));

  std::vector<UnreadableCut> bad;
  auto l = ListBackups(t.bak, &bad);
  ASSERT_OK(l);
  ASSERT_EQ(l->size(), 1u);
  EXPECT_EQ((*l)[0].cut, 1u);
  ASSERT_EQ(bad.size(), 1u);
  EXPECT_EQ(bad[0].manifest, "cuts/00000002.json");
  EXPECT_EQ(bad[0].cut, 2u);

  ASSERT_OK(VerifyBackup(t.bak, 1, public_key));
  auto v2 = VerifyBackup(t.bak, 2, public_key);
  EXPECT_CODE(v2, Code::kCorruption);
  auto newest = VerifyBackup(t.bak, 0, public_key);
  EXPECT_CODE(newest, Code::kCorruption);
  EXPECT_TRUE(Has(newest.status(), "name an older cut")) << newest.status().ToString();

  const std::string fresh = t.tmp.Sub("restored-newest");
  EXPECT_CODE(RestoreTo(t.bak, t.keys, fresh), Code::kCorruption);
  ExpectNothingRestored(fresh);
  // A new cut goes after the unreadable one, never over it.
  {
    auto o = Store::Open(testutil::NoTrainingOptions(t.keys), t.db);
    ASSERT_OK(o);
    auto b = (*o)->Backup(t.bak);
    ASSERT_OK(b);
    EXPECT_EQ(b->manifest.cut, 3u);
    ASSERT_OK((*o)->Close());
  }
  EXPECT_EQ(testutil::ReadFile(m2), text) << "the damaged manifest was rewritten";
  ASSERT_OK(VerifyBackup(t.bak, 0, public_key));  // cut 3 now
  // The CLI's verify of another cut passes and names the unreadable one.
  std::string out_text;
  EXPECT_EQ(testutil::RunShell(std::string(CALLVAULT_BIN) + " --keys " + t.keys +
                                   " backup verify " + t.bak + " 2>&1",
                               &out_text),
            0)
      << out_text;
  EXPECT_NE(out_text.find("warning: cuts/00000002.json does not read"), std::string::npos)
      << out_text;

  auto p = PruneTombstoneLog(t.keys, {t.bak});
  EXPECT_CODE(p, Code::kCorruption);
  EXPECT_TRUE(Has(p.status(), "00000002.json")) << p.status().ToString();

  // An unreadable manifest with the last eight-digit number: the next cut
  // would need a ninth digit, which no listing reads. Refused.
  const std::string last = t.bak + "/cuts/99999999.json";
  ASSERT_NO_FATAL_FAILURE(WriteBytes(last, "not json"));
  {
    auto o = Store::Open(testutil::NoTrainingOptions(t.keys), t.db);
    ASSERT_OK(o);
    EXPECT_CODE((*o)->Backup(t.bak), Code::kFailedPrecondition);
    ASSERT_OK((*o)->Close());
  }
  size_t manifests = 0;
  for (const auto& e : fs::directory_iterator(t.bak + "/cuts")) {
    (void)e;
    ++manifests;
  }
  EXPECT_EQ(manifests, 4u) << "cuts 1-3 and the planted one, nothing more";
  fs::remove(last);

  // Restoring cut 1 while cut 2, newer, does not read: cut 2 may be what
  // shows the tombstone log was cut back, so the restore is refused with
  // the way forward; with its manifest moved aside, cut 1 restores.
  const std::string out = t.tmp.Sub("restored-1");
  auto refused = RestoreTo(t.bak, t.keys, out, 1);
  EXPECT_CODE(refused, Code::kCorruption);
  EXPECT_TRUE(Has(refused.status(), "move cuts/00000002.json out of cuts/"))
      << refused.status().ToString();
  ExpectNothingRestored(out);
  fs::rename(m2, t.bak + "/00000002.json.aside");
  ASSERT_OK(RestoreTo(t.bak, t.keys, out, 1));
  {
    auto o = Store::Open(testutil::NoTrainingOptions(t.keys), out);
    ASSERT_OK(o);
    EXPECT_OK((*o)->GetCall("A", "a3", kPartAll));
    EXPECT_CODE((*o)->GetCall("A", "late", kPartAll), Code::kNotFound);  // cut 1 is before it
    ASSERT_OK((*o)->Close());
  }
}

// The case the refusal above is for (the attack on the fix of attack28 F5):
// a call deleted after cut 1 and before cut 2, the key directory's
// tombstone log put back from a copy older than that delete, and cut 2's
// manifest unreadable. Restoring cut 1 used to succeed and bring the
// deleted call back without a word; now it is refused.
TEST(BackupContents, AnUnreadableNewerCutDoesNotHideACutBackTombstoneLog) {
  TwoTenants t;
  ASSERT_NO_FATAL_FAILURE(t.Make(4));
  ASSERT_OK(t.s->Backup(t.bak));  // cut 1
  ASSERT_OK(t.s->DeleteCall("A", "a0"));
  const std::string log_after_a0 = testutil::ReadFile(t.keys + "/TOMBSTONES");
  ASSERT_OK(t.s->DeleteCall("A", "a1"));
  ASSERT_OK(t.s->Backup(t.bak));  // cut 2
  ASSERT_NO_FATAL_FAILURE(t.Close());
  ASSERT_NO_FATAL_FAILURE(WriteBytes(t.keys + "/TOMBSTONES", log_after_a0));
  const std::string m2 = t.bak + "/cuts/00000002.json";
  const std::string intact = testutil::ReadFile(m2);
  // Intact, cut 2 shows the log was cut back: refused (decision 0044).
  const std::string out = t.tmp.Sub("r1");
  EXPECT_CODE(RestoreTo(t.bak, t.keys, out, 1), Code::kCorruption);
  ExpectNothingRestored(out);
  // Written by a newer build (a format this one does not read), or damaged.
  std::string newer = intact;
  const size_t at = newer.find("\"format\": 2");
  ASSERT_NE(at, std::string::npos) << newer.substr(0, 200);
  newer.replace(at, 11, "\"format\": 3");
  std::string damaged = intact;
  damaged[damaged.size() / 2] = '\x01';
  for (const std::string* bytes : {&newer, &damaged}) {
    ASSERT_NO_FATAL_FAILURE(WriteBytes(m2, *bytes));
    auto r = RestoreTo(t.bak, t.keys, out, 1);
    EXPECT_CODE(r, Code::kCorruption);
    EXPECT_TRUE(Has(r.status(), "cut back")) << r.status().ToString();
    ExpectNothingRestored(out);
  }
}

}  // namespace
}  // namespace callvault
