#include "kernels/cuda/nccl_sync.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/status_macros.h"
#include "kernels/cuda/cuda_status.h"
#include "kernels/cuda/internal/launch.h"

namespace freshet::kernels {
absl::StatusOr<std::unique_ptr<NcclGroup>> NcclGroup::CreateInProcess(
    std::vector<const CudaContext*> contexts) {
  if (contexts.empty()) return absl::InvalidArgumentError("an NCCL group needs at least one rank");
  std::vector<int> devices;
  for (const CudaContext* c : contexts) devices.push_back(c->device());
  std::vector<int> sorted = devices;
  std::sort(sorted.begin(), sorted.end());
  if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end()) {
    return absl::InvalidArgumentError("in-process NCCL ranks must be on distinct devices");
  }
  std::vector<ncclComm_t> comms(contexts.size(), nullptr);
  FRESHET_RETURN_IF_ERROR(
      NcclStatus(ncclCommInitAll(comms.data(), static_cast<int>(comms.size()), devices.data()),
                 "ncclCommInitAll"));
  const int world = static_cast<int>(contexts.size());
  return std::unique_ptr<NcclGroup>(new NcclGroup(std::move(contexts), std::move(comms), world));
}

absl::StatusOr<std::string> NcclGroup::NewUniqueId() {
  ncclUniqueId id;
  FRESHET_RETURN_IF_ERROR(NcclStatus(ncclGetUniqueId(&id), "ncclGetUniqueId"));
  return std::string(reinterpret_cast<const char*>(&id), sizeof(id));
}

absl::StatusOr<std::unique_ptr<NcclGroup>> NcclGroup::CreateRank(const CudaContext* context,
                                                                 int rank, int world_size,
                                                                 absl::string_view unique_id) {
  if (world_size < 1 || rank < 0 || rank >= world_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("NCCL rank ", rank, " of a world of ", world_size));
  }
  ncclUniqueId id;
  if (unique_id.size() != sizeof(id)) {
    return absl::InvalidArgumentError(
        absl::StrCat("an NCCL unique id has ", sizeof(id), " bytes, not ", unique_id.size()));
  }
  std::memcpy(&id, unique_id.data(), sizeof(id));
  FRESHET_RETURN_IF_ERROR(context->Activate());
  ncclComm_t comm = nullptr;
  FRESHET_RETURN_IF_ERROR(
      NcclStatus(ncclCommInitRank(&comm, world_size, id, rank), "ncclCommInitRank"));
  return std::unique_ptr<NcclGroup>(new NcclGroup({context}, {comm}, world_size));
}

NcclGroup::~NcclGroup() {
  for (size_t r = 0; r < comms_.size(); ++r) {
    if (comms_[r] == nullptr) continue;  // aborted
    (void)contexts_[r]->Synchronize();
    (void)ncclCommDestroy(comms_[r]);
  }
}

absl::Status NcclGroup::AllGather(const void* send, void* recv, size_t bytes) {
  if (comms_.size() != 1) {
    return absl::FailedPreconditionError("a byte all-gather needs a group of one local rank");
  }
  if (comms_[0] == nullptr) return absl::FailedPreconditionError("the NCCL group was aborted");
  FRESHET_RETURN_IF_ERROR(contexts_[0]->Activate());
  return NcclStatus(ncclAllGather(send, recv, bytes, ncclChar, comms_[0], contexts_[0]->stream()),
                    "ncclAllGather");
}

absl::Status NcclGroup::Wait(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    bool all_done = true;
    for (size_t r = 0; r < comms_.size(); ++r) {
      if (comms_[r] == nullptr) return absl::FailedPreconditionError("the NCCL group was aborted");
      FRESHET_RETURN_IF_ERROR(contexts_[r]->Activate());
      const cudaError_t query = cudaStreamQuery(contexts_[r]->stream());
      if (query == cudaSuccess) continue;
      if (query != cudaErrorNotReady) return CudaStatus(query, "waiting for NCCL");
      all_done = false;
      ncclResult_t async = ncclSuccess;
      (void)ncclCommGetAsyncError(comms_[r], &async);
      if (async != ncclSuccess && async != ncclInProgress) {
        const absl::Status error = NcclStatus(async, "NCCL peer");
        Abort();
        return absl::UnavailableError(
            absl::StrCat("the NCCL group failed (", error.message(), "); aborted"));
      }
    }
    if (all_done) return absl::OkStatus();
    if (absl::Now() >= deadline) {
      Abort();
      return absl::DeadlineExceededError(absl::StrCat("NCCL: not every rank took part within ",
                                                      absl::FormatDuration(timeout), "; aborted"));
    }
    std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
}

void NcclGroup::Abort() {
  for (size_t r = 0; r < comms_.size(); ++r) {
    if (comms_[r] == nullptr) continue;
    (void)ncclCommAbort(comms_[r]);
    comms_[r] = nullptr;
  }
}

absl::Status NcclGroup::AllReduce(absl::Span<float* const> buffers, int64_t count, DeltaReduce op) {
  if (buffers.size() != comms_.size()) {
    return absl::InvalidArgumentError(absl::StrCat("all-reduce with ", buffers.size(),
                                                   " buffers for ", comms_.size(), " local ranks"));
  }
  if (count <= 0) return absl::OkStatus();
  for (ncclComm_t comm : comms_) {
    if (comm == nullptr) return absl::FailedPreconditionError("the NCCL group was aborted");
  }
  const ncclRedOp_t nccl_op = op == DeltaReduce::kMean ? ncclAvg : ncclSum;
  // One thread drives every local rank: the calls must form one NCCL group.
  FRESHET_RETURN_IF_ERROR(NcclStatus(ncclGroupStart(), "ncclGroupStart"));
  absl::Status status = absl::OkStatus();
  for (size_t r = 0; r < comms_.size() && status.ok(); ++r) {
    status = contexts_[r]->Activate();
    if (!status.ok()) break;
    status = NcclStatus(ncclAllReduce(buffers[r], buffers[r], static_cast<size_t>(count), ncclFloat,
                                      nccl_op, comms_[r], contexts_[r]->stream()),
                        "ncclAllReduce");
  }
  const absl::Status end = NcclStatus(ncclGroupEnd(), "ncclGroupEnd");
  return status.ok() ? end : status;
}

ItemModelSync::ItemModelSync(NcclGroup* group, std::vector<DeviceTable*> tables, SyncPolicy policy)
    : group_(group),
      tables_(std::move(tables)),
      policy_(policy),
      base_(tables_.size()),
      base_rows_(tables_.size(), 0),
      last_sync_(std::chrono::steady_clock::now()) {}

absl::StatusOr<std::unique_ptr<ItemModelSync>> ItemModelSync::Create(
    NcclGroup* group, std::vector<DeviceTable*> tables, SyncPolicy policy) {
  if (group == nullptr || static_cast<int>(tables.size()) != group->local_ranks()) {
    return absl::InvalidArgumentError("item-model sync needs one table per local rank");
  }
  for (const DeviceTable* t : tables) {
    if (t == nullptr || t->dim() != tables[0]->dim()) {
      return absl::InvalidArgumentError("item-model sync: replicas must have the same width");
    }
  }
  std::unique_ptr<ItemModelSync> sync(new ItemModelSync(group, std::move(tables), policy));
  // The replicas as they are now are the common starting point.
  for (size_t r = 0; r < sync->tables_.size(); ++r) {
    const DeviceTable& t = *sync->tables_[r];
    const CudaContext& ctx = group->context(static_cast<int>(r));
    FRESHET_RETURN_IF_ERROR(ctx.Activate());
    FRESHET_ASSIGN_OR_RETURN(sync->base_[r], ctx.Allocate<float>(t.rows() * t.dim()));
    FRESHET_RETURN_IF_ERROR(ctx.CopyOnDevice(sync->base_[r].data(), t.data(), t.rows() * t.dim()));
    sync->base_rows_[r] = t.rows();
    FRESHET_RETURN_IF_ERROR(ctx.Synchronize());
  }
  return sync;
}

absl::StatusOr<bool> ItemModelSync::OnBatchApplied() {
  ++batches_since_sync_;
  const bool by_count = policy_.every_batches > 0 && batches_since_sync_ >= policy_.every_batches;
  const bool by_time = policy_.every_ms > 0 && std::chrono::steady_clock::now() - last_sync_ >=
                                                   std::chrono::milliseconds(policy_.every_ms);
  if (!by_count && !by_time) return false;
  FRESHET_RETURN_IF_ERROR(SyncNow());
  return true;
}

absl::Status ItemModelSync::SyncNow() {
  const int64_t rows = tables_[0]->rows();
  const int dim = tables_[0]->dim();
  for (const DeviceTable* t : tables_) {
    if (t->rows() != rows) {
      return absl::FailedPreconditionError("item-model sync: local replicas differ in rows");
    }
  }
  std::vector<DeviceBuffer<float>> deltas(tables_.size());
  std::vector<float*> delta_ptrs(tables_.size());
  for (size_t r = 0; r < tables_.size(); ++r) {
    const CudaContext& ctx = group_->context(static_cast<int>(r));
    DeviceTable& t = *tables_[r];
    FRESHET_RETURN_IF_ERROR(ctx.Activate());
    if (base_rows_[r] < rows) {
      // New rows join the base as they are (identical on every rank by contract).
      FRESHET_ASSIGN_OR_RETURN(DeviceBuffer<float> grown, ctx.Allocate<float>(rows * dim));
      FRESHET_RETURN_IF_ERROR(ctx.CopyOnDevice(grown.data(), base_[r].data(), base_rows_[r] * dim));
      FRESHET_RETURN_IF_ERROR(ctx.CopyOnDevice(grown.data() + base_rows_[r] * dim,
                                               t.data() + base_rows_[r] * dim,
                                               (rows - base_rows_[r]) * dim));
      base_[r] = std::move(grown);
      base_rows_[r] = rows;
    }
    FRESHET_ASSIGN_OR_RETURN(deltas[r], ctx.Allocate<float>(rows * dim));
    delta_ptrs[r] = deltas[r].data();
    FRESHET_CUDA_RETURN_IF_ERROR(
        cuda_internal::LaunchSubtract(t.data(), base_[r].data(), deltas[r].data(), rows * dim,
                                      ctx.stream()),
        "delta kernel");
  }
  FRESHET_RETURN_IF_ERROR(group_->AllReduce(delta_ptrs, rows * dim, policy_.reduce));
  for (size_t r = 0; r < tables_.size(); ++r) {
    const CudaContext& ctx = group_->context(static_cast<int>(r));
    DeviceTable& t = *tables_[r];
    FRESHET_RETURN_IF_ERROR(ctx.Activate());
    FRESHET_CUDA_RETURN_IF_ERROR(
        cuda_internal::LaunchApplyDelta(t.data(), base_[r].data(), deltas[r].data(), rows, dim,
                                        t.flags(), ctx.stream()),
        "apply-delta kernel");
  }
  for (size_t r = 0; r < tables_.size(); ++r) {
    FRESHET_RETURN_IF_ERROR(group_->context(static_cast<int>(r)).Synchronize());
  }
  batches_since_sync_ = 0;
  last_sync_ = std::chrono::steady_clock::now();
  ++syncs_;
  return absl::OkStatus();
}

}  // namespace freshet::kernels
