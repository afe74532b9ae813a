// The readable (default) output of each RPC: its tensors as aligned tables and its numbers on
// labelled lines. For verify, the verdict comes first, then each finding's code and explanation,
// then the right gradient, so the answer to "is my gradient right, and if not why" is on top.
//
//   absl::StatusOr<std::string> text = VerifyText(request, response, TableStyle{});
//
// Each returns InvalidArgument when a response tensor's bytes do not match its shape (a broken
// server), naming the field.
#ifndef GRADSERVE_CLIENT_RESPONSE_TEXT_H_
#define GRADSERVE_CLIENT_RESPONSE_TEXT_H_

#include <string>

#include "absl/status/statusor.h"
#include "client/table_format.h"
#include "gradserve/v1/gradserve.pb.h"

namespace gradserve::client {

absl::StatusOr<std::string> ForwardText(const gradserve::v1::ForwardResponse& response,
                                        const TableStyle& style);
absl::StatusOr<std::string> BackwardText(const gradserve::v1::BackwardResponse& response,
                                         const TableStyle& style);
// The request tells which candidates were given, for the verdict's wording.
absl::StatusOr<std::string> VerifyText(const gradserve::v1::VerifyGradientRequest& request,
                                       const gradserve::v1::VerifyGradientResponse& response,
                                       const TableStyle& style);

// "JACOBIAN_AT_LOGITS" for FINDING_CODE_JACOBIAN_AT_LOGITS: the name people search for.
std::string FindingName(gradserve::v1::FindingCode code);

}  // namespace gradserve::client

#endif  // GRADSERVE_CLIENT_RESPONSE_TEXT_H_
