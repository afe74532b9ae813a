#include "server/limits.h"

#include "absl/strings/str_format.h"

namespace gradserve {

const char kMessageSizeRemedies[] =
    "; to fit, send raw DATA_TYPE_FLOAT16 or DATA_TYPE_BFLOAT16 tensors (2 bytes per element, "
    "half of float32), split the batch into smaller requests, send the parts over one "
    "BackwardStream, or raise --max_message_mib";

absl::Status CheckResponseSize(int64_t bytes, const Limits& limits, const char* what) {
  if (bytes <= limits.max_message_bytes) return absl::OkStatus();
  return absl::ResourceExhaustedError(absl::StrFormat(
      "the response (%s) would be %.1f MiB, over the %.0f MiB message limit set by "
      "--max_message_mib%s",
      what, bytes / 1048576.0, limits.max_message_bytes / 1048576.0, kMessageSizeRemedies));
}

absl::Status CheckRequestSize(int64_t bytes, const Limits& limits) {
  if (bytes <= limits.max_message_bytes) return absl::OkStatus();
  return absl::ResourceExhaustedError(absl::StrFormat(
      "request is %d bytes (%.1f MiB), over the %.0f MiB limit set by --max_message_mib%s", bytes,
      bytes / 1048576.0, limits.max_message_bytes / 1048576.0, kMessageSizeRemedies));
}

absl::Status CheckCubicLimit(const char* what, int64_t rows, int64_t classes, int64_t limit,
                             const char* flag) {
  // rows · classes <= --max_elements, so the product fits in 64 bits for any sane limit; the
  // division keeps it exact regardless.
  if (classes == 0 || rows <= limit / classes / classes) return absl::OkStatus();
  return absl::ResourceExhaustedError(absl::StrFormat(
      "%s needs batch x classes^2 = %d x %d^2 = %.0f, over the limit of %d set by %s", what, rows,
      classes, static_cast<double>(rows) * classes * classes, limit, flag));
}

}  // namespace gradserve
