// End-to-end tests of the `freshet` binary: replay of MovieLens 100K with the shipped defaults,
// generated streams, and clear errors with a non-zero exit for bad input.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>

#include "gtest/gtest.h"
#include "simdjson.h"
#include "tests/freshet_binary.h"

namespace {

const std::string kMovieLens = FRESHET_SOURCE_DIR "/../shared/data/ml-100k/u.data";

using freshet::testing::Freshet;
using freshet::testing::kFreshet;
using freshet::testing::Result;

std::string TempDir(const std::string& name) {
  const std::string dir = ::testing::TempDir() + "/freshet_cli_" + name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

double ModelRecall(simdjson::dom::element report, const char* model) {
  return double(report["models"][model]["recall"].get_double().value());
}

TEST(FreshetCliTest, ReplaysMovieLens100kWithTheShippedDefaults) {
  if (!std::filesystem::exists(kMovieLens)) GTEST_SKIP() << "no " << kMovieLens;
  const std::string dir = TempDir("ml100k");
  const Result r =
      Freshet("replay --data " + kMovieLens +
              " --format movielens-100k --algo bpr,ials,cooc,hybrid --quiet --report " + dir);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  simdjson::dom::parser parser;
  simdjson::dom::element report;
  ASSERT_EQ(parser.load(dir + "/report.json").get(report), simdjson::SUCCESS);
  EXPECT_EQ(int64_t(report["events"].get_int64().value()), 100000);
  EXPECT_EQ(int64_t(report["k"].get_int64().value()), 10);
  const double popularity = ModelRecall(report, "popularity");
  // The protocol is pinned down: all-time popularity scores about 0.077 on this stream.
  EXPECT_NEAR(popularity, 0.077, 0.003);
  EXPECT_GE(ModelRecall(report, "bpr"), 0.15);     // the embedding model carries the short term
  EXPECT_GE(ModelRecall(report, "hybrid"), 0.20);  // the best model
  EXPECT_GT(ModelRecall(report, "cooc"), popularity);
  EXPECT_GT(ModelRecall(report, "ials"), popularity);
  EXPECT_EQ(report["windows"].get_array().size(), 20u);
  EXPECT_TRUE(std::filesystem::exists(dir + "/report.html"));
  EXPECT_NE(r.output.find("recall@10"), std::string::npos);  // the summary table
  // The breakdowns: MovieLens' one event type, the user activity split, the stability sample.
  simdjson::dom::element bpr = report["models"]["bpr"];
  EXPECT_EQ(int64_t(bpr["by_type"]["rating"]["evaluated"].get_int64().value()),
            int64_t(bpr["evaluated"].get_int64().value()));
  EXPECT_EQ(int64_t(bpr["by_user_activity"]["first"]["evaluated"].get_int64().value()) +
                int64_t(bpr["by_user_activity"]["later"]["evaluated"].get_int64().value()),
            int64_t(bpr["evaluated"].get_int64().value()));
  EXPECT_EQ(int64_t(bpr["stability"]["sample_every"].get_int64().value()), 10);
  EXPECT_GT(int64_t(bpr["stability"]["pairs"].get_int64().value()), 0);
  const double overlap = double(bpr["stability"]["mean_overlap"].get_double().value());
  EXPECT_GT(overlap, 0.0);
  EXPECT_LE(overlap, 1.0);
  EXPECT_NE(r.output.find("later ndcg"), std::string::npos);
}

TEST(FreshetCliTest, GeneratesAndReplaysASyntheticStream) {
  const std::string dir = TempDir("generate");
  Result r = Freshet("generate --events 20000 --users 300 --items 200 --seed 3 --output " + dir +
                     "/events.jsonl.gz");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = Freshet("replay --data " + dir +
              "/events.jsonl.gz --format jsonl --algo bpr --no-eval --quiet "
              "--report " +
              dir);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  simdjson::dom::parser parser;
  simdjson::dom::element report;
  ASSERT_EQ(parser.load(dir + "/report.json").get(report), simdjson::SUCCESS);
  EXPECT_EQ(int64_t(report["events"].get_int64().value()), 20000);
  EXPECT_EQ(int64_t(report["models"]["bpr"]["evaluated"].get_int64().value()), 0);
  EXPECT_GT(double(report["models"]["bpr"]["events_per_sec"].get_double().value()), 0.0);
}

// --ceiling prints, as a JSON line, what ranking each event by the generator's own distribution
// scores under replay's protocol: no model replayed on the same stream should come near it.
TEST(FreshetCliTest, GeneratePrintsTheStreamsCeiling) {
  const std::string dir = TempDir("ceiling");
  Result r =
      Freshet("generate --events 20000 --users 2000 --items 1000 --seed 5 --ceiling --output " +
              dir + "/events.jsonl");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const size_t at = r.output.find("{\"ceiling\":");
  ASSERT_NE(at, std::string::npos) << r.output;
  simdjson::dom::parser parser;
  simdjson::dom::element line;
  ASSERT_EQ(parser.parse(r.output.substr(at, r.output.find('\n', at) - at)).get(line),
            simdjson::SUCCESS)
      << r.output;
  const double ceiling = double(line["ceiling"]["recall"].get_double().value());
  EXPECT_EQ(int64_t(line["ceiling"]["k"].get_int64().value()), 10);
  EXPECT_EQ(int64_t(line["ceiling"]["events"].get_int64().value()), 20000);
  EXPECT_GT(int64_t(line["ceiling"]["evaluated"].get_int64().value()), 10000);
  EXPECT_LE(ceiling, 1.0);

  r = Freshet("replay --data " + dir +
              "/events.jsonl --format jsonl --algo cooc,bpr --quiet --report " + dir);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  simdjson::dom::element report;
  ASSERT_EQ(parser.load(dir + "/report.json").get(report), simdjson::SUCCESS);
  for (const char* model : {"popularity", "cooc", "bpr"}) {
    EXPECT_GT(ModelRecall(report, model), 0.0) << model;
    EXPECT_GT(ceiling, ModelRecall(report, model)) << model;
  }
  std::filesystem::remove_all(dir);
}

TEST(FreshetCliTest, ReplaysACsvWithAColumnMappingAndMalformedLines) {
  const std::string dir = TempDir("csv");
  {
    std::ofstream out(dir + "/log.csv");
    out << "session,product,price,action,time\n";
    for (int i = 0; i < 3000; ++i) {
      out << "s" << i % 50 << ",p" << (i * 7) % 40 << ",9.99,click," << 1700000000.5 + i << "\n";
      if (i % 500 == 0) out << "garbage line without enough columns\n";
    }
    out << "s1,p2,1.0,view,17000";  // truncated last line: still a valid record
  }
  const Result r = Freshet("replay --data " + dir +
                           "/log.csv --format csv --columns "
                           "user,item,_,type,ts --header --algo cooc --quiet --report " +
                           dir);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("malformed"), std::string::npos) << r.output;
  simdjson::dom::parser parser;
  simdjson::dom::element report;
  ASSERT_EQ(parser.load(dir + "/report.json").get(report), simdjson::SUCCESS);
  EXPECT_EQ(int64_t(report["malformed"].get_int64().value()), 6);
  EXPECT_EQ(int64_t(report["events"].get_int64().value()), 3001);
}

TEST(FreshetCliTest, BadInputIsAClearErrorWithNonZeroExit) {
  Result r = Freshet("replay --data /nonexistent/file.csv --format csv --columns user,item");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("/nonexistent/file.csv"), std::string::npos) << r.output;
  const std::string empty = ::testing::TempDir() + "/freshet_cli_empty.jsonl";
  std::ofstream(empty).close();
  r = Freshet("replay --data " + empty + " --format jsonl");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("no event to replay: the file holds none"), std::string::npos)
      << r.output;
  // produce says so before it reaches a broker (none listens on port 1).
  r = Freshet("produce --data " + empty + " --format jsonl --brokers 127.0.0.1:1 --topic t");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("no event to produce: the file holds none"), std::string::npos)
      << r.output;
  // A type name no event can carry.
  r = Freshet("replay --data " + empty + " --format jsonl --set events.types." +
              std::string(300, 'v') + "=2");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("longer than events.max_id_bytes (256)"), std::string::npos) << r.output;

  if (std::filesystem::exists(kMovieLens)) {
    r = Freshet("replay --data " + kMovieLens + " --format parquet");
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.output.find("parquet"), std::string::npos) << r.output;
    r = Freshet("replay --data " + kMovieLens + " --format csv --columns user,_,ts");
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.output.find("item"), std::string::npos) << r.output;
    r = Freshet("replay --data " + kMovieLens + " --algo deep-magic");
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.output.find("deep-magic"), std::string::npos) << r.output;
    r = Freshet("replay --data " + kMovieLens + " --set bpr.lr=fast");
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.output.find("bpr.lr"), std::string::npos) << r.output;
    // A type weight above events.max_weight would refuse every event of the type as malformed.
    r = Freshet("replay --data " + kMovieLens + " --type-weights rating=1e9");
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.output.find("--type-weights: events.types.rating"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("events.max_weight (100)"), std::string::npos) << r.output;
    // So is a file without a valid event: metrics over nothing are no result.
    r = Freshet("replay --data " + kMovieLens + " --format csv --columns user,item,_,ts,type");
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.output.find("no event to replay: every record (100000) is malformed"),
              std::string::npos)
        << r.output;
    r = Freshet("replay --data " + kMovieLens + " --backend cuda");
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.output.find("CUDA"), std::string::npos) << r.output;
  }
  // Replicas: an impossible rank, a missing rendezvous, Kafka replicas without brokers, and NCCL
  // on the CPU are clear errors.
  const std::string replicas = ::testing::TempDir() + "/freshet_cli_replicas";
  const std::string serve = "serve --no-http --data-dir " + replicas +
                            " --reset --source file:" + kMovieLens +
                            " --format movielens-100k --set replicas.world_size=2 ";
  r = Freshet(serve + "--set replicas.rank=2 --set replicas.rendezvous=" + replicas + ".id");
  EXPECT_EQ(r.exit_code, 2);  // a usage error
  EXPECT_NE(r.output.find("replicas.rank is 2"), std::string::npos) << r.output;
  r = Freshet(serve + "--set replicas.rank=1");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("replicas.rendezvous"), std::string::npos) << r.output;
  r = Freshet(serve + "--set replicas.rendezvous=" + replicas + ".id --backend cpu");
  EXPECT_EQ(r.exit_code, 2);  // on the CPU the exchange goes over Kafka: --brokers is needed
  EXPECT_NE(r.output.find("--brokers"), std::string::npos) << r.output;
  r = Freshet(serve + "--set replicas.rendezvous=" + replicas +
              ".id --set replicas.transport=nccl --backend cpu");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("NCCL"), std::string::npos) << r.output;
  r = Freshet("replay --data x --k 0");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("--k"), std::string::npos) << r.output;
  r = Freshet("replay");  // missing --data
  EXPECT_EQ(r.exit_code, 2);
  r = Freshet("generate --events 10 --output /nonexistent/dir/x.jsonl");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("/nonexistent/dir"), std::string::npos) << r.output;
}

TEST(FreshetCliTest, ConfigPrintsEveryKey) {
  const Result r = Freshet("config --set model.dim=32");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("dim = 32"), std::string::npos);
  EXPECT_NE(r.output.find("[bpr]"), std::string::npos);
}

// serve -> inspect -> snapshot create/list/inspect/export; a truncated snapshot is refused with a
// non-zero exit and the live state is untouched; another algorithm on the same data dir is refused.
TEST(FreshetCliTest, ServeInspectAndSnapshots) {
  const std::string dir = TempDir("state");
  const std::string stream = dir + "/events.jsonl";
  const std::string data = dir + "/data";
  ASSERT_EQ(Freshet("generate --events 20000 --users 300 --items 500 --output " + stream).exit_code,
            0);
  Result r = Freshet("serve --data-dir " + data + " --source file:" + stream +
                     " --format jsonl --exit-when-done --status-interval 0 --no-http");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("\"events_applied\":20000"), std::string::npos) << r.output;

  r = Freshet("inspect --json --data-dir " + data);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  ASSERT_EQ(parser.parse(r.output.substr(r.output.find('{'))).get(doc), simdjson::SUCCESS)
      << r.output;
  EXPECT_EQ(int64_t(doc["events_applied"].get_int64().value()), 20000);
  EXPECT_EQ(std::string_view(doc["algo"].get_string().value()), "bpr");
  EXPECT_EQ(int64_t(doc["dim"].get_int64().value()), 64);
  EXPECT_GT(int64_t(doc["users"].get_int64().value()), 0);
  EXPECT_GT(double(doc["memory"]["bytes_per_user"].get_double().value()), 0);
  EXPECT_EQ(int64_t(doc["positions"]["file:" + stream]["0"].get_int64().value()), 19999);

  // Restarting on a finished file applies nothing twice.
  r = Freshet("serve --data-dir " + data + " --source file:" + stream +
              " --format jsonl --exit-when-done --status-interval 0 --no-http");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("\"events_applied\":20000"), std::string::npos) << r.output;

  r = Freshet("serve --algo ials --data-dir " + data + " --source file:" + stream +
              " --format jsonl --exit-when-done --status-interval 0 --no-http");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("algorithm 'bpr'"), std::string::npos) << r.output;

  r = Freshet("snapshot create --id s1 --data-dir " + data);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = Freshet("snapshot list --json --data-dir " + data);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("\"id\":\"s1\""), std::string::npos) << r.output;
  r = Freshet("snapshot inspect --id s1 --data-dir " + data);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  r = Freshet("snapshot export --id s1 --output " + dir + "/export --data-dir " + data);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::ifstream ids(dir + "/export/items.ids");
  int64_t items = 0;
  for (std::string line; std::getline(ids, line);) ++items;
  EXPECT_GT(items, 0);
  // .npy: a header padded to 64 bytes, then items x 64 float32.
  const auto npy = std::filesystem::file_size(dir + "/export/items.npy");
  EXPECT_EQ((npy - items * 64 * 4) % 64, 0u);
  EXPECT_LT(npy - items * 64 * 4, 256u);

  // Truncate the snapshot's largest file (replacing it: table files are shared hard links).
  std::string victim;
  uintmax_t largest = 0;
  for (const auto& e : std::filesystem::directory_iterator(data + "/snapshots/s1")) {
    if (e.path().filename() != "snapshot.json" && e.file_size() > largest) {
      largest = e.file_size();
      victim = e.path().string();
    }
  }
  ASSERT_FALSE(victim.empty());
  std::filesystem::remove(victim);
  std::ofstream(victim) << std::string(static_cast<size_t>(largest / 2), '\0');
  r = Freshet("snapshot inspect --id s1 --data-dir " + data);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("truncated"), std::string::npos) << r.output;
  r = Freshet("snapshot restore --id s1 --data-dir " + data);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("truncated"), std::string::npos) << r.output;
  r = Freshet("inspect --json --data-dir " + data);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("\"events_applied\":20000"), std::string::npos) << r.output;
  r = Freshet("snapshot frobnicate --data-dir " + data);
  EXPECT_EQ(r.exit_code, 2);
  r = Freshet("inspect --data-dir " + dir + "/nothing-here");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("no freshet state"), std::string::npos) << r.output;
}

// The operator's snapshot round trip: serve a stream, snapshot, go on with a second stream,
// restore the snapshot, serve both again: the final counters equal an uninterrupted run's.
TEST(FreshetCliTest, SnapshotRestoreThenResumeEqualsAnUninterruptedRun) {
  const std::string dir = TempDir("roundtrip");
  const std::string a = dir + "/a.jsonl", b = dir + "/b.jsonl";
  ASSERT_EQ(
      Freshet("generate --events 8000 --users 200 --items 300 --seed 1 --output " + a).exit_code,
      0);
  ASSERT_EQ(
      Freshet("generate --events 6000 --users 200 --items 300 --seed 2 --output " + b).exit_code,
      0);
  const std::string both = " --source file:" + a + " --source file:" + b +
                           " --format jsonl --exit-when-done --status-interval 0 --no-http";
  auto events_of = [](const std::string& data_dir, const std::string& user) {
    const Result r = Freshet("inspect --json --data-dir " + data_dir + " --user " + user);
    simdjson::dom::parser parser;
    simdjson::dom::element doc;
    if (r.exit_code != 0 || parser.parse(r.output.substr(r.output.find('{'))).get(doc))
      return int64_t{-1};
    return int64_t(doc["events"].get_int64().value());
  };
  const std::string straight = dir + "/straight";
  ASSERT_EQ(Freshet("serve --data-dir " + straight + both).exit_code, 0);

  const std::string data = dir + "/data";
  Result r = Freshet("serve --data-dir " + data + " --source file:" + a +
                     " --format jsonl --exit-when-done --status-interval 0 --no-http");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  ASSERT_EQ(Freshet("snapshot create --id after-a --data-dir " + data).exit_code, 0);
  ASSERT_EQ(Freshet("serve --data-dir " + data + both).exit_code, 0);  // goes on with b
  r = Freshet("snapshot restore --id after-a --data-dir " + data);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = Freshet("inspect --json --data-dir " + data);
  EXPECT_NE(r.output.find("\"events_applied\":8000"), std::string::npos) << r.output;
  r = Freshet("serve --data-dir " + data + both);  // resumes: a is done, b from its start
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("\"events_applied\":14000"), std::string::npos) << r.output;
  for (const char* user : {"u0", "u1", "u17", "u150"}) {
    EXPECT_EQ(events_of(data, user), events_of(straight, user)) << user;
  }
}

// Snapshots of a running server through its admin API: `freshet snapshot ... --server URL`.
TEST(FreshetCliTest, SnapshotsOfARunningServer) {
  const std::string dir = TempDir("server_snapshots");
  const std::string stream = dir + "/s.jsonl";
  ASSERT_EQ(Freshet("generate --events 5000 --users 100 --items 200 --output " + stream).exit_code,
            0);
  const std::string out = dir + "/serve.out";
  const pid_t pid = fork();
  if (pid == 0) {
    freopen(out.c_str(), "w", stdout);
    freopen((dir + "/serve.err").c_str(), "w", stderr);
    execl(kFreshet.c_str(), kFreshet.c_str(), "serve", "--data-dir", (dir + "/data").c_str(),
          "--source", ("file:" + stream).c_str(), "--format", "jsonl", "--port", "0",
          "--status-interval", "0", "--set", "serve.admin_token=s3cret", nullptr);
    _exit(127);
  }
  std::string url;
  for (int i = 0; i < 200 && url.empty(); ++i) {
    std::ifstream in(out);
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind("http=", 0) == 0) url = "http://" + line.substr(5);
    }
    if (url.empty()) usleep(50000);
  }
  ASSERT_FALSE(url.empty()) << "serve did not print its address";
  Result r = Freshet("snapshot create --id live1 --token s3cret --server " + url);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  r = Freshet("snapshot list --token s3cret --server " + url);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("live1"), std::string::npos) << r.output;
  r = Freshet("snapshot restore --id live1 --token s3cret --server " + url);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  r = Freshet("snapshot list --token wrong --server " + url);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("token"), std::string::npos) << r.output;
  r = Freshet("snapshot inspect --id nope --token s3cret --server " + url);
  EXPECT_EQ(r.exit_code, 1);
  kill(pid, SIGINT);
  int status = 0;
  waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  r = Freshet("snapshot list --server http://127.0.0.1:1");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("cannot connect"), std::string::npos) << r.output;
}

// A stop signal that arrives while the sources are still opening (the HTTP server answers from the
// loaded state meanwhile, and a large file takes seconds to decode) stops the server cleanly: the
// process exits 0 after its final status line, rather than being killed by the signal's default
// action or, where it was started with the signal ignored, running on.
TEST(FreshetCliTest, ASignalWhileTheSourcesOpenStopsTheServerCleanly) {
  const std::string dir = TempDir("signal_while_opening");
  const std::string stream = dir + "/s.jsonl";
  ASSERT_EQ(
      Freshet("generate --events 600000 --users 5000 --items 500 --output " + stream).exit_code, 0);
  const std::string out = dir + "/serve.out";
  const std::string err = dir + "/serve.err";
  const pid_t pid = fork();
  if (pid == 0) {
    freopen(out.c_str(), "w", stdout);
    freopen(err.c_str(), "w", stderr);
    execl(kFreshet.c_str(), kFreshet.c_str(), "serve", "--data-dir", (dir + "/data").c_str(),
          "--source", ("file:" + stream).c_str(), "--format", "jsonl", "--port", "0",
          "--status-interval", "0", nullptr);
    _exit(127);
  }
  bool listening = false;
  for (int i = 0; i < 400 && !listening; ++i) {
    std::ifstream in(out);
    std::string line;
    while (std::getline(in, line)) listening = listening || line.rfind("http=", 0) == 0;
    if (!listening) usleep(10000);
  }
  ASSERT_TRUE(listening) << "serve did not print its address";
  kill(pid, SIGTERM);  // the server listens before it opens its sources: they are opening now
  int status = 0;
  waitpid(pid, &status, 0);
  std::ifstream in(err);
  const std::string log((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_TRUE(WIFEXITED(status)) << "killed by signal " << WTERMSIG(status) << "\n" << log;
  EXPECT_EQ(WEXITSTATUS(status), 0) << log;
  EXPECT_NE(log.find("final "), std::string::npos) << log;
}

}  // namespace
