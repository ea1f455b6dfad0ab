#include "tests/serving/http_test_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace freshet::serving::testing {

std::string ClientResponse::Header(absl::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (absl::EqualsIgnoreCase(key, name)) return value;
  }
  return "";
}

bool ClientResponse::HasHeader(absl::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (absl::EqualsIgnoreCase(key, name)) return true;
  }
  return false;
}

std::string BuildRequest(absl::string_view method, absl::string_view target, absl::string_view body,
                         absl::string_view extra_headers) {
  std::string out = absl::StrCat(method, " ", target, " HTTP/1.1\r\nHost: 127.0.0.1\r\n");
  if (!body.empty()) absl::StrAppend(&out, "Content-Length: ", body.size(), "\r\n");
  absl::StrAppend(&out, extra_headers, "\r\n", body);
  return out;
}

absl::StatusOr<std::unique_ptr<TestHttpClient>> TestHttpClient::Connect(int port,
                                                                        absl::Duration timeout) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket: ", std::strerror(errno)));
  timeval tv = absl::ToTimeval(timeout);
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    const int err = errno;
    ::close(fd);
    return absl::UnavailableError(absl::StrCat("connect to port ", port, ": ", std::strerror(err)));
  }
  return std::unique_ptr<TestHttpClient>(new TestHttpClient(fd));
}

TestHttpClient::~TestHttpClient() {
  if (fd_ >= 0) ::close(fd_);
}

absl::Status TestHttpClient::Send(absl::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return absl::UnavailableError(absl::StrCat("send: ", std::strerror(errno)));
    }
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

absl::Status TestHttpClient::Fill() {
  char chunk[16384];
  for (;;) {
    const ssize_t n = ::recv(fd_, chunk, sizeof(chunk), 0);
    if (n > 0) {
      buffer_.append(chunk, static_cast<size_t>(n));
      return absl::OkStatus();
    }
    if (n == 0) return absl::UnavailableError("connection closed by the server");
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      return absl::DeadlineExceededError("timed out waiting for the server");
    }
    return absl::UnavailableError(absl::StrCat("recv: ", std::strerror(errno)));
  }
}

absl::StatusOr<std::string> TestHttpClient::ReadLine() {
  size_t end;
  while ((end = buffer_.find("\r\n")) == std::string::npos) {
    absl::Status s = Fill();
    if (!s.ok()) return s;
  }
  std::string line = buffer_.substr(0, end);
  buffer_.erase(0, end + 2);
  return line;
}

absl::StatusOr<ClientResponse> TestHttpClient::ReadResponse() {
  ClientResponse response;
  absl::StatusOr<std::string> status_line = ReadLine();
  if (!status_line.ok()) return status_line.status();
  std::vector<std::string> parts = absl::StrSplit(*status_line, absl::MaxSplits(' ', 2));
  if (parts.size() < 2 || !absl::SimpleAtoi(parts[1], &response.status)) {
    return absl::DataLossError(absl::StrCat("bad status line '", *status_line, "'"));
  }
  response.version = parts[0];
  for (;;) {
    absl::StatusOr<std::string> line = ReadLine();
    if (!line.ok()) return line.status();
    if (line->empty()) break;
    const size_t colon = line->find(':');
    if (colon == std::string::npos) return absl::DataLossError("bad header line " + *line);
    response.headers.emplace_back(
        line->substr(0, colon),
        std::string(absl::StripAsciiWhitespace(absl::string_view(*line).substr(colon + 1))));
  }
  if (response.HasHeader("Content-Length")) {
    size_t length = 0;
    if (!absl::SimpleAtoi(response.Header("Content-Length"), &length)) {
      return absl::DataLossError("bad Content-Length");
    }
    while (buffer_.size() < length) {
      absl::Status s = Fill();
      if (!s.ok()) return s;
    }
    response.body = buffer_.substr(0, length);
    buffer_.erase(0, length);
  } else if (response.status >= 200 && response.status != 204 && response.status != 304) {
    for (;;) {
      absl::Status s = Fill();
      if (!s.ok()) break;
    }
    response.body = std::move(buffer_);
    buffer_.clear();
  }
  return response;
}

absl::StatusOr<ClientResponse> TestHttpClient::Request(absl::string_view method,
                                                       absl::string_view target,
                                                       absl::string_view body,
                                                       absl::string_view extra_headers) {
  absl::Status s = Send(BuildRequest(method, target, body, extra_headers));
  if (!s.ok()) return s;
  return ReadResponse();
}

bool TestHttpClient::WaitForClose() {
  if (!buffer_.empty()) return false;
  char c;
  for (;;) {
    const ssize_t n = ::recv(fd_, &c, 1, 0);
    if (n == 0) return true;
    if (n > 0) {
      buffer_.push_back(c);
      return false;
    }
    if (errno == EINTR) continue;
    return errno == ECONNRESET;
  }
}

}  // namespace freshet::serving::testing
