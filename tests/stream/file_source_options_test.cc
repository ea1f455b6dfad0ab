#include "stream/file_source_options.h"

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace freshet::stream {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;
using ::testing::UnorderedElementsAre;

TEST(FileSourceOptionsTest, ParseFileFormatAcceptsEveryFormatAndListsThemOnError) {
  EXPECT_EQ(ParseFileFormat("movielens-100k").value(), FileFormat::kMovieLens100k);
  EXPECT_EQ(ParseFileFormat("movielens").value(), FileFormat::kMovieLens);
  EXPECT_EQ(ParseFileFormat("CSV").value(), FileFormat::kCsv);
  EXPECT_EQ(ParseFileFormat("tsv").value(), FileFormat::kTsv);
  EXPECT_EQ(ParseFileFormat("jsonl").value(), FileFormat::kJsonl);
  for (FileFormat format : {FileFormat::kMovieLens100k, FileFormat::kMovieLens, FileFormat::kCsv,
                            FileFormat::kTsv, FileFormat::kJsonl}) {
    EXPECT_EQ(ParseFileFormat(FileFormatName(format)).value(), format);
  }

  const absl::Status status = ParseFileFormat("parquet").status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("parquet"));
  EXPECT_THAT(status.message(), HasSubstr("movielens-100k, movielens, csv, tsv, jsonl"));
  EXPECT_EQ(FileSourceOptions::ForFormat("xml").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(FileSourceOptionsTest, ForFormatFillsPresetDefaults) {
  const FileSourceOptions ml100k = FileSourceOptions::ForFormat("movielens-100k").value();
  EXPECT_EQ(ml100k.format, FileFormat::kMovieLens100k);
  EXPECT_EQ(ml100k.delimiter, "\t");
  EXPECT_EQ(ml100k.default_type, "rating");
  EXPECT_THAT(ml100k.columns, ElementsAre(ColumnRole::kUser, ColumnRole::kItem, ColumnRole::kSkip,
                                          ColumnRole::kTimestamp));
  EXPECT_EQ(FileSourceOptions::ForFormat("movielens").value().delimiter, "::");
  EXPECT_EQ(FileSourceOptions::ForFormat("tsv").value().delimiter, "\t");
  const FileSourceOptions csv = FileSourceOptions::ForFormat("csv").value();
  EXPECT_EQ(csv.delimiter, ",");
  EXPECT_TRUE(csv.columns.empty());
  EXPECT_FALSE(csv.ts_unit.has_value());
  EXPECT_TRUE(csv.sort_by_time);
}

TEST(FileSourceOptionsTest, ParseColumns) {
  EXPECT_THAT(ParseColumns("user,item,_,type,ts").value(),
              ElementsAre(ColumnRole::kUser, ColumnRole::kItem, ColumnRole::kSkip,
                          ColumnRole::kType, ColumnRole::kTimestamp));
  EXPECT_THAT(ParseColumns(" ts , _ , _ , item , user , weight ").value(),
              ElementsAre(ColumnRole::kTimestamp, ColumnRole::kSkip, ColumnRole::kSkip,
                          ColumnRole::kItem, ColumnRole::kUser, ColumnRole::kWeight));
}

TEST(FileSourceOptionsTest, ParseColumnsRejectsBadMappings) {
  absl::Status status = ParseColumns("user,item,price").status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("unknown column role \"price\""));

  status = ParseColumns("user,item,ts,ts").status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("\"ts\" 2 times"));

  status = ParseColumns("item,ts").status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("no \"user\" column"));

  status = ParseColumns("user,_").status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("no \"item\" column"));

  EXPECT_EQ(ParseColumns("").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseColumns("user,,item").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(FileSourceOptionsTest, ParseTimestampUnit) {
  EXPECT_EQ(ParseTimestampUnit("auto").value(), TimestampUnit::kAuto);
  EXPECT_EQ(ParseTimestampUnit("s").value(), TimestampUnit::kSeconds);
  EXPECT_EQ(ParseTimestampUnit("ms").value(), TimestampUnit::kMilliseconds);
  EXPECT_EQ(ParseTimestampUnit("Seconds").value(), TimestampUnit::kSeconds);
  const absl::Status status = ParseTimestampUnit("us").status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("auto, s, ms"));
}

TEST(FileSourceOptionsTest, ParseDelimiter) {
  EXPECT_EQ(ParseDelimiter(",").value(), ",");
  EXPECT_EQ(ParseDelimiter("::").value(), "::");
  EXPECT_EQ(ParseDelimiter("\\t").value(), "\t");
  EXPECT_EQ(ParseDelimiter("tab").value(), "\t");
  EXPECT_EQ(ParseDelimiter("|").value(), "|");
  EXPECT_EQ(ParseDelimiter("").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseDelimiter("\"").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseDelimiter("\\n").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseDelimiter("\\q").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(FileSourceOptionsTest, ParseTypeWeights) {
  EXPECT_THAT(
      ParseTypeWeights("view=1, click=2,purchase = 8.5").value(),
      UnorderedElementsAre(Pair("view", 1.0f), Pair("click", 2.0f), Pair("purchase", 8.5f)));
  EXPECT_TRUE(ParseTypeWeights("").value().empty());
  EXPECT_EQ(ParseTypeWeights("view").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseTypeWeights("=1").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseTypeWeights("view=-1").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseTypeWeights("view=nan").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseTypeWeights("view=x").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseTypeWeights("view=1,view=2").status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace freshet::stream
