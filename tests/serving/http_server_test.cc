// HttpServer over real loopback sockets: routing, decoding, error answers, keep-alive, pipelining,
// concurrency, overload, graceful stop and metrics.
#include "serving/http/http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "serving/http/http_message.h"
#include "serving/metrics/metrics_registry.h"
#include "tests/serving/http_test_client.h"
#include "tests/serving/prometheus_text.h"

namespace freshet::serving {
namespace {

using ::freshet::serving::testing::ClientResponse;
using ::freshet::serving::testing::TestHttpClient;
using ::testing::HasSubstr;

constexpr char kRecsRoute[] = "/v1/users/{user}/recommendations";

// Echoes what the router and the query parser made of the request.
absl::StatusOr<HttpResponse> EchoRecs(const HttpRequest& req) {
  const std::string* k = req.Query("k");
  const std::string* q = req.Query("q");
  return HttpResponse::Text(200, absl::StrCat("user=", *req.Param("user"), ";k=", k ? *k : "-",
                                              ";q=", q ? *q : "-", ";route=", req.route));
}

std::unique_ptr<TestHttpClient> Connect(int port) {
  absl::StatusOr<std::unique_ptr<TestHttpClient>> client = TestHttpClient::Connect(port);
  EXPECT_TRUE(client.ok()) << client.status();
  return client.ok() ? std::move(*client) : nullptr;
}

ClientResponse MustRequest(TestHttpClient& client, absl::string_view method,
                           absl::string_view target, absl::string_view body = "",
                           absl::string_view extra_headers = "") {
  absl::StatusOr<ClientResponse> r = client.Request(method, target, body, extra_headers);
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? *r : ClientResponse{};
}

class HttpServerTest : public ::testing::Test {
 protected:
  // Builds, routes and starts a server with `options` (port 0).
  void StartServer(HttpServerOptions options = {}) {
    server_ = std::make_unique<HttpServer>(options);
    ASSERT_TRUE(server_->Handle("GET", kRecsRoute, EchoRecs).ok());
    ASSERT_TRUE(server_
                    ->Handle("POST", "/v1/events",
                             [this](const HttpRequest& req) {
                               ++events_posted_;
                               return HttpResponse::Json(
                                   202, absl::StrCat("{\"bytes\":", req.body.size(), "}"));
                             })
                    .ok());
    ASSERT_TRUE(server_
                    ->Handle("GET", "/count",
                             [this](const HttpRequest& req) {
                               const int n = ++count_;
                               const std::string* seq = req.Query("seq");
                               return HttpResponse::Text(
                                   200,
                                   absl::StrCat(seq ? *seq : "", ":", n, ":", req.remote_address));
                             })
                    .ok());
    ASSERT_TRUE(server_
                    ->Handle("GET", "/block",
                             [this](const HttpRequest&) {
                               block_entered_.Notify();
                               release_.WaitForNotification();
                               return HttpResponse::Json(200, "{\"blocked\":true}");
                             })
                    .ok());
    ASSERT_TRUE(server_
                    ->Handle("GET", "/throw",
                             [](const HttpRequest&) -> absl::StatusOr<HttpResponse> {
                               throw std::runtime_error("boom");
                             })
                    .ok());
    ASSERT_TRUE(server_
                    ->Handle("GET", "/missing",
                             [](const HttpRequest&) -> absl::StatusOr<HttpResponse> {
                               return absl::NotFoundError("unknown user 'x'");
                             })
                    .ok());
    ASSERT_TRUE(server_
                    ->Handle("GET", "/headers",
                             [](const HttpRequest& req) {
                               const std::string* v = req.Header("x-custom-thing");
                               HttpResponse r = HttpResponse::Text(200, v ? *v : "absent");
                               r.headers.emplace_back("X-Reply", "yes");
                               return r;
                             })
                    .ok());
    ASSERT_TRUE(server_
                    ->HandleBlocking("GET", "/wait",
                                     [this](const HttpRequest&) {
                                       ++waiting_;
                                       wait_release_.WaitForNotification();
                                       return HttpResponse::Json(200, "{\"waited\":true}");
                                     })
                    .ok());
    absl::Status started = server_->Start();
    ASSERT_TRUE(started.ok()) << started;
    ASSERT_GT(server_->port(), 0);
  }

  void TearDown() override {
    if (!release_.HasBeenNotified()) release_.Notify();
    if (!wait_release_.HasBeenNotified()) wait_release_.Notify();
    if (server_) server_->Stop();
  }

  int port() const { return server_->port(); }

  MetricsRegistry registry_;  // outlives server_, as HttpServerOptions::metrics requires
  std::unique_ptr<HttpServer> server_;
  std::atomic<int> count_{0};
  std::atomic<int> events_posted_{0};
  absl::Notification block_entered_;
  absl::Notification release_;
  std::atomic<int> waiting_{0};
  absl::Notification wait_release_;
};

TEST_F(HttpServerTest, RoutesWithDecodedPathAndQueryParams) {
  StartServer();
  auto client = Connect(port());
  ASSERT_NE(client, nullptr);
  ClientResponse r =
      MustRequest(*client, "GET", "/v1/users/u%2042%2Fb+c/recommendations?k=20&q=a+b%26c%3D");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "user=u 42/b+c;k=20;q=a b&c=;route=/v1/users/{user}/recommendations");
  EXPECT_EQ(r.Header("Content-Type"), "text/plain; charset=utf-8");

  r = MustRequest(*client, "POST", "/v1/events", "{\"user\":\"u1\",\"item\":\"i1\"}");
  EXPECT_EQ(r.status, 202);
  EXPECT_EQ(r.body, "{\"bytes\":25}");
  EXPECT_EQ(r.Header("Content-Type"), "application/json");
  EXPECT_EQ(events_posted_.load(), 1);
}

TEST_F(HttpServerTest, HeadersAreCaseInsensitiveAndExtraHeadersAreSent) {
  StartServer();
  auto client = Connect(port());
  ASSERT_NE(client, nullptr);
  ClientResponse r = MustRequest(*client, "GET", "/headers", "", "X-CUSTOM-Thing: hello\r\n");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "hello");
  EXPECT_EQ(r.Header("x-reply"), "yes");
}

TEST_F(HttpServerTest, UnknownPathIs404Json) {
  StartServer();
  auto client = Connect(port());
  ASSERT_NE(client, nullptr);
  ClientResponse r = MustRequest(*client, "GET", "/v1/nothing/here");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.Header("Content-Type"), "application/json");
  EXPECT_EQ(r.body, JsonErrorBody(404, "no route for GET /v1/nothing/here"));
  // A parameter never matches an empty segment.
  EXPECT_EQ(MustRequest(*client, "GET", "/v1/users//recommendations").status, 404);
  // The connection survives a 404.
  EXPECT_EQ(MustRequest(*client, "GET", "/count").status, 200);
}

TEST_F(HttpServerTest, WrongMethodIs405WithAllow) {
  StartServer();
  auto client = Connect(port());
  ASSERT_NE(client, nullptr);
  ClientResponse r = MustRequest(*client, "DELETE", "/v1/users/u1/recommendations");
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(r.Header("Allow"), "GET");
  EXPECT_THAT(r.body, HasSubstr("\"code\":405"));
  r = MustRequest(*client, "GET", "/v1/events");
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(r.Header("Allow"), "POST");
}

TEST_F(HttpServerTest, OversizedBodyIs413AndCloses) {
  HttpServerOptions options;
  options.max_body_bytes = 1000;
  StartServer(options);
  auto client = Connect(port());
  ASSERT_NE(client, nullptr);
  // Within the limit first.
  EXPECT_EQ(MustRequest(*client, "POST", "/v1/events", std::string(1000, 'x')).status, 202);
  ClientResponse r = MustRequest(*client, "POST", "/v1/events", std::string(1001, 'x'));
  EXPECT_EQ(r.status, 413);
  EXPECT_THAT(r.body, HasSubstr("\"code\":413"));
  EXPECT_EQ(r.Header("Connection"), "close");
  EXPECT_TRUE(client->WaitForClose());
  EXPECT_EQ(events_posted_.load(), 1);
}

TEST_F(HttpServerTest, ChunkedBodyOverTheLimitIs413) {
  HttpServerOptions options;
  options.max_body_bytes = 100;
  StartServer(options);
  auto client = Connect(port());
  ASSERT_NE(client, nullptr);
  const std::string chunk(80, 'y');
  ASSERT_TRUE(client
                  ->Send(absl::StrCat("POST /v1/events HTTP/1.1\r\nHost: x\r\n"
                                      "Transfer-Encoding: chunked\r\n\r\n50\r\n",
                                      chunk, "\r\n50\r\n", chunk, "\r\n0\r\n\r\n"))
                  .ok());
  absl::StatusOr<ClientResponse> r = client->ReadResponse();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 413);
}

TEST_F(HttpServerTest, OversizedHeaderIs431) {
  HttpServerOptions options;
  options.max_header_bytes = 512;
  StartServer(options);
  auto client = Connect(port());
  ASSERT_NE(client, nullptr);
  ClientResponse r = MustRequest(*client, "GET", "/count", "",
                                 absl::StrCat("X-Big: ", std::string(600, 'a'), "\r\n"));
  EXPECT_EQ(r.status, 431);
  EXPECT_TRUE(client->WaitForClose());
}

TEST_F(HttpServerTest, MalformedRequestIs400) {
  StartServer();
  {
    auto client = Connect(port());
    ASSERT_NE(client, nullptr);
    ASSERT_TRUE(client->Send("THIS IS NOT HTTP\r\n\r\n").ok());
    absl::StatusOr<ClientResponse> r = client->ReadResponse();
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->status, 400);
    EXPECT_THAT(r->body, HasSubstr("\"code\":400"));
    EXPECT_TRUE(client->WaitForClose());
  }
  {
    auto client = Connect(port());
    ASSERT_NE(client, nullptr);
    ASSERT_TRUE(client->Send("GET /count HTTP/1.1\r\nBad Header Line\r\n\r\n").ok());
    absl::StatusOr<ClientResponse> r = client->ReadResponse();
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->status, 400);
  }
  {
    // Bad percent-escapes in a path parameter or the query are 400 too; the connection stays.
    auto client = Connect(port());
    ASSERT_NE(client, nullptr);
    EXPECT_EQ(MustRequest(*client, "GET", "/v1/users/u%zz/recommendations").status, 400);
    EXPECT_EQ(MustRequest(*client, "GET", "/v1/users/u1/recommendations?k=%4").status, 400);
    EXPECT_EQ(MustRequest(*client, "GET", "/count").status, 200);
  }
}

TEST_F(HttpServerTest, HandlerErrorsBecomeJson) {
  StartServer();
  auto client = Connect(port());
  ASSERT_NE(client, nullptr);
  ClientResponse r = MustRequest(*client, "GET", "/throw");
  EXPECT_EQ(r.status, 500);
  EXPECT_EQ(r.body, JsonErrorBody(500, "internal error"));
  r = MustRequest(*client, "GET", "/missing");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.body, JsonErrorBody(404, "unknown user 'x'"));
  // The server is still fine.
  EXPECT_EQ(MustRequest(*client, "GET", "/count").status, 200);
}

TEST_F(HttpServerTest, KeepAliveServesManyRequestsOnOneConnection) {
  StartServer();
  auto client = Connect(port());
  ASSERT_NE(client, nullptr);
  std::string remote;
  for (int i = 1; i <= 300; ++i) {
    ClientResponse r = MustRequest(*client, "GET", absl::StrCat("/count?seq=", i));
    ASSERT_EQ(r.status, 200);
    const std::vector<std::string> parts = absl::StrSplit(r.body, absl::MaxSplits(':', 2));
    ASSERT_EQ(parts.size(), 3u);
    EXPECT_EQ(parts[0], absl::StrCat(i));
    EXPECT_EQ(parts[1], absl::StrCat(i));
    // Same connection throughout: the same client address and port.
    if (i == 1) remote = parts[2];
    EXPECT_EQ(parts[2], remote);
  }
  EXPECT_THAT(remote, HasSubstr("127.0.0.1:"));
}

// HEAD is answered like GET without a body: the header states the GET body's length, and the
// next response on the connection starts right after the header.
TEST_F(HttpServerTest, HeadIsAGetWithoutItsBody) {
  StartServer();
  auto client = Connect(port());
  ASSERT_NE(client, nullptr);
  for (const char* target : {"/count?seq=7", "/missing", "/nowhere"}) {
    ASSERT_TRUE(client->Send(testing::BuildRequest("HEAD", target)).ok());
    absl::StatusOr<std::string> status_line = client->ReadLine();
    ASSERT_TRUE(status_line.ok()) << status_line.status();
    int64_t length = -1;
    while (true) {
      absl::StatusOr<std::string> line = client->ReadLine();
      ASSERT_TRUE(line.ok()) << line.status();
      if (line->empty()) break;
      absl::string_view value = *line;
      if (absl::ConsumePrefix(&value, "Content-Length: ")) {
        ASSERT_TRUE(absl::SimpleAtoi(value, &length)) << *line;
      }
    }
    EXPECT_GT(length, 0) << target;
    // Nothing but the next answer follows.
    ClientResponse r = MustRequest(*client, "GET", "/count?seq=8");
    EXPECT_EQ(r.status, 200) << target;
    EXPECT_THAT(r.body, ::testing::StartsWith("8:")) << target;
  }
  EXPECT_EQ(count_.load(), 4);  // the HEAD of /count ran the handler too
}

TEST_F(HttpServerTest, PipelinedRequestsAreAnsweredInOrder) {
  StartServer();
  auto client = Connect(port());
  ASSERT_NE(client, nullptr);
  std::string batch;
  constexpr int kRequests = 50;
  for (int i = 0; i < kRequests; ++i) {
    if (i % 10 == 5) {
      absl::StrAppend(&batch, testing::BuildRequest("POST", "/v1/events", "{\"n\":1}"));
    } else {
      absl::StrAppend(&batch, testing::BuildRequest("GET", absl::StrCat("/count?seq=", i)));
    }
  }
  ASSERT_TRUE(client->Send(batch).ok());
  for (int i = 0; i < kRequests; ++i) {
    absl::StatusOr<ClientResponse> r = client->ReadResponse();
    ASSERT_TRUE(r.ok()) << r.status();
    if (i % 10 == 5) {
      EXPECT_EQ(r->status, 202);
      EXPECT_EQ(r->body, "{\"bytes\":7}");
    } else {
      EXPECT_EQ(r->status, 200);
      EXPECT_TRUE(absl::StartsWith(r->body, absl::StrCat(i, ":"))) << r->body;
    }
  }
}

TEST_F(HttpServerTest, ConcurrentClients) {
  StartServer();
  constexpr int kThreads = 8;
  constexpr int kPerThread = 100;
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      auto client = Connect(port());
      if (client == nullptr) return;
      for (int i = 0; i < kPerThread; ++i) {
        absl::StatusOr<ClientResponse> r =
            client->Request("GET", absl::StrCat("/v1/users/t", t, "/recommendations?k=", i));
        if (r.ok() && r->status == 200 &&
            absl::StartsWith(r->body, absl::StrCat("user=t", t, ";k=", i, ";"))) {
          ++ok;
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(ok.load(), kThreads * kPerThread);
}

// Handlers that wait run on the blocking threads: with every I/O thread's worth of them stuck,
// other requests are still answered, and beyond the blocking threads and their queue a request
// is refused at once with 503 and Retry-After.
TEST_F(HttpServerTest, BlockingRoutesNeverHoldTheIoThreads) {
  HttpServerOptions options;
  options.io_threads = 1;
  options.blocking_threads = 2;
  options.blocking_queue = 1;
  StartServer(options);
  // Four requests that wait, on four connections: two run, one is queued, one is refused (which
  // one depends on arrival order).
  std::vector<std::unique_ptr<TestHttpClient>> clients;
  for (int i = 0; i < 4; ++i) {
    clients.push_back(Connect(port()));
    ASSERT_NE(clients.back(), nullptr);
    ASSERT_TRUE(clients.back()->Send(testing::BuildRequest("GET", "/wait")).ok());
  }
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (waiting_.load() < 2 && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(2));
  ASSERT_EQ(waiting_.load(), 2);
  // The one I/O thread is free for everything else meanwhile.
  auto other = Connect(port());
  ASSERT_NE(other, nullptr);
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(MustRequest(*other, "GET", absl::StrCat("/count?seq=", i)).status, 200);
  }
  wait_release_.Notify();
  int ok = 0, refused = 0;
  for (auto& client : clients) {
    absl::StatusOr<ClientResponse> r = client->ReadResponse();
    ASSERT_TRUE(r.ok()) << r.status();
    if (r->status == 200) ++ok;
    if (r->status == 503) {
      ++refused;
      EXPECT_EQ(r->Header("Retry-After"), "1");
      EXPECT_THAT(r->body, HasSubstr("busy"));
    }
  }
  EXPECT_EQ(ok, 3);
  EXPECT_EQ(refused, 1);
  EXPECT_EQ(waiting_.load(), 3);
}

TEST_F(HttpServerTest, OverloadAnswers503WithRetryAfter) {
  HttpServerOptions options;
  options.max_in_flight = 1;
  options.io_threads = 2;
  StartServer(options);
  auto blocked = Connect(port());
  ASSERT_NE(blocked, nullptr);
  ASSERT_TRUE(blocked->Send(testing::BuildRequest("GET", "/block")).ok());
  block_entered_.WaitForNotification();  // the only in-flight slot is taken

  auto other = Connect(port());
  ASSERT_NE(other, nullptr);
  ClientResponse r = MustRequest(*other, "GET", "/count");
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.Header("Retry-After"), "1");
  EXPECT_THAT(r.body, HasSubstr("\"code\":503"));
  EXPECT_EQ(count_.load(), 0);

  release_.Notify();
  absl::StatusOr<ClientResponse> first = blocked->ReadResponse();
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->status, 200);
  // The slot is free again once the blocked response has been written.
  ClientResponse again;
  for (int attempt = 0; attempt < 1000; ++attempt) {
    again = MustRequest(*other, "GET", "/count");
    if (again.status != 503) break;
  }
  EXPECT_EQ(again.status, 200);
}

TEST_F(HttpServerTest, GracefulStopFinishesInFlightAndClosesIdle) {
  HttpServerOptions options;
  options.idle_timeout = absl::Seconds(600);  // Stop() must not wait for it
  StartServer(options);
  auto idle = Connect(port());
  ASSERT_NE(idle, nullptr);
  EXPECT_EQ(MustRequest(*idle, "GET", "/count").status, 200);

  auto busy = Connect(port());
  ASSERT_NE(busy, nullptr);
  ASSERT_TRUE(busy->Send(testing::BuildRequest("GET", "/block")).ok());
  block_entered_.WaitForNotification();

  std::atomic<bool> stopped{false};
  std::thread stopper([&] {
    server_->Stop();
    stopped = true;
  });
  // The idle keep-alive connection is closed by Stop() while the busy request still runs.
  EXPECT_TRUE(idle->WaitForClose());
  EXPECT_FALSE(stopped.load());

  release_.Notify();
  absl::StatusOr<ClientResponse> r = busy->ReadResponse();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "{\"blocked\":true}");
  EXPECT_EQ(r->Header("Connection"), "close");
  EXPECT_TRUE(busy->WaitForClose());
  stopper.join();
  EXPECT_TRUE(stopped.load());

  // No longer listening; Stop() again is a no-op; a stopped server does not restart.
  EXPECT_FALSE(TestHttpClient::Connect(server_->port()).ok());
  server_->Stop();
  EXPECT_EQ(server_->Start().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(HttpServerTest, ExpectContinueIsHonoured) {
  StartServer();
  auto client = Connect(port());
  ASSERT_NE(client, nullptr);
  const std::string body = "{\"user\":\"u1\"}";
  ASSERT_TRUE(client
                  ->Send(absl::StrCat("POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: ",
                                      body.size(), "\r\nExpect: 100-continue\r\n\r\n"))
                  .ok());
  absl::StatusOr<std::string> interim = client->ReadLine();
  ASSERT_TRUE(interim.ok()) << interim.status();
  EXPECT_EQ(*interim, "HTTP/1.1 100 Continue");
  ASSERT_TRUE(client->ReadLine().ok());  // the blank line ending the interim response
  ASSERT_TRUE(client->Send(body).ok());
  absl::StatusOr<ClientResponse> r = client->ReadResponse();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 202);
}

TEST_F(HttpServerTest, Http10ClosesUnlessKeepAlive) {
  StartServer();
  auto client = Connect(port());
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(client->Send("GET /count HTTP/1.0\r\n\r\n").ok());
  absl::StatusOr<ClientResponse> r = client->ReadResponse();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->version, "HTTP/1.0");
  EXPECT_TRUE(client->WaitForClose());
}

TEST_F(HttpServerTest, IdleTimeoutClosesConnection) {
  HttpServerOptions options;
  options.idle_timeout = absl::Milliseconds(100);
  StartServer(options);
  auto client = Connect(port());
  ASSERT_NE(client, nullptr);
  EXPECT_EQ(MustRequest(*client, "GET", "/count").status, 200);
  EXPECT_TRUE(client->WaitForClose());
}

// A raw loopback connection to `port` that sends nothing unless told to; -1 on failure.
int RawConnect(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// True once the server has closed `fd` (a read returns end of stream without blocking).
bool ClosedByServer(int fd) {
  char c;
  return recv(fd, &c, 1, MSG_DONTWAIT) == 0;
}

TEST_F(HttpServerTest, ThousandsOfIdleSocketsCannotCrowdOutRequests) {
  // 3,000 idle clients plus the server's side of up to 1,000 of them, in this one process.
  struct rlimit limit = {};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &limit), 0);
  if (limit.rlim_max < 8192) GTEST_SKIP() << "needs an open-file hard limit of 8192";
  limit.rlim_cur = limit.rlim_max;
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &limit), 0);
  HttpServerOptions options;
  options.max_connections = 1000;
  options.metrics = &registry_;
  StartServer(options);
  std::vector<int> idle;
  for (int i = 0; i < 3000; ++i) {
    const int fd = RawConnect(port());
    ASSERT_GE(fd, 0) << "connection " << i;
    idle.push_back(fd);
  }
  // Normal traffic is still served: the connections idle longest made room.
  for (int i = 0; i < 20; ++i) {
    auto client = Connect(port());
    ASSERT_NE(client, nullptr);
    EXPECT_EQ(MustRequest(*client, "GET", "/count").status, 200);
  }
  // connect() returns once the kernel has queued a connection; the server accepts the backlog
  // at its own pace. Every connection beyond the cap closes one idle before it.
  int closed = 0;
  for (int wait = 0; wait < 100 && closed < 2000; ++wait) {
    absl::SleepFor(absl::Milliseconds(100));
    closed = 0;
    for (const int fd : idle) closed += ClosedByServer(fd) ? 1 : 0;
  }
  EXPECT_GE(closed, 2000);
  EXPECT_TRUE(ClosedByServer(idle.front()));  // the oldest went first
  EXPECT_FALSE(ClosedByServer(idle.back()));  // the newest idle ones are still open
  for (const int fd : idle) close(fd);
}

TEST_F(HttpServerTest, AtTheCapWithNothingIdleANewConnectionGets503) {
  HttpServerOptions options;
  options.max_connections = 3;
  StartServer(options);
  std::vector<int> busy;
  for (int i = 0; i < 3; ++i) {
    const int fd = RawConnect(port());
    ASSERT_GE(fd, 0);
    const std::string partial = "GET /count HTTP/1.1\r\n";  // mid-request: not idle
    ASSERT_EQ(send(fd, partial.data(), partial.size(), 0), static_cast<ssize_t>(partial.size()));
    busy.push_back(fd);
  }
  absl::SleepFor(absl::Milliseconds(200));
  const int refused = RawConnect(port());
  ASSERT_GE(refused, 0);
  std::string answer(512, '\0');
  const ssize_t n = recv(refused, answer.data(), answer.size(), 0);
  ASSERT_GT(n, 0);
  answer.resize(static_cast<size_t>(n));
  EXPECT_THAT(answer, ::testing::StartsWith("HTTP/1.1 503"));
  EXPECT_THAT(answer, HasSubstr("Retry-After: 1"));
  close(refused);
  for (const int fd : busy) close(fd);
  absl::SleepFor(absl::Milliseconds(200));
  auto client = Connect(port());
  ASSERT_NE(client, nullptr);
  EXPECT_EQ(MustRequest(*client, "GET", "/count").status, 200);
}

TEST(HttpServerStartTest, PortInUseIsAClearError) {
  HttpServer first(HttpServerOptions{});
  ASSERT_TRUE(first.Start().ok());
  HttpServerOptions options;
  options.port = first.port();
  HttpServer second(options);
  const absl::Status status = second.Start();
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(status.message(), HasSubstr(absl::StrCat("127.0.0.1:", first.port())));
  EXPECT_EQ(second.port(), 0);
  second.Stop();  // never started: a no-op
  first.Stop();
}

TEST(HttpServerStartTest, BadOptionsAndLateRoutes) {
  HttpServerOptions options;
  options.bind_address = "localhost";  // must be numeric
  HttpServer bad_address(options);
  EXPECT_EQ(bad_address.Start().code(), absl::StatusCode::kInvalidArgument);

  options = HttpServerOptions{};
  options.io_threads = 0;
  HttpServer bad_threads(options);
  EXPECT_EQ(bad_threads.Start().code(), absl::StatusCode::kInvalidArgument);

  HttpServer server(HttpServerOptions{});
  EXPECT_EQ(
      server.Handle("GET", "no-slash", [](const HttpRequest&) { return HttpResponse{}; }).code(),
      absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(server.Start().ok());
  EXPECT_EQ(server.Start().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(server.Handle("GET", "/late", [](const HttpRequest&) { return HttpResponse{}; }).code(),
            absl::StatusCode::kFailedPrecondition);
  // Destruction stops it.
}

TEST_F(HttpServerTest, RecordsPerRouteMetrics) {
  HttpServerOptions options;
  options.metrics = &registry_;
  StartServer(options);
  auto client = Connect(port());
  ASSERT_NE(client, nullptr);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(
        MustRequest(*client, "GET", absl::StrCat("/v1/users/u", i, "/recommendations")).status,
        200);
  }
  EXPECT_EQ(MustRequest(*client, "GET", "/missing").status, 404);
  EXPECT_EQ(MustRequest(*client, "GET", "/nope/1").status, 404);
  EXPECT_EQ(MustRequest(*client, "GET", "/nope/2").status, 404);
  EXPECT_EQ(MustRequest(*client, "GET", "/throw").status, 500);

  absl::StatusOr<std::vector<testing::Sample>> samples =
      testing::ParsePrometheusText(registry_.RenderText());
  ASSERT_TRUE(samples.ok()) << samples.status();
  const auto value = [&](absl::string_view name, const testing::Labels& labels) {
    return testing::FindSample(*samples, name, labels);
  };
  EXPECT_EQ(value("freshet_http_requests_total",
                  {{"method", "GET"}, {"route", kRecsRoute}, {"status", "200"}}),
            3.0);
  EXPECT_EQ(value("freshet_http_requests_total",
                  {{"method", "GET"}, {"route", "/missing"}, {"status", "404"}}),
            1.0);
  // Unmatched paths share one label value, whatever the raw path.
  EXPECT_EQ(value("freshet_http_requests_total",
                  {{"method", "*"}, {"route", "unmatched"}, {"status", "404"}}),
            2.0);
  EXPECT_EQ(value("freshet_http_requests_total",
                  {{"method", "GET"}, {"route", "/throw"}, {"status", "500"}}),
            1.0);
  EXPECT_EQ(value("freshet_http_request_duration_seconds_count",
                  {{"method", "GET"}, {"route", kRecsRoute}}),
            3.0);
  EXPECT_EQ(value("freshet_http_request_duration_seconds_bucket",
                  {{"method", "GET"}, {"route", kRecsRoute}, {"le", "+Inf"}}),
            3.0);
  EXPECT_EQ(value("freshet_http_connections_total", {}), 1.0);
  EXPECT_EQ(value("freshet_http_open_connections", {}), 1.0);
  EXPECT_TRUE(testing::HistogramsAreConsistent(*samples).ok());
}

}  // namespace
}  // namespace freshet::serving
