// The keyring in memory: store keys and every live tenant's data keys, and
// how a generation is sealed, parsed and chosen at open. The file layout is
// in format/keyring_format.h; the protocol in docs/crypto.md.
#ifndef CALLVAULT_ENGINE_KEYRING_H_
#define CALLVAULT_ENGINE_KEYRING_H_

#include <cstdint>
#include <map>
#include <string>
#include <utility>

#include "callvault/key_provider.h"
#include "callvault/secret.h"
#include "callvault/status.h"

namespace callvault {

struct Keyring {
  std::string store_id;  // 16 bytes
  uint32_t kek_generation = 0;
  uint64_t generation = 0;
  SecretBytes store_data_key;
  SecretBytes store_index_key;
  // (internal id, key version) -> DEK
  std::map<std::pair<uint64_t, uint32_t>, SecretBytes> deks;

  Keyring Clone() const;
  bool HasTenant(uint64_t internal_id) const;
  // Removes every key version of the tenant; returns the versions removed.
  std::vector<uint32_t> RemoveTenant(uint64_t internal_id);
  const SecretBytes* Find(uint64_t internal_id, uint32_t key_version) const;
  uint64_t MaxInternalId() const;

  // Header || provider.Seal(body) under kek_generation.
  Result<std::string> Seal(KeyProvider* provider) const;
  // Parses and opens one generation's bytes.
  static Result<Keyring> Unseal(KeyProvider* provider, std::string_view file);
};

}  // namespace callvault

#endif  // CALLVAULT_ENGINE_KEYRING_H_
