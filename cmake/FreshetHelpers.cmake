# Helpers that give every freshet target the same warnings, include root and optimisation flags.

# -Wmaybe-uninitialized is off: GCC 12 reports false positives inside Eigen's AVX-512 code paths.
# -Wno-psabi: the learners' 16-float vectors (learner/internal/vector_ops.h) are passed by value
# between inline functions; GCC notes that their calling convention differs with and without
# AVX-512, which matters only across separately compiled objects, never for inline helpers.
set(FRESHET_WARNINGS -Wall -Wextra -Wpedantic -Wno-sign-compare -Wno-maybe-uninitialized -Wno-psabi
    -Werror=unused-result -Werror=return-type)
if(FRESHET_WERROR)
  list(APPEND FRESHET_WARNINGS -Werror)
endif()

# FRESHET_ARCH_FLAGS: -march for every C++ target (see FRESHET_ARCH in the top CMakeLists.txt).
if(FRESHET_NATIVE)
  set(FRESHET_ARCH_FLAGS -march=native)
elseif(FRESHET_ARCH_RESOLVED)
  set(FRESHET_ARCH_FLAGS -march=${FRESHET_ARCH_RESOLVED} -mtune=generic)
else()
  set(FRESHET_ARCH_FLAGS "")
endif()

function(freshet_target_defaults target)
  target_compile_options(${target} PRIVATE ${FRESHET_WARNINGS} ${FRESHET_ARCH_FLAGS})
  target_include_directories(${target} PUBLIC ${PROJECT_SOURCE_DIR})
endfunction()

# freshet_add_library(NAME SOURCES ... DEPS ...)
function(freshet_add_library name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS" ${ARGN})
  add_library(${name} STATIC ${ARG_SOURCES})
  freshet_target_defaults(${name})
  target_link_libraries(${name} PUBLIC ${ARG_DEPS})
endfunction()

# freshet_add_test(NAME SOURCES ... DEPS ...): one GoogleTest binary, discovered by CTest.
function(freshet_add_test name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  freshet_target_defaults(${name})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} GTest::gtest GTest::gmock GTest::gtest_main)
  target_compile_definitions(${name} PRIVATE
      FRESHET_SOURCE_DIR="${PROJECT_SOURCE_DIR}"
      FRESHET_BINARY_DIR="${PROJECT_BINARY_DIR}")
  gtest_discover_tests(${name} DISCOVERY_TIMEOUT 60 PROPERTIES TIMEOUT 600)
endfunction()

# freshet_add_bench(NAME SOURCES ... DEPS ...): a Google Benchmark binary. Each benchmark also
# runs once at a tiny size under CTest (label "bench-smoke") so it cannot rot.
function(freshet_add_bench name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS;SMOKE_ARGS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  freshet_target_defaults(${name})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} benchmark::benchmark)
  if(FRESHET_BUILD_TESTS)
    add_test(NAME ${name}.smoke COMMAND ${name} --benchmark_min_time=0.001 ${ARG_SMOKE_ARGS})
    set_tests_properties(${name}.smoke PROPERTIES LABELS bench-smoke TIMEOUT 300)
  endif()
endfunction()
