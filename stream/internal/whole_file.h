// ReadWholeFile: a file's bytes in memory, gunzipped when the file starts with the gzip magic
// bytes (whatever its name), followed by readable padding so that parsers which read a little past
// the end of their input (simdjson) can work on it in place.
#ifndef FRESHET_STREAM_INTERNAL_WHOLE_FILE_H_
#define FRESHET_STREAM_INTERNAL_WHOLE_FILE_H_

#include <cstddef>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace freshet::stream::internal {

struct WholeFile {
  // The decoded bytes followed by the requested padding (spaces).
  std::string buffer;
  size_t size = 0;         // decoded bytes, without the padding
  bool gzip = false;       // the file was gzip-compressed
  bool truncated = false;  // a gzip stream ended before its end marker; `buffer` has what decoded

  absl::string_view contents() const { return absl::string_view(buffer.data(), size); }
};

// Reads `path` to its end (regular files, pipes and FIFOs alike). Concatenated gzip members are
// decoded one after another, as gzip(1) does; bytes after the last member that do not start a new
// member are ignored with a warning.
//
// Errors: NotFound (no such file), PermissionDenied, InvalidArgument (a directory), DataLoss (a
// corrupt gzip stream: bad header, bad block, checksum mismatch), Internal (other I/O errors).
// Every message names the file. A truncated gzip stream is not an error: see `truncated`.
absl::StatusOr<WholeFile> ReadWholeFile(const std::string& path, size_t padding);

}  // namespace freshet::stream::internal

#endif  // FRESHET_STREAM_INTERNAL_WHOLE_FILE_H_
