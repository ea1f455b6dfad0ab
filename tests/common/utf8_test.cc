#include "common/utf8.h"

#include <cstdlib>
#include <limits>
#include <string>

#include "common/json_writer.h"
#include "gtest/gtest.h"

namespace freshet {
namespace {

TEST(Utf8Test, AcceptsValidTextAndRefusesEveryInvalidForm) {
  for (const std::string& valid :
       {std::string(""), std::string("plain ascii"), std::string("caf\xc3\xa9"),
        std::string("\xe2\x82\xac 5"), std::string("\xf0\x9f\x8e\xac"),
        std::string("\xf4\x8f\xbf\xbf"), std::string("nul\0inside", 10)}) {
    EXPECT_TRUE(IsValidUtf8(valid)) << valid;
  }
  for (const std::string& invalid : {
           std::string("\xff"),              // never valid
           std::string("\x80"),              // a lone continuation byte
           std::string("\xc3"),              // truncated
           std::string("\xc0\xaf"),          // overlong '/'
           std::string("\xe0\x80\xaf"),      // overlong, 3 bytes
           std::string("\xed\xa0\x80"),      // a UTF-16 surrogate
           std::string("\xf4\x90\x80\x80"),  // above U+10FFFF
           std::string("\xf5\x80\x80\x80"),  // lead byte beyond F4
           std::string("ok\xe2\x82"),        // truncated at the end
       }) {
    EXPECT_FALSE(IsValidUtf8(invalid)) << testing::PrintToString(invalid);
  }
}

TEST(Utf8Test, JsonWriterNeverEmitsInvalidUtf8) {
  JsonWriter w;
  w.BeginObject().Key("user").String("u\xff\xc3\xa9\xed\xa0\x80!").EndObject();
  EXPECT_EQ(w.str(), "{\"user\":\"u\\ufffd\xc3\xa9\\ufffd\\ufffd\\ufffd!\"}");
  EXPECT_TRUE(IsValidUtf8(w.str()));
}

TEST(Utf8Test, JsonWriterEscapesWhatJsonRequiresAndCopiesTheRest) {
  const std::string raw =
      std::string("a\"b\\c\n\r\t\x01\x1f\x7f plain/id:42 \xc3\xa9") + '\0' + "z";
  const std::string quoted =
      "\"a\\\"b\\\\c\\n\\r\\t\\u0001\\u001f\x7f plain/id:42 \xc3\xa9\\u0000z\"";
  EXPECT_EQ(JsonWriter::Quote(raw), quoted);
  std::string appended = "[";
  JsonWriter::AppendQuoted(raw, &appended);
  EXPECT_EQ(appended, "[" + quoted);
  JsonWriter w;
  w.BeginObject().Key(raw).String("").EndObject();
  EXPECT_EQ(w.str(), "{" + quoted + ":\"\"}");
  EXPECT_EQ(JsonWriter::Quote(""), "\"\"");
}

TEST(Utf8Test, JsonWriterFloatsAreTheShortestThatReadBack) {
  const float third = 1.0f / 3.0f;
  JsonWriter w;
  w.BeginArray().Float(third).Double(third).Float(0.5f).Float(-2e-30f);
  w.Float(std::numeric_limits<float>::quiet_NaN()).Float(std::numeric_limits<float>::infinity());
  w.EndArray();
  EXPECT_EQ(w.str(), "[0.33333334,0.3333333432674408,0.5,-2e-30,null,null]");
  EXPECT_EQ(std::strtof("0.33333334", nullptr), third);
}

}  // namespace
}  // namespace freshet
