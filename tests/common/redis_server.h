// A real redis-server for tests: started on a free loopback port, without persistence, and
// killed when the fixture goes away.
#ifndef FRESHET_TESTS_COMMON_REDIS_SERVER_H_
#define FRESHET_TESTS_COMMON_REDIS_SERVER_H_

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>

#include "tests/common/free_port.h"

namespace freshet::testing {

class RedisServer {
 public:
  // Starts redis-server (found on PATH) on a free port, or on `port` when it is > 0; ok() says
  // whether it answers.
  explicit RedisServer(int port = 0) {
    for (int attempt = 0; attempt < 5 && !ok_; ++attempt) {
      port_ = port > 0 ? port : FreeLoopbackPort();
      if (port_ <= 0) continue;
      pid_ = fork();
      if (pid_ == 0) {
        const int null = open("/dev/null", O_WRONLY);  // its start-up banner and warnings
        if (null >= 0) {
          dup2(null, STDOUT_FILENO);
          dup2(null, STDERR_FILENO);
        }
        const std::string port = std::to_string(port_);
        execlp("redis-server", "redis-server", "--port", port.c_str(), "--bind", "127.0.0.1",
               "--save", "", "--appendonly", "no", "--loglevel", "warning", nullptr);
        _exit(127);
      }
      for (int i = 0; i < 200 && !ok_; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
        ok_ = Ping();
        if (!ok_ && waitpid(pid_, nullptr, WNOHANG) == pid_) break;  // exited: port taken?
      }
      if (!ok_) Stop();
    }
  }
  ~RedisServer() { Stop(); }
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  bool ok() const { return ok_; }
  int port() const { return port_; }
  // "redis://127.0.0.1:PORT/" + key
  std::string Location(const std::string& key) const {
    return "redis://127.0.0.1:" + std::to_string(port_) + "/" + key;
  }
  // Kills the server (e.g. to test an outage); ok() turns false.
  void Stop() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
    ok_ = false;
  }

 private:
  // PING in the inline protocol over a plain socket (no client library needed): "+PONG".
  bool Ping() const {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return false;
    const timeval timeout{0, 200'000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port_));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool pong = false;
    if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
        write(fd, "PING\r\n", 6) == 6) {
      char reply[8] = {};
      pong = read(fd, reply, 5) == 5 && std::string(reply, 5) == "+PONG";
    }
    close(fd);
    return pong;
  }

  int port_ = -1;
  pid_t pid_ = -1;
  bool ok_ = false;
};

}  // namespace freshet::testing

#endif  // FRESHET_TESTS_COMMON_REDIS_SERVER_H_
