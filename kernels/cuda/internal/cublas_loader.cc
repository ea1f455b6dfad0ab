#include "kernels/cuda/internal/cublas_loader.h"

#include <dlfcn.h>

#include <string>
#include <type_traits>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

namespace freshet::kernels::cuda_internal {
namespace {

constexpr const char* kLibrary = "libcublas.so.13";

absl::StatusOr<CublasApi> Load() {
  // The RUNPATH of the binary (the toolkit's library folder in a build tree), LD_LIBRARY_PATH and
  // the system paths first, then the toolkit this build used.
  void* library = dlopen(kLibrary, RTLD_NOW | RTLD_LOCAL);
#ifdef FRESHET_CUDA_LIBRARY_DIR
  if (library == nullptr) {
    library = dlopen(FRESHET_CUDA_LIBRARY_DIR "/libcublas.so.13", RTLD_NOW | RTLD_LOCAL);
  }
#endif
  if (library == nullptr) {
    const char* error = dlerror();
    return absl::UnavailableError(absl::StrCat(
        "cannot load ", kLibrary, " (cuBLAS): ", error != nullptr ? error : "unknown error"));
  }
  CublasApi api;
  absl::Status status = absl::OkStatus();
  const auto resolve = [&](auto* target, const char* name) {
    void* symbol = dlsym(library, name);
    if (symbol == nullptr && status.ok()) {
      status = absl::UnavailableError(absl::StrCat(kLibrary, " has no symbol ", name));
    }
    *target = reinterpret_cast<std::remove_pointer_t<decltype(target)>>(symbol);
  };
  resolve(&api.create, "cublasCreate_v2");
  resolve(&api.destroy, "cublasDestroy_v2");
  resolve(&api.set_stream, "cublasSetStream_v2");
  resolve(&api.set_math_mode, "cublasSetMathMode");
  resolve(&api.sgemm, "cublasSgemm_v2");
  resolve(&api.status_name, "cublasGetStatusName");
  resolve(&api.status_string, "cublasGetStatusString");
  if (!status.ok()) return status;
  // The library stays loaded for the life of the process.
  return api;
}

}  // namespace

absl::StatusOr<const CublasApi*> LoadCublas() {
  static const absl::StatusOr<CublasApi>* const loaded = new absl::StatusOr<CublasApi>(Load());
  if (!loaded->ok()) return loaded->status();
  return &**loaded;
}

}  // namespace freshet::kernels::cuda_internal
