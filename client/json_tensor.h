// Tensors from JSON files: nested arrays of numbers (`[[1.75, 1.75], [0.2, 0.1]]` is [2, 2], a
// bare number is a scalar), or a gradserve Tensor object as `gradserve --format=json` prints it
// (`{"shape": ["2", "2"], "values": [...]}`), so one command's output can feed the next.
// "NaN", "Infinity" and "-Infinity" strings are numbers, as in protobuf's JSON mapping.
//
// Errors name "path:line:column" of the offending value.
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
