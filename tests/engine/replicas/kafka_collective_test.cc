// The replicas' exchange over a Kafka topic (engine/replicas/kafka_collective.h) against the
// development broker: every rank gets every rank's message of every exchange, in rank order,
// whatever its size (chunked) and however far ahead one rank runs; a missing rank is a timeout
// that breaks the group; bad options are refused.
#include "engine/replicas/kafka_collective.h"

#include <unistd.h>

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "stream/kafka/dev_broker.h"

namespace freshet::engine {
namespace {

using stream::DevBroker;

std::unique_ptr<Collective> Rank(const DevBroker& broker, const std::string& topic, int rank,
                                 int world, absl::Duration timeout) {
  KafkaCollectiveOptions o;
  o.brokers = broker.bootstrap_servers();
  o.topic = topic;
  o.rank = rank;
  o.world_size = world;
  o.timeout = timeout;
  auto c = NewKafkaCollective(o);
  EXPECT_TRUE(c.ok()) << c.status();
  return c.ok() ? *std::move(c) : nullptr;
}

// Rank r's message for exchange n: sizes vary from empty to several chunks.
std::string Message(int r, int n) {
  const size_t size = (n % 4 == 3) ? 0 : (n % 5 == 0 ? 1'300'000 + r : 100 * r + n);
  std::string out(size, '\0');
  for (size_t i = 0; i < size; ++i) out[i] = static_cast<char>(i * 31 + r * 7 + n);
  return out;
}

TEST(KafkaCollectiveTest, EveryRankGetsEveryMessageOfEveryExchange) {
  auto broker = DevBroker::Start();
  ASSERT_TRUE(broker.ok()) << broker.status();
  const std::string topic = absl::StrCat("replicas-", getpid());
  constexpr int kRanks = 3, kExchanges = 12;
  std::vector<std::unique_ptr<Collective>> ranks;
  for (int r = 0; r < kRanks; ++r) {
    ranks.push_back(Rank(**broker, topic, r, kRanks, absl::Seconds(30)));
    ASSERT_NE(ranks.back(), nullptr);
    EXPECT_EQ(ranks.back()->rank(), r);
    EXPECT_EQ(ranks.back()->world_size(), kRanks);
  }
  std::vector<std::string> failures(kRanks);
  std::vector<std::thread> threads;
  for (int r = 0; r < kRanks; ++r) {
    threads.emplace_back([&, r] {
      for (int n = 0; n < kExchanges; ++n) {
        // Rank 2 runs late: the others' messages for later exchanges wait for it in the topic.
        if (r == 2 && n == 0) std::this_thread::sleep_for(std::chrono::milliseconds(300));
        absl::StatusOr<std::vector<std::string>> all = ranks[r]->AllGather(Message(r, n));
        if (!all.ok()) {
          failures[r] = absl::StrCat("exchange ", n, ": ", all.status().ToString());
          return;
        }
        for (int from = 0; from < kRanks; ++from) {
          if ((*all)[from] != Message(from, n)) {
            failures[r] = absl::StrCat("exchange ", n, ": wrong message from rank ", from);
            return;
          }
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  for (int r = 0; r < kRanks; ++r) EXPECT_EQ(failures[r], "") << "rank " << r;
}

TEST(KafkaCollectiveTest, AMissingRankIsATimeoutAndBreaksTheGroup) {
  auto broker = DevBroker::Start();
  ASSERT_TRUE(broker.ok()) << broker.status();
  // The topic exists beforehand, so the short timeout is spent waiting for rank 1, not on the
  // topic's creation by the first write.
  const std::string topic = absl::StrCat("replicas-missing-", getpid());
  ASSERT_TRUE((*broker)->CreateTopic(topic, 1).ok());
  std::unique_ptr<Collective> alone = Rank(**broker, topic, 0, 2, absl::Milliseconds(1500));
  ASSERT_NE(alone, nullptr);
  absl::StatusOr<std::vector<std::string>> all = alone->AllGather("hello");
  EXPECT_EQ(all.status().code(), absl::StatusCode::kDeadlineExceeded) << all.status();
  EXPECT_NE(all.status().message().find("rank(s) 1"), std::string::npos) << all.status();
  all = alone->AllGather("again");
  EXPECT_EQ(all.status().code(), absl::StatusCode::kFailedPrecondition) << all.status();
}

// Options from a broker list, a topic, a rank and a world size.
KafkaCollectiveOptions Options(std::string brokers, std::string topic, int rank, int world) {
  KafkaCollectiveOptions o;
  o.brokers = std::move(brokers);
  o.topic = std::move(topic);
  o.rank = rank;
  o.world_size = world;
  return o;
}

TEST(KafkaCollectiveTest, BadOptionsAreRefused) {
  const std::string brokers = "127.0.0.1:1";
  EXPECT_EQ(NewKafkaCollective(Options({}, "t", 0, 1)).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(NewKafkaCollective(Options(brokers, {}, 0, 1)).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(NewKafkaCollective(Options(brokers, "t", 2, 2)).status().code(),
            absl::StatusCode::kInvalidArgument);
  KafkaCollectiveOptions unknown = Options(brokers, "t", 0, 1);
  unknown.properties.emplace("no.such.property", "1");
  EXPECT_EQ(NewKafkaCollective(unknown).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace freshet::engine
