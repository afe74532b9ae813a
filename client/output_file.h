// `--output FILE`: one tensor of a response written as .npy (numpy.load reads it) or .csv, in the
// response's dtype (bfloat16 as float32: numpy has no bfloat16).
//
// By default the command's main tensor is written (forward: probabilities, backward:
// grad_logits, verify: analytic_grad, the right gradient); `--output-field` picks another
// top-level Tensor field of the response, e.g. jacobian or loss.
//
//   GRADSERVE_RETURN_IF_ERROR(CheckOutputField(BackwardResponse::descriptor(), "jacobian"));
//   ... call ...
//   GRADSERVE_RETURN_IF_ERROR(WriteResponseTensor(response, "jacobian", "j.npy"));
#ifndef GRADSERVE_CLIENT_OUTPUT_FILE_H_
#define GRADSERVE_CLIENT_OUTPUT_FILE_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "client/host_tensor.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"

namespace gradserve::client {

// InvalidArgument unless `field` is a Tensor field of `type` and `path` ends in .npy or .csv;
// checked before the call so a typo costs no RPC.
absl::Status CheckOutput(const google::protobuf::Descriptor* type, absl::string_view field,
                         absl::string_view path);

// Writes `response.<field>` to `path`; InvalidArgument when the response has no such tensor
// (e.g. jacobian without --jacobian) or the file cannot be written.
absl::Status WriteResponseTensor(const google::protobuf::Message& response, absl::string_view field,
                                 const std::string& path);

// The CSV text of `t`: rank 0 and 1 on one line, rank 2 one line per row, higher ranks one line
// per last-axis vector. Round-trip precision: 17 digits for float64, 9 for the others.
std::string EncodeCsv(const HostTensor& t, gradserve::v1::DataType dtype);

}  // namespace gradserve::client

#endif  // GRADSERVE_CLIENT_OUTPUT_FILE_H_
