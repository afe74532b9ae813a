// Gradient verification: checks the analytic gradient of softmax cross-entropy against a numeric
// derivative of the loss, checks a caller's candidate gradient and Jacobian, and explains a wrong
// candidate by the known mistake that produces it.
//
// Pass rule (numpy.allclose): an element x passes against its reference r when
// |x - r| <= atol + rtol·|r|. Everything is computed in float64.
//
// The numeric derivative differentiates L = Σ_i c·l_i (c = 1/denominator for MEAN, else 1; NONE
// differentiates the sum of the row losses). Moving one logit z_ij by d changes one term of the
// row's sum of exponentials, S_i' = S_i + e^(z_ij - m_i)·expm1(d), so each perturbed loss costs
// O(1) and the whole numeric gradient O(batch · classes):
//   kComplexStep        Im l(z + ih e_j) / h with h = 1e-20: no subtractive cancellation, exact
//                       to rounding for this analytic loss.
//   kCentralDifference  (l(z + h e_j) - l(z - h e_j)) / 2h with a step per row chosen from the
//                       scale of the row's loss (or the caller's epsilon); the two losses'
//                       difference is formed as one log1p, without cancellation, so its error is
//                       the truncation alone.
//
//   VerifyRequest req{problem, candidate.data(), nullptr, VerifyOptions{}};
//   absl::StatusOr<VerifyResult> r = VerifyGradient(req, ExecContext{});
//   if (r.ok() && !r->candidate_ok) std::cout << r->summary;
#ifndef GRADSERVE_LIB_VERIFY_H_
#define GRADSERVE_LIB_VERIFY_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "lib/cross_entropy.h"
#include "lib/parallel.h"
#include "lib/tensor.h"

namespace gradserve {

enum class NumericMethod { kComplexStep, kCentralDifference };

// Numbered as the proto's FindingCode.
enum class FindingCode {
  kJacobianAtLogits = 1,         // softmax' evaluated at z instead of a = softmax(z)
  kDiagonalOnlyJacobian = 2,     // off-diagonal -a_i a_j terms dropped
  kGradientWrtProbabilities = 3, // returned dL/dA, not dL/dz
  kSignFlipped = 4,              // t - a instead of a - t
  kMeanScale = 5,                // the 1/N of the mean reduction is missing or extra
  kSoftmaxNotApplied = 6,        // z - t: logits used as probabilities
  kOptionIgnored = 7,            // weights, smoothing or ignore_index left out
  kUnexplained = 8,              // wrong, and matches none of the known mistakes
};

// "JACOBIAN_AT_LOGITS", ...
const char* FindingCodeName(FindingCode code);

struct Finding {
  FindingCode code;
  std::string message;   // what was done wrong, and the right formula with numbers
  // What the mistake produces for this input: [batch, classes] for a candidate gradient,
  // [batch, classes, classes] for a candidate Jacobian, empty for kUnexplained.
  std::vector<double> mistaken;
  bool is_jacobian = false;
  double residual = 0.0;  // max |candidate - mistaken| (the candidate's error for kUnexplained)
};

struct VerifyOptions {
  NumericMethod numeric_method = NumericMethod::kComplexStep;
  double epsilon = 0.0;  // central-difference step; 0: chosen per row
  double rtol = 1e-5;
  double atol = 1e-8;
  bool unbatched = false;  // only changes how positions are worded in messages
};

struct VerifyRequest {
  LossProblem<double> problem;
  const double* candidate_grad = nullptr;      // [batch, classes], or null
  const double* candidate_jacobian = nullptr;  // [batch, classes, classes], or null
  VerifyOptions options;
};

struct VerifyResult {
  bool ok = false;  // analytic == numeric, and every candidate given == the truth
  RowMatrix<double> analytic_grad;
  RowMatrix<double> numeric_grad;
  double max_abs_error = 0.0;  // analytic vs numeric
  double max_rel_error = 0.0;  // max |a - n| / max(|a|, |n|) where that is non-zero
  bool candidate_ok = false;   // false when no candidate_grad was given
  double candidate_max_abs_error = 0.0;
  bool candidate_jacobian_ok = false;
  std::vector<Finding> findings;
  int64_t worst_row = 0;    // largest candidate error (else analytic vs numeric)
  int64_t worst_class = 0;
  double epsilon_used = 0.0;  // the largest step used, or the complex step h
  std::string summary;        // one paragraph: verdict, largest error and where, findings
};

// Validates the problem and tolerances, then verifies. Work is O(batch · classes) for the
// gradients and O(batch · classes²) when a candidate Jacobian is given.
absl::StatusOr<VerifyResult> VerifyGradient(const VerifyRequest& request, const ExecContext& ctx);

// The numeric gradient alone (used by VerifyGradient); returns the step used.
absl::StatusOr<double> NumericGradient(const LossProblem<double>& problem, NumericMethod method,
                                       double epsilon, MatrixMap<double> out,
                                       const ExecContext& ctx);

// The findings that explain a wrong candidate: every known mistake whose output matches it
// within the tolerances (the simplest combination when no single one does), or one kUnexplained.
// `a` is softmax(logits), `truth` the analytic gradient (or Jacobian). ExplainGradient costs
// O(batch · classes) per known mistake, forming each mistaken gradient row by row (J(z)·g as
// z ⊙ g - z·<z, g>), and ExplainJacobian O(batch · classes²). Exposed for tests; VerifyGradient
// calls them. They poll `ctx.is_cancelled` between candidate mistakes (and ExplainGradient
// between blocks of rows) and return nothing once it fires.
std::vector<Finding> ExplainGradient(const LossProblem<double>& problem, const VerifyOptions& opts,
                                     const RowMatrix<double>& a, const RowMatrix<double>& truth,
                                     const double* candidate, const ExecContext& ctx = {});
std::vector<Finding> ExplainJacobian(const LossProblem<double>& problem, const VerifyOptions& opts,
                                     const RowMatrix<double>& a, const std::vector<double>& truth,
                                     const double* candidate, const ExecContext& ctx = {});

}  // namespace gradserve

#endif  // GRADSERVE_LIB_VERIFY_H_
