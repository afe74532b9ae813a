// Per-row building blocks shared by the softmax and cross-entropy kernels (internal).
//
// ExpShifted does one row: a max/min pass, then exp and sum. ExpRows does many contiguous rows as a
// three-stage pipeline, one loop per row: while row i's exponentials are formed (FMA-bound), row
// i+1's max/min is found (which streams it in from memory) and row i-1 is scaled (store-bound), so
// that the exp work, the stores and the memory traffic overlap instead of taking turns.
#ifndef GRADSERVE_LIB_ROW_KERNELS_H_
#define GRADSERVE_LIB_ROW_KERNELS_H_

#include <cmath>
#include <cstdint>
#include <limits>

#include "Eigen/Core"
#include "lib/vector_exp.h"

namespace gradserve::internal {

template <typename T>
using ArrayMap = Eigen::Map<Eigen::Array<T, 1, Eigen::Dynamic>>;
template <typename T>
using ConstArrayMap = Eigen::Map<const Eigen::Array<T, 1, Eigen::Dynamic>>;

template <typename T>
struct ShiftedExp {
  T max;        // m = max_j z_j
  T offset;     // the exponentials are exp(z_j - m - offset); |offset| <= |m|·2^-24 (VecOps)
  T sum;        // S = Σ_j exp(z_j - m - offset), in [1, n] for finite rows
  bool finite;  // every z_j was finite
  // log of the exponential of logit z, i.e. z - m - offset, exact to rounding for large |z|.
  T Shifted(T z) const { return (z - max) - offset; }
  T LogSumExp() const { return max + (offset + std::log(sum)); }
};

template <typename T>
struct RowRange {
  T max;
  T min;
};

template <typename T>
RowRange<T> RowMaxMin(const T* z, int64_t n) {
  using V = VecOps<T>;
  typename V::P mx = V::Set1(-std::numeric_limits<T>::infinity());
  typename V::P mn = V::Set1(std::numeric_limits<T>::infinity());
  int64_t j = 0;
  for (; j + V::kLanes <= n; j += V::kLanes) {
    const typename V::P v = V::Load(z + j);
    mx = V::Max(mx, v);
    mn = V::Min(mn, v);
  }
  if (j < n) {
    const typename V::P v = V::LoadPart(z + j, n - j, z[j]);
    mx = V::Max(mx, v);
    mn = V::Min(mn, v);
  }
  return {V::ReduceMax(mx), V::ReduceMin(mn)};
}

// One loop over the columns doing three rows' stages: max/min of `next` (if kNext), e = exp of
// `cur` shifted, into `out`, returning its sum, and `prev` *= prev_scale (if kPrev).
template <typename T, bool kNext, bool kPrev>
T PipelinedPass(const T* next, RowRange<T>* next_range, const T* cur, T* out,
                const typename VecOps<T>::Shift& shift_in, T* prev, T prev_scale, int64_t n) {
  using V = VecOps<T>;
  using P = typename V::P;
  const typename V::Shift shift = shift_in;  // a local copy stays in registers: `out` may alias
  P mx = V::Set1(-std::numeric_limits<T>::infinity());
  P mn = V::Set1(std::numeric_limits<T>::infinity());
  P acc = V::Set1(T(0));
  const P k = V::Set1(prev_scale);
  int64_t j = 0;
  for (; j + V::kLanes <= n; j += V::kLanes) {
    if constexpr (kNext) {
      const P v = V::InRegister(V::Load(next + j));
      mx = V::Max(mx, v);
      mn = V::Min(mn, v);
    }
    const P e = V::Exp(V::Load(cur + j), shift);
    V::Store(out + j, e);
    acc = V::Add(acc, e);
    if constexpr (kPrev) V::Store(prev + j, V::Mul(V::Load(prev + j), k));
  }
  if (j < n) {
    const int64_t left = n - j;
    if constexpr (kNext) {
      const P v = V::LoadPart(next + j, left, next[j]);
      mx = V::Max(mx, v);
      mn = V::Min(mn, v);
    }
    const P e = V::Exp(V::LoadPart(cur + j, left, cur[j]), shift);
    V::StorePart(out + j, e, left);
    acc = V::AddPart(acc, e, left);
    if constexpr (kPrev) V::StorePart(prev + j, V::Mul(V::LoadPart(prev + j, left, T(0)), k), left);
  }
  if constexpr (kNext) *next_range = {V::ReduceMax(mx), V::ReduceMin(mn)};
  return V::ReduceAdd(acc);
}

// Writes exp(z - max z - offset) to `e` (which may be null: then only the sum is formed). Rows
// must be non-empty. A NaN anywhere makes `sum` NaN and an infinity makes `max` or the minimum
// infinite, so `finite` costs no extra pass over memory.
template <typename T>
ShiftedExp<T> ExpShifted(const T* z, T* e, int64_t n) {
  using V = VecOps<T>;
  const RowRange<T> range = RowMaxMin(z, n);
  T offset;
  const typename V::Shift shift = V::MakeShift(range.max, &offset);
  T sum;
  if (e != nullptr) {
    sum = PipelinedPass<T, false, false>(nullptr, nullptr, z, e, shift, nullptr, T(0), n);
  } else {
    typename V::P acc = V::Set1(T(0));
    int64_t j = 0;
    for (; j + V::kLanes <= n; j += V::kLanes) acc = V::Add(acc, V::Exp(V::Load(z + j), shift));
    if (j < n) acc = V::AddPart(acc, V::Exp(V::LoadPart(z + j, n - j, z[j]), shift), n - j);
    sum = V::ReduceAdd(acc);
  }
  return {range.max, offset, sum,
          std::isfinite(range.max) && std::isfinite(range.min) && std::isfinite(sum)};
}

// For each of `rows` contiguous rows of length n in z: writes exp(z_i - m_i - offset_i) to row i
// of e, calls `row_scale(i, stats)` for the factor that row is then multiplied by in place, and
// `row_done(i)` once row i of e is final. Rows are visited in order.
template <typename T, typename ScaleFn, typename DoneFn>
void ExpRows(const T* z, T* e, int64_t rows, int64_t n, ScaleFn&& row_scale, DoneFn&& row_done) {
  if (rows <= 0) return;
  using V = VecOps<T>;
  RowRange<T> range = RowMaxMin(z, n);
  T prev_scale = T(0);
  for (int64_t i = 0; i < rows; ++i) {
    const T* cur = z + i * n;
    T* prev = i > 0 ? e + (i - 1) * n : nullptr;
    T offset;
    const typename V::Shift shift = V::MakeShift(range.max, &offset);
    RowRange<T> next_range{};
    T sum;
    if (i + 1 < rows) {
      sum = i > 0 ? PipelinedPass<T, true, true>(cur + n, &next_range, cur, e + i * n, shift, prev,
                                                 prev_scale, n)
                  : PipelinedPass<T, true, false>(cur + n, &next_range, cur, e + i * n, shift,
                                                  nullptr, T(0), n);
    } else {
      sum = i > 0 ? PipelinedPass<T, false, true>(nullptr, nullptr, cur, e + i * n, shift, prev,
                                                  prev_scale, n)
                  : PipelinedPass<T, false, false>(nullptr, nullptr, cur, e + i * n, shift,
                                                   nullptr, T(0), n);
    }
    if (i > 0) row_done(i - 1);
    const bool finite =
        std::isfinite(range.max) && std::isfinite(range.min) && std::isfinite(sum);
    prev_scale = row_scale(i, ShiftedExp<T>{range.max, offset, sum, finite});
    range = next_range;
  }
  ArrayMap<T>(e + (rows - 1) * n, n) *= prev_scale;
  row_done(rows - 1);
}

}  // namespace gradserve::internal

#endif  // GRADSERVE_LIB_ROW_KERNELS_H_
