#include "stream/internal/line_parser.h"

namespace freshet::stream::internal {

absl::string_view MalformedReasonName(MalformedReason reason) {
  switch (reason) {
    case MalformedReason::kTooFewColumns:
      return "too few columns";
    case MalformedReason::kUnterminatedQuote:
      return "unterminated quote";
    case MalformedReason::kBadQuoting:
      return "bad quoting";
    case MalformedReason::kMissingUser:
      return "missing user";
    case MalformedReason::kMissingItem:
      return "missing item";
    case MalformedReason::kEmptyUser:
      return "empty user";
    case MalformedReason::kEmptyItem:
      return "empty item";
    case MalformedReason::kBadUser:
      return "bad user";
    case MalformedReason::kBadItem:
      return "bad item";
    case MalformedReason::kBadType:
      return "bad type";
    case MalformedReason::kBadTimestamp:
      return "bad ts";
    case MalformedReason::kBadWeight:
      return "bad weight";
    case MalformedReason::kInvalidJson:
      return "invalid json";
    case MalformedReason::kTruncatedLastLine:
      return "truncated last line";
    case MalformedReason::kTruncatedGzip:
      return "truncated gzip";
    case MalformedReason::kIdTooLong:
      return "id too long";
    case MalformedReason::kInvalidUtf8:
      return "invalid utf-8";
    case MalformedReason::kBadEventId:
      return "bad id";
  }
  return "unknown";
}

}  // namespace freshet::stream::internal
