#include "learner/bpr_model.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/byte_codec.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "kernels/cpu_backend.h"
#include "kernels/cuda/reference.h"
#include "learner/internal/row_checks.h"
#include "learner/internal/vector_ops.h"

namespace freshet::learner {

using internal::Dot;

namespace {
constexpr float kAdagradEpsilon = 1e-6f;
// Events per micro-batch on a device unless kernels.micro_batch says otherwise.
constexpr int kDeviceMicroBatch = 256;
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
      log_negatives_(std::log(static_cast<float>(config.bpr_negatives))),
      replay_rng_(config.seed + 3) {
  const size_t stride = static_cast<size_t>(items_.stride());
  query_.assign(stride, 0.0f);
  grad_query_.assign(stride, 0.0f);
  candidates_.reserve(static_cast<size_t>(config.bpr_negatives) + 1);
  logits_.reserve(static_cast<size_t>(config.bpr_negatives) + 1);
  coeff_.reserve(static_cast<size_t>(config.bpr_negatives) + 1);
}

absl::Status BprModel::InitLearning(BprTrainerFactory make_trainer) {
  BprTrainerOptions options;
  options.dim = dim_;
  options.devices = config_.gpus;
  options.sync_every_batches = config_.gpu_sync_every_batches;
  options.sync_every_ms = config_.gpu_sync_ms;
  absl::StatusOr<std::unique_ptr<BprTrainer>> trainer = make_trainer(*backend_, options);
  if (trainer.ok()) {
    micro_batch_ = config_.micro_batch > 0 ? config_.micro_batch : kDeviceMicroBatch;
  } else if (absl::IsUnimplemented(trainer.status())) {
    if (config_.gpus > 1) {
      return absl::InvalidArgumentError(absl::StrCat("kernels.gpus = ", config_.gpus,
                                                     " needs the cuda backend (this is the ",
                                                     backend_->Name(), " backend)"));
    }
    if (config_.micro_batch == 0) return absl::OkStatus();  // event by event on the host
    trainer = NewReferenceBprTrainer(dim_);
    micro_batch_ = config_.micro_batch;
  } else {
    return trainer.status();
  }
  if (!softmax_ || !config_.bpr_tied_context) {
    return absl::InvalidArgumentError(
        "micro-batched bpr learning (a GPU backend, or kernels.micro_batch > 0) needs "
        "bpr.loss = \"softmax\" and bpr.tied_context = true");
  }
  if (config_.bpr_window > kernels::kMaxBprWindow ||
      config_.bpr_negatives >= kernels::kMaxBprCandidates) {
    return absl::InvalidArgumentError(
        absl::StrCat("micro-batched bpr learning takes bpr.window <= ", kernels::kMaxBprWindow,
                     " and bpr.negatives < ", kernels::kMaxBprCandidates));
  }
  trainer_ = std::move(*trainer);
  return absl::OkStatus();
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

void BprModel::ContextWeights(int n, std::vector<float>* weights) const {
  weights->resize(static_cast<size_t>(n));
  float w = 1.0f, total = 0.0f;
  for (int k = 0; k < n; ++k) {
    (*weights)[k] = w;
    total += w;
    w *= config_.bpr_window_decay;
  }
  const float norm = n > 0 ? config_.bpr_short_term_weight / total : 0.0f;
  for (int k = 0; k < n; ++k) (*weights)[k] *= norm;
}

void BprModel::QueryVector(int32_t user, absl::Span<const int32_t> recent, float* out,
                           std::vector<float>* weights) const {
  const int n = std::min<int>(config_.bpr_window, static_cast<int>(recent.size()));
  const float* rows[kMaxTerms];
  float coeffs[kMaxTerms];
  rows[0] = users_.Row(user);
  coeffs[0] = config_.bpr_long_term_weight;
  ContextWeights(n, weights);
  for (int k = 0; k < n; ++k) {
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
  if (trainer_ != nullptr) {
    Enqueue(event);
    if (static_cast<int64_t>(queue_.users.size()) >= micro_batch_) Flush();
    return;
  }
  sampler_.Observe(*popularity_, event.catalog);
  LearnEvent(event, /*update_user=*/true);
  if (config_.bpr_replay == 0) return;
  // Replay: steps on earlier events, drawn uniformly from the latest kReplayEvents, for the item
  // side only (their users' rows are not this event's to change).
  // The events replayed now were drawn at the previous event and their rows prefetched then.
  for (size_t r = 0; r < replay_due_.size(); ++r) {
    const ReplayEvent& past = replay_[replay_due_[r]];
    Interaction again = event;
    again.user = past.user;
    again.item = past.item;
    again.weight = past.weight;
    again.recent = absl::MakeConstSpan(past.recent, static_cast<size_t>(past.recent_size));
    LearnEvent(again, /*update_user=*/false);
  }
  ReplayEvent entry;
  entry.user = event.user;
  entry.item = event.item;
  entry.weight = event.weight;
  const size_t n = std::min({event.recent.size(), static_cast<size_t>(config_.bpr_window),
                             static_cast<size_t>(kReplayWindow)});
  std::copy(event.recent.end() - static_cast<std::ptrdiff_t>(n), event.recent.end(), entry.recent);
  entry.recent_size = static_cast<int32_t>(n);
  if (replay_.size() < kReplayEvents) {
    replay_.push_back(entry);
  } else {
    replay_[replay_next_] = entry;
    replay_next_ = (replay_next_ + 1) % kReplayEvents;
  }
  replay_due_.resize(static_cast<size_t>(config_.bpr_replay));
  for (size_t& index : replay_due_) {
    index = static_cast<size_t>(replay_rng_.Next() % replay_.size());
    const ReplayEvent& past = replay_[index];
    const float* user = users_.Row(past.user);
    for (int64_t off = 0; off < stride_; off += 16) __builtin_prefetch(user + off);
    PrefetchItem(past.item);
    for (int k = 0; k < past.recent_size; ++k) PrefetchItem(past.recent[k]);
  }
}

void BprModel::LearnEvent(const Interaction& event, bool update_user) {
  const int32_t catalog = event.catalog;
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
    for (size_t c = 0; c < m; ++c)
      coeff_[c] = weight * (coeff_[c] / total - (c == 0 ? 1.0f : 0.0f));
  } else {
    coeff_[0] = 0;
    for (size_t c = 1; c < m; ++c) {
      const float g =
          weight / (1.0f + std::exp(logits_[0] - logits_[c]));  // 1 - sigmoid(x_0 - x_c)
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
  // Every row this event writes moves by multiples of the query, the gradient of the query and
  // the coefficients; if any is not finite (or would square to infinity in an accumulator), the
  // event is skipped whole, so no NaN or infinity can ever enter a row and spread from there.
  bool finite = std::isfinite(query_sq) && std::isfinite(grad_query_sq);
  for (size_t c = 0; c < m; ++c) finite = finite && std::isfinite(coeff_[c] * coeff_[c]);
  if (!finite) {
    ++nonfinite_skips_;
    return;
  }
  for (size_t c = 0; c < m; ++c) {
    const int32_t item = candidates_[c];
    MarkItem(item);
    AdagradStep(items_.Row(item), items_.Accumulator(item), coeff_[c], query_.data(), query_sq);
    bias_accumulator_[item] += coeff_[c] * coeff_[c];
    bias_[item] -=
        config_.bpr_lr / std::sqrt(bias_accumulator_[item] + kAdagradEpsilon) * coeff_[c];
  }
  if (update_user && config_.bpr_long_term_weight > 0) {
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

void BprModel::Enqueue(const Interaction& event) {
  const int32_t catalog = event.catalog;
  sampler_.Observe(*popularity_, catalog);
  // Negatives exactly as Learn() draws them on the host.
  candidates_.clear();
  candidates_.push_back(event.item);
  for (int n = 0; n < config_.bpr_negatives; ++n) {
    int32_t j = NextNegative();
    if (j == event.item) j = NextNegative();
    if (j >= 0 && j != event.item && j < catalog) candidates_.push_back(j);
  }
  const size_t m = candidates_.size();
  if (m < 2) return;  // nothing to contrast with yet
  queue_.users.push_back(event.user);
  queue_.positives.push_back(event.item);
  queue_.weights.push_back(event.weight);
  for (int c = 0; c <= config_.bpr_negatives; ++c) {
    const bool used = static_cast<size_t>(c) < m;
    if (c > 0) queue_.negatives.push_back(used ? candidates_[c] : -1);
    queue_.log_q.push_back(used ? sampler_.LogProbability(candidates_[c]) + log_negatives_ : 0.0f);
    if (used) MarkItem(candidates_[c]);
  }
  // The short-term context, newest first, weighted as QueryVector() weights it.
  const int n = std::min<int>(config_.bpr_window, static_cast<int>(event.recent.size()));
  ContextWeights(n, &weights_);
  for (int k = 0; k < config_.bpr_window; ++k) {
    queue_.context.push_back(k < n ? event.recent[event.recent.size() - 1 - k] : -1);
    queue_.context_weights.push_back(k < n ? weights_[k] : 0.0f);
  }
}

kernels::BprTables BprModel::HostTables() {
  kernels::BprTables t;
  if (users_.rows() > 0) {
    t.users = users_.Row(0);
    t.user_acc = &users_.Accumulator(0);
  }
  if (items_.rows() > 0) {
    t.items = items_.Row(0);
    t.item_acc = &items_.Accumulator(0);
    t.bias = bias_.data();
    t.bias_acc = bias_accumulator_.data();
  }
  t.num_users = users_.rows();
  t.num_items = items_.rows();
  t.dim = dim_;
  t.stride = stride_;
  return t;
}

void BprModel::Flush() {
  if (trainer_ == nullptr || queue_.users.empty()) return;
  const kernels::BprTables host = HostTables();
  const kernels::BprBatch batch{queue_.users,   queue_.positives,       queue_.negatives,
                                queue_.log_q,   queue_.weights,         config_.bpr_negatives,
                                queue_.context, queue_.context_weights, config_.bpr_window};
  const kernels::BprParams params{config_.bpr_lr, config_.bpr_l2, kAdagradEpsilon,
                                  config_.bpr_long_term_weight};
  // Rows the host wrote since the last step go to the trainer first.
  absl::Status status = UploadPending(host);
  if (status.ok()) status = trainer_->Step(batch, params, host);
  if (!status.ok()) {
    // Nothing is lost: the host tables are complete up to this batch, so the host learns it, and
    // the trainer gets the rows it may now hold stale copies of before its next step.
    ++device_fallbacks_;
    static RateLimiter logged(1, absl::Seconds(10));
    int64_t suppressed = 0;
    if (logged.Allow(&suppressed)) {
      Log(LogLevel::kError,
          absl::StrCat("bpr: the ", trainer_->Name(), " trainer failed (", status.message(),
                       "); this micro-batch of ", batch.size(), " events was learnt on the host",
                       suppressed > 0 ? absl::StrCat(" (", suppressed, " more)") : ""));
    }
    LearnOnHost(batch, params);
    std::vector<int32_t> users, items;
    BprBatchRows(batch, params, &users, &items);
    upload_users_.insert(upload_users_.end(), users.begin(), users.end());
    upload_items_.insert(upload_items_.end(), items.begin(), items.end());
  }
  for (std::vector<int32_t>* v :
       {&queue_.users, &queue_.positives, &queue_.negatives, &queue_.context}) {
    v->clear();
  }
  for (std::vector<float>* v : {&queue_.log_q, &queue_.weights, &queue_.context_weights}) {
    v->clear();
  }
}

absl::Status BprModel::UploadPending(const kernels::BprTables& host) {
  for (int64_t r = trainer_users_; r < users_.rows(); ++r)
    upload_users_.push_back(static_cast<int32_t>(r));
  for (int64_t r = trainer_items_; r < items_.rows(); ++r)
    upload_items_.push_back(static_cast<int32_t>(r));
  trainer_users_ = users_.rows();
  trainer_items_ = items_.rows();
  if (upload_users_.empty() && upload_items_.empty()) return absl::OkStatus();
  FRESHET_RETURN_IF_ERROR(trainer_->Upload(host, upload_users_, upload_items_));
  upload_users_.clear();
  upload_items_.clear();
  return absl::OkStatus();
}

void BprModel::LearnOnHost(const kernels::BprBatch& batch, const kernels::BprParams& params) {
  const absl::Status status = kernels::ReferenceBprBatch(HostTables(), batch, params);
  if (!status.ok()) {
    // The batch was built here from valid rows; a refusal is a bug worth a loud line.
    Log(LogLevel::kError,
        absl::StrCat("bpr: the host could not learn a micro-batch: ", status.message()));
  }
}

absl::Status BprModel::TopKBatch(const kernels::Backend& backend,
                                 absl::Span<const kernels::TopKQuery> queries, int k,
                                 absl::Span<std::vector<kernels::ScoredItem>> results) const {
  // The device answers once its first step has uploaded the tables; until then (a state just
  // loaded, or a serving replica, whose rows are decoded on the host and which never steps) it
  // holds nothing, and the host tables are complete.
  if (trainer_ != nullptr && trainer_items_ > 0) {
    // Rows the trainer does not hold yet (new items of events still queued) are left out.
    const absl::Status device =
        trainer_->TopK(std::min<int64_t>(items_.rows(), trainer_items_), queries, k, results);
    if (device.ok() || absl::IsInvalidArgument(device)) return device;
    if (!absl::IsUnimplemented(device)) {
      // The host tables are a complete mirror: answer from them on the CPU.
      static const kernels::CpuBackend* const cpu = new kernels::CpuBackend();
      return cpu->TopK(ScoringMatrix(), queries, k, results);
    }
  }
  return backend.TopK(ScoringMatrix(), queries, k, results);
}

absl::Status BprModel::Recommend(const UserQuery& query, int k,
                                 std::vector<kernels::ScoredItem>* out) const {
  const std::vector<float> vec = QueryVectorFor(query);
  const kernels::TopKQuery q{vec.data(), query.exclude};
  return TopKBatch(*backend_, absl::MakeConstSpan(&q, 1), k, absl::MakeSpan(out, 1));
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

namespace {

using internal::CheckNonNegative;
using internal::CheckParameter;
using internal::CheckParameters;
using internal::FloatAt;
using internal::RowName;

}  // namespace

absl::Status BprModel::CheckUser(int32_t row, absl::string_view in) const {
  const RowName name{"bpr", "user", row};
  const size_t d = static_cast<size_t>(dim_);
  if (in.size() != (d + 1) * sizeof(float)) {
    return internal::BadRow(name,
                            absl::StrCat(in.size(), " bytes do not hold a d=", dim_, " vector"));
  }
  FRESHET_RETURN_IF_ERROR(CheckParameters(name, "vector", in.data(), d));
  return CheckNonNegative(name, "accumulator", FloatAt(in.data(), d));
}

absl::Status BprModel::CheckItem(int32_t row, absl::string_view in) const {
  const RowName name{"bpr", "item", row};
  const size_t d = static_cast<size_t>(dim_);
  const size_t floats = d + 3 + (config_.bpr_tied_context ? 0 : d + 1);
  if (in.size() != floats * sizeof(float)) {
    return internal::BadRow(name,
                            absl::StrCat(in.size(), " bytes do not hold a d=", dim_, " item"));
  }
  const char* at = in.data();
  FRESHET_RETURN_IF_ERROR(CheckParameters(name, "vector", at, d));
  FRESHET_RETURN_IF_ERROR(CheckNonNegative(name, "accumulator", FloatAt(at, d)));
  FRESHET_RETURN_IF_ERROR(CheckParameter(name, "bias", FloatAt(at, d + 1)));
  FRESHET_RETURN_IF_ERROR(CheckNonNegative(name, "bias accumulator", FloatAt(at, d + 2)));
  if (!config_.bpr_tied_context) {
    FRESHET_RETURN_IF_ERROR(
        CheckParameters(name, "context vector", at + (d + 3) * sizeof(float), d));
    FRESHET_RETURN_IF_ERROR(CheckNonNegative(name, "context accumulator", FloatAt(at, 2 * d + 3)));
  }
  return absl::OkStatus();
}

// The rows are checked whole before anything is copied: a refused row leaves the model as it was.
absl::Status BprModel::DecodeUser(int32_t row, absl::string_view in) {
  FRESHET_RETURN_IF_ERROR(CheckUser(row, in));
  ByteReader r(in);
  r.GetRaw(users_.Row(row), static_cast<size_t>(dim_));
  r.Get(&users_.Accumulator(row));
  return absl::OkStatus();
}

absl::Status BprModel::DecodeItem(int32_t row, absl::string_view in) {
  FRESHET_RETURN_IF_ERROR(CheckItem(row, in));
  ByteReader r(in);
  r.GetRaw(items_.Row(row), static_cast<size_t>(dim_));
  r.Get(&items_.Accumulator(row));
  r.Get(&bias_[row]);
  r.Get(&bias_accumulator_[row]);
  if (!config_.bpr_tied_context) {
    r.GetRaw(context_.Row(row), static_cast<size_t>(dim_));
    r.Get(&context_.Accumulator(row));
  }
  return absl::OkStatus();
}

void BprModel::FinishLoad(int32_t, int32_t, int64_t events) {
  // The sampler's table is rebuilt from the loaded popularity on the next event, and from then
  // on as rarely as after `events` events in one run (not as often as at a stream's start).
  sampler_.Resume(events);
  // Every loaded row goes to the trainer before its first step.
  trainer_users_ = 0;
  trainer_items_ = 0;
  upload_users_.clear();
  upload_items_.clear();
}

void BprModel::ResetUser(int32_t row) {
  std::fill_n(users_.Row(row), stride_, 0.0f);
  users_.Accumulator(row) = 0.0f;
  if (trainer_ != nullptr) upload_users_.push_back(row);
}

// The replicated row: [vector (dim), bias, vector accumulator, bias accumulator] and with untied
// context [context vector (dim), its accumulator].
void BprModel::ReadReplicaItem(int32_t row, bool initial, float* out) const {
  if (initial) {
    // As Grow() starts a row: accumulators and bias at zero.
    std::fill_n(out, ReplicaItemWidth(), 0.0f);
    EmbeddingTable::InitialRow(row, dim_, config_.init_std, config_.seed + 2, out);
    if (!config_.bpr_tied_context) {
      EmbeddingTable::InitialRow(row, dim_, config_.init_std, config_.seed + 1, out + dim_ + 3);
    }
    return;
  }
  std::copy_n(items_.Row(row), dim_, out);
  out[dim_] = bias_[row];
  out[dim_ + 1] = *items_.AccumulatorAddress(row);
  out[dim_ + 2] = bias_accumulator_[row];
  if (!config_.bpr_tied_context) {
    std::copy_n(context_.Row(row), dim_, out + dim_ + 3);
    out[2 * dim_ + 3] = *context_.AccumulatorAddress(row);
  }
}

absl::Status BprModel::CheckReplicaItem(const float* in) const {
  const RowName name{"bpr", "replicated item", -1};
  const char* at = reinterpret_cast<const char*>(in);
  const size_t d = static_cast<size_t>(dim_);
  // Every slot of the row has its check (ReplicaItemWidth()).
  FRESHET_RETURN_IF_ERROR(CheckParameters(name, "vector", at, d));
  FRESHET_RETURN_IF_ERROR(CheckParameter(name, "bias", in[d]));
  FRESHET_RETURN_IF_ERROR(CheckNonNegative(name, "accumulator", in[d + 1]));
  FRESHET_RETURN_IF_ERROR(CheckNonNegative(name, "bias accumulator", in[d + 2]));
  if (!config_.bpr_tied_context) {
    FRESHET_RETURN_IF_ERROR(
        CheckParameters(name, "context vector", at + (d + 3) * sizeof(float), d));
    FRESHET_RETURN_IF_ERROR(CheckNonNegative(name, "context accumulator", in[2 * d + 3]));
  }
  return absl::OkStatus();
}

void BprModel::WriteReplicaItem(int32_t row, const float* in) {
  std::copy_n(in, dim_, items_.Row(row));
  bias_[row] = in[dim_];
  items_.Accumulator(row) = in[dim_ + 1];
  bias_accumulator_[row] = in[dim_ + 2];
  if (!config_.bpr_tied_context) {
    std::copy_n(in + dim_ + 3, dim_, context_.Row(row));
    context_.Accumulator(row) = in[2 * dim_ + 3];
  }
  if (trainer_ != nullptr) upload_items_.push_back(row);
}

void BprModel::ReplicaWritesDone() {
  if (trainer_ == nullptr) return;
  const absl::Status status = UploadPending(HostTables());
  // The rows stay listed; the next micro-batch uploads them before it steps (or learns on the
  // host), so nothing is lost, only served from the device a little later.
  if (!status.ok()) {
    Log(LogLevel::kWarning, absl::StrCat("bpr: merged item rows not yet on the ", trainer_->Name(),
                                         " trainer: ", status.message()));
  }
}

int64_t BprModel::BytesPerUser() const {
  return static_cast<int64_t>(stride_ + 1) * static_cast<int64_t>(sizeof(float));
}

int64_t BprModel::BytesPerItem() const {
  const int64_t tables = config_.bpr_tied_context ? 1 : 2;
  return (tables * (stride_ + 1) + 2 + 2) * static_cast<int64_t>(sizeof(float));
}

}  // namespace freshet::learner
