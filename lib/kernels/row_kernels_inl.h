// The row loops behind lib/row_kernels.h, on Highway vectors (internal, per target).
//
// Included once per target from lib/kernels/row_kernels.cc (hwy/foreach_target.h), hence the
// per-target include guard. Tails (the last n % lanes elements of a row) take the same vector
// path with masked loads and stores.
#if defined(GRADSERVE_LIB_KERNELS_ROW_KERNELS_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef GRADSERVE_LIB_KERNELS_ROW_KERNELS_INL_H_
#undef GRADSERVE_LIB_KERNELS_ROW_KERNELS_INL_H_
#else
#define GRADSERVE_LIB_KERNELS_ROW_KERNELS_INL_H_
#endif

#include <algorithm>
#include <cstdint>
#include <limits>
#include <type_traits>

#include "hwy/cache_control.h"
#include "hwy/highway.h"
#include "lib/row_kernels.h"
#include "lib/vector_exp.h"

HWY_BEFORE_NAMESPACE();
namespace gradserve::internal::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

template <typename T>
struct Ops {
  using D = hn::ScalableTag<T>;
  using V = hn::Vec<D>;
  using M = hn::Mask<D>;
  template <bool kWide>
  using Exp = std::conditional_t<std::is_same_v<T, float>, ExpF32<kWide>, ExpF64<kWide>>;

  static int64_t Lanes() { return static_cast<int64_t>(hn::Lanes(D())); }
  // The first k lanes of p, the others `fill`.
  static V LoadPart(const T* p, int64_t k, T fill) {
    const D d;
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX2
    // A true masked load: nothing past p[k - 1] is read.
    const M m = hn::FirstN(d, static_cast<size_t>(k));
    return hn::IfThenElse(m, hn::MaskedLoad(m, d, p), hn::Set(d, fill));
#else
    // Highway's MaskedLoad on older targets loads the whole (aligned) vector; copy instead.
    alignas(64) T buf[hn::MaxLanes(D())];
    for (size_t j = 0; j < hn::MaxLanes(D()); ++j) buf[j] = static_cast<int64_t>(j) < k ? p[j] : fill;
    return hn::Load(d, buf);
#endif
  }
  static void StorePart(T* p, V v, int64_t k) {
    const D d;
    hn::BlendedStore(v, hn::FirstN(d, static_cast<size_t>(k)), d, p);
  }
  // acc + v on the first k lanes only.
  static V AddPart(V acc, V v, int64_t k) {
    const D d;
    return hn::Add(acc, hn::IfThenElseZero(hn::FirstN(d, static_cast<size_t>(k)), v));
  }
  static T ReduceMax(V v) { return hn::GetLane(hn::MaxOfLanes(D(), v)); }
  static T ReduceMin(V v) { return hn::GetLane(hn::MinOfLanes(D(), v)); }
  static T ReduceAdd(V v) { return hn::GetLane(hn::SumOfLanes(D(), v)); }

  // Keeps a loaded value in a register: GCC would otherwise fold the load into each of its uses
  // (max and min), and loads are what bounds the pipelined row loop.
  static V InRegister(V v) {
#if defined(__GNUC__) && !defined(__clang__) && HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
    asm("" : "+v"(v.raw));
#elif defined(__GNUC__) && !defined(__clang__) && HWY_ARCH_X86 && HWY_TARGET != HWY_SCALAR && \
    HWY_TARGET != HWY_EMU128
    asm("" : "+x"(v.raw));
#endif
    return v;
  }
};

template <typename T>
RowRange<T> RowMaxMin(const T* z, int64_t n) {
  using O = Ops<T>;
  const typename O::D d;
  const int64_t lanes = O::Lanes();
  auto mx = hn::Set(d, -std::numeric_limits<T>::infinity());
  auto mn = hn::Set(d, std::numeric_limits<T>::infinity());
  int64_t j = 0;
  for (; j + lanes <= n; j += lanes) {
    const auto v = hn::LoadU(d, z + j);
    mx = hn::Max(mx, v);
    mn = hn::Min(mn, v);
  }
  if (j < n) {
    const auto v = O::LoadPart(z + j, n - j, z[j]);
    mx = hn::Max(mx, v);
    mn = hn::Min(mn, v);
  }
  return {O::ReduceMax(mx), O::ReduceMin(mn)};
}

// One loop over the columns doing three rows' stages: max/min of `next` (if kNext), e = exp of
// `cur` shifted, into `out`, returning its sum, and prev_out = prev_scale · prev (if kPrev; the two
// may be the same row).
template <typename T, bool kNext, bool kPrev, class Exp>
T PipelinedPass(const T* next, RowRange<T>* next_range, const T* cur, T* out, const Exp exp,
                const T* prev, T* prev_out, T prev_scale, int64_t n) {
  using O = Ops<T>;
  using V = typename O::V;
  const typename O::D d;
  const int64_t lanes = O::Lanes();
  V mx = hn::Set(d, -std::numeric_limits<T>::infinity());
  V mn = hn::Set(d, std::numeric_limits<T>::infinity());
  V acc = hn::Zero(d);
  const V k = hn::Set(d, prev_scale);
  int64_t j = 0;
  for (; j + lanes <= n; j += lanes) {
    if constexpr (kNext) {
      const V v = O::InRegister(hn::LoadU(d, next + j));
      mx = hn::Max(mx, v);
      mn = hn::Min(mn, v);
    }
    const V e = exp(hn::LoadU(d, cur + j));
    hn::StoreU(e, d, out + j);
    acc = hn::Add(acc, e);
    if constexpr (kPrev) hn::StoreU(hn::Mul(hn::LoadU(d, prev + j), k), d, prev_out + j);
  }
  if (j < n) {
    const int64_t left = n - j;
    if constexpr (kNext) {
      const V v = O::LoadPart(next + j, left, next[j]);
      mx = hn::Max(mx, v);
      mn = hn::Min(mn, v);
    }
    const V e = exp(O::LoadPart(cur + j, left, cur[j]));
    O::StorePart(out + j, e, left);
    acc = O::AddPart(acc, e, left);
    if constexpr (kPrev) {
      O::StorePart(prev_out + j, hn::Mul(O::LoadPart(prev + j, left, T(0)), k), left);
    }
  }
  if constexpr (kNext) *next_range = {O::ReduceMax(mx), O::ReduceMin(mn)};
  return O::ReduceAdd(acc);
}

// PipelinedPass with the exp variant the current row's range needs.
template <typename T, bool kNext, bool kPrev>
T Pass(const RowRange<T>& range, const T* next, RowRange<T>* next_range, const T* cur, T* out,
       const T* prev, T* prev_out, T prev_scale, int64_t n) {
  using O = Ops<T>;
  if (O::template Exp<false>::NeedsWide(range.max, range.min)) {
    return PipelinedPass<T, kNext, kPrev>(next, next_range, cur, out,
                                          typename O::template Exp<true>(range.max), prev,
                                          prev_out, prev_scale, n);
  }
  return PipelinedPass<T, kNext, kPrev>(next, next_range, cur, out,
                                        typename O::template Exp<false>(range.max), prev,
                                        prev_out, prev_scale, n);
}

// The sum of exp(z - max) without storing them.
template <typename T, class Exp>
T SumExp(const T* z, const Exp exp, int64_t n) {
  using O = Ops<T>;
  const typename O::D d;
  const int64_t lanes = O::Lanes();
  auto acc = hn::Zero(d);
  int64_t j = 0;
  for (; j + lanes <= n; j += lanes) acc = hn::Add(acc, exp(hn::LoadU(d, z + j)));
  if (j < n) acc = O::AddPart(acc, exp(O::LoadPart(z + j, n - j, z[j])), n - j);
  return O::ReduceAdd(acc);
}

template <typename T>
ShiftedExp<T> ExpShiftedT(const T* z, T* e, int64_t n) {
  using O = Ops<T>;
  const RowRange<T> range = RowMaxMin(z, n);
  T sum;
  if (e != nullptr) {
    sum = Pass<T, false, false>(range, nullptr, nullptr, z, e, nullptr, nullptr, T(0), n);
  } else if (O::template Exp<false>::NeedsWide(range.max, range.min)) {
    sum = SumExp(z, typename O::template Exp<true>(range.max), n);
  } else {
    sum = SumExp(z, typename O::template Exp<false>(range.max), n);
  }
  return RowStats(range, sum);
}

// out[j] = k·e[j] for j < n, streamed past the caches when `stream`.
template <typename T>
void ScaleInto(const T* e, T k, T* out, int64_t n, bool stream) {
  using O = Ops<T>;
  const typename O::D d;
  const int64_t lanes = O::Lanes();
  const auto kk = hn::Set(d, k);
  int64_t j = 0;
  if (stream) {
    // Non-temporal stores take aligned addresses: a head of up to lanes - 1 elements first.
    const uintptr_t align = static_cast<uintptr_t>(lanes) * sizeof(T);
    const uintptr_t to_boundary = (align - reinterpret_cast<uintptr_t>(out) % align) % align;
    const int64_t head = std::min<int64_t>(n, static_cast<int64_t>(to_boundary / sizeof(T)));
    if (head > 0) O::StorePart(out, hn::Mul(O::LoadPart(e, head, T(0)), kk), head);
    for (j = head; j + lanes <= n; j += lanes) {
      hn::Stream(hn::Mul(hn::LoadU(d, e + j), kk), d, out + j);
    }
  } else {
    for (; j + lanes <= n; j += lanes) hn::StoreU(hn::Mul(hn::LoadU(d, e + j), kk), d, out + j);
  }
  if (j < n) O::StorePart(out + j, hn::Mul(O::LoadPart(e + j, n - j, T(0)), kk), n - j);
}

template <typename T>
void ScaleRowsT(const T* in, T k, T* out, int64_t rows, int64_t n, bool stream) {
  for (int64_t i = 0; i < rows; ++i) ScaleInto(in + i * n, k, out + i * n, n, stream);
  if (stream) hwy::FlushStream();
}

// ExpRows with ordinary stores, as a pipeline over the rows: row i - 1 is written to the output,
// scaled, during row i's exp loop, so the output's stores ride along the exp work. Row i's
// exponentials are formed in `scratch` (two rows `stride` apart, used in turn, which stay in L1)
// or, without scratch (rows longer than kScratchRowBytes), in the output row itself, scaled in
// place.
template <typename T>
void ExpRowsPipelined(const T* z, T* out, int64_t rows, int64_t n, T* scratch, int64_t stride,
                      RowScaleRef<T> row_scale) {
  const auto exps = [&](int64_t i) {
    return scratch != nullptr ? scratch + (i & 1) * stride : out + i * n;
  };
  RowRange<T> range = RowMaxMin(z, n);
  T prev_scale = T(0);
  for (int64_t i = 0; i < rows; ++i) {
    const T* cur = z + i * n;
    T* e = exps(i);
    const T* prev = i > 0 ? exps(i - 1) : nullptr;
    T* prev_out = i > 0 ? out + (i - 1) * n : nullptr;
    RowRange<T> next_range{};
    T sum;
    if (i + 1 < rows) {
      sum = i > 0 ? Pass<T, true, true>(range, cur + n, &next_range, cur, e, prev, prev_out,
                                        prev_scale, n)
                  : Pass<T, true, false>(range, cur + n, &next_range, cur, e, nullptr, nullptr,
                                         T(0), n);
    } else {
      sum = i > 0 ? Pass<T, false, true>(range, nullptr, nullptr, cur, e, prev, prev_out,
                                         prev_scale, n)
                  : Pass<T, false, false>(range, nullptr, nullptr, cur, e, nullptr, nullptr,
                                          T(0), n);
    }
    prev_scale = row_scale(i, RowStats(range, sum), e);
    range = next_range;
  }
  ScaleInto(exps(rows - 1), prev_scale, out + (rows - 1) * n, n, false);
}

// ExpRows for rows of up to kScratchRowBytes with non-temporal stores: each row is written in a
// loop of its own after its exp loop (non-temporal stores mixed into the exp loop measured slower
// on Zen 4).
template <typename T>
void ExpRowsScratchStream(const T* z, T* out, int64_t rows, int64_t n, RowScaleRef<T> row_scale) {
  alignas(64) T e[kScratchRowBytes / sizeof(T)];
  RowRange<T> range = RowMaxMin(z, n);
  for (int64_t i = 0; i < rows; ++i) {
    const T* cur = z + i * n;
    RowRange<T> next_range{};
    const T sum =
        i + 1 < rows
            ? Pass<T, true, false>(range, cur + n, &next_range, cur, e, nullptr, nullptr, T(0), n)
            : Pass<T, false, false>(range, nullptr, nullptr, cur, e, nullptr, nullptr, T(0), n);
    const T k = row_scale(i, RowStats(range, sum), e);
    ScaleInto(e, k, out + i * n, n, true);
    range = next_range;
  }
  hwy::FlushStream();
}

template <typename T>
void ExpRowsT(const T* z, T* out, int64_t rows, int64_t n, bool stream,
              RowScaleRef<T> row_scale) {
  if (rows <= 0) return;
  if (n * static_cast<int64_t>(sizeof(T)) > kScratchRowBytes) {
    return ExpRowsPipelined<T>(z, out, rows, n, nullptr, 0, row_scale);
  }
  if (stream) return ExpRowsScratchStream(z, out, rows, n, row_scale);
  constexpr int64_t kStride = kScratchRowBytes / sizeof(T);
  alignas(64) T scratch[2 * kStride];
  ExpRowsPipelined<T>(z, out, rows, n, scratch, kStride, row_scale);
}

// The exported entry points (HWY_EXPORT needs plain functions).
inline ShiftedExp<float> ExpShiftedF32(const float* z, float* e, int64_t n) {
  return ExpShiftedT(z, e, n);
}
inline ShiftedExp<double> ExpShiftedF64(const double* z, double* e, int64_t n) {
  return ExpShiftedT(z, e, n);
}
inline void ExpRowsF32(const float* z, float* out, int64_t rows, int64_t n, bool stream,
                       RowScaleRef<float> row_scale) {
  ExpRowsT(z, out, rows, n, stream, row_scale);
}
inline void ExpRowsF64(const double* z, double* out, int64_t rows, int64_t n, bool stream,
                       RowScaleRef<double> row_scale) {
  ExpRowsT(z, out, rows, n, stream, row_scale);
}
inline void ScaleRowsF32(const float* in, float k, float* out, int64_t rows, int64_t n,
                         bool stream) {
  ScaleRowsT(in, k, out, rows, n, stream);
}
inline void ScaleRowsF64(const double* in, double k, double* out, int64_t rows, int64_t n,
                         bool stream) {
  ScaleRowsT(in, k, out, rows, n, stream);
}
// The name of this target, e.g. "AVX3": what dispatch chose, when called through it.
inline const char* TargetName() { return hwy::TargetName(HWY_TARGET); }

}  // namespace gradserve::internal::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // GRADSERVE_LIB_KERNELS_ROW_KERNELS_INL_H_ (per target)
