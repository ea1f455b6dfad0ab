# FRESHET_CUDA=ON|OFF|AUTO. The result is FRESHET_CUDA_STATE: "ON", or "OFF" with the reason.
#
# The CUDA backend (kernels/cuda/) needs, checked here in this order before anything CUDA is built:
#   1. nvcc that builds CMake's CUDA test program (check_language: the CUDACXX environment
#      variable, nvcc on PATH, $CUDA_PATH/bin, or -DCUDAToolkit_ROOT=DIR; -DCMAKE_CUDA_COMPILER=
#      /path/to/nvcc is taken as given);
#   2. code generation for CMAKE_CUDA_ARCHITECTURES (default 80;90, set before CUDA is enabled;
#      never "native": build machines have no GPU);
#   3. the toolkit around that nvcc (find_package(CUDAToolkit)) with the static runtime
#      (libcudart_static.a);
#   4. NCCL: libnccl.so and nccl.h, in the toolkit's folders or the system's;
#   5. a test program: a .cu that includes nccl.h, compiled as CUDA 17 for CMAKE_CUDA_ARCHITECTURES
#      and linked with cudart_static and libnccl.
# Without nvcc, AUTO builds without the backend and says so only in the summary line. With nvcc
# but any other piece missing or failing, AUTO builds without the backend and says why in one line
# on stderr; ON stops configure with the reason.
set(FRESHET_CUDA_STATE OFF)

# find_package(CUDAToolkit), called once, here at the top, so that its imported targets
# (CUDA::cudart_static) are visible in every directory.
#
# FindCUDAToolkit of CMake 3.25.1 as Debian 12 ships it tags CUDA::nvToolsExt as deprecated
# (set_property(TARGET CUDA::nvToolsExt PROPERTY DEPRECATION ...)) for every toolkit >= 10.0 when
# the project's cmake_minimum_required is 3.25 or more, without checking that the target exists.
# CUDA 12.9 and later ship no libnvToolsExt (NVTX 3 is header-only), so the target is never made
# and that set_property is a configure error: "set_property could not find TARGET
# CUDA::nvToolsExt". The tag is the only use the module makes of CMAKE_MINIMUM_REQUIRED_VERSION
# (freshet does not use nvToolsExt), so the module is run with an older one.
macro(freshet_find_cuda_toolkit)
  set(_freshet_min_version "${CMAKE_MINIMUM_REQUIRED_VERSION}")
  set(CMAKE_MINIMUM_REQUIRED_VERSION 3.24)
  find_package(CUDAToolkit QUIET)
  set(CMAKE_MINIMUM_REQUIRED_VERSION "${_freshet_min_version}")
  unset(_freshet_min_version)
endmacro()

# The check: sets _freshet_cuda_reason to why the backend cannot be built, or to "" when it can.
# Leaves CUDAToolkit_* (find_package), FRESHET_NCCL_LIBRARY and FRESHET_NCCL_INCLUDE_DIR for
# kernels/cuda/CMakeLists.txt.
macro(freshet_check_cuda_toolkit)
  set(_freshet_cuda_reason "")
  freshet_find_cuda_toolkit()
  if(NOT CUDAToolkit_FOUND)
    set(_freshet_cuda_reason
        "find_package(CUDAToolkit) found no complete toolkit for ${CMAKE_CUDA_COMPILER}")
  elseif(NOT TARGET CUDA::cudart_static)
    set(_freshet_cuda_reason
        "the toolkit in ${CUDAToolkit_LIBRARY_DIR} has no static CUDA runtime (libcudart_static.a)")
  else()
    find_library(FRESHET_NCCL_LIBRARY nccl HINTS ${CUDAToolkit_LIBRARY_DIR})
    find_path(FRESHET_NCCL_INCLUDE_DIR nccl.h HINTS ${CUDAToolkit_INCLUDE_DIRS})
    set(_freshet_missing "")
    if(NOT FRESHET_NCCL_LIBRARY)
      list(APPEND _freshet_missing "libnccl.so")
    endif()
    if(NOT FRESHET_NCCL_INCLUDE_DIR)
      list(APPEND _freshet_missing "nccl.h")
    endif()
    if(_freshet_missing)
      list(JOIN _freshet_missing " and " _freshet_missing)
      string(CONCAT _freshet_cuda_reason "NCCL (${_freshet_missing}) was not found in the toolkit "
             "(${CUDAToolkit_TARGET_DIR}) or the system's folders")
    endif()
    unset(_freshet_missing)
  endif()
  if(NOT _freshet_cuda_reason)
    # The test program runs once per set of inputs; a success is remembered in the cache.
    string(CONCAT _freshet_key "${CMAKE_CUDA_COMPILER}|${CMAKE_CUDA_ARCHITECTURES}|"
           "${CMAKE_CUDA_FLAGS}|${CUDA_cudart_static_LIBRARY}|${FRESHET_NCCL_LIBRARY}|"
           "${FRESHET_NCCL_INCLUDE_DIR}")
    if(NOT FRESHET_CUDA_CHECKED STREQUAL _freshet_key)
      message(CHECK_START "CUDA ${CUDAToolkit_VERSION} in ${CUDAToolkit_LIBRARY_DIR}: building a "
                          "test program (nccl.h, cudart_static, libnccl; architectures "
                          "${CMAKE_CUDA_ARCHITECTURES})")
      try_compile(_freshet_cuda_links
        SOURCE_FROM_CONTENT freshet_cuda_check.cu [=[
#include <cuda_runtime.h>
#include <nccl.h>
__global__ void Scale(float* x, float a) { x[threadIdx.x] *= a; }
int main() {
  int version = 0;
  if (ncclGetVersion(&version) != ncclSuccess) return 1;
  Scale<<<1, 1>>>(nullptr, 2.0f);
  return cudaGetLastError() == cudaSuccess ? 0 : 1;
}
]=]
        CMAKE_FLAGS "-DINCLUDE_DIRECTORIES=${FRESHET_NCCL_INCLUDE_DIR}"
        LINK_LIBRARIES CUDA::cudart_static ${FRESHET_NCCL_LIBRARY}
        CUDA_STANDARD 17
        CUDA_STANDARD_REQUIRED ON
        NO_CACHE
        OUTPUT_VARIABLE _freshet_cuda_output)
      set(_freshet_log "${CMAKE_BINARY_DIR}/CMakeFiles/freshet-cuda-check.log")
      file(WRITE "${_freshet_log}" "${_freshet_cuda_output}")
      if(_freshet_cuda_links)
        message(CHECK_PASS "done")
        set(FRESHET_CUDA_CHECKED "${_freshet_key}" CACHE INTERNAL
            "inputs of the last CUDA test program that built")
      else()
        message(CHECK_FAIL "failed")
        string(CONCAT _freshet_cuda_reason "a test program with nccl.h for CUDA architectures "
               "${CMAKE_CUDA_ARCHITECTURES} did not compile or link with ${CMAKE_CUDA_COMPILER} "
               "(output: ${_freshet_log})")
      endif()
      unset(_freshet_cuda_links)
      unset(_freshet_cuda_output)
      unset(_freshet_log)
    endif()
    unset(_freshet_key)
  endif()
endmacro()

# Sets <out> to the entries of CMAKE_CUDA_ARCHITECTURES that nvcc cannot generate code for (each
# toolkit supports a window of GPU generations: CUDA 13 dropped sm_50 to sm_72, CUDA 11.8 added
# sm_90). enable_language(CUDA) compiles its test for these architectures and stops configure when
# that fails, so they are checked first. "all", "all-major" and "native" are left to CMake.
function(freshet_cuda_unsupported_architectures out)
  set(unsupported "")
  execute_process(COMMAND "${CMAKE_CUDA_COMPILER}" --list-gpu-code
                  OUTPUT_VARIABLE listed ERROR_QUIET RESULT_VARIABLE failed)
  if(NOT failed)
    string(REGEX MATCHALL "sm_[0-9]+[a-z]?" codes "${listed}")
    foreach(arch IN LISTS CMAKE_CUDA_ARCHITECTURES)
      if(arch MATCHES "^([0-9]+a?)(-real|-virtual)?$")
        if(NOT "sm_${CMAKE_MATCH_1}" IN_LIST codes)
          list(APPEND unsupported "${arch}")
        endif()
      endif()
    endforeach()
  endif()
  set(${out} "${unsupported}" PARENT_SCOPE)
endfunction()

if(NOT FRESHET_CUDA STREQUAL "OFF")
  # check_language enables CUDA in a scratch project that sees only the environment, not this
  # project's variables: -DCUDAToolkit_ROOT=DIR reaches it as CUDACXX=DIR/bin/nvcc.
  if(DEFINED CUDAToolkit_ROOT AND NOT DEFINED CMAKE_CUDA_COMPILER AND NOT DEFINED ENV{CUDACXX}
     AND EXISTS "${CUDAToolkit_ROOT}/bin/nvcc")
    set(ENV{CUDACXX} "${CUDAToolkit_ROOT}/bin/nvcc")
  endif()
  include(CheckLanguage)
  check_language(CUDA)
  set(_freshet_cuda_reason "")
  if(NOT CMAKE_CUDA_COMPILER)
    find_program(_freshet_nvcc nvcc NO_CACHE)
    if(_freshet_nvcc)
      string(CONCAT _freshet_cuda_reason "${_freshet_nvcc} did not build CMake's CUDA test program "
             "(output in ${CMAKE_BINARY_DIR}/CMakeFiles/CMakeError.log)")
    elseif(FRESHET_CUDA STREQUAL "ON")
      message(FATAL_ERROR "FRESHET_CUDA=ON but no CUDA compiler (nvcc) was found. Install the CUDA "
                          "toolkit (its bin/ on PATH), point at it with "
                          "-DCMAKE_CUDA_COMPILER=/path/to/nvcc, or configure with "
                          "-DFRESHET_CUDA=AUTO or OFF.")
    else()
      set(FRESHET_CUDA_STATE "OFF (no nvcc found)")
    endif()
    unset(_freshet_nvcc)
  elseif(NOT EXISTS ${PROJECT_SOURCE_DIR}/kernels/cuda/CMakeLists.txt)
    # The CUDA backend sources (kernels/cuda/) are added by kernels/CMakeLists.txt when they exist.
    set(FRESHET_CUDA_STATE "OFF (nvcc found; no CUDA backend sources in this version)")
  else()
    if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
      set(CMAKE_CUDA_ARCHITECTURES 80 90)
    endif()
    freshet_cuda_unsupported_architectures(_freshet_unsupported)
    if(_freshet_unsupported)
      string(CONCAT _freshet_cuda_reason "${CMAKE_CUDA_COMPILER} cannot generate code for CUDA "
             "architectures ${_freshet_unsupported} (CMAKE_CUDA_ARCHITECTURES)")
    else()
      # CUDA is enabled here, at the top level, so that every target that links the CUDA backend
      # (tests, benchmarks, the binary) can use the CUDA toolchain's link information.
      # check_language has enabled it in a scratch project with this compiler already (unless the
      # compiler was given with -DCMAKE_CUDA_COMPILER), so this does not fail.
      enable_language(CUDA)
      freshet_check_cuda_toolkit()
      if(NOT _freshet_cuda_reason)
        set(FRESHET_CUDA_STATE ON)
      endif()
    endif()
    unset(_freshet_unsupported)
  endif()
  if(_freshet_cuda_reason)
    if(FRESHET_CUDA STREQUAL "ON")
      message(FATAL_ERROR "FRESHET_CUDA=ON but ${_freshet_cuda_reason}. Point at another toolkit "
                          "(-DCMAKE_CUDA_COMPILER=/path/to/nvcc, -DCUDAToolkit_ROOT=DIR), or "
                          "configure with -DFRESHET_CUDA=AUTO (builds without CUDA) or OFF.")
    endif()
    message(NOTICE "freshet: building without the CUDA backend: ${_freshet_cuda_reason} "
                   "(FRESHET_CUDA=AUTO; -DFRESHET_CUDA=OFF skips the search)")
    set(FRESHET_CUDA_STATE "OFF (${_freshet_cuda_reason})")
  endif()
  unset(_freshet_cuda_reason)
endif()
