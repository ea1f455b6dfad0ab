// learner/internal/log1p.h: the vectorised log(1 + x) of the blend's feature transforms against
// the exact value (libm's log1p in double, rounded), over every binade a count or a sum of counts
// can reach, and one value against an array of them.
#include "learner/internal/log1p.h"

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace freshet::learner::internal {
namespace {

// |got - exact| in units in the last place of the float nearest the exact value.
double UlpError(float got, double exact) {
  const double ulp = std::ldexp(1.0, std::ilogb(static_cast<float>(exact)) - 23);
  return std::fabs(static_cast<double>(got) - exact) / ulp;
}

TEST(Log1pTest, WithinThreeUlpOfTheExactValueFromTheSmallestToTheLargestFloat) {
  double worst = 0;
  float worst_at = 0;
  auto check = [&](float x) {
    const double e = UlpError(Log1p(x), std::log1p(static_cast<double>(x)));
    if (e > worst) {
      worst = e;
      worst_at = x;
    }
  };
  // Every binade, 20,000 steps of 0.1% each from 1e-38 to 3e38, then dense around 0 and 1 + x
  // near the mantissa's split at sqrt(2), where the polynomial's range ends.
  for (double x = 1e-38; x < 3e38; x *= 1.001) check(static_cast<float>(x));
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> small(0.0f, 4.0f);
  for (int i = 0; i < 1'000'000; ++i) check(small(rng));
  for (float x = 0.40f; x < 0.43f; x = std::nextafter(x, 1.0f)) check(x);
  EXPECT_LE(worst, 3.0) << "at " << worst_at;
}

TEST(Log1pTest, ExactAtZeroAndTinyValuesAndPassesInfinityAndNaNThrough) {
  EXPECT_EQ(Log1p(0.0f), 0.0f);
  EXPECT_EQ(Log1p(std::numeric_limits<float>::denorm_min()),
            std::numeric_limits<float>::denorm_min());
  EXPECT_EQ(Log1p(1e-30f), 1e-30f);
  EXPECT_FLOAT_EQ(Log1p(1.0f), std::log(2.0f));
  EXPECT_EQ(Log1p(std::numeric_limits<float>::infinity()), std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(Log1p(std::numeric_limits<float>::quiet_NaN())));
  EXPECT_FLOAT_EQ(Log1p(std::numeric_limits<float>::max()), 88.7228391f);
}

TEST(Log1pTest, AnArrayGetsWhatEachValueGetsAlone) {
  // A ranker step transforms a few rows one at a time; a query the whole catalog at once. The
  // array's length is not a multiple of any vector width, so the loop's tail is covered too.
  std::mt19937 rng(11);
  std::exponential_distribution<float> scores(0.3f);
  std::vector<float> xs(10'007);
  for (float& x : xs) x = scores(rng);
  xs[17] = 0.0f;
  xs[4'000] = std::numeric_limits<float>::infinity();
  std::vector<float> ys = xs;
  Log1pInPlace(absl::MakeSpan(ys));
  for (size_t i = 0; i < xs.size(); ++i) {
    const float alone = Log1p(xs[i]);
    ASSERT_EQ(ys[i], alone) << "at " << i << ": x = " << xs[i];
  }
}

}  // namespace
}  // namespace freshet::learner::internal
