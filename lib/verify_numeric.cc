// NumericGradient: the reference the analytic gradient is checked against.
//
// Row i's loss is l(z) = s·logsumexp(z) - <q, z> (q its weighted, smoothed target distribution,
// s = Σ q). Moving one logit z_j by d changes one term of the row's shifted sum of exponentials,
// S = Σ_k e^(z_k - m), into S + e_j·(e^d - 1) with e_j = e^(z_j - m), so
//   l(z + d·e_j) = s·(m + log(S + e_j·(e^d - 1))) - <q, z> - d·q_j
// costs O(1) once the row's sums are known: each logit is still perturbed in turn, but the whole
// numeric gradient is O(batch · classes) instead of re-summing a row per perturbation.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "Eigen/Core"
#include "absl/strings/str_format.h"
#include "base/status_macros.h"
#include "lib/verify.h"
#include "lib/verify_numeric.h"
#include "lib/verify_rows.h"

namespace gradserve {
namespace {

using verify_internal::LossScale;
using verify_internal::BlockRows;
using verify_internal::TargetRows;

constexpr double kComplexStep = 1e-20;
constexpr double kMachineEpsilon = std::numeric_limits<double>::epsilon();

// What every perturbation of one row shares.
struct RowSums {
  double max;     // m, the row's largest logit
  double sum;     // S = Σ_k e^(z_k - m), at least 1
  double s;       // Σ_k q_k
  double abs_qz;  // Σ_k |q_k z_k|, the size of the loss's linear term
};

// Fills e with e^(z - m) and returns the row's sums.
RowSums SumRow(const double* z, const double* q, int64_t c, double* e) {
  const Eigen::Map<const Eigen::ArrayXd> zr(z, c), qr(q, c);
  Eigen::Map<Eigen::ArrayXd> er(e, c);
  const double m = zr.maxCoeff();
  er = (zr - m).exp();
  return {m, er.sum(), qr.sum(), (qr * zr).abs().sum()};
}

// Im l(z + ih·e_j) / h for every j. With d = ih, S' = S + e_j(cos h - 1) + i·e_j sin h, whose
// argument atan2(e_j sin h, S + e_j(cos h - 1)) is the imaginary part of log S'; no difference of
// nearby numbers is formed, so each entry is exact to rounding. (For h = 1e-20, cos h - 1 is
// -2 sin²(h/2) ≈ -5e-41: it vanishes beside S >= 1, as it would in the complex arithmetic.)
void ComplexStepRow(const RowSums& r, const double* e, const double* q, int64_t c, double scale,
                    double* out) {
  const double h = kComplexStep;
  const double sin_h = std::sin(h);
  const double cos_h_minus_1 = -2.0 * std::sin(h / 2) * std::sin(h / 2);
  const Eigen::Map<const Eigen::ArrayXd> er(e, c), qr(q, c);
  Eigen::Map<Eigen::ArrayXd> arg(out, c);
  // arg(x + iy) for x > 0 is atan2(y, x) = atan(y/x), and atan t = t - t³/3 + … rounds to t
  // once |t| < 2^-30 (t²/3 < 2^-61). Here e_j <= S, so |y/x| <= sin h / (1 + cos h - 1) ≈ 1e-20:
  // the argument is the quotient, formed for the whole row at once.
  arg = (er * sin_h) / (r.sum + er * cos_h_minus_1);
  arg = scale * ((r.s * arg - h * qr) / h);  // Im l / h, with Im l = s·arg - h·q_j
}

// Central-difference step for one row: the step a difference of two evaluated losses needs,
// balancing their rounding, eps·R/h with R the size of the terms the loss is formed from, against
// truncation, h²/6·M3 with M3 = s/(6√3) the bound on the third derivative of s·logsumexp along
// one coordinate; minimising the sum gives h = ∛(3·eps·R/M3). The difference below is formed
// without that rounding, so this step only errs on the safe side: what is left is truncation,
// at most h²/6 relative to s·a_j.
double RowStep(const RowSums& r) {
  if (!(r.s > 0.0)) return std::cbrt(kMachineEpsilon);
  const double size = std::max(r.s * (std::abs(r.max) + std::abs(std::log(r.sum))) + r.abs_qz, r.s);
  const double m3 = r.s / (6.0 * std::sqrt(3.0));
  return std::cbrt(3.0 * kMachineEpsilon * size / m3);
}

// (l(z + h·e_j) - l(z - h·e_j)) / 2h for every j. The two losses share everything but one term,
// so their difference is formed directly rather than by subtracting two losses of size R:
//   s·log((S + e_j·expm1(h)) / (S + e_j·expm1(-h))) - 2h·q_j
//   = s·log1p(e_j·2·sinh(h) / (S + e_j·expm1(-h))) - 2h·q_j,
// where S + e_j·expm1(-h) >= S·e^-h > 0 (e_j <= S).
void CentralDifferenceRow(const RowSums& r, const double* e, const double* q, int64_t c,
                          double scale, double h, double* out) {
  const double two_sinh = 2.0 * std::sinh(h), down = std::expm1(-h);
  for (int64_t j = 0; j < c; ++j) {
    const double diff = r.s * std::log1p(e[j] * two_sinh / (r.sum + e[j] * down)) - 2.0 * h * q[j];
    out[j] = scale * (diff / (2.0 * h));
  }
}

absl::Status ValidateEpsilon(double epsilon) {
  if (std::isfinite(epsilon) && epsilon >= 0.0) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrFormat(
      "epsilon is %g; it must be finite and >= 0 (0 means the default)", epsilon));
}

}  // namespace

namespace verify_internal {

absl::StatusOr<double> NumericGradientOfValid(const LossProblem<double>& p, NumericMethod method,
                                              double epsilon, MatrixMap<double> out,
                                              const ExecContext& ctx) {
  const int64_t n = p.logits.rows(), c = p.logits.cols();
  const double scale = LossScale(p);
  const bool complex_step = method == NumericMethod::kComplexStep;
  std::vector<double> row_step(n, 0.0);

  GRADSERVE_RETURN_IF_ERROR(ParallelForRows(n, c, ctx, [&](int64_t begin, int64_t end) {
    const int64_t block = BlockRows(c);
    std::vector<double> e(c), q(block * c);
    for (int64_t first = begin; first < end; first += block) {
      const int64_t last = std::min(end, first + block);
      TargetRows(p, first, last, q.data());
      for (int64_t i = first; i < last; ++i) {
        double* row_out = out.row(i).data();
        if (IsIgnoredRow(p, i)) {  // the loss does not depend on an ignored row
          std::fill(row_out, row_out + c, 0.0);
          continue;
        }
        const double* qi = q.data() + (i - first) * c;
        const RowSums sums = SumRow(p.logits.row(i).data(), qi, c, e.data());
        if (complex_step) {
          ComplexStepRow(sums, e.data(), qi, c, scale, row_out);
          row_step[i] = kComplexStep;
        } else {
          const double h = epsilon > 0.0 ? epsilon : RowStep(sums);
          CentralDifferenceRow(sums, e.data(), qi, c, scale, h, row_out);
          row_step[i] = h;
        }
      }
    }
  }));
  const double used = n == 0 ? 0.0 : *std::max_element(row_step.begin(), row_step.end());
  if (used > 0.0) return used;
  // No row was perturbed: report the step the method would have used.
  return complex_step ? kComplexStep : epsilon > 0.0 ? epsilon : std::cbrt(kMachineEpsilon);
}

}  // namespace verify_internal

absl::StatusOr<double> NumericGradient(const LossProblem<double>& p, NumericMethod method,
                                       double epsilon, MatrixMap<double> out,
                                       const ExecContext& ctx) {
  GRADSERVE_RETURN_IF_ERROR(ValidateLossProblem(p));
  GRADSERVE_RETURN_IF_ERROR(ValidateEpsilon(epsilon));
  if (out.rows() != p.logits.rows() || out.cols() != p.logits.cols()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "numeric gradient output has shape [%d, %d], expected [%d, %d]", out.rows(), out.cols(),
        p.logits.rows(), p.logits.cols()));
  }
  return verify_internal::NumericGradientOfValid(p, method, epsilon, out, ctx);
}

}  // namespace gradserve
