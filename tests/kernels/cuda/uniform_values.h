// Seeded uniform test data for the learning-kernel tests (plain C++: the reference tests, which
// build without CUDA, use it too).
#ifndef FRESHET_TESTS_KERNELS_CUDA_UNIFORM_VALUES_H_
#define FRESHET_TESTS_KERNELS_CUDA_UNIFORM_VALUES_H_

#include <cstddef>
#include <vector>

#include "common/random.h"

namespace freshet::kernels::testing_util {

// n floats uniform in [lo, hi), drawn in order from `rng`.
inline std::vector<float> Uniform(size_t n, float lo, float hi, Rng& rng) {
  std::vector<float> v(n);
  for (float& x : v) x = lo + (hi - lo) * rng.UniformFloat();
  return v;
}

}  // namespace freshet::kernels::testing_util

#endif  // FRESHET_TESTS_KERNELS_CUDA_UNIFORM_VALUES_H_
