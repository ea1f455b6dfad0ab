// The unit of data that flows through freshet: one user-item interaction.
#ifndef FRESHET_STREAM_EVENT_H_
#define FRESHET_STREAM_EVENT_H_

#include <cstdint>
#include <string>

namespace freshet::stream {

// Where an event came from, precise enough to resume right after it. For a file source `stream`
// is 0 and `offset` is the event's index in replay (time) order; for Kafka `stream` indexes the
// source's topic list, `partition` is the partition and `offset` the message offset.
struct SourcePosition {
  int32_t stream = 0;
  int32_t partition = 0;
  int64_t offset = -1;
};

// One interaction. `user` and `item` are external ids exactly as they appeared in the input
// (integers are kept as their decimal text). `weight` is already resolved: the event's explicit
// weight if it had one, else the configured weight of its `type`, else 1.
struct Event {
  std::string user;
  std::string item;
  std::string type;
  float weight = 1.0f;
  int64_t ts_ms = 0;  // epoch milliseconds
  SourcePosition position;
  // Optional idempotency key (the JSON field "id"; POST /v1/events also derives it from an
  // Idempotency-Key header). The engine applies at most one event per id among the last
  // events.idempotency_keys ids it applied, whichever way each copy came in.
  std::string id;
  // Wall time (epoch ms) the event entered the system, for freshness (arrival -> learnt): a Kafka
  // message's timestamp (when it was produced), a POST's arrival; 0 where there is none (files: a
  // replay has no live freshness).
  int64_t received_ms = 0;
};

}  // namespace freshet::stream

#endif  // FRESHET_STREAM_EVENT_H_
