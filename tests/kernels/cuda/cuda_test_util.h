// Shared helpers for the CUDA parity tests: a context or a skip, and top-K comparison within a
// score tolerance (ties aside).
#ifndef FRESHET_TESTS_KERNELS_CUDA_CUDA_TEST_UTIL_H_
#define FRESHET_TESTS_KERNELS_CUDA_CUDA_TEST_UTIL_H_

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "gtest/gtest.h"
#include "kernels/backend.h"
#include "kernels/cuda/context.h"

namespace freshet::kernels::testing_util {

// A context on device 0, or null when there is no usable device (the caller then skips).
inline std::unique_ptr<CudaContext> ContextOrNull(std::string* why) {
  absl::StatusOr<std::unique_ptr<CudaContext>> context = CudaContext::Create(0);
  if (!context.ok()) {
    *why = std::string(context.status().message());
    return nullptr;
  }
  return std::move(*context);
}

#define FRESHET_CUDA_CONTEXT_OR_SKIP(var)                          \
  std::string var##_why;                                           \
  std::unique_ptr<::freshet::kernels::CudaContext> var =           \
      ::freshet::kernels::testing_util::ContextOrNull(&var##_why); \
  if (var == nullptr) GTEST_SKIP() << "no CUDA device: " << var##_why

// Checks a device top-K answer against the CPU's for the same query, allowing every score to
// differ by up to `tol`: the answers have the same length; position by position the scores agree
// within tol (the j-th best score moves by at most tol when every score does); the device answer
// is strictly ordered by RanksBefore, holds no excluded or repeated item, and pairs each item with
// its own score (checked against `true_score(item)`); and an item in one answer but not the other
// must score within 2 * tol of the k-th score (a near-tie at the cut).
template <typename TrueScore>
void ExpectSameTopK(const std::vector<ScoredItem>& device, const std::vector<ScoredItem>& cpu,
                    absl::Span<const int32_t> exclude, float tol, TrueScore true_score,
                    const std::string& label) {
  ASSERT_EQ(device.size(), cpu.size()) << label;
  for (size_t j = 0; j < device.size(); ++j) {
    EXPECT_NEAR(device[j].score, cpu[j].score, tol) << label << " position " << j;
    EXPECT_NEAR(device[j].score, true_score(device[j].item), tol) << label << " position " << j;
    EXPECT_FALSE(std::binary_search(exclude.begin(), exclude.end(), device[j].item))
        << label << " returned excluded item " << device[j].item;
    if (j > 0) {
      EXPECT_TRUE(RanksBefore(device[j - 1], device[j])) << label << " position " << j;
    }
  }
  if (cpu.empty()) return;
  const float cut = cpu.back().score;
  const auto contains = [](const std::vector<ScoredItem>& v, int32_t item) {
    return std::any_of(v.begin(), v.end(), [&](const ScoredItem& s) { return s.item == item; });
  };
  for (const ScoredItem& s : device) {
    if (!contains(cpu, s.item)) {
      EXPECT_LE(std::fabs(s.score - cut), 2 * tol) << label;
    }
  }
  for (const ScoredItem& s : cpu) {
    if (!contains(device, s.item)) {
      EXPECT_LE(std::fabs(s.score - cut), 2 * tol) << label;
    }
  }
}

}  // namespace freshet::kernels::testing_util

#endif  // FRESHET_TESTS_KERNELS_CUDA_CUDA_TEST_UTIL_H_
