// StoredPosition: a source position as the store keeps it, beside the state it produced.
#ifndef FRESHET_STORE_STORED_POSITION_H_
#define FRESHET_STORE_STORED_POSITION_H_

#include <cstdint>

namespace freshet::store {

struct StoredPosition {
  int32_t stream = 0;
  int32_t partition = 0;
  int64_t offset = -1;  // last applied
};

}  // namespace freshet::store

#endif  // FRESHET_STORE_STORED_POSITION_H_
