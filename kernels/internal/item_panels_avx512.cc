// AVX-512F scoring kernels. Same contract and bit-identical results as item_panels_portable.cc:
// each lane runs one item's multiply-add chain in dimension order with the same FMA, so only the
// speed differs. The build's baseline need not have AVX-512: the functions defined here (and only
// they: the headers above are included before the target is switched, so their inline functions
// keep the baseline) are compiled for AVX-512F, and are called only on processors that have it.
#include "kernels/internal/item_panels.h"

#if FRESHET_AVX512_KERNELS

// GCC 12 flags the intentionally undefined pass-through operand inside many AVX-512 intrinsics
// as (maybe-)uninitialized (GCC bug 105593, fixed in GCC 13); the warning points into the header.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
#else
#include <immintrin.h>
#endif

#include <algorithm>
#include <cstdint>

#include "kernels/internal/top_k_selector.h"

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,fma"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,fma")
#endif

namespace freshet::kernels::internal {
namespace {

constexpr int kLanes = 16;
constexpr int kPanels = kGroupItems / kLanes;
static_assert(kPanels == 4, "ScoreQueryGroup keeps 4 panels x kQueryGroup accumulators");

__mmask16 FirstLanes(int64_t n) {
  return n >= kLanes ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << n) - 1);
}

// Loads a 16 x 16 tile, row i from src + i * stride: the first `rows` rows and `width` columns,
// zeros elsewhere (nothing outside them is read).
inline void LoadTile(const float* src, int64_t stride, int64_t rows, int width, __m512 r[16]) {
  if (rows == kLanes && width == kLanes) {
#pragma GCC unroll 16
    for (int i = 0; i < kLanes; ++i) r[i] = _mm512_loadu_ps(src + i * stride);
    return;
  }
  const __mmask16 columns = FirstLanes(width);
#pragma GCC unroll 16
  for (int i = 0; i < kLanes; ++i) {
    r[i] = i < rows ? _mm512_maskz_loadu_ps(columns, src + i * stride) : _mm512_setzero_ps();
  }
}

// Transposes a 16 x 16 tile in registers: afterwards r[i][j] holds what r[j][i] held. Four rounds
// of two-input shuffles (32-bit, 64-bit, then two 128-bit-lane rounds), 64 shuffles in all; they
// all issue on one port, which makes this the cost of packing (about 19 cycles per item at dim
// 64, measured; variants that move 128-bit pieces with inserts from memory were no faster).
inline void Transpose16x16(__m512 r[16]) {
  __m512 t[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int i = 0; i < 16; i += 4) {
    const __m512d a = _mm512_castps_pd(t[i]);
    const __m512d b = _mm512_castps_pd(t[i + 1]);
    const __m512d c = _mm512_castps_pd(t[i + 2]);
    const __m512d d = _mm512_castps_pd(t[i + 3]);
    r[i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
    r[i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
    r[i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
    r[i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
  }
  // Now 128-bit lane k of r[4b + m] holds column 4k + m of rows 4b .. 4b + 3; the two rounds
  // below move the four such pieces of each column into one register.
  for (int i = 0; i < 4; ++i) {
    t[i] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0x88);
    t[i + 4] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0xdd);
    t[i + 8] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0x88);
    t[i + 12] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0xdd);
  }
  for (int i = 0; i < 8; ++i) {
    r[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
    r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xdd);
  }
}

// Offers the lanes of `scores` set in `candidates` (lane l is row first_row + l), in lane order.
// Out of line: after the first few blocks almost no panel has a candidate.
[[gnu::noinline]] void OfferLanes(__m512 scores, __mmask16 candidates, int64_t first_row,
                                  TopKSelector& selector) {
  alignas(64) float lanes[kLanes];
  _mm512_store_ps(lanes, scores);
  unsigned bits = candidates;
  while (bits != 0) {
    const int lane = __builtin_ctz(bits);
    selector.Offer(static_cast<int32_t>(first_row + lane), lanes[lane]);
    bits &= bits - 1;
  }
}

// Adds the bias of the panel's `valid` lanes (if any) to `dots` and offers the lanes that can
// enter the selection: once it is full, scores above the k-th best; before, any non-NaN score.
inline void SelectPanel(__m512 dots, const float* bias, __mmask16 valid, int64_t first_row,
                        TopKSelector& selector) {
  const __m512 scores =
      bias == nullptr ? dots : _mm512_add_ps(dots, _mm512_maskz_loadu_ps(valid, bias));
  const __mmask16 candidates =
      valid & (selector.full()
                   ? _mm512_cmp_ps_mask(scores, _mm512_set1_ps(selector.threshold()), _CMP_GT_OQ)
                   : _mm512_cmp_ps_mask(scores, scores, _CMP_ORD_Q));
  if (candidates != 0) OfferLanes(scores, candidates, first_row, selector);
}

// Prefetches into L1 the rows [row, row + 16) of `items` that exist.
inline void PrefetchPanel(const ItemMatrixView& items, int64_t row) {
  const int64_t last = std::min<int64_t>(row + kLanes, items.rows);
  if (row >= last) return;
  const int64_t row_bytes = items.dim * static_cast<int64_t>(sizeof(float));
  const char* first = reinterpret_cast<const char*>(items.vectors + row * items.stride);
  if (items.stride == items.dim) {
    // Contiguous rows: one sweep over the panel's bytes.
    const char* end = first + (last - row) * row_bytes;
    for (const char* line = first; line < end; line += 64) _mm_prefetch(line, _MM_HINT_T0);
    _mm_prefetch(end - 1, _MM_HINT_T0);
    return;
  }
  for (int64_t r = row; r < last; ++r) {
    const char* begin = reinterpret_cast<const char*>(items.vectors + r * items.stride);
    for (int64_t b = 0; b < row_bytes; b += 64) _mm_prefetch(begin + b, _MM_HINT_T0);
    _mm_prefetch(begin + row_bytes - 1, _MM_HINT_T0);  // the last line of an unaligned row
  }
}

// One query against the 16-row panel at `row`; `rows` counts the rows from `row` on (at least 16
// when kFullRows). The panel is transposed in registers and multiplied straight away, so the
// item matrix is read once and nothing is written back: packing would cost the same transposes
// plus a store and a reload of every value, with no other query to amortise them over.
//
// The 64 shuffles per 16 x 16 tile bound this at about 17 cycles per item at dim 64 when the
// items are in cache, about half the time the item's 256 bytes take to arrive from memory on one
// core; the prefetch one panel ahead is what lets the two overlap (measured: 11.5 -> 9.1 ns per
// item at 100k x 64, against a 8.9 ns memory floor; further ahead or into L2 only was slower).
template <bool kFullRows>
void ScoreOnePanel(const ItemMatrixView& items, int64_t row, int64_t rows, const float* query,
                   TopKSelector& selector) {
  PrefetchPanel(items, row + kLanes);  // the next panel
  const int dim = items.dim;
  const int full_dims = dim / kLanes * kLanes;
  const int64_t stride = items.stride;
  const float* src = items.vectors + row * stride;
  const int64_t valid_rows = std::min<int64_t>(kLanes, rows);
  __m512 acc = _mm512_setzero_ps();
  // The branch-free main loop over whole 16-column tiles...
  for (int c0 = 0; c0 < full_dims; c0 += kLanes) {
    __m512 r[kLanes];
    if (kFullRows) {
#pragma GCC unroll 16
      for (int i = 0; i < kLanes; ++i) r[i] = _mm512_loadu_ps(src + i * stride + c0);
    } else {
      LoadTile(src + c0, stride, valid_rows, kLanes, r);
    }
    Transpose16x16(r);
#pragma GCC unroll 16
    for (int j = 0; j < kLanes; ++j) {
      acc = _mm512_fmadd_ps(r[j], _mm512_set1_ps(query[c0 + j]), acc);
    }
  }
  // ...then the last dim % 16 columns, masked.
  if (full_dims < dim) {
    const int width = dim - full_dims;
    __m512 r[kLanes];
    LoadTile(src + full_dims, stride, valid_rows, width, r);
    Transpose16x16(r);
    for (int j = 0; j < width; ++j) {
      acc = _mm512_fmadd_ps(r[j], _mm512_set1_ps(query[full_dims + j]), acc);
    }
  }
  SelectPanel(acc, items.bias == nullptr ? nullptr : items.bias + row, FirstLanes(valid_rows), row,
              selector);
}

void ScoreOneQuery(const ItemMatrixView& items, int64_t first_row, int64_t rows, const float* query,
                   TopKSelector& selector) {
  int64_t done = 0;
  for (; done + kLanes <= rows; done += kLanes) {
    ScoreOnePanel<true>(items, first_row + done, rows - done, query, selector);
  }
  if (done < rows) ScoreOnePanel<false>(items, first_row + done, rows - done, query, selector);
}

void PackItemBlock(const ItemMatrixView& items, int64_t first_row, int64_t rows, float* out) {
  const int dim = items.dim;
  const int64_t padded = (rows + kGroupItems - 1) / kGroupItems * kGroupItems;
  for (int64_t panel = 0; panel < padded; panel += kLanes) {
    float* dst = out + (panel / kGroupItems) * dim * kGroupItems + panel % kGroupItems;
    const int64_t valid_rows = std::clamp<int64_t>(rows - panel, 0, kLanes);
    if (valid_rows == 0) {
      for (int c = 0; c < dim; ++c) _mm512_store_ps(dst + c * kGroupItems, _mm512_setzero_ps());
      continue;
    }
    const float* src = items.vectors + (first_row + panel) * items.stride;
    for (int c0 = 0; c0 < dim; c0 += kLanes) {
      const int width = std::min(kLanes, dim - c0);
      __m512 r[kLanes];
      LoadTile(src + c0, items.stride, valid_rows, width, r);
      Transpose16x16(r);
      for (int j = 0; j < width; ++j) _mm512_store_ps(dst + (c0 + j) * kGroupItems, r[j]);
    }
  }
}

// Selection for one item group of ScoreQueryGroup. Out of line and fed from memory so that the
// accumulators are not live across the selector calls: otherwise GCC keeps some of them on the
// stack inside the multiply-add loop.
template <int kQ>
[[gnu::noinline]] void SelectGroup(const __m512 (&dots)[kPanels][kQ], const PackedItemBlock& block,
                                   int64_t first_item, TopKSelector* selectors) {
  for (int p = 0; p < kPanels; ++p) {
    const int64_t panel = first_item + p * kLanes;
    if (panel >= block.rows) break;
    const __mmask16 valid = FirstLanes(block.rows - panel);
    const float* bias = block.bias == nullptr ? nullptr : block.bias + panel;
    for (int j = 0; j < kQ; ++j) {
      SelectPanel(dots[p][j], bias, valid, block.first_row + panel, selectors[j]);
    }
  }
}

// Scores kQ queries (packed, kQ wide) against every item group of `block` and offers candidates.
// Register tile: 4 panels of 16 items x kQ queries = 4 * kQ accumulators; per dimension 4 loads
// of item values, kQ broadcasts of query values, 4 * kQ FMAs.
template <int kQ>
void ScoreQueryGroup(const PackedItemBlock& block, const float* packed_queries,
                     TopKSelector* selectors) {
  const int dim = block.dim;
  for (int64_t first_item = 0; first_item < block.rows; first_item += kGroupItems) {
    __m512 acc[kPanels][kQ];
#pragma GCC unroll 4
    for (int p = 0; p < kPanels; ++p) {
#pragma GCC unroll 6
      for (int j = 0; j < kQ; ++j) acc[p][j] = _mm512_setzero_ps();
    }
    const float* x = block.data + first_item * dim;
    const float* q = packed_queries;
    for (int c = 0; c < dim; ++c, x += kGroupItems, q += kQ) {
      __m512 items[kPanels];
#pragma GCC unroll 4
      for (int p = 0; p < kPanels; ++p) items[p] = _mm512_load_ps(x + p * kLanes);
#pragma GCC unroll 6
      for (int j = 0; j < kQ; ++j) {
        const __m512 query = _mm512_set1_ps(q[j]);
#pragma GCC unroll 4
        for (int p = 0; p < kPanels; ++p) acc[p][j] = _mm512_fmadd_ps(items[p], query, acc[p][j]);
      }
    }
    SelectGroup<kQ>(acc, block, first_item, selectors);
  }
}

// Prefetches [begin, end) into L2 a slice at a time (see ScorePackedBlock).
class SpreadPrefetch {
 public:
  SpreadPrefetch(const char* begin, const char* end, int64_t slices)
      : next_(begin), end_(end), step_((end - begin + slices - 1) / slices) {}
  void Slice() {
    const char* stop = std::min(end_, next_ + step_);
    for (; next_ < stop; next_ += 64) _mm_prefetch(next_, _MM_HINT_T1);
  }

 private:
  const char* next_;
  const char* end_;
  int64_t step_;
};

// Scores every query group against `block`. Meanwhile the next block's rows (`next`, possibly
// empty) are prefetched into L2 a slice per query group: the scoring is compute-bound, and
// without the prefetch the next block's packing would wait on memory with the FMA units idle.
void ScorePackedBlock(const PackedItemBlock& block, const PackedQueryBatch& queries,
                      absl::Span<const float> next) {
  SpreadPrefetch prefetch(reinterpret_cast<const char*>(next.data()),
                          reinterpret_cast<const char*>(next.data() + next.size()),
                          (queries.count + kQueryGroup - 1) / kQueryGroup);
  for (int64_t first = 0; first < queries.count; first += kQueryGroup) {
    prefetch.Slice();
    const float* packed = queries.data + first * block.dim;
    TopKSelector* selectors = queries.selectors + first;
    switch (std::min<int64_t>(kQueryGroup, queries.count - first)) {
      case 1:
        ScoreQueryGroup<1>(block, packed, selectors);
        break;
      case 2:
        ScoreQueryGroup<2>(block, packed, selectors);
        break;
      case 3:
        ScoreQueryGroup<3>(block, packed, selectors);
        break;
      case 4:
        ScoreQueryGroup<4>(block, packed, selectors);
        break;
      case 5:
        ScoreQueryGroup<5>(block, packed, selectors);
        break;
      default:
        ScoreQueryGroup<6>(block, packed, selectors);
        break;
    }
  }
}

}  // namespace

void PackItemRowsAvx512(const ItemMatrixView& items, int64_t first_row, int64_t rows, float* out) {
  PackItemBlock(items, first_row, rows, out);
}

void ScorePackedAvx512(const PackedItemBlock& block, const PackedQueryBatch& queries,
                       absl::Span<const float> next) {
  ScorePackedBlock(block, queries, next);
}

void ScoreListedRowsAvx512(const ItemMatrixView& items, absl::Span<const int32_t> rows,
                           const float* query, TopKSelector& selector) {
  // The rows are scattered over the matrix: ask for all of them before the first is needed.
  const int64_t row_bytes = items.dim * static_cast<int64_t>(sizeof(float));
  for (const int32_t row : rows) {
    const char* begin = reinterpret_cast<const char*>(items.vectors + row * items.stride);
    for (int64_t b = 0; b < row_bytes; b += 64) _mm_prefetch(begin + b, _MM_HINT_T0);
    _mm_prefetch(begin + row_bytes - 1, _MM_HINT_T0);
  }
  const int dim = items.dim;
  const int64_t count = static_cast<int64_t>(rows.size());
  for (int64_t first = 0; first < count; first += kLanes) {
    const int64_t n = std::min<int64_t>(kLanes, count - first);
    const float* src[kLanes];
    for (int i = 0; i < kLanes; ++i) {
      src[i] = items.vectors + rows[first + std::min<int64_t>(i, n - 1)] * items.stride;
    }
    // As ScoreOnePanel: tiles of 16 rows x 16 dims transposed in registers, so that each lane
    // runs its row's multiply-add chain in dimension order.
    __m512 acc = _mm512_setzero_ps();
    for (int c0 = 0; c0 < dim; c0 += kLanes) {
      const int width = std::min(kLanes, dim - c0);
      const __mmask16 columns = FirstLanes(width);
      __m512 r[kLanes];
#pragma GCC unroll 16
      for (int i = 0; i < kLanes; ++i) r[i] = _mm512_maskz_loadu_ps(columns, src[i] + c0);
      Transpose16x16(r);
      for (int j = 0; j < width; ++j) {
        acc = _mm512_fmadd_ps(r[j], _mm512_set1_ps(query[c0 + j]), acc);
      }
    }
    alignas(64) float scores[kLanes];
    _mm512_store_ps(scores, acc);
    for (int64_t l = 0; l < n; ++l) {
      const int32_t row = rows[first + l];
      // The bias in one rounded add, as SelectPanel.
      selector.Offer(row, items.bias == nullptr ? scores[l] : scores[l] + items.bias[row]);
    }
  }
}

void ScoreRowsAvx512(const ItemMatrixView& items, int64_t first_row, int64_t rows,
                     const PackedQueryBatch& queries, float* scratch) {
  if (queries.count == 1) {
    // A packed single query is the query vector itself.
    ScoreOneQuery(items, first_row, rows, queries.data, queries.selectors[0]);
    return;
  }
  PackItemBlock(items, first_row, rows, scratch);
  const PackedItemBlock block{scratch, items.bias == nullptr ? nullptr : items.bias + first_row,
                              first_row, rows, items.dim};
  const int64_t next_first = first_row + rows;
  const int64_t next_rows = std::min(rows, items.rows - next_first);
  const absl::Span<const float> next =
      next_rows <= 0 ? absl::Span<const float>()
                     : absl::MakeConstSpan(items.vectors + next_first * items.stride,
                                           (next_rows - 1) * items.stride + items.dim);
  ScorePackedBlock(block, queries, next);
}

}  // namespace freshet::kernels::internal

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

#endif  // FRESHET_AVX512_KERNELS
