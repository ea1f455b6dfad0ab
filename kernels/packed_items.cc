#include "kernels/packed_items.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "common/status_macros.h"
#include "kernels/internal/inner_product_top_k.h"
#include "kernels/internal/item_panels.h"
#include "kernels/internal/top_k_args.h"
#include "kernels/internal/top_k_selector.h"

namespace freshet::kernels {

static_assert(PackedItemMatrix::kGroupRows == internal::kGroupItems,
              "a versioned group is one transposed item group of the kernels");

PackedItemMatrix::PackedItemMatrix(const Options& options)
    : portable_(options.portable || !internal::SimdLevelCompiled(internal::SimdLevel::kAvx512)) {}

void PackedItemMatrix::Clear() {
  rows_ = 0;
  bias_ = nullptr;
  versions_.clear();
  group_rows_.clear();
}

absl::Status PackedItemMatrix::Update(const ItemMatrixView& items,
                                      absl::Span<const uint32_t> versions) {
  FRESHET_RETURN_IF_ERROR(internal::ValidateTopKArgs(items, {}, /*k=*/1, /*num_results=*/0));
  if (items.dim != dim_) {
    Clear();
    data_.reset();
    capacity_rows_ = 0;
    dim_ = items.dim;
  }
  const int64_t groups = (items.rows + kGroupRows - 1) / kGroupRows;
  const int64_t needed = groups * kGroupRows;
  if (needed > capacity_rows_) {
    // Grows by half again at least, so that a catalogue growing an item at a time is not copied
    // on every call; what is packed keeps its place.
    const int64_t capacity = std::max(
        needed, (capacity_rows_ + capacity_rows_ / 2 + kGroupRows - 1) / kGroupRows * kGroupRows);
    std::unique_ptr<float[], FreeAligned> grown(
        new (std::align_val_t{64}) float[static_cast<size_t>(capacity * dim_)]);
    if (data_ != nullptr) {
      std::memcpy(grown.get(), data_.get(),
                  static_cast<size_t>(capacity_rows_ * dim_) * sizeof(float));
    }
    data_ = std::move(grown);
    capacity_rows_ = capacity;
  }
  versions_.resize(static_cast<size_t>(groups), 0);
  group_rows_.resize(static_cast<size_t>(groups), 0);
  for (int64_t g = 0; g < groups; ++g) {
    const int64_t first = g * kGroupRows;
    const int32_t n = static_cast<int32_t>(std::min<int64_t>(kGroupRows, items.rows - first));
    const uint32_t version = static_cast<size_t>(g) < versions.size() ? versions[g] : 0;
    if (group_rows_[g] == n && versions_[g] == version) continue;
    float* out = data_.get() + first * dim_;
    if constexpr (internal::kAvx512Compiled) {
      if (!portable_) {
        internal::PackItemRowsAvx512(items, first, n, out);
      }
    }
    if (portable_) internal::PackItemRowsPortable(items, first, n, out);
    versions_[g] = version;
    group_rows_[g] = n;
    ++groups_packed_;
  }
  rows_ = items.rows;
  bias_ = items.bias;
  return absl::OkStatus();
}

absl::Status PackedItemMatrix::TopK(absl::Span<const TopKQuery> queries, int k,
                                    absl::Span<std::vector<ScoredItem>> results) const {
  // The packed copy as a view, for the same checks (and messages) as every backend.
  const ItemMatrixView view{data_.get(), bias_, rows_, std::max(1, dim_), std::max(1, dim_)};
  FRESHET_RETURN_IF_ERROR(internal::ValidateTopKArgs(view, queries, k, results.size()));
  for (std::vector<ScoredItem>& result : results) result.clear();
  if (rows_ == 0 || queries.empty()) return absl::OkStatus();

  const int dim = dim_;
  const int64_t count = static_cast<int64_t>(queries.size());
  std::vector<internal::TopKSelector> selectors(queries.size());
  for (size_t q = 0; q < queries.size(); ++q) {
    selectors[q].Reset(std::min<int64_t>(k, rows_), queries[q].exclude);
  }
  internal::AlignedFloats packed_queries =
      internal::MakeAlignedFloats(static_cast<size_t>(count) * dim);
  internal::PackQueries(queries, dim, packed_queries.get());
  const internal::PackedQueryBatch batch{packed_queries.get(), count, dim, selectors.data()};

  // Blocks in increasing row order, rows offered in increasing order within each: what the
  // selectors' exclude cursor and tie rule rely on (as in InnerProductTopK). Block sizes are
  // multiples of kGroupRows, so each block starts at a group of the packed copy.
  const int64_t block_rows = internal::ItemBlockRows(dim);
  for (int64_t first = 0; first < rows_; first += block_rows) {
    const int64_t rows = std::min(block_rows, rows_ - first);
    const internal::PackedItemBlock block{
        data_.get() + first * dim, bias_ == nullptr ? nullptr : bias_ + first, first, rows, dim};
    if (portable_ || !internal::kAvx512Compiled) {
      internal::ScorePackedPortable(block, batch);
      continue;
    }
    const int64_t next_first = first + rows;
    const int64_t next_rows = std::min(block_rows, rows_ - next_first);
    const absl::Span<const float> next =
        next_rows <= 0 ? absl::Span<const float>()
                       : absl::MakeConstSpan(data_.get() + next_first * dim,
                                             internal::ScratchFloats(next_rows, dim));
    if constexpr (internal::kAvx512Compiled) internal::ScorePackedAvx512(block, batch, next);
  }
  for (size_t q = 0; q < queries.size(); ++q) selectors[q].TakeSorted(&results[q]);
  return absl::OkStatus();
}

}  // namespace freshet::kernels
