#include "stream/internal/numbers.h"

#include <charconv>
#include <cmath>
#include <limits>
#include <system_error>

namespace freshet::stream::internal {
namespace {

// Doubles at or beyond this magnitude do not fit int64 (2^63 ~ 9.22e18).
constexpr double kMaxAbsMs = 9.2e18;

bool IsSeconds(double magnitude, TimestampUnit unit) {
  switch (unit) {
    case TimestampUnit::kSeconds:
      return true;
    case TimestampUnit::kMilliseconds:
      return false;
    case TimestampUnit::kAuto:
      return magnitude < kAutoSecondsBelow;
  }
  return false;
}

bool ParseDouble(absl::string_view text, double* value) {
  const char* const end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, *value);
  return ec == std::errc() && ptr == end;
}

}  // namespace

bool IntegerTimestampToMs(int64_t value, TimestampUnit unit, int64_t* ms) {
  const double magnitude = std::fabs(static_cast<double>(value));
  if (!IsSeconds(magnitude, unit)) {
    *ms = value;
    return true;
  }
  return !__builtin_mul_overflow(value, int64_t{1000}, ms);
}

bool FloatTimestampToMs(double value, TimestampUnit unit, int64_t* ms) {
  if (!std::isfinite(value)) return false;
  const double scaled = IsSeconds(std::fabs(value), unit) ? value * 1000.0 : value;
  if (std::fabs(scaled) >= kMaxAbsMs) return false;
  *ms = std::llround(scaled);
  return true;
}

bool ParseTimestamp(absl::string_view text, TimestampUnit unit, int64_t* ms) {
  if (text.empty()) return false;
  // Integers (the common case) skip floating-point parsing and keep full precision.
  int64_t integer = 0;
  const char* const end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, integer);
  if (ec == std::errc() && ptr == end) return IntegerTimestampToMs(integer, unit, ms);
  double value = 0;
  return ParseDouble(text, &value) && FloatTimestampToMs(value, unit, ms);
}

bool CheckWeight(double value, float* weight) {
  if (!std::isfinite(value) || value < 0 ||
      value > static_cast<double>(std::numeric_limits<float>::max())) {
    return false;
  }
  // -0.0 passes `value < 0`; store +0 so that no negative zero leaks into the learner.
  *weight = value == 0 ? 0.0f : static_cast<float>(value);
  return true;
}

bool ParseWeight(absl::string_view text, float* weight) {
  double value = 0;
  return ParseDouble(text, &value) && CheckWeight(value, weight);
}

}  // namespace freshet::stream::internal
