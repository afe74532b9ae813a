// Errors on the HTTP side, the way grpc-gateway maps them: each gRPC status code to one HTTP
// status, and a JSON body {"code": <gRPC code>, "status": "<NAME>", "message": "..."}.
#ifndef GRADSERVE_SERVER_HTTP_HTTP_ERRORS_H_
#define GRADSERVE_SERVER_HTTP_HTTP_ERRORS_H_

#include <string>

#include "absl/status/status.h"

namespace gradserve {

// grpc-gateway's runtime.HTTPStatusFromCode: INVALID_ARGUMENT 400, UNAUTHENTICATED 401,
// RESOURCE_EXHAUSTED 429, DEADLINE_EXCEEDED 504, UNAVAILABLE 503, CANCELLED 499, ...
int HttpStatusFor(absl::StatusCode code);

// {"code": 3, "status": "INVALID_ARGUMENT", "message": "..."} for a non-OK status.
std::string ErrorJson(const absl::Status& status);

}  // namespace gradserve

#endif  // GRADSERVE_SERVER_HTTP_HTTP_ERRORS_H_
