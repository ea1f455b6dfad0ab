// The CUDA BprTrainer (bpr_trainer.h): the bpr tables in device memory (DeviceTable), RunBprBatch
// for Step(), TopKDevice for serving. Every call runs under the backend's lock on its stream, so
// a TopK() issued after a Step() sees the whole batch.
#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "kernels/cuda/bpr_batch.h"
#include "kernels/cuda/bpr_trainer.h"
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/device_table.h"

namespace freshet::kernels {
namespace {

// Calls fn(first, count) for each run of consecutive values of the ascending `rows`.
template <typename Fn>
absl::Status ForEachRun(std::vector<int32_t> rows, Fn fn) {
  std::sort(rows.begin(), rows.end());
  rows.erase(std::unique(rows.begin(), rows.end()), rows.end());
  size_t begin = 0;
  while (begin < rows.size()) {
    size_t end = begin + 1;
    while (end < rows.size() && rows[end] == rows[end - 1] + 1) ++end;
    FRESHET_RETURN_IF_ERROR(fn(rows[begin], static_cast<int64_t>(end - begin)));
    begin = end;
  }
  return absl::OkStatus();
}

absl::Status CheckRows(absl::Span<const int32_t> rows, int64_t limit, const char* what) {
  for (const int32_t r : rows) {
    if (r < 0 || r >= limit) {
      return absl::InvalidArgumentError(
          absl::StrCat("bpr trainer: ", what, " row ", r, " outside [0, ", limit, ")"));
    }
  }
  return absl::OkStatus();
}

class CudaBprTrainer final : public BprTrainer {
 public:
  CudaBprTrainer(const CudaBackend* backend, int dim) : backend_(backend), dim_(dim) {}

  absl::Status Init() {
    return backend_->WithContext([&](const CudaContext& ctx) -> absl::Status {
      FRESHET_ASSIGN_OR_RETURN(users_, DeviceTable::Create(&ctx, dim_));
      FRESHET_ASSIGN_OR_RETURN(user_acc_, DeviceTable::Create(&ctx, 1));
      FRESHET_ASSIGN_OR_RETURN(items_, DeviceTable::Create(&ctx, dim_));
      FRESHET_ASSIGN_OR_RETURN(item_acc_, DeviceTable::Create(&ctx, 1));
      FRESHET_ASSIGN_OR_RETURN(bias_, DeviceTable::Create(&ctx, 1));
      FRESHET_ASSIGN_OR_RETURN(bias_acc_, DeviceTable::Create(&ctx, 1));
      return absl::OkStatus();
    });
  }

  std::string Name() const override { return backend_->Description(); }

  absl::Status Upload(const BprTables& host, absl::Span<const int32_t> users,
                      absl::Span<const int32_t> items) override {
    FRESHET_RETURN_IF_ERROR(CheckHost(host));
    FRESHET_RETURN_IF_ERROR(CheckRows(users, host.num_users, "user"));
    FRESHET_RETURN_IF_ERROR(CheckRows(items, host.num_items, "item"));
    return backend_->WithContext([&](const CudaContext&) -> absl::Status {
      // Grow first, all or nothing per table pair (ResourceExhausted leaves a table unchanged).
      if (host.num_users > users_->rows()) {
        FRESHET_RETURN_IF_ERROR(users_->Resize(host.num_users));
        FRESHET_RETURN_IF_ERROR(user_acc_->Resize(host.num_users));
      }
      if (host.num_items > items_->rows()) {
        FRESHET_RETURN_IF_ERROR(items_->Resize(host.num_items));
        FRESHET_RETURN_IF_ERROR(item_acc_->Resize(host.num_items));
        FRESHET_RETURN_IF_ERROR(bias_->Resize(host.num_items));
        FRESHET_RETURN_IF_ERROR(bias_acc_->Resize(host.num_items));
      }
      const int64_t stride = host.row_stride();
      FRESHET_RETURN_IF_ERROR(ForEachRun(
          std::vector<int32_t>(users.begin(), users.end()),
          [&](int32_t first, int64_t count) -> absl::Status {
            Pack(host.users, stride, first, count);
            FRESHET_RETURN_IF_ERROR(users_->Upload(first, packed_));
            return user_acc_->Upload(first, absl::MakeConstSpan(host.user_acc + first, count));
          }));
      return ForEachRun(std::vector<int32_t>(items.begin(), items.end()),
                        [&](int32_t first, int64_t count) -> absl::Status {
                          Pack(host.items, stride, first, count);
                          FRESHET_RETURN_IF_ERROR(items_->Upload(first, packed_));
                          FRESHET_RETURN_IF_ERROR(item_acc_->Upload(
                              first, absl::MakeConstSpan(host.item_acc + first, count)));
                          FRESHET_RETURN_IF_ERROR(
                              bias_->Upload(first, absl::MakeConstSpan(host.bias + first, count)));
                          return bias_acc_->Upload(
                              first, absl::MakeConstSpan(host.bias_acc + first, count));
                        });
    });
  }

  absl::Status Step(const BprBatch& batch, const BprParams& params,
                    const BprTables& host) override {
    FRESHET_RETURN_IF_ERROR(CheckHost(host));
    BprBatchRows(batch, params, &changed_users_, &changed_items_);
    FRESHET_RETURN_IF_ERROR(CheckRows(changed_users_, host.num_users, "user"));
    FRESHET_RETURN_IF_ERROR(CheckRows(changed_items_, host.num_items, "item"));
    return backend_->WithContext([&](const CudaContext& ctx) -> absl::Status {
      const BprDeviceModel model{users_.get(), user_acc_.get(), items_.get(),
                                 item_acc_.get(), bias_.get(), bias_acc_.get()};
      FRESHET_RETURN_IF_ERROR(RunBprBatch(ctx, model, batch, params));
      // Read everything back before writing any of it, so that an error leaves `host` alone.
      FRESHET_RETURN_IF_ERROR(users_->ReadRows(changed_users_, &user_rows_));
      FRESHET_RETURN_IF_ERROR(user_acc_->ReadRows(changed_users_, &user_acc_rows_));
      FRESHET_RETURN_IF_ERROR(items_->ReadRows(changed_items_, &item_rows_));
      FRESHET_RETURN_IF_ERROR(item_acc_->ReadRows(changed_items_, &item_acc_rows_));
      FRESHET_RETURN_IF_ERROR(bias_->ReadRows(changed_items_, &bias_rows_));
      FRESHET_RETURN_IF_ERROR(bias_acc_->ReadRows(changed_items_, &bias_acc_rows_));
      const int64_t stride = host.row_stride();
      for (size_t i = 0; i < changed_users_.size(); ++i) {
        const int64_t r = changed_users_[i];
        std::copy_n(user_rows_.data() + i * dim_, dim_, host.users + r * stride);
        host.user_acc[r] = user_acc_rows_[i];
      }
      for (size_t i = 0; i < changed_items_.size(); ++i) {
        const int64_t r = changed_items_[i];
        std::copy_n(item_rows_.data() + i * dim_, dim_, host.items + r * stride);
        host.item_acc[r] = item_acc_rows_[i];
        host.bias[r] = bias_rows_[i];
        host.bias_acc[r] = bias_acc_rows_[i];
      }
      return absl::OkStatus();
    });
  }

  absl::Status TopK(int64_t rows, absl::Span<const TopKQuery> queries, int k,
                    absl::Span<std::vector<ScoredItem>> results) const override {
    if (rows > items_->rows()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "bpr trainer: ", rows, " item rows asked for, the device holds ", items_->rows()));
    }
    const DeviceItemMatrix matrix{items_->data(), bias_->data(), rows, dim_, dim_};
    return backend_->TopKDevice(matrix, queries, k, results);
  }

 private:
  absl::Status CheckHost(const BprTables& host) const {
    if (host.dim != dim_ || host.row_stride() < dim_) {
      return absl::InvalidArgumentError(absl::StrCat("bpr trainer: host tables of width ",
                                                     host.dim, " for a trainer of width ", dim_));
    }
    return absl::OkStatus();
  }

  // Copies `count` host rows from `first` into packed_ without their padding.
  void Pack(const float* table, int64_t stride, int32_t first, int64_t count) {
    packed_.resize(static_cast<size_t>(count * dim_));
    for (int64_t i = 0; i < count; ++i) {
      std::copy_n(table + (first + i) * stride, dim_, packed_.data() + i * dim_);
    }
  }

  const CudaBackend* backend_;
  const int dim_;
  std::unique_ptr<DeviceTable> users_, user_acc_, items_, item_acc_, bias_, bias_acc_;
  std::vector<int32_t> changed_users_, changed_items_;
  std::vector<float> packed_, user_rows_, user_acc_rows_, item_rows_, item_acc_rows_, bias_rows_,
      bias_acc_rows_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<BprTrainer>> CudaBackend::NewBprTrainer(int dim) const {
  if (dim < 1 || dim > kMaxBprDim) {
    return absl::InvalidArgumentError(
        absl::StrCat("bpr trainer: dim must be in [1, ", kMaxBprDim, "], got ", dim));
  }
  auto trainer = std::make_unique<CudaBprTrainer>(this, dim);
  FRESHET_RETURN_IF_ERROR(trainer->Init());
  return trainer;
}

}  // namespace freshet::kernels
