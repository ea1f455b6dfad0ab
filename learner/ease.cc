#include "learner/ease.h"

#include <Eigen/Cholesky>
#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <utility>

#include "learner/internal/most_counted.h"

namespace freshet::learner {

bool Ease::Fit(const CoocModel& table, int32_t catalog, int max_items, double lambda) {
  std::vector<int32_t> index;
  std::vector<int32_t> items = internal::MostCountedItems(table, catalog, max_items, &index);
  const size_t m = items.size();

  const Eigen::Index n = static_cast<Eigen::Index>(m);
  const auto gramian = [&](double ridge, Eigen::MatrixXd* gram) {
    gram->setZero(n, n);
    for (Eigen::Index a = 0; a < n; ++a) {
      for (const auto& [other, weight] : table.neighbours(items[static_cast<size_t>(a)])) {
        if (other < 0 || other >= catalog || index[other] < 0) continue;
        (*gram)(a, index[other]) += 0.5 * weight;
        (*gram)(index[other], a) += 0.5 * weight;
      }
    }
    for (Eigen::Index a = 0; a < n; ++a) {
      (*gram)(a, a) = static_cast<double>(table.count(items[static_cast<size_t>(a)])) + ridge;
    }
  };
  // G stands for X^T X, but the table's pair weights can outgrow what that allows: a user who
  // takes an item again pairs it again with everything recent, while its count grows by one. Such
  // a G is indefinite, and its inverse no least-squares solution (B's weights then swing from one
  // fit to the next). The ridge grows fourfold until G + ridge I is positive definite, at most
  // kMaxRidgeSteps times; beyond that the fit is refused and the earlier one kept.
  constexpr int kMaxRidgeSteps = 8;
  Eigen::MatrixXd gram;
  Eigen::MatrixXd inverse;
  bool solved = false;
  double ridge = lambda;
  for (int step = 0; step <= kMaxRidgeSteps && !solved; ++step, ridge *= 4) {
    gramian(ridge, &gram);
    // Factorised in place (G's memory holds the factor: one n x n matrix fewer to allocate and
    // fault in), then solved in place against the identity.
    const Eigen::LLT<Eigen::Ref<Eigen::MatrixXd>> llt(gram);
    if (llt.info() != Eigen::Success) continue;
    inverse = Eigen::MatrixXd::Identity(n, n);
    llt.solveInPlace(inverse);
    solved = true;
  }
  if (!solved) return false;
  std::vector<float> weights(m * m);
  for (Eigen::Index b = 0; b < n; ++b) {
    const double diagonal = inverse(b, b);
    if (!std::isfinite(diagonal) || diagonal == 0) return false;
    for (Eigen::Index a = 0; a < n; ++a) {
      const double w = a == b ? 0.0 : -inverse(a, b) / diagonal;
      if (!std::isfinite(w)) return false;
      weights[static_cast<size_t>(a) * m + static_cast<size_t>(b)] = static_cast<float>(w);
    }
  }
  items_ = std::move(items);
  index_ = std::move(index);
  weights_ = std::move(weights);
  return true;
}

void Ease::AddScores(absl::Span<const int32_t> recent, int window, absl::Span<float> scores) const {
  const size_t m = items_.size();
  const int n = std::min<int>(window, static_cast<int>(recent.size()));
  // B's rows summed in the fitted order (contiguous, so the sum vectorises), then added to the
  // catalog's rows in one pass: each score gets the same sum, in the same order, as row by row.
  std::vector<float> sum;
  for (int k = 0; k < n; ++k) {
    const int32_t a = IndexOf(recent[recent.size() - 1 - k]);
    if (a < 0) continue;
    if (sum.empty()) sum.assign(m, 0.0f);
    const float* row = weights_.data() + static_cast<size_t>(a) * m;
    float* out = sum.data();
    for (size_t b = 0; b < m; ++b) out[b] += row[b];
  }
  if (sum.empty()) return;
  for (size_t b = 0; b < m; ++b) {
    if (static_cast<size_t>(items_[b]) < scores.size()) scores[items_[b]] += sum[b];
  }
}

float Ease::Weight(int32_t from, int32_t to) const {
  const int32_t a = IndexOf(from), b = IndexOf(to);
  if (a < 0 || b < 0) return 0.0f;
  return weights_[static_cast<size_t>(a) * items_.size() + static_cast<size_t>(b)];
}

int64_t Ease::Bytes() const {
  return static_cast<int64_t>(weights_.capacity() * sizeof(float) +
                              (items_.capacity() + index_.capacity()) * sizeof(int32_t));
}

}  // namespace freshet::learner
