#include "learner/topics.h"

#include <Eigen/Core>
#include <Eigen/Eigenvalues>
#include <Eigen/QR>
#include <algorithm>
#include <cmath>
#include <limits>

#include "common/random.h"
#include "learner/internal/most_counted.h"
#include "learner/kmeans.h"

namespace freshet::learner {
namespace {

// Subspace iteration: this many products with the matrix, on a block of the wanted eigenvectors
// plus kOversample more (which speeds the convergence of the last wanted ones).
constexpr int kSolverIterations = 30;
constexpr int kOversample = 8;
constexpr int kMaxKMeansIterations = 50;
// k-means runs from as many k-means++ starts, the tightest kept.
constexpr int kKMeansStarts = 10;
constexpr uint64_t kSeed = 0x746f70696373;  // fixed: two fits of one table group alike

// The `k` leading eigenvectors of the symmetric `s` (eigenvalues in [-1, 1]), as columns.
Eigen::MatrixXd LeadingEigenvectors(const Eigen::MatrixXd& s, int k, Rng& rng) {
  const Eigen::Index m = s.rows();
  const Eigen::Index b = std::min<Eigen::Index>(m, k + kOversample);
  Eigen::MatrixXd q(m, b);
  for (Eigen::Index j = 0; j < b; ++j) {
    for (Eigen::Index i = 0; i < m; ++i) q(i, j) = rng.Normal();
  }
  Eigen::MatrixXd y(m, b);
  for (int it = 0; it < kSolverIterations; ++it) {
    // S + I has the same eigenvectors with eigenvalues in [0, 2]: the iteration converges to the
    // largest of S, not to those largest in magnitude (which may be negative).
    y.noalias() = s * q;
    y += q;
    q = Eigen::HouseholderQR<Eigen::MatrixXd>(y).householderQ() * Eigen::MatrixXd::Identity(m, b);
  }
  // Rayleigh-Ritz on the block.
  const Eigen::MatrixXd t = q.transpose() * s * q;
  const Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> solver(t);  // ascending
  Eigen::MatrixXd out(m, k);
  for (int j = 0; j < k; ++j) out.col(j) = q * solver.eigenvectors().col(b - 1 - j);
  return out;
}

}  // namespace

bool Topics::Fit(const CoocModel& table, int32_t catalog, int max_items, int topics) {
  std::vector<int32_t> index;
  const std::vector<int32_t> by_count =
      internal::MostCountedItems(table, catalog, max_items, &index);
  const size_t m0 = by_count.size();

  // G over them, symmetric where the table pruned one side (as Ease::Fit()).
  const Eigen::Index n0 = static_cast<Eigen::Index>(m0);
  Eigen::MatrixXd g = Eigen::MatrixXd::Zero(n0, n0);
  for (Eigen::Index a = 0; a < n0; ++a) {
    for (const auto& [other, weight] : table.neighbours(by_count[static_cast<size_t>(a)])) {
      if (other < 0 || other >= catalog || index[other] < 0 || index[other] == a) continue;
      g(a, index[other]) += 0.5 * weight;
      g(index[other], a) += 0.5 * weight;
    }
  }
  // Items with no counted pair inside the set have no place in the embedding: they join the
  // others, grouped by their neighbours.
  std::vector<int32_t> fitted;
  for (Eigen::Index a = 0; a < n0; ++a) {
    if (g.row(a).sum() > 0) fitted.push_back(static_cast<int32_t>(a));
  }
  const Eigen::Index m = static_cast<Eigen::Index>(fitted.size());
  if (m < 2) return false;
  const int k = static_cast<int>(std::min<Eigen::Index>(std::max(topics, 1), m));
  Eigen::MatrixXd s(m, m);
  Eigen::VectorXd inv_sqrt(m);
  for (Eigen::Index a = 0; a < m; ++a) inv_sqrt(a) = 1.0 / std::sqrt(g.row(fitted[a]).sum());
  for (Eigen::Index b = 0; b < m; ++b) {
    for (Eigen::Index a = 0; a < m; ++a) {
      s(a, b) = g(fitted[a], fitted[b]) * inv_sqrt(a) * inv_sqrt(b);
    }
  }
  g.resize(0, 0);
  Rng rng(kSeed);
  Eigen::MatrixXd x = LeadingEigenvectors(s, k, rng);
  s.resize(0, 0);
  for (Eigen::Index a = 0; a < m; ++a) {
    const double norm = x.row(a).norm();
    if (!std::isfinite(norm)) return false;
    if (norm > 0) x.row(a) /= norm;
  }
  const std::vector<int32_t> group = KMeans(x, k, kKMeansStarts, kMaxKMeansIterations, rng).group;

  std::vector<int32_t> group_of(static_cast<size_t>(catalog), -1);
  for (Eigen::Index a = 0; a < m; ++a) group_of[by_count[fitted[a]]] = group[a];

  // Refining rounds (see the header). The pair weights are summed in double,
  // so the table's order (a learner's and a replica's differ) changes the sums by rounding at
  // most.
  std::vector<double> degree(static_cast<size_t>(catalog), 0.0);
  for (int32_t i = 0; i < catalog; ++i) {
    if (table.count(i) <= 0) continue;
    for (const auto& [other, w] : table.neighbours(i)) {
      if (other >= 0 && other < catalog && other != i && w > 0) degree[i] += w;
    }
  }
  std::vector<double> weight(static_cast<size_t>(k));
  std::vector<double> volume(static_cast<size_t>(k), 0.0);
  double all = 0;
  for (int32_t i = 0; i < catalog; ++i) {
    if (group_of[i] < 0) continue;
    volume[group_of[i]] += degree[i];
    all += degree[i];
  }
  // One item at a time, in row order, each move seen by the next (the local moves of Louvain,
  // Blondel et al. 2008): all at once, two items that only go together swap groups forever.
  for (int round = 0; round < kRefineRounds; ++round) {
    for (int32_t i = 0; i < catalog; ++i) {
      if (table.count(i) <= 0) continue;
      std::fill(weight.begin(), weight.end(), 0.0);
      double sum = 0;
      for (const auto& [other, w] : table.neighbours(i)) {
        if (other < 0 || other >= catalog || other == i || group_of[other] < 0 || !(w > 0)) {
          continue;
        }
        weight[group_of[other]] += w;
        sum += w;
      }
      if (!(sum > 0) || !std::isfinite(sum)) continue;  // stays where it is
      // Out of its group while the groups bid for it.
      if (group_of[i] >= 0) {
        volume[group_of[i]] -= degree[i];
        all -= degree[i];
      }
      int32_t best = 0;
      double best_gain = -std::numeric_limits<double>::infinity();
      for (int t = 0; t < k; ++t) {
        const double gain = weight[t] - (all > 0 ? sum * volume[t] / all : 0.0);
        if (gain > best_gain) {
          best_gain = gain;
          best = t;
        }
      }
      group_of[i] = best;
      volume[best] += degree[i];
      all += degree[i];
    }
  }

  // P(item | group) and P(item).
  std::vector<double> group_total(static_cast<size_t>(k), 0.0);
  double total = 0;
  for (int32_t i = 0; i < catalog; ++i) {
    if (group_of[i] < 0) continue;
    const double c = static_cast<double>(table.count(i));
    group_total[group_of[i]] += c;
    total += c;
  }
  if (!(total > 0)) return false;
  std::vector<std::vector<std::pair<int32_t, float>>> members(static_cast<size_t>(k));
  std::vector<float> popularity(static_cast<size_t>(catalog), 0.0f);
  for (int32_t i = 0; i < catalog; ++i) {
    const int32_t t = group_of[i];
    if (t < 0) continue;
    const double c = static_cast<double>(table.count(i));
    popularity[i] = static_cast<float>(c / total);
    members[t].emplace_back(i, static_cast<float>(c / group_total[t]));
  }
  group_ = std::move(group_of);
  members_ = std::move(members);
  popularity_ = std::move(popularity);
  return true;
}

void Topics::AddScores(absl::Span<const int32_t> recent, int window, double prior,
                       absl::Span<float> scores) const {
  if (members_.empty()) return;
  std::vector<double> weight(members_.size(), 0.0);
  double mass = 0;
  const int n = std::min<int>(window, static_cast<int>(recent.size()));
  for (int j = 0; j < n; ++j) {
    const int32_t t = GroupOf(recent[recent.size() - 1 - j]);
    if (t < 0) continue;
    weight[t] += 1;
    mass += 1;
  }
  if (mass == 0) return;
  const double denominator = mass + prior;
  const size_t limit = std::min(scores.size(), popularity_.size());
  if (prior > 0) {
    const float f = static_cast<float>(prior / denominator);
    for (size_t i = 0; i < limit; ++i) scores[i] += f * popularity_[i];
  }
  for (size_t t = 0; t < members_.size(); ++t) {
    if (weight[t] == 0) continue;
    const float f = static_cast<float>(weight[t] / denominator);
    for (const auto& [item, p] : members_[t]) {
      if (static_cast<size_t>(item) < scores.size()) scores[item] += f * p;
    }
  }
}

int64_t Topics::Bytes() const {
  int64_t bytes = static_cast<int64_t>(group_.capacity() * sizeof(int32_t) +
                                       popularity_.capacity() * sizeof(float));
  for (const auto& list : members_)
    bytes += static_cast<int64_t>(list.capacity() * sizeof(list[0]));
  return bytes;
}

}  // namespace freshet::learner
