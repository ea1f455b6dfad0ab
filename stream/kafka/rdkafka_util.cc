#include "stream/kafka/rdkafka_util.h"

#include <climits>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/log.h"

namespace freshet::stream::rdkafka {
namespace {

// librdkafka repeats connection failures for as long as a broker is down.
RateLimiter& LogLimiter() {
  static RateLimiter* limiter = new RateLimiter(20, absl::Seconds(10));
  return *limiter;
}

// Runs on librdkafka's threads; Log() is thread-safe.
void LogCallback(const rd_kafka_t* rk, int level, const char* facility, const char* message) {
  // syslog levels: 0-3 error, 4 warning, 5-6 info (notice, info), 7 debug.
  const LogLevel freshet_level = level <= 3   ? LogLevel::kError
                                 : level == 4 ? LogLevel::kWarning
                                 : level <= 6 ? LogLevel::kInfo
                                              : LogLevel::kDebug;
  if (freshet_level < MinLogLevel()) return;
  int64_t suppressed = 0;
  if (!LogLimiter().Allow(&suppressed)) return;
  std::string line = absl::StrCat("librdkafka ", rk != nullptr ? rd_kafka_name(rk) : "", " ",
                                  facility, ": ", message);
  if (suppressed > 0) absl::StrAppend(&line, " (", suppressed, " librdkafka log lines suppressed)");
  Log(freshet_level, line);
}

}  // namespace

absl::Status SetConf(rd_kafka_conf_t* conf, const std::string& key, const std::string& value) {
  char errstr[512];
  if (rd_kafka_conf_set(conf, key.c_str(), value.c_str(), errstr, sizeof(errstr)) !=
      RD_KAFKA_CONF_OK) {
    return absl::InvalidArgumentError(
        absl::StrCat("kafka property ", key, "=", value, ": ", errstr));
  }
  return absl::OkStatus();
}

absl::Status SetConf(rd_kafka_conf_t* conf, const std::map<std::string, std::string>& properties) {
  for (const auto& [key, value] : properties) {
    absl::Status status = SetConf(conf, key, value);
    if (!status.ok()) return status;
  }
  return absl::OkStatus();
}

ConfPtr NewConf() {
  ConfPtr conf(rd_kafka_conf_new());
  rd_kafka_conf_set_log_cb(conf.get(), &LogCallback);
  return conf;
}

absl::StatusOr<rd_kafka_t*> NewClient(rd_kafka_type_t type, ConfPtr conf) {
  char errstr[512];
  // On success rd_kafka_new takes ownership of the configuration.
  rd_kafka_t* rk = rd_kafka_new(type, conf.get(), errstr, sizeof(errstr));
  if (rk == nullptr) {
    return absl::InternalError(absl::StrCat("cannot create the kafka client: ", errstr));
  }
  conf.release();
  return rk;
}

int TimeoutMs(absl::Duration timeout) {
  if (timeout == absl::InfiniteDuration()) return -1;
  if (timeout <= absl::ZeroDuration()) return 0;
  const double ms = std::ceil(absl::ToDoubleMilliseconds(timeout));
  return ms >= INT_MAX ? INT_MAX : static_cast<int>(ms);
}

absl::Status KafkaError(rd_kafka_resp_err_t err, absl::string_view context) {
  const std::string message = absl::StrCat(context, ": ", rd_kafka_err2str(err));
  switch (err) {
    case RD_KAFKA_RESP_ERR__INVALID_ARG:
    case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
    case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
    case RD_KAFKA_RESP_ERR_INVALID_PARTITIONS:
    case RD_KAFKA_RESP_ERR_INVALID_REPLICATION_FACTOR:
    case RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION:
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
      return absl::InvalidArgumentError(message);
    case RD_KAFKA_RESP_ERR__FATAL:
    case RD_KAFKA_RESP_ERR__FAIL:
    case RD_KAFKA_RESP_ERR__BAD_MSG:
    case RD_KAFKA_RESP_ERR__CRIT_SYS_RESOURCE:
      return absl::InternalError(message);
    case RD_KAFKA_RESP_ERR__QUEUE_FULL:
      return absl::ResourceExhaustedError(message);
    default:
      return absl::UnavailableError(message);
  }
}

}  // namespace freshet::stream::rdkafka
