// The reference BprTrainer (bpr_trainer.h): a device emulated in host memory, and the argument
// checks and row lists that every trainer shares.
#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "kernels/cuda/reference.h"
#include "learner/trainers/bpr_trainer.h"

namespace freshet::learner {

using kernels::BprBatch;
using kernels::BprParams;
using kernels::BprTables;

void BprBatchRows(const BprBatch& batch, const BprParams& params, std::vector<int32_t>* users,
                  std::vector<int32_t>* items) {
  users->clear();
  items->clear();
  if (params.user_weight > 0) users->assign(batch.users.begin(), batch.users.end());
  items->assign(batch.positives.begin(), batch.positives.end());
  for (const int32_t j : batch.negatives) {
    if (j >= 0) items->push_back(j);
  }
  for (std::vector<int32_t>* rows : {users, items}) {
    std::sort(rows->begin(), rows->end());
    rows->erase(std::unique(rows->begin(), rows->end()), rows->end());
  }
}

namespace {

absl::Status CheckRows(absl::Span<const int32_t> rows, int64_t limit, const char* what) {
  for (const int32_t r : rows) {
    if (r < 0 || r >= limit) {
      return absl::InvalidArgumentError(
          absl::StrCat("bpr trainer: ", what, " row ", r, " outside [0, ", limit, ")"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status CheckTrainerArgs(const BprTables& host, int dim, absl::Span<const int32_t> users,
                              absl::Span<const int32_t> items) {
  if (host.dim != dim || host.row_stride() < dim) {
    return absl::InvalidArgumentError(absl::StrCat("bpr trainer: host tables of width ", host.dim,
                                                   " for a trainer of width ", dim));
  }
  FRESHET_RETURN_IF_ERROR(CheckRows(users, host.num_users, "user"));
  return CheckRows(items, host.num_items, "item");
}

namespace {

// Copies user row `r` (vector and accumulator) from `from` to `to`.
void CopyUser(const BprTables& from, const BprTables& to, int32_t r) {
  std::copy_n(from.users + r * from.row_stride(), from.dim, to.users + r * to.row_stride());
  to.user_acc[r] = from.user_acc[r];
}

// Copies item row `r` (vector, accumulator, bias, bias accumulator) from `from` to `to`.
void CopyItem(const BprTables& from, const BprTables& to, int32_t r) {
  std::copy_n(from.items + r * from.row_stride(), from.dim, to.items + r * to.row_stride());
  to.item_acc[r] = from.item_acc[r];
  to.bias[r] = from.bias[r];
  to.bias_acc[r] = from.bias_acc[r];
}

class ReferenceBprTrainer final : public BprTrainer {
 public:
  explicit ReferenceBprTrainer(int dim) : dim_(dim) {}

  std::string Name() const override { return "reference"; }

  absl::Status Upload(const BprTables& host, absl::Span<const int32_t> users,
                      absl::Span<const int32_t> items) override {
    FRESHET_RETURN_IF_ERROR(CheckTrainerArgs(host, dim_, users, items));
    Grow(host.num_users, host.num_items);
    const BprTables mine = Tables();
    for (const int32_t r : users) CopyUser(host, mine, r);
    for (const int32_t r : items) CopyItem(host, mine, r);
    return absl::OkStatus();
  }

  absl::Status Step(const BprBatch& batch, const BprParams& params,
                    const BprTables& host) override {
    FRESHET_RETURN_IF_ERROR(CheckTrainerArgs(host, dim_, {}, {}));
    if (host.num_users < num_users_ || host.num_items < num_items_) {
      return absl::InvalidArgumentError("bpr trainer: the host tables are smaller than its own");
    }
    const BprTables mine = Tables();
    FRESHET_RETURN_IF_ERROR(kernels::ReferenceBprBatch(mine, batch, params));
    BprBatchRows(batch, params, &users_changed_, &items_changed_);
    for (const int32_t r : users_changed_) CopyUser(mine, host, r);
    for (const int32_t r : items_changed_) CopyItem(mine, host, r);
    return absl::OkStatus();
  }

  absl::Status TopK(int64_t, absl::Span<const kernels::TopKQuery>, int,
                    absl::Span<std::vector<kernels::ScoredItem>>) const override {
    return absl::UnimplementedError(
        "the reference bpr trainer keeps no separate copy to score: score the host tables");
  }

 private:
  void Grow(int64_t users, int64_t items) {
    num_users_ = std::max(num_users_, users);
    num_items_ = std::max(num_items_, items);
    users_.resize(static_cast<size_t>(num_users_ * dim_), 0.0f);
    user_acc_.resize(static_cast<size_t>(num_users_), 0.0f);
    items_.resize(static_cast<size_t>(num_items_ * dim_), 0.0f);
    item_acc_.resize(static_cast<size_t>(num_items_), 0.0f);
    bias_.resize(static_cast<size_t>(num_items_), 0.0f);
    bias_acc_.resize(static_cast<size_t>(num_items_), 0.0f);
  }

  BprTables Tables() {
    return BprTables{users_.data(), user_acc_.data(),
                     items_.data(), item_acc_.data(),
                     bias_.data(),  bias_acc_.data(),
                     num_users_,    num_items_,
                     dim_,          0};
  }

  const int dim_;
  int64_t num_users_ = 0;
  int64_t num_items_ = 0;
  std::vector<float> users_, user_acc_, items_, item_acc_, bias_, bias_acc_;
  std::vector<int32_t> users_changed_, items_changed_;
};

}  // namespace

std::unique_ptr<BprTrainer> NewReferenceBprTrainer(int dim) {
  return std::make_unique<ReferenceBprTrainer>(dim);
}

}  // namespace freshet::learner
