// The blocked half-precision adapter (lib/half_rows.h) against its oracle: the half inputs
// widened to float32, ONE float32 library call over the whole batch, its outputs rounded to the
// half type, for shapes that span many blocks, every option, both methods and both half types.
// Softmax, log-softmax, the VJP and the Jacobian agree bit for bit. Cross-entropy agrees bit for
// bit except where the float32 library's own Eigen reductions (Σq, Σ q·z over a scratch row) take
// a different packet order because a row sits at a differently aligned address: the library is
// not address-invariant, so there the two may differ by one half-precision step; at least 99% of
// the elements must still match exactly. Both must meet the API's error bound against float64
// computed from the same half-rounded inputs.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "lib/cross_entropy.h"
#include "lib/half_rows.h"
#include "lib/softmax.h"

namespace gradserve {
namespace {

struct Shape {
  int64_t rows, classes;
};
// Single blocks, many blocks of many rows, and rows wider than a block.
const Shape kShapes[] = {{1, 3}, {7, 5}, {700, 9}, {150, 600}, {2, 40000}, {0, 4}};

struct Problem {
  HalfType type;
  int64_t n, c;
  std::vector<uint16_t> logits, probs;  // probs empty: class indices
  std::vector<int64_t> ids;
  std::vector<double> weights;
  LossOptions options;
  std::vector<uint16_t> grad_loss;
};

std::vector<uint16_t> RandomHalf(HalfType t, size_t n, double scale, std::mt19937_64& rng) {
  std::normal_distribution<double> d(0.0, scale);
  std::vector<uint16_t> out(n);
  for (auto& h : out) h = DoubleToHalf(t, d(rng));
  return out;
}

std::vector<float> Widen(HalfType t, const std::vector<uint16_t>& h) {
  std::vector<float> f(h.size());
  WidenHalf(t, h.data(), f.data(), static_cast<int64_t>(h.size()));
  return f;
}

Problem MakeProblem(HalfType t, Shape s, bool probabilities, Reduction r, bool weighted,
                    double smoothing, bool ignore, bool grad_loss, uint64_t seed) {
  std::mt19937_64 rng(seed);
  Problem p{t, s.rows, s.classes};
  p.logits = RandomHalf(t, s.rows * s.classes, 4.0, rng);
  p.options.reduction = r;
  p.options.label_smoothing = smoothing;
  if (weighted) {
    std::uniform_real_distribution<double> w(0.0, 2.0);
    for (int64_t k = 0; k < s.classes; ++k) p.weights.push_back(w(rng));
  }
  if (probabilities) {
    std::gamma_distribution<double> g(0.5);
    p.probs.resize(s.rows * s.classes);
    for (int64_t i = 0; i < s.rows; ++i) {
      std::vector<double> row(s.classes);
      double sum = 0;
      for (double& v : row) sum += (v = g(rng) + 1e-3);
      for (int64_t j = 0; j < s.classes; ++j) p.probs[i * s.classes + j] = DoubleToHalf(t, row[j] / sum);
    }
  } else {
    std::uniform_int_distribution<int64_t> y(0, s.classes - 1);
    for (int64_t i = 0; i < s.rows; ++i) p.ids.push_back(ignore && i % 3 == 1 ? -100 : y(rng));
    if (ignore) p.options.ignore_index = -100;
  }
  if (grad_loss) p.grad_loss = RandomHalf(t, r == Reduction::kNone ? s.rows : 1, 1.5, rng);
  return p;
}

HalfLossProblem HalfView(const Problem& p) {
  HalfLossProblem h{p.type, HalfMatrix(p.logits.data(), p.n, p.c),
                    p.probs.empty() ? HalfTargets::ClassIndices(p.ids)
                                    : HalfTargets::Probabilities(HalfMatrix(p.probs.data(), p.n, p.c)),
                    p.options};
  h.options.class_weights = p.weights;
  return h;
}

struct Outputs {
  std::vector<uint16_t> loss, grad, grad_probs;
};

Outputs RunHalf(const Problem& p, Method m) {
  const size_t nc = p.n * p.c;
  Outputs o{std::vector<uint16_t>(p.options.reduction == Reduction::kNone ? p.n : 1),
            std::vector<uint16_t>(nc), std::vector<uint16_t>(nc)};
  const auto s = HalfCrossEntropy(
      HalfView(p), Widen(p.type, p.grad_loss), m,
      {absl::MakeSpan(o.loss), HalfMatrixOut(o.grad.data(), p.n, p.c),
       m == Method::kChainRule ? HalfMatrixOut(o.grad_probs.data(), p.n, p.c) : NoMatrix<uint16_t>()},
      ExecContext{});
  EXPECT_TRUE(s.ok()) << s.status();
  if (m != Method::kChainRule) o.grad_probs.clear();
  return o;
}

// T's CrossEntropy over the whole widened batch.
template <typename T>
std::vector<T> RunWhole(const Problem& p, Method m, std::vector<T>* grad, std::vector<T>* grad_probs) {
  const std::vector<float> z32 = Widen(p.type, p.logits), t32 = Widen(p.type, p.probs),
                           g32 = Widen(p.type, p.grad_loss);
  const std::vector<T> z(z32.begin(), z32.end()), t(t32.begin(), t32.end()), g(g32.begin(), g32.end());
  LossOptions o = p.options;
  o.class_weights = p.weights;
  o.probability_sum_tolerance = HalfProbabilitySumTolerance(p.type, p.c);
  const LossProblem<T> problem{ConstMatrixMap<T>(z.data(), p.n, p.c),
                               p.probs.empty() ? Targets<T>::ClassIndices(p.ids)
                                               : Targets<T>::Probabilities(ConstMatrixMap<T>(t.data(), p.n, p.c)),
                               o};
  std::vector<T> loss(p.options.reduction == Reduction::kNone ? p.n : 1);
  grad->assign(p.n * p.c, 0);
  grad_probs->assign(m == Method::kChainRule ? p.n * p.c : 0, 0);
  const auto s = CrossEntropy<T>(problem, g, m,
                                 {absl::MakeSpan(loss), MatrixMap<T>(grad->data(), p.n, p.c),
                                  m == Method::kChainRule ? MatrixMap<T>(grad_probs->data(), p.n, p.c) : NoMatrix<T>()},
                                 ExecContext{});
  EXPECT_TRUE(s.ok()) << s.status();
  return loss;
}

std::vector<uint16_t> Narrow(HalfType t, const std::vector<float>& f) {
  std::vector<uint16_t> h(f.size());
  NarrowToHalf(t, f.data(), h.data(), static_cast<int64_t>(f.size()));
  return h;
}

// Elements compared and elements bit-identical, over a whole test.
struct Tally {
  int64_t compared = 0, identical = 0;
};

// Bit for bit (any NaN equals any NaN); with `tally`, a difference of float32 rounding is
// accepted and counted as not identical: one half-precision step, or 16 float32 units of the
// output's scale max(1, max|want|) (cancellation in s·a − q magnifies a last-bit difference of Σq
// relative to a tiny element).
::testing::AssertionResult SameBits(HalfType t, const std::vector<uint16_t>& got,
                                    const std::vector<uint16_t>& want, Tally* tally = nullptr) {
  if (got.size() != want.size()) return ::testing::AssertionFailure() << got.size() << " vs " << want.size();
  double scale = 1.0;
  for (uint16_t h : want) if (std::isfinite(HalfToFloat(t, h))) scale = std::max<double>(scale, std::abs(HalfToFloat(t, h)));
  for (size_t k = 0; k < got.size(); ++k) {
    const float g = HalfToFloat(t, got[k]), w = HalfToFloat(t, want[k]);
    const bool same = got[k] == want[k] || (std::isnan(g) && std::isnan(w));
    const bool adjacent = ((got[k] & 0x8000) == (want[k] & 0x8000) &&
                           std::abs(int{got[k]} - int{want[k]}) == 1) ||
                          std::abs(double{g} - w) <= 16 * 0x1p-24 * scale;
    if (tally != nullptr) {
      ++tally->compared;
      tally->identical += same;
    }
    if (!same && !(tally != nullptr && adjacent)) {
      return ::testing::AssertionFailure() << "[" << k << "] " << g << " vs oracle " << w;
    }
  }
  return ::testing::AssertionSuccess();
}

// The API bound: |got - ref| <= (max(1e-5, 0.1·classes·2^-24) + u)·max(1, max|ref|).
::testing::AssertionResult WithinApiBound(HalfType t, int64_t classes, const std::vector<uint16_t>& got,
                                          const std::vector<double>& ref) {
  double scale = 1.0;
  for (double r : ref) if (std::isfinite(r)) scale = std::max(scale, std::abs(r));
  const double bound = (std::max(1e-5, 0.1 * classes * 0x1p-24) + HalfUnitRoundoff(t)) * scale;
  for (size_t k = 0; k < got.size(); ++k) {
    const double g = HalfToFloat(t, got[k]);
    const bool ok = std::isnan(ref[k]) ? std::isnan(g) : std::abs(g - ref[k]) <= bound;
    if (!ok) return ::testing::AssertionFailure() << "[" << k << "] " << g << " vs float64 " << ref[k] << " bound " << bound;
  }
  return ::testing::AssertionSuccess();
}

TEST(HalfRowsTest, CrossEntropyEqualsOneFloat32CallOverTheWholeBatch) {
  uint64_t seed = 1;
  int cases = 0;
  Tally tally;
  for (HalfType t : {HalfType::kFloat16, HalfType::kBFloat16}) {
    for (const Shape& s : kShapes) {
      for (bool probs : {false, true}) {
        for (Reduction r : {Reduction::kMean, Reduction::kSum, Reduction::kNone}) {
          for (int variant = 0; variant < 4; ++variant) {
            const bool weighted = variant & 1, smoothing = variant & 2;
            const bool ignore = !probs && variant != 1, grad_loss = variant >= 2;
            const Problem p = MakeProblem(t, s, probs, r, weighted, smoothing ? 0.1 : 0.0, ignore,
                                          grad_loss, seed++);
            for (Method m : {Method::kFused, Method::kChainRule}) {
              SCOPED_TRACE(::testing::Message() << HalfTypeName(t) << " [" << s.rows << ", " << s.classes
                           << "] probs " << probs << " reduction " << int(r) << " variant "
                           << variant << " method " << int(m));
              const Outputs half = RunHalf(p, m);
              std::vector<float> g32, gp32;
              const std::vector<float> loss32 = RunWhole<float>(p, m, &g32, &gp32);
              EXPECT_TRUE(SameBits(t, half.loss, Narrow(t, loss32), &tally));
              EXPECT_TRUE(SameBits(t, half.grad, Narrow(t, g32), &tally));
              EXPECT_TRUE(SameBits(t, half.grad_probs, Narrow(t, gp32), &tally));
              std::vector<double> g64, gp64;
              const std::vector<double> loss64 = RunWhole<double>(p, m, &g64, &gp64);
              EXPECT_TRUE(WithinApiBound(t, s.classes, half.loss, loss64));
              EXPECT_TRUE(WithinApiBound(t, s.classes, half.grad, g64));
              ++cases;
            }
          }
        }
      }
    }
  }
  EXPECT_EQ(cases, 2 * 6 * 2 * 3 * 4 * 2);
  EXPECT_GE(tally.identical, tally.compared * 99 / 100) << tally.identical << " of " << tally.compared;
  std::printf("bit-identical to the whole-batch float32 call: %lld of %lld elements\n",
              static_cast<long long>(tally.identical), static_cast<long long>(tally.compared));
}

TEST(HalfRowsTest, MeanNaNCasesFollowTorch) {
  for (HalfType t : {HalfType::kFloat16, HalfType::kBFloat16}) {
    // Every row ignored: loss NaN, gradient zero; a zero weight sum: loss and kept rows NaN.
    Problem p = MakeProblem(t, {300, 400}, false, Reduction::kMean, true, 0.1, true, false, 99);
    for (int64_t& y : p.ids) y = -100;
    Outputs o = RunHalf(p, Method::kFused);
    EXPECT_TRUE(std::isnan(HalfToFloat(t, o.loss[0])));
    EXPECT_TRUE(std::all_of(o.grad.begin(), o.grad.end(), [](uint16_t h) { return (h & 0x7fff) == 0; }));
    for (size_t i = 0; i < p.ids.size(); ++i) p.ids[i] = i % 2 ? 0 : -100;
    p.weights[0] = 0.0;
    o = RunHalf(p, Method::kFused);
    EXPECT_TRUE(std::isnan(HalfToFloat(t, o.loss[0])));
    EXPECT_TRUE(std::isnan(HalfToFloat(t, o.grad[400 + 7])));  // row 1: kept, weight 0
    EXPECT_EQ(o.grad[7] & 0x7fff, 0);                           // row 0: ignored
  }
}

TEST(HalfRowsTest, SoftmaxVjpAndJacobianEqualTheFloat32Calls) {
  for (HalfType t : {HalfType::kFloat16, HalfType::kBFloat16}) {
    for (const Shape& s : {Shape{700, 9}, Shape{40, 1000}, Shape{2, 70000}}) {
      std::mt19937_64 rng(s.classes);
      const std::vector<uint16_t> z = RandomHalf(t, s.rows * s.classes, 5.0, rng);
      const std::vector<uint16_t> g = RandomHalf(t, s.rows * s.classes, 1.0, rng);
      const int64_t n = s.rows, c = s.classes;
      std::vector<uint16_t> p(n * c), lp(n * c), vjp(n * c), p2(n * c);
      ASSERT_TRUE(HalfSoftmax(t, HalfMatrix(z.data(), n, c), HalfMatrixOut(p.data(), n, c),
                              HalfMatrixOut(lp.data(), n, c), ExecContext{}).ok());
      ASSERT_TRUE(HalfSoftmaxVjp(t, HalfMatrix(z.data(), n, c), HalfMatrix(g.data(), n, c),
                                 HalfMatrixOut(vjp.data(), n, c), HalfMatrixOut(p2.data(), n, c), ExecContext{}).ok());
      const std::vector<float> zf = Widen(t, z), gf = Widen(t, g);
      std::vector<float> pf(n * c), lpf(n * c), vf(n * c);
      ASSERT_TRUE(Softmax<float>(ConstMatrixMap<float>(zf.data(), n, c), MatrixMap<float>(pf.data(), n, c),
                                 MatrixMap<float>(lpf.data(), n, c), ExecContext{}).ok());
      ASSERT_TRUE(SoftmaxVjp<float>(ConstMatrixMap<float>(pf.data(), n, c), ConstMatrixMap<float>(gf.data(), n, c),
                                    MatrixMap<float>(vf.data(), n, c), ExecContext{}).ok());
      EXPECT_TRUE(SameBits(t, p, Narrow(t, pf)));
      EXPECT_TRUE(SameBits(t, p2, Narrow(t, pf)));
      EXPECT_TRUE(SameBits(t, lp, Narrow(t, lpf)));
      EXPECT_TRUE(SameBits(t, vjp, Narrow(t, vf)));
      if (c > 1000) continue;
      std::vector<uint16_t> j(n * c * c);
      std::vector<float> jf(n * c * c);
      ASSERT_TRUE(HalfSoftmaxJacobian(t, HalfMatrix(z.data(), n, c), j.data(), ExecContext{}).ok());
      ASSERT_TRUE(SoftmaxJacobian<float>(ConstMatrixMap<float>(pf.data(), n, c), jf.data(), ExecContext{}).ok());
      EXPECT_TRUE(SameBits(t, j, Narrow(t, jf)));
    }
  }
}

TEST(HalfRowsTest, ValidationUsesWholeBatchIndicesAndHalfTolerances) {
  const HalfType t = HalfType::kBFloat16;
  Problem p = MakeProblem(t, {300, 200}, true, Reduction::kMean, false, 0.0, false, false, 5);
  p.logits[250 * 200 + 17] = 0x7f80;  // +Inf at row 250
  absl::Status s = ValidateHalfLossProblem(HalfView(p));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("logits[250, 17] is inf"), std::string::npos) << s;
  p.logits[250 * 200 + 17] = 0;
  // A row off by 0.5 (under 200 · 2^-8 = 0.78) passes for bfloat16; one off by 1 does not.
  for (int j = 0; j < 200; ++j) p.probs[120 * 200 + j] = j == 0 ? 0x3f00 /*0.5*/ : 0;
  EXPECT_TRUE(ValidateHalfLossProblem(HalfView(p)).ok());
  p.probs[120 * 200] = 0;
  s = ValidateHalfLossProblem(HalfView(p));
  EXPECT_NE(s.message().find("row 120 sums to 0; each row must sum to 1 within 0.78125 (bfloat16"), std::string::npos) << s;
  Problem q = MakeProblem(t, {300, 5}, false, Reduction::kMean, false, 0.0, false, false, 6);
  q.ids[299] = 5;
  s = ValidateHalfLossProblem(HalfView(q));
  EXPECT_NE(s.message().find("targets.class_indices[299] is 5, outside [0, 5)"), std::string::npos) << s;
}

TEST(HalfRowsTest, CancellationStopsTheBlocks) {
  const Problem p = MakeProblem(HalfType::kFloat16, {2000, 1000}, false, Reduction::kMean, false, 0.0, false, false, 7);
  std::vector<uint16_t> loss(1), grad(p.logits.size());
  ExecContext ctx;
  ctx.is_cancelled = [] { return true; };
  const auto s = HalfCrossEntropy(HalfView(p), {}, Method::kFused,
                                  {absl::MakeSpan(loss), HalfMatrixOut(grad.data(), p.n, p.c)}, ctx);
  EXPECT_EQ(s.status().code(), absl::StatusCode::kCancelled);
}

}  // namespace
}  // namespace gradserve
