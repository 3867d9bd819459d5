// A KeyProvider whose KEKs (and receipt signing key) live in a PKCS#11
// token: an HSM, or SoftHSM2 in tests. A layer over the public headers: the
// engine does not know it exists (link callvault::pkcs11 to use it).
//
//   KEK generation n   an AES-256 secret key object in the token, labelled
//                      "<object_prefix>-kek-<n>", CKA_TOKEN, CKA_PRIVATE,
//                      CKA_SENSITIVE true, CKA_EXTRACTABLE false, usable only
//                      to encrypt and decrypt. Created in the token
//                      (CKM_AES_KEY_GEN); its bytes never leave it.
//   Seal / Open        CKM_AES_GCM inside the token, a fresh 96-bit IV per
//                      seal from C_GenerateRandom, a 128-bit tag, and the
//                      generation bound into the AAD. Every failure (a
//                      missing object, a bad tag, which SoftHSM2 reports as
//                      CKR_GENERAL_ERROR) is kKeyError.
//   DestroyKek         C_DestroyObject. Irrecoverable when it returns (as far
//                      as the token keeps that promise: SoftHSM2 unlinks a
//                      file and does not fsync; a real HSM zeroises).
//   Signing key        an Ed25519 key pair in the token (CKM_EC_EDWARDS_KEY_
//                      PAIR_GEN, CKM_EDDSA), labelled "<object_prefix>-signing",
//                      the private half sensitive and non-extractable; or, with
//                      signing_key_in_token = false (a token without
//                      CKM_EDDSA), a SIGNING-KEY file in the state directory.
//   State directory    a local, private directory (the file provider's rules:
//                      mode 0700, owned by this user, never inside the store)
//                      holding what is not a key: the sealed keyring
//                      generations (KEYRING-<n>, useless without the token),
//                      the tombstone log, and the writer lock (LOCK, flock).
//
// One state directory per (token, object_prefix): the writer lock is the
// state directory's, so two state directories on one token must use two
// prefixes (docs/decisions/0029-pkcs11-key-provider.md).
//
// The PIN is read from a file or from an environment variable named by the
// options, never passed as a value (a command line shows in `ps`), and is
// wiped once the token has accepted it. The module is loaded with dlopen
// (C_GetFunctionList) and initialised once per process with
// CKF_OS_LOCKING_OK; sessions are pooled, and Seal, Open and Sign may run
// from many threads at once.
//
// Errors: a module that does not exist kNotFound; a file that is not a
// PKCS#11 module kInvalidArgument; no token with the label kNotFound; a PIN
// the token refuses (or a locked PIN) kKeyError; a PIN file that is missing
// or readable by others kNotFound / kFailedPrecondition; any other token
// failure kKeyError or kIOError naming the PKCS#11 function and its CKR_
// code. No message holds a PIN or key bytes.
#ifndef CALLVAULT_PKCS11_KEY_PROVIDER_H_
#define CALLVAULT_PKCS11_KEY_PROVIDER_H_

#include <memory>
#include <string>
#include <vector>

#include "callvault/key_provider.h"
#include "callvault/status.h"

namespace callvault {

struct Pkcs11KeyProviderOptions {
  // Path of the PKCS#11 module, e.g. /usr/lib/softhsm/libsofthsm2.so.
  std::string module_path;
  // CKA_LABEL of the token (as `softhsm2-util --init-token --label` set it).
  std::string token_label;
  // Exactly one of these: a file holding the user PIN (its first line; the
  // file must not be readable by group or others), or the NAME of an
  // environment variable holding it.
  std::string pin_file;
  std::string pin_env;
  // The local state directory (see above). Required.
  std::string state_dir;
  // Prefix of every object label this provider creates or looks for.
  // Default: "callvault".
  std::string object_prefix = "callvault";
  // Create the state directory if it does not exist. Default: true.
  bool create_if_missing = true;
  // Keep the receipt signing key in the token (needs CKM_EDDSA). Default:
  // true. False keeps it in the state directory (as the file provider does).
  bool signing_key_in_token = true;
};

// Loads the module, finds the token, logs in. The provider holds a session
// (and so the login) until it is destroyed.
Result<std::shared_ptr<KeyProvider>> NewPkcs11KeyProvider(const Pkcs11KeyProviderOptions& options);

// The labels of the token objects whose label starts with
// "<object_prefix>-" (KEKs, the signing key pair), sorted: for
// `keys status` and for tests that check what a purge left in the token.
// Logs in as NewPkcs11KeyProvider does; needs no state directory.
Result<std::vector<std::string>> ListPkcs11Objects(const Pkcs11KeyProviderOptions& options);

}  // namespace callvault

#endif  // CALLVAULT_PKCS11_KEY_PROVIDER_H_
