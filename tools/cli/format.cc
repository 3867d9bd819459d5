#include "tools/cli/format.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <initializer_list>
#include <ostream>

#include "tools/json/call_json.h"

namespace callvault::cli {

namespace {
constexpr char kRedacted[] = "[redacted]";

std::string RetentionText(uint32_t days) { return days == 0 ? "none" : fmt::format("{}d", days); }

std::string JoinU32(const std::vector<uint32_t>& v) {
  std::string s;
  for (uint32_t x : v) s += (s.empty() ? "" : ",") + std::to_string(x);
  return s.empty() ? "-" : s;
}
}  // namespace

std::string Hex(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string s;
  s.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    s.push_back(kDigits[c >> 4]);
    s.push_back(kDigits[c & 15]);
  }
  return s;
}

std::string FormatTime(int64_t micros) { return micros == 0 ? "-" : json::FormatRfc3339(micros); }

std::string FormatDuration(uint32_t ms) {
  uint32_t s = ms / 1000;
  return fmt::format("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60);
}

std::string FormatBytes(uint64_t bytes) {
  if (bytes < 1024) return fmt::format("{} B", bytes);
  static constexpr const char* kUnits[] = {"KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes) / 1024;
  size_t u = 0;
  while (v >= 1024 && u + 1 < std::size(kUnits)) {
    v /= 1024;
    ++u;
  }
  return fmt::format("{:.1f} {}", v, kUnits[u]);
}

int64_t NowMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Result<int64_t> ParseTime(std::string_view text, std::string_view flag) {
  std::string_view digits = text;
  if (!digits.empty() && digits[0] == '-') digits.remove_prefix(1);
  if (!digits.empty() && digits.size() <= 18 &&
      std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return static_cast<int64_t>(std::stoll(std::string(text)));
  }
  auto t = json::ParseRfc3339(text);
  if (!t.ok()) {
    return Status::InvalidArgument(
        fmt::format("{}: expected microseconds since the epoch or an RFC 3339 date-time", flag));
  }
  return *t;
}

std::string FormatOffset(uint32_t ms) {
  return fmt::format("{}.{:03}", FormatDuration(ms), ms % 1000);
}

std::string RedactText(std::string_view text, bool reveal) {
  if (reveal || text.empty()) return std::string(text);
  return fmt::format("[redacted {} bytes]", text.size());
}

Result<CrmRef> ParseCrm(std::string_view text) {
  const auto bad = [] {
    return Status::InvalidArgument(
        "--crm: expected SYSTEM:TYPE:ID with TYPE account, opportunity, contact or lead "
        "(e.g. salesforce:opportunity:006Q000001AbCdE)");
  };
  const size_t a = text.find(':');
  if (a == std::string_view::npos) return bad();
  const size_t b = text.find(':', a + 1);
  if (b == std::string_view::npos) return bad();
  CrmRef ref;
  ref.system = std::string(text.substr(0, a));
  std::string_view type = text.substr(a + 1, b - a - 1);
  ref.object_id = std::string(text.substr(b + 1));
  if (ref.system.empty() || ref.object_id.empty()) return bad();
  bool known = false;
  for (CrmObjectType t : {CrmObjectType::kAccount, CrmObjectType::kOpportunity,
                          CrmObjectType::kContact, CrmObjectType::kLead}) {
    if (type == json::CrmObjectTypeName(t)) {
      ref.object_type = t;
      known = true;
    }
  }
  if (!known) return bad();
  return ref;
}

Result<std::string> ParseSha256(std::string_view text, std::string_view flag) {
  const auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string raw;
  if (text.size() == 64) {
    for (size_t i = 0; i < text.size(); i += 2) {
      const int hi = nibble(text[i]), lo = nibble(text[i + 1]);
      if (hi < 0 || lo < 0) break;
      raw.push_back(static_cast<char>(hi << 4 | lo));
    }
  }
  if (raw.size() != 32) {
    return Status::InvalidArgument(fmt::format("{}: expected 64 hex digits (a SHA-256)", flag));
  }
  return raw;
}

std::vector<std::string> RoleNames(uint32_t roles) {
  std::vector<std::string> v;
  if (roles & kRoleParticipant) v.emplace_back("participant");
  if (roles & kRoleOwner) v.emplace_back("owner");
  if (roles & kRoleCrmContact) v.emplace_back("crm_contact");
  return v;
}

namespace {

struct PartName {
  std::string_view name;
  uint32_t bits;
};

// `text`, a comma-separated list of names from `names`, OR-ed onto `base`.
Result<uint32_t> ParseNamedParts(std::string_view text, std::initializer_list<PartName> names,
                                 uint32_t base, std::string_view expected) {
  uint32_t parts = base;
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    if (comma == std::string_view::npos) comma = text.size();
    const std::string_view name = text.substr(start, comma - start);
    const PartName* hit = nullptr;
    for (const auto& n : names) {
      if (n.name == name) hit = &n;
    }
    if (hit == nullptr) {
      return Status::InvalidArgument("--parts: expected a comma-separated list of " +
                                     std::string(expected));
    }
    parts |= hit->bits;
    start = comma + 1;
  }
  return parts;
}

}  // namespace

Result<uint32_t> ParseParts(std::string_view text) {
  return ParseNamedParts(text,
                         {{"metadata", 0},
                          {"participants", kPartParticipants},
                          {"transcript", kPartTranscript},
                          {"insights", kPartInsights},
                          {"all", kPartAll}},
                         kPartMetadata, "metadata, participants, transcript, insights or all");
}

Result<uint32_t> ParseUpdateParts(std::string_view text) {
  return ParseNamedParts(text,
                         {{"fields", kPartFields},
                          {"participants", kPartParticipants},
                          {"transcript", kPartTranscript},
                          {"insights", kPartInsights}},
                         0, "fields, participants, transcript or insights");
}

void Table::Print(std::ostream& out) const {
  std::vector<size_t> width;
  for (const auto& row : rows_) {
    if (width.size() < row.size()) width.resize(row.size(), 0);
    for (size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
  }
  for (const auto& row : rows_) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(width[i] - row[i].size() + 2, ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out << line << '\n';
  }
}

void PrintFields(std::ostream& out, const std::vector<std::pair<std::string, std::string>>& fields,
                 std::string_view indent) {
  size_t w = 0;
  for (const auto& f : fields) w = std::max(w, f.first.size());
  for (const auto& [k, v] : fields) {
    std::string line = std::string(indent) + k + std::string(w - k.size() + 2, ' ') + v;
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out << line << '\n';
  }
}

// --- tenants -------------------------------------------------------------------

nlohmann::json HoldToJson(const Hold& h, bool reveal) {
  return {{"hold_id", h.hold_id},
          {"call_id", h.call_id},
          {"reason", RedactText(h.reason, reveal)},
          {"created_at", h.created_at}};
}

// "active (quarantined)" for a tenant recovery quarantined (decision 0012).
static std::string StateText(const TenantInfo& t) {
  return std::string(TenantStateName(t.state)) + (t.quarantined ? " (quarantined)" : "") +
         (t.damaged ? " (damaged)" : "");
}

nlohmann::json TenantToJson(const TenantInfo& t, bool reveal) {
  nlohmann::json holds = nlohmann::json::array();
  for (const auto& h : t.holds) holds.push_back(HoldToJson(h, reveal));
  nlohmann::json ws = nlohmann::json::object();
  for (const auto& [w, days] : t.workspace_retention) ws[w] = days;
  nlohmann::json j = {{"tenant_id", t.tenant_id},
                      {"state", TenantStateName(t.state)},
                      {"region", t.region},
                      {"retention_days", t.retention_days},
                      {"workspace_retention", std::move(ws)},
                      {"created_at", t.created_at},
                      {"churned_at", t.churned_at},
                      {"purge_at", t.purge_at},
                      {"purged_at", t.purged_at},
                      {"holds", std::move(holds)},
                      {"shard", t.shard},
                      {"column_family", t.column_family},
                      {"key_version", t.key_version}};
  if (t.quarantined) j["quarantined"] = true;  // decision 0012; absent otherwise
  // Tenant moves (decision 0022); absent for a tenant that never moved.
  if (!t.moved_to.empty()) j["moved_to"] = t.moved_to;
  if (!t.moved_from.empty()) j["moved_from"] = t.moved_from;
  if (!t.move_id.empty()) j["move_id"] = t.move_id;
  if (t.damaged) {  // decision 0014; absent otherwise
    j["damaged"] = true;
    j["damage"] = t.damage;
  }
  return j;
}

void PrintTenant(std::ostream& out, const TenantInfo& t, std::optional<uint64_t> calls,
                 const std::optional<std::vector<Hold>>& holds) {
  std::string ws;
  for (const auto& [w, days] : t.workspace_retention) {
    ws += (ws.empty() ? "" : ", ") + w + "=" + RetentionText(days);
  }
  std::string held;
  for (const auto& h : holds ? *holds : t.holds) {
    held += (held.empty() ? "" : ", ") + h.hold_id +
            (h.call_id.empty() ? " (tenant)" : " (call " + h.call_id + ")");
  }
  std::vector<std::pair<std::string, std::string>> f = {
      {"tenant_id", t.tenant_id},
      {"state", StateText(t)},
      {"region", t.region},
      {"retention", RetentionText(t.retention_days)},
      {"workspace_retention", ws.empty() ? "none" : ws},
      {"shard", std::to_string(t.shard)},
      {"column_family", t.column_family},
      {"key_version", std::to_string(t.key_version)},
  };
  if (calls) f.emplace_back("calls", std::to_string(*calls));
  f.emplace_back("holds", held.empty() ? "none" : held);
  f.emplace_back("created_at", FormatTime(t.created_at));
  f.emplace_back("churned_at", FormatTime(t.churned_at));
  f.emplace_back("purge_at", FormatTime(t.purge_at));
  if (t.purged_at != 0) f.emplace_back("purged_at", FormatTime(t.purged_at));
  if (t.damaged) f.emplace_back("damage", t.damage);
  if (!t.moved_to.empty()) f.emplace_back("moved_to", t.moved_to);
  if (!t.moved_from.empty()) f.emplace_back("moved_from", t.moved_from);
  PrintFields(out, f);
}

void PrintTenantTable(std::ostream& out, const std::vector<TenantInfo>& tenants,
                      const std::map<std::string, size_t>& call_holds) {
  // CREATED last: its width varies (the fraction of a second is omitted when zero).
  Table table({"TENANT", "STATE", "REGION", "RETENTION", "SHARD", "COLUMN_FAMILY", "HOLDS",
               "CALL_HOLDS", "PURGE_AT", "CREATED"});
  for (const auto& t : tenants) {
    auto c = call_holds.find(t.tenant_id);
    table.Add({t.tenant_id, StateText(t), t.region, RetentionText(t.retention_days),
               std::to_string(t.shard), t.column_family, std::to_string(t.holds.size()),
               c == call_holds.end() ? "-" : std::to_string(c->second), FormatTime(t.purge_at),
               FormatTime(t.created_at)});
  }
  table.Print(out);
}

void PrintHoldTable(std::ostream& out, const std::vector<Hold>& holds, bool reveal) {
  // CREATED last: its width varies (see PrintTenantTable).
  Table table({"HOLD_ID", "ON", "CALL_ID", "REASON", "CREATED"});
  for (const auto& h : holds) {
    table.Add({h.hold_id, h.call_id.empty() ? "tenant" : "call",
               h.call_id.empty() ? "-" : h.call_id,
               h.reason.empty() ? "-" : RedactText(h.reason, reveal), FormatTime(h.created_at)});
  }
  table.Print(out);
}

// --- receipts ------------------------------------------------------------------

nlohmann::json ReceiptToJson(const Receipt& r) {
  nlohmann::json j = nlohmann::json::parse(r.ToJson(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded())
    j = {{"sequence", r.sequence}, {"error", "receipt does not render as JSON"}};
  return j;
}

void PrintReceipt(std::ostream& out, const Receipt& r, std::string_view indent) {
  PrintFields(out,
              {
                  {"sequence", std::to_string(r.sequence)},
                  {"kind", r.kind},
                  {"time", FormatTime(r.time)},
                  {"store_id", r.store_id},
                  {"region", r.region},
                  {"tenant_id", r.tenant_id},
                  {"tenant_internal_id", std::to_string(r.tenant_internal_id)},
                  {"shard", std::to_string(r.shard)},
                  {"column_family", r.column_family},
                  {"key_versions_destroyed", JoinU32(r.key_versions_destroyed)},
                  {"kek_generation_retired", std::to_string(r.kek_generation_retired)},
                  {"kek_generation_current", std::to_string(r.kek_generation_current)},
                  {"keyring_generation", std::to_string(r.keyring_generation)},
                  {"irrecoverable_after",
                   r.irrecoverable_after != 0 ? FormatTime(r.irrecoverable_after) : "-"},
                  {"records", r.counts_unknown ? "unknown" : std::to_string(r.records)},
                  {"bytes", r.counts_unknown ? "unknown" : std::to_string(r.bytes)},
                  {"prev_hash", r.prev_hash.empty() ? "-" : r.prev_hash},
                  {"signature", r.signature},
              },
              indent);
}

void PrintReceiptTable(std::ostream& out, const std::vector<Receipt>& receipts,
                       std::string_view indent) {
  const std::string in(indent);
  Table table({in + "SEQ", "KIND", "TENANT", "RECORDS", "BYTES", "TIME", "IRRECOVERABLE_AFTER"});
  for (const auto& r : receipts) {
    table.Add({in + std::to_string(r.sequence), r.kind, r.tenant_id,
               r.counts_unknown ? "unknown" : std::to_string(r.records),
               r.counts_unknown ? "unknown" : std::to_string(r.bytes), FormatTime(r.time),
               r.irrecoverable_after != 0 ? FormatTime(r.irrecoverable_after) : "-"});
  }
  table.Print(out);
}

// --- recordings ----------------------------------------------------------------

nlohmann::json RecordingToJson(const RecordingInfo& r) {
  return {{"recording_id", r.recording_id},
          {"content_type", r.content_type},
          {"duration_ms", r.duration_ms},
          {"size", r.size},
          {"sha256", Hex(r.sha256)},
          {"created_at", r.created_at},
          {"chunks", r.chunks}};
}

void PrintRecording(std::ostream& out, const RecordingInfo& r) {
  PrintFields(out, {
                       {"recording_id", r.recording_id},
                       {"content_type", r.content_type},
                       {"duration", FormatDuration(r.duration_ms)},
                       {"size", fmt::format("{} ({})", r.size, FormatBytes(r.size))},
                       {"chunks", std::to_string(r.chunks)},
                       {"sha256", Hex(r.sha256)},
                       {"created_at", FormatTime(r.created_at)},
                   });
}

void PrintRecordingTable(std::ostream& out, const std::vector<RecordingInfo>& recordings) {
  Table table({"RECORDING_ID", "TYPE", "DURATION", "SIZE", "CHUNKS", "SHA256", "CREATED"});
  for (const auto& r : recordings) {
    table.Add({r.recording_id, r.content_type, FormatDuration(r.duration_ms),
               std::to_string(r.size), std::to_string(r.chunks), Hex(r.sha256),
               FormatTime(r.created_at)});
  }
  table.Print(out);
}

// --- audit and retention ---------------------------------------------------------

nlohmann::json AuditEventToJson(const AuditEvent& e) {
  return {{"sequence", e.sequence},   {"time", e.time},     {"kind", e.kind},
          {"tenant_id", e.tenant_id}, {"detail", e.detail}, {"prev_hash", e.prev_hash}};
}

void PrintAuditTable(std::ostream& out, const std::vector<AuditEvent>& events) {
  // TIME last: its width varies (see PrintTenantTable).
  Table table({"SEQ", "KIND", "TENANT", "DETAIL", "TIME"});
  for (const auto& e : events) {
    table.Add({std::to_string(e.sequence), e.kind, e.tenant_id.empty() ? "-" : e.tenant_id,
               e.detail.empty() ? "-" : e.detail, FormatTime(e.time)});
  }
  table.Print(out);
}

nlohmann::json RetentionReportToJson(const RetentionReport& r) {
  nlohmann::json by_tenant = nlohmann::json::array();
  for (const auto& [t, n] : r.removed_by_tenant) {
    by_tenant.push_back({{"tenant_id", t}, {"calls", n}});
  }
  nlohmann::json receipts = nlohmann::json::array();
  for (const auto& rc : r.receipts) receipts.push_back(ReceiptToJson(rc));
  nlohmann::json out = {{"now", r.now},
          {"dry_run", r.dry_run},
          {"tenants_swept", r.tenants_swept},
          {"tenants_held", r.tenants_held},
          {"calls_removed", r.calls_removed},
          {"calls_kept_held", r.calls_kept_held},
          {"calls_kept_pinned", r.calls_kept_pinned},
          {"removed_by_tenant", std::move(by_tenant)},
          {"receipts", std::move(receipts)}};
  if (!r.tenants_damaged.empty()) out["tenants_damaged"] = r.tenants_damaged;
  return out;
}

void PrintRetentionReport(std::ostream& out, const RetentionReport& r) {
  PrintFields(
      out, {
               {"now", FormatTime(r.now)},
               {"dry_run", r.dry_run ? "yes (nothing was removed)" : "no"},
               {"tenants_swept", std::to_string(r.tenants_swept)},
               {"tenants_held", std::to_string(r.tenants_held)},
               {r.dry_run ? "calls_to_remove" : "calls_removed", std::to_string(r.calls_removed)},
               {"calls_kept_pinned", std::to_string(r.calls_kept_pinned)},
               {"calls_kept_held", std::to_string(r.calls_kept_held)},
           });
  if (!r.tenants_damaged.empty()) {
    std::string ids;
    for (const auto& t : r.tenants_damaged) ids += (ids.empty() ? "" : " ") + t;
    PrintFields(out, {{"tenants_damaged", std::to_string(r.tenants_damaged.size()) + " (skipped: " + ids + ")"}});
  }
  if (r.removed_by_tenant.empty()) return;
  out << (r.dry_run ? "would remove:\n" : "removed:\n");
  Table table({"  TENANT", "CALLS", "RECEIPT"});
  for (const auto& [t, n] : r.removed_by_tenant) {
    std::string seq = "-";
    for (const auto& rc : r.receipts) {
      if (rc.tenant_id == t) seq = std::to_string(rc.sequence);
    }
    table.Add({"  " + t, std::to_string(n), seq});
  }
  table.Print(out);
}

// --- calls ---------------------------------------------------------------------

void PrintCallTable(std::ostream& out, const std::vector<Call>& calls,
                    const std::vector<std::optional<size_t>>& participants, bool reveal) {
  Table table({"CALL_ID", "STARTED_AT", "DURATION", "PARTICIPANTS", "TITLE"});
  for (size_t i = 0; i < calls.size(); ++i) {
    const Call& c = calls[i];
    std::string count = "-";
    if (i < participants.size() && participants[i].has_value()) {
      count = std::to_string(participants[i].value());
    }
    std::string title = reveal || c.title.empty() ? c.title : kRedacted;
    table.Add({c.call_id, FormatTime(c.started_at), FormatDuration(c.duration_ms), count, title});
  }
  table.Print(out);
}

nlohmann::json CallListToJson(const CallPage& page,
                              const std::vector<std::optional<size_t>>& participants, bool reveal) {
  json::JsonOptions o;
  o.reveal = reveal;
  o.parts = kPartMetadata;
  nlohmann::json calls = nlohmann::json::array();
  for (size_t i = 0; i < page.calls.size(); ++i) {
    nlohmann::json c = json::CallToJson(page.calls[i], o);
    if (i < participants.size() && participants[i]) c["participant_count"] = *participants[i];
    calls.push_back(std::move(c));
  }
  return {{"calls", std::move(calls)}, {"next_cursor", page.next_cursor}};
}

// --- stats and verify ----------------------------------------------------------

nlohmann::json StatsToJson(const StoreStats& s) {
  nlohmann::json shards = nlohmann::json::array();
  for (const auto& sh : s.shards) {
    shards.push_back({{"shard", sh.shard},
                      {"tenants", sh.tenants},
                      {"sst_files", sh.sst_files},
                      {"live_bytes", sh.live_bytes}});
    if (!sh.damage.empty()) shards.back()["damage"] = sh.damage;
  }
  nlohmann::json tenants = nlohmann::json::array();
  for (const auto& t : s.tenants) {
    tenants.push_back({{"tenant_id", t.tenant_id},
                       {"state", TenantStateName(t.state)},
                       {"shard", t.shard},
                       {"calls", t.calls},
                       {"records", t.records},
                       {"bytes", t.bytes}});
  }
  nlohmann::json j = {{"store_id", s.store_id},
          {"region", s.region},
          {"kek_generation", s.kek_generation},
          {"keyring_generation", s.keyring_generation},
          {"receipts", s.receipts},
          {"purged_tenants", s.purged_tenants},
          {"files", s.files},
          {"total_bytes", s.total_bytes},
          {"shards", std::move(shards)},
          {"tenants", std::move(tenants)},
          {"orphan_keys", OrphanKeysToJson(s.orphan_keys)},
          {"quarantined_tenants", s.quarantined_tenants}};
  if (!s.damaged_tenants.empty()) j["damaged_tenants"] = s.damaged_tenants;  // decision 0014
  j["open"] = {{"open_micros", s.open.open_micros},
               {"wal_scan_micros", s.open.wal_scan_micros},
               {"wal_files", s.open.wal_files},
               {"wal_bytes", s.open.wal_bytes}};
  j["memory"] = {{"block_cache_bytes", s.memory.block_cache_bytes},
                 {"block_cache_budget", s.memory.block_cache_budget},
                 {"memtable_bytes", s.memory.memtable_bytes},
                 {"memtable_budget", s.memory.memtable_budget},
                 {"dictionary_bytes", s.memory.dictionary_bytes},
                 {"dictionary_budget", s.memory.dictionary_budget},
                 {"dictionaries", s.memory.dictionaries},
                 {"dictionary_hits", s.memory.dictionary_hits},
                 {"dictionary_misses", s.memory.dictionary_misses},
                 {"dictionary_evictions", s.memory.dictionary_evictions},
                 {"table_reader_bytes", s.memory.table_reader_bytes},
                 {"allocator_free_bytes", s.memory.allocator_free_bytes},
                 {"heap_trims", s.memory.heap_trims},
                 {"flush_backlog_bytes", s.memory.flush_backlog_bytes},
                 {"flush_backlog_limit", s.memory.flush_backlog_limit},
                 {"flush_backlog_waits", s.memory.flush_backlog_waits},
                 {"flush_backlog_wait_micros", s.memory.flush_backlog_wait_micros},
                 {"flush_backlog_gave_up", s.memory.flush_backlog_gave_up}};
  j["descriptors"] = {{"nofile_limit", s.descriptors.nofile_limit},
                {"reserve", s.descriptors.reserve},
                {"open_files_per_shard", s.descriptors.open_files_per_shard},
                {"planned_shards", s.descriptors.planned_shards}};
  return j;
}

void PrintStats(std::ostream& out, const StoreStats& s) {
  PrintFields(
      out, {
               {"store_id", s.store_id},
               {"region", s.region},
               {"live_tenants", std::to_string(s.tenants.size())},
               {"purged_tenants", std::to_string(s.purged_tenants)},
               {"kek_generation", std::to_string(s.kek_generation)},
               {"keyring_generation", std::to_string(s.keyring_generation)},
               {"receipts", std::to_string(s.receipts)},
               {"files", std::to_string(s.files)},
               {"bytes_on_disk", fmt::format("{} ({})", s.total_bytes, FormatBytes(s.total_bytes))},
               {"open", fmt::format("{:.1f} ms, of which {:.1f} ms reading {} WAL file(s) ({})",
                                    s.open.open_micros / 1e3, s.open.wal_scan_micros / 1e3,
                                    s.open.wal_files, FormatBytes(s.open.wal_bytes))},
               {"memory", fmt::format("block cache {} of {}, memtables {} of {} ({} switched out, bound {}; "
                                      "writes waited {:.1f} s, {} waits gave up), {} dictionaries {} of {}, "
                                      "table readers {}, free in malloc {} ({} trims)",
                                      FormatBytes(s.memory.block_cache_bytes),
                                      FormatBytes(s.memory.block_cache_budget),
                                      FormatBytes(s.memory.memtable_bytes),
                                      FormatBytes(s.memory.memtable_budget),
                                      FormatBytes(s.memory.flush_backlog_bytes),
                                      FormatBytes(s.memory.flush_backlog_limit),
                                      s.memory.flush_backlog_wait_micros / 1e6, s.memory.flush_backlog_gave_up,
                                      s.memory.dictionaries,
                                      FormatBytes(s.memory.dictionary_bytes),
                                      FormatBytes(s.memory.dictionary_budget),
                                      FormatBytes(s.memory.table_reader_bytes),
                                      FormatBytes(s.memory.allocator_free_bytes), s.memory.heap_trims)},
               {"file_descriptors",
                fmt::format("nofile {}, {} kept back, up to {} table files per shard (sized for {} shards)",
                            s.descriptors.nofile_limit, s.descriptors.reserve, s.descriptors.open_files_per_shard,
                            s.descriptors.planned_shards)},
           });
  out << "shards:\n";
  Table shards({"  SHARD", "TENANTS", "SST_FILES", "LIVE_BYTES"});
  for (const auto& sh : s.shards) {
    if (!sh.damage.empty()) {
      shards.Add({fmt::format("  {:04}", sh.shard), "DAMAGED", "-", "-"});
      continue;
    }
    shards.Add({fmt::format("  {:04}", sh.shard), std::to_string(sh.tenants),
                std::to_string(sh.sst_files), FormatBytes(sh.live_bytes)});
  }
  shards.Print(out);
  for (const auto& sh : s.shards) {
    if (!sh.damage.empty()) out << fmt::format("  shard {:04} does not open: {}\n", sh.shard, sh.damage);
  }
  out << "tenants:\n";
  Table tenants({"  TENANT", "SHARD", "CALLS", "RECORDS", "BYTES"});
  for (const auto& t : s.tenants) {
    tenants.Add({"  " + t.tenant_id, std::to_string(t.shard), std::to_string(t.calls),
                 std::to_string(t.records), FormatBytes(t.bytes)});
  }
  tenants.Print(out);
  PrintRecoveryFindings(out, s.orphan_keys, s.quarantined_tenants);
  PrintDamagedTenants(out, s.damaged_tenants);
}

nlohmann::json OrphanKeysToJson(const std::vector<OrphanKey>& keys) {
  nlohmann::json a = nlohmann::json::array();
  for (const auto& o : keys) {
    nlohmann::json j{{"internal_id", o.internal_id},
                     {"key_version", o.key_version},
                     {"column_family", o.column_family},
                     {"has_column_family", o.has_column_family}};
    if (o.has_column_family) {
      j["shard"] = o.shard;
      j["has_rows"] = o.has_rows;
      j["call_holds"] = o.call_holds;
    }
    a.push_back(std::move(j));
  }
  return a;
}

void PrintRecoveryFindings(std::ostream& out, const std::vector<OrphanKey>& keys,
                           const std::vector<std::string>& quarantined) {
  for (const auto& o : keys) {
    out << fmt::format(
        "ORPHAN KEY  internal_id {} key_version {}: no live tenant owns it; column family {} {}\n",
        o.internal_id, o.key_version, o.column_family,
        o.has_column_family ? fmt::format("kept in shard {}", o.shard) : std::string("absent"));
    if (o.call_holds) {
      out << "  its family holds a call under a legal hold: reconcile refuses it; restore the "
             "registry record that owned it\n";
    } else if (o.has_rows) {
      out << fmt::format(
          "  its family holds data this key reads (a live tenant whose registry record was "
          "deleted or replaced?): restore that record, or destroy it with --with-data {}\n",
          o.internal_id);
    }
  }
  if (!keys.empty()) {
    out << "  resolve: callvault keys reconcile (dry run), then callvault keys reconcile --yes "
           "destroys them with a signed receipt (or restore the registry that owned them)\n";
  }
  for (const auto& t : quarantined) {
    out << "QUARANTINED  tenant " << t
        << ": recovery found its registry record contradicted by its key or data (tampering?); "
           "nothing destroyed\n";
  }
  if (!quarantined.empty()) {
    out << "  resolve: callvault tenant reinstate ID (it was live) or callvault tenant purge ID "
           "--yes\n";
  }
}

void PrintDamagedTenants(std::ostream& out, const std::vector<std::string>& damaged) {
  for (const auto& d : damaged) out << "DAMAGED  tenant " << d << '\n';
  if (!damaged.empty()) {
    out << "  resolve: restore the tenant from a backup, or callvault tenant purge ID --yes, or "
           "callvault tenant accept-damage ID (docs/operations.md, \"A tenant is damaged\")\n";
  }
}

nlohmann::json VerifyReportToJson(const VerifyReport& r) {
  nlohmann::json j = {{"ok", r.ok()},
                      {"tenants", r.tenants},
                      {"records_ok", r.records_ok},
                      {"records_failed", r.records_failed},
                      {"records_unchecked", r.records_unchecked},
                      {"metadata_checked", r.metadata_checked},
                      {"failures", r.failures},
                      {"unchecked", r.unchecked},
                      {"orphan_keys", OrphanKeysToJson(r.orphan_keys)},
                      {"quarantined_tenants", r.quarantined_tenants}};
  if (!r.damaged_tenants.empty()) j["damaged_tenants"] = r.damaged_tenants;  // decision 0014
  if (r.metadata_checked) {
    j["metadata_ok"] = r.metadata_ok;
    j["metadata_failed"] = r.metadata_failed;
  }
  return j;
}

void PrintVerifyReport(std::ostream& out, const VerifyReport& r) {
  for (const auto& f : r.failures) out << "FAILED     " << f << '\n';
  for (const auto& u : r.unchecked) out << "UNCHECKED  " << u << '\n';
  PrintRecoveryFindings(out, r.orphan_keys, r.quarantined_tenants);
  PrintDamagedTenants(out, r.damaged_tenants);
  std::string line = fmt::format("{}: {} tenant(s), {} record(s) ok, {} failed", r.ok() ? "OK" : "FAILED",
                                 r.tenants, r.records_ok, r.records_failed);
  if (r.records_unchecked != 0 || !r.unchecked.empty()) {
    line += fmt::format(", about {} unchecked", r.records_unchecked);
  }
  if (!r.orphan_keys.empty()) line += fmt::format(", {} orphan key(s)", r.orphan_keys.size());
  if (!r.quarantined_tenants.empty()) {
    line += fmt::format(", {} quarantined tenant(s)", r.quarantined_tenants.size());
  }
  if (!r.damaged_tenants.empty()) {
    line += fmt::format(", {} damaged tenant(s)", r.damaged_tenants.size());
  }
  if (r.metadata_checked) {
    line += fmt::format("; metadata: {} record(s) ok, {} failed", r.metadata_ok, r.metadata_failed);
  } else {
    line += "; metadata not checked (one tenant)";
  }
  out << line << '\n';
}

}  // namespace callvault::cli
