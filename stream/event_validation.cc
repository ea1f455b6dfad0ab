#include "stream/event_validation.h"

#include <cmath>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/utf8.h"

namespace freshet::stream {

using internal::MalformedReason;

std::optional<MalformedReason> CheckIds(absl::string_view user, absl::string_view item,
                                        absl::string_view type, const EventLimits& limits) {
  const size_t max_id = static_cast<size_t>(limits.max_id_bytes);
  if (user.size() > max_id || item.size() > max_id || type.size() > max_id) {
    return MalformedReason::kIdTooLong;
  }
  if (!IsValidUtf8(user) || !IsValidUtf8(item) || !IsValidUtf8(type)) {
    return MalformedReason::kInvalidUtf8;
  }
  return std::nullopt;
}

std::optional<MalformedReason> CheckEventId(absl::string_view id, const EventLimits& limits) {
  if (id.size() > static_cast<size_t>(limits.max_id_bytes)) return MalformedReason::kIdTooLong;
  if (!IsValidUtf8(id)) return MalformedReason::kInvalidUtf8;
  return std::nullopt;
}

std::optional<MalformedReason> CheckNumbers(int64_t ts_ms, float weight,
                                            const EventLimits& limits) {
  if (!std::isfinite(weight) || weight < 0 || weight > limits.max_weight) {
    return MalformedReason::kBadWeight;
  }
  if (ts_ms < 0 || ts_ms >= kMaxEventTsMs) return MalformedReason::kBadTimestamp;
  return std::nullopt;
}

std::string DescribeRejection(MalformedReason reason, const EventLimits& limits) {
  switch (reason) {
    case MalformedReason::kIdTooLong:
      return absl::StrCat("user, item, type and event ids are at most ", limits.max_id_bytes,
                          " bytes (events.max_id_bytes)");
    case MalformedReason::kInvalidUtf8:
      return "user, item, type and event ids must be valid UTF-8";
    case MalformedReason::kBadWeight:
      return absl::StrCat("\"weight\" must be a finite number in [0, ", limits.max_weight,
                          "] (events.max_weight), including the weight of its type");
    case MalformedReason::kBadTimestamp:
      return absl::StrCat("\"ts\" must be epoch milliseconds in [0, ", kMaxEventTsMs,
                          ") (1970 to 2100)");
    case MalformedReason::kBadEventId:
      return "\"id\" (the event's idempotency key) must be a string or an integer";
    default:
      return std::string(internal::MalformedReasonName(reason));
  }
}

}  // namespace freshet::stream
