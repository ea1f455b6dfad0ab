// Status plumbing shared by every folder. Debian 12's Abseil (20220623) has no status macros, so
// they are defined here once.
#ifndef FRESHET_COMMON_STATUS_MACROS_H_
#define FRESHET_COMMON_STATUS_MACROS_H_

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define FRESHET_INTERNAL_CONCAT_IMPL(a, b) a##b
#define FRESHET_INTERNAL_CONCAT(a, b) FRESHET_INTERNAL_CONCAT_IMPL(a, b)

// Evaluates `expr` (an absl::Status) and returns it from the enclosing function unless it is OK.
#define FRESHET_RETURN_IF_ERROR(expr)                  \
  do {                                                 \
    ::absl::Status freshet_status_ = (expr);           \
    if (!freshet_status_.ok()) return freshet_status_; \
  } while (0)

// `FRESHET_ASSIGN_OR_RETURN(auto x, Foo());` evaluates an absl::StatusOr<T>; on error returns its
// status from the enclosing function, otherwise moves the value into `lhs`.
#define FRESHET_ASSIGN_OR_RETURN(lhs, rexpr)                                                   \
  FRESHET_INTERNAL_ASSIGN_OR_RETURN(FRESHET_INTERNAL_CONCAT(freshet_statusor_, __LINE__), lhs, \
                                    rexpr)

#define FRESHET_INTERNAL_ASSIGN_OR_RETURN(statusor, lhs, rexpr) \
  auto statusor = (rexpr);                                      \
  if (!statusor.ok()) return std::move(statusor).status();      \
  lhs = std::move(statusor).value()

#endif  // FRESHET_COMMON_STATUS_MACROS_H_
