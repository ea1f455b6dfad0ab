// Topics: items grouped by who consumes them, fitted now and then to a co-occurrence table, and a
// user scored by the popular items of the groups their recent items belong to.
//
// A fit takes the `max_items` items the table has counted most, with G(a, b) their pair weight
// (G(a, a) = 0) and d(a) = sum_b G(a, b), and embeds them by the leading eigenvectors of
// D^-1/2 G D^-1/2 (spectral clustering, Ng, Jordan and Weiss 2001): items that the same users
// consume are close, whether or not a pair of them was ever counted together. The rows, scaled to
// length 1, are cut into `topics` groups by k-means (learner/kmeans.h: the tightest of ten
// k-means++ starts; one start can leave two groups under one centre and split another). Then,
// kRefineRounds times, every counted item (those outside the fitted set too), one at a time in row
// order, moves to the group its pairs favour most, net of what the group's size would give it by
// chance: the largest
//
//   w_t(i) - w(i) vol(t) / vol,
//
// w_t(i) the pair weights of i with the items of group t, w(i) their sum over the groups, vol(t)
// the pair weights of t's items with every item, and vol its sum over the groups (a step of
// modularity, Newman 2006). An item none of whose pairs is grouped belongs nowhere. P(i | t) is
// i's count over the group's total.
//
// A user whose latest `window` items belong to groups t, m_t of them in each, scores item i as
//
//   sum_t m_t P(i | t) / (M + prior) + prior P(i) / (M + prior),   M = sum_t m_t,
//
// with P(i) the grouped items' counts over their total: a mixture of the groups the user has been
// seen in, drawn towards popularity while the user's items are few. It pools what a sparse stream
// says about a group: a user whose one earlier item was seen three times is still served the
// group's popular items, which a co-occurrence table can only offer where that item was counted
// beside them.
//
// A fit costs O(max_items^2) memory and O(max_items^2 * topics) time per iteration of the
// eigenvector solver (a fixed number), plus a pass over the table per refining round, so a model
// refits now and then, not per event. Its random start is seeded: fits of the same table group
// alike (a learner and a replica).
#ifndef FRESHET_LEARNER_TOPICS_H_
#define FRESHET_LEARNER_TOPICS_H_

#include <cstdint>
#include <utility>
#include <vector>

#include "absl/types/span.h"
#include "learner/cooc_model.h"

namespace freshet::learner {

// Not thread-safe: Fit() needs the object to itself; the const calls may run concurrently.
class Topics {
 public:
  // Rounds of moving items to the groups their pairs favour (see above).
  static constexpr int kRefineRounds = 5;

  // Groups the items among rows [0, catalog) of `table` (see above) into at most `topics` groups
  // (fewer when fewer items are counted). Returns false, and keeps the earlier fit, when fewer
  // than two items have a counted pair or the solution is not finite.
  bool Fit(const CoocModel& table, int32_t catalog, int max_items, int topics);

  // Adds the score above, over the latest `window` items of `recent` (oldest first), to scores[i]
  // for the items below scores.size(); `prior` >= 0. Adds nothing when none of those items
  // belongs to a group (nothing to say beyond popularity).
  void AddScores(absl::Span<const int32_t> recent, int window, double prior,
                 absl::Span<float> scores) const;

  // The groups of the fit (0 before the first).
  int topics() const { return static_cast<int>(members_.size()); }
  // An item's group; -1 for an item that belongs to none.
  int32_t GroupOf(int32_t item) const {
    return item >= 0 && static_cast<size_t>(item) < group_.size() ? group_[item] : -1;
  }
  // Bytes held by the fit.
  int64_t Bytes() const;

 private:
  std::vector<int32_t> group_;  // per item row, or -1
  // Per group: its items and P(item | group), in row order.
  std::vector<std::vector<std::pair<int32_t, float>>> members_;
  // P(item): the counts of the grouped items over their total; 0 for the others.
  std::vector<float> popularity_;
};

}  // namespace freshet::learner

#endif  // FRESHET_LEARNER_TOPICS_H_
