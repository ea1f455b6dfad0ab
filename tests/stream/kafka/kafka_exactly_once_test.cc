// Exactly-once ingestion across rebalances: MovieLens 100K in an 8-partition topic, consumed by a
// group whose membership changes mid-stream (a second consumer joins; later one is destroyed and
// a new one created), all feeding one AppliedPositions filter. Every event must be applied
// exactly once.
#include <atomic>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "stream/applied_positions.h"
#include "stream/file_event_source.h"
#include "stream/kafka/dev_broker.h"
#include "stream/kafka/kafka_event_source.h"
#include "stream/kafka/kafka_producer.h"

namespace freshet::stream {
namespace {

const std::string kMovieLens = FRESHET_SOURCE_DIR "/../shared/data/ml-100k/u.data";
constexpr char kTopic[] = "ratings";
constexpr char kGroup[] = "learners";

// What the ingestion loop of a server shares between its consumer threads.
struct Ingestion {
  absl::Mutex mu;
  AppliedPositions applied ABSL_GUARDED_BY(mu);
  absl::flat_hash_map<std::string, int64_t> per_user ABSL_GUARDED_BY(mu);
  int64_t total ABSL_GUARDED_BY(mu) = 0;
  int64_t duplicates ABSL_GUARDED_BY(mu) = 0;
  // Events beyond this total wait in their consumer: the test moves the stream forward in steps
  // so that membership changes happen mid-stream, with events fetched but not yet applied.
  std::atomic<int64_t> limit{0};

  int64_t Total() {
    absl::MutexLock lock(&mu);
    return total;
  }
};

// One group member polled by its own thread until destroyed (a crash loses what it fetched but
// had not applied; its partitions go to the other members).
class Member {
 public:
  Member(const std::string& brokers, Ingestion* ingestion) : ingestion_(ingestion) {
    KafkaSourceOptions options;
    options.brokers = brokers;
    options.group_id = kGroup;
    options.topics = {kTopic};
    // The mock cluster holds a rebalance open for the group's session timeout: keep it short.
    options.properties = {{"session.timeout.ms", "3000"}, {"heartbeat.interval.ms", "300"}};
    auto source = KafkaEventSource::Create(options, [ingestion](int32_t stream, int32_t partition) {
      absl::MutexLock lock(&ingestion->mu);
      return ingestion->applied.Get(stream, partition);
    });
    EXPECT_TRUE(source.ok()) << source.status();
    if (!source.ok()) return;
    source_ = std::move(*source);
    thread_ = std::thread([this] { Run(); });
  }

  ~Member() {
    stop_.store(true);
    if (thread_.joinable()) thread_.join();
  }

  bool ok() const { return source_ != nullptr; }
  int64_t applied() const { return applied_.load(); }
  size_t assigned() const { return source_->AssignedPartitions().size(); }
  bool ever_assigned() const { return ever_assigned_.load(); }

 private:
  void Run() {
    std::vector<Event> pending;
    size_t next = 0;
    while (!stop_.load()) {
      std::vector<Event> polled;
      const absl::Status status = source_->Poll(500, absl::Milliseconds(20), &polled);
      EXPECT_TRUE(status.ok()) << status;
      if (source_->Assigned()) ever_assigned_.store(true);
      pending.insert(pending.end(), std::make_move_iterator(polled.begin()),
                     std::make_move_iterator(polled.end()));
      absl::MutexLock lock(&ingestion_->mu);
      while (next < pending.size() && ingestion_->total < ingestion_->limit.load()) {
        const Event& event = pending[next++];
        if (ingestion_->applied.Accept(event.position)) {
          ++ingestion_->per_user[event.user];
          ++ingestion_->total;
          applied_.fetch_add(1);
        } else {
          ++ingestion_->duplicates;
        }
      }
    }
  }

  Ingestion* const ingestion_;
  std::unique_ptr<KafkaEventSource> source_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> applied_{0};
  std::atomic<bool> ever_assigned_{false};
};

bool WaitFor(const std::function<bool()>& done, absl::Duration deadline = absl::Seconds(60)) {
  const absl::Time end = absl::Now() + deadline;
  while (!done()) {
    if (absl::Now() > end) return false;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return true;
}

TEST(KafkaExactlyOnceTest, EveryEventIsAppliedOnceAcrossRebalancesAndRestarts) {
  if (!std::filesystem::exists(kMovieLens)) GTEST_SKIP() << "no " << kMovieLens;
  FileSourceOptions file_options = *FileSourceOptions::ForFormat("movielens-100k");
  auto file = FileEventSource::Open(kMovieLens, file_options);
  ASSERT_TRUE(file.ok()) << file.status();
  std::vector<Event> ratings;
  ASSERT_TRUE((*file)->Poll(1'000'000, absl::ZeroDuration(), &ratings).ok());
  ASSERT_EQ(ratings.size(), 100000u);
  absl::flat_hash_map<std::string, int64_t> expected;
  for (const Event& e : ratings) ++expected[e.user];

  auto broker = DevBroker::Start();
  ASSERT_TRUE(broker.ok()) << broker.status();
  ASSERT_TRUE((*broker)->CreateTopic(kTopic, 8).ok());
  const std::string brokers = (*broker)->bootstrap_servers();
  {
    auto producer = KafkaProducer::Create({.brokers = brokers, .properties = {}});
    ASSERT_TRUE(producer.ok()) << producer.status();
    for (const Event& e : ratings) ASSERT_TRUE((*producer)->ProduceEvent(kTopic, e).ok());
    ASSERT_TRUE((*producer)->Flush(absl::Seconds(30)).ok());
    ASSERT_EQ((*producer)->delivered(), 100000);
  }

  Ingestion ingestion;
  ingestion.limit.store(30000);
  auto first = std::make_unique<Member>(brokers, &ingestion);
  ASSERT_TRUE(first->ok());
  ASSERT_TRUE(WaitFor([&] { return ingestion.Total() == 30000; }));

  // A second member joins: the group rebalances while the first holds fetched, unapplied events
  // of partitions that move to the second.
  auto second = std::make_unique<Member>(brokers, &ingestion);
  ASSERT_TRUE(second->ok());
  ASSERT_TRUE(WaitFor([&] {
    return second->assigned() > 0 && first->assigned() > 0 &&
           first->assigned() + second->assigned() == 8;
  }));
  ingestion.limit.store(60000);
  ASSERT_TRUE(WaitFor([&] { return ingestion.Total() == 60000; }));

  // The first member goes away with events it fetched but did not apply; a new one starts.
  first.reset();
  auto third = std::make_unique<Member>(brokers, &ingestion);
  ASSERT_TRUE(third->ok());
  ASSERT_TRUE(WaitFor([&] {
    return third->assigned() > 0 && second->assigned() > 0 &&
           second->assigned() + third->assigned() == 8;
  }));
  ingestion.limit.store(1'000'000);
  ASSERT_TRUE(WaitFor([&] { return ingestion.Total() >= 100000; }));
  // Anything re-delivered late must still be dropped.
  absl::SleepFor(absl::Milliseconds(300));
  second.reset();
  third.reset();

  absl::MutexLock lock(&ingestion.mu);
  EXPECT_EQ(ingestion.total, 100000);
  EXPECT_EQ(ingestion.per_user.size(), expected.size());
  for (const auto& [user, count] : expected) {
    const auto it = ingestion.per_user.find(user);
    ASSERT_NE(it, ingestion.per_user.end()) << "user " << user;
    EXPECT_EQ(it->second, count) << "user " << user;
  }
  int64_t applied_offsets = 0;
  for (const auto& [key, offset] : ingestion.applied) applied_offsets += offset + 1;
  EXPECT_EQ(applied_offsets, 100000);  // every partition read to its end, nothing skipped
  std::printf("duplicates dropped: %lld\n", static_cast<long long>(ingestion.duplicates));
}

}  // namespace
}  // namespace freshet::stream
