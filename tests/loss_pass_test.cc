// LossPass and HalfLossPass (lib/loss_pass.h, lib/half_rows.h): every subset of outputs one pass
// can fill agrees with the separate calls (Softmax for probabilities and log-probabilities,
// CrossEntropy for the loss and gradients, SoftmaxVjp over Softmax's probabilities for the VJP),
// for float64, float32 and both half types, each target kind, both methods and every reduction.
// Runs once per row kernel. The pass forms a row's exponentials once and derives every output
// from them, so the only differences allowed are the rounding of a sum taken in another order.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "lib/cross_entropy.h"
#include "lib/half_rows.h"
#include "lib/loss_pass.h"
#include "lib/softmax.h"
#include "tests/test_util.h"

namespace gradserve {
namespace {

using ::gradserve::testing::RandomLabels;
using ::gradserve::testing::RandomLogits;
using ::gradserve::testing::RandomProbabilities;

// Output bits of a subset.
enum : int { kProbs = 1, kLogProbs = 2, kLoss = 4, kGrad = 8, kGradProbs = 16, kAllOutputs = 32 };

// One configuration of inputs: what the targets are (or the VJP), the options and the method.
struct Case {
  enum Kind { kNone, kIndex, kIndexAllOptions, kProbabilities, kVjp } kind;
  Reduction reduction;
  Method method;
  std::string Name() const {
    const char* kinds[] = {"none", "index", "index_weights_smoothing_ignore", "probabilities", "vjp"};
    return absl::StrCat(kinds[kind], "_", static_cast<int>(reduction), "_",
                        method == Method::kFused ? "fused" : "chain");
  }
  bool has_targets() const { return kind != kNone && kind != kVjp; }
  // Whether a pass may be asked for `mask`.
  bool Allows(int mask) const {
    if (kind == kVjp) return (mask & kGrad) && !(mask & kLoss);
    if (!has_targets()) return !(mask & (kLoss | kGrad | kGradProbs));
    if (mask & kGradProbs) return (mask & kGrad) && method == Method::kChainRule;
    return true;
  }
};

std::vector<Case> AllCases() {
  std::vector<Case> out;
  for (Case::Kind k : {Case::kNone, Case::kIndex, Case::kIndexAllOptions, Case::kProbabilities, Case::kVjp}) {
    for (Reduction r : {Reduction::kMean, Reduction::kSum, Reduction::kNone}) {
      for (Method m : {Method::kFused, Method::kChainRule}) out.push_back({k, r, m});
    }
  }
  return out;
}

// Seeded inputs in float64, float32 and the half types.
struct Data {
  Data(int64_t n_, int64_t c_) : n(n_), c(c_) {
    std::mt19937_64 rng(11);
    z = RandomLogits<double>(rng, n, c, 6.0);
    t = RandomProbabilities<double>(rng, n, c);
    g = RandomLogits<double>(rng, n, c, 1.0);
    ids = RandomLabels(rng, n, c);
    ids[1] = 2;  // ignored under kIndexAllOptions
    for (int64_t k = 0; k < c; ++k) weights.push_back(0.5 + 0.25 * (k % 3));
  }
  LossOptions Options(const Case& cs) const {
    LossOptions o;
    o.reduction = cs.reduction;
    if (cs.kind == Case::kIndexAllOptions) {
      o.label_smoothing = 0.15;
      o.class_weights = weights;
      o.ignore_index = 2;
    }
    if (cs.kind == Case::kProbabilities) o.label_smoothing = 0.1;
    return o;
  }
  int64_t n, c;
  RowMatrix<double> z, t, g;
  std::vector<int64_t> ids;
  std::vector<double> weights;
};

template <typename M>
M Maybe(bool wanted, M m) {
  return wanted ? m : M(nullptr, 0, 0);
}

// Results of one pass (or of the separate calls), as float64 for comparison.
struct Results {
  RowMatrix<double> p, lp, g, gp;
  std::vector<double> loss;
  double denominator = 0;
};

template <typename T>
class LossPassTest : public ::testing::Test {};
using FloatTypes = ::testing::Types<double, float>;
TYPED_TEST_SUITE(LossPassTest, FloatTypes);

template <typename T>
Results Pass(const Data& d, const Case& cs, int mask) {
  const int64_t n = d.n, c = d.c;
  const RowMatrix<T> z = d.z.cast<T>(), t = d.t.cast<T>(), g = d.g.cast<T>();
  RowMatrix<T> p(n, c), lp(n, c), grad(n, c), gp(n, c);
  std::vector<T> loss(cs.reduction == Reduction::kNone ? n : 1);
  std::optional<Targets<T>> targets;
  if (cs.kind == Case::kProbabilities) targets.emplace(Targets<T>::Probabilities(ConstView(t)));
  if (cs.kind == Case::kIndex || cs.kind == Case::kIndexAllOptions) targets.emplace(Targets<T>::ClassIndices(d.ids));
  const LossPassInputs<T> in{ConstView(z), targets, d.Options(cs), {},
                             Maybe(cs.kind == Case::kVjp, ConstView(g)), cs.method};
  const LossPassOutputs<T> out{Maybe(mask & kProbs, View(p)), Maybe(mask & kLogProbs, View(lp)),
                               (mask & kLoss) ? absl::MakeSpan(loss) : absl::Span<T>(),
                               Maybe(mask & kGrad, View(grad)), Maybe(mask & kGradProbs, View(gp))};
  const absl::StatusOr<LossSummary> s = LossPass<T>(in, out, ExecContext{});
  EXPECT_TRUE(s.ok()) << s.status();
  Results r{p.template cast<double>(), lp.template cast<double>(), grad.template cast<double>(),
            gp.template cast<double>(), std::vector<double>(loss.begin(), loss.end())};
  if (s.ok()) r.denominator = s->reduction_denominator;
  return r;
}

// The same outputs from the separate calls.
template <typename T>
Results Separate(const Data& d, const Case& cs) {
  const int64_t n = d.n, c = d.c;
  const RowMatrix<T> z = d.z.cast<T>(), t = d.t.cast<T>(), g = d.g.cast<T>();
  RowMatrix<T> p(n, c), lp(n, c), grad(n, c), gp = RowMatrix<T>::Zero(n, c);
  std::vector<T> loss(cs.reduction == Reduction::kNone ? n : 1);
  Results r;
  EXPECT_OK(Softmax<T>(ConstView(z), View(p), View(lp), ExecContext{}));
  if (cs.kind == Case::kVjp) {
    EXPECT_OK(SoftmaxVjp<T>(ConstView(p), ConstView(g), View(grad), ExecContext{}));
    gp = g;
  } else if (cs.has_targets()) {
    const LossProblem<T> problem{ConstView(z),
                                 cs.kind == Case::kProbabilities ? Targets<T>::Probabilities(ConstView(t))
                                                                 : Targets<T>::ClassIndices(d.ids),
                                 d.Options(cs)};
    const absl::StatusOr<LossSummary> s = CrossEntropy<T>(
        problem, {}, cs.method, {absl::MakeSpan(loss), View(grad), View(gp)}, ExecContext{});
    EXPECT_TRUE(s.ok()) << s.status();
    if (s.ok()) r.denominator = s->reduction_denominator;
  }
  r.p = p.template cast<double>();
  r.lp = lp.template cast<double>();
  r.g = grad.template cast<double>();
  r.gp = gp.template cast<double>();
  r.loss.assign(loss.begin(), loss.end());
  return r;
}

// |a - b| ≤ tol · max(1, |b|) elementwise; NaN only where both are NaN; ±Inf (chain-rule dL/dA
// where a probability underflows) only where both are the same infinity.
void ExpectClose(const double* a, const double* b, int64_t size, double tol, const std::string& what) {
  for (int64_t k = 0; k < size; ++k) {
    if (std::isnan(b[k]) || std::isinf(b[k])) {
      EXPECT_TRUE(std::isnan(b[k]) ? std::isnan(a[k]) : a[k] == b[k]) << what << "[" << k << "]";
      continue;
    }
    ASSERT_LE(std::abs(a[k] - b[k]), tol * std::max(1.0, std::abs(b[k])))
        << what << "[" << k << "]: " << a[k] << " vs " << b[k];
  }
}

void ExpectSame(const Results& got, const Results& want, int mask, double tol, const std::string& name) {
  if (mask & kProbs) ExpectClose(got.p.data(), want.p.data(), got.p.size(), tol, name + " probabilities");
  if (mask & kLogProbs) ExpectClose(got.lp.data(), want.lp.data(), got.lp.size(), tol, name + " log_probabilities");
  if (mask & kLoss) ExpectClose(got.loss.data(), want.loss.data(), got.loss.size(), tol, name + " loss");
  if (mask & kGrad) ExpectClose(got.g.data(), want.g.data(), got.g.size(), tol, name + " grad_logits");
  if (mask & kGradProbs) ExpectClose(got.gp.data(), want.gp.data(), got.gp.size(), tol, name + " grad_probabilities");
  EXPECT_EQ(got.denominator, want.denominator) << name;
}

TYPED_TEST(LossPassTest, EverySubsetOfOutputsMatchesTheSeparateCalls) {
  using T = TypeParam;
  // A few ulps: a sum may be taken in another order when a row sits at another address.
  const double tol = 8 * std::numeric_limits<T>::epsilon();
  // Short rows (the scratch row in L1) and rows formed in place (past 16 KiB).
  for (const auto& [n, c] : {std::pair<int64_t, int64_t>{9, 7}, {3, 5000}}) {
    const Data d(n, c);
    for (const Case& cs : AllCases()) {
      const Results want = Separate<T>(d, cs);
      for (int mask = 1; mask < kAllOutputs; ++mask) {
        if (!cs.Allows(mask)) continue;
        ExpectSame(Pass<T>(d, cs, mask), want, mask, tol,
                   absl::StrCat(cs.Name(), " mask ", mask, " [", n, ", ", c, "]"));
      }
    }
  }
}

TYPED_TEST(LossPassTest, ChainRuleKeepsDlDzFiniteWhereAProbabilityUnderflows) {
  using T = TypeParam;
  RowMatrix<T> z(1, 2);
  z << T(0), T(sizeof(T) == 4 ? 120 : 800);  // softmax's first entry underflows to 0
  const int64_t ids[] = {0};
  RowMatrix<T> p(1, 2), grad(1, 2), gp(1, 2);
  T loss;
  const LossPassInputs<T> in{ConstView(z), Targets<T>::ClassIndices(ids), {}, {},
                             NoConstMatrix<T>(), Method::kChainRule};
  ASSERT_OK(LossPass<T>(in, {View(p), NoMatrix<T>(), absl::MakeSpan(&loss, 1), View(grad), View(gp)},
                        ExecContext{}).status());
  EXPECT_EQ(p(0, 0), T(0));
  EXPECT_TRUE(std::isinf(gp(0, 0)));
  EXPECT_EQ(grad(0, 0), T(-1));
  EXPECT_EQ(grad(0, 1), T(1));
}

// The half pass against the separate half calls: equal to one half-precision step.
TEST(HalfLossPassTest, EverySubsetOfOutputsMatchesTheSeparateHalfCalls) {
  for (HalfType type : {HalfType::kFloat16, HalfType::kBFloat16}) {
    const Data d(37, 11);
    const int64_t n = d.n, c = d.c, size = n * c;
    auto half = [&](const RowMatrix<double>& m) {
      std::vector<uint16_t> out(m.size());
      for (int64_t k = 0; k < m.size(); ++k) out[k] = FloatToHalf(type, static_cast<float>(m.data()[k]));
      return out;
    };
    const std::vector<uint16_t> z = half(d.z), t = half(d.t), g = half(d.g);
    auto wide = [&](const std::vector<uint16_t>& h) {
      RowMatrix<double> out(n, h.size() / std::max<int64_t>(n, 1));
      for (size_t k = 0; k < h.size(); ++k) out.data()[k] = HalfToFloat(type, h[k]);
      return out;
    };
    const HalfMatrix zm(z.data(), n, c), tm(t.data(), n, c), gm(g.data(), n, c);
    const double tol = 2 * HalfUnitRoundoff(type);
    for (const Case& cs : AllCases()) {
      const LossOptions options = d.Options(cs);
      std::optional<HalfTargets> targets;
      if (cs.kind == Case::kProbabilities) targets.emplace(HalfTargets::Probabilities(tm));
      if (cs.kind == Case::kIndex || cs.kind == Case::kIndexAllOptions) targets.emplace(HalfTargets::ClassIndices(d.ids));
      // The separate calls.
      std::vector<uint16_t> p(size), lp(size), grad(size), gp(size, 0), loss(cs.reduction == Reduction::kNone ? n : 1);
      ASSERT_OK(HalfSoftmax(type, zm, HalfMatrixOut(p.data(), n, c), HalfMatrixOut(lp.data(), n, c), {}));
      if (cs.kind == Case::kVjp) {
        ASSERT_OK(HalfSoftmaxVjp(type, zm, gm, HalfMatrixOut(grad.data(), n, c), NoMatrix<uint16_t>(), {}));
        gp = g;
      } else if (targets) {
        ASSERT_OK(HalfCrossEntropy({type, zm, *targets, options}, {}, cs.method,
                                   {absl::MakeSpan(loss), HalfMatrixOut(grad.data(), n, c),
                                    HalfMatrixOut(gp.data(), n, c)}, {}).status());
      }
      for (int mask = 1; mask < kAllOutputs; ++mask) {
        if (!cs.Allows(mask)) continue;
        std::vector<uint16_t> p2(size), lp2(size), grad2(size), gp2(size), loss2(loss.size());
        auto out = [&](int bit, std::vector<uint16_t>& v) {
          return Maybe(mask & bit, HalfMatrixOut(v.data(), n, c));
        };
        const HalfPassInputs in{type, zm, targets, options, {}, Maybe(cs.kind == Case::kVjp, gm), cs.method};
        ASSERT_OK(HalfLossPass(in, {out(kProbs, p2), out(kLogProbs, lp2),
                                    (mask & kLoss) ? absl::MakeSpan(loss2) : absl::Span<uint16_t>(),
                                    out(kGrad, grad2), out(kGradProbs, gp2)}, {}).status());
        const std::string name = absl::StrCat(HalfTypeName(type), " ", cs.Name(), " mask ", mask);
        Results got{wide(p2), wide(lp2), wide(grad2), wide(gp2)}, want{wide(p), wide(lp), wide(grad), wide(gp)};
        for (uint16_t l : loss2) got.loss.push_back(HalfToFloat(type, l));
        for (uint16_t l : loss) want.loss.push_back(HalfToFloat(type, l));
        ExpectSame(got, want, mask, tol, name);
      }
    }
  }
}

}  // namespace
}  // namespace gradserve
