#include "stream/file_event_source.h"

#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <initializer_list>
#include <limits>
#include <memory>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/string_view.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "stream/event.h"
#include "stream/file_source_options.h"
#include "tests/stream/temp_files.h"

namespace freshet::stream {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Pair;
using ::testing::UnorderedElementsAre;

std::string TempPath(absl::string_view name) { return testing::TempPath("stream", name); }

std::string WriteFile(absl::string_view name, absl::string_view contents) {
  return testing::WriteTempFile("stream", name, contents);
}

// Writes `contents` as one gzip member (or appends a member with mode "ab").
std::string WriteGzip(absl::string_view name, absl::string_view contents, const char* mode = "wb") {
  const std::string path = TempPath(name);
  gzFile file = gzopen(path.c_str(), mode);
  EXPECT_NE(file, nullptr) << path;
  if (file == nullptr) return path;
  EXPECT_EQ(gzwrite(file, contents.data(), static_cast<unsigned>(contents.size())),
            static_cast<int>(contents.size()));
  EXPECT_EQ(gzclose(file), Z_OK);
  return path;
}

std::string ReadBytes(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  std::ostringstream out;
  out << file.rdbuf();
  return out.str();
}

// Drains `source` in small batches (so that batching is exercised too).
std::vector<Event> Drain(EventSource& source) {
  std::vector<Event> events;
  while (!source.Finished()) {
    const size_t before = events.size();
    EXPECT_TRUE(source.Poll(3, absl::ZeroDuration(), &events).ok());
    if (events.size() == before) {
      ADD_FAILURE() << "Poll made no progress on an unfinished source";
      break;
    }
  }
  return events;
}

// "user|item|type|ts_ms|weight" per event, for readable comparisons.
std::vector<std::string> Summaries(const std::vector<Event>& events) {
  std::vector<std::string> out;
  for (const Event& e : events) {
    out.push_back(absl::StrCat(e.user, "|", e.item, "|", e.type, "|", e.ts_ms, "|", e.weight));
  }
  return out;
}

// Each line followed by '\n'.
std::string Lines(std::initializer_list<absl::string_view> lines) {
  std::string out;
  for (absl::string_view line : lines) absl::StrAppend(&out, line, "\n");
  return out;
}

FileSourceOptions Csv(absl::string_view columns, absl::string_view delimiter = ",") {
  FileSourceOptions options = FileSourceOptions::ForFormat("csv").value();
  options.columns = ParseColumns(columns).value();
  options.delimiter = std::string(delimiter);
  return options;
}

FileSourceOptions Jsonl() { return FileSourceOptions::ForFormat("jsonl").value(); }

// Opens `contents` written to a temp file; fails the test if Open fails.
std::unique_ptr<FileEventSource> OpenContents(absl::string_view contents,
                                              const FileSourceOptions& options) {
  const std::string path = WriteFile("input", contents);
  absl::StatusOr<std::unique_ptr<FileEventSource>> source = FileEventSource::Open(path, options);
  EXPECT_TRUE(source.ok()) << source.status();
  return source.ok() ? *std::move(source) : nullptr;
}

// --- Formats -------------------------------------------------------------------------------

TEST(FileEventSourceTest, MovieLens100kIsSortedByTimeAndTypedAsRating) {
  FileSourceOptions options = FileSourceOptions::ForFormat("movielens-100k").value();
  options.type_weights = {{"rating", 3.0f}};
  auto source = OpenContents(
      "196\t242\t3\t881250949\n"
      "186\t302\t3\t891717742\n"
      "22\t377\t1\t878887116\n",
      options);
  ASSERT_NE(source, nullptr);
  const std::vector<Event> events = Drain(*source);
  EXPECT_THAT(Summaries(events),
              ElementsAre("22|377|rating|878887116000|3", "196|242|rating|881250949000|3",
                          "186|302|rating|891717742000|3"));
  for (size_t i = 0; i < events.size(); ++i) {
    EXPECT_EQ(events[i].position.stream, 0);
    EXPECT_EQ(events[i].position.partition, 0);
    EXPECT_EQ(events[i].position.offset, static_cast<int64_t>(i));
  }
  EXPECT_EQ(source->stats().records_read, 3);
  EXPECT_EQ(source->stats().events, 3);
  EXPECT_EQ(source->stats().malformed, 0);
}

TEST(FileEventSourceTest, MovieLensRatingsDatUsesDoubleColonAndIgnoresRating) {
  auto source = OpenContents(
      "1::1193::5::978300760\n"
      "1::661::3::978302109\n"
      "2::1357::not-a-rating::978298709\n",
      FileSourceOptions::ForFormat("movielens").value());
  ASSERT_NE(source, nullptr);
  EXPECT_THAT(Summaries(Drain(*source)),
              ElementsAre("2|1357|rating|978298709000|1", "1|1193|rating|978300760000|1",
                          "1|661|rating|978302109000|1"));
}

TEST(FileEventSourceTest, PresetsIgnoreColumnsAndDelimiterOptions) {
  FileSourceOptions options;
  options.format = FileFormat::kMovieLens100k;  // not via ForFormat: no columns, "," delimiter
  auto source = OpenContents("7\t8\t5\t10\n", options);
  ASSERT_NE(source, nullptr);
  EXPECT_THAT(Summaries(Drain(*source)), ElementsAre("7|8|rating|10000|1"));
}

TEST(FileEventSourceTest, CsvColumnMappingWithSkipAndHeader) {
  FileSourceOptions options = Csv("user,item,_,type,ts");
  options.header = true;
  auto source = OpenContents(
      "user,item,price,event,time\n"
      "u1,i1,9.99,click,1700000000001\n"
      "u2,i2,,view,1700000000002,extra,columns\n",
      options);
  ASSERT_NE(source, nullptr);
  EXPECT_THAT(Summaries(Drain(*source)),
              ElementsAre("u1|i1|click|1700000000001|1", "u2|i2|view|1700000000002|1"));
  EXPECT_EQ(source->stats().records_read, 2);  // the header is not a record
}

TEST(FileEventSourceTest, HeaderSkipsFirstNonBlankLineAfterByteOrderMark) {
  FileSourceOptions options = Csv("ts,item,user");
  options.header = true;
  auto source = OpenContents("\xEF\xBB\xBF\n\nts,item,user\r\n5,i,u\r\n", options);
  ASSERT_NE(source, nullptr);
  EXPECT_THAT(Summaries(Drain(*source)), ElementsAre("u|i||5000|1"));
  EXPECT_EQ(source->stats().malformed, 0);
}

TEST(FileEventSourceTest, TsvFormatAndTabDelimitedCsvAgree) {
  const std::string contents = "u1\ti1\t100\nu 2\ti2\t200\n";
  FileSourceOptions tsv = FileSourceOptions::ForFormat("tsv").value();
  tsv.columns = ParseColumns("user,item,ts").value();
  auto from_tsv = OpenContents(contents, tsv);
  auto from_csv = OpenContents(contents, Csv("user,item,ts", "\t"));
  ASSERT_NE(from_tsv, nullptr);
  ASSERT_NE(from_csv, nullptr);
  const std::vector<std::string> expected = {"u1|i1||100000|1", "u 2|i2||200000|1"};
  EXPECT_EQ(Summaries(Drain(*from_tsv)), expected);
  EXPECT_EQ(Summaries(Drain(*from_csv)), expected);
}

TEST(FileEventSourceTest, MultiCharacterDelimiter) {
  auto source = OpenContents("a::b::1\nc::d::2\n", Csv("user,item,ts", "::"));
  ASSERT_NE(source, nullptr);
  EXPECT_THAT(Summaries(Drain(*source)), ElementsAre("a|b||1000|1", "c|d||2000|1"));
}

TEST(FileEventSourceTest, QuotedCsvFields) {
  auto source = OpenContents(
      "\"u,1\",\"say \"\"hi\"\"\",\"click\",\"10\"\n"
      "  u2  , \"  spaced  \" ,view,20\n"
      "\"\",i3,view,30\n"  // an empty quoted user is an empty user
      "u4,\"\"\"\",view,40\n",
      Csv("user,item,type,ts"));
  ASSERT_NE(source, nullptr);
  EXPECT_THAT(Summaries(Drain(*source)),
              ElementsAre("u,1|say \"hi\"|click|10000|1", "u2|  spaced  |view|20000|1",
                          "u4|\"|view|40000|1"));
  EXPECT_THAT(source->malformed_by_reason(), UnorderedElementsAre(Pair("empty user", 1)));
}

TEST(FileEventSourceTest, CrLfLineEndings) {
  auto source = OpenContents("u1,i1,1\r\nu2,i2,2\r\n", Csv("user,item,ts"));
  ASSERT_NE(source, nullptr);
  EXPECT_THAT(Summaries(Drain(*source)), ElementsAre("u1|i1||1000|1", "u2|i2||2000|1"));
}

TEST(FileEventSourceTest, JsonlFields) {
  FileSourceOptions options = Jsonl();
  options.type_weights = {{"click", 2.0f}};
  auto source = OpenContents(
      Lines({
          R"({"user":"u42","item":"sku-9","type":"click","ts":1700000000123,"weight":1.5})",
          R"({"item":17,"user":-3,"ts":1700000000124.6,"other":{"nested":[1,2]}})",
          R"({"user":"u\"q\"","item":"caf\u00e9","type":"click","ts":"1700000000200"})",
          R"(  { "user" : "spaces" , "item" : "x" , "ts" : 1700000000300 , "type" : null }  )",
      }),
      options);
  ASSERT_NE(source, nullptr);
  EXPECT_THAT(Summaries(Drain(*source)),
              ElementsAre("u42|sku-9|click|1700000000123|1.5", "-3|17||1700000000125|1",
                          "u\"q\"|caf\xC3\xA9|click|1700000000200|2", "spaces|x||1700000000300|1"));
  EXPECT_EQ(source->stats().malformed, 0);
}

// An event's id (idempotency key) stays with its event through the sort by time; lines before
// the first id have none; a bad id makes the line malformed.
TEST(FileEventSourceTest, JsonlEventIdsFollowTheirEventsAndBadOnesAreMalformed) {
  FileSourceOptions options = Jsonl();
  options.limits.max_id_bytes = 8;
  auto source = OpenContents(Lines({
                                 R"({"user":"a","item":"1","ts":300})",
                                 R"({"user":"b","item":"2","ts":100,"id":"e-b"})",
                                 R"({"user":"c","item":"3","ts":200,"id":17})",
                                 R"({"user":"d","item":"4","ts":50,"id":null})",
                                 R"({"user":"x","item":"5","ts":60,"id":1.5})",
                                 R"({"user":"y","item":"6","ts":70,"id":"much-too-long"})",
                                 "{\"user\":\"z\",\"item\":\"7\",\"ts\":80,\"id\":\"\xff\"}",
                             }),
                             options);
  ASSERT_NE(source, nullptr);
  std::vector<std::string> ids;
  for (const Event& e : Drain(*source)) ids.push_back(absl::StrCat(e.user, "=", e.id));
  EXPECT_THAT(ids, ElementsAre("d=", "b=e-b", "c=17", "a="));
  EXPECT_THAT(
      source->malformed_by_reason(),
      UnorderedElementsAre(Pair("bad id", 1), Pair("id too long", 1), Pair("invalid json", 1)));
}

TEST(FileEventSourceTest, JsonlMissingTimestampKeepsPreviousOne) {
  FileSourceOptions options = Jsonl();
  const std::string contents = Lines({
      R"({"user":"a","item":"1"})",  // before any timestamp: 0
      R"({"user":"b","item":"2","ts":500})",
      R"({"user":"c","item":"3","ts":100})",
      R"({"user":"d","item":"4"})",  // takes 100, stays after c
      R"({"user":"e","item":"5","ts":null})",
  });
  auto source = OpenContents(contents, options);
  ASSERT_NE(source, nullptr);
  EXPECT_THAT(Summaries(Drain(*source)),
              ElementsAre("a|1||0|1", "c|3||100|1", "d|4||100|1", "e|5||100|1", "b|2||500|1"));
}

TEST(FileEventSourceTest, CsvEmptyTimestampKeepsPreviousOne) {
  auto source = OpenContents("a,1,7\nb,2,\nc,3,3\n", Csv("user,item,ts"));
  ASSERT_NE(source, nullptr);
  EXPECT_THAT(Summaries(Drain(*source)), ElementsAre("c|3||3000|1", "a|1||7000|1", "b|2||7000|1"));
}

TEST(FileEventSourceTest, CsvWithoutTimestampColumnKeepsInputOrder) {
  auto source = OpenContents("b,2\na,1\n", Csv("user,item"));
  ASSERT_NE(source, nullptr);
  EXPECT_THAT(Summaries(Drain(*source)), ElementsAre("b|2||0|1", "a|1||0|1"));
}

// --- Timestamps ----------------------------------------------------------------------------

TEST(FileEventSourceTest, AutoUnitTellsSecondsFromMilliseconds) {
  FileSourceOptions options = Csv("user,item,ts");
  options.sort_by_time = false;
  auto source = OpenContents(
      "a,1,1700000000\n"       // seconds
      "b,2,1700000000123\n"    // milliseconds
      "c,3,1700000000.5\n"     // fractional seconds
      "d,4,1700000000123.6\n"  // fractional milliseconds, rounded
      "e,5,99999999999\n"      // just below 1e11: seconds (year 5138: out of range)
      "f,6,100000000000\n"     // 1e11: milliseconds
      "g,7,1.7e9\n"            // exponent notation
      "h,8,-5\n"               // before the epoch, seconds (out of range)
      "i,9,4102444799\n",      // the last second before 2100, seconds
      options);
  ASSERT_NE(source, nullptr);
  std::vector<int64_t> ts;
  for (const Event& e : Drain(*source)) ts.push_back(e.ts_ms);
  EXPECT_THAT(ts, ElementsAre(1700000000000, 1700000000123, 1700000000500, 1700000000124,
                              100000000000, 1700000000000, 4102444799000));
  // Converted correctly, then refused: event times are 1970 up to 2100 (event_validation.h).
  EXPECT_THAT(source->malformed_by_reason(), UnorderedElementsAre(Pair("bad ts", 2)));
}

TEST(FileEventSourceTest, ExplicitTimestampUnits) {
  FileSourceOptions seconds = Csv("user,item,ts");
  seconds.ts_unit = TimestampUnit::kSeconds;
  seconds.sort_by_time = false;
  auto from_seconds = OpenContents("a,1,1700000000\nb,2,0.0015\nc,3,1700000000123\n", seconds);
  ASSERT_NE(from_seconds, nullptr);
  EXPECT_THAT(Summaries(Drain(*from_seconds)), ElementsAre("a|1||1700000000000|1", "b|2||2|1"));
  // Milliseconds read as seconds land in the year 55,000: refused, not learnt.
  EXPECT_THAT(from_seconds->malformed_by_reason(), UnorderedElementsAre(Pair("bad ts", 1)));

  FileSourceOptions millis = Csv("user,item,ts");
  millis.ts_unit = TimestampUnit::kMilliseconds;
  millis.sort_by_time = false;
  auto from_millis = OpenContents("a,1,5\nb,2,1700000000.4\n", millis);
  ASSERT_NE(from_millis, nullptr);
  EXPECT_THAT(Summaries(Drain(*from_millis)), ElementsAre("a|1||5|1", "b|2||1700000000|1"));
}

TEST(FileEventSourceTest, JsonlDefaultsToMillisecondsButHonoursAuto) {
  const std::string contents = Lines({R"({"user":"a","item":"1","ts":1700000000})"});
  auto as_ms = OpenContents(contents, Jsonl());
  ASSERT_NE(as_ms, nullptr);
  EXPECT_THAT(Summaries(Drain(*as_ms)), ElementsAre("a|1||1700000000|1"));

  FileSourceOptions options = Jsonl();
  options.ts_unit = TimestampUnit::kAuto;
  auto as_auto = OpenContents(contents, options);
  ASSERT_NE(as_auto, nullptr);
  EXPECT_THAT(Summaries(Drain(*as_auto)), ElementsAre("a|1||1700000000000|1"));
}

// --- Weights -------------------------------------------------------------------------------

TEST(FileEventSourceTest, TypeWeightsUnknownAndEmptyTypesAndExplicitWeight) {
  FileSourceOptions options = Csv("user,item,type,weight");
  options.type_weights = {{"click", 2.0f}, {"purchase", 8.0f}};
  options.default_weight = 0.5f;
  auto source = OpenContents(
      "u,a,click,\n"
      "u,b,purchase,\n"
      "u,c,wishlist,\n"  // unknown type
      "u,d,,\n"          // empty type
      "u,e,click,3\n"    // explicit weight wins
      "u,f,purchase,0\n",
      options);
  ASSERT_NE(source, nullptr);
  EXPECT_THAT(Summaries(Drain(*source)),
              ElementsAre("u|a|click|0|2", "u|b|purchase|0|8", "u|c|wishlist|0|0.5", "u|d||0|0.5",
                          "u|e|click|0|3", "u|f|purchase|0|0"));
  EXPECT_EQ(source->distinct_types(), 4);  // "", click, purchase, wishlist
}

TEST(FileEventSourceTest, DefaultTypeAppliesToEventsWithoutType) {
  FileSourceOptions options = Csv("user,item,type");
  options.default_type = "view";
  options.type_weights = {{"view", 1.5f}};
  auto source = OpenContents("u,a,\nu,b,cart\n", options);
  ASSERT_NE(source, nullptr);
  EXPECT_THAT(Summaries(Drain(*source)), ElementsAre("u|a|view|0|1.5", "u|b|cart|0|1"));
}

TEST(FileEventSourceTest, InvalidWeightOptionsAreRejected) {
  const std::string path = WriteFile("input", "u,i\n");
  FileSourceOptions options = Csv("user,item");
  options.type_weights = {{"click", -1.0f}};
  EXPECT_EQ(FileEventSource::Open(path, options).status().code(),
            absl::StatusCode::kInvalidArgument);
  options.type_weights.clear();
  options.default_weight = std::numeric_limits<float>::quiet_NaN();
  EXPECT_EQ(FileEventSource::Open(path, options).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// --- Order ---------------------------------------------------------------------------------

TEST(FileEventSourceTest, SortIsStableForEqualTimestamps) {
  const std::string contents = "u,a,5\nu,b,3\nu,c,5\nu,d,3\nu,e,1\nu,f,5\n";
  auto sorted = OpenContents(contents, Csv("user,item,ts"));
  ASSERT_NE(sorted, nullptr);
  std::string order;
  for (const Event& e : Drain(*sorted)) order += e.item;
  EXPECT_EQ(order, "ebdacf");

  FileSourceOptions unsorted_options = Csv("user,item,ts");
  unsorted_options.sort_by_time = false;
  auto unsorted = OpenContents(contents, unsorted_options);
  ASSERT_NE(unsorted, nullptr);
  order.clear();
  for (const Event& e : Drain(*unsorted)) order += e.item;
  EXPECT_EQ(order, "abcdef");
}

// --- Malformed input -----------------------------------------------------------------------

TEST(FileEventSourceTest, MalformedCsvLinesAreCountedAndSkipped) {
  FileSourceOptions options = Csv("user,item,ts,weight");
  options.sort_by_time = false;
  auto source = OpenContents(
      "u0,i0,1,1\n"
      "u1,i1\n"              // too few columns
      "u2,i2,2\n"            // too few columns (weight column missing)
      ",i3,3,1\n"            // empty user
      "u4,  ,4,1\n"          // empty item (spaces only)
      "u5,i5,yesterday,1\n"  // bad ts
      "u6,i6,1e400,1\n"      // bad ts: out of range
      "u7,i7,7,-1\n"         // bad weight: negative
      "u8,i8,8,nan\n"        // bad weight: NaN
      "u9,i9,9,heavy\n"      // bad weight: not a number
      "\"u10,i10,10,1\n"     // unterminated quote
      "\"u11\"x,i11,11,1\n"  // bad quoting
      "\n"
      "   \n"             // blank lines are not records
      "u12,i12,12,inf\n"  // bad weight: infinite
      "u13,i13,13,2\n",
      options);
  ASSERT_NE(source, nullptr);
  EXPECT_THAT(Summaries(Drain(*source)), ElementsAre("u0|i0||1000|1", "u13|i13||13000|2"));
  EXPECT_THAT(source->malformed_by_reason(),
              UnorderedElementsAre(Pair("too few columns", 2), Pair("empty user", 1),
                                   Pair("empty item", 1), Pair("bad ts", 2), Pair("bad weight", 4),
                                   Pair("unterminated quote", 1), Pair("bad quoting", 1)));
  EXPECT_EQ(source->stats().records_read, 14);
  EXPECT_EQ(source->stats().events, 2);
  EXPECT_EQ(source->stats().malformed, 12);
}

TEST(FileEventSourceTest, MalformedJsonLinesAreCountedAndSkipped) {
  FileSourceOptions options = Jsonl();
  options.sort_by_time = false;
  const std::string contents = Lines({
      R"({"user":"a","item":"1","ts":1})",
      R"({"user":"b","item":"2","ts":2)",            // invalid json: no brace
      R"({"user":"c","item":"3","ts":3} trailing)",  // invalid json: trailing text
      R"([1,2,3])",                                  // invalid json: not an object
      R"({"user":"d","item":"4",})",                 // invalid json: trailing comma
      R"({"item":"5","ts":5})",                      // missing user
      R"({"user":"f","ts":6})",                      // missing item
      R"({"user":null,"item":"7"})",                 // missing user (null)
      R"({"user":true,"item":"8"})",                 // bad user
      R"({"user":"i","item":1.5})",                  // bad item: not an integer
      R"({"user":"j","item":["x"]})",                // bad item
      R"({"user":"k","item":"11","type":5})",        // bad type
      R"({"user":"l","item":"12","ts":"soon"})",     // bad ts
      R"({"user":"m","item":"13","ts":true})",       // bad ts
      R"({"user":"n","item":"14","weight":-2})",     // bad weight
      R"({"user":"o","item":"15","weight":"x"})",    // bad weight
      R"({"user":"","item":"16"})",                  // empty user
      R"({"user":"q","item":""})",                   // empty item
      "{\"user\":\"r\xff\",\"item\":\"17\"}",        // invalid json: bad UTF-8
      R"({"user":"z","item":"99","ts":99})",
  });
  auto source = OpenContents(contents, options);
  ASSERT_NE(source, nullptr);
  EXPECT_THAT(Summaries(Drain(*source)), ElementsAre("a|1||1|1", "z|99||99|1"));
  EXPECT_THAT(source->malformed_by_reason(),
              UnorderedElementsAre(
                  Pair("invalid json", 5), Pair("missing user", 2), Pair("missing item", 1),
                  Pair("bad user", 1), Pair("bad item", 2), Pair("bad type", 1), Pair("bad ts", 2),
                  Pair("bad weight", 2), Pair("empty user", 1), Pair("empty item", 1)));
  EXPECT_EQ(source->stats().malformed, 18);
  EXPECT_EQ(source->stats().records_read, 20);
}

TEST(FileEventSourceTest, TruncatedLastLineIsCountedButCompleteUnterminatedLineIsKept) {
  auto truncated = OpenContents(
      Lines({R"({"user":"a","item":"1","ts":1})"}) + R"({"user":"b","item":"2)", Jsonl());
  ASSERT_NE(truncated, nullptr);
  EXPECT_THAT(Summaries(Drain(*truncated)), ElementsAre("a|1||1|1"));
  EXPECT_THAT(truncated->malformed_by_reason(),
              UnorderedElementsAre(Pair("truncated last line", 1)));

  auto truncated_csv = OpenContents("a,1,1\nb,2", Csv("user,item,ts"));
  ASSERT_NE(truncated_csv, nullptr);
  EXPECT_THAT(Summaries(Drain(*truncated_csv)), ElementsAre("a|1||1000|1"));
  EXPECT_THAT(truncated_csv->malformed_by_reason(),
              UnorderedElementsAre(Pair("truncated last line", 1)));

  // Many hand-written files simply lack the final newline: a last line that parses is kept.
  auto complete = OpenContents("a,1,1\nb,2,2", Csv("user,item,ts"));
  ASSERT_NE(complete, nullptr);
  EXPECT_THAT(Summaries(Drain(*complete)), ElementsAre("a|1||1000|1", "b|2||2000|1"));
  EXPECT_THAT(complete->malformed_by_reason(), IsEmpty());
}

TEST(FileEventSourceTest, EmptyFileHasNoEvents) {
  auto source = OpenContents("", Csv("user,item"));
  ASSERT_NE(source, nullptr);
  EXPECT_EQ(source->size(), 0);
  EXPECT_TRUE(source->Finished());
  std::vector<Event> events;
  EXPECT_TRUE(source->Poll(10, absl::ZeroDuration(), &events).ok());
  EXPECT_THAT(events, IsEmpty());
}

// --- Gzip ----------------------------------------------------------------------------------

TEST(FileEventSourceTest, GzipIsDetectedByMagicBytesForCsvAndJsonl) {
  // No ".gz" in the names: detection must not depend on them.
  const std::string csv = WriteGzip("events.csv", "u1,i1,2\nu2,i2,1\n");
  auto from_csv = FileEventSource::Open(csv, Csv("user,item,ts"));
  ASSERT_TRUE(from_csv.ok()) << from_csv.status();
  EXPECT_THAT(Summaries(Drain(**from_csv)), ElementsAre("u2|i2||1000|1", "u1|i1||2000|1"));

  const std::string jsonl =
      WriteGzip("events.jsonl", Lines({R"({"user":"u1","item":"i1","type":"click","ts":7})"}));
  auto from_jsonl = FileEventSource::Open(jsonl, Jsonl());
  ASSERT_TRUE(from_jsonl.ok()) << from_jsonl.status();
  EXPECT_THAT(Summaries(Drain(**from_jsonl)), ElementsAre("u1|i1|click|7|1"));
}

TEST(FileEventSourceTest, PlainTextNamedGzIsReadWithAWarning) {
  const std::string path = WriteFile("plain.csv.gz", "u1,i1,2\nu2,i2,1\n");
  ::testing::internal::CaptureStderr();
  auto source = FileEventSource::Open(path, Csv("user,item,ts"));
  const std::string log = ::testing::internal::GetCapturedStderr();
  ASSERT_TRUE(source.ok()) << source.status();
  EXPECT_THAT(Summaries(Drain(**source)), ElementsAre("u2|i2||1000|1", "u1|i1||2000|1"));
  EXPECT_NE(log.find("plain.csv.gz: the name ends in .gz but the file does not start like gzip"),
            std::string::npos)
      << log;
}

TEST(FileEventSourceTest, ConcatenatedGzipMembersAreAllRead) {
  const std::string path = WriteGzip("events", "a,1,1\n");
  WriteGzip("events", "b,2,2\n", "ab");
  auto source = FileEventSource::Open(path, Csv("user,item,ts"));
  ASSERT_TRUE(source.ok()) << source.status();
  EXPECT_THAT(Summaries(Drain(**source)), ElementsAre("a|1||1000|1", "b|2||2000|1"));
}

TEST(FileEventSourceTest, TruncatedGzipKeepsWhatDecoded) {
  std::string contents;
  constexpr int kLines = 5000;
  for (int i = 0; i < kLines; ++i) {
    // Varied text so that the compressed stream is long enough to cut in the middle.
    absl::StrAppend(&contents, "user", i * 7919 % 1000, ",item", i * 104729 % 3001, ",", i, "\n");
  }
  const std::string path = WriteGzip("events", contents);
  std::string bytes = ReadBytes(path);
  ASSERT_GT(bytes.size(), 1000u);
  bytes.resize(bytes.size() / 2);
  const std::string cut = WriteFile("events_cut", bytes);

  auto source = FileEventSource::Open(cut, Csv("user,item,ts"));
  ASSERT_TRUE(source.ok()) << source.status();
  const std::vector<Event> events = Drain(**source);
  EXPECT_GT(events.size(), 0u);
  EXPECT_LT(events.size(), static_cast<size_t>(kLines));
  // What is kept is exactly a prefix of the lines.
  for (size_t i = 0; i < events.size(); ++i) {
    ASSERT_EQ(events[i].user, absl::StrCat("user", i * 7919 % 1000)) << i;
    ASSERT_EQ(events[i].item, absl::StrCat("item", i * 104729 % 3001)) << i;
  }
  const auto reasons = (*source)->malformed_by_reason();
  ASSERT_TRUE(reasons.contains("truncated gzip"));
  EXPECT_EQ(reasons.at("truncated gzip"), 1);
  EXPECT_GE((*source)->stats().malformed, 1);
}

TEST(FileEventSourceTest, CorruptGzipIsDataLoss) {
  const std::string good = WriteGzip("events", "a,1,1\nb,2,2\nc,3,3\n");
  std::string bytes = ReadBytes(good);
  ASSERT_GT(bytes.size(), 18u);

  std::string bad_checksum = bytes;
  bad_checksum[bad_checksum.size() - 8] ^= 0x5a;  // CRC-32 of the trailer
  const std::string bad_checksum_path = WriteFile("bad_checksum", bad_checksum);
  absl::Status status = FileEventSource::Open(bad_checksum_path, Csv("user,item,ts")).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss) << status;
  EXPECT_THAT(status.message(), HasSubstr(bad_checksum_path));

  std::string bad_method = bytes;
  bad_method[2] = 7;  // compression method: only 8 (deflate) exists
  const std::string bad_method_path = WriteFile("bad_method", bad_method);
  status = FileEventSource::Open(bad_method_path, Csv("user,item,ts")).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss) << status;
  EXPECT_THAT(status.message(), HasSubstr(bad_method_path));
}

// --- Errors --------------------------------------------------------------------------------

TEST(FileEventSourceTest, MissingFileIsNotFound) {
  const std::string path = TempPath("does_not_exist");
  const absl::Status status = FileEventSource::Open(path, Csv("user,item")).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound) << status;
  EXPECT_THAT(status.message(), HasSubstr(path));
}

TEST(FileEventSourceTest, DirectoryIsInvalidArgument) {
  const absl::Status status =
      FileEventSource::Open(::testing::TempDir(), Csv("user,item")).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
}

TEST(FileEventSourceTest, UnreadableFileIsPermissionDenied) {
  if (::geteuid() == 0) GTEST_SKIP() << "root reads files regardless of their mode";
  const std::string path = WriteFile("secret", "u,i\n");
  ASSERT_EQ(::chmod(path.c_str(), 0), 0);
  const absl::Status status = FileEventSource::Open(path, Csv("user,item")).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kPermissionDenied) << status;
}

TEST(FileEventSourceTest, BadColumnMappingsAreInvalidArgument) {
  const std::string path = WriteFile("input", "u,i\n");
  FileSourceOptions options = FileSourceOptions::ForFormat("csv").value();

  // No mapping at all.
  absl::Status status = FileEventSource::Open(path, options).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(status.message(), HasSubstr("column mapping"));

  options.columns = {ColumnRole::kUser, ColumnRole::kTimestamp};
  status = FileEventSource::Open(path, options).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(status.message(), HasSubstr("\"item\""));

  options.columns = {ColumnRole::kUser, ColumnRole::kItem, ColumnRole::kUser};
  status = FileEventSource::Open(path, options).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(status.message(), HasSubstr("\"user\" 2 times"));

  options.columns = {ColumnRole::kUser, ColumnRole::kItem};
  options.delimiter = "";
  EXPECT_EQ(FileEventSource::Open(path, options).status().code(),
            absl::StatusCode::kInvalidArgument);
  options.delimiter = "\"";
  EXPECT_EQ(FileEventSource::Open(path, options).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// --- Positioning ---------------------------------------------------------------------------

TEST(FileEventSourceTest, PollAppendsAtMostMaxEvents) {
  auto source = OpenContents("a,1,1\nb,2,2\nc,3,3\n", Csv("user,item,ts"));
  ASSERT_NE(source, nullptr);
  EXPECT_EQ(source->Name(), "file:" + source->path());
  std::vector<Event> events(1);  // Poll appends; it does not clear
  ASSERT_TRUE(source->Poll(2, absl::Seconds(10), &events).ok());
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[1].user, "a");
  EXPECT_EQ(events[2].user, "b");
  EXPECT_FALSE(source->Finished());
  EXPECT_EQ(source->next_offset(), 2);
  ASSERT_TRUE(source->Poll(100, absl::ZeroDuration(), &events).ok());
  ASSERT_EQ(events.size(), 4u);
  EXPECT_EQ(events[3].user, "c");
  EXPECT_EQ(events[3].position.offset, 2);
  EXPECT_TRUE(source->Finished());
  ASSERT_TRUE(source->Poll(100, absl::ZeroDuration(), &events).ok());
  EXPECT_EQ(events.size(), 4u);
}

TEST(FileEventSourceTest, SeekAfterAndRewind) {
  auto source = OpenContents("a,1,1\nb,2,2\nc,3,3\nd,4,4\n", Csv("user,item,ts"));
  ASSERT_NE(source, nullptr);
  ASSERT_EQ(source->size(), 4);

  ASSERT_TRUE(source->SeekAfter(1).ok());
  std::vector<Event> events;
  ASSERT_TRUE(source->Poll(1, absl::ZeroDuration(), &events).ok());
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].user, "c");
  EXPECT_EQ(events[0].position.offset, 2);

  ASSERT_TRUE(source->SeekAfter(-1).ok());
  EXPECT_EQ(source->next_offset(), 0);
  EXPECT_EQ(Drain(*source).size(), 4u);

  ASSERT_TRUE(source->SeekAfter(3).ok());  // after the last event: finished
  EXPECT_TRUE(source->Finished());

  EXPECT_EQ(source->SeekAfter(4).code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(source->SeekAfter(-2).code(), absl::StatusCode::kOutOfRange);
  EXPECT_TRUE(source->Finished());  // a failed seek does not move

  source->Rewind();
  EXPECT_FALSE(source->Finished());
  const std::vector<Event> all = Drain(*source);
  ASSERT_EQ(all.size(), 4u);
  EXPECT_EQ(all.front().user, "a");
  EXPECT_EQ(all.back().user, "d");
}

// --- Real data -----------------------------------------------------------------------------

TEST(FileEventSourceTest, MovieLens100kRealFile) {
  const std::string path = FRESHET_SOURCE_DIR "/../shared/data/ml-100k/u.data";
  if (::access(path.c_str(), R_OK) != 0) GTEST_SKIP() << path << " is not available";

  auto source = FileEventSource::Open(path, FileSourceOptions::ForFormat("movielens-100k").value());
  ASSERT_TRUE(source.ok()) << source.status();
  EXPECT_EQ((*source)->size(), 100000);
  EXPECT_EQ((*source)->stats().malformed, 0);
  EXPECT_EQ((*source)->distinct_users(), 943);
  EXPECT_EQ((*source)->distinct_items(), 1682);

  // An independent reading of the file, stably sorted by time, must give the same sequence.
  std::vector<std::tuple<int64_t, std::string, std::string>> expected;
  {
    std::ifstream file(path);
    std::string user, item, rating;
    int64_t ts = 0;
    while (file >> user >> item >> rating >> ts) expected.emplace_back(ts * 1000, user, item);
  }
  ASSERT_EQ(expected.size(), 100000u);
  std::stable_sort(expected.begin(), expected.end(),
                   [](const auto& a, const auto& b) { return std::get<0>(a) < std::get<0>(b); });

  absl::flat_hash_set<std::string> users;
  absl::flat_hash_set<std::string> items;
  const std::vector<Event> events = Drain(**source);
  ASSERT_EQ(events.size(), 100000u);
  EXPECT_EQ(events.front().ts_ms, 874724710000);
  EXPECT_EQ(events.back().ts_ms, 893286638000);
  for (size_t i = 0; i < events.size(); ++i) {
    const Event& e = events[i];
    if (i > 0) {
      ASSERT_LE(events[i - 1].ts_ms, e.ts_ms) << i;
    }
    ASSERT_EQ(e.ts_ms, std::get<0>(expected[i])) << i;
    ASSERT_EQ(e.user, std::get<1>(expected[i])) << i;
    ASSERT_EQ(e.item, std::get<2>(expected[i])) << i;
    ASSERT_EQ(e.position.offset, static_cast<int64_t>(i));
    ASSERT_EQ(e.type, "rating");
    users.insert(e.user);
    items.insert(e.item);
  }
  EXPECT_EQ(users.size(), 943u);
  EXPECT_EQ(items.size(), 1682u);
}

}  // namespace
}  // namespace freshet::stream
