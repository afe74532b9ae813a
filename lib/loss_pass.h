// One pass over the rows for everything a request asks of softmax and cross-entropy.
//
// LossPass fills any subset of {probabilities, log-probabilities, loss (per row or reduced),
// dL/dz, dL/dA} from logits and targets, or the softmax vector-Jacobian product a ⊙ (g − ⟨g, a⟩)
// from logits and an upstream dL/dA (probabilities optional). Each row's exponentials are formed
// once, in an L1 scratch row, and every wanted output is derived from them before the next row is
// read: a Forward with probabilities and loss, or a Backward with its probabilities, costs one
// read of the logits and one write of each output. Inputs are validated first, by the library's
// one validator (lib/loss_check.h); non-finite logits are found in passing.
//
//   LossPassInputs<float> in{logits, Targets<float>::ClassIndices(ids)};
//   float loss;
//   LossPassOutputs<float> out;
//   out.probabilities = View(probs);
//   out.loss = absl::MakeSpan(&loss, 1);
//   absl::StatusOr<LossSummary> s = LossPass<float>(in, out, ExecContext{});
#ifndef GRADSERVE_LIB_LOSS_PASS_H_
#define GRADSERVE_LIB_LOSS_PASS_H_

#include <cstdint>
#include <optional>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "lib/cross_entropy.h"
#include "lib/parallel.h"
#include "lib/tensor.h"

namespace gradserve {

// What a pass reads. Views: the caller owns the data.
template <typename T>
struct LossPassInputs {
  ConstMatrixMap<T> logits = NoConstMatrix<T>();  // [batch, classes]
  // Cross-entropy targets; without them no loss, gradient or dL/dA can be asked for (except the
  // VJP's gradient, below). `options` are validated either way.
  std::optional<Targets<T>> targets;
  LossOptions options;
  absl::Span<const T> grad_loss;  // upstream dL/dloss: empty (1), one value, or one per row (NONE)
  // Instead of targets: an upstream dL/dA, [batch, classes]; grad_logits then receives the VJP.
  ConstMatrixMap<T> grad_probabilities = NoConstMatrix<T>();
  Method method = Method::kFused;
  // Rank-1 logits (one example): only changes how shapes are named in error messages.
  bool unbatched = false;

  bool has_vjp() const { return grad_probabilities.data() != nullptr; }
};

// Where results go; each empty member is not computed. Matrices have the logits' shape.
template <typename T>
struct LossPassOutputs {
  MatrixMap<T> probabilities = NoMatrix<T>();
  MatrixMap<T> log_probabilities = NoMatrix<T>();
  absl::Span<T> loss;                               // 1 value, or batch values for NONE
  MatrixMap<T> grad_logits = NoMatrix<T>();         // dL/dz
  // dL/dA: with targets and kChainRule, -dL/dl·q/a; with a VJP, the caller's own (copied).
  MatrixMap<T> grad_probabilities = NoMatrix<T>();
};

// Validates `in` and `out` (lib/loss_check.h), then computes every wanted output in one pass.
// With kChainRule, dL/dA may be infinite where a probability underflows to 0; the product with
// the Jacobian then takes its limit, so dL/dz stays finite wherever the fused form is.
template <typename T>
absl::StatusOr<LossSummary> LossPass(const LossPassInputs<T>& in, const LossPassOutputs<T>& out,
                                     const ExecContext& ctx);

namespace internal {

// The pass over already validated inputs, for callers that validated the whole request and
// compute it in pieces (lib/half_rows.cc's blocks). `problem.targets` is used only when
// `has_targets`. `row_scale[i]` is dL/dl_i (needed when a gradient is asked with targets);
// `out.loss` receives one loss per row (or is empty). False when a logit was not finite.
template <typename T>
struct RowPassInputs {
  LossProblem<T> problem;
  bool has_targets = false;
  ConstMatrixMap<T> grad_probabilities = NoConstMatrix<T>();
  Method method = Method::kFused;
  absl::Span<const T> row_scale;
};
template <typename T>
absl::StatusOr<bool> RunRowPass(const RowPassInputs<T>& in, const LossPassOutputs<T>& out,
                                const ExecContext& ctx);

}  // namespace internal
}  // namespace gradserve

#endif  // GRADSERVE_LIB_LOSS_PASS_H_
