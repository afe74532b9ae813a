#include "lib/verify.h"

#include <algorithm>
#include <cmath>
#include <complex>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "lib/softmax.h"
#include "lib/status_macros.h"
#include "lib/verify_util.h"

namespace gradserve {
namespace {

constexpr double kComplexStep = 1e-20;
constexpr double kMachineEpsilon = std::numeric_limits<double>::epsilon();

absl::Status ValidateTolerance(const char* name, double v) {
  if (std::isfinite(v) && v >= 0.0) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrFormat("%s is %g; it must be finite and >= 0 (0 means the default)", name, v));
}

// Central-difference step for one row: balances rounding, eps·R/h with R the size of the terms
// the loss is formed from, against truncation, h²/6·M3 with M3 = s/(6√3) the bound on the third
// derivative of s·logsumexp along one coordinate. Minimising the sum gives h = ∛(3·eps·R/M3).
double RowStep(double s, double max, double log_sum, double abs_qz) {
  if (!(s > 0.0)) return std::cbrt(kMachineEpsilon);
  const double r = std::max(s * (std::abs(max) + std::abs(log_sum)) + abs_qz, s);
  const double m3 = s / (6.0 * std::sqrt(3.0));
  return std::cbrt(3.0 * kMachineEpsilon * r / m3);
}

std::string Position(const VerifyOptions& o, int64_t row, int64_t cls) {
  return o.unbatched ? absl::StrFormat("at class %d", cls)
                     : absl::StrFormat("at row %d, class %d", row, cls);
}

const char* MethodName(NumericMethod m) {
  return m == NumericMethod::kComplexStep ? "complex step" : "central difference";
}

std::string Summary(const VerifyRequest& req, const VerifyResult& r, bool numeric_ok) {
  const VerifyOptions& o = req.options;
  const int64_t c = req.problem.logits.cols();
  std::vector<std::string> parts;
  parts.push_back(r.ok ? "Gradient verified" : "Gradient NOT verified");
  const bool has_candidate = req.candidate_grad != nullptr || req.candidate_jacobian != nullptr;
  if (req.candidate_grad != nullptr) {
    if (r.analytic_grad.size() == 0) {
      parts.push_back("candidate_grad is empty, as is the true gradient of an empty batch");
    } else {
      const int64_t k = r.worst_row * c + r.worst_class;
      parts.push_back(absl::StrFormat(
          "candidate_grad is %s: largest error %.6g %s (candidate %.6g, expected %.6g)",
          r.candidate_ok ? "right" : "wrong",
          MaxAbsDiff(req.candidate_grad, r.analytic_grad.data(), r.analytic_grad.size()),
          Position(o, r.worst_row, r.worst_class), req.candidate_grad[k], r.analytic_grad.data()[k]));
    }
  }
  if (req.candidate_jacobian != nullptr) {
    parts.push_back(absl::StrCat("candidate_jacobian is ", r.candidate_jacobian_ok ? "right" : "wrong"));
  }
  if (!has_candidate) parts.push_back("no candidate was given");
  parts.push_back(absl::StrFormat(
      "analytic vs numeric (%s, step %.3g): max abs error %.3g%s, max rel error %.3g, %s rtol %g, "
      "atol %g",
      MethodName(o.numeric_method), r.epsilon_used, r.max_abs_error,
      has_candidate ? "" : " " + Position(o, r.worst_row, r.worst_class), r.max_rel_error,
      numeric_ok ? "within" : "NOT within", o.rtol, o.atol));
  for (const Finding& f : r.findings) {
    parts.push_back(absl::StrFormat("%s (residual %.3g): %s", FindingCodeName(f.code), f.residual,
                                    f.message));
  }
  return absl::StrCat(absl::StrJoin(parts, ". "), ".");
}

}  // namespace

absl::StatusOr<double> NumericGradient(const LossProblem<double>& p, NumericMethod method,
                                       double epsilon, MatrixMap<double> out,
                                       const ExecContext& ctx) {
  GRADSERVE_RETURN_IF_ERROR(ValidateLossProblem(p));
  GRADSERVE_RETURN_IF_ERROR(ValidateTolerance("epsilon", epsilon));
  const int64_t n = p.logits.rows(), c = p.logits.cols();
  if (out.rows() != n || out.cols() != c) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "numeric gradient output has shape [%d, %d], expected [%d, %d]", out.rows(), out.cols(), n, c));
  }
  RowMatrix<double> q(n, c);
  TargetDistribution<double>(p, View(q));
  const double denominator = MeanDenominator(p);
  // dL/dl_i of the differentiated loss L = Σ_i scale·l_i (NONE: the sum of the row losses).
  const double scale = p.options.reduction != Reduction::kMean ? 1.0
                       : denominator == 0.0 ? std::numeric_limits<double>::quiet_NaN()
                                            : 1.0 / denominator;
  const bool complex_step = method == NumericMethod::kComplexStep;
  std::vector<double> row_step(n, 0.0);

  GRADSERVE_RETURN_IF_ERROR(ParallelForRows(n, c, ctx, [&](int64_t begin, int64_t end) {
    Eigen::ArrayXd e(c);
    for (int64_t i = begin; i < end; ++i) {
      if (IsIgnoredRow(p, i)) {  // the loss does not depend on an ignored row
        out.row(i).setZero();
        continue;
      }
      const auto z = p.logits.row(i).array();
      const auto qi = q.row(i).array();
      const double m = z.maxCoeff();
      e = (z - m).exp().transpose();
      const double sum = e.sum();
      const double s = qi.sum();
      const double qz = (qi * z).sum();
      // The row's loss with logit j moved by d: only the j-th term of the sum changes.
      if (complex_step) {
        const double h = kComplexStep;
        const std::complex<double> expm1_ih(-2.0 * std::pow(std::sin(h / 2), 2), std::sin(h));
        for (int64_t j = 0; j < c; ++j) {
          const std::complex<double> shifted = std::complex<double>(sum) + e[j] * expm1_ih;
          const std::complex<double> loss =
              s * (m + std::log(shifted)) - qz - std::complex<double>(0.0, h) * qi[j];
          out(i, j) = scale * loss.imag() / h;
        }
        row_step[i] = h;
      } else {
        const double h = epsilon > 0.0 ? epsilon
                                       : RowStep(s, m, std::log(sum), (qi * z).abs().sum());
        const double up = std::expm1(h), down = std::expm1(-h);
        for (int64_t j = 0; j < c; ++j) {
          const double loss_up = s * (m + std::log(sum + e[j] * up)) - qz - h * qi[j];
          const double loss_down = s * (m + std::log(sum + e[j] * down)) - qz + h * qi[j];
          out(i, j) = scale * (loss_up - loss_down) / (2.0 * h);
        }
        row_step[i] = h;
      }
    }
  }));
  const double used = n == 0 ? 0.0 : *std::max_element(row_step.begin(), row_step.end());
  if (used > 0.0) return used;
  // No row was perturbed: report the step the method would have used.
  return complex_step ? kComplexStep : epsilon > 0.0 ? epsilon : std::cbrt(kMachineEpsilon);
}

absl::StatusOr<VerifyResult> VerifyGradient(const VerifyRequest& req, const ExecContext& ctx) {
  const LossProblem<double>& p = req.problem;
  const VerifyOptions& o = req.options;
  GRADSERVE_RETURN_IF_ERROR(ValidateTolerance("rtol", o.rtol));
  GRADSERVE_RETURN_IF_ERROR(ValidateTolerance("atol", o.atol));
  GRADSERVE_RETURN_IF_ERROR(ValidateLossProblem(p));
  const int64_t n = p.logits.rows(), c = p.logits.cols();

  VerifyResult r;
  RowMatrix<double> a(n, c);
  GRADSERVE_RETURN_IF_ERROR(Softmax<double>(p.logits, View(a), NoMatrix<double>(), ctx));
  r.analytic_grad.resize(n, c);
  GRADSERVE_RETURN_IF_ERROR(
      CrossEntropy<double>(p, {}, Method::kFused, {{}, View(r.analytic_grad)}, ctx).status());
  r.numeric_grad.resize(n, c);
  GRADSERVE_ASSIGN_OR_RETURN(r.epsilon_used,
                             NumericGradient(p, o.numeric_method, o.epsilon, View(r.numeric_grad), ctx));

  const int64_t size = n * c;
  const double* analytic = r.analytic_grad.data();
  int64_t worst = 0;
  r.max_abs_error = MaxAbsDiff(analytic, r.numeric_grad.data(), size, &worst);
  for (int64_t k = 0; k < size; ++k) {
    const double x = analytic[k], y = r.numeric_grad.data()[k];
    const double den = std::max(std::abs(x), std::abs(y));
    if (den != 0.0 && !std::isnan(den)) r.max_rel_error = std::max(r.max_rel_error, std::abs(x - y) / den);
  }
  const bool numeric_ok = AllClose(analytic, r.numeric_grad.data(), size, o.rtol, o.atol);
  bool candidates_ok = true;

  if (req.candidate_grad != nullptr) {
    r.candidate_max_abs_error = MaxAbsDiff(req.candidate_grad, analytic, size, &worst);
    r.candidate_ok = AllClose(req.candidate_grad, analytic, size, o.rtol, o.atol);
    candidates_ok = r.candidate_ok;
    if (!r.candidate_ok) r.findings = ExplainGradient(p, o, a, r.analytic_grad, req.candidate_grad, ctx);
  }
  if (req.candidate_jacobian != nullptr) {
    std::vector<double> jacobian(n * c * c);
    GRADSERVE_RETURN_IF_ERROR(SoftmaxJacobian<double>(ConstView(a), jacobian.data(), ctx));
    int64_t worst_entry = 0;
    const double err = MaxAbsDiff(req.candidate_jacobian, jacobian.data(), jacobian.size(), &worst_entry);
    r.candidate_max_abs_error = std::max(r.candidate_max_abs_error, err);
    r.candidate_jacobian_ok =
        AllClose(req.candidate_jacobian, jacobian.data(), jacobian.size(), o.rtol, o.atol);
    candidates_ok = candidates_ok && r.candidate_jacobian_ok;
    if (req.candidate_grad == nullptr) worst = c == 0 ? 0 : worst_entry / c;  // row·C + class
    if (!r.candidate_jacobian_ok) {
      std::vector<Finding> more = ExplainJacobian(p, o, a, jacobian, req.candidate_jacobian, ctx);
      std::move(more.begin(), more.end(), std::back_inserter(r.findings));
    }
  }
  if (IsCancelled(ctx)) return absl::CancelledError("computation cancelled by the caller");
  r.ok = numeric_ok && candidates_ok;
  r.worst_row = c == 0 ? 0 : worst / c;
  r.worst_class = c == 0 ? 0 : worst % c;
  r.summary = Summary(req, r, numeric_ok);
  return r;
}

}  // namespace gradserve
