// Forward: softmax (and log-softmax), plus the loss when targets are given. One flow for every
// dtype: decode, check the limits, size the outputs in the response, one library pass
// (lib/loss_pass.h) that validates and fills them all, commit.
#include <optional>

#include "base/status_macros.h"
#include "lib/half_rows.h"
#include "lib/loss_pass.h"
#include "server/limits.h"
#include "server/loss_request.h"
#include "server/rpc_logic.h"
#include "server/tensor_codec.h"

namespace gradserve {
namespace {

// T is the compute type: float, double, or uint16_t for a FLOAT16 / BFLOAT16 request (the math
// in float32 over bounded blocks of rows, outputs rounded back).
template <typename T>
absl::Status Forward(const v1::ForwardRequest& req, v1::ForwardResponse* resp, const Limits& limits,
                     const TensorFormat& format, const ExecContext& exec) {
  const bool has_targets = HasTargets(req.has_targets(), req.targets());
  GRADSERVE_ASSIGN_OR_RETURN(
      const LossRequest<T> lr,
      LossRequest<T>::Decode(req.logits(), has_targets ? &req.targets() : nullptr, req.options(), limits));
  const int64_t n = lr.rows(), c = lr.classes();
  const int64_t tensor_bytes = WireBytes(n * c, format.dtype, format.encoding);
  GRADSERVE_RETURN_IF_ERROR(CheckResponseSize(
      tensor_bytes * (req.return_log_probabilities() ? 2 : 1), limits, "probabilities"));

  std::optional<OutputTensor<T>> probs, log_probs, loss;
  auto output = [&](std::optional<OutputTensor<T>>& t, v1::Tensor* proto, const std::vector<int64_t>& shape) {
    t.emplace(proto, shape, format.encoding, lr.output_half());
    return MatrixMap<T>(t->data(), n, c);
  };
  const MatrixMap<T> probs_map = output(probs, resp->mutable_probabilities(), lr.logits_shape());
  const MatrixMap<T> log_probs_map =
      req.return_log_probabilities()
          ? output(log_probs, resp->mutable_log_probabilities(), lr.logits_shape())
          : NoMatrix<T>();
  absl::Span<T> loss_span;
  if (has_targets) {
    const std::vector<int64_t> loss_shape = lr.loss_shape();
    output(loss, resp->mutable_loss(), loss_shape);
    loss_span = absl::MakeSpan(loss->data(), loss_shape.empty() ? 1 : loss_shape[0]);
  }
  GRADSERVE_ASSIGN_OR_RETURN(
      const LossSummary summary,
      RunLossPass(lr.PassInputs({}, NoConstMatrix<T>(), Method::kFused),
                  typename PassTypes<T>::Outputs{probs_map, log_probs_map, loss_span}, exec));
  for (std::optional<OutputTensor<T>>* t : {&probs, &log_probs, &loss}) {
    if (*t) (*t)->Commit();
  }
  if (has_targets) resp->set_reduction_denominator(summary.reduction_denominator);
  return absl::OkStatus();
}

}  // namespace

absl::Status RunForward(const v1::ForwardRequest& req, v1::ForwardResponse* resp,
                        const Limits& limits, const ExecContext& exec) {
  GRADSERVE_ASSIGN_OR_RETURN(const TensorFormat format, LogitsFormat(req.logits()));
  if (HalfTypeOf(format.dtype)) return Forward<uint16_t>(req, resp, limits, format, exec);
  return format.dtype == v1::DATA_TYPE_FLOAT32 ? Forward<float>(req, resp, limits, format, exec)
                                               : Forward<double>(req, resp, limits, format, exec);
}

}  // namespace gradserve
