// The only translation unit that includes Boost.Beast (it compiles slowly): everything Beast-typed
// lives here, behind HttpServer's pimpl.
//
// Model: one io_context run by io_threads threads; each connection is a Session on its own strand,
// so a session's handlers never run concurrently and need no locks. Per request a session does
//   idle read (idle_timeout, only when no pipelined bytes are buffered)
//   -> read header (request_timeout) [-> "100 Continue"] -> read body -> route + handler -> write
// and then loops, so pipelined requests are answered strictly in order. The server keeps weak
// references to its sessions so Stop() can close the idle ones and wait for the busy ones.
#include "serving/http/http_server.h"

#include <pthread.h>
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <exception>
#include <limits>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "common/mutex.h"
#include "serving/http/blocking_pool.h"
#include "serving/http/url.h"

namespace freshet::serving {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;

constexpr size_t kReadChunk = 16 * 1024;
// After a response that closes the connection, unread request bytes are drained for this long (at
// most kLingerBytes) so the kernel does not answer them with a reset that could destroy the
// response before the client reads it (e.g. a 413 sent while the client is still uploading).
constexpr auto kLingerTime = std::chrono::seconds(1);
constexpr size_t kLingerBytes = 1 << 20;
constexpr absl::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
constexpr int kMaxStatus = 600;

std::string ToStd(beast::string_view s) { return std::string(s.data(), s.size()); }

bool HasLineBreak(absl::string_view s) {
  return s.find_first_of("\r\n") != absl::string_view::npos;
}

// Per-route metric handles, so the hot path does no label lookups after a status's first use.
struct RouteMetrics {
  std::string method;
  std::string route;
  CounterFamily* requests = nullptr;
  Histogram* latency = nullptr;
  std::unique_ptr<std::atomic<Counter*>[]> by_status;

  void Record(int status, double seconds) {
    if (status < 0 || status >= kMaxStatus) status = 500;
    Counter* counter = by_status[status].load(std::memory_order_acquire);
    if (counter == nullptr) {
      const std::string code = std::to_string(status);
      counter = requests->WithLabels({method, route, code});
      by_status[status].store(counter, std::memory_order_release);
    }
    counter->Increment();
    latency->Observe(seconds);
  }
};

class Session;

// State shared by the acceptor and every session.
class ServerCore {
 public:
  explicit ServerCore(HttpServerOptions options) : options_(std::move(options)) {}
  ~ServerCore() { Stop(); }

  absl::Status Handle(absl::string_view method, absl::string_view pattern, HttpHandler handler)
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status HandleAsync(absl::string_view method, absl::string_view pattern,
                           AsyncHttpHandler handler) ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status HandleBlocking(absl::string_view method, absl::string_view pattern,
                              HttpHandler handler) ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status Start() ABSL_LOCKS_EXCLUDED(stop_mu_, mu_);
  void Stop() ABSL_LOCKS_EXCLUDED(stop_mu_, mu_);

  // Sessions: Register() returns false when the server is stopping (the session then closes).
  bool Register(const std::shared_ptr<Session>& session) ABSL_LOCKS_EXCLUDED(mu_);
  void Deregister(Session* session) ABSL_LOCKS_EXCLUDED(mu_);

  // Metrics; no-ops without a registry. route_index: a Router::Route index, unmatched_index()
  // (404, 405) or invalid_index() (requests that never reached routing).
  int unmatched_index() const { return static_cast<int>(router_.routes().size()); }
  int invalid_index() const { return unmatched_index() + 1; }
  void Record(int route_index, int status, Clock::time_point start) {
    if (route_metrics_.empty()) return;
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    route_metrics_[route_index].Record(status, seconds);
  }
  void AddInFlight(int delta) {
    if (in_flight_gauge_ != nullptr) in_flight_gauge_->Add(delta);
  }

  const HttpServerOptions options_;
  // Routes are added (under mu_) only before Start(), and read unlocked by the sessions after it.
  Router router_;
  std::atomic<int> in_flight_{0};
  std::atomic<bool> stopping_{false};
  std::atomic<int> port_{0};
  int max_connections_ = 0;  // options_.max_connections, or the default; set by Start()
  RateLimiter error_log_limiter_{5, absl::Seconds(10)};

 private:
  void DoAccept();
  void OnAccept(beast::error_code ec, tcp::socket socket);
  // At the connection cap: closes the session idle longest and returns true, or returns false
  // when none is idle.
  bool CloseOldestIdle() ABSL_LOCKS_EXCLUDED(mu_);
  // Answers 503 on a connection that is not given a session, and closes it.
  void Refuse(tcp::socket socket);
  std::vector<std::shared_ptr<Session>> LiveSessions() ABSL_LOCKS_EXCLUDED(mu_);
  // Waits up to `timeout` for every session to end; true when they have.
  bool WaitForNoSessions(absl::Duration timeout) ABSL_LOCKS_EXCLUDED(mu_);
  void SetUpMetrics();

  enum class State { kNew, kRunning, kStopped };

  std::vector<RouteMetrics> route_metrics_;
  Gauge* in_flight_gauge_ = nullptr;
  Gauge* open_connections_ = nullptr;
  Counter* connections_total_ = nullptr;
  Counter* connections_refused_ = nullptr;
  Counter* idle_closed_at_cap_ = nullptr;

  // freshet::Mutex (std::mutex underneath) rather than absl::Mutex so that ThreadSanitizer,
  // which cannot see inside Debian's uninstrumented Abseil, checks this code too.
  BlockingPool blocking_pool_{options_.blocking_threads, options_.blocking_queue};
  Mutex stop_mu_;  // serialises Start() and Stop()
  Mutex mu_ ABSL_ACQUIRED_AFTER(stop_mu_);
  CondVar sessions_changed_;  // sessions_ became empty
  State state_ ABSL_GUARDED_BY(mu_) = State::kNew;
  absl::flat_hash_map<Session*, std::weak_ptr<Session>> sessions_ ABSL_GUARDED_BY(mu_);

  // Declared after everything sessions touch: destroying the io_context destroys the handlers
  // that still own sessions, whose destructors call Deregister(). Set by Start() before the I/O
  // threads start, which then use them unlocked.
  std::unique_ptr<net::io_context> ioc_;
  std::unique_ptr<tcp::acceptor> acceptor_;
  std::unique_ptr<net::steady_timer> accept_retry_;
  std::vector<std::thread> threads_ ABSL_GUARDED_BY(stop_mu_);
};

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(ServerCore* server, tcp::socket&& socket) : server_(server), stream_(std::move(socket)) {
    beast::error_code ec;
    const tcp::endpoint remote = stream_.socket().remote_endpoint(ec);
    if (!ec) {
      remote_ = remote.address().is_v6()
                    ? absl::StrCat("[", remote.address().to_string(), "]:", remote.port())
                    : absl::StrCat(remote.address().to_string(), ":", remote.port());
    }
  }

  ~Session() {
    if (counted_in_flight_) ReleaseInFlight();
    if (registered_) server_->Deregister(this);
  }

  void Run() {
    registered_ = server_->Register(shared_from_this());
    if (!registered_) {
      CloseNow();
      return;
    }
    net::dispatch(stream_.get_executor(),
                  beast::bind_front_handler(&Session::WaitForRequest, shared_from_this()));
  }

  // From Stop(): close now when idle, else after the current response.
  void PostShutdown() {
    net::post(stream_.get_executor(), [self = shared_from_this()] {
      self->stopping_ = true;
      if (self->phase_ == Phase::kIdle || self->phase_ == Phase::kLingering) self->CloseNow();
    });
  }

  // Steady-clock nanoseconds since this session has been waiting idle for a request; 0 when it
  // is not idle. Read by the acceptor at the connection cap.
  int64_t idle_since_ns() const { return idle_since_ns_.load(std::memory_order_relaxed); }
  // Takes this session off the idle list if it is still idle since `since`, so that one close
  // at the cap is never spent twice on the same session; false when it was not.
  bool ClaimIdle(int64_t since) {
    return since != 0 &&
           idle_since_ns_.compare_exchange_strong(since, 0, std::memory_order_relaxed);
  }

  void PostForceClose() {
    net::post(stream_.get_executor(), [self = shared_from_this()] {
      self->stopping_ = true;
      self->CloseNow();
    });
  }

 private:
  enum class Phase { kIdle, kReading, kHandling, kWriting, kLingering, kClosed };

  void SetExpiry(absl::Duration d) {
    if (d == absl::InfiniteDuration()) {
      stream_.expires_never();
    } else {
      stream_.expires_after(absl::ToChronoNanoseconds(d));
    }
  }

  void WaitForRequest() {
    if (stopping_) {
      CloseNow();
      return;
    }
    parser_.emplace();
    const HttpServerOptions& o = server_->options_;
    parser_->header_limit(static_cast<uint32_t>(
        std::min<int64_t>(o.max_header_bytes, std::numeric_limits<uint32_t>::max())));
    parser_->body_limit(static_cast<uint64_t>(o.max_body_bytes));
    if (buffer_.size() > 0) {  // a pipelined request is already here
      ReadHeader();
      return;
    }
    phase_ = Phase::kIdle;
    idle_since_ns_.store(std::max<int64_t>(1, Clock::now().time_since_epoch().count()),
                         std::memory_order_relaxed);
    SetExpiry(o.idle_timeout);
    stream_.async_read_some(buffer_.prepare(kReadChunk),
                            beast::bind_front_handler(&Session::OnIdleRead, shared_from_this()));
  }

  void OnIdleRead(beast::error_code ec, size_t bytes) {
    idle_since_ns_.store(0, std::memory_order_relaxed);
    if (ec) {  // peer closed, idle timeout, or Stop()
      CloseNow();
      return;
    }
    buffer_.commit(bytes);
    ReadHeader();
  }

  void ReadHeader() {
    phase_ = Phase::kReading;
    SetExpiry(server_->options_.request_timeout);
    http::async_read_header(stream_, buffer_, *parser_,
                            beast::bind_front_handler(&Session::OnHeader, shared_from_this()));
  }

  void OnHeader(beast::error_code ec, size_t) {
    if (ec) {
      OnReadError(ec);
      return;
    }
    if (parser_->is_done()) {
      Process();
      return;
    }
    const auto& req = parser_->get();
    if (req.version() >= 11 &&
        beast::iequals(req[http::field::expect], beast::string_view("100-continue"))) {
      net::async_write(stream_, net::buffer(kContinue.data(), kContinue.size()),
                       beast::bind_front_handler(&Session::OnContinueWritten, shared_from_this()));
      return;
    }
    ReadBody();
  }

  void OnContinueWritten(beast::error_code ec, size_t) {
    if (ec) {
      CloseNow();
      return;
    }
    ReadBody();
  }

  void ReadBody() {
    http::async_read(stream_, buffer_, *parser_,
                     beast::bind_front_handler(&Session::OnBody, shared_from_this()));
  }

  void OnBody(beast::error_code ec, size_t) {
    if (ec) {
      OnReadError(ec);
      return;
    }
    Process();
  }

  void OnReadError(beast::error_code ec) {
    const HttpServerOptions& o = server_->options_;
    if (ec == http::error::body_limit) {
      SendInvalid(413, absl::StrCat("request body exceeds ", o.max_body_bytes, " bytes"));
    } else if (ec == http::error::header_limit) {
      SendInvalid(431, absl::StrCat("request header exceeds ", o.max_header_bytes, " bytes"));
    } else if (ec.category() == http::make_error_code(http::error::bad_target).category() &&
               ec != http::error::end_of_stream && ec != http::error::partial_message) {
      SendInvalid(400, absl::StrCat("malformed HTTP request: ", ec.message()));
    } else {
      // Peer closed (possibly mid-request), reset, timeout, or Stop().
      CloseNow();
    }
  }

  // An answer to a request that could not be parsed; the connection closes after it.
  void SendInvalid(int status, absl::string_view message) {
    head_request_ = false;
    const Clock::time_point start = Clock::now();
    HttpResponse response = ErrorResponse(status, message);
    server_->Record(server_->invalid_index(), status, start);
    Write(std::move(response), /*version=*/11, /*keep_alive=*/false);
  }

  void Process() {
    const Clock::time_point start = Clock::now();
    phase_ = Phase::kHandling;
    auto& req = parser_->get();
    const bool keep_alive = req.keep_alive();

    HttpRequest request;
    request.method = ToStd(req.method_string());
    request.target = ToStd(req.target());
    // HEAD is answered like GET, without the body (RFC 9110, 9.3.2): the length a GET would have
    // is in Content-Length, and nothing follows the header, so a keep-alive client reads the next
    // response where it starts.
    head_request_ = request.method == "HEAD";
    if (head_request_) request.method = "GET";
    absl::string_view path;
    absl::string_view query;
    SplitTarget(request.target, &path, &query);
    request.path = std::string(path);

    HttpResponse response;
    int route_index = server_->unmatched_index();
    const Router::Match match = server_->router_.Find(request.method, path, &request.params);
    switch (match.outcome) {
      case Router::Outcome::kBadPath:
        route_index = server_->invalid_index();
        response = ErrorResponse(400, match.error);
        break;
      case Router::Outcome::kNotFound:
        response = ErrorResponse(404, absl::StrCat("no route for ", request.method, " ", path));
        break;
      case Router::Outcome::kMethodNotAllowed:
        response =
            ErrorResponse(405, absl::StrCat("method ", request.method, " not allowed for ", path));
        response.headers.emplace_back("Allow", match.allow);
        break;
      case Router::Outcome::kFound: {
        route_index = match.route->index;
        absl::StatusOr<absl::flat_hash_map<std::string, std::string>> parsed =
            ParseQueryString(query);
        if (!parsed.ok()) {
          response = ErrorResponse(400, parsed.status().message());
          break;
        }
        request.query = std::move(*parsed);
        if (server_->in_flight_.fetch_add(1, std::memory_order_acq_rel) >=
            server_->options_.max_in_flight) {
          server_->in_flight_.fetch_sub(1, std::memory_order_acq_rel);
          response = ErrorResponse(
              503, absl::StrCat("server overloaded: ", server_->options_.max_in_flight,
                                " requests in flight"));
          response.headers.emplace_back("Retry-After", "1");
          break;
        }
        counted_in_flight_ = true;
        server_->AddInFlight(1);
        request.route = match.route->pattern;
        request.remote_address = remote_;
        request.headers.reserve(static_cast<size_t>(std::distance(req.begin(), req.end())));
        for (const auto& field : req) {
          request.headers.emplace_back(ToStd(field.name_string()), ToStd(field.value()));
        }
        request.body = std::move(req.body());
        if (match.route->async_handler) {
          CallAsyncHandler(*match.route, request, route_index, start, req.version(), keep_alive);
          return;  // answered later, on this session's strand
        }
        response = CallHandler(*match.route, request);
        break;
      }
    }
    server_->Record(route_index, response.status, start);
    Write(std::move(response), req.version(), keep_alive);
  }

  HttpResponse CallHandler(const Router::Route& route, const HttpRequest& request) {
    absl::StatusOr<HttpResponse> result;
    try {
      result = route.handler(request);
    } catch (const std::exception& e) {
      LogHandlerFailure(route, e.what());
      result = absl::InternalError("internal error");
    } catch (...) {
      LogHandlerFailure(route, "unknown exception");
      result = absl::InternalError("internal error");
    }
    if (!result.ok()) return ResponseFromStatus(result.status());
    return std::move(*result);
  }

  void CallAsyncHandler(const Router::Route& route, const HttpRequest& request, int route_index,
                        Clock::time_point start, unsigned version, bool keep_alive) {
    auto self = shared_from_this();
    // Whatever thread answers, the write happens on the session's strand; a second call is
    // ignored, so a handler bug cannot write twice.
    auto answered = std::make_shared<std::atomic<bool>>(false);
    HttpResponder respond = [self, answered, route_index, start, version,
                             keep_alive](absl::StatusOr<HttpResponse> result) {
      if (answered->exchange(true)) return;
      HttpResponse response =
          result.ok() ? *std::move(result) : ResponseFromStatus(result.status());
      net::post(self->stream_.get_executor(), [self, route_index, start, version, keep_alive,
                                               response = std::move(response)]() mutable {
        self->server_->Record(route_index, response.status, start);
        self->Write(std::move(response), version, keep_alive);
      });
    };
    try {
      route.async_handler(request, respond);
    } catch (const std::exception& e) {
      LogHandlerFailure(route, e.what());
      respond(absl::InternalError("internal error"));
    } catch (...) {
      LogHandlerFailure(route, "unknown exception");
      respond(absl::InternalError("internal error"));
    }
  }

  void LogHandlerFailure(const Router::Route& route, absl::string_view what) {
    int64_t suppressed = 0;
    if (server_->error_log_limiter_.Allow(&suppressed)) {
      LogError(absl::StrCat(
          "http: handler for ", route.method, " ", route.pattern, " threw: ", what,
          suppressed > 0 ? absl::StrCat(" (", suppressed, " more suppressed)") : std::string()));
    }
  }

  void Write(HttpResponse response, unsigned version, bool keep_alive) {
    if (response.status < 100 || response.status >= kMaxStatus) {
      response = ErrorResponse(500, absl::StrCat("handler returned bad status ", response.status));
    }
    response_ = {};
    response_.version(version);
    response_.result(static_cast<unsigned>(response.status));
    response_.set(http::field::content_type, response.content_type);
    for (const auto& [name, value] : response.headers) {
      if (name.empty() || HasLineBreak(name) || HasLineBreak(value)) continue;
      response_.insert(beast::string_view(name.data(), name.size()),
                       beast::string_view(value.data(), value.size()));
    }
    // Stop() may have begun while the handler ran: then this is the connection's last response.
    keep_alive = keep_alive && !stopping_ && !server_->stopping_.load(std::memory_order_acquire);
    response_.keep_alive(keep_alive);
    response_.body() = std::move(response.body);
    response_.prepare_payload();
    if (head_request_) response_.body().clear();  // Content-Length stays that of the body
    close_after_write_ = !keep_alive;
    phase_ = Phase::kWriting;
    SetExpiry(server_->options_.request_timeout);
    http::async_write(stream_, response_,
                      beast::bind_front_handler(&Session::OnWrite, shared_from_this()));
  }

  void OnWrite(beast::error_code ec, size_t) {
    if (counted_in_flight_) ReleaseInFlight();
    if (ec) {
      CloseNow();
      return;
    }
    if (close_after_write_ || stopping_) {
      Linger();
      return;
    }
    WaitForRequest();
  }

  void ReleaseInFlight() {
    counted_in_flight_ = false;
    server_->in_flight_.fetch_sub(1, std::memory_order_acq_rel);
    server_->AddInFlight(-1);
  }

  // Half-close, then read and discard whatever the client still sends, briefly.
  void Linger() {
    phase_ = Phase::kLingering;
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    if (ec || stopping_) {
      CloseNow();
      return;
    }
    stream_.expires_after(kLingerTime);
    buffer_.clear();
    stream_.async_read_some(buffer_.prepare(kReadChunk),
                            beast::bind_front_handler(&Session::OnLingerRead, shared_from_this()));
  }

  void OnLingerRead(beast::error_code ec, size_t bytes) {
    lingered_bytes_ += bytes;
    if (ec || lingered_bytes_ > kLingerBytes) {
      CloseNow();
      return;
    }
    stream_.async_read_some(buffer_.prepare(kReadChunk),
                            beast::bind_front_handler(&Session::OnLingerRead, shared_from_this()));
  }

  void CloseNow() {
    if (phase_ == Phase::kClosed) return;
    phase_ = Phase::kClosed;
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
    stream_.close();
  }

  ServerCore* const server_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::response<http::string_body> response_;
  std::string remote_;
  Phase phase_ = Phase::kIdle;
  std::atomic<int64_t> idle_since_ns_{0};
  bool registered_ = false;
  bool stopping_ = false;
  bool close_after_write_ = false;
  bool head_request_ = false;  // the request being answered is a HEAD
  bool counted_in_flight_ = false;
  size_t lingered_bytes_ = 0;
};

absl::Status ServerCore::Handle(absl::string_view method, absl::string_view pattern,
                                HttpHandler handler) {
  MutexLock lock(&mu_);
  if (state_ != State::kNew) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot add route ", method, " ", pattern, ": the server has started"));
  }
  return router_.Add(method, pattern, std::move(handler));
}

absl::Status ServerCore::HandleAsync(absl::string_view method, absl::string_view pattern,
                                     AsyncHttpHandler handler) {
  MutexLock lock(&mu_);
  if (state_ != State::kNew) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot add route ", method, " ", pattern, ": the server has started"));
  }
  return router_.AddAsync(method, pattern, std::move(handler));
}

absl::Status ServerCore::HandleBlocking(absl::string_view method, absl::string_view pattern,
                                        HttpHandler handler) {
  auto shared = std::make_shared<const HttpHandler>(std::move(handler));
  const std::string route = absl::StrCat(method, " ", pattern);
  return HandleAsync(
      method, pattern, [this, shared, route](const HttpRequest& req, HttpResponder respond) {
        auto request = std::make_shared<const HttpRequest>(req);
        auto responder = std::make_shared<HttpResponder>(std::move(respond));
        const bool queued = blocking_pool_.TrySubmit(
            [shared, request, responder, route, this] {
              absl::StatusOr<HttpResponse> response;
              try {
                response = (*shared)(*request);
              } catch (const std::exception& e) {
                LogError(absl::StrCat("http: handler for ", route, " threw: ", e.what()));
                response = absl::InternalError("the handler failed");
              } catch (...) {
                LogError(absl::StrCat("http: handler for ", route, " threw"));
                response = absl::InternalError("the handler failed");
              }
              (*responder)(std::move(response));
            },
            [responder] { (*responder)(absl::UnavailableError("the server is stopping")); });
        if (!queued) {
          (*responder)(absl::UnavailableError(
              absl::StrCat("busy: ", blocking_pool_.threads(),
                           " requests that wait (for a broker, a snapshot or "
                           "a restore) are running and ",
                           blocking_pool_.queue(), " more are queued")));
        }
      });
}

absl::Status ServerCore::Start() {
  MutexLock stop_lock(&stop_mu_);
  {
    MutexLock lock(&mu_);
    if (state_ != State::kNew) {
      return absl::FailedPreconditionError(state_ == State::kRunning
                                               ? "the HTTP server is already running"
                                               : "a stopped HTTP server cannot be restarted");
    }
  }
  const HttpServerOptions& o = options_;
  if (o.port < 0 || o.port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("bad port ", o.port));
  }
  if (o.io_threads < 1 || o.max_in_flight < 1 || o.max_body_bytes < 0 || o.max_header_bytes < 1) {
    return absl::InvalidArgumentError(
        "io_threads and max_in_flight must be >= 1, max_body_bytes >= 0, max_header_bytes >= 1");
  }
  if (o.request_timeout <= absl::ZeroDuration() || o.idle_timeout <= absl::ZeroDuration() ||
      o.stop_timeout < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("HTTP server timeouts must be positive");
  }
  if (o.max_connections < 0) {
    return absl::InvalidArgumentError("max_connections must be >= 0 (0: from the fd limit)");
  }
  max_connections_ = o.max_connections > 0 ? o.max_connections : DefaultMaxConnections();
  beast::error_code ec;
  const net::ip::address address = net::ip::make_address(o.bind_address, ec);
  if (ec) {
    return absl::InvalidArgumentError(
        absl::StrCat("bad bind address '", o.bind_address, "': expected a numeric IP address"));
  }
  const std::string where = address.is_v6() ? absl::StrCat("[", o.bind_address, "]:", o.port)
                                            : absl::StrCat(o.bind_address, ":", o.port);
  auto ioc = std::make_unique<net::io_context>(o.io_threads);
  auto acceptor = std::make_unique<tcp::acceptor>(net::make_strand(*ioc));
  const tcp::endpoint endpoint(address, static_cast<uint16_t>(o.port));
  acceptor->open(endpoint.protocol(), ec);
  if (!ec) acceptor->set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) acceptor->bind(endpoint, ec);
  if (!ec) acceptor->listen(net::socket_base::max_listen_connections, ec);
  if (ec) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", where, ": ", ec.message()));
  }
  port_.store(acceptor->local_endpoint(ec).port());
  ioc_ = std::move(ioc);
  acceptor_ = std::move(acceptor);
  accept_retry_ = std::make_unique<net::steady_timer>(acceptor_->get_executor());
  SetUpMetrics();
  {
    MutexLock lock(&mu_);
    state_ = State::kRunning;
  }
  blocking_pool_.Start();
  net::post(acceptor_->get_executor(), [this] { DoAccept(); });
  threads_.reserve(static_cast<size_t>(o.io_threads));
  for (int i = 0; i < o.io_threads; ++i) {
    threads_.emplace_back([this] {
      pthread_setname_np(pthread_self(), "freshet-http");
      // Handlers catch their exceptions; this is the last line for anything else.
      for (;;) {
        try {
          ioc_->run();
          return;
        } catch (const std::exception& e) {
          LogError(absl::StrCat("http: I/O thread caught: ", e.what()));
        } catch (...) {
          LogError("http: I/O thread caught an unknown exception");
        }
      }
    });
  }
  return absl::OkStatus();
}

void ServerCore::SetUpMetrics() {
  if (options_.metrics == nullptr) return;
  MetricsRegistry& registry = *options_.metrics;
  CounterFamily* requests = registry.AddCounterFamily(
      "freshet_http_requests_total", "HTTP requests answered, by route pattern and status.",
      {"method", "route", "status"});
  HistogramFamily* latency = registry.AddHistogramFamily(
      "freshet_http_request_duration_seconds",
      "Time from a whole request to its response being ready (handler included), in seconds.",
      {"method", "route"}, Histogram::LatencyBuckets());
  in_flight_gauge_ = registry.AddGauge("freshet_http_in_flight_requests",
                                       "HTTP requests being handled or written.");
  open_connections_ =
      registry.AddGauge("freshet_http_open_connections", "Open HTTP client connections.");
  connections_total_ =
      registry.AddCounter("freshet_http_connections_total", "HTTP client connections accepted.");
  connections_refused_ = registry.AddCounter(
      "freshet_http_connections_refused_total",
      "HTTP connections answered 503 and closed at the connection cap (none idle to close).");
  idle_closed_at_cap_ =
      registry.AddCounter("freshet_http_idle_connections_closed_total",
                          "Idle keep-alive connections closed to make room at the connection cap.");
  const auto add = [&](const std::string& method, const std::string& route) {
    RouteMetrics m;
    m.method = method;
    m.route = route;
    m.requests = requests;
    m.latency = latency->WithLabels({method, route});
    m.by_status.reset(new std::atomic<Counter*>[kMaxStatus]);
    for (int i = 0; i < kMaxStatus; ++i) m.by_status[i].store(nullptr);
    route_metrics_.push_back(std::move(m));
  };
  for (const Router::Route& route : router_.routes()) add(route.method, route.pattern);
  add("*", "unmatched");
  add("*", "invalid");
}

void ServerCore::DoAccept() {
  acceptor_->async_accept(
      net::make_strand(*ioc_),
      [this](beast::error_code ec, tcp::socket socket) { OnAccept(ec, std::move(socket)); });
}

void ServerCore::OnAccept(beast::error_code ec, tcp::socket socket) {
  if (stopping_.load(std::memory_order_acquire) || ec == net::error::operation_aborted) return;
  if (ec) {
    // E.g. out of file descriptors: back off briefly instead of spinning.
    int64_t suppressed = 0;
    if (error_log_limiter_.Allow(&suppressed)) {
      LogWarning(absl::StrCat("http: accept failed: ", ec.message()));
    }
    accept_retry_->expires_after(std::chrono::milliseconds(50));
    accept_retry_->async_wait([this](beast::error_code wait_ec) {
      if (!wait_ec && !stopping_.load(std::memory_order_acquire)) DoAccept();
    });
    return;
  }
  bool at_cap = false;
  {
    MutexLock lock(&mu_);
    at_cap = static_cast<int64_t>(sessions_.size()) >= max_connections_;
  }
  // At the cap an idle connection makes room (it closes on its own strand, so the count may
  // briefly exceed the cap by the connections being closed); without one the newcomer is refused.
  if (at_cap && !CloseOldestIdle()) {
    Refuse(std::move(socket));
    DoAccept();
    return;
  }
  beast::error_code opt_ec;
  socket.set_option(tcp::no_delay(true), opt_ec);
  std::make_shared<Session>(this, std::move(socket))->Run();
  DoAccept();
}

bool ServerCore::CloseOldestIdle() {
  for (int attempt = 0; attempt < 4; ++attempt) {  // another thread may wake the one picked
    std::shared_ptr<Session> oldest;
    int64_t oldest_since = 0;
    for (const std::shared_ptr<Session>& s : LiveSessions()) {
      const int64_t since = s->idle_since_ns();
      if (since != 0 && (oldest == nullptr || since < oldest_since)) {
        oldest = s;
        oldest_since = since;
      }
    }
    if (oldest == nullptr) return false;
    if (!oldest->ClaimIdle(oldest_since)) continue;
    oldest->PostShutdown();  // closes it now if still idle, else after its current response
    if (idle_closed_at_cap_ != nullptr) idle_closed_at_cap_->Increment();
    return true;
  }
  return false;
}

void ServerCore::Refuse(tcp::socket socket) {
  static constexpr char kBody[] =
      "{\"error\":{\"code\":503,\"message\":\"too many open connections; retry shortly\"}}";
  static const std::string response = absl::StrCat(
      "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
      "Connection: close\r\nContent-Length: ",
      sizeof(kBody) - 1, "\r\n\r\n", kBody);
  // A new socket's send buffer is empty: this small write completes at once, or is dropped.
  beast::error_code ec;
  socket.non_blocking(true, ec);
  socket.write_some(net::buffer(response), ec);
  socket.shutdown(tcp::socket::shutdown_both, ec);
  socket.close(ec);
  if (connections_refused_ != nullptr) connections_refused_->Increment();
  int64_t suppressed = 0;
  if (error_log_limiter_.Allow(&suppressed)) {
    LogWarning(absl::StrCat("http: ", max_connections_,
                            " connections open and none idle: refusing new ones with 503 "
                            "(serve.max_connections)"));
  }
}

bool ServerCore::Register(const std::shared_ptr<Session>& session) {
  MutexLock lock(&mu_);
  if (stopping_.load(std::memory_order_acquire)) return false;
  sessions_.emplace(session.get(), session);
  if (open_connections_ != nullptr) open_connections_->Add(1);
  if (connections_total_ != nullptr) connections_total_->Increment();
  return true;
}

void ServerCore::Deregister(Session* session) {
  MutexLock lock(&mu_);
  sessions_.erase(session);
  if (open_connections_ != nullptr) open_connections_->Add(-1);
  if (sessions_.empty()) sessions_changed_.SignalAll();
}

bool ServerCore::WaitForNoSessions(absl::Duration timeout) {
  const Clock::time_point deadline = Clock::now() + absl::ToChronoNanoseconds(timeout);
  MutexLock lock(&mu_);
  while (!sessions_.empty()) {
    const Clock::duration left = deadline - Clock::now();
    if (left <= Clock::duration::zero()) return false;
    sessions_changed_.WaitFor(&mu_, absl::FromChrono(left));
  }
  return true;
}

std::vector<std::shared_ptr<Session>> ServerCore::LiveSessions() {
  std::vector<std::shared_ptr<Session>> live;
  MutexLock lock(&mu_);
  for (const auto& [ptr, weak] : sessions_) {
    if (std::shared_ptr<Session> s = weak.lock()) live.push_back(std::move(s));
  }
  return live;
}

void ServerCore::Stop() {
  MutexLock stop_lock(&stop_mu_);
  {
    MutexLock lock(&mu_);
    if (state_ != State::kRunning) {
      state_ = State::kStopped;
      return;
    }
    stopping_.store(true, std::memory_order_release);
  }
  net::post(acceptor_->get_executor(), [this] {
    beast::error_code ec;
    acceptor_->close(ec);
    accept_retry_->cancel();
  });
  // Hold no session references while waiting: a session ends when its last handler lets go.
  for (const std::shared_ptr<Session>& s : LiveSessions()) s->PostShutdown();
  if (!WaitForNoSessions(options_.stop_timeout)) {
    LogWarning("http: requests still running at stop_timeout; closing their connections");
    for (const std::shared_ptr<Session>& s : LiveSessions()) s->PostForceClose();
    WaitForNoSessions(absl::Seconds(2));
  }
  // Every session is gone (or abandoned to the io_context's destructor): nothing left to run but
  // cancelled timers.
  ioc_->stop();
  for (std::thread& t : threads_) t.join();
  threads_.clear();
  // Blocking handlers still running finish (their answers go nowhere now); queued ones are
  // cancelled.
  blocking_pool_.Stop();
  MutexLock lock(&mu_);
  state_ = State::kStopped;
}

}  // namespace

int DefaultMaxConnections() {
  struct rlimit limit = {};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY) return 65536;
  const int64_t spare = static_cast<int64_t>(limit.rlim_cur) - 512;
  return static_cast<int>(std::clamp<int64_t>(spare / 2, 64, 65536));
}

class HttpServer::Impl : public ServerCore {
 public:
  using ServerCore::ServerCore;
};

HttpServer::HttpServer(HttpServerOptions options)
    : impl_(std::make_unique<Impl>(std::move(options))) {}

HttpServer::~HttpServer() = default;

absl::Status HttpServer::Handle(absl::string_view method, absl::string_view pattern,
                                HttpHandler handler) {
  return impl_->Handle(method, pattern, std::move(handler));
}

absl::Status HttpServer::HandleAsync(absl::string_view method, absl::string_view pattern,
                                     AsyncHttpHandler handler) {
  return impl_->HandleAsync(method, pattern, std::move(handler));
}

absl::Status HttpServer::HandleBlocking(absl::string_view method, absl::string_view pattern,
                                        HttpHandler handler) {
  return impl_->HandleBlocking(method, pattern, std::move(handler));
}

absl::Status HttpServer::Start() { return impl_->Start(); }

void HttpServer::Stop() { impl_->Stop(); }

int HttpServer::port() const { return impl_->port_.load(); }

const HttpServerOptions& HttpServer::options() const { return impl_->options_; }

}  // namespace freshet::serving
