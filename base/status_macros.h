// Status propagation for lib/, server/ and client/ (Abseil 20220623 ships none of its own).
//
//   GRADSERVE_RETURN_IF_ERROR(Validate(x));
//   GRADSERVE_ASSIGN_OR_RETURN(double d, Denominator(x));
#ifndef GRADSERVE_BASE_STATUS_MACROS_H_
#define GRADSERVE_BASE_STATUS_MACROS_H_

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define GRADSERVE_RETURN_IF_ERROR(expr)                    \
  do {                                                     \
    ::absl::Status gradserve_status_ = (expr);             \
    if (!gradserve_status_.ok()) return gradserve_status_; \
  } while (0)

#define GRADSERVE_STATUS_CONCAT_INNER_(a, b) a##b
#define GRADSERVE_STATUS_CONCAT_(a, b) GRADSERVE_STATUS_CONCAT_INNER_(a, b)

#define GRADSERVE_ASSIGN_OR_RETURN(lhs, expr) \
  GRADSERVE_ASSIGN_OR_RETURN_IMPL_(GRADSERVE_STATUS_CONCAT_(gradserve_statusor_, __LINE__), lhs, expr)

#define GRADSERVE_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, expr) \
  auto statusor = (expr);                                     \
  if (!statusor.ok()) return std::move(statusor).status();    \
  lhs = std::move(statusor).value()

#endif  // GRADSERVE_BASE_STATUS_MACROS_H_
