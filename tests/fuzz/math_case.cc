// Decoding of the math fuzzer's bytes (see math_case.h). Each byte is read in its own statement:
// the order of operands is unspecified, and the order of reads is the corpus's format.
#include "tests/fuzz/math_case.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace gradserve::fuzz {
namespace {

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

}  // namespace

template <typename T>
void MathCase<T>::Decode(Bytes& in) {
  ids.clear();
  weights.clear();
  grad_loss.clear();
  invalid = false;
  const int64_t n = in.U8() % 9;
  const int64_t c = in.U8() % 80 + 1;

  z.resize(n, c);
  for (int64_t i = 0; i < n; ++i) {
    const uint8_t mode = in.U8();
    T previous = 0;
    for (int64_t j = 0; j < c; ++j) previous = z(i, j) = Logit<T>(in, mode, previous);
  }
  finite = z.allFinite();

  // Options, with every number representable in T so that the float64 reference sees the same
  // inputs as the float32 computation.
  LossOptions& o = options;
  o = LossOptions{};
  o.reduction = static_cast<Reduction>(in.U8() % 3);
  switch (in.U8() % 4) {
    case 0: o.label_smoothing = 0.0; break;
    case 1: o.label_smoothing = 1.0; break;
    default: o.label_smoothing = static_cast<T>(in.Unit()); break;
  }
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
  prob_targets = in.U8() & 1;
  switch (in.U8() % 4) {
    case 2: if (!prob_targets) o.ignore_index = -100; break;
    case 3: if (!prob_targets) o.ignore_index = in.U8() % c; break;
    default: break;
  }

  probs.resize(prob_targets ? n : 0, c);
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
}

template <typename T>
std::string MathCase<T>::Describe() const {
  const LossOptions& o = options;
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

template struct MathCase<float>;
template struct MathCase<double>;

}  // namespace gradserve::fuzz
