#include "learner/negative_sampler.h"

#include <algorithm>
#include <cmath>

namespace freshet::learner {

void NegativeSampler::Observe(const Popularity& popularity, int32_t catalog_size) {
  ++events_;
  if (events_ < next_rebuild_) return;
  Rebuild(popularity, catalog_size);
  // Every 1/8 of the stream so far: often while the catalog takes shape, at most every 256k events
  // later (a rebuild costs O(catalog); popularity moves slowly by then).
  next_rebuild_ = events_ + std::clamp<int64_t>(events_ / 8, 16, 262144);
}

void NegativeSampler::Rebuild(const Popularity& popularity, int32_t catalog_size) {
  // Counts (not decayed scores) keep the distribution stable; +1 gives every known item a chance.
  std::vector<double> weight(static_cast<size_t>(catalog_size));
  double total = 0;
  for (int32_t i = 0; i < catalog_size; ++i) {
    weight[i] = std::pow(static_cast<double>(popularity.Count(i)) + 1.0, alpha_);
    total += weight[i];
  }
  if (total <= 0) return;
  // Table size: enough slots that the rarest item gets about one.
  const size_t size =
      std::clamp<size_t>(static_cast<size_t>(catalog_size) * 8, 1024, size_t{1} << 22);
  table_.clear();
  table_.reserve(size);
  prob_.assign(static_cast<size_t>(catalog_size), 0.0f);
  double cumulative = 0;
  for (int32_t i = 0; i < catalog_size; ++i) {
    cumulative += weight[i];
    const size_t until = static_cast<size_t>(cumulative / total * static_cast<double>(size) + 0.5);
    while (table_.size() < until) table_.push_back(i);
  }
  if (table_.empty()) table_.push_back(0);
  min_prob_ = 1.0f / static_cast<float>(table_.size());
  for (int32_t item : table_) prob_[item] += min_prob_;
  log_min_prob_ = std::log(min_prob_);
  log_prob_.resize(prob_.size());
  for (size_t i = 0; i < prob_.size(); ++i) {
    log_prob_[i] = prob_[i] > 0 ? std::log(prob_[i]) : log_min_prob_;
  }
}

}  // namespace freshet::learner
