// T6: the JSON ingest (tools/json/call_json.h). ParseCalls throws nothing
// and, for what it accepts, CallToJson (reveal, every part) parses back to
// the same call, as call_json.h promises.
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz/fuzz_util.h"
#include "tools/json/call_json.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace callvault;
  auto calls = json::ParseCalls(fuzz::View(data, size));
  if (!calls.ok()) {
    FUZZ_CHECK(calls.status().code() == Code::kInvalidArgument, "ParseCalls error code");
    FUZZ_CHECK(!calls.status().message().empty(), "ParseCalls error message");
    return 0;
  }
  json::JsonOptions reveal;
  reveal.reveal = true;
  reveal.parts = kPartAll;
  for (const Call& call : *calls) {
    const std::string text = json::CallToJson(call, reveal).dump();
    auto back = json::ParseCalls(text);
    FUZZ_CHECK(back.ok(), "ParseCalls(CallToJson(call))");
    FUZZ_CHECK(back->size() == 1 && (*back)[0] == call, "JSON round trip");
    // The redacted form is valid JSON too.
    (void)json::CallToJson(call).dump();
  }
  return 0;
}
