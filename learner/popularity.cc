#include "learner/popularity.h"

#include <cmath>

#include "common/byte_codec.h"
#include "stream/event_validation.h"

namespace freshet::learner {

Popularity::Popularity(double half_life_s)
    : rate_(half_life_s > 0 ? std::log(2.0) / (half_life_s * 1000.0) : 0.0) {}

void Popularity::Resize(int32_t items) {
  if (items > static_cast<int32_t>(scores_.size())) {
    sums_.resize(static_cast<size_t>(items), 0.0);
    scores_.resize(static_cast<size_t>(items), 0.0f);
    counts_.resize(static_cast<size_t>(items), 0);
    last_ts_.resize(static_cast<size_t>(items), 0);
  }
}

void Popularity::Add(int32_t item, float weight, int64_t ts_ms) {
  ++counts_[item];
  ++total_;
  last_ts_[item] = ts_ms;
  if (rate_ == 0) {
    sums_[item] += weight;
    scores_[item] = static_cast<float>(sums_[item]);
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
    }
    scale_ /= factor;
    ref_ts_ = ts_ms;
    factor = 1.0;
    ++rescales_;
  }
  scale_ = std::max(scale_, factor);
  sums_[item] += weight * factor;
  scores_[item] = static_cast<float>(sums_[item]);
}

double Popularity::Value(int32_t item) const {
  return rate_ == 0 ? sums_[item] : sums_[item] / scale_;
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
}

bool Popularity::CheckItem(absl::string_view in) {
  ByteReader r(in);
  int64_t count = 0, last_ts = 0;
  float score = 0;
  return r.Get(&count) && r.Get(&score) && r.Get(&last_ts) && r.done() && count >= 0 &&
         std::isfinite(score) && score >= 0 && last_ts >= 0 && last_ts < stream::kMaxEventTsMs;
}

bool Popularity::DecodeItem(int32_t item, absl::string_view in) {
  if (!CheckItem(in)) return false;
  ByteReader r(in);
  r.Get(&counts_[item]);
  r.Get(&scores_[item]);
  r.Get(&last_ts_[item]);
  sums_[item] = scores_[item];
  return true;
}

}  // namespace freshet::learner
