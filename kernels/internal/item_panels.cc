// Layout helpers shared by every instruction set's kernels.
#include "kernels/internal/item_panels.h"

#include <algorithm>
#include <cstdint>

namespace freshet::kernels::internal {

int64_t ItemBlockRows(int dim) {
  constexpr int64_t kBlockBytes = 32 * 1024;
  const int64_t rows = kBlockBytes / (static_cast<int64_t>(sizeof(float)) * dim);
  return std::max<int64_t>(kGroupItems, rows / kGroupItems * kGroupItems);
}

void PackQueries(absl::Span<const TopKQuery> queries, int dim, float* out) {
  const int64_t count = static_cast<int64_t>(queries.size());
  for (int64_t first = 0; first < count; first += kQueryGroup) {
    const int group = static_cast<int>(std::min<int64_t>(kQueryGroup, count - first));
    float* dst = out + first * dim;
    for (int j = 0; j < group; ++j) {
      const float* q = queries[first + j].vector;
      for (int c = 0; c < dim; ++c) dst[c * group + j] = q[c];
    }
  }
}

int64_t ScratchFloats(int64_t rows, int dim) {
  return (rows + kGroupItems - 1) / kGroupItems * kGroupItems * dim;
}

}  // namespace freshet::kernels::internal
