// Small dense vector helpers for the learners' hot loops. Written so that g++ -O2 vectorises them
// without -ffast-math: the dot product keeps 16 independent partial sums.
#ifndef FRESHET_LEARNER_INTERNAL_VECTOR_OPS_H_
#define FRESHET_LEARNER_INTERNAL_VECTOR_OPS_H_

#include <cstdint>

namespace freshet::learner::internal {

inline float Dot(const float* __restrict a, const float* __restrict b, int n) {
  float acc[16] = {0};
  int i = 0;
  for (; i + 16 <= n; i += 16) {
    for (int j = 0; j < 16; ++j) acc[j] += a[i + j] * b[i + j];
  }
  float tail = 0;
  for (; i < n; ++i) tail += a[i] * b[i];
  float s = 0;
  for (int j = 0; j < 16; ++j) s += acc[j];
  return s + tail;
}

// y += alpha * x
inline void Axpy(float alpha, const float* __restrict x, float* __restrict y, int n) {
  for (int i = 0; i < n; ++i) y[i] += alpha * x[i];
}

// y = alpha * x
inline void Scale(float alpha, const float* __restrict x, float* __restrict y, int n) {
  for (int i = 0; i < n; ++i) y[i] = alpha * x[i];
}

inline float SquaredNorm(const float* a, int n) { return Dot(a, a, n); }

}  // namespace freshet::learner::internal

#endif  // FRESHET_LEARNER_INTERNAL_VECTOR_OPS_H_
