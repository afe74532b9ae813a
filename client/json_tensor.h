// Tensors from JSON files: nested arrays of numbers (`[[1.75, 1.75], [0.2, 0.1]]` is [2, 2], a
// bare number is a scalar), or a gradserve Tensor object as `gradserve --format=json` prints it
// (`{"shape": ["2", "2"], "dtype": "DATA_TYPE_FLOAT32", "values": [...]}`), so one command's
// output can feed the next. "NaN", "Infinity" and "-Infinity" strings are numbers, as in
// protobuf's JSON mapping.
//
// Parsing is nlohmann::json's (strict RFC 8259: escapes decoded; `+1`, `.5`, `01`, `2.` refused).
// Syntax errors name "path:line:column"; errors about a value name it by its place in the
// document ("z.json: [1][0]: expected a number"). A tensor object with a key other than shape,
// dtype, values (and an empty raw) is refused, so a misspelt key is not silently ignored. The
// tensor's dtype is the object's "dtype", else float64.
//
//   absl::StatusOr<HostTensor> t = ParseJsonTensor("z.json", "[[1, 2], [3, 4]]");
#ifndef GRADSERVE_CLIENT_JSON_TENSOR_H_
#define GRADSERVE_CLIENT_JSON_TENSOR_H_

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "client/host_tensor.h"

namespace gradserve::client {

absl::StatusOr<HostTensor> ParseJsonTensor(absl::string_view path, absl::string_view contents);

}  // namespace gradserve::client

#endif  // GRADSERVE_CLIENT_JSON_TENSOR_H_
