// Softmax and cross-entropy over half-precision tensors (float16 or bfloat16 bit patterns), the
// way PyTorch computes them: inputs widened exactly to float32, the math in float32, each output
// rounded to the half type (to nearest, ties to even).
//
// HalfLossPass is LossPass (lib/loss_pass.h) for half tensors, and the other functions are it
// asked for fewer outputs. No float32 copy of a whole tensor is made: rows are widened in bounded
// blocks (about 256 KiB of float32 per array, at least one row) into per-block scratch, the
// float32 pass runs on the block, and the block's outputs are rounded straight into the caller's
// half buffers.
// Blocks run in parallel like any row loop. The results are those of one float32 call over the
// whole widened batch, bit for bit: MEAN's denominator, the upstream gradient it scales and the
// reduced loss are formed over the whole batch (blocks run with REDUCTION_NONE and a per-row
// upstream gradient of grad_loss / denominator), with PyTorch's NaN cases.
//
//   HalfLossProblem p{HalfType::kBFloat16, logits, HalfTargets::ClassIndices(ids), LossOptions{}};
//   uint16_t loss;
//   absl::StatusOr<LossSummary> s = HalfCrossEntropy(
//       p, {}, Method::kFused, {absl::MakeSpan(&loss, 1), grad}, ExecContext{});
#ifndef GRADSERVE_LIB_HALF_ROWS_H_
#define GRADSERVE_LIB_HALF_ROWS_H_

#include <cstdint>
#include <optional>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "lib/cross_entropy.h"
#include "lib/half.h"
#include "lib/parallel.h"
#include "lib/tensor.h"

namespace gradserve {

using HalfMatrix = ConstMatrixMap<uint16_t>;   // half bit patterns, [rows, cols]
using HalfMatrixOut = MatrixMap<uint16_t>;

struct HalfTargets {
  static HalfTargets ClassIndices(absl::Span<const int64_t> ids) { return {ids, NoConstMatrix<uint16_t>(), false}; }
  static HalfTargets Probabilities(HalfMatrix p) { return {{}, p, true}; }

  absl::Span<const int64_t> class_indices;
  HalfMatrix probabilities = NoConstMatrix<uint16_t>();  // same half type as the logits
  bool is_probabilities = false;
};

struct HalfLossProblem {
  HalfType type;
  HalfMatrix logits;  // [batch, classes]
  HalfTargets targets;
  LossOptions options;  // probability_sum_tolerance is ignored: half rows get their own
};

// Where results go, as half bit patterns; each empty member is not computed.
struct HalfLossOutputs {
  absl::Span<uint16_t> loss;                          // 1 value, or batch values for NONE
  HalfMatrixOut grad_logits = NoMatrix<uint16_t>();   // dL/dz
  HalfMatrixOut grad_probabilities = NoMatrix<uint16_t>();  // dL/dA, kChainRule only
};

// What a half-precision pass reads: LossPassInputs with half tensors.
struct HalfPassInputs {
  HalfType type = HalfType::kFloat16;
  HalfMatrix logits = NoConstMatrix<uint16_t>();  // [batch, classes]
  std::optional<HalfTargets> targets;
  LossOptions options;  // probability_sum_tolerance is ignored: half rows get their own
  absl::Span<const float> grad_loss;  // upstream dL/dloss, widened
  HalfMatrix grad_probabilities = NoConstMatrix<uint16_t>();  // the VJP's upstream dL/dA
  Method method = Method::kFused;
  bool unbatched = false;  // rank-1 logits: only for messages

  bool has_vjp() const { return grad_probabilities.data() != nullptr; }
};

// Where a half-precision pass writes, as half bit patterns; each empty member is not computed.
struct HalfPassOutputs {
  HalfMatrixOut probabilities = NoMatrix<uint16_t>();
  HalfMatrixOut log_probabilities = NoMatrix<uint16_t>();
  absl::Span<uint16_t> loss;
  HalfMatrixOut grad_logits = NoMatrix<uint16_t>();
  HalfMatrixOut grad_probabilities = NoMatrix<uint16_t>();  // chain rule; or the VJP's own, echoed
};

// How far a half-precision probability-target row may sum from 1: max(1e-4, classes · u).
double HalfProbabilitySumTolerance(HalfType type, int64_t classes);

// LossPass in float32 over the widened inputs, every output rounded to `in.type`: the results of
// one float32 pass over the whole widened batch, bit for bit. Validated by ValidateHalfLossPass
// (lib/loss_check.h) first.
absl::StatusOr<LossSummary> HalfLossPass(const HalfPassInputs& in, const HalfPassOutputs& out,
                                         const ExecContext& ctx);

// Everything HalfCrossEntropy checks, with the library's messages and whole-batch indices.
absl::Status ValidateHalfLossProblem(const HalfLossProblem& problem);

// softmax and/or log_softmax of `logits` (either output may be NoMatrix).
absl::Status HalfSoftmax(HalfType type, HalfMatrix logits, HalfMatrixOut probabilities,
                         HalfMatrixOut log_probabilities, const ExecContext& ctx);

// The softmax VJP a ⊙ (g − ⟨g, a⟩) with a = softmax(logits) in float32; `probabilities` (may be
// NoMatrix) also receives a.
absl::Status HalfSoftmaxVjp(HalfType type, HalfMatrix logits, HalfMatrix grad_probabilities,
                            HalfMatrixOut grad_logits, HalfMatrixOut probabilities,
                            const ExecContext& ctx);

// The softmax Jacobian of every row, [batch, classes, classes], from the logits.
absl::Status HalfSoftmaxJacobian(HalfType type, HalfMatrix logits, uint16_t* jacobian,
                                 const ExecContext& ctx);

// CrossEntropy<float> of the widened problem, outputs rounded to the half type. `grad_loss` is
// the upstream dL/dloss, widened: empty (1), one value, or one per row for NONE.
absl::StatusOr<LossSummary> HalfCrossEntropy(const HalfLossProblem& problem,
                                             absl::Span<const float> grad_loss, Method method,
                                             const HalfLossOutputs& outputs, const ExecContext& ctx);

}  // namespace gradserve

#endif  // GRADSERVE_LIB_HALF_ROWS_H_
