// Writes the seed corpora of the fuzz targets: a few small valid inputs
// each, built with the encoders of the code under test. Deterministic:
// running it again rewrites the same bytes.
//   make_corpus fuzz/corpus
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "callvault/call.h"
#include "callvault/store.h"
#include "engine/codec.h"
#include "engine/compress.h"
#include "format/cursor.h"
#include "format/envelope.h"
#include "format/keyring_format.h"
#include "format/rowkey.h"
#include "format/summary.h"
#include "tools/json/call_json.h"

namespace {

using namespace callvault;
namespace fs = std::filesystem;

fs::path g_root;

// Seeds are valid inputs: each must pass its parser.
void Require(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "make_corpus: seed %s does not parse\n", what);
    std::exit(1);
  }
}

void Write(const std::string& target, const std::string& name, const std::string& bytes) {
  fs::create_directories(g_root / target);
  std::ofstream f(g_root / target / name, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!f) {
    std::fprintf(stderr, "cannot write %s/%s\n", target.c_str(), name.c_str());
    std::exit(1);
  }
}

Call SampleCall() {
  Call c;
  c.call_id = "c-0001";
  c.source_system = SourceSystem::kZoom;
  c.source_call_id = "zoom-88";
  c.workspace_id = "ws-1";
  c.started_at = 1767225600000000;
  c.duration_ms = 95000;
  c.created_at = 1767225700000000;
  c.updated_at = 1767225700000000;
  c.title = "Discovery call";
  c.direction = Direction::kOutbound;
  c.scope = CallScope::kExternal;
  c.media = Media::kVideo;
  c.language = "en-US";
  c.status = "completed";
  c.tags = {"discovery"};
  c.owner_user_id = "u-1";
  c.team_ids = {"t-1"};
  c.participants = {
      Participant{"Ann Lee", "ann@example.com", "+14155550100", "CTO", "Example",
                  Affiliation::kExternal, 1, ""},
      Participant{"Bo Park", "bo@brightwave.com", "", "AE", "Brightwave", Affiliation::kInternal,
                  2, "u-1"}};
  c.crm_links = {CrmLink{"salesforce", CrmObjectType::kOpportunity, "006A"}};
  c.transcript = {TranscriptSegment{1, 0, 2100, "thanks for taking the time", 0.93f},
                  TranscriptSegment{2, 2100, 5200, "happy to, tell me about pricing", 0.88f}};
  c.insights.summary = "Pricing questions; follow up with a deck.";
  c.insights.action_items = {ActionItem{"send the deck", "u-1"}};
  c.insights.topics = {"pricing"};
  c.insights.trackers = {Tracker{"competitor:acme", 1}};
  c.insights.model_name = "summarizer";
  c.insights.model_version = "2";
  return c;
}

void DecodeCorpus() {
  const Call c = SampleCall();
  Write("decode_fuzzer", "meta", codec::EncodeMeta(c, kPartTranscript | kPartInsights));
  Write("decode_fuzzer", "transcript", codec::EncodeTranscript(c));
  Write("decode_fuzzer", "insights", codec::EncodeInsights(c));
  codec::TenantRecord t;
  t.tenant_id = "acme";
  t.state = TenantState::kActive;
  t.region = "eu-west-1";
  t.retention_days = 365;
  t.internal_id = 12;
  t.cf_generation = 1;
  t.key_version = 1;
  t.holds = {Hold{"h-1", "litigation", "", 1767225600000000}};
  t.workspace_retention = {{"ws-1", 30}};
  Write("decode_fuzzer", "tenant", codec::EncodeTenant(t));
  Receipt r;
  r.sequence = 1;
  r.kind = "tenant_purge";
  r.store_id = "00112233445566778899aabbccddeeff";
  r.region = "eu-west-1";
  r.tenant_id = "acme";
  r.tenant_internal_id = 12;
  r.column_family = "t000000000000000c";
  r.key_versions_destroyed = {1};
  r.kek_generation_retired = 1;
  r.kek_generation_current = 2;
  r.signature = "ab";
  Write("decode_fuzzer", "receipt", codec::EncodeReceipt(r));
  Write("decode_fuzzer", "hold", codec::EncodeHold(Hold{"h-2", "request", "c-0001", 5}));
  Write("decode_fuzzer", "audit",
        codec::EncodeAudit(AuditEvent{3, 1767225600000000, "tenant_purged", "acme", "{}", ""}));
  format::Summary s;
  s.started_at = c.started_at;
  s.updated_at = c.updated_at;
  s.duration_ms = c.duration_ms;
  s.direction = 2;
  s.scope = 2;
  s.owner = "owner--1";
  s.tags = {"tag----1"};
  s.participants = {"person-1", "person-2"};
  Write("decode_fuzzer", "summary", format::EncodeSummary(s));
  Write("decode_fuzzer", "zstd_frame", compress::Compress(std::string(300, 'a') + "tail"));

  Call back;
  uint32_t parts = 0;
  Require(codec::DecodeMeta(codec::EncodeMeta(c, 6), &back, &parts).ok(), "meta");
  Require(codec::DecodeTranscript(codec::EncodeTranscript(c), &back).ok(), "transcript");
  Require(codec::DecodeInsights(codec::EncodeInsights(c), &back).ok(), "insights");
  Require(back == c, "call round trip");
  codec::TenantRecord t2;
  Require(codec::DecodeTenant(codec::EncodeTenant(t), &t2).ok(), "tenant");
  Receipt r2;
  Require(codec::DecodeReceipt(codec::EncodeReceipt(r), &r2).ok(), "receipt");
  Require(format::DecodeSummary(format::EncodeSummary(s)).has_value(), "summary");
}

std::string Body(size_t n) {
  std::vector<uint8_t> key(format::kKeyBytes, 0x5a);
  std::vector<uint8_t> body(format::KeyringBodySize(n));
  format::EncodeKeyringBodyFixed(body.data(), key.data(), key.data(), static_cast<uint32_t>(n));
  for (size_t i = 0; i < n; ++i) format::EncodeKeyringEntry(body.data(), i, 1 + i / 2, 1 + i % 2, key.data());
  return std::string(body.begin(), body.end());
}

void KeyringCorpus() {
  format::KeyringHeader h;
  h.kek_generation = 1;
  h.keyring_generation = 4;
  h.store_id = std::string("store-id-16bytes");
  Write("keyring_fuzzer", "body0", Body(0));
  Write("keyring_fuzzer", "body3", Body(3));
  Write("keyring_fuzzer", "file1", format::EncodeKeyringHeader(h) + Body(1));
  Write("keyring_fuzzer", "header", format::EncodeKeyringHeader(h));
  format::KeyringBodyView v;
  const std::string b3 = Body(3);
  Require(format::ParseKeyringBody(reinterpret_cast<const uint8_t*>(b3.data()), b3.size(), &v).empty() &&
              v.entries.size() == 3,
          "body3");
  format::KeyringHeader back;
  Require(format::ParseKeyringHeader(format::EncodeKeyringHeader(h), &back), "header");
}

void JsonSeed(const std::string& name, const std::string& text, size_t calls) {
  auto parsed = json::ParseCalls(text);
  Require(parsed.ok() && parsed->size() == calls, name.c_str());
  Write("json_fuzzer", name, text);
}

void JsonCorpus() {
  json::JsonOptions reveal;
  reveal.reveal = true;
  JsonSeed("full.json", json::CallToJson(SampleCall(), reveal).dump(1), 1);
  JsonSeed("minimal.json", R"({"call_id":"c-1","started_at":"2026-03-01T14:30:00Z"})", 1);
  JsonSeed("array.json",
           R"([{"call_id":"c-1","started_at":1767225600000000,"direction":"inbound","tags":["a"]},)"
           R"({"call_id":"c-2","started_at":"2026-03-01T14:30:00.123456+02:00","media":"video",)"
           R"("participants":[{"name":"Ann","email":"ann@example.com","affiliation":"external"}]}])",
           2);
}

void EnvelopeCursorCorpus() {
  format::EnvelopeHeader h;
  h.codec = format::Codec::kZstd;
  h.key_version = 1;
  Write("envelope_cursor_fuzzer", "envelope",
        format::EncodeEnvelopeHeader(h) + std::string(format::kNonceBytes, 'n') +
            std::string(40, 'c'));
  format::Cursor cur;
  cur.last_started_at = 1767225600000000;
  cur.last_hash = std::string(16, 'h');
  cur.query_hash = std::string(16, 'q');
  cur.mac = std::string(16, 'm');
  Write("envelope_cursor_fuzzer", "cursor", format::EncodeCursor(cur));
  const std::string hash(format::kHashBytes, 'x');
  Write("envelope_cursor_fuzzer", "time_key", format::TimeIndexKey(-5, hash));
  Write("envelope_cursor_fuzzer", "owner_key",
        format::AttributeIndexKey(format::kOwnerIndexPrefix, std::string(16, 'o'), 1767225600000000, hash));
  Write("envelope_cursor_fuzzer", "call_key", format::CallKey(hash, format::Part::kSummary));
  Write("envelope_cursor_fuzzer", "cf_name", format::ColumnFamilyName(0x2a));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
    return 2;
  }
  g_root = argv[1];
  DecodeCorpus();
  KeyringCorpus();
  JsonCorpus();
  EnvelopeCursorCorpus();
  return 0;
}
