#include "lib/verify_mistakes.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "Eigen/Core"
#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "lib/verify_rows.h"
#include "lib/verify_util.h"

namespace gradserve::verify_internal {
namespace {

constexpr BaseMistake kBases[] = {BaseMistake::kNone, BaseMistake::kJacobianAtLogits,
                                  BaseMistake::kDiagonalOnlyJacobian,
                                  BaseMistake::kGradientWrtProbabilities,
                                  BaseMistake::kSoftmaxNotApplied};

absl::Status Cancelled() { return absl::CancelledError("computation cancelled by the caller"); }

LossProblem<double> Without(const LossProblem<double>& p, const DroppedOptions& d) {
  LossProblem<double> q = p;
  if (d.weights) q.options.class_weights = {};
  if (d.smoothing) q.options.label_smoothing = 0.0;
  if (d.ignore) q.options.ignore_index.reset();
  return q;
}

std::vector<FindingCode> CodesOf(const Explanation& e) {
  std::vector<FindingCode> codes;
  switch (e.base) {
    case BaseMistake::kNone:
      break;
    case BaseMistake::kJacobianAtLogits:
      codes.push_back(FindingCode::kJacobianAtLogits);
      break;
    case BaseMistake::kDiagonalOnlyJacobian:
      codes.push_back(FindingCode::kDiagonalOnlyJacobian);
      break;
    case BaseMistake::kGradientWrtProbabilities:
      codes.push_back(FindingCode::kGradientWrtProbabilities);
      break;
    case BaseMistake::kSoftmaxNotApplied:
      codes.push_back(FindingCode::kSoftmaxNotApplied);
      break;
  }
  if (!e.dropped.names.empty()) codes.push_back(FindingCode::kOptionIgnored);
  if (e.sign_flipped) codes.push_back(FindingCode::kSignFlipped);
  if (e.scale.factor != 1.0) codes.push_back(FindingCode::kMeanScale);
  std::sort(codes.begin(), codes.end());
  return codes;
}

double Factor(const Explanation& e) { return (e.sign_flipped ? -1.0 : 1.0) * e.scale.factor; }

// 1 and the scales a mistaken reduction gives, for the caller's problem `p` or the problem `q`
// the gradient was computed for (p with options left out), each factor once.
std::vector<ScaleMistake> ScalesFor(const LossProblem<double>& p, const LossProblem<double>& q) {
  std::vector<ScaleMistake> scales = {ScaleMistake{}};
  for (const std::vector<ScaleMistake>& list : {ScaleMistakes(p), ScaleMistakes(q)}) {
    for (const ScaleMistake& s : list) {
      if (std::none_of(scales.begin(), scales.end(), [&](auto& x) { return x.factor == s.factor; })) {
        scales.push_back(s);
      }
    }
  }
  return scales;
}

}  // namespace

// Forms the rows of one base mistake on `problem` (the caller's problem with `dropped` left out),
// a block of rows at a time so that target rows come from one TargetDistribution call per block.
class MistakeSearch::Rows {
 public:
  Rows(const LossProblem<double>& problem, bool drops, BaseMistake base, const RowMatrix<double>& a,
       const RowMatrix<double>& truth)
      : problem_(problem), drops_(drops), base_(base), a_(a), truth_(truth),
        scale_(LossScale(problem)), c_(a.cols()), block_(BlockRows(c_)),
        target_(static_cast<size_t>(block_ * c_)), grad_a_(static_cast<size_t>(c_)) {}

  int64_t block() const { return block_; }

  // Rows [begin, end) (at most block() of them) into out, row-major.
  void Block(int64_t begin, int64_t end, double* out) {
    if (base_ == BaseMistake::kNone && !drops_) {  // the truth itself
      std::copy(truth_.row(begin).data(), truth_.row(begin).data() + (end - begin) * c_, out);
      return;
    }
    TargetRows(problem_, begin, end, target_.data());
    for (int64_t i = begin; i < end; ++i) {
      Row(i, target_.data() + (i - begin) * c_, out + (i - begin) * c_);
    }
  }

 private:
  void Row(int64_t i, const double* q, double* out) {
    const double* a = a_.row(i).data();
    const double* z = problem_.logits.row(i).data();
    if (base_ == BaseMistake::kNone || base_ == BaseMistake::kSoftmaxNotApplied) {
      ClosedFormAt(i, base_ == BaseMistake::kNone ? a : z, q, out);
      return;
    }
    for (int64_t j = 0; j < c_; ++j) {  // dL/dA = -r·q / a, 0 where r·q is 0
      const double rq = scale_ * q[j];
      grad_a_[j] = rq == 0.0 ? 0.0 : -rq / a[j];
    }
    switch (base_) {
      case BaseMistake::kJacobianAtLogits:
        JacobianTimes(z, grad_a_.data(), c_, out);
        break;
      case BaseMistake::kDiagonalOnlyJacobian:
        for (int64_t j = 0; j < c_; ++j) out[j] = (a[j] - a[j] * a[j]) * grad_a_[j];
        break;
      default:
        std::copy(grad_a_.begin(), grad_a_.end(), out);
    }
  }

  // r·(s·x - q): the closed form with `x` in place of softmax(z); zero on an ignored row.
  void ClosedFormAt(int64_t i, const double* x, const double* q, double* out) const {
    if (IsIgnoredRow(problem_, i)) {
      std::fill(out, out + c_, 0.0);
      return;
    }
    const Eigen::Map<const Eigen::ArrayXd> xr(x, c_), qr(q, c_);
    Eigen::Map<Eigen::ArrayXd>(out, c_) = scale_ * (qr.sum() * xr - qr);
  }

  const LossProblem<double>& problem_;
  const bool drops_;
  const BaseMistake base_;
  const RowMatrix<double>& a_;
  const RowMatrix<double>& truth_;
  const double scale_;
  const int64_t c_, block_;
  std::vector<double> target_, grad_a_;
};

std::vector<DroppedOptions> OptionSubsets(const LossProblem<double>& p) {
  const LossOptions& o = p.options;
  const int64_t c = p.logits.cols();
  const bool has_weights = std::any_of(o.class_weights.begin(), o.class_weights.end(),
                                       [](double w) { return w != 1.0; });
  const bool has_smoothing = o.label_smoothing != 0.0;
  // Without ignore_index an ignored id must still be a valid class for the loss to exist.
  bool has_ignore = false;
  if (o.ignore_index && *o.ignore_index >= 0 && *o.ignore_index < c) {
    for (int64_t i = 0; i < p.logits.rows() && !has_ignore; ++i) has_ignore = IsIgnoredRow(p, i);
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

std::vector<ScaleMistake> ScaleMistakes(const LossProblem<double>& p) {
  const int64_t n = p.logits.rows();
  const double d = MeanDenominator(p);
  int64_t kept = 0;
  for (int64_t i = 0; i < n; ++i) kept += IsIgnoredRow(p, i) ? 0 : 1;
  std::vector<ScaleMistake> scales;
  if (p.options.reduction == Reduction::kMean) {
    scales.push_back({d, absl::StrFormat("the 1/%.6g of the mean reduction is missing", d)});
    scales.push_back({1.0 / d, absl::StrFormat("the mean's 1/%.6g is applied twice", d)});
    scales.push_back({d / n, absl::StrFormat("the mean divides by the batch size %d instead of %.6g", n, d)});
    scales.push_back({d / kept, absl::StrFormat(
        "the mean divides by the %d kept rows instead of their weight sum %.6g", kept, d)});
  } else {
    const char* name = p.options.reduction == Reduction::kSum ? "SUM" : "NONE";
    scales.push_back({1.0 / n, absl::StrFormat("a mean's 1/%d is applied to a %s reduction", n, name)});
    scales.push_back({1.0 / d, absl::StrFormat("a mean's 1/%.6g is applied to a %s reduction", d, name)});
  }
  std::vector<ScaleMistake> out;
  for (ScaleMistake& s : scales) {
    const bool seen = std::any_of(out.begin(), out.end(),
                                  [&](const ScaleMistake& o) { return o.factor == s.factor; });
    if (std::isfinite(s.factor) && s.factor != 0.0 && s.factor != 1.0 && !seen) out.push_back(std::move(s));
  }
  return out;
}

MistakeSearch::MistakeSearch(const LossProblem<double>& problem, const VerifyOptions& options,
                             const RowMatrix<double>& a, const RowMatrix<double>& truth)
    : problem_(problem), options_(options), a_(a), truth_(truth) {}

// One sign and scale of a base mistake while its rows are compared with the candidate.
struct MistakeSearch::Variant {
  Explanation e;
  double factor;
  bool alive = true;     // every element so far matches the candidate
  bool differs = false;  // some element so far is not close to the truth

  // Compares `size` elements of the base mistake's rows with the candidate's and the truth's;
  // returns whether the variant still matches.
  bool Compare(const double* base, const double* candidate, const double* truth, int64_t size,
               double rtol, double atol) {
    for (int64_t k = 0; k < size; ++k) {
      const double x = factor * base[k];
      if (!IsClose(candidate[k], x, rtol, atol)) {
        alive = false;
        return false;
      }
      if (!differs && !IsClose(x, truth[k], rtol, atol)) differs = true;
      e.residual = std::max(e.residual, candidate[k] == x ? 0.0 : std::abs(candidate[k] - x));
    }
    return true;
  }
};

absl::StatusOr<std::vector<Explanation>> MistakeSearch::Run(const double* candidate,
                                                            const ExecContext& ctx) const {
  std::vector<DroppedOptions> subsets = OptionSubsets(problem_);
  subsets.insert(subsets.begin(), DroppedOptions{});
  std::vector<Explanation> found;
  for (const DroppedOptions& dropped : subsets) {
    if (IsCancelled(ctx)) return Cancelled();
    const LossProblem<double> q = Without(problem_, dropped);
    const std::vector<ScaleMistake> scales = ScalesFor(problem_, q);
    for (BaseMistake base : kBases) {
      if (IsCancelled(ctx)) return Cancelled();
      std::vector<Variant> variants;
      for (bool flip : {false, true}) {
        for (const ScaleMistake& s : scales) {
          Explanation e{dropped, base, flip, s, {}, 0.0};
          e.codes = CodesOf(e);
          if (e.codes.empty()) continue;  // the truth itself
          const double factor = Factor(e);
          variants.push_back({std::move(e), factor});
        }
      }
      Rows rows(q, !dropped.names.empty(), base, a_, truth_);
      if (!Walk(rows, candidate, &variants, ctx)) return Cancelled();
      for (Variant& v : variants) {
        if (v.alive && v.differs) found.push_back(std::move(v.e));
      }
    }
  }
  return found;
}

// Every variant of one base is checked in one pass over the base's rows, each dropped at its
// first element that misses the candidate: a wrong base costs about one row, not a matrix.
bool MistakeSearch::Walk(Rows& rows, const double* candidate, std::vector<Variant>* variants,
                         const ExecContext& ctx) const {
  const int64_t n = truth_.rows(), c = truth_.cols();
  std::vector<double> block(static_cast<size_t>(rows.block() * c));
  int64_t alive = static_cast<int64_t>(variants->size());
  for (int64_t begin = 0; begin < n && alive > 0; begin += rows.block()) {
    if (begin > 0 && IsCancelled(ctx)) return false;
    const int64_t end = std::min(n, begin + rows.block());
    rows.Block(begin, end, block.data());
    for (Variant& v : *variants) {
      if (v.alive && !v.Compare(block.data(), candidate + begin * c, truth_.data() + begin * c,
                                (end - begin) * c, options_.rtol, options_.atol)) {
        --alive;
      }
    }
  }
  return true;
}

absl::StatusOr<std::vector<double>> MistakeSearch::MistakenGradient(const Explanation& e,
                                                                    const ExecContext& ctx) const {
  const int64_t n = truth_.rows(), c = truth_.cols();
  const LossProblem<double> q = Without(problem_, e.dropped);
  Rows rows(q, !e.dropped.names.empty(), e.base, a_, truth_);
  std::vector<double> out(static_cast<size_t>(n * c));
  const double factor = Factor(e);
  for (int64_t begin = 0; begin < n; begin += rows.block()) {
    if (IsCancelled(ctx)) return Cancelled();
    const int64_t end = std::min(n, begin + rows.block());
    double* block = out.data() + begin * c;
    rows.Block(begin, end, block);
    for (int64_t k = 0; k < (end - begin) * c; ++k) block[k] *= factor;
  }
  return out;
}

}  // namespace gradserve::verify_internal
