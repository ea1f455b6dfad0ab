// Collective: the ranks of a replica group exchanging byte strings. Replicas are engine processes
// that each learn their own share of the users (their own Kafka partitions) and keep one item
// model between them; every few milliseconds they exchange the item rows they changed
// (ReplicaSync, replica_sync.h, over learner::Learner::TakeReplicaChanges / MergeReplicaChanges)
// through one AllGather. README.md here says where each part of replicas lives.
//
// Implementations (NewReplicaGroup, replica_group.h, picks one from the configuration):
//   NCCL        NewNcclCollective (nccl_collective.h) on the cuda backend: one rank per process,
//               one GPU each; rank 0 publishes the NCCL unique id at a rendezvous (rendezvous.h: a
//               file or a Redis key).
//   Kafka       NewKafkaCollective (kafka_collective.h): a topic, for ranks without GPUs.
//   in-process  NewInProcessCollectives: the ranks are threads of one process (tests, and
//               several engines in one process).
#ifndef FRESHET_ENGINE_REPLICAS_COLLECTIVE_H_
#define FRESHET_ENGINE_REPLICAS_COLLECTIVE_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace freshet::engine {

// Where this process sits in its replica group, and how it finds the others.
struct CollectiveOptions {
  int rank = 0;
  int world_size = 1;
  // NCCL: where rank 0 publishes the unique id for the others (rendezvous.h): a file path
  // every rank can read, or redis://HOST:PORT/KEY. Must be fresh for every launch of the group
  // (e.g. contain a job id): a stale id makes the others wait for a dead group.
  std::string rendezvous;
  // The longest any rank waits for the others: at the rendezvous, and in every exchange.
  absl::Duration timeout = absl::Seconds(60);
};

// Thread-safety: not thread-safe; one thread drives a rank.
class Collective {
 public:
  virtual ~Collective() = default;

  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  // "nccl: <device>", "in-process".
  virtual std::string Name() const = 0;

  // Every rank calls AllGather the same number of times, in step; each call returns every rank's
  // `mine`, in rank order. DeadlineExceeded when some rank does not take part within the timeout
  // (it stopped, or crashed); Unavailable or Internal when the transport fails. After any error
  // the group is broken: every later call fails with FailedPrecondition.
  absl::StatusOr<std::vector<std::string>> AllGather(absl::string_view mine);

 protected:
  // One exchange of the transport (AllGather without the broken-group bookkeeping).
  virtual absl::StatusOr<std::vector<std::string>> Exchange(absl::string_view mine) = 0;

 private:
  absl::Status broken_ = absl::OkStatus();
};

// `world_size` ranks in this process, element r being rank r; each is driven by its own thread.
// InvalidArgument for world_size < 1.
absl::StatusOr<std::vector<std::unique_ptr<Collective>>> NewInProcessCollectives(
    int world_size, absl::Duration timeout);

}  // namespace freshet::engine

#endif  // FRESHET_ENGINE_REPLICAS_COLLECTIVE_H_
