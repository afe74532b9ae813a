#include "tests/fuzz/math_entry.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "lib/cross_entropy.h"
#include "lib/softmax.h"
#include "lib/tensor.h"
#include "tests/fuzz/math_case.h"

namespace gradserve::fuzz {
namespace {

template <typename T>
std::string Run(Bytes& in) {
  constexpr double kMax = static_cast<double>(std::numeric_limits<T>::max());
  MathCase<T> mc;
  mc.Decode(in);
  const RowMatrix<T>& z = mc.z;
  const int64_t n = z.rows(), c = z.cols();
  const bool finite = mc.finite;
  const LossOptions& o = mc.options;
  const std::vector<double>& weights = mc.weights;
  const bool prob_targets = mc.prob_targets;
  const std::vector<int64_t>& ids = mc.ids;
  const RowMatrix<T>& probs = mc.probs;
  const std::vector<T>& grad_loss = mc.grad_loss;
  const bool invalid = mc.invalid;
  const int64_t loss_size = o.reduction == Reduction::kNone ? n : 1;

  const Targets<T> targets = prob_targets ? Targets<T>::Probabilities(ConstView(probs))
                                          : Targets<T>::ClassIndices(ids);
  const LossProblem<T> p{ConstView(z), targets, o};
  // The decoded case, for failure messages only (formatting it for every input would be slow).
  auto what = [&] { return mc.Describe(); };
  ExecContext exec;
  exec.max_threads = 1;

  // Softmax first: valid exactly when the logits are finite.
  RowMatrix<T> a(n, c), log_a(n, c);
  const absl::Status softmax = Softmax<T>(ConstView(z), View(a), View(log_a), exec);
  if (softmax.ok() != finite) return absl::StrCat("Softmax: ", softmax.ToString(), what());
  if (finite) {
    const double sum_tol = static_cast<double>(c) * (sizeof(T) == 4 ? 0x1p-20 : 0x1p-48);
    for (int64_t i = 0; i < n; ++i) {
      double sum = 0.0;
      for (int64_t j = 0; j < c; ++j) {
        if (!(a(i, j) >= T(0) && a(i, j) <= T(1))) {
          return absl::StrFormat("Softmax: probability [%d, %d] is %g%s", i, j,
                                 static_cast<double>(a(i, j)), what());
        }
        if (!(log_a(i, j) <= T(1e-5)) && !std::isnan(log_a(i, j))) {
          return absl::StrFormat("Softmax: log-probability [%d, %d] is %g%s", i, j,
                                 static_cast<double>(log_a(i, j)), what());
        }
        sum += a(i, j);
      }
      if (!(std::abs(sum - 1.0) <= sum_tol)) {
        return absl::StrFormat("Softmax: row %d sums to %.9g%s", i, sum, what());
      }
    }
  }

  std::vector<T> loss_f(loss_size), loss_c(loss_size);
  RowMatrix<T> grad_f(n, c), grad_c(n, c), grad_probs(n, c);
  const absl::Span<const T> upstream(grad_loss);
  const absl::StatusOr<LossSummary> fused = CrossEntropy<T>(
      p, upstream, Method::kFused, {absl::MakeSpan(loss_f), View(grad_f)}, exec);
  const absl::StatusOr<LossSummary> chain = CrossEntropy<T>(
      p, upstream, Method::kChainRule, {absl::MakeSpan(loss_c), View(grad_c), View(grad_probs)}, exec);
  if (invalid || !finite) {
    for (const auto* s : {&fused, &chain}) {
      if (s->status().code() != absl::StatusCode::kInvalidArgument) {
        return absl::StrCat("invalid input (", invalid ? "injected" : "non-finite logits",
                            ") must be INVALID_ARGUMENT, got ", s->status().ToString(), what());
      }
    }
    return "";
  }
  if (!fused.ok()) return absl::StrCat("FUSED failed: ", fused.status().ToString(), what());
  if (!chain.ok()) return absl::StrCat("CHAIN_RULE failed: ", chain.status().ToString(), what());

  // The float64 reference over the same (widened) inputs.
  const RowMatrix<double> zd = z.template cast<double>();
  const RowMatrix<double> probs_d = probs.template cast<double>();
  const std::vector<double> grad_loss_d(grad_loss.begin(), grad_loss.end());
  const LossProblem<double> pd{
      ConstView(zd),
      prob_targets ? Targets<double>::Probabilities(ConstView(probs_d))
                   : Targets<double>::ClassIndices(ids),
      o};
  std::vector<double> loss_ref(loss_size);
  RowMatrix<double> grad_ref(n, c), q(n, c);
  const absl::StatusOr<LossSummary> ref = CrossEntropy<double>(
      pd, grad_loss_d, Method::kFused, {absl::MakeSpan(loss_ref), View(grad_ref)}, exec);
  if (!ref.ok()) return absl::StrCat("float64 reference failed: ", ref.status().ToString(), what());
  TargetDistribution<double>(pd, View(q));

  const bool mean = o.reduction == Reduction::kMean;
  const double denominator = MeanDenominator(pd);
  if (mean && denominator == 0.0) {
    // PyTorch's NaN case: NaN loss, NaN rows, zero ignored rows.
    for (const auto* loss : {&loss_f, &loss_c}) {
      if (!std::isnan((*loss)[0])) {
        return absl::StrCat("MEAN over a zero weight sum: loss must be NaN, got ",
                            static_cast<double>((*loss)[0]), what());
      }
    }
    for (const RowMatrix<T>* g : {&grad_f, &grad_c}) {
      for (int64_t i = 0; i < n; ++i) {
        const bool ignored = IsIgnoredRow(p, i);
        for (int64_t j = 0; j < c; ++j) {
          if (ignored ? (*g)(i, j) != T(0) : !std::isnan((*g)(i, j))) {
            return absl::StrFormat(
                "MEAN over a zero weight sum: %s [%d, %d] must be %s, got %g%s",
                g == &grad_f ? "FUSED" : "CHAIN_RULE", i, j, ignored ? "0 (ignored row)" : "NaN",
                static_cast<double>((*g)(i, j)), what());
          }
        }
      }
    }
    return "";
  }

  // r_i = dL/dl_i, s_i = Σ_j q_ij: every gradient element is r_i (s_i a_ij - q_ij).
  double w_max = 1.0;
  if (!weights.empty()) w_max = *std::max_element(weights.begin(), weights.end());
  double bound = 0.0, scale = 1.0;
  for (int64_t i = 0; i < n; ++i) {
    if (IsIgnoredRow(p, i)) continue;
    const double g = grad_loss_d.empty() ? 1.0 : grad_loss_d[grad_loss_d.size() == 1 ? 0 : i];
    const double r = std::abs(g * (mean ? 1.0 / denominator : 1.0));
    // r_i is formed in T first: it must be representable too (it is the gradient's unit).
    bound = std::max({bound, r * w_max, r});
    scale = std::max(scale, r * q.row(i).sum());
  }
  for (int64_t k = 0; k < grad_ref.size(); ++k) scale = std::max(scale, std::abs(grad_ref.data()[k]));
  if (!(bound <= kMax / 4)) return "";  // the result itself may not be representable in T

  const double tol = (sizeof(T) == 4 ? std::max(1e-5, 0.1 * static_cast<double>(c) * 0x1p-24) : 1e-12);
  for (const RowMatrix<T>* g : {&grad_f, &grad_c}) {
    const char* method = g == &grad_f ? "FUSED" : "CHAIN_RULE";
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t j = 0; j < c; ++j) {
        const double v = (*g)(i, j), want = grad_ref(i, j);
        if (!std::isfinite(v)) {
          return absl::StrFormat("%s gradient [%d, %d] is %g though every |element| <= %g%s",
                                 method, i, j, v, bound, what());
        }
        if (!(std::abs(v - want) <= tol * scale)) {
          return absl::StrFormat(
              "%s gradient [%d, %d] is %.9g, float64 reference %.17g: error %.3g over %.3g "
              "(%g x scale %g)%s",
              method, i, j, v, want, std::abs(v - want), tol * scale, tol, scale, what());
        }
      }
    }
  }

  // The loss, where z - max cannot overflow T.
  for (int64_t i = 0; i < n; ++i) {
    const double span = static_cast<double>(z.row(i).maxCoeff()) - static_cast<double>(z.row(i).minCoeff());
    if (!(span <= kMax / 4)) return "";
  }
  // Each row's loss is computed in T before the reduction (in double): it must be representable.
  LossOptions per_row_options = o;
  per_row_options.reduction = Reduction::kNone;
  std::vector<double> row_loss_ref(n);
  if (!CrossEntropy<double>({pd.logits, pd.targets, per_row_options}, {}, Method::kFused,
                            {absl::MakeSpan(row_loss_ref)}, exec).ok()) {
    return absl::StrCat("float64 per-row reference failed", what());
  }
  for (double l : row_loss_ref) {
    if (!(std::abs(l) <= kMax / 4)) return "";
  }
  // Each row's loss is s_i·(logsumexp - ...) with terms of size s_i, rounded: the scale of the
  // loss's rounding is Σ s_i (SUM), that over MEAN's denominator, or max s_i (NONE).
  double loss_scale = 1.0, mass = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    if (IsIgnoredRow(p, i)) continue;
    const double s_i = q.row(i).sum();
    if (o.reduction == Reduction::kNone) loss_scale = std::max(loss_scale, s_i);
    mass += s_i;
  }
  if (o.reduction == Reduction::kSum) loss_scale = std::max(loss_scale, mass);
  if (mean) loss_scale = std::max(loss_scale, mass / denominator);
  for (double l : loss_ref) loss_scale = std::max(loss_scale, std::abs(l));
  if (!(loss_scale <= kMax / 4)) return "";
  for (const auto* loss : {&loss_f, &loss_c}) {
    for (int64_t k = 0; k < loss_size; ++k) {
      const double v = (*loss)[k];
      if (!(std::abs(v - loss_ref[k]) <= tol * loss_scale)) {
        return absl::StrFormat("%s loss[%d] is %.9g, float64 reference %.17g: error %.3g over %.3g%s",
                               loss == &loss_f ? "FUSED" : "CHAIN_RULE", k, v, loss_ref[k],
                               std::abs(v - loss_ref[k]), tol * loss_scale, what());
      }
    }
  }
  return "";
}

}  // namespace

std::string CheckMathInput(const uint8_t* data, size_t size) {
  Bytes in(data, size);
  return in.U8() & 1 ? Run<double>(in) : Run<float>(in);
}

}  // namespace gradserve::fuzz
