// A real redis-server for tests: started on a free loopback port, without persistence, and
// killed when the fixture goes away.
#ifndef FRESHET_TESTS_COMMON_REDIS_SERVER_H_
#define FRESHET_TESTS_COMMON_REDIS_SERVER_H_

#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <signal.h>
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
  bool Ping() const {
    const timeval timeout{0, 200'000};
    redisContext* c = redisConnectWithTimeout("127.0.0.1", port_, timeout);
    bool pong = false;
    if (c != nullptr && c->err == 0) {
      auto* reply = static_cast<redisReply*>(redisCommand(c, "PING"));
      pong = reply != nullptr && reply->type == REDIS_REPLY_STATUS;
      if (reply != nullptr) freeReplyObject(reply);
    }
    if (c != nullptr) redisFree(c);
    return pong;
  }

  int port_ = -1;
  pid_t pid_ = -1;
  bool ok_ = false;
};

}  // namespace freshet::testing

#endif  // FRESHET_TESTS_COMMON_REDIS_SERVER_H_
