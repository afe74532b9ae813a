#include "client/response_text.h"

#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/status_macros.h"
#include "client/tensor_codec.h"

namespace gradserve::client {
namespace {

using gradserve::v1::Tensor;

// Axis names from the tensor's rank relative to the logits: a batch axis when there is one.
std::vector<std::string> ClassAxes(const Tensor& t) {
  if (t.shape_size() <= 1) return {"class"};
  return {"row", "class"};
}
std::vector<std::string> JacobianAxes(const Tensor& t) {
  if (t.shape_size() <= 2) return {"class", "class"};
  return {"row", "class", "class"};
}

absl::Status AppendTensor(std::string* out, absl::string_view name, const Tensor& t,
                          const std::vector<std::string>& axes, const TableStyle& style) {
  absl::StatusOr<HostTensor> host = DecodeTensor(t);
  if (!host.ok()) return absl::InvalidArgumentError(absl::StrCat("response ", name, ": ", host.status().message()));
  absl::StrAppend(out, out->empty() ? "" : "\n", FormatTensor(name, *host, DataTypeName(t.dtype()), axes, style));
  return absl::OkStatus();
}

void AppendNumber(std::string* out, absl::string_view name, double v, const TableStyle& style) {
  absl::StrAppend(out, name, "  ", FormatNumber(v, style.precision), "\n");
}

}  // namespace

std::string FindingName(gradserve::v1::FindingCode code) {
  std::string name = gradserve::v1::FindingCode_Name(code);
  if (absl::StartsWith(name, "FINDING_CODE_")) name = name.substr(13);
  return name.empty() ? absl::StrCat("finding ", static_cast<int>(code)) : name;
}

absl::StatusOr<std::string> ForwardText(const gradserve::v1::ForwardResponse& r, const TableStyle& style) {
  std::string out;
  // Absent only when --output took it (a chunked call streams it to the file).
  if (r.has_probabilities()) {
    GRADSERVE_RETURN_IF_ERROR(AppendTensor(&out, "probabilities", r.probabilities(), ClassAxes(r.probabilities()), style));
  }
  if (r.has_log_probabilities()) {
    GRADSERVE_RETURN_IF_ERROR(AppendTensor(&out, "log_probabilities", r.log_probabilities(),
                                                  ClassAxes(r.log_probabilities()), style));
  }
  if (r.has_loss()) {
    GRADSERVE_RETURN_IF_ERROR(AppendTensor(&out, "loss", r.loss(), {"row"}, style));
    if (r.reduction_denominator() != 0) AppendNumber(&out, "reduction_denominator", r.reduction_denominator(), style);
  }
  return out;
}

absl::StatusOr<std::string> BackwardText(const gradserve::v1::BackwardResponse& r, const TableStyle& style) {
  std::string out;
  if (r.has_grad_logits()) {  // absent only when --output took it
    GRADSERVE_RETURN_IF_ERROR(AppendTensor(&out, "grad_logits", r.grad_logits(), ClassAxes(r.grad_logits()), style));
  }
  if (r.has_loss()) {
    GRADSERVE_RETURN_IF_ERROR(AppendTensor(&out, "loss", r.loss(), {"row"}, style));
    if (r.reduction_denominator() != 0) AppendNumber(&out, "reduction_denominator", r.reduction_denominator(), style);
  }
  if (r.has_grad_probabilities()) {
    GRADSERVE_RETURN_IF_ERROR(AppendTensor(&out, "grad_probabilities", r.grad_probabilities(),
                                                  ClassAxes(r.grad_probabilities()), style));
  }
  if (r.has_probabilities()) {
    GRADSERVE_RETURN_IF_ERROR(AppendTensor(&out, "probabilities", r.probabilities(), ClassAxes(r.probabilities()), style));
  }
  if (r.has_jacobian()) {
    GRADSERVE_RETURN_IF_ERROR(AppendTensor(&out, "jacobian", r.jacobian(), JacobianAxes(r.jacobian()), style));
  }
  return out;
}

absl::StatusOr<std::string> VerifyText(const gradserve::v1::VerifyGradientRequest& request,
                                       const gradserve::v1::VerifyGradientResponse& r,
                                       const TableStyle& style) {
  const bool grad_given = request.has_candidate_grad();
  const bool jacobian_given = request.has_candidate_jacobian();
  std::string out;
  if (r.ok()) {
    out = grad_given || jacobian_given
              ? "verdict: OK, the candidate is right\n"
              : "verdict: OK, the analytic gradient matches the numeric derivative (no candidate given)\n";
  } else {
    std::vector<std::string> wrong;
    if (grad_given && !r.candidate_ok()) wrong.push_back("the candidate gradient");
    if (jacobian_given && !r.candidate_jacobian_ok()) wrong.push_back("the candidate Jacobian");
    out = wrong.empty()
              ? "verdict: WRONG, the analytic gradient disagrees with the numeric derivative\n"
              : absl::StrCat("verdict: WRONG, ", absl::StrJoin(wrong, " and "),
                             wrong.size() > 1 ? " are wrong\n" : " is wrong\n");
  }
  if (grad_given) {
    absl::StrAppend(&out, "candidate_grad: max abs error ", FormatNumber(r.candidate_max_abs_error(), style.precision),
                    ", worst at row ", r.worst_row(), ", class ", r.worst_class(), "\n");
  }
  for (const gradserve::v1::Finding& f : r.findings()) {
    absl::StrAppend(&out, "\nfinding ", FindingName(f.code()), " (residual ",
                    FormatNumber(f.residual(), style.precision), ")\n  ", f.message(), "\n");
  }
  std::string tables;
  GRADSERVE_RETURN_IF_ERROR(AppendTensor(&tables, "right gradient (analytic_grad)", r.analytic_grad(),
                                                ClassAxes(r.analytic_grad()), style));
  absl::StrAppend(&out, "\n", tables, "\nanalytic vs numeric: max abs error ",
                  FormatNumber(r.max_abs_error(), style.precision), ", max rel error ",
                  FormatNumber(r.max_rel_error(), style.precision), ", step ",
                  FormatNumber(r.epsilon_used(), style.precision), "\n");
  if (!r.summary().empty()) absl::StrAppend(&out, "\nsummary: ", r.summary(), "\n");
  return out;
}

}  // namespace gradserve::client
