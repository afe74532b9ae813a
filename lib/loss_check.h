// The library's one validator of a softmax / cross-entropy request: classes, targets, options,
// the upstream gradients' and outputs' sizes, finite logits.
//
// Each fact is checked by exactly one function here, with one message that carries the numbers;
// ValidateLossPass (float, double) and ValidateHalfLossPass (half bit patterns) combine them for
// a whole request, and LossPass / HalfLossPass call them once before computing. Callers (the
// server) only check that each tensor's wire shape is the one the request implies.
//
//   GRADSERVE_RETURN_IF_ERROR(ValidateLossPass<double>(inputs, outputs));
//   GRADSERVE_RETURN_IF_ERROR(ValidateFiniteLogits<double>(inputs.logits));
#ifndef GRADSERVE_LIB_LOSS_CHECK_H_
#define GRADSERVE_LIB_LOSS_CHECK_H_

#include <cstdint>
#include <optional>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "lib/half.h"
#include "lib/half_rows.h"
#include "lib/loss_pass.h"
#include "lib/tensor.h"

namespace gradserve {

// Everything about a pass but the logits' finiteness (which the pass finds in passing): at least
// one class; options (label_smoothing in [0, 1], one finite non-negative weight per class);
// targets (one class id per row, each in [0, classes) or ignore_index; probability rows
// non-negative and summing to 1 within options.probability_sum_tolerance, else 1e-6 in float64
// and 1e-4 in float32; no ignore_index with them); outputs that need targets have them; the
// sizes of grad_loss, grad_probabilities and every output. InvalidArgument with the numbers.
template <typename T>
absl::Status ValidateLossPass(const LossPassInputs<T>& in, const LossPassOutputs<T>& out);

// The same for a half-precision pass; probability rows sum to 1 within max(1e-4, classes · u).
absl::Status ValidateHalfLossPass(const HalfPassInputs& in, const HalfPassOutputs& out);

// InvalidArgument naming the first NaN or ±Inf of `logits`, else OK.
template <typename T>
absl::Status ValidateFiniteLogits(ConstMatrixMap<T> logits);
absl::Status ValidateHalfFiniteLogits(HalfType type, HalfMatrix logits);

// InvalidArgument unless `ids` has one class id per row, each in [0, classes) or `ignore`.
absl::Status ValidateClassIndices(absl::Span<const int64_t> ids, int64_t batch, int64_t classes,
                                  const std::optional<int64_t>& ignore, bool unbatched = false);

}  // namespace gradserve

#endif  // GRADSERVE_LIB_LOSS_CHECK_H_
