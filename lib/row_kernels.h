// Per-row building blocks shared by the softmax and cross-entropy kernels (internal).
//
// ExpShifted does one row: a max/min pass, then exp and sum. ExpRows does many contiguous rows as a
// pipeline: while row i's exponentials are formed (FMA-bound), row i+1's max/min is found (which
// streams it in from memory), so that the exp work and the memory traffic overlap instead of
// taking turns; each row is then written to the output once, scaled, past the caches when the
// output is large.
#ifndef GRADSERVE_LIB_ROW_KERNELS_H_
#define GRADSERVE_LIB_ROW_KERNELS_H_

#include <algorithm>
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

// Writes exp(z - max z) to `e` (which may be null: then only the sum is formed). Rows
// must be non-empty.
template <typename T>
ShiftedExp<T> ExpShifted(const T* z, T* e, int64_t n) {
  using V = VecOps<T>;
  const RowRange<T> range = RowMaxMin(z, n);
  const typename V::Shift shift = V::MakeShift(range.max);
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
  return RowStats(range, sum);
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

// out[j] = k·e[j] for j < n, streamed past the caches when `stream`.
template <typename T>
void ScaleInto(const T* e, T k, T* out, int64_t n, bool stream) {
  using V = VecOps<T>;
  const typename V::P kk = V::Set1(k);
  int64_t j = 0;
  if (stream) {
    // Non-temporal stores take aligned addresses: a head of up to kLanes - 1 elements first.
    constexpr uintptr_t kAlign = sizeof(typename V::P);
    const uintptr_t to_boundary = (kAlign - reinterpret_cast<uintptr_t>(out) % kAlign) % kAlign;
    const int64_t head = std::min<int64_t>(n, static_cast<int64_t>(to_boundary / sizeof(T)));
    if (head > 0) V::StorePart(out, V::Mul(V::LoadPart(e, head, T(0)), kk), head);
    for (j = head; j + V::kLanes <= n; j += V::kLanes) {
      V::StoreStream(out + j, V::Mul(V::Load(e + j), kk));
    }
  } else {
    for (; j + V::kLanes <= n; j += V::kLanes) V::Store(out + j, V::Mul(V::Load(e + j), kk));
  }
  if (j < n) V::StorePart(out + j, V::Mul(V::LoadPart(e + j, n - j, T(0)), kk), n - j);
}

// ExpRows for rows longer than kScratchRowBytes: the exponentials are formed in `out`, and row
// i - 1 is scaled in place during row i's exp loop (its stores overlap the exp work).
template <typename T, typename ScaleFn>
void ExpRowsInPlace(const T* z, T* out, int64_t rows, int64_t n, ScaleFn&& row_scale) {
  using V = VecOps<T>;
  RowRange<T> range = RowMaxMin(z, n);
  T prev_scale = T(0);
  for (int64_t i = 0; i < rows; ++i) {
    const T* cur = z + i * n;
    T* e = out + i * n;
    T* prev = i > 0 ? e - n : nullptr;
    const typename V::Shift shift = V::MakeShift(range.max);
    RowRange<T> next_range{};
    T sum;
    if (i + 1 < rows) {
      sum = i > 0 ? PipelinedPass<T, true, true>(cur + n, &next_range, cur, e, shift, prev,
                                                 prev_scale, n)
                  : PipelinedPass<T, true, false>(cur + n, &next_range, cur, e, shift, nullptr,
                                                  T(0), n);
    } else {
      sum = i > 0 ? PipelinedPass<T, false, true>(nullptr, nullptr, cur, e, shift, prev,
                                                  prev_scale, n)
                  : PipelinedPass<T, false, false>(nullptr, nullptr, cur, e, shift, nullptr,
                                                   T(0), n);
    }
    prev_scale = row_scale(i, RowStats(range, sum), e);
    range = next_range;
  }
  ArrayMap<T>(out + (rows - 1) * n, n) *= prev_scale;
}

// For each of `rows` contiguous rows of length n in z: forms e = exp(z_i - m_i), calls
// `row_scale(i, stats, e)`, which may adjust e (the fused gradient subtracts the sum at the target
// class) and returns a factor k, and writes k·e to row i of `out`. While row i's exponentials are
// formed (FMA-bound), row i+1's max/min is found, which streams it in from memory. `stream`
// (for outputs of kStreamOutputBytes or more) writes `out` with non-temporal stores.
template <typename T, typename ScaleFn>
void ExpRows(const T* z, T* out, int64_t rows, int64_t n, bool stream, ScaleFn&& row_scale) {
  if (rows <= 0) return;
  if (n * static_cast<int64_t>(sizeof(T)) > kScratchRowBytes) {
    return ExpRowsInPlace(z, out, rows, n, row_scale);
  }
  using V = VecOps<T>;
  alignas(64) T e[kScratchRowBytes / sizeof(T)];
  RowRange<T> range = RowMaxMin(z, n);
  for (int64_t i = 0; i < rows; ++i) {
    const T* cur = z + i * n;
    const typename V::Shift shift = V::MakeShift(range.max);
    RowRange<T> next_range{};
    const T sum =
        i + 1 < rows
            ? PipelinedPass<T, true, false>(cur + n, &next_range, cur, e, shift, nullptr, T(0), n)
            : PipelinedPass<T, false, false>(nullptr, nullptr, cur, e, shift, nullptr, T(0), n);
    const T k = row_scale(i, RowStats(range, sum), e);
    ScaleInto(e, k, out + i * n, n, stream);
    range = next_range;
  }
  if (stream) V::StreamFence();
}

}  // namespace gradserve::internal

#endif  // GRADSERVE_LIB_ROW_KERNELS_H_
