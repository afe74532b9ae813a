// The mistake search over many blocks of rows: every known mistake is named on a batch that
// spans several blocks, a candidate that strays in the last block is not explained by a mistake
// it matches elsewhere, and cancellation is polled between blocks.
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "lib/softmax.h"
#include "lib/verify.h"
#include "tests/test_util.h"

namespace gradserve {
namespace {

using ::gradserve::testing::RandomLabels;
using ::gradserve::testing::RandomLogits;
using ::gradserve::testing::RandomProbabilities;

std::vector<FindingCode> Codes(const std::vector<Finding>& findings) {
  std::vector<FindingCode> out;
  for (const Finding& f : findings) out.push_back(f.code);
  return out;
}

// 3000 x 20: several blocks of rows (a block holds about 16 K values), with weights, smoothing
// and ignored rows, or with probability targets.
struct Batch {
  explicit Batch(bool probabilities) : probabilities(probabilities) {
    std::mt19937_64 rng(21);
    z = RandomLogits<double>(rng, kRows, kClasses, 4.0);
    labels = RandomLabels(rng, kRows, kClasses);
    for (int64_t i = 0; i < kRows; i += 7) labels[i] = 3;  // ignored
    probs = RandomProbabilities<double>(rng, kRows, kClasses);
    for (int64_t j = 0; j < kClasses; ++j) weights.push_back(0.5 + 0.1 * j);
  }
  LossProblem<double> Problem(Reduction r) const {
    if (probabilities) {
      return {ConstView(z), Targets<double>::Probabilities(ConstView(probs)), {r, 0.0, weights}};
    }
    return {ConstView(z), Targets<double>::ClassIndices(labels), {r, 0.2, weights, 3}};
  }
  RowMatrix<double> Softmaxed() const {
    RowMatrix<double> a(kRows, kClasses);
    EXPECT_OK((Softmax<double>(ConstView(z), View(a), NoMatrix<double>(), ExecContext{})));
    return a;
  }

  static constexpr int64_t kRows = 3000, kClasses = 20;
  bool probabilities;
  RowMatrix<double> z, probs;
  std::vector<int64_t> labels;
  std::vector<double> weights;
};

// The mistakes, built here with whole matrices, the way the search must not.
std::vector<std::pair<FindingCode, RowMatrix<double>>> Planted(const LossProblem<double>& p,
                                                               const RowMatrix<double>& a,
                                                               const RowMatrix<double>& truth) {
  RowMatrix<double> q(a.rows(), a.cols());
  TargetDistribution<double>(p, View(q));
  const double r = p.options.reduction == Reduction::kMean ? 1.0 / MeanDenominator(p) : 1.0;
  const RowMatrix<double> grad_a = (-r * q.array() / a.array()).matrix();
  RowMatrix<double> at_z(a.rows(), a.cols()), diagonal(a.rows(), a.cols());
  const RowMatrix<double>& z = p.logits;
  for (int64_t i = 0; i < a.rows(); ++i) {
    at_z.row(i) = (z.row(i).array() * grad_a.row(i).array() - z.row(i).array() * z.row(i).dot(grad_a.row(i))).matrix();
    diagonal.row(i) = ((a.row(i).array() - a.row(i).array().square()) * grad_a.row(i).array()).matrix();
  }
  return {{FindingCode::kJacobianAtLogits, at_z},
          {FindingCode::kDiagonalOnlyJacobian, diagonal},
          {FindingCode::kGradientWrtProbabilities, grad_a},
          {FindingCode::kSignFlipped, -truth}};
}

TEST(VerifyMistakesTest, EachMistakeIsNamedAcrossManyBlocks) {
  for (bool probabilities : {false, true}) {
    const Batch b(probabilities);
    for (Reduction red : {Reduction::kMean, Reduction::kSum}) {
      const LossProblem<double> p = b.Problem(red);
      const auto truth = VerifyGradient({p}, ExecContext{});
      ASSERT_OK(truth);
      ASSERT_TRUE(truth->ok) << truth->summary;
      for (const auto& [code, candidate] : Planted(p, b.Softmaxed(), truth->analytic_grad)) {
        const auto r = VerifyGradient({p, candidate.data()}, ExecContext{});
        ASSERT_OK(r);
        ASSERT_EQ(Codes(r->findings), std::vector<FindingCode>{code})
            << FindingCodeName(code) << " probabilities " << probabilities << "\n" << r->summary.substr(0, 3000);
        EXPECT_LT(r->findings[0].residual, 1e-12 * (1 + candidate.cwiseAbs().maxCoeff()));
        ASSERT_EQ(r->findings[0].mistaken.size(), static_cast<size_t>(candidate.size()));
        EXPECT_LT((ConstMatrixMap<double>(r->findings[0].mistaken.data(), b.kRows, b.kClasses) - candidate)
                      .cwiseAbs().maxCoeff(),
                  1e-12 * (1 + candidate.cwiseAbs().maxCoeff()));
      }
    }
  }
}

TEST(VerifyMistakesTest, ACandidateThatStraysInTheLastBlockIsUnexplained) {
  const Batch b(false);
  const LossProblem<double> p = b.Problem(Reduction::kMean);
  const auto truth = VerifyGradient({p}, ExecContext{});
  ASSERT_OK(truth);
  RowMatrix<double> almost = -truth->analytic_grad;  // SIGN_FLIPPED everywhere ...
  almost(b.kRows - 1, 5) += 0.5;                      // ... but in the very last row
  const auto r = VerifyGradient({p, almost.data()}, ExecContext{});
  ASSERT_OK(r);
  EXPECT_EQ(Codes(r->findings), std::vector<FindingCode>{FindingCode::kUnexplained}) << r->summary.substr(0, 2000);
  EXPECT_EQ(r->worst_row, b.kRows - 1);
}

TEST(VerifyMistakesTest, TheSearchPollsCancellationBetweenBlocks) {
  const Batch b(false);
  const LossProblem<double> p = b.Problem(Reduction::kSum);
  const auto truth = VerifyGradient({p}, ExecContext{});
  ASSERT_OK(truth);
  const RowMatrix<double> a = b.Softmaxed();
  const RowMatrix<double> at_z = Planted(p, a, truth->analytic_grad)[0].second;
  int polls = 0;
  const ExecContext counting{.is_cancelled = [&] { return ++polls < 0; }};
  ASSERT_EQ(Codes(ExplainGradient(p, VerifyOptions{}, a, truth->analytic_grad, at_z.data(), counting)),
            std::vector<FindingCode>{FindingCode::kJacobianAtLogits});
  // The matching mistake is walked through every block, and formed whole once more.
  const int blocks = static_cast<int>((b.kRows * b.kClasses + (1 << 14) - 1) / (1 << 14));
  EXPECT_GE(polls, 2 * blocks);
  for (int stop = 1; stop <= polls; ++stop) {
    int seen = 0;
    const ExecContext cancelled{.is_cancelled = [&] { return ++seen >= stop; }};
    EXPECT_TRUE(ExplainGradient(p, VerifyOptions{}, a, truth->analytic_grad, at_z.data(), cancelled).empty())
        << "cancelled at poll " << stop << " of " << polls;
  }
}

}  // namespace
}  // namespace gradserve
