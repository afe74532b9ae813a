// Cross-entropy: fused equals chain rule equals complex step for every option combination, on every
// write path and row kernel (kernel_test_main.cc runs this once per kernel); edge cases.
#include "lib/cross_entropy.h"

#include <cmath>
#include <string>
#include <tuple>
#include <vector>

#include "gtest/gtest.h"
#include "lib/softmax.h"
#include "lib/verify.h"
#include "tests/cross_entropy_test_util.h"
#include "tests/test_util.h"

namespace gradserve {
namespace {

using ::gradserve::testing::AllCombos;
using ::gradserve::testing::Combo;
using ::gradserve::testing::Compute;
using ::gradserve::testing::Float32Bound;
using ::gradserve::testing::RandomLabels;
using ::gradserve::testing::RandomLogits;
using ::gradserve::testing::RandomProblem;
using ::gradserve::testing::Result;

TEST(CrossEntropyTest, MotivatingCaseFusedAndChainRuleGiveAMinusT) {
  RowMatrix<double> z(1, 2);
  z << 1.75, 1.75;
  const int64_t label[] = {1};
  for (Reduction red : {Reduction::kMean, Reduction::kSum, Reduction::kNone}) {
    LossProblem<double> p{ConstView(z), Targets<double>::ClassIndices(label), {red}};
    for (Method m : {Method::kFused, Method::kChainRule}) {
      const Result<double> r = Compute(p, m);
      ASSERT_OK(r.status);
      EXPECT_DOUBLE_EQ(r.grad(0, 0), 0.5);
      EXPECT_DOUBLE_EQ(r.grad(0, 1), -0.5);
      EXPECT_DOUBLE_EQ(r.loss[0], std::log(2.0));
      if (m == Method::kChainRule) {  // dL/dA = -t/a = (0, -2)
        EXPECT_EQ(r.grad_probs(0, 0), 0.0);
        EXPECT_DOUBLE_EQ(r.grad_probs(0, 1), -2.0);
      }
    }
  }
}


class CrossEntropyPropertyTest : public ::testing::TestWithParam<Combo> {};

TEST_P(CrossEntropyPropertyTest, FusedEqualsChainRuleEqualsComplexStep) {
  for (uint64_t seed = 1; seed <= 5; ++seed) {
    const RandomProblem rp(GetParam(), seed);
    const LossProblem<double> p = rp.Get<double>();
    const Result<double> fused = Compute(p, Method::kFused);
    const Result<double> chain = Compute(p, Method::kChainRule);
    ASSERT_OK(fused.status);
    ASSERT_OK(chain.status);
    RowMatrix<double> numeric(p.logits.rows(), p.logits.cols());
    ASSERT_OK(NumericGradient(p, NumericMethod::kComplexStep, 0, View(numeric), ExecContext{}));
    const double scale = std::max(1.0, fused.grad.cwiseAbs().maxCoeff());
    EXPECT_LT((fused.grad - chain.grad).cwiseAbs().maxCoeff(), 1e-14 * scale) << "seed " << seed;
    EXPECT_LT((fused.grad - numeric).cwiseAbs().maxCoeff(), 1e-13 * scale) << "seed " << seed;
    for (size_t k = 0; k < fused.loss.size(); ++k) EXPECT_DOUBLE_EQ(fused.loss[k], chain.loss[k]);
    EXPECT_EQ(fused.denominator, chain.denominator);
  }
}

TEST_P(CrossEntropyPropertyTest, CentralDifferencesAgreeToTheirAccuracy) {
  const RandomProblem rp(GetParam(), 3);
  const LossProblem<double> p = rp.Get<double>();
  const Result<double> fused = Compute(p, Method::kFused);
  RowMatrix<double> numeric(p.logits.rows(), p.logits.cols());
  auto step = NumericGradient(p, NumericMethod::kCentralDifference, 0, View(numeric), ExecContext{});
  ASSERT_OK(step);
  EXPECT_GT(*step, 0.0);
  EXPECT_LT((fused.grad - numeric).cwiseAbs().maxCoeff(), 1e-8);
}

TEST_P(CrossEntropyPropertyTest, Float32WithinApiBoundOfFloat64) {
  for (uint64_t seed = 1; seed <= 5; ++seed) {
    const RandomProblem rp(GetParam(), seed, 6, 5, 30.0);
    for (Method m : {Method::kFused, Method::kChainRule}) {
      const Result<double> ref = Compute(rp.Get<double>(), m);
      const Result<float> got = Compute(rp.Get<float>(), m);
      ASSERT_OK(got.status);
      const double gref = ref.grad.cwiseAbs().maxCoeff();
      EXPECT_LE((got.grad.cast<double>() - ref.grad).cwiseAbs().maxCoeff(), Float32Bound(5, gref));
      for (size_t k = 0; k < ref.loss.size(); ++k) {
        EXPECT_LE(std::abs(got.loss[k] - ref.loss[k]), Float32Bound(5, std::abs(ref.loss[k])));
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllOptions, CrossEntropyPropertyTest, ::testing::ValuesIn(AllCombos()),
                         [](const auto& info) { return info.param.Name(); });

TEST(CrossEntropyTest, ReductionsRelateAsTorchDoes) {
  const RandomProblem rp({false, Reduction::kNone, true, 0.1, true}, 9);
  LossProblem<double> p = rp.Get<double>();
  const Result<double> none = Compute(p, Method::kFused);
  p.options.reduction = Reduction::kSum;
  const Result<double> sum = Compute(p, Method::kFused);
  p.options.reduction = Reduction::kMean;
  const Result<double> mean = Compute(p, Method::kFused);
  double total = 0, d = 0;
  for (double l : none.loss) total += l;
  for (int64_t i = 0; i < 6; ++i) {
    if (rp.labels[i] != 2) d += rp.weights[rp.labels[i]];
  }
  EXPECT_NEAR(sum.loss[0], total, 1e-12);
  EXPECT_NEAR(mean.denominator, d, 1e-12);
  EXPECT_NEAR(mean.loss[0], total / d, 1e-12);
  EXPECT_EQ(sum.denominator, 0.0);
  EXPECT_EQ(none.denominator, 0.0);
  EXPECT_LT((mean.grad * d - sum.grad).cwiseAbs().maxCoeff(), 1e-12);
  EXPECT_EQ(none.loss[1], 0.0);  // the ignored row
  EXPECT_TRUE(sum.grad.row(1).isZero(0));
}

TEST(CrossEntropyTest, GradLossScalesTheGradient) {
  const RandomProblem rp({false, Reduction::kNone, false, 0, false}, 4);
  const LossProblem<double> p = rp.Get<double>();
  const Result<double> base = Compute(p, Method::kFused);
  const std::vector<double> g = {1, -2, 0.5, 0, 3, 1};
  for (Method m : {Method::kFused, Method::kChainRule}) {
    const Result<double> scaled = Compute(p, m, g);
    ASSERT_OK(scaled.status);
    for (int64_t i = 0; i < 6; ++i) {
      EXPECT_LT((scaled.grad.row(i) - g[i] * base.grad.row(i)).cwiseAbs().maxCoeff(), 1e-14);
    }
  }
  LossProblem<double> mean = p;
  mean.options.reduction = Reduction::kMean;
  const Result<double> m1 = Compute(mean, Method::kFused);
  const Result<double> m3 = Compute(mean, Method::kFused, {-3.0});
  EXPECT_LT((m3.grad + 3 * m1.grad).cwiseAbs().maxCoeff(), 1e-14);
  EXPECT_EQ(m3.loss[0], m1.loss[0]);  // grad_loss changes gradients, not the loss
}

TEST(CrossEntropyTest, ChainRuleStaysFiniteWhenTargetProbabilityUnderflows) {
  RowMatrix<float> z(1, 2);
  z << 0.0f, 120.0f;
  const int64_t label[] = {0};
  const LossProblem<float> p{ConstView(z), Targets<float>::ClassIndices(label), {}};
  const Result<float> fused = Compute(p, Method::kFused);
  const Result<float> chain = Compute(p, Method::kChainRule);
  ASSERT_OK(chain.status);
  EXPECT_TRUE(chain.grad.allFinite());
  EXPECT_FLOAT_EQ(chain.grad(0, 0), -1.0f);
  EXPECT_FLOAT_EQ(chain.grad(0, 1), 1.0f);
  EXPECT_EQ(chain.grad, fused.grad);
  EXPECT_TRUE(std::isinf(chain.grad_probs(0, 0)));  // only dL/dA holds the infinity
  EXPECT_FLOAT_EQ(fused.loss[0], 120.0f);
}

// The row pipeline has three ways to write a gradient: through an L1 scratch row (rows up to
// 16 KiB), that with non-temporal stores (outputs of 4 MiB or more, at any alignment), and in
// place (longer rows). FUSED must equal CHAIN_RULE, a separate row-at-a-time path, in each.
template <typename T>
void ExpectFusedMatchesChainRule(int64_t rows, int64_t classes, int64_t misalign) {
  SCOPED_TRACE(absl::StrCat(rows, "x", classes, " float", 8 * sizeof(T), " misaligned by ",
                            misalign));
  std::mt19937_64 rng(rows * 7919 + classes);
  const RowMatrix<T> z = RandomLogits<T>(rng, rows, classes, 20.0);
  std::vector<int64_t> labels = RandomLabels(rng, rows, classes);
  for (int64_t i = 0; i < rows; i += 97) labels[i] = -100;  // ignore_index rows get zeros
  std::vector<double> weights(classes);
  for (int64_t k = 0; k < classes; ++k) weights[k] = 0.5 + (k % 7) * 0.25;
  LossOptions options;
  options.class_weights = weights;
  options.ignore_index = -100;
  const LossProblem<T> p{ConstView(z), Targets<T>::ClassIndices(labels), options};
  const Result<T> chain = Compute(p, Method::kChainRule);
  ASSERT_OK(chain.status);
  // The fused gradient goes to a buffer `misalign` elements past an aligned address.
  std::vector<T> buffer(rows * classes + 64);
  T* start = buffer.data() + (64 - reinterpret_cast<uintptr_t>(buffer.data()) % 64) / sizeof(T) + misalign;
  T loss = 0;
  const LossOutputs<T> out{absl::MakeSpan(&loss, 1), MatrixMap<T>(start, rows, classes)};
  ASSERT_OK(CrossEntropy<T>(p, {}, Method::kFused, out, ExecContext{}));
  EXPECT_NEAR(loss, chain.loss[0], 1e-5 * std::abs(chain.loss[0]));
  const MatrixMap<T> fused(start, rows, classes);
  // A misplaced, unscaled or unadjusted element would be off by about the largest one.
  const double tol = (sizeof(T) == 4 ? 1e-5 : 1e-12) * chain.grad.cwiseAbs().maxCoeff();
  EXPECT_LE((fused - chain.grad).cwiseAbs().maxCoeff(), tol);
  EXPECT_TRUE(fused.row(0).isZero()) << "an ignored row";
}

TEST(CrossEntropyTest, FusedEqualsChainRuleOnEveryWritePath) {
  ExpectFusedMatchesChainRule<float>(64, 1000, 0);    // scratch row, ordinary stores
  ExpectFusedMatchesChainRule<float>(1100, 1000, 0);  // 4.4 MB: non-temporal stores
  ExpectFusedMatchesChainRule<float>(1100, 1000, 3);  // ... from an unaligned address
  ExpectFusedMatchesChainRule<float>(1100, 1001, 5);  // ... rows not a multiple of 16
  ExpectFusedMatchesChainRule<float>(40, 5000, 1);    // 20 KB rows: in place
  ExpectFusedMatchesChainRule<double>(700, 1000, 1);  // 5.6 MB float64, streamed
  ExpectFusedMatchesChainRule<double>(40, 3000, 0);   // 24 KB rows: in place
}

// Float32 losses must not drift below 0: every row's exponential at its maximum is exactly 1, as
// in PyTorch, so a SUM over many confident rows stays within the contract's bound of float64 (a bias
// of -1 ulp per row once summed 4000 rows to -4.4e-4).
TEST(CrossEntropyTest, Float32ConfidentRowsSumToNearZeroNotBelow) {
  for (const auto& [rows, first, classes] :
       {std::tuple<int64_t, float, int64_t>{4000, 30.0f, 2}, {1000, 100.0f, 2}, {1000, 50.0f, 10},
        {200, 226.75f, 1}}) {
    SCOPED_TRACE(::testing::Message() << rows << " rows (" << first << ", 0...) of " << classes);
    RowMatrix<float> z = RowMatrix<float>::Zero(rows, classes);
    z.col(0).setConstant(first);
    const std::vector<int64_t> labels(rows, 0);
    for (Reduction red : {Reduction::kSum, Reduction::kNone}) {
      const LossProblem<float> p{ConstView(z), Targets<float>::ClassIndices(labels), {red}};
      const Result<float> r = Compute(p, Method::kFused);
      ASSERT_OK(r.status);
      const double row_loss = classes == 1 ? 0.0 : std::log1p((classes - 1) * std::exp(-first));
      if (red == Reduction::kSum) {
        EXPECT_LE(std::abs(r.loss[0] - rows * row_loss), 1e-5);
      } else {
        for (float l : r.loss) ASSERT_GE(l, 0.0f);
      }
    }
    RowMatrix<float> probs(rows, classes), log_probs(rows, classes);
    ASSERT_OK(Softmax<float>(ConstView(z), View(probs), View(log_probs), ExecContext{}));
    EXPECT_LE(log_probs.maxCoeff(), 0.0f);
    EXPECT_LE(probs.maxCoeff(), 1.0f);
  }
}

TEST(CrossEntropyTest, ExtremeLogitsGiveFiniteExactLoss) {
  RowMatrix<double> z(3, 3);
  z << 1e4, -1e4, 0, 5, 5, 5, -1e3, 0, 1e3;
  const int64_t labels[] = {1, 2, 0};
  const LossProblem<double> p{ConstView(z), Targets<double>::ClassIndices(labels), {Reduction::kNone}};
  const Result<double> r = Compute(p, Method::kFused);
  ASSERT_OK(r.status);
  EXPECT_DOUBLE_EQ(r.loss[0], 2e4);
  EXPECT_DOUBLE_EQ(r.loss[1], std::log(3.0));
  EXPECT_DOUBLE_EQ(r.loss[2], 2e3);
  EXPECT_TRUE(r.grad.allFinite());
  EXPECT_DOUBLE_EQ(r.grad(0, 0), 1.0);
  EXPECT_DOUBLE_EQ(r.grad(0, 1), -1.0);
}

TEST(CrossEntropyTest, EmptyBatchFollowsTorch) {
  RowMatrix<double> z(0, 4);
  const LossProblem<double> mean{ConstView(z), Targets<double>::ClassIndices({}), {Reduction::kMean}};
  const Result<double> m = Compute(mean, Method::kFused);
  ASSERT_OK(m.status);
  EXPECT_TRUE(std::isnan(m.loss[0]));
  LossProblem<double> sum = mean;
  sum.options.reduction = Reduction::kSum;
  EXPECT_EQ(Compute(sum, Method::kChainRule).loss[0], 0.0);
}

TEST(CrossEntropyTest, MeanWithEveryRowIgnoredIsNanLossZeroGradient) {
  RowMatrix<double> z(2, 3);
  z << 1, 2, 3, 4, 5, 6;
  const int64_t labels[] = {-100, -100};
  const LossProblem<double> p{ConstView(z), Targets<double>::ClassIndices(labels),
                              {Reduction::kMean, 0.1, {}, -100}};
  for (Method m : {Method::kFused, Method::kChainRule}) {
    const Result<double> r = Compute(p, m);
    ASSERT_OK(r.status);
    EXPECT_TRUE(std::isnan(r.loss[0]));
    EXPECT_TRUE(r.grad.isZero(0));
    EXPECT_EQ(r.denominator, 0.0);
  }
}

TEST(CrossEntropyTest, MeanWithZeroWeightSumIsNanButIgnoredRowsStayZero) {
  RowMatrix<double> z(3, 3);
  z << 1, 2, 3, 4, 5, 6, 7, 8, 9;
  const int64_t labels[] = {0, 1, 0};
  const double weights[] = {0, 1, 1};
  const LossProblem<double> p{ConstView(z), Targets<double>::ClassIndices(labels),
                              {Reduction::kMean, 0.0, weights, 1}};
  const Result<double> r = Compute(p, Method::kFused);
  ASSERT_OK(r.status);
  EXPECT_TRUE(std::isnan(r.loss[0]));
  EXPECT_TRUE(r.grad.row(0).array().isNaN().all());
  EXPECT_TRUE(r.grad.row(1).isZero(0));
  EXPECT_TRUE(r.grad.row(2).array().isNaN().all());
}


}  // namespace
}  // namespace gradserve
