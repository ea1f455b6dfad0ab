// The NCCL transport of Collective (collective.h): one rank per process, on the cuda backend's
// GPU. Rank 0 creates the NCCL unique id and publishes it at options.rendezvous (rendezvous.h: a
// file path or redis://HOST:PORT/KEY); the other ranks wait up to options.timeout for it.
//
// Built with CUDA only (the freshet_replicas_nccl target, nccl_collective.cc); without CUDA
// no_nccl.cc answers instead. This header pulls in no CUDA headers.
#ifndef FRESHET_ENGINE_REPLICAS_NCCL_COLLECTIVE_H_
#define FRESHET_ENGINE_REPLICAS_NCCL_COLLECTIVE_H_

#include <memory>

#include "absl/status/statusor.h"
#include "engine/replicas/collective.h"
#include "kernels/backend.h"

namespace freshet::engine {

// This process's rank of a replica group over NCCL, on `backend`'s device with a CUDA context of
// its own. `backend` must be the cuda backend (kernels/cuda/cuda_backend.h). InvalidArgument for a
// bad rank or world size, or an empty rendezvous; DeadlineExceeded when rank 0's id does not
// appear in time; Unavailable when the id cannot be published or read, or NCCL cannot connect;
// FailedPrecondition when `backend` is not the cuda backend or CUDA was not compiled in.
absl::StatusOr<std::unique_ptr<Collective>> NewNcclCollective(const kernels::Backend& backend,
                                                              const CollectiveOptions& options);

}  // namespace freshet::engine

#endif  // FRESHET_ENGINE_REPLICAS_NCCL_COLLECTIVE_H_
