// The CUDA BprTrainer: the bpr tables in device memory (kernels::DeviceTable), micro-batches
// learnt by kernels::RunBprBatch, top-K served by CudaBackend::TopKDevice; with several devices,
// one replica per device, users split by row, item deltas summed over NCCL (kernels/cuda/
// nccl_sync.h). Built only with CUDA (target freshet_learner_trainers_cuda); NewBprTrainer()
// (bpr_trainer.h) makes it for the cuda backend. This header pulls in no CUDA headers.
#ifndef FRESHET_LEARNER_TRAINERS_CUDA_BPR_TRAINER_H_
#define FRESHET_LEARNER_TRAINERS_CUDA_BPR_TRAINER_H_

#include <memory>

#include "absl/status/statusor.h"
#include "kernels/cuda/cuda_backend.h"
#include "learner/trainers/bpr_trainer.h"

namespace freshet::learner {

// bpr learning on `backend`'s device, or on devices 0 .. options.devices - 1 synchronised over
// NCCL (the first on `backend`, which must outlive the trainer): tables in device memory, served
// by TopKDevice on `backend`'s device. ResourceExhausted / Unavailable from a device or NCCL;
// InvalidArgument for a dim the kernels do not take or fewer devices than asked for.
absl::StatusOr<std::unique_ptr<BprTrainer>> NewCudaBprTrainer(const kernels::CudaBackend& backend,
                                                              const BprTrainerOptions& options);

}  // namespace freshet::learner

#endif  // FRESHET_LEARNER_TRAINERS_CUDA_BPR_TRAINER_H_
