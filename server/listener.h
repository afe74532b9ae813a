// The server's own listening sockets and accept loop; each accepted connection is handed to gRPC
// (ServerBuilder's external connection acceptor), which runs TLS and HTTP/2 on it as on its own.
//
// Why not gRPC's listener (1.51): it sets SO_REUSEPORT, so a second server on a port in use starts
// silently and the kernel splits connections between the two; and when accept() fails for lack
// of descriptors it logs "Failed accept4: Too many open files" and never accepts again, so a burst
// of idle connections takes the server down for good. Here a port in use is an error at start-up,
// and when descriptors run out accepting pauses (backing off from 5 ms to 1 s, as Go's net/http
// does) while connections wait in the kernel's listen queue, and resumes once some are freed
// (gRPC closes connections that do not finish the HTTP/2 handshake in time).
//
//   GRADSERVE_ASSIGN_OR_RETURN(ListenAddress address, ParseListenAddress("127.0.0.1:50051"));
//   GRADSERVE_ASSIGN_OR_RETURN(std::unique_ptr<Listener> listener, Listener::Open(address));
//   auto acceptor = builder.experimental().AddExternalConnectionAcceptor(..., credentials);
//   server = builder.BuildAndStart();
//   listener->Start(acceptor.get());  ...  listener->Stop();  // then server->Shutdown()
#ifndef GRADSERVE_SERVER_LISTENER_H_
#define GRADSERVE_SERVER_LISTENER_H_

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "grpcpp/server_builder.h"

namespace gradserve {

struct ListenAddress {
  std::string host;  // a name or a numeric address, IPv6 without its brackets
  int port = 0;      // 0: the kernel picks a free one
};

// "HOST:PORT" or "[IPV6]:PORT", PORT a decimal number in [0, 65535]; InvalidArgument naming the
// flag's value otherwise.
absl::StatusOr<ListenAddress> ParseListenAddress(absl::string_view text);

class Listener {
 public:
  // Binds and listens on every address `address.host` resolves to, without SO_REUSEPORT;
  // Unavailable naming the address and the system's reason (e.g. "Address already in use") if any
  // cannot be bound.
  static absl::StatusOr<std::unique_ptr<Listener>> Open(const ListenAddress& address);
  ~Listener();

  int port() const { return port_; }  // the bound port (the kernel's pick for port 0)

  // Accepts on a thread of its own, handing every connection to `acceptor`, until Stop().
  void Start(grpc::experimental::ExternalConnectionAcceptor* acceptor);
  // Stops accepting and closes the sockets: new connections are refused from here on.
  void Stop();

 private:
  Listener() = default;
  void AcceptLoop(grpc::experimental::ExternalConnectionAcceptor* acceptor);

  std::vector<int> fds_;
  int wake_fd_ = -1;  // an eventfd: Stop() wakes the loop's poll()
  int port_ = 0;
  std::thread thread_;
};

}  // namespace gradserve

#endif  // GRADSERVE_SERVER_LISTENER_H_
