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

#include "hwy/aligned_allocator.h"
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

// Elements before the first address of `p` aligned for non-temporal vector stores (at most n).
template <typename T>
int64_t StreamHead(const T* p, int64_t n) {
  const uintptr_t align = static_cast<uintptr_t>(Ops<T>::Lanes()) * sizeof(T);
  const uintptr_t to_boundary = (align - reinterpret_cast<uintptr_t>(p) % align) % align;
  return std::min<int64_t>(n, static_cast<int64_t>(to_boundary / sizeof(T)));
}

// The previous row's write-out inside PipelinedPass: out = k·e, streamed when kStream.
template <typename T, bool kStream>
struct PrevRow {
  const T* e;
  T* out;
  T k;
};

// One loop over the columns doing three rows' stages: max/min of `next` (if kNext), e = exp of
// `cur` shifted, into `e`, returning its sum, and the previous row written out scaled (if kPrev).
// All of a row's memory traffic (the next row in, the previous row out) thus overlaps the
// FMA-bound exp work; with kStream, prev.out's unaligned head is written first so the rest can be
// streamed.
template <typename T, bool kNext, bool kPrev, bool kStream, class Exp>
T PipelinedPass(const T* next, RowRange<T>* next_range, const T* cur, T* e, const Exp exp,
                const PrevRow<T, kStream>& prev, int64_t n) {
  using O = Ops<T>;
  using V = typename O::V;
  const typename O::D d;
  const int64_t lanes = O::Lanes();
  V mx = hn::Set(d, -std::numeric_limits<T>::infinity());
  V mn = hn::Set(d, std::numeric_limits<T>::infinity());
  V acc = hn::Zero(d);
  const V k = hn::Set(d, prev.k);
  const auto step = [&](int64_t j) HWY_ATTR {
    if constexpr (kNext) {
      const V v = O::InRegister(hn::LoadU(d, next + j));
      mx = hn::Max(mx, v);
      mn = hn::Min(mn, v);
    }
    const V x = exp(hn::LoadU(d, cur + j));
    hn::StoreU(x, d, e + j);
    acc = hn::Add(acc, x);
  };
  // The previous row is written from `head` on, one vector per step, aligned when streamed.
  const int64_t head = kPrev && kStream ? StreamHead(prev.out, n) : 0;
  if (kPrev && head > 0) O::StorePart(prev.out, hn::Mul(O::LoadPart(prev.e, head, T(0)), k), head);
  int64_t j = 0;
  if constexpr (kPrev) {
    for (; j + lanes <= n - head; j += lanes) {
      step(j);
      const V w = hn::Mul(hn::LoadU(d, prev.e + head + j), k);
      if constexpr (kStream) {
        hn::Stream(w, d, prev.out + head + j);
      } else {
        hn::StoreU(w, d, prev.out + head + j);
      }
    }
    if (head + j < n) {
      const int64_t left = n - head - j;
      O::StorePart(prev.out + head + j, hn::Mul(O::LoadPart(prev.e + head + j, left, T(0)), k), left);
    }
  }
  for (; j + lanes <= n; j += lanes) step(j);
  if (j < n) {
    const int64_t left = n - j;
    if constexpr (kNext) {
      const V v = O::LoadPart(next + j, left, next[j]);
      mx = hn::Max(mx, v);
      mn = hn::Min(mn, v);
    }
    const V x = exp(O::LoadPart(cur + j, left, cur[j]));
    O::StorePart(e + j, x, left);
    acc = O::AddPart(acc, x, left);
  }
  if constexpr (kNext) *next_range = {O::ReduceMax(mx), O::ReduceMin(mn)};
  return O::ReduceAdd(acc);
}

// PipelinedPass with the exp variant the current row's range needs.
template <typename T, bool kNext, bool kPrev, bool kStream = false>
T Pass(const RowRange<T>& range, const T* next, RowRange<T>* next_range, const T* cur, T* e,
       const PrevRow<T, kStream>& prev, int64_t n) {
  using O = Ops<T>;
  if (O::template Exp<false>::NeedsWide(range.max, range.min)) {
    return PipelinedPass<T, kNext, kPrev, kStream>(
        next, next_range, cur, e, typename O::template Exp<true>(range.max), prev, n);
  }
  return PipelinedPass<T, kNext, kPrev, kStream>(
      next, next_range, cur, e, typename O::template Exp<false>(range.max), prev, n);
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
    sum = Pass<T, false, false>(range, nullptr, nullptr, z, e, {}, n);
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
    const int64_t head = StreamHead(out, n);
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

// The row pipeline: row i's exponentials are formed in buffer(i) while row i + 1's range is
// found and row i - 1 is written from buffer(i - 1) to `out`, scaled.
template <typename T, bool kStream, class BufferFn>
void PipelineRows(const T* z, T* out, int64_t rows, int64_t n, RowScaleRef<T> row_scale,
                  const BufferFn& buffer) {
  RowRange<T> range = RowMaxMin(z, n);
  T prev_scale = T(0);
  for (int64_t i = 0; i < rows; ++i) {
    const T* cur = z + i * n;
    T* e = buffer(i);
    const PrevRow<T, kStream> prev =
        i > 0 ? PrevRow<T, kStream>{buffer(i - 1), out + (i - 1) * n, prev_scale}
              : PrevRow<T, kStream>{};
    RowRange<T> next_range{};
    T sum;
    if (i + 1 < rows) {
      sum = i > 0 ? Pass<T, true, true>(range, cur + n, &next_range, cur, e, prev, n)
                  : Pass<T, true, false>(range, cur + n, &next_range, cur, e, prev, n);
    } else {
      sum = i > 0 ? Pass<T, false, true>(range, nullptr, nullptr, cur, e, prev, n)
                  : Pass<T, false, false>(range, nullptr, nullptr, cur, e, prev, n);
    }
    prev_scale = row_scale(i, RowStats(range, sum), e);
    range = next_range;
  }
  ScaleInto(buffer(rows - 1), prev_scale, out + (rows - 1) * n, n, kStream);
}

// A thread's scratch rows for ExpRows' rows too long for the stack, kept between calls (the
// allocation and its page faults would cost as much as a row).
template <typename T>
T* ThreadScratch(int64_t elements) {
  thread_local hwy::AlignedFreeUniquePtr<T[]> buffer;
  thread_local int64_t size = 0;
  if (size < elements) {
    buffer = hwy::AllocateAligned<T>(static_cast<size_t>(elements));
    size = elements;
  }
  return buffer.get();
}

template <typename T>
void ExpRowsT(const T* z, T* out, int64_t rows, int64_t n, bool stream,
              RowScaleRef<T> row_scale) {
  if (rows <= 0) return;
  const int64_t row_bytes = n * static_cast<int64_t>(sizeof(T));
  if (row_bytes > kScratchRowMaxBytes) {
    // The exponentials are formed in `out` and scaled in place, a row behind.
    return PipelineRows<T, false>(z, out, rows, n, row_scale,
                                  [&](int64_t i) { return out + i * n; });
  }
  // Two scratch rows, in turn, each starting on a cache line.
  const int64_t stride = (n + 63) & ~int64_t{63};
  alignas(64) T stack[2 * kScratchRowBytes / sizeof(T)];
  T* scratch = row_bytes <= kScratchRowBytes ? stack : ThreadScratch<T>(2 * stride);
  const auto buffer = [&](int64_t i) { return scratch + (i & 1) * stride; };
  if (stream) {
    PipelineRows<T, true>(z, out, rows, n, row_scale, buffer);
    hwy::FlushStream();
  } else {
    PipelineRows<T, false>(z, out, rows, n, row_scale, buffer);
  }
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
