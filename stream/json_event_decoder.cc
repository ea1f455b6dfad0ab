#include "stream/json_event_decoder.h"

#include <cstring>
#include <utility>

namespace freshet::stream {

using internal::MalformedReason;

JsonEventDecoder::JsonEventDecoder(JsonEventOptions options)
    : options_(std::move(options)), parser_(TimestampUnit::kMilliseconds) {}

std::optional<MalformedReason> JsonEventDecoder::Decode(absl::string_view json,
                                                        int64_t default_ts_ms, Event* out) {
  // The parser reads up to kLinePadding bytes past the end: decode from a padded copy.
  padded_.assign(json.data(), json.size());
  padded_.append(internal::kLinePadding, '\0');
  internal::ParsedLine parsed;
  if (auto bad = parser_.Parse(absl::string_view(padded_.data(), json.size()), &parsed)) {
    return bad;
  }
  if (parsed.user.empty()) return MalformedReason::kEmptyUser;
  if (parsed.item.empty()) return MalformedReason::kEmptyItem;
  const absl::string_view type =
      parsed.type.empty() ? absl::string_view(options_.default_type) : parsed.type;
  float weight = options_.default_weight;
  if (parsed.has_weight) {
    weight = parsed.weight;
  } else if (const auto it = options_.type_weights.find(type); it != options_.type_weights.end()) {
    weight = it->second;
  }
  const int64_t ts_ms = parsed.has_ts ? parsed.ts_ms : default_ts_ms;
  if (auto bad = CheckEvent(parsed.user, parsed.item, type, ts_ms, weight, options_.limits)) {
    return bad;
  }
  if (auto bad = CheckEventId(parsed.id, options_.limits)) return bad;
  out->user.assign(parsed.user.data(), parsed.user.size());
  out->item.assign(parsed.item.data(), parsed.item.size());
  out->type.assign(type.data(), type.size());
  out->weight = weight;
  out->ts_ms = ts_ms;
  out->id.assign(parsed.id.data(), parsed.id.size());
  return std::nullopt;
}

}  // namespace freshet::stream
