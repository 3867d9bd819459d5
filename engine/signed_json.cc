// Signed JSON documents: see signed_json.h.
#include "engine/signed_json.h"

#include "engine/metrics_internal.h"

#include <sodium.h>

#include "engine/crypto.h"

namespace callvault::signed_json {

std::string Canonical(const nlohmann::json& body) {
  return body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string WithSignature(nlohmann::json body, const std::string& signature, int indent) {
  body["signature"] = signature;
  return body.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

Status CheckPublicKey(std::string_view public_key) {
  if (public_key.size() != crypto_sign_PUBLICKEYBYTES) {
    return Status::InvalidArgument("public key must be 32 bytes");
  }
  return Status::OK();
}

bool Verifies(std::string_view canonical, std::string_view signature_hex,
              std::string_view public_key) {
  crypto::Init();
  std::string sig;
  const bool ok =
      public_key.size() == crypto_sign_PUBLICKEYBYTES && crypto::FromHex(signature_hex, &sig) &&
      sig.size() == crypto_sign_BYTES &&
      crypto_sign_verify_detached(reinterpret_cast<const unsigned char*>(sig.data()),
                                  reinterpret_cast<const unsigned char*>(canonical.data()),
                                  canonical.size(),
                                  reinterpret_cast<const unsigned char*>(public_key.data())) == 0;
  if (!ok) metrics::CountSignatureFailure();
  return ok;
}

}  // namespace callvault::signed_json
