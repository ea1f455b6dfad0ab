// Conversions of timestamp and weight fields shared by the line parsers. All return false for a
// value that is not acceptable, and never throw or allocate.
#ifndef FRESHET_STREAM_INTERNAL_NUMBERS_H_
#define FRESHET_STREAM_INTERNAL_NUMBERS_H_

#include <cstdint>

#include "absl/strings/string_view.h"
#include "stream/file_source_options.h"

namespace freshet::stream::internal {

// Under TimestampUnit::kAuto, values smaller than this in magnitude are seconds.
inline constexpr double kAutoSecondsBelow = 1e11;

// Epoch milliseconds of a timestamp written in `unit`; false when the result overflows int64.
bool IntegerTimestampToMs(int64_t value, TimestampUnit unit, int64_t* ms);
// As above for a fractional value, rounded to the nearest millisecond; false for NaN/infinity.
bool FloatTimestampToMs(double value, TimestampUnit unit, int64_t* ms);

// A whole field holding a decimal number (integer, fraction or exponent, optional '-'; no
// surrounding spaces) as a timestamp in `unit`.
bool ParseTimestamp(absl::string_view text, TimestampUnit unit, int64_t* ms);

// A weight: finite, >= 0 and representable as a float.
bool CheckWeight(double value, float* weight);
// A whole field holding a decimal number, checked as CheckWeight does.
bool ParseWeight(absl::string_view text, float* weight);

}  // namespace freshet::stream::internal

#endif  // FRESHET_STREAM_INTERNAL_NUMBERS_H_
