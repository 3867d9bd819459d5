#include "engine/dictionary_cache.h"

#include <atomic>
#include <vector>

namespace callvault {

uint64_t DictionaryCache::NewOwner() {
  static std::atomic<uint64_t> next{1};
  return next.fetch_add(1, std::memory_order_relaxed);
}

std::shared_ptr<const compress::Dictionary> DictionaryCache::Lookup(uint64_t owner, uint32_t id) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = entries_.find({owner, id});
  if (it == entries_.end()) {
    ++counters_.misses;
    return nullptr;
  }
  ++counters_.hits;
  lru_.splice(lru_.begin(), lru_, it->second.lru);
  return it->second.dict;
}

std::shared_ptr<const compress::Dictionary> DictionaryCache::Insert(
    uint64_t owner, uint32_t id, std::shared_ptr<const compress::Dictionary> d) {
  if (d == nullptr) return d;
  const size_t bytes = d->MemoryBytes();
  std::lock_guard<std::mutex> l(mu_);
  auto it = entries_.find({owner, id});
  if (it != entries_.end()) {
    lru_.splice(lru_.begin(), lru_, it->second.lru);
    return it->second.dict;
  }
  if (bytes > budget_) return d;  // used by the caller, never kept
  lru_.push_front({owner, id});
  entries_.emplace(Key{owner, id}, Entry{d, bytes, lru_.begin()});
  counters_.bytes += bytes;
  ++counters_.entries;
  EvictLocked();
  return d;
}

void DictionaryCache::EvictLocked() {
  while (counters_.bytes > budget_ && !lru_.empty()) {
    auto it = entries_.find(lru_.back());
    counters_.bytes -= it->second.bytes;
    --counters_.entries;
    ++counters_.evictions;
    entries_.erase(it);
    lru_.pop_back();
  }
}

void DictionaryCache::EraseOwner(uint64_t owner) {
  // Released outside the lock: the last reference zeroes the content.
  std::vector<std::shared_ptr<const compress::Dictionary>> dropped;
  {
    std::lock_guard<std::mutex> l(mu_);
    for (auto it = entries_.lower_bound({owner, 0}); it != entries_.end() && it->first.first == owner;) {
      counters_.bytes -= it->second.bytes;
      --counters_.entries;
      lru_.erase(it->second.lru);
      dropped.push_back(std::move(it->second.dict));
      it = entries_.erase(it);
    }
  }
}

DictionaryCache::Counters DictionaryCache::Get() const {
  std::lock_guard<std::mutex> l(mu_);
  Counters c = counters_;
  c.budget = budget_;
  return c;
}

}  // namespace callvault
