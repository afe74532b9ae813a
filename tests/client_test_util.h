// Helpers shared by the client's tests: status assertions, the source tree's test data, and
// scratch files.
#ifndef GRADSERVE_TESTS_CLIENT_TEST_UTIL_H_
#define GRADSERVE_TESTS_CLIENT_TEST_UTIL_H_

#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gtest/gtest.h"

#define CLIENT_EXPECT_OK(expr) EXPECT_TRUE((expr).ok()) << (expr).status()
#define CLIENT_ASSERT_OK(expr) ASSERT_TRUE((expr).ok()) << (expr).status()

namespace gradserve::client::testing {

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

}  // namespace gradserve::client::testing

#endif  // GRADSERVE_TESTS_CLIENT_TEST_UTIL_H_
