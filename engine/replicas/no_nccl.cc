// NewNcclCollective in a build without CUDA (engine/replicas/CMakeLists.txt compiles this file
// instead of nccl_collective.cc): there is no cuda backend to exchange through.
#include <memory>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "engine/replicas/collective.h"
#include "engine/replicas/nccl_collective.h"
#include "kernels/backend.h"

namespace freshet::engine {

absl::StatusOr<std::unique_ptr<Collective>> NewNcclCollective(
    const kernels::Backend& backend, const CollectiveOptions& /*options*/) {
  return absl::FailedPreconditionError(
      absl::StrCat("an NCCL replica group needs the cuda backend, not ", backend.Name(),
                   ": this freshet was built without CUDA"));
}

}  // namespace freshet::engine
