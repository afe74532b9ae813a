// The numeric gradient's body, for callers that have validated the problem already
// (VerifyGradient): NumericGradient (verify.h) checks the problem, then calls it.
#ifndef GRADSERVE_LIB_VERIFY_NUMERIC_H_
#define GRADSERVE_LIB_VERIFY_NUMERIC_H_

#include "absl/status/statusor.h"
#include "lib/verify.h"

namespace gradserve::verify_internal {

// NumericGradient of a problem ValidateLossProblem accepted, into `out` of the logits' shape;
// returns the largest step used. `epsilon` must be finite and >= 0.
absl::StatusOr<double> NumericGradientOfValid(const LossProblem<double>& problem,
                                              NumericMethod method, double epsilon,
                                              MatrixMap<double> out, const ExecContext& ctx);

}  // namespace gradserve::verify_internal

#endif  // GRADSERVE_LIB_VERIFY_NUMERIC_H_
