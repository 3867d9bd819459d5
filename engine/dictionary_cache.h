// The store's cache of loaded compression dictionaries (docs/decisions/
// 0009; docs/operations.md, "Memory"): every tenant's
// dictionaries, least recently used dropped first once their bytes pass a
// budget. A dropped dictionary is read and opened again from its sealed row
// at its next use. Before, each tenant kept every dictionary it had used
// since open (~90 KiB each: ~0.9 GB at 10,000 tenants).
//
// Entries are keyed by an owner token unique to one Tenant object in the
// process (never reused, so a purged and re-created tenant, or a tenant
// moved in under an old internal id, never meets another's entry) and the
// dictionary id. Thread-safe. Holders of a returned dictionary keep it alive
// after it is dropped; its content is zeroed when the last one lets go.
#ifndef CALLVAULT_ENGINE_DICTIONARY_CACHE_H_
#define CALLVAULT_ENGINE_DICTIONARY_CACHE_H_

#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <utility>

#include "engine/compress.h"

namespace callvault {

class DictionaryCache {
 public:
  struct Counters {
    uint64_t bytes = 0;    // held now
    uint64_t entries = 0;  // held now
    uint64_t budget = 0;
    uint64_t hits = 0, misses = 0, evictions = 0;
  };

  explicit DictionaryCache(size_t budget_bytes) : budget_(budget_bytes) {}
  DictionaryCache(const DictionaryCache&) = delete;
  DictionaryCache& operator=(const DictionaryCache&) = delete;

  // A token for a new owner (one per Tenant object).
  static uint64_t NewOwner();

  // The cached dictionary, or null (counted as a miss).
  std::shared_ptr<const compress::Dictionary> Lookup(uint64_t owner, uint32_t id);
  // Caches `d` unless an entry for (owner, id) exists; returns the cached
  // one (the first to insert wins). A dictionary larger than the whole
  // budget is returned but not kept.
  std::shared_ptr<const compress::Dictionary> Insert(uint64_t owner, uint32_t id,
                                                     std::shared_ptr<const compress::Dictionary> d);
  // Drops every entry of `owner` (its tenant was purged, moved out or
  // closed): the content is zeroed once no reader holds it.
  void EraseOwner(uint64_t owner);
  Counters Get() const;

 private:
  using Key = std::pair<uint64_t, uint32_t>;
  struct Entry {
    std::shared_ptr<const compress::Dictionary> dict;
    size_t bytes = 0;
    std::list<Key>::iterator lru;  // position in lru_ (front: most recent)
  };
  void EvictLocked();  // REQUIRES: mu_

  const size_t budget_;
  mutable std::mutex mu_;
  std::map<Key, Entry> entries_;  // GUARDED_BY(mu_)
  std::list<Key> lru_;            // GUARDED_BY(mu_)
  Counters counters_;             // GUARDED_BY(mu_); bytes/entries kept current
};

}  // namespace callvault

#endif  // CALLVAULT_ENGINE_DICTIONARY_CACHE_H_
