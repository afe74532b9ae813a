#include "server/http/json_gateway.h"

#include <functional>
#include <memory>
#include <string>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "google/protobuf/arena.h"
#include "server/http/json_tensors.h"
#include "server/rpc_logic.h"

namespace gradserve {
namespace {

// Memory a call takes fresh from the system costs a page fault per 4 KiB on first write (on the
// 2-core VM this was measured on, 100 ms for the 8.5 MB a [256, 1000] answer prints to), more
// than parsing and computing together. So each HTTP thread keeps what its calls need (up to
// kKeptBytesPerThread each): the messages live in an arena whose first block is the thread's,
// grown to the largest call seen, and the answer is printed into the thread's string.

struct ThreadMemory {
  std::unique_ptr<char[]> arena_block;
  size_t arena_block_size = 0;
  std::string printed;
};

ThreadMemory& ThisThreadMemory() {
  thread_local ThreadMemory memory;
  return memory;
}

template <typename Request, typename Response, typename Logic>
JsonAnswer Serve(GradientService& service, Logic logic, const std::string& body,
                 std::optional<absl::Time> deadline, std::function<bool()> client_gone) {
  JsonAnswer answer;
  answer.status = service.Admit(body.size());
  if (!answer.status.ok()) return answer;
  ThreadMemory& memory = ThisThreadMemory();
  // The previous call's answer has been sent by now.
  if (memory.printed.capacity() > kKeptBytesPerThread) std::string().swap(memory.printed);
  size_t arena_bytes = 0;
  {
    google::protobuf::ArenaOptions arena_options;
    arena_options.initial_block = memory.arena_block.get();
    arena_options.initial_block_size = memory.arena_block_size;
    google::protobuf::Arena arena(arena_options);
    auto& request = *google::protobuf::Arena::CreateMessage<Request>(&arena);
    auto& response = *google::protobuf::Arena::CreateMessage<Response>(&arena);
    answer.status = ParseJsonMessage(body, &request);
    if (!answer.status.ok()) {
      answer.status = absl::InvalidArgumentError(
          absl::StrCat("the body is not a ", Request::descriptor()->full_name(),
                       " in protobuf's JSON mapping: ", answer.status.message()));
    } else {
      std::function<bool()> is_cancelled;
      if (deadline || client_gone) {
        is_cancelled = [deadline, client_gone] {
          return (deadline && absl::Now() >= *deadline) || (client_gone && client_gone());
        };
      }
      // Small requests run right here, big ones on the compute pool; either way this HTTP
      // thread waits, as a gRPC call waits for its reactor.
      absl::Notification finished;
      service.Run(
          body.size(), std::move(is_cancelled),
          [&](const ExecContext& exec) { return logic(request, &response, service.options().limits, exec); },
          [&](absl::Status s) {
            answer.status = std::move(s);
            finished.Notify();
          });
      finished.WaitForNotification();
      if (answer.status.code() == absl::StatusCode::kCancelled && deadline && absl::Now() >= *deadline) {
        answer.status = absl::DeadlineExceededError("deadline exceeded while computing; the work was stopped");
      }
    }
    if (answer.status.ok()) {
      answer.rows = LogitsRows(request.logits());
      answer.status = PrintJsonMessage(&response, &memory.printed);
      if (answer.status.ok()) answer.json = memory.printed;
    }
    arena_bytes = arena.SpaceAllocated();
  }
  if (arena_bytes > memory.arena_block_size && arena_bytes <= kKeptBytesPerThread) {
    memory.arena_block.reset(new char[arena_bytes]);
    memory.arena_block_size = arena_bytes;
  }
  service.Release(body.size());
  return answer;
}

}  // namespace

JsonAnswer ServeJson(GradientService& service, Rpc rpc, const std::string& body,
                     std::optional<absl::Time> deadline, std::function<bool()> client_gone) {
  switch (rpc) {
    case Rpc::kForward:
      return Serve<v1::ForwardRequest, v1::ForwardResponse>(service, RunForward, body, deadline, std::move(client_gone));
    case Rpc::kBackward:
      return Serve<v1::BackwardRequest, v1::BackwardResponse>(service, RunBackward, body, deadline, std::move(client_gone));
    case Rpc::kVerifyGradient:
      return Serve<v1::VerifyGradientRequest, v1::VerifyGradientResponse>(service, RunVerifyGradient,
                                                                         body, deadline, std::move(client_gone));
    case Rpc::kBackwardStream: break;
  }
  return {absl::UnimplementedError("BackwardStream has no HTTP form; send one /v1/backward per request")};
}

absl::StatusOr<std::optional<absl::Time>> DeadlineFromTimeout(const std::string& grpc_timeout) {
  if (grpc_timeout.empty()) return std::nullopt;
  const std::string digits = grpc_timeout.substr(0, grpc_timeout.size() - 1);
  int64_t amount = 0;
  if (digits.empty() || digits.size() > 8 || !absl::SimpleAtoi(digits, &amount) || amount < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Grpc-Timeout \"", grpc_timeout, "\" is not 1 to 8 digits followed by a unit (H M S m u n)"));
  }
  absl::Duration unit;
  switch (grpc_timeout.back()) {
    case 'H': unit = absl::Hours(1); break;
    case 'M': unit = absl::Minutes(1); break;
    case 'S': unit = absl::Seconds(1); break;
    case 'm': unit = absl::Milliseconds(1); break;
    case 'u': unit = absl::Microseconds(1); break;
    case 'n': unit = absl::Nanoseconds(1); break;
    default:
      return absl::InvalidArgumentError(absl::StrCat(
          "Grpc-Timeout \"", grpc_timeout, "\" ends in '", grpc_timeout.substr(grpc_timeout.size() - 1),
          "', not one of the units H M S m u n"));
  }
  return absl::Now() + amount * unit;
}

}  // namespace gradserve
