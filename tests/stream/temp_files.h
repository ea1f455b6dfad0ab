// Files the stream tests write: a unique path under the test temp dir, named after the running
// test, and removed when the test program ends (the names carry the pid, so files left behind
// would pile up run after run).
#ifndef FRESHET_TESTS_STREAM_TEMP_FILES_H_
#define FRESHET_TESTS_STREAM_TEMP_FILES_H_

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "gtest/gtest.h"

namespace freshet::stream::testing {

// Every path TempPath() named in this program.
inline std::vector<std::string>& TempPaths() {
  static auto* paths = new std::vector<std::string>;
  return *paths;
}

class RemoveTempFiles : public ::testing::Environment {
 public:
  void TearDown() override {
    for (const std::string& path : TempPaths()) std::remove(path.c_str());
  }
};

inline ::testing::Environment* const kRemoveTempFiles =
    ::testing::AddGlobalTestEnvironment(new RemoveTempFiles);

// `prefix` names the test file's files: "freshet_<prefix>_<suite>_<test>_<pid>_<name>".
inline std::string TempPath(absl::string_view prefix, absl::string_view name) {
  const ::testing::TestInfo* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string path =
      absl::StrCat(::testing::TempDir(), "freshet_", prefix, "_", info->test_suite_name(), "_",
                   info->name(), "_", ::getpid(), "_", name);
  TempPaths().push_back(path);
  return path;
}

// Writes `contents` to TempPath(prefix, name) and returns that path.
inline std::string WriteTempFile(absl::string_view prefix, absl::string_view name,
                                 absl::string_view contents) {
  const std::string path = TempPath(prefix, name);
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  file.write(contents.data(), static_cast<std::streamsize>(contents.size()));
  EXPECT_TRUE(file.good()) << path;
  return path;
}

}  // namespace freshet::stream::testing

#endif  // FRESHET_TESTS_STREAM_TEMP_FILES_H_
