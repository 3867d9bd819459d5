#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include <gtest/gtest.h>

#include "callvault/limits.h"
#include "tests/testutil/sanitizers.h"
#include "workload/workload.h"

namespace callvault::workload {
namespace {

namespace lim = callvault::limits;

GeneratorOptions Fast(uint64_t seed = 42) {
  GeneratorOptions o;
  o.seed = seed;
  o.transcript_scale = 0.05;
  return o;
}

template <typename T>
T Median(std::vector<T> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? T{} : v[v.size() / 2];
}

bool IsId(const std::string& s) {
  return !s.empty() && s.size() <= lim::kMaxIdBytes &&
         std::all_of(s.begin(), s.end(), [](char c) { return c > ' ' && c < 0x7f; });
}

bool IsLowerCase(const std::string& s) {
  return std::none_of(s.begin(), s.end(), [](char c) { return c >= 'A' && c <= 'Z'; });
}

bool IsE164(const std::string& s) {
  return s.size() >= 9 && s.size() <= 16 && s[0] == '+' &&
         std::all_of(s.begin() + 1, s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

void ExpectShort(const std::string& s, const char* what) {
  EXPECT_LE(s.size(), lim::kMaxShortTextBytes) << what;
}

void CheckParticipants(const Call& c) {
  ASSERT_GE(c.participants.size(), 2u);
  ASSERT_LE(c.participants.size(), 8u);
  for (size_t i = 0; i < c.participants.size(); ++i) {
    const Participant& p = c.participants[i];
    EXPECT_EQ(p.speaker_id, i + 1);
    EXPECT_FALSE(p.name.empty());
    ExpectShort(p.name, "name");
    ExpectShort(p.email, "email");
    ExpectShort(p.title, "title");
    ExpectShort(p.company, "company");
    EXPECT_TRUE(IsLowerCase(p.email)) << p.email;
    if (!p.email.empty()) {
      EXPECT_NE(p.email.find('@'), std::string::npos);
    }
    if (!p.phone.empty()) {
      EXPECT_TRUE(IsE164(p.phone)) << p.phone;
    }
    if (p.affiliation == Affiliation::kInternal) {
      EXPECT_TRUE(IsId(p.user_id));
    } else {
      EXPECT_EQ(p.affiliation, Affiliation::kExternal);
      EXPECT_TRUE(p.user_id.empty());
    }
  }
  if (c.source_system == SourceSystem::kDialer) {
    EXPECT_EQ(c.participants.size(), 2u);
    EXPECT_TRUE(IsE164(c.participants[1].phone));
  }
}

void CheckTranscript(const Call& c) {
  ASSERT_FALSE(c.transcript.empty());
  ASSERT_LE(c.transcript.size(), lim::kMaxSegments);
  size_t bytes = 0;
  for (size_t i = 0; i < c.transcript.size(); ++i) {
    const TranscriptSegment& s = c.transcript[i];
    bytes += s.text.size();
    EXPECT_LE(s.text.size(), lim::kMaxSegmentTextBytes);
    EXPECT_FALSE(s.text.empty());
    EXPECT_LE(s.start_ms, s.end_ms);
    EXPECT_LE(s.end_ms, c.duration_ms);
    EXPECT_GE(s.confidence, 0.7f);
    EXPECT_LE(s.confidence, 0.99f);
    EXPECT_GE(s.speaker_id, 1u);
    EXPECT_LE(s.speaker_id, c.participants.size());
    if (i > 0) {
      EXPECT_GT(s.start_ms, c.transcript[i - 1].start_ms);
      EXPECT_NE(s.speaker_id, c.transcript[i - 1].speaker_id);  // turns alternate
    }
  }
  EXPECT_LE(bytes, lim::kMaxTranscriptBytes);
}

void CheckInsights(const Insights& in) {
  EXPECT_FALSE(in.summary.empty());
  EXPECT_LE(in.summary.size(), lim::kMaxSummaryBytes);
  EXPECT_LE(in.action_items.size(), lim::kMaxListItems);
  for (const auto& a : in.action_items) {
    ExpectShort(a.text, "action item");
    if (!a.owner_user_id.empty()) {
      EXPECT_TRUE(IsId(a.owner_user_id));
    }
  }
  EXPECT_FALSE(in.topics.empty());
  for (const auto& t : in.topics) ExpectShort(t, "topic");
  for (const auto& t : in.trackers) {
    ExpectShort(t.name, "tracker");
    EXPECT_GE(t.count, 1u);
  }
  EXPECT_EQ(in.model_name, "gpt-4o");
  EXPECT_EQ(in.model_version, "2024-08-06");
}

void CheckCall(const Call& c, const GeneratorOptions& o) {
  EXPECT_TRUE(IsId(c.call_id));
  EXPECT_EQ(c.call_id.size(), 36u);  // UUID-shaped
  EXPECT_TRUE(IsId(c.source_call_id));
  EXPECT_TRUE(IsId(c.workspace_id));
  EXPECT_TRUE(IsId(c.owner_user_id));
  EXPECT_GE(c.started_at, o.start_us);
  EXPECT_LT(c.started_at, o.start_us + o.span_days * 86400LL * 1000000);
  EXPECT_GT(c.duration_ms, 0u);
  EXPECT_GE(c.created_at, c.started_at + int64_t{c.duration_ms} * 1000);
  EXPECT_GE(c.updated_at, c.created_at);
  EXPECT_FALSE(c.title.empty());
  EXPECT_LE(c.title.size(), lim::kMaxTitleBytes);
  EXPECT_FALSE(c.language.empty());
  EXPECT_EQ(c.status, "completed");
  EXPECT_LE(c.tags.size(), lim::kMaxTags);
  for (const auto& t : c.tags) ExpectShort(t, "tag");
  EXPECT_FALSE(c.team_ids.empty());
  for (const auto& t : c.team_ids) EXPECT_TRUE(IsId(t));
  for (const auto& l : c.crm_links) {
    EXPECT_TRUE(l.system == "salesforce" || l.system == "hubspot");
    EXPECT_TRUE(IsId(l.object_id));
  }
  const bool dialer = c.source_system == SourceSystem::kDialer;
  EXPECT_EQ(c.media, dialer ? Media::kAudio : Media::kVideo);
  if (dialer) {
    EXPECT_TRUE(c.direction == Direction::kInbound || c.direction == Direction::kOutbound);
    EXPECT_EQ(c.scheduled_start, 0);
  } else {
    EXPECT_EQ(c.direction, Direction::kConference);
    EXPECT_LE(c.scheduled_start, c.started_at);
    EXPECT_GT(c.scheduled_end, c.scheduled_start);
  }
  CheckParticipants(c);
  CheckTranscript(c);
  CheckInsights(c.insights);
}

TEST(GeneratorTest, SameSeedSameCalls) {
  Generator a(Fast(7)), b(Fast(7)), other(Fast(8));
  const std::vector<Call> first = a.Batch(200);
  EXPECT_EQ(first, b.Batch(200));
  const std::vector<Call> third = other.Batch(200);
  size_t same_ids = 0;
  for (size_t i = 0; i < first.size(); ++i) same_ids += first[i].call_id == third[i].call_id;
  EXPECT_EQ(same_ids, 0u);
}

TEST(GeneratorTest, NextMatchesBatch) {
  Generator a(Fast(3)), b(Fast(3));
  std::vector<Call> one_by_one;
  for (int i = 0; i < 20; ++i) one_by_one.push_back(a.Next());
  EXPECT_EQ(one_by_one, b.Batch(20));
}

TEST(GeneratorTest, FieldsArePlausibleAndWithinLimits) {
  GeneratorOptions o;
  o.seed = 11;
  Generator gen(o);
  for (int i = 0; i < 300; ++i) {
    const Call c = gen.Next();
    CheckCall(c, o);
    if (HasFailure()) {
      ADD_FAILURE() << "call " << i;
      return;
    }
  }
}

struct ClassStats {
  size_t count = 0;
  std::vector<size_t> transcript_bytes;
  std::vector<size_t> summary_bytes;
  std::vector<double> minutes;
  std::vector<size_t> participants;
};

TEST(GeneratorTest, SizeMixMatchesProduct) {
  constexpr size_t kCalls = 2000;
  Generator gen(GeneratorOptions{});
  std::map<CallKind, ClassStats> by_kind;
  for (size_t i = 0; i < kCalls; ++i) {
    CallKind kind;
    const Call c = gen.Next(&kind);
    ClassStats& s = by_kind[kind];
    ++s.count;
    s.transcript_bytes.push_back(TranscriptBytes(c));
    s.summary_bytes.push_back(c.insights.summary.size());
    s.minutes.push_back(c.duration_ms / 60000.0);
    s.participants.push_back(c.participants.size());
    EXPECT_EQ(kind == CallKind::kDialer, c.source_system == SourceSystem::kDialer);
  }
  const ClassStats& dialer = by_kind[CallKind::kDialer];
  const ClassStats& meeting = by_kind[CallKind::kMeeting];
  const ClassStats& long_meeting = by_kind[CallKind::kLongMeeting];
  EXPECT_NEAR(dialer.count / double{kCalls}, 0.60, 0.035);
  EXPECT_NEAR(meeting.count / double{kCalls}, 0.35, 0.035);
  EXPECT_NEAR(long_meeting.count / double{kCalls}, 0.05, 0.015);

  EXPECT_NEAR(Median(dialer.minutes) * 60, 80, 12);  // seconds
  EXPECT_NEAR(Median(meeting.minutes), 43, 3);
  EXPECT_GE(*std::min_element(long_meeting.minutes.begin(), long_meeting.minutes.end()), 90);
  EXPECT_LE(*std::max_element(long_meeting.minutes.begin(), long_meeting.minutes.end()), 180);

  EXPECT_NEAR(Median(dialer.transcript_bytes), 2000, 700);
  EXPECT_NEAR(Median(meeting.transcript_bytes), 65000, 15000);
  // 90-180 min at 150-210 words/min and ~8.5 bytes/word: ~205 KB (product.md: ~250 KB).
  EXPECT_NEAR(Median(long_meeting.transcript_bytes), 210000, 45000);
  EXPECT_NEAR(Median(meeting.summary_bytes), 3000, 600);
  EXPECT_LT(Median(dialer.summary_bytes), 700u);

  EXPECT_EQ(Median(dialer.participants), 2u);
  const auto [lo, hi] = std::minmax_element(meeting.participants.begin(), meeting.participants.end());
  EXPECT_EQ(*lo, 2u);
  EXPECT_EQ(*hi, 8u);
}

TEST(GeneratorTest, TranscriptScaleShrinksText) {
  GeneratorOptions full;
  full.seed = 5;
  GeneratorOptions small = full;
  small.transcript_scale = 0.05;
  Generator a(full), b(small);
  size_t full_bytes = 0, small_bytes = 0;
  for (int i = 0; i < 200; ++i) {
    Call ca = a.Next(), cb = b.Next();
    full_bytes += TranscriptBytes(ca);
    small_bytes += TranscriptBytes(cb);
    EXPECT_GE(cb.transcript.back().end_ms, cb.duration_ms * 0.75);  // still spans the call
    ca.transcript.clear();
    cb.transcript.clear();
    EXPECT_EQ(ca, cb);  // everything but the transcript is the same
  }
  EXPECT_NEAR(static_cast<double>(small_bytes) / full_bytes, 0.05, 0.02);
}

std::unordered_map<std::string, size_t> CountWords(const std::vector<Call>& calls, size_t* total) {
  std::unordered_map<std::string, size_t> counts;
  *total = 0;
  for (const Call& c : calls) {
    for (const auto& seg : c.transcript) {
      std::string word;
      for (char ch : seg.text + " ") {
        if (ch >= 'A' && ch <= 'Z') ch = static_cast<char>(ch - 'A' + 'a');
        if (ch >= 'a' && ch <= 'z') {
          word += ch;
        } else if (!word.empty()) {
          ++counts[word];
          ++*total;
          word.clear();
        }
      }
    }
  }
  return counts;
}

TEST(GeneratorTest, WordsFollowZipf) {
  GeneratorOptions o;
  o.seed = 9;
  Generator gen(o);
  ASSERT_GT(gen.words().size(), 20000u) << "the system word list should be used";
  size_t total = 0;
  const auto counts = CountWords(gen.Batch(60), &total);
  ASSERT_GT(total, 200000u);
  const auto top = std::max_element(counts.begin(), counts.end(),
                                    [](const auto& a, const auto& b) { return a.second < b.second; });
  const double top_share = static_cast<double>(top->second) / total;
  EXPECT_EQ(top->first, gen.words()[0]);  // rank 1 is the most frequent
  EXPECT_GT(top_share, 0.08);             // 1/H(60k, 1.07) is about 0.12
  EXPECT_LT(top_share, 0.16);
  EXPECT_GT(counts.size(), 15000u);       // a long tail of distinct words
  const size_t second = counts.at(gen.words()[1]);
  EXPECT_NEAR(static_cast<double>(top->second) / second, 2.1, 0.3);  // 2^1.07
}

TEST(GeneratorTest, FallsBackToBuiltinWords) {
  GeneratorOptions o = Fast();
  o.words_path = "/nonexistent/words";
  Generator gen(o);
  EXPECT_GE(gen.words().size(), 150u);
  EXPECT_LE(gen.words().size(), 300u);
  for (int i = 0; i < 50; ++i) CheckCall(gen.Next(), o);
}

TEST(GeneratorTest, WordListIsFiltered) {
  Generator gen(Fast());
  for (const auto& w : gen.words()) {
    ASSERT_LE(w.size(), 12u);
    ASSERT_TRUE(std::all_of(w.begin(), w.end(), [](char c) { return c >= 'a' && c <= 'z'; })) << w;
  }
}

TEST(GeneratorTest, OwnersAndWorkspacesFollowOptions) {
  GeneratorOptions o = Fast();
  o.owners = 4;
  o.workspaces = 2;
  Generator gen(o);
  std::map<std::string, int> owners, workspaces;
  for (const Call& c : gen.Batch(400)) {
    ++owners[c.owner_user_id];
    ++workspaces[c.workspace_id];
  }
  EXPECT_EQ(owners.size(), 4u);
  EXPECT_TRUE(owners.count("u-0") && owners.count("u-3"));
  EXPECT_EQ(workspaces.size(), 2u);
  EXPECT_TRUE(workspaces.count("ws-0") && workspaces.count("ws-1"));
}

TEST(GeneratorTest, SamePeopleRecurAcrossCalls) {
  Generator gen(Fast());
  std::map<std::string, int> emails;
  for (const Call& c : gen.Batch(500)) {
    for (const auto& p : c.participants) {
      if (p.affiliation == Affiliation::kExternal && !p.email.empty()) ++emails[p.email];
    }
  }
  const auto most = std::max_element(emails.begin(), emails.end(),
                                     [](const auto& a, const auto& b) { return a.second < b.second; });
  ASSERT_NE(most, emails.end());
  EXPECT_GE(most->second, 3);  // data-subject requests have something to find
}

TEST(GeneratorTest, RandomBytesAreDeterministicAndUniform) {
  const std::string a = RandomBytes(1, 1 << 20);
  EXPECT_EQ(a.size(), 1u << 20);
  EXPECT_EQ(a, RandomBytes(1, 1 << 20));
  EXPECT_NE(a, RandomBytes(2, 1 << 20));
  EXPECT_EQ(RandomBytes(1, 13), a.substr(0, 13));  // a shorter payload is a prefix
  EXPECT_EQ(RandomBytes(3, 0), "");
  std::vector<size_t> histogram(256);
  for (unsigned char ch : a) ++histogram[ch];
  for (size_t n : histogram) EXPECT_NEAR(static_cast<double>(n), 4096.0, 400.0);
}

TEST(GeneratorTest, GeneratesTranscriptTextQuickly) {
  Generator gen(GeneratorOptions{});
  gen.Next();  // loads the word list
  const auto t0 = std::chrono::steady_clock::now();
  size_t bytes = 0;
  while (bytes < (64u << 20)) bytes += TranscriptBytes(gen.Next());
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double mb_per_s = bytes / s / 1e6;
  RecordProperty("transcript_mb_per_s", static_cast<int>(mb_per_s));
  std::printf("transcript text: %.0f MB/s\n", mb_per_s);
#if defined(NDEBUG) && !defined(CV_SANITIZED)
  EXPECT_GT(mb_per_s, 20.0);  // well over 50 on an idle core; loose for shared machines
#endif
}

}  // namespace
}  // namespace callvault::workload
