#include "learner/embedding_table.h"

#include <algorithm>
#include <cstring>
#include <new>

#include <sys/mman.h>

#include "common/check.h"

namespace freshet::learner {
namespace {
constexpr size_t kHugePage = size_t{2} << 20;
}  // namespace

EmbeddingTable::EmbeddingTable(int dim) : dim_(dim), stride_((dim + 15) / 16 * 16) {
  FRESHET_CHECK(dim > 0);
}

void EmbeddingTable::Resize(int64_t rows, float init_std, uint64_t seed) {
  if (rows <= rows_) return;
  if (rows > capacity_) {
    // Geometric growth keeps appends amortised O(1) per row.
    const int64_t capacity = std::max<int64_t>({rows, capacity_ * 3 / 2, 1024});
    const size_t bytes = static_cast<size_t>(capacity * stride_) * sizeof(float);
    // Large tables are read at random rows: 2 MiB pages cut the TLB misses of those reads, so
    // they are aligned for, and advised to use, transparent huge pages.
    const size_t align = bytes >= kHugePage ? kHugePage : 64;
    float* fresh = static_cast<float*>(std::aligned_alloc(align, (bytes + align - 1) / align * align));
    if (fresh == nullptr) throw std::bad_alloc();
    if (align == kHugePage) madvise(fresh, (bytes + align - 1) / align * align, MADV_HUGEPAGE);
    if (rows_ > 0) std::memcpy(fresh, data_.get(), static_cast<size_t>(rows_ * stride_) * sizeof(float));
    data_.reset(fresh);
    capacity_ = capacity;
  }
  for (int64_t r = rows_; r < rows; ++r) {
    float* row = Row(r);
    uint64_t mix = seed ^ (static_cast<uint64_t>(r) * 0x9E3779B97F4A7C15ull);
    Rng rng(SplitMix64(mix));
    for (int j = 0; j < dim_; ++j) row[j] = init_std == 0 ? 0.0f : static_cast<float>(rng.Normal()) * init_std;
    std::fill(row + dim_, row + stride_, 0.0f);  // padding stays zero for the kernels
  }
  adagrad_.resize(static_cast<size_t>(rows), 0.0f);
  rows_ = rows;
}

}  // namespace freshet::learner
