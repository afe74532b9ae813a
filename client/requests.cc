#include "client/requests.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "client/host_tensor.h"
#include "client/inputs.h"

namespace gradserve::client {
namespace {

using gradserve::v1::LossOptions;
using gradserve::v1::Targets;
using gradserve::v1::Tensor;

// The logits, and everything that goes with them, read and encoded.
struct EncodedLoss {
  HostTensor logits;
  bool has_targets = false;
  Targets targets;
  LossOptions options;
  TensorFormat format;  // every tensor's: --dtype, else the logits' own
};

absl::StatusOr<EncodedLoss> EncodeLoss(const LossInputs& in, bool targets_required) {
  EncodedLoss out;
  if (in.logits.empty()) return absl::InvalidArgumentError("--logits is required");
  GRADSERVE_ASSIGN_OR_RETURN(out.logits, ReadTensorArg("--logits", in.logits));
  out.format = in.format;
  if (out.format.dtype == gradserve::v1::DATA_TYPE_UNSPECIFIED) out.format.dtype = out.logits.dtype;
  if (!in.labels.empty() && !in.target_probs.empty()) {
    return absl::InvalidArgumentError("give --labels or --target-probs, not both");
  }
  if (targets_required && in.labels.empty() && in.target_probs.empty()) {
    return absl::InvalidArgumentError("targets are required: give --labels or --target-probs");
  }
  if (!in.labels.empty()) {
    GRADSERVE_ASSIGN_OR_RETURN(HostTensor labels, ReadTensorArg("--labels", in.labels));
    GRADSERVE_ASSIGN_OR_RETURN(std::vector<int64_t> ids, ToClassIndices("--labels", labels));
    out.targets.mutable_class_indices()->mutable_values()->Add(ids.begin(), ids.end());
    out.has_targets = true;
  }
  if (!in.target_probs.empty()) {
    GRADSERVE_ASSIGN_OR_RETURN(HostTensor probs, ReadTensorArg("--target-probs", in.target_probs));
    EncodeTensor(FitToShape(std::move(probs), out.logits.shape), out.format,
                 out.targets.mutable_probabilities());
    out.has_targets = true;
  }
  if (!in.weights.empty()) {
    GRADSERVE_ASSIGN_OR_RETURN(HostTensor weights, ReadTensorArg("--weights", in.weights));
    out.options.mutable_class_weights()->Add(weights.values.begin(), weights.values.end());
  }
  out.options.set_reduction(in.reduction);
  out.options.set_label_smoothing(in.label_smoothing);
  if (in.ignore_index.has_value()) out.options.set_ignore_index(*in.ignore_index);
  return out;
}

// Reads a tensor that has the logits' shape, for flags that may be written with another rank.
absl::Status EncodeLike(absl::string_view flag, const std::string& arg,
                        const std::vector<int64_t>& shape, TensorFormat format, Tensor* out) {
  GRADSERVE_ASSIGN_OR_RETURN(HostTensor t, ReadTensorArg(flag, arg));
  EncodeTensor(FitToShape(std::move(t), shape), format, out);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<gradserve::v1::ForwardRequest> BuildForwardRequest(const ForwardInputs& in) {
  GRADSERVE_ASSIGN_OR_RETURN(EncodedLoss loss, EncodeLoss(in.loss, /*targets_required=*/false));
  gradserve::v1::ForwardRequest request;
  EncodeTensor(loss.logits, loss.format, request.mutable_logits());
  if (loss.has_targets) *request.mutable_targets() = std::move(loss.targets);
  *request.mutable_options() = std::move(loss.options);
  request.set_return_log_probabilities(in.log_probabilities);
  return request;
}

absl::StatusOr<gradserve::v1::BackwardRequest> BuildBackwardRequest(const BackwardInputs& in) {
  const bool upstream = !in.grad_probs.empty();
  if (upstream && (!in.loss.labels.empty() || !in.loss.target_probs.empty())) {
    return absl::InvalidArgumentError("give targets (--labels, --target-probs) or --grad-probs, not both");
  }
  GRADSERVE_ASSIGN_OR_RETURN(EncodedLoss loss, EncodeLoss(in.loss, /*targets_required=*/!upstream));
  gradserve::v1::BackwardRequest request;
  EncodeTensor(loss.logits, loss.format, request.mutable_logits());
  if (loss.has_targets) *request.mutable_targets() = std::move(loss.targets);
  if (upstream) {
    GRADSERVE_RETURN_IF_ERROR(EncodeLike("--grad-probs", in.grad_probs, loss.logits.shape,
                                                loss.format, request.mutable_grad_probabilities()));
  }
  // Options go out only when the user set one: the contract refuses any options with --grad-probs.
  if (loss.options.ByteSizeLong() > 0) *request.mutable_options() = std::move(loss.options);
  if (!in.grad_loss.empty()) {
    // [] for MEAN and SUM, [batch] for NONE on a batch; an inline "2" ([1]) fits either way.
    std::vector<int64_t> shape;
    if (in.loss.reduction == gradserve::v1::REDUCTION_NONE && loss.logits.shape.size() == 2) {
      shape = {loss.logits.shape[0]};
    }
    GRADSERVE_RETURN_IF_ERROR(EncodeLike("--grad-loss", in.grad_loss, shape, loss.format,
                                                request.mutable_grad_loss()));
  }
  request.set_method(in.method);
  request.set_return_jacobian(in.jacobian);
  request.set_return_probabilities(in.probabilities);
  return request;
}

absl::StatusOr<gradserve::v1::VerifyGradientRequest> BuildVerifyRequest(const VerifyInputs& in) {
  GRADSERVE_ASSIGN_OR_RETURN(EncodedLoss loss, EncodeLoss(in.loss, /*targets_required=*/true));
  gradserve::v1::VerifyGradientRequest request;
  EncodeTensor(loss.logits, loss.format, request.mutable_logits());
  *request.mutable_targets() = std::move(loss.targets);
  *request.mutable_options() = std::move(loss.options);
  if (!in.candidate.empty()) {
    GRADSERVE_RETURN_IF_ERROR(EncodeLike("--candidate", in.candidate, loss.logits.shape,
                                                loss.format, request.mutable_candidate_grad()));
  }
  if (!in.candidate_jacobian.empty()) {
    // One classes×classes matrix per row: the logits' shape plus a trailing classes axis.
    std::vector<int64_t> shape = loss.logits.shape;
    shape.push_back(shape.empty() ? 0 : shape.back());
    GRADSERVE_RETURN_IF_ERROR(EncodeLike("--candidate-jacobian", in.candidate_jacobian, shape,
                                                loss.format, request.mutable_candidate_jacobian()));
  }
  request.set_epsilon(in.epsilon);
  request.set_rtol(in.rtol);
  request.set_atol(in.atol);
  request.set_numeric_method(in.numeric_method);
  return request;
}

}  // namespace gradserve::client
