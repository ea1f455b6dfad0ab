#include "learner/popularity.h"

#include <algorithm>
#include <cmath>
#include <cstddef>

#include "common/byte_codec.h"
#include "stream/event_validation.h"

namespace freshet::learner {

Popularity::Popularity(double half_life_s)
    : rate_(half_life_s > 0 ? std::log(2.0) / (half_life_s * 1000.0) : 0.0) {}

void Popularity::Resize(int32_t items) {
  if (items > static_cast<int32_t>(scores_.size())) {
    sums_.resize(static_cast<size_t>(items), 0.0);
    scores_.resize(static_cast<size_t>(items), 0.0f);
    first_sums_.resize(static_cast<size_t>(items), 0.0);
    counts_.resize(static_cast<size_t>(items), 0);
    last_ts_.resize(static_cast<size_t>(items), 0);
  }
}

void Popularity::Add(int32_t item, float weight, int64_t ts_ms, bool first_of_user) {
  ++counts_[item];
  ++total_;
  last_ts_[item] = ts_ms;
  if (rate_ == 0) {
    sums_[item] += weight;
    scores_[item] = static_cast<float>(sums_[item]);
    if (first_of_user) first_sums_[item] += weight;
    return;
  }
  if (!started_) {
    ref_ts_ = ts_ms;
    started_ = true;
  }
  // Adding weight * exp(rate * (ts - ref)) instead of decaying every score at every event keeps
  // updates O(1); when the factor grows large, everything is rescaled to a new reference time.
  double factor = std::exp(rate_ * static_cast<double>(ts_ms - ref_ts_));
  if (factor > 1e20) {
    const double shrink = 1.0 / factor;
    for (size_t i = 0; i < sums_.size(); ++i) {
      sums_[i] *= shrink;
      scores_[i] = static_cast<float>(sums_[i]);
      first_sums_[i] *= shrink;
    }
    scale_ /= factor;
    ref_ts_ = ts_ms;
    factor = 1.0;
    ++rescales_;
  }
  scale_ = std::max(scale_, factor);
  sums_[item] += weight * factor;
  scores_[item] = static_cast<float>(sums_[item]);
  if (first_of_user) first_sums_[item] += weight * factor;
}

double Popularity::Value(int32_t item) const {
  return rate_ == 0 ? sums_[item] : sums_[item] / scale_;
}

double Popularity::FirstValue(int32_t item) const {
  return rate_ == 0 ? first_sums_[item] : first_sums_[item] / scale_;
}

void Popularity::NewUserScores(double prior, absl::Span<float> out) const {
  const size_t n = std::min(out.size(), sums_.size());
  double all = 0, first = 0;
  for (size_t i = 0; i < n; ++i) {
    all += sums_[i];
    first += first_sums_[i];
  }
  // Both sums carry the same decay factor, so their ratio, and the shares, are as of now.
  const double prior_per_all = all > 0 ? prior / all : 0.0;
  const double norm = first + prior > 0 ? 1.0 / (first + prior) : 0.0;
  for (size_t i = 0; i < n; ++i) {
    out[i] = static_cast<float>((first_sums_[i] + prior_per_all * sums_[i]) * norm);
  }
  std::fill(out.begin() + static_cast<std::ptrdiff_t>(n), out.end(), 0.0f);
}

void Popularity::EncodeGlobals(std::string* out) const {
  ByteWriter w(out);
  w.Put(ref_ts_);
  w.Put(scale_);
  w.Put(static_cast<uint8_t>(started_));
  w.Put(total_);
}

bool Popularity::DecodeGlobals(absl::string_view in) {
  // Read whole and checked before anything is written: a refused value changes nothing.
  ByteReader r(in);
  int64_t ref_ts = 0, total = 0;
  double scale = 0;
  uint8_t started = 0;
  if (!r.Get(&ref_ts) || !r.Get(&scale) || !r.Get(&started) || !r.Get(&total) || !r.done() ||
      ref_ts < 0 || ref_ts >= stream::kMaxEventTsMs || !std::isfinite(scale) || scale <= 0 ||
      started > 1 || total < 0) {
    return false;
  }
  ref_ts_ = ref_ts;
  scale_ = scale;
  started_ = started != 0;
  total_ = total;
  return true;
}

void Popularity::EncodeItem(int32_t item, std::string* out) const {
  ByteWriter w(out);
  w.Put(counts_[item]);
  w.Put(scores_[item]);
  w.Put(last_ts_[item]);
  w.Put(static_cast<float>(first_sums_[item]));
}

namespace {

// An item's persisted popularity: count, score, latest time, and (absent from rows written before
// first-event counts existed: 0 then) the first-event score.
struct ItemPopularity {
  int64_t count = 0;
  float score = 0;
  int64_t last_ts = 0;
  float first = 0;
};

bool ReadItem(absl::string_view in, ItemPopularity* p) {
  ByteReader r(in);
  if (!r.Get(&p->count) || !r.Get(&p->score) || !r.Get(&p->last_ts)) return false;
  if (!r.done() && !r.Get(&p->first)) return false;
  return r.done() && p->count >= 0 && std::isfinite(p->score) && p->score >= 0 && p->last_ts >= 0 &&
         p->last_ts < stream::kMaxEventTsMs && std::isfinite(p->first) && p->first >= 0;
}

}  // namespace

bool Popularity::CheckItem(absl::string_view in) {
  ItemPopularity p;
  return ReadItem(in, &p);
}

bool Popularity::DecodeItem(int32_t item, absl::string_view in) {
  ItemPopularity p;
  if (!ReadItem(in, &p)) return false;
  counts_[item] = p.count;
  scores_[item] = p.score;
  last_ts_[item] = p.last_ts;
  sums_[item] = p.score;
  first_sums_[item] = p.first;
  return true;
}

}  // namespace freshet::learner
