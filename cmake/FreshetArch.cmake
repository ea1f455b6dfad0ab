# freshet_detect_x86_level(OUT): the highest x86-64 level (x86-64-v4, -v3 or -v2) the build
# machine runs, asked of the CPU itself (GCC's __builtin_cpu_supports) by a small program run at
# configure time. The result is cached per build folder.
function(freshet_detect_x86_level out)
  if(DEFINED CACHE{FRESHET_DETECTED_X86_LEVEL})
    set(${out} "${FRESHET_DETECTED_X86_LEVEL}" PARENT_SCOPE)
    return()
  endif()
  set(src "${CMAKE_BINARY_DIR}/CMakeFiles/freshet_x86_level.cc")
  file(WRITE "${src}" [=[
#include <cstdio>
int main() {
  __builtin_cpu_init();
  const bool v3 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                  __builtin_cpu_supports("bmi2");
  const bool v4 = v3 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                  __builtin_cpu_supports("avx512cd") && __builtin_cpu_supports("avx512dq") &&
                  __builtin_cpu_supports("avx512vl");
  std::printf("%s", v4 ? "x86-64-v4" : v3 ? "x86-64-v3" : "x86-64-v2");
  return 0;
}
]=])
  try_run(run_result compile_result "${CMAKE_BINARY_DIR}/CMakeFiles/freshet_x86_level" "${src}"
          RUN_OUTPUT_VARIABLE level)
  if(NOT compile_result OR NOT run_result EQUAL 0 OR NOT level MATCHES "^x86-64-v[234]$")
    set(level "x86-64-v2")
  endif()
  message(STATUS "freshet: FRESHET_ARCH=auto: this machine runs ${level}")
  set(FRESHET_DETECTED_X86_LEVEL "${level}" CACHE INTERNAL "x86-64 level of the build machine")
  set(${out} "${level}" PARENT_SCOPE)
endfunction()
