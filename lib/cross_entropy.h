// Softmax cross-entropy with the semantics of torch.nn.functional.cross_entropy, and its gradient.
//
// Every option of PyTorch is supported: class-index targets (with ignore_index) or probability
// targets (one-hot or soft), class weights, label smoothing and the MEAN / SUM / NONE reductions,
// including MEAN's denominator: the sum of the weights of the non-ignored rows for class indices,
// the batch size for probability targets. Degenerate cases follow PyTorch: an empty batch, every
// row ignored (MEAN loss NaN, gradient zero), a zero weight sum (MEAN loss and gradient NaN).
//
// In the closed form each row's loss is l_i = s_i · logsumexp(z_i) - <q_i, z_i>, where q_i is the
// row's weighted, smoothed target distribution and s_i = Σ_c q_ic, so dl_i/dz_i = s_i a_i - q_i
// with a_i = softmax(z_i).
//
//   const int64_t labels[] = {1};
//   LossProblem<double> p{logits, Targets<double>::ClassIndices(labels), LossOptions{}};
//   double loss;
//   RowMatrix<double> grad(1, 2);
//   absl::StatusOr<LossSummary> s = CrossEntropy<double>(
//       p, {}, Method::kFused, {absl::MakeSpan(&loss, 1), grad}, ExecContext{});
#ifndef GRADSERVE_LIB_CROSS_ENTROPY_H_
#define GRADSERVE_LIB_CROSS_ENTROPY_H_

#include <cstdint>
#include <optional>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "lib/parallel.h"
#include "lib/tensor.h"

namespace gradserve {

enum class Reduction { kMean, kSum, kNone };

// How the gradient is computed. Both agree to rounding.
enum class Method {
  kFused,      // the closed form s·a - q, one read and one write of each row
  kChainRule,  // dL/dA, then its product with the softmax Jacobian J(a)
};

// A view: the caller owns `class_weights`.
struct LossOptions {
  Reduction reduction = Reduction::kMean;
  double label_smoothing = 0.0;             // in [0, 1]
  absl::Span<const double> class_weights;   // empty: every weight is 1
  std::optional<int64_t> ignore_index;      // class-index targets only
  // How far a probability-target row's sum may be from 1; 0: the dtype's own (1e-6 float64,
  // 1e-4 float32). Half-precision targets set max(1e-4, classes · u).
  double probability_sum_tolerance = 0.0;
};

template <typename T>
struct Targets {
  static Targets ClassIndices(absl::Span<const int64_t> ids) { return {ids, NoConstMatrix<T>(), false}; }
  static Targets Probabilities(ConstMatrixMap<T> p) { return {{}, p, true}; }

  absl::Span<const int64_t> class_indices;       // one id per row
  ConstMatrixMap<T> probabilities = NoConstMatrix<T>();  // [batch, classes], rows sum to 1
  bool is_probabilities = false;
};

template <typename T>
struct LossProblem {
  ConstMatrixMap<T> logits;  // [batch, classes]
  Targets<T> targets;
  LossOptions options;
};

// Where results go; each empty member is not computed.
template <typename T>
struct LossOutputs {
  absl::Span<T> loss;                                      // 1 value, or batch values for NONE
  MatrixMap<T> grad_logits = NoMatrix<T>();                // dL/dz, [batch, classes]
  MatrixMap<T> grad_probabilities = NoMatrix<T>();         // dL/dA, kChainRule only
};

struct LossSummary {
  double reduction_denominator = 0.0;  // MEAN only; 0 for SUM and NONE
};

// Checks everything CrossEntropy checks, without computing (lib/loss_check.h's validator): finite
// logits, class ids in range (or ignore_index), probabilities non-negative with rows summing to 1
// (1e-6 in float64, 1e-4 in float32), label smoothing in [0, 1], weights of the right length and
// non-negative, no ignore_index with probability targets. InvalidArgument with the numbers.
// `unbatched` (rank-1 logits) only changes how shapes are named in messages.
template <typename T>
absl::Status ValidateLossProblem(const LossProblem<T>& problem, bool unbatched = false);

// The loss (and, when `outputs.grad_logits` is set, its gradient) of `problem`: LossPass
// (lib/loss_pass.h) asked for these outputs only.
// `grad_loss` is the upstream dL/dloss: empty (1), one value, or one per row for NONE.
// With kChainRule, dL/dA may be infinite where a probability underflows to 0; the product with
// the Jacobian then takes its limit, so dL/dz stays finite wherever the fused form is.
template <typename T>
absl::StatusOr<LossSummary> CrossEntropy(const LossProblem<T>& problem,
                                         absl::Span<const T> grad_loss, Method method,
                                         const LossOutputs<T>& outputs, const ExecContext& ctx);

// MEAN's denominator for `problem` (which must be valid), whatever its reduction.
template <typename T>
double MeanDenominator(const LossProblem<T>& problem);

// Whether row `i` of `problem` is ignored: a class-index target equal to ignore_index.
template <typename T>
bool IsIgnoredRow(const LossProblem<T>& problem, int64_t i) {
  return !problem.targets.is_probabilities && problem.options.ignore_index &&
         problem.targets.class_indices[i] == *problem.options.ignore_index;
}

// The weighted, smoothed target distribution q of every row of a valid `problem` (zero on
// ignored rows), so that row i's loss is -Σ_c q_ic log softmax(z_i)_c. `q` is [batch, classes].
template <typename T>
void TargetDistribution(const LossProblem<T>& problem, MatrixMap<T> q);

}  // namespace gradserve

#endif  // GRADSERVE_LIB_CROSS_ENTROPY_H_
