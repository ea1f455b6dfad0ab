// KafkaProducer: writes events (or any key/value) to Kafka with an idempotent librdkafka
// producer (enable.idempotence=true, acks=all), and counts what the brokers acknowledged.
#ifndef FRESHET_STREAM_KAFKA_KAFKA_PRODUCER_H_
#define FRESHET_STREAM_KAFKA_KAFKA_PRODUCER_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "stream/event.h"

namespace freshet::stream {

// Plain values; copyable.
struct KafkaProducerOptions {
  std::string brokers;  // bootstrap.servers; required
  // Extra librdkafka configuration, applied last (e.g. message.timeout.ms, linger.ms,
  // compression.codec, security settings). Unknown keys are an InvalidArgument error.
  std::map<std::string, std::string> properties;
};

// Messages are partitioned by key with murmur2 (the Java client's partitioner), so a user's
// events land in the same partition whichever client wrote them.
//
// Thread-safe: Produce() and Flush() may be called from several threads.
class KafkaProducer {
 public:
  // InvalidArgument for a missing broker list or a property librdkafka rejects; Internal when the
  // client cannot be created. An unreachable broker is not an error here: messages wait (up to
  // message.timeout.ms, default 300 s) and then count as failed.
  static absl::StatusOr<std::unique_ptr<KafkaProducer>> Create(KafkaProducerOptions options);

  // Waits up to 10 s for outstanding messages, then destroys the client (what is still
  // outstanding is lost; call Flush() first to know).
  ~KafkaProducer();

  KafkaProducer(const KafkaProducer&) = delete;
  KafkaProducer& operator=(const KafkaProducer&) = delete;

  // Queues one message (key and value are copied). When the local queue is full, serves delivery
  // reports and retries (backpressure) for up to `queue_wait`; ResourceExhausted after that.
  // InvalidArgument for a message over the size limit; Internal after a fatal producer error.
  absl::Status Produce(absl::string_view topic, absl::string_view key, absl::string_view value,
                       absl::Duration queue_wait = absl::Seconds(30)) {
    return ProduceTo(topic, kAnyPartition, key, value, queue_wait);
  }
  // As Produce(), to partition `partition` of the topic (kAnyPartition: by key), for a stream
  // whose order matters across keys (the model topic of serving replicas).
  static constexpr int32_t kAnyPartition = -1;
  absl::Status ProduceTo(absl::string_view topic, int32_t partition, absl::string_view key,
                         absl::string_view value, absl::Duration queue_wait = absl::Seconds(30));

  // Produces the event as EventCodec::Encode writes it (stream/event_codec.h), keyed by
  // event.user.
  absl::Status ProduceEvent(absl::string_view topic, const Event& event,
                            absl::Duration queue_wait = absl::Seconds(30));

  // Waits until every queued message is acknowledged or has failed, for up to `timeout`
  // (InfiniteDuration: until then; librdkafka fails a message after message.timeout.ms).
  // DeadlineExceeded when messages are still outstanding; Unavailable naming the count and the
  // first error when any message since the previous Flush() was not acknowledged.
  absl::Status Flush(absl::Duration timeout);

  // Serves delivery reports without waiting.
  void Poll();

  // Creates `topic` with `partitions` partitions (replication factor -1: the broker default)
  // through the Admin API, waiting up to `timeout` for each of the metadata lookup and the
  // creation. OK when it already exists (whatever its partition count). Unavailable when the
  // broker cannot be reached; DeadlineExceeded or Unimplemented when it does not answer
  // CreateTopics (librdkafka's mock cluster does not implement it); other codes from the
  // broker's answer.
  absl::Status CreateTopic(absl::string_view topic, int partitions, absl::Duration timeout);

  int64_t produced() const { return produced_.load(std::memory_order_relaxed); }
  int64_t delivered() const { return delivered_.load(std::memory_order_relaxed); }
  int64_t failed() const { return failed_.load(std::memory_order_relaxed); }
  // Messages queued but not yet acknowledged or failed.
  int64_t outstanding() const;

 private:
  struct Client;
  friend struct KafkaProducerCallbacks;

  explicit KafkaProducer(KafkaProducerOptions options);
  absl::Status Init();
  void OnDelivery(int err);

  const KafkaProducerOptions options_;
  std::unique_ptr<Client> client_;
  std::atomic<int64_t> produced_{0};
  std::atomic<int64_t> delivered_{0};
  std::atomic<int64_t> failed_{0};

  absl::Mutex mu_;
  int64_t failed_since_flush_ ABSL_GUARDED_BY(mu_) = 0;
  std::string first_error_ ABSL_GUARDED_BY(mu_);
};

}  // namespace freshet::stream

#endif  // FRESHET_STREAM_KAFKA_KAFKA_PRODUCER_H_
