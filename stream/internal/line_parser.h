// LineParser: decodes one line of an event log into its fields. Implementations:
// DelimitedLineParser (csv, tsv, MovieLens) and, for jsonl, FileEventSource's adapter of
// EventCodec::Parse (stream/event_codec.h).
#ifndef FRESHET_STREAM_INTERNAL_LINE_PARSER_H_
#define FRESHET_STREAM_INTERNAL_LINE_PARSER_H_

#include <cstddef>
#include <cstdint>
#include <optional>

#include "absl/strings/string_view.h"

namespace freshet::stream::internal {

// Why a line was skipped. The names (MalformedReasonName) are what
// FileEventSource::malformed_by_reason() reports and what the log lines say.
enum class MalformedReason {
  kTooFewColumns,      // "too few columns"
  kUnterminatedQuote,  // "unterminated quote"
  kBadQuoting,         // "bad quoting": text between a closing quote and the delimiter
  kMissingUser,        // "missing user" (jsonl)
  kMissingItem,        // "missing item" (jsonl)
  kEmptyUser,          // "empty user"
  kEmptyItem,          // "empty item"
  kBadUser,            // "bad user": not a string or an integer (jsonl)
  kBadItem,            // "bad item"
  kBadType,            // "bad type": not a string (jsonl)
  kBadTimestamp,       // "bad ts": not a number, or outside [1970, 2100)
  kBadWeight,          // "bad weight": not a number, negative, NaN, infinite, or above
                       // events.max_weight
  kInvalidJson,        // "invalid json": syntax error, bad UTF-8, or not an object
  kTruncatedLastLine,  // "truncated last line": unterminated last line that did not parse, or
                       // any unterminated last line of a truncated gzip stream
  kTruncatedGzip,      // "truncated gzip": the compressed stream ends early (counted once)
  kIdTooLong,          // "id too long": a user, item, type or event id above events.max_id_bytes
  kInvalidUtf8,        // "invalid utf-8": an id that is not valid UTF-8
  kBadEventId,         // "bad id": the event's "id" is not a string or an integer (jsonl)
};
inline constexpr int kMalformedReasonCount = static_cast<int>(MalformedReason::kBadEventId) + 1;

absl::string_view MalformedReasonName(MalformedReason reason);

// Parsers may read this many bytes past the end of a line (simdjson does); callers guarantee
// they are readable.
inline constexpr size_t kLinePadding = 64;

// The fields of one line. Views point into the line or into the parser and are valid until the
// next Parse call. A missing or empty user or item is reported by EventCodec::Resolve
// (stream/event_codec.h), not by the parser.
struct ParsedLine {
  bool has_user = false;  // false: absent (a jsonl line without "user", or with "user":null)
  absl::string_view user;
  bool has_item = false;
  absl::string_view item;
  absl::string_view type;  // empty when absent
  bool has_ts = false;
  int64_t ts_ms = 0;
  bool has_weight = false;
  float weight = 0;      // finite, >= 0 when has_weight
  absl::string_view id;  // the event's idempotency key; empty when absent
};

// Not thread-safe: a parser reuses internal buffers between lines.
class LineParser {
 public:
  virtual ~LineParser() = default;

  // Parses `line` (no line terminator; at least kLinePadding readable bytes follow it) into
  // *out. Returns the reason when the line is malformed; *out is then unspecified.
  virtual std::optional<MalformedReason> Parse(absl::string_view line, ParsedLine* out) = 0;
};

}  // namespace freshet::stream::internal

#endif  // FRESHET_STREAM_INTERNAL_LINE_PARSER_H_
