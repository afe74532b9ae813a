#include "lib/loss_check.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "base/shape_format.h"
#include "base/status_macros.h"

namespace gradserve {
namespace {

const char* ReductionName(Reduction r) {
  switch (r) {
    case Reduction::kMean: return "MEAN";
    case Reduction::kSum: return "SUM";
    case Reduction::kNone: return "NONE";
  }
  return "?";
}

// The logits' shape as the caller sent it: [classes] for one unbatched example.
std::string LogitsShape(int64_t rows, int64_t classes, bool unbatched) {
  return unbatched ? FormatShape(std::vector<int64_t>{classes})
                   : FormatShape(std::vector<int64_t>{rows, classes});
}

absl::Status ValidateClasses(int64_t rows, int64_t classes, bool unbatched) {
  if (classes > 0) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrFormat(
      "logits shape %s has 0 classes; at least 1 is needed", LogitsShape(rows, classes, unbatched)));
}

absl::Status ValidateOptions(const LossOptions& o, int64_t classes) {
  if (!(o.label_smoothing >= 0.0 && o.label_smoothing <= 1.0)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "options.label_smoothing is %g; it must be in [0, 1]", o.label_smoothing));
  }
  if (o.class_weights.empty()) return absl::OkStatus();
  if (static_cast<int64_t>(o.class_weights.size()) != classes) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "options.class_weights has %d weights, expected one per class (%d)", o.class_weights.size(),
        classes));
  }
  for (size_t k = 0; k < o.class_weights.size(); ++k) {
    const double w = o.class_weights[k];
    if (!(std::isfinite(w) && w >= 0.0)) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "options.class_weights[%d] is %g; weights must be finite and non-negative", k, w));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateNoIgnoreWithProbabilities(const LossOptions& o) {
  if (!o.ignore_index) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrFormat(
      "options.ignore_index (%d) applies only to class-index targets, not to targets.probabilities",
      *o.ignore_index));
}

// Probability-target rows: finite, non-negative, each summing to 1 within `tol`. `value(k)` reads
// element k (row-major) as a double; `why` says where the tolerance comes from.
template <typename ValueFn>
absl::Status ValidateProbabilityRows(int64_t batch, int64_t classes, double tol,
                                     const std::string& why, ValueFn&& value) {
  for (int64_t i = 0; i < batch; ++i) {
    double sum = 0.0;
    for (int64_t j = 0; j < classes; ++j) {
      const double v = value(i * classes + j);
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
          sum, tol, why));
    }
  }
  return absl::OkStatus();
}

// A matrix argument's size: empty (not given) or the logits' [batch, classes].
absl::Status ValidateMatrixSize(const char* what, const void* data, int64_t rows, int64_t cols,
                                int64_t batch, int64_t classes) {
  if (data == nullptr || (rows == batch && cols == classes)) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrFormat("%s has shape [%d, %d], expected [%d, %d]",
                                                    what, rows, cols, batch, classes));
}

// What does not depend on the element type: classes, options, class ids, the combination of
// targets / VJP / outputs, and the sizes of grad_loss and the loss output.
struct Shape {
  int64_t rows, classes;
  bool unbatched;
};
absl::Status ValidateCommon(const Shape& s, bool has_targets, bool probability_targets,
                            absl::Span<const int64_t> ids, const LossOptions& options,
                            size_t grad_loss_size, bool has_vjp, Method method,
                            size_t loss_size, bool wants_grad, bool wants_grad_probs) {
  GRADSERVE_RETURN_IF_ERROR(ValidateClasses(s.rows, s.classes, s.unbatched));
  GRADSERVE_RETURN_IF_ERROR(ValidateOptions(options, s.classes));
  if (has_targets && has_vjp) {
    return absl::InvalidArgumentError("a pass takes targets or grad_probabilities, not both");
  }
  if (has_targets) {
    if (probability_targets) {
      GRADSERVE_RETURN_IF_ERROR(ValidateNoIgnoreWithProbabilities(options));
    } else {
      GRADSERVE_RETURN_IF_ERROR(
          ValidateClassIndices(ids, s.rows, s.classes, options.ignore_index, s.unbatched));
    }
    if (wants_grad_probs && !(wants_grad && method == Method::kChainRule)) {
      return absl::InvalidArgumentError(
          "a grad_probabilities output needs kChainRule and a grad_logits output");
    }
  } else if (loss_size > 0 || (wants_grad && !has_vjp) || (wants_grad_probs && !has_vjp)) {
    return absl::InvalidArgumentError("the loss and its gradients need targets");
  }
  const bool none = options.reduction == Reduction::kNone;
  const size_t want_loss = none ? s.rows : 1;
  if (grad_loss_size != 0 && grad_loss_size != want_loss) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "grad_loss has %d values but the loss has %d (reduction %s, batch %d)", grad_loss_size,
        want_loss, ReductionName(options.reduction), s.rows));
  }
  if (loss_size != 0 && loss_size != want_loss) {
    return absl::InvalidArgumentError(
        absl::StrFormat("loss output has %d values, expected %d", loss_size, want_loss));
  }
  if (has_vjp && !wants_grad) {
    return absl::InvalidArgumentError("grad_probabilities (the VJP) needs a grad_logits output");
  }
  return absl::OkStatus();
}

template <typename T>
constexpr const char* DtypeName() {
  return sizeof(T) == 4 ? "float32" : "float64";
}

}  // namespace

absl::Status ValidateClassIndices(absl::Span<const int64_t> ids, int64_t batch, int64_t classes,
                                  const std::optional<int64_t>& ignore, bool unbatched) {
  if (static_cast<int64_t>(ids.size()) != batch) {
    return absl::InvalidArgumentError(
        unbatched ? absl::StrFormat("targets.class_indices has %d values, but rank-1 logits are "
                                    "one example and need 1",
                                    ids.size())
                  : absl::StrFormat("targets.class_indices has %d values, expected one per row "
                                    "(batch %d)",
                                    ids.size(), batch));
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
absl::Status ValidateFiniteLogits(ConstMatrixMap<T> logits) {
  for (int64_t i = 0; i < logits.rows(); ++i) {
    if (logits.row(i).allFinite()) continue;
    for (int64_t j = 0; j < logits.cols(); ++j) {
      const T v = logits(i, j);
      if (!std::isfinite(v)) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "logits must be finite; logits[%d, %d] is %g", i, j, static_cast<double>(v)));
      }
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateHalfFiniteLogits(HalfType type, HalfMatrix logits) {
  const int64_t n = logits.size();
  const uint16_t exponent = type == HalfType::kFloat16 ? 0x7c00 : 0x7f80;
  // ±Inf and NaN are the magnitudes at or above the all-ones exponent: a max-reduction (which
  // vectorizes) decides, and only a failure searches for the first.
  uint16_t largest = 0;
  for (int64_t k = 0; k < n; ++k) largest = std::max<uint16_t>(largest, logits.data()[k] & 0x7fff);
  if (largest < exponent) return absl::OkStatus();
  for (int64_t k = 0; k < n; ++k) {
    if (!HalfIsNonFinite(type, logits.data()[k])) continue;
    return absl::InvalidArgumentError(absl::StrFormat(
        "logits must be finite; logits[%d, %d] is %g", k / logits.cols(), k % logits.cols(),
        static_cast<double>(HalfToFloat(type, logits.data()[k]))));
  }
  return absl::OkStatus();
}

// The checks the float and half passes share: the request's combination, then the size of every
// matrix given (inputs and outputs) against the logits' [n, c]. Inputs and Outputs are
// LossPassInputs<T> / LossPassOutputs<T> or their half twins, which name their members alike.
template <typename Inputs, typename Outputs>
absl::Status ValidatePassShapes(const Inputs& in, const Outputs& out) {
  const int64_t n = in.logits.rows(), c = in.logits.cols();
  const bool probs = in.targets && in.targets->is_probabilities;
  GRADSERVE_RETURN_IF_ERROR(ValidateCommon(
      {n, c, in.unbatched}, in.targets.has_value(), probs,
      in.targets ? in.targets->class_indices : absl::Span<const int64_t>(), in.options,
      in.grad_loss.size(), in.has_vjp(), in.method, out.loss.size(), out.grad_logits.data() != nullptr,
      out.grad_probabilities.data() != nullptr));
  const auto& g = in.grad_probabilities;
  GRADSERVE_RETURN_IF_ERROR(ValidateMatrixSize("grad_probabilities", g.data(), g.rows(), g.cols(), n, c));
  for (const auto* m : {&out.probabilities, &out.log_probabilities, &out.grad_logits,
                        &out.grad_probabilities}) {
    GRADSERVE_RETURN_IF_ERROR(ValidateMatrixSize("output", m->data(), m->rows(), m->cols(), n, c));
  }
  if (!probs) return absl::OkStatus();
  const auto& t = in.targets->probabilities;
  return ValidateMatrixSize("targets.probabilities", t.data(), t.rows(), t.cols(), n, c);
}

template <typename T>
absl::Status ValidateLossPass(const LossPassInputs<T>& in, const LossPassOutputs<T>& out) {
  GRADSERVE_RETURN_IF_ERROR(ValidatePassShapes(in, out));
  if (!in.targets || !in.targets->is_probabilities) return absl::OkStatus();
  const ConstMatrixMap<T> t = in.targets->probabilities;
  const double given = in.options.probability_sum_tolerance;
  return ValidateProbabilityRows(t.rows(), t.cols(), given > 0.0 ? given : sizeof(T) == 4 ? 1e-4 : 1e-6,
                                 given > 0.0 ? "half-precision targets" : DtypeName<T>(),
                                 [&](int64_t k) { return static_cast<double>(t.data()[k]); });
}

absl::Status ValidateHalfLossPass(const HalfPassInputs& in, const HalfPassOutputs& out) {
  GRADSERVE_RETURN_IF_ERROR(ValidatePassShapes(in, out));
  if (!in.targets || !in.targets->is_probabilities) return absl::OkStatus();
  const HalfMatrix t = in.targets->probabilities;
  return ValidateProbabilityRows(
      t.rows(), t.cols(), HalfProbabilitySumTolerance(in.type, t.cols()),
      absl::StrFormat("%s: max(1e-4, classes × %g)", HalfTypeName(in.type), HalfUnitRoundoff(in.type)),
      [&](int64_t k) { return static_cast<double>(HalfToFloat(in.type, t.data()[k])); });
}

#define GRADSERVE_INSTANTIATE(T)                                                              \
  template absl::Status ValidateFiniteLogits<T>(ConstMatrixMap<T>);                            \
  template absl::Status ValidateLossPass<T>(const LossPassInputs<T>&, const LossPassOutputs<T>&);
GRADSERVE_INSTANTIATE(float)
GRADSERVE_INSTANTIATE(double)
#undef GRADSERVE_INSTANTIATE

}  // namespace gradserve
