// DirtyRows: the rows whose persisted state changed since they were last taken, each listed once.
// Marking is O(1) (a flag per row plus an append), so learning can mark every row it writes.
#ifndef FRESHET_LEARNER_DIRTY_ROWS_H_
#define FRESHET_LEARNER_DIRTY_ROWS_H_

#include <algorithm>
#include <cstdint>
#include <vector>

#include "absl/types/span.h"

namespace freshet::learner {

// Not thread-safe.
class DirtyRows {
 public:
  void Mark(int32_t row) {
    if (static_cast<size_t>(row) >= flags_.size()) flags_.resize(static_cast<size_t>(row) + 1, 0);
    if (flags_[row] == 0) {
      flags_[row] = 1;
      rows_.push_back(row);
    }
    for (DirtyRows* also : also_) also->Mark(row);
    if (track_versions_) {
      const size_t group = static_cast<size_t>(row) / kVersionGroupRows;
      if (group >= versions_.size()) versions_.resize(group + 1, 0);
      ++versions_[group];
      if (static_cast<size_t>(row) >= row_versions_.size()) {
        row_versions_.resize(static_cast<size_t>(row) + 1, 0);
      }
      ++row_versions_[row];
    }
  }
  // From now on, also keeps a version per group of kVersionGroupRows rows that every Mark() of one
  // of its rows moves, and one per row, Take() or not: a consumer that copies rows (a packed
  // scoring copy, kernels::PackedItemMatrix) re-copies just the groups, or the rows, whose version
  // moved since it looked.
  static constexpr int kVersionGroupRows = 64;
  void TrackGroupVersions() { track_versions_ = true; }
  // By group; groups beyond the end have never been marked.
  absl::Span<const uint32_t> group_versions() const { return versions_; }
  // By row; rows beyond the end have never been marked.
  absl::Span<const uint32_t> row_versions() const { return row_versions_; }
  // Every row marked here from now on is marked in `also` too (another consumer of the same
  // changes, taking them on its own schedule: replica exchanges, publishing to serving replicas).
  void AddAlso(DirtyRows* also) { also_.push_back(also); }
  void RemoveAlso(DirtyRows* also) {
    also_.erase(std::remove(also_.begin(), also_.end(), also), also_.end());
  }
  // Marks rows [0, n).
  void MarkAll(int32_t n) {
    for (int32_t row = 0; row < n; ++row) Mark(row);
  }
  bool IsMarked(int32_t row) const {
    return static_cast<size_t>(row) < flags_.size() && flags_[row] != 0;
  }
  size_t size() const { return rows_.size(); }
  bool empty() const { return rows_.empty(); }

  // The marked rows in marking order; clears the set.
  std::vector<int32_t> Take() {
    for (int32_t row : rows_) flags_[row] = 0;
    std::vector<int32_t> out;
    out.swap(rows_);
    return out;
  }

 private:
  std::vector<uint8_t> flags_;
  std::vector<int32_t> rows_;
  std::vector<DirtyRows*> also_;
  bool track_versions_ = false;
  std::vector<uint32_t> versions_;
  std::vector<uint32_t> row_versions_;
};

}  // namespace freshet::learner

#endif  // FRESHET_LEARNER_DIRTY_ROWS_H_
