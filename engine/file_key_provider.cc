// FileKeyProvider: KEK generations, keyring generations and the signing key
// in one local directory. See key_provider.h and docs/crypto.md.
#include <rocksdb/env.h>
#include <rocksdb/file_system.h>
#include <sodium.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>

#include <cstdio>
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

  std::string Describe() const override { return "file:" + dir_; }
  std::string LocalDirectory() const override { return dir_; }

  Result<std::vector<uint32_t>> ListKeks() override {
    CV_ASSIGN_OR_RETURN(auto names, fsutil::List(fs_.get(), dir_));
    std::vector<uint32_t> gens;
    for (const auto& n : names) {
      uint64_t g;
      if (ParseNumbered(n, kKekPrefix, &g) && g <= UINT32_MAX) gens.push_back(static_cast<uint32_t>(g));
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
      Status s = fsutil::ReadSecret(fs_.get(), dir_ + "/" + kSigningKeyName,
                                    crypto_sign_SECRETKEYBYTES, &signing_key_);
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
    rocksdb::IOStatus st = fs_->FileExists(dir_, rocksdb::IOOptions(), nullptr);
    if (!st.ok()) {
      if (!create_if_missing) return Status::NotFound("key directory does not exist");
      CV_RETURN_IF_ERROR(fsutil::FromIO(
          fs_->CreateDirIfMissing(dir_, rocksdb::IOOptions(), nullptr), "create key directory"));
      ::chmod(dir_.c_str(), 0700);
      // The new directory's entry in its parent, or a power loss can take
      // every key written into it.
      CV_RETURN_IF_ERROR(fsutil::SyncParentDir(fs_.get(), dir_));
    }
    return Status::OK();
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
    if (!failed_.load()) return Status::OK();
    return Status::IOError(
        "key directory: an earlier write or fsync failed; no key changes until the store is "
        "reopened (a failed fsync is not retried)");
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

  Status LoadSigningKeyLocked() {
    if (!signing_key_.empty()) return Status::OK();
    const std::string path = dir_ + "/" + kSigningKeyName;
    Status s = fsutil::ReadSecret(fs_.get(), path, crypto_sign_SECRETKEYBYTES, &signing_key_);
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
  std::atomic<bool> failed_{false};       // Writable()
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
