// Ease: EASE item-item weights (Steck 2019, "Embarrassingly Shallow Autoencoders for Sparse
// Data"), fitted in closed form to a co-occurrence table. Over the `max_items` items the table has
// counted most, with G(a, b) the pair weight of a and b and G(a, a) the count of a,
//
//   P = (G + lambda I)^-1,   B(a, b) = -P(a, b) / P(b, b) for a != b,   B(a, a) = 0,
//
// the least-squares weights that predict each item's column of the user-item matrix from the
// others (whose Gramian G stands for), with the trivial solution B = I ruled out. A user is scored
// by the sum of B's rows over their latest items. Unlike co-occurrence counts, B discounts an item
// that co-occurs with everything: a pair says more when neither item explains it through others.
//
// A fit costs O(max_items^3) time and 16 max_items^2 bytes while it runs (G and its inverse, in
// doubles; then 4 max_items^2 for B), so a model refits now and then, not per event; items beyond
// the fitted set score 0.
#ifndef FRESHET_LEARNER_EASE_H_
#define FRESHET_LEARNER_EASE_H_

#include <cstdint>
#include <vector>

#include "absl/types/span.h"
#include "learner/cooc_model.h"

namespace freshet::learner {

// Not thread-safe: Fit() needs the object to itself; the const calls may run concurrently.
class Ease {
 public:
  // Fits B over the items among rows [0, catalog) with the largest counts in `table` (at most
  // `max_items`, counts > 0; ties to the lower row) with `lambda` > 0 added to G's diagonal. The
  // pair weights are averaged with their mirror, so G is symmetric even where the table pruned
  // one side. Where G + lambda I is not positive definite (pair weights that outgrow the counts),
  // the ridge grows fourfold until it is, at most 8 times. Returns false, and keeps the earlier
  // fit, when it never is or the solution is not finite.
  bool Fit(const CoocModel& table, int32_t catalog, int max_items, double lambda);

  // Adds sum_j B(j, n) over the latest `window` items j of `recent` (oldest first) to scores[n],
  // for the fitted n below scores.size().
  void AddScores(absl::Span<const int32_t> recent, int window, absl::Span<float> scores) const;

  // The fitted items, in row order.
  const std::vector<int32_t>& items() const { return items_; }
  // B(a, b) of two items; 0 for an item outside the fit.
  float Weight(int32_t from, int32_t to) const;
  // Bytes held by the fit.
  int64_t Bytes() const;

 private:
  int32_t IndexOf(int32_t row) const {
    return row >= 0 && static_cast<size_t>(row) < index_.size() ? index_[row] : -1;
  }

  std::vector<int32_t> items_;  // fitted index -> item row, ascending
  std::vector<int32_t> index_;  // item row -> fitted index, or -1
  std::vector<float> weights_;  // B, row-major: items_.size() squared
};

}  // namespace freshet::learner

#endif  // FRESHET_LEARNER_EASE_H_
