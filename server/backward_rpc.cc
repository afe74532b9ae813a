// Backward: dL/dz of cross-entropy (FUSED or CHAIN_RULE), or the softmax VJP of an upstream dL/dA.
#include <optional>

#include "absl/strings/str_format.h"
#include "base/status_macros.h"
#include "lib/cross_entropy.h"
#include "lib/half_rows.h"
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

template <typename T>
absl::Status Backward(const v1::BackwardRequest& req, v1::BackwardResponse* resp,
                      const Limits& limits, const TensorFormat& format, const ExecContext& exec) {
  const bool has_targets = HasTargets(req.has_targets(), req.targets());
  GRADSERVE_RETURN_IF_ERROR(ValidateCombination(req, has_targets));
  GRADSERVE_ASSIGN_OR_RETURN(
      const LossRequest<T> lr,
      LossRequest<T>::Decode(req.logits(), has_targets ? &req.targets() : nullptr, req.options(), limits));
  const int64_t n = lr.rows(), c = lr.classes();
  const Encoding enc = format.encoding;
  const bool chain = req.method() == v1::METHOD_CHAIN_RULE;

  GRADSERVE_RETURN_IF_ERROR(CheckBackwardResponse(req, n, c, limits, format));

  std::optional<InputTensor<T>> grad_probs_in;
  std::optional<InputTensor<T>> grad_loss;
  if (!has_targets) {
    GRADSERVE_ASSIGN_OR_RETURN(grad_probs_in,
                               DecodeTensor<T>(req.grad_probabilities(), "grad_probabilities", limits));
    GRADSERVE_RETURN_IF_ERROR(ValidateShape("grad_probabilities", grad_probs_in->shape(),
                                            lr.logits_shape(), "logits have shape"));
  } else if (req.has_grad_loss()) {
    GRADSERVE_ASSIGN_OR_RETURN(grad_loss, DecodeTensor<T>(req.grad_loss(), "grad_loss", limits));
    GRADSERVE_RETURN_IF_ERROR(ValidateShape(
        "grad_loss", grad_loss->shape(), lr.loss_shape(),
        req.options().reduction() == v1::REDUCTION_NONE ? "the loss (reduction NONE) has shape"
                                                        : "the loss has shape"));
  }

  OutputTensor<T> grad(resp->mutable_grad_logits(), lr.logits_shape(), enc);
  const MatrixMap<T> grad_map(grad.data(), n, c);
  // Probabilities are needed for the VJP, the Jacobian and when asked for.
  std::optional<OutputTensor<T>> probs_out;
  std::vector<T> probs_scratch;
  T* probs = nullptr;
  if (req.return_probabilities()) {
    probs_out.emplace(resp->mutable_probabilities(), lr.logits_shape(), enc);
    probs = probs_out->data();
  } else if (!has_targets || req.return_jacobian()) {
    probs_scratch.resize(n * c);
    probs = probs_scratch.data();
  }
  if (probs != nullptr) {
    GRADSERVE_RETURN_IF_ERROR(
        Softmax<T>(lr.logits(), MatrixMap<T>(probs, n, c), NoMatrix<T>(), exec));
  }

  if (!has_targets) {
    const ConstMatrixMap<T> g(grad_probs_in->data(), n, c);
    GRADSERVE_RETURN_IF_ERROR(SoftmaxVjp<T>(ConstMatrixMap<T>(probs, n, c), g, grad_map, exec));
    if (chain) {  // dL/dA is the caller's own
      OutputTensor<T> echo(resp->mutable_grad_probabilities(), lr.logits_shape(), enc);
      std::copy(g.data(), g.data() + n * c, echo.data());
      echo.Commit();
    }
  } else {
    const std::vector<int64_t> loss_shape = lr.loss_shape();
    OutputTensor<T> loss(resp->mutable_loss(), loss_shape, enc);
    std::optional<OutputTensor<T>> grad_probs;
    if (chain) grad_probs.emplace(resp->mutable_grad_probabilities(), lr.logits_shape(), enc);
    const LossOutputs<T> outputs{absl::MakeSpan(loss.data(), loss_shape.empty() ? 1 : loss_shape[0]),
                                 grad_map,
                                 chain ? MatrixMap<T>(grad_probs->data(), n, c) : NoMatrix<T>()};
    const absl::Span<const T> upstream =
        grad_loss ? absl::MakeConstSpan(grad_loss->data(), grad_loss->size()) : absl::Span<const T>();
    GRADSERVE_ASSIGN_OR_RETURN(
        const LossSummary summary,
        CrossEntropy<T>(lr.problem(), upstream, chain ? Method::kChainRule : Method::kFused, outputs, exec));
    loss.Commit();
    if (grad_probs) grad_probs->Commit();
    resp->set_reduction_denominator(summary.reduction_denominator);
  }
  grad.Commit();
  if (probs_out) probs_out->Commit();

  if (req.return_jacobian()) {
    OutputTensor<T> jacobian(resp->mutable_jacobian(), lr.Unbatch({n, c, c}), enc);
    GRADSERVE_RETURN_IF_ERROR(SoftmaxJacobian<T>(ConstMatrixMap<T>(probs, n, c), jacobian.data(), exec));
    jacobian.Commit();
  }
  return absl::OkStatus();
}

// A FLOAT16 / BFLOAT16 request: every input rounded to the logits' half type, the math in float32
// over bounded blocks of rows, every output rounded back.
absl::Status BackwardHalf(const v1::BackwardRequest& req, v1::BackwardResponse* resp,
                          const Limits& limits, const TensorFormat& format, const ExecContext& exec) {
  const bool has_targets = HasTargets(req.has_targets(), req.targets());
  GRADSERVE_RETURN_IF_ERROR(ValidateCombination(req, has_targets));
  GRADSERVE_ASSIGN_OR_RETURN(
      const LossRequest<uint16_t> lr,
      LossRequest<uint16_t>::Decode(req.logits(), has_targets ? &req.targets() : nullptr, req.options(), limits));
  const int64_t n = lr.rows(), c = lr.classes();
  const HalfType type = lr.half_type();
  const Encoding enc = format.encoding;
  const bool chain = req.method() == v1::METHOD_CHAIN_RULE;
  GRADSERVE_RETURN_IF_ERROR(CheckBackwardResponse(req, n, c, limits, format));

  std::optional<InputTensor<uint16_t>> grad_probs_in;
  std::vector<float> grad_loss;  // widened: one value, or one per row
  if (!has_targets) {
    GRADSERVE_ASSIGN_OR_RETURN(grad_probs_in, DecodeHalfTensor(req.grad_probabilities(), "grad_probabilities", limits, type));
    GRADSERVE_RETURN_IF_ERROR(ValidateShape("grad_probabilities", grad_probs_in->shape(),
                                            lr.logits_shape(), "logits have shape"));
  } else if (req.has_grad_loss()) {
    GRADSERVE_ASSIGN_OR_RETURN(const InputTensor<uint16_t> g,
                               DecodeHalfTensor(req.grad_loss(), "grad_loss", limits, type));
    GRADSERVE_RETURN_IF_ERROR(ValidateShape(
        "grad_loss", g.shape(), lr.loss_shape(),
        req.options().reduction() == v1::REDUCTION_NONE ? "the loss (reduction NONE) has shape"
                                                        : "the loss has shape"));
    grad_loss.resize(g.size());
    WidenHalf(type, g.data(), grad_loss.data(), g.size());
  }

  auto out = [&](v1::Tensor* proto, std::vector<int64_t> shape) {
    return OutputTensor<uint16_t>(proto, shape, enc, type);
  };
  OutputTensor<uint16_t> grad = out(resp->mutable_grad_logits(), lr.logits_shape());
  const HalfMatrixOut grad_map(grad.data(), n, c);
  std::optional<OutputTensor<uint16_t>> probs_out;
  if (req.return_probabilities()) probs_out.emplace(resp->mutable_probabilities(), lr.logits_shape(), enc, type);
  const HalfMatrixOut probs_map = probs_out ? HalfMatrixOut(probs_out->data(), n, c) : NoMatrix<uint16_t>();

  if (!has_targets) {
    const HalfMatrix g(grad_probs_in->data(), n, c);
    GRADSERVE_RETURN_IF_ERROR(HalfSoftmaxVjp(type, lr.logits(), g, grad_map, probs_map, exec));
    if (chain) {  // dL/dA is the caller's own, as rounded to the half type
      OutputTensor<uint16_t> echo = out(resp->mutable_grad_probabilities(), lr.logits_shape());
      std::copy(g.data(), g.data() + n * c, echo.data());
      echo.Commit();
    }
  } else {
    const std::vector<int64_t> loss_shape = lr.loss_shape();
    OutputTensor<uint16_t> loss = out(resp->mutable_loss(), loss_shape);
    std::optional<OutputTensor<uint16_t>> grad_probs;
    if (chain) grad_probs.emplace(resp->mutable_grad_probabilities(), lr.logits_shape(), enc, type);
    const HalfLossOutputs outputs{absl::MakeSpan(loss.data(), loss_shape.empty() ? 1 : loss_shape[0]),
                                  grad_map,
                                  chain ? HalfMatrixOut(grad_probs->data(), n, c) : NoMatrix<uint16_t>()};
    GRADSERVE_ASSIGN_OR_RETURN(
        const LossSummary summary,
        HalfCrossEntropy(lr.half_problem(), grad_loss, chain ? Method::kChainRule : Method::kFused, outputs, exec));
    loss.Commit();
    if (grad_probs) grad_probs->Commit();
    resp->set_reduction_denominator(summary.reduction_denominator);
    if (probs_out) GRADSERVE_RETURN_IF_ERROR(HalfSoftmax(type, lr.logits(), probs_map, NoMatrix<uint16_t>(), exec));
  }
  grad.Commit();
  if (probs_out) probs_out->Commit();

  if (req.return_jacobian()) {
    OutputTensor<uint16_t> jacobian = out(resp->mutable_jacobian(), lr.Unbatch({n, c, c}));
    GRADSERVE_RETURN_IF_ERROR(HalfSoftmaxJacobian(type, lr.logits(), jacobian.data(), exec));
    jacobian.Commit();
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status RunBackward(const v1::BackwardRequest& req, v1::BackwardResponse* resp,
                         const Limits& limits, const ExecContext& exec) {
  GRADSERVE_ASSIGN_OR_RETURN(const TensorFormat format, LogitsFormat(req.logits()));
  if (HalfTypeOf(format.dtype)) return BackwardHalf(req, resp, limits, format, exec);
  return format.dtype == v1::DATA_TYPE_FLOAT32 ? Backward<float>(req, resp, limits, format, exec)
                                               : Backward<double>(req, resp, limits, format, exec);
}

}  // namespace gradserve
