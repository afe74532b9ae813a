// A GoogleTest main for the math tests: runs every test once per row kernel this CPU supports
// (lib/kernels/kernel_dispatch.h), forcing each in turn, so that every kernel is tested on every
// run, not only the one dispatch picks. GRADSERVE_KERNEL=AVX2 runs one kernel only.
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "lib/kernels/kernel_dispatch.h"

int main(int argc, char** argv) {
  testing::InitGoogleTest(&argc, argv);
  if (GTEST_FLAG_GET(list_tests)) return RUN_ALL_TESTS();
  std::vector<std::string> kernels = gradserve::SupportedKernels();
  if (const char* only = std::getenv("GRADSERVE_KERNEL"); only != nullptr && *only != '\0') {
    kernels = {only};
  }
  std::vector<std::string> failed;
  for (const std::string& kernel : kernels) {
    const absl::Status forced = gradserve::ForceKernel(kernel);
    if (!forced.ok() || gradserve::ChosenKernel() != kernel) {
      std::fprintf(stderr, "cannot run the tests with row kernel %s: %s\n", kernel.c_str(),
                   forced.ok() ? ("dispatch runs " + gradserve::ChosenKernel()).c_str()
                               : std::string(forced.message()).c_str());
      failed.push_back(kernel);
      continue;
    }
    std::printf("[ KERNEL   ] %s\n", kernel.c_str());
    if (RUN_ALL_TESTS() != 0) failed.push_back(kernel);
  }
  std::printf("[ KERNELS  ] %zu run, %zu failed", kernels.size(), failed.size());
  for (const std::string& k : failed) std::printf(" %s", k.c_str());
  std::printf("\n");
  return failed.empty() ? 0 : 1;
}
