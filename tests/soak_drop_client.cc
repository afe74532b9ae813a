// soak_drop_client ADDRESS: the client process that the soak test kills mid-call
// (KillClientInFlight in soak_connections.h). It starts three big Backward calls against
// ADDRESS, writes one byte to stdout to say they are under way, and waits to be killed; it exits
// 1 by itself after 60 s, which the soak test never waits for.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <thread>
#include <vector>

#include "gradserve/v1/gradserve.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "tests/soak_calls.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s ADDRESS\n", argv[0]);
    return 2;
  }
  using gradserve::v1::BackwardResponse;
  auto channel = gradserve::soak::NewChannel(argv[1]);
  auto stub = gradserve::v1::GradientService::NewStub(channel);
  const gradserve::v1::BackwardRequest big = gradserve::soak::BigRequest();
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  std::vector<std::unique_ptr<BackwardResponse>> responses;
  for (int m = 0; m < 3; ++m) {
    contexts.push_back(std::make_unique<grpc::ClientContext>());
    responses.push_back(std::make_unique<BackwardResponse>());
    stub->async()->Backward(contexts.back().get(), &big, responses.back().get(), [](grpc::Status) {});
  }
  const char started = 's';
  if (write(STDOUT_FILENO, &started, 1) != 1) _exit(1);
  std::this_thread::sleep_for(std::chrono::seconds(60));
  _exit(1);  // not killed: _exit, because the calls and channel are still live
}
