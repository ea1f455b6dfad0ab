// The event corpus (tests/stream/event_corpus.h) through Kafka against librdkafka's mock cluster:
// every case as a message value read by KafkaEventSource (valid ones decode to their events,
// invalid ones are dead-lettered with their reason), and every valid event written by
// KafkaProducer::ProduceEvent (the encoder of `freshet produce`) read back unchanged.
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "stream/event_codec.h"
#include "stream/kafka/dev_broker.h"
#include "stream/kafka/kafka_event_source.h"
#include "stream/kafka/kafka_producer.h"
#include "tests/stream/event_corpus.h"
#include "tests/stream/kafka/kafka_test_util.h"

namespace freshet::stream {
namespace {

using internal::MalformedReasonName;
using testing::CorpusCodecOptions;
using testing::DecodedAs;
using testing::InvalidEvents;
using testing::PollUntil;
using testing::ReadRaw;
using testing::SameEvent;
using testing::ValidEvents;

KafkaSourceOptions CorpusSourceOptions(const std::string& brokers, const std::string& group,
                                       const std::string& topic) {
  const EventCodecOptions codec = CorpusCodecOptions();
  KafkaSourceOptions options;
  options.brokers = brokers;
  options.group_id = group;
  options.topics = {topic};
  options.type_weights = codec.type_weights;
  options.default_weight = codec.default_weight;
  options.default_type = codec.default_type;
  options.limits = codec.limits;
  return options;
}

int64_t NoPositions(int32_t, int32_t) { return -1; }

class KafkaEventCorpusTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto broker = DevBroker::Start();
    ASSERT_TRUE(broker.ok()) << broker.status();
    broker_ = std::move(*broker);
    auto producer =
        KafkaProducer::Create({.brokers = broker_->bootstrap_servers(), .properties = {}});
    ASSERT_TRUE(producer.ok()) << producer.status();
    producer_ = std::move(*producer);
  }

  std::unique_ptr<DevBroker> broker_;
  std::unique_ptr<KafkaProducer> producer_;
};

TEST_F(KafkaEventCorpusTest, MessagesDecodeLikeTheCodecAndInvalidOnesAreDeadLettered) {
  ASSERT_TRUE(broker_->CreateTopic("corpus", 1).ok());
  ASSERT_TRUE(broker_->CreateTopic("corpus-dlq", 1).ok());
  // No key: a key would stand in for a missing user.
  const int64_t before_ms = absl::ToUnixMillis(absl::Now());
  for (const auto& c : ValidEvents()) ASSERT_TRUE(producer_->Produce("corpus", "", c.json).ok());
  for (const auto& c : InvalidEvents()) ASSERT_TRUE(producer_->Produce("corpus", "", c.json).ok());
  ASSERT_TRUE(producer_->Flush(absl::Seconds(20)).ok());
  const int64_t after_ms = absl::ToUnixMillis(absl::Now());

  KafkaSourceOptions options =
      CorpusSourceOptions(broker_->bootstrap_servers(), "corpus", "corpus");
  options.dead_letter_topic = "corpus-dlq";
  auto source = KafkaEventSource::Create(options, NoPositions);
  ASSERT_TRUE(source.ok()) << source.status();
  const size_t total = ValidEvents().size() + InvalidEvents().size();
  std::vector<Event> events;
  ASSERT_TRUE(PollUntil(source->get(), &events, [&] {
                return (*source)->stats().records_read >= static_cast<int64_t>(total);
              }).ok());
  ASSERT_EQ(events.size(), ValidEvents().size());
  for (size_t i = 0; i < events.size(); ++i) {
    const auto& c = ValidEvents()[i];
    // No ts: the message's timestamp, set when it was produced.
    if (!c.ts_ms.has_value()) {
      EXPECT_GE(events[i].ts_ms, before_ms - 1000) << c.json;
      EXPECT_LE(events[i].ts_ms, after_ms + 1000) << c.json;
    }
    EXPECT_TRUE(DecodedAs(c, events[i], events[i].ts_ms));
    EXPECT_EQ(events[i].position.offset, static_cast<int64_t>(i));
  }
  EXPECT_EQ((*source)->stats().malformed, static_cast<int64_t>(InvalidEvents().size()));

  source->reset();  // flushes the dead letters
  const std::vector<testing::RawMessage> dead =
      ReadRaw(broker_->bootstrap_servers(), "corpus-dlq", 0, InvalidEvents().size());
  ASSERT_EQ(dead.size(), InvalidEvents().size());
  for (size_t i = 0; i < dead.size(); ++i) {
    const auto& c = InvalidEvents()[i];
    EXPECT_EQ(dead[i].value, c.json);
    EXPECT_EQ(dead[i].headers.at("freshet-reason"), std::string(MalformedReasonName(c.reason)))
        << absl::CHexEscape(c.json);
  }
}

TEST_F(KafkaEventCorpusTest, ProducedEventsComeBackUnchanged) {
  ASSERT_TRUE(broker_->CreateTopic("encoded", 1).ok());
  EventCodec codec(CorpusCodecOptions());
  std::vector<Event> decoded;
  for (const auto& c : ValidEvents()) {
    ASSERT_FALSE(codec.Decode(c.json, 1'650'000'000'000, &decoded.emplace_back()).has_value());
    ASSERT_TRUE(producer_->ProduceEvent("encoded", decoded.back()).ok());
  }
  ASSERT_TRUE(producer_->Flush(absl::Seconds(20)).ok());
  auto source = KafkaEventSource::Create(
      CorpusSourceOptions(broker_->bootstrap_servers(), "encoded", "encoded"), NoPositions);
  ASSERT_TRUE(source.ok()) << source.status();
  std::vector<Event> events;
  ASSERT_TRUE(
      PollUntil(source->get(), &events, [&] { return events.size() >= decoded.size(); }).ok());
  ASSERT_EQ(events.size(), decoded.size());
  EXPECT_EQ((*source)->stats().malformed, 0);
  for (size_t i = 0; i < events.size(); ++i) {
    EXPECT_TRUE(SameEvent(events[i], decoded[i])) << ValidEvents()[i].json;
  }
  // The message is keyed by the user, and its value is exactly what the codec writes.
  const std::vector<testing::RawMessage> raw =
      ReadRaw(broker_->bootstrap_servers(), "encoded", 0, 1);
  ASSERT_EQ(raw.size(), 1u);
  std::string json;
  EventCodec::Encode(decoded[0], &json);
  EXPECT_EQ(raw[0].value, json);
  EXPECT_EQ(raw[0].key, decoded[0].user);
}

// The key stands in for a missing or empty user and is then checked like any user id.
TEST_F(KafkaEventCorpusTest, AKeyStandsInForTheUserAndFollowsTheIdRules) {
  ASSERT_TRUE(broker_->CreateTopic("keyed", 1).ok());
  const std::string long_key(257, 'k');
  const std::vector<std::pair<std::string, std::string>> messages = {
      {"k1", R"({"item":"i1","ts":1700000000000})"},
      {"k2", R"({"user":null,"item":"i2","ts":1700000000000})"},
      {"k3", R"({"user":"","item":"i3","ts":1700000000000})"},
      {"k4", R"({"user":"own","item":"i4","ts":1700000000000})"},
      {"k\"5", R"({"item":"i5","ts":1700000000000})"},
      {"k\xff", R"({"item":"x","ts":1700000000000})"},   // invalid utf-8
      {long_key, R"({"item":"x","ts":1700000000000})"},  // id too long
      {"k8", R"({"ts":1700000000000})"},                 // missing item
      {"k9", R"({"item":"","ts":1700000000000})"},       // empty item
  };
  for (const auto& [key, value] : messages) {
    ASSERT_TRUE(producer_->Produce("keyed", key, value).ok());
  }
  ASSERT_TRUE(producer_->Flush(absl::Seconds(20)).ok());
  auto source = KafkaEventSource::Create(
      CorpusSourceOptions(broker_->bootstrap_servers(), "keyed", "keyed"), NoPositions);
  ASSERT_TRUE(source.ok()) << source.status();
  std::vector<Event> events;
  ASSERT_TRUE(PollUntil(source->get(), &events, [&] {
                return (*source)->stats().records_read >= static_cast<int64_t>(messages.size());
              }).ok());
  ASSERT_EQ(events.size(), 5u);
  EXPECT_EQ(events[0].user, "k1");
  EXPECT_EQ(events[1].user, "k2");
  EXPECT_EQ(events[2].user, "k3");
  EXPECT_EQ(events[3].user, "own");
  EXPECT_EQ(events[4].user, "k\"5");
  const auto reasons = (*source)->malformed_by_reason();
  EXPECT_EQ(reasons.size(), 4u);
  EXPECT_EQ(reasons.at("invalid utf-8"), 1);
  EXPECT_EQ(reasons.at("id too long"), 1);
  EXPECT_EQ(reasons.at("missing item"), 1);
  EXPECT_EQ(reasons.at("empty item"), 1);
}

}  // namespace
}  // namespace freshet::stream
