// JsonEventDecoder: one event object of DESIGN.md "Events" (`{"user", "item", "type", "ts",
// "weight"}`) to an Event, by the rules every JSON path shares: jsonl files and Kafka messages
// decode with the same parser (stream/internal/json_line_parser.h), and POST /v1/events goes
// through this class, so a quoted or fractional `ts`, a string weight or a `null` field mean the
// same everywhere, and every event passes CheckEvent (stream/event_validation.h).
#ifndef FRESHET_STREAM_JSON_EVENT_DECODER_H_
#define FRESHET_STREAM_JSON_EVENT_DECODER_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "stream/event.h"
#include "stream/event_validation.h"
#include "stream/internal/json_line_parser.h"

namespace freshet::stream {

struct JsonEventOptions {
  // Weights by event type; an event without an explicit weight weighs its type's, else
  // `default_weight`. An event without a type gets `default_type`.
  absl::flat_hash_map<std::string, float> type_weights;
  float default_weight = 1.0f;
  std::string default_type;
  EventLimits limits;
};

// Not thread-safe: reuses its parser and buffer.
class JsonEventDecoder {
 public:
  explicit JsonEventDecoder(JsonEventOptions options);

  // Decodes the JSON object `json` into *out (its position untouched). An event without `ts`
  // gets `default_ts_ms`. Returns why it was rejected instead, with *out unspecified.
  std::optional<internal::MalformedReason> Decode(absl::string_view json, int64_t default_ts_ms,
                                                  Event* out);

  const JsonEventOptions& options() const { return options_; }

 private:
  const JsonEventOptions options_;
  internal::JsonLineParser parser_;
  std::string padded_;
};

}  // namespace freshet::stream

#endif  // FRESHET_STREAM_JSON_EVENT_DECODER_H_
