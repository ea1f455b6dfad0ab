// UTF-8 validation (RFC 3629): no overlong forms, no surrogates (U+D800..U+DFFF), nothing above
// U+10FFFF. Used at the door (ids in events and requests must be valid) and by JsonWriter, which
// must never emit a byte sequence that is not.
#ifndef FRESHET_COMMON_UTF8_H_
#define FRESHET_COMMON_UTF8_H_

#include <cstddef>

#include "absl/strings/string_view.h"

namespace freshet {

// Bytes of the valid UTF-8 sequence that starts `text` (1 to 4), or 0 when `text` is empty or
// does not start with one.
size_t Utf8SequenceLength(absl::string_view text);

bool IsValidUtf8(absl::string_view text);

}  // namespace freshet

#endif  // FRESHET_COMMON_UTF8_H_
