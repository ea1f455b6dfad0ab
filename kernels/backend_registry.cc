// CreateBackend: picks a Backend by name. This is the only place in kernels/ that knows whether
// CUDA was compiled in (FRESHET_HAVE_CUDA, set for this file alone by kernels/CMakeLists.txt).
#include <memory>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "kernels/backend.h"
#include "kernels/cpu_backend.h"

#ifndef FRESHET_HAVE_CUDA
#error "FRESHET_HAVE_CUDA must be defined (0 or 1) by kernels/CMakeLists.txt"
#endif

#if FRESHET_HAVE_CUDA
// Provided by the freshet_kernels_cuda target (kernels/cuda/), in namespace freshet::kernels:
//   absl::StatusOr<std::unique_ptr<Backend>> CreateCudaBackend();
// returning Unavailable, with the reason, when no usable device is present.
#include "kernels/cuda/cuda_backend.h"
#endif

namespace freshet::kernels {
namespace {

absl::StatusOr<std::unique_ptr<Backend>> CreateCuda() {
#if FRESHET_HAVE_CUDA
  return CreateCudaBackend();
#else
  return absl::UnavailableError(
      "freshet was built without CUDA support (FRESHET_CUDA=OFF or nvcc not found at build "
      "time)");
#endif
}

void SetNote(std::string* note, std::string text) {
  if (note != nullptr) *note = std::move(text);
}

}  // namespace

absl::StatusOr<std::unique_ptr<Backend>> CreateBackend(absl::string_view name, std::string* note) {
  if (name == "cpu") {
    SetNote(note, "cpu backend, as requested");
    return std::make_unique<CpuBackend>();
  }
  if (name == "cuda") {
    absl::StatusOr<std::unique_ptr<Backend>> cuda = CreateCuda();
    if (cuda.ok()) SetNote(note, "cuda backend, as requested");
    return cuda;
  }
  if (name == "auto") {
    absl::StatusOr<std::unique_ptr<Backend>> cuda = CreateCuda();
    if (cuda.ok()) {
      SetNote(note, "auto: using the cuda backend");
      return cuda;
    }
    // Any CUDA failure falls back: "auto" promises a working backend, and the note keeps the
    // reason visible for start-up logs.
    SetNote(note, absl::StrCat("auto: using the cpu backend because cuda is unavailable: ",
                               cuda.status().message()));
    return std::make_unique<CpuBackend>();
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown compute backend \"", absl::CHexEscape(name), "\"; valid names: cpu, cuda, auto"));
}

}  // namespace freshet::kernels
