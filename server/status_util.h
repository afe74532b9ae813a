// The one mapping from absl::Status to grpc::Status, and the last bound on what a status carries.
//
// A status message travels in the grpc-message trailer, percent-encoded (a non-ASCII byte takes
// three), and a client refuses trailers over its metadata limit (8 KiB by default) with
// RESOURCE_EXHAUSTED instead of the real error. Messages that embed caller-controlled sizes are
// bounded where they are made (shapes: base/shape_format.h); this cap catches everything else.
#ifndef GRADSERVE_SERVER_STATUS_UTIL_H_
#define GRADSERVE_SERVER_STATUS_UTIL_H_

#include <cstddef>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "grpcpp/support/status.h"

namespace gradserve {

// Longest status message sent, in bytes: 3 KiB once percent-encoded at worst.
inline constexpr size_t kMaxStatusMessageBytes = 1024;

// `message` if it fits in `max_bytes`; otherwise its start and end around
// " ... [N bytes elided] ... ", cut at UTF-8 character boundaries, at most `max_bytes` long.
std::string BoundMessage(absl::string_view message, size_t max_bytes = kMaxStatusMessageBytes);

// Same code (the enums share their numbering), the message bounded by BoundMessage.
grpc::Status ToGrpcStatus(const absl::Status& status);

}  // namespace gradserve

#endif  // GRADSERVE_SERVER_STATUS_UTIL_H_
