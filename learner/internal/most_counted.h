// The items a fit to a co-occurrence table works over (Ease, Topics): those the table has counted
// most, in row order.
#ifndef FRESHET_LEARNER_INTERNAL_MOST_COUNTED_H_
#define FRESHET_LEARNER_INTERNAL_MOST_COUNTED_H_

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "learner/cooc_model.h"

namespace freshet::learner::internal {

// The rows among [0, catalog) with a count > 0 in `table`, at most `max_items` of them, those
// counted most (ties to the lower row), in row order; `index` (catalog entries) maps each to its
// place in that list and every other row to -1.
inline std::vector<int32_t> MostCountedItems(const CoocModel& table, int32_t catalog, int max_items,
                                             std::vector<int32_t>* index) {
  std::vector<int32_t> items;
  for (int32_t i = 0; i < catalog; ++i) {
    if (table.count(i) > 0) items.push_back(i);
  }
  const size_t m = std::min(items.size(), static_cast<size_t>(std::max(max_items, 0)));
  const auto more = [&](int32_t a, int32_t b) {
    return table.count(a) > table.count(b) || (table.count(a) == table.count(b) && a < b);
  };
  std::nth_element(items.begin(), items.begin() + static_cast<std::ptrdiff_t>(m), items.end(),
                   more);
  items.resize(m);
  std::sort(items.begin(), items.end());
  index->assign(static_cast<size_t>(catalog), -1);
  for (size_t a = 0; a < m; ++a) (*index)[items[a]] = static_cast<int32_t>(a);
  return items;
}

}  // namespace freshet::learner::internal

#endif  // FRESHET_LEARNER_INTERNAL_MOST_COUNTED_H_
