#include "learner/kmeans.h"

#include <algorithm>
#include <limits>
#include <utility>

#include "common/check.h"

namespace freshet::learner {
namespace {

// One run from a k-means++ start.
KMeansGroups KMeansRun(const Eigen::MatrixXd& x, const Eigen::VectorXd& norms, int k,
                       int max_iterations, Rng& rng) {
  const Eigen::Index m = x.rows();
  Eigen::MatrixXd centres(k, x.cols());
  std::vector<double> nearest(static_cast<size_t>(m), std::numeric_limits<double>::infinity());
  centres.row(0) = x.row(rng.Below(static_cast<uint32_t>(m)));
  for (int c = 1; c < k; ++c) {
    double total = 0;
    for (Eigen::Index i = 0; i < m; ++i) {
      nearest[i] = std::min(nearest[i], (x.row(i) - centres.row(c - 1)).squaredNorm());
      total += nearest[i];
    }
    double r = rng.Uniform() * total;
    Eigen::Index pick = m - 1;
    for (Eigen::Index i = 0; i < m; ++i) {
      r -= nearest[i];
      if (r < 0) {
        pick = i;
        break;
      }
    }
    centres.row(c) = x.row(pick);
  }

  KMeansGroups out;
  out.group.assign(static_cast<size_t>(m), -1);
  Eigen::MatrixXd cross(k, m);
  // Assigns every row to its nearest centre, |x|^2 - 2 x.c + |c|^2 with the products in one matrix
  // product (a column of `cross` per row); returns whether a row changed group.
  const auto assign = [&]() {
    cross.noalias() = centres * x.transpose();
    const Eigen::VectorXd centre_norms = centres.rowwise().squaredNorm();
    bool moved = false;
    out.inertia = 0;
    for (Eigen::Index i = 0; i < m; ++i) {
      int32_t best = 0;
      double best_distance = std::numeric_limits<double>::infinity();
      for (int c = 0; c < k; ++c) {
        const double distance = centre_norms(c) - 2 * cross(c, i);
        if (distance < best_distance) {
          best_distance = distance;
          best = c;
        }
      }
      out.inertia += std::max(0.0, norms(i) + best_distance);
      if (out.group[i] != best) {
        out.group[i] = best;
        moved = true;
      }
    }
    return moved;
  };
  for (int it = 1; assign() && it < max_iterations; ++it) {
    Eigen::MatrixXd sums = Eigen::MatrixXd::Zero(k, x.cols());
    std::vector<int64_t> sizes(static_cast<size_t>(k), 0);
    for (Eigen::Index i = 0; i < m; ++i) {
      sums.row(out.group[i]) += x.row(i);
      ++sizes[out.group[i]];
    }
    // A centre left without rows stays where it was.
    for (int c = 0; c < k; ++c) {
      if (sizes[c] > 0) centres.row(c) = sums.row(c) / static_cast<double>(sizes[c]);
    }
  }
  return out;
}

}  // namespace

KMeansGroups KMeans(const Eigen::MatrixXd& x, int k, int starts, int max_iterations, Rng& rng) {
  FRESHET_CHECK(k >= 1 && k <= x.rows());
  const Eigen::VectorXd norms = x.rowwise().squaredNorm();
  KMeansGroups best;
  for (int s = 0; s < std::max(starts, 1); ++s) {
    KMeansGroups run = KMeansRun(x, norms, k, max_iterations, rng);
    if (s == 0 || run.inertia < best.inertia) best = std::move(run);
  }
  return best;
}

}  // namespace freshet::learner
