#include "learner/id_dictionary.h"

#include "absl/hash/hash.h"

namespace freshet::learner {

IdDictionary::IdDictionary() : slots_(1024, Slot{0, kMissing}), mask_(1023) {}

uint64_t IdDictionary::Hash(absl::string_view id) {
  return static_cast<uint64_t>(absl::Hash<absl::string_view>{}(id));
}

void IdDictionary::PrefetchCandidate(uint64_t hash) const {
  const Slot& slot = slots_[hash & mask_];
  if (slot.row != kMissing) {
    const std::string& id = ids_[slot.row];
    __builtin_prefetch(&id);
    __builtin_prefetch(id.data());  // a no-op line for short ids, which live inside the string
  }
}

int32_t IdDictionary::Find(absl::string_view id, uint64_t hash) const {
  const uint32_t tag = static_cast<uint32_t>(hash >> 32);
  for (uint64_t i = hash & mask_;; i = (i + 1) & mask_) {
    const Slot& slot = slots_[i];
    if (slot.row == kMissing) return kMissing;
    if (slot.tag == tag && ids_[slot.row] == id) return slot.row;
  }
}

int32_t IdDictionary::FindOrInsert(absl::string_view id, uint64_t hash, bool* inserted) {
  const uint32_t tag = static_cast<uint32_t>(hash >> 32);
  uint64_t i = hash & mask_;
  for (;; i = (i + 1) & mask_) {
    const Slot& slot = slots_[i];
    if (slot.row == kMissing) break;
    if (slot.tag == tag && ids_[slot.row] == id) {
      *inserted = false;
      return slot.row;
    }
  }
  const int32_t row = static_cast<int32_t>(ids_.size());
  ids_.emplace_back(id);
  slots_[i] = Slot{tag, row};
  *inserted = true;
  if (ids_.size() * 2 > slots_.size()) Rehash(slots_.size() * 2);
  return row;
}

void IdDictionary::Rehash(size_t capacity) {
  slots_.assign(capacity, Slot{0, kMissing});
  mask_ = capacity - 1;
  for (int32_t row = 0; row < static_cast<int32_t>(ids_.size()); ++row) {
    const uint64_t hash = Hash(ids_[row]);
    uint64_t i = hash & mask_;
    while (slots_[i].row != kMissing) i = (i + 1) & mask_;
    slots_[i] = Slot{static_cast<uint32_t>(hash >> 32), row};
  }
}

}  // namespace freshet::learner
