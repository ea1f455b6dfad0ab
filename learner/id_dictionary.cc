#include "learner/id_dictionary.h"

namespace freshet::learner {

int32_t IdDictionary::FindOrInsert(absl::string_view id, bool* inserted) {
  auto [it, fresh] = rows_.try_emplace(id, static_cast<int32_t>(ids_.size()));
  if (fresh) ids_.emplace_back(id);
  *inserted = fresh;
  return it->second;
}

}  // namespace freshet::learner
