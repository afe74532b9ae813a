#include "lib/verify.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "base/status_macros.h"
#include "lib/softmax.h"
#include "lib/verify_numeric.h"
#include "lib/verify_util.h"

namespace gradserve {
namespace {

absl::Status ValidateTolerance(const char* name, double v) {
  if (std::isfinite(v) && v >= 0.0) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrFormat("%s is %g; it must be finite and >= 0 (0 means the default)", name, v));
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

absl::StatusOr<VerifyResult> VerifyGradient(const VerifyRequest& req, const ExecContext& ctx) {
  const LossProblem<double>& p = req.problem;
  const VerifyOptions& o = req.options;
  GRADSERVE_RETURN_IF_ERROR(ValidateTolerance("rtol", o.rtol));
  GRADSERVE_RETURN_IF_ERROR(ValidateTolerance("atol", o.atol));
  GRADSERVE_RETURN_IF_ERROR(ValidateLossProblem(p, o.unbatched));
  GRADSERVE_RETURN_IF_ERROR(ValidateTolerance("epsilon", o.epsilon));
  const int64_t n = p.logits.rows(), c = p.logits.cols();

  VerifyResult r;
  // softmax(z) is needed only to explain a wrong candidate or to check a Jacobian.
  RowMatrix<double> a;
  bool have_a = false;
  auto probabilities = [&]() -> absl::Status {
    if (have_a) return absl::OkStatus();
    have_a = true;
    a.resize(n, c);
    return Softmax<double>(p.logits, View(a), NoMatrix<double>(), ctx);
  };
  r.analytic_grad.resize(n, c);
  GRADSERVE_RETURN_IF_ERROR(
      CrossEntropy<double>(p, {}, Method::kFused, {{}, View(r.analytic_grad)}, ctx).status());
  r.numeric_grad.resize(n, c);
  GRADSERVE_ASSIGN_OR_RETURN(r.epsilon_used, verify_internal::NumericGradientOfValid(
                                                 p, o.numeric_method, o.epsilon, View(r.numeric_grad), ctx));

  const int64_t size = n * c;
  const double* analytic = r.analytic_grad.data();
  const Comparison numeric = Compare(analytic, r.numeric_grad.data(), size, o.rtol, o.atol);
  r.max_abs_error = numeric.max_abs;
  r.max_rel_error = numeric.max_rel;
  int64_t worst = numeric.argmax;
  bool candidates_ok = true;

  if (req.candidate_grad != nullptr) {
    const Comparison cand = Compare(req.candidate_grad, analytic, size, o.rtol, o.atol);
    r.candidate_max_abs_error = cand.max_abs;
    worst = cand.argmax;
    r.candidate_ok = cand.all_close;
    candidates_ok = r.candidate_ok;
    if (!r.candidate_ok) {
      GRADSERVE_RETURN_IF_ERROR(probabilities());
      r.findings = ExplainGradient(p, o, a, r.analytic_grad, req.candidate_grad, ctx);
    }
  }
  if (req.candidate_jacobian != nullptr) {
    GRADSERVE_RETURN_IF_ERROR(probabilities());
    std::vector<double> jacobian(n * c * c);
    GRADSERVE_RETURN_IF_ERROR(SoftmaxJacobian<double>(ConstView(a), jacobian.data(), ctx));
    const Comparison cand = Compare(req.candidate_jacobian, jacobian.data(),
                                    static_cast<int64_t>(jacobian.size()), o.rtol, o.atol);
    r.candidate_max_abs_error = std::max(r.candidate_max_abs_error, cand.max_abs);
    r.candidate_jacobian_ok = cand.all_close;
    candidates_ok = candidates_ok && r.candidate_jacobian_ok;
    if (req.candidate_grad == nullptr) worst = c == 0 ? 0 : cand.argmax / c;  // row·C + class
    if (!r.candidate_jacobian_ok) {
      std::vector<Finding> more = ExplainJacobian(p, o, a, jacobian, req.candidate_jacobian, ctx);
      std::move(more.begin(), more.end(), std::back_inserter(r.findings));
    }
  }
  if (IsCancelled(ctx)) return absl::CancelledError("computation cancelled by the caller");
  r.ok = numeric.all_close && candidates_ok;
  r.worst_row = c == 0 ? 0 : worst / c;
  r.worst_class = c == 0 ? 0 : worst % c;
  r.summary = Summary(req, r, numeric.all_close);
  return r;
}

}  // namespace gradserve
