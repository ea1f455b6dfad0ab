// NewReplicaGroup (engine/replicas/replica_group.h), the group `freshet serve` builds from
// [replicas]: alone without one; an impossible rank, a missing rendezvous and the Kafka transport
// without brokers are usage errors; NCCL needs the cuda backend; a group over Kafka's development
// broker joins.
#include "engine/replicas/replica_group.h"

#include <unistd.h>

#include <memory>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "config/config.h"
#include "engine/replicas/collective.h"
#include "engine/replicas/nccl_collective.h"
#include "gtest/gtest.h"
#include "kernels/backend.h"
#include "stream/kafka/dev_broker.h"

namespace freshet::engine {
namespace {

config::Config Replicas(int rank, int world_size, std::string rendezvous) {
  config::Config config;
  config.replica_rank = rank;
  config.replica_world_size = world_size;
  config.replica_rendezvous = std::move(rendezvous);
  config.replica_timeout_ms = 2000;
  return config;
}

std::unique_ptr<kernels::Backend> Cpu() {
  absl::StatusOr<std::unique_ptr<kernels::Backend>> cpu = kernels::CreateBackend("cpu");
  EXPECT_TRUE(cpu.ok()) << cpu.status();
  return cpu.ok() ? *std::move(cpu) : nullptr;
}

TEST(ReplicaGroupTest, AloneThereIsNoGroup) {
  std::unique_ptr<kernels::Backend> cpu = Cpu();
  ASSERT_NE(cpu, nullptr);
  absl::StatusOr<std::unique_ptr<Collective>> group =
      NewReplicaGroup(config::Config(), *cpu, ReplicaGroupOptions());
  ASSERT_TRUE(group.ok()) << group.status();
  EXPECT_EQ(*group, nullptr);
}

TEST(ReplicaGroupTest, BadConfigurationsAreClearErrors) {
  std::unique_ptr<kernels::Backend> cpu = Cpu();
  ASSERT_NE(cpu, nullptr);
  ReplicaGroupOptions with_brokers;
  with_brokers.brokers = "127.0.0.1:1";
  absl::Status s = NewReplicaGroup(Replicas(2, 2, "t"), *cpu, with_brokers).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_NE(s.message().find("replicas.rank is 2"), std::string::npos) << s;
  s = NewReplicaGroup(Replicas(1, 2, ""), *cpu, with_brokers).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_NE(s.message().find("replicas.rendezvous"), std::string::npos) << s;
  // On the CPU the exchange goes over Kafka by default: brokers are needed.
  s = NewReplicaGroup(Replicas(0, 2, "t"), *cpu, ReplicaGroupOptions()).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_NE(s.message().find("--brokers"), std::string::npos) << s;
  // NCCL on the CPU.
  config::Config nccl = Replicas(0, 2, "/tmp/never-used.id");
  nccl.replica_transport = "nccl";
  s = NewReplicaGroup(nccl, *cpu, ReplicaGroupOptions()).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnimplemented) << s;
  EXPECT_NE(s.message().find("NCCL"), std::string::npos) << s;
  s = NewNcclCollective(*cpu, CollectiveOptions()).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
}

TEST(ReplicaGroupTest, ARankJoinsOverKafka) {
  auto broker = stream::DevBroker::Start();
  ASSERT_TRUE(broker.ok()) << broker.status();
  std::unique_ptr<kernels::Backend> cpu = Cpu();
  ASSERT_NE(cpu, nullptr);
  ReplicaGroupOptions options;
  options.brokers = (*broker)->bootstrap_servers();
  const std::string topic = absl::StrCat("replica-group-", getpid());
  absl::StatusOr<std::unique_ptr<Collective>> group =
      NewReplicaGroup(Replicas(1, 2, topic), *cpu, options);
  ASSERT_TRUE(group.ok()) << group.status();
  ASSERT_NE(*group, nullptr);
  EXPECT_EQ((*group)->rank(), 1);
  EXPECT_EQ((*group)->world_size(), 2);
  EXPECT_NE((*group)->Name().find(topic), std::string::npos) << (*group)->Name();
}

}  // namespace
}  // namespace freshet::engine
