// TopKSelector: the bounded selection step shared by every CPU top-K path. Folder-private.
#ifndef FRESHET_KERNELS_INTERNAL_TOP_K_SELECTOR_H_
#define FRESHET_KERNELS_INTERNAL_TOP_K_SELECTOR_H_

#include <algorithm>
#include <cstdint>
#include <vector>

#include "absl/types/span.h"
#include "common/check.h"
#include "kernels/backend.h"

namespace freshet::kernels::internal {

// Keeps the best `capacity` offered items by RanksBefore order, skipping NaN scores and the rows
// in a sorted exclude list. Items must be offered in strictly increasing row order: that lets the
// exclude check advance a cursor instead of searching the whole list, and it means an item whose
// score merely ties the current k-th best never displaces it (the kept one has the lower row).
//
// Callers filter in bulk before offering: once full(), only scores > threshold() can enter, and
// before that every non-NaN score can. Offer() re-checks both, so the filter is an optimisation,
// never a correctness requirement.
//
// Not thread-safe: one selector per query.
class TopKSelector {
 public:
  // Starts a new selection. `capacity` >= 1. `exclude` is sorted ascending (duplicates allowed,
  // rows outside the matrix are harmless) and must outlive the selection.
  void Reset(int64_t capacity, absl::Span<const int32_t> exclude) {
    FRESHET_CHECK(capacity >= 1);
    capacity_ = capacity;
    heap_.clear();
    // Bounded so that a huge k does not allocate for items that may never arrive.
    heap_.reserve(static_cast<size_t>(std::min<int64_t>(capacity, 4096)));
    exclude_ = exclude.data();
    exclude_end_ = exclude.data() + exclude.size();
    full_ = false;
    threshold_ = 0.0f;
    last_row_ = -1;
  }

  // True once `capacity` items are held; from then on only scores > threshold() can enter.
  bool full() const { return full_; }

  // The score of the worst item held. Only meaningful when full(). Kept in a member rather than
  // read from the heap because the kernels ask for it once per 16 scores.
  float threshold() const { return threshold_; }

  // Offers item `row` with `score`. Rows must increase from one call to the next.
  void Offer(int32_t row, float score) {
    FRESHET_CHECK(row > last_row_);
    last_row_ = row;
    // Rows increase, so a candidate tying the worst held item ranks after it: strictly greater.
    if (full_ ? !(score > threshold_) : score != score) return;
    if (IsExcluded(row)) return;
    const ScoredItem candidate{row, score};
    if (full_) {
      ReplaceWorst(candidate);
    } else {
      heap_.push_back(candidate);
      std::push_heap(heap_.begin(), heap_.end(), kRanksBefore);
      full_ = static_cast<int64_t>(heap_.size()) == capacity_;
    }
    if (full_) threshold_ = heap_.front().score;
  }

  // Replaces *out with the held items, best first, and leaves the selector empty.
  void TakeSorted(std::vector<ScoredItem>* out) {
    std::sort_heap(heap_.begin(), heap_.end(), kRanksBefore);
    out->assign(heap_.begin(), heap_.end());
    heap_.clear();
    full_ = false;
  }

 private:
  // RanksBefore through a lambda, so that the heap algorithms inline it. With it as the heap's
  // "less", the front of the heap is the item that ranks last.
  static constexpr auto kRanksBefore = [](const ScoredItem& a, const ScoredItem& b) {
    return RanksBefore(a, b);
  };

  bool IsExcluded(int32_t row) {
    // Candidates are sparse once the selector fills, so jumping by binary search beats walking a
    // long exclude list (a heavy user's history) one entry at a time.
    exclude_ = std::lower_bound(exclude_, exclude_end_, row);
    return exclude_ != exclude_end_ && *exclude_ == row;
  }

  // Puts `item`, which ranks before the front, in the front's place and sifts it down: one pass
  // instead of std::pop_heap plus std::push_heap.
  void ReplaceWorst(const ScoredItem& item) {
    const size_t n = heap_.size();
    size_t hole = 0;
    for (size_t child = 1; child < n; child = 2 * hole + 1) {
      if (child + 1 < n && RanksBefore(heap_[child], heap_[child + 1])) ++child;
      if (!RanksBefore(item, heap_[child])) break;
      heap_[hole] = heap_[child];
      hole = child;
    }
    heap_[hole] = item;
  }

  int64_t capacity_ = 1;
  bool full_ = false;
  float threshold_ = 0.0f;
  int32_t last_row_ = -1;
  std::vector<ScoredItem> heap_;
  const int32_t* exclude_ = nullptr;
  const int32_t* exclude_end_ = nullptr;
};

}  // namespace freshet::kernels::internal

#endif  // FRESHET_KERNELS_INTERNAL_TOP_K_SELECTOR_H_
