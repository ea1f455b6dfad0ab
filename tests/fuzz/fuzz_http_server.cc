// Fuzz target: a live HttpServer (serving/http/http_server.h) fed raw bytes over loopback.
// One server is started once (port 0, two I/O threads) with the routes of `freshet serve`
// (serving/api.cc) on trivial handlers: most echo what routing and query parsing made of the
// request as JSON, one answers asynchronously, one returns an error status and one throws. For
// each input the target opens a connection, writes the input, half-closes, and reads until the
// server closes. Checks:
//   - the server answers with a sequence of well-formed HTTP/1.x responses (status line, header
//     fields, Content-Length framing; a "100 Continue" may come first), or nothing at all when the
//     bytes never formed a whole request; only a connection reset may cut the last one short;
//   - every error answer (>= 400) carries the JSON error body {"error":{"code":<status>,...}};
//   - the connection is closed within kDeadline after the client's half-close;
//   - the server keeps answering: GET /healthz on a fresh connection every kProbeEvery inputs,
//     and after any anomaly, must return 200.
// FRESHET_FUZZ_VERBOSE=1 prints each request and response (to look at a reproducer).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/json_writer.h"
#include "common/log.h"
#include "serving/http/http_message.h"
#include "serving/http/http_server.h"
#include "simdjson.h"
#include "tests/fuzz/fuzz_check.h"

namespace freshet::serving {
namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kDeadline = std::chrono::seconds(5);
constexpr int kProbeEvery = 500;

std::string Hex(absl::string_view s, size_t max = 400) {
  if (s.size() > max) return absl::StrCat("\"", absl::CHexEscape(s.substr(0, max)), "\"...");
  return absl::StrCat("\"", absl::CHexEscape(s), "\"");
}

absl::StatusOr<HttpResponse> Echo(const HttpRequest& req) {
  JsonWriter w;
  w.BeginObject().Key("route").String(req.route).Key("params").BeginObject();
  for (const auto& [name, value] : req.params) w.Key(name).String(value);
  w.EndObject().Key("query").BeginObject();
  for (const auto& [name, value] : req.query) w.Key(name).String(value);
  w.EndObject()
      .Key("headers")
      .Int(static_cast<int64_t>(req.headers.size()))
      .Key("body")
      .Int(static_cast<int64_t>(req.body.size()))
      .EndObject();
  return HttpResponse::Json(200, w.str());
}

std::unique_ptr<HttpServer> StartServer() {
  HttpServerOptions options;
  options.port = 0;
  options.io_threads = 2;
  options.max_body_bytes = 64 << 10;
  options.max_header_bytes = 8 << 10;
  options.request_timeout = absl::Seconds(2);
  options.idle_timeout = absl::Seconds(2);
  options.stop_timeout = absl::Seconds(1);
  auto server = std::make_unique<HttpServer>(options);
  const auto must = [](const absl::Status& s) { FUZZ_CHECK(s.ok(), s.ToString()); };
  must(server->HandleAsync(
      "GET", "/v1/users/{user}/recommendations",
      [](const HttpRequest& req, HttpResponder respond) { respond(Echo(req)); }));
  must(server->Handle("GET", "/v1/items/{item}/similar", Echo));
  must(server->Handle("POST", "/v1/events",
                      [](const HttpRequest& req) -> absl::StatusOr<HttpResponse> {
                        if (req.body.empty()) return absl::InvalidArgumentError("empty body");
                        return HttpResponse::Json(202, "{}");
                      }));
  must(server->Handle("GET", "/v1/users/{user}", Echo));
  must(server->Handle("GET", "/healthz",
                      [](const HttpRequest&) { return HttpResponse::Text(200, "ok\n"); }));
  must(server->Handle("GET", "/readyz", Echo));
  must(server->Handle("GET", "/metrics", Echo));
  must(server->Handle("GET", "/admin/snapshots", Echo));
  must(server->Handle("POST", "/admin/snapshots", Echo));
  must(server->Handle("GET", "/admin/snapshots/{id}", Echo));
  must(server->Handle("DELETE", "/admin/snapshots/{id}", Echo));
  must(server->Handle("POST", "/admin/snapshots/{id}/restore", Echo));
  must(server->Handle("PUT", "/admin/items/{item}/availability", Echo));
  must(server->Handle("GET", "/admin/items/hidden", Echo));
  must(server->Handle("GET", "/admin/config",
                      [](const HttpRequest&) -> absl::StatusOr<HttpResponse> {
                        throw std::runtime_error("handler failure (fuzz)");
                      }));
  must(server->Start());
  FUZZ_CHECK(server->port() > 0, "no port");
  return server;
}

HttpServer* g_server = nullptr;
int g_port = 0;

struct Exchange {
  std::string response;
  bool reset = false;      // the server reset the connection
  bool timed_out = false;  // no close within kDeadline
};

// Writes `request`, half-closes, reads until EOF. Non-blocking, so a server that stops reading
// cannot block the writer.
Exchange Talk(absl::string_view request) {
  Exchange ex;
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  FUZZ_CHECK(fd >= 0, absl::StrCat("socket: ", errno));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(g_port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int connected = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  if (connected != 0 && errno == EINTR) {
    // Interrupted (libFuzzer's timeout timer is a signal): the connect goes on; wait for it.
    pollfd p{fd, POLLOUT, 0};
    while (poll(&p, 1, 5000) < 0 && errno == EINTR) {
    }
    int error = 0;
    socklen_t len = sizeof(error);
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len);
    connected = (p.revents & POLLOUT) && error == 0 ? 0 : -1;
    errno = error;
  }
  FUZZ_CHECK(connected == 0, absl::StrCat("connect to the server on port ", g_port, ": errno ",
                                          errno, " (the server is down)"));
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  // Close with a reset: no TIME_WAIT sockets piling up over millions of connections.
  const linger hard_close{1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &hard_close, sizeof(hard_close));

  size_t written = 0;
  bool write_open = true;
  if (request.empty()) {
    shutdown(fd, SHUT_WR);
    write_open = false;
  }
  const Clock::time_point deadline = Clock::now() + kDeadline;
  char buf[16 * 1024];
  while (true) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) {
      ex.timed_out = true;
      break;
    }
    pollfd p{fd, static_cast<short>(POLLIN | (write_open ? POLLOUT : 0)), 0};
    const int ready = poll(&p, 1, static_cast<int>(left));
    if (ready < 0 && errno == EINTR) continue;
    FUZZ_CHECK(ready >= 0, absl::StrCat("poll: ", errno));
    if (ready == 0) continue;
    if (write_open && (p.revents & POLLOUT)) {
      const ssize_t n =
          send(fd, request.data() + written, request.size() - written, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) {
        written += static_cast<size_t>(n);
        if (written == request.size()) {
          shutdown(fd, SHUT_WR);
          write_open = false;
        }
      } else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        write_open = false;  // EPIPE / ECONNRESET: the server closed; read what it said
      }
    }
    if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
      const ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
      if (n > 0) {
        ex.response.append(buf, static_cast<size_t>(n));
      } else if (n == 0) {
        break;
      } else if (errno == ECONNRESET) {
        ex.reset = true;
        break;
      } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        FUZZ_CHECK(false, absl::StrCat("recv: errno ", errno));
      }
    }
  }
  close(fd);
  return ex;
}

bool IsTokenChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) ||
         absl::string_view("!#$%&'*+-.^_`|~").find(c) != absl::string_view::npos;
}

// Splits `bytes` into HTTP/1.x responses and checks each one. `may_be_cut`: a last response
// cut short is tolerated (the connection was reset).
void CheckResponses(absl::string_view bytes, bool may_be_cut, absl::string_view request) {
  const auto what = [&](absl::string_view problem) {
    return absl::StrCat(problem, "\n  response: ", Hex(bytes), "\n  request: ", Hex(request));
  };
  while (!bytes.empty()) {
    const size_t head_end = bytes.find("\r\n\r\n");
    if (head_end == absl::string_view::npos) {
      FUZZ_CHECK(may_be_cut, what("a response without the end of its header"));
      return;
    }
    const absl::string_view head = bytes.substr(0, head_end);
    const size_t line_end = head.find("\r\n");
    const absl::string_view status_line = head.substr(0, line_end);
    // "HTTP/1.1 404 Not Found"
    FUZZ_CHECK(status_line.size() >= 13 && absl::StartsWith(status_line, "HTTP/1.") &&
                   absl::ascii_isdigit(static_cast<unsigned char>(status_line[7])) &&
                   status_line[8] == ' ' && status_line[12] == ' ',
               what(absl::StrCat("bad status line ", Hex(status_line))));
    int status = 0;
    FUZZ_CHECK(
        absl::SimpleAtoi(status_line.substr(9, 3), &status) && status >= 100 && status <= 599,
        what("bad status code"));
    int64_t content_length = -1;
    bool has_content_type = false;
    absl::string_view fields =
        line_end == absl::string_view::npos ? absl::string_view() : head.substr(line_end + 2);
    while (!fields.empty()) {
      const size_t eol = fields.find("\r\n");
      const absl::string_view field = fields.substr(0, eol);
      fields = eol == absl::string_view::npos ? absl::string_view() : fields.substr(eol + 2);
      const size_t colon = field.find(':');
      FUZZ_CHECK(colon != absl::string_view::npos && colon > 0,
                 what(absl::StrCat("bad header field ", Hex(field))));
      const absl::string_view name = field.substr(0, colon);
      for (const char c : name) {
        FUZZ_CHECK(IsTokenChar(c), what(absl::StrCat("bad header name ", Hex(name))));
      }
      for (const char c : field.substr(colon + 1)) {
        FUZZ_CHECK(c != '\r' && c != '\n' && c != '\0',
                   what(absl::StrCat("bad header value in ", Hex(field))));
      }
      const absl::string_view value = absl::StripAsciiWhitespace(field.substr(colon + 1));
      if (absl::EqualsIgnoreCase(name, "Content-Length")) {
        FUZZ_CHECK(
            content_length < 0 && absl::SimpleAtoi(value, &content_length) && content_length >= 0,
            what("bad or repeated Content-Length"));
      } else if (absl::EqualsIgnoreCase(name, "Content-Type")) {
        has_content_type = true;
      }
    }
    bytes.remove_prefix(head_end + 4);
    if (status < 200) {
      FUZZ_CHECK(status == 100, what("an interim response other than 100 Continue"));
      continue;
    }
    FUZZ_CHECK(content_length >= 0, what("a response without Content-Length"));
    FUZZ_CHECK(has_content_type, what("a response without Content-Type"));
    // A response to HEAD states the length a GET would have, and no body follows (RFC 9110,
    // 9.3.2). Which pipelined request was a HEAD is not known here: where the input has one, a
    // response followed by nothing or by the next status line is taken as its answer.
    if (absl::StrContains(request, "HEAD") &&
        (bytes.empty() || absl::StartsWith(bytes, "HTTP/1."))) {
      continue;
    }
    if (static_cast<size_t>(content_length) > bytes.size()) {
      FUZZ_CHECK(may_be_cut, what("a body shorter than its Content-Length"));
      return;
    }
    const absl::string_view body = bytes.substr(0, static_cast<size_t>(content_length));
    bytes.remove_prefix(static_cast<size_t>(content_length));
    if (status >= 400) {
      // {"error": {"code": <status>, "message": "..."}}
      static simdjson::dom::parser* parser = new simdjson::dom::parser();
      simdjson::padded_string padded(body.data(), body.size());
      int64_t code = 0;
      std::string_view message;
      simdjson::dom::element doc;
      const bool ok = parser->parse(padded).get(doc) == simdjson::SUCCESS &&
                      doc["error"]["code"].get_int64().get(code) == simdjson::SUCCESS &&
                      doc["error"]["message"].get_string().get(message) == simdjson::SUCCESS;
      FUZZ_CHECK(ok && code == status,
                 what(absl::StrCat("error ", status, " without its JSON error body")));
    }
  }
}

void ProbeAlive(absl::string_view why) {
  const Exchange ex = Talk("GET /healthz HTTP/1.1\r\nHost: fuzz\r\nConnection: close\r\n\r\n");
  FUZZ_CHECK(
      !ex.timed_out && absl::StartsWith(ex.response, "HTTP/1.1 200 "),
      absl::StrCat("the server no longer answers GET /healthz (", why, "): ", Hex(ex.response)));
}

}  // namespace
}  // namespace freshet::serving

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  using namespace freshet::serving;
  // The server frees a connection's memory on its own threads, after the input that opened it
  // returned, so libFuzzer's per-input leak check (which runs whenever an input's mallocs and
  // frees differ) would scan the whole heap after nearly every input (measured: 2-5x slower).
  // -detect_leaks=0 turns that off (LeakSanitizer's check at exit stays); libFuzzer parses the
  // flags after this function, and a -detect_leaks=1 on the command line still wins.
  static std::vector<char*> args;
  args.assign(*argv, *argv + *argc);
  static char no_leak_check[] = "-detect_leaks=0";
  args.insert(args.begin() + 1, no_leak_check);
  args.push_back(nullptr);
  *argc += 1;
  *argv = args.data();
  // Handler failures are logged as errors (rate-limited); nothing else should be.
  freshet::SetMinLogLevel(freshet::LogLevel::kError);
  // Never stopped: the server lives for the whole process (its I/O threads outlive the inputs).
  g_server = StartServer().release();
  g_port = g_server->port();
  ProbeAlive("at start");
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace freshet::serving;
  static int64_t runs = 0;
  const absl::string_view request(reinterpret_cast<const char*>(data), size);
  const Exchange ex = Talk(request);
  if (ex.timed_out) {
    ProbeAlive("after a connection that stayed open");
    FUZZ_CHECK(false, absl::StrCat("the server kept the connection open ",
                                   std::chrono::seconds(kDeadline).count(),
                                   " s after the client's half-close; request ", Hex(request),
                                   ", response so far ", Hex(ex.response)));
  }
  static const bool verbose = std::getenv("FRESHET_FUZZ_VERBOSE") != nullptr;
  if (verbose) {
    std::fprintf(stderr, "request:  %s\nresponse: %s%s\n", Hex(request, 1 << 20).c_str(),
                 Hex(ex.response, 1 << 20).c_str(), ex.reset ? " (reset)" : "");
  }
  CheckResponses(ex.response, /*may_be_cut=*/ex.reset, request);
  if (++runs % kProbeEvery == 0) ProbeAlive("periodic");
  return 0;
}
