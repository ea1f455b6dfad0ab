// URL pieces of an HTTP request target: percent-decoding and query-string parsing.
//
// Thread-safe: free functions without shared state.
#ifndef FRESHET_SERVING_HTTP_URL_H_
#define FRESHET_SERVING_HTTP_URL_H_

#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace freshet::serving {

enum class UrlDecodeMode {
  kPath,   // '+' stays '+' (RFC 3986 path segment)
  kQuery,  // '+' means a space (application/x-www-form-urlencoded)
};

// Decodes %XX escapes (either hex case). InvalidArgument on a '%' not followed by two hex digits.
// A decoded NUL byte is also rejected: ids and parameters never contain one.
absl::StatusOr<std::string> UrlDecode(absl::string_view text, UrlDecodeMode mode);

// Parses "a=1&b=x%20y&flag" into {a: "1", b: "x y", flag: ""}. Keys and values are decoded in
// query mode; empty pieces ("a=1&&b=2") are skipped; when a key repeats, the first value wins.
// InvalidArgument on a bad escape.
absl::StatusOr<absl::flat_hash_map<std::string, std::string>> ParseQueryString(
    absl::string_view query);

// Splits a request target "/path?query" into path and query (without the '?'); no '?' gives an
// empty query.
void SplitTarget(absl::string_view target, absl::string_view* path, absl::string_view* query);

}  // namespace freshet::serving

#endif  // FRESHET_SERVING_HTTP_URL_H_
