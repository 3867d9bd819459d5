// The README's example (README.md, "Embedding the library"), built by
// scripts/check-install.sh against the installed package with
// -Wall -Wextra -Wpedantic -Werror. Usage: readme_example DIR (the store goes
// in DIR/cv, its keys in DIR/cv-keys; absolute or relative).
#include <cstdio>
#include <string>

#include "callvault/store.h"
#include "callvault/version.h"

int main(int argc, char** argv) {
  using namespace callvault;
  const std::string dir = argc > 1 ? argv[1] : "/var/lib";
  auto keys = NewFileKeyProvider(dir + "/cv-keys");  // never inside the store directory
  if (!keys.ok()) return std::fprintf(stderr, "%s\n", keys.status().ToString().c_str()), 1;
  Options options;
  options.key_provider = *keys;  // only after keys.ok(): *keys on an error aborts
  options.create_if_missing = true;
  options.region = "eu-west";
  auto opened = Store::Open(options, dir + "/cv");
  if (!opened.ok()) return std::fprintf(stderr, "%s\n", opened.status().ToString().c_str()), 1;
  Store& store = **opened;
  std::printf("callvault %s\n", LibraryVersion());

  TenantSpec tenant;
  tenant.tenant_id = "acme";
  tenant.retention_days = 365;
  if (!store.CreateTenant(tenant).ok()) return 1;
  Call call;
  call.call_id = "c-0001";
  call.started_at = 1772375400000000;  // 2026-03-01T14:30:00Z, in microseconds
  call.title = "Renewal call";
  Participant ana;
  ana.name = "Ana Ruiz";
  ana.email = "ana@example.com";
  call.participants = {ana};
  if (!store.PutCall("acme", call).ok()) return 1;  // sealed, one synced write

  ListQuery query;
  query.limit = 10;
  auto page = store.ListCalls("acme", query);  // newest first, metadata only
  if (page.ok()) for (const Call& c : page->calls) std::printf("%s\n", c.call_id.c_str());

  auto receipt = store.PurgeTenant("acme");  // crypto-shred, then DropColumnFamily
  auto receipts = store.ListReceipts();
  auto public_key = store.SigningPublicKey();
  if (!receipt.ok() || !receipts.ok() || !public_key.ok()) return 1;
  Status chain = VerifyReceiptChain(*receipts, *public_key);  // Ed25519 + hash chain
  std::printf("receipt %llu: %s\n", static_cast<unsigned long long>(receipt->sequence),
              chain.ok() ? "verified" : chain.ToString().c_str());
  std::printf("%s\n", store.GetCall("acme", "c-0001").status().ToString().c_str());
  // Syncs and closes every instance; returns the first I/O error (the
  // destructor calls it too, but cannot report it).
  Status closed = store.Close();
  return closed.ok() ? 0 : 1;
}
