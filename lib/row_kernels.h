// Per-row building blocks shared by the softmax and cross-entropy kernels (internal).
//
// ExpShifted does one row: a max/min pass, then exp and sum. ExpRows does many contiguous rows as a
// pipeline: while row i's exponentials are formed (FMA-bound), row i+1's max/min is found (which
// streams it in from memory) and row i-1 is written to the output, scaled, so that the exp work,
// the loads and the stores overlap instead of taking turns. A large output is instead written
// past the caches, each row in a loop of its own after its exp loop (non-temporal stores mixed
// into the exp loop measured slower).
//
// The loops themselves live in lib/kernels/, compiled once per instruction set (Highway targets)
// and chosen at run time for the CPU (lib/kernels/kernel_dispatch.h); the functions here forward
// to the chosen one.
#ifndef GRADSERVE_LIB_ROW_KERNELS_H_
#define GRADSERVE_LIB_ROW_KERNELS_H_

#include <cmath>
#include <cstdint>
#include <type_traits>
#include <utility>

#include "Eigen/Core"
#include "absl/functional/function_ref.h"

namespace gradserve::internal {

template <typename T>
using ArrayMap = Eigen::Map<Eigen::Array<T, 1, Eigen::Dynamic>>;
template <typename T>
using ConstArrayMap = Eigen::Map<const Eigen::Array<T, 1, Eigen::Dynamic>>;

template <typename T>
struct ShiftedExp {
  T max;        // m = max_j z_j
  T sum;        // S = Σ_j exp(z_j - m), in [1, n] for finite rows
  bool finite;  // every z_j was finite
  // log of the exponential of logit z, exact to rounding for large |z|.
  T Shifted(T z) const { return z - max; }
  T LogSumExp() const { return max + std::log(sum); }
};

template <typename T>
struct RowRange {
  T max;
  T min;
};

// A row's statistics from its range and the sum of its exponentials. A NaN anywhere makes `sum`
// NaN and an infinity makes the maximum or the minimum infinite, so `finite` costs no extra pass.
template <typename T>
ShiftedExp<T> RowStats(const RowRange<T>& range, T sum) {
  return {range.max, sum,
          std::isfinite(range.max) && std::isfinite(range.min) && std::isfinite(sum)};
}

// Rows up to this size form their exponentials in a scratch row that stays in L1 and are written
// to the output once, scaled; longer rows are formed in the output and scaled in place.
inline constexpr int64_t kScratchRowBytes = 16 << 10;

// Outputs at least this large are written with non-temporal stores: they are far larger than the
// caches, so caching them only costs a read for ownership of every line and evicts the inputs.
inline constexpr int64_t kStreamOutputBytes = 4 << 20;

// Whether an output of `elements` values of T is written with non-temporal stores.
template <typename T>
bool StreamsOutput(int64_t elements) {
  return elements * static_cast<int64_t>(sizeof(T)) >= kStreamOutputBytes;
}

// ExpRows' per-row callback: (row index within the call, statistics, the row's exponentials,
// which it may adjust) -> the factor the row is written with.
template <typename T>
using RowScaleRef = absl::FunctionRef<T(int64_t, const ShiftedExp<T>&, T*)>;

// The dispatched kernels (lib/kernels/row_kernels.cc), one per element type.
ShiftedExp<float> ExpShiftedF32(const float* z, float* e, int64_t n);
ShiftedExp<double> ExpShiftedF64(const double* z, double* e, int64_t n);
void ExpRowsF32(const float* z, float* out, int64_t rows, int64_t n, bool stream,
                RowScaleRef<float> row_scale);
void ExpRowsF64(const double* z, double* out, int64_t rows, int64_t n, bool stream,
                RowScaleRef<double> row_scale);
void ScaleRowsF32(const float* in, float k, float* out, int64_t rows, int64_t n, bool stream);
void ScaleRowsF64(const double* in, double k, double* out, int64_t rows, int64_t n, bool stream);

// Writes exp(z - max z) to `e` (which may be null: then only the sum is formed). Rows
// must be non-empty.
template <typename T>
ShiftedExp<T> ExpShifted(const T* z, T* e, int64_t n) {
  if constexpr (std::is_same_v<T, float>) {
    return ExpShiftedF32(z, e, n);
  } else {
    return ExpShiftedF64(z, e, n);
  }
}

// For each of `rows` contiguous rows of length n in z: forms e = exp(z_i - m_i), calls
// `row_scale(i, stats, e)`, which may adjust e (the fused gradient subtracts the sum at the target
// class) and returns a factor k, and writes k·e to row i of `out`. While row i's exponentials are
// formed (FMA-bound), row i+1's max/min is found, which streams it in from memory, and row i-1
// is written out. `stream` (for outputs of kStreamOutputBytes or more) writes `out` with
// non-temporal stores, each row after its exp loop.
template <typename T, typename ScaleFn>
void ExpRows(const T* z, T* out, int64_t rows, int64_t n, bool stream, ScaleFn&& row_scale) {
  if constexpr (std::is_same_v<T, float>) {
    ExpRowsF32(z, out, rows, n, stream, row_scale);
  } else {
    ExpRowsF64(z, out, rows, n, stream, row_scale);
  }
}

// out[i][j] = k·in[i][j] for `rows` contiguous rows of length n, each written as ExpRows writes
// its rows (the benchmark's memory floor).
template <typename T>
void ScaleRows(const T* in, T k, T* out, int64_t rows, int64_t n, bool stream) {
  if constexpr (std::is_same_v<T, float>) {
    ScaleRowsF32(in, k, out, rows, n, stream);
  } else {
    ScaleRowsF64(in, k, out, rows, n, stream);
  }
}

}  // namespace gradserve::internal

#endif  // GRADSERVE_LIB_ROW_KERNELS_H_
