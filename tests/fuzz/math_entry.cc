#include "tests/fuzz/math_entry.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "lib/cross_entropy.h"
#include "lib/softmax.h"
#include "lib/tensor.h"

namespace gradserve::fuzz {
namespace {

// The fuzzer's bytes, read front to back; zeros once they run out.
class Bytes {
 public:
  Bytes(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  uint8_t U8() { return pos_ < size_ ? data_[pos_++] : 0; }
  uint64_t U64() {
    uint64_t v = 0;
    for (int k = 0; k < 8; ++k) v = v << 8 | U8();
    return v;
  }
  double Unit() { return static_cast<double>(U64() >> 11) * 0x1p-53; }  // [0, 1)
  double Signed() { return 2.0 * Unit() - 1.0; }                         // [-1, 1)

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

// One logit, as T: `mode` (one per row) picks the kind of numbers.
template <typename T>
T Logit(Bytes& in, uint8_t mode, T previous) {
  using L = std::numeric_limits<T>;
  switch (mode % 7) {
    case 0: return static_cast<T>(static_cast<int>(in.U8() % 17) - 8);
    // (Each byte is read in its own statement: the order of operands is unspecified.)
    case 1: {  // the README's range, ±1e4
      const double m = in.Signed();
      return static_cast<T>(m * std::pow(10.0, in.U8() % 5));
    }
    case 2: {  // to ±1e39, past float32's range
      const double m = in.Signed();
      return static_cast<T>(m * std::pow(10.0, in.U8() % 40));
    }
    case 3: {
      const double m = in.Signed();
      return static_cast<T>(std::ldexp(m, in.U8() % 64 - 32));
    }
    case 4: return previous;  // ties
    case 5: {
      const T extremes[] = {L::max(), L::lowest(), L::denorm_min(), -L::denorm_min(),
                            L::min(), T(0), -T(0), L::max() / 2};
      return extremes[in.U8() % 8];
    }
    default: {  // any bit pattern: NaN and infinities included
      T v;
      if constexpr (sizeof(T) == 4) {
        const uint32_t bits = static_cast<uint32_t>(in.U64());
        std::memcpy(&v, &bits, 4);
      } else {
        const uint64_t bits = in.U64();
        std::memcpy(&v, &bits, 8);
      }
      return v;
    }
  }
}

const char* ReductionName(Reduction r) {
  return r == Reduction::kMean ? "MEAN" : r == Reduction::kSum ? "SUM" : "NONE";
}

template <typename T>
std::string Describe(const RowMatrix<T>& z, const std::vector<int64_t>& ids,
                     const RowMatrix<T>& probs, bool prob_targets, const LossOptions& o,
                     const std::vector<T>& grad_loss) {
  std::string s = absl::StrFormat(
      "\n  dtype %s, logits [%d, %d], reduction %s, label_smoothing %.17g, ignore_index %s",
      sizeof(T) == 4 ? "float32" : "float64", z.rows(), z.cols(), ReductionName(o.reduction),
      o.label_smoothing, o.ignore_index ? absl::StrCat(*o.ignore_index) : "none");
  absl::StrAppend(&s, "\n  class_weights [",
                  absl::StrJoin(o.class_weights, ", ", [](std::string* out, double w) {
                    absl::StrAppendFormat(out, "%.17g", w);
                  }),
                  "]\n  grad_loss [",
                  absl::StrJoin(grad_loss, ", ", [](std::string* out, T g) {
                    absl::StrAppendFormat(out, "%.17g", static_cast<double>(g));
                  }),
                  "]");
  if (prob_targets) {
    absl::StrAppend(&s, "\n  probability targets");
  } else {
    absl::StrAppend(&s, "\n  class_indices [", absl::StrJoin(ids, ", "), "]");
  }
  for (int64_t i = 0; i < z.rows(); ++i) {
    absl::StrAppend(&s, "\n  row ", i, ":");
    for (int64_t j = 0; j < z.cols(); ++j) {
      absl::StrAppendFormat(&s, " %.9g", static_cast<double>(z(i, j)));
      if (prob_targets) absl::StrAppendFormat(&s, "(t=%.9g)", static_cast<double>(probs(i, j)));
    }
  }
  return s;
}

template <typename T>
std::string Run(Bytes& in) {
  constexpr double kMax = static_cast<double>(std::numeric_limits<T>::max());
  const int64_t n = in.U8() % 9;
  const int64_t c = in.U8() % 80 + 1;

  RowMatrix<T> z(n, c);
  for (int64_t i = 0; i < n; ++i) {
    const uint8_t mode = in.U8();
    T previous = 0;
    for (int64_t j = 0; j < c; ++j) previous = z(i, j) = Logit<T>(in, mode, previous);
  }
  const bool finite = z.allFinite();

  // Options, with every number representable in T so that the float64 reference sees the same
  // inputs as the float32 computation.
  LossOptions o;
  o.reduction = static_cast<Reduction>(in.U8() % 3);
  switch (in.U8() % 4) {
    case 0: o.label_smoothing = 0.0; break;
    case 1: o.label_smoothing = 1.0; break;
    default: o.label_smoothing = static_cast<T>(in.Unit()); break;
  }
  std::vector<double> weights;
  switch (in.U8() % 3) {
    case 0: break;
    case 1:
      for (int64_t j = 0; j < c; ++j) weights.push_back(in.U8() % 4);
      break;
    default:
      for (int64_t j = 0; j < c; ++j) {
        if (in.U8() % 8 == 0) {
          weights.push_back(0.0);
          continue;
        }
        const double m = 1.0 + in.Unit();
        weights.push_back(static_cast<T>(std::ldexp(m, in.U8() % 200 - 100)));
      }
      break;
  }
  const bool prob_targets = in.U8() & 1;
  switch (in.U8() % 4) {
    case 2: if (!prob_targets) o.ignore_index = -100; break;
    case 3: if (!prob_targets) o.ignore_index = in.U8() % c; break;
    default: break;
  }

  std::vector<int64_t> ids;
  RowMatrix<T> probs(prob_targets ? n : 0, c);
  for (int64_t i = 0; i < n; ++i) {
    if (!prob_targets) {
      const int64_t b = in.U8() % (c + 2);
      ids.push_back(b < c ? b : o.ignore_index.value_or(0));
      continue;
    }
    std::vector<double> row(c, 0.0);
    const uint8_t mode = in.U8() % 3;
    if (mode == 0) {
      row[in.U8() % c] = 1.0;
    } else {
      for (double& v : row) {
        const uint8_t b = in.U8();
        v = mode == 2 && b % 4 == 0 ? 0.0 : b;
      }
    }
    double sum = 0.0;
    for (double v : row) sum += v;
    if (sum == 0.0) row[0] = sum = 1.0;
    for (int64_t j = 0; j < c; ++j) probs(i, j) = static_cast<T>(row[j] / sum);
  }

  std::vector<T> grad_loss;
  const int64_t loss_size = o.reduction == Reduction::kNone ? n : 1;
  const uint8_t grad_loss_mode = in.U8() % 4;
  for (int64_t k = 0; grad_loss_mode != 0 && k < loss_size; ++k) {
    if (grad_loss_mode == 1) {
      grad_loss.push_back(static_cast<T>(static_cast<int>(in.U8() % 5) - 2));
      continue;
    }
    const double m = in.Signed();
    const int e = in.U8();
    grad_loss.push_back(static_cast<T>(grad_loss_mode == 2 ? m * std::pow(10.0, e % 13 - 6)
                                                           : std::ldexp(m, e % 200 - 100)));
  }

  // Now and then, one invalid input: every method must reject it.
  bool invalid = false;
  if (in.U8() % 16 == 0) {
    switch (in.U8() % 5) {
      case 0:
        if (!prob_targets && n > 0) {
          const int64_t row = in.U8() % n;
          const bool above = in.U8() & 1;
          const int64_t by = in.U8();
          ids[row] = above ? c + by : -1 - by;
          // Unless that label happens to be ignore_index.
          for (int64_t y : ids) {
            if ((y < 0 || y >= c) && !(o.ignore_index && y == *o.ignore_index)) invalid = true;
          }
        }
        break;
      case 1:
        if (weights.empty()) weights.assign(c, 1.0);
        weights[in.U8() % c] = -1.0;
        invalid = true;
        break;
      case 2: {
        const double bad[] = {1.5, -0.25, std::nan("")};
        o.label_smoothing = bad[in.U8() % 3];
        invalid = true;
        break;
      }
      case 3:
        if (prob_targets && n > 0) {
          probs.row(in.U8() % n) *= T(2);
          invalid = true;
        }
        break;
      default:
        if (prob_targets) {
          o.ignore_index = 0;
          invalid = true;
        }
        break;
    }
  }
  o.class_weights = weights;

  const Targets<T> targets = prob_targets ? Targets<T>::Probabilities(ConstView(probs))
                                          : Targets<T>::ClassIndices(ids);
  const LossProblem<T> p{ConstView(z), targets, o};
  // The decoded case, for failure messages only (formatting it for every input would be slow).
  auto what = [&] { return Describe(z, ids, probs, prob_targets, o, grad_loss); };
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
