// KafkaEventSource, KafkaProducer and DevBroker against librdkafka's mock cluster.
#include "stream/kafka/kafka_event_source.h"

#include <librdkafka/rdkafka.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "stream/kafka/dev_broker.h"
#include "stream/kafka/kafka_producer.h"
#include "tests/stream/kafka/kafka_test_util.h"

namespace freshet::stream {
namespace {

using testing::PollUntil;
using testing::ReadRaw;

int64_t NowMs() { return absl::ToUnixMillis(absl::Now()); }

std::unique_ptr<DevBroker> StartBroker() {
  auto broker = DevBroker::Start();
  EXPECT_TRUE(broker.ok()) << broker.status();
  return broker.ok() ? std::move(*broker) : nullptr;
}

std::unique_ptr<KafkaProducer> Producer(const std::string& brokers) {
  auto producer = KafkaProducer::Create({.brokers = brokers, .properties = {}});
  EXPECT_TRUE(producer.ok()) << producer.status();
  return producer.ok() ? std::move(*producer) : nullptr;
}

KafkaSourceOptions SourceOptions(const std::string& brokers, const std::string& group,
                                 std::vector<std::string> topics) {
  KafkaSourceOptions options;
  options.brokers = brokers;
  options.group_id = group;
  options.topics = std::move(topics);
  return options;
}

int64_t NoPositions(int32_t, int32_t) { return -1; }

bool HaveKcat() { return std::system("command -v kcat >/dev/null 2>&1") == 0; }

// Pipes `input` into `kcat -P` (producer mode) with `args`; true on exit status 0.
bool Kcat(const std::string& brokers, const std::string& args, const std::string& input) {
  const std::string command = "kcat -b " + brokers + " -P " + args;
  FILE* pipe = popen(command.c_str(), "w");
  if (pipe == nullptr) return false;
  std::fwrite(input.data(), 1, input.size(), pipe);
  return pclose(pipe) == 0;
}

TEST(KafkaEventSourceTest, RejectsIncompleteOptions) {
  EXPECT_EQ(KafkaEventSource::Create(SourceOptions("", "g", {"t"}), NoPositions).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(KafkaEventSource::Create(SourceOptions("127.0.0.1:1", "", {"t"}), NoPositions)
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      KafkaEventSource::Create(SourceOptions("127.0.0.1:1", "g", {}), NoPositions).status().code(),
      absl::StatusCode::kInvalidArgument);
  KafkaSourceOptions bad_property = SourceOptions("127.0.0.1:1", "g", {"t"});
  bad_property.properties["no.such.property"] = "1";
  const auto source = KafkaEventSource::Create(bad_property, NoPositions);
  EXPECT_EQ(source.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(source.status().message().find("no.such.property"), absl::string_view::npos);
}

TEST(KafkaEventSourceTest, DecodesMessagesWrittenByKcat) {
  if (!HaveKcat()) GTEST_SKIP() << "kcat is not on PATH";
  auto broker = StartBroker();
  ASSERT_NE(broker, nullptr);
  ASSERT_TRUE(broker->CreateTopic("clicks", 1).ok());
  const std::string brokers = broker->bootstrap_servers();
  const int64_t before_ms = NowMs();
  // The value of ARCHITECTURE.md, "Event format"; a keyed value without "user" (integer item);
  // one without "ts".
  ASSERT_TRUE(Kcat(brokers, "-t clicks -p 0",
                   "{\"user\":\"u42\",\"item\":\"sku-9\",\"type\":\"click\","
                   "\"ts\":1700000000123,\"weight\":1.0}\n"));
  ASSERT_TRUE(Kcat(brokers, "-t clicks -p 0 -K '|'",
                   "u7|{\"item\":12,\"type\":\"view\",\"ts\":1700000000999}\n"
                   "u8|{\"item\":\"sku-1\",\"type\":\"purchase\"}\n"));
  const int64_t after_ms = NowMs();

  KafkaSourceOptions options = SourceOptions(brokers, "kcat-group", {"clicks"});
  options.type_weights = {{"click", 2.0f}, {"view", 1.0f}, {"purchase", 8.0f}};
  auto source = KafkaEventSource::Create(options, NoPositions);
  ASSERT_TRUE(source.ok()) << source.status();
  std::vector<Event> events;
  ASSERT_TRUE(PollUntil(source->get(), &events, [&] { return events.size() >= 3; }).ok());
  ASSERT_EQ(events.size(), 3u);

  EXPECT_EQ(events[0].user, "u42");
  EXPECT_EQ(events[0].item, "sku-9");
  EXPECT_EQ(events[0].type, "click");
  EXPECT_EQ(events[0].ts_ms, 1700000000123);
  EXPECT_FLOAT_EQ(events[0].weight, 1.0f);  // the explicit weight wins over click=2
  EXPECT_EQ(events[0].position.stream, 0);
  EXPECT_EQ(events[0].position.partition, 0);
  EXPECT_EQ(events[0].position.offset, 0);

  EXPECT_EQ(events[1].user, "u7");  // from the key
  EXPECT_EQ(events[1].item, "12");
  EXPECT_EQ(events[1].ts_ms, 1700000000999);
  EXPECT_FLOAT_EQ(events[1].weight, 1.0f);
  EXPECT_EQ(events[1].position.offset, 1);

  EXPECT_EQ(events[2].user, "u8");
  EXPECT_FLOAT_EQ(events[2].weight, 8.0f);
  // No "ts": the message timestamp kcat's producer set when it sent it.
  EXPECT_GE(events[2].ts_ms, before_ms - 1000);
  EXPECT_LE(events[2].ts_ms, after_ms + 1000);
  EXPECT_EQ(events[2].position.offset, 2);
  // Every event's arrival (for freshness) is its message's timestamp, whatever its own "ts".
  for (const Event& e : events) {
    EXPECT_GE(e.received_ms, before_ms - 1000);
    EXPECT_LE(e.received_ms, after_ms + 1000);
  }

  EXPECT_EQ((*source)->stats().events, 3);
  EXPECT_EQ((*source)->stats().malformed, 0);
  EXPECT_TRUE((*source)->Assigned());
  const std::vector<PartitionLag> lag = (*source)->Lag();
  ASSERT_EQ(lag.size(), 1u);
  EXPECT_EQ(lag[0].topic, "clicks");
  EXPECT_EQ(lag[0].next_offset, 3);
  EXPECT_EQ(lag[0].high_watermark, 3);
  EXPECT_EQ(lag[0].lag, 0);
  EXPECT_TRUE((*source)->CommitOffsets({events.back().position}).ok());
  EXPECT_EQ(
      (*source)->CommitOffsets({SourcePosition{.stream = 5, .partition = 0, .offset = 1}}).code(),
      absl::StatusCode::kInvalidArgument);
}

TEST(KafkaEventSourceTest, MalformedMessagesAreCountedDeadLetteredAndSkipped) {
  auto broker = StartBroker();
  ASSERT_NE(broker, nullptr);
  ASSERT_TRUE(broker->CreateTopic("events", 1).ok());
  ASSERT_TRUE(broker->CreateTopic("events-dlq", 1).ok());
  const std::string brokers = broker->bootstrap_servers();
  auto producer = Producer(brokers);
  ASSERT_NE(producer, nullptr);
  struct Message {
    std::string key, value;
  };
  const std::vector<Message> messages = {
      {"u1", R"({"user":"u1","item":"a","ts":1})"},
      {"u1", "not json {"},                                    // invalid json
      {"u2", R"({"user":"u2","ts":2})"},                       // missing item
      {"u2", R"({"item":"a","weight":-3})"},                   // bad weight (user from the key)
      {"u3", R"({"user":"u3","item":"b","weight":"heavy"})"},  // bad weight
      {"u4", ""},                                              // empty value
      {"u3", R"({"user":"u3","item":"c","ts":3})"},
      {"", R"({"item":"d","ts":4})"},  // no user, no key
      {"u4", R"({"user":4,"item":5,"ts":5})"},
      {"u5", R"({"user":"","item":"e","ts":6})"},  // an empty user takes the key
  };
  for (const Message& m : messages) ASSERT_TRUE(producer->Produce("events", m.key, m.value).ok());
  ASSERT_TRUE(producer->Flush(absl::Seconds(10)).ok());

  KafkaSourceOptions options = SourceOptions(brokers, "dlq-group", {"events"});
  options.dead_letter_topic = "events-dlq";
  auto source = KafkaEventSource::Create(options, NoPositions);
  ASSERT_TRUE(source.ok()) << source.status();
  std::vector<Event> events;
  ASSERT_TRUE(PollUntil(source->get(), &events, [&] {
                return (*source)->stats().records_read >= static_cast<int64_t>(messages.size());
              }).ok());
  ASSERT_EQ(events.size(), 4u);
  EXPECT_EQ(events[0].item, "a");
  EXPECT_EQ(events[1].item, "c");
  EXPECT_EQ(events[1].position.offset, 6);
  EXPECT_EQ(events[2].user, "4");
  EXPECT_EQ(events[2].item, "5");
  EXPECT_EQ(events[3].user, "u5");

  const auto reasons = (*source)->malformed_by_reason();
  EXPECT_EQ(reasons.at("invalid json"), 1);
  EXPECT_EQ(reasons.at("missing item"), 1);
  EXPECT_EQ(reasons.at("bad weight"), 2);
  EXPECT_EQ(reasons.at("empty value"), 1);
  EXPECT_EQ(reasons.at("missing user"), 1);
  EXPECT_EQ((*source)->stats().malformed, 6);
  EXPECT_EQ((*source)->stats().events, 4);

  // Dead letters are flushed when the source goes away.
  source->reset();
  const std::vector<testing::RawMessage> dead = ReadRaw(brokers, "events-dlq", 0, 6);
  ASSERT_EQ(dead.size(), 6u);
  EXPECT_EQ(dead[0].value, "not json {");
  EXPECT_EQ(dead[0].key, "u1");
  EXPECT_EQ(dead[0].headers.at("freshet-reason"), "invalid json");
  EXPECT_EQ(dead[0].headers.at("freshet-origin"), "events/0@1");
  EXPECT_EQ(dead[1].headers.at("freshet-reason"), "missing item");
  EXPECT_EQ(dead[2].headers.at("freshet-reason"), "bad weight");
  EXPECT_EQ(dead[2].value, R"({"item":"a","weight":-3})");
  EXPECT_EQ(dead[4].headers.at("freshet-reason"), "empty value");
  EXPECT_EQ(dead[5].headers.at("freshet-origin"), "events/0@7");
}

TEST(KafkaEventSourceTest, ResumesAfterABrokerOutageWithNothingLost) {
  auto broker = StartBroker();
  ASSERT_NE(broker, nullptr);
  ASSERT_TRUE(broker->CreateTopic("t", 2).ok());
  const std::string brokers = broker->bootstrap_servers();
  // Reconnect quickly once the broker is back (the default backoff grows to 10 s).
  const std::map<std::string, std::string> fast_reconnect = {{"reconnect.backoff.max.ms", "200"}};
  auto producer_or = KafkaProducer::Create({.brokers = brokers, .properties = fast_reconnect});
  ASSERT_TRUE(producer_or.ok()) << producer_or.status();
  std::unique_ptr<KafkaProducer> producer = std::move(*producer_or);
  const auto produce = [&](int from, int to) {
    for (int i = from; i < to; ++i) {
      Event e;
      e.user = absl::StrCat("u", i % 7);
      e.item = absl::StrCat("i", i);
      e.ts_ms = i;
      ASSERT_TRUE(producer->ProduceEvent("t", e).ok());
    }
  };
  produce(0, 100);
  ASSERT_TRUE(producer->Flush(absl::Seconds(10)).ok());
  KafkaSourceOptions options = SourceOptions(brokers, "outage", {"t"});
  options.properties = fast_reconnect;
  auto source = KafkaEventSource::Create(options, NoPositions);
  ASSERT_TRUE(source.ok()) << source.status();
  std::vector<Event> events;
  ASSERT_TRUE(PollUntil(source->get(), &events, [&] { return events.size() >= 100; }).ok());
  ASSERT_EQ(events.size(), 100u);

  ASSERT_TRUE(broker->SetBrokerUp(1, false).ok());
  produce(100, 200);  // queued by the producer while the broker is down
  // The source keeps polling through the outage without failing.
  const absl::Time outage_end = absl::Now() + absl::Seconds(2);
  while (absl::Now() < outage_end) {
    ASSERT_TRUE((*source)->Poll(1000, absl::Milliseconds(100), &events).ok());
  }
  EXPECT_GT((*source)->errors(), 0);  // the outage was seen, logged and counted
  // The client's statistics (once a second) say that no broker is connected (readiness).
  const absl::Time down_deadline = absl::Now() + absl::Seconds(30);
  while ((*source)->BrokerUnreachableFor() == absl::ZeroDuration() && absl::Now() < down_deadline) {
    ASSERT_TRUE((*source)->Poll(1000, absl::Milliseconds(100), &events).ok());
  }
  EXPECT_GT((*source)->BrokerUnreachableFor(), absl::ZeroDuration());
  ASSERT_TRUE(broker->SetBrokerUp(1, true).ok());
  ASSERT_TRUE(producer->Flush(absl::Seconds(30)).ok());
  ASSERT_TRUE(PollUntil(source->get(), &events, [&] { return events.size() >= 200; }).ok());
  EXPECT_EQ(events.size(), 200u);
  const absl::Time up_deadline = absl::Now() + absl::Seconds(30);
  while ((*source)->BrokerUnreachableFor() > absl::ZeroDuration() && absl::Now() < up_deadline) {
    ASSERT_TRUE((*source)->Poll(1000, absl::Milliseconds(100), &events).ok());
  }
  EXPECT_EQ((*source)->BrokerUnreachableFor(), absl::ZeroDuration());
  EXPECT_EQ(events.size(), 200u);
  std::vector<int> seen(200, 0);
  for (const Event& e : events) seen[e.ts_ms] += 1;
  for (int i = 0; i < 200; ++i) EXPECT_EQ(seen[i], 1) << "event " << i;
}

TEST(KafkaEventSourceTest, StartsAfterTheAppliedPositionsAndSeeksBackToThem) {
  auto broker = StartBroker();
  ASSERT_NE(broker, nullptr);
  ASSERT_TRUE(broker->CreateTopic("a", 1).ok());
  ASSERT_TRUE(broker->CreateTopic("b", 1).ok());
  const std::string brokers = broker->bootstrap_servers();
  auto producer = Producer(brokers);
  ASSERT_NE(producer, nullptr);
  for (int i = 0; i < 10; ++i) {
    const std::string value = absl::StrCat(R"({"user":"u","item":"i)", i, R"(","ts":)", i, "}");
    ASSERT_TRUE(producer->Produce("a", "u", value).ok());
    ASSERT_TRUE(producer->Produce("b", "u", value).ok());
  }
  ASSERT_TRUE(producer->Flush(absl::Seconds(10)).ok());

  // Stored positions: topic a (stream 0) applied up to offset 6, topic b (stream 1) nothing.
  auto source = KafkaEventSource::Create(
      SourceOptions(brokers, "seek", {"a", "b"}),
      [](int32_t stream, int32_t) -> int64_t { return stream == 0 ? 6 : -1; });
  ASSERT_TRUE(source.ok()) << source.status();
  std::vector<Event> events;
  ASSERT_TRUE(PollUntil(source->get(), &events, [&] { return events.size() >= 13; }).ok());
  ASSERT_EQ(events.size(), 13u);
  int from_a = 0;
  for (const Event& e : events) {
    if (e.position.stream == 0) {
      ++from_a;
      EXPECT_GE(e.position.offset, 7);
    }
  }
  EXPECT_EQ(from_a, 3);
  EXPECT_EQ((*source)->AssignedPartitions().size(), 2u);

  // Rewind (a snapshot restore): a after 1, b after 8.
  ASSERT_TRUE(
      (*source)
          ->SeekToApplied([](int32_t stream, int32_t) -> int64_t { return stream == 0 ? 1 : 8; })
          .ok());
  events.clear();
  ASSERT_TRUE(PollUntil(source->get(), &events, [&] { return events.size() >= 9; }).ok());
  ASSERT_EQ(events.size(), 9u);
  std::vector<int64_t> a_offsets, b_offsets;
  for (const Event& e : events) {
    (e.position.stream == 0 ? a_offsets : b_offsets).push_back(e.position.offset);
  }
  EXPECT_EQ(a_offsets, std::vector<int64_t>({2, 3, 4, 5, 6, 7, 8, 9}));
  EXPECT_EQ(b_offsets, std::vector<int64_t>({9}));
}

// Static shares (replicas): each source assigns itself a fixed subset of the partitions.

KafkaSourceOptions ShareOptions(const std::string& brokers, const std::string& group,
                                std::vector<std::string> topics, int index, int count) {
  KafkaSourceOptions options = SourceOptions(brokers, group, std::move(topics));
  options.share_index = index;
  options.share_count = count;
  return options;
}

// Produces `count` events to `topic`, keyed by users u0 ... u(users-1) (so murmur2 spreads them
// over the partitions), with ts = the event's index.
void ProduceIndexed(KafkaProducer* producer, const std::string& topic, int count, int users) {
  for (int i = 0; i < count; ++i) {
    Event e;
    e.user = absl::StrCat("u", i % users);
    e.item = absl::StrCat("i", i);
    e.ts_ms = i;
    ASSERT_TRUE(producer->ProduceEvent(topic, e).ok());
  }
  ASSERT_TRUE(producer->Flush(absl::Seconds(10)).ok());
}

std::vector<int32_t> Partitions(const KafkaEventSource& source) {
  std::vector<int32_t> partitions;
  for (const SourcePosition& p : source.AssignedPartitions()) {
    EXPECT_EQ(p.stream, 0);
    partitions.push_back(p.partition);
  }
  return partitions;
}

// The offsets `group` has committed for partitions 0 ... partitions-1 of `topic` (-1: none).
std::vector<int64_t> Committed(const std::string& brokers, const std::string& group,
                               const std::string& topic, int partitions) {
  std::vector<int64_t> offsets(partitions, -1);
  char errstr[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "bootstrap.servers", brokers.c_str(), errstr, sizeof(errstr));
  rd_kafka_conf_set(conf, "group.id", group.c_str(), errstr, sizeof(errstr));
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
  if (rk == nullptr) return offsets;
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(partitions);
  for (int p = 0; p < partitions; ++p) rd_kafka_topic_partition_list_add(list, topic.c_str(), p);
  if (rd_kafka_committed(rk, list, 10000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
    for (int i = 0; i < list->cnt; ++i) {
      if (list->elems[i].offset >= 0) offsets[list->elems[i].partition] = list->elems[i].offset;
    }
  }
  rd_kafka_topic_partition_list_destroy(list);
  rd_kafka_consumer_close(rk);
  rd_kafka_destroy(rk);
  return offsets;
}

TEST(KafkaEventSourceShareTest, TwoSharesConsumeDisjointPartitionsAndEveryEventOnce) {
  auto broker = StartBroker();
  ASSERT_NE(broker, nullptr);
  const std::string topic = "share-disjoint";
  const std::string group = "share-disjoint-replicas";
  ASSERT_TRUE(broker->CreateTopic(topic, 4).ok());
  const std::string brokers = broker->bootstrap_servers();
  auto producer = Producer(brokers);
  ASSERT_NE(producer, nullptr);
  constexpr int kEvents = 400;
  ASSERT_NO_FATAL_FAILURE(ProduceIndexed(producer.get(), topic, kEvents, 64));

  auto even = KafkaEventSource::Create(ShareOptions(brokers, group, {topic}, 0, 2), NoPositions);
  ASSERT_TRUE(even.ok()) << even.status();
  auto odd = KafkaEventSource::Create(ShareOptions(brokers, group, {topic}, 1, 2), NoPositions);
  ASSERT_TRUE(odd.ok()) << odd.status();
  EXPECT_EQ((*even)->Name(), "kafka:share-disjoint@share-disjoint-replicas[0/2]");
  std::vector<Event> even_events, odd_events;
  const absl::Time end = absl::Now() + absl::Seconds(30);
  while (even_events.size() + odd_events.size() < kEvents && absl::Now() < end) {
    ASSERT_TRUE((*even)->Poll(10000, absl::Milliseconds(50), &even_events).ok());
    ASSERT_TRUE((*odd)->Poll(10000, absl::Milliseconds(50), &odd_events).ok());
  }
  // Nothing more arrives (no partition is consumed twice).
  const absl::Time quiet_end = absl::Now() + absl::Seconds(1);
  while (absl::Now() < quiet_end) {
    ASSERT_TRUE((*even)->Poll(10000, absl::Milliseconds(50), &even_events).ok());
    ASSERT_TRUE((*odd)->Poll(10000, absl::Milliseconds(50), &odd_events).ok());
  }

  EXPECT_TRUE((*even)->Assigned());
  EXPECT_TRUE((*odd)->Assigned());
  EXPECT_EQ(Partitions(**even), std::vector<int32_t>({0, 2}));
  EXPECT_EQ(Partitions(**odd), std::vector<int32_t>({1, 3}));
  std::vector<int> seen(kEvents, 0);
  std::vector<int> per_partition(4, 0);
  for (const Event& e : even_events) {
    EXPECT_EQ(e.position.partition % 2, 0) << e.position.partition;
    seen[e.ts_ms] += 1;
    per_partition[e.position.partition] += 1;
  }
  for (const Event& e : odd_events) {
    EXPECT_EQ(e.position.partition % 2, 1) << e.position.partition;
    seen[e.ts_ms] += 1;
    per_partition[e.position.partition] += 1;
  }
  for (int i = 0; i < kEvents; ++i) EXPECT_EQ(seen[i], 1) << "event " << i;
  for (int p = 0; p < 4; ++p) EXPECT_GT(per_partition[p], 0) << "partition " << p;

  // Lag and commits work without group membership; commits go to the configured group.
  for (const PartitionLag& lag : (*even)->Lag()) {
    EXPECT_EQ(lag.lag, 0) << lag.partition;
    EXPECT_EQ(lag.next_offset, per_partition[lag.partition]);
  }
  EXPECT_EQ((*odd)->Lag().size(), 2u);
  std::vector<SourcePosition> last;
  for (int32_t p = 0; p < 4; ++p) {
    last.push_back(SourcePosition{.stream = 0, .partition = p, .offset = per_partition[p] - 1});
  }
  ASSERT_TRUE((*even)->CommitOffsets({last[0], last[2]}).ok());
  ASSERT_TRUE((*odd)->CommitOffsets({last[1], last[3]}).ok());
  EXPECT_EQ(Committed(brokers, group, topic, 4),
            std::vector<int64_t>(per_partition.begin(), per_partition.end()));
}

TEST(KafkaEventSourceShareTest, StartsAfterTheStoredPositionsAndSeeksBackToThem) {
  auto broker = StartBroker();
  ASSERT_NE(broker, nullptr);
  const std::string topic = "share-positions";
  ASSERT_TRUE(broker->CreateTopic(topic, 2).ok());
  const std::string brokers = broker->bootstrap_servers();
  auto producer = Producer(brokers);
  ASSERT_NE(producer, nullptr);
  ASSERT_NO_FATAL_FAILURE(ProduceIndexed(producer.get(), topic, 60, 30));

  // Share 1 of 2 holds partition 1 only, applied up to offset 4.
  std::vector<std::pair<int32_t, int32_t>> asked;
  auto source =
      KafkaEventSource::Create(ShareOptions(brokers, "share-positions-replicas", {topic}, 1, 2),
                               [&asked](int32_t stream, int32_t partition) -> int64_t {
                                 asked.emplace_back(stream, partition);
                                 return 4;
                               });
  ASSERT_TRUE(source.ok()) << source.status();
  std::vector<Event> events;
  int64_t end_offset = -1;
  ASSERT_TRUE(PollUntil(source->get(), &events, [&] {
                const std::vector<PartitionLag> lag = (*source)->Lag();
                if (events.empty() || lag.size() != 1 || lag[0].lag != 0) return false;
                end_offset = lag[0].high_watermark;
                return true;
              }).ok());
  EXPECT_EQ(asked, (std::vector<std::pair<int32_t, int32_t>>{{0, 1}}));
  ASSERT_GT(end_offset, 5);
  std::vector<int64_t> offsets, expected;
  for (const Event& e : events) {
    EXPECT_EQ(e.position.partition, 1);
    offsets.push_back(e.position.offset);
  }
  for (int64_t o = 5; o < end_offset; ++o) expected.push_back(o);
  EXPECT_EQ(offsets, expected);

  // Rewind (a snapshot restore) to after offset 1.
  ASSERT_TRUE((*source)->SeekToApplied([](int32_t, int32_t) -> int64_t { return 1; }).ok());
  events.clear();
  const size_t rewound = static_cast<size_t>(end_offset - 2);
  ASSERT_TRUE(PollUntil(source->get(), &events, [&] { return events.size() >= rewound; }).ok());
  ASSERT_EQ(events.size(), rewound);
  EXPECT_EQ(events.front().position.offset, 2);
  EXPECT_EQ(events.back().position.offset, end_offset - 1);
}

TEST(KafkaEventSourceShareTest, RejectsInvalidShares) {
  struct Share {
    int index, count;
  };
  for (const Share share :
       {Share{0, 0}, Share{0, -2}, Share{-1, 2}, Share{2, 2}, Share{5, 3}, Share{1, 1}}) {
    const auto source = KafkaEventSource::Create(
        ShareOptions("127.0.0.1:1", "g", {"t"}, share.index, share.count), NoPositions);
    EXPECT_EQ(source.status().code(), absl::StatusCode::kInvalidArgument)
        << share.index << "/" << share.count;
    EXPECT_NE(source.status().message().find("share_"), absl::string_view::npos) << source.status();
  }
  // The default (0 of 1) is the group mode; 2 of 3 is a share.
  EXPECT_TRUE(
      KafkaEventSource::Create(ShareOptions("127.0.0.1:1", "g", {"t"}, 0, 1), NoPositions).ok());
  EXPECT_TRUE(
      KafkaEventSource::Create(ShareOptions("127.0.0.1:1", "g", {"t"}, 2, 3), NoPositions).ok());
}

// (A missing topic takes the same retry path, but the mock cluster creates any topic that a
// metadata request names, so it cannot be missing here.)
TEST(KafkaEventSourceShareTest, ABrokerDownAtStartupIsRetriedUntilItAnswers) {
  auto broker = StartBroker();
  ASSERT_NE(broker, nullptr);
  const std::string topic = "share-outage";
  ASSERT_TRUE(broker->CreateTopic(topic, 2).ok());
  const std::string brokers = broker->bootstrap_servers();
  ASSERT_TRUE(broker->SetBrokerUp(1, false).ok());
  // Reconnect quickly once the broker is back (the default backoff grows to 10 s).
  KafkaSourceOptions options = ShareOptions(brokers, "share-outage-replicas", {topic}, 0, 2);
  options.properties = {{"reconnect.backoff.max.ms", "200"}};
  auto source = KafkaEventSource::Create(options, NoPositions);
  ASSERT_TRUE(source.ok()) << source.status();
  std::vector<Event> events;
  // Polling goes on through the outage without failing.
  const absl::Time outage_end = absl::Now() + absl::Seconds(2);
  while (absl::Now() < outage_end) {
    ASSERT_TRUE((*source)->Poll(1000, absl::Milliseconds(100), &events).ok());
  }
  EXPECT_GT((*source)->errors(), 0);  // the outage was seen, logged and counted
  EXPECT_FALSE((*source)->Assigned());
  EXPECT_TRUE(events.empty());

  ASSERT_TRUE(broker->SetBrokerUp(1, true).ok());
  auto producer = Producer(brokers);
  ASSERT_NE(producer, nullptr);
  ASSERT_NO_FATAL_FAILURE(ProduceIndexed(producer.get(), topic, 40, 20));
  ASSERT_TRUE(PollUntil(source->get(), &events, [&] { return !events.empty(); }).ok());
  ASSERT_FALSE(events.empty());
  EXPECT_TRUE((*source)->Assigned());
  EXPECT_EQ(Partitions(**source), std::vector<int32_t>({0}));
  for (const Event& e : events) EXPECT_EQ(e.position.partition, 0);
}

TEST(KafkaEventSourceShareTest, AShareWithoutPartitionsIsValidButNeverAssigned) {
  auto broker = StartBroker();
  ASSERT_NE(broker, nullptr);
  const std::string topic = "share-few";
  ASSERT_TRUE(broker->CreateTopic(topic, 2).ok());
  const std::string brokers = broker->bootstrap_servers();
  auto producer = Producer(brokers);
  ASSERT_NE(producer, nullptr);
  ASSERT_NO_FATAL_FAILURE(ProduceIndexed(producer.get(), topic, 40, 20));

  // Three replicas, two partitions: share 2 holds none.
  auto first = KafkaEventSource::Create(ShareOptions(brokers, "share-few-replicas", {topic}, 0, 3),
                                        NoPositions);
  ASSERT_TRUE(first.ok()) << first.status();
  auto idle = KafkaEventSource::Create(ShareOptions(brokers, "share-few-replicas", {topic}, 2, 3),
                                       NoPositions);
  ASSERT_TRUE(idle.ok()) << idle.status();
  std::vector<Event> first_events, idle_events;
  ASSERT_TRUE(PollUntil(first->get(), &first_events, [&] { return (*first)->Assigned(); }).ok());
  EXPECT_EQ(Partitions(**first), std::vector<int32_t>({0}));
  // The idle share has read the same metadata by now; give it a while longer all the same.
  const absl::Time end = absl::Now() + absl::Seconds(2);
  while (absl::Now() < end) {
    ASSERT_TRUE((*idle)->Poll(1000, absl::Milliseconds(100), &idle_events).ok());
  }
  EXPECT_FALSE((*idle)->Assigned());
  EXPECT_TRUE((*idle)->AssignedPartitions().empty());
  EXPECT_TRUE((*idle)->Lag().empty());
  EXPECT_TRUE(idle_events.empty());
  EXPECT_EQ((*idle)->errors(), 0);
}

TEST(KafkaProducerTest, AnUnreachableBrokerFailsTheFlush) {
  auto producer = KafkaProducer::Create(
      {.brokers = "127.0.0.1:1", .properties = {{"message.timeout.ms", "500"}}});
  ASSERT_TRUE(producer.ok()) << producer.status();
  ASSERT_TRUE((*producer)->Produce("t", "k", "v").ok());
  const absl::Status flushed = (*producer)->Flush(absl::Seconds(20));
  EXPECT_EQ(flushed.code(), absl::StatusCode::kUnavailable) << flushed;
  EXPECT_NE(flushed.message().find("not acknowledged"), absl::string_view::npos) << flushed;
  EXPECT_EQ((*producer)->failed(), 1);
}

// An event's id (its idempotency key) travels through the broker; a bad one is malformed.
TEST(KafkaEventSourceTest, EventIdsTravelAndBadOnesAreMalformed) {
  auto broker = StartBroker();
  ASSERT_NE(broker, nullptr);
  ASSERT_TRUE(broker->CreateTopic("ids", 1).ok());
  auto producer = Producer(broker->bootstrap_servers());
  ASSERT_NE(producer, nullptr);
  Event event;
  event.user = "u1";
  event.item = "i1";
  event.ts_ms = 1700000000000;
  event.id = "post-7/0";
  ASSERT_TRUE(producer->ProduceEvent("ids", event).ok());
  ASSERT_TRUE(producer->Produce("ids", "u2", R"({"user":"u2","item":"i2","id":42})").ok());
  ASSERT_TRUE(producer->Produce("ids", "u3", R"({"user":"u3","item":"i3","id":[1]})").ok());
  ASSERT_TRUE(
      producer->Produce("ids", "u4", "{\"user\":\"u4\",\"item\":\"i4\",\"id\":\"\xff\"}").ok());
  ASSERT_TRUE(producer->Produce("ids", "u5", R"({"user":"u5","item":"i5"})").ok());
  ASSERT_TRUE(producer->Flush(absl::Seconds(20)).ok());
  auto source = KafkaEventSource::Create(
      SourceOptions(broker->bootstrap_servers(), "ids-group", {"ids"}), NoPositions);
  ASSERT_TRUE(source.ok()) << source.status();
  std::vector<Event> events;
  ASSERT_TRUE(PollUntil(source->get(), &events, [&] {
                return events.size() >= 3 && (*source)->stats().malformed >= 2;
              }).ok());
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0].id, "post-7/0");
  EXPECT_EQ(events[1].id, "42");
  EXPECT_EQ(events[2].id, "");
  EXPECT_EQ((*source)->stats().malformed, 2);
}

}  // namespace
}  // namespace freshet::stream
