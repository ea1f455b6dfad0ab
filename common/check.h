// FRESHET_CHECK: assertions for programmer errors only (broken invariants inside freshet). Input
// from users, files, brokers or requests is never checked with it: that gets an absl::Status.
#ifndef FRESHET_COMMON_CHECK_H_
#define FRESHET_COMMON_CHECK_H_

namespace freshet::internal {
[[noreturn]] void CheckFailed(const char* file, int line, const char* condition);
}  // namespace freshet::internal

#define FRESHET_CHECK(cond)                                        \
  do {                                                             \
    if (__builtin_expect(!(cond), 0)) {                            \
      ::freshet::internal::CheckFailed(__FILE__, __LINE__, #cond); \
    }                                                              \
  } while (0)

#endif  // FRESHET_COMMON_CHECK_H_
