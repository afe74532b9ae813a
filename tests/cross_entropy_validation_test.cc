// Cross-entropy input validation: each invalid input is INVALID_ARGUMENT with the numbers in its
// message (split from cross_entropy_test.cc; runs once per row kernel like it).
#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "lib/cross_entropy.h"
#include "tests/cross_entropy_test_util.h"
#include "tests/test_util.h"

namespace gradserve {
namespace {

using ::gradserve::testing::Compute;
using ::gradserve::testing::RandomProblem;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Each validation error, with the numbers in its message.
struct BadCase {
  std::string name;
  std::function<void(RandomProblem&)> spoil;
  std::string message_part;
};

TEST(CrossEntropyValidationTest, EachErrorIsInvalidArgumentWithNumbers) {
  const std::vector<BadCase> cases = {
      {"nan_logit", [](RandomProblem& r) { r.z64(3, 4) = kNaN; }, "logits[3, 4] is nan"},
      {"inf_logit", [](RandomProblem& r) { r.z64(0, 1) = -INFINITY; }, "logits[0, 1] is -inf"},
      {"label_out_of_range", [](RandomProblem& r) { r.labels[2] = 5; },
       "targets.class_indices[2] is 5, outside [0, 5)"},
      {"negative_label", [](RandomProblem& r) { r.labels[0] = -1; }, "targets.class_indices[0] is -1"},
      {"label_count", [](RandomProblem& r) { r.labels.pop_back(); },
       "targets.class_indices has 5 values, expected one per row (batch 6)"},
      {"smoothing_high", [](RandomProblem& r) { r.options.label_smoothing = 1.5; },
       "options.label_smoothing is 1.5"},
      {"smoothing_nan", [](RandomProblem& r) { r.options.label_smoothing = kNaN; },
       "options.label_smoothing is nan"},
      {"weights_length", [](RandomProblem& r) { r.weights = {1, 2}; r.options.class_weights = r.weights; },
       "options.class_weights has 2 weights, expected one per class (5)"},
      {"weights_negative", [](RandomProblem& r) { r.weights = {1, 1, -2, 1, 1}; r.options.class_weights = r.weights; },
       "options.class_weights[2] is -2"},
  };
  for (const BadCase& c : cases) {
    RandomProblem rp({false, Reduction::kMean, false, 0, false}, 1);
    c.spoil(rp);
    const absl::Status s = Compute(rp.Get<double>(), Method::kFused).status;
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.name;
    EXPECT_NE(s.message().find(c.message_part), std::string::npos) << c.name << ": " << s;
    EXPECT_EQ(ValidateLossProblem(rp.Get<double>()).code(), absl::StatusCode::kInvalidArgument) << c.name;
  }
}

TEST(CrossEntropyValidationTest, ProbabilityTargetErrors) {
  const std::vector<BadCase> cases = {
      {"negative", [](RandomProblem& r) { r.t64(1, 2) = -0.1; }, "targets.probabilities[1, 2] is -0.1"},
      {"row_sum", [](RandomProblem& r) { r.t64(4, 0) += 0.01; }, "targets.probabilities row 4 sums to"},
      {"ignore_index", [](RandomProblem& r) { r.options.ignore_index = 0; },
       "options.ignore_index (0) applies only to class-index targets"},
  };
  for (const BadCase& c : cases) {
    RandomProblem rp({true, Reduction::kMean, false, 0, false}, 1);
    c.spoil(rp);
    const absl::Status s = Compute(rp.Get<double>(), Method::kFused).status;
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.name;
    EXPECT_NE(s.message().find(c.message_part), std::string::npos) << c.name << ": " << s;
  }
}

TEST(CrossEntropyValidationTest, RowSumToleranceDependsOnDtype) {
  RandomProblem rp({true, Reduction::kMean, false, 0, false}, 2);
  rp.t64.row(0) *= 1.0 + 5e-6;  // off by 5e-6: too much for float64, fine for float32
  rp.t32 = rp.t64.cast<float>();
  EXPECT_EQ(Compute(rp.Get<double>(), Method::kFused).status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_OK(Compute(rp.Get<float>(), Method::kFused).status);
  rp.t32.row(0) *= 1.001f;
  const absl::Status s = Compute(rp.Get<float>(), Method::kFused).status;
  EXPECT_NE(s.message().find("within 0.0001 (float32)"), std::string::npos) << s;
}

TEST(CrossEntropyValidationTest, GradLossMustMatchTheLossShape) {
  const RandomProblem rp({false, Reduction::kNone, false, 0, false}, 1);
  const absl::Status s = Compute(rp.Get<double>(), Method::kFused, {1.0, 2.0}).status;
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("grad_loss has 2 values but the loss has 6 (reduction NONE"),
            std::string::npos) << s;
}

}  // namespace
}  // namespace gradserve
