#include "lib/half_rows.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <vector>

#include "absl/strings/str_format.h"
#include "base/status_macros.h"
#include "lib/softmax.h"

namespace gradserve {
namespace {

// About 256 KiB of float32 per scratch array: small enough to stay in L2 next to its half
// source and destination, large enough that the per-block calls cost nothing.
constexpr int64_t kBlockFloats = int64_t{1} << 16;

// Calls `body(begin, end, inner, scratch)` over blocks of rows, each at most
// kBlockFloats / floats_per_row rows (at least one), blocks running in parallel. `scratch` holds
// floats_per_row floats per row of the block, uninitialised: the body carves its float32 arrays
// from it. `inner` is the context for the float32 calls on one block: single-threaded (the
// parallelism is across blocks), same cancellation. The first error any block returns is the
// result; blocks after it are skipped.
using BlockFn = std::function<absl::Status(int64_t, int64_t, const ExecContext&, float*)>;
absl::Status ForEachBlock(int64_t rows, int64_t floats_per_row, const ExecContext& ctx, const BlockFn& body) {
  const int64_t per_row = std::max<int64_t>(floats_per_row, 1);
  const int64_t block = std::max<int64_t>(1, kBlockFloats / per_row);
  ExecContext inner;
  inner.max_threads = 1;
  inner.is_cancelled = ctx.is_cancelled;
  std::mutex mu;
  absl::Status first = absl::OkStatus();
  bool failed = false;  // guarded by mu
  const absl::Status loop = ParallelForRows(rows, per_row, ctx, [&](int64_t begin, int64_t end) {
    // Not zeroed: every float is written before it is read.
    const std::unique_ptr<float[]> scratch(new float[std::min(block, end - begin) * per_row]);
    for (int64_t b = begin; b < end; b += block) {
      {
        std::lock_guard<std::mutex> lock(mu);
        if (failed) return;
      }
      absl::Status s = body(b, std::min(end, b + block), inner, scratch.get());
      if (!s.ok()) {
        std::lock_guard<std::mutex> lock(mu);
        if (!failed) first = std::move(s);
        failed = true;
        return;
      }
    }
  });
  if (!first.ok()) return first;
  return loop;
}

// Rows [begin, end) of a half matrix, widened into `dst`, as a float32 view.
ConstMatrixMap<float> WidenRows(HalfType type, HalfMatrix m, int64_t begin, int64_t end, float* dst) {
  const int64_t c = m.cols();
  WidenHalf(type, m.data() + begin * c, dst, (end - begin) * c);
  return ConstMatrixMap<float>(dst, end - begin, c);
}

// Rounds a float32 block (empty: nothing) into rows [begin, ...) of a half output.
void NarrowRows(HalfType type, const MatrixMap<float>& block, HalfMatrixOut out, int64_t begin) {
  if (out.data() == nullptr || block.data() == nullptr) return;
  NarrowToHalf(type, block.data(), out.data() + begin * out.cols(), block.size());
}

// A float32 view of `rows` × `cols` at `dst`, or NoMatrix when not wanted.
MatrixMap<float> Scratch(bool wanted, float* dst, int64_t rows, int64_t cols) {
  return wanted ? MatrixMap<float>(dst, rows, cols) : NoMatrix<float>();
}

absl::Status ValidateHalfProbabilities(HalfType type, HalfMatrix t, int64_t batch, int64_t classes) {
  if (t.rows() != batch || t.cols() != classes) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "targets.probabilities has shape [%d, %d] but logits have shape [%d, %d]", t.rows(),
        t.cols(), batch, classes));
  }
  const double tol = HalfProbabilitySumTolerance(type, classes);
  for (int64_t i = 0; i < batch; ++i) {
    double sum = 0.0;
    for (int64_t j = 0; j < classes; ++j) {
      const double v = HalfToFloat(type, t(i, j));
      if (!(std::isfinite(v) && v >= 0.0)) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "targets.probabilities[%d, %d] is %g; probabilities must be finite and non-negative",
            i, j, v));
      }
      sum += v;
    }
    if (!(std::abs(sum - 1.0) <= tol)) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "targets.probabilities row %d sums to %.9g; each row must sum to 1 within %g (%s: "
          "max(1e-4, classes × %g))",
          i, sum, tol, HalfTypeName(type), HalfUnitRoundoff(type)));
    }
  }
  return absl::OkStatus();
}

}  // namespace

double HalfProbabilitySumTolerance(HalfType type, int64_t classes) {
  return std::max(1e-4, static_cast<double>(classes) * HalfUnitRoundoff(type));
}

absl::Status ValidateHalfFiniteLogits(HalfType type, HalfMatrix logits) {
  const int64_t n = logits.size();
  const uint16_t exponent = type == HalfType::kFloat16 ? 0x7c00 : 0x7f80;
  // ±Inf and NaN are the magnitudes at or above the all-ones exponent: a max-reduction (which
  // vectorizes) decides, and only a failure searches for the first.
  uint16_t largest = 0;
  for (int64_t k = 0; k < n; ++k) largest = std::max<uint16_t>(largest, logits.data()[k] & 0x7fff);
  if (largest < exponent) return absl::OkStatus();
  for (int64_t k = 0; k < n; ++k) {
    if (!HalfIsNonFinite(type, logits.data()[k])) continue;
    return absl::InvalidArgumentError(absl::StrFormat(
        "logits must be finite; logits[%d, %d] is %g", k / logits.cols(), k % logits.cols(),
        static_cast<double>(HalfToFloat(type, logits.data()[k]))));
  }
  return absl::OkStatus();
}

absl::Status ValidateHalfLossProblem(const HalfLossProblem& p) {
  const int64_t n = p.logits.rows(), c = p.logits.cols();
  if (c == 0) return absl::InvalidArgumentError("logits have 0 classes; cross-entropy needs at least 1");
  {
    // The options alone, by the library, on one row of zeros with a class-0 target.
    const std::vector<float> zeros(c, 0.0f);
    const int64_t zero_id[1] = {0};
    LossOptions options = p.options;
    options.ignore_index.reset();
    GRADSERVE_RETURN_IF_ERROR(ValidateLossProblem<float>(LossProblem<float>{
        ConstMatrixMap<float>(zeros.data(), 1, c), Targets<float>::ClassIndices(zero_id), options}));
  }
  if (!p.targets.is_probabilities) {
    GRADSERVE_RETURN_IF_ERROR(ValidateClassIndices(p.targets.class_indices, n, c, p.options.ignore_index));
  } else if (p.options.ignore_index) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "options.ignore_index (%d) applies only to class-index targets, not to "
        "targets.probabilities",
        *p.options.ignore_index));
  } else {
    GRADSERVE_RETURN_IF_ERROR(ValidateHalfProbabilities(p.type, p.targets.probabilities, n, c));
  }
  return ValidateHalfFiniteLogits(p.type, p.logits);
}

absl::Status HalfSoftmax(HalfType type, HalfMatrix logits, HalfMatrixOut probabilities,
                         HalfMatrixOut log_probabilities, const ExecContext& ctx) {
  const int64_t c = logits.cols();
  for (const HalfMatrixOut* m : {&probabilities, &log_probabilities}) {
    if (m->data() != nullptr && (m->rows() != logits.rows() || m->cols() != c)) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "softmax output has shape [%d, %d], expected [%d, %d]", m->rows(), m->cols(), logits.rows(), c));
    }
  }
  GRADSERVE_RETURN_IF_ERROR(ValidateHalfFiniteLogits(type, logits));
  return ForEachBlock(logits.rows(), 3 * c, ctx, [&](int64_t b, int64_t e, const ExecContext& inner, float* s) {
    const int64_t size = (e - b) * c;
    const ConstMatrixMap<float> zf = WidenRows(type, logits, b, e, s);
    const MatrixMap<float> p = Scratch(probabilities.data() != nullptr, s + size, e - b, c);
    const MatrixMap<float> lp = Scratch(log_probabilities.data() != nullptr, s + 2 * size, e - b, c);
    GRADSERVE_RETURN_IF_ERROR(Softmax<float>(zf, p, lp, inner));
    NarrowRows(type, p, probabilities, b);
    NarrowRows(type, lp, log_probabilities, b);
    return absl::OkStatus();
  });
}

absl::Status HalfSoftmaxVjp(HalfType type, HalfMatrix logits, HalfMatrix grad_probabilities,
                            HalfMatrixOut grad_logits, HalfMatrixOut probabilities,
                            const ExecContext& ctx) {
  const int64_t n = logits.rows(), c = logits.cols();
  if (grad_probabilities.rows() != n || grad_probabilities.cols() != c || grad_logits.rows() != n ||
      grad_logits.cols() != c) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "grad_probabilities [%d, %d] and grad_logits [%d, %d] must have the logits' shape [%d, %d]",
        grad_probabilities.rows(), grad_probabilities.cols(), grad_logits.rows(), grad_logits.cols(), n, c));
  }
  GRADSERVE_RETURN_IF_ERROR(ValidateHalfFiniteLogits(type, logits));
  return ForEachBlock(n, 4 * c, ctx, [&](int64_t b, int64_t e, const ExecContext& inner, float* s) {
    const int64_t size = (e - b) * c;
    const ConstMatrixMap<float> zf = WidenRows(type, logits, b, e, s);
    const MatrixMap<float> pf = Scratch(true, s + size, e - b, c);
    GRADSERVE_RETURN_IF_ERROR(Softmax<float>(zf, pf, NoMatrix<float>(), inner));
    const ConstMatrixMap<float> gf = WidenRows(type, grad_probabilities, b, e, s + 2 * size);
    const MatrixMap<float> out = Scratch(true, s + 3 * size, e - b, c);
    GRADSERVE_RETURN_IF_ERROR(SoftmaxVjp<float>(ConstMatrixMap<float>(pf.data(), e - b, c), gf, out, inner));
    NarrowRows(type, out, grad_logits, b);
    NarrowRows(type, pf, probabilities, b);
    return absl::OkStatus();
  });
}

absl::Status HalfSoftmaxJacobian(HalfType type, HalfMatrix logits, uint16_t* jacobian,
                                 const ExecContext& ctx) {
  const int64_t c = logits.cols();
  GRADSERVE_RETURN_IF_ERROR(ValidateHalfFiniteLogits(type, logits));
  return ForEachBlock(logits.rows(), c * c + 2 * c, ctx, [&](int64_t b, int64_t e, const ExecContext& inner, float* s) {
    const int64_t size = (e - b) * c;
    const ConstMatrixMap<float> zf = WidenRows(type, logits, b, e, s);
    const MatrixMap<float> pf = Scratch(true, s + size, e - b, c);
    float* j = s + 2 * size;
    GRADSERVE_RETURN_IF_ERROR(Softmax<float>(zf, pf, NoMatrix<float>(), inner));
    GRADSERVE_RETURN_IF_ERROR(SoftmaxJacobian<float>(ConstMatrixMap<float>(pf.data(), e - b, c), j, inner));
    NarrowToHalf(type, j, jacobian + b * c * c, size * c);
    return absl::OkStatus();
  });
}

absl::StatusOr<LossSummary> HalfCrossEntropy(const HalfLossProblem& p,
                                             absl::Span<const float> grad_loss, Method method,
                                             const HalfLossOutputs& out, const ExecContext& ctx) {
  GRADSERVE_RETURN_IF_ERROR(ValidateHalfLossProblem(p));
  const int64_t n = p.logits.rows(), c = p.logits.cols();
  const Reduction reduction = p.options.reduction;
  const bool none = reduction == Reduction::kNone;
  const size_t loss_size = none ? n : 1;
  if (!grad_loss.empty() && grad_loss.size() != loss_size) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "grad_loss has %d values but the loss has %d (batch %d)", grad_loss.size(), loss_size, n));
  }
  if (!out.loss.empty() && out.loss.size() != loss_size) {
    return absl::InvalidArgumentError(
        absl::StrFormat("loss output has %d values, expected %d", out.loss.size(), loss_size));
  }
  for (const HalfMatrixOut* m : {&out.grad_logits, &out.grad_probabilities}) {
    if (m->data() != nullptr && (m->rows() != n || m->cols() != c)) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "gradient output has shape [%d, %d], expected [%d, %d]", m->rows(), m->cols(), n, c));
    }
  }
  const bool want_grad = out.grad_logits.data() != nullptr;
  const bool want_grad_probs = want_grad && method == Method::kChainRule && out.grad_probabilities.data() != nullptr;

  // The whole batch's MEAN denominator, and each row's upstream gradient as the float32 library
  // forms it for the whole batch: float(1/denominator · grad_loss) for MEAN (NaN over a zero
  // denominator), grad_loss for SUM, the row's grad_loss for NONE.
  const Targets<float> whole_targets =
      p.targets.is_probabilities ? Targets<float>::Probabilities(ConstMatrixMap<float>(nullptr, n, c))
                                 : Targets<float>::ClassIndices(p.targets.class_indices);
  const double denominator =
      MeanDenominator<float>(LossProblem<float>{ConstMatrixMap<float>(nullptr, n, c), whole_targets, p.options});
  const double base = reduction != Reduction::kMean ? 1.0
                      : denominator == 0.0         ? std::numeric_limits<double>::quiet_NaN()
                                                   : 1.0 / denominator;
  std::vector<float> row_scale(n);
  for (int64_t i = 0; i < n; ++i) {
    const double g = grad_loss.empty() ? 1.0 : grad_loss[grad_loss.size() == 1 ? 0 : i];
    row_scale[i] = static_cast<float>(base * g);
  }
  std::vector<float> row_loss(n);

  LossOptions block_options = p.options;
  block_options.reduction = Reduction::kNone;
  block_options.probability_sum_tolerance = HalfProbabilitySumTolerance(p.type, c);
  const int64_t arrays = 2 + (p.targets.is_probabilities ? 1 : 0) + (want_grad_probs ? 1 : 0);
  GRADSERVE_RETURN_IF_ERROR(ForEachBlock(n, arrays * c, ctx, [&](int64_t b, int64_t e, const ExecContext& inner, float* s) {
    const int64_t size = (e - b) * c;
    const ConstMatrixMap<float> zf = WidenRows(p.type, p.logits, b, e, s);
    const Targets<float> targets =
        p.targets.is_probabilities
            ? Targets<float>::Probabilities(WidenRows(p.type, p.targets.probabilities, b, e, s + size))
            : Targets<float>::ClassIndices(p.targets.class_indices.subspan(b, e - b));
    float* outputs = s + (p.targets.is_probabilities ? 2 : 1) * size;
    const MatrixMap<float> g = Scratch(want_grad, outputs, e - b, c);
    const MatrixMap<float> gp = Scratch(want_grad_probs, outputs + size, e - b, c);
    const absl::StatusOr<LossSummary> r = CrossEntropy<float>(
        LossProblem<float>{zf, targets, block_options}, absl::MakeConstSpan(row_scale.data() + b, e - b),
        method, LossOutputs<float>{absl::MakeSpan(row_loss.data() + b, e - b), g, gp}, inner);
    if (!r.ok()) return r.status();
    NarrowRows(p.type, g, out.grad_logits, b);
    NarrowRows(p.type, gp, out.grad_probabilities, b);
    return absl::OkStatus();
  }));

  if (!out.loss.empty()) {
    if (none) {
      NarrowToHalf(p.type, row_loss.data(), out.loss.data(), n);
    } else {
      // As the library reduces: float row losses summed in order in float64, then divided.
      double total = 0.0;
      for (float l : row_loss) total += l;
      if (reduction == Reduction::kMean) {
        total = denominator == 0.0 ? std::numeric_limits<double>::quiet_NaN() : total / denominator;
      }
      out.loss[0] = FloatToHalf(p.type, static_cast<float>(total));
    }
  }
  return LossSummary{reduction == Reduction::kMean ? denominator : 0.0};
}

}  // namespace gradserve
