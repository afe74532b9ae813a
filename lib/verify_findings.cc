// Explaining a wrong candidate: the known mistakes are re-enacted on the caller's input
// (verify_mistakes.h) and the simplest explanations that match become findings, each with a
// message that shows the worst row and the right formula with its numbers.
#include <algorithm>
#include <cmath>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "lib/cross_entropy.h"
#include "lib/softmax.h"
#include "lib/verify.h"
#include "lib/verify_mistakes.h"
#include "lib/verify_util.h"

namespace gradserve {
namespace {

using verify_internal::BaseMistake;
using verify_internal::Explanation;
using verify_internal::MistakeSearch;

// "a - t", "0.25·(a - t)" or "dL/dz": how the true row relates to a - t.
std::string TruthFormula(const LossProblem<double>& p, const RowMatrix<double>& a,
                         const RowMatrix<double>& truth, int64_t i) {
  if (IsIgnoredRow(p, i)) return "0 (the row is ignored)";
  Eigen::RowVectorXd t = Eigen::RowVectorXd::Zero(a.cols());
  if (p.targets.is_probabilities) {
    t = p.targets.probabilities.row(i);
  } else {
    t[p.targets.class_indices[i]] = 1.0;
  }
  const Eigen::RowVectorXd d = a.row(i) - t;
  const double nn = d.squaredNorm();
  if (nn == 0.0) return "dL/dz";
  const double k = truth.row(i).dot(d) / nn;
  const Eigen::RowVectorXd fit = k * d;
  if (!AllClose(truth.row(i).data(), fit.data(), d.size(), 1e-9, 1e-12)) return "dL/dz";
  return std::abs(k - 1.0) < 1e-12 ? "a - t" : absl::StrFormat("%.6g·(a - t)", k);
}

// The numbers a message shows: the row where the candidate is furthest from the truth.
struct RowTexts {
  std::string row;        // " (row 3)", or empty for one row
  std::string candidate;  // the candidate's row
  std::string a, z, truth;
  std::string right;      // "J(a) with a = ... gives ... = a - t"
  double error = 0.0;     // max |candidate - truth| over the whole gradient
};

RowTexts WorstRowTexts(const LossProblem<double>& p, const VerifyOptions& o,
                       const RowMatrix<double>& a, const RowMatrix<double>& truth,
                       const double* candidate) {
  RowTexts t;
  int64_t worst = 0;
  t.error = MaxAbsDiff(candidate, truth.data(), truth.size(), &worst);
  const int64_t c = truth.cols(), i = c == 0 ? 0 : worst / c;
  t.row = o.unbatched || truth.rows() == 1 ? "" : absl::StrFormat(" (row %d)", i);
  t.candidate = FormatVector(candidate + i * c, c);
  t.a = FormatVector(a.row(i).data(), c);
  t.z = FormatVector(p.logits.row(i).data(), c);
  t.truth = FormatVector(truth.row(i).data(), c);
  t.right = absl::StrFormat("J(a) with a = %s gives %s = %s", t.a, t.truth, TruthFormula(p, a, truth, i));
  return t;
}

// Completes "candidate <row> ...": what the part of `e` that `code` names did wrong.
std::string What(FindingCode code, const Explanation& e, const RowTexts& t) {
  switch (code) {
    case FindingCode::kJacobianAtLogits:
      return absl::StrFormat(
          "matches the chain rule with the softmax Jacobian evaluated at the logits z = %s instead "
          "of at a = softmax(z): J(z) = diag(z) - z z^T times dL/dA; the correct %s", t.z, t.right);
    case FindingCode::kDiagonalOnlyJacobian:
      return absl::StrFormat("matches diag(a - a^2) times dL/dA: the off-diagonal -a_i a_j terms of "
                             "the softmax Jacobian were dropped; the full %s", t.right);
    case FindingCode::kGradientWrtProbabilities:
      return absl::StrFormat("is dL/dA, the gradient with respect to the probabilities a = "
                             "softmax(z), not the logits; multiplying it by %s", t.right);
    case FindingCode::kSoftmaxNotApplied:
      return absl::StrFormat("matches z - t: the logits z = %s were used as probabilities without "
                             "softmax; with a = softmax(z) = %s the gradient is %s", t.z, t.a, t.truth);
    case FindingCode::kOptionIgnored:
      return absl::StrFormat(
          "matches the gradient computed without %s; with every option applied the row is %s",
          absl::StrJoin(e.dropped.names, ", "), t.truth);
    case FindingCode::kSignFlipped:
      return absl::StrFormat("has the opposite sign: t - a instead of a - t; %s", t.right);
    case FindingCode::kMeanScale:
      return absl::StrFormat("is the true gradient times %.6g: %s; %s", e.scale.factor, e.scale.why,
                             t.right);
    default:
      return "";
  }
}

// For each code, the explanation with the smallest residual among those with the fewest codes:
// a single mistake is never reported as a combination.
std::map<FindingCode, const Explanation*> Simplest(const std::vector<Explanation>& found) {
  size_t fewest = SIZE_MAX;
  for (const Explanation& e : found) fewest = std::min(fewest, e.codes.size());
  std::map<FindingCode, const Explanation*> best;
  for (const Explanation& e : found) {
    if (e.codes.size() != fewest) continue;
    for (FindingCode code : e.codes) {
      const Explanation*& slot = best[code];
      if (slot == nullptr || e.residual < slot->residual) slot = &e;
    }
  }
  return best;
}

std::string Together(FindingCode code, const Explanation& e) {
  std::vector<std::string> others;
  for (FindingCode other : e.codes) {
    if (other != code) others.push_back(FindingCodeName(other));
  }
  return others.empty() ? "" : absl::StrCat(" (together with ", absl::StrJoin(others, ", "), ")");
}

}  // namespace

const char* FindingCodeName(FindingCode code) {
  switch (code) {
    case FindingCode::kJacobianAtLogits: return "JACOBIAN_AT_LOGITS";
    case FindingCode::kDiagonalOnlyJacobian: return "DIAGONAL_ONLY_JACOBIAN";
    case FindingCode::kGradientWrtProbabilities: return "GRADIENT_WRT_PROBABILITIES";
    case FindingCode::kSignFlipped: return "SIGN_FLIPPED";
    case FindingCode::kMeanScale: return "MEAN_SCALE";
    case FindingCode::kSoftmaxNotApplied: return "SOFTMAX_NOT_APPLIED";
    case FindingCode::kOptionIgnored: return "OPTION_IGNORED";
    case FindingCode::kUnexplained: return "UNEXPLAINED";
  }
  return "UNSPECIFIED";
}

std::vector<Finding> ExplainGradient(const LossProblem<double>& p, const VerifyOptions& o,
                                     const RowMatrix<double>& a, const RowMatrix<double>& truth,
                                     const double* candidate, const ExecContext& ctx) {
  const MistakeSearch search(p, o, a, truth);
  const absl::StatusOr<std::vector<Explanation>> found = search.Run(candidate, ctx);
  if (!found.ok()) return {};  // cancelled
  const RowTexts texts = WorstRowTexts(p, o, a, truth, candidate);
  std::vector<Finding> findings;
  std::map<const Explanation*, std::vector<double>> formed;  // one gradient per explanation
  for (const auto& [code, e] : Simplest(*found)) {  // ascending codes
    auto it = formed.find(e);
    if (it == formed.end()) {
      absl::StatusOr<std::vector<double>> mistaken = search.MistakenGradient(*e, ctx);
      if (!mistaken.ok()) return {};  // cancelled
      it = formed.emplace(e, *std::move(mistaken)).first;
    }
    findings.push_back({code,
                        absl::StrCat("candidate", texts.row, " ", texts.candidate, " ",
                                     What(code, *e, texts), Together(code, *e)),
                        it->second, false, e->residual});
  }
  if (findings.empty()) {
    findings.push_back({FindingCode::kUnexplained,
                        absl::StrFormat("candidate%s %s differs from the true gradient by up to "
                                        "%.6g and matches none of the known mistakes; %s",
                                        texts.row, texts.candidate, texts.error, texts.right),
                        {}, false, texts.error});
  }
  return findings;
}

std::vector<Finding> ExplainJacobian(const LossProblem<double>& p, const VerifyOptions& o,
                                     const RowMatrix<double>& a, const std::vector<double>& truth,
                                     const double* candidate, const ExecContext& ctx) {
  const int64_t n = a.rows(), c = a.cols();
  const int64_t size = static_cast<int64_t>(truth.size());
  int64_t worst = 0;
  const double error = MaxAbsDiff(candidate, truth.data(), size, &worst);
  const int64_t i = c == 0 ? 0 : worst / (c * c);
  const std::string row = o.unbatched || n == 1 ? "" : absl::StrFormat(" (row %d)", i);
  const std::string a_text = FormatVector(a.row(i).data(), c);

  std::vector<double> at_logits(size), diagonal(size, 0.0), flipped(size);
  const RowMatrix<double> z = p.logits;
  SoftmaxJacobian<double>(ConstView(z), at_logits.data(), ExecContext{.max_threads = 1}).IgnoreError();
  for (int64_t r = 0; r < n; ++r) {
    for (int64_t k = 0; k < c; ++k) diagonal[(r * c + k) * c + k] = a(r, k) - a(r, k) * a(r, k);
  }
  for (int64_t k = 0; k < size; ++k) flipped[k] = -truth[k];
  const std::pair<FindingCode, const std::vector<double>*> variants[] = {
      {FindingCode::kJacobianAtLogits, &at_logits},
      {FindingCode::kDiagonalOnlyJacobian, &diagonal},
      {FindingCode::kSignFlipped, &flipped}};

  std::vector<Finding> findings;
  for (const auto& [code, v] : variants) {
    if (IsCancelled(ctx)) return {};
    if (AllClose(v->data(), truth.data(), size, o.rtol, o.atol)) continue;
    if (!AllClose(candidate, v->data(), size, o.rtol, o.atol)) continue;
    std::string what;
    switch (code) {
      case FindingCode::kJacobianAtLogits:
        what = absl::StrFormat("diag(z) - z z^T evaluated at the logits z = %s instead of at a = "
                               "softmax(z) = %s", FormatVector(z.row(i).data(), c), a_text);
        break;
      case FindingCode::kDiagonalOnlyJacobian:
        what = absl::StrFormat("diag(a - a^2) alone: the off-diagonal -a_i a_j terms are missing "
                               "(a = %s)", a_text);
        break;
      default:
        what = "-(diag(a) - a a^T): the sign is flipped";
    }
    findings.push_back({code, absl::StrCat("candidate_jacobian", row, " matches ", what), *v, true,
                        MaxAbsDiff(candidate, v->data(), size)});
  }
  if (findings.empty()) {
    findings.push_back({FindingCode::kUnexplained,
                        absl::StrFormat("candidate_jacobian%s differs from J(a) = diag(a) - a a^T "
                                        "(a = %s) by up to %.6g and matches none of the known "
                                        "mistakes", row, a_text, error),
                        {}, true, error});
  }
  return findings;
}

}  // namespace gradserve
