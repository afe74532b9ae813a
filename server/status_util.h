// The one mapping from absl::Status to grpc::Status.
#ifndef GRADSERVE_SERVER_STATUS_UTIL_H_
#define GRADSERVE_SERVER_STATUS_UTIL_H_

#include "absl/status/status.h"
#include "grpcpp/support/status.h"

namespace gradserve {

// Same code (the enums share their numbering), same message.
grpc::Status ToGrpcStatus(const absl::Status& status);

}  // namespace gradserve

#endif  // GRADSERVE_SERVER_STATUS_UTIL_H_
