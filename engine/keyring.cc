#include "engine/keyring.h"

#include "engine/crypto.h"
#include "format/keyring_format.h"

namespace callvault {

Keyring Keyring::Clone() const {
  Keyring k;
  k.store_id = store_id;
  k.kek_generation = kek_generation;
  k.generation = generation;
  k.store_data_key = store_data_key.Clone();
  k.store_index_key = store_index_key.Clone();
  for (const auto& [id, dek] : deks) k.deks.emplace(id, dek.Clone());
  return k;
}

bool Keyring::HasTenant(uint64_t internal_id) const {
  auto it = deks.lower_bound({internal_id, 0});
  return it != deks.end() && it->first.first == internal_id;
}

std::vector<uint32_t> Keyring::RemoveTenant(uint64_t internal_id) {
  std::vector<uint32_t> versions;
  auto it = deks.lower_bound({internal_id, 0});
  while (it != deks.end() && it->first.first == internal_id) {
    versions.push_back(it->first.second);
    it = deks.erase(it);
  }
  return versions;
}

const SecretBytes* Keyring::Find(uint64_t internal_id, uint32_t key_version) const {
  auto it = deks.find({internal_id, key_version});
  return it == deks.end() ? nullptr : &it->second;
}

uint64_t Keyring::MaxInternalId() const { return deks.empty() ? 0 : deks.rbegin()->first.first; }

Result<std::string> Keyring::Seal(KeyProvider* provider) const {
  format::KeyringHeader h{kek_generation, generation, store_id};
  std::string header = format::EncodeKeyringHeader(h);
  SecretBytes body(format::KeyringBodySize(deks.size()));
  format::EncodeKeyringBodyFixed(body.data(), store_data_key.data(), store_index_key.data(),
                                 static_cast<uint32_t>(deks.size()));
  size_t i = 0;
  for (const auto& [id, dek] : deks) {
    format::EncodeKeyringEntry(body.data(), i++, id.first, id.second, dek.data());
  }
  CV_ASSIGN_OR_RETURN(std::string sealed, provider->Seal(kek_generation, body, header));
  return header + sealed;
}

Result<Keyring> Keyring::Unseal(KeyProvider* provider, std::string_view file) {
  format::KeyringHeader h;
  if (!format::ParseKeyringHeader(file, &h)) {
    return Status::KeyError("keyring file has a bad header (not a callvault keyring)");
  }
  std::string_view header = file.substr(0, format::kKeyringHeaderBytes);
  CV_ASSIGN_OR_RETURN(SecretBytes body,
                      provider->Open(h.kek_generation, file.substr(format::kKeyringHeaderBytes),
                                     header));
  format::KeyringBodyView view;
  std::string err = format::ParseKeyringBody(body.data(), body.size(), &view);
  if (!err.empty()) return Status::Corruption("keyring: " + err);
  Keyring k;
  k.store_id = h.store_id;
  k.kek_generation = h.kek_generation;
  k.generation = h.keyring_generation;
  k.store_data_key = SecretBytes(format::kKeyBytes);
  std::copy(view.store_data_key, view.store_data_key + format::kKeyBytes, k.store_data_key.data());
  k.store_index_key = SecretBytes(format::kKeyBytes);
  std::copy(view.store_index_key, view.store_index_key + format::kKeyBytes,
            k.store_index_key.data());
  for (const auto& e : view.entries) {
    SecretBytes dek(format::kKeyBytes);
    std::copy(e.key, e.key + format::kKeyBytes, dek.data());
    k.deks.emplace(std::make_pair(e.internal_id, e.key_version), std::move(dek));
  }
  return k;
}

}  // namespace callvault
