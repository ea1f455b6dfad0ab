// AVX-512 VNNI int8 scan and AVX-512F exact re-scoring for the two-stage top-K
// (quantized_items.h). As in item_panels_avx512.cc, only the functions defined here are compiled
// for these instruction sets, and they are called only on processors that have them.
#include "kernels/internal/quantized_items.h"

#if FRESHET_AVX512_KERNELS

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
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512vnni,fma"))), \
                             apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vnni,fma")
#endif

namespace freshet::kernels::internal {
namespace {

constexpr int kLanes = 16;
constexpr int kPanels = kGroupItems / kLanes;
constexpr int kQuadBytes = 4 * kGroupItems;  // one quad of dims of a group

// acc += the four byte products of each lane (unsigned items x signed query), in place. Written
// out because GCC 12 copies the accumulators through the stack around the intrinsic's result.
inline void DotBytes(__m512i& acc, __m512i items, __m512i query) {
  asm("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(items), "v"(query));
}

__mmask16 FirstLanes(int64_t n) {
  return n >= kLanes ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << n) - 1);
}

// The lanes of `mask` (lane l is row first_row + l): those whose upper bound still reaches the
// threshold become candidates, and their lower bounds fl(fl(sigma P + b) - m) go to q.lower. Out of
// line: after the first blocks few panels have any.
[[gnu::noinline]] void CollectLanes(__m512 sigma, __m512 dot, __m512 bias, float margin,
                                    __m512 upper, __mmask16 mask, int64_t first_row,
                                    QuantizedQuery& q) {
  alignas(64) float lower[kLanes], u[kLanes];
  _mm512_store_ps(lower, _mm512_sub_ps(_mm512_fmadd_ps(sigma, dot, bias), _mm512_set1_ps(margin)));
  _mm512_store_ps(u, upper);
  unsigned bits = mask;
  if (q.rows->size() < q.count + kLanes) {
    q.rows->resize(2 * (q.count + kLanes));
    q.upper->resize(q.rows->size());
  }
  int32_t* rows = q.rows->data();
  float* uppers = q.upper->data();
  size_t n = q.count;
  while (bits != 0) {
    const int lane = __builtin_ctz(bits);
    bits &= bits - 1;
    if (!(u[lane] >= q.lower->threshold())) continue;
    const int32_t row = static_cast<int32_t>(first_row + lane);
    rows[n] = row;
    uppers[n] = u[lane];
    ++n;
    q.lower->Offer(row, lower[lane]);
  }
  q.count = n;
  if (n >= q.compact_at) {
    // Drops the candidates whose upper bound fell below the threshold.
    const float threshold = q.lower->threshold();
    size_t kept = 0;
    for (size_t i = 0; i < n; ++i) {
      if (uppers[i] >= threshold) {
        rows[kept] = rows[i];
        uppers[kept] = uppers[i];
        ++kept;
      }
    }
    q.count = kept;
    q.compact_at = std::max<size_t>(1024, 2 * kept);
  }
}

// Bounds for one item group of ScanGroup (quantized_items.h has the evaluation and why it bounds
// the exact score). Out of line and fed from memory, as SelectGroup in item_panels_avx512.cc.
template <int kQ>
[[gnu::noinline]] void BoundGroup(const __m512i (&acc)[kPanels][kQ],
                                  const QuantizedItemBlock& block, int64_t first_item,
                                  QuantizedQuery* queries) {
  // Locals, so that nothing is reloaded after each CollectLanes call.
  const int64_t first_row = block.first_row + first_item;
  const float* const scale = block.scale + first_item;
  const float* const bias = block.bias == nullptr ? nullptr : block.bias + first_item;
  const float error = block.error[first_item / kGroupItems];
  const float norm = block.norm[first_item / kGroupItems];
  __mmask16 valid[kPanels];
  __m512 b[kPanels];
  for (int p = 0; p < kPanels; ++p) {
    valid[p] = FirstLanes(std::max<int64_t>(0, block.rows - first_item - p * kLanes));
    b[p] =
        bias == nullptr ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(valid[p], bias + p * kLanes);
  }
  for (int j = 0; j < kQ; ++j) {
    QuantizedQuery& q = queries[j];
    const __m512 query_scale = _mm512_set1_ps(q.scale);
    // m, rounded twice (the bound allows for it).
    const float margin = std::fma(q.l1, error, std::fma(q.mixed, norm, q.slack));
    const __m512 m = _mm512_set1_ps(margin);
    const __m512 threshold = _mm512_set1_ps(q.lower->threshold());
    __m512 sigma[kPanels], dot[kPanels], upper[kPanels];
    __mmask16 mask[kPanels];
#pragma GCC unroll 4
    for (int p = 0; p < kPanels; ++p) {
      // The scales cover whole groups, so full loads stay inside them.
      sigma[p] = _mm512_mul_ps(query_scale, _mm512_loadu_ps(scale + p * kLanes));
      dot[p] = _mm512_cvtepi32_ps(acc[p][j]);  // exact: |P| < 2^24
      upper[p] = _mm512_fmadd_ps(sigma[p], dot[p], bias == nullptr ? m : _mm512_add_ps(b[p], m));
      mask[p] = _mm512_mask_cmp_ps_mask(valid[p], upper[p], threshold, _CMP_GE_OQ);
    }
    if ((mask[0] | mask[1] | mask[2] | mask[3]) == 0) continue;
    for (int p = 0; p < kPanels; ++p) {
      if (mask[p] != 0) {
        CollectLanes(sigma[p], dot[p], b[p], margin, upper[p], mask[p], first_row + p * kLanes, q);
      }
    }
  }
}

// The seeding pass's counterpart of BoundGroup: raises each query's buckets by the lower bounds of
// the group's eligible rows.
template <int kQ>
[[gnu::noinline]] void SeedGroup(const __m512i (&acc)[kPanels][kQ], const QuantizedItemBlock& block,
                                 int64_t first_item, QuantizedQuery* queries) {
  const int64_t first_row = block.first_row + first_item;
  const float* const scale = block.scale + first_item;
  const float* const bias = block.bias == nullptr ? nullptr : block.bias + first_item;
  const float error = block.error[first_item / kGroupItems];
  const float norm = block.norm[first_item / kGroupItems];
  const int64_t valid_rows = std::min<int64_t>(kGroupItems, block.rows - first_item);
  const uint64_t valid = valid_rows == 64 ? ~uint64_t{0} : (uint64_t{1} << valid_rows) - 1;
  for (int j = 0; j < kQ; ++j) {
    QuantizedQuery& q = queries[j];
    uint64_t eligible = valid;
    q.seed_exclude =
        std::lower_bound(q.seed_exclude, q.seed_exclude_end, static_cast<int32_t>(first_row));
    for (; q.seed_exclude != q.seed_exclude_end && *q.seed_exclude < first_row + kGroupItems;
         ++q.seed_exclude) {
      eligible &= ~(uint64_t{1} << (*q.seed_exclude - first_row));
    }
    const __m512 query_scale = _mm512_set1_ps(q.scale);
    const __m512 m = _mm512_set1_ps(std::fma(q.l1, error, std::fma(q.mixed, norm, q.slack)));
#pragma GCC unroll 4
    for (int p = 0; p < kPanels; ++p) {
      const __mmask16 lanes = static_cast<__mmask16>(eligible >> (p * kLanes));
      const __m512 b =
          bias == nullptr ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(lanes, bias + p * kLanes);
      const __m512 sigma = _mm512_mul_ps(query_scale, _mm512_loadu_ps(scale + p * kLanes));
      const __m512 lower =
          _mm512_sub_ps(_mm512_fmadd_ps(sigma, _mm512_cvtepi32_ps(acc[p][j]), b), m);
      float* bucket = q.buckets + p * kLanes;
      _mm512_store_ps(
          bucket, _mm512_mask_max_ps(_mm512_load_ps(bucket), lanes, _mm512_load_ps(bucket), lower));
    }
  }
}

// kQ queries against every item group of `block`: 4 panels of 16 items x kQ queries of int32
// accumulators; per quad of dims 4 loads, kQ broadcasts, 4 * kQ vpdpbusd (4 multiply-adds each).
template <int kQ>
void ScanGroup(const QuantizedItemBlock& block, const int32_t* packed_queries,
               QuantizedQuery* queries, bool seed) {
  const int quads = QuantizedQuads(block.dim);
  for (int64_t first_item = 0; first_item < block.rows; first_item += kGroupItems) {
    __m512i acc[kPanels][kQ];
#pragma GCC unroll 6
    for (int j = 0; j < kQ; ++j) {
      const __m512i start = _mm512_set1_epi32(queries[j].offset);
#pragma GCC unroll 4
      for (int p = 0; p < kPanels; ++p) acc[p][j] = start;
    }
    const uint8_t* x = block.data + first_item / kGroupItems * quads * kQuadBytes;
    const int32_t* q = packed_queries;
    for (int c = 0; c < quads; ++c, x += kQuadBytes, q += kQ) {
      __m512i items[kPanels];
#pragma GCC unroll 4
      for (int p = 0; p < kPanels; ++p) {
        items[p] = _mm512_load_si512(reinterpret_cast<const void*>(x + p * 64));
      }
#pragma GCC unroll 6
      for (int j = 0; j < kQ; ++j) {
        const __m512i query = _mm512_set1_epi32(q[j]);
#pragma GCC unroll 4
        for (int p = 0; p < kPanels; ++p) DotBytes(acc[p][j], items[p], query);
      }
    }
    // A copy, so that the accumulators themselves never leave registers.
    __m512i sums[kPanels][kQ];
#pragma GCC unroll 4
    for (int p = 0; p < kPanels; ++p) {
#pragma GCC unroll 6
      for (int j = 0; j < kQ; ++j) sums[p][j] = acc[p][j];
    }
    if (seed) {
      SeedGroup<kQ>(sums, block, first_item, queries);
    } else {
      BoundGroup<kQ>(sums, block, first_item, queries);
    }
  }
}

// One row of QuantizeItemGroup (quantized_items.cc, QuantizeVector): the same arithmetic, 16 dims
// at a time. vcvtps2dq rounds to nearest even under the default rounding mode, as lrint does.
struct RowQuantization {
  float scale = 0.0f;
  double error = 0.0;
  double l1 = 0.0;
  int64_t abs_sum = 0;
  bool wild = false;
};

RowQuantization QuantizeRowAvx512(const float* x, int dim, int quads, int lane, uint8_t* out) {
  RowQuantization r;
  const __m512 abs_mask = _mm512_castsi512_ps(_mm512_set1_epi32(0x7fffffff));
  __m512 amax_v = _mm512_setzero_ps();
  __m512d l1_lo = _mm512_setzero_pd();
  __m512d l1_hi = _mm512_setzero_pd();
  for (int c = 0; c < dim; c += kLanes) {
    const __mmask16 m = FirstLanes(dim - c);
    const __m512 a = _mm512_and_ps(_mm512_maskz_loadu_ps(m, x + c), abs_mask);
    amax_v = _mm512_max_ps(amax_v, a);
    l1_lo = _mm512_add_pd(l1_lo, _mm512_cvtps_pd(_mm512_castps512_ps256(a)));
    l1_hi = _mm512_add_pd(
        l1_hi, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a), 1))));
  }
  // A NaN or an infinity makes the sum NaN or infinite (the max alone may drop a NaN).
  r.l1 = _mm512_reduce_add_pd(_mm512_add_pd(l1_lo, l1_hi));
  if (!(r.l1 <= kMaxNorm)) {
    r.wild = true;
    return r;
  }
  const float amax = _mm512_reduce_max_ps(amax_v);
  const float scale = amax / 127.0f;
  if (!(scale >= kMinRowScale)) {
    // Stored as zeros (the caller filled the group with them); the row itself is the error.
    r.error = static_cast<double>(amax) + kTinyRowError;
    return r;
  }
  const __m512 inverse = _mm512_set1_ps(127.0f / amax);
  const __m512 scale_v = _mm512_set1_ps(scale);
  const __m512i lo = _mm512_set1_epi32(-127);
  const __m512i hi = _mm512_set1_epi32(127);
  const __m512i offset = _mm512_set1_epi32(128);
  __m512i abs_sum = _mm512_setzero_si512();
  __m512 error = _mm512_setzero_ps();
  alignas(16) uint32_t bytes[kLanes / 4];
  for (int c = 0; c < dim; c += kLanes) {
    const __mmask16 m = FirstLanes(dim - c);
    const __m512 v = _mm512_maskz_loadu_ps(m, x + c);
    __m512i q = _mm512_cvtps_epi32(_mm512_mul_ps(v, inverse));
    q = _mm512_max_epi32(_mm512_min_epi32(q, hi), lo);
    abs_sum = _mm512_add_epi32(abs_sum, _mm512_abs_epi32(q));
    // |x - scale v|, rounded once, as fma(-scale, v, x).
    const __m512 e = _mm512_fnmadd_ps(scale_v, _mm512_cvtepi32_ps(q), v);
    error = _mm512_max_ps(error, _mm512_and_ps(e, abs_mask));
    // Masked-off dims are 0 here, stored as 128 like the padding.
    _mm_store_si128(reinterpret_cast<__m128i*>(bytes),
                    _mm512_cvtepi32_epi8(_mm512_add_epi32(q, offset)));
    for (int t = 0; t < kLanes / 4 && c / 4 + t < quads; ++t) {
      std::memcpy(out + static_cast<int64_t>(c / 4 + t) * kQuadBytes + 4 * lane, &bytes[t], 4);
    }
  }
  r.scale = scale;
  r.error = static_cast<double>(_mm512_reduce_max_ps(error)) * (1.0 + 0x1p-20) + kTinyRowError;
  r.abs_sum = _mm512_reduce_add_epi32(abs_sum);
  return r;
}

}  // namespace

void KthLargest::Offer(int32_t row, float value) {
  if (!(value > threshold_)) return;  // cannot move the k-th largest
  exclude_ = std::lower_bound(exclude_, exclude_end_, row);
  if (exclude_ != exclude_end_ && *exclude_ == row) return;
  if (slot_vectors_ == 0) {
    values_[held_++] = value;
    if (held_ == values_.size()) Shrink();
    return;
  }
  // The value takes the place of the smallest held (the threshold), then the new minimum. In
  // registers, with whole-vector stores: a scalar store followed by a vector load of the same bytes
  // would stall on store forwarding.
  const __m512 old = _mm512_set1_ps(threshold_);
  __m512 slots[kSlots / kLanes];
  bool placed = false;
  __m512 low = _mm512_set1_ps(std::numeric_limits<float>::infinity());
  for (int v = 0; v < slot_vectors_; ++v) {
    slots[v] = _mm512_load_ps(slots_ + v * kLanes);
    if (!placed) {
      const unsigned at = _mm512_cmp_ps_mask(slots[v], old, _CMP_EQ_OQ);
      if (at != 0) {
        slots[v] =
            _mm512_mask_mov_ps(slots[v], static_cast<__mmask16>(at & -at), _mm512_set1_ps(value));
        _mm512_store_ps(slots_ + v * kLanes, slots[v]);
        placed = true;
      }
    }
    low = _mm512_min_ps(low, slots[v]);
  }
  threshold_ = _mm512_reduce_min_ps(low);
}

double MaxAbsBiasAvx512(const float* bias, int64_t rows) {
  const __m512 abs_mask = _mm512_castsi512_ps(_mm512_set1_epi32(0x7fffffff));
  const __m512 largest = _mm512_set1_ps(std::numeric_limits<float>::max());
  __m512 m = _mm512_setzero_ps();
  __mmask16 wild = 0;
  for (int64_t i = 0; i < rows; i += kLanes) {
    const __mmask16 lanes = FirstLanes(rows - i);
    const __m512 a = _mm512_and_ps(_mm512_maskz_loadu_ps(lanes, bias + i), abs_mask);
    // Not <= the largest float: an infinity, or a NaN (unordered).
    wild |= _mm512_cmp_ps_mask(a, largest, _CMP_NLE_UQ);
    m = _mm512_max_ps(m, a);
  }
  if (wild != 0) return std::numeric_limits<double>::infinity();
  return _mm512_reduce_max_ps(m);
}

float KthLargestOf64Avx512(const float* values, int k) {
  // at_least[i] counts the values >= values[i]; the answer is the largest value with k or more.
  // A value above the k-th largest has fewer than k at or above it, and the k-th largest has k.
  __m512 v[4];
  __m512i at_least[4];
  for (int p = 0; p < 4; ++p) {
    v[p] = _mm512_loadu_ps(values + p * kLanes);
    at_least[p] = _mm512_setzero_si512();
  }
  const __m512i one = _mm512_set1_epi32(1);
  for (int j = 0; j < 4 * kLanes; ++j) {
    const __m512 x = _mm512_set1_ps(values[j]);
    for (int p = 0; p < 4; ++p) {
      at_least[p] = _mm512_mask_add_epi32(at_least[p], _mm512_cmp_ps_mask(x, v[p], _CMP_GE_OQ),
                                          at_least[p], one);
    }
  }
  const __m512i need = _mm512_set1_epi32(k);
  __m512 best = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  for (int p = 0; p < 4; ++p) {
    best = _mm512_mask_max_ps(best, _mm512_cmpge_epi32_mask(at_least[p], need), best, v[p]);
  }
  return _mm512_reduce_max_ps(best);
}

QuantizedRowBounds QuantizeItemRowAvx512(const float* x, int dim, int lane, uint8_t* group) {
  const int quads = QuantizedQuads(dim);
  const RowQuantization r = QuantizeRowAvx512(x, dim, quads, lane, group);
  QuantizedRowBounds out;
  if (r.wild || r.scale == 0.0f) {
    // Stored as zeros: 128 in every quad of the lane (it may have held another row before).
    for (int c = 0; c < quads; ++c) {
      std::memset(group + static_cast<int64_t>(c) * kQuadBytes + 4 * lane, 128, 4);
    }
  }
  if (r.wild) {
    out.wild = true;
    return out;
  }
  out.scale = r.scale;
  out.error = RoundUpToFloat(r.error);
  const double dequantized_l1 = static_cast<double>(r.scale) * static_cast<double>(r.abs_sum);
  out.norm = RoundUpToFloat(std::max(r.l1, dequantized_l1) * (1.0 + 0x1p-20));
  return out;
}

void ScanQuantizedAvx512(const QuantizedItemBlock& block, const QuantizedQueryBatch& queries,
                         bool seed) {
  const int quads = QuantizedQuads(block.dim);
  for (int64_t first = 0; first < queries.count; first += kQueryGroup) {
    const int32_t* packed = queries.data + first * quads;
    QuantizedQuery* group = queries.queries + first;
    switch (std::min<int64_t>(kQueryGroup, queries.count - first)) {
      case 1:
        ScanGroup<1>(block, packed, group, seed);
        break;
      case 2:
        ScanGroup<2>(block, packed, group, seed);
        break;
      case 3:
        ScanGroup<3>(block, packed, group, seed);
        break;
      case 4:
        ScanGroup<4>(block, packed, group, seed);
        break;
      case 5:
        ScanGroup<5>(block, packed, group, seed);
        break;
      default:
        ScanGroup<6>(block, packed, group, seed);
        break;
    }
  }
}

}  // namespace freshet::kernels::internal

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

#endif  // FRESHET_AVX512_KERNELS

namespace freshet::kernels::internal {

bool QuantizedScanSupported() {
#if FRESHET_AVX512_KERNELS
  static const bool has = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                          __builtin_cpu_supports("avx512vnni");
  return has;
#else
  return false;
#endif
}

#if !FRESHET_AVX512_KERNELS
void ScanQuantizedAvx512(const QuantizedItemBlock&, const QuantizedQueryBatch&, bool) {}
double MaxAbsBiasAvx512(const float*, int64_t) {
  return std::numeric_limits<double>::infinity();  // never called: no scan without AVX-512
}
float KthLargestOf64Avx512(const float*, int) {
  return std::numeric_limits<float>::infinity();  // never called: QuantizedScanSupported() is false
}
QuantizedRowBounds QuantizeItemRowAvx512(const float*, int, int, uint8_t*) {
  QuantizedRowBounds out;
  out.wild = true;  // never called: QuantizedScanSupported() is false
  return out;
}
#endif

}  // namespace freshet::kernels::internal
