# FRESHET_CUDA=ON|OFF|AUTO. AUTO turns the CUDA backend on when nvcc is found; ON without nvcc is a
# configure error. The result is FRESHET_CUDA_STATE ("ON"/"OFF"). Architectures default to 80;90 and
# are set before CUDA is enabled (never "native": build machines have no GPU).
set(FRESHET_CUDA_STATE OFF)
if(NOT FRESHET_CUDA STREQUAL "OFF")
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    set(FRESHET_CUDA_STATE ON)
  elseif(FRESHET_CUDA STREQUAL "ON")
    message(FATAL_ERROR "FRESHET_CUDA=ON but no CUDA compiler (nvcc) was found. "
                        "Install the CUDA toolkit or configure with -DFRESHET_CUDA=AUTO or OFF.")
  endif()
endif()
# The CUDA backend sources (kernels/cuda/) are added by kernels/CMakeLists.txt when they exist;
# until then the registry reports cuda as not compiled in.
if(FRESHET_CUDA_STATE AND NOT EXISTS ${PROJECT_SOURCE_DIR}/kernels/cuda/CMakeLists.txt)
  set(FRESHET_CUDA_STATE "OFF (nvcc found; no CUDA backend sources in this version)")
endif()
# CUDA is enabled here, at the top level, so that every target that links the CUDA backend (tests,
# benchmarks, the binary) can use the CUDA toolchain's link information.
if(FRESHET_CUDA_STATE STREQUAL "ON")
  if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
    set(CMAKE_CUDA_ARCHITECTURES 80 90)
  endif()
  enable_language(CUDA)
endif()
