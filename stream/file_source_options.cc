#include "stream/file_source_options.h"

#include <cmath>
#include <string>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/status_macros.h"

namespace freshet::stream {
namespace {

constexpr absl::string_view kValidFormats = "movielens-100k, movielens, csv, tsv, jsonl";

// Returned by value and move-assigned: assigning short literals in place trips GCC 12's
// -Wrestrict false positive (GCC bug 105329) at -O3.
std::string DefaultDelimiter(FileFormat format) {
  switch (format) {
    case FileFormat::kMovieLens100k:
    case FileFormat::kTsv:
      return "\t";
    case FileFormat::kMovieLens:
      return "::";
    case FileFormat::kCsv:
    case FileFormat::kJsonl:
      return ",";
  }
  return ",";
}

}  // namespace

absl::StatusOr<FileSourceOptions> FileSourceOptions::ForFormat(absl::string_view format_name) {
  FileSourceOptions options;
  FRESHET_ASSIGN_OR_RETURN(options.format, ParseFileFormat(format_name));
  options.delimiter = DefaultDelimiter(options.format);
  if (options.format == FileFormat::kMovieLens100k || options.format == FileFormat::kMovieLens) {
    options.columns = {ColumnRole::kUser, ColumnRole::kItem, ColumnRole::kSkip,
                       ColumnRole::kTimestamp};
    options.default_type = "rating";
  }
  return options;
}

absl::StatusOr<FileFormat> ParseFileFormat(absl::string_view name) {
  const std::string lower = absl::AsciiStrToLower(absl::StripAsciiWhitespace(name));
  if (lower == "movielens-100k") return FileFormat::kMovieLens100k;
  if (lower == "movielens") return FileFormat::kMovieLens;
  if (lower == "csv") return FileFormat::kCsv;
  if (lower == "tsv") return FileFormat::kTsv;
  if (lower == "jsonl") return FileFormat::kJsonl;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown file format \"", name, "\"; valid formats: ", kValidFormats));
}

absl::string_view FileFormatName(FileFormat format) {
  switch (format) {
    case FileFormat::kMovieLens100k:
      return "movielens-100k";
    case FileFormat::kMovieLens:
      return "movielens";
    case FileFormat::kCsv:
      return "csv";
    case FileFormat::kTsv:
      return "tsv";
    case FileFormat::kJsonl:
      return "jsonl";
  }
  return "?";
}

absl::StatusOr<std::vector<ColumnRole>> ParseColumns(absl::string_view spec) {
  std::vector<ColumnRole> columns;
  for (absl::string_view raw : absl::StrSplit(spec, ',')) {
    const absl::string_view name = absl::StripAsciiWhitespace(raw);
    if (name == "user") {
      columns.push_back(ColumnRole::kUser);
    } else if (name == "item") {
      columns.push_back(ColumnRole::kItem);
    } else if (name == "ts") {
      columns.push_back(ColumnRole::kTimestamp);
    } else if (name == "type") {
      columns.push_back(ColumnRole::kType);
    } else if (name == "weight") {
      columns.push_back(ColumnRole::kWeight);
    } else if (name == "_") {
      columns.push_back(ColumnRole::kSkip);
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown column role \"", name, "\" in column mapping \"", spec,
                       "\"; valid roles: user, item, ts, type, weight, _ (skip)"));
    }
  }
  FRESHET_RETURN_IF_ERROR(ValidateColumns(columns));
  return columns;
}

absl::string_view ColumnRoleName(ColumnRole role) {
  switch (role) {
    case ColumnRole::kUser:
      return "user";
    case ColumnRole::kItem:
      return "item";
    case ColumnRole::kTimestamp:
      return "ts";
    case ColumnRole::kType:
      return "type";
    case ColumnRole::kWeight:
      return "weight";
    case ColumnRole::kSkip:
      return "_";
  }
  return "?";
}

absl::Status ValidateColumns(const std::vector<ColumnRole>& columns) {
  int count[6] = {0, 0, 0, 0, 0, 0};
  for (ColumnRole role : columns) ++count[static_cast<int>(role)];
  for (ColumnRole role : {ColumnRole::kUser, ColumnRole::kItem, ColumnRole::kTimestamp,
                          ColumnRole::kType, ColumnRole::kWeight}) {
    const int n = count[static_cast<int>(role)];
    if (n > 1) {
      return absl::InvalidArgumentError(absl::StrCat("column mapping has role \"",
                                                     ColumnRoleName(role), "\" ", n,
                                                     " times; each role may appear once"));
    }
  }
  for (ColumnRole role : {ColumnRole::kUser, ColumnRole::kItem}) {
    if (count[static_cast<int>(role)] == 0) {
      return absl::InvalidArgumentError(absl::StrCat("column mapping has no \"",
                                                     ColumnRoleName(role),
                                                     "\" column; user and item are required"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<TimestampUnit> ParseTimestampUnit(absl::string_view name) {
  const std::string lower = absl::AsciiStrToLower(absl::StripAsciiWhitespace(name));
  if (lower == "auto") return TimestampUnit::kAuto;
  if (lower == "s" || lower == "seconds") return TimestampUnit::kSeconds;
  if (lower == "ms" || lower == "milliseconds") return TimestampUnit::kMilliseconds;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown timestamp unit \"", name, "\"; valid units: auto, s, ms"));
}

absl::string_view TimestampUnitName(TimestampUnit unit) {
  switch (unit) {
    case TimestampUnit::kAuto:
      return "auto";
    case TimestampUnit::kSeconds:
      return "s";
    case TimestampUnit::kMilliseconds:
      return "ms";
  }
  return "?";
}

absl::StatusOr<std::string> ParseDelimiter(absl::string_view text) {
  std::string delimiter;
  if (text == "tab") {
    delimiter = "\t";
  } else if (text == "comma") {
    delimiter = ",";
  } else if (text == "semicolon") {
    delimiter = ";";
  } else if (text == "pipe") {
    delimiter = "|";
  } else if (text == "space") {
    delimiter = " ";
  } else {
    std::string error;
    if (!absl::CUnescape(text, &delimiter, &error)) {
      return absl::InvalidArgumentError(absl::StrCat("bad delimiter \"", text, "\": ", error));
    }
  }
  if (delimiter.empty()) return absl::InvalidArgumentError("the delimiter is empty");
  if (delimiter.find_first_of("\"\r\n") != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat("bad delimiter \"", absl::CEscape(delimiter),
                                                   "\": it may not contain '\"', CR or LF"));
  }
  return delimiter;
}

absl::StatusOr<absl::flat_hash_map<std::string, float>> ParseTypeWeights(absl::string_view spec) {
  absl::flat_hash_map<std::string, float> weights;
  for (absl::string_view entry : absl::StrSplit(spec, ',', absl::SkipWhitespace())) {
    const std::pair<absl::string_view, absl::string_view> kv = absl::StrSplit(entry, '=');
    const absl::string_view type = absl::StripAsciiWhitespace(kv.first);
    const absl::string_view value = absl::StripAsciiWhitespace(kv.second);
    if (entry.find('=') == absl::string_view::npos || type.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("bad type weight \"", entry, "\"; expected type=weight"));
    }
    float weight = 0;
    if (!absl::SimpleAtof(value, &weight) || !std::isfinite(weight) || weight < 0) {
      return absl::InvalidArgumentError(absl::StrCat("bad weight \"", value, "\" for type \"", type,
                                                     "\"; expected a finite number >= 0"));
    }
    if (!weights.emplace(std::string(type), weight).second) {
      return absl::InvalidArgumentError(absl::StrCat("type \"", type, "\" is weighted twice"));
    }
  }
  return weights;
}

}  // namespace freshet::stream
