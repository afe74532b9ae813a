// libFuzzer target (a): bytes → request proto → RunForward / RunBackward / RunVerifyGradient.
// See request_entry.h for the input format and the properties checked.
#include <cstdio>
#include <cstdlib>

#include "tests/fuzz/request_entry.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string failure = gradserve::fuzz::CheckRequestInput(data, size);
  if (!failure.empty()) {
    std::fprintf(stderr, "request_fuzzer: %s\n", failure.c_str());
    std::abort();
  }
  return 0;
}
