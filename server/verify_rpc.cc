// VerifyGradient: always float64, outputs in the request's encoding.
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/element_count.h"
#include "base/status_macros.h"
#include "lib/verify.h"
#include "server/limits.h"
#include "server/loss_request.h"
#include "server/rpc_logic.h"
#include "server/tensor_codec.h"

namespace gradserve {
namespace {

absl::StatusOr<NumericMethod> ToNumericMethod(v1::NumericMethod m) {
  switch (m) {
    case v1::NUMERIC_METHOD_UNSPECIFIED:  // the most accurate
    case v1::NUMERIC_METHOD_COMPLEX_STEP: return NumericMethod::kComplexStep;
    case v1::NUMERIC_METHOD_CENTRAL_DIFFERENCE: return NumericMethod::kCentralDifference;
    default:
      return absl::InvalidArgumentError(
          absl::StrFormat("numeric_method %d is not a known NumericMethod", m));
  }
}

void Encode(const double* values, const std::vector<int64_t>& shape, Encoding enc, v1::Tensor* out) {
  OutputTensor<double> t(out, shape, enc);
  std::copy(values, values + ElementCount(shape), t.data());
  t.Commit();
}

// Room a finding's code, residual, shape and field tags take beside its message and numbers.
constexpr int64_t kFindingOverheadBytes = 256;
constexpr char kMistakenLeftOut[] =
    " (mistaken_grad left out: with it the response would exceed --max_message_mib)";

// lib numbers FindingCode as the proto does, so a finding's code converts by a cast; these keep
// the two enums in step.
static_assert(static_cast<int>(FindingCode::kJacobianAtLogits) == v1::FINDING_CODE_JACOBIAN_AT_LOGITS);
static_assert(static_cast<int>(FindingCode::kDiagonalOnlyJacobian) ==
              v1::FINDING_CODE_DIAGONAL_ONLY_JACOBIAN);
static_assert(static_cast<int>(FindingCode::kGradientWrtProbabilities) ==
              v1::FINDING_CODE_GRADIENT_WRT_PROBABILITIES);
static_assert(static_cast<int>(FindingCode::kSignFlipped) == v1::FINDING_CODE_SIGN_FLIPPED);
static_assert(static_cast<int>(FindingCode::kMeanScale) == v1::FINDING_CODE_MEAN_SCALE);
static_assert(static_cast<int>(FindingCode::kSoftmaxNotApplied) == v1::FINDING_CODE_SOFTMAX_NOT_APPLIED);
static_assert(static_cast<int>(FindingCode::kOptionIgnored) == v1::FINDING_CODE_OPTION_IGNORED);
static_assert(static_cast<int>(FindingCode::kUnexplained) == v1::FINDING_CODE_UNEXPLAINED);
static_assert(v1::FindingCode_MAX == v1::FINDING_CODE_UNEXPLAINED,
              "the proto has a FindingCode that lib's FindingCode lacks");

v1::FindingCode ToProto(FindingCode code) { return static_cast<v1::FindingCode>(code); }

}  // namespace

absl::Status RunVerifyGradient(const v1::VerifyGradientRequest& req,
                               v1::VerifyGradientResponse* resp, const Limits& limits,
                               const ExecContext& exec) {
  GRADSERVE_ASSIGN_OR_RETURN(const TensorFormat format, LogitsFormat(req.logits()));
  if (!HasTargets(req.has_targets(), req.targets())) {
    return absl::InvalidArgumentError("VerifyGradient needs targets (class_indices or probabilities)");
  }
  GRADSERVE_ASSIGN_OR_RETURN(const NumericMethod method, ToNumericMethod(req.numeric_method()));
  GRADSERVE_ASSIGN_OR_RETURN(
      const LossRequest<double> lr,
      LossRequest<double>::Decode(req.logits(), &req.targets(), req.options(), limits));
  VerifyRequest vr{lr.problem()};
  vr.options.numeric_method = method;
  vr.options.epsilon = req.epsilon();
  vr.options.rtol = req.rtol() == 0.0 ? 1e-5 : req.rtol();
  vr.options.atol = req.atol() == 0.0 ? 1e-8 : req.atol();
  const int64_t n = lr.rows(), c = lr.classes();
  // Without a candidate Jacobian verification is O(batch · classes), bounded by the element and
  // message limits like any tensor; only checking a Jacobian costs batch · classes².
  if (req.has_candidate_jacobian()) {
    GRADSERVE_RETURN_IF_ERROR(CheckCubicLimit("VerifyGradient with candidate_jacobian", n, c,
                                              limits.max_verify_work, "--max_verify_work"));
  }
  GRADSERVE_RETURN_IF_ERROR(CheckResponseSize(
      2 * WireBytes(n * c, v1::DATA_TYPE_FLOAT64, format.encoding), limits, "analytic and numeric gradients"));
  vr.options.unbatched = lr.unbatched();

  std::optional<InputTensor<double>> candidate, candidate_jacobian;
  if (req.has_candidate_grad()) {
    GRADSERVE_ASSIGN_OR_RETURN(candidate, DecodeTensor<double>(req.candidate_grad(), "candidate_grad", limits));
    if (candidate->shape() != lr.logits_shape()) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "candidate_grad has shape %s but logits have shape %s", FormatShape(candidate->shape()),
          FormatShape(lr.logits_shape())));
    }
    vr.candidate_grad = candidate->data();
  }
  const std::vector<int64_t> jacobian_shape = lr.Unbatch({n, c, c});
  if (req.has_candidate_jacobian()) {
    GRADSERVE_RETURN_IF_ERROR(CheckCubicLimit("candidate_jacobian", n, c, limits.max_jacobian_elements,
                                              "--max_jacobian_elements"));
    GRADSERVE_ASSIGN_OR_RETURN(candidate_jacobian,
                               DecodeTensor<double>(req.candidate_jacobian(), "candidate_jacobian", limits));
    if (candidate_jacobian->shape() != jacobian_shape) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "candidate_jacobian has shape %s but must be %s", FormatShape(candidate_jacobian->shape()),
          FormatShape(jacobian_shape)));
    }
    vr.candidate_jacobian = candidate_jacobian->data();
  }

  GRADSERVE_ASSIGN_OR_RETURN(const VerifyResult r, VerifyGradient(vr, exec));
  const Encoding enc = format.encoding;
  resp->set_ok(r.ok);
  Encode(r.analytic_grad.data(), lr.logits_shape(), enc, resp->mutable_analytic_grad());
  Encode(r.numeric_grad.data(), lr.logits_shape(), enc, resp->mutable_numeric_grad());
  resp->set_max_abs_error(r.max_abs_error);
  resp->set_max_rel_error(r.max_rel_error);
  resp->set_candidate_ok(r.candidate_ok);
  resp->set_candidate_max_abs_error(r.candidate_max_abs_error);
  resp->set_candidate_jacobian_ok(r.candidate_jacobian_ok);
  resp->set_worst_row(r.worst_row);
  resp->set_worst_class(r.worst_class);
  resp->set_epsilon_used(r.epsilon_used);
  resp->set_summary(r.summary);
  // Each finding carries a whole gradient (or Jacobian), and how many there are is known only
  // after the work: one that would take the response past --max_message_mib goes without it.
  int64_t room = limits.max_message_bytes - static_cast<int64_t>(resp->ByteSizeLong());
  for (const Finding& f : r.findings) {
    v1::Finding* out = resp->add_findings();
    out->set_code(ToProto(f.code));
    out->set_residual(f.residual);
    const int64_t bytes =
        WireBytes(static_cast<int64_t>(f.mistaken.size()), v1::DATA_TYPE_FLOAT64, enc) +
        static_cast<int64_t>(f.message.size()) + kFindingOverheadBytes;
    if (f.mistaken.empty() || bytes <= room) {
      out->set_message(f.message);
      if (!f.mistaken.empty()) {
        Encode(f.mistaken.data(), f.is_jacobian ? jacobian_shape : lr.logits_shape(), enc,
               out->mutable_mistaken_grad());
      }
    } else {
      out->set_message(absl::StrCat(f.message, kMistakenLeftOut));
    }
    room -= static_cast<int64_t>(out->ByteSizeLong()) + 8;  // + the field's tag and length
  }
  return absl::OkStatus();
}

}  // namespace gradserve
