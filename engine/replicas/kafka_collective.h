// KafkaCollective: the replicas' exchange (collective.h) over a Kafka topic, for ranks
// without GPUs (ARCHITECTURE.md, "Scale-out": a Kafka topic of model deltas between nodes).
// Every rank appends its message for exchange n to partition 0 of the exchange topic (split into
// chunks of at most 512 KiB) and reads that partition from its beginning until it holds exchange
// n from every rank. Kafka keeps each rank's messages in order, so ranks need no other
// coordination.
//
// The topic must be new for each launch of the group (e.g. hold a job id), like the NCCL
// rendezvous: messages of an earlier launch would be taken for this one's. Messages whose rank
// started more than `timeout` before this one are ignored as a safeguard. The topic is created
// on first write where the cluster allows it (auto.create.topics.enable); otherwise create it
// beforehand (one partition is enough). The exchange traffic is every rank's changed item rows
// every replicas.sync_ms (a join sends every row): size the interval to the network, and the
// topic's retention to hold a few exchanges. A rank that finds messages it had not read already
// deleted fails the exchange with DataLoss (the development broker keeps only about 5 MiB per
// partition: with large catalogs and short intervals a rank that falls behind can hit that).
#ifndef FRESHET_ENGINE_REPLICAS_KAFKA_COLLECTIVE_H_
#define FRESHET_ENGINE_REPLICAS_KAFKA_COLLECTIVE_H_

#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "engine/replicas/collective.h"

namespace freshet::engine {

struct KafkaCollectiveOptions {
  std::string brokers;  // bootstrap.servers; required
  std::string topic;    // the exchange topic; required, new for each launch of the group
  int rank = 0;
  int world_size = 1;
  // The longest wait for the other ranks in an exchange (and for the broker to take a message).
  absl::Duration timeout = absl::Seconds(60);
  // Extra librdkafka configuration for both clients (security settings, ...), applied last.
  std::map<std::string, std::string> properties;
};

// InvalidArgument for a missing broker list or topic, a rank outside [0, world_size), or a
// property librdkafka rejects; Internal when a client cannot be created. A broker that cannot be
// reached yet is not an error here: exchanges wait for it up to the timeout.
absl::StatusOr<std::unique_ptr<Collective>> NewKafkaCollective(KafkaCollectiveOptions options);

}  // namespace freshet::engine

#endif  // FRESHET_ENGINE_REPLICAS_KAFKA_COLLECTIVE_H_
