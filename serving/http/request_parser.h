// HttpRequestParser: an incremental HTTP/1.1 request parser (RFC 9112) for the server's I/O
// threads. It reads a request in place from the connection's buffered bytes, copies out only what
// a handler needs, and rejects what would let a client desynchronise the connection.
//
//   HttpRequestParser parser({.max_header_bytes = 16 << 10, .max_body_bytes = 1 << 20});
//   switch (parser.Parse(buffered)) {          // `buffered` starts at the request's first byte
//     case HttpRequestParser::Result::kIncomplete: ... read more, call Parse() again ...
//     case HttpRequestParser::Result::kComplete:   ... parser.method(), body(), consumed() ...
//     case HttpRequestParser::Result::kError:      ... answer error_status(), then close ...
//   }
//   parser.Reset();                              // before the next request
//
// Between Reset()s, each Parse() must see the bytes the previous one saw, followed by any new
// ones: the parser keeps its place (the head is parsed once; a chunked body is decoded once).
//
// Rules, beyond the grammar:
//   - Up to 8 empty lines before the request line are skipped (RFC 9112, 2.2).
//   - Versions HTTP/1.0 and HTTP/1.1 (any other 1.x is answered as 1.1); others are a 400.
//   - The head (request line and fields, through the empty line) over max_header_bytes is a 431.
//   - Obsolete line folding, a space before a field's colon, control characters in a field, a bare
//     LF as a line end: 400.
//   - Transfer-Encoding other than exactly "chunked", or together with Content-Length: 400 (a
//     request that two parsers could frame differently is never guessed at). Content-Length must
//     be digits; several must agree.
//   - A body (declared or decoded) over max_body_bytes is a 413, as soon as it is known.
//   - Chunk extensions and trailer fields are read and dropped.
//
// Thread-safety: not thread-safe; one per connection.
#ifndef FRESHET_SERVING_HTTP_REQUEST_PARSER_H_
#define FRESHET_SERVING_HTTP_REQUEST_PARSER_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"

namespace freshet::serving {

// True for an RFC 9110 token (one or more tchar): a method or a field name.
bool IsHttpToken(absl::string_view s);

class HttpRequestParser {
 public:
  struct Limits {
    int64_t max_header_bytes = 16 << 10;
    int64_t max_body_bytes = 1 << 20;
  };
  enum class Result { kIncomplete, kComplete, kError };

  explicit HttpRequestParser(Limits limits) : limits_(limits) {}

  // Parses the request that starts at data[0]. kIncomplete: more bytes are needed. kComplete: the
  // request is whole; it took consumed() bytes of data. kError: error_status() and error() say
  // what was wrong; the connection cannot be read further.
  Result Parse(absl::string_view data);

  // Forgets the request, ready for the next one.
  void Reset();

  // True once the head has been parsed (also while the body is still arriving).
  bool head_done() const { return head_done_; }
  // The head asked for "Expect: 100-continue" (HTTP/1.1 only). Valid once head_done().
  bool expect_continue() const { return expect_continue_; }
  // True while some bytes of a request have arrived (not just skipped empty lines).
  bool started(absl::string_view data) const;

  // Valid after kComplete (method, target, version, headers and keep_alive once head_done()).
  const std::string& method() const { return method_; }
  const std::string& target() const { return target_; }
  int version_minor() const { return version_minor_; }  // 0 or 1
  const std::vector<std::pair<std::string, std::string>>& headers() const { return headers_; }
  std::vector<std::pair<std::string, std::string>>& mutable_headers() { return headers_; }
  // Connection persistence from the version and the Connection field.
  bool keep_alive() const { return keep_alive_; }
  std::string& mutable_body() { return body_; }
  size_t consumed() const { return consumed_; }

  // Valid after kError: 400, 413 or 431, and why.
  int error_status() const { return error_status_; }
  const std::string& error() const { return error_; }

 private:
  enum class Framing { kNone, kLength, kChunked };

  Result Fail(int status, std::string message);
  Result ParseHead(absl::string_view data);
  // Parses head_[begin, end) (request line and fields, without the final empty line).
  Result ParseHeadLines(absl::string_view head);
  Result ParseChunked(absl::string_view data);

  const Limits limits_;
  bool head_done_ = false;
  bool expect_continue_ = false;
  bool keep_alive_ = true;
  int version_minor_ = 1;
  size_t head_scan_ = 0;   // where the search for the head's end resumes
  size_t body_begin_ = 0;  // offset of the body in data
  Framing framing_ = Framing::kNone;
  int64_t content_length_ = 0;
  // Chunked decoding: the offset where the next chunk-size line (or the trailer) starts, and
  // whether the last chunk has been read (then the trailer is being read).
  size_t chunk_pos_ = 0;
  bool in_trailer_ = false;
  std::string method_;
  std::string target_;
  std::vector<std::pair<std::string, std::string>> headers_;
  std::string body_;
  size_t consumed_ = 0;
  int error_status_ = 0;
  std::string error_;
};

}  // namespace freshet::serving

#endif  // FRESHET_SERVING_HTTP_REQUEST_PARSER_H_
