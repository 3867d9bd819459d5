// KeyProvider: where the root of the key hierarchy lives.
//
// A provider holds numbered key-encryption-key (KEK) generations, seals and
// opens the keyring under one of them, stores the sealed keyring generations,
// and signs receipts with the store's Ed25519 key. KEK bytes and the signing
// key never leave the provider through this interface, so an HSM or a cloud
// KMS can implement it. See docs/crypto.md for the hierarchy.
//
// The keyring lives with the provider, not in the store directory: a copy
// of the store (a backup) then holds no key material at all, and opening
// it with the current keys sees the current keyring, so tenants purged since
// the copy stay purged (docs/decisions/0001-keyring-with-the-keys.md).
//
// Thread safety: the store serialises every call that changes the provider
// (CreateKek, DestroyKek, WriteKeyring, RemoveKeyring); Seal, Open and Sign may
// be called concurrently.
#ifndef CALLVAULT_KEY_PROVIDER_H_
#define CALLVAULT_KEY_PROVIDER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "callvault/secret.h"
#include "callvault/status.h"

namespace rocksdb {
class Env;
}

namespace callvault {

class KeyProvider {
 public:
  virtual ~KeyProvider() = default;

  // A short description for logs and `stats` ("file:/path/to/keys").
  virtual std::string Describe() const = 0;
  // The local directory holding the keys, if any; Store::Open refuses a key
  // directory inside the store directory. Default: "" (not local).
  virtual std::string LocalDirectory() const { return ""; }

  // --- Writer lock -----------------------------------------------------------
  // One writer per key directory: two stores (the same store twice, or a
  // copy of it such as a restored backup) changing one key hierarchy at once
  // would bring purged keys back or destroy live KEKs. Store::Open (a
  // writable open) calls AcquireWriterLock before it reads or changes any
  // key, and ReleaseWriterLock when the store closes; a read-only open calls
  // neither. A second writer, in another process or through another
  // provider object, gets kFailedPrecondition naming the directory, and
  // nothing is written. Default: OK and nothing (a provider without local
  // state, e.g. an HSM or a KMS, serialises writers by its own means).
  virtual Status AcquireWriterLock() { return Status::OK(); }
  virtual void ReleaseWriterLock() {}

  // --- KEK generations -----------------------------------------------------
  // Every KEK generation that exists, ascending.
  virtual Result<std::vector<uint32_t>> ListKeks() = 0;
  // Creates a fresh random KEK generation `gen`. It must be durable no later
  // than the next WriteKeyring returns (the engine seals a keyring under it
  // only through WriteKeyring). kAlreadyExists if it exists.
  virtual Status CreateKek(uint32_t gen) = 0;
  // Destroys KEK generation `gen` for good, durably, before returning, or
  // (a KMS with soft delete) schedules its destruction, after which no call
  // of this interface may use it again. Destroying a generation that does
  // not exist is OK (idempotent).
  virtual Status DestroyKek(uint32_t gen) = 0;
  // When KEK generation `gen`, destroyed by DestroyKek, is or will be
  // irrecoverable by anyone (the provider's operator included), in
  // microseconds since the epoch. `destroyed_at` is the system clock when
  // the engine destroyed it, or later (a purge finished after a crash).
  // Purge receipts carry the answer as `irrecoverable_after`.
  // Default: destroyed_at (DestroyKek destroys at once: files, PKCS#11).
  // A KMS with a soft-delete window answers its scheduled deletion date
  // (AWS KMS DeletionDate, Azure Key Vault scheduledPurgeDate), i.e. at
  // least destroyed_at + the window (docs/kms-providers.md).
  virtual Result<int64_t> IrrecoverableAfter(uint32_t gen, int64_t destroyed_at) {
    (void)gen;
    return destroyed_at;
  }
  // Authenticated encryption under KEK `gen` (the file provider:
  // XChaCha20-Poly1305, nonce || ciphertext || tag; PKCS#11: AES-GCM in the
  // token). The format is the provider's own; only its Open reads it.
  virtual Result<std::string> Seal(uint32_t gen, const SecretBytes& plaintext,
                                   std::string_view aad) = 0;
  // Inverse of Seal. kKeyError if generation `gen` does not exist;
  // kKeyError if authentication fails (a wrong KEK or tampered bytes).
  virtual Result<SecretBytes> Open(uint32_t gen, std::string_view sealed,
                                   std::string_view aad) = 0;

  // --- Sealed keyring generations -----------------------------------------
  virtual Result<std::vector<uint64_t>> ListKeyrings() = 0;
  virtual Result<std::string> ReadKeyring(uint64_t gen) = 0;
  // Atomic and durable: a crash leaves either no generation `gen` or all of it.
  virtual Status WriteKeyring(uint64_t gen, std::string_view bytes) = 0;
  // Idempotent. Need not be durable: the engine uses the newest generation
  // and removes older ones again at open.
  virtual Status RemoveKeyring(uint64_t gen) = 0;

  // --- Receipt signing (Ed25519) -------------------------------------------
  // Creates the signing key on first use.
  virtual Result<std::string> SigningPublicKey() = 0;  // 32 bytes
  // The public key without creating the signing key: kNotFound if there is
  // none yet (no receipt was ever signed). Read-only opens use this.
  // Default: SigningPublicKey() (right for providers where that creates
  // nothing).
  virtual Result<std::string> ExistingSigningPublicKey() { return SigningPublicKey(); }
  virtual Result<std::string> Sign(std::string_view message) = 0;  // 64 bytes

  // --- Tombstone log (docs/format.md "Tombstone log") ----------------------
  // An append-only log, kept with the keys (outside the store, so a backup
  // of the store never rolls it back), of the calls that erasures and
  // retention removed: blind hashes only. A restore replays the entries
  // written after its cut. Append: durable before it returns (the engine
  // appends before the removal it logs). Needs the writer lock.
  // Default: kNotSupported (no log: restores then cannot re-apply erasures).
  virtual Status AppendTombstones(std::string_view bytes) {
    (void)bytes;
    return Status::NotSupported("this key provider keeps no tombstone log");
  }
  // The whole log ("" if empty or absent).
  virtual Result<std::string> ReadTombstones() {
    return Status::NotSupported("this key provider keeps no tombstone log");
  }

  // --- Restore ledger (docs/format.md "Restore ledger") --------------------
  // What became of each restore made with these keys: Store::Restore
  // records a restore as pending before it writes the copy's marker, the
  // copy's first writable open records it done (replayed) before it removes
  // the marker, and closed once the copy's header no longer names it
  // (decision 0027, "The ledger"). Kept with the keys, not in the store
  // directory: whoever can edit a store's files (or its header through
  // `raw ldb`) must not be able to say a restore finished. The bytes are the
  // engine's (it parses and checks them); the provider stores them. Read:
  // the whole ledger as written (kNotFound if there is none yet: an empty
  // ledger is not one the engine wrote). Write: atomic and durable
  // (all of the new ledger or all of the old one after a crash); needs the
  // writer lock.
  // Default: kNotSupported (no ledger: Store::Restore refuses a backup that
  // names a tombstone log, as its replay could not be bound to its copy).
  virtual Result<std::string> ReadRestoreLedger() {
    return Status::NotSupported("this key provider keeps no restore ledger");
  }
  virtual Status WriteRestoreLedger(std::string_view bytes) {
    (void)bytes;
    return Status::NotSupported("this key provider keeps no restore ledger");
  }

  // --- Trusted move sources (docs/format.md "Trusted peers file") ----------
  // The move identities of the stores this store accepts tenants from
  // (Store::MoveTenantIn refuses a segment signed by any other key; decision
  // 0062). Kept with the keys, like the signing key, and not in the store
  // directory: whoever can copy files into the store must not be able to
  // add a source. The bytes are the engine's (it parses and checks them);
  // the provider stores them. Read: the whole list ("" if there is none
  // yet). Write: atomic and durable (all of the new list or all of the old
  // one after a crash); needs the writer lock.
  // Default: kNotSupported (no list: MoveTenantIn accepts no source; only
  // callvault::MoveTenant, which holds both stores, moves tenants in).
  virtual Result<std::string> ReadTrustedPeers() {
    return Status::NotSupported("this key provider keeps no trusted-peers list");
  }
  virtual Status WriteTrustedPeers(std::string_view bytes) {
    (void)bytes;
    return Status::NotSupported("this key provider keeps no trusted-peers list");
  }
};

// Keeps everything in one directory, which must not be inside the store
// directory nor hold it (Store::Open compares device and inode numbers, so
// a symlink or a bind mount does not hide either):
//   LOCK             the writer lock (flock, held while a store is open for
//                    writing; holds the writer's pid), mode 0600
//   KEK-<gen>        32 random bytes, mode 0600
//   KEYRING-<gen>    a sealed keyring generation (docs/format.md), mode 0600
//   SIGNING-KEY      Ed25519 secret key, mode 0600
//   TOMBSTONES       the tombstone log (blind hashes, no key), mode 0600
//   PEERS            the trusted move sources (public identities), mode 0600
//   RESTORES         the restore ledger (restore ids and states), mode 0600
// Every file is created with mode 0600 (O_CREAT|O_EXCL|O_NOFOLLOW): no
// window in which another user could open it. The directory must be a real
// directory (not a symlink), owned by this process's user, with no access
// for group or others (mode 0700 or stricter); NewFileKeyProvider refuses
// anything else with kFailedPrecondition and the command that fixes it. A
// directory it creates itself is made with mode 0700. Without the writer
// lock (a read-only open) the provider writes nothing: key changes and the
// creation of the signing key fail with kFailedPrecondition.
// Writes are temp file, fsync, rename, fsync directory. A temp file left by
// a crash between its create and its rename (`<name>.tmp`) is removed when
// the next writer takes the lock, shredded first if it may hold key bytes. A destroyed KEK is
// overwritten with zeros, fsynced and unlinked (on flash and copy-on-write
// file systems the old blocks may survive: use an HSM provider there).
//
// `env` is the Env whose FileSystem is used (for fault injection in tests);
// nullptr means rocksdb::Env::Default(). It must outlive the provider.
struct FileKeyProviderOptions {
  bool create_if_missing = true;  // Default: true.
  rocksdb::Env* env = nullptr;    // Default: Env::Default().
};
Result<std::shared_ptr<KeyProvider>> NewFileKeyProvider(const std::string& dir,
                                                        const FileKeyProviderOptions& options = {});

}  // namespace callvault

#endif  // CALLVAULT_KEY_PROVIDER_H_
