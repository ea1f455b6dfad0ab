// NewBprTrainer: picks the trainer for a backend. With kernels/backend_registry.cc, the only
// source that asks whether CUDA is compiled in (FRESHET_HAVE_CUDA, set for this file alone by
// learner/trainers/CMakeLists.txt).
#include <memory>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "kernels/backend.h"
#include "learner/trainers/bpr_trainer.h"

#ifndef FRESHET_HAVE_CUDA
#error "FRESHET_HAVE_CUDA must be defined (0 or 1) by learner/trainers/CMakeLists.txt"
#endif

#if FRESHET_HAVE_CUDA
#include "kernels/cuda/cuda_backend.h"
#include "learner/trainers/cuda_bpr_trainer.h"
#endif

namespace freshet::learner {

absl::StatusOr<std::unique_ptr<BprTrainer>> NewBprTrainer(
    const kernels::Backend& backend, [[maybe_unused]] const BprTrainerOptions& options) {
#if FRESHET_HAVE_CUDA
  if (const auto* cuda = dynamic_cast<const kernels::CudaBackend*>(&backend)) {
    return NewCudaBprTrainer(*cuda, options);
  }
#endif
  return absl::UnimplementedError(
      absl::StrCat("the ", backend.Name(), " backend learns on the host, one event at a time"));
}

}  // namespace freshet::learner
