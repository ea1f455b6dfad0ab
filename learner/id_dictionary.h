// IdDictionary: external ids (strings; integers as their decimal text) <-> dense rows 0..size-1.
#ifndef FRESHET_LEARNER_ID_DICTIONARY_H_
#define FRESHET_LEARNER_ID_DICTIONARY_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"

namespace freshet::learner {

// Rows are assigned in order of first appearance and never reused. Not thread-safe.
class IdDictionary {
 public:
  static constexpr int32_t kMissing = -1;

  // The row of `id`, or kMissing.
  int32_t Find(absl::string_view id) const {
    auto it = rows_.find(id);
    return it == rows_.end() ? kMissing : it->second;
  }

  // The row of `id`, assigning the next row if it is new; *inserted tells which.
  int32_t FindOrInsert(absl::string_view id, bool* inserted);

  // The external id of a row; `row` must be in [0, size()).
  const std::string& ExternalId(int32_t row) const { return ids_[row]; }

  int32_t size() const { return static_cast<int32_t>(ids_.size()); }

 private:
  absl::flat_hash_map<std::string, int32_t> rows_;
  std::vector<std::string> ids_;
};

}  // namespace freshet::learner

#endif  // FRESHET_LEARNER_ID_DICTIONARY_H_
