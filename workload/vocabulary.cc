#include "workload/vocabulary.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <mutex>
#include <utility>

namespace callvault::workload {
namespace {

constexpr uint32_t kGuideBits = 12;
constexpr uint32_t kGuide = 1u << kGuideBits;
constexpr uint64_t kRankingSeed = 0xC0FFEE5EEDULL;  // fixed: same ranking for every seed
constexpr size_t kMinFileWords = 100;

bool UsableWord(const std::string& w) {
  if (w.empty() || w.size() > kMaxWordLetters) return false;
  return std::all_of(w.begin(), w.end(), [](char c) { return c >= 'a' && c <= 'z'; });
}

std::vector<std::string> ReadWordFile(const std::string& path) {
  std::vector<std::string> words;
  std::ifstream in(path);
  std::string line;
  while (in && std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (UsableWord(line)) words.push_back(line);
  }
  std::sort(words.begin(), words.end());
  words.erase(std::unique(words.begin(), words.end()), words.end());
  return words;
}

void FixedShuffle(std::vector<std::string>* words) {
  Rng rng(kRankingSeed);
  for (size_t i = words->size(); i > 1; --i) {
    std::swap((*words)[i - 1], (*words)[rng.Below(i)]);
  }
}

}  // namespace

Vocabulary::Vocabulary(std::vector<std::string> words) : words_(std::move(words)) {
  if (words_.empty()) words_ = BuiltinWords();
  FixedShuffle(&words_);
  offsets_.reserve(words_.size() + 1);
  cumulative_.reserve(words_.size());
  double total = 0;
  for (size_t r = 0; r < words_.size(); ++r) {
    offsets_.push_back(static_cast<uint32_t>(pool_.size()));
    pool_ += words_[r];
    total += 1.0 / std::pow(static_cast<double>(r + 1), kZipfExponent);
    cumulative_.push_back(total);
  }
  offsets_.push_back(static_cast<uint32_t>(pool_.size()));
  guide_.resize(kGuide + 1);
  size_t r = 0;
  for (uint32_t b = 0; b < kGuide; ++b) {
    const double edge = total * b / kGuide;
    while (r + 1 < cumulative_.size() && cumulative_[r] <= edge) ++r;
    guide_[b] = static_cast<uint32_t>(r);
  }
  guide_[kGuide] = static_cast<uint32_t>(cumulative_.size() - 1);
}

size_t Vocabulary::SampleFrom(uint64_t bits) const {
  const double u = static_cast<double>(bits >> 11) * 0x1.0p-53;
  const double x = u * cumulative_.back();
  const uint64_t slice = bits >> (64 - kGuideBits);
  const auto first = cumulative_.begin() + guide_[slice];
  const auto last = cumulative_.begin() + guide_[slice + 1] + 1;
  const size_t rank = static_cast<size_t>(std::upper_bound(first, last, x) - cumulative_.begin());
  return std::min(rank, cumulative_.size() - 1);
}

std::shared_ptr<const Vocabulary> LoadVocabulary(const std::string& path) {
  static std::mutex mu;
  static std::map<std::string, std::shared_ptr<const Vocabulary>> cache;
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache.find(path);
  if (it != cache.end()) return it->second;
  std::vector<std::string> words = ReadWordFile(path);
  if (words.size() < kMinFileWords) words = BuiltinWords();
  auto vocabulary = std::make_shared<const Vocabulary>(std::move(words));
  cache.emplace(path, vocabulary);
  return vocabulary;
}

const std::vector<std::string>& BuiltinWords() {
  static const std::vector<std::string> kWords = {
      "the", "be", "to", "of", "and", "a", "in", "that", "have", "i", "it", "for", "not", "on",
      "with", "he", "as", "you", "do", "at", "this", "but", "his", "by", "from", "they", "we",
      "say", "her", "she", "or", "an", "will", "my", "one", "all", "would", "there", "their",
      "what", "so", "up", "out", "if", "about", "who", "get", "which", "go", "me", "when",
      "make", "can", "like", "time", "no", "just", "him", "know", "take", "people", "into",
      "year", "your", "good", "some", "could", "them", "see", "other", "than", "then", "now",
      "look", "only", "come", "its", "over", "think", "also", "back", "after", "use", "two",
      "how", "our", "work", "first", "well", "way", "even", "new", "want", "because", "any",
      "these", "give", "day", "most", "us", "is", "are", "was", "were", "been", "has", "had",
      "did", "said", "yes", "yeah", "okay", "right", "sure", "great", "thanks", "really",
      "maybe", "actually", "price", "pricing", "contract", "budget", "team", "teams", "quarter",
      "deal", "demo", "product", "customer", "customers", "renewal", "license", "seats",
      "integration", "data", "security", "timeline", "next", "step", "steps", "call", "meeting",
      "week", "month", "plan", "plans", "question", "questions", "answer", "problem", "issue",
      "support", "feature", "features", "account", "sales", "manager", "process", "review",
      "decision", "approval", "legal", "procurement", "discount", "proposal", "trial", "pilot",
      "value", "cost", "costs", "risk", "goal", "goals", "report", "dashboard", "workflow",
      "email", "follow", "send", "share", "schedule", "today", "tomorrow", "monday", "friday",
      "need", "needs", "help", "talk", "talked", "mean", "guess", "point", "part", "thing",
      "things", "lot", "much", "many", "more", "less", "very", "here", "where", "why", "still",
      "again", "before", "should", "might", "must", "let", "put", "keep", "start", "end",
      "number", "last", "long", "little", "big", "small", "high", "low", "different"};
  return kWords;
}

}  // namespace callvault::workload
