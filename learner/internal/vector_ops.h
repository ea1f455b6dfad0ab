// Dense vector helpers for the learners' hot loops, written with GCC/Clang vector extensions so
// the shape of the generated code (16 floats per step, accumulators in registers) does not depend
// on the auto-vectoriser. Functions named *Padded take n as a multiple of 16: embedding rows are
// padded to that with zeros, and the zero padding stays zero under every operation here.
#ifndef FRESHET_LEARNER_INTERNAL_VECTOR_OPS_H_
#define FRESHET_LEARNER_INTERNAL_VECTOR_OPS_H_

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "absl/types/span.h"

namespace freshet::learner::internal {

using V16 = float __attribute__((vector_size(64)));

inline V16 Load16(const float* p) {
  V16 v;
  __builtin_memcpy(&v, p, sizeof(v));
  return v;
}

inline void Store16(float* p, V16 v) { __builtin_memcpy(p, &v, sizeof(v)); }

inline float Sum16(V16 v) {
  float s = 0;
  for (int j = 0; j < 16; ++j) s += v[j];
  return s;
}

// Any n.
inline float Dot(const float* __restrict a, const float* __restrict b, int n) {
  V16 acc = {};
  int i = 0;
  for (; i + 16 <= n; i += 16) acc += Load16(a + i) * Load16(b + i);
  float tail = 0;
  for (; i < n; ++i) tail += a[i] * b[i];
  return Sum16(acc) + tail;
}

// y += alpha * x, any n.
inline void Axpy(float alpha, const float* __restrict x, float* __restrict y, int n) {
  for (int i = 0; i < n; ++i) y[i] += alpha * x[i];
}

// y = alpha * x, any n.
inline void Scale(float alpha, const float* __restrict x, float* __restrict y, int n) {
  for (int i = 0; i < n; ++i) y[i] = alpha * x[i];
}

inline float DotPadded(const float* __restrict a, const float* __restrict b, int n) {
  V16 acc = {};
  for (int i = 0; i < n; i += 16) acc += Load16(a + i) * Load16(b + i);
  return Sum16(acc);
}

// out = sum_r weights[r] * rows[r]: each 16-float block is accumulated in registers across all
// rows rather than in m read-modify-write passes over `out`.
inline void WeightedSumPadded(const float* const* rows, const float* weights, int m,
                              float* __restrict out, int n) {
  for (int i = 0; i < n; i += 16) {
    V16 acc = {};
    for (int r = 0; r < m; ++r) acc += weights[r] * Load16(rows[r] + i);
    Store16(out + i, acc);
  }
}

// row = keep * row + move * direction.
inline void ScaleAddPadded(float keep, float* __restrict row, float move,
                           const float* __restrict direction, int n) {
  for (int i = 0; i < n; i += 16)
    Store16(row + i, keep * Load16(row + i) + move * Load16(direction + i));
}

// e^x for x <= 0 (softmax terms after subtracting the maximum), relative error below 4e-6:
// e^x = 2^n * 2^f with n = round(x log2 e), |f| <= 1/2, and 2^f by a degree-6 polynomial. Inline
// and branch-free, unlike a call into libm; inputs below -87 return 0.
inline float ExpNonPositive(float x) {
  if (x < -87.0f) return 0.0f;
  const float t = x * 1.44269504088896341f;  // log2(e)
  const float n = __builtin_rintf(t);        // one vroundss; roundf would be a libm call
  const float f = t - n;
  float p = 1.53533e-4f;
  p = p * f + 1.339887e-3f;
  p = p * f + 9.618437e-3f;
  p = p * f + 5.5503324e-2f;
  p = p * f + 2.4022652e-1f;
  p = p * f + 6.9314718e-1f;
  p = p * f + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  __builtin_memcpy(&scale, &bits, sizeof(scale));
  return p * scale;
}

// Rescales to mean 0 and variance 1 (a constant vector becomes all zeros): the per-query
// standardisation of the scores that the hybrid and blend models combine.
// The mean of n > 0 values and the inverse of their standard deviation (0 where they do not vary),
// from their sum and their sum of squares.
struct Spread {
  float mean;
  float inv_sd;
};
inline Spread MeanAndInverseSd(double sum, double sum_sq, double n) {
  const double mean = sum / n;
  const double var = std::max(0.0, sum_sq / n - mean * mean);
  return {static_cast<float>(mean), var > 0 ? static_cast<float>(1.0 / std::sqrt(var)) : 0.0f};
}

inline void Standardise(absl::Span<float> v) {
  if (v.empty()) return;
  double sum = 0, sum_sq = 0;
  for (float x : v) {
    sum += x;
    sum_sq += static_cast<double>(x) * x;
  }
  const Spread s = MeanAndInverseSd(sum, sum_sq, static_cast<double>(v.size()));
  for (float& x : v) x = (x - s.mean) * s.inv_sd;
}

}  // namespace freshet::learner::internal

#endif  // FRESHET_LEARNER_INTERNAL_VECTOR_OPS_H_
