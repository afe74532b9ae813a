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
#include "lib/loss_check.h"
#include "lib/loss_pass.h"
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

}  // namespace

double HalfProbabilitySumTolerance(HalfType type, int64_t classes) {
  return std::max(1e-4, static_cast<double>(classes) * HalfUnitRoundoff(type));
}

absl::StatusOr<LossSummary> HalfLossPass(const HalfPassInputs& in, const HalfPassOutputs& out,
                                         const ExecContext& ctx) {
  GRADSERVE_RETURN_IF_ERROR(ValidateHalfLossPass(in, out));
  // Checked on the half bits, before any widening: a max-reduction over the whole input.
  GRADSERVE_RETURN_IF_ERROR(ValidateHalfFiniteLogits(in.type, in.logits));
  const int64_t n = in.logits.rows(), c = in.logits.cols();
  const HalfType type = in.type;
  const Reduction reduction = in.options.reduction;
  const bool has_targets = in.targets.has_value();
  const bool prob_targets = has_targets && in.targets->is_probabilities;
  const bool want_grad = out.grad_logits.data() != nullptr;
  const bool want_grad_probs = has_targets && want_grad && in.method == Method::kChainRule &&
                               out.grad_probabilities.data() != nullptr;

  // The whole batch's MEAN denominator, and each row's upstream gradient as the float32 pass
  // forms it for the whole batch: float(1/denominator · grad_loss) for MEAN (NaN over a zero
  // denominator), grad_loss for SUM, the row's grad_loss for NONE.
  LossSummary summary;
  double denominator = 0.0;
  std::vector<float> row_scale, row_loss;
  if (has_targets) {
    const Targets<float> whole_targets =
        prob_targets ? Targets<float>::Probabilities(ConstMatrixMap<float>(nullptr, n, c))
                     : Targets<float>::ClassIndices(in.targets->class_indices);
    denominator = MeanDenominator<float>(
        LossProblem<float>{ConstMatrixMap<float>(nullptr, n, c), whole_targets, in.options});
    if (reduction == Reduction::kMean) summary.reduction_denominator = denominator;
    const double base = reduction != Reduction::kMean ? 1.0
                        : denominator == 0.0 ? std::numeric_limits<double>::quiet_NaN()
                                             : 1.0 / denominator;
    if (want_grad) {
      row_scale.resize(n);
      for (int64_t i = 0; i < n; ++i) {
        const double g = in.grad_loss.empty() ? 1.0 : in.grad_loss[in.grad_loss.size() == 1 ? 0 : i];
        row_scale[i] = static_cast<float>(base * g);
      }
    }
    if (!out.loss.empty()) row_loss.resize(n);
  }

  const bool wanted[] = {out.probabilities.data() != nullptr,
                         out.log_probabilities.data() != nullptr, want_grad, want_grad_probs};
  const HalfMatrixOut* const targets_out[] = {&out.probabilities, &out.log_probabilities,
                                              &out.grad_logits, &out.grad_probabilities};
  int64_t arrays = 1 + (prob_targets ? 1 : 0) + (in.has_vjp() ? 1 : 0);
  for (bool w : wanted) arrays += w ? 1 : 0;
  GRADSERVE_RETURN_IF_ERROR(ForEachBlock(n, arrays * c, ctx, [&](int64_t b, int64_t e, const ExecContext& inner, float* s) {
    const int64_t size = (e - b) * c;
    float* next = s;
    auto widen = [&](HalfMatrix m) {
      const ConstMatrixMap<float> v = WidenRows(type, m, b, e, next);
      next += size;
      return v;
    };
    const ConstMatrixMap<float> zf = widen(in.logits);
    const Targets<float> targets =
        prob_targets ? Targets<float>::Probabilities(widen(in.targets->probabilities))
        : has_targets ? Targets<float>::ClassIndices(in.targets->class_indices.subspan(b, e - b))
                      : Targets<float>::ClassIndices({});
    const ConstMatrixMap<float> gf = in.has_vjp() ? widen(in.grad_probabilities) : NoConstMatrix<float>();
    auto output = [&](bool w) {
      if (!w) return NoMatrix<float>();
      const MatrixMap<float> m(next, e - b, c);
      next += size;
      return m;
    };
    // Braced initialisers run in order, so the views are carved from `s` in this order.
    const MatrixMap<float> block[4] = {output(wanted[0]), output(wanted[1]), output(wanted[2]),
                                       output(wanted[3])};
    const internal::RowPassInputs<float> rows{
        LossProblem<float>{zf, targets, in.options}, has_targets, gf, in.method,
        row_scale.empty() ? absl::Span<const float>() : absl::MakeConstSpan(row_scale).subspan(b, e - b)};
    const LossPassOutputs<float> block_out{
        block[0], block[1],
        row_loss.empty() ? absl::Span<float>() : absl::MakeSpan(row_loss).subspan(b, e - b),
        block[2], block[3]};
    GRADSERVE_RETURN_IF_ERROR(internal::RunRowPass<float>(rows, block_out, inner).status());
    for (int k = 0; k < 4; ++k) NarrowRows(type, block[k], *targets_out[k], b);
    return absl::OkStatus();
  }));
  if (in.has_vjp() && out.grad_probabilities.data() != nullptr) {
    // The VJP's dL/dA is the caller's own, already in the half type.
    HalfMatrixOut echo = out.grad_probabilities;  // a const Map is read-only
    std::copy(in.grad_probabilities.data(), in.grad_probabilities.data() + n * c, echo.data());
  }

  if (!out.loss.empty() && has_targets) {
    if (reduction == Reduction::kNone) {
      NarrowToHalf(type, row_loss.data(), out.loss.data(), n);
    } else {
      // As the float32 pass reduces: float row losses summed in order in float64, then divided.
      double total = 0.0;
      for (float l : row_loss) total += l;
      if (reduction == Reduction::kMean) {
        total = denominator == 0.0 ? std::numeric_limits<double>::quiet_NaN() : total / denominator;
      }
      out.loss[0] = FloatToHalf(type, static_cast<float>(total));
    }
  }
  return summary;
}

absl::Status ValidateHalfLossProblem(const HalfLossProblem& p) {
  GRADSERVE_RETURN_IF_ERROR(ValidateHalfLossPass(
      HalfPassInputs{p.type, p.logits, p.targets, p.options}, HalfPassOutputs{}));
  return ValidateHalfFiniteLogits(p.type, p.logits);
}

absl::Status HalfSoftmax(HalfType type, HalfMatrix logits, HalfMatrixOut probabilities,
                         HalfMatrixOut log_probabilities, const ExecContext& ctx) {
  return HalfLossPass(HalfPassInputs{type, logits}, HalfPassOutputs{probabilities, log_probabilities}, ctx)
      .status();
}

absl::Status HalfSoftmaxVjp(HalfType type, HalfMatrix logits, HalfMatrix grad_probabilities,
                            HalfMatrixOut grad_logits, HalfMatrixOut probabilities,
                            const ExecContext& ctx) {
  const HalfPassInputs in{type, logits, std::nullopt, LossOptions{}, {}, grad_probabilities};
  return HalfLossPass(in, HalfPassOutputs{probabilities, NoMatrix<uint16_t>(), {}, grad_logits}, ctx).status();
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
  return HalfLossPass(
      HalfPassInputs{p.type, p.logits, p.targets, p.options, grad_loss, NoConstMatrix<uint16_t>(), method},
      HalfPassOutputs{NoMatrix<uint16_t>(), NoMatrix<uint16_t>(), out.loss, out.grad_logits,
                      method == Method::kChainRule ? out.grad_probabilities : NoMatrix<uint16_t>()},
      ctx);
}

}  // namespace gradserve
