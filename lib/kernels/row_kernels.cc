// Compiles lib/kernels/row_kernels_inl.h once per Highway target and dispatches to the best one
// the CPU supports (or the one forced by ForceKernel).
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "lib/kernels/row_kernels.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep

#include "hwy/highway.h"
#include "lib/kernels/row_kernels_inl.h"

#if HWY_ONCE

#include <cstdint>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "hwy/targets.h"
#include "lib/kernels/kernel_dispatch.h"
#include "lib/row_kernels.h"

namespace gradserve {
namespace internal {

HWY_EXPORT(ExpShiftedF32);
HWY_EXPORT(ExpShiftedF64);
HWY_EXPORT(ExpRowsF32);
HWY_EXPORT(ExpRowsF64);
HWY_EXPORT(ScaleRowsF32);
HWY_EXPORT(ScaleRowsF64);
HWY_EXPORT(TargetName);

ShiftedExp<float> ExpShiftedF32(const float* z, float* e, int64_t n) {
  return HWY_DYNAMIC_DISPATCH(ExpShiftedF32)(z, e, n);
}
ShiftedExp<double> ExpShiftedF64(const double* z, double* e, int64_t n) {
  return HWY_DYNAMIC_DISPATCH(ExpShiftedF64)(z, e, n);
}
void ExpRowsF32(const float* z, float* out, int64_t rows, int64_t n, bool stream,
                RowScaleRef<float> row_scale) {
  HWY_DYNAMIC_DISPATCH(ExpRowsF32)(z, out, rows, n, stream, row_scale);
}
void ExpRowsF64(const double* z, double* out, int64_t rows, int64_t n, bool stream,
                RowScaleRef<double> row_scale) {
  HWY_DYNAMIC_DISPATCH(ExpRowsF64)(z, out, rows, n, stream, row_scale);
}
void ScaleRowsF32(const float* in, float k, float* out, int64_t rows, int64_t n, bool stream) {
  HWY_DYNAMIC_DISPATCH(ScaleRowsF32)(in, k, out, rows, n, stream);
}
void ScaleRowsF64(const double* in, double k, double* out, int64_t rows, int64_t n,
                  bool stream) {
  HWY_DYNAMIC_DISPATCH(ScaleRowsF64)(in, k, out, rows, n, stream);
}

const char* ChosenTargetName() { return HWY_DYNAMIC_DISPATCH(TargetName)(); }

namespace {

// The targets compiled in that the CPU supports, as detected before any kernel was forced.
int64_t RunnableTargets() {
  static const int64_t targets = hwy::SupportedTargets() & HWY_TARGETS;
  return targets;
}

}  // namespace
}  // namespace internal

std::string ChosenKernel() { return internal::ChosenTargetName(); }

std::vector<std::string> SupportedKernels() {
  std::vector<std::string> names;
  // Lower bits are better targets.
  for (int64_t t = internal::RunnableTargets(); t != 0; t &= t - 1) {
    names.push_back(hwy::TargetName(t & -t));
  }
  return names;
}

absl::Status ForceKernel(absl::string_view name) {
  const int64_t runnable = internal::RunnableTargets();
  int64_t target = 0;
  if (!name.empty()) {
    for (int64_t t = runnable; t != 0; t &= t - 1) {
      if (name == hwy::TargetName(t & -t)) target = t & -t;
    }
    if (target == 0) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "no row kernel \"%s\" for this CPU in this binary; it has %s", name,
          absl::StrJoin(SupportedKernels(), ", ")));
    }
  }
  // 0 makes Highway detect the CPU again.
  hwy::SetSupportedTargetsForTest(target);
  hwy::GetChosenTarget().Update(hwy::SupportedTargets());
  return absl::OkStatus();
}

}  // namespace gradserve

#endif  // HWY_ONCE
