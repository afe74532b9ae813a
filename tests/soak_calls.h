// What the soak test's clients share: a tally of calls by category and status, channels with a
// connection of their own, small random problems with their closed-form answers, and the big
// request that interrupted and dropped calls send.
//
//   Tally tally;
//   std::mt19937_64 rng(1);
//   const Problem p = RandomProblem(rng);
//   v1::BackwardRequest req;
//   SetLogits(p, req.mutable_logits());
//   SetClassIndices(p, req.mutable_targets());
//   ... call Backward ...
//   tally.Expect("good Backward", status, {grpc::StatusCode::OK});
//   const std::string failure = CheckClose("grad_logits", TensorValues(resp.grad_logits()), p.grad, p);
#ifndef GRADSERVE_TESTS_SOAK_CALLS_H_
#define GRADSERVE_TESTS_SOAK_CALLS_H_

#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "gradserve/v1/gradserve.grpc.pb.h"
#include "grpcpp/grpcpp.h"

namespace gradserve::soak {

// What every worker reports: counts per (category, status), and the failures of good calls.
class Tally {
 public:
  void Count(const std::string& category, grpc::StatusCode code);
  void Fail(const std::string& what);
  // A call whose status must be one of `allowed`.
  void Expect(const std::string& category, const grpc::Status& s,
              std::initializer_list<grpc::StatusCode> allowed);
  // One line per category and status, with its count.
  std::string Report();
  int64_t failure_count();
  std::vector<std::string> failures();  // the first 20
  int64_t good_calls();                 // calls counted under a category starting "good"

  static std::string CodeName(grpc::StatusCode c);

 private:
  std::mutex mu_;
  std::map<std::string, int64_t> counts_;
  std::vector<std::string> failures_;
  int64_t failure_count_ = 0;
};

// A plaintext channel with its own connection, so that dropping it drops a real connection.
std::shared_ptr<grpc::Channel> NewChannel(const std::string& address);

// A deadline `seconds` from now.
std::chrono::system_clock::time_point In(double seconds);

// A random small problem with class-index targets, and its closed-form loss and gradient
// (MEAN: loss = mean(logsumexp(z) - z_y), grad = (softmax(z) - onehot(y)) / batch).
struct Problem {
  int64_t n, c;
  std::vector<double> z;
  std::vector<int64_t> y;
  double loss;
  std::vector<double> grad;
  bool f32;  // sent as float32 raw (z holds the float32 values), else as float64 values
};

Problem RandomProblem(std::mt19937_64& rng);
void SetLogits(const Problem& p, v1::Tensor* t);
void SetClassIndices(const Problem& p, v1::Targets* targets);

// Empty when `got` matches the closed form within the contract's float32 bound (or 1e-12 in
// float64), else what differs, with the numbers.
std::string CheckClose(const char* what, const std::vector<double>& got,
                       const std::vector<double>& want, const Problem& p);

// [256, 3000] float32: 3 MB, under the soak server's 4 MiB limit; a few ms of transfer and compute.
v1::BackwardRequest BigRequest();

}  // namespace gradserve::soak

#endif  // GRADSERVE_TESTS_SOAK_CALLS_H_
