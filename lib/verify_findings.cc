// Explaining a wrong candidate: each known mistake is re-enacted on the caller's input, and the
// candidate is compared with what the mistake produces.
#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <optional>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "lib/cross_entropy.h"
#include "lib/softmax.h"
#include "lib/verify.h"
#include "lib/verify_util.h"

namespace gradserve {
namespace {

// Scale of dL/dl_i in the verifier's loss: 1/denominator for MEAN (NaN if 0), else 1.
double LossScale(const LossProblem<double>& p) {
  if (p.options.reduction != Reduction::kMean) return 1.0;
  const double d = MeanDenominator(p);
  return d == 0.0 ? std::numeric_limits<double>::quiet_NaN() : 1.0 / d;
}

// The true gradient of `p` (used with options dropped).
RowMatrix<double> TrueGradient(const LossProblem<double>& p) {
  RowMatrix<double> g(p.logits.rows(), p.logits.cols());
  CrossEntropy<double>(p, {}, Method::kFused, {{}, View(g)}, ExecContext{.max_threads = 1}).IgnoreError();
  return g;
}

// dL/dA = -r·q / a (0 where r·q is 0).
RowMatrix<double> GradWrtProbabilities(const LossProblem<double>& p, const RowMatrix<double>& a) {
  RowMatrix<double> q(a.rows(), a.cols());
  TargetDistribution<double>(p, View(q));
  const double r = LossScale(p);
  RowMatrix<double> g(a.rows(), a.cols());
  for (int64_t k = 0; k < a.size(); ++k) {
    const double rq = r * q.data()[k];
    g.data()[k] = rq == 0.0 ? 0.0 : -rq / a.data()[k];
  }
  return g;
}

// r·(s·x - q) row by row: the closed form with `x` in place of softmax(z).
RowMatrix<double> ClosedFormAt(const LossProblem<double>& p, const RowMatrix<double>& x) {
  RowMatrix<double> q(x.rows(), x.cols());
  TargetDistribution<double>(p, View(q));
  const double r = LossScale(p);
  RowMatrix<double> g(x.rows(), x.cols());
  for (int64_t i = 0; i < x.rows(); ++i) {
    if (IsIgnoredRow(p, i)) {
      g.row(i).setZero();
      continue;
    }
    g.row(i) = r * (q.row(i).sum() * x.row(i) - q.row(i));
  }
  return g;
}

// J(v)ᵀ·g = v ⊙ g - v·<v, g>, row by row (J is symmetric).
RowMatrix<double> JacobianProduct(const RowMatrix<double>& v, const RowMatrix<double>& g) {
  RowMatrix<double> out(v.rows(), v.cols());
  for (int64_t i = 0; i < v.rows(); ++i) {
    const double dot = v.row(i).dot(g.row(i));
    out.row(i) = (v.row(i).array() * g.row(i).array() - v.row(i).array() * dot).matrix();
  }
  return out;
}

// The scales a mistaken reduction multiplies the true gradient by.
std::vector<std::pair<double, std::string>> ScaleMistakes(const LossProblem<double>& p) {
  const int64_t n = p.logits.rows();
  const double d = MeanDenominator(p);
  int64_t kept = 0;
  for (int64_t i = 0; i < n; ++i) kept += IsIgnoredRow(p, i) ? 0 : 1;
  std::vector<std::pair<double, std::string>> scales;
  if (p.options.reduction == Reduction::kMean) {
    scales.push_back({d, absl::StrFormat("the 1/%.6g of the mean reduction is missing", d)});
    scales.push_back({1.0 / d, absl::StrFormat("the mean's 1/%.6g is applied twice", d)});
    scales.push_back({d / n, absl::StrFormat(
        "the mean divides by the batch size %d instead of %.6g", n, d)});
    scales.push_back({d / kept, absl::StrFormat(
        "the mean divides by the %d kept rows instead of their weight sum %.6g", kept, d)});
  } else {
    const char* name = p.options.reduction == Reduction::kSum ? "SUM" : "NONE";
    scales.push_back({1.0 / n, absl::StrFormat(
        "a mean's 1/%d is applied to a %s reduction", n, name)});
    scales.push_back({1.0 / d, absl::StrFormat(
        "a mean's 1/%.6g is applied to a %s reduction", d, name)});
  }
  std::vector<std::pair<double, std::string>> out;
  for (auto& s : scales) {
    const bool seen = std::any_of(out.begin(), out.end(), [&](auto& o) { return o.first == s.first; });
    if (std::isfinite(s.first) && s.first != 0.0 && s.first != 1.0 && !seen) out.push_back(s);
  }
  return out;
}

// The problem with the options named by `drop` left out, and their names.
struct DroppedOptions {
  std::vector<std::string> names;
  bool weights = false, smoothing = false, ignore = false;
};

std::vector<DroppedOptions> OptionSubsets(const LossProblem<double>& p) {
  const LossOptions& o = p.options;
  const int64_t c = p.logits.cols();
  const bool has_weights = std::any_of(o.class_weights.begin(), o.class_weights.end(),
                                       [](double w) { return w != 1.0; });
  const bool has_smoothing = o.label_smoothing != 0.0;
  // Without ignore_index an ignored id must still be a valid class for the loss to exist.
  bool has_ignore = o.ignore_index && *o.ignore_index >= 0 && *o.ignore_index < c;
  if (has_ignore) {
    has_ignore = false;
    for (int64_t i = 0; i < p.logits.rows(); ++i) has_ignore = has_ignore || IsIgnoredRow(p, i);
  }
  std::vector<DroppedOptions> subsets;
  for (int mask = 1; mask < 8; ++mask) {
    DroppedOptions d{{}, (mask & 1) != 0, (mask & 2) != 0, (mask & 4) != 0};
    if ((d.weights && !has_weights) || (d.smoothing && !has_smoothing) || (d.ignore && !has_ignore)) continue;
    if (d.weights) d.names.push_back("class_weights");
    if (d.smoothing) d.names.push_back(absl::StrFormat("label_smoothing=%g", o.label_smoothing));
    if (d.ignore) d.names.push_back(absl::StrFormat("ignore_index=%d", *o.ignore_index));
    subsets.push_back(d);
  }
  return subsets;
}

LossProblem<double> Without(const LossProblem<double>& p, const DroppedOptions& d) {
  LossProblem<double> q = p;
  if (d.weights) q.options.class_weights = {};
  if (d.smoothing) q.options.label_smoothing = 0.0;
  if (d.ignore) q.options.ignore_index.reset();
  return q;
}

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
  const int64_t size = truth.size();
  int64_t worst = 0;
  const double error = MaxAbsDiff(candidate, truth.data(), size, &worst);
  const int64_t c = truth.cols(), i = c == 0 ? 0 : worst / c;
  const std::string row = o.unbatched || truth.rows() == 1 ? "" : absl::StrFormat(" (row %d)", i);
  const std::string cand = FormatVector(candidate + i * c, c);
  const std::string a_text = FormatVector(a.row(i).data(), c);
  const std::string z_text = FormatVector(p.logits.row(i).data(), c);
  const std::string truth_text = FormatVector(truth.row(i).data(), c);
  const std::string right = absl::StrFormat("J(a) with a = %s gives %s = %s", a_text, truth_text,
                                            TruthFormula(p, a, truth, i));
  const RowMatrix<double> z = p.logits;

  // A wrong gradient is re-enacted as a base mistake (or none) on the problem with some options
  // left out, times a sign and a scale; each part that differs from the truth is one code.
  // Explanations with the fewest codes win, so a single mistake is never reported as a combination.
  struct Match {
    std::vector<FindingCode> codes;
    std::map<FindingCode, std::string> what;  // completes "candidate ... <what>", per code
    RowMatrix<double> mistaken;
    double residual;
  };
  std::vector<Match> matches;
  std::vector<DroppedOptions> subsets = OptionSubsets(p);
  subsets.insert(subsets.begin(), DroppedOptions{});
  for (const DroppedOptions& dropped : subsets) {
    if (IsCancelled(ctx)) return {};
    const bool drops = !dropped.names.empty();
    const LossProblem<double> q = Without(p, dropped);
    const RowMatrix<double> grad_a = GradWrtProbabilities(q, a);
    // Each base's gradient is formed only when its turn comes, after a cancellation poll: for a
    // large batch each is a pass over batch x classes.
    struct Base {
      std::optional<FindingCode> code;
      std::function<RowMatrix<double>()> grad;
      std::string what;
    };
    const Base bases[] = {
        {std::nullopt, [&] { return drops ? TrueGradient(q) : truth; }, ""},
        {FindingCode::kJacobianAtLogits, [&] { return JacobianProduct(z, grad_a); },
         absl::StrFormat("matches the chain rule with the softmax Jacobian evaluated at the logits "
                         "z = %s instead of at a = softmax(z): J(z) = diag(z) - z z^T times dL/dA; "
                         "the correct %s", z_text, right)},
        {FindingCode::kDiagonalOnlyJacobian,
         [&] { return RowMatrix<double>((a.array() - a.array().square()) * grad_a.array()); },
         absl::StrFormat("matches diag(a - a^2) times dL/dA: the off-diagonal -a_i a_j terms of "
                         "the softmax Jacobian were dropped; the full %s", right)},
        {FindingCode::kGradientWrtProbabilities, [&] { return grad_a; },
         absl::StrFormat("is dL/dA, the gradient with respect to the probabilities a = softmax(z), "
                         "not the logits; multiplying it by %s", right)},
        {FindingCode::kSoftmaxNotApplied, [&] { return ClosedFormAt(q, z); },
         absl::StrFormat("matches z - t: the logits z = %s were used as probabilities without "
                         "softmax; with a = softmax(z) = %s the gradient is %s",
                         z_text, a_text, truth_text)},
    };
    std::vector<std::pair<double, std::string>> scales = {{1.0, ""}};
    for (const auto& list : {ScaleMistakes(p), ScaleMistakes(q)}) {
      for (const auto& s : list) {
        if (std::none_of(scales.begin(), scales.end(), [&](auto& x) { return x.first == s.first; })) {
          scales.push_back(s);
        }
      }
    }
    for (const Base& base : bases) {
      if (IsCancelled(ctx)) return {};
      const RowMatrix<double> base_grad = base.grad();
      for (double sign : {1.0, -1.0}) {
        for (const auto& [scale, scale_why] : scales) {
          Match m;
          if (base.code) m.what[*base.code] = base.what;
          if (drops) {
            m.what[FindingCode::kOptionIgnored] = absl::StrFormat(
                "matches the gradient computed without %s; with every option applied the row is %s",
                absl::StrJoin(dropped.names, ", "), truth_text);
          }
          if (sign < 0) m.what[FindingCode::kSignFlipped] = absl::StrFormat(
              "has the opposite sign: t - a instead of a - t; %s", right);
          if (scale != 1.0) m.what[FindingCode::kMeanScale] = absl::StrFormat(
              "is the true gradient times %.6g: %s; %s", scale, scale_why, right);
          if (m.what.empty()) continue;  // the truth itself
          const double factor = sign * scale;
          const double* v = base_grad.data();
          auto variant_close_to = [&](const double* ref) {
            for (int64_t k = 0; k < size; ++k) {
              if (!IsClose(factor * v[k], ref[k], o.rtol, o.atol)) return false;
            }
            return true;
          };
          auto candidate_close = [&] {
            for (int64_t k = 0; k < size; ++k) {
              if (!IsClose(candidate[k], factor * v[k], o.rtol, o.atol)) return false;
            }
            return true;
          };
          if (!candidate_close() || variant_close_to(truth.data())) continue;
          m.mistaken = factor * base_grad;
          m.residual = MaxAbsDiff(candidate, m.mistaken.data(), size);
          for (const auto& [code, unused] : m.what) m.codes.push_back(code);
          matches.push_back(std::move(m));
        }
      }
    }
  }

  std::vector<Finding> findings;
  size_t fewest = SIZE_MAX;
  for (const Match& m : matches) fewest = std::min(fewest, m.codes.size());
  for (const Match& m : matches) {
    if (m.codes.size() != fewest) continue;
    for (FindingCode code : m.codes) {
      auto same = std::find_if(findings.begin(), findings.end(),
                               [&](const Finding& f) { return f.code == code; });
      if (same != findings.end() && same->residual <= m.residual) continue;
      std::string together;
      for (FindingCode other : m.codes) {
        if (other != code) absl::StrAppend(&together, together.empty() ? "" : ", ", FindingCodeName(other));
      }
      Finding f{code,
                absl::StrCat("candidate", row, " ", cand, " ", m.what.at(code),
                             together.empty() ? "" : absl::StrCat(" (together with ", together, ")")),
                std::vector<double>(m.mistaken.data(), m.mistaken.data() + size), false, m.residual};
      if (same != findings.end()) {
        *same = std::move(f);
      } else {
        findings.push_back(std::move(f));
      }
    }
  }
  std::sort(findings.begin(), findings.end(),
            [](const Finding& x, const Finding& y) { return x.code < y.code; });
  if (findings.empty()) {
    findings.push_back({FindingCode::kUnexplained,
                        absl::StrFormat("candidate%s %s differs from the true gradient by up to "
                                        "%.6g and matches none of the known mistakes; %s",
                                        row, cand, error, right),
                        {}, false, error});
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
