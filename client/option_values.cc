#include "client/option_values.h"

#include <initializer_list>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace gradserve::client {
namespace {

// Looks `word` up in `table` (case-insensitive, '_' = '-'); the error lists the choices.
template <typename T>
absl::StatusOr<T> Choose(absl::string_view flag, absl::string_view word,
                         std::initializer_list<std::pair<absl::string_view, T>> table) {
  std::string key = absl::AsciiStrToLower(word);
  for (char& c : key) c = c == '_' ? '-' : c;
  std::vector<std::string> names;
  for (const auto& [name, value] : table) {
    if (name == key) return value;
    if (!name.empty()) names.emplace_back(name);
  }
  const std::string last = names.back();
  names.pop_back();
  return absl::InvalidArgumentError(absl::StrCat("--", flag, "=", word, ": expected ",
                                                 absl::StrJoin(names, ", "), names.empty() ? "" : " or ",
                                                 last));
}

}  // namespace

absl::StatusOr<gradserve::v1::Reduction> ParseReduction(absl::string_view word) {
  using namespace gradserve::v1;
  return Choose<Reduction>("reduction", word, {{"", REDUCTION_UNSPECIFIED}, {"mean", REDUCTION_MEAN},
                                                {"sum", REDUCTION_SUM}, {"none", REDUCTION_NONE}});
}

absl::StatusOr<gradserve::v1::Method> ParseMethod(absl::string_view word) {
  using namespace gradserve::v1;
  return Choose<Method>("method", word, {{"", METHOD_UNSPECIFIED}, {"fused", METHOD_FUSED},
                                          {"chain-rule", METHOD_CHAIN_RULE}});
}

absl::StatusOr<gradserve::v1::NumericMethod> ParseNumericMethod(absl::string_view word) {
  using namespace gradserve::v1;
  return Choose<NumericMethod>("numeric-method", word,
                               {{"", NUMERIC_METHOD_UNSPECIFIED},
                                {"complex-step", NUMERIC_METHOD_COMPLEX_STEP},
                                {"central-difference", NUMERIC_METHOD_CENTRAL_DIFFERENCE}});
}

absl::StatusOr<gradserve::v1::DataType> ParseDataType(absl::string_view word) {
  using namespace gradserve::v1;
  return Choose<DataType>("dtype", word, {{"", DATA_TYPE_UNSPECIFIED},
                                          {"f16", DATA_TYPE_FLOAT16}, {"float16", DATA_TYPE_FLOAT16},
                                          {"bf16", DATA_TYPE_BFLOAT16}, {"bfloat16", DATA_TYPE_BFLOAT16},
                                          {"f32", DATA_TYPE_FLOAT32}, {"float32", DATA_TYPE_FLOAT32},
                                          {"f64", DATA_TYPE_FLOAT64}, {"float64", DATA_TYPE_FLOAT64}});
}

absl::StatusOr<Encoding> ParseEncoding(absl::string_view word) {
  return Choose<Encoding>("encoding", word, {{"raw", Encoding::kRaw}, {"values", Encoding::kValues}});
}

absl::StatusOr<OutputFormat> ParseOutputFormat(absl::string_view word) {
  return Choose<OutputFormat>("format", word, {{"table", OutputFormat::kTable}, {"json", OutputFormat::kJson}});
}

absl::StatusOr<BenchRpc> ParseBenchRpc(absl::string_view word) {
  return Choose<BenchRpc>("rpc", word, {{"forward", BenchRpc::kForward}, {"backward", BenchRpc::kBackward},
                                        {"verify", BenchRpc::kVerify}, {"stream", BenchRpc::kStream},
                                        {"health", BenchRpc::kHealth}});
}

absl::StatusOr<std::pair<int64_t, int64_t>> ParseShape(absl::string_view word) {
  std::vector<absl::string_view> parts = absl::StrSplit(word, absl::ByAnyChar(",x"));
  int64_t batch = 0, classes = 0;
  if (parts.size() != 2 || !absl::SimpleAtoi(parts[0], &batch) || !absl::SimpleAtoi(parts[1], &classes) ||
      batch < 1 || classes < 1) {
    return absl::InvalidArgumentError(absl::StrCat("--shape=", word, ": expected BATCH,CLASSES, e.g. 64,1000"));
  }
  return std::make_pair(batch, classes);
}

absl::StatusOr<absl::Duration> ParseSeconds(absl::string_view flag, absl::string_view word) {
  double seconds;
  absl::Duration d;
  if (absl::SimpleAtod(word, &seconds)) {
    d = absl::Seconds(seconds);
  } else if (!absl::ParseDuration(word, &d)) {
    return absl::InvalidArgumentError(absl::StrCat("--", flag, "=", word, ": expected seconds (2.5) or a duration (500ms)"));
  }
  if (d < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat("--", flag, "=", word, ": must not be negative"));
  }
  return d;
}

}  // namespace gradserve::client
