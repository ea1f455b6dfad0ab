// Two `freshet serve` processes (the real binary) on the CPU as one replica group: each consumes
// its share of a topic's partitions and learns its own users, the two exchange item-model changes
// over a Kafka topic on the same development broker, stopping one stops both cleanly, and both
// data directories end with the same item model.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "stream/event.h"
#include "stream/kafka/dev_broker.h"
#include "stream/kafka/kafka_producer.h"
#include "tests/freshet_binary.h"

namespace freshet::engine {
namespace {

using freshet::testing::Freshet;
using freshet::testing::kFreshet;
using stream::DevBroker;
using stream::Event;
using stream::KafkaProducer;
using stream::KafkaProducerOptions;

// `freshet serve ARGS` in the background, its output in `log`.
class ServeProcess {
 public:
  ServeProcess(const std::string& args, const std::string& log) {
    pid_ = fork();
    if (pid_ == 0) {
      execl("/bin/sh", "sh", "-c",
            ("exec " + kFreshet + " serve " + args + " >" + log + " 2>&1").c_str(), nullptr);
      _exit(127);
    }
  }
  ~ServeProcess() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  // Sends `signal` (0: none) and waits for the exit code (-1 unless it exited normally).
  int Wait(int signal) {
    if (signal != 0) kill(pid_, signal);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

 private:
  pid_t pid_ = -1;
};

std::string ReadAll(const std::string& path) {
  std::string out;
  if (std::FILE* f = std::fopen(path.c_str(), "r")) {
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) out.append(buf, n);
    std::fclose(f);
  }
  return out;
}

// The value of an unlabelled metric of the server whose stdout (log) announced "http=ADDR", or -1.
double Metric(const std::string& log, const std::string& name) {
  const std::string out = ReadAll(log);
  const size_t at = out.find("http=");
  if (at == std::string::npos) return -1;
  const std::string address = out.substr(at + 5, out.find('\n', at) - at - 5);
  std::FILE* pipe = popen(("curl -sf http://" + address + "/metrics").c_str(), "r");
  if (pipe == nullptr) return -1;
  std::string text;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), pipe)) > 0) text.append(buf, n);
  pclose(pipe);
  const size_t line = text.find("\n" + name + " ");
  double value = -1;
  if (line == std::string::npos) return -1;
  const size_t start = line + name.size() + 2;
  return absl::SimpleAtod(text.substr(start, text.find('\n', start) - start), &value) ? value : -1;
}

// An item's "vector_norm" in a data directory, as `freshet inspect` prints it ("" if unknown).
std::string Norm(const std::string& dir, const std::string& item) {
  const testing::Result r = Freshet("inspect --json --data-dir " + dir + " --item " + item);
  const size_t at = r.output.find("\"vector_norm\"");
  if (r.exit_code != 0 || at == std::string::npos) return "";
  return r.output.substr(at, r.output.find_first_of(",}", at) - at);
}

TEST(KafkaReplicasTest, TwoServeProcessesOnTheCpuEndWithOneItemModel) {
  auto broker = DevBroker::Start();
  ASSERT_TRUE(broker.ok()) << broker.status();
  const std::string brokers = (*broker)->bootstrap_servers();
  ASSERT_TRUE((*broker)->CreateTopic("clicks", 4).ok());
  constexpr int kEvents = 6000, kItems = 60;
  {
    KafkaProducerOptions options;
    options.brokers = brokers;
    auto producer = KafkaProducer::Create(options);
    ASSERT_TRUE(producer.ok()) << producer.status();
    for (int i = 0; i < kEvents; ++i) {
      Event e;
      e.user = absl::StrCat("u", (i * 37) % 200);
      e.item = absl::StrCat("i", (i * 13 + i / 7) % kItems);
      e.ts_ms = 1'700'000'000'000 + i;
      ASSERT_TRUE((*producer)->ProduceEvent("clicks", e).ok());
    }
    ASSERT_TRUE((*producer)->Flush(absl::Seconds(20)).ok());
  }
  const std::string dir = absl::StrCat(::testing::TempDir(), "/freshet_kafka_replicas_", getpid());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  std::vector<std::unique_ptr<ServeProcess>> ranks;
  for (int r = 0; r < 2; ++r) {
    ranks.push_back(std::make_unique<ServeProcess>(
        absl::StrCat("--brokers ", brokers, " --topic clicks --group replicas --data-dir ", dir,
                     "/state", r, " --port 0 --status-interval 0 --set model.dim=16",
                     " --set replicas.world_size=2 --set replicas.rank=", r,
                     " --set replicas.rendezvous=exchange-", getpid(),
                     " --set replicas.sync_ms=20"),
        absl::StrCat(dir, "/log", r)));
  }
  // Until the two ranks have learnt every event between them (each from its own partitions).
  double applied[2] = {0, 0};
  for (int i = 0; i < 600 && applied[0] + applied[1] < kEvents; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    for (int r = 0; r < 2; ++r)
      applied[r] = Metric(absl::StrCat(dir, "/log", r), "freshet_events_applied");
  }
  EXPECT_EQ(applied[0] + applied[1], kEvents);
  EXPECT_GT(applied[0], 0);
  EXPECT_GT(applied[1], 0);
  for (int r = 0; r < 2; ++r) {
    EXPECT_GT(Metric(absl::StrCat(dir, "/log", r), "freshet_replica_exchanges"), 1) << r;
  }
  // Stopping rank 1 stops rank 0 at its next exchange; both write their state and exit 0.
  EXPECT_EQ(ranks[1]->Wait(SIGTERM), 0) << ReadAll(dir + "/log1");
  EXPECT_EQ(ranks[0]->Wait(0), 0) << ReadAll(dir + "/log0");
  EXPECT_NE(ReadAll(dir + "/log0").find("another rank is stopping"), std::string::npos);
  for (int item = 0; item < kItems; ++item) {
    const std::string id = absl::StrCat("i", item);
    const std::string norm = Norm(dir + "/state0", id);
    EXPECT_NE(norm, "") << id;
    EXPECT_EQ(Norm(dir + "/state1", id), norm) << id;
  }
  if (!HasFailure()) std::filesystem::remove_all(dir);  // kept to look at when it failed
}

}  // namespace
}  // namespace freshet::engine
