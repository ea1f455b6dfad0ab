#include "serving/http/request_parser.h"

#include <algorithm>
#include <string>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace freshet::serving {
namespace {

constexpr int kMaxLeadingEmptyLines = 8;
constexpr absl::string_view kCrlf = "\r\n";
constexpr absl::string_view kEndOfHead = "\r\n\r\n";
// A chunk-size line: up to 16 hex digits and an extension; longer is not a size anyone sends.
constexpr size_t kMaxChunkLine = 1024;

bool IsTokenChar(unsigned char c) {
  if (absl::ascii_isalnum(c)) return true;
  switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '.':
    case '^':
    case '_':
    case '`':
    case '|':
    case '~':
      return true;
    default:
      return false;
  }
}

// Field values: visible characters, spaces, tabs and obs-text; no other control characters.
bool IsFieldValue(absl::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char ch) {
    const auto c = static_cast<unsigned char>(ch);
    return c == '\t' || (c >= 0x20 && c != 0x7f);
  });
}

// A request target: visible ASCII and obs-text, no spaces or controls.
bool IsTarget(absl::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char ch) {
    const auto c = static_cast<unsigned char>(ch);
    return c > 0x20 && c != 0x7f;
  });
}

absl::string_view TrimWhitespace(absl::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Bytes of empty lines ("\r\n") before the request line; npos when there are too many.
size_t LeadingEmptyLines(absl::string_view data) {
  size_t pos = 0;
  for (int i = 0; i <= kMaxLeadingEmptyLines; ++i) {
    if (!absl::StartsWith(data.substr(pos), kCrlf)) return pos;
    pos += kCrlf.size();
  }
  return absl::string_view::npos;
}

}  // namespace

bool IsHttpToken(absl::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return IsTokenChar(static_cast<unsigned char>(c));
  });
}

void HttpRequestParser::Reset() {
  head_done_ = false;
  expect_continue_ = false;
  keep_alive_ = true;
  version_minor_ = 1;
  head_scan_ = 0;
  body_begin_ = 0;
  framing_ = Framing::kNone;
  content_length_ = 0;
  chunk_pos_ = 0;
  in_trailer_ = false;
  method_.clear();
  target_.clear();
  headers_.clear();
  body_.clear();
  consumed_ = 0;
  error_status_ = 0;
  error_.clear();
}

bool HttpRequestParser::started(absl::string_view data) const {
  if (head_done_) return true;
  const size_t lead = LeadingEmptyLines(data);
  return lead == absl::string_view::npos || lead < data.size();
}

HttpRequestParser::Result HttpRequestParser::Fail(int status, std::string message) {
  error_status_ = status;
  error_ = std::move(message);
  return Result::kError;
}

HttpRequestParser::Result HttpRequestParser::Parse(absl::string_view data) {
  if (error_status_ != 0) return Result::kError;
  if (!head_done_) {
    const Result head = ParseHead(data);
    if (head != Result::kComplete) return head;
  }
  switch (framing_) {
    case Framing::kNone:
      consumed_ = body_begin_;
      return Result::kComplete;
    case Framing::kLength: {
      const size_t end = body_begin_ + static_cast<size_t>(content_length_);
      if (data.size() < end) return Result::kIncomplete;
      body_.assign(data.data() + body_begin_, static_cast<size_t>(content_length_));
      consumed_ = end;
      return Result::kComplete;
    }
    case Framing::kChunked:
      return ParseChunked(data);
  }
  return Fail(400, "malformed HTTP request");
}

HttpRequestParser::Result HttpRequestParser::ParseHead(absl::string_view data) {
  const size_t lead = LeadingEmptyLines(data);
  if (lead == absl::string_view::npos) {
    return Fail(400, "malformed HTTP request: empty lines instead of a request line");
  }
  const size_t from = std::max(head_scan_, lead);
  size_t end = data.find(kEndOfHead, from);
  if (end == absl::string_view::npos) {
    head_scan_ = data.size() >= kEndOfHead.size() ? data.size() - (kEndOfHead.size() - 1) : 0;
    if (static_cast<int64_t>(data.size() - lead) > limits_.max_header_bytes) {
      return Fail(431, absl::StrCat("request header exceeds ", limits_.max_header_bytes, " bytes"));
    }
    return Result::kIncomplete;
  }
  const size_t head_bytes = end + kEndOfHead.size() - lead;
  if (static_cast<int64_t>(head_bytes) > limits_.max_header_bytes) {
    return Fail(431, absl::StrCat("request header exceeds ", limits_.max_header_bytes, " bytes"));
  }
  const Result lines = ParseHeadLines(data.substr(lead, end - lead));
  if (lines != Result::kComplete) return lines;
  head_done_ = true;
  body_begin_ = end + kEndOfHead.size();
  chunk_pos_ = body_begin_;
  return Result::kComplete;
}

HttpRequestParser::Result HttpRequestParser::ParseHeadLines(absl::string_view head) {
  std::vector<absl::string_view> lines = absl::StrSplit(head, kCrlf);
  // Request line: method SP target SP HTTP-version.
  const absl::string_view request_line = lines[0];
  const std::vector<absl::string_view> parts = absl::StrSplit(request_line, ' ');
  if (parts.size() != 3 || !IsHttpToken(parts[0]) || !IsTarget(parts[1])) {
    return Fail(400, "malformed HTTP request: bad request line");
  }
  const absl::string_view version = parts[2];
  if (version.size() != 8 || !absl::StartsWith(version, "HTTP/1.") ||
      !absl::ascii_isdigit(static_cast<unsigned char>(version[7]))) {
    return Fail(400, "malformed HTTP request: bad version");
  }
  version_minor_ = version[7] == '0' ? 0 : 1;
  method_.assign(parts[0].data(), parts[0].size());
  target_.assign(parts[1].data(), parts[1].size());

  bool has_length = false;
  bool has_transfer_encoding = false;
  std::string transfer_encoding;
  bool close = false;
  bool keep_alive_token = false;
  headers_.reserve(lines.size() - 1);
  for (size_t i = 1; i < lines.size(); ++i) {
    const absl::string_view line = lines[i];
    if (line.empty() || line.front() == ' ' || line.front() == '\t') {
      return Fail(400, "malformed HTTP request: obsolete line folding or an empty field line");
    }
    const size_t colon = line.find(':');
    if (colon == absl::string_view::npos || !IsHttpToken(line.substr(0, colon))) {
      return Fail(400, "malformed HTTP request: bad header field");
    }
    const absl::string_view name = line.substr(0, colon);
    const absl::string_view value = TrimWhitespace(line.substr(colon + 1));
    if (!IsFieldValue(value)) {
      return Fail(400, "malformed HTTP request: control character in a header field");
    }
    headers_.emplace_back(std::string(name), std::string(value));
    if (absl::EqualsIgnoreCase(name, "Content-Length")) {
      int64_t length = 0;
      if (value.empty() || value.size() > 18 ||
          !std::all_of(value.begin(), value.end(),
                       [](char c) { return absl::ascii_isdigit(static_cast<unsigned char>(c)); }) ||
          !absl::SimpleAtoi(value, &length)) {
        return Fail(400, "malformed HTTP request: bad Content-Length");
      }
      if (has_length && length != content_length_) {
        return Fail(400, "malformed HTTP request: conflicting Content-Length fields");
      }
      has_length = true;
      content_length_ = length;
    } else if (absl::EqualsIgnoreCase(name, "Transfer-Encoding")) {
      has_transfer_encoding = true;
      absl::StrAppend(&transfer_encoding, transfer_encoding.empty() ? "" : ",", value);
    } else if (absl::EqualsIgnoreCase(name, "Connection")) {
      for (absl::string_view token : absl::StrSplit(value, ',')) {
        token = TrimWhitespace(token);
        if (absl::EqualsIgnoreCase(token, "close")) close = true;
        if (absl::EqualsIgnoreCase(token, "keep-alive")) keep_alive_token = true;
      }
    } else if (absl::EqualsIgnoreCase(name, "Expect")) {
      expect_continue_ = version_minor_ >= 1 && absl::EqualsIgnoreCase(value, "100-continue");
    }
  }
  keep_alive_ = version_minor_ >= 1 ? !close : (keep_alive_token && !close);
  if (has_transfer_encoding) {
    if (has_length) {
      return Fail(400, "malformed HTTP request: both Transfer-Encoding and Content-Length");
    }
    if (!absl::EqualsIgnoreCase(TrimWhitespace(transfer_encoding), "chunked")) {
      return Fail(400, absl::StrCat("malformed HTTP request: unsupported Transfer-Encoding '",
                                    transfer_encoding.substr(0, 64), "' (only chunked)"));
    }
    framing_ = Framing::kChunked;
  } else if (has_length) {
    if (content_length_ > limits_.max_body_bytes) {
      return Fail(413, absl::StrCat("request body exceeds ", limits_.max_body_bytes, " bytes"));
    }
    framing_ = content_length_ > 0 ? Framing::kLength : Framing::kNone;
  }
  if (framing_ == Framing::kNone) expect_continue_ = false;
  return Result::kComplete;
}

HttpRequestParser::Result HttpRequestParser::ParseChunked(absl::string_view data) {
  for (;;) {
    const absl::string_view rest = data.substr(chunk_pos_);
    if (in_trailer_) {
      // Trailer fields, each ending in CRLF, then an empty line. Read and dropped.
      if (absl::StartsWith(rest, kCrlf)) {
        consumed_ = chunk_pos_ + kCrlf.size();
        return Result::kComplete;
      }
      const size_t line_end = rest.find(kCrlf);
      if (line_end == absl::string_view::npos) {
        if (static_cast<int64_t>(rest.size()) > limits_.max_header_bytes) {
          return Fail(431,
                      absl::StrCat("request trailer exceeds ", limits_.max_header_bytes, " bytes"));
        }
        return Result::kIncomplete;
      }
      const absl::string_view line = rest.substr(0, line_end);
      const size_t colon = line.find(':');
      if (colon == absl::string_view::npos || !IsHttpToken(line.substr(0, colon)) ||
          !IsFieldValue(line.substr(colon + 1))) {
        return Fail(400, "malformed HTTP request: bad trailer field");
      }
      chunk_pos_ += line_end + kCrlf.size();
      continue;
    }
    const size_t line_end = rest.find(kCrlf);
    if (line_end == absl::string_view::npos) {
      if (rest.size() > kMaxChunkLine) return Fail(400, "malformed HTTP request: bad chunk size");
      return Result::kIncomplete;
    }
    absl::string_view size_text = rest.substr(0, line_end);
    const size_t semicolon = size_text.find(';');
    if (semicolon != absl::string_view::npos) {
      if (!IsFieldValue(size_text.substr(semicolon))) {
        return Fail(400, "malformed HTTP request: bad chunk extension");
      }
      size_text = size_text.substr(0, semicolon);
    }
    size_text = TrimWhitespace(size_text);
    uint64_t size = 0;
    if (size_text.empty() || size_text.size() > 15 ||
        !std::all_of(size_text.begin(), size_text.end(),
                     [](char c) { return absl::ascii_isxdigit(static_cast<unsigned char>(c)); }) ||
        !absl::SimpleHexAtoi(size_text, &size)) {
      return Fail(400, "malformed HTTP request: bad chunk size");
    }
    if (static_cast<int64_t>(body_.size() + size) > limits_.max_body_bytes) {
      return Fail(413, absl::StrCat("request body exceeds ", limits_.max_body_bytes, " bytes"));
    }
    // Framing bytes count too: tiny chunks with long extensions must not buffer without bound.
    if (static_cast<int64_t>(chunk_pos_ - body_begin_) > 2 * limits_.max_body_bytes + 65536) {
      return Fail(413, absl::StrCat("request body exceeds ", limits_.max_body_bytes,
                                    " bytes (with its chunk framing)"));
    }
    const size_t data_begin = line_end + kCrlf.size();
    if (size == 0) {
      in_trailer_ = true;
      chunk_pos_ += data_begin;
      continue;
    }
    if (rest.size() < data_begin + size + kCrlf.size()) return Result::kIncomplete;
    if (rest.substr(data_begin + size, kCrlf.size()) != kCrlf) {
      return Fail(400, "malformed HTTP request: chunk data does not end with CRLF");
    }
    body_.append(rest.data() + data_begin, size);
    chunk_pos_ += data_begin + size + kCrlf.size();
  }
}

}  // namespace freshet::serving
