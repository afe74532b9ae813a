// Forward: softmax (and log-softmax), plus the loss when targets are given.
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

  OutputTensor<T> probabilities(resp->mutable_probabilities(), lr.logits_shape(), format.encoding);
  std::optional<OutputTensor<T>> log_probabilities;
  if (req.return_log_probabilities()) {
    log_probabilities.emplace(resp->mutable_log_probabilities(), lr.logits_shape(), format.encoding);
  }
  GRADSERVE_RETURN_IF_ERROR(Softmax<T>(
      lr.logits(), MatrixMap<T>(probabilities.data(), n, c),
      log_probabilities ? MatrixMap<T>(log_probabilities->data(), n, c) : NoMatrix<T>(), exec));
  probabilities.Commit();
  if (log_probabilities) log_probabilities->Commit();

  if (has_targets) {
    const std::vector<int64_t> loss_shape = lr.loss_shape();
    OutputTensor<T> loss(resp->mutable_loss(), loss_shape, format.encoding);
    GRADSERVE_ASSIGN_OR_RETURN(
        const LossSummary summary,
        CrossEntropy<T>(lr.problem(), {}, Method::kFused,
                        {absl::MakeSpan(loss.data(), loss_shape.empty() ? 1 : loss_shape[0])}, exec));
    loss.Commit();
    resp->set_reduction_denominator(summary.reduction_denominator);
  }
  return absl::OkStatus();
}

// A FLOAT16 / BFLOAT16 request: the same in float32 over bounded blocks, outputs rounded back.
absl::Status ForwardHalf(const v1::ForwardRequest& req, v1::ForwardResponse* resp,
                         const Limits& limits, const TensorFormat& format, const ExecContext& exec) {
  const bool has_targets = HasTargets(req.has_targets(), req.targets());
  GRADSERVE_ASSIGN_OR_RETURN(
      const LossRequest<uint16_t> lr,
      LossRequest<uint16_t>::Decode(req.logits(), has_targets ? &req.targets() : nullptr, req.options(), limits));
  const int64_t n = lr.rows(), c = lr.classes();
  const HalfType type = lr.half_type();
  const int64_t tensor_bytes = WireBytes(n * c, format.dtype, format.encoding);
  GRADSERVE_RETURN_IF_ERROR(CheckResponseSize(
      tensor_bytes * (req.return_log_probabilities() ? 2 : 1), limits, "probabilities"));

  OutputTensor<uint16_t> probabilities(resp->mutable_probabilities(), lr.logits_shape(), format.encoding, type);
  std::optional<OutputTensor<uint16_t>> log_probabilities;
  if (req.return_log_probabilities()) {
    log_probabilities.emplace(resp->mutable_log_probabilities(), lr.logits_shape(), format.encoding, type);
  }
  GRADSERVE_RETURN_IF_ERROR(HalfSoftmax(
      type, lr.logits(), HalfMatrixOut(probabilities.data(), n, c),
      log_probabilities ? HalfMatrixOut(log_probabilities->data(), n, c) : NoMatrix<uint16_t>(), exec));
  probabilities.Commit();
  if (log_probabilities) log_probabilities->Commit();

  if (has_targets) {
    const std::vector<int64_t> loss_shape = lr.loss_shape();
    OutputTensor<uint16_t> loss(resp->mutable_loss(), loss_shape, format.encoding, type);
    GRADSERVE_ASSIGN_OR_RETURN(
        const LossSummary summary,
        HalfCrossEntropy(lr.half_problem(), {}, Method::kFused,
                         {absl::MakeSpan(loss.data(), loss_shape.empty() ? 1 : loss_shape[0])}, exec));
    loss.Commit();
    resp->set_reduction_denominator(summary.reduction_denominator);
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status RunForward(const v1::ForwardRequest& req, v1::ForwardResponse* resp,
                        const Limits& limits, const ExecContext& exec) {
  GRADSERVE_ASSIGN_OR_RETURN(const TensorFormat format, LogitsFormat(req.logits()));
  if (HalfTypeOf(format.dtype)) return ForwardHalf(req, resp, limits, format, exec);
  return format.dtype == v1::DATA_TYPE_FLOAT32 ? Forward<float>(req, resp, limits, format, exec)
                                               : Forward<double>(req, resp, limits, format, exec);
}

}  // namespace gradserve
