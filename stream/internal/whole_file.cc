#include "stream/internal/whole_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/log.h"

namespace freshet::stream::internal {
namespace {

// zlib counts in 32-bit uInt; larger buffers are handed over in slices of this size.
constexpr size_t kMaxZlibChunk = size_t{1} << 30;
constexpr size_t kMinBuffer = size_t{64} << 10;
constexpr size_t kMaxInitialGunzipBuffer = size_t{1} << 30;

absl::Status ErrnoStatus(int error, absl::string_view what, const std::string& path) {
  const std::string message = absl::StrCat(what, " ", path, ": ", std::strerror(error));
  switch (error) {
    case ENOENT:
    case ENOTDIR:
      return absl::NotFoundError(message);
    case EACCES:
    case EPERM:
      return absl::PermissionDeniedError(message);
    case EISDIR:
      return absl::InvalidArgumentError(message);
    default:
      return absl::InternalError(message);
  }
}

class FdCloser {
 public:
  explicit FdCloser(int fd) : fd_(fd) {}
  FdCloser(const FdCloser&) = delete;
  FdCloser& operator=(const FdCloser&) = delete;
  ~FdCloser() { ::close(fd_); }

 private:
  const int fd_;
};

// Reads `fd` to EOF into the front of a buffer whose size is the byte count. `size_hint` (the
// file size for regular files) avoids regrowing; the extra byte lets EOF be seen without growth.
absl::StatusOr<std::string> ReadToEnd(int fd, size_t size_hint, size_t padding,
                                      const std::string& path) {
  std::string data;
  data.resize(std::max(size_hint + 1 + padding, kMinBuffer));
  size_t used = 0;
  for (;;) {
    if (used == data.size()) data.resize(data.size() * 2);
    const ssize_t n = ::read(fd, data.data() + used, data.size() - used);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, "cannot read", path);
    }
    if (n == 0) break;
    used += static_cast<size_t>(n);
  }
  data.resize(used);
  return data;
}

bool HasGzipMagic(absl::string_view bytes) {
  return bytes.size() >= 2 && static_cast<unsigned char>(bytes[0]) == 0x1f &&
         static_cast<unsigned char>(bytes[1]) == 0x8b;
}

class InflateEnd {
 public:
  explicit InflateEnd(z_stream* stream) : stream_(stream) {}
  InflateEnd(const InflateEnd&) = delete;
  InflateEnd& operator=(const InflateEnd&) = delete;
  ~InflateEnd() { inflateEnd(stream_); }

 private:
  z_stream* const stream_;
};

// Decodes every gzip member in `in` into out->buffer (without padding).
absl::Status Gunzip(const std::string& in, const std::string& path, WholeFile* out) {
  z_stream zs{};
  // 16 + MAX_WBITS: gzip wrapper only; the magic bytes already told us what this is.
  if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK) {
    return absl::InternalError(absl::StrCat("cannot initialise zlib for ", path));
  }
  InflateEnd inflate_end(&zs);

  auto* const in_begin = reinterpret_cast<const Bytef*>(in.data());
  const auto feed = [&](size_t consumed) {
    zs.next_in = const_cast<Bytef*>(in_begin + consumed);
    zs.avail_in = static_cast<uInt>(std::min(in.size() - consumed, kMaxZlibChunk));
  };
  const auto consumed = [&] { return static_cast<size_t>(zs.next_in - in_begin); };

  std::string& buffer = out->buffer;
  // Event logs typically compress 4-8x; start near there (capped, so that a huge file does not
  // ask for a huge guess) and double.
  buffer.resize(std::clamp(in.size() * 4, kMinBuffer, kMaxInitialGunzipBuffer));
  size_t used = 0;
  feed(0);
  for (;;) {
    if (zs.avail_in == 0 && consumed() < in.size()) feed(consumed());
    if (used == buffer.size()) buffer.resize(buffer.size() * 2);
    const size_t room = std::min(buffer.size() - used, kMaxZlibChunk);
    zs.next_out = reinterpret_cast<Bytef*>(buffer.data() + used);
    zs.avail_out = static_cast<uInt>(room);
    const int ret = inflate(&zs, Z_NO_FLUSH);
    used += room - zs.avail_out;
    if (ret == Z_OK) continue;
    if (ret == Z_STREAM_END) {
      const absl::string_view rest(in.data() + consumed(), in.size() - consumed());
      if (rest.empty()) break;
      if (HasGzipMagic(rest)) {  // another member (e.g. `cat a.gz b.gz`)
        if (inflateReset(&zs) != Z_OK) {
          return absl::InternalError(absl::StrCat("cannot reset zlib for ", path));
        }
        feed(consumed());
        continue;
      }
      LogWarning(absl::StrCat(path, ": ignoring ", rest.size(),
                              " bytes of trailing garbage after the gzip stream"));
      break;
    }
    if (ret == Z_BUF_ERROR && zs.avail_in == 0 && consumed() == in.size()) {
      // No progress and no input left: the stream stops before its end marker.
      out->truncated = true;
      break;
    }
    if (ret == Z_BUF_ERROR) continue;  // output was full; the loop grows the buffer
    if (ret == Z_MEM_ERROR) {
      return absl::ResourceExhaustedError(absl::StrCat("out of memory while decompressing ", path));
    }
    return absl::DataLossError(
        absl::StrCat("corrupt gzip stream in ", path, " after ", consumed(),
                     " compressed bytes: ", zs.msg != nullptr ? zs.msg : "unknown error"));
  }
  buffer.resize(used);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<WholeFile> ReadWholeFile(const std::string& path, size_t padding) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(errno, "cannot open", path);
  FdCloser closer(fd);

  struct stat st {};
  if (::fstat(fd, &st) != 0) return ErrnoStatus(errno, "cannot stat", path);
  if (S_ISDIR(st.st_mode)) return ErrnoStatus(EISDIR, "cannot read", path);
  const size_t size_hint = S_ISREG(st.st_mode) ? static_cast<size_t>(st.st_size) : 0;

  WholeFile file;
  absl::StatusOr<std::string> raw = ReadToEnd(fd, size_hint, padding, path);
  if (!raw.ok()) return raw.status();
  if (HasGzipMagic(*raw)) {
    file.gzip = true;
    const std::string compressed = *std::move(raw);
    if (absl::Status status = Gunzip(compressed, path, &file); !status.ok()) return status;
  } else {
    file.buffer = *std::move(raw);
  }
  file.size = file.buffer.size();
  // ReadToEnd left capacity for the padding on regular files, so this rarely reallocates.
  file.buffer.resize(file.size + padding, ' ');
  return file;
}

}  // namespace freshet::stream::internal
