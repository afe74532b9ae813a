// Whether the client of an HTTP call is still there, so that a big computation whose caller
// hung up stops (as a cancelled gRPC call does). cpp-httplib 0.11 gives a handler no access to
// its connection (later versions have Request::is_connection_closed), so the connection's socket
// is found among the process's descriptors by its two addresses, which no other open socket
// shares, and then polled: the peer's FIN or RST means the caller is gone.
//
//   std::function<bool()> gone = ClientGoneProbe(req.remote_addr, req.remote_port, req.local_port);
//   if (gone && gone()) ...  // stop working
#ifndef GRADSERVE_SERVER_HTTP_CLIENT_GONE_H_
#define GRADSERVE_SERVER_HTTP_CLIENT_GONE_H_

#include <functional>
#include <string>

namespace gradserve {

// A predicate that is true once the peer of the TCP connection from `remote_addr`:`remote_port`
// to local port `local_port` has closed or reset it; empty when no such socket is open. Valid
// while the handler of that connection runs. Costs two system calls per open descriptor.
std::function<bool()> ClientGoneProbe(const std::string& remote_addr, int remote_port, int local_port);

// True when the peer of connected socket `fd` has closed or reset the connection. Data the peer
// sent after the request (a pipelined request) does not count.
bool PeerClosed(int fd);

}  // namespace gradserve

#endif  // GRADSERVE_SERVER_HTTP_CLIENT_GONE_H_
