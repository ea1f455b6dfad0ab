// NewReplicaGroup: this process's rank of the replica group that the configuration's [replicas]
// section describes, joined over the transport it names — what `freshet serve` hands the engine
// (EngineOptions::replicas). README.md here says where each part of replicas lives.
#ifndef FRESHET_ENGINE_REPLICAS_REPLICA_GROUP_H_
#define FRESHET_ENGINE_REPLICAS_REPLICA_GROUP_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "config/config.h"
#include "engine/replicas/collective.h"
#include "kernels/backend.h"

namespace freshet::engine {

struct ReplicaGroupOptions {
  // The Kafka cluster (--brokers): where the kafka transport's exchange topic lives.
  std::string brokers;
  // This process also reads event files (--source file:PATH): every rank reads the whole of each
  // file it is given, so a warning says to give each rank its own users' file.
  bool reads_files = false;
};

// Null when config.replica_world_size is 1 (learning alone). Otherwise this process's rank,
// config.replica_rank of config.replica_world_size, with replicas.timeout_ms as its timeout, over
//   NCCL          replicas.transport = nccl, or auto on the cuda backend: NewNcclCollective
//                 (nccl_collective.h), its id published at replicas.rendezvous;
//   a Kafka topic replicas.transport = kafka, or auto on any other backend: NewKafkaCollective
//                 (kafka_collective.h) on options.brokers, the topic named by replicas.rendezvous.
// Waits for the other ranks as the transport does (NCCL: up to the timeout for rank 0's id), and
// logs the rank and the transport joined. InvalidArgument for a rank outside [0, world_size), a
// missing rendezvous, or the Kafka transport without brokers; Unimplemented for NCCL on a backend
// other than cuda; otherwise the transport's errors.
absl::StatusOr<std::unique_ptr<Collective>> NewReplicaGroup(const config::Config& config,
                                                            const kernels::Backend& backend,
                                                            const ReplicaGroupOptions& options);

}  // namespace freshet::engine

#endif  // FRESHET_ENGINE_REPLICAS_REPLICA_GROUP_H_
