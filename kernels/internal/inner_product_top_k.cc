#include "kernels/internal/inner_product_top_k.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <vector>

#include "common/check.h"
#include "kernels/internal/item_panels.h"
#include "kernels/internal/top_k_selector.h"

namespace freshet::kernels::internal {

namespace {

bool CpuHasAvx512() {
#if FRESHET_AVX512_KERNELS
  static const bool has = __builtin_cpu_supports("avx512f");
  return has;
#else
  return false;
#endif
}

}  // namespace

bool SimdLevelCompiled(SimdLevel level) {
  switch (level) {
    case SimdLevel::kPortable:
      return true;
    case SimdLevel::kAvx512:
      return kAvx512Compiled && CpuHasAvx512();
  }
  return false;
}

SimdLevel BestSimdLevel() {
  return SimdLevelCompiled(SimdLevel::kAvx512) ? SimdLevel::kAvx512 : SimdLevel::kPortable;
}

const char* SimdLevelName(SimdLevel level) {
  switch (level) {
    case SimdLevel::kPortable:
      return "portable";
    case SimdLevel::kAvx512:
      return "avx512";
  }
  return "unknown";
}

void InnerProductTopK(SimdLevel level, const ItemMatrixView& items,
                      absl::Span<const TopKQuery> queries, int k,
                      absl::Span<std::vector<ScoredItem>> results) {
  FRESHET_CHECK(SimdLevelCompiled(level));
  FRESHET_CHECK(k >= 1);
  FRESHET_CHECK(items.dim >= 1 && items.stride >= items.dim);
  FRESHET_CHECK(items.rows >= 0 && items.rows <= std::numeric_limits<int32_t>::max());
  FRESHET_CHECK(items.rows == 0 || items.vectors != nullptr);
  FRESHET_CHECK(results.size() == queries.size());
  for (std::vector<ScoredItem>& result : results) result.clear();
  if (items.rows == 0 || queries.empty()) return;

  const int dim = items.dim;
  const int64_t num_queries = static_cast<int64_t>(queries.size());
  std::vector<TopKSelector> selectors(queries.size());
  for (size_t q = 0; q < queries.size(); ++q) {
    FRESHET_CHECK(queries[q].vector != nullptr);
    selectors[q].Reset(std::min<int64_t>(k, items.rows), queries[q].exclude);
  }
  AlignedFloats packed_queries = MakeAlignedFloats(static_cast<size_t>(num_queries) * dim);
  PackQueries(queries, dim, packed_queries.get());
  const PackedQueryBatch batch{packed_queries.get(), num_queries, dim, selectors.data()};

  // Blocks go in increasing row order, and each block offers its rows in increasing order, which
  // is what the selectors' exclude cursor and tie rule rely on.
  const int64_t block_rows = std::min(ItemBlockRows(dim), items.rows);
  AlignedFloats scratch = MakeAlignedFloats(static_cast<size_t>(ScratchFloats(block_rows, dim)));
  for (int64_t first = 0; first < items.rows; first += block_rows) {
    const int64_t rows = std::min(block_rows, items.rows - first);
    if constexpr (kAvx512Compiled) {
      if (level == SimdLevel::kAvx512) {
        ScoreRowsAvx512(items, first, rows, batch, scratch.get());
        continue;
      }
    }
    ScoreRowsPortable(items, first, rows, batch, scratch.get());
  }
  for (size_t q = 0; q < queries.size(); ++q) selectors[q].TakeSorted(&results[q]);
}

}  // namespace freshet::kernels::internal
