// validate::IsUtf8 with its eight-bytes-at-a-time ASCII path (decision
// 0056) against a byte-at-a-time reference decoder: every invalid sequence
// is refused wherever it sits relative to the 8-byte words (after ASCII runs
// of every length, at the end, straddling a word), and random strings get
// the reference's answer.
#include <random>
#include <string>

#include <gtest/gtest.h>

#include "engine/validate.h"

namespace callvault {
namespace {

// The decoder IsUtf8 had before the ASCII path: one byte at a time.
bool ReferenceUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    uint32_t cp;
    if ((c & 0xe0) == 0xc0) { len = 2; cp = c & 0x1f; }
    else if ((c & 0xf0) == 0xe0) { len = 3; cp = c & 0x0f; }
    else if ((c & 0xf8) == 0xf0) { len = 4; cp = c & 0x07; }
    else return false;
    if (i + len > s.size()) return false;
    for (size_t k = 1; k < len; ++k) {
      const unsigned char cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3f);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
      return false;
    }
    i += len;
  }
  return true;
}

const char* const kValid[] = {"\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", "\xf4\x8f\xbf\xbf",
                              "\xed\x9f\xbf", "\xee\x80\x80"};
const char* const kInvalid[] = {
    "\x80",             // lone continuation byte
    "\xbf",             //
    "\xc3",             // truncated 2-byte sequence
    "\xe2\x82",         // truncated 3-byte sequence
    "\xf0\x9f\x98",     // truncated 4-byte sequence
    "\xc0\xaf",         // overlong '/'
    "\xe0\x80\xaf",     // overlong
    "\xf0\x80\x80\xaf", // overlong
    "\xed\xa0\x80",     // surrogate D800
    "\xed\xbf\xbf",     // surrogate DFFF
    "\xf4\x90\x80\x80", // above U+10FFFF
    "\xf8\x88\x80\x80\x80",  // 5-byte form
    "\xff",             //
    "\xc3\x28",         // continuation byte missing
    "\xe2\x28\xa1",     //
};

TEST(Utf8Test, EveryInvalidSequenceIsRefusedAtEveryOffset) {
  for (const char* bad : kInvalid) {
    for (size_t before = 0; before <= 24; ++before) {
      for (size_t after = 0; after <= 17; after += 1) {
        const std::string s = std::string(before, 'a') + bad + std::string(after, 'b');
        ASSERT_EQ(ReferenceUtf8(s), false);
        EXPECT_FALSE(validate::IsUtf8(s)) << "before " << before << " after " << after;
      }
    }
  }
}

TEST(Utf8Test, EveryValidSequenceIsAcceptedAtEveryOffset) {
  for (const char* good : kValid) {
    for (size_t before = 0; before <= 24; ++before) {
      for (size_t after = 0; after <= 17; ++after) {
        const std::string s = std::string(before, 'a') + good + std::string(after, 'b');
        EXPECT_TRUE(validate::IsUtf8(s)) << "before " << before << " after " << after;
      }
    }
  }
  EXPECT_TRUE(validate::IsUtf8(""));
  EXPECT_TRUE(validate::IsUtf8(std::string(100000, 'x')));
}

TEST(Utf8Test, RandomStringsMatchTheReference) {
  std::mt19937_64 rng(56);
  // Mostly ASCII with a few high bytes: long ASCII runs, then anything.
  for (int round = 0; round < 20000; ++round) {
    std::string s(rng() % 64, '\0');
    const unsigned high_every = 1 + static_cast<unsigned>(rng() % 40);
    for (auto& c : s) {
      c = static_cast<char>(rng() % high_every == 0 ? 0x80 + rng() % 0x80 : rng() % 0x80);
    }
    // Half of the rounds: valid sequences spliced in, so that not every
    // string with a high byte is refused at once.
    if (round % 2 == 0 && !s.empty()) {
      s.insert(rng() % s.size(), kValid[rng() % std::size(kValid)]);
    }
    EXPECT_EQ(validate::IsUtf8(s), ReferenceUtf8(s)) << "round " << round;
  }
}

}  // namespace
}  // namespace callvault
