// Backward: dL/dz of cross-entropy (FUSED or CHAIN_RULE), or the softmax VJP of an upstream dL/dA.
// One flow for every dtype: decode, check the limits, size the outputs in the response, one
// library pass (lib/loss_pass.h) that validates and fills them all, commit; the Jacobian after.
#include <optional>
#include <type_traits>
#include <vector>

#include "absl/strings/str_format.h"
#include "base/status_macros.h"
#include "lib/half_rows.h"
#include "lib/loss_pass.h"
#include "lib/softmax.h"
#include "server/limits.h"
#include "server/loss_request.h"
#include "server/rpc_logic.h"
#include "server/tensor_codec.h"

namespace gradserve {
namespace {

absl::Status ValidateShape(const char* name, const std::vector<int64_t>& got,
                           const std::vector<int64_t>& want, const char* want_what) {
  if (got == want) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrFormat("%s has shape %s but %s %s", name,
                                                    FormatShape(got), want_what, FormatShape(want)));
}

// The request's combination of fields, before anything is decoded.
absl::Status ValidateCombination(const v1::BackwardRequest& req, bool has_targets) {
  const bool has_grad_probs = req.has_grad_probabilities();
  if (has_targets == has_grad_probs) {
    return absl::InvalidArgumentError(
        has_targets ? "Backward takes targets or grad_probabilities, not both"
                    : "Backward needs targets (cross-entropy) or grad_probabilities (softmax VJP)");
  }
  if (req.method() != v1::METHOD_UNSPECIFIED && req.method() != v1::METHOD_FUSED &&
      req.method() != v1::METHOD_CHAIN_RULE) {
    return absl::InvalidArgumentError(absl::StrFormat("method %d is not a known Method", req.method()));
  }
  if (has_grad_probs && req.has_grad_loss()) {
    return absl::InvalidArgumentError(
        "grad_loss applies to a loss; it does not go with grad_probabilities");
  }
  if (has_grad_probs && HasNonDefaultOptions(req.options())) {
    return absl::InvalidArgumentError(
        "options (reduction, label_smoothing, class_weights, ignore_index) apply to a loss; they "
        "do not go with grad_probabilities");
  }
  return absl::OkStatus();
}

// Limits before any work: the Jacobian's size, and the whole response's.
absl::Status CheckBackwardResponse(const v1::BackwardRequest& req, int64_t n, int64_t c,
                                   const Limits& limits, const TensorFormat& format) {
  const bool chain = req.method() == v1::METHOD_CHAIN_RULE;
  const int64_t matrix_bytes = WireBytes(n * c, format.dtype, format.encoding);
  int64_t response_bytes = matrix_bytes * (1 + (chain ? 1 : 0) + (req.return_probabilities() ? 1 : 0));
  if (req.return_jacobian()) {
    GRADSERVE_RETURN_IF_ERROR(CheckCubicLimit("return_jacobian", n, c, limits.max_jacobian_elements,
                                              "--max_jacobian_elements"));
    response_bytes += WireBytes(n * c * c, format.dtype, format.encoding);
  }
  return CheckResponseSize(response_bytes, limits,
                           req.return_jacobian() ? "with the Jacobian" : "gradients");
}

// T is the compute type: float, double, or uint16_t for a FLOAT16 / BFLOAT16 request (every
// input rounded to the logits' half type, the math in float32, every output rounded back).
template <typename T>
absl::Status Backward(const v1::BackwardRequest& req, v1::BackwardResponse* resp,
                      const Limits& limits, const TensorFormat& format, const ExecContext& exec) {
  using Upstream = typename LossRequest<T>::Upstream;
  constexpr bool kHalf = std::is_same_v<T, uint16_t>;
  const bool has_targets = HasTargets(req.has_targets(), req.targets());
  GRADSERVE_RETURN_IF_ERROR(ValidateCombination(req, has_targets));
  GRADSERVE_ASSIGN_OR_RETURN(
      const LossRequest<T> lr,
      LossRequest<T>::Decode(req.logits(), has_targets ? &req.targets() : nullptr, req.options(), limits));
  const int64_t n = lr.rows(), c = lr.classes();
  const bool chain = req.method() == v1::METHOD_CHAIN_RULE;
  GRADSERVE_RETURN_IF_ERROR(CheckBackwardResponse(req, n, c, limits, format));

  // The upstream gradient: dL/dA for the VJP, else the optional dL/dloss (widened for half).
  std::optional<InputTensor<T>> grad_probs_in, grad_loss_in;
  std::vector<Upstream> widened;
  absl::Span<const Upstream> grad_loss;
  if (!has_targets) {
    GRADSERVE_ASSIGN_OR_RETURN(grad_probs_in, lr.DecodeInput(req.grad_probabilities(), "grad_probabilities", limits));
    GRADSERVE_RETURN_IF_ERROR(ValidateShape("grad_probabilities", grad_probs_in->shape(),
                                            lr.logits_shape(), "logits have shape"));
  } else if (req.has_grad_loss()) {
    GRADSERVE_ASSIGN_OR_RETURN(grad_loss_in, lr.DecodeInput(req.grad_loss(), "grad_loss", limits));
    GRADSERVE_RETURN_IF_ERROR(ValidateShape(
        "grad_loss", grad_loss_in->shape(), lr.loss_shape(),
        req.options().reduction() == v1::REDUCTION_NONE ? "the loss (reduction NONE) has shape"
                                                        : "the loss has shape"));
    if constexpr (kHalf) {
      widened.resize(grad_loss_in->size());
      WidenHalf(lr.half_type(), grad_loss_in->data(), widened.data(), grad_loss_in->size());
      grad_loss = widened;
    } else {
      grad_loss = absl::MakeConstSpan(grad_loss_in->data(), grad_loss_in->size());
    }
  }

  // Size the outputs in the response; the pass writes into them.
  const Encoding enc = format.encoding;
  std::optional<OutputTensor<T>> grad, loss, grad_probs, probs;
  auto output = [&](std::optional<OutputTensor<T>>& t, v1::Tensor* proto, const std::vector<int64_t>& shape) {
    t.emplace(proto, shape, enc, lr.output_half());
    return MatrixMap<T>(t->data(), n, c);
  };
  const MatrixMap<T> grad_map = output(grad, resp->mutable_grad_logits(), lr.logits_shape());
  const MatrixMap<T> grad_probs_map =
      chain ? output(grad_probs, resp->mutable_grad_probabilities(), lr.logits_shape()) : NoMatrix<T>();
  absl::Span<T> loss_span;
  if (has_targets) {
    const std::vector<int64_t> loss_shape = lr.loss_shape();
    output(loss, resp->mutable_loss(), loss_shape);
    loss_span = absl::MakeSpan(loss->data(), loss_shape.empty() ? 1 : loss_shape[0]);
  }
  // The Jacobian is formed from the probabilities (a half request's from its logits).
  std::vector<T> probs_scratch;
  const MatrixMap<T> probs_map = [&] {
    if (req.return_probabilities()) return output(probs, resp->mutable_probabilities(), lr.logits_shape());
    if (!req.return_jacobian() || kHalf) return NoMatrix<T>();
    probs_scratch.resize(n * c);
    return MatrixMap<T>(probs_scratch.data(), n, c);
  }();

  const ConstMatrixMap<T> upstream_probs =
      grad_probs_in ? ConstMatrixMap<T>(grad_probs_in->data(), n, c) : NoConstMatrix<T>();
  GRADSERVE_ASSIGN_OR_RETURN(
      const LossSummary summary,
      RunLossPass(lr.PassInputs(grad_loss, upstream_probs, chain ? Method::kChainRule : Method::kFused),
                  typename PassTypes<T>::Outputs{probs_map, NoMatrix<T>(), loss_span, grad_map, grad_probs_map},
                  exec));
  for (std::optional<OutputTensor<T>>* t : {&grad, &loss, &grad_probs, &probs}) {
    if (*t) (*t)->Commit();
  }
  if (has_targets) resp->set_reduction_denominator(summary.reduction_denominator);

  if (req.return_jacobian()) {
    OutputTensor<T> jacobian(resp->mutable_jacobian(), lr.Unbatch({n, c, c}), enc, lr.output_half());
    if constexpr (kHalf) {
      GRADSERVE_RETURN_IF_ERROR(HalfSoftmaxJacobian(lr.half_type(), lr.logits(), jacobian.data(), exec));
    } else {
      GRADSERVE_RETURN_IF_ERROR(SoftmaxJacobian<T>(ConstMatrixMap<T>(probs_map.data(), n, c), jacobian.data(), exec));
    }
    jacobian.Commit();
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status RunBackward(const v1::BackwardRequest& req, v1::BackwardResponse* resp,
                         const Limits& limits, const ExecContext& exec) {
  GRADSERVE_ASSIGN_OR_RETURN(const TensorFormat format, LogitsFormat(req.logits()));
  if (HalfTypeOf(format.dtype)) return Backward<uint16_t>(req, resp, limits, format, exec);
  return format.dtype == v1::DATA_TYPE_FLOAT32 ? Backward<float>(req, resp, limits, format, exec)
                                               : Backward<double>(req, resp, limits, format, exec);
}

}  // namespace gradserve
