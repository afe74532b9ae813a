#include "server/listener.h"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <iostream>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace gradserve {
namespace {

constexpr int kMinPauseMs = 5, kMaxPauseMs = 1000;

absl::Status BadAddress(absl::string_view text, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("--listen=", text, ": ", why));
}

std::string Describe(const ListenAddress& a) {
  const bool v6 = a.host.find(':') != std::string::npos;
  return absl::StrCat(v6 ? "[" : "", a.host, v6 ? "]" : "", ":", a.port);
}

int BoundPort(int fd) {
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return 0;
  if (addr.ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
  return ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port);
}

void SetPort(sockaddr* addr, int port) {
  if (addr->sa_family == AF_INET) reinterpret_cast<sockaddr_in*>(addr)->sin_port = htons(port);
  else reinterpret_cast<sockaddr_in6*>(addr)->sin6_port = htons(port);
}

}  // namespace

absl::StatusOr<ListenAddress> ParseListenAddress(absl::string_view text) {
  const size_t colon = text.rfind(':');
  if (colon == absl::string_view::npos || colon == 0) {
    return BadAddress(text, "expected HOST:PORT, e.g. 127.0.0.1:50051 or [::]:50051");
  }
  ListenAddress a;
  absl::string_view host = text.substr(0, colon), port = text.substr(colon + 1);
  if (host.front() == '[') {
    if (host.size() < 3 || host.back() != ']') return BadAddress(text, "an IPv6 host needs its closing ']'");
    host = host.substr(1, host.size() - 2);
  } else if (host.find(':') != absl::string_view::npos) {
    return BadAddress(text, "an IPv6 host goes in brackets, e.g. [::1]:50051");
  }
  a.host = std::string(host);
  int64_t number = -1;
  if (port.empty() || !std::all_of(port.begin(), port.end(), absl::ascii_isdigit) ||
      !absl::SimpleAtoi(port, &number) || number > 65535) {
    return BadAddress(text, absl::StrCat("port \"", port, "\" is not a number in [0, 65535]"));
  }
  a.port = static_cast<int>(number);
  return a;
}

absl::StatusOr<std::unique_ptr<Listener>> Listener::Open(const ListenAddress& address) {
  // As gRPC does, 0.0.0.0 and :: mean every address of either family: one dual-stack [::] socket,
  // or 0.0.0.0 alone where the host has no IPv6 (a container without it).
  if (address.host == "0.0.0.0" || address.host == "::") {
    const int probe = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (probe >= 0) close(probe);
    if (address.host == "0.0.0.0" && probe >= 0) return Open({"::", address.port});
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string port = std::to_string(address.port);
  if (const int e = getaddrinfo(address.host.c_str(), port.c_str(), &hints, &found); e != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--listen=", Describe(address), ": cannot resolve ", address.host, ": ", gai_strerror(e)));
  }
  std::unique_ptr<Listener> l(new Listener());
  l->port_ = address.port;
  absl::Status status;
  for (addrinfo* ai = found; ai != nullptr && status.ok(); ai = ai->ai_next) {
    const int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      status = absl::UnavailableError(absl::StrCat("cannot create a socket: ", std::strerror(errno)));
      break;
    }
    l->fds_.push_back(fd);
    // SO_REUSEADDR lets a restarted server bind while old connections sit in TIME_WAIT; unlike
    // SO_REUSEPORT it never lets two listeners share the port.
    const int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);  // accepted sockets inherit it
    if (ai->ai_family == AF_INET6 && address.host == "::") {
      const int zero = 0;  // dual-stack whatever the system's net.ipv6.bindv6only default
      setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
    }
    if (l->port_ != 0) SetPort(ai->ai_addr, l->port_);  // port 0: the first bind's pick for all
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, SOMAXCONN) != 0) {
      const int e = errno;
      status = absl::UnavailableError(absl::StrCat(
          "cannot listen on ", Describe({address.host, l->port_}), ": ", std::strerror(e),
          e == EADDRINUSE ? " (another process listens there; stop it or choose another --listen)" : ""));
      break;
    }
    l->port_ = BoundPort(fd);
  }
  freeaddrinfo(found);
  if (!status.ok()) return status;
  l->wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (l->wake_fd_ < 0) return absl::UnavailableError(absl::StrCat("eventfd: ", std::strerror(errno)));
  return l;
}

void Listener::Start(grpc::experimental::ExternalConnectionAcceptor* acceptor) {
  thread_ = std::thread([this, acceptor] { AcceptLoop(acceptor); });
}

void Listener::AcceptLoop(grpc::experimental::ExternalConnectionAcceptor* acceptor) {
  std::vector<pollfd> polled;
  for (int fd : fds_) polled.push_back({fd, POLLIN, 0});
  polled.push_back({wake_fd_, POLLIN, 0});
  int pause_ms = 0;  // > 0 while out of descriptors: wait this long before trying again
  for (;;) {
    for (pollfd& p : polled) p.revents = 0;
    // While paused only the wake fd is watched, so the ready listeners do not spin the loop.
    const int n = pause_ms > 0 ? poll(&polled.back(), 1, pause_ms) : poll(polled.data(), polled.size(), -1);
    if (n < 0 && errno != EINTR) return;
    if (polled.back().revents != 0) return;  // Stop()
    bool exhausted = false;
    for (size_t k = 0; k + 1 < polled.size() && !exhausted; ++k) {
      if (pause_ms == 0 && polled[k].revents == 0) continue;
      for (;;) {
        const int fd = accept4(polled[k].fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
          grpc::experimental::ExternalConnectionAcceptor::NewConnectionParameters p;
          p.listener_fd = polled[k].fd;
          p.fd = fd;
          acceptor->HandleNewConnection(&p);
          continue;
        }
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
          exhausted = true;
          if (pause_ms == 0) {
            rlimit limit{};
            getrlimit(RLIMIT_NOFILE, &limit);
            std::cerr << "gradserve-server: accept: " << std::strerror(errno) << " (descriptor limit "
                      << limit.rlim_cur << "); pausing accepts until connections close" << std::endl;
          }
        }
        break;  // EAGAIN: drained; ECONNABORTED and the like: the peer is gone, poll again
      }
    }
    pause_ms = exhausted ? std::clamp(pause_ms * 2, kMinPauseMs, kMaxPauseMs) : 0;
  }
}

void Listener::Stop() {
  if (wake_fd_ >= 0) {
    const uint64_t one = 1;
    [[maybe_unused]] const ssize_t w = write(wake_fd_, &one, sizeof one);
  }
  if (thread_.joinable()) thread_.join();
  for (int fd : fds_) close(fd);
  fds_.clear();
}

Listener::~Listener() {
  Stop();
  if (wake_fd_ >= 0) close(wake_fd_);
}

}  // namespace gradserve
