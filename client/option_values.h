// The words the command line takes for enums, shapes and durations, turned into typed values.
// Each error names the flag and lists what it accepts:
//   "--reduction=avg: expected mean, sum or none".
//
//   absl::StatusOr<gradserve::v1::Reduction> r = ParseReduction("sum");
#ifndef GRADSERVE_CLIENT_OPTION_VALUES_H_
#define GRADSERVE_CLIENT_OPTION_VALUES_H_

#include <cstdint>
#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "client/bench.h"
#include "client/commands.h"
#include "client/tensor_codec.h"
#include "gradserve/v1/gradserve.pb.h"

namespace gradserve::client {

// "" (the server's default, MEAN), "mean", "sum", "none".
absl::StatusOr<gradserve::v1::Reduction> ParseReduction(absl::string_view word);
// "" (FUSED), "fused", "chain-rule".
absl::StatusOr<gradserve::v1::Method> ParseMethod(absl::string_view word);
// "" (the server's most accurate), "complex-step", "central-difference".
absl::StatusOr<gradserve::v1::NumericMethod> ParseNumericMethod(absl::string_view word);
// "" (UNSPECIFIED: the input's own), "f16" / "float16", "bf16" / "bfloat16", "f32" / "float32",
// "f64" / "float64".
absl::StatusOr<gradserve::v1::DataType> ParseDataType(absl::string_view word);
// "raw", "values".
absl::StatusOr<Encoding> ParseEncoding(absl::string_view word);
// "table", "json".
absl::StatusOr<OutputFormat> ParseOutputFormat(absl::string_view word);
// "forward", "backward", "verify", "stream", "health".
absl::StatusOr<BenchRpc> ParseBenchRpc(absl::string_view word);
// "N,C" (also "NxC"): positive batch and classes.
absl::StatusOr<std::pair<int64_t, int64_t>> ParseShape(absl::string_view word);
// Seconds as a number ("2.5") or an Abseil duration ("500ms", "1m"); not negative.
absl::StatusOr<absl::Duration> ParseSeconds(absl::string_view flag, absl::string_view word);

}  // namespace gradserve::client

#endif  // GRADSERVE_CLIENT_OPTION_VALUES_H_
