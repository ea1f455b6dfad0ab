// The CUDA BprTrainer (cuda_bpr_trainer.h): the bpr tables in device memory (DeviceTable),
// RunBprBatch for Step(), TopKDevice for serving. Every call runs under the backend's lock on its
// stream, so a TopK() issued after a Step() sees the whole batch.
#include "learner/trainers/cuda_bpr_trainer.h"

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "kernels/cuda/bpr_batch.h"
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/device_table.h"
#include "kernels/cuda/nccl_sync.h"
#include "learner/trainers/bpr_trainer.h"

namespace freshet::learner {

using kernels::BprBatch;
using kernels::BprDeviceModel;
using kernels::BprParams;
using kernels::BprTables;
using kernels::CudaBackend;
using kernels::CudaContext;
using kernels::DeltaReduce;
using kernels::DeviceItemMatrix;
using kernels::DeviceTable;
using kernels::ItemModelSync;
using kernels::NcclGroup;
using kernels::ScoredItem;
using kernels::SyncPolicy;
using kernels::TopKQuery;

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
    FRESHET_RETURN_IF_ERROR(CheckTrainerArgs(host, dim_, users, items));
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
      return ForEachRun(
          std::vector<int32_t>(items.begin(), items.end()),
          [&](int32_t first, int64_t count) -> absl::Status {
            Pack(host.items, stride, first, count);
            FRESHET_RETURN_IF_ERROR(items_->Upload(first, packed_));
            FRESHET_RETURN_IF_ERROR(
                item_acc_->Upload(first, absl::MakeConstSpan(host.item_acc + first, count)));
            FRESHET_RETURN_IF_ERROR(
                bias_->Upload(first, absl::MakeConstSpan(host.bias + first, count)));
            return bias_acc_->Upload(first, absl::MakeConstSpan(host.bias_acc + first, count));
          });
    });
  }

  absl::Status Step(const BprBatch& batch, const BprParams& params,
                    const BprTables& host) override {
    FRESHET_RETURN_IF_ERROR(CheckTrainerArgs(host, dim_, {}, {}));
    FRESHET_RETURN_IF_ERROR(Run(batch, params));
    BprBatchRows(batch, params, &changed_users_, &changed_items_);
    return ReadBack(changed_users_, changed_items_, host);
  }

  // Enqueues the batch on this device (RunBprBatch); nothing is copied back.
  absl::Status Run(const BprBatch& batch, const BprParams& params) {
    return backend_->WithContext([&](const CudaContext& ctx) -> absl::Status {
      const BprDeviceModel model{users_.get(),    user_acc_.get(), items_.get(),
                                 item_acc_.get(), bias_.get(),     bias_acc_.get()};
      return kernels::RunBprBatch(ctx, model, batch, params);
    });
  }

  // Copies the given rows of this device's tables into `host`; reads everything before writing
  // any of it, so that an error leaves `host` alone.
  absl::Status ReadBack(absl::Span<const int32_t> users, absl::Span<const int32_t> items,
                        const BprTables& host) {
    FRESHET_RETURN_IF_ERROR(CheckTrainerArgs(host, dim_, users, items));
    return backend_->WithContext([&](const CudaContext&) -> absl::Status {
      FRESHET_RETURN_IF_ERROR(users_->ReadRows(users, &user_rows_));
      FRESHET_RETURN_IF_ERROR(user_acc_->ReadRows(users, &user_acc_rows_));
      FRESHET_RETURN_IF_ERROR(items_->ReadRows(items, &item_rows_));
      FRESHET_RETURN_IF_ERROR(item_acc_->ReadRows(items, &item_acc_rows_));
      FRESHET_RETURN_IF_ERROR(bias_->ReadRows(items, &bias_rows_));
      FRESHET_RETURN_IF_ERROR(bias_acc_->ReadRows(items, &bias_acc_rows_));
      const int64_t stride = host.row_stride();
      for (size_t i = 0; i < users.size(); ++i) {
        const int64_t r = users[i];
        std::copy_n(user_rows_.data() + i * dim_, dim_, host.users + r * stride);
        host.user_acc[r] = user_acc_rows_[i];
      }
      for (size_t i = 0; i < items.size(); ++i) {
        const int64_t r = items[i];
        std::copy_n(item_rows_.data() + i * dim_, dim_, host.items + r * stride);
        host.item_acc[r] = item_acc_rows_[i];
        host.bias[r] = bias_rows_[i];
        host.bias_acc[r] = bias_acc_rows_[i];
      }
      return absl::OkStatus();
    });
  }

  // The item-side tables, for the NCCL sync of several devices.
  std::vector<DeviceTable*> ItemTables() const {
    return {items_.get(), item_acc_.get(), bias_.get(), bias_acc_.get()};
  }
  const CudaBackend& backend() const { return *backend_; }

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

// Several devices in this process. Events are split by user row (user u learns on device
// u % devices), every device holds every row (the host uploads to all of them), and the item-side
// tables' deltas are summed over NCCL by ItemModelSync: after a sync every replica holds the base
// plus every device's updates, as if it had learnt all events. Between syncs the host mirror gets
// each device's own changed rows; after a sync, every item row changed since the last one, from
// device 0.
class MultiDeviceBprTrainer final : public BprTrainer {
 public:
  static absl::StatusOr<std::unique_ptr<BprTrainer>> Create(const CudaBackend* first,
                                                            const BprTrainerOptions& options) {
    if (options.sync_every_batches <= 0 && options.sync_every_ms <= 0) {
      return absl::InvalidArgumentError(
          "several GPUs need a sync policy: kernels.gpu_sync_every_batches or kernels.gpu_sync_ms");
    }
    std::unique_ptr<MultiDeviceBprTrainer> t(new MultiDeviceBprTrainer(options));
    t->ranks_.push_back(std::make_unique<CudaBprTrainer>(first, options.dim));
    for (int d = 1; d < options.devices; ++d) {
      absl::StatusOr<std::unique_ptr<CudaBackend>> backend = CudaBackend::Create(d);
      if (!backend.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("kernels.gpus = ", options.devices, " but device ", d,
                         " is not usable: ", backend.status().message()));
      }
      t->ranks_.push_back(std::make_unique<CudaBprTrainer>(backend->get(), options.dim));
      t->backends_.push_back(std::move(*backend));
    }
    std::vector<const CudaContext*> contexts;
    for (const auto& rank : t->ranks_) {
      FRESHET_RETURN_IF_ERROR(rank->Init());
      FRESHET_RETURN_IF_ERROR(rank->backend().WithContext([&](const CudaContext& ctx) {
        contexts.push_back(&ctx);
        return absl::OkStatus();
      }));
    }
    FRESHET_ASSIGN_OR_RETURN(t->group_, NcclGroup::CreateInProcess(contexts));
    return std::unique_ptr<BprTrainer>(std::move(t));
  }

  std::string Name() const override {
    return absl::StrCat(ranks_[0]->Name(), " x", ranks_.size(), " (NCCL)");
  }

  absl::Status Upload(const BprTables& host, absl::Span<const int32_t> users,
                      absl::Span<const int32_t> items) override {
    // New item rows are written alike on every device and join the sync's base as they are. A
    // rewritten existing row (a reload, or a row a failed step left stale) would count as a delta
    // on every device: sync first, write, and start from a new base.
    const bool rewrites =
        std::any_of(items.begin(), items.end(), [&](int32_t r) { return r < known_item_rows_; });
    if (rewrites) {
      for (const auto& sync : syncs_) FRESHET_RETURN_IF_ERROR(sync->SyncNow());
      read_all_unsynced_ = true;
    }
    for (const auto& rank : ranks_) FRESHET_RETURN_IF_ERROR(rank->Upload(host, users, items));
    if (rewrites || syncs_.empty()) FRESHET_RETURN_IF_ERROR(MakeSyncs());
    known_item_rows_ = std::max(known_item_rows_, host.num_items);
    return absl::OkStatus();
  }

  absl::Status Step(const BprBatch& batch, const BprParams& params,
                    const BprTables& host) override {
    const int n = static_cast<int>(ranks_.size());
    std::vector<Part> parts(static_cast<size_t>(n));
    const int m = batch.num_negatives;
    const int w = batch.window;
    for (int64_t e = 0; e < batch.size(); ++e) {
      Part& p = parts[static_cast<size_t>(batch.users[e] % n)];
      p.users.push_back(batch.users[e]);
      p.positives.push_back(batch.positives[e]);
      p.negatives.insert(p.negatives.end(), batch.negatives.begin() + e * m,
                         batch.negatives.begin() + (e + 1) * m);
      p.log_q.insert(p.log_q.end(), batch.log_q.begin() + e * (m + 1),
                     batch.log_q.begin() + (e + 1) * (m + 1));
      p.weights.push_back(batch.weights.empty() ? 1.0f : batch.weights[e]);
      p.context.insert(p.context.end(), batch.context.begin() + e * w,
                       batch.context.begin() + (e + 1) * w);
      p.context_weights.insert(p.context_weights.end(), batch.context_weights.begin() + e * w,
                               batch.context_weights.begin() + (e + 1) * w);
    }
    for (int r = 0; r < n; ++r) {
      const Part& p = parts[static_cast<size_t>(r)];
      if (!p.users.empty()) FRESHET_RETURN_IF_ERROR(ranks_[r]->Run(p.View(m, w), params));
    }
    bool synced = read_all_unsynced_;
    read_all_unsynced_ = false;
    for (const auto& sync : syncs_) {
      FRESHET_ASSIGN_OR_RETURN(const bool did, sync->OnBatchApplied());
      synced = synced || did;
    }
    // Users come from the device that learnt them; items from each device until a sync, then
    // every item changed since the previous sync from device 0.
    std::vector<int32_t> users, items;
    for (int r = 0; r < n; ++r) {
      const Part& p = parts[static_cast<size_t>(r)];
      if (p.users.empty()) continue;
      BprBatchRows(p.View(m, w), params, &users, &items);
      unsynced_items_.insert(unsynced_items_.end(), items.begin(), items.end());
      if (synced) items.clear();
      FRESHET_RETURN_IF_ERROR(ranks_[r]->ReadBack(users, items, host));
    }
    if (synced) {
      std::sort(unsynced_items_.begin(), unsynced_items_.end());
      unsynced_items_.erase(std::unique(unsynced_items_.begin(), unsynced_items_.end()),
                            unsynced_items_.end());
      FRESHET_RETURN_IF_ERROR(ranks_[0]->ReadBack({}, unsynced_items_, host));
      unsynced_items_.clear();
    }
    return absl::OkStatus();
  }

  absl::Status TopK(int64_t rows, absl::Span<const TopKQuery> queries, int k,
                    absl::Span<std::vector<ScoredItem>> results) const override {
    return ranks_[0]->TopK(rows, queries, k, results);
  }

 private:
  // One device's share of a batch.
  struct Part {
    std::vector<int32_t> users, positives, negatives, context;
    std::vector<float> log_q, weights, context_weights;
    BprBatch View(int num_negatives, int window) const {
      return BprBatch{users,         positives, negatives,       log_q, weights,
                      num_negatives, context,   context_weights, window};
    }
  };

  explicit MultiDeviceBprTrainer(const BprTrainerOptions& options)
      : policy_{options.sync_every_batches, options.sync_every_ms, DeltaReduce::kSum} {}

  // One ItemModelSync per item-side table (vectors, accumulators, biases, bias accumulators),
  // made again after a rewrite so that the base is what every device holds.
  absl::Status MakeSyncs() {
    syncs_.clear();
    const size_t tables = ranks_[0]->ItemTables().size();
    for (size_t t = 0; t < tables; ++t) {
      std::vector<DeviceTable*> replicas;
      for (const auto& rank : ranks_) replicas.push_back(rank->ItemTables()[t]);
      FRESHET_ASSIGN_OR_RETURN(std::unique_ptr<ItemModelSync> sync,
                               ItemModelSync::Create(group_.get(), replicas, policy_));
      syncs_.push_back(std::move(sync));
    }
    return absl::OkStatus();
  }

  const SyncPolicy policy_;
  std::vector<std::unique_ptr<CudaBackend>> backends_;  // devices 1 .. n - 1
  std::vector<std::unique_ptr<CudaBprTrainer>> ranks_;
  std::unique_ptr<NcclGroup> group_;
  std::vector<std::unique_ptr<ItemModelSync>> syncs_;
  std::vector<int32_t> unsynced_items_;  // item rows changed since the last sync
  int64_t known_item_rows_ = 0;          // item rows the devices held before the last upload
  bool read_all_unsynced_ = false;       // an upload synced: read unsynced_items_ back
};

}  // namespace

absl::StatusOr<std::unique_ptr<BprTrainer>> NewCudaBprTrainer(const CudaBackend& backend,
                                                              const BprTrainerOptions& options) {
  const int dim = options.dim;
  if (dim < 1 || dim > kernels::kMaxBprDim) {
    return absl::InvalidArgumentError(
        absl::StrCat("bpr trainer: dim must be in [1, ", kernels::kMaxBprDim, "], got ", dim));
  }
  if (options.devices < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("bpr trainer: devices must be >= 1, got ", options.devices));
  }
  if (options.devices > 1) return MultiDeviceBprTrainer::Create(&backend, options);
  auto trainer = std::make_unique<CudaBprTrainer>(&backend, dim);
  FRESHET_RETURN_IF_ERROR(trainer->Init());
  return trainer;
}

}  // namespace freshet::learner
