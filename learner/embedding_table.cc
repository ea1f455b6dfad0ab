#include "learner/embedding_table.h"

#include <algorithm>
#include <cstring>

#include "common/check.h"
#include "common/huge_page_allocator.h"

namespace freshet::learner {

EmbeddingTable::EmbeddingTable(int dim) : dim_(dim), stride_((dim + 15) / 16 * 16) {
  FRESHET_CHECK(dim > 0);
}

void EmbeddingTable::InitialRow(int64_t row, int dim, float init_std, uint64_t seed, float* out) {
  uint64_t mix = seed ^ (static_cast<uint64_t>(row) * 0x9E3779B97F4A7C15ull);
  Rng rng(SplitMix64(mix));
  for (int j = 0; j < dim; ++j) {
    out[j] = init_std == 0 ? 0.0f : static_cast<float>(rng.Normal()) * init_std;
  }
}

void EmbeddingTable::Resize(int64_t rows, float init_std, uint64_t seed) {
  if (rows <= rows_) return;
  if (rows > capacity_) {
    // Geometric growth keeps appends amortised O(1) per row.
    const int64_t capacity = std::max<int64_t>({rows, capacity_ * 3 / 2, 1024});
    const size_t bytes = static_cast<size_t>(capacity * stride_) * sizeof(float);
    // Rows start on cache lines; large tables, read at random rows, get huge pages.
    float* fresh = static_cast<float*>(AllocateForRandomAccess(bytes, 64));
    if (rows_ > 0)
      std::memcpy(fresh, data_.get(), static_cast<size_t>(rows_ * stride_) * sizeof(float));
    data_.reset(fresh);
    capacity_ = capacity;
  }
  for (int64_t r = rows_; r < rows; ++r) {
    float* row = Row(r);
    InitialRow(r, dim_, init_std, seed, row);
    std::fill(row + dim_, row + stride_, 0.0f);  // padding stays zero for the kernels
  }
  adagrad_.resize(static_cast<size_t>(rows), 0.0f);
  rows_ = rows;
}

}  // namespace freshet::learner
