// IdDictionary: external ids (strings; integers as their decimal text) <-> dense rows 0..size-1.
//
// An open-addressing hash table of (hash tag, row) pairs with the ids stored once, by row. Lookups
// can be split into stages so a batch of lookups overlaps its cache misses: Prefetch(hash) fetches
// the probe position, PrefetchCandidate(hash) fetches the id the probe points at, and
// Find/FindOrInsert(id, hash) completes the lookup. Called in that order several lookups apart,
// the final step hits cache; called directly, it is an ordinary hash lookup.
#ifndef FRESHET_LEARNER_ID_DICTIONARY_H_
#define FRESHET_LEARNER_ID_DICTIONARY_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "common/huge_page_allocator.h"

namespace freshet::learner {

// Rows are assigned in order of first appearance. Erase() frees a row, and the next new id reuses
// the most recently freed row before any fresh one. Not thread-safe.
class IdDictionary {
 public:
  static constexpr int32_t kMissing = -1;

  IdDictionary();

  static uint64_t Hash(absl::string_view id);

  // The row of `id`, or kMissing. `hash` must be Hash(id).
  int32_t Find(absl::string_view id) const { return Find(id, Hash(id)); }
  int32_t Find(absl::string_view id, uint64_t hash) const;

  // The row of `id`, assigning a free or the next row if it is new; *inserted tells which.
  int32_t FindOrInsert(absl::string_view id, bool* inserted) {
    return FindOrInsert(id, Hash(id), inserted);
  }
  int32_t FindOrInsert(absl::string_view id, uint64_t hash, bool* inserted);

  // Optional hints before a lookup of `hash` (see the file comment).
  void Prefetch(uint64_t hash) const { __builtin_prefetch(&slots_[hash & mask_]); }
  void PrefetchCandidate(uint64_t hash) const;

  // The external id of a row; `row` must be in [0, size()). Empty for a free row.
  const std::string& ExternalId(int32_t row) const { return ids_[row]; }
  bool IsLive(int32_t row) const { return !ids_[row].empty(); }

  // Rows allocated, free ones included: every row in use is below this.
  int32_t size() const { return static_cast<int32_t>(ids_.size()); }
  // Ids present.
  int32_t live() const { return size() - static_cast<int32_t>(free_.size()); }

  // Removes the id of a live row; its row becomes free.
  void Erase(int32_t row);

  // Replaces the contents: row r holds ids[r]; empty strings are free rows. Ids must be distinct.
  void Restore(std::vector<std::string> ids);

 private:
  struct Slot {
    uint32_t tag;  // high 32 bits of the hash
    int32_t row;   // kMissing: empty
  };

  void Rehash(size_t capacity);

  std::vector<Slot, HugePageAllocator<Slot>> slots_;  // power-of-two size, at most half full
  uint64_t mask_;
  std::vector<std::string, HugePageAllocator<std::string>> ids_;
  std::vector<int32_t> free_;  // free rows; the last is reused first
};

}  // namespace freshet::learner

#endif  // FRESHET_LEARNER_ID_DICTIONARY_H_
