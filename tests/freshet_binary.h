// Running the real `freshet` binary from a test (it must be built first: the test targets depend
// on it).
#ifndef FRESHET_TESTS_FRESHET_BINARY_H_
#define FRESHET_TESTS_FRESHET_BINARY_H_

#include <sys/wait.h>

#include <cstdio>
#include <string>

namespace freshet::testing {

inline const std::string kFreshet = FRESHET_BINARY_DIR "/cli/freshet";

struct Result {
  int exit_code = -1;
  std::string output;  // stdout and stderr
};

// Runs `freshet ARGS` (a shell command line) to completion.
inline Result Freshet(const std::string& args) {
  Result result;
  FILE* pipe = popen((kFreshet + " " + args + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return result;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), pipe)) > 0) result.output.append(buf, n);
  const int status = pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

}  // namespace freshet::testing

#endif  // FRESHET_TESTS_FRESHET_BINARY_H_
