// EventCodec: the one codec of freshet's event format, the JSON object of ARCHITECTURE.md,
// "Event format":
//   {"user":"u42","item":"sku-9","type":"click","ts":1700000000123,"weight":1,"id":"order-17"}
// Every way in decodes with it: jsonl files (FileEventSource), Kafka messages (KafkaEventSource)
// and POST /v1/events (serving/api.cc). Every JSON writer encodes with it: the Kafka producer
// (`freshet produce`, and POST /v1/events when events go through a broker) and the synthetic
// generator (`freshet generate`). Delimited files (csv, tsv, MovieLens) have their own syntax but
// go through the same Resolve step, so a field means the same in every format.
//
// Decoding is Parse (syntax) then Resolve (defaults and validation):
//   - The text is one JSON object, valid UTF-8, with nothing but whitespace after it; anything
//     else is "invalid json". Keys other than the six below are skipped (unread: a syntax error
//     inside their values may go unnoticed). When a key repeats, its last value counts.
//   - "user" and "item" (required): a string, or an integer kept as its decimal text ("item":12 is
//     "12"; only plain integer text: no fraction, exponent or leading zero). Any other value is
//     "bad user" / "bad item"; absent or null is "missing user" / "missing item"; "" is
//     "empty user" / "empty item".
//   - "type": a string ("bad type" otherwise); null or "" count as absent, and an absent type is
//     options.default_type.
//   - "ts": epoch milliseconds (options.ts_unit: a jsonl file may say seconds or auto), a number
//     (a fraction rounds to the nearest millisecond) or a string holding one (producers that fear
//     JavaScript's 53-bit integers quote timestamps); "bad ts" otherwise. null or "" count as
//     absent, and an absent ts is the caller's default: a file's previous line, a Kafka message's
//     timestamp, the time of a POST.
//   - "weight": a number or a string holding one, at least 0 and finite ("bad weight"
//     otherwise); null or "" count as absent, and an absent weight is type_weights[type], else
//     default_weight.
//   - "id" (the event's idempotency key): a string or an integer (as its decimal text); "bad id"
//     otherwise; null counts as absent (no id).
//   - Then the checks of stream/event_validation.h, in this order: the user, item and (resolved)
//     type ids, the event id, then the resolved weight and ts.
// A rejected event gets the reason of the first rule it breaks: syntax and field kinds in the
// order the fields appear, then missing, then empty user and item, then the checks above. The
// reasons are what the sources count (malformed_by_reason) and POST /v1/events describes.
//
// Encoding (Encode) writes {"user","item","type","ts","weight","id"} in that order: "type" and
// "id" only when not empty, strings JSON-escaped (bytes that are not UTF-8 become U+FFFD), ts an
// integer, weight the shortest decimal that decodes to the same float. Decoding what Encode wrote
// gives back the same user, item, type, weight, ts and id for every event that decoding accepts
// (an empty type comes back as options.default_type). A weight that is not finite is written as a
// string ("nan", "inf"), which keeps the JSON valid and decodes as "bad weight".
#ifndef FRESHET_STREAM_EVENT_CODEC_H_
#define FRESHET_STREAM_EVENT_CODEC_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/function_ref.h"
#include "absl/strings/string_view.h"
#include "stream/event.h"
#include "stream/event_validation.h"
#include "stream/file_source_options.h"
#include "stream/internal/line_parser.h"

namespace freshet::stream {

struct EventCodecOptions {
  // Weights by event type; an event without an explicit weight weighs its type's, else
  // `default_weight`. An event without a type gets `default_type`.
  absl::flat_hash_map<std::string, float> type_weights;
  float default_weight = 1.0f;
  std::string default_type;
  EventLimits limits;
  // The unit of a numeric "ts": milliseconds, as every producer writes it; a jsonl file may be
  // read in another (FileSourceOptions::ts_unit).
  TimestampUnit ts_unit = TimestampUnit::kMilliseconds;
};

// One event once Resolve has applied the defaults and the checks. The views point into the
// ParsedLine it came from, or into the codec's options (the default type).
struct ResolvedEvent {
  absl::string_view user;
  absl::string_view item;
  absl::string_view type;
  absl::string_view id;
  float weight = 1.0f;
  int64_t ts_ms = 0;
};

// Not thread-safe: Decode and Parse reuse a parser and a buffer. Encode is static.
class EventCodec {
 public:
  explicit EventCodec(EventCodecOptions options);
  ~EventCodec();
  EventCodec(EventCodec&&) noexcept;
  EventCodec& operator=(EventCodec&&) = delete;

  // Decodes the JSON object `json` into *out (its position untouched). An event without a ts
  // gets `default_ts_ms`. Returns why it was rejected instead, with *out unspecified.
  std::optional<internal::MalformedReason> Decode(absl::string_view json, int64_t default_ts_ms,
                                                  Event* out);

  // The two halves of Decode, for sources that keep their own buffers and defaults.
  //
  // Parse: the syntax and the kinds of the fields. `json` must be followed by
  // internal::kLinePadding readable bytes. Missing or empty ids are not reported here but by
  // Resolve (a Kafka message may take its key as the user in between). The views in *out point
  // into `json` or into the codec, valid until the next Parse or Decode.
  std::optional<internal::MalformedReason> Parse(absl::string_view json, internal::ParsedLine* out);

  // Resolve: the defaults and the checks, for a line of any format. `type_weight` is asked for the
  // weight of the resolved type when the event has none (sources that cache it or warn about
  // unknown types pass their own; the others pass TypeWeight). Ids are checked before
  // `type_weight` is called, so a source may intern the type there.
  std::optional<internal::MalformedReason> Resolve(
      const internal::ParsedLine& fields, int64_t default_ts_ms,
      absl::FunctionRef<float(absl::string_view type)> type_weight, ResolvedEvent* out) const;

  // The weight of an event of `type` without a weight of its own: type_weights[type], else
  // default_weight.
  float TypeWeight(absl::string_view type) const;

  // Appends `event` as one JSON object (no line break) to *out (not cleared).
  static void Encode(const Event& event, std::string* out);

  const EventCodecOptions& options() const { return options_; }

 private:
  struct Parser;  // simdjson's, kept out of this header

  EventCodecOptions options_;
  std::unique_ptr<Parser> parser_;
  std::string padded_;
};

}  // namespace freshet::stream

#endif  // FRESHET_STREAM_EVENT_CODEC_H_
