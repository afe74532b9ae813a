// The O(batch · classes) numeric reference of the verifier against a slow reference that
// re-sums the whole row for every perturbation (the O(classes²) way), against closed forms, and
// at the sizes the contract serves.
#include <cmath>
#include <complex>
#include <limits>
#include <random>
#include <string>
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

constexpr double kEps = std::numeric_limits<double>::epsilon();
constexpr double kComplexStep = 1e-20;

// dL/dl_i of the differentiated loss.
double Scale(const LossProblem<double>& p) {
  if (p.options.reduction != Reduction::kMean) return 1.0;
  const double d = MeanDenominator(p);
  return d == 0.0 ? std::nan("") : 1.0 / d;
}

RowMatrix<double> TargetQ(const LossProblem<double>& p) {
  RowMatrix<double> q(p.logits.rows(), p.logits.cols());
  TargetDistribution<double>(p, View(q));
  return q;
}

// Row i's loss at z_i + d·e_j, re-summing the whole row: s·logsumexp - <q, z> in type T.
template <typename T>
T SlowRowLoss(const LossProblem<double>& p, const RowMatrix<double>& q, int64_t i, int64_t j, T d) {
  const int64_t c = p.logits.cols();
  const double m = p.logits.row(i).maxCoeff();
  T sum = 0, qz = 0;
  double s = 0;
  for (int64_t k = 0; k < c; ++k) {
    const T zk = static_cast<T>(p.logits(i, k)) + (k == j ? d : T(0));
    sum += std::exp(zk - static_cast<T>(m));
    qz += static_cast<T>(q(i, k)) * zk;
    s += q(i, k);
  }
  return static_cast<T>(s) * (static_cast<T>(m) + std::log(sum)) - qz;
}

// The slow reference: every perturbed loss re-sums its row, O(batch · classes²).
RowMatrix<double> SlowComplexStep(const LossProblem<double>& p) {
  const RowMatrix<double> q = TargetQ(p);
  RowMatrix<double> g = RowMatrix<double>::Zero(p.logits.rows(), p.logits.cols());
  for (int64_t i = 0; i < g.rows(); ++i) {
    if (IsIgnoredRow(p, i)) continue;
    for (int64_t j = 0; j < g.cols(); ++j) {
      const std::complex<double> l =
          SlowRowLoss<std::complex<double>>(p, q, i, j, std::complex<double>(0, kComplexStep));
      g(i, j) = Scale(p) * (l.imag() / kComplexStep);
    }
  }
  return g;
}

template <typename T>
RowMatrix<double> SlowCentralDifference(const LossProblem<double>& p, double h) {
  const RowMatrix<double> q = TargetQ(p);
  RowMatrix<double> g = RowMatrix<double>::Zero(p.logits.rows(), p.logits.cols());
  for (int64_t i = 0; i < g.rows(); ++i) {
    if (IsIgnoredRow(p, i)) continue;
    for (int64_t j = 0; j < g.cols(); ++j) {
      const T diff = SlowRowLoss<T>(p, q, i, j, static_cast<T>(h)) - SlowRowLoss<T>(p, q, i, j, static_cast<T>(-h));
      g(i, j) = Scale(p) * static_cast<double>(diff / (2 * static_cast<T>(h)));
    }
  }
  return g;
}

// The two terms of the closed form, r·s·a and r·q, whose sizes bound rounding.
struct ClosedForm {
  RowMatrix<double> grad, size, a;
};
ClosedForm Closed(const LossProblem<double>& p) {
  const RowMatrix<double> q = TargetQ(p);
  const int64_t n = p.logits.rows(), c = p.logits.cols();
  ClosedForm f{RowMatrix<double>::Zero(n, c), RowMatrix<double>::Zero(n, c), RowMatrix<double>(n, c)};
  EXPECT_OK((Softmax<double>(p.logits, View(f.a), NoMatrix<double>(), ExecContext{})));
  const double r = Scale(p);
  for (int64_t i = 0; i < n; ++i) {
    if (IsIgnoredRow(p, i)) continue;
    const double s = q.row(i).sum();
    f.grad.row(i) = r * (s * f.a.row(i) - q.row(i));
    f.size.row(i) = std::abs(r) * (s * f.a.row(i).array().abs() + q.row(i).array().abs()).matrix();
  }
  return f;
}

// A random problem exercising one combination of options.
struct Case {
  LossProblem<double> Problem() const {
    if (probabilities) return {ConstView(z), Targets<double>::Probabilities(ConstView(probs)), options};
    return {ConstView(z), Targets<double>::ClassIndices(labels), options};
  }
  RowMatrix<double> z, probs;
  std::vector<int64_t> labels;
  std::vector<double> weights;
  bool probabilities = false;
  LossOptions options;
  std::string name;
};

Case RandomCase(std::mt19937_64& rng, int k) {
  Case c;
  const int64_t n = 1 + k % 5, classes = 2 + (k * 7) % 40;
  const double scale = std::vector<double>{0.5, 3.0, 30.0, 1e3}[k % 4];
  c.z = RandomLogits<double>(rng, n, classes, scale);
  c.probabilities = k % 3 == 0;
  const bool weighted = k % 2 == 1;
  const double smoothing = (k / 2) % 3 == 0 ? 0.0 : 0.15;
  const Reduction reduction = std::vector<Reduction>{Reduction::kMean, Reduction::kSum, Reduction::kNone}[(k / 3) % 3];
  if (weighted) {
    std::uniform_real_distribution<double> w(0.0, 3.0);
    for (int64_t j = 0; j < classes; ++j) c.weights.push_back(w(rng));
  }
  c.options = {reduction, smoothing, {}, std::nullopt};
  if (c.probabilities) {
    c.probs = RandomProbabilities<double>(rng, n, classes);
  } else {
    c.labels = RandomLabels(rng, n, classes);
    if (n > 1) {
      c.labels[0] = classes - 1;
      c.options.ignore_index = classes - 1;  // row 0 is ignored
    }
  }
  c.name = "case " + std::to_string(k) + ": " + std::to_string(n) + "x" + std::to_string(classes) +
           " |z|<=" + std::to_string(scale) + (c.probabilities ? " probabilities" : " labels") +
           (weighted ? " weighted" : "") + (smoothing > 0 ? " smoothed" : "");
  return c;
}

TEST(VerifyNumericTest, ComplexStepMatchesTheRowResummingReferenceAndTheClosedForm) {
  std::mt19937_64 rng(11);
  for (int k = 0; k < 120; ++k) {
    Case c = RandomCase(rng, k);
    c.options.class_weights = c.weights;  // (the view is taken once c is in place)
    const LossProblem<double> p = c.Problem();
    RowMatrix<double> fast(p.logits.rows(), p.logits.cols());
    const auto h = NumericGradient(p, NumericMethod::kComplexStep, 0.0, View(fast), ExecContext{});
    ASSERT_OK(h);
    EXPECT_EQ(*h, kComplexStep);
    const RowMatrix<double> slow = SlowComplexStep(p);
    const ClosedForm closed = Closed(p);
    for (int64_t e = 0; e < fast.size(); ++e) {
      // Both are exact to rounding: a few ulps of the closed form's terms (and no underflow noise).
      const double bound = 64 * kEps * closed.size.data()[e] + 1e-290;
      EXPECT_NEAR(fast.data()[e], slow.data()[e], bound) << c.name << " element " << e;
      EXPECT_NEAR(fast.data()[e], closed.grad.data()[e], bound) << c.name << " element " << e;
    }
  }
}

TEST(VerifyNumericTest, CentralDifferenceMatchesTheRowResummingReference) {
  std::mt19937_64 rng(12);
  for (int k = 0; k < 120; ++k) {
    Case c = RandomCase(rng, k);
    c.options.class_weights = c.weights;  // (the view is taken once c is in place)
    const LossProblem<double> p = c.Problem();
    for (double h : {1e-3, 1e-5}) {
      RowMatrix<double> fast(p.logits.rows(), p.logits.cols());
      ASSERT_OK(NumericGradient(p, NumericMethod::kCentralDifference, h, View(fast), ExecContext{}));
      // The same difference quotient in long double: its rounding, ~C·eps·R/h with R the size
      // of the loss, is what the fast form avoids; the fast form's own is a few ulps.
      const RowMatrix<double> slow = SlowCentralDifference<long double>(p, h);
      const ClosedForm closed = Closed(p);
      const RowMatrix<double> q = TargetQ(p);
      for (int64_t i = 0; i < fast.rows(); ++i) {
        const double loss_size = q.row(i).sum() * (p.logits.row(i).cwiseAbs().maxCoeff() + 10) +
                                 (q.row(i).array() * p.logits.row(i).array()).abs().sum();
        const double ld_rounding = 4.0 * p.logits.cols() * std::numeric_limits<long double>::epsilon() *
                                   loss_size / h * std::abs(Scale(p));
        for (int64_t j = 0; j < fast.cols(); ++j) {
          const double bound = ld_rounding + 64 * kEps * closed.size(i, j) + 1e-290;
          EXPECT_NEAR(fast(i, j), slow(i, j), bound) << c.name << " h " << h << " at " << i << "," << j;
        }
      }
    }
  }
}

// The per-row step: what is left against the closed form is truncation, h²/6 · |f'''| with
// |f'''| <= s·a_j·e^h along coordinate j, plus rounding.
TEST(VerifyNumericTest, CentralDifferenceWithTheRowStepIsWithinTruncationOfTheClosedForm) {
  std::mt19937_64 rng(13);
  for (int k = 0; k < 120; ++k) {
    Case c = RandomCase(rng, k);
    c.options.class_weights = c.weights;  // (the view is taken once c is in place)
    const LossProblem<double> p = c.Problem();
    RowMatrix<double> fast(p.logits.rows(), p.logits.cols());
    const auto h = NumericGradient(p, NumericMethod::kCentralDifference, 0.0, View(fast), ExecContext{});
    ASSERT_OK(h);
    EXPECT_GT(*h, 1e-6);
    EXPECT_LT(*h, 1e-2);
    const ClosedForm closed = Closed(p);
    const RowMatrix<double> q = TargetQ(p);
    for (int64_t i = 0; i < fast.rows(); ++i) {
      for (int64_t j = 0; j < fast.cols(); ++j) {
        const double truncation = *h * *h / 6 * std::exp(*h) * q.row(i).sum() * closed.a(i, j) * std::abs(Scale(p));
        const double bound = 1.01 * truncation + 64 * kEps * closed.size(i, j) + 1e-290;
        EXPECT_NEAR(fast(i, j), closed.grad(i, j), bound) << c.name << " at " << i << "," << j;
      }
    }
  }
}

// Equal logits give a = 1/C, and the central difference has a closed form:
// d/dz_j for j != y is log((C - 1 + e^h) / (C - 1 + e^-h)) / 2h, and for j = y that minus 1.
TEST(VerifyNumericTest, CentralDifferenceOfEqualLogitsHasAClosedForm) {
  for (int64_t c : {2, 3, 10, 1000}) {
    const RowMatrix<double> z = RowMatrix<double>::Zero(1, c);
    const int64_t label[] = {1};
    const LossProblem<double> p{ConstView(z), Targets<double>::ClassIndices(label), {Reduction::kSum}};
    for (double h : {1e-1, 1e-4}) {
      RowMatrix<double> g(1, c);
      ASSERT_OK(NumericGradient(p, NumericMethod::kCentralDifference, h, View(g), ExecContext{}));
      const long double cl = static_cast<long double>(c) - 1, hl = h;
      const double other = static_cast<double>(std::log((cl + std::exp(hl)) / (cl + std::exp(-hl))) / (2 * hl));
      for (int64_t j = 0; j < c; ++j) {
        const double want = j == 1 ? other - 1.0 : other;
        EXPECT_NEAR(g(0, j), want, 8 * kEps) << "classes " << c << " h " << h << " class " << j;
      }
      if (c == 2) {
        EXPECT_NEAR(g(0, 0), 0.5, 8 * kEps);  // log((1 + e^h) / (1 + e^-h)) / 2h = log(e^h) / 2h
      }
    }
  }
}

// The contract's sizes: these need no batch · classes² work.
TEST(VerifyNumericTest, LargeRowsVerifyWithBothMethods) {
  std::mt19937_64 rng(14);
  for (const auto& [n, c] : {std::pair<int64_t, int64_t>{1, 128000}, {8, 50000}}) {
    const RowMatrix<double> z = RandomLogits<double>(rng, n, c, 20.0);
    const std::vector<int64_t> labels = RandomLabels(rng, n, c);
    for (NumericMethod method : {NumericMethod::kComplexStep, NumericMethod::kCentralDifference}) {
      VerifyRequest req{{ConstView(z), Targets<double>::ClassIndices(labels), {Reduction::kMean, 0.1}}};
      req.options.numeric_method = method;
      const auto truth = VerifyGradient(req, ExecContext{});
      ASSERT_OK(truth);
      EXPECT_TRUE(truth->ok) << n << "x" << c << ": " << truth->summary;
      req.candidate_grad = truth->analytic_grad.data();
      const auto r = VerifyGradient(req, ExecContext{});
      ASSERT_OK(r);
      EXPECT_TRUE(r->candidate_ok) << r->summary;
      EXPECT_TRUE(r->findings.empty());
    }
  }
}

std::vector<FindingCode> Codes(const VerifyResult& r) {
  std::vector<FindingCode> out;
  for (const Finding& f : r.findings) out.push_back(f.code);
  return out;
}

// The mistake search at a size where forming J(z) (128000² entries) is out of the question.
TEST(VerifyNumericTest, MistakesAreNamedForOneRowOf128000Classes) {
  const int64_t c = 128000;
  std::mt19937_64 rng(15);
  const RowMatrix<double> z = RandomLogits<double>(rng, 1, c, 5.0);
  const int64_t label[] = {77};
  const LossProblem<double> p{ConstView(z), Targets<double>::ClassIndices(label), {Reduction::kSum}};
  RowMatrix<double> a(1, c);
  ASSERT_OK((Softmax<double>(p.logits, View(a), NoMatrix<double>(), ExecContext{})));
  RowMatrix<double> truth = a;
  truth(0, 77) -= 1.0;
  // dL/dA = -t/a, and J(z)·dL/dA = z ⊙ g - z·<z, g> = -z_y/a_y·(e_y - z).
  RowMatrix<double> grad_a = RowMatrix<double>::Zero(1, c);
  grad_a(0, 77) = -1.0 / a(0, 77);
  RowMatrix<double> at_z = -z(0, 77) * grad_a(0, 77) * z;
  at_z(0, 77) += z(0, 77) * grad_a(0, 77);
  const std::pair<FindingCode, RowMatrix<double>> planted[] = {
      {FindingCode::kJacobianAtLogits, at_z},
      {FindingCode::kGradientWrtProbabilities, grad_a},
      {FindingCode::kSignFlipped, -truth},
  };
  for (const auto& [code, candidate] : planted) {
    const auto r = VerifyGradient({p, candidate.data()}, ExecContext{});
    ASSERT_OK(r);
    EXPECT_FALSE(r->candidate_ok);
    ASSERT_EQ(Codes(*r), std::vector<FindingCode>{code}) << r->summary.substr(0, 2000);
    EXPECT_LT(r->findings[0].residual, 1e-9);
    ASSERT_EQ(r->findings[0].mistaken.size(), static_cast<size_t>(c));
  }
}

}  // namespace
}  // namespace gradserve
