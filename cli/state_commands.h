// The subcommands that run or operate on a data directory: serve, inspect, snapshot.
#ifndef FRESHET_CLI_STATE_COMMANDS_H_
#define FRESHET_CLI_STATE_COMMANDS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "cli/commands.h"

namespace freshet::cli {

struct ServeFlags {
  ConfigFlags config;
  std::string data_dir;  // empty: nothing persisted
  std::string algorithm = "bpr";
  std::vector<std::string> sources;  // "file:PATH"
  DataFlags data;                    // how file sources are read (path unused)
  double rate = 0;                   // events/s per file source; 0 = as fast as possible
  std::string brokers;               // Kafka bootstrap servers
  std::vector<std::string> topics;
  std::string group = "freshet";
  std::vector<std::string> kafka_properties;  // librdkafka key=value, e.g. session.timeout.ms=6000
  std::string backend;
  bool exit_when_done = false;
  bool reset = false;
  double status_interval_s = 5;  // a status line on stderr this often; 0 = never
  // HTTP (the serving tier)
  std::string bind;  // empty: serve.bind
  int port = -1;     // -1: serve.port; 0: any free port
  bool no_http = false;
  // The item catalog to load at start (engine/catalog.h); empty: with a MovieLens source, u.item
  // or movies.dat beside it when present.
  std::string catalog;
  std::string catalog_format;  // empty: from the file name
  // Serving replicas (engine/follower/): with `follow`, a stateless replica of the learner that
  // publishes to model_topic (else serving_replicas.model_topic) and Redis (else
  // serving_replicas.redis); without it, a learner publishes there when both are set.
  bool follow = false;
  std::string model_topic;
  std::string redis;
  // With `follow`: the learner's HTTP address (http://HOST:PORT) to take the whole item state
  // from before following the topic (GET /admin/model/items).
  std::string bootstrap;
};
int RunServe(const ServeFlags& flags);

struct InspectFlags {
  std::string data_dir;
  std::string snapshot;  // inspect this snapshot's state instead of the live one
  std::string user;
  std::string item;
  bool json = false;
};
int RunInspect(const InspectFlags& flags);

struct SnapshotFlags {
  std::string action;  // create | list | inspect | restore | delete | export
  std::string data_dir;
  std::string server;  // URL of a running server (admin API)
  std::string token;   // bearer token for --server
  std::string id;
  bool json = false;
  // export
  std::string output;
  std::string format = "npy";  // npy | tsv
  bool users = false;
};
int RunSnapshot(const SnapshotFlags& flags);

}  // namespace freshet::cli

#endif  // FRESHET_CLI_STATE_COMMANDS_H_
