// Small helpers for librdkafka clients: configuration with Status errors, ownership of the C
// handles, and the log callback that routes librdkafka's logs through common/log.h. Shared by the
// Kafka adapters here and the replicas' Kafka transport (engine/replicas/kafka_collective.cc).
#ifndef FRESHET_STREAM_KAFKA_RDKAFKA_UTIL_H_
#define FRESHET_STREAM_KAFKA_RDKAFKA_UTIL_H_

#include <librdkafka/rdkafka.h>

#include <map>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace freshet::stream::rdkafka {

struct ConfDeleter {
  void operator()(rd_kafka_conf_t* conf) const { rd_kafka_conf_destroy(conf); }
};
using ConfPtr = std::unique_ptr<rd_kafka_conf_t, ConfDeleter>;

// Sets one property; InvalidArgument naming the key and librdkafka's reason otherwise.
absl::Status SetConf(rd_kafka_conf_t* conf, const std::string& key, const std::string& value);
// Sets every property of `properties`, in order.
absl::Status SetConf(rd_kafka_conf_t* conf, const std::map<std::string, std::string>& properties);

// A new configuration with freshet's log callback installed: librdkafka's log lines go to
// common/log.h (rate-limited), prefixed with the client's name.
ConfPtr NewConf();

// rd_kafka_new() taking ownership of `conf` (also on failure). Internal with librdkafka's reason
// when the client cannot be created.
absl::StatusOr<rd_kafka_t*> NewClient(rd_kafka_type_t type, ConfPtr conf);

// `timeout` as librdkafka milliseconds: >= 0, capped, -1 for an infinite duration.
int TimeoutMs(absl::Duration timeout);

// A Status for a librdkafka error code: Unavailable for transport, timeout and broker-side
// errors that a retry may fix, InvalidArgument for bad arguments, Internal otherwise. The
// message is "<context>: <librdkafka's description>".
absl::Status KafkaError(rd_kafka_resp_err_t err, absl::string_view context);

}  // namespace freshet::stream::rdkafka

#endif  // FRESHET_STREAM_KAFKA_RDKAFKA_UTIL_H_
