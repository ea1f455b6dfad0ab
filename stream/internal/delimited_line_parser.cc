#include "stream/internal/delimited_line_parser.h"

#include <cstring>
#include <utility>

#include "common/check.h"
#include "stream/internal/numbers.h"

namespace freshet::stream::internal {

DelimitedLineParser::DelimitedLineParser(std::string delimiter, std::vector<ColumnRole> columns,
                                         TimestampUnit unit)
    : delimiter_(std::move(delimiter)),
      columns_(std::move(columns)),
      unit_(unit),
      trim_space_(delimiter_.find(' ') == std::string::npos),
      trim_tab_(delimiter_.find('\t') == std::string::npos) {
  FRESHET_CHECK(!delimiter_.empty());
}

size_t DelimitedLineParser::FindDelimiter(absl::string_view line, size_t from) const {
  if (delimiter_.size() == 1) {
    const void* hit = std::memchr(line.data() + from, delimiter_[0], line.size() - from);
    return hit == nullptr ? absl::string_view::npos : static_cast<const char*>(hit) - line.data();
  }
  return line.find(delimiter_, from);
}

std::optional<MalformedReason> DelimitedLineParser::NextField(absl::string_view line,
                                                              ColumnRole role, size_t* pos,
                                                              absl::string_view* field) {
  size_t start = *pos;
  while (start < line.size() && IsTrimmed(line[start])) ++start;

  if (start == line.size() || line[start] != '"') {
    const size_t delimiter = FindDelimiter(line, start);
    size_t end = delimiter == absl::string_view::npos ? line.size() : delimiter;
    while (end > start && IsTrimmed(line[end - 1])) --end;
    *field = line.substr(start, end - start);
    *pos = delimiter == absl::string_view::npos ? kNoMoreFields : delimiter + delimiter_.size();
    return std::nullopt;
  }

  // Quoted: up to the first quote that is not doubled.
  const size_t content = start + 1;
  size_t close = content;
  bool doubled = false;
  for (;;) {
    close = line.find('"', close);
    if (close == absl::string_view::npos) return MalformedReason::kUnterminatedQuote;
    if (close + 1 < line.size() && line[close + 1] == '"') {
      doubled = true;
      close += 2;
      continue;
    }
    break;
  }
  *field = line.substr(content, close - content);
  if (doubled && role != ColumnRole::kSkip) {
    std::string& out = unescaped_[static_cast<int>(role)];
    out.clear();
    for (size_t i = 0; i < field->size(); ++i) {
      out.push_back((*field)[i]);
      if ((*field)[i] == '"') ++i;  // skip the second quote of the pair
    }
    *field = out;
  }

  size_t after = close + 1;
  while (after < line.size() && IsTrimmed(line[after])) ++after;
  if (after == line.size()) {
    *pos = kNoMoreFields;
  } else if (line.compare(after, delimiter_.size(), delimiter_) == 0) {
    *pos = after + delimiter_.size();
  } else {
    return MalformedReason::kBadQuoting;
  }
  return std::nullopt;
}

std::optional<MalformedReason> DelimitedLineParser::Parse(absl::string_view line, ParsedLine* out) {
  *out = ParsedLine();
  absl::string_view ts;
  absl::string_view weight;
  size_t pos = 0;
  for (const ColumnRole role : columns_) {
    if (pos == kNoMoreFields) return MalformedReason::kTooFewColumns;
    absl::string_view field;
    if (std::optional<MalformedReason> bad = NextField(line, role, &pos, &field)) return bad;
    switch (role) {
      case ColumnRole::kUser:
        out->has_user = true;
        out->user = field;
        break;
      case ColumnRole::kItem:
        out->has_item = true;
        out->item = field;
        break;
      case ColumnRole::kType:
        out->type = field;
        break;
      case ColumnRole::kTimestamp:
        ts = field;
        break;
      case ColumnRole::kWeight:
        weight = field;
        break;
      case ColumnRole::kSkip:
        break;
    }
  }
  // Numbers are converted only once the line is known to have every column, so that a short
  // line is reported as such rather than as a bad number.
  if (!ts.empty()) {
    if (!ParseTimestamp(ts, unit_, &out->ts_ms)) return MalformedReason::kBadTimestamp;
    out->has_ts = true;
  }
  if (!weight.empty()) {
    if (!ParseWeight(weight, &out->weight)) return MalformedReason::kBadWeight;
    out->has_weight = true;
  }
  return std::nullopt;
}

}  // namespace freshet::stream::internal
