// HttpRequestParser on whole, split, pipelined and hostile requests.
#include "serving/http/request_parser.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace freshet::serving {
namespace {

using Result = HttpRequestParser::Result;
using ::testing::HasSubstr;
using ::testing::Pair;

HttpRequestParser::Limits SmallLimits() {
  HttpRequestParser::Limits limits;
  limits.max_header_bytes = 256;
  limits.max_body_bytes = 100;
  return limits;
}

// Feeds `data` one byte more at a time, as a slow client would send it; returns the first result
// that is not kIncomplete (or kIncomplete when the bytes run out) and how many bytes it took.
Result FeedByteByByte(HttpRequestParser& parser, const std::string& data, size_t* fed) {
  for (size_t n = 1; n <= data.size(); ++n) {
    const Result r = parser.Parse(absl::string_view(data).substr(0, n));
    if (r != Result::kIncomplete) {
      *fed = n;
      return r;
    }
  }
  *fed = data.size();
  return Result::kIncomplete;
}

TEST(HttpRequestParserTest, ParsesAGetAndItsFields) {
  HttpRequestParser parser(SmallLimits());
  const std::string req = "GET /v1/x?k=2 HTTP/1.1\r\nHost: a\r\nX-Y:  spaced value \t\r\n\r\n";
  ASSERT_EQ(parser.Parse(req), Result::kComplete);
  EXPECT_EQ(parser.method(), "GET");
  EXPECT_EQ(parser.target(), "/v1/x?k=2");
  EXPECT_EQ(parser.version_minor(), 1);
  EXPECT_TRUE(parser.keep_alive());
  EXPECT_THAT(parser.headers(),
              ::testing::ElementsAre(Pair("Host", "a"), Pair("X-Y", "spaced value")));
  EXPECT_EQ(parser.consumed(), req.size());
  EXPECT_TRUE(parser.mutable_body().empty());
}

TEST(HttpRequestParserTest, PersistenceFollowsVersionAndConnection) {
  struct Case {
    const char* request;
    bool keep_alive;
  };
  for (const Case& c : {Case{"GET / HTTP/1.1\r\n\r\n", true},
                        Case{"GET / HTTP/1.1\r\nConnection: close\r\n\r\n", false},
                        Case{"GET / HTTP/1.1\r\nConnection: Upgrade, CLOSE\r\n\r\n", false},
                        Case{"GET / HTTP/1.0\r\n\r\n", false},
                        Case{"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true}}) {
    HttpRequestParser parser(SmallLimits());
    ASSERT_EQ(parser.Parse(c.request), Result::kComplete) << c.request;
    EXPECT_EQ(parser.keep_alive(), c.keep_alive) << c.request;
  }
}

TEST(HttpRequestParserTest, ARequestSplitAnywhereParsesTheSame) {
  const std::string chunked =
      "POST /e HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5;name=value\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-Trailer: t\r\n\r\n";
  const std::string sized = "POST /e HTTP/1.1\r\nContent-Length: 11\r\n\r\nhello world";
  for (const std::string& req : {chunked, sized}) {
    HttpRequestParser parser(SmallLimits());
    size_t fed = 0;
    ASSERT_EQ(FeedByteByByte(parser, req, &fed), Result::kComplete) << parser.error();
    EXPECT_EQ(fed, req.size());
    EXPECT_EQ(parser.consumed(), req.size());
    EXPECT_EQ(parser.mutable_body(),
              req == chunked ? "helloabcdefghijklmnopqrstuvwxyz" : "hello world");
  }
}

TEST(HttpRequestParserTest, PipelinedRequestsAreTakenOneAtATime) {
  const std::string first = "POST /a HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc";
  const std::string second = "\r\nGET /b HTTP/1.1\r\n\r\n";
  std::string buffer = first + second;
  HttpRequestParser parser(SmallLimits());
  ASSERT_EQ(parser.Parse(buffer), Result::kComplete);
  EXPECT_EQ(parser.target(), "/a");
  EXPECT_EQ(parser.consumed(), first.size());
  buffer.erase(0, parser.consumed());
  parser.Reset();
  // One empty line before a request line is skipped (RFC 9112, 2.2).
  ASSERT_EQ(parser.Parse(buffer), Result::kComplete);
  EXPECT_EQ(parser.target(), "/b");
  EXPECT_EQ(parser.consumed(), second.size());
}

TEST(HttpRequestParserTest, ExpectContinueIsReportedOnceTheHeadIsIn) {
  HttpRequestParser parser(SmallLimits());
  const std::string head = "POST /e HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n";
  EXPECT_EQ(parser.Parse(head.substr(0, 20)), Result::kIncomplete);
  EXPECT_FALSE(parser.head_done());
  EXPECT_EQ(parser.Parse(head), Result::kIncomplete);
  EXPECT_TRUE(parser.head_done());
  EXPECT_TRUE(parser.expect_continue());
  EXPECT_EQ(parser.Parse(head + "body"), Result::kComplete);
  EXPECT_EQ(parser.mutable_body(), "body");

  HttpRequestParser http10(SmallLimits());
  EXPECT_EQ(http10.Parse("POST /e HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n"),
            Result::kIncomplete);
  EXPECT_FALSE(http10.expect_continue());
}

TEST(HttpRequestParserTest, OnlyEmptyLinesHaveNotStartedARequest) {
  HttpRequestParser parser(SmallLimits());
  EXPECT_EQ(parser.Parse("\r\n\r\n"), Result::kIncomplete);
  EXPECT_FALSE(parser.started("\r\n\r\n"));
  EXPECT_TRUE(parser.started("\r\nG"));
}

struct BadCase {
  std::string request;
  int status;
  const char* why;
};

TEST(HttpRequestParserTest, MalformedOrAmbiguousRequestsAreRefused) {
  const std::string too_long_header = absl::StrCat("GET / HTTP/1.1\r\nX: ", std::string(300, 'a'));
  const BadCase cases[] = {
      {"THIS IS NOT HTTP\r\n\r\n", 400, "bad request line"},
      {"GET / HTTP/2.0\r\n\r\n", 400, "bad version"},
      {"GET  / HTTP/1.1\r\n\r\n", 400, "bad request line"},
      {"G(T / HTTP/1.1\r\n\r\n", 400, "bad request line"},
      {"GET / HTTP/1.1\r\nBad Header Line\r\n\r\n", 400, "bad header field"},
      {"GET / HTTP/1.1\r\nName : v\r\n\r\n", 400, "bad header field"},
      {"GET / HTTP/1.1\r\nA: b\r\n folded\r\n\r\n", 400, "folding"},
      {"GET / HTTP/1.1\r\nA: b\x01\r\n\r\n", 400, "control character"},
      {"GET / HTTP/1.1\nA: b\r\n\r\n", 400, "bad request line"},
      {"GET / HTTP/1.1\r\nA: b\nC: d\r\n\r\n", 400, "control character"},
      {"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400,
       "both Transfer-Encoding and Content-Length"},
      {"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 400,
       "unsupported Transfer-Encoding"},
      {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 400,
       "unsupported Transfer-Encoding"},
      {"POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n", 400, "conflicting"},
      {"POST / HTTP/1.1\r\nContent-Length: +3\r\n\r\n", 400, "bad Content-Length"},
      {"POST / HTTP/1.1\r\nContent-Length: 3, 3\r\n\r\n", 400, "bad Content-Length"},
      {"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n", 400,
       "bad Content-Length"},
      {"POST / HTTP/1.1\r\nContent-Length: 101\r\n\r\n", 413, "exceeds 100 bytes"},
      {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n65\r\n", 413, "exceeds 100 bytes"},
      {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400, "bad chunk size"},
      {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabX\r\n", 400,
       "does not end with CRLF"},
      {"\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\n\r\n", 400, "empty lines"},
      {too_long_header, 431, "header exceeds 256 bytes"},
      {too_long_header + "\r\n\r\n", 431, "header exceeds 256 bytes"},
  };
  for (const BadCase& c : cases) {
    HttpRequestParser parser(SmallLimits());
    EXPECT_EQ(parser.Parse(c.request), Result::kError) << c.request;
    EXPECT_EQ(parser.error_status(), c.status) << c.request;
    EXPECT_THAT(parser.error(), HasSubstr(c.why)) << c.request;
    // An error sticks: the connection cannot be read further.
    EXPECT_EQ(parser.Parse(c.request + "GET / HTTP/1.1\r\n\r\n"), Result::kError);
  }
}

TEST(HttpRequestParserTest, ChunkFramingCannotGrowWithoutBound) {
  // One-byte chunks with long extensions: the body stays small, the framing does not.
  HttpRequestParser::Limits limits;
  limits.max_header_bytes = 1024;
  limits.max_body_bytes = 100;
  HttpRequestParser parser(limits);
  std::string req = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
  const std::string chunk = absl::StrCat("1;", std::string(900, 'e'), "\r\nx\r\n");
  Result r = Result::kIncomplete;
  for (int i = 0; i < 200 && r == Result::kIncomplete; ++i) {
    req += chunk;
    r = parser.Parse(req);
  }
  ASSERT_EQ(r, Result::kError);
  EXPECT_EQ(parser.error_status(), 413);
  EXPECT_LT(req.size(), 100 * 1000);
}

TEST(HttpRequestParserTest, ResetReadiesTheNextRequest) {
  HttpRequestParser parser(SmallLimits());
  ASSERT_EQ(parser.Parse("POST /a HTTP/1.0\r\nContent-Length: 2\r\n\r\nhi"), Result::kComplete);
  parser.Reset();
  ASSERT_EQ(parser.Parse("GET /b HTTP/1.1\r\n\r\n"), Result::kComplete);
  EXPECT_EQ(parser.method(), "GET");
  EXPECT_EQ(parser.version_minor(), 1);
  EXPECT_TRUE(parser.keep_alive());
  EXPECT_TRUE(parser.mutable_body().empty());
}

}  // namespace
}  // namespace freshet::serving
