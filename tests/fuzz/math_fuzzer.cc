// libFuzzer target (b): structured shapes, values and options → the math library.
// See math_entry.h for the decoding and the properties checked.
#include <cstdio>
#include <cstdlib>

#include "tests/fuzz/math_entry.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string failure = gradserve::fuzz::CheckMathInput(data, size);
  if (!failure.empty()) {
    std::fprintf(stderr, "math_fuzzer: %s\n", failure.c_str());
    std::abort();
  }
  return 0;
}
