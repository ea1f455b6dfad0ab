// HttpServer on Linux epoll.
//
// Model: io_threads threads, each with its own epoll set. The listening socket is in every set
// (EPOLLEXCLUSIVE, so a new connection wakes one thread); the thread that accepts a connection
// registers it and deals it to the threads in turn, and its owner keeps it for its whole life, so
// a connection's state needs no lock. Connection sockets are edge-triggered: a thread reads until
// the kernel says "would block", and a connection that is busy (its request being handled, or its
// response being written) remembers that bytes are waiting and reads them once it is free again.
// Per request a connection goes
//   idle (idle_timeout, nothing buffered) -> reading (request_timeout from the first byte)
//   [-> "100 Continue"] -> handling -> writing (request_timeout) -> idle again
// and pipelined requests are parsed from the buffer one at a time, so they are answered strictly
// in order. Each round of ready connections runs inside a BurstEnd scope (common/burst_end.h):
// work handlers defer, such as the engine's batched scoring of the round's recommendation
// queries, runs on this thread when the round ends. An asynchronous handler's answer comes back
// through the owning thread's mailbox (a locked queue and an eventfd): from another thread, one
// wake-up carries every answer posted since the thread last looked, and a BurstEnd scope on the
// answering thread sends one per batch; from the owning thread itself, no wake-up: it takes its
// own answers before it waits again. The thread writes them.
//
// Cost per request on the I/O thread: one recv, one send, an epoll_wait shared with whatever else
// arrived, no wake-up and no timers (deadlines are swept every kSweepIntervalNs).
#include "serving/http/http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <exception>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/burst_end.h"
#include "common/log.h"
#include "common/mutex.h"
#include "serving/http/blocking_pool.h"
#include "serving/http/request_parser.h"
#include "serving/http/url.h"

namespace freshet::serving {
namespace {

using Clock = std::chrono::steady_clock;

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

constexpr size_t kReadChunk = 64 * 1024;
// After a response that closes the connection, unread request bytes are drained for this long (at
// most kLingerBytes) so the kernel does not answer them with a reset that could destroy the
// response before the client reads it (e.g. a 413 sent while the client is still uploading).
constexpr int64_t kLingerNs = 1'000'000'000;
constexpr size_t kLingerBytes = 1 << 20;
// How often each thread checks its connections' deadlines, and backs off a failing accept().
constexpr int64_t kSweepIntervalNs = 50'000'000;
constexpr int kEpollWaitMs = 50;
constexpr int64_t kAcceptBackoffNs = 50'000'000;
constexpr int kMaxAcceptsPerWake = 64;
constexpr absl::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
constexpr int kMaxStatus = 600;
// epoll data of the two descriptors that are not connections; connection ids start above them.
constexpr uint64_t kListenerId = 0;
constexpr uint64_t kMailboxId = 1;

bool HasLineBreak(absl::string_view s) {
  return s.find_first_of("\r\n") != absl::string_view::npos;
}

// Header fields the server writes itself; a handler's copy of one is dropped.
bool IsFramingField(absl::string_view name) {
  return absl::EqualsIgnoreCase(name, "Content-Length") ||
         absl::EqualsIgnoreCase(name, "Content-Type") ||
         absl::EqualsIgnoreCase(name, "Connection") ||
         absl::EqualsIgnoreCase(name, "Transfer-Encoding");
}

// "127.0.0.1:54321" or "[::1]:54321".
std::string PeerAddress(const sockaddr_storage& addr) {
  char text[INET6_ADDRSTRLEN] = {};
  if (addr.ss_family == AF_INET) {
    const auto& in = reinterpret_cast<const sockaddr_in&>(addr);
    inet_ntop(AF_INET, &in.sin_addr, text, sizeof(text));
    return absl::StrCat(text, ":", ntohs(in.sin_port));
  }
  if (addr.ss_family == AF_INET6) {
    const auto& in6 = reinterpret_cast<const sockaddr_in6&>(addr);
    inet_ntop(AF_INET6, &in6.sin6_addr, text, sizeof(text));
    return absl::StrCat("[", text, "]:", ntohs(in6.sin6_port));
  }
  return "";
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

// What other threads ask of an I/O thread.
struct Mail {
  enum class Kind {
    kAnswer,      // an asynchronous handler's response for connection `conn`
    kCloseIdle,   // close `conn` now if idle, else after its current response (connection cap)
    kShutdown,    // Stop() began: stop accepting, close idle connections, close the rest when done
    kForceClose,  // stop_timeout passed: close every connection now
    kExit,        // leave the event loop
    kAdopt,       // connection `conn`, accepted and registered by another thread (handover_)
  };
  Kind kind = Kind::kAnswer;
  uint64_t conn = 0;
  int route_index = 0;
  int64_t start_ns = 0;
  HttpResponse response;
};

// An I/O thread's inbox. Thread-safe; the eventfd is written only when the thread has not yet
// been woken for what is queued, so a burst of answers costs one wake-up.
class Mailbox : public std::enable_shared_from_this<Mailbox> {
 public:
  Mailbox() : fd_(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {}
  ~Mailbox() {
    if (fd_ >= 0) close(fd_);
  }
  Mailbox(const Mailbox&) = delete;
  Mailbox& operator=(const Mailbox&) = delete;

  int fd() const { return fd_; }

  void Post(Mail mail) ABSL_LOCKS_EXCLUDED(mu_) {
    if (running_here_ == this) {
      // From the owning thread itself (an answer computed at the end of its round): it takes this
      // with TakeOwn() before it waits again, so no wake-up.
      MutexLock lock(&mu_);
      mail_.push_back(std::move(mail));
      own_posted_ = true;
      return;
    }
    bool wake = false;
    {
      MutexLock lock(&mu_);
      mail_.push_back(std::move(mail));
      wake = !woken_;
      woken_ = true;
    }
    // A thread answering a batch (BurstEnd open) wakes this one once, after its last answer.
    if (wake && !BurstEnd::Defer(this, [self = shared_from_this()] { self->Wake(); })) {
      Wake();
    }
  }

  void Wake() {
    const uint64_t one = 1;
    // Fails only when the counter would overflow, i.e. the thread is already due to wake.
    [[maybe_unused]] const ssize_t n = write(fd_, &one, sizeof(one));
  }

  // Takes everything posted so far (called by the owning thread when the eventfd is readable).
  void Take(std::vector<Mail>* out) ABSL_LOCKS_EXCLUDED(mu_) {
    uint64_t count = 0;
    [[maybe_unused]] const ssize_t n = read(fd_, &count, sizeof(count));
    MutexLock lock(&mu_);
    out->swap(mail_);
    woken_ = false;
    own_posted_ = false;
  }

  // The owning thread, before it waits: takes everything posted if it posted to itself since it
  // last looked (true), else nothing (the eventfd brings what other threads post). The eventfd is
  // left as it is: if another thread's wake-up is pending, the next Take() finds what is left.
  bool TakeOwn(std::vector<Mail>* out) ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    if (!own_posted_) return false;
    out->swap(mail_);
    own_posted_ = false;
    return true;
  }

  // Marks the calling thread as this mailbox's owner (its I/O thread, for its whole life).
  void OwnedByThisThread() { running_here_ = this; }

 private:
  const int fd_;
  Mutex mu_;
  std::vector<Mail> mail_ ABSL_GUARDED_BY(mu_);
  bool woken_ ABSL_GUARDED_BY(mu_) = false;       // the eventfd was written and not yet read
  bool own_posted_ ABSL_GUARDED_BY(mu_) = false;  // the owner posted to itself
  // The mailbox of the I/O thread running on this thread, if any.
  static inline thread_local const Mailbox* running_here_ = nullptr;
};

// One client connection; touched only by the thread that owns it, except idle_since_ns.
struct Conn {
  enum class Phase { kIdle, kReading, kHandling, kWriting, kLingering, kClosed };

  Conn(uint64_t conn_id, int socket, std::string peer, HttpRequestParser::Limits limits)
      : id(conn_id), fd(socket), remote(std::move(peer)), parser(limits) {}

  const uint64_t id;
  const int fd;
  const std::string remote;
  HttpRequestParser parser;
  std::string in;   // received, not yet consumed
  std::string out;  // response being written
  size_t out_sent = 0;
  Phase phase = Phase::kIdle;
  int64_t deadline_ns = 0;  // 0: none (handling)
  // Steady-clock nanoseconds since the connection has been idle; 0 when not idle. Read by other
  // threads at the connection cap.
  std::atomic<int64_t> idle_since_ns{0};
  bool readable = true;    // bytes (or the end of the stream) may be waiting in the kernel
  bool hangup = false;     // epoll reported the peer's end of stream or an error
  bool peer_done = false;  // the client closed its side
  bool stopping = false;   // close after the current response
  bool close_after_write = false;
  bool head_request = false;  // the request being answered is a HEAD
  bool continue_sent = false;
  bool counted_in_flight = false;
  int version_minor = 1;  // of the request being answered
  bool keep_alive = true;
  size_t lingered = 0;
};

class IoThread;

// State shared by every I/O thread.
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

  // The connection registry (for the cap, the gauge and Stop()). Register() returns false when
  // the server is stopping (the connection is then closed at once).
  bool Register(Conn* conn, IoThread* owner) ABSL_LOCKS_EXCLUDED(mu_);
  void Deregister(uint64_t id) ABSL_LOCKS_EXCLUDED(mu_);
  // True when another connection may be opened: under the cap, or an idle one was asked to close.
  bool MakeRoom() ABSL_LOCKS_EXCLUDED(mu_);
  // Answers 503 on a connection refused at the cap, and closes it.
  void Refuse(int fd);

  uint64_t NextConnId() { return next_conn_id_.fetch_add(1, std::memory_order_relaxed); }
  // The thread to own the next accepted connection, round robin.
  IoThread* NextOwner() {
    const uint32_t i = next_owner_.fetch_add(1, std::memory_order_relaxed);
    return owners_[i % owners_.size()];
  }

  // Metrics; no-ops without a registry. route_index: a Router::Route index, unmatched_index()
  // (404, 405) or invalid_index() (requests that never reached routing).
  int unmatched_index() const { return static_cast<int>(router_.routes().size()); }
  int invalid_index() const { return unmatched_index() + 1; }
  void Record(int route_index, int status, int64_t start_ns) {
    if (route_metrics_.empty()) return;
    route_metrics_[static_cast<size_t>(route_index)].Record(status, (NowNs() - start_ns) * 1e-9);
  }
  void AddInFlight(int delta) {
    if (in_flight_gauge_ != nullptr) in_flight_gauge_->Add(delta);
  }
  void LogRateLimited(bool warning, absl::string_view message) {
    int64_t suppressed = 0;
    if (!error_log_limiter_.Allow(&suppressed)) return;
    const std::string line = suppressed > 0
                                 ? absl::StrCat(message, " (", suppressed, " more suppressed)")
                                 : std::string(message);
    if (warning) {
      LogWarning(line);
    } else {
      LogError(line);
    }
  }

  const HttpServerOptions options_;
  // Routes are added (under mu_) only before Start(), and read unlocked by the threads after it.
  Router router_;
  std::atomic<int> in_flight_{0};
  std::atomic<bool> stopping_{false};
  std::atomic<int> port_{0};
  int listen_fd_ = -1;             // set by Start() before the threads start
  std::vector<IoThread*> owners_;  // the threads, set by Start() before they start
  std::atomic<uint32_t> next_owner_{0};
  int max_connections_ = 0;  // options_.max_connections, or the default; set by Start()

 private:
  struct ConnRef {
    std::atomic<int64_t>* idle_since_ns;
    IoThread* owner;
    int fd;  // open while registered: its owner deregisters before closing it
  };
  enum class State { kNew, kRunning, kStopped };

  void SetUpMetrics();
  void PostToAll(Mail::Kind kind) ABSL_EXCLUSIVE_LOCKS_REQUIRED(stop_mu_);
  // Waits up to `timeout` for every connection to close; true when they have.
  bool WaitForNoConnections(absl::Duration timeout) ABSL_LOCKS_EXCLUDED(mu_);

  std::vector<RouteMetrics> route_metrics_;
  Gauge* in_flight_gauge_ = nullptr;
  Gauge* open_connections_ = nullptr;
  Counter* connections_total_ = nullptr;
  Counter* connections_refused_ = nullptr;
  Counter* idle_closed_at_cap_ = nullptr;
  RateLimiter error_log_limiter_{5, absl::Seconds(10)};
  std::atomic<uint64_t> next_conn_id_{kMailboxId + 1};

  BlockingPool blocking_pool_{options_.blocking_threads, options_.blocking_queue};
  Mutex stop_mu_;  // serialises Start() and Stop()
  Mutex mu_ ABSL_ACQUIRED_AFTER(stop_mu_);
  CondVar conns_changed_;  // conns_ became empty
  State state_ ABSL_GUARDED_BY(mu_) = State::kNew;
  absl::flat_hash_map<uint64_t, ConnRef> conns_ ABSL_GUARDED_BY(mu_);
  std::vector<std::unique_ptr<IoThread>> threads_ ABSL_GUARDED_BY(stop_mu_);
};

class IoThread {
 public:
  IoThread(ServerCore* core, int epoll_fd) : core_(core), epoll_fd_(epoll_fd) {}
  ~IoThread() {
    if (thread_.joinable()) thread_.join();
    if (epoll_fd_ >= 0) close(epoll_fd_);
  }
  IoThread(const IoThread&) = delete;
  IoThread& operator=(const IoThread&) = delete;

  // Adds the listener and the mailbox to the epoll set; false (errno set) when that fails.
  bool Init() {
    if (mailbox_->fd() < 0) return false;
    return Watch(mailbox_->fd(), kMailboxId, EPOLLIN) && WatchListener();
  }
  void Start() {
    thread_ = std::thread([this] { Run(); });
  }
  void Join() {
    if (thread_.joinable()) thread_.join();
  }
  void Post(Mail mail) { mailbox_->Post(std::move(mail)); }
  // After Join(): closes the connections handed to this thread too late to be adopted.
  void CloseUnadopted() ABSL_LOCKS_EXCLUDED(handover_mu_) {
    MutexLock lock(&handover_mu_);
    for (auto& [id, conn] : handover_) {
      core_->Deregister(id);
      close(conn->fd);
    }
    handover_.clear();
  }

 private:
  bool Watch(int fd, uint64_t id, uint32_t events) {
    epoll_event ev = {};
    ev.events = events;
    ev.data.u64 = id;
    return epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) == 0;
  }
  bool WatchListener() {
    listening_ = Watch(core_->listen_fd_, kListenerId, EPOLLIN | EPOLLEXCLUSIVE);
    return listening_;
  }
  void UnwatchListener() {
    if (!listening_) return;
    epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, core_->listen_fd_, nullptr);
    listening_ = false;
  }

  void Run() {
    pthread_setname_np(pthread_self(), "freshet-http");
    mailbox_->OwnedByThisThread();
    std::vector<epoll_event> events(256);
    std::vector<Mail> mail;
    int64_t next_sweep = NowNs() + kSweepIntervalNs;
    while (!exit_) {
      const int n =
          epoll_wait(epoll_fd_, events.data(), static_cast<int>(events.size()), kEpollWaitMs);
      if (n < 0 && errno != EINTR) {
        core_->LogRateLimited(false, absl::StrCat("http: epoll_wait failed: ", strerror(errno)));
      }
      // Handlers catch their exceptions; this is the last line for anything else (bad_alloc).
      try {
        {
          // One round: the work handlers defer (LiveModel's batched scoring of the round's
          // recommendation queries) runs when it ends, and its answers to this thread's own
          // connections come back through TakeOwn() below.
          BurstEnd round;
          for (int i = 0; i < n; ++i) {
            const uint64_t id = events[static_cast<size_t>(i)].data.u64;
            const uint32_t what = events[static_cast<size_t>(i)].events;
            if (id == kListenerId) {
              Accept();
            } else if (id == kMailboxId) {
              mailbox_->Take(&mail);
              for (Mail& m : mail) Deliver(std::move(m));
              mail.clear();
            } else if (auto it = conns_.find(id); it != conns_.end()) {
              Conn& conn = *it->second;
              if (what & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) conn.readable = true;
              if (what & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) conn.hangup = true;
              Drive(conn);
            }
          }
        }
        // The answers this thread gave itself; writing one may start a pipelined request, whose
        // answer comes the same way, so until none is left.
        while (mailbox_->TakeOwn(&mail)) {
          BurstEnd round;
          for (Mail& m : mail) Deliver(std::move(m));
          mail.clear();
        }
        const int64_t now = NowNs();
        if (now >= next_sweep) {
          Sweep(now);
          next_sweep = now + kSweepIntervalNs;
        }
      } catch (const std::exception& e) {
        core_->LogRateLimited(false, absl::StrCat("http: I/O thread caught: ", e.what()));
      } catch (...) {
        core_->LogRateLimited(false, "http: I/O thread caught an unknown exception");
      }
      graveyard_.clear();
    }
    std::vector<uint64_t> ids;
    ids.reserve(conns_.size());
    for (const auto& [id, conn] : conns_) ids.push_back(id);
    for (uint64_t id : ids) Close(*conns_[id]);
    graveyard_.clear();
  }

  void Accept() {
    for (int i = 0; i < kMaxAcceptsPerWake; ++i) {
      sockaddr_storage addr = {};
      socklen_t len = sizeof(addr);
      const int fd = accept4(core_->listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len,
                             SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) return;
        if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO) continue;
        // E.g. out of file descriptors: stop watching the listener briefly instead of spinning.
        core_->LogRateLimited(true, absl::StrCat("http: accept failed: ", strerror(errno)));
        UnwatchListener();
        accept_resume_ns_ = NowNs() + kAcceptBackoffNs;
        return;
      }
      if (core_->stopping_.load(std::memory_order_acquire)) {
        close(fd);
        continue;
      }
      if (!core_->MakeRoom()) {
        core_->Refuse(fd);
        continue;
      }
      const int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      // Connections go to the threads in turn: whichever thread the kernel woke to accept, the
      // load spreads evenly.
      // Registered here, so the connection cap counts it at once (it is not idle until adopted).
      IoThread* owner = core_->NextOwner();
      const HttpServerOptions& o = core_->options_;
      auto conn =
          std::make_unique<Conn>(core_->NextConnId(), fd, PeerAddress(addr),
                                 HttpRequestParser::Limits{o.max_header_bytes, o.max_body_bytes});
      if (!core_->Register(conn.get(), owner)) {
        close(fd);
        continue;
      }
      if (owner == this) {
        Adopt(std::move(conn));
      } else {
        owner->Handover(std::move(conn));
      }
    }
  }

  // Another thread's accepted and registered connection, to be adopted by this one.
  void Handover(std::unique_ptr<Conn> conn) {
    Mail mail;
    mail.kind = Mail::Kind::kAdopt;
    mail.conn = conn->id;
    {
      MutexLock lock(&handover_mu_);
      handover_.emplace(conn->id, std::move(conn));
    }
    Post(std::move(mail));
  }

  // Takes a registered connection into this thread's epoll set.
  void Adopt(std::unique_ptr<Conn> conn) {
    const int fd = conn->fd;
    if (!Watch(fd, conn->id, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET)) {
      core_->LogRateLimited(true, absl::StrCat("http: epoll_ctl failed: ", strerror(errno)));
      core_->Deregister(conn->id);
      close(fd);
      return;
    }
    Conn& c = *conn;
    conns_.emplace(c.id, std::move(conn));
    if (shutting_down_) c.stopping = true;
    BeginIdle(c, NowNs());
  }

  void Deliver(Mail mail) {
    switch (mail.kind) {
      case Mail::Kind::kAnswer: {
        auto it = conns_.find(mail.conn);
        if (it == conns_.end()) return;  // the connection closed meanwhile
        Conn& conn = *it->second;
        if (conn.phase != Conn::Phase::kHandling) return;
        core_->Record(mail.route_index, mail.response.status, mail.start_ns);
        Write(conn, std::move(mail.response));
        Drive(conn);
        return;
      }
      case Mail::Kind::kCloseIdle: {
        auto it = conns_.find(mail.conn);
        if (it == conns_.end()) return;
        Conn& conn = *it->second;
        conn.stopping = true;
        if (conn.phase == Conn::Phase::kIdle || conn.phase == Conn::Phase::kLingering) {
          Close(conn);
        }
        return;
      }
      case Mail::Kind::kShutdown: {
        shutting_down_ = true;
        UnwatchListener();
        std::vector<Conn*> idle;
        for (auto& [id, conn] : conns_) {
          conn->stopping = true;
          if (conn->phase == Conn::Phase::kIdle || conn->phase == Conn::Phase::kLingering) {
            idle.push_back(conn.get());
          }
        }
        for (Conn* conn : idle) Close(*conn);
        return;
      }
      case Mail::Kind::kForceClose: {
        std::vector<Conn*> all;
        for (auto& [id, conn] : conns_) all.push_back(conn.get());
        for (Conn* conn : all) Close(*conn);
        return;
      }
      case Mail::Kind::kExit:
        exit_ = true;
        return;
      case Mail::Kind::kAdopt: {
        std::unique_ptr<Conn> conn;
        {
          MutexLock lock(&handover_mu_);
          auto it = handover_.find(mail.conn);
          if (it == handover_.end()) return;
          conn = std::move(it->second);
          handover_.erase(it);
        }
        Adopt(std::move(conn));
        return;
      }
    }
  }

  void Sweep(int64_t now) {
    if (!listening_ && !shutting_down_ && now >= accept_resume_ns_) WatchListener();
    std::vector<Conn*> expired;
    for (auto& [id, conn] : conns_) {
      if (conn->deadline_ns != 0 && now >= conn->deadline_ns) expired.push_back(conn.get());
    }
    for (Conn* conn : expired) Close(*conn);
  }

  void BeginIdle(Conn& conn, int64_t now) {
    conn.phase = Conn::Phase::kIdle;
    conn.deadline_ns = now + absl::ToInt64Nanoseconds(core_->options_.idle_timeout);
    conn.idle_since_ns.store(std::max<int64_t>(1, now), std::memory_order_relaxed);
  }

  // Moves a connection as far as it can go without waiting: parses and dispatches buffered
  // requests, reads, writes, drains while lingering.
  void Drive(Conn& conn) {
    for (;;) {
      switch (conn.phase) {
        case Conn::Phase::kClosed:
        case Conn::Phase::kHandling:
          return;
        case Conn::Phase::kWriting:
          if (!Flush(conn)) return;
          continue;
        case Conn::Phase::kLingering:
          Drain(conn);
          return;
        case Conn::Phase::kIdle:
        case Conn::Phase::kReading:
          if (conn.stopping && conn.phase == Conn::Phase::kIdle && conn.in.empty()) {
            Close(conn);
            return;
          }
          if (!conn.in.empty() && ParseBuffered(conn)) continue;
          if (conn.phase == Conn::Phase::kClosed) return;
          if (conn.peer_done) {
            // Every whole request the client sent before closing its side has been answered;
            // what is left can never be completed.
            Close(conn);
            return;
          }
          if (!conn.readable) return;
          if (!Read(conn)) return;
          continue;
      }
    }
  }

  // Reads until the kernel has nothing more. True when bytes arrived or the stream ended (Drive()
  // looks again); false when nothing came (the connection waits, or was closed).
  bool Read(Conn& conn) {
    size_t got = 0;
    for (;;) {
      const ssize_t n = recv(conn.fd, scratch_, sizeof(scratch_), 0);
      if (n > 0) {
        conn.in.append(scratch_, static_cast<size_t>(n));
        got += static_cast<size_t>(n);
        // A short read emptied the socket's queue: bytes arriving later raise a new edge, so
        // the read that would only say "would block" is saved. Not after a hang-up, whose end
        // of stream must still be read.
        if (static_cast<size_t>(n) < sizeof(scratch_) && !conn.hangup) {
          conn.readable = false;
          return true;
        }
        // Bound what one read takes in; the parser refuses more than a request may be anyway.
        if (got >= kReadChunk * 4) return true;
        continue;
      }
      if (n == 0) {
        conn.readable = false;
        conn.peer_done = true;
        break;
      }
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        conn.readable = false;
        break;
      }
      Close(conn);  // reset by the peer, or worse
      return false;
    }
    if (got > 0 || conn.peer_done) return true;  // Drive() parses, then closes at the end
    return false;
  }

  // Parses the buffered bytes. True when a request was dispatched or answered (the caller loops),
  // false when more bytes are needed.
  bool ParseBuffered(Conn& conn) {
    const int64_t now = NowNs();
    const HttpRequestParser::Result result = conn.parser.Parse(conn.in);
    switch (result) {
      case HttpRequestParser::Result::kIncomplete:
        if (conn.phase == Conn::Phase::kIdle && conn.parser.started(conn.in)) {
          conn.phase = Conn::Phase::kReading;
          conn.idle_since_ns.store(0, std::memory_order_relaxed);
          conn.deadline_ns = now + absl::ToInt64Nanoseconds(core_->options_.request_timeout);
        }
        if (conn.parser.head_done() && conn.parser.expect_continue() && !conn.continue_sent) {
          conn.continue_sent = true;
          // Nothing else is being written now, so this small write goes out whole.
          const ssize_t n = send(conn.fd, kContinue.data(), kContinue.size(), MSG_NOSIGNAL);
          if (n != static_cast<ssize_t>(kContinue.size())) Close(conn);
        }
        return false;
      case HttpRequestParser::Result::kError:
        conn.idle_since_ns.store(0, std::memory_order_relaxed);
        conn.in.clear();
        SendInvalid(conn, conn.parser.error_status(), conn.parser.error(), now);
        return true;
      case HttpRequestParser::Result::kComplete:
        conn.idle_since_ns.store(0, std::memory_order_relaxed);
        Dispatch(conn, now);
        return true;
    }
    return false;
  }

  // An answer to a request that could not be parsed; the connection closes after it.
  void SendInvalid(Conn& conn, int status, absl::string_view message, int64_t start_ns) {
    conn.head_request = false;
    conn.version_minor = 1;
    conn.keep_alive = false;
    HttpResponse response = ErrorResponse(status, message);
    core_->Record(core_->invalid_index(), status, start_ns);
    Write(conn, std::move(response));
  }

  void Dispatch(Conn& conn, int64_t start_ns) {
    HttpRequestParser& parser = conn.parser;
    HttpRequest request;
    request.method = parser.method();
    request.target = parser.target();
    conn.version_minor = parser.version_minor();
    conn.keep_alive = parser.keep_alive();
    const size_t consumed = parser.consumed();
    // HEAD is answered like GET, without the body (RFC 9110, 9.3.2): the length a GET would have
    // is in Content-Length, and nothing follows the header, so a keep-alive client reads the next
    // response where it starts.
    conn.head_request = request.method == "HEAD";
    if (conn.head_request) request.method = "GET";
    absl::string_view path;
    absl::string_view query;
    SplitTarget(request.target, &path, &query);
    request.path = std::string(path);

    HttpResponse response;
    int route_index = core_->unmatched_index();
    const Router::Match match = core_->router_.Find(request.method, path, &request.params);
    switch (match.outcome) {
      case Router::Outcome::kBadPath:
        route_index = core_->invalid_index();
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
        if (core_->in_flight_.fetch_add(1, std::memory_order_acq_rel) >=
            core_->options_.max_in_flight) {
          core_->in_flight_.fetch_sub(1, std::memory_order_acq_rel);
          response =
              ErrorResponse(503, absl::StrCat("server overloaded: ", core_->options_.max_in_flight,
                                              " requests in flight"));
          response.headers.emplace_back("Retry-After", "1");
          break;
        }
        conn.counted_in_flight = true;
        core_->AddInFlight(1);
        request.route = match.route->pattern;
        request.remote_address = conn.remote;
        request.headers = std::move(parser.mutable_headers());
        request.body = std::move(parser.mutable_body());
        if (match.route->async_handler) {
          ConsumeRequest(conn, consumed);
          conn.phase = Conn::Phase::kHandling;
          conn.deadline_ns = 0;
          CallAsyncHandler(conn, *match.route, request, route_index, start_ns);
          return;  // answered through the mailbox
        }
        response = CallHandler(*match.route, request);
        break;
      }
    }
    ConsumeRequest(conn, consumed);
    core_->Record(route_index, response.status, start_ns);
    Write(conn, std::move(response));
  }

  void ConsumeRequest(Conn& conn, size_t consumed) {
    if (consumed >= conn.in.size()) {
      conn.in.clear();
    } else {
      conn.in.erase(0, consumed);
    }
    conn.parser.Reset();
    conn.continue_sent = false;
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

  // What an asynchronous answer needs to find its way back; shared by the responder's copies.
  struct Pending {
    std::shared_ptr<Mailbox> mailbox;
    uint64_t conn = 0;
    int route_index = 0;
    int64_t start_ns = 0;
    std::atomic<bool> answered{false};
  };

  void CallAsyncHandler(Conn& conn, const Router::Route& route, const HttpRequest& request,
                        int route_index, int64_t start_ns) {
    auto pending = std::make_shared<Pending>();
    pending->mailbox = mailbox_;
    pending->conn = conn.id;
    pending->route_index = route_index;
    pending->start_ns = start_ns;
    // Whatever thread answers, the write happens on this thread; a second call is ignored, so a
    // handler bug cannot write twice.
    HttpResponder respond = [pending](absl::StatusOr<HttpResponse> result) {
      if (pending->answered.exchange(true)) return;
      Mail mail;
      mail.kind = Mail::Kind::kAnswer;
      mail.conn = pending->conn;
      mail.route_index = pending->route_index;
      mail.start_ns = pending->start_ns;
      mail.response = result.ok() ? *std::move(result) : ResponseFromStatus(result.status());
      pending->mailbox->Post(std::move(mail));
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
    core_->LogRateLimited(false, absl::StrCat("http: handler for ", route.method, " ",
                                              route.pattern, " threw: ", what));
  }

  // Serialises the response into conn.out and starts writing it (Drive() flushes).
  void Write(Conn& conn, HttpResponse response) {
    if (response.status < 100 || response.status >= kMaxStatus) {
      response = ErrorResponse(500, absl::StrCat("handler returned bad status ", response.status));
    }
    // Stop() may have begun while the handler ran: then this is the connection's last response.
    const bool keep_alive =
        conn.keep_alive && !conn.stopping && !core_->stopping_.load(std::memory_order_acquire);
    std::string& out = conn.out;
    out.clear();
    conn.out_sent = 0;
    const absl::string_view reason = ReasonPhrase(response.status);
    out.reserve(128 + response.body.size());
    absl::StrAppend(&out, conn.version_minor == 0 ? "HTTP/1.0 " : "HTTP/1.1 ", response.status, " ",
                    reason, "\r\nContent-Type: ", response.content_type, "\r\n");
    for (const auto& [name, value] : response.headers) {
      if (name.empty() || HasLineBreak(name) || HasLineBreak(value) || IsFramingField(name)) {
        continue;
      }
      absl::StrAppend(&out, name, ": ", value, "\r\n");
    }
    if (!keep_alive && conn.version_minor >= 1) out.append("Connection: close\r\n");
    if (keep_alive && conn.version_minor == 0) out.append("Connection: keep-alive\r\n");
    absl::StrAppend(&out, "Content-Length: ", response.body.size(), "\r\n\r\n");
    if (!conn.head_request) out.append(response.body);
    conn.close_after_write = !keep_alive;
    conn.phase = Conn::Phase::kWriting;
    conn.deadline_ns = NowNs() + absl::ToInt64Nanoseconds(core_->options_.request_timeout);
  }

  // Sends what is left of conn.out. True when all of it went (the connection moved on); false
  // when the socket is full (EPOLLOUT will call again) or the connection closed.
  bool Flush(Conn& conn) {
    while (conn.out_sent < conn.out.size()) {
      const ssize_t n = send(conn.fd, conn.out.data() + conn.out_sent,
                             conn.out.size() - conn.out_sent, MSG_NOSIGNAL);
      if (n > 0) {
        conn.out_sent += static_cast<size_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return false;
      Close(conn);
      return false;
    }
    ReleaseInFlight(conn);
    conn.out.clear();
    conn.out_sent = 0;
    if (conn.out.capacity() > (64 << 10)) conn.out.shrink_to_fit();
    if (conn.close_after_write || conn.stopping) {
      Linger(conn);
      return false;
    }
    BeginIdle(conn, NowNs());
    return true;
  }

  void ReleaseInFlight(Conn& conn) {
    if (!conn.counted_in_flight) return;
    conn.counted_in_flight = false;
    core_->in_flight_.fetch_sub(1, std::memory_order_acq_rel);
    core_->AddInFlight(-1);
  }

  // Half-close, then read and discard whatever the client still sends, briefly.
  void Linger(Conn& conn) {
    if (conn.peer_done || shutdown(conn.fd, SHUT_WR) != 0 || shutting_down_) {
      Close(conn);
      return;
    }
    conn.phase = Conn::Phase::kLingering;
    conn.deadline_ns = NowNs() + kLingerNs;
    conn.in.clear();
    conn.in.shrink_to_fit();
    conn.readable = true;
    Drain(conn);
  }

  void Drain(Conn& conn) {
    for (;;) {
      const ssize_t n = recv(conn.fd, scratch_, sizeof(scratch_), 0);
      if (n > 0) {
        conn.lingered += static_cast<size_t>(n);
        if (conn.lingered > kLingerBytes) break;
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
      break;  // end of stream or an error
    }
    Close(conn);
  }

  void Close(Conn& conn) {
    if (conn.phase == Conn::Phase::kClosed) return;
    conn.phase = Conn::Phase::kClosed;
    ReleaseInFlight(conn);
    core_->Deregister(conn.id);  // first: registered descriptors are open (see ConnRef)
    shutdown(conn.fd, SHUT_RDWR);
    close(conn.fd);  // also leaves the epoll set
    auto it = conns_.find(conn.id);
    if (it != conns_.end()) {
      // Freed once the current batch of events is handled: callers up the stack still hold it.
      graveyard_.push_back(std::move(it->second));
      conns_.erase(it);
    }
  }

  ServerCore* const core_;
  const int epoll_fd_;
  // Shared with the responders of asynchronous requests, which may outlive the thread.
  const std::shared_ptr<Mailbox> mailbox_ = std::make_shared<Mailbox>();
  std::thread thread_;
  // Everything below is touched only by the thread.
  absl::flat_hash_map<uint64_t, std::unique_ptr<Conn>> conns_;
  std::vector<std::unique_ptr<Conn>> graveyard_;
  // Connections accepted by other threads for this one, until the kAdopt mail is read.
  Mutex handover_mu_;
  absl::flat_hash_map<uint64_t, std::unique_ptr<Conn>> handover_ ABSL_GUARDED_BY(handover_mu_);
  bool listening_ = false;
  bool shutting_down_ = false;
  bool exit_ = false;
  int64_t accept_resume_ns_ = 0;
  char scratch_[kReadChunk];
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
            [shared, request, responder, route] {
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

// Binds and listens on `address`:`port`; the descriptor, or an error naming the address.
absl::StatusOr<int> Listen(const std::string& address, int port) {
  sockaddr_storage storage = {};
  socklen_t length = 0;
  bool v6 = false;
  auto* in = reinterpret_cast<sockaddr_in*>(&storage);
  auto* in6 = reinterpret_cast<sockaddr_in6*>(&storage);
  if (inet_pton(AF_INET, address.c_str(), &in->sin_addr) == 1) {
    in->sin_family = AF_INET;
    in->sin_port = htons(static_cast<uint16_t>(port));
    length = sizeof(sockaddr_in);
  } else if (inet_pton(AF_INET6, address.c_str(), &in6->sin6_addr) == 1) {
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(static_cast<uint16_t>(port));
    length = sizeof(sockaddr_in6);
    v6 = true;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("bad bind address '", address, "': expected a numeric IP address"));
  }
  const std::string where =
      v6 ? absl::StrCat("[", address, "]:", port) : absl::StrCat(address, ":", port);
  const int fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", where, ": ", strerror(errno)));
  }
  const int one = 1;
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
      bind(fd, reinterpret_cast<sockaddr*>(&storage), length) != 0 || listen(fd, SOMAXCONN) != 0) {
    const int err = errno;
    close(fd);
    return absl::UnavailableError(absl::StrCat("cannot listen on ", where, ": ", strerror(err)));
  }
  return fd;
}

int BoundPort(int fd) {
  sockaddr_storage storage = {};
  socklen_t length = sizeof(storage);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&storage), &length) != 0) return 0;
  if (storage.ss_family == AF_INET) {
    return ntohs(reinterpret_cast<sockaddr_in&>(storage).sin_port);
  }
  return ntohs(reinterpret_cast<sockaddr_in6&>(storage).sin6_port);
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
  absl::StatusOr<int> listener = Listen(o.bind_address, o.port);
  if (!listener.ok()) return listener.status();
  listen_fd_ = *listener;
  port_.store(BoundPort(listen_fd_));
  std::vector<std::unique_ptr<IoThread>> threads;
  bool set_up = true;
  for (int i = 0; i < o.io_threads && set_up; ++i) {
    const int epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    set_up = epoll_fd >= 0;
    if (!set_up) break;
    threads.push_back(std::make_unique<IoThread>(this, epoll_fd));
    set_up = threads.back()->Init();
  }
  if (!set_up) {
    const int err = errno;
    threads.clear();
    close(listen_fd_);
    listen_fd_ = -1;
    port_.store(0);
    return absl::InternalError(absl::StrCat("cannot set up the HTTP I/O threads: ", strerror(err)));
  }
  SetUpMetrics();
  {
    MutexLock lock(&mu_);
    state_ = State::kRunning;
  }
  blocking_pool_.Start();
  threads_ = std::move(threads);
  for (const std::unique_ptr<IoThread>& t : threads_) owners_.push_back(t.get());
  for (const std::unique_ptr<IoThread>& t : threads_) t->Start();
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

bool ServerCore::Register(Conn* conn, IoThread* owner) {
  MutexLock lock(&mu_);
  if (stopping_.load(std::memory_order_acquire)) return false;
  conns_.emplace(conn->id, ConnRef{&conn->idle_since_ns, owner, conn->fd});
  if (open_connections_ != nullptr) open_connections_->Add(1);
  if (connections_total_ != nullptr) connections_total_->Increment();
  return true;
}

void ServerCore::Deregister(uint64_t id) {
  MutexLock lock(&mu_);
  if (conns_.erase(id) == 0) return;
  if (open_connections_ != nullptr) open_connections_->Add(-1);
  if (conns_.empty()) conns_changed_.SignalAll();
}

bool ServerCore::MakeRoom() {
  MutexLock lock(&mu_);
  if (static_cast<int64_t>(conns_.size()) < max_connections_) return true;
  // At the cap the connection idle longest makes room (it closes on its own thread, so the count
  // may briefly exceed the cap by the connections being closed); without one the newcomer is
  // refused. Claiming its idle mark means one close is never spent twice on the same connection.
  for (int attempt = 0; attempt < 4; ++attempt) {  // its thread may wake the one picked
    uint64_t oldest = 0;
    const ConnRef* oldest_ref = nullptr;
    int64_t oldest_since = 0;
    for (const auto& [id, ref] : conns_) {
      const int64_t since = ref.idle_since_ns->load(std::memory_order_relaxed);
      if (since != 0 && (oldest_ref == nullptr || since < oldest_since)) {
        oldest = id;
        oldest_ref = &ref;
        oldest_since = since;
      }
    }
    if (oldest_ref == nullptr) return false;
    int64_t expected = oldest_since;
    if (!oldest_ref->idle_since_ns->compare_exchange_strong(expected, 0,
                                                            std::memory_order_relaxed)) {
      continue;
    }
    Mail mail;
    mail.kind = Mail::Kind::kCloseIdle;
    mail.conn = oldest;
    oldest_ref->owner->Post(std::move(mail));
    if (idle_closed_at_cap_ != nullptr) idle_closed_at_cap_->Increment();
    return true;
  }
  return false;
}

void ServerCore::Refuse(int fd) {
  static constexpr char kBody[] =
      "{\"error\":{\"code\":503,\"message\":\"too many open connections; retry shortly\"}}";
  static const std::string response = absl::StrCat(
      "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
      "Connection: close\r\nContent-Length: ",
      sizeof(kBody) - 1, "\r\n\r\n", kBody);
  // A new socket's send buffer is empty: this small write completes at once, or is dropped.
  [[maybe_unused]] const ssize_t n = send(fd, response.data(), response.size(), MSG_NOSIGNAL);
  shutdown(fd, SHUT_RDWR);
  close(fd);
  if (connections_refused_ != nullptr) connections_refused_->Increment();
  LogRateLimited(true, absl::StrCat("http: ", max_connections_,
                                    " connections open and none idle: refusing new ones with 503 "
                                    "(serve.max_connections)"));
}

bool ServerCore::WaitForNoConnections(absl::Duration timeout) {
  const Clock::time_point deadline = Clock::now() + absl::ToChronoNanoseconds(timeout);
  MutexLock lock(&mu_);
  while (!conns_.empty()) {
    const Clock::duration left = deadline - Clock::now();
    if (left <= Clock::duration::zero()) return false;
    conns_changed_.WaitFor(&mu_, absl::FromChrono(left));
  }
  return true;
}

void ServerCore::PostToAll(Mail::Kind kind) {
  for (const std::unique_ptr<IoThread>& t : threads_) {
    Mail mail;
    mail.kind = kind;
    t->Post(std::move(mail));
  }
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
    // Idle connections end now, even on a thread held by a handler that blocks: shutting a
    // socket down from here is safe while its owner has it registered, and the owner closes it
    // when it sees the end of the stream.
    for (const auto& [id, ref] : conns_) {
      int64_t since = ref.idle_since_ns->load(std::memory_order_relaxed);
      if (since != 0 &&
          ref.idle_since_ns->compare_exchange_strong(since, 0, std::memory_order_relaxed)) {
        shutdown(ref.fd, SHUT_RDWR);
      }
    }
  }
  // Stop accepting; idle connections close, busy ones after their response.
  PostToAll(Mail::Kind::kShutdown);
  if (!WaitForNoConnections(options_.stop_timeout)) {
    LogWarning("http: requests still running at stop_timeout; closing their connections");
    PostToAll(Mail::Kind::kForceClose);
    WaitForNoConnections(absl::Seconds(2));
  }
  PostToAll(Mail::Kind::kExit);
  for (const std::unique_ptr<IoThread>& t : threads_) t->Join();
  for (const std::unique_ptr<IoThread>& t : threads_) t->CloseUnadopted();
  threads_.clear();
  close(listen_fd_);
  listen_fd_ = -1;
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
