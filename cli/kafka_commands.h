// The Kafka subcommands of the `freshet` binary: `produce` (write an event log into a topic) and
// `broker` (a local development broker). Exit codes as in cli/commands.h.
#ifndef FRESHET_CLI_KAFKA_COMMANDS_H_
#define FRESHET_CLI_KAFKA_COMMANDS_H_

#include <string>
#include <vector>

#include "cli/commands.h"

namespace freshet::cli {

struct ProduceFlags {
  ConfigFlags config;   // for [events.types] weights of the input file
  DataFlags data;       // the log to read: any format `replay` reads
  std::string brokers;  // bootstrap.servers
  std::string topic;
  double rate = 0;     // events per second; 0: as fast as the broker takes them
  int partitions = 0;  // > 0: create the topic with this many partitions if it does not exist
  std::vector<std::string> properties;  // extra librdkafka properties, key=value
  bool quiet = false;                   // no progress line
};
// Writes every event of the file as the JSON event (ARCHITECTURE.md, "Event format") keyed by
// user, in replay order.
// Exits 1 if the file cannot be read or any message was not acknowledged.
int RunProduce(const ProduceFlags& flags);

struct BrokerFlags {
  std::vector<std::string> topics;
  int partitions = 4;
  int port = 0;  // 0: the mock cluster's own random port
};
// Starts DevBroker on 127.0.0.1, creates the topics, prints "bootstrap=127.0.0.1:PORT" on
// stdout and runs until SIGINT or SIGTERM (then exits 0).
int RunBroker(const BrokerFlags& flags);

}  // namespace freshet::cli

#endif  // FRESHET_CLI_KAFKA_COMMANDS_H_
