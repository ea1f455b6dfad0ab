// The model topic: how a learner publishes its item state to serving replicas. One partition
// (partition 0), so the replicas apply changes in the order the learner made them. Every message
// is keyed so that a compacted topic keeps the latest state of each item and the latest globals:
//   key "i" + item id -> an item row:  header, then Learner::EncodeItem() of the row
//   key "g"           -> the globals:  header, then Learner::EncodeGlobals()
// header: magic (kMagic), kind (kItem | kGlobals), the publishing wall time (int64 ns since the
// epoch), the item row (int32; -1 for the globals). Little-endian, as common/byte_codec.h writes.
// A replica that starts reads the topic from its beginning and then follows it.
#ifndef FRESHET_ENGINE_FOLLOWER_MODEL_TOPIC_H_
#define FRESHET_ENGINE_FOLLOWER_MODEL_TOPIC_H_

#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "common/byte_codec.h"

namespace freshet::engine::model_topic {

constexpr uint8_t kMagic = 0xF5;
constexpr uint8_t kItem = 1;
constexpr uint8_t kGlobals = 2;
constexpr int32_t kPartition = 0;

struct Header {
  uint8_t kind = 0;
  int64_t published_ns = 0;
  int32_t row = -1;
};

inline void PutHeader(const Header& h, std::string* out) {
  ByteWriter w(out);
  w.Put(kMagic);
  w.Put(h.kind);
  w.Put(h.published_ns);
  w.Put(h.row);
}

// Reads the header off the front of `value`, leaving the payload; false when it is not one.
inline bool GetHeader(absl::string_view* value, Header* h) {
  ByteReader r(*value);
  uint8_t magic = 0;
  if (!r.Get(&magic) || magic != kMagic || !r.Get(&h->kind) || !r.Get(&h->published_ns) ||
      !r.Get(&h->row)) {
    return false;
  }
  if (h->kind != kItem && h->kind != kGlobals) return false;
  value->remove_prefix(1 + 1 + sizeof(int64_t) + sizeof(int32_t));
  return true;
}

}  // namespace freshet::engine::model_topic

#endif  // FRESHET_ENGINE_FOLLOWER_MODEL_TOPIC_H_
