// HttpRequest and HttpResponse: what a route handler receives and returns, independent of the HTTP
// library underneath. Also the JSON error body every non-2xx answer of the server carries,
//   {"error": {"code": 404, "message": "..."}}
// and the mapping from absl::Status codes to HTTP status codes.
//
// Thread-safety: plain values; not synchronised.
#ifndef FRESHET_SERVING_HTTP_HTTP_MESSAGE_H_
#define FRESHET_SERVING_HTTP_HTTP_MESSAGE_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace freshet::serving {

struct HttpRequest {
  std::string method;  // as sent: "GET", "POST", ...
  std::string target;  // the raw request target, "/v1/users/u%2042/recommendations?k=20"
  std::string path;    // the raw (still encoded) path part of the target
  std::string route;   // the matched route pattern, "/v1/users/{user}/recommendations"
  // Path parameters by name ({user} -> "u 42"), percent-decoded.
  absl::flat_hash_map<std::string, std::string> params;
  // Query parameters, percent-decoded ('+' is a space); a repeated key keeps its first value.
  absl::flat_hash_map<std::string, std::string> query;
  // Header fields in arrival order, names as sent. Use Header() for case-insensitive lookup.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::string remote_address;  // "127.0.0.1:54321"

  // The first header field named `name` (ASCII case-insensitive), or null.
  const std::string* Header(absl::string_view name) const;
  // The path parameter / query parameter `name`, or null when absent.
  const std::string* Param(absl::string_view name) const;
  const std::string* Query(absl::string_view name) const;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  // Extra header fields (Content-Type and Content-Length are set from the members above;
  // Connection is managed by the server).
  std::vector<std::pair<std::string, std::string>> headers;

  static HttpResponse Json(int status, std::string body);
  static HttpResponse Text(int status, std::string body,
                           std::string content_type = "text/plain; charset=utf-8");
};

// {"error": {"code": <code>, "message": "<message>"}} with the message JSON-escaped.
std::string JsonErrorBody(int code, absl::string_view message);

// A JSON error response with status `code` and JsonErrorBody(code, message).
HttpResponse ErrorResponse(int code, absl::string_view message);

// The HTTP status for a non-OK absl::Status: InvalidArgument / OutOfRange / FailedPrecondition 400,
// Unauthenticated 401, PermissionDenied 403, NotFound 404, AlreadyExists / Aborted 409,
// ResourceExhausted 429, Unimplemented 501, Unavailable 503, DeadlineExceeded 504, the rest 500.
int HttpStatusFromStatus(const absl::Status& status);

// ErrorResponse(HttpStatusFromStatus(status), status.message()); 503 gets "Retry-After: 1".
HttpResponse ResponseFromStatus(const absl::Status& status);

// The standard reason phrase ("Not Found"), or "Unknown".
absl::string_view ReasonPhrase(int status);

}  // namespace freshet::serving

#endif  // FRESHET_SERVING_HTTP_HTTP_MESSAGE_H_
