#include "stream/kafka/kafka_producer.h"

#include <librdkafka/rdkafka.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "stream/event_codec.h"
#include "stream/kafka/rdkafka_util.h"

namespace freshet::stream {
namespace {

constexpr int kDestroyFlushMs = 10000;

}  // namespace

struct KafkaProducer::Client {
  rd_kafka_t* rk = nullptr;
  absl::Mutex buffer_mu;
  std::string buffer ABSL_GUARDED_BY(buffer_mu);  // scratch for ProduceEvent
};

struct KafkaProducerCallbacks {
  static void Delivery(rd_kafka_t*, const rd_kafka_message_t* message, void* opaque) {
    static_cast<KafkaProducer*>(opaque)->OnDelivery(message->err);
  }
};

absl::StatusOr<std::unique_ptr<KafkaProducer>> KafkaProducer::Create(KafkaProducerOptions options) {
  if (options.brokers.empty()) {
    return absl::InvalidArgumentError("kafka producer: no brokers (bootstrap.servers) given");
  }
  std::unique_ptr<KafkaProducer> producer(new KafkaProducer(std::move(options)));
  FRESHET_RETURN_IF_ERROR(producer->Init());
  return producer;
}

KafkaProducer::KafkaProducer(KafkaProducerOptions options)
    : options_(std::move(options)), client_(std::make_unique<Client>()) {}

absl::Status KafkaProducer::Init() {
  rdkafka::ConfPtr conf = rdkafka::NewConf();
  FRESHET_RETURN_IF_ERROR(rdkafka::SetConf(conf.get(), "bootstrap.servers", options_.brokers));
  FRESHET_RETURN_IF_ERROR(rdkafka::SetConf(conf.get(), "enable.idempotence", "true"));
  FRESHET_RETURN_IF_ERROR(rdkafka::SetConf(conf.get(), "acks", "all"));
  FRESHET_RETURN_IF_ERROR(rdkafka::SetConf(conf.get(), "partitioner", "murmur2_random"));
  // Throughput: up to 5 ms of batching and large batches.
  FRESHET_RETURN_IF_ERROR(rdkafka::SetConf(conf.get(), "linger.ms", "5"));
  FRESHET_RETURN_IF_ERROR(rdkafka::SetConf(conf.get(), "batch.num.messages", "10000"));
  FRESHET_RETURN_IF_ERROR(rdkafka::SetConf(conf.get(), "queue.buffering.max.messages", "1000000"));
  FRESHET_RETURN_IF_ERROR(rdkafka::SetConf(conf.get(), options_.properties));
  rd_kafka_conf_set_opaque(conf.get(), this);
  rd_kafka_conf_set_dr_msg_cb(conf.get(), &KafkaProducerCallbacks::Delivery);
  FRESHET_ASSIGN_OR_RETURN(client_->rk, rdkafka::NewClient(RD_KAFKA_PRODUCER, std::move(conf)));
  return absl::OkStatus();
}

KafkaProducer::~KafkaProducer() {
  if (client_->rk == nullptr) return;
  if (rd_kafka_flush(client_->rk, kDestroyFlushMs) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    LogWarning(absl::StrCat("kafka producer: ", outstanding(),
                            " messages were still outstanding at shutdown"));
  }
  rd_kafka_destroy(client_->rk);
}

void KafkaProducer::OnDelivery(int err) {
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
    delivered_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  failed_.fetch_add(1, std::memory_order_relaxed);
  absl::MutexLock lock(&mu_);
  if (failed_since_flush_++ == 0) {
    first_error_ = rd_kafka_err2str(static_cast<rd_kafka_resp_err_t>(err));
  }
}

absl::Status KafkaProducer::ProduceTo(absl::string_view topic, int32_t partition,
                                      absl::string_view key, absl::string_view value,
                                      absl::Duration queue_wait) {
  const std::string topic_name(topic);
  const absl::Time deadline = absl::Now() + queue_wait;
  while (true) {
    const rd_kafka_resp_err_t err = rd_kafka_producev(
        client_->rk, RD_KAFKA_V_TOPIC(topic_name.c_str()), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_PARTITION(partition < 0 ? RD_KAFKA_PARTITION_UA : partition),
        RD_KAFKA_V_KEY(const_cast<char*>(key.data()), key.size()),
        RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()), RD_KAFKA_V_END);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      produced_.fetch_add(1, std::memory_order_relaxed);
      return absl::OkStatus();
    }
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
      char reason[512];
      rd_kafka_fatal_error(client_->rk, reason, sizeof(reason));
      return absl::InternalError(absl::StrCat("kafka producer: fatal error: ", reason));
    }
    if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL || absl::Now() >= deadline) {
      return rdkafka::KafkaError(err, absl::StrCat("kafka producer: producing to ", topic));
    }
    // The local queue is full: let deliveries drain it.
    rd_kafka_poll(client_->rk, 10);
  }
}

absl::Status KafkaProducer::ProduceEvent(absl::string_view topic, const Event& event,
                                         absl::Duration queue_wait) {
  absl::MutexLock lock(&client_->buffer_mu);
  client_->buffer.clear();
  EventCodec::Encode(event, &client_->buffer);
  return Produce(topic, event.user, client_->buffer, queue_wait);
}

void KafkaProducer::Poll() { rd_kafka_poll(client_->rk, 0); }

int64_t KafkaProducer::outstanding() const { return produced() - delivered() - failed(); }

absl::Status KafkaProducer::Flush(absl::Duration timeout) {
  const rd_kafka_resp_err_t err = rd_kafka_flush(client_->rk, rdkafka::TimeoutMs(timeout));
  absl::MutexLock lock(&mu_);
  if (failed_since_flush_ > 0) {
    absl::Status status = absl::UnavailableError(
        absl::StrCat("kafka producer: ", failed_since_flush_, " messages were not acknowledged by ",
                     options_.brokers, " (first error: ", first_error_, ")"));
    failed_since_flush_ = 0;
    first_error_.clear();
    return status;
  }
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return absl::DeadlineExceededError(absl::StrCat("kafka producer: ", outstanding(),
                                                    " messages still outstanding after ",
                                                    absl::FormatDuration(timeout)));
  }
  return absl::OkStatus();
}

absl::Status KafkaProducer::CreateTopic(absl::string_view topic, int partitions,
                                        absl::Duration timeout) {
  if (partitions < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("kafka: creating ", topic, ": partitions must be >= 1"));
  }
  const std::string name(topic);
  // Look first (all topics: asking for one would auto-create it on brokers that allow it).
  const rd_kafka_metadata_t* metadata = nullptr;
  const rd_kafka_resp_err_t metadata_err =
      rd_kafka_metadata(client_->rk, 1, nullptr, &metadata, rdkafka::TimeoutMs(timeout));
  if (metadata_err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return rdkafka::KafkaError(
        metadata_err, absl::StrCat("kafka: looking up topic ", topic, " at ", options_.brokers));
  }
  bool exists = false;
  for (int i = 0; i < metadata->topic_cnt; ++i) {
    exists = exists || (metadata->topics[i].topic == name &&
                        metadata->topics[i].err == RD_KAFKA_RESP_ERR_NO_ERROR);
  }
  rd_kafka_metadata_destroy(metadata);
  if (exists) return absl::OkStatus();

  char errstr[512];
  rd_kafka_NewTopic_t* new_topic =
      rd_kafka_NewTopic_new(name.c_str(), partitions, -1, errstr, sizeof(errstr));
  if (new_topic == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("kafka: creating ", topic, ": ", errstr));
  }
  rd_kafka_queue_t* queue = rd_kafka_queue_new(client_->rk);
  rd_kafka_AdminOptions_t* admin_options =
      rd_kafka_AdminOptions_new(client_->rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
  const int timeout_ms = rdkafka::TimeoutMs(timeout);
  if (timeout_ms >= 0) {
    rd_kafka_AdminOptions_set_request_timeout(admin_options, timeout_ms, errstr, sizeof(errstr));
    rd_kafka_AdminOptions_set_operation_timeout(admin_options, timeout_ms, errstr, sizeof(errstr));
  }
  rd_kafka_CreateTopics(client_->rk, &new_topic, 1, admin_options, queue);
  rd_kafka_event_t* event = rd_kafka_queue_poll(queue, timeout_ms < 0 ? -1 : timeout_ms + 1000);

  absl::Status status = absl::OkStatus();
  const std::string context = absl::StrCat("kafka: creating topic ", topic);
  if (event == nullptr) {
    status = absl::DeadlineExceededError(absl::StrCat(context, ": no answer in time"));
  } else if (rd_kafka_event_error(event) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    const rd_kafka_resp_err_t err = rd_kafka_event_error(event);
    status = rdkafka::KafkaError(err, context);
    if (err == RD_KAFKA_RESP_ERR__UNSUPPORTED_FEATURE ||
        err == RD_KAFKA_RESP_ERR_UNSUPPORTED_VERSION) {
      status = absl::UnimplementedError(status.message());
    } else if (err == RD_KAFKA_RESP_ERR__TIMED_OUT) {
      status = absl::DeadlineExceededError(status.message());
    }
  } else {
    const rd_kafka_CreateTopics_result_t* result = rd_kafka_event_CreateTopics_result(event);
    size_t count = 0;
    const rd_kafka_topic_result_t** topics = rd_kafka_CreateTopics_result_topics(result, &count);
    for (size_t i = 0; i < count; ++i) {
      const rd_kafka_resp_err_t err = rd_kafka_topic_result_error(topics[i]);
      if (err == RD_KAFKA_RESP_ERR_NO_ERROR || err == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
        continue;
      }
      const char* message = rd_kafka_topic_result_error_string(topics[i]);
      status = rdkafka::KafkaError(err, context);
      if (message != nullptr)
        status = absl::Status(status.code(), absl::StrCat(context, ": ", message));
    }
  }
  if (event != nullptr) rd_kafka_event_destroy(event);
  rd_kafka_AdminOptions_destroy(admin_options);
  rd_kafka_queue_destroy(queue);
  rd_kafka_NewTopic_destroy(new_topic);
  return status;
}

}  // namespace freshet::stream
