#include "client/chunk_plan.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "client/inputs.h"

namespace gradserve::client {
namespace {

using gradserve::v1::REDUCTION_MEAN;
using gradserve::v1::REDUCTION_NONE;
using gradserve::v1::REDUCTION_SUM;
using gradserve::v1::REDUCTION_UNSPECIFIED;

// The server's default element limits (--max_elements, --max_jacobian_elements): chunks stay
// within them as well as within the message limit.
constexpr int64_t kMaxElements = int64_t{1} << 25;
constexpr int64_t kMaxJacobianElements = int64_t{1} << 24;
// Room for everything in a message besides its big tensors (less for the tiny limits of tests).
int64_t OverheadBytes(int64_t limit_bytes) { return std::min<int64_t>(64 << 10, limit_bytes / 16); }

// `values` rounded to `dtype` as the server reads them, so MEAN's scale matches a single call's.
std::vector<double> RoundedTo(std::vector<double> values, gradserve::v1::DataType dtype) {
  std::string raw(values.size() * ItemSize(dtype), '\0');
  EncodeRawValues(values.data(), values.size(), dtype, raw.data());
  DecodeRawValues(raw.data(), values.size(), dtype, values.data());
  return values;
}

absl::Status CheckShape(absl::string_view flag, const RowSource& s, int64_t rows, int64_t columns) {
  if (s.shape() == std::vector<int64_t>{rows, columns}) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(flag, " has shape ", ShapeString(s.shape()),
                                                  ", expected the logits' ", ShapeString({rows, columns})));
}

}  // namespace

absl::StatusOr<std::optional<ChunkPlan>> PlanChunks(const LossInputs& loss, const std::string& grad_probs,
                                                    const std::string& grad_loss, int response_tensors,
                                                    bool jacobian, bool targets_required, int64_t limit_bytes,
                                                    int64_t chunk_bytes) {
  if (loss.logits.empty()) return absl::InvalidArgumentError("--logits is required");
  GRADSERVE_ASSIGN_OR_RETURN(RowSource logits, RowSource::Open("--logits", loss.logits));
  if (logits.shape().size() != 2) return std::nullopt;
  ChunkPlan p{std::move(logits)};
  p.rows = p.logits.shape()[0];
  p.columns = p.logits.shape()[1];
  p.format = loss.format;
  if (p.format.dtype == gradserve::v1::DATA_TYPE_UNSPECIFIED) p.format.dtype = p.logits.dtype();
  const int64_t item = p.format.encoding == Encoding::kRaw ? ItemSize(p.format.dtype) : 8;
  const int64_t row_request = p.columns * item * (1 + !loss.target_probs.empty() + !grad_probs.empty()) + 16;
  const int64_t row_response = p.columns * item * response_tensors + (jacobian ? p.columns * p.columns * item : 0) + 16;
  const int64_t row_bytes = std::max(row_request, row_response);
  if (p.rows <= (limit_bytes - OverheadBytes(limit_bytes)) / row_bytes) return std::nullopt;
  chunk_bytes = std::min(chunk_bytes, limit_bytes);
  p.rows_per_chunk = std::max<int64_t>(1, (chunk_bytes - OverheadBytes(chunk_bytes)) / row_bytes);
  p.rows_per_chunk = std::min(p.rows_per_chunk, std::max<int64_t>(1, kMaxElements / std::max<int64_t>(1, p.columns)));
  if (jacobian) {
    p.rows_per_chunk = std::min(p.rows_per_chunk,
                                std::max<int64_t>(1, kMaxJacobianElements / std::max<int64_t>(1, p.columns * p.columns)));
  }
  p.chunks = (p.rows + p.rows_per_chunk - 1) / p.rows_per_chunk;

  const bool upstream = !grad_probs.empty();
  if (upstream && (!loss.labels.empty() || !loss.target_probs.empty())) {
    return absl::InvalidArgumentError("give targets (--labels, --target-probs) or --grad-probs, not both");
  }
  if (!loss.labels.empty() && !loss.target_probs.empty()) {
    return absl::InvalidArgumentError("give --labels or --target-probs, not both");
  }
  if (targets_required && !upstream && loss.labels.empty() && loss.target_probs.empty()) {
    return absl::InvalidArgumentError("targets are required: give --labels or --target-probs");
  }
  if (!loss.labels.empty()) {
    GRADSERVE_ASSIGN_OR_RETURN(HostTensor labels, ReadTensorArg("--labels", loss.labels));
    GRADSERVE_ASSIGN_OR_RETURN(p.labels, ToClassIndices("--labels", labels));
    if (static_cast<int64_t>(p.labels.size()) != p.rows) {
      return absl::InvalidArgumentError(absl::StrCat("--labels has ", p.labels.size(), " class indices, the logits ",
                                                     p.rows, " rows"));
    }
    p.has_labels = true;
  }
  if (!loss.target_probs.empty()) {
    GRADSERVE_ASSIGN_OR_RETURN(RowSource probs, RowSource::Open("--target-probs", loss.target_probs));
    GRADSERVE_RETURN_IF_ERROR(CheckShape("--target-probs", probs, p.rows, p.columns));
    p.target_probs = std::move(probs);
  }
  if (upstream) {
    GRADSERVE_ASSIGN_OR_RETURN(RowSource g, RowSource::Open("--grad-probs", grad_probs));
    GRADSERVE_RETURN_IF_ERROR(CheckShape("--grad-probs", g, p.rows, p.columns));
    p.grad_probs = std::move(g);
  }
  std::vector<double> weights;
  if (!loss.weights.empty()) {
    GRADSERVE_ASSIGN_OR_RETURN(HostTensor w, ReadTensorArg("--weights", loss.weights));
    weights = w.values;
    p.options.mutable_class_weights()->Add(weights.begin(), weights.end());
  }
  p.reduction = loss.reduction == REDUCTION_UNSPECIFIED ? REDUCTION_MEAN : loss.reduction;
  p.options.set_label_smoothing(loss.label_smoothing);
  if (loss.ignore_index.has_value()) p.options.set_ignore_index(*loss.ignore_index);
  // With --grad-probs the user's options go as given, for the server to refuse as in one call.
  p.options.set_reduction(upstream ? loss.reduction : p.reduction == REDUCTION_MEAN ? REDUCTION_SUM : p.reduction);
  if (!grad_loss.empty()) {
    GRADSERVE_ASSIGN_OR_RETURN(HostTensor g, ReadTensorArg("--grad-loss", grad_loss));
    const bool per_row = p.reduction == REDUCTION_NONE;
    if (g.values.size() != (per_row ? static_cast<size_t>(p.rows) : 1u)) {
      return absl::InvalidArgumentError(absl::StrCat("--grad-loss has ", g.values.size(), " values, expected ",
                                                     per_row ? p.rows : 1, per_row ? " (one per row)" : ""));
    }
    p.grad_loss = RoundedTo(g.values, p.format.dtype);
  }
  if (p.reduction == REDUCTION_MEAN && !upstream) {
    // The server's own: Σ in row order, in double, over the rows that count.
    if (p.target_probs.has_value() || !p.has_labels) {
      p.denominator = static_cast<double>(p.rows);
    } else {
      for (int64_t y : p.labels) {
        if (loss.ignore_index.has_value() && y == *loss.ignore_index) continue;
        if (y < 0 || y >= p.columns) continue;  // the server refuses the chunk with its message
        p.denominator += weights.empty() ? 1.0 : y < static_cast<int64_t>(weights.size()) ? weights[y] : 0.0;
      }
    }
  }
  return std::optional<ChunkPlan>(std::move(p));
}

namespace {

absl::Status FillTargets(const ChunkPlan& p, int64_t chunk, gradserve::v1::Targets* targets, bool* any) {
  *any = true;
  if (p.has_labels) {
    auto begin = p.labels.begin() + p.Begin(chunk);
    targets->mutable_class_indices()->mutable_values()->Add(begin, begin + p.Count(chunk));
    return absl::OkStatus();
  }
  if (p.target_probs.has_value()) {
    return p.target_probs->Read(p.Begin(chunk), p.Count(chunk), p.format, targets->mutable_probabilities());
  }
  *any = false;
  return absl::OkStatus();
}

// Options go out only when one differs from the default, as in a single call (docs/api.md refuses
// any options with grad_probabilities).
bool HasOptions(const gradserve::v1::LossOptions& o) { return o.ByteSizeLong() > 0; }

}  // namespace

absl::Status FillForward(const ChunkPlan& p, int64_t chunk, const ForwardInputs& in,
                         gradserve::v1::ForwardRequest* request) {
  GRADSERVE_RETURN_IF_ERROR(p.logits.Read(p.Begin(chunk), p.Count(chunk), p.format, request->mutable_logits()));
  bool any = false;
  GRADSERVE_RETURN_IF_ERROR(FillTargets(p, chunk, request->mutable_targets(), &any));
  if (!any) request->clear_targets();
  *request->mutable_options() = p.options;
  request->set_return_log_probabilities(in.log_probabilities);
  return absl::OkStatus();
}

absl::Status FillBackward(const ChunkPlan& p, int64_t chunk, const BackwardInputs& in,
                          gradserve::v1::BackwardRequest* request) {
  GRADSERVE_RETURN_IF_ERROR(p.logits.Read(p.Begin(chunk), p.Count(chunk), p.format, request->mutable_logits()));
  bool any = false;
  GRADSERVE_RETURN_IF_ERROR(FillTargets(p, chunk, request->mutable_targets(), &any));
  if (!any) request->clear_targets();
  if (p.grad_probs.has_value()) {
    GRADSERVE_RETURN_IF_ERROR(
        p.grad_probs->Read(p.Begin(chunk), p.Count(chunk), p.format, request->mutable_grad_probabilities()));
  }
  if (HasOptions(p.options)) *request->mutable_options() = p.options;
  std::vector<double> g;
  std::vector<int64_t> shape;
  if (p.reduction == REDUCTION_MEAN && any) {
    // The single call's scale, (1/D)·g, computed as the server computes it; 0/0 is torch's NaN.
    const double scale = p.denominator == 0.0 ? std::numeric_limits<double>::quiet_NaN() : 1.0 / p.denominator;
    g = {scale * (p.grad_loss.empty() ? 1.0 : p.grad_loss[0])};
  } else if (p.reduction == REDUCTION_NONE && !p.grad_loss.empty()) {
    g.assign(p.grad_loss.begin() + p.Begin(chunk), p.grad_loss.begin() + p.Begin(chunk) + p.Count(chunk));
    shape = {p.Count(chunk)};
  } else if (!p.grad_loss.empty()) {
    g = p.grad_loss;
  }
  if (!g.empty()) {
    HostTensor t{shape, g};
    EncodeTensor(t, p.format, request->mutable_grad_loss());
  }
  request->set_method(in.method);
  request->set_return_jacobian(in.jacobian);
  request->set_return_probabilities(in.probabilities);
  return absl::OkStatus();
}

}  // namespace gradserve::client
