#include "learner/bpr_model.h"

#include <algorithm>
#include <cmath>

#include "learner/internal/vector_ops.h"

namespace freshet::learner {

using internal::Axpy;
using internal::Dot;

namespace {
constexpr float kAdagradEpsilon = 1e-6f;
}  // namespace

BprModel::BprModel(const config::Config& config, const Popularity* popularity,
                   const kernels::Backend* backend)
    : config_(config),
      popularity_(popularity),
      backend_(backend),
      dim_(config.dim),
      softmax_(config.bpr_loss == "softmax"),
      users_(config.dim),
      context_(config.dim),
      items_(config.dim),
      sampler_(config.bpr_negative_alpha),
      rng_(config.seed) {
  const size_t stride = static_cast<size_t>(items_.stride());
  query_.assign(stride, 0.0f);
  grad_query_.assign(stride, 0.0f);
  grad_.assign(stride, 0.0f);
  candidates_.reserve(static_cast<size_t>(config.bpr_negatives) + 1);
  logits_.reserve(static_cast<size_t>(config.bpr_negatives) + 1);
  coeff_.reserve(static_cast<size_t>(config.bpr_negatives) + 1);
}

void BprModel::Grow(int32_t users, int32_t items) {
  // Long-term user vectors start at zero: a new user is described by their latest items until
  // their own vector has learnt something.
  users_.Resize(users, 0.0f, rng_);
  context_.Resize(items, config_.init_std, rng_);
  items_.Resize(items, config_.init_std, rng_);
  bias_.resize(static_cast<size_t>(items), 0.0f);
  bias_accumulator_.resize(static_cast<size_t>(items), 0.0f);
}

void BprModel::QueryVector(int32_t user, absl::Span<const int32_t> recent, float* out,
                           std::vector<float>* weights) const {
  internal::Scale(config_.bpr_long_term_weight, users_.Row(user), out, dim_);
  const int n = std::min<int>(config_.bpr_window, static_cast<int>(recent.size()));
  weights->resize(static_cast<size_t>(n));
  if (n == 0) return;
  float w = 1.0f, total = 0.0f;
  for (int k = 0; k < n; ++k) {
    (*weights)[k] = w;
    total += w;
    w *= config_.bpr_window_decay;
  }
  const float norm = config_.bpr_short_term_weight / total;
  for (int k = 0; k < n; ++k) {
    (*weights)[k] *= norm;
    Axpy((*weights)[k], context_.Row(recent[recent.size() - 1 - k]), out, dim_);
  }
}

void BprModel::AdagradStep(float* row, float& accumulator, const float* grad) const {
  accumulator += Dot(grad, grad, dim_) / static_cast<float>(dim_);
  Axpy(-config_.bpr_lr / std::sqrt(accumulator + kAdagradEpsilon), grad, row, dim_);
}

void BprModel::Learn(const Interaction& event) {
  const int32_t catalog = static_cast<int32_t>(items_.rows());
  sampler_.Observe(*popularity_, catalog);
  QueryVector(event.user, event.recent, query_.data(), &weights_);

  candidates_.clear();
  candidates_.push_back(event.item);
  for (int n = 0; n < config_.bpr_negatives; ++n) {
    int32_t j = sampler_.Sample(rng_);
    if (j == event.item) j = sampler_.Sample(rng_);  // one retry; an accidental hit is skipped
    if (j >= 0 && j != event.item && j < catalog) candidates_.push_back(j);
  }
  const size_t m = candidates_.size();
  if (m < 2) return;  // nothing to contrast with yet (the very first item)

  logits_.resize(m);
  coeff_.resize(m);
  for (size_t c = 0; c < m; ++c) {
    const int32_t item = candidates_[c];
    logits_[c] = Dot(query_.data(), items_.Row(item), dim_) + bias_[item];
  }
  const float weight = event.weight;
  if (softmax_) {
    // Sampled softmax over {positive} + negatives with logQ correction, so that the learnt scores
    // estimate the full softmax despite popularity-biased sampling.
    float max_logit = -INFINITY;
    for (size_t c = 0; c < m; ++c) {
      logits_[c] -= std::log(sampler_.Probability(candidates_[c]) *
                             static_cast<float>(config_.bpr_negatives));
      max_logit = std::max(max_logit, logits_[c]);
    }
    float total = 0;
    for (size_t c = 0; c < m; ++c) {
      coeff_[c] = std::exp(logits_[c] - max_logit);
      total += coeff_[c];
    }
    for (size_t c = 0; c < m; ++c) coeff_[c] = weight * (coeff_[c] / total - (c == 0 ? 1.0f : 0.0f));
  } else {
    coeff_[0] = 0;
    for (size_t c = 1; c < m; ++c) {
      const float g = weight / (1.0f + std::exp(logits_[0] - logits_[c]));  // 1 - sigmoid(x_0 - x_c)
      coeff_[0] -= g;
      coeff_[c] = g;
    }
  }

  // d loss / d query, from the item vectors before they move.
  std::fill(grad_query_.begin(), grad_query_.end(), 0.0f);
  for (size_t c = 0; c < m; ++c) Axpy(coeff_[c], items_.Row(candidates_[c]), grad_query_.data(), dim_);

  const float l2 = config_.bpr_l2;
  for (size_t c = 0; c < m; ++c) {
    const int32_t item = candidates_[c];
    float* row = items_.Row(item);
    internal::Scale(coeff_[c], query_.data(), grad_.data(), dim_);
    Axpy(l2, row, grad_.data(), dim_);
    AdagradStep(row, items_.Accumulator(item), grad_.data());
    bias_accumulator_[item] += coeff_[c] * coeff_[c];
    bias_[item] -= config_.bpr_lr / std::sqrt(bias_accumulator_[item] + kAdagradEpsilon) * coeff_[c];
  }
  if (config_.bpr_long_term_weight > 0) {
    float* row = users_.Row(event.user);
    internal::Scale(config_.bpr_long_term_weight, grad_query_.data(), grad_.data(), dim_);
    Axpy(l2, row, grad_.data(), dim_);
    AdagradStep(row, users_.Accumulator(event.user), grad_.data());
  }
  for (size_t k = 0; k < weights_.size(); ++k) {
    const int32_t j = event.recent[event.recent.size() - 1 - k];
    float* row = context_.Row(j);
    internal::Scale(weights_[k], grad_query_.data(), grad_.data(), dim_);
    Axpy(l2, row, grad_.data(), dim_);
    AdagradStep(row, context_.Accumulator(j), grad_.data());
  }
}

absl::Status BprModel::Recommend(const UserQuery& query, int k,
                                 std::vector<kernels::ScoredItem>* out) const {
  std::vector<float> vec(static_cast<size_t>(items_.stride()), 0.0f);
  std::vector<float> weights;
  QueryVector(query.user, query.recent, vec.data(), &weights);
  const kernels::TopKQuery q{vec.data(), query.exclude};
  return backend_->TopK(items_.View(bias_.data()), absl::MakeConstSpan(&q, 1), k,
                        absl::MakeSpan(out, 1));
}

void BprModel::ScoreAll(const UserQuery& query, absl::Span<float> scores) const {
  std::vector<float> vec(static_cast<size_t>(items_.stride()), 0.0f);
  std::vector<float> weights;
  QueryVector(query.user, query.recent, vec.data(), &weights);
  const int64_t n = std::min<int64_t>(items_.rows(), static_cast<int64_t>(scores.size()));
  for (int64_t i = 0; i < n; ++i) scores[i] = Dot(vec.data(), items_.Row(i), dim_) + bias_[i];
}

}  // namespace freshet::learner
