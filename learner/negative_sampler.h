// NegativeSampler: draws items with probability proportional to popularity^alpha, in O(1), from a
// table rebuilt as the counts drift (the word2vec unigram-table technique).
#ifndef FRESHET_LEARNER_NEGATIVE_SAMPLER_H_
#define FRESHET_LEARNER_NEGATIVE_SAMPLER_H_

#include <algorithm>
#include <cstdint>
#include <vector>

#include "common/random.h"
#include "learner/popularity.h"

namespace freshet::learner {

// Not thread-safe.
class NegativeSampler {
 public:
  explicit NegativeSampler(float alpha) : alpha_(alpha) {}

  // Call once per event. Rebuilds the table when enough events arrived since the last build: early
  // in a stream (when the catalog changes fast) often, later at most every 256k events.
  void Observe(const Popularity& popularity, int32_t catalog_size);
  // Continues after a restart from state that has learnt `events` events: the next Observe()
  // rebuilds, and later rebuilds follow the schedule of a stream `events` long (a rebuild is
  // O(catalog) on the learning thread; a restarted sampler must not go back to rebuilding every
  // few events).
  void Resume(int64_t events) {
    events_ = std::max<int64_t>(events, 0);
    next_rebuild_ = 0;
  }

  // A random item row; -1 while nothing has been observed.
  int32_t Sample(Rng& rng) const { return Resolve(static_cast<uint32_t>(rng.Next() >> 32)); }

  // Sample() in two steps, so that callers can prefetch between them: a uniform 32-bit draw
  // `r` picks table slot SlotAddress(r); Resolve(r) reads it (-1 while nothing was observed).
  int32_t Resolve(uint32_t r) const { return table_.empty() ? -1 : table_[Slot(r)]; }
  const int32_t* SlotAddress(uint32_t r) const {
    return table_.empty() ? nullptr : &table_[Slot(r)];
  }

  // Probability that Sample() returns `item` (for logQ correction); a small floor for items that
  // joined after the last rebuild.
  float Probability(int32_t item) const {
    return item < static_cast<int32_t>(prob_.size()) && prob_[item] > 0 ? prob_[item] : min_prob_;
  }
  // log(Probability(item)), precomputed.
  float LogProbability(int32_t item) const {
    return item < static_cast<int32_t>(log_prob_.size()) && prob_[item] > 0 ? log_prob_[item]
                                                                            : log_min_prob_;
  }

 private:
  size_t Slot(uint32_t r) const {
    return static_cast<size_t>((static_cast<uint64_t>(r) * table_.size()) >> 32);
  }
  void Rebuild(const Popularity& popularity, int32_t catalog_size);

  float alpha_;
  int64_t events_ = 0;
  int64_t next_rebuild_ = 0;
  std::vector<int32_t> table_;
  std::vector<float> prob_;
  std::vector<float> log_prob_;
  float min_prob_ = 1.0f;
  float log_min_prob_ = 0.0f;
};

}  // namespace freshet::learner

#endif  // FRESHET_LEARNER_NEGATIVE_SAMPLER_H_
