#include "server/status_util.h"

#include <string>

#include "absl/strings/str_cat.h"

namespace gradserve {
namespace {

// UTF-8 continuation bytes are 10xxxxxx: a cut must not land on one, or the client would see a
// broken character.
bool IsContinuation(char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }

}  // namespace

std::string BoundMessage(absl::string_view message, size_t max_bytes) {
  if (message.size() <= max_bytes) return std::string(message);
  // The marker's digits are bounded by those of message.size(), so reserve for that.
  const std::string widest = absl::StrCat(" ... [", message.size(), " bytes elided] ... ");
  if (widest.size() >= max_bytes) {  // no room for the marker: only a prefix
    size_t end = max_bytes;
    while (end > 0 && IsContinuation(message[end])) --end;
    return std::string(message.substr(0, end));
  }
  const size_t keep = max_bytes - widest.size();
  size_t head = keep * 3 / 4, tail_start = message.size() - (keep - head);
  while (head > 0 && IsContinuation(message[head])) --head;
  while (tail_start < message.size() && IsContinuation(message[tail_start])) ++tail_start;
  return absl::StrCat(message.substr(0, head), " ... [", tail_start - head, " bytes elided] ... ",
                      message.substr(tail_start));
}

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), BoundMessage(status.message()));
}

}  // namespace gradserve
