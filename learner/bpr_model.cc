#include "learner/bpr_model.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/byte_codec.h"
#include "learner/internal/vector_ops.h"

namespace freshet::learner {

using internal::Dot;

namespace {
constexpr float kAdagradEpsilon = 1e-6f;
}  // namespace

// Terms of the weighted row sums: 1 + bpr.window context rows, or 1 + bpr.negatives candidates.
constexpr int kMaxTerms = 1025;

BprModel::BprModel(const config::Config& config, const Popularity* popularity,
                   const kernels::Backend* backend)
    : config_(config),
      popularity_(popularity),
      backend_(backend),
      dim_(config.dim),
      stride_((config.dim + 15) / 16 * 16),
      softmax_(config.bpr_loss == "softmax"),
      users_(config.dim),
      context_(config.dim),
      items_(config.dim),
      sampler_(config.bpr_negative_alpha),
      sample_rng_(config.seed),
      log_negatives_(std::log(static_cast<float>(config.bpr_negatives))) {
  const size_t stride = static_cast<size_t>(items_.stride());
  query_.assign(stride, 0.0f);
  grad_query_.assign(stride, 0.0f);
  candidates_.reserve(static_cast<size_t>(config.bpr_negatives) + 1);
  logits_.reserve(static_cast<size_t>(config.bpr_negatives) + 1);
  coeff_.reserve(static_cast<size_t>(config.bpr_negatives) + 1);
}

void BprModel::Grow(int32_t users, int32_t items) {
  // Long-term user vectors start at zero: a new user is described by their latest items until
  // their own vector has learnt something.
  users_.Resize(users, 0.0f, config_.seed);
  if (!config_.bpr_tied_context) context_.Resize(items, config_.init_std, config_.seed + 1);
  items_.Resize(items, config_.init_std, config_.seed + 2);
  bias_.resize(static_cast<size_t>(items), 0.0f);
  bias_accumulator_.resize(static_cast<size_t>(items), 0.0f);
}

void BprModel::Prefetch(const Interaction& upcoming) const {
  const auto fetch_row = [this](const float* row) {
    for (int64_t off = 0; off < stride_; off += 16) __builtin_prefetch(row + off);
  };
  fetch_row(users_.Row(upcoming.user));
  __builtin_prefetch(users_.AccumulatorAddress(upcoming.user));  // 4 bytes per user: often cold
  PrefetchItem(upcoming.item);
  const size_t n = std::min(upcoming.recent.size(), static_cast<size_t>(config_.bpr_window));
  for (size_t k = 0; k < n; ++k) {
    const int32_t j = upcoming.recent[upcoming.recent.size() - 1 - k];
    fetch_row(ContextRow(j));
  }
}

void BprModel::PrefetchItem(int32_t item) const {
  // The row only: the per-item scalars (accumulator, bias, sampling probability) are 4 bytes per
  // item and mostly in L2 already; prefetching them too costs more issue slots than it saves.
  const float* row = items_.Row(item);
  for (int64_t off = 0; off < stride_; off += 16) __builtin_prefetch(row + off);
}

int32_t BprModel::NextNegative() {
  // Two stages of kAhead draws each: a raw draw enters draw_queue_ (its table slot is fetched);
  // kAhead draws later it is resolved to an item and enters negative_queue_ (its rows are
  // fetched); kAhead draws after that it is used.
  constexpr size_t kAhead = 32;
  const auto draw = [this] { return static_cast<uint32_t>(sample_rng_.Next() >> 32); };
  if (draw_queue_.empty()) {
    draw_queue_.resize(kAhead);
    negative_queue_.resize(kAhead);
    for (size_t i = 0; i < kAhead; ++i) negative_queue_[i] = sampler_.Resolve(draw());
    for (uint32_t& r : draw_queue_) r = draw();
  }
  const int32_t next = negative_queue_[queue_head_];
  const int32_t resolved = sampler_.Resolve(draw_queue_[queue_head_]);
  negative_queue_[queue_head_] = resolved;
  if (resolved >= 0 && resolved < items_.rows()) PrefetchItem(resolved);
  const uint32_t fresh = draw();
  draw_queue_[queue_head_] = fresh;
  if (const int32_t* slot = sampler_.SlotAddress(fresh)) __builtin_prefetch(slot);
  queue_head_ = (queue_head_ + 1) % kAhead;
  return next;
}

void BprModel::QueryVector(int32_t user, absl::Span<const int32_t> recent, float* out,
                           std::vector<float>* weights) const {
  const int n = std::min<int>(config_.bpr_window, static_cast<int>(recent.size()));
  weights->resize(static_cast<size_t>(n));
  const float* rows[kMaxTerms];
  float coeffs[kMaxTerms];
  rows[0] = users_.Row(user);
  coeffs[0] = config_.bpr_long_term_weight;
  float w = 1.0f, total = 0.0f;
  for (int k = 0; k < n; ++k) {
    (*weights)[k] = w;
    total += w;
    w *= config_.bpr_window_decay;
  }
  const float norm = n > 0 ? config_.bpr_short_term_weight / total : 0.0f;
  for (int k = 0; k < n; ++k) {
    (*weights)[k] *= norm;
    rows[k + 1] = ContextRow(recent[recent.size() - 1 - k]);
    coeffs[k + 1] = (*weights)[k];
  }
  internal::WeightedSumPadded(rows, coeffs, n + 1, out, stride_);
}

std::vector<float> BprModel::QueryVectorFor(const UserQuery& query) const {
  std::vector<float> vec(static_cast<size_t>(stride_), 0.0f);
  std::vector<float> weights;
  QueryVector(query.user, query.recent, vec.data(), &weights);
  return vec;
}

void BprModel::AdagradStep(float* __restrict row, float& accumulator, float coeff,
                           const float* __restrict direction, float direction_sq_norm) const {
  accumulator += coeff * coeff * direction_sq_norm / static_cast<float>(dim_);
  const float step = config_.bpr_lr / std::sqrt(accumulator + kAdagradEpsilon);
  const float keep = 1.0f - step * config_.bpr_l2;
  internal::ScaleAddPadded(keep, row, -step * coeff, direction, stride_);
}

void BprModel::Learn(const Interaction& event) {
  const int32_t catalog = event.catalog;
  sampler_.Observe(*popularity_, catalog);
  QueryVector(event.user, event.recent, query_.data(), &weights_);

  candidates_.clear();
  candidates_.push_back(event.item);
  for (int n = 0; n < config_.bpr_negatives; ++n) {
    int32_t j = NextNegative();
    if (j == event.item) j = NextNegative();  // one retry; an accidental hit is skipped
    if (j >= 0 && j != event.item && j < catalog) candidates_.push_back(j);
  }
  const size_t m = candidates_.size();
  if (m < 2) return;  // nothing to contrast with yet (the very first item)

  logits_.resize(m);
  coeff_.resize(m);
  for (size_t c = 0; c < m; ++c) {
    const int32_t item = candidates_[c];
    logits_[c] = internal::DotPadded(query_.data(), items_.Row(item), stride_) + bias_[item];
  }
  const float weight = event.weight;
  if (softmax_) {
    // Sampled softmax over {positive} + negatives with logQ correction, so that the learnt scores
    // estimate the full softmax despite popularity-biased sampling.
    float max_logit = -INFINITY;
    for (size_t c = 0; c < m; ++c) {
      logits_[c] -= sampler_.LogProbability(candidates_[c]) + log_negatives_;
      max_logit = std::max(max_logit, logits_[c]);
    }
    float total = 0;
    for (size_t c = 0; c < m; ++c) {
      coeff_[c] = internal::ExpNonPositive(logits_[c] - max_logit);
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
  const float* rows[kMaxTerms];
  for (size_t c = 0; c < m; ++c) rows[c] = items_.Row(candidates_[c]);
  internal::WeightedSumPadded(rows, coeff_.data(), static_cast<int>(m), grad_query_.data(),
                              stride_);

  const float query_sq = internal::DotPadded(query_.data(), query_.data(), stride_);
  const float grad_query_sq = internal::DotPadded(grad_query_.data(), grad_query_.data(), stride_);
  for (size_t c = 0; c < m; ++c) {
    const int32_t item = candidates_[c];
    MarkItem(item);
    AdagradStep(items_.Row(item), items_.Accumulator(item), coeff_[c], query_.data(), query_sq);
    bias_accumulator_[item] += coeff_[c] * coeff_[c];
    bias_[item] -= config_.bpr_lr / std::sqrt(bias_accumulator_[item] + kAdagradEpsilon) * coeff_[c];
  }
  if (config_.bpr_long_term_weight > 0) {
    AdagradStep(users_.Row(event.user), users_.Accumulator(event.user),
                config_.bpr_long_term_weight, grad_query_.data(), grad_query_sq);
  }
  if (config_.bpr_tied_context) return;  // the short-term vector learns through the items
  for (size_t k = 0; k < weights_.size(); ++k) {
    const int32_t j = event.recent[event.recent.size() - 1 - k];
    MarkItem(j);
    AdagradStep(context_.Row(j), context_.Accumulator(j), weights_[k], grad_query_.data(),
                grad_query_sq);
  }
}

absl::Status BprModel::Recommend(const UserQuery& query, int k,
                                 std::vector<kernels::ScoredItem>* out) const {
  const std::vector<float> vec = QueryVectorFor(query);
  const kernels::TopKQuery q{vec.data(), query.exclude};
  return backend_->TopK(items_.View(bias_.data()), absl::MakeConstSpan(&q, 1), k,
                        absl::MakeSpan(out, 1));
}

void BprModel::ScoreAll(const UserQuery& query, absl::Span<float> scores) const {
  const std::vector<float> vec = QueryVectorFor(query);
  const int64_t n = std::min<int64_t>(items_.rows(), static_cast<int64_t>(scores.size()));
  for (int64_t i = 0; i < n; ++i) {
    scores[i] = internal::DotPadded(vec.data(), items_.Row(i), stride_) + bias_[i];
  }
}

// Persisted rows: a user is its long-term vector and Adagrad accumulator; an item its vector,
// accumulator, bias and bias accumulator, then (untied context only) its context vector and
// accumulator. Padding floats beyond dim are not stored (they stay zero).
void BprModel::EncodeUser(int32_t row, std::string* out) const {
  ByteWriter w(out);
  w.PutRaw(users_.Row(row), static_cast<size_t>(dim_));
  w.Put(*users_.AccumulatorAddress(row));
}

void BprModel::EncodeItem(int32_t row, std::string* out) const {
  ByteWriter w(out);
  w.PutRaw(items_.Row(row), static_cast<size_t>(dim_));
  w.Put(*items_.AccumulatorAddress(row));
  w.Put(bias_[row]);
  w.Put(bias_accumulator_[row]);
  if (!config_.bpr_tied_context) {
    w.PutRaw(context_.Row(row), static_cast<size_t>(dim_));
    w.Put(*context_.AccumulatorAddress(row));
  }
}

absl::Status BprModel::DecodeUser(int32_t row, absl::string_view in) {
  ByteReader r(in);
  r.GetRaw(users_.Row(row), static_cast<size_t>(dim_));
  r.Get(&users_.Accumulator(row));
  if (!r.done()) {
    return absl::DataLossError(absl::StrCat("bpr user row ", row, ": ", in.size(),
                                            " bytes do not hold a d=", dim_, " vector"));
  }
  return absl::OkStatus();
}

absl::Status BprModel::DecodeItem(int32_t row, absl::string_view in) {
  ByteReader r(in);
  r.GetRaw(items_.Row(row), static_cast<size_t>(dim_));
  r.Get(&items_.Accumulator(row));
  r.Get(&bias_[row]);
  r.Get(&bias_accumulator_[row]);
  if (!config_.bpr_tied_context) {
    r.GetRaw(context_.Row(row), static_cast<size_t>(dim_));
    r.Get(&context_.Accumulator(row));
  }
  if (!r.done()) {
    return absl::DataLossError(absl::StrCat("bpr item row ", row, ": ", in.size(),
                                            " bytes do not hold a d=", dim_, " item"));
  }
  return absl::OkStatus();
}

void BprModel::FinishLoad(int32_t, int32_t, int64_t events) {
  // The sampler's table is rebuilt from the loaded popularity on the next event, and from then
  // on as rarely as after `events` events in one run (not as often as at a stream's start).
  sampler_.Resume(events);
}

void BprModel::ResetUser(int32_t row) {
  std::fill_n(users_.Row(row), stride_, 0.0f);
  users_.Accumulator(row) = 0.0f;
}

int64_t BprModel::BytesPerUser() const {
  return static_cast<int64_t>(stride_ + 1) * static_cast<int64_t>(sizeof(float));
}

int64_t BprModel::BytesPerItem() const {
  const int64_t tables = config_.bpr_tied_context ? 1 : 2;
  return (tables * (stride_ + 1) + 2 + 2) * static_cast<int64_t>(sizeof(float));
}

}  // namespace freshet::learner
