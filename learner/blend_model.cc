#include "learner/blend_model.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/byte_codec.h"
#include "common/status_macros.h"
#include "learner/internal/log1p.h"
#include "learner/internal/row_checks.h"
#include "learner/internal/vector_ops.h"

namespace freshet::learner {

using internal::Standardise;

namespace {

constexpr float kAdagradEpsilon = 1e-6f;
constexpr const char* kFeatureNames[] = {"bpr",        "cooc",     "history", "transitions",
                                         "popularity", "trending", "last",    "long_term",
                                         "profile",    "ials",     "ease",    "topics"};
// Initial weights: bpr and cooc as the hybrid model adds them, the others smaller.
constexpr float kInitialWeights[] = {1.0f,  1.0f,  0.5f,  1.0f,  0.25f, 0.25f,
                                     0.25f, 0.25f, 0.25f, 0.25f, 0.25f, 0.25f};

config::Config CoocConfig(config::Config config) {
  config.cooc_popularity_weight = 0;  // popularity is a feature of its own
  return config;
}

// The profile component's table: every pair within the recent history, whatever the time between.
config::Config ProfileConfig(config::Config config) {
  config.cooc_popularity_weight = 0;
  config.cooc_window = config.history_recent;
  config.cooc_decay = 1.0f;
  config.cooc_session_gap_s = 0;
  config.cooc_user_exponent = config.blend_profile_user_exponent;
  return config;
}

// The topics component's own table (config::BlendTopicsOwnTable): pairs as in the profile table,
// within blend.topics_window items and weighed with blend.topics_user_exponent.
config::Config TopicsTableConfig(config::Config config) {
  config = ProfileConfig(config);
  config.cooc_window = std::min(config.blend_topics_window, config.history_recent);
  config.cooc_user_exponent = config.blend_topics_user_exponent;
  return config;
}

}  // namespace

const char* BlendModel::FeatureName(Feature f) { return kFeatureNames[f]; }

absl::StatusOr<std::vector<BlendModel::Feature>> BlendModel::ParseFeatures(
    absl::string_view names) {
  std::vector<Feature> features;
  for (absl::string_view name : absl::StrSplit(names, ',', absl::SkipWhitespace())) {
    name = absl::StripAsciiWhitespace(name);
    int found = -1;
    for (int f = 0; f < kNumFeatures; ++f) {
      if (name == kFeatureNames[f]) found = f;
    }
    if (found < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("blend.features: unknown feature '", name,
                       "'; valid: ", absl::StrJoin(kFeatureNames, ", ")));
    }
    if (std::find(features.begin(), features.end(), found) != features.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("blend.features: '", name, "' is named twice"));
    }
    features.push_back(static_cast<Feature>(found));
  }
  if (features.empty()) return absl::InvalidArgumentError("blend.features names no feature");
  return features;
}

BlendModel::BlendModel(const config::Config& config, std::vector<Feature> features,
                       const Popularity* popularity, const kernels::Backend* backend)
    : config_(config),
      features_(std::move(features)),
      own_topics_table_(config::BlendTopicsOwnTable(config)),
      popularity_(popularity),
      backend_(backend),
      bpr_(config, popularity, backend),
      cooc_(CoocConfig(config), popularity, backend),
      profile_(ProfileConfig(config), popularity, backend),
      topics_table_(TopicsTableConfig(config), popularity, backend),
      ials_(config, popularity, backend),
      sessions_(config.cooc_session_gap_s) {
  for (Feature f : features_) {
    uses_[f] = true;
    weights_.push_back(kInitialWeights[f]);
  }
  // The cold and session-start sets start at zero: such users start with the shared weights.
  weights_.resize(
      std::max({weights_.size(), ColdSet() + features_.size(), StartSet() + features_.size()}),
      0.0f);
  accumulators_.assign(weights_.size(), 0.0f);
}

void BlendModel::Grow(int32_t users, int32_t items) {
  if (UsesBpr()) bpr_.Grow(users, items);
  if (UsesCooc()) cooc_.Grow(users, items);
  if (UsesProfileTable()) profile_.Grow(users, items);
  if (own_topics_table_) topics_table_.Grow(users, items);
  if (Uses(kIals)) ials_.Grow(users, items);
  sessions_.Grow(users);
  next_.resize(static_cast<size_t>(items));
  out_.resize(static_cast<size_t>(items), 0.0);
  trend_.resize(static_cast<size_t>(items), 0.0f);
  trend_at_.resize(static_cast<size_t>(items), 0);
  items_ = items;
}

void BlendModel::Prefetch(const Interaction& upcoming) const {
  if (UsesBpr()) bpr_.Prefetch(upcoming);
}

void BlendModel::Learn(const Interaction& event) {
  // A deferred fit not yet installed: done now, before this event changes what it reads.
  if (fit_pending_catalog_ > 0) FitComponents(fit_pending_catalog_);
  // Test, then train: the ranker steps on the components' state before the event.
  if (config_.blend_lr > 0 && features_.size() > 1 && RankerLearnsFrom(event) &&
      RankerDue(event, config_.blend_sample > 0 ? config_.blend_sample : event.catalog)) {
    if (config_.blend_sample > 0) {
      SampledRankerStep(event);
    } else {
      RankerStep(event);
    }
  }
  if (UsesBpr()) bpr_.Learn(event);
  if (UsesCooc()) cooc_.Learn(event);
  if (UsesProfileTable()) profile_.Learn(event);
  if (own_topics_table_) {
    if (config_.blend_topics_unit_weights && event.weight != 1.0f) {
      Interaction unit = event;
      unit.weight = 1.0f;
      topics_table_.Learn(unit);
    } else {
      topics_table_.Learn(event);
    }
  }
  if (Uses(kIals)) ials_.Learn(event);
  const int session = sessions_.Items(event.user, event.ts_ms);
  sessions_.Count(event.user, event.ts_ms);
  // The latest event's time, not the latest time seen: one event dated years ahead moves the
  // queries' clock only until the next event.
  now_ms_ = event.ts_ms;
  if (Uses(kTransitions)) LearnTransitions(event, session);
  ++clock_;
  if (Uses(kTrending)) {
    trend_[event.item] = Trending(event.item) + event.weight;
    trend_at_[event.item] = clock_;
  }
  if (UsesFits() && clock_ - fit_at_ >= config_.blend_ease_refit) FitDue(event.catalog);
}

void BlendModel::FitDue(int32_t catalog) {
  if (defer_work_) {
    fit_at_ = clock_;
    fit_pending_catalog_ = std::max(1, catalog);
  } else {
    FitComponents(catalog);
  }
}

void BlendModel::FitComponents(int32_t catalog) {
  fit_at_ = clock_;
  fit_pending_catalog_ = 0;
  ++fits_;
  if (Uses(kEase) &&
      !ease_.Fit(profile_, catalog, config_.blend_ease_items, config_.blend_ease_lambda)) {
    ++fits_refused_;
  }
  // A topics fit refused (nothing to group yet) keeps the earlier one, uncounted (see the header).
  if (Uses(kTopics)) {
    topics_.Fit(TopicsTable(), catalog, config_.blend_topics_items, config_.blend_topics);
  }
}

// A fit prepared off the exclusive hold, and the fit it is (the clock when it fell due).
struct BlendModel::ComponentFits : DeferredWork {
  Ease ease;
  Topics topics;
  bool ease_ok = false;
  bool topics_ok = false;
  int64_t due_at = 0;
};

int64_t BlendModel::LearnsBeforeDeferredWork() const {
  if (!UsesFits()) return std::numeric_limits<int64_t>::max();
  return std::max<int64_t>(1, fit_at_ + config_.blend_ease_refit - clock_);
}

std::unique_ptr<DeferredWork> BlendModel::PrepareDeferredWork() const {
  if (fit_pending_catalog_ == 0) return nullptr;
  auto fit = std::make_unique<ComponentFits>();
  fit->due_at = fit_at_;
  if (Uses(kEase)) {
    fit->ease_ok = fit->ease.Fit(profile_, fit_pending_catalog_, config_.blend_ease_items,
                                 config_.blend_ease_lambda);
  }
  if (Uses(kTopics)) {
    fit->topics_ok = fit->topics.Fit(TopicsTable(), fit_pending_catalog_,
                                     config_.blend_topics_items, config_.blend_topics);
  }
  return fit;
}

void BlendModel::InstallDeferredWork(std::unique_ptr<DeferredWork> work) {
  auto* fit = dynamic_cast<ComponentFits*>(work.get());
  if (fit == nullptr || fit_pending_catalog_ == 0 || fit->due_at != fit_at_) return;
  fit_pending_catalog_ = 0;
  ++fits_;
  ++fits_deferred_;
  // A refused fit keeps the earlier one, as Ease::Fit() and Topics::Fit() do.
  if (Uses(kEase)) {
    if (fit->ease_ok) {
      ease_ = std::move(fit->ease);
    } else {
      ++fits_refused_;
    }
  }
  if (Uses(kTopics) && fit->topics_ok) topics_ = std::move(fit->topics);
}

float BlendModel::Trending(int32_t item) const {
  const double age = static_cast<double>(clock_ - trend_at_[item]);
  return trend_[item] * static_cast<float>(std::exp2(-age / config_.blend_trending_half_life));
}

void BlendModel::LearnTransitions(const Interaction& event, int session) {
  const int n =
      std::min({config_.blend_transition_window, static_cast<int>(event.recent.size()), session});
  float w = event.weight;
  for (int k = 0; k < n; ++k) {
    const int32_t j = event.recent[event.recent.size() - 1 - k];
    if (j != event.item) {
      auto [it, inserted] = next_[j].try_emplace(event.item, 0.0f);
      it->second += w;
      out_[j] += w;
      transition_pairs_ += inserted ? 1 : 0;
      MarkItem(j);
    }
    w *= config_.blend_transition_decay;
  }
}

void BlendModel::RawScores(Feature f, const UserQuery& query, absl::Span<float> out) const {
  const int32_t catalog = static_cast<int32_t>(out.size());
  switch (f) {
    case kBpr:
      bpr_.ScoreAll(query, out);
      return;
    case kCooc:
      cooc_.ScoreAll(query, out);
      return;
    case kHistory:
      std::fill(out.begin(), out.end(), 0.0f);
      cooc_.AddScores(query.recent, config_.history_recent, config_.blend_history_decay, out);
      return;
    case kTransitions: {
      std::fill(out.begin(), out.end(), 0.0f);
      const int n =
          std::min<int>(config_.blend_transition_window, static_cast<int>(query.recent.size()));
      float w = 1.0f;
      for (int k = 0; k < n; ++k) {
        const int32_t j = query.recent[query.recent.size() - 1 - k];
        const float scale = w / (static_cast<float>(out_[j]) + 1.0f);
        for (const auto& [item, c] : next_[j]) {
          if (item < catalog) out[item] += scale * c;
        }
        w *= config_.blend_transition_decay;
      }
      return;
    }
    case kPopularity:
      for (int32_t i = 0; i < catalog; ++i) out[i] = static_cast<float>(popularity_->Value(i));
      internal::Log1pInPlace(out);
      return;
    case kTrending:
      for (int32_t i = 0; i < catalog; ++i) out[i] = Trending(i);
      internal::Log1pInPlace(out);
      return;
    case kLast:
      std::fill(out.begin(), out.end(), 0.0f);
      cooc_.AddScores(query.recent, 1, 1.0f, out);
      return;
    case kProfile:
      std::fill(out.begin(), out.end(), 0.0f);
      profile_.AddScores(query.recent, config_.history_recent, config_.blend_history_decay, out);
      return;
    case kIals:
      ials_.ScoreAll(query, out);
      return;
    case kEase:
      std::fill(out.begin(), out.end(), 0.0f);
      ease_.AddScores(query.recent, config_.history_recent, out);
      return;
    case kTopics:
      std::fill(out.begin(), out.end(), 0.0f);
      topics_.AddScores(query.recent, config_.history_recent, config_.blend_topics_prior, out);
      return;
    case kLongTerm: {
      const float* user = bpr_.UserVector(query.user);
      const kernels::ItemMatrixView items = bpr_.ItemVectors();
      const int32_t n = static_cast<int32_t>(std::min<int64_t>(catalog, items.rows));
      for (int32_t i = 0; i < n; ++i) {
        out[i] = internal::DotPadded(user, items.vectors + i * items.stride,
                                     static_cast<int>(items.stride));
      }
      std::fill(out.begin() + n, out.end(), 0.0f);
      return;
    }
    case kNumFeatures:
      break;
  }
}

void BlendModel::SparseRawScores(Feature f, absl::Span<const int32_t> recent, absl::Span<float> acc,
                                 std::vector<int32_t>* touched) const {
  const int32_t catalog = static_cast<int32_t>(acc.size());
  int window = 0;
  float decay = 1.0f;
  switch (f) {
    case kCooc:
      window = config_.cooc_window;
      decay = config_.cooc_decay;
      break;
    case kHistory:
      window = config_.history_recent;
      decay = config_.blend_history_decay;
      break;
    case kLast:
      window = 1;
      break;
    case kProfile:
      window = config_.history_recent;
      decay = config_.blend_history_decay;
      break;
    case kTransitions: {
      const int n = std::min<int>(config_.blend_transition_window, static_cast<int>(recent.size()));
      float w = 1.0f;
      for (int k = 0; k < n; ++k) {
        const int32_t j = recent[recent.size() - 1 - k];
        const float scale = w / (static_cast<float>(out_[j]) + 1.0f);
        for (const auto& [item, c] : next_[j]) {
          if (item >= catalog) continue;
          // Counts are > 0, so a score once above 0 stays there: each row is listed once.
          const bool was_zero = acc[item] == 0.0f;
          acc[item] += scale * c;
          if (was_zero && acc[item] != 0.0f) touched->push_back(item);
        }
        w *= config_.blend_transition_decay;
      }
      return;
    }
    default:
      return;
  }
  const CoocModel& table = f == kProfile ? profile_ : cooc_;
  table.AddScores(recent, window, decay, acc, touched);
}

void BlendModel::FeatureScores(Feature f, const UserQuery& query, absl::Span<float> out) const {
  RawScores(f, query, out);
  if ((Sparse(f) || f == kTopics) && config_.blend_sparse_transform == "log") LogScale(out);
}

bool BlendModel::Unscaled(Feature f) const {
  return config_.blend_sparse_scale == "none" && (Sparse(f) || f == kTopics);
}

void BlendModel::LogScale(absl::Span<float> out) {
  // Sparse scores are heavy-tailed; the log keeps a few large ones from dominating the mix.
  double sum = 0;
  int64_t positive = 0;
  for (float x : out) {
    if (x > 0) {
      sum += x;
      ++positive;
    }
  }
  if (positive == 0) return;
  const float inv_mean = static_cast<float>(static_cast<double>(positive) / sum);
  for (float& x : out) x = x > 0 ? x * inv_mean : 0.0f;
  internal::Log1pInPlace(out);
}

BlendModel::Context BlendModel::QueryContext(const UserQuery& query) const {
  return {Cold(query.recent), config_.blend_session_start && sessions_.Starts(query.user, now_ms_)};
}

BlendModel::Context BlendModel::EventContext(const Interaction& event) const {
  return {Cold(event.recent),
          config_.blend_session_start && sessions_.Starts(event.user, event.ts_ms)};
}

void BlendModel::EffectiveWeights(Context context, float* out) const {
  const size_t nf = features_.size();
  for (size_t f = 0; f < nf; ++f) {
    out[f] = EaseOff(context, f)
                 ? 0.0f
                 : weights_[f] + (context.cold && ColdSet() > 0 ? weights_[ColdSet() + f] : 0.0f) +
                       (context.start && StartSet() > 0 ? weights_[StartSet() + f] : 0.0f);
  }
}

void BlendModel::Score(const UserQuery& query, Context context, int32_t catalog,
                       std::vector<float>* z, absl::Span<float> scores) const {
  std::fill(scores.begin(), scores.end(), 0.0f);
  float weights[kNumFeatures];
  EffectiveWeights(context, weights);
  std::vector<float> own;
  if (z == nullptr) {
    own.resize(static_cast<size_t>(catalog));
  } else {
    z->resize(features_.size() * static_cast<size_t>(catalog));
  }
  for (size_t f = 0; f < features_.size(); ++f) {
    const absl::Span<float> v = z == nullptr
                                    ? absl::MakeSpan(own)
                                    : absl::MakeSpan(z->data() + f * static_cast<size_t>(catalog),
                                                     static_cast<size_t>(catalog));
    FeatureScores(features_[f], query, v);
    if (!Unscaled(features_[f])) Standardise(v);
    const float w = weights[f];
    for (int32_t i = 0; i < catalog; ++i) scores[i] += w * v[i];
  }
}

void BlendModel::ScoreAll(const UserQuery& query, absl::Span<float> scores) const {
  const int32_t catalog = static_cast<int32_t>(std::min<size_t>(scores.size(), items_));
  Score(query, QueryContext(query), catalog, nullptr,
        scores.subspan(0, static_cast<size_t>(catalog)));
}

absl::Status BlendModel::Recommend(const UserQuery& query, int k,
                                   std::vector<kernels::ScoredItem>* out) const {
  std::vector<float> scores(static_cast<size_t>(items_));
  ScoreAll(query, absl::MakeSpan(scores));
  return backend_->TopKFromScores(scores.data(), static_cast<int64_t>(scores.size()), query.exclude,
                                  k, out);
}

bool BlendModel::RankerLearnsFrom(const Interaction& event) const {
  // A user without history is one a request finds unknown, answered by popularity
  // (Learner::Recommend), never by the blend.
  if (event.recent.empty()) return false;
  return config_.blend_learn_repeats ||
         std::find(event.recent.begin(), event.recent.end(), event.item) == event.recent.end();
}

bool BlendModel::RankerDue(const Interaction& event, int32_t cost) {
  if (clock_ < config_.blend_warmup_events) return true;
  // Outside the budget, which such events neither add to nor spend.
  if (config_.blend_context_steps) {
    const Context context = EventContext(event);
    if ((context.cold && ColdSet() > 0) || (context.start && StartSet() > 0)) return true;
  }
  budget_ += config_.blend_train_cost;
  if (budget_ < cost) return false;
  budget_ -= cost;
  return true;
}

void BlendModel::Update(const std::vector<float>& grad_in, Context context) {
  const size_t nf = features_.size();
  // ease, weighing 0 for cold users (EffectiveWeights), does not learn from their events either.
  float grad[kNumFeatures];
  for (size_t f = 0; f < nf; ++f) grad[f] = EaseOff(context, f) ? 0.0f : grad_in[f];
  for (size_t f = 0; f < nf; ++f) {
    if (!std::isfinite(grad[f] * grad[f])) return;
  }
  // The shared set, and the sets of the event's context.
  size_t sets[3] = {0};
  size_t n = 1;
  if (context.cold && ColdSet() > 0) sets[n++] = ColdSet();
  if (context.start && StartSet() > 0) sets[n++] = StartSet();
  for (size_t s = 0; s < n; ++s) {
    for (size_t f = 0; f < nf; ++f) {
      const size_t k = sets[s] + f;
      accumulators_[k] += grad[f] * grad[f];
      weights_[k] -= config_.blend_lr / std::sqrt(accumulators_[k] + kAdagradEpsilon) * grad[f];
    }
  }
  ++ranker_steps_;
  MarkItem(0);  // item row 0 carries the ranker
}

void BlendModel::RankerStep(const Interaction& event) {
  const int32_t catalog = event.catalog;
  if (catalog < 2 || event.item >= catalog) return;
  // The user's latest items stand in for the seen items a request would exclude.
  exclude_.assign(event.recent.begin(), event.recent.end());
  std::sort(exclude_.begin(), exclude_.end());
  const UserQuery query{event.user, event.recent, exclude_};
  scores_.resize(static_cast<size_t>(catalog));
  const Context context = EventContext(event);
  Score(query, context, catalog, &z_, absl::MakeSpan(scores_));

  // d/dw of -log softmax(s)_true over the catalog less the excluded items = E_p[z] - z_true.
  const size_t nf = features_.size();
  const size_t stride = static_cast<size_t>(catalog);
  float max_score = -INFINITY;
  for (int32_t i : exclude_) {
    if (i != event.item && i < catalog) scores_[i] = -INFINITY;
  }
  for (int32_t i = 0; i < catalog; ++i) max_score = std::max(max_score, scores_[i]);
  double total = 0;
  for (int32_t i = 0; i < catalog; ++i) {
    const float p = scores_[i] == -INFINITY ? 0.0f : std::exp(scores_[i] - max_score);
    scores_[i] = p;
    total += p;
  }
  std::vector<float> grad(nf, 0.0f);
  for (size_t f = 0; f < nf; ++f) {
    const float* zf = z_.data() + f * stride;
    double expected = 0;
    for (int32_t i = 0; i < catalog; ++i) expected += static_cast<double>(scores_[i]) * zf[i];
    grad[f] = static_cast<float>(expected / total) - zf[event.item];
  }
  Update(grad, context);
}

void BlendModel::SampledRankerStep(const Interaction& event) {
  const int32_t catalog = event.catalog;
  if (catalog < 2 || event.item >= catalog) return;
  exclude_.assign(event.recent.begin(), event.recent.end());
  std::sort(exclude_.begin(), exclude_.end());
  exclude_.erase(std::unique(exclude_.begin(), exclude_.end()), exclude_.end());
  const UserQuery query{event.user, event.recent, exclude_};
  const size_t nf = features_.size();
  const auto excluded = [&](int32_t i) {
    return i != event.item && std::binary_search(exclude_.begin(), exclude_.end(), i);
  };

  // The candidates: the event's item and the best sample_top items of each sparse component are
  // certain (importance 1); the uniform draws that are neither stand for the rest R of the
  // catalog, each with importance |R| / (draws in R), so the softmax's normaliser is estimated
  // without bias (the logQ correction of a uniform proposal).
  if (chosen_.size() < static_cast<size_t>(catalog))
    chosen_.resize(static_cast<size_t>(catalog), 0);
  candidates_.assign(1, event.item);
  chosen_[event.item] = 1;
  draws_.resize(static_cast<size_t>(config_.blend_sample));
  for (int32_t& d : draws_) d = static_cast<int32_t>(rng_.Below(static_cast<uint32_t>(catalog)));

  // Sparse components at the rows their lists reach (the others are 0), so their mean and
  // variance over the catalog are exact at a cost independent of its size; the others only at the
  // candidates and draws, standardised by the draws' mean and variance.
  sparse_.resize(nf);
  sparse_rows_.resize(nf);
  float sparse_mean[kNumFeatures] = {}, sparse_inv[kNumFeatures] = {};
  for (size_t f = 0; f < nf; ++f) {
    if (!Sparse(features_[f])) continue;
    std::vector<float>& acc = sparse_[f];
    if (acc.size() < static_cast<size_t>(catalog)) acc.resize(static_cast<size_t>(catalog), 0.0f);
    std::vector<int32_t>& rows = sparse_rows_[f];
    rows.clear();
    SparseRawScores(features_[f], event.recent,
                    absl::MakeSpan(acc.data(), static_cast<size_t>(catalog)), &rows);
    // In row order, so that the sums below do not depend on the hash maps' iteration order (which
    // differs between two learners of the same stream): a scan of the scores when the rows are
    // many (the rows listed are those above 0), else a sort.
    if (rows.size() * 8 > static_cast<size_t>(catalog)) {
      rows.clear();
      for (int32_t i = 0; i < catalog; ++i) {
        if (acc[i] != 0.0f) rows.push_back(i);
      }
    } else {
      std::sort(rows.begin(), rows.end());
    }
    if (config_.blend_sparse_transform == "log") {
      double sum = 0;
      int64_t positive = 0;
      for (int32_t i : rows) {
        if (acc[i] > 0) {
          sum += acc[i];
          ++positive;
        }
      }
      const float inv_mean =
          positive > 0 ? static_cast<float>(static_cast<double>(positive) / sum) : 0.0f;
      for (int32_t i : rows) acc[i] = acc[i] > 0 ? internal::Log1p(acc[i] * inv_mean) : 0.0f;
    }
    if (Unscaled(features_[f])) {
      sparse_mean[f] = 0.0f;
      sparse_inv[f] = 1.0f;
    } else {
      double sum = 0, sum_sq = 0;
      for (int32_t i : rows) {
        sum += acc[i];
        sum_sq += static_cast<double>(acc[i]) * acc[i];
      }
      const internal::Spread spread = internal::MeanAndInverseSd(sum, sum_sq, catalog);
      sparse_mean[f] = spread.mean;
      sparse_inv[f] = spread.inv_sd;
    }
    touched_.clear();
    for (int32_t i : rows) {
      if (acc[i] > 0 && !chosen_[i] && !excluded(i)) touched_.push_back(i);
    }
    const size_t top = std::min<size_t>(touched_.size(), config_.blend_sample_top);
    std::nth_element(
        touched_.begin(), touched_.begin() + static_cast<std::ptrdiff_t>(top), touched_.end(),
        [&](int32_t a, int32_t b) { return acc[a] > acc[b] || (acc[a] == acc[b] && a < b); });
    for (size_t t = 0; t < top; ++t) {
      chosen_[touched_[t]] = 1;
      candidates_.push_back(touched_[t]);
    }
  }
  const size_t certain = candidates_.size();
  int64_t rest = catalog - static_cast<int64_t>(certain);
  for (int32_t i : exclude_) rest -= (i < catalog && !chosen_[i]) ? 1 : 0;
  int64_t in_rest = 0;
  for (int32_t d : draws_) {
    if (!chosen_[d] && !excluded(d)) {
      candidates_.push_back(d);
      ++in_rest;
    }
  }
  importance_.assign(candidates_.size(), 1.0f);
  if (in_rest > 0) {
    std::fill(importance_.begin() + static_cast<std::ptrdiff_t>(certain), importance_.end(),
              static_cast<float>(static_cast<double>(rest) / static_cast<double>(in_rest)));
  }

  const size_t nc = candidates_.size();
  candidate_z_.resize(nf * nc);
  std::vector<float> query_vector;
  const kernels::ItemMatrixView items = bpr_.ScoringMatrix();
  if (Uses(kBpr)) bpr_.QueryVector(query, &query_vector);
  std::vector<float> ials_vector;
  const kernels::ItemMatrixView ials_items = ials_.ScoringMatrix();
  if (Uses(kIals)) ials_.QueryVector(query, &ials_vector);
  // ease at its fitted items (the others score 0), in a catalog-wide scratch cleared after use.
  if (Uses(kEase)) {
    if (ease_scores_.size() < static_cast<size_t>(catalog)) {
      ease_scores_.resize(static_cast<size_t>(catalog), 0.0f);
    }
    ease_.AddScores(event.recent, config_.history_recent,
                    absl::MakeSpan(ease_scores_.data(), static_cast<size_t>(catalog)));
  }
  // topics over the catalog (it scores every grouped item), in a scratch of the catalog's size.
  if (Uses(kTopics)) {
    topics_scores_.assign(static_cast<size_t>(catalog), 0.0f);
    topics_.AddScores(event.recent, config_.history_recent, config_.blend_topics_prior,
                      absl::MakeSpan(topics_scores_));
    if (config_.blend_sparse_transform == "log") LogScale(absl::MakeSpan(topics_scores_));
  }
  const float* user_vector = Uses(kLongTerm) ? bpr_.UserVector(event.user) : nullptr;
  const auto raw = [&](Feature feature, int32_t i) -> float {
    switch (feature) {
      case kBpr:
        return internal::Dot(query_vector.data(), items.vectors + i * items.stride,
                             static_cast<int>(items.stride)) +
               items.bias[i];
      case kLongTerm:
        return internal::DotPadded(user_vector, items.vectors + i * items.stride,
                                   static_cast<int>(items.stride));
      case kPopularity:
        return internal::Log1p(static_cast<float>(popularity_->Value(i)));
      case kTrending:
        return internal::Log1p(Trending(i));
      case kEase:
        return ease_scores_[i];
      case kTopics:
        return topics_scores_[i];
      case kIals:
        return internal::Dot(ials_vector.data(), ials_items.vectors + i * ials_items.stride,
                             static_cast<int>(ials_items.stride)) +
               ials_items.bias[i];
      default:
        return 0.0f;
    }
  };
  for (size_t f = 0; f < nf; ++f) {
    float* zf = candidate_z_.data() + f * nc;
    if (Sparse(features_[f])) {
      const float* v = sparse_[f].data();
      for (size_t c = 0; c < nc; ++c) zf[c] = (v[candidates_[c]] - sparse_mean[f]) * sparse_inv[f];
      for (int32_t i : sparse_rows_[f]) sparse_[f][i] = 0.0f;
      continue;
    }
    float shift = 0.0f, inv = 1.0f;
    if (!Unscaled(features_[f])) {
      double sum = 0, sum_sq = 0;
      for (int32_t d : draws_) {
        const double x = raw(features_[f], d);
        sum += x;
        sum_sq += x * x;
      }
      const internal::Spread spread = internal::MeanAndInverseSd(
          sum, sum_sq, std::max<double>(1, static_cast<double>(draws_.size())));
      shift = spread.mean;
      inv = spread.inv_sd;
    }
    for (size_t c = 0; c < nc; ++c) {
      zf[c] = (raw(features_[f], candidates_[c]) - shift) * inv;
    }
  }

  for (size_t c = 0; c < certain; ++c) chosen_[candidates_[c]] = 0;
  if (Uses(kEase)) {
    for (int32_t i : ease_.items()) {
      if (i < catalog) ease_scores_[i] = 0.0f;
    }
  }

  // The same gradient as a full step, E_p[z] - z_true, with p over the weighted candidates.
  const Context context = EventContext(event);
  float weights[kNumFeatures];
  EffectiveWeights(context, weights);
  scores_.assign(nc, 0.0f);
  for (size_t f = 0; f < nf; ++f) {
    const float* zf = candidate_z_.data() + f * nc;
    for (size_t c = 0; c < nc; ++c) scores_[c] += weights[f] * zf[c];
  }
  const float max_score = *std::max_element(scores_.begin(), scores_.end());
  double total = 0;
  for (size_t c = 0; c < nc; ++c) {
    scores_[c] = importance_[c] * std::exp(scores_[c] - max_score);
    total += scores_[c];
  }
  std::vector<float> grad(nf, 0.0f);
  for (size_t f = 0; f < nf; ++f) {
    const float* zf = candidate_z_.data() + f * nc;
    double expected = 0;
    for (size_t c = 0; c < nc; ++c) expected += static_cast<double>(scores_[c]) * zf[c];
    grad[f] = static_cast<float>(expected / total) - zf[0];
  }
  Update(grad, context);
}

void BlendModel::EncodeUser(int32_t row, std::string* out) const {
  ByteWriter w(out);
  std::string part;
  if (UsesBpr()) bpr_.EncodeUser(row, &part);
  w.PutString(part);
  part.clear();
  if (UsesCooc()) cooc_.EncodeUser(row, &part);
  w.PutString(part);
  part.clear();
  sessions_.Encode(row, &part);
  w.PutString(part);
  if (Uses(kIals)) {
    part.clear();
    ials_.EncodeUser(row, &part);
    w.PutString(part);
  }
}

absl::Status BlendModel::DecodeUser(int32_t row, absl::string_view in) {
  ByteReader r(in);
  absl::string_view bpr, cooc, session, ials;
  if (!r.GetStringView(&bpr) || !r.GetStringView(&cooc) || !r.GetStringView(&session) ||
      (Uses(kIals) && !r.GetStringView(&ials)) || !r.done()) {
    return absl::DataLossError(
        absl::StrCat("blend user row ", row, ": malformed (", in.size(), " bytes)"));
  }
  // Every part is checked before any is decoded, so a refused row changes none.
  if (UsesBpr()) FRESHET_RETURN_IF_ERROR(bpr_.CheckUser(row, bpr));
  if (UsesCooc()) FRESHET_RETURN_IF_ERROR(cooc_.CheckUser(row, cooc));
  FRESHET_RETURN_IF_ERROR(sessions_.Check(row, session));
  if (Uses(kIals)) FRESHET_RETURN_IF_ERROR(ials_.CheckUser(row, ials));
  if (UsesBpr()) FRESHET_RETURN_IF_ERROR(bpr_.DecodeUser(row, bpr));
  if (UsesCooc()) FRESHET_RETURN_IF_ERROR(cooc_.DecodeUser(row, cooc));
  FRESHET_RETURN_IF_ERROR(sessions_.Decode(row, session));
  if (Uses(kIals)) FRESHET_RETURN_IF_ERROR(ials_.DecodeUser(row, ials));
  now_ms_ = std::max(now_ms_, sessions_.LastTime(row));
  return absl::OkStatus();
}

void BlendModel::ResetUser(int32_t row) {
  if (UsesBpr()) bpr_.ResetUser(row);
  if (UsesCooc()) cooc_.ResetUser(row);
  if (Uses(kIals)) ials_.ResetUser(row);
  sessions_.Reset(row);
}

void BlendModel::EncodeItem(int32_t row, std::string* out) const {
  ByteWriter w(out);
  std::string part;
  if (UsesBpr()) bpr_.EncodeItem(row, &part);
  w.PutString(part);
  part.clear();
  if (UsesCooc()) cooc_.EncodeItem(row, &part);
  w.PutString(part);
  w.Put(static_cast<float>(out_[row]));
  w.PutVarint(next_[row].size());
  for (const auto& [item, count] : next_[row]) {
    w.Put(item);
    w.Put(count);
  }
  w.Put(trend_[row]);
  w.Put(trend_at_[row]);
  if (row == 0) {
    w.PutVarint(weights_.size());
    for (size_t f = 0; f < weights_.size(); ++f) {
      w.Put(weights_[f]);
      w.Put(accumulators_[f]);
    }
    w.Put(ranker_steps_);
  }
  if (UsesProfileTable()) {
    part.clear();
    profile_.EncodeItem(row, &part);
    w.PutString(part);
  }
  if (own_topics_table_) {
    part.clear();
    topics_table_.EncodeItem(row, &part);
    w.PutString(part);
  }
  if (Uses(kIals)) {
    part.clear();
    ials_.EncodeItem(row, &part);
    w.PutString(part);
  }
}

absl::Status BlendModel::ParseItem(int32_t row, absl::string_view in, bool served,
                                   ItemRow* out) const {
  const internal::RowName name{"blend", "item", row};
  const auto malformed = [&](absl::string_view what) {
    return internal::BadRow(name, absl::StrCat("malformed ", what, " (", in.size(), " bytes)"));
  };
  ByteReader r(in);
  if (!r.GetStringView(&out->bpr) || !r.GetStringView(&out->cooc)) return malformed("parts");
  const int64_t items = static_cast<int64_t>(next_.size());
  if (!r.Get(&out->total) || !r.GetVarint(&out->n) || out->n > static_cast<uint64_t>(items) ||
      !r.GetBytes(out->n * internal::kItemWeightBytes, &out->pairs)) {
    return malformed("transitions");
  }
  if (!r.Get(&out->trend) || !r.Get(&out->trend_at)) return malformed("trending count");
  if (row == 0) {
    uint64_t nf = 0;
    if (!r.GetVarint(&nf) || nf != weights_.size()) return malformed("ranker");
    for (size_t f = 0; f < weights_.size(); ++f) {
      if (!r.Get(&out->weights[f]) || !r.Get(&out->accumulators[f])) return malformed("ranker");
    }
    if (!r.Get(&out->ranker_steps)) return malformed("ranker");
  }
  if (UsesProfileTable() && !r.GetStringView(&out->profile)) return malformed("profile part");
  if (own_topics_table_ && !r.GetStringView(&out->topics)) return malformed("topics part");
  if (Uses(kIals) && !r.GetStringView(&out->ials)) return malformed("ials part");
  if (!r.done()) return malformed("row");

  if (UsesBpr()) FRESHET_RETURN_IF_ERROR(bpr_.CheckItem(row, out->bpr));
  if (UsesCooc()) FRESHET_RETURN_IF_ERROR(cooc_.CheckItem(row, out->cooc));
  if (UsesProfileTable()) FRESHET_RETURN_IF_ERROR(profile_.CheckItem(row, out->profile));
  if (own_topics_table_) FRESHET_RETURN_IF_ERROR(topics_table_.CheckItem(row, out->topics));
  if (Uses(kIals)) FRESHET_RETURN_IF_ERROR(ials_.CheckItem(row, out->ials, served));
  FRESHET_RETURN_IF_ERROR(internal::CheckNonNegative(name, "transitions total", out->total));
  FRESHET_RETURN_IF_ERROR(
      internal::CheckItemWeights(name, "transition", out->pairs, out->n, items));
  FRESHET_RETURN_IF_ERROR(internal::CheckNonNegative(name, "trending count", out->trend));
  if (out->trend_at < 0) {
    return internal::BadRow(name, absl::StrCat("trending count is of event ", out->trend_at));
  }
  if (row == 0) {
    for (size_t f = 0; f < weights_.size(); ++f) {
      FRESHET_RETURN_IF_ERROR(internal::CheckParameter(name, "a ranker weight", out->weights[f]));
      FRESHET_RETURN_IF_ERROR(
          internal::CheckNonNegative(name, "a ranker accumulator", out->accumulators[f]));
    }
    if (out->ranker_steps < 0) {
      return internal::BadRow(name, absl::StrCat("ranker steps are ", out->ranker_steps));
    }
  }
  return absl::OkStatus();
}

absl::Status BlendModel::DecodeItem(int32_t row, absl::string_view in) {
  return DecodeItem(row, in, /*served=*/false);
}

absl::Status BlendModel::DecodeServedItem(int32_t row, absl::string_view in) {
  return DecodeItem(row, in, /*served=*/true);
}

absl::Status BlendModel::DecodeItem(int32_t row, absl::string_view in, bool served) {
  // Every part is checked before any is decoded, so a refused row changes none.
  ItemRow parsed;
  FRESHET_RETURN_IF_ERROR(ParseItem(row, in, served, &parsed));
  if (UsesBpr()) FRESHET_RETURN_IF_ERROR(bpr_.DecodeItem(row, parsed.bpr));
  if (UsesCooc()) FRESHET_RETURN_IF_ERROR(cooc_.DecodeItem(row, parsed.cooc));
  if (UsesProfileTable()) FRESHET_RETURN_IF_ERROR(profile_.DecodeItem(row, parsed.profile));
  if (own_topics_table_) FRESHET_RETURN_IF_ERROR(topics_table_.DecodeItem(row, parsed.topics));
  if (Uses(kIals)) {
    FRESHET_RETURN_IF_ERROR(served ? ials_.DecodeServedItem(row, parsed.ials)
                                   : ials_.DecodeItem(row, parsed.ials));
  }
  internal::DecodeItemWeights(parsed.pairs, parsed.n, &next_[row]);
  out_[row] = parsed.total;
  trend_[row] = parsed.trend;
  trend_at_[row] = parsed.trend_at;
  if (row == 0) {
    std::copy_n(parsed.weights, weights_.size(), weights_.begin());
    std::copy_n(parsed.accumulators, weights_.size(), accumulators_.begin());
    ranker_steps_ = parsed.ranker_steps;
  }
  return absl::OkStatus();
}

void BlendModel::FollowEvents(int64_t events, bool rows_followed) {
  // A round's rows that come after its globals (in a later batch) are rows the fit of that round
  // has not seen: the learner's item rows change only as it learns events, so rows at the
  // clock of the latest fit are of the fit's own round.
  const bool late_rows = rows_followed && events == clock_ && fit_at_ == clock_ && clock_ > 0;
  clock_ = events;
  if (UsesFits() && (clock_ - fit_at_ >= config_.blend_ease_refit || late_rows)) {
    FitDue(items_);
  }
}

void BlendModel::FinishLoad(int32_t users, int32_t items, int64_t events) {
  if (UsesBpr()) bpr_.FinishLoad(users, items, events);
  if (UsesCooc()) cooc_.FinishLoad(users, items, events);
  if (UsesProfileTable()) profile_.FinishLoad(users, items, events);
  if (own_topics_table_) topics_table_.FinishLoad(users, items, events);
  if (Uses(kIals)) ials_.FinishLoad(users, items, events);
  clock_ = events;
  // Not persisted: fitted again from the loaded tables.
  if (UsesFits()) FitComponents(items);
  budget_ = 0;
  transition_pairs_ = 0;
  for (const auto& map : next_) transition_pairs_ += static_cast<int64_t>(map.size());
}

int64_t BlendModel::BytesPerUser() const {
  return (UsesBpr() ? bpr_.BytesPerUser() : 0) + (UsesCooc() ? cooc_.BytesPerUser() : 0) +
         (Uses(kIals) ? ials_.BytesPerUser() : 0) + sessions_.BytesPerUser();
}

int64_t BlendModel::BytesPerItem() const {
  const int64_t items = std::max<int64_t>(1, static_cast<int64_t>(next_.size()));
  const int64_t pair_bytes =
      transition_pairs_ * (static_cast<int64_t>(sizeof(std::pair<int32_t, float>)) + 1) * 8 / 7;
  return (UsesBpr() ? bpr_.BytesPerItem() : 0) + (UsesCooc() ? cooc_.BytesPerItem() : 0) +
         (UsesProfileTable() ? profile_.BytesPerItem() : 0) +
         (own_topics_table_ ? topics_table_.BytesPerItem() : 0) +
         (Uses(kIals) ? ials_.BytesPerItem() : 0) + (Uses(kEase) ? ease_.Bytes() / items : 0) +
         (Uses(kTopics) ? topics_.Bytes() / items : 0) + pair_bytes / items +
         static_cast<int64_t>(sizeof(next_[0]) + 2 * sizeof(float) + sizeof(int64_t));
}

}  // namespace freshet::learner
