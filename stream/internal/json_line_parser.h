// JsonLineParser: one jsonl line, the event object of DESIGN.md "Events", parsed in place with
// simdjson On-Demand. See stream/file_source_options.h for the accepted fields.
//
// On-Demand validates what it reads: a syntax error inside the value of a key freshet ignores
// may go unnoticed, but the structure of the object, the fields freshet uses, UTF-8 and trailing
// content after the object are checked.
#ifndef FRESHET_STREAM_INTERNAL_JSON_LINE_PARSER_H_
#define FRESHET_STREAM_INTERNAL_JSON_LINE_PARSER_H_

#include <optional>

#include "absl/strings/string_view.h"
#include "simdjson.h"
#include "stream/file_source_options.h"
#include "stream/internal/line_parser.h"

namespace freshet::stream::internal {

// Not thread-safe (LineParser).
class JsonLineParser final : public LineParser {
 public:
  explicit JsonLineParser(TimestampUnit unit) : unit_(unit) {}

  // The views in *out point into the parser's string buffer or the line.
  std::optional<MalformedReason> Parse(absl::string_view line, ParsedLine* out) override;

 private:
  const TimestampUnit unit_;
  simdjson::ondemand::parser parser_;
};

}  // namespace freshet::stream::internal

#endif  // FRESHET_STREAM_INTERNAL_JSON_LINE_PARSER_H_
