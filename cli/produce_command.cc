// `freshet produce`: writes an event log into a Kafka topic, keyed by user, optionally at a
// steady rate.
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "cli/common_flags.h"
#include "cli/kafka_commands.h"
#include "cli/progress_line.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "stream/kafka/kafka_producer.h"

namespace freshet::cli {
namespace {

constexpr size_t kReadBatch = 4096;
constexpr absl::Duration kProgressPeriod = absl::Milliseconds(200);

absl::StatusOr<std::map<std::string, std::string>> ParseProperties(
    const std::vector<std::string>& specs) {
  std::map<std::string, std::string> properties;
  for (const std::string& spec : specs) {
    const size_t eq = spec.find('=');
    if (eq == std::string::npos || eq == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("--property wants key=value, got \"", spec, "\""));
    }
    properties[spec.substr(0, eq)] = spec.substr(eq + 1);
  }
  return properties;
}

absl::Status Produce(const ProduceFlags& flags) {
  if (flags.rate < 0) return absl::InvalidArgumentError("--rate must be >= 0");
  FRESHET_ASSIGN_OR_RETURN(config::Config config, LoadConfig(flags.config));
  FRESHET_ASSIGN_OR_RETURN(auto properties, ParseProperties(flags.properties));
  FRESHET_ASSIGN_OR_RETURN(std::unique_ptr<stream::FileEventSource> source,
                           OpenDataFile(flags.data, config));
  // Checked before the broker is reached: a topic created for nothing would outlive the mistake.
  FRESHET_RETURN_IF_ERROR(RequireEvents(*source, "produce"));
  FRESHET_ASSIGN_OR_RETURN(std::unique_ptr<stream::KafkaProducer> producer,
                           stream::KafkaProducer::Create(
                               {.brokers = flags.brokers, .properties = std::move(properties)}));
  if (flags.partitions > 0) {
    const absl::Status created =
        producer->CreateTopic(flags.topic, flags.partitions, absl::Seconds(5));
    if (absl::IsUnimplemented(created) || absl::IsDeadlineExceeded(created)) {
      // librdkafka's mock cluster (`freshet broker`) has no CreateTopics.
      LogWarning(absl::StrCat(created.message(),
                              "; the topic will be created on first use with the broker's "
                              "default partition count (with `freshet broker`, pass --topics)"));
    } else if (!created.ok()) {
      return created;
    }
  }

  const int64_t total = source->size();
  LogInfo(
      absl::StrCat("producing ", WithThousands(total), " events from ", source->Name(), " to ",
                   flags.topic, " at ", flags.brokers,
                   flags.rate > 0 ? absl::StrCat(" at ", flags.rate, " events/s") : std::string()));
  ProgressLine progress(!flags.quiet && ProgressLine().enabled());
  const absl::Time start = absl::Now();
  absl::Time next_progress = start;
  int64_t sent = 0;
  std::vector<stream::Event> batch;
  while (!source->Finished()) {
    batch.clear();
    FRESHET_RETURN_IF_ERROR(source->Poll(kReadBatch, absl::ZeroDuration(), &batch));
    for (const stream::Event& event : batch) {
      if (flags.rate > 0) {
        // Event i leaves at start + i / rate: a steady rate without drift.
        const absl::Time due = start + absl::Seconds(static_cast<double>(sent) / flags.rate);
        const absl::Duration ahead = due - absl::Now();
        if (ahead > absl::Milliseconds(1)) {
          producer->Poll();
          absl::SleepFor(ahead);
        }
      }
      FRESHET_RETURN_IF_ERROR(producer->ProduceEvent(flags.topic, event));
      ++sent;
    }
    const absl::Time now = absl::Now();
    if (now >= next_progress) {
      producer->Poll();
      progress.Update("produce", sent, total, absl::ToDoubleSeconds(now - start));
      next_progress = now + kProgressPeriod;
    }
  }
  // Every message is acknowledged or has failed once message.timeout.ms has passed.
  const absl::Status flushed = producer->Flush(absl::InfiniteDuration());
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  progress.Update("produce", sent, total, seconds);
  progress.Finish();
  FRESHET_RETURN_IF_ERROR(flushed);
  std::fprintf(stderr, "produced %s events to %s in %.2f s (%s events/s), all acknowledged\n",
               WithThousands(producer->delivered()).c_str(), flags.topic.c_str(), seconds,
               HumanRate(seconds > 0 ? static_cast<double>(sent) / seconds : 0).c_str());
  return absl::OkStatus();
}

}  // namespace

int RunProduce(const ProduceFlags& flags) {
  const absl::Status status = Produce(flags);
  if (!status.ok()) {
    PrintError(status);
    return 1;
  }
  return 0;
}

}  // namespace freshet::cli
