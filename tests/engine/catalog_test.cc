// The item catalog: each file format read as documented (MovieLens' Latin-1 turned into UTF-8),
// malformed records skipped and counted, merges that replace and remove fields, the fields an
// answer asks for, category membership, and the stored encoding.
#include "engine/catalog.h"

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace freshet::engine {
namespace {

using Fields = std::vector<std::pair<std::string, std::string>>;

absl::Status AnyId(absl::string_view id) {
  return id.empty() ? absl::InvalidArgumentError("empty id") : absl::OkStatus();
}

std::vector<CatalogEntry> Parse(absl::string_view text, CatalogFormat format,
                                CatalogParseStats* stats) {
  auto entries = ParseCatalog(text, format, AnyId, stats);
  EXPECT_TRUE(entries.ok()) << entries.status();
  return entries.ok() ? *std::move(entries) : std::vector<CatalogEntry>{};
}

TEST(CatalogTest, JsonLinesTakeStringsNumbersAndArraysAndSkipWhatIsMalformed) {
  CatalogParseStats stats;
  const auto entries = Parse(
      "{\"item\": \"50\", \"title\": \"Star Wars\", \"year\": 1977, \"category\": [\"Action\", "
      "\"Sci-Fi\"], \"note\": null}\n"
      "\n"
      "{\"id\": 7, \"title\": \"Seven\"}\r\n"
      "not json\n"
      "{\"title\": \"no id\"}\n"
      "{\"item\": \"9\", \"nested\": {\"a\": 1}}\n"
      "{\"item\": \"10\", \"Bad Name\": \"x\"}\n"
      "{\"item\": \"11\", \"category\": [\"A\", 2]}\n"
      "{\"item\": \"\", \"title\": \"an empty id\"}\n",
      CatalogFormat::kJsonLines, &stats);
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[0].item, "50");
  const Fields first = {{"title", "Star Wars"}, {"year", "1977"}, {"category", "Action|Sci-Fi"}};
  EXPECT_EQ(entries[0].fields, first);
  EXPECT_EQ(entries[1].item, "7");
  EXPECT_EQ(stats.lines, 8);
  EXPECT_EQ(stats.malformed, 6);
  ASSERT_FALSE(stats.first_errors.empty());
  EXPECT_NE(stats.first_errors[0].find("line 4"), std::string::npos) << stats.first_errors[0];
}

TEST(CatalogTest, CsvWithQuotesAndTsvNameTheirColumnsInAHeader) {
  CatalogParseStats stats;
  auto entries = Parse(
      "ID,Title,Category\n"
      "1,\"Crouching Tiger, Hidden Dragon\",Action\n"
      "2,\"A \"\"quoted\"\" title\",Drama|Comedy\n"
      "3,too,many,columns\n"
      "4,\"unterminated,Drama\n",
      CatalogFormat::kCsv, &stats);
  ASSERT_EQ(entries.size(), 2u);
  const Fields one = {{"title", "Crouching Tiger, Hidden Dragon"}, {"category", "Action"}};
  EXPECT_EQ(entries[0].fields, one);
  EXPECT_EQ(entries[1].fields[0].second, "A \"quoted\" title");
  EXPECT_EQ(stats.malformed, 2);

  CatalogParseStats tsv_stats;
  entries = Parse("title\titem\nTab Title\tx1\n", CatalogFormat::kTsv, &tsv_stats);
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].item, "x1");
  const Fields tab = {{"title", "Tab Title"}};
  EXPECT_EQ(entries[0].fields, tab);

  CatalogParseStats none;
  EXPECT_EQ(ParseCatalog("name,title\na,b\n", CatalogFormat::kCsv, AnyId, &none).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(CatalogTest, MovieLensFilesBecomeTitlesAndGenresInUtf8) {
  CatalogParseStats stats;
  // u.item is Latin-1: 0xE9 is e with an acute accent.
  const std::string u_item =
      "1|Toy Story (1995)|01-Jan-1995||http://us.imdb.com/M/title-exact?Toy%20Story%20(1995)|0|0|0|"
      "1|1|1|0|0|0|0|0|0|0|0|0|0|0|0|0\n"
      "2|Am\xe9lie|01-Jan-2001||url|0|0|0|0|0|1|0|0|1|0|0|0|0|0|1|0|0|0|0\n"
      "3|short line\n";
  auto entries = Parse(u_item, CatalogFormat::kMovieLens100K, &stats);
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[0].item, "1");
  Catalog catalog;
  catalog.Put(catalog.Merge(entries));
  EXPECT_TRUE(catalog.InCategory("1", "Children's"));
  EXPECT_TRUE(catalog.InCategory("1", "Animation"));
  EXPECT_FALSE(catalog.InCategory("1", "Drama"));
  EXPECT_TRUE(catalog.InCategory("2", "Romance"));
  JsonWriter w;
  w.BeginObject();
  const std::vector<std::string> title = {"title"};
  ASSERT_TRUE(catalog.WriteFields("2", title, w));
  w.EndObject();
  EXPECT_EQ(w.str(), "{\"title\":\"Am\xc3\xa9lie\"}");
  EXPECT_EQ(stats.malformed, 1);

  CatalogParseStats ml1m;
  entries = Parse("1::Toy Story (1995)::Animation|Children's|Comedy\n2::bad\n",
                  CatalogFormat::kMovieLens1M, &ml1m);
  ASSERT_EQ(entries.size(), 1u);
  const Fields toy = {{"title", "Toy Story (1995)"}, {"category", "Animation|Children's|Comedy"}};
  EXPECT_EQ(entries[0].fields, toy);
  EXPECT_EQ(ml1m.malformed, 1);
}

TEST(CatalogTest, MergesReplaceAndRemoveFieldsAndAnswersCarryWhatIsAskedFor) {
  Catalog catalog;
  catalog.Put(catalog.Merge({{"a", {{"title", "A"}, {"category", "X|Y"}, {"price", "3"}}}}));
  // Given fields replace, empty ones remove, the rest stay; the same item twice: the later wins.
  catalog.Put(catalog.Merge({{"a", {{"title", "A2"}, {"price", ""}}}, {"a", {{"title", "A3"}}}}));
  Fields fields;
  ASSERT_TRUE(DecodeCatalogFields(catalog.Encoded("a"), &fields));
  const Fields expected = {{"category", "X|Y"}, {"title", "A3"}};
  EXPECT_EQ(fields, expected);
  EXPECT_TRUE(catalog.InCategory("a", "Y"));
  EXPECT_FALSE(catalog.InCategory("a", "X|Y"));  // one category, not the whole field
  EXPECT_FALSE(catalog.InCategory("missing", "Y"));

  JsonWriter some;
  some.BeginObject();
  const std::vector<std::string> names = {"title", "nothing"};
  EXPECT_TRUE(catalog.WriteFields("a", names, some));
  some.EndObject();
  EXPECT_EQ(some.str(), "{\"title\":\"A3\"}");
  JsonWriter all;
  all.BeginObject();
  const std::vector<std::string> star = {"*"};
  EXPECT_TRUE(catalog.WriteFields("a", star, all));
  all.EndObject();
  EXPECT_EQ(all.str(), "{\"category\":\"X|Y\",\"title\":\"A3\"}");
  JsonWriter none;
  EXPECT_FALSE(catalog.WriteFields("missing", star, none));

  // Removing every field removes the item.
  catalog.Put(catalog.Merge({{"a", {{"title", ""}, {"category", ""}}}}));
  EXPECT_EQ(catalog.size(), 0u);
}

TEST(CatalogTest, DamagedEncodingsAreRefused) {
  Fields fields;
  const std::string good = EncodeCatalogFields({{"title", "T"}});
  EXPECT_TRUE(DecodeCatalogFields(good, &fields));
  EXPECT_FALSE(DecodeCatalogFields(good.substr(0, good.size() - 1), &fields));
  EXPECT_FALSE(DecodeCatalogFields(std::string("\xff\xff\xff", 3), &fields));
}

TEST(CatalogTest, FormatsByNameOrFileName) {
  EXPECT_EQ(*CatalogFormatFor("", "/data/ml-100k/u.item"), CatalogFormat::kMovieLens100K);
  EXPECT_EQ(*CatalogFormatFor("", "movies.dat"), CatalogFormat::kMovieLens1M);
  EXPECT_EQ(*CatalogFormatFor("", "items.csv"), CatalogFormat::kCsv);
  EXPECT_EQ(*CatalogFormatFor("", "items.tsv"), CatalogFormat::kTsv);
  EXPECT_EQ(*CatalogFormatFor("", "items.jsonl"), CatalogFormat::kJsonLines);
  EXPECT_EQ(*CatalogFormatFor("csv", "items.jsonl"), CatalogFormat::kCsv);
  EXPECT_EQ(CatalogFormatFor("xml", "a").status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace freshet::engine
