#include "learner/id_dictionary.h"

#include "absl/hash/hash.h"

namespace freshet::learner {
namespace {

// a == b, inline for the short ids that dominate (no call into memcmp): ids of 8 bytes or more
// compare as two possibly overlapping 8-byte words at each end plus whatever lies between.
inline bool SameId(const std::string& a, absl::string_view b) {
  const size_t n = a.size();
  if (n != b.size()) return false;
  const char* x = a.data();
  const char* y = b.data();
  if (n < 8) {
    for (size_t i = 0; i < n; ++i) {
      if (x[i] != y[i]) return false;
    }
    return true;
  }
  uint64_t x0, y0, x1, y1;
  __builtin_memcpy(&x0, x, 8);
  __builtin_memcpy(&y0, y, 8);
  __builtin_memcpy(&x1, x + n - 8, 8);
  __builtin_memcpy(&y1, y + n - 8, 8);
  if (x0 != y0 || x1 != y1) return false;
  return n <= 16 || __builtin_memcmp(x + 8, y + 8, n - 16) == 0;
}

}  // namespace

IdDictionary::IdDictionary() : slots_(1024, Slot{0, kMissing}), mask_(1023) {}

uint64_t IdDictionary::Hash(absl::string_view id) {
  return static_cast<uint64_t>(absl::Hash<absl::string_view>{}(id));
}

void IdDictionary::PrefetchCandidate(uint64_t hash) const {
  const Slot& slot = slots_[hash & mask_];
  // The string object only: short ids live inside it, and dereferencing it here to reach a long
  // id's heap buffer would be the very cache miss this avoids.
  if (slot.row != kMissing) __builtin_prefetch(&ids_[slot.row]);
}

int32_t IdDictionary::Find(absl::string_view id, uint64_t hash) const {
  const uint32_t tag = static_cast<uint32_t>(hash >> 32);
  for (uint64_t i = hash & mask_;; i = (i + 1) & mask_) {
    const Slot& slot = slots_[i];
    if (slot.row == kMissing) return kMissing;
    if (slot.tag == tag && SameId(ids_[slot.row], id)) return slot.row;
  }
}

int32_t IdDictionary::FindOrInsert(absl::string_view id, uint64_t hash, bool* inserted) {
  const uint32_t tag = static_cast<uint32_t>(hash >> 32);
  uint64_t i = hash & mask_;
  for (;; i = (i + 1) & mask_) {
    const Slot& slot = slots_[i];
    if (slot.row == kMissing) break;
    if (slot.tag == tag && SameId(ids_[slot.row], id)) {
      *inserted = false;
      return slot.row;
    }
  }
  int32_t row;
  if (free_.empty()) {
    row = static_cast<int32_t>(ids_.size());
    ids_.emplace_back(id);
  } else {
    row = free_.back();
    free_.pop_back();
    ids_[row].assign(id.data(), id.size());
  }
  slots_[i] = Slot{tag, row};
  *inserted = true;
  if (static_cast<size_t>(live()) * 2 > slots_.size()) Rehash(slots_.size() * 2);
  return row;
}

void IdDictionary::Rehash(size_t capacity) {
  slots_.assign(capacity, Slot{0, kMissing});
  mask_ = capacity - 1;
  for (int32_t row = 0; row < static_cast<int32_t>(ids_.size()); ++row) {
    if (ids_[row].empty()) continue;  // a free row
    const uint64_t hash = Hash(ids_[row]);
    uint64_t i = hash & mask_;
    while (slots_[i].row != kMissing) i = (i + 1) & mask_;
    slots_[i] = Slot{static_cast<uint32_t>(hash >> 32), row};
  }
}

void IdDictionary::Erase(int32_t row) {
  uint64_t i = Hash(ids_[row]) & mask_;
  while (slots_[i].row != row) i = (i + 1) & mask_;
  // Backward-shift deletion: move later entries of the probe run into the hole when their home
  // slot does not lie cyclically in (hole, their slot], so every lookup still finds them.
  for (uint64_t j = (i + 1) & mask_; slots_[j].row != kMissing; j = (j + 1) & mask_) {
    const uint64_t home = Hash(ids_[slots_[j].row]) & mask_;
    const bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
    if (!stays) {
      slots_[i] = slots_[j];
      i = j;
    }
  }
  slots_[i] = Slot{0, kMissing};
  std::string().swap(ids_[row]);
  free_.push_back(row);
}

void IdDictionary::Restore(std::vector<std::string> ids) {
  ids_.assign(std::make_move_iterator(ids.begin()), std::make_move_iterator(ids.end()));
  free_.clear();
  for (int32_t row = static_cast<int32_t>(ids_.size()) - 1; row >= 0; --row) {
    if (ids_[row].empty()) free_.push_back(row);  // lowest free row reused first
  }
  size_t capacity = 1024;
  while (static_cast<size_t>(live()) * 2 > capacity) capacity *= 2;
  Rehash(capacity);
}

}  // namespace freshet::learner
