// log(1 + x) for the blend's feature transforms, which take it of every item of the catalog on
// every query (log-popularity, log-trending, and the log scale of the sparse scores): libm's
// log1pf, one call per item, was a third of a blend query's time at 10,000 items. Log1p is a
// branch-free polynomial (Cephes' logf on the mantissa, plus the rounding of 1 + x), inlined, so a
// loop over an array of them is vectorised; one value and an array give the same result, so a
// ranker step's scores of a few rows equal a query's of the whole catalog. Within 3 ulp of the
// exact value for every finite x >= 0 (tests/learner/log1p_test.cc), +inf at +inf, NaN at NaN.
// Defined for x >= 0 only (the scores transformed here are counts and sums of them).
#ifndef FRESHET_LEARNER_INTERNAL_LOG1P_H_
#define FRESHET_LEARNER_INTERNAL_LOG1P_H_

#include <cstddef>
#include <cstdint>

#include "absl/types/span.h"

namespace freshet::learner::internal {

inline float Log1p(float x) {
  const float u = 1.0f + x;
  const uint32_t bits = __builtin_bit_cast(uint32_t, u);
  // u = m * 2^e with m in [sqrt(1/2), sqrt(2)).
  const uint32_t field = (bits >> 23) & 0xffu;
  int32_t e = static_cast<int32_t>(field) - 127;
  const uint32_t mantissa_bits = (bits & 0x007fffffu) | 0x3f800000u;  // m in [1, 2)
  float m = __builtin_bit_cast(float, mantissa_bits);
  // m > sqrt(2), compared as bits (a float comparison may trap, which keeps loops of Log1p from
  // being vectorised): 0 or 1.
  const int32_t high = mantissa_bits > 0x3fb504f3u;
  m *= 1.0f - 0.5f * static_cast<float>(high);
  e += high;
  const float f = m - 1.0f;
  const float z = f * f;
  float p = 7.0376836292e-2f;
  p = p * f - 1.1514610310e-1f;
  p = p * f + 1.1676998740e-1f;
  p = p * f - 1.2420140846e-1f;
  p = p * f + 1.4249322787e-1f;
  p = p * f - 1.6668057665e-1f;
  p = p * f + 2.0000714765e-1f;
  p = p * f - 2.4999993993e-1f;
  p = p * f + 3.3333331174e-1f;
  const float fe = static_cast<float>(e);
  float r = f * z * p;
  r += fe * -2.12194440e-4f;  // ln 2 = 0.693359375 - 2.12194440e-4, the first part exact
  r += -0.5f * z;
  r = (f + r) + fe * 0.693359375f;
  // 1 + x was rounded: log1p(x) = log(u) + (x - (u - 1)) / u to first order.
  r += (x - (u - 1.0f)) / u;
  // +inf (and NaN) pass through: their exponent field is all ones. Selected by bits: with a
  // conditional, the compiler sinks r's arithmetic into one branch and cannot vectorise the loop.
  const uint32_t keep_u = 0u - static_cast<uint32_t>(field == 0xffu);
  return __builtin_bit_cast(float, (bits & keep_u) | (__builtin_bit_cast(uint32_t, r) & ~keep_u));
}

// xs[i] = Log1p(xs[i]).
inline void Log1pInPlace(absl::Span<float> xs) {
  float* const data = xs.data();
  const size_t n = xs.size();
  for (size_t i = 0; i < n; ++i) data[i] = Log1p(data[i]);
}

}  // namespace freshet::learner::internal

#endif  // FRESHET_LEARNER_INTERNAL_LOG1P_H_
