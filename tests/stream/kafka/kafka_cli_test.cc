// End-to-end tests of `freshet broker` and `freshet produce` (the real binary).
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "tests/common/free_port.h"
#include "tests/freshet_binary.h"
#include "tests/stream/kafka/kafka_test_util.h"
#include "tests/stream/temp_files.h"

namespace freshet::stream {
namespace {

using freshet::testing::Freshet;
using freshet::testing::kFreshet;
using freshet::testing::Result;

// `freshet COMMAND ARGS` as a child process whose stdout the test reads.
class FreshetProcess {
 public:
  FreshetProcess(const std::string& command, const std::vector<std::string>& args) {
    int out[2];
    if (pipe(out) != 0) return;
    pid_ = fork();
    if (pid_ == 0) {
      dup2(out[1], STDOUT_FILENO);
      close(out[0]);
      close(out[1]);
      std::vector<char*> argv = {const_cast<char*>(kFreshet.c_str()),
                                 const_cast<char*>(command.c_str())};
      for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      execv(kFreshet.c_str(), argv.data());
      _exit(127);
    }
    close(out[1]);
    stdout_ = out[0];
  }

  ~FreshetProcess() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (stdout_ >= 0) close(stdout_);
  }

  // The first stdout line, waiting up to 10 s; empty on timeout or end of output.
  std::string ReadLine() {
    std::string line;
    char c;
    while (true) {
      pollfd fd = {stdout_, POLLIN, 0};
      if (poll(&fd, 1, 10000) <= 0) return "";
      if (read(stdout_, &c, 1) != 1) return "";
      if (c == '\n') return line;
      line.push_back(c);
    }
  }

  // Sends `signal` and returns the exit code (-1 unless it exited normally).
  int Stop(int signal) {
    kill(pid_, signal);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

  // Sends `signal` and waits up to `limit` for the exit: its code, or -2 when it did not exit in
  // time (it is then killed).
  int StopWithin(int signal, absl::Duration limit) {
    kill(pid_, signal);
    const absl::Time deadline = absl::Now() + limit;
    int status = 0;
    while (waitpid(pid_, &status, WNOHANG) == 0) {
      if (absl::Now() > deadline) return -2;  // the destructor kills it
      absl::SleepFor(absl::Milliseconds(20));
    }
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

 private:
  pid_t pid_ = -1;
  int stdout_ = -1;
};

class BrokerProcess : public FreshetProcess {
 public:
  explicit BrokerProcess(const std::vector<std::string>& args) : FreshetProcess("broker", args) {}
};

// The body of GET `path` from 127.0.0.1:`port` (HTTP/1.0), or "" when it cannot be had.
std::string HttpGet(int port, const std::string& path) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return "";
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string response;
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    const std::string request = "GET " + path + " HTTP/1.0\r\n\r\n";
    if (write(fd, request.data(), request.size()) == static_cast<ssize_t>(request.size())) {
      char buffer[4096];
      ssize_t n;
      while ((n = read(fd, buffer, sizeof(buffer))) > 0) response.append(buffer, n);
    }
  }
  close(fd);
  const size_t body = response.find("\r\n\r\n");
  return body == std::string::npos ? "" : response.substr(body + 4);
}

// The value of the Prometheus sample `name` (no labels) in `metrics`, or -1.
double Metric(const std::string& metrics, const std::string& name) {
  for (absl::string_view line : absl::StrSplit(metrics, '\n')) {
    if (absl::StartsWith(line, name + " ")) {
      double value = -1;
      if (absl::SimpleAtod(line.substr(name.size() + 1), &value)) return value;
    }
  }
  return -1;
}

std::string WriteSmallLog(int lines) {
  // One file per test (CTest runs tests in parallel, each in its own process), removed at exit.
  std::string log;
  for (int i = 0; i < lines; ++i) {
    log += absl::StrCat((i % 13) + 1, "\t", (i % 29) + 1, "\t", 3, "\t", 880000000 + i, "\n");
  }
  return testing::WriteTempFile("kafka_cli", absl::StrCat(lines, ".data"), log);
}

TEST(KafkaCliTest, BrokerPrintsItsAddressAndProduceWritesEveryEvent) {
  BrokerProcess broker({"--topics", "ratings,other", "--partitions", "1"});
  const std::string line = broker.ReadLine();
  ASSERT_TRUE(absl::StartsWith(line, "bootstrap=127.0.0.1:")) << line;
  const std::string brokers = line.substr(std::string("bootstrap=").size());

  const std::string data = WriteSmallLog(150);
  const Result r = Freshet("produce --brokers " + brokers + " --topic ratings --data " + data +
                           " --format movielens-100k --partitions 1 --quiet");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("all acknowledged"), std::string::npos) << r.output;

  const std::vector<testing::RawMessage> messages = testing::ReadRaw(brokers, "ratings", 0, 150);
  ASSERT_EQ(messages.size(), 150u);
  // Replay order is time order, which is file order here; keyed by user.
  EXPECT_EQ(messages[0].key, "1");
  EXPECT_EQ(messages[0].value,
            R"({"user":"1","item":"1","type":"rating","ts":880000000000,"weight":1})");
  EXPECT_EQ(messages[149].key, std::to_string(149 % 13 + 1));

  EXPECT_EQ(broker.Stop(SIGTERM), 0);
}

TEST(KafkaCliTest, BrokerServesAFixedPort) {
  const int port = freshet::testing::FreeLoopbackPort();
  ASSERT_GT(port, 0);
  BrokerProcess broker({"--topics", "fixed", "--partitions", "1", "--port", std::to_string(port)});
  const std::string brokers = "127.0.0.1:" + std::to_string(port);
  ASSERT_EQ(broker.ReadLine(), "bootstrap=" + brokers);
  const Result r = Freshet("produce --brokers " + brokers + " --topic fixed --data " +
                           WriteSmallLog(30) + " --format movielens-100k --quiet");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(testing::ReadRaw(brokers, "fixed", 0, 30).size(), 30u);
  EXPECT_EQ(broker.Stop(SIGTERM), 0);
}

TEST(KafkaCliTest, BrokerStopsCleanlyOnSigint) {
  BrokerProcess broker({});
  ASSERT_TRUE(absl::StartsWith(broker.ReadLine(), "bootstrap=127.0.0.1:"));
  EXPECT_EQ(broker.Stop(SIGINT), 0);
}

TEST(KafkaCliTest, ServeExitsPromptlyOnSigtermWithTheBrokerDown) {
  auto broker = std::make_unique<BrokerProcess>(
      std::vector<std::string>{"--topics", "clicks", "--partitions", "2"});
  const std::string line = broker->ReadLine();
  ASSERT_TRUE(absl::StartsWith(line, "bootstrap=127.0.0.1:")) << line;
  const std::string brokers = line.substr(std::string("bootstrap=").size());
  ASSERT_EQ(Freshet("produce --brokers " + brokers + " --topic clicks --data " +
                    WriteSmallLog(300) + " --format movielens-100k --quiet")
                .exit_code,
            0);
  const std::string dir = ::testing::TempDir() + "/freshet_sigterm_" + std::to_string(getpid());
  std::filesystem::remove_all(dir);
  FreshetProcess serve(
      "serve", {"--brokers", brokers, "--topic", "clicks", "--group", "sigterm", "--data-dir", dir,
                "--port", "0", "--status-interval", "0", "--set", "store.flush_interval_ms=50"});
  std::string http;
  for (int i = 0; i < 20 && http.empty(); ++i) {
    const std::string out = serve.ReadLine();
    if (absl::StartsWith(out, "http=")) http = out.substr(5);
  }
  ASSERT_FALSE(http.empty()) << "serve did not print its address";
  int port = 0;
  ASSERT_TRUE(absl::SimpleAtoi(http.substr(http.rfind(':') + 1), &port)) << http;
  // Everything learnt and stored: the final flush and the group-offset commit have positions to
  // write once the broker is gone.
  double persisted = -1;
  for (int i = 0; i < 300 && persisted < 300; ++i) {
    persisted = Metric(HttpGet(port, "/metrics"), "freshet_events_persisted");
    if (persisted < 300) absl::SleepFor(absl::Milliseconds(100));
  }
  ASSERT_EQ(persisted, 300);

  EXPECT_EQ(broker->Stop(SIGKILL), -1);  // the broker dies (killed: no normal exit)
  broker.reset();
  absl::SleepFor(absl::Seconds(2));  // the client notices
  // Neither committing offsets nor leaving the group may hold the exit: it waited for the broker
  // (46-77 s, or for ever) when the commit was synchronous on the learning thread.
  EXPECT_EQ(serve.StopWithin(SIGTERM, absl::Seconds(10)), 0);
  if (!HasFailure()) std::filesystem::remove_all(dir);  // kept to look at when it failed
}

TEST(KafkaCliTest, ProduceToAnUnreachableBrokerFails) {
  const std::string data = WriteSmallLog(20);
  const Result r = Freshet("produce --brokers 127.0.0.1:1 --topic t --data " + data +
                           " --format movielens-100k --quiet --property message.timeout.ms=1000");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("20 messages were not acknowledged by 127.0.0.1:1"), std::string::npos)
      << r.output;
}

TEST(KafkaCliTest, ProduceRejectsABadProperty) {
  const std::string data = WriteSmallLog(5);
  const Result r = Freshet("produce --brokers 127.0.0.1:1 --topic t --data " + data +
                           " --format movielens-100k --property no.such.key=1");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("no.such.key"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace freshet::stream
