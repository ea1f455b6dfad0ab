// Portable scoring kernels: plain loops the compiler vectorises for whatever the target offers.
// They define the layouts' behaviour for targets without AVX-512 and are the yardstick the AVX-512
// kernels are tested against.
#include <algorithm>
#include <cstdint>

#include "kernels/internal/item_panels.h"
#include "kernels/internal/top_k_selector.h"
#include "kernels/topk.h"

namespace freshet::kernels::internal {

namespace {

void PackItemBlock(const ItemMatrixView& items, int64_t first_row, int64_t rows, float* out) {
  const int dim = items.dim;
  const int64_t padded = (rows + kGroupItems - 1) / kGroupItems * kGroupItems;
  for (int64_t r = 0; r < padded; ++r) {
    float* dst = out + (r / kGroupItems) * dim * kGroupItems + r % kGroupItems;
    if (r < rows) {
      const float* src = items.vectors + (first_row + r) * items.stride;
      for (int c = 0; c < dim; ++c) dst[c * kGroupItems] = src[c];
    } else {
      for (int c = 0; c < dim; ++c) dst[c * kGroupItems] = 0.0f;
    }
  }
}

void ScorePackedBlock(const PackedItemBlock& block, const PackedQueryBatch& queries) {
  const int dim = block.dim;
  for (int64_t first_query = 0; first_query < queries.count; first_query += kQueryGroup) {
    const int group = static_cast<int>(std::min<int64_t>(kQueryGroup, queries.count - first_query));
    const float* packed_queries = queries.data + first_query * dim;
    for (int64_t first_item = 0; first_item < block.rows; first_item += kGroupItems) {
      const float* packed_items = block.data + first_item * dim;
      float acc[kQueryGroup][kGroupItems] = {};
      for (int c = 0; c < dim; ++c) {
        const float* x = packed_items + c * kGroupItems;
        for (int j = 0; j < group; ++j) {
          const float q = packed_queries[c * group + j];
          for (int l = 0; l < kGroupItems; ++l) acc[j][l] = MulAdd(x[l], q, acc[j][l]);
        }
      }
      const int valid = static_cast<int>(std::min<int64_t>(kGroupItems, block.rows - first_item));
      for (int j = 0; j < group; ++j) {
        TopKSelector& selector = queries.selectors[first_query + j];
        for (int l = 0; l < valid; ++l) {
          float score = acc[j][l];
          if (block.bias != nullptr) score += block.bias[first_item + l];
          if (selector.full() ? score > selector.threshold() : score == score) {
            selector.Offer(static_cast<int32_t>(block.first_row + first_item + l), score);
          }
        }
      }
    }
  }
}

}  // namespace

void PackItemRowsPortable(const ItemMatrixView& items, int64_t first_row, int64_t rows,
                          float* out) {
  PackItemBlock(items, first_row, rows, out);
}

void ScorePackedPortable(const PackedItemBlock& block, const PackedQueryBatch& queries) {
  ScorePackedBlock(block, queries);
}

void ScoreRowsPortable(const ItemMatrixView& items, int64_t first_row, int64_t rows,
                       const PackedQueryBatch& queries, float* scratch) {
  PackItemBlock(items, first_row, rows, scratch);
  const PackedItemBlock block{scratch, items.bias == nullptr ? nullptr : items.bias + first_row,
                              first_row, rows, items.dim};
  ScorePackedBlock(block, queries);
}

}  // namespace freshet::kernels::internal
