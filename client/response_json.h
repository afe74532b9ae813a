// `--format=json`: a response in protobuf's JSON mapping, on one line ending in a newline, with
// field names as in the proto (snake_case, as docs/api.md writes them), every scalar printed even when
// zero or false (so scripts can read `.ok` and `.candidate_ok`), and tensors decoded: `raw` bytes
// become `values` numbers with the dtype kept. The output is readable, parses back into the
// response type (JsonStringToMessage), and any tensor in it can be given to a flag as a .json file.
//
//   absl::StatusOr<std::string> json = ResponseJson(response);
#ifndef GRADSERVE_CLIENT_RESPONSE_JSON_H_
#define GRADSERVE_CLIENT_RESPONSE_JSON_H_

#include <string>

#include "absl/status/statusor.h"
#include "google/protobuf/message.h"

namespace gradserve::client {

// InvalidArgument when a tensor's raw bytes do not match its shape (a broken server).
absl::StatusOr<std::string> ResponseJson(const google::protobuf::Message& response);

}  // namespace gradserve::client

#endif  // GRADSERVE_CLIENT_RESPONSE_JSON_H_
