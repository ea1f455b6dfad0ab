// Several GPUs learning together. Each rank holds a replica of the item model and learns from its
// own share of the events (Kafka partitions users across ranks); every micro-batch or every T ms
// the item-model deltas since the last sync are all-reduced, so the replicas converge.
//
//   NcclGroup      a group of ranks: all in this process (ncclCommInitAll, one rank per device),
//                  or one rank of a multi-process group: rank 0 creates the NCCL unique id
//                  (NewUniqueId) and the caller hands it to the others (the replicas do it through
//                  a rendezvous, engine/replicas/rendezvous.h).
//   ItemModelSync  keeps, per local rank, a copy of a table as of the last sync (the base); a sync
//                  all-reduces (table - base) across ranks and sets table = base = base + reduced,
//                  marking the rows that changed dirty.
#ifndef FRESHET_KERNELS_CUDA_NCCL_SYNC_H_
#define FRESHET_KERNELS_CUDA_NCCL_SYNC_H_

#include <nccl.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "kernels/cuda/context.h"
#include "kernels/cuda/device_table.h"

namespace freshet::kernels {

// How deltas combine: kMean averages them (model averaging: each replica moves by the mean of the
// ranks' updates), kSum adds them (each replica moves as if it had seen every rank's events).
enum class DeltaReduce { kMean, kSum };

// Thread-safety: not thread-safe; drive a group from one thread. Its collectives run on the local
// contexts' streams, which must outlive the group.
class NcclGroup {
 public:
  // One rank per context, all in this process; the contexts must be on distinct devices.
  // InvalidArgument for an empty list or a repeated device; Unavailable/Internal from NCCL.
  static absl::StatusOr<std::unique_ptr<NcclGroup>> CreateInProcess(
      std::vector<const CudaContext*> contexts);

  // The size of an NCCL unique id (NCCL_UNIQUE_ID_BYTES).
  static constexpr size_t kUniqueIdBytes = sizeof(ncclUniqueId);

  // A new NCCL unique id (kUniqueIdBytes bytes), created by rank 0 of a multi-process group and
  // handed to every other rank before they call CreateRank. It must be new for each launch of
  // the group: an id from an earlier launch would make the ranks wait for a group that no longer
  // exists. Unavailable/Internal from NCCL.
  static absl::StatusOr<std::string> NewUniqueId();

  // Rank `rank` of `world_size` ranks in separate processes, joined through `unique_id` (rank
  // 0's NewUniqueId()). InvalidArgument for a bad rank or world size, or an id that is not
  // kUniqueIdBytes bytes; Unavailable when NCCL cannot connect.
  static absl::StatusOr<std::unique_ptr<NcclGroup>> CreateRank(const CudaContext* context, int rank,
                                                               int world_size,
                                                               absl::string_view unique_id);

  NcclGroup(const NcclGroup&) = delete;
  NcclGroup& operator=(const NcclGroup&) = delete;
  ~NcclGroup();

  int world_size() const { return world_size_; }
  int local_ranks() const { return static_cast<int>(contexts_.size()); }
  const CudaContext& context(int local_rank) const { return *contexts_[local_rank]; }

  // In-place all-reduce of `count` floats: buffers[r] lives on local rank r's device. Enqueued on
  // the local streams (one NCCL group call); returns once enqueued. InvalidArgument when
  // buffers.size() != local_ranks().
  absl::Status AllReduce(absl::Span<float* const> buffers, int64_t count, DeltaReduce op);

  // All-gather of `bytes` bytes from every rank, for a group with one local rank (one process of
  // a multi-process group): `recv` (device memory, world_size() * bytes) receives every rank's
  // `send` (device memory) in rank order. Enqueued on the local stream; returns once enqueued.
  // FailedPrecondition with several local ranks or after an abort.
  absl::Status AllGather(const void* send, void* recv, size_t bytes);

  // Waits up to `timeout` for the local streams, watching NCCL for asynchronous errors (a peer
  // that crashed or left). On such an error, or at the deadline, aborts the communicators, so
  // nothing stays stuck on the device: Unavailable / DeadlineExceeded, and the group is unusable
  // from then on.
  absl::Status Wait(absl::Duration timeout);

 private:
  NcclGroup(std::vector<const CudaContext*> contexts, std::vector<ncclComm_t> comms, int world_size)
      : contexts_(std::move(contexts)), comms_(std::move(comms)), world_size_(world_size) {}
  // Aborts every communicator (the group is unusable afterwards).
  void Abort();

  std::vector<const CudaContext*> contexts_;
  std::vector<ncclComm_t> comms_;
  int world_size_;
};

// When to sync: after every `every_batches` applied batches, or once `every_ms` milliseconds have
// passed since the last sync (whichever comes first; 0 disables that trigger).
struct SyncPolicy {
  int every_batches = 1;
  int64_t every_ms = 0;
  DeltaReduce reduce = DeltaReduce::kMean;
};

// Thread-safety: not thread-safe; call from the thread that drives the group.
class ItemModelSync {
 public:
  // tables[r] is local rank r's replica of one item table (e.g. the item vectors, or the biases);
  // all replicas have the same width and, at every sync, the same number of rows on every rank
  // (rows added by growth must be initialised identically on all ranks: they join the base as
  // they are). InvalidArgument for a table count != group->local_ranks() or differing shapes.
  static absl::StatusOr<std::unique_ptr<ItemModelSync>> Create(NcclGroup* group,
                                                               std::vector<DeviceTable*> tables,
                                                               SyncPolicy policy);

  // Counts an applied batch and syncs when the policy says so. Returns whether it synced.
  absl::StatusOr<bool> OnBatchApplied();

  // Syncs now, waiting for the local streams. FailedPrecondition when local replicas differ in
  // rows; ResourceExhausted when scratch memory runs out.
  absl::Status SyncNow();

  int64_t syncs() const { return syncs_; }

 private:
  ItemModelSync(NcclGroup* group, std::vector<DeviceTable*> tables, SyncPolicy policy);

  NcclGroup* group_;
  std::vector<DeviceTable*> tables_;
  const SyncPolicy policy_;
  std::vector<DeviceBuffer<float>> base_;  // per local rank: rows * dim as of the last sync
  std::vector<int64_t> base_rows_;
  int batches_since_sync_ = 0;
  std::chrono::steady_clock::time_point last_sync_;
  int64_t syncs_ = 0;
};

}  // namespace freshet::kernels

#endif  // FRESHET_KERNELS_CUDA_NCCL_SYNC_H_
