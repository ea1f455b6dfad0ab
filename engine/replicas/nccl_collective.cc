// The NCCL transport of Collective: one rank per process, on one GPU. An exchange is two
// NCCL all-gathers on the collective's own stream: every rank's byte count, then every rank's
// bytes padded to the largest count. Waits watch NCCL for a failed peer and give up at the
// timeout (NcclGroup::Wait aborts the communicator, so no kernel stays stuck on the device).
#include "engine/replicas/nccl_collective.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/status_macros.h"
#include "engine/replicas/collective.h"
#include "engine/replicas/rendezvous.h"
#include "kernels/cuda/context.h"
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/nccl_sync.h"

namespace freshet::engine {
namespace {

using kernels::CudaContext;
using kernels::DeviceBuffer;
using kernels::NcclGroup;

class NcclCollective : public Collective {
 public:
  NcclCollective(std::unique_ptr<CudaContext> context, std::unique_ptr<NcclGroup> group, int rank,
                 absl::Duration timeout)
      : context_(std::move(context)), group_(std::move(group)), rank_(rank), timeout_(timeout) {}

  // The group goes before the context its stream belongs to.
  ~NcclCollective() override { group_.reset(); }

  int rank() const override { return rank_; }
  int world_size() const override { return group_->world_size(); }
  std::string Name() const override { return absl::StrCat("nccl: ", context_->description()); }

 protected:
  absl::StatusOr<std::vector<std::string>> Exchange(absl::string_view mine) override {
    const int world = world_size();
    FRESHET_RETURN_IF_ERROR(context_->Activate());
    // 1. Every rank's byte count: rank r's at sizes[r], this rank's own staged at sizes[world].
    FRESHET_ASSIGN_OR_RETURN(DeviceBuffer<int64_t> sizes, context_->Allocate<int64_t>(world + 1));
    const int64_t own = static_cast<int64_t>(mine.size());
    FRESHET_RETURN_IF_ERROR(context_->CopyToDevice(sizes.data() + world, &own, 1));
    FRESHET_RETURN_IF_ERROR(group_->AllGather(sizes.data() + world, sizes.data(), sizeof(int64_t)));
    FRESHET_RETURN_IF_ERROR(group_->Wait(timeout_));
    std::vector<int64_t> counts(static_cast<size_t>(world));
    FRESHET_RETURN_IF_ERROR(context_->CopyToHost(counts.data(), sizes.data(), world));
    FRESHET_RETURN_IF_ERROR(context_->Synchronize());
    const int64_t widest = std::max<int64_t>(1, *std::max_element(counts.begin(), counts.end()));
    // 2. The bytes, each rank's padded to the widest.
    FRESHET_ASSIGN_OR_RETURN(DeviceBuffer<char> send, context_->Allocate<char>(widest));
    FRESHET_ASSIGN_OR_RETURN(DeviceBuffer<char> recv, context_->Allocate<char>(widest * world));
    if (own > 0) FRESHET_RETURN_IF_ERROR(context_->CopyToDevice(send.data(), mine.data(), own));
    FRESHET_RETURN_IF_ERROR(
        group_->AllGather(send.data(), recv.data(), static_cast<size_t>(widest)));
    FRESHET_RETURN_IF_ERROR(group_->Wait(timeout_));
    std::string all(static_cast<size_t>(widest * world), '\0');
    FRESHET_RETURN_IF_ERROR(context_->CopyToHost(all.data(), recv.data(), widest * world));
    FRESHET_RETURN_IF_ERROR(context_->Synchronize());
    std::vector<std::string> out(static_cast<size_t>(world));
    for (int r = 0; r < world; ++r) {
      if (counts[r] < 0 || counts[r] > widest) {
        return absl::InternalError(absl::StrCat("NCCL: rank ", r, " sent a bad byte count"));
      }
      out[r].assign(all.data() + r * widest, static_cast<size_t>(counts[r]));
    }
    return out;
  }

 private:
  std::unique_ptr<CudaContext> context_;
  std::unique_ptr<NcclGroup> group_;
  const int rank_;
  const absl::Duration timeout_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Collective>> NewNcclCollective(const kernels::Backend& backend,
                                                              const CollectiveOptions& options) {
  const auto* cuda = dynamic_cast<const kernels::CudaBackend*>(&backend);
  if (cuda == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("an NCCL replica group needs the cuda backend, not ", backend.Name()));
  }
  if (options.world_size < 1 || options.rank < 0 || options.rank >= options.world_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("NCCL rank ", options.rank, " of a world of ", options.world_size));
  }
  if (options.rendezvous.empty()) {
    return absl::InvalidArgumentError("no rendezvous for the NCCL id");
  }
  int device = 0;
  FRESHET_RETURN_IF_ERROR(cuda->WithContext([&](const CudaContext& context) {
    device = context.device();
    return absl::OkStatus();
  }));
  FRESHET_ASSIGN_OR_RETURN(std::unique_ptr<CudaContext> context, CudaContext::Create(device));
  // Rank 0 creates the id and publishes it; the others wait for it.
  std::string id;
  if (options.rank == 0) {
    FRESHET_ASSIGN_OR_RETURN(id, NcclGroup::NewUniqueId());
    FRESHET_RETURN_IF_ERROR(PublishBlob(options.rendezvous, id));
  } else {
    FRESHET_ASSIGN_OR_RETURN(
        id, WaitForBlob(options.rendezvous, NcclGroup::kUniqueIdBytes, options.timeout));
  }
  FRESHET_ASSIGN_OR_RETURN(
      std::unique_ptr<NcclGroup> group,
      NcclGroup::CreateRank(context.get(), options.rank, options.world_size, id));
  return std::unique_ptr<Collective>(
      new NcclCollective(std::move(context), std::move(group), options.rank, options.timeout));
}

}  // namespace freshet::engine
