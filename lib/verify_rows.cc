#include "lib/verify_rows.h"

#include <algorithm>
#include <limits>

#include "Eigen/Core"

namespace gradserve::verify_internal {

double LossScale(const LossProblem<double>& p) {
  if (p.options.reduction != Reduction::kMean) return 1.0;
  const double d = MeanDenominator(p);
  return d == 0.0 ? std::numeric_limits<double>::quiet_NaN() : 1.0 / d;
}

LossProblem<double> RowsOf(const LossProblem<double>& p, int64_t begin, int64_t end) {
  // (Eigen maps cannot be re-pointed by assignment, so the views are built afresh.)
  const int64_t c = p.logits.cols(), rows = end - begin;
  const ConstMatrixMap<double> logits(rows == 0 ? nullptr : p.logits.row(begin).data(), rows, c);
  if (p.targets.is_probabilities) {
    return {logits,
            Targets<double>::Probabilities(ConstMatrixMap<double>(
                rows == 0 ? nullptr : p.targets.probabilities.row(begin).data(), rows, c)),
            p.options};
  }
  return {logits, Targets<double>::ClassIndices(p.targets.class_indices.subspan(begin, rows)),
          p.options};
}

int64_t BlockRows(int64_t classes) {
  constexpr int64_t kBlockValues = 1 << 14;
  return std::max<int64_t>(1, kBlockValues / std::max<int64_t>(classes, 1));
}

void TargetRows(const LossProblem<double>& p, int64_t begin, int64_t end, double* q) {
  // The library's own TargetDistribution on the block: the verifier re-enacts exactly the loss
  // the library defines (weights, smoothing, probability targets, ignore_index). Its set-up is
  // O(classes), paid once per block rather than once per row.
  TargetDistribution<double>(RowsOf(p, begin, end), MatrixMap<double>(q, end - begin, p.logits.cols()));
}

void JacobianTimes(const double* v, const double* g, int64_t classes, double* out) {
  const Eigen::Map<const Eigen::ArrayXd> vr(v, classes), gr(g, classes);
  const double dot = (vr * gr).sum();
  Eigen::Map<Eigen::ArrayXd>(out, classes) = vr * gr - vr * dot;
}

}  // namespace gradserve::verify_internal
