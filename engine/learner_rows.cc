#include "engine/learner_rows.h"

#include <utility>

namespace freshet::engine {

store::ChangedRows LearnerRows::TakeChanges() {
  learner::StateChanges changes = learner_.TakeChanges();
  store::ChangedRows rows;
  rows.users = std::move(changes.users);
  rows.items = std::move(changes.items);
  rows.erased_users = std::move(changes.erased_users);
  rows.globals = changes.globals;
  return rows;
}

absl::Status LoadLearner(const store::StateStore& store, learner::Learner& learner) {
  LearnerRows rows(learner);
  return store.LoadInto(&rows);
}

}  // namespace freshet::engine
