// FileKeyProvider: KEK generations, keyring generations and the signing key
// in one local directory. See key_provider.h and docs/crypto.md.
#include <rocksdb/env.h>
#include <rocksdb/file_system.h>
#include <fcntl.h>
#include <sodium.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>

#include "callvault/key_provider.h"
#include "engine/crypto.h"
#include "engine/fs_util.h"

namespace callvault {

namespace {

constexpr char kKekPrefix[] = "KEK-";
constexpr char kKeyringPrefix[] = "KEYRING-";
constexpr char kSigningKeyName[] = "SIGNING-KEY";
constexpr char kLockName[] = "LOCK";
constexpr char kPeersName[] = "PEERS";
constexpr char kRestoresName[] = "RESTORES";
constexpr char kTombstonesName[] = "TOMBSTONES";
// Far above any real ledger (one line per restore not yet closed, and the
// newest closed ones): a bigger file is not one the engine wrote.
constexpr uint64_t kMaxRestoresBytes = 1u << 20;
constexpr size_t kNonceBytes = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;

// Parses "<prefix><decimal>" exactly; false otherwise (temp files included).
bool ParseNumbered(const std::string& name, std::string_view prefix, uint64_t* out) {
  if (name.size() <= prefix.size() || name.compare(0, prefix.size(), prefix) != 0) return false;
  uint64_t v = 0;
  for (size_t i = prefix.size(); i < name.size(); ++i) {
    char c = name[i];
    if (c < '0' || c > '9' || v > (UINT64_MAX - 9) / 10) return false;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  *out = v;
  return true;
}

class FileKeyProvider final : public KeyProvider {
 public:
  FileKeyProvider(std::string dir, rocksdb::Env* env)
      : dir_(std::move(dir)), fs_(env->GetFileSystem()) {}
  ~FileKeyProvider() override { ReleaseWriterLock(); }

  // flock on dir/LOCK: held by an open file description, so a second
  // provider object in this process is refused as another process is, and
  // the kernel releases it when the process dies (a LOCK left by a crash is
  // simply locked again). The holder's pid is written into the file for the
  // message. The holder unlinks LOCK before it lets go, so a store that
  // closes (or fails to open) leaves no file; a waiter that locked the
  // unlinked file notices (its inode is no longer at the path) and retries.
  Status AcquireWriterLock() override {
    std::lock_guard<std::mutex> l(lock_mu_);
    if (lock_fd_ >= 0) {
      return Status::FailedPrecondition("key directory " + dir_ +
                                        " is in use by another store of this process (this "
                                        "provider holds its writer lock already)");
    }
    CV_RETURN_IF_ERROR(fsutil::CheckPrivateDir(dir_));
    const std::string path = dir_ + "/" + kLockName;
    for (int attempt = 0; attempt < 100; ++attempt) {
      int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
      if (fd < 0 && errno == ELOOP) {
        return Status::FailedPrecondition(
            "key directory " + dir_ +
            ": its LOCK is a symbolic link (a planted entry, never followed); remove it "
            "when no store is open");
      }
      if (fd < 0) {
        return Status::IOError("key directory " + dir_ + ": open LOCK: " + std::strerror(errno));
      }
      struct stat st;
      if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != ::geteuid() ||
          (st.st_mode & 077) != 0) {
        ::close(fd);
        return Status::FailedPrecondition("key directory " + dir_ +
                                          ": its LOCK file is not a private regular file of this "
                                          "user; remove it when no store is open");
      }
      if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
        const int e = errno;
        char buf[32] = {};
        const ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
        ::close(fd);
        if (e != EWOULDBLOCK) {
          return Status::IOError("key directory " + dir_ + ": lock: " + std::strerror(e));
        }
        std::string pid;
        for (ssize_t i = 0; i < n && buf[i] >= '0' && buf[i] <= '9'; ++i) pid.push_back(buf[i]);
        std::string who = "another process";
        if (pid == std::to_string(::getpid())) who = "another store of this process";
        if (!pid.empty()) who += " (pid " + pid + ")";
        return Status::FailedPrecondition("key directory " + dir_ + " is in use by " + who +
                                          ": one writer per key directory; close that store "
                                          "first (read-only commands do not need the lock)");
      }
      struct stat now;
      if (::lstat(path.c_str(), &now) != 0 || now.st_dev != st.st_dev || now.st_ino != st.st_ino) {
        ::close(fd);  // the previous holder unlinked it as we locked it
        continue;
      }
      const std::string me = std::to_string(::getpid()) + "\n";
      if (::ftruncate(fd, 0) != 0 ||
          ::pwrite(fd, me.data(), me.size(), 0) != static_cast<ssize_t>(me.size())) {
        // Only the message of a refused second writer needs the pid.
      }
      lock_fd_ = fd;
      lock_dev_ = st.st_dev;
      lock_ino_ = st.st_ino;
      Status cleaned = RemoveLeftoverTempFiles();
      if (!cleaned.ok()) {  // let go as ReleaseWriterLock does: unlink, then close
        ::unlink(path.c_str());
        ::close(lock_fd_);
        lock_fd_ = -1;
      }
      return cleaned;
    }
    return Status::FailedPrecondition("key directory " + dir_ +
                                      " is in use: its LOCK changes hands too fast");
  }

  // The temp file of an AtomicWrite a crash interrupted (between its
  // create and its rename) is never read, and a KEK-<n>.tmp holds a key:
  // the writer shreds them before it changes anything (crash_points_test,
  // atomic_write.after_fsync).
  void ReleaseWriterLock() override {
    std::lock_guard<std::mutex> l(lock_mu_);
    if (lock_fd_ < 0) return;
    // While still holding it, and only if the path still names our inode
    // (a LOCK replaced meanwhile belongs to someone else).
    const std::string path = dir_ + "/" + kLockName;
    struct stat now;
    if (::lstat(path.c_str(), &now) == 0 && now.st_dev == lock_dev_ && now.st_ino == lock_ino_) {
      ::unlink(path.c_str());
    }
    ::close(lock_fd_);                            // releases the flock
    lock_fd_ = -1;
  }

  std::string Describe() const override { return "file:" + dir_; }
  std::string LocalDirectory() const override { return dir_; }

  Result<std::vector<uint32_t>> ListKeks() override {
    CV_ASSIGN_OR_RETURN(auto names, fsutil::List(fs_.get(), dir_));
    std::vector<uint32_t> gens;
    for (const auto& n : names) {
      uint64_t g;
      if (ParseNumbered(n, kKekPrefix, &g) && g <= UINT32_MAX) {
        // A symlink or other non-regular KEK-<n> is refused, not counted:
        // a rotation must never adopt (seal under) a key outside the
        // directory, nor a purge shred through it.
        Status c = fsutil::CheckKeyFile(dir_ + "/" + n, /*secret=*/true);
        if (c.code() == Code::kKeyError) return c;
        gens.push_back(static_cast<uint32_t>(g));
      }
    }
    std::sort(gens.begin(), gens.end());
    return gens;
  }

  Status CreateKek(uint32_t gen) override {
    std::lock_guard<std::mutex> l(mu_);
    const std::string name = kKekPrefix + std::to_string(gen);
    if (fs_->FileExists(dir_ + "/" + name, rocksdb::IOOptions(), nullptr).ok()) {
      return Status::AlreadyExists("KEK generation exists");
    }
    CV_RETURN_IF_ERROR(Writable());
    SecretBytes kek = crypto::RandomKey();
    // No directory fsync here: a new KEK is only used by the keyring written
    // next, whose own directory fsync makes both renames durable together.
    // A crash before that loses a KEK that sealed nothing durable.
    CV_RETURN_IF_ERROR(Sticky(
        fsutil::AtomicWrite(fs_.get(), dir_, name, kek.data(), kek.size(), /*sync_dir=*/false)));
    keks_[gen] = std::move(kek);
    return Status::OK();
  }

  Status DestroyKek(uint32_t gen) override {
    std::lock_guard<std::mutex> l(mu_);
    auto it = keks_.find(gen);
    if (it != keks_.end()) keks_.erase(it);  // SecretBytes zeroes itself
    CV_RETURN_IF_ERROR(Writable());
    return Sticky(fsutil::Shred(fs_.get(), dir_, kKekPrefix + std::to_string(gen)));
  }

  Result<std::string> Seal(uint32_t gen, const SecretBytes& plaintext,
                           std::string_view aad) override {
    std::lock_guard<std::mutex> l(mu_);
    CV_ASSIGN_OR_RETURN(const SecretBytes* kek, KekLocked(gen));
    std::string nonce = crypto::RandomString(kNonceBytes);
    return nonce + crypto::AeadSealSecret(*kek, nonce, plaintext, aad);
  }

  Result<SecretBytes> Open(uint32_t gen, std::string_view sealed, std::string_view aad) override {
    std::lock_guard<std::mutex> l(mu_);
    CV_ASSIGN_OR_RETURN(const SecretBytes* kek, KekLocked(gen));
    if (sealed.size() < kNonceBytes) return Status::KeyError("sealed keyring too short");
    SecretBytes out;
    if (!crypto::AeadOpenSecret(*kek, sealed.substr(0, kNonceBytes), sealed.substr(kNonceBytes),
                                aad, &out)) {
      return Status::KeyError(
          "keyring failed authentication under its KEK generation (wrong key directory, or "
          "the keyring file is damaged)");
    }
    return out;
  }

  Result<std::vector<uint64_t>> ListKeyrings() override {
    CV_ASSIGN_OR_RETURN(auto names, fsutil::List(fs_.get(), dir_));
    std::vector<uint64_t> gens;
    for (const auto& n : names) {
      uint64_t g;
      if (ParseNumbered(n, kKeyringPrefix, &g)) gens.push_back(g);
    }
    std::sort(gens.begin(), gens.end());
    return gens;
  }

  Result<std::string> ReadKeyring(uint64_t gen) override {
    std::string data;
    CV_RETURN_IF_ERROR(
        fsutil::CheckKeyFile(dir_ + "/" + kKeyringPrefix + std::to_string(gen), /*secret=*/false));
    CV_RETURN_IF_ERROR(fsutil::ReadAll(fs_.get(), dir_ + "/" + kKeyringPrefix + std::to_string(gen), &data));
    return data;
  }

  Status WriteKeyring(uint64_t gen, std::string_view bytes) override {
    CV_RETURN_IF_ERROR(Writable());
    return Sticky(fsutil::AtomicWrite(fs_.get(), dir_, kKeyringPrefix + std::to_string(gen),
                                      reinterpret_cast<const uint8_t*>(bytes.data()),
                                      bytes.size()));
  }

  Status RemoveKeyring(uint64_t gen) override {
    CV_RETURN_IF_ERROR(Writable());
    // Not synced: an older generation that comes back after a power loss
    // is ignored (the newest generation is used) and removed at open.
    return Sticky(
        fsutil::Remove(fs_.get(), dir_, kKeyringPrefix + std::to_string(gen), /*sync_dir=*/false));
  }

  Status AppendTombstones(std::string_view bytes) override {
    CV_RETURN_IF_ERROR(Writable());
    std::lock_guard<std::mutex> l(mu_);
    const std::string path = dir_ + "/" + kTombstonesName;
    struct stat before;
    const bool existed = ::lstat(path.c_str(), &before) == 0;
    int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
      return Status::IOError("key directory " + dir_ + ": open TOMBSTONES: " + std::strerror(errno));
    }
    size_t off = 0;
    while (off < bytes.size()) {
      ssize_t n = ::write(fd, bytes.data() + off, bytes.size() - off);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        const int e = errno;
        ::close(fd);
        return Status::IOError("key directory " + dir_ + ": append TOMBSTONES: " + std::strerror(e));
      }
      off += static_cast<size_t>(n);
    }
    if (::fsync(fd) != 0) {
      const int e = errno;
      ::close(fd);
      return Status::IOError("key directory " + dir_ + ": fsync TOMBSTONES: " + std::strerror(e));
    }
    ::close(fd);
    if (!existed) {
      int d = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (d < 0 || ::fsync(d) != 0) {
        const int e = errno;
        if (d >= 0) ::close(d);
        return Status::IOError("key directory " + dir_ + ": fsync: " + std::strerror(e));
      }
      ::close(d);
    }
    return Status::OK();
  }

  Result<std::string> ReadTombstones() override {
    std::lock_guard<std::mutex> l(mu_);
    return ReadPrivateNoFollow(kTombstonesName, UINT64_MAX);
  }

  Result<std::string> ReadRestoreLedger() override {
    std::lock_guard<std::mutex> l(mu_);
    // Absent (no restore ever) and empty (not a ledger the engine wrote)
    // are told apart: the engine refuses the second.
    return ReadPrivateNoFollow(kRestoresName, kMaxRestoresBytes, /*absent_is_not_found=*/true);
  }

  Status WriteRestoreLedger(std::string_view bytes) override {
    CV_RETURN_IF_ERROR(Writable());
    std::lock_guard<std::mutex> l(mu_);
    // A planted link under the name is refused, not replaced: AtomicWrite's
    // rename would replace it silently, but a link there is not ours.
    Status c = fsutil::CheckKeyFile(dir_ + "/" + kRestoresName, /*secret=*/false);
    if (!c.ok() && c.code() != Code::kNotFound) return c;
    return Sticky(fsutil::AtomicWrite(fs_.get(), dir_, kRestoresName,
                                      reinterpret_cast<const uint8_t*>(bytes.data()),
                                      bytes.size()));
  }

  Result<std::string> ReadTrustedPeers() override {
    const std::string path = dir_ + "/" + kPeersName;
    // A symlink or another non-regular PEERS is refused (kKeyError), not
    // followed: a list planted outside the directory would add sources.
    // CheckKeyFile also refuses one owned by another user; the read itself
    // does not follow a link either, so an entry swapped in after the check
    // is refused too, not read through.
    Status c = fsutil::CheckKeyFile(path, /*secret=*/false);
    if (c.code() == Code::kNotFound) return std::string();
    CV_RETURN_IF_ERROR(c);
    std::lock_guard<std::mutex> l(mu_);
    return ReadPrivateNoFollow(kPeersName, UINT64_MAX);
  }

  Status WriteTrustedPeers(std::string_view bytes) override {
    CV_RETURN_IF_ERROR(Writable());
    std::lock_guard<std::mutex> l(mu_);
    return Sticky(fsutil::AtomicWrite(fs_.get(), dir_, kPeersName,
                                      reinterpret_cast<const uint8_t*>(bytes.data()),
                                      bytes.size()));
  }

  Result<std::string> SigningPublicKey() override {
    std::lock_guard<std::mutex> l(mu_);
    CV_RETURN_IF_ERROR(LoadSigningKeyLocked());
    std::string pk(crypto_sign_PUBLICKEYBYTES, '\0');
    crypto_sign_ed25519_sk_to_pk(reinterpret_cast<unsigned char*>(pk.data()), signing_key_.data());
    return pk;
  }

  Result<std::string> ExistingSigningPublicKey() override {
    std::lock_guard<std::mutex> l(mu_);
    if (signing_key_.empty()) {
      Status s = ReadSigningKeyLocked();
      if (s.code() == Code::kNotFound) {
        return Status::NotFound("no signing key yet (no receipt has been signed)");
      }
      CV_RETURN_IF_ERROR(s);
    }
    std::string pk(crypto_sign_PUBLICKEYBYTES, '\0');
    crypto_sign_ed25519_sk_to_pk(reinterpret_cast<unsigned char*>(pk.data()), signing_key_.data());
    return pk;
  }

  Result<std::string> Sign(std::string_view message) override {
    std::lock_guard<std::mutex> l(mu_);
    CV_RETURN_IF_ERROR(LoadSigningKeyLocked());
    std::string sig(crypto_sign_BYTES, '\0');
    crypto_sign_detached(reinterpret_cast<unsigned char*>(sig.data()), nullptr,
                         reinterpret_cast<const unsigned char*>(message.data()), message.size(),
                         signing_key_.data());
    return sig;
  }

  Status Init(bool create_if_missing) {
    crypto::Init();
    Status st = fsutil::CheckPrivateDir(dir_);
    if (st.code() != Code::kNotFound) return st;
    if (!create_if_missing) return st;
    // mkdir with 0700: private from its creation, never chmod'ed later.
    Status made = fsutil::MakePrivateDir(dir_);
    if (made.code() == Code::kAlreadyExists) return fsutil::CheckPrivateDir(dir_);  // a race
    CV_RETURN_IF_ERROR(made);
    // The new directory's entry in its parent, or a power loss can take
    // every key written into it.
    CV_RETURN_IF_ERROR(fsutil::SyncParentDir(fs_.get(), dir_));
    return fsutil::CheckPrivateDir(dir_);
  }

 private:
  // After a failed write, fsync, rename or unlink in the key directory,
  // nothing more is written there until the provider is made again (the
  // store reopened), as RocksDB does with its WAL: a later fsync that
  // succeeds proves nothing about the changes before the failed one (Linux
  // reports a writeback error once), so a keyring written after it could
  // be acknowledged (its generation recorded in the store header) and
  // still vanish in a power loss with the one before it.
  Status Writable() const {
    {
      std::lock_guard<std::mutex> l(lock_mu_);
      if (lock_fd_ < 0) {
        return Status::FailedPrecondition(
            "key directory " + dir_ +
            ": not open for writing (no writer lock; a read-only open changes no key)");
      }
      // The lock only excludes writers that flock the same inode: if LOCK
      // was unlinked or replaced while held, a second writer may hold the
      // new one. No key change after that (sticky).
      struct stat now;
      if (::lstat((dir_ + "/" + kLockName).c_str(), &now) != 0 || now.st_dev != lock_dev_ ||
          now.st_ino != lock_ino_) {
        failed_.store(true);
        return Status::FailedPrecondition(
            "key directory " + dir_ +
            ": LOCK was removed or replaced while held; another writer may have opened it; "
            "close this store");
      }
    }
    if (!failed_.load()) return Status::OK();
    return Status::IOError(
        "key directory: an earlier write or fsync failed; no key changes until the store is "
        "reopened (a failed fsync is not retried)");
  }
  // The temp file of an AtomicWrite killed between its creation and its
  // rename (KEK-<n>.tmp, KEYRING-<n>.tmp, SIGNING-KEY.tmp) was never part of
  // the key hierarchy; nothing else removes it, as generations only grow.
  // Shredded by the writer that holds the lock, before any key is read.
  Status RemoveLeftoverTempFiles() {
    CV_ASSIGN_OR_RETURN(auto names, fsutil::List(fs_.get(), dir_));
    bool removed = false;
    for (const auto& n : names) {
      constexpr std::string_view kTmp = ".tmp";
      if (n.size() <= kTmp.size() || n.compare(n.size() - kTmp.size(), kTmp.size(), kTmp) != 0)
        continue;
      const std::string base = n.substr(0, n.size() - kTmp.size());
      uint64_t g;
      // A keyring temp is shredded too: it may hold the wrapped DEK of a
      // tenant purged since, sealed under a KEK that is still live.
      if (!ParseNumbered(base, kKekPrefix, &g) && base != kSigningKeyName &&
          !ParseNumbered(base, kKeyringPrefix, &g) && base != kPeersName &&
          base != kRestoresName) {
        continue;
      }
      // A directory under such a name is not a write of ours (AtomicWrite
      // creates files): it cannot be unlinked, and left alone it would fail
      // every writable open with a bare EISDIR. Say what it is instead.
      struct stat st;
      if (::lstat((dir_ + "/" + n).c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
        return Status::KeyError(
            "key directory " + dir_ + ": " + n +
            " is a directory, where only the temp file of an interrupted key write belongs "
            "(callvault never creates one): remove it (after checking how it got there), "
            "then open the store again");
      }
      CV_RETURN_IF_ERROR(fsutil::Shred(fs_.get(), dir_, n));
      removed = true;
    }
    return removed ? fsutil::SyncDir(fs_.get(), dir_) : Status::OK();
  }

  // A file of the key directory read without following a link (a link or a
  // non-regular entry is refused, never read through); "" if absent (or
  // kNotFound, with `absent_is_not_found`). REQUIRES: mu_ held.
  Result<std::string> ReadPrivateNoFollow(const char* name, uint64_t max_bytes,
                                          bool absent_is_not_found = false) {
    std::string out;
    fsutil::NoFollowRead r;
    CV_RETURN_IF_ERROR(fsutil::ReadNoFollow(dir_ + "/" + name, max_bytes, &out, &r));
    switch (r) {
      case fsutil::NoFollowRead::kRead:
        return out;
      case fsutil::NoFollowRead::kMissing:
        if (absent_is_not_found) {
          return Status::NotFound("key directory " + dir_ + " has no " + name);
        }
        return std::string();
      case fsutil::NoFollowRead::kSymlink:
        return Status::KeyError("key directory " + dir_ + ": its " + name +
                                " is a symbolic link (a planted entry, never followed)");
      case fsutil::NoFollowRead::kNotRegular:
        return Status::KeyError("key directory " + dir_ + ": its " + name +
                                " is not a regular file (a planted entry, never read)");
      case fsutil::NoFollowRead::kTooLarge:
        break;
    }
    return Status::Corruption("key directory " + dir_ + ": its " + name +
                              " is larger than any the engine writes");
  }

  Status Sticky(Status s) {
    if (!s.ok()) failed_.store(true);
    return s;
  }

  Result<const SecretBytes*> KekLocked(uint32_t gen) {
    auto it = keks_.find(gen);
    if (it != keks_.end()) return &it->second;
    SecretBytes kek;
    Status s = fsutil::ReadSecret(fs_.get(), dir_ + "/" + kKekPrefix + std::to_string(gen),
                                  crypto::kKeyBytes, &kek);
    if (s.code() == Code::kNotFound) {
      return Status::KeyError("KEK generation " + std::to_string(gen) +
                              " does not exist in the key directory (destroyed, or wrong "
                              "key directory)");
    }
    CV_RETURN_IF_ERROR(s);
    auto [pos, _] = keks_.emplace(gen, std::move(kek));
    return &pos->second;
  }

  // SIGNING-KEY is libsodium's Ed25519 secret key: the 32-byte seed, then
  // the public key it derives. A bit flipped in either half makes the two
  // disagree; a key used so would sign receipts that verify under no key,
  // the store's published one included (attack13), so it is refused here,
  // before anything is signed or shredded. A wholly replaced, consistent
  // key is not caught here (whoever can write the key directory can also
  // destroy every key in it); `receipts verify` shows it.
  static Status CheckSigningKey(const SecretBytes& sk, const std::string& path) {
    SecretBytes derived(crypto_sign_SECRETKEYBYTES);
    unsigned char pk[crypto_sign_PUBLICKEYBYTES];
    crypto_sign_seed_keypair(pk, derived.data(), sk.data());  // the seed is sk's first half
    const bool same = sodium_memcmp(pk, sk.data() + crypto_sign_SEEDBYTES,
                                    crypto_sign_PUBLICKEYBYTES) == 0;
    sodium_memzero(pk, sizeof pk);
    if (same) return Status::OK();
    return Status::Corruption(path + " is damaged (its public half is not the one its seed "
                              "derives): receipts signed with it would not verify; restore it "
                              "from your copy of the key directory");
  }

  Status ReadSigningKeyLocked() {
    const std::string path = dir_ + "/" + kSigningKeyName;
    SecretBytes sk;
    CV_RETURN_IF_ERROR(fsutil::ReadSecret(fs_.get(), path, crypto_sign_SECRETKEYBYTES, &sk));
    CV_RETURN_IF_ERROR(CheckSigningKey(sk, path));
    signing_key_ = std::move(sk);
    return Status::OK();
  }

  Status LoadSigningKeyLocked() {
    if (!signing_key_.empty()) return Status::OK();
    Status s = ReadSigningKeyLocked();
    if (s.code() != Code::kNotFound) return s;
    SecretBytes sk(crypto_sign_SECRETKEYBYTES);
    unsigned char pk[crypto_sign_PUBLICKEYBYTES];
    crypto_sign_keypair(pk, sk.data());
    CV_RETURN_IF_ERROR(Writable());
    CV_RETURN_IF_ERROR(
        Sticky(fsutil::AtomicWrite(fs_.get(), dir_, kSigningKeyName, sk.data(), sk.size())));
    signing_key_ = std::move(sk);
    return Status::OK();
  }

  const std::string dir_;
  const std::shared_ptr<rocksdb::FileSystem> fs_;
  std::mutex mu_;
  std::map<uint32_t, SecretBytes> keks_;  // GUARDED_BY(mu_)
  SecretBytes signing_key_;               // GUARDED_BY(mu_)
  mutable std::atomic<bool> failed_{false};  // Writable()
  mutable std::mutex lock_mu_;
  int lock_fd_ = -1;                      // GUARDED_BY(lock_mu_); the flocked LOCK file
  dev_t lock_dev_ = 0;                    // GUARDED_BY(lock_mu_); its identity
  ino_t lock_ino_ = 0;
};

}  // namespace

Result<std::shared_ptr<KeyProvider>> NewFileKeyProvider(const std::string& dir,
                                                        const FileKeyProviderOptions& options) {
  if (dir.empty()) return Status::InvalidArgument("key directory path is empty");
  rocksdb::Env* env = options.env ? options.env : rocksdb::Env::Default();
  // Not Env::GetAbsolutePath: in RocksDB 7.8 it returns the working
  // directory for any relative path.
  std::error_code ec;
  std::string abs = std::filesystem::absolute(dir, ec).lexically_normal().string();
  if (ec) abs = dir;
  while (abs.size() > 1 && abs.back() == '/') abs.pop_back();
  auto p = std::make_shared<FileKeyProvider>(abs, env);
  CV_RETURN_IF_ERROR(p->Init(options.create_if_missing));
  return std::shared_ptr<KeyProvider>(std::move(p));
}

}  // namespace callvault
