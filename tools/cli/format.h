// Text and JSON renderings shared by the verbs and the demo: tenants,
// receipts, call lines, stats and verify reports, plus parsing of times and
// part lists. Personal data appears only where a `reveal` flag says so.
#ifndef CALLVAULT_TOOLS_CLI_FORMAT_H_
#define CALLVAULT_TOOLS_CLI_FORMAT_H_

#include <cstdint>
#include <iosfwd>
#include <nlohmann/json.hpp>
#include <optional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "callvault/call.h"
#include "callvault/status.h"
#include "callvault/store.h"

namespace callvault::cli {

// Lower-case hex of raw bytes.
std::string Hex(std::string_view bytes);
// RFC 3339 in UTC, or "-" for 0.
std::string FormatTime(int64_t micros);
// "H:MM:SS".
std::string FormatDuration(uint32_t ms);
// "512 B", "3.4 KiB", "12.0 MiB", "1.2 GiB".
std::string FormatBytes(uint64_t bytes);
// The system clock, in microseconds since the epoch.
int64_t NowMicros();
// Integer microseconds since the epoch, or an RFC 3339 date-time.
// kInvalidArgument naming `flag` when neither.
Result<int64_t> ParseTime(std::string_view text, std::string_view flag);
// A comma-separated list of metadata, participants, transcript, insights
// (or "all") to a Parts mask. kInvalidArgument on an unknown name.
Result<uint32_t> ParseParts(std::string_view text);
// The parts `call update` replaces: a comma-separated list of fields (every
// metadata field), participants, transcript, insights. kInvalidArgument on
// an unknown name.
Result<uint32_t> ParseUpdateParts(std::string_view text);
// "H:MM:SS.mmm" for an offset into a call.
std::string FormatOffset(uint32_t ms);
// `text` itself when `reveal`, else "[redacted N bytes]" ("" stays "").
std::string RedactText(std::string_view text, bool reveal);
// SYSTEM:TYPE:ID (TYPE account, opportunity, contact or lead; ID may hold
// colons). kInvalidArgument naming --crm otherwise.
Result<CrmRef> ParseCrm(std::string_view text);
// 64 hex digits to 32 raw bytes; kInvalidArgument naming `flag` otherwise.
Result<std::string> ParseSha256(std::string_view text, std::string_view flag);
// ReferenceRole bits as "participant,owner,crm_contact".
std::vector<std::string> RoleNames(uint32_t roles);

// Columns padded to their widest cell, two spaces apart; the last column is
// not padded (it may hold free text).
class Table {
 public:
  explicit Table(std::vector<std::string> header) { rows_.push_back(std::move(header)); }
  void Add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  void Print(std::ostream& out) const;

 private:
  std::vector<std::vector<std::string>> rows_;
};

// "key  value" lines with the values aligned, each line after `indent`.
void PrintFields(std::ostream& out, const std::vector<std::pair<std::string, std::string>>& fields,
                 std::string_view indent = "");

// Tenants. Hold reasons are free text: "[redacted N bytes]" unless `reveal`.
nlohmann::json HoldToJson(const Hold& h, bool reveal);
nlohmann::json TenantToJson(const TenantInfo& t, bool reveal = false);
// `holds`: every hold of the tenant (tenant-level and call holds) when known;
// otherwise the tenant-level holds of `t` are shown.
void PrintTenant(std::ostream& out, const TenantInfo& t, std::optional<uint64_t> calls,
                 const std::optional<std::vector<Hold>>& holds = std::nullopt);
// `call_holds`: per tenant id, how many of its legal holds are on single
// calls (absent: unknown, shown as "-").
void PrintTenantTable(std::ostream& out, const std::vector<TenantInfo>& tenants,
                      const std::map<std::string, size_t>& call_holds = {});
void PrintHoldTable(std::ostream& out, const std::vector<Hold>& holds, bool reveal);

nlohmann::json ReceiptToJson(const Receipt& r);
void PrintReceipt(std::ostream& out, const Receipt& r, std::string_view indent = "");
void PrintReceiptTable(std::ostream& out, const std::vector<Receipt>& receipts,
                       std::string_view indent = "");

nlohmann::json RecordingToJson(const RecordingInfo& r);
void PrintRecording(std::ostream& out, const RecordingInfo& r);
void PrintRecordingTable(std::ostream& out, const std::vector<RecordingInfo>& recordings);

nlohmann::json AuditEventToJson(const AuditEvent& e);
void PrintAuditTable(std::ostream& out, const std::vector<AuditEvent>& events);

nlohmann::json RetentionReportToJson(const RetentionReport& r);
void PrintRetentionReport(std::ostream& out, const RetentionReport& r);

// The `call list` rendering of one page. `participants[i]` is the
// participant count of page.calls[i] (or nullopt when unknown). Titles are
// "[redacted]" unless `reveal`.
void PrintCallTable(std::ostream& out, const std::vector<Call>& calls,
                    const std::vector<std::optional<size_t>>& participants, bool reveal);
nlohmann::json CallListToJson(const CallPage& page,
                              const std::vector<std::optional<size_t>>& participants, bool reveal);

nlohmann::json StatsToJson(const StoreStats& s);
void PrintStats(std::ostream& out, const StoreStats& s);

nlohmann::json VerifyReportToJson(const VerifyReport& r);
// Keys no live tenant owns (OrphanKey), for stats, verify and keys reconcile.
nlohmann::json OrphanKeysToJson(const std::vector<OrphanKey>& keys);
// The orphan keys and quarantined tenants recovery reported, each with how
// to resolve it; prints nothing when there are none.
// "DAMAGED  tenant T: what" per damaged tenant, and what to do (decision 0014).
void PrintDamagedTenants(std::ostream& out, const std::vector<std::string>& damaged);
void PrintRecoveryFindings(std::ostream& out, const std::vector<OrphanKey>& keys,
                           const std::vector<std::string>& quarantined);
void PrintVerifyReport(std::ostream& out, const VerifyReport& r);

}  // namespace callvault::cli

#endif  // CALLVAULT_TOOLS_CLI_FORMAT_H_
