#include "serving/http/http_client.h"

#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"

namespace freshet::serving {
namespace {

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

absl::Status WaitFor(int fd, short events, absl::Time deadline) {
  while (true) {
    const int64_t ms = absl::ToInt64Milliseconds(deadline - absl::Now());
    if (ms <= 0) return absl::DeadlineExceededError("the server did not answer in time");
    pollfd p{fd, events, 0};
    const int n = ::poll(&p, 1, static_cast<int>(std::min<int64_t>(ms, 1000)));
    if (n > 0) return absl::OkStatus();
    if (n < 0 && errno != EINTR) return absl::UnavailableError(std::strerror(errno));
  }
}

}  // namespace

absl::StatusOr<HttpClientResponse> HttpRequestOnce(
    absl::string_view base_url, absl::string_view method, absl::string_view path,
    absl::string_view body, const std::vector<std::pair<std::string, std::string>>& headers,
    absl::Duration timeout) {
  absl::string_view rest = base_url;
  if (!absl::ConsumePrefix(&rest, "http://")) {
    return absl::InvalidArgumentError(
        absl::StrCat("server URL '", base_url, "' must start with http://"));
  }
  while (absl::ConsumeSuffix(&rest, "/")) {
  }
  const size_t colon = rest.rfind(':');
  if (rest.empty() || colon == absl::string_view::npos ||
      rest.find('/') != absl::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("server URL '", base_url, "' must be http://HOST:PORT"));
  }
  const std::string host(rest.substr(0, colon));
  const std::string port(rest.substr(colon + 1));
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (::getaddrinfo(host.c_str(), port.c_str(), &hints, &found) != 0 || found == nullptr) {
    return absl::UnavailableError(absl::StrCat("cannot resolve ", host, ":", port));
  }
  const absl::Time deadline = absl::Now() + timeout;
  Fd fd(::socket(found->ai_family, found->ai_socktype, found->ai_protocol));
  const int connected = fd.get() < 0 ? -1 : ::connect(fd.get(), found->ai_addr, found->ai_addrlen);
  ::freeaddrinfo(found);
  if (connected != 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot connect to ", base_url, ": ", std::strerror(errno)));
  }
  std::string request =
      absl::StrCat(method, " ", path, " HTTP/1.1\r\nHost: ", host, ":", port,
                   "\r\nConnection: close\r\nContent-Length: ", body.size(), "\r\n");
  for (const auto& [name, value] : headers) absl::StrAppend(&request, name, ": ", value, "\r\n");
  absl::StrAppend(&request, "\r\n", body);
  for (size_t sent = 0; sent < request.size();) {
    const ssize_t n = ::send(fd.get(), request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) return absl::UnavailableError(absl::StrCat("sending to ", base_url, " failed"));
    sent += static_cast<size_t>(n);
  }
  std::string response;
  char buf[16384];
  while (true) {
    if (absl::Status s = WaitFor(fd.get(), POLLIN, deadline); !s.ok()) return s;
    const ssize_t n = ::recv(fd.get(), buf, sizeof(buf), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return absl::UnavailableError(absl::StrCat("reading from ", base_url, " failed"));
    if (n == 0) break;  // Connection: close
    response.append(buf, static_cast<size_t>(n));
  }
  const size_t header_end = response.find("\r\n\r\n");
  int status = 0;
  if (header_end == std::string::npos || response.size() < 12 ||
      !absl::SimpleAtoi(absl::string_view(response).substr(9, 3), &status)) {
    return absl::UnavailableError(absl::StrCat("malformed answer from ", base_url));
  }
  return HttpClientResponse{status, response.substr(header_end + 4)};
}

}  // namespace freshet::serving
