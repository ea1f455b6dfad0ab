#include "engine/replicas/replica_group.h"

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "engine/replicas/kafka_collective.h"
#include "engine/replicas/nccl_collective.h"

namespace freshet::engine {

absl::StatusOr<std::unique_ptr<Collective>> NewReplicaGroup(const config::Config& config,
                                                            const kernels::Backend& backend,
                                                            const ReplicaGroupOptions& options) {
  if (config.replica_world_size <= 1) return nullptr;
  if (config.replica_rank >= config.replica_world_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("replicas.rank is ", config.replica_rank, ", but replicas.world_size is ",
                     config.replica_world_size, ": ranks are 0 .. world_size - 1"));
  }
  // auto: NCCL between GPUs, a Kafka topic between CPU-only nodes.
  const bool over_kafka = config.replica_transport == "kafka" ||
                          (config.replica_transport == "auto" && backend.Name() != "cuda");
  if (config.replica_rendezvous.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "replicas.world_size > 1 needs replicas.rendezvous, new for this launch of the group: ",
        over_kafka ? "the Kafka topic the ranks exchange through"
                   : "a file path every rank can read, or redis://HOST:PORT/KEY"));
  }
  if (over_kafka && options.brokers.empty()) {
    return absl::InvalidArgumentError(
        "replicas exchanging over Kafka (replicas.transport, on a CPU backend by default) need "
        "--brokers; with GPUs, --backend cuda exchanges over NCCL");
  }
  if (options.reads_files) {
    LogWarning(
        "replicas: every rank reads the whole of each --source file it is given; give each "
        "rank its own users' file (Kafka topics are split by partition)");
  }
  CollectiveOptions group;
  group.rank = config.replica_rank;
  group.world_size = config.replica_world_size;
  group.rendezvous = config.replica_rendezvous;
  group.timeout = absl::Milliseconds(config.replica_timeout_ms);
  LogInfo(absl::StrCat("replicas: rank ", group.rank, " of ", group.world_size,
                       ", waiting for the group through ", group.rendezvous));
  std::unique_ptr<Collective> replicas;
  if (over_kafka) {
    KafkaCollectiveOptions kafka_group;
    kafka_group.brokers = options.brokers;
    kafka_group.topic = group.rendezvous;
    kafka_group.rank = group.rank;
    kafka_group.world_size = group.world_size;
    kafka_group.timeout = group.timeout;
    FRESHET_ASSIGN_OR_RETURN(replicas, NewKafkaCollective(kafka_group));
  } else if (backend.Name() != "cuda") {
    return absl::UnimplementedError(
        absl::StrCat("replicas exchange item-model changes over NCCL, which the ", backend.Name(),
                     " backend does not have: run them with --backend cuda, one GPU per replica"));
  } else {
    FRESHET_ASSIGN_OR_RETURN(replicas, NewNcclCollective(backend, group));
  }
  LogInfo(absl::StrCat("replicas: joined over ", replicas->Name()));
  return replicas;
}

}  // namespace freshet::engine
