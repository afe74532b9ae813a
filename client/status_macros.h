// Status propagation for the client (Abseil 20220623 ships none; lib/'s are not ours to include).
//
//   GRADSERVE_CLIENT_RETURN_IF_ERROR(CheckShape(t));
//   GRADSERVE_CLIENT_ASSIGN_OR_RETURN(HostTensor t, ReadTensorArg("logits", arg));
#ifndef GRADSERVE_CLIENT_STATUS_MACROS_H_
#define GRADSERVE_CLIENT_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define GRADSERVE_CLIENT_RETURN_IF_ERROR(expr)                 \
  do {                                                         \
    ::absl::Status gradserve_client_status_ = (expr);          \
    if (!gradserve_client_status_.ok()) return gradserve_client_status_; \
  } while (0)

#define GRADSERVE_CLIENT_CONCAT_INNER_(a, b) a##b
#define GRADSERVE_CLIENT_CONCAT_(a, b) GRADSERVE_CLIENT_CONCAT_INNER_(a, b)

#define GRADSERVE_CLIENT_ASSIGN_OR_RETURN(lhs, expr) \
  GRADSERVE_CLIENT_ASSIGN_OR_RETURN_IMPL_(           \
      GRADSERVE_CLIENT_CONCAT_(gradserve_client_statusor_, __LINE__), lhs, expr)

#define GRADSERVE_CLIENT_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, expr) \
  auto statusor = (expr);                                            \
  if (!statusor.ok()) return std::move(statusor).status();           \
  lhs = std::move(statusor).value()

#endif  // GRADSERVE_CLIENT_STATUS_MACROS_H_
