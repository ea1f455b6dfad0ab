// KafkaEventSource: events from Kafka topics through a librdkafka consumer group.
//
// Message format (ARCHITECTURE.md, "Event format"): the key is the user id, the value a
// JSON object
//   {"user":"u42","item":"sku-9","type":"click","ts":1700000000123,"weight":1.0}
// decoded by EventCodec (stream/event_codec.h: the rules of jsonl files and POST /v1/events;
// `ts` is epoch milliseconds), and two Kafka-specific ones: a value without a `user` (absent,
// null or "") takes the message key as its user, and a value without `ts` takes the message's
// timestamp (broker or create time, whichever the topic keeps). Weights resolve as in the file
// sources: an explicit `weight`, else `type_weights[type]` (an absent type first becomes
// `default_type`), else `default_weight`.
//
// Positions and exactly-once: Event::position is {stream = index of the message's topic in
// `topics`, partition, offset}. The source subscribes as a member of `group_id` with the eager
// rebalance protocol, and on every assignment seeks each assigned partition to
// `positions(stream, partition) + 1`, where `positions` returns the caller's last APPLIED offset
// (what its store persisted with the state), or -1 when none is stored, in which case
// `auto_offset_reset` applies ("earliest": the first retained message, "latest": the next new one;
// group offsets committed by CommitOffsets are NOT used for positioning). Messages may still be
// delivered twice around a rebalance: the caller drops duplicates with stream::AppliedPositions.
//
// Static shares (`share_count` > 1): replicas that each keep their own positions need every
// partition to go to the same replica every time, which group rebalancing cannot promise. Such a
// source does not join the group's rebalancing: it reads the topics' metadata and assigns itself
// (rd_kafka_assign) every partition p with p % share_count == share_index, positioned exactly as
// above. The metadata is read by a background thread, retried (counted in errors(), logged
// rate-limited) while a broker cannot be reached or a topic does not exist, and the share is
// assigned by the next Poll() once it is known; Assigned() is false until then, and stays false
// for a share that holds no partition (more replicas than partitions; logged once). Partitions
// added to a topic later are not picked up until the source is created again.
//
// Malformed messages never stop the source: each is counted under its reason (the reasons of
// FileEventSource, plus "empty value" for a message without a value), logged as
// "kafka TOPIC/PARTITION@OFFSET: reason" (rate-limited), optionally produced to the dead-letter
// topic (same key and value, headers "freshet-reason" and "freshet-origin" =
// TOPIC/PARTITION@OFFSET) and skipped. Broker outages are retried by librdkafka: they are logged
// (rate-limited) and counted in errors(), and consumption resumes where it stopped when the broker
// returns. Only a fatal client error makes Poll() return a non-OK status (Internal), from then on.
//
// Thread-safety: Poll(), stats() and malformed_by_reason() are for the one consumer thread (as
// EventSource says); Lag(), Assigned(), AssignedPartitions(), errors() and CommitOffsets() may be
// called from any thread, concurrently with Poll().
#ifndef FRESHET_STREAM_KAFKA_KAFKA_EVENT_SOURCE_H_
#define FRESHET_STREAM_KAFKA_KAFKA_EVENT_SOURCE_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "common/log.h"
#include "stream/event.h"
#include "stream/event_source.h"
#include "stream/event_validation.h"

namespace freshet::stream {

// Plain values; copyable.
struct KafkaSourceOptions {
  std::string brokers;              // bootstrap.servers, e.g. "kafka-1:9092,kafka-2:9092"; required
  std::string group_id;             // consumer group; required
  std::vector<std::string> topics;  // at least one; Event::position.stream indexes this list
  // Where a partition without a stored position starts: "earliest", "latest" (or anything
  // librdkafka's auto.offset.reset accepts, e.g. "error").
  std::string auto_offset_reset = "earliest";
  // Malformed messages are also produced here when non-empty.
  std::string dead_letter_topic;
  // Weights by event type, as FileSourceOptions.
  absl::flat_hash_map<std::string, float> type_weights;
  float default_weight = 1.0f;
  std::string default_type;
  // What every event must satisfy (stream/event_validation.h); others are malformed.
  EventLimits limits;
  // Extra librdkafka configuration (security.protocol, sasl.*, fetch sizes, ...), applied last so
  // they override freshet's defaults. Keys librdkafka does not know are an InvalidArgument error.
  // freshet's defaults prefetch deeply for throughput: queued.min.messages=1000000 and
  // queued.max.messages.kbytes=524288 (up to 512 MiB of fetched messages held by the client);
  // lower them where memory is tight.
  std::map<std::string, std::string> properties;
  // Poll() appends at most this many events per call, whatever `max_events` says.
  size_t max_batch = 65536;
  // Static partition share, for replicas that each persist their own positions (rank
  // `share_index` of `share_count`). With share_count > 1 the source takes no part in the group's
  // rebalancing: it consumes exactly the partitions p of each topic with
  // p % share_count == share_index, always, positioned by PositionsFn like a group assignment.
  // `group_id` still names the group CommitOffsets() commits to (its members must all use shares:
  // a broker refuses commits from outside a group that has subscribed members). Requires
  // 0 <= share_index < share_count; share_count 1 is the consumer-group mode.
  int share_index = 0;
  int share_count = 1;
};

// Consumption state of one assigned partition, for metrics.
struct PartitionLag {
  std::string topic;
  int32_t partition = 0;
  int64_t next_offset = -1;     // offset of the next message to be delivered; -1 unknown yet
  int64_t high_watermark = -1;  // last known end of the partition; -1 unknown yet
  int64_t lag = -1;             // high_watermark - next_offset when both are known, else -1
};

class KafkaEventSource final : public EventSource {
 public:
  // Last applied offset of (stream, partition), or -1 when none is stored. Called from inside
  // Poll() (on the polling thread) whenever partitions are assigned.
  using PositionsFn = std::function<int64_t(int32_t stream, int32_t partition)>;

  // Creates the consumer and subscribes to `options.topics`; joining the group happens during
  // the following Poll() calls. With a static share (share_count > 1) it starts reading the
  // topics' metadata instead, and a later Poll() assigns the share. InvalidArgument for missing
  // brokers, group or topics, a share outside [0, share_count), or a property librdkafka rejects
  // (the message names it); Internal if the client cannot be created. An unreachable broker (or,
  // with a share, a missing topic) is not an error here: the client retries.
  static absl::StatusOr<std::unique_ptr<KafkaEventSource>> Create(KafkaSourceOptions options,
                                                                  PositionsFn positions);

  // Leaves the group (revoking its partitions, so the others rebalance at once; a static share
  // just drops its assignment), flushes pending dead-letter messages (for up to 5 s) and destroys
  // the clients. While a share's metadata is still being read (a broker outage at startup), it
  // first waits for the metadata request in flight (up to 5 s).
  ~KafkaEventSource() override;

  KafkaEventSource(const KafkaEventSource&) = delete;
  KafkaEventSource& operator=(const KafkaEventSource&) = delete;

  // Appends up to min(max_events, max_batch) events, waiting up to `timeout` for the first
  // message, then taking whatever else has already arrived. Rebalances (and the assignment of a
  // static share) are handled inside this call. Internal after a fatal client error; nothing else
  // is an error.
  absl::Status Poll(size_t max_events, absl::Duration timeout, std::vector<Event>* out) override;
  bool Finished() const override { return false; }
  // "kafka:topic1,topic2@group", with "[share_index/share_count]" appended for a static share.
  std::string Name() const override;
  // records_read: messages looked at (not errors); events: decoded; malformed: skipped.
  SourceStats stats() const override { return stats_; }

  // Seeks every currently assigned partition to `applied(stream, partition) + 1` (-1: the
  // auto_offset_reset position), e.g. to rewind to a restored snapshot's positions; messages
  // already fetched are discarded. Partitions assigned later are positioned by PositionsFn, which
  // the caller keeps consistent with `applied`. Call from the polling thread. Unavailable when the
  // broker cannot be reached within 10 s; OK (nothing to do) with no partitions assigned.
  absl::Status SeekToApplied(const AppliedFn& applied) override;
  // Keeps `applied` as the PositionsFn for partitions assigned from now on (in place of the one
  // given to Create) and seeks any already assigned. Call from the polling thread.
  absl::Status Resume(AppliedFn applied) override;
  // CommitOffsets without waiting: librdkafka commits in its own threads, and a failure (the
  // broker unreachable, a rebalance) is counted in commit_errors() and logged, never waited for.
  void Commit(absl::Span<const SourcePosition> durable) override;
  // Asynchronous commits the broker refused or that could not reach it.
  int64_t commit_errors() const { return commit_errors_.load(std::memory_order_relaxed); }

  // Malformed message counts by reason; reasons that never occurred are absent.
  absl::flat_hash_map<std::string, int64_t> malformed_by_reason() const;

  // Consumer errors reported by the client (broker down, timeouts, ...), all retried.
  int64_t errors() const { return errors_.load(std::memory_order_relaxed); }
  // How long no broker has been connected (zero while one is, or before the client's first
  // statistics, or with statistics.interval.ms=0): from the last statistics that showed one UP,
  // or from the creation of the source. Any thread.
  absl::Duration BrokerUnreachableFor() const;
  // Dead-letter messages the broker did not acknowledge.
  int64_t dead_letter_failures() const { return dlq_failures_.load(std::memory_order_relaxed); }

  // Lag of every assigned partition, from the client's cached watermarks (no broker round trip).
  std::vector<PartitionLag> Lag() const;

  // Partitions currently assigned to this member, as {stream, partition, -1}.
  std::vector<SourcePosition> AssignedPartitions() const;
  // True once the group has assigned this member at least one partition and still does (for
  // readiness), or once a static share with at least one partition is assigned. A member of a
  // group with more members than partitions may have none; so may a share.
  bool Assigned() const;

  // Commits `applied` (last applied offsets) + 1 as the group's offsets, for lag monitoring only
  // (positioning uses PositionsFn). Call it after the state including those positions is
  // persisted. Synchronous. InvalidArgument for a stream index outside the topic list;
  // Unavailable when the broker refuses or cannot be reached (e.g. during a rebalance);
  // committing an empty span is OK and does nothing.
  absl::Status CommitOffsets(absl::Span<const SourcePosition> applied);

  const KafkaSourceOptions& options() const { return options_; }

 private:
  struct Clients;
  friend struct KafkaSourceCallbacks;  // the librdkafka callback trampolines

  KafkaEventSource(KafkaSourceOptions options, PositionsFn positions);

  absl::Status Init();
  // Leaves the group (consumer close), serving the revocation, for at most kCloseTimeout. False
  // when it did not finish (the handle is then destroyed without another close).
  bool LeaveGroup();
  // Destroys the consumer (an rd_kafka_t*), waiting a bounded time (see the definition).
  void DestroyConsumer(void* consumer, bool left);
  absl::Status CommitOffsetsImpl(absl::Span<const SourcePosition> applied, bool async);
  absl::Status CommitOffsetsAsync(absl::Span<const SourcePosition> applied);
  // The result of an asynchronous commit (an rd_kafka_topic_partition_list_t), on the polling
  // thread.
  void OnCommitted(int err, const void* offsets);
  // The librdkafka offset to start a partition at, given its last applied offset (-1: none).
  int64_t StartOffset(int64_t applied) const;
  // Positions every partition of `partitions` (an rd_kafka_topic_partition_list_t) at
  // StartOffset(PositionsFn) and assigns them: added to the current assignment when
  // `incremental` (cooperative rebalancing), else in place of it. The group's assignments and
  // the static share both go through here. Records them in assigned_ only once assigned.
  absl::Status AssignAtStoredPositions(void* partitions, bool incremental);
  // librdkafka callbacks (trampolines in the .cc).
  void OnRebalance(int err, void* partitions);
  void OnStats(absl::string_view json);
  void OnError(int err, const char* reason);
  void OnDeadLetterDelivery(int err);
  // Counts a retried error in errors() and logs it, rate-limited, with "(retrying)" appended.
  void RetriedError(absl::string_view message);

  // Static share: the partitions of the share from the topics' metadata, or the first error.
  absl::StatusOr<std::vector<SourcePosition>> FetchShare();
  // The share thread: FetchShare() until it succeeds or the source is destroyed.
  void FindShare();
  // On the polling thread: assigns the share once FindShare() has found it.
  void AssignShare();

  // Decodes one message into out (or counts it as malformed).
  void HandleMessage(const void* message, std::vector<Event>* out);
  void Malformed(const void* message, const std::string& reason);
  float TypeWeight(absl::string_view type);

  const KafkaSourceOptions options_;
  PositionsFn positions_;  // the polling thread's (Create, Resume)
  std::unique_ptr<Clients> clients_;

  SourceStats stats_;
  absl::flat_hash_map<std::string, int64_t> malformed_;
  absl::flat_hash_map<std::string, float> resolved_weights_;
  std::string padded_;  // the message value, padded for simdjson
  RateLimiter malformed_log_;
  RateLimiter error_log_;
  std::atomic<int64_t> errors_{0};
  std::atomic<int64_t> dlq_failures_{0};
  std::atomic<int64_t> commit_errors_{0};
  std::atomic<bool> fatal_{false};
  std::atomic<bool> broker_down_{false};
  std::atomic<int64_t> broker_up_ns_{absl::GetCurrentTimeNanos()};

  // Static share: the metadata is read on share_thread_ (a metadata request blocks, and Poll()
  // must not: the engine polls all its sources on one thread with millisecond waits), the
  // partitions are assigned by Poll(), so that PositionsFn is only called on the polling thread.
  bool share_pending_ = false;  // polling thread: a share is configured but not assigned yet
  std::thread share_thread_;

  mutable absl::Mutex mu_;
  std::vector<SourcePosition> assigned_ ABSL_GUARDED_BY(mu_);
  std::string fatal_message_ ABSL_GUARDED_BY(mu_);
  bool share_stop_ ABSL_GUARDED_BY(mu_) = false;  // the destructor asks share_thread_ to stop
  // The share's partitions as found by share_thread_, until Poll() assigns them.
  std::optional<std::vector<SourcePosition>> share_found_ ABSL_GUARDED_BY(mu_);
};

}  // namespace freshet::stream

#endif  // FRESHET_STREAM_KAFKA_KAFKA_EVENT_SOURCE_H_
