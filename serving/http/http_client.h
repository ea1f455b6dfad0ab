// A small blocking HTTP/1.1 client for the operator CLI (e.g. `freshet snapshot --server URL`):
// one request per connection, plain TCP, Content-Length bodies.
#ifndef FRESHET_SERVING_HTTP_HTTP_CLIENT_H_
#define FRESHET_SERVING_HTTP_HTTP_CLIENT_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace freshet::serving {

struct HttpClientResponse {
  int status = 0;
  std::string body;
};

// Sends `method` `path` (with query) to `base_url` ("http://host:port", no path) and reads the
// answer. Unavailable when the server cannot be reached or the connection breaks; InvalidArgument
// for a malformed URL; DeadlineExceeded after `timeout`.
absl::StatusOr<HttpClientResponse> HttpRequestOnce(
    absl::string_view base_url, absl::string_view method, absl::string_view path,
    absl::string_view body = "",
    const std::vector<std::pair<std::string, std::string>>& headers = {},
    absl::Duration timeout = absl::Seconds(120));

}  // namespace freshet::serving

#endif  // FRESHET_SERVING_HTTP_HTTP_CLIENT_H_
