#include "lib/loss_pass.h"

#include <atomic>
#include <cmath>
#include <limits>
#include <vector>

#include "base/status_macros.h"
#include "lib/loss_check.h"
#include "lib/row_kernels.h"

namespace gradserve {
namespace {

using internal::ArrayMap;
using internal::ConstArrayMap;
using internal::ShiftedExp;

// What every row of one problem shares, derived once.
template <typename T>
struct Plan {
  explicit Plan(const LossProblem<T>& p)
      : classes(p.logits.cols()),
        smoothing(static_cast<T>(p.options.label_smoothing)),
        eps(static_cast<T>(p.options.label_smoothing / static_cast<double>(classes))),
        weights(p.options.class_weights.begin(), p.options.class_weights.end()) {}

  bool has_weights() const { return !weights.empty(); }
  T weight(int64_t y) const { return has_weights() ? weights[y] : T(1); }
  ConstArrayMap<T> weight_row() const { return ConstArrayMap<T>(weights.data(), classes); }

  int64_t classes;
  T smoothing;  // label_smoothing
  T eps;        // label_smoothing / classes: the smoothing mass each class receives
  std::vector<T> weights;
};

// The weighted, smoothed target distribution q of row `i` (not ignored), into `q`.
template <typename T>
void TargetRow(const LossProblem<T>& p, const Plan<T>& plan, int64_t i, T* q) {
  const int64_t c = plan.classes;
  ArrayMap<T> qr(q, c);
  if (p.targets.is_probabilities) {
    qr = (T(1) - plan.smoothing) * p.targets.probabilities.row(i).array() + plan.eps;
    if (plan.has_weights()) qr *= plan.weight_row();
  } else {
    const int64_t y = p.targets.class_indices[i];
    if (plan.has_weights()) {
      qr = plan.eps * plan.weight_row();
    } else {
      qr.setConstant(plan.eps);
    }
    q[y] += (T(1) - plan.smoothing) * plan.weight(y);
  }
}

// One block's rows. Each row's exponentials e (unnormalised, in an L1 scratch row) reach Row(),
// which derives every wanted output from them and returns the factor k with which the row
// kernel writes k·e as the block's primary output: dL/dz when wanted, else the probabilities.
// Without either, no exponentials are kept (Row gets e = null): the loss and log-probabilities
// need only the row's maximum and sum.
template <typename T>
class RowPass {
 public:
  RowPass(const internal::RowPassInputs<T>& in, const LossPassOutputs<T>& out)
      : in_(in), p_(in.problem), plan_(in.problem), out_(out), c_(p_.logits.cols()) {}

  void Block(int64_t begin, int64_t end) {
    if (general_targets() || chain()) scratch_.resize(3 * c_);
    T* primary = want_grad() ? out_.grad_logits.data() : out_.probabilities.data();
    if (primary == nullptr) {
      for (int64_t i = begin; i < end; ++i) {
        Row(i, internal::ExpShifted<T>(p_.logits.row(i).data(), nullptr, c_), nullptr);
      }
      return;
    }
    const int64_t n = p_.logits.rows();
    internal::ExpRows(p_.logits.row(begin).data(), primary + begin * c_, end - begin, c_,
                      internal::StreamsOutput<T>(n * c_),
                      [&](int64_t k, const ShiftedExp<T>& ex, T* e) { return Row(begin + k, ex, e); });
  }

  bool non_finite() const { return non_finite_.load(std::memory_order_relaxed); }

 private:
  bool want_grad() const { return out_.grad_logits.data() != nullptr; }
  bool chain() const { return in_.has_targets && want_grad() && in_.method == Method::kChainRule; }
  // Targets that need the row's whole distribution q (the rest is one weight at the target).
  bool general_targets() const {
    return in_.has_targets && (p_.targets.is_probabilities || plan_.smoothing != T(0));
  }
  static T* RowOf(MatrixMap<T>& m, int64_t i) {
    return m.data() == nullptr ? nullptr : m.data() + i * m.cols();
  }

  T Row(int64_t i, const ShiftedExp<T>& ex, T* e) {
    if (!ex.finite) non_finite_.store(true, std::memory_order_relaxed);
    const T* z = p_.logits.row(i).data();
    const T inv = T(1) / ex.sum;
    if (T* lp = RowOf(out_.log_probabilities, i)) {
      // log_softmax = (z - m) - log S: the large m cancels exactly first.
      ArrayMap<T>(lp, c_) = (ConstArrayMap<T>(z, c_) - ex.max) - std::log(ex.sum);
    }
    // With dL/dz as the primary output, the probabilities are written here.
    if (T* pr = RowOf(out_.probabilities, i); pr != nullptr && want_grad()) {
      ArrayMap<T>(pr, c_) = ConstArrayMap<T>(e, c_) * inv;
    }
    if (in_.grad_probabilities.data() != nullptr) return VjpRow(i, e, inv);
    if (!in_.has_targets) return inv;
    T* grad = want_grad() ? e : nullptr;
    if (IsIgnoredRow(p_, i)) {
      // PyTorch: an ignored row adds nothing to the loss and gets a zero gradient.
      RecordLoss(i, T(0));
      if (T* gp = RowOf(out_.grad_probabilities, i)) ArrayMap<T>(gp, c_).setZero();
      return grad != nullptr ? T(0) : inv;
    }
    const T r = in_.row_scale.empty() ? T(1) : in_.row_scale[i];
    if (chain()) return ChainRuleRow(i, ex, e, r);
    const T log_s = std::log(ex.sum);
    if (!general_targets()) {
      const int64_t y = p_.targets.class_indices[i];
      const T wy = plan_.weight(y);
      RecordLoss(i, wy * (log_s - ex.Shifted(z[y])));
      if (grad == nullptr) return inv;
      // r·w_y·(e - S·onehot(y))/S
      grad[y] -= ex.sum;
      return r * wy / ex.sum;
    }
    // l = s·log S - Σ_c q_c (z_c - m): the max-shifted form keeps float64 exact to rounding even
    // for logits of 1e4; dl/dz = s·a - q.
    TargetRow(p_, plan_, i, scratch_.data());
    ConstArrayMap<T> q(scratch_.data(), c_);
    const T s = q.sum();
    RecordLoss(i, s * log_s - (q * (ConstArrayMap<T>(z, c_) - ex.max)).sum());
    if (grad == nullptr) return inv;
    ArrayMap<T> g(grad, c_);
    g = g * (r * s / ex.sum) - r * q;
    return T(1);
  }

  // dL/dz = a ⊙ (g - <g, a>) for the caller's dL/dA g; dL/dA itself is echoed when asked for.
  T VjpRow(int64_t i, T* e, T inv) {
    ArrayMap<T> a(e, c_);
    a *= inv;
    const ConstArrayMap<T> g(in_.grad_probabilities.row(i).data(), c_);
    if (T* gp = RowOf(out_.grad_probabilities, i)) ArrayMap<T>(gp, c_) = g;
    const T dot = (a * g).sum();
    a = a * (g - dot);
    return T(1);
  }

  // CHAIN_RULE: dL/dA = -r·q / a, then dL/dz = J(a)·dL/dA = a⊙g - a·<a, g>. Where a_c underflows to
  // 0 with q_c > 0, g_c is infinite and a_c·g_c is taken as its limit -r·q_c, so dL/dz stays finite
  // wherever the fused form is; only dL/dA holds the infinity.
  T ChainRuleRow(int64_t i, const ShiftedExp<T>& ex, T* e, T r) {
    ArrayMap<T> a(e, c_);
    a /= ex.sum;
    T* q = scratch_.data();
    T* ag = q + c_;
    TargetRow(p_, plan_, i, q);
    T* gp = RowOf(out_.grad_probabilities, i);
    ArrayMap<T> g(gp != nullptr ? gp : q + 2 * c_, c_);
    for (int64_t k = 0; k < c_; ++k) {
      const T rq = r * q[k];
      g[k] = rq == T(0) ? T(0) : -rq / a[k];
      ag[k] = std::isfinite(g[k]) ? a[k] * g[k] : -rq;
    }
    ConstArrayMap<T> agr(ag, c_);
    const T dot = agr.sum();
    a = agr - a * dot;
    ConstArrayMap<T> qr(q, c_);
    RecordLoss(i, qr.sum() * std::log(ex.sum) -
                      (qr * (ConstArrayMap<T>(p_.logits.row(i).data(), c_) - ex.max)).sum());
    return T(1);
  }

  void RecordLoss(int64_t i, T loss) {
    if (!out_.loss.empty()) out_.loss[i] = loss;
  }

  const internal::RowPassInputs<T>& in_;
  const LossProblem<T>& p_;
  const Plan<T> plan_;
  LossPassOutputs<T> out_;  // a copy: Eigen makes a const Map read-only
  const int64_t c_;
  std::vector<T> scratch_;  // q, a⊙g and a spare dL/dA row (per block: one RowPass per block)
  std::atomic<bool> non_finite_{false};
};

}  // namespace

namespace internal {

template <typename T>
absl::StatusOr<bool> RunRowPass(const RowPassInputs<T>& in, const LossPassOutputs<T>& out,
                                const ExecContext& ctx) {
  std::atomic<bool> non_finite{false};
  const int64_t n = in.problem.logits.rows(), c = in.problem.logits.cols();
  GRADSERVE_RETURN_IF_ERROR(ParallelForRows(n, c, ctx, [&](int64_t begin, int64_t end) {
    RowPass<T> pass(in, out);
    pass.Block(begin, end);
    if (pass.non_finite()) non_finite.store(true, std::memory_order_relaxed);
  }));
  return !non_finite.load();
}

}  // namespace internal

template <typename T>
void TargetDistribution(const LossProblem<T>& p, MatrixMap<T> q) {
  const Plan<T> plan(p);
  for (int64_t i = 0; i < q.rows(); ++i) {
    if (IsIgnoredRow(p, i)) {
      q.row(i).setZero();
    } else {
      TargetRow(p, plan, i, q.row(i).data());
    }
  }
}

template <typename T>
absl::StatusOr<LossSummary> LossPass(const LossPassInputs<T>& in, const LossPassOutputs<T>& out,
                                     const ExecContext& ctx) {
  GRADSERVE_RETURN_IF_ERROR(ValidateLossPass(in, out));
  const int64_t n = in.logits.rows();
  const Reduction reduction = in.options.reduction;
  const bool has_targets = in.targets.has_value();
  const LossProblem<T> problem{
      in.logits, has_targets ? *in.targets : Targets<T>::ClassIndices({}), in.options};
  LossSummary summary;
  double denominator = 0.0;
  std::vector<T> row_scale, row_loss;
  LossPassOutputs<T> row_out = out;
  const bool reduce = has_targets && !out.loss.empty() && reduction != Reduction::kNone;
  if (has_targets) {
    denominator = MeanDenominator(problem);
    if (reduction == Reduction::kMean) summary.reduction_denominator = denominator;
    if (out.grad_logits.data() != nullptr) {
      // dL/dl_i: the reduction's scale times the upstream gradient.
      const double base = reduction != Reduction::kMean ? 1.0
                          : denominator == 0.0 ? std::numeric_limits<double>::quiet_NaN()
                                               : 1.0 / denominator;
      row_scale.resize(n);
      for (int64_t i = 0; i < n; ++i) {
        const double g = in.grad_loss.empty() ? 1.0 : in.grad_loss[in.grad_loss.size() == 1 ? 0 : i];
        row_scale[i] = static_cast<T>(base * g);
      }
    }
    if (reduce) {
      row_loss.resize(n);
      row_out.loss = absl::MakeSpan(row_loss);
    }
  }
  const internal::RowPassInputs<T> rows{problem, has_targets, in.grad_probabilities, in.method,
                                        row_scale};
  GRADSERVE_ASSIGN_OR_RETURN(const bool finite, internal::RunRowPass(rows, row_out, ctx));
  if (!finite) return ValidateFiniteLogits<T>(in.logits);
  if (reduce) {
    double total = 0.0;
    for (T l : row_loss) total += l;
    if (reduction == Reduction::kMean) {
      // A zero denominator is NaN even when the summed loss is not 0 (smoothing over zero weights).
      total = denominator == 0.0 ? std::numeric_limits<double>::quiet_NaN() : total / denominator;
    }
    out.loss[0] = static_cast<T>(total);
  }
  return summary;
}

#define GRADSERVE_INSTANTIATE(T)                                                               \
  template void TargetDistribution<T>(const LossProblem<T>&, MatrixMap<T>);                     \
  template absl::StatusOr<LossSummary> LossPass<T>(const LossPassInputs<T>&,                    \
                                                   const LossPassOutputs<T>&, const ExecContext&); \
  template absl::StatusOr<bool> internal::RunRowPass<T>(const internal::RowPassInputs<T>&,      \
                                                        const LossPassOutputs<T>&, const ExecContext&);
GRADSERVE_INSTANTIATE(float)
GRADSERVE_INSTANTIATE(double)
#undef GRADSERVE_INSTANTIATE

}  // namespace gradserve
