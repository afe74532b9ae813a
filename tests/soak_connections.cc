#include "tests/soak_connections.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"

extern char** environ;

#ifndef GRADSERVE_SOAK_DROP_CLIENT
#error "GRADSERVE_SOAK_DROP_CLIENT must name the soak_drop_client program (tests/soak_tests.cmake)"
#endif

namespace gradserve::soak {

// Not cancelled as well: gRPC 1.51's client, when a call is cancelled while its request is still
// being sent, keeps that connection open in the client process after the channel is gone (the
// server then counts one more fd per such channel, held by the client). Cancellation is covered
// by the interrupting clients and by killed client processes instead.
void DropChannelInFlight(const std::string& address, const v1::BackwardRequest& big,
                         std::mt19937_64& rng, Tally& tally) {
  struct Call {
    grpc::ClientContext ctx;
    v1::BackwardResponse resp;
    grpc::Status status;
  };
  const int k = 1 + static_cast<int>(rng() % 4);
  std::vector<std::unique_ptr<Call>> calls;
  std::mutex mu;
  std::condition_variable cv;
  int done = 0;
  {
    auto channel = NewChannel(address);
    auto stub = v1::GradientService::NewStub(channel);
    for (int m = 0; m < k; ++m) {
      calls.push_back(std::make_unique<Call>());
      Call* call = calls.back().get();
      call->ctx.set_deadline(In(30));
      stub->async()->Backward(&call->ctx, &big, &call->resp, [&, call](grpc::Status s) {
        std::lock_guard<std::mutex> lock(mu);
        call->status = std::move(s);
        ++done;
        cv.notify_one();
      });
    }
    std::this_thread::sleep_for(std::chrono::microseconds(rng() % 4000));
  }  // the stub and channel go here; the calls keep the connection until they end
  std::unique_lock<std::mutex> lock(mu);
  cv.wait(lock, [&] { return done == k; });
  for (auto& call : calls) {
    tally.Expect("channel dropped in flight", call->status,
                 {grpc::StatusCode::OK, grpc::StatusCode::RESOURCE_EXHAUSTED});
  }
}

void KillClientInFlight(const std::string& address, std::mt19937_64& rng, Tally& tally) {
  int out[2];
  if (pipe2(out, O_CLOEXEC) != 0) return;
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
  std::string program = GRADSERVE_SOAK_DROP_CLIENT, target = address;
  char* argv[] = {program.data(), target.data(), nullptr};
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, program.c_str(), &actions, nullptr, argv, environ);
  posix_spawn_file_actions_destroy(&actions);
  close(out[1]);
  if (rc != 0) {
    close(out[0]);
    tally.Fail(absl::StrCat("could not start ", program, ": ", std::strerror(rc)));
    return;
  }
  // The client writes one byte once its calls are started; wait up to 10 s for it.
  pollfd p{out[0], POLLIN, 0};
  char byte = 0;
  const bool started = poll(&p, 1, 10000) > 0 && read(out[0], &byte, 1) == 1;
  std::this_thread::sleep_for(std::chrono::microseconds(rng() % 5000));
  kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
  close(out[0]);
  tally.Count(started ? "client killed in flight" : "client killed before its calls",
              grpc::StatusCode::OK);
}

namespace {

std::string Frame(uint8_t type, uint8_t flags, uint32_t stream, const std::string& payload) {
  std::string f;
  f += static_cast<char>(payload.size() >> 16);
  f += static_cast<char>(payload.size() >> 8);
  f += static_cast<char>(payload.size());
  f += static_cast<char>(type);
  f += static_cast<char>(flags);
  for (int shift = 24; shift >= 0; shift -= 8) f += static_cast<char>(stream >> shift);
  return f + payload;
}

// The bytes of a whole-looking Backward call: preface, SETTINGS, HEADERS and the first `part`
// bytes of the message, each frame built by hand so that a cut can land anywhere in it.
std::string PartialCall(const v1::BackwardRequest& big, size_t part) {
  std::string out = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + Frame(4, 0, 0, "");
  std::string hpack;
  auto literal = [&](const std::string& name, const std::string& value) {
    hpack += '\0';  // literal header field without indexing, new name
    hpack += static_cast<char>(name.size());
    hpack += name;
    hpack += static_cast<char>(value.size());
    hpack += value;
  };
  literal(":method", "POST");
  literal(":scheme", "http");
  literal(":path", "/gradserve.v1.GradientService/Backward");
  literal(":authority", "localhost");
  literal("content-type", "application/grpc");
  literal("te", "trailers");
  out += Frame(1, 0x4, 1, hpack);  // END_HEADERS
  const std::string message = big.SerializeAsString();
  std::string body;
  body += '\0';  // not compressed
  for (int shift = 24; shift >= 0; shift -= 8) body += static_cast<char>(message.size() >> shift);
  body += message.substr(0, part);
  for (size_t at = 0; at < body.size(); at += 16384) out += Frame(0, 0, 1, body.substr(at, 16384));
  return out;
}

}  // namespace

void ResetMidRequest(int port, const v1::BackwardRequest& big, std::mt19937_64& rng) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    // Within the initial 64 KiB flow-control window, so the server reads all that is sent.
    const std::string out = PartialCall(big, rng() % 60000);
    const size_t cut = rng() % (out.size() + 1);
    size_t sent = 0;
    while (sent < cut) {
      const ssize_t w = send(fd, out.data() + sent, cut - sent, MSG_NOSIGNAL);
      if (w <= 0) break;
      sent += static_cast<size_t>(w);
    }
    std::this_thread::sleep_for(std::chrono::microseconds(rng() % 3000));
  }
  linger hard{1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &hard, sizeof(hard));
  close(fd);
}

}  // namespace gradserve::soak
