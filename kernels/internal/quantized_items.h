// The approximate first stage of PackedItemMatrix::TopK (kernels/packed_items.h): an int8 copy of
// the item rows, scored with AVX-512 VNNI, with a per-item interval [lower, upper] that provably
// holds the exact kernel's float score. Folder-private: only kernels/ and its tests include this.
//
// Quantization. Row i is stored as x^_i = round(x_i / s_i) in [-127, 127] with a scale s_i
// (max |x_ij| / 127). Each group of kGroupItems rows also keeps two floats: e_g >= every row's
// max_j |x_ij - s_i x^_ij| (the quantization error, measured, not assumed) and r_g >= every row's
// max(||x_i||_1, s_i ||x^_i||_1). A query q is quantized the same way (s_q, q^, e_q) when it is
// scored. The int8 dot product P = q^ . x^ is exact (int32, |P| <= dim * 127^2 < 2^24 for
// dim <= kMaxQuantizedDim, so it also converts to float exactly).
//
// The bound. Let S be the exact kernel's score (topk.h: D = the fp32 multiply-add chain, then
// S = fl(D + b)), F = s_q s_i P + b (real arithmetic), u = 2^-24 and g = dim u / (1 - dim u).
// Write x~ = s_i x^, q~ = s_q q^, Qinf = max(||q||_inf, 127 s_q), bmax = max_i |b_i|. Then
//   |D - q.x| <= g sum_j |q_j x_ij| <= g ||q||_inf r_g         (the FMA chain's rounding)
//   |q.x - q~.x~| <= ||q||_1 e_g + e_q r_g                      (q.x - q~.x~ = q.(x - x~)
//                                                                  + (q - q~).x~, Hoelder)
//   |S - (D + b)| <= u |D + b|,  |F| <= Qinf r_g + bmax,  |s_q s_i P| <= Qinf r_g,
// so with E = ||q||_1 e_g + (e_q + g ||q||_inf) r_g:  |S - F| <= (1 + u) E + u Qinf r_g + u bmax.
// The kernel evaluates, in float, sigma = fl(s_q s_i), upper = fl(sigma P + fl(b + m)) and
// lower = fl(fl(sigma P + b) - m), where m (a float, one per group and query) is at least
// (1 - u)^2 (l1 e_g + mixed r_g + slack) with
//   l1 = ||q||_1 (1 + 2^-12),  mixed = (e_q + g ||q||_inf + 8 u Qinf)(1 + 2^-12),
//   slack = (8 u bmax + 2^-100)(1 + 2^-12).
// Each of those evaluations is within 3.1 u (Qinf r_g + bmax) + 2 u m (plus underflow) of
// F + m or F - m; the (1 + 2^-12) factors cover the (1 + u) on E and the u m terms, the 8 u
// multiples the remaining 4.2 u Qinf r_g + 3.1 u bmax, and 2^-100 every absolute error underflow
// can add (at most a few 2^-126 in all). So upper >= S >= lower for every item, provided every
// input is finite and below the limits below (which keep every value under 2^122: nothing
// overflows).
//
// Using it. Let tau be the k-th largest lower bound over the items a query may return. An item
// whose upper < tau has an exact score below at least k eligible items' exact scores (strictly),
// so it is not in the top k. The items with upper >= tau therefore contain the exact top k, and
// selecting among them, offered in row order, by the exact scores gives the exact answer. The scan
// keeps the lower bounds in a KthLargest, so its running threshold never exceeds tau and can
// drop items as it goes (KthLargest below).
//
// Layout: groups of kGroupItems rows, group g at g * quads * 256 bytes (quads = ceil(dim / 4)),
// byte (row 64g + l, dim 4c + t) at g * quads * 256 + c * 256 + 4l + t, holding x^ + 128 (unsigned,
// what vpdpbusd multiplies). Padding dims hold 128 (x^ = 0); padding rows are never reported.
#ifndef FRESHET_KERNELS_INTERNAL_QUANTIZED_ITEMS_H_
#define FRESHET_KERNELS_INTERNAL_QUANTIZED_ITEMS_H_

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <vector>

#include "absl/types/span.h"
#include "kernels/backend.h"
#include "kernels/internal/item_panels.h"
#include "kernels/internal/top_k_selector.h"

namespace freshet::kernels::internal {

// Largest dim the int8 scan takes (|P| < 2^24 and the accumulators cannot overflow).
inline constexpr int kMaxQuantizedDim = 1024;
// Inputs beyond these are left to the exact kernels: a row or query with ||.||_1 above kMaxNorm, a
// bias above kMaxBias in magnitude, or any NaN or infinity.
inline constexpr double kMaxNorm = 0x1p60;
inline constexpr double kMaxBias = 0x1p100;

// Row and query scales below this are treated as zero: the whole vector is then its error.
inline constexpr float kMinRowScale = 0x1p-120f;
// Added to every measured quantization error: covers what underflow in fma(-s, v, x) can hide.
inline constexpr double kTinyRowError = 0x1p-140;

// The smallest float >= d (d finite, >= 0, below FLT_MAX).
float RoundUpToFloat(double d);

inline int QuantizedQuads(int dim) { return (dim + 3) / 4; }
// Bytes of one packed group of kGroupItems rows.
inline int64_t QuantizedGroupBytes(int dim) {
  return int64_t{QuantizedQuads(dim)} * 4 * kGroupItems;
}

// Quantizes rows [first_row, first_row + rows) of `items` (rows <= kGroupItems: one group) into
// the layout above at `out`, their s_i into scale (kGroupItems entries; rows past `rows` get
// zero) and the group's e_g and r_g into *error and *norm. Returns how many of the rows are "wild"
// (a NaN or infinity, or ||x||_1 > kMaxNorm): their bounds mean nothing and the caller must not use
// the scan.
int QuantizeItemGroup(const ItemMatrixView& items, int64_t first_row, int rows, uint8_t* out,
                      float* scale, float* error, float* norm);

// One row's part of a group: its scale, its own e and r (rounded up; a group's e_g and r_g are
// the largest of its rows'), and whether it is wild.
struct QuantizedRowBounds {
  float scale = 0.0f;
  float error = 0.0f;
  float norm = 0.0f;
  bool wild = false;
};
// max_i |bias[i]| over `rows` floats, or infinity when one is NaN or infinite (the scan's
// bias_max). Requires QuantizedScanSupported().
double MaxAbsBiasAvx512(const float* bias, int64_t rows);

// The k-th largest (1 <= k <= 64) of the 64 floats at `values` (none NaN), counting repeats: what
// std::nth_element with std::greater would put at index k - 1, without its unpredictable
// branches. Requires QuantizedScanSupported().
float KthLargestOf64Avx512(const float* values, int k);

// Quantizes the row at x (dim floats) into lane `lane` of the group at `group`, overwriting
// whatever the lane held (a wild or all-zero row leaves it zero). A server re-quantizes just the
// rows that learning changed before each batch (PackedItemMatrix). The same bytes, scale and
// error as QuantizeItemGroup gives the row; the norm may differ in its last bits (its
// double-precision sum runs in another order; both are within the bound's allowance). Requires
// QuantizedScanSupported().
QuantizedRowBounds QuantizeItemRowAvx512(const float* x, int dim, int lane, uint8_t* group);

// The k-th largest of the values offered for rows not in an exclude list: threshold() never
// exceeds it (it is -infinity until k values have been offered), and Final() is exactly the k-th
// largest of all values offered. For k <= kSlots it keeps the k largest in slots (-infinity until
// filled, +infinity padding) and threshold() is exact at every moment; for larger k it keeps up to
// 2k values and, when they fill, the k largest, the k-th becoming the threshold. Values must be
// finite, rows offered in increasing order.
class KthLargest {
 public:
  static constexpr int kSlots = 64;

  void Reset(int64_t k, absl::Span<const int32_t> exclude);
  float threshold() const { return threshold_; }
  // Defined with the scan (quantized_items_avx512.cc): AVX-512 only.
  void Offer(int32_t row, float value);
  // The k-th largest value offered, or -infinity when fewer than k were.
  float Final();
  // Raises the threshold to `floor` (k <= kSlots only), for a floor known to be at most the k-th
  // largest value of the rows to be offered: it stands for k values that are not offered (the
  // rows with values <= floor need not be). Final() stays exact: the k largest offered values
  // above the floor, or the floor if there are fewer than k.
  void Seed(float floor);

 private:
  void Shrink();

  alignas(64) float slots_[kSlots];
  int slot_vectors_ = 0;  // 16-float vectors of slots_ in use; 0: the buffer is used
  size_t k_ = 1;
  std::vector<float> values_;
  size_t held_ = 0;
  float threshold_ = 0.0f;
  const int32_t* exclude_ = nullptr;
  const int32_t* exclude_end_ = nullptr;
};

// One query's state in the scan.
struct QuantizedQuery {
  int32_t offset = 0;  // -128 * sum_j q^_j: the accumulators' start, undoing the +128 of the rows
  float scale = 0.0f;  // s_q
  float l1 = 0.0f;     // the bound's coefficients (see above)
  float mixed = 0.0f;
  float slack = 0.0f;
  KthLargest* lower = nullptr;  // lower bounds of the eligible items, k = min(k, rows)
  // Candidates, increasing: the first `count` entries, whose upper bound reached the threshold of
  // `lower` when they were seen (the vectors are only storage: the scan grows them as needed).
  std::vector<int32_t>* rows = nullptr;
  std::vector<float>* upper = nullptr;  // their upper bounds
  size_t count = 0;
  size_t compact_at = 0;  // count at which to drop the candidates now below the threshold
  // For the seeding pass: by row % 64, the largest lower bound of the eligible rows seen (64
  // floats, 64-byte aligned, -infinity at first), and the exclusion list's cursor.
  float* buckets = nullptr;
  const int32_t* seed_exclude = nullptr;
  const int32_t* seed_exclude_end = nullptr;
};

// Quantizes `query` (dim floats) into `packed` (QuantizedQuads(dim) * 4 bytes, dims past `dim`
// zero) and fills q's offset, scale and bound coefficients for a matrix whose |bias| <= bias_max.
// False when the query is out of the scan's range (a NaN or infinity, ||q||_1 > kMaxNorm).
bool QuantizeQuery(const float* query, int dim, double bias_max, int8_t* packed, QuantizedQuery* q);

// A packed int8 block: whole groups from first_row on.
struct QuantizedItemBlock {
  const uint8_t* data = nullptr;
  const float* scale = nullptr;  // of first_row, by row
  const float* error = nullptr;  // of first_row's group, by group
  const float* norm = nullptr;
  const float* bias = nullptr;  // of first_row, or null
  int64_t first_row = 0;
  int64_t rows = 0;
  int dim = 0;
};

// The quantized queries of one call: groups of kQueryGroup as in item_panels.h, one int32 (four
// int8 dims) per query per quad: group h at h * kQueryGroup * quads int32s, (query j of the
// group, quad c) at c * group_size + j.
struct QuantizedQueryBatch {
  const int32_t* data = nullptr;
  int64_t count = 0;
  int dim = 0;
  QuantizedQuery* queries = nullptr;
};

// True when this processor runs the scan (AVX-512F, BW and VNNI) and it was compiled in.
bool QuantizedScanSupported();

// Scores `block` for every query, offering the lower bounds to q.lower and appending the items
// whose upper bound reaches its threshold to q.rows / q.upper . Blocks must come in increasing
// row order. Requires QuantizedScanSupported().
void ScanQuantizedAvx512(const QuantizedItemBlock& block, const QuantizedQueryBatch& queries,
                         bool seed);

}  // namespace freshet::kernels::internal

#endif  // FRESHET_KERNELS_INTERNAL_QUANTIZED_ITEMS_H_
