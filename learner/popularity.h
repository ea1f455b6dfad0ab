// Popularity: how often each item was interacted with, all-time or exponentially decayed. It is
// the baseline every model must beat, the fallback for unknown users, and the distribution the
// negative sampler draws from.
#ifndef FRESHET_LEARNER_POPULARITY_H_
#define FRESHET_LEARNER_POPULARITY_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace freshet::learner {

// Not thread-safe.
class Popularity {
 public:
  // half_life_s == 0: plain weighted counts. Otherwise each interaction's weight halves every
  // half_life_s seconds of event time.
  explicit Popularity(double half_life_s);

  void Resize(int32_t items);
  // `first_of_user`: the event is its user's first, so it also counts towards what new users
  // take (NewUserScores).
  void Add(int32_t item, float weight, int64_t ts_ms, bool first_of_user = false);

  // Scores that rank items by (decayed) popularity, one per item row. With decay they are scaled
  // by a common factor, so only their order and ratios are meaningful: use Value() for counts.
  absl::Span<const float> Scores() const { return scores_; }

  // The (decayed) weighted count of `item` as of the latest event.
  double Value(int32_t item) const;
  // The same over the events that were their user's first.
  double FirstValue(int32_t item) const;

  // Scores for a user never seen, one per item row (out.size() of them, at most the rows
  // Resize()d): the share of `item` among users' first events, with `prior` first events' worth
  // of its all-time share mixed in, (F_i + prior * A_i / A) / (F + prior) (F: first-event counts,
  // A: all counts, both decayed alike). While few users have arrived the all-time share
  // dominates; as they accumulate, what new users actually take does. O(out.size()).
  void NewUserScores(double prior, absl::Span<float> out) const;

  // Undecayed number of interactions of `item`.
  int64_t Count(int32_t item) const { return counts_[item]; }
  // Event time (epoch ms) of the item's latest interaction.
  int64_t LastTs(int32_t item) const { return last_ts_[item]; }
  int64_t total() const { return total_; }

  // How many times every score was rescaled at once (decay only): each time, every item's
  // persisted score changed.
  int64_t rescales() const { return rescales_; }

  // Persistence: the state shared by all items, and one item's count and score. DecodeGlobals
  // and DecodeItem return false, and change nothing, for a value the encoders cannot write
  // (malformed, a negative count, a score that is not finite and >= 0, a time outside
  // [0, stream::kMaxEventTsMs)); items must have been Resize()d first. CheckItem() answers as
  // DecodeItem() would, without writing.
  void EncodeGlobals(std::string* out) const;
  bool DecodeGlobals(absl::string_view in);
  void EncodeItem(int32_t item, std::string* out) const;
  bool DecodeItem(int32_t item, absl::string_view in);
  static bool CheckItem(absl::string_view in);

 private:
  double rate_;         // ln 2 / half-life, per ms; 0 = no decay
  int64_t ref_ts_ = 0;  // scores_ are counts scaled by exp(rate * (ts - ref_ts_))
  double scale_ = 1.0;  // exp(rate * (latest ts - ref_ts_))
  bool started_ = false;
  // sums_ accumulates in double, so a count goes on growing past 2^24 (where adding 1 to a float
  // changes nothing); scores_ is its float copy, the span Scores() serves and the persisted form
  // (a loaded sum is that float: within 1 part in 2^24 of the sum, and growing from there).
  std::vector<double> sums_;
  std::vector<float> scores_;
  std::vector<double> first_sums_;  // the same over first events; persisted as a float too
  std::vector<int64_t> counts_;
  std::vector<int64_t> last_ts_;
  int64_t total_ = 0;
  int64_t rescales_ = 0;
};

}  // namespace freshet::learner

#endif  // FRESHET_LEARNER_POPULARITY_H_
