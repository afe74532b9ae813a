// Fuzz entry point (a): arbitrary bytes through request parsing, the tensor codec, validation and
// the library, exactly as the server's handlers run them (server/rpc_logic.h), minus gRPC.
//
// Input: byte 0 picks the RPC (Forward, Backward, VerifyGradient: byte % 3); the rest is parsed as
// that RPC's request message. Unparseable bytes are skipped. Properties checked:
//   - nothing crashes, hangs or trips a sanitizer (the fuzzer and the ASan build check that);
//   - a non-OK status is INVALID_ARGUMENT or RESOURCE_EXHAUSTED, with a message;
//   - an OK response fits in the message limit (plus a small allowance for the strings);
//   - an OK Forward response has probabilities in [0, 1] (no NaN).
// Used by request_fuzzer.cc (libFuzzer) and by fuzz_regression_test.cc (ctest replay).
//
//   std::string failure = gradserve::fuzz::CheckRequestInput(data, size);
//   if (!failure.empty()) abort();
#ifndef GRADSERVE_TESTS_FUZZ_REQUEST_ENTRY_H_
#define GRADSERVE_TESTS_FUZZ_REQUEST_ENTRY_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "server/server_options.h"

namespace gradserve::fuzz {

// Small limits so that no input can make the fuzzer run out of memory or time.
Limits FuzzLimits();

// Empty when every property holds, else what failed.
std::string CheckRequestInput(const uint8_t* data, size_t size);

}  // namespace gradserve::fuzz

#endif  // GRADSERVE_TESTS_FUZZ_REQUEST_ENTRY_H_
