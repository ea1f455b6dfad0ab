// The one set of rules every event passes before it can reach a learner, whichever way it came in
// (a file, a Kafka message, POST /v1/events): ids that are valid UTF-8 and not too long, a weight
// that is finite, non-negative and not above the configured bound, and a timestamp in a sane
// range. The decoders differ in syntax only; what they accept is decided here.
#ifndef FRESHET_STREAM_EVENT_VALIDATION_H_
#define FRESHET_STREAM_EVENT_VALIDATION_H_

#include <cstdint>
#include <optional>

#include "absl/strings/string_view.h"
#include "stream/internal/line_parser.h"

namespace freshet::stream {

// Timestamps are epoch milliseconds in [0, kMaxEventTsMs): 1970 up to 2100-01-01. Anything else
// is a unit mix-up (microseconds, nanoseconds) or garbage, and would drive time-based logic (TTL
// expiry, recency decay, freshness) to nonsense.
inline constexpr int64_t kMaxEventTsMs = 4'102'444'800'000;

struct EventLimits {
  // Events heavier than this (the explicit weight, or the weight their type resolves to) are
  // rejected: one event with weight 1e20 would otherwise overflow the learners' accumulators and
  // empty every answer. Rejected rather than clamped, because such a weight is a producer's bug,
  // and a clamped event would still carry the most weight any event can.
  float max_weight = 100.0f;
  // Longest user, item, type or event id, in bytes.
  int max_id_bytes = 256;
};

// Why an event with these fields must be rejected, or nullopt when it is acceptable. Missing
// and empty ids are reported before these are called. EventCodec::Resolve (stream/event_codec.h)
// is the one caller, for every source: CheckIds, CheckEventId, then CheckNumbers on the resolved
// weight, the ids first, so a source may intern the type once they have passed.
std::optional<internal::MalformedReason> CheckIds(absl::string_view user, absl::string_view item,
                                                  absl::string_view type,
                                                  const EventLimits& limits);
// The event's idempotency key: empty (none), or like a user id (valid UTF-8, at most
// max_id_bytes).
std::optional<internal::MalformedReason> CheckEventId(absl::string_view id,
                                                      const EventLimits& limits);
std::optional<internal::MalformedReason> CheckNumbers(int64_t ts_ms, float weight,
                                                      const EventLimits& limits);

// A sentence for an HTTP client or a log line: what was wrong, with the limit where one applies.
std::string DescribeRejection(internal::MalformedReason reason, const EventLimits& limits);

}  // namespace freshet::stream

#endif  // FRESHET_STREAM_EVENT_VALIDATION_H_
