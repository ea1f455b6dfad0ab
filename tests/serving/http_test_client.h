// A blocking HTTP/1.1 client over a plain loopback socket, for testing HttpServer byte by byte:
// raw writes (pipelining, malformed requests) and one-response-at-a-time reads. Not thread-safe:
// one client per thread.
#ifndef FRESHET_TESTS_SERVING_HTTP_TEST_CLIENT_H_
#define FRESHET_TESTS_SERVING_HTTP_TEST_CLIENT_H_

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace freshet::serving::testing {

struct ClientResponse {
  std::string version;  // "HTTP/1.1"
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;

  // First header named `name` (case-insensitive), or "" when absent.
  std::string Header(absl::string_view name) const;
  bool HasHeader(absl::string_view name) const;
};

// "METHOD target HTTP/1.1" with Host, Content-Length when `body` is not empty, `extra_headers`
// (each "Name: value\r\n") and the body.
std::string BuildRequest(absl::string_view method, absl::string_view target,
                         absl::string_view body = "", absl::string_view extra_headers = "");

class TestHttpClient {
 public:
  // Connects to 127.0.0.1:port; reads and writes give up after `timeout`.
  static absl::StatusOr<std::unique_ptr<TestHttpClient>> Connect(
      int port, absl::Duration timeout = absl::Seconds(20));
  ~TestHttpClient();

  absl::Status Send(absl::string_view bytes);
  // Reads one response: status line, headers, then a Content-Length body (or, without
  // Content-Length, everything until the server closes).
  absl::StatusOr<ClientResponse> ReadResponse();
  // Send(BuildRequest(...)) then ReadResponse().
  absl::StatusOr<ClientResponse> Request(absl::string_view method, absl::string_view target,
                                         absl::string_view body = "",
                                         absl::string_view extra_headers = "");
  // Reads exactly one line ending in CRLF (without it).
  absl::StatusOr<std::string> ReadLine();
  // True when the server has closed the connection (EOF or reset) and nothing else is buffered;
  // false when data arrives or the timeout passes first.
  bool WaitForClose();

 private:
  explicit TestHttpClient(int fd) : fd_(fd) {}
  // Appends at least one byte to buffer_; NotFound-free: Unavailable on EOF, DeadlineExceeded on
  // timeout.
  absl::Status Fill();

  int fd_ = -1;
  std::string buffer_;
};

}  // namespace freshet::serving::testing

#endif  // FRESHET_TESTS_SERVING_HTTP_TEST_CLIENT_H_
