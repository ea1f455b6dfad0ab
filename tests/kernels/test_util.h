// Shared helpers for the kernels tests: seeded item matrices and a brute-force top-K that sorts
// every score, to check the bounded-selection kernels against.
#ifndef FRESHET_TESTS_KERNELS_TEST_UTIL_H_
#define FRESHET_TESTS_KERNELS_TEST_UTIL_H_

#include <algorithm>
#include <cstdint>
#include <limits>
#include <ostream>
#include <vector>

#include "absl/types/span.h"
#include "common/random.h"
#include "kernels/backend.h"
#include "kernels/topk.h"

namespace freshet::kernels {

// So that failing comparisons print items and scores rather than bytes.
inline void PrintTo(const ScoredItem& s, std::ostream* os) {
  *os << "{" << s.item << ", " << s.score << "}";
}

namespace testing_util {

// A row-major matrix that owns its storage. Padding columns (stride > dim) hold NaN, so a kernel
// that reads them returns NaN-scored garbage or drops rows, and the comparison fails.
struct OwnedItems {
  std::vector<float> vectors;
  std::vector<float> bias;
  ItemMatrixView view;
};

inline OwnedItems RandomItems(int64_t rows, int dim, int64_t stride, bool with_bias,
                              uint64_t seed) {
  Rng rng(seed);
  OwnedItems items;
  items.vectors.assign(static_cast<size_t>(std::max<int64_t>(rows, 0) * stride),
                       std::numeric_limits<float>::quiet_NaN());
  for (int64_t r = 0; r < rows; ++r) {
    for (int c = 0; c < dim; ++c) items.vectors[r * stride + c] = 2.0f * rng.UniformFloat() - 1.0f;
  }
  if (with_bias) {
    items.bias.resize(static_cast<size_t>(rows));
    for (float& b : items.bias) b = rng.UniformFloat() - 0.5f;
  }
  items.view = ItemMatrixView{items.vectors.data(), with_bias ? items.bias.data() : nullptr, rows,
                              dim, stride};
  return items;
}

inline std::vector<float> RandomVector(int dim, uint64_t seed) {
  Rng rng(seed);
  std::vector<float> v(static_cast<size_t>(dim));
  for (float& x : v) x = 2.0f * rng.UniformFloat() - 1.0f;
  return v;
}

// Top-K by sorting all (row, score) pairs; scores come from `score_of(row)`.
template <typename ScoreOf>
std::vector<ScoredItem> BruteForceTopK(int64_t rows, ScoreOf score_of,
                                       absl::Span<const int32_t> exclude, int k) {
  std::vector<ScoredItem> all;
  for (int64_t r = 0; r < rows; ++r) {
    const float score = score_of(r);
    if (score != score) continue;
    if (std::binary_search(exclude.begin(), exclude.end(), static_cast<int32_t>(r))) continue;
    all.push_back(ScoredItem{static_cast<int32_t>(r), score});
  }
  std::sort(all.begin(), all.end(), RanksBefore);
  if (static_cast<int64_t>(all.size()) > k) all.resize(static_cast<size_t>(k));
  return all;
}

inline std::vector<ScoredItem> BruteForceTopK(const ItemMatrixView& items, const float* query,
                                              absl::Span<const int32_t> exclude, int k) {
  return BruteForceTopK(
      items.rows, [&](int64_t r) { return ReferenceScore(items, query, r); }, exclude, k);
}

// A sorted exclude list of about `count` random rows in [lo, hi), with duplicates.
inline std::vector<int32_t> RandomExclude(int count, int32_t lo, int32_t hi, uint64_t seed) {
  Rng rng(seed);
  std::vector<int32_t> out;
  if (hi <= lo) return out;
  for (int i = 0; i < count; ++i) {
    out.push_back(lo + static_cast<int32_t>(rng.Below(static_cast<uint32_t>(hi - lo))));
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace testing_util
}  // namespace freshet::kernels

#endif  // FRESHET_TESTS_KERNELS_TEST_UTIL_H_
