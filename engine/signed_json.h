// The store's signed JSON documents (receipts, backup manifests): one body,
// its canonical bytes (what the signing key signs), the body with its
// signature beside it, and the check of that signature. Spec:
// docs/crypto.md ("Receipts"), docs/format.md.
#ifndef CALLVAULT_ENGINE_SIGNED_JSON_H_
#define CALLVAULT_ENGINE_SIGNED_JSON_H_

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "callvault/status.h"

namespace callvault::signed_json {

// The bytes that are signed: `body` compact, keys in nlohmann::json's sorted
// order, invalid UTF-8 replaced (never met: every string in a signed
// document is generated hex, a fixed word, or a validated ASCII id).
std::string Canonical(const nlohmann::json& body);

// `body` with a "signature" field (`signature`, hex), dumped with `indent`
// (-1: one line).
std::string WithSignature(nlohmann::json body, const std::string& signature, int indent);

// kInvalidArgument "public key must be 32 bytes" unless it is.
[[nodiscard]] Status CheckPublicKey(std::string_view public_key);

// Is `signature_hex` an Ed25519 signature of `canonical` under
// `public_key` (32 bytes; CheckPublicKey first)? False also for a signature
// that is not hex or not 64 bytes.
bool Verifies(std::string_view canonical, std::string_view signature_hex,
              std::string_view public_key);

}  // namespace callvault::signed_json

#endif  // CALLVAULT_ENGINE_SIGNED_JSON_H_
