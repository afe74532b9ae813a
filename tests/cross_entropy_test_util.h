// Fixtures shared by the cross-entropy tests (cross_entropy_test.cc and
// cross_entropy_validation_test.cc): a runner that returns loss, gradient and status, every option
// combination, and a seeded random problem owned in float64 and float32.
#ifndef GRADSERVE_TESTS_CROSS_ENTROPY_TEST_UTIL_H_
#define GRADSERVE_TESTS_CROSS_ENTROPY_TEST_UTIL_H_

#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "lib/cross_entropy.h"
#include "tests/test_util.h"

namespace gradserve::testing {

// Runs CrossEntropy and returns loss values, gradient and denominator.
template <typename T>
struct Result {
  std::vector<T> loss;
  RowMatrix<T> grad;
  RowMatrix<T> grad_probs;
  double denominator = 0;
  absl::Status status;
};

template <typename T>
Result<T> Compute(const LossProblem<T>& p, Method method, std::vector<T> grad_loss = {}) {
  Result<T> r;
  const int64_t n = p.logits.rows(), c = p.logits.cols();
  r.loss.resize(p.options.reduction == Reduction::kNone ? n : 1);
  r.grad.resize(n, c);
  r.grad_probs.resize(n, c);
  LossOutputs<T> out{absl::MakeSpan(r.loss), View(r.grad),
                     method == Method::kChainRule ? View(r.grad_probs) : NoMatrix<T>()};
  auto s = CrossEntropy<T>(p, grad_loss, method, out, ExecContext{});
  r.status = s.status();
  if (s.ok()) r.denominator = s->reduction_denominator;
  return r;
}

// Every option combination, both targets kinds.
struct Combo {
  bool probabilities;
  Reduction reduction;
  bool weights;
  double smoothing;
  bool ignore;
  std::string Name() const {
    return absl::StrCat(probabilities ? "prob" : "index", "_",
                        reduction == Reduction::kMean ? "mean" : reduction == Reduction::kSum ? "sum" : "none",
                        weights ? "_weights" : "", smoothing ? "_smoothing" : "", ignore ? "_ignore" : "");
  }
};

inline std::vector<Combo> AllCombos() {
  std::vector<Combo> out;
  for (bool prob : {false, true})
    for (Reduction red : {Reduction::kMean, Reduction::kSum, Reduction::kNone})
      for (bool w : {false, true})
        for (double ls : {0.0, 0.2})
          for (bool ign : {false, true})
            if (!(prob && ign)) out.push_back({prob, red, w, ls, ign});
  return out;
}

// Owns the data of one random problem in float64 and float32.
struct RandomProblem {
  RandomProblem(const Combo& c, uint64_t seed, int64_t n = 6, int64_t k = 5, double scale = 5.0) {
    std::mt19937_64 rng(seed);
    z64 = RandomLogits<double>(rng, n, k, scale);
    z32 = z64.cast<float>();
    labels = RandomLabels(rng, n, k);
    t64 = RandomProbabilities<double>(rng, n, k);
    t32 = t64.cast<float>();
    if (c.weights) {
      std::uniform_real_distribution<double> u(0.1, 2.0);
      for (int64_t j = 0; j < k; ++j) weights.push_back(u(rng));
    }
    options = {c.reduction, c.smoothing, weights, std::nullopt};
    if (c.ignore) {
      options.ignore_index = 2;
      labels[1] = 2;  // at least one ignored row, and one kept
      labels[0] = 0;
    }
    probabilities = c.probabilities;
  }
  template <typename T>
  LossProblem<T> Get() const {
    if constexpr (std::is_same_v<T, double>) {
      return {ConstView(z64), probabilities ? Targets<double>::Probabilities(ConstView(t64))
                                            : Targets<double>::ClassIndices(labels), options};
    } else {
      return {ConstView(z32), probabilities ? Targets<float>::Probabilities(ConstView(t32))
                                            : Targets<float>::ClassIndices(labels), options};
    }
  }
  RowMatrix<double> z64, t64;
  RowMatrix<float> z32, t32;
  std::vector<int64_t> labels;
  std::vector<double> weights;
  LossOptions options;
  bool probabilities;
};

}  // namespace gradserve::testing

#endif  // GRADSERVE_TESTS_CROSS_ENTROPY_TEST_UTIL_H_
