// Helpers shared by the client's tests: status assertions, the source tree's test data, scratch
// files, and (in tests that define GRADSERVE_CLI_BINARY) running the gradserve binary.
#ifndef GRADSERVE_TESTS_CLIENT_TEST_UTIL_H_
#define GRADSERVE_TESTS_CLIENT_TEST_UTIL_H_

#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gtest/gtest.h"

// CLIENT_EXPECT_OK(status or StatusOr) << "more context": evaluates `expr` once (a call with side
// effects must not run twice on failure), like tests/test_util.h's EXPECT_OK, which the client's
// tests cannot include (it pulls in lib/); the switch keeps an else outside the macro from binding
// to the macro's if.
#define CLIENT_EXPECT_OK(expr)                                                             \
  switch (0)                                                                               \
  case 0:                                                                                  \
  default:                                                                                 \
    if (const ::absl::Status gradserve_client_s_ =                                         \
            ::gradserve::client::testing::ToStatus(expr);                                  \
        gradserve_client_s_.ok()) {                                                        \
    } else                                                                                 \
      ADD_FAILURE() << #expr << " is " << gradserve_client_s_
#define CLIENT_ASSERT_OK(expr)                                                                   \
  do {                                                                                           \
    const ::absl::Status gradserve_client_s_ = ::gradserve::client::testing::ToStatus(expr);    \
    ASSERT_TRUE(gradserve_client_s_.ok()) << #expr << " is " << gradserve_client_s_;          \
  } while (0)

namespace gradserve::client::testing {

inline absl::Status ToStatus(const absl::Status& s) { return s; }
template <typename T>
absl::Status ToStatus(const absl::StatusOr<T>& s) { return s.status(); }

// A file of the source tree's tests/data (GRADSERVE_SOURCE_DIR is set by tests/CMakeLists.txt).
inline std::string TestDataPath(const std::string& name) {
  const char* root = std::getenv("GRADSERVE_SOURCE_DIR");
  return std::string(root != nullptr ? root : ".") + "/tests/data/" + name;
}

// Writes `contents` to a fresh file named `name` in the test's temporary directory.
inline std::string WriteTempFile(const std::string& name, const std::string& contents) {
  const std::string path = ::testing::TempDir() + std::to_string(getpid()) + "_" + name;
  std::ofstream(path, std::ios::binary | std::ios::trunc) << contents;
  return path;
}

#ifdef GRADSERVE_CLI_BINARY  // the CLI tests: the path of the gradserve binary

struct CliResult {
  int exit_code = -1;
  std::string out, err;
};

// Runs the gradserve binary with `args` (and `env` added to the environment), collecting both
// output streams.
inline CliResult RunCli(const std::vector<std::string>& args, const std::vector<std::string>& env = {}) {
  int out_pipe[2], err_pipe[2];
  if (pipe(out_pipe) != 0 || pipe(err_pipe) != 0) return {};
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(out_pipe[1], STDOUT_FILENO);
    dup2(err_pipe[1], STDERR_FILENO);
    for (int fd : {out_pipe[0], out_pipe[1], err_pipe[0], err_pipe[1]}) close(fd);
    unsetenv("GRADSERVE_TOKEN");
    for (const std::string& e : env) putenv(const_cast<char*>(e.c_str()));
    std::vector<char*> argv{const_cast<char*>(GRADSERVE_CLI_BINARY)};
    for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(GRADSERVE_CLI_BINARY, argv.data());
    _exit(127);
  }
  close(out_pipe[1]);
  close(err_pipe[1]);
  CliResult r;
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  std::string* sinks[2] = {&r.out, &r.err};
  int open_streams = 2;
  while (open_streams > 0 && poll(fds, 2, 60000) > 0) {
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP))) continue;
      char buf[4096];
      const ssize_t n = read(fds[i].fd, buf, sizeof buf);
      if (n > 0) {
        sinks[i]->append(buf, n);
      } else {
        close(fds[i].fd);
        fds[i].fd = -1;
        --open_streams;
      }
    }
  }
  int status = 0;
  waitpid(pid, &status, 0);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

#endif  // GRADSERVE_CLI_BINARY

}  // namespace gradserve::client::testing

#endif  // GRADSERVE_TESTS_CLIENT_TEST_UTIL_H_
