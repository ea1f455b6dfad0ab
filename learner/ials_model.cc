#include "learner/ials_model.h"

#include <Eigen/Cholesky>
#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/byte_codec.h"
#include "common/status_macros.h"
#include "learner/internal/row_checks.h"
#include "learner/internal/vector_ops.h"

namespace freshet::learner {

using internal::Axpy;
using internal::Dot;

IalsModel::IalsModel(const config::Config& config, const Popularity* popularity,
                     const kernels::Backend* backend)
    : config_(config),
      popularity_(popularity),
      backend_(backend),
      dim_(config.dim),
      users_(config.dim),
      items_(config.dim),
      user_gram_(static_cast<size_t>(config.dim) * config.dim, 0.0),
      item_gram_(static_cast<size_t>(config.dim) * config.dim, 0.0) {
  const size_t d = static_cast<size_t>(dim_);
  for (auto* v : {&before_, &rhs_, &r_, &ap_, &dir_}) v->assign(d, 0.0f);
  matrix_.assign(d * d, 0.0);
}

void IalsModel::Grow(int32_t users, int32_t items) {
  users_.Resize(users, config_.init_std, config_.seed);
  items_.Resize(items, config_.init_std, config_.seed + 1);
  item_users_.resize(static_cast<size_t>(items));
  bias_.resize(static_cast<size_t>(items), 0.0f);
}

void IalsModel::Admit(std::vector<double>& gram, const EmbeddingTable& table, int32_t rows,
                      int32_t* gram_rows) {
  const std::vector<float> zero(static_cast<size_t>(dim_), 0.0f);
  for (; *gram_rows < rows; ++*gram_rows) UpdateGram(gram, zero.data(), table.Row(*gram_rows));
}

void IalsModel::UpdateGram(std::vector<double>& gram, const float* old_row, const float* new_row) {
  for (int a = 0; a < dim_; ++a) {
    double* g = gram.data() + static_cast<size_t>(a) * dim_;
    const double na = new_row[a], oa = old_row[a];
    for (int b = 0; b < dim_; ++b) g[b] += na * new_row[b] - oa * old_row[b];
  }
}

void IalsModel::Solve(const std::vector<double>& gram, const EmbeddingTable& other_table,
                      absl::Span<const int32_t> others, float* target) {
  const int d = dim_;
  const float alpha0 = config_.ials_unobserved;
  const float lt = config_.ials_long_term;
  const float ridge = config_.ials_reg + lt;
  // One observation per distinct row. A window often holds a row more than once (a user returning
  // to an item, an item's repeat visitor); its confidence is 1 + confidence * (the sum of the
  // recency weights of its occurrences). Counting each occurrence as its own observation would
  // subtract alpha0 x x^T once per occurrence from a Gramian that holds x x^T once, which makes the
  // system indefinite as soon as a row repeats: the solve then grows that direction without bound
  // and the model collapses. With one term per distinct row,
  //   alpha0 G + sum_j (c_j - alpha0) x_j x_j^T = alpha0 (G - sum_j x_j x_j^T) + sum_j c_j x_j
  //   x_j^T
  // is positive definite (G - sum_j x_j x_j^T is the Gramian of the other rows), plus the ridge.
  rows_.clear();
  weights_.clear();
  float recency = 1.0f;
  for (size_t k = others.size(); k-- > 0;) {  // newest first
    const int32_t row = others[k];
    const auto seen = std::find(rows_.begin(), rows_.end(), row);
    if (seen == rows_.end()) {
      rows_.push_back(row);
      weights_.push_back(config_.ials_confidence * recency);
    } else {
      weights_[static_cast<size_t>(seen - rows_.begin())] += config_.ials_confidence * recency;
    }
    recency *= config_.ials_window_decay;
  }
  const int n = static_cast<int>(rows_.size());
  for (float& w : weights_) w += 1.0f;
  // Right-hand side: sum_j c_j x_j + lt * previous.
  for (int i = 0; i < d; ++i) rhs_[i] = lt * target[i];
  for (int k = 0; k < n; ++k) Axpy(weights_[k], other_table.Row(rows_[k]), rhs_.data(), d);

  if (config_.ials_cg_steps == 0) {
    for (size_t i = 0; i < matrix_.size(); ++i) matrix_[i] = alpha0 * gram[i];
    for (int i = 0; i < d; ++i) matrix_[static_cast<size_t>(i) * d + i] += ridge;
    for (int k = 0; k < n; ++k) {
      const float* x = other_table.Row(rows_[k]);
      const double c = weights_[k] - alpha0;
      for (int a = 0; a < d; ++a) {
        double* m = matrix_.data() + static_cast<size_t>(a) * d;
        for (int b = 0; b < d; ++b) m[b] += c * x[a] * x[b];
      }
    }
    Eigen::Map<const Eigen::MatrixXd> a(matrix_.data(), d, d);
    Eigen::VectorXd b(d);
    for (int i = 0; i < d; ++i) b[i] = rhs_[i];
    const Eigen::VectorXd solution = a.llt().solve(b);
    for (int i = 0; i < d; ++i) target[i] = static_cast<float>(solution[i]);
    return;
  }

  // Conjugate gradient on A p = rhs, warm-started at the current vector.
  auto apply = [&](const float* v, float* out) {
    for (int a = 0; a < d; ++a) {
      const double* g = gram.data() + static_cast<size_t>(a) * d;
      double s = 0;
      for (int b = 0; b < d; ++b) s += g[b] * v[b];
      out[a] = static_cast<float>(alpha0 * s) + ridge * v[a];
    }
    for (int k = 0; k < n; ++k) {
      const float* x = other_table.Row(rows_[k]);
      Axpy((weights_[k] - alpha0) * Dot(x, v, d), x, out, d);
    }
  };
  apply(target, ap_.data());
  for (int i = 0; i < d; ++i) r_[i] = rhs_[i] - ap_[i];
  std::copy(r_.begin(), r_.end(), dir_.begin());
  float rr = Dot(r_.data(), r_.data(), d);
  for (int step = 0; step < config_.ials_cg_steps && rr > 1e-12f; ++step) {
    apply(dir_.data(), ap_.data());
    const float denom = Dot(dir_.data(), ap_.data(), d);
    if (denom <= 0) break;
    const float alpha = rr / denom;
    Axpy(alpha, dir_.data(), target, d);
    Axpy(-alpha, ap_.data(), r_.data(), d);
    const float rr_next = Dot(r_.data(), r_.data(), d);
    const float beta = rr_next / rr;
    for (int i = 0; i < d; ++i) dir_[i] = r_[i] + beta * dir_[i];
    rr = rr_next;
  }
}

bool IalsModel::AllFinite(const float* row) const {
  float sum = 0;  // NaN or infinity in any element makes the sum non-finite
  for (int i = 0; i < dim_; ++i) sum += row[i] * 0.0f;
  return std::isfinite(sum);
}

void IalsModel::Learn(const Interaction& event) {
  // The event's item is counted once the event is learnt (the Learner counts it after this call).
  bias_[event.item] = config_.ials_popularity_weight *
                      std::log1p(static_cast<float>(popularity_->Count(event.item) + 1));
  // Users, like items, are numbered in order of first appearance.
  Admit(user_gram_, users_, std::max(users_in_gram_, event.user + 1), &users_in_gram_);
  Admit(item_gram_, items_, event.catalog, &items_in_gram_);
  const int window = config_.ials_window;
  // The user's latest items including this one, newest last.
  const size_t past = std::min(event.recent.size(), static_cast<size_t>(window - 1));
  history_.assign(event.recent.end() - past, event.recent.end());
  history_.push_back(event.item);

  float* user = users_.Row(event.user);
  std::copy(user, user + dim_, before_.begin());
  Solve(item_gram_, items_, history_, user);
  if (!AllFinite(user)) {  // a solve that did not converge to numbers: keep the old row
    std::copy(before_.begin(), before_.end(), user);
    ++nonfinite_skips_;
    return;
  }
  UpdateGram(user_gram_, before_.data(), user);

  std::vector<int32_t>& item_users = item_users_[event.item];
  item_users.push_back(event.user);
  if (item_users.size() > static_cast<size_t>(window)) item_users.erase(item_users.begin());
  float* item = items_.Row(event.item);
  std::copy(item, item + dim_, before_.begin());
  Solve(user_gram_, users_, item_users, item);
  if (!AllFinite(item)) {
    std::copy(before_.begin(), before_.end(), item);
    ++nonfinite_skips_;
    return;
  }
  UpdateGram(item_gram_, before_.data(), item);
}

absl::Status IalsModel::Recommend(const UserQuery& query, int k,
                                  std::vector<kernels::ScoredItem>* out) const {
  const kernels::TopKQuery q{users_.Row(query.user), query.exclude};
  return backend_->TopK(ScoringMatrix(), absl::MakeConstSpan(&q, 1), k, absl::MakeSpan(out, 1));
}

void IalsModel::ScoreAll(const UserQuery& query, absl::Span<float> scores) const {
  const float* user = users_.Row(query.user);
  const int64_t n = std::min<int64_t>(items_.rows(), static_cast<int64_t>(scores.size()));
  for (int64_t i = 0; i < n; ++i) scores[i] = Dot(user, items_.Row(i), dim_) + bias_[i];
}

// Persisted rows: a user is its vector; an item its vector and its latest users (newest last).
void IalsModel::EncodeUser(int32_t row, std::string* out) const {
  ByteWriter(out).PutRaw(users_.Row(row), static_cast<size_t>(dim_));
}

void IalsModel::EncodeItem(int32_t row, std::string* out) const {
  ByteWriter w(out);
  w.PutRaw(items_.Row(row), static_cast<size_t>(dim_));
  w.PutArray(absl::MakeConstSpan(item_users_[row]));
}

absl::Status IalsModel::CheckUser(int32_t row, absl::string_view in) const {
  const internal::RowName name{"ials", "user", row};
  if (in.size() != static_cast<size_t>(dim_) * sizeof(float)) {
    return internal::BadRow(name,
                            absl::StrCat(in.size(), " bytes do not hold a d=", dim_, " vector"));
  }
  return internal::CheckParameters(name, "vector", in.data(), static_cast<size_t>(dim_));
}

absl::Status IalsModel::DecodeUser(int32_t row, absl::string_view in) {
  FRESHET_RETURN_IF_ERROR(CheckUser(row, in));
  std::memcpy(users_.Row(row), in.data(), in.size());
  return absl::OkStatus();
}

absl::Status IalsModel::CheckItem(int32_t row, absl::string_view in, bool served) const {
  const char *vector = nullptr, *users = nullptr;
  uint64_t count = 0;
  return CheckItem(row, in, served, &vector, &users, &count);
}

absl::Status IalsModel::CheckItem(int32_t row, absl::string_view in, bool served,
                                  const char** vector, const char** users, uint64_t* count) const {
  const internal::RowName name{"ials", "item", row};
  ByteReader r(in);
  const uint64_t d = static_cast<uint64_t>(dim_);
  if (!r.GetBytes(d * sizeof(float), vector) || !r.GetVarint(count) ||
      *count > static_cast<uint64_t>(config_.ials_window) ||
      !r.GetBytes(*count * sizeof(int32_t), users) || !r.done()) {
    return internal::BadRow(name,
                            absl::StrCat(in.size(), " bytes do not hold a d=", dim_, " item"));
  }
  FRESHET_RETURN_IF_ERROR(internal::CheckParameters(name, "vector", *vector, d));
  for (uint64_t i = 0; i < *count; ++i) {
    int32_t user;
    std::memcpy(&user, *users + i * sizeof(int32_t), sizeof(user));
    if (user < 0 || (!served && user >= users_.rows())) {
      return internal::BadRow(
          name, absl::StrCat("latest user ", i, " is row ", user, " of ", users_.rows()));
    }
  }
  return absl::OkStatus();
}

absl::Status IalsModel::DecodeItem(int32_t row, absl::string_view in) {
  const char *vector = nullptr, *users = nullptr;
  uint64_t count = 0;
  FRESHET_RETURN_IF_ERROR(CheckItem(row, in, /*served=*/false, &vector, &users, &count));
  std::memcpy(items_.Row(row), vector, static_cast<size_t>(dim_) * sizeof(float));
  std::vector<int32_t>& item_users = item_users_[row];
  item_users.resize(count);
  if (count > 0) std::memcpy(item_users.data(), users, count * sizeof(int32_t));
  return absl::OkStatus();
}

absl::Status IalsModel::DecodeServedItem(int32_t row, absl::string_view in) {
  const char *vector = nullptr, *users = nullptr;
  uint64_t count = 0;
  FRESHET_RETURN_IF_ERROR(CheckItem(row, in, /*served=*/true, &vector, &users, &count));
  std::memcpy(items_.Row(row), vector, static_cast<size_t>(dim_) * sizeof(float));
  bias_[row] = PopularityBias(row);  // the row's popularity was followed just before
  return absl::OkStatus();
}

float IalsModel::PopularityBias(int32_t item) const {
  const int64_t count = popularity_->Count(item);
  return count == 0 ? 0.0f : config_.ials_popularity_weight * std::log1p(static_cast<float>(count));
}

void IalsModel::FinishLoad(int32_t users, int32_t items, int64_t) {
  for (int32_t i = 0; i < items; ++i) bias_[i] = PopularityBias(i);
  std::fill(user_gram_.begin(), user_gram_.end(), 0.0);
  std::fill(item_gram_.begin(), item_gram_.end(), 0.0);
  users_in_gram_ = 0;
  items_in_gram_ = 0;
  Admit(user_gram_, users_, users, &users_in_gram_);
  Admit(item_gram_, items_, items, &items_in_gram_);
}

void IalsModel::ResetUser(int32_t row) {
  float* user = users_.Row(row);
  if (row < users_in_gram_) {
    const std::vector<float> zero(static_cast<size_t>(dim_), 0.0f);
    UpdateGram(user_gram_, user, zero.data());
  }
  std::fill_n(user, dim_, 0.0f);  // the next fold-in solves it from the new user's items
}

int64_t IalsModel::BytesPerUser() const {
  return users_.stride() * static_cast<int64_t>(sizeof(float));
}

int64_t IalsModel::BytesPerItem() const {
  return items_.stride() * static_cast<int64_t>(sizeof(float)) +
         static_cast<int64_t>(config_.ials_window) * static_cast<int64_t>(sizeof(int32_t));
}

}  // namespace freshet::learner
