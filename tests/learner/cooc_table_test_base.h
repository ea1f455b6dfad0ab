// A test fixture holding a co-occurrence table (every pair within a user's latest 8 items,
// undecayed, no sessions) over a fixed catalog, fed one user's events at a time: the input of the
// components fitted to blend's profile table (Ease, Topics).
#ifndef FRESHET_TESTS_LEARNER_COOC_TABLE_TEST_BASE_H_
#define FRESHET_TESTS_LEARNER_COOC_TABLE_TEST_BASE_H_

#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "config/config.h"
#include "gtest/gtest.h"
#include "kernels/backend.h"
#include "learner/cooc_model.h"
#include "learner/popularity.h"

namespace freshet::learner {

class CoocTableTest : public ::testing::Test {
 protected:
  explicit CoocTableTest(int32_t items) : items_(items) {}

  void SetUp() override {
    auto backend = kernels::CreateBackend("cpu");
    ASSERT_TRUE(backend.ok());
    backend_ = std::move(*backend);
    config::Config config;
    config.cooc_window = 8;
    config.cooc_decay = 1.0f;
    config.cooc_session_gap_s = 0;
    table_ = std::make_unique<CoocModel>(config, &popularity_, backend_.get());
    table_->Grow(kMaxUsers, items_);
    popularity_.Resize(items_);
  }
  // One user's events, in order: each pairs with the user's earlier items.
  void User(const std::vector<int32_t>& items) {
    ASSERT_LT(users_, kMaxUsers);
    std::vector<int32_t> recent;
    for (int32_t item : items) {
      table_->Learn(Interaction{users_, item, 1.0f, ++ts_, recent, items_});
      recent.push_back(item);
    }
    ++users_;
  }

  static constexpr int32_t kMaxUsers = 10000;
  const int32_t items_;
  Popularity popularity_{0};
  std::unique_ptr<kernels::Backend> backend_;
  std::unique_ptr<CoocModel> table_;
  int32_t users_ = 0;
  int64_t ts_ = 0;
};

}  // namespace freshet::learner

#endif  // FRESHET_TESTS_LEARNER_COOC_TABLE_TEST_BASE_H_
