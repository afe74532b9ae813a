#include "lib/cross_entropy.h"

#include <atomic>
#include <cmath>
#include <limits>
#include <vector>

#include "absl/strings/str_format.h"
#include "base/status_macros.h"
#include "lib/row_kernels.h"
#include "lib/softmax.h"

namespace gradserve {
namespace {

using internal::ArrayMap;
using internal::ConstArrayMap;

const char* ReductionName(Reduction r) {
  switch (r) {
    case Reduction::kMean: return "MEAN";
    case Reduction::kSum: return "SUM";
    case Reduction::kNone: return "NONE";
  }
  return "?";
}

// Row-sum tolerance for probability targets: what a float32 caller can reasonably produce.
template <typename T>
constexpr double ProbabilitySumTolerance() {
  return sizeof(T) == 4 ? 1e-4 : 1e-6;
}

template <typename T>
absl::Status ValidateOptions(const LossOptions& o, int64_t classes) {
  if (!(o.label_smoothing >= 0.0 && o.label_smoothing <= 1.0)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "options.label_smoothing is %g; it must be in [0, 1]", o.label_smoothing));
  }
  if (!o.class_weights.empty()) {
    if (static_cast<int64_t>(o.class_weights.size()) != classes) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "options.class_weights has %d weights, expected one per class (%d)",
          o.class_weights.size(), classes));
    }
    for (size_t k = 0; k < o.class_weights.size(); ++k) {
      const double w = o.class_weights[k];
      if (!(std::isfinite(w) && w >= 0.0)) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "options.class_weights[%d] is %g; weights must be finite and non-negative", k, w));
      }
    }
  }
  return absl::OkStatus();
}


template <typename T>
absl::Status ValidateProbabilities(ConstMatrixMap<T> t, int64_t batch, int64_t classes,
                                   double tolerance) {
  if (t.rows() != batch || t.cols() != classes) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "targets.probabilities has shape [%d, %d] but logits have shape [%d, %d]", t.rows(),
        t.cols(), batch, classes));
  }
  const double tol = tolerance > 0.0 ? tolerance : ProbabilitySumTolerance<T>();
  for (int64_t i = 0; i < batch; ++i) {
    double sum = 0.0;
    for (int64_t j = 0; j < classes; ++j) {
      const double v = t(i, j);
      if (!(std::isfinite(v) && v >= 0.0)) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "targets.probabilities[%d, %d] is %g; probabilities must be finite and non-negative",
            i, j, v));
      }
      sum += v;
    }
    if (!(std::abs(sum - 1.0) <= tol)) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "targets.probabilities row %d sums to %.9g; each row must sum to 1 within %g (%s)", i,
          sum, tol,
          tolerance > 0.0 ? "half-precision targets" : sizeof(T) == 4 ? "float32" : "float64"));
    }
  }
  return absl::OkStatus();
}

// Everything but the logits' finiteness, which the kernels detect in passing.
template <typename T>
absl::Status ValidateInputs(const LossProblem<T>& p) {
  const int64_t n = p.logits.rows(), c = p.logits.cols();
  if (c == 0) return absl::InvalidArgumentError("logits have 0 classes; cross-entropy needs at least 1");
  GRADSERVE_RETURN_IF_ERROR(ValidateOptions<T>(p.options, c));
  if (!p.targets.is_probabilities) {
    return ValidateClassIndices(p.targets.class_indices, n, c, p.options.ignore_index);
  }
  if (p.options.ignore_index) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "options.ignore_index (%d) applies only to class-index targets, not to "
        "targets.probabilities",
        *p.options.ignore_index));
  }
  return ValidateProbabilities<T>(p.targets.probabilities, n, c,
                                  p.options.probability_sum_tolerance);
}

template <typename T>
absl::Status ValidateOutputs(const LossProblem<T>& p, absl::Span<const T> grad_loss,
                             const LossOutputs<T>& out) {
  const int64_t n = p.logits.rows(), c = p.logits.cols();
  const bool none = p.options.reduction == Reduction::kNone;
  const size_t loss_size = none ? n : 1;
  if (!grad_loss.empty() && grad_loss.size() != loss_size) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "grad_loss has %d values but the loss has %d (reduction %s, batch %d)", grad_loss.size(),
        loss_size, ReductionName(p.options.reduction), n));
  }
  if (!out.loss.empty() && out.loss.size() != loss_size) {
    return absl::InvalidArgumentError(
        absl::StrFormat("loss output has %d values, expected %d", out.loss.size(), loss_size));
  }
  for (const MatrixMap<T>* m : {&out.grad_logits, &out.grad_probabilities}) {
    if (m->data() != nullptr && (m->rows() != n || m->cols() != c)) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "gradient output has shape [%d, %d], expected [%d, %d]", m->rows(), m->cols(), n, c));
    }
  }
  return absl::OkStatus();
}

// What every row of one problem shares, derived once.
template <typename T>
struct Plan {
  Plan(const LossProblem<T>& p, absl::Span<const T> grad_loss)
      : classes(p.logits.cols()),
        smoothing(static_cast<T>(p.options.label_smoothing)),
        eps(static_cast<T>(p.options.label_smoothing / static_cast<double>(classes))),
        weights(p.options.class_weights.begin(), p.options.class_weights.end()),
        sum_weights(weights.empty() ? static_cast<T>(classes) : ConstArrayMap<T>(weights.data(), classes).sum()),
        denominator(MeanDenominator(p)),
        grad_loss(grad_loss) {
    const bool mean = p.options.reduction == Reduction::kMean;
    base_scale = !mean ? 1.0 : denominator == 0.0 ? std::numeric_limits<double>::quiet_NaN()
                                                  : 1.0 / denominator;
  }

  // dL/dl_i: the reduction's scale times the upstream gradient.
  T RowScale(int64_t i) const {
    const double g = grad_loss.empty() ? 1.0 : grad_loss[grad_loss.size() == 1 ? 0 : i];
    return static_cast<T>(base_scale * g);
  }
  bool has_weights() const { return !weights.empty(); }
  ConstArrayMap<T> weight_row() const { return ConstArrayMap<T>(weights.data(), classes); }

  int64_t classes;
  T smoothing;  // label_smoothing
  T eps;        // label_smoothing / classes: the smoothing mass each class receives
  std::vector<T> weights;
  T sum_weights;
  double denominator;
  double base_scale;
  absl::Span<const T> grad_loss;
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
    q[y] += (T(1) - plan.smoothing) * (plan.has_weights() ? plan.weights[y] : T(1));
  }
}

// One row's loss l = s·log S - Σ_c q_c (z_c - m) (the max-shifted form keeps float64
// exact to rounding even for logits of 1e4) and, when `grad` is set, its gradient r·(s·a - q), written
// with one pass over the exponentials. Index targets without smoothing take the short path:
// q is the single entry w_y at the target class.
template <typename T>
T FusedRow(const LossProblem<T>& p, const Plan<T>& plan, int64_t i, T r, T* grad, T* scratch,
           bool* finite) {
  const int64_t c = plan.classes;
  const T* z = p.logits.row(i).data();
  ConstArrayMap<T> zr(z, c);
  const internal::ShiftedExp<T> ex = internal::ExpShifted(z, grad, c);
  *finite = ex.finite;
  const T log_s = std::log(ex.sum);
  if (!p.targets.is_probabilities && plan.smoothing == T(0)) {
    const int64_t y = p.targets.class_indices[i];
    const T wy = plan.has_weights() ? plan.weights[y] : T(1);
    if (grad != nullptr) {
      ArrayMap<T>(grad, c) *= r * wy / ex.sum;
      grad[y] -= r * wy;
    }
    return wy * (log_s - ex.Shifted(z[y]));
  }
  TargetRow(p, plan, i, scratch);
  ConstArrayMap<T> q(scratch, c);
  const T s = q.sum();
  if (grad != nullptr) {
    ArrayMap<T> g(grad, c);
    g = g * (r * s / ex.sum) - r * q;
  }
  return s * log_s - (q * (zr - ex.max)).sum();
}

// CHAIN_RULE: dL/dA = -r·q / a, then dL/dz = J(a)·dL/dA = a⊙g - a·<a, g>. Where a_c underflows to
// 0 with q_c > 0, g_c is infinite and a_c·g_c is taken as its limit -r·q_c, so dL/dz stays finite
// wherever the fused form is; only dL/dA holds the infinity.
template <typename T>
T ChainRuleRow(const LossProblem<T>& p, const Plan<T>& plan, int64_t i, T r, T* grad,
               T* grad_probs, T* scratch, bool* finite) {
  const int64_t c = plan.classes;
  const T* z = p.logits.row(i).data();
  const internal::ShiftedExp<T> ex = internal::ExpShifted(z, grad, c);
  *finite = ex.finite;
  ArrayMap<T> a(grad, c);
  a /= ex.sum;
  T* q = scratch;
  T* ag = scratch + c;
  TargetRow(p, plan, i, q);
  ArrayMap<T> g(grad_probs != nullptr ? grad_probs : scratch + 2 * c, c);
  for (int64_t k = 0; k < c; ++k) {
    const T rq = r * q[k];
    g[k] = rq == T(0) ? T(0) : -rq / a[k];
    ag[k] = std::isfinite(g[k]) ? a[k] * g[k] : -rq;
  }
  ConstArrayMap<T> agr(ag, c);
  const T dot = agr.sum();
  a = agr - a * dot;
  ConstArrayMap<T> qr(q, c);
  return qr.sum() * std::log(ex.sum) -
         (qr * (ConstArrayMap<T>(z, c) - ex.max)).sum();
}

// FusedRow's short path (index targets, no smoothing, gradient wanted) over rows [begin, end),
// through the row pipeline. `record(i, loss, finite)` receives each row's loss. The gradient row
// is r·w_y·(e - S·onehot(y))/S, so the pipeline's unscaled exponentials get S subtracted at y.
template <typename T, typename RecordFn>
void FusedIndexRows(const LossProblem<T>& p, const Plan<T>& plan, int64_t begin, int64_t end,
                    MatrixMap<T> grad, RecordFn&& record) {
  const int64_t c = plan.classes;
  auto weight = [&](int64_t y) { return plan.has_weights() ? plan.weights[y] : T(1); };
  auto row_scale = [&](int64_t k, const internal::ShiftedExp<T>& ex, T* e) -> T {
    const int64_t i = begin + k;
    if (IsIgnoredRow(p, i)) {
      // PyTorch: an ignored row adds nothing to the loss and gets a zero gradient.
      record(i, T(0), ex.finite);
      return T(0);
    }
    const int64_t y = p.targets.class_indices[i];
    record(i, weight(y) * (std::log(ex.sum) - ex.Shifted(p.logits(i, y))), ex.finite);
    e[y] -= ex.sum;
    return plan.RowScale(i) * weight(y) / ex.sum;
  };
  internal::ExpRows(p.logits.row(begin).data(), grad.row(begin).data(), end - begin, c,
                    internal::StreamsOutput<T>(grad.size()), row_scale);
}

}  // namespace

absl::Status ValidateClassIndices(absl::Span<const int64_t> ids, int64_t batch, int64_t classes,
                                  const std::optional<int64_t>& ignore) {
  if (static_cast<int64_t>(ids.size()) != batch) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "targets.class_indices has %d values, expected one per row (batch %d)", ids.size(), batch));
  }
  for (size_t i = 0; i < ids.size(); ++i) {
    const int64_t y = ids[i];
    if (ignore && y == *ignore) continue;
    if (y < 0 || y >= classes) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "targets.class_indices[%d] is %d, outside [0, %d)%s", i, y, classes,
          ignore ? absl::StrFormat(" and not ignore_index %d", *ignore) : std::string()));
    }
  }
  return absl::OkStatus();
}

template <typename T>
double MeanDenominator(const LossProblem<T>& p) {
  const int64_t n = p.logits.rows();
  if (p.targets.is_probabilities) return static_cast<double>(n);
  double d = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    if (IsIgnoredRow(p, i)) continue;
    const int64_t y = p.targets.class_indices[i];
    d += p.options.class_weights.empty() ? 1.0 : p.options.class_weights[y];
  }
  return d;
}

template <typename T>
void TargetDistribution(const LossProblem<T>& p, MatrixMap<T> q) {
  const Plan<T> plan(p, {});
  for (int64_t i = 0; i < q.rows(); ++i) {
    if (IsIgnoredRow(p, i)) {
      q.row(i).setZero();
    } else {
      TargetRow(p, plan, i, q.row(i).data());
    }
  }
}

template <typename T>
absl::Status ValidateLossProblem(const LossProblem<T>& problem) {
  GRADSERVE_RETURN_IF_ERROR(ValidateInputs(problem));
  return ValidateFiniteLogits<T>(problem.logits);
}

template <typename T>
absl::StatusOr<LossSummary> CrossEntropy(const LossProblem<T>& p, absl::Span<const T> grad_loss,
                                         Method method, const LossOutputs<T>& out,
                                         const ExecContext& ctx) {
  GRADSERVE_RETURN_IF_ERROR(ValidateInputs(p));
  GRADSERVE_RETURN_IF_ERROR(ValidateOutputs(p, grad_loss, out));
  const Plan<T> plan(p, grad_loss);
  const int64_t n = p.logits.rows(), c = plan.classes;
  const Reduction reduction = p.options.reduction;
  const bool per_row_loss = reduction == Reduction::kNone;
  const bool want_grad = out.grad_logits.data() != nullptr;
  const bool chain = want_grad && method == Method::kChainRule;
  std::vector<double> row_loss(per_row_loss ? 0 : n);
  std::atomic<bool> non_finite{false};
  // Eigen makes a const Map read-only; the outputs themselves are the caller's to write.
  MatrixMap<T> grad_out = out.grad_logits;
  MatrixMap<T> grad_probs_out = out.grad_probabilities;
  absl::Span<T> loss_out = out.loss;

  auto record = [&](int64_t i, T loss, bool finite) {
    if (!finite) non_finite.store(true, std::memory_order_relaxed);
    if (per_row_loss) {
      if (!loss_out.empty()) loss_out[i] = loss;
    } else {
      row_loss[i] = loss;
    }
  };
  // The short path (index targets, no smoothing, fused) needs no scratch row.
  const bool short_path = !chain && !p.targets.is_probabilities && plan.smoothing == T(0);
  GRADSERVE_RETURN_IF_ERROR(ParallelForRows(n, c, ctx, [&](int64_t begin, int64_t end) {
    if (short_path && want_grad) return FusedIndexRows(p, plan, begin, end, grad_out, record);
    std::vector<T> scratch(short_path ? 0 : 3 * c);
    for (int64_t i = begin; i < end; ++i) {
      T* grad = want_grad ? grad_out.row(i).data() : nullptr;
      T* grad_probs = grad_probs_out.data() ? grad_probs_out.row(i).data() : nullptr;
      T loss = 0;
      bool finite = true;
      if (IsIgnoredRow(p, i)) {
        // PyTorch: an ignored row adds nothing to the loss and gets a zero gradient.
        finite = p.logits.row(i).allFinite();
        if (grad) ArrayMap<T>(grad, c).setZero();
        if (grad_probs) ArrayMap<T>(grad_probs, c).setZero();
      } else if (chain) {
        loss = ChainRuleRow(p, plan, i, plan.RowScale(i), grad, grad_probs, scratch.data(), &finite);
      } else {
        loss = FusedRow(p, plan, i, plan.RowScale(i), grad, scratch.data(), &finite);
      }
      record(i, loss, finite);
    }
  }));
  if (non_finite.load()) return ValidateFiniteLogits<T>(p.logits);

  if (!per_row_loss && !out.loss.empty()) {
    double total = 0.0;
    for (double l : row_loss) total += l;
    if (reduction == Reduction::kMean) {
      // A zero denominator is NaN even when the summed loss is not 0 (smoothing over zero weights).
      total = plan.denominator == 0.0 ? std::numeric_limits<double>::quiet_NaN()
                                      : total / plan.denominator;
    }
    loss_out[0] = static_cast<T>(total);
  }
  return LossSummary{reduction == Reduction::kMean ? plan.denominator : 0.0};
}

#define GRADSERVE_INSTANTIATE(T)                                                              \
  template absl::Status ValidateLossProblem<T>(const LossProblem<T>&);                         \
  template double MeanDenominator<T>(const LossProblem<T>&);                                   \
  template void TargetDistribution<T>(const LossProblem<T>&, MatrixMap<T>);                    \
  template absl::StatusOr<LossSummary> CrossEntropy<T>(                                        \
      const LossProblem<T>&, absl::Span<const T>, Method, const LossOutputs<T>&,               \
      const ExecContext&);
GRADSERVE_INSTANTIATE(float)
GRADSERVE_INSTANTIATE(double)
#undef GRADSERVE_INSTANTIATE

}  // namespace gradserve
