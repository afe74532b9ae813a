// Numerically stable softmax, log-softmax, the softmax Jacobian and its vector-Jacobian product.
//
// Rows are shifted by their maximum before exponentiation, so any finite logits work: ±1e4,
// rows of equal values, rows spanning 1e3. Non-finite logits are an InvalidArgument that names
// the first offending element.
//
//   RowMatrix<double> p(batch, classes);
//   GRADSERVE_RETURN_IF_ERROR(Softmax<double>(logits, p, NoMatrix<double>(), ExecContext{}));
#ifndef GRADSERVE_LIB_SOFTMAX_H_
#define GRADSERVE_LIB_SOFTMAX_H_

#include "absl/status/status.h"
#include "lib/parallel.h"
#include "lib/tensor.h"

namespace gradserve {

// Writes softmax(logits) to `probabilities` and/or log_softmax(logits) to `log_probabilities`,
// row-wise. Either output may be empty (NoMatrix) when not wanted; a non-empty one must have the
// logits' shape. Validates that the logits are finite. LossPass (lib/loss_pass.h) without targets.
template <typename T>
absl::Status Softmax(ConstMatrixMap<T> logits, MatrixMap<T> probabilities,
                     MatrixMap<T> log_probabilities, const ExecContext& ctx);

// The softmax Jacobian J(a) = diag(a) - a aᵀ of every row of `probabilities`, written to
// `jacobian` as [batch, classes, classes] (batch · classes² elements, row-major).
template <typename T>
absl::Status SoftmaxJacobian(ConstMatrixMap<T> probabilities, T* jacobian,
                             const ExecContext& ctx);

// The vector-Jacobian product through softmax for an upstream dL/dA, without materialising J:
// dL/dz = a ⊙ (g - <g, a>), row-wise. `grad_logits` may alias `grad_probabilities`.
template <typename T>
absl::Status SoftmaxVjp(ConstMatrixMap<T> probabilities, ConstMatrixMap<T> grad_probabilities,
                        MatrixMap<T> grad_logits, const ExecContext& ctx);

}  // namespace gradserve

#endif  // GRADSERVE_LIB_SOFTMAX_H_
