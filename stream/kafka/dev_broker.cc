#include "stream/kafka/dev_broker.h"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "stream/kafka/rdkafka_util.h"

namespace freshet::stream {

// The mock cluster needs a client handle to own it; the cluster is destroyed before the handle.
struct DevBroker::Cluster {
  rd_kafka_t* rk = nullptr;
  rd_kafka_mock_cluster_t* mock = nullptr;

  ~Cluster() {
    if (mock != nullptr) rd_kafka_mock_cluster_destroy(mock);
    if (rk != nullptr) rd_kafka_destroy(rk);
  }
};

absl::StatusOr<std::unique_ptr<DevBroker>> DevBroker::Start(int brokers) {
  if (brokers < 1) return absl::InvalidArgumentError("dev broker: brokers must be >= 1");
  auto cluster = std::make_unique<Cluster>();
  rdkafka::ConfPtr conf = rdkafka::NewConf();
  FRESHET_RETURN_IF_ERROR(rdkafka::SetConf(conf.get(), "client.id", "freshet-dev-broker"));
  // The handle only owns the cluster and never connects: keep its configuration notices quiet.
  FRESHET_RETURN_IF_ERROR(rdkafka::SetConf(conf.get(), "log_level", "3"));
  FRESHET_ASSIGN_OR_RETURN(cluster->rk, rdkafka::NewClient(RD_KAFKA_PRODUCER, std::move(conf)));
  cluster->mock = rd_kafka_mock_cluster_new(cluster->rk, brokers);
  if (cluster->mock == nullptr) {
    return absl::InternalError("dev broker: librdkafka could not start its mock cluster");
  }
  std::string bootstrap = rd_kafka_mock_cluster_bootstraps(cluster->mock);
  return std::unique_ptr<DevBroker>(new DevBroker(std::move(cluster), std::move(bootstrap)));
}

DevBroker::DevBroker(std::unique_ptr<Cluster> cluster, std::string bootstrap)
    : cluster_(std::move(cluster)), bootstrap_(std::move(bootstrap)) {}

DevBroker::~DevBroker() = default;

absl::Status DevBroker::CreateTopic(absl::string_view topic, int partitions) {
  if (topic.empty()) return absl::InvalidArgumentError("dev broker: empty topic name");
  if (partitions < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("dev broker: topic ", topic, ": partitions must be >= 1"));
  }
  const std::string name(topic);
  const rd_kafka_resp_err_t err =
      rd_kafka_mock_topic_create(cluster_->mock, name.c_str(), partitions, 1);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return absl::InternalError(
        absl::StrCat("dev broker: creating topic ", topic, ": ", rd_kafka_err2str(err)));
  }
  return absl::OkStatus();
}

absl::Status DevBroker::SetBrokerUp(int broker_id, bool up) {
  const rd_kafka_resp_err_t err = up ? rd_kafka_mock_broker_set_up(cluster_->mock, broker_id)
                                     : rd_kafka_mock_broker_set_down(cluster_->mock, broker_id);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return absl::InternalError(absl::StrCat("dev broker: setting broker ", broker_id,
                                            up ? " up: " : " down: ", rd_kafka_err2str(err)));
  }
  return absl::OkStatus();
}

}  // namespace freshet::stream
