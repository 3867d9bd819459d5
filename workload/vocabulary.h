// The transcript vocabulary: a fixed shuffled ranking of a word list and a
// Zipf sampler over it. Internal to the workload library.
#ifndef CALLVAULT_WORKLOAD_VOCABULARY_H_
#define CALLVAULT_WORKLOAD_VOCABULARY_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "workload/random.h"

namespace callvault::workload {

inline constexpr double kZipfExponent = 1.07;
inline constexpr size_t kMaxWordLetters = 12;

class Vocabulary {
 public:
  // Ranks `words` (shuffled with a fixed seed, so the ranking is the same for
  // every generator seed) and builds the Zipf table. `words` must not be empty.
  explicit Vocabulary(std::vector<std::string> words);

  // Returns a rank drawn from Zipf(s = kZipfExponent) over the vocabulary.
  size_t Sample(Rng& rng) const { return SampleFrom(rng.Next()); }
  // The same, from 64 random bits (only the top 53 are used).
  size_t SampleFrom(uint64_t bits) const;

  void Append(size_t rank, std::string* out) const {
    out->append(pool_.data() + offsets_[rank], offsets_[rank + 1] - offsets_[rank]);
  }
  const std::vector<std::string>& words() const { return words_; }
  size_t size() const { return words_.size(); }

 private:
  std::vector<std::string> words_;  // by rank
  std::string pool_;                // the words back to back
  std::vector<uint32_t> offsets_;   // size() + 1 entries into pool_
  std::vector<double> cumulative_;  // cumulative_[r] = sum of weights of ranks <= r
  std::vector<uint32_t> guide_;     // first rank of each of kGuide equal slices
};

// Lower-case alphabetic words of at most 12 letters from `path`, one a line;
// the built-in list when the file is missing or holds fewer than 100 such
// words. Cached per path (thread-safe): later calls share the first result.
std::shared_ptr<const Vocabulary> LoadVocabulary(const std::string& path);

// About 200 common English words; the fallback vocabulary.
const std::vector<std::string>& BuiltinWords();

}  // namespace callvault::workload

#endif  // CALLVAULT_WORKLOAD_VOCABULARY_H_
