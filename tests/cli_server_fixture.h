// A suite of CLI tests sharing one real gradserve-server, started once per suite:
//
//   class ClientCliTest : public CliServerTest {
//    protected:
//     static void SetUpTestSuite() { StartServer({"--max_message_mib=1"}); }
//   };
//   TEST_F(ClientCliTest, ...) { const CliResult r = Run({"health"}); ... }
#ifndef GRADSERVE_TESTS_CLI_SERVER_FIXTURE_H_
#define GRADSERVE_TESTS_CLI_SERVER_FIXTURE_H_

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/client_test_util.h"
#include "tests/server_process.h"

namespace gradserve::client::testing {

class CliServerTest : public ::testing::Test {
 protected:
  // Starts the suite's server with `flags`; call it from SetUpTestSuite.
  static void StartServer(std::vector<std::string> flags = {}) {
    auto server = gradserve::testing::ServerProcess::Start(std::move(flags));
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = server->release();
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }

  // gradserve --target=<the suite's server> args...
  static CliResult Run(std::vector<std::string> args, const std::vector<std::string>& env = {}) {
    args.insert(args.begin(), "--target=" + server_->address());
    return RunCli(args, env);
  }

  static inline gradserve::testing::ServerProcess* server_ = nullptr;
};

}  // namespace gradserve::client::testing

#endif  // GRADSERVE_TESTS_CLI_SERVER_FIXTURE_H_
