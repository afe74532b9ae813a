// Which row kernel runs: one per instruction set, chosen at run time for the CPU.
//
// The row kernels (lib/row_kernels.h) are compiled for several instruction sets with Google
// Highway (AVX-512 "AVX3", AVX2 + FMA "AVX2", SSE4, SSSE3, and a portable "SCALAR" baseline, as
// the build allows) and the best one the CPU supports is picked once, at the first call. All of
// them compute the same exponentials (lib/vector_exp.h). Tests and benchmarks may force another.
//
//   LOG(INFO) << "row kernel: " << gradserve::ChosenKernel();   // e.g. "AVX3"
#ifndef GRADSERVE_LIB_KERNELS_KERNEL_DISPATCH_H_
#define GRADSERVE_LIB_KERNELS_KERNEL_DISPATCH_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace gradserve {

// The kernel calls run on now, e.g. "AVX3", "AVX2", "SCALAR".
std::string ChosenKernel();

// Kernels compiled into this binary that this CPU can run, best first. Dispatch picks the first
// unless a kernel is forced.
std::vector<std::string> SupportedKernels();

// Makes every later call run kernel `name` (one of SupportedKernels()); "" returns to the best.
// Not for use while kernels run on other threads. InvalidArgument for a kernel this binary does
// not have or this CPU cannot run.
absl::Status ForceKernel(absl::string_view name);

}  // namespace gradserve

#endif  // GRADSERVE_LIB_KERNELS_KERNEL_DISPATCH_H_
