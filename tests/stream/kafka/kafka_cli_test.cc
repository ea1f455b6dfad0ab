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
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "tests/common/free_port.h"
#include "tests/freshet_binary.h"
#include "tests/stream/kafka/kafka_test_util.h"

namespace freshet::stream {
namespace {


using freshet::testing::Freshet;
using freshet::testing::kFreshet;
using freshet::testing::Result;

// `freshet broker ARGS` as a child process whose stdout the test reads.
class BrokerProcess {
 public:
  explicit BrokerProcess(const std::vector<std::string>& args) {
    int out[2];
    if (pipe(out) != 0) return;
    pid_ = fork();
    if (pid_ == 0) {
      dup2(out[1], STDOUT_FILENO);
      close(out[0]);
      close(out[1]);
      std::vector<char*> argv = {const_cast<char*>(kFreshet.c_str()), const_cast<char*>("broker")};
      for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      execv(kFreshet.c_str(), argv.data());
      _exit(127);
    }
    close(out[1]);
    stdout_ = out[0];
  }

  ~BrokerProcess() {
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

 private:
  pid_t pid_ = -1;
  int stdout_ = -1;
};

std::string WriteSmallLog(int lines) {
  // One file per test (CTest runs tests in parallel, each in its own process).
  const std::string path = ::testing::TempDir() + "/freshet_kafka_cli_" +
                           ::testing::UnitTest::GetInstance()->current_test_info()->name() + "_" +
                           std::to_string(lines) + "_" + std::to_string(getpid()) + ".data";
  std::ofstream out(path);
  for (int i = 0; i < lines; ++i) {
    out << (i % 13) + 1 << '\t' << (i % 29) + 1 << '\t' << 3 << '\t' << 880000000 + i << '\n';
  }
  return path;
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
