#include "server/loss_request.h"

#include "absl/strings/str_format.h"
#include "base/status_macros.h"

namespace gradserve {
namespace {

// One input tensor in the request's compute type: float/double, or `half` bit patterns.
template <typename T>
absl::StatusOr<InputTensor<T>> DecodeAs(const v1::Tensor& t, const char* name, const Limits& limits,
                                        std::optional<HalfType> half) {
  if constexpr (std::is_same_v<T, uint16_t>) {
    return DecodeHalfTensor(t, name, limits, *half);
  } else {
    return DecodeTensor<T>(t, name, limits);
  }
}

}  // namespace

bool HasTargets(bool has_field, const v1::Targets& targets) {
  return has_field && targets.kind_case() != v1::Targets::KIND_NOT_SET;
}

bool HasNonDefaultOptions(const v1::LossOptions& o) {
  return o.reduction() != v1::REDUCTION_UNSPECIFIED || o.label_smoothing() != 0.0 ||
         o.class_weights_size() > 0 || o.has_ignore_index();
}

template <typename T>
absl::StatusOr<LossRequest<T>> LossRequest<T>::Decode(const v1::Tensor& logits,
                                                      const v1::Targets* targets,
                                                      const v1::LossOptions& options,
                                                      const Limits& limits) {
  LossRequest r;
  if constexpr (std::is_same_v<T, uint16_t>) {
    r.half_ = HalfTypeOf(logits.dtype());
    if (!r.half_) return absl::InternalError("a half-precision request needs FLOAT16 or BFLOAT16 logits");
  }
  GRADSERVE_ASSIGN_OR_RETURN(r.logits_, DecodeAs<T>(logits, "logits", limits, r.half_));
  const std::vector<int64_t>& shape = r.logits_.shape();
  if (shape.size() != 1 && shape.size() != 2) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "logits must be rank 2 [batch, classes] or rank 1 [classes]; got shape %s",
        FormatShape(shape)));
  }
  r.unbatched_ = shape.size() == 1;
  r.rows_ = r.unbatched_ ? 1 : shape[0];
  r.classes_ = shape.back();

  switch (options.reduction()) {
    case v1::REDUCTION_UNSPECIFIED:
    case v1::REDUCTION_MEAN: r.options_.reduction = Reduction::kMean; break;
    case v1::REDUCTION_SUM: r.options_.reduction = Reduction::kSum; break;
    case v1::REDUCTION_NONE: r.options_.reduction = Reduction::kNone; break;
    default:
      return absl::InvalidArgumentError(absl::StrFormat(
          "options.reduction %d is not a known Reduction", options.reduction()));
  }
  r.options_.label_smoothing = options.label_smoothing();
  r.options_.class_weights = absl::MakeConstSpan(options.class_weights().data(), options.class_weights_size());
  if (options.has_ignore_index()) r.options_.ignore_index = options.ignore_index();

  if (targets != nullptr) {
    r.has_targets_ = true;
    if (targets->has_class_indices()) {
      const auto& ids = targets->class_indices().values();
      r.class_indices_ = absl::MakeConstSpan(ids.data(), ids.size());
    } else {
      r.probability_targets_ = true;
      GRADSERVE_ASSIGN_OR_RETURN(
          r.probabilities_,
          DecodeAs<T>(targets->probabilities(), "targets.probabilities", limits, r.half_));
      // Half-precision targets cannot sum to 1 closer than their rounding allows.
      if (const std::optional<HalfType> h = HalfTypeOf(targets->probabilities().dtype())) {
        r.options_.probability_sum_tolerance = HalfProbabilitySumTolerance(*h, r.classes_);
      }
      if (r.probabilities_.shape() != shape) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "targets.probabilities has shape %s but logits have shape %s",
            FormatShape(r.probabilities_.shape()), FormatShape(shape)));
      }
    }
  }
  return r;
}

template <typename T>
typename PassTypes<T>::Inputs LossRequest<T>::PassInputs(absl::Span<const Upstream> grad_loss,
                                                         ConstMatrixMap<T> grad_probabilities,
                                                         Method method) const {
  if constexpr (std::is_same_v<T, uint16_t>) {
    std::optional<HalfTargets> targets;
    if (has_targets_) targets.emplace(half_problem().targets);
    return HalfPassInputs{*half_, logits(), targets, options_, grad_loss, grad_probabilities,
                          method, unbatched_};
  } else {
    std::optional<Targets<T>> targets;
    if (has_targets_) targets.emplace(problem().targets);
    return LossPassInputs<T>{logits(), targets, options_, grad_loss, grad_probabilities, method,
                             unbatched_};
  }
}

template <typename T>
absl::StatusOr<InputTensor<T>> LossRequest<T>::DecodeInput(const v1::Tensor& t, const char* name,
                                                           const Limits& limits) const {
  return DecodeAs<T>(t, name, limits, half_);
}

template <typename T>
std::vector<int64_t> LossRequest<T>::loss_shape() const {
  if (unbatched_ || options_.reduction != Reduction::kNone) return {};
  return {rows_};
}

template <typename T>
std::vector<int64_t> LossRequest<T>::Unbatch(std::vector<int64_t> shape) const {
  if (unbatched_ && !shape.empty()) shape.erase(shape.begin());
  return shape;
}

template class LossRequest<float>;
template class LossRequest<double>;
template class LossRequest<uint16_t>;

}  // namespace gradserve
