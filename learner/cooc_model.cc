#include "learner/cooc_model.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/byte_codec.h"
#include "common/status_macros.h"
#include "learner/internal/row_checks.h"

namespace freshet::learner {

CoocModel::CoocModel(const config::Config& config, const Popularity* popularity,
                     const kernels::Backend* backend)
    : config_(config),
      popularity_(popularity),
      backend_(backend),
      sessions_(config.cooc_session_gap_s) {}

void CoocModel::Grow(int32_t users, int32_t items) {
  sessions_.Grow(users);
  neighbours_.resize(static_cast<size_t>(items));
  counts_.resize(static_cast<size_t>(items), 0);
  inverse_norm_.resize(static_cast<size_t>(items), 1.0f);
}

void CoocModel::AddPair(int32_t a, int32_t b, float weight) {
  auto [it, inserted] = neighbours_[a].try_emplace(b, 0.0f);
  it->second += weight;
  pairs_ += inserted ? 1 : 0;
}

void CoocModel::Learn(const Interaction& event) {
  const int n = std::min({config_.cooc_window, static_cast<int>(event.recent.size()),
                          sessions_.Items(event.user, event.ts_ms)});
  sessions_.Count(event.user, event.ts_ms);
  float w = event.weight;
  if (config_.cooc_user_exponent > 0 && n > 1) {
    w *= std::pow(static_cast<float>(n), -config_.cooc_user_exponent);
  }
  for (int k = 0; k < n; ++k) {
    const int32_t j = event.recent[event.recent.size() - 1 - k];
    if (j != event.item) {
      MarkItem(j);
      AddPair(event.item, j, w);
      AddPair(j, event.item, w);
    }
    w *= config_.cooc_decay;
  }
  if (pairs_ > config_.cooc_max_pairs) Prune();
  inverse_norm_[event.item] =
      std::pow(static_cast<float>(++counts_[event.item]) + 1.0f, -config_.cooc_norm_exponent);
}

void CoocModel::Prune() {
  // Keep the strongest 3/4 of cooc.max_pairs: estimate the weight at that quantile from a sample
  // of about 64k stored weights, then drop every pair at or below it in one pass.
  const int64_t target = config_.cooc_max_pairs * 3 / 4;
  const int64_t stride = std::max<int64_t>(1, pairs_ / 65536);
  std::vector<float> sample;
  int64_t seen = 0;
  for (const auto& map : neighbours_) {
    for (const auto& [item, weight] : map) {
      if (seen++ % stride == 0) sample.push_back(weight);
    }
  }
  const double drop_fraction = 1.0 - static_cast<double>(target) / static_cast<double>(pairs_);
  const size_t nth = std::min(
      sample.size() - 1, static_cast<size_t>(drop_fraction * static_cast<double>(sample.size())));
  std::nth_element(sample.begin(), sample.begin() + static_cast<std::ptrdiff_t>(nth), sample.end());
  const float threshold = sample[nth];
  for (auto& map : neighbours_) {
    for (auto it = map.begin(); it != map.end();) {
      if (it->second <= threshold) {
        map.erase(it++);
        --pairs_;
      } else {
        ++it;
      }
    }
  }
  if (dirty_items() != nullptr) dirty_items()->MarkAll(static_cast<int32_t>(neighbours_.size()));
}

void CoocModel::ScoreAll(const UserQuery& query, absl::Span<float> scores) const {
  const int32_t catalog = static_cast<int32_t>(std::min(scores.size(), neighbours_.size()));
  if (config_.cooc_popularity_weight == 0) {
    std::fill(scores.begin(), scores.end(), 0.0f);
  } else {
    for (int32_t i = 0; i < catalog; ++i) {
      scores[i] =
          config_.cooc_popularity_weight * static_cast<float>(std::log1p(popularity_->Value(i)));
    }
  }
  AddScores(query.recent, config_.cooc_window, config_.cooc_decay,
            scores.subspan(0, static_cast<size_t>(catalog)));
}

void CoocModel::AddScores(absl::Span<const int32_t> recent, int window, float decay,
                          absl::Span<float> scores) const {
  AccumulateScores<false>(recent, window, decay, scores, nullptr);
}

void CoocModel::AddScores(absl::Span<const int32_t> recent, int window, float decay,
                          absl::Span<float> scores, std::vector<int32_t>* touched) const {
  AccumulateScores<true>(recent, window, decay, scores, touched);
}

template <bool kTrack>
void CoocModel::AccumulateScores(absl::Span<const int32_t> recent, int window, float decay,
                                 absl::Span<float> scores, std::vector<int32_t>* touched) const {
  const int32_t catalog = static_cast<int32_t>(std::min(scores.size(), neighbours_.size()));
  const int n = std::min<int>(window, static_cast<int>(recent.size()));
  float w = 1.0f;
  for (int k = 0; k < n; ++k) {
    const int32_t j = recent[recent.size() - 1 - k];
    const float scale = w * inverse_norm_[j];
    for (const auto& [item, c] : neighbours_[j]) {
      if (item >= catalog) continue;
      float& score = scores[item];
      if constexpr (kTrack) {
        // Weights are > 0, so a score once above 0 stays there: each row is listed once.
        const bool was_zero = score == 0.0f;
        score += scale * c * inverse_norm_[item];
        if (was_zero && score != 0.0f) touched->push_back(item);
      } else {
        score += scale * c * inverse_norm_[item];
      }
    }
    w *= decay;
  }
}

absl::Status CoocModel::Recommend(const UserQuery& query, int k,
                                  std::vector<kernels::ScoredItem>* out) const {
  std::vector<float> scores(neighbours_.size());
  ScoreAll(query, absl::MakeSpan(scores));
  return backend_->TopKFromScores(scores.data(), static_cast<int64_t>(scores.size()), query.exclude,
                                  k, out);
}

// A persisted item is its interaction count and its neighbours as (item, weight) pairs.
void CoocModel::EncodeItem(int32_t row, std::string* out) const {
  ByteWriter w(out);
  w.Put(counts_[row]);
  w.PutVarint(neighbours_[row].size());
  for (const auto& [item, weight] : neighbours_[row]) {
    w.Put(item);
    w.Put(weight);
  }
}

absl::Status CoocModel::ParseItem(int32_t row, absl::string_view in, ItemRow* out) const {
  const internal::RowName name{"cooc", "item", row};
  ByteReader r(in);
  const int64_t items = static_cast<int64_t>(neighbours_.size());
  if (!r.Get(&out->count) || !r.GetVarint(&out->n) || out->n > static_cast<uint64_t>(items) ||
      !r.GetBytes(out->n * internal::kItemWeightBytes, &out->pairs) || !r.done()) {
    return internal::BadRow(name, absl::StrCat("malformed neighbour list (", in.size(), " bytes)"));
  }
  if (out->count < 0) return internal::BadRow(name, absl::StrCat("count is ", out->count));
  return internal::CheckItemWeights(name, "neighbour", out->pairs, out->n, items);
}

absl::Status CoocModel::CheckItem(int32_t row, absl::string_view in) const {
  ItemRow parsed;
  return ParseItem(row, in, &parsed);
}

absl::Status CoocModel::DecodeItem(int32_t row, absl::string_view in) {
  ItemRow parsed;
  FRESHET_RETURN_IF_ERROR(ParseItem(row, in, &parsed));
  internal::DecodeItemWeights(parsed.pairs, parsed.n, &neighbours_[row]);
  counts_[row] = parsed.count;
  inverse_norm_[row] =
      std::pow(static_cast<float>(parsed.count) + 1.0f, -config_.cooc_norm_exponent);
  return absl::OkStatus();
}

void CoocModel::FinishLoad(int32_t, int32_t, int64_t) {
  pairs_ = 0;
  for (const auto& map : neighbours_) pairs_ += static_cast<int64_t>(map.size());
}

int64_t CoocModel::BytesPerItem() const {
  const int64_t items = std::max<int64_t>(1, static_cast<int64_t>(neighbours_.size()));
  // A flat_hash_map slot is the pair plus a control byte; maps run at most 7/8 full.
  const int64_t pair_bytes =
      pairs_ * (static_cast<int64_t>(sizeof(std::pair<int32_t, float>)) + 1) * 8 / 7;
  return pair_bytes / items +
         static_cast<int64_t>(sizeof(neighbours_[0]) + sizeof(float) + sizeof(int64_t));
}

}  // namespace freshet::learner
