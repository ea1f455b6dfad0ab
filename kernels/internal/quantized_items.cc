// Quantization of item rows and queries for the int8 scan (quantized_items.h), in portable C++.
// The error and norm each row carries are measured here and rounded up, so that the scan's bound
// holds whatever the rounding of the quantization itself did.
#include "kernels/internal/quantized_items.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>

namespace freshet::kernels::internal {
namespace {

constexpr double kU = 0x1p-24;

// Quantizes `dim` floats at x with the scale max|x| / 127 into v (int8 values, via `store`), and
// returns {scale, error bound, sum |v|}. l1 and amax are ||x||_1 and ||x||_inf.
struct Quantized {
  float scale = 0.0f;
  double error = 0.0;
  int64_t abs_sum = 0;
};
template <typename Store>
Quantized QuantizeVector(const float* x, int dim, float amax, Store store) {
  Quantized out;
  const float scale = amax / 127.0f;
  if (!(scale >= kMinRowScale)) {
    // All zero or too small to scale: stored as zeros, the vector itself is the error.
    for (int c = 0; c < dim; ++c) store(c, 0);
    out.error = static_cast<double>(amax) + kTinyRowError;
    return out;
  }
  const float inverse = 127.0f / amax;
  float error = 0.0f;
  for (int c = 0; c < dim; ++c) {
    const int v = std::clamp(static_cast<int>(std::lrint(x[c] * inverse)), -127, 127);
    store(c, v);
    out.abs_sum += v < 0 ? -v : v;
    // x - scale * v rounded once: within a factor (1 + u) of the true error, plus underflow.
    error = std::max(error, std::fabs(std::fma(-scale, static_cast<float>(v), x[c])));
  }
  out.scale = scale;
  out.error = static_cast<double>(error) * (1.0 + 0x1p-20) + kTinyRowError;
  return out;
}

// ||x||_1 (in double: relative error below dim * 2^-53) and ||x||_inf. A NaN makes the sum NaN.
void Norms(const float* x, int dim, double* l1, float* amax) {
  double sum = 0.0;
  float m = 0.0f;
  for (int c = 0; c < dim; ++c) {
    const float a = std::fabs(x[c]);
    sum += a;
    m = std::max(m, a);
  }
  *l1 = sum;
  *amax = m;
}

}  // namespace

float RoundUpToFloat(double d) {
  float f = static_cast<float>(d);
  if (static_cast<double>(f) < d) f = std::nextafter(f, std::numeric_limits<float>::infinity());
  return f;
}

void KthLargest::Reset(int64_t k, absl::Span<const int32_t> exclude) {
  k_ = static_cast<size_t>(k);
  threshold_ = -std::numeric_limits<float>::infinity();
  exclude_ = exclude.data();
  exclude_end_ = exclude.data() + exclude.size();
  held_ = 0;
  if (k <= kSlots) {
    slot_vectors_ = static_cast<int>((k + 15) / 16);
    for (int i = 0; i < kSlots; ++i) {
      slots_[i] =
          i < k ? -std::numeric_limits<float>::infinity() : std::numeric_limits<float>::infinity();
    }
    return;
  }
  slot_vectors_ = 0;
  values_.resize(2 * k_);
}

float KthLargest::Final() {
  if (slot_vectors_ == 0 && held_ >= k_) Shrink();
  return threshold_;
}

void KthLargest::Seed(float floor) {
  if (slot_vectors_ == 0 || !(floor > threshold_)) return;
  for (size_t i = 0; i < k_; ++i) slots_[i] = std::max(slots_[i], floor);
  threshold_ = floor;
  for (size_t i = 0; i < k_; ++i) threshold_ = std::min(threshold_, slots_[i]);
}

void KthLargest::Shrink() {
  std::nth_element(values_.begin(), values_.begin() + static_cast<std::ptrdiff_t>(k_ - 1),
                   values_.begin() + static_cast<std::ptrdiff_t>(held_), std::greater<float>());
  threshold_ = values_[k_ - 1];
  held_ = k_;
}

int QuantizeItemGroup(const ItemMatrixView& items, int64_t first_row, int rows, uint8_t* out,
                      float* scale, float* error, float* norm) {
  const int dim = items.dim;
  std::memset(out, 128, static_cast<size_t>(QuantizedGroupBytes(dim)));
  std::fill(scale, scale + kGroupItems, 0.0f);
  double group_error = 0.0;
  double group_norm = 0.0;
  int wild = 0;
  for (int l = 0; l < rows; ++l) {
    const float* x = items.vectors + (first_row + l) * items.stride;
    double l1 = 0.0;
    float amax = 0.0f;
    Norms(x, dim, &l1, &amax);
    if (!(l1 <= kMaxNorm)) {  // also NaN and infinity
      ++wild;
      continue;
    }
    const Quantized q = QuantizeVector(x, dim, amax, [&](int c, int v) {
      out[(c / 4) * 4 * kGroupItems + 4 * l + c % 4] = static_cast<uint8_t>(v + 128);
    });
    scale[l] = q.scale;
    group_error = std::max(group_error, q.error);
    const double dequantized_l1 = static_cast<double>(q.scale) * static_cast<double>(q.abs_sum);
    group_norm = std::max(group_norm, std::max(l1, dequantized_l1) * (1.0 + 0x1p-20));
  }
  *error = RoundUpToFloat(group_error);
  *norm = RoundUpToFloat(group_norm);
  return wild;
}

bool QuantizeQuery(const float* query, int dim, double bias_max, int8_t* packed,
                   QuantizedQuery* q) {
  double l1 = 0.0;
  float amax = 0.0f;
  Norms(query, dim, &l1, &amax);
  if (!(l1 <= kMaxNorm)) return false;
  std::memset(packed, 0, static_cast<size_t>(QuantizedQuads(dim)) * 4);
  int64_t sum = 0;
  const Quantized quantized = QuantizeVector(query, dim, amax, [&](int c, int v) {
    packed[c] = static_cast<int8_t>(v);
    sum += v;
  });
  const double gamma = dim * kU / (1.0 - dim * kU);
  const double q_inf = std::max(static_cast<double>(amax), 127.0 * quantized.scale);
  constexpr double kGrow = 1.0 + 0x1p-12;
  q->offset = static_cast<int32_t>(-128 * sum);
  q->scale = quantized.scale;
  q->l1 = RoundUpToFloat(l1 * kGrow);
  q->mixed = RoundUpToFloat((quantized.error + gamma * amax + 8.0 * kU * q_inf) * kGrow);
  q->slack = RoundUpToFloat((8.0 * kU * bias_max + 0x1p-100) * kGrow);
  return true;
}

}  // namespace freshet::kernels::internal
