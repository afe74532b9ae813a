// Runs the real gradserve-server binary for integration tests: on a free loopback port, with the
// given flags, stopped (SIGTERM, then SIGKILL) when the object goes away. Its stdout (the log)
// is read in the background, so the server never blocks on a full pipe, and kept for Output().
//
//   auto server = ServerProcess::Start({"--token_file=/tmp/t"});
//   ASSERT_TRUE(server.ok()) << server.status();
//   auto channel = grpc::CreateChannel((*server)->address(), grpc::InsecureChannelCredentials());
#ifndef GRADSERVE_TESTS_SERVER_PROCESS_H_
#define GRADSERVE_TESTS_SERVER_PROCESS_H_

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace gradserve::testing {

class ServerProcess {
 public:
  // Starts `binary` (default: the gradserve-server this build made) with
  // --listen=127.0.0.1:0 plus `flags`, and waits for its "listening on HOST:PORT" line.
  static absl::StatusOr<std::unique_ptr<ServerProcess>> Start(std::vector<std::string> flags = {},
                                                              std::string binary = "");
  ~ServerProcess();

  const std::string& address() const { return address_; }  // "127.0.0.1:PORT"
  int pid() const { return pid_; }
  bool running();

  // Everything the server has printed on stdout so far.
  std::string Output() const;

  // Sends SIGTERM and waits up to `timeout_ms`; returns the exit status (as from waitpid), or -1
  // if it had to be killed.
  int Terminate(int timeout_ms = 10000);

 private:
  struct Log {
    std::mutex mu;
    std::string text;
  };
  ServerProcess(int pid, std::string address, std::shared_ptr<Log> log)
      : pid_(pid), address_(std::move(address)), log_(std::move(log)) {}
  int pid_;
  std::string address_;
  std::shared_ptr<Log> log_;  // shared with the thread that reads stdout, which may outlive us
  bool reaped_ = false;
  int status_ = 0;
};

}  // namespace gradserve::testing

#endif  // GRADSERVE_TESTS_SERVER_PROCESS_H_
