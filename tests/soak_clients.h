// The soak test's client workers, one kind of behaviour each, all against one server until
// Stop(): good calls checked against closed forms, bad and oversized inputs, calls cancelled or
// timed out mid-flight and streams abandoned, and connections dropped (soak_connections.h).
// Everything they see goes to tally().
//
//   Clients clients(address, port);
//   std::thread good([&] { clients.GoodWorker(1); });
//   ...
//   clients.Stop();
//   good.join();
//   EXPECT_EQ(clients.tally().failure_count(), 0);
#ifndef GRADSERVE_TESTS_SOAK_CLIENTS_H_
#define GRADSERVE_TESTS_SOAK_CLIENTS_H_

#include <atomic>
#include <cstdint>
#include <string>

#include "tests/soak_calls.h"

namespace gradserve::soak {

class Clients {
 public:
  Clients(std::string address, int port) : address_(std::move(address)), port_(port) {}

  // Good calls: Forward, Backward (both methods), VerifyGradient's motivating case, and a
  // BackwardStream of several requests; every answer checked.
  void GoodWorker(uint64_t seed);
  // Bad inputs (INVALID_ARGUMENT) and oversized messages (RESOURCE_EXHAUSTED).
  void BadWorker(uint64_t seed);
  // Big requests cancelled (TryCancel) or given a deadline at random moments mid-flight, and
  // streams abandoned half way.
  void InterruptWorker(uint64_t seed);
  // Connections dropped: channels released, client processes killed, TCP resets; `drops` and
  // `resets` choose which.
  void DropWorker(uint64_t seed, bool drops, bool resets);

  void Stop() { stop_.store(true); }
  Tally& tally() { return tally_; }

 private:
  void GoodVerify(v1::GradientService::Stub& stub, grpc::ClientContext& ctx);
  void GoodStream(v1::GradientService::Stub& stub, grpc::ClientContext& ctx, std::mt19937_64& rng);
  void Check(const std::string& failure) {
    if (!failure.empty()) tally_.Fail(failure);
  }

  const std::string address_;
  const int port_;
  std::atomic<bool> stop_{false};
  Tally tally_;
};

}  // namespace gradserve::soak

#endif  // GRADSERVE_TESTS_SOAK_CLIENTS_H_
