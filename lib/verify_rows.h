// Row-at-a-time pieces the verifier shares: the scale of dL/dl_i, one row's target distribution
// and the softmax Jacobian's product with a vector, each O(classes) without forming a matrix, so
// that the numeric derivative and the mistake search stay O(batch · classes).
//
//   std::vector<double> q(BlockRows(classes) * classes), out(classes);
//   TargetRows(problem, begin, end, q.data());  // rows [begin, end), zero where ignored
//   JacobianTimes(a.row(begin).data(), q.data(), classes, out.data());  // (diag(a) - a a^T)·q
#ifndef GRADSERVE_LIB_VERIFY_ROWS_H_
#define GRADSERVE_LIB_VERIFY_ROWS_H_

#include <cstdint>

#include "lib/cross_entropy.h"

namespace gradserve::verify_internal {

// dL/dl_i in the loss the verifier differentiates, L = Σ_i scale·l_i: 1/denominator for MEAN
// (NaN when the denominator is 0), else 1 (NONE differentiates the sum of the row losses).
double LossScale(const LossProblem<double>& problem);

// Rows [begin, end) of `problem` as a problem of their own (same options).
LossProblem<double> RowsOf(const LossProblem<double>& problem, int64_t begin, int64_t end);

// How many rows of `classes` entries make a block of about 16 K values (at least 1): the unit in
// which row-at-a-time work fetches target rows and polls cancellation.
int64_t BlockRows(int64_t classes);

// The weighted, smoothed target distributions of rows [begin, end) (zero on ignored rows) into
// q, row-major [end - begin, classes].
void TargetRows(const LossProblem<double>& problem, int64_t begin, int64_t end, double* q);

// J(v)·g = v ⊙ g - v·<v, g> with J(v) = diag(v) - v vᵀ (symmetric), over `classes` entries.
// `out` may not alias `v` or `g`.
void JacobianTimes(const double* v, const double* g, int64_t classes, double* out);

}  // namespace gradserve::verify_internal

#endif  // GRADSERVE_LIB_VERIFY_ROWS_H_
