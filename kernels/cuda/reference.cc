#include "kernels/cuda/reference.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <map>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "kernels/cuda/learn_batch.h"

namespace freshet::kernels {
namespace {

bool InRange(int64_t row, int64_t rows) { return row >= 0 && row < rows; }

}  // namespace

absl::Status ValidateBprBatch(const BprBatch& batch, const BprParams& params, int64_t num_users,
                              int64_t num_items, int dim) {
  if (dim < 1) return absl::InvalidArgumentError(absl::StrCat("bpr: dim must be >= 1, got ", dim));
  if (batch.num_negatives < 0 || batch.num_negatives >= kMaxBprCandidates) {
    return absl::InvalidArgumentError(absl::StrCat("bpr: num_negatives must be in [0, ",
                                                   kMaxBprCandidates - 1, "], got ",
                                                   batch.num_negatives));
  }
  if (batch.window < 0 || batch.window > kMaxBprWindow) {
    return absl::InvalidArgumentError(
        absl::StrCat("bpr: window must be in [0, ", kMaxBprWindow, "], got ", batch.window));
  }
  if (!(params.lr > 0) || !(params.l2 >= 0) || !(params.epsilon > 0) ||
      !(params.user_weight >= 0) || !std::isfinite(params.user_weight)) {
    return absl::InvalidArgumentError(
        "bpr: need lr > 0, l2 >= 0, epsilon > 0 and a finite user_weight >= 0");
  }
  const int64_t b = batch.size();
  const int64_t m = 1 + batch.num_negatives;
  const int64_t w = batch.window;
  if (static_cast<int64_t>(batch.positives.size()) != b ||
      static_cast<int64_t>(batch.negatives.size()) != b * batch.num_negatives ||
      static_cast<int64_t>(batch.log_q.size()) != b * m ||
      (!batch.weights.empty() && static_cast<int64_t>(batch.weights.size()) != b) ||
      static_cast<int64_t>(batch.context.size()) != b * w ||
      static_cast<int64_t>(batch.context_weights.size()) != b * w) {
    return absl::InvalidArgumentError(absl::StrCat(
        "bpr: span sizes do not match a batch of ", b, " events with ", batch.num_negatives,
        " negatives and a window of ", w, " (positives ", batch.positives.size(), ", negatives ",
        batch.negatives.size(), ", log_q ", batch.log_q.size(), ", weights ", batch.weights.size(),
        ", context ", batch.context.size(), ", context weights ", batch.context_weights.size(),
        ")"));
  }
  for (int64_t e = 0; e < b; ++e) {
    if (!InRange(batch.users[e], num_users)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "bpr: event ", e, ": user row ", batch.users[e], " outside [0, ", num_users, ")"));
    }
    if (!InRange(batch.positives[e], num_items)) {
      return absl::InvalidArgumentError(absl::StrCat("bpr: event ", e, ": positive item row ",
                                                     batch.positives[e], " outside [0, ", num_items,
                                                     ")"));
    }
    if (!batch.weights.empty() && !std::isfinite(batch.weights[e])) {
      return absl::InvalidArgumentError(absl::StrCat("bpr: event ", e, ": weight not finite"));
    }
    if (!std::isfinite(batch.log_q[e * m])) {
      return absl::InvalidArgumentError(absl::StrCat("bpr: event ", e, ": log_q not finite"));
    }
    for (int n = 0; n < batch.num_negatives; ++n) {
      const int32_t j = batch.negatives[e * batch.num_negatives + n];
      if (j == -1) continue;
      if (!InRange(j, num_items)) {
        return absl::InvalidArgumentError(absl::StrCat("bpr: event ", e, ": negative item row ", j,
                                                       " outside [0, ", num_items, ")"));
      }
      if (!std::isfinite(batch.log_q[e * m + 1 + n])) {
        return absl::InvalidArgumentError(absl::StrCat("bpr: event ", e, ": log_q not finite"));
      }
    }
    for (int64_t k = 0; k < w; ++k) {
      const int32_t j = batch.context[e * w + k];
      if (j == -1) continue;
      if (!InRange(j, num_items)) {
        return absl::InvalidArgumentError(absl::StrCat("bpr: event ", e, ": context item row ", j,
                                                       " outside [0, ", num_items, ")"));
      }
      if (!std::isfinite(batch.context_weights[e * w + k])) {
        return absl::InvalidArgumentError(
            absl::StrCat("bpr: event ", e, ": context weight not finite"));
      }
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateIalsBatch(const IalsBatch& batch, const IalsParams& params, int64_t num_users,
                               int64_t num_items, int dim) {
  if (dim < 1 || dim > kMaxIalsDim) {
    return absl::InvalidArgumentError(
        absl::StrCat("ials: dim must be in [1, ", kMaxIalsDim, "], got ", dim));
  }
  if (!(params.alpha0 >= 0) || !(params.lambda > 0) || !(params.prior >= 0) ||
      !std::isfinite(params.alpha0) || !std::isfinite(params.lambda) ||
      !std::isfinite(params.prior)) {
    return absl::InvalidArgumentError("ials: need alpha0 >= 0, lambda > 0 and prior >= 0");
  }
  const int64_t b = batch.size();
  if (static_cast<int64_t>(batch.offsets.size()) != b + 1 || batch.offsets[0] != 0 ||
      batch.offsets[b] != static_cast<int64_t>(batch.items.size()) ||
      batch.items.size() != batch.confidences.size()) {
    return absl::InvalidArgumentError(
        "ials: offsets must have one entry per user plus one, start at 0 and end at the number "
        "of items, which must equal the number of confidences");
  }
  for (int64_t u = 0; u < b; ++u) {
    if (batch.offsets[u + 1] < batch.offsets[u]) {
      return absl::InvalidArgumentError("ials: offsets decrease");
    }
    if (!InRange(batch.users[u], num_users)) {
      return absl::InvalidArgumentError(
          absl::StrCat("ials: user row ", batch.users[u], " outside [0, ", num_users, ")"));
    }
  }
  for (size_t j = 0; j < batch.items.size(); ++j) {
    if (!InRange(batch.items[j], num_items)) {
      return absl::InvalidArgumentError(
          absl::StrCat("ials: item row ", batch.items[j], " outside [0, ", num_items, ")"));
    }
    if (!std::isfinite(batch.confidences[j])) {
      return absl::InvalidArgumentError("ials: confidence not finite");
    }
  }
  std::vector<int32_t> users(batch.users.begin(), batch.users.end());
  std::sort(users.begin(), users.end());
  if (std::adjacent_find(users.begin(), users.end()) != users.end()) {
    return absl::InvalidArgumentError("ials: a user row appears twice in one batch");
  }
  return absl::OkStatus();
}

std::vector<float> ReferenceBprQuery(const BprTables& t, const BprBatch& batch,
                                     const BprParams& params, int64_t e) {
  const int dim = t.dim;
  std::vector<float> p(static_cast<size_t>(dim));
  const float* user = t.users + static_cast<int64_t>(batch.users[e]) * t.row_stride();
  for (int d = 0; d < dim; ++d) p[d] = params.user_weight * user[d];
  for (int k = 0; k < batch.window; ++k) {
    const int32_t j = batch.context[e * batch.window + k];
    if (j < 0) continue;
    const float w = batch.context_weights[e * batch.window + k];
    const float* q = t.items + static_cast<int64_t>(j) * t.row_stride();
    for (int d = 0; d < dim; ++d) p[d] += w * q[d];
  }
  return p;
}

std::vector<float> ReferenceBprCoefficients(const BprTables& t, const BprBatch& batch,
                                            const BprParams& params, int64_t e) {
  const int m = 1 + batch.num_negatives;
  const int dim = t.dim;
  std::vector<float> g(static_cast<size_t>(m), 0.0f);
  std::vector<float> x(static_cast<size_t>(m), 0.0f);
  std::vector<bool> used(static_cast<size_t>(m), false);
  const std::vector<float> p = ReferenceBprQuery(t, batch, params, e);
  float max_x = -INFINITY;
  for (int c = 0; c < m; ++c) {
    const int32_t row =
        c == 0 ? batch.positives[e] : batch.negatives[e * batch.num_negatives + (c - 1)];
    if (row < 0) continue;
    used[c] = true;
    const float* q = t.items + static_cast<int64_t>(row) * t.row_stride();
    float dot = 0.0f;
    for (int d = 0; d < dim; ++d) dot += p[d] * q[d];
    x[c] = dot + t.bias[row] - batch.log_q[e * m + c];
    max_x = std::max(max_x, x[c]);
  }
  float total = 0.0f;
  for (int c = 0; c < m; ++c) {
    if (used[c]) total += std::exp(x[c] - max_x);
  }
  const float weight = batch.weights.empty() ? 1.0f : batch.weights[e];
  for (int c = 0; c < m; ++c) {
    if (!used[c]) continue;
    g[c] = weight * (std::exp(x[c] - max_x) / total - (c == 0 ? 1.0f : 0.0f));
  }
  return g;
}

absl::Status ReferenceBprBatch(const BprTables& t, const BprBatch& batch, const BprParams& params) {
  FRESHET_RETURN_IF_ERROR(ValidateBprBatch(batch, params, t.num_users, t.num_items, t.dim));
  const int dim = t.dim;
  const int m = 1 + batch.num_negatives;
  // Gradients per distinct row, from the state before the batch (nothing is written until all
  // of them are known).
  std::map<int32_t, std::vector<float>> user_grad;
  std::map<int32_t, std::vector<float>> item_grad;
  std::map<int32_t, float> bias_grad;
  const bool learn_users = params.user_weight > 0;
  for (int64_t e = 0; e < batch.size(); ++e) {
    const std::vector<float> g = ReferenceBprCoefficients(t, batch, params, e);
    const int32_t u = batch.users[e];
    const std::vector<float> p = ReferenceBprQuery(t, batch, params, e);
    std::vector<float> gu(static_cast<size_t>(dim), 0.0f);
    for (int c = 0; c < m; ++c) {
      const int32_t row =
          c == 0 ? batch.positives[e] : batch.negatives[e * batch.num_negatives + (c - 1)];
      if (row < 0) continue;
      const float* q = t.items + static_cast<int64_t>(row) * t.row_stride();
      std::vector<float>& gi = item_grad[row];
      gi.resize(static_cast<size_t>(dim), 0.0f);
      for (int d = 0; d < dim; ++d) {
        gu[d] += g[c] * q[d];
        gi[d] += g[c] * p[d];
      }
      bias_grad[row] += g[c];
    }
    if (learn_users) {
      std::vector<float>& sum = user_grad[u];
      sum.resize(static_cast<size_t>(dim), 0.0f);
      for (int d = 0; d < dim; ++d) sum[d] += params.user_weight * gu[d];
    }
  }
  const auto adagrad = [&](float* row, float* acc, const std::vector<float>& grad) {
    float sq = 0.0f;
    for (int d = 0; d < dim; ++d) sq += grad[d] * grad[d];
    *acc += sq / static_cast<float>(dim);
    const float step = params.lr / std::sqrt(*acc + params.epsilon);
    const float keep = 1.0f - step * params.l2;
    for (int d = 0; d < dim; ++d) row[d] = keep * row[d] - step * grad[d];
  };
  for (const auto& [u, grad] : user_grad) {
    adagrad(t.users + static_cast<int64_t>(u) * t.row_stride(), t.user_acc + u, grad);
  }
  for (const auto& [i, grad] : item_grad) {
    adagrad(t.items + static_cast<int64_t>(i) * t.row_stride(), t.item_acc + i, grad);
  }
  for (const auto& [i, gb] : bias_grad) {
    t.bias_acc[i] += gb * gb;
    t.bias[i] -= params.lr / std::sqrt(t.bias_acc[i] + params.epsilon) * gb;
  }
  return absl::OkStatus();
}

std::vector<float> ReferenceGramian(const float* table, int64_t rows, int dim) {
  const size_t d = static_cast<size_t>(dim);
  std::vector<double> sum(d * d, 0.0);
  for (int64_t r = 0; r < rows; ++r) {
    const float* x = table + r * dim;
    for (size_t a = 0; a < d; ++a) {
      for (size_t b = 0; b < d; ++b) sum[a * d + b] += static_cast<double>(x[a]) * x[b];
    }
  }
  return std::vector<float>(sum.begin(), sum.end());
}

absl::StatusOr<int64_t> ReferenceIalsFoldIn(float* users, int64_t num_users, const float* items,
                                            int64_t num_items, int dim,
                                            absl::Span<const float> gram, const IalsBatch& batch,
                                            const IalsParams& params) {
  FRESHET_RETURN_IF_ERROR(ValidateIalsBatch(batch, params, num_users, num_items, dim));
  const size_t d = static_cast<size_t>(dim);
  if (gram.size() != d * d) {
    return absl::InvalidArgumentError(
        absl::StrCat("ials: the Gramian has ", gram.size(), " entries, expected ", d * d));
  }
  int64_t failed = 0;
  std::vector<double> a(d * d), rhs(d);
  for (int64_t b = 0; b < batch.size(); ++b) {
    float* p = users + static_cast<int64_t>(batch.users[b]) * dim;
    for (size_t i = 0; i < d * d; ++i) a[i] = params.alpha0 * static_cast<double>(gram[i]);
    for (size_t i = 0; i < d; ++i) {
      a[i * d + i] += params.lambda;
      rhs[i] = static_cast<double>(params.prior) * p[i];
    }
    for (int64_t j = batch.offsets[b]; j < batch.offsets[b + 1]; ++j) {
      const float* q = items + static_cast<int64_t>(batch.items[j]) * dim;
      const double c = batch.confidences[j];
      const double w = c - params.alpha0;
      for (size_t r = 0; r < d; ++r) {
        rhs[r] += c * q[r];
        for (size_t s = 0; s < d; ++s) a[r * d + s] += w * q[r] * q[s];
      }
    }
    // Cholesky A = L L^T in the lower triangle, then L y = rhs, L^T x = y.
    bool ok = true;
    for (size_t k = 0; k < d && ok; ++k) {
      double diag = a[k * d + k];
      for (size_t s = 0; s < k; ++s) diag -= a[k * d + s] * a[k * d + s];
      if (!(diag > 0)) {
        ok = false;
        break;
      }
      const double l_kk = std::sqrt(diag);
      a[k * d + k] = l_kk;
      for (size_t r = k + 1; r < d; ++r) {
        double v = a[r * d + k];
        for (size_t s = 0; s < k; ++s) v -= a[r * d + s] * a[k * d + s];
        a[r * d + k] = v / l_kk;
      }
    }
    if (!ok) {
      ++failed;
      continue;
    }
    for (size_t r = 0; r < d; ++r) {
      double v = rhs[r];
      for (size_t s = 0; s < r; ++s) v -= a[r * d + s] * rhs[s];
      rhs[r] = v / a[r * d + r];
    }
    for (size_t r = d; r-- > 0;) {
      double v = rhs[r];
      for (size_t s = r + 1; s < d; ++s) v -= a[s * d + r] * rhs[s];
      rhs[r] = v / a[r * d + r];
    }
    for (size_t i = 0; i < d; ++i) p[i] = static_cast<float>(rhs[i]);
  }
  return failed;
}

}  // namespace freshet::kernels
