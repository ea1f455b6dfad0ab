// `freshet broker`: a local development broker — librdkafka's mock cluster on loopback. See
// stream/kafka/dev_broker.h for what it is and is not.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "cli/common_flags.h"
#include "cli/kafka_commands.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "stream/kafka/dev_broker.h"

namespace freshet::cli {
namespace {

// Listens on 127.0.0.1:`port` and relays every connection to the mock cluster's bootstrap
// address, so that clients can be configured with a fixed port. Only bootstrap connections pass
// through it: the metadata they receive names the broker's own (random) loopback port.
// Not thread-safe; Stop() (or the destructor) joins the relay thread.
class BootstrapRelay {
 public:
  // Listens and starts the relay thread.
  static absl::StatusOr<std::unique_ptr<BootstrapRelay>> Start(int port, int target_port) {
    std::unique_ptr<BootstrapRelay> relay(new BootstrapRelay(target_port));
    relay->listener_ = socket(AF_INET, SOCK_STREAM, 0);
    if (relay->listener_ < 0) return Errno("socket");
    const int one = 1;
    setsockopt(relay->listener_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in addr = Loopback(port);
    if (bind(relay->listener_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      return Errno(absl::StrCat("binding 127.0.0.1:", port));
    }
    if (listen(relay->listener_, 64) != 0) return Errno("listen");
    if (pipe(relay->wake_) != 0) return Errno("pipe");
    relay->thread_ = std::thread([r = relay.get()] { r->Run(); });
    return relay;
  }

  ~BootstrapRelay() {
    Stop();
    for (const Pair& p : pairs_) {
      close(p.client);
      close(p.broker);
    }
    for (int fd : {listener_, wake_[0], wake_[1]}) {
      if (fd >= 0) close(fd);
    }
  }

  // Wakes and joins the relay thread; idempotent. Its connections stay open until destruction.
  void Stop() {
    if (!thread_.joinable()) return;
    const char byte = 0;
    if (write(wake_[1], &byte, 1) < 0) LogWarning("bootstrap relay: cannot wake the relay");
    thread_.join();
  }

 private:
  struct Pair {
    int client;
    int broker;
  };

  explicit BootstrapRelay(int target_port) : target_port_(target_port) {}

  static sockaddr_in Loopback(int port) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return addr;
  }

  static absl::Status Errno(const std::string& what) {
    return absl::UnavailableError(absl::StrCat("broker: ", what, ": ", std::strerror(errno)));
  }

  // Copies what is readable on `from` to `to`; false when the connection is finished.
  static bool Relay(int from, int to) {
    char buf[65536];
    const ssize_t n = read(from, buf, sizeof(buf));
    if (n <= 0) return false;
    for (ssize_t done = 0; done < n;) {
      const ssize_t w = send(to, buf + done, static_cast<size_t>(n - done), MSG_NOSIGNAL);
      if (w <= 0) return false;
      done += w;
    }
    return true;
  }

  void Run() {
    while (true) {
      std::vector<pollfd> fds = {{wake_[0], POLLIN, 0}, {listener_, POLLIN, 0}};
      for (const Pair& p : pairs_) {
        fds.push_back({p.client, POLLIN, 0});
        fds.push_back({p.broker, POLLIN, 0});
      }
      if (poll(fds.data(), fds.size(), -1) < 0) {
        if (errno == EINTR) continue;
        return;
      }
      if (fds[0].revents != 0) return;
      if (fds[1].revents & POLLIN) Accept();
      std::vector<Pair> alive;
      for (size_t i = 0; i < pairs_.size(); ++i) {
        const pollfd& c = fds[2 + 2 * i];
        const pollfd& b = fds[3 + 2 * i];
        bool ok = true;
        if (c.revents != 0) ok = Relay(pairs_[i].client, pairs_[i].broker);
        if (ok && b.revents != 0) ok = Relay(pairs_[i].broker, pairs_[i].client);
        if (ok) {
          alive.push_back(pairs_[i]);
        } else {
          close(pairs_[i].client);
          close(pairs_[i].broker);
        }
      }
      pairs_ = std::move(alive);
    }
  }

  void Accept() {
    const int client = accept(listener_, nullptr, nullptr);
    if (client < 0) return;
    const int broker = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr = Loopback(target_port_);
    if (broker < 0 || connect(broker, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      LogWarning(absl::StrCat("bootstrap relay: cannot reach the broker: ", std::strerror(errno)));
      close(client);
      if (broker >= 0) close(broker);
      return;
    }
    pairs_.push_back({client, broker});
  }

  const int target_port_;
  int listener_ = -1;
  int wake_[2] = {-1, -1};
  std::vector<Pair> pairs_;  // touched only by the relay thread once it runs
  std::thread thread_;
};

// The port of "127.0.0.1:PORT" (the mock cluster's bootstrap list with one broker).
absl::StatusOr<int> BootstrapPort(const std::string& bootstrap) {
  const size_t colon = bootstrap.rfind(':');
  int port = 0;
  if (colon == std::string::npos ||
      !absl::SimpleAtoi(absl::string_view(bootstrap).substr(colon + 1), &port)) {
    return absl::InternalError(absl::StrCat("broker: unexpected bootstrap list ", bootstrap));
  }
  return port;
}

absl::Status Broker(const BrokerFlags& flags) {
  if (flags.partitions < 1) return absl::InvalidArgumentError("--partitions must be >= 1");
  if (flags.port < 0 || flags.port > 65535) {
    return absl::InvalidArgumentError("--port must be in [0, 65535]");
  }
  // Block the stop signals before any thread starts (librdkafka's included), so that only
  // sigwait below receives them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  FRESHET_ASSIGN_OR_RETURN(std::unique_ptr<stream::DevBroker> broker, stream::DevBroker::Start());
  for (const std::string& topic : flags.topics) {
    if (topic.empty()) continue;
    FRESHET_RETURN_IF_ERROR(broker->CreateTopic(topic, flags.partitions));
  }
  std::string bootstrap = broker->bootstrap_servers();
  std::unique_ptr<BootstrapRelay> relay;
  if (flags.port != 0) {
    FRESHET_ASSIGN_OR_RETURN(const int target, BootstrapPort(bootstrap));
    FRESHET_ASSIGN_OR_RETURN(relay, BootstrapRelay::Start(flags.port, target));
    bootstrap = absl::StrCat("127.0.0.1:", flags.port);
  }
  std::printf("bootstrap=%s\n", bootstrap.c_str());
  std::fflush(stdout);
  LogInfo(absl::StrCat("development broker (librdkafka mock cluster, in memory, not durable) at ",
                       bootstrap, "; stop with Ctrl-C or SIGTERM"));
  int signal_number = 0;
  sigwait(&stop_signals, &signal_number);
  LogInfo(absl::StrCat("broker: signal ", signal_number, ", stopping"));
  relay.reset();
  broker.reset();
  return absl::OkStatus();
}

}  // namespace

int RunBroker(const BrokerFlags& flags) {
  const absl::Status status = Broker(flags);
  if (!status.ok()) {
    PrintError(status);
    return 1;
  }
  return 0;
}

}  // namespace freshet::cli
