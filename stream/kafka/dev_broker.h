// DevBroker: a Kafka broker for development and tests — librdkafka's mock cluster, in process,
// listening on a random loopback port.
//
// What it is: an in-memory imitation of the Kafka protocol inside librdkafka, good enough for
// producers, idempotent producers, consumer groups (eager protocols; cooperative-sticky is slow
// and unreliable against it) and offset commits. What it is not: durable (everything is lost
// when it is destroyed), large (it retains about 5 MiB per partition and drops older messages),
// or supported by the Admin API (create topics with CreateTopic() here). Production uses real
// Kafka through bootstrap.servers; nothing in freshet depends on the mock.
#ifndef FRESHET_STREAM_KAFKA_DEV_BROKER_H_
#define FRESHET_STREAM_KAFKA_DEV_BROKER_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace freshet::stream {

// Thread-safe: CreateTopic() may be called from any thread; clients connect from anywhere.
class DevBroker {
 public:
  // Starts a mock cluster of `brokers` brokers (>= 1). Internal if librdkafka cannot start it.
  static absl::StatusOr<std::unique_ptr<DevBroker>> Start(int brokers = 1);

  // Stops the cluster; clients still connected see the broker go away.
  ~DevBroker();

  DevBroker(const DevBroker&) = delete;
  DevBroker& operator=(const DevBroker&) = delete;

  // The bootstrap.servers string, "127.0.0.1:PORT[,...]".
  const std::string& bootstrap_servers() const { return bootstrap_; }

  // Creates `topic` with `partitions` partitions (replication factor 1). InvalidArgument for
  // partitions < 1 or an empty name, Internal for other failures. Producing to a topic that does
  // not exist creates it with the mock's default partition count.
  absl::Status CreateTopic(absl::string_view topic, int partitions);

  // Takes broker `broker_id` (1 ... brokers) down (`up` false: its connections are closed and new
  // ones refused) or brings it back, to exercise outages. Internal for an unknown broker.
  absl::Status SetBrokerUp(int broker_id, bool up);

 private:
  struct Cluster;
  explicit DevBroker(std::unique_ptr<Cluster> cluster, std::string bootstrap);

  std::unique_ptr<Cluster> cluster_;
  std::string bootstrap_;
};

}  // namespace freshet::stream

#endif  // FRESHET_STREAM_KAFKA_DEV_BROKER_H_
