// A Prometheus text-format (0.0.4) checker for tests of Store::Metrics
// and `callvault stats --prometheus` (decision 0031).
#ifndef CALLVAULT_TESTS_TESTUTIL_PROMETHEUS_H_
#define CALLVAULT_TESTS_TESTUTIL_PROMETHEUS_H_

#include <gtest/gtest.h>

#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>

namespace callvault::testutil {

// Checks `text` line by line as a Prometheus 0.0.4 scraper would: every
// sample parses (name, labels, value), every metric has HELP and TYPE
// before its samples and appears once, every name starts "callvault_".
// Returns the samples, "name{labels}" -> value (+Inf as 1e308), for the
// caller's checks of values and buckets.
inline std::map<std::string, double> ParseScrape(const std::string& text) {
  static const std::regex kHelp(R"(^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) \S.*$)");
  static const std::regex kType(R"(^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram)$)");
  static const std::regex kSample(
      R"re(^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="[^"\\]*")(,[a-zA-Z_][a-zA-Z0-9_]*="[^"\\]*")*\})? (-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?|\+Inf|NaN)$)re");
  std::map<std::string, double> samples;
  std::set<std::string> helped, typed;
  std::map<std::string, std::string> types;
  std::istringstream in(text);
  std::string line;
  int n = 0;
  EXPECT_FALSE(text.empty());
  EXPECT_EQ(text.back(), '\n');
  while (std::getline(in, line)) {
    ++n;
    std::smatch m;
    if (std::regex_match(line, m, kHelp)) {
      EXPECT_TRUE(helped.insert(m[1]).second) << "second HELP: " << line;
      continue;
    }
    if (std::regex_match(line, m, kType)) {
      EXPECT_TRUE(helped.count(m[1])) << "TYPE before HELP: " << line;
      EXPECT_TRUE(typed.insert(m[1]).second) << "second TYPE: " << line;
      types[m[1]] = m[2];
      continue;
    }
    if (!std::regex_match(line, m, kSample)) {
      ADD_FAILURE() << "line " << n << " does not parse: " << line;
      continue;
    }
    std::string name = m[1];
    std::string family = name;
    for (const char* suffix : {"_bucket", "_sum", "_count"}) {
      const std::string s(suffix);
      if (name.size() > s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0 &&
          types.count(name.substr(0, name.size() - s.size())) &&
          types[name.substr(0, name.size() - s.size())] == "histogram") {
        family = name.substr(0, name.size() - s.size());
      }
    }
    EXPECT_TRUE(typed.count(family)) << "sample without TYPE: " << line;
    EXPECT_EQ(family.rfind("callvault_", 0), 0u) << line;
    const std::string value = m[5];
    const std::string key = name + std::string(m[2]);
    EXPECT_FALSE(samples.count(key)) << "duplicate sample: " << line;
    samples[key] = value == "+Inf" ? 1e308 : std::stod(value);
  }
  EXPECT_EQ(helped, typed);
  return samples;
}

}  // namespace callvault::testutil

#endif  // CALLVAULT_TESTS_TESTUTIL_PROMETHEUS_H_
