// The AVX-512 quantization of item groups against the portable one it must equal.
#include "kernels/internal/quantized_items.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <vector>

#include "common/random.h"
#include "gtest/gtest.h"
#include "kernels/backend.h"

namespace freshet::kernels::internal {
namespace {

struct Group {
  std::vector<uint8_t> bytes;
  std::vector<float> scale;
  float error = 0.0f;
  float norm = 0.0f;
  int wild = 0;
};

// The portable quantizer's group.
Group Portable(const ItemMatrixView& items, int64_t first, int rows) {
  Group g;
  g.bytes.assign(static_cast<size_t>(QuantizedGroupBytes(items.dim)), 0);
  g.scale.assign(kGroupItems, -1.0f);
  g.wild = QuantizeItemGroup(items, first, rows, g.bytes.data(), g.scale.data(), &g.error, &g.norm);
  return g;
}

// The same group from QuantizeItemRowAvx512, a row at a time, into lanes that held other bytes:
// the group's bounds are its rows' largest, as PackedItemMatrix keeps them.
Group Avx512ByRows(const ItemMatrixView& items, int64_t first, int rows) {
  Group g;
  g.bytes.assign(static_cast<size_t>(QuantizedGroupBytes(items.dim)), 128);
  g.scale.assign(kGroupItems, 0.0f);
  for (int l = 0; l < rows; ++l) {
    // Stale bytes in the lane, which the row must overwrite.
    for (int c = 0; c < QuantizedQuads(items.dim); ++c) {
      for (int t = 0; t < 4; ++t) g.bytes[static_cast<size_t>(c * 4 * kGroupItems + 4 * l + t)] = 7;
    }
    const QuantizedRowBounds r = QuantizeItemRowAvx512(items.vectors + (first + l) * items.stride,
                                                       items.dim, l, g.bytes.data());
    if (r.wild) {
      ++g.wild;
      continue;
    }
    g.scale[static_cast<size_t>(l)] = r.scale;
    g.error = std::max(g.error, r.error);
    g.norm = std::max(g.norm, r.norm);
  }
  return g;
}

TEST(QuantizedItemsTest, Avx512GroupsEqualThePortableOnes) {
  if (!QuantizedScanSupported()) GTEST_SKIP() << "this processor has no AVX-512 VNNI";
  Rng rng(7);
  for (int dim : {1, 3, 4, 15, 16, 17, 63, 64, 65, 100, 128}) {
    for (int rows : {1, 5, 64}) {
      const int64_t total = 2 * kGroupItems;
      const int64_t stride = dim + 3;
      std::vector<float> v(static_cast<size_t>(total * stride), 0.0f);
      for (int64_t r = 0; r < total; ++r) {
        // Magnitudes from tiny to large, some rows all zero, some with one dominant value.
        const float magnitude = std::ldexp(1.0f, static_cast<int>(r % 40) - 20);
        for (int c = 0; c < dim; ++c) {
          v[static_cast<size_t>(r * stride + c)] =
              r % 11 == 3 ? 0.0f : magnitude * static_cast<float>(rng.Uniform() * 2.0 - 1.0);
        }
        if (r % 7 == 2) v[static_cast<size_t>(r * stride)] = magnitude * 1000.0f;
      }
      ItemMatrixView items;
      items.vectors = v.data();
      items.rows = total;
      items.dim = dim;
      items.stride = stride;
      const int64_t first = kGroupItems;
      const Group a = Portable(items, first, rows);
      const Group b = Avx512ByRows(items, first, rows);
      SCOPED_TRACE(testing::Message() << "dim " << dim << " rows " << rows);
      EXPECT_EQ(a.bytes, b.bytes);
      EXPECT_EQ(a.scale, b.scale);
      EXPECT_EQ(a.error, b.error);
      EXPECT_EQ(a.wild, 0);
      EXPECT_EQ(b.wild, 0);
      // The l1 sums run in another order: equal up to the last bits, both rounded up.
      EXPECT_NEAR(a.norm, b.norm, 1e-6 * a.norm);
    }
  }
}

TEST(QuantizedItemsTest, Avx512CountsWildRowsLikeThePortableCode) {
  if (!QuantizedScanSupported()) GTEST_SKIP() << "this processor has no AVX-512 VNNI";
  const int dim = 20;
  std::vector<float> v(static_cast<size_t>(kGroupItems * dim), 0.5f);
  v[3 * dim + 19] = std::numeric_limits<float>::quiet_NaN();
  v[9 * dim + 0] = std::numeric_limits<float>::infinity();
  v[10 * dim + 5] = -std::numeric_limits<float>::infinity();
  v[20 * dim + 7] = 0x1p62f;  // ||x||_1 above kMaxNorm
  ItemMatrixView items;
  items.vectors = v.data();
  items.rows = kGroupItems;
  items.dim = dim;
  items.stride = dim;
  const Group a = Portable(items, 0, kGroupItems);
  const Group b = Avx512ByRows(items, 0, kGroupItems);
  EXPECT_EQ(a.wild, 4);
  EXPECT_EQ(b.wild, 4);
  EXPECT_EQ(a.bytes, b.bytes);
  EXPECT_EQ(a.scale, b.scale);
  EXPECT_EQ(a.error, b.error);
  EXPECT_EQ(a.norm, b.norm);
}

TEST(QuantizedItemsTest, KthLargestOf64IsWhatNthElementPicks) {
  if (!QuantizedScanSupported()) GTEST_SKIP() << "this processor has no AVX-512 VNNI";
  Rng rng(11);
  const float inf = std::numeric_limits<float>::infinity();
  for (int trial = 0; trial < 400; ++trial) {
    float values[64];
    for (float& v : values) {
      // Few distinct values in some trials (repeats count), -infinity for empty buckets.
      const double u = rng.Uniform();
      v = trial % 3 == 0 ? static_cast<float>(static_cast<int>(u * 5))
                         : static_cast<float>(2 * rng.Uniform() - 1);
      if (rng.Uniform() < 0.2) v = -inf;
    }
    for (int k = 1; k <= 64; ++k) {
      float sorted[64];
      std::copy(values, values + 64, sorted);
      std::nth_element(sorted, sorted + (k - 1), sorted + 64, std::greater<float>());
      ASSERT_EQ(KthLargestOf64Avx512(values, k), sorted[k - 1]) << "trial " << trial << " k " << k;
    }
  }
}

TEST(QuantizedItemsTest, MaxAbsBiasSeesEveryRowAndEveryNonFiniteValue) {
  if (!QuantizedScanSupported()) GTEST_SKIP() << "this processor has no AVX-512 VNNI";
  for (int64_t rows : {1, 15, 16, 17, 100, 1000}) {
    std::vector<float> bias(static_cast<size_t>(rows), 0.5f);
    EXPECT_EQ(MaxAbsBiasAvx512(bias.data(), rows), 0.5);
    bias.back() = -3.0f;  // the last row, in the tail of a vector
    EXPECT_EQ(MaxAbsBiasAvx512(bias.data(), rows), 3.0);
    EXPECT_EQ(MaxAbsBiasAvx512(bias.data(), rows - 1), rows > 1 ? 0.5 : 0.0);
    for (const float wild :
         {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
          -std::numeric_limits<float>::infinity()}) {
      bias.back() = wild;
      EXPECT_TRUE(std::isinf(MaxAbsBiasAvx512(bias.data(), rows))) << rows << " " << wild;
    }
  }
}

}  // namespace
}  // namespace freshet::kernels::internal
