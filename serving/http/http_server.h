// HttpServer: the HTTP/1.1 front of the serving tier. Keep-alive and pipelined requests on each
// connection are answered in order; route handlers (router.h) run on the server's I/O threads.
//
//   HttpServer server(options);
//   FRESHET_RETURN_IF_ERROR(server.Handle("GET", "/v1/users/{user}/recommendations", handler));
//   FRESHET_RETURN_IF_ERROR(server.Start());   // server.port() is the bound port
//   ...
//   server.Stop();
//
// Answers the server gives by itself, all with a JSON error body (http_message.h):
//   400 malformed request (bad request line, header or percent-escape; the connection closes)
//   404 no route matches the path;  405 a route matches the path but not the method (Allow lists
//   the methods);  413 body over max_body_bytes;  431 header over max_header_bytes (both close the
//   connection);  500 a handler threw;  503 with "Retry-After: 1" when max_in_flight requests are
//   already being handled or written.
// A connection is closed after request_timeout without a whole request once its first byte came,
// and after idle_timeout without a new request.
//
// With options.metrics set, the server records into that registry:
//   freshet_http_requests_total{method,route,status}      counter
//   freshet_http_request_duration_seconds{method,route}   histogram (handler + response build)
//   freshet_http_in_flight_requests, freshet_http_open_connections   gauges
//   freshet_http_connections_total                        counter
// where route is the matched pattern (bounded cardinality), "unmatched" for 404/405 and "invalid"
// for requests that never reached routing; method is "*" on those two.
//
// Thread-safety: Handle() before Start() only; Start(), Stop() and port() may be called from any
// thread but not from a handler (Stop() waits for handlers).
#ifndef FRESHET_SERVING_HTTP_HTTP_SERVER_H_
#define FRESHET_SERVING_HTTP_HTTP_SERVER_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "serving/http/http_message.h"
#include "serving/http/router.h"
#include "serving/metrics/metrics_registry.h"

namespace freshet::serving {

struct HttpServerOptions {
  // Numeric IPv4 or IPv6 address to listen on. Loopback unless told otherwise.
  std::string bind_address = "127.0.0.1";
  // 0 picks a free port; HttpServer::port() reports the bound one.
  int port = 0;
  int io_threads = 2;
  int64_t max_body_bytes = 1 << 20;
  int64_t max_header_bytes = 16 << 10;
  // From a request's first byte to its last.
  absl::Duration request_timeout = absl::Seconds(10);
  // Between requests on a keep-alive connection.
  absl::Duration idle_timeout = absl::Seconds(15);
  // Open client connections. A connection accepted at the cap closes the connection that has been
  // idle longest to make room, or, when none is idle, is answered 503 (Retry-After) and closed:
  // thousands of idle sockets cannot take the file descriptors that requests and the store need.
  // 0: DefaultMaxConnections().
  int max_connections = 0;
  // Requests being handled or having their response written, across all connections. Beyond it
  // the server answers 503 at once.
  int max_in_flight = 256;
  // Threads for the routes registered with HandleBlocking(), and how many of their requests may
  // wait beyond them; a request beyond that is answered 503 with Retry-After.
  int blocking_threads = 4;
  int blocking_queue = 64;
  // How long Stop() lets in-flight requests finish before it closes their connections.
  absl::Duration stop_timeout = absl::Seconds(10);
  // Optional; not owned, must outlive the server.
  MetricsRegistry* metrics = nullptr;
};

// A cap sized from the process's file-descriptor limit (RLIMIT_NOFILE): half of what is left
// after 512 descriptors for the store, the sources and the rest of the process, within
// [64, 65536].
int DefaultMaxConnections();

class HttpServer {
 public:
  explicit HttpServer(HttpServerOptions options);
  // Stops the server (see Stop()).
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Registers a route (Router::Add). FailedPrecondition once the server has started.
  absl::Status Handle(absl::string_view method, absl::string_view pattern, HttpHandler handler);
  // Registers an asynchronous route (see AsyncHttpHandler): the I/O thread is free while the
  // answer is being produced, e.g. while a request waits to be scored in a batch.
  absl::Status HandleAsync(absl::string_view method, absl::string_view pattern,
                           AsyncHttpHandler handler);

  // Registers a route whose handler may block (waits for a broker, a snapshot, a restore): it
  // runs on one of blocking_threads, never on an I/O thread. With every such thread busy and
  // blocking_queue requests waiting, a new one is answered 503 with Retry-After at once.
  absl::Status HandleBlocking(absl::string_view method, absl::string_view pattern,
                              HttpHandler handler);

  // Binds, listens and starts the I/O threads. InvalidArgument for bad options or a bad bind
  // address; Unavailable naming the address when it cannot be bound (e.g. already in use);
  // FailedPrecondition when called twice.
  absl::Status Start();

  // Graceful and idempotent: stops accepting, closes idle keep-alive connections, lets in-flight
  // requests finish (their responses say "Connection: close") for up to stop_timeout, then closes
  // what is left and joins the I/O threads. A stopped server cannot be started again.
  void Stop();

  // The bound port once Start() succeeded, else 0.
  int port() const;

  const HttpServerOptions& options() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace freshet::serving

#endif  // FRESHET_SERVING_HTTP_HTTP_SERVER_H_
