// FUZZ_CHECK: the fuzz targets' assertion. A failed invariant prints what broke and aborts, which
// libFuzzer reports as a crash and saves the input as a reproducer. Independent of NDEBUG.
#ifndef FRESHET_TESTS_FUZZ_FUZZ_CHECK_H_
#define FRESHET_TESTS_FUZZ_FUZZ_CHECK_H_

#include <cstdio>
#include <cstdlib>
#include <string>

#define FUZZ_CHECK(cond, what)                                                                \
  do {                                                                                        \
    if (!(cond)) {                                                                            \
      const std::string fuzz_check_what_ = (what);                                            \
      std::fprintf(stderr, "%s:%d: FUZZ_CHECK failed: %s\n  %s\n", __FILE__, __LINE__, #cond, \
                   fuzz_check_what_.c_str());                                                 \
      std::abort();                                                                           \
    }                                                                                         \
  } while (0)

#endif  // FRESHET_TESTS_FUZZ_FUZZ_CHECK_H_
