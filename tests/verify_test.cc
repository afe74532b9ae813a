#include "lib/verify.h"

#include <cmath>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "lib/softmax.h"
#include "tests/test_util.h"

namespace gradserve {
namespace {

using ::gradserve::testing::RandomLabels;
using ::gradserve::testing::RandomLogits;

bool Contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

std::vector<FindingCode> Codes(const VerifyResult& r) {
  std::vector<FindingCode> out;
  for (const Finding& f : r.findings) out.push_back(f.code);
  return out;
}

// The motivating problem: z = (1.75, 1.75), target class 1.
struct Motivating {
  RowMatrix<double> z{{1.75, 1.75}};
  int64_t label[1] = {1};
  LossProblem<double> Problem(Reduction r) const {
    return {ConstView(z), Targets<double>::ClassIndices(label), {r}};
  }
};

TEST(VerifyGradientTest, MotivatingCaseIsJacobianAtLogits) {
  const Motivating m;
  for (Reduction red : {Reduction::kSum, Reduction::kMean}) {
    const double candidate[] = {6.125, 2.625};
    const auto r = VerifyGradient({m.Problem(red), candidate}, ExecContext{});
    ASSERT_OK(r);
    EXPECT_FALSE(r->ok);
    EXPECT_FALSE(r->candidate_ok);
    EXPECT_DOUBLE_EQ(r->analytic_grad(0, 0), 0.5);
    EXPECT_DOUBLE_EQ(r->analytic_grad(0, 1), -0.5);
    EXPECT_EQ(r->max_abs_error, 0.0);  // the complex step is exact here
    ASSERT_EQ(Codes(*r), std::vector<FindingCode>{FindingCode::kJacobianAtLogits});
    const Finding& f = r->findings[0];
    EXPECT_EQ(f.mistaken, (std::vector<double>{6.125, 2.625}));
    EXPECT_EQ(f.residual, 0.0);
    EXPECT_TRUE(Contains(f.message, "J(a) with a = (0.5, 0.5) gives (0.5, -0.5) = a - t")) << f.message;
    EXPECT_TRUE(Contains(r->summary, "JACOBIAN_AT_LOGITS")) << r->summary;
    EXPECT_TRUE(Contains(r->summary, "candidate 6.125, expected 0.5")) << r->summary;
    EXPECT_EQ(r->worst_row, 0);
    EXPECT_EQ(r->worst_class, 0);
    EXPECT_DOUBLE_EQ(r->candidate_max_abs_error, 5.625);
  }
}

TEST(VerifyGradientTest, CorrectCandidateHasNoFinding) {
  const Motivating m;
  const double candidate[] = {0.5, -0.5};
  const auto r = VerifyGradient({m.Problem(Reduction::kSum), candidate}, ExecContext{});
  ASSERT_OK(r);
  EXPECT_TRUE(r->ok);
  EXPECT_TRUE(r->candidate_ok);
  EXPECT_TRUE(r->findings.empty());
  EXPECT_TRUE(Contains(r->summary, "Gradient verified"));
}

TEST(VerifyGradientTest, NoCandidateMeansCandidateNotOk) {
  const Motivating m;
  const auto r = VerifyGradient({m.Problem(Reduction::kMean)}, ExecContext{});
  ASSERT_OK(r);
  EXPECT_TRUE(r->ok);
  EXPECT_FALSE(r->candidate_ok);
  EXPECT_DOUBLE_EQ(r->epsilon_used, 1e-20);
}

// A batch with weights, smoothing and an ignored row, so that every mistake is distinguishable.
struct Rich {
  Rich() {
    std::mt19937_64 rng(5);
    z = RandomLogits<double>(rng, 4, 5, 2.0);
    labels = RandomLabels(rng, 4, 5);
    labels[2] = 4;  // ignored
    labels[0] = 1;
  }
  LossProblem<double> Problem() const {
    return {ConstView(z), Targets<double>::ClassIndices(labels),
            {Reduction::kMean, 0.1, weights, 4}};
  }
  RowMatrix<double> z;
  std::vector<int64_t> labels;
  std::vector<double> weights = {0.5, 1.0, 2.0, 1.5, 0.7};
};

// Builds each mistake by hand and checks that it is named.
TEST(VerifyGradientTest, EachMistakeIsNamed) {
  const Rich rich;
  const LossProblem<double> p = rich.Problem();
  const auto truth = VerifyGradient({p}, ExecContext{});
  ASSERT_OK(truth);
  const RowMatrix<double>& g = truth->analytic_grad;
  RowMatrix<double> a(4, 5);
  ASSERT_OK((Softmax<double>(p.logits, View(a), NoMatrix<double>(), ExecContext{})));
  RowMatrix<double> q(4, 5);
  TargetDistribution<double>(p, View(q));
  const double d = MeanDenominator(p);
  const RowMatrix<double> grad_a = (-q.array() / a.array() / d).matrix();
  const RowMatrix<double>& z = rich.z;

  std::vector<std::pair<FindingCode, RowMatrix<double>>> mistakes;
  RowMatrix<double> at_z(4, 5), diag(4, 5), no_softmax(4, 5);
  for (int i = 0; i < 4; ++i) {
    at_z.row(i) = (z.row(i).array() * grad_a.row(i).array() - z.row(i).array() * z.row(i).dot(grad_a.row(i))).matrix();
    diag.row(i) = ((a.row(i).array() - a.row(i).array().square()) * grad_a.row(i).array()).matrix();
    no_softmax.row(i) = (q.row(i).sum() * z.row(i) - q.row(i)) / d;
  }
  no_softmax.row(2).setZero();
  mistakes.push_back({FindingCode::kJacobianAtLogits, at_z});
  mistakes.push_back({FindingCode::kDiagonalOnlyJacobian, diag});
  mistakes.push_back({FindingCode::kGradientWrtProbabilities, grad_a});
  mistakes.push_back({FindingCode::kSignFlipped, -g});
  mistakes.push_back({FindingCode::kMeanScale, g * d});
  mistakes.push_back({FindingCode::kSoftmaxNotApplied, no_softmax});
  LossProblem<double> unweighted = p;
  unweighted.options.class_weights = {};
  mistakes.push_back({FindingCode::kOptionIgnored, VerifyGradient({unweighted}, ExecContext{})->analytic_grad});
  LossProblem<double> unsmoothed = p;
  unsmoothed.options.label_smoothing = 0;
  mistakes.push_back({FindingCode::kOptionIgnored, VerifyGradient({unsmoothed}, ExecContext{})->analytic_grad});

  for (const auto& [code, candidate] : mistakes) {
    const auto r = VerifyGradient({p, candidate.data()}, ExecContext{});
    ASSERT_OK(r);
    EXPECT_FALSE(r->candidate_ok);
    ASSERT_EQ(Codes(*r), std::vector<FindingCode>{code}) << FindingCodeName(code) << "\n" << r->summary;
    EXPECT_LT(r->findings[0].residual, 1e-12) << FindingCodeName(code);
    ASSERT_EQ(r->findings[0].mistaken.size(), 20u);
    EXPECT_LT((ConstMatrixMap<double>(r->findings[0].mistaken.data(), 4, 5) - candidate).cwiseAbs().maxCoeff(), 1e-12);
    EXPECT_FALSE(r->findings[0].message.empty());
  }
}

TEST(VerifyGradientTest, TwoMistakesTogetherAreBothNamed) {
  RowMatrix<double> z(2, 3);
  z << 0.5, -1, 2, 1, 0, 0.25;
  const int64_t labels[] = {2, 0};
  const LossProblem<double> p{ConstView(z), Targets<double>::ClassIndices(labels), {Reduction::kMean}};
  // z - t without the mean's 1/2: logits used as probabilities, and the scale forgotten.
  RowMatrix<double> raw_z = z;
  raw_z(0, 2) -= 1;
  raw_z(1, 0) -= 1;
  const auto r = VerifyGradient({p, raw_z.data()}, ExecContext{});
  ASSERT_OK(r);
  EXPECT_EQ(Codes(*r), (std::vector<FindingCode>{FindingCode::kMeanScale, FindingCode::kSoftmaxNotApplied}))
      << r->summary;
  for (const Finding& f : r->findings) {
    EXPECT_EQ(f.residual, 0.0);
    EXPECT_TRUE(Contains(f.message, "together with")) << f.message;
  }
  // Flipped and unscaled: t - a.
  const RowMatrix<double> flipped = -2.0 * VerifyGradient({p}, ExecContext{})->analytic_grad;
  const auto f = VerifyGradient({p, flipped.data()}, ExecContext{});
  EXPECT_EQ(Codes(*f), (std::vector<FindingCode>{FindingCode::kSignFlipped, FindingCode::kMeanScale}))
      << f->summary;
}

TEST(VerifyGradientTest, OptionIgnoredNamesTheOption) {
  const Rich rich;
  LossProblem<double> p = rich.Problem();
  LossProblem<double> unsmoothed = p;
  unsmoothed.options.label_smoothing = 0;
  const RowMatrix<double> wrong = VerifyGradient({unsmoothed}, ExecContext{})->analytic_grad;
  const auto r = VerifyGradient({p, wrong.data()}, ExecContext{});
  ASSERT_OK(r);
  ASSERT_EQ(r->findings.size(), 1u);
  EXPECT_TRUE(Contains(r->findings[0].message, "without label_smoothing=0.1")) << r->findings[0].message;
}

TEST(VerifyGradientTest, RandomNoiseIsUnexplainedOnly) {
  const Rich rich;
  const LossProblem<double> p = rich.Problem();
  std::mt19937_64 rng(99);
  const RowMatrix<double> noise = RandomLogits<double>(rng, 4, 5, 1.0);
  const auto r = VerifyGradient({p, noise.data()}, ExecContext{});
  ASSERT_OK(r);
  ASSERT_EQ(Codes(*r), std::vector<FindingCode>{FindingCode::kUnexplained});
  EXPECT_TRUE(r->findings[0].mistaken.empty());
  EXPECT_DOUBLE_EQ(r->findings[0].residual, r->candidate_max_abs_error);
}

TEST(VerifyGradientTest, SmallErrorFailsAndTolerancesApply) {
  const Rich rich;
  const LossProblem<double> p = rich.Problem();
  RowMatrix<double> almost = VerifyGradient({p}, ExecContext{})->analytic_grad;
  almost(3, 2) += 1e-3;
  const auto strict = VerifyGradient({p, almost.data()}, ExecContext{});
  ASSERT_OK(strict);
  EXPECT_FALSE(strict->candidate_ok);
  EXPECT_EQ(strict->worst_row, 3);
  EXPECT_EQ(strict->worst_class, 2);
  EXPECT_NEAR(strict->candidate_max_abs_error, 1e-3, 1e-12);
  VerifyRequest loose{p, almost.data()};
  loose.options.atol = 2e-3;
  const auto r = VerifyGradient(loose, ExecContext{});
  ASSERT_OK(r);
  EXPECT_TRUE(r->candidate_ok);
  EXPECT_TRUE(r->ok);
}

TEST(VerifyGradientTest, JacobianCandidates) {
  const Motivating m;
  const LossProblem<double> p = m.Problem(Reduction::kSum);
  const double right[] = {0.25, -0.25, -0.25, 0.25};
  const double at_logits[] = {1.75 - 1.75 * 1.75, -1.75 * 1.75, -1.75 * 1.75, 1.75 - 1.75 * 1.75};
  const double diagonal[] = {0.25, 0, 0, 0.25};
  const double flipped[] = {-0.25, 0.25, 0.25, -0.25};
  const double noise[] = {0.1, 0.2, 0.3, 0.4};
  VerifyRequest req{p};
  req.candidate_jacobian = right;
  auto r = VerifyGradient(req, ExecContext{});
  ASSERT_OK(r);
  EXPECT_TRUE(r->candidate_jacobian_ok);
  EXPECT_TRUE(r->ok);
  EXPECT_FALSE(r->candidate_ok);  // covers candidate_grad only
  const std::pair<const double*, FindingCode> wrong[] = {
      {at_logits, FindingCode::kJacobianAtLogits},
      {diagonal, FindingCode::kDiagonalOnlyJacobian},
      {flipped, FindingCode::kSignFlipped},
      {noise, FindingCode::kUnexplained}};
  for (const auto& [candidate, code] : wrong) {
    req.candidate_jacobian = candidate;
    r = VerifyGradient(req, ExecContext{});
    ASSERT_OK(r);
    EXPECT_FALSE(r->candidate_jacobian_ok);
    EXPECT_FALSE(r->ok);
    ASSERT_EQ(Codes(*r), std::vector<FindingCode>{code}) << FindingCodeName(code);
    EXPECT_TRUE(r->findings[0].is_jacobian);
    EXPECT_EQ(r->findings[0].mistaken.size(), code == FindingCode::kUnexplained ? 0u : 4u);
  }
}

// The search for known mistakes is the longest single-threaded part of a big verification: it
// must stop when the call is cancelled, and VerifyGradient then reports CANCELLED.
TEST(VerifyGradientTest, CancellationStopsTheMistakeSearch) {
  const Motivating m;
  const LossProblem<double> p = m.Problem(Reduction::kSum);
  const RowMatrix<double> a{{0.5, 0.5}};
  const RowMatrix<double> truth{{0.5, -0.5}};
  const double at_logits[] = {6.125, 2.625};
  int polls = 0;
  const ExecContext cancelled{.is_cancelled = [&] { return ++polls > 0; }};
  EXPECT_EQ(ExplainGradient(p, VerifyOptions{}, a, truth, at_logits).size(), 1u);
  EXPECT_TRUE(ExplainGradient(p, VerifyOptions{}, a, truth, at_logits, cancelled).empty());
  EXPECT_GE(polls, 1);
  const std::vector<double> jacobian = {0.25, -0.25, -0.25, 0.25};
  const double diagonal[] = {0.25, 0, 0, 0.25};
  EXPECT_EQ(ExplainJacobian(p, VerifyOptions{}, a, jacobian, diagonal).size(), 1u);
  EXPECT_TRUE(ExplainJacobian(p, VerifyOptions{}, a, jacobian, diagonal, cancelled).empty());

  // Cancelled at the last poll of a whole verification, i.e. after the mistake search.
  VerifyRequest req{p};
  req.candidate_grad = at_logits;
  int count = 0;
  ASSERT_OK(VerifyGradient(req, ExecContext{.is_cancelled = [&] { return ++count < 0; }}));
  int seen = 0;
  const auto r = VerifyGradient(req, ExecContext{.is_cancelled = [&] { return ++seen >= count; }});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kCancelled) << r.status();
}

// docs/api.md: with default settings a correct gradient verifies for |z| <= 1e3, batch and classes
// up to 1000, any reduction.
TEST(VerifyGradientTest, CorrectGradientVerifiesAtTheContractsLimits) {
  std::mt19937_64 rng(2024);
  const RowMatrix<double> z = RandomLogits<double>(rng, 1000, 1000, 1e3);
  const std::vector<int64_t> labels = RandomLabels(rng, 1000, 1000);
  for (Reduction red : {Reduction::kMean, Reduction::kSum, Reduction::kNone}) {
    for (NumericMethod method : {NumericMethod::kComplexStep, NumericMethod::kCentralDifference}) {
      VerifyRequest req{{ConstView(z), Targets<double>::ClassIndices(labels), {red, 0.1}}};
      req.options.numeric_method = method;
      const auto r = VerifyGradient(req, ExecContext{});
      ASSERT_OK(r);
      EXPECT_TRUE(r->ok) << r->summary;
    }
  }
}

TEST(VerifyGradientTest, CentralDifferenceHonoursEpsilon) {
  const Motivating m;
  VerifyRequest req{m.Problem(Reduction::kSum)};
  req.options.numeric_method = NumericMethod::kCentralDifference;
  req.options.epsilon = 1e-4;
  const auto r = VerifyGradient(req, ExecContext{});
  ASSERT_OK(r);
  EXPECT_EQ(r->epsilon_used, 1e-4);
  EXPECT_NEAR(r->numeric_grad(0, 1), -0.5, 1e-8);
  EXPECT_GT(r->max_abs_error, 0.0);
  EXPECT_TRUE(r->ok);
}

TEST(VerifyGradientTest, RejectsBadTolerances) {
  const Motivating m;
  for (double bad : {-1.0, std::nan(""), HUGE_VAL}) {
    VerifyRequest req{m.Problem(Reduction::kSum)};
    req.options.rtol = bad;
    const auto r = VerifyGradient(req, ExecContext{});
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_TRUE(Contains(std::string(r.status().message()), "rtol"));
  }
}

TEST(VerifyGradientTest, EmptyBatch) {
  RowMatrix<double> z(0, 3);
  VerifyRequest req{{ConstView(z), Targets<double>::ClassIndices({}), {Reduction::kSum}}};
  const auto r = VerifyGradient(req, ExecContext{});
  ASSERT_OK(r);
  EXPECT_TRUE(r->ok);
  EXPECT_EQ(r->analytic_grad.size(), 0);
}

}  // namespace
}  // namespace gradserve
