#include "config/config.h"

#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace freshet::config {
namespace {

const std::string kShippedConfig = FRESHET_SOURCE_DIR "/config/freshet.toml";

TEST(ConfigTest, ShippedFileDocumentsEveryKeyWithItsDefault) {
  absl::StatusOr<Config> loaded = LoadConfigFile(kShippedConfig);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  // Loading the documented file changes nothing: it states the built-in defaults.
  EXPECT_EQ(ToToml(*loaded), ToToml(Config{}));
  std::ifstream in(kShippedConfig);
  std::stringstream text;
  text << in.rdbuf();
  for (const ConfigKey& key : ConfigKeys()) {
    const std::string name = key.name.substr(key.name.find('.') + 1);
    EXPECT_NE(text.str().find("\n" + name + " = "), std::string::npos) << key.name;
  }
}

TEST(ConfigTest, OverridesApplyInOrder) {
  Config config;
  ASSERT_TRUE(ApplyOverrides(&config, {"bpr.lr=0.5", "model.dim = 32", "bpr.lr=0.25",
                                       "bpr.loss=bpr", "events.types.like=3"})
                  .ok());
  EXPECT_FLOAT_EQ(config.bpr_lr, 0.25f);
  EXPECT_EQ(config.dim, 32);
  EXPECT_EQ(config.bpr_loss, "bpr");
  EXPECT_FLOAT_EQ(config.type_weights.at("like"), 3.0f);
  EXPECT_EQ(*GetValue(config, "model.dim"), "32");
}

TEST(ConfigTest, OverridesAreCheckedTogether) {
  // Valid together in either order, though the first alone breaks a check across keys.
  for (const std::vector<std::string>& sets :
       {std::vector<std::string>{"history.recent=16", "ials.window=16"},
        std::vector<std::string>{"ials.window=16", "history.recent=16"}}) {
    Config config;
    ASSERT_TRUE(ApplyOverrides(&config, sets).ok()) << sets[0];
    EXPECT_EQ(config.history_recent, 16);
    EXPECT_EQ(config.ials_window, 16);
  }
  // Invalid together: refused, and nothing of it applied.
  Config config;
  const absl::Status status = ApplyOverrides(&config, {"model.dim=32", "history.recent=16"});
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("history.recent"), std::string::npos) << status;
  EXPECT_EQ(config.dim, Config{}.dim);
  EXPECT_EQ(config.history_recent, Config{}.history_recent);
}

TEST(ConfigTest, RejectsUnknownKeysWithASuggestion) {
  Config config;
  absl::Status status = SetValue(&config, "bpr.lrr", "0.1");
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("bpr.lr"), std::string::npos) << status;
  EXPECT_EQ(ApplyOverrides(&config, {"no-equals-sign"}).code(), absl::StatusCode::kInvalidArgument);
}

TEST(ConfigTest, RejectsBadValues) {
  Config config;
  EXPECT_EQ(SetValue(&config, "model.dim", "sixty-four").code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(SetValue(&config, "model.dim", "0").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(SetValue(&config, "bpr.lr", "nan").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(SetValue(&config, "bpr.loss", "hinge").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(SetValue(&config, "events.types.view", "-1").code(),
            absl::StatusCode::kInvalidArgument);
  // Cross-key constraint: the short-term window must fit in the remembered history.
  EXPECT_EQ(SetValue(&config, "history.recent", "2").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(config.dim, Config{}.dim);  // failed sets leave valid values in place
}

// The blend's quality preset steps the ranker on every event and changes no other key, so its
// state has the defaults' row layout.
TEST(ConfigTest, TheBlendQualityPresetLoads) {
  absl::StatusOr<Config> preset = LoadConfigFile(FRESHET_SOURCE_DIR "/config/blend-quality.toml");
  ASSERT_TRUE(preset.ok()) << preset.status();
  EXPECT_EQ(preset->blend_train_cost, preset->blend_sample);  // one step's cost per event
  for (const ConfigKey& key : ConfigKeys()) {
    if (key.name == "blend.train_cost") continue;
    EXPECT_EQ(*GetValue(*preset, key.name), *GetValue(Config{}, key.name)) << key.name;
  }
}

// The blend's fast preset is its former defaults (no profile or ease, 64 items of history, fewer
// ranker steps), and changes no other key.
TEST(ConfigTest, TheBlendFastPresetLoads) {
  absl::StatusOr<Config> preset = LoadConfigFile(FRESHET_SOURCE_DIR "/config/blend-fast.toml");
  ASSERT_TRUE(preset.ok()) << preset.status();
  EXPECT_EQ(preset->blend_features, "bpr,cooc,history,transitions,popularity,trending,ials");
  EXPECT_EQ(preset->history_recent, 64);
  EXPECT_LT(preset->blend_train_cost, Config{}.blend_train_cost);
  EXPECT_FALSE(preset->blend_context_steps);
  EXPECT_EQ(preset->blend_sparse_scale, "sd");
  for (const ConfigKey& key : ConfigKeys()) {
    if (absl::StartsWith(key.name, "blend.") || key.name == "history.recent") continue;
    EXPECT_EQ(*GetValue(*preset, key.name), *GetValue(Config{}, key.name)) << key.name;
  }
}

// The reference preset is cooc with its refinements off (5 items, no decay, raw counts, no
// sessions) and all-time popularity for unknown users, and changes no other key.
TEST(ConfigTest, TheReferencePresetLoads) {
  absl::StatusOr<Config> preset = LoadConfigFile(FRESHET_SOURCE_DIR "/config/reference.toml");
  ASSERT_TRUE(preset.ok()) << preset.status();
  EXPECT_EQ(preset->cooc_window, 5);
  EXPECT_EQ(preset->cooc_decay, 1.0f);
  EXPECT_EQ(preset->cooc_norm_exponent, 0.0f);
  EXPECT_EQ(preset->cooc_session_gap_s, 0.0);
  EXPECT_EQ(preset->popularity_new_users, "all");
  for (const ConfigKey& key : ConfigKeys()) {
    if (absl::StartsWith(key.name, "cooc.") || key.name == "popularity.new_users") continue;
    EXPECT_EQ(*GetValue(*preset, key.name), *GetValue(Config{}, key.name)) << key.name;
  }
}

TEST(ConfigTest, TomlErrorsNameFileAndLine) {
  absl::StatusOr<Config> bad = ParseConfig("[bpr]\nlr = 0.1\nnegatives = \"four\"\n", "my.toml");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("my.toml:3"), std::string::npos) << bad.status();
  bad = ParseConfig("[bpr\n", "broken.toml");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("broken.toml"), std::string::npos);
  bad = ParseConfig("[model]\ncolour = 3\n", "x.toml");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(LoadConfigFile("/nonexistent/freshet.toml").status().code(),
            absl::StatusCode::kNotFound);
}

TEST(ConfigTest, ParsesTablesIncludingEventTypes) {
  absl::StatusOr<Config> config =
      ParseConfig("[model]\ndim = 16\n[events.types]\nview = 0.5\nshare = 3\n", "t.toml");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->dim, 16);
  EXPECT_FLOAT_EQ(config->type_weights.at("view"), 0.5f);
  EXPECT_FLOAT_EQ(config->type_weights.at("share"), 3.0f);
  EXPECT_FLOAT_EQ(config->type_weights.at("purchase"), 8.0f);  // defaults stay
}

// The admin token is stored with the state and shown by /admin/config through ToToml: never there.
TEST(ConfigTest, TheAdminTokenIsNeverWrittenOut) {
  Config config;
  ASSERT_TRUE(SetValue(&config, "serve.admin_token", "s3cret-token").ok());
  const std::string toml = ToToml(config);
  EXPECT_EQ(toml.find("s3cret-token"), std::string::npos) << toml;
  EXPECT_NE(toml.find("(set, not shown)"), std::string::npos);
  absl::StatusOr<Config> back = ParseConfig(toml, "written.toml");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->serve_admin_token, "");
}

TEST(ConfigTest, TypeWeightsAboveTheEventBoundAreRefused) {
  Config config;
  EXPECT_FALSE(SetValue(&config, "events.types.purchase", "500").ok());
  EXPECT_FALSE(SetValue(&config, "events.max_weight", "4").ok());  // below purchase = 8
  EXPECT_TRUE(SetValue(&config, "events.max_weight", "1000").ok());
  EXPECT_TRUE(SetValue(&config, "events.types.purchase", "500").ok());
}

// A type name longer than any event's type could be is a mistake, whichever side changes.
TEST(ConfigTest, TypeNamesLongerThanAnEventTypeAreRefused) {
  Config config;
  const std::string long_name(300, 'v');
  absl::Status status = SetValue(&config, absl::StrCat("events.types.", long_name), "2");
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.message().find("300 bytes"), std::string::npos) << status;
  EXPECT_NE(status.message().find("events.max_id_bytes (256)"), std::string::npos) << status;
  EXPECT_LT(status.message().size(), 200u) << "the name is cut, not printed whole";
  EXPECT_EQ(config.type_weights.count(long_name), 0u);
  absl::StatusOr<Config> parsed =
      ParseConfig(absl::StrCat("[events.types]\n", long_name, " = 2\n"), "t.toml");
  EXPECT_FALSE(parsed.ok());
  // Lowering the bound below a name in use is refused too ("purchase", 8 bytes, is a default).
  EXPECT_FALSE(SetValue(&config, "events.max_id_bytes", "7").ok());
  EXPECT_TRUE(SetValue(&config, "events.max_id_bytes", "8").ok());
}

// A state's stored configuration read back names no change when nothing changed, and names each
// counting setting that did, only for the tables the algorithm keeps.
TEST(ConfigTest, CountingChangesNameTheTableSettingsThatDiffer) {
  Config before;
  ASSERT_TRUE(SetValue(&before, "cooc.decay", "0.7").ok());  // not exactly representable
  absl::StatusOr<Config> stored = ParseConfig(ToToml(before), "stored");
  ASSERT_TRUE(stored.ok()) << stored.status();
  for (const char* algorithm : {"bpr", "ials", "cooc", "hybrid", "blend"}) {
    EXPECT_TRUE(CountingChanges(algorithm, *stored, before).empty()) << algorithm;
  }

  Config now = before;
  ASSERT_TRUE(SetValue(&now, "cooc.window", "32").ok());
  ASSERT_TRUE(SetValue(&now, "blend.topics_window", "16").ok());
  ASSERT_TRUE(SetValue(&now, "bpr.lr", "0.01").ok());  // a learning rate: not how events count
  EXPECT_THAT(CountingChanges("blend", *stored, now),
              testing::ElementsAre("cooc.window 16 -> 32", "blend.topics_window 32 -> 16"));
  EXPECT_THAT(CountingChanges("cooc", *stored, now), testing::ElementsAre("cooc.window 16 -> 32"));
  EXPECT_TRUE(CountingChanges("bpr", *stored, now).empty());

  // Only the tables blend.features keeps: without cooc, history and last, no cooc table.
  ASSERT_TRUE(SetValue(&now, "blend.features", "bpr,topics").ok());
  EXPECT_THAT(CountingChanges("blend", *stored, now),
              testing::ElementsAre("blend.topics_window 32 -> 16"));
  ASSERT_TRUE(SetValue(&now, "blend.features", "bpr,popularity").ok());
  ASSERT_TRUE(SetValue(&now, "blend.session_start", "false").ok());
  EXPECT_TRUE(CountingChanges("blend", *stored, now).empty());
}

// Event weights count for every model: a changed, added or dropped type weight, and a changed
// default weight, are named for each algorithm, types by name.
TEST(ConfigTest, CountingChangesNameChangedEventWeights) {
  Config before;
  ASSERT_TRUE(SetValue(&before, "events.types.rating", "0.3").ok());
  absl::StatusOr<Config> stored = ParseConfig(ToToml(before), "stored");
  ASSERT_TRUE(stored.ok()) << stored.status();
  Config now = before;
  ASSERT_TRUE(SetValue(&now, "events.types.purchase", "4").ok());
  ASSERT_TRUE(SetValue(&now, "events.types.like", "3").ok());
  ASSERT_TRUE(SetValue(&now, "events.default_weight", "0.5").ok());
  now.type_weights.erase("rating");
  for (const char* algorithm : {"popularity", "bpr", "ials", "cooc", "hybrid", "blend"}) {
    EXPECT_THAT(CountingChanges(algorithm, *stored, now),
                ::testing::ElementsAre(
                    "events.default_weight 1.0 -> 0.5", "events.types.like (unset) -> 3.0",
                    "events.types.purchase 8.0 -> 4.0", "events.types.rating 0.3 -> (unset)"))
        << algorithm;
  }
}

}  // namespace
}  // namespace freshet::config
