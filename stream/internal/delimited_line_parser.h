// DelimitedLineParser: one line of a csv/tsv/MovieLens file, split on an arbitrary delimiter and
// mapped to event fields by column role. See stream/file_source_options.h for the accepted
// syntax (RFC-4180 quoting within a line, space trimming, extra columns ignored).
#ifndef FRESHET_STREAM_INTERNAL_DELIMITED_LINE_PARSER_H_
#define FRESHET_STREAM_INTERNAL_DELIMITED_LINE_PARSER_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "stream/file_source_options.h"
#include "stream/internal/line_parser.h"

namespace freshet::stream::internal {

// Not thread-safe (LineParser).
class DelimitedLineParser final : public LineParser {
 public:
  // `delimiter` must be non-empty and `columns` valid (ValidateColumns); `unit` is resolved
  // (any value, auto included).
  DelimitedLineParser(std::string delimiter, std::vector<ColumnRole> columns, TimestampUnit unit);

  std::optional<MalformedReason> Parse(absl::string_view line, ParsedLine* out) override;

 private:
  // Where the next field starts, or kNoMoreFields after the last field of the line.
  static constexpr size_t kNoMoreFields = static_cast<size_t>(-1);

  // Reads the field starting at `*pos` into *field and advances *pos past its delimiter.
  std::optional<MalformedReason> NextField(absl::string_view line, ColumnRole role, size_t* pos,
                                           absl::string_view* field);
  size_t FindDelimiter(absl::string_view line, size_t from) const;
  bool IsTrimmed(char c) const { return (c == ' ' && trim_space_) || (c == '\t' && trim_tab_); }

  const std::string delimiter_;
  const std::vector<ColumnRole> columns_;
  const TimestampUnit unit_;
  // Spaces and tabs around unquoted fields are trimmed unless they are part of the delimiter.
  const bool trim_space_;
  const bool trim_tab_;
  // Unescaped quoted fields ("" -> "), one per role so that the views in ParsedLine stay valid.
  std::string unescaped_[static_cast<int>(ColumnRole::kSkip)];
};

}  // namespace freshet::stream::internal

#endif  // FRESHET_STREAM_INTERNAL_DELIMITED_LINE_PARSER_H_
