// k-means of the rows of a matrix (Lloyd's iterations from a k-means++ start), run from several
// starts and keeping the tightest grouping: one start can settle with two true groups under one
// centre and another group split in two, which no later iteration undoes.
#ifndef FRESHET_LEARNER_KMEANS_H_
#define FRESHET_LEARNER_KMEANS_H_

#include <Eigen/Core>
#include <cstdint>
#include <vector>

#include "common/random.h"

namespace freshet::learner {

struct KMeansGroups {
  std::vector<int32_t> group;  // per row of the input, in [0, k)
  double inertia = 0;  // sum of squared distances of the rows to the centres they were put with
};

// Groups the rows of `x` (finite) into k groups, 1 <= k <= x.rows() (checked): `starts` runs (at
// least one) of Lloyd iterations from k-means++ starts drawn from `rng`, each ending when no row
// changes group or after `max_iterations` assignments (at least one), the run of least inertia
// kept (the earlier on a tie). Deterministic for a given `rng` state.
// O(starts * max_iterations * rows * k * x.cols()).
KMeansGroups KMeans(const Eigen::MatrixXd& x, int k, int starts, int max_iterations, Rng& rng);

}  // namespace freshet::learner

#endif  // FRESHET_LEARNER_KMEANS_H_
