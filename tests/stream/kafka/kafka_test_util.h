// Helpers shared by the Kafka tests: polling a source until a condition holds, and reading a
// topic's raw messages (with headers) without a consumer group.
#ifndef FRESHET_TESTS_STREAM_KAFKA_KAFKA_TEST_UTIL_H_
#define FRESHET_TESTS_STREAM_KAFKA_KAFKA_TEST_UTIL_H_

#include <librdkafka/rdkafka.h>

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "stream/event.h"
#include "stream/kafka/kafka_event_source.h"

namespace freshet::stream::testing {

// Polls `source` into `*events` until `done()` or `deadline` passes; returns the last status.
inline absl::Status PollUntil(KafkaEventSource* source, std::vector<Event>* events,
                              const std::function<bool()>& done,
                              absl::Duration deadline = absl::Seconds(30)) {
  const absl::Time end = absl::Now() + deadline;
  while (!done() && absl::Now() < end) {
    absl::Status status = source->Poll(10000, absl::Milliseconds(100), events);
    if (!status.ok()) return status;
  }
  return absl::OkStatus();
}

struct RawMessage {
  std::string key;
  std::string value;
  std::map<std::string, std::string> headers;
  int64_t offset = -1;
};

// Reads up to `count` messages of topic/partition from the beginning with a plain assigned
// consumer, waiting up to `deadline`.
inline std::vector<RawMessage> ReadRaw(const std::string& brokers, const std::string& topic,
                                       int32_t partition, size_t count,
                                       absl::Duration deadline = absl::Seconds(20)) {
  std::vector<RawMessage> messages;
  char errstr[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "bootstrap.servers", brokers.c_str(), errstr, sizeof(errstr));
  rd_kafka_conf_set(conf, "group.id", "freshet-test-raw-reader", errstr, sizeof(errstr));
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
  if (rk == nullptr) return messages;
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(list, topic.c_str(), partition)->offset =
      RD_KAFKA_OFFSET_BEGINNING;
  rd_kafka_assign(rk, list);
  rd_kafka_topic_partition_list_destroy(list);
  const absl::Time end = absl::Now() + deadline;
  while (messages.size() < count && absl::Now() < end) {
    rd_kafka_message_t* m = rd_kafka_consumer_poll(rk, 100);
    if (m == nullptr) continue;
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      RawMessage raw;
      if (m->key != nullptr) raw.key.assign(static_cast<const char*>(m->key), m->key_len);
      if (m->payload != nullptr) raw.value.assign(static_cast<const char*>(m->payload), m->len);
      raw.offset = m->offset;
      rd_kafka_headers_t* headers = nullptr;
      if (rd_kafka_message_headers(m, &headers) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        const char* name = nullptr;
        const void* value = nullptr;
        size_t size = 0;
        for (size_t i = 0; rd_kafka_header_get_all(headers, i, &name, &value, &size) ==
                           RD_KAFKA_RESP_ERR_NO_ERROR;
             ++i) {
          raw.headers[name] = std::string(static_cast<const char*>(value), size);
        }
      }
      messages.push_back(std::move(raw));
    }
    rd_kafka_message_destroy(m);
  }
  rd_kafka_consumer_close(rk);
  rd_kafka_destroy(rk);
  return messages;
}

}  // namespace freshet::stream::testing

#endif  // FRESHET_TESTS_STREAM_KAFKA_KAFKA_TEST_UTIL_H_
