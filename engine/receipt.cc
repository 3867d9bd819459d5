// Receipts: the signed, canonical form and offline chain verification.
#include <nlohmann/json.hpp>

#include "callvault/store.h"
#include "engine/crypto.h"
#include "engine/signed_json.h"

namespace callvault {

const char* TenantStateName(TenantState state) {
  switch (state) {
    case TenantState::kCreating: return "creating";
    case TenantState::kActive: return "active";
    case TenantState::kPurging: return "purging";
    case TenantState::kPurged: return "purged";
  }
  return "unknown";
}

namespace {
nlohmann::json Body(const Receipt& r) {
  // nlohmann::json objects keep keys sorted: the canonical order.
  nlohmann::json j;
  j["sequence"] = r.sequence;
  j["kind"] = r.kind;
  j["store_id"] = r.store_id;
  j["region"] = r.region;
  j["time"] = r.time;
  j["tenant_id"] = r.tenant_id;
  j["tenant_internal_id"] = r.tenant_internal_id;
  j["column_family"] = r.column_family;
  j["shard"] = r.shard;
  j["key_versions_destroyed"] = r.key_versions_destroyed;
  j["kek_generation_retired"] = r.kek_generation_retired;
  j["kek_generation_current"] = r.kek_generation_current;
  j["keyring_generation"] = r.keyring_generation;
  j["records"] = r.records;
  j["bytes"] = r.bytes;
  j["prev_hash"] = r.prev_hash;
  // Only moved_out receipts have it: every earlier receipt's canonical form
  // (and so its signature and the chain) is unchanged.
  if (!r.destination.empty()) j["destination"] = r.destination;
  // Likewise only when known (purges since the key providers report it).
  if (r.irrecoverable_after != 0) j["irrecoverable_after"] = r.irrecoverable_after;
  // Only purges of a tenant whose shard did not open (records/bytes 0 then).
  if (r.counts_unknown) j["counts_unknown"] = true;
  return j;
}

}  // namespace

// Errors from dump() are impossible: every string in a receipt is either
// generated hex, a fixed kind, a validated ASCII id or a validated region.
std::string Receipt::Canonical() const { return signed_json::Canonical(Body(*this)); }

std::string Receipt::ToJson() const { return signed_json::WithSignature(Body(*this), signature, -1); }

Status VerifyReceiptChain(const std::vector<Receipt>& receipts, std::string_view public_key) {
  CV_RETURN_IF_ERROR(signed_json::CheckPublicKey(public_key));
  std::string prev_hash;
  uint64_t expect = receipts.empty() ? 0 : receipts.front().sequence;
  for (size_t i = 0; i < receipts.size(); ++i) {
    const Receipt& r = receipts[i];
    const std::string where = "receipt at position " + std::to_string(i + 1) + " (sequence " +
                              std::to_string(r.sequence) + "): ";
    if (r.sequence != expect) {
      return Status::Corruption(where + "out of sequence (expected " + std::to_string(expect) +
                                "; a receipt is missing or reordered)");
    }
    if (i > 0 && r.prev_hash != prev_hash) {
      return Status::Corruption(where + "does not chain to the previous receipt");
    }
    if (i == 0 && r.sequence == 1 && !r.prev_hash.empty()) {
      return Status::Corruption(where + "the first receipt must not name a predecessor");
    }
    const std::string canonical = r.Canonical();
    if (!signed_json::Verifies(canonical, r.signature, public_key)) {
      return Status::Corruption(where + "signature does not verify (edited or forged)");
    }
    prev_hash = crypto::Hex(crypto::Hash32(canonical + r.signature));
    ++expect;
  }
  return Status::OK();
}

}  // namespace callvault
